// SPDX-License-Identifier: GPL-2.0
/*
 * The pacing session: one epoll loop over the simulator's socket, the vCPU
 * fds (readable while a vCPU is held at its deadline), the VMM's pidfd, a
 * signalfd, a timerfd for stall diagnostics and, for a QEMU that vmpace
 * started, its QMP monitor.
 *
 * Guest time is the guest's own kvmclock, which KVM keeps a function of the
 * guest TSC while the VM is paced (KVM_GET_PACE_STATE's guest_ns, with the
 * scale tsc_to_ns_mul/tsc_shift), counted from the moment vmpace froze the
 * guest.  A grant of g units ends once kvmclock reads at least g units past
 * the previous report's end: the deadline is the first guest TSC at which it
 * does, and if kvmclock was moved back meanwhile (a QEMU stop/cont during
 * the quantum sets it back to its value at the stop) the quantum goes on
 * from there.  Reports are floor(total elapsed) minus what was already
 * reported, so their sum is the exact elapsed time and the overshoot is
 * carried, never lost.  A report is sent only when KVM says the VM is
 * frozen.
 *
 * The framed protocol (--proto framed) carries the same exchange as typed
 * messages: its GRANT names the guest time at which the quantum ends and its
 * REPORT the exact guest time at which the VM froze, both in ns since the
 * guest was frozen at attach; what vmpace ends a session for is sent as an
 * ERROR before it closes.
 *
 * Error convention: event handlers return nothing; a handler that ends the
 * session calls finish() (or fail(), which says why) with the exit code.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "qmp.h"
#include "vmpace.h"

enum { TAG_SYNC = -1, TAG_PIDFD = -2, TAG_SIGNAL = -3, TAG_TIMER = -4, TAG_QMP = -5,
       TAG_NET0 = -1000 /* port i (network, then serial): TAG_NET0 - i */ };
#define MAX_PORTS	(VP_MAX_NET + VP_MAX_SERIAL)

/* Limits of the framed protocol's network frames (vmpace-proto(7)). */
#define TXQ_MAX_FRAMES	1024		/* queued for the guest */
#define TXQ_MAX_BYTES	(4u << 20)
/* A serial port's bytes that QEMU has not taken: beyond, bytes are refused. */
#define SERIAL_UNREAD_MAX	(64u << 10)
/*
 * Unsent to the simulator: past OQ_PORTS_STOP vmpace stops reading QEMU's
 * network ports (until below OQ_PORTS_RESUME), past OQ_LIMIT the
 * simulator's own messages.  Frames from the guest alone stay below
 * OQ_PORTS_STOP + one frame, so only ERRORs for the simulator's own refused
 * frames can keep vmpace from reading it.
 */
#define OQ_LIMIT	(4u << 20)
#define OQ_PORTS_STOP	(OQ_LIMIT / 2)
#define OQ_PORTS_RESUME	(OQ_LIMIT / 4)

/* Why a frame for the guest was refused (each reason's log is limited apart). */
enum { REJ_PORT, REJ_QUEUE, REJ_QEMU, REJ_NR };

/* A frame or serial bytes from the simulator, waiting for guest time t. */
struct tx_frame {
	struct tx_frame *next;
	uint64_t t;		/* ns since the session started */
	uint32_t id, len;
	uint16_t port;		/* ours: network ports, then serial ports */
	uint16_t status;	/* of its DELIVERED */
	bool late;		/* t had passed when it came */
	uint8_t data[];
};

enum state {
	ST_FREEZING,		/* waiting for every vCPU to hold at attach */
	ST_WAIT_GRANT,		/* guest frozen, waiting for the simulator */
	ST_RUNNING,		/* quantum granted, waiting for every vCPU */
	ST_REPORTING,		/* report not fully written yet */
	ST_DONE,
};

static const char *const state_what[] = {
	[ST_FREEZING] = "freezing the guest",
	[ST_WAIT_GRANT] = "waiting for the simulator's next grant",
	[ST_RUNNING] = "running a quantum",
	[ST_REPORTING] = "waiting for the simulator to read its report",
};

struct session {
	struct vp_opts *o;
	struct vp_vm *vm;
	struct vp_qmp *qmp;
	int epfd, sigfd, tfd;
	enum state state;
	bool *held;
	int nr_held;
	bool controlling;	/* every vCPU was armed: the VM is ours */
	bool owns_vmm;		/* vmpace started it */
	bool peer_eof;		/* the simulator will send no more grants */
	int signo;
	sigset_t old_mask;	/* restored when the session ends */
	bool mask_saved;

	struct vp_decoder dec;
	struct vp_fr_decoder *fdec;	/* --proto framed */
	bool framed, hello_done;
	/* bytes for the simulator, oq[oq_off..oq_len) not sent yet */
	uint8_t *oq;
	size_t oq_len, oq_off, oq_cap;
	uint64_t oq_in, oq_out;	/* bytes queued, sent, since the start */
	bool reply_queued;	/* a report (or HELLO reply) is not sent yet */
	uint64_t reply_end;	/* oq_in at its end: it is out once oq_out is */

	/* framed: network ports (vmpace run --net), then serial ports (--serial) */
	int nr_ports;
	bool ports_watched;
	bool port_eof[MAX_PORTS];	/* QEMU shut this serial port down */
	int serial_before[VP_MAX_SERIAL];	/* unread bytes before this stop's */
	bool serial;		/* the SERIAL feature was granted */
	uint64_t last_stamp;	/* of the last frame or bytes from the guest */
	uint32_t from_seq, serial_seq;
	uint64_t rejected[REJ_NR];	/* frames for the guest refused, by reason */
	bool sync_full;		/* not reading the simulator: OQ_LIMIT unsent */
	uint64_t *port_last_t;	/* of the last frame queued for each port */
	struct tx_frame *txq;	/* frames for the guest, by time */
	unsigned int txq_n;
	size_t txq_bytes;
	uint64_t stop_ns;	/* kvmclock of the next stop (<= target_ns) */

	uint64_t unit_ns;
	uint64_t base_ns;	/* frozen guest kvmclock at attach */
	uint64_t last_tsc;	/* frozen guest TSC at the last report */
	uint64_t last_ns;	/* and its kvmclock */
	uint32_t mul;		/* the paced clock's scale */
	int8_t shift;
	uint64_t target_ns;	/* kvmclock at which the quantum ends */
	uint64_t deadline;	/* guest TSC at which it should */
	uint64_t reported;	/* units reported so far */
	uint64_t seq, grant;
	struct timespec t_grant, t_wait;
	unsigned int warnings;	/* stall warnings in this wait */
	FILE *trace;
	int exit_code;
};

static uint64_t ns_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000000ull + t.tv_nsec - t0->tv_nsec;
}

static void finish(struct session *s, int code)
{
	if (s->state == ST_DONE)
		return;
	s->state = ST_DONE;
	s->exit_code = code;
}

/* Room for @n more bytes at the end of the output queue; NULL if none. */
static uint8_t *oq_put(struct session *s, size_t n)
{
	uint8_t *p;

	if (s->oq_off == s->oq_len)
		s->oq_off = s->oq_len = 0;
	if (s->oq_len + n > s->oq_cap) {
		size_t cap = s->oq_cap ? s->oq_cap : 4096;

		if (s->oq_off) {
			memmove(s->oq, s->oq + s->oq_off, s->oq_len - s->oq_off);
			s->oq_len -= s->oq_off;
			s->oq_off = 0;
		}
		while (cap < s->oq_len + n)
			cap *= 2;
		if (cap > s->oq_cap) {
			p = realloc(s->oq, cap);
			if (!p)
				return NULL;
			s->oq = p;
			s->oq_cap = cap;
		}
	}
	p = s->oq + s->oq_len;
	s->oq_len += n;
	s->oq_in += n;
	return p;
}

/* A report or HELLO reply was queued last: the next grant is read once it is out. */
static void mark_reply(struct session *s)
{
	s->reply_queued = true;
	s->reply_end = s->oq_in;
}

static size_t oq_pending(const struct session *s)
{
	return s->oq_len - s->oq_off;
}

/* Queues a framed message; false if memory ran out. */
static bool queue_msg(struct session *s, uint16_t type, uint16_t flags, uint64_t t,
		      const void *prefix, uint32_t plen, const void *data, uint32_t dlen)
{
	uint8_t *p = oq_put(s, VP_FR_HDR + plen + dlen);

	if (!p)
		return false;
	vp_fr_encode(p, type, flags, t, prefix, plen);
	vp_put_be32(p + 4, plen + dlen);
	if (dlen)
		memcpy(p + VP_FR_HDR + plen, data, dlen);
	return true;
}

