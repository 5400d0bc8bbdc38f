#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The end-to-end tests, as vm-run.sh test lines: list.sh [ours|distro|extra]
# (extra: tests that make check does not run yet, for make vm-test T=...)
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$(cd "$here/../../../.." && pwd)/build}
line() { # name timeout [known bug]
	printf 'vmpace/%s\t%s\tBUILD=%s %s/e2e.sh %s%s\n' "$1" "$2" "$BUILD" "$here" "$1" \
		"${3:+$'\t'$3}"
}
if [ "${1:-ours}" = distro ]; then
	line no-pacing 60
	exit 0
fi
if [ "${1:-}" = extra ]; then
	# none at present
	exit 0
fi
line attach-errors 120
for t in adevs ns64 partial huge-close truncated release framed; do line proto-$t 120; done
line proto-framed-errors 240
line proto-framed-flood 240
line proto-framed-net 300
line proto-framed-serial 240
for t in tcp-listen tcp-connect unix-listen unix-connect; do line transport-$t 120; done
for t in kill-vmm kill-sim kill-vmpace sigterm; do line fault-$t 120; done
for t in first adevs-fork adevs-kill wrapper zero-step half-close half-close-early partial-write \
	 stall-stop hotadd ctrl-c peer-lost two-vms; do line $t 180; done
line wrapper-lockstep 300
line stopcont 300
line lockstep-1vcpu 300
for t in udp stall boundary attach; do line netsim-$t 300; done
for t in virtio uart attach; do line serial-$t 300; done
line attach-io-errors 180
line refsim-vmm-dies 180
# two nested guests on an ns-3 network, in one single-CPU test VM (~3 min)
line ns3-p2p 400
line lockstep-2vcpu 300
line monitor 300
# Unloads and reloads KVM: keep it last.
line monitor-unload 120
