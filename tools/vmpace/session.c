// SPDX-License-Identifier: GPL-2.0
/*
 * The pacing session: one epoll loop over the simulator's socket, the vCPU
 * fds (readable while a vCPU is held at its deadline), the VMM's pidfd and a
 * signalfd.
 *
 * Guest time is the guest's own kvmclock, which KVM keeps a function of the
 * guest TSC while the VM is paced (KVM_GET_PACE_STATE's guest_ns, with the
 * scale tsc_to_ns_mul/tsc_shift), counted from the moment vmpace froze the
 * guest.  A grant of g units moves the deadline to the first guest TSC at
 * which kvmclock reads at least g more than where the guest actually
 * stopped last time, so each report is at least the grant; reports are
 * floor(total elapsed) minus what was already reported, so their sum is the
 * exact elapsed time and the overshoot is carried, never lost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "vmpace.h"

enum { TAG_SYNC = -1, TAG_PIDFD = -2, TAG_SIGNAL = -3 };

enum state {
	ST_FREEZING,		/* waiting for every vCPU to hold at attach */
	ST_WAIT_GRANT,		/* guest frozen, waiting for the simulator */
	ST_RUNNING,		/* quantum granted, waiting for every vCPU */
	ST_REPORTING,		/* report not fully written yet */
	ST_DONE,
};

struct session {
	struct vp_opts *o;
	struct vp_vm *vm;
	int epfd, sigfd;
	enum state state;
	bool *held;
	int nr_held;

	struct vp_decoder dec;
	uint8_t out[8];
	size_t out_len, out_off;

	uint64_t unit_ns;
	uint64_t base_ns;	/* frozen guest kvmclock at attach */
	uint64_t last_tsc;	/* frozen guest TSC at the last report */
	uint64_t last_ns;	/* and its kvmclock */
	uint32_t mul;		/* the paced clock's scale */
	int8_t shift;
	uint64_t target;	/* deadline of the running quantum */
	uint64_t reported;	/* units reported so far */
	uint64_t seq, grant;
	struct timespec t_grant;
	FILE *trace;
	int exit_code;
};

static uint64_t ns_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000000ull + t.tv_nsec - t0->tv_nsec;
}

static int ep_set(struct session *s, int op, int fd, uint32_t events, int tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = (uint64_t)(int64_t)tag };

	return epoll_ctl(s->epfd, op, fd, &ev) ? -errno : 0;
}

/* Watch every vCPU that is not yet known held; one event each. */
static int watch_vcpus(struct session *s)
{
	int i, r;

	for (i = 0; i < s->vm->nr_vcpus; i++) {
		if (s->held[i])
			continue;
		r = ep_set(s, EPOLL_CTL_MOD, s->vm->vcpu_fd[i], EPOLLIN | EPOLLONESHOT, i);
		if (r)
			return r;
	}
	return 0;
}

static int vcpu_state(struct session *s, int i, struct kvm_pace_state *st)
{
	if (ioctl(s->vm->vcpu_fd[i], KVM_GET_PACE_STATE, st))
		return -errno;
	return 0;
}

/* Arm every vCPU at @deadline and wait for all of them to hold. */
static int start_quantum(struct session *s, uint64_t deadline)
{
	int i, r;

	s->target = deadline;
	s->nr_held = 0;
	for (i = 0; i < s->vm->nr_vcpus; i++) {
		s->held[i] = false;
		r = vp_set_deadline(s->vm, i, deadline);
		if (r == -EBUSY) {
			vp_err("vCPU %d of process %d is paced by another controller",
			       s->vm->vcpu_id[i], (int)s->vm->pid);
			s->exit_code = VP_EXIT_BUSY;
			return r;
		}
		if (r == -EOPNOTSUPP) {
			vp_err("vCPU %d: KVM cannot pace this guest: it uses a timer that runs "
			       "on host time (Hyper-V synthetic timers, Xen timers or a nested "
			       "VMX guest)", s->vm->vcpu_id[i]);
			s->exit_code = VP_EXIT_ERROR;
			return r;
		}
		if (r) {
			vp_err("KVM_SET_PACE_DEADLINE on vCPU %d: %s", s->vm->vcpu_id[i],
			       strerror(-r));
			s->exit_code = r == -EIO ? VP_EXIT_VMM_DIED : VP_EXIT_ERROR;
			return r;
		}
	}
	return watch_vcpus(s);
}