/* The guest time last reported, in ns since the session started. */
static uint64_t reported_ns(const struct session *s)
{
	return s->reported * s->unit_ns;
}

static void queue_error(struct session *s, uint16_t flags, int code, uint32_t ref,
			const char *text)
{
	uint8_t pl[8];
	size_t len = strlen(text);

	if (len > VP_FR_MAX_TEXT)
		len = VP_FR_MAX_TEXT;
	vp_put_be32(pl, code);
	vp_put_be32(pl + 4, ref);
	queue_msg(s, VP_FR_ERROR, flags, reported_ns(s), pl, 8, text, len);
}

/*
 * Sends what is queued without waiting (the session is ending); -1 with
 * errno if some of it stays unsent.
 */
static int oq_flush_once(struct session *s)
{
	ssize_t n;

	while (oq_pending(s)) {
		n = send(s->o->sync_fd, s->oq + s->oq_off, oq_pending(s),
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n <= 0) {
			if (!n)
				errno = EAGAIN;
			return -1;
		}
		s->oq_off += n;
		s->oq_out += n;
	}
	return 0;
}

/*
 * Framed protocol: why the session ends, as a fatal ERROR after what is
 * queued; one attempt to send it all, never waiting.
 */
static void tell_peer(struct session *s, int code, const char *text)
{
	if (!s->framed || !s->hello_done || s->o->sync_fd < 0)
		return;
	queue_error(s, VP_FR_ERROR_FATAL, code, 0, text);
	if (oq_flush_once(s))
		vp_info("could not tell the simulator why: %s", strerror(errno));
}

static void __attribute__((format(printf, 3, 4))) fail(struct session *s, int code,
						       const char *fmt, ...)
{
	char text[VP_FR_MAX_TEXT + 1];
	va_list ap;

	if (s->state == ST_DONE)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vmpace: %s\n", text);
	tell_peer(s, code, text);
	finish(s, code);
}

static int ep_set(struct session *s, int op, int fd, uint32_t events, int tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = (uint64_t)(int64_t)tag };

	return epoll_ctl(s->epfd, op, fd, &ev) ? -errno : 0;
}

/*
 * The timer ticks every second while vmpace waits: it checks that KVM still
 * paces every vCPU, and says why a wait takes longer than --stall-warn.
 */
static void set_state(struct session *s, enum state st)
{
	struct itimerspec it = { .it_interval.tv_sec = 1, .it_value.tv_sec = 1 };

	s->state = st;
	s->warnings = 0;
	clock_gettime(CLOCK_MONOTONIC, &s->t_wait);
	if (s->tfd >= 0)
		timerfd_settime(s->tfd, 0, &it, NULL);
}

/*
 * Past OQ_LIMIT bytes the simulator has not read, vmpace reads no more of
 * its messages (each refused FRAME_TO_GUEST queues an ERROR: a simulator
 * that sends and never reads must not grow the queue without bound).  It
 * reads on once the queue is below the limit; a simulator that shut down
 * its side is read to the end (what is left is in the socket's buffer).
 */
static bool sync_readable(const struct session *s)
{
	return s->state == ST_WAIT_GRANT && (oq_pending(s) < OQ_LIMIT || s->peer_eof);
}

/* What the simulator's socket is watched for in the current state. */
static void watch_sync(struct session *s)
{
	uint32_t ev = s->peer_eof ? 0 : EPOLLRDHUP;

	if (sync_readable(s))
		ev |= EPOLLIN;
	if (s->state == ST_WAIT_GRANT && !sync_readable(s) != s->sync_full) {
		s->sync_full = !s->sync_full;
		if (s->sync_full)
			vp_err("the simulator has not read %zu bytes: vmpace reads no more "
			       "of its messages until it does", oq_pending(s));
	}
	if (oq_pending(s))
		ev |= EPOLLOUT;
	if (ep_set(s, EPOLL_CTL_MOD, s->o->sync_fd, ev, TAG_SYNC))
		fail(s, VP_EXIT_ERROR, "epoll: %s", strerror(errno));
}

static int vcpu_state(struct session *s, int i, struct kvm_pace_state *st)
{
	int r = ioctl(s->vm->vcpu_fd[i], KVM_GET_PACE_STATE, st) ? -errno : 0;

	if (r)
		fail(s, r == -EIO ? VP_EXIT_VMM_DIED : VP_EXIT_ERROR,
		     "KVM_GET_PACE_STATE on vCPU %d: %s", s->vm->vcpu_id[i], strerror(-r));
	return r;
}

/* ----- network frames (framed protocol, vmpace run --net) ------------- */

static void send_report(struct session *s);

/*
 * The guest time at which a frame from the guest is received: the frozen
 * time if the VM is frozen, else the most advanced vCPU's kvmclock (KVM
 * reports a running vCPU's live guest time); never before the last report
 * or the last stamp.  In ns since the session started.
 *
 * Never past the quantum's stop while the VM runs, although a vCPU past its
 * deadline but not yet held is later (the overshoot): its live time is not
 * a bound of where the VM freezes on a host whose TSC is unstable (KVM
 * reads it from the VM's clock, the hold from the vCPU's own TSC), nor while
 * QEMU has stopped the VM in a quantum (its "cont" sets kvmclock back), and
 * a stamp past the quantum's report would break the protocol's order.
 */
static uint64_t guest_stamp(struct session *s)
{
	struct kvm_pace_state st;
	uint64_t t = s->last_ns;
	int i;

	if (s->state == ST_RUNNING) {
		for (i = 0; i < s->vm->nr_vcpus; i++)
			if (!ioctl(s->vm->vcpu_fd[i], KVM_GET_PACE_STATE, &st) &&
			    st.guest_ns > t)
				t = st.guest_ns;
		if (t > s->stop_ns)
			t = s->stop_ns;
	}
	t = t > s->base_ns ? t - s->base_ns : 0;
	if (t < reported_ns(s))
		t = reported_ns(s);
	if (t < s->last_stamp)
		t = s->last_stamp;
	s->last_stamp = t;
	return t;
}

/* Port @i is a serial port (else a network port). */
static bool is_serial(const struct session *s, int i)
{
	return i >= s->o->nr_net;
}

static int port_fd(const struct session *s, int i)
{
	return is_serial(s, i) ? s->o->serial_fd[i - s->o->nr_net] : s->o->net_fd[i];
}

/* The port's number in the protocol: network and serial ports count apart. */
static unsigned int wire_port(const struct session *s, int i)
{
	return is_serial(s, i) ? i - s->o->nr_net : i;
}

/* "network port 0 (n0)", "serial port 1 (s1)" */
static const char *port_name(const struct session *s, int i)
{
	static char buf[100];

	snprintf(buf, sizeof(buf), "%s port %u (%s)", is_serial(s, i) ? "serial" : "network",
		 wire_port(s, i), is_serial(s, i) ? s->o->serial_id[i - s->o->nr_net] :
		 s->o->net_id[i]);
	return buf;
}

static void watch_ports(struct session *s, bool on)
{
	int i;

	if (s->ports_watched == on)
		return;
	s->ports_watched = on;
	for (i = 0; i < s->nr_ports; i++)
		if (!s->port_eof[i] &&
		    ep_set(s, EPOLL_CTL_MOD, port_fd(s, i), on ? EPOLLIN : 0, TAG_NET0 - i))
			fail(s, VP_EXIT_ERROR, "epoll: %s", strerror(errno));
}

/* QEMU is read again once the simulator has taken most of what waits. */
static void resume_ports(struct session *s)
{
	if (s->hello_done && s->state != ST_DONE && oq_pending(s) < OQ_PORTS_RESUME)
		watch_ports(s, true);
}

/*
 * Frames the guest sent on port @i, or the bytes it wrote to a serial port
 * (as much as QEMU has written, at most VP_FR_MAX_SERIAL per message): each
 * goes to the simulator stamped with the guest time it was received at.
 * Past OQ_PORTS_STOP bytes that the simulator has not read, vmpace stops
 * reading QEMU (whose queue then fills, and the guest's NIC or UART waits):
 * nothing is dropped.
 */
