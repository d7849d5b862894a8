-- The fault suite: each way the network or the API can fail, and exactly
-- what a create returns then. Nothing may be lost, nothing duplicated.
local helpers = require "spec.helpers"
local cerca = require "cerca"
local cjson = require "cjson"

local URL = "https://example.com/webhook"
-- A server-named wait of 1 ms keeps retries fast where backoff is not the point.
local SOON = { ["Retry-After-Ms"] = "1" }

describe("faults", function()
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

  local function create(options, params)
    local t0 = helpers.now()
    local sub, err, res = client.webhooks.create("fleet_1", params or { url = URL }, options)
    return sub, err, res, helpers.now() - t0
  end

  -- Every attempt of one call carried the same key and the same body.
  local function same_call(reqs)
    for i = 2, #reqs do
      assert.are.equal(reqs[1].headers["idempotency-key"], reqs[i].headers["idempotency-key"])
      assert.are.equal(reqs[1].body, reqs[i].body)
    end
  end

  local function the_one_subscription(sub)
    local stored = srv:subscriptions()
    assert.are.equal(1, #stored)
    assert.are.equal(stored[1].id, sub.id)
    assert.are.equal(stored[1].secret, sub.secret)
  end

  describe("retried statuses", function()
    it("500 once, then 201", function()
      srv:enqueue { status = 500, body = "{}", headers = SOON }
      local sub, err, res = create()
      assert.is_nil(err)
      assert.are.equal(2, res.attempts)
      assert.are.equal(2, #srv:requests())
      same_call(srv:requests())
      the_one_subscription(sub)
    end)

    it("503 twice, then 201, waiting the exponential backoff", function()
      srv:enqueue { status = 503, body = "{}" }
      srv:enqueue { status = 503, body = "{}" }
      local sub, err, res, elapsed = create()
      assert.is_nil(err)
      assert.are.equal(3, res.attempts)
      -- 0.5 s then 1 s, each times a jitter factor in [0.75, 1].
      assert.is_true(elapsed >= 0.375 + 0.75 and elapsed < 1.5 + 1, "elapsed " .. elapsed)
      same_call(srv:requests())
      the_one_subscription(sub)
    end)

    it("500 every time is server, after 3 attempts", function()
      for _ = 1, 3 do srv:enqueue { status = 500, body = '{"error":{"message":"boom"}}', headers = SOON } end
      local sub, err = create()
      assert.is_nil(sub)
      assert.are.equal("server", err.type)
      assert.are.equal(500, err.status)
      assert.are.equal("boom", err.message)
      assert.are.equal(3, err.attempts)
      assert.are.equal(3, #srv:requests())
      assert.are.same({}, srv:subscriptions())
    end)

    it("429 with Retry-After: 1 waits at least 1 s", function()
      srv:enqueue { status = 429, body = "{}", headers = { ["Retry-After"] = "1" } }
      local sub, err, res, elapsed = create()
      assert.is_nil(err)
      assert.are.equal(2, res.attempts)
      assert.is_true(elapsed >= 1 and elapsed < 2, "elapsed " .. elapsed)
      the_one_subscription(sub)
    end)

    it("429 with retry-after-ms waits that long", function()
      srv:enqueue { status = 429, body = "{}", headers = { ["Retry-After-Ms"] = "300", ["Retry-After"] = "5" } }
      local _, err, res, elapsed = create()
      assert.is_nil(err)
      assert.are.equal(2, res.attempts)
      assert.is_true(elapsed >= 0.3 and elapsed < 1, "elapsed " .. elapsed)
    end)

    it("does not wait a Retry-After over 60 s: the error carries it", function()
      srv:enqueue { status = 429, body = "{}", headers = { ["Retry-After"] = "120" } }
      local sub, err, _, elapsed = create()
      assert.is_nil(sub)
      assert.are.equal("rate_limit", err.type)
      assert.are.equal(120, err.retry_after)
      assert.are.equal(1, err.attempts)
      assert.is_true(elapsed < 1)
    end)

    it("x-should-retry: false on a 503 is not retried", function()
      srv:enqueue { status = 503, body = "{}", headers = { ["X-Should-Retry"] = "false" } }
      local _, err = create()
      assert.are.equal("server", err.type)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, #srv:requests())
    end)

    it("x-should-retry: true on a 400 is retried", function()
      srv:enqueue { status = 400, body = "{}", headers = { ["X-Should-Retry"] = "true", ["Retry-After-Ms"] = "1" } }
      local sub, err, res = create()
      assert.is_nil(err)
      assert.are.equal(2, res.attempts)
      the_one_subscription(sub)
    end)

    it("max_retries = 0 makes one attempt", function()
      srv:enqueue { status = 503, body = "{}", headers = SOON }
      local _, err = create { max_retries = 0 }
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, #srv:requests())
    end)

    it("an HTML 502 page is server, with the page kept", function()
      local page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
      for _ = 1, 3 do
        srv:enqueue { status = 502, body = page,
          headers = { ["Content-Type"] = "text/html", ["Retry-After-Ms"] = "1" } }
      end
      local _, err = create()
      assert.are.equal("server", err.type)
      assert.are.equal("HTTP 502 Bad Gateway", err.message)
      assert.are.equal(page, err.body)
      assert.are.equal("text/html", err.headers["content-type"])
      assert.are.equal(3, err.attempts)
    end)
  end)

  describe("lost answers", function()
    -- On a fresh connection, a connection that closes without an answer is
    -- our retry's business.
    it("a connection reset before the answer is retried", function()
      client:close()
      srv:enqueue { action = "drop" }
      local sub, err, res = create()
      assert.is_nil(err)
      assert.are.equal(2, res.attempts)
      assert.are.equal(2, #srv:requests())
      same_call(srv:requests())
      the_one_subscription(sub)
    end)

    it("created, then dropped: the retry gets the same subscription, exactly one exists", function()
      client:close()
      srv:enqueue { action = "create_then_drop" }
      local sub, err, res = create()
      assert.is_nil(err)
      assert.are.equal(2, res.attempts)
      same_call(srv:requests())
      the_one_subscription(sub)
      assert.are.same({ srv:requests()[1].headers["idempotency-key"] }, srv:idempotency_keys())
    end)

    -- On a kept-alive connection, libcurl itself sends the request once more
    -- on a new connection when the old one closes before any answer byte:
    -- two requests, counted as two attempts, the same key, one subscription.
    it("created, then dropped on a kept-alive connection: libcurl's re-send is safe, and counted", function()
      assert(create())
      srv:reset()
      srv:enqueue { action = "create_then_drop" }
      local sub, err, res = create()
      assert.is_nil(err)
      assert.are.equal(2, res.attempts)
      assert.is_nil(res.resent)
      local reqs = srv:requests()
      assert.are.equal(2, #reqs)
      assert.are_not.equal(reqs[1].connection, reqs[2].connection)
      same_call(reqs)
      the_one_subscription(sub)
    end)

    -- The re-sent request's answer says nothing of what the first did: a
    -- 409 "in progress" (the API still at the first), a 429 or a 4xx.
    it("created, then dropped on a kept-alive connection, then refused: the outcome is unknown", function()
      assert(create())
      srv:reset()
      srv:enqueue { action = "create_then_drop" }
      for _ = 1, 3 do
        srv:enqueue { status = 409, headers = SOON, body = '{"error":{"message":"request in progress"}}' }
      end
      local sub, err = create()
      assert.is_nil(sub)
      assert.are.equal("conflict", err.type)
      assert.are.equal(1, #srv:subscriptions())
      assert.is_true(err.request_sent)
      assert.is_true(err.maybe_created)
      assert.matches("attempt 1's outcome is unknown", err.message, 1, true)
      assert.matches("repeat with idempotency key " .. err.idempotency_key, tostring(err), 1, true)
      -- Repeated under its key, it gets the one the first send made.
      local again = assert(client.webhooks.create("fleet_1", { url = URL }, { idempotency_key = err.idempotency_key }))
      the_one_subscription(again)
    end)

    it("an interim (1xx) answer's headers do not steer the retry of an attempt that got no answer", function()
      client:close()
      for _, head in ipairs {
        "HTTP/1.1 100 Continue\r\nx-should-retry: false\r\n\r\n",
        "HTTP/1.1 103 Early Hints\r\nRetry-After: 120\r\n\r\n",
      } do
        srv:reset()
        srv:enqueue { action = "raw", body = head }
        local sub, err, res, took = create()
        assert.is_nil(err, head)
        assert.are.equal(2, res.attempts)
        assert.is_true(took < 5, head)
        the_one_subscription(sub)
      end
    end)

    it("an interim (1xx) answer over the header cap: its headers steer no retry either", function()
      local links = {}
      for i = 1, 1500 do links[i] = ("Link: </style-%04d.css>; rel=preload; as=style\r\n"):format(i) end
      srv:enqueue { action = "raw", body = "HTTP/1.1 103 Early Hints\r\nx-should-retry: true\r\nRetry-After: 2\r\n"
        .. table.concat(links) .. "\r\n" }
      local sub, err, _, took = create()
      assert.is_nil(sub)
      assert.are.equal("invalid_response", err.type)
      assert.matches("the response headers are larger than", err.message, 1, true)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, #srv:requests())
      assert.is_true(took < 1, "took " .. took)
    end)

    it("dropped every time, first on a kept-alive connection: every request sent is counted", function()
      local lines = {}
      local c = helpers.client(srv, { max_retries = 2, log_level = "warn",
        logger = function(_, line) lines[#lines + 1] = line end })
      assert(c.webhooks.create("fleet_1", { url = URL }))
      srv:reset()
      for _ = 1, 4 do srv:enqueue { action = "drop" } end
      local sub, err = c.webhooks.create("fleet_1", { url = URL })
      c:close()
      assert.is_nil(sub)
      assert.are.equal("connection", err.type)
      -- libcurl's re-send within the first attempt, then two retries of ours.
      assert.are.equal(4, #srv:requests())
      same_call(srv:requests())
      assert.are.equal(4, err.attempts)
      assert.matches("failed after 4 attempts", table.concat(lines, "\n"), 1, true)
    end)

    it("reset in the middle of the body: retried, the same subscription, exactly one exists", function()
      srv:enqueue { action = "create_then_partial" }
      local sub, err, res = create()
      assert.is_nil(err)
      assert.are.equal(2, res.attempts)
      the_one_subscription(sub)
    end)

    it("reset in the middle of the body, and the repeat answers the same one: nothing else kept", function()
      srv:enqueue { action = "create_then_partial" }
      local sub, err, res = create()
      assert.is_nil(err)
      assert.is_nil(res.created_before)
      the_one_subscription(sub)
    end)

    it("cut before any byte, or before its id but after its secret, then the same one: nothing kept", function()
      local secret = "whsec_" .. ("m"):rep(40)
      local head = '{"fleetId":"fleet_1","secret":"' .. secret .. '"'
      local text = head .. ',"id":"wh_same","url":"' .. URL .. '","events":[],"enabled":true,'
        .. '"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}'
      for _, bytes in ipairs { 0, #head } do
        srv:enqueue { action = "partial", body = text, bytes = bytes, headers = SOON }
        srv:enqueue { status = 201, body = text }
        local sub, err, res = create()
        assert.is_nil(err)
        assert.are.equal("wh_same", sub.id)
        assert.are.equal(2, res.attempts)
        assert.is_nil(res.created_before, "cut after " .. bytes .. " bytes")
      end
      -- Cut before its secret and id: the bytes may be another's, kept.
      srv:enqueue { action = "partial", body = text, bytes = 22, headers = SOON }
      srv:enqueue { status = 201, body = text }
      local _, _, res = create()
      assert.are.equal(text:sub(1, 22), res.created_before.body)
    end)

    it("cut off, then another subscription under the same key: the first bytes kept, and a warning", function()
      -- A server that does not honour the key: the first answer broke off
      -- with all of wh_first's secret, the repeat answers wh_second.
      local first = cjson.encode { id = "wh_first", fleetId = "fleet_1", secret = "whsec_" .. ("f"):rep(40) }
      srv:enqueue { action = "partial", body = first, bytes = #first - 2, headers = SOON }
      srv:enqueue { status = 201, body = cjson.encode { id = "wh_second", fleetId = "fleet_1",
        url = URL, events = {}, enabled = true, createdAt = "2026-01-01T00:00:00Z",
        updatedAt = "2026-01-01T00:00:00Z", secret = "whsec_" .. ("s"):rep(40) } }
      local lines = {}
      local c = helpers.client(srv, { log_level = "warn", logger = function(_, l) lines[#lines + 1] = l end })
      local sub, err, res = c.webhooks.create("fleet_1", { url = URL })
      c:close()
      assert.is_nil(err)
      assert.are.equal("wh_second", sub.id)
      local kept = res.created_before
      assert.is_true(cerca.is_error(kept))
      assert.are.equal(first:sub(1, -3), kept.body)
      assert.are.equal(201, kept.status)
      assert.matches('answered subscription "wh_second", which those bytes do not show', kept.message, 1, true)
      assert.matches('answered subscription "wh_second"', table.concat(lines, "\n"), 1, true)
      -- Printed nowhere: pretty and tostring of the result say where it is.
      local shown = cerca.pretty(res) .. tostring(kept) .. cerca.pretty(kept) .. table.concat(lines, "\n")
      assert.is_nil(shown:find(("f"):rep(20), 1, true))
    end)

    it("reset in the middle of the body on every attempt: invalid_response, what arrived kept", function()
      local body = cjson.encode { id = "wh_cut", secret = "whsec_" .. string.rep("s", 40) }
      for _ = 1, 3 do srv:enqueue { action = "partial", body = body, bytes = 30, headers = SOON } end
      local sub, err = create()
      assert.is_nil(sub)
      assert.are.equal("invalid_response", err.type)
      assert.are.equal(201, err.status)
      assert.are.equal(body:sub(1, 30), err.body)
      assert.are.equal(3, err.attempts)
      assert.matches("^the answer broke off after HTTP 201 %(", err.message)
    end)

    it("a 2xx cut off, then a failure: invalid_response keeps the 2xx's bytes and the key to repeat with", function()
      srv:enqueue { action = "create_then_partial" }
      srv:enqueue { status = 503, body = '{"error":{"message":"busy"}}', headers = { ["X-Should-Retry"] = "false" } }
      local sub, err = create()
      assert.is_nil(sub)
      assert.are.equal("invalid_response", err.type)
      assert.are.equal(201, err.status)
      assert.are.equal(2, err.attempts)
      assert.are.equal("server", err.last_error.type)
      assert.matches("^the create succeeded %(HTTP 201%) on attempt 1 but its answer broke off", err.message)
      local stored = srv:subscriptions()
      assert.are.equal(1, #stored)
      -- The first half of the answer that broke off.
      assert.matches("^{", err.body)
      assert.is_true(#err.body > 10)
      assert.are.equal(srv:requests()[1].headers["idempotency-key"], err.idempotency_key)
      -- Repeating with that key gets the subscription the API made.
      local again = assert(create { idempotency_key = err.idempotency_key })
      assert.are.equal(stored[1].id, again.id)
      assert.are.equal(stored[1].secret, again.secret)
      assert.are.equal(1, #srv:subscriptions())
    end)

    -- Whatever the last attempt got, an earlier one that may have acted
    -- decides what the error says: the subscription may exist.
    for _, last in ipairs {
      { status = 409, type = "conflict", body = '{"error":{"message":"a request with this key is in progress"}}' },
      { status = 429, type = "rate_limit", body = "{}", retry_after = "120", answers = 1 },
      { status = 408, type = "api_status", body = "{}" },
      { status = 422, type = "unprocessable_entity", body = '{"error":{"message":"bad"}}', answers = 1 },
    } do
      it(("created then dropped, then %d: the error says the subscription may exist"):format(last.status), function()
        client:close()
        srv:enqueue { action = "create_then_drop" }
        local headers = last.retry_after and { ["Retry-After"] = last.retry_after } or SOON
        for _ = 1, last.answers or 2 do srv:enqueue { status = last.status, body = last.body, headers = headers } end
        local sub, err = create()
        assert.is_nil(sub)
        assert.are.equal(last.type, err.type)
        assert.is_true(err.maybe_created)
        assert.is_true(err.request_sent)
        assert.are.equal(srv:requests()[1].headers["idempotency-key"], err.idempotency_key)
        assert.matches("attempt 1's outcome is unknown (connection), so the call may have acted: repeat it with "
          .. "err.idempotency_key", err.message, 1, true)
        -- Printed, the error says so with the key, in one line or a block.
        assert.matches("; it may have been created: repeat with idempotency key " .. err.idempotency_key
          .. " to get it without a duplicate", tostring(err), 1, true)
        assert.matches("maybe_created%s+true", cerca.pretty(err))
        assert.matches("idempotency_key%s+" .. err.idempotency_key:gsub("%-", "%%-"), cerca.pretty(err))
        assert.are.equal(1, #srv:subscriptions())
        local again = assert(create { idempotency_key = err.idempotency_key })
        assert.are.equal(srv:subscriptions()[1].secret, again.secret)
        assert.are.equal(1, #srv:subscriptions())
      end)
    end

    it("a request turned away is not said to have maybe created anything", function()
      srv:enqueue { status = 422, body = '{"error":{"message":"bad"}}' }
      local _, err = create()
      assert.are.equal("unprocessable_entity", err.type)
      assert.is_nil(err.maybe_created)
      assert.are.equal("bad", err.message)
      assert.is_nil(tostring(err):find("may have been created", 1, true))
      assert.is_nil(cerca.pretty(err):find("maybe_created", 1, true))
      for _ = 1, 3 do srv:enqueue { status = 429, body = "{}", headers = SOON } end
      _, err = create()
      assert.are.equal("rate_limit", err.type)
      assert.is_nil(err.maybe_created)
      for _ = 1, 3 do srv:enqueue { status = 503, body = "{}", headers = SOON } end
      _, err = create()
      assert.are.equal("server", err.type)
      assert.is_true(err.maybe_created)
      assert.are.equal("HTTP 503 Service Unavailable", err.message)
      assert.are.equal("cerca: server (HTTP 503): HTTP 503 Service Unavailable; it may have been created: repeat "
        .. "with idempotency key " .. err.idempotency_key .. " to get it without a duplicate", tostring(err))
    end)

    it("a complete 2xx that cannot be used, retried on x-should-retry, keeps its bytes past later failures", function()
      local body = '{"id":"wh_x","secret":"whsec_ONLYCOPY' .. string.rep("A", 30) .. '","fleetId":"fleet_1"'
      srv:enqueue { status = 201, body = body, headers = { ["X-Should-Retry"] = "true", ["Retry-After-Ms"] = "1" } }
      for _ = 1, 2 do srv:enqueue { status = 503, body = "{}", headers = SOON } end
      local sub, err = create()
      assert.is_nil(sub)
      assert.are.equal("invalid_response", err.type)
      assert.are.equal(201, err.status)
      assert.are.equal(body, err.body)
      assert.are.equal("server", err.last_error.type)
      assert.are.equal(3, err.attempts)
      assert.is_true(err.maybe_created)
      assert.matches("^the create succeeded %(HTTP 201%) on attempt 1 but its answer could not be used", err.message)
    end)

    it("a 2xx cut off, then a 2xx that is not a subscription: the first one's bytes are kept", function()
      local secret = "whsec_FIRSTCOPY" .. string.rep("B", 30)
      local first = '{"id":"wh_y","secret":"' .. secret .. '","fleetId":"fleet_1","url":"https://example.com/webhook",'
        .. '"events":[],"enabled":true,"createdAt":"t","updatedAt":"t"}'
      srv:enqueue { action = "partial", body = first, bytes = 60, headers = SOON }
      srv:enqueue { status = 201, body = '{"id":"wh_y","fleetId":"fleet_1"}' }
      local sub, err = create()
      assert.is_nil(sub)
      assert.are.equal("invalid_response", err.type)
      assert.are.equal(first:sub(1, 60), err.body)
      assert.matches(secret:sub(1, 20), err.body, 1, true)
      assert.are.equal("invalid_response", err.last_error.type)
      assert.are.equal('{"id":"wh_y","fleetId":"fleet_1"}', err.last_error.body)
      assert.are.equal(2, err.attempts)
      assert.are.equal(srv:requests()[1].headers["idempotency-key"], err.idempotency_key)
      assert.is_true(err.maybe_created)
      -- Or names another fleet: that answer is dropped, the first one kept.
      srv:reset()
      srv:enqueue { action = "partial", body = first, bytes = 60, headers = SOON }
      srv:enqueue { status = 201, body = (first:gsub("fleet_1", "fleet_2")) }
      sub, err = create()
      assert.is_nil(sub)
      assert.are.equal(first:sub(1, 60), err.body)
      assert.matches("names another fleet", err.last_error.message, 1, true)
      assert.is_nil(err.last_error.body)
      -- Or is longer but not the same answer (a proxy's page): both kept.
      srv:reset()
      local page = string.rep("<html>", 25)
      srv:enqueue { action = "partial", body = first, bytes = 60, headers = SOON }
      srv:enqueue { status = 200, body = page, headers = { ["Content-Type"] = "text/html" } }
      sub, err = create()
      assert.is_nil(sub)
      assert.are.equal(first:sub(1, 60), err.body)
      assert.are.equal(page, err.last_error.body)
      assert.matches("^the create succeeded %(HTTP 201%) on attempt 1 but its answer broke off", err.message)
    end)

    it("every error after an attempt carries the idempotency key", function()
      srv:enqueue { status = 400, body = "{}" }
      local _, err = create()
      assert.matches("^%x+%-%x+%-4", err.idempotency_key)
      assert.are.equal(srv:requests()[1].headers["idempotency-key"], err.idempotency_key)
    end)

    it("created, then dropped, over HTTPS too", function()
      local c = helpers.client(srv, { base_url = srv.https_url, ca_file = srv.ca_file })
      srv:enqueue { action = "create_then_partial" }
      local sub, err, res = c.webhooks.create("fleet_1", { url = URL })
      c:close()
      assert.is_nil(err)
      assert.are.equal(2, res.attempts)
      the_one_subscription(sub)
    end)
  end)

  describe("timeouts", function()
    it("a stall longer than timeout is cut off within the bound", function()
      srv:enqueue { status = 201, body = "{}", delay = 5 }
      local _, err, _, elapsed = create { timeout = 0.5, max_retries = 0 }
      assert.are.equal("timeout", err.type)
      assert.are.equal(1, err.attempts)
      assert.is_true(elapsed >= 0.5 and elapsed < 1.0, "elapsed " .. elapsed)
    end)

    it("a server that trickles bytes is cut off within the bound, the bytes kept", function()
      srv:enqueue { action = "trickle", status = 201, body = string.rep("x", 100), interval = 0.1 }
      local _, err, _, elapsed = create { timeout = 0.5, max_retries = 0 }
      assert.are.equal("invalid_response", err.type)
      assert.are.equal(201, err.status)
      assert.matches("^x+$", err.body)
      assert.is_true(elapsed >= 0.5 and elapsed < 1.0, "elapsed " .. elapsed)
    end)

    it("a timeout is retried with the same key", function()
      srv:enqueue { action = "pass", delay = 2 }
      local sub, err, res = create { timeout = 0.5 }
      assert.is_nil(err)
      assert.are.equal(2, res.attempts)
      same_call(srv:requests())
      -- The first attempt's create completes on the server after the client
      -- gave up; its key is stored, so at most that one subscription exists.
      helpers.sleep(2)
      the_one_subscription(sub)
    end)

    it("the deadline bounds all attempts, backoff included", function()
      for _ = 1, 3 do srv:enqueue { status = 503, body = "{}" } end
      local _, err, _, elapsed = create { deadline = 0.8 }
      assert.are.equal("server", err.type)
      assert.are.equal(2, err.attempts)
      assert.is_true(elapsed < 0.8, "elapsed " .. elapsed)
    end)

    it("the deadline cuts a stalled attempt", function()
      srv:enqueue { status = 201, body = "{}", delay = 5 }
      local _, err, _, elapsed = create { deadline = 0.5 }
      assert.are.equal("timeout", err.type)
      assert.matches("; the call's deadline (0.5 s) has passed", err.message, 1, true)
      assert.is_true(elapsed >= 0.5 and elapsed < 1.0, "elapsed " .. elapsed)
    end)

    it("a closed port is connection, after 3 attempts", function()
      local c = assert(cerca.new { api_key = "k", log_level = "off",
        base_url = "http://127.0.0.1:" .. helpers.closed_port() })
      local t0 = helpers.now()
      local _, err = c.webhooks.create("fleet_1", { url = URL })
      local elapsed = helpers.now() - t0
      assert.are.equal("connection", err.type)
      assert.are.equal(3, err.attempts)
      assert.is_true(elapsed >= 0.375 + 0.75, "elapsed " .. elapsed)
    end)
  end)

  describe("answers that cannot be used", function()
    it("truncated JSON is invalid_response, not retried, body kept", function()
      srv:enqueue { status = 201, body = '{"id":"wh_1","secret":"whsec_abc' }
      local _, err = create()
      assert.are.equal("invalid_response", err.type)
      assert.are.equal('{"id":"wh_1","secret":"whsec_abc', err.body)
      assert.are.equal(1, err.attempts)
    end)

    it("201 without secret is invalid_response, body kept", function()
      local body = '{"id":"wh_1","fleetId":"fleet_1","url":"u","events":[],"enabled":true,'
        .. '"createdAt":"t","updatedAt":"t"}'
      srv:enqueue { status = 201, body = body }
      local _, err = create()
      assert.are.equal("invalid_response", err.type)
      assert.are.equal(body, err.body)
      assert.are.equal(1, err.attempts)
    end)

    it("a 2 MiB body is invalid_response, the first MiB kept", function()
      local body = '{"secret":"whsec_big","pad":"' .. string.rep("p", 2 * 1024 * 1024) .. '"}'
      srv:enqueue { status = 201, body = body }
      local _, err = create()
      assert.are.equal("invalid_response", err.type)
      assert.are.equal(201, err.status)
      assert.is_true(#err.body <= 1024 * 1024)
      assert.are.equal(1, err.attempts)
    end)

    it("a wrong Content-Type does not lose a good answer", function()
      local body = cjson.encode { id = "wh_ct", fleetId = "fleet_1", url = URL, events = {}, enabled = true,
        createdAt = "t", updatedAt = "t", secret = "whsec_ct" }
      srv:enqueue { status = 201, body = body, headers = { ["Content-Type"] = "text/html" } }
      local sub, err = create()
      assert.is_nil(err)
      assert.are.equal("whsec_ct", sub.secret)
    end)

    it("a 307 to another host is not followed", function()
      srv:enqueue { status = 307, body = "",
        headers = { Location = "https://attacker.example/fleets/fleet_1/webhooks" } }
      local _, err = create()
      assert.are.equal("api_status", err.type)
      assert.are.equal(307, err.status)
      assert.are.equal("https://attacker.example/fleets/fleet_1/webhooks", err.headers.location)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, #srv:requests())
    end)
  end)

  describe("idempotency keys", function()
    it("a caller's key is sent as given, and replays the same subscription", function()
      local key = "order-7-webhook"
      local first = assert(create { idempotency_key = key })
      local again = assert(create { idempotency_key = key })
      assert.are.equal(first.id, again.id)
      assert.are.equal(first.secret, again.secret)
      assert.are.equal(1, #srv:subscriptions())
      for _, req in ipairs(srv:requests()) do assert.are.equal(key, req.headers["idempotency-key"]) end
    end)

    it("the same key with a different body is unprocessable_entity, not retried", function()
      assert(create({ idempotency_key = "k-1" }, { url = URL }))
      local sub, err = create({ idempotency_key = "k-1" }, { url = "https://example.com/other" })
      assert.is_nil(sub)
      assert.are.equal("unprocessable_entity", err.type)
      assert.are.equal("Idempotency-Key was already used with a different request body", err.message)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, #srv:subscriptions())
    end)

    it("each call draws a new key", function()
      assert(create())
      assert(create())
      local reqs = srv:requests()
      assert.are_not.equal(reqs[1].headers["idempotency-key"], reqs[2].headers["idempotency-key"])
      assert.are.equal(2, #srv:subscriptions())
    end)

    it("a bad key is refused before sending", function()
      local _, err = create { idempotency_key = "two words" }
      assert.are.equal("invalid_request", err.type)
      assert.are.equal('options.idempotency_key must be 1 to 255 printable ASCII characters without spaces '
        .. '(got "two words")', err.message)
      assert.are.equal(0, err.attempts)
      assert.are.same({}, srv:requests())
    end)
  end)

  describe("a fault inside cerca once a request went out", function()
    -- What a caller's finalizer that raises at an allocation (Lua 5.1 to
    -- 5.3 pass its error on) or memory running out would do: a raise in
    -- the middle of a create, placed here by replacing one step.
    local function faulty(step)
      local c = helpers.client(srv, { max_retries = 0 })
      local rt = c._runtime
      local attempt = rt.attempt
      rt.attempt = function(self, request) return step(attempt(self, request)) end
      return c
    end

    local function assert_repeatable(err, kept_body)
      assert.is_true(cerca.is_error(err))
      assert.are.equal("internal", err.type)
      assert.is_true(err.maybe_created)
      assert.is_true(err.request_sent)
      assert.is_string(err.idempotency_key)
      assert.matches("repeat", err.message, 1, true)
      assert.matches(err.idempotency_key, tostring(err), 1, true)
      if kept_body then assert.are.equal(kept_body, err.body) end
      -- The repeat under its key gets the subscription made, and no other.
      local sub, again, res = client.webhooks.create("fleet_1", { url = URL },
        { idempotency_key = err.idempotency_key })
      assert.is_nil(again)
      assert.are.equal(2, #srv:requests())
      assert.are.equal(err.idempotency_key, res.idempotency_key)
      return sub
    end

    it("after the answer came, lost inside: the error has the key to repeat with", function()
      local c = faulty(function() error("out of memory") end)
      local sub, err = c.webhooks.create("fleet_1", { url = URL })
      c:close()
      assert.is_nil(sub)
      assert.matches("cerca failed inside this call (", err.message, 1, true)
      assert_repeatable(err)
    end)

    it("while the answer is read: its 2xx is kept in err.body, with the key", function()
      local body
      local c = faulty(function(res)
        body = res.body
        -- The next field the call reads raises.
        return setmetatable(res, { __index = function() error("a finalizer raised") end })
      end)
      local sub, err = c.webhooks.create("fleet_1", { url = URL })
      c:close()
      assert.is_nil(sub)
      assert.matches("its answer (HTTP 201) is kept in err.body", err.message, 1, true)
      assert.are.equal(201, err.status)
      local made = assert_repeatable(err, body)
      -- The secret kept is the subscription's: nothing was lost.
      assert.are.equal(cjson.decode(body).secret, made.secret)
    end)

    it("before anything is sent, quoting the API key: the error does not print it", function()
      local call = require "cerca.call"
      local new = call.new
      call.new = function() error("a finalizer raised near Bearer " .. srv.api_key) end
      local ok, sub, err = pcall(client.webhooks.create, "fleet_1", { url = URL })
      call.new = new
      assert.is_true(ok)
      assert.is_nil(sub)
      assert.are.equal("internal", err.type)
      assert.is_nil(string.find(tostring(err), srv.api_key, 1, true))
      assert.is_nil(string.find(err.message, srv.api_key, 1, true))
      assert.are.equal(0, #srv:requests())
    end)

    it("in any public function of a client, quoting the API key: the error does not print it", function()
      local call = require "cerca.call"
      local new = call.new
      call.new = function() error("a finalizer raised near Bearer " .. srv.api_key) end
      local errs = {
        select(2, client:request("POST", "/fleets/fleet_1/webhooks", { url = URL })),
        select(2, client:prepare("POST", "/fleets/fleet_1/webhooks", { url = URL })),
        select(2, client.webhooks.check("fleet_1", { url = URL })),
      }
      local results = client.webhooks.create_many({ { fleet_id = "fleet_1", params = { url = URL } } })
      call.new = new
      errs[4] = results and results[1] and results[1].error
      for i = 1, 4 do
        assert.is_true(cerca.is_error(errs[i]), "call " .. i)
        assert.are.equal("internal", errs[i].type, "call " .. i)
        assert.is_nil(string.find(tostring(errs[i]), srv.api_key, 1, true), "call " .. i)
      end
      assert.are.equal(0, #srv:requests())
    end)

    it("while the answer is made into the subscription: the answer is kept in err.body, with the key", function()
      local webhooks = require "cerca.webhooks"
      local subscription = webhooks.subscription
      webhooks.subscription = function() error("a finalizer raised") end
      local ok, sub, err = pcall(client.webhooks.create, "fleet_1", { url = URL })
      webhooks.subscription = subscription
      assert.is_true(ok)
      assert.is_nil(sub)
      assert.matches("cerca failed inside this call (", err.message, 1, true)
      assert.matches("its answer (HTTP 201) is kept in err.body", err.message, 1, true)
      assert.are.equal(201, err.status)
      local made = assert_repeatable(err)
      assert.are.equal(cjson.decode(err.body).secret, made.secret)
    end)
  end)
end)
