// SPDX-License-Identifier: GPL-2.0
/*
 * vmpace run: start QEMU frozen and pace it from its first instruction; and
 * vmpace-qemu, the same for a command line written for a QEMU patched with
 * -external_sim.
 *
 * QEMU is started with -S and a QMP monitor on a socketpair that only it
 * inherits.  Once its monitor answers, its vCPUs exist and none has run a
 * guest instruction: vmpace arms every vCPU at its current guest TSC, then
 * sends "cont", so each vCPU is held before it enters the guest and guest
 * time 0 is simulated time 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qmp.h"
#include "vmpace.h"

/*
 * The child: default signal handling, the monitor's end inherited, exec; an
 * exec failure is reported on @err_fd (close-on-exec: EOF means it ran).
 * If vmpace is to terminate QEMU at the end, its death (even SIGKILL) does.
 */
static void __attribute__((noreturn)) exec_vmm(char **argv, int qmp_fd, int err_fd,
					       bool die_with_parent, pid_t parent,
					       const int *port_fd, int nr_ports)
{
	sigset_t none;
	int e, i;

	if (die_with_parent &&
	    (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent))
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	fcntl(qmp_fd, F_SETFD, 0);
	for (i = 0; i < nr_ports; i++)
		fcntl(port_fd[i], F_SETFD, 0);
	execvp(argv[0], argv);
	e = errno;
	if (write(err_fd, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

int vp_run_qemu(struct vp_opts *o, char **argv)
{
	bool user_paused = vp_qemu_has_arg(argv, "-S");
	int argc, i, j, sv[2], ep[2], fd, r, status = 0, pidfd, e, sigfd, k;
	int qemu_port[VP_MAX_NET + VP_MAX_SERIAL], nv[2];
	struct vp_qmp qmp = { .fd = -1 };
	char chardev[64], netdev[VP_MAX_NET][160], serial[VP_MAX_SERIAL][160], **av;
	struct vp_vm vm = { .pidfd = -1 };
	sigset_t mask, old;
	pid_t pid, self = getpid();

	if (vp_qemu_has_arg(argv, "-daemonize")) {
		vp_err("QEMU's -daemonize would leave vmpace without its QEMU: run it in "
		       "the foreground");
		return VP_EXIT_USAGE;
	}
	/* a port that nothing uses: its messages would wait for ever, say so */
	av = vp_qemu_flatten(argv);	/* -device in JSON too */
	for (k = 0; k < o->nr_net; k++)
		if (!vp_qemu_uses_id(av ? av : argv, "netdev", o->net_id[k]))
			vp_err("warning: --net %s: no device on QEMU's command line uses it "
			       "(netdev=%s): frames for it will not be taken", o->net_id[k],
			       o->net_id[k]);
	for (k = 0; k < o->nr_serial; k++)
		if (!vp_qemu_uses_id(av ? av : argv, "chardev", o->serial_id[k]))
			vp_err("warning: --serial %s: no device on QEMU's command line uses it "
			       "(-serial chardev:%s, chardev=%s): bytes for it will not be taken",
			       o->serial_id[k], o->serial_id[k], o->serial_id[k]);
	free(av);
	fd = vp_transport_open(o);
	if (fd < 0)
		return -fd;
	o->sync_fd = fd;
	/* the simulator's socket is vmpace's, not the VMM's */
	fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		vp_err("socketpair: %s", strerror(errno));
		return VP_EXIT_ERROR;
	}
	if (pipe2(ep, O_CLOEXEC)) {
		vp_err("pipe: %s", strerror(errno));
		return VP_EXIT_ERROR;
	}
	/*
	 * A network port: a datagram socketpair, one frame per datagram, QEMU's
	 * end as "-netdev dgram,local.type=fd" (QEMU 7.2 and later).
	 */
	for (k = 0; k < o->nr_net; k++) {
		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, nv)) {
			vp_err("socketpair: %s", strerror(errno));
			return VP_EXIT_ERROR;
		}
		o->net_fd[k] = nv[0];
		qemu_port[k] = nv[1];
		snprintf(netdev[k], sizeof(netdev[k]), "dgram,id=%s,local.type=fd,local.str=%d",
			 o->net_id[k], nv[1]);
	}
	/*
	 * A serial port: a stream socketpair, QEMU's end as a connected
	 * "-chardev socket,fd=".  vmpace keeps a copy of QEMU's end: its
	 * unread bytes (SIOCINQ) are what QEMU has not taken yet.
	 */
	for (k = 0; k < o->nr_serial; k++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, nv)) {
			vp_err("socketpair: %s", strerror(errno));
			return VP_EXIT_ERROR;
		}
		o->serial_fd[k] = nv[0];
		o->serial_qemu_fd[k] = nv[1];
		qemu_port[o->nr_net + k] = nv[1];
		snprintf(serial[k], sizeof(serial[k]), "socket,id=%s,fd=%d", o->serial_id[k],
			 nv[1]);
	}
	/*
	 * From here on a SIGINT, SIGTERM or SIGHUP ends the start-up in order
	 * (QEMU killed, exit 9) instead of leaving QEMU behind; the session
	 * takes them over.
	 */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &old);
	sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0) {
		vp_err("signalfd: %s", strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		return VP_EXIT_ERROR;
	}
	for (argc = 0; argv[argc]; argc++)
		;
	av = calloc(argc + 8 + 2 * (o->nr_net + o->nr_serial), sizeof(*av));
	if (!av)
		return VP_EXIT_ERROR;
	snprintf(chardev, sizeof(chardev), "socket,id=vmpace-qmp,fd=%d", sv[1]);
	i = j = 0;
	av[j++] = argv[i++];
	if (!user_paused)
		av[j++] = "-S";
	av[j++] = "-chardev";
	av[j++] = chardev;
	av[j++] = "-mon";
	av[j++] = "chardev=vmpace-qmp,mode=control";
	for (k = 0; k < o->nr_net; k++) {
		av[j++] = "-netdev";
		av[j++] = netdev[k];
	}
	for (k = 0; k < o->nr_serial; k++) {
		av[j++] = "-chardev";
		av[j++] = serial[k];
	}
	while (i < argc)
		av[j++] = argv[i++];

	pid = fork();
	if (pid < 0) {
		vp_err("fork: %s", strerror(errno));
		r = VP_EXIT_ERROR;
		goto restore;
	}
	if (!pid)
		exec_vmm(av, sv[1], ep[1], o->on_close == VP_CLOSE_TERMINATE, self, qemu_port,
			 o->nr_net + o->nr_serial);
	close(sv[1]);
	for (k = 0; k < o->nr_net; k++)
		close(qemu_port[k]);
	close(ep[1]);
	free(av);
	r = read(ep[0], &e, sizeof(e));
	close(ep[0]);
	if (r == sizeof(e)) {
		vp_err("cannot run %s: %s", argv[0], strerror(e));
		waitpid(pid, &status, 0);
		close(sv[0]);
		r = VP_EXIT_ERROR;
		goto restore;
	}
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		vp_err("pidfd_open: %s", strerror(errno));
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		r = VP_EXIT_ERROR;
		goto restore;
	}

	/* Its monitor answers once the machine, and so every vCPU, exists. */
	r = vp_qmp_open(&qmp, sv[0], pidfd, sigfd, -1);
	if (r == -ESRCH || r == -EPIPE) {
		if (waitpid(pid, &status, 0) == pid)
			vp_err("%s exited (%s %d) before it was ready", argv[0],
			       WIFEXITED(status) ? "status" : "signal",
			       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		else
			vp_err("%s exited before it was ready", argv[0]);
		r = VP_EXIT_VMM_DIED;
		goto out;
	}
	if (r) {
		r = r == -EINTR ? VP_EXIT_SIGNAL : VP_EXIT_ERROR;
		goto kill;
	}
	if (qmp.running) {
		vp_err("QEMU is running although it was started with -S");
		r = VP_EXIT_ERROR;
		goto kill;
	}
	o->pid = pid;
	r = vp_attach(pid, 0, &vm);
	if (r)
		goto kill;
	if (user_paused)
		vp_err("QEMU was started with -S: the guest starts with a 'cont' on one "
		       "of its monitors");
	r = vp_session(o, &vm, &qmp, VP_SESSION_OWNS_VMM | (user_paused ? 0 : VP_SESSION_START));
	vp_detach(&vm);
	/*
	 * The session terminated QEMU and waited for it, or released it:
	 * reap it if it is gone, never wait for one that may run on.
	 */
	waitpid(pid, &status, WNOHANG);
	goto out;
kill:
	/* it never ran a guest instruction: nothing to save */
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
out:
	vp_qmp_close(&qmp);
	close(pidfd);
restore:
	close(sigfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}

int vp_cmd_run(int argc, char **argv)
{
	struct vp_opts o;
	int r;

	r = vp_parse_pace_opts(argc, argv, &o, false);
	if (r)
		return r;
	if (optind >= argc || strcmp(argv[optind - 1], "--")) {
		vp_err("usage: vmpace run SYNC [options] -- QEMU-COMMAND-LINE");
		return VP_EXIT_USAGE;
	}
	return vp_run_qemu(&o, argv + optind);
}

/*
 * -cpu MODEL,FLAGS: drop what the -external_sim documentation recommended
 * for a guest that must not see KVM's clocks, since kernel pacing keeps
 * them on the simulator's timeline.  Returns the new value (malloc'ed).
 */
static char *fix_cpu(const char *val)
{
	static const char *const drop[] = { "-tsc", "-kvmclock", "tsc=off", "kvmclock=off",
					    "kvm=off", "-kvm", NULL };
	char *out = malloc(strlen(val) + 1), *copy = strdup(val), *tok, *save;
	int i, n = 0;

	if (!out || !copy)
		exit(VP_EXIT_ERROR);
	out[0] = '\0';
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; drop[i] && (n == 0 || strcmp(tok, drop[i])); i++)
			;
		if (drop[i]) {
			fprintf(stderr, "vmpace-qemu: dropped '%s' from -cpu: with kernel "
				"pacing the guest's TSC and kvmclock follow simulated time\n", tok);
			continue;
		}
		if (n++)
			strcat(out, ",");
		strcat(out, tok);
	}
	free(copy);
	return out;
}

