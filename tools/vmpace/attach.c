// SPDX-License-Identifier: GPL-2.0
/*
 * Find a VMM's KVM vCPU file descriptors under /proc and borrow them with
 * pidfd_getfd(), which needs ptrace-attach rights on the VMM.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "vmpace.h"

#define VCPU_LINK "anon_inode:kvm-vcpu:"

static int for_each_vcpu_fd(pid_t pid, int (*fn)(void *, int fd, int id), void *arg)
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

int vp_count_vcpus(pid_t pid)
{
	return for_each_vcpu_fd(pid, NULL, NULL);
}

struct borrow {
	struct vp_vm *vm;
	int cap;
};

static int borrow_one(void *arg, int fd, int id)
{
	struct borrow *b = arg;
	struct vp_vm *vm = b->vm;
	int nfd, i;

	if (vm->nr_vcpus == b->cap)
		return -ENOSPC;
	nfd = syscall(SYS_pidfd_getfd, vm->pidfd, fd, 0);
	if (nfd < 0)
		return -errno;
	/* keep sorted by vCPU id */
	for (i = vm->nr_vcpus; i > 0 && vm->vcpu_id[i - 1] > id; i--) {
		vm->vcpu_id[i] = vm->vcpu_id[i - 1];
		vm->vcpu_fd[i] = vm->vcpu_fd[i - 1];
	}
	vm->vcpu_id[i] = id;
	vm->vcpu_fd[i] = nfd;
	vm->nr_vcpus++;
	return 0;
}

void vp_read_comm(pid_t pid, char *comm, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	comm[0] = '\0';
	f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(comm, (int)len, f))
		comm[strcspn(comm, "\n")] = '\0';
	fclose(f);
}

int vp_attach(pid_t pid, struct vp_vm *vm)
{
	struct kvm_pace_state st;
	struct borrow b = { .vm = vm };
	int n, r;

	memset(vm, 0, sizeof(*vm));
	vm->pid = pid;
	vm->pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (vm->pidfd < 0) {
		if (errno == ESRCH) {
			vp_err("no process with pid %d", (int)pid);
			return VP_EXIT_NO_PROCESS;
		}
		vp_err("pidfd_open(%d): %s", (int)pid, strerror(errno));
		return VP_EXIT_ERROR;
	}
	vp_read_comm(pid, vm->comm, sizeof(vm->comm));

	n = vp_count_vcpus(pid);
	if (n == -EACCES || n == -EPERM) {
		vp_err("not permitted to inspect process %d (%s): vmpace needs ptrace "
		       "access to the VMM (same user and kernel.yama.ptrace_scope, or "
		       "CAP_SYS_PTRACE)", (int)pid, vm->comm);
		return VP_EXIT_PERM;
	}
	if (n < 0) {
		vp_err("cannot read /proc/%d/fd: %s", (int)pid, strerror(-n));
		return n == -ENOENT ? VP_EXIT_NO_PROCESS : VP_EXIT_ERROR;
	}
	if (n == 0) {
		vp_err("process %d (%s) has no KVM vCPUs: not a KVM virtual machine",
		       (int)pid, vm->comm);
		return VP_EXIT_NOT_KVM;
	}

	b.cap = n;
	vm->vcpu_fd = calloc(n, sizeof(int));
	vm->vcpu_id = calloc(n, sizeof(int));
	if (!vm->vcpu_fd || !vm->vcpu_id) {
		vp_err("out of memory");
		return VP_EXIT_ERROR;
	}
	r = for_each_vcpu_fd(pid, borrow_one, &b);
	if (r == -EPERM || r == -EACCES) {
		vp_err("not permitted to borrow the vCPU fds of process %d (%s): "
		       "pidfd_getfd needs ptrace access to the VMM (same user and "
		       "kernel.yama.ptrace_scope, or CAP_SYS_PTRACE)", (int)pid, vm->comm);
		return VP_EXIT_PERM;
	}
	if (r < 0) {
		vp_err("cannot borrow the vCPU fds of process %d: %s", (int)pid,
		       strerror(-r));
		return r == -ESRCH ? VP_EXIT_NO_PROCESS : VP_EXIT_ERROR;
	}

	if (ioctl(vm->vcpu_fd[0], KVM_GET_PACE_STATE, &st)) {
		/* Without pacing the ioctl falls through to KVM's mm check. */
		if (errno == EIO || errno == ENOTTY || errno == EINVAL) {
			vp_err("the kernel's KVM has no pacing support (KVM_CAP_PACE): "
			       "load the vmpace kvm modules");
			return VP_EXIT_NO_PACING;
		}
		vp_err("KVM_GET_PACE_STATE: %s", strerror(errno));
		return VP_EXIT_ERROR;
	}
	vm->tsc_khz = st.tsc_khz;
	if (!vm->tsc_khz) {
		vp_err("KVM reports no guest TSC frequency for process %d", (int)pid);
		return VP_EXIT_ERROR;
	}
	vp_info("attached to %d (%s): %d vCPUs, guest TSC %u kHz", (int)pid,
		vm->comm, vm->nr_vcpus, vm->tsc_khz);
	return VP_EXIT_OK;
}

int vp_set_deadline(struct vp_vm *vm, int i, uint64_t deadline)
{
	struct kvm_pace_deadline d = { .deadline = deadline };

	return ioctl(vm->vcpu_fd[i], KVM_SET_PACE_DEADLINE, &d) ? -errno : 0;
}

int vp_disarm_all(struct vp_vm *vm)
{
	int i, r, ret = 0;

	for (i = 0; i < vm->nr_vcpus; i++) {
		r = vp_set_deadline(vm, i, 0);
		if (r && !ret)
			ret = r;
	}
	return ret;
}

void vp_detach(struct vp_vm *vm)
{
	int i;

	for (i = 0; i < vm->nr_vcpus; i++)
		close(vm->vcpu_fd[i]);
	free(vm->vcpu_fd);
	free(vm->vcpu_id);
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	vm->nr_vcpus = 0;
	vm->vcpu_fd = vm->vcpu_id = NULL;
	vm->pidfd = -1;
}
