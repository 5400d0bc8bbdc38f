#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# One benchmark, inside the test VM (run.sh lists them as vm-run.sh test
# lines): vm-bench.sh MEASURE MODE OUTDIR [OUR-MODULES-DIR]
#   MEASURE  precision | cost-1 | cost-2 | cost-4 | drift | io | overhead
#   MODE     quick | full
# Writes CSV files to OUTDIR (the run's results share).  BUILD points at the
# build directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
BUILD=${BUILD:?}
measure=${1:?measure} mode=${2:?quick or full} out=${3:?outdir} ours=${4:-}
B=$BUILD/bench
mkdir -p "$out"
q() { [ "$mode" = quick ] && echo "$1" || echo "$2"; }

# The seed's QEMU (bench/seed/build.sh, built by run.sh): SEED_QEMU from the
# job's environment; without it the seed is left out.
seed_qemu=${SEED_QEMU:-}
pacers=vmpace,qmp${seed_qemu:+,seed}
# It runs from its build directory: point it at Debian's firmware.
seed_firmware() { # qemu
	[ "$1" != "$seed_qemu" ] || echo -L /usr/share/seabios -L /usr/share/qemu
}

# A VMM without an OS: SeaBIOS finds nothing to boot and idles in HLT, an
# empty quantum for every pacer once booted (simbench's warm-up round gets
# every QEMU there before the measured rounds).
bios_vmm() { # qemu nr-vcpus
	echo "$1" $(seed_firmware "$1") -enable-kvm -display none -nodefaults -m 64 -monitor none \
		-serial none -no-hpet -smp "$2"
}

case "$measure" in
precision)
	"$B/pacebench" precision --quanta-us 100,1000,10000 --count "$(q 100 500)" \
		--rounds "$(q 3 6)" --out "$out/precision.csv"
	;;
cost-[0-9]*)
	n=${measure#cost-}
	# shellcheck disable=SC2046
	"$B/simbench" --vmpace "$BUILD/vmpace/vmpace" --out "$out/cost.csv" \
		--drift "$out/cost-drift.csv" --quantum-us 1000 --vcpus "$n" \
		--count "$(q 150 1000)" --rounds "$(q 3 6)" --warmup "$(q 50 200)" --pacers "$pacers" \
		-- $(bios_vmm qemu-system-x86_64 "$n") ${seed_qemu:+:: $(bios_vmm "$seed_qemu" "$n")}
	;;
drift)
	# The test guest (Debian's kernel, kvm-clock) samples its own
	# CLOCK_MONOTONIC as fast as it can into an ivshmem device's memory,
	# which simbench reads whenever the guest is frozen or stopped.  The
	# seed's guest is the same, with its own memory, first with the same
	# CPU model and clocks, then in a second run with the seed's
	# recommended ones: no TSC nor kvmclock in CPUID (the guest falls back
	# to the ACPI PM timer, a QEMU device on the virtual clock) and the RTC
	# on the virtual clock.
	shm=/dev/shm/simbench-sample shm2=/dev/shm/simbench-seed
	sample_dev() { # shm
		echo -object "memory-backend-file,id=sample,size=1M,mem-path=$1,share=on" \
			-device ivshmem-plain,memdev=sample
	}
	fresh() { rm -f "$1" && truncate -s 1M "$1"; }
	mapfile -t qemu < <("$repo/tools/testing/selftests/vmpace/guest/qemu-cmd.sh" \
		"$BUILD/guest" 1 10 stdio vmpace.sample=1)
	drift_run() { # pacers seed-name [seed extra arguments]
		local p=$1 name=$2 sq=$seed_qemu
		case $p in *seed*) ;; *) sq= ;; esac
		shift 2
		fresh "$shm"
		fresh "$shm2"
		# shellcheck disable=SC2046
		"$B/simbench" --vmpace "$BUILD/vmpace/vmpace" --out "$out/drift-quanta.csv" \
			--drift "$out/drift.csv" --quantum-us 1000 --vcpus 1 \
			--count "$(q 2000 100000)" --rounds 1 --warmup "$(q 200 1000)" \
			--wait-line vmpace-guest-ready \
			--pacers "$p" --sample "$shm" --seed-sample "$shm2" --seed-name "$name" \
			-- "${qemu[@]}" $(sample_dev "$shm") \
			${sq:+:: "$sq" $(seed_firmware "$sq") "${qemu[@]:1}" \
				$(sample_dev "$shm2") "$@"}
	}
	drift_run "$pacers" seed
	# The seed's recommended guest (no TSC, no kvmclock: the PIT and the PM
	# timer) once died while booting under the seed's QEMU in CI (its
	# socket closed before the guest was up, 2026-12-04): such a run is run
	# once more, said so, its rows taken back first.
	keep_rows() { # file lines: its first lines only (none: no file, so a header again)
		if [ "$2" -eq 0 ]; then rm -f "$1"
		elif [ -e "$1" ]; then head -n "$2" "$1" > "$1.tmp" && mv "$1.tmp" "$1"; fi
	}
	if [ -n "$seed_qemu" ]; then
		rec=(seed seed-recommended -cpu host,-xsave,kvm=off,-tsc,-kvmclock -rtc clock=vm)
		n1=0 n2=0
		[ ! -e "$out/drift.csv" ] || n1=$(wc -l < "$out/drift.csv")
		[ ! -e "$out/drift-quanta.csv" ] || n2=$(wc -l < "$out/drift-quanta.csv")
		if ! drift_run "${rec[@]}"; then
			echo "vm-bench: drift: the seed-recommended run failed (above): once more" >&2
			keep_rows "$out/drift.csv" "$n1"
			keep_rows "$out/drift-quanta.csv" "$n2"
			drift_run "${rec[@]}"
		fi
	fi
	rm -f "$shm" "$shm2"
	;;
