// SPDX-License-Identifier: GPL-2.0
/*
 * vmpace attach: borrow the vCPU fds of a running VMM's VM with
 * pidfd_getfd(), which needs ptrace-attach rights on the VMM, then pace it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "qmp.h"
#include "vcpu-fds.h"
#include "vmpace.h"

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

static int perm_error(struct vp_vm *vm)
{
	vp_err("not permitted to borrow the vCPU fds of process %d (%s): vmpace needs "
	       "ptrace access to the VMM (same user and kernel.yama.ptrace_scope, or "
	       "CAP_SYS_PTRACE)", (int)vm->pid, vm->comm);
	return VP_EXIT_PERM;
}

/*
 * Every vCPU fd of the process but those @vm has, with the VM each belongs
 * to; the caller frees *@fds and *@ids and closes the fds.  Returns the
 * count or -errno (with nothing left open).
 */
static int borrow_all(struct vp_vm *vm, int **fds, int **ids, uint32_t **vms)
{
	struct kvm_pace_state st;
	int n, i, r;

	*fds = *ids = NULL;
	*vms = NULL;
	n = vp_for_each_vcpu_fd(vm->pid, NULL, NULL);
	if (n <= 0)
		return n;
	n += 64;	/* room for vCPUs created meanwhile */
	*fds = calloc(n, sizeof(int));
	*ids = calloc(n, sizeof(int));
	*vms = calloc(n, sizeof(uint32_t));
	if (!*fds || !*ids || !*vms)
		return -ENOMEM;
	n = vp_borrow_vcpu_fds_except(vm->pid, vm->pidfd, *fds, *ids, n, vm->vcpu_id,
				      vm->nr_vcpus);
	for (i = 0; i < n; i++) {
		if (ioctl((*fds)[i], KVM_GET_PACE_STATE, &st)) {
			r = -errno;
			for (i = 0; i < n; i++)
				close((*fds)[i]);
			return r;
		}
		(*vms)[i] = st.vm_id;
		if (!vm->tsc_khz)
			vm->tsc_khz = st.tsc_khz;
	}
	return n;
}

/* Keeps the fds of @vm_id's vCPUs that @vm does not have yet; count added. */
static int adopt(struct vp_vm *vm, int n, int *fds, int *ids, uint32_t *vms)
{
	int i, j, k, added = 0;
	int *nf, *ni;

	nf = realloc(vm->vcpu_fd, (vm->nr_vcpus + n) * sizeof(int));
	if (nf)
		vm->vcpu_fd = nf;
	ni = realloc(vm->vcpu_id, (vm->nr_vcpus + n) * sizeof(int));
	if (ni)
		vm->vcpu_id = ni;
	for (i = 0; i < n; i++) {
		for (j = 0; j < vm->nr_vcpus && vm->vcpu_id[j] != ids[i]; j++)
			;
		if (!nf || !ni || vms[i] != vm->vm_id || j < vm->nr_vcpus) {
			close(fds[i]);
			continue;
		}
		/* keep sorted by vCPU id */
		for (k = vm->nr_vcpus; k > 0 && vm->vcpu_id[k - 1] > ids[i]; k--) {
			vm->vcpu_id[k] = vm->vcpu_id[k - 1];
			vm->vcpu_fd[k] = vm->vcpu_fd[k - 1];
		}
		vm->vcpu_id[k] = ids[i];
		vm->vcpu_fd[k] = fds[i];
		vm->nr_vcpus++;
		added++;
	}
	return nf && ni ? added : -ENOMEM;
}

int vp_attach_new_vcpus(struct vp_vm *vm)
{
	int *fds, *ids, n, r;
	uint32_t *vms;

	n = borrow_all(vm, &fds, &ids, &vms);
	r = n < 0 ? n : adopt(vm, n, fds, ids, vms);
	free(fds);
	free(ids);
	free(vms);
	return r;
}

/* The distinct VM ids among @n vCPUs, into @out; how many. */
static int distinct_vms(int n, const uint32_t *vms, uint32_t *out)
{
	int i, j, k = 0;

	for (i = 0; i < n; i++) {
		for (j = 0; j < k && out[j] != vms[i]; j++)
			;
		if (j == k)
			out[k++] = vms[i];
	}
	return k;
}

