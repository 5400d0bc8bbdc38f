// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_CAP_PACE time model: while a VM is paced, kvmclock is a fixed function
 * of the guest TSC (the paced clock that KVM_GET_PACE_STATE describes), and
 * the guest time reported at each freeze is what the guest's own clocks say.
 *
 * Every vCPU reads its TSC and its kvmclock in a loop and checks on every
 * read that kvmclock is the paced clock of that TSC within 1 us, and that
 * neither clock ever goes back, also across vCPUs (unless the host's TSC is
 * unstable: KVM keeps vCPUs' TSCs only roughly in step there).  The host holds the VM
 * thousands of times, the way vmpace does: every vCPU armed at one deadline,
 * wait for all of them, raise them all again.  At every freeze it checks, on
 * each vCPU's own pvclock page, that kvmclock at the frozen TSC moved by
 * exactly the guest time reported since the start, and that KVM_GET_CLOCK
 * reads the same.  Cases: one busy vCPU and four busy vCPUs with quanta of
 * varied length and holds of varied host time, and one busy plus one idle
 * vCPU (halted between LAPIC timer interrupts, 3 quanta apart) in fixed quanta
 * of 1 ms (-q: longer, for a host so slow that a released vCPU thread does
 * not get to run within 1 ms: its guest time passes all the same).
 */
#include <asm/kvm_para.h>
#include <asm/pvclock.h>
#include <asm/pvclock-abi.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "apic.h"
#include "pace_util.h"

#define MAX_VCPUS		4
#define DEFAULT_HOLDS		10000
#define TOLERANCE_NS		1000
#define TIMER_VECTOR		0xec
#define HOLD_TIMEOUT_MS		60000
#define IDLE_TICK_QUANTA		3

/* The paced clock, written by the host once the VM is paced. */
static struct pvclock_vcpu_time_info paced_clock;
static bool guest_go;
static bool guest_stop;
static bool cross_vcpu;			/* compare TSCs read on different vCPUs */
static uint64_t published;		/* highest TSC any vCPU has read */
static uint64_t nr_reads[MAX_VCPUS];

/*
 * The idle vCPU arms its timer before each hlt.  Under QEMU's TCG, which runs
 * the test VM, a nested guest can take the interrupt between sti and hlt
 * (TCG's VMRUN does not restore the interrupt shadow that KVM saw at the
 * exit, so KVM's interrupt window opens at once), and the interrupt is pending
 * before the hlt as well when arming took longer than the period (the debug
 * kernel under emulation).  The handler would return to a hlt that no timer
 * ends: it skips it, as if the interrupt had woken it.
 */
static void timer_handler(struct ex_regs *regs)
{
	if (*(uint8_t *)regs->rip == 0xf4)	/* hlt */
		regs->rip++;
	x2apic_write_reg(APIC_EOI, 0);
}

static uint64_t pvclock_read(struct pvclock_vcpu_time_info *pvti,
			     uint64_t *tsc)
{
	unsigned int version;
	uint64_t ns;

	do {
		version = pvclock_read_begin(pvti);
		*tsc = rdtsc();
		ns = __pvclock_read_cycles(pvti, *tsc);
	} while (pvclock_read_retry(pvti, version));
	return ns;
}

static void guest_check(uint32_t idx, struct pvclock_vcpu_time_info *pvti,
			uint64_t *prev_tsc, uint64_t *prev_ns)
{
	uint64_t seen = READ_ONCE(published);
	uint64_t tsc, ns, want;

	ns = pvclock_read(pvti, &tsc);
	want = __pvclock_read_cycles(&paced_clock, tsc);
	__GUEST_ASSERT(ns + TOLERANCE_NS >= want && ns <= want + TOLERANCE_NS,
		       "vCPU %u: kvmclock %lu ns at TSC %lu, the paced clock %lu ns (pvclock %lu ns at TSC %lu, mul %u shift %d)",
		       idx, ns, tsc, want, pvti->system_time, pvti->tsc_timestamp,
		       pvti->tsc_to_system_mul, pvti->tsc_shift);
	__GUEST_ASSERT(tsc >= *prev_tsc && ns >= *prev_ns,
		       "vCPU %u: went back from TSC %lu/%lu ns to %lu/%lu ns",
		       idx, *prev_tsc, *prev_ns, tsc, ns);
	__GUEST_ASSERT(tsc >= seen || !cross_vcpu,
		       "vCPU %u: TSC %lu is below %lu, read earlier by another vCPU",
		       idx, tsc, seen);
	while (seen < tsc &&
	       !__atomic_compare_exchange_n(&published, &seen, tsc, false,
					    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
	*prev_tsc = tsc;
	*prev_ns = ns;
	WRITE_ONCE(nr_reads[idx], nr_reads[idx] + 1);
}

static void guest_code(uint32_t idx, vm_paddr_t pvti_pa,
		       struct pvclock_vcpu_time_info *pvti, uint64_t idle_ticks)
{
	uint64_t prev_tsc = 0, prev_ns = 0;

	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, pvti_pa | KVM_MSR_ENABLED);
	if (idle_ticks) {
		x2apic_enable();
		x2apic_write_reg(APIC_LVTT, APIC_LVT_TIMER_TSCDEADLINE | TIMER_VECTOR);
	}
	while (!READ_ONCE(guest_go))
		cpu_relax();

	while (!READ_ONCE(guest_stop)) {
		if (idle_ticks) {
			/* Idle until the next timer interrupt. */
			wrmsr(MSR_IA32_TSC_DEADLINE, rdtsc() + idle_ticks);
			asm volatile("sti; hlt; cli");
			/* Pacing may have ended meanwhile. */
			if (READ_ONCE(guest_stop))
				break;
		}
		guest_check(idx, pvti, &prev_tsc, &prev_ns);
	}
	GUEST_DONE();
}

static void *vcpu_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_DONE:
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
	return NULL;
}

static uint64_t get_clock(struct kvm_vm *vm)
{
	struct kvm_clock_data data = {};

	vm_ioctl(vm, KVM_GET_CLOCK, &data);
	TEST_ASSERT(!(data.flags & KVM_CLOCK_REALTIME),
		    "a paced VM's KVM_GET_CLOCK claims a relation to host time");
	return data.clock;
}

/*
 * Every vCPU is held: the VM's guest time is the largest held guest TSC,
 * that of the vCPU held last.  Returns it, with its paced-clock ns.
 */
static uint64_t frozen_time(struct kvm_vcpu **vcpus, int nr, uint64_t deadline,
			    uint64_t *ns, struct kvm_pace_state *scale)
{
	struct kvm_pace_state st;
	uint64_t tsc = 0;
	int i;

	for (i = 0; i < nr; i++) {
		pace_state(vcpus[i], &st);
		TEST_ASSERT((st.state & KVM_PACE_STATE_HELD) &&
			    (st.state & KVM_PACE_STATE_FROZEN),
			    "vCPU %d: not held in a frozen VM (state 0x%x)", i, st.state);
		TEST_ASSERT(st.guest_tsc >= deadline,
			    "vCPU %d held at TSC %llu, before its deadline %lu",
			    i, st.guest_tsc, deadline);
		TEST_ASSERT(st.tsc_to_ns_mul, "vCPU %d: paced VM without a paced clock", i);
		if (st.guest_tsc >= tsc) {
			tsc = st.guest_tsc;
			*ns = st.guest_ns;
			if (scale)
				*scale = st;
		}
	}
	return tsc;
}

static void run_case(const char *name, int nr, bool idle, int quantum_ms,
		     int nr_holds)
{
	struct pvclock_vcpu_time_info *pvti[MAX_VCPUS], *clock;
	struct timespec start, end, pause = { 0, 2000000 };
	struct kvm_pace_state scale, st;
	uint64_t ms, us, tsc0, ns0, tsc, ns, q, deadline, kc;
	uint64_t reported = 0, total, *reads, f0_kc[MAX_VCPUS];
	bool have_f0[MAX_VCPUS] = {};
	struct kvm_vcpu *vcpus[MAX_VCPUS];
	pthread_t threads[MAX_VCPUS];
	vm_vaddr_t page;
	struct kvm_vm *vm;
	int i, k;

	clock_gettime(CLOCK_MONOTONIC, &start);
	vm = vm_create_with_vcpus(nr, guest_code, vcpus);
	ms = pace_ms(vcpus[0], 1);
	us = ms / 1000;
	for (i = 0; i < nr; i++) {
		page = vm_vaddr_alloc_page(vm);
		pvti[i] = addr_gva2hva(vm, page);
		vcpu_args_set(vcpus[i], 4, i, addr_gva2gpa(vm, page), page,
			      idle && i == 1 ? IDLE_TICK_QUANTA * quantum_ms * ms : 0);
	}
	if (idle) {
		vcpu_set_cpuid_feature(vcpus[1], X86_FEATURE_TSC_DEADLINE_TIMER);
		vm_install_exception_handler(vm, TIMER_VECTOR, timer_handler);
	}
	reads = addr_gva2hva(vm, (vm_vaddr_t)&nr_reads);
	*(bool *)addr_gva2hva(vm, (vm_vaddr_t)&cross_vcpu) = host_tsc_stable();
	for (i = 0; i < nr; i++)
		pthread_create(&threads[i], NULL, vcpu_thread, vcpus[i]);

	/* Freeze the guest where it is, as vmpace does when it attaches. */
	deadline = pace_guest_tsc(vcpus[0]);
	for (i = 0; i < nr; i++)
		pace_set(vcpus[i], deadline, 0);
	for (i = 0; i < nr; i++)
		pace_wait_held(vcpus[i]->fd, HOLD_TIMEOUT_MS);
	tsc0 = frozen_time(vcpus, nr, deadline, &ns0, &scale);
	TEST_ASSERT_EQ(get_clock(vm), ns0);

	/* The paced clock, for the guest's own check of every read. */
	clock = addr_gva2hva(vm, (vm_vaddr_t)&paced_clock);
	clock->tsc_timestamp = tsc0;
	clock->system_time = ns0;
	clock->tsc_to_system_mul = scale.tsc_to_ns_mul;
	clock->tsc_shift = scale.tsc_shift;
	WRITE_ONCE(*(bool *)addr_gva2hva(vm, (vm_vaddr_t)&guest_go), true);

	tsc = tsc0;
	for (k = 1; k <= nr_holds; k++) {
		q = quantum_ms ? quantum_ms * ms : 20 * us + random() % (2 * ms);
		deadline = tsc + q;
		for (i = 0; i < nr; i++)
			pace_set(vcpus[i], deadline, 0);
		for (i = 0; i < nr; i++)
			pace_wait_held(vcpus[i]->fd, HOLD_TIMEOUT_MS);
		tsc = frozen_time(vcpus, nr, deadline, &ns, NULL);

		/* The paced clock as KVM_GET_PACE_STATE describes it (rounding). */
		kc = __pvclock_read_cycles(clock, tsc);
		TEST_ASSERT(kc + 2 >= ns && kc <= ns + 2,
			    "hold %d: guest_ns %lu at TSC %lu, mul/shift give %lu",
			    k, ns, tsc, kc);

		/* Each vCPU's own kvmclock at the frozen TSC. */
		for (i = 0; i < nr; i++) {
			if (!READ_ONCE(reads[i]))
				continue;	/* not run since pacing started */
			kc = __pvclock_read_cycles(pvti[i], tsc);
			TEST_ASSERT(kc + TOLERANCE_NS >= ns && kc <= ns + TOLERANCE_NS,
				    "hold %d: vCPU %d's kvmclock reads %lu ns at the frozen TSC %lu, the reports say %lu",
				    k, i, kc, tsc, ns);
			if (!have_f0[i]) {
				f0_kc[i] = kc - (ns - ns0);
				have_f0[i] = true;
			}
			TEST_ASSERT(kc - f0_kc[i] + TOLERANCE_NS >= ns - ns0 &&
				    kc - f0_kc[i] <= ns - ns0 + TOLERANCE_NS,
				    "hold %d: vCPU %d's kvmclock advanced %lu ns, the reports %lu ns",
				    k, i, kc - f0_kc[i], ns - ns0);
		}

		/* Reports in us as vmpace sends them: their sum stays exact. */
		total = (ns - ns0) / 1000;
		TEST_ASSERT(total >= reported, "hold %d: guest time went back", k);
		reported = total;

		/* Host time held varies; guest time does not move meanwhile. */
		if (k % 97 == 0 || k % 1999 == 0) {
			if (k % 1999 == 0)
				pause.tv_nsec = 200000000;
			nanosleep(&pause, NULL);
			pause.tv_nsec = 2000000;
			TEST_ASSERT_EQ(get_clock(vm), ns);
			for (i = 0; i < nr; i++) {
				pace_state(vcpus[i], &st);
				TEST_ASSERT(st.guest_tsc <= tsc && st.guest_tsc >= deadline,
					    "hold %d: vCPU %d moved to TSC %llu while held",
					    k, i, st.guest_tsc);
			}
			TEST_ASSERT_EQ(frozen_time(vcpus, nr, deadline, &kc, NULL), tsc);
		}
	}

	/*
	 * The guests finish while still paced: a hold may have come in the
	 * middle of a check, which completes after the release.
	 */
	WRITE_ONCE(*(bool *)addr_gva2hva(vm, (vm_vaddr_t)&guest_stop), true);
	for (i = 0; i < nr; i++)
		pace_set(vcpus[i], tsc + 60000 * ms, 0);
	for (i = 0; i < nr; i++)
		pace_join_vcpu(threads[i], vcpus[i], vcpus, nr, HOLD_TIMEOUT_MS);
	for (i = 0; i < nr; i++)
		pace_set(vcpus[i], 0, 0);
	for (i = 0; i < nr; i++)
		TEST_ASSERT(reads[i] > (idle && i == 1 ? 10 : 1000),
			    "vCPU %d read its clocks only %lu times", i, reads[i]);
	/*
	 * The idle vCPU's timer kept firing through the holds, although each
	 * quantum is shorter than its period.  A wakeup costs guest time too
	 * (exits, the hlt), more than a tick's worth under emulation.
	 */
	if (idle)
		TEST_ASSERT(reads[1] >= (ns - ns0) / 1000000 /
				       (IDLE_TICK_QUANTA * quantum_ms) / 10,
			    "idle vCPU woke %lu times in %lu ms of guest time (%d ms ticks)",
			    reads[1], (ns - ns0) / 1000000,
			    IDLE_TICK_QUANTA * quantum_ms);
	clock_gettime(CLOCK_MONOTONIC, &end);
	pr_info("%s: %d holds, %lu us of guest time reported, %.1f s of host time\n",
		name, nr_holds, reported,
		end.tv_sec - start.tv_sec + (end.tv_nsec - start.tv_nsec) / 1e9);
	kvm_vm_free(vm);
}

int main(int argc, char *argv[])
{
	int holds = DEFAULT_HOLDS, only = 0, quantum_ms = 1, opt;
	char name[64];

	while ((opt = getopt(argc, argv, "n:c:q:")) != -1) {
		switch (opt) {
		case 'n':
			holds = atoi_positive("Number of holds", optarg);
			break;
		case 'q':
			quantum_ms = atoi_positive("Quantum of case 3 (ms)", optarg);
			break;
		case 'c':
			only = atoi_positive("Case", optarg);
			break;
		default:
			pr_info("usage: %s [-n holds] [-c case: 1 busy, 2 four busy, 3 busy+idle] [-q case 3's quantum in ms]\n",
				argv[0]);
			exit(KSFT_FAIL);
		}
	}

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_PACE));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_ADJUST_CLOCK));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_TSC_DEADLINE_TIMER));
	if (!host_tsc_stable())
		pr_info("host TSC unstable: TSCs read on different vCPUs are not compared\n");
	srandom(1);

	if (!only || only == 1)
		run_case("1 busy vCPU", 1, false, 0, holds);
	if (!only || only == 2)
		run_case("4 busy vCPUs", 4, false, 0, holds);
	snprintf(name, sizeof(name), "1 busy + 1 idle vCPU, %d ms quanta", quantum_ms);
	if (!only || only == 3)
		run_case(name, 2, true, quantum_ms, holds);
	return 0;
}
