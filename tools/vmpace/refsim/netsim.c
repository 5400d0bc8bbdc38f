// SPDX-License-Identifier: GPL-2.0
/*
 * netsim: a network simulator of one link, for vmpace's timed network I/O,
 * and an example for simulator authors (libvmpace(3), vmpace-proto(7)).
 *
 * It starts "vmpace run --proto framed --net n0 -- QEMU ..." with the guest's
 * virtio-net NIC on vmpace's network port 0, paces the guest in quanta and
 * plays the far end of a link with a one-way delay of --delay-us: every UDP
 * datagram the guest sends to 10.0.2.2 port 7 comes back (addresses and
 * ports swapped) after twice the delay, in simulated time:
 *
 *   frame from the guest, stamped t   ->  vmp_send_frame(v, 0, t + 2 delay)
 *
 * (plus --jitter-us, never earlier than the echo before it on the port: a
 * link delivers in order).
 *
 * The test guest (vmpace.udp=N on its kernel command line) times each round
 * trip with its own clock and prints it on QEMU's debug console, which
 * netsim reads from a file.  With --boundary, netsim does what a simulator
 * does that talks to the guest only between fixed quanta, as the adevs
 * library does: it stamps each frame with the end of the quantum it came in,
 * and hands each echo over at the first quantum boundary at or after its
 * time; to compare.
 *
 * usage: netsim [options] -- QEMU-COMMAND-LINE
 *   --vmpace PATH       vmpace binary (default: vmpace from $PATH)
 *   --delay-us N        one-way delay of the link (1000)
 *   --quantum-us N      grant per quantum once the guest is up (1000)
 *   --boot-quantum-us N grant per quantum while it boots (50000)
 *   --stall-us N        host time spent between quanta (0)
 *   --boundary          stamp frames at the end of their quantum, hand
 *                       echoes over at the first boundary at or after their time
 *   --jitter-us J       each echo takes a pseudo-random 0 to J-1 us longer, in
 *                       order (the same sequence every run; J up to 10 s)
 *   --csv FILE          append one line per round trip to FILE (bench/): its
 *                       times on the guest's clock and in vmpace's reports
 *   --attach            start QEMU itself, its NIC's netdev a dgram socket on
 *                       Unix paths and a monitor for vmpace, then "vmpace
 *                       --pid" on it with --net n0 --qmp (vmpace(1), ATTACHED
 *                       PORTS): what a QEMU that a user started looks like
 * Prints one line per round trip and a summary; exit status 0 if every
 * round trip came back, none earlier than twice the delay, every frame
 * reached QEMU no earlier than its time (at it, or LATE if netsim sent it
 * after its time; with --boundary at the first boundary after it) with the
 * NIC's interrupt; 1 if not; 2 on errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "framed-sim.h"

#define MAX_RTT	256

static struct {
	const char *vmpace, *csv;
	uint64_t delay_ns, jitter_ns, quantum_ns, boot_quantum_ns, stall_us;
	bool boundary;
} opt = { "vmpace", NULL, 1000000, 0, 1000000, 50000000, 0, false };

static int dbg = -1;
static char dbg_buf[4096];
static size_t dbg_len;
static bool ready, done;
static long nr_rtt, nr_lost, nr_sent, nr_late, nr_deferred, nr_noirq, bad_delivery;
static int64_t rtt_ns[MAX_RTT], wire_ns[MAX_RTT];
static long nr_wire;
static uint64_t max_delivery_lag;
/*
 * Frames sent to the guest, by id: their time, to check the DELIVERED, and
 * the guest's probe they echo (0 if none).
 */
static struct sent {
	uint64_t t;
	long seq;
} sent[4096];
/*
 * Each probe of the guest, by its number: vmpace's stamp of its frame, the
 * stamp netsim used (vmpace's, or with --boundary the end of the quantum),
 * when its echo was due (stamp + 2 delay) and when vmpace handed the echo
 * to QEMU (DELIVERED), in vmpace's guest time; 0 if not known.
 */
