// SPDX-License-Identifier: GPL-2.0-only
/*
 * Pacing of vCPUs to an external clock.
 *
 * A controller (usually not the VMM: it borrows the vCPU fds with
 * pidfd_getfd()) sets an absolute guest-TSC deadline per vCPU.  When a vCPU
 * reaches it, KVM_RUN either holds the vCPU thread in the kernel until the
 * deadline is raised or disarmed, or returns KVM_EXIT_PACE.  Once every vCPU
 * of the VM is held, guest time stands still until one of them runs again.
 *
 * See Documentation/virt/kvm/x86/pacing.rst.
 */
#include <linux/idr.h>
#include <linux/kvm_host.h>
#include <linux/kvm_pace.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

/* VM ids: unique among live VMs, allocated cyclically so not soon reused. */
static DEFINE_IDA(pace_vm_ids);
static DEFINE_MUTEX(pace_vm_ids_lock);
static int pace_next_vm_id = 1;

static int pace_alloc_vm_id(void)
{
	int id;

	mutex_lock(&pace_vm_ids_lock);
	id = ida_alloc_range(&pace_vm_ids, pace_next_vm_id, INT_MAX, GFP_KERNEL);
	if (id == -ENOSPC)
		id = ida_alloc_range(&pace_vm_ids, 1, INT_MAX, GFP_KERNEL);
	if (id > 0)
		pace_next_vm_id = id == INT_MAX ? 1 : id + 1;
	mutex_unlock(&pace_vm_ids_lock);
	return id;
}

static enum hrtimer_restart pace_timer_fn(struct hrtimer *timer)
{
	struct kvm_pace_vcpu *pv = container_of(timer, struct kvm_pace_vcpu, timer);

	/* Get the vCPU out of the guest, or out of a halt. */
	kvm_make_request(KVM_REQ_UNBLOCK, pv->vcpu);
	kvm_vcpu_kick(pv->vcpu);
	return HRTIMER_NORESTART;
}

/*
 * kvm->pace and vcpu->pace are set once, with smp_store_release() after the
 * structure is initialized, and read locklessly with smp_load_acquire(); they
 * are freed only when the VM and the vCPU are destroyed.
 */
static struct kvm_pace_vm *pace_vm_get(struct kvm *kvm)
{
	struct kvm_pace_vm *pvm = smp_load_acquire(&kvm->pace); /* see above */
	int id;

	if (pvm)
		return pvm;

	mutex_lock(&kvm->lock);
	pvm = kvm->pace;
	if (!pvm) {
		pvm = kzalloc(sizeof(*pvm), GFP_KERNEL_ACCOUNT);
		id = pvm ? pace_alloc_vm_id() : -ENOMEM;
		if (id > 0) {
			mutex_init(&pvm->lock);
			pvm->id = id;
			kvm_arch_pace_vm_init(pvm);
			smp_store_release(&kvm->pace, pvm); /* pairs with acquire above */
		} else {
			kfree(pvm);
			pvm = NULL;
		}
	}
	mutex_unlock(&kvm->lock);
	return pvm;
}

/* Called with pvm->lock held. */
static struct kvm_pace_vcpu *pace_vcpu_get(struct kvm_vcpu *vcpu,
					   struct kvm_pace_vm *pvm)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;

	if (pv)
		return pv;

	pv = kzalloc(sizeof(*pv), GFP_KERNEL_ACCOUNT);
	if (!pv)
		return NULL;

	pv->vcpu = vcpu;
	init_waitqueue_head(&pv->wq);
	hrtimer_init(&pv->timer, CLOCK_MONOTONIC, HRTIMER_MODE_ABS_HARD);
	pv->timer.function = pace_timer_fn;
	/* Its first run takes the locked path, where frozen time is applied. */
	pv->rearm = true;
	kvm_arch_pace_vcpu_init(vcpu, pv);
	smp_store_release(&vcpu->pace, pv); /* see pace_vm_get() */
	return pv;
}

