// SPDX-License-Identifier: GPL-2.0
/*
 * Host tests of libvmpace (no KVM needed), built with ASan and UBSan.
 *
 * The library talks to vmpace; vmpace needs a kernel with KVM pacing, so
 * here the other end is this program run again as a scripted peer
 * ("libvmpace_test peer MODE"), spawned by vmp_spawn() itself: it reads
 * grants on its sync fd and answers, misbehaves or dies as MODE says.  The
 * real vmpace is the peer in the end-to-end tests (refsim, in the test VM).
 * Prints TAP.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libvmpace.h"
#include "proto.h"

static int nr, failed;
static char self[4096];

static void ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", cond ? "ok" : "not ok", ++nr);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	failed += !cond;
}

static void fatal(const char *what)
{
	ok(false, "%s: %s", what, strerror(errno));
}

/* ---- the scripted peer ---- */

static volatile sig_atomic_t poked;

static void on_usr1(int sig __attribute__((unused)))
{
	poked = 1;
}

static void wait_poke(void)
{
	sigset_t none;

	sigemptyset(&none);
	while (!poked)
		sigsuspend(&none);
	poked = 0;
}

static int read_all(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += n;
	}
	return 1;
}

static void write_all(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(20);
		done += n;
	}
}

/* Only fds 0-2 and @fd may be sockets the library left open in the child. */
static bool no_leaked_sockets(int fd)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	bool clean = true;

	if (!d)
		return false;
	while ((e = readdir(d))) {
		int n = atoi(e->d_name);
		struct stat st;

		if (e->d_name[0] == '.' || n == dirfd(d) || n == fd || n < 3)
			continue;
		if (!fstat(n, &st) && S_ISSOCK(st.st_mode))
			clean = false;
	}
	closedir(d);
	return clean;
}

/*
 * Modes: echo32/echo64 (answer grant + 1 unit), bytewise (one byte per
 * write), exit8 (die with vmpace's "VMM exited" status at the first grant),
 * half (two bytes of a report, then exit 7), short (report grant - 1),
 * poke (wait for SIGUSR1 before answering), halfpoke (two bytes, SIGUSR1,
 * the rest), twice (two reports for one grant), linger (ignore EOF and
 * SIGTERM, never exit), exit0 (exit at once), hello (a line on stdout).
 */
/* A framed message from the simulator, or 0 at end of file, -1 on errors. */
static int fr_peer_read(int fd, struct vp_fr_decoder *d, struct vp_fr_msg *m)
{
	uint8_t b[VP_FR_HDR + VP_FR_MAX_PAYLOAD];
	bool done = false;
	ssize_t n;

	while (!done) {
		n = read(fd, b, vp_fr_want(d));
		if (n == 0)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || vp_fr_decode(d, b, n, &done, m) < 0)
			return -1;
	}
	return 1;
}

/*
 * The framed protocol's side of vmpace, scripted: "fr-echo" answers every
 * GRANT until t with a REPORT at t + 1; the others misbehave as named.
 */
/*
 * "fr-net": vmpace with 2 network ports: a frame for the guest is
 * "delivered" (DELIVERED at its time, with an interrupt) and echoed back
 * as a frame from the guest at the same time, within the grant that covers
 * it; a frame for another port is rejected.
 */
struct fr_held {
	uint64_t t;
	uint32_t id;
	uint16_t port;
	bool serial;
	uint32_t len;
	uint8_t data[VP_FR_MAX_FRAME];
};

/*
 * "fr-serial": vmpace with the SERIAL feature (asked for) and 2 serial
 * ports, no network port: serial bytes are held and answered likewise
 * (DELIVERED, echoed as SERIAL_FROM_GUEST).  "fr-badfeat" grants a feature
 * that was not asked for, "fr-serialports" names serial ports without the
 * feature.
 */
static void fr_net_quantum(int fd, uint64_t until, struct fr_held *q, int *nq)
{
	static uint8_t out[VP_FR_HDR + VP_FR_MAX_PAYLOAD];
	uint8_t pl[VP_FR_FRAME_HDR];
	int i, k = 0;

	for (i = 0; i < *nq; i++) {
		if (q[i].t > until) {
			q[k++] = q[i];
			continue;
		}
		vp_put_be32(pl, q[i].id);
		vp_put_be16(pl + 4, 0);
		vp_put_be16(pl + 6, VP_FR_DELIVERED_IRQ);
		write_all(fd, out, vp_fr_encode(out, VP_FR_DELIVERED, 0, q[i].t, pl, 8));
		vp_put_be32(pl, i + 1);
		vp_put_be16(pl + 4, q[i].port);
		vp_put_be16(pl + 6, 0);
		vp_fr_encode(out, q[i].serial ? VP_FR_SERIAL_FROM_GUEST : VP_FR_FRAME_FROM_GUEST,
			     0, q[i].t, pl, 8);
		vp_put_be32(out + 4, 8 + q[i].len);
		memcpy(out + VP_FR_HDR + 8, q[i].data, q[i].len);
		write_all(fd, out, VP_FR_HDR + 8 + q[i].len);
	}
	*nq = k;
}

/*
 * "fr-flood": a guest that sends FLOOD_FRAMES frames of the largest size in
 * its first quantum (byte i of frame n is n + i), more than the library
 * queues: the report comes after them.
 */
#define FLOOD_FRAMES	(VMP_EVENTS_MAX_BYTES / VP_FR_MAX_FRAME + 40)

static void fr_flood_quantum(int fd, uint64_t until)
{
	static uint8_t out[VP_FR_HDR + VP_FR_MAX_PAYLOAD];
	uint8_t pl[VP_FR_FRAME_HDR];
	uint32_t n, i;

	for (n = 1; n <= FLOOD_FRAMES; n++) {
		vp_put_be32(pl, n);
		vp_put_be16(pl + 4, 0);
		vp_put_be16(pl + 6, 0);
		vp_fr_encode(out, VP_FR_FRAME_FROM_GUEST, 0, until - FLOOD_FRAMES + n, pl, 8);
		vp_put_be32(out + 4, 8 + VP_FR_MAX_FRAME);
		for (i = 0; i < VP_FR_MAX_FRAME; i++)
			out[VP_FR_HDR + 8 + i] = n + i;
		write_all(fd, out, VP_FR_HDR + 8 + VP_FR_MAX_FRAME);
	}
}

