#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make check-deb' (as root; CI runs it): the packages of 'make deb'
# installed the way a user installs them, on this machine:
#   1. apt-get install ./vmpace-dkms_*.deb ./vmpace_*.deb ./libvmpace0_*.deb
#      ./libvmpace-dev_*.deb: DKMS builds the
#      modules for every installed kernel with headers (this machine's own
#      kernel is not among them: it is the host's), 6.12 and 6.1 ones built
#      (each from its base's series) and installed into
#      /lib/modules/<release>/updates/dkms, others skipped;
#   2. the test VM boots $KREL with the modules DKMS installed, checks that
#      they are the ones loaded, runs pace_test and the lockstep end-to-end
#      test with the installed /usr/bin/vmpace and a refsim built against the
#      installed libvmpace with pkg-config (linked to libvmpace.so.0); a
#      second one boots $KREL61 with its DKMS modules and runs pace_test;
#   3. apt-get remove: the modules, the tool and the library are gone and modprobe finds
#      Debian's own KVM modules again.
# Ends with "N passed, N failed, N skipped".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions"
. "$here/lib.sh"

[ "$(id -u)" -eq 0 ] || die "make check-deb installs packages: run it as root"
C=$BUILD/check-deb
rm -rf "$C"
mkdir -p "$C"
pkgs=(vmpace-dkms vmpace libvmpace0 libvmpace-dev)
debs=("$BUILD"/deb/vmpace-dkms_*_all.deb "$BUILD"/deb/vmpace_*_amd64.deb
      "$BUILD"/deb/libvmpace0_*_amd64.deb "$BUILD"/deb/libvmpace-dev_*_amd64.deb)
for d in "${debs[@]}"; do
	[ -e "$d" ] || die "$d: no such package in $BUILD/deb: run 'make deb'"
done
upd=/lib/modules/$KREL/updates/dkms
export DEBIAN_FRONTEND=noninteractive

n=0 pass=0 fail=0 skip=0
check() { # description, command...
	local d=$1
	shift
	n=$((n + 1))
	if "$@" >> "$C/checks.log" 2>&1; then
		pass=$((pass + 1))
		echo "ok $n - deb: $d"
	else
		fail=$((fail + 1))
		echo "not ok $n - deb: $d"
	fi
}
installed() { [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]; }
present() { # any state but not-installed: a package an interrupted run left
	local st
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
	[ "${st:1:1}" != n ]
}
modpath() { modinfo -k "$KREL" -n "$1" 2>/dev/null; }
purge() { apt-get purge -y -q "${pkgs[@]}" >> "$C/remove.log" 2>&1; }

# A previous run's packages would hide what this one installs.
if present vmpace-dkms || present vmpace || present libvmpace0 || present libvmpace-dev; then
	log "removing the vmpace packages installed before"
	purge || die "cannot remove the vmpace packages installed before: see $C/remove.log"
fi
distro_kvm=$(modpath kvm)
case $distro_kvm in
/lib/modules/$KREL/kernel/*) ;;
*) die "modprobe's kvm for $KREL is '$distro_kvm', not Debian's: remove what installed it first" ;;
esac

# A kernel of a base with no series and a Debian 12 6.1 older than the 6.1
# series needs (6.1.0-50 is 6.1.176), stand-ins with a headers directory
# while the packages are installed: DKMS must skip them, at installation and
# in their kernel hook, without failing either.
fake=5.10.0-0-vmpace-check-deb
old61=6.1.0-50-vmpace-check-deb
rm -rf "/lib/modules/$fake" "/lib/modules/$old61"
mkdir -p "/lib/modules/$fake/build/include" "/lib/modules/$old61/build/include"
trap 'rm -rf "/lib/modules/$fake" "/lib/modules/$old61"' EXIT

# --- 1. install ------------------------------------------------------------------
log "apt-get install ${debs[*]##*/} (DKMS builds for each kernel with headers)"
start=$(date +%s)
apt-get install -y -q --no-install-recommends "${debs[@]}" > "$C/install.log" 2>&1
rc=$?
log "installed in $(( $(date +%s) - start )) s"
sed -n '/Building for\|Building initial module\|Done\.\|Skipped\|Error/p' "$C/install.log" |
	sed 's/^/# /'
