// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libvmpace: the simulator's side of vmpace (see libvmpace.h, libvmpace(3)).
 *
 * Every call returns 0 or a negative errno and leaves a message in the
 * session; nothing here exits, aborts, or changes the process's signal
 * dispositions: SIGPIPE is avoided with MSG_NOSIGNAL, EINTR is retried with
 * the time left, partial transfers are completed (a report cut by a timeout
 * is kept for the next vmp_await()), and no call waits longer than its
 * timeout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libvmpace.h"
#include "proto.h"

#define API __attribute__((visibility("default")))

_Static_assert(VMP_SERIAL_MAX == VP_FR_MAX_SERIAL, "the header's limit is the protocol's");
_Static_assert(VMP_FEAT_SERIAL == VP_FR_FEAT_SERIAL, "the header's feature is the protocol's");

/* vmp_free() of an open session: vmpace's --kill-timeout is 10 s */
#define FREE_CLOSE_MS	15000
/* pause between connection attempts while vmpace does not listen yet */
#define RETRY_MS	20

/* An event read from vmpace, queued for vmp_next_event(). */
struct ev_node {
	struct ev_node *next;
	struct vmp_event ev;
	uint8_t data[];
};

struct vmp {
	int fd;
	struct vp_decoder dec;
	struct vp_fr_decoder fdec;	/* VMP_PROTO_FRAMED */
	struct ev_node *evq, **evq_tail, *ev_cur;
	size_t evq_bytes;		/* queued, of VMP_EVENTS_MAX_BYTES */
	unsigned int nr_ports;		/* from vmpace's HELLO reply: network, */
	unsigned int nr_serial;		/* serial ports (0 without the feature) */
	uint32_t want;			/* features to ask for (vmp_set_features) */
	uint32_t features;		/* that vmpace granted */
	uint32_t next_id;		/* of frames and serial bytes to the guest */
	struct port_times {		/* of the last message sent on each port */
		uint64_t *t;
		unsigned int n;
	} net_last, serial_last;
	bool framed;
	bool hello_due;		/* framed: the opening and HELLO are not sent yet */
	bool hello_pending;	/* framed: vmpace's HELLO reply not read yet */
	bool pending;		/* a grant was sent, its report not read */
	bool over;		/* the session ended or broke */
	uint64_t grant;		/* framed: the guest time it ends at */
	uint64_t now;		/* guest ns reported so far */
	int send_timeout_ms;	/* per grant or frame; -1: none */
	pid_t pid;		/* spawned child, 0 if none */
	int pidfd;		/* -1 if none or not supported */
	bool reaped;
	int status;		/* its wait status once reaped */
	char err[512];
};

extern char **environ;

static int fail(struct vmp *v, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct vmp *v, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->err, sizeof(v->err), fmt, ap);
	va_end(ap);
	return err > 0 ? -err : -EIO;
}

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The deadline of @timeout_ms from now; -1: none. */
static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ns() + (int64_t)timeout_ms * 1000000;
}

/* Milliseconds to @deadline, rounded up (-1: no deadline, 0: past). */
static int left_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ns();
	if (left <= 0)
		return 0;
	left = (left + 999999) / 1000000;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static void pause_ms(int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&t, &t) && errno == EINTR)
		;
}

static struct vmp *vmp_new(enum vmp_proto proto)
{
	struct vmp *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->fd = -1;
	v->pidfd = -1;
	v->over = true;		/* until a constructor succeeds */
	v->framed = proto == VMP_PROTO_FRAMED;
	vp_decoder_init(&v->dec, proto == VMP_PROTO_NS64 ? VP_PROTO_NS64 :
			proto == VMP_PROTO_FRAMED ? VP_PROTO_FRAMED : VP_PROTO_US32);
	vp_fr_decoder_init(&v->fdec, VP_FR_FROM_VMPACE);
	v->evq_tail = &v->evq;
	v->send_timeout_ms = VMP_SEND_TIMEOUT_MS;
	return v;
}

static int check_proto(struct vmp *v, enum vmp_proto proto)
{
	if (proto != VMP_PROTO_US32 && proto != VMP_PROTO_NS64 && proto != VMP_PROTO_FRAMED)
		return fail(v, EINVAL, "unknown protocol %d (VMP_PROTO_US32, VMP_PROTO_NS64 "
			    "or VMP_PROTO_FRAMED)", (int)proto);
	return 0;
}