static int fr_peer(const char *mode, int fd)
{
	static struct vp_fr_decoder d;
	static struct fr_held held[8];
	int nheld = 0, flooded = 0;
	uint8_t out[VP_FR_HDR + 8 + VP_FR_MAX_TEXT], pl[8 + VP_FR_MAX_TEXT] = { 0 };
	struct vp_fr_msg m;
	size_t len, i;
	int rc;

	if (!strcmp(mode, "fr-seed")) {
		/* a vmpace without --proto framed: a zero grant ends it */
		rc = read_all(fd, out, 4);
		return rc == 1 && !memcmp(out, "\0\0\0\0", 4) ? 0 : 22;
	}
	vp_fr_decoder_init(&d, VP_FR_FROM_SIM);
	rc = fr_peer_read(fd, &d, &m);
	/* the serial modes' simulators ask for the SERIAL feature, no other does */
	if (rc != 1 || m.type != VP_FR_HELLO || vp_get_be32(m.payload) != 1 ||
	    vp_get_be32(m.payload + 4) != 1 || vp_get_be32(m.payload + 8) !=
	    (strcmp(mode, "fr-serial") && strcmp(mode, "fr-badfeat") ? 0 : VP_FR_FEAT_SERIAL))
		return 23;
	vp_put_be32(pl, strcmp(mode, "fr-v2") ? 1 : 2);
	/* fr-deaf too: the library may read the reply while it sends */
	vp_put_be16(pl + 8, strcmp(mode, "fr-net") && strcmp(mode, "fr-deaf") ? 0 : 2);
	if (!strcmp(mode, "fr-serial")) {
		vp_put_be32(pl + 4, VP_FR_FEAT_SERIAL);
		vp_put_be16(pl + 10, 2);
	}
	if (!strcmp(mode, "fr-badfeat"))
		vp_put_be32(pl + 4, VP_FR_FEAT_SERIAL | 0x2);
	if (!strcmp(mode, "fr-serialports"))
		vp_put_be16(pl + 10, 1);
	len = vp_fr_encode(out, VP_FR_HELLO_REPLY, 0, 0, pl, VP_FR_HELLO_LEN);
	if (!strcmp(mode, "fr-early"))
		len = vp_fr_encode(out, VP_FR_REPORT, 0, 0, NULL, 0);
	if (!strcmp(mode, "fr-unasked")) {
		/* the reply and an ERROR before any grant */
		memcpy(pl + 8, "the VMM exited", 14);
		vp_put_be32(pl, 8);
		len += vp_fr_encode(out + len, VP_FR_ERROR, VP_FR_ERROR_FATAL, 0, pl, 22);
	}
	if (!strcmp(mode, "fr-bytewise"))
		for (i = 0; i < len; i++)
			write_all(fd, out + i, 1);
	else
		write_all(fd, out, len);
	if (!strcmp(mode, "fr-deaf")) {
		/* a vmpace that stops reading: it only waits for the hang-up */
		struct pollfd p = { .fd = fd, .events = POLLRDHUP };

		while (!(p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
			if (poll(&p, 1, -1) < 0 && errno != EINTR)
				return 25;
		return 0;
	}
	for (;;) {
		rc = fr_peer_read(fd, &d, &m);
		if (rc == 0)
			return 0;
		if (rc < 0)
			return 21;
		if (m.type == VP_FR_BYE)
			return 0;
		if ((m.type == VP_FR_FRAME_TO_GUEST && !strcmp(mode, "fr-net")) ||
		    (m.type == VP_FR_SERIAL_TO_GUEST && !strcmp(mode, "fr-serial"))) {
			uint32_t id = vp_get_be32(m.payload);
			uint16_t port = vp_get_be16(m.payload + 4);

			if (port >= 2 || nheld == 8) {	/* "no such port" either way */
				static const char text[] = "no such port";

				vp_put_be32(pl, 0);
				vp_put_be32(pl + 4, id);
				memcpy(pl + 8, text, sizeof(text) - 1);
				write_all(fd, out, vp_fr_encode(out, VP_FR_ERROR, 0, 0, pl,
								 8 + sizeof(text) - 1));
				continue;
			}
			held[nheld] = (struct fr_held){ .t = m.t, .id = id, .port = port,
							.len = m.len - 8,
							.serial = m.type == VP_FR_SERIAL_TO_GUEST };
			memcpy(held[nheld++].data, m.payload + 8, m.len - 8);
			continue;
		}
		if (m.type != VP_FR_GRANT)
			return 24;
		if (!strcmp(mode, "fr-net") || !strcmp(mode, "fr-serial"))
			fr_net_quantum(fd, m.t, held, &nheld);
		if (!strcmp(mode, "fr-flood") && !flooded++)
			fr_flood_quantum(fd, m.t);
		if (!strcmp(mode, "fr-error")) {
			static const char text[] = "quantum 1: the VMM (pid 1) exited";

			vp_put_be32(pl, 8);
			memcpy(pl + 8, text, sizeof(text) - 1);
			write_all(fd, out, vp_fr_encode(out, VP_FR_ERROR, VP_FR_ERROR_FATAL,
							 0, pl, 8 + sizeof(text) - 1));
			return 8;
		}
		len = vp_fr_encode(out, VP_FR_REPORT, 0,
				   !strcmp(mode, "fr-short") ? m.t - 1 : m.t + 1, NULL, 0);
		if (!strcmp(mode, "fr-bytewise"))
			for (i = 0; i < len; i++)
				write_all(fd, out + i, 1);
		else
			write_all(fd, out, len);
	}
}

static int peer(const char *mode, int fd)
{
	uint8_t g[8], r[8];
	size_t size = strcmp(mode, "echo64") ? 4 : 8;
	uint64_t v;
	size_t i;
	int rc;

	struct stat st;

	signal(SIGUSR1, on_usr1);
	if (!no_leaked_sockets(fd))
		return 30;
	if (!strcmp(mode, "hello")) {
		printf("hello from fd %d, %s\n", fd,
		       !fstat(fd, &st) && S_ISSOCK(st.st_mode) ? "a socket" : "not a socket");
		return 0;
	}
	/* ready for SIGUSR1: the test waits for this line */
	printf("ready\n");
	fflush(stdout);
	if (!strncmp(mode, "fr-", 3))
		return fr_peer(mode, fd);
	if (!strcmp(mode, "exit0"))
		return 0;
	if (!strcmp(mode, "linger")) {
		signal(SIGTERM, SIG_IGN);
		for (;;)
			pause();
	}
	for (;;) {
		rc = read_all(fd, g, size);
		if (rc == 0)
			return 0;	/* the simulator closed: session over */
		if (rc < 0)
			return 21;
		if (!strcmp(mode, "exit8"))
			return 8;
		for (v = 0, i = 0; i < size; i++)
			v = v << 8 | g[i];
		v = !strcmp(mode, "short") ? v - 1 : v + 1;
		for (i = 0; i < size; i++)
			r[i] = v >> (8 * (size - 1 - i));
		if (!strcmp(mode, "half")) {
			write_all(fd, r, 2);
			return 7;
		}
		if (!strcmp(mode, "poke"))
			wait_poke();
		if (!strcmp(mode, "twice")) {
			/* one write: the duplicate is there with the report */
			uint8_t rr[16];

			memcpy(rr, r, size);
			memcpy(rr + size, r, size);
			write_all(fd, rr, 2 * size);
		} else if (!strcmp(mode, "halfpoke")) {
			write_all(fd, r, 2);
			wait_poke();
			write_all(fd, r + 2, size - 2);
		} else if (!strcmp(mode, "bytewise")) {
			for (i = 0; i < size; i++)
				write_all(fd, r + i, 1);
		} else {
			write_all(fd, r, size);
		}
	}
}

/* ---- the tests ---- */

/* Spawn the peer on child fd @fd and wait until it said it is ready. */
static struct vmp *spawn(const char *mode, enum vmp_proto proto, int fd)
{
	char fdarg[16], line[16] = "";
	const char *argv[] = { self, "peer", mode, fdarg, NULL };
	struct vmp_spawn_attr attr = { .sync_fd = fd == 3 ? 0 : fd, .flags = VMP_SPAWN_STDOUT };
	struct pollfd pf;
	struct vmp *v;
	int p[2], r;

	snprintf(fdarg, sizeof(fdarg), "%d", fd);
	if (pipe2(p, O_CLOEXEC)) {
		fatal("pipe2");
		exit(1);
	}
	attr.stdout_fd = p[1];
	r = vmp_spawn(&v, proto, argv, &attr);
	close(p[1]);
	pf = (struct pollfd){ .fd = p[0], .events = POLLIN };
	if (r || poll(&pf, 1, 10000) != 1 || read(p[0], line, sizeof(line) - 1) != 6 ||
	    strcmp(line, "ready\n"))
		ok(false, "spawn peer %s: %s (said \"%s\")", mode, vmp_errmsg(v), line);
	close(p[0]);
	return v;
}

static void test_echo(void)
{
	struct vmp *v = spawn("echo32", VMP_PROTO_US32, 3);
	uint64_t e = 0, sum = 0;
	int r = 0, st, i;

	for (i = 0; i < 100 && !r; i++) {
		r = vmp_quantum(v, 1000 + i, &e, 5000);
		sum += e;
	}
	ok(!r && sum == 100 * 1000 + 99 * 100 / 2 + 100,
	   "us32: 100 quanta, every report as the peer sent it (sum %llu) %s",
	   (unsigned long long)sum, r ? vmp_errmsg(v) : "");
	ok(vmp_unit_ns(v) == 1000 && vmp_pid(v) > 0 && vmp_fd(v) >= 0,
	   "us32: unit 1000 ns, a child pid and a fd");
	r = vmp_grant(v, 1ull << 32);
	ok(r == -ERANGE && strstr(vmp_errmsg(v), "32 bits"),
	   "us32: a grant of 2^32 us is -ERANGE (%s)", vmp_errmsg(v));
	r = vmp_quantum(v, UINT32_MAX - 1, &e, 5000);
	ok(!r && e == UINT32_MAX, "us32: the session goes on after -ERANGE; grant 2^32-2 -> %llu",
	   (unsigned long long)e);
	r = vmp_await(v, &e, 0);
	ok(r == -EALREADY, "vmp_await without a grant is -EALREADY");
	r = vmp_grant(v, 5);
	ok(!r && vmp_grant(v, 5) == -EBUSY, "a second grant before the report is -EBUSY");
	r = vmp_await(v, &e, 5000);
	ok(!r && e == 6, "the first grant's report is still read (%llu)", (unsigned long long)e);
	r = vmp_close(v, 5000, &st);
	ok(!r && WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	   strstr(vmp_errmsg(v), "exited with status 0"),
	   "close: the peer sees end of file and exits 0 (%s)", vmp_errmsg(v));
	ok(!vmp_close(v, 0, &st) && vmp_grant(v, 1) == -EBADF && vmp_fd(v) == -1,
	   "close is idempotent; a closed session refuses grants (-EBADF)");
	vmp_free(v);
}

/*
 * The child's stdout is our pipe, whatever the fd numbers: also when the
 * pipe's end has the number the child's sync fd is to have.
 */
static void test_stdout(int sync_fd)
{
	const char *expect_fmt = "hello from fd %d, a socket\n";
	char fdarg[16], buf[64] = "", expect[64];
	const char *argv[] = { self, "peer", "hello", fdarg, NULL };
	struct vmp_spawn_attr attr = { .sync_fd = sync_fd, .flags = VMP_SPAWN_STDOUT };
	struct vmp *v;
	int p[2], r, st = -1, wr;
	ssize_t n = 0;
	bool good;

	if (pipe2(p, O_CLOEXEC))
		return fatal("pipe2");
	wr = p[1];
	if (!sync_fd) {
		/* the write end on the fd the child's socket will have */
		wr = sync_fd = p[1];
		attr.sync_fd = sync_fd;
	}
	snprintf(fdarg, sizeof(fdarg), "%d", sync_fd);
	snprintf(expect, sizeof(expect), expect_fmt, sync_fd);
	attr.stdout_fd = wr;
	r = vmp_spawn(&v, VMP_PROTO_US32, argv, &attr);
	close(p[1]);
	if (!r)
		n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	r = r ? r : vmp_close(v, 5000, &st);
	good = !r && n == (ssize_t)strlen(expect) && !strcmp(buf, expect) && WIFEXITED(st) &&
	       !WEXITSTATUS(st);
	ok(good, "VMP_SPAWN_STDOUT with sync fd %d%s: the child's stdout is our "
	   "pipe, fd %d its socket (%s)", sync_fd, sync_fd == wr ? ", the pipe's own number" : "",
	   sync_fd, r ? vmp_errmsg(v) : strtok(buf, "\n"));
	vmp_free(v);
}

static void test_ns64_bytewise(void)
{
	struct vmp *v = spawn("echo64", VMP_PROTO_NS64, 7);
	uint64_t e = 0;
	int r;

	r = vmp_quantum(v, 5000000000ull, &e, 5000);
	ok(!r && e == 5000000001ull && vmp_unit_ns(v) == 1,
	   "ns64 on child fd 7: a grant of 5 s in ns -> %llu", (unsigned long long)e);
	r = vmp_quantum(v, UINT64_MAX - 1, &e, 5000);
	ok(!r && e == UINT64_MAX, "ns64: grant 2^64-2 -> 2^64-1");
	vmp_free(v);

	v = spawn("bytewise", VMP_PROTO_US32, 3);
	r = vmp_quantum(v, 0x01020304, &e, 5000);
	ok(!r && e == 0x01020305, "a report arriving one byte per write is assembled (%#llx)",
	   (unsigned long long)e);
	vmp_free(v);
}

static void test_dead_peers(void)
{
	struct vmp *v = spawn("exit8", VMP_PROTO_US32, 3);
	uint64_t e;
	int r, st, sp[2];

	r = vmp_quantum(v, 1000, &e, 5000);
	ok(r == -EPIPE && strstr(vmp_errmsg(v), "vmpace closed the connection"),
	   "peer exits 8 at a grant: -EPIPE (%s)", vmp_errmsg(v));
	ok(vmp_grant(v, 1000) == -EPIPE, "a session that ended refuses further grants (-EPIPE)");
	r = vmp_close(v, 5000, &st);
	ok(!r && WIFEXITED(st) && WEXITSTATUS(st) == 8 &&
	   strstr(vmp_errmsg(v), "exited with status 8 (the VMM exited)") && !vmp_pid(v),
	   "close: its wait status, named (%s); vmp_pid 0 once reaped", vmp_errmsg(v));
	vmp_free(v);

	v = spawn("half", VMP_PROTO_US32, 3);
	r = vmp_quantum(v, 1000, &e, 5000);
	ok(r == -EPIPE && strstr(vmp_errmsg(v), "middle of a report"),
	   "peer dies after half a report: -EPIPE (%s)", vmp_errmsg(v));
	r = vmp_close(v, 5000, &st);
	ok(!r && WIFEXITED(st) && WEXITSTATUS(st) == 7, "and its status 7 (%s)", vmp_errmsg(v));
	vmp_free(v);

	/*
	 * SIGPIPE keeps its default action here: a send to a peer that shut
	 * down reading fails with EPIPE, and the library must not raise it.
	 */
	signal(SIGPIPE, SIG_DFL);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp))
		return fatal("socketpair");
	shutdown(sp[1], SHUT_RD);
	r = vmp_from_fd(&v, VMP_PROTO_US32, sp[0]);
	r = r ? r : vmp_grant(v, 1000);
	ok(r == -EPIPE && strstr(vmp_errmsg(v), "Broken pipe"),
	   "grant to a peer that stopped reading: -EPIPE, no SIGPIPE (%s)", vmp_errmsg(v));
	vmp_free(v);
	close(sp[1]);

	/* The application took the child's exit status: said so. */
	signal(SIGCHLD, SIG_IGN);
	v = spawn("exit0", VMP_PROTO_US32, 3);
	r = vmp_close(v, 5000, &st);
	ok(r == -ECHILD && strstr(vmp_errmsg(v), "collected elsewhere"),
	   "SIGCHLD ignored: close says the status is gone (%s)", vmp_errmsg(v));
	vmp_free(v);
	signal(SIGCHLD, SIG_DFL);
}

