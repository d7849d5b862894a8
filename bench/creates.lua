--- Sequential creates with cerca, timed inside the process. Run by
-- bench/run.lua (from the repository root) under lua5.4 or luajit:
--
--   bench/creates.lua --url URL --key KEY --count N [--warmup W] [--ca FILE]
--                     [--new-client | --core-only | --decode-only] [--rss-after K] [--latencies]
--
-- W untimed creates first (the connection is opened, LuaJIT compiles its
-- traces), then N timed ones, each `create("fleet_bench", PARAMS)`. Prints
--
--   RESULT connects=C cpu_seconds=T creates=N seconds=S
--
-- S is the wall time of the timed creates, T the process's CPU time over
-- them, C the number of connections libcurl opened meanwhile.
--   --new-client  a new client for each create, closed after it: a new
--                 connection (and TLS handshake) per call
--   --core-only   no Lua layer: the C core's session:request in a loop, with
--                 the request cerca would send (a fresh Idempotency-Key each
--                 time) and the answer decoded, but nothing checked or mapped
--   --decode-only no HTTP: one answer of the server is fetched, then each
--                 "create" is the C core's decode of it (for callgrind: the
--                 part of the C core's cost that is decoding)
--   --rss-after K memory mode: also reports VmRSS (KiB) after K and after N
--                 creates (the warm-up counted in neither)
--   --latencies   also reports the median, 99th percentile and maximum of
--                 the single creates' durations (a check, not a throughput
--                 figure: it reads the clock twice per create)
-- Any failed create aborts the run with a message.
local env = require "bench.env"
local cerca = require "cerca"
local core = require "cerca.core"

local now = core.monotime
local cpu_now = os.clock
local format = string.format

local o = env.options(arg)
local count = tonumber(o.count) or error("--count is required", 0)
local warmup = tonumber(o.warmup) or 0
local rss_after = tonumber(o["rss-after"])

-- bench/ceiling.c sends the same body.
local FLEET = "fleet_bench"
local PARAMS = { url = "https://example.com/webhook", events = { "agent.created", "thread.completed" } }

local CLIENT_OPTIONS = {
  api_key = o.key,
  base_url = o.url,
  ca_file = o.ca,
  log_level = "off",
  -- Every create must succeed at the first attempt: a retry would hide a
  -- failure inside the timing.
  max_retries = 0,
}

-- Connections opened, from the C core's answers (`new_connects`): the
-- client's runtime (cerca.runtime) is given a counting attempt. The wrapper
-- costs one Lua call per create, far below the noise of a round trip.
local attempts, connects = 0, 0
local function counted(client)
  local rt = client._runtime
  local attempt = rt.attempt
  rt.attempt = function(self, request)
    local res = attempt(self, request)
    attempts = attempts + 1
    connects = connects + (res.new_connects or 0)
    return res
  end
  return client
end

local function check(sub, err)
  if not sub then error("create failed: " .. tostring(err), 0) end
end

local create
if o["core-only"] then
  local client = assert(cerca.new(CLIENT_OPTIONS))
  local session = assert(core.new_session { ca_file = client.ca_file, user_agent = client.user_agent })
  local request = {
    method = "POST",
    url = client.base_url .. "/fleets/" .. FLEET .. "/webhooks",
    headers = { "Authorization: Bearer " .. o.key, "Content-Type: application/json", "Accept: application/json" },
    body = assert(core.encode(require("cerca.webhooks").body(PARAMS))),
    timeout_ms = 60000,
    connect_timeout_ms = 10000,
    max_body = 1024 * 1024,
    -- As the client hands it for a plain-HTTP base_url: no proxy, so
    -- libcurl does not look the proxy variables up on every transfer.
    no_proxy = client.base_url:find("^[Hh][Tt][Tt][Pp]://") ~= nil,
  }
  create = function()
    -- As the Lua layer hands it over: the key in its own field.
    request.idempotency_key = core.uuid4()
    local res = session:request(request)
    attempts = attempts + 1
    connects = connects + res.new_connects
    if res.status ~= 201 or type(res.json) ~= "table" then
      error(format("create failed: HTTP %d %s", res.status, tostring(res.error_message)), 0)
    end
  end
elseif o["decode-only"] then
  local client = assert(cerca.new(CLIENT_OPTIONS))
  local session = assert(core.new_session { ca_file = client.ca_file, user_agent = client.user_agent })
  local answer = session:request {
    method = "POST",
    url = client.base_url .. "/fleets/" .. FLEET .. "/webhooks",
    headers = { "Authorization: Bearer " .. o.key, "Content-Type: application/json", "Accept: application/json" },
    idempotency_key = core.uuid4(),
    body = assert(core.encode(require("cerca.webhooks").body(PARAMS))),
  }
  session:close()
  if answer.status ~= 201 then error("create failed: HTTP " .. answer.status, 0) end
  local body, decode = answer.body, core.decode
  create = function()
    attempts = attempts + 1
    if type(decode(body)) ~= "table" then error("the answer did not decode", 0) end
  end
elseif o["new-client"] then
  create = function()
    local client = counted(assert(cerca.new(CLIENT_OPTIONS)))
    check(client.webhooks.create(FLEET, PARAMS))
    client:close()
  end
else
  local client = counted(assert(cerca.new(CLIENT_OPTIONS)))
  create = function()
    check(client.webhooks.create(FLEET, PARAMS))
  end
end

-- Resident memory now, in KiB, after a full collection: the figure is then
-- what stays allocated, not where the collector happens to be in its cycle.
local function rss_kib()
  collectgarbage("collect")
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

for _ = 1, warmup do create() end

local result = { creates = count }
local started_attempts, started_connects = attempts, connects
local started, cpu_started = now(), cpu_now()
if rss_after then
  for _ = 1, rss_after do create() end
  result.rss_kib_first = rss_kib()
  for _ = rss_after + 1, count do create() end
  result.rss_kib_last = rss_kib()
elseif o.latencies then
  local took = {}
  for i = 1, count do
    local t0 = now()
    create()
    took[i] = now() - t0
  end
  table.sort(took)
  local function at(q) return took[math.max(1, math.ceil(q * count))] or 0 end
  result.p50_ms = format("%.3f", at(0.5) * 1000)
  result.p99_ms = format("%.3f", at(0.99) * 1000)
  result.max_ms = format("%.3f", (took[count] or 0) * 1000)
else
  for _ = 1, count do create() end
end
result.seconds = format("%.6f", now() - started)
result.cpu_seconds = format("%.6f", cpu_now() - cpu_started)
-- "unknown" when the wrapper never ran (calls no longer pass through
-- transport.attempt): better no figure than a wrong zero.
result.connects = (attempts > started_attempts or count == 0) and (connects - started_connects) or "unknown"
env.report(result)
