// SPDX-License-Identifier: GPL-2.0
/*
 * vmpace: pace an unmodified KVM virtual machine (QEMU) to the clock of a
 * simulator, using KVM's pacing ioctls (KVM_CAP_PACE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
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

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *args;
	const char *help;
};

static const struct cmd cmds[];

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vmpace [attach] --pid PID SYNC [options]\n"
		"       vmpace run SYNC [options] -- QEMU-COMMAND-LINE\n"
		"       vmpace status [-j] [--pid VMM-PID]\n"
		"       vmpace monitor [-j] [--pid VMM-PID]\n"
		"       vmpace help | version\n"
		"\n"
		"SYNC, where the simulator is (one of):\n"
		"  --sync-fd N            an inherited socket\n"
		"  --sync-unix PATH       a Unix socket (connect; --listen to accept one)\n"
		"  --sync-tcp HOST:PORT   TCP (connect; --listen to accept one)\n"
		"\n"
		"options:\n"
		"  --proto us32|ns64      grants and reports in uint32 us (default, the\n"
		"                         adevs/-external_sim protocol) or uint64 ns\n"
		"  --on-close terminate|release\n"
		"                         when the simulator closes: end the VMM (default)\n"
		"                         or leave it running free\n"
		"  --kill-timeout MS      SIGKILL the VMM this long after SIGTERM (10000)\n"
		"  --trace FILE           one CSV row per quantum\n"
		"  -v, --verbose          say what happens\n"
		"\n"
		"Exit status: 0 session ended by the simulator, 1 system error, 2 usage,\n"
		"3 no such process, 4 not a KVM process, 5 permission denied,\n"
		"6 kernel without KVM pacing, 7 protocol error, 8 VMM exited,\n"
		"9 interrupted by SIGINT/SIGTERM (guest released), 10 VM paced by\n"
		"another controller.  See vmpace(1).\n");
}

static int parse_u32(const char *s, const char *what, long max, long *out)
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

enum { OPT_SYNC_FD = 256, OPT_SYNC_UNIX, OPT_SYNC_TCP, OPT_LISTEN, OPT_PROTO,
       OPT_ON_CLOSE, OPT_KILL_TIMEOUT, OPT_TRACE };

static const struct option long_opts[] = {
	{ "pid",		required_argument, NULL, 'p' },
	{ "sync-fd",		required_argument, NULL, OPT_SYNC_FD },
	{ "sync-unix",		required_argument, NULL, OPT_SYNC_UNIX },
	{ "sync-tcp",		required_argument, NULL, OPT_SYNC_TCP },
	{ "listen",		no_argument,	   NULL, OPT_LISTEN },
	{ "proto",		required_argument, NULL, OPT_PROTO },
	{ "on-close",		required_argument, NULL, OPT_ON_CLOSE },
	{ "kill-timeout",	required_argument, NULL, OPT_KILL_TIMEOUT },
	{ "trace",		required_argument, NULL, OPT_TRACE },
	{ "verbose",		no_argument,	   NULL, 'v' },
	{ "help",		no_argument,	   NULL, 'h' },
	{ NULL }
};

/* Returns 0, or a VP_EXIT_* code after printing why. */
static int parse_opts(int argc, char **argv, struct vp_opts *o, bool want_pid)
{
	int c, nsync = 0;
	long v;

	*o = (struct vp_opts){ .sync_fd = -1, .kill_timeout_ms = 10000 };
	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:vh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (parse_u32(optarg, "pid", INT_MAX, &v) || !v)
				return VP_EXIT_USAGE;
			o->pid = v;
			break;
		case OPT_SYNC_FD:
			if (parse_u32(optarg, "fd", INT_MAX, &v))
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
			if (!strcmp(optarg, "us32")) {
				o->proto = VP_PROTO_US32;
			} else if (!strcmp(optarg, "ns64")) {
				o->proto = VP_PROTO_NS64;
			} else {
				vp_err("--proto is us32 or ns64, not '%s'", optarg);
				return VP_EXIT_USAGE;
			}
			break;
		case OPT_ON_CLOSE:
			if (!strcmp(optarg, "terminate")) {
				o->on_close = VP_CLOSE_TERMINATE;
			} else if (!strcmp(optarg, "release")) {
				o->on_close = VP_CLOSE_RELEASE;
			} else {
				vp_err("--on-close is terminate or release, not '%s'", optarg);
				return VP_EXIT_USAGE;
			}
			break;
		case OPT_KILL_TIMEOUT:
			if (parse_u32(optarg, "--kill-timeout", INT_MAX, &v))
				return VP_EXIT_USAGE;
			o->kill_timeout_ms = v;
			break;
		case OPT_TRACE:
			o->trace = optarg;
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
	return 0;
}

static int cmd_attach(int argc, char **argv)
{
	struct vp_opts o;
	struct vp_vm vm;
	int r, fd;

	r = parse_opts(argc, argv, &o, true);
	if (r)
		return r;
	if (optind != argc) {
		vp_err("unexpected argument '%s'", argv[optind]);
		return VP_EXIT_USAGE;
	}
	r = vp_attach(o.pid, &vm);
	if (r) {
		vp_detach(&vm);
		return r;
	}
	fd = vp_transport_open(&o);
	if (fd < 0) {
		vp_detach(&vm);
		return -fd;
	}
	o.sync_fd = fd;
	r = vp_session(&o, &vm);
	vp_detach(&vm);
	return r;
}

static int cmd_run(int argc, char **argv)
{
	struct vp_opts o;
	int r;

	r = parse_opts(argc, argv, &o, false);
	if (r)
		return r;
	if (optind >= argc || strcmp(argv[optind - 1], "--")) {
		vp_err("usage: vmpace run SYNC [options] -- QEMU-COMMAND-LINE");
		return VP_EXIT_USAGE;
	}
	return vp_cmd_run(&o, argv + optind);
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

static const struct cmd cmds[] = {
	{ "attach",	cmd_attach,	"--pid PID SYNC [options]", "pace a running VMM" },
	{ "run",	cmd_run,	"SYNC [options] -- QEMU...", "start a VMM and pace it" },
	{ "status",	vp_cmd_status,	"[-j] [--pid PID]", "list paced VMs and their vCPUs" },
	{ "monitor",	vp_cmd_monitor,	"[-j] [--pid PID]", "print pacing events as they happen" },
	{ "help",	cmd_help,	"", "this text" },
	{ "version",	cmd_version,	"", "print the version" },
	{ NULL }
};

int main(int argc, char **argv)
{
	const struct cmd *c;

	if (getenv("VMPACE_VERBOSE"))
		vp_verbose = 1;
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
		return cmd_attach(argc, argv);
	}
	for (c = cmds; c->name; c++)
		if (!strcmp(argv[1], c->name))
			return c->fn(argc - 1, argv + 1);
	vp_err("unknown command '%s' (see 'vmpace help')", argv[1]);
	return VP_EXIT_USAGE;
}
