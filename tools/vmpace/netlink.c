// SPDX-License-Identifier: GPL-2.0
/*
 * vmpace status and vmpace monitor: the kernel's "kvm_pace" generic netlink
 * family, through libnl-genl.
 *
 * status dumps KVM_PACE_CMD_GET_VCPU (one message per vCPU of every VM with
 * pacing armed) and prints a table per VM, or JSON.  monitor joins the
 * "events" group and nlctrl's "notify" group (to see the family go away when
 * KVM is unloaded) and prints one line per event from the same kind of
 * epoll loop as the pacing session: the netlink socket and a signalfd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/genetlink.h>
#include <linux/kvm.h>
#include <linux/kvm_pace.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#include "vmpace.h"

/* One dump message or event, as received. */
struct pace_rec {
	int cmd;
	uint64_t has;			/* bit per KVM_PACE_A_* present */
	uint32_t vm_id, vmm_pid, ctrl_pid, nr_vcpus, vcpu_id, state, flags;
	uint32_t tsc_khz, reason;
	uint64_t guest_tsc, deadline, holds, exits, overshoot_last;
	uint64_t overshoot_max, held_ns, frozen_ns, seq, overshoot;
};

static struct nla_policy pace_policy[KVM_PACE_A_MAX + 1] = {
	[KVM_PACE_A_VM_ID]		= { .type = NLA_U32 },
	[KVM_PACE_A_VMM_PID]		= { .type = NLA_U32 },
	[KVM_PACE_A_CONTROLLER_PID]	= { .type = NLA_U32 },
	[KVM_PACE_A_NR_VCPUS]		= { .type = NLA_U32 },
	[KVM_PACE_A_VCPU_ID]		= { .type = NLA_U32 },
	[KVM_PACE_A_STATE]		= { .type = NLA_U32 },
	[KVM_PACE_A_FLAGS]		= { .type = NLA_U32 },
	[KVM_PACE_A_TSC_KHZ]		= { .type = NLA_U32 },
	[KVM_PACE_A_REASON]		= { .type = NLA_U32 },
	[KVM_PACE_A_GUEST_TSC]		= { .type = NLA_U64 },
	[KVM_PACE_A_DEADLINE]		= { .type = NLA_U64 },
	[KVM_PACE_A_HOLDS]		= { .type = NLA_U64 },
	[KVM_PACE_A_EXITS]		= { .type = NLA_U64 },
	[KVM_PACE_A_OVERSHOOT_LAST]	= { .type = NLA_U64 },
	[KVM_PACE_A_OVERSHOOT_MAX]	= { .type = NLA_U64 },
	[KVM_PACE_A_HELD_NS]		= { .type = NLA_U64 },
	[KVM_PACE_A_FROZEN_NS]		= { .type = NLA_U64 },
	[KVM_PACE_A_SEQ]		= { .type = NLA_U64 },
	[KVM_PACE_A_OVERSHOOT]		= { .type = NLA_U64 },
};

static int parse_rec(struct nl_msg *msg, struct pace_rec *r)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct genlmsghdr *gh = nlmsg_data(nlh);
	struct nlattr *tb[KVM_PACE_A_MAX + 1];
	int i, err;

	err = genlmsg_parse(nlh, 0, tb, KVM_PACE_A_MAX, pace_policy);
	if (err < 0)
		return err;

	memset(r, 0, sizeof(*r));
	r->cmd = gh->cmd;
	for (i = 0; i <= KVM_PACE_A_MAX; i++)
		if (tb[i])
			r->has |= 1ull << i;
#define U32(a, f) do { if (tb[a]) r->f = nla_get_u32(tb[a]); } while (0)
#define U64(a, f) do { if (tb[a]) r->f = nla_get_u64(tb[a]); } while (0)
	U32(KVM_PACE_A_VM_ID, vm_id);
	U32(KVM_PACE_A_VMM_PID, vmm_pid);
	U32(KVM_PACE_A_CONTROLLER_PID, ctrl_pid);
	U32(KVM_PACE_A_NR_VCPUS, nr_vcpus);
	U32(KVM_PACE_A_VCPU_ID, vcpu_id);
	U32(KVM_PACE_A_STATE, state);
	U32(KVM_PACE_A_FLAGS, flags);
	U32(KVM_PACE_A_TSC_KHZ, tsc_khz);
	U32(KVM_PACE_A_REASON, reason);
	U64(KVM_PACE_A_GUEST_TSC, guest_tsc);
	U64(KVM_PACE_A_DEADLINE, deadline);
	U64(KVM_PACE_A_HOLDS, holds);
	U64(KVM_PACE_A_EXITS, exits);
	U64(KVM_PACE_A_OVERSHOOT_LAST, overshoot_last);
	U64(KVM_PACE_A_OVERSHOOT_MAX, overshoot_max);
	U64(KVM_PACE_A_HELD_NS, held_ns);
	U64(KVM_PACE_A_FROZEN_NS, frozen_ns);
	U64(KVM_PACE_A_SEQ, seq);
	U64(KVM_PACE_A_OVERSHOOT, overshoot);
