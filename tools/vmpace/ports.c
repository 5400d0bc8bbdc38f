// SPDX-License-Identifier: GPL-2.0
/*
 * The timed I/O ports of a QEMU that vmpace attaches to ("vmpace --pid PID
 * --proto framed --net ID --serial ID --qmp PATH").  QEMU has made them
 * itself, from its command line, which vmpace reads (/proc/PID/cmdline):
 *
 *   -netdev dgram,id=ID,local.type=unix,local.path=Q,remote.type=unix,remote.path=V
 *	QEMU receives frames on Q and sends them to V: vmpace binds V and
 *	sends to Q.  AF_UNIX charges a datagram to its sender until it is
 *	read, so vmpace knows when QEMU took a frame (SIOCOUTQ), as in
 *	"vmpace run".
 *   -chardev socket,id=ID,path=P,server=on,wait=off
 *	vmpace connects to P, then borrows QEMU's end of that connection
 *	(pidfd_getfd, as it borrows the vCPUs): the bytes QEMU has not read
 *	yet are that end's SIOCINQ, exact, as in "vmpace run".
 *   -qmp unix:PATH,server=on,wait=off   (vmpace --qmp PATH)
 *	a monitor for vmpace alone: one answered command is a pass of QEMU's
 *	main loop, after which what vmpace handed over is in the device.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qmp.h"
#include "vmpace.h"

/*
 * How long QEMU's monitor may take to answer vmpace's first commands (its
 * greeting, capabilities, status), and QEMU to accept vmpace's connection
 * to a serial port: one that another client holds never does.  Longer
 * than --io-timeout, as an emulated machine can be slow.
 */
#define QMP_ANSWER_MS	10000

/*
 * How long QEMU's main loop may take to answer vmpace's monitor or accept
 * its connection: 10 s, or --io-timeout if longer.
 */
static int qemu_wait_ms(const struct vp_opts *o)
{
	return QMP_ANSWER_MS > o->io_timeout_ms ? QMP_ANSWER_MS : o->io_timeout_ms;
}

#define NET_FORM	"-netdev dgram,id=%s,local.type=unix,local.path=Q,remote.type=unix," \
			"remote.path=V (QEMU receives on Q and sends to V; vmpace binds V)"
#define SERIAL_FORM	"-chardev socket,id=%s,path=P,server=on,wait=off"

/*
 * A path of QEMU's as vmpace reaches it: a relative one is relative to
 * QEMU's working directory.  Fills @a; -ENAMETOOLONG if it does not fit.
 */
static int qemu_addr(pid_t pid, const char *path, struct sockaddr_un *a)
{
	char cwd[PATH_MAX], link[64];
	ssize_t n;
	int w;

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (path[0] == '/') {
		w = snprintf(a->sun_path, sizeof(a->sun_path), "%s", path);
	} else {
		snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
		n = readlink(link, cwd, sizeof(cwd) - 1);
		if (n < 0)
			return -errno;
		cwd[n] = '\0';
		w = snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", cwd, path);
	}
	return w < 0 || (size_t)w >= sizeof(a->sun_path) ? -ENAMETOOLONG : 0;
}

/*
 * Binds datagram socket @fd to @a.  A socket file there that nobody
 * receives on (left by a vmpace that was killed) is replaced; one in use
 * is -EADDRINUSE, another kind of file -EEXIST.  0 or -errno.
 */
static int bind_dgram(int fd, const struct sockaddr_un *a)
{
	struct stat st;
	int probe, e;

	if (!bind(fd, (const struct sockaddr *)a, sizeof(*a)))
		return 0;
	if (errno != EADDRINUSE)
		return -errno;
	if (lstat(a->sun_path, &st))
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;		/* not a socket: not vmpace's to remove */
	probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (probe < 0)
		return -errno;
	e = connect(probe, (const struct sockaddr *)a, sizeof(*a)) ? errno : 0;
	close(probe);
	if (e != ECONNREFUSED)
		return -EADDRINUSE;
	if (unlink(a->sun_path) && errno != ENOENT)
		return -errno;
	return bind(fd, (const struct sockaddr *)a, sizeof(*a)) ? -errno : 0;
}