static int set_sync_events(struct session *s, uint32_t events)
{
	return ep_set(s, EPOLL_CTL_MOD, s->o->sync_fd, events | EPOLLRDHUP, TAG_SYNC);
}

static void finish(struct session *s, int code)
{
	s->state = ST_DONE;
	s->exit_code = code;
}

static int send_report(struct session *s)
{
	ssize_t n;

	while (s->out_off < s->out_len) {
		n = send(s->o->sync_fd, s->out + s->out_off, s->out_len - s->out_off,
			 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			s->state = ST_REPORTING;
			return set_sync_events(s, EPOLLOUT);
		}
		if (n < 0 && errno == ENOTSOCK)
			n = write(s->o->sync_fd, s->out + s->out_off, s->out_len - s->out_off);
		if (n < 0) {
			vp_info("the simulator is gone (%s)", strerror(errno));
			finish(s, VP_EXIT_OK);
			return 0;
		}
		s->out_off += n;
	}
	s->state = ST_WAIT_GRANT;
	return set_sync_events(s, EPOLLIN);
}

/*
 * Every vCPU is held.  KVM must say the VM is frozen too: with a vCPU that
 * vmpace does not pace (hot-added), its guest time would still run.  The
 * VM's guest time is that of the vCPU held last, the largest.
 */
static int all_held(struct session *s)
{
	uint64_t frozen = 0, frozen_ns = 0, total, report;
	struct kvm_pace_state st;
	int i, r;

	for (i = 0; i < s->vm->nr_vcpus; i++) {
		r = vcpu_state(s, i, &st);
		if (r) {
			vp_err("KVM_GET_PACE_STATE: %s", strerror(-r));
			finish(s, r == -EIO ? VP_EXIT_VMM_DIED : VP_EXIT_ERROR);
			return 0;
		}
		if (!(st.state & KVM_PACE_STATE_FROZEN)) {
			vp_err("vCPU %d is held but the VM is not frozen: it has vCPUs "
			       "vmpace does not pace", s->vm->vcpu_id[i]);
			finish(s, VP_EXIT_ERROR);
			return 0;
		}
		if (!st.tsc_to_ns_mul) {
			vp_err("vCPU %d: KVM reports no paced clock", s->vm->vcpu_id[i]);
			finish(s, VP_EXIT_ERROR);
			return 0;
		}
		if (st.guest_tsc >= frozen) {
			frozen = st.guest_tsc;
			frozen_ns = st.guest_ns;
			s->mul = st.tsc_to_ns_mul;
			s->shift = st.tsc_shift;
		}
	}

	if (s->state == ST_FREEZING) {
		s->last_tsc = frozen;
		s->base_ns = s->last_ns = frozen_ns;
		vp_info("guest frozen at guest TSC %llu, kvmclock %llu ns",
			(unsigned long long)frozen, (unsigned long long)frozen_ns);
		s->state = ST_WAIT_GRANT;
		return set_sync_events(s, EPOLLIN);
	}

	total = (frozen_ns - s->base_ns) / s->unit_ns;
	report = total - s->reported;
	r = vp_encode(s->o->proto, report, s->out);
	if (r < 0) {
		vp_err("quantum %llu: elapsed time %llu does not fit the protocol",
		       (unsigned long long)s->seq, (unsigned long long)report);
		finish(s, VP_EXIT_PROTOCOL);
		return 0;
	}
	if (s->trace)
		fprintf(s->trace, "%llu,%llu,%llu,%llu,%llu\n",
			(unsigned long long)s->seq, (unsigned long long)s->grant,
			(unsigned long long)report,
			(unsigned long long)(frozen - s->target),
			(unsigned long long)ns_since(&s->t_grant));
	s->reported = total;
	s->last_tsc = frozen;
	s->last_ns = frozen_ns;
	s->out_len = r;
	s->out_off = 0;
	return send_report(s);
}

