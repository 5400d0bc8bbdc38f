// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_CAP_PACE hold mode: the vCPU waits inside KVM_RUN at its deadline and
 * is released by another thread or by another process that borrowed its fd
 * with pidfd_getfd(); signals interrupt the hold as usual; poll() reports
 * held vCPUs; pacing ends when the process that armed it dies or closes its
 * fd.
 */
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "pace_util.h"

#define HOLD_TIMEOUT_MS	30000

static uint64_t guest_counter;

static void guest_code(void)
{
	for (;;)
		WRITE_ONCE(guest_counter, guest_counter + 1);
}

static struct kvm_vcpu *vcpu;
static uint64_t *counter;	/* guest_counter, seen from the host */
static bool done;
static sem_t interrupted;
static int nr_eintr;
static pthread_t vcpu_tid;

static void sig_handler(int sig)
{
}

static void *vcpu_thread(void *arg)
{
	int r;

	while (!READ_ONCE(done)) {
		r = __vcpu_run(vcpu);
		TEST_ASSERT(r == -1 && errno == EINTR,
			    "KVM_RUN returned %d errno %d, exit reason %s",
			    r, errno, exit_reason_str(vcpu->run->exit_reason));
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_INTR);
		nr_eintr++;
		sem_post(&interrupted);
	}
	return NULL;
}

static void wait_interrupted(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += HOLD_TIMEOUT_MS / 1000;
	TEST_ASSERT(!sem_timedwait(&interrupted, &ts), "KVM_RUN was not interrupted");
}

static void expect_held(uint64_t deadline, uint64_t holds)
{
	struct kvm_pace_state st;

	pace_wait_held(vcpu->fd, HOLD_TIMEOUT_MS);
	pace_state(vcpu, &st);
	TEST_ASSERT(st.state & KVM_PACE_STATE_HELD, "state 0x%x", st.state);
	TEST_ASSERT_EQ(st.deadline, deadline);
	TEST_ASSERT_EQ(st.holds, holds);
	TEST_ASSERT(st.guest_tsc >= deadline, "held early: %llu < %lu",
		    st.guest_tsc, deadline);
}

/* Wait for the guest to run again, bounded in time. */
static void expect_running(void)
{
	uint64_t start = READ_ONCE(*counter);
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (READ_ONCE(*counter) == start) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		TEST_ASSERT(t.tv_sec - t0.tv_sec < HOLD_TIMEOUT_MS / 1000,
			    "the guest does not run");
		sched_yield();
	}
}

static void test_thread_release(int epfd)
{
	/* Long enough for the released vCPU to run in a loaded test VM. */
	uint64_t quantum = pace_ms(vcpu, 50), deadline, c;
	struct kvm_pace_state st;
	struct epoll_event ev;

	deadline = pace_guest_tsc(vcpu) + quantum;
	pace_set(vcpu, deadline, 0);
	/* The epoll set was made before pacing was armed. */
	TEST_ASSERT(epoll_wait(epfd, &ev, 1, HOLD_TIMEOUT_MS) == 1 && (ev.events & EPOLLIN),
		    "epoll did not report the held vCPU");
	expect_held(deadline, 1);
	c = READ_ONCE(*counter);
	TEST_ASSERT_EQ(nr_eintr, 0);

	/* Raising the deadline releases the vCPU; it holds again later. */
	deadline += quantum;
	pace_set(vcpu, deadline, 0);
	expect_held(deadline, 2);
	TEST_ASSERT(READ_ONCE(*counter) != c, "the guest did not run between the holds");

	/* A signal interrupts the hold; KVM_RUN again holds again. */
	c = READ_ONCE(*counter);
	pthread_kill(vcpu_tid, SIGUSR1);
	wait_interrupted();
	TEST_ASSERT_EQ(nr_eintr, 1);
	expect_held(deadline, 2);
	TEST_ASSERT_EQ(READ_ONCE(*counter), c);

	/* Disarm: the guest runs free. */
	pace_set(vcpu, 0, 0);
	pace_state(vcpu, &st);
	TEST_ASSERT_EQ(st.state & (KVM_PACE_STATE_ARMED | KVM_PACE_STATE_HELD), 0);
	expect_running();
}

/*
 * A deadline moved closer while the vCPU runs takes effect at once: the vCPU
 * must not run on to the deadline it was armed with (60 s of guest time,
 * longer than the hold timeout).
 */
static void test_lower_deadline(void)
{
	uint64_t ms = pace_ms(vcpu, 1), far, near;
	struct kvm_pace_state st;
	int i;

	for (i = 0; i < 20; i++) {
		pace_state(vcpu, &st);
		far = st.guest_tsc + 60000 * ms;
		pace_set(vcpu, far, 0);
		expect_running();
		near = pace_guest_tsc(vcpu) + ms;
		pace_set(vcpu, near, 0);
		expect_held(near, st.holds + 1);
		pace_state(vcpu, &st);
		TEST_ASSERT(st.guest_tsc < far,
			    "round %d: held at %llu, after the old deadline %lu",
			    i, st.guest_tsc, far);
		pace_set(vcpu, 0, 0);
	}
	expect_running();
}

enum { CMD_RAISE = 'r', CMD_CLOSE = 'c' };

/*
 * The controller: another process borrows the vCPU fd with pidfd_getfd(),
 * arms a deadline, raises it on command, then either waits to be killed or
 * closes the fd.
 */
