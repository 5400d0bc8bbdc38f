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
};

struct vp_decoder {
	enum vp_proto proto;
	uint8_t buf[8];
	size_t len;		/* bytes of the next message received so far */
};

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
