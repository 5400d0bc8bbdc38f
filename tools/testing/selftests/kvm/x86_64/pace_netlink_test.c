// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_CAP_PACE: the "kvm_pace" generic netlink family.  The dump agrees
 * with KVM_GET_PACE_STATE, events arrive in order with the right contents,
 * malformed requests and unprivileged users are refused.
 */
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/genetlink.h>
#include <linux/kvm_pace.h>
#include <linux/netlink.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "pace_util.h"
#include "pace_nl.h"

static void guest_spin(void)
{
	for (;;)
		cpu_relax();
}

/* ---- the dump ------------------------------------------------------------ */

struct dump {
	pid_t pid;
	int nr;
	struct nlattr *tb[8][KVM_PACE_A_MAX + 1];
	char msgs[8][1024];
};

static void dump_cb(struct nlmsghdr *nlh, void *arg)
{
	struct nlattr *tb[KVM_PACE_A_MAX + 1];
	struct dump *d = arg;

	TEST_ASSERT_EQ(((struct genlmsghdr *)NLMSG_DATA(nlh))->cmd,
		       KVM_PACE_CMD_GET_VCPU);
	nl_parse(nlh, tb, KVM_PACE_A_MAX);
	if (nla_u32(tb[KVM_PACE_A_VMM_PID]) != d->pid)
		return;		/* a VM of another test running meanwhile */
	TEST_ASSERT(d->nr < 8 && nlh->nlmsg_len <= sizeof(d->msgs[0]), "dump too big");
	memcpy(d->msgs[d->nr], nlh, nlh->nlmsg_len);
	nl_parse((void *)d->msgs[d->nr], d->tb[d->nr], KVM_PACE_A_MAX);
	d->nr++;
}

static int dump(int fd, struct family *f, struct dump *d, uint32_t *pid_filter)
{
	struct nl_req req;

	memset(d, 0, sizeof(*d));
	d->pid = getpid();
	nl_init(&req, f->id, KVM_PACE_CMD_GET_VCPU, NLM_F_DUMP);
	if (pid_filter)
		nl_put(&req, KVM_PACE_A_VMM_PID, pid_filter, 4);
	nl_send(fd, &req);
	return nl_recv(fd, dump_cb, d);
}

static void assert_dump_matches(struct dump *d, int i, struct kvm_vcpu *vcpu,
				int nr_vcpus)
{
	struct nlattr **tb = d->tb[i];
	struct kvm_pace_state st;

	pace_state(vcpu, &st);
	TEST_ASSERT_EQ(nla_u32(tb[KVM_PACE_A_VCPU_ID]), vcpu->id);
	TEST_ASSERT_EQ(nla_u32(tb[KVM_PACE_A_NR_VCPUS]), nr_vcpus);
	TEST_ASSERT_EQ(nla_u32(tb[KVM_PACE_A_CONTROLLER_PID]),
		       st.deadline ? getpid() : 0);
	TEST_ASSERT_EQ(nla_u32(tb[KVM_PACE_A_STATE]), st.state);
	TEST_ASSERT_EQ(nla_u32(tb[KVM_PACE_A_FLAGS]), KVM_PACE_EXIT_TO_USER);
	TEST_ASSERT_EQ(nla_u32(tb[KVM_PACE_A_TSC_KHZ]), st.tsc_khz);
	TEST_ASSERT_EQ(nla_u64(tb[KVM_PACE_A_GUEST_TSC]), st.guest_tsc);
	TEST_ASSERT_EQ(nla_u64(tb[KVM_PACE_A_DEADLINE]), st.deadline);
	TEST_ASSERT_EQ(nla_u64(tb[KVM_PACE_A_HOLDS]), st.holds);
	TEST_ASSERT_EQ(nla_u64(tb[KVM_PACE_A_EXITS]), st.exits);
	TEST_ASSERT_EQ(nla_u64(tb[KVM_PACE_A_OVERSHOOT_LAST]), st.overshoot_last);
	TEST_ASSERT_EQ(nla_u64(tb[KVM_PACE_A_OVERSHOOT_MAX]), st.overshoot_max);
	/* host time held goes on between the two reads */
	TEST_ASSERT(nla_u64(tb[KVM_PACE_A_HELD_NS]) <= st.held_ns,
		    "held_ns: dump %lu after KVM_GET_PACE_STATE %llu",
		    nla_u64(tb[KVM_PACE_A_HELD_NS]), st.held_ns);
}

