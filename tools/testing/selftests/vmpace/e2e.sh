#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# vmpace end-to-end tests, run inside the test VM (list.sh lists them):
# stock qemu-system-x86_64 -enable-kvm guests paced by vmpace.
# Usage: e2e.sh TEST   (BUILD points at the build directory)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:?}
vmpace=${VMPACE:-$BUILD/vmpace/vmpace}	# VMPACE: an installed one (make check-deb)
refsim=${REFSIM:-$BUILD/vmpace/refsim}	# REFSIM: one built against the installed libvmpace
simclient=$BUILD/vmpace/simclient
netsim=${NETSIM:-$BUILD/vmpace/netsim}	# NETSIM: one built against the installed libvmpace
sersim=$BUILD/vmpace/sersim
ns3sim=$BUILD/vmpace/ns3sim
# A VMM without an OS: SeaBIOS finds nothing to boot and idles in HLT.
bios_vmm=(qemu-system-x86_64 -enable-kvm -display none -nodefaults -m 64 -monitor none
	  -serial none -no-hpet)
fail=0
jqc() { jq -e "$@" > /dev/null; }	# a jq condition, for check
check() { # description, then the command
	local d=$1; shift
	if "$@"; then echo "ok: $d"; else echo "FAILED: $d"; fail=1; fi
}

# Start "vmpace monitor ARGS" in the background, its output (stdout and
# stderr) going to FILE; returns once it has joined the group, i.e. printed
# its "listening" line.  Sets mon_pid.
start_monitor() { # file args...
	local out=$1 fifo line; shift
	fifo=$(mktemp -u /tmp/monitor.XXXXXX)
	mkfifo "$fifo"
	"$vmpace" monitor "$@" > "$fifo" 2>&1 &
	mon_pid=$!
	exec {mon_fd}< "$fifo"
	rm -f "$fifo"
	if ! read -t 60 -r -u "$mon_fd" line; then line="(nothing)"; fi
	echo "$line" > "$out"
	cat <&"$mon_fd" >> "$out" &
	exec {mon_fd}<&-
	check "vmpace monitor $* is listening (\"$line\")" grep -q 'listening for kvm_pace events' "$out"
}

# Checks run by simclient's "monitor" scenario while the VM is frozen after
# $QUANTA quanta, and after the session ended (HOOK=frozen|released).
status_hook() {
	local out=/tmp/status.json
	"$vmpace" status -j > "$out"
	check "vmpace status -j succeeds and prints JSON" jqc . "$out"
	cat "$out"
	if [ "$HOOK" = released ]; then
		check "the VM left the status list when pacing ended" \
			jqc --argjson p "$QEMU_PID" '[.vms[] | select(.vmm_pid == $p)] | length == 0' "$out"
		return
	fi
	check "status lists the VM with its VMM pid, $NR_VCPUS vCPUs, frozen" \
		jqc --argjson p "$QEMU_PID" --argjson n "$NR_VCPUS" \
		'[.vms[] | select(.vmm_pid == $p and .nr_vcpus == $n and .frozen and .vmm_comm == "qemu-system-x86")] | length == 1' "$out"
	check "every vCPU is held, armed, paced by vmpace (pid $VMPACE_PID), $QUANTA+1 holds" \
		jqc --argjson p "$QEMU_PID" --argjson c "$VMPACE_PID" --argjson q "$QUANTA" --argjson n "$NR_VCPUS" \
		'[.vms[] | select(.vmm_pid == $p) | .vcpus[] |
		  select(.held and .armed and .state == "held" and .controller_pid == $c and
			 .controller_comm == "vmpace" and .holds == $q + 1 and .exits == 0)] | length == $n' "$out"
	# While frozen nothing moves: the dump must equal KVM_GET_PACE_STATE.
	check "status agrees with KVM_GET_PACE_STATE (guest TSC, deadline, counters)" \
		jqc -n --argjson p "$QEMU_PID" --slurpfile st "$STATE_JSON" --slurpfile nl "$out" '
		[$nl[0].vms[] | select(.vmm_pid == $p)][0] as $vm |
		[$st[0][] as $k | $vm.vcpus[] | select(.vcpu_id == $k.vcpu_id) |
		 select(.guest_tsc == $k.guest_tsc and .deadline == $k.deadline and
			.holds == $k.holds and .exits == $k.exits and
			.overshoot_last == $k.overshoot_last and .overshoot_max == $k.overshoot_max and
			.held_ns >= $k.held_ns and .state_flags == $k.state and
			$vm.tsc_khz == $k.tsc_khz and $vm.frozen_ns >= $k.frozen_ns)] |
		length == ($st[0] | length)'
	check "the frozen guest TSC is at or past every deadline" \
		jqc '[.vms[].vcpus[] | select(.guest_tsc < .deadline)] | length == 0' "$out"
	"$vmpace" status > /tmp/status.txt
	cat /tmp/status.txt
	check "the table shows the VM and $NR_VCPUS held vCPUs" \
		test "$(grep -c '^VM .* pid '"$QEMU_PID"' ' /tmp/status.txt)" = 1 -a \
		"$(grep -cE '^ +[0-9]+ +held +'"$VMPACE_PID"' vmpace ' /tmp/status.txt)" = "$NR_VCPUS"
	check "status --pid filters on the VMM pid" \
		jqc '.vms | length == 0' <("$vmpace" status -j --pid 1)
	local rc msg
	for c in status monitor; do
		msg=$(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all \
			"$vmpace" $c 2>&1); rc=$?
		check "unprivileged 'vmpace $c' is refused: exit 5, CAP_SYS_ADMIN named (got $rc: $msg)" \
			test "$rc" = 5 -a -n "$(grep -F 'needs CAP_SYS_ADMIN' <<<"$msg")"
	done
}

