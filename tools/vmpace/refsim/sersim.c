// SPDX-License-Identifier: GPL-2.0
/*
 * sersim: timed serial bytes through vmpace, and an example for simulator
 * authors (libvmpace(3), vmpace-proto(7)).
 *
 * It starts "vmpace run --proto framed --serial s0 -- QEMU ... -serial
 * chardev:s0" (the guest's second UART, ttyS1, on vmpace's serial port 0;
 * with --virtio a virtio console, hvc0, instead) and paces the guest in
 * quanta.  Once the test guest (vmpace.serial=1, or 2 for hvc0, on its
 * kernel command line) says it is ready, sersim sends it N short lines
 * "p<k>\n", line k at guest time T1 + (k - 1) x --gap-us, then one long line;
 * the guest answers each with "e<line> <its CLOCK_MONOTONIC when the line
 * came, ns>\n" (after a first line "w", not measured: a warm-up).  So both
 * sides measure the same thing: sersim the guest time
 * at which vmpace handed each line to QEMU (DELIVERED), the guest the time
 * its program read it, and the two must agree up to the guest's own
 * latency.
 *
 * usage: sersim [options] -- QEMU-COMMAND-LINE
 *   --vmpace PATH        vmpace binary (default: vmpace from $PATH)
 *   --lines N            short lines (10)
 *   --gap-us N           guest time between them (20000)
 *   --quantum-us N       grant per quantum once the guest is up (1000)
 *   --boot-quantum-us N  grant per quantum while it boots (50000)
 *   --virtio             the guest's virtio console, not its UART
 *   --max-error-us N     the verdict's bound on how well the guest's clock
 *                        is pinned to simulated time (5000)
 *   --attach             start QEMU itself, the port a chardev socket server
 *                        on a Unix path and a monitor for vmpace, then
 *                        "vmpace --pid" on it with --serial s0 --qmp
 * Prints a line per line sent and a summary; exit status 0 if every line
 * came back whole and in order, each short line was handed over (OK) no
 * earlier than its time, each answer was stamped after its line was handed
 * over, no line was handed over later than the first stop at or after its
 * time, the guest's clock agrees with simulated time, and:
 *   - virtio console: every short line with its interrupt, the long line
 *     OK (but see "busy" below);
 *   - UART: the long line (more than the 8 bytes QEMU's UART takes, up to
 *     the receive FIFO's trigger level Linux sets) DEFERRED
 *     (QEMU took only part of it while the guest was frozen) and still
 *     whole.
 * The guest's clock: it read each line no earlier than the line's handover
 * and no later than the report after its answer, so its clock minus
 * simulated time at that read lies in a window per line; one value must lie
 * in every window (up to 1 us of rounding), and (virtio console) their
 * common window must be at most --max-error-us wide.  That holds whatever
 * the guest's own latency, which in the emulated test VM is now and then
 * tens of ms of its own time (README).  Its resolution is the narrowest
 * window (the line the guest answered fastest: about 2 ms on the virtio
 * console in the test VM): a guest clock off simulated time by more, or a
 * line handed over that much earlier than vmpace said, leaves no common
 * value.
 * A line handed over while the guest had not yet answered the one before
 * ("busy": its program busy, or its time lost) may find the device still
 * full: it may be DEFERRED, or (virtio) come without an interrupt, as the
 * driver had not asked for one yet; this is counted and printed, and on
 * the virtio console at most half the short lines may be handed over so.  A UART raises its
 * interrupt for fewer bytes than its FIFO's trigger level only after a
 * timeout that QEMU counts in host time, and a guest answers through a
 * UART slowly (every register access traps), falling behind lines that
 * come closer than its answers take: how far each line's read lies from
 * the median line's is printed, not judged.
 * Exit status 1 if a check failed, 2 on errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock-bounds.h"
#include "framed-sim.h"

#define MAX_LINES	64
#define LONG_LINE	"L0123456789abcdefghijklmnopqrstuvwxyz0123456789"

static struct {
	const char *vmpace;
	uint64_t quantum_ns, boot_quantum_ns, gap_ns, max_err_ns;
	int lines;
	bool virtio;
} opt = { "vmpace", 1000000, 50000000, 20000000, 5000000, 10, false };

static bool ready;
static char rx[4096];
static size_t rx_len;

/* What happened to each line sent (index 0..lines-1, then the long one). */
static struct line {
	char text[64];
	uint32_t id;
	uint64_t due, delivered, stamp;
	uint64_t upper;		/* the report after the answer: its time or later */
	uint64_t stop;		/* the first report at or after @due */
	unsigned int status, flags;
	long long guest_ns;
	bool got_delivered, got_answer, rejected, have_stop, busy;
} line[MAX_LINES + 1];
static int nr_lines, nr_answers, bad;
static bool warm;	/* the warm-up line came back */
static uint32_t warm_id;

