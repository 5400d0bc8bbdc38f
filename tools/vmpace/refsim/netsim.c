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
 * The test guest (vmpace.udp=N on its kernel command line) times each round
 * trip with its own clock and prints it on QEMU's debug console, which
 * netsim reads from a file.  With --boundary, netsim stamps each frame with
 * the end of the quantum it came in (what a simulator without vmpace's
 * stamps can do, as the adevs library does), to compare.
 *
 * usage: netsim [options] -- QEMU-COMMAND-LINE
 *   --vmpace PATH       vmpace binary (default: vmpace from $PATH)
 *   --delay-us N        one-way delay of the link (1000)
 *   --quantum-us N      grant per quantum once the guest is up (1000)
 *   --boot-quantum-us N grant per quantum while it boots (50000)
 *   --stall-us N        host time spent between quanta (0)
 *   --boundary          stamp frames at the end of their quantum
 *   --attach            start QEMU itself, its NIC's netdev a dgram socket on
 *                       Unix paths and a monitor for vmpace, then "vmpace
 *                       --pid" on it with --net n0 --qmp (vmpace(1), ATTACHED
 *                       PORTS): what a QEMU that a user started looks like
 * Prints one line per round trip and a summary; exit status 0 if every
 * round trip came back, none earlier than twice the delay, every frame
 * reached QEMU no earlier than its time (at it, or LATE if netsim sent it
 * after its time) with the NIC's interrupt; 1 if not; 2 on errors.
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
	const char *vmpace;
	uint64_t delay_ns, quantum_ns, boot_quantum_ns, stall_us;
	bool boundary;
} opt = { "vmpace", 1000000, 1000000, 50000000, 0, false };

static int dbg = -1;
static char dbg_buf[4096];
static size_t dbg_len;
static bool ready, done;
static long nr_rtt, nr_lost, nr_sent, nr_late, nr_deferred, nr_noirq, bad_delivery;
static int64_t rtt_ns[MAX_RTT], wire_ns[MAX_RTT];
static long nr_wire;
static uint64_t max_delivery_lag;
/* frames sent to the guest, by id: their time, to check the DELIVERED */
static uint64_t sent_t[4096];

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* A UDP datagram to 10.0.2.2:7 from the guest: its echo, in place. */
static bool make_echo(uint8_t *f, size_t len)
{
	static const uint8_t sim_mac[6] = { 2, 0, 0, 0, 0, 2 };
	static const uint8_t sim_ip[4] = { 10, 0, 2, 2 };
	uint8_t tmp[6];
	size_t ihl;

	if (len < 42 || get16(f + 12) != 0x0800 || (f[14] >> 4) != 4 || f[23] != 17)
		return false;
	ihl = (f[14] & 15) * 4;
	if (ihl < 20 || len < 14 + ihl + 8 || memcmp(f + 30, sim_ip, 4) ||
	    get16(f + 14 + ihl + 2) != 7)
		return false;
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

/* What vmpace read during the quantum that ended at vmp_now(). */
static void events(void)
{
	static uint8_t f[65536];
	struct vmp_event ev;
	uint32_t id;
	uint64_t t;

	while (!vmp_next_event(fs_vm, &ev)) {
		switch (ev.type) {
		case VMP_EV_FRAME:
			if (ev.len > sizeof(f))
				break;
			memcpy(f, ev.data, ev.len);
			if (!make_echo(f, ev.len))
				break;
			t = (opt.boundary ? vmp_now(fs_vm) : ev.t) + 2 * opt.delay_ns;
			if (vmp_send_frame(fs_vm, ev.port, t, f, ev.len, &id))
				fs_die("frame");
			if (id < sizeof(sent_t) / sizeof(sent_t[0]))
				sent_t[id] = t;
			nr_sent++;
			break;
		case VMP_EV_DELIVERED:
			if (ev.status == VMP_DELIVERED_LATE)
				nr_late++;
			if (ev.status == VMP_DELIVERED_DEFERRED)
				nr_deferred++;
			if (!(ev.flags & VMP_DELIVERED_IRQ))
				nr_noirq++;
			if (ev.id < sizeof(sent_t) / sizeof(sent_t[0])) {
				if (ev.t < sent_t[ev.id])
					bad_delivery++;
				else if (ev.t - sent_t[ev.id] > max_delivery_lag)
					max_delivery_lag = ev.t - sent_t[ev.id];
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
		{ NULL }
	};
	char dbg_path[] = "/tmp/netsim-debugcon-XXXXXX", chardev[128];
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
		default: return 2;
		}
	}
	if (optind >= argc || !opt.quantum_ns || !opt.boot_quantum_ns || !opt.delay_ns) {
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
	printf("netsim: guest up at %.3f s; link delay %.1f us each way, quanta of %.1f us, "
	       "%s stamps, %llu us of host time between quanta\n", vmp_now(fs_vm) / 1e9,
	       opt.delay_ns / 1e3, opt.quantum_ns / 1e3,
	       opt.boundary ? "quantum-boundary" : "vmpace's", (unsigned long long)opt.stall_us);
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
	return ok ? 0 : 1;
}
