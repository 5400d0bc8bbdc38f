/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Hooks of vCPU pacing in the x86 clock code, see pace.c.  Each is a no-op
 * for a VM that was never paced.
 */
#ifndef ARCH_X86_KVM_PACE_H
#define ARCH_X86_KVM_PACE_H

#include <linux/kvm_host.h>
#include <linux/kvm_pace.h>

struct kvm_lapic;

/* x86.c, for pace.c */
u64 kvm_pace_clock_base_ns(void);
bool kvm_pace_tsc_unstable(void);
void kvm_pace_time_scale(u32 khz, u32 *mul, s8 *shift);
void kvm_pace_start_clock_update(struct kvm *kvm);
void kvm_pace_end_clock_update(struct kvm *kvm);
void kvm_pace_write_tsc_offset(struct kvm_vcpu *vcpu, u64 l1_offset);
void kvm_pace_shift_tsc_refs(struct kvm *kvm, u64 ticks, u64 ns);

/* lapic.c, for pace.c */
void kvm_lapic_pace_stop_timer(struct kvm_vcpu *vcpu,
			       struct kvm_pace_vcpu_arch *pa);
void kvm_lapic_pace_start_timer(struct kvm_vcpu *vcpu,
				struct kvm_pace_vcpu_arch *pa);
bool kvm_lapic_pace_tmcct(struct kvm_lapic *apic, u32 *tmcct);

/* pace.c */
void __kvm_pace_pvclock(struct kvm_vcpu *vcpu);
bool __kvm_pace_get_clock(struct kvm *kvm, struct kvm_clock_data *data);
void __kvm_pace_set_clock(struct kvm *kvm, u64 ns);
u64 __kvm_pace_tsc_offset(struct kvm_vcpu *vcpu);
void __kvm_pace_tsc_written(struct kvm_vcpu *vcpu, bool new_generation);
void __kvm_pace_tsc_khz_changed(struct kvm_vcpu *vcpu);
u64 __kvm_pace_load_tsc(struct kvm_vcpu *vcpu, u64 tsc);
bool __kvm_pace_defer_lapic_timer(struct kvm_vcpu *vcpu, u32 count_reg,
				  u32 count);
bool __kvm_pace_pit_hold(struct kvm *kvm, s64 interval);
u64 kvm_pace_vcpu_tsc(struct kvm_vcpu *vcpu);
u64 kvm_pace_ticks_to_ns(struct kvm_vcpu *vcpu, u64 ticks);

/* Whether kvmclock is the paced clock, a function of the guest TSC. */
static inline bool kvm_pace_owns_clock(struct kvm *kvm)
{
	struct kvm_pace_vm *pvm = READ_ONCE(kvm->pace);

	return unlikely(pvm) && READ_ONCE(pvm->arch.clock_active);
}

/* kvm_guest_time_update(): the pvclock of a paced VM. */
static inline void kvm_pace_pvclock(struct kvm_vcpu *vcpu)
{
	if (kvm_pace_owns_clock(vcpu->kvm))
		__kvm_pace_pvclock(vcpu);
}

/* KVM_GET_CLOCK and get_kvmclock_ns(); false if not paced. */
static inline bool kvm_pace_get_clock(struct kvm *kvm,
				      struct kvm_clock_data *data)
{
	return kvm_pace_owns_clock(kvm) && __kvm_pace_get_clock(kvm, data);
}

/* KVM_SET_CLOCK, within the pvclock update. */
static inline void kvm_pace_set_clock(struct kvm *kvm, u64 ns)
{
	if (kvm_pace_owns_clock(kvm))
		__kvm_pace_set_clock(kvm, ns);
}

/* Host-initiated reads and writes of the TSC (MSR, offset attribute). */
static inline u64 kvm_pace_read_tsc(struct kvm_vcpu *vcpu, u64 tsc)
{
	return unlikely(vcpu->pace) ? kvm_pace_vcpu_tsc(vcpu) : tsc;
}

static inline u64 kvm_pace_tsc_offset(struct kvm_vcpu *vcpu)
{
	return unlikely(vcpu->pace) ? __kvm_pace_tsc_offset(vcpu) :
				      vcpu->arch.l1_tsc_offset;
}

/*
 * After KVM set the TSC as userspace asked: @new_generation if KVM did not
 * synchronise it with the other vCPUs' (a TSC value of its own).
 */
static inline void kvm_pace_tsc_written(struct kvm_vcpu *vcpu,
					bool new_generation)
{
	if (unlikely(vcpu->pace))
		__kvm_pace_tsc_written(vcpu, new_generation);
}

static inline void kvm_pace_tsc_khz_changed(struct kvm_vcpu *vcpu)
{
	if (unlikely(vcpu->pace))
		__kvm_pace_tsc_khz_changed(vcpu);
}

/* kvm_arch_vcpu_load() on a host with an unstable TSC. */
static inline u64 kvm_pace_load_tsc(struct kvm_vcpu *vcpu, u64 tsc)
{
	return unlikely(vcpu->pace) ? __kvm_pace_load_tsc(vcpu, tsc) : tsc;
}

/*
 * A LAPIC timer started (@count_reg, holding @count) or restarted (0) while
 * the vCPU is held starts at the resume.
 */
static inline bool kvm_pace_defer_lapic_timer(struct kvm_vcpu *vcpu,
					      u32 count_reg, u32 count)
{
	return unlikely(vcpu->pace) &&
	       __kvm_pace_defer_lapic_timer(vcpu, count_reg, count);
}

/*
 * lapic.c: the local APIC accepted a fixed or lowest-priority interrupt for
 * the vCPU (KVM_GET_PACE_STATE's irqs).  Any thread, no lock; vcpu->pace
 * is published with smp_store_release() and freed after the arch's
 * interrupt sources of the vCPU are gone (kvm_vcpu_destroy()).
 */
static inline void kvm_pace_irq_accepted(struct kvm_vcpu *vcpu)
{
	/* pairs with the smp_store_release() in pace_vcpu_get() */
	struct kvm_pace_vcpu *pv = smp_load_acquire(&vcpu->pace);

	if (unlikely(pv)) {
		/*
		 * The vector is in the IRR (or PIR) before the count moves:
		 * pairs with the smp_rmb() in kvm_pace_fill_state(), which
		 * reads the count first.
		 */
		smp_mb__before_atomic();
		atomic64_inc(&pv->irqs);
	}
}

/* The in-kernel PIT's timer, started while the VM is frozen, waits. */
static inline bool kvm_pace_pit_hold(struct kvm *kvm, s64 interval)
{
	return unlikely(READ_ONCE(kvm->pace)) && __kvm_pace_pit_hold(kvm, interval);
}

#endif
