// SPDX-License-Identifier: GPL-2.0
/*
 * QMP, just enough of it: QEMU sends one JSON object per line (greeting,
 * replies with "return" or "error", and events with "event"), and vmpace
 * issues one command at a time, so the next reply is the answer to it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "qmp.h"
#include "vmpace.h"

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

static void on_event(struct vp_qmp *q, const char *line)
{
	const char *e = strstr(line, "\"event\": \"");
	char name[32];

	if (!e || sscanf(e, "\"event\": \"%31[A-Z_]\"", name) != 1)
		return;
	if (!strcmp(name, "STOP"))
		q->running = false;
	else if (!strcmp(name, "RESUME"))
		q->running = true;
	else
		return;
	snprintf(q->status, sizeof(q->status), "%s", q->running ? "running" : "stopped");
	vp_info("QEMU: %s", name);
}

/*
 * QEMU writes each JSON object on one line, its first member first: a reply
 * starts with "return" or "error", the greeting with "QMP", an event with
 * "timestamp" (then "event").
 */
static bool starts_with_member(const char *line, const char *name)
{
	size_t l = strlen(name);

	line += strspn(line, " \t{");
	return line[0] == '"' && !strncmp(line + 1, name, l) && line[l + 1] == '"';
}

/*
 * Reads what is available; calls on_event() for events and returns 1 with
 * the first reply (or greeting) line in @reply, 0 if none yet, -EPIPE at
 * EOF, -errno.
 */
static int read_lines(struct vp_qmp *q, char *reply, size_t len)
{
	ssize_t n;
	char *nl;

	for (;;) {
		while ((nl = memchr(q->buf, '\n', q->len))) {
			size_t l = nl + 1 - q->buf;
			bool is_reply;

			*nl = '\0';
			is_reply = !q->skip_line && (starts_with_member(q->buf, "return") ||
						     starts_with_member(q->buf, "error") ||
						     starts_with_member(q->buf, "QMP"));
			if (is_reply && q->owed && !starts_with_member(q->buf, "QMP")) {
				/* the late reply to a command given up on */
				q->owed--;
				is_reply = false;
				q->skip_line = true;
			}
			if (is_reply && reply)
				snprintf(reply, len, "%s", q->buf);
			else if (!q->skip_line)
				on_event(q, q->buf);
			q->skip_line = false;
			q->len -= l;
			memmove(q->buf, q->buf + l, q->len);
			if (is_reply && reply)
				return 1;
		}
		if (q->len == sizeof(q->buf)) {
			/* an overlong line (no reply vmpace asks for is): drop it */
			q->len = 0;
			q->skip_line = true;
		}
		n = recv(q->fd, q->buf + q->len, sizeof(q->buf) - q->len, MSG_DONTWAIT);
		if (n == 0)
			return -EPIPE;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		q->len += n;
	}
}

#define QMP_NOTE_MS	30000

/*
 * Waits for the next reply line; -ETIMEDOUT, -ESRCH (VMM gone), -EPIPE,
 * -EINTR (a signal on q->sigfd, left pending for whoever reads it next).
 */
static int wait_reply(struct vp_qmp *q, char *reply, size_t len, int timeout_ms)
{
	long long start = now_ms(), end = start + timeout_ms, next_note = start + QMP_NOTE_MS;
	struct pollfd p[3] = { { .fd = q->fd, .events = POLLIN },
			       { .fd = q->pidfd, .events = POLLIN },
			       { .fd = q->sigfd, .events = POLLIN } };
	long long now, wait;
	int r;

	for (;;) {
		r = read_lines(q, reply, len);
		if (r)
			return r < 0 ? r : 0;
		now = now_ms();
		if (timeout_ms >= 0 && now >= end)
			return -ETIMEDOUT;
		if (timeout_ms < 0 && now >= next_note) {
			vp_err("QEMU's monitor has not answered for %lld s (QEMU still setting "
			       "its machine up?): waiting", (now - start) / 1000);
			next_note = now + QMP_NOTE_MS;
		}
		wait = (timeout_ms >= 0 ? end : next_note) - now;
		if (wait < 0)
			wait = 0;
		r = poll(p, 3, (int)wait);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && (p[1].revents & POLLIN))
			return -ESRCH;
		if (r > 0 && (p[2].revents & POLLIN))
			return -EINTR;
	}
}

int vp_qmp_command(struct vp_qmp *q, const char *cmd, char *reply, size_t len,
		   int timeout_ms)
{
	char buf[4096];
	size_t off = 0, n = strlen(cmd);
	ssize_t w;
	int r;

	while (off < n) {
		w = send(q->fd, cmd + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		off += w;
	}
	if (!reply) {
		reply = buf;
		len = sizeof(buf);
	}
	r = wait_reply(q, reply, len, timeout_ms);
	if (r == -ETIMEDOUT || r == -EINTR)
		q->owed++;
	if (r)
		return r;
	return strstr(reply, "\"return\"") ? 0 : -EREMOTEIO;
}

int vp_qmp_query_status(struct vp_qmp *q, int timeout_ms)
{
	char reply[4096];
	const char *s;
	int r;

	r = vp_qmp_command(q, "{\"execute\":\"query-status\"}\n", reply, sizeof(reply),
			   timeout_ms);
	if (r)
		return r;
	s = strstr(reply, "\"status\"");
	q->running = !!strstr(reply, "\"running\": true");
	if (!s || sscanf(s, "\"status\": \"%31[a-z-]\"", q->status) != 1)
		return -EPROTO;
	return 0;
}

int vp_qmp_open(struct vp_qmp *q, int fd, int pidfd, int sigfd, int timeout_ms)
{
	char reply[4096];
	int r;

	memset(q, 0, sizeof(*q));
	q->fd = fd;
	q->pidfd = pidfd;
	q->sigfd = sigfd;
	snprintf(q->status, sizeof(q->status), "unknown");
	r = wait_reply(q, reply, sizeof(reply), timeout_ms);
	if (!r && !strstr(reply, "\"QMP\""))
		r = -EPROTO;
	if (!r)
		r = vp_qmp_command(q, "{\"execute\":\"qmp_capabilities\"}\n", reply,
				   sizeof(reply), timeout_ms);
	if (!r)
		r = vp_qmp_query_status(q, timeout_ms);
	switch (r) {
	case 0:
		break;
	case -ESRCH:
		vp_err("QEMU exited before its monitor answered");
		break;
	case -EINTR:
		vp_err("a signal came before QEMU's monitor answered");
		break;
	case -ETIMEDOUT:
		vp_err("QEMU's monitor did not answer within %d ms (does another client hold "
		       "it? QEMU serves one at a time; or is QEMU still setting its machine "
		       "up?)", timeout_ms);
		break;
	default:
		vp_err("QEMU's monitor: %s", r == -EPROTO || r == -EREMOTEIO ?
		       "unexpected answer" : strerror(-r));
	}
	return r;
}

int vp_qmp_read_events(struct vp_qmp *q)
{
	int r = read_lines(q, NULL, 0);

	return r < 0 ? r : 0;
}

void vp_qmp_close(struct vp_qmp *q)
{
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
}