# The events of the session, as JSON lines from "vmpace monitor -j".
check_events() { # file qemu-pid vmpace-pid quanta nr-vcpus
	local f=$1 p=$2 c=$3 q=$4 n=$5 want v
	grep '^{' "$f" > /tmp/events.json
	echo "$(wc -l < /tmp/events.json) events; first and last:"
	head -n 3 /tmp/events.json; tail -n 2 /tmp/events.json
	check "$n vCPUs x (arm, hold, $q x (release, hold), release, disarm) = $((n * (2 * q + 4))) events" \
		test "$(wc -l < /tmp/events.json)" = $((n * (2 * q + 4)))
	check "every event is of the paced VM" \
		jqc -n --argjson p "$p" '[inputs | select(.vmm_pid != $p)] | length == 0' /tmp/events.json
	check "event sequence numbers run 1, 2, 3... in arrival order (none lost, none reordered)" \
		jqc -n '[inputs | .seq] as $s | $s == [range(1; ($s | length) + 1)]' /tmp/events.json
	want="arm hold$(for ((k = 0; k < q; k++)); do printf ' release hold'; done) release disarm"
	for ((v = 0; v < n; v++)); do
		check "vCPU $v: arm, hold, then release+hold for each of the $q quanta, release, disarm" \
			test "$(jq -r --argjson v "$v" 'select(.vcpu_id == $v) | .event' /tmp/events.json | xargs)" = "$want"
	done
	check "holds are at or past their deadline and name vmpace (pid $c) as controller" \
		jqc -n --argjson c "$c" '[inputs | select(.event == "hold") |
			select(.guest_tsc < .deadline or .guest_tsc - .deadline != .overshoot or
			       .controller_pid != $c)] | length == 0' /tmp/events.json
	check "the final disarm was by ioctl (--on-close=release)" \
		jqc -n '[inputs | select(.event == "disarm" and .reason != "ioctl")] | length == 0' /tmp/events.json
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
	# a report is the grant plus the overshoot: vmpace aims 2 ns past the
	# grant's end, rounded up to a tick, and kvmclock's scale floors twice
	check "the trace has a row per quantum, each grant <= elapsed <= grant + overshoot" \
		awk -F, 'NR > 1 { n++; if ($3 < $2 || $3 > $2 + ($6 + 8) / 1000 || $1 != n) bad = 1 }
			 END { exit bad || n < 50 }' "$trace"
	check "the guest clock is simulated time plus a constant, within one quantum" \
		grep -q 'verdict: PASS: .* (within one quantum;' "$out"
}

# The adevs way, through vmpace-qemu: the seed's QEMU command line
# (-external_sim sock=N, -cpu ...,-kvmclock), a socketpair without
# close-on-exec whose both ends the child inherits; refsim keeps the
# guest's clock in lockstep as with "vmpace run".
wrapper_lockstep() {
	local out=/tmp/refsim-wrapper.out
	mapfile -t qemu < <("$here/guest/qemu-cmd.sh" "$BUILD/guest" 1)
	for i in "${!qemu[@]}"; do
		[ "${qemu[$i]}" = host,-xsave ] && qemu[$i]=host,-xsave,-kvmclock
	done
	"$refsim" --vmpace-qemu "$BUILD/vmpace/vmpace-qemu" --quantum-us 10000 \
		--sim-ms 1000 --stall-us 20000 --table-every 100 -- "${qemu[@]}" > "$out" 2>&1
	local rc=$?
	cat "$out"
	check "refsim with vmpace-qemu: verdict PASS (exit $rc)" grep -q 'verdict: PASS' "$out"
	check "vmpace-qemu dropped -kvmclock and said why" \
		grep -q "vmpace-qemu: dropped '-kvmclock' from -cpu" "$out"
	check "the guest clock is simulated time plus a constant, within one quantum" \
		grep -q 'verdict: PASS: .* (within one quantum;' "$out"
	check "vmpace ended the session cleanly" grep -q 'vmpace_status=0' "$out"
}

# refsim's output and children, then refsim and they are killed: a failed start
refsim_dump_kill() { # out pid
	cat "$1"
	ps -o pid,ppid,stat,comm --ppid "$2"
	pkill -KILL -P "$2"
	kill -KILL "$2" 2>/dev/null
}

