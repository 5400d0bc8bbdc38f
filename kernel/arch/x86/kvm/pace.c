// SPDX-License-Identifier: GPL-2.0-only
/*
 * x86 side of vCPU pacing: the deadline is a guest TSC value, and freezing
 * guest time means moving the TSC offset, kvmclock and the LAPIC timer back
 * by the host time the VM spent with every vCPU held.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kvm_host.h>
#include <linux/kvm_pace.h>
#include <linux/math64.h>

#include "lapic.h"
#include "x86.h"

/* Guest TSC of @vcpu as the guest would read it now, or when it froze. */
void kvm_arch_pace_read_clock(struct kvm_vcpu *vcpu, struct kvm_pace_clock *c)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	u64 host_tsc;

	c->host_tsc = rdtsc();
	c->ns = ktime_get_ns();
	host_tsc = c->host_tsc;
	if (pvm) {
		if (pvm->frozen)
			host_tsc = pvm->freeze_host_tsc;
		/* Frozen time not yet folded into this vCPU's TSC offset. */
		if (pv)
			host_tsc -= pvm->frozen_tsc - pv->applied_tsc;
	}
	c->guest_tsc = kvm_read_l1_tsc(vcpu, host_tsc);
}

u32 kvm_arch_pace_tsc_khz(struct kvm_vcpu *vcpu)
{
	return vcpu->arch.virtual_tsc_khz;
}

void kvm_arch_pace_arm_timer(struct kvm_vcpu *vcpu, u64 guest_tsc)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;
	u32 khz = vcpu->arch.virtual_tsc_khz;
	u64 ns = 0;

	/*
	 * The timer only gets the vCPU out of the guest; whether the deadline
	 * has been reached is decided on the guest TSC before every entry, so
	 * rounding here can delay the stop but never make it early.
	 */
	if (khz)
		ns = mul_u64_u32_div(pv->deadline - guest_tsc, NSEC_PER_MSEC, khz);
	hrtimer_start(&pv->timer, ktime_add_ns(ktime_get(), ns),
		      HRTIMER_MODE_ABS_HARD);
}

void kvm_arch_pace_freeze(struct kvm *kvm, const struct kvm_pace_clock *c)
{
	struct kvm_pace_vm *pvm = kvm->pace;

	pvm->freeze_host_tsc = c->host_tsc;
	pvm->freeze_ns = c->ns;
}

void kvm_arch_pace_thaw(struct kvm *kvm)
{
	struct kvm_pace_vm *pvm = kvm->pace;
	u64 cycles = rdtsc() - pvm->freeze_host_tsc;
	u64 ns = ktime_get_ns() - pvm->freeze_ns;

	pvm->frozen_tsc += cycles;
	pvm->frozen_ns += ns;
	kvm_pace_shift_kvmclock(kvm, cycles, ns);
}

/* The vCPU reached its deadline: its LAPIC timer must not fire meanwhile. */
void kvm_arch_pace_vcpu_hold(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;
	struct kvm_lapic *apic = vcpu->arch.apic;

	if (!lapic_in_kernel(vcpu) || pv->lapic_paused)
		return;

	if (hrtimer_cancel(&apic->lapic_timer.timer)) {
		pv->lapic_expires = hrtimer_get_expires(&apic->lapic_timer.timer);
		pv->lapic_paused = true;
	}
}

/*
 * The vCPU is about to run (or halt) again: fold the VM's frozen time it has
 * not seen yet into its TSC offset and LAPIC timer, then restart the timer.
 * kvmclock was moved once for the whole VM by kvm_arch_pace_thaw().
 */
void kvm_arch_pace_vcpu_resume(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	struct kvm_lapic *apic = vcpu->arch.apic;
	u64 cycles = pvm->frozen_tsc - pv->applied_tsc;
	u64 ns = pvm->frozen_ns - pv->applied_ns;

	if (cycles || ns) {
		kvm_pace_shift_tsc(vcpu, cycles, ns);
		pv->applied_tsc = pvm->frozen_tsc;
		pv->applied_ns = pvm->frozen_ns;
		pv->rearm = true;

		if (lapic_in_kernel(vcpu)) {
			apic->lapic_timer.target_expiration =
				ktime_add_ns(apic->lapic_timer.target_expiration, ns);
			if (pv->lapic_paused)
				pv->lapic_expires = ktime_add_ns(pv->lapic_expires, ns);
			/* The hypervisor timer was programmed in host TSC. */
			if (kvm_lapic_hv_timer_in_use(vcpu))
				kvm_lapic_restart_hv_timer(vcpu);
		}
	}

	if (pv->lapic_paused) {
		hrtimer_start(&apic->lapic_timer.timer, pv->lapic_expires,
			      HRTIMER_MODE_ABS_HARD);
		pv->lapic_paused = false;
	}
}
