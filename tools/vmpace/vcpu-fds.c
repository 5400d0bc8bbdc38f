// SPDX-License-Identifier: GPL-2.0
/*
 * A VMM's KVM vCPU fds: /proc/PID/fd links named "anon_inode:kvm-vcpu:ID",
 * borrowed with pidfd_getfd(), which needs ptrace-attach rights on the VMM.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vcpu-fds.h"

#define VCPU_LINK "anon_inode:kvm-vcpu:"

int vp_for_each_vcpu_fd(pid_t pid, int (*fn)(void *arg, int fd, int id), void *arg)
{
	char path[300], link[128];
	struct dirent *de;
	int n = 0, r = 0;
	ssize_t len;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", (int)pid, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len < 0)
			continue;
		link[len] = '\0';
		if (strncmp(link, VCPU_LINK, strlen(VCPU_LINK)))
			continue;
		n++;
		if (fn) {
			r = fn(arg, atoi(de->d_name), atoi(link + strlen(VCPU_LINK)));
			if (r)
				break;
		}
	}
	closedir(dir);
	return r ? r : n;
}

struct borrow {
	int pidfd, *fds, *ids, n, max;
	const int *skip;
	int nskip;
};

static int borrow_one(void *arg, int fd, int id)
{
	struct borrow *b = arg;
	int nfd, i;

	for (i = 0; i < b->nskip; i++)
		if (b->skip[i] == id)
			return 0;
	if (b->n == b->max)
		return -ENOSPC;
	nfd = syscall(SYS_pidfd_getfd, b->pidfd, fd, 0);
	if (nfd < 0)
		return -errno;
	/* keep sorted by vCPU id */
	for (i = b->n; i > 0 && b->ids[i - 1] > id; i--) {
		b->ids[i] = b->ids[i - 1];
		b->fds[i] = b->fds[i - 1];
	}
	b->ids[i] = id;
	b->fds[i] = nfd;
	b->n++;
	return 0;
}

int vp_borrow_vcpu_fds(pid_t pid, int pidfd, int *fds, int *ids, int max)
{
	return vp_borrow_vcpu_fds_except(pid, pidfd, fds, ids, max, NULL, 0);
}

int vp_borrow_vcpu_fds_except(pid_t pid, int pidfd, int *fds, int *ids, int max,
			      const int *skip, int nskip)
{
	struct borrow b = { .pidfd = pidfd, .fds = fds, .ids = ids, .max = max,
			    .skip = skip, .nskip = nskip };
	int r, i;

	r = vp_for_each_vcpu_fd(pid, borrow_one, &b);
	if (r >= 0)
		return b.n;
	for (i = 0; i < b.n; i++)
		close(b.fds[i]);
	return r;
}
