# SPDX-License-Identifier: GPL-2.0
# Shared helpers for the rig scripts; sourced, not run.
# shellcheck shell=bash

repo=${repo:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
BUILD=${BUILD:-$repo/build}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

need_file() {
	[ -e "$1" ] || die "$1 is missing: install $2 ('make deps' as root does)"
}

# Our files that go into the kernel tree, as "repo-path<TAB>tree-path" lines.
overlay_list() {
	(cd "$repo" &&
	 { find kernel -type f ! -path 'kernel/patches/*' | sed 's,^kernel/\(.*\),&\t\1,'
	   for d in tools/testing/selftests/kvm Documentation/virt; do
		[ ! -d "$d" ] || find "$d" -type f
	   done | sed 's,.*,&\t&,'; } | LC_ALL=C sort)
}

# Patches named by the series, in order.
series_patches() {
	local s=$repo/kernel/patches/series
	[ -f "$s" ] || return 0
	sed -e 's/#.*//' -e 's/[[:space:]].*//' -e '/^$/d' "$s" |
		sed "s,^,$repo/kernel/patches/,"
}

# Upstream files the series modifies or creates.
series_files() {
	series_patches | while IFS= read -r p; do
		sed -n 's,^+++ [^/]*/\([^[:space:]]*\).*,\1,p' "$p"
	done | LC_ALL=C sort -u
}

# Everything that decides the content of the patched tree.
overlay_stamp() {
	{
		cat "$repo/tools/testing/rig/versions"
		overlay_list | while IFS= read -r pair; do
			printf '%s ' "$pair"; sha1sum < "$repo/${pair%%	*}"
		done
		cat "$repo/kernel/patches/series" 2>/dev/null
		series_patches | xargs -r cat
	} | sha1sum | cut -d' ' -f1
}

# Headers the modules must take from the patched tree instead of KERNEL_SRC.
changed_headers() {
	{ series_files; overlay_list | cut -f2; } |
		grep -E '^(include|arch/x86/include)/.*\.h$' | LC_ALL=C sort -u || true
}

# Debian's linux-source, extracted once per package version; prints the path.
pristine_src() {
	local dir=$BUILD/src-$KPKG_VERSION
	need_file "$KSRC_TARBALL" "$KSRC_PKG (version $KPKG_VERSION)"
	if [ ! -e "$dir/.extracted" ]; then
		log "extracting $KSRC_TARBALL"
		rm -rf "$dir"
		mkdir -p "$dir"
		tar -C "$dir" -xJf "$KSRC_TARBALL"
		touch "$dir/.extracted"
	fi
	echo "$dir/linux-source-6.12"
}
