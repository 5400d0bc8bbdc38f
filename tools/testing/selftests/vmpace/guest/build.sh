#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the tiny guest of the demo and the end-to-end tests: Debian's kernel
# with an initramfs whose /init (clock-init.c) prints the guest's clocks.
# Usage: build.sh OUTDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../../../testing/rig/versions"
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
cc=${CC:-gcc}
if [ ! -e "$out/init" ] || [ "$here/clock-init.c" -nt "$out/init" ]; then
	$cc -O2 -Wall -Werror -static -o "$out/init.tmp" "$here/clock-init.c"
	mv "$out/init.tmp" "$out/init"
fi
if [ ! -e "$out/initramfs.cpio.gz" ] || [ "$out/init" -nt "$out/initramfs.cpio.gz" ] ||
   [ "$0" -nt "$out/initramfs.cpio.gz" ]; then
	d=$(mktemp -d)
	trap 'rm -rf "$d"' EXIT
	mkdir -p "$d/dev" "$d/proc" "$d/sys" "$d/lib"
	mknod "$d/dev/console" c 5 1
	cp "$out/init" "$d/init"
	# virtio_net and what it needs, for vmpace.udp= (the NIC's round trips)
	for m in net/core/failover drivers/net/net_failover drivers/net/virtio_net; do
		f=/lib/modules/$KREL/kernel/$m.ko.xz
		[ -f "$f" ] || { echo "build.sh: $f is missing (linux-image-$KREL)" >&2; exit 1; }
		cp "$f" "$d/lib/"
	done
	(cd "$d" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$out/initramfs.cpio.gz.tmp"
	mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
fi
