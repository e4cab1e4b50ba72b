-- Recommendation requests for wrk (bench/run.sh): 10 communes x 7 categories in turn.
-- COMMUNES (space-separated INSEE codes) replaces the Breton communes; UNCACHED=1 adds a
-- parameter that differs on every request (hop_decay = 0.5 + k x 1e-12, k counting the
-- requests of all threads: a change of a few 1e-6 at most, far below the 4-decimal rounding of
-- the scores) so that no answer is ever served from the answer cache.
local communes = {"35238", "29019", "56260", "22278", "35051", "29232", "56121", "22113", "35288", "29103"}
if os.getenv("COMMUNES") then
  communes = {}
  for c in string.gmatch(os.getenv("COMMUNES"), "%S+") do table.insert(communes, c) end
end
local uncached = os.getenv("UNCACHED") == "1"
local categories = {"poste-de-travail", "etat-civil", "elections", "site-web", "finances", "paie-rh", "messagerie"}
local n = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function request()
  n = n + 1
  local path = "/api/v1/communes/" .. communes[(n % #communes) + 1] .. "/recommendations?category=" .. categories[(math.floor(n / #communes) % #categories) + 1]
  if uncached then
    path = path .. string.format("&hop_decay=%.12f", 0.5 + (n * 8 + (tid or 0)) * 1e-12)
  end
  return wrk.format("GET", path)
end
function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.3f p99_ms=%.3f errors=%d\n", summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
