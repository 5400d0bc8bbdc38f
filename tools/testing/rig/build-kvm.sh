#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the patched KVM modules out of tree:
#   1. extract Debian's linux-source tarball once (cached by version),
#   2. make a patched tree: pristine (hard links) + our new files + quilt series,
#   3. sync the KVM directories into the M= build dir (content-compared, so an
#      unchanged file keeps its mtime and kbuild stays incremental),
#   4. build kvm.ko, kvm-amd.ko, kvm-intel.ko against $KERNEL_SRC,
#   5. check the ABI against the target vmlinux, strip, install into build/modules.
#
# The target kernel is the pinned one (tools/testing/rig/versions) unless
# KVER=<release> or KERNEL_SRC=<build tree> names another Linux 6.12 or 6.1: then
# its source is Debian's linux-source of the same version (fetched once) or
# KERNEL_TARBALL, and everything goes to build/kver/<release>/.
#
# Usage: build-kvm.sh [tree|modules|outdir]   (default: modules; outdir
#        prints where the modules for the target kernel go)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
. "$here/versions"
. "$here/lib.sh"

what=${1:-modules}
JOBS=${JOBS:-$(nproc)}
target_kernel
mkdir -p "$TK_OUT"
missing=
for t in quilt rsync pahole make gcc xz; do
	command -v "$t" > /dev/null || missing+=" $t"
done
[ -z "$missing" ] ||
	die "missing build tools:$missing (Debian: apt-get install quilt rsync dwarves make gcc xz-utils)"
out=${MODULES_OUT:-$TK_OUT/modules}
if [ "$what" = outdir ]; then
	echo "$out"
	exit 0
fi
[ "$TK_OUT" = "$BUILD" ] || log "target kernel $TK_REL (Linux $TK_VERSION, source $KSRC_PKG $KPKG_VERSION)"

# --- 1. pristine source, extracted once per version ----------------------------
pristine=$(pristine_src)
[ "$(make -s -C "$pristine" kernelversion)" = "$TK_VERSION" ] ||
	die "$KSRC_TARBALL is Linux $(make -s -C "$pristine" kernelversion), not $TK_VERSION (the target kernel)"

