/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the vCPU pacing selftests (KVM_CAP_PACE).
 */
#ifndef SELFTEST_KVM_PACE_UTIL_H
#define SELFTEST_KVM_PACE_UTIL_H

#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <signal.h>
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
 * sometimes stops a CPU for a while (QEMU TCG loses a timer interrupt until
 * something else wakes it): the host timers queued on that CPU, KVM's
 * emulated LAPIC timer or PIT among them, fire that much late, while every
 * clock runs on, a guest's too.  A guest timer or a wait measured across
 * such a stop is off by its length, and a PIT catches up on the ticks it
 * missed, through no fault of KVM's.  Such bounds are PACE_TIMING_ASSERT()s:
 * a subtest run by pace_run_subtest() (in a child process) exits with
 * PACE_EXIT_TIMING when one fails, and runs again (three tries in all) if one
 * of the parent's watch threads, one pinned to each CPU and waking every
 * 10 ms, saw its CPU stop for PACE_STOP_MS or more meanwhile (shorter delays
 * are everyday scheduling in a loaded test VM).  A bound that failed in all
 * three tries, each with a stop, was not measurable on this machine: the
 * test goes on and ends with KSFT_SKIP naming that subtest.  A bound that
 * failed without a stop (or a starved vCPU, below) fails the test (unless
 * PACE_TIMING=report, further below).
 * Any other failure (TEST_ASSERT: exact invariants) fails the test at once
 * with its own exit status, stop or not.
 */
#define PACE_STOP_MS		100
#define PACE_EXIT_TIMING	99
#define PACE_EXIT_STARVED	98
#define PACE_MAX_WATCH		64

/*
 * A subtest that saw its own vCPU starved (pace_note_starved(): it stopped
 * a whole quantum past its deadline, its thread not running while guest
 * time ran on, too short a delay for the watches) exits with
 * PACE_EXIT_STARVED when a timing bound fails after that: spoiled, as if a
 * watch had seen the test VM stop.
 */
static bool pace_starved;

