#!/usr/bin/env bash
# test-deb.sh DIR installs the node and coordinator .deb in DIR (made by
# mkpackages.sh) on this Debian machine with dpkg -i and checks them:
# binaries on PATH printing $VERSION, units present, state directories
# 0700 with the right owners, the group and user made, the services not
# started; then dpkg -r (binaries gone, state kept) and dpkg --purge. It
# leaves the machine as it found it, whatever happens, and refuses to run
# where Warren is installed or its state exists.
# Run as root (make test-packages); elsewhere it skips, saying why.
set -euo pipefail

dir=${1:?usage: test-deb.sh DIR}
: "${VERSION:?VERSION must be the version stamped into the packages}"
if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null 2>&1; then
	echo "test-packages: SKIPPED: needs root and dpkg (a Debian machine)"
	exit 0
fi
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

arch=$(dpkg --print-architecture)
shopt -s nullglob
node=("$dir"/warren_*_"$arch".deb)
coord=("$dir"/warren-coordinator_*_"$arch".deb)
shopt -u nullglob
if [ ${#node[@]} -ne 1 ] || [ ${#coord[@]} -ne 1 ]; then
	echo "test-packages: want one warren and one warren-coordinator .deb for $arch in $dir" >&2
	exit 1
fi

for p in warren warren-coordinator; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv '^unknown ok not-installed$'; then
		echo "test-packages: the package $p is known to dpkg here; not touching it" >&2
		exit 1
	fi
done
for f in /var/lib/warren /var/lib/warren-coordinator /etc/default/warrend /etc/default/warren-coordinator; do
	if [ -e "$f" ]; then
		echo "test-packages: $f exists; not touching this machine" >&2
		exit 1
	fi
done
had_group=$(getent group warren >/dev/null && echo yes || echo no)
had_user=$(getent passwd warren-coordinator >/dev/null && echo yes || echo no)
had_ugroup=$(getent group warren-coordinator >/dev/null && echo yes || echo no)

cleanup() {
	dpkg --purge warren warren-coordinator >/dev/null 2>&1 || true
	rm -rf /var/lib/warren /var/lib/warren-coordinator /etc/default/warrend /etc/default/warren-coordinator
	if [ "$had_user" = no ] && getent passwd warren-coordinator >/dev/null; then
		userdel warren-coordinator || true
	fi
	if [ "$had_ugroup" = no ] && getent group warren-coordinator >/dev/null; then
		groupdel warren-coordinator || true
	fi
	if [ "$had_group" = no ] && getent group warren >/dev/null; then
		groupdel warren || true
	fi
}
trap cleanup EXIT

fails=0
fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then echo "ok: $what"; else fail "$what"; fi
}
quiet() { "$@" >/dev/null 2>&1; }
quiet_ok() { # quiet_ok COMMAND...: succeeds and says nothing
	local out
	out=$("$@" 2>&1) || { echo "$out" >&2; return 1; }
	[ -z "$out" ] || { echo "$out" >&2; return 1; }
}
mode_owner() { stat -c '%a %U:%G' "$1" 2>/dev/null; }
not_running() { # not_running PATH: no process runs the binary at PATH
	local exe
	for exe in /proc/[0-9]*/exe; do
		if [ "$(readlink "$exe" 2>/dev/null)" = "$1" ]; then
			return 1
		fi
	done
	return 0
}

echo "== dpkg -i ${node[0]} ${coord[0]}"
dpkg -i "${node[0]}" "${coord[0]}"

for b in /usr/sbin/warrend /usr/bin/warren /usr/bin/warren-coordinator /usr/sbin/warren-derp; do
	check "$(basename "$b") on PATH at $b" test "$(command -v "$(basename "$b")")" = "$b"
done
for u in warrend warren-coordinator; do
	check "unit $u.service installed" test -f "/usr/lib/systemd/system/$u.service"
done
if command -v systemd-analyze >/dev/null 2>&1; then
	for u in warrend warren-coordinator; do
		check "systemd-analyze verify $u.service" quiet_ok systemd-analyze verify --man=no "/usr/lib/systemd/system/$u.service"
	done
fi
check "conffile /etc/default/warrend" test -f /etc/default/warrend
check "/var/lib/warren 0700 root:root" test "$(mode_owner /var/lib/warren)" = "700 root:root"
check "/var/lib/warren-coordinator 0700 warren-coordinator" test "$(mode_owner /var/lib/warren-coordinator)" = "700 warren-coordinator:warren-coordinator"
check "group warren" quiet getent group warren
check "system user warren-coordinator" quiet getent passwd warren-coordinator
check "warrend --version" test "$(warrend --version)" = "warrend $VERSION"
check "warren version" test "$(warren version | cut -d' ' -f1-2)" = "warren $VERSION"
check "warren-coordinator --version" test "$(warren-coordinator --version)" = "warren-coordinator $VERSION"
check "warren-derp --version" test "$(warren-derp --version)" = "warren-derp $VERSION"
check "warrend not started" not_running /usr/sbin/warrend
check "warren-coordinator not started" not_running /usr/bin/warren-coordinator
if [ -d /run/systemd/system ]; then
	check "warrend.service enabled" test "$(systemctl is-enabled warrend.service)" = enabled
	check "warrend.service not active" bash -c '! systemctl is-active --quiet warrend.service'
else
	echo "ok: systemd is not running here: enabling skipped by postinst (not checked)"
fi

# A node's state and a coordinator's database, as if they had run.
echo state >/var/lib/warren/warrend.state
echo db >/var/lib/warren-coordinator/warren.db

echo "== dpkg -r warren warren-coordinator"
dpkg -r warren warren-coordinator
for b in /usr/sbin/warrend /usr/bin/warren /usr/bin/warren-coordinator /usr/sbin/warren-derp /usr/lib/systemd/system/warrend.service; do
	check "removed: $b" test ! -e "$b"
done
check "removed: state kept" test -f /var/lib/warren/warrend.state
check "removed: database kept" test -f /var/lib/warren-coordinator/warren.db
check "removed: conffile kept" test -f /etc/default/warrend

echo "== dpkg --purge warren warren-coordinator"
dpkg --purge warren warren-coordinator
check "purged: conffile gone" test ! -e /etc/default/warrend
check "purged: node state gone" test ! -e /var/lib/warren
check "purged: coordinator database kept" test -f /var/lib/warren-coordinator/warren.db
check "purged: dpkg forgets warren" bash -c "dpkg-query -W -f='\${Status}' warren 2>/dev/null | grep -q 'not-installed' || ! dpkg-query -W warren >/dev/null 2>&1"

# Back as it was: what the packages made and the test's own files gone.
trap - EXIT
cleanup
for f in /var/lib/warren /var/lib/warren-coordinator /etc/default/warrend /etc/default/warren-coordinator /usr/sbin/warrend; do
	check "cleaned up: $f" test ! -e "$f"
done
check "cleaned up: group warren as before" test "$(getent group warren >/dev/null && echo yes || echo no)" = "$had_group"
check "cleaned up: user warren-coordinator as before" test "$(getent passwd warren-coordinator >/dev/null && echo yes || echo no)" = "$had_user"

if [ "$fails" -ne 0 ]; then
	echo "test-packages: $fails checks FAILED" >&2
	exit 1
fi
echo "test-packages: PASS"