/* "exited with status 7 (protocol error)" and the like. */
static void describe_status(int status, char *buf, size_t size)
{
	const char *text;

	if (WIFEXITED(status)) {
		text = vp_exit_text(WEXITSTATUS(status));
		snprintf(buf, size, "exited with status %d%s%s%s", WEXITSTATUS(status),
			 text ? " (" : "", text ? text : "", text ? ")" : "");
	} else if (WIFSIGNALED(status)) {
		snprintf(buf, size, "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	} else {
		snprintf(buf, size, "ended with wait status %#x", status);
	}
}

/*
 * Reap the child by @deadline: 1 if it was reaped (now or before), 0 if it
 * is still running, negative errno on errors (-ECHILD: somebody else reaped
 * it, or SIGCHLD is ignored).
 */
static int reap(struct vmp *v, int64_t deadline)
{
	pid_t r;
	int left;

	if (v->reaped)
		return 1;
	if (!v->pid)
		return 0;
	for (;;) {
		r = waitpid(v->pid, &v->status, WNOHANG);
		if (r == v->pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r < 0)
			continue;
		left = left_ms(deadline);
		if (!left)
			return 0;
		if (v->pidfd >= 0) {
			struct pollfd p = { .fd = v->pidfd, .events = POLLIN };

			if (poll(&p, 1, left) < 0 && errno != EINTR)
				return -errno;
		} else {
			/* no pidfd (kernel < 5.3): look again shortly */
			pause_ms(left < 0 || left > 10 ? 10 : left);
		}
	}
	v->reaped = true;
	if (v->pidfd >= 0) {
		close(v->pidfd);
		v->pidfd = -1;
	}
	return 1;
}

/* SIGKILL the child, through its pidfd if there is one (no pid reuse). */
static void kill_child(struct vmp *v)
{
	if (v->reaped || !v->pid)
		return;
	if (v->pidfd < 0 || syscall(SYS_pidfd_send_signal, v->pidfd, SIGKILL, NULL, 0))
		kill(v->pid, SIGKILL);
}

/* What is known of how the child ended, for a message. */
static void child_account(struct vmp *v, char *buf, size_t size)
{
	char how[128];
	int r;

	buf[0] = '\0';
	if (!v->pid)
		return;
	r = reap(v, 0);
	if (r == 1) {
		describe_status(v->status, how, sizeof(how));
		snprintf(buf, size, ": vmpace (pid %d) %s", (int)v->pid, how);
	} else if (r == -ECHILD) {
		snprintf(buf, size, " (vmpace, pid %d: its exit status was collected "
			 "elsewhere: SIGCHLD ignored or another waitpid())", (int)v->pid);
	} else {
		snprintf(buf, size, " (vmpace, pid %d, has not exited yet: vmp_close() "
			 "gives its exit status)", (int)v->pid);
	}
}

/*
 * The session is over because the connection is: say how, as far as known
 * now (no waiting: vmp_close() waits for the child).
 */
static int lost(struct vmp *v, int err, const char *what)
{
	char acc[256];

	v->over = true;
	v->pending = false;
	child_account(v, acc, sizeof(acc));
	return fail(v, err, "%s%s", what, acc);
}

/* A copy of @fd above @min, close-on-exec; -errno on errors. */
static int dup_above(int fd, int min)
{
	int n = fcntl(fd, F_DUPFD_CLOEXEC, min + 1);

	return n < 0 ? -errno : n;
}

static void close_all(int *fds, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* Sends all of @len bytes, waiting up to @deadline; 0 or -errno. */
static int send_all(struct vmp *v, const uint8_t *msg, size_t len, int64_t deadline)
{
	size_t done = 0;
	int e;

	while (done < len) {
		ssize_t n = send(v->fd, msg + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);

		e = errno;
		if (n >= 0) {
			done += n;
		} else if (e == EAGAIN || e == EWOULDBLOCK) {
			struct pollfd p = { .fd = v->fd, .events = POLLOUT };
			int r = poll(&p, 1, left_ms(deadline));

			if (r < 0 && errno != EINTR)
				return -errno;
			if (r == 0)
				return -ETIMEDOUT;
		} else if (e != EINTR) {
			return -(e == ECONNRESET ? EPIPE : e);
		}
	}
	return 0;
}

/*
 * The session is open.  The framed protocol's opening and HELLO go with
 * the first grant or message (send_hello()), so that the simulator can ask
 * for features first.
 */
static int opened(struct vmp *v)
{
	v->over = false;
	v->hello_due = v->framed;
	return 0;
}

/*
 * Framed: the opening (16 zero bytes, which a vmpace without --proto framed
 * takes for a zero grant and ends on) and the HELLO with the features asked
 * for, once; vmpace's reply is read with the first report.
 */
static int send_hello(struct vmp *v)
{
	uint8_t msg[2 * VP_FR_HDR + VP_FR_HELLO_LEN] = { 0 }, hello[VP_FR_HELLO_LEN] = { 0 };
	int r;

	if (!v->hello_due)
		return 0;
	v->hello_due = false;
	vp_put_be32(hello, VP_FR_VERSION);	/* versions 1 to 1 */
	vp_put_be32(hello + 4, VP_FR_VERSION);
	vp_put_be32(hello + 8, v->want);
	vp_fr_encode(msg + VP_FR_HDR, VP_FR_HELLO, 0, 0, hello, sizeof(hello));
	/* 44 bytes into a new connection's empty buffer: no real wait */
	r = send_all(v, msg, sizeof(msg), deadline_of(FREE_CLOSE_MS));
	if (r) {
		v->over = true;
		return fail(v, -r, "sending the framed protocol's HELLO: %s", strerror(-r));
	}
	v->hello_pending = true;
	return 0;
}

API int vmp_spawn(struct vmp **vp, enum vmp_proto proto, const char *const argv[],
		  const struct vmp_spawn_attr *attr)
{
	static const struct vmp_spawn_attr none_attr;
	const struct vmp_spawn_attr *a = attr ? attr : &none_attr;
	int child_fd = a->sync_fd ? a->sync_fd : 3;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	struct vmp *v = vmp_new(proto);
	/* our end, the child's end, copies of the child's stdout and stderr */
	int fds[4] = { -1, -1, -1, -1 }, sv[2], r;
	sigset_t empty, all;
	unsigned int i;
	pid_t pid;

	*vp = v;
	if (!v)
		return -ENOMEM;
	if ((r = check_proto(v, proto)))
		return r;
	if (!argv || !argv[0])
		return fail(v, EINVAL, "vmp_spawn: no command to run");
	if (child_fd < 3)
		return fail(v, EINVAL, "vmp_spawn: sync fd %d: it must be 3 or more "
			    "(0 to 2 are the child's standard streams)", child_fd);
	if (a->flags & ~(VMP_SPAWN_STDOUT | VMP_SPAWN_STDERR))
		return fail(v, EINVAL, "vmp_spawn: unknown flags %#x",
			    a->flags & ~(VMP_SPAWN_STDOUT | VMP_SPAWN_STDERR));
	for (i = 0; i < sizeof(a->reserved) / sizeof(a->reserved[0]); i++)
		if (a->reserved[i])
			return fail(v, EINVAL, "vmp_spawn: reserved fields must be zero");

	/*
	 * The child's end and its stdio sources go above child_fd first, so
	 * that no dup2() of the child overwrites another's source.
	 */
	if ((a->flags & VMP_SPAWN_STDOUT) && (fds[2] = dup_above(a->stdout_fd, child_fd)) < 0)
		return fail(v, -fds[2], "vmp_spawn: stdout_fd %d: %s", a->stdout_fd,
			    strerror(-fds[2]));
	if ((a->flags & VMP_SPAWN_STDERR) && (fds[3] = dup_above(a->stderr_fd, child_fd)) < 0) {
		r = -fds[3];
		close_all(fds, 4);
		return fail(v, r, "vmp_spawn: stderr_fd %d: %s", a->stderr_fd, strerror(r));
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		r = errno;
		close_all(fds, 4);
		return fail(v, r, "socketpair: %s", strerror(r));
	}
	fds[0] = sv[0];
	if (sv[1] > child_fd) {
		fds[1] = sv[1];
	} else {
		fds[1] = dup_above(sv[1], child_fd);
		close(sv[1]);
		if (fds[1] < 0) {
			r = -fds[1];
			close_all(fds, 4);
			return fail(v, r, "vmp_spawn: sync fd %d: %s", child_fd, strerror(r));
		}
	}

	/* the child: every signal at its default action, none blocked */
	sigemptyset(&empty);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	if ((r = posix_spawn_file_actions_init(&fa)))
		goto out_close;
	if ((r = posix_spawnattr_init(&sa))) {
		posix_spawn_file_actions_destroy(&fa);
		goto out_close;
	}
	r = posix_spawn_file_actions_adddup2(&fa, fds[1], child_fd);
	if (!r && fds[2] >= 0)
		r = posix_spawn_file_actions_adddup2(&fa, fds[2], 1);
	if (!r && fds[3] >= 0)
		r = posix_spawn_file_actions_adddup2(&fa, fds[3], 2);
	if (!r)
		r = posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!r)
		r = posix_spawnattr_setsigmask(&sa, &empty);
	if (!r)
		r = posix_spawnattr_setsigdefault(&sa, &all);
	if (!r)
		r = posix_spawnp(&pid, argv[0], &fa, &sa, (char *const *)argv, environ);
	posix_spawnattr_destroy(&sa);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		goto out_close;
	v->fd = fds[0];
	fds[0] = -1;
	close_all(fds, 4);
	v->pid = pid;
	v->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	return opened(v);

out_close:
	close_all(fds, 4);
	return fail(v, r, "cannot run %s: %s", argv[0], strerror(r));
}

API int vmp_from_fd(struct vmp **vp, enum vmp_proto proto, int fd)
{
	struct vmp *v = vmp_new(proto);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(int);
	int type, r, one = 1;

	*vp = v;
	if (!v)
		return -ENOMEM;
	if ((r = check_proto(v, proto)))
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len)) {
		r = errno;
		return fail(v, r, "fd %d: %s (a connected stream socket is needed)",
			    fd, strerror(r));
	}
	if (type != SOCK_STREAM)
		return fail(v, EPROTOTYPE, "fd %d is not a stream socket", fd);
	len = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len)) {
		r = errno;
		return fail(v, r, "fd %d: %s (a connected stream socket is needed)",
			    fd, strerror(r));
	}
	/* a grant is 4 or 8 bytes: never wait for more */
	if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	v->fd = fd;
	r = opened(v);
	if (r)
		v->fd = -1;	/* stays the caller's */
	return r;
}

