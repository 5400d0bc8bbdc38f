/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvmpace: the simulator's side of vmpace, in C.
 *
 * A simulator paces a KVM guest through vmpace(1) over a stream socket: it
 * grants guest time, vmpace runs the guest for exactly that much guest time
 * and reports the time that elapsed.  This library starts vmpace the way the
 * adevs simulator starts a QEMU patched for -external_sim (fork, the socket
 * on an inherited fd), or connects to a vmpace that listens, and speaks the
 * protocol: partial transfers, EINTR and SIGPIPE are handled, every error is
 * a negative errno with a message, and nothing here exits or aborts.
 *
 * See libvmpace(3).
 */
#ifndef LIBVMPACE_H
#define LIBVMPACE_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The wire format, as vmpace's --proto option names it. */
enum vmp_proto {
	VMP_PROTO_US32 = 0,	/* uint32 big-endian microseconds (the seed's) */
	VMP_PROTO_NS64 = 1,	/* uint64 big-endian nanoseconds */
	VMP_PROTO_FRAMED = 2,	/* typed messages, absolute guest ns (--proto framed) */
};

struct vmp;

/*
 * Constructors.  Each one stores a new session in *vp, also when it fails
 * (then vmp_errmsg() says why; NULL only if memory ran out), and returns 0 or
 * a negative errno.  Release it with vmp_free().
 *
 * vmp_spawn() starts argv[0] (searched in PATH) with argv, with the other
 * end of a new socketpair on the child's file descriptor attr->sync_fd (3
 * without attr), nothing else of ours inherited, every signal at its
 * default action.  The library reaps the child (vmp_close()): the
 * application must not (no SIGCHLD SIG_IGN, no waitpid(-1)).  The command line must
 * tell vmpace that fd, for example
 *   { "vmpace", "run", "--sync-fd", "3", "--", "qemu-system-x86_64", ..., NULL }
 *   { "vmpace", "--pid", "1234", "--sync-fd", "3", NULL }
 * attr may also give the child's standard output and error (for instance a
 * pipe to read the guest's console from).
 *
 * vmp_connect() connects to a vmpace started with --listen:
 * "unix:PATH" or "tcp:HOST:PORT".  vmpace may not listen yet: a refused
 * connection is retried for up to @timeout_ms (-1: for ever, 0: one
 * attempt that must succeed at once); resolving HOST is not bounded by it.
 *
 * vmp_from_fd() takes over @fd, a connected stream socket (for instance one
 * the simulator accepted from a vmpace that connects to it, or one end of a
 * socketpair whose other end the simulator gave a child itself); if it
 * fails, @fd stays the caller's.
 */
struct vmp_spawn_attr {
	int sync_fd;		/* the child's fd for the socket (>= 3); 0: 3 */
	unsigned int flags;	/* VMP_SPAWN_* */
	int stdout_fd;		/* with VMP_SPAWN_STDOUT: the child's stdout */
	int stderr_fd;		/* with VMP_SPAWN_STDERR: the child's stderr */
	unsigned int reserved[6];	/* zero (for later fields) */
};
#define VMP_SPAWN_STDOUT	0x1
#define VMP_SPAWN_STDERR	0x2

int vmp_spawn(struct vmp **vp, enum vmp_proto proto, const char *const argv[],
	      const struct vmp_spawn_attr *attr);
int vmp_connect(struct vmp **vp, enum vmp_proto proto, const char *addr,
		int timeout_ms);
int vmp_from_fd(struct vmp **vp, enum vmp_proto proto, int fd);

