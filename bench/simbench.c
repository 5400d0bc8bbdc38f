// SPDX-License-Identifier: GPL-2.0
/*
 * simbench: a simulator loop that paces one stock QEMU two ways, in turns,
 * with the same loop: write a grant, wait for the guest, record the report.
 *
 *   vmpace  "vmpace --pid QEMU --sync-fd 3 --on-close release", seed protocol
 *           (uint32 network-order microseconds) over a socketpair.
 *   qmp     what a user without the patch does with a stock QEMU: QMP "cont",
 *           wait the quantum in host time from the moment QEMU confirmed the
 *           guest runs, QMP "stop".  The guest time that elapsed is estimated
 *           from host time: from the middle of the "cont" round trip to the
 *           middle of the "stop" one (QEMU restarts kvmclock inside "cont"
 *           and freezes it inside "stop"); fractions are carried, as vmpace
 *           carries its overshoot, so the sum of reports stays unbiased.
 *
 * usage: simbench --vmpace PATH --out CSV --drift CSV [--quantum-us Q]
 *                 [--count N] [--rounds R] [--vcpus V] [--wait-line TEXT]
 *                 [--pacers vmpace,qmp] [--sample SHM] -- QEMU COMMAND LINE
 * Every round runs a block of N quanta with each pacer (alternating which
 * goes first) on the same QEMU; the first WARMUP quanta of a block have a
 * negative seq.  With --wait-line, the guest boots freely until its console
 * prints TEXT; its "vmpace-guest-clock SEQ MONO_NS REAL_NS" lines then give
 * the guest's own clock for the drift CSV.
 *
 * CSV rows: pacer,vcpus,quantum_us,round,seq,grant_us,elapsed_us,host_ns
 * Drift rows: pacer,vcpus,quantum_us,round,quanta,reported_us,clock_us,
 *	tsc_us (guest clock and guest TSC advance over the measured quanta; -1
 *	when unknown),reported_all_us,sample_ns: with --sample SHM, the guest
 *	(guest/clock-init.c with vmpace.sample=1) samples its CLOCK_MONOTONIC
 *	as fast as it can, with its TSC, into the ivshmem memory SHM; sample_ns
 *	is its advance between the samples read with the guest stopped before
 *	the first and after the last measured quantum, to compare with
 *	reported_all_us: the guest's own clock, for both pacers alike (-1
 *	without --sample).  A sample can be tens of us old when the guest stops
 *	in an interrupt handler: for vmpace it is carried to the frozen guest
 *	TSC with the TSC it was taken at; QMP's stop leaves the TSC running, so
 *	its samples stand as they are.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "vcpu-fds.h"
#include "bench.h"

#define WARMUP 3

static struct {
	const char *vmpace, *out, *drift, *wait_line, *pacers, *sample;
	uint32_t quantum_us;
	int count, rounds, vcpus;
} opt = {
	.quantum_us = 1000, .count = 200, .rounds = 2, .vcpus = 1,
	.pacers = "vmpace,qmp",
};

static pid_t qemu = -1;
static int console = -1;
static char qmp_path[108];
static FILE *out, *drift;

/* The guest's clock, as its console last reported it. */
static struct {
	char buf[4096];
	size_t len;
	bool seen;
	int64_t mono_ns;
	bool ready;
} con;

static void die(const char *what, int e)
{
	err("%s: %s", what, strerror(e));
	if (qemu > 0)
		kill(qemu, SIGKILL);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ull + t.tv_nsec;
}

