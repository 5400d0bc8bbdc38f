// SPDX-License-Identifier: GPL-2.0
/*
 * vmpace status and vmpace monitor: what the kernel's kvm_pace netlink
 * family (nl.c) says, as a table per VM or JSON, and one line per event.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/kvm.h>
#include <linux/kvm_pace.h>

#include "nl.h"
#include "vmpace.h"

/* Guest TSC ticks as seconds, "-" without a frequency. */
static const char *tsc_s(char *buf, size_t len, uint64_t ticks, uint32_t khz)
{
	if (!khz)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%" PRIu64 ".%06" PRIu64 " s", ticks / khz / 1000,
			 ticks / khz % 1000 * 1000 + ticks % khz * 1000 / khz);
	return buf;
}

static double tsc_us(uint64_t ticks, uint32_t khz)
{
	return khz ? ticks * 1000.0 / khz : 0;
}

/* "stopped": armed, but the VMM keeps it out of KVM_RUN (paused, unplugged) */
static const char *state_name(uint32_t state)
{
	if (state & KVM_PACE_STATE_HELD)
		return "held";
	if ((state & KVM_PACE_STATE_ARMED) && !(state & KVM_PACE_STATE_IN_RUN))
		return "stopped";
	if (state & KVM_PACE_STATE_ARMED)
		return "running";
	return "free";
}


static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void status_json(const struct pace_rec *recs, size_t nr)
{
	char comm[32];
	size_t i;

	printf("{\"vms\":[");
	for (i = 0; i < nr; i++) {
		const struct pace_rec *r = &recs[i];
		bool first = !i || r->vm_id != r[-1].vm_id;
		bool last = i + 1 == nr || r->vm_id != r[1].vm_id;

		if (first) {
			vp_read_comm(r->vmm_pid, comm, sizeof(comm));
			printf("%s{\"vm_id\":%u,\"vmm_pid\":%u,\"vmm_comm\":", i ? "," : "",
			       r->vm_id, r->vmm_pid);
			json_str(comm);
			printf(",\"nr_vcpus\":%u,\"tsc_khz\":%u,\"frozen\":%s,\"frozen_ns\":%" PRIu64
			       ",\"vcpus\":[", r->nr_vcpus, r->tsc_khz,
			       r->state & KVM_PACE_STATE_FROZEN ? "true" : "false", r->frozen_ns);
		}
		vp_read_comm(r->ctrl_pid, comm, sizeof(comm));
		printf("%s{\"vcpu_id\":%u,\"state\":\"%s\",\"state_flags\":%u,\"armed\":%s,"
		       "\"held\":%s,\"in_run\":%s,\"controller_pid\":%u,\"controller_comm\":",
		       first ? "" : ",", r->vcpu_id, state_name(r->state), r->state,
		       r->state & KVM_PACE_STATE_ARMED ? "true" : "false",
		       r->state & KVM_PACE_STATE_HELD ? "true" : "false",
		       r->state & KVM_PACE_STATE_IN_RUN ? "true" : "false", r->ctrl_pid);
		json_str(r->ctrl_pid ? comm : "");
		printf(",\"flags\":%u,\"guest_tsc\":%" PRIu64 ",\"deadline\":%" PRIu64
		       ",\"holds\":%" PRIu64 ",\"exits\":%" PRIu64 ",\"overshoot_last\":%" PRIu64
		       ",\"overshoot_max\":%" PRIu64 ",\"held_ns\":%" PRIu64 "}",
		       r->flags, r->guest_tsc, r->deadline, r->holds, r->exits,
		       r->overshoot_last, r->overshoot_max, r->held_ns);
		if (last)
			printf("]}");
	}
	printf("]}\n");
}