#undef U32
#undef U64
	return 0;
}

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

static const char *state_name(uint32_t state)
{
	if (state & KVM_PACE_STATE_HELD)
		return "held";
	if (state & KVM_PACE_STATE_ARMED)
		return "running";
	return "free";
}

/*
 * The family and, if @grp, a multicast group id.  Prints why on failure and
 * returns a VP_EXIT_* code.
 */
static int pace_connect(struct nl_sock **skp, int *family, const char *grp, int *grp_id)
{
	struct nl_sock *sk;
	int r;

	*skp = NULL;
	sk = nl_socket_alloc();
	if (!sk) {
		vp_err("out of memory");
		return VP_EXIT_ERROR;
	}
	r = genl_connect(sk);
	if (r < 0) {
		vp_err("generic netlink: %s", nl_geterror(r));
		goto err;
	}
	*family = genl_ctrl_resolve(sk, KVM_PACE_GENL_NAME);
	if (*family < 0) {
		vp_err("the kernel has no '%s' netlink family: KVM is not loaded, or has no pacing support",
		       KVM_PACE_GENL_NAME);
		nl_socket_free(sk);
		return VP_EXIT_NO_PACING;
	}
	if (grp) {
		*grp_id = genl_ctrl_resolve_grp(sk, KVM_PACE_GENL_NAME, grp);
		if (*grp_id < 0) {
			vp_err("netlink group %s/%s: %s", KVM_PACE_GENL_NAME, grp,
			       nl_geterror(*grp_id));
			goto err;
		}
	}
	*skp = sk;
	return 0;
err:
	nl_socket_free(sk);
	return VP_EXIT_ERROR;
}

static int perm_error(const char *what)
{
	vp_err("%s: permission denied: the kvm_pace family needs CAP_SYS_ADMIN", what);
	return VP_EXIT_PERM;
}

/* ---- status ---------------------------------------------------------------- */

struct status {
	struct pace_rec *recs;
	size_t nr, alloc;
	int err;
};

static int status_cb(struct nl_msg *msg, void *arg)
{
	struct status *st = arg;
	struct pace_rec *n;

	if (st->nr == st->alloc) {
		st->alloc = st->alloc ? 2 * st->alloc : 16;
		n = realloc(st->recs, st->alloc * sizeof(*n));
		if (!n) {
			st->err = -ENOMEM;
			return NL_STOP;
		}
		st->recs = n;
	}
	if (parse_rec(msg, &st->recs[st->nr]) < 0) {
		st->err = -EPROTO;
		return NL_STOP;
	}
	st->nr++;
	return NL_OK;
}

