# Shared by bench/run.sh, bench/load.sh and tests/contract/schemathesis.sh (sourced, not run).

# start_service BINARY LOG [serve arguments...]: starts `BINARY serve` on a free loopback port
# with its log in LOG, waits until it listens and /health answers (at most START_DEADLINE
# seconds, 600 by default: a national demo load takes about 4 minutes; bench/run.sh --synthetic
# allows more), and sets `pid` and `addr`. Exits 1 with the log if the
# service stops first.
start_service() {
  local bin=$1 log=$2
  shift 2
  : >"$log"
  RUST_LOG=${RUST_LOG:-warn,voisinage=info,voisinage::http=warn} "$bin" serve --bind 127.0.0.1:0 "$@" 2>"$log" &
  pid=$!
  addr=""
  local deadline=$((SECONDS + ${START_DEADLINE:-600}))
  until [ -n "$addr" ] && curl -sf "http://$addr/health" >/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -gt "$deadline" ]; then
      cat "$log" >&2
      echo "the service did not start" >&2
      exit 1
    fi
    sleep 0.05
    [ -n "$addr" ] || addr=$(grep -o 'address=[0-9.:]*' "$log" | head -1 | cut -d= -f2 || true)
  done
}