/*
 * A stream socket connected to @a, which must be process @o->pid's
 * listener (SO_PEERCRED).  connect() gives up after @timeout_ms: a listener
 * whose queue is full (QEMU accepts one client per socket) would block it
 * for ever.  Returns the socket, or minus the exit status after saying why
 * (as @what, with @hint if it cannot connect): @bad for a socket that is not
 * QEMU's or cannot be reached, VP_EXIT_ERROR for a full queue (a busy QEMU,
 * not a mistake).
 */
static int connect_qemu(const struct vp_opts *o, const struct sockaddr_un *a, int timeout_ms,
			const char *what, const char *hint, int bad)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	struct ucred cred = { .pid = -1 };
	socklen_t len = sizeof(cred);
	int fd, e;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		vp_err("socket: %s", strerror(errno));
		return -VP_EXIT_ERROR;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    connect(fd, (const struct sockaddr *)a, sizeof(*a))) {
		e = errno;
		vp_err("%s: cannot connect to QEMU's %s: %s%s", what, a->sun_path,
		       e == EAGAIN ? "its queue is full (other clients wait for it)" : strerror(e),
		       hint);
		close(fd);
		return e == EAGAIN ? -VP_EXIT_ERROR : -bad;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.pid != o->pid) {
		vp_err("%s: the socket %s is not process %d's (it listens in process %d)",
		       what, a->sun_path, (int)o->pid, (int)cred.pid);
		close(fd);
		return -bad;
	}
	return fd;
}

/*
 * Where vmpace reaches QEMU's socket @path, into @a: a relative path is
 * relative to QEMU's working directory, unless QEMU changed that after it
 * made its sockets (-daemonize).  0, or VP_EXIT_USAGE (said why).
 */
static int qemu_path(const struct vp_opts *o, char **argv, const char *opt, const char *id,
		     const char *path, struct sockaddr_un *a)
{
	int r;

	if (path[0] != '/' && vp_qemu_has_arg(argv, "-daemonize")) {
		vp_err("%s %s: QEMU's socket path %s is relative and QEMU was started with "
		       "-daemonize (it changes directory after it made its sockets): give it "
		       "absolute paths", opt, id, path);
		return VP_EXIT_USAGE;
	}
	r = qemu_addr(o->pid, path, a);
	if (r) {
		vp_err("%s %s: QEMU's socket path %s: %s", opt, id, path, strerror(-r));
		return VP_EXIT_USAGE;
	}
	return 0;
}

/*
 * A QEMU in another root (-chroot, -run-with chroot=) names its sockets
 * by paths vmpace cannot follow.  0, or VP_EXIT_USAGE (said why).
 */
static int root_ok(char **argv)
{
	char v[PATH_MAX];	/* any value: only whether chroot= is given counts */
	int i;

	for (i = 1; argv[i]; i++) {
		if ((!strcmp(argv[i], "-chroot") || !strcmp(argv[i], "--chroot")) ||
		    ((!strcmp(argv[i], "-run-with") || !strcmp(argv[i], "--run-with")) &&
		     argv[i + 1] && vp_qemu_opt(argv[i + 1], "chroot", v, sizeof(v)))) {
			vp_err("QEMU runs in another root directory (%s): vmpace cannot reach "
			       "its sockets", argv[i]);
			return VP_EXIT_USAGE;
		}
	}
	return 0;
}