/*
 * The latest guest time a held vCPU reached: where the VM's guest time
 * stands while it is frozen, even if its vCPUs' TSCs are not quite in step
 * (a host whose TSC is unstable).
 */
static u64 pace_latest_held(struct kvm *kvm)
{
	struct kvm_vcpu *vcpu;
	unsigned long i;
	u64 tsc = 0;

	kvm_for_each_vcpu(i, vcpu, kvm)
		if (vcpu->pace && vcpu->pace->held)
			tsc = max(tsc, vcpu->pace->held_tsc);
	return tsc;
}

static void pace_hold(struct kvm_vcpu *vcpu, struct kvm_pace_vm *pvm,
		      struct kvm_pace_vcpu *pv, const struct kvm_pace_clock *c)
{
	u64 overshoot = c->guest_tsc - pv->deadline;

	hrtimer_cancel(&pv->timer);
	pv->held = true;
	pv->run_locked = true;
	pv->held_tsc = c->guest_tsc;
	pv->held_since = c->ns;
	pv->stats.holds++;
	pv->stats.overshoot_last = overshoot;
	pv->stats.overshoot_max = max(pv->stats.overshoot_max, overshoot);
	kvm_arch_pace_vcpu_hold(vcpu, c);

	if (++pvm->nr_held == atomic_read(&vcpu->kvm->online_vcpus) &&
	    !pvm->frozen) {
		/* Guest time stops where the last vCPU stopped. */
		kvm_arch_pace_freeze(vcpu->kvm, c, pace_latest_held(vcpu->kvm));
		pvm->freeze_ns = c->ns;
		pvm->frozen_vcpus = pvm->nr_held;
		WRITE_ONCE(pvm->frozen, true);
	}
	kvm_pace_notify(vcpu, KVM_PACE_CMD_HOLD, c, overshoot);
	wake_up_all(&pv->wq);
}

static void pace_thaw(struct kvm_vcpu *vcpu, struct kvm_pace_vm *pvm)
{
	struct kvm_vcpu *v;
	unsigned long i;

	kvm_arch_pace_thaw(vcpu->kvm, vcpu);
	pvm->frozen_ns += ktime_get_ns() - pvm->freeze_ns;
	WRITE_ONCE(pvm->frozen, false);
	/* vCPUs created while the VM was frozen were waiting for this. */
	kvm_for_each_vcpu(i, v, vcpu->kvm)
		if (v->vcpu_idx >= pvm->frozen_vcpus && v->pace)
			wake_up_all(&v->pace->wq);
	/* Pacing ended while the VM was frozen: see pace_disarm(). */
	if (!pvm->nr_armed)
		kvm_arch_pace_stop(vcpu->kvm);
}

static void pace_release(struct kvm_pace_vm *pvm, struct kvm_pace_vcpu *pv)
{
	u64 held_ns;

	if (!pv->held)
		return;

	held_ns = ktime_get_ns() - pv->held_since;
	pv->held = false;
	pv->stats.held_ns += held_ns;
	pvm->nr_held--;
	WRITE_ONCE(pv->rearm, true);
	kvm_pace_notify(pv->vcpu, KVM_PACE_CMD_RELEASE, NULL, held_ns);
	wake_up_all(&pv->wq);
}

static void pace_disarm(struct kvm_pace_vm *pvm, struct kvm_pace_vcpu *pv,
			enum kvm_pace_disarm_reason why)
{
	hrtimer_cancel(&pv->timer);
	pace_release(pvm, pv);
	kvm_pace_notify(pv->vcpu, KVM_PACE_CMD_DISARM, NULL, why);
	WRITE_ONCE(pv->deadline, 0);
	pv->flags = 0;
	pv->owner = NULL;
	pv->owner_pid = 0;
	/*
	 * Without armed vCPUs kvmclock goes back to host time; a frozen VM
	 * does that when it thaws, so that its clocks stay continuous.
	 */
	if (!--pvm->nr_armed && !pvm->frozen)
		kvm_arch_pace_stop(pv->vcpu->kvm);
	kvm_make_request(KVM_REQ_UNBLOCK, pv->vcpu);
	kvm_vcpu_kick(pv->vcpu);
	wake_up_all(&pv->wq);
}

