# SPDX-License-Identifier: GPL-2.0
#
# vmpace: one entry point for dependencies, the out-of-tree KVM build, the
# userspace tool, the test VM, the tests, the demo and the benchmarks.
# 'make help' lists the targets.

include tools/testing/rig/versions

RIG		:= tools/testing/rig
BUILD		?= $(CURDIR)/build
# The target kernel: the pinned $(KREL), or KVER=<release> / KERNEL_SRC=<tree>.
KERNEL_SRC	?= $(if $(KVER),,/usr/src/linux-headers-$(KREL))
JOBS		?= $(shell nproc)
TREE		:= $(BUILD)/tree
UAPI		:= $(BUILD)/uapi
KSELFTEST_OUT	:= $(BUILD)/kselftest-kvm
export BUILD KERNEL_SRC KVER KERNEL_TARBALL JOBS

# Variables for the sub-makes of the kernel tree: never inherit ours.
KMAKE		:= env -u MAKEFLAGS -u MFLAGS $(MAKE)

VMPACE_OUT	:= $(BUILD)/vmpace
GUEST_OUT	:= $(BUILD)/guest

.PHONY: all help deps tree modules matrix deb check-deb headers selftests vmpace guest check \
	vm-shell vm-test abi-selftest patches demo bench clean distclean install \
	check-debug check-6.1 fuzz

all: modules headers selftests vmpace guest

help:
	@echo 'make deps         install the pinned Debian packages (as root)'
	@echo 'make [all]        patched KVM modules, uapi headers, selftests'
	@echo 'make modules      kvm.ko kvm-amd.ko kvm-intel.ko into build/modules'
	@echo '                  (KVER=<release> or KERNEL_SRC=<build tree>: another 6.12 or 6.1 kernel)'
	@echo 'make deb          vmpace-dkms, vmpace, libvmpace0, libvmpace-dev .debs into build/deb'
	@echo 'make check-deb    as root: install the .debs, DKMS modules in the test VM, remove'
	@echo 'make matrix       build + ABI check for every Debian 6.12 kernel, table in build/matrix'
	@echo 'make demo         a stock QEMU guest paced by vmpace for refsim, in the test VM'
	@echo 'make check        everything, then all tests in the test VM'
	@echo 'make check-debug  kselftests, fuzzer (FUZZ_SECONDS=120) and end-to-end tests'
	@echo '                  on a KASAN/lockdep/UBSAN test kernel (first build ~15 min)'
	@echo 'make check-6.1    make check'"'"'s test VMs on Debian 12'"'"'s 6.1 kernel'
	@echo 'make fuzz         the pacing uAPI fuzzer alone on the debug kernel'
	@echo '                  (FUZZ_SECONDS=1800, FUZZ_SEED=n to replay a run)'
	@echo 'make bench        benchmarks against userspace baselines (BENCH=quick: CI smoke)'
	@echo 'make vm-test T=re run the selftests whose name matches the regex in the VM'
	@echo 'make vm-shell     shell in the test VM with our modules loaded'
	@echo 'make patches      mailable series + checkpatch in build/patches'
	@echo 'make install      install the modules for KERNEL_SRC, vmpace, libvmpace (DESTDIR honoured)'

deps:
	@$(RIG)/deps.sh

# The patched tree of the pinned kernel: uapi headers, selftests, the tool.
tree: deps
	@env -u KVER KERNEL_SRC= $(RIG)/build-kvm.sh tree

# For another kernel (KVER, or KERNEL_SRC given) only its build tree and the
# build tools are needed, not the pinned packages of the test rig.
OTHER_KERNEL	:= $(or $(KVER),$(filter-out file,$(origin KERNEL_SRC)))
modules: $(if $(OTHER_KERNEL),,deps)
	@$(RIG)/build-kvm.sh modules

# vmpace-dkms, vmpace, libvmpace0 and libvmpace-dev .debs in build/deb (lintian-checked).
deb: headers
	@tools/packaging/mkdeb.sh

# The packages installed as a user would, DKMS modules in the test VM, removal.
check-deb: deb selftests vmpace guest
	@$(RIG)/deb-test.sh

