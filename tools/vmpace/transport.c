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
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		vp_err("unix socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (listen_mode) {
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

static int open_tcp(const char *spec, bool listen_mode)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char host[256], *port;
	int fd = -1, one = 1, r;

	if (strlen(spec) >= sizeof(host) || !(port = strrchr(strcpy(host, spec), ':'))) {
		vp_err("--sync-tcp wants HOST:PORT, got '%s'", spec);
		return -1;
	}
	*port++ = '\0';
	if (listen_mode)
		hints.ai_flags = AI_PASSIVE;
	r = getaddrinfo(*host ? host : NULL, port, &hints, &res);
	if (r) {
		vp_err("cannot resolve %s: %s", spec, gai_strerror(r));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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
	if (listen_mode) {
		fd = accept_one(fd, spec);
		if (fd >= 0)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

int vp_transport_open(struct vp_opts *o)
{
	struct stat st;
	int fd;

	if (o->sync_unix)
		fd = open_unix(o->sync_unix, o->listen);
	else if (o->sync_tcp)
		fd = open_tcp(o->sync_tcp, o->listen);
	else if (o->sync_fd >= 0 && fstat(o->sync_fd, &st) == 0)
		fd = o->sync_fd;
	else {
		vp_err("--sync-fd %d is not an open file descriptor", o->sync_fd);
		return -VP_EXIT_USAGE;
	}
	return fd < 0 ? -VP_EXIT_ERROR : fd;
}
