// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_CAP_PACE: what KVM_GET_PACE_STATE says about interrupts raised while
 * the VM is frozen, for a controller that hands a device its input at a
 * guest time and must know the interrupt reached KVM before guest time
 * runs on (irqs, KVM_PACE_STATE_IRQ_PENDING):
 *  - a vCPU never armed counts nothing but reports a pending interrupt;
 *  - an MSI to a held vCPU is counted and pending at once, a second of the
 *    same vector is counted again (it coalesces in the IRR);
 *  - the interrupt stays pending across a quantum in which the guest has
 *    interrupts off, and is gone after the quantum in which it took it,
 *    its handler having run once;
 *  - an NMI (KVM_NMI) is pending until the guest took it and is not
 *    counted; an MSI to another APIC ID is not counted either;
 *  - as a controller sees it: the vCPU held inside KVM_RUN (hold mode) by
 *    its own thread, the state read from this one, an MSI through an
 *    irqfd counted (at once, or within a bounded wait if KVM defers it),
 *    and both vectors taken in the next quantum.
 */
#include <pthread.h>
#include <sys/eventfd.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "apic.h"
#include "pace_util.h"

#define VECTOR		0x40
#define VECTOR2		0x41	/* through an irqfd */
#define IRQFD_GSI	10
#define MSI_ADDR	0xfee00000u	/* physical destination APIC ID 0 */

static uint64_t allow_irq, done, epoch;	/* host -> guest */
static uint64_t handled, handled2, seen_epoch;	/* guest -> host */
static uint64_t nmis;

static void guest_irq(struct ex_regs *regs)
{
	WRITE_ONCE(handled, handled + 1);
	x2apic_write_reg(APIC_EOI, 0);
}

static void guest_irq2(struct ex_regs *regs)
{
	WRITE_ONCE(handled2, handled2 + 1);
	x2apic_write_reg(APIC_EOI, 0);
}

static void guest_nmi(struct ex_regs *regs)
{
	WRITE_ONCE(nmis, nmis + 1);
}

static void guest_code(void)
{
	x2apic_enable();
	GUEST_SYNC(0);
	/* interrupts off, but for one instruction per turn once allowed */
	for (;;) {
		WRITE_ONCE(seen_epoch, READ_ONCE(epoch));
		if (READ_ONCE(done))
			GUEST_DONE();
		if (READ_ONCE(allow_irq))
			asm volatile("sti; nop; cli");
		cpu_relax();
	}
}

static int signal_msi(struct kvm_vm *vm, uint32_t dest, uint32_t vector)
{
	struct kvm_msi msi = {
		.address_lo = MSI_ADDR | dest << 12,
		.data = vector,		/* fixed, edge */
	};

	return __vm_ioctl(vm, KVM_SIGNAL_MSI, &msi);
}

static void quantum(struct kvm_vcpu *vcpu, uint64_t ticks)
{
	uint64_t deadline = pace_guest_tsc(vcpu) + ticks;

	pace_set(vcpu, deadline, KVM_PACE_EXIT_TO_USER);
	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_PACE);
}

static void expect(struct kvm_vcpu *vcpu, uint64_t irqs, bool pending,
		   const char *when)
{
	struct kvm_pace_state st;

	pace_state(vcpu, &st);
	TEST_ASSERT(st.irqs == irqs && !!(st.state & KVM_PACE_STATE_IRQ_PENDING) == pending,
		    "%s: irqs %llu (expected %lu), state 0x%x (IRQ_PENDING expected %s)",
		    when, st.irqs, irqs, st.state, pending ? "set" : "clear");
	TEST_ASSERT(st.state & KVM_PACE_STATE_IRQ_INFO, "%s: IRQ_INFO not set", when);
	TEST_ASSERT(!st.reserved[0] && !st.reserved[1], "%s: reserved not zero", when);
	pr_info("%s: irqs %llu, %s\n", when, st.irqs,
		pending ? "pending" : "nothing pending");
}

static void expect_irqs(struct kvm_vcpu *vcpu, uint64_t irqs, const char *when)
{
	struct kvm_pace_state st;

	pace_state(vcpu, &st);
	TEST_ASSERT(st.irqs == irqs, "%s: irqs %llu (expected %lu)", when, st.irqs, irqs);
}

static void *vcpu_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	struct ucall uc;

	/* held inside KVM_RUN at each deadline; returns when the guest is done */
	vcpu_run(vcpu);
	TEST_ASSERT_EQ(get_ucall(vcpu, &uc), UCALL_DONE);
	return NULL;
}

