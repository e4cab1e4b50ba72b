#!/usr/bin/env bash
# Reproduces the figures of BENCHMARKS.md on this machine.
#
#   bench/run.sh [SECONDS]               Brittany scale (the embedded seeds), about 8 minutes
#   bench/run.sh --national [SECONDS]    national scale, about 25 minutes the first time (needs
#                                        ../shared/data; keeps the national seeds and store under
#                                        target/bench-national for the next runs; the writes go
#                                        to a copy)
#   bench/run.sh --synthetic [SECONDS]   the synthetic territory of about 3x France (issue 17,
#                                        item 5: `examples/synthetic_territory.rs` on the national
#                                        seeds, kept under target/bench-synthetic with its store:
#                                        about 9 GB); the same figures, without the durable writes
#                                        and the PostgreSQL peer (neither is in issue 17's table;
#                                        PEER=1 adds the peer); an hour or more the first time
#   ... --start-only [SECONDS]           (after the scale) only the start rows: first start with
#                                        --demo, cold start, RSS, store size
# (the scale comes first.) Needs wrk, curl, python3, PostgreSQL, and GNU time for the import.
#
# Each run:
#  1. start: first start with the demo history loaded into an empty store (time to ready, peak
#     RSS), then cold start to ready on a store holding that history (time, RSS), and the
#     store's size on disk (du); at national and synthetic scale the store is kept for the next
#     runs, and the first start is still measured on a fresh folder at every run;
#  2. HTTP on loopback with keep-alive (wrk, Debian package): /health and the recommendation
#     endpoint on the same server in the same run, and their ratio, with the answer cache warm
#     and with every request uncached;
#  3. durable feedback writes per second with 1, 16 and 64 concurrent connections;
#  4. in-process: criterion on recommend() (the rotation of the HTTP step and the worst case,
#     Quimper 29232 poste-de-travail) and the pooled purchases (cargo bench --bench core);
#  5. the PostgreSQL peer (bench/peer.sh): same top 3 on a sample, and the time ratio;
#  6. a summary: each figure of issue 17's table, its goal, value / goal and whether it is met
#     (at every scale against the national goals). On the shared 2-core machine the figures
#     vary by 10 to 30 % between runs.
# SECONDS is the length of each HTTP run (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=brittany
case "${1:-}" in
  --national) scale=national; shift ;;
  --synthetic | --x3) scale=synthetic; shift ;;
esac
start_only=0
if [ "${1:-}" = "--start-only" ]; then start_only=1; shift; fi
secs=${1:-15}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
# The operator's binary: the `dist` profile (release with fat LTO, Cargo.toml).
cargo build --profile dist --locked
target=${CARGO_TARGET_DIR:-target}
bin=$target/dist/voisinage
echo "== machine ($(date -u '+%Y-%m-%d %H:%M UTC'), scale $scale, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
nproc; grep -m1 'model name' /proc/cpuinfo || true; free -g | head -2; uptime
work=$(mktemp -d)
pid=""
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
nat=$target/bench-national
if [ "$scale" != brittany ] && [ ! -f "$nat/seeds/communes.csv" ]; then
  echo "== national import"
  /usr/bin/time -f "import: %e s wall, peak RSS %M kB" "$bin" import --from ../shared/data --region all --out "$nat/seeds"
fi
case $scale in
  national)
    seeds_args=(--seeds "$nat/seeds")
    data="$nat/data"
    communes="75056 69123 13055 31555 33063 23008 35238 29232 67482 59350"
    ;;
  synthetic)
    syn=$target/bench-synthetic
    if [ ! -f "$syn/seeds/communes.csv" ]; then
      echo "== synthetic territory (3 copies of the national seeds, benchmarks only)"
      /usr/bin/time -f "generation: %e s wall, peak RSS %M kB" \
        cargo run --release --locked --example synthetic_territory -- --from "$nat/seeds" --out "$syn/seeds" --copies 3
    fi
    head -12 "$syn/seeds/README.md"
    seeds_args=(--seeds "$syn/seeds")
    data="$syn/data"
    # The national rotation: these communes are copy 1 of the synthetic territory.
    communes="75056 69123 13055 31555 33063 23008 35238 29232 67482 59350"
    # A demo load of 3x France takes several minutes.
    export START_DEADLINE=${START_DEADLINE:-7200}
    ;;
  *)
    seeds_args=()
    data="$work/data"
    communes="35238 29019 56260 22278 35051 29232 56121 22113 35288 29103"
    ;;
