// SPDX-License-Identifier: GPL-2.0
/*
 * vmpace: pace an unmodified KVM virtual machine (QEMU) to the clock of a
 * simulator, using KVM's pacing ioctls (KVM_CAP_PACE).
 *
 * One table of commands and one of options: the usage text is made from
 * them, and so is getopt's option list.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmpace.h"

int vp_verbose;

static void __attribute__((format(printf, 1, 0))) vp_vlog(const char *fmt, va_list ap)
{
	fputs("vmpace: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void vp_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vp_vlog(fmt, ap);
	va_end(ap);
}

void vp_info(const char *fmt, ...)
{
	va_list ap;

	if (!vp_verbose)
		return;
	va_start(ap, fmt);
	vp_vlog(fmt, ap);
	va_end(ap);
}

/* Closes fds @lo..@hi; close_range(), or one by one if it is not allowed. */
static void close_fds(unsigned int lo, unsigned int hi)
{
	long max;
	unsigned int fd;

	if (lo > hi || !close_range(lo, hi, 0))
		return;
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 1 << 20)
		max = 1 << 20;
	for (fd = lo; fd <= hi && fd < (unsigned int)max; fd++)
		close(fd);
}

void vp_close_inherited_fds(int keep)
{
	if (keep > 3)
		close_fds(3, keep - 1);
	close_fds(keep >= 3 ? keep + 1 : 3, ~0U);
}

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *args;
	const char *help;
};

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const struct cmd cmds[] = {
	{ "attach",  vp_cmd_attach,  "--pid PID SYNC [options]", "pace a running VMM (also: vmpace --pid ...)" },
	{ "run",     vp_cmd_run,     "SYNC [options] -- QEMU-COMMAND-LINE",
	  "start QEMU frozen and pace it from its first instruction" },
	{ "status",  vp_cmd_status,  "[-j] [--pid VMM-PID]", "list paced VMs and their vCPUs" },
	{ "monitor", vp_cmd_monitor, "[-j] [--pid VMM-PID]", "print pacing events as they happen" },
	{ "help",    cmd_help,       "", "this text" },
	{ "version", cmd_version,    "", "print the version" },
	{ NULL }
};

enum { OPT_SYNC_FD = 256, OPT_SYNC_UNIX, OPT_SYNC_TCP, OPT_LISTEN, OPT_PROTO,
       OPT_ON_CLOSE, OPT_KILL_TIMEOUT, OPT_TRACE, OPT_ZERO_GRANT, OPT_STALL_WARN,
       OPT_PEER_TIMEOUT, OPT_VM, OPT_NET, OPT_SERIAL, OPT_IO_TIMEOUT, OPT_QMP, OPT_START };

struct opt {
	const char *name;
	int has_arg;
	int val;
	const char *arg;
	const char *help;
};

