-- The code the spec configurations (spec/nginx/*.conf) run inside nginx:
-- creates against the reference server from the phases under test, each
-- outcome reported as JSON, through a location or the `results` shared
-- dict. Loaded by nginx's LuaJIT as `handlers` ($prefix/app/?.lua).
-- luacheck: globals ngx
local cerca = require "cerca"
local cjson = require "cjson.safe"

local URL = "https://example.com/webhook"

local _M = {}

-- A client from the environment (CERCA_API_KEY, CERCA_BASE_URL) running its
-- attempts in the thread pool `pool`; "none" runs them in the worker itself.
local function new_client(pool)
  local options = {}
  if pool == "none" then options.thread_pool = false else options.thread_pool = pool end
  return assert(cerca.new(options))
end

-- One create, as a plain table that encodes to JSON.
local function create(client, fleet, options)
  local sub, err, res = client.webhooks.create(fleet, { url = URL }, options)
  if sub then
    return { ok = true, id = sub.id, secret = sub.secret, attempts = res.attempts }
  end
  return { ok = false, type = err.type, message = err.message, attempts = err.attempts,
    idempotency_key = err.idempotency_key }
end

local function reply(value)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
end

-- adapter.conf ---------------------------------------------------------------

-- GET /create?pool=<thread pool>|none&fleet=<id>[&deadline=<s>]: one create.
function _M.create()
  local args = ngx.req.get_uri_args()
  local client = new_client(args.pool)
  local outcome = create(client, args.fleet or "fleet_1", args.deadline and { deadline = tonumber(args.deadline) })
  client:close()
  ngx.update_time()
  outcome.at = ngx.now()
  reply(outcome)
end

-- GET /in_gsub: a create from inside a string.gsub callback (a call from
-- C, where nothing can yield).
function _M.in_gsub()
  local client = new_client("cerca")
  local outcome
  string.gsub("x", "x", function() outcome = create(client, "fleet_gsub") end)
  client:close()
  reply(outcome)
end

-- GET /post?url=<url>: one cerca.post of "{}"; answers its status or error type.
function _M.post()
  local res, err = cerca.post(ngx.req.get_uri_args().url, "{}")
  reply(res and { status = res.status } or { type = err.type, message = err.message })
end

-- GET /refused_in_batch?pool=<thread pool>|none: request_many over 4
-- prepared calls, the second changed into one the C core refuses; answers
-- what each call ended with ("ok" or its error type), in order.
function _M.refused_in_batch()
  local client = new_client(ngx.req.get_uri_args().pool)
  local calls = {}
  for i = 1, 4 do
    calls[i] = assert(client:prepare("POST", "/fleets/fleet_batch_" .. i .. "/webhooks", { url = URL }))
  end
  calls[2].request.connect_timeout_ms = -1
  local got = { "none", "none", "none", "none" }
  client:request_many(calls, 2, function(k, res, err) got[k] = res and "ok" or err.type end)
  client:close()
  reply(got)
end

-- GET /sequential?n=<count>&pool=<thread pool>: n creates one after the
-- other with one client; answers how many succeeded and the first error.
function _M.sequential()
  local args = ngx.req.get_uri_args()
  local client = new_client(args.pool)
  local created, first_error = 0, nil
  for i = 1, tonumber(args.n) do
    local outcome = create(client, "fleet_seq_" .. i)
    if outcome.ok then
      created = created + 1
    elseif not first_error then
      first_error = outcome
    end
  end
  client:close()
  reply { created = created, first_error = first_error }
end

-- GET /many?n=<count>&concurrency=<c>[&stop_after=<results>|&stop_ms=<ms>]:
-- create_many over n fleets; answers how many succeeded, in input order.
-- With stop_after or stop_ms, opts.stop says to stop once that many
-- results came or that time passed; the answer then also counts the
-- results by error type, and how many had ended when stop first said so.
function _M.many()
  local args = ngx.req.get_uri_args()
  local client = new_client("cerca")
  local items = {}
  for i = 1, tonumber(args.n) do items[i] = { fleet_id = "fleet_many_" .. i, params = { url = URL } } end
  local opts = { concurrency = tonumber(args.concurrency) }
  local ended, ended_at_stop, t0 = 0, nil, ngx.now()
  if args.stop_after or args.stop_ms then
    opts.on_result = function() ended = ended + 1 end
    opts.stop = function()
      ngx.update_time()
      local yes = (args.stop_after and ended >= tonumber(args.stop_after))
        or (args.stop_ms and (ngx.now() - t0) * 1000 >= tonumber(args.stop_ms))
      if yes then ended_at_stop = ended_at_stop or ended end
      return yes
    end
  end
  local results = assert(client.webhooks.create_many(items, opts))
  local created, in_order, errors = 0, true, {}
  for i, r in ipairs(results) do
    if r.ok then
      created = created + 1
    else
      errors[r.error.type] = (errors[r.error.type] or 0) + 1
    end
    if not r.ok or r.subscription.fleetId ~= "fleet_many_" .. i then in_order = false end
  end
  client:close()
  if not opts.stop then return reply { created = created, in_order = in_order } end
  ngx.update_time()
  reply { created = created, errors = errors, ended_at_stop = ended_at_stop, seconds = ngx.now() - t0,
    first_error = results[1].error and tostring(results[1].error) }
end

-- The worker's event loop, watched from inside: a timer due every TICK
-- notes the longest gap between two of its runs. A worker that something
-- blocks (a call, a write, the collector) runs no timer meanwhile, so the
-- gap shows the stall whoever meets it.
local TICK = 0.01
local last_tick          -- when the timer last ran (or was made)
local longest, ended = 0, nil -- the longest gap since the last read, and when it ended
local since              -- the last read

-- Counts the gap from the last tick to `now`.
local function note_gap(now)
  if now - last_tick > longest then longest, ended = now - last_tick, now end
end

function _M.watch_loop()
  ngx.update_time()
  last_tick = ngx.now()
  assert(ngx.timer.every(TICK, function(premature)
    if premature then return end
    ngx.update_time()
    local now = ngx.now()
    note_gap(now)
    last_tick = now
  end))
end

-- GET /loop_gap: the longest gap since the last call, in seconds, with
-- when it ended (seconds after that call) and TICK; then starts over. The
-- gap still open counts: nginx may answer this before a tick that is
-- late, and a timer that stopped running reads as one long gap.
function _M.loop_gap()
  ngx.update_time()
  local now = ngx.now()
  note_gap(now)
  reply { gap = longest, ended = since and ended - since, tick = TICK }
  longest, ended, since = 0, nil, now
end

-- phases.conf ----------------------------------------------------------------

-- Runs a create from the current phase and keeps its outcome under the
-- phase's name; returns the outcome's JSON text.
function _M.record(phase)
  phase = phase or ngx.get_phase()
  local client = new_client()
  local outcome = create(client, "fleet_" .. phase)
  client:close()
  outcome.phase = ngx.get_phase()
  local text = cjson.encode(outcome)
  ngx.shared.results:set(phase, text)
  return text
end

-- init_worker: a create called directly (refused), and one from a timer.
function _M.init_worker()
  _M.record()
  assert(ngx.timer.at(0, function(premature)
    if not premature then _M.record() end
  end))
end

-- GET /results: every recorded outcome, by phase.
function _M.results()
  local dict = ngx.shared.results
  local all = {}
  for _, phase in ipairs(dict:get_keys(0)) do
    all[phase] = cjson.decode(dict:get(phase))
  end
  reply(all)
end

return _M