static void on_port(struct session *s, int i)
{
	static uint8_t buf[VP_FR_MAX_FRAME + 1];
	uint8_t pl[VP_FR_FRAME_HDR] = { 0 };
	bool serial = is_serial(s, i);
	char text[160];
	ssize_t n;

	while (s->state != ST_DONE && !s->port_eof[i]) {
		if (oq_pending(s) >= OQ_PORTS_STOP) {
			watch_ports(s, false);
			break;
		}
		if (serial)
			n = recv(port_fd(s, i), buf, VP_FR_MAX_SERIAL, MSG_DONTWAIT);
		else
			n = recv(port_fd(s, i), buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			fail(s, VP_EXIT_VMM_DIED, "%s: %s", port_name(s, i), strerror(errno));
			return;
		}
		if (n == 0 && serial) {
			/*
			 * QEMU shut its end down: nothing more comes.  (A plain
			 * close is not seen: vmpace holds a copy of QEMU's end;
			 * QEMU's exit is seen by its pidfd.)
			 */
			vp_info("%s: QEMU shut it down", port_name(s, i));
			ep_set(s, EPOLL_CTL_DEL, port_fd(s, i), 0, TAG_NET0 - i);
			s->port_eof[i] = true;
			break;
		}
		if (n == 0)
			continue;
		if (serial) {
			vp_put_be32(pl, ++s->serial_seq);
			vp_put_be16(pl + 4, wire_port(s, i));
			if (!queue_msg(s, VP_FR_SERIAL_FROM_GUEST, 0, guest_stamp(s), pl,
				       sizeof(pl), buf, n)) {
				fail(s, VP_EXIT_ERROR, "out of memory");
				return;
			}
			continue;
		}
		if (n > VP_FR_MAX_FRAME) {
			snprintf(text, sizeof(text), "network port %d: the guest sent a frame "
				 "of %zd bytes, more than the protocol's %d: not forwarded",
				 i, n, VP_FR_MAX_FRAME);
			vp_err("%s", text);
			queue_error(s, 0, 0, 0, text);
			continue;
		}
		vp_put_be32(pl, ++s->from_seq);
		vp_put_be16(pl + 4, i);
		if (!queue_msg(s, VP_FR_FRAME_FROM_GUEST, 0, guest_stamp(s), pl, sizeof(pl),
			       buf, n)) {
			fail(s, VP_EXIT_ERROR, "out of memory");
			return;
		}
	}
	if (s->state != ST_DONE && oq_pending(s) && s->state != ST_REPORTING)
		send_report(s);
}

/* Before a report: what QEMU has relayed so far goes first. */
static void drain_ports(struct session *s)
{
	int i;

	for (i = 0; s->ports_watched && i < s->nr_ports && s->state != ST_DONE; i++)
		if (!s->port_eof[i])
			on_port(s, i);
}

/* Interrupts accepted by the VM's vCPUs so far. */
static uint64_t irq_sum(struct session *s)
{
	struct kvm_pace_state st;
	uint64_t sum = 0;
	int i;

	for (i = 0; i < s->vm->nr_vcpus; i++)
		if (!ioctl(s->vm->vcpu_fd[i], KVM_GET_PACE_STATE, &st))
			sum += st.irqs;
	return sum;
}