/* The options of attach and run, in the order the usage lists them. */
static const struct opt pace_opts[] = {
	{ "sync-fd", 1, OPT_SYNC_FD, "N", "SYNC: an inherited connected socket" },
	{ "sync-unix", 1, OPT_SYNC_UNIX, "PATH", "SYNC: a Unix socket (connect; --listen: accept one)" },
	{ "sync-tcp", 1, OPT_SYNC_TCP, "HOST:PORT",
	  "SYNC: TCP (connect; --listen: accept one, on loopback if HOST is empty)" },
	{ "listen", 0, OPT_LISTEN, NULL, "wait for the simulator to connect" },
	{ "pid", 1, 'p', "PID", "the VMM to attach to" },
	{ "vm", 1, OPT_VM, "ID", "the VM to pace, if the VMM has several (vmpace status)" },
	{ "proto", 1, OPT_PROTO, "us32|ns64|framed",
	  "grants and reports in uint32 us (default, adevs/-external_sim), uint64 ns, "
	  "or typed messages in absolute guest ns (vmpace-proto(7))" },
	{ "zero-grant", 1, OPT_ZERO_GRANT, "end|step",
	  "a zero grant ends the session (default) or is a step of no time" },
	{ "on-close", 1, OPT_ON_CLOSE, "terminate|release",
	  "when the session ends: end the VMM (default) or let it run free" },
	{ "kill-timeout", 1, OPT_KILL_TIMEOUT, "MS", "SIGKILL the VMM this long after SIGTERM (10000)" },
	{ "stall-warn", 1, OPT_STALL_WARN, "S", "say why a quantum waits longer than this (5, 0: never)" },
	{ "peer-timeout", 1, OPT_PEER_TIMEOUT, "S", "TCP: give up on an unreachable simulator (30)" },
	{ "trace", 1, OPT_TRACE, "FILE", "one CSV row per quantum" },
	{ "net", 1, OPT_NET, "ID",
	  "framed: network port for QEMU's -device ...,netdev=ID (repeatable; --pid: "
	  "QEMU's -netdev dgram,id=ID with Unix paths)" },
	{ "serial", 1, OPT_SERIAL, "ID",
	  "framed: serial port for QEMU's -serial chardev:ID (repeatable; --pid: "
	  "QEMU's -chardev socket,id=ID,path=P,server=on)" },
	{ "qmp", 1, OPT_QMP, "PATH",
	  "--pid: a QEMU monitor for vmpace alone (-qmp unix:PATH,server=on,wait=off); "
	  "needed by --net and --serial" },
	{ "start", 0, OPT_START, NULL,
	  "--pid --qmp: start a QEMU that has not run yet (-S) once its vCPUs are armed" },
	{ "io-timeout", 1, OPT_IO_TIMEOUT, "MS", "framed: wait this long for QEMU to take a frame or bytes (1000)" },
	{ "verbose", 0, 'v', NULL, "say what happens (also: VMPACE_VERBOSE=1)" },
	{ "help", 0, 'h', NULL, "this text" },
	{ NULL }
};

