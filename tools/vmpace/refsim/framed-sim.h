/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the framed-protocol examples (netsim, sersim) share: starting
 * "vmpace run --proto framed PORT-OPTION ID -- QEMU ..." through libvmpace,
 * or (--attach) starting QEMU with its port on a socket path and a monitor
 * for vmpace, then "vmpace --pid" on it; booting the guest in long quanta
 * until it says it is ready, and ending on a libvmpace error.  Each example
 * stays one file plus this one.
 */
#ifndef FRAMED_SIM_H
#define FRAMED_SIM_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libvmpace.h"

/* The session's name in messages ("netsim") and the session itself. */
static const char *fs_name;
static struct vmp *fs_vm;

/* --attach: the QEMU the example started, and the directory of its sockets */
static pid_t fs_qemu_pid;
static char fs_dir[] = "/tmp/vmpace-attach-XXXXXX";
static char fs_qmp[64], fs_own_qmp[64], fs_port[2][64];

static void fs_attach_end(void);

static void __attribute__((noreturn)) fs_die(const char *what)
{
	int status;

	fprintf(stderr, "%s: %s: %s\n", fs_name, what, vmp_errmsg(fs_vm));
	vmp_close(fs_vm, 15000, &status);
	fprintf(stderr, "%s: %s\n", fs_name, vmp_errmsg(fs_vm));
	if (fs_qemu_pid)
		fs_attach_end();
	exit(2);
}

/* vmpace's options from @i of @args on: the socket on fd 3, @port_opt @port_id */
static int fs_vmpace_opts(const char **args, int i, const char *port_opt, const char *port_id)
{
	args[i++] = "--sync-fd";
	args[i++] = "3";
	args[i++] = "--proto";
	args[i++] = "framed";
	args[i++] = port_opt;
	args[i++] = port_id;
	return i;
}

/*
 * argv for vmp_spawn(): @vmpace run --sync-fd 3 --proto framed @port_opt
 * @port_id -- the QEMU command line @qemu (NULL-terminated), then @nr_dev
 * more arguments of @dev (the devices on the port); NULL if memory ran out.
 */
static const char **fs_run_argv(const char *vmpace, const char *port_opt, const char *port_id,
				char **qemu, const char *const *dev, int nr_dev)
{
	const char **args;
	int i = 0, n;

	for (n = 0; qemu[n]; n++)
		;
	args = calloc(n + nr_dev + 10, sizeof(*args));
	if (!args)
		return NULL;
	args[i++] = vmpace;
	args[i++] = "run";
	i = fs_vmpace_opts(args, i, port_opt, port_id);
	args[i++] = "--";
	for (n = 0; qemu[n]; n++)
		args[i++] = qemu[n];
	for (n = 0; n < nr_dev; n++)
		args[i++] = dev[n];
	return args;
}

/*
 * Quanta of @q ns through @quantum until *@ready: 0, or 2 (said why, the
 * session closed) if 120 s of guest time pass first.
 */
static int fs_boot(void (*quantum)(uint64_t), uint64_t q, const bool *ready)
{
	const uint64_t limit = 120000000000ull;
	int status;

	while (!*ready) {
		quantum(q);
		if (vmp_now(fs_vm) > limit) {
			fprintf(stderr, "%s: the guest did not come up in %.0f s of simulated "
				"time\n", fs_name, limit / 1e9);
			vmp_close(fs_vm, 15000, &status);
			return 2;
		}
	}
	return 0;
}

/* Whether process @pid has a KVM vCPU yet (its fds). */
static bool fs_has_vcpu(pid_t pid)
{
	char dir[64], target[64];
	struct dirent *de;
	bool found = false;
	ssize_t n;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
		found = n > 0 && (target[n] = '\0', !strncmp(target, "anon_inode:kvm-vcpu", 19));
	}
	closedir(d);
	return found;
}

/*
 * Whether QEMU's monitor at @path greets within @timeout_ms: its main loop
 * runs (the machine is set up).  The connection is closed again.
 */
static bool fs_qmp_greets(const char *path, int timeout_ms)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct pollfd p = { .events = POLLIN };
	char buf[512];
	ssize_t n = 0;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	/* not blocking: a full backlog is "not yet", not a wait */
	p.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (p.fd < 0)
		return false;
	if (!connect(p.fd, (struct sockaddr *)&a, sizeof(a)) && poll(&p, 1, timeout_ms) == 1)
		n = read(p.fd, buf, sizeof(buf) - 1);
	close(p.fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "QMP");
}

/*
 * --attach: starts the QEMU command line @qemu with @nr_dev more arguments
 * of @dev, its port @port_id a socket on a path ("--net": -netdev dgram
 * with Unix paths; "--serial": -chardev socket server) and a monitor for
 * vmpace, as a user's own QEMU would have them, with -S: vmpace starts the
 * guest once it has armed the vCPUs; waits (30 s at most) until
 * it is up (a monitor of the example's own greets: as a management tool
 * knows its QEMU is up before it attaches vmpace); returns the argv for vmp_spawn() of "@vmpace --pid PID
 * --sync-fd 3 --proto framed @port_opt @port_id --qmp PATH --start", or NULL (said
 * why).  fs_attach_end() reaps QEMU.
 */
