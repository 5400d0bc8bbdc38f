#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the test VM (Debian's kernel under TCG, -cpu max = AMD SVM + NPT), load
# KVM modules, run a list of tests inside, bring back TAP, logs and dmesg.
#
# Usage: vm-run.sh [options] TESTS-FILE | --shell
#   --modules distro|DIR   KVM modules to load (default: build/modules, or
#                          build/modules-debug with --kernel debug)
#   --kernel distro|debug|RELEASE
#                          boot Debian's pinned kernel (default), the debug
#                          test kernel (build-debug-kernel.sh: KASAN, lockdep,
#                          UBSAN, KFENCE, panic_on_warn), or another installed
#                          Debian kernel, e.g. 6.1.0-57-amd64 (modules: its
#                          build, build/kver/RELEASE/modules)
#   --name NAME            results go to build/vm/NAME (default: tests file name)
#   --smp N --mem MB       test VM size (default 2, 3072)
#   --retry                rerun a failing test once (regression runs)
#   --shell                interactive shell in the VM, modules loaded
#   --append ARGS          more test VM kernel parameters (tsc=unstable: the
#                          host TSC handling KVM falls back to on hosts without a
#                          stable TSC)
#   --qmp PATH             where to put the QMP socket of the test VM's QEMU
#                          (default: a temporary one; for debugging a hang:
#                          human-monitor-command "info lapic")
# TESTS-FILE lines: "name<TAB>timeout-seconds<TAB>command[<TAB>known bug]"
#   (a failing test with a known bug is reported "not ok ... # TODO", no failure)
#
# The host enforces a timeout for the whole VM (sum of test timeouts + boot
# margin): a hung guest is a failure with the console log shown.  dmesg is
# checked for WARN/BUG/Oops/lockdep/KASAN-style reports.
#
# Stalls: QEMU 7.2 TCG sometimes leaves a test VM CPU halted for good with its
# LAPIC timer vector pending in IRR (IF=1; not even an NMI gets it going):
# nothing re-evaluates the APIC until another interrupt arrives.  A watchdog
# here reads every CPU's state over QMP once a second ("info registers" and
# "info lapic N", from outside: nothing runs in the test VM for it).  When a
# CPU was halted with its timer vector in IRR in three polls in a row, it
# presses Shift on the test VM's PS/2 keyboard: the keyboard interrupt makes
# QEMU re-evaluate the APIC and the lost timer interrupt is delivered.  (A
# pending timer vector alone is no sign: it was seen pending for seconds on
# CPUs that were busy running nested guests.)  Every kick is logged in
# build/vm/NAME/stalls and reported as a TAP comment.
#
# Wedges: a CPU can also lose its timer interrupt while it is busy (running
# a nested guest), where the test above cannot see it, and then the in-VM
# timeouts never fire either.  guest-run.sh moves a heartbeat counter every
# 2 s of guest time: when it stands still for 20 s, the watchdog presses
# Shift as well (logged in stalls the same way).  And it knows which test
# runs and its timeout: a test with no result 60 s after its timeout means
# the test VM is wedged for good; the watchdog stops it, the test is
# reported "not ok ... host watchdog", and the test VM is booted again for
# the tests after it (at most twice per run).  Nothing waits for ever.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"

modules= kernel_kind=distro smp=2 mem=3072 retry=0 shell=0 name= tests= qmp= append=
while [ $# -gt 0 ]; do
	case "$1" in
	--modules) modules=$2; shift 2 ;;
	--kernel) kernel_kind=$2; shift 2 ;;
	--name) name=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--retry) retry=1; shift ;;
	--shell) shell=1; shift ;;
	--qmp) qmp=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	-*) die "unknown option $1" ;;
	*) tests=$1; shift ;;
	esac
done
[ "$shell" = 1 ] || [ -n "$tests" ] || die "usage: vm-run.sh [options] TESTS-FILE | --shell"
case "$kernel_kind" in
distro|"$KREL")
	kernel_kind=distro
	kernel=/boot/vmlinuz-$KREL
	modules=${modules:-$BUILD/modules}
	kparams="loglevel=4"
	;;