/* A line from the guest, stamped @t (the stamp of the bytes that ended it). */
static void guest_line(char *s, uint64_t t)
{
	char text[64];
	long long ns;
	int i;

	if (!strcmp(s, "vmpace-serial-ready")) {
		ready = true;
		return;
	}
	if (s[0] != 'e' || sscanf(s + 1, "%63s %lld", text, &ns) != 2) {
		printf("sersim: guest: %s\n", s);
		return;
	}
	if (!strcmp(text, "w")) {
		warm = true;
		return;
	}
	for (i = 0; i < nr_lines; i++)
		if (!line[i].got_answer && !strcmp(line[i].text, text))
			break;
	if (i == nr_lines || i != nr_answers) {
		printf("sersim: an answer to no line sent, or out of order: %s\n", s);
		bad++;
		return;
	}
	line[i].got_answer = true;
	line[i].guest_ns = ns;
	line[i].stamp = t;
	/*
	 * vmpace stamps bytes it gets during an overshoot with the quantum's
	 * stop; the guest wrote them by the report that ends the quantum.
	 */
	line[i].upper = vmp_now(fs_vm);
	nr_answers++;
}

static void events(void)
{
	struct vmp_event ev;
	const char *p;
	size_t n;
	char *nl;
	int i;

	while (!vmp_next_event(fs_vm, &ev)) {
		switch (ev.type) {
		case VMP_EV_SERIAL:
			p = ev.data;
			for (n = 0; n < ev.len; n++) {
				if (rx_len == sizeof(rx) - 1)
					rx_len = 0;	/* not ours: the guest's noise */
				rx[rx_len++] = p[n];
				if (p[n] != '\n')
					continue;
				rx[rx_len - 1] = '\0';
				if ((nl = strchr(rx, '\r')))
					*nl = '\0';
				guest_line(rx, ev.t);
				rx_len = 0;
			}
			break;
		case VMP_EV_DELIVERED:
			if (ev.id == warm_id)
				break;
			for (i = 0; i < nr_lines; i++)
				if (line[i].id == ev.id)
					break;
			if (i == nr_lines || line[i].got_delivered) {
				printf("sersim: DELIVERED for id %u, which sersim did not send\n",
				       ev.id);
				bad++;
				break;
			}
			line[i].got_delivered = true;
			line[i].delivered = ev.t;
			line[i].status = ev.status;
			line[i].flags = ev.flags;
			break;
		case VMP_EV_REJECTED:
			printf("sersim: vmpace refused %u: %s\n", ev.id, (const char *)ev.data);
			bad++;
			break;
		case VMP_EV_FRAME:	/* no network port */
			break;
		}
	}
}

static void quantum(uint64_t ns)
{
	int i;

	if (vmp_quantum(fs_vm, ns, NULL, 120000))
		fs_die("quantum");
	events();
	/* vmpace hands a line over at the first stop at or after its time */
	for (i = 0; i < nr_lines; i++)
		if (!line[i].have_stop && line[i].due <= vmp_now(fs_vm)) {
			line[i].stop = vmp_now(fs_vm);
			line[i].have_stop = true;
		}
}

static void send_line(int i, const char *text, uint64_t t)
{
	char buf[80];
	int n = snprintf(buf, sizeof(buf), "%s\n", text);

	snprintf(line[i].text, sizeof(line[i].text), "%s", text);
	line[i].due = t;
	if (vmp_send_serial(fs_vm, 0, t, buf, n, &line[i].id))
		fs_die("serial bytes");
	nr_lines = i + 1;
}

