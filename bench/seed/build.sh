#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the benchmark's baseline: Debian's QEMU 7.2 source (pinned in
# tools/testing/rig/versions) with our port of the -external_sim feature
# (external-sim.patch), x86_64-softmmu with KVM only.  Cached under
# $BUILD/seed-qemu/ by source version and patch; prints the binary's path.
# Needs root the first time (build dependencies, from Debian's archive).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
rig=$repo/tools/testing/rig
. "$rig/versions"
. "$rig/lib.sh"

ver=$SEED_QEMU_SRC_VERSION
patch=$here/external-sim.patch
conf=(--target-list=x86_64-softmmu --enable-kvm --disable-tcg
      --without-default-features --disable-docs --disable-user --disable-tools
      --disable-install-blobs --firmwarepath=/usr/share/qemu:/usr/share/seabios)
key=$( { echo "$ver"; cat "$patch"; echo "${conf[*]}"; } | sha256sum | cut -c1-12)
top=$BUILD/seed-qemu
out=$top/$key
bin=$out/build/qemu-system-x86_64
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

deps=(dpkg-dev meson ninja-build pkg-config libglib2.0-dev libpixman-1-dev zlib1g-dev
      libfdt-dev python3 qemu-system-data seabios)
missing=()
for p in "${deps[@]}"; do
	[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] ||
		die "the seed QEMU build needs ${missing[*]}: run 'make bench' as root once"
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${missing[@]}" >&2
fi

# Debian's source package (apt checks its hashes), through an apt configuration of our own (a
# deb-src entry for bookworm and its security archive) so that the
# machine's apt sources stay as they are.
apt=$top/apt
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$top/dl"
printf 'deb-src http://deb.debian.org/debian bookworm main\ndeb-src http://deb.debian.org/debian-security bookworm-security main\n' \
	> "$apt/sources.list"
A=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
   -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Debug::NoLocking=1
   -o APT::Sandbox::User=root)
dsc=$top/dl/qemu_${ver#*:}.dsc
if [ ! -e "$dsc" ]; then
	log "downloading Debian's qemu $ver source"
	apt-get "${A[@]}" -q update >&2
	avail=$(apt-cache "${A[@]}" showsrc qemu | sed -n 's/^Version: //p')
	grep -qxF "$ver" <<< "$avail" ||
		die "Debian's archive no longer serves qemu $ver source (pinned in tools/testing/rig/versions)"
	(cd "$top/dl" && apt-get "${A[@]}" -q source --download-only "qemu=$ver" >&2)
fi

rm -rf "$out"
mkdir -p "$out"
log "extracting and patching"
dpkg-source -q --no-check -x "$dsc" "$out/src" >&2
(cd "$out/src" && patch -p1 --quiet --forward < "$patch") ||
	die "$patch does not apply to qemu $ver"
mkdir -p "$out/build"
log "configuring (${conf[*]})"
(cd "$out/build" && ../src/configure "${conf[@]}" > configure.log 2>&1) ||
	{ tail -n 30 "$out/build/configure.log" >&2; die "configure failed, see $out/build/configure.log"; }
log "building qemu-system-x86_64 (several minutes)"
(cd "$out/build" && ninja qemu-system-x86_64 > ninja.log 2>&1) ||
	{ tail -n 30 "$out/build/ninja.log" >&2; die "build failed, see $out/build/ninja.log"; }
# keep the binary and the cache small: sources are not needed any more
rm -rf "$out/src"
# what would hang the simulator for ever is refused, before any guest runs
for o in "-daemonize" "-incoming defer"; do
	# shellcheck disable=SC2086
	if timeout 20 "$bin" -external_sim sock=0 $o -machine none -nodefaults -display none \
		< /dev/null > "$out/refuse.log" 2>&1 ||
	   ! grep -q 'cannot be combined with -incoming or -daemonize' "$out/refuse.log"; then
		cat "$out/refuse.log" >&2
		rm -rf "$out"
		die "the seed QEMU did not refuse -external_sim with $o"
	fi
done
echo "$bin"