debug)
	kernel=$BUILD/debug-kernel/current/obj/arch/x86/boot/bzImage
	[ -e "$kernel" ] || die "no debug test kernel: run 'make check-debug' (or build-debug-kernel.sh)"
	modules=${modules:-$BUILD/modules-debug}
	[ "$modules" != distro ] || die "the debug kernel has no distro modules"
	# Any checker's report stops the test VM (panic_on_warn: KASAN, UBSAN
	# and KFENCE reports count as warnings); the console shows level 4.
	# no5lvl: QEMU's -cpu max offers LA57, and a KASAN kernel on 5-level
	# paging reports a false "wild-memory-access" for an interrupt that
	# takes a lock while identify_cpu() has the boot CPU's capability words
	# zeroed: before alternatives are applied pgtable_l5_enabled() reads
	# them, so KASAN_SHADOW_START is the 4-level one for a moment and every
	# 5-level kernel address looks unmapped (upstream 6.12; seen in about
	# one boot in six of this kernel, RIP just after identify_cpu()'s
	# memset()s).  4-level paging has no such window.
	kparams="loglevel=5 panic_on_warn=1 kasan.fault=panic hung_task_panic=1 no5lvl"
	;;
[0-9]*)
	kernel=/boot/vmlinuz-$kernel_kind
	[ -e "$kernel" ] || die "no $kernel: install linux-image-$kernel_kind"
	modules=${modules:-$BUILD/kver/$kernel_kind/modules}
	kparams="loglevel=4"
	;;
*) die "--kernel distro|debug|RELEASE" ;;
esac
[ "$modules" = distro ] || [ -e "$modules/kvm.ko" ] || [ -e "$modules/kvm.ko.xz" ] ||
	die "no kvm.ko in $modules: run 'make modules'"
[ "$modules" = distro ] || modules=$(cd "$modules" && pwd)
name=${name:-$( [ "$shell" = 1 ] && echo shell || basename "$tests" )}

case "$kernel_kind" in
[0-9]*) initrd=$("$here/mkinitramfs.sh" "$kernel_kind") ;;
*) initrd=$("$here/mkinitramfs.sh") ;;
esac
R=$BUILD/vm/$name
rm -rf "$R"
mkdir -p "$R"
limit=120
if [ "$shell" = 0 ]; then
	grep -v '^#' "$tests" | grep . > "$R/tests" || die "$tests lists no test"
	limit=$(awk -F'\t' '{ s += $2 + 10 } END { print s + 120 }' "$R/tests")
else
	: > "$R/tests"
fi
cat > "$R/job" <<JOB
MODULES=$modules
KVM_AMD_PARAMS="npt=0"
RETRY=$retry
RETRY_PREFIX=upstream/
SHELL_MODE=$shell
JOB

qemu=(qemu-system-x86_64 -accel tcg,thread=single -cpu max -smp "$smp" -m "$mem"
      -nographic -no-reboot -nodefaults -serial mon:stdio
      -kernel "$kernel" -initrd "$initrd"
      -append "console=ttyS0 panic=-1 $kparams vmpace.run=$here/guest-run.sh${append:+ $append}"
      -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
      -virtfs "local,path=$R,mount_tag=results,security_model=none,multidevs=remap")
if [ "$shell" = 1 ]; then
	[ -z "$qmp" ] || qemu+=(-qmp "unix:$qmp,server=on,wait=off")
	exec "${qemu[@]}"
fi
tmpq=
if [ -z "$qmp" ]; then
	tmpq=$(mktemp -d /tmp/vmpace-vm.XXXXXX)
	qmp=$tmpq/qmp.sock
fi
qemu+=(-qmp "unix:$qmp,server=on,wait=off")

