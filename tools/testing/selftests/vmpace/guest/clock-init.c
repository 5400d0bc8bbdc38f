// SPDX-License-Identifier: GPL-2.0
/*
 * /init of the tiny guest used by the vmpace demo and end-to-end tests.
 *
 * Prints the guest's own clocks on the serial console at a fixed period of
 * guest time, so that the simulator can compare them with simulated time:
 *
 *   vmpace-guest-ready
 *   vmpace-guest-clock <seq> <CLOCK_MONOTONIC ns> <CLOCK_REALTIME ns>
 *
 * The period in ms is the kernel command line's vmpace.period= (default 20).
 * It never exits: the VMM is ended by vmpace or the test.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

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
	struct timespec next;
	unsigned long seq = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("vmpace-guest-ready period_ms=%ld\n", period);
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		next.tv_nsec += period * 1000000L;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		printf("vmpace-guest-clock %lu %lld %lld\n", ++seq,
		       ns(CLOCK_MONOTONIC), ns(CLOCK_REALTIME));
	}
}
