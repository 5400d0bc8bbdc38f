#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make matrix': the patch series against every Debian 12 kernel source the
# configured archives serve.  For each linux-source-6.12 version: the series
# applies (quilt, no fuzz), kvm.ko kvm-amd.ko kvm-intel.ko build with
# KVM_WERROR=y against that kernel's linux-headers, and the ABI check passes
# against its vmlinux; the same for each linux-source-6.1 version (Debian
# 12's default kernel) from $MIN61_VERSION on with kernel/patches-6.1, the
# ABI check against the vmlinux inside its linux-image package (fetched,
# not installed); older 6.1 versions get a row saying they are refused.  A
# base without a series, or a 6.1 older than that, must fail with a clear
# error, not in kbuild.
#
# As root, installs the linux-headers package of each version (pulls its
# -common and linux-kbuild); otherwise a version whose headers are missing
# is reported as skipped.  Sources are fetched once into build/debs; the
# extracted trees of the non-pinned versions are removed after each build
# (1.6 GB each).  Writes build/matrix/{matrix.md,matrix.tap}; ends with
# "N passed, N failed, N skipped".
#
# MATRIX_NEWEST=N builds only the N newest versions of each base and the
# pinned ones; the others get a row saying so and count as skipped.  CI runs
# MATRIX_NEWEST=1: the whole matrix (about 13 minutes on 2 cores, most of
# it one build per version) does not fit CI's 90 minutes beside the rest.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"

M=$BUILD/matrix
rm -rf "$M"
mkdir -p "$M/logs"
tap=$M/matrix.tap md=$M/matrix.md
: > "$tap"

versions_of() { # package -> its versions in the archives, newest first
	apt-cache madison "$1" 2>/dev/null | awk -F'|' '{ gsub(/ /, "", $2); print $2 }' |
		sort -Vru
}
# Install package=version as root; 1 if not root or not possible.
get_pkg() { # package version log
	have_pkg "$1" "$2" && return 0
	[ "$(id -u)" -eq 0 ] || return 1
	DEBIAN_FRONTEND=noninteractive $APT_INSTALL "$1=$2" >> "$3" 2>&1
}

[ "$(id -u)" -ne 0 ] || apt-get update -q > /dev/null 2>&1 ||
	log "apt-get update failed: using the package lists as they are"
v612=$(versions_of linux-source-6.12)
v61=$(versions_of linux-source-6.1)
[ -n "$v612" ] || die "no linux-source-6.12 in the configured Debian archives (bookworm-security?)"

{
echo "| kernel source | kernel release | series applies | builds (KVM_WERROR=y) | ABI check | time |"
echo "| --- | --- | --- | --- | --- | --- |"
} > "$md"
n=0 pass=0 fail=0 skip=0
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$@" >> "$md"; }
result() { # ok|skip|fail, description, skip reason or log
	n=$((n + 1))
	case $1 in
	ok) pass=$((pass + 1)) ;;
	skip) skip=$((skip + 1)) ;;
	*) fail=$((fail + 1)) ;;
	esac
	case $1 in
	ok) echo "ok $n - $2" ;;
	skip) echo "ok $n - $2 # SKIP $3" ;;
	*) echo "not ok $n - $2"; tail -n 15 "$3" | sed 's/^/# /' ;;
	esac | tee -a "$tap"
}

newest=${MATRIX_NEWEST:-0}
[[ "$newest" =~ ^[0-9]+$ ]] || die "MATRIX_NEWEST must be a number (0: all versions)"

# The BTF of kernel $1 at version $2 for the ABI check: its headers'
# vmlinux (6.12), else the ELF inside its image package, fetched without
# installing it (Debian's 6.1 headers ship no vmlinux).  Prints the path.
target_btf() { # krel version log
	local t=$BUILD/kver/$1/vmlinux tmp
	if [ -e "/usr/src/linux-headers-$1/vmlinux" ]; then
		echo "/usr/src/linux-headers-$1/vmlinux"
		return 0
	fi
	if [ ! -s "$t" ]; then
		tmp=$(mktemp -d "$BUILD/debs/get.XXXXXX")
		(cd "$tmp" && apt-get download -q "linux-image-$1=$2") >> "$3" 2>&1 &&
			dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -xO "./boot/vmlinuz-$1" > "$tmp/vmlinuz" &&
			unpack_vmlinux "$tmp/vmlinuz" "$t" "$(pristine_of "$2")"
		rm -rf "$tmp"
	fi
	[ -s "$t" ] && echo "$t"
}
pristine_of() { # version -> its extracted source tree
	find "$BUILD/src-$1" -mindepth 1 -maxdepth 1 -type d | head -n 1
}

