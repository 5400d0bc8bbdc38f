// SPDX-License-Identifier: GPL-2.0
/*
 * simclient: protocol and fault scenarios for vmpace end-to-end tests.
 *
 * Starts a stock QEMU (the command line after "--"), waits for its vCPUs,
 * attaches "vmpace --pid" to it with a socketpair on fd 3, plays SCENARIO as
 * the simulator, and checks what became of vmpace and of the VMM.
 *
 * usage: simclient --vmpace PATH [--proto us32|ns64] [--transport T] [--hook CMD]
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
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

static const char *vmpace = "vmpace";
static const char *transport = "fd";
static const char *hook, *qmp_path, *clock_path;
#define TCP_PORT "47913"
#define UNIX_PATH "/tmp/simclient.sock"
static bool ns64;
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

static int vcpu_fds_ids(pid_t pid, int *out, int *ids, int max)
{
	char path[300], link[128];
	struct dirent *de;
	int n = 0, pidfd;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -1;
	pidfd = out ? syscall(SYS_pidfd_open, pid, 0) : -1;
	while ((de = readdir(d)) && n < max) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = 0;
		if (strncmp(link, "anon_inode:kvm-vcpu:", 20))
			continue;
		if (out)
			out[n] = syscall(SYS_pidfd_getfd, pidfd, atoi(de->d_name), 0);
		if (ids)
			ids[n] = atoi(link + 20);
		n++;
	}
	closedir(d);
	if (pidfd >= 0)
		close(pidfd);
	return n;
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

static void send_grant(uint64_t v)
{
	uint64_t be64 = htobe64(v);
	uint32_t be32 = htonl((uint32_t)v);

	if (ns64 ? write(sock, &be64, 8) != 8 : write(sock, &be32, 4) != 4)
		die("write grant");
}

/* Read one report, byte by byte when @bytewise (partial reads). */
static uint64_t read_report(bool bytewise)
{
	size_t size = ns64 ? 8 : 4, got = 0;
	uint8_t buf[8];
	uint64_t v = 0;
	ssize_t n;

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
	int fd[1];

	if (vcpu_fds(qemu, fd, 1) != 1 || fd[0] < 0)
		die("borrow a vCPU fd");
	ioctl(fd[0], KVM_GET_PACE_STATE, &a);
	poll(NULL, 0, 200);
	ioctl(fd[0], KVM_GET_PACE_STATE, &b);
	CHECK(!(b.state & (KVM_PACE_STATE_ARMED | KVM_PACE_STATE_HELD)),
	      "the guest is released (pacing state 0x%x)", b.state);
	CHECK(b.guest_tsc > a.guest_tsc, "guest time runs free again (%llu -> %llu)",
	      (unsigned long long)a.guest_tsc, (unsigned long long)b.guest_tsc);
	close(fd[0]);
}

