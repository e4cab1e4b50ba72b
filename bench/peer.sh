#!/usr/bin/env bash
# The PostgreSQL peer: the same recommendation as a PostgreSQL user would write it (tables for
# communes, edges, adoptions and feedback; a recursive CTE for the hops; the same scoring in SQL:
# bench/peer/recommend.sql), on the same data, on a server this script starts (Debian package
# postgresql), timed in the same run as the engine. The comparison counts only if the SQL gives
# the engine's top 3 on every sampled commune answered within the neighbourhood.
# Usage: bench/peer.sh [--seeds DIR] [--data-dir DIR] [--sample N]   (arguments go to
# `cargo run --example peer_export`; default: Brittany seeds, simulated demo history).
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bindir" ]; then
  echo "PostgreSQL is needed: apt-get install postgresql" >&2
  exit 1
fi
work=$(mktemp -d)
chmod 755 "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() { as_pg "$bindir/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
echo "== export (engine answers and timings on the sample)"
cargo run --release --locked --example peer_export -- --out "$work/csv" "$@"
echo "== PostgreSQL $("$bindir/postgres" --version | awk '{print $3}')"
mkdir -p "$work/pg" "$work/sock"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg" "$work/sock"
as_pg "$bindir/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
# One core's worth of settings for a 2-core box; no durability needed for a read benchmark.
as_pg "$bindir/pg_ctl" -D "$work/pg" -l "$work/pg/server.log" -w start \
  -o "-c listen_addresses='' -k '$work/sock' -c shared_buffers=512MB -c work_mem=64MB -c fsync=off -c jit=off" >/dev/null
psql=(psql -h "$work/sock" -U postgres -d postgres)
"${psql[@]}" -X -q -v ON_ERROR_STOP=1 -f bench/peer/schema.sql
t0=$(date +%s.%N)
for t in communes edges adoptions feedback products generations regulations; do
  "${psql[@]}" -X -q -v ON_ERROR_STOP=1 -c "\\copy $t FROM '$work/csv/$t.csv' WITH (FORMAT csv, HEADER true)"
done
"${psql[@]}" -X -q -v ON_ERROR_STOP=1 -f bench/peer/indexes.sql
echo "loaded and indexed in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s: $("${psql[@]}" -X -At -c "SELECT (SELECT count(*) FROM communes) || ' communes, ' || (SELECT count(*) FROM adoptions) || ' adoptions, ' || (SELECT count(*) FROM feedback) || ' feedback'")"
"${psql[@]}" -X -q -v ON_ERROR_STOP=1 -f bench/peer/recommend.sql
echo "== same top 3, then time (engine: recommend() in-process; SQL: psql round trip over a Unix socket)"
python3 bench/peer/compare.py "$work/csv" "${psql[@]}"
