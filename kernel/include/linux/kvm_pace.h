/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Pacing of vCPUs to an external clock, see
 * Documentation/virt/kvm/x86/pacing.rst.
 */
#ifndef __LINUX_KVM_PACE_H
#define __LINUX_KVM_PACE_H

#include <linux/atomic.h>
#include <linux/hrtimer.h>
#include <linux/mutex.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <uapi/linux/kvm_pace.h>
#include <asm/kvm_pace.h>

struct kvm;
struct kvm_pace_state;
struct kvm_vcpu;

/*
 * Per-vCPU counters.  In the binary stats they follow struct kvm_vcpu_stat,
 * whose size built-in code depends on and which therefore cannot grow.
 */
struct kvm_pace_stats {
	u64 holds;			/* times the deadline was reached */
	u64 exits;			/* KVM_EXIT_PACE returned to userspace */
	u64 overshoot_last;		/* guest TSC ticks past the deadline */
	u64 overshoot_max;
	u64 held_ns;			/* host time spent held */
};

/* Descriptors for an arch's kvm_vcpu_stats_desc[], after its own. */
#define PACE_STATS_DESC(stat, type, unit, exp)				\
{									\
	STATS_DESC_COMMON(type, unit, KVM_STATS_BASE_POW10, exp, 1, 0),	\
	.offset = sizeof(struct kvm_vcpu_stat) +			\
		  offsetof(struct kvm_pace_stats, stat),		\
	.name = "pace_" #stat,						\
}

#define PACE_STATS_COUNTER(stat)					\
	PACE_STATS_DESC(stat, KVM_STATS_TYPE_CUMULATIVE, KVM_STATS_UNIT_NONE, 0)

/*
 * Per VM.  Guest time is VM-wide: it stands still from the moment every vCPU
 * is held at its deadline ("frozen") until the first vCPU runs again.
 */
struct kvm_pace_vm {
	struct mutex lock;		/* this and every vCPU's kvm_pace_vcpu */
	u32 id;				/* KVM_PACE_A_VM_ID */
	u64 seq;			/* events so far, KVM_PACE_A_SEQ */
	unsigned int nr_held;
	unsigned int nr_armed;		/* vCPUs with a deadline */
	bool frozen;
	/* vCPUs created while frozen (vcpu_idx >= this) wait for the thaw */
	unsigned int frozen_vcpus;
	u64 freeze_ns;			/* ktime_get_ns() when the VM froze */
	u64 frozen_ns;			/* host time spent frozen */
	struct kvm_pace_vm_arch arch;
};

struct kvm_pace_vcpu {
	struct kvm_vcpu *vcpu;
	wait_queue_head_t wq;		/* held vCPU thread and pollers */
	struct hrtimer timer;		/* host time of the deadline */
	fl_owner_t owner;		/* files of the process that armed pacing */
	pid_t owner_pid;		/* its tgid, for monitoring only */
	u64 deadline;			/* guest TSC, 0 when disarmed */
	u32 flags;			/* KVM_PACE_* of the last deadline */
	bool held;
	bool rearm;			/* program the timer before the next entry */
	bool run_locked;		/* vCPU thread only: held since its last run */
	u64 held_tsc;			/* guest TSC when the deadline was reached */
	u64 held_since;			/* ktime_get_ns() when held */
	struct kvm_pace_stats stats;
	atomic64_t irqs;		/* interrupts accepted, any thread */
	struct kvm_pace_vcpu_arch arch;
};

/* One reading of a vCPU's clock, on the vCPU's own thread. */
struct kvm_pace_clock {
	u64 guest_tsc;			/* as the guest reads it */
	u64 host_tsc;			/* raw host TSC of the reading */
	u64 ns;				/* ktime_get_ns() of the reading */
};

/* Arch hooks, called with kvm_pace_vm.lock held. */
void kvm_arch_pace_vm_init(struct kvm_pace_vm *pvm);
void kvm_arch_pace_vcpu_init(struct kvm_vcpu *vcpu, struct kvm_pace_vcpu *pv);
int kvm_arch_pace_check(struct kvm_vcpu *vcpu);
int kvm_arch_pace_start(struct kvm *kvm, struct kvm_vcpu *vcpu);
void kvm_arch_pace_stop(struct kvm *kvm);
void kvm_arch_pace_read_clock(struct kvm_vcpu *vcpu, struct kvm_pace_clock *c);
u64 kvm_arch_pace_guest_tsc(struct kvm_vcpu *vcpu);
u64 kvm_arch_pace_guest_ns(struct kvm *kvm, u64 guest_tsc);
void kvm_arch_pace_clock_scale(struct kvm *kvm, u32 *mul, s8 *shift);
u32 kvm_arch_pace_tsc_khz(struct kvm_vcpu *vcpu);
void kvm_arch_pace_arm_timer(struct kvm_vcpu *vcpu, u64 guest_tsc);
void kvm_arch_pace_freeze(struct kvm *kvm, const struct kvm_pace_clock *c,
			  u64 guest_tsc);
void kvm_arch_pace_thaw(struct kvm *kvm, struct kvm_vcpu *vcpu);
void kvm_arch_pace_vcpu_hold(struct kvm_vcpu *vcpu,
			     const struct kvm_pace_clock *c);
void kvm_arch_pace_vcpu_resume(struct kvm_vcpu *vcpu);
bool kvm_arch_pace_irq_pending(struct kvm_vcpu *vcpu);

int kvm_pace_vcpu_run(struct kvm_vcpu *vcpu);

/* Called with kvm_pace_vm.lock held. */
void kvm_pace_fill_state(struct kvm_vcpu *vcpu, struct kvm_pace_state *st);

/* Monitoring over generic netlink, pace_netlink.c. */
int kvm_pace_genl_init(void);
void kvm_pace_genl_exit(void);
void kvm_pace_notify(struct kvm_vcpu *vcpu, enum kvm_pace_cmd cmd,
		     const struct kvm_pace_clock *c, u64 arg);

#endif
