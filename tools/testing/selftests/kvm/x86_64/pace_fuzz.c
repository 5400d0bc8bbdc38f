// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_CAP_PACE fuzzer: random programs of pacing, clock and TSC ioctls,
 * KVM_RUN interrupted by signals, poll/epoll, dup/close, fork, pidfd_getfd
 * and SIGKILL of the process that armed, vCPU creation while others run,
 * VM destruction and kvm_pace netlink dumps and monitors, whole-VM holds
 * (every vCPU armed at one deadline and run to it, which freezes the VM,
 * then released, which thaws it), from several threads at once, against
 * guests that spin, halt, program their LAPIC timer (one-shot, periodic,
 * TSC deadline) or the PIT, or exit to userspace.
 *
 * Meant for a kernel with KASAN, lockdep, UBSAN and panic_on_warn (make
 * check-debug): the kernel's own checkers are the main oracle.  The fuzzer
 * adds its own: the ioctls' documented errors for bad flags, padding and
 * pointers, the zeroed padding of struct kvm_pace_state, rounds that hang
 * (a vCPU that a signal or SIGKILL cannot get out of the kernel), and new
 * kernel reports in /dev/kmsg.
 *
 * A run is a sequence of rounds; round R of seed S is generated from (S, R)
 * alone, so "-s S -r R" replays it.  Each round runs in its own process.
 * Before a round starts its seed is printed (the last line before a panic
 * names the round to replay); a failing round is printed op by op, and with
 * -m it is reduced to a minimal failing sequence (ddmin over the ops, each
 * candidate tried three times: threads make a round's interleaving vary).
 *
 * Usage: pace_fuzz [-s SEED] [-t SECONDS] [-n ROUNDS] [-r ROUND] [-m] [-v]
 *   default: a random seed (printed), 20 seconds.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "apic.h"
#include "pace_util.h"
#include "pace_nl.h"

#define MAX_OPS		64
#define MAX_THREADS	3
#define MAX_LIB_VMS	2
#define MAX_LIB_VCPUS	4		/* 1 to 3 at start, more added mid-run */
#define MAX_RAW_VCPUS	4
#define NR_SLOTS	(MAX_LIB_VMS * MAX_LIB_VCPUS + MAX_RAW_VCPUS)
#define ROUND_LIMIT_S	60
#define MINIMISE_S	600
#define TIMER_VEC	0xec

enum guest_mode {
	G_SPIN, G_HLT_ONESHOT, G_HLT_PERIODIC, G_TSC_DEADLINE, G_PIT, G_UCALL,
	NR_GUEST_MODES
};

static const char * const guest_mode_name[] = {
	"spin", "hlt+lapic-oneshot", "hlt+lapic-periodic", "hlt+tsc-deadline",
	"pit", "ucall",
};

enum op_kind {
	OP_DEADLINE, OP_STATE, OP_STATE_BADPTR, OP_TSC_KHZ, OP_VM_TSC_KHZ,
	OP_SET_CLOCK, OP_SET_MSR, OP_TSC_OFFSET, OP_RUN, OP_POLL, OP_EPOLL,
	OP_DUP_CLOSE, OP_FORK, OP_GETFD_KILL, OP_SIGNAL, OP_NEW_VCPU,
	OP_DESTROY_VM, OP_NEW_VM, OP_NL_DUMP, OP_NL_BAD, OP_NL_MONITOR,
	OP_WRONG_FD, OP_CREATE_PIT, OP_HOLD_ALL, OP_GET_CLOCK, OP_GET_TSC,
	OP_LAPIC, OP_MSI,
	NR_OPS,
	OP_INJECT = NR_OPS,	/* the self-check's failure; never generated */
};

static const char * const op_name[] = {
	"deadline", "state", "state-badptr", "tsc-khz", "vm-tsc-khz",
	"set-clock", "set-msr", "tsc-offset", "run", "poll", "epoll",
	"dup-close", "fork", "getfd-kill", "signal", "new-vcpu",
	"destroy-vm", "new-vm", "nl-dump", "nl-bad", "nl-monitor",
	"wrong-fd", "create-pit", "hold-all", "get-clock", "get-tsc", "lapic",
	"msi", "inject-failure",
};

struct op {
	uint8_t kind;
	uint8_t thread;
	uint8_t slot;		/* vCPU slot, or VM index */
	uint8_t delay_us;	/* before the op, x 20 us */
	uint64_t a, b;
	uint32_t c, d;
};

struct program {
	uint64_t seed;
	int nr_threads;
	int nr_lib_vms;
	int nr_lib_vcpus[MAX_LIB_VMS];
	uint8_t mode[MAX_LIB_VMS][MAX_LIB_VCPUS];
	uint32_t timer_period;	/* guest LAPIC/PIT counts */
	int nr_ops;
	struct op ops[MAX_OPS];
	bool off[MAX_OPS];	/* dropped by the minimiser */
};

/* ---- randomness ------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void generate(struct program *p, uint64_t seed, uint64_t round)
{
	uint64_t s = seed ^ (round * 0xd1342543de82ef95ull);
	int i, v;

	memset(p, 0, sizeof(*p));
	p->seed = s;
	p->nr_threads = 1 + splitmix(&s) % MAX_THREADS;
	p->nr_lib_vms = 1 + splitmix(&s) % MAX_LIB_VMS;
	for (v = 0; v < p->nr_lib_vms; v++) {
		p->nr_lib_vcpus[v] = 1 + splitmix(&s) % (MAX_LIB_VCPUS - 1);
		for (i = 0; i < MAX_LIB_VCPUS; i++)
			p->mode[v][i] = splitmix(&s) % NR_GUEST_MODES;
	}
	p->timer_period = 1000 + splitmix(&s) % 200000;
	p->nr_ops = 16 + splitmix(&s) % (MAX_OPS - 15);
	for (i = 0; i < p->nr_ops; i++) {
		struct op *o = &p->ops[i];
		uint64_t r = splitmix(&s);

		/* running and pacing are what the rest is interleaved with */
		if (r % 4 == 0)
			o->kind = OP_RUN;
		else if (r % 4 == 1)
			o->kind = OP_DEADLINE;
		else if (r % 8 == 2)
			o->kind = OP_HOLD_ALL;
		else
			o->kind = (r >> 8) % NR_OPS;
		o->thread = splitmix(&s) % p->nr_threads;
		o->slot = splitmix(&s) % NR_SLOTS;
		o->delay_us = splitmix(&s) % 8 ? 0 : splitmix(&s) % 50;
		o->a = splitmix(&s);
		o->b = splitmix(&s);
		o->c = splitmix(&s);
		o->d = splitmix(&s);
	}
}

