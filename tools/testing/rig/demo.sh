#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make demo': inside the test VM, the reference simulator (refsim) forks
# "vmpace run --sync-fd 3 -- qemu-system-x86_64 -enable-kvm ..." with a
# socketpair on fd 3, as adevs forks a QEMU patched for -external_sim, boots
# a stock Debian guest in 100 ms quanta, then runs 3 s of simulated time in
# 10 ms quanta while spending 20 ms of host time per quantum, and prints the
# simulated time, the guest's own clock and host time, and a verdict.
# Then the co-simulation job: ns3sim paces two stock QEMU guests whose NICs
# are joined by an ns-3 point-to-point link (5 ms, 10 Mbit/s); guest A pings
# guest B and measures the round trips with its own clock, as is, with 20 ms
# of host time burnt per round, and with quantum-boundary stamps (adevs'
# way); ns3sim prints the simulated round trip, what A measured, host time
# and a verdict.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"
gq=$repo/tools/testing/selftests/vmpace/guest/qemu-cmd.sh
mapfile -t qemu < <("$gq" "$BUILD/guest" 1)
cmd="$BUILD/vmpace/refsim --vmpace $BUILD/vmpace/vmpace --quantum-us 10000 --sim-ms 3000 --stall-us 20000 --table-every 15 -- $(printf "%q " "${qemu[@]}")"
list=$BUILD/demo.list
printf 'demo\t400\t%s\n' "$cmd" > "$list"
mapfile -t qa < <("$gq" "$BUILD/guest" 1 5 null vmpace.ping=30)
mapfile -t qb < <("$gq" "$BUILD/guest" 1 5 null vmpace.echo=1)
cmd="$BUILD/vmpace/ns3sim --vmpace $BUILD/vmpace/vmpace --phases plain,stall,boundary"
cmd+=" --stall-us 20000 --host-limit-s 240 -- $(printf "%q " "${qa[@]}") -- $(printf "%q " "${qb[@]}")"
printf 'demo-ns3\t400\t%s\n' "$cmd" >> "$list"
echo "demo: booting the test VM; inside it: refsim -> vmpace run -> stock QEMU/KVM guest,"
echo "demo: then ns3sim -> two vmpace run -> two stock QEMU/KVM guests on an ns-3 link"
rc=0
"$here/vm-run.sh" --smp 1 --name demo "$list" > "$BUILD/vm-demo.tap" 2>&1 || rc=$?
grep -v '^qemu-system' "$BUILD/vm/demo/logs/demo.log" 2>/dev/null || true
echo
grep '^ns3sim: ' "$BUILD/vm/demo/logs/demo-ns3.log" 2>/dev/null || true
if [ "$rc" -ne 0 ]; then
	cat "$BUILD/vm-demo.tap" >&2
	die "the demo failed (logs in $BUILD/vm/demo)"
fi