static void reject_frame(struct session *s, int why, uint32_t id, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * A frame for the guest that vmpace does not take: a non-fatal ERROR for
 * each; the log shows the first REJECT_LOG - 1 refusals for each reason,
 * then one in REJECT_LOG with the count (a simulator that sends nothing but
 * such frames must not flood it).
 */
#define REJECT_LOG	100
static void reject_frame(struct session *s, int why, uint32_t id, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (++s->rejected[why] < REJECT_LOG)
		vp_err("%s", text);
	else if (!(s->rejected[why] % REJECT_LOG))
		vp_err("%s (%llu refused so far for this reason: one in %u is logged)", text,
		       (unsigned long long)s->rejected[why], REJECT_LOG);
	queue_error(s, 0, 0, id, text);
}

static int64_t ms_since(const struct timespec *t0)
{
	return (int64_t)(ns_since(t0) / 1000000);
}

/*
 * What QEMU has not read of port @port yet: > 0 if it has not.  A network
 * port's socket charges its datagrams to vmpace's end until QEMU has read
 * them (SIOCOUTQ: their memory, not their bytes); a serial port's unread
 * bytes are counted on QEMU's end, of which vmpace keeps a copy (SIOCINQ:
 * the bytes).
 */
static int port_unread(struct session *s, int port)
{
	int n = 1;

	if (is_serial(s, port))
		return ioctl(s->o->serial_qemu_fd[port - s->o->nr_net], SIOCINQ, &n) ? 1 : n;
	return ioctl(s->o->net_fd[port], SIOCOUTQ, &n) ? 1 : n;
}

/* What a queued message is, for messages: "FRAME_TO_GUEST 7" */
static const char *tx_name(struct session *s, const struct tx_frame *f)
{
	static char buf[48];

	snprintf(buf, sizeof(buf), "%s %u", is_serial(s, f->port) ? "SERIAL_TO_GUEST" :
		 "FRAME_TO_GUEST", f->id);
	return buf;
}

/*
 * Serial bytes go to QEMU whole, while the VM is frozen: QEMU's device
 * takes what it can (a UART as much as its receive FIFO holds), the rest
 * stays in QEMU's socket and follows as the guest reads.  A port whose
 * unread bytes would pass SERIAL_UNREAD_MAX (the guest does not read it)
 * refuses them; below, the socket's buffer takes them at once.  Sets
 * f->status; false if refused, or if QEMU took only part of them within
 * --io-timeout (the session then ends: the rest could not follow in order).
 */
static bool hand_over_serial(struct session *s, struct tx_frame *f)
{
	int fd = port_fd(s, f->port), unread = port_unread(s, f->port), r;
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	struct timespec t0;
	uint32_t off = 0;
	ssize_t n;

	if ((unsigned int)unread + f->len > SERIAL_UNREAD_MAX) {
		reject_frame(s, REJ_QEMU, f->id, "%s: QEMU has not taken %d bytes of %s yet "
			     "(the guest does not read it); at most %u may wait", tx_name(s, f),
			     unread, port_name(s, f->port), SERIAL_UNREAD_MAX);
		return false;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (off < f->len) {
		n = send(fd, f->data + off, f->len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			off += n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		/*
		 * The socket's memory, not its bytes, is full (many small
		 * messages unread): refused whole, as a frame would be.
		 */
		if (n < 0 && errno == EAGAIN && !off) {
			reject_frame(s, REJ_QEMU, f->id, "%s: QEMU's socket of %s is full (%d "
				     "bytes in many messages unread: the guest does not read it)",
				     tx_name(s, f), port_name(s, f->port), unread);
			return false;
		}
		if (n < 0 && errno != EAGAIN) {
			fail(s, VP_EXIT_VMM_DIED, "%s: %s: %s", tx_name(s, f),
			     port_name(s, f->port), strerror(errno));
			return false;
		}
		r = (int)(s->o->io_timeout_ms - ms_since(&t0));
		if (r <= 0 || (poll(&p, 1, r) < 0 && errno != EINTR)) {
			fail(s, VP_EXIT_ERROR, "%s: QEMU took %u of its %u bytes on %s "
			     "within --io-timeout (%d ms); the rest cannot follow in order",
			     tx_name(s, f), off, f->len, port_name(s, f->port),
			     s->o->io_timeout_ms);
			return false;
		}
	}
	/* behind bytes of an earlier stop that QEMU has not taken: no wait */
	f->status = s->serial_before[f->port - s->o->nr_net] > 0 ? VP_FR_DELIVERED_DEFERRED :
		    f->late ? VP_FR_DELIVERED_LATE : VP_FR_DELIVERED_OK;
	return true;
}

/*
 * Hands frame @f to QEMU while the VM is frozen and waits (at most
 * --io-timeout) until QEMU has read it: AF_UNIX charges a datagram to the
 * sender until the receiver has read it (SIOCOUTQ).  A port whose earlier
 * frames QEMU has not read yet (its NIC does not receive: QEMU stopped
 * reading) is not waited for again.  Sets f->status; false if the frame
 * could not even be sent (refused).
 */
static bool hand_over(struct session *s, struct tx_frame *f)
{
	int fd = s->o->net_fd[f->port], r, e;
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	bool stuck;
	struct timespec t0;
	ssize_t n;

	if (is_serial(s, f->port))
		return hand_over_serial(s, f);
	stuck = port_unread(s, f->port) > 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		n = send(fd, f->data, f->len, MSG_DONTWAIT | MSG_NOSIGNAL);
		e = errno;
		if (n >= 0 || (e != EAGAIN && e != EINTR) || stuck)
			break;
		r = (int)(s->o->io_timeout_ms - ms_since(&t0));
		if (r <= 0 || (poll(&p, 1, r) < 0 && errno != EINTR))
			break;
	}
	if (n < 0) {
		reject_frame(s, REJ_QEMU, f->id, "FRAME_TO_GUEST %u: QEMU does not read "
			     "network port %u (%s): %s", f->id, f->port, s->o->net_id[f->port],
			     e == EAGAIN ? "its queue is full (the guest's NIC does not "
			     "receive)" : strerror(e));
		return false;
	}
	f->status = f->late ? VP_FR_DELIVERED_LATE : VP_FR_DELIVERED_OK;
	if (stuck) {
		f->status = VP_FR_DELIVERED_DEFERRED;
		return true;
	}
	while (port_unread(s, f->port) > 0) {
		struct timespec d = { 0, 20000 };

		if (ms_since(&t0) >= s->o->io_timeout_ms) {
			f->status = VP_FR_DELIVERED_DEFERRED;
			vp_info("FRAME_TO_GUEST %u: QEMU has not read it within %d ms (the "
				"guest's NIC has no receive buffers?)", f->id,
				s->o->io_timeout_ms);
			break;
		}
		nanosleep(&d, NULL);
	}
	return true;
}

/*
 * A monitor command that QEMU answered: its main loop has run a pass since
 * (the callbacks that read what vmpace handed over returned first).
 * 0 or -errno.
 */
static int qemu_pass(struct session *s)
{
	return vp_qmp_command(s->qmp, "{\"execute\":\"query-status\"}\n", NULL, 0,
			      s->o->io_timeout_ms);
}

/*
 * Serial bytes handed over at this stop (@done): QEMU reads a serial port
 * as far as its device has room, a little in each pass of its main loop.
 * Each monitor command it answers is a pass later; once one leaves a port's
 * unread bytes where they were (or at 0), the device has taken what it can
 * while the guest is frozen.  At most --io-timeout from @t0.  The messages
 * whose bytes are not all taken then are DEFERRED: the rest follows as the
 * guest reads, at guest times vmpace does not know.
 */
static void settle_serial(struct session *s, struct tx_frame *done, const struct timespec *t0)
{
	int64_t left[VP_MAX_SERIAL], cur, unread = 0, sent[VP_MAX_SERIAL] = { 0 };
	struct tx_frame *f;
	bool moved;
	int j, r;

	for (j = 0; j < s->o->nr_serial; j++)
		unread += left[j] = port_unread(s, s->o->nr_net + j);
	while (unread && ms_since(t0) < s->o->io_timeout_ms) {
		r = qemu_pass(s);
		if (r) {
			vp_info("QEMU's monitor did not answer (%s)", strerror(-r));
			break;
		}
		moved = false;
		unread = 0;
		for (j = 0; j < s->o->nr_serial; j++) {
			cur = port_unread(s, s->o->nr_net + j);
			moved |= cur != left[j];
			unread += left[j] = cur;
		}
		if (!moved)
			break;
	}
	/* a port's unread bytes are its last ones: of the last messages sent */
	for (f = done; f; f = f->next)
		if (is_serial(s, f->port))
			sent[f->port - s->o->nr_net] += f->len;
	for (f = done; f; f = f->next) {
		if (!is_serial(s, f->port))
			continue;
		j = f->port - s->o->nr_net;
		/* bytes of this port handed over after this message */
		sent[j] -= f->len;
		if (sent[j] < left[j] && f->status != VP_FR_DELIVERED_DEFERRED) {
			f->status = VP_FR_DELIVERED_DEFERRED;
			vp_info("%s: QEMU took only part of it (%lld bytes of %s wait)",
				tx_name(s, f), (long long)left[j], port_name(s, f->port));
		}
	}
}

/*
 * The VM is frozen at s->last_ns: every frame and serial message due by
 * then goes to QEMU, in order.  Then one QMP command: QEMU's main loop
 * answers it after the callbacks that read the frames returned, and they
 * passed each frame to the NIC, which raised its interrupt (KVM_SIGNAL_MSI,
 * synchronous); serial bytes need a few (settle_serial()).  Whether a vCPU
 * accepted an interrupt meanwhile is KVM_GET_PACE_STATE's irqs.  Each gets
 * its DELIVERED, at the frozen time.
 */
static void deliver_due(struct session *s)
{
	uint64_t now = s->last_ns - s->base_ns, irqs0;
	struct tx_frame *f, *done = NULL, **tail = &done;
	uint8_t pl[VP_FR_DELIVERED_LEN];
	uint16_t flags = 0;
	bool taken = false, serial = false;
	struct timespec t0;
	int r;

	if (!s->txq || s->txq->t > now)
		return;
	irqs0 = irq_sum(s);
	for (r = 0; r < s->o->nr_serial; r++)
		s->serial_before[r] = port_unread(s, s->o->nr_net + r);
	while ((f = s->txq) && f->t <= now && s->state != ST_DONE) {
		s->txq = f->next;
		s->txq_n--;
		s->txq_bytes -= f->len;
		if (!hand_over(s, f)) {
			free(f);
			continue;
		}
		taken |= f->status != VP_FR_DELIVERED_DEFERRED;
		serial |= is_serial(s, f->port);
		f->next = NULL;
		*tail = f;
		tail = &f->next;
	}
	if (taken && s->qmp) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = qemu_pass(s);
		if (r) {
			vp_info("QEMU's monitor did not answer (%s): the frames handed over "
				"are DEFERRED", strerror(-r));
			for (f = done; f; f = f->next)
				f->status = VP_FR_DELIVERED_DEFERRED;
		} else if (serial) {
			settle_serial(s, done, &t0);
		}
	}
	if (taken && irq_sum(s) != irqs0)
		flags = VP_FR_DELIVERED_IRQ;
	while ((f = done)) {
		done = f->next;
		vp_put_be32(pl, f->id);
		vp_put_be16(pl + 4, f->status);
		vp_put_be16(pl + 6, f->status == VP_FR_DELIVERED_DEFERRED ? 0 : flags);
		if (s->state != ST_DONE &&
		    !queue_msg(s, VP_FR_DELIVERED, 0, now, pl, sizeof(pl), NULL, 0))
			fail(s, VP_EXIT_ERROR, "out of memory");
		free(f);
	}
}

/*
 * FRAME_TO_GUEST, SERIAL_TO_GUEST: queued by time, after the messages for
 * the same time.
 */
static void queue_tx(struct session *s, const struct vp_fr_msg *m)
{
	uint32_t id = vp_get_be32(m->payload), len = m->len - VP_FR_FRAME_HDR;
	uint16_t wport = vp_get_be16(m->payload + 4), port;
	bool serial = m->type == VP_FR_SERIAL_TO_GUEST;
	const char *what = vp_fr_type_name(m->type);
	struct tx_frame *f, **pp;

	if (serial && !s->serial) {
		fail(s, VP_EXIT_PROTOCOL, "SERIAL_TO_GUEST %u without the SERIAL feature (the "
		     "simulator's HELLO did not ask for it)", id);
		return;
	}
	if (vp_get_be16(m->payload + 6)) {
		fail(s, VP_EXIT_PROTOCOL, "%s %u: reserved field not 0", what, id);
		return;
	}
	if (wport >= (serial ? s->o->nr_serial : s->o->nr_net)) {
		reject_frame(s, REJ_PORT, id, "%s %u: no %s port %u (vmpace has %d: %s)", what,
			     id, serial ? "serial" : "network", wport,
			     serial ? s->o->nr_serial : s->o->nr_net, serial ? "--serial" : "--net");
		return;
	}
	port = serial ? s->o->nr_net + wport : wport;
	if (m->t < s->port_last_t[port]) {
		fail(s, VP_EXIT_PROTOCOL, "%s %u for %s at %llu ns, before the message sent "
		     "before it (%llu ns): a port delivers in order", what, id,
		     port_name(s, port), (unsigned long long)m->t,
		     (unsigned long long)s->port_last_t[port]);
		return;
	}
	if (s->txq_n >= TXQ_MAX_FRAMES || s->txq_bytes + len > TXQ_MAX_BYTES) {
		reject_frame(s, REJ_QUEUE, id, "%s %u: %u frames (%zu bytes) "
			     "wait for the guest already, the most vmpace queues is %u "
			     "(%u bytes)", what, id,
			     s->txq_n, s->txq_bytes, TXQ_MAX_FRAMES, TXQ_MAX_BYTES);
		return;
	}
	f = malloc(sizeof(*f) + len);
	if (!f) {
		fail(s, VP_EXIT_ERROR, "out of memory");
		return;
	}
	f->t = m->t;
	f->id = id;
	f->len = len;
	f->port = port;
	f->late = m->t < s->last_ns - s->base_ns;
	memcpy(f->data, m->payload + VP_FR_FRAME_HDR, len);
	for (pp = &s->txq; *pp && (*pp)->t <= f->t; pp = &(*pp)->next)
		;
	f->next = *pp;
	*pp = f;
	s->txq_n++;
	s->txq_bytes += len;
	s->port_last_t[port] = m->t;
}

/* Arm vCPU @i at s->deadline and watch for its hold. */
static void arm(struct session *s, int i)
{
	int r = vp_set_deadline(s->vm, i, s->deadline);

	if (r == -EBUSY)
		fail(s, VP_EXIT_BUSY, "vCPU %d of process %d is paced by another controller",
		     s->vm->vcpu_id[i], (int)s->vm->pid);
	else if (r == -EOPNOTSUPP)
		fail(s, VP_EXIT_UNSUPPORTED, "vCPU %d: KVM cannot pace this guest: it uses "
		     "a timer that runs on host time (Hyper-V synthetic timers, Xen timers "
		     "or a nested VMX guest)", s->vm->vcpu_id[i]);
	else if (r)
		fail(s, r == -EIO ? VP_EXIT_VMM_DIED : VP_EXIT_ERROR,
		     "KVM_SET_PACE_DEADLINE on vCPU %d: %s", s->vm->vcpu_id[i], strerror(-r));
	else if (ep_set(s, EPOLL_CTL_MOD, s->vm->vcpu_fd[i], EPOLLIN | EPOLLONESHOT, i))
		fail(s, VP_EXIT_ERROR, "epoll: %s", strerror(errno));
	s->held[i] = false;
}

/* Arm every vCPU at @deadline and wait for all of them to hold. */
static void start_quantum(struct session *s, uint64_t deadline, enum state st)
{
	int i;

	s->deadline = deadline;
	s->nr_held = 0;
	set_state(s, st);
	watch_sync(s);
	for (i = 0; i < s->vm->nr_vcpus && s->state != ST_DONE; i++)
		arm(s, i);
	if (s->state != ST_DONE)
		s->controlling = true;
}

/*
 * The VM is frozen at s->last_tsc/last_ns: run it to the next stop, the end
 * of the quantum or, if earlier, the time of the next frame for the guest.
 */
static void run_to_next_stop(struct session *s)
{
	uint64_t stop = s->target_ns, ticks, ns;

	if (s->txq && s->txq->t < s->target_ns - s->base_ns)
		stop = s->base_ns + s->txq->t;
	s->stop_ns = stop;
	/* 2 ns cover the rounding of kvmclock's scale at another base */
	ns = stop > s->last_ns ? stop - s->last_ns : 0;
	if (vp_pvclock_ticks_ceil(ns + 2, s->mul, s->shift, &ticks) ||
	    ticks > UINT64_MAX - s->last_tsc) {
		fail(s, VP_EXIT_PROTOCOL, "grant %llu is out of range", (unsigned long long)s->grant);
		return;
	}
	start_quantum(s, s->last_tsc + ticks, ST_RUNNING);
}

/* The VM has vCPUs vmpace does not pace yet (hot-added): pace them too. */
static void adopt_new_vcpus(struct session *s, uint32_t kvm_vcpus)
{
	int old = s->vm->nr_vcpus, n, i;
	bool *held;

	n = vp_attach_new_vcpus(s->vm);
	if (n <= 0) {
		fail(s, VP_EXIT_ERROR, "KVM reports %u vCPUs in the VM but vmpace finds %d "
		     "(%s): it cannot freeze the guest", kvm_vcpus, old,
		     n < 0 ? strerror(-n) : "no new vCPU fd in the VMM");
		return;
	}
	held = realloc(s->held, s->vm->nr_vcpus * sizeof(bool));
	if (!held) {
		fail(s, VP_EXIT_ERROR, "out of memory");
		return;
	}
	s->held = held;
	/* the arrays are sorted by vCPU id: start over with all of them */
	for (i = 0; i < s->vm->nr_vcpus; i++) {
		ep_set(s, EPOLL_CTL_DEL, s->vm->vcpu_fd[i], 0, i);
		if (ep_set(s, EPOLL_CTL_ADD, s->vm->vcpu_fd[i], 0, i)) {
			fail(s, VP_EXIT_ERROR, "epoll: %s", strerror(errno));
			return;
		}
	}
	vp_err("%d vCPU(s) appeared in the VM: pacing %d vCPUs", s->vm->nr_vcpus - old,
	       s->vm->nr_vcpus);
	s->nr_held = 0;
	for (i = 0; i < s->vm->nr_vcpus && s->state != ST_DONE; i++)
		arm(s, i);
}

static void send_report(struct session *s);

static void report(struct session *s, uint64_t frozen, uint64_t frozen_ns)
{
	uint64_t total = (frozen_ns - s->base_ns) / s->unit_ns, value;
	uint8_t buf[8], *p = NULL;
	int r;

	value = total - s->reported;
	if (s->framed)
		r = queue_msg(s, VP_FR_REPORT, 0, frozen_ns - s->base_ns, NULL, 0, NULL, 0) ?
			0 : -ENOMEM;
	else
		r = vp_encode(s->o->proto, value, buf);
	if (r == -ENOMEM) {
		fail(s, VP_EXIT_ERROR, "out of memory");
		return;
	}
	if (r < 0) {
		fail(s, VP_EXIT_PROTOCOL, "quantum %llu: elapsed time %llu does not fit the "
		     "protocol", (unsigned long long)s->seq, (unsigned long long)value);
		return;
	}
	if (s->trace) {
		uint64_t ov = frozen > s->deadline ? frozen - s->deadline : 0;

		fprintf(s->trace, "%llu,%llu,%llu,%llu,%llu,%llu\n",
			(unsigned long long)s->seq, (unsigned long long)s->grant,
			(unsigned long long)value, (unsigned long long)ov,
			(unsigned long long)ns_since(&s->t_grant),
			(unsigned long long)vp_pvclock_ns(ov, s->mul, s->shift));
	}
	if (r > 0 && !(p = oq_put(s, r))) {
		fail(s, VP_EXIT_ERROR, "out of memory");
		return;
	}
	if (r > 0)
		memcpy(p, buf, r);
	s->reported = total;
	s->last_tsc = frozen;
	s->last_ns = frozen_ns;
	mark_reply(s);
	send_report(s);
}

/*
 * Every vCPU is held.  KVM must say the VM is frozen too: with a vCPU that
 * vmpace does not pace (hot-added), its guest time would still run.  The
 * VM's guest time is that of the vCPU held last, the largest.
 */
static void all_held(struct session *s)
{
	uint64_t frozen = 0, frozen_ns = 0, ticks;
	struct kvm_pace_state st;
	int i;

	for (i = 0; i < s->vm->nr_vcpus; i++) {
		if (vcpu_state(s, i, &st))
			return;
		if (!(st.state & KVM_PACE_STATE_FROZEN)) {
			if (st.nr_vcpus > (uint32_t)s->vm->nr_vcpus)
				adopt_new_vcpus(s, st.nr_vcpus);
			else
				fail(s, VP_EXIT_ERROR, "every vCPU is held but KVM says the VM "
				     "is not frozen");
			return;
		}
		if (!st.tsc_to_ns_mul) {
			fail(s, VP_EXIT_ERROR, "vCPU %d: KVM reports no paced clock",
			     s->vm->vcpu_id[i]);
			return;
		}
		if (st.guest_tsc >= frozen) {
			frozen = st.guest_tsc;
			frozen_ns = st.guest_ns;
			s->mul = st.tsc_to_ns_mul;
			s->shift = st.tsc_shift;
		}
	}

	if (s->state == ST_FREEZING) {
		s->last_tsc = frozen;
		s->base_ns = s->last_ns = frozen_ns;
		vp_info("guest frozen at guest TSC %llu, kvmclock %llu ns",
			(unsigned long long)frozen, (unsigned long long)frozen_ns);
		set_state(s, ST_WAIT_GRANT);
		watch_sync(s);
		return;
	}
	if (frozen_ns < s->stop_ns) {
		/* kvmclock was set back (QEMU's stop/cont): the quantum goes on */
		if (vp_pvclock_ticks_ceil(s->stop_ns - frozen_ns + 2, s->mul, s->shift,
					  &ticks) || ticks > UINT64_MAX - frozen) {
			fail(s, VP_EXIT_ERROR, "cannot reach kvmclock %llu ns from guest TSC %llu",
			     (unsigned long long)s->stop_ns, (unsigned long long)frozen);
			return;
		}
		vp_info("quantum %llu: kvmclock at %llu ns, %llu ns short of its stop: going on",
			(unsigned long long)s->seq, (unsigned long long)frozen_ns,
			(unsigned long long)(s->stop_ns - frozen_ns));
		start_quantum(s, frozen + ticks, ST_RUNNING);
		return;
	}
	/* a stop: frames due by now go to the guest, while it is frozen */
	s->last_tsc = frozen;
	s->last_ns = frozen_ns;
	deliver_due(s);
	if (s->state == ST_DONE)
		return;
	if (frozen_ns < s->target_ns) {
		run_to_next_stop(s);
		return;
	}
	drain_ports(s);
	if (s->state != ST_DONE)
		report(s, frozen, frozen_ns);
}

/*
 * Sends what is queued for the simulator.  Once a report (or the reply to a
 * HELLO) is out, vmpace waits for the next grant; until then it reads
 * nothing from the simulator.
 */
static void send_report(struct session *s)
{
	ssize_t n;

	while (oq_pending(s)) {
		n = send(s->o->sync_fd, s->oq + s->oq_off, oq_pending(s),
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = write(s->o->sync_fd, s->oq + s->oq_off, oq_pending(s));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (s->reply_queued && s->state != ST_REPORTING) {
				vp_info("quantum %llu: the simulator is not reading its "
					"reports: waiting to send", (unsigned long long)s->seq);
				set_state(s, ST_REPORTING);
			}
			watch_sync(s);
			return;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			vp_info("the simulator closed the connection before reading its report");
			finish(s, VP_EXIT_OK);
			return;
		}
		if (n < 0) {
			fail(s, VP_EXIT_PEER_LOST, "lost the simulator: %s", strerror(errno));
			return;
		}
		s->oq_off += n;
		s->oq_out += n;
		/*
		 * The reply is out: read the simulator again, also while frames
		 * queued after it wait to be sent (it may be sending frames
		 * while we send ours).
		 */
		if (s->reply_queued && s->oq_out >= s->reply_end) {
			/* after a half-close, grants sent before it still run */
			s->reply_queued = false;
			set_state(s, ST_WAIT_GRANT);
		}
	}
	if (s->reply_queued && s->oq_out >= s->reply_end) {
		s->reply_queued = false;
		set_state(s, ST_WAIT_GRANT);
	}
	watch_sync(s);
	resume_ports(s);
}

static void on_grant(struct session *s, uint64_t grant)
{
	if (!grant && s->o->zero_grant == VP_ZERO_END && !s->framed) {
		vp_info("zero grant: end of session");
		finish(s, VP_EXIT_OK);
		return;
	}
	s->seq++;
	s->grant = grant;
	clock_gettime(CLOCK_MONOTONIC, &s->t_grant);
	if (!grant) {
		/* a step of no time: the guest does not run, 0 elapsed */
		s->deadline = s->last_tsc;
		deliver_due(s);
		drain_ports(s);
		if (s->state != ST_DONE)
			report(s, s->last_tsc, s->last_ns);
		return;
	}
	/*
	 * The quantum ends when kvmclock has advanced by the grant past the
	 * units reported so far; 2 ns cover the rounding of its scale at
	 * another base.
	 */
	if (grant > (UINT64_MAX - s->base_ns) / s->unit_ns - s->reported) {
		fail(s, VP_EXIT_PROTOCOL, "grant %llu is out of range", (unsigned long long)grant);
		return;
	}
	s->target_ns = s->base_ns + (s->reported + grant) * s->unit_ns;
	/* frames due already (their time is now or has passed) go first */
	deliver_due(s);
	if (s->state != ST_DONE)
		run_to_next_stop(s);
}

/* Why the connection failed, from its pending error. */
static void peer_lost(struct session *s)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(s->o->sync_fd, SOL_SOCKET, SO_ERROR, &err, &len) || !err)
		err = ECONNRESET;
	if (err == ECONNRESET || err == EPIPE) {
		vp_info("the simulator closed the connection (%s)", strerror(err));
		finish(s, VP_EXIT_OK);
		return;
	}
	fail(s, VP_EXIT_PEER_LOST, "lost the simulator: %s", strerror(err));
}

