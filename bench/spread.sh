#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The spread of every ratio over independent runs: spread.sh RESULTS-DIR
# reads RESULTS-DIR/run-*/summary.csv (report.sh's), writes
# RESULTS-DIR/summary.csv (one row per measure, case, metric and baseline:
# runs, median of vmpace's and the baseline's values, median, min and max of
# the ratio) and prints the same as a markdown table.
set -euo pipefail
D=${1:?results dir}
files=("$D"/run-*/summary.csv)
[ -e "${files[0]}" ] || { echo "spread.sh: no run-*/summary.csv in $D" >&2; exit 1; }

echo "measure,case,metric,baseline_name,runs,vmpace_median,baseline_median,ratio_median,ratio_min,ratio_max" \
	> "$D/summary.csv"
echo "Every ratio is vmpace / baseline from the same run (same test VM boot);"
echo "median and range over the runs.  Lower is better for overshoot, cost and"
echo "drift; for throughput, closer to 1 is better."
echo
echo "| measure | case | metric | baseline | runs | vmpace | baseline | ratio (median) | ratio min | ratio max |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
# key = measure,case,metric,baseline_name (in the order of first appearance)
awk -F, '
	FNR == 1 { next }
	{
		k = $1 "," $2 "," $3 "," $6
		if (!(k in seen)) { seen[k] = 1; order[++n] = k }
		if ($4 ~ /^[-+0-9.e]+$/) v[k] = v[k] " " $4
		if ($5 ~ /^[-+0-9.e]+$/) b[k] = b[k] " " $5
		if ($7 ~ /^[-+0-9.e]+$/) { r[k] = r[k] " " $7; nr[k]++ }
	}
	function med(s,   a, m, i, j, t) {
		m = split(s, a, " ")
		if (!m) return "n/a"
		for (i = 2; i <= m; i++)	# insertion sort, a few values
			for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return m % 2 ? a[(m + 1) / 2] : sprintf("%.4g", (a[m / 2] + a[m / 2 + 1]) / 2)
	}
	function ext(s, hi,   a, m, i, x) {
		m = split(s, a, " ")
		if (!m) return "n/a"
		x = a[1]
		for (i = 2; i <= m; i++) if (hi ? a[i] + 0 > x + 0 : a[i] + 0 < x + 0) x = a[i]
		return x
	}
	END {
		for (i = 1; i <= n; i++) {
			k = order[i]
			split(k, f, ",")
			printf "%s,%d,%s,%s,%s,%s,%s\n", k, nr[k] + 0, med(v[k]), med(b[k]),
				med(r[k]), ext(r[k], 0), ext(r[k], 1) >> csv
			for (j = 1; j <= 4; j++) gsub(/\|/, "\\|", f[j])	# markdown cells
			printf "| %s | %s | %s | %s | %d | %s | %s | %s | %s | %s |\n", f[1], f[2], f[3], f[4],
				nr[k] + 0, med(v[k]), med(b[k]), med(r[k]), ext(r[k], 0), ext(r[k], 1)
		}
	}' csv="$D/summary.csv" "${files[@]}"
