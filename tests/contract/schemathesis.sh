#!/usr/bin/env bash
# The API contract checked from outside: starts the service (demo data, a fresh store, an
# admin token made with the CLI), fetches its OpenAPI document and runs schemathesis (PyPI)
# against it with every check but one (`--checks all`, less `use_after_free`): no 5xx; answers that follow the documented
# schemas, status codes, content types and headers; schema-valid requests accepted
# (schemathesis.toml lists the 422 rules no schema can state) and schema-invalid ones refused;
# 401 without a token on every write, 405 with `Allow` for other methods, a created adoption
# readable at once. Fails unless at least 1,000 requests were generated and none failed.
#
# Usage: tests/contract/schemathesis.sh BINARY [SCHEMATHESIS]
#   BINARY        the voisinage binary (release build in CI)
#   SCHEMATHESIS  the schemathesis command (default: schemathesis on PATH)
set -euo pipefail
bin=${1:?usage: schemathesis.sh BINARY [SCHEMATHESIS]}
st=${2:-schemathesis}
work=$(mktemp -d)
pid=""
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
token=$("$bin" token create --scope admin --label schemathesis --data-dir "$work/data" 2>"$work/token.log") || { cat "$work/token.log" >&2; exit 1; }
source "$(dirname "$0")/../../bench/lib.sh"
RUST_LOG=warn,voisinage=info start_service "$bin" "$work/serve.log" --demo --demo-until 2026-11-29 --data-dir "$work/data"
echo "service on $addr"
# Every operation, every phase. The hook works around a CPython 3.11 bug that made Hypothesis
# stop, on any operation, about one run in three (see hypothesis_py311.py); the inventory
# upload, where it was first met, now runs the coverage phase too. Every check but
# `use_after_free`: token revocation, the API's only DELETE, keeps the token's record readable
# by design (see schemathesis.toml; tests/openapi.rs fails if another DELETE appears), and
# `--checks all` overrides what the configuration file says of a check.
set +e
SCHEMATHESIS_HOOKS="$(cd "$(dirname "$0")" && pwd)/hypothesis_py311.py" \
  "$st" --config-file "$(dirname "$0")/schemathesis.toml" run "http://$addr/api/v1/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks all --exclude-checks use_after_free \
  --max-examples 50 --seed 20261129 --no-color --workers 2 \
  --report json --report-dir "$work/report"
rc=$?
set -e
python3 - "$work" "$rc" <<'PY'
import glob, json, sys
report = json.load(open(sorted(glob.glob(f"{sys.argv[1]}/report/*.json"))[-1]))
cases, rc = report["test_cases"], sys.argv[2]
print(f"schemathesis: {cases['generated']} requests generated, {cases['with_failures']} with failures, "
      f"{len(report['failures'])} unique failures, {len(report['errors'])} errors, exit code {rc}")
ok = cases["with_failures"] == 0 and not report["failures"] and not report["errors"] and rc == "0"
sys.exit(0 if ok and cases["generated"] >= 1000 else 1)
PY
if grep -q "panicked" "$work/serve.log"; then echo "the service panicked:"; grep -A5 panicked "$work/serve.log"; exit 1; fi
echo "contract check passed"
