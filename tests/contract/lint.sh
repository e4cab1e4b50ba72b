#!/usr/bin/env bash
# The OpenAPI document checked by three validators, each pinned: openapi-spec-validator (PyPI,
# the OpenAPI 3.1 schema), Redocly CLI (npm, its `recommended` ruleset) and Spectral (npm, the
# `spectral:oas` ruleset of .spectral.yaml). Fails on any error or warning of any of them, so
# that the document stays as clean as it is (see README, "The OpenAPI document").
#
# Usage: tests/contract/lint.sh BINARY|DOCUMENT.json [PYTHON_BIN_DIR]
#   BINARY          the voisinage binary: started on a fresh store (no demo), its
#                   /api/v1/openapi.json fetched, then stopped
#   DOCUMENT.json   a document already saved
#   PYTHON_BIN_DIR  the bin folder of the virtualenv holding openapi-spec-validator (default:
#                   found on PATH)
# The npm packages come from tests/contract/package-lock.json (`npm ci --prefix tests/contract`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${1:?usage: lint.sh BINARY|DOCUMENT.json [PYTHON_BIN_DIR]}
pybin=${2:-}
work=$(mktemp -d)
pid=""
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
# No update check, no telemetry: the linters run offline.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1

if [[ "$src" == *.json ]]; then
  doc=$(cd "$(dirname "$src")" && pwd)/$(basename "$src")
else
  source "$here/../../bench/lib.sh"
  RUST_LOG=warn,voisinage=info start_service "$src" "$work/serve.log" --data-dir "$work/data"
  curl -sf "http://$addr/api/v1/openapi.json" -o "$work/openapi.json"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  doc=$work/openapi.json
fi

failed=0
echo "== openapi-spec-validator"
"${pybin:+$pybin/}openapi-spec-validator" "$doc" || failed=1

echo "== redocly lint (recommended)"
(cd "$here" && node_modules/.bin/redocly lint "$doc" --extends recommended --format json --max-problems 1000 >"$work/redocly.json" 2>"$work/redocly.err") || true
python3 - "$work/redocly.json" <<'PY' || failed=1
import json, sys
problems = json.load(open(sys.argv[1])).get("problems", [])
for p in problems:
    where = p.get("location", [{}])[0].get("pointer", "")
    print(f"  {p['severity']}: {p['ruleId']}: {p['message']} ({where})")
errors = sum(p["severity"] == "error" for p in problems)
print(f"redocly: {errors} errors, {len(problems) - errors} warnings")
sys.exit(1 if problems else 0)
PY

echo "== spectral lint (spectral:oas)"
(cd "$here" && node_modules/.bin/spectral lint --ruleset .spectral.yaml --fail-severity warn --format stylish "$doc") || failed=1

if [ "$failed" != 0 ]; then
  echo "the OpenAPI document does not pass its validators" >&2
  exit 1
fi
echo "the OpenAPI document passes openapi-spec-validator, redocly and spectral"
