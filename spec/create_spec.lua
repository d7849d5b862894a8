-- webhooks.create against the reference server: what goes on the wire,
-- what comes back, and how every kind of failure is reported.
local helpers = require "spec.helpers"
local cerca = require "cerca"
local cjson = require "cjson"
local cerca_core = require "cerca.core"

local URL = "https://example.com/webhook"

describe("webhooks.create", function()
  local srv, client

  setup(function()
    srv = helpers.start_server()
    client = helpers.client(srv)
  end)

  teardown(function()
    if client then client:close() end
    if srv then srv:stop() end
  end)

  before_each(function() srv:reset() end)

  local function only_request()
    local reqs = srv:requests()
    assert.are.equal(1, #reqs)
    return reqs[1]
  end

  describe("on the wire", function()
    it("sends one POST with exactly the expected headers", function()
      local c = helpers.client(srv, { headers = { ["X-Team"] = "ops" } })
      assert(c.webhooks.create("fleet_abc123", { url = URL }))
      c:close()
      local req = only_request()
      assert.are.equal("POST", req.method)
      assert.are.equal("/fleets/fleet_abc123/webhooks", req.uri)
      local names = {}
      for name in pairs(req.headers) do names[#names + 1] = name end
      table.sort(names)
      assert.are.same({ "accept", "authorization", "content-length", "content-type", "host",
        "idempotency-key", "user-agent", "x-team" }, names)
      assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", req.headers["idempotency-key"])
      assert.are.equal("Bearer " .. helpers.API_KEY, req.headers.authorization)
      assert.are.equal("application/json", req.headers["content-type"])
      assert.are.equal("application/json", req.headers.accept)
      assert.are.equal(tostring(#req.body), req.headers["content-length"])
      assert.are.equal("ops", req.headers["x-team"])
      assert.are.equal(srv.http_url:match("//(.*)$"), req.headers.host)
      local lua = helpers.abi == "luajit" and "Lua 5%.1; LuaJIT [%w%.%-]+"
        or ("Lua " .. _VERSION:match("%d+%.%d+"):gsub("%.", "%%."))
      assert.matches("^cerca%-lua/0%.1%.0 %(" .. lua .. "; libcurl %d+%.%d+%.%d+%)$", req.headers["user-agent"])
    end)

    it("omits events when none are given", function()
      assert(client.webhooks.create("fleet_1", { url = URL }))
      local req = only_request()
      assert.are.same({ url = URL }, cjson.decode(req.body))
      assert.is_nil(req.body:find("events", 1, true))
    end)

    it("sends an empty events list as []", function()
      assert(client.webhooks.create("fleet_1", { url = URL, events = {} }))
      local req = only_request()
      assert.matches('"events":%[%]', req.body)
      assert.are.same({ url = URL, events = {} }, cjson.decode(req.body))
    end)

    it("sends the events in the caller's order", function()
      local events = { "thread.completed", "agent.created", "connection.detached" }
      assert(client.webhooks.create("fleet_1", { url = URL, events = events }))
      assert.are.same({ url = URL, events = events }, cjson.decode(only_request().body))
    end)

    it("merges extra_body into the body", function()
      assert(client.webhooks.create("fleet_1", {
        url = URL,
        events = { "agent.created" },
        extra_body = { description = "ops", metadata = { team = "a", n = 3 }, tags = cerca.empty_array,
          note = cerca.null },
      }))
      local req = only_request()
      local body = cjson.decode(req.body)
      assert.are.equal(cjson.null, body.note)
      body.note = nil
      assert.are.same({ url = URL, events = { "agent.created" }, description = "ops",
        metadata = { team = "a", n = 3 }, tags = {} }, body)
      assert.matches('"tags":%[%]', req.body)
      assert.matches('"note":null', req.body)
    end)

    it("sends the fleet id as one percent-encoded path segment", function()
      local sub = assert(client.webhooks.create("a/..b/c?x#y z", { url = URL }))
      assert.are.equal("/fleets/a%2F..b%2Fc%3Fx%23y%20z/webhooks", only_request().uri)
      assert.are.equal("a/..b/c?x#y z", sub.fleetId)
      srv:reset()
      sub = assert(client.webhooks.create("flotte-\195\169~_.", { url = URL }))
      assert.are.equal("/fleets/flotte-%C3%A9~_./webhooks", only_request().uri)
      assert.are.equal("flotte-\195\169~_.", sub.fleetId)
    end)

    it("appends the path to a base_url with a prefix", function()
      local c = helpers.client(srv, { base_url = srv.http_url .. "/v1/" })
      local sub, err = c.webhooks.create("fleet_1", { url = URL })
      c:close()
      assert.is_nil(sub)
      assert.are.equal("not_found", err.type)
      assert.are.equal("/v1/fleets/fleet_1/webhooks", only_request().uri)
    end)
  end)

  describe("on success", function()
    it("returns the subscription under the contract's names", function()
      local sub, err, res = client.webhooks.create("fleet_1", { url = URL, events = { "turn.failed" } })
      assert.is_nil(err)
      local stored = srv:subscriptions()
      assert.are.equal(1, #stored)
      for _, k in ipairs { "id", "fleetId", "url", "events", "enabled", "createdAt", "updatedAt", "secret" } do
        assert.are.same(stored[1][k], sub[k])
      end
      assert.matches("^whsec_", sub.secret)
      assert.are.same({ "turn.failed" }, sub.events)
      assert.is_true(sub.enabled)
      -- The call's response: status, headers, request id.
      assert.are.equal(201, res.status)
      assert.matches("^req_%x+$", res.request_id)
      -- `headers` is made from the block on first read, then kept.
      assert.matches("^HTTP/1.1 201", res.raw_headers)
      assert.is_nil(rawget(res, "headers"))
      local headers = res.headers
      assert.are.equal(headers, rawget(res, "headers"))
      assert.are.equal(res.request_id, headers["x-request-id"])
      assert.are.equal("application/json", headers["content-type"])
      assert.are.same(cerca_core.headers(res.raw_headers), headers)
      assert.is_nil(res.other)
    end)

    it("re-encodes with cerca.encode_json in the contract's shape, [] included", function()
      local sub = assert(client.webhooks.create("fleet_1", { url = URL, events = {} }))
      local text = assert(cerca.encode_json(sub))
      assert.matches('"events":%[%]', text)
      assert.are.same(srv:subscriptions()[1], cjson.decode(text))
      sub = assert(client.webhooks.create("fleet_1", { url = URL, events = { "agent.created" } }))
      assert.matches('"events":%["agent.created"%]', cerca.encode_json(sub))
      assert.are.equal('{"a":[]}', cerca.encode_json { a = cerca.empty_array })
      assert.is_nil((cerca.encode_json { f = print }))
    end)

    it("accepts any 2xx and reads Request-Id too", function()
      local body = cjson.encode { id = "wh_1", fleetId = "fleet_1", url = URL, events = {},
        enabled = false, createdAt = "t", updatedAt = "t", secret = "whsec_abc123" }
      srv:enqueue { status = 200, body = body, headers = { ["Request-Id"] = "req_alt" } }
      local sub, err, res = client.webhooks.create("fleet_1", { url = URL })
      assert.is_nil(err)
      assert.are.equal("wh_1", sub.id)
      assert.are.equal(200, res.status)
      assert.are.equal("req_alt", res.request_id)
    end)

    it("reuses one connection for consecutive calls", function()
      local c = helpers.client(srv)
      for _ = 1, 3 do assert(c.webhooks.create("fleet_1", { url = URL })) end
      c:close()
      local reqs = srv:requests()
      assert.are.equal(3, #reqs)
      assert.is_number(reqs[1].connection)
      assert.are.equal(reqs[1].connection, reqs[2].connection)
      assert.are.equal(reqs[1].connection, reqs[3].connection)
    end)
  end)

  describe("status mapping", function()
    local cases = {
      { 400, "api_status" }, { 401, "authentication" }, { 403, "permission_denied" },
      { 404, "not_found" }, { 409, "conflict" }, { 422, "unprocessable_entity" },
      { 429, "rate_limit" }, { 500, "server" }, { 502, "server" }, { 503, "server" },
      { 418, "api_status" },
    }
    for _, case in ipairs(cases) do
      local status, kind = case[1], case[2]
      it(status .. " is " .. kind, function()
        local body = cjson.encode { error = { type = "x", message = "status " .. status .. " here" } }
        srv:enqueue { status = status, body = body, headers = { ["X-Request-Id"] = "req_" .. status } }
        local sub, err = client.webhooks.create("fleet_1", { url = URL }, { max_retries = 0 })
        assert.is_nil(sub)
        assert.are.equal(kind, err.type)
        assert.are.equal(status, err.status)
        assert.are.equal("status " .. status .. " here", err.message)
        assert.are.equal("req_" .. status, err.request_id)
        assert.are.equal(body, err.body)
        assert.are.equal("req_" .. status, err.headers["x-request-id"])
        -- A 5xx may follow work done: the line ends with the key to repeat with.
        local repeat_with = status >= 500 and "; it may have been created: repeat with idempotency key "
          .. err.idempotency_key .. " to get it without a duplicate" or ""
        assert.are.equal(status >= 500 or nil, err.maybe_created)
        assert.are.equal("cerca: " .. kind .. " (HTTP " .. status .. "): status " .. status
          .. " here (request id req_" .. status .. ")" .. repeat_with, tostring(err))
      end)
    end

    it("never follows a redirect, and names the Location", function()
      srv:enqueue { status = 307, body = "", headers = { Location = "https://elsewhere.example/steal" } }
      local sub, err = client.webhooks.create("fleet_1", { url = URL })
      assert.is_nil(sub)
      assert.are.equal("api_status", err.type)
      assert.are.equal(307, err.status)
      assert.are.equal("HTTP 307 Temporary Redirect; redirects are not followed "
        .. "(Location: https://elsewhere.example/steal)", err.message)
      assert.are.equal(1, #srv:requests())
    end)

    it("describes an error body that is not JSON by its status", function()
      srv:enqueue { status = 503, body = "<html>down</html>" }
      local _, err = client.webhooks.create("fleet_1", { url = URL }, { max_retries = 0 })
      assert.are.equal("server", err.type)
      assert.are.equal("HTTP 503 Service Unavailable", err.message)
      assert.are.equal("<html>down</html>", err.body)
    end)

    it("maps the reference server's own 401", function()
      local c = helpers.client(srv, { api_key = "sk_wrong" })
      local _, err = c.webhooks.create("fleet_1", { url = URL })
      c:close()
      assert.are.equal("authentication", err.type)
      assert.are.equal(401, err.status)
      assert.matches("^req_", err.request_id)
      assert.is_nil(tostring(err):find("sk_wrong", 1, true))
    end)
  end)

  describe("answers that cannot be used keep the raw body", function()
    it("2xx that is not JSON", function()
      srv:enqueue { status = 201, body = "created!" }
      local sub, err = client.webhooks.create("fleet_1", { url = URL })
      assert.is_nil(sub)
      assert.are.equal("invalid_response", err.type)
      assert.are.equal(201, err.status)
      assert.are.equal("created!", err.body)
      assert.matches("^the answer %(HTTP 201%) is not JSON: ", err.message)
    end)

    it("2xx missing the secret", function()
      local body = cjson.encode { id = "wh_1", fleetId = "fleet_1", url = URL, events = {},
        enabled = true, createdAt = "t", updatedAt = "t" }
      srv:enqueue { status = 201, body = body }
      local _, err = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal("invalid_response", err.type)
      assert.are.equal("the create succeeded (HTTP 201) but the answer's secret is missing, not a string; "
        .. "the raw answer is kept in err.body: repeat the call with err.idempotency_key to get the "
        .. "subscription", err.message)
      assert.are.equal(body, err.body)
      assert.are.equal(srv:requests()[1].headers["idempotency-key"], err.idempotency_key)
    end)

    it("every field of webhooks.FIELDS missing or of another type makes the answer unusable", function()
      local webhooks = require "cerca.webhooks"
      local function good()
        return { id = "wh_1", fleetId = "fleet_1", url = URL, events = { "agent.created" }, enabled = true,
          createdAt = "t", updatedAt = "t", secret = "whsec_x" }
      end
      assert.is_table(webhooks.subscription(good()))
      for _, f in ipairs(webhooks.FIELDS) do
        local name, want = f[1], f[2]
        local missing = good()
        missing[name] = nil
        assert.are.equal(("the answer's %s is missing, not a %s"):format(name, want),
          select(2, webhooks.subscription(missing)))
        local other = good()
        other[name] = want == "string" and 1 or "x"
        assert.are.equal(("the answer's %s is a %s, not a %s"):format(name, type(other[name]), want),
          select(2, webhooks.subscription(other)))
      end
    end)

    it("2xx that cannot be used: no secret in the message, the request id or the headers; the body keeps it",
      function()
        -- The answer's own secret, then another whsec_ token, echoed in the request id and a header.
        local body = '{"id":"wh_3","fleetId":"fleet_1","secret":"whsec_BBBBBBBBBBBBBBBB"}'
        for _, echoed in ipairs { "whsec_BBBBBBBBBBBBBBBB", "req_whsec_CCCCCCCCCCCCCCCC" } do
          srv:reset()
          srv:enqueue { status = 201, body = body, headers = { ["X-Request-Id"] = echoed, ["X-Echo"] = echoed } }
          local _, err = client.webhooks.create("fleet_1", { url = URL })
          assert.are.equal("invalid_response", err.type)
          assert.are.equal(body, err.body)
          -- Any whsec_ token leaves the message and the request id; the
          -- answer's own secret leaves the header values too.
          for _, text in ipairs { tostring(err), err.message, err.request_id } do
            assert.is_nil(text:find("BBBBBBBB", 1, true), text)
            assert.is_nil(text:find("CCCCCCCC", 1, true), text)
          end
          for _, text in ipairs { err.headers["x-echo"], err.headers["x-request-id"] } do
            assert.is_nil(text:find("BBBBBBBB", 1, true), text)
          end
        end
      end)

    it("2xx with a field of the wrong type", function()
      local body = '{"id":"wh_1","fleetId":"f","url":"u","events":"all","enabled":true,'
        .. '"createdAt":"t","updatedAt":"t","secret":"whsec_kept"}'
      srv:enqueue { status = 201, body = body }
      local _, err = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal("invalid_response", err.type)
      assert.matches("events is a string, not a table", err.message, 1, true)
      assert.are.equal(body, err.body)
    end)

    it("2xx whose events is not a list", function()
      local body = '{"id":"wh_1","fleetId":"f","url":"u","events":{"a":1},"enabled":true,'
        .. '"createdAt":"t","updatedAt":"t","secret":"whsec_kept"}'
      srv:enqueue { status = 201, body = body }
      local _, err = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal("invalid_response", err.type)
      assert.matches("the answer's events is not a list", err.message, 1, true)
      assert.are.equal(body, err.body)
    end)

    it("2xx larger than max_response_size", function()
      local c = helpers.client(srv, { max_response_size = 1000 })
      local big = '{"secret":"whsec_x","pad":"' .. string.rep("x", 5000) .. '"}'
      srv:enqueue { status = 201, body = big }
      local _, err = c.webhooks.create("fleet_1", { url = URL })
      c:close()
      assert.are.equal("invalid_response", err.type)
      assert.are.equal(201, err.status)
      assert.are.equal("the answer is larger than max_response_size (1000 bytes); "
        .. "what arrived is kept in err.body", err.message)
      assert.is_true(#err.body <= 1000)
    end)
  end)

  describe("transport failures", function()
    it("connection refused is connection", function()
      local port = srv.http_url:match(":(%d+)$")
      local c = assert(cerca.new { api_key = "k", log_level = "off",
        base_url = "http://127.0.0.1:" .. (tonumber(port) == 1 and 2 or 1) })
      local sub, err = c.webhooks.create("fleet_1", { url = URL })
      assert.is_nil(sub)
      assert.are.equal("connection", err.type)
      assert.is_nil(err.status)
    end)

    it("a server that does not answer in time is timeout", function()
      srv:enqueue { status = 201, body = "{}", delay = 2 }
      local t0 = helpers.now()
      local sub, err = client.webhooks.create("fleet_1", { url = URL }, { timeout = 0.3, max_retries = 0 })
      local elapsed = helpers.now() - t0
      assert.is_nil(sub)
      assert.are.equal("timeout", err.type)
      assert.is_true(elapsed >= 0.3 and elapsed < 1.0, "elapsed " .. elapsed)
    end)

    it("a dropped connection is connection", function()
      srv:enqueue { action = "drop" }
      local _, err = client.webhooks.create("fleet_1", { url = URL }, { max_retries = 0 })
      assert.are.equal("connection", err.type)
    end)
  end)

  describe("over HTTPS", function()
    it("works when ca_file trusts the server's CA", function()
      local c = helpers.client(srv, { base_url = srv.https_url, ca_file = srv.ca_file })
      local sub, err = c.webhooks.create("fleet_1", { url = URL, events = {} })
      assert.is_nil(err)
      assert.matches("^whsec_", sub.secret)
      sub = assert(c.webhooks.create("fleet_2", { url = URL }))
      assert.are.equal("fleet_2", sub.fleetId)
      c:close()
      local reqs = srv:requests()
      assert.are.equal(2, #reqs)
      assert.are.equal("https", reqs[1].port)
      assert.matches('"events":%[%]', reqs[1].body)
      assert.is_number(reqs[1].connection)
      assert.are.equal(reqs[1].connection, reqs[2].connection)
    end)

    it("verifies the certificate against the IP in the URL too", function()
      local c = helpers.client(srv, { base_url = srv.https_ip_url, ca_file = srv.ca_file })
      assert(c.webhooks.create("fleet_1", { url = URL }))
      c:close()
    end)

    it("refuses an untrusted certificate, and nothing reaches the server", function()
      local c = helpers.client(srv, { base_url = srv.https_url })
      local sub, err = c.webhooks.create("fleet_1", { url = URL })
      c:close()
      assert.is_nil(sub)
      assert.are.equal("tls", err.type)
      -- The message says what to do: give the CA that signed it.
      assert.matches("certificate.*; a server whose certificate a CA of your own signed needs that CA's PEM "
        .. "file as the ca_file option %(or CERCA_CA_FILE%)$", err.message)
      assert.are.same({}, srv:requests())
    end)
  end)
end)

describe("the default client", function()
  local srv

  setup(function() srv = helpers.start_server { tls = false } end)
  teardown(function() if srv then srv:stop() end end)

  it("is configured from CERCA_API_KEY and CERCA_BASE_URL", function()
    local out, status = helpers.run_lua([[
      local cerca = require "cerca"
      local sub, err = cerca.webhooks.create("fleet_env", { url = "https://example.com/webhook" })
      assert(sub, tostring(err))
      io.write(sub.fleetId, " ", tostring(#cerca.webhooks.EVENTS))
    ]], { CERCA_API_KEY = srv.api_key, CERCA_BASE_URL = srv.http_url })
    assert.are.equal(0, status)
    assert.are.equal("fleet_env 19", out)
    assert.are.equal("Bearer " .. srv.api_key, srv:requests()[1].headers.authorization)
  end)

  it("never sends a loopback http call through a proxy", function()
    local out, status = helpers.run_lua([[
      local cerca = require "cerca"
      local sub, err = cerca.webhooks.create("fleet_proxy", { url = "https://example.com/webhook" })
      io.write(sub and sub.fleetId or tostring(err))
    ]], { CERCA_API_KEY = srv.api_key, CERCA_BASE_URL = srv.http_url,
      http_proxy = "http://127.0.0.1:" .. helpers.closed_port(), no_proxy = "" })
    assert.are.equal(0, status)
    assert.are.equal("fleet_proxy", out)
  end)

  it("sends the same bytes for the same call from every process, so a repeat under its key works", function()
    srv:reset()
    local ids = {}
    for i = 1, 6 do
      local out, status = helpers.run_lua([[
        local cerca = require "cerca"
        local sub, err = cerca.webhooks.create("fleet_repeat", {
          url = "https://example.com/webhook", events = { "agent.created", "turn.failed" },
          extra_body = { description = "ops", owner = { team = "a", tags = { "x" }, level = 2 }, zone = "eu" },
        }, { idempotency_key = "repeat-key-1" })
        io.write(sub and sub.id or tostring(err))
      ]], { CERCA_API_KEY = srv.api_key, CERCA_BASE_URL = srv.http_url })
      assert.are.equal(0, status)
      ids[i] = out
    end
    for i = 2, 6 do assert.are.equal(ids[1], ids[i]) end
    assert.matches("^wh_", ids[1])
    assert.are.equal(1, #srv:subscriptions())
    local reqs = srv:requests()
    for i = 2, #reqs do assert.are.equal(reqs[1].body, reqs[i].body) end
    assert.are.equal('{"description":"ops","events":["agent.created","turn.failed"],'
      .. '"owner":{"level":2,"tags":["x"],"team":"a"},"url":"https:\\/\\/example.com\\/webhook","zone":"eu"}',
      reqs[1].body)
  end)

  it("without CERCA_API_KEY returns a configuration error and sends nothing", function()
    srv:reset()
    local out, status = helpers.run_lua([[
      local cerca = require "cerca"
      local sub, err = cerca.webhooks.create("fleet_env", { url = "https://example.com/webhook" })
      io.write(tostring(sub), " | ", err.type, " | ", err.message)
    ]], { CERCA_API_KEY = "", CERCA_BASE_URL = srv.http_url })
    assert.are.equal(0, status)
    assert.are.equal("nil | configuration | no API key: set the CERCA_API_KEY environment variable "
      .. "or pass api_key to cerca.new", out)
    assert.are.same({}, srv:requests())
  end)
end)

-- Numbers the checks let through must reach the C core as they were given:
-- an integer (Lua 5.3 on) of seconds times 1000 wraps around.
describe("webhooks.create with the largest numbers the checks take", function()
  local srv, client

  setup(function()
    srv = helpers.start_server { tls = false, delay = 0.5 }
    client = helpers.client(srv)
  end)

  teardown(function()
    if client then client:close() end
    if srv then srv:stop() end
  end)

  before_each(function() srv:reset() end)

  local HUGE_INT = math.maxinteger or 2 ^ 63
  -- 18446744073709552 ms is 2^64 + 384: wrapped, a 384 ms timeout.
  local WRAPS_TO_384_MS = math.tointeger and math.tointeger(18446744073709552) or 18446744073709552

  it("gives an attempt the timeout it was given, however large an integer", function()
    for _, opts in ipairs {
      { timeout = HUGE_INT }, { timeout = WRAPS_TO_384_MS }, { connect_timeout = HUGE_INT },
      { deadline = HUGE_INT, timeout = HUGE_INT },
    } do
      opts.max_retries = 0
      local sub, err = client.webhooks.create("fleet_1", { url = URL }, opts)
      assert.is_table(sub, tostring(err))
    end
    local c = assert(helpers.client(srv, { timeout = HUGE_INT, connect_timeout = WRAPS_TO_384_MS, max_retries = 0 }))
    local sub, err = c.webhooks.create("fleet_1", { url = URL })
    c:close()
    assert.is_table(sub, tostring(err))
    local res
    res, err = cerca.post(srv.http_url .. "/fleets/fleet_1/webhooks", '{"url":"' .. URL .. '"}',
      { timeout = WRAPS_TO_384_MS, headers = { Authorization = "Bearer " .. srv.api_key,
        ["Content-Type"] = "application/json" } })
    assert.is_table(res, tostring(err))
  end)

  it("lets the other items of a batch go on beside one with a huge integer timeout", function()
    local items = {}
    for i = 1, 6 do items[i] = { fleet_id = "fleet_" .. i, params = { url = URL } } end
    items[4].options = { timeout = HUGE_INT }
    local results = assert(client.webhooks.create_many(items, { concurrency = 2 }))
    for i = 1, 6 do assert.is_true(results[i].ok, tostring(results[i].error)) end
  end)

  it("ends only the call whose request the C core refuses, not the batch", function()
    local calls = {}
    for i = 1, 4 do
      calls[i] = assert(client:prepare("POST", "/fleets/fleet_" .. i .. "/webhooks", { url = URL }))
    end
    calls[2].request.connect_timeout_ms = -1  -- as a number wrapped around would be
    local got = {}
    client:request_many(calls, 2, function(k, res, err) got[k] = res and "ok" or err end)
    assert.are.equal("ok", got[1])
    assert.are.equal("ok", got[3])
    assert.are.equal("ok", got[4])
    assert.is_table(got[2])
    assert.are.equal("internal", got[2].type)
    assert.matches("connect_timeout_ms", got[2].message)
    assert.are.equal(0, got[2].attempts)
    assert.is_nil(got[2].maybe_created)
    assert.are.equal(3, #srv:subscriptions())
  end)
end)
