#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host-side tests of vmpace (no KVM needed): protocol unit tests, the
# protocol decoder under libFuzzer for a bounded time (FUZZ_SECONDS, 20),
# libvmpace's unit tests, and libvmpace as a user gets it (installed, its
# man page's example built with pkg-config, only vmp_* exported).
# Prints TAP.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../../vmpace" && pwd)
doc=$(cd "$here/../../../../Documentation" && pwd)
repo=$(cd "$here/../../../.." && pwd)
out=${BUILD:?}/vmpace-host
mkdir -p "$out"
n=0
tap() { n=$((n + 1)); echo "$1 $n - $2"; }

if gcc -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -I"$src" -I"$src/refsim" \
	-o "$out/proto_test" "$here/host/proto_test.c" "$src/proto.c" "$src/qemu-args.c" \
	2>"$out/build.log"; then
	"$out/proto_test" > "$out/proto_test.tap"
	rc=$?
	sed 's/^/# /' "$out/proto_test.tap"
	[ $rc -eq 0 ] && tap ok "vmpace unit tests (protocol, QEMU's command line, the simulators' clock fit)" ||
		tap "not ok" "vmpace unit tests (protocol, QEMU's command line, the simulators' clock fit)"
else
	sed 's/^/# /' "$out/build.log"; tap "not ok" "vmpace unit tests build"
fi

if clang -g -O1 -fsanitize=fuzzer,address,undefined -I"$src" -o "$out/proto_fuzz" \
	"$here/host/proto_fuzz.c" "$src/proto.c" 2>"$out/fuzz-build.log"; then
	mkdir -p "$out/corpus"
	if "$out/proto_fuzz" -max_total_time="${FUZZ_SECONDS:-20}" -seed=1 -print_final_stats=1 \
		"$out/corpus" > "$out/fuzz.log" 2>&1; then
		tap ok "vmpace protocol decoder fuzzed for ${FUZZ_SECONDS:-20} s ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$out/fuzz.log" | awk '{print $2}') runs, libFuzzer+ASan+UBSan)"
	else
		tail -n 30 "$out/fuzz.log" | sed 's/^/# /'
		tap "not ok" "vmpace protocol decoder fuzzing"
	fi
else
	sed 's/^/# /' "$out/fuzz-build.log"; tap "not ok" "vmpace protocol fuzzer build (clang)"
fi
# libvmpace against a scripted peer (itself, spawned by the library)
if gcc -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -I"$src/lib" -I"$src" \
	-o "$out/libvmpace_test" "$here/host/libvmpace_test.c" "$src/lib/libvmpace.c" \
	"$src/proto.c" 2>"$out/lib-build.log"; then
	timeout 120 "$out/libvmpace_test" > "$out/libvmpace_test.tap" 2>&1
	rc=$?
	sed 's/^/# /' "$out/libvmpace_test.tap"
	[ $rc -eq 0 ] && tap ok "libvmpace unit tests (ASan+UBSan)" ||
		tap "not ok" "libvmpace unit tests (ASan+UBSan)"
else
	sed 's/^/# /' "$out/lib-build.log"; tap "not ok" "libvmpace unit tests build"
fi

