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
 * With vmpace.udp=N, the guest instead measures network round trips with its
 * own clock: it loads virtio_net (the modules are in the initramfs), gives
 * eth0 the address 10.0.2.1/24 and a static ARP entry for the simulator's
 * 10.0.2.2 (MAC 02:00:00:00:00:02), and sends N UDP datagrams to
 * 10.0.2.2:7, one at a time, each when the previous one came back (or after
 * 1 s), vmpace.period ms apart:
 *
 *   vmpace-guest-ready udp=N
 *   vmpace-guest-rtt <seq> <CLOCK_MONOTONIC ns of the round trip>
 *   vmpace-guest-udp-done
 *
 * It never exits: the VMM is ended by vmpace or the test.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

/* Loads /lib/NAME.ko.xz of the initramfs (the kernel decompresses it). */
static int load_module(const char *name)
{
	char path[64];
	int fd, r;

	snprintf(path, sizeof(path), "/lib/%s.ko.xz", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* MODULE_INIT_COMPRESSED_FILE */
	r = syscall(SYS_finit_module, fd, "", 4) && errno != EEXIST ? -errno : 0;
	close(fd);
	return r;
}

static void set_addr(int s, unsigned long req, const char *ifname, const char *ip)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *a = (struct sockaddr_in *)&ifr.ifr_addr;

	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	a->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &a->sin_addr);
	if (ioctl(s, req, &ifr))
		say("vmpace-guest-error %s %s: %s\n", ifname, ip, strerror(errno));
}

static void udp_rtt(long count, long period)
{
	static const char *const mods[] = { "failover", "net_failover", "virtio_net" };
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(7) };
	struct sockaddr_in self = { .sin_family = AF_INET, .sin_port = htons(4000) };
	struct timeval tmo = { 1, 0 };
	struct arpreq arp = { 0 };
	struct ifreq ifr = { 0 };
	char buf[64], got[64];
	long long t0, t1;
	long seq;
	int s, r, i;
	unsigned int k;

	for (k = 0; k < sizeof(mods) / sizeof(mods[0]); k++) {
		r = load_module(mods[k]);
		if (r)
			say("vmpace-guest-error module %s: %s\n", mods[k], strerror(-r));
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	/* the NIC appears once virtio_net has probed it */
	for (i = 0; i < 1000; i++) {
		snprintf(ifr.ifr_name, IFNAMSIZ, "eth0");
		if (!ioctl(s, SIOCGIFFLAGS, &ifr))
			break;
		usleep(1000);
	}
	set_addr(s, SIOCSIFADDR, "eth0", "10.0.2.1");
	set_addr(s, SIOCSIFNETMASK, "eth0", "255.255.255.0");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		say("vmpace-guest-error eth0 up: %s\n", strerror(errno));
	inet_pton(AF_INET, "10.0.2.2", &peer.sin_addr);
	memcpy(&arp.arp_pa, &peer, sizeof(peer));
	arp.arp_ha.sa_family = ARPHRD_ETHER;
	memcpy(arp.arp_ha.sa_data, "\x02\x00\x00\x00\x00\x02", 6);
	arp.arp_flags = ATF_COM | ATF_PERM;
	snprintf(arp.arp_dev, sizeof(arp.arp_dev), "eth0");
	if (ioctl(s, SIOCSARP, &arp))
		say("vmpace-guest-error arp: %s\n", strerror(errno));
	if (bind(s, (struct sockaddr *)&self, sizeof(self)) ||
	    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)))
		say("vmpace-guest-error udp socket: %s\n", strerror(errno));
	say("vmpace-guest-ready udp=%ld\n", count);
	for (seq = 1; seq <= count; seq++) {
		usleep(period * 1000);
		r = snprintf(buf, sizeof(buf), "vmpace-udp %ld", seq);
		t0 = ns(CLOCK_MONOTONIC);
		if (sendto(s, buf, r, 0, (struct sockaddr *)&peer, sizeof(peer)) != r) {
			say("vmpace-guest-error send: %s\n", strerror(errno));
			continue;
		}
		/* the echo of this datagram; late echoes of earlier ones are skipped */
		do {
			i = recv(s, got, sizeof(got), 0);
		} while (i >= 0 && (i != r || memcmp(got, buf, r)));
		t1 = ns(CLOCK_MONOTONIC);
		if (i < 0)
			say("vmpace-guest-rtt-lost %ld\n", seq);
		else
			say("vmpace-guest-rtt %ld %lld\n", seq, t1 - t0);
	}
	say("vmpace-guest-udp-done\n");
	for (;;)
		pause();
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
	if (param("udp", 0) > 0)
		udp_rtt(param("udp", 0), period);
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
