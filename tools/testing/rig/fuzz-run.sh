#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM (a vm-run.sh test line): the pacing uAPI fuzzer for
# SECONDS with SEED, then the gcov counters of the pacing code (the debug
# test kernel's modules are built with them) are copied to the results share
# for coverage.sh on the host.
#
# Usage: fuzz-run.sh SECONDS SEED KSELFTEST-DIR
set -u
secs=${1:?usage: fuzz-run.sh SECONDS SEED KSELFTEST-DIR} seed=${2:?} dir=${3:?}
R=/tmp/vmpace-results	# the results share, as guest-init mounts it
cd "$dir/x86_64" || exit 1
gcov=/sys/kernel/debug/gcov
# coverage of the fuzzer's run alone, not of the tests before it
[ ! -e "$gcov/reset" ] || echo 1 > "$gcov/reset"
./pace_fuzz -t "$secs" -s "$seed" -m
rc=$?
if [ -d "$gcov" ]; then
	mkdir -p "$R/gcov"
	# the directory tree under gcov/ is the object tree's absolute path
	(cd "$gcov" && find . -name 'pace*.gcda' -print0 | xargs -0 -r cp --parents -t "$R/gcov")
	echo "fuzz-run: gcov counters of $(find "$R/gcov" -name '*.gcda' | wc -l) file(s) saved"
else
	echo "fuzz-run: no $gcov (not the debug test kernel): no coverage"
fi
exit $rc
