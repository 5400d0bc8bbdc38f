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
 * eth0 the address 10.0.2.1/24 and a static ARP entry for its peer 10.0.2.2
 * (MAC 02:00:00:00:00:02, the simulator's side of the link), and sends N UDP
 * datagrams "vmpace-udp <seq>" to 10.0.2.2:7, one at a time, each when the
 * previous one came back (or after 1 s), vmpace.period ms apart (plus, with
 * vmpace.jitter_us=J, a pseudo-random 0 to J-1 us more, the same for each
 * probe every boot: so that the sends do not keep one phase against a simulator's
 * fixed quanta).  With
 * vmpace.ping=N it sends N ICMP echo requests with the same payload instead
 * (answered by the peer's kernel).  A probe 0 goes first, again every 200 ms
 * until it comes back (100 times at most: the peer may still be booting),
 * and is not measured.  Each round trip is measured twice on the
 * guest's clock: by the program, around sendto() and recv()
 * (CLOCK_MONOTONIC), and by the kernel's software timestamps
 * (SO_TIMESTAMPING, CLOCK_REALTIME, which nothing steps here): taken in
 * virtio_net's start_xmit() before it notifies the device, and when NAPI
 * passes the reply up (netif_receive_skb, in the softirq after the NIC's
 * interrupt): the "wire" round trip, without the guest's socket layers and
 * scheduling.
 *
 *   vmpace-guest-ready udp=N            (or ping=N)
 *   vmpace-guest-warm <tries of probe 0, -1 if it never came back>
 *   vmpace-guest-rtt <seq> <program ns> <wire ns, 0 if the kernel gave none>
 *   vmpace-guest-rtt-lost <seq>
 *   vmpace-guest-udp-done
 *
 * With vmpace.echo=1 it is that peer: 10.0.2.2/24, a static ARP entry for
 * 10.0.2.1 (MAC 02:00:00:00:00:03, the simulator's side of its link), and a
 * UDP echo on port 7 (its kernel answers ICMP echo requests):
 *
 *   vmpace-guest-ready echo
 *
 * With vmpace.serial=1 it answers lines on its second UART (ttyS1, raw,
 * 115200 baud), with vmpace.serial=2 on its virtio console (hvc0): it says
 * "vmpace-serial-ready" there, then answers each line L with
 * "eL <CLOCK_MONOTONIC ns at which its read() returned L's end>" (the
 * simulator sersim compares the intervals with simulated time).
 *
 * It never exits: the VMM is ended by vmpace or the test.
 */
#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
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
#include <termios.h>
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

/*
 * virtio_net up as eth0 with address @self, and a permanent ARP entry that
 * gives @peer the MAC address @mac.
 */
static void net_up(const char *self, const char *peer, const char *mac)
{
	static const char *const mods[] = { "failover", "net_failover", "virtio_net" };
	struct sockaddr_in pa = { .sin_family = AF_INET };
	struct arpreq arp = { 0 };
	struct ifreq ifr = { 0 };
	unsigned int k;
	int s, r, i;

	for (k = 0; k < sizeof(mods) / sizeof(mods[0]); k++) {
		r = load_module(mods[k]);
		if (r)
			say("vmpace-guest-error module %s: %s\n", mods[k], strerror(-r));
	}
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		say("vmpace-guest-error socket: %s\n", strerror(errno));
		return;
	}
	/* the NIC appears once virtio_net has probed it */
	for (i = 0; i < 1000; i++) {
		snprintf(ifr.ifr_name, IFNAMSIZ, "eth0");
		if (!ioctl(s, SIOCGIFFLAGS, &ifr))
			break;
		usleep(1000);
	}
	set_addr(s, SIOCSIFADDR, "eth0", self);
	set_addr(s, SIOCSIFNETMASK, "eth0", "255.255.255.0");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		say("vmpace-guest-error eth0 up: %s\n", strerror(errno));
	inet_pton(AF_INET, peer, &pa.sin_addr);
	memcpy(&arp.arp_pa, &pa, sizeof(pa));
	arp.arp_ha.sa_family = ARPHRD_ETHER;
	memcpy(arp.arp_ha.sa_data, mac, 6);
	arp.arp_flags = ATF_COM | ATF_PERM;
	snprintf(arp.arp_dev, sizeof(arp.arp_dev), "eth0");
	if (ioctl(s, SIOCSARP, &arp))
		say("vmpace-guest-error arp: %s\n", strerror(errno));
	close(s);
}

static uint16_t inet_csum(const void *data, size_t n)
{
	const uint8_t *p = data;
	uint32_t sum = 0;

	for (; n > 1; p += 2, n -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (n)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons(~sum & 0xffff);
}

/* The kernel's software timestamp in a message's control data, in ns; 0 if none. */
static long long cmsg_tstamp(struct msghdr *m, uint32_t *key)
{
	struct cmsghdr *c;
	long long t = 0;

	for (c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPING) {
			struct scm_timestamping ts;

			memcpy(&ts, CMSG_DATA(c), sizeof(ts));
			t = ts.ts[0].tv_sec * 1000000000LL + ts.ts[0].tv_nsec;
		} else if (key && c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) {
			struct sock_extended_err ee;

			memcpy(&ee, CMSG_DATA(c), sizeof(ee));
			if (ee.ee_origin == SO_EE_ORIGIN_TIMESTAMPING)
				*key = ee.ee_data;
		}
	}
	return t;
}

/*
 * The transmit timestamp of the newest send on @s's error queue, if it is
 * send number *@key (from 0) or later, else 0; *@key becomes the number
 * after it.  Probes go one at a time: the newest is the current one (the
 * kernel may have counted a send that failed after taking its number).
 */
static long long tx_tstamp(int s, uint32_t *key)
{
	long long t, found = 0;
	char ctl[512];
	uint32_t got;

	for (;;) {
		struct msghdr m = { .msg_control = ctl, .msg_controllen = sizeof(ctl) };

		got = UINT32_MAX;
		if (recvmsg(s, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			return found;
		t = cmsg_tstamp(&m, &got);
		if (got != UINT32_MAX && got >= *key) {
			found = t;
			*key = got + 1;
		}
	}
}

/*
 * The reply to probe @seq (UDP: the datagram echoed; ICMP: an echo reply
 * with our id and @seq): its receive timestamp in ns, 0 if the kernel gave
 * none, -1 when nothing came back in time.
 */
static long long await_reply(int s, bool icmp, uint16_t id, long seq,
			     const char *payload, int len)
{
	char got[256], ctl[512];
	struct iovec iov = { got, sizeof(got) };
	int n;

	for (;;) {
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = ctl, .msg_controllen = sizeof(ctl) };

		n = recvmsg(s, &m, 0);
		if (n < 0)
			return -1;
		if (icmp) {
			const struct iphdr *ip = (const void *)got;
			const struct icmphdr *ic;
			int hl;

			if (n < (int)sizeof(*ip))
				continue;
			hl = ip->ihl * 4;
			ic = (const void *)(got + hl);
			if (n != hl + (int)sizeof(*ic) + len || ic->type != ICMP_ECHOREPLY ||
			    ntohs(ic->un.echo.id) != id || ntohs(ic->un.echo.sequence) != (uint16_t)seq ||
			    memcmp(ic + 1, payload, len))
				continue;
		} else if (n != len || memcmp(got, payload, len)) {
			continue;	/* a late echo of an earlier probe */
		}
		return cmsg_tstamp(&m, NULL);
	}
}

static void rtt_probe(long count, long period, long jitter_us, bool icmp)
{
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(7) };
	struct sockaddr_in self = { .sin_family = AF_INET, .sin_port = htons(4000) };
	int flags = SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE |
		    SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID |
		    SOF_TIMESTAMPING_OPT_TSONLY;
	struct timeval tmo = { 1, 0 };
	uint16_t id = getpid() & 0xffff;
	char buf[64], pkt[sizeof(struct icmphdr) + 64];
	long long t0, t1, tx, rx;
	int s, r, len;
	long seq, warm = 0;
	uint32_t sends = 0;

	net_up("10.0.2.1", "10.0.2.2", "\x02\x00\x00\x00\x00\x02");
	inet_pton(AF_INET, "10.0.2.2", &peer.sin_addr);
	s = icmp ? socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP) :
		   socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || (!icmp && bind(s, (struct sockaddr *)&self, sizeof(self))) ||
	    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo)) ||
	    setsockopt(s, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof(flags)))
		say("vmpace-guest-error probe socket: %s\n", strerror(errno));
	say("vmpace-guest-ready %s=%ld\n", icmp ? "ping" : "udp", count);
	/*
	 * Probe 0, until it comes back (the peer may still be booting, the
	 * path is cold), at most 100 times 200 ms; then the measured ones.
	 */
	for (seq = 0; seq <= count; seq++) {
		tmo.tv_sec = !seq ? 0 : 1;
		tmo.tv_usec = !seq ? 200000 : 0;
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo));
		/* a hash of the probe's number: the same gap for it every boot */
		usleep(period * 1000 +
		       (jitter_us > 0 ? ((uint32_t)seq * 2654435761u >> 8) % jitter_us : 0));
		len = snprintf(buf, sizeof(buf), "vmpace-udp %ld", seq);
		if (icmp) {
			struct icmphdr *ic = (struct icmphdr *)pkt;

			memset(ic, 0, sizeof(*ic));
			ic->type = ICMP_ECHO;
			ic->un.echo.id = htons(id);
			ic->un.echo.sequence = htons(seq);
			memcpy(ic + 1, buf, len);
			ic->checksum = inet_csum(pkt, sizeof(*ic) + len);
		}
		t0 = ns(CLOCK_MONOTONIC);
		r = icmp ? sendto(s, pkt, sizeof(struct icmphdr) + len, 0,
				  (struct sockaddr *)&peer, sizeof(peer)) :
			   sendto(s, buf, len, 0, (struct sockaddr *)&peer, sizeof(peer));
		if (r != (icmp ? (int)sizeof(struct icmphdr) + len : len)) {
			say("vmpace-guest-error send: %s\n", strerror(errno));
			if (!seq && ++warm < 100)
				seq--;
			else if (!seq)
				say("vmpace-guest-warm -1\n");
			else
				say("vmpace-guest-rtt-lost %ld\n", seq);
			continue;
		}
		rx = await_reply(s, icmp, id, seq, buf, len);
		t1 = ns(CLOCK_MONOTONIC);
		/* sends are counted from 0 (SOF_TIMESTAMPING_OPT_ID) */
		tx = tx_tstamp(s, &sends);
		if (!seq) {
			if (rx < 0 && ++warm < 100)
				seq--;
			else
				say("vmpace-guest-warm %ld\n", rx < 0 ? -1L : warm + 1);
		} else if (rx < 0)
			say("vmpace-guest-rtt-lost %ld\n", seq);
		else
			say("vmpace-guest-rtt %ld %lld %lld\n", seq, t1 - t0,
			    rx > 0 && tx > 0 ? rx - tx : 0);
	}
	say("vmpace-guest-udp-done\n");
	for (;;)
		pause();
}

