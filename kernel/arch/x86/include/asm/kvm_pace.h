/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * x86 state of vCPU pacing, see Documentation/virt/kvm/x86/pacing.rst.
 *
 * Guest time is the guest TSC.  While a VM is paced, kvmclock is a fixed
 * linear function of the guest TSC (the "paced clock"), so it stops and
 * goes on exactly with the TSC, and every number pacing reports is derived
 * from the TSC with the same conversion the guest uses.
 */
#ifndef _ASM_X86_KVM_PACE_H
#define _ASM_X86_KVM_PACE_H

#include <linux/ktime.h>
#include <linux/spinlock.h>
#include <linux/types.h>

struct kvm_pace_vm_arch {
	/*
	 * The VM's guest time for readers that do not run on one of its
	 * vCPUs (KVM_GET_CLOCK, the TSC of a vCPU that has not run since
	 * the VM thawed), and the paced clock.  Written with
	 * kvm_pace_vm.lock held as well.
	 */
	raw_spinlock_t time_lock;
	bool frozen;			/* copy of kvm_pace_vm.frozen */
	u64 frozen_tsc;			/* guest TSC where the VM froze */
	u64 anchor_tsc;			/* guest TSC at anchor_host_tsc/_ns */
	u64 anchor_host_tsc;
	u64 anchor_ns;			/* kvmclock base (raw) ns */
	u64 ratio;			/* TSC scaling ratio of the VM's vCPUs */
	u32 khz;			/* their virtual_tsc_khz */

	/* kvmclock(tsc) = clock_ns + (tsc - clock_tsc) * mul >> (32 - shift) */
	bool clock_active;
	u64 clock_tsc;
	u64 clock_ns;
	u32 clock_mul;
	s8 clock_shift;
	u32 clock_khz;

	/* Freeze accounting, kvm_pace_vm.lock. */
	u64 freeze_host_tsc;
	u64 freeze_raw_ns;
	ktime_t freeze_ktime;
	u64 frozen_cycles;		/* host TSC cycles frozen, all thaws */
	u64 frozen_raw_ns;		/* the same in kvmclock base ns */
	/*
	 * The frozen time that KVM's current TSC generation (the offset a
	 * vCPU gets when its TSC is synchronised with the others) already
	 * has applied.
	 */
	u64 gen_applied_cycles;
	u64 gen_applied_raw_ns;

	/* Pacing starts (kvm_pace_vm.lock), seen by each vCPU's resume. */
	u32 start_gen;

	/* The in-kernel PIT stands still while the VM is frozen. */
	bool pit_paused;
	s64 pit_remaining_ns;
};

struct kvm_pace_vcpu_arch {
	/* kvm_pace_vm_arch.frozen_* already applied to this vCPU. */
	u64 applied_cycles;
	u64 applied_raw_ns;
	u32 start_gen;			/* kvm_pace_vm_arch.start_gen seen */

	/*
	 * The LAPIC timer does not run while the vCPU is held: it is
	 * stopped at the hold and restarted at the resume if it is still
	 * the timer that was stopped; a start requested meanwhile (by
	 * KVM_SET_LAPIC or a TSC-deadline write) happens at the resume.
	 */
	bool timers_held;
	bool lapic_stopped;
	bool lapic_restart;		/* a restart was asked for meanwhile */
	u32 lapic_start_reg;		/* APIC_TMICT/TMCCT of a deferred start */
	u32 lapic_start_count;		/* and that register's value then */
	u32 lapic_lvtt;			/* the stopped timer */
	u32 lapic_tmict;
	u64 lapic_tscdeadline;
};

#endif
