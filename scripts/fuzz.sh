#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time: scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]
#
# Builds TARGET (FuzzEnvelope, FuzzBody, FuzzForm, FuzzRequest, FuzzIngest) with
# libFuzzer and AddressSanitizer in its own scratch path (.build-fuzz, so normal
# builds are unaffected), fuzzes from a working corpus seeded with fuzz/seeds/TARGET,
# and on a crash copies the input to protocol/vectors/crashers/ (replayed by
# `make test`) and exits non-zero. Prints executions and executions per second.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
target="${1:?usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options]}"
seconds="${2:?usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options]}"
shift 2
[ -d "fuzz/seeds/$target" ] || { echo "no fuzz/seeds/$target: targets are $(ls fuzz/seeds | tr '\n' ' ')" >&2; exit 2; }

scratch=.build-fuzz
flags=(-c release --sanitize=fuzzer --sanitize=address -Xswiftc -use-ld=lld -Xswiftc -DFERRY_FUZZ --scratch-path "$scratch")
swift build "${flags[@]}" --product "$target"
bin="$(swift build "${flags[@]}" --show-bin-path)/$target"

corpus="$scratch/corpus/$target"
# Not "artifacts": SwiftPM owns $scratch/artifacts and empties it when it resolves.
artifacts="$scratch/crashes/$target"
mkdir -p "$corpus" "$artifacts"
cp -n "fuzz/seeds/$target"/* "$corpus"/ 2>/dev/null || true
log="$scratch/$target.log"
# Swift's own crash handler misbehaves under ASan (PLATFORM.md). Leak checking
# is off: at exit LeakSanitizer reports the Swift runtime's and Foundation's
# caches (e.g. 552 bytes in 10 allocations after 27 k ingests); traps, ASan
# errors, timeouts and out-of-memory still stop the run.
set +e
SWIFT_BACKTRACE=enable=no "$bin" "$corpus" -max_total_time="$seconds" -print_final_stats=1 -detect_leaks=0 \
  -artifact_prefix="$artifacts/" -rss_limit_mb=4096 "$@" 2>&1 | tee "$log" | grep -E "^#[0-9]+.*(INITED|DONE|pulse)|ERROR|Done " 
status=${PIPESTATUS[0]}
set -e
runs=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" | tail -n 1 || true)
speed=$(grep -oE "stat::average_exec_per_sec: *[0-9]+" "$log" | grep -oE "[0-9]+$" | tail -n 1 || true)
echo "$target: ${runs:-?} executions, ${speed:-?} exec/s, exit $status"
if [ "$status" -ne 0 ]; then
  found=0
  for f in "$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/timeout-* "$artifacts"/oom-*; do
    [ -e "$f" ] || continue
    dest="protocol/vectors/crashers/$(date -u +%Y%m%d)-$target-$(basename "$f" | cut -c1-20).bin"
    cp "$f" "$dest"
    echo "crasher kept as $dest: fix the code, then commit it with the fix" >&2
    found=1
  done
  [ "$found" -eq 1 ] || tail -40 "$log" >&2
  exit 1
fi
