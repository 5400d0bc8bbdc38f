/* SPDX-License-Identifier: GPL-2.0 OR LGPL-2.1-or-later */
/*
 * The simulator protocol: the adevs / QEMU -external_sim "v2" exchange.
 *
 * The simulator writes first: a grant, the time the guest may advance.
 * vmpace answers with the time that actually elapsed.  Both are unsigned
 * big-endian integers: 32-bit microseconds in the seed protocol, 64-bit
 * nanoseconds in the ns64 variant.  A zero grant ends the session.
 *
 * Shared by vmpace and libvmpace (the simulator's side), hence the dual
 * licence.
 */
#ifndef VMPACE_PROTO_H
#define VMPACE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vp_proto {
	VP_PROTO_US32,		/* seed: uint32 microseconds */
	VP_PROTO_NS64,		/* uint64 nanoseconds */
	VP_PROTO_FRAMED,	/* typed messages, absolute guest ns: below */
};

struct vp_decoder {
	enum vp_proto proto;
	uint8_t buf[8];
	size_t len;		/* bytes of the next message received so far */
};

/* The seed protocols' message size (4 or 8); not for VP_PROTO_FRAMED. */
size_t vp_msg_size(enum vp_proto proto);
uint64_t vp_unit_ns(enum vp_proto proto);

void vp_decoder_init(struct vp_decoder *d, enum vp_proto proto);

/*
 * Feed received bytes.  Returns how many were consumed: stops after one
 * complete message, which is stored in *grant (in protocol units), and sets
 * *complete.  Partial messages are kept for the next call.
 */
size_t vp_decode(struct vp_decoder *d, const uint8_t *in, size_t len,
		 bool *complete, uint64_t *grant);

/* True if bytes of an unfinished message are pending (EOF would cut it). */
bool vp_decoder_partial(const struct vp_decoder *d);

/* Encode a report; -ERANGE if it does not fit the protocol's width. */
int vp_encode(enum vp_proto proto, uint64_t value, uint8_t out[8]);

/*
 * The framed protocol, version 1 (vmpace-proto(7)).  The simulator opens
 * with 16 zero bytes (a seed vmpace reads them as a zero grant, which ends
 * its session before the guest runs) and a HELLO.  Every message is a
 * 16-byte big-endian header, then @len bytes of payload:
 *
 *   u16 type, u16 flags (0 in version 1), u32 len, u64 t
 *
 * t is guest time in ns since the session started (the guest frozen).
 */
#define VP_FR_HDR		16
#define VP_FR_VERSION		1
#define VP_FR_MAX_TEXT		1024	/* of an ERROR's text */
#define VP_FR_MAX_FRAME		65535	/* bytes of a network frame */
#define VP_FR_FRAME_HDR		8	/* u32 id, u16 port, u16 reserved */
#define VP_FR_MAX_PAYLOAD	(VP_FR_FRAME_HDR + VP_FR_MAX_FRAME)
#define VP_FR_MAX_SERIAL	4096	/* bytes of a SERIAL message */

/* HELLO features (asked by the simulator, granted in the HELLO reply) */
#define VP_FR_FEAT_SERIAL	0x1	/* serial ports: SERIAL_TO/FROM_GUEST */
#define VP_FR_FEATURES		VP_FR_FEAT_SERIAL	/* all that vmpace knows */

enum vp_fr_type {
	/* simulator -> vmpace */
	VP_FR_HELLO		= 0x0001,	/* u32 version_min, version_max, features */
	VP_FR_GRANT		= 0x0010,	/* run until guest time t */
	VP_FR_BYE		= 0x0011,	/* end of session */
	VP_FR_FRAME_TO_GUEST	= 0x0020,	/* u32 id, u16 port, u16 0, frame; at t */
	VP_FR_SERIAL_TO_GUEST	= 0x0030,	/* u32 id, u16 port, u16 0, bytes; at t */
	/* vmpace -> simulator */
	VP_FR_HELLO_REPLY	= 0x8001,	/* u32 version, features, u16 net, serial ports */
	VP_FR_REPORT		= 0x8010,	/* frozen at guest time t */
	VP_FR_FRAME_FROM_GUEST	= 0x8020,	/* u32 seq, u16 port, u16 0, frame; at t */
	VP_FR_DELIVERED		= 0x8021,	/* u32 id, u16 status, u16 flags; at t */
	VP_FR_SERIAL_FROM_GUEST	= 0x8030,	/* u32 seq, u16 port, u16 0, bytes; at t */
	VP_FR_ERROR		= 0x80ff,	/* u32 exit code or 0, u32 frame id, text */
};
#define VP_FR_HELLO_LEN		12
#define VP_FR_DELIVERED_LEN	8
#define VP_FR_ERROR_FATAL	0x1		/* flags of an ERROR: vmpace exits */

