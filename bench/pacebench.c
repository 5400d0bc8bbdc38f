// SPDX-License-Identifier: GPL-2.0
/*
 * pacebench: a minimal VMM (plain KVM ioctls, one real-mode vCPU) for the
 * measures that need the vCPU in our own hands.
 *
 *   pacebench precision --quanta-us 100,1000,10000 --count N --rounds R --out CSV
 *	Deadline precision.  The guest spins storing its own TSC to memory.
 *	Three pacers take turns on the same vCPU, in blocks of N quanta per
 *	quantum size, R rounds:
 *	  kernel      KVM_SET_PACE_DEADLINE with KVM_PACE_EXIT_TO_USER; KVM
 *	              stops the vCPU at the guest-TSC deadline.
 *	  user        what a VMM without the patch does (gem5's KVM CPU, timer
 *	              based pacers): a POSIX timer at the host time of the
 *	              deadline signals the vCPU thread, whose handler sets
 *	              kvm_run->immediate_exit; KVM_RUN returns -EINTR.
 *	  user-check  the same, but when the guest TSC it reads after the stop
 *	              is short of the deadline, it re-arms the timer for the
 *	              remainder and runs again: never early, more kicks.
 *	Each row: the deadline, overshoot_guest (the last TSC value the guest
 *	stored, the same instrument for every pacer) and overshoot_stop (the
 *	stop TSC the pacer itself sees: kvm_run->pace.guest_tsc for the kernel,
 *	KVM_GET_MSRS(IA32_TSC) right after KVM_RUN returned for the others),
 *	both minus the deadline, in guest TSC ticks (tsc_khz in every row).
 *
 *   pacebench throughput --label L --window-ms W --rounds R [--quantum-us Q]
 *		--out CSV
 *	Guest compute loop (a counter in a register, stored each iteration)
 *	run for W ms of host time, free ("off") and, when the modules offer
 *	KVM_CAP_PACE, paced in Q us quanta ("paced") by a controller thread
 *	that waits for the hold with poll() and raises the deadline, as vmpace
 *	does.  Rows: label, mode, host ns, guest TSC ticks, iterations.
 *
 * Exit status 0 on success, 1 on errors, 4 when KVM is unusable.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "bench.h"

#define MEM_SIZE	0x200000ul
#define CODE_SPIN	0x1000
#define CODE_LOOP	0x1100
#define TSC_SLOT	0x500	/* low 32 bits of the guest's last rdtsc */
#define COUNT_SLOT	0x508	/* the compute loop's counter */
#define MSR_IA32_TSC	0x10
#define WARMUP		2	/* quanta per block left out of the statistics */

/* rdtsc; mov [0x500], eax; jmp back */
static const uint8_t spin_code[] = {
	0x0f, 0x31,			/* rdtsc */
	0x66, 0xa3, 0x00, 0x05,		/* mov [0x500], eax */
	0xeb, 0xf8,			/* jmp -8 */
};

/* inc eax; mov [0x508], eax; jmp back */
static const uint8_t loop_code[] = {
	0x66, 0x40,			/* inc eax */
	0x66, 0xa3, 0x08, 0x05,		/* mov [0x508], eax */
	0xeb, 0xf8,			/* jmp -8 */
};

struct vm {
	int kvm, fd, vcpu;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;
	uint64_t tsc_khz;
	bool pace;
};

static struct vm vm;

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ull + t.tv_nsec;
}

