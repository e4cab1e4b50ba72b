-- Recommendation requests for wrk (bench/run.sh): 10 communes x 7 categories in turn.
local communes = {"35238", "29019", "56260", "22278", "35051", "29232", "56121", "22113", "35288", "29103"}
local categories = {"poste-de-travail", "etat-civil", "elections", "site-web", "finances", "paie-rh", "messagerie"}
local n = 0
function request()
  n = n + 1
  return wrk.format("GET", "/api/v1/communes/" .. communes[(n % #communes) + 1] .. "/recommendations?category=" .. categories[(math.floor(n / #communes) % #categories) + 1])
end
function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d\n", summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
