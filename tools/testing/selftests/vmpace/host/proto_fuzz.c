// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer harness for vmpace's protocol decoders: any byte stream, cut into
 * any chunks, decodes to the same messages as a straightforward big-endian
 * parse (seed protocols) or as the same stream in one piece (framed: the
 * same messages, the same error at the same byte), every framed message
 * re-encodes to exactly the bytes it was decoded from, and nothing reads or
 * writes out of bounds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 64

struct fr_run {
	size_t nmsg, end[MAX_MSGS];	/* offset after each message */
	long err_at;			/* offset of the call that failed, -1 */
	char err[160];
};

/* Decodes @data in chunks of @chunk bytes; checks each message. */
static void fr_run(enum vp_fr_from from, const uint8_t *data, size_t size, size_t chunk,
		   struct fr_run *r)
{
	static struct vp_fr_decoder d;
	uint8_t enc[VP_FR_HDR + VP_FR_MAX_PAYLOAD];
	struct vp_fr_msg m;
	size_t off = 0, start;
	bool done;
	long used;

	vp_fr_decoder_init(&d, from);
	r->nmsg = 0;
	r->err_at = -1;
	start = from == VP_FR_FROM_SIM ? VP_FR_HDR : 0;
	while (off < size && r->nmsg < MAX_MSGS) {
		size_t len = size - off < chunk ? size - off : chunk;

		if (vp_fr_want(&d) < 1 || vp_fr_want(&d) > VP_FR_HDR + VP_FR_MAX_PAYLOAD)
			abort();
		used = vp_fr_decode(&d, data + off, len, &done, &m);
		if (used < 0) {
			/* the error is at a byte of this chunk: find which */
			r->err_at = (long)off;
			snprintf(r->err, sizeof(r->err), "%s", d.err);
			if (!d.err[0] || vp_fr_decode(&d, data, 1, &done, &m) != -EPROTO)
				abort();
			return;
		}
		if (used == 0 || (size_t)used > len)
			abort();
		off += used;
		if (!done)
			continue;
		if (m.len > VP_FR_MAX_PAYLOAD || off - start != VP_FR_HDR + m.len ||
		    vp_fr_encode(enc, m.type, m.flags, m.t, m.payload, m.len) != off - start ||
		    memcmp(enc, data + start, off - start))
			abort();
		r->end[r->nmsg++] = off;
		start = off;
	}
}

static void fuzz_framed(enum vp_fr_from from, size_t chunk, const uint8_t *data, size_t size)
{
	static struct fr_run whole, cut;
	size_t i;

	fr_run(from, data, size, size, &whole);
	fr_run(from, data, size, chunk, &cut);
	if (whole.nmsg != cut.nmsg || (whole.err_at < 0) != (cut.err_at < 0))
		abort();
	for (i = 0; i < whole.nmsg; i++)
		if (whole.end[i] != cut.end[i])
			abort();
	if (whole.err_at >= 0 && strcmp(whole.err, cut.err))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum vp_proto proto;
	struct vp_decoder d;
	size_t off, msg, nmsg = 0, chunk, used, i;
	uint64_t g, want;
	uint8_t out[8];
	bool done;

	if (size < 2)
		return 0;
	proto = data[0] & 1 ? VP_PROTO_NS64 : VP_PROTO_US32;
	chunk = data[1] % 11 + 1;
	if (data[0] & 2) {
		fuzz_framed(data[0] & 4 ? VP_FR_FROM_SIM : VP_FR_FROM_VMPACE, data[1] % 37 + 1,
			    data + 2, size - 2);
		return 0;
	}
	data += 2;
	size -= 2;
	msg = vp_msg_size(proto);

	vp_decoder_init(&d, proto);
	for (off = 0; off < size; ) {
		size_t len = size - off < chunk ? size - off : chunk;

		used = vp_decode(&d, data + off, len, &done, &g);
		if (used == 0 || used > len)
			abort();
		off += used;
		if (!done)
			continue;
		want = 0;
		for (i = 0; i < msg; i++)
			want = want << 8 | data[nmsg * msg + i];
		if (g != want || off != (nmsg + 1) * msg)
			abort();
		/* the report encoder is the inverse */
		if (proto == VP_PROTO_NS64 || g <= UINT32_MAX) {
			if (vp_encode(proto, g, out) != (int)msg ||
			    memcmp(out, data + nmsg * msg, msg))
				abort();
		}
		nmsg++;
	}
	if (vp_decoder_partial(&d) != (size % msg != 0))
		abort();
	return 0;
}