static int on_grant(struct session *s, uint64_t grant)
{
	uint64_t ticks;

	if (!grant) {
		vp_info("zero grant: end of session");
		finish(s, VP_EXIT_OK);
		return 0;
	}
	/*
	 * The guest's kvmclock must read at least @grant more at the
	 * deadline; 2 ns cover the rounding of its scale at another base.
	 */
	if (grant > (UINT64_MAX - 2) / s->unit_ns ||
	    vp_pvclock_ticks_ceil(grant * s->unit_ns + 2, s->mul, s->shift, &ticks) ||
	    ticks > UINT64_MAX - s->last_tsc) {
		vp_err("grant %llu is out of range", (unsigned long long)grant);
		finish(s, VP_EXIT_PROTOCOL);
		return 0;
	}
	s->seq++;
	s->grant = grant;
	clock_gettime(CLOCK_MONOTONIC, &s->t_grant);
	s->state = ST_RUNNING;
	/* no more input until the report: the protocol is lockstep */
	set_sync_events(s, 0);
	return start_quantum(s, s->last_tsc + ticks);
}

static int on_sync_readable(struct session *s)
{
	uint8_t buf[8];
	size_t used;
	bool complete;
	uint64_t grant;
	ssize_t n;

	n = read(s->o->sync_fd, buf, s->state == ST_WAIT_GRANT ?
		 vp_msg_size(s->o->proto) - s->dec.len : 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		if (vp_decoder_partial(&s->dec)) {
			vp_err("the simulator closed the connection in the middle of a grant");
			finish(s, VP_EXIT_PROTOCOL);
		} else {
			vp_info("the simulator closed the connection");
			finish(s, VP_EXIT_OK);
		}
		return 0;
	}
	used = vp_decode(&s->dec, buf, n, &complete, &grant);
	if (complete && used == (size_t)n)
		return on_grant(s, grant);
	return 0;
}

/* The simulator went away while we were not reading: EOF or reset. */
static void on_sync_hangup(struct session *s)
{
	vp_info("the simulator closed the connection");
	finish(s, VP_EXIT_OK);
}

static int on_vcpu(struct session *s, int i)
{
	struct kvm_pace_state st;
	int r = vcpu_state(s, i, &st);

	if (r) {
		vp_err("KVM_GET_PACE_STATE: %s", strerror(-r));
		finish(s, r == -EIO ? VP_EXIT_VMM_DIED : VP_EXIT_ERROR);
		return 0;
	}
	if (!(st.state & KVM_PACE_STATE_HELD))
		return ep_set(s, EPOLL_CTL_MOD, s->vm->vcpu_fd[i], EPOLLIN | EPOLLONESHOT, i);
	if (!s->held[i]) {
		s->held[i] = true;
		s->nr_held++;
	}
	if (s->nr_held == s->vm->nr_vcpus)
		return all_held(s);
	return 0;
}

static void terminate_vmm(struct session *s)
{
	struct epoll_event ev;
	int ep, left = s->o->kill_timeout_ms;

	vp_info("terminating the VMM (pid %d)", (int)s->vm->pid);
	if (syscall(SYS_pidfd_send_signal, s->vm->pidfd, SIGTERM, NULL, 0) && errno == ESRCH)
		return;
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.u64 = 0;
	if (ep >= 0 && !epoll_ctl(ep, EPOLL_CTL_ADD, s->vm->pidfd, &ev) &&
	    epoll_wait(ep, &ev, 1, left) == 1) {
		close(ep);
		return;
	}
	if (ep >= 0)
		close(ep);
	vp_err("the VMM did not exit within %d ms of SIGTERM: killing it", left);
	syscall(SYS_pidfd_send_signal, s->vm->pidfd, SIGKILL, NULL, 0);
}