/*
 * One quantum: vmp_grant() sends a grant of @grant protocol units (us or ns)
 * and returns once it is sent; vmp_await() waits up to @timeout_ms (-1: for
 * ever) for the report and stores the guest time that elapsed, in the same
 * units, in *elapsed.  vmp_quantum() does both.
 *
 * Errors: -EBUSY (a grant is outstanding: await it first), -ERANGE (the
 * grant does not fit the protocol), -EALREADY (vmp_await without a grant),
 * -ETIMEDOUT (from vmp_await: no report yet, call it again, nothing is
 * lost; from sending: see the send timeout below), -ENOBUFS (from
 * vmp_await, framed: VMP_EVENTS_MAX_BYTES of events are queued; take them
 * with vmp_next_event() and call vmp_await() again, nothing is lost),
 * -EPIPE (vmpace ended the session or died: the message says how, with its
 * exit status if our child has already exited; vmp_close() waits for it),
 * -EPROTO (a report smaller than its grant, bytes without a grant), other
 * errno values of the socket.
 * No call waits longer than its timeout or the send timeout.  After an error
 * other than -EBUSY, -ERANGE, -EALREADY and vmp_await()'s -ETIMEDOUT and
 * -ENOBUFS the session is over.
 *
 * A grant of 0 ends the session (vmpace's default, --zero-grant=end: the
 * report never comes, vmp_await() returns -EPIPE) or is a step of no guest
 * time (--zero-grant=step).
 */
int vmp_grant(struct vmp *v, uint64_t grant);
int vmp_await(struct vmp *v, uint64_t *elapsed, int timeout_ms);
int vmp_quantum(struct vmp *v, uint64_t grant, uint64_t *elapsed, int timeout_ms);

/*
 * A grant or a frame is sent whole: if vmpace does not take it within the
 * send timeout (VMP_SEND_TIMEOUT_MS unless set; -1: none), vmp_grant(),
 * vmp_grant_until(), vmp_quantum() and vmp_send_frame() fail with
 * -ETIMEDOUT and the session is over (part of the message may have gone).
 * vmp_set_send_timeout(): -EINVAL below -1.
 */
#define VMP_SEND_TIMEOUT_MS	10000
int vmp_set_send_timeout(struct vmp *v, int timeout_ms);

/*
 * The framed protocol (VMP_PROTO_FRAMED, vmpace --proto framed, see
 * vmpace-proto(7)): the session's first grant or message sends its opening
 * and HELLO, and the first vmp_await() checks vmpace's reply (-EPIPE with "was it started with
 * --proto framed?" if vmpace closed the connection on the opening).  Grants
 * are in ns; vmp_grant(v, g) is vmp_grant_until(v, vmp_now(v) + g), and
 * vmp_grant_until() names the guest time at which the quantum ends (-ERANGE
 * if that is before vmp_now(), -EOPNOTSUPP with the seed protocols).  A
 * grant to vmp_now() itself is a step of no guest time.  If vmpace ends the
 * session for a reason of its own, it says why: the next call fails with
 * that text in vmp_errmsg() (-EPROTO if vmpace found a protocol error, else
 * -EPIPE).
 *
 * vmp_now(): the guest time reported so far, in ns since vmpace froze the
 * guest (every protocol; the sum of the elapsed times).
 */
int vmp_grant_until(struct vmp *v, uint64_t t);
uint64_t vmp_now(const struct vmp *v);

/*
 * Network frames and serial bytes (VMP_PROTO_FRAMED, vmpace run --net ID
 * ... --serial ID ...; network port i is the i-th --net, serial port i the
 * i-th --serial).  vmp_send_frame() sends a frame to be handed to the guest's
 * NIC on @port when guest time reaches @t (ns, as vmp_now()): vmpace stops
 * the guest there, gives the frame to QEMU and runs on; a VMP_EV_DELIVERED
 * event says when it happened.  Frames go while no grant is outstanding
 * (-EBUSY), in order of @t on each port (-EINVAL otherwise), 1 to 65535
 * bytes (-EMSGSIZE).  *id (may be NULL) receives the frame's id, which its
 * events name.  A @t before vmp_now() is delivered at once, as LATE.
 *
 * vmp_next_event() takes the next event that vmp_grant()/vmp_await() have
 * read from vmpace: 0, or -EAGAIN if there is none.  ev->data stays valid
 * until the next vmp_next_event() or vmp_free().  Events of a quantum are
 * read by the vmp_await() of its report; a frame that QEMU relayed after
 * the guest froze comes after that report, stamped with its time.  The
 * queue holds at most VMP_EVENTS_MAX_BYTES (a little more: the message
 * that reaches it is queued whole); then vmp_await() stops reading from
 * vmpace and returns -ENOBUFS until events are taken (vmpace, and behind
 * it QEMU and the guest's NIC, wait meanwhile).
 *
 * Serial ports are a feature the simulator asks for, before the session's
 * first grant or message: vmp_set_features(v, VMP_FEAT_SERIAL) (-EALREADY
 * later, -EINVAL for unknown bits, -EOPNOTSUPP with the seed protocols); a
 * vmpace with --serial ports ends a session that did not ask.
 * vmp_send_serial() is vmp_send_frame() for serial bytes (1 to
 * VMP_SERIAL_MAX per call; a stream: calls on a port follow each other):
 * vmpace hands them to QEMU at @t, whose device takes what it has room for
 * while the guest is frozen (a UART's receive FIFO: 16 bytes); the rest
 * follows as the guest reads, and the event says DEFERRED.  What the guest
 * writes comes as VMP_EV_SERIAL events, as much as QEMU had written, each
 * stamped like a frame.  vmp_send_serial() waits (up to the send timeout)
 * for vmpace's HELLO reply if it has not come yet; -EOPNOTSUPP if the
 * feature was not asked for or vmpace does not know it (too old), -EINVAL
 * for a port it does not have (none without --serial).
 *
 * vmp_net_ports(), vmp_serial_ports(): the ports vmpace has, known from the
 * first report on.
 */
