// SPDX-License-Identifier: GPL-2.0-only
/*
 * x86 side of vCPU pacing.
 *
 * Guest time is the guest TSC.  The deadline is a guest TSC value; while the
 * VM is frozen every vCPU's TSC reads what it read when the last vCPU was
 * held, and each vCPU moves its TSC offset back by the frozen time before it
 * runs again.  While a VM is paced, kvmclock is a fixed linear function of
 * the guest TSC at the VM's virtual_tsc_khz (the paced clock), so it stops
 * and goes on exactly with the TSC, whatever host time does; KVM_GET_CLOCK,
 * KVM_GET_PACE_STATE and the monitoring events report guest time with the
 * same function.  The LAPIC timer stops while a vCPU is held and restarts
 * from its guest-TSC expiry; the in-kernel PIT stops while the VM is frozen.
 *
 * See Documentation/virt/kvm/x86/pacing.rst.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kvm_host.h>
#include <linux/kvm_pace.h>
#include <linux/math64.h>
#include <linux/overflow.h>

#include "cpuid.h"
#include "hyperv.h"
#include "i8254.h"
#include "irq.h"
#include "lapic.h"
#include "pace.h"
#include "x86.h"
#include "xen.h"

/* The deadline timer only gets the vCPU out: never further out than this. */
#define PACE_TIMER_MAX_NS	(10 * NSEC_PER_SEC)

/*
 * @a * @mul / @div for any 64-bit @a, saturating at U64_MAX: the deadline
 * and the TSC frequency come from userspace, and mul_u64_u32_div() raises
 * a divide error when the quotient does not fit in 64 bits.
 */
static u64 pace_mul_div(u64 a, u32 mul, u32 div)
{
	u64 q, r;
	u32 rem;

	q = div_u64_rem(a, div, &rem);
	if (check_mul_overflow(q, (u64)mul, &q))
		return U64_MAX;
	r = div_u64((u64)rem * mul, div);
	if (check_add_overflow(q, r, &q))
		return U64_MAX;
	return q;
}

u64 kvm_pace_ticks_to_ns(struct kvm_vcpu *vcpu, u64 ticks)
{
	u32 khz = vcpu->arch.virtual_tsc_khz;

	return khz ? pace_mul_div(ticks, NSEC_PER_MSEC, khz) : 0;
}

/* kvm_scale_tsc() of a difference of host TSC values, which may be < 0. */
static u64 pace_scale_delta(s64 cycles, u64 ratio)
{
	if (cycles >= 0)
		return kvm_scale_tsc(cycles, ratio);
	return -kvm_scale_tsc(-(u64)cycles, ratio);
}

/* The guest's pvclock_scale_delta(), without overflow for any shift. */
static u64 pace_pvclock_scale(u64 delta, u32 mul, s8 shift)
{
	if (shift < 0)
		return mul_u64_u32_shr(delta >> -shift, mul, 32);
	return mul_u64_u32_shr(delta, mul, 32 - shift);
}

/* The paced clock at guest TSC @tsc, within [0, U64_MAX]. */
static u64 pace_clock_ns(const struct kvm_pace_vm_arch *a, u64 tsc)
{
	u64 d = tsc - a->clock_tsc, ns;

	if ((s64)d >= 0) {
		ns = pace_pvclock_scale(d, a->clock_mul, a->clock_shift);
		return a->clock_ns > U64_MAX - ns ? U64_MAX : a->clock_ns + ns;
	}
	ns = pace_pvclock_scale(-d, a->clock_mul, a->clock_shift);
	return a->clock_ns < ns ? 0 : a->clock_ns - ns;
}

/* The paced clock reads @ns at guest TSC @tsc, and runs at @khz. */
static void pace_set_clock(struct kvm_pace_vm_arch *a, u64 tsc, u64 ns,
			   u32 khz)
{
	a->clock_tsc = tsc;
	a->clock_ns = ns;
	a->clock_khz = khz;
	kvm_pace_time_scale(khz, &a->clock_mul, &a->clock_shift);
}

static void pace_set_anchor(struct kvm_pace_vm_arch *a, u64 tsc, u64 host_tsc)
{
	a->anchor_tsc = tsc;
	a->anchor_host_tsc = host_tsc;
	a->anchor_ns = kvm_pace_clock_base_ns();
}