/* ---- events -------------------------------------------------------------- */

struct event {
	uint8_t cmd;
	uint32_t vcpu_id, reason;
	uint64_t seq, guest_tsc, deadline, overshoot;
};

/* The next event of this process's VM; fails after 10 s without one. */
static void next_event(int fd, struct family *f, struct event *ev)
{
	static char buf[NL_BUF];
	static int off, len;
	struct nlattr *tb[KVM_PACE_A_MAX + 1];
	struct nlmsghdr *nlh;

	for (;;) {
		if (off >= len) {
			len = recv(fd, buf, sizeof(buf), 0);
			TEST_ASSERT(len > 0, "no pacing event, errno %d", errno);
			off = 0;
		}
		nlh = (void *)buf + off;
		TEST_ASSERT(NLMSG_OK(nlh, len - off), "truncated event");
		off += NLMSG_ALIGN(nlh->nlmsg_len);
		if (nlh->nlmsg_type != f->id)
			continue;
		nl_parse(nlh, tb, KVM_PACE_A_MAX);
		if (nla_u32(tb[KVM_PACE_A_VMM_PID]) != getpid())
			continue;
		ev->cmd = ((struct genlmsghdr *)NLMSG_DATA(nlh))->cmd;
		ev->vcpu_id = nla_u32(tb[KVM_PACE_A_VCPU_ID]);
		ev->seq = nla_u64(tb[KVM_PACE_A_SEQ]);
		ev->guest_tsc = nla_u64(tb[KVM_PACE_A_GUEST_TSC]);
		ev->deadline = nla_u64(tb[KVM_PACE_A_DEADLINE]);
		ev->overshoot = ev->cmd == KVM_PACE_CMD_HOLD ?
				nla_u64(tb[KVM_PACE_A_OVERSHOOT]) : 0;
		ev->reason = ev->cmd == KVM_PACE_CMD_DISARM ?
			     nla_u32(tb[KVM_PACE_A_REASON]) : 0;
		TEST_ASSERT(ev->cmd != KVM_PACE_CMD_HOLD || !tb[KVM_PACE_A_REASON],
			    "a hold with a disarm reason");
		return;
	}
}

static uint64_t expect_event(int fd, struct family *f, uint8_t cmd,
			     uint64_t seq, uint64_t deadline)
{
	struct event ev;

	next_event(fd, f, &ev);
	TEST_ASSERT(ev.cmd == cmd && ev.seq == seq && ev.deadline == deadline,
		    "expected event %u seq %lu deadline %lu, got %u seq %lu deadline %lu",
		    cmd, seq, deadline, ev.cmd, ev.seq, ev.deadline);
	if (cmd == KVM_PACE_CMD_HOLD) {
		TEST_ASSERT(ev.guest_tsc >= deadline, "hold before the deadline");
		TEST_ASSERT_EQ(ev.overshoot, ev.guest_tsc - deadline);
	}
	return cmd == KVM_PACE_CMD_DISARM ? ev.reason : ev.guest_tsc;
}

static void run_to_pace_exit(struct kvm_vcpu *vcpu)
{
	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_PACE);
}

