-- Mixed read/write load for wrk (bench/load.sh): per request, 60 % recommendations, 15 %
-- commune, 10 % adoptions list, 5 % pooled purchases, 10 % durable feedback writes.
-- Env: TOKEN (commune token), FEEDBACK_PATH (POST target), DELAY_MS (per-connection pause).
local token = os.getenv("TOKEN")
local feedback = os.getenv("FEEDBACK_PATH")
local pause = tonumber(os.getenv("DELAY_MS") or "0")
local communes = {"35238", "29019", "56260", "22278", "35051", "29232", "56121", "22113", "35288", "29103"}
local categories = {"poste-de-travail", "etat-civil", "elections", "site-web", "finances", "paie-rh", "messagerie"}
local counter = 0
local errors = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function request()
  counter = counter + 1
  local r = counter % 20
  local c = communes[(counter % #communes) + 1]
  if r < 12 then
    local cat = categories[(counter % #categories) + 1]
    return wrk.format("GET", "/api/v1/communes/" .. c .. "/recommendations?category=" .. cat)
  elseif r < 15 then
    return wrk.format("GET", "/api/v1/communes/" .. c)
  elseif r < 17 then
    return wrk.format("GET", "/api/v1/communes/" .. c .. "/adoptions")
  elseif r < 18 then
    return wrk.format("GET", "/api/v1/epcis/243500139/pooled-purchases")
  else
    local body = string.format('{"reliability": %d, "incidents": 0, "downtime_hours": 0.5, "support": 4}', (counter % 5) + 1)
    return wrk.format("POST", feedback, {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
  end
end

function delay()
  return pause
end

function response(status, headers, body)
  if status >= 400 then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.2f p99_ms=%.2f mean_ms=%.2f non2xx_errors=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.mean / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
