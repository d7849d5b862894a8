--- create_many, timed inside the process. Run by bench/run.lua (from the
-- repository root) under lua5.4:
--
--   bench/create_many.lua --url URL --key KEY --count N --concurrency C
--
-- N creates (one per fleet) through one create_many with C in flight; the
-- server answers each after its configured delay. Prints
--
--   RESULT connects=0 cpu_seconds=T creates=N seconds=S sys_seconds=K
--
-- S is the wall time of the whole batch, T its CPU time and K the part of
-- T spent in the kernel (from /proc, in 10 ms ticks: a share, not a
-- count). Any failed create aborts the run.
local env = require "bench.env"
local cerca = require "cerca"
local core = require "cerca.core"

local o = env.options(arg)
local count = tonumber(o.count) or error("--count is required", 0)
local concurrency = tonumber(o.concurrency) or error("--concurrency is required", 0)

local client = assert(cerca.new { api_key = o.key, base_url = o.url, log_level = "off", max_retries = 0 })
local items = {}
for i = 1, count do items[i] = { fleet_id = "fleet_many_" .. i, params = { url = "https://example.com/webhook" } } end

local _, sys0 = env.cpu_times()
local cpu0, t0 = os.clock(), core.monotime()
local results = assert(client.webhooks.create_many(items, { concurrency = concurrency }))
local seconds, cpu = core.monotime() - t0, os.clock() - cpu0
local _, sys1 = env.cpu_times()
for i = 1, count do
  if not results[i].ok then error("create " .. i .. " failed: " .. tostring(results[i].error), 0) end
end
client:close()
-- Connections are the multi handle's business here: not counted.
env.report { connects = 0, cpu_seconds = string.format("%.6f", cpu), creates = count,
  seconds = string.format("%.6f", seconds), sys_seconds = string.format("%.6f", sys1 - sys0) }
