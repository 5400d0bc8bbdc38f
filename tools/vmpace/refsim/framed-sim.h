/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the framed-protocol examples (netsim, sersim) share: starting
 * "vmpace run --proto framed PORT-OPTION ID -- QEMU ..." through libvmpace,
 * booting the guest in long quanta until it says it is ready, and ending
 * on a libvmpace error.  Each example stays one file plus this one.
 */
#ifndef FRAMED_SIM_H
#define FRAMED_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "libvmpace.h"

/* The session's name in messages ("netsim") and the session itself. */
static const char *fs_name;
static struct vmp *fs_vm;

static void __attribute__((noreturn)) fs_die(const char *what)
{
	int status;

	fprintf(stderr, "%s: %s: %s\n", fs_name, what, vmp_errmsg(fs_vm));
	vmp_close(fs_vm, 15000, &status);
	fprintf(stderr, "%s: %s\n", fs_name, vmp_errmsg(fs_vm));
	exit(2);
}

/*
 * argv for vmp_spawn(): @vmpace run --sync-fd 3 --proto framed @port_opt
 * @port_id -- the QEMU command line @qemu (NULL-terminated), then @nr_dev
 * more arguments of @dev (the devices on the port); NULL if memory ran out.
 */
static const char **fs_run_argv(const char *vmpace, const char *port_opt, const char *port_id,
				char **qemu, const char *const *dev, int nr_dev)
{
	const char **args;
	int i = 0, n;

	for (n = 0; qemu[n]; n++)
		;
	args = calloc(n + nr_dev + 10, sizeof(*args));
	if (!args)
		return NULL;
	args[i++] = vmpace;
	args[i++] = "run";
	args[i++] = "--sync-fd";
	args[i++] = "3";
	args[i++] = "--proto";
	args[i++] = "framed";
	args[i++] = port_opt;
	args[i++] = port_id;
	args[i++] = "--";
	for (n = 0; qemu[n]; n++)
		args[i++] = qemu[n];
	for (n = 0; n < nr_dev; n++)
		args[i++] = dev[n];
	return args;
}

/*
 * Quanta of @q ns through @quantum until *@ready: 0, or 2 (said why, the
 * session closed) if 120 s of guest time pass first.
 */
static int fs_boot(void (*quantum)(uint64_t), uint64_t q, const bool *ready)
{
	const uint64_t limit = 120000000000ull;
	int status;

	while (!*ready) {
		quantum(q);
		if (vmp_now(fs_vm) > limit) {
			fprintf(stderr, "%s: the guest did not come up in %.0f s of simulated "
				"time\n", fs_name, limit / 1e9);
			vmp_close(fs_vm, 15000, &status);
			return 2;
		}
	}
	return 0;
}

static int fs_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

#endif
