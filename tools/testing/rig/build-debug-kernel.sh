#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The debug test kernel: Debian's linux-source-6.12 (pristine: built-in code
# as Debian compiles it), alldefconfig + debug-kernel.config (what the test
# VM needs; KASAN, lockdep, UBSAN, KFENCE, debug objects, gcov), KVM as
# modules; then our patched modules built against it, with the pacing code
# profiled by gcov.  Only bzImage and irqbypass.ko are built (KVM's own
# modules would be replaced by ours).  Cached under build/debug-kernel/ by
# source version and config hash: the first build takes about 15 minutes on
# 2 cores.
#
# Usage: build-debug-kernel.sh [kernel|modules]   (default: modules)
# Prints nothing; results:
#   build/debug-kernel/VERSION-HASH/obj/arch/x86/boot/bzImage
#   build/modules-debug/{kvm,kvm-amd,kvm-intel,irqbypass}.ko
#   build/debug-kernel/current -> VERSION-HASH
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"

what=${1:-modules}
JOBS=${JOBS:-$(nproc)}
frag=$here/debug-kernel.config
command -v gcov >/dev/null || die "gcov missing (gcc-12)"

pristine=$(pristine_src)
base=alldefconfig
key=$({ echo "$KPKG_VERSION $base"; cat "$frag"; gcc --version | head -n 1; } | sha1sum | cut -c1-12)
top=$BUILD/debug-kernel
out=$top/$KPKG_VERSION-$key
obj=$out/obj

# One build at a time (make fuzz and make check-debug share the cache).
mkdir -p "$top"
exec 9>"$top/.lock"
flock -n 9 || { log "waiting for another build of the debug test kernel"; flock 9; }

if [ ! -e "$out/.built" ]; then
	log "building the debug test kernel in $out (about 15 minutes on 2 cores; cached)"
	# Nothing boots a kernel that is being built (or whose build failed).
	rm -f "$top/current"
	# Objects of an earlier config are reused where their options did not
	# change (kbuild tracks them per file): a config edit costs minutes.
	prev=$(ls -1dt "$top/$KPKG_VERSION"-*/obj 2>/dev/null | head -n 1 || true)
	if [ ! -d "$obj" ] && [ -n "$prev" ]; then
		mkdir -p "$out"
		mv "$prev" "$obj"
		rm -rf "${prev%/obj}"
	fi
	mkdir -p "$obj"
	kmake() { env -u MAKEFLAGS -u MFLAGS make -s -C "$pristine" O="$obj" "$@"; }
	kmake "$base" > /dev/null
	(cd "$obj" && "$pristine/scripts/kconfig/merge_config.sh" -m -O "$obj" \
		"$obj/.config" "$frag") \
		> "$out/merge.log" 2>&1 || die "merging the config failed: see $out/merge.log"
	kmake olddefconfig > /dev/null
	# Every option the fragment asks for must have survived olddefconfig.
	lost=$(sed -n 's/^\(CONFIG_[A-Z0-9_]*=.*\)$/\1/p; s/^# \(CONFIG_[A-Z0-9_]*\) is not set$/\1=n/p' "$frag" |
		while IFS= read -r want; do
			opt=${want%%=*}
			have=$(grep -E "^$opt=|^# $opt is not set" "$obj/.config" || true)
			case "$have" in "# $opt is not set") have=$opt=n ;; "") have=$opt=n ;; esac
			[ "$have" = "$want" ] || echo "$want (have ${have#*=})"
		done)
	[ -z "$lost" ] || die "the debug config lost options (a dependency is missing): $lost"
	log "debug kernel: compiling bzImage and irqbypass.ko"
	t0=$(date +%s)
	# irqbypass.ko as a single module: its modpost writes the Module.symvers
	# (vmlinux's exports and its own) that our external build links against.
	{ kmake -j"$JOBS" bzImage && kmake -j"$JOBS" virt/lib/irqbypass.ko; } > "$out/build.log" 2>&1 ||
		{ tail -n 30 "$out/build.log" >&2; die "debug kernel build failed: see $out/build.log"; }
	log "debug kernel built in $((($(date +%s) - t0) / 60)) min (-j$JOBS)"
	touch "$out/.built"
fi
ln -sfn "$KPKG_VERSION-$key" "$top/current"
[ "$what" = kernel ] && exit 0

# Our modules against it, with -Werror as always (KVM's Kconfig offers
# KVM_WERROR with KASAN only under a kernel-wide WERROR; they build clean);
# the ABI is checked against Debian's vmlinux in the normal build (this
# kernel has no BTF).
# An object whose .gcno went missing is rebuilt, or coverage.sh has no notes.
for o in "$BUILD"/kmod-debug/arch/x86/kvm/pace.o "$BUILD"/kmod-debug/virt/kvm/pace*.o; do
	[ ! -e "$o" ] || [ -e "${o%.o}.gcno" ] || rm -f "$o"
done
KERNEL_SRC=$obj KMOD=$BUILD/kmod-debug MODULES_OUT=$BUILD/modules-debug \
	ABI_CHECK="debug kernel (no BTF; checked against Debian's vmlinux)" \
	VMPACE_GCOV=y "$here/build-kvm.sh" modules
cp "$obj/virt/lib/irqbypass.ko" "$BUILD/modules-debug/irqbypass.ko"
# gcov needs the .gcno files beside the objects' sources at report time.
echo "$BUILD/kmod-debug" > "$BUILD/modules-debug/gcov-objdir"
