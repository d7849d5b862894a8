-- The OpenResty adapter inside a real nginx (Debian's nginx with its Lua
-- module, the SDK built for LuaJIT), against the reference server, with the
-- curl command line as the client: the shipped example configuration as it
-- is, a worker that keeps serving while creates wait for the API, the phases
-- where a call is refused, and connection reuse. nginx's Lua is LuaJIT
-- whichever interpreter runs busted.
local helpers = require "spec.helpers"
local cerca = require "cerca"
local app = require "spec.nginx.app"
local launcher = require "spec.server.launcher"
local cjson = require "cjson"

local EXAMPLE = app.EXAMPLE
local DEBIAN_LOADER = app.DEBIAN_LOADER
local LISTEN = app.EXAMPLE_LISTEN
local URL = "https://example.com/webhook"
-- A server-named wait of 1 ms keeps retries fast where backoff is not the point.
local SOON = { ["Retry-After-Ms"] = "1" }
-- The contract's fields of a subscription, sorted.
local FIELDS = { "createdAt", "enabled", "events", "fleetId", "id", "secret", "updatedAt", "url" }

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

local function lines(text)
  local list = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do list[#list + 1] = line end
  return list
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- The message of a create refused in an nginx phase (lua/cerca/nginx.lua).
local function refused(phase)
  return "cerca cannot call the API in nginx's " .. phase .. " phase: it cannot wait for the network there "
    .. "without blocking the worker; run the call from a timer instead: ngx.timer.at(0, function() ... end)"
end

-- Configurations: the example with its port replaced, or a spec one.
local example_conf = app.example_conf

local function spec_conf(name)
  return function(port) return (read("spec/nginx/" .. name):gsub("@PORT@", port)) end
end

-- Polls `check` every 50 ms until it returns a true value, for up to `timeout` s.
local function eventually(timeout, check)
  local waited = 0
  while true do
    local value = check()
    if value or waited >= timeout then return value end
    helpers.sleep(0.05)
    waited = waited + 0.05
  end
end

local count_connections = helpers.distinct_connections

-- A ping the worker answered late: 100 ms, where it answers in about 1 ms.
-- So is a gap that long between two runs of the worker's timer (due every
-- 10 ms, see loop_gap).
local LATE = 0.1
-- CPU time the hypervisor may take from this machine during a run before
-- the run's late answers say nothing about the worker: half a late ping.
local STOLEN = 0.05

-- CPU time the hypervisor has taken from this machine, all CPUs, in
-- seconds: the steal column of /proc/stat, in USER_HZ (100 a second).
local function stolen()
  local f = io.open("/proc/stat")
  local line = f and f:read("*l") or ""
  if f then f:close() end
  local ticks = select(8, line:match("^cpu" .. string.rep("%s+(%d+)", 8)))
  return (tonumber(ticks) or 0) / 100
end

-- The worker's longest event-loop gap since the last call (spec/nginx/
-- adapter.conf's /loop_gap): { gap = s, ended = s after the last call,
-- tick = how often the timer that measures it is due, s }.
local function loop_gap(a)
  return cjson.decode(a:request("GET", "/loop_gap").body)
end

