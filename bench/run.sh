#!/usr/bin/env bash
# Reproduces the figures of BENCHMARKS.md on this machine.
#
#   bench/run.sh [SECONDS]             Brittany scale (the embedded seeds), about 8 minutes
#   bench/run.sh --national [SECONDS]  national scale, about 25 minutes the first time (needs
#                                      ../shared/data; keeps the national seeds and store under
#                                      target/bench-national for the next runs; the writes go
#                                      to a copy)
# (--national comes first.) Needs wrk, curl, python3, PostgreSQL, and GNU time for the import.
#
# Each run:
#  1. start: cold start to ready with the demo history loaded into an empty store (peak RSS),
#     then start to ready on that store (RSS);
#  2. HTTP on loopback with keep-alive (wrk, Debian package): /health and the recommendation
#     endpoint on the same server in the same run, and their ratio, with the answer cache warm
#     and with every request uncached;
#  3. durable feedback writes per second with 1, 16 and 64 concurrent connections;
#  4. in-process: criterion on recommend() and the pooled purchases (cargo bench --bench core);
#  5. the PostgreSQL peer (bench/peer.sh): same top 3 on a sample, and the time ratio.
# SECONDS is the length of each HTTP run (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
national=0
if [ "${1:-}" = "--national" ]; then national=1; shift; fi
secs=${1:-15}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release --locked
bin=${CARGO_TARGET_DIR:-target}/release/voisinage
echo "== machine"; nproc; grep -m1 'model name' /proc/cpuinfo || true; free -g | head -2
work=$(mktemp -d)
pid=""
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
if [ "$national" = 1 ]; then
  nat=${CARGO_TARGET_DIR:-target}/bench-national
  seeds_args=(--seeds "$nat/seeds")
  data="$nat/data"
  communes="75056 69123 13055 31555 33063 23008 35238 29232 67482 59350"
  if [ ! -f "$nat/seeds/communes.csv" ]; then
    echo "== national import"
    /usr/bin/time -f "import: %e s wall, peak RSS %M kB" "$bin" import --from ../shared/data --region all --out "$nat/seeds"
  fi
else
  seeds_args=()
  data="$work/data"
  communes="35238 29019 56260 22278 35051 29232 56121 22113 35288 29103"
fi
token=$("$bin" token create --scope commune:35238 --label bench --data-dir "$data" "${seeds_args[@]}" 2>"$work/token.log") || { cat "$work/token.log" >&2; exit 1; }
source bench/lib.sh
# Starts the service (arguments added) on the run's data, prints the time to ready and the RSS.
start() {
  local t0
  t0=$(date +%s.%N)
  start_service "$bin" "$work/serve.log" "$@" "${seeds_args[@]}" --data-dir "$data"
  echo "ready after $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s ($*); RSS $(awk '/VmRSS/{print $2}' "/proc/$pid/status") kB, peak $(awk '/VmHWM/{print $2}' "/proc/$pid/status") kB"
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
echo "== start"
start --demo --demo-until 2026-11-29
grep -o 'demo history loaded.*' "$work/serve.log" || echo "(store already held the demo history)"
stop
start
base="http://$addr"
curl -sf "$base/metrics" | grep -E '^voisinage_(store_bytes|adoptions|feedback) '
echo "== HTTP, 2 threads, 32 connections, $secs s each; communes: $communes"
export COMMUNES=$communes
wrk -t2 -c32 -d5s "$base/health" >/dev/null
rps() { sed -E 's/.* rps=([0-9.]+).*/\1/' <<<"$1"; }
# A wrk result line, refused if any request failed (a run of 404s is not a benchmark).
checked() { grep -q ' errors=0$' <<<"$1" || { echo "requests failed: $1" >&2; exit 1; }; echo "$1"; }
for round in cached uncached; do
  [ "$round" = uncached ] && export UNCACHED=1
  health=$(checked "$(wrk -t2 -c32 -d"${secs}s" --latency -s bench/plain.lua "$base/health" | grep '^RESULT')"); echo "health:                     $health"
  reco=$(checked "$(wrk -t2 -c32 -d"${secs}s" --latency -s bench/reco.lua "$base" | grep '^RESULT')"); echo "recommendations ($round): $reco"
  echo "ratio recommendation/health ($round): $(python3 -c "print(round($(rps "$reco") / $(rps "$health"), 2))")"
done
unset UNCACHED
stop
echo "== durable feedback writes (on a copy of the store, so that the figures below read the same data at every run)"
cp -a "$data" "$work/writes"
start_service "$bin" "$work/serve.log" "${seeds_args[@]}" --data-dir "$work/writes"
base="http://$addr"
# The adoption the feedback is about (made by the first run on a kept store, found after).
curl -s -o /dev/null -X POST "$base/api/v1/communes/35238/adoptions" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"product": "openelec", "since": "2019-03-01"}'
id=$(curl -sf "$base/api/v1/communes/35238/adoptions?limit=500" | python3 -c '
import json, sys
body = json.load(sys.stdin)
rows = body if isinstance(body, list) else body.get("adoptions", body.get("items", []))
print([a["id"] for a in rows if a["product"] == "openelec" and a["since"] == "2019-03-01" and not a["simulated"]][0])')
export TOKEN=$token FEEDBACK_PATH="/api/v1/communes/35238/adoptions/$id/feedback"
for c in 1 16 64; do
  t=$([ "$c" -lt 2 ] && echo 1 || echo 2)
  echo "$c connections: $(checked "$(wrk -t"$t" -c"$c" -d"${secs}s" --latency -s bench/feedback.lua "$base" | grep '^RESULT')")"
done
curl -sf "$base/metrics" | grep -E '^voisinage_store_bytes '
stop
rm -rf "$work/writes"
echo "== in-process (criterion)"
if [ "$national" = 1 ]; then
  export VOISINAGE_BENCH_NATIONAL_SEEDS=$nat/seeds VOISINAGE_BENCH_NATIONAL_STORE=$data
  filter=national
else
  filter=brittany
fi
cargo bench --locked --bench core -- "$filter" >"$work/bench.log" 2>&1 || { tail -30 "$work/bench.log" >&2; exit 1; }
grep -E '^LATENCY|^SLOWEST|^national:|time:|^(brittany|national)/' "$work/bench.log"
echo "== PostgreSQL peer"
if [ "$national" = 1 ]; then
  bench/peer.sh --seeds "$nat/seeds" --data-dir "$data" --sample 24
else
  bench/peer.sh --sample 60
fi