/* The peer of rtt_probe(): UDP echo on port 7; the kernel answers pings. */
static void udp_echo(void)
{
	struct sockaddr_in self = { .sin_family = AF_INET, .sin_port = htons(7) };
	struct sockaddr_in from;
	socklen_t fl;
	char buf[2048];
	int s, n;

	net_up("10.0.2.2", "10.0.2.1", "\x02\x00\x00\x00\x00\x03");
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&self, sizeof(self)))
		say("vmpace-guest-error echo socket: %s\n", strerror(errno));
	say("vmpace-guest-ready echo\n");
	for (;;) {
		fl = sizeof(from);
		n = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n >= 0 && sendto(s, buf, n, 0, (struct sockaddr *)&from, fl) != n)
			say("vmpace-guest-error echo: %s\n", strerror(errno));
		if (n < 0 && errno != EINTR) {
			say("vmpace-guest-error echo: %s\n", strerror(errno));
			for (;;)
				pause();
		}
	}
}

/* The answers of vmpace.serial=1 (ttyS1) or 2 (hvc0); never returns. */
static void serial_echo(bool hvc)
{
	char in[256], out[320], buf[64];
	struct termios tio;
	long long t;
	size_t len = 0;
	ssize_t n, i;
	int fd, k;

	const char *dev = hvc ? "/dev/hvc0" : "/dev/ttyS1";

	mknod(dev, S_IFCHR | 0600, hvc ? makedev(229, 0) : makedev(4, 65));
	fd = open(dev, O_RDWR | O_NOCTTY);
	if (fd < 0 || tcgetattr(fd, &tio)) {
		say("vmpace-guest-error %s: %s\n", dev, strerror(errno));
		for (;;)
			pause();
	}
	cfmakeraw(&tio);
	cfsetispeed(&tio, B115200);
	cfsetospeed(&tio, B115200);
	tio.c_cc[VMIN] = 1;
	tio.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &tio))
		say("vmpace-guest-error %s raw mode: %s\n", dev, strerror(errno));
	tcflush(fd, TCIFLUSH);
	/* the console first: it is slow, the simulator starts on the port's line */
	say("vmpace-guest-ready serial %s\n", dev);
	if (write(fd, "vmpace-serial-ready\n", 20) != 20)
		say("vmpace-guest-error %s: %s\n", dev, strerror(errno));
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		t = ns(CLOCK_MONOTONIC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			say("vmpace-guest-error %s read: %s\n", dev, n ? strerror(errno) : "EOF");
			for (;;)
				pause();
		}
		for (i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (len < sizeof(in) - 1)
					in[len++] = buf[i];
				continue;
			}
			in[len] = '\0';
			k = snprintf(out, sizeof(out), "e%s %lld\n", in, t);
			if (write(fd, out, k) != k)
				say("vmpace-guest-error %s write: %s\n", dev, strerror(errno));
			len = 0;
		}
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
	if (param("udp", 0) > 0)
		rtt_probe(param("udp", 0), period, param("jitter_us", 0), false);
	if (param("ping", 0) > 0)
		rtt_probe(param("ping", 0), period, param("jitter_us", 0), true);
	if (param("echo", 0))
		udp_echo();
	if (param("serial", 0))
		serial_echo(param("serial", 0) == 2);
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