#define PACE_TIMING_ASSERT(cond, fmt, ...)					\
do {										\
	if (!(cond)) {								\
		fflush(stdout);							\
		fprintf(stderr, "timing bound failed, %s:%d: %s: " fmt "\n",	\
			__FILE__, __LINE__, #cond, ##__VA_ARGS__);		\
		exit(pace_starved ? PACE_EXIT_STARVED : PACE_EXIT_TIMING);	\
	}									\
} while (0)

static inline void pace_note_starved(const char *what, uint64_t late_ms)
{
	if (!pace_starved)
		pr_info("%s %lu ms of guest time late: the vCPU thread was starved\n",
			what, late_ms);
	pace_starved = true;
}

static uint64_t pace_stops;
static int64_t pace_watch_lap[PACE_MAX_WATCH];
static int pace_nr_watch;

static inline int64_t pace_mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* @arg: the index of this watch; it runs on the CPU it is pinned to. */
static inline void *pace_stop_watch(void *arg)
{
	int64_t next = pace_mono_ns(), now;
	long i = (long)arg;
	struct timespec ts;

	for (;;) {
		next += 10000000;
		ts.tv_sec = next / 1000000000;
		ts.tv_nsec = next % 1000000000;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		now = pace_mono_ns();
		if (now - next >= PACE_STOP_MS * 1000000LL) {
			__atomic_add_fetch(&pace_stops, 1, __ATOMIC_SEQ_CST);
			pr_info("the test VM stopped for %lld ms (CPU %d)\n",
				(long long)(now - next) / 1000000, sched_getcpu());
			next = now;
		}
		__atomic_store_n(&pace_watch_lap[i], now, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

/* One watch thread pinned to each CPU this process may run on. */
static inline void pace_start_watches(void)
{
	cpu_set_t all, one;
	pthread_attr_t attr;
	pthread_t t;
	int cpu;

	TEST_ASSERT(!sched_getaffinity(0, sizeof(all), &all), "sched_getaffinity failed");
	for (cpu = 0; cpu < CPU_SETSIZE && pace_nr_watch < PACE_MAX_WATCH; cpu++) {
		if (!CPU_ISSET(cpu, &all))
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		pthread_attr_init(&attr);
		pthread_attr_setaffinity_np(&attr, sizeof(one), &one);
		__atomic_store_n(&pace_watch_lap[pace_nr_watch], pace_mono_ns(), __ATOMIC_SEQ_CST);
		TEST_ASSERT(!pthread_create(&t, &attr, pace_stop_watch,
					    (void *)(long)pace_nr_watch),
			    "cannot start the stop watch of CPU %d", cpu);
		pthread_attr_destroy(&attr);
		pace_nr_watch++;
	}
}

/* Every watch has woken up after @t (or the test fails after 10 s). */
static inline void pace_watches_after(int64_t t)
{
	int i;

	for (i = 0; i < pace_nr_watch; i++)
		while (__atomic_load_n(&pace_watch_lap[i], __ATOMIC_SEQ_CST) <= t) {
			TEST_ASSERT(pace_mono_ns() - t < 10000000000LL,
				    "stop watch %d did not wake for 10 s", i);
			usleep(1000);
		}
}

/*
 * Whether the host's clocksource is the TSC.  If not (tsc=unstable, or the
 * watchdog found it skewed), KVM rewrites a vCPU's TSC offset at every load
 * and keeps several vCPUs' TSCs only roughly in step.
 */
static inline bool host_tsc_stable(void)
{
	char cs[32] = "";
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");

	if (f) {
		if (!fgets(cs, sizeof(cs), f))
			cs[0] = 0;
		fclose(f);
	}
	return !strncmp(cs, "tsc", 3);
}

/*
 * PACE_SUBTEST=name[,name...] in the environment runs only those subtests
 * (to reproduce one failure many times); unset, all of them run.
 */
static inline bool pace_subtest_wanted(const char *name)
{
	const char *list = getenv("PACE_SUBTEST"), *p;
	size_t len = strlen(name);

	if (!list || !*list)
		return true;
	for (p = list; p; p = strchr(p, ','), p = p ? p + 1 : NULL)
		if (!strncmp(p, name, len) && (p[len] == ',' || !p[len]))
			return true;
	pr_info("subtest %s: skipped (PACE_SUBTEST=%s)\n", name, list);
	return false;
}

/*
 * Subtests whose timing bound failed in each of three tries, each while the
 * test VM stopped: on a machine that stops that often, their timing cannot
 * be measured.  The test then ends with KSFT_SKIP, naming them
 * (pace_subtests_done()), not with a pass.
 */
static char pace_unmeasured[256];

/*
 * PACE_TIMING=report: a kernel so slow (the debug test kernel under
 * emulation, beside another test VM) that a vCPU thread is starved for
 * whole quanta without the test VM stopping: a timing bound that failed in
 * three tries is reported the same way, stop or not.  The exact checks are
 * enforced as always.
 */
static inline bool pace_timing_reported(void)
{
	const char *v = getenv("PACE_TIMING");

	return v && !strcmp(v, "report");
}

/* What spoiled a timing bound that failed, for the messages. */
static inline const char *pace_spoiled(void)
{
	return "stopped or starved";
}

static inline void pace_run_subtest(const char *name, void (*fn)(void))
{
	uint64_t stops;
	int status, try;
	pid_t pid;

	if (!pace_subtest_wanted(name))
		return;
	if (!pace_nr_watch)
		pace_start_watches();
	for (try = 1;; try++) {
		stops = __atomic_load_n(&pace_stops, __ATOMIC_SEQ_CST);
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		TEST_ASSERT(pid >= 0, "fork failed, errno %d", errno);
		if (!pid) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			fn();
			exit(0);
		}
		TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid failed, errno %d", errno);
		if (WIFEXITED(status) && !WEXITSTATUS(status))
			return;
		if (!WIFEXITED(status)) {
			errno = 0;
			TEST_FAIL("subtest %s: killed by signal %d", name, WTERMSIG(status));
		}
		if (WEXITSTATUS(status) != PACE_EXIT_TIMING &&
		    WEXITSTATUS(status) != PACE_EXIT_STARVED)
			exit(WEXITSTATUS(status));
		/* a stop that spoiled the bound: the watches' next laps see it */
		pace_watches_after(pace_mono_ns());
		errno = 0;
		TEST_ASSERT(__atomic_load_n(&pace_stops, __ATOMIC_SEQ_CST) != stops ||
			    WEXITSTATUS(status) == PACE_EXIT_STARVED || pace_timing_reported(),
			    "subtest %s: a timing bound failed (above) while the test VM did not stop and the vCPU was not starved",
			    name);
		if (try == 3) {
			/* the exact checks before the bound passed each time */
			pr_info("subtest %s: not measurable (3 tries, the test VM %s in each)\n",
				name, pace_spoiled());
			snprintf(pace_unmeasured + strlen(pace_unmeasured),
				 sizeof(pace_unmeasured) - strlen(pace_unmeasured),
				 "%s\"%s\"", pace_unmeasured[0] ? ", " : "", name);
			return;
		}
		pr_info("subtest %s: a timing bound failed while the test VM %s: try %d\n",
			name, pace_spoiled(), try + 1);
	}
}

/* main()'s exit status after its pace_run_subtest() calls. */
static inline int pace_subtests_done(void)
{
	if (!pace_unmeasured[0])
		return 0;
	fflush(stderr);
	printf("timing not measurable in subtest %s: 3 tries, the test VM %s in each\n",
	       pace_unmeasured, pace_spoiled());
	fflush(stdout);
	return KSFT_SKIP;
}

#endif