#define MAX_SEQ	1024
static struct probe {
	uint64_t vstamp, stamp, due, handed;
	int64_t rtt, wire;
} probe[MAX_SEQ];
/* --boundary: echoes waiting for the first quantum boundary at or after their time */
static struct held {
	uint64_t due;
	long seq;
	uint16_t port;
	uint32_t len;
	uint8_t *f;
} held[256];
static int nr_held;
/* the time of the last echo on netsim's one link: echoes leave it in order */
static uint64_t last_due;

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/*
 * A UDP datagram to 10.0.2.2:7 from the guest: its echo, in place; *@seq is
 * the guest's probe number ("vmpace-udp N" in the payload), 0 if none.
 */
static bool make_echo(uint8_t *f, size_t len, long *seq)
{
	static const uint8_t sim_mac[6] = { 2, 0, 0, 0, 0, 2 };
	static const uint8_t sim_ip[4] = { 10, 0, 2, 2 };
	uint8_t tmp[6];
	char text[32];
	size_t ihl, n;

	if (len < 42 || get16(f + 12) != 0x0800 || (f[14] >> 4) != 4 || f[23] != 17)
		return false;
	ihl = (f[14] & 15) * 4;
	if (ihl < 20 || len < 14 + ihl + 8 || memcmp(f + 30, sim_ip, 4) ||
	    get16(f + 14 + ihl + 2) != 7)
		return false;
	n = len - (14 + ihl + 8);
	if (n > sizeof(text) - 1)
		n = sizeof(text) - 1;
	memcpy(text, f + 14 + ihl + 8, n);
	text[n] = '\0';
	if (sscanf(text, "vmpace-udp %ld", seq) != 1 || *seq < 0 || *seq >= MAX_SEQ)
		*seq = 0;
	/* swapping addresses and ports keeps both checksums right */
	memcpy(f, f + 6, 6);
	memcpy(f + 6, sim_mac, 6);
	memcpy(tmp, f + 26, 4);
	memcpy(f + 26, f + 30, 4);
	memcpy(f + 30, tmp, 4);
	memcpy(tmp, f + 14 + ihl, 2);
	memcpy(f + 14 + ihl, f + 14 + ihl + 2, 2);
	memcpy(f + 14 + ihl + 2, tmp, 2);
	return true;
}

/* Prints min/median/max of @n round trips against @sim; returns the minimum. */
static int64_t rtt_stats(const char *what, int64_t *v, int n, int64_t sim)
{
	qsort(v, n, sizeof(v[0]), fs_cmp_i64);
	printf("netsim: %d round trips (%ld lost): %s min %.1f median %.1f max %.1f us, "
	       "simulated %.1f us: error %+.1f / %+.1f / %+.1f us\n", n, nr_lost, what,
	       v[0] / 1e3, v[n / 2] / 1e3, v[n - 1] / 1e3, sim / 1e3, (v[0] - sim) / 1e3,
	       (v[n / 2] - sim) / 1e3, (v[n - 1] - sim) / 1e3);
	return v[0];
}

static void on_line(const char *l)
{
	long seq;
	long long ns, wire = 0;

	if (!strncmp(l, "vmpace-guest-ready udp=", 23)) {
		ready = true;
	} else if (sscanf(l, "vmpace-guest-rtt %ld %lld %lld", &seq, &ns, &wire) >= 2) {
		if (nr_rtt < MAX_RTT)
			rtt_ns[nr_rtt] = ns;
		if (seq > 0 && seq < MAX_SEQ) {
			probe[seq].rtt = ns;
			probe[seq].wire = wire;
		}
		nr_rtt++;
		if (wire > 0 && nr_wire < MAX_RTT)
			wire_ns[nr_wire++] = wire;
		printf("round trip %3ld: %10.1f us on the guest's clock, %10.1f us between its "
		       "NIC's timestamps (simulated %.1f us)\n",
		       seq, ns / 1e3, wire / 1e3, 2 * opt.delay_ns / 1e3);
	} else if (!strncmp(l, "vmpace-guest-rtt-lost", 21)) {
		nr_lost++;
		printf("%s\n", l);
	} else if (!strncmp(l, "vmpace-guest-udp-done", 21)) {
		done = true;
	} else if (!strncmp(l, "vmpace-guest-error", 18)) {
		fprintf(stderr, "netsim: the guest says: %s\n", l);
	}
}

