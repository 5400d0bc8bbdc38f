#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the test VM's initramfs (busybox + 9p modules + guest-init), cached
# under build/ by kernel release and content; prints its path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"

moddir=/lib/modules/$KREL/kernel
mods=("$moddir/fs/netfs/netfs.ko.xz" "$moddir/net/9p/9pnet.ko.xz"
      "$moddir/net/9p/9pnet_virtio.ko.xz" "$moddir/fs/9p/9p.ko.xz")
need_file /boot/vmlinuz-$KREL "linux-image-$KREL-unsigned $KPKG_VERSION"
need_file /bin/busybox busybox-static
for m in "${mods[@]}"; do need_file "$m" "linux-image-$KREL-unsigned $KPKG_VERSION"; done

key=$(cat "$here/guest-init" /bin/busybox "${mods[@]}" | sha1sum | cut -c1-12)
out=$BUILD/initramfs-$KREL-$key.cpio.gz
if [ ! -e "$out" ]; then
	d=$(mktemp -d "$BUILD/initramfs.XXXXXX")
	trap 'rm -rf "$d" "$d.cpio.gz"' EXIT
	mkdir -p "$d/bin" "$d/proc" "$d/sys" "$d/dev" "$d/lib/modules" "$d/host"
	cp /bin/busybox "$d/bin/busybox"
	cp "$here/guest-init" "$d/init"
	chmod +x "$d/init"
	for m in "${mods[@]}"; do
		b=$(basename "$m" .ko.xz)
		xz -dc "$m" > "$d/lib/modules/$b.ko"
	done
	# Test VMs start in parallel: build privately, rename atomically.
	(cd "$d" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$d.cpio.gz"
	mv -f "$d.cpio.gz" "$out"
fi
echo "$out"