static int attach_net(struct vp_opts *o, int k, char **argv)
{
	const char *id = o->net_id[k], *opts = vp_qemu_find(argv, "-netdev", id);
	char type[16], lt[16], rt[16], lp[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char rp[sizeof(lp)];
	struct sockaddr_un q, v;
	struct stat st;
	int fd, r;

	if (!opts) {
		vp_err("--net %s: QEMU's command line has no -netdev with id=%s; vmpace "
		       "attaches to " NET_FORM, id, id, id);
		return VP_EXIT_USAGE;
	}
	if (!vp_qemu_opt(opts, "type", type, sizeof(type)) || strcmp(type, "dgram") ||
	    !vp_qemu_opt(opts, "local.type", lt, sizeof(lt)) || strcmp(lt, "unix") ||
	    !vp_qemu_opt(opts, "remote.type", rt, sizeof(rt)) || strcmp(rt, "unix") ||
	    !vp_qemu_opt(opts, "local.path", lp, sizeof(lp)) ||
	    !vp_qemu_opt(opts, "remote.path", rp, sizeof(rp)) ||
	    (vp_qemu_opt(opts, "local.abstract", type, sizeof(type)) && vp_qemu_on(type)) ||
	    (vp_qemu_opt(opts, "remote.abstract", type, sizeof(type)) && vp_qemu_on(type))) {
		vp_err("--net %s: QEMU's -netdev %s is not one vmpace can attach to; it "
		       "needs " NET_FORM, id, opts, id);
		return VP_EXIT_USAGE;
	}
	if (qemu_path(o, argv, "--net", id, lp, &q) || qemu_path(o, argv, "--net", id, rp, &v))
		return VP_EXIT_USAGE;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		vp_err("socket: %s", strerror(errno));
		return VP_EXIT_ERROR;
	}
	r = bind_dgram(fd, &v);
	if (r) {
		vp_err("--net %s: cannot bind %s, where QEMU sends its frames: %s", id,
		       v.sun_path, r == -EADDRINUSE ? "in use (by another vmpace?)" :
		       r == -EEXIST ? "a file that is not a socket is there" : strerror(-r));
		close(fd);
		return VP_EXIT_ERROR;
	}
	o->net_bound[k] = strdup(v.sun_path);
	if (!o->net_bound[k] || lstat(v.sun_path, &st)) {
		unlink(v.sun_path);
		close(fd);
		free(o->net_bound[k]);
		o->net_bound[k] = NULL;
		vp_err("--net %s: %s", id, errno == ENOMEM ? "out of memory" : strerror(errno));
		return VP_EXIT_ERROR;
	}
	/* the file to remove at the end: this one, not one put there since */
	o->net_bound_dev[k] = st.st_dev;
	o->net_bound_ino[k] = st.st_ino;
	o->net_fd[k] = fd;
	if (connect(fd, (const struct sockaddr *)&q, sizeof(q))) {
		vp_err("--net %s: cannot reach QEMU's socket %s: %s", id, q.sun_path,
		       strerror(errno));
		return VP_EXIT_ERROR;
	}
	vp_info("--net %s: QEMU's %s, vmpace's %s", id, q.sun_path, v.sun_path);
	return VP_EXIT_OK;
}

static bool getopt_int(int fd, int opt, int want)
{
	socklen_t len = sizeof(int);
	int v;

	return !getsockopt(fd, SOL_SOCKET, opt, &v, &len) && v == want;
}

/*
 * QEMU's end of vmpace's connection to its socket at @path: a connected
 * stream socket of QEMU's named @path whose peer is this process.  Waits
 * up to @timeout_ms for QEMU to accept; returns a borrowed fd or -errno.
 */
