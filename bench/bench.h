/* SPDX-License-Identifier: GPL-2.0 */
/* What pacebench and simbench share. */
#ifndef VMPACE_BENCH_H
#define VMPACE_BENCH_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

/* A message on stderr, prefixed with the program's name. */
static void err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "%s: ", program_invocation_short_name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

#endif
