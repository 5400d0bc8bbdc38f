// SPDX-License-Identifier: GPL-2.0
/* Unit tests of vmpace's protocol codec and time conversions.  Prints TAP. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"

static int n, failed;

#define T(cond, ...) do {						\
	n++;								\
	if (cond) {							\
		printf("ok %d - ", n);					\
	} else {							\
		printf("not ok %d - ", n);				\
		failed++;						\
	}								\
	printf(__VA_ARGS__);						\
	printf("\n");							\
} while (0)

int main(void)
{
	const uint8_t us[] = { 0x00, 0x00, 0x27, 0x10, 0xde, 0xad, 0xbe, 0xef };
	const uint8_t ns[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };
	struct vp_decoder d;
	uint64_t g = 0, t;
	uint8_t out[8];
	bool done;
	size_t used;
	int i, r;

	vp_decoder_init(&d, VP_PROTO_US32);
	used = vp_decode(&d, us, sizeof(us), &done, &g);
	T(used == 4 && done && g == 10000, "us32: network byte order, one message per call");
	used = vp_decode(&d, us + 4, 4, &done, &g);
	T(used == 4 && done && g == 0xdeadbeef, "us32: the next message follows");

	vp_decoder_init(&d, VP_PROTO_US32);
	for (i = 0; i < 3; i++) {
		vp_decode(&d, us + i, 1, &done, &g);
		if (done)
			break;
	}
	T(!done && vp_decoder_partial(&d), "us32: 3 of 4 bytes are a partial message");
	vp_decode(&d, us + 3, 1, &done, &g);
	T(done && g == 10000 && !vp_decoder_partial(&d), "us32: the 4th byte completes it");

	vp_decoder_init(&d, VP_PROTO_NS64);
	used = vp_decode(&d, ns, 5, &done, &g);
	T(used == 5 && !done, "ns64: 5 of 8 bytes");
	vp_decode(&d, ns + 5, 3, &done, &g);
	T(done && g == 0x0102030405060708ull, "ns64: big-endian 64-bit value");

	r = vp_encode(VP_PROTO_US32, 0x01020304, out);
	T(r == 4 && !memcmp(out, "\x01\x02\x03\x04", 4), "us32: report encoded big-endian");
	r = vp_encode(VP_PROTO_US32, 0x100000000ull, out);
	T(r == -ERANGE, "us32: a report above UINT32_MAX is refused");
	r = vp_encode(VP_PROTO_NS64, 0x0102030405060708ull, out);
	T(r == 8 && !memcmp(out, ns, 8), "ns64: report encoded big-endian");

	/* The guest's pvclock scale: 2445408 kHz is mul 3512680953, shift -1. */
	T(vp_pvclock_ns(2445408000ull, 3512680953u, -1) / 1000 == 1000000,
	  "one second of ticks at 2445408 kHz is 1 s of kvmclock");
	for (i = 0, r = 1; i < 200000; i += 13) {
		static const struct { uint32_t mul; int8_t shift; } sc[] = {
			{ 3512680953u, -1 }, { 2147483648u, 1 }, { 4294967295u, -3 },
			{ 3435973837u, 21 }, { 1000u, -8 },
		};
		int k = i % 5;

		if (vp_pvclock_ticks_ceil(i * 997ull, sc[k].mul, sc[k].shift, &t)) {
			r = 0;
			break;
		}
		/* the fewest ticks: one less falls short */
		if (vp_pvclock_ns(t, sc[k].mul, sc[k].shift) < i * 997ull ||
		    (t && vp_pvclock_ns(t - 1, sc[k].mul, sc[k].shift) >= i * 997ull && i))
			r = 0;
	}
	T(r, "pvclock: the fewest ticks that make a duration, for negative and positive shifts");
	T(vp_pvclock_ticks_ceil(UINT64_MAX, 1, -8, &t) == -ERANGE,
	  "pvclock: ticks that do not fit in 64 bits are refused");
	T(vp_pvclock_ticks_ceil(1000, 0, 0, &t) == -ERANGE, "pvclock: no scale, no conversion");
	T(vp_pvclock_ns(UINT64_MAX, UINT32_MAX, 31) == UINT64_MAX,
	  "pvclock: the largest inputs saturate instead of wrapping");

	printf("1..%d\n", n);
	return failed != 0;
}