# libvmpace with the real vmpace: the VMM dies in the middle of a session;
# refsim must end with libvmpace's account of it: the connection closed
# (vmp_await or vmp_grant), then vmpace's exit status and what it means
# (vmp_close).
refsim_vmm_dies() {
	local out=/tmp/refsim-dies.out qp rc i
	mapfile -t qemu < <("$here/guest/qemu-cmd.sh" "$BUILD/guest" 1)
	"$refsim" --vmpace "$vmpace" --quantum-us 10000 --sim-ms 600000 --stall-us 1000 \
		-- "${qemu[@]}" > "$out" 2>&1 &
	local sim_pid=$!
	# the guest is up (refsim said so) before QEMU is killed
	for ((i = 0; i < 1200; i++)); do
		grep -q 'refsim: guest up' "$out" && break
		kill -0 "$sim_pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q 'refsim: guest up' "$out"; then
		kill -0 "$sim_pid" 2>/dev/null && rc="still running" || rc=ended
		refsim_dump_kill "$out" "$sim_pid"
		check "the guest came up under refsim (refsim $rc)" false
		wait "$sim_pid"
		return
	fi
	check "the guest came up under refsim" true
	# refsim -> vmpace run -> QEMU
	qp=$(pgrep -P "$sim_pid" | head -n 1)
	[ -n "$qp" ] && qp=$(pgrep -P "$qp" | head -n 1)
	local comm
	comm=$(cat /proc/"$qp"/comm 2>/dev/null)
	if [ -n "$qp" ] && kill -KILL "$qp"; then
		check "QEMU found (pid $qp, $comm) and killed" true
	else
		refsim_dump_kill "$out" "$sim_pid"
		check "QEMU found and killed (refsim's grandchild: '$qp')" false
	fi
	wait "$sim_pid"; rc=$?
	tail -n 3 "$out"
	check "refsim ended with status 2 (error) (got $rc)" test "$rc" = 2
	check "libvmpace said the connection closed" \
		grep -qE '^refsim: (grant|report): vmpace closed the connection' "$out"
	check "and named vmpace's exit status and its meaning" \
		grep -qE '^refsim: vmpace \(pid [0-9]+\) exited with status 8 \(the VMM exited\)' "$out"
}

# Timed network I/O: netsim echoes the guest's UDP datagrams after a 2 ms
# simulated round trip; the guest times each one with its own clock.  Every
# round trip comes back, none in less than the simulated time (the guest
# cannot see the echo before its time), every echo reaches QEMU at its time
# with the NIC's interrupt; also when the simulator spends 20 ms of host time
# per quantum ("stall"), and with
# quantum-boundary stamps and delivery ("boundary", what a simulator
# without vmpace's timed I/O gets), whose error netsim prints; and with a QEMU that netsim
# starts itself, its NIC on a dgram netdev with Unix paths, then "vmpace
# --pid" on it ("attach").  An echo may be LATE (delivered at
# once, said so): when a quantum overshoots by more than the rest of the
# link delay, as the test VM's stalls can make it.
netsim_udp() { # udp|stall|boundary
	local out=/tmp/netsim-$1.out opts=()
	[ "$1" = stall ] && opts=(--stall-us 20000)
	[ "$1" = boundary ] && opts=(--boundary)
	[ "$1" = attach ] && opts=(--attach)
	mapfile -t qemu < <("$here/guest/qemu-cmd.sh" "$BUILD/guest" 1 20 null vmpace.udp=10)
	"$netsim" --vmpace "$vmpace" --delay-us 1000 --quantum-us 1000 "${opts[@]}" -- \
		"${qemu[@]}" > "$out" 2>&1
	local rc=$?
	cat "$out"
	check "netsim verdict (exit $rc)" test "$rc" = 0
	check "10 round trips, none lost" grep -q '^netsim: 10 round trips (0 lost)' "$out"
	check "every echo handed to QEMU no earlier than its time, with the NIC's interrupt" \
		grep -qE ': [0-9]+ late, 0 deferred, 0 without an interrupt, 0 out of time;' "$out"
}

# Timed serial bytes: sersim sends 10 short lines 50 ms of guest time apart,
# then one longer than a UART's receive FIFO, to the guest's virtio console
# ("virtio") or its second UART ("uart"); the guest answers each with the
# time its program read it.  Every line is handed to QEMU no earlier than
# its time, comes back whole and in order, stamped after it was handed
# over, and the guest's clock agrees with simulated time: one offset fits
# every line's read (between its handover and the report after its answer).
# No line is handed over later than the first stop at or after its time.
# Virtio console: that offset known within 10 ms, every line with its
# interrupt, the long one OK.  A line handed over while the guest had not
# answered the one before ("busy") may be DEFERRED or (virtio) come without
# an interrupt (the device was still full, or the driver had not asked for
# one); on the virtio console at most half the short lines (hence 50 ms
# apart: the nested guest, answering within a few ms, catches up within a
# line or two after it lost tens of ms of its time to the test VM's CPU
# working elsewhere; 20 ms apart, one such loss of 83 ms left 7 of 10 lines
# busy, CI 2026-12-04).  UART: the long line is
# DEFERRED (QEMU took what the FIFO holds while the guest was frozen) and
# still arrives whole.  How far each read lies from the median line's is
# printed (sersim(1)'s header says why it is not judged).
# "attach": the virtio console of a QEMU that sersim starts itself, its
# chardev a socket server on a Unix path, then "vmpace --pid" on it.
serial_lines() { # virtio|uart|attach (the virtio console, attached)
	local out=/tmp/sersim-$1.out rc opts=() mode=1 long=DEFERRED longd=DEFERRED
	if [ "$1" != uart ]; then
		opts=(--virtio) mode=2 long='(OK(, the guest busy)?|DEFERRED, the guest busy)$'
		longd="OK (or DEFERRED to a busy guest)"
	fi
	[ "$1" = attach ] && opts+=(--attach)
	mapfile -t qemu < <("$here/guest/qemu-cmd.sh" "$BUILD/guest" 1 20 null vmpace.serial=$mode)
	"$sersim" --vmpace "$vmpace" --lines 10 --gap-us 50000 --quantum-us 1000 \
		--max-error-us 10000 "${opts[@]}" -- "${qemu[@]}" > "$out" 2>&1
	rc=$?
	cat "$out"
	check "sersim verdict (exit $rc)" test "$rc" = 0
	check "11 of 11 lines answered in order, the short ones handed over at their time, OK (or DEFERRED to a busy guest)" \
		grep -qE '^sersim: 11 of 11 lines answered in order; 0 short lines not OK, [0-9]+ without an interrupt \([0-9]+ handed over while [^)]*\); 0 handed over' "$out"
	check "the guest's clock is on the simulated timeline (one offset fits every line it read)" \
		grep -q "^sersim: the guest's clock minus simulated time, from every line it read: one value fits them all" "$out"
	check "the long line $longd, and whole" \
		grep -qE "^sersim: the long line \(48 bytes, more than a UART's FIFO\): $long" "$out"
}