static int borrow_accepted(const struct vp_vm *vm, const char *path, int timeout_ms)
{
	struct timespec t0, now, pause = { 0, 10 * 1000 * 1000 };
	char dir[64], target[64];
	struct sockaddr_un a;
	struct ucred cred;
	struct dirent *de;
	socklen_t len;
	DIR *d;
	int fd;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)vm->pid);
	for (;;) {
		d = opendir(dir);
		if (!d)
			return -errno;
		while ((de = readdir(d))) {
			ssize_t n;

			n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
			if (n < 8 || strncmp(target, "socket:", 7))
				continue;
			fd = syscall(SYS_pidfd_getfd, vm->pidfd, atoi(de->d_name), 0);
			if (fd < 0)
				continue;
			len = sizeof(cred);
			if (getopt_int(fd, SO_DOMAIN, AF_UNIX) && getopt_int(fd, SO_TYPE, SOCK_STREAM) &&
			    getopt_int(fd, SO_ACCEPTCONN, 0) &&
			    !getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) &&
			    cred.pid == getpid()) {
				len = sizeof(a);
				memset(&a, 0, sizeof(a));
				if (!getsockname(fd, (struct sockaddr *)&a, &len) &&
				    !strncmp(a.sun_path, path, sizeof(a.sun_path))) {
					closedir(d);
					return fd;
				}
			}
			close(fd);
		}
		closedir(d);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >=
		    timeout_ms)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
}

static int attach_serial(struct vp_opts *o, int k, char **argv, const struct vp_vm *vm)
{
	const char *id = o->serial_id[k], *opts = vp_qemu_find(argv, "-chardev", id);
	char type[16], path[sizeof(((struct sockaddr_un *)0)->sun_path)], v[16];
	/* protocols QEMU would speak on the socket besides the bytes; a name
	 * in the abstract namespace */
	static const char *const no[] = { "telnet", "tn3270", "websocket", "abstract" };
	char what[160];	/* for messages: a long id is cut short */
	struct sockaddr_un a;
	size_t i;
	int fd, r;

	if (!opts) {
		vp_err("--serial %s: QEMU's command line has no -chardev with id=%s; vmpace "
		       "attaches to " SERIAL_FORM, id, id, id);
		return VP_EXIT_USAGE;
	}
	r = !vp_qemu_opt(opts, "type", type, sizeof(type)) || strcmp(type, "socket") ||
	    !vp_qemu_opt(opts, "path", path, sizeof(path)) ||
	    !vp_qemu_opt(opts, "server", v, sizeof(v)) || !vp_qemu_on(v);
	for (i = 0; !r && i < sizeof(no) / sizeof(no[0]); i++)
		r = vp_qemu_opt(opts, no[i], v, sizeof(v)) && vp_qemu_on(v);
	if (r) {
		vp_err("--serial %s: QEMU's -chardev %s is not one vmpace can attach to; it "
		       "needs a plain Unix socket server: " SERIAL_FORM, id, opts, id);
		return VP_EXIT_USAGE;
	}
	if (qemu_path(o, argv, "--serial", id, path, &a))
		return VP_EXIT_USAGE;
	snprintf(what, sizeof(what), "--serial %s", id);
	fd = connect_qemu(o, &a, o->io_timeout_ms, what, "", VP_EXIT_ERROR);
	if (fd < 0)
		return -fd;
	o->serial_fd[k] = fd;
	/* QEMU's name for the socket is the path as it gave it */
	r = borrow_accepted(vm, path, qemu_wait_ms(o));
	if (r == -ETIMEDOUT) {
		vp_err("--serial %s: QEMU has not accepted vmpace's connection to %s within %d "
		       "ms: does another client hold it? (QEMU serves one at a time)", id,
		       a.sun_path, qemu_wait_ms(o));
		return VP_EXIT_ERROR;
	}
	if (r < 0) {
		vp_err("--serial %s: QEMU has not accepted vmpace's connection to %s: %s", id,
		       a.sun_path, strerror(-r));
		return VP_EXIT_ERROR;
	}
	o->serial_qemu_fd[k] = r;
	vp_info("--serial %s: connected to QEMU's %s", id, a.sun_path);
	return VP_EXIT_OK;
}