static void pace_disarm_all(struct kvm *kvm, enum kvm_pace_disarm_reason why)
{
	struct kvm_vcpu *vcpu;
	unsigned long i;

	kvm_for_each_vcpu(i, vcpu, kvm)
		if (vcpu->pace && vcpu->pace->deadline)
			pace_disarm(kvm->pace, vcpu->pace, why);
}

/* Whether every vCPU of the VM is in a state that pacing can freeze. */
static int pace_vm_check(struct kvm *kvm)
{
	struct kvm_vcpu *vcpu;
	unsigned long i;
	int r;

	kvm_for_each_vcpu(i, vcpu, kvm) {
		r = kvm_arch_pace_check(vcpu);
		if (r)
			return r;
	}
	return 0;
}

/*
 * Whether the vCPU can simply go on, without taking the VM's pacing lock: the
 * common case of a vCPU that exits and enters again within its quantum.
 * After a hold, the vCPU's next run takes the lock (->run_locked, which only
 * its own thread uses): that is where frozen time is applied and the timer
 * armed.  The VM cannot freeze while this vCPU is not held.  A new deadline
 * or a disarm is stored under the lock before the vCPU is kicked with
 * KVM_REQ_UNBLOCK, which cancels the entry (or ends the halt) and brings the
 * vCPU back here, to see ->rearm or the deadline after the smp_rmb().
 * Hence WRITE_ONCE() for ->rearm, ->deadline and ->frozen everywhere.
 */
static bool pace_vcpu_runs_on(struct kvm_vcpu *vcpu, struct kvm_pace_vcpu *pv,
			      struct kvm_pace_vm *pvm)
{
	struct kvm_pace_clock c;
	u64 deadline;

	if (pv->run_locked)
		return false;
	/* Pairs with the smp_wmb() in kvm_make_request(). */
	smp_rmb();
	if (READ_ONCE(pv->rearm) || READ_ONCE(pvm->frozen))
		return false;
	deadline = READ_ONCE(pv->deadline);
	if (!deadline)
		return true;
	if (!hrtimer_active(&pv->timer))
		return false;
	kvm_arch_pace_read_clock(vcpu, &c);
	return c.guest_tsc < deadline;
}

/*
 * Sleeps of a vCPU thread in KVM_RUN, like a halt: memslot updates go on
 * meanwhile.  Return -EINTR if a signal ended them.
 */
static int pace_wait_released(struct kvm_vcpu *vcpu, struct kvm_pace_vcpu *pv)
{
	int r;

	kvm_vcpu_srcu_read_unlock(vcpu);
	r = wait_event_interruptible(pv->wq, !READ_ONCE(pv->held));
	kvm_vcpu_srcu_read_lock(vcpu);
	if (r)
		kvm_handle_signal_exit(vcpu);
	return r;
}

static int pace_wait_thaw(struct kvm_vcpu *vcpu, struct kvm_pace_vcpu *pv,
			  struct kvm_pace_vm *pvm)
{
	int r;

	kvm_vcpu_srcu_read_unlock(vcpu);
	r = wait_event_interruptible(pv->wq,
				     !READ_ONCE(pvm->frozen) ||
				     READ_ONCE(pv->deadline));
	kvm_vcpu_srcu_read_lock(vcpu);
	if (r)
		kvm_handle_signal_exit(vcpu);
	return r;
}

/*
 * Called by the arch run loop before every guest entry (or halt) of a vCPU
 * that has been paced.  Returns 1 to go on, 0 to exit to userspace with
 * KVM_EXIT_PACE, -EINTR when a signal interrupted the hold.
 */