# Two paced guests on an ns-3 network (ns3sim): A pings B across a
# point-to-point link of 10 Mbit/s and 5 ms and times each round trip with
# its own clock, 10 times in each of three phases on the same guests: as is,
# with 20 ms of host time burnt between rounds ("stall"), and with
# quantum-boundary stamps (what adevs does: its error is printed beside).
# In each phase: every round trip back, none shorter than the simulated one,
# every frame from ns-3 handed to its guest no earlier than its time with the
# NIC's interrupt (ns3sim's verdict).  As is and with the stall, the part of
# the round trip that is the simulation's (A's request stamped to B's reply
# handed to A, less B's turnaround) exceeds the simulated round trip by at
# most twice the grants' overshoot p99 (the two stops at which the frames
# were handed over); and the stall moves the shortest round trip A measures
# by less than 10 ms: host time leaking into guest time would add 20 ms per
# round of 0.5 ms, to every round trip, the shortest too, while the guests'
# own paths in this nested test VM (the relay through QEMU, B's turnaround)
# only ever add, and more after each idle stall: the medians, printed, moved
# by 3 to 13 ms in runs without any leak (2026-12-01..04).
ns3_out=/tmp/ns3.out
ns3_field() { # phase, rtt|min|net|p99: that median (min, p99) from ns3sim's summary
	case $2 in
	rtt) sed -n "s/^ns3sim: $1: [0-9]* round trips, A's NIC timestamps: .* error min [-+0-9.]* median \([-+0-9.]*\) .*/\1/p" ;;
	min) sed -n "s/^ns3sim: $1: [0-9]* round trips, A's NIC timestamps: .* error min \([-+0-9.]*\) median .*/\1/p" ;;
	net) sed -n "s/^ns3sim: $1: the simulation's part .* by min [-+0-9.]* median \([-+0-9.]*\) .*/\1/p" ;;
	p99) sed -n "s/^ns3sim: $1: grants overshot by median [0-9.]* us, p99 \([0-9.]*\) us.*/\1/p" ;;
	esac < "$ns3_out" | head -n 1
}
ns3_p2p() {
	local out=$ns3_out n net p99 rc qa qb
	mapfile -t qa < <("$here/guest/qemu-cmd.sh" "$BUILD/guest" 1 5 null vmpace.ping=30)
	mapfile -t qb < <("$here/guest/qemu-cmd.sh" "$BUILD/guest" 1 5 null vmpace.echo=1)
	# as it goes, into the test's log (a run cut short still shows how far it got)
	"$ns3sim" --vmpace "$vmpace" --phases plain,stall,boundary --stall-us 20000 \
		--host-limit-s 240 -- "${qa[@]}" -- "${qb[@]}" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	check "ns3sim verdict (exit $rc)" test "$rc" = 0
	for n in plain stall boundary; do
		check "$n: 10 round trips, none lost, none shorter than the simulated one, every frame from ns-3 on time with an interrupt" \
			grep -q "^ns3sim: $n: every round trip came back" "$out"
		[ "$n" = boundary ] && continue
		net=$(ns3_field $n net) p99=$(ns3_field $n p99)
		check "$n: the simulation's part exceeds the simulated round trip by ${net:-?} us (median), at most 2 x the overshoot p99 (${p99:-?} us)" \
			awk -v e="$net" -v p="$p99" 'BEGIN { exit !(e != "" && p != "" && e >= 0 && e <= 2 * p) }'
	done
	echo "# median error of the round trips A measured: $(ns3_field plain rtt) us as is," \
		"$(ns3_field stall rtt) us with 20 ms of host time per round," \
		"$(ns3_field boundary rtt) us with quantum-boundary stamps"
	echo "# shortest: $(ns3_field plain min) us as is, $(ns3_field stall min) us with the stall"
	check "20 ms of host time per round moves the shortest round trip A measures by less than 10 ms" \
		awk -v a="$(ns3_field plain min)" -v b="$(ns3_field stall min)" \
		'BEGIN { d = a - b; exit !(a != "" && b != "" && d < 10000 && d > -10000) }'
}

