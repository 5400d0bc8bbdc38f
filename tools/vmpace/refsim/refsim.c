// SPDX-License-Identifier: GPL-2.0
/*
 * refsim: a reference simulator for vmpace, and an example for simulator
 * authors.
 *
 * It does what the adevs library does with a QEMU patched for -external_sim,
 * but with a stock QEMU, through libvmpace(3): vmp_spawn() starts the VMM,
 * here "vmpace run --sync-fd 3 -- qemu ...", with its end of a socketpair on
 * fd 3, and then it drives the guest's time in quanta:
 *
 *   vmp_grant(v, grant_us)       the guest may advance grant_us
 *   vmp_await(v, &elapsed, ...)  elapsed us actually elapsed (>= grant)
 *
 * which on the wire is the seed protocol: htonl(grant_us) written,
 * ntohl(elapsed) read.
 * Between quanta it "simulates" for --stall-us of host time, so host time and
 * simulated time run at very different rates.  The guest prints its own
 * CLOCK_MONOTONIC on QEMU's debug console (vmpace-guest-clock lines), which
 * refsim adds to the QEMU command line on a FIFO of its own.  Each byte there
 * is a synchronous I/O exit, so a line first read after the report of quantum
 * j was written out during quantum j: the clock value the guest read before
 * writing it is at most the end of quantum j in guest time, and the value it
 * read after writing it (sent with the next line) at least the start of
 * quantum j.  If the guest's clock is simulated time plus a constant, that
 * constant lies between those bounds for every line: the verdict is whether
 * such a constant exists (the guest clock follows simulated time within one
 * quantum, with no assumption on timing), and refsim prints the range of
 * constants every line allows, a table, and the largest drift of the clock
 * read before each line from simulated time at the end of its quantum.  The
 * serial console (boot messages, kernel reports) is read as well.
 *
 * usage: refsim [options] -- QEMU-COMMAND-LINE
 *   --vmpace PATH        vmpace binary (default: vmpace from $PATH)
 *   --quantum-us N       grant per quantum once the guest is up (10000)
 *   --boot-quantum-us N  grant per quantum while it boots (100000)
 *   --sim-ms N           simulated time to run once the guest is up (3000)
 *   --stall-us N         host time spent between quanta (20000)
 *   --table-every N      print a table row every N guest clock lines (10)
 *   --close-mid-quantum  end by closing the socket without reading the
 *                        last report (tests the end of a session)
 *   --vmpace-opt ARG     pass ARG to vmpace (repeatable), e.g. --trace=FILE
 *   --echo-console       copy the guest's console to stderr
 *   --attach PID         pace a running VMM instead ("vmpace --pid PID"); its
 *                        console must then be written to --console FILE and
 *                        its debug console to the FIFO --clock FIFO
 *   --console FILE       read the guest's console from FILE
 *   --clock FIFO         read the guest's clock lines from FIFO
 *   --vmpace-qemu PATH   start the guest as adevs does with a QEMU patched for
 *                        -external_sim: a socketpair without close-on-exec,
 *                        both ends inherited, and "PATH QEMU-ARGS...
 *                        -external_sim sock=N" (PATH: vmpace-qemu); libvmpace
 *                        then only speaks the protocol (vmp_from_fd)
 * Exit status: 0 if the guest's clock followed simulated time, 1 if not,
 * 2 on errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock-bounds.h"
#include "libvmpace.h"

static struct {
	const char *vmpace;
	uint32_t quantum_us, boot_quantum_us, stall_us;
	uint64_t sim_ms;
	int table_every;
	bool close_mid_quantum, echo_console;
	const char *attach, *console_file, *clock_fifo, *qemu_wrapper;
	char *vmpace_opts[16];
	int nr_vmpace_opts;
} opt = {
	.vmpace = "vmpace",
	.quantum_us = 10000,
	.boot_quantum_us = 100000,
	.sim_ms = 3000,
	.stall_us = 20000,
	.table_every = 10,
};

static struct vmp *vm;
static int console = -1, clockfd = -1;
static pid_t child;
static uint64_t sim_us;			/* simulated time: sum of reports */
static struct timespec host0;

