#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# vmpace end-to-end tests, run inside the test VM (list.sh lists them):
# stock qemu-system-x86_64 -enable-kvm guests paced by vmpace.
# Usage: e2e.sh TEST   (BUILD points at the build directory)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:?}
vmpace=$BUILD/vmpace/vmpace
refsim=$BUILD/vmpace/refsim
simclient=$BUILD/vmpace/simclient
# A VMM without an OS: SeaBIOS finds nothing to boot and idles in HLT.
bios_vmm=(qemu-system-x86_64 -enable-kvm -display none -nodefaults -m 64 -monitor none
	  -serial none -no-hpet)
fail=0
check() { # description, then the command
	local d=$1; shift
	if "$@"; then echo "ok: $d"; else echo "FAILED: $d"; fail=1; fi
}

lockstep() { # nr-vcpus
	local out=/tmp/refsim.out trace=/tmp/trace.csv
	mapfile -t qemu < <("$here/guest/qemu-cmd.sh" "$BUILD/guest" "$1")
	"$refsim" --vmpace "$vmpace" --vmpace-opt="--trace=$trace" --quantum-us 10000 \
		--sim-ms 1000 --stall-us 20000 --table-every 100 -- "${qemu[@]}" > "$out" 2>&1
	local rc=$?
	cat "$out"
	check "refsim verdict PASS (exit $rc)" grep -q 'verdict: PASS' "$out"
	local sim host
	sim=$(sed -n 's/.* sim_s=\([0-9.]*\) .*/\1/p' "$out")
	host=$(sed -n 's/.* host_s=\([0-9.]*\) .*/\1/p' "$out")
	check "host time ($host s) ran at a very different rate from simulated time ($sim s)" \
		awk -v s="$sim" -v h="$host" 'BEGIN { exit !(s > 0.5 && h > 2 * s) }'
	check "vmpace ended the session cleanly" grep -q 'vmpace_status=0' "$out"
	check "the trace has a row per quantum, each elapsed >= its grant" \
		awk -F, 'NR > 1 { n++; if ($3 < $2 || $1 != n) bad = 1 } END { exit bad || n < 50 }' "$trace"
}

case "${1:?test name}" in
lockstep-1vcpu) lockstep 1 ;;
lockstep-2vcpu) lockstep 2 ;;
proto-adevs|proto-partial|proto-huge-close|proto-truncated|proto-release)
	"$simclient" --vmpace "$vmpace" "${1#proto-}" -- "${bios_vmm[@]}" || fail=1 ;;
proto-ns64)
	"$simclient" --vmpace "$vmpace" --proto ns64 adevs -- "${bios_vmm[@]}" || fail=1 ;;
transport-tcp-listen|transport-tcp-connect|transport-unix-listen|transport-unix-connect)
	"$simclient" --vmpace "$vmpace" --transport "${1#transport-}" adevs -- \
		"${bios_vmm[@]}" || fail=1 ;;
fault-kill-vmm|fault-kill-sim|fault-kill-vmpace|fault-sigterm)
	"$simclient" --vmpace "$vmpace" "${1#fault-}" -- "${bios_vmm[@]}" || fail=1 ;;
attach-errors)
	exp() { # expected-status expected-message args...
		local want=$1 msg=$2 out rc; shift 2
		out=$("$@" 2>&1); rc=$?
		check "'${*##*/}' exits $want with \"$msg\" (got $rc: $out)" \
			test "$rc" = "$want" -a -n "$(grep -F -- "$msg" <<<"$out")"
	}
	exp 2 "name exactly one of" "$vmpace" --pid 1
	exp 2 "--on-close is terminate or release" "$vmpace" --pid 1 --sync-fd 0 --on-close=x
	exp 2 "unknown command" "$vmpace" frobnicate
	exp 2 "is not an open file descriptor" "$vmpace" run --sync-fd 77 -- true
	exp 3 "no process with pid" "$vmpace" --pid 999999 --sync-fd 0
	sleep 600 & victim=$!
	exp 4 "has no KVM vCPUs" "$vmpace" --pid $victim --sync-fd 0
	kill $victim
	"${bios_vmm[@]}" & q=$!
	for i in $(seq 100); do [ -n "$(ls -l /proc/$q/fd 2>/dev/null | grep kvm-vcpu)" ] && break; sleep 0.1; done
	exp 5 "not permitted" setpriv --reuid=65534 --regid=65534 --clear-groups "$vmpace" --pid $q --sync-fd 0
	kill $q; wait $q 2>/dev/null
	;;
no-pacing)
	# with distro KVM modules
	"${bios_vmm[@]}" & q=$!
	for i in $(seq 100); do [ -n "$(ls -l /proc/$q/fd 2>/dev/null | grep kvm-vcpu)" ] && break; sleep 0.1; done
	out=$("$vmpace" --pid $q --sync-fd 0 2>&1); rc=$?
	check "a kernel without pacing: exit 6 with a clear message (got $rc: $out)" \
		test "$rc" = 6 -a -n "$(grep -F 'no pacing support' <<<"$out")"
	check "the VMM is left alone" kill -0 $q
	kill $q; wait $q 2>/dev/null
	;;
*) echo "unknown test $1"; exit 2 ;;
esac
exit $fail
