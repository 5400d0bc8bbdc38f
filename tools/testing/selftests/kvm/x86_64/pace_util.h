/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the vCPU pacing selftests (KVM_CAP_PACE).
 */
#ifndef SELFTEST_KVM_PACE_UTIL_H
#define SELFTEST_KVM_PACE_UTIL_H

#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/*
 * Stops of the test VM.  Under emulation the machine these tests run in
 * sometimes stops for a second or more (QEMU TCG loses a timer interrupt
 * until something else wakes the CPU); every clock runs on meanwhile, a
 * guest's too, so a guest timer or a wait measured across such a stop is off
 * by its length through no fault of KVM's.  pace_run_subtest() runs a
 * subtest in a child process while a thread of the parent, waking every
 * 10 ms, watches for stops of PACE_STOP_MS or more: a subtest that fails
 * while one happened runs again (three tries in all); one that fails
 * without one, or three times, fails the test with its own exit status.
 */
#define PACE_STOP_MS	100

static uint64_t pace_stops;
static int64_t pace_watch_lap;

static inline int64_t pace_mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static inline void *pace_stop_watch(void *arg)
{
	int64_t next = pace_mono_ns(), now;
	struct timespec ts;

	for (;;) {
		next += 10000000;
		ts.tv_sec = next / 1000000000;
		ts.tv_nsec = next % 1000000000;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		now = pace_mono_ns();
		if (now - next >= PACE_STOP_MS * 1000000LL) {
			__atomic_add_fetch(&pace_stops, 1, __ATOMIC_SEQ_CST);
			pr_info("the test VM stopped for %lld ms\n",
				(long long)(now - next) / 1000000);
			next = now;
		}
		__atomic_store_n(&pace_watch_lap, now, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static inline void pace_run_subtest(const char *name, void (*fn)(void))
{
	static bool watching;
	pthread_t watch;
	uint64_t stops;
	int64_t end;
	int status, try;
	pid_t pid;

	if (!watching) {
		TEST_ASSERT(!pthread_create(&watch, NULL, pace_stop_watch, NULL),
			    "cannot start the stop watch");
		watching = true;
	}
	for (try = 1;; try++) {
		stops = __atomic_load_n(&pace_stops, __ATOMIC_SEQ_CST);
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		TEST_ASSERT(pid >= 0, "fork failed, errno %d", errno);
		if (!pid) {
			fn();
			exit(0);
		}
		TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid failed, errno %d", errno);
		if (WIFEXITED(status) && !WEXITSTATUS(status))
			return;
		/* a stop that ended the subtest: the watch's next lap sees it */
		end = pace_mono_ns();
		while (__atomic_load_n(&pace_watch_lap, __ATOMIC_SEQ_CST) <= end)
			TEST_ASSERT(pace_mono_ns() - end < 10000000000LL,
				    "the stop watch did not wake for 10 s");
		if (__atomic_load_n(&pace_stops, __ATOMIC_SEQ_CST) == stops || try == 3) {
			if (WIFEXITED(status))
				exit(WEXITSTATUS(status));
			TEST_FAIL("subtest %s: killed by signal %d", name, WTERMSIG(status));
		}
		pr_info("subtest %s failed while the test VM stopped: try %d\n", name, try + 1);
	}
}

#endif
