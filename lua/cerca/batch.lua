--- Many calls at once over one curl multi handle, each call under the
-- policy of a single one (`cerca.call`): the same idempotency key, timeouts,
-- retries and error mapping, item by item. The attempts run concurrently
-- in the C core (one connection cache, at most `concurrency` transfers and
-- connections); a retry waits in a timer list while the other calls go on.
-- The plain runtime drives a batch through here; the nginx runtime uses
-- light threads instead (`cerca.nginx`).
-- @module cerca.batch

local core = require "cerca.core"

local pairs = pairs
local pcall = pcall
local select = select
local next = next
local min = math.min
local max = math.max
local now = core.monotime

local _M = {}

-- With nothing finishing, look again at least this often (ms).
local IDLE_POLL_MS = 1000
-- When the batch may be told to stop, ask at least this often (ms).
local STOP_POLL_MS = 100

--- Runs `calls` (key -> call, started in the order of `keys`), at most
-- `concurrency` at a time; calls `on_done(k, response)` or
-- `on_done(k, nil, err)` once per call, as each ends. `on_done` must not
-- raise (the caller wraps user callbacks).
-- @param multi the C core's multi handle
-- @param runtime what waits when nothing is in flight (`runtime:sleep`)
-- @param[opt] more adds calls to `calls` and their keys to `keys`, and
--   says whether others are to come. It is called between polls that do
--   not wait, so that the calls already started are sent and answered
--   while it works, until it says no.
-- @param[opt] stop says why the batch is to stop (a string), or nil; it is
--   asked between polls once `more` has said no. Then no further call is
--   started: the calls not started and those waiting to retry end
--   (`call:stop`), and the calls in flight run to the end of their
--   attempt.
function _M.over_multi(multi, calls, keys, concurrency, on_done, runtime, more, stop)
  local queue, waiting = {}, {}
  for i = 1, #keys do queue[i] = keys[i] end
  local queued_keys = #keys

  local head, in_flight, stopped = 1, 0, nil
  -- Retries whose wait is over, started before any call not yet started:
  -- behind them, a retry would wait for the whole rest of the batch, past
  -- its deadline.
  local due = {}
  -- Starts due retries, then queued calls, while there is room.
  local function fill()
    while in_flight < concurrency and (#due > 0 or head <= #queue) do
      local k
      if #due > 0 then
        k = table.remove(due, 1)
      else
        k = queue[head]
        head = head + 1
      end
      local c = calls[k]
      local request = c:next_request()
      if not request then
        on_done(k, nil, select(2, c:expire()))
      else
        -- A request the core refuses (it raises) ends its own call, as a
        -- single call's attempt would, not the batch and with it the
        -- transfers of the others in flight.
        local added, ok, add_why = pcall(multi.add, multi, k, request)
        if not added then
          on_done(k, nil, select(2, c:not_sent("internal", "the C core refused the request: " .. tostring(ok))))
        elseif ok then
          in_flight = in_flight + 1
        else
          on_done(k, nil, select(2, c:not_sent("connection", add_why)))
        end
      end
    end
  end
  local function take(finished, list)
    for i = 1, #finished do
      list[#list + 1] = finished[i]
      in_flight = in_flight - 1
    end
  end

  -- Ends every call not started, and every call waiting to retry.
  local function stop_the_rest()
    for i = head, #queue do
      local k = queue[i]
      on_done(k, nil, select(2, calls[k]:stop(stopped)))
    end
    head = #queue + 1
    for i = 1, #due do
      on_done(due[i], nil, select(2, calls[due[i]]:stop(stopped)))
    end
    due = {}
    for k in pairs(waiting) do
      waiting[k] = nil
      on_done(k, nil, select(2, calls[k]:stop(stopped)))
    end
  end

  while true do
    if stop and not more and not stopped then
      stopped = stop()
      if stopped then stop_the_rest() end
    end
    -- Retries whose wait is over are due, before the calls not started.
    local t, soonest = now(), nil
    for k, at in pairs(waiting) do
      if at <= t then
        waiting[k] = nil
        due[#due + 1] = k
      elseif not soonest or at < soonest then
        soonest = at
      end
    end
    fill()
    -- A retry that is due but finds every place taken waits for one only
    -- while its deadline allows: at the deadline it ends (as a single call
    -- would), not when a transfer of another call lets a place go.
    if #due > 0 then
      local kept, at_now = {}, now()
      for i = 1, #due do
        local k = due[i]
        local by, passed = calls[k]:deadline_left(at_now)
        if passed then
          on_done(k, nil, select(2, calls[k]:expire()))
        else
          kept[#kept + 1] = k
          if by and (not soonest or by < soonest) then soonest = by end
        end
      end
      due = kept
    end
    if in_flight == 0 and #due == 0 and head > #queue and not next(waiting) and not more then return end

    local timeout = IDLE_POLL_MS
    if soonest then timeout = max(0, min(timeout, (soonest - t) * 1000)) end
    if stop and timeout > STOP_POLL_MS then timeout = STOP_POLL_MS end
    if more then timeout = 0 end
    if in_flight == 0 then
      if timeout > 0 then runtime:sleep(timeout / 1000) end
    else
      local done = {}
      take(multi:poll(timeout), done)
      -- The freed places get their next calls, and those are sent, before
      -- the answers are read: a wave of answers read one by one would
      -- otherwise hold back the next wave of requests.
      if (#due > 0 or head <= #queue) and in_flight < concurrency then
        fill()
        take(multi:poll(0), done)
      end
      for i = 1, #done do
        local k = done[i].token
        local state, value = calls[k]:finish(done[i].response)
        if state == "retry" and stopped then state, value = calls[k]:stop(stopped) end
        if state == "retry" then
          waiting[k] = now() + value
        elseif state == "done" then
          on_done(k, value)
        else
          on_done(k, nil, value)
        end
      end
    end
    if more then
      if not more() then more = nil end
      for i = queued_keys + 1, #keys do queue[#queue + 1] = keys[i] end
      queued_keys = #keys
    end
  end
end

return _M