/*
 * The VM's guest time at host TSC @host_tsc, for readers that are not one
 * of its vCPUs; time_lock held.  On a host whose TSC is unstable, host TSC
 * values read on different CPUs cannot be compared, so the VM's time goes on
 * from the last thaw with kvmclock's base clock instead.
 */
static u64 pace_vm_tsc(const struct kvm_pace_vm_arch *a, u64 host_tsc)
{
	s64 ns;

	if (a->frozen)
		return a->frozen_tsc;
	if (kvm_pace_tsc_unstable()) {
		ns = kvm_pace_clock_base_ns() - a->anchor_ns;
		return a->anchor_tsc + pace_mul_div(max_t(s64, ns, 0), a->khz,
						    NSEC_PER_MSEC);
	}
	return a->anchor_tsc + pace_scale_delta(host_tsc - a->anchor_host_tsc,
						a->ratio);
}

/*
 * @vcpu's TSC at host TSC @host_tsc while the VM is not paced, on a host
 * whose TSC is unstable: each vcpu_load() (every vCPU ioctl) restarts the
 * guest TSC from where it last left the guest, and the next entry catches it
 * up to the host time since the last TSC write (kvm_guest_time_update()).
 * Pacing starts from the caught-up value, as the PIT, which counts host
 * time, did not stop in the meantime either.
 */
static u64 pace_unpaced_tsc(struct kvm_vcpu *vcpu, u64 host_tsc)
{
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	struct kvm_pace_vcpu *pv = vcpu->pace;
	u64 tsc = kvm_read_l1_tsc(vcpu, host_tsc), write, now, caught_up;
	s64 ns;

	if (!READ_ONCE(vcpu->arch.tsc_catchup))
		return tsc;
	now = pvm && pv && pvm->frozen ? pvm->arch.freeze_raw_ns :
					  kvm_pace_clock_base_ns();
	/*
	 * Not under tsc_write_lock, which kvm_arch_pace_start() holds here
	 * (a pvclock update): a VMM that writes the TSC while it arms pacing
	 * races its own ioctls.
	 */
	write = READ_ONCE(vcpu->arch.this_tsc_write);
	ns = now - READ_ONCE(vcpu->arch.this_tsc_nsec);
	/* less the frozen time that this vCPU has not taken out yet */
	if (pvm && pv)
		ns -= pvm->arch.frozen_raw_ns - pv->arch.applied_raw_ns;
	caught_up = write + pace_mul_div(max_t(s64, ns, 0),
					 READ_ONCE(vcpu->arch.virtual_tsc_khz),
					 NSEC_PER_MSEC);
	return (s64)(caught_up - tsc) > 0 ? caught_up : tsc;
}

/*
 * @vcpu's TSC at host TSC @host_tsc as the guest would read it, frozen while
 * the VM is frozen, also before the vCPU has applied the frozen time to its
 * TSC offset; kvm_pace_vm.lock held.
 */
static u64 pace_vcpu_tsc(struct kvm_vcpu *vcpu, u64 host_tsc)
{
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	struct kvm_pace_vcpu *pv = vcpu->pace;
	s64 unapplied;

	if (!pvm || !pv)
		return kvm_pace_tsc_unstable() ? pace_unpaced_tsc(vcpu, host_tsc) :
						 kvm_read_l1_tsc(vcpu, host_tsc);
	lockdep_assert_held(&pvm->lock);
	/* Only while paced does the VM's guest time have an anchor. */
	if (kvm_pace_tsc_unstable())
		return pvm->arch.clock_active ? pace_vm_tsc(&pvm->arch, host_tsc) :
						pace_unpaced_tsc(vcpu, host_tsc);
	if (pvm->frozen)
		host_tsc = pvm->arch.freeze_host_tsc;
	unapplied = pvm->arch.frozen_cycles - pv->arch.applied_cycles;
	return kvm_read_l1_tsc(vcpu, host_tsc) -
	       pace_scale_delta(unapplied, vcpu->arch.l1_tsc_scaling_ratio);
}

void kvm_arch_pace_vm_init(struct kvm_pace_vm *pvm)
{
	raw_spin_lock_init(&pvm->arch.time_lock);
}

/*
 * Frozen time before the vCPU was paced is in its TSC offset as it is in
 * KVM's current TSC generation, which a new vCPU's TSC is synchronised with.
 */
void kvm_arch_pace_vcpu_init(struct kvm_vcpu *vcpu, struct kvm_pace_vcpu *pv)
{
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;

	lockdep_assert_held(&pvm->lock);
	pv->arch.applied_cycles = pvm->arch.gen_applied_cycles;
	pv->arch.applied_raw_ns = pvm->arch.gen_applied_raw_ns;
}

