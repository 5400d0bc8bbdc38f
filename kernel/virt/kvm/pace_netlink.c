// SPDX-License-Identifier: GPL-2.0-only
/*
 * Monitoring of vCPU pacing over generic netlink (family "kvm_pace"): a
 * dump of the vCPUs of every VM with pacing armed, and an "events" group
 * with arm, hold, release and disarm.
 *
 * Both are limited to CAP_SYS_ADMIN: they show every VM on the host, whoever
 * runs it, with the pids of its VMM and controller and how its guest time
 * progresses, which is what KVM's debugfs statistics (readable by root
 * only) show.  Controlling a VM's pacing needs ptrace rights on its VMM
 * instead, see pace.c.
 *
 * See Documentation/virt/kvm/x86/pacing.rst.
 */
#include <linux/kvm_host.h>
#include <linux/kvm_pace.h>
#include <net/genetlink.h>

static const struct nla_policy pace_get_policy[] = {
	[KVM_PACE_A_VMM_PID]	= { .type = NLA_U32 },
};

static int pace_nl_get_start(struct netlink_callback *cb);
static int pace_nl_get_dump(struct sk_buff *skb, struct netlink_callback *cb);

static const struct genl_ops pace_nl_ops[] = {
	{
		.cmd		= KVM_PACE_CMD_GET_VCPU,
		.start		= pace_nl_get_start,
		.dumpit		= pace_nl_get_dump,
		.policy		= pace_get_policy,
		.maxattr	= ARRAY_SIZE(pace_get_policy) - 1,
	},
};

enum { PACE_NL_MCGRP_EVENTS };

static const struct genl_multicast_group pace_nl_mcgrps[] = {
	[PACE_NL_MCGRP_EVENTS] = {
		.name	= KVM_PACE_GENL_MCGRP_EVENTS,
		.flags	= GENL_MCAST_CAP_SYS_ADMIN,
	},
};

static struct genl_family pace_nl_family = {
	.name		= KVM_PACE_GENL_NAME,
	.version	= KVM_PACE_GENL_VERSION,
	.module		= THIS_MODULE,
	.parallel_ops	= true,
	.ops		= pace_nl_ops,
	.n_ops		= ARRAY_SIZE(pace_nl_ops),
	.resv_start_op	= KVM_PACE_CMD_GET_VCPU + 1,
	.mcgrps		= pace_nl_mcgrps,
	.n_mcgrps	= ARRAY_SIZE(pace_nl_mcgrps),
};

/* Attributes of the VM and of the vCPU common to dumps and events. */
static int pace_nl_put_vcpu(struct sk_buff *skb, struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;
	struct kvm *kvm = vcpu->kvm;

	if (nla_put_u32(skb, KVM_PACE_A_VM_ID, kvm->pace->id) ||
	    nla_put_u32(skb, KVM_PACE_A_VMM_PID, kvm->userspace_pid) ||
	    nla_put_u32(skb, KVM_PACE_A_NR_VCPUS,
			atomic_read(&kvm->online_vcpus)) ||
	    nla_put_u32(skb, KVM_PACE_A_VCPU_ID, vcpu->vcpu_id) ||
	    nla_put_u32(skb, KVM_PACE_A_CONTROLLER_PID, pv->owner_pid) ||
	    nla_put_u32(skb, KVM_PACE_A_FLAGS, pv->flags) ||
	    nla_put_u32(skb, KVM_PACE_A_TSC_KHZ, kvm_arch_pace_tsc_khz(vcpu)) ||
	    nla_put_u64_64bit(skb, KVM_PACE_A_DEADLINE, pv->deadline,
			      KVM_PACE_A_PAD))
		return -EMSGSIZE;
	return 0;
}

