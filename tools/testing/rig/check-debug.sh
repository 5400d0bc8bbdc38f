#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make check-debug': our kselftests, the pacing uAPI fuzzer and the
# end-to-end tests on the debug test kernel (KASAN, lockdep, UBSAN, KFENCE,
# debug objects, panic_on_warn), two test VMs side by side:
#   debug:     our kselftests, pace_fuzz for FUZZ_SECONDS (default 120) with
#              FUZZ_SEED (default: random, printed), coverage of the pacing
#              code, then KVM unloaded;
#   debug-e2e: the end-to-end tests (a 1-CPU test VM).
# Any kernel report fails the run with the report shown (vm-run.sh greps the
# log; with panic_on_warn the VM stops at the first one and the console log
# is shown).  Timeouts are three times those on Debian's kernel: KASAN and
# lockdep make the nested guests of the tests slower.
# Cost on 2 cores: the debug kernel's first build about 25 minutes (cached
# in build/debug-kernel/ by source version and config hash), the runs about
# 20 minutes.  Ends with "N passed, N failed, N skipped".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"

secs=${FUZZ_SECONDS:-120}
seed=${FUZZ_SEED:-$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')}
C=$BUILD/check-debug
rm -rf "$C"
mkdir -p "$C"

"$here/build-debug-kernel.sh" modules || die "building the debug test kernel or our modules for it failed"

KSELFTEST_TIMEOUT=600 "$here/kselftest-list.sh" ours |
	grep -v '^kvm/x86_64/pace_fuzz	' > "$C/debug.list" || die "cannot list our kselftests"
printf 'kvm/pace_fuzz\t%s\t%s/fuzz-run.sh %s %s %s\n' "$((secs + 900))" "$here" "$secs" "$seed" \
	"$BUILD/kselftest-kvm" >> "$C/debug.list"
printf 'kvm/unload\t120\trmmod kvm_amd kvm irqbypass && ! grep -qE "^(kvm|kvm_amd|irqbypass) " /proc/modules\n' \
	>> "$C/debug.list"
BUILD=$BUILD "$repo/tools/testing/selftests/vmpace/list.sh" ours |
	awk -F'\t' -v OFS='\t' '{ $2 = $2 * 3; print }' > "$C/debug-e2e.list"

log "debug test kernel: $(($(wc -l < "$C/debug.list") - 2)) kselftests, pace_fuzz for ${secs}s" \
    "(seed $seed), KVM unload; $(wc -l < "$C/debug-e2e.list") end-to-end tests"
run_vm() { # name, then vm-run.sh arguments
	local name=$1; shift
	"$here/vm-run.sh" --kernel debug --name "$name" "$@" > "$C/$name.tap" 2>"$C/$name.err" ||
		grep -q '^\(not \)\?ok' "$C/$name.tap" ||
		echo "not ok - $name: test VM run (see $C/$name.err)" >> "$C/$name.tap"
}
run_vm debug --smp 2 "$C/debug.list" &
pid=$!
run_vm debug-e2e --smp 1 "$C/debug-e2e.list"
wait $pid
cat "$C/debug.err" "$C/debug-e2e.err" >&2

{
	cat "$C/debug.tap" "$C/debug-e2e.tap"
	for n in debug debug-e2e; do	# every listed test must have a result
		cut -f1 "$C/$n.list" | while IFS= read -r t; do
			grep -qE "^(not )?ok [0-9]* ?- $n: $t( #|\$)" "$C/$n.tap" ||
				echo "not ok - $n: $t # no result"
		done
	done
} > "$C/all.tap"
cat "$C/all.tap"

R=$BUILD/vm/debug
fuzzlog=$R/logs/kvm_pace_fuzz.log
if [ -e "$fuzzlog" ]; then
	grep -E '^pace_fuzz:|^FAIL|^replay' "$fuzzlog" | sed 's/^/# /'
	grep -A200 '^minimal failing sequence' "$fuzzlog" | sed 's/^/# /' || true
fi
[ ! -d "$R/gcov" ] || "$here/coverage.sh" "$R" | sed 's/^/# /' | tee "$C/coverage"
pass=$(grep -E '^ok ' "$C/all.tap" | grep -vc '# SKIP')
skip=$(grep -E '^ok ' "$C/all.tap" | grep -c '# SKIP')
fail=$(grep -E '^not ok ' "$C/all.tap" | grep -vc '# TODO')
echo "results: $C (per-test logs, dmesg and console under $BUILD/vm/debug*)"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
