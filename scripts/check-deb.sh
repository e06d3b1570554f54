#!/usr/bin/env bash
# Installs the Ferry .deb on this machine (CI runs as root), exercises the
# installed binary, units and maintainer scripts, installs it again and
# upgrades it over itself, then removes and purges it, checking each step:
#   scripts/check-deb.sh dist/ferry_0.1.0_amd64.deb
# Refuses to run where Ferry is installed or its users or directories exist
# (it would remove them). Whatever happens, the trap puts the machine back as
# it was: package purged, users, groups and directories it created removed,
# and then checks that nothing is left.
set -euo pipefail
DEB="${1:?usage: $0 FERRY_DEB}"
DEMO_SECONDS="${FERRY_CHECK_DEMO_SECONDS:-600}"
fail() {
    printf 'check-deb: FAIL: %s\n' "$*" >&2
    exit 1
}
step() { printf 'check-deb: %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i)"
[ -f "$DEB" ] || fail "$DEB not found"
DEB="$(readlink -f "$DEB")"
installed() { dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "install ok installed"; }
known() { dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -qv "not-installed"; }
if known; then fail "a ferry package is known to dpkg here ($(dpkg-query -W -f='${Status}' ferry)); not touching it"; fi
PATHS=(/usr/bin/ferry /var/lib/ferry-agent /var/lib/ferry-hub /etc/ferry /lib/systemd/system/ferry-agent.service
    /lib/systemd/system/ferry-hub.service /usr/lib/systemd/journald.conf.d/ferry.conf /usr/share/doc/ferry)
for p in "${PATHS[@]}"; do [ ! -e "$p" ] || fail "$p exists already (a real install?); not touching it"; done
for u in ferry ferry-hub; do
    ! getent passwd "$u" >/dev/null || fail "user $u exists already; not touching it"
    ! getent group "$u" >/dev/null || fail "group $u exists already; not touching it"
done

W="$(mktemp -d /tmp/ferry-check-deb.XXXXXX)"
chmod 0755 "$W"
HUB_PID=""
cleanup() {
    local rc=$?
    [ -z "$HUB_PID" ] || kill "$HUB_PID" 2>/dev/null || true
    # Processes of the service users are this script's (the users did not exist before it).
    for u in ferry ferry-hub; do
        if getent passwd "$u" >/dev/null; then
            for pid in $(pgrep -u "$u" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        fi
    done
    dpkg -P ferry >/dev/null 2>&1 || true
    # What the purge keeps on purpose (directories with data, their users) goes too:
    # this machine is a test machine, and everything here was made by this script.
    rm -rf /var/lib/ferry-agent /var/lib/ferry-hub /etc/ferry
    for u in ferry ferry-hub; do
        ! getent passwd "$u" >/dev/null || userdel "$u" >/dev/null 2>&1 || true
        ! getent group "$u" >/dev/null || groupdel "$u" >/dev/null 2>&1 || true
    done
    rm -rf "$W"
    local left=""
    for p in "${PATHS[@]}"; do [ ! -e "$p" ] || left="$left $p"; done
    for u in ferry ferry-hub; do if getent passwd "$u" >/dev/null; then left="$left user:$u"; fi; done
    if known; then left="$left dpkg:ferry"; fi
    if [ -n "$left" ]; then
        printf 'check-deb: FAIL: left on this machine:%s\n' "$left" >&2
        rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT

VERSION="$(dpkg-deb -f "$DEB" Version)"
step "package: $(dpkg-deb -f "$DEB" Package) $VERSION, $(($(stat -c %s "$DEB") / 1024)) KiB, installed size $(dpkg-deb -f "$DEB" Installed-Size) KiB"
step "depends: $(dpkg-deb -f "$DEB" Depends)"
dpkg-deb -c "$DEB" >"$W/contents"
for f in ./usr/bin/ferry ./lib/systemd/system/ferry-agent.service ./lib/systemd/system/ferry-hub.service \
    ./usr/lib/systemd/journald.conf.d/ferry.conf ./usr/share/doc/ferry/examples/agent.example.json; do
    grep -q " $f\$" "$W/contents" || fail "the package does not hold $f"
done
! awk '{print $2}' "$W/contents" | grep -v '^root/root$' | grep -q . || fail "files in the package not owned by root"

install_deb() {
    DEBIAN_FRONTEND=noninteractive dpkg -i "$1" >"$W/dpkg-i.log" 2>&1 || {
        cat "$W/dpkg-i.log" >&2
        fail "dpkg -i $1"
    }
    installed || fail "dpkg -i $1: ferry is not 'install ok installed'"
}
# Users, groups and directories as the maintainer scripts must leave them.
check_layout() {
    local user dir want
    for spec in ferry:/var/lib/ferry-agent ferry-hub:/var/lib/ferry-hub; do
        user="${spec%%:*}"
        dir="${spec#*:}"
        getent passwd "$user" >/dev/null || fail "$1: user $user not created"
        getent group "$user" >/dev/null || fail "$1: group $user not created"
        [ "$(id -u "$user")" -lt 1000 ] || fail "$1: $user is not a system user (uid $(id -u "$user"))"
        [ "$(getent passwd "$user" | cut -d: -f6)" = "$dir" ] || fail "$1: $user's home is not $dir"
        case "$(getent passwd "$user" | cut -d: -f7)" in */nologin | */false) ;; *) fail "$1: $user has a login shell" ;; esac
        want="700 $user $user"
        [ "$(stat -c '%a %U %G' "$dir")" = "$want" ] || fail "$1: $dir is $(stat -c '%a %U %G' "$dir"), want $want"
    done
    [ "$(stat -c '%a %U' /etc/ferry)" = "755 root" ] || fail "$1: /etc/ferry is $(stat -c '%a %U' /etc/ferry)"
    [ "$(stat -c '%a %U' /usr/bin/ferry)" = "755 root" ] || fail "$1: /usr/bin/ferry is $(stat -c '%a %U' /usr/bin/ferry)"
    for f in /lib/systemd/system/ferry-agent.service /lib/systemd/system/ferry-hub.service \
        /usr/lib/systemd/journald.conf.d/ferry.conf; do
        [ "$(stat -c '%a %U' "$f")" = "644 root" ] || fail "$1: $f is $(stat -c '%a %U' "$f")"
    done
}

t0=$(date +%s)
install_deb "$DEB"
step "dpkg -i: installed in $(($(date +%s) - t0)) s"
check_layout "first install"
step "users ferry and ferry-hub (system, no login shell); /var/lib/ferry-agent and /var/lib/ferry-hub 0700 owned by them"

# The binary: static Swift runtime, only system C libraries, runs, and its demo converges.
[ -x /usr/bin/ferry ] || fail "/usr/bin/ferry missing"
ldd /usr/bin/ferry >"$W/ldd" || fail "ldd /usr/bin/ferry"
! grep -q 'libswift\|libFoundation\|libdispatch\|libBlocksRuntime' "$W/ldd" || fail "/usr/bin/ferry needs the Swift runtime: $(cat "$W/ldd")"
if grep -q 'not found' "$W/ldd"; then fail "/usr/bin/ferry misses libraries: $(grep 'not found' "$W/ldd")"; fi
step "ldd: $(awk '{print $1}' "$W/ldd" | sed 's/\.so.*//' | paste -sd' ' -)"
v="$(/usr/bin/ferry --version)"
[ "$v" = "$VERSION" ] || fail "ferry --version says '$v', the package is $VERSION"
step "ferry --version: $v"
t0=$(date +%s)
(cd "$W" && timeout "$DEMO_SECONDS" /usr/bin/ferry demo >"$W/demo.log" 2>&1) || {
    tail -n 40 "$W/demo.log" >&2
    fail "ferry demo from the installed binary (exit $?; bound ${DEMO_SECONDS} s)"
}
step "ferry demo: $(grep -c . "$W/demo.log") lines, exit 0, $(($(date +%s) - t0)) s"

# The installed units (systemd is not PID 1 here, so verify, not start), the journald cap.
for u in ferry-agent ferry-hub; do
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
step "systemd-analyze verify: both installed units clean"
grep -q '^SystemMaxUse=' /usr/lib/systemd/journald.conf.d/ferry.conf || fail "journald cap has no SystemMaxUse"
step "journald cap: $(grep '^SystemMaxUse=' /usr/lib/systemd/journald.conf.d/ferry.conf)"

# The service users can use their directories: a hub initialised as ferry-hub,
# an agent enrolled with it as ferry (what the README tells the clerk to run).
runuser -u ferry-hub -- /usr/bin/ferry hub init --dir /var/lib/ferry-hub >"$W/init.log" 2>&1 || {
    cat "$W/init.log" >&2
    fail "hub init as ferry-hub"
}
[ "$(stat -c '%a %U' /var/lib/ferry-hub/hub.key)" = "600 ferry-hub" ] || fail "hub.key is not 0600 ferry-hub"
(cd / && exec runuser -u ferry-hub -- /usr/bin/ferry hub serve --dir /var/lib/ferry-hub --host 127.0.0.1 --port 0) >"$W/hub.log" 2>&1 &
HUB_PID=$!
for _ in $(seq 1 100); do
    [ -s /var/lib/ferry-hub/hub.url ] && break
    kill -0 "$HUB_PID" 2>/dev/null || break
    sleep 0.2
done
[ -s /var/lib/ferry-hub/hub.url ] || {
    cat "$W/hub.log" >&2
    fail "the installed hub did not start as ferry-hub"
}
url="$(cat /var/lib/ferry-hub/hub.url)"
token="$(cd / && runuser -u ferry-hub -- /usr/bin/ferry hub token --commune 24848 --hub-dir /var/lib/ferry-hub)" || {
    cat "$W/hub.log" >&2
    fail "hub token as ferry-hub"
}
(cd / && runuser -u ferry -- /usr/bin/ferry agent enroll "$url" "$token" --dir /var/lib/ferry-agent) >"$W/enroll.log" 2>&1 || {
    cat "$W/enroll.log" "$W/hub.log" >&2
    fail "agent enroll as ferry"
}
(cd / && runuser -u ferry -- timeout 120 /usr/bin/ferry agent sync --dir /var/lib/ferry-agent) >"$W/sync.log" 2>&1 || {
    cat "$W/sync.log" >&2
    fail "agent sync as ferry"
}
kill "$HUB_PID" 2>/dev/null || true
wait "$HUB_PID" 2>/dev/null || true
HUB_PID=""
for _ in $(seq 1 50); do
    pgrep -u ferry-hub >/dev/null || break
    sleep 0.2
done
if pgrep -u ferry-hub >/dev/null; then fail "the hub (as ferry-hub) did not stop on SIGTERM"; fi
[ "$(stat -c '%a %U' /var/lib/ferry-agent/replica.sqlite)" = "600 ferry" ] || fail "replica.sqlite is $(stat -c '%a %U' /var/lib/ferry-agent/replica.sqlite), want 600 ferry"
step "as the service users: hub init, hub serve, agent enroll and sync work; hub.key and replica.sqlite 0600"
sum_data() { sha256sum /var/lib/ferry-hub/hub.key /var/lib/ferry-agent/agent.json /var/lib/ferry-agent/replica.sqlite; }
sum_data >"$W/data.sum"

# Idempotent: the same package again, then an upgrade over itself (a copy with
# a higher version), keep users, permissions and data as they were.
install_deb "$DEB"
check_layout "second install"
sha256sum -c --quiet "$W/data.sum" || fail "installing again changed the data"
dpkg-deb -R "$DEB" "$W/up"
sed -i "s/^Version: .*/Version: ${VERSION}+check1/" "$W/up/DEBIAN/control"
# Not compressed: only this machine reads it, and xz of the binary is slow.
dpkg-deb -Znone --root-owner-group --build "$W/up" "$W/up.deb" >/dev/null
install_deb "$W/up.deb"
[ "$(dpkg-query -W -f='${Version}' ferry)" = "${VERSION}+check1" ] || fail "the upgrade did not take"
check_layout "upgrade"
sha256sum -c --quiet "$W/data.sum" || fail "the upgrade changed the data"
step "installed twice and upgraded over itself: users, modes and data unchanged"

# Remove: the program goes; users, directories and data stay.
dpkg -r ferry >"$W/remove.log" 2>&1 || {
    cat "$W/remove.log" >&2
    fail "dpkg -r"
}
for p in /usr/bin/ferry /lib/systemd/system/ferry-agent.service /lib/systemd/system/ferry-hub.service \
    /usr/lib/systemd/journald.conf.d/ferry.conf /usr/share/doc/ferry; do
    [ ! -e "$p" ] || fail "$p left after dpkg -r"
done
sha256sum -c --quiet "$W/data.sum" || fail "dpkg -r changed or removed data"
getent passwd ferry >/dev/null && getent passwd ferry-hub >/dev/null || fail "dpkg -r removed a user"
step "dpkg -r: program, units, journald cap and docs gone; users, directories and data kept"

# Purge: never deletes a replica or a hub store; an empty directory and its user go.
dpkg -P ferry >"$W/purge.log" 2>&1 || {
    cat "$W/purge.log" >&2
    fail "dpkg -P"
}
if known; then fail "dpkg -P left ferry known to dpkg"; fi
sha256sum -c --quiet "$W/data.sum" || fail "purge deleted data"
getent passwd ferry >/dev/null && getent passwd ferry-hub >/dev/null || fail "purge removed the user of a directory it kept"
grep -q "kept /var/lib/ferry-agent" "$W/purge.log" || fail "purge did not say it kept /var/lib/ferry-agent"
step "dpkg -P with data: both directories and users kept, and it says so"
# And a purge of an install that holds no data removes everything it made.
rm -rf /var/lib/ferry-agent /var/lib/ferry-hub
install_deb "$DEB"
dpkg -P ferry >"$W/purge.log" 2>&1 || fail "dpkg -P (no data)"
for p in /var/lib/ferry-agent /var/lib/ferry-hub /etc/ferry; do [ ! -e "$p" ] || fail "purge left the empty $p"; done
for u in ferry ferry-hub; do
    if getent passwd "$u" >/dev/null; then fail "purge left the user $u"; fi
    if getent group "$u" >/dev/null; then fail "purge left the group $u"; fi
done
step "dpkg -P without data: users, groups, /var/lib/ferry-* and /etc/ferry removed"
step "OK"
