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

# secs and seed of a fuzzer run: FUZZ_SECONDS (else $1), FUZZ_SEED (else random).
fuzz_params() { # default seconds
	secs=${FUZZ_SECONDS:-$1}
	seed=${FUZZ_SEED:-$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')}
}

# The fuzzer's test lines for a debug test VM (make check-debug, make fuzz):
# pace_fuzz for SECONDS with SEED (fuzz-run.sh saves its gcov counters),
# then KVM unloaded, which must leave none of its modules behind.
fuzz_list() { # seconds seed
	local rig=$repo/tools/testing/rig
	printf 'kvm/pace_fuzz\t%s\t%s/fuzz-run.sh %s %s %s\n' "$(($1 + 900))" "$rig" "$1" "$2" \
		"$BUILD/kselftest-kvm"
	printf 'kvm/unload\t120\trmmod kvm_amd kvm irqbypass && ! grep -qE "^(kvm|kvm_amd|irqbypass) " /proc/modules\n'
}

# What the fuzzer's run in test VM NAME said, as TAP comments, and its coverage.
fuzz_summary() { # vm-run name
	local R=$BUILD/vm/$1 f=$BUILD/vm/$1/logs/kvm_pace_fuzz.log
	if [ -e "$f" ]; then
		grep -E '^pace_fuzz:|^self-check|^FAIL|^replay|^minimiser' "$f" | sed 's/^/# /'
		# after a panic, the last round started is the one to replay
		grep -q '^pace_fuzz: .* rounds' "$f" ||
			grep '^round ' "$f" | tail -n 1 | sed 's/^/# last round started: /'
		grep -A200 '^minimal failing sequence' "$f" | sed 's/^/# /' || true
	fi
	[ ! -d "$R/gcov" ] || "$repo/tools/testing/rig/coverage.sh" "$R" | sed 's/^/# /'
}
