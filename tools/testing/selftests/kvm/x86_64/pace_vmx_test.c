// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_CAP_PACE and nested VMX: the VMX preemption timer of a nested guest
 * runs on host time, which pacing does not stop.  Pacing ends (the deadline
 * is disarmed) when a paced vCPU runs a nested guest, and it cannot be armed
 * while one runs.  Needs Intel VMX: it skips elsewhere.
 */
#include <signal.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "vmx.h"
#include "pace_util.h"

static void l2_guest_code(void)
{
	for (;;)
		cpu_relax();
}

static void l1_guest_code(struct vmx_pages *vmx_pages)
{
#define L2_GUEST_STACK_SIZE 64
	unsigned long l2_guest_stack[L2_GUEST_STACK_SIZE];

	GUEST_ASSERT(prepare_for_vmx_operation(vmx_pages));
	GUEST_ASSERT(load_vmcs(vmx_pages));
	prepare_vmcs(vmx_pages, l2_guest_code,
		     &l2_guest_stack[L2_GUEST_STACK_SIZE]);
	GUEST_SYNC(0);
	GUEST_ASSERT(!vmlaunch());
	GUEST_FAIL("L2 returned");
}

static void sigalrm(int sig)
{
}

int main(int argc, char *argv[])
{
	struct sigaction sa = { .sa_handler = sigalrm };
	vm_vaddr_t vmx_pages_gva;
	struct kvm_pace_state st;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	int r;

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_PACE));
	TEST_REQUIRE(kvm_cpu_has(X86_FEATURE_VMX));

	vm = vm_create_with_one_vcpu(&vcpu, l1_guest_code);
	vcpu_alloc_vmx(vm, &vmx_pages_gva);
	vcpu_args_set(vcpu, 1, vmx_pages_gva);
	vcpu_run(vcpu);
	TEST_ASSERT_EQ(get_ucall(vcpu, &uc), UCALL_SYNC);

	/* Armed in L1; the deadline is reached while L2 runs. */
	pace_set(vcpu, pace_guest_tsc(vcpu) + pace_ms(vcpu, 10), KVM_PACE_EXIT_TO_USER);
	sigaction(SIGALRM, &sa, NULL);
	alarm(2);
	r = __vcpu_run(vcpu);
	alarm(0);
	TEST_ASSERT(r == -1 && errno == EINTR,
		    "KVM_RUN %d errno %d exit %d: L2 spins, only SIGALRM ends the run",
		    r, errno, vcpu->run->exit_reason);
	pace_state(vcpu, &st);
	TEST_ASSERT(!(st.state & KVM_PACE_STATE_ARMED),
		    "still paced while L2 runs (state 0x%x)", st.state);

	r = __pace_set(vcpu->fd, pace_guest_tsc(vcpu) + pace_ms(vcpu, 10), 0, 0);
	TEST_ASSERT(r == -1 && errno == EOPNOTSUPP,
		    "armed while L2 runs: %d errno %d", r, errno);
	kvm_vm_free(vm);
	return 0;
}
