// SPDX-License-Identifier: GPL-2.0
/*
 * simclient: protocol and fault scenarios for vmpace end-to-end tests.
 *
 * Starts a stock QEMU (the command line after "--"), waits for its vCPUs,
 * attaches "vmpace --pid" to it with a socketpair on fd 3, plays SCENARIO as
 * the simulator, and checks what became of vmpace and of the VMM.
 *
 * usage: simclient --vmpace PATH [--proto us32|ns64|framed] [--transport T] [--hook CMD]
 *                  SCENARIO -- QEMU...
 * T: fd (default, a socketpair on fd 3), tcp-listen, tcp-connect, unix-listen,
 *    unix-connect (vmpace listens, or connects to simclient, on 127.0.0.1 or
 *    a socket under /tmp)
 * CMD runs (system()) at points of the "monitor" scenario with HOOK=frozen or
 * released, QEMU_PID, VMPACE_PID, QUANTA, NR_VCPUS and STATE_JSON (the
 * KVM_GET_PACE_STATE of every vCPU, read by simclient) in the environment.
 * The "stopcont" scenario wants the test guest (guest/qemu-cmd.sh) with
 * "-qmp unix:QMP,server=on,wait=off" and its debug console on the FIFO
 * CLOCK (simclient makes it): --qmp QMP --clock CLOCK.
 * Prints "ok: ..." lines and exits 0 if every check held, 1 otherwise.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "clock-bounds.h"
#include "proto.h"
#include "vcpu-fds.h"

static const char *vmpace = "vmpace";
static const char *transport = "fd";
static const char *hook, *qmp_path, *clock_path, *vmpace_log;
#define TCP_PORT "47913"
#define UNIX_PATH "/tmp/simclient.sock"
/* tcp-netns: the simulator in this network namespace (e2e.sh sets it up) */
#define NETNS_SIM "/run/netns/vmpace-sim"
#define NETNS_SIM_ADDR "10.99.0.2"
static bool ns64, run_mode, small_sndbuf, ctrl_c_group;
/* --proto framed: grants and reports as framed messages (vmpace-proto(7)) */
static bool framed, no_hello;
static const char *proto_name = "us32";
static uint64_t fr_now;		/* guest ns reported so far */
static unsigned int fr_ports;	/* network ports, from vmpace's HELLO reply */
static unsigned int fr_serial;	/* serial ports, from it */
static uint32_t fr_features;	/* that the HELLO asks for */
static struct vp_fr_decoder fr_dec;
static const char *wrapper_path = "vmpace-qemu";
static pid_t qemu, pacer;
static int sock, failures;

#define CHECK(cond, ...) do {						\
	if (cond) {							\
		printf("ok: " __VA_ARGS__);				\
	} else {							\
		printf("FAILED: " __VA_ARGS__);				\
		failures++;						\
	}								\
	printf("\n");							\
} while (0)

static void die(const char *what)
{
	fprintf(stderr, "simclient: %s: %s\n", what, strerror(errno));
	if (qemu > 0)
		kill(qemu, SIGKILL);
	if (pacer > 0)
		kill(pacer, SIGKILL);
	exit(2);
}

/* The vCPU fds of @pid (the same finder as vmpace's), borrowed if @out. */
static int vcpu_fds_ids(pid_t pid, int *out, int *ids, int max)
{
	int fds[256], idv[256], n, i, pidfd;

	if (!out)
		return vp_for_each_vcpu_fd(pid, NULL, NULL);
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -1;
	n = vp_borrow_vcpu_fds(pid, pidfd, fds, idv, 256);
	close(pidfd);
	for (i = 0; i < n; i++) {
		if (i < max) {
			out[i] = fds[i];
			if (ids)
				ids[i] = idv[i];
		} else {
			close(fds[i]);
		}
	}
	return n < max ? n : max;
}

static int vcpu_fds(pid_t pid, int *out, int max)
{
	return vcpu_fds_ids(pid, out, NULL, max);
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000ull + t.tv_nsec / 1000000;
}

static bool alive(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, WNOHANG) == pid)
		return false;
	return kill(pid, 0) == 0;
}

/* Wait for a child to exit, at most @ms; its exit status or -1. */
static int wait_exit(pid_t pid, int ms)
{
	uint64_t end = now_ms() + ms;
	int status;

	while (now_ms() < end) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		poll(NULL, 0, 10);
	}
	return -1;
}

/* Waits up to @ms for any process (not only a child) to be gone. */
static bool wait_exit_any(pid_t pid, int ms)
{
	uint64_t end = now_ms() + ms;
	int status;

	while (now_ms() < end) {
		if (waitpid(pid, &status, WNOHANG) == pid || kill(pid, 0))
			return true;
		poll(NULL, 0, 10);
	}
	return false;
}

static void fr_send(uint16_t type, uint64_t t, const void *pl, uint32_t len)
{
	uint8_t msg[VP_FR_HDR + VP_FR_MAX_PAYLOAD];
	size_t n = vp_fr_encode(msg, type, 0, t, pl, len);

	if (write(sock, msg, n) != (ssize_t)n)
		die("write a framed message");
}

/* One framed message from vmpace (byte by byte when @bytewise); false at EOF. */
static bool fr_read(struct vp_fr_msg *m, bool bytewise)
{
	uint8_t b[VP_FR_HDR + VP_FR_MAX_PAYLOAD];
	bool done = false;
	ssize_t n;

	while (!done) {
		n = read(sock, b, bytewise ? 1 : vp_fr_want(&fr_dec));
		/* vmpace closed with our bytes unread: a reset */
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return false;
		if (n < 0)
			die("read a framed message");
		if (vp_fr_decode(&fr_dec, b, n, &done, m) < 0) {
			fprintf(stderr, "simclient: %s\n", fr_dec.err);
			die("decode a framed message");
		}
	}
	return true;
}

/* The opening and HELLO (versions @vmin to @vmax), and vmpace's reply. */
static void fr_send_hello(uint32_t vmin, uint32_t vmax)
{
	uint8_t opening[VP_FR_HDR] = { 0 }, pl[VP_FR_HELLO_LEN] = { 0 };

	if (write(sock, opening, sizeof(opening)) != sizeof(opening))
		die("write the opening");
	vp_put_be32(pl, vmin);
	vp_put_be32(pl + 4, vmax);
	vp_put_be32(pl + 8, fr_features);
	fr_send(VP_FR_HELLO, 0, pl, sizeof(pl));
}

static void fr_hello(void)
{
	struct vp_fr_msg m;

	vp_fr_decoder_init(&fr_dec, VP_FR_FROM_VMPACE);
	fr_now = 0;
	fr_send_hello(1, 1);
	/* the features asked for that vmpace knows are granted */
	if (!fr_read(&m, false) || m.type != VP_FR_HELLO_REPLY || vp_get_be32(m.payload) != 1 ||
	    vp_get_be32(m.payload + 4) != (fr_features & VP_FR_FEATURES))
		die("vmpace's HELLO reply");
	fr_ports = vp_get_be16(m.payload + 8);
	fr_serial = vp_get_be16(m.payload + 10);
}

static void send_grant(uint64_t v)
{
	uint64_t be64 = htobe64(v);
	uint32_t be32 = htonl((uint32_t)v);

	if (framed)
		fr_send(VP_FR_GRANT, fr_now + v, NULL, 0);
	else if (ns64 ? write(sock, &be64, 8) != 8 : write(sock, &be32, 4) != 4)
		die("write grant");
}

/* Read one report, byte by byte when @bytewise (partial reads). */
static uint64_t read_report(bool bytewise)
{
	size_t size = ns64 ? 8 : 4, got = 0;
	uint8_t buf[8];
	uint64_t v = 0;
	ssize_t n;

	if (framed) {
		struct vp_fr_msg m;

		if (!fr_read(&m, bytewise))
			die("read report: end of file");
		if (m.type == VP_FR_ERROR) {
			fprintf(stderr, "simclient: vmpace: %.*s\n", (int)m.len - 8,
				(const char *)m.payload + 8);
			die("read report: an ERROR");
		}
		if (m.type != VP_FR_REPORT || m.t < fr_now)
			die("read report: not a REPORT, or before the last one");
		v = m.t - fr_now;
		fr_now = m.t;
		return v;
	}
	while (got < size) {
		n = read(sock, buf + got, bytewise ? 1 : size - got);
		if (n <= 0)
			die("read report");
		got += n;
	}
	for (got = 0; got < size; got++)
		v = v << 8 | buf[got];
	return v;
}

/* The guest's vCPUs: not paced any more, and guest time moving. */
static void check_released(void)
{
	struct kvm_pace_state a, b;
	int fd[1], i;

	if (vcpu_fds(qemu, fd, 1) != 1 || fd[0] < 0)
		die("borrow a vCPU fd");
	ioctl(fd[0], KVM_GET_PACE_STATE, &a);
	/* released, it moves on by itself: give it up to 10 s */
	for (i = 0; i < 1000; i++) {
		ioctl(fd[0], KVM_GET_PACE_STATE, &b);
		if (b.guest_tsc > a.guest_tsc)
			break;
		poll(NULL, 0, 10);
	}
	CHECK(!(b.state & (KVM_PACE_STATE_ARMED | KVM_PACE_STATE_HELD)),
	      "the guest is released (pacing state 0x%x)", b.state);
	CHECK(b.guest_tsc > a.guest_tsc, "guest time runs free again (%llu -> %llu)",
	      (unsigned long long)a.guest_tsc, (unsigned long long)b.guest_tsc);
	close(fd[0]);
}

/* The first child of @parent, 0 if none yet. */
static pid_t child_of(pid_t parent)
{
	char path[64];
	int child = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", parent, parent);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%d", &child) != 1)
			child = 0;
		fclose(f);
	}
	return child;
}

/* vmpace's stderr (and so its QEMU's) goes to --vmpace-log, if given. */
static void redirect_log(void)
{
	int fd;

	if (!vmpace_log)
		return;
	fd = open(vmpace_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		dup2(fd, 2);
		close(fd);
	}
}

/* Does --vmpace-log contain @what? */
static bool log_has(const char *what)
{
	char *buf = NULL;
	size_t len = 0, size = 0;
	bool found;
	ssize_t n;
	int fd;

	fd = vmpace_log ? open(vmpace_log, O_RDONLY) : -1;
	if (fd < 0)
		return false;
	for (;;) {
		if (size - len < 4096) {
			size = size ? 2 * size : 65536;
			buf = realloc(buf, size);
			if (!buf)
				die("realloc");
		}
		n = read(fd, buf + len, size - len - 1);
		if (n <= 0)
			break;
		len += n;
	}
	close(fd);
	if (!buf)
		return false;
	buf[len] = 0;
	found = strstr(buf, what);
	free(buf);
	return found;
}

/* Waits (at most @ms) until vmpace's log says @what. */
static bool wait_log(const char *what, int ms)
{
	uint64_t end = now_ms() + ms;

	while (!log_has(what)) {
		if (now_ms() > end)
			return false;
		poll(NULL, 0, 10);
	}
	return true;
}