static int vm_create(void)
{
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
	};
	struct kvm_cpuid2 *cpuid;
	int r, khz;

	vm.kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm.kvm < 0)
		return -errno;
	vm.fd = ioctl(vm.kvm, KVM_CREATE_VM, 0);
	if (vm.fd < 0)
		return -errno;
	vm.pace = ioctl(vm.fd, KVM_CHECK_EXTENSION, KVM_CAP_PACE) > 0;
	if (ioctl(vm.fd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0 ||
	    ioctl(vm.fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return -errno;
	vm.mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm.mem == MAP_FAILED)
		return -errno;
	region.userspace_addr = (uintptr_t)vm.mem;
	if (ioctl(vm.fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return -errno;
	memcpy(vm.mem + CODE_SPIN, spin_code, sizeof(spin_code));
	memcpy(vm.mem + CODE_LOOP, loop_code, sizeof(loop_code));

	vm.vcpu = ioctl(vm.fd, KVM_CREATE_VCPU, 0);
	if (vm.vcpu < 0)
		return -errno;
	r = ioctl(vm.kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (r < 0)
		return -errno;
	vm.run_size = r;
	vm.run = mmap(NULL, vm.run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm.vcpu, 0);
	if (vm.run == MAP_FAILED)
		return -errno;

	cpuid = calloc(1, sizeof(*cpuid) + 256 * sizeof(struct kvm_cpuid_entry2));
	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = 256;
	if (ioctl(vm.kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0 ||
	    ioctl(vm.vcpu, KVM_SET_CPUID2, cpuid) < 0) {
		free(cpuid);
		return -errno;
	}
	free(cpuid);

	khz = ioctl(vm.vcpu, KVM_GET_TSC_KHZ, 0);
	if (khz <= 0)
		return khz < 0 ? -errno : -EINVAL;
	vm.tsc_khz = khz;
	return 0;
}

/* Real mode, flat segments at 0, interrupts off, at @rip. */
static int vcpu_reset(uint16_t rip)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = rip, .rflags = 2 };

	if (ioctl(vm.vcpu, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ds = sregs.es = sregs.ss = sregs.cs;
	sregs.ds.type = sregs.es.type = sregs.ss.type = 3;
	if (ioctl(vm.vcpu, KVM_SET_SREGS, &sregs) < 0 ||
	    ioctl(vm.vcpu, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

static int pace_set(uint64_t deadline, uint32_t flags)
{
	struct kvm_pace_deadline d = { .deadline = deadline, .flags = flags };

	return ioctl(vm.vcpu, KVM_SET_PACE_DEADLINE, &d) ? -errno : 0;
}

static int pace_state(struct kvm_pace_state *st)
{
	return ioctl(vm.vcpu, KVM_GET_PACE_STATE, st) ? -errno : 0;
}

/* Guest TSC now, from the vCPU thread while it is out of KVM_RUN. */
static int read_tsc(uint64_t *tsc)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} m = { .hdr.nmsrs = 1, .e.index = MSR_IA32_TSC };

	if (ioctl(vm.vcpu, KVM_GET_MSRS, &m) != 1)
		return -EIO;
	*tsc = m.e.data;
	return 0;
}

/* The guest's last stored TSC, widened to 64 bits next to @near. */
static uint64_t guest_last_tsc(uint64_t near)
{
	uint32_t lo = *(volatile uint32_t *)(vm.mem + TSC_SLOT);
	uint64_t v = (near & ~0xffffffffull) | lo;

	if (v > near && v - near > 0x80000000ull)
		v -= 0x100000000ull;
	else if (v < near && near - v > 0x80000000ull)
		v += 0x100000000ull;
	return v;
}

static void on_kick(int sig)
{
	vm.run->immediate_exit = 1;
}

/*
 * Run until a pace exit (want_pace) or until a signal kicks us out.  The kick
 * leaves immediate_exit set: clear it for whoever runs next.
 */
static int run_until(bool want_pace)
{
	if (want_pace)
		vm.run->immediate_exit = 0;
	for (;;) {
		if (ioctl(vm.vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR && !want_pace)
				return 0;
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (want_pace && vm.run->exit_reason == KVM_EXIT_PACE)
			return 0;
		if (vm.run->exit_reason == KVM_EXIT_INTR)
			continue;
		err("unexpected exit reason %u", vm.run->exit_reason);
		return -EIO;
	}
}

/* ----- precision ----------------------------------------------------- */

enum pacer { KERNEL, USER, USER_CHECK };
static const char *const pacer_name[] = { "kernel", "user", "user-check" };

struct prec {
	FILE *out;
	timer_t timer;
	int round;
};

static int arm_timer(timer_t timer, uint64_t at_ns)
{
	struct itimerspec its = {
		.it_value = { at_ns / 1000000000ull, at_ns % 1000000000ull },
	};

	return timer_settime(timer, TIMER_ABSTIME, &its, NULL) ? -errno : 0;
}

/*
 * The userspace pacer's view of one quantum: map the deadline to host time
 * from a (guest TSC, host time) pair taken just before entering, and let a
 * timer kick the vCPU out.
 */
static int user_quantum(struct prec *p, uint64_t deadline, bool check,
			uint64_t *stop, int *kicks)
{
	uint64_t t0, t1, tsc, at;
	int r;

	*kicks = 0;
	do {
		t0 = now_ns();
		r = read_tsc(&tsc);
		t1 = now_ns();
		if (r)
			return r;
		at = (t0 + t1) / 2;
		if (deadline > tsc)
			at += (deadline - tsc) * 1000000ull / vm.tsc_khz;
		vm.run->immediate_exit = 0;
		r = arm_timer(p->timer, at);
		r = r ?: run_until(false);
		if (r)
			return r;
		(*kicks)++;
		r = read_tsc(stop);
		if (r)
			return r;
	} while (check && *stop < deadline);
	return 0;
}

/*
 * The first entries of a fresh vCPU build its shadow pages (the test VM runs
 * KVM with npt=0) and run no guest instruction for tens of ms: run the guest
 * freely until it has stored a TSC value.
 */
static int warm_up(struct prec *p)
{
	uint64_t end = now_ns() + 5000000000ull;
	int r;

	while (!*(volatile uint32_t *)(vm.mem + TSC_SLOT)) {
		if (now_ns() > end)
			return -ETIMEDOUT;
		vm.run->immediate_exit = 0;
		r = arm_timer(p->timer, now_ns() + 50000000ull);
		r = r ?: run_until(false);
		if (r)
			return r;
	}
	return 0;
}

static int prec_block(struct prec *p, enum pacer pacer, uint64_t quantum_us, int count)
{
	uint64_t q = quantum_us * vm.tsc_khz / 1000, deadline, stop, last, t0, t1;
	int i, r, kicks;

	r = read_tsc(&last);
	if (r)
		return r;
	/*
	 * Quanta with seq < 0 are warm-up, left out of the statistics: the
	 * first entries after a pacer change apply the frozen time to the TSC
	 * offset, and the userspace pacer's TSC-to-host-time mapping would be
	 * off by it.
	 */
	for (i = -WARMUP; i < count; i++) {
		kicks = 1;
		t0 = now_ns();
		if (pacer == KERNEL) {
			/* guest time is frozen at the last stop */
			deadline = last + q;
			r = pace_set(deadline, KVM_PACE_EXIT_TO_USER);
			r = r ?: run_until(true);
			stop = vm.run->pace.guest_tsc;
		} else {
			/* guest time ran on while we were out: grant from now */
			r = read_tsc(&deadline);
			deadline += q;
			r = r ?: user_quantum(p, deadline, pacer == USER_CHECK, &stop, &kicks);
		}
		t1 = now_ns();
		if (r)
			return r;
		fprintf(p->out, "%s,%llu,%d,%d,%llu,%lld,%lld,%d,%llu,%llu\n",
			pacer_name[pacer], (unsigned long long)quantum_us, p->round, i,
			(unsigned long long)deadline,
			(long long)(guest_last_tsc(deadline) - deadline),
			(long long)(stop - deadline), kicks,
			(unsigned long long)(t1 - t0), (unsigned long long)vm.tsc_khz);
		last = stop;
	}
	if (pacer == KERNEL)
		return pace_set(0, 0);
	return 0;
}

/*
 * The userspace pacers map guest TSC to host time with KVM's tsc_khz; show
 * how well that holds in this VM: TSC ticks per ms of CLOCK_MONOTONIC.
 */
static int tsc_calibrate(void)
{
	struct timespec ts = { 0, 500000000 };
	uint64_t a, b, t0, t1;
	int r;

	t0 = now_ns();
	r = read_tsc(&a);
	nanosleep(&ts, NULL);	/* a measurement window */
	t1 = now_ns();
	r = r ?: read_tsc(&b);
	if (r)
		return r;
	printf("pacebench: guest TSC %llu kHz by CLOCK_MONOTONIC, KVM_GET_TSC_KHZ %llu kHz\n",
	       (unsigned long long)((b - a) * 1000000 / (t1 - t0)),
	       (unsigned long long)vm.tsc_khz);
	return 0;
}

static int cmd_precision(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "quanta-us", required_argument, NULL, 'q' },
		{ "count", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	char quanta[256] = "100,1000,10000", list[256], *tok, *save;
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGUSR1 };
	struct prec p = { 0 };
	const char *out = NULL;
	int c, count = 100, rounds = 3, r = 0;
	enum pacer pacer;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'q': snprintf(quanta, sizeof(quanta), "%s", optarg); break;
		case 'n': count = atoi(optarg); break;
		case 'r': rounds = atoi(optarg); break;
		case 'o': out = optarg; break;
		default: return 1;
		}
	}
	if (!out || count <= 0 || rounds <= 0) {
		err("usage: pacebench precision [--quanta-us L] [--count N] [--rounds R] --out CSV");
		return 1;
	}
	if (!vm.pace) {
		err("these KVM modules have no KVM_CAP_PACE");
		return 4;
	}
	p.out = fopen(out, "w");
	if (!p.out) {
		err("%s: %s", out, strerror(errno));
		return 1;
	}
	sev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &p.timer)) {
		err("timer_create: %s", strerror(errno));
		return 1;
	}
	setvbuf(p.out, NULL, _IOLBF, 0);
	fprintf(p.out, "pacer,quantum_us,round,seq,deadline,overshoot_guest,overshoot_stop,kicks,host_ns,tsc_khz\n");
	r = vcpu_reset(CODE_SPIN);
	r = r ?: warm_up(&p);
	r = r ?: tsc_calibrate();
	for (p.round = 0; !r && p.round < rounds; p.round++) {
		snprintf(list, sizeof(list), "%s", quanta);
		for (tok = strtok_r(list, ",", &save); !r && tok;
		     tok = strtok_r(NULL, ",", &save)) {
			/* the order of the pacers rotates from round to round */
			for (c = 0; !r && c < 3; c++) {
				pacer = (c + p.round) % 3;
				r = prec_block(&p, pacer, strtoull(tok, NULL, 0), count);
			}
		}
	}
	fclose(p.out);
	if (r) {
		err("precision: %s", strerror(-r));
		return 1;
	}
	return 0;
}

/* ----- throughput ---------------------------------------------------- */

static atomic_bool stop_run, stop_ctl;
static pthread_t vcpu_thread;

static void *vcpu_fn(void *arg)
{
	long r = 0;

	while (!atomic_load(&stop_run)) {
		if (ioctl(vm.vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (vm.run->exit_reason != KVM_EXIT_INTR) {
			err("unexpected exit reason %u", vm.run->exit_reason);
			r = -EIO;
			break;
		}
	}
	return (void *)r;
}

/* vmpace's loop in miniature: wait for the hold, raise the deadline. */
static void *ctl_fn(void *arg)
{
	uint64_t q = *(uint64_t *)arg;
	struct pollfd pfd = { .fd = vm.vcpu, .events = POLLIN };
	struct kvm_pace_state st;
	long r;

	r = pace_state(&st);
	r = r ?: pace_set(st.guest_tsc + q, 0);
	while (!r && !atomic_load(&stop_ctl)) {
		r = poll(&pfd, 1, 100);
		if (r < 0 && errno == EINTR) {
			r = 0;
			continue;
		}
		if (r < 0) {
			r = -errno;
			break;
		}
		if (!r)
			continue;
		r = pace_state(&st);
		if (!r && (st.state & KVM_PACE_STATE_HELD))
			r = pace_set(st.guest_tsc + q, 0);
	}
	return (void *)r;
}

static int tp_sample(FILE *out, const char *label, const char *mode,
		     uint64_t window_ms, uint64_t quantum_us, int round)
{
	uint64_t q = quantum_us * vm.tsc_khz / 1000, t0, t1, g0, g1;
	uint32_t c0, c1;
	struct timespec ts = { window_ms / 1000, (window_ms % 1000) * 1000000 };
	struct kvm_pace_state st;
	pthread_t ctl;
	bool paced = !strcmp(mode, "paced");
	void *ret, *cret = NULL;
	int r;

	r = vcpu_reset(CODE_LOOP);
	if (r)
		return r;
	atomic_store(&stop_run, false);
	atomic_store(&stop_ctl, false);
	vm.run->immediate_exit = 0;
	if (pthread_create(&vcpu_thread, NULL, vcpu_fn, NULL))
		return -EAGAIN;
	if (paced && pthread_create(&ctl, NULL, ctl_fn, &q)) {
		atomic_store(&stop_run, true);
		pthread_kill(vcpu_thread, SIGUSR1);
		pthread_join(vcpu_thread, NULL);
		return -EAGAIN;
	}
	/* let the guest get going before the window opens */
	nanosleep(&(struct timespec){ 0, 100000000 }, NULL);
	c0 = *(volatile uint32_t *)(vm.mem + COUNT_SLOT);
	t0 = now_ns();
	g0 = 0;
	if (vm.pace && !pace_state(&st))
		g0 = st.guest_tsc;
	/* the window is the measurement, not a synchronisation */
	nanosleep(&ts, NULL);
	c1 = *(volatile uint32_t *)(vm.mem + COUNT_SLOT);
	t1 = now_ns();
	g1 = 0;
	if (vm.pace && !pace_state(&st))
		g1 = st.guest_tsc;

	if (paced) {
		atomic_store(&stop_ctl, true);
		pthread_join(ctl, &cret);
		pace_set(0, 0);
	}
	atomic_store(&stop_run, true);
	pthread_kill(vcpu_thread, SIGUSR1);
	pthread_join(vcpu_thread, &ret);
	if (ret || cret)
		return (int)(long)(ret ? ret : cret);
	fprintf(out, "%s,%s,%llu,%d,%llu,%llu,%u\n", label, mode,
		(unsigned long long)quantum_us, round, (unsigned long long)(t1 - t0),
		(unsigned long long)(g1 - g0), c1 - c0);
	fflush(out);
	return 0;
}

static int cmd_throughput(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "label", required_argument, NULL, 'l' },
		{ "window-ms", required_argument, NULL, 'w' },
		{ "quantum-us", required_argument, NULL, 'q' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *label = NULL, *out = NULL;
	uint64_t window_ms = 2000, quantum_us = 1000;
	int c, i, rounds = 1, r = 0;
	bool header;
	FILE *f;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'l': label = optarg; break;
		case 'w': window_ms = strtoull(optarg, NULL, 0); break;
		case 'q': quantum_us = strtoull(optarg, NULL, 0); break;
		case 'r': rounds = atoi(optarg); break;
		case 'o': out = optarg; break;
		default: return 1;
		}
	}
	if (!label || !out || !window_ms || !quantum_us) {
		err("usage: pacebench throughput --label L [--window-ms W] [--quantum-us Q] [--rounds R] --out CSV");
		return 1;
	}
	header = access(out, F_OK) != 0;
	f = fopen(out, "a");
	if (!f) {
		err("%s: %s", out, strerror(errno));
		return 1;
	}
	if (header)
		fprintf(f, "label,mode,quantum_us,round,host_ns,guest_ticks,iterations\n");
	for (i = 0; !r && i < rounds; i++) {
		r = tp_sample(f, label, "off", window_ms, 0, i);
		if (!r && vm.pace)
			r = tp_sample(f, label, "paced", window_ms, quantum_us, i);
	}
	fclose(f);
	if (r) {
		err("throughput: %s", strerror(-r));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_kick };
	int r;

	if (argc < 2) {
		err("usage: pacebench precision|throughput [options]");
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);	/* no SA_RESTART: KVM_RUN returns EINTR */
	r = vm_create();
	if (r) {
		err("cannot create a VM: %s", strerror(-r));
		return 4;
	}
	printf("pacebench: guest TSC %llu kHz, KVM_CAP_PACE %s\n",
	       (unsigned long long)vm.tsc_khz, vm.pace ? "yes" : "no");
	if (!strcmp(argv[1], "precision"))
		return cmd_precision(argc - 1, argv + 1);
	if (!strcmp(argv[1], "throughput"))
		return cmd_throughput(argc - 1, argv + 1);
	err("unknown command %s", argv[1]);
	return 1;
}