/*
 * vmpace's options for vmpace-qemu, from $VMPACE_OPTS (words separated by
 * blanks), after its defaults: --zero-grant step, as the -external_sim
 * patch treats a zero grant.  Returns 0 or an exit code.
 */
static int qemu_pace_opts(long sync_fd, struct vp_opts *o)
{
	const char *env = getenv("VMPACE_OPTS");
	char *words = strdup(env ? env : ""), *w, *save, fdarg[32], *av[64];
	int ac = 0, r;

	if (!words)
		return VP_EXIT_ERROR;
	snprintf(fdarg, sizeof(fdarg), "%ld", sync_fd);
	av[ac++] = "vmpace-qemu";
	av[ac++] = "--zero-grant";
	av[ac++] = "step";
	av[ac++] = "--sync-fd";
	av[ac++] = fdarg;
	for (w = strtok_r(words, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
		if (ac == 62) {
			vp_err("VMPACE_OPTS: too many words");
			free(words);
			return VP_EXIT_USAGE;
		}
		av[ac++] = w;
	}
	av[ac] = NULL;
	r = vp_parse_pace_opts(ac, av, o, false);
	if (!r && optind < ac) {
		vp_err("VMPACE_OPTS: '%s' is not a vmpace option", av[optind]);
		r = VP_EXIT_USAGE;
	}
	/* the words stay referenced by @o (--trace FILE) until exit */
	return r;
}

/*
 * vmpace-qemu QEMU-ARGS: QEMU-ARGS is the command line of a QEMU patched
 * with -external_sim; "-external_sim sock=N" names the simulator's socket.
 * The QEMU run is $VMPACE_QEMU, or qemu-system-x86_64; vmpace's options
 * come from $VMPACE_OPTS.
 */
int vp_cmd_qemu(int argc, char **argv)
{
	const char *qemu = getenv("VMPACE_QEMU");
	struct vp_opts o;
	char **av, *end;
	long fd = -1;
	int i, j = 0, r;

	av = calloc(argc + 1, sizeof(*av));
	if (!av)
		return VP_EXIT_ERROR;
	av[j++] = (char *)(qemu && *qemu ? qemu : "qemu-system-x86_64");
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-external_sim") || !strcmp(argv[i], "--external_sim")) {
			const char *v = i + 1 < argc ? argv[++i] : "";

			errno = 0;
			if (strncmp(v, "sock=", 5) ||
			    (fd = strtol(v + 5, &end, 10), errno || *end || fd < 0 ||
			     fd > INT32_MAX)) {
				fprintf(stderr, "vmpace-qemu: -external_sim takes sock=FD, not '%s'\n",
					v);
				return VP_EXIT_USAGE;
			}
			continue;
		}
		if ((!strcmp(argv[i], "-cpu") || !strcmp(argv[i], "--cpu")) && i + 1 < argc) {
			av[j++] = argv[i++];
			av[j++] = fix_cpu(argv[i]);
			continue;
		}
		av[j++] = argv[i];
	}
	if (fd < 0) {
		fprintf(stderr, "vmpace-qemu: no -external_sim sock=FD on the command line "
			"(usage: vmpace-qemu QEMU-ARGS... -external_sim sock=FD)\n");
		return VP_EXIT_USAGE;
	}
	r = qemu_pace_opts(fd, &o);
	if (r)
		return r;
	return vp_run_qemu(&o, av);
}