/* guest clock bookkeeping */
static bool ready, measuring;
static bool have_first;
static uint64_t first_guest_ns, first_sim_us, first_host_us;
static uint64_t last_guest_ns, last_sim_us;
static uint64_t prev_sim_us;		/* simulated time when the quantum began */
static int64_t max_drift_us;
/* guest - simulated (us), which every line bounds, for an exact clock */
static struct clock_bounds bounds;
static unsigned long lines, kernel_reports;

struct lines {
	int fd;
	char buf[4096];
	size_t len;
	void (*fn)(char *line);
};

static uint64_t host_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - host0.tv_sec) * 1000000ull +
	       (t.tv_nsec - host0.tv_nsec) / 1000;
}

static void die(const char *what)
{
	fprintf(stderr, "refsim: %s: %s\n", what, strerror(errno));
	if (child > 0)
		kill(child, SIGTERM);
	exit(2);
}

/*
 * A libvmpace call failed: its message says what happened; ending the
 * session tells how vmpace ended (it is our child unless --vmpace-qemu).
 */
static void die_vmp(const char *what)
{
	int status;

	fprintf(stderr, "refsim: %s: %s\n", what, vmp_errmsg(vm));
	if (vm && vmp_pid(vm)) {
		vmp_close(vm, 15000, &status);
		fprintf(stderr, "refsim: %s\n", vmp_errmsg(vm));
	} else if (child > 0) {
		kill(child, SIGTERM);
	}
	exit(2);
}

static void on_console_line(char *line)
{
	if (opt.echo_console)
		fprintf(stderr, "guest: %s\n", line);
	/* a guest that notices the holds complains about stalls */
	if (strstr(line, "soft lockup") || strstr(line, "rcu_sched") ||
	    strstr(line, "rcu_preempt") || strstr(line, "hung_task") ||
	    strstr(line, "BUG:") || strstr(line, "WARNING:") ||
	    strstr(line, "clocksource watchdog")) {
		kernel_reports++;
		fprintf(stderr, "refsim: guest kernel report: %s\n", line);
	}
}

/*
 * A clock line read after the report of the quantum that ran from simulated
 * time prev_sim_us to sim_us: the guest printed it in that quantum.
 */
static void on_clock_line(char *line)
{
	long long before, after;
	unsigned long seq;
	int64_t drift;

	if (strstr(line, "vmpace-guest-ready") && !ready) {
		ready = true;
		printf("refsim: guest up after %.3f s simulated, %.3f s host\n",
		       sim_us / 1e6, host_us() / 1e6);
		printf("%12s %12s %12s %10s\n", "sim_ms", "guest_ms", "host_ms", "drift_ms");
		return;
	}
	if (sscanf(line, "vmpace-guest-clock %lu %lld %lld", &seq, &before, &after) != 3)
		return;
	/* Only lines of small quanta: a boot quantum is a coarse bound. */
	if (!measuring)
		return;
	if (!have_first) {
		have_first = true;
		first_guest_ns = before;
		first_sim_us = sim_us;
		first_host_us = host_us();
	}
	last_guest_ns = before;
	last_sim_us = sim_us;
	drift = clock_bounds_add(&bounds, before - (int64_t)first_guest_ns,
				 after - (int64_t)first_guest_ns,
				 (int64_t)prev_sim_us - (int64_t)first_sim_us,
				 (int64_t)sim_us - (int64_t)first_sim_us);
	if (llabs(drift) > llabs(max_drift_us))
		max_drift_us = drift;
	if (lines++ % opt.table_every == 0)
		printf("%12.1f %12.1f %12.1f %10.1f\n", (sim_us - first_sim_us) / 1e3,
		       (before - first_guest_ns) / 1e6, (host_us() - first_host_us) / 1e3,
		       drift / 1e3);
}