static void usage(FILE *f)
{
	const struct cmd *c;
	const struct opt *o;
	char buf[64];
	size_t i;

	fprintf(f, "usage:\n");
	for (c = cmds; c->name; c++)
		fprintf(f, "  vmpace %s %s\n      %s\n", c->name, c->args, c->help);
	fprintf(f, "  vmpace-qemu QEMU-ARGS... -external_sim sock=N\n"
		"      run a QEMU command line written for -external_sim, paced on fd N\n");
	fprintf(f, "\noptions of attach and run (SYNC: exactly one --sync-*):\n");
	for (o = pace_opts; o->name; o++) {
		snprintf(buf, sizeof(buf), "--%s%s%s", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		fprintf(f, "  %-26s %s\n", buf, o->help);
	}
	fprintf(f, "\nexit status:");
	for (i = 0; vp_exit_text(i); i++)
		fprintf(f, "%s %zu %s", i ? "," : "", i, vp_exit_text(i));
	fprintf(f, ".\nSee vmpace(1).\n");
}

static int cmd_help(int argc, char **argv)
{
	usage(stdout);
	return 0;
}

static int cmd_version(int argc, char **argv)
{
	printf("vmpace %s\n", VMPACE_VERSION);
	return 0;
}

static int parse_num(const char *s, const char *what, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > max) {
		vp_err("invalid %s '%s'", what, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* @s is one of the '|'-separated words of @words: its index, or -1. */
static int pick(const char *s, const char *opt, const char *words)
{
	const char *w = words, *bar;
	int i;

	for (i = 0;; i++) {
		bar = strchr(w, '|');
		if (strlen(s) == (size_t)(bar ? bar - w : (long)strlen(w)) &&
		    !strncmp(s, w, strlen(s)))
			return i;
		if (!bar)
			break;
		w = bar + 1;
	}
	vp_err("--%s is %s, not '%s'", opt, words, s);
	return -1;
}

/*
 * --net/--serial ID: a QEMU netdev or chardev id, each named once; appended
 * to @ids.  0 or -1 (said why).
 */
static int add_port(const char *id, const char *opt, const char *what, const char **ids,
		    int *nr, int max)
{
	int i;

	if (*nr == max) {
		vp_err("at most %d %s ports", max, opt);
		return -1;
	}
	if (!*id || strpbrk(id, ", =") || strlen(id) > 64) {
		vp_err("%s '%s': a QEMU %s id (at most 64 characters, no comma, blank or '=')",
		       opt, id, what);
		return -1;
	}
	if (!strcmp(what, "chardev") && !strcmp(id, "vmpace-qmp")) {
		vp_err("%s vmpace-qmp: the chardev id of vmpace's own monitor; pick another", opt);
		return -1;
	}
	for (i = 0; i < *nr; i++) {
		if (!strcmp(ids[i], id)) {
			vp_err("%s %s is named twice", opt, id);
			return -1;
		}
	}
	ids[(*nr)++] = id;
	return 0;
}

int vp_parse_pace_opts(int argc, char **argv, struct vp_opts *o, bool want_pid)
{
	struct option lo[sizeof(pace_opts) / sizeof(pace_opts[0])];
	int c, i, nsync = 0;
	long v;

	for (i = 0; pace_opts[i].name; i++)
		lo[i] = (struct option){ pace_opts[i].name, pace_opts[i].has_arg, NULL,
					 pace_opts[i].val };
	lo[i] = (struct option){ NULL };

	*o = (struct vp_opts){ .sync_fd = -1, .kill_timeout_ms = 10000, .stall_warn_s = 5,
			       .peer_timeout_s = 30, .io_timeout_ms = 1000 };
	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:vh", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_num(optarg, "pid", INT_MAX, &v) || !v)
				return VP_EXIT_USAGE;
			o->pid = v;
			break;
		case OPT_VM:
			if (parse_num(optarg, "VM id", UINT32_MAX, &v) || !v)
				return VP_EXIT_USAGE;
			o->vm_id = v;
			break;
		case OPT_SYNC_FD:
			if (parse_num(optarg, "fd", INT_MAX, &v))
				return VP_EXIT_USAGE;
			o->sync_fd = v;
			nsync++;
			break;
		case OPT_SYNC_UNIX:
			o->sync_unix = optarg;
			nsync++;
			break;
		case OPT_SYNC_TCP:
			o->sync_tcp = optarg;
			nsync++;
			break;
		case OPT_LISTEN:
			o->listen = true;
			break;
		case OPT_PROTO:
			if ((v = pick(optarg, "proto", "us32|ns64|framed")) < 0)
				return VP_EXIT_USAGE;
			o->proto = v == 2 ? VP_PROTO_FRAMED : v ? VP_PROTO_NS64 : VP_PROTO_US32;
			break;
		case OPT_ZERO_GRANT:
			if ((v = pick(optarg, "zero-grant", "end|step")) < 0)
				return VP_EXIT_USAGE;
			o->zero_grant = v ? VP_ZERO_STEP : VP_ZERO_END;
			break;
		case OPT_ON_CLOSE:
			if ((v = pick(optarg, "on-close", "terminate|release")) < 0)
				return VP_EXIT_USAGE;
			o->on_close = v ? VP_CLOSE_RELEASE : VP_CLOSE_TERMINATE;
			break;
		case OPT_KILL_TIMEOUT:
			if (parse_num(optarg, "--kill-timeout", INT_MAX, &v))
				return VP_EXIT_USAGE;
			o->kill_timeout_ms = v;
			break;
		case OPT_STALL_WARN:
			if (parse_num(optarg, "--stall-warn", 86400, &v))
				return VP_EXIT_USAGE;
			o->stall_warn_s = v;
			break;
		case OPT_PEER_TIMEOUT:
			if (parse_num(optarg, "--peer-timeout", 86400, &v))
				return VP_EXIT_USAGE;
			if (!v) {
				vp_err("invalid --peer-timeout '0': at least 1 s");
				return VP_EXIT_USAGE;
			}
			o->peer_timeout_s = v;
			break;
		case OPT_TRACE:
			o->trace = optarg;
			break;
		case OPT_NET:
			if (add_port(optarg, "--net", "netdev", o->net_id, &o->nr_net, VP_MAX_NET))
				return VP_EXIT_USAGE;
			o->net_fd[o->nr_net - 1] = -1;
			break;
		case OPT_SERIAL:
			if (add_port(optarg, "--serial", "chardev", o->serial_id, &o->nr_serial,
				     VP_MAX_SERIAL))
				return VP_EXIT_USAGE;
			o->serial_fd[o->nr_serial - 1] = -1;
			o->serial_qemu_fd[o->nr_serial - 1] = -1;
			break;
		case OPT_START:
			o->start = true;
			break;
		case OPT_QMP:
			if (!*optarg) {
				vp_err("--qmp: a path");
				return VP_EXIT_USAGE;
			}
			o->qmp_path = optarg;
			break;
		case OPT_IO_TIMEOUT:
			if (parse_num(optarg, "--io-timeout", 3600000, &v))
				return VP_EXIT_USAGE;
			if (!v) {
				vp_err("invalid --io-timeout '0': at least 1 ms");
				return VP_EXIT_USAGE;
			}
			o->io_timeout_ms = v;
			break;
		case 'v':
			vp_verbose = 1;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return VP_EXIT_USAGE;
		}
	}
	if (nsync != 1) {
		vp_err("name exactly one of --sync-fd, --sync-unix, --sync-tcp");
		return VP_EXIT_USAGE;
	}
	if (o->listen && o->sync_fd >= 0) {
		vp_err("--listen goes with --sync-unix or --sync-tcp");
		return VP_EXIT_USAGE;
	}
	if (want_pid && !o->pid) {
		vp_err("--pid is required");
		return VP_EXIT_USAGE;
	}
	if (!want_pid && o->pid) {
		vp_err("'vmpace run' starts the VMM itself: no --pid");
		return VP_EXIT_USAGE;
	}
	if (!want_pid && o->vm_id) {
		vp_err("'vmpace run' starts a QEMU, which has one VM: no --vm");
		return VP_EXIT_USAGE;
	}
	if (o->qmp_path && !want_pid) {
		vp_err("--qmp is for vmpace --pid: 'vmpace run' gives QEMU a monitor of its own");
		return VP_EXIT_USAGE;
	}
	if (o->start && (!want_pid || !o->qmp_path)) {
		vp_err("--start is for vmpace --pid with --qmp: it starts QEMU through that "
		       "monitor ('vmpace run' starts its own QEMU)");
		return VP_EXIT_USAGE;
	}
	if ((o->nr_net || o->nr_serial) && want_pid && !o->qmp_path) {
		vp_err("%s with --pid needs --qmp PATH, a monitor of QEMU's for vmpace alone "
		       "(-qmp unix:PATH,server=on,wait=off): vmpace asks QEMU through it "
		       "whether it took what was handed over", o->nr_net ? "--net" : "--serial");
		return VP_EXIT_USAGE;
	}
	if (o->nr_net && o->proto != VP_PROTO_FRAMED) {
		vp_err("--net carries frames in the framed protocol: add --proto framed");
		return VP_EXIT_USAGE;
	}
	if (o->nr_serial && o->proto != VP_PROTO_FRAMED) {
		vp_err("--serial carries bytes in the framed protocol: add --proto framed");
		return VP_EXIT_USAGE;
	}
	/* Only the simulator's socket survives: no inherited copy of its end. */
	vp_close_inherited_fds(o->sync_fd);
	return 0;
}

int main(int argc, char **argv)
{
	const struct cmd *c;
	int fd;

	if (getenv("VMPACE_VERBOSE") && *getenv("VMPACE_VERBOSE") &&
	    strcmp(getenv("VMPACE_VERBOSE"), "0"))
		vp_verbose = 1;
	/* 0-2 open, so that no socket of ours becomes QEMU's stdio */
	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
	/* A write to a simulator that went away is an error, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	/* the VMM's exit status is ours to read, even if SIGCHLD came ignored */
	signal(SIGCHLD, SIG_DFL);
	if (!strcmp(basename(argv[0]), "vmpace-qemu"))
		return vp_cmd_qemu(argc, argv);
	/* "vmpace --pid ..." is "vmpace attach --pid ..." */
	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
			usage(stdout);
			return 0;
		}
		if (argc < 2) {
			usage(stderr);
			return VP_EXIT_USAGE;
		}
		return vp_cmd_attach(argc, argv);
	}
	for (c = cmds; c->name; c++)
		if (!strcmp(argv[1], c->name))
			return c->fn(argc - 1, argv + 1);
	vp_err("unknown command '%s' (see 'vmpace help')", argv[1]);
	return VP_EXIT_USAGE;
}
