#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Print a vm-run.sh test list of KVM selftests registered by the (patched)
# source's own Makefile:
#   kselftest-list.sh upstream   upstream tests, minus upstream-excluded
#   kselftest-list.sh ours       the tests we add (tools/testing/selftests/kvm)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"
which=${1:?usage: kselftest-list.sh upstream|ours}
limit=${KSELFTEST_TIMEOUT:-120}
out=$BUILD/kselftest-kvm
mk=$(mktemp)
trap 'rm -f "$mk"' EXIT
printf 'vmpace-print-progs:\n\t@echo $(TEST_GEN_PROGS)\n' > "$mk"
progs=$(env -u MAKEFLAGS make -s -C "$BUILD/tree/tools/testing/selftests/kvm" -f Makefile -f "$mk" \
	OUTPUT="$out" KHDR_INCLUDES="-isystem $BUILD/uapi/include" vmpace-print-progs)
excl=$(sed 's/#.*//' "$here/upstream-excluded" | tr -s ' \t' '\n' | grep . || true)
ours=$(cd "$repo" && find tools/testing/selftests/kvm -name '*.c' 2>/dev/null |
	sed 's,^tools/testing/selftests/kvm/,,; s,\.c$,,' || true)
for p in $progs; do
	t=${p#"$out"/}
	if grep -qxF "$t" <<<"$ours"; then
		[ "$which" = ours ] || continue
		prefix=kvm
	else
		[ "$which" = upstream ] || continue
		grep -qxF "$(basename "$t")" <<<"$excl" && continue
		prefix=upstream
	fi
	# kselftests expect to run from their own directory
	printf '%s/%s\t%s\tcd %s && ./%s\n' "$prefix" "$t" "$limit" \
		"$(dirname "$p")" "$(basename "$p")"
done