static void test_bad_reports(void)
{
	struct vmp *v = spawn("short", VMP_PROTO_US32, 3);
	uint64_t e;
	int r;

	r = vmp_quantum(v, 1000, &e, 5000);
	ok(r == -EPROTO && strstr(vmp_errmsg(v), "reported 999 for a grant of 1000"),
	   "a report smaller than its grant: -EPROTO (%s)", vmp_errmsg(v));
	vmp_free(v);

	v = spawn("twice", VMP_PROTO_US32, 3);
	r = vmp_quantum(v, 1000, &e, 5000);
	ok(!r && e == 1001, "twice: the first report is read");
	r = vmp_grant(v, 1000);
	ok(r == -EPROTO && strstr(vmp_errmsg(v), "without a grant"),
	   "bytes without a grant are a protocol error at the next grant (%s)",
	   vmp_errmsg(v));
	vmp_free(v);
}

static struct vmp *alarm_target;

static void on_alarm(int sig __attribute__((unused)))
{
	kill(vmp_pid(alarm_target), SIGUSR1);
}

static void test_timeouts_and_signals(void)
{
	struct vmp *v = spawn("halfpoke", VMP_PROTO_US32, 3);
	struct sigaction sa = { .sa_handler = on_alarm };	/* no SA_RESTART */
	struct itimerval it = { .it_value = { 0, 50000 } };
	uint64_t e = 0;
	int r, st;

	r = vmp_quantum(v, 0x11223344, &e, 100);
	ok(r == -ETIMEDOUT, "half a report within the timeout: -ETIMEDOUT (%s)", vmp_errmsg(v));
	kill(vmp_pid(v), SIGUSR1);
	r = vmp_await(v, &e, 5000);
	ok(!r && e == 0x11223345, "after -ETIMEDOUT the rest of the report completes it (%#llx)",
	   (unsigned long long)e);
	vmp_free(v);

	/* a signal handler runs while vmp_await waits: EINTR is not an error */
	v = spawn("poke", VMP_PROTO_US32, 3);
	alarm_target = v;
	sigaction(SIGALRM, &sa, NULL);
	r = vmp_grant(v, 42);
	setitimer(ITIMER_REAL, &it, NULL);
	if (!r)
		r = vmp_await(v, &e, -1);
	ok(!r && e == 43, "SIGALRM (no SA_RESTART) during vmp_await: report read (%s)",
	   r ? vmp_errmsg(v) : "ok");
	vmp_free(v);

	v = spawn("linger", VMP_PROTO_US32, 3);
	r = vmp_close(v, 200, &st);
	ok(r == -ETIMEDOUT && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL &&
	   strstr(vmp_errmsg(v), "did not exit within 200 ms"),
	   "a child that does not exit after close: killed after the timeout (%s)",
	   vmp_errmsg(v));
	vmp_free(v);
}