int vp_attach(pid_t pid, uint32_t vm_id, struct vp_vm *vm)
{
	int *fds = NULL, *ids = NULL, n, i, k, r = VP_EXIT_ERROR;
	uint32_t *vms = NULL, *distinct = NULL;
	char list[256] = "";

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

	n = borrow_all(vm, &fds, &ids, &vms);
	if (n == -EACCES || n == -EPERM) {
		r = perm_error(vm);
		goto out;
	}
	if (n == -ENOTTY || n == -EINVAL || n == -EIO) {
		/* Without pacing the ioctl falls through to KVM's mm check. */
		vp_err("the kernel's KVM has no pacing support (KVM_CAP_PACE): load the "
		       "vmpace kvm modules");
		r = VP_EXIT_NO_PACING;
		goto out;
	}
	if (n < 0) {
		vp_err("cannot borrow the vCPU fds of process %d: %s", (int)pid, strerror(-n));
		r = n == -ENOENT || n == -ESRCH ? VP_EXIT_NO_PROCESS : VP_EXIT_ERROR;
		goto out;
	}
	if (n == 0) {
		vp_err("process %d (%s) has no KVM vCPUs: not a KVM virtual machine",
		       (int)pid, vm->comm);
		r = VP_EXIT_NOT_KVM;
		goto out;
	}

	distinct = calloc(n, sizeof(*distinct));
	if (!distinct)
		goto out;
	k = distinct_vms(n, vms, distinct);
	for (i = 0; i < k; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%u",
			 i ? ", " : "", distinct[i]);
	if (vm_id) {
		for (i = 0; i < k && distinct[i] != vm_id; i++)
			;
		if (i == k) {
			vp_err("process %d (%s) has no VM %u (its VMs: %s)", (int)pid,
			       vm->comm, vm_id, list);
			r = VP_EXIT_USAGE;
			goto out;
		}
		vm->vm_id = vm_id;
	} else if (k > 1) {
		vp_err("process %d (%s) runs %d VMs (%s): choose one with --vm", (int)pid,
		       vm->comm, k, list);
		r = VP_EXIT_USAGE;
		goto out;
	} else {
		vm->vm_id = distinct[0];
	}
	n = adopt(vm, n, fds, ids, vms);
	free(fds);
	fds = NULL;
	if (n < 0) {
		vp_err("out of memory");
		goto out;
	}
	if (!vm->tsc_khz) {
		vp_err("KVM reports no guest TSC frequency for process %d", (int)pid);
		goto out;
	}
	vp_info("attached to %d (%s), VM %u: %d vCPUs, guest TSC %u kHz", (int)pid,
		vm->comm, vm->vm_id, vm->nr_vcpus, vm->tsc_khz);
	r = VP_EXIT_OK;
out:
	if (fds)
		for (i = 0; i < n; i++)
			close(fds[i]);
	free(fds);
	free(ids);
	free(vms);
	free(distinct);
	return r;
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

int vp_cmd_attach(int argc, char **argv)
{
	struct vp_qmp qmp = { .fd = -1 };
	struct vp_opts o;
	struct vp_vm vm;
	int r, fd, i;

	r = vp_parse_pace_opts(argc, argv, &o, true);
	if (r)
		return r;
	if (optind != argc) {
		vp_err("unexpected argument '%s'", argv[optind]);
		return VP_EXIT_USAGE;
	}
	r = vp_attach(o.pid, o.vm_id, &vm);
	if (r) {
		vp_detach(&vm);
		return r;
	}
	r = vp_attach_ports(&o, &vm, &qmp);
	if (r)
		goto out;
	fd = vp_transport_open(&o);
	if (fd < 0) {
		r = -fd;
		goto out;
	}
	o.sync_fd = fd;
	/* what QEMU sent while nobody paced it has no guest time of the session */
	vp_drain_ports(&o);
	/*
	 * --start: a QEMU started with -S that has not run yet is started once
	 * every vCPU is armed, so that the guest is paced from its first
	 * instruction, as with "vmpace run".
	 */
	r = vp_session(&o, &vm, qmp.fd >= 0 ? &qmp : NULL, o.start ? VP_SESSION_START : 0);
	/* the session closed the ports */
	o.nr_net = o.nr_serial = 0;
out:
	for (i = 0; i < o.nr_net; i++)
		if (o.net_fd[i] >= 0)
			close(o.net_fd[i]);
	for (i = 0; i < o.nr_serial; i++) {
		if (o.serial_fd[i] >= 0)
			close(o.serial_fd[i]);
		if (o.serial_qemu_fd[i] >= 0)
			close(o.serial_qemu_fd[i]);
	}
	vp_release_ports(&o);
	vp_qmp_close(&qmp);
	vp_detach(&vm);
	return r;
}