int kvm_pace_vcpu_run(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	struct kvm_pace_clock c;
	u64 deadline;

	if (pace_vcpu_runs_on(vcpu, pv, pvm))
		return 1;

	for (;;) {
		mutex_lock(&pvm->lock);
		/* Something pacing cannot freeze started to run: stop pacing. */
		if (pvm->nr_armed && kvm_arch_pace_check(vcpu))
			pace_disarm_all(vcpu->kvm, KVM_PACE_DISARM_UNSUPPORTED);

		if (pv->held) {
			if (pv->flags & KVM_PACE_EXIT_TO_USER) {
				vcpu->run->exit_reason = KVM_EXIT_PACE;
				vcpu->run->pace.deadline = pv->deadline;
				vcpu->run->pace.guest_tsc = pv->held_tsc;
				vcpu->run->pace.guest_ns =
					kvm_arch_pace_guest_ns(vcpu->kvm,
							       pv->held_tsc);
				pv->stats.exits++;
				mutex_unlock(&pvm->lock);
				return 0;
			}
			mutex_unlock(&pvm->lock);
			if (pace_wait_released(vcpu, pv))
				return -EINTR;
			continue;
		}

		if (pvm->frozen) {
			deadline = pv->deadline;
			/* A deadline already reached holds without a thaw. */
			c.guest_tsc = kvm_arch_pace_guest_tsc(vcpu);
			if (deadline && c.guest_tsc >= deadline) {
				c.host_tsc = 0;
				c.ns = ktime_get_ns();
				pace_hold(vcpu, pvm, pv, &c);
				mutex_unlock(&pvm->lock);
				continue;
			}
			/*
			 * A vCPU created while the VM was frozen does not
			 * start guest time before it is paced or the VM
			 * runs again.
			 */
			if (!deadline && vcpu->vcpu_idx >= pvm->frozen_vcpus) {
				mutex_unlock(&pvm->lock);
				if (pace_wait_thaw(vcpu, pv, pvm))
					return -EINTR;
				continue;
			}
			/* Guest time starts again with the first vCPU that runs. */
			pace_thaw(vcpu, pvm);
		}
		kvm_arch_pace_vcpu_resume(vcpu);

		if (!pv->deadline) {
			pv->run_locked = false;
			mutex_unlock(&pvm->lock);
			return 1;
		}

		kvm_arch_pace_read_clock(vcpu, &c);
		if (c.guest_tsc >= pv->deadline) {
			pace_hold(vcpu, pvm, pv, &c);
			mutex_unlock(&pvm->lock);
			continue;
		}

		if (pv->rearm || !hrtimer_active(&pv->timer)) {
			kvm_arch_pace_arm_timer(vcpu, c.guest_tsc);
			WRITE_ONCE(pv->rearm, false);
		}
		pv->run_locked = false;
		mutex_unlock(&pvm->lock);
		return 1;
	}
}

/* The vCPU's pacing state, allocated on first use. */
static struct kvm_pace_vcpu *pace_vcpu_alloc(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vcpu *pv = smp_load_acquire(&vcpu->pace); /* pace_vm_get() */
	struct kvm_pace_vm *pvm;

	if (pv)
		return pv;

	pvm = pace_vm_get(vcpu->kvm);
	if (!pvm)
		return NULL;

	mutex_lock(&pvm->lock);
	pv = pace_vcpu_get(vcpu, pvm);
	mutex_unlock(&pvm->lock);
	return pv;
}

