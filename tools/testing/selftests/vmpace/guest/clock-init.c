// SPDX-License-Identifier: GPL-2.0
/*
 * /init of the tiny guest used by the vmpace demo and end-to-end tests.
 *
 * Prints the guest's own clocks at a fixed period of guest time, so that the
 * simulator can compare them with simulated time:
 *
 *   vmpace-guest-ready
 *   vmpace-guest-clock <seq> <CLOCK_MONOTONIC ns> <CLOCK_MONOTONIC ns>
 *
 * The first value is read just before the line is written, the second just
 * after the previous line was written out (0 in the first line).
 * on the serial console, for people, and on QEMU's debug console (I/O port
 * 0xe9, isa-debugcon), for the simulator: the serial port sends its bytes at
 * its baud rate in host time, so a line can reach the host long after the
 * guest printed it, while each byte written to the debug console (through
 * /dev/port) is a synchronous exit to QEMU, which has written it out before
 * the vCPU runs again.  A line read by the simulator after quantum j's report
 * and not after quantum j - 1's was therefore written out during quantum j:
 * its first value is at most the end of quantum j in guest time, and the
 * second value of the next line at least the start of quantum j.
 *
 * The period in ms is the kernel command line's vmpace.period= (default 20).
 * It never exits: the VMM is ended by vmpace or the test.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define DEBUGCON_PORT	0xe9

static int debugcon = -1;

/* One byte per write: /dev/port moves to the next port after each byte. */
static void debugcon_write(const char *s, size_t n)
{
	while (debugcon >= 0 && n--)
		if (pwrite(debugcon, s++, 1, DEBUGCON_PORT) != 1)
			debugcon = -1;
}

/* A line on the debug console, then for people on the serial console. */
static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(line))
		return;
	debugcon_write(line, n);
	fputs(line, stdout);
}

static long long ns(clockid_t id)
{
	struct timespec t;

	clock_gettime(id, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long period_ms(void)
{
	char buf[1024] = "", *p;
	long v = 20;
	int fd;

	mount("proc", "/proc", "proc", 0, NULL);
	fd = open("/proc/cmdline", O_RDONLY);
	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) < 0)
			buf[0] = '\0';
		close(fd);
	}
	p = strstr(buf, "vmpace.period=");
	if (p)
		v = atol(p + strlen("vmpace.period="));
	return v > 0 ? v : 20;
}

int main(void)
{
	long period = period_ms();
	long long before, after = 0;
	struct timespec next;
	unsigned long seq = 0;
	char line[128];
	int n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	mknod("/dev/port", S_IFCHR | 0600, makedev(1, 4));
	debugcon = open("/dev/port", O_WRONLY);
	say("vmpace-guest-ready period_ms=%ld\n", period);
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		next.tv_nsec += period * 1000000L;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		before = ns(CLOCK_MONOTONIC);
		n = snprintf(line, sizeof(line), "vmpace-guest-clock %lu %lld %lld\n",
			     ++seq, before, after);
		debugcon_write(line, n);
		after = ns(CLOCK_MONOTONIC);
		fputs(line, stdout);
	}
}
