#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make deb': the Debian packages vmpace-dkms (module sources, the series
# and the build scripts; DKMS builds the modules on install), vmpace (the
# tool and its man page), libvmpace0 and libvmpace-dev (the simulator's
# library), into build/deb/, checked with lintian.  The
# version is 0.1.<commit time, YYYYMMDDhhmm>.  As root, installs the
# packaging tools it needs (debhelper, dh-dkms, dkms, lintian, fakeroot).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/tools/testing/rig/versions"
. "$repo/tools/testing/rig/lib.sh"

UAPI=${UAPI:-$BUILD/uapi}
need_file "$UAPI/include/linux/kvm.h" "the patched uAPI headers ('make headers')"

tools=(debhelper dh-dkms dkms lintian fakeroot libnl-genl-3-dev pkg-config)
missing=()
for p in "${tools[@]}"; do
	[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]} (run 'make deb' as root once)"
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${missing[@]}" > "$BUILD/deb-tools.log" 2>&1 ||
		die "cannot install ${missing[*]}: see $BUILD/deb-tools.log"
fi

when=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
# A work tree with changes is newer than its commit: its own version.
[ -z "$(git -C "$repo" status --porcelain -uno 2>/dev/null)" ] || when=$(date +%s)
ver=0.1.$(date -u -d "@$when" +%Y%m%d%H%M)
D=$BUILD/deb
src=$D/vmpace-$ver
rm -rf "$D"
mkdir -p "$src"

# The package sources: the files git tracks (as they are in the work tree).
parts=(kernel tools/vmpace tools/testing/rig tools/testing/selftests/kvm Documentation
       tools/packaging)
(cd "$repo" && git ls-files -z -- "${parts[@]}" | cpio -0pdm --quiet "$src") ||
	die "cannot copy the sources (a git checkout is needed)"
cp -a "$repo/tools/packaging/debian" "$src/debian"
mkdir -p "$src/uapi"
cp -a "$UAPI/include" "$src/uapi/"
cat > "$src/debian/changelog" <<EOT
vmpace ($ver) bookworm; urgency=medium

  * Built by make deb from $(git -C "$repo" describe --always --dirty 2>/dev/null || echo "a source tree").

 -- vmpace maintainers <maintainers@vmpace.example>  $(date -u -R -d "@$when")
EOT

log "building vmpace-dkms, vmpace, libvmpace0 and libvmpace-dev $ver"
(cd "$src" && dpkg-buildpackage -b -us -uc) > "$D/build.log" 2>&1 ||
	{ tail -n 30 "$D/build.log" >&2; die "dpkg-buildpackage failed: see $D/build.log"; }
log "lintian"
lintian --fail-on error,warning \
	"$D"/*.changes > "$D/lintian.log" 2>&1 ||
	{ cat "$D/lintian.log" >&2; die "lintian: see $D/lintian.log"; }
sed 's/^/lintian: /' "$D/lintian.log" >&2
ls "$D"/*.deb