enum vmp_event_type {
	VMP_EV_FRAME = 1,	/* a frame from the guest: port, id (sequence), t, data */
	VMP_EV_DELIVERED,	/* a frame reached QEMU: id, t, status, flags */
	VMP_EV_REJECTED,	/* vmpace refused frame id: data is its reason (text) */
	VMP_EV_SERIAL,		/* bytes from the guest: port, id (sequence), t, data */
};
#define VMP_DELIVERED_OK	0	/* at t, the first stop at or after the frame's time */
#define VMP_DELIVERED_LATE	1	/* its time had passed when vmpace got it */
#define VMP_DELIVERED_DEFERRED	2	/* QEMU had not taken (all of) it at t */
#define VMP_DELIVERED_IRQ	0x1	/* flags: a vCPU accepted an interrupt after it */

struct vmp_event {
	enum vmp_event_type type;
	unsigned int port;
	uint32_t id;
	uint64_t t;		/* guest ns: sent by the guest, or handed to it */
	unsigned int status, flags;
	const void *data;
	size_t len;
};

#define VMP_EVENTS_MAX_BYTES	(16u << 20)
#define VMP_SERIAL_MAX		4096	/* bytes of one vmp_send_serial() */
#define VMP_FEAT_SERIAL		0x1	/* vmp_set_features(): serial ports */

int vmp_send_frame(struct vmp *v, unsigned int port, uint64_t t, const void *frame,
		   size_t len, uint32_t *id);
int vmp_next_event(struct vmp *v, struct vmp_event *ev);
unsigned int vmp_net_ports(const struct vmp *v);
int vmp_set_features(struct vmp *v, unsigned int features);
int vmp_send_serial(struct vmp *v, unsigned int port, uint64_t t, const void *bytes,
		    size_t len, uint32_t *id);
unsigned int vmp_serial_ports(const struct vmp *v);

/*
 * Ends the session: closes the socket (vmpace then ends its session, and by
 * default the VMM), and for a spawned vmpace waits up to @timeout_ms (-1: for
 * ever) for it to exit.  *status (may be NULL) receives its wait status, or
 * -1 if it is not our child.  If it has not exited in time it is killed
 * (SIGKILL) and reaped, and -ETIMEDOUT is returned.  Idempotent.
 */
int vmp_close(struct vmp *v, int timeout_ms, int *status);
/*
 * Frees the session; if it is still open, vmp_close() with a timeout of 15 s
 * first (vmpace gives the VMM 10 s to end after SIGTERM, by default).
 */
void vmp_free(struct vmp *v);

int vmp_fd(const struct vmp *v);		/* for poll(); -1 once closed */
pid_t vmp_pid(const struct vmp *v);		/* the spawned child; 0 if none or reaped */
uint64_t vmp_unit_ns(const struct vmp *v);	/* 1000 or 1 */
/* The last error, after vmp_close() how vmpace ended, or "". */
const char *vmp_errmsg(const struct vmp *v);
/* What vmpace's exit code @code means (vmpace(1) EXIT STATUS). */
const char *vmp_exit_text(int code);

#ifdef __cplusplus
}
#endif

#endif