static int setup(struct session *s)
{
	sigset_t mask;
	int i, r;

	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0)
		return -errno;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	s->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s->sigfd < 0)
		return -errno;

	r = ep_set(s, EPOLL_CTL_ADD, s->sigfd, EPOLLIN, TAG_SIGNAL);
	r = r ?: ep_set(s, EPOLL_CTL_ADD, s->vm->pidfd, EPOLLIN, TAG_PIDFD);
	r = r ?: ep_set(s, EPOLL_CTL_ADD, s->o->sync_fd, EPOLLRDHUP, TAG_SYNC);
	for (i = 0; !r && i < s->vm->nr_vcpus; i++)
		r = ep_set(s, EPOLL_CTL_ADD, s->vm->vcpu_fd[i], 0, i);
	return r;
}

int vp_session(struct vp_opts *o, struct vp_vm *vm)
{
	struct session s = {
		.o = o, .vm = vm, .epfd = -1, .sigfd = -1, .state = ST_FREEZING,
		.unit_ns = vp_unit_ns(o->proto), .exit_code = VP_EXIT_OK,
	};
	struct epoll_event ev[16];
	struct kvm_pace_state st;
	int i, n, r, fl;

	vp_decoder_init(&s.dec, o->proto);
	s.held = calloc(vm->nr_vcpus, sizeof(bool));
	if (!s.held)
		return VP_EXIT_ERROR;
	if (o->trace) {
		s.trace = fopen(o->trace, "w");
		if (!s.trace) {
			vp_err("cannot write the trace to %s: %s", o->trace, strerror(errno));
			return VP_EXIT_ERROR;
		}
		setvbuf(s.trace, NULL, _IOLBF, 0);
		fprintf(s.trace, "seq,grant,elapsed,overshoot_ticks,host_ns\n");
	}
	fl = fcntl(o->sync_fd, F_GETFL);
	fcntl(o->sync_fd, F_SETFL, fl | O_NONBLOCK);
	fcntl(o->sync_fd, F_SETFD, FD_CLOEXEC);

	r = setup(&s);
	if (r) {
		vp_err("cannot set up the event loop: %s", strerror(-r));
		return VP_EXIT_ERROR;
	}

	/* Freeze the guest where it is now. */
	if (vcpu_state(&s, 0, &st)) {
		vp_err("KVM_GET_PACE_STATE: %s", strerror(errno));
		return VP_EXIT_ERROR;
	}
	if (start_quantum(&s, st.guest_tsc ? st.guest_tsc : 1))
		goto out;

	while (s.state != ST_DONE) {
		n = epoll_wait(s.epfd, ev, 16, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			vp_err("epoll_wait: %s", strerror(errno));
			finish(&s, VP_EXIT_ERROR);
			break;
		}
		for (i = 0; i < n && s.state != ST_DONE; i++) {
			int tag = (int)(int64_t)ev[i].data.u64;

			r = 0;
			if (tag == TAG_PIDFD) {
				vp_err("the VMM (pid %d) exited", (int)vm->pid);
				finish(&s, VP_EXIT_VMM_DIED);
			} else if (tag == TAG_SIGNAL) {
				struct signalfd_siginfo si;

				if (read(s.sigfd, &si, sizeof(si)) == sizeof(si))
					vp_info("signal %u: releasing the guest", si.ssi_signo);
				finish(&s, VP_EXIT_SIGNAL);
			} else if (tag == TAG_SYNC) {
				if (s.state == ST_REPORTING && (ev[i].events & EPOLLOUT))
					r = send_report(&s);
				else if (s.state == ST_WAIT_GRANT && (ev[i].events & EPOLLIN))
					r = on_sync_readable(&s);
				else if (ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					on_sync_hangup(&s);
			} else {
				r = on_vcpu(&s, tag);
			}
			if (r && s.state != ST_DONE) {
				if (s.exit_code == VP_EXIT_OK)
					s.exit_code = VP_EXIT_ERROR;
				s.state = ST_DONE;
			}
		}
	}
out:
	/* Every way out releases the guest or ends the VMM. */
	if (s.exit_code == VP_EXIT_OK && o->on_close == VP_CLOSE_TERMINATE)
		terminate_vmm(&s);
	else if (s.exit_code != VP_EXIT_VMM_DIED)
		vp_disarm_all(vm);
	close(o->sync_fd);
	if (s.trace)
		fclose(s.trace);
	free(s.held);
	close(s.epfd);
	close(s.sigfd);
	return s.exit_code;
}