# A command exits with a status and says something.
exp() { # expected-status expected-message args...
	local want=$1 msg=$2 out rc; shift 2
	out=$("$@" 2>&1); rc=$?
	check "'${*##*/}' exits $want with \"$msg\" (got $rc: $out)" \
		test "$rc" = "$want" -a -n "$(grep -F -- "$msg" <<<"$out")"
}

# Until a command succeeds, 20 s at most (a condition, polled).
until_ok() { # command...
	local i
	for i in $(seq 200); do "$@" && return 0; sleep 0.1; done
	return 1
}
has_vcpu() { ls -l "/proc/$1/fd" 2>/dev/null | grep -q kvm-vcpu; }

# vmpace --pid with --net/--serial on a QEMU a user started: what it
# refuses, and how (the working case: netsim-attach, serial-attach).
attach_io_errors() {
	local d q h v1 v2 rc
	d=$(mktemp -d /tmp/attach-io.XXXXXX)
	# n0 in QEMU's JSON syntax (netsim-attach has the key=value one)
	"${bios_vmm[@]}" -netdev "{\"type\": \"dgram\", \"id\": \"n0\",
		\"local\": {\"type\": \"unix\", \"path\": \"$d/n0.q\"},
		\"remote\": {\"type\": \"unix\", \"path\": \"$d/n0.v\"}}" \
		-device virtio-net-pci,netdev=n0 -netdev user,id=u0 -device virtio-net-pci,netdev=u0 \
		-chardev "socket,id=s0,path=$d/s0,server=on,wait=off" -serial chardev:s0 \
		-chardev "socket,id=t0,path=$d/t0,server=on,wait=off,telnet=on" \
		-qmp "unix:$d/qmp,server=on,wait=off" -qmp "unix:$d/qmp2,server=on,wait=off" & q=$!
	check "QEMU has its vCPU" until_ok has_vcpu $q
	local a=("$vmpace" --pid $q --sync-fd 0 --proto framed)
	exp 2 "--net with --pid needs --qmp PATH" "${a[@]}" --net n0
	exp 2 "--qmp is for vmpace --pid" "$vmpace" run --sync-fd 0 --qmp "$d/qmp" -- true
	exp 2 "--start is for vmpace --pid with --qmp" "${a[@]}" --start
	# a monitor of another process
	socat -u "UNIX-LISTEN:$d/other" /dev/null & h=$!
	check "another process listens" until_ok test -S "$d/other"
	exp 2 "--qmp $d/other: the socket $d/other is not process $q's (it listens in process $h)" \
		"${a[@]}" --net n0 --qmp "$d/other"
	kill $h; wait $h 2>/dev/null
	exp 2 "QEMU's command line has no -netdev with id=n9" "${a[@]}" --net n9 --qmp "$d/qmp"
	exp 2 "QEMU's -netdev user,id=u0 is not one vmpace can attach to" "${a[@]}" --net u0 \
		--qmp "$d/qmp"
	exp 2 "QEMU's command line has no -chardev with id=s9" "${a[@]}" --serial s9 --qmp "$d/qmp"
	exp 2 "is not one vmpace can attach to; it needs a plain Unix socket server" "${a[@]}" \
		--serial t0 --qmp "$d/qmp"
	exp 2 "--qmp $d/none: cannot connect to QEMU's $d/none: No such file or directory (a monitor of QEMU's" \
		"${a[@]}" --net n0 --qmp "$d/none"
	# a monitor that another client holds: QEMU serves one at a time
	socat -u "UNIX-CONNECT:$d/qmp2" - > "$d/greeting" & h=$!
	check "another client holds the monitor" until_ok grep -q QMP "$d/greeting"
	exp 1 "QEMU's monitor did not answer within 10000 ms" "${a[@]}" --net n0 --qmp "$d/qmp2" \
		--io-timeout 500
	kill $h
	# a vmpace that holds both ports (waiting for its simulator)
	VMPACE_VERBOSE=1 "$vmpace" --pid $q --sync-unix "$d/sim" --listen --proto framed \
		--net n0 --serial s0 --qmp "$d/qmp" > "$d/v1.log" 2>&1 & v1=$!
	check "a first vmpace opened both ports" until_ok grep -q "serial s0: connected" "$d/v1.log"
	exp 1 "cannot bind $d/n0.v, where QEMU sends its frames: in use (by another vmpace?)" \
		"${a[@]}" --net n0 --qmp "$d/qmp2"
	exp 1 "QEMU has not accepted vmpace's connection to $d/s0 within 10000 ms" \
		"${a[@]}" --serial s0 --qmp "$d/qmp2" --io-timeout 500
	# killed, it leaves its socket file behind: the next one replaces it
	kill -KILL $v1; wait $v1 2>/dev/null
	check "the killed vmpace left $d/n0.v" test -S "$d/n0.v"
	"$vmpace" --pid $q --sync-unix "$d/sim2" --listen --proto framed --on-close release \
		--net n0 --serial s0 --qmp "$d/qmp" --io-timeout 5000 > "$d/v2.log" 2>&1 & v2=$!
	check "the next vmpace listens" until_ok test -S "$d/sim2"
	# its simulator connects and closes: the session ends there
	socat -u /dev/null "UNIX-CONNECT:$d/sim2"
	wait $v2; rc=$?
	check "it attached and ended when its simulator closed (exit $rc: $(cat "$d/v2.log"))" \
		test "$rc" = 0
	check "and removed the socket it bound" test ! -e "$d/n0.v"
	check "QEMU runs on (--on-close release)" has_vcpu $q
	# a signal ends an attached vmpace's session: QEMU is released, not ended
	# (it is not vmpace's, monitor or not), and keeps its ports
	"$vmpace" --pid $q --sync-unix "$d/sim3" --listen --proto framed --net n0 --serial s0 \
		--qmp "$d/qmp" --io-timeout 5000 > "$d/v3.log" 2>&1 & v3=$!
	check "a third vmpace listens" until_ok test -S "$d/sim3"
	python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(120)' "$d/sim3" & h=$!
	frozen() {
		"$vmpace" status -j | jq -e --argjson p $q \
			'[.vms[] | select(.vmm_pid == $p and .frozen)] | length == 1' > /dev/null
	}
	check "it froze the VM (its simulator says nothing yet)" until_ok frozen
	kill -TERM $v3; wait $v3; rc=$?
	check "SIGTERM: exit 9 ($rc: $(cat "$d/v3.log"))" test "$rc" = 9
	# (has_vcpu, not kill -0: a QEMU that died is this shell's zombie)
	check "QEMU runs on after an attached vmpace's SIGTERM" has_vcpu $q
	check "and is paced no longer" until_ok eval '! frozen'
	kill $h; wait $h 2>/dev/null
	echo precious > "$d/n0.v"
	exp 1 "cannot bind $d/n0.v, where QEMU sends its frames: a file that is not a socket is there" \
		"${a[@]}" --net n0 --qmp "$d/qmp"
	check "the file is still there" grep -q precious "$d/n0.v"
	kill $q; wait $q 2>/dev/null
	# QEMUs whose socket paths vmpace cannot follow: relative paths of a
	# QEMU that daemonized (it changed directory since), one in another root
	local dq=(-netdev dgram,id=n0,local.type=unix,local.path=r.q,remote.type=unix,remote.path=r.v)
	(cd "$d" && "${bios_vmm[@]}" "${dq[@]}" -qmp "unix:$d/qmpd,server=on,wait=off" \
		-daemonize -pidfile "$d/qemu.pid")
	q=$(cat "$d/qemu.pid" 2>/dev/null)
	check "a daemonized QEMU has its vCPU" until_ok has_vcpu "$q"
	exp 2 "--net n0: QEMU's socket path r.q is relative and QEMU was started with -daemonize" \
		"$vmpace" --pid "$q" --sync-fd 0 --proto framed --net n0 --qmp "$d/qmpd"
	kill "$q"
	check "it ended" until_ok eval "! kill -0 $q 2>/dev/null"
	"${bios_vmm[@]}" -qmp "unix:$d/qmpc,server=on,wait=off" -chroot / \
		-netdev "dgram,id=n0,local.type=unix,local.path=$d/c.q,remote.type=unix,remote.path=$d/c.v" &
	q=$!
	check "a chrooted QEMU has its vCPU" until_ok has_vcpu $q
	exp 2 "QEMU runs in another root directory (-chroot): vmpace cannot reach its sockets" \
		"$vmpace" --pid $q --sync-fd 0 --proto framed --net n0 --qmp "$d/qmpc"
	kill $q; wait $q 2>/dev/null
	rm -rf "$d"
}

