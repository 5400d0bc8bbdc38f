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
	 { find kernel -type f ! -path 'kernel/patches*/*' | sed 's,^kernel/\(.*\),&\t\1,'
	   for d in tools/testing/selftests/kvm Documentation/virt; do
		[ ! -d "$d" ] || find "$d" -type f
	   done | sed 's,.*,&\t&,'; } | LC_ALL=C sort)
}

# The patch series for the target kernel's base: kernel/patches (Linux
# 6.12, the one mailed upstream) unless target_kernel chose another.
SERIES_DIR=${SERIES_DIR:-$repo/kernel/patches}

# Patches named by the series, in order.
series_patches() {
	local s=$SERIES_DIR/series
	[ -f "$s" ] || return 0
	sed -e 's/#.*//' -e 's/[[:space:]].*//' -e '/^$/d' "$s" |
		sed "s,^,$SERIES_DIR/,"
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
		cat "$repo/tools/testing/rig/versions" "$repo/tools/testing/rig/selftests-pre-6.8.patch"
		overlay_list | while IFS= read -r pair; do
			printf '%s ' "$pair"; sha1sum < "$repo/${pair%%	*}"
		done
		cat "$SERIES_DIR/series" 2>/dev/null
		series_patches | xargs -r cat
	} | sha1sum | cut -d' ' -f1
}

# Headers the modules must take from the patched tree instead of KERNEL_SRC.
changed_headers() {
	{ series_files; overlay_list | cut -f2; } |
		grep -E '^(include|arch/x86/include)/.*\.h$' | LC_ALL=C sort -u || true
}

# The kernel source, extracted once per version ($KSRC_TARBALL, keyed by
# $KPKG_VERSION); prints the path of its tree.
pristine_src() {
	local dir=$BUILD/src-$KPKG_VERSION top
	need_file "$KSRC_TARBALL" "$KSRC_PKG (version $KPKG_VERSION)"
	if [ ! -e "$dir/.extracted" ]; then
		log "extracting $KSRC_TARBALL"
		rm -rf "$dir"
		mkdir -p "$dir"
		tar -C "$dir" -xf "$KSRC_TARBALL"
		touch "$dir/.extracted"
	fi
	top=$(find "$dir" -mindepth 1 -maxdepth 1 -type d)
	[ "$(echo "$top" | wc -l)" = 1 ] && [ -f "$top/Makefile" ] ||
		die "$KSRC_TARBALL: not one kernel source tree"
	echo "$top"
}

# The ELF vmlinux (with its BTF) inside kernel image VMLINUZ, unpacked into
# OUT with the extract-vmlinux of source tree SRC, unless OUT is newer.
unpack_vmlinux() { # vmlinuz out src
	[ -s "$2" ] && [ ! "$1" -nt "$2" ] && return 0
	"$3/scripts/extract-vmlinux" "$1" > "$2.part" && mv "$2.part" "$2" ||
		{ rm -f "$2.part"; return 1; }
}

# Bases a patch series is written for (major.minor): 6.12 in kernel/patches,
# every other one in kernel/patches-<base>.
SUPPORTED_BASES="6.12 6.1"

# apt-get install for the rig's extra kernel packages.  Debian 12's apt
# upgrades every installed binary of the same source package with the one
# asked for ("Upgrading linux-source-6.12 due to linux-headers-6.12.118"):
# installing another kernel's headers must not move the pinned
# linux-source-6.12 off $KPKG_VERSION.  A kernel's headers depend on its
# image, which these machines never boot: INITRD=No has the kernel hook skip
# generating its initramfs (about half a minute each).
APT_INSTALL="env INITRD=No apt-get install -y -q --no-install-recommends -o APT::Get::Upgrade-By-Source-Package=false"

have_pkg() { # package version: installed at that version
	[ "$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null)" = "ii  $2" ]
}