/*
 * Timers that run on host time and that pacing does not stop: the guest
 * would see them fire early after a hold.  Pacing is refused while they are
 * in use, and ends when the guest starts one.
 */
int kvm_arch_pace_check(struct kvm_vcpu *vcpu)
{
#ifdef CONFIG_KVM_HYPERV
	struct kvm_vcpu_hv *hv_vcpu = to_hv_vcpu(vcpu);
	int i;

	for (i = 0; hv_vcpu && i < ARRAY_SIZE(hv_vcpu->stimer); i++)
		if (READ_ONCE(hv_vcpu->stimer[i].config.as_uint64) & 1)
			return -EOPNOTSUPP;
#endif
#ifdef CONFIG_KVM_XEN
	if (kvm_xen_timer_enabled(vcpu))
		return -EOPNOTSUPP;
#endif
	/* The VMX preemption timer of a nested guest. */
	if (is_guest_mode(vcpu) && guest_cpuid_has(vcpu, X86_FEATURE_VMX))
		return -EOPNOTSUPP;
	return 0;
}

/*
 * The first vCPU is armed: from now on kvmclock is the paced clock, which
 * goes on from kvmclock's value at the moment, at @vcpu's TSC frequency.
 */
int kvm_arch_pace_start(struct kvm *kvm, struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vm_arch *a = &kvm->pace->arch;
	struct kvm_arch *ka = &kvm->arch;
	u32 khz = vcpu->arch.virtual_tsc_khz;
	u64 host_tsc, ns, tsc;
	unsigned long flags;

	/* Without a TSC frequency, guest time cannot be told. */
	if (!khz)
		return -EINVAL;
	/* Still on: the last disarm came while frozen, before the thaw. */
	if (a->clock_active)
		return 0;

	kvm_pace_start_clock_update(kvm);
	if (ka->use_master_clock) {
		host_tsc = ka->master_cycle_now;
		ns = ka->master_kernel_ns;
	} else {
		host_tsc = rdtsc();
		ns = kvm_pace_clock_base_ns();
	}
	ns += ka->kvmclock_offset;
	tsc = pace_vcpu_tsc(vcpu, host_tsc);

	raw_spin_lock_irqsave(&a->time_lock, flags);
	a->ratio = vcpu->arch.l1_tsc_scaling_ratio;
	a->khz = khz;
	pace_set_anchor(a, tsc, host_tsc);
	pace_set_clock(a, tsc, ns, khz);
	WRITE_ONCE(a->clock_active, true);
	/* each vCPU goes on from the anchor at its next resume */
	a->start_gen++;
	raw_spin_unlock_irqrestore(&a->time_lock, flags);
	kvm_pace_end_clock_update(kvm);
	return 0;
}

/*
 * No vCPU is armed any more: kvmclock follows host time again, from the
 * paced clock's value at the moment.
 */
void kvm_arch_pace_stop(struct kvm *kvm)
{
	struct kvm_pace_vm_arch *a = &kvm->pace->arch;
	struct kvm_arch *ka = &kvm->arch;
	unsigned long flags;
	u64 host_tsc, ns;

	kvm_pace_start_clock_update(kvm);
	if (ka->use_master_clock) {
		host_tsc = ka->master_cycle_now;
		ns = ka->master_kernel_ns;
	} else {
		host_tsc = rdtsc();
		ns = kvm_pace_clock_base_ns();
	}
	raw_spin_lock_irqsave(&a->time_lock, flags);
	ka->kvmclock_offset = pace_clock_ns(a, pace_vm_tsc(a, host_tsc)) - ns;
	WRITE_ONCE(a->clock_active, false);
	raw_spin_unlock_irqrestore(&a->time_lock, flags);
	kvm_pace_end_clock_update(kvm);
}

/* @vcpu's own clock, on its thread, with the frozen time applied. */
void kvm_arch_pace_read_clock(struct kvm_vcpu *vcpu, struct kvm_pace_clock *c)
{
	c->host_tsc = rdtsc();
	c->ns = ktime_get_ns();
	c->guest_tsc = kvm_read_l1_tsc(vcpu, c->host_tsc);
}

u64 kvm_arch_pace_guest_tsc(struct kvm_vcpu *vcpu)
{
	return pace_vcpu_tsc(vcpu, rdtsc());
}