/* DELIVERED: status */
enum {
	VP_FR_DELIVERED_OK	= 0,	/* handed to QEMU at t, the first stop at or after T */
	VP_FR_DELIVERED_LATE	= 1,	/* T had passed when it came: handed over at t */
	VP_FR_DELIVERED_DEFERRED = 2,	/* QEMU did not take (all of) it: later, unknown when */
};
/* DELIVERED: flags */
#define VP_FR_DELIVERED_IRQ	0x1	/* a vCPU accepted an interrupt after QEMU took it */

/* Who sent the bytes a decoder reads. */
enum vp_fr_from { VP_FR_FROM_SIM, VP_FR_FROM_VMPACE };

struct vp_fr_msg {
	uint16_t type, flags;
	uint32_t len;
	uint64_t t;
	const uint8_t *payload;		/* @len bytes, in the decoder */
};

struct vp_fr_decoder {
	enum vp_fr_from from;
	size_t opening;			/* zero bytes of the opening still due */
	size_t have;			/* bytes of the current message */
	struct vp_fr_msg m;		/* its header, once complete */
	uint8_t buf[VP_FR_HDR + VP_FR_MAX_PAYLOAD];
	char err[160];			/* why vp_fr_decode() failed */
};

/* @from VP_FR_FROM_SIM expects the 16-byte opening first. */
void vp_fr_decoder_init(struct vp_fr_decoder *d, enum vp_fr_from from);
/* Bytes that complete the opening, header or message under way (>= 1). */
size_t vp_fr_want(const struct vp_fr_decoder *d);
/*
 * Feed received bytes: consumes at most up to the end of one message,
 * which then is in *m (valid until the next call) with *complete set.
 * Returns the bytes consumed, or -EPROTO with d->err saying why: a non-zero
 * byte in the opening, a type the sender may not send, flags, a length
 * that the type does not allow.  After an error the decoder is unusable.
 */
long vp_fr_decode(struct vp_fr_decoder *d, const uint8_t *in, size_t len,
		  bool *complete, struct vp_fr_msg *m);
bool vp_fr_partial(const struct vp_fr_decoder *d);
/*
 * Writes a message (header and @len bytes of @payload) to @out, which has
 * room for VP_FR_HDR + @len bytes; returns its size.
 */
size_t vp_fr_encode(uint8_t *out, uint16_t type, uint16_t flags, uint64_t t,
		    const void *payload, uint32_t len);
/* The name of a message type ("GRANT"), "unknown" if none. */
const char *vp_fr_type_name(uint16_t type);
/* Big-endian fields of payloads. */
uint16_t vp_get_be16(const uint8_t *p);
void vp_put_be16(uint8_t *p, uint16_t v);
uint32_t vp_get_be32(const uint8_t *p);
void vp_put_be32(uint8_t *p, uint32_t v);

/*
 * Guest time as the guest's kvmclock counts it while the VM is paced: @ticks
 * of guest TSC are (@ticks << shift) * mul >> 32 ns (>> -shift for a negative
 * shift), the scale of struct pvclock_vcpu_time_info that KVM_GET_PACE_STATE
 * reports.  vp_pvclock_ticks_ceil() is the fewest ticks that make at least
 * @ns nanoseconds; -ERANGE if they do not fit in 64 bits or @mul is 0.
 */
uint64_t vp_pvclock_ns(uint64_t ticks, uint32_t mul, int8_t shift);
int vp_pvclock_ticks_ceil(uint64_t ns, uint32_t mul, int8_t shift,
			  uint64_t *ticks);

/* Exit codes, documented in vmpace(1). */
enum {
	VP_EXIT_OK		= 0,	/* the simulator ended the session */
	VP_EXIT_ERROR		= 1,	/* other system error */
	VP_EXIT_USAGE		= 2,	/* bad command line */
	VP_EXIT_NO_PROCESS	= 3,	/* no such process */
	VP_EXIT_NOT_KVM		= 4,	/* the process has no KVM vCPUs */
	VP_EXIT_PERM		= 5,	/* not allowed to borrow its fds */
	VP_EXIT_NO_PACING	= 6,	/* the kernel has no KVM_CAP_PACE */
	VP_EXIT_PROTOCOL	= 7,	/* the simulator broke the protocol */
	VP_EXIT_VMM_DIED	= 8,	/* the VMM exited during the session */
	VP_EXIT_SIGNAL		= 9,	/* SIGINT/SIGTERM/SIGHUP */
	VP_EXIT_BUSY		= 10,	/* another controller paces the VM */
	VP_EXIT_PEER_LOST	= 11,	/* the simulator's connection failed */
	VP_EXIT_UNSUPPORTED	= 12,	/* KVM cannot pace this guest */
};

/* What exit code @code means, or NULL if vmpace does not use it. */
const char *vp_exit_text(int code);

#endif