io)
	# Timed network I/O (netsim, vmpace's framed protocol): the guest
	# sends UDP probes one at a time, netsim echoes each after 2 x 10 ms
	# of simulated link plus a pseudo-random 0 to one quantum (every phase
	# against the quanta), the guest times each round trip on its own clock
	# (its NIC's timestamps).  Quanta of 100 us, 1 ms and 10 ms; at each,
	# vmpace's stamps and timed delivery, then quantum-boundary stamps and
	# delivery (netsim --boundary), on a freshly booted guest each.  The
	# probes go out a pseudo-random 0 to 10 ms apart (vmpace.jitter_us),
	# so that they take every phase against the fixed quanta.  A round
	# trip lost or late (netsim's exit 1) is in the table; netsim failing to
	# run (exit 2) fails the measure.
	rm -f "$out/io.csv"	# a retry in the same VM starts afresh
	for qu in 100 1000 10000; do
		for st in vmpace boundary; do
			mapfile -t qemu < <("$repo/tools/testing/selftests/vmpace/guest/qemu-cmd.sh" \
				"$BUILD/guest" 1 10 null "vmpace.udp=$(q 20 60) vmpace.jitter_us=10000")
			opts=()
			[ "$st" = vmpace ] || opts=(--boundary)
			r=0
			"$BUILD/vmpace/netsim" --vmpace "$BUILD/vmpace/vmpace" --delay-us 10000 \
				--quantum-us "$qu" --jitter-us "$qu" --csv "$out/io.csv" "${opts[@]}" \
				-- "${qemu[@]}" || r=$?
			[ "$r" -le 1 ] || exit "$r"
		done
	done
	;;
overhead)
	# Our modules against Debian's in the same VM, in turns: swap the
	# modules between samples.  kvm_amd takes the run's parameters
	# (KVM_AMD_PARAMS from the job, see run.sh) both times.
	[ -n "$ours" ] || { echo "overhead: which modules are ours?" >&2; exit 2; }
	d=/lib/modules/$(uname -r)/kernel/arch/x86/kvm
	load() { # distro | ours
		rmmod kvm_amd kvm
		if [ "$1" = distro ]; then
			insmod "$d/kvm.ko.xz" && insmod "$d/kvm-amd.ko.xz" $KVM_AMD_PARAMS
		else
			insmod "$ours/kvm.ko" && insmod "$ours/kvm-amd.ko" $KVM_AMD_PARAMS
		fi
	}
	w=$(q 1000 2000)
	trap 'load ours' EXIT
	for _ in $(seq "$(q 5 15)"); do
		for m in distro ours; do
			load "$m"
			"$B/pacebench" throughput --label "$m" --window-ms "$w" \
				--quantum-us 1000 --out "$out/overhead.csv"
		done
	done
	;;
*)
	echo "unknown measure $measure" >&2
	exit 2
	;;
esac
