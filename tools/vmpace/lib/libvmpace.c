// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libvmpace: the simulator's side of vmpace (see libvmpace.h, libvmpace(3)).
 *
 * Every call returns 0 or a negative errno and leaves a message in the
 * session; nothing here exits, aborts, or changes the process's signal
 * dispositions: SIGPIPE is avoided with MSG_NOSIGNAL, EINTR is retried with
 * the remaining timeout, and partial transfers are completed (a report cut by
 * a timeout is kept for the next vmp_await()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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

/* how long to wait for a vmpace that closed the connection to exit */
#define EXIT_GRACE_MS	2000
/* vmp_free() of an open session: vmpace's own --kill-timeout is 10 s */
#define FREE_CLOSE_MS	15000
/* pause between connection attempts while vmpace does not listen yet */
#define RETRY_MS	20

struct vmp {
	int fd;
	enum vmp_proto proto;
	struct vp_decoder dec;
	bool pending;		/* a grant was sent, its report not read */
	bool over;		/* the session ended or broke */
	uint64_t grant;
	pid_t pid;		/* spawned child, 0 if none or reaped */
	int pidfd;
	int status;		/* its wait status once reaped */
	bool reaped;
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
	return -err;
}

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* What is left of @timeout_ms started at @start (-1: for ever). */
static int remaining(int timeout_ms, int64_t start)
{
	int64_t left;

	if (timeout_ms < 0)
		return -1;
	left = timeout_ms - (now_ms() - start);
	return left > 0 ? (int)left : 0;
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
	v->proto = proto;
	vp_decoder_init(&v->dec, proto == VMP_PROTO_NS64 ? VP_PROTO_NS64 : VP_PROTO_US32);
	return v;
}

static int check_proto(struct vmp *v, enum vmp_proto proto)
{
	if (proto != VMP_PROTO_US32 && proto != VMP_PROTO_NS64) {
		v->over = true;
		return fail(v, EINVAL, "unknown protocol %d (VMP_PROTO_US32 or VMP_PROTO_NS64)",
			    (int)proto);
	}
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
 * Reap the child within @timeout_ms (-1: for ever): 1 if it was reaped (or
 * had been), 0 if it is still running, negative errno on errors.
 */
static int reap(struct vmp *v, int timeout_ms)
{
	int64_t start = now_ms();
	pid_t r;

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
		if (r == 0) {
			int left = remaining(timeout_ms, start);

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
	}
	v->reaped = true;
	if (v->pidfd >= 0) {
		close(v->pidfd);
		v->pidfd = -1;
	}
	return 1;
}

/* The session is over because the connection is: say how, as far as known. */
static int lost(struct vmp *v, int err, const char *what)
{
	char how[128];

	v->over = true;
	v->pending = false;
	if (v->pid && reap(v, EXIT_GRACE_MS) == 1) {
		describe_status(v->status, how, sizeof(how));
		return fail(v, err, "%s: vmpace (pid %d) %s", what, (int)v->pid, how);
	}
	if (v->pid)
		return fail(v, err, "%s (vmpace, pid %d, has not exited yet)", what, (int)v->pid);
	return fail(v, err, "%s", what);
}

/* Move @fd to a number above @min, close-on-exec; -errno on errors. */
static int fd_above(int fd, int min)
{
	int n;

	if (fd > min)
		return fd;
	n = fcntl(fd, F_DUPFD_CLOEXEC, min + 1);
	close(fd);
	return n < 0 ? -errno : n;
}

API int vmp_spawn(struct vmp **vp, enum vmp_proto proto, const char *const argv[],
		  const struct vmp_spawn_attr *attr)
{
	int child_fd = attr && attr->sync_fd ? attr->sync_fd : 3;
	unsigned int flags = attr ? attr->flags : 0;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	struct vmp *v = vmp_new(proto);
	sigset_t none, dfl;
	int sv[2], r;
	pid_t pid;

	*vp = v;
	if (!v)
		return -ENOMEM;
	if ((r = check_proto(v, proto)))
		return r;
	v->over = true;		/* until it started */
	if (!argv || !argv[0])
		return fail(v, EINVAL, "vmp_spawn: no command to run");
	if (child_fd < 3)
		return fail(v, EINVAL, "vmp_spawn: sync fd %d: it must be 3 or more "
			    "(0 to 2 are the child's standard streams)", child_fd);
	if (flags & ~(VMP_SPAWN_STDOUT | VMP_SPAWN_STDERR))
		return fail(v, EINVAL, "vmp_spawn: unknown flags %#x",
			    flags & ~(VMP_SPAWN_STDOUT | VMP_SPAWN_STDERR));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return fail(v, errno, "socketpair: %s", strerror(errno));
	/* neither end may sit on child_fd: dup2 to itself keeps close-on-exec */
	sv[0] = fd_above(sv[0], child_fd);
	sv[1] = fd_above(sv[1], child_fd);
	if (sv[0] < 0 || sv[1] < 0) {
		r = sv[0] < 0 ? sv[0] : sv[1];
		if (sv[0] >= 0)
			close(sv[0]);
		if (sv[1] >= 0)
			close(sv[1]);
		return fail(v, -r, "fcntl(F_DUPFD_CLOEXEC): %s", strerror(-r));
	}

	/* the child's end on child_fd, our end not at all; default SIGPIPE */
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	if ((r = posix_spawn_file_actions_init(&fa)))
		goto out_close;
	if ((r = posix_spawnattr_init(&sa))) {
		posix_spawn_file_actions_destroy(&fa);
		goto out_close;
	}
	r = posix_spawn_file_actions_adddup2(&fa, sv[1], child_fd);
	if (!r && (flags & VMP_SPAWN_STDOUT))
		r = posix_spawn_file_actions_adddup2(&fa, attr->stdout_fd, 1);
	if (!r && (flags & VMP_SPAWN_STDERR))
		r = posix_spawn_file_actions_adddup2(&fa, attr->stderr_fd, 2);
	if (!r)
		r = posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!r)
		r = posix_spawnattr_setsigmask(&sa, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(&sa, &dfl);
	if (!r)
		r = posix_spawnp(&pid, argv[0], &fa, &sa, (char *const *)argv, environ);
	posix_spawnattr_destroy(&sa);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		goto out_close;
	close(sv[1]);
	v->fd = sv[0];
	v->pid = pid;
	v->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	v->over = false;
	return 0;

out_close:
	close(sv[0]);
	close(sv[1]);
	return fail(v, r, "cannot run %s: %s", argv[0], strerror(r));
}

API int vmp_from_fd(struct vmp **vp, enum vmp_proto proto, int fd)
{
	struct vmp *v = vmp_new(proto);
	socklen_t len = sizeof(int);
	int type, r;

	*vp = v;
	if (!v)
		return -ENOMEM;
	if ((r = check_proto(v, proto)))
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len)) {
		v->over = true;
		return fail(v, errno, "fd %d: %s (a connected stream socket is needed)",
			    fd, strerror(errno));
	}
	if (type != SOCK_STREAM) {
		v->over = true;
		return fail(v, EPROTOTYPE, "fd %d is not a stream socket", fd);
	}
	v->fd = fd;
	return 0;
}