static int pace_nl_put_state(struct sk_buff *skb, struct kvm_vcpu *vcpu)
{
	struct kvm_pace_state st = {};

	kvm_pace_fill_state(vcpu, &st);

	if (pace_nl_put_vcpu(skb, vcpu) ||
	    nla_put_u32(skb, KVM_PACE_A_STATE, st.state) ||
	    nla_put_u64_64bit(skb, KVM_PACE_A_GUEST_TSC, st.guest_tsc,
			      KVM_PACE_A_PAD) ||
	    nla_put_u64_64bit(skb, KVM_PACE_A_GUEST_NS, st.guest_ns,
			      KVM_PACE_A_PAD) ||
	    nla_put_u64_64bit(skb, KVM_PACE_A_HOLDS, st.holds,
			      KVM_PACE_A_PAD) ||
	    nla_put_u64_64bit(skb, KVM_PACE_A_EXITS, st.exits,
			      KVM_PACE_A_PAD) ||
	    nla_put_u64_64bit(skb, KVM_PACE_A_OVERSHOOT_LAST,
			      st.overshoot_last, KVM_PACE_A_PAD) ||
	    nla_put_u64_64bit(skb, KVM_PACE_A_OVERSHOOT_MAX,
			      st.overshoot_max, KVM_PACE_A_PAD) ||
	    nla_put_u64_64bit(skb, KVM_PACE_A_HELD_NS, st.held_ns,
			      KVM_PACE_A_PAD) ||
	    nla_put_u64_64bit(skb, KVM_PACE_A_FROZEN_NS, st.frozen_ns,
			      KVM_PACE_A_PAD))
		return -EMSGSIZE;
	return 0;
}

static int pace_nl_get_start(struct netlink_callback *cb)
{
	/* The family is not netns aware: this is the initial user ns. */
	if (!netlink_capable(cb->skb, CAP_SYS_ADMIN)) {
		NL_SET_ERR_MSG(cb->extack, "kvm_pace: CAP_SYS_ADMIN required");
		return -EPERM;
	}
	return 0;
}

/* Where a dump that did not fit in one skb goes on. */
struct pace_nl_dump_ctx {
	unsigned long vm;		/* index in vm_list */
	unsigned long vcpu;		/* vCPU index in that VM */
};

static bool pace_vm_armed(struct kvm *kvm)
{
	struct kvm_vcpu *vcpu;
	unsigned long i;

	kvm_for_each_vcpu(i, vcpu, kvm)
		if (vcpu->pace && vcpu->pace->deadline)
			return true;
	return false;
}

/* Returns -EMSGSIZE when the skb is full, with ctx->vcpu where to go on. */
static int pace_nl_dump_vm(struct sk_buff *skb, struct netlink_callback *cb,
			   struct kvm *kvm, struct pace_nl_dump_ctx *ctx)
{
	struct kvm_vcpu *vcpu;
	unsigned long i;
	void *hdr;
	int r = 0;

	kvm_for_each_vcpu(i, vcpu, kvm) {
		if (i < ctx->vcpu || !vcpu->pace)
			continue;

		hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid,
				  cb->nlh->nlmsg_seq, &pace_nl_family,
				  NLM_F_MULTI, KVM_PACE_CMD_GET_VCPU);
		if (!hdr) {
			r = -EMSGSIZE;
			break;
		}
		r = pace_nl_put_state(skb, vcpu);
		if (r) {
			genlmsg_cancel(skb, hdr);
			break;
		}
		genlmsg_end(skb, hdr);
	}
	if (r)
		ctx->vcpu = i;
	return r;
}

/*
 * The next VM with pacing state from position @*idx on vm_list, with a
 * reference, so that kvm_lock is not held while the VM's pacing lock is
 * waited for; @*idx moves past it.
 */
static struct kvm *pace_nl_next_vm(unsigned long *idx)
{
	struct kvm *kvm, *found = NULL;
	unsigned long i = 0;

	mutex_lock(&kvm_lock);
	list_for_each_entry(kvm, &vm_list, vm_list) {
		if (i++ < *idx)
			continue;
		if (smp_load_acquire(&kvm->pace) && /* see pace_vm_get() */
		    kvm_get_kvm_safe(kvm)) {
			found = kvm;
			break;
		}
	}
	mutex_unlock(&kvm_lock);
	*idx = i;
	return found;
}