static int rec_cmp(const void *a, const void *b)
{
	const struct pace_rec *x = a, *y = b;

	if (x->vm_id != y->vm_id)
		return x->vm_id < y->vm_id ? -1 : 1;
	return x->vcpu_id < y->vcpu_id ? -1 : x->vcpu_id > y->vcpu_id;
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

static void status_json(struct status *st)
{
	char comm[32];
	size_t i;

	printf("{\"vms\":[");
	for (i = 0; i < st->nr; i++) {
		const struct pace_rec *r = &st->recs[i];
		bool first = !i || r->vm_id != r[-1].vm_id;
		bool last = i + 1 == st->nr || r->vm_id != r[1].vm_id;

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
		       "\"held\":%s,\"controller_pid\":%u,\"controller_comm\":",
		       first ? "" : ",", r->vcpu_id, state_name(r->state), r->state,
		       r->state & KVM_PACE_STATE_ARMED ? "true" : "false",
		       r->state & KVM_PACE_STATE_HELD ? "true" : "false", r->ctrl_pid);
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

static void status_text(struct status *st)
{
	char comm[32], ctrl[48], t1[48], t2[48];
	size_t i;

	if (!st->nr) {
		printf("no VM is paced\n");
		return;
	}
	for (i = 0; i < st->nr; i++) {
		const struct pace_rec *r = &st->recs[i];

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
	struct status st = { 0 };
	struct nl_sock *sk;
	struct nl_msg *msg;
	uint32_t pid;
	int family, r;
	bool json;

	r = parse_mon_opts(argc, argv, "status", &json, &pid);
	if (r)
		return r;
	r = pace_connect(&sk, &family, NULL, NULL);
	if (r)
		return r;

	msg = nlmsg_alloc();
	if (!msg || !genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, NLM_F_DUMP,
				 KVM_PACE_CMD_GET_VCPU, KVM_PACE_GENL_VERSION) ||
	    (pid && nla_put_u32(msg, KVM_PACE_A_VMM_PID, pid) < 0)) {
		vp_err("out of memory");
		r = VP_EXIT_ERROR;
		goto out;
	}
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, status_cb, &st);
	r = nl_send_auto(sk, msg);
	if (r >= 0)
		r = nl_recvmsgs_default(sk);
	if (r == -NLE_PERM) {
		r = perm_error("dump of paced VMs");
		goto out;
	}
	if (r < 0 || st.err) {
		vp_err("dump of paced VMs: %s", st.err ? strerror(-st.err) : nl_geterror(r));
		r = VP_EXIT_ERROR;
		goto out;
	}
	qsort(st.recs, st.nr, sizeof(*st.recs), rec_cmp);
	if (json)
		status_json(&st);
	else
		status_text(&st);
	r = fflush(stdout) ? VP_EXIT_ERROR : VP_EXIT_OK;
out:
	nlmsg_free(msg);
	nl_socket_free(sk);
	free(st.recs);
	return r;
}

/* ---- monitor --------------------------------------------------------------- */

struct seen_vm {
	uint32_t vm_id;
	uint64_t seq;
};

struct monitor {
	bool json;
	uint32_t pid;
	int family, ctrl_family;
	bool family_gone;
	uint64_t events, lost;
	struct seen_vm *vms;
	size_t nr_vms;
};

static const char *const event_names[] = {
	[KVM_PACE_CMD_ARM]	= "arm",
	[KVM_PACE_CMD_HOLD]	= "hold",
	[KVM_PACE_CMD_RELEASE]	= "release",
	[KVM_PACE_CMD_DISARM]	= "disarm",
};

/* Events carry a per-VM sequence number: a gap is events we did not get. */
static void check_seq(struct monitor *m, const struct pace_rec *r)
{
	struct seen_vm *v, *n;
	size_t i;

	for (i = 0; i < m->nr_vms; i++)
		if (m->vms[i].vm_id == r->vm_id)
			break;
	if (i == m->nr_vms) {
		n = realloc(m->vms, (m->nr_vms + 1) * sizeof(*n));
		if (!n)
			return;
		m->vms = n;
		m->vms[m->nr_vms++] = (struct seen_vm){ r->vm_id, r->seq };
		return;
	}
	v = &m->vms[i];
	if (r->seq > v->seq + 1) {
		vp_err("lost %" PRIu64 " events of VM %u", r->seq - v->seq - 1, r->vm_id);
		m->lost += r->seq - v->seq - 1;
	}
	v->seq = r->seq;
}

static void print_event(struct monitor *m, const struct pace_rec *r)
{
	const char *name = event_names[r->cmd];
	char t1[48], t2[48];
	struct timespec now;

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
			printf(",\"reason\":\"%s\"",
			       r->reason == KVM_PACE_DISARM_CLOSE ? "close" : "ioctl");
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
			printf("  (%s)", r->reason == KVM_PACE_DISARM_CLOSE ?
			       "controller closed the vCPU" : "by ioctl");
		printf("\n");
	}
}

