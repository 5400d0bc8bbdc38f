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
 *
 * With vmpace.sample=1 on the kernel command line, the guest instead samples
 * its clocks as fast as it can into the shared memory of an ivshmem device
 * (QEMU "-device ivshmem-plain"), where a benchmark on the host reads them
 * whenever the guest is frozen or stopped: two struct sample below, at offset
 * 0, written in turns, each guarded by a sequence count (odd while it is being
 * written): the guest may stop in the middle of one, the other then holds
 * the latest complete sample.
 *
 * It never exits: the VMM is ended by vmpace or the test.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define DEBUGCON_PORT	0xe9

static int debugcon = -1;

struct sample {
	uint64_t seq;
	uint64_t tsc;
	uint64_t mono_ns;
};

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

/* vmpace.NAME= on the kernel command line, or @def. */
static long param(const char *name, long def)
{
	char buf[1024] = "", key[64], *p;
	int fd;

	fd = open("/proc/cmdline", O_RDONLY);
	if (fd >= 0) {
		if (read(fd, buf, sizeof(buf) - 1) < 0)
			buf[0] = '\0';
		close(fd);
	}
	snprintf(key, sizeof(key), "vmpace.%s=", name);
	p = strstr(buf, key);
	return p ? atol(p + strlen(key)) : def;
}

/* The ivshmem device's shared memory (PCI 1af4:1110, BAR 2), mapped. */
static struct sample *ivshmem(void)
{
	char path[300], id[16];
	struct dirent *de;
	void *p = NULL;
	DIR *d;
	int fd;

	mount("sysfs", "/sys", "sysfs", 0, NULL);
	d = opendir("/sys/bus/pci/devices");
	while (d && !p && (de = readdir(d))) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", de->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		id[read(fd, id, sizeof(id) - 1) > 0 ? 6 : 0] = 0;
		close(fd);
		if (strcmp(id, "0x1110"))
			continue;
		/* No driver binds it: turn its memory decoding on ourselves. */
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/enable", de->d_name);
		fd = open(path, O_WRONLY);
		if (fd < 0 || write(fd, "1", 1) != 1)
			printf("vmpace-guest: cannot enable the ivshmem device\n");
		if (fd >= 0)
			close(fd);
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource2", de->d_name);
		fd = open(path, O_RDWR | O_SYNC);
		if (fd < 0)
			continue;
		p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			p = NULL;
	}
	if (d)
		closedir(d);
	return p;
}

static void sample_forever(struct sample *slot)
{
	struct sample *s;
	uint64_t n = 2;
	uint32_t lo, hi;

	for (;; n += 2) {
		s = &slot[n / 2 % 2];
		__atomic_store_n(&s->seq, n + 1, __ATOMIC_RELEASE);
		asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
		s->tsc = (uint64_t)hi << 32 | lo;
		s->mono_ns = ns(CLOCK_MONOTONIC);
		__atomic_store_n(&s->seq, n + 2, __ATOMIC_RELEASE);
	}
}

int main(void)
{
	long period;
	long long before, after = 0;
	struct timespec next;
	unsigned long seq = 0;
	char line[128];
	int n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	mount("proc", "/proc", "proc", 0, NULL);
	period = param("period", 20);
	if (period <= 0)
		period = 20;
	if (param("sample", 0)) {
		struct sample *s = ivshmem();

		if (!s) {
			printf("vmpace-guest: no ivshmem device to sample into\n");
			for (;;)
				pause();
		}
		char cs[64] = "?";
		int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
			      O_RDONLY);

		if (fd >= 0) {
			cs[read(fd, cs, sizeof(cs) - 1) > 0 ? strcspn(cs, "\n") : 1] = 0;
			close(fd);
		}
		say("vmpace-guest-ready sampling clocksource=%s\n", cs);
		sample_forever(s);
	}
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
