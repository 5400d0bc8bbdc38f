#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Turn the benchmark CSVs into the summary (summary.md, summary.csv) and the
# plots (PNG, gnuplot): report.sh RESULTS-DIR [MACHINE-NOTE-FILE]
# Every figure is a ratio vmpace / baseline measured in the same run and VM.
set -euo pipefail
D=${1:?results dir}
note=${2:-}
cd "$D"
P=plot-data
mkdir -p "$P"

# stats: numbers on stdin (one per line) -> "n p50 p99 max min mean"
stats() {
	sort -g | awk '{ v[NR] = $1; s += $1 }
	function at(p,  i) { i = int(p * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; return v[i] }
	END { if (!NR) { print "0 nan nan nan nan nan"; exit }
	      printf "%d %.4g %.4g %.4g %.4g %.4g\n", NR, at(0.5), at(0.99), v[NR], v[1], s / NR }'
}
# ratio A B -> A/B with 2 decimals, or n/a
# ratio A B -> A/B, two decimals (two significant digits below 0.01)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0 || a == "nan" || b == "nan") print "n/a"
	else { r = a / b; printf (r < 0.01 && r > -0.01 && r != 0) ? "%.2g\n" : "%.2f\n", r } }'; }
# column NAME of a CSV header -> its index
col() { head -n 1 "$1" | tr ',' '\n' | grep -nx "$2" | cut -d: -f1; }
# cdf: numbers on stdin -> "value fraction" lines for gnuplot
cdf() { sort -g | awk '{ v[NR] = $1 } END { for (i = 1; i <= NR; i++) print v[i], i / NR }'; }
# CSV PACER [VCPUS]: host ms per reported guest ms over the measured quanta
# (rows with seq >= 0), by the columns $cp_, $cs, $ch, $ce (and $cv) of the
# section at hand.
host_per_guest() {
	awk -F, -v p="$2" -v v="${3:-}" -v cp="$cp_" -v cv="${cv:-0}" -v cs="$cs" -v ch="$ch" \
		-v ce="$ce" 'NR > 1 && $cp == p && (v == "" || $cv == v) && $cs >= 0 { h += $ch; e += $ce }
		END { if (e > 0) printf "%.4g\n", h / 1e6 / (e / 1000); else print "nan" }' "$1"
}

csv=summary.csv
md=summary.md
echo "measure,case,metric,vmpace,baseline,baseline_name,ratio" > "$csv"
{
echo "# vmpace benchmarks: summary"
echo
[ -n "$note" ] && [ -e "$note" ] && cat "$note" && echo
echo "Every ratio is vmpace / baseline, both measured in the same run of the same"
echo "test VM (timings inside TCG are slow and noisy: compare ratios, not absolute"
echo "values).  Lower is better for overshoot, cost and drift; for throughput,"
echo "closer to 1 is better."
} > "$md"

