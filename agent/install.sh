#!/usr/bin/env bash
# Installs the Ferry agent on a commune PC from a tarball (Debian/Ubuntu; the
# .deb from `make package` does the same with dpkg). Safe to run again: every
# step checks what is already there. Works without systemd running (it then
# says how to start the agent) and without sudo (with --prefix).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
AGENT_USER=ferry
PREFIX=""
DRY_RUN=0
PREFIX_BIN=/usr/local/bin/ferry
AGENT_DIR=/var/lib/ferry-agent

usage() {
    cat <<EOF
Usage: $0 [--binary PATH] [--hub-url URL --token TOKEN] [--no-start] [--prefix DIR] [--dry-run]

Run it as root (su -c, or sudo where installed) for a system install, or as
any user with --prefix. Installs the Ferry agent on this PC:
  1. copies the ferry binary to $PREFIX_BIN
  2. creates the system user '$AGENT_USER' and $AGENT_DIR (mode 0700)
  3. installs the systemd unit (ferry-agent.service) and a journald size cap
  4. with --hub-url and --token: enrolls this PC with the hub (as '$AGENT_USER')
  5. enables and starts the service, then prints 'ferry status'

Options:
  --binary PATH    the ferry executable to install (default: \$FERRY_BINARY,
                   else ./ferry, else the one already in $PREFIX_BIN).
                   Build it with: swift build -c release --product ferry --static-swift-stdlib
  --hub-url URL    the hub's address, e.g. http://hub.example:8440 (or \$HUB_URL)
  --token TOKEN    the one-time token from 'ferry hub token --commune CODE' (or \$TOKEN)
  --no-start       install and enroll, but do not enable or start the service
  --prefix DIR     install under DIR instead of / (DIR/usr/local/bin/ferry,
                   DIR/var/lib/ferry-agent, DIR/etc/systemd/...): a staging
                   root or a user's own copy; no user is created, and systemd
                   is left alone (start the agent with 'ferry agent run')
  --dry-run        print what would be done, change nothing
  -h, --help       this help

Run it again at any time: to upgrade (give a new --binary), or to enroll
later (give --hub-url and --token). An already enrolled agent is kept as is.
EOF
}

say() { printf '==> %s\n' "$*"; }
die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}

BINARY="${FERRY_BINARY:-}"
HUB_URL="${HUB_URL:-}"
TOKEN="${TOKEN:-}"
START=1
while [ $# -gt 0 ]; do
    case "$1" in
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; BINARY="$2"; shift 2 ;;
    --binary=*) BINARY="${1#*=}"; shift ;;
    --hub-url) [ $# -ge 2 ] || die "--hub-url needs a URL"; HUB_URL="$2"; shift 2 ;;
    --hub-url=*) HUB_URL="${1#*=}"; shift ;;
    --token) [ $# -ge 2 ] || die "--token needs a token"; TOKEN="$2"; shift 2 ;;
    --token=*) TOKEN="${1#*=}"; shift ;;
    --no-start) START=0; shift ;;
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX="$2"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
    esac
done