# --- 2. patched tree, regenerated when our inputs change ---------------------
tree=$TK_OUT/tree
stamp="$(overlay_stamp) $KPKG_VERSION"
if [ "$(cat "$tree/.vmpace-stamp" 2>/dev/null)" != "$stamp" ]; then
	log "patched tree: overlay + ${SERIES_DIR#"$repo"/}/series"
	rm -rf "$tree"
	cp -al "$pristine" "$tree"
	overlay_list | while IFS= read -r pair; do
		src=${pair%%	*} dst=${pair#*	}
		if [ -e "$pristine/$dst" ]; then
			die "$src would replace upstream $dst: change upstream files with a patch in kernel/patches"
		fi
		mkdir -p "$(dirname "$tree/$dst")"
		# cp to a fresh name: never write through a hard link into pristine
		cp "$repo/$src" "$tree/$dst"
	done
	if [ -s "$SERIES_DIR/series" ]; then
		(cd "$tree" && QUILT_PATCHES="$SERIES_DIR" QUILT_PC=.pc \
			quilt push -a -q --fuzz=0 >/dev/null) ||
			die "${SERIES_DIR#"$repo"/}/series does not apply to $KSRC_PKG $KPKG_VERSION"
	fi
	# The kselftests are built from the 6.12 tree and run on 6.1 as well.
	if [ "$SERIES_DIR" = "$repo/kernel/patches" ]; then
		patch -d "$tree" -p1 -s --fuzz=0 --no-backup-if-mismatch \
			< "$here/selftests-pre-6.8.patch" ||
			die "tools/testing/rig/selftests-pre-6.8.patch does not apply to $KSRC_PKG $KPKG_VERSION"
	fi
	echo "$stamp" > "$tree/.vmpace-stamp"
fi
# Our provisional uAPI numbers must be free in the target kernel's headers.
targets=("$pristine/include/uapi/linux/kvm.h")
for h in "$KERNEL_SRC/include/uapi/linux/kvm.h" \
	 "${KERNEL_SRC%-amd64}-common/include/uapi/linux/kvm.h"; do
	[ ! -f "$h" ] || targets+=("$h")
done
"$here/uapi-numbers.sh" "$tree/include/uapi/linux/kvm.h" "${targets[@]}" >&2
[ "$what" = tree ] && exit 0

# --- 3. M= build dir ----------------------------------------------------------
# KMOD (M= build dir) and MODULES_OUT let the debug kernel's build
# (build-debug-kernel.sh) keep its objects apart from the distro kernel's.
kmod=${KMOD:-$TK_OUT/kmod}
mkdir -p "$kmod/virt/kvm" "$kmod/arch/x86/kvm"
protect=(--filter='P *.o' --filter='P .*' --filter='P *.ko' --filter='P *.mod'
	 --filter='P *.mod.c' --filter='P *.order' --filter='P *.symvers'
	 --filter='P kvm-asm-offsets.h' --filter='P kvm-asm-offsets.s'
	 --filter='P Kbuild' --filter='P *.gcno')
rsync -rc --delete "${protect[@]}" "$tree/virt/kvm/" "$kmod/virt/kvm/"
rsync -rc --delete "${protect[@]}" "$tree/arch/x86/kvm/" "$kmod/arch/x86/kvm/"
rsync -c "$here/kbuild/Kbuild.top" "$kmod/Kbuild"
rsync -c "$here/kbuild/Kbuild.x86" "$kmod/arch/x86/kvm/Kbuild"

# Headers changed by the series or added by us override the build tree's copy.
ovl=$(mktemp -d)
trap 'rm -rf "$ovl"' EXIT
changed_headers | while IFS= read -r h; do
	mkdir -p "$ovl/$(dirname "$h")"
	cp "$tree/$h" "$ovl/$h"
done
mkdir -p "$kmod/override"
rsync -rc --delete "$ovl/" "$kmod/override/"
o=$kmod/override
nostdinc="-I$o/arch/x86/include -I$o/include -I$o/arch/x86/include/uapi -I$o/include/uapi"

# --- 4. build -----------------------------------------------------------------
log "building kvm.ko kvm-amd.ko kvm-intel.ko against $KERNEL_SRC"
werror=
[ "${KVM_WERROR:-y}" = y ] && werror=CONFIG_KVM_WERROR=y
make -C "$KERNEL_SRC" M="$kmod" NOSTDINC_FLAGS="$nostdinc" $werror \
	VMPACE_GCOV="${VMPACE_GCOV:-}" \
	-j"$JOBS" ${V:+V=$V} modules

# --- 5. ABI check, strip, install ----------------------------------------------
if [ "${ABI_CHECK:-y}" = y ]; then
	# The target's BTF: its headers' vmlinux (Debian 6.12), else the
	# ELF inside its installed image (Debian's 6.1 headers ship no
	# vmlinux), unpacked once; abi-check.sh also knows the running
	# kernel's /sys/kernel/btf/vmlinux.
	abi_vmlinux=${ABI_VMLINUX:-}
	if [ -z "$abi_vmlinux" ] && [ ! -e "$KERNEL_SRC/vmlinux" ] &&
	   [ "$TK_REL" != "$(uname -r)" ] && [ -e "/boot/vmlinuz-$TK_REL" ]; then
		abi_vmlinux=$TK_OUT/vmlinux
		unpack_vmlinux "/boot/vmlinuz-$TK_REL" "$abi_vmlinux" "$pristine" ||
			die "cannot unpack /boot/vmlinuz-$TK_REL for the ABI check"
	fi
	"$here/abi-check.sh" "$kmod/arch/x86/kvm/kvm.ko" $abi_vmlinux
else
	log "ABI check skipped: ${ABI_CHECK}"
fi
mkdir -p "$out"
for m in kvm kvm-amd kvm-intel; do
	strip --strip-debug -o "$out/$m.ko" "$kmod/arch/x86/kvm/$m.ko"
done
log "modules in $out"