/* Lines the guest wrote to the debug console (a file) so far. */
static void read_lines(void)
{
	ssize_t n;
	char *nl;

	while ((n = read(dbg, dbg_buf + dbg_len, sizeof(dbg_buf) - 1 - dbg_len)) > 0) {
		dbg_len += n;
		dbg_buf[dbg_len] = '\0';
		while ((nl = strchr(dbg_buf, '\n'))) {
			*nl = '\0';
			on_line(dbg_buf);
			dbg_len -= nl + 1 - dbg_buf;
			memmove(dbg_buf, nl + 1, dbg_len + 1);
		}
		if (dbg_len == sizeof(dbg_buf) - 1)
			dbg_len = 0;
	}
}

/* Hands an echo to vmpace for guest time @t. */
static void send_echo(uint16_t port, uint64_t t, uint64_t due, const uint8_t *f, size_t len,
		      long seq)
{
	uint32_t id;

	if (vmp_send_frame(fs_vm, port, t, f, len, &id))
		fs_die("frame");
	if (id < sizeof(sent) / sizeof(sent[0]))
		sent[id] = (struct sent){ due, seq };
	nr_sent++;
}

/* --boundary: the held echoes whose time has come, handed over now. */
static void release_held(void)
{
	uint64_t now = vmp_now(fs_vm);
	int i, j;

	for (i = j = 0; i < nr_held; i++) {
		struct held *h = &held[i];

		if (h->due > now) {
			if (j != i)
				held[j] = *h;
			j++;
			continue;
		}
		send_echo(h->port, now, h->due, h->f, h->len, h->seq);
		free(h->f);
	}
	nr_held = j;
}

/* What vmpace read during the quantum that ended at vmp_now(). */
static void events(void)
{
	static uint8_t f[65536];
	struct vmp_event ev;
	static uint32_t lcg = 1;
	uint64_t stamp, due;
	long seq;

	while (!vmp_next_event(fs_vm, &ev)) {
		switch (ev.type) {
		case VMP_EV_FRAME:
			if (ev.len > sizeof(f))
				break;
			memcpy(f, ev.data, ev.len);
			if (!make_echo(f, ev.len, &seq))
				break;
			stamp = opt.boundary ? vmp_now(fs_vm) : ev.t;
			due = stamp + 2 * opt.delay_ns;
			if (opt.jitter_ns) {
				lcg = lcg * 1103515245u + 12345u;
				due += (lcg >> 8) % (opt.jitter_ns / 1000) * 1000;
			}
			if (due < last_due)
				due = last_due;
			last_due = due;
			if (seq) {
				probe[seq].vstamp = ev.t;
				probe[seq].stamp = stamp;
				probe[seq].due = due;
			}
			if (!opt.boundary) {
				send_echo(ev.port, due, due, f, ev.len, seq);
				break;
			}
			if (nr_held == sizeof(held) / sizeof(held[0]))
				fs_die("more echoes held than netsim keeps");
			held[nr_held].f = malloc(ev.len);
			if (!held[nr_held].f)
				fs_die("out of memory");
			held[nr_held].due = due;
			held[nr_held].seq = seq;
			held[nr_held].port = ev.port;
			held[nr_held].len = ev.len;
			memcpy(held[nr_held++].f, f, ev.len);
			break;
		case VMP_EV_DELIVERED:
			if (ev.status == VMP_DELIVERED_LATE)
				nr_late++;
			if (ev.status == VMP_DELIVERED_DEFERRED)
				nr_deferred++;
			if (!(ev.flags & VMP_DELIVERED_IRQ))
				nr_noirq++;
			if (ev.id < sizeof(sent) / sizeof(sent[0])) {
				if (ev.t < sent[ev.id].t)
					bad_delivery++;
				else if (ev.t - sent[ev.id].t > max_delivery_lag)
					max_delivery_lag = ev.t - sent[ev.id].t;
				if (sent[ev.id].seq)
					probe[sent[ev.id].seq].handed = ev.t;
			}
			break;
		case VMP_EV_REJECTED:
			fprintf(stderr, "netsim: vmpace refused frame %u: %s\n", ev.id,
				(const char *)ev.data);
			bad_delivery++;
			break;
		case VMP_EV_SERIAL:	/* netsim's vmpace has no serial ports */
			break;
		}
	}
	if (opt.boundary)
		release_held();
}