/* A framed message from the simulator. */
static void on_message(struct session *s, const struct vp_fr_msg *m)
{
	uint32_t vmin, vmax, feat;
	uint8_t pl[VP_FR_HELLO_LEN] = { 0 };

	if (!s->hello_done && m->type != VP_FR_HELLO) {
		fail(s, VP_EXIT_PROTOCOL, "the simulator sent a %s before its HELLO",
		     vp_fr_type_name(m->type));
		return;
	}
	switch (m->type) {
	case VP_FR_HELLO:
		if (s->hello_done) {
			fail(s, VP_EXIT_PROTOCOL, "the simulator sent a second HELLO");
			return;
		}
		vmin = vp_get_be32(m->payload);
		vmax = vp_get_be32(m->payload + 4);
		if (vmin > VP_FR_VERSION || vmax < VP_FR_VERSION) {
			fail(s, VP_EXIT_PROTOCOL, "the simulator speaks versions %u to %u of the "
			     "framed protocol, vmpace %u", vmin, vmax, VP_FR_VERSION);
			return;
		}
		/* the features asked for that vmpace knows are granted */
		feat = vp_get_be32(m->payload + 8) & VP_FR_FEATURES;
		s->serial = feat & VP_FR_FEAT_SERIAL;
		if (s->o->nr_serial && !s->serial) {
			/* an ERROR instead of the reply: the simulator learns why */
			s->hello_done = true;
			fail(s, VP_EXIT_PROTOCOL, "vmpace has serial ports (--serial) but the "
			     "simulator's HELLO does not ask for the SERIAL feature: it would "
			     "not understand the guest's bytes");
			return;
		}
		vp_put_be32(pl, VP_FR_VERSION);
		vp_put_be32(pl + 4, feat);
		vp_put_be16(pl + 8, s->o->nr_net);
		vp_put_be16(pl + 10, s->serial ? s->o->nr_serial : 0);
		s->hello_done = true;
		if (!queue_msg(s, VP_FR_HELLO_REPLY, 0, 0, pl, sizeof(pl), NULL, 0)) {
			fail(s, VP_EXIT_ERROR, "out of memory");
			return;
		}
		mark_reply(s);
		vp_info("framed protocol version %u, features 0x%x, %d network and %d serial "
			"port(s)", VP_FR_VERSION, feat, s->o->nr_net, s->o->nr_serial);
		send_report(s);
		return;
	case VP_FR_GRANT:
		if (m->t < s->reported) {
			fail(s, VP_EXIT_PROTOCOL, "GRANT until guest time %llu ns, before the "
			     "time already reported (%llu ns)", (unsigned long long)m->t,
			     (unsigned long long)s->reported);
			return;
		}
		on_grant(s, m->t - s->reported);
		return;
	case VP_FR_BYE:
		vp_info("BYE: end of session");
		finish(s, VP_EXIT_OK);
		return;
	case VP_FR_FRAME_TO_GUEST:
	case VP_FR_SERIAL_TO_GUEST:
		queue_tx(s, m);
		if (s->state != ST_DONE && oq_pending(s))
			send_report(s);
		return;
	}
}