sim() { # scenario [simclient options...] -- qemu...: simclient, its vmpace log
	local sc=$1; shift
	local log=/tmp/vmpace-$sc.log
	rm -f "$log"
	"$simclient" --vmpace "$vmpace" --wrapper "$BUILD/vmpace/vmpace-qemu" \
		--vmpace-log "$log" "$@" || fail=1
	echo "--- vmpace's stderr:"; cat "$log" 2>/dev/null
}

case "${1:?test name}" in
adevs-fork|adevs-kill|wrapper)
	sim "$1" --run "$1" -- "${bios_vmm[@]}" ;;
wrapper-lockstep) wrapper_lockstep ;;
first)
	sim first --run --qmp /tmp/first.qmp first -- "${bios_vmm[@]}" \
		-qmp unix:/tmp/first.qmp,server=on,wait=off ;;
zero-step|half-close|half-close-early|partial-write|two-vms)
	sim "$1" "$1" -- "${bios_vmm[@]}" ;;
stall-stop)
	sim stall-stop --run --qmp /tmp/stall.qmp stall-stop -- "${bios_vmm[@]}" \
		-qmp unix:/tmp/stall.qmp,server=on,wait=off ;;
hotadd)
	# adopting the new vCPU must not disturb the paced one: each vCPU is
	# armed once (a re-arm would follow a disarm)
	start_monitor /tmp/hotadd.events -j
	sim hotadd --qmp /tmp/hotadd.qmp hotadd -- "${bios_vmm[@]}" -smp 1,maxcpus=2 \
		-qmp unix:/tmp/hotadd.qmp,server=on,wait=off
	kill -INT "$mon_pid"; wait
	for v in 0 1; do
		n=$(grep -c "\"event\":\"arm\",.*\"vcpu_id\":$v," /tmp/hotadd.events)
		check "vCPU $v was armed once ($n)" test "$n" = 1
	done ;;