/*
 * --csv: one line per round trip the guest measured, appended (a header
 * first if the file is empty): the guest's two measures and the echo's
 * times in vmpace's reports, all in ns.
 */
static int write_csv(void)
{
	FILE *f = fopen(opt.csv, "a");
	long seq;

	if (!f) {
		fprintf(stderr, "netsim: %s: %s\n", opt.csv, strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) == 0 && ftell(f) == 0)
		fprintf(f, "stamps,quantum_us,delay_us,seq,rtt_ns,wire_ns,vmpace_stamp_ns,"
			"stamp_ns,due_ns,handed_ns\n");
	for (seq = 1; seq < MAX_SEQ; seq++) {
		const struct probe *p = &probe[seq];

		if (p->rtt <= 0)
			continue;
		fprintf(f, "%s,%llu,%llu,%ld,%lld,%lld,%llu,%llu,%llu,%llu\n",
			opt.boundary ? "boundary" : "vmpace",
			(unsigned long long)(opt.quantum_ns / 1000),
			(unsigned long long)(opt.delay_ns / 1000), seq, (long long)p->rtt,
			(long long)p->wire, (unsigned long long)p->vstamp,
			(unsigned long long)p->stamp,
			(unsigned long long)p->due, (unsigned long long)p->handed);
	}
	if (fclose(f)) {
		fprintf(stderr, "netsim: %s: %s\n", opt.csv, strerror(errno));
		return -1;
	}
	return 0;
}

static void quantum(uint64_t ns)
{
	struct timespec st = { opt.stall_us / 1000000, (opt.stall_us % 1000000) * 1000L };

	if (vmp_quantum(fs_vm, ns, NULL, 120000))
		fs_die("quantum");
	events();
	read_lines();
	while (opt.stall_us && nanosleep(&st, &st) && errno == EINTR)
		;
}