static void on_sync_readable(struct session *s)
{
	static uint8_t buf[VP_FR_HDR + VP_FR_MAX_PAYLOAD];
	struct vp_fr_msg m;
	size_t used, want;
	bool complete;
	uint64_t grant;
	ssize_t n;

	want = s->framed ? vp_fr_want(s->fdec) : vp_msg_size(s->o->proto) - s->dec.len;
	n = read(s->o->sync_fd, buf, want < sizeof(buf) ? want : sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		peer_lost(s);
		return;
	}
	if (n == 0) {
		if (s->framed ? vp_fr_partial(s->fdec) : vp_decoder_partial(&s->dec)) {
			fail(s, VP_EXIT_PROTOCOL, "the simulator closed the connection in the "
			     "middle of a %s", s->framed ? "message" : "grant");
		} else {
			vp_info("the simulator closed the connection");
			finish(s, VP_EXIT_OK);
		}
		return;
	}
	if (s->framed) {
		if (vp_fr_decode(s->fdec, buf, n, &complete, &m) < 0)
			fail(s, VP_EXIT_PROTOCOL, "the simulator broke the framed protocol: %s%s",
			     s->fdec->err, s->hello_done ? "" : " (a seed-protocol simulator? "
			     "then run vmpace without --proto framed)");
		else if (complete)
			on_message(s, &m);
		return;
	}
	used = vp_decode(&s->dec, buf, n, &complete, &grant);
	if (complete && used == (size_t)n)
		on_grant(s, grant);
}

