--- create_many, timed inside the process. Run by bench/run.lua (from the
-- repository root) under lua5.4:
--
--   bench/create_many.lua --url URL --key KEY --count N --concurrency C [--core-only | --no-gc]
--
-- N creates (one per fleet) through one create_many with C in flight; the
-- server answers each after its configured delay. With --core-only, the
-- same creates go through the C core's multi handle alone, driven by the
-- smallest loop that keeps C in flight: what the batch costs without the
-- Lua layer (no checks, no canonical body per item, no retry policy, no
-- redaction). With --no-gc, the library's batch runs with Lua's garbage
-- collector stopped (started again after it): what the collector's work
-- costs the batch. A measurement, not a way to run: memory then grows with
-- every create. Prints
--
--   RESULT connects=0 cpu_seconds=T creates=N seconds=S sys_seconds=K
--
-- S is the wall time of the whole batch, T its CPU time and K the part of
-- T spent in the kernel (from /proc, in 10 ms ticks: a share, not a
-- count). Any failed create aborts the run.
local env = require "bench.env"
local cerca = require "cerca"
local core = require "cerca.core"

local format = string.format

local o = env.options(arg)
local count = tonumber(o.count) or error("--count is required", 0)
local concurrency = tonumber(o.concurrency) or error("--concurrency is required", 0)

local client = assert(cerca.new { api_key = o.key, base_url = o.url, log_level = "off", max_retries = 0 })
local items = {}
for i = 1, count do items[i] = { fleet_id = "fleet_many_" .. i, params = { url = "https://example.com/webhook" } } end

-- The C core alone: each item's request as the Lua layer hands it over
-- (the same header lines, body and per-attempt fields), made when its
-- place comes, at most `concurrency` in flight.
local CREATED = { ok = true }
local function core_batch()
  local multi = assert(core.new_multi { user_agent = client.user_agent })
  multi:limit(concurrency)
  local headers = { "Authorization: Bearer " .. o.key, "Content-Type: application/json", "Accept: application/json" }
  local body = assert(core.encode(require("cerca.webhooks").body(items[1].params)))
  local results, started, running = {}, 0, 0
  while started < count or running > 0 do
    while running < concurrency and started < count do
      started = started + 1
      assert(multi:add(started, { method = "POST", url = o.url .. "/fleets/" .. items[started].fleet_id .. "/webhooks",
        headers = headers, body = body, idempotency_key = core.uuid4(), timeout_ms = 60000,
        connect_timeout_ms = 10000, max_body = 1024 * 1024, no_proxy = true }))
      running = running + 1
    end
    local finished = multi:poll(1000)
    for i = 1, #finished do
      local res = finished[i].response
      running = running - 1
      -- The message is made only for a failure: this loop is what is timed.
      results[finished[i].token] = (res.status == 201 and type(res.json) == "table") and CREATED
        or { ok = false, error = format("HTTP %d %s", res.status, tostring(res.error_message)) }
    end
  end
  multi:close()
  return results
end

-- (Stopped before the clock starts; the work it skips is what is measured.)
if o["no-gc"] then collectgarbage("stop") end
local _, sys0 = env.cpu_times()
local cpu0, t0 = os.clock(), core.monotime()
local results = o["core-only"] and core_batch()
  or assert(client.webhooks.create_many(items, { concurrency = concurrency }))
local seconds, cpu = core.monotime() - t0, os.clock() - cpu0
if o["no-gc"] then collectgarbage("restart") end
local _, sys1 = env.cpu_times()
for i = 1, count do
  if not results[i].ok then error("create " .. i .. " failed: " .. tostring(results[i].error), 0) end
end
client:close()
-- Connections are the multi handle's business here: not counted.
env.report { connects = 0, cpu_seconds = format("%.6f", cpu), creates = count,
  seconds = format("%.6f", seconds), sys_seconds = format("%.6f", sys1 - sys0) }