-- Asserts that the worker stayed responsive while a call waited, seen from
-- outside and from inside. `measure` runs the whole scenario (starts the
-- call, pings, checks the call's outcome) and returns the pings' answers.
-- Outside: each ping's first byte, counted from curl's start of the
-- request (connecting included), comes within LATE; a worker that the
-- call blocks, or that stalls at some point of it, delays the ping that
-- meets the stall. The first byte, not curl's total: curl then writes the
-- answer to disk, and other writes on the machine can hold that for
-- 100-200 ms with the first byte at 0.3 ms. Inside: the worker's timer
-- due every 10 ms never waited LATE, which catches a stall between pings
-- (and one at the call's end, when the worker writes its log line).
-- A virtual machine whose CPUs the hypervisor takes for a moment delays
-- both; the kernel accounts that time (steal): a run with a late answer
-- is measured once more only when the machine lost at least STOLEN to the
-- hypervisor during it, and the repeat must have none, whatever is stolen
-- then.
local function assert_prompt(a, what, measure)
  local function run()
    loop_gap(a)
    local before = stolen()
    local answers = measure()
    local loop = loop_gap(a)
    local late, worst = {}, 0
    for i, res in ipairs(answers) do
      if res.first_byte >= LATE then
        late[#late + 1] = string.format("ping %d: first byte at %.1f ms (connected at %.1f ms)",
          i, res.first_byte * 1000, res.connected * 1000)
      end
      worst = math.max(worst, res.first_byte)
    end
    if loop.gap >= LATE then
      late[#late + 1] = string.format("the worker's timer due every %.0f ms waited %.1f ms, ending %.0f ms "
        .. "into the run", loop.tick * 1000, loop.gap * 1000, loop.ended * 1000)
    end
    return { pings = #answers, late = late, worst = worst, loop = loop, lost = stolen() - before }
  end
  local function said(r)
    return string.format("%d late answer(s) of %d pings and the worker's timer, %.0f ms or more: %s; "
      .. "%.0f ms of CPU stolen meanwhile", #r.late, r.pings, LATE * 1000,
      table.concat(r.late, ", "), r.lost * 1000)
  end
  local r, first = run(), nil
  if #r.late > 0 and r.lost >= STOLEN then
    first = r
    print(string.format("%s: %s; measured once more", what, said(first)))
    r = run()
  end
  assert.are.equal(0, #r.late, string.format("%s: %s%s", what, said(r),
    first and "; in a repeat, after " .. said(first) or ""))
  return r
end

describe("nginx", function()
  local srv
  local running = {}  -- nginx instances not stopped yet
  local logs = {}     -- error.log of every instance, taken when it stops
  local issued = {}   -- every secret the reference server issued

  -- Every variable the SDK or the example reads is set as given or removed:
  -- a CERCA_* of the shell running busted must not leak into nginx.
  local function env(vars)
    local e = {
      CERCA_API_KEY = srv.api_key, CERCA_BASE_URL = srv.http_url, CERCA_CA_FILE = false,
      CERCA_LOG = "info", CERCA_BOOT_FLEET = false, CERCA_BOOT_URL = false, CERCA_WEBHOOK_SECRET = false,
    }
    for k, v in pairs(vars or {}) do e[k] = v end
    return e
  end

  -- `edits`: for the example, { from, to } changes of its text (see
  -- spec/nginx/app.lua's example_conf).
  local function start(conf, vars, files, setup_commands, edits)
    local a
    if conf == example_conf then
      -- The example as shipped (for Debian's loadable module, through the
      -- shipped loader, which includes it).
      a = app.start_example { env = env(vars), files = files, setup = setup_commands, edits = edits }
    else
      a = app.start { conf = function(port) return app.for_binary(conf(port)) end, env = env(vars),
        files = files, setup = setup_commands }
    end
    running[a] = true
    return a
  end

  local function stop(a)
    if not a or not running[a] then return end
    running[a] = nil
    logs[#logs + 1] = a:error_log()
    a:stop()
  end

  setup(function()
    srv = helpers.start_server()
  end)

  teardown(function()
    for a in pairs(running) do pcall(stop, a) end
    if srv then srv:stop() end
  end)

  -- The secrets the API issued, kept for the check of every log.
  local function keep_issued()
    for _, s in ipairs(srv:subscriptions()) do issued[#issued + 1] = s.secret end
  end

  after_each(keep_issued)

  -- The API emptied for a repeat within one spec, its secrets kept first.
  local function reset_api()
    keep_issued()
    srv:reset()
  end

  local function post(a, body)
    return a:request("POST", "/subscriptions", body)
  end

  local function decode(res)
    local ok, value = pcall(cjson.decode, res.body)
    assert(ok, "not JSON: " .. res.body)
    return value
  end

  -- A create through plain Lua against the same scripts, for comparison.
  local function plain_lua(scripts, fleet, url)
    srv:reset()
    for _, s in ipairs(scripts) do srv:enqueue(s) end
    local client = helpers.client(srv)
    local sub, err = client.webhooks.create(fleet, { url = url })
    client:close()
    srv:reset()
    return sub, err
  end

  describe("the example configuration, verbatim", function()
    local a

    setup(function()
      a = start(example_conf)
    end)

    teardown(function() stop(a) end)

    before_each(function() srv:reset() end)

    it("is the shipped file with the listen port changed, nothing else", function()
      local shipped, used = lines(read(EXAMPLE)), lines(read(a:path("conf/nginx.conf")))
      assert.are.equal(#shipped, #used)
      local differ = {}
      for i = 1, #shipped do
        if shipped[i] ~= used[i] then differ[#differ + 1] = i end
      end
      assert.are.equal(1, #differ)
      assert.are.equal("        " .. LISTEN, shipped[differ[1]])
      assert.are.equal("        listen 127.0.0.1:" .. a.port .. ";", used[differ[1]])
      if not app.lua_built_in() then
        assert.are.equal(read(DEBIAN_LOADER), read(a:path("conf/debian.conf")))
      end
    end)

    it("creates over HTTP: 201, the subscription with the secret the API stored", function()
      local res = post(a, '{"fleet_id":"fleet_abc123","url":"' .. URL .. '","events":[]}')
      assert.are.equal(201, res.status, res.body)
      assert.are.equal("1", res.headers["x-cerca-attempts"])
      assert.are.equal("application/json", res.headers["content-type"])
      local sub = decode(res)
      assert.are.same(FIELDS, sorted_keys(sub))
      -- An empty events list goes out and comes back as a list.
      assert.is_truthy(res.body:find('"events":[]', 1, true))
      local reqs = srv:requests()
      assert.are.equal(1, #reqs)
      assert.are.equal("/fleets/fleet_abc123/webhooks", reqs[1].uri)
      assert.is_truthy(reqs[1].body:find('"events":[]', 1, true))
      local stored = srv:subscriptions()
      assert.are.equal(1, #stored)
      assert.are.equal(stored[1].id, sub.id)
      assert.are.equal(stored[1].secret, sub.secret)
      assert.are.equal("fleet_abc123", sub.fleetId)
      assert.are.equal(URL, sub.url)
      assert.is_true(sub.enabled)
    end)

    it("creates over HTTPS with CERCA_CA_FILE", function()
      -- The workers run as nobody and cannot read srv.ca_file in the server's
      -- private directory: the same file goes into the nginx prefix.
      local https = start(example_conf, { CERCA_BASE_URL = srv.https_url, CERCA_CA_FILE = "@PREFIX@/ca.pem" },
        { ["ca.pem"] = srv.ca_file })
      finally(function() stop(https) end)
      local res = post(https, cjson.encode { fleet_id = "fleet_tls", url = URL })
      assert.are.equal(201, res.status, res.body)
      assert.are.equal("1", res.headers["x-cerca-attempts"])
      local reqs = srv:requests()
      assert.are.equal(1, #reqs)
      assert.are.equal("https", reqs[1].port)
      assert.are.equal(srv:subscriptions()[1].secret, decode(res).secret)
    end)

    it("without CERCA_CA_FILE, fails TLS verification as plain Lua does; nothing reaches the API", function()
      local https = start(example_conf, { CERCA_BASE_URL = srv.https_url })
      finally(function() stop(https) end)
      local res = post(https, cjson.encode { fleet_id = "fleet_tls", url = URL })
      assert.are.equal(502, res.status, res.body)
      local e = decode(res).error
      assert.are.equal("tls", e.type)
      assert.are.same({}, srv:requests())
      local client = helpers.client(srv, { base_url = srv.https_url })
      local _, err = client.webhooks.create("fleet_tls", { url = URL })
      client:close()
      assert.are.equal(err.message, e.message)
    end)

    -- The example answers { error = { type, message, status, request_id } }
    -- with 400, 500, 502 or 504; what the SDK returned must be what a plain
    -- Lua create returns for the same answers of the API.
    describe("maps errors as plain Lua does", function()
      local function both(scripts, input)
        for _, s in ipairs(scripts) do srv:enqueue(s) end
        local res = post(a, cjson.encode(input))
        local reqs = srv:requests()
        local _, err = plain_lua(scripts, input.fleet_id, input.url)
        local e = decode(res).error
        assert.are.equal(err.type, e.type)
        assert.are.equal(err.message, e.message)
        assert.are.equal(err.status, e.status)
        return res, e, reqs
      end

      it("401: authentication", function()
        local body = '{"error":{"type":"authentication_error","message":"Invalid API key"}}'
        local res, e, reqs = both({ { status = 401, body = body } }, { fleet_id = "fleet_1", url = URL })
        assert.are.equal(502, res.status)
        assert.are.equal("authentication", e.type)
        assert.are.equal("Invalid API key", e.message)
        assert.are.equal(401, e.status)
        assert.are.equal(1, #reqs)
      end)

      it("422: unprocessable_entity", function()
        local body = '{"error":{"type":"invalid_request_error","message":"url is not allowed","param":"url"}}'
        local res, e, reqs = both({ { status = 422, body = body } }, { fleet_id = "fleet_1", url = URL })
        assert.are.equal(502, res.status)
        assert.are.equal("unprocessable_entity", e.type)
        assert.are.equal("url is not allowed", e.message)
        assert.are.equal(422, e.status)
        assert.are.equal(1, #reqs)
      end)

      it("500 every time: server, after 3 attempts", function()
        local script = { status = 500, body = '{"error":{"message":"boom"}}', headers = SOON }
        local res, e, reqs = both({ script, script, script }, { fleet_id = "fleet_1", url = URL })
        assert.are.equal(502, res.status)
        assert.are.equal("server", e.type)
        assert.are.equal("boom", e.message)
        assert.are.equal(3, #reqs)
        for i = 2, 3 do
          assert.are.equal(reqs[1].headers["idempotency-key"], reqs[i].headers["idempotency-key"])
        end
        -- The warning of a call that failed after retries reaches error.log.
        assert.is_truthy(a:error_log():find("[warn]", 1, true))
        assert.is_truthy(a:error_log():find("cerca: POST /fleets/fleet_1/webhooks failed after 3 attempts: "
          .. "server (HTTP 500): boom", 1, true))
      end)

      it("invalid input: 400 invalid_request, nothing sent", function()
        local res, e, reqs = both({}, { fleet_id = "fleet_1", url = "http://x" })
        assert.are.equal(400, res.status)
        assert.are.equal("invalid_request", e.type)
        assert.are.same({}, reqs)
      end)
    end)

    describe("retries", function()
      it("503 with Retry-After-Ms, then 201: two attempts, one subscription", function()
        srv:enqueue { status = 503, body = "{}", headers = { ["Retry-After-Ms"] = "50" } }
        local res = post(a, cjson.encode { fleet_id = "fleet_1", url = URL })
        assert.are.equal(201, res.status, res.body)
        assert.are.equal("2", res.headers["x-cerca-attempts"])
        local reqs = srv:requests()
        assert.are.equal(2, #reqs)
        assert.are.equal(reqs[1].headers["idempotency-key"], reqs[2].headers["idempotency-key"])
        local stored = srv:subscriptions()
        assert.are.equal(1, #stored)
        assert.are.equal(stored[1].secret, decode(res).secret)
      end)

      it("cut off every time: 502 with the key and maybe_created; repeated with it, the one subscription", function()
        -- (Cut mid-body: libcurl sends no request again within an attempt,
        -- so the three attempts take exactly these three answers.)
        for _ = 1, 3 do srv:enqueue { action = "create_then_partial" } end
        local res = a:request("POST", "/subscriptions", cjson.encode { fleet_id = "fleet_1", url = URL })
        assert.are.equal(502, res.status, res.body)
        local e = decode(res).error
        assert.is_true(e.maybe_created)
        assert.are.equal(srv:requests()[1].headers["idempotency-key"], e.idempotency_key)
        local again = a:request("POST", "/subscriptions", cjson.encode { fleet_id = "fleet_1", url = URL }, nil,
          { ["Idempotency-Key"] = e.idempotency_key })
        assert.are.equal(201, again.status, again.body)
        local stored = srv:subscriptions()
        assert.are.equal(1, #stored)
        assert.are.equal(stored[1].secret, decode(again).secret)
      end)

      it("an answer lost after the create: the retry gets the same subscription", function()
        srv:enqueue { action = "create_then_drop" }
        local res = post(a, cjson.encode { fleet_id = "fleet_1", url = URL })
        assert.are.equal(201, res.status, res.body)
        -- Two requests under one key. Whether the second is our retry
        -- (X-Cerca-Attempts: 2) or libcurl's own re-send of a request whose
        -- kept-alive connection closed unanswered (1) depends on the
        -- connection the worker thread's session had: not asserted.
        local reqs = srv:requests()
        assert.are.equal(2, #reqs)
        assert.are.equal(reqs[1].headers["idempotency-key"], reqs[2].headers["idempotency-key"])
        assert.are.equal(reqs[1].body, reqs[2].body)
        local stored = srv:subscriptions()
        assert.are.equal(1, #stored)
        assert.are.equal(stored[1].id, decode(res).id)
        assert.are.equal(stored[1].secret, decode(res).secret)
      end)
    end)
  end)

  describe("the example's /deliveries receiver", function()
    local a
    local SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    setup(function()
      a = start(example_conf, { CERCA_WEBHOOK_SECRET = SECRET })
    end)

    teardown(function() stop(a) end)

    local sent = 0
    -- A delivery as the API sends it: a message id of its own each time.
    local function delivery(body, signed_body)
      local now = os.time()
      sent = sent + 1
      local id = "msg_nginx_" .. sent
      return { ["webhook-id"] = id, ["webhook-timestamp"] = tostring(now),
        ["webhook-signature"] = assert(cerca.webhooks.sign(signed_body or body, SECRET, id, now)) }
    end

    local function deliver(body, signed_body)
      return a:request("POST", "/deliveries", body, nil, delivery(body, signed_body))
    end

    it("answers 204 to a delivery signed with cerca.webhooks.sign", function()
      local res = deliver('{"type":"agent.created","data":{"id":"agent_1"}}')
      assert.are.equal(204, res.status, res.body)
    end)

    it("reads a body nginx buffered to a temporary file", function()
      local body = '{"type":"message.created","data":{"text":"' .. ("x"):rep(200 * 1024) .. '"}}'
      assert.are.equal(204, deliver(body).status)
      assert.is_truthy(a:error_log():find("buffered to a temporary file", 1, true))
    end)

    it("answers 401 and a short reason to a tampered delivery", function()
      local signed = '{"type":"agent.created","data":{"id":"agent_1"}}'
      local res = deliver(signed:gsub("agent_1", "agent_2"), signed)
      assert.are.equal(401, res.status)
      assert.are.equal("invalid_signature\n", res.body)
      res = a:request("POST", "/deliveries", signed)
      assert.are.equal(401, res.status)
      assert.are.equal("missing_header\n", res.body)
    end)

    it("refuses a replay: the same signed delivery passes once across two workers", function()
      -- Two workers, each answer naming its worker; each delivery on a
      -- connection of its own, so both workers take some, and the shared
      -- dict lets one of each pair through.
      local two = start(example_conf, { CERCA_WEBHOOK_SECRET = SECRET }, nil, nil, {
        { "\nworker_processes auto;", "\nworker_processes 2;" },
        { "location = /deliveries {", "location = /deliveries {\n add_header X-Worker $pid always;" },
      })
      local body = '{"type":"agent.created","data":{"id":"agent_1"}}'
      local workers, pairs_seen = {}, {}
      for _ = 1, 20 do
        local h = delivery(body)
        local pair = {}
        for k = 1, 2 do
          local res = two:request("POST", "/deliveries", body, nil, h)
          pair[k] = res.status
          workers[res.headers["x-worker"]] = true
        end
        pairs_seen[#pairs_seen + 1] = pair
      end
      stop(two)
      for _, pair in ipairs(pairs_seen) do assert.are.same({ 204, 409 }, pair) end
      local n = 0
      for _ in pairs(workers) do n = n + 1 end
      assert.are.equal(2, n, "the deliveries went to one worker only")
    end)

    it("never logs the secret", function()
      assert.is_nil(a:error_log():find(SECRET:sub(7), 1, true))
    end)
  end)

  describe("the example's start-up registration", function()
    it("makes one create, from one worker of several, and logs it with the secret redacted", function()
      srv:reset()
      local boot_url = "https://example.com/boot"
      local a = start(example_conf, { CERCA_BOOT_FLEET = "fleet_boot", CERCA_BOOT_URL = boot_url })
      finally(function() stop(a) end)
      local line = eventually(5, function() return a:error_log():match("[^\n]*cerca: start%-up subscription[^\n]*") end)
      assert.is_truthy(line, a:error_log())
      -- Leave time for a second create, were another worker to make one.
      helpers.sleep(0.5)
      local reqs = srv:requests()
      assert.are.equal(1, #reqs)
      assert.are.equal("/fleets/fleet_boot/webhooks", reqs[1].uri)
      local stored = srv:subscriptions()
      assert.are.equal(1, #stored)
      assert.are.equal(boot_url, stored[1].url)
      -- worker_processes auto: one worker per CPU, 2 here.
      local cpus = tonumber(launcher.capture("getconf _NPROCESSORS_ONLN"))
      local _, workers = a:error_log():gsub("start worker process %d+", "")
      assert.are.equal(cpus, workers)
      local secret = stored[1].secret
      assert.is_truthy(line:find("[notice]", 1, true), line)
      assert.is_truthy(line:find(stored[1].id, 1, true), line)
      assert.is_truthy(line:find("secret=whsec_\226\128\166" .. secret:sub(-4), 1, true), line)
      assert.is_nil(a:error_log():find(secret:sub(7), 1, true))
    end)
  end)

  describe("a one-worker nginx, creates from a content handler", function()
    local a

    setup(function()
      a = start(spec_conf("adapter.conf"))
    end)

    teardown(function() stop(a) end)

    before_each(function() srv:reset() end)

    -- Starts /create?<query> against an API that answers after 2 s, and
    -- returns once the API has the request (the create is in flight).
    local function slow_create(query)
      srv:enqueue { action = "pass", delay = 2 }
      local t0 = helpers.now()
      local pending = a:spawn("GET", "/create?" .. query)
      assert.is_truthy(eventually(2, function() return #srv:requests() == 1 end), "the create did not start")
      return pending, t0
    end

    it("answers /ping in under 100 ms while a create waits 2 s for the API", function()
      local pings, took = 20, nil
      local run = assert_prompt(a, "a create waiting 2 s", function()
        reset_api()
        local pending, t0 = slow_create("pool=cerca")
        local answers = {}
        for i = 1, pings do
          local res = a:request("GET", "/ping")
          assert.are.equal(200, res.status)
          answers[i] = res
          -- Spread over about 1.4 s, however slow this process is.
          helpers.sleep(math.max(0, t0 + i * 0.07 - helpers.now()))
        end
        -- The API answers 2 s after it got the request: every ping was made
        -- while the create was in flight.
        local last = helpers.now()
        local res = pending:wait()
        assert.are.equal(200, res.status)
        local outcome = decode(res)
        assert.is_true(outcome.ok, res.body)
        assert.is_true(last - t0 < 2, "the pings took too long to be all during the create")
        took = res.time
        return answers
      end)
      print(string.format("nginx non-blocking: worst /ping first byte %.1f ms (%d pings), worst timer gap %.1f ms "
        .. "(due every %.0f ms) during a %.1f s create", run.worst * 1000, pings, run.loop.gap * 1000,
        run.loop.tick * 1000, took))
    end)

    it("blocks the worker when the client runs without a thread pool (the contrast)", function()
      -- Both measures of assert_prompt see the stall.
      loop_gap(a)
      local pending = slow_create("pool=none")
      local worst = 0
      for _ = 1, 3 do worst = math.max(worst, a:request("GET", "/ping").first_byte) end
      local res = pending:wait()
      assert.is_true(decode(res).ok, res.body)
      local gap = loop_gap(a).gap
      print(string.format("nginx blocking contrast: worst /ping first byte %d ms, timer gap %d ms",
        math.floor(worst * 1000), math.floor(gap * 1000)))
      assert.is_true(worst > 1.5, "worst /ping " .. worst .. " s")
      assert.is_true(gap > 1.5, "the worker's timer gap " .. gap .. " s")
    end)

    it("writes one info line per attempt to error.log", function()
      local res = a:request("GET", "/create?pool=cerca&fleet=fleet_logged")
      assert.is_true(decode(res).ok, res.body)
      assert.is_truthy(a:error_log():find("cerca: POST /fleets/fleet_logged/webhooks status=201 duration_ms=%d+ "
        .. "attempt=1/3 request_id=req_%x+"))
    end)

    -- Attempts run in pooled Lua VMs of the thread pool; each VM keeps its
    -- libcurl session, so sequential creates share a kept-alive connection.
    for _, case in ipairs {
      { pool = "cerca", threads = 16, label = "" },
      { pool = "single", threads = 1, label = " (thread pool of 1)" },
    } do
      it("reuses connections over 100 sequential creates, pool of " .. case.threads, function()
        local res = a:request("GET", "/sequential?n=100&pool=" .. case.pool)
        assert.are.equal(200, res.status)
        assert.are.same({ created = 100 }, decode(res))
        local reqs = srv:requests()
        assert.are.equal(100, #reqs)
        local n = count_connections(reqs)
        print(string.format("nginx: 100 sequential creates used %d connection(s)%s", n, case.label))
        assert.is_true(n <= case.threads, n .. " connections")
      end)
    end

    it("refuses a create from inside a call from C (a gsub callback), sending nothing", function()
      -- The attempt would be handed to the thread pool and its answer never
      -- waited for: sent, with no result and no key.
      local res = decode(a:request("GET", "/in_gsub"))
      assert.is_false(res.ok)
      assert.are.equal("configuration", res.type)
      assert.matches("from inside a function that C code calls", res.message, 1, true)
      helpers.sleep(0.3)
      assert.are.equal(0, #srv:requests())
    end)

    it("ends only the call of a batch whose request the C core refuses, in the pool or the worker", function()
      for _, pool in ipairs { "cerca", "none" } do
        srv:reset()
        local got = decode(a:request("GET", "/refused_in_batch?pool=" .. pool))
        assert.are.same({ "ok", "internal", "ok", "ok" }, got, pool)
        assert.are.equal(3, #srv:subscriptions(), pool)
      end
    end)

    it("finishes a create in flight when nginx reloads (SIGHUP): the answer and its secret arrive", function()
      local pending = slow_create("pool=cerca&fleet=fleet_reload")
      local master = launcher.read_file(a:path("logs/nginx.pid")):match("%d+")
      assert(os.execute("kill -HUP " .. master))
      local res = pending:wait()
      assert.are.equal(200, res.status, res.body)
      local outcome = decode(res)
      assert.is_true(outcome.ok, res.body)
      assert.are.equal(srv:subscriptions()[1].secret, outcome.secret)
      -- The new worker serves.
      assert.is_truthy(eventually(5, function() return a:request("GET", "/ping").status == 200 end))
    end)

    it("runs more attempts at once than nginx has thread VMs (100): they wait for one, none fails", function()
      for _ = 1, 150 do srv:enqueue { action = "pass", delay = 0.2 } end
      local res = a:request("GET", "/many?n=150&concurrency=150", nil, 60)
      assert.are.same({ created = 150, in_order = true }, decode(res))
      assert.are.equal(150, #srv:subscriptions())
    end)

    it("counts the time an attempt waits for a thread of the pool against its deadline", function()
      -- One thread, four creates of a 1 s deadline against an API 2 s away:
      -- each ends about 1 s after it started, none after the others' turns.
      for _ = 1, 4 do srv:enqueue { action = "pass", delay = 2 } end
      local t0 = helpers.now()
      local pending = {}
      for i = 1, 4 do pending[i] = a:spawn("GET", "/create?pool=single&deadline=1&fleet=fleet_dl_" .. i) end
      for i = 1, 4 do
        local outcome = decode(pending[i]:wait())
        assert.is_false(outcome.ok)
        assert.are.equal("timeout", outcome.type)
        assert.is_true(outcome.at - t0 < 2, ("create %d ended %.1f s after the start"):format(i, outcome.at - t0))
      end
      -- Those sent (with what was left of their second) the API makes once
      -- its 2 s are over: waited for, so that the next spec starts from a
      -- quiet API.
      assert.is_truthy(eventually(5, function() return #srv:subscriptions() == #srv:requests() end))
      helpers.sleep(2.2)
    end)

    it("runs cerca.post in the thread pool too: the worker answers while it waits", function()
      assert_prompt(a, "a post waiting 2 s", function()
        reset_api()
        srv:enqueue { action = "pass", delay = 2 }
        local pending = a:spawn("GET", "/post?url=" .. srv.http_url .. "/fleets/fleet_post/webhooks")
        assert.is_truthy(eventually(2, function() return #srv:requests() == 1 end), "the post did not start")
        local answers = {}
        for i = 1, 5 do answers[i] = a:request("GET", "/ping") end
        local res = decode(pending:wait())
        assert.are.equal(401, res.status)
        return answers
      end)
    end)

    it("runs create_many concurrently, in order, without stalling the worker", function()
      -- Each create waits 0.3 s at the API: 12 one after another take 3.6 s,
      -- 4 at a time about 0.9 s.
      assert_prompt(a, "create_many, 4 at a time", function()
        reset_api()
        for _ = 1, 12 do srv:enqueue { action = "pass", delay = 0.3 } end
        local t0 = helpers.now()
        local pending = a:spawn("GET", "/many?n=12&concurrency=4")
        local answers = {}
        for i = 1, 8 do
          answers[i] = a:request("GET", "/ping")
          helpers.sleep(0.05)
        end
        local res = pending:wait()
        local elapsed = helpers.now() - t0
        assert.are.same({ created = 12, in_order = true }, decode(res))
        assert.are.equal(12, #srv:subscriptions())
        assert.is_true(elapsed < 2.5, "create_many took " .. elapsed .. " s")
        assert.is_true(count_connections(srv:requests()) <= 4)
        return answers
      end)
    end)

    it("stops create_many when opts.stop says so: those running end, the rest are cancelled unsent", function()
      for _ = 1, 12 do srv:enqueue { action = "pass", delay = 0.2 } end
      local res = decode(a:request("GET", "/many?n=12&concurrency=4&stop_after=4"))
      assert.is_true(res.ended_at_stop >= 4, tostring(res.ended_at_stop))
      -- Past the creates ended when it said so, only the four running then may end created.
      assert.is_true(res.created >= res.ended_at_stop and res.created <= res.ended_at_stop + 4,
        res.created .. " created")
      assert.are.same({ cancelled = 12 - res.created }, res.errors)
      assert.are.equal(res.created, #srv:requests())
      assert.are.equal(res.created, #srv:subscriptions())
    end)

    it("ends a create_many call waiting to retry when told to stop, without the wait", function()
      srv:enqueue { status = 503, body = "{}", headers = { ["Retry-After-Ms"] = "3000" } }
      local res = decode(a:request("GET", "/many?n=1&concurrency=1&stop_ms=300"))
      assert.are.same({ server = 1 }, res.errors)
      assert.matches("(not retried: the batch was stopped (opts.stop))", res.first_error, 1, true)
      assert.is_true(res.seconds < 2, res.seconds .. " s")
      assert.are.equal(1, #srv:requests())
    end)

    it("names the file nginx's worker user cannot read when the thread pool cannot load cerca", function()
      -- The SDK only in a folder only root can read: the master loads it
      -- (init_by_lua), the thread pool's Lua VMs, as nobody, cannot.
      local private = start(function(port)
        return (spec_conf("adapter.conf")(port)
          :gsub('lua_package_path "[^"]*"', 'lua_package_path "$prefix/private/?.lua;$prefix/private/?/init.lua;'
            .. '$prefix/app/?.lua;;"')
          :gsub('require "cerca"\n', 'require "cerca"; require "cerca.nginx"\n'))
      end, nil, nil, { "cp -R @PREFIX@/lua @PREFIX@/private", "chmod 700 @PREFIX@/private" })
      local outcome = decode(private:request("GET", "/create?pool=cerca"))
      stop(private)
      assert.is_false(outcome.ok)
      assert.are.equal("configuration", outcome.type)
      -- ($prefix ends with a slash: the path nginx makes holds "//".)
      assert.matches("nginx's worker user cannot read " .. private.prefix
        .. "/private/cerca/nginx_thread.lua (permission denied)", (outcome.message:gsub("//+", "/")), 1, true)
      assert.are.same({}, srv:requests())
    end)

    it("refuses a thread pool nginx does not have: configuration, naming the directive", function()
      local res = a:request("GET", "/create?pool=missing")
      local outcome = decode(res)
      assert.is_false(outcome.ok)
      assert.are.same({}, srv:requests())
      assert.are.equal("configuration", outcome.type)
      assert.are.equal('nginx has no thread pool "missing": add `thread_pool missing threads=16;` '
        .. "to the main context of nginx.conf", outcome.message)
    end)
  end)

  describe("phases", function()
    local results, reqs

    setup(function()
      srv:reset()
      local a = start(spec_conf("phases.conf"))
      local ok, err = pcall(function()
        for _, path in ipairs { "/set", "/filters", "/log" } do
          assert.are.equal(200, a:request("GET", path).status)
        end
        -- log_by_lua and the timer run after their answer: wait for them.
        results = eventually(5, function()
          local all = cjson.decode(a:request("GET", "/results").body)
          if all.log and all.timer then return all end
        end)
        assert(results, "the log phase or the timer never reported: " .. a:error_log())
        reqs = srv:requests()
      end)
      stop(a)
      assert(ok, err)
    end)

    it("init_by_lua (the master): a blocking create succeeds", function()
      assert.is_true(results.init.ok, cjson.encode(results.init))
      assert.are.equal("init", results.init.phase)
      assert.are.equal("/fleets/fleet_init/webhooks", reqs[1].uri)
    end)

    it("a timer started in init_worker: the create succeeds", function()
      assert.is_true(results.timer.ok, cjson.encode(results.timer))
      assert.are.equal("/fleets/fleet_timer/webhooks", reqs[2].uri)
    end)

    for _, phase in ipairs { "init_worker", "set", "header_filter", "body_filter", "log" } do
      it(phase .. ": refused with a configuration error that says to use a timer", function()
        local r = results[phase]
        assert.are.same({ ok = false, phase = phase, type = "configuration", attempts = 0,
          message = refused(phase) }, r)
      end)
    end

    it("nothing but the two allowed creates reached the API", function()
      assert.are.equal(2, #reqs)
    end)
  end)

  -- Last: every nginx above has stopped and left its error.log here.
  describe("error logs", function()
    it("never hold the API key or a secret the API issued", function()
      assert.is_true(#logs >= 6 and #issued >= 200, #logs .. " logs, " .. #issued .. " secrets")
      for _, log in ipairs(logs) do
        assert.is_nil(log:find(srv.api_key, 1, true))
        for _, secret in ipairs(issued) do
          assert.is_nil(log:find(secret, 1, true))
          assert.is_nil(log:find(secret:sub(7), 1, true))
        end
      end
    end)
  end)
end)
