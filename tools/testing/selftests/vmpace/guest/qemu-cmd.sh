#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Print the stock-QEMU command line of the demo/test guest, one argument per
# line: qemu-cmd.sh GUEST-DIR NR-VCPUS [PERIOD-MS] [SERIAL] [KERNEL-ARGS]
# Recommended options for paced guests (see vmpace(1)): no HPET (a userspace
# device timer keeps host time), kvm-clock as the guest clocksource.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../../../testing/rig/versions"
guest=${1:?GUEST-DIR} smp=${2:-1} period=${3:-20} serial=${4:-stdio} extra=${5:-}
printf '%s\n' qemu-system-x86_64 -enable-kvm -cpu host,-xsave -m 256 -smp "$smp" \
	-display none -nodefaults -no-hpet -monitor none -serial "$serial" -no-reboot \
	-kernel "/boot/vmlinuz-$KREL" -initrd "$guest/initramfs.cpio.gz" \
	-append "console=ttyS0 quiet panic=-1 clocksource=kvm-clock vmpace.period=$period${extra:+ $extra}"
