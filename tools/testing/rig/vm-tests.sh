#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make vm-test T=REGEX': run the tests whose name matches REGEX (ours, the
# end-to-end tests and the upstream selftests) in the test VM with our
# modules.  Without T, runs our kselftests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"
re=${1:-^kvm/}
list=$BUILD/vm-test.list
{ "$here/kselftest-list.sh" ours
  [ ! -x "$repo/tools/testing/selftests/vmpace/list.sh" ] ||
	{ "$repo/tools/testing/selftests/vmpace/list.sh"; "$repo/tools/testing/selftests/vmpace/list.sh" extra; }
  "$here/kselftest-list.sh" upstream
} | awk -F'\t' -v re="$re" '$1 ~ re' > "$list"
[ -s "$list" ] || die "no test matches '$re'"
# Nested guests of the end-to-end tests are only reliable in a 1-CPU test VM.
smp=2
grep -qv '^vmpace/' "$list" || smp=1
exec "$here/vm-run.sh" --smp "$smp" --name vm-test "$list"