/* A hostile u64: the extremes, values near the current guest TSC, noise. */
static uint64_t pick_u64(uint64_t sel, uint64_t noise, uint64_t near)
{
	switch (sel % 12) {
	case 0: return 0;
	case 1: return 1;
	case 2: return UINT64_MAX;
	case 3: return UINT64_MAX - noise % 1000;
	case 4: return 1ull << 63;
	case 5: return near + noise % 100000;
	case 6: return near - noise % 100000;
	case 7: return near + noise % 4000000000ull;
	case 8: return near;
	case 10: case 11: return near + noise % 50000000;	/* ~20 ms */
	default: return noise;
	}
}

static uint32_t pick_u32(uint64_t sel, uint32_t noise)
{
	static const uint32_t v[] = { 0, 1, 2, 999, 1000, 1001, 100000, 1000000,
				      2445000, 4000000, UINT32_MAX, 1u << 31 };

	return sel % 14 < 12 ? v[sel % 14] : noise;
}

/* ---- the guest ------------------------------------------------------------- */

static void guest_timer_isr(struct ex_regs *regs)
{
	x2apic_write_reg(APIC_EOI, 0);
}

static void guest_code(uint64_t mode, uint64_t period)
{
	uint64_t n = 0;

	if (mode != G_SPIN && mode != G_UCALL && mode != G_PIT) {
		x2apic_enable();
		x2apic_write_reg(APIC_TDCR, 0xb);	/* divide by 1 */
	}
	switch (mode) {
	case G_HLT_PERIODIC:
		x2apic_write_reg(APIC_LVTT, APIC_LVT_TIMER_PERIODIC | TIMER_VEC);
		x2apic_write_reg(APIC_TMICT, period);
		break;
	case G_PIT:
		/* channel 0, mode 2 (rate generator), lo/hi byte */
		port_outb(0x43, 0x34);
		port_outb(0x40, period & 0xff);
		port_outb(0x40, (period >> 8) & 0xff);
		break;
	}
	for (;;) {
		switch (mode) {
		case G_SPIN:
			cpu_relax();
			break;
		case G_HLT_ONESHOT:
			x2apic_write_reg(APIC_LVTT, APIC_LVT_TIMER_ONESHOT | TIMER_VEC);
			x2apic_write_reg(APIC_TMICT, period);
			asm volatile("sti; hlt; cli");
			break;
		case G_HLT_PERIODIC:
		case G_PIT:
			asm volatile("sti; hlt; cli");
			break;
		case G_TSC_DEADLINE:
			x2apic_write_reg(APIC_LVTT, APIC_LVT_TIMER_TSCDEADLINE | TIMER_VEC);
			wrmsr(MSR_IA32_TSC_DEADLINE, rdtsc() + period);
			asm volatile("sti; hlt; cli");
			break;
		case G_UCALL:
			GUEST_SYNC(n++);
			break;
		}
	}
}

/* ---- a round's world --------------------------------------------------------- */

/*
 * Slots hold vCPU fds.  An fd number, once a slot has it, stays the slot's
 * for the whole round: a vCPU or VM that goes away is replaced by /dev/null
 * with dup2(), and a new one is dup2()ed onto the same number.  So an op
 * that read a number just before another thread destroyed the VM reaches
 * /dev/null or the new vCPU, never some unrelated file that happened to get
 * the number.
 */
struct world {
	struct program *p;
	pthread_mutex_t lock;		/* slots, raw VM, library VMs, netlink */
	struct kvm_vm *vm[MAX_LIB_VMS];
	int nr_vcpus[MAX_LIB_VMS];	/* library vCPUs, growing */
	int slot_fd[NR_SLOTS];		/* -1: never used */
	int slot_vm[NR_SLOTS];		/* VM fd of the slot's vCPU */
	bool slot_live[NR_SLOTS];
	int raw_vm;			/* a VM made with raw ioctls, or -1 */
	bool raw_live;
	int raw_next_id;
	int null;			/* /dev/null */
	int report_fd;
	int nl, mon;
	struct family fam;
	pthread_t tid[MAX_THREADS];
	pid_t tids[MAX_THREADS];
	pthread_barrier_t start;
	void *noaccess;			/* a PROT_NONE page */
	atomic_ulong executed;
	atomic_ulong freezes;		/* hold-all ops that froze their VM */
};

static bool verbose;
static bool quiet_rounds;	/* the self-check's expected failures */

