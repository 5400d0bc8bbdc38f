#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make check-debug': our kselftests, the pacing uAPI fuzzer and the
# end-to-end tests on the debug test kernel (KASAN, lockdep, UBSAN, KFENCE,
# debug objects, panic_on_warn), two test VMs side by side:
#   debug:     our kselftests, pace_fuzz for FUZZ_SECONDS (default 120) with
#              FUZZ_SEED (default: random, printed), coverage of the pacing
#              code, then KVM unloaded;
#   debug-e2e: three end-to-end tests (a 1-CPU test VM), DEBUG_E2E to choose.
# Any kernel report fails the run with the report shown (vm-run.sh greps the
# log; with panic_on_warn the VM stops at the first one and the console log
# is shown).  Timeouts are ten times those on Debian's kernel for the
# end-to-end tests (a subset, see below), 600 s for the kselftests.
# Cost on 2 cores: the debug kernel's first build about 15 minutes (cached
# in build/debug-kernel/ by source version and config hash), the runs about
# 15 minutes.  Ends with "N passed, N failed, N skipped".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"

fuzz_params 120
C=$BUILD/check-debug
rm -rf "$C"
mkdir -p "$C"

"$here/build-debug-kernel.sh" modules || die "building the debug test kernel or our modules for it failed"

# pace_clock_test's timing bounds are reported, not enforced, here
# (PACE_TIMING=report, pace_util.h): beside the end-to-end test VM this
# kernel starves the vCPU thread for whole quanta of guest time without the
# test VM stopping (the periodic timer's guest ran no loop for 4 to 8 10-ms
# quanta in a row in 8 of 12 runs, 2026-12-02); make check enforces them on
# Debian's kernel with our modules.
# pace_kvmclock_test's 3 x 10000 holds take over 10 minutes there: 2000;
# and its idle case gets 20 ms quanta: a released vCPU thread there takes
# longer than the default 1 ms quantum to get back into the guest (its guest
# time passes meanwhile, as it must), so the idle vCPU hardly ever ran.
KSELFTEST_TIMEOUT=600 "$here/kselftest-list.sh" ours |
	grep -v '^kvm/x86_64/pace_fuzz	' |
	sed -e '/^kvm\/x86_64\/pace_kvmclock_test	/s/$/ -n 2000 -q 20/' \
	    -e '/^kvm\/x86_64\/pace_clock_test	/s/ \.\/pace_clock_test$/ PACE_TIMING=report .\/pace_clock_test/' \
	> "$C/debug.list" ||
	die "cannot list our kselftests"
fuzz_list "$secs" "$seed" >> "$C/debug.list"
# The end-to-end tests boot a nested Debian guest, whose every exit the KASAN
# and lockdep KVM handles about 15 times slower than the production one
# (measured: proto-adevs 122 s against 7 s): all of them would take hours.  These
# cover what no kselftest does and fit beside the kselftest VM (about 12
# minutes): a real QEMU paced from another process (the seed protocol), the
# controller killed mid-quantum, and KVM unloaded under a netlink monitor.
# DEBUG_E2E="..." runs others (lockstep-2vcpu: about 11 minutes there).
e2e=${DEBUG_E2E:-"proto-adevs fault-kill-vmpace monitor-unload"}
BUILD=$BUILD "$repo/tools/testing/selftests/vmpace/list.sh" ours |
	awk -F'\t' -v OFS='\t' -v want=" $e2e " '
	{ n = $1; sub(/^vmpace\//, "", n) }
	index(want, " " n " ") { $2 = $2 * 10; print }' > "$C/debug-e2e.list"
[ "$(wc -l < "$C/debug-e2e.list")" -eq "$(wc -w <<<"$e2e")" ] ||
	die "DEBUG_E2E names a test list.sh does not have: $e2e"

log "debug test kernel: $(($(wc -l < "$C/debug.list") - 2)) kselftests, pace_fuzz for ${secs}s" \
    "(seed $seed), KVM unload; end-to-end tests: $e2e"
run_vm debug --kernel debug --smp 2 "$C/debug.list" &
pid=$!
run_vm debug-e2e --kernel debug --smp 1 "$C/debug-e2e.list"
wait $pid
cat "$C/debug.err" "$C/debug-e2e.err" >&2

{
	cat "$C/debug.tap" "$C/debug-e2e.tap"
	# every listed test must have a result
	no_result_tap "$C/debug.list" "$C/debug.tap" debug
	no_result_tap "$C/debug-e2e.list" "$C/debug-e2e.tap" debug-e2e
} > "$C/all.tap"
cat "$C/all.tap"

fuzz_summary debug | tee "$C/fuzz-summary"
pass=$(grep -E '^ok ' "$C/all.tap" | grep -vc '# SKIP')
skip=$(grep -E '^ok ' "$C/all.tap" | grep -c '# SKIP')
fail=$(grep -E '^not ok ' "$C/all.tap" | grep -vc '# TODO')
echo "results: $C (per-test logs, dmesg and console under $BUILD/vm/debug*)"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