/* Retry later: nobody listens yet, or the listener's backlog is full. */
static bool not_yet(int err)
{
	return err == ECONNREFUSED || err == ENOENT || err == EAGAIN;
}

/* One attempt at "unix:PATH": a socket fd, or -errno with the message set. */
static int connect_unix(struct vmp *v, const char *addr, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, e;

	if (!path[0])
		return fail(v, EINVAL, "%s: no path", addr);
	if (strlen(path) >= sizeof(a.sun_path))
		return fail(v, ENAMETOOLONG, "%s: the path is too long", addr);
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		e = errno;
		return fail(v, e, "socket: %s", strerror(e));
	}
	/* non-blocking: a full backlog is EAGAIN, not a wait without end */
	while (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		if (errno == EINTR)
			continue;
		e = errno;
		close(fd);
		return fail(v, e, "connect to %s: %s", addr, strerror(e));
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

/* One attempt at "tcp:HOST:PORT", each address in turn, by @deadline. */
static int connect_tcp(struct vmp *v, const char *addr, int64_t deadline)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	const char *hostport = addr + 4, *colon = strrchr(hostport, ':');
	char host[256];
	size_t hl;
	int fd = -1, e = ECONNREFUSED, r, one = 1;

	if (!colon || !colon[1])
		return fail(v, EINVAL, "%s: HOST:PORT expected", addr);
	hl = colon - hostport;
	if (hl >= 2 && hostport[0] == '[' && hostport[hl - 1] == ']') {
		hostport++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return fail(v, ENAMETOOLONG, "%s: the host name is too long", addr);
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	/* name resolution is not bounded by the timeout (see libvmpace(3)) */
	r = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &res);
	if (r == EAI_SYSTEM) {
		e = errno;
		return fail(v, e ? e : EIO, "%s: %s", addr, strerror(e));
	}
	if (r)
		return fail(v, r == EAI_AGAIN ? EAGAIN : r == EAI_MEMORY ? ENOMEM : EINVAL,
			    "%s: %s", addr, gai_strerror(r));
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd p;
		socklen_t len = sizeof(e);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS) {
			e = errno;
			goto next;
		}
		p = (struct pollfd){ .fd = fd, .events = POLLOUT };
		while ((r = poll(&p, 1, left_ms(deadline))) < 0 && errno == EINTR)
			;
		if (r <= 0) {
			e = r ? errno : ETIMEDOUT;
			goto next;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) || e)
			goto next;
		/* a grant is 4 or 8 bytes: never wait for more */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		freeaddrinfo(res);
		return fd;
next:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fail(v, e, "connect to %s: %s", addr, strerror(e));
}

API int vmp_connect(struct vmp **vp, enum vmp_proto proto, const char *addr,
		    int timeout_ms)
{
	struct vmp *v = vmp_new(proto);
	int64_t deadline = deadline_of(timeout_ms);
	int fd, left, r;

	*vp = v;
	if (!v)
		return -ENOMEM;
	if ((r = check_proto(v, proto)))
		return r;
	if (!addr || (strncmp(addr, "unix:", 5) && strncmp(addr, "tcp:", 4)))
		return fail(v, EINVAL, "address \"%s\": unix:PATH or tcp:HOST:PORT expected",
			    addr ? addr : "(null)");
	for (;;) {
		if (!strncmp(addr, "unix:", 5))
			fd = connect_unix(v, addr, addr + 5);
		else
			fd = connect_tcp(v, addr, deadline);
		if (fd >= 0)
			break;
		/* not listening yet: retry until the timeout */
		if (!not_yet(-fd) || !(left = left_ms(deadline)))
			return fd;
		pause_ms(left < 0 || left > RETRY_MS ? RETRY_MS : left);
	}
	v->fd = fd;
	return opened(v);
}

static int usable(struct vmp *v)
{
	if (v->fd < 0)
		return fail(v, EBADF, "the session is closed");
	if (v->over)
		return -EPIPE;	/* the message that ended it stays */
	return 0;
}

/*
 * vmpace writes only reports to grants: anything readable before a grant is
 * a protocol error, and end of file means it ended the session.
 */
static int nothing_unsolicited(struct vmp *v)
{
	struct pollfd p = { .fd = v->fd, .events = POLLIN };
	uint8_t b;
	ssize_t n;
	int e;

	if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	n = recv(v->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0) {
		v->over = true;
		return fail(v, EPROTO, "vmpace sent data without a grant (0x%02x...)", b);
	}
	if (n == 0)
		return lost(v, EPIPE, "vmpace closed the connection");
	e = errno;
	if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)
		return 0;
	return lost(v, e == ECONNRESET ? EPIPE : e, "vmpace's connection failed");
}

/* Waits until the socket is readable: 0, -ETIMEDOUT, or the session is lost. */
static int wait_report(struct vmp *v, int64_t deadline, int timeout_ms)
{
	struct pollfd p = { .fd = v->fd, .events = POLLIN };
	int r, e;

	while ((r = poll(&p, 1, left_ms(deadline))) < 0) {
		if (errno != EINTR) {
			e = errno;
			return lost(v, e, "poll");
		}
	}
	if (r == 0)
		return fail(v, ETIMEDOUT, "no report within %d ms (still waiting for it)",
			    timeout_ms);
	return 0;
}

/* The memory an event takes in the queue. */
static size_t ev_size(size_t len)
{
	return sizeof(struct ev_node) + len + 1;
}