static void test_events(struct kvm_vcpu *vcpu, struct family *f)
{
	int fd = nl_open(), grp = f->events_grp, dupfd;
	uint64_t d, seq, tsc;

	TEST_ASSERT(!setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &grp,
				sizeof(grp)), "join the events group, errno %d", errno);

	/* A new VM: its events are numbered from 1. */
	d = pace_guest_tsc(vcpu) + pace_ms(vcpu, 1);
	pace_set(vcpu, d, KVM_PACE_EXIT_TO_USER);
	seq = 1;
	expect_event(fd, f, KVM_PACE_CMD_ARM, seq, d);
	run_to_pace_exit(vcpu);
	tsc = expect_event(fd, f, KVM_PACE_CMD_HOLD, ++seq, d);
	TEST_ASSERT_EQ(tsc, vcpu->run->pace.guest_tsc);

	/* Raising the deadline of a held vCPU releases it. */
	d = tsc + pace_ms(vcpu, 1);
	pace_set(vcpu, d, KVM_PACE_EXIT_TO_USER);
	expect_event(fd, f, KVM_PACE_CMD_RELEASE, ++seq, d);
	run_to_pace_exit(vcpu);
	expect_event(fd, f, KVM_PACE_CMD_HOLD, ++seq, d);

	/* Disarming a held vCPU: release, then disarm. */
	pace_set(vcpu, 0, 0);
	expect_event(fd, f, KVM_PACE_CMD_RELEASE, ++seq, d);
	TEST_ASSERT_EQ(expect_event(fd, f, KVM_PACE_CMD_DISARM, ++seq, d),
		       KVM_PACE_DISARM_IOCTL);

	/* A disarmed vCPU: setting 0 again is no event. */
	pace_set(vcpu, 0, 0);

	/* The owner closing any fd of the vCPU disarms: reason "close". */
	d = pace_guest_tsc(vcpu) + pace_ms(vcpu, 1000);
	pace_set(vcpu, d, KVM_PACE_EXIT_TO_USER);
	expect_event(fd, f, KVM_PACE_CMD_ARM, ++seq, d);
	dupfd = dup(vcpu->fd);
	close(dupfd);
	TEST_ASSERT_EQ(expect_event(fd, f, KVM_PACE_CMD_DISARM, ++seq, d),
		       KVM_PACE_DISARM_CLOSE);
	close(fd);
}

/* ---- negative cases ------------------------------------------------------ */

static int request(int fd, uint16_t type, uint8_t cmd, uint16_t flags,
		   uint16_t attr, const void *data, uint16_t len)
{
	struct dump d = { .pid = getpid() };
	struct nl_req req;

	nl_init(&req, type, cmd, flags);
	if (data)
		nl_put(&req, attr, data, len);
	nl_send(fd, &req);
	return nl_recv(fd, dump_cb, &d);
}

static void test_invalid(struct family *f)
{
	uint32_t pid = getpid();
	uint64_t big = pid;
	uint16_t small = 1;
	int fd = nl_open(), r;

	/* Only a dump: a plain request, or an event command, is refused. */
	r = request(fd, f->id, KVM_PACE_CMD_GET_VCPU, 0, 0, NULL, 0);
	TEST_ASSERT(r == -EOPNOTSUPP, "GET_VCPU without NLM_F_DUMP: %d", r);
	r = request(fd, f->id, KVM_PACE_CMD_HOLD, NLM_F_DUMP, 0, NULL, 0);
	TEST_ASSERT(r == -EOPNOTSUPP, "an event as a request: %d", r);
	r = request(fd, f->id, KVM_PACE_CMD_UNSPEC, NLM_F_DUMP, 0, NULL, 0);
	TEST_ASSERT(r == -EOPNOTSUPP, "command 0: %d", r);
	r = request(fd, f->id, KVM_PACE_CMD_MAX + 1, NLM_F_DUMP, 0, NULL, 0);
	TEST_ASSERT(r == -EOPNOTSUPP, "unknown command: %d", r);

	/* Strict attributes: wrong sizes, types the request does not take. */
	r = request(fd, f->id, KVM_PACE_CMD_GET_VCPU, NLM_F_DUMP,
		    KVM_PACE_A_VMM_PID, &small, sizeof(small));
	TEST_ASSERT(r == -EINVAL || r == -ERANGE, "u16 pid filter: %d", r);
	r = request(fd, f->id, KVM_PACE_CMD_GET_VCPU, NLM_F_DUMP,
		    KVM_PACE_A_VMM_PID, &big, sizeof(big));
	TEST_ASSERT(r == -EINVAL || r == -ERANGE, "u64 pid filter: %d", r);
	r = request(fd, f->id, KVM_PACE_CMD_GET_VCPU, NLM_F_DUMP,
		    KVM_PACE_A_GUEST_TSC, &big, sizeof(big));
	TEST_ASSERT(r == -EINVAL, "an attribute the dump does not take: %d", r);
	r = request(fd, f->id, KVM_PACE_CMD_GET_VCPU, NLM_F_DUMP,
		    KVM_PACE_A_MAX + 1, &pid, sizeof(pid));
	TEST_ASSERT(r == -EINVAL, "an unknown attribute: %d", r);

	/* After all that, a good request still works. */
	r = request(fd, f->id, KVM_PACE_CMD_GET_VCPU, NLM_F_DUMP,
		    KVM_PACE_A_VMM_PID, &pid, sizeof(pid));
	TEST_ASSERT(!r, "a good dump after bad ones: %d", r);
	close(fd);
}