esac
source bench/lib.sh
# The summary (step 6): one line per figure, `name|value|unit|goal|le or ge`.
summary=$work/summary
: >"$summary"
figure() { echo "$1|$2|$3|$4|$5" >>"$summary"; }
# Starts the service (arguments added) on the data folder $dir, prints the time to ready and
# the RSS, and keeps them in ready_s, rss_kb and peak_kb.
dir=$data
start() {
  local t0
  t0=$(date +%s.%N)
  start_service "$bin" "$work/serve.log" "$@" "${seeds_args[@]}" --data-dir "$dir"
  ready_s=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
  rss_kb=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
  peak_kb=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
  echo "ready after $ready_s s ($*); RSS $rss_kb kB, peak $peak_kb kB"
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
echo "== start"
df -h "$target" | tail -1
# The first start always loads the demo history into a fresh folder; at national and synthetic
# scale that folder becomes the kept store when there is none yet, and is deleted otherwise.
dir=$work/first
start --demo --demo-until 2026-11-29
grep -o 'demo history loaded.*' "$work/serve.log" || true
figure "first start with --demo (simulate, store, index)" "$ready_s" s 45 le
stop
if [ ! -d "$data" ]; then mv "$dir" "$data"; else rm -rf "$dir"; fi
dir=$data
token=$("$bin" token create --scope commune:35238 --label bench --data-dir "$data" "${seeds_args[@]}" 2>"$work/token.log") || { cat "$work/token.log" >&2; exit 1; }
start
figure "cold start on the existing store" "$ready_s" s 5 le
# MB of 10^6 bytes, as the goal is written (VmRSS is in KiB).
figure "resident memory when ready" "$(python3 -c "print(round($rss_kb * 1024 / 1e6, 1))")" MB 300 le
store_bytes=$(du -sb "$data" | cut -f1)
echo "store on disk: $store_bytes bytes ($data)"
figure "store on disk" "$(python3 -c "print(round($store_bytes / 1e6))")" MB 600 le
base="http://$addr"
curl -sf "$base/metrics" | grep -E '^voisinage_(store_bytes|adoptions|feedback) '
# Step 6: the summary table (also after --start-only).
print_summary() {
  echo "== summary (scale $scale; goals of issue 17, for France; figures from one run on a shared machine: 10 to 30 % noise)"
  python3 - "$summary" <<'PY'
import sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1]) if l.strip()]
out = [("figure", "value", "goal", "value / goal", "met")]
for name, value, unit, goal, cmp in rows:
    v, g = float(value), float(goal)
    met = v <= g if cmp == "le" else v >= g
    fmt = lambda x: f"{x:.3f}" if abs(x) < 1 else f"{x:,.2f}" if abs(x) < 10 else f"{x:,.0f}"
    out.append((name, f"{fmt(v)} {unit}".strip(), f"{'≤' if cmp == 'le' else '≥'} {fmt(g)} {unit}".strip(), f"{v / g:.2f}", "yes" if met else "no"))
w = [max(len(r[i]) for r in out) for i in range(5)]
for k, r in enumerate(out):
    print("| " + " | ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) + " |")
    if k == 0:
        print("| " + " | ".join("-" * w[i] if i == 0 else "-" * (w[i] - 1) + ":" for i in range(5)) + " |")
PY
}
if [ "$start_only" = 1 ]; then
  stop
  print_summary
  exit 0
