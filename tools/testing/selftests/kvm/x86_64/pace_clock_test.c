// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_CAP_PACE time freeze: while the VM is held, neither the TSC nor
 * kvmclock advance for the guest, and armed LAPIC timers (TSC-deadline and
 * periodic) fire after the same guest time as without holds, with no burst
 * of interrupts after long holds.
 */
#include <asm/kvm_para.h>
#include <asm/pvclock.h>
#include <asm/pvclock-abi.h>
#include <time.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "apic.h"
#include "pace_util.h"

#define TIMER_VECTOR	0xec

/* Host holds much longer than the guest may notice. */
#define HOLD_MS		2000
#define GUEST_SLACK_MS	200
#define NR_SHORT_QUANTA	50
#define NR_TINY_QUANTA	2000

static bool guest_stop;
static uint64_t guest_loops;
static uint64_t timer_tsc;
static uint64_t ticks;

static void guest_clock_code(vm_paddr_t pvti_pa, struct pvclock_vcpu_time_info *pvti)
{
	uint64_t tsc, ns, prev_tsc, prev_ns, gap_tsc = 0, gap_ns = 0, tsc0, ns0;

	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, pvti_pa | KVM_MSR_ENABLED);
	prev_tsc = rdtsc();
	prev_ns = __pvclock_read_cycles(pvti, prev_tsc);
	tsc0 = prev_tsc;
	ns0 = prev_ns;
	GUEST_SYNC_ARGS(0, prev_tsc, 0, 0, 0);
	while (!READ_ONCE(guest_stop)) {
		WRITE_ONCE(guest_loops, guest_loops + 1);
		tsc = rdtsc();
		ns = __pvclock_read_cycles(pvti, tsc);
		GUEST_ASSERT(tsc >= prev_tsc);
		GUEST_ASSERT(ns >= prev_ns);
		gap_tsc = max(gap_tsc, tsc - prev_tsc);
		gap_ns = max(gap_ns, ns - prev_ns);
		prev_tsc = tsc;
		prev_ns = ns;
	}
	GUEST_SYNC_ARGS(0, gap_tsc, gap_ns, prev_tsc - tsc0, prev_ns - ns0);
	GUEST_DONE();
}

static void timer_handler(struct ex_regs *regs)
{
	if (!timer_tsc)
		WRITE_ONCE(timer_tsc, rdtsc());
	WRITE_ONCE(ticks, ticks + 1);
	x2apic_write_reg(APIC_EOI, 0);
}

static void guest_tscdeadline_code(uint64_t delay)
{
	uint64_t armed;

	x2apic_enable();
	x2apic_write_reg(APIC_LVTT, APIC_LVT_TIMER_TSCDEADLINE | TIMER_VECTOR);
	asm volatile("sti");
	armed = rdtsc();
	wrmsr(MSR_IA32_TSC_DEADLINE, armed + delay);
	GUEST_SYNC_ARGS(0, armed, 0, 0, 0);
	while (!READ_ONCE(timer_tsc))
		cpu_relax();
	GUEST_SYNC_ARGS(1, timer_tsc - armed, 0, 0, 0);
	GUEST_DONE();
}

static void guest_periodic_code(uint64_t period_ns)
{
	uint64_t start;

	x2apic_enable();
	x2apic_write_reg(APIC_TDCR, 0xb);	/* divide by 1 */
	x2apic_write_reg(APIC_LVTT, APIC_LVT_TIMER_PERIODIC | TIMER_VECTOR);
	asm volatile("sti");
	start = rdtsc();
	x2apic_write_reg(APIC_TMICT, period_ns);
	while (!READ_ONCE(guest_stop))
		cpu_relax();
	x2apic_write_reg(APIC_TMICT, 0);
	GUEST_SYNC_ARGS(0, READ_ONCE(ticks), rdtsc() - start, 0, 0);
	GUEST_DONE();
}

static struct ucall last_uc;

static uint64_t run_until_sync(struct kvm_vcpu *vcpu, uint64_t *arg2)
{
	struct ucall uc;

	for (;;) {
		vcpu_run(vcpu);
		if (vcpu->run->exit_reason == KVM_EXIT_PACE)
			continue;
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			last_uc = uc;
			if (arg2)
				*arg2 = uc.args[3];
			return uc.args[2];
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
		default:
			TEST_FAIL("unexpected ucall %lu", uc.cmd);
		}
	}
}