/* Read whole lines available on @l; never blocks. */
static void drain(struct lines *l)
{
	ssize_t n;
	char *nl;

	if (l->fd < 0)
		return;
	for (;;) {
		n = read(l->fd, l->buf + l->len, sizeof(l->buf) - 1 - l->len);
		if (n <= 0)
			return;
		l->len += n;
		l->buf[l->len] = '\0';
		while ((nl = strchr(l->buf, '\n'))) {
			*nl = '\0';
			l->fn(l->buf);
			l->len -= nl + 1 - l->buf;
			memmove(l->buf, nl + 1, l->len + 1);
		}
		if (l->len == sizeof(l->buf) - 1)
			l->len = 0;	/* overlong line: drop it */
	}
}

static struct lines console_lines = { .fd = -1, .fn = on_console_line };
static struct lines clock_lines = { .fd = -1, .fn = on_clock_line };

/* One quantum: grant, then wait for the report while reading the console. */
static uint64_t quantum(uint32_t grant_us)
{
	struct pollfd p[2] = {
		{ .fd = vmp_fd(vm), .events = POLLIN },
		{ .fd = console, .events = POLLIN },
	};
	uint64_t elapsed;
	int r;

	if (vmp_grant(vm, grant_us))
		die_vmp("grant");
	for (;;) {
		/* a console file is always readable: read it after the report */
		if (poll(p, opt.console_file ? 1 : 2, -1) < 0 && errno != EINTR)
			die("poll");
		if (!opt.console_file && p[1].revents)
			drain(&console_lines);
		if (p[0].revents) {
			/* what is there: a report, or part of one (-ETIMEDOUT) */
			r = vmp_await(vm, &elapsed, 0);
			if (!r)
				return elapsed;
			if (r != -ETIMEDOUT)
				die_vmp("report");
		}
	}
}

