// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_CAP_PACE: the deadline ioctl's interface, exit-to-userspace mode,
 * successive deadlines, halted vCPUs and the counters.
 */
#include <fcntl.h>
#include <signal.h>
#include <time.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "pace_util.h"

static void guest_spin(void)
{
	for (;;)
		cpu_relax();
}

static void guest_halt(void)
{
	asm volatile("cli; hlt");
	GUEST_FAIL("woke up from cli; hlt");
}

static void assert_not_armed(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_state st;

	/* FROZEN may stay set: guest time resumes when a vCPU runs. */
	pace_state(vcpu, &st);
	TEST_ASSERT_EQ(st.state & (KVM_PACE_STATE_ARMED | KVM_PACE_STATE_HELD), 0);
	TEST_ASSERT_EQ(st.deadline, 0);
}

static void test_invalid(struct kvm_vm *vm, struct kvm_vcpu *vcpu)
{
	static const uint32_t pads[] = { 1, 0x80000000u, 0xffffffffu };
	struct kvm_pace_deadline d = { .deadline = 1 };
	struct kvm_pace_state st;
	int bit, fd, i, r;

	for (bit = 0; bit < 32; bit++) {
		if (BIT(bit) & KVM_PACE_VALID_FLAGS)
			continue;
		r = __pace_set(vcpu->fd, 1, BIT(bit), 0);
		TEST_ASSERT(r == -1 && errno == EINVAL,
			    "flag bit %d: expected EINVAL, got %d errno %d",
			    bit, r, errno);
	}
	for (i = 0; i < ARRAY_SIZE(pads); i++) {
		r = __pace_set(vcpu->fd, 1, 0, pads[i]);
		TEST_ASSERT(r == -1 && errno == EINVAL,
			    "pad 0x%x: expected EINVAL, got %d errno %d",
			    pads[i], r, errno);
	}
	/* Rejected requests change nothing. */
	assert_not_armed(vcpu);

	r = ioctl(vcpu->fd, KVM_SET_PACE_DEADLINE, (void *)8);
	TEST_ASSERT(r == -1 && errno == EFAULT, "bad pointer: %d errno %d", r, errno);
	r = ioctl(vcpu->fd, KVM_GET_PACE_STATE, NULL);
	TEST_ASSERT(r == -1 && errno == EFAULT, "bad pointer: %d errno %d", r, errno);
	assert_not_armed(vcpu);

	/* Not a vCPU fd: the VM, /dev/kvm and an unrelated file. */
	r = ioctl(vm->fd, KVM_SET_PACE_DEADLINE, &d);
	TEST_ASSERT(r == -1 && errno == ENOTTY, "VM fd: %d errno %d", r, errno);
	r = ioctl(vm->fd, KVM_GET_PACE_STATE, &st);
	TEST_ASSERT(r == -1 && errno == ENOTTY, "VM fd: %d errno %d", r, errno);
	r = ioctl(vm->kvm_fd, KVM_SET_PACE_DEADLINE, &d);
	TEST_ASSERT(r == -1 && errno == EINVAL, "/dev/kvm: %d errno %d", r, errno);
	fd = open("/dev/null", O_RDWR);
	TEST_ASSERT(fd >= 0, "open /dev/null");
	r = ioctl(fd, KVM_SET_PACE_DEADLINE, &d);
	TEST_ASSERT(r == -1 && errno == ENOTTY, "/dev/null: %d errno %d", r, errno);
	close(fd);

	/* Disarming what was never armed is fine. */
	pace_set(vcpu, 0, 0);
	assert_not_armed(vcpu);
}

static uint64_t vcpu_stat(struct kvm_vcpu *vcpu, const char *name)
{
	struct kvm_stats_header header;
	struct kvm_stats_desc *descs, *desc;
	int fd = vcpu_get_stats_fd(vcpu);
	uint64_t val;
	int i;

	read_stats_header(fd, &header);
	descs = read_stats_descriptors(fd, &header);
	for (i = 0; i < header.num_desc; i++) {
		desc = get_stats_descriptor(descs, i, &header);
		if (strcmp(desc->name, name))
			continue;
		TEST_ASSERT_EQ(desc->size, 1);
		read_stat_data(fd, &header, desc, &val, 1);
		free(descs);
		close(fd);
		return val;
	}
	TEST_FAIL("no binary stat '%s'", name);
	return 0;
}

static void assert_stats(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_state st;

	pace_state(vcpu, &st);
	TEST_ASSERT_EQ(vcpu_stat(vcpu, "pace_holds"), st.holds);
	TEST_ASSERT_EQ(vcpu_stat(vcpu, "pace_exits"), st.exits);
	TEST_ASSERT_EQ(vcpu_stat(vcpu, "pace_overshoot_last"), st.overshoot_last);
	TEST_ASSERT_EQ(vcpu_stat(vcpu, "pace_overshoot_max"), st.overshoot_max);
	/* held_ns in the binary stats counts completed holds only */
	TEST_ASSERT(vcpu_stat(vcpu, "pace_held_ns") <= st.held_ns,
		    "binary stats held %lu ns, KVM_GET_PACE_STATE %llu ns",
		    vcpu_stat(vcpu, "pace_held_ns"), st.held_ns);
}

static void run_to_deadline(struct kvm_vcpu *vcpu, uint64_t deadline)
{
	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_PACE);
	TEST_ASSERT_EQ(vcpu->run->pace.deadline, deadline);
	TEST_ASSERT(vcpu->run->pace.guest_tsc >= deadline,
		    "stopped early: guest TSC %llu < deadline %lu",
		    vcpu->run->pace.guest_tsc, deadline);
}

