// SPDX-License-Identifier: GPL-2.0
/*
 * QEMU's command line as vmpace reads it: the one "vmpace run" is given,
 * or a running QEMU's /proc/PID/cmdline for "vmpace --pid".  Options are
 * QEMU's "-flag [type,]key=value,..." strings, a comma in a value doubled.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmpace.h"

/* "-a" or "--a" */
static bool is_flag(const char *arg, const char *a)
{
	if (arg[0] == '-' && arg[1] == '-')
		arg++;
	return !strcmp(arg, a);
}

bool vp_qemu_has_arg(char **argv, const char *a)
{
	for (; *argv; argv++)
		if (is_flag(*argv, a))
			return true;
	return false;
}

bool vp_qemu_uses_id(char **argv, const char *key, const char *id)
{
	size_t kl = strlen(key), il = strlen(id);
	const char *p;

	for (; *argv; argv++) {
		if (!strcmp(key, "chardev") && !strncmp(*argv, "chardev:", 8) &&
		    !strcmp(*argv + 8, id))
			return true;
		for (p = *argv; (p = strstr(p, key)); p += kl)
			if ((p == *argv || p[-1] == ',') && p[kl] == '=' &&
			    !strncmp(p + kl + 1, id, il) && (!p[kl + 1 + il] || p[kl + 1 + il] == ','))
				return true;
	}
	return false;
}

/*
 * The next element of @p (an option string) into @buf, ",," read as a
 * comma; returns where the one after starts, or NULL at the end.  An
 * element longer than @len is cut (it matches no key vmpace looks for).
 */
static const char *next_elem(const char *p, char *buf, size_t len)
{
	size_t n = 0;

	if (!*p)
		return NULL;
	for (; *p; p++) {
		if (*p == ',' && p[1] == ',')
			p++;
		else if (*p == ',')
			break;
		if (n + 1 < len)
			buf[n++] = *p;
	}
	buf[n] = '\0';
	return *p ? p + 1 : p;
}

bool vp_qemu_opt(const char *opts, const char *key, char *val, size_t len)
{
	char e[512], *eq, *v;
	bool first = true, found = false, fits = false;

	/* a key given twice: the last one counts, as in QEMU (but for ids) */
	while ((opts = next_elem(opts, e, sizeof(e)))) {
		eq = strchr(e, '=');
		if (!eq && first && !strcmp(key, "type")) {
			v = e;
		} else if (!eq && !strcmp(e, key)) {
			v = "on";		/* a bare "server" is "server=on" */
		} else if (eq) {
			*eq = '\0';
			if (strcmp(e, key)) {
				first = false;
				continue;
			}
			v = eq + 1;
		} else {
			first = false;
			continue;
		}
		first = false;
		found = true;
		fits = strlen(v) < len;
		if (fits)
			snprintf(val, len, "%s", v);
		if (!strcmp(key, "id"))
			break;
	}
	return found && fits;
}

const char *vp_qemu_find(char **argv, const char *flag, const char *id)
{
	char v[128];

	for (; argv[0] && argv[1]; argv++)
		if (is_flag(argv[0], flag) && vp_qemu_opt(argv[1], "id", v, sizeof(v)) &&
		    !strcmp(v, id))
			return argv[1];
	return NULL;
}

bool vp_qemu_on(const char *v)
{
	return !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "y");
}

char **vp_qemu_cmdline(pid_t pid)
{
	char path[64], *buf = NULL, *p, **argv;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd, argc = 0, i;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	for (;;) {
		if (len + 4096 > cap) {
			char *nb = realloc(buf, cap += 65536);

			if (!nb)
				goto fail;
			buf = nb;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (!n)
			break;
		len += n;
	}
	close(fd);
	fd = -1;
	buf[len] = '\0';
	for (p = buf; p < buf + len; p += strlen(p) + 1)
		argc++;
	/* the pointers, then the strings, in one allocation */
	argv = malloc((argc + 1) * sizeof(*argv) + len + 1);
	if (!argv)
		goto fail;
	memcpy(argv + argc + 1, buf, len + 1);
	p = (char *)(argv + argc + 1);
	for (i = 0; i < argc; i++, p += strlen(p) + 1)
		argv[i] = p;
	argv[argc] = NULL;
	free(buf);
	return argv;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}