static void on_sync(struct session *s, uint32_t events)
{
	if (events & EPOLLERR) {
		peer_lost(s);
		return;
	}
	if ((events & EPOLLOUT) && oq_pending(s)) {
		send_report(s);
		if (s->state == ST_DONE)
			return;
	}
	if (s->state == ST_WAIT_GRANT && !sync_readable(s) &&
	    !(events & (EPOLLHUP | EPOLLRDHUP))) {
		watch_sync(s);	/* read once the simulator has read its queue */
	} else if (s->state == ST_WAIT_GRANT && (events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))) {
		on_sync_readable(s);
	} else if (events & EPOLLHUP) {
		/* both directions closed: nobody will read a report */
		vp_info("the simulator closed the connection");
		finish(s, VP_EXIT_OK);
	} else if (events & EPOLLRDHUP && !s->peer_eof) {
		/*
		 * A half-close: the quantum in flight and the grants sent before
		 * it run and are reported, then reading finds the end.
		 */
		int pending = 0;

		vp_info("the simulator shut down its side of the connection");
		s->peer_eof = true;
		if (s->state == ST_FREEZING && !s->dec.len &&
		    !(s->fdec && vp_fr_partial(s->fdec)) &&
		    (ioctl(s->o->sync_fd, FIONREAD, &pending) || !pending)) {
			vp_info("no grant was sent: end of session");
			finish(s, VP_EXIT_OK);
			return;
		}
		watch_sync(s);
	}
}

static void on_vcpu(struct session *s, int i)
{
	struct kvm_pace_state st;

	if (vcpu_state(s, i, &st))
		return;
	if (!(st.state & KVM_PACE_STATE_HELD)) {
		if (ep_set(s, EPOLL_CTL_MOD, s->vm->vcpu_fd[i], EPOLLIN | EPOLLONESHOT, i))
			fail(s, VP_EXIT_ERROR, "epoll: %s", strerror(errno));
		return;
	}
	if (!s->held[i]) {
		s->held[i] = true;
		s->nr_held++;
	}
	if (s->nr_held == s->vm->nr_vcpus)
		all_held(s);
}

/*
 * Every second of a wait: a vCPU that KVM stopped pacing (the guest started
 * a timer that runs on host time) ends the session, since the quantum could
 * never complete; a wait longer than --stall-warn is explained.
 */
static void on_tick(struct session *s)
{
	struct kvm_pace_state st;
	char why[1024] = "";
	uint64_t expirations, waited;
	size_t l;
	int i;

	if (read(s->tfd, &expirations, sizeof(expirations)) < 0)
		return;
	waited = ns_since(&s->t_wait) / 1000000000ull;
	if (s->state == ST_RUNNING || s->state == ST_FREEZING) {
		for (i = 0; i < s->vm->nr_vcpus; i++) {
			if (s->held[i] || vcpu_state(s, i, &st))
				continue;
			if (!(st.state & KVM_PACE_STATE_ARMED)) {
				fail(s, VP_EXIT_UNSUPPORTED, "KVM stopped pacing vCPU %d: the "
				     "guest started a timer that runs on host time (Hyper-V "
				     "synthetic timer, Xen timer or a nested VMX guest)",
				     s->vm->vcpu_id[i]);
				return;
			}
		}
		if (s->state == ST_DONE)
			return;
	}
	if (!s->o->stall_warn_s || waited < (uint64_t)s->o->stall_warn_s * (s->warnings + 1))
		return;
	s->warnings++;
	if (s->state == ST_WAIT_GRANT || s->state == ST_REPORTING) {
		/* the simulator may think for long: say it once per wait */
		if (s->warnings == 1)
			vp_err("%s for %.1f s%s", state_what[s->state], ns_since(&s->t_wait) / 1e9,
			       s->state == ST_WAIT_GRANT && !sync_readable(s) ?
			       " (it has not read what vmpace queued for it, past the limit: "
			       "vmpace reads its messages once it does)" : "");
		return;
	}
	for (i = 0; i < s->vm->nr_vcpus; i++) {
		if (s->held[i] || ioctl(s->vm->vcpu_fd[i], KVM_GET_PACE_STATE, &st))
			continue;
		l = strlen(why);
		if (st.state & KVM_PACE_STATE_HELD)
			continue;
		if (!(st.state & KVM_PACE_STATE_IN_RUN))
			snprintf(why + l, sizeof(why) - l, "; vCPU %d is not in KVM_RUN "
				 "(the VMM stopped it: paused, -S, savevm or migration, or "
				 "the vCPU was unplugged)", s->vm->vcpu_id[i]);
		else
			snprintf(why + l, sizeof(why) - l, "; vCPU %d runs, guest TSC %llu "
				 "of deadline %llu", s->vm->vcpu_id[i],
				 (unsigned long long)st.guest_tsc,
				 (unsigned long long)st.deadline);
	}
	if (s->qmp) {
		vp_qmp_read_events(s->qmp);
		if (!s->qmp->running) {
			l = strlen(why);
			snprintf(why + l, sizeof(why) - l, "; QEMU is %s: the quantum goes on "
				 "after a 'cont'", s->qmp->status);
		}
	}
	vp_err("%s %llu for %.1f s%s", state_what[s->state], (unsigned long long)s->seq,
	       ns_since(&s->t_wait) / 1e9, why);
}

static void on_signal(struct session *s)
{
	struct signalfd_siginfo si;

	if (read(s->sigfd, &si, sizeof(si)) != sizeof(si))
		return;
	s->signo = si.ssi_signo;
	vp_info("signal %u: ending the session", si.ssi_signo);
	if (s->state != ST_DONE) {
		char text[64];

		snprintf(text, sizeof(text), "vmpace ends the session on signal %u",
			 si.ssi_signo);
		tell_peer(s, VP_EXIT_SIGNAL, text);
	}
	finish(s, VP_EXIT_SIGNAL);
}

static void on_vmm_exit(struct session *s)
{
	/* Ctrl-C reaches the VMM too: the signal decides the exit code */
	on_signal(s);
	if (s->state == ST_DONE)
		return;
	fail(s, VP_EXIT_VMM_DIED, "the VMM (pid %d) exited", (int)s->vm->pid);
}

static bool vmm_alive(struct session *s)
{
	return syscall(SYS_pidfd_send_signal, s->vm->pidfd, 0, NULL, 0) == 0;
}

/* Waits up to @ms for the VMM to exit; true if it did. */
static bool wait_vmm(struct session *s, int ms)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC);
	bool gone = false;

	struct timespec t0;
	int n, left = ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (ep >= 0 && !epoll_ctl(ep, EPOLL_CTL_ADD, s->vm->pidfd, &ev)) {
		/* a SIGSTOP/SIGCONT interrupts epoll_wait: the grace period goes on */
		while ((n = epoll_wait(ep, &ev, 1, left)) < 0 && errno == EINTR) {
			left = ms - (int)(ns_since(&t0) / 1000000);
			if (left < 0)
				left = 0;
		}
		gone = n == 1;
	}
	if (ep >= 0)
		close(ep);
	return gone;
}

static void terminate_vmm(struct session *s)
{
	int left = s->o->kill_timeout_ms;

	/* a Ctrl-C reached QEMU as well: let it end by itself */
	if (s->signo == SIGINT && s->owns_vmm && wait_vmm(s, 1000))
		return;
	vp_info("terminating the VMM (pid %d)", (int)s->vm->pid);
	if (syscall(SYS_pidfd_send_signal, s->vm->pidfd, SIGTERM, NULL, 0) && errno == ESRCH)
		return;
	if (wait_vmm(s, left))
		return;
	vp_err("the VMM did not exit within %d ms of SIGTERM: killing it", left);
	syscall(SYS_pidfd_send_signal, s->vm->pidfd, SIGKILL, NULL, 0);
	wait_vmm(s, 5000);
}

