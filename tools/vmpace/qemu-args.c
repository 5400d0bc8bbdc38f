// SPDX-License-Identifier: GPL-2.0
/*
 * QEMU's command line as vmpace reads it: the one "vmpace run" is given,
 * or a running QEMU's /proc/PID/cmdline for "vmpace --pid".  Options are
 * QEMU's "-flag [type,]key=value,..." strings, a comma in a value doubled;
 * those QEMU also takes as JSON objects (-netdev, -device, -object, ...:
 * '{"type":"dgram","local":{"path":"/q"}}') are read as the same string
 * with nested keys dotted ("type=dgram,local.path=/q").
 */
#define _GNU_SOURCE
#include <ctype.h>
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

/* A JSON object's dotted form, built in a growing string. */
struct flat {
	char *s;
	size_t len, cap;
	bool bad;
};

static void put(struct flat *f, const char *p, size_t n)
{
	if (f->bad)
		return;
	if (f->len + n + 1 > f->cap) {
		size_t cap = (f->len + n + 1) * 2;
		char *s = realloc(f->s, cap);

		if (!s) {
			f->bad = true;
			return;
		}
		f->s = s;
		f->cap = cap;
	}
	memcpy(f->s + f->len, p, n);
	f->len += n;
	f->s[f->len] = '\0';
}

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/*
 * A JSON string at @p (after its opening quote) into @f, a comma doubled
 * if @value (QEMU's escape in option strings); returns what follows its
 * closing quote, or NULL.  \uXXXX becomes UTF-8 (surrogates refused).
 */
static const char *json_string(const char *p, struct flat *f, bool value)
{
	static const char esc[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
	char u[4];
	unsigned int c;
	int i;

	for (; *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL;		/* also the end of the string */
		if (*p == ',' && value)
			put(f, ",,", 2);
		else if (*p != '\\')
			put(f, p, 1);
		else if (*++p == 'u') {
			c = 0;
			for (i = 1; i <= 4; i++) {
				if (!isxdigit((unsigned char)p[i]))
					return NULL;
				c = c * 16 + (isdigit((unsigned char)p[i]) ? p[i] - '0' :
					      (tolower((unsigned char)p[i]) - 'a' + 10));
			}
			p += 4;
			if (!c || (c >= 0xd800 && c <= 0xdfff))
				return NULL;
			if (c < 0x80) {
				u[0] = c;
				i = 1;
			} else if (c < 0x800) {
				u[0] = 0xc0 | c >> 6;
				u[1] = 0x80 | (c & 0x3f);
				i = 2;
			} else {
				u[0] = 0xe0 | c >> 12;
				u[1] = 0x80 | ((c >> 6) & 0x3f);
				u[2] = 0x80 | (c & 0x3f);
				i = 3;
			}
			if (c == ',' && value)
				put(f, ",,", 2);
			else
				put(f, u, i);
		} else {
			for (i = 0; esc[i] && esc[i] != *p; i += 2)
				;
			if (!esc[i])
				return NULL;
			put(f, &esc[i + 1], 1);
		}
	}
	return p + 1;
}

/*
 * The JSON value at @p under key @key (its dotted name, "" at the top):
 * objects and arrays as key.member and key.N, true and false as on and
 * off, strings and numbers as they are.  Returns what follows the value,
 * or NULL if it is not JSON vmpace reads (null, too deep).
 */
static const char *json_value(const char *p, struct flat *f, const char *key, int depth)
{
	struct flat k = { 0 };
	const char *q;
	bool obj;
	int n = 0;

	p = ws(p);
	obj = *p == '{';
	if (obj || *p == '[') {
		if (depth > 16)
			return NULL;
		p = ws(p + 1);
		if (*p == (obj ? '}' : ']'))
			return p + 1;
		for (;;) {
			k.len = 0;
			if (*key) {
				put(&k, key, strlen(key));
				put(&k, ".", 1);
			}
			if (obj) {
				if (*p != '"')
					goto bad;
				p = json_string(p + 1, &k, false);
				if (!p || *(p = ws(p)) != ':')
					goto bad;
				p++;
			} else {
				char i[16];

				put(&k, i, snprintf(i, sizeof(i), "%d", n++));
			}
			if (k.bad || !(p = json_value(p, f, k.s, depth + 1)))
				goto bad;
			p = ws(p);
			if (*p == (obj ? '}' : ']'))
				break;
			if (*p != ',')
				goto bad;
			p = ws(p + 1);
		}
		free(k.s);
		return p + 1;
	}
	if (!*key)
		return NULL;			/* the top must be an object */
	if (f->len)
		put(f, ",", 1);
	put(f, key, strlen(key));
	put(f, "=", 1);
	if (*p == '"')
		return json_string(p + 1, f, true);
	if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
		put(f, *p == 't' ? "on" : "off", *p == 't' ? 2 : 3);
		return p + (*p == 't' ? 4 : 5);
	}
	if (*p != '-' && !isdigit((unsigned char)*p))
		return NULL;		/* null, or not JSON */
	for (q = p + 1; *q == '-' || *q == '+' || *q == '.' || *q == 'e' || *q == 'E' ||
		    isdigit((unsigned char)*q); q++)
		;
	put(f, p, q - p);
	return q;
bad:
	free(k.s);
	return NULL;
}

char *vp_qemu_json(const char *arg)
{
	struct flat f = { 0 };
	const char *end;

	if (ws(arg)[0] != '{')
		return NULL;
	put(&f, "", 0);
	end = json_value(arg, &f, "", 0);
	if (!end || *ws(end) || f.bad) {
		free(f.s);
		return NULL;
	}
	return f.s;
}

char **vp_qemu_flatten(char **argv)
{
	size_t n = 0, bytes = 0, i;
	char **flat, **out, *p;

	for (; argv[n]; n++)
		;
	flat = calloc(n + 1, sizeof(*flat));
	if (!flat)
		return NULL;
	for (i = 0; i < n; i++) {
		flat[i] = i > 0 && argv[i - 1][0] == '-' ? vp_qemu_json(argv[i]) : NULL;
		bytes += strlen(flat[i] ? flat[i] : argv[i]) + 1;
	}
	out = malloc((n + 1) * sizeof(*out) + bytes);
	if (out) {
		p = (char *)(out + n + 1);
		for (i = 0; i < n; i++) {
			out[i] = p;
			p = stpcpy(p, flat[i] ? flat[i] : argv[i]) + 1;
		}
		out[n] = NULL;
	}
	for (i = 0; i < n; i++)
		free(flat[i]);
	free(flat);
	return out;
}

char **vp_qemu_cmdline(pid_t pid)
{
	char path[64], *buf = NULL, *p, **raw, **argv;
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
	raw = calloc(argc + 1, sizeof(*raw));
	if (!raw)
		goto fail;
	for (i = 0, p = buf; i < argc; i++, p += strlen(p) + 1)
		raw[i] = p;
	/* one allocation, JSON options as the option strings they stand for */
	argv = vp_qemu_flatten(raw);
	free(raw);
	free(buf);
	return argv;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}