# Debian's linux-source-X.Y tarball of package version $2 (X.Y = $1): the
# installed one if it is that version, else fetched with apt-get download
# into $BUILD/debs once.  Prints its path.
debian_source_tarball() { # base version
	local pkg=linux-source-$1 ver=$2 t tmp
	t=$BUILD/debs/$pkg-$ver.tar.xz
	if have_pkg "$pkg" "$ver"; then
		echo "/usr/src/$pkg.tar.xz"
		return
	fi
	if [ ! -e "$t" ]; then
		log "fetching $pkg $ver (the source of the target kernel)"
		mkdir -p "$BUILD/debs"
		tmp=$(mktemp -d "$BUILD/debs/get.XXXXXX")
		(cd "$tmp" && apt-get download -q "$pkg=$ver" > "$tmp/apt.log" 2>&1) || {
			sed 's/^/  apt-get: /' "$tmp/apt.log" >&2
			rm -rf "$tmp"
			die "cannot fetch $pkg version $ver, the source of the target kernel" \
			    "(above: apt-get download). Debian's mirrors keep only the newest" \
			    "version: install the newest kernel, or give the source as" \
			    "KERNEL_TARBALL (README.md, \"Kernels\")"
		}
		dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -xO "./usr/src/$pkg.tar.xz" > "$t.part" ||
			{ rm -rf "$tmp" "$t.part"; die "no /usr/src/$pkg.tar.xz in $pkg $ver"; }
		mv "$t.part" "$t"
		rm -rf "$tmp"
	fi
	echo "$t"
}

# True if Linux VERSION (x.y.z) is older than $MIN61_VERSION, the oldest 6.1
# the 6.1 series builds on (target_kernel refuses it, make matrix says so).
older_than_min61() { # version
	[ "$(printf '%s\n' "$MIN61_VERSION" "$1" | sort -V | head -n 1)" != "$MIN61_VERSION" ]
}

# The kernel the modules are built for: the pinned $KREL unless KVER (a
# kernel release) or KERNEL_SRC (its build tree) names another.  Sets and
# exports KERNEL_SRC; sets TK_REL (its release), TK_VERSION (its upstream
# version), TK_OUT (the build directory for it: $BUILD for the pinned
# version) and, for another version or with KERNEL_TARBALL, KPKG_VERSION and
# KSRC_TARBALL to its source: KERNEL_TARBALL if given (a tarball of exactly
# that version, for kernels not from Debian), else Debian's linux-source of
# the same package version as its linux-headers.  Dies saying what to do on a base without a
# series or without its source.
target_kernel() {
	local base
	if [ -z "${KERNEL_SRC:-}" ]; then
		KERNEL_SRC=/usr/src/linux-headers-${KVER:-$KREL}
		[ -z "${KVER:-}" ] || [ -e "$KERNEL_SRC/Makefile" ] || KERNEL_SRC=/lib/modules/$KVER/build
	fi
	export KERNEL_SRC
	[ -e "$KERNEL_SRC/Makefile" ] ||
		die "no kernel build tree at KERNEL_SRC=$KERNEL_SRC: install the target kernel's" \
		    "headers (Debian: linux-headers-${KVER:-$KREL})"
	# The release modules are built for (vermagic); Debian's 6.1 headers
	# have the upstream version in include/config/kernel.release.
	TK_REL=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' \
		 "$KERNEL_SRC/include/generated/utsrelease.h" 2>/dev/null)
	[ -n "$TK_REL" ] ||
		die "KERNEL_SRC=$KERNEL_SRC is not a prepared kernel build tree (no include/generated/utsrelease.h)"
	[ -z "${KVER:-}" ] || [ "$KVER" = "$TK_REL" ] ||
		die "KERNEL_SRC=$KERNEL_SRC is the build tree of $TK_REL, not of KVER=$KVER"
	TK_VERSION=$(make -s -C "$KERNEL_SRC" kernelversion 2>/dev/null) ||
		die "cannot read the kernel version of $KERNEL_SRC (make kernelversion)"
	base=$(echo "$TK_VERSION" | cut -d. -f1-2)
	case " $SUPPORTED_BASES " in
	*" $base "*) ;;
	*) die "kernel $TK_REL is Linux $TK_VERSION: vmpace's patch series are for Linux" \
	       "$SUPPORTED_BASES (Debian 12: linux-image-6.12.*-amd64, linux-image-6.1.0-*-amd64);" \
	       "no series for $base yet. See README.md, \"Kernels\"." ;;
	esac
	if [ "$base" = 6.1 ] && older_than_min61 "$TK_VERSION"; then
		die "kernel $TK_REL is Linux $TK_VERSION: kernel/patches-6.1 needs Linux" \
		    "$MIN61_VERSION or later (it uses struct kvm_vcpu's wants_to_run and" \
		    "GENL_MCAST_CAP_SYS_ADMIN, which 6.1's stable releases got after 6.1.176;" \
		    "Debian 12: linux-image-6.1.0-53-amd64 or later). See README.md, \"Linux 6.1\"."
	fi
	[ "$base" = 6.12 ] || SERIES_DIR=$repo/kernel/patches-$base
	TK_OUT=$BUILD
	# The pinned kernel, or one built from its source (the debug test
	# kernel: an O= build tree whose 'source' is the pinned source).
	if [ -z "${KERNEL_TARBALL:-}" ] && [ "$TK_VERSION" = "${KPKG_VERSION%%-*}" ] &&
	   { [ "$TK_REL" = "$KREL" ] ||
	     case $(realpath "$KERNEL_SRC/source" 2>/dev/null) in
	     "$BUILD/src-$KPKG_VERSION/"*) true ;; *) false ;; esac; }; then
		# its installed linux-source, else fetched (a DKMS build on a
		# machine without it)
		have_pkg "$KSRC_PKG" "$KPKG_VERSION" ||
			KSRC_TARBALL=$(debian_source_tarball "$base" "$KPKG_VERSION")
		return 0
	fi
	TK_OUT=$BUILD/kver/$TK_REL
	if [ -n "${KERNEL_TARBALL:-}" ]; then
		need_file "$KERNEL_TARBALL" "the source tarball of Linux $TK_VERSION (KERNEL_TARBALL)"
		KSRC_TARBALL=$(realpath "$KERNEL_TARBALL")
		KPKG_VERSION=$TK_VERSION-$(sha1sum < "$KSRC_TARBALL" | cut -c1-12)
		KSRC_PKG=$(basename "$KSRC_TARBALL")
		return 0
	fi
	KPKG_VERSION=$(dpkg-query -W -f='${Version}' "linux-headers-$TK_REL" 2>/dev/null) ||
		die "kernel $TK_REL (Linux $TK_VERSION) is not a Debian kernel: give its" \
		    "source as KERNEL_TARBALL=<linux-$TK_VERSION.tar.xz> (README.md, \"Kernels\")"
	KSRC_PKG=linux-source-$base
	KSRC_TARBALL=$(debian_source_tarball "$base" "$KPKG_VERSION")
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

