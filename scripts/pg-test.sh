#!/usr/bin/env bash
# A throwaway PostgreSQL for tests (issue 10): its own data directory, port and
# socket directory on 127.0.0.1, never a server someone else started.
#
#   scripts/pg-test.sh start [DIR]   initdb + start; prints the server's URL on stdout
#   scripts/pg-test.sh stop DIR      stops the server and removes DIR
#
# Installs Debian's postgresql (scripts/install-deps.sh) when its binaries are
# missing. As root the server runs as the `postgres` user (initdb refuses root).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

pgbin() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    "$here/install-deps.sh" >&2
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  fi
  [ -x "$d/initdb" ] || { echo "pg-test: PostgreSQL server binaries not found after install" >&2; exit 1; }
  echo "$d"
}

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null \
    || echo $((20000 + RANDOM % 40000))
}

case "${1:-}" in
start)
  bin="$(pgbin)"
  dir="${2:-$(mktemp -d /tmp/ferry-pg-XXXXXX)}"
  mkdir -p "$dir"
  chmod 0755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -E UTF8 --locale=C.UTF-8 --auth=trust -U postgres >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  # A port taken between the probe and the start makes pg_ctl fail: try a few.
  for _ in 1 2 3 4 5; do
    port="$(free_port)"
    if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=200 -c fsync=on -c max_wal_size=2GB" \
      >/dev/null 2>&1; then
      echo "$port" >"$dir/port"
      echo "postgres://postgres@127.0.0.1:$port/postgres"
      exit 0
    fi
  done
  cat "$dir/server.log" >&2 || true
  echo "pg-test: the server did not start (see above)" >&2
  exit 1
  ;;
stop)
  dir="${2:?usage: pg-test.sh stop DIR}"
  [ -d "$dir/data" ] || { echo "pg-test: $dir holds no test server" >&2; exit 1; }
  bin="$(pgbin)"
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: scripts/pg-test.sh start [DIR] | stop DIR" >&2
  exit 2
  ;;
esac
