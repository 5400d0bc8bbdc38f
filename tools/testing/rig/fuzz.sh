#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make fuzz': the pacing uAPI fuzzer alone on the debug test kernel (2-CPU
# test VM), for FUZZ_SECONDS (default 1800) with FUZZ_SEED (default: random,
# printed), then KVM unloaded; prints the fuzzer's summary and the line
# coverage of the pacing code.  Exit status: that of the test VM run.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"

fuzz_params 1800
"$here/build-debug-kernel.sh" modules || die "building the debug test kernel or our modules for it failed"
fuzz_list "$secs" "$seed" > "$BUILD/fuzz.list"
log "pace_fuzz for ${secs}s (seed $seed) on the debug test kernel, then KVM unload"
"$here/vm-run.sh" --kernel debug --smp 2 --name fuzz "$BUILD/fuzz.list"
rc=$?
fuzz_summary fuzz
exit $rc
