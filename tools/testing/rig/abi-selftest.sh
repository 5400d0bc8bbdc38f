#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Prove that abi-check.sh catches a field inserted in the middle of struct
# kvm_vcpu (before 'stat', which kernel/entry/kvm.c writes) and that it names
# the moved field; and that the same probe with the pristine header passes.
# Likewise for uapi-numbers.sh: our numbers pass against the pristine
# <linux/kvm.h>, and a kvm.h that took one of them is rejected by name.
# Prints TAP.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"
KERNEL_SRC=${KERNEL_SRC:-/usr/src/linux-headers-$KREL}
tree=$BUILD/tree
[ -d "$tree" ] || die "no patched tree: run 'make modules' first"

work=$BUILD/abi-selftest
rm -rf "$work"
build_probe() { # dir header-to-use
	local d=$1
	mkdir -p "$d/override/include/linux"
	cp "$here/abi-probe/abi_probe.c" "$here/abi-probe/Kbuild" "$d/"
	cp "$2" "$d/override/include/linux/kvm_host.h"
	make -s -C "$KERNEL_SRC" M="$d" NOSTDINC_FLAGS="-I$d/override/include" \
		abi_probe.o >"$d/build.log" 2>&1 ||
		{ cat "$d/build.log" >&2; die "probe build failed"; }
}

echo "1..4"
build_probe "$work/good" "$tree/include/linux/kvm_host.h"
if ABI_STRUCTS="kvm_vcpu kvm" "$here/abi-check.sh" "$work/good/abi_probe.o" \
	>"$work/good.out" 2>&1; then
	echo "ok 1 - abi-check accepts the series' kvm_host.h"
else
	sed 's/^/# /' "$work/good.out"; echo "not ok 1 - abi-check accepts the series' kvm_host.h"
fi

# Insert a member right after 'struct kvm_vcpu_arch arch;' in struct kvm_vcpu.
mkdir -p "$work/bad"
awk '/^struct kvm_vcpu \{/ { invcpu = 1 }
     { print }
     invcpu && /struct kvm_vcpu_arch arch;/ { print "\tu64 vmpace_abi_selftest_inserted;"; invcpu = 0 }' \
	"$tree/include/linux/kvm_host.h" > "$work/bad/kvm_host.h"
grep -q vmpace_abi_selftest_inserted "$work/bad/kvm_host.h" || die "could not break kvm_host.h"
build_probe "$work/bad" "$work/bad/kvm_host.h"
if ABI_STRUCTS="kvm_vcpu kvm" "$here/abi-check.sh" "$work/bad/abi_probe.o" \
	>"$work/bad.out" 2>&1; then
	echo "not ok 2 - abi-check rejects a member inserted before kvm_vcpu.stat # it passed"
elif grep -q "struct kvm_vcpu: member 'stat' moved" "$work/bad.out"; then
	sed -n 's/^/# /p' "$work/bad.out" | head -3
	echo "ok 2 - abi-check rejects a member inserted before kvm_vcpu.stat, naming it"
else
	sed 's/^/# /' "$work/bad.out"
	echo "not ok 2 - abi-check rejects a member inserted before kvm_vcpu.stat, naming it"
fi

pristine=$BUILD/src-$KPKG_VERSION/linux-source-6.12
if "$here/uapi-numbers.sh" "$tree/include/uapi/linux/kvm.h" \
	"$pristine/include/uapi/linux/kvm.h" > "$work/numbers.out" 2>&1; then
	echo "ok 3 - the pacing uAPI numbers are free in pristine <linux/kvm.h>"
else
	sed 's/^/# /' "$work/numbers.out"
	echo "not ok 3 - the pacing uAPI numbers are free in pristine <linux/kvm.h>"
fi
exit_pace=$(sed -n 's/^#define KVM_EXIT_PACE *\([0-9]*\)$/\1/p' "$tree/include/uapi/linux/kvm.h")
nr=$(sed -n 's/^#define KVM_GET_PACE_STATE.*KVMIO, *\(0x[0-9a-f]*\).*/\1/p' "$tree/include/uapi/linux/kvm.h")
sed -e "s/^#define KVM_EXIT_NOTIFY .*/&\n#define KVM_EXIT_NEWER_THAN_US $exit_pace/" \
    -e "s/^#define KVM_PRE_FAULT_MEMORY.*/&\n#define KVM_NEWER_IOCTL _IOW(KVMIO, $nr, __u64)/" \
	"$pristine/include/uapi/linux/kvm.h" > "$work/newer-kvm.h"
if "$here/uapi-numbers.sh" "$tree/include/uapi/linux/kvm.h" "$work/newer-kvm.h" \
	> "$work/numbers-bad.out" 2>&1; then
	echo "not ok 4 - uapi-numbers rejects a kvm.h that took our exit reason and ioctl # it passed"
elif grep -q "is KVM_EXIT_NEWER_THAN_US" "$work/numbers-bad.out" &&
     grep -q "KVM_NEWER_IOCTL" "$work/numbers-bad.out"; then
	sed -n 's/^/# /p' "$work/numbers-bad.out" | head -4
	echo "ok 4 - uapi-numbers rejects a kvm.h that took our exit reason and ioctl, naming them"
else
	sed 's/^/# /' "$work/numbers-bad.out"
	echo "not ok 4 - uapi-numbers rejects a kvm.h that took our exit reason and ioctl, naming them"
fi