static int pace_set_deadline(struct kvm_vcpu *vcpu, void __user *argp)
{
	struct kvm_pace_deadline d;
	struct kvm_pace_vcpu *pv;
	struct kvm_pace_vm *pvm;
	int r = 0;

	if (copy_from_user(&d, argp, sizeof(d)))
		return -EFAULT;
	if ((d.flags & ~KVM_PACE_VALID_FLAGS) || d.pad)
		return -EINVAL;

	pv = pace_vcpu_alloc(vcpu);
	if (!pv)
		return -ENOMEM;

	pvm = vcpu->kvm->pace;
	mutex_lock(&pvm->lock);

	/* One controller at a time; it must disarm before another arms. */
	if (pv->deadline && pv->owner != current->files) {
		r = -EBUSY;
		goto out;
	}

	if (!d.deadline) {
		if (pv->deadline)
			pace_disarm(pvm, pv, KVM_PACE_DISARM_IOCTL);
		goto out;
	}

	if (!pv->deadline) {
		r = pace_vm_check(vcpu->kvm);
		if (r)
			goto out;
		/* The first armed vCPU makes kvmclock follow the guest TSC. */
		if (!pvm->nr_armed) {
			r = kvm_arch_pace_start(vcpu->kvm, vcpu);
			if (r)
				goto out;
		}
		pvm->nr_armed++;
	}

	WRITE_ONCE(pv->deadline, d.deadline);
	pv->flags = d.flags;
	pv->owner = current->files;
	pv->owner_pid = task_tgid_nr(current);
	WRITE_ONCE(pv->rearm, true);
	if (pv->held)
		pace_release(pvm, pv);
	else
		kvm_pace_notify(vcpu, KVM_PACE_CMD_ARM, NULL, 0);

	/* Have the vCPU thread program its timer against the new deadline. */
	kvm_make_request(KVM_REQ_UNBLOCK, vcpu);
	kvm_vcpu_kick(vcpu);
	wake_up_all(&pv->wq);
out:
	mutex_unlock(&pvm->lock);
	return r;
}

void kvm_pace_fill_state(struct kvm_vcpu *vcpu, struct kvm_pace_state *st)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;
	u64 now = ktime_get_ns();

	lockdep_assert_held(&pvm->lock);
	/* A held vCPU's guest time is where it stopped, whatever the others do. */
	st->guest_tsc = pv->held ? pv->held_tsc : kvm_arch_pace_guest_tsc(vcpu);
	st->guest_ns = kvm_arch_pace_guest_ns(vcpu->kvm, st->guest_tsc);
	kvm_arch_pace_clock_scale(vcpu->kvm, &st->tsc_to_ns_mul, &st->tsc_shift);
	st->tsc_khz = kvm_arch_pace_tsc_khz(vcpu);
	st->deadline = pv->deadline;
	st->state = 0;
	if (pv->deadline)
		st->state |= KVM_PACE_STATE_ARMED;
	if (pv->held)
		st->state |= KVM_PACE_STATE_HELD;
	if (pvm->frozen)
		st->state |= KVM_PACE_STATE_FROZEN;
	if (READ_ONCE(vcpu->wants_to_run))
		st->state |= KVM_PACE_STATE_IN_RUN;
	/*
	 * The count before the pending state: a count that includes an
	 * interrupt comes with that interrupt pending, or already taken
	 * (pairs with kvm_pace_irq_accepted()).
	 */
	st->irqs = atomic64_read(&pv->irqs);
	smp_rmb();	/* pairs with smp_mb__before_atomic() in the count */
	st->state |= KVM_PACE_STATE_IRQ_INFO;
	if (kvm_arch_pace_irq_pending(vcpu))
		st->state |= KVM_PACE_STATE_IRQ_PENDING;
	st->vm_id = pvm->id;
	st->nr_vcpus = atomic_read(&vcpu->kvm->online_vcpus);
	st->holds = pv->stats.holds;
	st->exits = pv->stats.exits;
	st->overshoot_last = pv->stats.overshoot_last;
	st->overshoot_max = pv->stats.overshoot_max;
	st->held_ns = pv->stats.held_ns;
	if (pv->held)
		st->held_ns += now - pv->held_since;
	st->frozen_ns = pvm->frozen_ns;
	if (pvm->frozen)
		st->frozen_ns += now - pvm->freeze_ns;
}