check "apt-get install of the four packages succeeds (exit $rc)" test "$rc" -eq 0
check "all four are installed" eval 'installed vmpace-dkms && installed vmpace && installed libvmpace0 && installed libvmpace-dev'
check "dkms status: vmpace installed for $KREL" \
	eval "grep -q ': installed' <<<\"\$(dkms status -m vmpace -k '$KREL')\""
check "kvm, kvm-amd and kvm-intel are in $upd" \
	eval "(for m in kvm kvm-amd kvm-intel; do ls $upd/\$m.ko* || exit 1; done)"
check "modprobe's kvm and kvm_amd for $KREL are DKMS's" \
	eval "modpath kvm | grep -q '^$upd/' && modpath kvm_amd | grep -q '^$upd/'"
# Every other installed kernel with headers: a 6.12 or 6.1 one got the
# modules (built from its own base's series), any other was skipped, and so
# was a Debian 6.1 older than 6.1.0-53 (6.1.187).
for k in $(ls /lib/modules); do
	[ "$k" != "$KREL" ] && [ -e "/lib/modules/$k/build/include" ] || continue
	case $k in
	6.1.0-[0-9]-*|6.1.0-[0-4][0-9]-*|6.1.0-5[0-2]-*)
	   check "no modules for $k (a 6.1 older than 6.1.187): DKMS skipped it" \
		eval "! ls /lib/modules/$k/updates/dkms/kvm.ko* 2>/dev/null" ;;
	6.12.*|6.1.*)
	   check "kvm, kvm-amd and kvm-intel for $k are in its updates/dkms, built for it" \
		eval "(for m in kvm kvm-amd kvm-intel; do
			f=\$(ls /lib/modules/$k/updates/dkms/\$m.ko*) &&
			modinfo -F vermagic \$f | grep -q '^$k ' || exit 1; done)" ;;
	*) check "no modules for $k (neither 6.12 nor 6.1): DKMS skipped it" \
		eval "! ls /lib/modules/$k/updates/dkms/kvm.ko* 2>/dev/null" ;;
	esac