ctrl-c)
	sim ctrl-c --run ctrl-c -- "${bios_vmm[@]}" ;;
peer-lost)
	# The simulator in its own network namespace behind a veth link, which
	# the test cuts: no FIN, no RST, the peer is just gone.
	modprobe veth 2>/dev/null
	ip netns add vmpace-sim &&
	ip link add vmpace-h type veth peer name vmpace-s netns vmpace-sim &&
	ip addr add 10.99.0.1/24 dev vmpace-h && ip link set vmpace-h up &&
	ip -n vmpace-sim addr add 10.99.0.2/24 dev vmpace-s &&
	ip -n vmpace-sim link set vmpace-s up && ip -n vmpace-sim link set lo up
	check "a network namespace for the simulator, with a veth link" test $? = 0
	sim peer-lost --transport tcp-netns peer-lost -- "${bios_vmm[@]}"
	ip link del vmpace-h 2>/dev/null; ip netns del vmpace-sim ;;
stopcont)
	# QEMU's stop/cont (libvirt suspend) while vmpace holds the guest.
	mapfile -t qemu < <("$here/guest/qemu-cmd.sh" "$BUILD/guest" 2 10 null)
	"$simclient" --vmpace "$vmpace" --qmp /tmp/stopcont.qmp --clock /tmp/stopcont.clock \
		stopcont -- "${qemu[@]}" -qmp unix:/tmp/stopcont.qmp,server=on,wait=off \
		-chardev file,id=clk,path=/tmp/stopcont.clock \
		-device isa-debugcon,iobase=0xe9,chardev=clk || fail=1 ;;
lockstep-1vcpu) lockstep 1 ;;
refsim-vmm-dies) refsim_vmm_dies ;;
lockstep-2vcpu) lockstep 2 ;;
proto-adevs|proto-partial|proto-huge-close|proto-truncated|proto-release)
	"$simclient" --vmpace "$vmpace" "${1#proto-}" -- "${bios_vmm[@]}" || fail=1 ;;
proto-ns64)
	"$simclient" --vmpace "$vmpace" --proto ns64 adevs -- "${bios_vmm[@]}" || fail=1 ;;
proto-framed|proto-framed-errors|proto-framed-flood)
	sim "${1#proto-}" --proto framed "${1#proto-}" -- "${bios_vmm[@]}" ;;
netsim-udp|netsim-stall|netsim-boundary|netsim-attach)
	netsim_udp "${1#netsim-}" ;;
serial-virtio|serial-uart|serial-attach) serial_lines "${1#serial-}" ;;
attach-io-errors) attach_io_errors ;;
ns3-p2p) ns3_p2p ;;
proto-framed-serial)
	# a UART on vmpace's serial port that nobody reads (the firmware idles)
	sim framed-serial --run --proto framed framed-serial -- "${bios_vmm[@]}" \
		-serial chardev:s0 ;;
proto-framed-net)
	# the NIC is the only boot device: the firmware's iPXE sends DHCP
	sim framed-net --run --proto framed framed-net -- "${bios_vmm[@]}" \
		-device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56 ;;
transport-tcp-listen|transport-tcp-connect|transport-unix-listen|transport-unix-connect)
	"$simclient" --vmpace "$vmpace" --transport "${1#transport-}" adevs -- \
		"${bios_vmm[@]}" || fail=1 ;;
fault-kill-vmm|fault-kill-sim|fault-kill-vmpace|fault-sigterm)
	"$simclient" --vmpace "$vmpace" "${1#fault-}" -- "${bios_vmm[@]}" || fail=1 ;;
status-hook) status_hook ;;
monitor)
	# Monitors: every event as JSON and as text, and only those of a VMM
	# with pid 1 (none).
	start_monitor /tmp/monitor-all.out -j; all=$mon_pid
	start_monitor /tmp/monitor-text.out; text=$mon_pid
	start_monitor /tmp/monitor-pid1.out -j --pid 1; pid1=$mon_pid
	out=$("$simclient" --vmpace "$vmpace" --hook "$0 status-hook" monitor -- \
		"${bios_vmm[@]}" -smp 2 2>&1) || fail=1
	echo "$out"
	kill -INT "$all" "$text" "$pid1"
	wait "$all"; rc=$?
	check "SIGINT ends vmpace monitor with status 0 (got $rc)" test "$rc" = 0
	wait "$text" "$pid1"
	read -r qp vp q n < <(sed -n 's/^simclient: qemu_pid=\([0-9]*\) vmpace_pid=\([0-9]*\) quanta=\([0-9]*\) vcpus=\([0-9]*\)$/\1 \2 \3 \4/p' <<<"$out")
	check "simclient reported the session (qemu $qp, vmpace $vp, $q quanta, $n vCPUs)" \
		test -n "$qp" -a "${n:-0}" = 2
	check_events /tmp/monitor-all.out "$qp" "$vp" "$q" "$n"
	check "monitor --pid 1 saw no event of another VMM" \
		test "$(grep -c '"event"' /tmp/monitor-pid1.out)" = 0
	check "no event was lost" test -z "$(grep -i lost /tmp/monitor-all.out)"
	echo "vmpace monitor (text):"; head -n 8 /tmp/monitor-text.out; tail -n 4 /tmp/monitor-text.out
	check "the text monitor printed a line per event" \
		test "$(grep -cE '^[0-9:.]+  vm [0-9]+ pid [0-9]+ vcpu [0-9]+  (arm|hold|release|disarm) ' \
			/tmp/monitor-text.out)" = "$(wc -l < /tmp/events.json)"
	;;