/* One attempt at "unix:PATH": a socket fd, or -errno with the message set. */
static int connect_unix(struct vmp *v, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, e;

	if (strlen(path) >= sizeof(a.sun_path))
		return fail(v, ENAMETOOLONG, "unix:%s: the path is too long", path);
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(v, errno, "socket: %s", strerror(errno));
	if (!connect(fd, (struct sockaddr *)&a, sizeof(a)))
		return fd;
	e = errno;
	close(fd);
	return fail(v, e, "connect to unix:%s: %s", path, strerror(e));
}

/* One attempt at "tcp:HOST:PORT", each address in turn, bounded by @left ms. */
static int connect_tcp(struct vmp *v, const char *hostport, int left)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	size_t hl;
	int fd = -1, e = ECONNREFUSED, r, one = 1;

	if (!colon || !colon[1])
		return fail(v, EINVAL, "tcp:%s: HOST:PORT expected", hostport);
	hl = colon - hostport;
	if (hl >= 2 && hostport[0] == '[' && hostport[hl - 1] == ']') {
		hostport++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return fail(v, ENAMETOOLONG, "tcp:%s: the host name is too long", hostport);
	memcpy(host, hostport, hl);
	host[hl] = '\0';
	r = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &res);
	if (r)
		return fail(v, r == EAI_SYSTEM ? errno : EHOSTUNREACH, "tcp:%s: %s",
			    hostport, r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
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
		while ((r = poll(&p, 1, left)) < 0 && errno == EINTR)
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
	return fail(v, e, "connect to tcp:%s: %s", hostport, strerror(e));
}