static int open_qmp(struct vp_opts *o, const struct vp_vm *vm, struct vp_qmp *qmp)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char what[sizeof(a.sun_path) + 8], hint[sizeof(a.sun_path) + 64];
	int ms = qemu_wait_ms(o);
	int fd, r;

	if (strlen(o->qmp_path) >= sizeof(a.sun_path)) {
		vp_err("--qmp %s: path too long", o->qmp_path);
		return VP_EXIT_USAGE;
	}
	strcpy(a.sun_path, o->qmp_path);
	snprintf(what, sizeof(what), "--qmp %s", o->qmp_path);
	snprintf(hint, sizeof(hint), " (a monitor of QEMU's: -qmp unix:%s,server=on,wait=off)",
		 o->qmp_path);
	fd = connect_qemu(o, &a, ms, what, hint, VP_EXIT_USAGE);
	if (fd < 0)
		return -fd;
	r = vp_qmp_open(qmp, fd, vm->pidfd, -1, ms);
	if (r) {
		if (r == -ETIMEDOUT)
			vp_err("--qmp %s: give vmpace a monitor of its own", o->qmp_path);
		close(fd);
		qmp->fd = -1;
		return r == -ESRCH ? VP_EXIT_VMM_DIED : VP_EXIT_ERROR;
	}
	return VP_EXIT_OK;
}

int vp_attach_ports(struct vp_opts *o, const struct vp_vm *vm, struct vp_qmp *qmp)
{
	char **argv;
	int k, r = VP_EXIT_OK;

	qmp->fd = -1;
	if (!o->nr_net && !o->nr_serial)
		return o->qmp_path ? open_qmp(o, vm, qmp) : VP_EXIT_OK;
	argv = vp_qemu_cmdline(vm->pid);
	if (!argv) {
		vp_err("cannot read the command line of process %d: %s", (int)vm->pid,
		       strerror(errno));
		return VP_EXIT_ERROR;
	}
	r = root_ok(argv);
	for (k = 0; !r && k < o->nr_net; k++) {
		r = attach_net(o, k, argv);
		if (!r && !vp_qemu_uses_id(argv, "netdev", o->net_id[k]))
			vp_err("warning: --net %s: no device on QEMU's command line uses it "
			       "(netdev=%s): frames for it will not be taken", o->net_id[k],
			       o->net_id[k]);
	}
	for (k = 0; !r && k < o->nr_serial; k++) {
		r = attach_serial(o, k, argv, vm);
		if (!r && !vp_qemu_uses_id(argv, "chardev", o->serial_id[k]))
			vp_err("warning: --serial %s: no device on QEMU's command line uses it "
			       "(-serial chardev:%s, chardev=%s): bytes for it will not be taken",
			       o->serial_id[k], o->serial_id[k], o->serial_id[k]);
	}
	free(argv);
	/* last: a mistake on the command line is said before any wait for it */
	return r ?: open_qmp(o, vm, qmp);
}

void vp_release_ports(struct vp_opts *o)
{
	int k;

	struct stat st;

	for (k = 0; k < VP_MAX_NET; k++) {
		if (o->net_bound[k] && !lstat(o->net_bound[k], &st) && S_ISSOCK(st.st_mode) &&
		    st.st_dev == o->net_bound_dev[k] && st.st_ino == o->net_bound_ino[k])
			unlink(o->net_bound[k]);
		free(o->net_bound[k]);
		o->net_bound[k] = NULL;
	}
}

void vp_drain_ports(struct vp_opts *o)
{
	char buf[65536];
	long frames = 0, bytes = 0;
	ssize_t n;
	int k;

	for (k = 0; k < o->nr_net; k++)
		while (o->net_fd[k] >= 0 && recv(o->net_fd[k], buf, sizeof(buf), MSG_DONTWAIT) >= 0)
			frames++;
	for (k = 0; k < o->nr_serial; k++)
		while (o->serial_fd[k] >= 0 &&
		       (n = recv(o->serial_fd[k], buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			bytes += n;
	if (frames || bytes)
		vp_info("discarded what QEMU sent before the session: %ld frames, %ld serial "
			"bytes", frames, bytes);
}
