-- Shared by the bench scripts: tally response statuses per thread and, when wrk is done, print one
-- line "WRKJSON {...}" with throughput, latency percentiles (microseconds) and errors for bench_web.py.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

statuses = {}

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

local function json_object(t)
  local parts = {}
  for k, v in pairs(t) do
    table.insert(parts, string.format('"%s": %s', k, tostring(v)))
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
  local tally = {}
  local extra = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses") or {}) do
      tally[k] = (tally[k] or 0) + v
    end
    local wrapped = t:get("wrapped")
    if wrapped then extra.wrapped = (extra.wrapped or 0) + wrapped end
  end
  local e = summary.errors
  local out = {
    requests = summary.requests,
    duration_us = summary.duration,
    bytes = summary.bytes,
    p50_us = latency:percentile(50),
    p90_us = latency:percentile(90),
    p99_us = latency:percentile(99),
    max_us = latency.max,
    mean_us = latency.mean,
    err_connect = e.connect, err_read = e.read, err_write = e.write, err_status = e.status,
    err_timeout = e.timeout,
    wrapped = extra.wrapped or 0,
    statuses = json_object(tally),
  }
  io.write("WRKJSON " .. json_object(out) .. "\n")
end