static int pace_get_state(struct kvm_vcpu *vcpu, void __user *argp)
{
	struct kvm_pace_state st = {};
	struct kvm_pace_vm *pvm;
	struct kvm_pace_vcpu *pv;

	/*
	 * The VM-wide state, so that the vCPU's cannot appear unlocked below;
	 * reading the clock of a vCPU never paced must not start pacing it.
	 */
	pvm = pace_vm_get(vcpu->kvm);
	if (!pvm)
		return -ENOMEM;
	mutex_lock(&pvm->lock);
	pv = vcpu->pace;
	if (pv) {
		kvm_pace_fill_state(vcpu, &st);
	} else {
		st.guest_tsc = kvm_arch_pace_guest_tsc(vcpu);
		st.guest_ns = kvm_arch_pace_guest_ns(vcpu->kvm, st.guest_tsc);
		kvm_arch_pace_clock_scale(vcpu->kvm, &st.tsc_to_ns_mul,
					  &st.tsc_shift);
		st.tsc_khz = kvm_arch_pace_tsc_khz(vcpu);
		if (READ_ONCE(vcpu->wants_to_run))
			st.state |= KVM_PACE_STATE_IN_RUN;
		/* irqs: counted from the vCPU's first deadline on */
		st.state |= KVM_PACE_STATE_IRQ_INFO;
		if (kvm_arch_pace_irq_pending(vcpu))
			st.state |= KVM_PACE_STATE_IRQ_PENDING;
		st.vm_id = pvm->id;
		st.nr_vcpus = atomic_read(&vcpu->kvm->online_vcpus);
	}
	mutex_unlock(&pvm->lock);

	if (copy_to_user(argp, &st, sizeof(st)))
		return -EFAULT;
	return 0;
}

/*
 * KVM_CREATE_VCPU installs the vCPU's fd before it counts the vCPU in
 * online_vcpus (kvm_for_each_vcpu(), the number of vCPUs a freeze waits
 * for), under kvm->lock: pacing must not see a vCPU that the VM does not, so
 * wait for the creation to end.  The wait is killable: kvm->lock may be held
 * by an ioctl that itself waits for a held vCPU.  Once kvm->lock has been
 * released, a vCPU whose fd is installed is online: only a KVM_BUG_ON(),
 * which kills the VM, fails its creation after that point.
 */
static int pace_vcpu_online(struct kvm_vcpu *vcpu)
{
	struct kvm *kvm = vcpu->kvm;

	if (likely(vcpu->vcpu_idx < atomic_read(&kvm->online_vcpus)))
		return 0;
	if (mutex_lock_killable(&kvm->lock))
		return -EINTR;
	mutex_unlock(&kvm->lock);
	if (vcpu->vcpu_idx < atomic_read(&kvm->online_vcpus))
		return 0;
	WARN_ON_ONCE(!READ_ONCE(kvm->vm_dead));
	return -EIO;
}

/*
 * The pacing ioctls are deliberately exempt from the check that the caller
 * shares the VM's mm: the controller is another process that borrowed the
 * vCPU fd with pidfd_getfd(), which requires ptrace-attach rights on the VMM.
 * They touch neither guest memory nor the VMM's address space, and they never
 * take vcpu->mutex, which KVM_RUN holds while the vCPU is held.
 */
long kvm_pace_vcpu_ioctl(struct kvm_vcpu *vcpu, unsigned int ioctl,
			 void __user *argp)
{
	int r;

	if (ioctl != KVM_SET_PACE_DEADLINE && ioctl != KVM_GET_PACE_STATE)
		return -ENOIOCTLCMD;
	if (vcpu->kvm->vm_dead)
		return -EIO;
	r = pace_vcpu_online(vcpu);
	if (r)
		return r;

	if (ioctl == KVM_SET_PACE_DEADLINE)
		return pace_set_deadline(vcpu, argp);
	return pace_get_state(vcpu, argp);
}

/*
 * ->flush runs on every close() of a vCPU fd, including the implicit ones
 * when a process exits or is killed: pacing armed by that process ends, and
 * a held vCPU runs free again.
 */
