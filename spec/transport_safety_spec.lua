-- Transport safety of the C core: libcurl handles never cross a fork(),
-- nor are they pulled from under an attempt by a caller's finalizer, the
-- response says whether the request reached the wire, and every response
-- header byte counts against the header cap.
local helpers = require "spec.helpers"
local core = require "cerca.core"
local cjson = require "cjson"
local posix = require "spec_posix"  -- spec/tools/posix.c, built by the Makefile

local URL = "https://example.com/webhook"

-- The ways a child process is made: fork(), which runs the pthread_atfork
-- handlers, and the clone system call alone, which runs none (a program
-- that forks without the C library): neither may reuse what is the parent's.
local FORKS = { "fork", "raw_fork" }
-- Each scheme with each of them.
local SCHEME_FORKS = {}
for _, scheme in ipairs { "http", "https" } do
  for _, how in ipairs(FORKS) do SCHEME_FORKS[#SCHEME_FORKS + 1] = { scheme = scheme, how = how } end
end

-- Runs fn in a child made by `how` (default "fork"); returns the child's
-- exit status and what fn returned (a JSON-able table), passed back through
-- a temporary file. The child never returns into busted: it ends with
-- _exit, whatever happens.
local function in_child(fn, how)
  local path = os.tmpname()
  local pid = assert(posix[how or "fork"]())
  if pid == 0 then
    local ok, result = pcall(fn)
    local f = io.open(path, "w")
    if f then
      f:write(cjson.encode(ok and result or { failed = tostring(result) }))
      f:close()
    end
    posix._exit(ok and 0 or 1)
  end
  local status = assert(posix.waitpid(pid))
  local f = assert(io.open(path))
  local text = f:read("*a")
  f:close()
  os.remove(path)
  return status, text ~= "" and cjson.decode(text) or {}
end

-- The recorded requests whose URI names `fleet`.
local function requests_for(reqs, fleet)
  local found = {}
  for _, r in ipairs(reqs) do
    if r.uri == "/fleets/" .. fleet .. "/webhooks" then found[#found + 1] = r end
  end
  return found
end

local function connections(reqs)
  local set = {}
  for _, r in ipairs(reqs) do set[r.connection] = true end
  return set
end

local function fleets_of(results)
  local fleets = {}
  for i, r in ipairs(results) do
    fleets[i] = r.ok and r.subscription.fleetId or ("error: " .. tostring(r.error))
  end
  return fleets
end

describe("transport safety", function()
  local srv

  setup(function() srv = helpers.start_server() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  local function new_client(scheme)
    if scheme == "https" then
      return helpers.client(srv, { base_url = srv.https_url, ca_file = srv.ca_file })
    end
    return helpers.client(srv)
  end

  -- A request the C core can send as is.
  local function request(extra)
    local req = {
      method = "POST", url = srv.http_url .. "/fleets/f/webhooks",
      headers = { "Authorization: Bearer " .. srv.api_key, "Content-Type: application/json" },
      body = '{"url":"' .. URL .. '"}', timeout_ms = 5000, connect_timeout_ms = 2000,
    }
    for k, v in pairs(extra or {}) do req[k] = v end
    return req
  end

  -- Polls `m` until every token in `want` is done or `seconds` pass.
  local function poll_all(m, want, seconds)
    local got, deadline = {}, core.monotime() + seconds
    local missing = #want
    while missing > 0 and core.monotime() < deadline do
      for _, f in ipairs((m:poll(100))) do
        got[f.token] = f.response
        missing = missing - 1
      end
    end
    return got
  end

  describe("fork", function()
    it("asks the kernel for the process id once, not on every request (Linux 4.14 and later)", function()
      -- getpid() is a system call, about 1 µs on a virtual machine; fork
      -- detection needs the id on every attempt. The core keeps it in one
      -- page the kernel wipes in a child (VmFlags "wf" in smaps).
      local f = assert(io.open("/proc/sys/kernel/osrelease"))
      local major, minor = f:read("*a"):match("^(%d+)%.(%d+)")
      f:close()
      local wipes = tonumber(major) > 4 or (tonumber(major) == 4 and tonumber(minor) >= 14)
      local out, status = helpers.run_lua([[
        local function marked()
          local f = assert(io.open("/proc/self/smaps"))
          local n = 0
          for flags in f:read("*a"):gmatch("VmFlags:([^\n]*)") do
            if flags:find(" wf", 1, true) then n = n + 1 end
          end
          f:close()
          return n
        end
        local core = require "cerca.core"
        local before = marked()
        local session = assert(core.new_session {})
        -- An attempt that fails at once still checks for a fork.
        session:request { method = "GET", url = "http://127.0.0.1:1/", timeout_ms = 1000 }
        assert(core.uuid4())
        print(before, marked())
      ]])
      assert.are.equal(0, status, out)
      local before, after = out:match("^(%d+)%s+(%d+)")
      assert.are.equal("0", before, out)
      assert.are.equal(wipes and "1" or "0", after, out)
    end)

    for _, how in ipairs(FORKS) do
      it("a child never draws the idempotency keys its parent will draw (" .. how .. ")", function()
        -- The parent has random bytes pooled for its next keys: the child
        -- must not hand out the same ones.
        assert(core.uuid4())
        local status, got = in_child(function()
          return { keys = { core.uuid4(), core.uuid4(), core.uuid4() } }
        end, how)
        assert.are.equal(0, status, got.failed)
        -- The parent draws past the end of the pool it had at the fork
        -- (512 bytes, 32 keys), so that a generator that gave both
        -- processes the same next bytes is caught too.
        local mine = {}
        for _ = 1, 64 do mine[core.uuid4()] = true end
        local seen = {}
        for _, key in ipairs(got.keys) do
          assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", key)
          assert.is_nil(mine[key], "the child drew the parent's key " .. key)
          assert.is_nil(seen[key], "the child drew " .. key .. " twice")
          seen[key] = true
        end
      end)
    end

    for _, case in ipairs(SCHEME_FORKS) do
      local scheme, how = case.scheme, case.how
      local label = " (" .. scheme .. ", " .. how .. ")"
      it("a child never uses the session's kept-alive connection, nor closes it" .. label, function()
        local client = new_client(scheme)
        assert(client.webhooks.create("parent_1", { url = URL }))
        local status, got = in_child(function()
          local sub, err = client.webhooks.create("child_1", { url = URL })
          client:close()
          return sub and { fleet = sub.fleetId } or { err = tostring(err) }
        end, how)
        assert.are.equal(0, status, got.failed)
        assert.are.equal("child_1", got.fleet, got.err)
        local sub = assert(client.webhooks.create("parent_2", { url = URL }))
        assert.are.equal("parent_2", sub.fleetId)
        client:close()

        local reqs = srv:requests()
        assert.are.equal(3, #reqs)
        local first, child, last = requests_for(reqs, "parent_1")[1], requests_for(reqs, "child_1")[1],
          requests_for(reqs, "parent_2")[1]
        -- The child opened a connection of its own...
        assert.are_not.equal(first.connection, child.connection)
        -- ... and left the parent's alone (no close_notify, no stolen bytes).
        assert.are.equal(first.connection, last.connection)
        local fleets = {}
        for _, s in ipairs(srv:subscriptions()) do fleets[#fleets + 1] = s.fleetId end
        table.sort(fleets)
        assert.are.same({ "child_1", "parent_1", "parent_2" }, fleets)
      end)

      it("a child never uses create_many's kept-alive connections, nor closes them" .. label, function()
        local client = new_client(scheme)
        local function many(a, b)
          return client.webhooks.create_many {
            { fleet_id = a, params = { url = URL } }, { fleet_id = b, params = { url = URL } },
          }
        end
        assert.are.same({ "parent_1", "parent_2" }, fleets_of(many("parent_1", "parent_2")))
        local status, got = in_child(function()
          local fleets = fleets_of(many("child_1", "child_2"))
          client:close()
          return fleets
        end, how)
        assert.are.equal(0, status, got.failed)
        assert.are.same({ "child_1", "child_2" }, got)
        assert.are.same({ "parent_3", "parent_4" }, fleets_of(many("parent_3", "parent_4")))
        client:close()

        local reqs = srv:requests()
        assert.are.equal(6, #reqs)
        local before = connections(requests_for(reqs, "parent_1"))
        for c in pairs(connections(requests_for(reqs, "parent_2"))) do before[c] = true end
        for _, fleet in ipairs { "child_1", "child_2" } do
          assert.is_nil(before[requests_for(reqs, fleet)[1].connection], fleet .. " came on a parent's connection")
        end
        for _, fleet in ipairs { "parent_3", "parent_4" } do
          assert.is_true(before[requests_for(reqs, fleet)[1].connection], fleet .. " came on a new connection")
        end
        assert.are.equal(6, #srv:subscriptions())
      end)
    end

    it("a child's child never uses the connection of the child that made it", function()
      local client = new_client("http")
      assert(client.webhooks.create("parent_1", { url = URL }))
      local status, got = in_child(function()
        assert(client.webhooks.create("child_1", { url = URL }))
        local inner, grand = in_child(function()
          local sub, err = client.webhooks.create("grandchild_1", { url = URL })
          return sub and { fleet = sub.fleetId } or { err = tostring(err) }
        end)
        assert(inner == 0 and grand.fleet == "grandchild_1", grand.err or grand.failed)
        assert(client.webhooks.create("child_2", { url = URL }))
        client:close()
        return {}
      end)
      assert.are.equal(0, status, got.failed)
      client:close()

      local reqs = srv:requests()
      assert.are.equal(4, #reqs)
      local function on(fleet) return requests_for(reqs, fleet)[1].connection end
      -- The child keeps its own connection across its child's life...
      assert.are.equal(on("child_1"), on("child_2"))
      -- ... which the grandchild left alone, as the child left the parent's.
      assert.are_not.equal(on("child_1"), on("grandchild_1"))
      assert.are_not.equal(on("parent_1"), on("grandchild_1"))
      assert.are_not.equal(on("parent_1"), on("child_1"))
    end)

    it("transfers in flight at the fork stay the parent's; the child gets them back failed", function()
      srv:enqueue { action = "pass", delay = 0.5 }
      srv:enqueue { action = "pass", delay = 0.5 }
      local m = assert(core.new_multi {})
      -- The parent's transfers wait out the whole child (under valgrind,
      -- seconds): their time limit is not what is tested here.
      assert(m:add(1, request { url = srv.http_url .. "/fleets/parent_1/webhooks", timeout_ms = 60000 }))
      assert(m:add(2, request { url = srv.http_url .. "/fleets/parent_2/webhooks", timeout_ms = 60000 }))
      local deadline = core.monotime() + 5
      while #srv:requests() < 2 and core.monotime() < deadline do
        assert.are.same({}, (m:poll(50)))
      end
      assert.are.equal(2, #srv:requests())

      local status, got = in_child(function()
        local seen = {}
        for token, res in pairs(poll_all(m, { 1, 2 }, 5)) do
          seen[#seen + 1] = { token = token, error = res.error, status = res.status,
            request_sent = res.request_sent, message = res.error_message }
        end
        table.sort(seen, function(a, b) return a.token < b.token end)
        assert(m:add(3, request { url = srv.http_url .. "/fleets/child_1/webhooks" }))
        local own = poll_all(m, { 3 }, 5)[3]
        m:close()
        return { seen = seen, own = own and own.status }
      end)
      assert.are.equal(0, status, got.failed)
      assert.are.equal(2, #got.seen)
      for i, s in ipairs(got.seen) do
        assert.are.equal(i, s.token)
        assert.are.equal("internal", s.error)
        assert.are.equal(0, s.status)
        assert.is_true(s.request_sent)
        assert.matches("forked", s.message)
      end
      assert.are.equal(201, got.own)

      local mine = poll_all(m, { 1, 2 }, 5)
      m:close()
      assert.are.equal(201, mine[1] and mine[1].status, mine[1] and mine[1].error_message)
      assert.are.equal(201, mine[2] and mine[2].status)
      assert.are.equal("parent_1", mine[1].json.fleetId)
      assert.are.equal("parent_2", mine[2].json.fleetId)
      local reqs = srv:requests()
      assert.are.equal(3, #reqs)
      local parents = connections(requests_for(reqs, "parent_1"))
      for c in pairs(connections(requests_for(reqs, "parent_2"))) do parents[c] = true end
      assert.is_nil(parents[requests_for(reqs, "child_1")[1].connection])
    end)

    it("a session or multi closed in a child without use leaves the parent's connections alone (https)", function()
      local s = assert(core.new_session { ca_file = srv.ca_file })
      local m = assert(core.new_multi { ca_file = srv.ca_file })
      local url = srv.https_url .. "/fleets/f/webhooks"
      assert.are.equal(201, s:request(request { url = url }).status)
      assert(m:add(1, request { url = url }))
      assert.are.equal(201, poll_all(m, { 1 }, 5)[1].status)
      local status, got = in_child(function()
        s:close()
        m:close()
        return {}
      end)
      assert.are.equal(0, status, got.failed)
      assert.are.equal(201, s:request(request { url = url }).status)
      assert(m:add(2, request { url = url }))
      assert.are.equal(201, poll_all(m, { 2 }, 5)[2].status)
      s:close()
      m:close()
      local reqs = srv:requests()
      assert.are.equal(4, #reqs)
      assert.are.equal(reqs[1].connection, reqs[3].connection)
      assert.are.equal(reqs[2].connection, reqs[4].connection)
    end)
  end)

  describe("request_sent", function()
    local GARBAGE = "garbage without status line\r\n\r\n"

    it("garbage after the request was sent is a connection error, retried under one key", function()
      for _ = 1, 3 do srv:enqueue { action = "raw", body = GARBAGE } end
      local client = new_client("http")
      local sub, err = client.webhooks.create("fleet_1", { url = URL })
      client:close()
      assert.is_nil(sub)
      assert.are.equal("connection", err.type)
      assert.are.equal(3, err.attempts)
      local reqs = srv:requests()
      assert.are.equal(3, #reqs)
      for i = 2, 3 do
        assert.are.equal(reqs[1].headers["idempotency-key"], reqs[i].headers["idempotency-key"])
      end
      assert.is_string(reqs[1].headers["idempotency-key"])
    end)

    it("the C core says the request was sent and the answer is not HTTP", function()
      srv:enqueue { action = "raw", body = GARBAGE }
      local s = assert(core.new_session {})
      local res = s:request(request())
      s:close()
      assert.are.equal("connection", res.error)
      assert.is_true(res.request_sent)
      assert.are.equal(0, res.status)
      assert.matches("not HTTP", res.error_message)
    end)

    it("is false when the connection was refused", function()
      local s = assert(core.new_session {})
      local res = s:request(request { url = "http://127.0.0.1:" .. helpers.closed_port() .. "/fleets/f/webhooks" })
      s:close()
      assert.are.equal("connection", res.error)
      assert.is_false(res.request_sent)
    end)

    it("is false, and the error stays url, for a scheme nothing was sent to", function()
      local s = assert(core.new_session {})
      local res = s:request(request { url = "gopher://127.0.0.1/" })
      s:close()
      assert.are.equal("url", res.error)
      assert.is_false(res.request_sent)
    end)

    it("is true on an answer", function()
      local s = assert(core.new_session {})
      local res = s:request(request())
      s:close()
      assert.are.equal(201, res.status)
      assert.is_nil(res.error)
      assert.is_true(res.request_sent)
    end)

    it("is reported by multi:poll too", function()
      srv:enqueue { action = "raw", body = GARBAGE }
      local m = assert(core.new_multi {})
      assert(m:add(1, request()))
      assert(m:add(2, request { url = "http://127.0.0.1:" .. helpers.closed_port() .. "/fleets/f/webhooks" }))
      local got = poll_all(m, { 1, 2 }, 5)
      m:close()
      assert.are.equal("connection", got[1].error)
      assert.is_true(got[1].request_sent)
      assert.matches("not HTTP", got[1].error_message)
      assert.are.equal("connection", got[2].error)
      assert.is_false(got[2].request_sent)
    end)
  end)

  describe("response header cap", function()
    local SUBSCRIPTION = '{"id":"wh_0123456789abcdef01234567","fleetId":"fleet_1","url":"' .. URL .. '",'
      .. '"events":[],"enabled":true,"createdAt":"2025-01-01T00:00:00.000Z",'
      .. '"updatedAt":"2025-01-01T00:00:00.000Z","secret":"whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"}'
    local FINAL = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Final: yes\r\n"
      .. "Content-Length: " .. #SUBSCRIPTION .. "\r\n\r\n" .. SUBSCRIPTION

    -- n interim answers, each with about `size` bytes of headers.
    local function interims(n, size)
      local parts = {}
      for i = 1, n do
        parts[i] = "HTTP/1.1 100 Continue\r\nX-Interim: " .. i .. "\r\nX-Pad: " .. ("p"):rep(size) .. "\r\n\r\n"
      end
      return table.concat(parts)
    end

    local function attempt(raw)
      srv:enqueue { action = "raw", body = raw }
      local s = assert(core.new_session {})
      local res = s:request(request())
      s:close()
      return res
    end

    it("keeps only the final answer's headers after interim answers within the cap", function()
      local res = attempt(interims(3, 1000) .. FINAL)
      assert.is_nil(res.error)
      assert.are.equal(201, res.status)
      local headers = core.headers(res.raw_headers)
      assert.are.equal("yes", headers["x-final"])
      assert.is_nil(headers["x-interim"])
      assert.is_nil(headers["x-pad"])
      assert.are.equal("fleet_1", res.json.fleetId)

      srv:enqueue { action = "raw", body = interims(3, 1000) .. FINAL }
      local client = new_client("http")
      local sub, err = client.webhooks.create("fleet_1", { url = URL })
      client:close()
      assert.is_nil(err)
      assert.are.equal("fleet_1", sub.fleetId)
    end)

    -- A create whose answer (enqueued) has headers over the cap: refused as
    -- invalid_response naming the cap; returns the error.
    local function refused_over_header_cap()
      local client = new_client("http")
      local sub, err = client.webhooks.create("fleet_1", { url = URL })
      client:close()
      assert.is_nil(sub)
      assert.are.equal("invalid_response", err.type)
      assert.matches("^the response headers are larger than 65536 bytes", err.message)
      return err
    end

    it("counts the header bytes of every interim answer", function()
      local raw = interims(10, 10 * 1024) .. FINAL
      local res = attempt(raw)
      assert.are.equal("too_large", res.error)
      assert.matches("header", res.error_message)

      srv:enqueue { action = "raw", body = raw }
      local err = refused_over_header_cap()
      assert.is_true(err.request_sent)
      assert.are.equal(srv:requests()[2].headers["idempotency-key"], err.idempotency_key)
      assert.are.equal(2, #srv:requests())  -- one attempt each: not retried
    end)

    it("names one header line longer than libcurl holds (100 KB) as headers over the cap, not memory", function()
      -- libcurl holds a line whole before handing it over, up to 100 KB:
      -- past that it ends the transfer as "out of memory".
      for _, status in ipairs { "201 Created", "503 Service Unavailable" } do
        local raw = "HTTP/1.1 " .. status .. "\r\nX-Big: " .. ("a"):rep(110000) .. "\r\nContent-Type: application/json"
          .. "\r\nContent-Length: " .. #SUBSCRIPTION .. "\r\n\r\n" .. SUBSCRIPTION
        local res = attempt(raw)
        assert.are.equal("too_large", res.error)
        assert.matches("^the response headers are larger than 65536 bytes", res.error_message)
        srv:reset()
        srv:enqueue { action = "raw", body = raw }
        refused_over_header_cap()
        assert.are.equal(1, #srv:requests())  -- not retried
      end
    end)

    it("counts header lines that begin with HTTP/ inside one answer", function()
      local lines = { "HTTP/1.1 201 Created" }
      for i = 1, 100 do lines[#lines + 1] = "HTTP/1.1-Pad-" .. i .. ": " .. ("p"):rep(1024) end
      local raw = table.concat(lines, "\r\n") .. "\r\nContent-Type: application/json\r\n"
        .. "Content-Length: " .. #SUBSCRIPTION .. "\r\n\r\n" .. SUBSCRIPTION
      local res = attempt(raw)
      assert.are.equal("too_large", res.error)
    end)

    it("a header line that begins with HTTP/ does not wipe the headers before it", function()
      local raw = "HTTP/1.1 201 Created\r\nX-Request-Id: req_early\r\nHTTP/1.1-Odd: x\r\n"
        .. "Content-Type: application/json\r\nContent-Length: " .. #SUBSCRIPTION .. "\r\n\r\n" .. SUBSCRIPTION
      local res = attempt(raw)
      assert.is_nil(res.error)
      assert.are.equal("req_early", core.headers(res.raw_headers)["x-request-id"])
      assert.are.equal("req_early", core.header(res.raw_headers, "x-request-id"))
    end)
  end)

  -- Lua may run a finalizer (`__gc`) of the caller's at any allocation, the
  -- C core's included, while an attempt's answer is made into Lua values;
  -- one that uses the same client meanwhile must not take that answer,
  -- nor free what it is read from.
  describe("a caller's finalizer that uses the client during a create", function()
    local api

    setup(function() api = helpers.start_server { tls = false } end)
    teardown(function() if api then api:stop() end end)
    before_each(function() api:reset() end)

    -- In a fresh interpreter (the hook and the collector's settings stay
    -- out of the suite's), 48 creates for one fleet, a finalizer doing the
    -- scenario's action at the 1st, 2nd, ... 24th allocation inside the
    -- attempt in turn. Returns what the child saw: the outer creates'
    -- { id, fleetId }, their errors, what the finalizer's creates
    -- returned, how many times it ran.
    local CHILD = [[
      local helpers = require "spec.helpers"
      local core = require "cerca.core"
      local cerca = require "cerca"
      local cjson = require "cjson"
      local URL = "https://example.com/webhook"
      local scenario = os.getenv("SCENARIO")
      local client = assert(cerca.new { log_level = "off" })
      assert(client.webhooks.create("fleet_warm", { url = URL }))
      local inner = {}
      local function inner_create(fleet)
        local sub, err = client.webhooks.create(fleet, { url = URL })
        inner[#inner + 1] = sub and { id = sub.id, fleetId = sub.fleetId } or { error = tostring(err) }
      end
      local actions = {
        create = function() inner_create("fleet_inner") end,
        same_fleet = function() inner_create("fleet_1") end,
        close = function() client:close() end,
      }
      local fleet = scenario == "same_fleet" and "fleet_1" or "fleet_outer"
      local _, stop = helpers.finalizer_inside(helpers.methods(core.new_session()), "request", actions[scenario], 24)
      local subs, errs = {}, {}
      for _ = 1, 48 do
        local sub, err = client.webhooks.create(fleet, { url = URL })
        if sub then subs[#subs + 1] = { id = sub.id, fleetId = sub.fleetId } else errs[#errs + 1] = tostring(err) end
      end
      local firings = stop()
      client:close()
      io.write("RESULT ", cjson.encode { firings = firings, subs = subs, errs = errs, inner = inner }, "\n")
    ]]

    local function creates_beside(scenario)
      local out, status = helpers.run_lua(CHILD, { CERCA_API_KEY = api.api_key, CERCA_BASE_URL = api.http_url,
        SCENARIO = scenario })
      assert.are.equal(0, status, out)
      local result = assert(out:match("RESULT ([^\n]*)"), out)
      local seen = cjson.decode(result)
      assert.is_true(seen.firings > 0, "no finalizer ran inside an attempt")
      -- (cjson decodes an empty list as an empty object: both are {}.)
      return seen.subs, seen.errs, seen.inner
    end

    it("gets each create its own answer when the finalizer creates on the same client", function()
      local subs, errs, inner = creates_beside("create")
      assert.are.same({}, errs)
      assert.is_true(#subs > 0)
      for _, sub in ipairs(subs) do assert.are.equal("fleet_outer", sub.fleetId) end
      assert.is_true(#inner > 0)
      for _, sub in ipairs(inner) do assert.are.equal("fleet_inner", sub.fleetId, sub.error) end
    end)

    it("keeps the answer of a create whose client the finalizer closes", function()
      local subs, errs = creates_beside("close")
      assert.are.same({}, errs)
      for _, sub in ipairs(subs) do assert.are.equal("fleet_outer", sub.fleetId) end
      -- Every subscription made was handed to the caller, with its secret.
      assert.are.equal(#subs + 1, #api:subscriptions())
    end)

    it("hands every subscription made to exactly one create, the finalizer's creates of the same fleet too", function()
      local subs, errs, inner = creates_beside("same_fleet")
      assert.are.same({}, errs)
      local seen = { api:subscriptions()[1].id }  -- fleet_warm's
      for _, sub in ipairs(subs) do seen[#seen + 1] = sub.id end
      for _, sub in ipairs(inner) do seen[#seen + 1] = assert(sub.id, sub.error) end
      local made = {}
      for _, s in ipairs(api:subscriptions()) do made[#made + 1] = s.id end
      table.sort(made)
      table.sort(seen)
      assert.are.same(made, seen)
    end)
  end)
end)
