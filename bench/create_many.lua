--- create_many, timed inside the process. Run by bench/run.lua (from the
-- repository root) under lua5.4:
--
--   bench/create_many.lua --url URL --key KEY --count N --concurrency C
--     [--core-only | --no-gc | --incremental | --stalls]
--
-- N creates (one per fleet) through one create_many with C in flight; the
-- server answers each after its configured delay. With --core-only, the
-- same creates go through the C core's multi handle alone, driven by the
-- smallest loop that keeps C in flight: what the batch costs without the
-- Lua layer (no checks, no canonical body per item, no retry policy, no
-- redaction). With --no-gc, the library's batch runs with Lua's garbage
-- collector stopped (started again after it): what the collector's work
-- costs the batch. A measurement, not a way to run: memory then grows with
-- every create. With --incremental, the collector runs in incremental mode
-- (`collectgarbage("incremental")`) instead of the generational mode the
-- lua5.4 interpreter starts in. With --stalls, the batch also records the
-- stretches it spends away from the network (from the return of one poll
-- of the multi handle to the start of the next: Lua's work, the
-- collector's included), Lua's heap before and after the longest, and the
-- interval (between two polls, or one poll, its wait included) in which
-- the heap fell most: where the largest collection seen ran. Prints
--
--   RESULT connects=0 cpu_seconds=T creates=N seconds=S sys_seconds=K
--     [longest_stall_ms=L stall_heap_from_kib=A stall_heap_to_kib=B stalls_over_2ms=M stalls_over_2ms_ms=D
--      fall_ms=F fall_from_kib=C fall_to_kib=E fall_in_poll=0|1]
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

-- The stretches away from the network, when asked for: the multi handle's
-- poll method (every handle's) is wrapped before the batch starts. Lua's
-- heap is read at each poll's start and end: a fall marks an interval in
-- which the collector ran, between two polls or inside one (a poll makes
-- the answers' tables, and an allocation there may start a collection).
local stalls
if o.stalls then
  stalls = { longest = 0, from = 0, to = 0, over = 0, over_seconds = 0,
    fall = 0, fall_seconds = 0, fall_from = 0, fall_to = 0, fall_in_poll = 0 }
  local probe = assert(core.new_multi {})
  local methods = getmetatable(probe).__index
  probe:close()
  local heap_kib = collectgarbage
  local function saw(seconds, from, to, in_poll)
    if from - to > stalls.fall then
      stalls.fall, stalls.fall_seconds, stalls.fall_from, stalls.fall_to = from - to, seconds, from, to
      stalls.fall_in_poll = in_poll
    end
  end
  local poll, left_at, heap_then = methods.poll, nil, nil
  methods.poll = function(m, timeout)
    local t, heap = core.monotime(), heap_kib("count")
    if left_at then
      local away = t - left_at
      if away > stalls.longest then stalls.longest, stalls.from, stalls.to = away, heap_then, heap end
      if away > 0.002 then stalls.over, stalls.over_seconds = stalls.over + 1, stalls.over_seconds + away end
      saw(away, heap_then, heap, 0)
    end
    local finished, running = poll(m, timeout)
    left_at, heap_then = core.monotime(), heap_kib("count")
    saw(left_at - t, heap, heap_then, 1)
    return finished, running
  end
end

-- (Set before the clock starts; the work it skips is what is measured.)
if o["no-gc"] then collectgarbage("stop") end
if o.incremental then collectgarbage("incremental") end
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
local fields = { connects = 0, cpu_seconds = format("%.6f", cpu), creates = count,
  seconds = format("%.6f", seconds), sys_seconds = format("%.6f", sys1 - sys0) }
if stalls then
  fields.longest_stall_ms = format("%.3f", stalls.longest * 1000)
  fields.stall_heap_from_kib = format("%.0f", stalls.from)
  fields.stall_heap_to_kib = format("%.0f", stalls.to)
  fields.stalls_over_2ms = stalls.over
  fields.stalls_over_2ms_ms = format("%.3f", stalls.over_seconds * 1000)
  fields.fall_ms = format("%.3f", stalls.fall_seconds * 1000)
  fields.fall_from_kib = format("%.0f", stalls.fall_from)
  fields.fall_to_kib = format("%.0f", stalls.fall_to)
  fields.fall_in_poll = stalls.fall_in_poll
end
env.report(fields)
