#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test VM, chrooted into the host's root (read-only 9p).
# $1 is the results directory shared read-write with the host; it holds
#   job    NAME=value lines: MODULES (distro or a directory with our .ko files),
#          KVM_AMD_PARAMS, RETRY (0/1) for names starting RETRY_PREFIX,
#          SHELL_MODE (0/1)
#   tests  "name<TAB>timeout-seconds<TAB>command[<TAB>known bug]" lines; a
#          failing test with a known bug is "not ok ... # TODO known bug: ..."
# and receives tap (written as tests finish), logs/NAME.log, dmesg, done.
set -u
R=$1
. "$R/job"
export MODULES KVM_AMD_PARAMS	# tests that reload KVM (vmpace/monitor-unload)
mkdir -p "$R/logs"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp TMPDIR=/tmp
tap=$R/tap
[ "${SKIP:-0}" -gt 0 ] || : > "$tap"
krel=$(uname -r)

loadmod() { # path [params...]
	insmod "$@" || { echo "guest: insmod $* failed" >&2; return 1; }
}

kofile() { # dir name -> dir/name.ko, or .ko.xz if only that exists
	if [ ! -e "$1/$2.ko" ] && [ -e "$1/$2.ko.xz" ]; then
		echo "$1/$2.ko.xz"
	else
		echo "$1/$2.ko"
	fi
}

modfile() { # name -> $MODULES/name.ko, or .ko.xz if only that exists
	kofile "$MODULES" "$1"
}

load_kvm() {
	# Debian's 6.12 modules are .ko.xz, its 6.1 modules .ko
	local d=/lib/modules/$krel/kernel
	if [ "$MODULES" != distro ] && [ -e "$MODULES/irqbypass.ko" ]; then
		# the debug test kernel: no SEV, so kvm-amd needs no ccp
		loadmod "$MODULES/irqbypass.ko" || return 1
	else
		loadmod "$(kofile $d/virt/lib irqbypass)" &&
		loadmod "$(kofile $d/drivers/crypto/ccp ccp)" || return 1
	fi
	if [ "$MODULES" = distro ]; then
		loadmod "$(kofile $d/arch/x86/kvm kvm)" &&
		loadmod "$(kofile $d/arch/x86/kvm kvm-amd)" $KVM_AMD_PARAMS
	else
		# ours: the build's kvm.ko, or DKMS's kvm.ko.xz (make check-deb)
		loadmod "$(modfile kvm)" &&
		loadmod "$(modfile kvm-amd)" $KVM_AMD_PARAMS
	fi
}

if ! load_kvm; then
	echo "not ok 1 - load KVM modules ($MODULES)" >> "$tap"
	dmesg > "$R/dmesg"
	echo failed > "$R/done"
	exit 1
fi
echo "guest: KVM modules loaded from $MODULES (taint $(cat /proc/sys/kernel/tainted))"

if [ "${SHELL_MODE:-0}" = 1 ]; then
	echo "guest: test VM shell; 'exit' powers off"
	cd /
	setsid -c /bin/bash -i </dev/ttyS0 >/dev/ttyS0 2>&1
	echo done > "$R/done"
	exit 0
fi

# Stalls the host's watchdog kicked so far (vm-run.sh writes $R/stalls).
nr_stalls() { if [ -f "$R/stalls" ]; then wc -l < "$R/stalls"; else echo 0; fi; }

# The host's watchdog (vm-run.sh) tells a test VM whose timer interrupts
# stopped from a busy one by this counter: it moves every 2 s of guest time
# while the guest's timers work, whatever the tests do.
( i=0; while sleep 2; do i=$((i + 1)); echo "$i" > "$R/heartbeat"; done ) &
heartbeat=$!

# SKIP: tests already reported by an earlier boot of this run (vm-run.sh
# boots again after a test VM it had to stop, see there).
n=0
while IFS=$'\t' read -r name limit cmd known; do
	case "$name" in ''|'#'*) continue ;; esac
	n=$((n + 1))
	[ "$n" -gt "${SKIP:-0}" ] || continue
	log=$R/logs/${name//\//_}.log
	tries=1
	# Upstream tests under TCG have rare timing flakes, with distro modules
	# too; the regression comparison gives both module sets the same retry.
	[ "${RETRY:-0}" = 1 ] && [ "${name#"$RETRY_PREFIX"}" != "$name" ] && tries=2
	# A stall of the test VM (a CPU that lost its LAPIC timer interrupt in
	# QEMU TCG until the host's watchdog kicked it, see vm-run.sh) stops the
	# test VM's timers for seconds, in host and in guest time alike: a test
	# that failed while one happened gets one more try, reported as such.
	note= stall_retry=0 try=0
	while :; do
		try=$((try + 1))
		stalls0=$(nr_stalls)
		# what runs, for the host's watchdog: a try that gives no result
		# long after its timeout means the test VM is wedged
		printf '%s\t%s\t%s\t%s\n' "$n" "$try" "$limit" "$name" > "$R/running"
		start=$(date +%s.%N)
		timeout -k 5 "$limit" bash -c "$cmd" > "$log" 2>&1 < /dev/null
		rc=$?
		secs=$(echo "$(date +%s.%N) - $start" | bc)
		[ "$rc" -eq 0 ] || [ "$rc" -eq 4 ] && break
		if [ "$try" -lt "$tries" ]; then
			:
		elif [ "$stall_retry" = 0 ] && [ "$(nr_stalls)" -gt "$stalls0" ]; then
			stall_retry=1
		else
			break
		fi
		mv "$log" "$log.try$try"
	done
	if [ "$stall_retry" = 1 ]; then
		note=" (retried: the test VM stalled during try $((try - 1)), see ${log#"$R/"}.try$((try - 1)))"
	elif [ "$try" -gt 1 ] && [ "$rc" -eq 0 ]; then
		note=" (passed on retry)"
	fi
	# our kselftests run a subtest again when a timing bound failed while
	# the test VM stopped (pace_util.h): say so where the result is
	[ "$rc" -ne 0 ] || ! grep -q 'a timing bound failed while the test VM stopped' "$log" ||
		note="$note (a subtest ran again after a stop of the test VM, see its log)"
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 4 ] && [ -n "$known" ]; then
		echo "not ok $n - $name # TODO known bug: $known (exit $rc)" >> "$tap"
		continue
	fi
	case $rc in
	0) echo "ok $n - $name # time=${secs}s$note" ;;
	4) echo "ok $n - $name # SKIP $(tail -n 1 "$log" | tr -d '\r' | cut -c1-120)" ;;
	124|137) echo "not ok $n - $name # TIMEOUT after ${limit}s$note" ;;
	*) echo "not ok $n - $name # exit $rc$note" ;;
	esac >> "$tap"
	# The end of a failing test's log, so that CI's output alone says why.
	case $rc in 0|4) ;; *) tail -n 15 "$log" | tr -d '\r' | cut -c1-200 | sed 's/^/# /' >> "$tap" ;; esac
done < "$R/tests"
kill "$heartbeat" 2>/dev/null
rm -f "$R/running"
echo "1..$n" >> "$tap"
dmesg > "$R/dmesg"
echo ok > "$R/done"