/* An irqfd whose GSI is an MSI of @vector to APIC ID 0. */
static int msi_irqfd(struct kvm_vm *vm, uint32_t vector)
{
	struct {
		struct kvm_irq_routing r;
		struct kvm_irq_routing_entry e[1];
	} routing = {
		.r.nr = 1,
		.e[0] = {
			.gsi = IRQFD_GSI,
			.type = KVM_IRQ_ROUTING_MSI,
			.u.msi = { .address_lo = MSI_ADDR, .data = vector },
		},
	};
	struct kvm_irqfd irqfd = { .gsi = IRQFD_GSI };
	int efd = eventfd(0, EFD_CLOEXEC);

	TEST_ASSERT(efd >= 0, "eventfd: errno %d", errno);
	vm_ioctl(vm, KVM_SET_GSI_ROUTING, &routing.r);
	irqfd.fd = efd;
	vm_ioctl(vm, KVM_IRQFD, &irqfd);
	return efd;
}

/* Wait up to 2 s for the count to reach @irqs (KVM may inject later). */
static void wait_irqs(struct kvm_vcpu *vcpu, uint64_t irqs)
{
	struct kvm_pace_state st;
	int i;

	for (i = 0; i < 2000; i++) {
		pace_state(vcpu, &st);
		if (st.irqs >= irqs)
			return;
		usleep(1000);
	}
	TEST_FAIL("irqs %llu after 2 s, expected %lu", st.irqs, irqs);
}

/*
 * Quanta with interrupts allowed until the guest took what is pending
 * (@h1 runs of the first handler and @h2 of the second in all): until then
 * the interrupt stays pending.  A quantum may pass without a guest
 * instruction (its host time ran while the test VM itself was stalled),
 * hence the loop.  In hold mode (the vCPU in KVM_RUN on its own thread)
 * when @in_kernel.
 */
static bool in_kernel;

static void run_until_handled(struct kvm_vm *vm, struct kvm_vcpu *vcpu, uint64_t ticks,
			      uint64_t irqs, uint64_t h1, uint64_t h2)
{
	int i;

	for (i = 0; i < 100; i++) {
		if (in_kernel) {
			pace_set(vcpu, pace_guest_tsc(vcpu) + ticks, 0);
			pace_wait_held(vcpu->fd, 10000);
		} else {
			quantum(vcpu, ticks);
		}
		sync_global_from_guest(vm, handled);
		sync_global_from_guest(vm, handled2);
		TEST_ASSERT(handled <= h1 && handled2 <= h2,
			    "handlers ran %lu and %lu times, expected %lu and %lu",
			    handled, handled2, h1, h2);
		if (handled == h1 && handled2 == h2)
			return;
		/*
		 * Not pending any more does not mean handled: the quantum
		 * may have ended inside the handler, the vector in service.
		 */
		expect_irqs(vcpu, irqs, "a quantum, not all handled yet");
	}
	TEST_FAIL("100 quanta with interrupts allowed and the guest took none");
}

/*
 * Interrupts off in the guest for good: a quantum may have stopped it
 * between its sti and its cli.  Exit-to-user quanta until the guest began a
 * turn of its loop after allow_irq went 0.
 */
static void quiesce(struct kvm_vm *vm, struct kvm_vcpu *vcpu, uint64_t ticks)
{
	int i;

	allow_irq = 0;
	sync_global_to_guest(vm, allow_irq);
	epoch++;
	sync_global_to_guest(vm, epoch);
	for (i = 0; i < 100; i++) {
		quantum(vcpu, ticks);
		sync_global_from_guest(vm, seen_epoch);
		if (seen_epoch == epoch)
			return;
	}
	TEST_FAIL("the guest did not run its loop in 100 quanta");
}