/* Without CAP_SYS_ADMIN: neither the dump nor the group. */
static void test_unprivileged(struct family *f)
{
	int status, grp = f->events_grp;
	pid_t child = fork();

	TEST_ASSERT(child >= 0, "fork");
	if (!child) {
		int fd, r;

		/* nobody: no capabilities left */
		TEST_ASSERT(!setresgid(65534, 65534, 65534) &&
			    !setresuid(65534, 65534, 65534), "setresuid");
		fd = nl_open();
		r = request(fd, f->id, KVM_PACE_CMD_GET_VCPU, NLM_F_DUMP, 0, NULL, 0);
		TEST_ASSERT(r == -EPERM, "unprivileged dump: %d", r);
		r = setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &grp, sizeof(grp));
		TEST_ASSERT(r == -1 && errno == EPERM,
			    "unprivileged group membership: %d errno %d", r, errno);
		exit(0);
	}
	TEST_ASSERT(waitpid(child, &status, 0) == child &&
		    WIFEXITED(status) && !WEXITSTATUS(status),
		    "unprivileged checks failed (status 0x%x)", status);
}

int main(void)
{
	struct kvm_vcpu *vcpus[2];
	struct family f;
	struct dump d;
	struct kvm_vm *vm;
	uint32_t pid;
	uint64_t dl;
	int fd, i, r;

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_PACE));
	TEST_REQUIRE(getuid() == 0);

	fd = nl_open();
	f = resolve_family(fd);

	vm = vm_create_with_vcpus(2, guest_spin, vcpus);

	/* Not paced: not listed. */
	r = dump(fd, &f, &d, NULL);
	TEST_ASSERT(!r && d.nr == 0, "unpaced VM in the dump (%d, %d)", r, d.nr);

	/*
	 * Both vCPUs held at their deadline: guest time is frozen, so the
	 * dump must show what KVM_GET_PACE_STATE shows.
	 */
	dl = pace_guest_tsc(vcpus[0]) + pace_ms(vcpus[0], 1);
	pace_set(vcpus[0], dl, KVM_PACE_EXIT_TO_USER);
	pace_set(vcpus[1], dl, KVM_PACE_EXIT_TO_USER);
	run_to_pace_exit(vcpus[0]);
	run_to_pace_exit(vcpus[1]);

	r = dump(fd, &f, &d, NULL);
	TEST_ASSERT(!r && d.nr == 2, "dump: error %d, %d vCPUs", r, d.nr);
	for (i = 0; i < 2; i++)
		assert_dump_matches(&d, i, vcpus[nla_u32(d.tb[i][KVM_PACE_A_VCPU_ID])], 2);
	TEST_ASSERT_EQ(nla_u32(d.tb[0][KVM_PACE_A_VM_ID]),
		       nla_u32(d.tb[1][KVM_PACE_A_VM_ID]));

	/* The VMM pid filter */
	pid = getpid();
	r = dump(fd, &f, &d, &pid);
	TEST_ASSERT(!r && d.nr == 2, "dump --pid self: error %d, %d vCPUs", r, d.nr);
	pid = 1;
	r = dump(fd, &f, &d, &pid);
	TEST_ASSERT(!r && d.nr == 0, "dump --pid 1: error %d, %d vCPUs", r, d.nr);

	/* Disarmed everywhere: gone from the dump. */
	pace_set(vcpus[0], 0, 0);
	pace_set(vcpus[1], 0, 0);
	r = dump(fd, &f, &d, NULL);
	TEST_ASSERT(!r && d.nr == 0, "disarmed VM in the dump (%d, %d)", r, d.nr);
	close(fd);

	/* Events, from a new VM with one vCPU. */
	kvm_vm_free(vm);
	vm = vm_create_with_one_vcpu(&vcpus[0], guest_spin);
	test_events(vcpus[0], &f);
	test_invalid(&f);
	test_unprivileged(&f);
	kvm_vm_free(vm);
	return 0;
}
