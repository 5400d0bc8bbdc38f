// SPDX-License-Identifier: GPL-2.0
/*
 * simbench: a simulator loop that paces one stock QEMU two ways and the
 * seed's QEMU, in turns, with the same loop: write a grant, wait for the
 * guest, record the report.
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
 *   seed    the seed itself: QEMU 7.2 with our port of -external_sim
 *           (bench/seed/), its own QEMU process started from the command line
 *           after "::" plus "-external_sim sock=FD", same loop as vmpace's on
 *           that socket.  It is paced from its first instruction (with
 *           --wait-line it boots in 10 ms grants) and stays held between its
 *           blocks; the stock QEMU is stopped (QMP) during them.
 *
 * usage: simbench --vmpace PATH --out CSV --drift CSV [--quantum-us Q]
 *                 [--count N] [--rounds R] [--warmup N] [--vcpus V]
 *                 [--wait-line TEXT]
 *                 [--pacers vmpace,qmp,seed] [--sample SHM]
 *                 [--seed-sample SHM] [--seed-name NAME]
 *                 -- QEMU COMMAND LINE [:: SEED QEMU COMMAND LINE]
 * Every round runs a block of N quanta with each pacer (rotating which
 * goes first) on the same QEMU (the seed on its own), after an unrecorded
 * round of W-quanta blocks with --warmup W; the first WARMUP quanta of a
 * block have a negative seq, and with --sample so do the quanta until the
 * guest stored a clock sample during the block.  With --wait-line, the
 * guest boots freely until its console prints TEXT; its "vmpace-guest-clock SEQ MONO_NS REAL_NS" lines then give
 * the guest's own clock for the drift CSV.
 *
 * CSV rows: pacer,vcpus,quantum_us,round,seq,grant_us,elapsed_us,host_ns,
 *	guest_ns (with --sample: the guest's CLOCK_MONOTONIC at the report, from
 *	its latest sample, carried to the frozen TSC for vmpace; else -1)
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
#define MAX_WARMUP 100000

static struct {
	const char *vmpace, *out, *drift, *wait_line, *pacers, *sample, *seed_name;
	uint32_t quantum_us;
	int count, rounds, vcpus, warmup;
} opt = {
	.quantum_us = 1000, .count = 200, .rounds = 2, .vcpus = 1,
	.pacers = "vmpace,qmp", .seed_name = "seed",
};

/* The guest's clock samples in shared memory, see clock-init.c. */
struct sample {
	uint64_t seq;
	uint64_t tsc;
	uint64_t mono_ns;
};

/* A QEMU process: the stock one, or the seed's (-external_sim). */
struct vmm {
	const char *name;
	pid_t pid;
	int console;
	/* the guest's clock, as its console last reported it */
	struct {
		char buf[4096];
		size_t len;
		bool seen;
		int64_t mono_ns;
		bool ready;
	} con;
	volatile struct sample *sample_shm;
	int sync;	/* seed: our end of its -external_sim socket */
	/* the last lines its console printed, for a failure's message */
	char tail[2048];
	size_t tail_len;
	/* reaped: how it ended */
	bool ended;
	int status;
};

static struct vmm stock = { .name = "QEMU", .pid = -1, .console = -1, .sync = -1 };
static struct vmm seed = { .name = "seed QEMU", .pid = -1, .console = -1, .sync = -1 };
static char qmp_path[108];
static FILE *out, *drift;
/* the warm-up round: blocks of opt.warmup quanta, nothing recorded */
static bool quiet;

/* Quanta per block. */
static int blk_count(void)
{
	return quiet ? opt.warmup : opt.count;
}

/* Whether the QEMU process has ended (reaped then, its status kept). */
static bool vmm_ended(struct vmm *m)
{
	if (!m->ended && m->pid > 0 && waitpid(m->pid, &m->status, WNOHANG) == m->pid)
		m->ended = true;
	return m->ended;
}

static int console_drain(struct vmm *m, int wait_ms);

