#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the test VM (Debian's kernel under TCG, -cpu max = AMD SVM + NPT), load
# KVM modules, run a list of tests inside, bring back TAP, logs and dmesg.
#
# Usage: vm-run.sh [options] TESTS-FILE | --shell
#   --modules distro|DIR   KVM modules to load (default: build/modules, or
#                          build/modules-debug with --kernel debug)
#   --kernel distro|debug  boot Debian's kernel (default) or the debug test
#                          kernel (build-debug-kernel.sh: KASAN, lockdep,
#                          UBSAN, KFENCE, panic_on_warn)
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
distro)
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
	kparams="loglevel=5 panic_on_warn=1 kasan.fault=panic hung_task_panic=1"
	;;
*) die "--kernel distro|debug" ;;
esac
[ "$modules" = distro ] || [ -e "$modules/kvm.ko" ] || [ -e "$modules/kvm.ko.xz" ] ||
	die "no kvm.ko in $modules: run 'make modules'"
[ "$modules" = distro ] || modules=$(cd "$modules" && pwd)
name=${name:-$( [ "$shell" = 1 ] && echo shell || basename "$tests" )}

initrd=$("$here/mkinitramfs.sh")
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
watchdog() { # runs in the background: failures (no socket yet) are no errors
	local same=0 cpus
	set +e +o pipefail
	while sleep 1; do
		[ ! -e "$R/done" ] || break
		cpus=$(stalled_cpus | tr '\n' ' ')
		if [ -z "$cpus" ]; then
			same=0
			continue
		fi
		same=$((same + 1))
		[ "$same" -ge 3 ] || continue
		printf '%s\n' '{"execute":"qmp_capabilities"}' \
			'{"execute":"send-key","arguments":{"keys":[{"type":"qcode","data":"shift"}]}}' |
			socat -t 0.5 - "UNIX-CONNECT:$qmp" > /dev/null 2>&1 || continue
		echo "$(date -u +%T) CPU ${cpus% } halted with its LAPIC timer interrupt pending for ${same} s: pressed Shift" >> "$R/stalls"
		same=0
	done
}

log "$name: booting test VM (limit ${limit}s, modules: $modules)"
watchdog &
wd=$!
rc=0
timeout -k 10 "$limit" "${qemu[@]}" < /dev/null > "$R/console.log" 2>&1 || rc=$?
# A kernel that dies while booting, before any test ran, is booted once
# more (seen: the debug kernel under TCG, a KASAN report in an interrupt
# during early boot in pristine code, about one boot in six); the first
# console is kept and the retry is reported.
if [ ! -e "$R/done" ] && ! grep -q 'vmpace-init: running' "$R/console.log"; then
	mv "$R/console.log" "$R/console-boot-failed.log"
	log "$name: test VM died while booting, before any test: booting again" \
	    "(first console: $R/console-boot-failed.log)"
	grep -m1 -E 'BUG:|Kernel panic' "$R/console-boot-failed.log" | sed 's/^/  | /' >&2 || true
	rc=0
	timeout -k 10 "$limit" "${qemu[@]}" < /dev/null > "$R/console.log" 2>&1 || rc=$?
fi
kill "$wd" 2>/dev/null || true
wait "$wd" 2>/dev/null || true
[ -z "$tmpq" ] || rm -rf "$tmpq"
if [ -s "$R/stalls" ]; then
	log "$name: the test VM stalled $(wc -l < "$R/stalls") time(s) (lost LAPIC timer interrupt, QEMU TCG) and was kicked, see $R/stalls"
fi

fail=0
if [ ! -e "$R/done" ]; then
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		log "$name: test VM did not finish within ${limit}s: console log follows"
	else
		log "$name: test VM stopped early (qemu exit $rc): console log follows"
	fi
	tail -n 60 "$R/console.log" | sed 's/^/  | /' >&2
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
if [ -e "$R/done" ] || [ -s "$R/tap" ]; then
	ran=$(grep -c '^\(not \)\?ok' "$R/tap" || true)
else
	ran=0
fi
total=$(wc -l < "$R/tests")
for i in $(seq $((ran + 1)) "$total"); do
	t=$(sed -n "${i}p" "$R/tests" | cut -f1)
	echo "not ok - $name: $t # did not run (VM died)"
done
grep '^not ok' "$R/tap" 2>/dev/null | grep -qv '# TODO' && fail=1

# Kernel reports in the guest's log are failures.
# (the debug test kernel's checkers: KASAN, KFENCE and lockdep reports start
# with BUG: or WARNING:, UBSAN's and debug objects' with their names)
pat='WARNING:|BUG:|Oops|general protection fault|Call Trace|possible recursive locking|KASAN:|UBSAN:|KFENCE:|ODEBUG:|soft lockup|hard LOCKUP|blocked for more than|rcu_sched detected stall|RCU stall|kernel BUG|Kernel panic'
dm=$R/dmesg
[ -e "$dm" ] || dm=$R/console.log
if grep -E "$pat" "$dm" > "$R/kernel-reports" 2>/dev/null; then
	echo "not ok - $name: guest kernel log clean"
	sed 's/^/# /' "$R/kernel-reports" | head -n 20
	fail=1
else
	echo "ok - $name: guest kernel log clean"
fi
exit $fail