# ---- 1. precision -------------------------------------------------------------
if [ -s precision.csv ]; then
	cp_=$(col precision.csv pacer); cq=$(col precision.csv quantum_us)
	cs=$(col precision.csv seq); co=$(col precision.csv overshoot_stop)
	cg=$(col precision.csv overshoot_guest); ck=$(col precision.csv kicks)
	ck_=$(col precision.csv tsc_khz)
	sel() { # pacer quantum column -> values in us (measured quanta only)
		awk -F, -v p="$1" -v q="$2" -v c="$3" -v cp="$cp_" -v cq="$cq" -v cs="$cs" -v k="$ck_" \
			'NR > 1 && $cp == p && $cq == q && $cs >= 0 { print $c * 1000 / $k }' precision.csv
	}
	{
	echo
	echo "## 1. Deadline precision: overshoot = guest TSC at the stop - deadline (us)"
	echo
	echo "Stop TSC: KVM's own (kvm_run->pace.guest_tsc) for vmpace; for the userspace"
	echo "pacers the guest TSC read (KVM_GET_MSRS) right after KVM_RUN returned.  Signed:"
	echo "negative = stopped before the deadline.  \"guest\": the last TSC value the guest"
	echo "code itself stored before the stop, the same instrument for all pacers: the"
	echo "ratios are of its signed overshoot percentiles (a store long before the"
	echo "deadline means the guest did not run, not a late stop), kernel / baseline;"
	echo "\"own-stop\" ratios (of |overshoot|) compare each pacer's own stop TSC, as extra columns.  The kernel row is"
	echo "pacebench's own VMM in exit mode (the kernel mechanism alone); the real tool in"
	echo "hold mode on stock QEMU is in 1b."
	cal=$(grep -h 'by CLOCK_MONOTONIC' logs/*precision*.log 2>/dev/null | head -n 1 | sed 's/^pacebench: //' || true)
	[ -z "$cal" ] || { echo; echo "Test VM clock check (the userspace pacers' TSC-to-host-time mapping): $cal."; }
	echo
	echo "| quantum | pacer | n | p50 | p99 | max | min | early | guest p50 | guest p99 | kicks/quantum | ratio p50 (guest) | ratio p99 (guest) | own-stop ratio p50 | own-stop ratio p99 |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	} >> "$md"
	for q in $(awk -F, -v c="$cq" 'NR > 1 { print $c }' precision.csv | sort -un); do
		for p in kernel user user-check; do
			sel "$p" "$q" "$co" > "$P/prec-$p-$q.raw"
			cdf < "$P/prec-$p-$q.raw" > "$P/prec-$p-$q.cdf"
		done
		ka=$(awk '{ print ($1 < 0 ? -$1 : $1) }' "$P/prec-kernel-$q.raw" | stats)
		kg=$(sel kernel "$q" "$cg" | stats)
		for p in kernel user user-check; do
			read -r n p50 p99 max min _ <<< "$(stats < "$P/prec-$p-$q.raw")"
			read -r _ g50 g99 _ <<< "$(sel "$p" "$q" "$cg" | stats)"
			early=$(awk '$1 < 0 { e++ } END { printf "%.1f%%", NR ? 100 * e / NR : 0 }' "$P/prec-$p-$q.raw")
			kicks=$(awk -F, -v p="$p" -v q="$q" -v cp="$cp_" -v cq="$cq" -v cs="$cs" -v ck="$ck" \
				'NR > 1 && $cp == p && $cq == q && $cs >= 0 { s += $ck; n++ } END { printf "%.2f", n ? s / n : 0 }' precision.csv)
			r50=-; r99=-; o50=-; o99=-
			if [ "$p" != kernel ]; then
				read -r _ a50 a99 _ <<< "$kg"
				read -r _ b50 b99 _ <<< "$(sel "$p" "$q" "$cg" | stats)"
				r50=$(ratio "$a50" "$b50"); r99=$(ratio "$a99" "$b99")
				echo "precision,${q}us vs $p,overshoot on the guest's stores p50 us,$a50,$b50,$p,$r50" >> "$csv"
				echo "precision,${q}us vs $p,overshoot on the guest's stores p99 us,$a99,$b99,$p,$r99" >> "$csv"
				read -r _ a50 a99 _ <<< "$ka"
				read -r _ b50 b99 _ <<< "$(awk '{ print ($1 < 0 ? -$1 : $1) }' "$P/prec-$p-$q.raw" | stats)"
				o50=$(ratio "$a50" "$b50"); o99=$(ratio "$a99" "$b99")
			fi
			name=$p; [ "$p" = kernel ] && name="kernel exit (pacebench)"
			printf '| %s us | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
				"$q" "$name" "$n" "$p50" "$p99" "$max" "$min" "$early" "$g50" "$g99" \
				"$kicks" "$r50" "$r99" "$o50" "$o99" >> "$md"
		done
		# x axis up to the largest p99: the tails are in the table
		xmax=$(cat "$P"/prec-*-"$q".raw | stats | awk '{ print $3 * 1.2 }')
		xmin=$(cat "$P"/prec-*-"$q".raw | stats | awk '{ print ($5 < 0 ? $5 * 1.2 : 0) }')
		gnuplot <<-EOF
		set terminal pngcairo size 900,560
		set output "precision-${q}us.png"
		set title "Overshoot at the deadline, ${q} us quanta (CDF up to p99 of all; <0: stopped early)"
		set xrange [$xmin:$xmax]
		set xlabel "guest TSC at stop - deadline (us)"
		set ylabel "fraction of quanta"
		set key bottom right
		set grid
		plot "$P/prec-kernel-$q.cdf" using 1:2 with steps lw 2 title "KVM deadline, exit mode (pacebench)", \
		     "$P/prec-user-$q.cdf" using 1:2 with steps lw 2 title "userspace timer + kick", \
		     "$P/prec-user-check-$q.cdf" using 1:2 with steps lw 2 title "userspace timer + kick, re-run if early"
		EOF
	done
fi

# ---- 2 and 5. cost per quantum, scaling ---------------------------------------
if [ -s cost.csv ]; then
	cp_=$(col cost.csv pacer); cv=$(col cost.csv vcpus); cs=$(col cost.csv seq)
	ch=$(col cost.csv host_ns); ce=$(col cost.csv elapsed_us)
	sel() { # pacer vcpus column divisor
		awk -F, -v p="$1" -v v="$2" -v c="$3" -v d="$4" -v cp="$cp_" -v cv="$cv" -v cs="$cs" \
			'NR > 1 && $cp == p && $cv == v && $cs >= 0 { print $c / d }' cost.csv
	}
	{
	echo
	echo "## 2. Cost per quantum and 5. scaling: host time per empty 1 ms quantum (ms)"
	echo
	echo "Same stock QEMU (SeaBIOS, no OS: the guest idles in HLT), same simulator loop"
	echo "(grant, wait for the report), blocks alternating in the same QEMU process."
	echo "vmpace: seed protocol over a socketpair.  Baselines: QMP cont, wait 1 ms of host"
	echo "time, QMP stop; and the seed (QEMU 7.2 with our -external_sim port, its own"
	echo "QEMU process started with the same arguments, held while the others run)."
	echo "\"elapsed\": the guest time the pacer reported for the quantum.  \"host/guest\":"
	echo "the simulator's host time over all measured quanta / the guest ms they reported"
	echo "(the instrument all pacers share: a pacer that overshoots gets more guest time"
	echo "per quantum)."
	echo
	echo "| vCPUs | pacer | n | p50 | p99 | max | elapsed p50 (us) | elapsed p99 (us) | host/guest | ratio p50 vs QMP | host/guest vs QMP | host/guest vs seed | p50 / p50 at 1 vCPU |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	} >> "$md"
	pacers=(vmpace qmp)
	grep -q '^seed,' cost.csv && pacers+=(seed)
	label() { case $1 in qmp) echo "QMP stop/cont" ;; seed) echo "seed (-external_sim)" ;; *) echo "$1" ;; esac; }
	declare -A base50=() p50s=() p99s=() pms=()
	for v in $(awk -F, -v c="$cv" 'NR > 1 { print $c }' cost.csv | sort -un); do
		for p in "${pacers[@]}"; do
			sel "$p" "$v" "$ch" 1000000 > "$P/cost-$p-$v.raw"
			cdf < "$P/cost-$p-$v.raw" > "$P/cost-$p-$v.cdf"
			read -r _ p50s[$p] p99s[$p] _ <<< "$(stats < "$P/cost-$p-$v.raw")"
			pms[$p]=$(host_per_guest cost.csv "$p" "$v")
		done
		for p in "${pacers[@]}"; do
			read -r n p50 p99 max _ <<< "$(stats < "$P/cost-$p-$v.raw")"
			read -r _ e50 e99 _ <<< "$(sel "$p" "$v" "$ce" 1 | stats)"
			[ -n "${base50[$p]:-}" ] || base50[$p]=$p50
			r50=-; rq=-; rs=-
			if [ "$p" = vmpace ]; then
				r50=$(ratio "$p50" "${p50s[qmp]}"); rq=$(ratio "${pms[vmpace]}" "${pms[qmp]}")
				[ -z "${pms[seed]:-}" ] || rs=$(ratio "${pms[vmpace]}" "${pms[seed]}")
			fi
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$v" \
				"$(label "$p")" "$n" "$p50" "$p99" "$max" "$e50" "$e99" "${pms[$p]}" \
				"$r50" "$rq" "$rs" "$(ratio "$p50" "${base50[$p]}")" >> "$md"
		done
		for b in "${pacers[@]:1}"; do
			echo "cost,${v} vCPU,host ms/quantum p50,${p50s[vmpace]},${p50s[$b]},$b,$(ratio "${p50s[vmpace]}" "${p50s[$b]}")" >> "$csv"
			echo "cost,${v} vCPU,host ms/quantum p99,${p99s[vmpace]},${p99s[$b]},$b,$(ratio "${p99s[vmpace]}" "${p99s[$b]}")" >> "$csv"
			echo "cost,${v} vCPU,host ms per reported guest ms,${pms[vmpace]},${pms[$b]},$b,$(ratio "${pms[vmpace]}" "${pms[$b]}")" >> "$csv"
			echo "scaling,${v} vCPU vs 1,p50 cost growth,$(ratio "${p50s[vmpace]}" "${base50[vmpace]}"),$(ratio "${p50s[$b]}" "${base50[$b]}"),$b,$(ratio "$(ratio "${p50s[vmpace]}" "${base50[vmpace]}")" "$(ratio "${p50s[$b]}" "${base50[$b]}")")" >> "$csv"
		done
	done
	plots=
	for f in "$P"/cost-*.cdf; do
		t=${f##*/cost-}; t=${t%.cdf}
		lbl="${t%-*} ${t##*-} vCPU"; lbl=${lbl/qmp/QMP stop\/cont}; lbl=${lbl/seed/seed -external_sim}
		plots="$plots${plots:+, }\"$f\" using 1:2 with steps lw 2 title \"$lbl\""
	done
	gnuplot <<-EOF
	set terminal pngcairo size 900,560
	set output "cost.png"
	set title "Host time per empty 1 ms quantum (CDF)"
	set xlabel "host ms per quantum"
	set ylabel "fraction of quanta"
	set logscale x
	set key bottom right
	set grid
	plot $plots
	EOF
fi

# ---- 3. drift -----------------------------------------------------------------
if [ -s drift.csv ]; then
	{
	echo
	echo "## 3. Drift: guest clock advance - sum of reported elapsed times"
	echo
	echo "Debian guest (kvm-clock) sampling its own CLOCK_MONOTONIC as fast as it can"
	echo "into shared memory (ivshmem), read on the host with the guest frozen (vmpace)"
	echo "or stopped (QMP) before the first and after the last measured quantum: the"
	echo "guest's own clock, for both pacers alike.  A sample can be tens of us old if the"
	echo "guest stopped in an interrupt handler: for vmpace it is carried to the frozen"
	echo "guest TSC with the TSC it was taken at (QMP's stop leaves the TSC running, its"
	echo "samples stand).  1 ms quanta.  For vmpace the guest TSC (KVM_GET_PACE_STATE,"
	echo "frozen) is also compared over the whole block.  The seed (-external_sim)"
	echo "answers after stopping its virtual clock and kicking its vCPUs: its samples are"
	echo "read as they are.  \"seed\": the same guest and CPU model (kvm-clock);"
	echo "\"seed-recommended\": the seed's recommended -cpu ...,kvm=off,-tsc,-kvmclock"
	echo "-rtc clock=vm (the guest falls back to the ACPI PM timer)."
	echo
	echo "| pacer | quanta | reported (ms) | guest clock (ms) | drift (us) | drift (ppm) | guest TSC drift (us) |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	} >> "$md"
	awk -F, 'NR > 1 && $10 >= 0 {
		d = $10 / 1000 - $9; ppm = $9 ? 1e6 * d / $9 : 0
		tsc = $8 >= 0 ? sprintf("%d", $8 - $9) : "-"
		printf "| %s | %d | %.1f | %.3f | %+.1f | %+.2f | %s |\n", $1 == "qmp" ? "QMP stop/cont" : $1 == "seed" ? "seed (-external_sim)" : $1 == "seed-recommended" ? "seed, recommended clocks" : $1, $5, $9 / 1000, $10 / 1e6, d, ppm, tsc
	}' drift.csv >> "$md"
	# |drift| per second of reported time, over all blocks of a pacer
	ppm() { awk -F, -v p="$1" 'NR > 1 && $1 == p && $10 >= 0 { d = $10 / 1000 - $9; s += d < 0 ? -d : d; r += $9 }
		END { if (r) printf "%.2f\n", 1e6 * s / r; else print "nan" }' drift.csv; }
	absus() { awk -F, -v p="$1" 'NR > 1 && $1 == p && $10 >= 0 { d = $10 / 1000 - $9; d = d < 0 ? -d : d; if (d > m) m = d }
		END { printf "%.1f\n", m }' drift.csv; }
	dv=$(ppm vmpace); dq=$(ppm qmp)
	echo "drift,1 ms quanta,|guest clock - reported| ppm,$dv,$dq,qmp,$(ratio "$dv" "$dq")" >> "$csv"
	echo "drift,1 ms quanta,|guest clock - reported| us (largest block),$(absus vmpace),$(absus qmp),qmp,$(ratio "$(absus vmpace)" "$(absus qmp)")" >> "$csv"
	echo "drift,1 ms quanta,|guest TSC - reported| us,$(awk -F, 'NR > 1 && $1 == "vmpace" && $8 >= 0 { d = $8 - $9; s += d < 0 ? -d : d } END { print s + 0 }' drift.csv),n/a,qmp,n/a" >> "$csv"
	echo >> "$md"
	echo "Ratio of |drift| per reported second, vmpace / QMP: $(ratio "$dv" "$dq") ($dv ppm vs $dq ppm); largest |drift| of a block: vmpace $(absus vmpace) us, QMP $(absus qmp) us." >> "$md"
	for b in seed seed-recommended; do
		grep -q "^$b," drift.csv || continue
		db=$(ppm "$b")
		echo "drift,1 ms quanta,|guest clock - reported| ppm,$dv,$db,$b,$(ratio "$dv" "$db")" >> "$csv"
		echo "drift,1 ms quanta,|guest clock - reported| us (largest block),$(absus vmpace),$(absus "$b"),$b,$(ratio "$(absus vmpace)" "$(absus "$b")")" >> "$csv"
		echo "Ratio of |drift| per reported second, vmpace / $b: $(ratio "$dv" "$db") ($dv ppm vs $db ppm); largest |drift| of a block: $b $(absus "$b") us." >> "$md"
	done
fi

# ---- 1b. precision on the guest's own clock (the drift measure's quanta) -------
if [ -s drift-quanta.csv ] && [ -n "$(col drift-quanta.csv guest_ns)" ]; then
	f=drift-quanta.csv
	cp_=$(col $f pacer); cr=$(col $f round); cs=$(col $f seq); cgr=$(col $f grant_us)
	cgn=$(col $f guest_ns)
	{
	echo
	echo "## 1b. Precision on the guest's own clock: guest clock advance per quantum - grant (us)"
	echo
	echo "The drift measure's quanta (1 ms grants, busy Debian guest): the guest's"
	echo "CLOCK_MONOTONIC from its latest ivshmem sample at each report (for vmpace"
	echo "carried to the frozen guest TSC), the instrument all pacers share.  A pacer"
	echo "whose guest clock runs while it is held (QMP stop/cont, the seed with kvm-clock)"
	echo "shows the hold here too; the seed's recommended clocks follow its virtual clock."
	echo
	echo "| pacer | n | p50 | p99 | max | min | mean | vmpace p50 vs this | vmpace p99 vs this |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	} >> "$md"
	over() { # pacer -> one overshoot per measured quantum, us
		awk -F, -v p="$1" -v cp="$cp_" -v cr="$cr" -v cs="$cs" -v cg="$cgr" -v cn="$cgn" \
			'NR > 1 && $cp == p {
				if ($cs >= 0 && $cn >= 0 && prev >= 0 && $cr == pr)
					print ($cn - prev) / 1000 - $cg
				prev = $cn; pr = $cr
			}' $f
	}
	read -r _ v50 v99 _ <<< "$(over vmpace | stats)"
	for p in $(awk -F, -v cp="$cp_" 'NR > 1 { print $cp }' $f | awk '!s[$0]++'); do
		read -r n p50 p99 max min mean <<< "$(over "$p" | stats)"
		[ "$n" -gt 0 ] || continue
		r50=-; r99=-
		if [ "$p" != vmpace ]; then
			r50=$(ratio "$v50" "$p50"); r99=$(ratio "$v99" "$p99")
			echo "precision,guest clock 1 ms quanta,overshoot p50 us,$v50,$p50,$p,$r50" >> "$csv"
			echo "precision,guest clock 1 ms quanta,overshoot p99 us,$v99,$p99,$p,$r99" >> "$csv"
		fi
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" "$n" "$p50" "$p99" \
			"$max" "$min" "$mean" "$r50" "$r99" >> "$md"
	done
fi

# ---- 2b. cost with a busy guest (the drift measure's quanta) -------------------
if [ -s drift-quanta.csv ]; then
	f=drift-quanta.csv
	cp_=$(col $f pacer); cs=$(col $f seq); ch=$(col $f host_ns); ce=$(col $f elapsed_us)
	{
	echo
	echo "## 2b. Cost with a busy guest: host time per 1 ms quantum (ms)"
	echo
	echo "The drift measure's quanta (measure 3): the Debian guest samples its clock as"
	echo "fast as it can, so it computes through every quantum (the idle SeaBIOS guest"
	echo "of measure 2 is a pacer's best case).  \"host/guest\": the simulator's host time"
	echo "over all measured quanta / the guest ms they reported."
	echo
	echo "| pacer | n | p50 | p99 | max | elapsed p50 (us) | host/guest | vmpace host/guest vs this |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
	} >> "$md"
	vb=$(host_per_guest "$f" vmpace)
	for p in $(awk -F, -v cp="$cp_" 'NR > 1 { print $cp }' $f | awk '!s[$0]++'); do
		read -r n p50 p99 max _ <<< "$(awk -F, -v p="$p" -v cp="$cp_" -v cs="$cs" -v ch="$ch" \
			'NR > 1 && $cp == p && $cs >= 0 { print $ch / 1e6 }' $f | stats)"
		read -r _ e50 _ <<< "$(awk -F, -v p="$p" -v cp="$cp_" -v cs="$cs" -v ce="$ce" \
			'NR > 1 && $cp == p && $cs >= 0 { print $ce }' $f | stats)"
		pb=$(host_per_guest "$f" "$p") r=-
		if [ "$p" != vmpace ]; then
			r=$(ratio "$vb" "$pb")
			echo "cost,busy guest 1 vCPU,host ms per reported guest ms,$vb,$pb,$p,$r" >> "$csv"
		fi
		printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$p" "$n" "$p50" "$p99" "$max" \
			"$e50" "$pb" "$r" >> "$md"
	done
fi

# ---- 6. timed I/O: netsim's round trips ----------------------------------------
if [ -s io.csv ]; then
	ci=$(col io.csv stamps); cq=$(col io.csv quantum_us); cw=$(col io.csv wire_ns)
	cv=$(col io.csv vmpace_stamp_ns); cst=$(col io.csv stamp_ns); cdu=$(col io.csv due_ns)
	cha=$(col io.csv handed_ns)
	sel() { # stamps quantum what(rtt|delivery|stamp|guest) -> values in us
		awk -F, -v i="$1" -v q="$2" -v w="$3" -v ci="$ci" -v cq="$cq" -v cw="$cw" \
			-v cv="$cv" -v cst="$cst" -v cdu="$cdu" -v cha="$cha" \
			'NR > 1 && $ci == i && $cq == q && $cw > 0 && $cha > 0 {
				if (w == "rtt") x = $cw - ($cdu - $cst)
				else if (w == "delivery") x = $cha - $cdu
				else if (w == "stamp") x = $cst - $cv
				else x = $cw - ($cha - $cv)
				print x / 1000 }' io.csv
	}
	{
	echo
	echo "## 6. Timed I/O: errors of the guest's round trips, deliveries and stamps (us)"
	echo
	echo "netsim echoes the guest's UDP probes after a simulated 2 x 10 ms plus a"
	echo "pseudo-random 0 to one quantum (every phase against the quanta); the guest"
	echo "sends them 10 ms plus a pseudo-random 0 to 10 ms apart.  Two ways, on freshly"
	echo "booted guests in the same test VM: vmpace's stamps and timed delivery, and"
	echo "quantum-boundary stamps and delivery (netsim --boundary: frames stamped at the"
	echo "end of their quantum, echoes handed over at the first boundary at or after"
	echo "their time, what the adevs library does).  Per round trip: \"rtt\" = the"
	echo "round trip on the guest's own clock (its NIC's timestamps) - the simulated one;"
	echo "\"delivery\" = when vmpace handed the echo to QEMU (its DELIVERED, on the"
	echo "guest's TSC) - the echo's time; \"stamp\" = the stamp used - vmpace's stamp of"
	echo "the same frame (what stamping at the quantum's end adds; 0 for vmpace's own);"
	echo "\"guest\" = rtt's remainder, the guest's own transmit and receive paths (its"
	echo "NIC's timestamps to vmpace's stamp, and from the hand-over to its receive"
	echo "timestamp), which no pacer removes: in this test VM the nested guest's TSC"
	echo "runs at the host's pace while its CPU is emulated, so they cost milliseconds."
	echo
	echo "| quantum | stamps and delivery | n | rtt p50 | rtt p99 | delivery p50 | delivery p99 | stamp p50 | stamp p99 | guest p50 | guest p99 |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	} >> "$md"
	for q in $(awk -F, -v c="$cq" 'NR > 1 { print $c }' io.csv | sort -un); do
		for i in vmpace boundary; do
			read -r n r50 r99 _ <<< "$(sel "$i" "$q" rtt | stats)"
			read -r _ d50 d99 _ <<< "$(sel "$i" "$q" delivery | stats)"
			read -r _ s50 s99 _ <<< "$(sel "$i" "$q" stamp | stats)"
			read -r _ g50 g99 _ <<< "$(sel "$i" "$q" guest | stats)"
			printf '| %s us | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$q" \
				"$([ "$i" = vmpace ] && echo "vmpace's" || echo quantum-boundary)" \
				"$n" "$r50" "$r99" "$d50" "$d99" "$s50" "$s99" "$g50" "$g99" >> "$md"
		done
		# ratios of what a pacer decides (the stamps' part is 0 for vmpace:
		# it is in rtt); guest: the same both ways if the method holds
		for w in rtt delivery guest; do
			read -r _ a50 a99 _ <<< "$(sel vmpace "$q" "$w" | stats)"
			read -r _ b50 b99 _ <<< "$(sel boundary "$q" "$w" | stats)"
			echo "timed I/O,${q}us quanta,$w error p50 us,$a50,$b50,quantum-boundary,$(ratio "$a50" "$b50")" >> "$csv"
			[ "$w" = guest ] ||
				echo "timed I/O,${q}us quanta,$w error p99 us,$a99,$b99,quantum-boundary,$(ratio "$a99" "$b99")" >> "$csv"
		done
	done
fi

# ---- 4. overhead --------------------------------------------------------------
if [ -s overhead.csv ]; then
	sel() { # label mode -> iterations per host second (millions)
		awk -F, -v l="$1" -v m="$2" 'NR > 1 && $1 == l && $2 == m { print $7 / $5 * 1000 }' overhead.csv
	}
	read -r nd d50 _ dmax dmin _ <<< "$(sel distro off | stats)"
	read -r no o50 _ omax omin _ <<< "$(sel ours off | stats)"
	read -r np p50 _ pmax pmin _ <<< "$(sel ours paced | stats)"
	{
	echo
	echo "## 4. Overhead: guest compute loop throughput (M iterations per host second)"
	echo
	echo "A real-mode loop in pacebench's VM; our modules and Debian's are swapped in"
	echo "the same test VM between samples.  \"paced\": 1 ms quanta, held in KVM and"
	echo "released by a controller thread that polls the vCPU fd (vmpace's mechanism)."
	echo
	echo "| modules | pacing | samples | median | min | max | ratio (median) |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	echo "| Debian (distro) | off | $nd | $d50 | $dmin | $dmax | baseline |"
	echo "| vmpace | off | $no | $o50 | $omin | $omax | $(ratio "$o50" "$d50") vs distro |"
	echo "| vmpace | 1 ms quanta | $np | $p50 | $pmin | $pmax | $(ratio "$p50" "$o50") vs off, $(ratio "$p50" "$d50") vs distro |"
	} >> "$md"
	echo "overhead,pacing off,M iter/s median,$o50,$d50,distro modules,$(ratio "$o50" "$d50")" >> "$csv"
	echo "overhead,1 ms quanta,M iter/s median,$p50,$o50,ours unpaced,$(ratio "$p50" "$o50")" >> "$csv"
	echo "overhead,1 ms quanta,M iter/s median,$p50,$d50,distro modules,$(ratio "$p50" "$d50")" >> "$csv"
fi

{
echo
echo "Plots: $(ls ./*.png 2>/dev/null | tr '\n' ' ')"
} >> "$md"