/* On a failure: how a QEMU ended, or that it still runs, and its console's last lines. */
static void vmm_post_mortem(struct vmm *m)
{
	if (m->pid <= 0)
		return;
	console_drain(m, 0);
	if (!vmm_ended(m))
		err("%s (pid %d) still runs", m->name, (int)m->pid);
	else if (WIFEXITED(m->status))
		err("%s exited with status %d", m->name, WEXITSTATUS(m->status));
	else
		err("%s was killed by signal %d (%s)", m->name, WTERMSIG(m->status),
		    strsignal(WTERMSIG(m->status)));
	if (m->tail_len)
		err("%s: the last lines its guest's console printed:\n%.*s", m->name,
		    (int)m->tail_len - 1, m->tail);
	else
		err("%s: its guest's console printed nothing", m->name);
}

static void die(const char *what, int e)
{
	err("%s: %s", what, strerror(e));
	vmm_post_mortem(&stock);
	vmm_post_mortem(&seed);
	if (stock.pid > 0 && !stock.ended)
		kill(stock.pid, SIGKILL);
	if (seed.pid > 0 && !seed.ended)
		kill(seed.pid, SIGKILL);
	exit(1);
}

/* Keeps @line (without its newline) among the console's last lines. */
static void tail_add(struct vmm *m, const char *line)
{
	size_t n = strlen(line) + 1, cut;
	char *nl;

	if (n > sizeof(m->tail)) {
		line += n - sizeof(m->tail);
		n = sizeof(m->tail);
	}
	while (m->tail_len + n > sizeof(m->tail)) {
		nl = memchr(m->tail, '\n', m->tail_len);
		cut = nl ? (size_t)(nl + 1 - m->tail) : m->tail_len;
		m->tail_len -= cut;
		memmove(m->tail, m->tail + cut, m->tail_len);
	}
	memcpy(m->tail + m->tail_len, line, n - 1);
	m->tail[m->tail_len + n - 1] = '\n';
	m->tail_len += n;
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ull + t.tv_nsec;
}

