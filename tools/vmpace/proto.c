// SPDX-License-Identifier: GPL-2.0 OR LGPL-2.1-or-later
#include <errno.h>
#include <string.h>

#include "proto.h"

size_t vp_msg_size(enum vp_proto proto)
{
	return proto == VP_PROTO_NS64 ? 8 : 4;
}

uint64_t vp_unit_ns(enum vp_proto proto)
{
	return proto == VP_PROTO_NS64 ? 1 : 1000;
}

void vp_decoder_init(struct vp_decoder *d, enum vp_proto proto)
{
	memset(d, 0, sizeof(*d));
	d->proto = proto;
}

size_t vp_decode(struct vp_decoder *d, const uint8_t *in, size_t len,
		 bool *complete, uint64_t *grant)
{
	size_t need = vp_msg_size(d->proto) - d->len;
	size_t n = len < need ? len : need;
	uint64_t v = 0;
	size_t i;

	memcpy(d->buf + d->len, in, n);
	d->len += n;
	*complete = d->len == vp_msg_size(d->proto);
	if (!*complete)
		return n;

	for (i = 0; i < d->len; i++)
		v = v << 8 | d->buf[i];
	*grant = v;
	d->len = 0;
	return n;
}

bool vp_decoder_partial(const struct vp_decoder *d)
{
	return d->len != 0;
}

int vp_encode(enum vp_proto proto, uint64_t value, uint8_t out[8])
{
	size_t size = vp_msg_size(proto), i;

	if (size == 4 && value > UINT32_MAX)
		return -ERANGE;
	for (i = 0; i < size; i++)
		out[i] = value >> (8 * (size - 1 - i));
	return (int)size;
}

uint64_t vp_pvclock_ns(uint64_t ticks, uint32_t mul, int8_t shift)
{
	unsigned __int128 t = ticks;

	if (shift < 0)
		t >>= -shift;
	else
		t <<= shift;
	t = t * mul >> 32;
	return t > UINT64_MAX ? UINT64_MAX : (uint64_t)t;
}

int vp_pvclock_ticks_ceil(uint64_t ns, uint32_t mul, int8_t shift,
			  uint64_t *ticks)
{
	unsigned __int128 t;

	if (!mul)
		return -ERANGE;
	/* Smallest x with x * mul >> 32 >= ns, then undo the shift. */
	t = (((unsigned __int128)ns << 32) + mul - 1) / mul;
	if (shift < 0)
		t <<= -shift;
	else
		t = (t + ((unsigned __int128)1 << shift) - 1) >> shift;
	if (t > UINT64_MAX)
		return -ERANGE;
	/* Rounding of the shift: step up until the guest's math agrees. */
	while (vp_pvclock_ns((uint64_t)t, mul, shift) < ns) {
		if (t == UINT64_MAX)
			return -ERANGE;
		t++;
	}
	*ticks = (uint64_t)t;
	return 0;
}

/* Exit codes as vmpace(1) documents them. */
static const char *const exit_text[] = {
	[VP_EXIT_OK] = "the simulator ended the session",
	[VP_EXIT_ERROR] = "system error",
	[VP_EXIT_USAGE] = "usage",
	[VP_EXIT_NO_PROCESS] = "no such process",
	[VP_EXIT_NOT_KVM] = "not a KVM process",
	[VP_EXIT_PERM] = "permission denied",
	[VP_EXIT_NO_PACING] = "kernel without KVM pacing",
	[VP_EXIT_PROTOCOL] = "protocol error",
	[VP_EXIT_VMM_DIED] = "the VMM exited",
	[VP_EXIT_SIGNAL] = "SIGINT/SIGTERM/SIGHUP",
	[VP_EXIT_BUSY] = "another controller paces the VM",
	[VP_EXIT_PEER_LOST] = "lost the simulator's connection",
	[VP_EXIT_UNSUPPORTED] = "KVM cannot pace this guest",
};

const char *vp_exit_text(int code)
{
	if (code < 0 || code >= (int)(sizeof(exit_text) / sizeof(exit_text[0])))
		return NULL;
	return exit_text[code];
}