/*
 * The same, for callers without kvm_pace_vm.lock (host-initiated TSC reads,
 * the LAPIC's TMCCT).
 */
u64 kvm_pace_vcpu_tsc(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	u64 tsc;

	mutex_lock(&pvm->lock);
	tsc = pace_vcpu_tsc(vcpu, rdtsc());
	mutex_unlock(&pvm->lock);
	return tsc;
}

/* kvmclock at guest TSC @tsc; 0 while the VM is not paced. */
u64 kvm_arch_pace_guest_ns(struct kvm *kvm, u64 tsc)
{
	struct kvm_pace_vm *pvm = smp_load_acquire(&kvm->pace); /* pace_vm_get() */
	unsigned long flags;
	u64 ns = 0;

	if (!pvm)
		return 0;
	raw_spin_lock_irqsave(&pvm->arch.time_lock, flags);
	if (pvm->arch.clock_active)
		ns = pace_clock_ns(&pvm->arch, tsc);
	raw_spin_unlock_irqrestore(&pvm->arch.time_lock, flags);
	return ns;
}

/* The paced clock's scale, as in the guest's pvclock; 0 if not paced. */
void kvm_arch_pace_clock_scale(struct kvm *kvm, u32 *mul, s8 *shift)
{
	struct kvm_pace_vm *pvm = smp_load_acquire(&kvm->pace); /* pace_vm_get() */
	unsigned long flags;

	*mul = 0;
	*shift = 0;
	if (!pvm)
		return;
	raw_spin_lock_irqsave(&pvm->arch.time_lock, flags);
	if (pvm->arch.clock_active) {
		*mul = pvm->arch.clock_mul;
		*shift = pvm->arch.clock_shift;
	}
	raw_spin_unlock_irqrestore(&pvm->arch.time_lock, flags);
}

u32 kvm_arch_pace_tsc_khz(struct kvm_vcpu *vcpu)
{
	return vcpu->arch.virtual_tsc_khz;
}

void kvm_arch_pace_arm_timer(struct kvm_vcpu *vcpu, u64 guest_tsc)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;
	u64 ns = PACE_TIMER_MAX_NS;

	/*
	 * The timer only gets the vCPU out of the guest; whether the deadline
	 * has been reached is decided on the guest TSC before every entry, so
	 * rounding here can delay the stop but never make it early.  A far
	 * deadline is approached in steps of PACE_TIMER_MAX_NS.
	 */
	if (vcpu->arch.virtual_tsc_khz)
		ns = min(kvm_pace_ticks_to_ns(vcpu, pv->deadline - guest_tsc),
			 PACE_TIMER_MAX_NS);
	hrtimer_start(&pv->timer, ktime_add_ns(ktime_get(), ns),
		      HRTIMER_MODE_ABS_HARD);
}

/* The in-kernel PIT counts host time: it stands still while frozen. */
static void pace_pit_freeze(struct kvm *kvm)
{
	struct kvm_pit *pit = READ_ONCE(kvm->arch.vpit);
	struct kvm_pace_vm_arch *a = &kvm->pace->arch;
	struct kvm_kpit_state *ps;
	s64 remaining;

	if (!pit)
		return;
	ps = &pit->pit_state;
	mutex_lock(&ps->lock);
	remaining = ktime_to_ns(hrtimer_get_remaining(&ps->timer));
	if (hrtimer_cancel(&ps->timer)) {
		a->pit_paused = true;
		a->pit_remaining_ns = max_t(s64, remaining, 0);
	}
	mutex_unlock(&ps->lock);
}

/*
 * Userspace (QEMU's cont, KVM_SET_PIT2) may load a count while the VM is
 * frozen: the timer then starts when the VM thaws.  Called with the PIT's
 * lock held.
 */
bool __kvm_pace_pit_hold(struct kvm *kvm, s64 interval)
{
	struct kvm_pace_vm_arch *a = &kvm->pace->arch;

	if (!READ_ONCE(a->frozen))
		return false;
	a->pit_paused = true;
	a->pit_remaining_ns = interval;
	return true;
}

