--- Many API calls at once, each under the policy of a single call
-- (`cerca.call`): the same validation, idempotency key, timeouts, retries
-- and error mapping, item by item.
--
-- In plain Lua the attempts run concurrently in the C core (curl multi:
-- one connection cache, at most `concurrency` transfers and connections);
-- retries wait in a timer list while the other calls go on. Inside nginx,
-- `concurrency` light threads each run calls one after another through
-- the thread pool, as a single create does.
-- @module cerca.batch

local call = require "cerca.call"
local clock = require "cerca.clock"
local errors = require "cerca.errors"
local transport = require "cerca.transport"

local pairs = pairs
local select = select
local ipairs = ipairs
local next = next
local min = math.min
local max = math.max

local _M = {}

-- With nothing finishing, look again at least this often (ms).
local IDLE_POLL_MS = 1000

local function run_multi(client, multi, specs, concurrency, on_done)
  local calls, queue, waiting = {}, {}, {}
  for k, spec in ipairs(specs) do
    local c, err = call.new(client, spec[1], spec[2], spec[3], spec[4])
    if c then
      calls[k] = c
      queue[#queue + 1] = k
    else
      on_done(k, nil, err)
    end
  end

  local head, in_flight = 1, 0
  while true do
    -- Retries whose wait is over go to the back of the queue.
    local now, soonest = clock.now(), nil
    for k, at in pairs(waiting) do
      if at <= now then
        waiting[k] = nil
        queue[#queue + 1] = k
      elseif not soonest or at < soonest then
        soonest = at
      end
    end
    while in_flight < concurrency and head <= #queue do
      local k = queue[head]
      head = head + 1
      local request = calls[k]:next_request()
      if not request then
        on_done(k, nil, select(2, calls[k]:expire()))
      else
        local ok, add_why = multi:add(k, request)
        if ok then
          in_flight = in_flight + 1
        else
          -- Never sent: not an attempt; the call ends as any other does.
          calls[k].attempt = calls[k].attempt - 1
          on_done(k, nil, select(2, calls[k]:_give_up(errors.new("connection", add_why))))
        end
      end
    end
    if in_flight == 0 and head > #queue and not next(waiting) then return end

    local timeout = IDLE_POLL_MS
    if soonest then timeout = max(0, min(timeout, (soonest - now) * 1000)) end
    if in_flight == 0 then
      clock.sleep(timeout / 1000)
    else
      local finished = multi:poll(timeout)
      for i = 1, #finished do
        local k = finished[i].token
        in_flight = in_flight - 1
        local state, value = calls[k]:finish(finished[i].response)
        if state == "retry" then
          waiting[k] = clock.now() + value
        elseif state == "done" then
          on_done(k, value)
        else
          on_done(k, nil, value)
        end
      end
    end
  end
end

local function run_light_threads(client, specs, concurrency, on_done)
  local taken = 0
  local function worker()
    while taken < #specs do
      taken = taken + 1
      local k, spec = taken, specs[taken]
      local value, err = client:request(spec[1], spec[2], spec[3], spec[4])
      on_done(k, value, err)
    end
  end
  local threads = {}
  for i = 1, min(concurrency, #specs) do threads[i] = ngx.thread.spawn(worker) end
  for i = 1, #threads do ngx.thread.wait(threads[i]) end
end

--- Runs `specs` (a list of `{ method, path, body, options }`), at most
-- `concurrency` at a time; calls `on_done(k, response)` or
-- `on_done(k, nil, err)` once per spec, as each ends. `on_done` must not
-- raise (the caller wraps user callbacks).
function _M.run(client, specs, concurrency, on_done)
  if #specs == 0 then return end
  local refused = transport.context_error()
  if refused then
    for k = 1, #specs do on_done(k, nil, errors.new("configuration", refused, { attempts = 0 })) end
    return
  end
  if transport.in_nginx() then
    return run_light_threads(client, specs, concurrency, on_done)
  end
  local multi, why, closes_seen = transport.take_multi(client, concurrency)
  if not multi then
    for k = 1, #specs do on_done(k, nil, errors.new("connection", why, { attempts = 0 })) end
    return
  end
  -- The batch owns the handle while it runs: a client:close() from a
  -- callback cannot pull it from under transfers in flight. On any way out,
  -- the handle goes back to the client, or is closed if it cannot be kept.
  local ok, err = pcall(run_multi, client, multi, specs, concurrency, on_done)
  transport.give_back_multi(client, multi, closes_seen, not ok)
  if not ok then error(err, 0) end
end

return _M
