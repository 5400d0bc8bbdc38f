/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Finding a process's KVM vCPU file descriptors under /proc/PID/fd and
 * borrowing them with pidfd_getfd().  Shared by vmpace, its end-to-end test
 * client and the benchmarks, so that they all see a VMM the same way.
 */
#ifndef VMPACE_VCPU_FDS_H
#define VMPACE_VCPU_FDS_H

#include <sys/types.h>

/*
 * Calls @fn(@arg, fd number in @pid, vCPU id) for each vCPU fd of @pid (if
 * @fn is not NULL) until it returns non-zero.  Returns the number of vCPU
 * fds seen, @fn's non-zero return, or -errno if /proc/PID/fd is unreadable.
 */
int vp_for_each_vcpu_fd(pid_t pid, int (*fn)(void *arg, int fd, int id), void *arg);

/*
 * Borrows up to @max vCPU fds of the process behind @pidfd (@pid) into
 * @fds, with their vCPU ids in @ids, sorted by vCPU id.  Returns how many,
 * or -errno (EPERM/EACCES: no ptrace access; ENOSPC: more than @max).
 */
int vp_borrow_vcpu_fds(pid_t pid, int pidfd, int *fds, int *ids, int max);

/*
 * The same, leaving out the vCPUs whose ids are among the @nskip in @skip:
 * a paced vCPU's fd must not be borrowed again, since closing the copy
 * would end its pacing (KVM disarms a vCPU when its controller closes one
 * of its fds).
 */
int vp_borrow_vcpu_fds_except(pid_t pid, int pidfd, int *fds, int *ids, int max,
			      const int *skip, int nskip);

#endif
