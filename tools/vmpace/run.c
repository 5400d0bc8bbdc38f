// SPDX-License-Identifier: GPL-2.0
/*
 * vmpace run: start the VMM, wait for its vCPUs to exist, then pace it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmpace.h"

/* vCPUs QEMU will create: the number in -smp [cpus=]N, else 1. */
static int expected_vcpus(char **argv)
{
	const char *s, *p;
	int i;

	for (i = 0; argv[i]; i++) {
		if (strcmp(argv[i], "-smp") && strcmp(argv[i], "--smp"))
			continue;
		if (!argv[i + 1])
			break;
		s = argv[i + 1];
		p = strstr(s, "cpus=");
		if (p && (p == s || p[-1] == ','))
			return atoi(p + 5) > 0 ? atoi(p + 5) : 1;
		return atoi(s) > 0 ? atoi(s) : 1;
	}
	return 1;
}

int vp_cmd_run(struct vp_opts *o, char **argv)
{
	struct timespec tick = { 0, 10 * 1000000L };
	int want = expected_vcpus(argv), n = 0, r, status, fd, waited = 0;
	struct vp_vm vm;
	pid_t pid;

	fd = vp_transport_open(o);
	if (fd < 0)
		return -fd;
	o->sync_fd = fd;
	/* the simulator's socket is vmpace's, not the VMM's */
	fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);

	pid = fork();
	if (pid < 0) {
		vp_err("fork: %s", strerror(errno));
		return VP_EXIT_ERROR;
	}
	if (!pid) {
		execvp(argv[0], argv);
		vp_err("cannot run %s: %s", argv[0], strerror(errno));
		_exit(127);
	}

	/* QEMU creates its vCPUs before it runs the guest. */
	for (;;) {
		n = vp_count_vcpus(pid);
		if (n >= want)
			break;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			vp_err("%s exited before creating its vCPUs", argv[0]);
			return VP_EXIT_VMM_DIED;
		}
		if (waited++ > 60 * 100) {
			vp_err("%s created %d of %d vCPUs in 60 s", argv[0], n < 0 ? 0 : n, want);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return VP_EXIT_NOT_KVM;
		}
		nanosleep(&tick, NULL);
	}

	o->pid = pid;
	r = vp_attach(pid, &vm);
	if (!r)
		r = vp_session(o, &vm);
	vp_detach(&vm);
	if (o->on_close == VP_CLOSE_RELEASE)
		return r;	/* leave the VMM running */
	/* We started it: do not leave it behind on errors either. */
	if (waitpid(pid, &status, WNOHANG) == 0) {
		if (r != VP_EXIT_OK)
			kill(pid, SIGTERM);
		waitpid(pid, &status, 0);
	}
	return r;
}