static void pace_pit_thaw(struct kvm *kvm, ktime_t freeze, ktime_t thaw)
{
	struct kvm_pit *pit = READ_ONCE(kvm->arch.vpit);
	struct kvm_pace_vm_arch *a = &kvm->pace->arch;
	struct kvm_kpit_state *ps;
	ktime_t *t;
	int i;

	if (!pit)
		return;
	ps = &pit->pit_state;
	mutex_lock(&ps->lock);
	/* Counts go on from where they stood, or from the thaw if loaded since. */
	for (i = 0; i < ARRAY_SIZE(ps->channels); i++) {
		t = &ps->channels[i].count_load_time;
		if (ktime_before(*t, thaw))
			*t = ktime_add(*t, ktime_sub(thaw, ktime_after(*t, freeze) ?
							*t : freeze));
	}
	if (a->pit_paused)
		hrtimer_start(&ps->timer,
			      ktime_add_ns(thaw, a->pit_remaining_ns),
			      HRTIMER_MODE_ABS);
	a->pit_paused = false;
	mutex_unlock(&ps->lock);
}

/*
 * Every vCPU is held: guest time stops at @c, the last vCPU's reading, and
 * reads @guest_tsc, the latest guest time a vCPU reached.
 */
void kvm_arch_pace_freeze(struct kvm *kvm, const struct kvm_pace_clock *c,
			  u64 guest_tsc)
{
	struct kvm_pace_vm_arch *a = &kvm->pace->arch;
	unsigned long flags;

	a->freeze_host_tsc = c->host_tsc;
	a->freeze_raw_ns = kvm_pace_clock_base_ns();
	a->freeze_ktime = ktime_get();
	raw_spin_lock_irqsave(&a->time_lock, flags);
	a->frozen_tsc = guest_tsc;
	a->frozen = true;
	raw_spin_unlock_irqrestore(&a->time_lock, flags);
	pace_pit_freeze(kvm);
}

/* @vcpu is the first to run after a freeze. */
void kvm_arch_pace_thaw(struct kvm *kvm, struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vm_arch *a = &kvm->pace->arch;
	u64 ratio = vcpu->arch.l1_tsc_scaling_ratio;
	u64 host_tsc, cycles, ns;
	unsigned long flags;
	ktime_t kt;

	host_tsc = rdtsc();
	ns = kvm_pace_clock_base_ns();
	kt = ktime_get();
	/* Host TSCs of different CPUs mean nothing on an unstable host. */
	cycles = kvm_pace_tsc_unstable() || host_tsc < a->freeze_host_tsc ? 0 :
		 host_tsc - a->freeze_host_tsc;
	ns = ns > a->freeze_raw_ns ? ns - a->freeze_raw_ns : 0;
	a->frozen_cycles += cycles;
	a->frozen_raw_ns += ns;

	raw_spin_lock_irqsave(&a->time_lock, flags);
	a->frozen = false;
	a->ratio = ratio;
	a->khz = vcpu->arch.virtual_tsc_khz;
	pace_set_anchor(a, a->frozen_tsc, host_tsc);
	raw_spin_unlock_irqrestore(&a->time_lock, flags);

	/*
	 * KVM's own TSC bookkeeping goes on from where the VM froze: its
	 * current generation's offset, by the frozen time it lacks.
	 */
	kvm_pace_shift_tsc_refs(kvm, kvm_pace_tsc_unstable() ?
				pace_mul_div(ns, a->khz, NSEC_PER_MSEC) :
				pace_scale_delta(a->frozen_cycles - a->gen_applied_cycles,
						 ratio),
				a->frozen_raw_ns - a->gen_applied_raw_ns);
	a->gen_applied_cycles = a->frozen_cycles;
	a->gen_applied_raw_ns = a->frozen_raw_ns;
	/*
	 * The paced clock does not depend on the master clock's snapshot, but
	 * a snapshot older than the frozen time would put the pvclock's
	 * tsc_timestamp below zero once the TSC offsets move back.
	 */
	if (kvm->arch.use_master_clock) {
		kvm_pace_start_clock_update(kvm);
		kvm_pace_end_clock_update(kvm);
	}
	pace_pit_thaw(kvm, a->freeze_ktime, kt);
}

/*
 * Whether an interrupt waits for the vCPU (KVM_PACE_STATE_IRQ_PENDING): one
 * being injected, an NMI (also one pending in the VMCB with vNMI), a LAPIC
 * timer interrupt not yet injected, a vector in the IRR of an enabled local
 * APIC or posted in the PIR (read also while APICv is inhibited: assigned
 * devices go on posting), the PIC's output, a Xen event channel.  SMIs,
 * INIT and SIPI are not interrupts here.  Read from another thread without
 * vcpu->mutex: a snapshot, exact while the vCPU is held.  Not
 * kvm_cpu_has_interrupt() nor kvm_cpu_has_extint(): syncing the PIR writes
 * RVI into the VMCS, which must be loaded on this CPU, and Xen's
 * vcpu_info may need a refresh that sleeps; all read here is plain memory.
 */
