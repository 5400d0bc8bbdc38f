#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install every Debian package the build, the test VM and the tests need.
# The kernel packages are pinned to one version: the modules we build must
# match the kernel the test VM boots, byte for byte in the ABI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"

pinned=(
	"$KSRC_PKG=$KPKG_VERSION"
	"linux-headers-$KREL=$KPKG_VERSION"
	"linux-image-$KREL-unsigned=$KPKG_VERSION"
	"linux-headers-$KREL61=$KPKG61_VERSION"
	"linux-image-$KREL61=$KPKG61_VERSION"
	"libns3-dev=$NS3_PKG_VERSION"
)
# Unpinned: whatever Debian 12 ships.
plain=(
	make gcc-12 gcc libc6-dev binutils bison flex bc cpio xz-utils kmod rsync
	libelf-dev libssl-dev dwarves quilt git perl pkg-config
	qemu-system-x86 busybox-static libnl-3-dev libnl-genl-3-dev
	coreutils util-linux procps socat clang gnuplot-nox jq
)

missing=()
for p in "${pinned[@]}"; do
	name=${p%%=*} want=${p#*=}
	have=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$name" 2>/dev/null || true)
	[ "$have" = "ii  $want" ] || missing+=("$p")
done
for p in "${plain[@]}"; do
	have=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[ "$have" = "ii " ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "deps: all packages present"; exit 0; }

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: run 'make deps' as root to install them" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
for p in "${pinned[@]}"; do
	name=${p%%=*} want=${p#*=}
	if ! apt-cache madison "$name" | awk -F'|' '{gsub(/ /,"",$2); print $2}' |
	     grep -qxF "$want"; then
		echo "deps: $name version $want is not available from the configured" \
		     "Debian archives; the rig is pinned to it (tools/testing/rig/versions)" >&2
		exit 1
	fi
done
# --allow-downgrades: a pin that something else moved (an apt-get install of
# another kernel's headers upgrades linux-source-6.12 with it) is restored.
# INITRD=No: the test VMs boot the kernel images with the rig's own initramfs.
INITRD=No apt-get install -y -q --no-install-recommends --allow-downgrades "${missing[@]}"
