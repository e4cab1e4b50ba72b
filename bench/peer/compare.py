#!/usr/bin/env python3
"""Runs the SQL recommendation (bench/peer/recommend.sql) on the engine's sample
(engine.csv from `cargo run --example peer_export`), checks that it gives the same top 3,
and compares the times. Used by bench/peer.sh.

Usage: compare.py CSV_DIR PSQL_ARGS...   (PSQL_ARGS: how to reach the database)
Prints one line per case, then a summary; exits 1 if any compared case differs.
"""
import csv
import statistics
import subprocess
import sys

RUNS = 5  # timed runs of each SQL query (the median is kept); one more untimed warms it up


def main() -> int:
    folder, psql = sys.argv[1], sys.argv[2:]
    today = "2026-11-29"
    with open(f"{folder}/today.txt") as f:
        today = f.read().strip()
    cases = list(csv.DictReader(open(f"{folder}/engine.csv")))
    script = ["\\pset format unaligned", "\\pset tuples_only on", "\\timing off"]
    compared = [c for c in cases if c["step"] == "neighbours"]
    for c in compared:
        q = (
            "SELECT coalesce(string_agg(product || '/' || coalesce(generation, ''), ';' ORDER BY pos), '') "
            f"FROM (SELECT * FROM recommend('{c['code']}', '{c['category']}', '{today}') ORDER BY pos LIMIT 3) t;"
        )
        script += [f"\\echo CASE {c['code']} {c['category']}", q, "\\timing on"] + [q] * RUNS + ["\\timing off"]
    run = subprocess.run(psql + ["-X", "-q", "-v", "ON_ERROR_STOP=1"], input="\n".join(script) + "\n", capture_output=True, text=True)
    if run.returncode != 0:
        print(run.stderr, file=sys.stderr)
        return 1
    out = run.stdout
    results, times, current = {}, {}, None
    lines = out.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("CASE "):
            current = tuple(line.split()[1:3])
            results[current] = lines[i + 1]
            times[current] = []
            i += 2
            continue
        if line.startswith("Time: ") and current:
            times[current].append(float(line.split()[1]) * 1000.0)  # ms -> µs
        i += 1
    same, differ = 0, 0
    ratios, sql_us, engine_us = [], [], []
    for c in compared:
        key = (c["code"], c["category"])
        sql_top = results.get(key, "")
        ok = sql_top == c["top3"]
        same += ok
        differ += not ok
        t_sql = statistics.median(times[key][-RUNS:]) if len(times.get(key, [])) >= RUNS else float("nan")
        t_engine = float(c["median_us"])
        sql_us.append(t_sql)
        engine_us.append(t_engine)
        ratios.append(t_sql / t_engine)
        print(f"{'same' if ok else 'DIFFERENT'} {key[0]} {key[1]}: engine {c['top3'] or '-'} ({t_engine:.0f} µs), SQL {sql_top or '-'} ({t_sql:.0f} µs)")
    skipped = len(cases) - len(compared)
    print(f"PEER cases={len(compared)} same_top3={same} different={differ} not_compared={skipped} (engine widened beyond the neighbours)")
    if compared:
        print(
            f"PEER engine_median_us={statistics.median(engine_us):.0f} sql_median_us={statistics.median(sql_us):.0f} "
            f"median_of_ratios_sql_over_engine={statistics.median(ratios):.0f} "
            f"ratio_min={min(ratios):.0f} ratio_max={max(ratios):.0f}"
        )
    # A comparison on too few cases does not count either.
    if len(compared) < max(5, len(cases) // 2):
        print(f"PEER too few cases compared ({len(compared)} of {len(cases)})", file=sys.stderr)
        return 1
    if any(t != t for t in sql_us):  # NaN: a case without its timings
        print("PEER some SQL timings are missing", file=sys.stderr)
        return 1
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