case "$PREFIX" in
"" | /) PREFIX="" ;;
/*) PREFIX="${PREFIX%/}" ;;
*) PREFIX="$(pwd)/${PREFIX%/}" ;;
esac
PREFIX_BIN="$PREFIX/usr/local/bin/ferry"
AGENT_DIR="$PREFIX/var/lib/ferry-agent"
UNIT_DST="$PREFIX/etc/systemd/system/ferry-agent.service"
JOURNALD_DST="$PREFIX/etc/systemd/journald.conf.d/ferry.conf"
IS_ROOT=0
if [ "$(id -u)" -eq 0 ]; then IS_ROOT=1; fi
if [ -z "$PREFIX" ] && [ "$IS_ROOT" -eq 0 ] && [ "$DRY_RUN" -eq 0 ]; then
    die "a system install needs root (su -c '$0 ...', or sudo where installed); or install for this user with --prefix DIR"
fi
# systemd is used only for a system install on a PC where it runs (not in a
# container, a chroot, or a staging --prefix).
SYSTEMD=0
if [ -z "$PREFIX" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then SYSTEMD=1; fi
# The agent runs as the 'ferry' user only in a system install made by root.
SYSTEM_USER=0
if [ -z "$PREFIX" ] && [ "$IS_ROOT" -eq 1 ]; then SYSTEM_USER=1; fi

# Runs a command, or with --dry-run prints it.
act() {
    if [ "$DRY_RUN" -eq 1 ]; then
        printf 'would run: %s\n' "$*"
    else
        "$@"
    fi
}
if [ -n "$HUB_URL" ] && [ -z "$TOKEN" ]; then die "--hub-url given without --token"; fi
if [ -z "$HUB_URL" ] && [ -n "$TOKEN" ]; then die "--token given without --hub-url"; fi
case "$HUB_URL" in
"" | http://* | https://*) ;;
*) die "--hub-url must start with http:// or https:// (got '$HUB_URL')" ;;
esac
for f in ferry-agent.service journald-ferry.conf; do
    [ -f "$HERE/$f" ] || die "$HERE/$f is missing: run this script from Ferry's agent/ directory"
done

# runs a command as the agent user (its directory is private to it)
as_agent() {
    if [ "$SYSTEM_USER" -eq 0 ]; then
        "$@"
    elif command -v runuser >/dev/null; then
        runuser -u "$AGENT_USER" -- "$@"
    else
        su -s /bin/sh "$AGENT_USER" -c "$(printf '%q ' "$@")"
    fi
}

# 1. The binary.
if [ -z "$BINARY" ] && [ -x ./ferry ]; then BINARY=./ferry; fi
if [ -n "$BINARY" ]; then
    [ -f "$BINARY" ] && [ -x "$BINARY" ] || die "$BINARY is not an executable file"
    missing="$(ldd "$BINARY" 2>/dev/null | awk '/not found/ {print $1}' || true)"
    if [ -n "$missing" ]; then
        printf 'install.sh: %s needs libraries this PC does not have:\n' "$BINARY" >&2
        printf '    %s\n' $missing >&2
        if printf '%s\n' $missing | grep -q '^libswift\|^libFoundation\|^libdispatch\|^lib_Foundation'; then
            printf 'The Swift runtime is missing: rebuild with\n' >&2
            printf '    swift build -c release --product ferry --static-swift-stdlib\n' >&2
        fi
        printf 'System libraries come from: apt-get install libsodium23 libsqlite3-0 libzstd1 zlib1g\n' >&2
        exit 1
    fi
    if [ -f "$PREFIX_BIN" ] && cmp -s "$BINARY" "$PREFIX_BIN"; then
        say "ferry binary: $PREFIX_BIN is already this version"
        BINARY_CHANGED=0
    else
        act install -d -m 0755 "$(dirname "$PREFIX_BIN")"
        act install -m 0755 "$BINARY" "$PREFIX_BIN.new"
        act mv -f "$PREFIX_BIN.new" "$PREFIX_BIN"
        say "ferry binary: installed $PREFIX_BIN"
        BINARY_CHANGED=1
    fi
else
    [ -x "$PREFIX_BIN" ] || die "no ferry binary: pass --binary PATH (see --help)"
    say "ferry binary: keeping $PREFIX_BIN"
    BINARY_CHANGED=0
fi
RUN_BIN="$PREFIX_BIN"
if [ "$DRY_RUN" -eq 1 ] && [ ! -x "$RUN_BIN" ]; then RUN_BIN="$BINARY"; fi
"$RUN_BIN" --version >/dev/null || die "$RUN_BIN does not run on this PC"

# 2. The user and the directory.
if [ "$SYSTEM_USER" -eq 0 ]; then
    say "user: none created (--prefix or not root); the agent runs as $(id -un)"
    act install -d -m 0700 "$AGENT_DIR"
    say "directory: $AGENT_DIR (0700)"
else
    if id -u "$AGENT_USER" >/dev/null 2>&1; then
        say "user: '$AGENT_USER' exists"
    else
        nologin="$(command -v nologin || echo /usr/sbin/nologin)"
        act useradd --system --user-group --home-dir "$AGENT_DIR" --no-create-home --shell "$nologin" \
            --comment "Ferry agent" "$AGENT_USER"
        say "user: created system user '$AGENT_USER'"
    fi
    act install -d -m 0700 -o "$AGENT_USER" -g "$AGENT_USER" "$AGENT_DIR"
    # Files made earlier by root (e.g. `ferry status` run as root) would lock the service out.
    act chown -R "$AGENT_USER:$AGENT_USER" "$AGENT_DIR"
    say "directory: $AGENT_DIR (0700, owned by $AGENT_USER)"
fi

# 3. The unit and the journald cap (files; systemd is told only when it runs).
UNIT_CHANGED=0
if ! cmp -s "$HERE/ferry-agent.service" "$UNIT_DST" 2>/dev/null; then
    act install -d -m 0755 "$(dirname "$UNIT_DST")"
    if [ -n "$PREFIX" ]; then
        # The unit names the binary's path: point it into the prefix.
        if [ "$DRY_RUN" -eq 1 ]; then
            printf 'would write: %s (paths under %s)\n' "$UNIT_DST" "$PREFIX"
        else
            sed -e "s#/usr/local/bin/ferry#$PREFIX_BIN#g" -e "s#/var/lib/ferry-agent#$AGENT_DIR#g" \
                "$HERE/ferry-agent.service" >"$UNIT_DST"
            chmod 0644 "$UNIT_DST"
        fi
    else
        act install -m 0644 "$HERE/ferry-agent.service" "$UNIT_DST"
    fi
    UNIT_CHANGED=1
    say "systemd: installed $UNIT_DST"
else
    say "systemd: $UNIT_DST is up to date"
fi
if [ "$SYSTEMD" -eq 1 ]; then act systemctl daemon-reload; fi
if ! cmp -s "$HERE/journald-ferry.conf" "$JOURNALD_DST" 2>/dev/null; then
    act install -d -m 0755 "$(dirname "$JOURNALD_DST")"
    act install -m 0644 "$HERE/journald-ferry.conf" "$JOURNALD_DST"
    if [ "$SYSTEMD" -eq 1 ]; then
        act systemctl restart systemd-journald || say "journald: restart failed; the cap applies after the next reboot"
    fi
    say "journald: logs capped at 200 MB ($JOURNALD_DST)"
else
    say "journald: $JOURNALD_DST is up to date"
fi

# 4. Enrollment.
if [ -f "$AGENT_DIR/agent.json" ]; then
    agent_id="$(sed -n 's/.*"agentID" *: *"\([^"]*\)".*/\1/p' "$AGENT_DIR/agent.json" | head -n1)"
    say "enrollment: already enrolled as ${agent_id:-an agent} (kept)"
    if [ -n "$TOKEN" ]; then
        say "enrollment: the token was NOT used. To enroll afresh, revoke the old agent at the hub,"
        say "            move $AGENT_DIR away, and run this script again with the token."
    fi