# The stall watchdog (see the top of this file).
stalled_cpus() { # CPUs halted with their LAPIC timer vector pending in IRR
	local hmp='{"execute":"human-monitor-command","arguments":{"command-line":"%s","cpu-index":%d}}\n'
	{
		echo '{"execute":"qmp_capabilities"}'
		for ((i = 0; i < smp; i++)); do
			# shellcheck disable=SC2059
			printf "$hmp" "info registers" "$i"
			# shellcheck disable=SC2059
			printf "$hmp" "info lapic $i" "$i"
		done
	} | socat -t 0.5 - "UNIX-CONNECT:$qmp" 2>/dev/null |
	jq -r 'select(.return | type == "string") | .return' 2>/dev/null | tr -d '\r' |
	awk '/^CPU#[0-9]+/ { cpu = substr($1, 5) }
	     /^dumping local APIC state for CPU/ { cpu = $NF }
	     / HLT=1/ { hlt[cpu] = 1 }
	     /^LVTT\t/ && match($0, /vec [0-9]+/) { vec[cpu] = substr($0, RSTART + 4, RLENGTH - 4) }
	     /^IRR\t/ { irr[cpu] = $0 " " }
	     END { for (c in vec) if (hlt[c] && index(irr[c], " " vec[c] " ")) print c }'
}
qmp_cmd() { # QMP command (JSON) -> sent to the test VM's QEMU
	printf '%s\n' '{"execute":"qmp_capabilities"}' "$1" |
		socat -t 0.5 - "UNIX-CONNECT:$qmp" > /dev/null 2>&1
}
press_shift() { # why
	qmp_cmd '{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"shift"}]}}' ||
		return 1
	echo "$(date -u +%T) $1: pressed Shift" >> "$R/stalls"
}
watchdog() { # runs in the background: failures (no socket yet) are no errors
	local same=0 cpus hb= hb_last= hb_t=$SECONDS run= run_last= run_t=$SECONDS lim age
	set +e +o pipefail
	while sleep 1; do
		[ ! -e "$R/done" ] || break
		# a running test that never ends: the test VM is wedged
		run=$(cat "$R/running" 2>/dev/null)
		if [ "$run" != "$run_last" ]; then
			run_last=$run run_t=$SECONDS
		elif [ -n "$run" ] && [ ! -e "$R/wedged" ]; then
			lim=$(printf '%s' "$run" | cut -f3)
			age=$((SECONDS - run_t))
			if [ "$age" -gt $((lim + 60)) ]; then
				printf '%s\t%s\n' "$run" \
					"no result ${age} s after it started (in-VM timeout ${lim} s, try $(printf '%s' "$run" | cut -f2)): the test VM is wedged; the host watchdog stopped it" \
					> "$R/wedged"
				qmp_cmd '{"execute":"quit"}'
				continue
			fi
		fi
		# a guest whose timers stopped: its heartbeat stands still
		hb=$(cat "$R/heartbeat" 2>/dev/null)
		if [ "$hb" != "$hb_last" ]; then
			hb_last=$hb hb_t=$SECONDS
		elif [ -n "$hb" ] && [ $((SECONDS - hb_t)) -ge 20 ]; then
			press_shift "heartbeat of the test VM stood still for $((SECONDS - hb_t)) s (timer interrupt lost on a busy CPU)"
			hb_t=$SECONDS
		fi
		cpus=$(stalled_cpus | tr '\n' ' ')
		if [ -z "$cpus" ]; then
			same=0
			continue
		fi
		same=$((same + 1))
		[ "$same" -ge 3 ] || continue
		press_shift "CPU ${cpus% } halted with its LAPIC timer interrupt pending for ${same} s" || continue
		same=0
	done
}

log "$name: booting test VM (limit ${limit}s, modules: $modules)"
wd=
trap '[ -z "$wd" ] || kill "$wd" 2>/dev/null' EXIT
wedges=0 stopped=0
while :; do
	# one watchdog per boot: none sees the files of an earlier boot
	rm -f "$R/running" "$R/heartbeat" "$R/wedged"
	watchdog &
	wd=$!
	rc=0
	timeout -k 10 "$limit" "${qemu[@]}" < /dev/null > "$R/console.log" 2>&1 || rc=$?
	kill "$wd" 2>/dev/null || true
	wait "$wd" 2>/dev/null || true
	wd=
	# A kernel that dies while booting, before any test ran, is booted once
	# more (seen before no5lvl, above: the debug kernel's false KASAN report
	# in an early interrupt); the first console is kept and the retry is
	# reported.
	if [ ! -e "$R/done" ] && [ ! -e "$R/console-boot-failed.log" ] &&
	   ! grep -q 'vmpace-init: running' "$R/console.log"; then
		mv "$R/console.log" "$R/console-boot-failed.log"
		log "$name: test VM died while booting, before any test: booting again" \
		    "(first console: $R/console-boot-failed.log)"
		grep -m1 -E 'BUG:|Kernel panic' "$R/console-boot-failed.log" | sed 's/^/  | /' >&2 || true
		continue
	fi
	stopped=0
	[ -e "$R/wedged" ] && [ ! -e "$R/done" ] || break
	stopped=1
	# The watchdog stopped a wedged test VM: that test failed; the tests
	# after it run in a new boot.
	wedges=$((wedges + 1))
	IFS=$'\t' read -r wn _ _ wname why < "$R/wedged"
	mv "$R/console.log" "$R/console-wedged-$wedges.log"
	mv "$R/wedged" "$R/wedged-$wedges"
	log "$name: $wname: $why (console: $R/console-wedged-$wedges.log)"
	# (unless the test gave its result just as the watchdog stopped it)
	grep -q "^\(not \)\?ok $wn " "$R/tap" 2>/dev/null || {
		echo "not ok $wn - $wname # TIMEOUT host watchdog: $why"
		{ tail -n 15 "$R/logs/${wname//\//_}.log" 2>/dev/null || true; } |
			tr -d '\r' | cut -c1-200 | sed 's/^/# /'
		echo "# the test VM's console before it was stopped:"
		{ tail -n 10 "$R/console-wedged-$wedges.log" || true; } |
			tr -d '\r' | cut -c1-200 | sed 's/^/#   | /'
	} >> "$R/tap"
	[ "$wn" -lt "$(wc -l < "$R/tests")" ] && [ "$wedges" -le 2 ] || break
	sed -i '/^SKIP=/d' "$R/job"
	echo "SKIP=$wn" >> "$R/job"
	log "$name: booting the test VM again for the tests after $wname"