/* Framed: an event for vmp_next_event(). */
static int queue_event(struct vmp *v, const struct vp_fr_msg *m)
{
	size_t off = m->type == VP_FR_DELIVERED ? m->len : m->type == VP_FR_ERROR ? 8 :
		     VP_FR_FRAME_HDR;
	struct ev_node *n = malloc(ev_size(m->len - off));

	if (!n) {
		v->over = true;
		return fail(v, ENOMEM, "out of memory for vmpace's events");
	}
	memset(&n->ev, 0, sizeof(n->ev));
	n->next = NULL;
	n->ev.t = m->t;
	n->ev.id = vp_get_be32(m->payload + (m->type == VP_FR_ERROR ? 4 : 0));
	n->ev.len = m->len - off;
	memcpy(n->data, m->payload + off, n->ev.len);
	n->data[n->ev.len] = '\0';
	n->ev.data = n->data;
	switch (m->type) {
	case VP_FR_FRAME_FROM_GUEST:
	case VP_FR_SERIAL_FROM_GUEST:
		n->ev.type = m->type == VP_FR_FRAME_FROM_GUEST ? VMP_EV_FRAME : VMP_EV_SERIAL;
		n->ev.port = vp_get_be16(m->payload + 4);
		break;
	case VP_FR_DELIVERED:
		n->ev.type = VMP_EV_DELIVERED;
		n->ev.status = vp_get_be16(m->payload + 4);
		n->ev.flags = vp_get_be16(m->payload + 6);
		n->ev.data = NULL;
		break;
	default:
		n->ev.type = VMP_EV_REJECTED;
	}
	*v->evq_tail = n;
	v->evq_tail = &n->next;
	v->evq_bytes += ev_size(n->ev.len);
	return 0;
}

/*
 * Framed: reads one message from vmpace, waiting up to @deadline (a message
 * cut by the timeout is kept for the next call).  Handles the HELLO reply
 * and ERROR; returns 0 with a REPORT in *m, -ETIMEDOUT, or another error
 * that ends the session.
 */
static int fr_read(struct vmp *v, int64_t deadline, int timeout_ms, struct vp_fr_msg *m)
{
	uint8_t buf[4096];
	size_t want;
	bool complete = false;
	char what[VP_FR_MAX_TEXT + 64];
	int r, e;

	for (;;) {
		ssize_t n;

		/*
		 * A simulator that does not take its events: stop reading
		 * (vmpace, then QEMU and the guest's NIC, wait) rather than
		 * queue without end.  Not an end of the session.
		 */
		if (v->evq_bytes >= VMP_EVENTS_MAX_BYTES)
			return fail(v, ENOBUFS, "%zu bytes of vmpace's events are queued (at most "
				    "%u): take them with vmp_next_event(), then call again; "
				    "nothing is lost", v->evq_bytes, VMP_EVENTS_MAX_BYTES);
		if ((r = wait_report(v, deadline, timeout_ms)))
			return r;
		want = vp_fr_want(&v->fdec);
		n = recv(v->fd, buf, want < sizeof(buf) ? want : sizeof(buf), MSG_DONTWAIT);
		/* a seed vmpace closes with our HELLO unread: a reset */
		if (n < 0 && errno == ECONNRESET && v->hello_pending && !vp_fr_partial(&v->fdec))
			n = 0;
		if (n == 0)
			return lost(v, EPIPE, v->hello_pending && !vp_fr_partial(&v->fdec) ?
				    "vmpace closed the connection on the framed protocol's "
				    "opening: was it started with --proto framed?" :
				    vp_fr_partial(&v->fdec) ?
				    "vmpace closed the connection in the middle of a message" :
				    "vmpace closed the connection");
		if (n < 0) {
			e = errno;
			if (e == EINTR || e == EAGAIN || e == EWOULDBLOCK)
				continue;
			snprintf(what, sizeof(what), "reading from vmpace: %s", strerror(e));
			return lost(v, e == ECONNRESET ? EPIPE : e, what);
		}
		if (vp_fr_decode(&v->fdec, buf, n, &complete, m) < 0) {
			v->over = true;
			return fail(v, EPROTO, "vmpace broke the framed protocol: %s",
				    v->fdec.err);
		}
		if (!complete)
			continue;
		if (v->hello_pending != (m->type == VP_FR_HELLO_REPLY) &&
		    m->type != VP_FR_ERROR) {
			v->over = true;
			return fail(v, EPROTO, "vmpace sent a %s %s", vp_fr_type_name(m->type),
				    v->hello_pending ? "before its HELLO reply" : "unasked");
		}
		switch (m->type) {
		case VP_FR_HELLO_REPLY:
			if (vp_get_be32(m->payload) != VP_FR_VERSION) {
				v->over = true;
				return fail(v, EPROTO, "vmpace answered with version %u of the "
					    "framed protocol, not %u", vp_get_be32(m->payload),
					    VP_FR_VERSION);
			}
			v->features = vp_get_be32(m->payload + 4);
			if (v->features & ~v->want) {
				v->over = true;
				return fail(v, EPROTO, "vmpace granted features 0x%x, which "
					    "were not asked for", v->features);
			}
			v->nr_ports = vp_get_be16(m->payload + 8);
			v->nr_serial = vp_get_be16(m->payload + 10);
			if (v->nr_serial && !(v->features & VP_FR_FEAT_SERIAL)) {
				v->over = true;
				return fail(v, EPROTO, "vmpace names %u serial ports without "
					    "the SERIAL feature", v->nr_serial);
			}
			v->hello_pending = false;
			continue;
		case VP_FR_SERIAL_FROM_GUEST:
			if (!(v->features & VP_FR_FEAT_SERIAL)) {
				v->over = true;
				return fail(v, EPROTO, "vmpace sent serial bytes without the "
					    "SERIAL feature");
			}
			/* fall through */
		case VP_FR_FRAME_FROM_GUEST:
		case VP_FR_DELIVERED:
			if ((r = queue_event(v, m)))
				return r;
			/* a guest that keeps sending: the timeout still holds */
			if (!left_ms(deadline))
				return fail(v, ETIMEDOUT, "no report within %d ms (still "
					    "waiting for it; events read so far are queued)",
					    timeout_ms);
			continue;
		case VP_FR_ERROR:
			if (!(m->flags & VP_FR_ERROR_FATAL)) {
				if ((r = queue_event(v, m)))
					return r;
				continue;
			}
			e = (int)vp_get_be32(m->payload);
			snprintf(what, sizeof(what), "vmpace ended the session (exit %d, %s): %.*s",
				 e, vmp_exit_text(e), (int)(m->len - 8),
				 (const char *)m->payload + 8);
			return lost(v, e == VP_EXIT_PROTOCOL ? EPROTO : EPIPE, what);
		}
		if (!v->pending) {
			v->over = true;
			return fail(v, EPROTO, "vmpace sent a report without a grant");
		}
		return 0;
	}
}