static void test_exit_to_user(struct kvm_vcpu *vcpu)
{
	uint64_t quantum = pace_ms(vcpu, 2), deadline, last;
	struct kvm_pace_state st;
	int i;

	/* Never paced: the counters exist and read zero. */
	TEST_ASSERT_EQ(vcpu_stat(vcpu, "pace_holds"), 0);
	TEST_ASSERT_EQ(vcpu_stat(vcpu, "pace_held_ns"), 0);

	deadline = pace_guest_tsc(vcpu) + quantum;
	pace_set(vcpu, deadline, KVM_PACE_EXIT_TO_USER);
	run_to_deadline(vcpu, deadline);

	pace_state(vcpu, &st);
	TEST_ASSERT_EQ(st.state, KVM_PACE_STATE_ARMED | KVM_PACE_STATE_HELD |
				 KVM_PACE_STATE_FROZEN);
	TEST_ASSERT_EQ(st.deadline, deadline);
	TEST_ASSERT_EQ(st.holds, 1);
	TEST_ASSERT_EQ(st.exits, 1);
	TEST_ASSERT_EQ(st.overshoot_last, vcpu->run->pace.guest_tsc - deadline);
	/* The only vCPU is held: guest time stands still. */
	TEST_ASSERT_EQ(st.guest_tsc, vcpu->run->pace.guest_tsc);
	last = st.guest_tsc;

	/* Running again without a new deadline stops at once, same time. */
	run_to_deadline(vcpu, deadline);
	TEST_ASSERT_EQ(vcpu->run->pace.guest_tsc, last);

	for (i = 0; i < 8; i++) {
		deadline = last + quantum;
		pace_set(vcpu, deadline, KVM_PACE_EXIT_TO_USER);
		run_to_deadline(vcpu, deadline);
		TEST_ASSERT(vcpu->run->pace.guest_tsc > last,
			    "guest time did not advance: %llu after %lu",
			    vcpu->run->pace.guest_tsc, last);
		last = vcpu->run->pace.guest_tsc;
	}

	pace_state(vcpu, &st);
	TEST_ASSERT_EQ(st.holds, 9);
	TEST_ASSERT_EQ(st.exits, 10);
	assert_stats(vcpu);
	TEST_ASSERT(st.overshoot_max >= st.overshoot_last, "overshoot max %llu < last %llu",
		    st.overshoot_max, st.overshoot_last);

	pace_set(vcpu, 0, 0);
	assert_not_armed(vcpu);
	/* Counters survive disarming. */
	pace_state(vcpu, &st);
	TEST_ASSERT_EQ(st.holds, 9);
	TEST_ASSERT(st.held_ns > 0, "no time spent held");
	assert_stats(vcpu);
}

static void test_halted(void)
{
	struct kvm_mp_state mp;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t deadline;

	vm = vm_create_with_one_vcpu(&vcpu, guest_halt);
	deadline = pace_guest_tsc(vcpu) + pace_ms(vcpu, 20);
	pace_set(vcpu, deadline, KVM_PACE_EXIT_TO_USER);

	/* Nothing wakes the vCPU from cli; hlt but the deadline. */
	run_to_deadline(vcpu, deadline);
	vcpu_ioctl(vcpu, KVM_GET_MP_STATE, &mp);
	TEST_ASSERT_EQ(mp.mp_state, KVM_MP_STATE_HALTED);
	kvm_vm_free(vm);
}

static void sigalrm(int sig)
{
}

/*
 * An AP waiting for INIT/SIPI never enters the guest, yet guest time passes
 * for it: it must stop at its deadline like a halted vCPU.
 */
static void test_waiting_for_sipi(void)
{
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_UNINITIALIZED };
	struct sigaction sa = { .sa_handler = sigalrm };
	struct kvm_vcpu *vcpus[2];
	uint64_t deadline;
	struct kvm_vm *vm;
	time_t start;
	int r;

	vm = vm_create_with_vcpus(2, guest_spin, vcpus);
	vcpu_ioctl(vcpus[1], KVM_SET_MP_STATE, &mp);
	deadline = pace_guest_tsc(vcpus[1]) + pace_ms(vcpus[1], 20);
	pace_set(vcpus[1], deadline, KVM_PACE_EXIT_TO_USER);

	/* KVM_RUN returns -EAGAIN when the AP wakes up without a SIPI. */
	sigaction(SIGALRM, &sa, NULL);
	start = time(NULL);
	do {
		alarm(2);
		r = __vcpu_run(vcpus[1]);
		alarm(0);
		TEST_ASSERT(time(NULL) - start < 30,
			    "the AP waiting for SIPI was not stopped at its deadline");
	} while (r == -1 && (errno == EAGAIN || errno == EINTR));
	TEST_ASSERT(!r, "KVM_RUN: %d errno %d", r, errno);
	TEST_ASSERT_KVM_EXIT_REASON(vcpus[1], KVM_EXIT_PACE);
	TEST_ASSERT(vcpus[1]->run->pace.guest_tsc >= deadline, "AP stopped early");
	vcpu_ioctl(vcpus[1], KVM_GET_MP_STATE, &mp);
	TEST_ASSERT_EQ(mp.mp_state, KVM_MP_STATE_UNINITIALIZED);
	kvm_vm_free(vm);
}

int main(int argc, char *argv[])
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_PACE));
	TEST_ASSERT_EQ(kvm_check_cap(KVM_CAP_PACE), KVM_PACE_VALID_FLAGS);

	vm = vm_create_with_one_vcpu(&vcpu, guest_spin);
	test_invalid(vm, vcpu);
	test_exit_to_user(vcpu);
	kvm_vm_free(vm);

	test_halted();
	test_waiting_for_sipi();
	return 0;
}
