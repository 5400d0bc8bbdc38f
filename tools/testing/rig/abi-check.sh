#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ABI check for out-of-tree KVM modules.
#
# The target vmlinux was compiled against the pristine KVM headers: built-in
# code such as kernel/entry/kvm.c (vcpu->run, vcpu->stat.generic.signal_exits)
# or the Intel perf driver (struct kvm_pmu) uses their layout.  Every member of
# every KVM structure that vmlinux's BTF describes must therefore keep its
# offset in the modules we build; new members may only be appended.
#
# Usage: abi-check.sh OBJECT [VMLINUX]
#   OBJECT   a module or object with DWARF for the structures (kvm.ko)
#   VMLINUX  ELF with .BTF of the target kernel, or /sys/kernel/btf/vmlinux
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"

obj=${1:?usage: abi-check.sh OBJECT [VMLINUX]}
KERNEL_SRC=${KERNEL_SRC:-/usr/src/linux-headers-$KREL}
vmlinux=${2:-${ABI_VMLINUX:-}}
if [ -z "$vmlinux" ]; then
	if [ -e "$KERNEL_SRC/vmlinux" ]; then
		vmlinux=$KERNEL_SRC/vmlinux
	elif [ -e /sys/kernel/btf/vmlinux ] &&
	     [ "$(realpath "$KERNEL_SRC")" = "$(realpath "/lib/modules/$(uname -r)/build")" ]; then
		vmlinux=/sys/kernel/btf/vmlinux
	else
		echo "abi-check: error: no BTF for the target kernel (no vmlinux in $KERNEL_SRC," \
		     "and it is not the running kernel): install its image package (its" \
		     "/boot/vmlinuz-<release>) or set ABI_VMLINUX= to an ELF vmlinux of it" >&2
		exit 1
	fi
fi
command -v pahole >/dev/null || { echo "abi-check: error: pahole missing (dwarves)" >&2; exit 1; }

structs=${ABI_STRUCTS:-"kvm_vcpu kvm kvm_vcpu_stat kvm_vcpu_stat_generic kvm_vm_stat
	 kvm_vm_stat_generic kvm_vcpu_arch kvm_arch kvm_pmu kvm_pmc kvm_run
	 kvm_mmu kvm_memory_slot kvm_memslots kvm_dirty_ring"}

# pahole text -> "member.path offset" lines; nested aggregates extend the path
# (anonymous ones add nothing), repeated names are numbered.
layout() {
	awk '
	/^struct [a-z_0-9]+ \{/ { depth = 0; next }
	/^[ \t]*(struct|union)[ \t]*\{[ \t]*$/ { stack[++depth] = ""; next }
	/^[ \t]*\}/ { if (depth > 0) depth--; next }
	/^[ \t]*\/\*/ { next }
	/\/\*[ \t]*[0-9]+(:[ \t]*[0-9]+)?[ \t]+[0-9]+[ \t]*\*\// {
		line = $0
		decl = line; sub(/;[^;]*$/, "", decl); sub(/[ \t]+__attribute__.*/, "", decl)
		if (match(decl, /\(\*[a-zA-Z_0-9]+\)/)) {
			name = substr(decl, RSTART + 2, RLENGTH - 3)
		} else {
			sub(/:[ \t]*[0-9]+[ \t]*$/, "", decl)
			sub(/(\[[0-9]*\])+[ \t]*$/, "", decl)
			n = split(decl, w, /[ \t*]+/); name = w[n]
		}
		off = line; sub(/.*\/\*[ \t]*/, "", off); sub(/[^0-9].*/, "", off)
		path = ""
		for (i = 1; i <= depth; i++) if (stack[i] != "") path = path stack[i] "."
		key = path name
		seen[key]++
		if (seen[key] > 1) key = key "#" seen[key]
		print key, off
	}'
}

fail=0
checked=0
for s in $structs; do
	base=$(pahole -F btf -C "$s" "$vmlinux" 2>/dev/null | layout)
	[ -n "$base" ] || continue
	ours=$(pahole -F dwarf -C "$s" "$obj" 2>/dev/null | layout)
	if [ -z "$ours" ]; then
		echo "abi-check: error: struct $s: no DWARF in $obj" >&2
		fail=1
		continue
	fi
	checked=$((checked + 1))
	while read -r m off; do
		now=$(awk -v m="$m" '$1 == m { print $2; exit }' <<<"$ours")
		if [ -z "$now" ]; then
			echo "abi-check: error: struct $s: member '$m' (offset $off in vmlinux) is gone" >&2
			fail=1
		elif [ "$now" != "$off" ]; then
			echo "abi-check: error: struct $s: member '$m' moved from offset $off to $now;" \
			     "built-in kernel code uses the pristine layout (append new members" \
			     "at the end of struct kvm_vcpu/struct kvm, or allocate them separately)" >&2
			fail=1
		fi
	done <<<"$base"
done
[ "$checked" -gt 0 ] || { echo "abi-check: error: no KVM structure found in $vmlinux" >&2; exit 1; }
[ "$fail" -eq 0 ] || exit 1
echo "abi-check: $checked structures match $vmlinux"
