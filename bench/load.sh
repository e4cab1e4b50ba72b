#!/usr/bin/env bash
# Load check (issue 5): on loopback only, finds the maximum throughput of a mixed read/write
# load (bench/mixed.lua: recommendations, communes, adoptions, pooled purchases and 10 %
# durable feedback writes), then holds about 80 % of it for 60 s and reports requests/s,
# latency, errors and the service's RSS at the start and the end of the hold.
#
# Usage: bench/load.sh [BINARY] [HOLD_SECONDS]   (default target/release/voisinage, 60)
# Needs wrk (Debian package `wrk`), curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${CARGO_TARGET_DIR:-target}/release/voisinage}
hold=${2:-60}
conns=32
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
work=$(mktemp -d)
pid=""
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
token=$("$bin" token create --scope commune:35238 --label load --data-dir "$work/data" 2>"$work/token.log") || { cat "$work/token.log" >&2; exit 1; }
source bench/lib.sh
start_service "$bin" "$work/serve.log" --demo --demo-until 2026-11-29 --data-dir "$work/data"
base="http://$addr"
id=$(curl -sf -X POST "$base/api/v1/communes/35238/adoptions" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"product": "openelec", "since": "2019-03-01"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
export TOKEN=$token FEEDBACK_PATH="/api/v1/communes/35238/adoptions/$id/feedback"
rss() { awk '/VmRSS/{print $2}' "/proc/$pid/status"; }
run() { DELAY_MS=$1 wrk -t2 -c"$conns" -d"$2"s --latency -s bench/mixed.lua "$base" | grep '^RESULT'; }
field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<"$2"; }

echo "warm-up (10 s)"; run 0 10 >/dev/null
max=$(run 0 20); echo "maximum: $max"
max_rps=$(field rps "$max"); mean=$(field mean_ms "$max")
target=$(python3 -c "print(round(0.8 * $max_rps, 1))")
# wrk has no rate limit: each connection pauses between requests. The pause is calibrated in
# two 10 s probes (latency falls as the load falls, so one guess overshoots).
delay=$(python3 -c "print(max(0, round(1000 * $conns / $target - $mean, 2)))")
for probe in 1 2; do
  got=$(run "$delay" 10); echo "probe $probe (pause $delay ms): $got"
  # cycle = latency + pause = 1000 * conns / rps: keep the latency seen, aim the cycle at the target.
  delay=$(python3 -c "print(max(0, round($delay + 1000 * $conns / $target - 1000 * $conns / $(field rps "$got"), 2)))")
done
echo "holding ~$target req/s (80 %) for $hold s: $conns connections, $delay ms pause each"
rss_start=$(rss)
held=$(run "$delay" "$hold")
rss_end=$(rss)
echo "hold: $held"
echo "RSS start ${rss_start} kB, end ${rss_end} kB"
feedback=$(curl -sf "$base/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["feedback"])')
echo "feedback records stored at the end: $feedback"
errors=$(( $(field non2xx_errors "$held") + $(field socket_errors "$held") + $(field non2xx_errors "$max") + $(field socket_errors "$max") ))
[ "$errors" -eq 0 ] || { echo "FAILED: $errors errors" >&2; exit 1; }
echo "load check passed: 0 errors"
