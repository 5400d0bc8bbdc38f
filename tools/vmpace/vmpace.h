/* SPDX-License-Identifier: GPL-2.0 */
#ifndef VMPACE_H
#define VMPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

#define VMPACE_VERSION "0.2"

/* Prints "vmpace: <message>" to stderr. */
void vp_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int vp_verbose;
void vp_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct vp_vm {
	pid_t pid;
	int pidfd;
	uint32_t vm_id;		/* KVM_PACE_A_VM_ID, as vmpace status shows it */
	int nr_vcpus;
	int *vcpu_fd;		/* borrowed, sorted by vCPU id */
	int *vcpu_id;
	uint32_t tsc_khz;
	char comm[32];
};

/*
 * Borrows the vCPUs of process @pid's VM (@vm_id, or its only VM if 0);
 * returns a VP_EXIT_* code, with the reason printed.
 */
int vp_attach(pid_t pid, uint32_t vm_id, struct vp_vm *vm);
/*
 * Borrows the vCPUs of the VM that appeared since vp_attach(); returns how
 * many, or -errno.
 */
int vp_attach_new_vcpus(struct vp_vm *vm);
void vp_detach(struct vp_vm *vm);
/* /proc/PID/comm, "" if the process is gone. */
void vp_read_comm(pid_t pid, char *comm, size_t len);

/* Pacing ioctls on one and on all vCPUs; 0 or -errno. */
int vp_set_deadline(struct vp_vm *vm, int i, uint64_t deadline);
int vp_disarm_all(struct vp_vm *vm);

enum vp_on_close { VP_CLOSE_TERMINATE, VP_CLOSE_RELEASE };
#define VP_MAX_NET	8
#define VP_MAX_SERIAL	4
enum vp_zero_grant { VP_ZERO_END, VP_ZERO_STEP };

struct vp_opts {
	pid_t pid;
	uint32_t vm_id;			/* --vm, 0 for the only one */
	enum vp_proto proto;
	enum vp_on_close on_close;
	enum vp_zero_grant zero_grant;
	int kill_timeout_ms;
	int stall_warn_s;		/* 0: never */
	int peer_timeout_s;		/* TCP only */
	int sync_fd;			/* -1 until a transport set it */
	const char *sync_unix;
	const char *sync_tcp;
	bool listen;
	const char *trace;
	/* framed protocol: network ports, vmpace run --net ID */
	int nr_net;
	const char *net_id[VP_MAX_NET];
	int net_fd[VP_MAX_NET];		/* vmpace's ends, once QEMU is started */
	/* serial ports, vmpace run --serial ID: stream socketpairs */
	int nr_serial;
	const char *serial_id[VP_MAX_SERIAL];
	int serial_fd[VP_MAX_SERIAL];	/* vmpace's ends */
	int serial_qemu_fd[VP_MAX_SERIAL];	/* QEMU's ends, kept: its unread bytes */
	int io_timeout_ms;		/* for QEMU to take a frame */
	/* vmpace --pid: QEMU's ports found on its command line (ports.c) */
	const char *qmp_path;		/* --qmp: a monitor of QEMU's for vmpace */
	bool start;			/* --start: cont a QEMU that has not run yet */
	char *net_bound[VP_MAX_NET];	/* the socket path vmpace bound, unlinked at the end */
	dev_t net_bound_dev[VP_MAX_NET];	/* and its file, if still there */
	ino_t net_bound_ino[VP_MAX_NET];
};

/*
 * QEMU's command line (qemu-args.c).  vp_qemu_has_arg: whether -A (or --A)
 * is on it.  vp_qemu_uses_id: whether an option names KEY=ID among its
 * commas (netdev=n0 in -device virtio-net-pci,netdev=n0), or it has
 * "chardev:ID" for KEY chardev.  vp_qemu_find: the option string of the
 * -FLAG (e.g. "-netdev") whose id is ID, or NULL.  vp_qemu_opt: KEY's value
 * in option string OPTS into VAL (",," read as a comma; "type" is also a
 * first element without '=', a bare KEY is "on"); false if absent or
 * longer than LEN.  vp_qemu_on: whether a value is QEMU's "on".
 * vp_qemu_json: the option string a JSON object argument stands for
 * (malloc'd: nested keys dotted, true/false as on/off, commas in values
 * doubled), NULL if it is not one.  vp_qemu_flatten: a copy of ARGV (one
 * allocation: free() it) with every option argument that is a JSON object
 * replaced by its option string; NULL if out of memory.
 * vp_qemu_cmdline: a running process's argv (one allocation: free() it),
 * JSON options flattened, NULL with errno set.
 */
bool vp_qemu_has_arg(char **argv, const char *a);
bool vp_qemu_uses_id(char **argv, const char *key, const char *id);
const char *vp_qemu_find(char **argv, const char *flag, const char *id);
bool vp_qemu_opt(const char *opts, const char *key, char *val, size_t len);
bool vp_qemu_on(const char *v);
char *vp_qemu_json(const char *arg);
char **vp_qemu_flatten(char **argv);
char **vp_qemu_cmdline(pid_t pid);

struct vp_qmp;

/*
 * vmpace --pid with --net/--serial (ports.c): opens each port on the socket
 * QEMU's command line gave it, and QEMU's monitor at --qmp into @qmp.
 * Returns a VP_EXIT_* code, with the reason printed.  vp_release_ports
 * removes the socket files vmpace bound (if they are still those).
 */
int vp_attach_ports(struct vp_opts *o, const struct vp_vm *vm, struct vp_qmp *qmp);
void vp_release_ports(struct vp_opts *o);
/* Discards what QEMU sent on the ports so far (counted, vmpace -v). */
void vp_drain_ports(struct vp_opts *o);

/* Closes every fd above 2 but @keep (-1: none). */
void vp_close_inherited_fds(int keep);

/* Connects the transport named in @o; returns a fd or -VP_EXIT_*. */
int vp_transport_open(struct vp_opts *o);


/*
 * Freeze the VM of @vm and serve the protocol on o->sync_fd until the
 * session ends; then end or release the VMM as o->on_close says.  @qmp is
 * a monitor of QEMU's for vmpace (NULL if none).  @flags:
 * VP_SESSION_OWNS_VMM, vmpace started the VMM (vmpace run: a signal or a
 * session that cannot start ends it too); VP_SESSION_START, vmpace lets
 * the guest run ("cont") once every vCPU is armed, if QEMU's status is
 * still "prelaunch" then.  Returns a VP_EXIT_* code.
 */
#define VP_SESSION_OWNS_VMM	0x1
#define VP_SESSION_START	0x2
int vp_session(struct vp_opts *o, struct vp_vm *vm, struct vp_qmp *qmp, unsigned int flags);

/* The commands. */
int vp_cmd_attach(int argc, char **argv);
int vp_cmd_run(int argc, char **argv);
int vp_cmd_status(int argc, char **argv);
int vp_cmd_monitor(int argc, char **argv);
/* vmpace-qemu: the command line of a QEMU with -external_sim. */
int vp_cmd_qemu(int argc, char **argv);

/* For the commands that pace: parse the options, 0 or VP_EXIT_USAGE. */
int vp_parse_pace_opts(int argc, char **argv, struct vp_opts *o, bool want_pid);
/* Starts @argv (a QEMU command line) frozen and paces it. */
int vp_run_qemu(struct vp_opts *o, char **argv);

#endif
