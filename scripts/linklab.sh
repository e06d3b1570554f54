#!/usr/bin/env bash
# The link lab (issue 9 item 7): two network namespaces joined by a veth pair,
# shaped like a commune link of ../shared/WORKLOAD.md "Link profiles", with a
# user-space delay relay in front of the hub and link flaps on a timer.
#
#   scripts/linklab.sh PROFILE -- CMD [ARGS...]   set up, run CMD, clean up
#   scripts/linklab.sh PROFILE                    set up, print "ready", hold
#                                                 until stdin closes or SIGTERM
#
# PROFILE: office | 3g-flaky | 2g | dead-zone | none (no shaping, for checks).
# CMD (or the caller, after "ready") runs `ferry hub serve --host 127.0.0.1
# --port $LAB_HUB_PORT` with `ip netns exec $LAB_HUB_NS` and agents with
# `ip netns exec $LAB_AGENT_NS`, pointed at $LAB_HUB_URL (the relay).
#
# Environment: LINKLAB_NAME (namespace prefix, default fl<pid>), LAB_HUB_PORT
# (default 8440), LINKLAB_EVENTS (file that gets "<epoch ms> up|down" lines for
# every flap, to compute the up-time ceiling), LINKLAB_FIRST_UP (seconds of the
# first up window, default the profile's).
#
# Shaping (PLATFORM.md "Networks for link tests"; the kernel has no netem):
# tbf rate on both veth ends, an nft `numgen random` drop on input in both
# namespaces (so the loss share applies to each direction), the delay relay
# (scripts/delay-relay.py) holding each chunk DELAY ms each way, and
# `ip link set down/up` for outages. GSO is off so tbf and drops act on frames.
# Everything is removed by the EXIT trap, also when CMD fails or is killed.
set -euo pipefail

profile="${1:-}"
shift || true
here="$(cd "$(dirname "$0")" && pwd)"

case "$profile" in
  office)    rate=10mbit;  burst=16kb; delay=20;  loss=0;  up=0;  down=0 ;;
  3g-flaky)  rate=384kbit; burst=4kb;  delay=150; loss=3;  up=50; down=10 ;;
  2g)        rate=64kbit;  burst=3kb;  delay=300; loss=10; up=0;  down=0 ;;
  dead-zone) rate=64kbit;  burst=3kb;  delay=300; loss=10; up=15; down=30 ;;
  none)      rate="";      burst="";   delay=0;   loss=0;  up=0;  down=0 ;;
  *) echo "usage: $0 office|3g-flaky|2g|dead-zone|none [-- CMD ...]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "linklab: needs root (network namespaces)" >&2
  exit 77
fi
python=/usr/bin/python3
[ -x "$python" ] || python="$(command -v python3 || true)"
for tool in ip tc nft "$python"; do
  command -v "$tool" >/dev/null || { echo "linklab: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 77; }
done

name="${LINKLAB_NAME:-fl$$}"
hub_ns="$name-h"
agent_ns="$name-a"
hub_port="${LAB_HUB_PORT:-8440}"
relay_port=8441
hub_addr=198.18.0.1
agent_addr=198.18.0.2
events="${LINKLAB_EVENTS:-/dev/null}"
relay_pid=""
flap_pid=""

cleanup() {
  trap - EXIT INT TERM
  # Every step runs, whatever the one before returned (errexit would stop at
  # the first `wait` on a killed child and leave the namespaces behind).
  set +e
  [ -n "$flap_pid" ] && kill "$flap_pid" 2>/dev/null && wait "$flap_pid" 2>/dev/null
  # SIGKILL: a relay with open connections may take its time on SIGTERM.
  [ -n "$relay_pid" ] && kill -9 "$relay_pid" 2>/dev/null && wait "$relay_pid" 2>/dev/null
  # Processes still inside our namespaces were started through this lab.
  for ns in "$hub_ns" "$agent_ns"; do
    if ip netns list | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

now_ms() { date +%s%3N; }

ip netns add "$hub_ns"
ip netns add "$agent_ns"
ip -n "$hub_ns" link add lab0 type veth peer name lab0 netns "$agent_ns"
for side in "$hub_ns:$hub_addr" "$agent_ns:$agent_addr"; do
  ns="${side%%:*}"; addr="${side#*:}"
  ip -n "$ns" link set lo up
  ip -n "$ns" link set dev lab0 gso_max_segs 1
  ip -n "$ns" addr add "$addr/30" dev lab0
  ip -n "$ns" link set lab0 up
  if [ -n "$rate" ]; then
    tc -n "$ns" qdisc add dev lab0 root tbf rate "$rate" burst "$burst" latency 1s
  fi
done
# Random drop on input in both namespaces: the share applies to each direction.
if [ "$loss" -gt 0 ]; then
  for ns in "$hub_ns" "$agent_ns"; do
    ip netns exec "$ns" nft -f - <<EOF
add table inet lab
add chain inet lab in { type filter hook input priority 0; }
add rule inet lab in numgen random mod 100 < $loss drop
EOF
  done
fi

ip netns exec "$hub_ns" "$python" "$here/delay-relay.py" "$hub_addr" "$relay_port" 127.0.0.1 "$hub_port" "$delay" \
  >/dev/null 2>&1 &
relay_pid=$!
# Wait (bounded) until the relay listens.
for _ in $(seq 1 100); do
  ip netns exec "$hub_ns" ss -ltn 2>/dev/null | grep -q "$hub_addr:$relay_port" && break
  sleep 0.05
done

echo "$(now_ms) up" >>"$events"
if [ "$down" -gt 0 ]; then
  (
    first="${LINKLAB_FIRST_UP:-$up}"
    sleep "$first"
    while true; do
      ip -n "$hub_ns" link set lab0 down
      echo "$(now_ms) down" >>"$events"
      sleep "$down"
      ip -n "$hub_ns" link set lab0 up
      echo "$(now_ms) up" >>"$events"
      sleep "$up"
    done
  ) &
  flap_pid=$!
fi

export LAB_PROFILE="$profile" LAB_HUB_NS="$hub_ns" LAB_AGENT_NS="$agent_ns" LAB_HUB_PORT="$hub_port"
export LAB_HUB_URL="http://$hub_addr:$relay_port" LAB_RATE="$rate"
if [ "${1:-}" = "--" ]; then
  shift
  "$@"
else
  echo "ready $hub_ns $agent_ns $LAB_HUB_URL"
  # Hold until the caller closes stdin, sends SIGTERM, or is gone. (Its other
  # children may hold our stdin's write end, so EOF alone is not enough.)
  parent=$PPID
  while kill -0 "$parent" 2>/dev/null; do
    rc=0
    read -r -t 1 _ || rc=$?
    [ "$rc" -gt 0 ] && [ "$rc" -le 128 ] && break
  done
fi