done
[ -z "$tmpq" ] || rm -rf "$tmpq"
if [ -s "$R/stalls" ]; then
	log "$name: the test VM stalled $(wc -l < "$R/stalls") time(s) (lost LAPIC timer interrupt, QEMU TCG) and was kicked, see $R/stalls"
fi

fail=0
[ "$wedges" -eq 0 ] || fail=1
if [ ! -e "$R/done" ]; then
	if [ "$stopped" = 1 ]; then
		log "$name: the host watchdog stopped the test VM $wedges time(s), see $R/wedged-*"
	elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		log "$name: test VM did not finish within ${limit}s: console log follows"
	else
		log "$name: test VM stopped early (qemu exit $rc): console log follows"
	fi
	[ "$stopped" = 1 ] || tail -n 60 "$R/console.log" | sed 's/^/  | /' >&2
	fail=1
fi
[ -s "$R/tap" ] && sed "s/^\(\(not \)\?ok [0-9]* - \)/\1$name: /" "$R/tap" | grep -v '^1\.\.'
[ -s "$R/stalls" ] && sed "s/^/# $name: test VM stall: /" "$R/stalls"
[ ! -e "$R/console-boot-failed.log" ] ||
	echo "# $name: test VM died while booting once and was booted again ($R/console-boot-failed.log)"
# KVM handles TSCs differently once the host TSC is unstable (the clocksource
# watchdog of a loaded TCG guest may decide so at any time): say when.
grep -hE 'Marking (clocksource .tsc.|TSC) (as )?unstable' "$R/dmesg" "$R/console.log" 2>/dev/null |
	sort -u | sed "s/^/# $name: test VM TSC: /" || true
# Report what did not run at all
total=$(wc -l < "$R/tests")
for i in $(seq 1 "$total"); do
	grep -q "^\(not \)\?ok $i " "$R/tap" 2>/dev/null && continue
	t=$(sed -n "${i}p" "$R/tests" | cut -f1)
	echo "not ok - $name: $t # did not run (VM died)"
done
grep '^not ok' "$R/tap" 2>/dev/null | grep -qv '# TODO' && fail=1

# Kernel reports in the guest's log are failures.
# (the debug test kernel's checkers: KASAN, KFENCE and lockdep reports start
# with BUG: or WARNING:, UBSAN's and debug objects' with their names)
pat='WARNING:|BUG:|Oops|general protection fault|Call Trace|possible recursive locking|KASAN:|UBSAN:|KFENCE:|ODEBUG:|soft lockup|hard LOCKUP|blocked for more than|rcu_sched detected stall|RCU stall|kernel BUG|Kernel panic'
logs=("$R/dmesg")
[ -e "$R/dmesg" ] || logs=("$R/console.log")
for f in "$R"/console-wedged-*.log; do [ ! -e "$f" ] || logs+=("$f"); done
# (grep exits 2 when a file is missing, even after a match: only files that exist)
for f in "${logs[@]}"; do [ ! -e "$f" ] || grep -hE "$pat" "$f"; done > "$R/kernel-reports" || true
if [ -s "$R/kernel-reports" ]; then
	echo "not ok - $name: guest kernel log clean"
	sed 's/^/# /' "$R/kernel-reports" | head -n 20
	fail=1
else
	echo "ok - $name: guest kernel log clean"
fi
exit $fail
