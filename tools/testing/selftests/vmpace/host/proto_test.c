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

	/* 2.6 GHz guest TSC: 1 us = 2600 ticks */
	T(!vp_units_to_ticks_ceil(1, 1000, 2600000, &t) && t == 2600, "1 us = 2600 ticks at 2.6 GHz");
	T(!vp_units_to_ticks_ceil(1, 1, 2600000, &t) && t == 3, "1 ns rounds up to 3 ticks");
	T(vp_ticks_to_units_floor(2599, 1000, 2600000) == 0, "2599 ticks round down to 0 us");
	T(vp_ticks_to_units_floor(2600ull * 1000000 * 3600, 1000, 2600000) == 3600000000ull,
	  "one hour of ticks is 3600000000 us (no overflow)");
	T(vp_units_to_ticks_ceil(UINT64_MAX, 1000, 4000000, &t) == -ERANGE,
	  "a grant that overflows 64-bit ticks is refused");
	for (i = 1, r = 1; i < 100000; i += 7) {
		vp_units_to_ticks_ceil(i, 1000, 2596121, &t);
		if (vp_ticks_to_units_floor(t, 1000, 2596121) != (uint64_t)i)
			r = 0;
	}
	T(r, "ceil to ticks then floor to us gives the grant back exactly");

	printf("1..%d\n", n);
	return failed != 0;
}