static void status_text(const struct pace_rec *recs, size_t nr)
{
	char comm[32], ctrl[48], t1[48], t2[48];
	size_t i;

	if (!nr) {
		printf("no VM is paced\n");
		return;
	}
	for (i = 0; i < nr; i++) {
		const struct pace_rec *r = &recs[i];

		if (!i || r->vm_id != r[-1].vm_id) {
			vp_read_comm(r->vmm_pid, comm, sizeof(comm));
			printf("%sVM %u  %s pid %u  %u vCPU%s  guest TSC %u kHz  %s (%.3f s frozen)\n",
			       i ? "\n" : "", r->vm_id, comm[0] ? comm : "?", r->vmm_pid,
			       r->nr_vcpus, r->nr_vcpus == 1 ? "" : "s", r->tsc_khz,
			       r->state & KVM_PACE_STATE_FROZEN ? "frozen" : "running",
			       r->frozen_ns / 1e9);
			printf("  %4s  %-7s  %-16s  %14s  %14s  %8s  %6s  %21s  %9s\n",
			       "VCPU", "STATE", "CONTROLLER", "GUEST TIME", "DEADLINE", "HOLDS",
			       "EXITS", "OVERSHOOT LAST/MAX us", "HELD s");
		}
		vp_read_comm(r->ctrl_pid, comm, sizeof(comm));
		if (r->ctrl_pid)
			snprintf(ctrl, sizeof(ctrl), "%u %s", r->ctrl_pid, comm);
		else
			snprintf(ctrl, sizeof(ctrl), "-");
		printf("  %4u  %-7s  %-16s  %14s  %14s  %8" PRIu64 "  %6" PRIu64
		       "  %10.1f/%10.1f  %9.3f\n",
		       r->vcpu_id, state_name(r->state), ctrl,
		       tsc_s(t1, sizeof(t1), r->guest_tsc, r->tsc_khz),
		       r->deadline ? tsc_s(t2, sizeof(t2), r->deadline, r->tsc_khz) : "-",
		       r->holds, r->exits, tsc_us(r->overshoot_last, r->tsc_khz),
		       tsc_us(r->overshoot_max, r->tsc_khz), r->held_ns / 1e9);
	}
}

static const struct option mon_opts[] = {
	{ "json",	no_argument,		NULL, 'j' },
	{ "pid",	required_argument,	NULL, 'p' },
	{ "help",	no_argument,		NULL, 'h' },
	{ NULL }
};

/* -j and --pid for both commands; returns 0 or VP_EXIT_USAGE. */
static int parse_mon_opts(int argc, char **argv, const char *cmd, bool *json, uint32_t *pid)
{
	char *end;
	long v;
	int c;

	*json = false;
	*pid = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "jp:h", mon_opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			*json = true;
			break;
		case 'p':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v <= 0 || v > INT_MAX) {
				vp_err("invalid pid '%s'", optarg);
				return VP_EXIT_USAGE;
			}
			*pid = v;
			break;
		case 'h':
			printf("usage: vmpace %s [-j|--json] [--pid VMM-PID]\n", cmd);
			exit(0);
		default:
			vp_err("usage: vmpace %s [-j|--json] [--pid VMM-PID]", cmd);
			return VP_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		vp_err("unexpected argument '%s'", argv[optind]);
		return VP_EXIT_USAGE;
	}
	return 0;
}

int vp_cmd_status(int argc, char **argv)
{
	struct pace_rec *recs;
	uint32_t pid;
	size_t nr;
	bool json;
	int r;

	r = parse_mon_opts(argc, argv, "status", &json, &pid);
	if (r)
		return r;
	r = vp_nl_dump(pid, &recs, &nr);
	if (r)
		return r;
	if (json)
		status_json(recs, nr);
	else
		status_text(recs, nr);
	free(recs);
	return fflush(stdout) ? VP_EXIT_ERROR : VP_EXIT_OK;
}

struct monitor {
	bool json;
	uint32_t pid;
	uint64_t events;
};

static const char *const event_names[] = {
	[KVM_PACE_CMD_ARM]	= "arm",
	[KVM_PACE_CMD_HOLD]	= "hold",
	[KVM_PACE_CMD_RELEASE]	= "release",
	[KVM_PACE_CMD_DISARM]	= "disarm",
};

static const char *const reason_json[] = {
	[KVM_PACE_DISARM_IOCTL]		= "ioctl",
	[KVM_PACE_DISARM_CLOSE]		= "close",
	[KVM_PACE_DISARM_UNSUPPORTED]	= "unsupported",
};