static void stall(void)
{
	struct timespec t = { opt.stall_us / 1000000, (opt.stall_us % 1000000) * 1000L };

	while (nanosleep(&t, &t) && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vmpace", required_argument, NULL, 'v' },
		{ "quantum-us", required_argument, NULL, 'q' },
		{ "boot-quantum-us", required_argument, NULL, 'b' },
		{ "sim-ms", required_argument, NULL, 's' },
		{ "stall-us", required_argument, NULL, 'x' },
		{ "table-every", required_argument, NULL, 't' },
		{ "close-mid-quantum", no_argument, NULL, 'c' },
		{ "vmpace-opt", required_argument, NULL, 'o' },
		{ "echo-console", no_argument, NULL, 'e' },
		{ "attach", required_argument, NULL, 'a' },
		{ "vmpace-qemu", required_argument, NULL, 'W' },
		{ "console", required_argument, NULL, 'C' },
		{ "clock", required_argument, NULL, 'K' },
		{ NULL }
	};
	uint64_t quanta = 0, elapsed, end_sim, boot_limit_us = 120000000;
	int sv[2], pipefd[2], c, status, i = 0;
	static char chardev[256];
	char **args;
	double guest_s, sim_s, host_s;
	bool ok;

	clock_bounds_init(&bounds);
	setvbuf(stdout, NULL, _IOLBF, 0);	/* progress, also into a file */

	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 'v': opt.vmpace = optarg; break;
		case 'q': opt.quantum_us = strtoul(optarg, NULL, 0); break;
		case 'b': opt.boot_quantum_us = strtoul(optarg, NULL, 0); break;
		case 's': opt.sim_ms = strtoull(optarg, NULL, 0); break;
		case 'x': opt.stall_us = strtoul(optarg, NULL, 0); break;
		case 't': opt.table_every = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
		case 'c': opt.close_mid_quantum = true; break;
		case 'e': opt.echo_console = true; break;
		case 'a': opt.attach = optarg; break;
		case 'W': opt.qemu_wrapper = optarg; break;
		case 'C': opt.console_file = optarg; break;
		case 'K': opt.clock_fifo = optarg; break;
		case 'o':
			if (opt.nr_vmpace_opts == 16)
				return 2;
			opt.vmpace_opts[opt.nr_vmpace_opts++] = optarg;
			break;
		default: return 2;
		}
	}
	if ((optind >= argc && !opt.attach) || !opt.quantum_us || !opt.boot_quantum_us ||
	    (!!opt.attach != !!opt.console_file) || (!!opt.attach != !!opt.clock_fifo)) {
		fprintf(stderr, "usage: refsim [options] -- QEMU-COMMAND-LINE\n"
				"       refsim [options] --attach PID --console FILE --clock FIFO\n");
		return 2;
	}
	if (!opt.attach) {
		/* A FIFO of our own for the guest's debug console. */
		static char dir[] = "/tmp/refsim.XXXXXX";
		static char fifo[sizeof(dir) + 8];

		if (!mkdtemp(dir))
			die("mkdtemp");
		snprintf(fifo, sizeof(fifo), "%s/clock", dir);
		if (mkfifo(fifo, 0600))
			die("mkfifo");
		opt.clock_fifo = fifo;
	}
	/* Open for reading first: QEMU's open for writing would block. */
	clockfd = open(opt.clock_fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (clockfd < 0)
		die(opt.clock_fifo);
	clock_lines.fd = clockfd;

	if (pipe2(pipefd, O_CLOEXEC))
		die("pipe2");
	snprintf(chardev, sizeof(chardev), "file,id=vmpace-clock,path=%s", opt.clock_fifo);
	args = calloc(argc - optind + 10 + opt.nr_vmpace_opts, sizeof(char *));
	if (!args)
		die("calloc");
	clock_gettime(CLOCK_MONOTONIC, &host0);

	if (opt.qemu_wrapper) {
		/*
		 * adevs' way with a QEMU patched for -external_sim: a
		 * socketpair without close-on-exec, fork, both ends inherited
		 * (adevs keeps the child's end open too: vmpace must not care).
		 */
		static char sock_opt[32];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			die("socketpair");
		args[i++] = (char *)opt.qemu_wrapper;
		memcpy(&args[i], &argv[optind + 1], (argc - optind - 1) * sizeof(char *));
		i += argc - optind - 1;
		args[i++] = "-chardev";
		args[i++] = chardev;
		args[i++] = "-device";
		args[i++] = "isa-debugcon,iobase=0xe9,chardev=vmpace-clock";
		snprintf(sock_opt, sizeof(sock_opt), "sock=%d", sv[1]);
		args[i++] = "-external_sim";
		args[i++] = sock_opt;
		child = fork();
		if (child < 0)
			die("fork");
		if (!child) {
			dup2(pipefd[1], 1);
			execvp(opt.qemu_wrapper, args);
			fprintf(stderr, "refsim: cannot run %s: %s\n", opt.qemu_wrapper,
				strerror(errno));
			_exit(127);
		}
		if (vmp_from_fd(&vm, VMP_PROTO_US32, sv[0]))
			die_vmp("socket");
	} else {
		/* vmpace with its end of a socketpair on fd 3, the console to us */
		struct vmp_spawn_attr attr = {
			.sync_fd = 3,
			.flags = opt.attach ? 0 : VMP_SPAWN_STDOUT,
			.stdout_fd = pipefd[1],
		};

		args[i++] = (char *)opt.vmpace;
		if (opt.attach) {
			args[i++] = "--pid";
			args[i++] = (char *)opt.attach;
		} else {
			args[i++] = "run";
		}
		args[i++] = "--sync-fd";
		args[i++] = "3";
		memcpy(&args[i], opt.vmpace_opts, opt.nr_vmpace_opts * sizeof(char *));
		i += opt.nr_vmpace_opts;
		if (!opt.attach) {
			args[i++] = "--";
			memcpy(&args[i], &argv[optind], (argc - optind) * sizeof(char *));
			i += argc - optind;
			args[i++] = "-chardev";
			args[i++] = chardev;
			args[i++] = "-device";
			args[i++] = "isa-debugcon,iobase=0xe9,chardev=vmpace-clock";
		}
		if (vmp_spawn(&vm, VMP_PROTO_US32, (const char *const *)args, &attr))
			die_vmp("vmpace");
	}
	close(pipefd[1]);
	console = pipefd[0];
	if (opt.console_file) {
		close(console);
		console = open(opt.console_file, O_RDONLY);
		if (console < 0)
			die(opt.console_file);
	}
	fcntl(console, F_SETFL, O_NONBLOCK);
	console_lines.fd = console;
	signal(SIGPIPE, SIG_IGN);	/* our stdout into a closed pipe */

	/* Boot in large quanta until the guest says it is up. */
	while (!ready) {
		sim_us += quantum(opt.boot_quantum_us);
		quanta++;
		drain(&console_lines);
		drain(&clock_lines);
		if (sim_us > boot_limit_us) {
			fprintf(stderr, "refsim: the guest did not come up in %.0f s of simulated time\n",
				boot_limit_us / 1e6);
			if (child > 0)
				kill(child, SIGTERM);
			vmp_free(vm);
			return 2;
		}
	}

	end_sim = sim_us + opt.sim_ms * 1000;
	drain(&console_lines);
	drain(&clock_lines);
	while (sim_us < end_sim) {
		/* at least the grant: libvmpace checks it (EPROTO) */
		elapsed = quantum(opt.quantum_us);
		prev_sim_us = sim_us;
		sim_us += elapsed;
		quanta++;
		/* lines printed before this quantum have been read already */
		measuring = true;
		drain(&console_lines);
		drain(&clock_lines);
		stall();
	}

	if (opt.close_mid_quantum && vmp_grant(vm, opt.quantum_us))
		die_vmp("grant");
	/* Closing the socket ends the session: vmpace terminates the VMM. */
	if (opt.qemu_wrapper) {
		vmp_close(vm, 0, NULL);
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
	} else if (vmp_close(vm, -1, &status)) {
		die_vmp("end of the session");
	}
	vmp_free(vm);
	drain(&console_lines);
	if (unlink(opt.clock_fifo) == 0 && !opt.attach)
		rmdir(dirname((char *)opt.clock_fifo));

	guest_s = (last_guest_ns - first_guest_ns) / 1e9;
	sim_s = (last_sim_us - first_sim_us) / 1e6;
	host_s = (host_us() - first_host_us) / 1e6;
	/* Reports are whole us, floored: 1 us of slack. */
	ok = have_first && lines >= 3 && clock_bounds_exact(&bounds) && !kernel_reports;
	printf("refsim: quanta=%llu sim_s=%.6f guest_s=%.6f host_s=%.3f max_drift_us=%lld "
	       "lines=%lu guest_kernel_reports=%lu vmpace_status=%d offset_lo_us=%lld "
	       "offset_hi_us=%lld\n",
	       (unsigned long long)quanta, sim_s, guest_s, host_s, (long long)max_drift_us,
	       lines, kernel_reports,
	       WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status),
	       (long long)bounds.lo, (long long)bounds.hi);
	printf("refsim: verdict: %s: the guest clock advanced %.3f s while simulated time "
	       "advanced %.3f s and host time %.3f s; it is simulated time plus a constant "
	       "in [%.3f, %.3f] ms (%s; largest drift %.1f ms, quanta %.1f ms)\n",
	       ok ? "PASS" : "FAIL", guest_s, sim_s, host_s, bounds.lo / 1e3, bounds.hi / 1e3,
	       clock_bounds_exact(&bounds) ? "within one quantum" : "no constant fits",
	       max_drift_us / 1e3, opt.quantum_us / 1e3);
	return ok ? 0 : 1;
}
