/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Generic netlink family "kvm_pace": monitoring of KVM vCPU pacing.
 *
 * KVM_PACE_CMD_GET_VCPU dumps one message per vCPU of every VM that has a
 * vCPU with a pacing deadline armed.  The "events" multicast group carries
 * KVM_PACE_CMD_ARM, _HOLD, _RELEASE and _DISARM as they happen.  Both need
 * CAP_SYS_ADMIN.  See Documentation/virt/kvm/x86/pacing.rst.
 */
#ifndef _UAPI_LINUX_KVM_PACE_H
#define _UAPI_LINUX_KVM_PACE_H

#define KVM_PACE_GENL_NAME		"kvm_pace"
#define KVM_PACE_GENL_VERSION		1
#define KVM_PACE_GENL_MCGRP_EVENTS	"events"

enum kvm_pace_cmd {
	KVM_PACE_CMD_UNSPEC,
	KVM_PACE_CMD_GET_VCPU,		/* dump request and reply */
	KVM_PACE_CMD_ARM,		/* event: deadline set, vCPU running */
	KVM_PACE_CMD_HOLD,		/* event: vCPU reached its deadline */
	KVM_PACE_CMD_RELEASE,		/* event: held vCPU runs again */
	KVM_PACE_CMD_DISARM,		/* event: deadline cleared */

	__KVM_PACE_CMD_MAX,
	KVM_PACE_CMD_MAX = __KVM_PACE_CMD_MAX - 1
};

/* KVM_PACE_A_REASON of KVM_PACE_CMD_DISARM */
enum kvm_pace_disarm_reason {
	KVM_PACE_DISARM_IOCTL,		/* KVM_SET_PACE_DEADLINE with 0 */
	KVM_PACE_DISARM_CLOSE,		/* the controller closed the vCPU fd */
	KVM_PACE_DISARM_UNSUPPORTED,	/* the VM uses what pacing cannot freeze */
};

enum kvm_pace_attr {
	KVM_PACE_A_UNSPEC,
	KVM_PACE_A_PAD,
	KVM_PACE_A_VM_ID,		/* u32, unique among live VMs */
	KVM_PACE_A_VMM_PID,		/* u32, process that created the VM */
	KVM_PACE_A_CONTROLLER_PID,	/* u32, process that armed; 0 if none */
	KVM_PACE_A_NR_VCPUS,		/* u32, online vCPUs of the VM */
	KVM_PACE_A_VCPU_ID,		/* u32 */
	KVM_PACE_A_STATE,		/* u32, KVM_PACE_STATE_* */
	KVM_PACE_A_FLAGS,		/* u32, KVM_PACE_* of the deadline */
	KVM_PACE_A_TSC_KHZ,		/* u32, guest TSC frequency */
	KVM_PACE_A_GUEST_TSC,		/* u64, frozen value while frozen */
	KVM_PACE_A_DEADLINE,		/* u64, guest TSC; 0 when disarmed */
	KVM_PACE_A_HOLDS,		/* u64 */
	KVM_PACE_A_EXITS,		/* u64 */
	KVM_PACE_A_OVERSHOOT_LAST,	/* u64, guest TSC ticks */
	KVM_PACE_A_OVERSHOOT_MAX,	/* u64, guest TSC ticks */
	KVM_PACE_A_HELD_NS,		/* u64, host time held */
	KVM_PACE_A_FROZEN_NS,		/* u64, host time the VM was frozen */
	KVM_PACE_A_SEQ,			/* u64, per-VM event number, from 1 */
	KVM_PACE_A_OVERSHOOT,		/* u64, _HOLD: past this deadline */
	KVM_PACE_A_REASON,		/* u32, _DISARM: kvm_pace_disarm_reason */
	KVM_PACE_A_GUEST_NS,		/* u64, kvmclock at KVM_PACE_A_GUEST_TSC */

	__KVM_PACE_A_MAX,
	KVM_PACE_A_MAX = __KVM_PACE_A_MAX - 1
};

#endif /* _UAPI_LINUX_KVM_PACE_H */
