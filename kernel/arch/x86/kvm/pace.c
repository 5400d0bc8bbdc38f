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

/*
 * On a host whose TSC is unstable, kvm_arch_vcpu_load() rewrites the TSC
 * offset every time the vCPU thread is scheduled in, so that the guest TSC
 * goes on from last_guest_tsc, and TSC catchup moves it forward again at the
 * next entry; a held vCPU sleeps and is scheduled in again and again.  The
 * offset it was held with is therefore kept, and it is the vCPU's clock
 * until it runs again, unless userspace wrote the TSC meanwhile (which sets
 * last_guest_tsc as well).
 */
static bool pace_offset_kept(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;

	return pv && pv->held_offset_valid &&
	       vcpu->arch.last_guest_tsc == pv->held_tsc;
}

/* Guest TSC of @vcpu as the guest would read it now, or when it froze. */
void kvm_arch_pace_read_clock(struct kvm_vcpu *vcpu, struct kvm_pace_clock *c)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	u64 ratio = vcpu->arch.l1_tsc_scaling_ratio;
	u64 host_tsc, ns;

	c->host_tsc = rdtsc();
	c->ns = ktime_get_ns();
	host_tsc = c->host_tsc;
	ns = c->ns;
	if (pvm) {
		if (pvm->frozen) {
			host_tsc = pvm->freeze_host_tsc;
			ns = pvm->freeze_ns;
		}
		/* Frozen time not yet folded into this vCPU's clocks. */
		if (pv) {
			host_tsc -= pvm->frozen_tsc - pv->applied_tsc;
			ns -= pvm->frozen_ns - pv->applied_ns;
		}
	}

	if (pace_offset_kept(vcpu)) {
		c->guest_tsc = pv->held_offset + kvm_scale_tsc(host_tsc, ratio);
		return;
	}
	c->guest_tsc = vcpu->arch.l1_tsc_offset + kvm_scale_tsc(host_tsc, ratio);
	/* The TSC the vCPU would enter the guest with. */
	c->guest_tsc = max(c->guest_tsc, kvm_pace_catchup_tsc(vcpu, c->ns - ns));
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

/*
 * The vCPU reached its deadline at @c: keep its TSC offset (see
 * pace_offset_kept()), and its LAPIC timer must not fire meanwhile.
 */
void kvm_arch_pace_vcpu_hold(struct kvm_vcpu *vcpu,
			     const struct kvm_pace_clock *c)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;
	struct kvm_lapic *apic = vcpu->arch.apic;

	/*
	 * The offset of the reading itself: the vCPU thread may have been
	 * scheduled in anew since.  Time was not frozen when a vCPU got held,
	 * and the vCPU had applied all of the frozen time before.
	 */
	pv->held_offset = c->guest_tsc -
			  kvm_scale_tsc(c->host_tsc, vcpu->arch.l1_tsc_scaling_ratio);
	pv->held_offset_valid = true;
	/* Where an unstable-TSC vcpu_load() lets the guest TSC go on from. */
	vcpu->arch.last_guest_tsc = c->guest_tsc;

	if (!lapic_in_kernel(vcpu) || pv->lapic_paused)
		return;

	if (hrtimer_cancel(&apic->lapic_timer.timer)) {
		pv->lapic_expires = hrtimer_get_expires(&apic->lapic_timer.timer);
		pv->lapic_paused = true;
	}
}

/*
 * The vCPU is about to run (or halt) again: give it back the TSC offset it
 * was held with, moved back by the VM's frozen time it has not applied yet,
 * move its LAPIC timer by the same time, then restart the timer.  kvmclock
 * was moved once for the whole VM by kvm_arch_pace_thaw().
 */
void kvm_arch_pace_vcpu_resume(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	struct kvm_lapic *apic = vcpu->arch.apic;
	u64 cycles = pvm->frozen_tsc - pv->applied_tsc;
	u64 ns = pvm->frozen_ns - pv->applied_ns;
	u64 offset;

	if (!pv->held_offset_valid && !cycles && !ns)
		goto restart;

	offset = pace_offset_kept(vcpu) ? pv->held_offset : vcpu->arch.l1_tsc_offset;
	offset -= kvm_scale_tsc(cycles, vcpu->arch.l1_tsc_scaling_ratio);
	kvm_pace_write_tsc_offset(vcpu, offset, ns);
	pv->held_offset_valid = false;
	pv->applied_tsc = pvm->frozen_tsc;
	pv->applied_ns = pvm->frozen_ns;
	WRITE_ONCE(pv->rearm, true);

	if (lapic_in_kernel(vcpu)) {
		apic->lapic_timer.target_expiration =
			ktime_add_ns(apic->lapic_timer.target_expiration, ns);
		if (pv->lapic_paused)
			pv->lapic_expires = ktime_add_ns(pv->lapic_expires, ns);
		/* The hypervisor timer was programmed in host TSC. */
		if (kvm_lapic_hv_timer_in_use(vcpu))
			kvm_lapic_restart_hv_timer(vcpu);
	}

restart:
	if (pv->lapic_paused) {
		hrtimer_start(&apic->lapic_timer.timer, pv->lapic_expires,
			      HRTIMER_MODE_ABS_HARD);
		pv->lapic_paused = false;
	}
}
