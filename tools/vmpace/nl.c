// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel's "kvm_pace" generic netlink family, through libnl-genl: the
 * dump of KVM_PACE_CMD_GET_VCPU (one message per vCPU of every VM with
 * pacing armed), and the "events" group, joined with nlctrl's "notify"
 * group to see the family go away when KVM is unloaded, read from the same
 * kind of epoll loop as the pacing session: the netlink socket and a
 * signalfd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/genetlink.h>
#include <linux/kvm.h>
#include <linux/kvm_pace.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#include "nl.h"
#include "vmpace.h"

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
	[KVM_PACE_A_GUEST_NS]		= { .type = NLA_U64 },
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
	U64(KVM_PACE_A_GUEST_NS, guest_ns);
#undef U32
#undef U64
	return 0;
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

struct dump {
	struct pace_rec *recs;
	size_t nr, alloc;
	int err;
};

static int dump_cb(struct nl_msg *msg, void *arg)
{
	struct dump *d = arg;
	struct pace_rec *n;

	if (d->nr == d->alloc) {
		d->alloc = d->alloc ? 2 * d->alloc : 16;
		n = realloc(d->recs, d->alloc * sizeof(*n));
		if (!n) {
			d->err = -ENOMEM;
			return NL_STOP;
		}
		d->recs = n;
	}
	if (parse_rec(msg, &d->recs[d->nr]) < 0) {
		d->err = -EPROTO;
		return NL_STOP;
	}
	d->nr++;
	return NL_OK;
}

static int rec_cmp(const void *a, const void *b)
{
	const struct pace_rec *x = a, *y = b;

	if (x->vm_id != y->vm_id)
		return x->vm_id < y->vm_id ? -1 : 1;
	return x->vcpu_id < y->vcpu_id ? -1 : x->vcpu_id > y->vcpu_id;
}

int vp_nl_dump(uint32_t pid, struct pace_rec **recs, size_t *nr)
{
	struct dump d = { 0 };
	struct nl_sock *sk;
	struct nl_msg *msg;
	int family, r;

	*recs = NULL;
	*nr = 0;
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
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, dump_cb, &d);
	r = nl_send_auto(sk, msg);
	if (r >= 0)
		r = nl_recvmsgs_default(sk);
	if (r == -NLE_PERM) {
		r = perm_error("dump of paced VMs");
		goto out;
	}
	if (r < 0 || d.err) {
		vp_err("dump of paced VMs: %s", d.err ? strerror(-d.err) : nl_geterror(r));
		r = VP_EXIT_ERROR;
		goto out;
	}
	qsort(d.recs, d.nr, sizeof(*d.recs), rec_cmp);
	*recs = d.recs;
	*nr = d.nr;
	d.recs = NULL;
	r = VP_EXIT_OK;
out:
	nlmsg_free(msg);
	nl_socket_free(sk);
	free(d.recs);
	return r;
}

struct seen_vm {
	uint32_t vm_id;
	uint64_t seq;
};

struct listener {
	void (*fn)(void *arg, const struct pace_rec *r);
	void *arg;
	int family, ctrl_family;
	bool family_gone;
	uint64_t events, lost;
	struct seen_vm *vms;
	size_t nr_vms;
};

/* Events carry a per-VM sequence number: a gap is events we did not get. */
static void check_seq(struct listener *l, const struct pace_rec *r)
{
	struct seen_vm *v, *n;
	size_t i;

	for (i = 0; i < l->nr_vms; i++)
		if (l->vms[i].vm_id == r->vm_id)
			break;
	if (i == l->nr_vms) {
		n = realloc(l->vms, (l->nr_vms + 1) * sizeof(*n));
		if (!n)
			return;
		l->vms = n;
		l->vms[l->nr_vms++] = (struct seen_vm){ r->vm_id, r->seq };
		return;
	}
	v = &l->vms[i];
	if (r->seq > v->seq + 1) {
		vp_err("lost %" PRIu64 " events of VM %u", r->seq - v->seq - 1, r->vm_id);
		l->lost += r->seq - v->seq - 1;
	}
	v->seq = r->seq;
}

static int listen_cb(struct nl_msg *msg, void *arg)
{
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct genlmsghdr *gh = nlmsg_data(nlh);
	struct listener *l = arg;
	struct pace_rec r;

	if (nlh->nlmsg_type == l->ctrl_family) {
		struct nlattr *tb[CTRL_ATTR_MAX + 1];

		/* nlctrl: only our family going away matters */
		if (gh->cmd != CTRL_CMD_DELFAMILY ||
		    genlmsg_parse(nlh, 0, tb, CTRL_ATTR_MAX, NULL) < 0 ||
		    !tb[CTRL_ATTR_FAMILY_ID] ||
		    nla_get_u16(tb[CTRL_ATTR_FAMILY_ID]) != l->family)
			return NL_OK;
		l->family_gone = true;
		return NL_STOP;
	}
	if (nlh->nlmsg_type != l->family || gh->cmd < KVM_PACE_CMD_ARM ||
	    gh->cmd > KVM_PACE_CMD_DISARM)
		return NL_OK;
	if (parse_rec(msg, &r) < 0) {
		vp_err("malformed kvm_pace event ignored");
		return NL_OK;
	}
	check_seq(l, &r);
	l->fn(l->arg, &r);
	return NL_OK;
}

int vp_nl_listen(void (*fn)(void *arg, const struct pace_rec *r), void (*ready)(void *arg),
		 void *arg, uint64_t *lost)
{
	struct listener l = { .fn = fn, .arg = arg };
	struct epoll_event ev;
	struct nl_sock *sk;
	int r, grp, notify, epfd = -1, sigfd = -1, rcvbuf = 4 << 20;
	sigset_t mask;

	*lost = 0;
	r = pace_connect(&sk, &l.family, KVM_PACE_GENL_MCGRP_EVENTS, &grp);
	if (r)
		return r;
	l.ctrl_family = GENL_ID_CTRL;
	notify = genl_ctrl_resolve_grp(sk, "nlctrl", "notify");
	if (notify < 0) {
		vp_err("netlink group nlctrl/notify: %s", nl_geterror(notify));
		r = VP_EXIT_ERROR;
		goto out;
	}

	nl_socket_disable_seq_check(sk);
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, listen_cb, &l);
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
	ready(arg);

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
				vp_info("signal %u", si.ssi_signo);
				r = VP_EXIT_OK;
				break;
			}
			continue;
		}
		r = nl_recvmsgs_default(sk);
		if (l.family_gone) {
			vp_err("the kvm_pace family is gone (KVM was unloaded)");
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
	*lost = l.lost;
out:
	if (epfd >= 0)
		close(epfd);
	if (sigfd >= 0)
		close(sigfd);
	nl_socket_free(sk);
	free(l.vms);
	return r;
}