# One row: headers installed, series applies, builds, ABI check.
build_row() { # base version krel
	local base=$1 ver=$2 krel=$3 lg=$M/logs/$3.log start rc applies builds abi kmod btf
	start=$(date +%s)
	if ! grep -qxF "$ver" <<<"$(versions_of "linux-headers-$krel")"; then
		echo "no linux-headers-$krel $ver in the archives" > "$lg"
		row "$ver" "$krel?" - - - "**no headers package of that name and version**"
		result fail "matrix: $ver: linux-headers-$krel $ver exists" "$lg"
		return
	fi
	if ! have_pkg "linux-headers-$krel" "$ver" && [ "$(id -u)" -ne 0 ]; then
		row "$ver" "$krel" - - - "skipped: linux-headers-$krel $ver not installed"
		result skip "matrix: $krel" "linux-headers-$krel $ver not installed (run as root)"
		return
	fi
	if ! get_pkg "linux-headers-$krel" "$ver" "$lg"; then
		row "$ver" "$krel" - - - "**cannot install linux-headers-$krel $ver**"
		result fail "matrix: $krel: linux-headers-$krel $ver installs" "$lg"
		return
	fi
	# Build with the ABI check apart, so that the table says which step failed.
	ABI_CHECK=n KVER=$krel KERNEL_SRC= "$here/build-kvm.sh" modules > "$lg" 2>&1
	rc=$?
	applies=yes builds=yes abi=-
	if [ $rc -ne 0 ]; then
		if grep -q 'does not apply' "$lg"; then applies=**no** builds=-; else builds=**no**; fi
	else
		kmod=$BUILD/kver/$krel/kmod
		[ "$ver" != "$KPKG_VERSION" ] || kmod=$BUILD/kmod
		if btf=$(target_btf "$krel" "$ver" "$lg") &&
		   KERNEL_SRC=/usr/src/linux-headers-$krel \
		   "$here/abi-check.sh" "$kmod/arch/x86/kvm/kvm.ko" "$btf" >> "$lg" 2>&1; then
			abi=ok
		else
			abi=**failed**
			rc=1
		fi
	fi
	row "$ver" "$krel" "$applies" "$builds" "$abi" "$(( $(date +%s) - start )) s"
	if [ $rc -eq 0 ]; then
		result ok "matrix: $krel: ${SERIES_NAME[$base]} applies, builds, ABI check"
	else
		result fail "matrix: $krel: ${SERIES_NAME[$base]} applies, builds, ABI check" "$lg"
	fi
	# Keep the fetched tarball, not the 1.6 GB trees of other versions.
	if [ "$ver" != "$KPKG_VERSION" ] && [ "$ver" != "$KPKG61_VERSION" ]; then
		rm -rf "$BUILD/src-$ver" "$BUILD/kver/$krel/tree"
	fi
}
declare -A SERIES_NAME=([6.12]=kernel/patches [6.1]=kernel/patches-6.1)

nth=0
for ver in $v612; do
	krel=${ver%%-*}+deb12-amd64
	nth=$((nth + 1))
	if [ "$newest" -gt 0 ] && [ "$nth" -gt "$newest" ] && [ "$ver" != "$KPKG_VERSION" ]; then
		row "$ver" "$krel" - - - "not built in this run (MATRIX_NEWEST=$newest)"
		result skip "matrix: $krel" "not built in this run (MATRIX_NEWEST=$newest: the newest $newest and the pinned version)"
		continue
	fi
	build_row 6.12 "$ver" "$krel"
done

# 6.1: Debian's ABI name (6.1.0-N-amd64) of each source version.
nth=0
for ver in $v61; do
	nth=$((nth + 1))
	hdr=$(apt-cache search --names-only '^linux-headers-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
	      cut -d' ' -f1 | while read -r p; do
		grep -qxF "$ver" <<<"$(versions_of "$p")" && echo "$p"
	      done | head -n 1)
	krel=${hdr#linux-headers-}
	if [ -z "$hdr" ]; then
		row "$ver" - - - - "no linux-headers-6.1.0-N-amd64 of this version in the archives"
		result skip "matrix: 6.1 $ver" "no headers package of this version in the archives"
		continue
	fi
	if [ "$newest" -gt 0 ] && [ "$nth" -gt "$newest" ] && [ "$ver" != "$KPKG61_VERSION" ]; then
		row "$ver" "$krel" - - - "not built in this run (MATRIX_NEWEST=$newest)"
		result skip "matrix: $krel" "not built in this run (MATRIX_NEWEST=$newest: the newest $newest and the pinned version)"
		continue
	fi
	if older_than_min61 "${ver%%-*}"; then
		row "$ver" "$krel" - - - "refused before kbuild: older than $MIN61_VERSION, the 6.1 series' minimum"
		result skip "matrix: $krel" "Linux ${ver%%-*} is older than $MIN61_VERSION, the 6.1 series' minimum (refused, see the refusal test)"
		continue
	fi
	build_row 6.1 "$ver" "$krel"
done

# Kernels without a series, or older than theirs needs, are refused before
# kbuild, with a clear error.
if refused_kernels "$M/fake-kernels" > "$M/logs/refused-kernels.log" 2>&1; then
	result ok "matrix: $REFUSED_KERNELS_TEST"
else
	result fail "matrix: $REFUSED_KERNELS_TEST" "$M/logs/refused-kernels.log"
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
