// SPDX-License-Identifier: GPL-2.0
/*
 * Object whose only purpose is debug info for the structures abi-check.sh
 * compares, so the check itself can be tested against a deliberately broken
 * header without building all of KVM.
 */
#include <linux/module.h>
#include <linux/kvm_host.h>

struct kvm_vcpu *abi_probe_vcpu;
struct kvm *abi_probe_kvm;

MODULE_LICENSE("GPL");
