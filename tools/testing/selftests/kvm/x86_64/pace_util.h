/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the vCPU pacing selftests (KVM_CAP_PACE).
 */
#ifndef SELFTEST_KVM_PACE_UTIL_H
#define SELFTEST_KVM_PACE_UTIL_H

#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <time.h>

#include "kvm_util.h"

static inline int __pace_set(int fd, uint64_t deadline, uint32_t flags,
			     uint32_t pad)
{
	struct kvm_pace_deadline d = {
		.deadline = deadline,
		.flags = flags,
		.pad = pad,
	};

	return ioctl(fd, KVM_SET_PACE_DEADLINE, &d);
}

static inline void pace_set(struct kvm_vcpu *vcpu, uint64_t deadline,
			    uint32_t flags)
{
	int r = __pace_set(vcpu->fd, deadline, flags, 0);

	TEST_ASSERT(!r, "KVM_SET_PACE_DEADLINE(%lu, 0x%x) failed, errno %d",
		    deadline, flags, errno);
}

static inline void pace_state_fd(int fd, struct kvm_pace_state *st)
{
	int r = ioctl(fd, KVM_GET_PACE_STATE, st);

	TEST_ASSERT(!r, "KVM_GET_PACE_STATE failed, errno %d", errno);
}

static inline void pace_state(struct kvm_vcpu *vcpu, struct kvm_pace_state *st)
{
	pace_state_fd(vcpu->fd, st);
}

static inline uint64_t pace_guest_tsc(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_state st;

	pace_state(vcpu, &st);
	return st.guest_tsc;
}

/* Guest TSC ticks in @ms milliseconds of guest time. */
static inline uint64_t pace_ms(struct kvm_vcpu *vcpu, uint64_t ms)
{
	struct kvm_pace_state st;

	pace_state(vcpu, &st);
	TEST_ASSERT(st.tsc_khz, "KVM_GET_PACE_STATE reports no TSC frequency");
	return st.tsc_khz * ms;
}

/* Guest side: write @val to I/O port @port. */
static inline void port_outb(uint16_t port, uint8_t val)
{
	asm volatile("outb %0, %1" : : "a"(val), "Nd"(port));
}

/* Wait until poll() reports the vCPU held at its deadline. */
static inline void pace_wait_held(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do {
		r = poll(&p, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	TEST_ASSERT(r == 1 && (p.revents & POLLIN),
		    "vCPU not held within %d ms (poll %d, revents 0x%x)",
		    timeout_ms, r, p.revents);
}

/*
 * Join the thread running @vcpu, or fail after @timeout_ms with the pacing
 * state of the vCPUs in @vcpus: a test never hangs without saying where.
 */
static inline void pace_join_vcpu(pthread_t thread, struct kvm_vcpu *vcpu,
				  struct kvm_vcpu **vcpus, int nr, int timeout_ms)
{
	struct kvm_pace_state st;
	struct timespec ts;
	int i, r;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	r = pthread_timedjoin_np(thread, NULL, &ts);
	if (!r)
		return;
	for (i = 0; i < nr; i++) {
		pace_state(vcpus[i], &st);
		pr_info("vCPU %d: state 0x%x guest TSC %llu deadline %llu holds %llu exits %llu\n",
			i, st.state, st.guest_tsc, st.deadline, st.holds, st.exits);
	}
	TEST_FAIL("vCPU %u's thread did not end within %d ms (error %d)",
		  vcpu->id, timeout_ms, r);
}

#endif