/* Framed: what vmpace sent before a grant (its HELLO reply or an ERROR). */
static int fr_unsolicited(struct vmp *v)
{
	struct pollfd p = { .fd = v->fd, .events = POLLIN };
	struct vp_fr_msg m;
	int r;

	while (poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
		r = fr_read(v, 0, 0, &m);
		/* part of a message (the rest comes later), or a full queue */
		if (r == -ETIMEDOUT || r == -ENOBUFS) {
			v->err[0] = '\0';
			return 0;
		}
		if (r)
			return r;
	}
	return 0;
}

/* A grant or frame was not sent whole: the stream is broken. */
static int send_failed(struct vmp *v, int r, const char *what)
{
	char msg[160];

	if (r == -ETIMEDOUT)
		snprintf(msg, sizeof(msg), "sending %s: vmpace did not take it within "
			 "the send timeout (%d ms)", what, v->send_timeout_ms);
	else
		snprintf(msg, sizeof(msg), "sending %s: %s", what, strerror(-r));
	return lost(v, -r, msg);
}

/* Sends a grant (v->grant set); the session is lost if that fails. */
static int send_grant(struct vmp *v, const uint8_t *msg, size_t len)
{
	int r = send_all(v, msg, len, deadline_of(v->send_timeout_ms));

	if (r)
		return send_failed(v, r, "a grant");
	v->pending = true;
	return 0;
}

/* Framed: a grant until guest time @t. */
static int fr_grant(struct vmp *v, uint64_t t)
{
	uint8_t msg[VP_FR_HDR];
	int r;

	if ((r = send_hello(v)) || (r = fr_unsolicited(v)))
		return r;
	vp_fr_encode(msg, VP_FR_GRANT, 0, t, NULL, 0);
	v->grant = t;
	return send_grant(v, msg, sizeof(msg));
}

API int vmp_next_event(struct vmp *v, struct vmp_event *ev)
{
	free(v->ev_cur);
	v->ev_cur = v->evq;
	if (!v->ev_cur)
		return -EAGAIN;
	v->evq = v->ev_cur->next;
	if (!v->evq)
		v->evq_tail = &v->evq;
	v->evq_bytes -= ev_size(v->ev_cur->ev.len);
	*ev = v->ev_cur->ev;
	return 0;
}

API int vmp_set_send_timeout(struct vmp *v, int timeout_ms)
{
	if (timeout_ms < -1)
		return fail(v, EINVAL, "a send timeout of %d ms (-1: none, or 0 and up)",
			    timeout_ms);
	v->send_timeout_ms = timeout_ms;
	return 0;
}

API unsigned int vmp_net_ports(const struct vmp *v)
{
	return v->nr_ports;
}

API unsigned int vmp_serial_ports(const struct vmp *v)
{
	return v->nr_serial;
}

API int vmp_set_features(struct vmp *v, unsigned int features)
{
	int r;

	if ((r = usable(v)))
		return r;
	if (!v->framed)
		return fail(v, EOPNOTSUPP, "features need VMP_PROTO_FRAMED");
	if (features & ~(unsigned int)VMP_FEAT_SERIAL)
		return fail(v, EINVAL, "unknown features 0x%x", features & ~VMP_FEAT_SERIAL);
	if (!v->hello_due)
		return fail(v, EALREADY, "features are asked for before the session's first "
			    "grant or message");
	v->want = features;
	return 0;
}

/*
 * Framed: vmpace's HELLO reply, waited for up to the send timeout (it comes
 * once vmpace has frozen the guest); -ETIMEDOUT, the session goes on.
 */
static int await_hello(struct vmp *v)
{
	int64_t deadline = deadline_of(v->send_timeout_ms);
	struct pollfd p = { .fd = v->fd, .events = POLLIN };
	int r, ms;

	while (v->hello_pending) {
		ms = left_ms(deadline);
		if (!ms)
			return fail(v, ETIMEDOUT, "no HELLO reply from vmpace within the send "
				    "timeout (%d ms)", v->send_timeout_ms);
		r = poll(&p, 1, ms);
		if (r < 0 && errno != EINTR)
			return fail(v, errno, "poll: %s", strerror(errno));
		if ((r = fr_unsolicited(v)))
			return r;
	}
	return 0;
}