static const char *status_name(unsigned int st)
{
	return st == VMP_DELIVERED_OK ? "OK" : st == VMP_DELIVERED_LATE ? "LATE" :
	       st == VMP_DELIVERED_DEFERRED ? "DEFERRED" : "?";
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vmpace", required_argument, NULL, 'v' },
		{ "attach", no_argument, NULL, 'A' },
		{ "lines", required_argument, NULL, 'n' },
		{ "gap-us", required_argument, NULL, 'g' },
		{ "quantum-us", required_argument, NULL, 'q' },
		{ "boot-quantum-us", required_argument, NULL, 'b' },
		{ "max-error-us", required_argument, NULL, 'e' },
		{ "virtio", no_argument, NULL, 'V' },
		{ NULL }
	};
	static const char *const uart_dev[] = { "-serial", "chardev:s0" };
	static const char *const virtio_dev[] = { "-device", "virtio-serial-pci", "-device",
						  "virtconsole,chardev=s0" };
	const char **args;
	bool attach = false;
	int c, i, status, late = 0, noirq = 0, early = 0, unanswered = 0;
	uint64_t limit, t1;
	int64_t err, median, lag[MAX_LINES];
	int nr_lag = 0, within = 0, nbusy = 0;
	struct clock_bounds clk;
	bool ok, clock_ok, fits;
	char bound[32];

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'v': opt.vmpace = optarg; break;
		case 'A': attach = true; break;
		case 'n': opt.lines = atoi(optarg); break;
		case 'g': opt.gap_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 'q': opt.quantum_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 'b': opt.boot_quantum_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 'e': opt.max_err_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 'V': opt.virtio = true; break;
		default: return 2;
		}
	}
	if (optind >= argc || opt.lines < 2 || opt.lines > MAX_LINES || !opt.quantum_ns ||
	    !opt.boot_quantum_ns || !opt.gap_ns) {
		fprintf(stderr, "usage: sersim [options] -- QEMU-COMMAND-LINE (2 to %d lines)\n",
			MAX_LINES);
		return 2;
	}
	fs_name = "sersim";
	args = (attach ? fs_attach_argv : fs_run_argv)(opt.vmpace, "--serial", "s0",
						       argv + optind,
						       opt.virtio ? virtio_dev : uart_dev,
						       opt.virtio ? 4 : 2);
	if (!args)
		return 2;
	/* serial ports are a feature of the protocol that a simulator asks for */
	if (vmp_spawn(&fs_vm, VMP_PROTO_FRAMED, args, NULL) ||
	    vmp_set_features(fs_vm, VMP_FEAT_SERIAL))
		fs_die("vmpace");

	/* boot, until the guest reads its serial port */
	if (fs_boot(quantum, opt.boot_quantum_ns, &ready)) {
		if (attach)
			fs_attach_end();
		return 2;
	}
	printf("sersim: guest up at %.3f s; %d lines %.1f us apart to its %s, quanta of "
	       "%.1f us\n", vmp_now(fs_vm) / 1e9, opt.lines, opt.gap_ns / 1e3,
	       opt.virtio ? "virtio console" : "UART", opt.quantum_ns / 1e3);
	/*
	 * A line "w" first, not measured: the guest's first answers after it
	 * idled were seen to take tens of ms of its time.  The first measured
	 * line a gap after its answer, a third of a quantum into a quantum.
	 */
	if (vmp_send_serial(fs_vm, 0, vmp_now(fs_vm) + opt.gap_ns, "w\n", 2, &warm_id))
		fs_die("serial bytes");
	for (limit = vmp_now(fs_vm) + 10000000000ull; !warm && vmp_now(fs_vm) < limit; )
		quantum(opt.quantum_ns);
	if (!warm) {
		fprintf(stderr, "sersim: the guest did not answer the first line in 10 s\n");
		vmp_close(fs_vm, 15000, &status);
		if (attach)
			fs_attach_end();
		return 2;
	}
	t1 = vmp_now(fs_vm) + opt.gap_ns + opt.quantum_ns / 3;
	for (i = 0; i < opt.lines; i++) {
		char text[16];

		snprintf(text, sizeof(text), "p%d", i + 1);
		send_line(i, text, t1 + i * opt.gap_ns);
	}
	send_line(opt.lines, LONG_LINE, t1 + opt.lines * opt.gap_ns);
	/* until every line is answered, 10 s of guest time at most */
	for (limit = vmp_now(fs_vm) + 10000000000ull; nr_answers < nr_lines && vmp_now(fs_vm) < limit; )
		quantum(opt.quantum_ns);
	if (vmp_close(fs_vm, 15000, &status))
		fprintf(stderr, "sersim: %s\n", vmp_errmsg(fs_vm));
	if (attach)
		fs_attach_end();

	/*
	 * The guest's clock when it read each short line minus the simulated
	 * time the line was for: a constant (the clocks' offset) plus the
	 * stop's overshoot and how long the guest took to read it.  Printed
	 * for people: in the emulated test VM a guest loses a few to tens of
	 * ms of its own time now and then (README), so it is not judged.
	 */
	for (i = 0; i < opt.lines; i++)
		if (line[i].got_delivered && line[i].got_answer)
			lag[nr_lag++] = line[i].guest_ns - (int64_t)line[i].due;
	qsort(lag, nr_lag, sizeof(lag[0]), fs_cmp_i64);
	median = nr_lag ? lag[nr_lag / 2] : 0;
	clock_bounds_init(&clk);
	for (i = 0; i < nr_lines; i++) {
		struct line *l = &line[i];

		if (!l->got_delivered || !l->got_answer) {
			printf("sersim: line %s: %s\n", l->text, !l->got_delivered ?
			       "no DELIVERED" : "no answer from the guest");
			unanswered++;
			continue;
		}
		/*
		 * The guest read line i between its handover and the report
		 * after its answer, so its clock minus simulated time then lies
		 * in [guest_ns - upper, guest_ns - delivered]: one offset must
		 * lie in every line's window.
		 */
		clock_bounds_fit(&clk, l->guest_ns, l->delivered, l->upper);
		err = l->guest_ns - (int64_t)l->due - median;
		/*
		 * Handed over before the guest had answered the line before:
		 * vmpace got that answer only after the VM thawed from this
		 * line's stop (a stamp equal to the handover is bytes QEMU
		 * passed on while the VM was frozen, written before it).
		 */
		l->busy = i && line[i - 1].got_answer && line[i - 1].stamp > l->delivered;
		if (i < opt.lines) {
			nbusy += l->busy;
			late += l->status != VMP_DELIVERED_OK &&
				!(l->busy && l->status == VMP_DELIVERED_DEFERRED);
			noirq += l->status == VMP_DELIVERED_OK && !(l->flags & VMP_DELIVERED_IRQ) &&
				 !l->busy;
			within += err <= (int64_t)opt.max_err_ns && -err <= (int64_t)opt.max_err_ns;
		}
		/* before its time, after a stop past it, or answered before it */
		early += l->delivered < l->due || l->stamp < l->delivered ||
			 (l->have_stop && l->delivered > l->stop);
		printf("sersim: line %-4.4s due %.1f us, handed over %+.1f us later (%s%s%s), "
		       "answer stamped %+.1f us after; the guest read it %+.1f us off the "
		       "median line's time\n", l->text, l->due / 1e3,
		       ((int64_t)l->delivered - (int64_t)l->due) / 1e3, status_name(l->status),
		       l->flags & VMP_DELIVERED_IRQ ? ", IRQ" : "",
		       l->busy ? ", guest busy" : "",
		       ((int64_t)l->stamp - (int64_t)l->delivered) / 1e3, err / 1e3);
	}
	printf("sersim: %d of %d lines answered in order; %d short lines not OK, %d without "
	       "an interrupt (%d handed over while the guest had not answered the line "
	       "before: DEFERRED or no interrupt allowed then, on a virtio console for at most "
	       "half of them); %d handed over before their "
	       "time or after a stop past it, or answered before that; %d of %d short lines "
	       "read within %.1f us of "
	       "the median line's time (not judged)\n",
	       nr_answers, nr_lines, late, noirq, nbusy, early, within, opt.lines,
	       opt.max_err_ns / 1e3);
	fits = clock_bounds_exact(&clk);
	clock_ok = fits && (!opt.virtio || (clk.hi - clk.lo) * 1000 <= (int64_t)opt.max_err_ns);
	if (clk.lines < 2)
		printf("sersim: the guest's clock minus simulated time: fewer than 2 lines "
		       "read, nothing to compare\n");
	else if (fits) {
		snprintf(bound, sizeof(bound), "at most %.0f us", opt.max_err_ns / 1e3);
		printf("sersim: the guest's clock minus simulated time, from every line it "
		       "read: one value fits them all, known within %lld us (%s)\n",
		       (long long)(clk.hi > clk.lo ? clk.hi - clk.lo : 0), opt.virtio ? bound :
		       "how well is not judged for a UART, whose answers take the guest long");
	} else {
		printf("sersim: the guest's clock minus simulated time, from every line it "
		       "read: no one value fits them all (%lld us apart): the guest's clock "
		       "is not on the simulated timeline\n", (long long)(clk.lo - clk.hi));
	}
	printf("sersim: the long line (%zu bytes, more than a UART's FIFO): %s%s\n",
	       strlen(LONG_LINE) + 1, line[opt.lines].got_delivered ?
	       status_name(line[opt.lines].status) : "not delivered",
	       line[opt.lines].busy ? ", the guest busy" : "");
	ok = !unanswered && !bad && nr_answers == nr_lines && !late && !early && clock_ok;
	/*
	 * A guest that was busy at most lines' handovers would leave them all
	 * unjudged (and a vmpace that passed the guest's answers on late
	 * would make it look so): on the virtio console, whose guest answers
	 * within a few ms, half of them at least must find it idle.
	 */
	if (opt.virtio)
		ok = ok && !noirq && nbusy <= opt.lines / 2 &&
		     (line[opt.lines].status == VMP_DELIVERED_OK ||
		      (line[opt.lines].busy && line[opt.lines].status == VMP_DELIVERED_DEFERRED));
	else
		ok = ok && line[opt.lines].status == VMP_DELIVERED_DEFERRED;
	printf("sersim: %s\n", ok ? "every line reached the guest at its time and came back "
	       "whole, in order" : "FAILED");
	return ok ? 0 : 1;
}
