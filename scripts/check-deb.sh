#!/usr/bin/env bash
# Installs the Ferry .deb on this machine (CI runs as root), exercises the
# installed binary and units, then removes and purges it, checking each step:
#   scripts/check-deb.sh dist/ferry_0.1.0_amd64.deb
# Refuses to run where a ferry package is already installed (it would remove it).
set -euo pipefail
DEB="${1:?usage: $0 FERRY_DEB}"
fail() {
    printf 'check-deb: FAIL: %s\n' "$*" >&2
    exit 1
}
step() { printf 'check-deb: %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
[ -f "$DEB" ] || fail "$DEB not found"
if dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "install ok"; then
    fail "a ferry package is already installed here; not touching it"
fi
for d in /var/lib/ferry-agent /var/lib/ferry-hub; do
    [ ! -e "$d" ] || fail "$d exists already (a real install?); not touching it"
done
W="$(mktemp -d /tmp/ferry-check-deb.XXXXXX)"
cleanup() {
    dpkg -P ferry >/dev/null 2>&1 || true
    rm -rf "$W"
}
trap cleanup EXIT

step "package: $(dpkg-deb -f "$DEB" Package) $(dpkg-deb -f "$DEB" Version), $(($(stat -c %s "$DEB") / 1024)) KiB"
step "depends: $(dpkg-deb -f "$DEB" Depends)"
DEBIAN_FRONTEND=noninteractive dpkg -i "$DEB" >"$W/dpkg-i.log" 2>&1 || {
    cat "$W/dpkg-i.log" >&2
    fail "dpkg -i"
}
step "installed"

# The binary: static Swift runtime, runs, and its demo converges.
[ -x /usr/bin/ferry ] || fail "/usr/bin/ferry missing"
! ldd /usr/bin/ferry | grep -q 'libswift\|libFoundation' || fail "/usr/bin/ferry needs the Swift runtime"
v="$(/usr/bin/ferry --version)"
[ "$v" = "$(dpkg-deb -f "$DEB" Version)" ] || fail "ferry --version says '$v'"
step "ferry --version: $v"
(cd "$W" && timeout 600 /usr/bin/ferry demo >"$W/demo.log" 2>&1) || {
    tail -n 40 "$W/demo.log" >&2
    fail "ferry demo from the installed binary"
}
step "ferry demo: $(grep -c . "$W/demo.log") lines, exit 0"

# The units, the journald cap, the users and their private directories.
for u in ferry-agent ferry-hub; do
    [ -f "/lib/systemd/system/$u.service" ] || fail "$u.service missing"
    grep -q '^ExecStart=/usr/bin/ferry ' "/lib/systemd/system/$u.service" || fail "$u.service does not run /usr/bin/ferry"
done
systemd-analyze verify /lib/systemd/system/ferry-agent.service /lib/systemd/system/ferry-hub.service \
    >"$W/verify.log" 2>&1 || {
    cat "$W/verify.log" >&2
    fail "systemd-analyze verify"
}
if grep -qi 'ferry' "$W/verify.log"; then
    cat "$W/verify.log" >&2
    fail "systemd-analyze verify warned about the ferry units"
fi
step "systemd-analyze verify: both units clean"
[ -f /usr/lib/systemd/journald.conf.d/ferry.conf ] || fail "journald cap missing"
grep -q '^SystemMaxUse=' /usr/lib/systemd/journald.conf.d/ferry.conf || fail "journald cap has no SystemMaxUse"
[ -f /usr/share/doc/ferry/examples/agent.example.json ] || fail "example config missing"
for spec in ferry:/var/lib/ferry-agent ferry-hub:/var/lib/ferry-hub; do
    user="${spec%%:*}"
    dir="${spec#*:}"
    getent passwd "$user" >/dev/null || fail "user $user not created"
    [ "$(stat -c '%a %U' "$dir")" = "700 $user" ] || fail "$dir is $(stat -c '%a %U' "$dir"), want 700 $user"
done
step "users ferry and ferry-hub; /var/lib/ferry-agent and /var/lib/ferry-hub 0700"
# The service user can use its directory: a hub initialised as ferry-hub.
runuser -u ferry-hub -- /usr/bin/ferry hub init --dir /var/lib/ferry-hub >/dev/null || fail "hub init as ferry-hub"
[ "$(stat -c '%a' /var/lib/ferry-hub/hub.key)" = 600 ] || fail "hub.key is not 0600"

# Remove keeps data; purge keeps a directory with data, removes the empty one.
dpkg -r ferry >/dev/null || fail "dpkg -r"
[ ! -e /usr/bin/ferry ] || fail "/usr/bin/ferry left after dpkg -r"
[ -f /var/lib/ferry-hub/hub.sqlite ] || fail "dpkg -r removed the hub's data"
step "dpkg -r: binary gone, data kept"
dpkg -P ferry >/dev/null || fail "dpkg -P"
[ -f /var/lib/ferry-hub/hub.sqlite ] || fail "purge deleted a hub store"
[ ! -e /var/lib/ferry-agent ] || fail "purge left the empty /var/lib/ferry-agent"
getent passwd ferry >/dev/null && fail "purge left the user ferry"
step "dpkg -P: empty agent directory and user removed; the hub's data kept"
rm -rf /var/lib/ferry-hub
userdel ferry-hub 2>/dev/null || true
groupdel ferry-hub 2>/dev/null || true
step "OK"