monitor-unload)
	# KVM goes away under a listening monitor: it must notice and exit 0.
	start_monitor /tmp/monitor-unload.out
	rmmod kvm_amd kvm
	check "rmmod kvm_amd kvm with a monitor listening" test $? = 0
	timeout 30 tail --pid="$mon_pid" -f /dev/null
	wait "$mon_pid"; rc=$?
	cat /tmp/monitor-unload.out
	check "the monitor exited 0 when the family went away (got $rc)" test "$rc" = 0
	check "and said why" grep -q 'kvm_pace family is gone' /tmp/monitor-unload.out
	insmod "$MODULES/kvm.ko" && insmod "$MODULES/kvm-amd.ko" $KVM_AMD_PARAMS
	check "KVM loads again" test $? = 0
	out=$("$vmpace" status 2>&1); rc=$?
	check "the family is back: vmpace status exits 0 ($rc: $out)" test "$rc" = 0
	;;
attach-errors)
	exp 2 "name exactly one of" "$vmpace" --pid 1
	exp 2 "--on-close is terminate|release" "$vmpace" --pid 1 --sync-fd 0 --on-close=x
	exp 2 "unknown command" "$vmpace" frobnicate
	exp 2 "is not an open file descriptor" "$vmpace" run --sync-fd 77 -- true
	exp 3 "no process with pid" "$vmpace" --pid 999999 --sync-fd 0
	sleep 600 & victim=$!
	exp 4 "has no KVM vCPUs" "$vmpace" --pid $victim --sync-fd 0
	kill $victim
	"${bios_vmm[@]}" & q=$!
	for i in $(seq 100); do [ -n "$(ls -l /proc/$q/fd 2>/dev/null | grep kvm-vcpu)" ] && break; sleep 0.1; done
	exp 5 "not permitted" setpriv --reuid=65534 --regid=65534 --clear-groups "$vmpace" --pid $q --sync-fd 0
	exp 2 "--zero-grant is end|step" "$vmpace" --pid $q --sync-fd 0 --zero-grant=x
	exp 2 "invalid --stall-warn" "$vmpace" --pid $q --sync-fd 0 --stall-warn=-1
	exp 2 "invalid --peer-timeout" "$vmpace" --pid $q --sync-fd 0 --peer-timeout=0
	exp 2 "no --vm" "$vmpace" run --sync-fd 0 --vm 1 -- true
	echo precious > /tmp/not-a-socket
	exp 1 "is not a socket: not removing it" "$vmpace" --pid $q --sync-unix /tmp/not-a-socket --listen
	check "the file is still there" grep -q precious /tmp/not-a-socket
	# --listen without an address: loopback only
	"$vmpace" --pid $q --sync-tcp :47999 --listen & l=$!
	for i in $(seq 100); do ss -ltnH 'sport = 47999' | grep -q . && break; sleep 0.1; done
	check "--sync-tcp :PORT --listen listens on 127.0.0.1 only ($(ss -ltnH 'sport = 47999' | awk '{print $4}'))" \
		test "$(ss -ltnH 'sport = 47999' | awk '{print $4}')" = 127.0.0.1:47999
	kill $l; wait $l 2>/dev/null
	kill $q; wait $q 2>/dev/null
	exp 2 "no -external_sim sock=FD" "$BUILD/vmpace/vmpace-qemu" -m 64
	exp 2 "-external_sim takes sock=FD, not 'sock=x'" "$BUILD/vmpace/vmpace-qemu" -external_sim sock=x
	exp 2 "-external_sim takes sock=FD, not 'fd=3'" "$BUILD/vmpace/vmpace-qemu" -external_sim fd=3
	exp 8 "exited (status 1) before it was ready" "$vmpace" run --sync-fd 0 -- \
		qemu-system-x86_64 -no-such-option
	exp 1 "cannot run /nonexistent" "$vmpace" run --sync-fd 0 -- /nonexistent
	exp 2 "-daemonize would leave vmpace without its QEMU" "$vmpace" run --sync-fd 0 -- \
		qemu-system-x86_64 -daemonize
	exp 2 "unrecognized option" env VMPACE_OPTS=--bogus "$BUILD/vmpace/vmpace-qemu" \
		-m 64 -external_sim sock=0
	exp 2 "name exactly one of" env VMPACE_OPTS="--sync-unix /tmp/x" \
		"$BUILD/vmpace/vmpace-qemu" -m 64 -external_sim sock=0
	exp 2 "VMPACE_OPTS: 'stray' is not a vmpace option" env VMPACE_OPTS="-v stray" \
		"$BUILD/vmpace/vmpace-qemu" -m 64 -external_sim sock=0
	# a session that cannot start ends the QEMU it started (it never ran)
	exp 1 "cannot write the trace" timeout 60 "$vmpace" run --sync-fd 0 \
		--trace /no/such/dir/t.csv -- "${bios_vmm[@]}"
	check "and left no QEMU behind ($(pgrep -a qemu-system))" test -z "$(pgrep qemu-system)"
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