# Installed as a package would: the man page's example, built with pkg-config
# against the shared and the static library; the ABI is the vmp_* calls.
stage=$out/stage
ma=$(gcc -print-multiarch)
libdir=/usr/lib/$ma
rm -rf "$stage" "$out/lib"
mkdir -p "$out/lib"
# built with the default paths first, installed with others: the .pc must
# say the installed ones
if make -s -C "$src/lib" OUTPUT="$out/lib/" > "$out/lib-install.log" 2>&1 &&
   make -s -C "$src/lib" OUTPUT="$out/lib/" DESTDIR="$stage" prefix=/usr \
	libdir="$libdir" install >> "$out/lib-install.log" 2>&1; then
	sed -n '/^\.SH EXAMPLE/,/^\.SH NOTES/p' "$doc/libvmpace.3" |
		sed -n '/^#include/,/^}/p' | sed 's/\\-/-/g; s/\\e/\\/g' > "$out/example.c"
	export PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_LIBDIR=$stage$libdir/pkgconfig
	# each step names itself when it fails; outputs are captured before they
	# are searched (ldd | grep -q under pipefail fails when grep exits first)
	step() { why=$1; shift; "$@" >> "$out/example.log" 2>&1; }
	why= ; : > "$out/example.log"
	step "pkg-config --cflags/--libs libvmpace" eval 'cf=$(pkg-config --cflags libvmpace) && lf=$(pkg-config --libs libvmpace)' &&
	step "the example builds against the shared library" \
		gcc -Wall -Wextra -Werror $cf -o "$out/example" "$out/example.c" $lf &&
	step "the example builds against the static library" \
		gcc -Wall -Wextra -Werror $cf -o "$out/example-static" "$out/example.c" \
		$(echo "$lf" | sed 's/-lvmpace/-Wl,-Bstatic -lvmpace -Wl,-Bdynamic/') &&
	step "the .pc says libdir=$libdir" grep -qx "libdir=$libdir" "$stage$libdir/pkgconfig/libvmpace.pc" &&
	step "ldd of the example" eval 'ldd_so=$(LD_LIBRARY_PATH=$stage$libdir ldd "$out/example") && ldd_st=$(ldd "$out/example-static"; true)' &&
	step "the example links libvmpace.so.0" grep -q 'libvmpace.so.0 => /' <<<"$ldd_so" &&
	step "the static example does not link libvmpace.so" eval '! grep -q libvmpace <<<"$ldd_st"' &&
	step "nm of the static example and the shared library" \
		eval 'syms_static=$(nm "$out/example-static") && syms_so=$(nm -D --defined-only "$stage$libdir/libvmpace.so.0")' &&
	step "the static library exports no internal symbol (vp_decode)" eval '! grep -q " T vp_decode$" <<<"$syms_static"' &&
	step "the shared library exports only vmp_* calls" eval '[ -z "$(awk '"'"'$2 == "T" && $3 !~ /^vmp_/'"'"' <<<"$syms_so")" ]' &&
	step "the shared library exports exactly the calls of debian/libvmpace0.symbols, at their versions" \
		eval 'diff <(awk '"'"'$2 == "T" { sub("@@", "@", $3); print $3 }'"'"' <<<"$syms_so" | sort) \
			<(awk '"'"'$1 ~ /^vmp_/ { print $1 }'"'"' "$repo/tools/packaging/debian/libvmpace0.symbols" | sort)' &&
	step "vmp_grant@@LIBVMPACE_0 and vmp_grant_until@@LIBVMPACE_0.2" \
		eval 'grep -q " T vmp_grant@@LIBVMPACE_0$" <<<"$syms_so" && grep -q " T vmp_grant_until@@LIBVMPACE_0.2$" <<<"$syms_so"' &&
	step "the man page and the header are installed" \
		eval '[ -f "$stage/usr/share/man/man3/libvmpace.3" ] && [ -f "$stage/usr/include/libvmpace.h" ]' &&
	# the Debian symbols file lists exactly what the library exports
	step "debian/libvmpace0.symbols lists exactly the exported calls" \
		eval '[ "$(awk '"'"'$2 == "T" { print $3 }'"'"' <<<"$syms_so" | sed "s/@@/@/" | sort)" = \
		  "$(sed -n "s/^ \(vmp_[a-z_]*@LIBVMPACE_0[.0-9]*\) .*/\1/p" "$here/../../../packaging/debian/libvmpace0.symbols" | sort)" ]'
	rc=$?
	unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
	[ $rc -eq 0 ] || { echo "# failed: $why"; sed 's/^/# /' "$out/example.log"; }
	[ $rc -eq 0 ] && tap ok "libvmpace installed: .pc paths, the man page example builds (pkg-config, shared and static), only the vmp_* calls of debian/libvmpace0.symbols exported, at their versions" ||
		tap "not ok" "libvmpace installed: .pc paths, the man page example builds (pkg-config, shared and static), only the vmp_* calls of debian/libvmpace0.symbols exported, at their versions"
else
	sed 's/^/# /' "$out/lib-install.log"; tap "not ok" "libvmpace install"
fi
echo "1..$n"
