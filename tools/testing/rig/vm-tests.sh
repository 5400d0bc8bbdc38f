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
	"$repo/tools/testing/selftests/vmpace/list.sh"
  "$here/kselftest-list.sh" upstream
} | awk -F'\t' -v re="$re" '$1 ~ re' > "$list"
[ -s "$list" ] || die "no test matches '$re'"
exec "$here/vm-run.sh" --name vm-test "$list"