done
# A kernel package's dkms hook: a 6.12 or 6.1 kernel gets the modules
# built, any other kernel is left alone, and neither fails (that would fail
# the kernel package's installation).  The hook runs "dkms autoinstall",
# whose choice dkms.conf makes from that command line: asked the way dkms
# asks, for Debian 12's 6.1 kernel it must say yes.
ver=$(dpkg-query -W -f='${Version}' vmpace-dkms)
autoinstall_for() { # release: dkms.conf's AUTOINSTALL for "dkms autoinstall -k" it
	bash -c '. "$1"; echo "$AUTOINSTALL"' _ "/usr/src/vmpace-$ver/dkms.conf" autoinstall -k "$1" 2>&1
}
check "the kernel hook would build for $KREL61, 6.1.0-53-amd64, 6.1.187 and $KREL, not for 6.10.1, $fake, 6.1.0-52-amd64 or 6.1.186" \
	eval "[ \"\$(autoinstall_for $KREL61)\$(autoinstall_for 6.1.0-53-amd64)\$(autoinstall_for 6.1.187)\$(autoinstall_for $KREL)\" = yesyesyesyes ] &&
	      [ -z \"\$(autoinstall_for 6.10.1)\$(autoinstall_for $fake)\$(autoinstall_for 6.1.0-52-amd64)\$(autoinstall_for 6.1.186)\" ]"
for k in "$fake" "$old61"; do
	check "the kernel hook for $k (a stand-in) succeeds and builds nothing" \
		eval "/etc/kernel/postinst.d/dkms '$k' && ! ls /lib/modules/$k/updates/dkms/kvm.ko* 2>/dev/null &&
		      ! grep -q '$k' <<<\"\$(dkms status -m vmpace)\""
done
rm -rf "/lib/modules/$fake" "/lib/modules/$old61"
again=$(ls /lib/modules | grep '^6\.12\.' | grep -vxF "$KREL" | head -n 1)
if [ -n "$again" ]; then
	dkms remove "vmpace/$ver" -k "$again" >> "$C/checks.log" 2>&1
	check "the kernel hook for $again (6.12) builds and installs the modules" \
		eval "/etc/kernel/postinst.d/dkms '$again' && ls /lib/modules/$again/updates/dkms/kvm-amd.ko*"
else
	# A fresh machine has one 6.12 kernel: install the headers of another
	# one as a kernel upgrade would (apt runs DKMS's header hook).
	hdr=$(apt-cache pkgnames linux-headers-6.12. | grep -E '^linux-headers-6\.12\.[0-9]+\+deb12-amd64$' |
		grep -vxF "linux-headers-$KREL" | sort -V | while read -r p; do
			[ -z "$(apt-cache madison "$p" 2>/dev/null)" ] || echo "$p"; done | tail -n 1)
	if [ -z "$hdr" ]; then
		# a mirror that keeps only the newest 6.12 (the pinned one)
		n=$((n + 1)) skip=$((skip + 1))
		echo "ok $n - deb: the kernel hook for another 6.12 kernel # SKIP no other 6.12 headers package installed or in the archives"
	else
		again=${hdr#linux-headers-}
		check "apt-get install $hdr builds and installs the modules (DKMS's kernel hook)" \
			eval "$APT_INSTALL $hdr >> '$C/checks.log' 2>&1 &&
			      ls /lib/modules/$again/updates/dkms/kvm-amd.ko*"
	fi
fi
check "/usr/bin/vmpace and its man pages are installed" \
	eval 'test -x /usr/bin/vmpace && test -e /usr/share/man/man1/vmpace.1.gz &&
	      test -e /usr/share/man/man7/vmpace-proto.7.gz && /usr/bin/vmpace version'

# A simulator built as a user builds one against the installed library.
check "refsim builds against the installed libvmpace-dev (pkg-config) and links /usr/lib's libvmpace.so.0" \
	eval 'gcc -O2 -Wall -Werror -I$repo/tools/vmpace/refsim -o $C/refsim $repo/tools/vmpace/refsim/refsim.c \
		$(pkg-config --cflags --libs libvmpace) &&
	      grep -qE "libvmpace.so.0 => (/usr)?/lib/x86_64-linux-gnu/libvmpace.so.0 " <<<"$(ldd $C/refsim)"'
check "netsim (the framed protocol's calls, LIBVMPACE_0.2) builds against it too" \
	eval 'gcc -O2 -Wall -Werror -o $C/netsim $repo/tools/vmpace/refsim/netsim.c \
		$(pkg-config --cflags --libs libvmpace) &&
	      grep -q "(LIBVMPACE_0.2) vmp_send_frame" <<<"$(objdump -T $C/netsim)"'

# --- 2. the test VM with the DKMS modules -------------------------------------------
# The loaded modules are DKMS's: their GNU build IDs (sysfs notes) match.
build_id() { xz -dcf "$1" > "$C/m.ko" && readelf -n "$C/m.ko" | sed -n 's/.*Build ID: //p'; }
sys_id='$(od -An -tx1 -v /sys/module/$m/notes/.note.gnu.build-id | tr -d " \\n" | tail -c 40)'
loaded_are() { # the test line: the loaded kvm and kvm_amd are those in DIR
	printf 'deb/loaded-modules-are-dkms\t30\t'
	for m in kvm kvm_amd; do
		id=$(build_id "$1/${m//_/-}".ko*)
		printf 'm=%s; test -n "%s" && test "%s" = "%s" && ' "$m" "$id" "$sys_id" "$id"
	done
	echo true
}
# vm-run.sh ARGS... LIST: its TAP counted here, a skip is a failure.
vm_tests() { # name list vm-run args...
	local name=$1 list=$2 l t nvm
	shift 2
	"$here/vm-run.sh" "$@" --name "$name" "$list" > "$C/$name.tap" 2> "$C/$name.err" || true
	while IFS= read -r l; do
		t=$(echo "$l" | sed -E 's/^(not )?ok( [0-9]+)? - //')
		case $l in
		'ok '*'# SKIP'*) n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $t (a skip here is a failure)" ;;
		'ok '*) n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $t" ;;
		'not ok '*) n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $t" ;;
		'#'*) echo "$l" ;;
		esac
	done < "$C/$name.tap"
	nvm=$(grep -c . "$list")
	check "the $name test VM ran all $nvm tests (see $C/$name.err)" \
		test "$(grep -cE '^(not )?ok [0-9]+ ' "$C/$name.tap")" -eq "$nvm"
}
loaded_are "$upd" > "$C/vm.list"
cat >> "$C/vm.list" <<EOF
kvm/x86_64/pace_test	300	cd $BUILD/kselftest-kvm/x86_64 && ./pace_test
vmpace/lockstep-1vcpu	300	VMPACE=/usr/bin/vmpace REFSIM=$C/refsim BUILD=$BUILD $repo/tools/testing/selftests/vmpace/e2e.sh lockstep-1vcpu
vmpace/netsim-udp	300	VMPACE=/usr/bin/vmpace NETSIM=$C/netsim BUILD=$BUILD $repo/tools/testing/selftests/vmpace/e2e.sh netsim-udp
EOF
vm_tests deb "$C/vm.list" --smp 1 --modules "$upd"
# Debian 12's default kernel with the modules DKMS built for it from the
# 6.1 series: loaded, and pace_test passes (the rest of the 6.1 tests run
# in make check with the build tree's modules).
upd61=/lib/modules/$KREL61/updates/dkms
if [ -e "/boot/vmlinuz-$KREL61" ] && ls "$upd61"/kvm-amd.ko* > /dev/null 2>&1; then
	{ loaded_are "$upd61"
	  printf 'kvm/x86_64/pace_test\t300\tcd %s/kselftest-kvm/x86_64 && ./pace_test\n' "$BUILD"
	} > "$C/vm61.list"
	vm_tests deb-6.1 "$C/vm61.list" --smp 1 --kernel "$KREL61" --modules "$upd61"
else
	n=$((n + 1)) fail=$((fail + 1))
	echo "not ok $n - deb: a test VM with $KREL61 and its DKMS modules (no /boot/vmlinuz-$KREL61 or no modules in $upd61: make deps installs the kernel and its headers)"
fi

# --- 3. remove -------------------------------------------------------------------------
apt-get remove -y -q "${pkgs[@]}" > "$C/remove.log" 2>&1
rc=$?
check "apt-get remove of the four packages succeeds (exit $rc)" test "$rc" -eq 0
check "no vmpace modules left in $upd or $upd61" \
	eval "! ls $upd/kvm.ko* $upd/kvm-amd.ko* $upd61/kvm.ko* $upd61/kvm-amd.ko* 2>/dev/null"
check "dkms knows no vmpace any more" eval '[ -z "$(dkms status -m vmpace)" ]'
check "modprobe's kvm for $KREL is Debian's again ($distro_kvm)" test "$(modpath kvm)" = "$distro_kvm"
check "/usr/bin/vmpace and libvmpace are gone" \
	eval 'test ! -e /usr/bin/vmpace && ! ls /usr/lib/x86_64-linux-gnu/libvmpace* 2>/dev/null &&
	      test ! -e /usr/include/libvmpace.h'
purge || true

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
