// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer harness for vmpace's protocol decoder: any byte stream, cut into
 * any chunks, decodes to the same messages as a straightforward big-endian
 * parse, and never reads or writes out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