/* Hold mode, as vmpace paces: the vCPU's thread stays in KVM_RUN. */
static void test_held_in_kernel(struct kvm_vm *vm, struct kvm_vcpu *vcpu)
{
	uint64_t ticks = pace_ms(vcpu, 2), one = 1, irqs, h1;
	struct kvm_pace_state st;
	pthread_t thread;
	int efd, r;

	quiesce(vm, vcpu, ticks);
	/* what is left of before: VECTOR taken by now or still pending */
	sync_global_from_guest(vm, handled);
	h1 = handled + 1;
	pace_state(vcpu, &st);
	irqs = st.irqs;

	efd = msi_irqfd(vm, VECTOR2);
	in_kernel = true;
	pace_set(vcpu, pace_guest_tsc(vcpu) + ticks, 0);
	pthread_create(&thread, NULL, vcpu_thread, vcpu);
	pace_wait_held(vcpu->fd, 10000);

	r = signal_msi(vm, 0, VECTOR);
	TEST_ASSERT(r == 1, "KVM_SIGNAL_MSI: %d, errno %d", r, errno);
	expect(vcpu, irqs + 1, true, "held in KVM_RUN, an MSI, read from another thread");

	TEST_ASSERT_EQ(write(efd, &one, sizeof(one)), sizeof(one));
	wait_irqs(vcpu, irqs + 2);
	expect(vcpu, irqs + 2, true, "held in KVM_RUN, an MSI through an irqfd");

	/* quanta with interrupts allowed: both vectors taken */
	allow_irq = 1;
	sync_global_to_guest(vm, allow_irq);
	run_until_handled(vm, vcpu, ticks, irqs + 2, h1, 1);
	expect(vcpu, irqs + 2, false, "held again after taking both");

	done = 1;
	sync_global_to_guest(vm, done);
	pace_set(vcpu, 0, 0);
	pace_join_vcpu(thread, vcpu, &vcpu, 1, 10000);
	close(efd);
}

int main(int argc, char *argv[])
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	uint64_t ticks;
	int i, r;

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_PACE));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_SIGNAL_MSI));

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_IRQFD));

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	vm_install_exception_handler(vm, VECTOR, guest_irq);
	vm_install_exception_handler(vm, VECTOR2, guest_irq2);
	vm_install_exception_handler(vm, NMI_VECTOR, guest_nmi);
	{
		struct kvm_pace_state st;

		pace_state(vcpu, &st);
		TEST_REQUIRE(st.state & KVM_PACE_STATE_IRQ_INFO);
	}

	/* The guest enables its x2APIC: interrupts are accepted from now on. */
	vcpu_run(vcpu);
	TEST_ASSERT_EQ(get_ucall(vcpu, &uc), UCALL_SYNC);
	expect(vcpu, 0, false, "never armed, nothing sent");

	r = signal_msi(vm, 0, VECTOR);
	TEST_ASSERT(r == 1, "KVM_SIGNAL_MSI: %d, errno %d", r, errno);
	expect(vcpu, 0, true, "never armed, an MSI sent");

	ticks = pace_ms(vcpu, 2);
	quantum(vcpu, ticks);
	expect(vcpu, 0, true, "held, the MSI of before still pending (IF=0)");

	r = signal_msi(vm, 0, VECTOR);
	TEST_ASSERT(r == 1, "KVM_SIGNAL_MSI to the held vCPU: %d, errno %d", r, errno);
	expect(vcpu, 1, true, "held, an MSI sent");
	r = signal_msi(vm, 0, VECTOR);
	TEST_ASSERT(r == 1, "KVM_SIGNAL_MSI: %d, errno %d", r, errno);
	expect(vcpu, 2, true, "held, the same vector again");
	r = signal_msi(vm, 5, VECTOR);
	TEST_ASSERT(r == 0, "KVM_SIGNAL_MSI to APIC ID 5 (none): %d, errno %d", r, errno);
	expect(vcpu, 2, true, "held, an MSI to APIC ID 5 (no such vCPU)");

	quantum(vcpu, ticks);
	sync_global_from_guest(vm, handled);
	TEST_ASSERT_EQ(handled, 0);
	expect(vcpu, 2, true, "a quantum with interrupts off");

	allow_irq = 1;
	sync_global_to_guest(vm, allow_irq);
	run_until_handled(vm, vcpu, ticks, 2, 1, 0);
	expect(vcpu, 2, false, "a quantum with interrupts on: taken");

	vcpu_ioctl(vcpu, KVM_NMI, NULL);
	expect(vcpu, 2, true, "held, an NMI queued");
	for (i = 0; i < 100; i++) {	/* see run_until_handled() */
		quantum(vcpu, ticks);
		sync_global_from_guest(vm, nmis);
		if (nmis)
			break;
		expect_irqs(vcpu, 2, "a quantum, the NMI handler not run yet");
	}
	TEST_ASSERT_EQ(nmis, 1);
	expect(vcpu, 2, false, "the NMI taken");

	/* Disarmed: the counter stays, interrupts are still counted. */
	pace_set(vcpu, 0, 0);
	r = signal_msi(vm, 0, VECTOR);
	TEST_ASSERT(r == 1, "KVM_SIGNAL_MSI: %d, errno %d", r, errno);
	expect(vcpu, 3, true, "disarmed, an MSI sent");

	test_held_in_kernel(vm, vcpu);

	kvm_vm_free(vm);
	return 0;
}