API int vmp_connect(struct vmp **vp, enum vmp_proto proto, const char *addr,
		    int timeout_ms)
{
	struct vmp *v = vmp_new(proto);
	int64_t start = now_ms();
	int fd, left, r;

	*vp = v;
	if (!v)
		return -ENOMEM;
	if ((r = check_proto(v, proto)))
		return r;
	v->over = true;
	if (!addr || (strncmp(addr, "unix:", 5) && strncmp(addr, "tcp:", 4)))
		return fail(v, EINVAL, "address \"%s\": unix:PATH or tcp:HOST:PORT expected",
			    addr ? addr : "(null)");
	for (;;) {
		left = remaining(timeout_ms, start);
		if (!strncmp(addr, "unix:", 5))
			fd = connect_unix(v, addr + 5);
		else
			fd = connect_tcp(v, addr + 4, left);
		if (fd >= 0)
			break;
		/* not listening yet: retry until the timeout */
		if ((fd != -ECONNREFUSED && fd != -ENOENT) || !(left = remaining(timeout_ms, start)))
			return fd;
		pause_ms(left < 0 || left > RETRY_MS ? RETRY_MS : left);
	}
	v->fd = fd;
	v->over = false;
	return 0;
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

	if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	n = recv(v->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0) {
		v->over = true;
		return fail(v, EPROTO, "vmpace sent data without a grant (0x%02x...)", b);
	}
	if (n == 0)
		return lost(v, EPIPE, "vmpace closed the connection");
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	return lost(v, errno == ECONNRESET ? EPIPE : errno, "vmpace's connection failed");
}

API int vmp_grant(struct vmp *v, uint64_t grant)
{
	uint8_t msg[8];
	size_t done = 0;
	int size, r;

	if ((r = usable(v)))
		return r;
	if (v->pending)
		return fail(v, EBUSY, "a grant is outstanding: vmp_await() its report first");
	if ((r = nothing_unsolicited(v)))
		return r;
	size = vp_encode(v->dec.proto, grant, msg);
	if (size < 0)
		return fail(v, ERANGE, "grant %llu does not fit 32 bits of microseconds",
			    (unsigned long long)grant);
	while (done < (size_t)size) {
		ssize_t n = send(v->fd, msg + done, size - done, MSG_NOSIGNAL);

		if (n >= 0) {
			done += n;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd p = { .fd = v->fd, .events = POLLOUT };

			if (poll(&p, 1, -1) < 0 && errno != EINTR)
				return lost(v, errno, "poll");
		} else if (errno != EINTR) {
			char what[96];

			snprintf(what, sizeof(what), "sending a grant: %s", strerror(errno));
			return lost(v, errno == ECONNRESET ? EPIPE : errno, what);
		}
	}
	v->grant = grant;
	v->pending = true;
	return 0;
}

API int vmp_await(struct vmp *v, uint64_t *elapsed, int timeout_ms)
{
	int64_t start = now_ms();
	uint8_t buf[8];
	bool complete = false;
	uint64_t value = 0;
	int r;

	if ((r = usable(v)))
		return r;
	if (!v->pending)
		return fail(v, EALREADY, "no grant to await: vmp_grant() first");
	while (!complete) {
		struct pollfd p = { .fd = v->fd, .events = POLLIN };
		size_t want = vp_msg_size(v->dec.proto) - v->dec.len;
		ssize_t n;

		r = poll(&p, 1, remaining(timeout_ms, start));
		if (r < 0 && errno != EINTR)
			return lost(v, errno, "poll");
		if (r == 0)
			return fail(v, ETIMEDOUT, "no report within %d ms (still waiting for it)",
				    timeout_ms);
		if (r < 0)
			continue;
		n = recv(v->fd, buf, want, MSG_DONTWAIT);
		if (n == 0)
			return lost(v, EPIPE, vp_decoder_partial(&v->dec) ?
				    "vmpace closed the connection in the middle of a report" :
				    "vmpace closed the connection");
		if (n < 0) {
			char what[96];

			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			snprintf(what, sizeof(what), "reading a report: %s", strerror(errno));
			return lost(v, errno == ECONNRESET ? EPIPE : errno, what);
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
	r = reap(v, timeout_ms);
	if (r < 0)
		return fail(v, -r, "waiting for vmpace (pid %d): %s", (int)v->pid, strerror(-r));
	if (r == 0) {
		kill(v->pid, SIGKILL);
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
	free(v);
}

API int vmp_fd(const struct vmp *v)
{
	return v->fd;
}

API pid_t vmp_pid(const struct vmp *v)
{
	return v->pid;
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
