#!/usr/bin/env bash
# Reproduces the figures of BENCHMARKS.md on this machine (Brittany scale):
#  1. in-process: criterion on recommend() and the pooled purchases (cargo bench --bench core);
#  2. HTTP on loopback with keep-alive (wrk, Debian package): /health and the recommendation
#     endpoint on the same server in the same run, and their ratio;
#  3. cold start to ready on a store holding the demo history;
#  4. durable feedback writes per second with 1, 16 and 64 concurrent connections.
# Usage: bench/run.sh [SECONDS per HTTP run, default 15]. Needs wrk and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --locked
bin=${CARGO_TARGET_DIR:-target}/release/voisinage
echo "== machine"; nproc; grep -m1 'model name' /proc/cpuinfo || true; free -g | head -2
echo "== in-process (criterion)"
cargo bench --locked --bench core 2>&1 | grep -E '^LATENCY|time:|^brittany' || true
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
token=$("$bin" token create --scope commune:35238 --data-dir "$work/data" 2>/dev/null)
start() {
  : >"$work/serve.log"
  RUST_LOG=warn,voisinage=info,voisinage::http=warn "$bin" serve "$@" --bind 127.0.0.1:0 --data-dir "$work/data" 2>"$work/serve.log" &
  pid=$!
  t0=$(date +%s.%N)
  addr=""
  while [ -z "$addr" ]; do addr=$(grep -o 'address=[0-9.:]*' "$work/serve.log" | head -1 | cut -d= -f2 || true); sleep 0.05; done
  until curl -sf "http://$addr/health" >/dev/null; do sleep 0.05; done
  echo "ready after $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s ($*)"
}
echo "== start"
start --demo --demo-until 2026-11-29
kill "$pid"; wait "$pid" 2>/dev/null || true
start
rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status"); echo "RSS when ready: $rss kB"
base="http://$addr"
echo "== HTTP, 2 threads, 32 connections, $secs s each"
wrk -t2 -c32 -d5s "$base/health" >/dev/null
health=$(wrk -t2 -c32 -d"${secs}s" --latency -s bench/plain.lua "$base/health" | grep '^RESULT'); echo "health:          $health"
reco=$(wrk -t2 -c32 -d"${secs}s" --latency -s bench/reco.lua "$base" | grep '^RESULT'); echo "recommendations: $reco"
rps() { sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$1"; }
echo "ratio recommendation/health: $(python3 -c "print(round($(rps "$reco") / $(rps "$health"), 2))")"
echo "== durable feedback writes"
id=$(curl -sf -X POST "$base/api/v1/communes/35238/adoptions" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"product": "openelec", "since": "2019-03-01"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
export TOKEN=$token FEEDBACK_PATH="/api/v1/communes/35238/adoptions/$id/feedback"
for c in 1 16 64; do
  t=$([ "$c" -lt 2 ] && echo 1 || echo 2)
  echo "$c connections: $(wrk -t"$t" -c"$c" -d"${secs}s" --latency -s bench/feedback.lua "$base" | grep '^RESULT')"
done
curl -sf "$base/metrics" | grep -E '^voisinage_(store_bytes|feedback) '
