/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A minimal generic netlink client for the "kvm_pace" family, shared by the
 * pacing selftests and the fuzzer.  Not thread-safe: one caller at a time.
 */
#ifndef SELFTEST_KVM_PACE_NL_H
#define SELFTEST_KVM_PACE_NL_H

#include <sys/socket.h>
#include <linux/genetlink.h>
#include <linux/kvm_pace.h>
#include <linux/netlink.h>

#include "test_util.h"

#define NL_BUF	16384

struct nl_req {
	struct nlmsghdr nlh;
	struct genlmsghdr genl;
	char attrs[64];
};

static int nl_seq;

static inline int nl_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct timeval tv = { .tv_sec = 10 };

	TEST_ASSERT(fd >= 0, "netlink socket, errno %d", errno);
	/* A port id: multicast skips sockets with the sender's, 0. */
	TEST_ASSERT(!bind(fd, (void *)&sa, sizeof(sa)), "netlink bind, errno %d", errno);
	/* A lost reply fails the test instead of hanging it. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static inline void nl_init(struct nl_req *req, uint16_t type, uint8_t cmd,
			   uint16_t flags)
{
	memset(req, 0, sizeof(*req));
	req->nlh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	req->nlh.nlmsg_type = type;
	req->nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	req->nlh.nlmsg_seq = ++nl_seq;
	req->genl.cmd = cmd;
	req->genl.version = 1;
}

static inline void nl_put(struct nl_req *req, uint16_t type, const void *data,
			  uint16_t len)
{
	struct nlattr *a = (void *)req + NLMSG_ALIGN(req->nlh.nlmsg_len);

	TEST_ASSERT(NLMSG_ALIGN(req->nlh.nlmsg_len) + NLA_HDRLEN + NLA_ALIGN(len) <=
		    sizeof(*req), "request too long");
	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	memcpy((void *)a + NLA_HDRLEN, data, len);
	req->nlh.nlmsg_len = NLMSG_ALIGN(req->nlh.nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static inline void nl_send(int fd, struct nl_req *req)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };

	TEST_ASSERT(sendto(fd, req, req->nlh.nlmsg_len, 0, (void *)&sa,
			   sizeof(sa)) == req->nlh.nlmsg_len,
		    "netlink sendto, errno %d", errno);
}

/* Attributes of a generic netlink message, by type; NULL when absent. */
static inline void nl_parse(struct nlmsghdr *nlh, struct nlattr **tb, int max)
{
	struct nlattr *a = (void *)NLMSG_DATA(nlh) + GENL_HDRLEN;
	int len = nlh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);

	memset(tb, 0, (max + 1) * sizeof(*tb));
	while (len >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len) {
		if ((a->nla_type & NLA_TYPE_MASK) <= max)
			tb[a->nla_type & NLA_TYPE_MASK] = a;
		len -= NLA_ALIGN(a->nla_len);
		a = (void *)a + NLA_ALIGN(a->nla_len);
	}
}

static inline uint32_t nla_u32(struct nlattr *a)
{
	TEST_ASSERT(a && a->nla_len == NLA_HDRLEN + 4, "missing or bad u32 attribute");
	return *(uint32_t *)((void *)a + NLA_HDRLEN);
}

static inline uint64_t nla_u64(struct nlattr *a)
{
	uint64_t v;

	TEST_ASSERT(a && a->nla_len == NLA_HDRLEN + 8, "missing or bad u64 attribute");
	memcpy(&v, (void *)a + NLA_HDRLEN, 8);
	return v;
}

/*
 * Receives the answer to the last request: calls @fn for every message
 * until the ack, NLMSG_DONE or an error; returns 0 or the negative errno.
 */
static inline int nl_recv(int fd, void (*fn)(struct nlmsghdr *, void *), void *arg)
{
	static char buf[NL_BUF];
	struct nlmsghdr *nlh;
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, sizeof(buf), 0);
		TEST_ASSERT(n > 0, "netlink recv, errno %d", errno);
		for (nlh = (void *)buf; NLMSG_OK(nlh, n); nlh = NLMSG_NEXT(nlh, n)) {
			if (nlh->nlmsg_seq != nl_seq)
				continue;
			if (nlh->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(nlh))->error;
			if (nlh->nlmsg_type == NLMSG_DONE)
				return 0;
			fn(nlh, arg);
		}
	}
}

struct family {
	uint16_t id;
	uint32_t events_grp;
};

static inline void family_cb(struct nlmsghdr *nlh, void *arg)
{
	struct nlattr *tb[CTRL_ATTR_MAX + 1], *grp, *g;
	struct family *f = arg;
	int len;

	nl_parse(nlh, tb, CTRL_ATTR_MAX);
	TEST_ASSERT(tb[CTRL_ATTR_FAMILY_ID], "no family id");
	f->id = *(uint16_t *)((void *)tb[CTRL_ATTR_FAMILY_ID] + NLA_HDRLEN);
	grp = tb[CTRL_ATTR_MCAST_GROUPS];
	TEST_ASSERT(grp, "kvm_pace has no multicast group");
	/* nested: one nest per group, with a name and an id */
	len = grp->nla_len - NLA_HDRLEN;
	for (g = (void *)grp + NLA_HDRLEN; len >= NLA_HDRLEN;
	     len -= NLA_ALIGN(g->nla_len), g = (void *)g + NLA_ALIGN(g->nla_len)) {
		struct nlattr *a = (void *)g + NLA_HDRLEN;
		int l = g->nla_len - NLA_HDRLEN;
		const char *name = NULL;
		uint32_t id = 0;

		for (; l >= NLA_HDRLEN; l -= NLA_ALIGN(a->nla_len),
		     a = (void *)a + NLA_ALIGN(a->nla_len)) {
			if (a->nla_type == CTRL_ATTR_MCAST_GRP_NAME)
				name = (void *)a + NLA_HDRLEN;
			if (a->nla_type == CTRL_ATTR_MCAST_GRP_ID)
				id = nla_u32(a);
		}
		if (name && !strcmp(name, KVM_PACE_GENL_MCGRP_EVENTS))
			f->events_grp = id;
	}
}

static inline struct family resolve_family(int fd)
{
	struct family f = {};
	struct nl_req req;
	int r;

	nl_init(&req, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
	nl_put(&req, CTRL_ATTR_FAMILY_NAME, KVM_PACE_GENL_NAME,
	       sizeof(KVM_PACE_GENL_NAME));
	nl_send(fd, &req);
	r = nl_recv(fd, family_cb, &f);
	TEST_ASSERT(!r && f.id, "KVM_CAP_PACE without the %s family (error %d)",
		    KVM_PACE_GENL_NAME, r);
	TEST_ASSERT(f.events_grp, "no '%s' group", KVM_PACE_GENL_MCGRP_EVENTS);
	return f;
}

#endif
