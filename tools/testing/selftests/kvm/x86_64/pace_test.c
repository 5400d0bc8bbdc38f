// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_CAP_PACE: the deadline ioctl's interface, exit-to-userspace mode,
 * successive deadlines, halted vCPUs and the counters; hostile values of
 * the deadline and of the TSC frequency; refusal while the VM uses timers
 * that pacing cannot stop (Hyper-V synthetic timers, Xen timers); the ioctls
 * on a vCPU fd that KVM_CREATE_VCPU has installed but not yet put online.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "hyperv.h"
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

static void guest_sync_loop(void)
{
	for (;;)
		GUEST_SYNC(0);
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
	/* the interrupt bits are pace_irq_test's */
	TEST_ASSERT(st.state & KVM_PACE_STATE_IRQ_INFO, "state 0x%x", st.state);
	TEST_ASSERT_EQ(st.state & ~(KVM_PACE_STATE_IRQ_INFO | KVM_PACE_STATE_IRQ_PENDING),
		       KVM_PACE_STATE_ARMED | KVM_PACE_STATE_HELD | KVM_PACE_STATE_FROZEN);
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
	uint64_t now, deadline;
	int i, halted = 0;

	vm = vm_create_with_one_vcpu(&vcpu, guest_halt);
	now = pace_guest_tsc(vcpu);

	/*
	 * Nothing wakes the vCPU from cli; hlt but the deadline.  Getting to
	 * the hlt can take more than a quantum on a slow host (the first
	 * entries of the debug kernel under emulation): run quanta until the
	 * vCPU was stopped in its halt twice in a row, the second time after
	 * a whole quantum halted.
	 */
	for (i = 0; i < 50 && halted < 2; i++) {
		deadline = now + pace_ms(vcpu, 20);
		pace_set(vcpu, deadline, KVM_PACE_EXIT_TO_USER);
		run_to_deadline(vcpu, deadline);
		now = vcpu->run->pace.guest_tsc;
		vcpu_ioctl(vcpu, KVM_GET_MP_STATE, &mp);
		halted = mp.mp_state == KVM_MP_STATE_HALTED ? halted + 1 : 0;
	}
	TEST_ASSERT(halted == 2, "vCPU not halted at its deadline after %d quanta (mp_state %u)",
		    i, mp.mp_state);
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

/* Run with a SIGALRM after @secs: the vCPU must not be stuck in KVM. */
static int run_for(struct kvm_vcpu *vcpu, int secs)
{
	struct sigaction sa = { .sa_handler = sigalrm };
	int r;

	sigaction(SIGALRM, &sa, NULL);
	alarm(secs);
	r = __vcpu_run(vcpu);
	alarm(0);
	return r;
}

/*
 * Any /dev/kvm user controls the deadline and the TSC frequency: no value
 * of either may trap, overflow or livelock the host.  KVM_SET_TSC_KHZ
 * stores the rate even when it then fails (no TSC scaling), so 1 kHz is
 * reachable without TSC scaling.  Each case must come back from KVM_RUN
 * (the spinning guest never reaches the deadline, SIGALRM ends the run)
 * and leave the host's kernel log clean.
 */
static void test_hostile_values(void)
{
	static const uint32_t rates[] = { 1, 2, 1000, UINT32_MAX };
	static const uint64_t ahead[] = {
		1ull << 45, 1ull << 63, UINT64_MAX / 2,
	};
	struct kvm_pace_state st;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t tsc;
	int i, j, r;

	for (i = 0; i < ARRAY_SIZE(rates); i++) {
		vm = vm_create_with_one_vcpu(&vcpu, guest_spin);
		__vcpu_ioctl(vcpu, KVM_SET_TSC_KHZ, (void *)(unsigned long)rates[i]);
		r = __vcpu_ioctl(vcpu, KVM_GET_TSC_KHZ, NULL);
		pr_info("KVM_SET_TSC_KHZ(%u): rate now %d kHz\n", rates[i], r);
		tsc = pace_guest_tsc(vcpu);
		for (j = 0; j < ARRAY_SIZE(ahead); j++) {
			pace_set(vcpu, tsc + ahead[j], KVM_PACE_EXIT_TO_USER);
			r = run_for(vcpu, 1);
			TEST_ASSERT(r == -1 && errno == EINTR,
				    "%u kHz, deadline +%lu: KVM_RUN %d errno %d",
				    rates[i], ahead[j], r, errno);
			pace_state(vcpu, &st);
			TEST_ASSERT(!(st.state & KVM_PACE_STATE_HELD),
				    "%u kHz: held before a deadline %lu ticks ahead",
				    rates[i], ahead[j]);
		}
		/* The far end of the range, and the TSC rate changing while armed. */
		pace_set(vcpu, UINT64_MAX - 1, KVM_PACE_EXIT_TO_USER);
		r = run_for(vcpu, 1);
		TEST_ASSERT(r == -1 && errno == EINTR, "deadline U64_MAX - 1: %d errno %d",
			    r, errno);
		pace_set(vcpu, UINT64_MAX, KVM_PACE_EXIT_TO_USER);
		__vcpu_ioctl(vcpu, KVM_SET_TSC_KHZ,
			     (void *)(unsigned long)rates[(i + 1) % ARRAY_SIZE(rates)]);
		r = run_for(vcpu, 1);
		TEST_ASSERT(r == -1 && errno == EINTR, "deadline U64_MAX: %d errno %d",
			    r, errno);
		pace_set(vcpu, 0, 0);
		kvm_vm_free(vm);
	}

	/* A deadline already passed, after the rate changed while armed. */
	vm = vm_create_with_one_vcpu(&vcpu, guest_spin);
	tsc = pace_guest_tsc(vcpu);
	pace_set(vcpu, tsc + pace_ms(vcpu, 5), KVM_PACE_EXIT_TO_USER);
	__vcpu_ioctl(vcpu, KVM_SET_TSC_KHZ, (void *)1ul);
	__vcpu_ioctl(vcpu, KVM_SET_TSC_KHZ, (void *)(unsigned long)UINT32_MAX);
	__vcpu_ioctl(vcpu, KVM_SET_TSC_KHZ, (void *)0ul);
	run_to_deadline(vcpu, tsc + pace_ms(vcpu, 5));
	pace_set(vcpu, 0, 0);
	kvm_vm_free(vm);
}

/* Pacing is refused while a Hyper-V synthetic timer is enabled. */
static void test_hyperv_stimer(void)
{
	const uint64_t enable = 1 | (1ull << 16);	/* enable, SINT 1 */
	struct kvm_pace_state st;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	int r;

	if (!kvm_has_cap(KVM_CAP_HYPERV_SYNIC2)) {
		pr_info("no KVM_CAP_HYPERV_SYNIC2: Hyper-V case not run\n");
		return;
	}
	vm = vm_create_with_one_vcpu(&vcpu, guest_sync_loop);
	vcpu_set_hv_cpuid(vcpu);
	vcpu_enable_cap(vcpu, KVM_CAP_HYPERV_SYNIC2, 0);
	vcpu_set_msr(vcpu, HV_X64_MSR_SCONTROL, 1);
	vcpu_set_msr(vcpu, HV_X64_MSR_STIMER0_CONFIG, enable);

	r = __pace_set(vcpu->fd, pace_guest_tsc(vcpu) + pace_ms(vcpu, 5), 0, 0);
	TEST_ASSERT(r == -1 && errno == EOPNOTSUPP,
		    "armed with a synthetic timer enabled: %d errno %d", r, errno);
	assert_not_armed(vcpu);

	/* Allowed once it is disabled; enabling it again ends pacing. */
	vcpu_set_msr(vcpu, HV_X64_MSR_STIMER0_CONFIG, 0);
	pace_set(vcpu, pace_guest_tsc(vcpu) + pace_ms(vcpu, 60000), 0);
	vcpu_set_msr(vcpu, HV_X64_MSR_STIMER0_CONFIG, enable);
	vcpu_run(vcpu);
	TEST_ASSERT_EQ(get_ucall(vcpu, &uc), UCALL_SYNC);
	pace_state(vcpu, &st);
	TEST_ASSERT(!(st.state & KVM_PACE_STATE_ARMED),
		    "still paced with a synthetic timer enabled (0x%x)", st.state);
	kvm_vm_free(vm);
}

/* Pacing is refused while a Xen timer is set up. */
static void test_xen_timer(void)
{
	struct kvm_xen_hvm_config hvmc = {
		.flags = KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL,
		.msr = 0x40000200,
	};
	struct kvm_xen_vcpu_attr timer = {
		.type = KVM_XEN_VCPU_ATTR_TYPE_TIMER,
		.u.timer.port = 5,
		.u.timer.priority = KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL,
	};
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int r;

	if (!(kvm_check_cap(KVM_CAP_XEN_HVM) & KVM_XEN_HVM_CONFIG_EVTCHN_SEND)) {
		pr_info("no Xen event channels: Xen case not run\n");
		return;
	}
	vm = vm_create_with_one_vcpu(&vcpu, guest_spin);
	vm_ioctl(vm, KVM_XEN_HVM_CONFIG, &hvmc);
	vcpu_ioctl(vcpu, KVM_XEN_VCPU_SET_ATTR, &timer);
	r = __pace_set(vcpu->fd, pace_guest_tsc(vcpu) + pace_ms(vcpu, 5), 0, 0);
	TEST_ASSERT(r == -1 && errno == EOPNOTSUPP,
		    "armed with a Xen timer: %d errno %d", r, errno);
	assert_not_armed(vcpu);
	timer.u.timer.port = 0;
	vcpu_ioctl(vcpu, KVM_XEN_VCPU_SET_ATTR, &timer);
	pace_set(vcpu, pace_guest_tsc(vcpu) + pace_ms(vcpu, 5), 0);
	pace_set(vcpu, 0, 0);
	kvm_vm_free(vm);
}

/*
 * KVM_CREATE_VCPU installs the vCPU's fd a moment before the vCPU is online.
 * A thread that guesses the fd number races the creation with
 * KVM_GET_PACE_STATE: whenever the ioctl succeeds, the VM must count the
 * vCPU already.  The window is a few hundred ns, and most calls that
 * succeed land after the creation: this is a smoke test that a kernel must
 * always pass, not a reliable reproducer of a kernel without the wait.
 */
#define RACE_VMS		4
#define RACE_VCPUS		64

static int race_fd = -1;
static int race_round;
static bool race_stop;
static uint32_t race_seen[RACE_VMS * RACE_VCPUS];

static void *create_racer(void *arg)
{
	struct kvm_pace_state st;
	int round, fd;

	while (!READ_ONCE(race_stop)) {
		round = __atomic_load_n(&race_round, __ATOMIC_ACQUIRE);
		fd = READ_ONCE(race_fd);
		if (fd < 0) {
			sched_yield();
			continue;
		}
		if (ioctl(fd, KVM_GET_PACE_STATE, &st))
			continue;
		if (__atomic_load_n(&race_round, __ATOMIC_ACQUIRE) == round &&
		    st.nr_vcpus < race_seen[round])
			WRITE_ONCE(race_seen[round], st.nr_vcpus);
	}
	return NULL;
}

static void test_create_race(void)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int v, i, round = 0, next, hits = 0;
	pthread_t racer;

	pthread_create(&racer, NULL, create_racer, NULL);
	for (v = 0; v < RACE_VMS; v++) {
		vm = vm_create(RACE_VCPUS);
		for (i = 0; i < RACE_VCPUS; i++, round++) {
			race_seen[round] = UINT32_MAX;
			/* The lowest free fd is the one the vCPU gets. */
			next = fcntl(vm->fd, F_DUPFD, 0);
			TEST_ASSERT(next >= 0, "F_DUPFD");
			close(next);
			WRITE_ONCE(race_fd, next);
			__atomic_store_n(&race_round, round, __ATOMIC_RELEASE);
			vcpu = vm_vcpu_add(vm, i, guest_spin);
			WRITE_ONCE(race_fd, -1);
			__atomic_store_n(&race_round, round + 1, __ATOMIC_RELEASE);
			if (vcpu->fd != next || READ_ONCE(race_seen[round]) == UINT32_MAX)
				continue;
			hits++;
			TEST_ASSERT(race_seen[round] > i,
				    "KVM_GET_PACE_STATE on vCPU %d's fd during its creation: %u vCPUs",
				    i, race_seen[round]);
		}
		kvm_vm_free(vm);
	}
	WRITE_ONCE(race_stop, true);
	pthread_join(racer, NULL);
	pr_info("creation race: the ioctl succeeded on %d of %d new vCPU fds before the next creation\n",
		hits, round);
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
	test_hostile_values();
	test_hyperv_stimer();
	test_xen_timer();
	test_create_race();
	return 0;
}
