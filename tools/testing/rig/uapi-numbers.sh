#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The pacing uAPI's numbers (exit reason, capability, ioctl numbers) are
# provisional: check that none of them is taken in a kernel's own
# <linux/kvm.h>, so that userspace built against that kernel's headers can
# never mistake one of ours for one of its own.
#
# Usage: uapi-numbers.sh PATCHED-kvm.h TARGET-kvm.h...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

ours=${1:?usage: uapi-numbers.sh PATCHED-kvm.h TARGET-kvm.h...}
shift
[ $# -gt 0 ] || die "usage: uapi-numbers.sh PATCHED-kvm.h TARGET-kvm.h..."

num() { # name -> its value in $ours
	local v
	v=$(sed -n "s/^#define[[:space:]]\+$1[[:space:]]\+\([0-9]\+\)[[:space:]]*\$/\1/p" "$ours")
	[ -n "$v" ] || die "no '#define $1 <number>' in $ours"
	echo "$v"
}
ioctl_nr() { # name -> its ioctl number in $ours, lower-case hex
	local v
	v=$(sed -n "s/^#define[[:space:]]\+$1[[:space:]]\+_IO[WR]*(KVMIO, *\(0x[0-9a-fA-F]\+\).*/\1/p" "$ours")
	[ -n "$v" ] || die "no '#define $1 _IO..(KVMIO, 0x..)' in $ours"
	printf '0x%02x\n' "$v"
}

exit_pace=$(num KVM_EXIT_PACE)
cap_pace=$(num KVM_CAP_PACE)
nr_set=$(ioctl_nr KVM_SET_PACE_DEADLINE)
nr_get=$(ioctl_nr KVM_GET_PACE_STATE)

bad=0
for t in "$@"; do
	[ -f "$t" ] || die "no $t"
	if grep -q 'KVM_CAP_PACE\b' "$t"; then
		die "$t is a patched header: give the target kernel's own <linux/kvm.h>"
	fi
	while read -r name value; do
		echo "uapi-numbers: KVM_EXIT_PACE = $exit_pace is $name in $t" >&2
		bad=1
	done < <(sed -n "s/^#define[[:space:]]\+\(KVM_EXIT_[A-Z0-9_]\+\)[[:space:]]\+$exit_pace[[:space:]]*\$/\1 $exit_pace/p" "$t")
	while read -r name value; do
		echo "uapi-numbers: KVM_CAP_PACE = $cap_pace is $name in $t" >&2
		bad=1
	done < <(sed -n "s/^#define[[:space:]]\+\(KVM_CAP_[A-Z0-9_]\+\)[[:space:]]\+$cap_pace[[:space:]]*\$/\1 $cap_pace/p" "$t")
	for nr in "$nr_set" "$nr_get"; do
		if grep -iqE "KVMIO, *$nr\b" "$t"; then
			echo "uapi-numbers: ioctl number $nr is used in $t:" >&2
			grep -iE "KVMIO, *$nr\b" "$t" | sed 's/^/  /' >&2
			bad=1
		fi
	done
done
[ "$bad" = 0 ] || die "the pacing uAPI numbers collide with the target kernel's: change them in kernel/patches/0001-*"
echo "uapi-numbers: exit $exit_pace, capability $cap_pace, ioctls $nr_set/$nr_get are free in $*"
