/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A minimal QMP client for the QEMU that "vmpace run" starts: one monitor on
 * a socketpair (-chardev socket,fd=N -mon mode=control), used to start the
 * guest after it is armed, to tell why a quantum does not complete and to
 * know that QEMU took what vmpace handed over; or, after "vmpace --pid",
 * the monitor at --qmp PATH, for the last two.
 */
#ifndef VMPACE_QMP_H
#define VMPACE_QMP_H

#include <stdbool.h>
#include <stddef.h>

struct vp_qmp {
	int fd;
	int pidfd;		/* the VMM, to notice it exit while waiting */
	int sigfd;		/* if >= 0: a signal ends a wait (-EINTR) */
	char buf[16384];
	size_t len;
	bool skip_line;		/* the rest of an overlong line is dropped */
	unsigned int owed;	/* replies to commands given up on: skipped */
	bool running;		/* from query-status, then STOP/RESUME events */
	char status[32];	/* its "status", or the last event's name */
};

/*
 * Reads the greeting and negotiates capabilities, then queries the status;
 * returns 0 or -errno (-ESRCH if the VMM exited, -EINTR on a signal from
 * @sigfd, -EPROTO on an unexpected answer, -ETIMEDOUT), with the reason
 * printed.  Each answer is waited for up to @timeout_ms; < 0: as long as
 * QEMU takes to set its machine up (a large preallocated memory can take
 * minutes), saying so every 30 s.
 */
int vp_qmp_open(struct vp_qmp *q, int fd, int pidfd, int sigfd, int timeout_ms);

/*
 * Sends @cmd (a JSON object) and waits up to @timeout_ms (< 0: no limit,
 * with a note every 30 s) for its reply,
 * which is copied to @reply (NUL-terminated, truncated to @len); events
 * read meanwhile are processed.  Returns 0, -EREMOTEIO if QEMU answered
 * with an error, or -errno.  The reply of a command given up on (timeout,
 * signal) is skipped when it comes: replies come in order.
 */
int vp_qmp_command(struct vp_qmp *q, const char *cmd, char *reply, size_t len,
		   int timeout_ms);

/*
 * query-status: q->running and q->status as QEMU says now; 0 or -errno
 * (-EPROTO on an answer without a status).
 */
int vp_qmp_query_status(struct vp_qmp *q, int timeout_ms);

/* Processes what QEMU sent without blocking; 0, or -EPIPE once it closed. */
int vp_qmp_read_events(struct vp_qmp *q);

void vp_qmp_close(struct vp_qmp *q);

#endif
