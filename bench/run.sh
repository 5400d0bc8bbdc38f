#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make bench': build the benchmark programs, run every measure in one test VM
# (1 CPU, our modules; Debian's are swapped in for the overhead measure), copy
# the CSVs to bench/results/ and write the summary and plots there.
# Usage: run.sh [quick|full]        (default full)
# Environment: BUILD (build dir), BENCH_MODULES (our modules, default
# $BUILD/modules), BENCH_RESULTS (default bench/results, emptied first),
# BENCH_RUNS (runs, default 3, quick 1), BENCH_MEASURES (a comma-separated
# list of measures to run, default all).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
rig=$repo/tools/testing/rig
. "$rig/versions"
. "$rig/lib.sh"
mode=${1:-full}
case "$mode" in quick|full) ;; *) die "usage: run.sh [quick|full]" ;; esac
modules=${BENCH_MODULES:-$BUILD/modules}
results=${BENCH_RESULTS:-$here/results}

for f in "$modules/kvm.ko" "$BUILD/vmpace/vmpace" "$BUILD/guest/initramfs.cpio.gz" \
	 "$BUILD/uapi/include/linux/kvm.h"; do
	[ -e "$f" ] || die "$f is missing: run 'make all' first"
done
make -s -C "$here" OUTPUT="$BUILD/bench/" UAPI="$BUILD/uapi/include"
# The seed's QEMU (Debian's QEMU 7.2 with our -external_sim port), built once.
seed_qemu=$(BUILD=$BUILD "$here/seed/build.sh") || die "the seed QEMU did not build"

# One test VM per measure, one after the other: each ratio compares pacers
# measured in the same VM boot, and a test VM that dies costs one measure,
# which is then run once more in a fresh VM.  The overhead measure swaps the
# KVM modules (and reloads ours).
#
# A test VM whose CPU stalls (QEMU 7.2 TCG loses a LAPIC timer interrupt,
# most often during long QMP stop/cont runs) is revived by vm-run.sh's
# watchdog; the stalls are counted in machine.md.
out=/tmp/vmpace-results/csv	# the run's results share, see guest-init
t() { [ "$mode" = quick ] && echo "$1" || echo "$2"; }
measures=(precision:150:900 cost-1:150:1200 cost-2:150:1200 cost-4:200:1800
	  drift:300:3600 io:300:900 overhead:200:900)

# BENCH_MEASURES=a,b: only these measures (by name, as above), e.g. io
if [ -n "${BENCH_MEASURES:-}" ]; then
	sel=()
	IFS=, read -r -a want <<< "$BENCH_MEASURES"
	for m in "${measures[@]}"; do
		for w in "${want[@]}"; do [ "${m%%:*}" != "$w" ] || { sel+=("$m"); break; }; done
	done
	for w in "${want[@]}"; do
		printf '%s\n' "${sel[@]%%:*}" | grep -qxF -- "$w" ||
			die "BENCH_MEASURES: no measure '$w' (measures: $(printf '%s ' "${measures[@]%%:*}"))"
	done
	measures=("${sel[@]}")
fi
runs=${BENCH_RUNS:-$(t 1 3)}
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number"
rm -rf "$results"
mkdir -p "$results"
start=$(date +%s)
rc=0
failed=
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
machine() {
	echo "Machine: $cpu, $(nproc) cores, $mem, $(uname -sr)."
	echo "Test VM: Debian $KREL under $(qemu-system-x86_64 --version | head -n 1 | sed 's/ (.*//')" \
	     "-accel tcg,thread=single -cpu max -smp 1 (AMD SVM, kvm_amd npt=0), modules: $modules."
	echo "Nested: stock Debian qemu-system-x86_64 -enable-kvm inside it; the seed:" \
	     "Debian's QEMU $SEED_QEMU_SRC_VERSION source with bench/seed/external-sim.patch."
}
commit() {
	echo "commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
		git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
}
# Each run boots a fresh test VM per measure; the spread of a ratio over the
# runs is the summary's headline.
for run in $(seq "$runs"); do
D=$results/run-$run
mkdir -p "$D/logs"
rstart=$(date +%s)
stalls=()
for m in "${measures[@]}"; do
	IFS=: read -r measure tq tf <<< "$m"
	name=bench-$mode-$measure
	list=$BUILD/bench/$name.list
	printf 'bench/%s\t%s\tSEED_QEMU=%q BUILD=%q %q %s %s %s %q\n' "$measure" \
		"$(t "$tq" "$tf")" "$seed_qemu" "$BUILD" "$here/vm-bench.sh" "$measure" "$mode" \
		"$out" "$modules" > "$list"
	for try in 1 2; do
		log "run $run of $runs, $measure: test VM (try $try)"
		r=0
		"$rig/vm-run.sh" --smp 1 --modules "$modules" --name "$name" "$list" \
			> "$BUILD/bench/$name.tap" 2>&1 || r=$?
		sed 's/^/    /' "$BUILD/bench/$name.tap" | grep -v '^    vm-run.sh' >&2 || true
		# retry only a VM that died, not a measure that failed
		[ "$r" -ne 0 ] && [ ! -e "$BUILD/vm/$name/done" ] || break
	done
	R=$BUILD/vm/$name
	[ "$r" -eq 0 ] || { rc=1; failed="$failed run-$run/$measure"; cp "$BUILD/bench/$name.tap" "$D/logs/"; }
	cp "$R"/logs/* "$D/logs/" 2>/dev/null || true
	n=0
	[ ! -e "$R/stalls" ] || n=$(wc -l < "$R/stalls")
	stalls+=("$measure $n")
	[ ! -s "$R/stalls" ] || cp "$R/stalls" "$D/logs/$measure.stalls"
	# merge the CSVs of all measures (one header each)
	for f in "$R"/csv/*.csv; do
		[ -e "$f" ] || continue
		dst=$D/${f##*/}
		if [ -e "$dst" ]; then tail -n +2 "$f" >> "$dst"; else cp "$f" "$dst"; fi
	done
done
ls "$D"/*.csv > /dev/null 2>&1 || die "run $run: the test VMs produced no results"
{
	echo "Run $run of $runs: $(date -u '+%Y-%m-%d %H:%M UTC'), $mode mode," \
	     "$(( $(date +%s) - rstart )) s; $(commit)."
	echo
	machine
	echo
	echo "Test VM stalls (lost LAPIC timer interrupt, revived after 3 s by vm-run.sh's" \
	     "watchdog; a stall inflates the host time of the quantum it hits):" \
	     "$(IFS=,; echo "${stalls[*]}" | sed 's/,/, /g')."
} > "$D/machine.md"
"$here/report.sh" "$D" "$D/machine.md"
done

{
	echo "# vmpace benchmarks: summary"
	echo
	echo "$runs run(s) of every measure, each measure in its own test VM boot;" \
	     "$(date -u '+%Y-%m-%d %H:%M UTC'), $mode mode, $(( $(date +%s) - start )) s; $(commit)."
	echo
	machine
	echo
	"$here/spread.sh" "$results"
	echo
	echo "Each run's tables: $(cd "$results" && ls -d run-*/summary.md | tr '\n' ' ')"
} > "$results/summary.md"
cat "$results/summary.md"
[ "$rc" -eq 0 ] || die "some measures failed:$failed (see their logs under $results)"