/*
 * Every way out ends the VMM or releases its guest: a VMM that vmpace
 * started but could not pace is terminated (it never ran a guest
 * instruction), one that vmpace attached to but could not pace is left
 * alone, a signal releases a VMM that vmpace did not start, and otherwise
 * --on-close decides.
 */
static void leave(struct session *s)
{
	if (!vmm_alive(s))
		return;
	if (s->owns_vmm && !s->controlling) {
		vp_disarm_all(s->vm);
		terminate_vmm(s);
		return;
	}
	if (s->controlling && s->o->on_close == VP_CLOSE_TERMINATE &&
	    (s->exit_code != VP_EXIT_SIGNAL || s->owns_vmm))
		terminate_vmm(s);
	else
		vp_disarm_all(s->vm);
}

static int setup(struct session *s)
{
	sigset_t mask;
	int i, r, fl;

	fl = fcntl(s->o->sync_fd, F_GETFL);
	if (fl < 0 || fcntl(s->o->sync_fd, F_SETFL, fl | O_NONBLOCK) ||
	    fcntl(s->o->sync_fd, F_SETFD, FD_CLOEXEC))
		return -errno;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0)
		return -errno;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &s->old_mask);
	s->mask_saved = true;
	s->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sigfd < 0)
		return -errno;
	s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (s->tfd < 0)
		return -errno;

	r = ep_set(s, EPOLL_CTL_ADD, s->sigfd, EPOLLIN, TAG_SIGNAL);
	r = r ?: ep_set(s, EPOLL_CTL_ADD, s->vm->pidfd, EPOLLIN, TAG_PIDFD);
	r = r ?: ep_set(s, EPOLL_CTL_ADD, s->o->sync_fd, 0, TAG_SYNC);
	if (!r && s->tfd >= 0)
		r = ep_set(s, EPOLL_CTL_ADD, s->tfd, EPOLLIN, TAG_TIMER);
	if (!r && s->qmp)
		r = ep_set(s, EPOLL_CTL_ADD, s->qmp->fd, EPOLLIN, TAG_QMP);
	for (i = 0; !r && i < s->vm->nr_vcpus; i++)
		r = ep_set(s, EPOLL_CTL_ADD, s->vm->vcpu_fd[i], 0, i);
	/* read once the HELLO is answered: the reply is the first message */
	for (i = 0; !r && i < s->nr_ports; i++)
		r = ep_set(s, EPOLL_CTL_ADD, port_fd(s, i), 0, TAG_NET0 - i);
	return r;
}

static void dispatch(struct session *s, struct epoll_event *ev)
{
	int tag = (int)(int64_t)ev->data.u64;

	switch (tag) {
	case TAG_PIDFD:
		on_vmm_exit(s);
		break;
	case TAG_SIGNAL:
		on_signal(s);
		break;
	case TAG_SYNC:
		on_sync(s, ev->events);
		break;
	case TAG_TIMER:
		on_tick(s);
		break;
	case TAG_QMP:
		/* QEMU closing its monitor is followed by its exit: the pidfd */
		if (vp_qmp_read_events(s->qmp))
			ep_set(s, EPOLL_CTL_DEL, s->qmp->fd, 0, TAG_QMP);
		break;
	default:
		if (tag <= TAG_NET0)
			on_port(s, TAG_NET0 - tag);
		else
			on_vcpu(s, tag);
	}
}

int vp_session(struct vp_opts *o, struct vp_vm *vm, struct vp_qmp *qmp, unsigned int flags)
{
	struct session s = {
		.o = o, .vm = vm, .qmp = qmp, .epfd = -1, .sigfd = -1, .tfd = -1,
		.state = ST_FREEZING, .owns_vmm = flags & VP_SESSION_OWNS_VMM,
		.unit_ns = vp_unit_ns(o->proto),
		.exit_code = VP_EXIT_OK,
	};
	struct epoll_event ev[16];
	struct kvm_pace_state st;
	int i, n, r;

	if (o->proto == VP_PROTO_FRAMED) {
		s.framed = true;
		s.fdec = malloc(sizeof(*s.fdec));
		s.port_last_t = calloc(MAX_PORTS, sizeof(uint64_t));
		if (!s.fdec || !s.port_last_t) {
			fail(&s, VP_EXIT_ERROR, "out of memory");
			goto out;
		}
		vp_fr_decoder_init(s.fdec, VP_FR_FROM_SIM);
		s.nr_ports = o->nr_net + o->nr_serial;
	} else {
		vp_decoder_init(&s.dec, o->proto);
	}
	s.held = calloc(vm->nr_vcpus, sizeof(bool));
	if (!s.held) {
		fail(&s, VP_EXIT_ERROR, "out of memory");
		goto out;
	}
	if (o->trace) {
		s.trace = fopen(o->trace, "we");
		if (!s.trace) {
			fail(&s, VP_EXIT_ERROR, "cannot write the trace to %s: %s", o->trace,
			     strerror(errno));
			goto out;
		}
		setvbuf(s.trace, NULL, _IOLBF, 0);
		fprintf(s.trace, "seq,grant,elapsed,overshoot_ticks,host_ns,overshoot_ns\n");
	}

	r = setup(&s);
	if (r) {
		fail(&s, VP_EXIT_ERROR, "cannot set up the event loop: %s", strerror(-r));
		goto out;
	}

	/* Freeze the guest where it is now, or, started with -S, before it runs. */
	if (vcpu_state(&s, 0, &st))
		goto out;
	start_quantum(&s, st.guest_tsc ? st.guest_tsc : 1, ST_FREEZING);
	/* a monitor's wait ends on a signal that the loop below then reads */
	if (qmp && qmp->sigfd < 0)
		qmp->sigfd = s.sigfd;
	/*
	 * Started only if it has not run yet: a QEMU that another client of
	 * its monitors started, or started and stopped, meanwhile is left so.
	 */
	if (s.state != ST_DONE && (flags & VP_SESSION_START)) {
		r = vp_qmp_query_status(qmp, 60000);
		if (!r && (qmp->running || strcmp(qmp->status, "prelaunch"))) {
			vp_err("QEMU is %s now, no longer prelaunch: vmpace does not start it",
			       qmp->status);
			flags &= ~VP_SESSION_START;
		}
	}
	if (s.state != ST_DONE && (flags & VP_SESSION_START)) {
		r = vp_qmp_command(qmp, "{\"execute\":\"cont\"}\n", NULL, 0, 60000);
		/* -EINTR: a signal is pending, the loop below reads it */
		if (r && r != -EINTR)
			fail(&s, r == -ESRCH || r == -EPIPE ? VP_EXIT_VMM_DIED : VP_EXIT_ERROR,
			     "cannot start the guest ('cont' on QEMU's monitor): %s",
			     r == -EREMOTEIO ? "QEMU refused" : strerror(-r));
	}

	while (s.state != ST_DONE) {
		n = epoll_wait(s.epfd, ev, 16, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fail(&s, VP_EXIT_ERROR, "epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n && s.state != ST_DONE; i++)
			dispatch(&s, &ev[i]);
	}
out:
	/* what is queued for a simulator that is still there: one attempt */
	if (s.framed)
		oq_flush_once(&s);
	leave(&s);
	close(o->sync_fd);
	if (s.trace)
		fclose(s.trace);
	free(s.held);
	free(s.oq);
	free(s.fdec);
	free(s.port_last_t);
	while (s.txq) {
		struct tx_frame *f = s.txq;

		s.txq = f->next;
		free(f);
	}
	for (i = 0; i < o->nr_net; i++)
		close(o->net_fd[i]);
	for (i = 0; i < o->nr_serial; i++) {
		close(o->serial_fd[i]);
		close(o->serial_qemu_fd[i]);
	}
	if (s.epfd >= 0)
		close(s.epfd);
	if (s.sigfd >= 0)
		close(s.sigfd);
	if (s.tfd >= 0)
		close(s.tfd);
	if (s.mask_saved)
		sigprocmask(SIG_SETMASK, &s.old_mask, NULL);
	return s.exit_code;
}
