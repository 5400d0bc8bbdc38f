#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host-side tests of vmpace (no KVM needed): protocol unit tests, and the
# protocol decoder under libFuzzer for a bounded time (FUZZ_SECONDS, 20).
# Prints TAP.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../../../vmpace" && pwd)
out=${BUILD:?}/vmpace-host
mkdir -p "$out"
n=0
tap() { n=$((n + 1)); echo "$1 $n - $2"; }

if gcc -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -I"$src" \
	-o "$out/proto_test" "$here/host/proto_test.c" "$src/proto.c" 2>"$out/build.log"; then
	"$out/proto_test" > "$out/proto_test.tap"
	rc=$?
	sed 's/^/# /' "$out/proto_test.tap"
	[ $rc -eq 0 ] && tap ok "vmpace protocol unit tests" || tap "not ok" "vmpace protocol unit tests"
else
	sed 's/^/# /' "$out/build.log"; tap "not ok" "vmpace protocol unit tests build"
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
echo "1..$n"