static void start(char **qemu_argv, char **extra)
{
	int sv[2], i, n;
	char pid[16];

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

	if (!strcmp(transport, "fd")) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			die("socketpair");
	} else {
		sync[0] = tcp ? "--sync-tcp" : "--sync-unix";
		sync[1] = tcp ? "127.0.0.1:" TCP_PORT : UNIX_PATH;
		unlink(UNIX_PATH);
		if (!listening) {
			/* vmpace connects to us */
			lfd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
			setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (lfd < 0 || bind(lfd, sa, salen) || listen(lfd, 1))
				die("listen");
		}
	}
	snprintf(pid, sizeof(pid), "%d", qemu);
	pacer = fork();
	if (!pacer) {
		char *args[20] = { (char *)vmpace, "--pid", pid, sync[0], sync[1],
				   "--proto", ns64 ? "ns64" : "us32" };

		i = 7;
		if (listening)
			args[i++] = "--listen";
		for (; extra && *extra && i < 19; extra++)
			args[i++] = *extra;
		if (!strcmp(transport, "fd"))
			dup2(sv[1], 3);
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

/* Send a QMP command and read up to its "return" (events are skipped). */
static bool qmp(const char *cmd)
{
	char buf[4096];
	size_t len = 0;
	ssize_t n;

	if (cmd && write(qmp_fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		return false;
	for (;;) {
		n = read(qmp_fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			return false;
		len += n;
		buf[len] = 0;
		if (strstr(buf, cmd ? "\"return\"" : "\"QMP\""))
			return true;
		if (strstr(buf, "\"error\""))
			return false;
		if (len == sizeof(buf) - 1)
			len = 0;
	}
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

/* ticks of guest TSC in ns, as the guest's kvmclock counts them */
static uint64_t pvclock_ns(uint64_t ticks, uint32_t mul, int8_t shift)
{
	unsigned __int128 t = shift < 0 ? ticks >> -shift : (unsigned __int128)ticks << shift;

	return (uint64_t)(t * mul >> 32);
}

struct clock_lines {
	int fd;
	char buf[4096];
	size_t len;
	long long prev;
	uint64_t prev_sim;
	unsigned long lines, back, jumps;
};

/* Lines from the guest's debug console, read after a report at @sim us. */
static void read_clock_lines(struct clock_lines *c, uint64_t sim, uint64_t quantum)
{
	long long before, after, g;
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
				if (c->lines && before < c->prev)
					c->back++;
				/* between two lines, guest and simulated time agree */
				g = (before - c->prev) / 1000;
				if (c->lines && llabs(g - (long long)(sim - c->prev_sim)) >
						(long long)(3 * quantum))
					c->jumps++;
				c->prev = before;
				c->prev_sim = sim;
				c->lines++;
			}
			c->len -= nl + 1 - c->buf;
			memmove(c->buf, nl + 1, c->len + 1);
		}
	}
}

static void scenario_stopcont(char **qemu_argv)
{
	struct kvm_pace_state s0, s1, s2, s3;
	struct clock_lines cl = { .fd = -1 };
	uint64_t boot = 100000, sum = 0, total_ns, t0_ns;
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
	for (i = 0; !cl.lines; i++) {
		send_grant(boot);
		read_report(false);
		read_clock_lines(&cl, 0, boot);
		if (i > 1200)
			die("the guest did not boot in 120 s of guest time");
	}
	cl.lines = 0;
	frozen_time(&s0);
	for (i = 0; i < 50; i++) {
		send_grant(10000);
		sum += read_report(false);
		read_clock_lines(&cl, sum, 10000);
	}
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

	for (i = 0; i < 50; i++) {
		send_grant(10000);
		sum += read_report(false);
		read_clock_lines(&cl, sum, 10000);
	}
	frozen_time(&s3);

	/* kvmclock is still the same function of the TSC... */
	total_ns = s3.guest_ns - s0.guest_ns;
	t0_ns = pvclock_ns(s3.guest_tsc - s0.guest_tsc, s3.tsc_to_ns_mul, s3.tsc_shift);
	CHECK(total_ns + 2 >= t0_ns && total_ns <= t0_ns + 2,
	      "kvmclock advanced %llu ns over 100 quanta and a stop/cont, its TSC %llu ns",
	      (unsigned long long)total_ns, (unsigned long long)t0_ns);
	/* ...and the reports add up to it within 1 us. */
	CHECK(sum == total_ns / 1000 || sum == total_ns / 1000 + 1,
	      "the reports add up to %llu us, kvmclock advanced %llu ns",
	      (unsigned long long)sum, (unsigned long long)total_ns);
	CHECK(cl.lines >= 10 && !cl.back && !cl.jumps,
	      "the guest's own clock (%lu lines) never went back (%lu times) nor "
	      "jumped from simulated time (%lu times)", cl.lines, cl.back, cl.jumps);
	close(sock);
	CHECK(wait_exit(pacer, 20000) == 0, "closing the socket ends the session");
	close(cl.fd);
	unlink(clock_path);
}

int main(int argc, char **argv)
{
	char *scenario, **qemu_argv, *release[] = { "--on-close", "release", NULL };
	uint64_t q = 10000, r, sum = 0, granted = 0;
	int i, st;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--vmpace") && i + 1 < argc)
			vmpace = argv[++i];
		else if (!strcmp(argv[i], "--proto") && i + 1 < argc)
			ns64 = !strcmp(argv[++i], "ns64");
		else if (!strcmp(argv[i], "--transport") && i + 1 < argc)
			transport = argv[++i];
		else if (!strcmp(argv[i], "--hook") && i + 1 < argc)
			hook = argv[++i];
		else if (!strcmp(argv[i], "--qmp") && i + 1 < argc)
			qmp_path = argv[++i];
		else if (!strcmp(argv[i], "--clock") && i + 1 < argc)
			clock_path = argv[++i];
	}
	if (i + 2 >= argc || strcmp(argv[i + 1], "--")) {
		fprintf(stderr, "usage: simclient --vmpace PATH [--proto us32|ns64] [--transport T] [--hook CMD] SCENARIO -- QEMU...\n");
		return 2;
	}
	scenario = argv[i];
	qemu_argv = argv + i + 2;
	if (ns64)
		q *= 1000;

	if (!strcmp(scenario, "stopcont")) {
		scenario_stopcont(qemu_argv);
	} else if (!strcmp(scenario, "adevs")) {
		/* As adevs' QEMU_Machine: one write, one read per quantum. */
		start(qemu_argv, NULL);
		for (i = 0; i < 50; i++) {
			send_grant(q);
			r = read_report(false);
			granted += q;
			sum += r;
			if (r < q)
				break;
		}
		CHECK(i == 50, "50 quanta, every report >= its grant (last %llu for %llu)",
		      (unsigned long long)r, (unsigned long long)q);
		CHECK(sum >= granted && sum - granted < 50 * q,
		      "reported %llu for %llu granted", (unsigned long long)sum,
		      (unsigned long long)granted);
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
		poll(NULL, 0, 300);
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
		poll(NULL, 0, 300);
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