/* Consume what the guest printed; with @wait_ms, wait that long for more. */
static int console_drain(struct vmm *m, int wait_ms)
{
	struct pollfd p = { .fd = m->console, .events = POLLIN };
	unsigned long seq;
	long long mono, real;
	char *nl;
	ssize_t n;

	if (m->console < 0)
		return 0;
	if (wait_ms && poll(&p, 1, wait_ms) < 0 && errno != EINTR)
		return -errno;
	for (;;) {
		n = read(m->console, m->con.buf + m->con.len,
			 sizeof(m->con.buf) - 1 - m->con.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -EPIPE;
		m->con.len += n;
		m->con.buf[m->con.len] = '\0';
		while ((nl = strchr(m->con.buf, '\n'))) {
			*nl = '\0';
			tail_add(m, m->con.buf);
			if (opt.wait_line && strstr(m->con.buf, opt.wait_line) && !m->con.ready) {
				m->con.ready = true;
				err("%s: %s", m->name, m->con.buf);
			}
			if (sscanf(m->con.buf, "vmpace-guest-clock %lu %lld %lld",
				   &seq, &mono, &real) == 3) {
				m->con.seen = true;
				m->con.mono_ns = mono;
			}
			m->con.len -= nl + 1 - m->con.buf;
			memmove(m->con.buf, nl + 1, m->con.len + 1);
		}
		if (m->con.len == sizeof(m->con.buf) - 1)
			m->con.len = 0;	/* a line longer than the buffer */
	}
}

/* vCPU fds of the VMM (vmpace's finder), borrowed into @fds if not NULL. */
static int vcpu_fds(struct vmm *m, int *fds, int max)
{
	int all[256], ids[256], n, i, pidfd;

	if (!fds)
		return vp_for_each_vcpu_fd(m->pid, NULL, NULL);
	pidfd = syscall(SYS_pidfd_open, m->pid, 0);
	if (pidfd < 0)
		return -errno;
	n = vp_borrow_vcpu_fds(m->pid, pidfd, all, ids, 256);
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

/*
 * The sequence number of the guest's latest complete sample, 0 if none; its
 * CLOCK_MONOTONIC and guest TSC into @ns and @tsc if not NULL.  The guest
 * writes the two slots in turn, each with an odd seq while it writes.
 */
static uint64_t latest_sample(struct vmm *m, uint64_t *ns, uint64_t *tsc)
{
	uint64_t best = 0;
	int i;

	for (i = 0; m->sample_shm && i < 2; i++) {
		volatile struct sample *slot = &m->sample_shm[i];
		uint64_t seq = __atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE);

		if (seq & 1 || seq <= best)
			continue;
		best = seq;
		if (ns)
			*ns = slot->mono_ns;
		if (tsc)
			*tsc = slot->tsc;
	}
	return best;
}

/*
 * The guest's CLOCK_MONOTONIC at guest TSC @tsc from its latest complete
 * sample; the guest is stopped, maybe in the middle of writing the other of
 * the two slots, or in an interrupt handler: the sample can be tens of us
 * old, so it is carried to @tsc with the guest TSC it was taken at (0: no
 * carrying).
 */
static int64_t sample_ns(struct vmm *m, uint64_t tsc, uint64_t tsc_khz)
{
	uint64_t ns = 0, at = 0;

	if (!m->sample_shm)
		return -1;
	if (!latest_sample(m, &ns, &at)) {
		err("%s: no complete clock sample (slot seqs %llu, %llu)", m->name,
		    (unsigned long long)m->sample_shm[0].seq,
		    (unsigned long long)m->sample_shm[1].seq);
		die("the guest wrote no clock sample", ENODATA);
	}
	if (tsc && tsc_khz && tsc >= at)
		ns += (tsc - at) * 1000000 / tsc_khz;
	return (int64_t)ns;
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

/* Without sample memory, or once the guest completed a sample. */
static bool has_sample(struct vmm *m)
{
	return !m->sample_shm || latest_sample(m, NULL, NULL);
}

struct block {
	const char *name;
	struct vmm *vm;
	int round;
	int64_t sample0_ns, sample1_ns;
	uint64_t reported_us;	/* over the measured quanta */
	bool have_clock0;
	int64_t clock0_ns, clock1_ns;
	uint64_t sim_at_clock0, sim_at_clock1;
	uint64_t tsc0, tsc1, tsc_khz;
	int vcpu_fd;
	uint64_t seq_start;	/* the guest's latest sample when the block began */
	int extra_warmup;
};

static void block_begin(struct block *b)
{
	b->seq_start = latest_sample(b->vm, NULL, NULL);
}

/*
 * The seq of the next quantum.  The warm-up (negative seq) lasts WARMUP
 * quanta and, with sample memory, until the guest stored a clock sample
 * during this block: a guest held between blocks whose clock ran meanwhile
 * (the seed with kvm-clock) first catches up with the hold, which belongs
 * to our interleaving of pacers, not to the pacer measured.
 */
static int next_seq(struct block *b, int seq)
{
	if (seq == -1 && b->vm->sample_shm && latest_sample(b->vm, NULL, NULL) <= b->seq_start &&
	    ++b->extra_warmup < MAX_WARMUP)
		return -1;
	return seq + 1;
}

static void record(struct block *b, int seq, uint64_t elapsed, uint64_t host_ns)
{
	int64_t guest_ns = -1;

	if (quiet)
		return;
	/* the guest's own clock at this report (vmpace: carried to the frozen TSC) */
	if (b->vm->sample_shm)
		guest_ns = sample_ns(b->vm, b->vcpu_fd >= 0 ? pace_tsc(b->vcpu_fd, NULL) : 0,
				     b->tsc_khz);
	fprintf(out, "%s,%d,%u,%d,%d,%u,%llu,%llu,%lld\n", b->name, opt.vcpus,
		opt.quantum_us, b->round, seq, opt.quantum_us,
		(unsigned long long)elapsed, (unsigned long long)host_ns, (long long)guest_ns);
	if (seq == -1)
		b->sample0_ns = sample_ns(b->vm, b->tsc0, b->tsc_khz);
	if (seq < 0)
		return;
	b->reported_us += elapsed;
	/* the first guest clock line printed during the measured quanta */
	if (console_drain(b->vm, 0))
		die("guest console", EPIPE);
	if (b->vm->con.seen && !b->have_clock0) {
		b->have_clock0 = true;
		b->clock0_ns = b->clock1_ns = b->vm->con.mono_ns;
		b->sim_at_clock0 = b->sim_at_clock1 = b->reported_us;
	} else if (b->have_clock0 && b->vm->con.mono_ns != b->clock1_ns) {
		/* a new line: printed during the quantum just reported */
		b->clock1_ns = b->vm->con.mono_ns;
		b->sim_at_clock1 = b->reported_us;
	}
}

static void finish_block(struct block *b)
{
	long long clock_us = -1, reported = b->reported_us, tsc_us = -1;

	if (quiet)
		return;
	if (b->have_clock0) {
		/* between the first and the last clock line of the block */
		clock_us = (b->clock1_ns - b->clock0_ns) / 1000;
		reported = b->sim_at_clock1 - b->sim_at_clock0;
	}
	if (b->tsc1 && b->tsc_khz)
		tsc_us = (b->tsc1 - b->tsc0) * 1000 / b->tsc_khz;
	b->sample1_ns = sample_ns(b->vm, b->tsc1, b->tsc_khz);
	fprintf(drift, "%s,%d,%u,%d,%d,%lld,%lld,%lld,%llu,%lld\n", b->name, opt.vcpus,
		opt.quantum_us, b->round, blk_count(), reported, clock_us, tsc_us,
		(unsigned long long)b->reported_us,
		b->sample1_ns < 0 ? -1LL : (long long)(b->sample1_ns - b->sample0_ns));
	fflush(out);
	fflush(drift);
}

/* One quantum over the seed protocol: write the grant, read the report. */
static uint32_t grant(int fd, uint32_t us, const char *who)
{
	uint32_t msg = htonl(us);

	if (write(fd, &msg, 4) != 4)
		die(who, errno);
	if (recv(fd, &msg, 4, MSG_WAITALL) != 4)
		die(who, EPIPE);
	return ntohl(msg);
}

static void block_vmpace(int round)
{
	struct block b = { .name = "vmpace", .vm = &stock, .round = round, .vcpu_fd = -1 };
	int sv[2], status, seq;
	uint64_t t0, t1;
	uint32_t elapsed;
	pid_t pid;
	char pidstr[16];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		die("socketpair", errno);
	snprintf(pidstr, sizeof(pidstr), "%d", (int)stock.pid);
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
	if (vcpu_fds(&stock, &b.vcpu_fd, 1) != 1)
		b.vcpu_fd = -1;
	block_begin(&b);
	for (seq = -WARMUP; seq < blk_count(); seq = next_seq(&b, seq)) {
		t0 = now_ns();
		elapsed = grant(sv[0], opt.quantum_us, "vmpace");
		t1 = now_ns();
		if (seq == -1)
			b.tsc0 = pace_tsc(b.vcpu_fd, &b.tsc_khz);
		record(&b, seq, elapsed, t1 - t0);
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
	struct block b = { .name = "qmp", .vm = &stock, .round = round, .vcpu_fd = -1 };
	uint64_t t0, t1, t2, t3, wake, total_ns = 0, reported = 0, elapsed;
	struct timespec ts;
	int seq, r;

	block_begin(&b);
	r = qmp_cmd("stop");
	for (seq = -WARMUP; !r && seq < blk_count(); seq = next_seq(&b, seq)) {
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

/*
 * The seed (QEMU's -external_sim, bench/seed/): the same loop as vmpace's on
 * the socket the seed QEMU inherited.  It answers once its virtual-clock
 * timer has fired and it has kicked its vCPUs; it then blocks in its main
 * loop until the next grant, so between blocks it stays held.  The stock
 * QEMU is stopped meanwhile, so that only one guest runs.
 */
static void block_seed(int round)
{
	struct block b = { .name = opt.seed_name, .vm = &seed, .round = round, .vcpu_fd = -1 };
	uint32_t elapsed;
	uint64_t t0;
	int seq, r;

	r = stock.pid > 0 ? qmp_cmd("stop") : 0;
	if (r)
		die("QMP stop", -r);
	block_begin(&b);
	for (seq = -WARMUP; seq < blk_count(); seq = next_seq(&b, seq)) {
		t0 = now_ns();
		elapsed = grant(seed.sync, opt.quantum_us, "seed");
		record(&b, seq, elapsed, now_ns() - t0);
	}
	finish_block(&b);
	r = stock.pid > 0 ? qmp_cmd("cont") : 0;
	if (r)
		die("QMP cont", -r);
}

/* Starts @argv with its console on a pipe; @keep_fd stays open in it. */
static void spawn(struct vmm *m, char **argv, int keep_fd)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC))
		die("pipe", errno);
	m->pid = fork();
	if (m->pid < 0)
		die("fork", errno);
	if (!m->pid) {
		dup2(p[1], 1);
		if (keep_fd >= 0)
			fcntl(keep_fd, F_SETFD, 0);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	m->console = p[0];
	fcntl(m->console, F_SETFL, O_NONBLOCK);
}

static void wait_vcpus(struct vmm *m, uint64_t end)
{
	while (vcpu_fds(m, NULL, 64) < opt.vcpus) {
		if (now_ns() > end || vmm_ended(m))
			die(m->name, ETIMEDOUT);
		console_drain(m, 10);
	}
}

static void start_qemu(char **argv, int argc)
{
	char **args = calloc(argc + 3, sizeof(char *));
	char qmparg[160];
	uint64_t end;
	int r;

	if (!args)
		die("calloc", ENOMEM);
	snprintf(qmp_path, sizeof(qmp_path), "/tmp/simbench-%d.qmp", (int)getpid());
	snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off", qmp_path);
	unlink(qmp_path);
	memcpy(args, argv, argc * sizeof(char *));
	args[argc] = "-qmp";
	args[argc + 1] = qmparg;
	spawn(&stock, args, -1);
	free(args);

	/* vCPUs created, QMP socket up; then, if asked, the guest booted */
	end = now_ns() + 180000000000ull;
	wait_vcpus(&stock, end);
	while (access(qmp_path, F_OK)) {
		if (now_ns() > end || vmm_ended(&stock))
			die("QEMU did not start", ETIMEDOUT);
		console_drain(&stock, 10);
	}
	while (opt.wait_line && !stock.con.ready) {
		if (now_ns() > end || vmm_ended(&stock))
			die("the guest did not print its ready line", ETIMEDOUT);
		if (console_drain(&stock, 1000))
			die("guest console", EPIPE);
	}
	r = qmp_connect();
	if (r)
		die("QMP connect", -r);
}

/*
 * The seed QEMU: @argv with -external_sim on a socketpair.  It is paced from
 * its first instruction, so with --wait-line it boots in 10 ms grants.
 */
static void start_seed(char **argv, int argc)
{
	char **args = calloc(argc + 3, sizeof(char *));
	char sockarg[32];
	uint64_t end;
	int sv[2];

	if (!args)
		die("calloc", ENOMEM);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		die("socketpair", errno);
	snprintf(sockarg, sizeof(sockarg), "sock=%d", sv[1]);
	memcpy(args, argv, argc * sizeof(char *));
	args[argc] = "-external_sim";
	args[argc + 1] = sockarg;
	spawn(&seed, args, sv[1]);
	free(args);
	close(sv[1]);
	seed.sync = sv[0];
	end = now_ns() + 180000000000ull;
	wait_vcpus(&seed, end);
	/*
	 * Booted, and with a complete clock sample if it samples: the blocks
	 * start from one (the guest is held between them, and with kvm-clock
	 * its clock jumps by the hold when it runs again: its first quanta can
	 * go to the kernel's reaction to that, before the sampler's next store).
	 */
	while ((opt.wait_line && !seed.con.ready) || !has_sample(&seed)) {
		if (now_ns() > end)
			die("the seed's guest did not print its ready line or sample its clock",
			    ETIMEDOUT);
		grant(seed.sync, 10000, "seed");
		if (console_drain(&seed, 0))
			die("seed guest console", EPIPE);
	}
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

static void map_sample(struct vmm *m, const char *path)
{
	int fd = open(path, O_RDONLY);
	void *p = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		die(path, errno);
	close(fd);
	m->sample_shm = p;
}

/* The seed QEMU ends when its socket closes; it must not linger. */
static void end_seed(void)
{
	uint64_t end = now_ns() + 10000000000ull;

	close(seed.sync);
	while (!vmm_ended(&seed)) {
		if (now_ns() > end)
			die("the seed QEMU did not end when its socket closed", ETIMEDOUT);
		console_drain(&seed, 10);
	}
	if (!WIFEXITED(seed.status) || WEXITSTATUS(seed.status))
		die("the seed QEMU failed", EPROTO);
	seed.pid = -1;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vmpace", required_argument, NULL, 'v' },
		{ "out", required_argument, NULL, 'o' },
		{ "drift", required_argument, NULL, 'd' },
		{ "sample", required_argument, NULL, 'S' },
		{ "seed-sample", required_argument, NULL, 's' },
		{ "seed-name", required_argument, NULL, 'N' },
		{ "quantum-us", required_argument, NULL, 'q' },
		{ "count", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "warmup", required_argument, NULL, 'W' },
		{ "vcpus", required_argument, NULL, 'c' },
		{ "wait-line", required_argument, NULL, 'w' },
		{ "pacers", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	void (*blocks[3])(int);
	int c, round, nr = 0, nstock, nseed = 0, k;
	const char *seed_sample = NULL;
	char **seed_argv = NULL;

	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 'v': opt.vmpace = optarg; break;
		case 'o': opt.out = optarg; break;
		case 'd': opt.drift = optarg; break;
		case 'S': opt.sample = optarg; break;
		case 's': seed_sample = optarg; break;
		case 'N': opt.seed_name = optarg; break;
		case 'q': opt.quantum_us = strtoul(optarg, NULL, 0); break;
		case 'n': opt.count = atoi(optarg); break;
		case 'r': opt.rounds = atoi(optarg); break;
		case 'W': opt.warmup = atoi(optarg); break;
		case 'c': opt.vcpus = atoi(optarg); break;
		case 'w': opt.wait_line = optarg; break;
		case 'p': opt.pacers = optarg; break;
		default: return 1;
		}
	}
	/* STOCK QEMU... [:: SEED QEMU...] */
	for (nstock = 0; optind + nstock < argc; nstock++) {
		if (!strcmp(argv[optind + nstock], "::")) {
			seed_argv = argv + optind + nstock + 1;
			nseed = argc - optind - nstock - 1;
			break;
		}
	}
	if (strstr(opt.pacers, "vmpace"))
		blocks[nr++] = block_vmpace;
	if (strstr(opt.pacers, "qmp"))
		blocks[nr++] = block_qmp;
	if (strstr(opt.pacers, "seed"))
		blocks[nr++] = block_seed;
	if (!opt.vmpace || !opt.out || !opt.drift || !nstock || !opt.quantum_us ||
	    opt.count <= 0 || opt.rounds <= 0 || opt.vcpus <= 0 || !nr || opt.warmup < 0 ||
	    (strstr(opt.pacers, "seed") && !nseed)) {
		err("usage: simbench --vmpace PATH --out CSV --drift CSV [--quantum-us Q] "
		    "[--count N] [--rounds R] [--warmup N] [--vcpus V] [--wait-line TEXT] "
		    "[--pacers vmpace,qmp,seed] [--sample SHM] [--seed-sample SHM] [--seed-name NAME] "
		    "-- QEMU... [:: SEED-QEMU...]");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	out = open_csv(opt.out,
		       "pacer,vcpus,quantum_us,round,seq,grant_us,elapsed_us,host_ns,guest_ns");
	drift = open_csv(opt.drift, "pacer,vcpus,quantum_us,round,quanta,reported_us,clock_us,"
			 "tsc_us,reported_all_us,sample_ns");
	if (opt.sample)
		map_sample(&stock, opt.sample);
	if (seed_sample)
		map_sample(&seed, seed_sample);

	/* the stock QEMU, unless only the seed is measured */
	if (strstr(opt.pacers, "vmpace") || strstr(opt.pacers, "qmp"))
		start_qemu(argv + optind, nstock);
	if (nseed && strstr(opt.pacers, "seed"))
		start_seed(seed_argv, nseed);
	/*
	 * A warm-up round first, if asked: every pacer runs a block that is not
	 * recorded, so that no pacer's measured block is a freshly started
	 * QEMU's first.  Then the pacers take turns, the first one rotating
	 * every round.
	 */
	if (opt.warmup) {
		quiet = true;
		for (k = 0; k < nr; k++)
			blocks[k](-1);
		quiet = false;
	}
	for (round = 0; round < opt.rounds; round++) {
		for (k = 0; k < nr; k++)
			blocks[(round + k) % nr](round);
		printf("simbench: %d vCPU(s), round %d of %d done\n", opt.vcpus, round + 1,
		       opt.rounds);
		fflush(stdout);
	}
	if (seed.pid > 0)
		end_seed();
	if (stock.pid > 0) {
		kill(stock.pid, SIGTERM);
		waitpid(stock.pid, NULL, 0);
		unlink(qmp_path);
	}
	fclose(out);
	fclose(drift);
	return 0;
}
