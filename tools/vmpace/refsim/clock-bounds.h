/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Is the guest's clock simulated time plus a constant?  Each clock line of
 * the test guest ("vmpace-guest-clock <seq> <before> <after>", see the
 * guest's clock-init.c) read after the report of a quantum that ran from
 * simulated time @start to @end (us), and not after the previous one, was
 * written out during that quantum, one synchronous I/O exit per byte: the
 * guest read <before> (ns) at most at @end, and the next line's <after> at
 * least at @start.  If guest = simulated + C, then C (in us, rounded down)
 * lies in [lo, hi] after every line; the clock is exact when lo <= hi + 1
 * (1 us for rounding), whatever the host's speed.  clock_bounds_fit() takes
 * any reading known to lie between two simulated times (sersim: a line's
 * handover and the report after its answer).
 *
 * Shared by refsim, sersim and the end-to-end test client.
 */
#ifndef VMPACE_CLOCK_BOUNDS_H
#define VMPACE_CLOCK_BOUNDS_H

#include <stdbool.h>
#include <stdint.h>

struct clock_bounds {
	int64_t lo, hi;		/* guest - simulated, us */
	int64_t prev_start;	/* the previous line's quantum start */
	unsigned long lines;
};

static inline void clock_bounds_init(struct clock_bounds *b)
{
	b->lo = INT64_MIN;
	b->hi = INT64_MAX;
	b->prev_start = 0;
	b->lines = 0;
}

/*
 * One reading of the guest's clock (@guest_ns) known to have been taken at
 * a simulated time from @from_ns to @to_ns: guest - simulated lies in
 * [guest - to, guest - from], rounded down to us (all three >= 0, so the
 * divisions round down).
 */
static inline void clock_bounds_fit(struct clock_bounds *b, int64_t guest_ns,
				    int64_t from_ns, int64_t to_ns)
{
	int64_t lo = guest_ns / 1000 - to_ns / 1000;
	int64_t hi = guest_ns / 1000 - from_ns / 1000;

	if (lo > b->lo)
		b->lo = lo;
	if (hi < b->hi)
		b->hi = hi;
	b->lines++;
}

/*
 * A line's clock values (ns), read in the quantum [start, end] (us); returns
 * guest - simulated time at the end of the quantum (us).
 */
static inline int64_t clock_bounds_add(struct clock_bounds *b, int64_t before_ns,
				    int64_t after_ns, int64_t start_us,
				    int64_t end_us)
{
	int64_t v = before_ns / 1000 - end_us, w;

	if (v > b->lo)
		b->lo = v;
	if (b->lines) {
		w = after_ns / 1000 - b->prev_start;
		if (w < b->hi)
			b->hi = w;
	}
	b->prev_start = start_us;
	b->lines++;
	return v;
}

/*
 * Guest time is simulated time plus a constant, within 1 us of rounding
 * (two floors of a difference, each off by less than 1 us).
 */
static inline bool clock_bounds_exact(const struct clock_bounds *b)
{
	return b->lines >= 2 && b->lo <= b->hi + 1;
}

#endif /* VMPACE_CLOCK_BOUNDS_H */