/* Consume what the guest printed; with @wait_ms, wait that long for more. */
static int console_drain(int wait_ms)
{
	struct pollfd p = { .fd = console, .events = POLLIN };
	unsigned long seq;
	long long mono, real;
	char *nl;
	ssize_t n;

	if (console < 0)
		return 0;
	if (wait_ms && poll(&p, 1, wait_ms) < 0 && errno != EINTR)
		return -errno;
	for (;;) {
		n = read(console, con.buf + con.len, sizeof(con.buf) - 1 - con.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -EPIPE;
		con.len += n;
		con.buf[con.len] = '\0';
		while ((nl = strchr(con.buf, '\n'))) {
			*nl = '\0';
			if (opt.wait_line && strstr(con.buf, opt.wait_line))
				con.ready = true;
			if (sscanf(con.buf, "vmpace-guest-clock %lu %lld %lld",
				   &seq, &mono, &real) == 3) {
				con.seen = true;
				con.mono_ns = mono;
			}
			con.len -= nl + 1 - con.buf;
			memmove(con.buf, nl + 1, con.len + 1);
		}
		if (con.len == sizeof(con.buf) - 1)
			con.len = 0;	/* a line longer than the buffer */
	}
}

/* vCPU fds of the VMM (vmpace's finder), borrowed into @fds if not NULL. */
static int vcpu_fds(int *fds, int max)
{
	int all[256], ids[256], n, i, pidfd;

	if (!fds)
		return vp_for_each_vcpu_fd(qemu, NULL, NULL);
	pidfd = syscall(SYS_pidfd_open, qemu, 0);
	if (pidfd < 0)
		return -errno;
	n = vp_borrow_vcpu_fds(qemu, pidfd, all, ids, 256);
	close(pidfd);
	for (i = 0; i < n; i++) {
		if (i < max)
			fds[i] = all[i];
		else
			close(all[i]);
	}
	return n < max ? n : max;
}

/* ----- QMP ----------------------------------------------------------- */

static int qmp = -1;
static char qbuf[8192];
static size_t qlen;

/* Read QMP lines until one holds "return" (0) or "error" (-EIO). */
static int qmp_wait_return(void)
{
	char *nl;
	ssize_t n;

	for (;;) {
		while ((nl = memchr(qbuf, '\n', qlen))) {
			bool ret, error;

			*nl = '\0';
			ret = strstr(qbuf, "\"return\"") && !strstr(qbuf, "\"event\"");
			error = strstr(qbuf, "\"error\"") && !strstr(qbuf, "\"event\"");
			if (error)
				err("QMP: %s", qbuf);
			qlen -= nl + 1 - qbuf;
			memmove(qbuf, nl + 1, qlen);
			if (ret)
				return 0;
			if (error)
				return -EIO;
		}
		if (qlen == sizeof(qbuf))
			qlen = 0;
		n = read(qmp, qbuf + qlen, sizeof(qbuf) - qlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n ? -errno : -EPIPE;
		qlen += n;
	}
}

static int qmp_cmd(const char *cmd)
{
	char msg[128];
	int len = snprintf(msg, sizeof(msg), "{\"execute\":\"%s\"}\n", cmd);

	if (write(qmp, msg, len) != len)
		return -errno;
	return qmp_wait_return();
}

static int qmp_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *nl;
	ssize_t n;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", qmp_path);
	qmp = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (qmp < 0 || connect(qmp, (struct sockaddr *)&sa, sizeof(sa)))
		return -errno;
	/* the greeting */
	while (!(nl = memchr(qbuf, '\n', qlen))) {
		n = read(qmp, qbuf + qlen, sizeof(qbuf) - qlen);
		if (n <= 0)
			return -EPIPE;
		qlen += n;
	}
	qlen -= nl + 1 - qbuf;
	memmove(qbuf, nl + 1, qlen);
	return qmp_cmd("qmp_capabilities");
}

/* ----- the two pacers ------------------------------------------------ */

/* The guest's clock samples in shared memory, see clock-init.c. */
struct sample {
	uint64_t seq;
	uint64_t tsc;
	uint64_t mono_ns;
};

static volatile struct sample *sample_shm;

/*
 * The guest's CLOCK_MONOTONIC at guest TSC @tsc from its latest complete
 * sample; the guest is stopped, maybe in the middle of writing the other of
 * the two slots, or in an interrupt handler: the sample can be tens of us
 * old, so it is carried to @tsc with the guest TSC it was taken at (0: no
 * carrying).
 */
static int64_t sample_ns(uint64_t tsc, uint64_t tsc_khz)
{
	uint64_t best = 0, seq, ns = 0, at = 0;
	int i;

	if (!sample_shm)
		return -1;
	for (i = 0; i < 2; i++) {
		seq = __atomic_load_n(&sample_shm[i].seq, __ATOMIC_ACQUIRE);
		if (seq & 1 || seq <= best)
			continue;
		best = seq;
		ns = sample_shm[i].mono_ns;
		at = sample_shm[i].tsc;
	}
	if (!best)
		die("the guest wrote no clock sample", ENODATA);
	if (tsc && tsc_khz && tsc >= at)
		ns += (tsc - at) * 1000000 / tsc_khz;
	return (int64_t)ns;
}

struct block {
	const char *name;
	int round;
	int64_t sample0_ns, sample1_ns;
	uint64_t reported_us;	/* over the measured quanta */
	bool have_clock0;
	int64_t clock0_ns, clock1_ns;
	uint64_t sim_at_clock0, sim_at_clock1;
	uint64_t tsc0, tsc1, tsc_khz;
	int vcpu_fd;
};

static void record(struct block *b, int seq, uint64_t elapsed, uint64_t host_ns)
{
	fprintf(out, "%s,%d,%u,%d,%d,%u,%llu,%llu\n", b->name, opt.vcpus,
		opt.quantum_us, b->round, seq, opt.quantum_us,
		(unsigned long long)elapsed, (unsigned long long)host_ns);
	if (seq == -1)
		b->sample0_ns = sample_ns(b->tsc0, b->tsc_khz);
	if (seq < 0)
		return;
	b->reported_us += elapsed;
	/* the first guest clock line printed during the measured quanta */
	if (console_drain(0))
		die("guest console", EPIPE);
	if (con.seen && !b->have_clock0) {
		b->have_clock0 = true;
		b->clock0_ns = b->clock1_ns = con.mono_ns;
		b->sim_at_clock0 = b->sim_at_clock1 = b->reported_us;
	} else if (b->have_clock0 && con.mono_ns != b->clock1_ns) {
		/* a new line: printed during the quantum just reported */
		b->clock1_ns = con.mono_ns;
		b->sim_at_clock1 = b->reported_us;
	}
}

static void finish_block(struct block *b)
{
	long long clock_us = -1, reported = b->reported_us, tsc_us = -1;

	if (b->have_clock0) {
		/* between the first and the last clock line of the block */
		clock_us = (b->clock1_ns - b->clock0_ns) / 1000;
		reported = b->sim_at_clock1 - b->sim_at_clock0;
	}
	if (b->tsc1 && b->tsc_khz)
		tsc_us = (b->tsc1 - b->tsc0) * 1000 / b->tsc_khz;
	b->sample1_ns = sample_ns(b->tsc1, b->tsc_khz);
	fprintf(drift, "%s,%d,%u,%d,%d,%lld,%lld,%lld,%llu,%lld\n", b->name, opt.vcpus,
		opt.quantum_us, b->round, opt.count, reported, clock_us, tsc_us,
		(unsigned long long)b->reported_us,
		b->sample1_ns < 0 ? -1LL : (long long)(b->sample1_ns - b->sample0_ns));
	fflush(out);
	fflush(drift);
}

static uint64_t pace_tsc(int fd, uint64_t *khz)
{
	struct kvm_pace_state st;

	if (fd < 0 || ioctl(fd, KVM_GET_PACE_STATE, &st))
		return 0;
	if (khz)
		*khz = st.tsc_khz;
	return st.guest_tsc;
}

static void block_vmpace(int round)
{
	struct block b = { .name = "vmpace", .round = round, .vcpu_fd = -1 };
	int sv[2], status, seq;
	uint64_t t0, t1;
	uint32_t msg;
	pid_t pid;
	char pidstr[16];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		die("socketpair", errno);
	snprintf(pidstr, sizeof(pidstr), "%d", (int)qemu);
	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (!pid) {
		dup2(sv[1], 3);
		execl(opt.vmpace, opt.vmpace, "--pid", pidstr, "--sync-fd", "3",
		      "--on-close", "release", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	if (vcpu_fds(&b.vcpu_fd, 1) != 1)
		b.vcpu_fd = -1;
	for (seq = -WARMUP; seq < opt.count; seq++) {
		t0 = now_ns();
		msg = htonl(opt.quantum_us);
		if (write(sv[0], &msg, 4) != 4)
			die("vmpace: write grant", errno);
		if (recv(sv[0], &msg, 4, MSG_WAITALL) != 4)
			die("vmpace: read report", EPIPE);
		t1 = now_ns();
		if (seq == -1)
			b.tsc0 = pace_tsc(b.vcpu_fd, &b.tsc_khz);
		record(&b, seq, ntohl(msg), t1 - t0);
	}
	b.tsc1 = pace_tsc(b.vcpu_fd, NULL);
	if (!b.tsc0)
		b.tsc1 = 0;
	finish_block(&b);
	if (b.vcpu_fd >= 0)
		close(b.vcpu_fd);
	/* end of session: vmpace releases the guest and exits */
	close(sv[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		die("vmpace did not end its session cleanly", EPROTO);
}

static void block_qmp(int round)
{
	struct block b = { .name = "qmp", .round = round };
	uint64_t t0, t1, t2, t3, wake, total_ns = 0, reported = 0, elapsed;
	struct timespec ts;
	int seq, r;

	r = qmp_cmd("stop");
	for (seq = -WARMUP; !r && seq < opt.count; seq++) {
		t0 = now_ns();
		r = qmp_cmd("cont");
		t1 = now_ns();
		if (r)
			break;
		/* the guest surely runs from t1 on: give it the quantum */
		wake = t1 + opt.quantum_us * 1000ull;
		ts.tv_sec = wake / 1000000000ull;
		ts.tv_nsec = wake % 1000000000ull;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		t2 = now_ns();
		r = qmp_cmd("stop");
		t3 = now_ns();
		total_ns += (t2 + t3) / 2 - (t0 + t1) / 2;
		elapsed = total_ns / 1000 - reported;
		reported += elapsed;
		record(&b, seq, elapsed, t3 - t0);
	}
	if (r)
		die("QMP", -r);
	finish_block(&b);
	/* leave the guest running, as vmpace's release does */
	r = qmp_cmd("cont");
	if (r)
		die("QMP cont", -r);
}

static void start_qemu(char **argv, int argc)
{
	char **args = calloc(argc + 3, sizeof(char *));
	char qmparg[160];
	int p[2], i;
	uint64_t end;

	if (!args)
		die("calloc", ENOMEM);
	snprintf(qmp_path, sizeof(qmp_path), "/tmp/simbench-%d.qmp", (int)getpid());
	snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off", qmp_path);
	unlink(qmp_path);
	memcpy(args, argv, argc * sizeof(char *));
	args[argc] = "-qmp";
	args[argc + 1] = qmparg;
	if (pipe2(p, O_CLOEXEC))
		die("pipe", errno);
	qemu = fork();
	if (qemu < 0)
		die("fork", errno);
	if (!qemu) {
		dup2(p[1], 1);
		execvp(args[0], args);
		_exit(127);
	}
	close(p[1]);
	console = p[0];
	fcntl(console, F_SETFL, O_NONBLOCK);
	free(args);

	/* vCPUs created, QMP socket up; then, if asked, the guest booted */
	end = now_ns() + 180000000000ull;
	for (i = 0; vcpu_fds(NULL, 64) < opt.vcpus || access(qmp_path, F_OK); i++) {
		if (now_ns() > end || waitpid(qemu, NULL, WNOHANG) == qemu)
			die("QEMU did not start", ETIMEDOUT);
		console_drain(10);
	}
	while (opt.wait_line && !con.ready) {
		if (now_ns() > end || waitpid(qemu, NULL, WNOHANG) == qemu)
			die("the guest did not print its ready line", ETIMEDOUT);
		if (console_drain(1000))
			die("guest console", EPIPE);
	}
	i = qmp_connect();
	if (i)
		die("QMP connect", -i);
}

/* Opens @path for appending; a new file starts with the @header line. */
static FILE *open_csv(const char *path, const char *header)
{
	bool fresh = access(path, F_OK) != 0;
	FILE *f = fopen(path, "a");

	if (!f)
		die(path, errno);
	if (fresh)
		fprintf(f, "%s\n", header);
	return f;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vmpace", required_argument, NULL, 'v' },
		{ "out", required_argument, NULL, 'o' },
		{ "drift", required_argument, NULL, 'd' },
		{ "sample", required_argument, NULL, 'S' },
		{ "quantum-us", required_argument, NULL, 'q' },
		{ "count", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "wait-line", required_argument, NULL, 'w' },
		{ "pacers", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	int c, round;

	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 'v': opt.vmpace = optarg; break;
		case 'o': opt.out = optarg; break;
		case 'd': opt.drift = optarg; break;
		case 'S': opt.sample = optarg; break;
		case 'q': opt.quantum_us = strtoul(optarg, NULL, 0); break;
		case 'n': opt.count = atoi(optarg); break;
		case 'r': opt.rounds = atoi(optarg); break;
		case 'c': opt.vcpus = atoi(optarg); break;
		case 'w': opt.wait_line = optarg; break;
		case 'p': opt.pacers = optarg; break;
		default: return 1;
		}
	}
	if (!opt.vmpace || !opt.out || !opt.drift || optind >= argc || !opt.quantum_us ||
	    opt.count <= 0 || opt.rounds <= 0 || opt.vcpus <= 0) {
		err("usage: simbench --vmpace PATH --out CSV --drift CSV [--quantum-us Q] "
		    "[--count N] [--rounds R] [--vcpus V] [--wait-line TEXT] [--pacers vmpace,qmp] "
		    "[--sample SHM] -- QEMU...");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	out = open_csv(opt.out, "pacer,vcpus,quantum_us,round,seq,grant_us,elapsed_us,host_ns");
	drift = open_csv(opt.drift, "pacer,vcpus,quantum_us,round,quanta,reported_us,clock_us,"
			 "tsc_us,reported_all_us,sample_ns");
	if (opt.sample) {
		int fd = open(opt.sample, O_RDONLY);
		void *p = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);

		if (p == MAP_FAILED)
			die(opt.sample, errno);
		sample_shm = p;
	}

	start_qemu(argv + optind, argc - optind);
	for (round = 0; round < opt.rounds; round++) {
		bool v = strstr(opt.pacers, "vmpace"), q = strstr(opt.pacers, "qmp");

		if (v && (round % 2 == 0 || !q))
			block_vmpace(round);
		if (q)
			block_qmp(round);
		if (v && q && round % 2)
			block_vmpace(round);
		printf("simbench: %d vCPU(s), round %d of %d done\n", opt.vcpus, round + 1,
		       opt.rounds);
		fflush(stdout);
	}
	kill(qemu, SIGTERM);
	waitpid(qemu, NULL, 0);
	unlink(qmp_path);
	fclose(out);
	fclose(drift);
	return 0;
}
