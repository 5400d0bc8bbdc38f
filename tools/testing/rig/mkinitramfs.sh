#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the test VM's initramfs (busybox + the 9p modules of the kernel it
# boots + guest-init), cached under build/ by kernel release and content;
# prints its path.
#
# Usage: mkinitramfs.sh [RELEASE]   (default: the pinned kernel, $KREL)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"

rel=${1:-$KREL}
pkg="linux-image-$rel"
[ "$rel" != "$KREL" ] || pkg="linux-image-$KREL-unsigned $KPKG_VERSION"
need_file "/boot/vmlinuz-$rel" "$pkg"
need_file /bin/busybox busybox-static

# What 9p over virtio needs, in load order (Debian's 6.12 has virtio built
# in, 6.1 has it as modules); built-in ones are skipped.
mods=()
for m in virtio_pci 9pnet_virtio 9p; do
	deps=$(modprobe -S "$rel" --show-depends "$m" 2>&1) ||
		die "modprobe -S $rel: $m: $deps (install $pkg)"
	while read -r what path _; do
		[ "$what" = insmod ] || continue
		case " ${mods[*]} " in *" $path "*) ;; *) mods+=("$path") ;; esac
	done <<<"$deps"
done
[ ${#mods[@]} -gt 0 ] || die "$rel: no 9p modules found"

key=$(cat "$here/guest-init" /bin/busybox "${mods[@]}" | sha1sum | cut -c1-12)
out=$BUILD/initramfs-$rel-$key.cpio.gz
if [ ! -e "$out" ]; then
	d=$(mktemp -d "$BUILD/initramfs.XXXXXX")
	trap 'rm -rf "$d" "$d.cpio.gz"' EXIT
	mkdir -p "$d/bin" "$d/proc" "$d/sys" "$d/dev" "$d/lib/modules" "$d/host"
	cp /bin/busybox "$d/bin/busybox"
	cp "$here/guest-init" "$d/init"
	chmod +x "$d/init"
	for m in "${mods[@]}"; do
		b=$(basename "$m"); b=${b%.xz}; b=${b%.ko}
		case $m in
		*.xz) xz -dc "$m" > "$d/lib/modules/$b.ko" ;;
		*) cp "$m" "$d/lib/modules/$b.ko" ;;
		esac
		echo "$b" >> "$d/lib/modules/order"
	done
	# Test VMs start in parallel: build privately, rename atomically.
	(cd "$d" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$d.cpio.gz"
	mv -f "$d.cpio.gz" "$out"
fi
echo "$out"