# tap_status NAME FILE -> pass | skip | fail | none: the result of test NAME
# in vm-run.sh TAP FILE (lines "ok N - vm: NAME ...").
tap_status() {
	awk -v n="$1" '
	/^(not )?ok / {
		t = $0; sub(/^(not )?ok [0-9]* - [a-z0-9.-]+: /, "", t); sub(/ #.*/, "", t)
		if (t != n) next
		if ($0 ~ /^not ok/) s = "fail"; else if ($0 ~ /# SKIP/) s = "skip"; else s = "pass"
		print s; found = 1; exit
	}
	END { if (!found) print "none" }' "$2"
}

# vm-run.sh ARGS... as test VM NAME, its TAP into $C/NAME.tap and its
# messages into $C/NAME.err; a test VM that could not run is a failure.
run_vm() { # name, then vm-run.sh arguments
	local name=$1; shift
	"$repo/tools/testing/rig/vm-run.sh" --name "$name" "$@" > "$C/$name.tap" 2>"$C/$name.err" ||
		grep -q '^\(not \)\?ok' "$C/$name.tap" ||
		echo "not ok - $name: test VM run (see $C/$name.err)" >> "$C/$name.tap"
}

# A "no result" failure for each test of ours in vm-run.sh LIST that test VM
# NAME's TAP_FILE has no line for (upstream selftests are judged apart).
no_result_tap() { # list tap_file name
	local t
	grep -v '^upstream/' "$1" | cut -f1 | while IFS= read -r t; do
		[ "$(tap_status "$t" "$2")" != none ] || echo "not ok - $3: $t # no result"
	done
}

# The regression verdict, as TAP, of each upstream selftest in LIST: one that
# passes with the distro modules (DISTRO_TAP) must pass with ours (OURS_TAP).
regression_tap() { # list distro_tap ours_tap
	local name d o
	while IFS=$'\t' read -r name _; do
		d=$(tap_status "$name" "$2")
		o=$(tap_status "$name" "$3")
		if [ "$d" = none ] || [ "$o" = none ]; then
			# a test that did not run at all is never a pass or a skip
			echo "not ok - regression: $name # no result: distro '$d', ours '$o'"
		elif [ "$d" = pass ] && [ "$o" = pass ]; then
			echo "ok - regression: $name"
		elif [ "$d" = pass ]; then
			echo "not ok - regression: $name # passes with distro modules, '$o' with ours"
		elif [ "$o" = pass ]; then
			echo "ok - regression: $name # SKIP '$d' with distro modules (passes with ours)"
		else
			echo "ok - regression: $name # SKIP '$d' with distro modules, '$o' with ours"
		fi
	done < "$1"
}

# The end of a check: the last lines of the first failed tests' logs (where
# a CI excerpt that keeps only the last lines still shows why), then
# "N passed, N failed, N skipped" for TAP file ALL; fails if any failed or
# none passed.  A known bug that shows (TAP "not ok ... # TODO") is counted
# apart.
tap_summary() { # all.tap
	local pass skip fail todo vm t lg
	pass=$(grep -E '^ok ' "$1" | grep -vc '# SKIP')
	skip=$(grep -E '^ok ' "$1" | grep -c '# SKIP')
	fail=$(grep -E '^not ok ' "$1" | grep -vc '# TODO')
	todo=$(grep -E '^not ok ' "$1" | grep -c '# TODO')
	grep -E '^not ok ' "$1" | grep -v '# TODO' |
		sed -n 's/^not ok [0-9]* *- \([a-z0-9.-]*\): \([^#]*[^# ]\).*/\1 \2/p' | head -n 4 |
	while read -r vm t; do
		lg=$BUILD/vm/$vm/logs/${t//\//_}.log
		[ -s "$lg" ] || continue
		echo "# --- $vm: $t: the last lines of $lg"
		tail -n 15 "$lg" | cut -c1-200 | sed 's/^/#   /'
		[ ! -s "$BUILD/vm/$vm/stalls" ] ||
			echo "#   (that test VM stalled $(wc -l < "$BUILD/vm/$vm/stalls") time(s) and was kicked: $BUILD/vm/$vm/stalls)"
	done
	echo "results: $(dirname "$1") (per-test logs and dmesg under $BUILD/vm/)"
	[ "$todo" -eq 0 ] || echo "known bugs that showed (TAP TODO, not counted as failures): $todo"
	echo "$pass passed, $fail failed, $skip skipped"
	[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
}

# refused_kernel DIR VERSION MESSAGE: build-kvm.sh refuses a stand-in tree
# of Linux VERSION under DIR with MESSAGE.
refused_kernel() {
	local t=$1/$2 v=$2
	mkdir -p "$t/include/generated"
	printf 'VERSION = %s\nPATCHLEVEL = %s\nSUBLEVEL = %s\nEXTRAVERSION =\nkernelversion:\n\t@echo %s\n' \
		"${v%%.*}" "$(echo "$v" | cut -d. -f2)" "${v##*.}" "$v" > "$t/Makefile"
	echo "#define UTS_RELEASE \"$v-fake\"" > "$t/include/generated/utsrelease.h"
	if KERNEL_SRC=$t "$repo/tools/testing/rig/build-kvm.sh" modules > "$t.log" 2>&1 ||
	   ! grep -qF "$3" "$t.log"; then
		echo "Linux $v: not refused with \"$3\":"
		tail -n 5 "$t.log"
		return 1
	fi
}

# Kernels build-kvm.sh must refuse before kbuild, with a clear error: a
# base with no series (Linux 5.10) and a 6.1 older than the 6.1 series
# needs, each as a stand-in source tree under DIR (only its Makefile and
# utsrelease.h).  Their outputs go to DIR/<version>.log.  make check and
# make matrix run it; on failure it prints what went wrong.
REFUSED_KERNELS_TEST="kernels without a series (Linux 5.10) or too old for theirs (Linux 6.1.176) are refused with a clear error"
refused_kernels() { # dir
	refused_kernel "$1" 5.10.0 "no series for 5.10 yet" &&
	refused_kernel "$1" 6.1.176 "kernel/patches-6.1 needs Linux $MIN61_VERSION or later"
}
