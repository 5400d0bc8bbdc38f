#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make demo': inside the test VM, the reference simulator (refsim) forks
# "vmpace run --sync-fd 3 -- qemu-system-x86_64 -enable-kvm ..." with a
# socketpair on fd 3, as adevs forks a QEMU patched for -external_sim, boots
# a stock Debian guest in 100 ms quanta, then runs 3 s of simulated time in
# 10 ms quanta while spending 20 ms of host time per quantum, and prints the
# simulated time, the guest's own clock and host time, and a verdict.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"
mapfile -t qemu < <("$repo/tools/testing/selftests/vmpace/guest/qemu-cmd.sh" "$BUILD/guest" 1)
cmd="$BUILD/vmpace/refsim --vmpace $BUILD/vmpace/vmpace --quantum-us 10000 --sim-ms 3000 --stall-us 20000 --table-every 15 -- $(printf "%q " "${qemu[@]}")"
list=$BUILD/demo.list
printf 'demo\t400\t%s\n' "$cmd" > "$list"
echo "demo: booting the test VM; inside it: refsim -> vmpace run -> stock QEMU/KVM guest"
rc=0
"$here/vm-run.sh" --smp 1 --name demo "$list" > "$BUILD/vm-demo.tap" 2>&1 || rc=$?
grep -v '^qemu-system' "$BUILD/vm/demo/logs/demo.log" 2>/dev/null || true
if [ "$rc" -ne 0 ]; then
	cat "$BUILD/vm-demo.tap" >&2
	die "the demo failed (logs in $BUILD/vm/demo)"
fi