static void test_framed(void)
{
	struct vmp *v = spawn("fr-echo", VMP_PROTO_FRAMED, 3);
	uint64_t e = 0;
	int r = 0, st, i;

	for (i = 0; i < 50 && !r; i++)
		r = vmp_quantum(v, 1000, &e, 5000);
	ok(!r && e == 1001 && vmp_now(v) == 50 * 1001 && vmp_unit_ns(v) == 1,
	   "framed: HELLO answered, 50 quanta of 1000 ns, each reported 1 ns late: now %llu %s",
	   (unsigned long long)vmp_now(v), r ? vmp_errmsg(v) : "");
	r = vmp_grant_until(v, vmp_now(v) - 1);
	ok(r == -ERANGE && strstr(vmp_errmsg(v), "already at"),
	   "framed: a grant until a past time is -ERANGE (%s)", vmp_errmsg(v));
	r = vmp_grant_until(v, 1000000);
	ok(!r && !vmp_await(v, &e, 5000) && vmp_now(v) == 1000001 && e == 1000001 - 50 * 1001,
	   "framed: vmp_grant_until(1 ms): now %llu", (unsigned long long)vmp_now(v));
	r = vmp_grant(v, UINT64_MAX);
	ok(r == -ERANGE, "framed: a grant past 2^64 ns is -ERANGE (%s)", vmp_errmsg(v));
	ok(!vmp_close(v, 5000, &st) && WIFEXITED(st) && !WEXITSTATUS(st),
	   "framed: close: the peer sees end of file (%s)", vmp_errmsg(v));
	vmp_free(v);

	v = spawn("fr-bytewise", VMP_PROTO_FRAMED, 3);
	for (i = 0, r = 0; i < 5 && !r; i++)
		r = vmp_quantum(v, 7, &e, 5000);
	ok(!r && vmp_now(v) == 5 * 8, "framed: reply and reports a byte at a time %s",
	   r ? vmp_errmsg(v) : "");
	vmp_free(v);

	v = spawn("echo64", VMP_PROTO_NS64, 3);
	ok(vmp_grant_until(v, 5) == -EOPNOTSUPP, "vmp_grant_until() with ns64 is -EOPNOTSUPP");
	r = vmp_quantum(v, 5, &e, 5000);
	ok(!r && e == 6 && vmp_now(v) == 6, "ns64: the session goes on; vmp_now() %llu ns",
	   (unsigned long long)vmp_now(v));
	vmp_free(v);

	v = spawn("echo32", VMP_PROTO_US32, 3);
	r = vmp_quantum(v, 5, &e, 5000);
	ok(!r && e == 6 && vmp_now(v) == 6000, "us32: vmp_now() counts ns (6 us = %llu ns)",
	   (unsigned long long)vmp_now(v));
	vmp_free(v);

	v = spawn("fr-seed", VMP_PROTO_FRAMED, 3);
	r = vmp_quantum(v, 1000, &e, 5000);
	ok(r == -EPIPE && strstr(vmp_errmsg(v), "started with --proto framed"),
	   "framed to a seed vmpace: -EPIPE, \"%s\"", vmp_errmsg(v));
	ok(!vmp_close(v, 5000, &st) && WIFEXITED(st) && !WEXITSTATUS(st),
	   "framed to a seed vmpace: it read the opening as a zero grant (exit %d)",
	   WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	vmp_free(v);

	v = spawn("fr-error", VMP_PROTO_FRAMED, 3);
	r = vmp_quantum(v, 1000, &e, 5000);
	ok(r == -EPIPE && strstr(vmp_errmsg(v), "exit 8, the VMM exited): quantum 1: the VMM"),
	   "framed: vmpace's ERROR is the message: \"%s\"", vmp_errmsg(v));
	ok(vmp_grant(v, 1) == -EPIPE, "framed: the session is over after an ERROR");
	vmp_free(v);

	v = spawn("fr-unasked", VMP_PROTO_FRAMED, 3);
	r = -1;
	for (i = 0; i < 500 && r; i++) {
		/* the grant reads what came before it: the ERROR once it is there */
		r = vmp_grant(v, 1) == -EPIPE ? 0 : -1;
		if (r && !vmp_await(v, &e, 0))
			r = -2;
		if (r == -2)
			break;
		usleep(10000);
	}
	ok(!r && strstr(vmp_errmsg(v), "the VMM exited"),
	   "framed: an ERROR before a grant fails the grant: \"%s\"", vmp_errmsg(v));
	vmp_free(v);

	v = spawn("fr-short", VMP_PROTO_FRAMED, 3);
	r = vmp_quantum(v, 1000, &e, 5000);
	ok(r == -EPROTO && strstr(vmp_errmsg(v), "guest time 999 ns for a grant until 1000"),
	   "framed: a report before the grant's end is -EPROTO (%s)", vmp_errmsg(v));
	vmp_free(v);

	v = spawn("fr-v2", VMP_PROTO_FRAMED, 3);
	r = vmp_quantum(v, 1000, &e, 5000);
	ok(r == -EPROTO && strstr(vmp_errmsg(v), "version 2"),
	   "framed: a reply with another version is -EPROTO (%s)", vmp_errmsg(v));
	vmp_free(v);

	v = spawn("fr-early", VMP_PROTO_FRAMED, 3);
	r = vmp_quantum(v, 1000, &e, 5000);
	ok(r == -EPROTO && strstr(vmp_errmsg(v), "REPORT before its HELLO reply"),
	   "framed: a report before the HELLO reply is -EPROTO (%s)", vmp_errmsg(v));
	vmp_free(v);
}

static void test_frames(void)
{
	static uint8_t big[VP_FR_MAX_FRAME + 1];
	struct vmp *v = spawn("fr-net", VMP_PROTO_FRAMED, 3);
	struct vmp_event ev;
	uint32_t id1 = 0, id2 = 0, id3 = 0;
	uint64_t e;
	int r, n, i;

	ok(vmp_next_event(v, &ev) == -EAGAIN, "frames: no event before any was read");
	r = vmp_send_frame(v, 0, 500, "abc", 3, &id1);
	ok(!r && id1 == 1, "frames: a frame for port 0 at 500 ns before the first grant (id %u)",
	   id1);
	r = vmp_quantum(v, 1000, &e, 5000);
	ok(!r && vmp_net_ports(v) == 2, "frames: a quantum; vmpace has %u ports %s",
	   vmp_net_ports(v), r ? vmp_errmsg(v) : "");
	r = vmp_next_event(v, &ev);
	ok(!r && ev.type == VMP_EV_DELIVERED && ev.id == 1 && ev.t == 500 &&
	   ev.status == VMP_DELIVERED_OK && ev.flags == VMP_DELIVERED_IRQ,
	   "frames: DELIVERED id 1 at 500 ns, with an interrupt");
	r = vmp_next_event(v, &ev);
	ok(!r && ev.type == VMP_EV_FRAME && ev.port == 0 && ev.t == 500 && ev.len == 3 &&
	   !memcmp(ev.data, "abc", 3), "frames: the echo from the guest, port 0, 500 ns");
	ok(vmp_next_event(v, &ev) == -EAGAIN, "frames: then no more events");

	/* the peer holds 8 frames: the 9th is refused, the session goes on */
	for (i = 0, r = 0; i < 9 && !r; i++)
		r = vmp_send_frame(v, 0, 1500, "q", 1, &id2);
	r = r ?: vmp_quantum(v, 1000, &e, 5000);
	n = 0;
	while (!r && !vmp_next_event(v, &ev)) {
		if (ev.type == VMP_EV_REJECTED)
			ok(ev.id == 10 && id2 == 10 && ev.len == 12 && !strcmp(ev.data, "no such port"),
			   "frames: the 9th frame (id %u) is refused: %s", ev.id,
			   (const char *)ev.data);
		n += ev.type == VMP_EV_DELIVERED;
	}
	ok(!r && n == 8, "frames: the 8 others delivered (%d) %s", n, r ? vmp_errmsg(v) : "");

	ok(vmp_send_frame(v, 2, 2000, "x", 1, NULL) == -EINVAL &&
	   strstr(vmp_errmsg(v), "no network port 2 (vmpace has 2"),
	   "frames: port 2 of 2 is -EINVAL (%s)", vmp_errmsg(v));
	ok(vmp_send_frame(v, 0, 400, "x", 1, NULL) == -EINVAL &&
	   strstr(vmp_errmsg(v), "in order"), "frames: an earlier time on a port is -EINVAL (%s)",
	   vmp_errmsg(v));
	ok(vmp_send_frame(v, 0, 2000, "x", 0, NULL) == -EMSGSIZE &&
	   vmp_send_frame(v, 0, 2000, big, VP_FR_MAX_FRAME + 1, NULL) == -EMSGSIZE,
	   "frames: 0 and 65536 bytes are -EMSGSIZE");
	memset(big, 0x5a, sizeof(big));
	big[0] = 1;
	big[VP_FR_MAX_FRAME - 1] = 2;
	r = vmp_send_frame(v, 1, 3000, big, VP_FR_MAX_FRAME, &id3);
	r = r ?: vmp_grant(v, 500);
	ok(!r && vmp_send_frame(v, 1, 5000, "x", 1, NULL) == -EBUSY,
	   "frames: while a grant is outstanding: -EBUSY");
	r = r ?: vmp_await(v, &e, 5000);
	ok(!r && vmp_next_event(v, &ev) == -EAGAIN, "frames: not due within that grant");
	r = r ?: vmp_quantum(v, 3000 - vmp_now(v), &e, 5000);
	n = 0;
	while (!r && !vmp_next_event(v, &ev))
		if ((ev.type == VMP_EV_DELIVERED && ev.id == id3 && ev.t == 3000) ||
		    (ev.type == VMP_EV_FRAME && ev.port == 1 && ev.len == VP_FR_MAX_FRAME &&
		     !memcmp(ev.data, big, VP_FR_MAX_FRAME)))
			n++;
	ok(!r && n == 2, "frames: 65535 bytes to port 1 at 3000 ns: delivered and echoed (%d) %s",
	   n, r ? vmp_errmsg(v) : "");
	vmp_free(v);

	v = spawn("echo64", VMP_PROTO_NS64, 3);
	ok(vmp_send_frame(v, 0, 1, "x", 1, NULL) == -EOPNOTSUPP, "frames with ns64: -EOPNOTSUPP");
	vmp_free(v);
}

/*
 * A simulator that leaves vmpace's events queued: vmp_await() stops reading
 * at VMP_EVENTS_MAX_BYTES with -ENOBUFS, the session goes on, and once the
 * events are taken every frame arrives, in order and whole.
 */
static void test_serial(void)
{
	static uint8_t big[VMP_SERIAL_MAX + 1];
	struct vmp *v = spawn("fr-serial", VMP_PROTO_FRAMED, 3);
	struct vmp_event ev;
	uint32_t id1 = 0, id2 = 0;
	uint64_t e;
	int r, n = 0;

	ok(vmp_send_serial(v, 0, 700, "x", 1, NULL) == -EOPNOTSUPP &&
	   strstr(vmp_errmsg(v), "need vmp_set_features(v, VMP_FEAT_SERIAL)"),
	   "serial: not asked for: -EOPNOTSUPP (%s)", vmp_errmsg(v));
	ok(vmp_set_features(v, 0x2) == -EINVAL && strstr(vmp_errmsg(v), "unknown features 0x2"),
	   "serial: an unknown feature is -EINVAL (%s)", vmp_errmsg(v));
	ok(!vmp_set_features(v, VMP_FEAT_SERIAL), "serial: asked for before the first grant");
	/* the HELLO reply is awaited: it names the ports */
	r = vmp_send_serial(v, 1, 700, "hi\n", 3, &id1);
	ok(!r && id1 == 1, "serial: bytes for port 1 at 700 ns before the first grant (id %u) %s",
	   id1, r ? vmp_errmsg(v) : "");
	r = vmp_quantum(v, 1000, &e, 5000);
	ok(!r && vmp_serial_ports(v) == 2 && vmp_net_ports(v) == 0,
	   "serial: a quantum; vmpace has %u serial and %u network ports %s",
	   vmp_serial_ports(v), vmp_net_ports(v), r ? vmp_errmsg(v) : "");
	r = vmp_next_event(v, &ev);
	ok(!r && ev.type == VMP_EV_DELIVERED && ev.id == 1 && ev.t == 700 &&
	   ev.status == VMP_DELIVERED_OK, "serial: DELIVERED id 1 at 700 ns");
	r = vmp_next_event(v, &ev);
	ok(!r && ev.type == VMP_EV_SERIAL && ev.port == 1 && ev.t == 700 && ev.len == 3 &&
	   !memcmp(ev.data, "hi\n", 3), "serial: the guest's bytes, port 1, 700 ns");
	ok(vmp_send_serial(v, 2, 2000, "x", 1, NULL) == -EINVAL &&
	   strstr(vmp_errmsg(v), "no serial port 2 (vmpace has 2: its --serial"),
	   "serial: port 2 of 2 is -EINVAL (%s)", vmp_errmsg(v));
	ok(vmp_send_serial(v, 1, 600, "x", 1, NULL) == -EINVAL && strstr(vmp_errmsg(v), "in order"),
	   "serial: an earlier time on a port is -EINVAL (%s)", vmp_errmsg(v));
	ok(vmp_send_frame(v, 0, 2000, "x", 1, NULL) == -EINVAL &&
	   strstr(vmp_errmsg(v), "no network port 0"),
	   "serial: network ports count apart: none here (%s)", vmp_errmsg(v));
	ok(vmp_send_serial(v, 0, 2000, "x", 0, NULL) == -EMSGSIZE &&
	   vmp_send_serial(v, 0, 2000, big, VMP_SERIAL_MAX + 1, NULL) == -EMSGSIZE,
	   "serial: 0 and 4097 bytes are -EMSGSIZE (%s)", vmp_errmsg(v));
	memset(big, 'z', VMP_SERIAL_MAX);
	r = vmp_send_serial(v, 0, 600, big, VMP_SERIAL_MAX, &id2);
	r = r ?: vmp_quantum(v, 1000, &e, 5000);
	while (!r && !vmp_next_event(v, &ev))
		if ((ev.type == VMP_EV_DELIVERED && ev.id == id2 && ev.t == 600 &&
		     ev.status == VMP_DELIVERED_OK) ||
		    (ev.type == VMP_EV_SERIAL && ev.port == 0 && ev.len == VMP_SERIAL_MAX &&
		     !memcmp(ev.data, big, VMP_SERIAL_MAX)))
			n++;
	ok(!r && n == 2, "serial: 4096 bytes to port 0 (its own order): delivered and echoed (%d) %s",
	   n, r ? vmp_errmsg(v) : "");
	ok(vmp_set_features(v, 0) == -EALREADY && strstr(vmp_errmsg(v), "before the session's first"),
	   "serial: features after the first grant are -EALREADY (%s)", vmp_errmsg(v));
	vmp_free(v);

	/* a simulator that did not ask, a vmpace that does not grant it */
	v = spawn("fr-echo", VMP_PROTO_FRAMED, 3);
	r = vmp_quantum(v, 1000, &e, 5000);
	ok(!r && vmp_send_serial(v, 0, 2000, "x", 1, NULL) == -EOPNOTSUPP && !vmp_serial_ports(v),
	   "serial: not asked for: -EOPNOTSUPP, no serial port (%s)", vmp_errmsg(v));
	vmp_free(v);
	v = spawn("fr-badfeat", VMP_PROTO_FRAMED, 3);
	r = vmp_set_features(v, VMP_FEAT_SERIAL);
	r = r ?: vmp_quantum(v, 1000, &e, 5000);
	ok(r == -EPROTO && strstr(vmp_errmsg(v), "features 0x3, which were not asked for"),
	   "serial: a feature granted unasked is -EPROTO (%s)", vmp_errmsg(v));
	vmp_free(v);
	v = spawn("fr-serialports", VMP_PROTO_FRAMED, 3);
	r = vmp_quantum(v, 1000, &e, 5000);
	ok(r == -EPROTO && strstr(vmp_errmsg(v), "1 serial ports without the SERIAL feature"),
	   "serial: serial ports without the feature are -EPROTO (%s)", vmp_errmsg(v));
	vmp_free(v);
	v = spawn("echo64", VMP_PROTO_NS64, 3);
	ok(vmp_send_serial(v, 0, 1, "x", 1, NULL) == -EOPNOTSUPP &&
	   vmp_set_features(v, VMP_FEAT_SERIAL) == -EOPNOTSUPP,
	   "serial and features with ns64: -EOPNOTSUPP");
	vmp_free(v);
}

static void test_event_queue_limit(void)
{
	struct vmp *v = spawn("fr-flood", VMP_PROTO_FRAMED, 3);
	uint32_t next = 1, bad = 0, i;
	size_t most = 0, round;
	struct vmp_event ev;
	int r, full = 0;
	uint64_t e = 0;
	char msg[256];

	r = vmp_grant(v, 1000000);
	while (!r || r == -ENOBUFS) {
		r = vmp_await(v, &e, 10000);
		if (r == -ENOBUFS) {
			if (!full++) {
				snprintf(msg, sizeof(msg), "%s", vmp_errmsg(v));
				ok(strstr(msg, "take them with vmp_next_event()") &&
				   vmp_grant(v, 1) == -EBUSY,
				   "event queue: full: -ENOBUFS, the grant still outstanding (%s)",
				   msg);
			}
		} else if (r) {
			break;
		}
		for (round = 0; !vmp_next_event(v, &ev); next++) {
			round += ev.len;
			if (ev.type != VMP_EV_FRAME || ev.id != next || ev.len != VP_FR_MAX_FRAME ||
			    ev.t != 1000000 - FLOOD_FRAMES + next)
				bad++;
			for (i = 0; i < ev.len && !bad; i++)
				bad += ((const uint8_t *)ev.data)[i] != (uint8_t)(next + i);
		}
		if (round > most)
			most = round;
		if (!r)
			break;
	}
	ok(!r && e >= 1000000 && vmp_now(v) == e,
	   "event queue: the report after %d full queue(s) %s", full, r ? vmp_errmsg(v) : "");
	/* the message that reaches the limit is queued whole */
	ok(full >= 1 && most > VMP_EVENTS_MAX_BYTES / 2 &&
	   most < VMP_EVENTS_MAX_BYTES + VP_FR_MAX_FRAME,
	   "event queue: reading stopped at the limit (%zu bytes of frames at most in a queue)",
	   most);
	ok(next - 1 == FLOOD_FRAMES && !bad,
	   "event queue: all %u frames taken, in order and whole (%u, %u bad)",
	   (unsigned int)FLOOD_FRAMES, next - 1, bad);
	ok(!vmp_quantum(v, 1000, &e, 10000) && vmp_next_event(v, &ev) == -EAGAIN,
	   "event queue: the session goes on");
	vmp_free(v);
}

/* A vmpace that stops reading fails a send after the send timeout. */
static void test_send_timeout(void)
{
	static uint8_t big[VP_FR_MAX_FRAME];
	struct vmp *v = spawn("fr-deaf", VMP_PROTO_FRAMED, 3);
	struct timespec t0, t1;
	int r = 0, i, st;
	long ms;

	ok(vmp_set_send_timeout(v, -2) == -EINVAL && strstr(vmp_errmsg(v), "-2 ms"),
	   "a send timeout of -2 ms is -EINVAL (%s)", vmp_errmsg(v));
	ok(!vmp_set_send_timeout(v, 200), "a send timeout of 200 ms");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 1000 && !r; i++)
		r = vmp_send_frame(v, 0, i, big, sizeof(big), NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ok(r == -ETIMEDOUT && i > 1 && ms >= 200 && ms < 5000 &&
	   strstr(vmp_errmsg(v), "sending a frame: vmpace did not take it within the send timeout (200 ms)"),
	   "frames to a vmpace that does not read: frame %d fails after %ld ms: \"%s\"",
	   i, ms, vmp_errmsg(v));
	ok(vmp_send_frame(v, 0, i, "x", 1, NULL) == -EPIPE && vmp_grant(v, 1) == -EPIPE,
	   "after a send timeout the session is over (-EPIPE)");
	ok(!vmp_close(v, 5000, &st) && WIFEXITED(st) && !WEXITSTATUS(st),
	   "the deaf peer sees the hang-up and exits");
	vmp_free(v);
}

static void test_bad_arguments(void)
{
	const char *argv[] = { "/nonexistent/vmpace", "run", NULL };
	const char *none[] = { NULL };
	struct vmp *v;
	int fds[2], r;

	r = vmp_spawn(&v, VMP_PROTO_US32, argv, NULL);
	ok(r == -ENOENT && strstr(vmp_errmsg(v), "cannot run /nonexistent/vmpace"),
	   "spawn of a missing program: -ENOENT (%s)", vmp_errmsg(v));
	ok(vmp_grant(v, 1) == -EBADF, "a session that never started refuses grants");
	vmp_free(v);
	r = vmp_spawn(&v, VMP_PROTO_US32, none, NULL);
	ok(r == -EINVAL, "spawn with an empty argv: -EINVAL (%s)", vmp_errmsg(v));
	vmp_free(v);
	r = vmp_spawn(&v, VMP_PROTO_US32, argv, &(struct vmp_spawn_attr){ .sync_fd = 2 });
	ok(r == -EINVAL && strstr(vmp_errmsg(v), "3 or more"),
	   "spawn onto fd 2: -EINVAL (%s)", vmp_errmsg(v));
	vmp_free(v);
	r = vmp_spawn(&v, (enum vmp_proto)7, argv, NULL);
	ok(r == -EINVAL, "an unknown protocol: -EINVAL (%s)", vmp_errmsg(v));
	vmp_free(v);
	r = vmp_spawn(&v, VMP_PROTO_US32, argv, &(struct vmp_spawn_attr){ .flags = 0x80 });
	ok(r == -EINVAL && strstr(vmp_errmsg(v), "unknown flags"),
	   "spawn with unknown flags: -EINVAL (%s)", vmp_errmsg(v));
	vmp_free(v);
	r = vmp_spawn(&v, VMP_PROTO_US32, argv, &(struct vmp_spawn_attr){ .reserved[5] = 1 });
	ok(r == -EINVAL && strstr(vmp_errmsg(v), "reserved"),
	   "spawn with a reserved field set: -EINVAL (%s)", vmp_errmsg(v));
	vmp_free(v);
	r = vmp_spawn(&v, VMP_PROTO_US32, argv,
		      &(struct vmp_spawn_attr){ .flags = VMP_SPAWN_STDOUT, .stdout_fd = 999 });
	ok(r == -EBADF && strstr(vmp_errmsg(v), "stdout_fd 999"),
	   "spawn with a closed stdout_fd: -EBADF, named (%s)", vmp_errmsg(v));
	vmp_free(v);

	if (pipe(fds))
		return;
	r = vmp_from_fd(&v, VMP_PROTO_US32, fds[0]);
	ok(r == -ENOTSOCK, "from_fd of a pipe: -ENOTSOCK (%s)", vmp_errmsg(v));
	vmp_free(v);
	close(fds[0]);
	close(fds[1]);
	r = vmp_from_fd(&v, VMP_PROTO_US32, 1000);
	ok(r == -EBADF, "from_fd of a closed fd: -EBADF (%s)", vmp_errmsg(v));
	vmp_free(v);
	fds[0] = socket(AF_UNIX, SOCK_STREAM, 0);
	r = vmp_from_fd(&v, VMP_PROTO_US32, fds[0]);
	ok(r == -ENOTCONN, "from_fd of a socket that is not connected: -ENOTCONN (%s)",
	   vmp_errmsg(v));
	vmp_free(v);
	close(fds[0]);
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, fds))
		return;
	r = vmp_from_fd(&v, VMP_PROTO_US32, fds[0]);
	ok(r == -EPROTOTYPE, "from_fd of a datagram socket: -EPROTOTYPE (%s)", vmp_errmsg(v));
	vmp_free(v);
	close(fds[0]);
	close(fds[1]);

	r = vmp_connect(&v, VMP_PROTO_US32, "vsock:1:2", 0);
	ok(r == -EINVAL, "connect to an unknown address kind: -EINVAL (%s)", vmp_errmsg(v));
	vmp_free(v);
	r = vmp_connect(&v, VMP_PROTO_US32, "tcp:localhost", 0);
	ok(r == -EINVAL, "tcp without a port: -EINVAL (%s)", vmp_errmsg(v));
	vmp_free(v);
	r = vmp_connect(&v, VMP_PROTO_US32, "tcp:127.0.0.1:notaport", 0);
	ok(r == -EINVAL && strstr(vmp_errmsg(v), "tcp:127.0.0.1:notaport"),
	   "tcp with a bad port: -EINVAL, the address in the message (%s)", vmp_errmsg(v));
	vmp_free(v);
	r = vmp_connect(&v, VMP_PROTO_US32, "unix:", -1);
	ok(r == -EINVAL, "unix without a path: -EINVAL at once (%s)", vmp_errmsg(v));
	vmp_free(v);
}

