#!/usr/bin/env bash
# schemathesis against a live `ferry hub serve` with the operator token: every
# documented /v1 endpoint is called with generated (valid and invalid) input
# and must answer without a server error, with a documented status, content
# type and body shape. Bounded: --max-examples and a 150 s timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.32.5
if ! command -v schemathesis >/dev/null || ! schemathesis --version 2>/dev/null | grep -q "$VERSION"; then
  pip install -q "schemathesis==$VERSION"
fi
SWIFT=${SWIFT:-swift}
BIN="$($SWIFT build --show-bin-path)/ferry"
[ -x "$BIN" ] || $SWIFT build --product ferry
WORK=$(mktemp -d)
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
"$BIN" hub init --dir "$WORK/hub" >/dev/null
"$BIN" hub serve --dir "$WORK/hub" --port 0 >"$WORK/hub.log" 2>&1 &
PID=$!
for _ in $(seq 1 150); do [ -s "$WORK/hub/hub.url" ] && break; sleep 0.2; done
[ -s "$WORK/hub/hub.url" ] || { echo "the hub did not start:"; cat "$WORK/hub.log"; exit 1; }
URL=$(cat "$WORK/hub/hub.url")
TOKEN=$(cat "$WORK/hub/operator.token")
python3 -c "import sys, urllib.request; open(sys.argv[2], 'wb').write(urllib.request.urlopen(sys.argv[1]).read())" "$URL/v1/openapi.json" "$WORK/openapi.json"
# Run from the scratch directory: schemathesis keeps a .schemathesis cache in the current one.
(cd "$WORK" && timeout 150 schemathesis run "$WORK/openapi.json" --url "$URL" \
  -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-20}" --seed 42 --no-color) \
  || { echo "schemathesis failed; hub log:"; tail -50 "$WORK/hub.log"; exit 1; }