bool kvm_arch_pace_irq_pending(struct kvm_vcpu *vcpu)
{
	struct kvm *kvm = vcpu->kvm;
	struct kvm_lapic *apic = vcpu->arch.apic;

	if (READ_ONCE(vcpu->arch.interrupt.injected) ||
	    READ_ONCE(vcpu->arch.nmi_injected) ||
	    READ_ONCE(vcpu->arch.nmi_pending) ||
	    atomic_read(&vcpu->arch.nmi_queued) ||
	    kvm_x86_call(is_vnmi_pending)(vcpu) ||
	    kvm_xen_has_pending_events(vcpu))
		return true;
	if (!lapic_in_kernel(vcpu))
		return false;
	if (atomic_read(&apic->lapic_timer.pending) > 0 ||
	    kvm_x86_call(dy_apicv_has_pending_interrupt)(vcpu))
		return true;
	if (kvm_apic_hw_enabled(apic) && kvm_lapic_find_highest_irr(vcpu) >= 0)
		return true;
	if (!kvm_apic_accept_pic_intr(vcpu))
		return false;
	if (irqchip_split(kvm))
		return READ_ONCE(vcpu->arch.pending_external_vector) != -1;
	return irqchip_kernel(kvm) && READ_ONCE(kvm->arch.vpic->output);
}

/* The vCPU reached its deadline at @c; its LAPIC timer stops. */
void kvm_arch_pace_vcpu_hold(struct kvm_vcpu *vcpu,
			     const struct kvm_pace_clock *c)
{
	struct kvm_pace_vcpu_arch *pa = &vcpu->pace->arch;

	/* Where an unstable-TSC vcpu_load() lets the guest TSC go on from. */
	vcpu->arch.last_guest_tsc = c->guest_tsc;
	if (pa->timers_held)
		return;
	pa->timers_held = true;
	pa->lapic_start_reg = 0;
	pa->lapic_stopped = false;
	pa->lapic_restart = false;
	if (lapic_in_kernel(vcpu))
		kvm_lapic_pace_stop_timer(vcpu, pa);
}

/*
 * The vCPU is about to run (or halt) again, with kvm_pace_vm.lock held: its
 * TSC goes on from the VM's guest time, then its LAPIC timer restarts.
 */
void kvm_arch_pace_vcpu_resume(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vm_arch *a = &vcpu->kvm->pace->arch;
	struct kvm_pace_vcpu_arch *pa = &vcpu->pace->arch;
	u64 ratio = vcpu->arch.l1_tsc_scaling_ratio;
	s64 cycles = a->frozen_cycles - pa->applied_cycles;
	s64 ns = a->frozen_raw_ns - pa->applied_raw_ns;
	bool rejoin = pa->start_gen != a->start_gen && a->clock_active;
	u64 host_tsc, vm_tsc;
	unsigned long flags;

	/*
	 * Pacing started since this vCPU last ran: a vCPU loaded before
	 * then (on an unstable-TSC host, with its TSC not caught up yet) goes
	 * on from the guest time pacing started from.
	 */
	pa->start_gen = a->start_gen;
	if (kvm_pace_tsc_unstable() && (cycles || ns || pa->timers_held || rejoin)) {
		/*
		 * The offset dates from the last vcpu_load(), and the host
		 * TSC ran on through the hold: rejoin the VM's time, which
		 * is at or past where this vCPU stopped.
		 */
		host_tsc = rdtsc();
		raw_spin_lock_irqsave(&a->time_lock, flags);
		vm_tsc = pace_vm_tsc(a, host_tsc);
		raw_spin_unlock_irqrestore(&a->time_lock, flags);
		/* never below where it was held (last_guest_tsc, see hold) */
		vm_tsc = max(vm_tsc, vcpu->arch.last_guest_tsc);
		kvm_pace_write_tsc_offset(vcpu, vm_tsc -
					  kvm_scale_tsc(host_tsc, ratio));
	} else if (cycles) {
		kvm_pace_write_tsc_offset(vcpu, vcpu->arch.l1_tsc_offset -
					  pace_scale_delta(cycles, ratio));
	}
	if (cycles || ns || pa->timers_held || rejoin) {
		/*
		 * KVM's TSC catch-up (a host with an unstable TSC, or a guest
		 * TSC faster than the host's) goes on from here once pacing
		 * ends, not from where host time would have taken the TSC.
		 */
		vcpu->arch.this_tsc_write = kvm_read_l1_tsc(vcpu, rdtsc());
		vcpu->arch.this_tsc_nsec = kvm_pace_clock_base_ns();
		pa->applied_cycles = a->frozen_cycles;
		pa->applied_raw_ns = a->frozen_raw_ns;
		kvm_make_request(KVM_REQ_CLOCK_UPDATE, vcpu);
		WRITE_ONCE(vcpu->pace->rearm, true);
	}

	if (pa->timers_held) {
		pa->timers_held = false;
		if (lapic_in_kernel(vcpu))
			kvm_lapic_pace_start_timer(vcpu, pa);
	}
}