/* A one-connection "vmpace --listen" of our own: accept, echo one quantum. */
static void serve_one(int lfd)
{
	uint8_t g[4];
	uint32_t x;
	int c = accept(lfd, NULL, NULL);

	if (c < 0 || read_all(c, g, 4) != 1)
		_exit(1);
	memcpy(&x, g, 4);
	x = htonl(ntohl(x) + 1);
	write_all(c, &x, 4);
	_exit(read_all(c, g, 4) == 0 ? 0 : 2);
}

/* Our listener on @lfd serves one quantum to vmp_connect(@addr). */
static void one_session(int lfd, const char *addr, const char *kind)
{
	struct vmp *v;
	uint64_t e = 0;
	pid_t pid;
	int r, st;

	pid = fork();
	if (!pid)
		serve_one(lfd);
	close(lfd);
	r = vmp_connect(&v, VMP_PROTO_US32, addr, 5000);
	if (!r)
		r = vmp_quantum(v, 77, &e, 5000);
	vmp_close(v, 0, NULL);
	if (r)
		kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	ok(!r && e == 78 && WIFEXITED(st) && !WEXITSTATUS(st),
	   "%s: connect, a quantum, close (the listener saw end of file) %s", kind,
	   r ? vmp_errmsg(v) : "");
	vmp_free(v);
}

