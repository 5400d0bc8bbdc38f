/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The client side of the kernel's "kvm_pace" generic netlink family
 * (libnl-genl): a dump of the paced vCPUs, and the events group.
 */
#ifndef VMPACE_NL_H
#define VMPACE_NL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One dump message or event, as received. */
struct pace_rec {
	int cmd;
	uint64_t has;			/* bit per KVM_PACE_A_* present */
	uint32_t vm_id, vmm_pid, ctrl_pid, nr_vcpus, vcpu_id, state, flags;
	uint32_t tsc_khz, reason;
	uint64_t guest_tsc, deadline, holds, exits, overshoot_last;
	uint64_t overshoot_max, held_ns, frozen_ns, seq, overshoot, guest_ns;
};

/*
 * Dumps every paced vCPU (of VMM @pid only, if not 0) into *@recs (malloc'ed,
 * *@nr of them), sorted by VM and vCPU id.  Returns a VP_EXIT_* code, with
 * the reason printed.
 */
int vp_nl_dump(uint32_t pid, struct pace_rec **recs, size_t *nr);

/*
 * Joins the events group and calls @fn for each event until SIGINT, SIGTERM
 * or SIGHUP, or until the family goes away (KVM unloaded); @fn is told of
 * events the kernel dropped (a gap in a VM's sequence) through @lost.
 * @ready is called once no event can be missed any more.  Returns a
 * VP_EXIT_* code.
 */
int vp_nl_listen(void (*fn)(void *arg, const struct pace_rec *r), void (*ready)(void *arg),
		 void *arg, uint64_t *lost);

#endif