fi
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
  ratio=$(python3 -c "print(round($(rps "$reco") / $(rps "$health"), 3))")
  echo "ratio recommendation/health ($round): $ratio"
done
figure "uncached recommendations / health ($(rps "$reco") / $(rps "$health") requests/s)" "$ratio" "" 0.5 ge
unset UNCACHED
# What the answers asked during the rounds hold (the cache's budget: --answer-cache-mib).
echo "after the HTTP rounds: RSS $(awk '/VmRSS/{print $2}' "/proc/$pid/status") kB; $(curl -sf "$base/metrics" | grep -E '^voisinage_answer_cache_(bytes|answers|requests_total)' | tr '\n' ' ')"
stop
if [ "$scale" != synthetic ]; then
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
    # (Assigned first: a failed check inside `echo "$(...)"` would not stop the run.)
    writes=$(checked "$(wrk -t"$t" -c"$c" -d"${secs}s" --latency -s bench/feedback.lua "$base" | grep '^RESULT')")
    echo "$c connections: $writes"
  done
  curl -sf "$base/metrics" | grep -E '^voisinage_store_bytes '
  stop
  rm -rf "$work/writes"
fi
echo "== in-process (criterion)"
if [ "$scale" != brittany ]; then
  # The national cases of benches/core.rs, on the national or the synthetic seeds and store.
  export VOISINAGE_BENCH_NATIONAL_SEEDS=${seeds_args[1]} VOISINAGE_BENCH_NATIONAL_STORE=$data
  filter=national
  prefix=national/
  pooled=national/pooled-purchases/largest-epci
else
  filter=brittany
  prefix=
  pooled=pooled-purchases/rennes-metropole
fi
cargo bench --locked --bench core -- "$filter" >"$work/bench.log" 2>&1 || { tail -30 "$work/bench.log" >&2; exit 1; }
grep -E '^LATENCY|^SLOWEST|^national:|time:|^(brittany|national)/' "$work/bench.log"
# The median (µs) of a LATENCY line.
median() { grep "^LATENCY $1 " "$work/bench.log" | sed -E 's/.*median_us=([0-9.]+).*/\1/'; }
figure "recommend() in-process, median over the rotation" "$(median "${prefix}recommend/rotation-70")" µs 20 le
figure "recommend() worst case, Quimper 29232 poste-de-travail" "$(python3 -c "print($(median "${prefix}recommend/quimper/poste-de-travail") / 1000)")" ms 1 le
if [ "$scale" != brittany ]; then
  # The same goal for the searches that widen to the whole territory with candidates to read
  # there (benches/core.rs): the kind the Quimper case stands for.
  figure "recommend() widened to the territory, Paris 75056 sauvegarde" "$(python3 -c "print($(median "${prefix}recommend/paris/sauvegarde") / 1000)")" ms 1 le
  figure "recommend() widened to the territory, Aubusson 23008 bureautique" "$(python3 -c "print($(median "${prefix}recommend/aubusson/bureautique") / 1000)")" ms 1 le
fi
figure "pooled purchases of the largest EPCI ($(grep -o 'largest EPCI .*' "$work/bench.log" | sed 's/^largest EPCI //' | head -1 || echo 'Rennes Métropole'))" "$(python3 -c "print($(median "$pooled") / 1000)")" ms 3 le
if [ "$scale" = national ]; then
  echo "== PostgreSQL peer"
  bench/peer.sh --seeds "$nat/seeds" --data-dir "$data" --sample 24
elif [ "$scale" = synthetic ]; then
  if [ "${PEER:-0}" = 1 ]; then
    echo "== PostgreSQL peer"
    bench/peer.sh --seeds "$syn/seeds" --data-dir "$data" --sample 24
  fi
else
  echo "== PostgreSQL peer"
  bench/peer.sh --sample 60
fi
print_summary