static void test_connect(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(in);
	char addr[160];
	struct timespec t0, t1;
	struct vmp *v;
	int lfd, r;

	snprintf(a.sun_path, sizeof(a.sun_path), "/tmp/libvmpace_test.%d", (int)getpid());
	snprintf(addr, sizeof(addr), "unix:%s", a.sun_path);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = vmp_connect(&v, VMP_PROTO_US32, addr, 150);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ok(r == -ENOENT && (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 150,
	   "connect to a socket nobody listens on: retried for the timeout, then -ENOENT (%s)",
	   vmp_errmsg(v));
	vmp_free(v);

	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1))
		return fatal("unix listener");
	one_session(lfd, addr, "unix");
	unlink(a.sun_path);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&in, sizeof(in)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&in, &len))
		return fatal("tcp listener");
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%d", ntohs(in.sin_port));
	one_session(lfd, addr, "tcp");
}

int main(int argc, char **argv)
{
	ssize_t n;

	if (argc == 4 && !strcmp(argv[1], "peer"))
		return peer(argv[2], atoi(argv[3]));
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 2;
	self[n] = '\0';
	ok(!strcmp(vmp_exit_text(8), "the VMM exited") &&
	   !strcmp(vmp_exit_text(99), "not an exit status of vmpace"),
	   "vmp_exit_text names vmpace's exit codes");
	test_echo();
	test_ns64_bytewise();
	test_stdout(9);
	test_stdout(0);
	test_dead_peers();
	test_bad_reports();
	test_framed();
	test_frames();
	test_serial();
	test_event_queue_limit();
	test_send_timeout();
	test_timeouts_and_signals();
	test_bad_arguments();
	test_connect();
	printf("1..%d\n", nr);
	return failed ? 1 : 0;
}
