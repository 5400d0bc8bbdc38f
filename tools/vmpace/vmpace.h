/* SPDX-License-Identifier: GPL-2.0 */
#ifndef VMPACE_H
#define VMPACE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

#define VMPACE_VERSION "0.1"

/* Exit codes, documented in vmpace(1). */
enum {
	VP_EXIT_OK		= 0,	/* the simulator ended the session */
	VP_EXIT_ERROR		= 1,	/* other system error */
	VP_EXIT_USAGE		= 2,	/* bad command line */
	VP_EXIT_NO_PROCESS	= 3,	/* no such process */
	VP_EXIT_NOT_KVM		= 4,	/* the process has no KVM vCPUs */
	VP_EXIT_PERM		= 5,	/* not allowed to borrow its fds */
	VP_EXIT_NO_PACING	= 6,	/* the kernel has no KVM_CAP_PACE */
	VP_EXIT_PROTOCOL	= 7,	/* the simulator broke the protocol */
	VP_EXIT_VMM_DIED	= 8,	/* the VMM exited during the session */
	VP_EXIT_SIGNAL		= 9,	/* SIGINT/SIGTERM: guest released */
	VP_EXIT_BUSY		= 10,	/* another controller paces the VM */
};

/* Prints "vmpace: <message>" to stderr. */
void vp_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int vp_verbose;
void vp_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct vp_vm {
	pid_t pid;
	int pidfd;
	int nr_vcpus;
	int *vcpu_fd;		/* borrowed, sorted by vCPU id */
	int *vcpu_id;
	uint32_t tsc_khz;
	char comm[32];
};

/* Returns a VP_EXIT_* code; 0 on success, with the reason printed. */
int vp_attach(pid_t pid, struct vp_vm *vm);
/* Number of KVM vCPU fds the process has open, or -errno. */
int vp_count_vcpus(pid_t pid);
void vp_detach(struct vp_vm *vm);
/* /proc/PID/comm, "" if the process is gone. */
void vp_read_comm(pid_t pid, char *comm, size_t len);

/* Pacing ioctls on all vCPUs. */
int vp_set_deadline(struct vp_vm *vm, int i, uint64_t deadline);
int vp_disarm_all(struct vp_vm *vm);

enum vp_on_close { VP_CLOSE_TERMINATE, VP_CLOSE_RELEASE };

struct vp_opts {
	pid_t pid;
	enum vp_proto proto;
	enum vp_on_close on_close;
	int kill_timeout_ms;
	int sync_fd;			/* -1 until a transport set it */
	const char *sync_unix;
	const char *sync_tcp;
	bool listen;
	const char *trace;
};

/* Connects the transport named in @o; returns a fd or -VP_EXIT_*. */
int vp_transport_open(struct vp_opts *o);

/* Attach to o->pid and serve the protocol on o->sync_fd; VP_EXIT_*. */
int vp_session(struct vp_opts *o, struct vp_vm *vm);

int vp_cmd_run(struct vp_opts *o, char **argv);

/* Monitoring over the kernel's kvm_pace generic netlink family. */
int vp_cmd_status(int argc, char **argv);
int vp_cmd_monitor(int argc, char **argv);

#endif