/*
 * "vmpace run" mode: vmpace starts QEMU itself (frozen), on a socketpair
 * whose other end is simclient's; QEMU is vmpace's child.
 */
static void start_run(char **qemu_argv, char **extra)
{
	char *args[40] = { (char *)vmpace, "run", "--sync-fd", "3", "--proto",
			   (char *)proto_name };
	int sv[2], i = 6, n;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		die("socketpair");
	if (small_sndbuf) {
		n = 1;	/* the kernel's minimum: reports block after a few */
		setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &n, sizeof(n));
	}
	for (; extra && *extra && i < 30; extra++)
		args[i++] = *extra;
	args[i++] = "--";
	for (n = 0; qemu_argv[n] && i < 39; n++)
		args[i++] = qemu_argv[n];
	pacer = fork();
	if (!pacer) {
		if (ctrl_c_group)
			setpgid(0, 0);
		dup2(sv[1], 3);
		redirect_log();
		execvp(vmpace, args);
		_exit(127);
	}
	close(sv[1]);
	sock = sv[0];
	for (i = 0; !(qemu = child_of(pacer)) || vcpu_fds(qemu, NULL, 64) < 1; i++) {
		if (i > 3000 || !alive(pacer))
			die("vmpace run did not start QEMU");
		poll(NULL, 0, 10);
	}
}

static void start_raw(char **qemu_argv, char **extra);

/* Starts QEMU and vmpace; with --proto framed, the HELLO exchange too. */
static void start(char **qemu_argv, char **extra)
{
	start_raw(qemu_argv, extra);
	if (framed && !no_hello)
		fr_hello();
}

static void start_raw(char **qemu_argv, char **extra)
{
	int sv[2], i, n;
	char pid[16];

	if (run_mode) {
		start_run(qemu_argv, extra);
		return;
	}
	qemu = fork();
	if (!qemu) {
		execvp(qemu_argv[0], qemu_argv);
		_exit(127);
	}
	for (i = 0; (n = vcpu_fds(qemu, NULL, 64)) < 1; i++) {
		if (i > 3000 || !alive(qemu))
			die("QEMU did not create its vCPUs");
		poll(NULL, 0, 10);
	}
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(atoi(TCP_PORT)),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_un un = { .sun_family = AF_UNIX, .sun_path = UNIX_PATH };
	bool tcp = !strncmp(transport, "tcp", 3), listening = strstr(transport, "-listen");
	struct sockaddr *sa = tcp ? (struct sockaddr *)&in : (struct sockaddr *)&un;
	socklen_t salen = tcp ? sizeof(in) : sizeof(un);
	char *sync[3] = { "--sync-fd", "3", NULL };
	int lfd = -1, one = 1;

	if (!strcmp(transport, "tcp-netns"))
		in.sin_addr.s_addr = inet_addr(NETNS_SIM_ADDR);
	if (!strcmp(transport, "fd")) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			die("socketpair");
		if (small_sndbuf) {
			n = 1;	/* the kernel's minimum: reports block after a few */
			setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &n, sizeof(n));
		}
	} else {
		static char addr[64];

		sync[0] = tcp ? "--sync-tcp" : "--sync-unix";
		snprintf(addr, sizeof(addr), "%s:%s", inet_ntoa(in.sin_addr), TCP_PORT);
		sync[1] = tcp ? addr : UNIX_PATH;
		unlink(UNIX_PATH);
		if (!listening) {
			/* vmpace connects to us; tcp-netns: from the other netns */
			int self = -1, ns = -1;

			if (!strcmp(transport, "tcp-netns")) {
				self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
				ns = open(NETNS_SIM, O_RDONLY | O_CLOEXEC);
				if (self < 0 || ns < 0 || setns(ns, CLONE_NEWNET))
					die("enter the simulator's network namespace");
			}
			lfd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
			setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (lfd < 0 || bind(lfd, sa, salen) || listen(lfd, 1))
				die("listen");
			if (self >= 0 && setns(self, CLONE_NEWNET))
				die("leave the simulator's network namespace");
			if (self >= 0) {
				close(self);
				close(ns);
			}
		}
	}
	snprintf(pid, sizeof(pid), "%d", qemu);
	pacer = fork();
	if (!pacer) {
		char *args[30] = { (char *)vmpace, "--pid", pid, sync[0], sync[1],
				   "--proto", (char *)proto_name };

		i = 7;
		if (listening)
			args[i++] = "--listen";
		for (; extra && *extra && i < 29; extra++)
			args[i++] = *extra;
		if (!strcmp(transport, "fd"))
			dup2(sv[1], 3);
		redirect_log();
		execvp(vmpace, args);
		_exit(127);
	}
	if (!strcmp(transport, "fd")) {
		close(sv[1]);
		sock = sv[0];
	} else if (!listening) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };

		/* vmpace connects to us: wait for it, at most 20 s */
		for (i = 0; poll(&p, 1, 10) != 1; i++)
			if (i > 2000 || !alive(pacer))
				die("vmpace did not connect");
		sock = accept(lfd, NULL, NULL);
		if (sock < 0)
			die("accept");
		close(lfd);
	} else {
		/* vmpace listens: connect once it does, for at most 20 s */
		for (i = 0; ; i++) {
			sock = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (!connect(sock, sa, salen))
				break;
			close(sock);
			if (i > 2000 || !alive(pacer))
				die("connect to vmpace");
			poll(NULL, 0, 10);
		}
	}
}

/*
 * KVM_GET_PACE_STATE of every vCPU, read through fds borrowed from the VMM,
 * as a JSON array in @path: what "vmpace status -j" must agree with.
 */
static int write_pace_state(const char *path, struct kvm_pace_state *st, int max)
{
	int fd[64], id[64], i, n;
	FILE *f;

	n = vcpu_fds_ids(qemu, fd, id, max < 64 ? max : 64);
	f = fopen(path, "w");
	if (n < 1 || !f)
		die("pace state");
	fprintf(f, "[");
	for (i = 0; i < n; i++) {
		if (fd[i] < 0 || ioctl(fd[i], KVM_GET_PACE_STATE, &st[i]))
			die("KVM_GET_PACE_STATE");
		fprintf(f, "%s{\"vcpu_id\":%d,\"state\":%u,\"tsc_khz\":%u,\"guest_tsc\":%llu,"
			"\"deadline\":%llu,\"holds\":%llu,\"exits\":%llu,\"overshoot_last\":%llu,"
			"\"overshoot_max\":%llu,\"held_ns\":%llu,\"frozen_ns\":%llu}",
			i ? "," : "", id[i], st[i].state, st[i].tsc_khz,
			(unsigned long long)st[i].guest_tsc, (unsigned long long)st[i].deadline,
			(unsigned long long)st[i].holds, (unsigned long long)st[i].exits,
			(unsigned long long)st[i].overshoot_last,
			(unsigned long long)st[i].overshoot_max,
			(unsigned long long)st[i].held_ns, (unsigned long long)st[i].frozen_ns);
		close(fd[i]);
	}
	fprintf(f, "]\n");
	fclose(f);
	return n;
}