void __kvm_pace_pvclock(struct kvm_vcpu *vcpu)
{
	struct pvclock_vcpu_time_info *hv = &vcpu->arch.hv_clock;
	struct kvm_pace_vm_arch *a = &vcpu->kvm->pace->arch;
	unsigned long flags;

	raw_spin_lock_irqsave(&a->time_lock, flags);
	if (a->clock_active) {
		hv->system_time = pace_clock_ns(a, hv->tsc_timestamp);
		hv->tsc_to_system_mul = a->clock_mul;
		hv->tsc_shift = a->clock_shift;
		/* Recomputed from the host's rate once pacing ends. */
		vcpu->arch.hw_tsc_khz = 0;
	}
	raw_spin_unlock_irqrestore(&a->time_lock, flags);
}

bool __kvm_pace_get_clock(struct kvm *kvm, struct kvm_clock_data *data)
{
	struct kvm_pace_vm_arch *a = &kvm->pace->arch;
	unsigned long flags;
	bool active;

	raw_spin_lock_irqsave(&a->time_lock, flags);
	active = a->clock_active;
	if (active)
		data->clock = pace_clock_ns(a, pace_vm_tsc(a, rdtsc()));
	raw_spin_unlock_irqrestore(&a->time_lock, flags);
	if (!active)
		return false;
	/* Host time has no relation to guest time: no KVM_CLOCK_REALTIME. */
	data->flags = kvm->arch.use_master_clock ? KVM_CLOCK_TSC_STABLE : 0;
	return true;
}

/* KVM_SET_CLOCK: the paced clock reads @ns now, on a frozen VM too. */
void __kvm_pace_set_clock(struct kvm *kvm, u64 ns)
{
	struct kvm_pace_vm_arch *a = &kvm->pace->arch;
	unsigned long flags;

	raw_spin_lock_irqsave(&a->time_lock, flags);
	if (a->clock_active)
		pace_set_clock(a, pace_vm_tsc(a, rdtsc()), ns, a->clock_khz);
	raw_spin_unlock_irqrestore(&a->time_lock, flags);
}

u64 __kvm_pace_tsc_offset(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	u64 host_tsc, offset;

	mutex_lock(&pvm->lock);
	host_tsc = rdtsc();
	offset = pace_vcpu_tsc(vcpu, host_tsc) -
		 kvm_scale_tsc(host_tsc, vcpu->arch.l1_tsc_scaling_ratio);
	mutex_unlock(&pvm->lock);
	return offset;
}

/*
 * Userspace set the TSC (KVM_SET_MSRS, the offset attribute), and KVM chose
 * the offset, maybe synchronising it with the other vCPUs' (then the vCPU
 * joins their TSC generation and its frozen time).  A value of its own (a
 * @new_generation) wins over frozen time not yet applied: on a frozen VM the
 * TSC reads it until the VM thaws, and the VM's guest time follows it, while
 * kvmclock goes on where it was, as when KVM is not pacing.
 */