static void controller(int vcpu_fd, int cmd_fd, int ack_fd, uint64_t deadline,
		       uint64_t quantum)
{
	struct kvm_regs regs;
	int pidfd, fd, r;
	char c;

	pidfd = syscall(SYS_pidfd_open, getppid(), 0);
	TEST_ASSERT(pidfd >= 0, "pidfd_open: errno %d", errno);
	fd = syscall(SYS_pidfd_getfd, pidfd, vcpu_fd, 0);
	TEST_ASSERT(fd >= 0, "pidfd_getfd: errno %d", errno);

	/* Only the pacing ioctls work from another mm. */
	r = ioctl(fd, KVM_GET_REGS, &regs);
	TEST_ASSERT(r == -1 && errno == EIO, "KVM_GET_REGS on a borrowed fd: %d errno %d",
		    r, errno);

	TEST_ASSERT(!__pace_set(fd, deadline, 0, 0), "arm: errno %d", errno);
	TEST_ASSERT(write(ack_fd, "a", 1) == 1, "ack");
	for (;;) {
		TEST_ASSERT(read(cmd_fd, &c, 1) == 1, "the test process is gone");
		if (c == CMD_RAISE) {
			deadline += quantum;
			TEST_ASSERT(!__pace_set(fd, deadline, 0, 0), "raise: errno %d", errno);
		} else if (c == CMD_CLOSE) {
			close(fd);
		}
		TEST_ASSERT(write(ack_fd, "a", 1) == 1, "ack");
	}
}

static pid_t start_controller(int *cmd, int *ack, uint64_t deadline, uint64_t quantum)
{
	int to_child[2], to_parent[2];
	pid_t pid;
	char c;

	TEST_ASSERT(!pipe(to_child) && !pipe(to_parent), "pipe");
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork");
	if (!pid) {
		close(to_child[1]);
		close(to_parent[0]);
		controller(vcpu->fd, to_child[0], to_parent[1], deadline, quantum);
		exit(0);
	}
	close(to_child[0]);
	close(to_parent[1]);
	*cmd = to_child[1];
	*ack = to_parent[0];
	TEST_ASSERT(read(*ack, &c, 1) == 1, "controller died before arming");
	return pid;
}

static void command(int cmd, int ack, char c)
{
	TEST_ASSERT(write(cmd, &c, 1) == 1 && read(ack, &c, 1) == 1,
		    "controller died");
}

static void test_other_process(void)
{
	uint64_t quantum = pace_ms(vcpu, 5), deadline;
	struct kvm_pace_state st;
	int cmd, ack, status;
	uint64_t holds;
	pid_t pid;

	pace_state(vcpu, &st);
	holds = st.holds;
	deadline = st.guest_tsc + quantum;
	pid = start_controller(&cmd, &ack, deadline, quantum);
	expect_held(deadline, ++holds);

	/* The other process owns pacing now. */
	TEST_ASSERT(__pace_set(vcpu->fd, deadline + quantum, 0, 0) == -1 &&
		    errno == EBUSY, "arming someone else's vCPU: errno %d", errno);

	command(cmd, ack, CMD_RAISE);
	deadline += quantum;
	expect_held(deadline, ++holds);

	/* The controller dies while the vCPU is held: the vCPU runs free. */
	kill(pid, SIGKILL);
	TEST_ASSERT(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status),
		    "controller exit status 0x%x", status);
	pace_state(vcpu, &st);
	TEST_ASSERT_EQ(st.state & (KVM_PACE_STATE_ARMED | KVM_PACE_STATE_HELD), 0);
	expect_running();
	close(cmd);
	close(ack);

	/* Closing the borrowed fd has the same effect. */
	deadline = pace_guest_tsc(vcpu) + quantum;
	pid = start_controller(&cmd, &ack, deadline, quantum);
	expect_held(deadline, ++holds);
	command(cmd, ack, CMD_CLOSE);
	pace_state(vcpu, &st);
	TEST_ASSERT_EQ(st.state & (KVM_PACE_STATE_ARMED | KVM_PACE_STATE_HELD), 0);
	expect_running();
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	close(cmd);
	close(ack);
}

int main(int argc, char *argv[])
{
	struct sigaction sa = { .sa_handler = sig_handler };
	struct epoll_event ev = { .events = EPOLLIN };
	struct kvm_vm *vm;
	int epfd;

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_PACE));

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	counter = addr_gva2hva(vm, (vm_vaddr_t)&guest_counter);
	TEST_ASSERT(!sigaction(SIGUSR1, &sa, NULL), "sigaction");
	sem_init(&interrupted, 0, 0);
	pthread_create(&vcpu_tid, NULL, vcpu_thread, NULL);

	/* Not paced yet: nothing to report. */
	epfd = epoll_create1(0);
	TEST_ASSERT(epfd >= 0 && !epoll_ctl(epfd, EPOLL_CTL_ADD, vcpu->fd, &ev), "epoll");
	TEST_ASSERT_EQ(epoll_wait(epfd, &ev, 1, 0), 0);

	test_thread_release(epfd);
	test_lower_deadline();
	test_other_process();

	WRITE_ONCE(done, true);
	vcpu->run->immediate_exit = 1;
	pthread_kill(vcpu_tid, SIGUSR1);
	pthread_join(vcpu_tid, NULL);
	kvm_vm_free(vm);
	return 0;
}