# Every Debian 12 kernel source the archives serve: series, build, ABI check.
matrix: deps
	@$(RIG)/matrix.sh

# Sanitised uapi headers of the patched tree, for all userspace we build.
headers: tree
	@$(KMAKE) -s -C $(TREE) O=$(BUILD)/hdr-obj ARCH=x86 \
		INSTALL_HDR_PATH=$(UAPI) headers_install

selftests: headers
	@$(KMAKE) -s -C $(TREE)/tools/testing/selftests/kvm -j$(JOBS) \
		LDFLAGS=-static KHDR_INCLUDES="-isystem $(UAPI)/include" \
		OUTPUT=$(KSELFTEST_OUT)

# The userspace tool, libvmpace with the reference simulator on it, and the
# demo/test guest.
vmpace: headers
	@mkdir -p $(VMPACE_OUT)
	@$(MAKE) -s -C tools/vmpace OUTPUT=$(VMPACE_OUT)/ UAPI=$(UAPI)/include
	@$(MAKE) -s -C tools/vmpace/refsim OUTPUT=$(VMPACE_OUT)/
	@$(MAKE) -s -C tools/testing/selftests/vmpace OUTPUT=$(VMPACE_OUT)/ UAPI=$(UAPI)/include

guest:
	@tools/testing/selftests/vmpace/guest/build.sh $(GUEST_OUT)

check: all
	@$(RIG)/check.sh

# make check's test VMs on Debian 12's 6.1 kernel (distro vs ours, our
# kselftests, lockstep and timed I/O): about 8 minutes; CI runs it.
check-6.1: all
	@$(MAKE) -s modules KERNEL_SRC= KVER=$$(. $(RIG)/versions && echo $$KREL61)
	@$(RIG)/check-kernel.sh

# The debug test kernel (KASAN, lockdep, UBSAN, panic_on_warn) and the fuzzer.
check-debug: all
	@$(RIG)/check-debug.sh

fuzz: all
	@$(RIG)/fuzz.sh

demo: all
	@$(RIG)/demo.sh

# BENCH=full (default, for bench/README.md; BENCH_MEASURES=a,b for some) or quick
# (CI smoke, about 13 minutes with the seed QEMU's first build).
BENCH		?= full
bench: all
	@bench/run.sh $(BENCH)

abi-selftest: modules
	@$(RIG)/abi-selftest.sh

vm-test: all
	@$(RIG)/vm-tests.sh "$(T)"

vm-shell: modules
	@$(RIG)/vm-run.sh --shell

patches: tree
	@$(RIG)/mkpatches.sh

KERNEL_RELEASE	= $(or $(KVER),$(shell sed -n 's/^\#define UTS_RELEASE "\(.*\)"$$/\1/p' \
			  $(KERNEL_SRC)/include/generated/utsrelease.h))

install: modules vmpace
	install -d $(DESTDIR)/lib/modules/$(KERNEL_RELEASE)/updates/vmpace
	d=$$($(RIG)/build-kvm.sh outdir) && \
	install -m 0644 $$d/kvm.ko $$d/kvm-amd.ko $$d/kvm-intel.ko \
		$(DESTDIR)/lib/modules/$(KERNEL_RELEASE)/updates/vmpace/
	[ -n "$(DESTDIR)" ] || depmod $(KERNEL_RELEASE)
	@$(MAKE) -s -C tools/vmpace OUTPUT=$(VMPACE_OUT)/ UAPI=$(UAPI)/include install
	@$(MAKE) -s -C tools/vmpace/lib OUTPUT=$(VMPACE_OUT)/lib/ install

clean:
	rm -rf $(BUILD)/kmod $(BUILD)/kmod-debug $(BUILD)/modules-debug $(BUILD)/modules $(BUILD)/tree $(BUILD)/hdr-obj \
		$(UAPI) $(KSELFTEST_OUT) $(BUILD)/vm $(BUILD)/abi-selftest \
		$(VMPACE_OUT) $(GUEST_OUT)

distclean:
	rm -rf $(BUILD)