static int pace_nl_get_dump(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct pace_nl_dump_ctx *ctx = (void *)cb->ctx;
	const struct genl_info *info = genl_info_dump(cb);
	struct nlattr *pid_attr = info->attrs[KVM_PACE_A_VMM_PID];
	unsigned long idx = ctx->vm;
	struct kvm_pace_vm *pvm;
	struct kvm *kvm;
	int r = 0;

	BUILD_BUG_ON(sizeof(*ctx) > sizeof(cb->ctx));

	while ((kvm = pace_nl_next_vm(&idx))) {
		pvm = kvm->pace;
		if (!pid_attr || nla_get_u32(pid_attr) == kvm->userspace_pid) {
			mutex_lock(&pvm->lock);
			if (pace_vm_armed(kvm))
				r = pace_nl_dump_vm(skb, cb, kvm, ctx);
			mutex_unlock(&pvm->lock);
		}
		kvm_put_kvm(kvm);
		if (r)
			break;
		ctx->vm = idx;
		ctx->vcpu = 0;
	}

	/* A vCPU that does not fit in an empty skb would loop forever. */
	if (r && !skb->len)
		return r;
	return skb->len;
}

/* 8 u32 and 5 u64 attributes at most, see below */
#define PACE_NL_EVENT_SIZE	(8 * nla_total_size(sizeof(u32)) + \
				 5 * nla_total_size_64bit(sizeof(u64)))

/*
 * Called with kvm_pace_vm.lock held, so events of one VM go out in the
 * order they happen; @c is the clock reading of a hold, NULL for the
 * vCPU's guest time as KVM_GET_PACE_STATE reports it.  The sequence number
 * advances whether anyone listens or not, so that a listener can tell it
 * lost events.
 */
void kvm_pace_notify(struct kvm_vcpu *vcpu, enum kvm_pace_cmd cmd,
		     const struct kvm_pace_clock *c, u64 arg)
{
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	struct kvm_pace_vcpu *pv = vcpu->pace;
	struct sk_buff *skb;
	u64 seq = ++pvm->seq;
	u64 guest_tsc;
	void *hdr;

	if (!genl_has_listeners(&pace_nl_family, &init_net,
				PACE_NL_MCGRP_EVENTS))
		return;

	if (c)
		guest_tsc = c->guest_tsc;
	else if (pv->held)
		guest_tsc = pv->held_tsc;
	else
		guest_tsc = kvm_arch_pace_guest_tsc(vcpu);

	skb = genlmsg_new(PACE_NL_EVENT_SIZE, GFP_KERNEL);
	if (!skb)
		return;

	hdr = genlmsg_put(skb, 0, 0, &pace_nl_family, 0, cmd);
	if (!hdr)
		goto err;

	if (pace_nl_put_vcpu(skb, vcpu) ||
	    nla_put_u64_64bit(skb, KVM_PACE_A_SEQ, seq, KVM_PACE_A_PAD) ||
	    nla_put_u64_64bit(skb, KVM_PACE_A_GUEST_TSC, guest_tsc,
			      KVM_PACE_A_PAD) ||
	    nla_put_u64_64bit(skb, KVM_PACE_A_GUEST_NS,
			      kvm_arch_pace_guest_ns(vcpu->kvm, guest_tsc),
			      KVM_PACE_A_PAD))
		goto err;

	switch (cmd) {
	case KVM_PACE_CMD_HOLD:
		if (nla_put_u64_64bit(skb, KVM_PACE_A_OVERSHOOT, arg,
				      KVM_PACE_A_PAD))
			goto err;
		break;
	case KVM_PACE_CMD_RELEASE:
		if (nla_put_u64_64bit(skb, KVM_PACE_A_HELD_NS, arg,
				      KVM_PACE_A_PAD))
			goto err;
		break;
	case KVM_PACE_CMD_DISARM:
		if (nla_put_u32(skb, KVM_PACE_A_REASON, arg))
			goto err;
		break;
	default:
		break;
	}

	genlmsg_end(skb, hdr);
	genlmsg_multicast(&pace_nl_family, skb, 0, PACE_NL_MCGRP_EVENTS,
			  GFP_KERNEL);
	return;
err:
	nlmsg_free(skb);
}

int kvm_pace_genl_init(void)
{
	return genl_register_family(&pace_nl_family);
}

/*
 * Listeners may still be subscribed: unregistering removes them from the
 * group and announces CTRL_CMD_DELFAMILY on nlctrl's "notify" group.
 */
void kvm_pace_genl_exit(void)
{
	genl_unregister_family(&pace_nl_family);
}