void __kvm_pace_tsc_written(struct kvm_vcpu *vcpu, bool new_generation)
{
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	struct kvm_pace_vcpu *pv = vcpu->pace;
	struct kvm_pace_vm_arch *a = &pvm->arch;
	u64 host_tsc, tsc, vm_tsc, want;
	unsigned long flags;

	mutex_lock(&pvm->lock);
	host_tsc = rdtsc();
	tsc = kvm_read_l1_tsc(vcpu, host_tsc);
	if (new_generation && pvm->frozen) {
		/*
		 * KVM computed the offset from an earlier host TSC read: as
		 * if written now, so that the frozen TSC is the value written.
		 */
		want = READ_ONCE(vcpu->kvm->arch.cur_tsc_write);
		if (tsc > want && !kvm_pace_tsc_unstable()) {
			kvm_pace_write_tsc_offset(vcpu, vcpu->arch.l1_tsc_offset -
						  (tsc - want));
			kvm_pace_shift_tsc_refs(vcpu->kvm, tsc - want, 0);
		}
		tsc = want;
		/* where an unstable-TSC resume lets this vCPU go on from */
		vcpu->arch.last_guest_tsc = want;
	}
	if (new_generation) {
		a->gen_applied_cycles = a->frozen_cycles;
		a->gen_applied_raw_ns = a->frozen_raw_ns;
		if (pvm->frozen) {
			if (host_tsc > a->freeze_host_tsc)
				a->gen_applied_cycles += host_tsc - a->freeze_host_tsc;
			a->gen_applied_raw_ns += kvm_pace_clock_base_ns() -
						 a->freeze_raw_ns;
		}
		raw_spin_lock_irqsave(&a->time_lock, flags);
		if (a->clock_active) {
			vm_tsc = pace_vm_tsc(a, host_tsc);
			pace_set_clock(a, tsc, pace_clock_ns(a, vm_tsc), a->clock_khz);
			if (a->frozen)
				a->frozen_tsc = tsc;
			else
				pace_set_anchor(a, tsc, host_tsc);
		}
		raw_spin_unlock_irqrestore(&a->time_lock, flags);
	}
	pv->arch.applied_cycles = a->gen_applied_cycles;
	pv->arch.applied_raw_ns = a->gen_applied_raw_ns;
	if (pv->held)
		pv->held_tsc = pace_vcpu_tsc(vcpu, host_tsc);
	/* The pvclock's tsc_timestamp may now be ahead of the guest TSC. */
	kvm_make_request(KVM_REQ_CLOCK_UPDATE, vcpu);
	mutex_unlock(&pvm->lock);
}

/* KVM_SET_TSC_KHZ: the paced clock goes on at the new rate. */
void __kvm_pace_tsc_khz_changed(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	struct kvm_pace_vm_arch *a = &pvm->arch;
	u32 khz = vcpu->arch.virtual_tsc_khz;
	u64 host_tsc, tsc;
	unsigned long flags;

	mutex_lock(&pvm->lock);
	if (!READ_ONCE(a->clock_active) || !khz || khz == a->clock_khz)
		goto out;
	kvm_pace_start_clock_update(vcpu->kvm);
	raw_spin_lock_irqsave(&a->time_lock, flags);
	host_tsc = rdtsc();
	tsc = pace_vm_tsc(a, host_tsc);
	pace_set_clock(a, tsc, pace_clock_ns(a, tsc), khz);
	a->ratio = vcpu->arch.l1_tsc_scaling_ratio;
	a->khz = khz;
	if (!a->frozen)
		pace_set_anchor(a, tsc, host_tsc);
	raw_spin_unlock_irqrestore(&a->time_lock, flags);
	kvm_pace_end_clock_update(vcpu->kvm);
out:
	mutex_unlock(&pvm->lock);
}

/*
 * Preempt notifier, host TSC unstable: a vCPU that is not held goes on from
 * the VM's guest time, not only from where it stopped (KVM's TSC catch-up,
 * which aims at host time, does not apply to paced vCPUs).
 */
u64 __kvm_pace_load_tsc(struct kvm_vcpu *vcpu, u64 tsc)
{
	struct kvm_pace_vm_arch *a = &vcpu->kvm->pace->arch;
	unsigned long flags;
	u64 vm_tsc = 0;

	if (READ_ONCE(vcpu->pace->held))
		return tsc;
	raw_spin_lock_irqsave(&a->time_lock, flags);
	if (a->clock_active)
		vm_tsc = pace_vm_tsc(a, rdtsc());
	raw_spin_unlock_irqrestore(&a->time_lock, flags);
	return max(tsc, vm_tsc);
}

bool __kvm_pace_defer_lapic_timer(struct kvm_vcpu *vcpu, u32 count_reg,
				  u32 count)
{
	struct kvm_pace_vcpu_arch *pa = &vcpu->pace->arch;

	if (!pa->timers_held)
		return false;
	if (count_reg) {
		pa->lapic_start_reg = count_reg;
		pa->lapic_start_count = count;
	} else {
		pa->lapic_restart = true;
	}
	return true;
}