/* Runs the --hook command for @stage; true if it exited 0. */
static bool run_hook(const char *stage, int quanta, int nr_vcpus)
{
	char buf[32];
	int st;

	if (!hook)
		return true;
	setenv("HOOK", stage, 1);
	snprintf(buf, sizeof(buf), "%d", qemu);
	setenv("QEMU_PID", buf, 1);
	snprintf(buf, sizeof(buf), "%d", pacer);
	setenv("VMPACE_PID", buf, 1);
	snprintf(buf, sizeof(buf), "%d", quanta);
	setenv("QUANTA", buf, 1);
	snprintf(buf, sizeof(buf), "%d", nr_vcpus);
	setenv("NR_VCPUS", buf, 1);
	fflush(stdout);
	st = system(hook);
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* ----- "stopcont": QEMU's stop/cont while the guest is frozen ------------ */

static int qmp_fd = -1;

/*
 * Send a QMP command (NULL: none, wait for the greeting) and read up to its
 * "return" (events are skipped), the text read in @buf; false on "error" or
 * EOF.
 */
static bool qmp_reply(const char *cmd, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;

	if (cmd && write(qmp_fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		return false;
	for (;;) {
		n = read(qmp_fd, buf + len, size - 1 - len);
		if (n <= 0)
			return false;
		len += n;
		buf[len] = 0;
		if (strstr(buf, cmd ? "\"return\"" : "\"QMP\""))
			return true;
		if (strstr(buf, "\"error\""))
			return false;
		if (len == size - 1)
			len = 0;
	}
}

static bool qmp(const char *cmd)
{
	char buf[4096];

	return qmp_reply(cmd, buf, sizeof(buf));
}

static void qmp_connect(void)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int i;

	snprintf(un.sun_path, sizeof(un.sun_path), "%s", qmp_path);
	for (i = 0; ; i++) {
		qmp_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (!connect(qmp_fd, (struct sockaddr *)&un, sizeof(un)))
			break;
		close(qmp_fd);
		if (i > 2000)
			die("connect to QMP");
		poll(NULL, 0, 10);
	}
	if (!qmp(NULL) || !qmp("{\"execute\":\"qmp_capabilities\"}\n"))
		die("QMP handshake");
}

/*
 * The VM's frozen guest time: the largest held guest TSC, with its kvmclock;
 * ->state has KVM_PACE_STATE_FROZEN only if every vCPU says so.
 */
static void frozen_time(struct kvm_pace_state *max)
{
	struct kvm_pace_state st;
	bool frozen = true;
	int fd[64], n, i;

	n = vcpu_fds(qemu, fd, 64);
	memset(max, 0, sizeof(*max));
	for (i = 0; i < n; i++) {
		if (fd[i] < 0 || ioctl(fd[i], KVM_GET_PACE_STATE, &st))
			die("KVM_GET_PACE_STATE");
		frozen &= !!(st.state & KVM_PACE_STATE_FROZEN);
		if (!i || st.guest_tsc > max->guest_tsc)
			*max = st;
		close(fd[i]);
	}
	if (!frozen || !n)
		max->state &= ~KVM_PACE_STATE_FROZEN;
}

struct clock_lines {
	int fd;
	char buf[4096];
	size_t len;
	long long prev;
	unsigned long back;
	struct clock_bounds b;
};

/*
 * Lines from the guest's debug console, read after the report of the quantum
 * from simulated time @start to @end (us): written out in that quantum.
 */
static void read_clock_lines(struct clock_lines *c, uint64_t start, uint64_t end)
{
	long long before, after;
	unsigned long seq;
	char *nl;
	ssize_t n;

	while ((n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len)) > 0) {
		c->len += n;
		c->buf[c->len] = 0;
		while ((nl = strchr(c->buf, '\n'))) {
			*nl = 0;
			if (sscanf(c->buf, "vmpace-guest-clock %lu %lld %lld", &seq, &before,
				   &after) == 3) {
				if (c->b.lines && before < c->prev)
					c->back++;
				c->prev = before;
				clock_bounds_add(&c->b, before, after, start, end);
			}
			c->len -= nl + 1 - c->buf;
			memmove(c->buf, nl + 1, c->len + 1);
		}
	}
}

/* @n quanta of 10 ms after @sum us, the guest's lines read in each; the new sum. */
static uint64_t clock_quanta(struct clock_lines *c, uint64_t sum, int n)
{
	uint64_t from;

	while (n--) {
		send_grant(10000);
		from = sum;
		sum += read_report(false);
		read_clock_lines(c, from, sum);
	}
	return sum;
}

static void scenario_stopcont(char **qemu_argv)
{
	struct kvm_pace_state s0, s1, s2, s3;
	struct clock_lines cl = { .fd = -1 };
	uint64_t boot = 100000, sum = 0, total_ns, t0_ns;
	bool up = false;
	struct timespec pause = { 2, 0 };
	int i;

	if (!qmp_path || !clock_path)
		die("stopcont needs --qmp and --clock");
	unlink(clock_path);
	if (mkfifo(clock_path, 0600))
		die("mkfifo");
	cl.fd = open(clock_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (cl.fd < 0)
		die("open the clock FIFO");
	start(qemu_argv, NULL);
	qmp_connect();

	/* Boot in 100 ms quanta until the guest's first clock line. */
	clock_bounds_init(&cl.b);
	for (i = 0; !up; i++) {
		send_grant(boot);
		read_report(false);
		read_clock_lines(&cl, 0, 0);
		up = cl.b.lines;
		if (i > 1200)
			die("the guest did not boot in 120 s of guest time");
	}
	clock_bounds_init(&cl.b);
	frozen_time(&s0);
	sum = clock_quanta(&cl, sum, 50);
	frozen_time(&s1);

	/* The VM is frozen: stop it, wait, go on, as libvirt suspend does. */
	CHECK(qmp("{\"execute\":\"stop\"}\n"), "QMP stop");
	nanosleep(&pause, NULL);
	CHECK(qmp("{\"execute\":\"cont\"}\n"), "QMP cont");
	frozen_time(&s2);
	CHECK(s2.guest_tsc == s1.guest_tsc && s2.guest_ns == s1.guest_ns &&
	      (s2.state & KVM_PACE_STATE_FROZEN),
	      "stop/cont of the frozen guest left its guest time where it was "
	      "(TSC %llu -> %llu, kvmclock %llu -> %llu ns)",
	      (unsigned long long)s1.guest_tsc, (unsigned long long)s2.guest_tsc,
	      (unsigned long long)s1.guest_ns, (unsigned long long)s2.guest_ns);

	sum = clock_quanta(&cl, sum, 50);
	frozen_time(&s3);

	/* kvmclock is still the same function of the TSC... */
	total_ns = s3.guest_ns - s0.guest_ns;
	t0_ns = vp_pvclock_ns(s3.guest_tsc - s0.guest_tsc, s3.tsc_to_ns_mul, s3.tsc_shift);
	CHECK(total_ns + 2 >= t0_ns && total_ns <= t0_ns + 2,
	      "kvmclock advanced %llu ns over 100 quanta and a stop/cont, its TSC %llu ns",
	      (unsigned long long)total_ns, (unsigned long long)t0_ns);
	/* ...and the reports add up to it within 1 us. */
	CHECK(sum == total_ns / 1000 || sum == total_ns / 1000 + 1,
	      "the reports add up to %llu us, kvmclock advanced %llu ns",
	      (unsigned long long)sum, (unsigned long long)total_ns);
	/* ...and so does the guest's own clock, across the stop/cont too. */
	CHECK(cl.b.lines >= 10 && !cl.back && clock_bounds_exact(&cl.b),
	      "the guest's own clock (%lu lines) never went back (%lu times) and is "
	      "simulated time plus a constant in [%lld, %lld] us", cl.b.lines, cl.back,
	      (long long)cl.b.lo, (long long)cl.b.hi);
	close(sock);
	CHECK(wait_exit(pacer, 20000) == 0, "closing the socket ends the session");
	close(cl.fd);
	unlink(clock_path);
}

/* ----- exact reports, first instruction, protocol corners ---------------- */

/* Waits (at most 60 s) until the whole VM is frozen; its frozen time. */
static void wait_frozen(struct kvm_pace_state *st)
{
	int i;

	for (i = 0; ; i++) {
		frozen_time(st);
		if (st->state & KVM_PACE_STATE_FROZEN)
			return;
		if (i > 6000)
			die("the VM did not freeze in 60 s");
		poll(NULL, 0, 10);
	}
}

/* Waits (at most 60 s) until a granted quantum runs: the VM is not frozen. */
static void wait_running(void)
{
	struct kvm_pace_state st;
	int i;

	for (i = 0; ; i++) {
		frozen_time(&st);
		if (!(st.state & KVM_PACE_STATE_FROZEN))
			return;
		if (i > 6000)
			die("the quantum did not start in 60 s");
		poll(NULL, 0, 10);
	}
}

static uint64_t unit_ns(void)
{
	return ns64 || framed ? 1 : 1000;
}

/*
 * One quantum of @grant units, checked against what KVM says of the frozen
 * VM: the report is the advance of kvmclock since @s0 minus what was
 * reported before (*@sum), exactly, and at least the grant.
 */
static uint64_t exact_quantum(const struct kvm_pace_state *s0, uint64_t grant, uint64_t *sum,
			      struct kvm_pace_state *now)
{
	uint64_t r, total;

	send_grant(grant);
	r = read_report(false);
	wait_frozen(now);
	*sum += r;
	total = (now->guest_ns - s0->guest_ns) / unit_ns();
	if (total != *sum || r < grant) {
		CHECK(false, "report %llu for grant %llu: reports add up to %llu, kvmclock "
		      "advanced %llu units", (unsigned long long)r, (unsigned long long)grant,
		      (unsigned long long)*sum, (unsigned long long)total);
		*sum = total;
	}
	return r;
}

/* The largest overshoot of the last hold, in units, rounded up. */
static uint64_t overshoot_units(void)
{
	struct kvm_pace_state st;
	uint64_t max = 0;
	int fd[64], n, i;

	n = vcpu_fds(qemu, fd, 64);
	for (i = 0; i < n; i++) {
		if (!ioctl(fd[i], KVM_GET_PACE_STATE, &st)) {
			uint64_t ns = vp_pvclock_ns(st.overshoot_last, st.tsc_to_ns_mul,
						 st.tsc_shift);

			if (ns > max)
				max = ns;
		}
		close(fd[i]);
	}
	/*
	 * vmpace aims 2 ns past the end of the grant, rounded up to a whole
	 * tick; the floors of pvclock's scale at two bases add 2 ns more.
	 */
	return (max + 8 + unit_ns() - 1) / unit_ns();
}

/*
 * "first": vmpace run starts QEMU frozen: before the first grant every
 * vCPU is held at its reset state, having run no guest instruction, and
 * simulated time 0 is guest time 0.  Also for an attach (the "adevs"
 * scenario): the first report is the grant plus the overshoot, not the
 * time spent freezing the guest.
 */
static void first_quanta(uint64_t q)
{
	struct kvm_pace_state s0, now;
	uint64_t sum = 0, r, ovs;
	int i;

	wait_frozen(&s0);
	r = exact_quantum(&s0, q, &sum, &now);
	ovs = overshoot_units();
	CHECK(r >= q && r <= q + ovs, "the first report, %llu, is the grant %llu plus at most "
	      "the overshoot of its hold (%llu)", (unsigned long long)r, (unsigned long long)q,
	      (unsigned long long)ovs);
	for (i = 1; i < 50; i++)
		exact_quantum(&s0, q, &sum, &now);
	CHECK(!failures, "50 reports, each the exact advance of the guest's kvmclock (%llu)",
	      (unsigned long long)sum);
}

static void scenario_first(char **qemu_argv, uint64_t q)
{
	struct kvm_pace_state s0;
	char buf[8192];
	int fd[64], n, i, held = 0;

	if (!run_mode || !qmp_path)
		die("first needs --run and --qmp");
	start(qemu_argv, NULL);
	wait_frozen(&s0);
	n = vcpu_fds(qemu, fd, 64);
	for (i = 0; i < n; i++) {
		struct kvm_pace_state st;

		if (!ioctl(fd[i], KVM_GET_PACE_STATE, &st) &&
		    (st.state & KVM_PACE_STATE_HELD) && st.holds == 1 && !st.exits)
			held++;
		close(fd[i]);
	}
	CHECK(n >= 1 && held == n, "before the first grant all %d vCPUs are held, once", n);
	qmp_connect();
	CHECK(qmp_reply("{\"execute\":\"human-monitor-command\",\"arguments\":"
			"{\"command-line\":\"info registers\"}}\n", buf, sizeof(buf)) &&
	      strstr(buf, "EIP=0000fff0") && strstr(buf, "CS =f000 ffff0000"),
	      "the boot vCPU is at the reset vector: no guest instruction ran (%.120s)",
	      strstr(buf, "EIP=") ? strstr(buf, "EIP=") : buf);
	first_quanta(q);
	close(sock);
	CHECK(wait_exit(pacer, 20000) == 0, "closing the socket ends the session");
	CHECK(wait_exit_any(qemu, 20000), "and vmpace terminated QEMU");
}

/* An adevs-style simulator: socketpair without CLOEXEC, both ends inherited. */
static void start_adevs_style(char **qemu_argv, bool wrapper, int *sim_end)
{
	char *args[48], num[16];
	int sv[2], i = 0, n;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("socketpair");
	snprintf(num, sizeof(num), wrapper ? "sock=%d" : "%d", sv[1]);
	if (wrapper) {
		/* the -external_sim command line, with its -cpu flags */
		setenv("VMPACE_OPTS", "--verbose", 1);
		args[i++] = (char *)wrapper_path;
		for (n = 1; qemu_argv[n] && i < 40; n++)
			args[i++] = qemu_argv[n];
		args[i++] = "-cpu";
		args[i++] = "host,-kvmclock";
		args[i++] = "-external_sim";
		args[i++] = num;
	} else {
		args[i++] = (char *)vmpace;
		args[i++] = "run";
		args[i++] = "--sync-fd";
		args[i++] = num;
		args[i++] = "--";
		for (n = 0; qemu_argv[n] && i < 46; n++)
			args[i++] = qemu_argv[n];
	}
	args[i] = NULL;
	pacer = fork();
	if (!pacer) {
		/* as adevs: nothing closed, nothing marked close-on-exec */
		redirect_log();
		execvp(args[0], args);
		_exit(127);
	}
	sock = sv[0];
	*sim_end = sv[1];	/* the simulator keeps the child's end open too */
	for (i = 0; !(qemu = child_of(pacer)) || vcpu_fds(qemu, NULL, 64) < 1; i++) {
		if (i > 3000 || !alive(pacer))
			die("vmpace did not start QEMU");
		poll(NULL, 0, 10);
	}
}

static void scenario_adevs_fork(char **qemu_argv, uint64_t q, bool wrapper, bool kill_sim)
{
	struct kvm_pace_state s0, now, before;
	uint64_t sum = 0, r;
	pid_t sim = 0;
	int i, st, other;

	start_adevs_style(qemu_argv, wrapper, &other);
	if (wrapper)
		CHECK(log_has("vmpace-qemu: dropped '-kvmclock' from -cpu"),
		      "vmpace-qemu dropped -kvmclock and said so");
	wait_frozen(&s0);
	for (i = 0; i < 300 && !failures; i++)
		exact_quantum(&s0, q, &sum, &now);
	CHECK(i == 300 && !failures, "300 quanta, each report the exact advance of kvmclock");
	if (wrapper) {
		/* adevs sends 0 for a step under 1 us: a step of no time */
		before = now;
		r = exact_quantum(&s0, 0, &sum, &now);
		CHECK(r == 0 && now.guest_tsc == before.guest_tsc,
		      "vmpace-qemu: a zero grant is a step of no time (report %llu)",
		      (unsigned long long)r);
		exact_quantum(&s0, q, &sum, &now);
		CHECK(!failures, "and the session goes on");
		CHECK(log_has("guest frozen at guest TSC"), "VMPACE_OPTS=--verbose reached vmpace");
	}
	if (kill_sim) {
		/* the simulator dies in a quantum; its socket dies with it */
		sim = fork();
		if (!sim) {
			send_grant(q * 1000);
			pause();
			_exit(0);
		}
		close(sock);
		close(other);
		wait_running();
		kill(sim, SIGKILL);
		waitpid(sim, NULL, 0);
	} else {
		close(sock);
		close(other);
	}
	st = wait_exit(pacer, 20000);
	CHECK(st == 0, "the simulator's %s ends the session although vmpace and QEMU "
	      "inherited its end (vmpace exit %d)", kill_sim ? "death" : "close", st);
	CHECK(wait_exit_any(qemu, 20000), "and vmpace terminated QEMU");
}

static void scenario_zero_step(char **qemu_argv, uint64_t q)
{
	char *extra[] = { "--zero-grant", "step", NULL };
	struct kvm_pace_state s0, now, before;
	uint64_t sum = 0, r;
	int i, zeros = 0;

	start(qemu_argv, extra);
	wait_frozen(&s0);
	for (i = 0; i < 20; i++) {
		before = now;
		r = exact_quantum(&s0, i % 2 ? 0 : q, &sum, &now);
		if (i % 2 && r == 0 && now.guest_tsc == before.guest_tsc)
			zeros++;
	}
	CHECK(zeros == 10, "--zero-grant=step: 10 zero grants reported 0 and the guest "
	      "did not run (%d)", zeros);
	close(sock);
	CHECK(wait_exit(pacer, 20000) == 0, "closing the socket ends the session");
}

/*
 * "framed": the framed protocol's grants name absolute guest times; the
 * reports are the exact frozen kvmclock (first_quanta()); a GRANT to the
 * time already reported is a step of no guest time; BYE ends the session.
 */
static void scenario_framed(char **qemu_argv, uint64_t q)
{
	struct kvm_pace_state s0, now, before;
	uint64_t sum = 0, r;
	int i, zeros = 0;

	start(qemu_argv, NULL);
	first_quanta(q);
	wait_frozen(&s0);
	for (i = 0; i < 10; i++) {
		before = now;
		r = exact_quantum(&s0, i % 2 ? 0 : q, &sum, &now);
		if (i % 2 && r == 0 && now.guest_tsc == before.guest_tsc)
			zeros++;
	}
	CHECK(zeros == 5, "5 GRANTs to the time already reported: REPORTs of the same time, "
	      "the guest did not run (%d)", zeros);
	fr_send(VP_FR_BYE, 0, NULL, 0);
	CHECK(wait_exit(pacer, 20000) == 0, "BYE ends the session (vmpace exit 0)");
	CHECK(wait_exit(qemu, 20000) >= 0, "and vmpace terminated the VMM");
}

/* vmpace's fatal ERROR (exit code @code, text with @what), then its exit. */
static void fr_expect_error(int code, const char *what)
{
	struct vp_fr_msg m;
	char text[VP_FR_MAX_TEXT + 1] = "";
	bool got = fr_read(&m, false);

	if (got && m.type == VP_FR_ERROR)
		snprintf(text, sizeof(text), "%.*s", (int)m.len - 8, (const char *)m.payload + 8);
	CHECK(got && m.type == VP_FR_ERROR && m.flags == VP_FR_ERROR_FATAL &&
	      vp_get_be32(m.payload) == (uint32_t)code && strstr(text, what),
	      "vmpace's ERROR, exit code %d: \"%s\"", code, text);
	CHECK(!fr_read(&m, false), "then end of file");
	CHECK(wait_exit(pacer, 20000) == code, "vmpace exits %d", code);
	/* after vmpace run, QEMU is vmpace's child, not ours */
	CHECK(run_mode ? wait_exit_any(qemu, 20000) : wait_exit(qemu, 20000) >= 0,
	      "and terminated the VMM");
}

/*
 * "framed-errors": every way to break the framed protocol ends the session
 * with a clear message, in vmpace's log and, once the HELLO was exchanged,
 * as an ERROR to the simulator; the seed protocols are not confused for it.
 */
static void scenario_framed_errors(char **qemu_argv, uint64_t q)
{
	uint8_t b[VP_FR_HDR + 16] = { 0 };
	struct vp_fr_msg m;
	ssize_t n;
	int st;

	/* the opening, then a GRANT instead of the HELLO */
	no_hello = true;
	start(qemu_argv, NULL);
	if (write(sock, b, VP_FR_HDR) != VP_FR_HDR)
		die("write");
	fr_send(VP_FR_GRANT, q, NULL, 0);
	st = wait_exit(pacer, 20000);
	CHECK(st == 7 && log_has("the simulator sent a GRANT before its HELLO") &&
	      read(sock, b, sizeof(b)) <= 0,
	      "a GRANT before the HELLO: exit %d, said so, nothing sent", st);
	wait_exit(qemu, 20000);
	memset(b, 0, sizeof(b));

	/* a seed simulator's grant to a framed vmpace */
	start(qemu_argv, NULL);
	b[2] = 0x27;
	b[3] = 0x10;
	if (write(sock, b, 4) != 4)	/* ...and a seed grant, htonl(10000) */
		die("write");
	st = wait_exit(pacer, 20000);
	CHECK(st == 7 && log_has("byte 2 of the opening is 0x27") &&
	      log_has("run vmpace without --proto framed"),
	      "a seed grant to a framed vmpace: exit %d, named as such", st);
	wait_exit(qemu, 20000);
	b[2] = b[3] = 0;

	/* a framed simulator to a seed vmpace: read as a zero grant */
	proto_name = "us32";
	start(qemu_argv, NULL);
	fr_send_hello(1, 1);
	n = read(sock, b, sizeof(b));
	st = wait_exit(pacer, 20000);
	CHECK(n <= 0 && st == 0,
	      "the framed opening to a seed vmpace ends its session unanswered (read %zd, "
	      "exit %d)", n, st);
	wait_exit(qemu, 20000);
	proto_name = "framed";
	no_hello = false;

	/* no common version */
	no_hello = true;
	start(qemu_argv, NULL);
	no_hello = false;
	vp_fr_decoder_init(&fr_dec, VP_FR_FROM_VMPACE);
	fr_send_hello(2, 3);
	n = fr_read(&m, false);
	st = wait_exit(pacer, 20000);
	CHECK(!n && st == 7 && log_has("speaks versions 2 to 3 of the framed protocol, vmpace 1"),
	      "HELLO for versions 2 to 3: no reply, exit %d, said why", st);
	wait_exit(qemu, 20000);

	/* a grant before the time already reported */
	start(qemu_argv, NULL);
	send_grant(q);
	read_report(false);
	fr_send(VP_FR_GRANT, fr_now - 1, NULL, 0);
	fr_expect_error(7, "before the time already reported");

	/* a type only vmpace sends, a payload where none belongs, flags */
	start(qemu_argv, NULL);
	fr_send(VP_FR_REPORT, 0, NULL, 0);
	fr_expect_error(7, "message type 0x8010 is not one a simulator sends");
	start(qemu_argv, NULL);
	fr_send(VP_FR_GRANT, q, "abcde", 5);
	fr_expect_error(7, "GRANT with a payload of 5 bytes (0 to 0)");
	start(qemu_argv, NULL);
	vp_fr_encode(b, VP_FR_GRANT, 4, q, NULL, 0);
	if (write(sock, b, VP_FR_HDR) != VP_FR_HDR)
		die("write");
	fr_expect_error(7, "GRANT with flags 0x4");
	start(qemu_argv, NULL);
	fr_send(VP_FR_HELLO, 0, b, VP_FR_HELLO_LEN);
	fr_expect_error(7, "a second HELLO");

	/* half a message, then end of file */
	start(qemu_argv, NULL);
	vp_fr_encode(b, VP_FR_GRANT, 0, q, NULL, 0);
	if (write(sock, b, 10) != 10)
		die("write");
	shutdown(sock, SHUT_WR);
	fr_expect_error(7, "closed the connection in the middle of a message");
}

/* ----- framed protocol: network frames (vmpace run --net) ----------------- */

struct fr_seen {
	int delivered, frames, rejected;
	uint32_t dl_id[16];
	uint64_t dl_t[16];
	uint16_t dl_status[16];
	uint64_t fr_t[64];
	uint8_t fr[64][64];	/* the first bytes of each frame from the guest */
	uint32_t fr_len[64];
	uint32_t rej_id[16];
	char rej_text[16][160];
};

/* Reads what vmpace sends until the next REPORT (or ERROR/EOF: false). */
static bool fr_until_report(struct fr_seen *w, uint64_t *report_t, struct vp_fr_msg *last)
{
	struct vp_fr_msg m;

	for (;;) {
		if (!fr_read(&m, false))
			return false;
		*last = m;
		switch (m.type) {
		case VP_FR_REPORT:
			*report_t = m.t;
			fr_now = m.t;
			return true;
		case VP_FR_DELIVERED:
			if (w->delivered < 16) {
				w->dl_id[w->delivered] = vp_get_be32(m.payload);
				w->dl_status[w->delivered] = vp_get_be16(m.payload + 4);
				w->dl_t[w->delivered] = m.t;
			}
			w->delivered++;
			break;
		case VP_FR_FRAME_FROM_GUEST:
			if (w->frames < 64) {
				w->fr_t[w->frames] = m.t;
				w->fr_len[w->frames] = m.len - VP_FR_FRAME_HDR;
				memcpy(w->fr[w->frames], m.payload + VP_FR_FRAME_HDR,
				       m.len - VP_FR_FRAME_HDR < 64 ? m.len - VP_FR_FRAME_HDR : 64);
			}
			w->frames++;
			break;
		case VP_FR_ERROR:
			if (m.flags & VP_FR_ERROR_FATAL)
				return false;
			if (w->rejected < 16) {
				w->rej_id[w->rejected] = vp_get_be32(m.payload + 4);
				snprintf(w->rej_text[w->rejected], 160, "%.*s", (int)m.len - 8,
					 (const char *)m.payload + 8);
			}
			w->rejected++;
			break;
		default:
			return false;
		}
	}
}

/* FRAME_TO_GUEST or SERIAL_TO_GUEST (@type), with @reserved in its reserved field */
static void fr_timed(uint16_t type, uint32_t id, uint16_t port, uint64_t t, const void *data,
		     uint32_t len, uint16_t reserved)
{
	uint8_t msg[VP_FR_HDR + VP_FR_FRAME_HDR + 4096];

	if (len > 4096)
		die("fr_timed: too long");
	vp_fr_encode(msg, type, 0, t, NULL, 0);
	vp_put_be32(msg + 4, VP_FR_FRAME_HDR + len);
	vp_put_be32(msg + VP_FR_HDR, id);
	vp_put_be16(msg + VP_FR_HDR + 4, port);
	vp_put_be16(msg + VP_FR_HDR + 6, reserved);
	memcpy(msg + VP_FR_HDR + VP_FR_FRAME_HDR, data, len);
	if (write(sock, msg, VP_FR_HDR + VP_FR_FRAME_HDR + len) !=
	    (ssize_t)(VP_FR_HDR + VP_FR_FRAME_HDR + len))
		die("write a timed message");
}

static void fr_frame(uint32_t id, uint16_t port, uint64_t t, const void *data, uint32_t len)
{
	fr_timed(VP_FR_FRAME_TO_GUEST, id, port, t, data, len, 0);
}

/* The vCPUs' holds so far: each stop of the VM is one per vCPU. */
static uint64_t holds_of_vcpu0(void)
{
	struct kvm_pace_state st;
	int fd[64], n, i;
	uint64_t h = 0;

	n = vcpu_fds(qemu, fd, 64);
	for (i = 0; i < n; i++) {
		if (i == 0 && !ioctl(fd[i], KVM_GET_PACE_STATE, &st))
			h = st.holds;
		close(fd[i]);
	}
	return h;
}

/* An Ethernet broadcast frame of the simulator, 60 bytes. */
static void sim_frame(uint8_t *f, uint8_t tag)
{
	memset(f, tag, 60);
	memset(f, 0xff, 6);				/* to everybody */
	memcpy(f + 6, "\x02\x00\x00\x00\x00\x01", 6);	/* from the simulator */
	f[12] = 0x88;					/* local experimental */
	f[13] = 0xb5;
}

/* vmpace's resident memory in kB (0 if it cannot be read). */
static unsigned long rss_kb(pid_t pid)
{
	char path[64], line[128];
	unsigned long kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lu kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * "framed-flood": a simulator that sends and never reads.  vmpace has no
 * network port, so it refuses every FRAME_TO_GUEST with an ERROR; past its
 * output limit (4 MiB unsent) it reads no more of the simulator's
 * messages and says so, the simulator's writes block and vmpace's memory
 * stays bounded.  Once the simulator reads, every ERROR arrives, in order,
 * and the session goes on.  Each ERROR here is 83 to 86 bytes: the limit
 * is reached after more than FLOOD_MIN frames (plus what the socket
 * buffers hold: 1245 more frames of 25 bytes here, over a socketpair).
 */
#define FLOOD_MIN	((4u << 20) / 86)
#define FLOOD_MAX	(4 * FLOOD_MIN)
static void scenario_framed_flood(char **qemu_argv, uint64_t q)
{
	uint8_t msg[VP_FR_HDR + VP_FR_FRAME_HDR + 1] = { 0 };	/* a frame of 1 byte */
	size_t len = sizeof(msg), off = 0;
	uint32_t sent = 0, got = 0, bad = 0;
	struct kvm_pace_state s0;
	struct pollfd p = { .events = POLLOUT };
	unsigned long rss0, rss;
	uint64_t rt = 0, t0;
	struct vp_fr_msg m;
	struct fr_seen w;
	ssize_t n;
	int fl;

	start(qemu_argv, NULL);
	CHECK(fr_ports == 0, "vmpace's HELLO reply names no network port (%u)", fr_ports);
	wait_frozen(&s0);
	rss0 = rss_kb(pacer);
	fl = fcntl(sock, F_GETFL);
	if (fl < 0 || fcntl(sock, F_SETFL, fl | O_NONBLOCK))
		die("O_NONBLOCK");
	p.fd = sock;
	/* frames 1, 2, ... for port 0 at half the quantum, until writes block for 3 s */
	for (t0 = now_ms(); sent < FLOOD_MAX; ) {
		if (!off) {
			vp_fr_encode(msg, VP_FR_FRAME_TO_GUEST, 0, q / 2, NULL, 0);
			vp_put_be32(msg + 4, VP_FR_FRAME_HDR + 1);
			vp_put_be32(msg + VP_FR_HDR, sent + 1);
			vp_put_be16(msg + VP_FR_HDR + 4, 0);
			vp_put_be16(msg + VP_FR_HDR + 6, 0);
		}
		n = write(sock, msg + off, len - off);
		if (n < 0 && errno == EAGAIN) {
			if (poll(&p, 1, 3000) == 0)
				break;		/* vmpace stopped reading */
			continue;
		}
		if (n <= 0)
			die("write a frame");
		off += n;
		if (off == len) {
			off = 0;
			sent++;
		}
	}
	rss = rss_kb(pacer);
	CHECK(sent > FLOOD_MIN && sent < FLOOD_MAX && log_has("reads no more of its messages"),
	      "vmpace stopped reading a simulator that does not read, at its limit, and said "
	      "so: its writes block after %u refused frames (%u to %u) in %llu ms", sent,
	      FLOOD_MIN, FLOOD_MAX, (unsigned long long)(now_ms() - t0));
	CHECK(rss && rss < rss0 + 8 * 1024, "vmpace's memory stays bounded: %lu kB resident, "
	      "%lu kB before the flood", rss, rss0);
	CHECK(alive(pacer) && alive(qemu), "vmpace and QEMU run on");
	if (fcntl(sock, F_SETFL, fl))
		die("O_NONBLOCK off");
	/* the frame written in part is sent whole once vmpace reads again */
	while (off || got < sent) {
		if (off) {
			p.events = POLLOUT | POLLIN;
			if (poll(&p, 1, 60000) <= 0)
				die("no progress in 60 s");
			if (p.revents & POLLOUT) {
				n = send(sock, msg + off, len - off, MSG_DONTWAIT);
				if (n > 0 && (off += n) == len) {
					off = 0;
					sent++;
				}
			}
			if (!(p.revents & POLLIN))
				continue;
		}
		if (!fr_read(&m, false))
			die("vmpace closed the connection");
		if (m.type != VP_FR_ERROR || (m.flags & VP_FR_ERROR_FATAL) || m.len < 8 ||
		    vp_get_be32(m.payload + 4) != got + 1) {
			if (!bad++)
				fprintf(stderr, "simclient: message %u: type %u flags %#x ref %u\n",
					got + 1, m.type, m.flags, m.len >= 8 ?
					vp_get_be32(m.payload + 4) : 0);
		}
		got++;
	}
	CHECK(!bad && got == sent, "every refused frame has its non-fatal ERROR, in order "
	      "(%u of %u, %u not as expected)", got, sent, bad);
	memset(&w, 0, sizeof(w));
	send_grant(q);
	CHECK(fr_until_report(&w, &rt, &m) && rt >= q && !w.rejected,
	      "the session goes on: the next grant is reported (%llu ns)", (unsigned long long)rt);
	fr_send(VP_FR_BYE, 0, NULL, 0);
	CHECK(wait_exit(pacer, 20000) == 0, "BYE ends the session (vmpace exit 0)");
	CHECK(wait_exit(qemu, 20000) >= 0, "and vmpace terminated the VMM");
}

/*
 * "framed-net": vmpace run --net n0 with a stock QEMU whose virtio-net NIC
 * (netdev n0) is the only boot device, so the firmware's network boot
 * (iPXE) sends DHCP requests.  Frames for the guest are handed to QEMU at
 * their guest time (the quantum is split there, and the report is still the
 * exact frozen kvmclock), in order, LATE if their time had passed; frames
 * from the guest come stamped within their quantum; bad frames are refused
 * with a clear error and nothing else is lost.
 */
static void scenario_framed_net(char **qemu_argv, uint64_t q)
{
	char *extra[] = { "--net", "n0", "--io-timeout", "300", NULL };
	static struct fr_seen w;
	struct kvm_pace_state s0, now;
	struct vp_fr_msg m;
	uint64_t rt = 0, prev, h0, h1, tmax = 0, t;
	uint8_t f[60];
	int i, dhcp = 0, bad = 0, st;

	if (!run_mode || !framed)
		die("framed-net needs --run and --proto framed");
	start(qemu_argv, extra);
	CHECK(fr_ports == 1, "vmpace's HELLO reply names 1 network port (%u)", fr_ports);
	wait_frozen(&s0);

	/*
	 * Early in the firmware nobody drives the NIC: QEMU takes one frame
	 * and holds it (the NIC cannot receive), then stops reading.
	 */
	sim_frame(f, 0xa0);
	fr_frame(100, 1, q / 3, f, sizeof(f));
	sim_frame(f, 0xa1);
	fr_frame(1, 0, q / 3, f, sizeof(f));
	sim_frame(f, 0xa2);
	fr_frame(2, 0, q / 3, f, sizeof(f));
	h0 = holds_of_vcpu0();
	send_grant(q);
	CHECK(fr_until_report(&w, &rt, &m), "a report for the quantum with frames");
	h1 = holds_of_vcpu0();
	wait_frozen(&now);
	CHECK(w.rejected == 1 && w.rej_id[0] == 100 && strstr(w.rej_text[0], "no network port 1"),
	      "the frame for port 1 is refused, not fatal: \"%s\"", w.rej_text[0]);
	CHECK(w.delivered == 2 && w.dl_id[0] == 1 && w.dl_id[1] == 2 &&
	      w.dl_status[0] == VP_FR_DELIVERED_OK && w.dl_status[1] == VP_FR_DELIVERED_DEFERRED &&
	      w.dl_t[0] == w.dl_t[1] && w.dl_t[0] >= q / 3 && w.dl_t[0] <= rt,
	      "a NIC nobody drives yet: frame 1 taken by QEMU, frame 2 DEFERRED, at %llu ns "
	      "(their time %llu, the report %llu; %d delivered: ids %u %u, status %u %u)",
	      (unsigned long long)w.dl_t[0], (unsigned long long)(q / 3),
	      (unsigned long long)rt, w.delivered, w.dl_id[0], w.dl_id[1], w.dl_status[0],
	      w.dl_status[1]);
	/* one stop if the stop at their time overshot the quantum's end too */
	CHECK(h1 == h0 + 2 || (h1 == h0 + 1 && w.dl_t[0] >= q),
	      "the quantum was split at their time: %llu stops of vCPU 0 (2, or 1 with the "
	      "first at or past the quantum's end: %llu ns)", (unsigned long long)(h1 - h0),
	      (unsigned long long)w.dl_t[0]);
	CHECK(rt >= q && now.guest_ns - s0.guest_ns == rt,
	      "the report %llu is the exact frozen kvmclock (%llu)", (unsigned long long)rt,
	      (unsigned long long)(now.guest_ns - s0.guest_ns));

	/* frames from the guest: the firmware's DHCP requests, stamped */
	w.frames = 0;
	for (i = 0; i < 300 && !dhcp; i++) {
		prev = rt;
		st = w.frames;
		send_grant(10 * q);
		if (!fr_until_report(&w, &rt, &m))
			break;
		for (; st < w.frames && st < 64; st++) {
			if (w.fr_t[st] < tmax || w.fr_t[st] < prev || w.fr_t[st] > rt)
				bad++;
			tmax = w.fr_t[st];
			if (w.fr_len[st] < 14 || memcmp(w.fr[st] + 6, "\x52\x54\x00\x12\x34\x56", 6))
				bad++;
			printf("frame %d from the guest at %llu ns: ethertype 0x%02x%02x, %u bytes\n",
			       st + 1, (unsigned long long)w.fr_t[st], w.fr[st][12], w.fr[st][13],
			       w.fr_len[st]);
			/* IPv4, UDP to port 67 */
			if (w.fr_len[st] >= 42 && w.fr[st][12] == 0x08 && w.fr[st][13] == 0 &&
			    w.fr[st][23] == 17 && w.fr[st][36] == 0 && w.fr[st][37] == 67)
				dhcp++;
		}
	}
	CHECK(dhcp && !bad, "%d frames from the guest by %.3f s of guest time, %d of them DHCP, "
	      "all from its MAC, each stamped within its quantum, in order (%d wrong)", w.frames,
	      rt / 1e9, dhcp, bad);

	/* the NIC receives now: frames at their time, in order, across quanta */
	t = rt + q / 3;
	sim_frame(f, 0xa3);
	fr_frame(3, 0, t + q, f, sizeof(f));
	sim_frame(f, 0xa4);
	fr_frame(4, 0, t + q, f, sizeof(f));
	w.delivered = 0;
	send_grant(q);
	CHECK(fr_until_report(&w, &rt, &m) && !w.delivered,
	      "nothing due in the quantum before their time (%d delivered)", w.delivered);
	send_grant(q);
	CHECK(fr_until_report(&w, &rt, &m) && w.delivered == 2 && w.dl_id[0] == 3 &&
	      w.dl_id[1] == 4 && w.dl_status[0] == VP_FR_DELIVERED_OK &&
	      w.dl_status[1] == VP_FR_DELIVERED_OK && w.dl_t[0] >= t + q && w.dl_t[0] <= rt,
	      "frames 3 and 4 in the next quantum, in order, OK (%d, status %u %u, t %llu)",
	      w.delivered, w.dl_status[0], w.dl_status[1], (unsigned long long)w.dl_t[0]);

	/* a frame for a time already past: delivered at once, LATE */
	prev = rt;
	sim_frame(f, 0xa5);
	fr_frame(5, 0, prev - 1 > t + q ? prev - 1 : t + q, f, sizeof(f));
	w.delivered = 0;
	send_grant(0);
	CHECK(fr_until_report(&w, &rt, &m) && w.delivered == 1 && w.dl_id[0] == 5 &&
	      w.dl_status[0] == VP_FR_DELIVERED_LATE && w.dl_t[0] == prev && rt == prev,
	      "a frame for a past time: LATE, at the current time, by a step of no time "
	      "(status %u, t %llu)", w.dl_status[0], (unsigned long long)w.dl_t[0]);

	/* the queue's limit: the 1025th frame is refused, the others kept */
	w.rejected = 0;
	for (i = 0; i < 1025; i++) {
		sim_frame(f, (uint8_t)i);
		fr_frame(1000 + i, 0, rt + 1000000000000ull, f, sizeof(f));
	}
	send_grant(0);
	CHECK(fr_until_report(&w, &rt, &m) && w.rejected == 1 && w.rej_id[0] == 2024 &&
	      strstr(w.rej_text[0], "1024 frames"),
	      "1024 frames queued, the 1025th refused: \"%s\"", w.rej_text[0]);

	/* a frame earlier than the one before it on its port: fatal */
	fr_frame(3000, 0, rt + 1, f, sizeof(f));
	CHECK(fr_read(&m, false) && m.type == VP_FR_ERROR && (m.flags & VP_FR_ERROR_FATAL) &&
	      vp_get_be32(m.payload) == 7, "a frame out of order on its port: a fatal ERROR");
	st = wait_exit(pacer, 20000);
	CHECK(st == 7 && log_has("a port delivers in order"),
	      "vmpace exits 7, saying why (exit %d)", st);
}

/*
 * "framed-serial": vmpace run --serial s0 with a stock QEMU whose UART
 * (-serial chardev:s0) nobody reads (the firmware idles; the UART's FIFO is
 * off after reset: it holds one byte).  The SERIAL feature is negotiated,
 * or the session ends saying why; bytes for the guest are handed to QEMU at
 * their time, OK if QEMU took them all while the guest was frozen, else
 * DEFERRED; a port whose unread bytes would pass 64 KiB refuses more; a
 * port that does not exist refuses them, a reserved field, bytes out of
 * order or serial bytes without the feature end the session.
 */
static void scenario_framed_serial(char **qemu_argv, uint64_t q)
{
	char *extra[] = { "--serial", "s0", "--io-timeout", "300", NULL };
	static uint8_t big[4096];
	static struct fr_seen w;
	char *plain[64];
	struct vp_fr_msg m;
	uint64_t rt = 0, t;
	int i, n, deferred = 0;
	bool got;

	if (!run_mode || !framed)
		die("framed-serial needs --run and --proto framed");

	/* a simulator that does not ask for the feature: told why at once */
	fr_features = 0;
	no_hello = true;
	start(qemu_argv, extra);
	vp_fr_decoder_init(&fr_dec, VP_FR_FROM_VMPACE);
	fr_send_hello(1, 1);
	fr_expect_error(7, "does not ask for the SERIAL feature");
	no_hello = false;

	fr_features = VP_FR_FEAT_SERIAL | 0x80000000u;	/* and one vmpace does not know */
	start(qemu_argv, extra);
	CHECK(fr_serial == 1 && fr_ports == 0,
	      "the HELLO reply grants SERIAL only and names 1 serial port, no network port "
	      "(%u, %u)", fr_serial, fr_ports);
	fr_timed(VP_FR_SERIAL_TO_GUEST, 100, 1, q / 3, "x", 1, 0);
	fr_timed(VP_FR_SERIAL_TO_GUEST, 1, 0, q / 3, "a", 1, 0);
	fr_timed(VP_FR_SERIAL_TO_GUEST, 2, 0, q / 3, "bc", 2, 0);
	send_grant(q);
	CHECK(fr_until_report(&w, &rt, &m), "a report for the quantum with serial bytes");
	CHECK(w.rejected == 1 && w.rej_id[0] == 100 &&
	      strstr(w.rej_text[0], "no serial port 1 (vmpace has 1: --serial)"),
	      "bytes for serial port 1 are refused, not fatal: \"%s\"", w.rej_text[0]);
	CHECK(w.delivered == 2 && w.dl_id[0] == 1 && w.dl_id[1] == 2 &&
	      w.dl_status[0] == VP_FR_DELIVERED_OK && w.dl_status[1] == VP_FR_DELIVERED_DEFERRED &&
	      w.dl_t[0] == w.dl_t[1] && w.dl_t[0] >= q / 3 && w.dl_t[0] <= rt,
	      "a UART nobody reads: its one byte taken (OK), the next 2 DEFERRED, at %llu ns "
	      "(their time %llu, the report %llu; status %u %u)",
	      (unsigned long long)w.dl_t[0], (unsigned long long)(q / 3),
	      (unsigned long long)rt, w.dl_status[0], w.dl_status[1]);

	/* the port's unread bytes: 2 + 15 x 4096 wait, the 16th message is refused */
	memset(&w, 0, sizeof(w));
	memset(big, 's', sizeof(big));
	for (i = 0; i < 16; i++)
		fr_timed(VP_FR_SERIAL_TO_GUEST, 10 + i, 0, rt, big, sizeof(big), 0);
	send_grant(0);
	CHECK(fr_until_report(&w, &rt, &m), "a step of no time with 16 x 4096 bytes due");
	for (i = 0; i < w.delivered && i < 16; i++)
		deferred += w.dl_status[i] == VP_FR_DELIVERED_DEFERRED;
	CHECK(w.delivered == 15 && deferred == 15 && w.rejected == 1 && w.rej_id[0] == 25 &&
	      strstr(w.rej_text[0], "has not taken 61442 bytes"),
	      "15 handed over (DEFERRED: %d of %d), the 16th refused: \"%s\"", deferred,
	      w.delivered, w.rej_text[0]);

	/* many small messages: the socket's memory fills before 64 KiB of bytes */
	memset(&w, 0, sizeof(w));
	for (i = 0; i < 400; i++)
		fr_timed(VP_FR_SERIAL_TO_GUEST, 100 + i, 0, rt, "m", 1, 0);
	send_grant(0);
	got = fr_until_report(&w, &rt, &m);
	deferred = 0;
	for (i = 0; i < w.delivered && i < 16; i++)
		deferred += w.dl_status[i] == VP_FR_DELIVERED_DEFERRED;
	CHECK(got && w.delivered + w.rejected == 400 &&
	      w.rejected && w.delivered && deferred == (w.delivered < 16 ? w.delivered : 16) &&
	      strstr(w.rej_text[0], "socket of serial port 0 (s0) is full"),
	      "400 one-byte messages: %d handed over (DEFERRED), %d refused, the session goes "
	      "on: \"%s\"", w.delivered, w.rejected, w.rej_text[0]);

	/* a reserved field that is not 0 */
	fr_timed(VP_FR_SERIAL_TO_GUEST, 30, 0, rt + q, "r", 1, 1);
	fr_expect_error(7, "SERIAL_TO_GUEST 30: reserved field not 0");

	/* bytes earlier than the bytes before them on their port */
	start(qemu_argv, extra);
	t = 50 * q;
	fr_timed(VP_FR_SERIAL_TO_GUEST, 1, 0, t, "1", 1, 0);
	fr_timed(VP_FR_SERIAL_TO_GUEST, 2, 0, t - 1, "2", 1, 0);
	fr_expect_error(7, "a port delivers in order");

	/* serial bytes without the feature (no --serial, not asked for, no UART on it) */
	for (i = 0, n = 0; qemu_argv[i] && n < 63; i++)
		if (strcmp(qemu_argv[i], "-serial") || !qemu_argv[i + 1] ||
		    strcmp(qemu_argv[i + 1], "chardev:s0"))
			plain[n++] = qemu_argv[i];
		else
			i++;
	plain[n] = NULL;
	fr_features = 0;
	start(plain, NULL);
	CHECK(fr_serial == 0, "without the feature: no serial port in the HELLO reply (%u)",
	      fr_serial);
	fr_timed(VP_FR_SERIAL_TO_GUEST, 1, 0, q, "x", 1, 0);
	fr_expect_error(7, "SERIAL_TO_GUEST 1 without the SERIAL feature");
}

/*
 * shutdown(SHUT_WR) after grants: every grant sent before it runs and is
 * reported, then vmpace closes.  @early: the grant and the half-close come
 * before vmpace has frozen the guest.
 */
static void scenario_half_close(char **qemu_argv, uint64_t q, bool early)
{
	struct kvm_pace_state s0, now;
	uint64_t sum = 0, r1, r2 = 0;
	uint8_t b;
	int st;

	start(qemu_argv, NULL);
	if (early) {
		send_grant(q);
		shutdown(sock, SHUT_WR);
		wait_frozen(&s0);
		r1 = read_report(false);
		CHECK(r1 >= q, "a grant and a half-close sent while vmpace froze the guest: "
		      "the grant ran (report %llu for %llu)", (unsigned long long)r1,
		      (unsigned long long)q);
	} else {
		wait_frozen(&s0);
		exact_quantum(&s0, q, &sum, &now);
		send_grant(q * 20);
		send_grant(q * 10);
		shutdown(sock, SHUT_WR);
		r1 = read_report(false);
		r2 = read_report(false);
		wait_frozen(&now);
		CHECK(r1 >= q * 20 && r2 >= q * 10 &&
		      sum + r1 + r2 == (now.guest_ns - s0.guest_ns) / unit_ns(),
		      "after shutdown(SHUT_WR) both grants sent before it are reported: %llu "
		      "for %llu, %llu for %llu", (unsigned long long)r1,
		      (unsigned long long)q * 20, (unsigned long long)r2,
		      (unsigned long long)q * 10);
	}
	CHECK(read(sock, &b, 1) == 0, "then vmpace closes the connection");
	st = wait_exit(pacer, 20000);
	CHECK(st == 0, "and ends the session (vmpace exit %d)", st);
	CHECK(wait_exit_any(qemu, 20000), "and terminates the VMM");
}

static void scenario_partial_write(char **qemu_argv, uint64_t q)
{
	struct kvm_pace_state s0, now;
	uint64_t sum = 0, r;
	int i, n = 60;

	small_sndbuf = true;
	start(qemu_argv, (char *[]){ "--verbose", NULL });
	wait_frozen(&s0);
	/* grants ahead of reports: vmpace's reports fill its small buffer */
	for (i = 0; i < n; i++)
		send_grant(q);
	/* not reading until vmpace has found its buffer full */
	CHECK(wait_log("is not reading", 60000), "vmpace waited for the simulator to read");
	for (i = 0; i < n; i++) {
		r = read_report(false);
		sum += r;
		if (r < q)
			break;
	}
	wait_frozen(&now);
	CHECK(i == n && sum == (now.guest_ns - s0.guest_ns) / unit_ns(),
	      "%d reports written in parts, each >= its grant, adding up to kvmclock", n);
	close(sock);
	CHECK(wait_exit(pacer, 20000) == 0, "closing the socket ends the session");
}

/* QMP "stop" in the middle of a quantum, "cont" later: the quantum goes on. */
static void scenario_stall_stop(char **qemu_argv, uint64_t q)
{
	char *extra[] = { "--stall-warn", "1", NULL };
	struct kvm_pace_state s0, now;
	struct pollfd p;
	uint64_t sum = 0, r;

	if (!qmp_path)
		die("stall-stop needs --qmp");
	start(qemu_argv, extra);
	qmp_connect();
	wait_frozen(&s0);
	exact_quantum(&s0, q, &sum, &now);
	send_grant(q * 300);
	wait_running();
	CHECK(qmp("{\"execute\":\"stop\"}\n"), "QMP stop in the middle of a quantum");
	p = (struct pollfd){ .fd = sock, .events = POLLIN };
	CHECK(poll(&p, 1, 3000) == 0, "no report while QEMU is stopped");
	CHECK(log_has("is not in KVM_RUN"), "vmpace said which vCPU keeps the quantum waiting");
	if (run_mode)
		CHECK(log_has("QEMU is stopped"), "and that QEMU is stopped");
	CHECK(qmp("{\"execute\":\"cont\"}\n"), "QMP cont");
	r = read_report(false);
	wait_frozen(&now);
	sum += r;
	CHECK(r >= q * 300 && sum == (now.guest_ns - s0.guest_ns) / unit_ns(),
	      "the quantum completed after cont: %llu for %llu, reports = kvmclock",
	      (unsigned long long)r, (unsigned long long)q * 300);
	exact_quantum(&s0, q, &sum, &now);
	close(sock);
	CHECK(wait_exit(pacer, 20000) == 0, "closing the socket ends the session");
}

/* A vCPU added with device_add is paced from the next quantum on. */
static void scenario_hotadd(char **qemu_argv, uint64_t q)
{
	struct kvm_pace_state s0, now, st;
	char buf[4096] = "";
	uint64_t sum = 0;
	int fd[64], n, i, armed = 0;

	if (!qmp_path)
		die("hotadd needs --qmp");
	start(qemu_argv, (char *[]){ "--verbose", NULL });
	qmp_connect();
	wait_frozen(&s0);
	for (i = 0; i < 5; i++)
		exact_quantum(&s0, q, &sum, &now);
	/* QEMU 7.2 counts -smp 1,maxcpus=2 as two cores of one socket */
	CHECK(qmp_reply("{\"execute\":\"device_add\",\"arguments\":{\"driver\":"
			"\"qemu64-x86_64-cpu\",\"id\":\"cpu1\",\"socket-id\":0,"
			"\"core-id\":1,\"thread-id\":0}}\n", buf, sizeof(buf)),
	      "QMP device_add of a second vCPU (%.200s)", buf);
	for (i = 0; i < 20; i++)
		exact_quantum(&s0, q, &sum, &now);
	n = vcpu_fds(qemu, fd, 64);
	for (i = 0; i < n; i++) {
		if (!ioctl(fd[i], KVM_GET_PACE_STATE, &st) &&
		    (st.state & KVM_PACE_STATE_ARMED) && (st.state & KVM_PACE_STATE_HELD) &&
		    (st.state & KVM_PACE_STATE_FROZEN) && st.nr_vcpus == 2)
			armed++;
		close(fd[i]);
	}
	CHECK(n == 2 && armed == 2, "both vCPUs are paced and the VM is frozen (%d of %d)",
	      armed, n);
	CHECK(log_has("appeared in the VM"), "vmpace said it paces the new vCPU");
	CHECK(!failures, "every report was the exact advance of kvmclock");
	close(sock);
	CHECK(wait_exit(pacer, 20000) == 0, "closing the socket ends the session");
}

/* The simulator's host vanishes (its link is cut): the session ends. */
static void scenario_peer_lost(char **qemu_argv, uint64_t q)
{
	char *extra[] = { "--peer-timeout", "3", NULL };
	struct kvm_pace_state s0, now;
	uint64_t sum = 0, t0;
	int i, st;

	start(qemu_argv, extra);
	wait_frozen(&s0);
	for (i = 0; i < 5; i++)
		exact_quantum(&s0, q, &sum, &now);
	CHECK(system("ip link set vmpace-h down") == 0, "cut the link to the simulator");
	t0 = now_ms();
	st = wait_exit(pacer, 30000);
	CHECK(st == 11, "vmpace gave up on the unreachable simulator after %.1f s: exit 11 "
	      "(got %d)", (now_ms() - t0) / 1e3, st);
	CHECK(log_has("lost the simulator"), "and said so");
	CHECK(wait_exit_any(qemu, 20000), "and terminated the VMM");
}

/* Ctrl-C on a terminal: SIGINT to vmpace run and QEMU, one process group. */
static void scenario_ctrl_c(char **qemu_argv, uint64_t q)
{
	struct kvm_pace_state s0, now;
	uint64_t sum = 0;
	int i, st;

	ctrl_c_group = true;
	start(qemu_argv, NULL);
	wait_frozen(&s0);
	for (i = 0; i < 5; i++)
		exact_quantum(&s0, q, &sum, &now);
	kill(-pacer, SIGINT);
	st = wait_exit(pacer, 20000);
	CHECK(st == 9, "Ctrl-C: vmpace exits 9 (got %d)", st);
	CHECK(wait_exit_any(qemu, 20000), "QEMU is gone");
	CHECK(!log_has("signal 15"), "QEMU ended once, by its own SIGINT, not terminated again");
}

/* Runs @argv with its stderr in @out; its exit status, or -1. */
static int run_vmpace(char **argv, char *out, size_t len)
{
	int p[2], st;
	ssize_t n;
	size_t got = 0;
	pid_t pid;

	if (pipe(p))
		die("pipe");
	pid = fork();
	if (!pid) {
		dup2(p[1], 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	while (got < len - 1 && (n = read(p[0], out + got, len - 1 - got)) > 0)
		got += n;
	out[got] = 0;
	close(p[0]);
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A process with two VMs: vmpace will not guess which one to pace. */
static void scenario_two_vms(void)
{
	int kvm, vm[2], vcpu[2], i, st;
	char pid[16], out[1024];
	struct kvm_pace_state ps;
	pid_t child;
	int pfd[2];

	if (pipe(pfd))
		die("pipe");
	child = fork();
	if (!child) {
		kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		for (i = 0; i < 2; i++) {
			vm[i] = ioctl(kvm, KVM_CREATE_VM, 0);
			vcpu[i] = vm[i] < 0 ? -1 : ioctl(vm[i], KVM_CREATE_VCPU, 0);
		}
		st = vcpu[1] >= 0 && !ioctl(vcpu[1], KVM_GET_PACE_STATE, &ps) ? (int)ps.vm_id : 0;
		if (write(pfd[1], &st, sizeof(st)) != sizeof(st))
			_exit(1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	if (read(pfd[0], &st, sizeof(st)) != sizeof(st) || !st)
		die("a process with two VMs");
	snprintf(pid, sizeof(pid), "%d", child);
	st = run_vmpace((char *[]){ (char *)vmpace, "--pid", pid, "--sync-fd", "0", NULL },
			out, sizeof(out));
	CHECK(st == 2 && strstr(out, "runs 2 VMs") && strstr(out, "choose one with --vm"),
	      "two VMs in the VMM: vmpace refuses to guess, exit 2 (got %d: %s)", st, out);
	st = run_vmpace((char *[]){ (char *)vmpace, "--pid", pid, "--vm", "4000000000",
				    "--sync-fd", "0", NULL }, out, sizeof(out));
	CHECK(st == 2 && strstr(out, "has no VM 4000000000"),
	      "--vm naming no VM of it: exit 2 (got %d: %s)", st, out);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
}

int main(int argc, char **argv)
{
	char *scenario, **qemu_argv, *release[] = { "--on-close", "release", NULL };
	uint64_t q = 10000, r;
	int i, st;

	signal(SIGPIPE, SIG_IGN);
	/* QEMUs that vmpace run starts become ours if vmpace dies first */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	for (i = 1; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--vmpace") && i + 1 < argc)
			vmpace = argv[++i];
		else if (!strcmp(argv[i], "--proto") && i + 1 < argc)
			proto_name = argv[++i];
		else if (!strcmp(argv[i], "--transport") && i + 1 < argc)
			transport = argv[++i];
		else if (!strcmp(argv[i], "--hook") && i + 1 < argc)
			hook = argv[++i];
		else if (!strcmp(argv[i], "--qmp") && i + 1 < argc)
			qmp_path = argv[++i];
		else if (!strcmp(argv[i], "--clock") && i + 1 < argc)
			clock_path = argv[++i];
		else if (!strcmp(argv[i], "--vmpace-log") && i + 1 < argc)
			vmpace_log = argv[++i];
		else if (!strcmp(argv[i], "--wrapper") && i + 1 < argc)
			wrapper_path = argv[++i];
		else if (!strcmp(argv[i], "--run"))
			run_mode = true;
	}
	if (i + 2 >= argc || strcmp(argv[i + 1], "--")) {
		fprintf(stderr, "usage: simclient --vmpace PATH [--proto us32|ns64|framed] [--transport T] [--hook CMD] SCENARIO -- QEMU...\n");
		return 2;
	}
	ns64 = !strcmp(proto_name, "ns64");
	framed = !strcmp(proto_name, "framed");
	scenario = argv[i];
	qemu_argv = argv + i + 2;
	if (ns64 || framed)
		q *= 1000;

	if (!strcmp(scenario, "stopcont")) {
		scenario_stopcont(qemu_argv);
	} else if (!strcmp(scenario, "first")) {
		scenario_first(qemu_argv, q);
	} else if (!strcmp(scenario, "adevs-fork") || !strcmp(scenario, "adevs-kill") ||
		   !strcmp(scenario, "wrapper")) {
		scenario_adevs_fork(qemu_argv, q, !strcmp(scenario, "wrapper"),
				    !strcmp(scenario, "adevs-kill"));
	} else if (!strcmp(scenario, "framed")) {
		scenario_framed(qemu_argv, q);
	} else if (!strcmp(scenario, "framed-net")) {
		scenario_framed_net(qemu_argv, q);
	} else if (!strcmp(scenario, "framed-serial")) {
		scenario_framed_serial(qemu_argv, q);
	} else if (!strcmp(scenario, "framed-flood")) {
		scenario_framed_flood(qemu_argv, q);
	} else if (!strcmp(scenario, "framed-errors")) {
		scenario_framed_errors(qemu_argv, q);
	} else if (!strcmp(scenario, "zero-step")) {
		scenario_zero_step(qemu_argv, q);
	} else if (!strcmp(scenario, "half-close") || !strcmp(scenario, "half-close-early")) {
		scenario_half_close(qemu_argv, q, !strcmp(scenario, "half-close-early"));
	} else if (!strcmp(scenario, "partial-write")) {
		scenario_partial_write(qemu_argv, q);
	} else if (!strcmp(scenario, "stall-stop")) {
		scenario_stall_stop(qemu_argv, q);
	} else if (!strcmp(scenario, "hotadd")) {
		scenario_hotadd(qemu_argv, q);
	} else if (!strcmp(scenario, "peer-lost")) {
		scenario_peer_lost(qemu_argv, q);
	} else if (!strcmp(scenario, "ctrl-c")) {
		scenario_ctrl_c(qemu_argv, q);
	} else if (!strcmp(scenario, "two-vms")) {
		scenario_two_vms();
	} else if (!strcmp(scenario, "adevs")) {
		/* As adevs' QEMU_Machine: one write, one read per quantum. */
		start(qemu_argv, NULL);
		first_quanta(q);
		close(sock);
		st = wait_exit(pacer, 20000);
		CHECK(st == 0, "closing the socket ends the session (vmpace exit %d)", st);
		CHECK(wait_exit(qemu, 20000) >= 0, "and vmpace terminated the VMM");
	} else if (!strcmp(scenario, "partial")) {
		/* Grants trickle in byte by byte, reports are read byte by byte. */
		start(qemu_argv, NULL);
		for (i = 0; i < 5; i++) {
			uint64_t be = ns64 ? htobe64(q) : (uint64_t)htonl((uint32_t)q);
			size_t k, size = ns64 ? 8 : 4;

			for (k = 0; k < size; k++) {
				if (write(sock, (uint8_t *)&be + k, 1) != 1)
					die("write");
				poll(NULL, 0, 5);
			}
			r = read_report(true);
			if (r < q)
				break;
		}
		CHECK(i == 5, "5 quanta with byte-wise grants and reports");
		send_grant(0);
		st = wait_exit(pacer, 20000);
		CHECK(st == 0, "a zero grant ends the session (vmpace exit %d)", st);
		CHECK(wait_exit(qemu, 20000) >= 0, "and vmpace terminated the VMM");
	} else if (!strcmp(scenario, "huge-close")) {
		/* A grant of ~71 minutes, then the simulator goes away. */
		start(qemu_argv, NULL);
		send_grant(q);
		read_report(false);
		send_grant(ns64 ? UINT64_MAX / 4 : UINT32_MAX);
		wait_running();
		close(sock);
		st = wait_exit(pacer, 20000);
		CHECK(st == 0, "closing in the middle of a huge quantum ends the session (exit %d)", st);
		CHECK(wait_exit(qemu, 20000) >= 0, "and vmpace terminated the VMM");
	} else if (!strcmp(scenario, "truncated")) {
		/* Half a grant and EOF: a protocol error; the guest is released. */
		start(qemu_argv, release);
		send_grant(q);
		read_report(false);
		if (write(sock, "\0\0", 2) != 2)
			die("write");
		shutdown(sock, SHUT_WR);
		st = wait_exit(pacer, 20000);
		CHECK(st == 7, "a truncated grant is a protocol error (vmpace exit %d)", st);
		CHECK(alive(qemu), "the VMM survives a protocol error");
		check_released();
	} else if (!strcmp(scenario, "release")) {
		start(qemu_argv, release);
		send_grant(q);
		read_report(false);
		close(sock);
		st = wait_exit(pacer, 20000);
		CHECK(st == 0, "--on-close=release: the session ends (vmpace exit %d)", st);
		CHECK(alive(qemu), "the VMM keeps running");
		check_released();
	} else if (!strcmp(scenario, "monitor")) {
		/*
		 * For "vmpace status" and "vmpace monitor": serve 20 quanta,
		 * let the hook look at the frozen VM, then end the session
		 * leaving the VMM running and let the hook look again.
		 */
		struct kvm_pace_state a[64], b[64];
		int n, m;

		start(qemu_argv, release);
		for (i = 0; i < 20; i++) {
			send_grant(q);
			read_report(false);
		}
		setenv("STATE_JSON", "/tmp/pace-state.json", 1);
		n = write_pace_state("/tmp/pace-state.json", a, 64);
		printf("simclient: qemu_pid=%d vmpace_pid=%d quanta=%d vcpus=%d\n",
		       qemu, pacer, i, n);
		CHECK(run_hook("frozen", i, n), "the hook's checks of the frozen VM passed");
		m = write_pace_state("/tmp/pace-state-after.json", b, 64);
		for (st = 0; st < n && st < m; st++)
			if (a[st].guest_tsc != b[st].guest_tsc || a[st].holds != b[st].holds ||
			    !(b[st].state & KVM_PACE_STATE_HELD))
				break;
		CHECK(m == n && st == n, "monitoring did not disturb the frozen guest");
		close(sock);
		st = wait_exit(pacer, 20000);
		CHECK(st == 0, "--on-close=release: the session ends (vmpace exit %d)", st);
		CHECK(alive(qemu), "the VMM keeps running");
		CHECK(run_hook("released", i, n), "the hook's checks after the session passed");
		check_released();
	} else if (!strcmp(scenario, "kill-vmm")) {
		start(qemu_argv, NULL);
		send_grant(q);
		read_report(false);
		send_grant(q * 100);
		kill(qemu, SIGKILL);
		st = wait_exit(pacer, 20000);
		CHECK(st == 8, "the VMM dying in a quantum ends vmpace with status 8 (got %d)", st);
		CHECK(read(sock, &r, sizeof(r)) == 0, "vmpace closed the simulator's socket");
	} else if (!strcmp(scenario, "kill-sim")) {
		/* The simulator process dies in the middle of a quantum. */
		pid_t sim;

		start(qemu_argv, NULL);
		sim = fork();
		if (!sim) {
			send_grant(q);
			read_report(false);
			send_grant(q * 100000);
			pause();
			_exit(0);
		}
		close(sock);
		wait_running();
		kill(sim, SIGKILL);
		waitpid(sim, NULL, 0);
		st = wait_exit(pacer, 20000);
		CHECK(st == 0, "the simulator's death ends the session (vmpace exit %d)", st);
		CHECK(wait_exit(qemu, 20000) >= 0, "and vmpace terminated the VMM");
	} else if (!strcmp(scenario, "kill-vmpace")) {
		/* The controller is SIGKILLed with the guest frozen. */
		start(qemu_argv, NULL);
		send_grant(q);
		read_report(false);
		kill(pacer, SIGKILL);
		wait_exit(pacer, 20000);
		CHECK(alive(qemu), "the VMM survives its controller");
		check_released();
	} else if (!strcmp(scenario, "sigterm")) {
		start(qemu_argv, NULL);
		send_grant(q);
		read_report(false);
		kill(pacer, SIGTERM);
		st = wait_exit(pacer, 20000);
		CHECK(st == 9, "SIGTERM: vmpace releases the guest and exits 9 (got %d)", st);
		CHECK(alive(qemu), "the VMM keeps running");
		check_released();
	} else {
		fprintf(stderr, "simclient: unknown scenario %s\n", scenario);
		failures++;
	}
	if (pacer > 0)
		kill(pacer, SIGKILL);
	if (qemu > 0 && alive(qemu)) {
		kill(qemu, SIGKILL);
		waitpid(qemu, NULL, 0);
	}
	return failures ? 1 : 0;
}