/* Run until the vCPU stops at its deadline; the guest must not finish. */
static void run_until_pace(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	vcpu_run(vcpu);
	if (vcpu->run->exit_reason == KVM_EXIT_IO &&
	    get_ucall(vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_PACE);
}

/* Run to @deadline (exit-to-user mode), then stay held for @hold_ms. */
static void hold_at(struct kvm_vcpu *vcpu, uint64_t deadline, int hold_ms)
{
	struct timespec ts = { hold_ms / 1000, (hold_ms % 1000) * 1000000L };
	struct kvm_pace_state before, after;

	pace_set(vcpu, deadline, KVM_PACE_EXIT_TO_USER);
	run_until_pace(vcpu);
	pace_state(vcpu, &before);
	TEST_ASSERT(before.state & KVM_PACE_STATE_FROZEN, "not frozen: 0x%x", before.state);
	/* The hold's length, not synchronisation: guest time must not move. */
	nanosleep(&ts, NULL);
	pace_state(vcpu, &after);
	TEST_ASSERT_EQ(after.guest_tsc, before.guest_tsc);
	TEST_ASSERT(after.frozen_ns - before.frozen_ns >= hold_ms * 1000000ull,
		    "frozen for %llu ns, held %d ms", after.frozen_ns - before.frozen_ns,
		    hold_ms);
}

/*
 * Many quanta of 100 us of guest time, each run as soon as the previous one
 * stopped.  Every stop is at or after its deadline, and the frozen guest TSC
 * reads the same before and after the next deadline releases the vCPU: no
 * TSC offset rewrite behind pacing's back (vcpu_load() on a host with an
 * unstable TSC) may show.  The guest checks that its clocks never go back.
 */
static void run_tiny_quanta(struct kvm_vcpu *vcpu, uint64_t *nr_loops, uint64_t ms)
{
	uint64_t deadline, held, last, loops = READ_ONCE(*nr_loops);
	struct kvm_pace_state st;
	int i;

	last = pace_guest_tsc(vcpu);
	for (i = 0; i < NR_TINY_QUANTA; i++) {
		deadline = last + ms / 10;
		pace_set(vcpu, deadline, KVM_PACE_EXIT_TO_USER);
		pace_state(vcpu, &st);
		TEST_ASSERT(st.guest_tsc == last,
			    "quantum %d: released at guest TSC %llu, was held at %lu",
			    i, st.guest_tsc, last);
		run_until_pace(vcpu);
		held = vcpu->run->pace.guest_tsc;
		TEST_ASSERT(held >= deadline,
			    "quantum %d: held at guest TSC %lu, deadline %lu",
			    i, held, deadline);
		pace_state(vcpu, &st);
		TEST_ASSERT(st.guest_tsc == held,
			    "quantum %d: guest TSC %llu while frozen at %lu",
			    i, st.guest_tsc, held);
		last = held;
	}
	TEST_ASSERT(READ_ONCE(*nr_loops) != loops, "the guest did not run in %d quanta",
		    NR_TINY_QUANTA);
}

static void test_clocks(void)
{
	uint64_t ms, gap_tsc, gap_ns, loops, tsc_ns, kvm_ns;
	uint64_t *nr_loops;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	vm_vaddr_t pvti;
	int i, idle = 0;
	bool *stop;

	vm = vm_create_with_one_vcpu(&vcpu, guest_clock_code);
	pvti = vm_vaddr_alloc_page(vm);
	vcpu_args_set(vcpu, 2, addr_gva2gpa(vm, pvti), pvti);
	stop = addr_gva2hva(vm, (vm_vaddr_t)&guest_stop);
	nr_loops = addr_gva2hva(vm, (vm_vaddr_t)&guest_loops);
	ms = pace_ms(vcpu, 1);

	/*
	 * Hold twice for long while the guest is in its clock-reading loop,
	 * then for many short quanta, then for very many tiny ones.
	 */
	run_until_sync(vcpu, NULL);
	for (i = 1; i <= 2 + NR_SHORT_QUANTA; i++) {
		loops = READ_ONCE(*nr_loops);
		hold_at(vcpu, pace_guest_tsc(vcpu) + (i <= 2 ? 20 : 2) * ms,
			i <= 2 ? HOLD_MS : 10);
		if (READ_ONCE(*nr_loops) == loops)
			idle++;
	}
	/*
	 * Guest time that jumped at each release would leave the guest no time
	 * to run in most quanta.  A few quanta may pass while the vCPU thread
	 * is not scheduled (guest time runs then, as on any host), which in a
	 * loaded, emulated test VM can exceed 2 ms.
	 */
	TEST_ASSERT(idle <= (2 + NR_SHORT_QUANTA) / 5,
		    "the guest did not run in %d of %d quanta: guest time jumped at release?",
		    idle, 2 + NR_SHORT_QUANTA);
	run_tiny_quanta(vcpu, nr_loops, ms);
	WRITE_ONCE(*stop, true);
	pace_set(vcpu, 0, 0);
	gap_tsc = run_until_sync(vcpu, &gap_ns);

	TEST_ASSERT(gap_tsc < GUEST_SLACK_MS * ms,
		    "guest saw its TSC jump by %lu ticks (%lu ms) across a %d ms hold",
		    gap_tsc, gap_tsc / ms, HOLD_MS);
	TEST_ASSERT(gap_ns < GUEST_SLACK_MS * 1000000ull,
		    "guest saw kvmclock jump by %lu ns across a %d ms hold",
		    gap_ns, HOLD_MS);

	/* Over the whole run kvmclock and the TSC agree. */
	tsc_ns = last_uc.args[4] * 1000000 / ms;
	kvm_ns = last_uc.args[5];
	TEST_ASSERT(kvm_ns + GUEST_SLACK_MS * 1000000ull / 10 >= tsc_ns &&
		    tsc_ns + GUEST_SLACK_MS * 1000000ull / 10 >= kvm_ns,
		    "over %d holds the guest's TSC advanced %lu ns, kvmclock %lu ns",
		    2 + NR_SHORT_QUANTA + NR_TINY_QUANTA, tsc_ns, kvm_ns);
	kvm_vm_free(vm);
}

static void test_tscdeadline_timer(void)
{
	uint64_t ms, delay, armed, fired;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	vm = vm_create_with_one_vcpu(&vcpu, guest_tscdeadline_code);
	vcpu_set_cpuid_feature(vcpu, X86_FEATURE_TSC_DEADLINE_TIMER);
	vm_install_exception_handler(vm, TIMER_VECTOR, timer_handler);
	ms = pace_ms(vcpu, 1);
	delay = 200 * ms;
	vcpu_args_set(vcpu, 1, delay);
	armed = run_until_sync(vcpu, NULL);

	/*
	 * Hold the VM for much longer than the timer's delay, soon after
	 * the timer was armed: it must still fire after 'delay' of guest
	 * time, not at once when the vCPU resumes.
	 */
	hold_at(vcpu, armed + 20 * ms, HOLD_MS);
	TEST_ASSERT(vcpu->run->pace.guest_tsc < armed + delay,
		    "test setup: held after the timer's deadline");
	pace_set(vcpu, 0, 0);
	fired = run_until_sync(vcpu, NULL);
	TEST_ASSERT(fired >= delay,
		    "TSC-deadline timer fired after %lu ticks of guest time, armed for %lu",
		    fired, delay);
	TEST_ASSERT(fired < delay + GUEST_SLACK_MS * ms,
		    "TSC-deadline timer fired %lu ms late in guest time",
		    (fired - delay) / ms);
	kvm_vm_free(vm);
}

static void test_periodic_timer(void)
{
	const uint64_t period_ns = 2000000, quantum_ms = 10;
	uint64_t ms, t0, nr, elapsed, expected;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	bool *stop;
	int i;

	vm = vm_create_with_one_vcpu(&vcpu, guest_periodic_code);
	vm_install_exception_handler(vm, TIMER_VECTOR, timer_handler);
	vcpu_args_set(vcpu, 1, period_ns);
	stop = addr_gva2hva(vm, (vm_vaddr_t)&guest_stop);
	ms = pace_ms(vcpu, 1);

	/* Quanta of 10 ms of guest time, each followed by a long hold. */
	t0 = pace_guest_tsc(vcpu);
	for (i = 1; i <= 8; i++)
		hold_at(vcpu, t0 + i * quantum_ms * ms, i == 1 ? 5000 : 300);
	WRITE_ONCE(*stop, true);
	pace_set(vcpu, 0, 0);
	nr = run_until_sync(vcpu, &elapsed);

	expected = elapsed / ms * 1000000 / period_ns;
	TEST_ASSERT(nr <= expected + 2,
		    "%lu periodic ticks in %lu ms of guest time, period %lu ns: burst after holds",
		    nr, elapsed / ms, period_ns);
	TEST_ASSERT(nr >= expected / 2,
		    "%lu periodic ticks in %lu ms of guest time, period %lu ns: timer lost",
		    nr, elapsed / ms, period_ns);
	kvm_vm_free(vm);
}

int main(int argc, char *argv[])
{
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_PACE));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_ADJUST_CLOCK));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_TSC_DEADLINE_TIMER));

	test_clocks();
	test_tscdeadline_timer();
	test_periodic_timer();
	return 0;
}
