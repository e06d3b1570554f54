#!/usr/bin/env bash
# Makes the upgrade fixtures (Tests/Fixtures/upgrade-0.1.0/): an agent
# directory and a hub directory written by the PREVIOUS release's `ferry`,
# with synced records, an open conflict, a quarantined value, a change set in
# flight and pending writes. UpgradeEndToEndTests opens them with the current
# code. Run once per release, with the old binary built from its commit:
#
#   git worktree add /tmp/ferry-0.1.0 54e330f
#   (cd /tmp/ferry-0.1.0 && swift build --product ferry --scratch-path "$PWD/.build-old")
#   scripts/make-upgrade-fixtures.sh "$PWD/.build-old/debug/ferry"
#
# (.build-old is gitignored; the old build takes about 10 minutes.) Then run
# `swift test --filter UpgradeEndToEndTests` and commit the directory: the
# expectations there (7 records, the owner ids, the long name, members=5)
# follow this script.
set -euo pipefail
OLD="${1:?usage: $0 OLD_FERRY_BINARY [OUT_DIR]}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${2:-$HERE/Tests/Fixtures/upgrade-0.1.0}"
COMMUNE=24781
W="$(mktemp -d /tmp/ferry-fixture.XXXXXX)"
cleanup() {
    [ -n "${HUB_PID:-}" ] && kill "$HUB_PID" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
cd "$W"
export FERRY_LOG_LEVEL=warning

serve() {
    rm -f hub/hub.url
    "$OLD" hub serve --dir hub --port 0 >>hub.log 2>&1 &
    HUB_PID=$!
    for _ in $(seq 1 100); do [ -s hub/hub.url ] && break; sleep 0.1; done
    URL="$(cat hub/hub.url)"
}
stop() {
    kill "$HUB_PID"
    wait "$HUB_PID" || true
    HUB_PID=
}
add() { "$OLD" records add --dir agent "$@"; }

"$OLD" --version
"$OLD" hub init --dir hub >/dev/null
serve
TOKEN="$("$OLD" hub token --commune "$COMMUNE" --hub-dir hub)"
"$OLD" agent enroll "$URL" "$TOKEN" --dir agent >/dev/null
"$OLD" agent sync --dir agent >/dev/null

# 1. Synced records.
R1="$(add owner_name='Nguyễn Văn An' owner_id=012345678901 status=draft area_m2=120.5 land_use=ONT members=4)"
add owner_name='Trần Thị Bích Ngọc' owner_id=012345678902 status=submitted year_granted=2004 >/dev/null
add owner_name='Lê Hoàng Phúc' owner_id=012345678903 status=verified granted_on=2010-05-17 >/dev/null
"$OLD" agent sync --dir agent >/dev/null

# 2. An open conflict: the hub operator and the commune change one field concurrently.
"$OLD" records edit "$R1" status=verified --at-hub --hub-dir hub >/dev/null
"$OLD" records edit "$R1" status=needs_fix --dir agent >/dev/null
"$OLD" agent sync --dir agent >/dev/null

# 3. A quarantined value: this PC's copy of the form was looser than the hub's
#    (maxLength 24 -> 200), so the hub refuses the long name and keeps it with the reason.
python3 - agent/replica.sqlite <<'EOF'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for kind, key, blob in db.execute("SELECT kind, key, json FROM catalog WHERE kind = 'form'").fetchall():
    form = json.loads(blob)
    for f in form["fields"]:
        if f["name"] == "owner_name":
            f["maxLength"] = 200
    db.execute("UPDATE catalog SET json = ? WHERE kind = ? AND key = ?", (json.dumps(form).encode(), kind, key))
db.commit()
EOF
add owner_name='Phạm Thị Thu Hương Nguyễn Hoàng Bảo Ngọc' owner_id=012345678904 status=draft >/dev/null
"$OLD" agent sync --dir agent >/dev/null

# 4. A change set in flight: the hub goes away during the upload; it stays frozen.
stop
add owner_name='Võ Minh Trí Dũng' owner_id=012345678905 status=draft >/dev/null
add owner_name='Đặng Thị Mỹ Duyên' owner_id=012345678906 status=submitted >/dev/null
"$OLD" agent sync --dir agent >/dev/null 2>&1 || true

# 5. Pending writes made after that, never sent.
add owner_name='Huỳnh Văn Thành Công' owner_id=012345678907 status=draft >/dev/null
"$OLD" records edit "$R1" members=5 --dir agent >/dev/null

# Fold the WAL into the database files, so each store is one file.
python3 - hub/hub.sqlite agent/replica.sqlite <<'EOF'
import sqlite3, sys
for p in sys.argv[1:]:
    db = sqlite3.connect(p)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
EOF
rm -f hub/*-wal hub/*-shm agent/*-wal agent/*-shm hub/hub.url hub/*.lock agent/*.lock

rm -rf "$OUT"
mkdir -p "$OUT"
cp -r hub agent "$OUT/"
cat >"$OUT/README.md" <<EOF
Made by \`scripts/make-upgrade-fixtures.sh\` with \`ferry $("$OLD" --version)\` (commit 54e330f)
on $(date -u +%Y-%m-%d). Commune $COMMUNE. Test keys only: never use them for a real hub.

- 7 records written at the agent; 3 synced, 1 quarantined at the hub (owner_name over 24
  characters, from a loosened local form copy), 2 in a change set in flight, 1 pending;
- an open conflict on record $R1, field status (hub: verified, agent: needs_fix), and a
  pending edit members=5 of that record.
EOF
echo "fixtures written to $OUT"
du -sh "$OUT"