void kvm_pace_vcpu_flush(struct kvm_vcpu *vcpu, fl_owner_t id)
{
	struct kvm_pace_vcpu *pv = smp_load_acquire(&vcpu->pace); /* pace_vm_get() */
	struct kvm_pace_vm *pvm = vcpu->kvm->pace;

	if (!pv)
		return;

	mutex_lock(&pvm->lock);
	if (pv->deadline && pv->owner == id)
		pace_disarm(pvm, pv, KVM_PACE_DISARM_CLOSE);
	mutex_unlock(&pvm->lock);
}

/*
 * Polling is for pacing controllers: it sets up the vCPU's pacing state, so
 * that an epoll set built before pacing is armed is woken all the same.
 */
__poll_t kvm_pace_vcpu_poll(struct kvm_vcpu *vcpu, struct file *file,
			    poll_table *wait)
{
	struct kvm_pace_vcpu *pv;

	if (pace_vcpu_online(vcpu))
		return EPOLLERR;	/* killed, or the WARN: nothing to wait for */
	pv = pace_vcpu_alloc(vcpu);
	if (!pv)
		return EPOLLERR;

	poll_wait(file, &pv->wq, wait);
	return READ_ONCE(pv->held) ? EPOLLIN | EPOLLRDNORM : 0;
}

/*
 * Binary stats and debugfs address the pacing counters as if they followed
 * struct kvm_vcpu_stat; they read as zero until the vCPU is paced.
 */
u64 *kvm_vcpu_stat_ptr(struct kvm_vcpu *vcpu, size_t offset)
{
	struct kvm_pace_vcpu *pv = smp_load_acquire(&vcpu->pace); /* pace_vm_get() */

	if (offset < sizeof(vcpu->stat))
		return (void *)&vcpu->stat + offset;

	offset -= sizeof(vcpu->stat);
	if (!pv || offset >= sizeof(pv->stats))
		return NULL;
	return (void *)&pv->stats + offset;
}

ssize_t kvm_vcpu_stats_read_pace(struct kvm_vcpu *vcpu,
				 const struct kvm_stats_header *header,
				 const struct kvm_stats_desc *desc,
				 char __user *user_buffer, size_t size,
				 loff_t *offset)
{
	struct kvm_pace_vcpu *pv = smp_load_acquire(&vcpu->pace); /* pace_vm_get() */
	struct {
		struct kvm_vcpu_stat stat;
		struct kvm_pace_stats pace;
	} *data;
	ssize_t r;

	BUILD_BUG_ON(offsetof(typeof(*data), pace) != sizeof(struct kvm_vcpu_stat));
	data = kzalloc(sizeof(*data), GFP_KERNEL_ACCOUNT);
	if (!data)
		return -ENOMEM;

	data->stat = vcpu->stat;
	if (pv)
		data->pace = pv->stats;
	r = kvm_stats_read(vcpu->stats_id, header, desc, data, sizeof(*data),
			   user_buffer, size, offset);
	kfree(data);
	return r;
}

/* A vCPU added to a VM with pacing state joins it (see pace_thaw()). */
void kvm_pace_vcpu_postcreate(struct kvm_vcpu *vcpu)
{
	if (smp_load_acquire(&vcpu->kvm->pace)) /* pace_vm_get() */
		pace_vcpu_alloc(vcpu);
}

void kvm_pace_vcpu_destroy(struct kvm_vcpu *vcpu)
{
	struct kvm_pace_vcpu *pv = vcpu->pace;

	if (!pv)
		return;

	hrtimer_cancel(&pv->timer);
	WRITE_ONCE(vcpu->pace, NULL);
	kfree(pv);
}

void kvm_pace_vm_destroy(struct kvm *kvm)
{
	if (kvm->pace)
		ida_free(&pace_vm_ids, kvm->pace->id);
	kfree(kvm->pace);
	kvm->pace = NULL;
}