static const char *const reason_text[] = {
	[KVM_PACE_DISARM_IOCTL]		= "by ioctl",
	[KVM_PACE_DISARM_CLOSE]		= "controller closed the vCPU",
	[KVM_PACE_DISARM_UNSUPPORTED]	= "the guest uses a timer pacing cannot freeze",
};

static const char *reason(const char *const *names, uint32_t r)
{
	return r <= KVM_PACE_DISARM_UNSUPPORTED ? names[r] : "unknown";
}

static void print_event(void *arg, const struct pace_rec *r)
{
	struct monitor *m = arg;
	const char *name = event_names[r->cmd];
	char t1[48], t2[48];
	struct timespec now;

	if (m->pid && r->vmm_pid != m->pid)
		return;
	m->events++;

	clock_gettime(CLOCK_REALTIME, &now);
	if (m->json) {
		printf("{\"event\":\"%s\",\"time_ns\":%" PRIu64 ",\"vm_id\":%u,\"vmm_pid\":%u,"
		       "\"vcpu_id\":%u,\"nr_vcpus\":%u,\"controller_pid\":%u,\"seq\":%" PRIu64
		       ",\"guest_tsc\":%" PRIu64 ",\"deadline\":%" PRIu64 ",\"tsc_khz\":%u",
		       name, (uint64_t)now.tv_sec * 1000000000 + now.tv_nsec, r->vm_id,
		       r->vmm_pid, r->vcpu_id, r->nr_vcpus, r->ctrl_pid, r->seq, r->guest_tsc,
		       r->deadline, r->tsc_khz);
		if (r->cmd == KVM_PACE_CMD_HOLD)
			printf(",\"overshoot\":%" PRIu64, r->overshoot);
		if (r->cmd == KVM_PACE_CMD_RELEASE)
			printf(",\"held_ns\":%" PRIu64, r->held_ns);
		if (r->cmd == KVM_PACE_CMD_DISARM)
			printf(",\"reason\":\"%s\"", reason(reason_json, r->reason));
		printf("}\n");
	} else {
		struct tm tm;

		localtime_r(&now.tv_sec, &tm);
		printf("%02d:%02d:%02d.%06ld  vm %u pid %u vcpu %u  %-7s seq %-6" PRIu64
		       " guest %s  deadline %s",
		       tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000, r->vm_id,
		       r->vmm_pid, r->vcpu_id, name, r->seq,
		       tsc_s(t1, sizeof(t1), r->guest_tsc, r->tsc_khz),
		       r->deadline ? tsc_s(t2, sizeof(t2), r->deadline, r->tsc_khz) : "-");
		if (r->cmd == KVM_PACE_CMD_HOLD)
			printf("  overshoot %.1f us", tsc_us(r->overshoot, r->tsc_khz));
		if (r->cmd == KVM_PACE_CMD_RELEASE)
			printf("  held %.3f ms", r->held_ns / 1e6);
		if (r->cmd == KVM_PACE_CMD_DISARM)
			printf("  (%s)", reason(reason_text, r->reason));
		printf("\n");
	}
	/* the reader went away (vmpace monitor | head): done */
	if (fflush(stdout) || ferror(stdout))
		exit(errno == EPIPE ? VP_EXIT_OK : VP_EXIT_ERROR);
}

/* Tests wait for this line: from here on no event is missed. */
static void monitor_ready(void *arg)
{
	struct monitor *m = arg;

	vp_err("listening for kvm_pace events%s", m->json ? " (JSON lines)" : "");
	setvbuf(stdout, NULL, _IOLBF, 0);
}

int vp_cmd_monitor(int argc, char **argv)
{
	struct monitor m = { 0 };
	uint64_t lost;
	int r;

	r = parse_mon_opts(argc, argv, "monitor", &m.json, &m.pid);
	if (r)
		return r;
	r = vp_nl_listen(print_event, monitor_ready, &m, &lost);
	vp_info("%" PRIu64 " events", m.events);
	if (lost)
		vp_err("%" PRIu64 " events lost in total", lost);
	return r;
}
