#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# One benchmark, inside the test VM (run.sh lists them as vm-run.sh test
# lines): vm-bench.sh MEASURE MODE OUTDIR [OUR-MODULES-DIR]
#   MEASURE  precision | cost-1 | cost-2 | cost-4 | drift | overhead
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

# A VMM without an OS: SeaBIOS finds nothing to boot and idles in HLT, an
# empty quantum for every pacer.
bios_vmm() { # nr-vcpus
	echo qemu-system-x86_64 -enable-kvm -display none -nodefaults -m 64 -monitor none \
		-serial none -no-hpet -smp "$1"
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
		--count "$(q 150 1000)" --rounds "$(q 2 4)" -- $(bios_vmm "$n")
	;;
drift)
	# The test guest (Debian's kernel, kvm-clock) samples its own
	# CLOCK_MONOTONIC as fast as it can into an ivshmem device's memory,
	# which simbench reads whenever the guest is frozen or stopped.
	shm=/dev/shm/simbench-sample
	rm -f "$shm"
	truncate -s 1M "$shm"
	mapfile -t qemu < <("$repo/tools/testing/selftests/vmpace/guest/qemu-cmd.sh" \
		"$BUILD/guest" 1 10 stdio vmpace.sample=1)
	"$B/simbench" --vmpace "$BUILD/vmpace/vmpace" --out "$out/drift-quanta.csv" \
		--drift "$out/drift.csv" --quantum-us 1000 --vcpus 1 \
		--count "$(q 2000 100000)" --rounds 1 --wait-line vmpace-guest-ready \
		--sample "$shm" -- "${qemu[@]}" \
		-object "memory-backend-file,id=sample,size=1M,mem-path=$shm,share=on" \
		-device ivshmem-plain,memdev=sample
	rm -f "$shm"
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