elif [ -n "$TOKEN" ]; then
    say "enrollment: enrolling with $HUB_URL"
    if [ "$DRY_RUN" -eq 1 ]; then
        printf 'would run: ferry agent enroll %s TOKEN --dir %s\n' "$HUB_URL" "$AGENT_DIR"
    else
        as_agent "$PREFIX_BIN" agent enroll "$HUB_URL" "$TOKEN" --dir "$AGENT_DIR" ||
            die "enrollment failed (see the message above); nothing is started. Fix it and run this script again."
    fi
else
    say "enrollment: not enrolled yet. Ask the hub operator for a token, then run:"
    say "    $0 --hub-url http://HUB:8440 --token TOKEN${PREFIX:+ --prefix $PREFIX}"
fi

# 5. The service.
if [ "$DRY_RUN" -eq 1 ]; then
    say "service: not touched (--dry-run)"
    exit 0
elif [ "$START" -eq 0 ]; then
    say "service: not started (--no-start)"
elif [ "$SYSTEMD" -eq 0 ]; then
    say "service: systemd is not running here (container, chroot, --prefix): start the agent with"
    say "    $PREFIX_BIN agent run --dir $AGENT_DIR"
    START=0
elif [ ! -f "$AGENT_DIR/agent.json" ]; then
    systemctl enable ferry-agent.service >/dev/null 2>&1 || true
    say "service: enabled, but it only runs once this PC is enrolled (run this script again with the token)"
else
    systemctl enable ferry-agent.service >/dev/null 2>&1
    if systemctl is-active --quiet ferry-agent.service; then
        if [ "$BINARY_CHANGED" -eq 1 ] || [ "$UNIT_CHANGED" -eq 1 ]; then
            systemctl restart ferry-agent.service
            say "service: restarted with the new version"
        else
            say "service: running"
        fi
    else
        systemctl start ferry-agent.service
        say "service: started"
    fi
    # Give the first sync round a moment before asking for the status.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        # `status` exits 1 or 2 until in sync (README); only its output matters here.
        if { as_agent "$PREFIX_BIN" status --dir "$AGENT_DIR" --json 2>/dev/null || true; } | grep -q '"last_attempt_ms"'; then break; fi
        sleep 1
    done
fi

echo
if [ -f "$AGENT_DIR/agent.json" ]; then
    as_agent "$PREFIX_BIN" status --dir "$AGENT_DIR" || true
    echo
    if [ "$SYSTEM_USER" -eq 1 ]; then
        echo "Check again at any time:  runuser -u $AGENT_USER -- ferry status --dir $AGENT_DIR"
    else
        echo "Check again at any time:  $PREFIX_BIN status --dir $AGENT_DIR"
    fi
    echo "Entry page (while the agent runs):  http://127.0.0.1:8441/"
    if [ "$SYSTEMD" -eq 1 ]; then echo "Logs:                     journalctl -u ferry-agent"; fi
else
    echo "Ferry is installed but not enrolled; see above."
fi
