#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make check': host-side tests, then test VMs side by side (one per core):
#   distro: the upstream KVM selftests with Debian's own kvm modules,
#   ours:   the same upstream selftests with our modules, then our kselftests
#           and the end-to-end tests;
# then unstable-tsc: our kselftests in a test VM booted with tsc=unstable.
# An upstream test that passes with the distro modules must pass with ours.
# Ends with "N passed, N failed, N skipped" (a known bug that shows, TAP
# "not ok ... # TODO", is counted apart).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"

C=$BUILD/check
rm -rf "$C"
mkdir -p "$C"

# --- host side ----------------------------------------------------------------
"$here/abi-selftest.sh" 2>&1 | sed 's/^\(\(not \)\?ok [0-9]* - \)/\1host: /' > "$C/host.tap"
if "$here/mkpatches.sh" > "$C/patches.log" 2>&1; then
	echo "ok - host: make patches: mailable series, checkpatch --strict without errors" >> "$C/host.tap"
else
	sed 's/^/# /' "$C/patches.log" >> "$C/host.tap"
	echo "not ok - host: make patches: mailable series, checkpatch --strict without errors" >> "$C/host.tap"
fi
if refused_kernels "$C/fake-kernels" > "$C/refused-kernels.log" 2>&1; then
	echo "ok - host: $REFUSED_KERNELS_TEST" >> "$C/host.tap"
else
	sed 's/^/# /' "$C/refused-kernels.log" >> "$C/host.tap"
	echo "not ok - host: $REFUSED_KERNELS_TEST" >> "$C/host.tap"
fi
BUILD=$BUILD "$repo/tools/testing/selftests/vmpace/host-tests.sh" 2>&1 |
	sed 's/^\(\(not \)\?ok [0-9]* - \)/\1host: /' >> "$C/host.tap"

# --- test VMs -----------------------------------------------------------------
"$here/kselftest-list.sh" upstream > "$C/upstream.list" || die "cannot list upstream selftests"
"$here/kselftest-list.sh" ours > "$C/kselftests.list" || die "cannot list our kselftests"
cat "$C/upstream.list" "$C/kselftests.list" > "$C/ours.list"
{ cat "$C/upstream.list"; BUILD=$BUILD "$repo/tools/testing/selftests/vmpace/list.sh" distro; } \
	> "$C/distro.list"
BUILD=$BUILD "$repo/tools/testing/selftests/vmpace/list.sh" ours > "$C/e2e.list"
# The end-to-end tests in two halves, one per core (alternate lines: the
# slow ones are spread over both).
awk 'NR % 2 == 1' "$C/e2e.list" > "$C/e2e1.list"
awk 'NR % 2 == 0' "$C/e2e.list" > "$C/e2e2.list"
# Our kselftests once more on a host whose TSC is unstable, where KVM rewrites
# TSC offsets at every vcpu_load() and catches up on wall time; KVM does not
# keep the TSCs of several vCPUs in step there, so pace_smp_test and
# pace_kvmclock_test compare TSCs across vCPUs only on a host whose
# clocksource is the TSC (host_tsc_stable()).
cp "$C/kselftests.list" "$C/unstable-tsc.list"

# One VM per core: the distro modules on one, ours on the other; then the
# end-to-end tests in two halves side by side (single-CPU test VMs: nested
# guests are only reliable there; not beside our kselftests, whose quanta of
# a few ms then miss their host CPU time); then ours with tsc=unstable.
log "test VMs: $(wc -l < "$C/upstream.list") upstream selftests with distro and with our" \
    "modules, $(( $(wc -l < "$C/ours.list") - $(wc -l < "$C/upstream.list") )) kselftests" \
    "and $(wc -l < "$C/e2e.list") end-to-end tests of ours"
run_vm distro --modules distro --retry "$C/distro.list" &
distro_pid=$!
run_vm ours --retry --smp 2 "$C/ours.list"
wait $distro_pid
run_vm e2e1 --smp 1 "$C/e2e1.list" &
e2e1_pid=$!
run_vm e2e2 --smp 1 "$C/e2e2.list"
wait $e2e1_pid
# Last and alone (about 30 s): beside the ours VM it made our kselftests'
# quanta of a few ms miss their host CPU time.
run_vm unstable-tsc --append tsc=unstable "$C/unstable-tsc.list"
cat "$C/distro.err" "$C/unstable-tsc.err" "$C/ours.err" "$C/e2e1.err" "$C/e2e2.err" >&2

# --- results ------------------------------------------------------------------
{
cat "$C/host.tap"
regression_tap "$C/upstream.list" "$C/distro.tap" "$C/ours.tap"
grep -v ' - ours: upstream/' "$C/ours.tap"
grep -v ' - distro: upstream/' "$C/distro.tap"
cat "$C/unstable-tsc.tap" "$C/e2e1.tap" "$C/e2e2.tap"
for l in "$C"/distro.list "$C"/ours.list "$C"/unstable-tsc.list "$C"/e2e1.list "$C"/e2e2.list; do
	# every listed test of ours must have a result too
	n=${l##*/}; n=${n%.list}
	no_result_tap "$l" "$C/$n.tap" "$n"
done
} > "$C/all.tap"

cat "$C/all.tap"
{
	printf 'upstream selftests passing: distro %s, ours %s (of %s run)\n' \
		"$(grep -cE '^ok .* - distro: upstream/[^#]*(# time|$)' "$C/distro.tap")" \
		"$(grep -cE '^ok .* - ours: upstream/[^#]*(# time|$)' "$C/ours.tap")" \
		"$(wc -l < "$C/upstream.list")"
} | tee "$C/regression-summary"
tap_summary "$C/all.tap"
