// SPDX-License-Identifier: GPL-2.0
/*
 * Where the simulator is: an inherited fd (as adevs passes a socketpair to
 * the VMM it forks), a Unix socket, or TCP, connecting or listening for one
 * connection.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmpace.h"

static int accept_one(int lfd, const char *what)
{
	int fd;

	vp_info("waiting for the simulator on %s", what);
	do {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		vp_err("accept on %s: %s", what, strerror(errno));
	close(lfd);
	return fd;
}

static int open_unix(const char *path, bool listen_mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		vp_err("unix socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if (listen_mode && !lstat(path, &st) && !S_ISSOCK(st.st_mode)) {
		vp_err("%s exists and is not a socket: not removing it", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (listen_mode) {
		/* a socket left behind by an earlier session */
		unlink(path);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1)) {
			vp_err("cannot listen on %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		return accept_one(fd, path);
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		vp_err("cannot connect to %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A simulator on another host may vanish without a word: keepalive probes
 * while the connection is idle, and TCP_USER_TIMEOUT while a report is not
 * acknowledged, end the session after @timeout_s.
 */
static void tcp_setup(int fd, int timeout_s)
{
	int one = 1, idle = timeout_s / 3 ?: 1, intvl = timeout_s / 6 ?: 1, cnt = 3;
	unsigned int user_ms = timeout_s * 1000U;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof(user_ms));
}

static int open_tcp(const char *spec, bool listen_mode, int timeout_s)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char host[256], *port, *h;
	int fd = -1, one = 1, r;

	if (strlen(spec) >= sizeof(host) || !(port = strrchr(strcpy(host, spec), ':'))) {
		vp_err("--sync-tcp wants HOST:PORT, got '%s'", spec);
		return -1;
	}
	*port++ = '\0';
	h = host;
	if (*h == '[' && port - 2 > h && port[-2] == ']') {	/* [IPv6]:PORT */
		port[-2] = '\0';
		h++;
	}
	/*
	 * Anyone who can connect can drive the guest's time: without an
	 * address, listen on loopback only.
	 */
	if (!*h)
		h = listen_mode ? "127.0.0.1" : "localhost";
	r = getaddrinfo(h, port, &hints, &res);
	if (r) {
		vp_err("cannot resolve %s: %s", spec, gai_strerror(r));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (listen_mode) {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (!bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, 1))
				break;
		} else if (!connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		vp_err("cannot %s %s: %s", listen_mode ? "listen on" : "connect to",
		       spec, strerror(errno));
		return -1;
	}
	if (listen_mode)
		fd = accept_one(fd, spec);
	if (fd >= 0)
		tcp_setup(fd, timeout_s);
	return fd;
}

int vp_transport_open(struct vp_opts *o)
{
	struct stat st;
	int fd;

	if (o->sync_unix)
		fd = open_unix(o->sync_unix, o->listen);
	else if (o->sync_tcp)
		fd = open_tcp(o->sync_tcp, o->listen, o->peer_timeout_s);
	else if (o->sync_fd >= 0 && fstat(o->sync_fd, &st) == 0) {
		int domain = 0;
		socklen_t len = sizeof(domain);

		fd = o->sync_fd;
		if (!getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) &&
		    (domain == AF_INET || domain == AF_INET6))
			tcp_setup(fd, o->peer_timeout_s);
	} else {
		vp_err("--sync-fd %d is not an open file descriptor", o->sync_fd);
		return -VP_EXIT_USAGE;
	}
	return fd < 0 ? -VP_EXIT_ERROR : fd;
}
