#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Line coverage of the pacing code from the gcov counters fuzz-run.sh saved
# (DIR/gcov/<object dir>/...gcda) and the .gcno files of the debug modules'
# build.  Prints one "pace coverage: FILE: N% of M lines" line per file.
#
# Usage: coverage.sh RESULTS-DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
R=${1:?usage: coverage.sh RESULTS-DIR}
[ -d "$R/gcov" ] || die "no gcov counters in $R"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
find "$R/gcov" -name '*.gcda' | while IFS= read -r gcda; do
	obj=/${gcda#"$R/gcov/"}		# the object's path on the host
	gcno=${obj%.gcda}.gcno
	[ -e "$gcno" ] || { log "no $gcno for $gcda"; continue; }
	d=$work/$(echo "${obj%.gcda}" | tr / _)
	mkdir -p "$d"
	cp "$gcda" "$gcno" "$d/"
	src=$(dirname "$obj")/$(basename "$obj" .gcda).c
	(cd "$(dirname "$obj")" && gcov -n -o "$d" "$src" 2>/dev/null) |
		awk -v f="${src#"$BUILD"/}" '
		/^File / { cur = $2; gsub(/\x27/, "", cur) }
		/^Lines executed:/ && cur ~ /pace[a-z_]*\.c$/ {
			split($2, a, ":"); sub(/%/, "", a[2])
			printf "pace coverage: %s: %s%% of %s lines\n", f, a[2], $4
			cur = "" }'
done