static void note(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* The fd of live slot number @slot modulo the live ones, or -1. */
static int slot_fd(struct world *w, int slot, int *vmfd)
{
	int i, n, live = 0, fd = -1;

	pthread_mutex_lock(&w->lock);
	for (i = 0; i < NR_SLOTS; i++)
		live += w->slot_live[i];
	n = live ? slot % live : 0;
	for (i = 0; live && i < NR_SLOTS; i++) {
		if (w->slot_live[i] && n-- == 0) {
			fd = w->slot_fd[i];
			*vmfd = w->slot_vm[i];
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return fd;
}

/* Puts @fd on slot @i, keeping the slot's fd number if it has one. */
static void slot_set(struct world *w, int i, int fd, int vmfd)
{
	if (w->slot_fd[i] >= 0) {
		TEST_ASSERT(dup2(fd, w->slot_fd[i]) == w->slot_fd[i], "dup2");
		close(fd);
	} else {
		w->slot_fd[i] = fd;
	}
	w->slot_vm[i] = vmfd;
	w->slot_live[i] = true;
}

/* The errors an ioctl may give on a live vCPU; anything else is a finding. */
static void check_errno(const struct op *o, long r, int err)
{
	switch (r < 0 ? err : 0) {
	case 0: case EINVAL: case EBUSY: case EINTR: case EAGAIN: case EFAULT:
	case EIO: case EOPNOTSUPP: case ENOTTY: case EBADF: case ENXIO:
	case EPERM: case EEXIST: case ENOMEM: case ENOENT: case E2BIG:
	case ERANGE: case ENODEV: case EACCES:
		return;
	}
	TEST_FAIL("%s: unexpected errno %d (%s)", op_name[o->kind], err, strerror(err));
}

static int raw_vm_create(struct world *w)
{
	int kvm = open("/dev/kvm", O_RDWR), vm;

	if (kvm < 0)
		return -1;
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	close(kvm);
	if (vm >= 0)
		ioctl(vm, KVM_CREATE_IRQCHIP, 0);
	return vm;
}

/* Adds a vCPU to the raw VM (making the VM if there is none). */
static void raw_vcpu_add(struct world *w)
{
	int i, fd, vm;

	pthread_mutex_lock(&w->lock);
	if (!w->raw_live) {
		vm = raw_vm_create(w);
		if (vm >= 0 && w->raw_vm >= 0) {
			TEST_ASSERT(dup2(vm, w->raw_vm) == w->raw_vm, "dup2");
			close(vm);
		} else if (vm >= 0) {
			w->raw_vm = vm;
		}
		w->raw_live = vm >= 0;
		w->raw_next_id = 0;
	}
	for (i = NR_SLOTS - MAX_RAW_VCPUS; i < NR_SLOTS; i++)
		if (!w->slot_live[i])
			break;
	if (w->raw_live && i < NR_SLOTS) {
		fd = ioctl(w->raw_vm, KVM_CREATE_VCPU, w->raw_next_id++);
		if (fd >= 0)
			slot_set(w, i, fd, w->raw_vm);
	}
	pthread_mutex_unlock(&w->lock);
}

/*
 * Drops the raw VM and its vCPUs (the VM dies with the last reference):
 * their fd numbers now reach /dev/null.
 */
static void raw_vm_destroy(struct world *w)
{
	int i;

	pthread_mutex_lock(&w->lock);
	for (i = NR_SLOTS - MAX_RAW_VCPUS; i < NR_SLOTS; i++) {
		if (w->slot_live[i])
			TEST_ASSERT(dup2(w->null, w->slot_fd[i]) == w->slot_fd[i], "dup2");
		w->slot_live[i] = false;
	}
	if (w->raw_live)
		TEST_ASSERT(dup2(w->null, w->raw_vm) == w->raw_vm, "dup2");
	w->raw_live = false;
	pthread_mutex_unlock(&w->lock);
}

/* Adds a vCPU to a library VM while the others run (a guest with memory). */
static void lib_vcpu_add(struct world *w, const struct op *o)
{
	int v = o->b % w->p->nr_lib_vms, i;
	struct kvm_vcpu *vcpu;

	pthread_mutex_lock(&w->lock);
	i = w->nr_vcpus[v];
	if (i < MAX_LIB_VCPUS) {
		vcpu = vm_vcpu_add(w->vm[v], i, guest_code);
		vcpu_args_set(vcpu, 2, (uint64_t)(o->c % NR_GUEST_MODES),
			      (uint64_t)w->p->timer_period);
		slot_set(w, v * MAX_LIB_VCPUS + i, vcpu->fd, w->vm[v]->fd);
		w->nr_vcpus[v]++;
	}
	pthread_mutex_unlock(&w->lock);
}

static void sig_nop(int sig)
{
}

static void nl_nop(struct nlmsghdr *nlh, void *arg)
{
}

/* KVM_RUN until a signal from a per-thread timer ends it (or an exit does). */
static void run_for(int fd, uint64_t us)
{
	struct sigevent sev = {
		.sigev_notify = SIGEV_THREAD_ID,
		.sigev_signo = SIGUSR1,
	};
	long ns = 1000 * (us % 20000 + 200);
	/* periodic: a signal that came before the ioctl must not leave it running */
	struct itimerspec its = { .it_value.tv_nsec = ns, .it_interval.tv_nsec = ns };
	timer_t t;

	sev._sigev_un._tid = gettid();
	TEST_ASSERT(!timer_create(CLOCK_MONOTONIC, &sev, &t), "timer_create");
	timer_settime(t, 0, &its, NULL);
	ioctl(fd, KVM_RUN, 0);
	timer_delete(t);
}

/*
 * What vmpace does to a whole VM: every vCPU armed at one deadline up to
 * 20 ms of guest time ahead (exit mode, so that this thread can run them in
 * turn), each run until it is held, which freezes the VM; then a second
 * deadline, which releases them all and thaws the VM on the first run.
 */
static void hold_all(struct world *w, const struct op *o, int vmfd)
{
	int fds[NR_SLOTS], n = 0, i, k, tries, frozen;
	struct kvm_pace_state st;
	uint64_t top = 0, khz = 0, deadline;
	long r;

	pthread_mutex_lock(&w->lock);
	for (i = 0; i < NR_SLOTS; i++)
		if (w->slot_live[i] && w->slot_vm[i] == vmfd)
			fds[n++] = w->slot_fd[i];
	pthread_mutex_unlock(&w->lock);

	for (i = 0; i < n; i++) {
		if (ioctl(fds[i], KVM_GET_PACE_STATE, &st))
			continue;
		top = st.guest_tsc > top ? st.guest_tsc : top;
		khz = st.tsc_khz;
	}
	if (!khz)
		return;
	for (k = 0; k < 2; k++) {
		deadline = top + khz * ((o->b >> (16 * k)) % 20000) / 1000 + 1;
		for (i = 0; i < n; i++) {
			r = __pace_set(fds[i], deadline, KVM_PACE_EXIT_TO_USER, 0);
			check_errno(o, r, errno);
		}
		frozen = 0;
		for (i = 0; i < n; i++) {
			for (tries = 0; tries < 3; tries++) {
				if (!ioctl(fds[i], KVM_GET_PACE_STATE, &st) &&
				    (st.state & KVM_PACE_STATE_HELD))
					break;
				run_for(fds[i], o->c >> (8 * tries));
			}
		}
		for (i = 0; i < n; i++)
			frozen += !ioctl(fds[i], KVM_GET_PACE_STATE, &st) &&
				  (st.state & KVM_PACE_STATE_FROZEN);
		note("  hold-all: %d vCPU(s) of VM fd %d, %d frozen\n", n, vmfd, frozen);
		if (frozen == n)
			atomic_fetch_add(&w->freezes, 1);
		top = deadline;
	}
	for (i = 0; o->d & 1 && i < n; i++) {
		r = __pace_set(fds[i], 0, 0, 0);
		check_errno(o, r, errno);
	}
}

/* A child process arms a vCPU (async-signal-safe calls only). */
static void child_ops(int fd, const struct op *o)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct kvm_pace_state st;

	if (!ioctl(fd, KVM_GET_PACE_STATE, &st))
		__pace_set(fd, st.guest_tsc + o->b % 1000000,
			   o->c & 1 ? KVM_PACE_EXIT_TO_USER : 0, 0);
	/* wait for the hold, as a controller does */
	poll(&pfd, 1, o->d % 20);
}

/*
 * No SMIs: these VMs have no memory in the SMM address space, so KVM kills
 * the VM when it saves the state to SMRAM (enter_smm(): kvm_vm_dead(), with
 * any KVM modules), and every later ioctl on it fails with EIO.  MSI data
 * and LVT entries hold the delivery mode in the same bits: SMI becomes fixed.
 */
static uint32_t no_smi(uint32_t v)
{
	return (v & APIC_DM_FIXED_MASK) == APIC_DM_SMI ? v & ~APIC_DM_FIXED_MASK : v;
}

/* Returns false when the op had nothing to act on. */
static bool exec_op(struct world *w, const struct op *o)
{
	struct kvm_pace_state st;
	int vmfd = -1, fd = slot_fd(w, o->slot, &vmfd);
	uint64_t near = 0;
	long r = 0;

	if (fd >= 0 && !ioctl(fd, KVM_GET_PACE_STATE, &st))
		near = st.guest_tsc;

	switch (o->kind) {
	case OP_DEADLINE: {
		uint32_t flags = o->c % 3 == 0 ? o->c : (o->c % 3 == 1 ? KVM_PACE_EXIT_TO_USER : 0);
		uint32_t pad = o->d % 8 == 0 ? o->d : 0;

		if (fd < 0)
			return false;
		r = __pace_set(fd, pick_u64(o->a, o->b, near), flags, pad);
		if ((flags & ~KVM_PACE_VALID_FLAGS) || pad)
			TEST_ASSERT(r == -1 && (errno == EINVAL || errno == EBADF ||
						errno == ENOTTY),	/* fd reused */
				    "deadline with flags 0x%x pad 0x%x: %ld, errno %d",
				    flags, pad, r, errno);
		break;
	}
	case OP_STATE:
		if (fd < 0)
			return false;
		memset(&st, 0xa5, sizeof(st));
		r = ioctl(fd, KVM_GET_PACE_STATE, &st);
		if (!r) {
			TEST_ASSERT(!st.pad[0] && !st.pad[1] && !st.pad[2] &&
				    !st.reserved[0] && !st.reserved[1],
				    "KVM_GET_PACE_STATE: padding or reserved not zero");
			TEST_ASSERT(!(st.state & ~0x3fu), "unknown state bits 0x%x", st.state);
			TEST_ASSERT(st.state & KVM_PACE_STATE_IRQ_INFO, "IRQ_INFO not set");
			TEST_ASSERT(st.nr_vcpus >= 1 && st.vm_id, "vm_id %u nr_vcpus %u",
				    st.vm_id, st.nr_vcpus);
		}
		break;
	case OP_STATE_BADPTR:
		if (fd < 0)
			return false;
		r = ioctl(fd, KVM_GET_PACE_STATE, o->a & 1 ? NULL : w->noaccess);
		TEST_ASSERT(r == -1 && (errno == EFAULT || errno == EBADF || errno == ENOTTY),
			    "KVM_GET_PACE_STATE to a bad pointer: %ld, errno %d", r, errno);
		r = __pace_set(fd, 0, 0, 0) ? -1 : ioctl(fd, KVM_SET_PACE_DEADLINE, w->noaccess);
		if (r != -1 || errno != EFAULT)
			TEST_ASSERT(r == -1 && (errno == EBADF || errno == EINVAL ||
						errno == EBUSY || errno == ENOTTY),
				    "KVM_SET_PACE_DEADLINE from a bad pointer: %ld, errno %d",
				    r, errno);
		return true;
	case OP_TSC_KHZ:
		if (fd < 0)
			return false;
		r = ioctl(fd, KVM_SET_TSC_KHZ, (unsigned long)pick_u32(o->a, o->c));
		break;
	case OP_VM_TSC_KHZ:
		if (fd < 0)
			return false;
		r = ioctl(vmfd, KVM_SET_TSC_KHZ, (unsigned long)pick_u32(o->a, o->c));
		break;
	case OP_SET_CLOCK: {
		struct kvm_clock_data c = {
			.clock = pick_u64(o->a, o->b, 0),
			.flags = o->c % 4 == 0 ? o->c : (o->c & 1 ? KVM_CLOCK_REALTIME : 0),
			.realtime = o->d,
		};

		if (fd < 0)
			return false;
		r = ioctl(vmfd, KVM_SET_CLOCK, &c);
		break;
	}
	case OP_SET_MSR: {
		static const uint32_t msrs[] = { MSR_IA32_TSC, MSR_IA32_TSC, MSR_IA32_TSC_ADJUST,
			MSR_IA32_TSC_DEADLINE, MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_WALL_CLOCK_NEW };
		struct {
			struct kvm_msrs h;
			struct kvm_msr_entry e;
		} m = { .h.nmsrs = 1 };

		if (fd < 0)
			return false;
		m.e.index = msrs[o->c % ARRAY_SIZE(msrs)];
		m.e.data = pick_u64(o->a, o->b, near);
		if (m.e.index == MSR_KVM_SYSTEM_TIME_NEW && o->d & 1)
			m.e.data = (o->b & 0xfffff000) | 1;	/* enable, random gpa */
		r = ioctl(fd, KVM_SET_MSRS, &m);
		break;
	}
	case OP_TSC_OFFSET: {
		uint64_t off = pick_u64(o->a, o->b, -near);
		struct kvm_device_attr attr = {
			.group = KVM_VCPU_TSC_CTRL,
			.attr = o->c % 8 ? KVM_VCPU_TSC_OFFSET : o->c,
			.addr = o->d % 8 ? (uint64_t)&off : o->d,
		};

		if (fd < 0)
			return false;
		r = ioctl(fd, KVM_SET_DEVICE_ATTR, &attr);
		break;
	}
	case OP_RUN:
		if (fd < 0)
			return false;
		run_for(fd, o->a);
		return true;
	case OP_POLL: {
		struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLPRI | POLLOUT };

		if (fd < 0)
			return false;
		poll(&pfd, 1, o->a % 5);
		return true;
	}
	case OP_EPOLL: {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLPRI | (o->c & 1 ? EPOLLET : 0) };
		int ep = epoll_create1(0);

		if (fd < 0 || ep < 0) {
			if (ep >= 0)
				close(ep);
			return false;
		}
		if (!epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
			epoll_wait(ep, &ev, 1, o->a % 5);
		close(ep);	/* with the vCPU fd still registered */
		return true;
	}
	case OP_DUP_CLOSE: {
		int d = fd >= 0 ? dup(fd) : -1;

		if (d < 0)
			return false;
		if (o->c & 1)
			__pace_set(d, near + o->b % 1000000, 0, 0);
		close(d);	/* ->flush of the vCPU file */
		return true;
	}
	case OP_FORK:
	case OP_GETFD_KILL: {
		struct timespec ts = { .tv_nsec = 1000 * (o->a % 3000) };
		pid_t pid;
		int pfd, got;

		if (fd < 0)
			return false;
		pid = fork();
		if (!pid) {
			/* async-signal-safe calls only from here */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(w->report_fd);
			if (o->kind == OP_FORK) {
				child_ops(fd, o);	/* the inherited fd */
				_exit(0);
			}
			/*
			 * A controller: borrows the vCPU fd from the VMM (the
			 * round process, whose threads may be in KVM_RUN),
			 * arms, waits for the hold, and is SIGKILLed.
			 */
			pfd = syscall(__NR_pidfd_open, getppid(), 0);
			got = pfd >= 0 ? syscall(__NR_pidfd_getfd, pfd, fd, 0) : -1;
			if (got >= 0)
				child_ops(got, o);
			pause();
			_exit(0);
		}
		if (pid < 0)
			return true;
		if (o->kind == OP_GETFD_KILL) {
			nanosleep(&ts, NULL);
			kill(pid, SIGKILL);
		} else if (o->c & 4) {
			nanosleep(&ts, NULL);
			kill(pid, SIGKILL);
		}
		waitpid(pid, NULL, 0);
		return true;
	}
	case OP_SIGNAL:
		syscall(__NR_tgkill, getpid(), w->tids[o->a % w->p->nr_threads], SIGUSR1);
		return true;
	case OP_NEW_VCPU:
		if (o->a & 1)
			lib_vcpu_add(w, o);
		else
			raw_vcpu_add(w);
		return true;
	case OP_DESTROY_VM:
		raw_vm_destroy(w);
		return true;
	case OP_NEW_VM:
		raw_vm_destroy(w);
		raw_vcpu_add(w);
		return true;
	case OP_NL_DUMP:
	case OP_NL_BAD: {
		struct nl_req req;
		uint32_t v = o->c;

		if (w->nl < 0)
			return false;
		pthread_mutex_lock(&w->lock);
		if (o->kind == OP_NL_DUMP) {
			nl_init(&req, w->fam.id, KVM_PACE_CMD_GET_VCPU, NLM_F_DUMP);
			if (o->a & 1) {
				v = o->a & 2 ? getpid() : o->c;
				nl_put(&req, KVM_PACE_A_VMM_PID, &v, 4);
			}
		} else {
			/* any command, flags, attribute type and length */
			nl_init(&req, w->fam.id, o->a % (KVM_PACE_CMD_MAX + 3),
				o->b & 1 ? NLM_F_DUMP : 0);
			req.genl.version = o->b >> 8;
			nl_put(&req, o->d % (KVM_PACE_A_MAX + 3), &o->b, o->d % 9);
		}
		nl_send(w->nl, &req);
		r = nl_recv(w->nl, nl_nop, NULL);
		pthread_mutex_unlock(&w->lock);
		return true;
	}
	case OP_NL_MONITOR: {
		static char buf[8192];

		if (w->mon < 0)
			return false;
		pthread_mutex_lock(&w->lock);
		while (recv(w->mon, buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
		pthread_mutex_unlock(&w->lock);
		return true;
	}
	case OP_WRONG_FD: {
		struct kvm_pace_deadline d = { .deadline = near };

		/* a VM fd, /dev/kvm, a netlink socket: not vCPUs */
		r = ioctl(o->a & 1 ? vmfd : w->nl, KVM_SET_PACE_DEADLINE, &d);
		TEST_ASSERT(r == -1 && (errno == ENOTTY || errno == EBADF || errno == EINVAL),
			    "KVM_SET_PACE_DEADLINE on a non-vCPU fd: %ld, errno %d", r, errno);
		r = ioctl(o->a & 1 ? vmfd : w->nl, KVM_GET_PACE_STATE, &st);
		TEST_ASSERT(r == -1 && (errno == ENOTTY || errno == EBADF || errno == EINVAL),
			    "KVM_GET_PACE_STATE on a non-vCPU fd: %ld, errno %d", r, errno);
		return true;
	}
	case OP_INJECT:
		TEST_FAIL("the self-check's injected failure");
	case OP_HOLD_ALL:
		if (fd < 0)
			return false;
		hold_all(w, o, vmfd);
		return true;
	case OP_GET_CLOCK: {
		struct kvm_clock_data data = {};

		if (fd < 0)
			return false;
		r = ioctl(vmfd, KVM_GET_CLOCK, &data);
		break;
	}
	case OP_GET_TSC: {
		struct {
			struct kvm_msrs hdr;
			struct kvm_msr_entry e[2];
		} msrs = {
			.hdr.nmsrs = 2,
			.e = { { .index = MSR_IA32_TSC }, { .index = MSR_IA32_TSC_DEADLINE } },
		};
		uint64_t off;
		struct kvm_device_attr attr = {
			.group = KVM_VCPU_TSC_CTRL,
			.attr = KVM_VCPU_TSC_OFFSET,
			.addr = (uint64_t)&off,
		};

		if (fd < 0)
			return false;
		r = ioctl(fd, o->a & 1 ? KVM_GET_DEVICE_ATTR : KVM_GET_MSRS,
			  o->a & 1 ? (void *)&attr : (void *)&msrs);
		if (r > 0)	/* KVM_GET_MSRS: the number read */
			r = 0;
		break;
	}
	case OP_LAPIC: {
		struct kvm_lapic_state lapic;

		/* TMCCT read, and the timer restarted by KVM_SET_LAPIC */
		if (fd < 0)
			return false;
		r = ioctl(fd, KVM_GET_LAPIC, &lapic);
		if (r || !(o->c & 1))
			break;
		if (o->c & 2) {	/* a new initial count, or a new LVT timer mode */
			/* KVM_SET_LAPIC takes the whole LVT entry, mode and all */
			uint32_t v = o->c & 4 ? o->d : no_smi(o->d);

			memcpy(&lapic.regs[o->c & 4 ? APIC_TMICT : APIC_LVTT], &v, 4);
		}
		r = ioctl(fd, KVM_SET_LAPIC, &lapic);
		break;
	}
	case OP_MSI: {
		/* MSIs (any destination and mode) and NMIs, also to held vCPUs */
		struct kvm_msi msi = {
			.address_lo = 0xfee00000 | (o->c & 0xff000),
			.data = o->d & 0xffff,
		};

		if (fd < 0)
			return false;
		msi.data = no_smi(msi.data);
		if (o->c & 1)
			r = ioctl(fd, KVM_NMI, 0);
		else
			r = ioctl(vmfd, KVM_SIGNAL_MSI, &msi);
		if (r > 0)	/* KVM_SIGNAL_MSI: delivered to r vCPUs */
			r = 0;
		break;
	}
	case OP_CREATE_PIT: {
		struct kvm_pit_config pit = { .flags = o->c & 1 };

		if (fd < 0)
			return false;
		r = ioctl(vmfd, KVM_CREATE_PIT2, &pit);
		break;
	}
	}
	check_errno(o, r, errno);
	return true;
}

struct thread_arg {
	struct world *w;
	int id;
};

static void *thread_main(void *arg)
{
	struct thread_arg *ta = arg;
	struct world *w = ta->w;
	struct program *p = w->p;
	int i;

	w->tids[ta->id] = gettid();
	pthread_barrier_wait(&w->start);
	for (i = 0; i < p->nr_ops; i++) {
		const struct op *o = &p->ops[i];

		if (o->thread != ta->id || p->off[i])
			continue;
		if (o->delay_us)
			usleep(o->delay_us * 20);
		note("  [%d] op %d %s slot %u\n", ta->id, i, op_name[o->kind], o->slot);
		if (exec_op(w, o))
			atomic_fetch_add(&w->executed, 1);
	}
	return NULL;
}

/* One round, in its own process: exit 0, or a failure. */
static void round_main(struct program *p, int report_fd)
{
	struct sigaction sa = { .sa_handler = sig_nop };	/* no SA_RESTART */
	struct thread_arg ta[MAX_THREADS];
	struct world w = { .p = p, .raw_vm = -1, .nl = -1, .mon = -1, .report_fd = report_fd };
	struct kvm_vcpu *vcpus[MAX_LIB_VCPUS];
	unsigned long counts[2];	/* ops executed, freezes */
	int v, i, s;

	sigaction(SIGUSR1, &sa, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	pthread_mutex_init(&w.lock, NULL);
	w.noaccess = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(w.noaccess != MAP_FAILED, "mmap");
	for (s = 0; s < NR_SLOTS; s++) {
		w.slot_fd[s] = -1;
		w.slot_vm[s] = -1;
	}
	w.null = open("/dev/null", O_RDWR);
	TEST_ASSERT(w.null >= 0, "/dev/null");

	for (v = 0; v < p->nr_lib_vms; v++) {
		struct kvm_pit_config pit = {};
		bool want_pit = false;

		w.vm[v] = vm_create_with_vcpus(p->nr_lib_vcpus[v], guest_code, vcpus);
		vm_install_exception_handler(w.vm[v], TIMER_VEC, guest_timer_isr);
		w.nr_vcpus[v] = p->nr_lib_vcpus[v];
		for (i = 0; i < p->nr_lib_vcpus[v]; i++) {
			vcpu_args_set(vcpus[i], 2, (uint64_t)p->mode[v][i],
				      (uint64_t)p->timer_period);
			slot_set(&w, v * MAX_LIB_VCPUS + i, vcpus[i]->fd, w.vm[v]->fd);
			want_pit |= p->mode[v][i] == G_PIT;
		}
		/* the in-kernel PIT that a "pit" guest programs (its IRQ is not routed) */
		if (want_pit)
			vm_ioctl(w.vm[v], KVM_CREATE_PIT2, &pit);
	}
	raw_vcpu_add(&w);

	w.nl = nl_open();
	w.fam = resolve_family(w.nl);
	w.mon = nl_open();
	if (setsockopt(w.mon, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &w.fam.events_grp,
		       sizeof(w.fam.events_grp))) {
		close(w.mon);
		w.mon = -1;
	}

	pthread_barrier_init(&w.start, NULL, p->nr_threads);
	for (i = 0; i < p->nr_threads; i++) {
		ta[i] = (struct thread_arg){ .w = &w, .id = i };
		pthread_create(&w.tid[i], NULL, thread_main, &ta[i]);
	}
	for (i = 0; i < p->nr_threads; i++)
		pthread_join(w.tid[i], NULL);

	counts[0] = atomic_load(&w.executed);
	counts[1] = atomic_load(&w.freezes);
	if (write(report_fd, counts, sizeof(counts)) != sizeof(counts))
		_exit(2);
	/* VMs die with their armed, held or running vCPUs */
	raw_vm_destroy(&w);
	for (v = 0; v < p->nr_lib_vms; v++)
		kvm_vm_free(w.vm[v]);
	_exit(0);
}

static void minimise(struct program *p, int kmsg, int want, int tries);
static char want_sig[512];	/* the failure being minimised */

/* ---- the driver ------------------------------------------------------------- */

static const char * const report_pat[] = {
	"pace_fuzz self-check report",	/* the self-check's marker */
	"BUG:", "WARNING:", "KASAN", "UBSAN", "KFENCE", "ODEBUG", "lockdep",
	"possible circular locking", "possible recursive locking",
	"inconsistent lock state", "suspicious RCU usage", "Oops",
	"general protection fault", "divide error", "kernel BUG",
	"blocked for more than", "soft lockup", "sleeping function called",
	"detected stall",
};

/* The first new kernel report in /dev/kmsg (copied to @out), or false. */
static bool kmsg_report(int kmsg, char *out, size_t len)
{
	char rec[8192];
	bool found = false;
	ssize_t n;
	size_t i;

	if (kmsg < 0)
		return false;
	/* EPIPE: records were overwritten; EINVAL: one too long: go on */
	while ((n = read(kmsg, rec, sizeof(rec) - 1)) > 0 ||
	       (n < 0 && (errno == EPIPE || errno == EINVAL))) {
		if (n < 0)
			continue;
		rec[n] = 0;
		for (i = 0; i < ARRAY_SIZE(report_pat) && !found; i++) {
			if (strstr(rec, report_pat[i])) {
				const char *text = strchr(rec, ';');

				snprintf(out, len, "%s", text ? text + 1 : rec);
				found = true;
			}
		}
	}
	return found;
}

/*
 * STALL: the round did not end in time but died on SIGKILL (a livelock in
 * the kernel, or the fuzzer's own fault); UNKILLABLE: not even SIGKILL got
 * it out of the kernel.
 */
enum verdict { PASS, FAIL, STALL, UNKILLABLE, REPORT };

static const char * const verdict_name[] = {
	"pass", "fail", "stall", "unkillable", "kernel report",
};

/* Appends the kernel stacks of all threads of @pid to @buf. */
static void task_stacks(pid_t pid, char *buf, size_t len)
{
	char path[384], dir[64];
	size_t used = strlen(buf);
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/task", pid);
	d = opendir(dir);
	while (d && (de = readdir(d)) && used + 64 < len) {
		int fd;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/stack", dir, de->d_name);
		fd = open(path, O_RDONLY);
		used += snprintf(buf + used, len - used, "thread %s:\n", de->d_name);
		n = fd >= 0 ? read(fd, buf + used, len - used - 1) : 0;
		used += n > 0 ? n : 0;
		buf[used] = 0;
		if (fd >= 0)
			close(fd);
	}
	if (d)
		closedir(d);
}

/* The line of the first assertion in a round's stderr: what failed. */
static void signature(const char *out, char *sig, size_t len)
{
	const char *at = strstr(out, "pace_fuzz.c:"), *end;

	sig[0] = 0;
	if (!at)
		return;
	end = strchr(at, '\n');
	snprintf(sig, len, "%.*s", (int)(end ? end - at : (long)strlen(at)), at);
}

/* @counts: the ops the round executed, the freezes its hold-all ops saw. */
static enum verdict run_round(struct program *p, int kmsg, char *why, size_t len,
			      unsigned long counts[2])
{
	struct timespec t0, t;
	int pipefd[2], status = 0, out;
	enum verdict v = PASS;
	pid_t pid, done;
	ssize_t n;

	why[0] = 0;
	counts[0] = 0;
	counts[1] = 0;
	TEST_ASSERT(!pipe2(pipefd, O_CLOEXEC | O_NONBLOCK), "pipe");
	/* the round's stderr, for the failure and its signature */
	out = memfd_create("pace_fuzz-round", MFD_CLOEXEC);
	TEST_ASSERT(out >= 0, "memfd_create");
	fflush(stdout);
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork");
	if (!pid) {
		close(pipefd[0]);
		setpgid(0, 0);
		dup2(out, STDERR_FILENO);
		if (quiet_rounds)
			dup2(out, STDOUT_FILENO);
		round_main(p, pipefd[1]);
	}
	close(pipefd[1]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		done = waitpid(pid, &status, WNOHANG);
		if (done == pid)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > ROUND_LIMIT_S) {
			int i;

			snprintf(why, len, "round did not finish in %d s; kernel stacks:\n",
				 ROUND_LIMIT_S);
			task_stacks(pid, why, len);
			kill(-pid, SIGKILL);
			v = UNKILLABLE;
			for (i = 0; i < 100; i++) {
				if (waitpid(pid, &status, WNOHANG) == pid) {
					v = STALL;
					break;
				}
				usleep(100000);
			}
			break;
		}
		usleep(2000);
	}
	/* children of the round (fork, getfd-kill ops) go with it */
	kill(-pid, SIGKILL);
	if (read(pipefd[0], counts, 2 * sizeof(*counts)) != 2 * sizeof(*counts)) {
		counts[0] = 0;
		counts[1] = 0;
	}
	close(pipefd[0]);
	if (v == PASS && kmsg_report(kmsg, why, len))
		v = REPORT;
	if (v == PASS && (!WIFEXITED(status) || WEXITSTATUS(status))) {
		size_t used;

		snprintf(why, len, "round process %s %d:\n",
			 WIFEXITED(status) ? "exited" : "killed by signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		used = strlen(why);
		n = pread(out, why + used, len - used - 1, 0);
		why[used + (n > 0 ? n : 0)] = 0;
		v = FAIL;
	}
	close(out);
	return v;
}

static void print_program(const struct program *p, const char *title)
{
	int v, i;

	printf("%s: %d thread(s), %d VM(s) + a raw VM; timer period %u\n", title,
	       p->nr_threads, p->nr_lib_vms, p->timer_period);
	for (v = 0; v < p->nr_lib_vms; v++)
		for (i = 0; i < p->nr_lib_vcpus[v]; i++)
			printf("  VM %d vCPU %d (slot %d): guest %s\n", v, i,
			       v * MAX_LIB_VCPUS + i, guest_mode_name[p->mode[v][i]]);
	for (i = 0; i < p->nr_ops; i++) {
		const struct op *o = &p->ops[i];

		if (p->off[i])
			continue;
		printf("  op %2d thread %u %-12s slot %2u a=%#lx b=%#lx c=%#x d=%#x%s\n",
		       i, o->thread, op_name[o->kind], o->slot, o->a, o->b, o->c, o->d,
		       o->delay_us ? " (after a delay)" : "");
	}
	fflush(stdout);
}

/*
 * The oracle and the minimiser must work before a quiet run means anything:
 * a report written to /dev/kmsg is seen, and a round with one failing op
 * among many is reduced to exactly that op.
 */
static void self_check(int kmsg, uint64_t seed)
{
	static const char line[] = "pace_fuzz self-check report: not a kernel bug\n";
	struct program p;
	char why[8192];
	unsigned long n[2];
	int i, k, on = 0;

	if (kmsg >= 0) {
		int w = open("/dev/kmsg", O_WRONLY);

		TEST_ASSERT(w >= 0 && write(w, line, sizeof(line) - 1) > 0,
			    "cannot write /dev/kmsg, errno %d", errno);
		close(w);
		/* (a record without its newline is not readable yet) */
		TEST_ASSERT(kmsg_report(kmsg, why, sizeof(why)) &&
			    !strncmp(why, line, sizeof(line) - 2),
			    "self-check: a report in /dev/kmsg went unseen");
	}
	/* a small world: VM creation is most of a round's cost */
	generate(&p, seed, UINT64_MAX);
	p.nr_threads = 1;
	p.nr_lib_vms = 1;
	p.nr_lib_vcpus[0] = 1;
	p.nr_ops = 8;
	for (i = 0; i < p.nr_ops; i++)
		p.ops[i].thread = 0;
	k = seed % p.nr_ops;
	p.ops[k].kind = OP_INJECT;
	quiet_rounds = true;
	TEST_ASSERT(run_round(&p, kmsg, why, sizeof(why), n) == FAIL &&
		    strstr(why, "injected failure"),
		    "self-check: an injected failure went unseen");
	signature(why, want_sig, sizeof(want_sig));
	minimise(&p, kmsg, FAIL, 1);
	quiet_rounds = false;
	for (i = 0; i < p.nr_ops; i++)
		on += !p.off[i];
	TEST_ASSERT(on == 1 && !p.off[k],
		    "self-check: minimised to %d ops, not to the injected one", on);
	printf("self-check: kmsg reports are seen, %s %d-op round to its failing op\n",
	       "the minimiser reduces a", p.nr_ops);
}

static bool still_fails(struct program *p, int kmsg, int want, int tries)
{
	char why[8192], sig[512];
	unsigned long n[2];
	int t;

	for (t = 0; t < tries; t++) {
		if (run_round(p, kmsg, why, sizeof(why), n) != want)
			continue;
		signature(why, sig, sizeof(sig));
		if (!strcmp(sig, want_sig))
			return true;	/* the same failure, not another one */
	}
	return false;
}

static time_t minimise_until;	/* wall-clock budget of the minimiser */

/* ddmin over the ops that are still on. */
static void minimise(struct program *p, int kmsg, int want, int tries)
{
	int on[MAX_OPS], nr, chunks = 2, i, c;

	for (;;) {
		for (nr = 0, i = 0; i < p->nr_ops; i++)
			if (!p->off[i])
				on[nr++] = i;
		if (nr <= 1)
			break;
		if (minimise_until && time(NULL) > minimise_until) {
			printf("minimiser: out of time: the sequence below is not minimal\n");
			break;
		}
		if (chunks > nr)
			chunks = nr;
		bool reduced = false;

		for (c = 0; c < chunks && !reduced; c++) {
			int lo = c * nr / chunks, hi = (c + 1) * nr / chunks;

			/* try without chunk c */
			for (i = lo; i < hi; i++)
				p->off[on[i]] = true;
			if (still_fails(p, kmsg, want, tries)) {
				reduced = true;
				note("ddmin: %d ops still fail\n", nr - (hi - lo));
			} else {
				for (i = lo; i < hi; i++)
					p->off[on[i]] = false;
			}
		}
		if (reduced)
			chunks = chunks > 2 ? chunks - 1 : 2;
		else if (chunks < nr)
			chunks = chunks * 2;
		else
			break;
	}
}

int main(int argc, char **argv)
{
	uint64_t seed = 0, round, first = 0, nr_rounds = UINT64_MAX;
	unsigned long counts[2], total = 0, freezes = 0;
	bool have_seed = false, replay = false, minimize = false;
	struct timespec t0, t;
	double seconds = 20, el;
	struct program p;
	char why[8192];
	int opt, kmsg;

	while ((opt = getopt(argc, argv, "s:t:n:r:mvh")) != -1) {
		switch (opt) {
		case 's':
			seed = strtoull(optarg, NULL, 0);
			have_seed = true;
			break;
		case 't':
			seconds = atof(optarg);
			break;
		case 'n':
			nr_rounds = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			first = strtoull(optarg, NULL, 0);
			replay = true;
			nr_rounds = 1;
			break;
		case 'm':
			minimize = true;
			break;
		case 'v':
			verbose = true;
			break;
		default:
			printf("usage: %s %s\n", argv[0],
			       "[-s SEED] [-t SECONDS] [-n ROUNDS] [-r ROUND] [-m] [-v]");
			exit(opt == 'h' ? 0 : KSFT_FAIL);
		}
	}
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_PACE));
	if (!have_seed) {
		clock_gettime(CLOCK_REALTIME, &t);
		seed = t.tv_nsec ^ ((uint64_t)t.tv_sec << 20) ^ getpid();
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg >= 0)
		lseek(kmsg, 0, SEEK_END);
	else
		printf("no /dev/kmsg (errno %d): kernel reports are left to the harness\n", errno);

	printf("pace_fuzz: seed %#lx (replay a round: %s -s %#lx -r ROUND)\n", seed, argv[0], seed);
	if (!replay)
		self_check(kmsg, seed);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (round = first; round - first < nr_rounds; round++) {
		enum verdict v;

		clock_gettime(CLOCK_MONOTONIC, &t);
		el = t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9;
		if (!replay && nr_rounds == UINT64_MAX && el >= seconds)
			break;
		generate(&p, seed, round);
		/* the last such line before a panic names the round to replay */
		printf("round %lu: %d ops, %d thread(s)\n", round, p.nr_ops, p.nr_threads);
		if (verbose || replay)
			print_program(&p, "program");
		v = run_round(&p, kmsg, why, sizeof(why), counts);
		total += counts[0];
		freezes += counts[1];
		if (v == PASS)
			continue;
		printf("FAIL: round %lu of seed %#lx: %s: %s\n", round, seed, verdict_name[v], why);
		print_program(&p, "failing round");
		printf("replay: %s -s %#lx -r %lu -m\n", argv[0], seed, round);
		if (v == REPORT && round > first)
			printf("(a report printed late may come from round %lu)\n", round - 1);
		if (minimize && (v == FAIL || v == STALL)) {
			signature(why, want_sig, sizeof(want_sig));
			minimise_until = time(NULL) + MINIMISE_S;
			if (still_fails(&p, kmsg, v, 3)) {
				minimise(&p, kmsg, v, 3);
				print_program(&p, "minimal failing sequence");
			} else {
				printf("minimiser: the round passed 3 times on replay: %s\n",
				       "not reproducible");
			}
		} else if (minimize) {
			/* lockdep reports once per boot; others panic the debug kernel */
			printf("minimiser: not for a %s\n", verdict_name[v]);
		}
		exit(KSFT_FAIL);
	}
	/* what the kernel printed after the last round ended */
	if (kmsg_report(kmsg, why, sizeof(why))) {
		printf("FAIL: a kernel report after round %lu of seed %#lx: %s\n",
		       round - 1, seed, why);
		exit(KSFT_FAIL);
	}
	clock_gettime(CLOCK_MONOTONIC, &t);
	el = t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9;
	printf("pace_fuzz: %lu rounds, %lu ops in %.1f s (%.1f ops/s), %lu VM freezes, %s\n",
	       round - first, total, el, el > 0 ? total / el : 0.0, freezes,
	       "no failure, no kernel report");
	return 0;
}