/*
 * FRAME_TO_GUEST or SERIAL_TO_GUEST: @len bytes of @data for @port at guest
 * time @t, whole or not at all (but for the send timeout).
 */
static int send_timed(struct vmp *v, bool serial, unsigned int port, uint64_t t,
		      const void *data, size_t len, uint32_t *id)
{
	struct port_times *last = serial ? &v->serial_last : &v->net_last;
	const char *what = serial ? "serial bytes" : "a frame";
	unsigned int nr, max = serial ? VP_FR_MAX_SERIAL : VP_FR_MAX_FRAME;
	uint8_t hdr[VP_FR_HDR + VP_FR_FRAME_HDR];
	int64_t deadline;
	uint64_t *lt;
	int r;

	if ((r = usable(v)))
		return r;
	if (!v->framed)
		return fail(v, EOPNOTSUPP, "%s need VMP_PROTO_FRAMED",
			    serial ? "serial bytes" : "frames");
	if (v->pending)
		return fail(v, EBUSY, "a grant is outstanding: %s go between a report "
			    "and the next grant", serial ? "serial bytes" : "frames");
	if (!len || len > max)
		return fail(v, EMSGSIZE, "%s of %zu bytes (1 to %u)", what, len, max);
	if (serial && !(v->want & VMP_FEAT_SERIAL))
		return fail(v, EOPNOTSUPP, "serial bytes need vmp_set_features(v, "
			    "VMP_FEAT_SERIAL) before the session's first grant or message");
	if ((r = send_hello(v)))
		return r;
	/* vmpace's HELLO reply names the ports: for serial bytes, wait for it */
	if ((r = serial ? await_hello(v) : fr_unsolicited(v)))
		return r;
	if (serial && !(v->features & VP_FR_FEAT_SERIAL))
		return fail(v, EOPNOTSUPP, "this vmpace has no serial ports (it did not grant "
			    "the SERIAL feature: too old?)");
	nr = serial ? v->nr_serial : v->nr_ports;
	if (port > UINT16_MAX || (!v->hello_pending && port >= nr))
		return fail(v, EINVAL, "no %s port %u (vmpace has %u: its %s options)",
			    serial ? "serial" : "network", port, nr,
			    serial ? "--serial" : "--net");
	if (port >= last->n) {
		lt = realloc(last->t, (port + 1) * sizeof(*lt));
		if (!lt)
			return fail(v, ENOMEM, "out of memory");
		memset(lt + last->n, 0, (port + 1 - last->n) * sizeof(*lt));
		last->t = lt;
		last->n = port + 1;
	}
	if (t < last->t[port])
		return fail(v, EINVAL, "%s for %llu ns on %s port %u after %s for %llu ns: "
			    "a port delivers in order", what, (unsigned long long)t,
			    serial ? "serial" : "network", port, serial ? "bytes" : "one",
			    (unsigned long long)last->t[port]);
	v->next_id++;
	vp_fr_encode(hdr, serial ? VP_FR_SERIAL_TO_GUEST : VP_FR_FRAME_TO_GUEST, 0, t, NULL, 0);
	vp_put_be32(hdr + 4, VP_FR_FRAME_HDR + len);
	vp_put_be32(hdr + VP_FR_HDR, v->next_id);
	vp_put_be16(hdr + VP_FR_HDR + 4, port);
	vp_put_be16(hdr + VP_FR_HDR + 6, 0);
	deadline = deadline_of(v->send_timeout_ms);
	r = send_all(v, hdr, sizeof(hdr), deadline);
	if (!r)
		r = send_all(v, data, len, deadline);
	if (r)
		return send_failed(v, r, what);
	last->t[port] = t;
	if (id)
		*id = v->next_id;
	return 0;
}

API int vmp_send_frame(struct vmp *v, unsigned int port, uint64_t t, const void *frame,
		       size_t len, uint32_t *id)
{
	return send_timed(v, false, port, t, frame, len, id);
}

API int vmp_send_serial(struct vmp *v, unsigned int port, uint64_t t, const void *bytes,
			size_t len, uint32_t *id)
{
	return send_timed(v, true, port, t, bytes, len, id);
}

API int vmp_grant_until(struct vmp *v, uint64_t t)
{
	int r;

	if ((r = usable(v)))
		return r;
	if (!v->framed)
		return fail(v, EOPNOTSUPP, "vmp_grant_until() needs VMP_PROTO_FRAMED");
	if (v->pending)
		return fail(v, EBUSY, "a grant is outstanding: vmp_await() its report first");
	if (t < v->now)
		return fail(v, ERANGE, "grant until %llu ns: the guest is already at %llu ns",
			    (unsigned long long)t, (unsigned long long)v->now);
	return fr_grant(v, t);
}

API uint64_t vmp_now(const struct vmp *v)
{
	return v->now;
}