int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vmpace", required_argument, NULL, 'v' },
		{ "attach", no_argument, NULL, 'A' },
		{ "delay-us", required_argument, NULL, 'd' },
		{ "quantum-us", required_argument, NULL, 'q' },
		{ "boot-quantum-us", required_argument, NULL, 'b' },
		{ "stall-us", required_argument, NULL, 's' },
		{ "boundary", no_argument, NULL, 'B' },
		{ "jitter-us", required_argument, NULL, 'j' },
		{ "csv", required_argument, NULL, 'c' },
		{ NULL }
	};
	char dbg_path[] = "/tmp/netsim-debugcon-XXXXXX", chardev[128], jitter[64];
	const char *dev[] = { "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
			      "-chardev", NULL, "-device",
			      "isa-debugcon,iobase=0xe9,chardev=netsim-dbg" };
	const char **args;
	bool attach = false;
	int c, status, fd;
	uint64_t limit;
	int64_t min, min_wire = INT64_MAX, two_d;
	bool ok;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'v': opt.vmpace = optarg; break;
		case 'A': attach = true; break;
		case 'd': opt.delay_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 'q': opt.quantum_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 'b': opt.boot_quantum_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 's': opt.stall_us = strtoull(optarg, NULL, 0); break;
		case 'B': opt.boundary = true; break;
		case 'j':
			opt.jitter_ns = strtoull(optarg, NULL, 0);
			opt.jitter_ns = opt.jitter_ns > 10000000 ? UINT64_MAX : opt.jitter_ns * 1000;
			break;
		case 'c': opt.csv = optarg; break;
		default: return 2;
		}
	}
	if (optind >= argc || !opt.quantum_ns || !opt.boot_quantum_ns || !opt.delay_ns ||
	    opt.jitter_ns > 10000000000ull) {
		fprintf(stderr, "usage: netsim [options] -- QEMU-COMMAND-LINE\n");
		return 2;
	}
	fd = mkstemp(dbg_path);
	if (fd < 0) {
		perror("netsim: mkstemp");
		return 2;
	}
	close(fd);
	dbg = open(dbg_path, O_RDONLY | O_CLOEXEC);
	snprintf(chardev, sizeof(chardev), "file,id=netsim-dbg,path=%s", dbg_path);

	dev[3] = chardev;
	fs_name = "netsim";
	args = (attach ? fs_attach_argv : fs_run_argv)(opt.vmpace, "--net", "n0", argv + optind,
						       dev, 6);
	if (!args || dbg < 0)
		return 2;
	if (vmp_spawn(&fs_vm, VMP_PROTO_FRAMED, args, NULL))
		fs_die("vmpace");

	/* boot, until the guest's UDP client is up */
	if (fs_boot(quantum, opt.boot_quantum_ns, &ready)) {
		if (attach)
			fs_attach_end();
		return 2;
	}
	snprintf(jitter, sizeof(jitter), " (+ 0 to %.0f us per echo)", opt.jitter_ns / 1e3 - 1);
	printf("netsim: guest up at %.3f s; link delay %.1f us each way%s, quanta of %.1f us, "
	       "%s, %llu us of host time between quanta\n", vmp_now(fs_vm) / 1e9,
	       opt.delay_ns / 1e3, opt.jitter_ns ? jitter : "", opt.quantum_ns / 1e3,
	       opt.boundary ? "quantum-boundary stamps and delivery" : "vmpace's stamps and delivery",
	       (unsigned long long)opt.stall_us);
	/* the guest's round trips, 10 s of guest time at most */
	for (limit = vmp_now(fs_vm) + 10000000000ull; !done && vmp_now(fs_vm) < limit; )
		quantum(opt.quantum_ns);
	if (!done)
		fprintf(stderr, "netsim: the guest did not finish its round trips in 10 s of "
			"simulated time\n");
	if (vmp_close(fs_vm, 15000, &status))
		fprintf(stderr, "netsim: %s\n", vmp_errmsg(fs_vm));
	if (attach)
		fs_attach_end();
	unlink(dbg_path);

	if (!nr_rtt) {
		fprintf(stderr, "netsim: no round trip came back (%ld lost)\n", nr_lost);
		return 1;
	}
	c = nr_rtt < MAX_RTT ? (int)nr_rtt : MAX_RTT;
	two_d = 2 * (int64_t)opt.delay_ns;
	min = rtt_stats("guest-measured RTT (program)", rtt_ns, c, two_d);
	if (nr_wire)
		min_wire = rtt_stats("guest-measured RTT (NIC timestamps)", wire_ns, nr_wire, two_d);
	printf("netsim: %ld frames to the guest: %ld late, %ld deferred, %ld without an "
	       "interrupt, %ld out of time; handed over at most %.1f us after their time\n",
	       nr_sent, nr_late, nr_deferred, nr_noirq, bad_delivery, max_delivery_lag / 1e3);
	if (nr_late)
		printf("netsim: %ld echo(es) LATE: netsim learned of the guest's frame only after "
		       "the echo's time had passed (the frame came after its quantum's report, "
		       "and the next quantum overshot by more than the rest of the delay); "
		       "vmpace delivered them at once and said so\n", nr_late);
	if (nr_wire != nr_rtt)
		printf("netsim: %ld of %ld round trips without the NIC's timestamps\n",
		       nr_rtt - nr_wire, nr_rtt);
	ok = !nr_lost && done && min >= two_d && nr_wire == nr_rtt && min_wire >= two_d && !nr_deferred && !nr_noirq && !bad_delivery;
	printf("netsim: %s\n", ok ? "every round trip took at least the simulated time, every "
	       "frame reached the guest no earlier than its time, with an interrupt" : "FAILED");
	if (opt.csv && write_csv())
		return 2;
	return ok ? 0 : 1;
}