static int monitor_cb(struct nl_msg *msg, void *arg)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct genlmsghdr *gh = nlmsg_data(nlh);
	struct monitor *m = arg;
	struct pace_rec r;

	if (nlh->nlmsg_type == m->ctrl_family) {
		struct nlattr *tb[CTRL_ATTR_MAX + 1];

		/* nlctrl: only our family going away matters */
		if (gh->cmd != CTRL_CMD_DELFAMILY ||
		    genlmsg_parse(nlh, 0, tb, CTRL_ATTR_MAX, NULL) < 0 ||
		    !tb[CTRL_ATTR_FAMILY_ID] ||
		    nla_get_u16(tb[CTRL_ATTR_FAMILY_ID]) != m->family)
			return NL_OK;
		m->family_gone = true;
		return NL_STOP;
	}
	if (nlh->nlmsg_type != m->family || gh->cmd < KVM_PACE_CMD_ARM ||
	    gh->cmd > KVM_PACE_CMD_DISARM)
		return NL_OK;
	if (parse_rec(msg, &r) < 0) {
		vp_err("malformed kvm_pace event ignored");
		return NL_OK;
	}
	check_seq(m, &r);
	if (m->pid && r.vmm_pid != m->pid)
		return NL_OK;
	m->events++;
	print_event(m, &r);
	return NL_OK;
}

int vp_cmd_monitor(int argc, char **argv)
{
	struct monitor m = { 0 };
	struct epoll_event ev;
	struct nl_sock *sk;
	int r, grp, notify, epfd = -1, sigfd = -1, rcvbuf = 4 << 20;
	sigset_t mask;

	r = parse_mon_opts(argc, argv, "monitor", &m.json, &m.pid);
	if (r)
		return r;
	r = pace_connect(&sk, &m.family, KVM_PACE_GENL_MCGRP_EVENTS, &grp);
	if (r)
		return r;
	m.ctrl_family = GENL_ID_CTRL;
	notify = genl_ctrl_resolve_grp(sk, "nlctrl", "notify");
	if (notify < 0) {
		vp_err("netlink group nlctrl/notify: %s", nl_geterror(notify));
		r = VP_EXIT_ERROR;
		goto out;
	}

	nl_socket_disable_seq_check(sk);
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, monitor_cb, &m);
	r = nl_socket_add_membership(sk, grp);
	if (r == -NLE_PERM) {
		r = perm_error("joining the kvm_pace events group");
		goto out;
	}
	if (r >= 0)
		r = nl_socket_add_membership(sk, notify);
	if (r < 0) {
		vp_err("netlink membership: %s", nl_geterror(r));
		r = VP_EXIT_ERROR;
		goto out;
	}
	/* Bursts of events while we print: ask for a large buffer, root may. */
	if (setsockopt(nl_socket_get_fd(sk), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
		       sizeof(rcvbuf)))
		nl_socket_set_buffer_size(sk, rcvbuf, 0);
	nl_socket_set_nonblocking(sk);

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sigfd < 0 || epfd < 0) {
		vp_err("epoll/signalfd: %s", strerror(errno));
		r = VP_EXIT_ERROR;
		goto out;
	}
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = sigfd };
	epoll_ctl(epfd, EPOLL_CTL_ADD, sigfd, &ev);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = nl_socket_get_fd(sk) };
	epoll_ctl(epfd, EPOLL_CTL_ADD, nl_socket_get_fd(sk), &ev);

	/* Tests wait for this line: from here on no event is missed. */
	vp_err("listening for kvm_pace events%s", m.json ? " (JSON lines)" : "");
	setvbuf(stdout, NULL, _IOLBF, 0);

	for (;;) {
		struct signalfd_siginfo si;

		if (epoll_wait(epfd, &ev, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			vp_err("epoll_wait: %s", strerror(errno));
			r = VP_EXIT_ERROR;
			break;
		}
		if (ev.data.fd == sigfd) {
			if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				vp_info("signal %u: %" PRIu64 " events", si.ssi_signo, m.events);
				r = VP_EXIT_OK;
				break;
			}
			continue;
		}
		r = nl_recvmsgs_default(sk);
		if (m.family_gone) {
			vp_err("the kvm_pace family is gone (KVM was unloaded): %" PRIu64
			       " events", m.events);
			r = VP_EXIT_OK;
			break;
		}
		if (r == -NLE_NOMEM) {
			/* ENOBUFS: the kernel dropped events; seq gaps tell how many */
			vp_err("receive buffer overrun: events were lost");
			continue;
		}
		if (r < 0 && r != -NLE_AGAIN) {
			vp_err("netlink: %s", nl_geterror(r));
			r = VP_EXIT_ERROR;
			break;
		}
	}
	if (m.lost)
		vp_err("%" PRIu64 " events lost in total", m.lost);
out:
	if (epfd >= 0)
		close(epfd);
	if (sigfd >= 0)
		close(sigfd);
	nl_socket_free(sk);
	free(m.vms);
	return r;
}