API int vmp_grant(struct vmp *v, uint64_t grant)
{
	uint8_t msg[8];
	int size, r;

	if ((r = usable(v)))
		return r;
	if (v->pending)
		return fail(v, EBUSY, "a grant is outstanding: vmp_await() its report first");
	if (v->framed) {
		if (grant > UINT64_MAX - v->now)
			return fail(v, ERANGE, "grant %llu ns from %llu ns overflows",
				    (unsigned long long)grant, (unsigned long long)v->now);
		return fr_grant(v, v->now + grant);
	}
	size = vp_encode(v->dec.proto, grant, msg);
	if (size < 0)
		return fail(v, ERANGE, "grant %llu does not fit 32 bits of microseconds",
			    (unsigned long long)grant);
	if ((r = nothing_unsolicited(v)))
		return r;
	v->grant = grant;
	return send_grant(v, msg, size);
}

API int vmp_await(struct vmp *v, uint64_t *elapsed, int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);
	uint8_t buf[8];
	bool complete = false;
	uint64_t value = 0;
	int r, e;

	if ((r = usable(v)))
		return r;
	if (!v->pending)
		return fail(v, EALREADY, "no grant to await: vmp_grant() first");
	if (v->framed) {
		struct vp_fr_msg m;

		r = fr_read(v, deadline, timeout_ms, &m);
		if (r)
			return r;
		v->pending = false;
		if (m.t < v->grant) {
			v->over = true;
			return fail(v, EPROTO, "vmpace reported guest time %llu ns for a grant "
				    "until %llu ns", (unsigned long long)m.t,
				    (unsigned long long)v->grant);
		}
		if (elapsed)
			*elapsed = m.t - v->now;
		v->now = m.t;
		return 0;
	}
	while (!complete) {
		size_t want = vp_msg_size(v->dec.proto) - v->dec.len;
		ssize_t n;

		if ((r = wait_report(v, deadline, timeout_ms)))
			return r;
		n = recv(v->fd, buf, want, MSG_DONTWAIT);
		if (n == 0)
			return lost(v, EPIPE, vp_decoder_partial(&v->dec) ?
				    "vmpace closed the connection in the middle of a report" :
				    "vmpace closed the connection");
		if (n < 0) {
			char what[96];

			e = errno;
			if (e == EINTR || e == EAGAIN || e == EWOULDBLOCK)
				continue;
			snprintf(what, sizeof(what), "reading a report: %s", strerror(e));
			return lost(v, e == ECONNRESET ? EPIPE : e, what);
		}
		vp_decode(&v->dec, buf, n, &complete, &value);
	}
	v->pending = false;
	if (value < v->grant) {
		v->over = true;
		return fail(v, EPROTO, "vmpace reported %llu for a grant of %llu",
			    (unsigned long long)value, (unsigned long long)v->grant);
	}
	if (elapsed)
		*elapsed = value;
	v->now += value * vp_unit_ns(v->dec.proto);
	return 0;
}

API int vmp_quantum(struct vmp *v, uint64_t grant, uint64_t *elapsed, int timeout_ms)
{
	int r = vmp_grant(v, grant);

	return r ? r : vmp_await(v, elapsed, timeout_ms);
}

API int vmp_close(struct vmp *v, int timeout_ms, int *status)
{
	char how[128];
	int r;

	if (status)
		*status = -1;
	if (v->fd >= 0) {
		close(v->fd);
		v->fd = -1;
	}
	v->over = true;
	v->pending = false;
	if (!v->pid)
		return 0;
	r = reap(v, deadline_of(timeout_ms));
	if (r == -ECHILD)
		return fail(v, ECHILD, "vmpace (pid %d): its exit status was collected "
			    "elsewhere (SIGCHLD ignored or another waitpid())", (int)v->pid);
	if (r < 0)
		return fail(v, -r, "waiting for vmpace (pid %d): %s", (int)v->pid, strerror(-r));
	if (r == 0) {
		kill_child(v);
		if (reap(v, -1) != 1)
			return fail(v, ECHILD, "vmpace (pid %d) could not be reaped", (int)v->pid);
		if (status)
			*status = v->status;
		return fail(v, ETIMEDOUT, "vmpace (pid %d) did not exit within %d ms after "
			    "the session ended: killed", (int)v->pid, timeout_ms);
	}
	if (status)
		*status = v->status;
	describe_status(v->status, how, sizeof(how));
	snprintf(v->err, sizeof(v->err), "vmpace (pid %d) %s", (int)v->pid, how);
	return 0;
}

API void vmp_free(struct vmp *v)
{
	if (!v)
		return;
	if (v->fd >= 0 || (v->pid && !v->reaped))
		vmp_close(v, FREE_CLOSE_MS, NULL);
	if (v->pidfd >= 0)
		close(v->pidfd);
	free(v->ev_cur);
	while (v->evq) {
		struct ev_node *n = v->evq;

		v->evq = n->next;
		free(n);
	}
	free(v->net_last.t);
	free(v->serial_last.t);
	free(v);
}

API int vmp_fd(const struct vmp *v)
{
	return v->fd;
}

API pid_t vmp_pid(const struct vmp *v)
{
	return v->reaped ? 0 : v->pid;
}

API uint64_t vmp_unit_ns(const struct vmp *v)
{
	return vp_unit_ns(v->dec.proto);
}

API const char *vmp_errmsg(const struct vmp *v)
{
	return v ? v->err : "out of memory";
}

API const char *vmp_exit_text(int code)
{
	const char *t = vp_exit_text(code);

	return t ? t : "not an exit status of vmpace";
}