static const char **fs_attach_argv(const char *vmpace, const char *port_opt, const char *port_id,
				   char **qemu, const char *const *dev, int nr_dev)
{
	static char pid_arg[16], port[256], qmp[96], own_qmp[96];
	const char **q, **args;
	struct timespec pause = { 0, 10000000 }, t0, now;
	bool net = !strcmp(port_opt, "--net");
	int i = 0, n, w, status;

	if (!mkdtemp(fs_dir)) {
		fprintf(stderr, "%s: mkdtemp: %s\n", fs_name, strerror(errno));
		return NULL;
	}
	snprintf(fs_qmp, sizeof(fs_qmp), "%s/qmp", fs_dir);
	snprintf(fs_port[0], sizeof(fs_port[0]), "%s/%s.qemu", fs_dir, port_id);
	snprintf(fs_port[1], sizeof(fs_port[1]), "%s/%s.vmpace", fs_dir, port_id);
	if (net)
		w = snprintf(port, sizeof(port), "dgram,id=%s,local.type=unix,local.path=%s,"
			     "remote.type=unix,remote.path=%s", port_id, fs_port[0], fs_port[1]);
	else
		w = snprintf(port, sizeof(port), "socket,id=%s,path=%s,server=on,wait=off",
			     port_id, fs_port[0]);
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", fs_qmp);
	snprintf(fs_own_qmp, sizeof(fs_own_qmp), "%s/own-qmp", fs_dir);
	snprintf(own_qmp, sizeof(own_qmp), "unix:%s,server=on,wait=off", fs_own_qmp);
	for (n = 0; qemu[n]; n++)
		;
	q = calloc(n + nr_dev + 8, sizeof(*q));
	args = calloc(15, sizeof(*args));
	if (!q || !args || w < 0 || (size_t)w >= sizeof(port))
		return NULL;
	for (n = 0; qemu[n]; n++)
		q[i++] = qemu[n];
	for (n = 0; n < nr_dev; n++)
		q[i++] = dev[n];
	q[i++] = net ? "-netdev" : "-chardev";
	q[i++] = port;
	q[i++] = "-qmp";
	q[i++] = qmp;
	q[i++] = "-qmp";
	q[i++] = own_qmp;
	/* not run yet: vmpace starts it once it is armed (vmpace(1), ATTACHED PORTS) */
	q[i++] = "-S";
	fs_qemu_pid = fork();
	if (fs_qemu_pid < 0) {
		fprintf(stderr, "%s: fork: %s\n", fs_name, strerror(errno));
		return NULL;
	}
	if (!fs_qemu_pid) {
		execvp(q[0], (char *const *)q);
		fprintf(stderr, "%s: cannot run %s: %s\n", fs_name, q[0], strerror(errno));
		_exit(127);
	}
	free(q);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* a monitor's answer can take a second in an emulated test VM */
	while (!fs_has_vcpu(fs_qemu_pid) || !fs_qmp_greets(fs_own_qmp, 2000)) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (waitpid(fs_qemu_pid, &status, WNOHANG) == fs_qemu_pid) {
			fs_qemu_pid = 0;
			fprintf(stderr, "%s: QEMU exited before it was up\n", fs_name);
			return NULL;
		}
		if (now.tv_sec - t0.tv_sec >= 30) {
			fprintf(stderr, "%s: QEMU is not up (a vCPU, its monitor answering) "
				"after 30 s: killed\n", fs_name);
			kill(fs_qemu_pid, SIGKILL);
			waitpid(fs_qemu_pid, &status, 0);
			fs_qemu_pid = 0;
			return NULL;
		}
		nanosleep(&pause, NULL);
	}
	snprintf(pid_arg, sizeof(pid_arg), "%d", (int)fs_qemu_pid);
	i = 0;
	args[i++] = vmpace;
	args[i++] = "--pid";
	args[i++] = pid_arg;
	i = fs_vmpace_opts(args, i, port_opt, port_id);
	args[i++] = "--qmp";
	args[i++] = fs_qmp;
	args[i++] = "--start";
	return args;
}

/*
 * --attach, at the end: QEMU ends with the session (vmpace's --on-close
 * terminate); reaped here, killed if it still runs after 15 s.  The
 * directory of its sockets goes.
 */
static void fs_attach_end(void)
{
	struct timespec pause = { 0, 10000000 };
	int i, status;

	for (i = 0; fs_qemu_pid > 0 && waitpid(fs_qemu_pid, &status, WNOHANG) == 0; i++) {
		if (i == 1500) {
			fprintf(stderr, "%s: QEMU still runs 15 s after the session: killed\n",
				fs_name);
			kill(fs_qemu_pid, SIGKILL);
			waitpid(fs_qemu_pid, &status, 0);
			break;
		}
		nanosleep(&pause, NULL);
	}
	unlink(fs_qmp);
	unlink(fs_own_qmp);
	unlink(fs_port[0]);
	unlink(fs_port[1]);
	rmdir(fs_dir);
}

static int fs_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

#endif
