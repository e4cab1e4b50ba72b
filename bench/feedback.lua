-- Durable feedback writes for wrk (bench/run.sh): every request is a POST that answers 201 only
-- after the group commit. Env: TOKEN, FEEDBACK_PATH.
local token, path = os.getenv("TOKEN"), os.getenv("FEEDBACK_PATH")
local n = 0
function request()
  n = n + 1
  return wrk.format("POST", path, {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"},
    string.format('{"reliability": %d, "incidents": 0, "downtime_hours": 0, "support": 4}', (n % 5) + 1))
end
function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d\n", summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
