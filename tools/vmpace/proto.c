// SPDX-License-Identifier: GPL-2.0 OR LGPL-2.1-or-later
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"

size_t vp_msg_size(enum vp_proto proto)
{
	return proto == VP_PROTO_NS64 ? 8 : 4;
}

uint64_t vp_unit_ns(enum vp_proto proto)
{
	return proto == VP_PROTO_US32 ? 1000 : 1;
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

/* ----- the framed protocol ------------------------------------------ */

uint16_t vp_get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

void vp_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

uint32_t vp_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void vp_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)vp_get_be32(p) << 32 | vp_get_be32(p + 4);
}

const char *vp_fr_type_name(uint16_t type)
{
	switch (type) {
	case VP_FR_HELLO:	return "HELLO";
	case VP_FR_GRANT:	return "GRANT";
	case VP_FR_BYE:		return "BYE";
	case VP_FR_HELLO_REPLY:	return "HELLO reply";
	case VP_FR_REPORT:	return "REPORT";
	case VP_FR_ERROR:	return "ERROR";
	case VP_FR_FRAME_TO_GUEST:	return "FRAME_TO_GUEST";
	case VP_FR_FRAME_FROM_GUEST:	return "FRAME_FROM_GUEST";
	case VP_FR_DELIVERED:	return "DELIVERED";
	case VP_FR_SERIAL_TO_GUEST:	return "SERIAL_TO_GUEST";
	case VP_FR_SERIAL_FROM_GUEST:	return "SERIAL_FROM_GUEST";
	}
	return "unknown";
}

/*
 * The payload sizes a sender may use for a type: [*min, *max]; false if it
 * may not send the type at all.
 */
static bool fr_allowed(enum vp_fr_from from, uint16_t type, uint32_t *min, uint32_t *max)
{
	*min = *max = 0;
	if (from == VP_FR_FROM_SIM) {
		switch (type) {
		case VP_FR_HELLO:
			*min = *max = VP_FR_HELLO_LEN;
			return true;
		case VP_FR_GRANT:
		case VP_FR_BYE:
			return true;
		case VP_FR_FRAME_TO_GUEST:
			*min = VP_FR_FRAME_HDR + 1;
			*max = VP_FR_MAX_PAYLOAD;
			return true;
		case VP_FR_SERIAL_TO_GUEST:
			*min = VP_FR_FRAME_HDR + 1;
			*max = VP_FR_FRAME_HDR + VP_FR_MAX_SERIAL;
			return true;
		}
		return false;
	}
	switch (type) {
	case VP_FR_HELLO_REPLY:
		*min = *max = VP_FR_HELLO_LEN;
		return true;
	case VP_FR_REPORT:
		return true;
	case VP_FR_FRAME_FROM_GUEST:
		*min = VP_FR_FRAME_HDR + 1;
		*max = VP_FR_MAX_PAYLOAD;
		return true;
	case VP_FR_SERIAL_FROM_GUEST:
		*min = VP_FR_FRAME_HDR + 1;
		*max = VP_FR_FRAME_HDR + VP_FR_MAX_SERIAL;
		return true;
	case VP_FR_DELIVERED:
		*min = *max = VP_FR_DELIVERED_LEN;
		return true;
	case VP_FR_ERROR:
		*min = 8;
		*max = 8 + VP_FR_MAX_TEXT;
		return true;
	}
	return false;
}

void vp_fr_decoder_init(struct vp_fr_decoder *d, enum vp_fr_from from)
{
	memset(d, 0, sizeof(*d));
	d->from = from;
	d->opening = from == VP_FR_FROM_SIM ? VP_FR_HDR : 0;
}

size_t vp_fr_want(const struct vp_fr_decoder *d)
{
	if (d->opening)
		return d->opening;
	if (d->have < VP_FR_HDR)
		return VP_FR_HDR - d->have;
	return VP_FR_HDR + d->m.len - d->have;
}

static long __attribute__((format(printf, 2, 3))) fr_error(struct vp_fr_decoder *d,
							   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->err, sizeof(d->err), fmt, ap);
	va_end(ap);
	d->opening = 0;
	d->have = 0;
	return -EPROTO;
}

long vp_fr_decode(struct vp_fr_decoder *d, const uint8_t *in, size_t len,
		  bool *complete, struct vp_fr_msg *m)
{
	size_t used = 0, n;
	uint32_t min, max;

	*complete = false;
	if (d->err[0])
		return -EPROTO;
	while (d->opening && used < len) {
		if (in[used])
			return fr_error(d, "byte %u of the opening is 0x%02x, not 0: not "
					"the framed protocol", VP_FR_HDR - (unsigned int)d->opening,
					in[used]);
		d->opening--;
		used++;
	}
	while (used < len && !*complete) {
		n = vp_fr_want(d);
		if (n > len - used)
			n = len - used;
		memcpy(d->buf + d->have, in + used, n);
		d->have += n;
		used += n;
		if (d->have == VP_FR_HDR && n) {
			d->m.type = (uint16_t)(d->buf[0] << 8 | d->buf[1]);
			d->m.flags = (uint16_t)(d->buf[2] << 8 | d->buf[3]);
			d->m.len = vp_get_be32(d->buf + 4);
			d->m.t = get_be64(d->buf + 8);
			d->m.payload = d->buf + VP_FR_HDR;
			if (!fr_allowed(d->from, d->m.type, &min, &max))
				return fr_error(d, "message type 0x%04x is not one %s sends",
						d->m.type, d->from == VP_FR_FROM_SIM ?
						"a simulator" : "vmpace");
			if (d->m.flags & ~(d->m.type == VP_FR_ERROR ? VP_FR_ERROR_FATAL : 0))
				return fr_error(d, "%s with flags 0x%x (none are defined)",
						vp_fr_type_name(d->m.type), d->m.flags);
			if (d->m.len < min || d->m.len > max)
				return fr_error(d, "%s with a payload of %u bytes (%u to %u)",
						vp_fr_type_name(d->m.type), d->m.len, min, max);
		}
		if (d->have >= VP_FR_HDR && d->have == VP_FR_HDR + d->m.len) {
			*m = d->m;
			*complete = true;
			d->have = 0;
		}
	}
	return (long)used;
}

bool vp_fr_partial(const struct vp_fr_decoder *d)
{
	return d->have != 0 || (d->opening && d->opening != VP_FR_HDR);
}

size_t vp_fr_encode(uint8_t *out, uint16_t type, uint16_t flags, uint64_t t,
		    const void *payload, uint32_t len)
{
	out[0] = type >> 8;
	out[1] = type;
	out[2] = flags >> 8;
	out[3] = flags;
	vp_put_be32(out + 4, len);
	vp_put_be32(out + 8, t >> 32);
	vp_put_be32(out + 12, (uint32_t)t);
	if (len)
		memcpy(out + VP_FR_HDR, payload, len);
	return VP_FR_HDR + len;
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
