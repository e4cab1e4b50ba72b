#!/usr/bin/env bash
# The API contract checked from outside: starts the service (demo data, a fresh store, an
# admin token made with the CLI), fetches its OpenAPI document and runs schemathesis (PyPI)
# against it with every check (`--checks all`): no 5xx; answers that follow the documented
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
# Two passes: every operation but the inventory upload with every phase, then the upload
# without the coverage phase. On the upload's binary body, that phase stops with a runtime
# error inside Hypothesis under CPython 3.11 ("AST constructor recursion depth mismatch", while
# it describes its own strategies): a fault of the tool, not an answer of the service; the
# examples, fuzzing and stateful phases still send it generated files.
run() {
  "$st" --config-file "$(dirname "$0")/schemathesis.toml" run "http://$addr/api/v1/openapi.json" \
    -H "Authorization: Bearer $token" \
    --checks all \
    --max-examples 50 --seed 20261129 --no-color --workers 2 \
    --report json --report-dir "$work/report-$1" "${@:2}"
}
set +e
run all --exclude-path-regex 'inventory$'
rc_all=$?
run upload --include-path-regex 'inventory$' --phases examples,fuzzing,stateful
rc_upload=$?
set -e
python3 - "$work" "$rc_all" "$rc_upload" <<'PY'
import glob, json, sys
generated, failing, ok = 0, 0, True
for name, rc in (("all", sys.argv[2]), ("upload", sys.argv[3])):
    report = json.load(open(sorted(glob.glob(f"{sys.argv[1]}/report-{name}/*.json"))[-1]))
    cases = report["test_cases"]
    generated += cases["generated"]
    failing += cases["with_failures"]
    print(f"schemathesis ({name}): {cases['generated']} requests generated, {cases['with_failures']} with failures, "
          f"{len(report['failures'])} unique failures, {len(report['errors'])} errors, exit code {rc}")
    ok = ok and cases["with_failures"] == 0 and not report["failures"] and not report["errors"] and rc == "0"
print(f"schemathesis: {generated} requests generated in all, {failing} with failures")
sys.exit(0 if ok and generated >= 1000 else 1)
PY
if grep -q "panicked" "$work/serve.log"; then echo "the service panicked:"; grep -A5 panicked "$work/serve.log"; exit 1; fi
echo "contract check passed"
