// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_CAP_PACE with several vCPUs: guest time is VM-wide.  All vCPUs are
 * held at the same deadline and released again and again; the guest checks
 * that no vCPU's TSC ever goes back, and that no vCPU ever reads a TSC lower
 * than one another vCPU has already published (unless the host's TSC is
 * unstable: KVM keeps vCPUs' TSCs only roughly in step there, with or
 * without pacing), and the host checks that every vCPU was held at or after the
 * deadline, that a held vCPU's guest time does not move, and that the VM's
 * frozen guest time (that of the vCPU held last) stands still.  And what a
 * controller learns of the VM from KVM_GET_PACE_STATE: its id (not another
 * VM's), its number of vCPUs, and which vCPUs a thread runs (IN_RUN).
 */
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "pace_util.h"

#define NR_VCPUS	4
#define NR_QUANTA	10		/* with a hold of 100 ms each */
#define NR_FAST_QUANTA	200		/* released at once */
#define HOLD_TIMEOUT_MS	60000

static uint64_t published;		/* highest TSC any vCPU has read */
static bool cross_vcpu;			/* compare TSCs read on different vCPUs */
static bool guest_stop;

static void guest_code(void)
{
	uint64_t seen, tsc, last = 0;

	while (!READ_ONCE(guest_stop)) {
		seen = READ_ONCE(published);
		tsc = rdtsc();
		__GUEST_ASSERT(tsc >= last, "TSC went back from %lu to %lu", last, tsc);
		last = tsc;
		__GUEST_ASSERT(tsc >= seen || !cross_vcpu,
			       "TSC %lu is below %lu, read earlier by another vCPU",
			       tsc, seen);
		while (seen < tsc &&
		       !__atomic_compare_exchange_n(&published, &seen, tsc, false,
						    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			;
	}
	GUEST_DONE();
}

static struct kvm_vcpu *vcpus[NR_VCPUS];

/* The VM id, vCPU count and IN_RUN flag of every vCPU of @vm. */
static void check_vm_state(struct kvm_vm *vm, struct kvm_vcpu **v, int nr, bool in_run)
{
	struct kvm_vm *other = vm_create_barebones();
	struct kvm_vcpu *ov = __vm_vcpu_add(other, 0);
	struct kvm_pace_state st, ost;
	uint32_t id = 0;
	int i, k;

	for (i = 0; i < nr; i++) {
		pace_state(v[i], &st);
		TEST_ASSERT(st.vm_id && (!i || st.vm_id == id),
			    "vCPU %d: VM id %u, vCPU 0's %u", i, st.vm_id, id);
		id = st.vm_id;
		TEST_ASSERT_EQ(st.nr_vcpus, nr);
		TEST_ASSERT(!!(st.state & KVM_PACE_STATE_IN_RUN) == in_run,
			    "vCPU %d: state 0x%x, a thread is%s in KVM_RUN", i, st.state,
			    in_run ? "" : " not");
		TEST_ASSERT(!st.pad[0] && !st.pad[1] && !st.pad[2], "pad not zero");
		for (k = 0; k < ARRAY_SIZE(st.reserved); k++)
			TEST_ASSERT_EQ(st.reserved[k], 0);
	}
	pace_state(ov, &ost);
	TEST_ASSERT(ost.vm_id && ost.vm_id != id, "two VMs with id %u", id);
	TEST_ASSERT_EQ(ost.nr_vcpus, 1);
	kvm_vm_free(other);
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

int main(int argc, char *argv[])
{
	struct timespec hold = { 0, 100 * 1000000L };
	uint64_t ms, deadline, frozen, held[NR_VCPUS];
	pthread_t threads[NR_VCPUS];
	struct kvm_pace_state st;
	struct kvm_vm *vm;
	int i, q;

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_PACE));

	vm = vm_create_with_vcpus(NR_VCPUS, guest_code, vcpus);
	ms = pace_ms(vcpus[0], 1);
	*(bool *)addr_gva2hva(vm, (vm_vaddr_t)&cross_vcpu) = host_tsc_stable();
	if (!host_tsc_stable())
		pr_info("host TSC unstable: TSCs read on different vCPUs are not compared\n");

	/* Paced from the first instruction. */
	deadline = pace_guest_tsc(vcpus[0]);
	for (i = 0; i < NR_VCPUS; i++)
		pace_set(vcpus[i], deadline, 0);
	check_vm_state(vm, vcpus, NR_VCPUS, false);
	for (i = 0; i < NR_VCPUS; i++)
		pthread_create(&threads[i], NULL, vcpu_thread, vcpus[i]);
	for (i = 0; i < NR_VCPUS; i++)
		pace_wait_held(vcpus[i]->fd, HOLD_TIMEOUT_MS);
	/* held in the kernel: in KVM_RUN */
	check_vm_state(vm, vcpus, NR_VCPUS, true);

	for (q = 0; q < NR_QUANTA + NR_FAST_QUANTA; q++) {
		deadline += 5 * ms;
		for (i = 0; i < NR_VCPUS; i++)
			pace_set(vcpus[i], deadline, 0);
		for (i = 0; i < NR_VCPUS; i++)
			pace_wait_held(vcpus[i]->fd, HOLD_TIMEOUT_MS);

		frozen = 0;
		for (i = 0; i < NR_VCPUS; i++) {
			pace_state(vcpus[i], &st);
			TEST_ASSERT(st.state & KVM_PACE_STATE_FROZEN,
				    "vCPU %d: VM not frozen with all vCPUs held (0x%x)",
				    i, st.state);
			TEST_ASSERT(st.guest_tsc >= deadline,
				    "vCPU %d held early", i);
			held[i] = st.guest_tsc;
			frozen = max_t(uint64_t, frozen, st.guest_tsc);
		}
		/* Hold length; the next quantum is checked on guest time. */
		if (q < NR_QUANTA)
			nanosleep(&hold, NULL);
		for (i = 0; i < NR_VCPUS; i++) {
			pace_state(vcpus[i], &st);
			TEST_ASSERT_EQ(st.guest_tsc, held[i]);
		}
		deadline = frozen;
	}

	for (i = 0; i < NR_VCPUS; i++) {
		pace_state(vcpus[i], &st);
		TEST_ASSERT_EQ(st.holds, NR_QUANTA + NR_FAST_QUANTA + 1);
	}

	/*
	 * One vCPU held while the others run on: to its controller, its
	 * guest time stays where it stopped while the VM's goes on.
	 */
	deadline = frozen + 2 * ms;
	pace_set(vcpus[0], deadline, 0);
	for (i = 1; i < NR_VCPUS; i++)
		pace_set(vcpus[i], frozen + 60000 * ms, 0);
	pace_wait_held(vcpus[0]->fd, HOLD_TIMEOUT_MS);
	pace_state(vcpus[0], &st);
	TEST_ASSERT(!(st.state & KVM_PACE_STATE_FROZEN),
		    "VM frozen while three vCPUs run (0x%x)", st.state);
	held[0] = st.guest_tsc;
	nanosleep(&hold, NULL);
	pace_state(vcpus[0], &st);
	TEST_ASSERT_EQ(st.guest_tsc, held[0]);
	pace_state(vcpus[1], &st);
	TEST_ASSERT(st.guest_tsc > held[0] && !(st.state & KVM_PACE_STATE_HELD),
		    "vCPU 1 at TSC %llu (state 0x%x), vCPU 0 held at %lu",
		    st.guest_tsc, st.state, held[0]);

	WRITE_ONCE(*(bool *)addr_gva2hva(vm, (vm_vaddr_t)&guest_stop), true);
	for (i = 0; i < NR_VCPUS; i++)
		pace_set(vcpus[i], 0, 0);
	for (i = 0; i < NR_VCPUS; i++)
		pace_join_vcpu(threads[i], vcpus[i], vcpus, NR_VCPUS, 60000);
	check_vm_state(vm, vcpus, NR_VCPUS, false);
	kvm_vm_free(vm);
	return 0;
}
