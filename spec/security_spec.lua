-- The promises of the README's Security section, tried as a hostile
-- server, a careless caller and an attacker would: a created subscription
-- is never lost, the API key and the secret are never printed, input is
-- read once and what was checked is what is sent, and no public function
-- raises. Every case runs against the reference server on 127.0.0.1.
local helpers = require "spec.helpers"
local cerca = require "cerca"
local cjson = require "cjson"
local core = require "cerca.core"
local unpack = table.unpack or unpack

local URL = "https://example.com/webhook"
-- A key with the characters that escapes and patterns trip on: "/" (JSON
-- writes it "\/"), ";" (ends a header parameter) and "=".
local KEY = "sk_live/Ab;c=D9x"
local ESCAPED_KEY = "sk_live\\/Ab;c=D9x"
local KEY_TAIL = ";c=D9x"
local SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
-- Lua 5.2 to 5.4 run a __pairs metamethod; Lua 5.1 and LuaJIT do not.
local RUNS_PAIRS = false
for _ in pairs(setmetatable({}, { __pairs = function() return next, { true }, nil end })) do RUNS_PAIRS = true end

local function subscription_body(fields)
  local sub = { id = "wh_1", fleetId = "fleet_1", url = URL, events = { "agent.created" }, enabled = true,
    createdAt = "2026-12-01T00:00:00Z", updatedAt = "2026-12-01T00:00:00Z", secret = SECRET }
  for k, v in pairs(fields or {}) do sub[k] = v end
  return cjson.encode(sub)
end

-- Every string reachable from v (keys and values), for "never anywhere" checks.
local function strings_of(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do
      strings_of(k, out, seen)
      strings_of(x, out, seen)
    end
  end
  return out
end

local function assert_nowhere(needle, ...)
  for i = 1, select("#", ...) do
    for _, s in ipairs(strings_of((select(i, ...)))) do
      assert.is_nil(s:find(needle, 1, true), ("%q found in %q"):format(needle, s))
    end
  end
end

describe("security", function()
  local srv, client, lines

  setup(function()
    srv = helpers.start_server { api_key = KEY }
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
    lines = {}
    client = helpers.client(srv, { log_level = "debug", max_retries = 0,
      logger = function(_, line) lines[#lines + 1] = line end })
  end)

  after_each(function()
    client:close()
  end)

  local function log_text() return table.concat(lines, "\n") end

  describe("a subscription is never lost", function()
    it("a number JSON cannot carry back stays encodable: 1e999 out, the same value in", function()
      srv:enqueue { status = 201, body = subscription_body():gsub("}$", ',"big":1e999,"small":[-1e999,2]}') }
      local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      assert.are.equal(math.huge, sub.big)
      local text = assert(cerca.encode_json(sub))
      assert.matches('"big":1e999', text, 1, true)
      assert.matches('"small":[-1e999,2]', text, 1, true)
      assert.matches(SECRET, text, 1, true)
      local back = cjson.decode(text)
      assert.are.equal(math.huge, back.big)
      assert.are.equal(-math.huge, back.small[1])
    end)

    for _, case in ipairs {
      { "no secret", subscription_body():gsub(',?"secret":"[^"]*"', "") },
      { "a secret that is not a string", subscription_body():gsub('"secret":"[^"]*"', '"secret":42') },
      { "null", "null" },
      { "an array", "[1,2]" },
      { "an empty body", "" },
    } do
      it("an unusable 2xx (" .. case[1] .. ") keeps the raw answer and the key to repeat with", function()
        srv:enqueue { status = 201, body = case[2] }
        local sub, err = client.webhooks.create("fleet_1", { url = URL })
        assert.is_nil(sub)
        assert.are.equal("invalid_response", err.type)
        assert.are.equal(201, err.status)
        assert.are.equal(case[2], err.body)
        assert.are.equal(srv:requests()[1].headers["idempotency-key"], err.idempotency_key)
        assert.is_true(err.request_sent)
      end)
    end

    it("an answer that names another fleet is not this call's answer", function()
      srv:enqueue { status = 201, body = subscription_body { fleetId = "fleet_other" } }
      local sub, err = client.webhooks.create("fleet_1", { url = URL })
      assert.is_nil(sub)
      assert.are.equal("invalid_response", err.type)
      assert.matches("names another fleet", err.message, 1, true)
      assert.are.equal(srv:requests()[1].headers["idempotency-key"], err.idempotency_key)
      -- Another call's secret is not handed to this caller.
      assert.is_nil(err.body)
      assert_nowhere(SECRET, err)
    end)

    it("in a batch too, an answer for another fleet fails its item alone", function()
      srv:enqueue { status = 201, body = subscription_body { fleetId = "fleet_other" } }
      local results = client.webhooks.create_many({
        { fleet_id = "fleet_1", params = { url = URL } },
      }, { concurrency = 1 })
      assert.is_false(results[1].ok)
      assert.matches("names another fleet", results[1].error.message, 1, true)
      assert.is_string(results[1].error.idempotency_key)
    end)
  end)

  describe("the API key is never printed", function()
    local function echo_error(status, body, headers)
      srv:enqueue { status = status, body = body, headers = headers }
      local sub, err = client.webhooks.create("fleet_1", { url = URL })
      assert.is_nil(sub)
      return err
    end

    local function assert_key_gone(err)
      for _, form in ipairs { KEY, ESCAPED_KEY, KEY_TAIL } do
        assert_nowhere(form, err, { tostring(err), cerca.pretty(err) }, lines)
      end
    end

    it("echoed in a 401 message, JSON-escaped, and in X-Request-Id", function()
      local err = echo_error(401, '{"error":{"message":"bad key ' .. ESCAPED_KEY .. '"}}',
        { ["X-Request-Id"] = "req_" .. KEY })
      assert.are.equal("authentication", err.type)
      assert.are.equal("bad key [redacted]", err.message)
      assert.are.equal("req_[redacted]", err.request_id)
      assert_key_gone(err)
    end)

    it("written with \\u escapes, or percent-encoded in a Location", function()
      local unicode = KEY:gsub("_", "\\u005f"):gsub("/", "\\u002F")
      local err = echo_error(403, '{"message":"' .. unicode .. '","also":"' .. unicode .. '"}')
      assert.are.equal("[redacted]", err.message)
      assert_key_gone(err)
      assert.is_nil(err.body:find(unicode, 1, true))
      err = echo_error(302, "{}", { Location = "https://x.example/?k=" .. KEY:gsub("[/;=]", function(c)
        return ("%%%02X"):format(c:byte()) end) })
      assert.matches("Location: https://x.example/?k=[redacted]", err.message, 1, true)
      assert_key_gone(err)
      assert.are.equal("https://x.example/?k=[redacted]", err.headers.location)
    end)

    it("in an error's headers, percent-encoded or JSON-escaped, is removed there too", function()
      local percent = KEY:gsub("[/;=]", function(c) return ("%%%02X"):format(c:byte()) end)
      local unicode = KEY:gsub("_", "\\u005f"):gsub("/", "\\u002F")
      local err = echo_error(400, "{}", { ["X-Echo-Percent"] = "k=" .. percent, ["X-Echo-Json"] = "k=" .. unicode,
        ["X-Echo-Slash"] = "k=" .. ESCAPED_KEY })
      assert.are.equal("k=[redacted]", err.headers["x-echo-percent"])
      assert.are.equal("k=[redacted]", err.headers["x-echo-json"])
      assert.are.equal("k=[redacted]", err.headers["x-echo-slash"])
      for _, form in ipairs { KEY, ESCAPED_KEY, KEY_TAIL, percent, unicode } do
        assert_nowhere(form, err, { tostring(err), cerca.pretty(err) }, lines)
      end
    end)

    it("echoed by a successful create, in its headers and its fields", function()
      srv:enqueue { status = 201, body = subscription_body { url = "https://example.com/" .. KEY },
        headers = { ["X-Request-Id"] = KEY } }
      local sub, _, res = client.webhooks.create("fleet_1", { url = URL })
      assert.is_table(sub)
      assert.are.equal(SECRET, sub.secret)
      -- The block as received and the table made from it on first read.
      assert.is_string(res.raw_headers)
      for _, form in ipairs { KEY, ESCAPED_KEY, KEY_TAIL } do
        assert_nowhere(form, sub, res, res.headers, { tostring(sub), cerca.pretty(sub) }, lines)
      end
      assert.are.equal("[redacted]", res.headers["x-request-id"])
      assert.are.equal("[redacted]", res.request_id)
    end)

    it("echoed percent-encoded or escaped as text in a successful create's fields and names", function()
      local percent = KEY:gsub("[_/;=]", function(c) return ("%%%02X"):format(c:byte()) end)
      local every = KEY:gsub(".", function(c) return ("%%%02x"):format(c:byte()) end)
      srv:enqueue { status = 201, body = subscription_body { url = "https://example.com/?k=" .. percent,
        description = "every byte: " .. every, nested = { { ["k=" .. percent] = true } } } }
      local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      assert.are.equal(SECRET, sub.secret)
      assert.are.equal("https://example.com/?k=[redacted]", sub.url)
      assert.are.equal("every byte: [redacted]", sub.description)
      assert.is_true(sub.nested[1]["k=[redacted]"])
      for _, form in ipairs { KEY, ESCAPED_KEY, KEY_TAIL, percent, every } do
        assert_nowhere(form, sub, { tostring(sub), cerca.pretty(sub) }, lines)
      end
    end)

    it("leaves a header named with only the key's first bytes as the server named it", function()
      srv:enqueue { action = "raw", body = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\nX-" .. KEY:sub(1, 5)
        .. ": v1\r\nX-Value: " .. KEY:sub(1, 5) .. "\r\n\r\n{}" }
      local _, err = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal("v1", err.headers["x-" .. KEY:sub(1, 5):lower()])
      assert.are.equal(KEY:sub(1, 5), err.headers["x-value"])
    end)

    it("holding a % or a backslash, echoed with that byte escaped, is removed", function()
      for _, case in ipairs { { "sk_live_ab%cdEFGH12345678", "%", "%25" }, { "sk_live_ab\\cdEFGH12345678", "\\",
        "\\u005c" } } do
        local key, plain, escaped = case[1], case[2], case[3]
        local other = assert(cerca.new { api_key = key, base_url = srv.http_url, max_retries = 0 })
        local echo = key:gsub(plain == "%" and "%%" or "\\", function() return escaped end)
        srv:enqueue { status = 401, body = '{"error":{"message":"bad key ' .. echo .. '"}}',
          headers = { ["X-Request-Id"] = "req_" .. echo, ["X-Echo"] = echo } }
        local _, err = other.webhooks.create("fleet_1", { url = URL })
        other:close()
        assert.are.equal("authentication", err.type)
        assert.are.equal("req_[redacted]", err.request_id)
        assert.are.equal("[redacted]", err.headers["x-echo"])
        assert_nowhere("cdEFGH1234", { err.message, err.request_id, err.headers, tostring(err) })
      end
    end)

    it("of a 2xx that broke off, in a successful request's created_before, is removed", function()
      local retrying = helpers.client(srv, { max_retries = 1 })
      srv:enqueue { action = "partial", status = 201, body = '{"id":"x","note":"long enough to be cut"}', bytes = 10,
        headers = { ["X-Request-Id"] = "req_" .. KEY, ["Retry-After"] = "0" } }
      srv:enqueue { status = 201, body = "{}" }
      local res = assert(retrying:request("POST", "/things", {}))
      retrying:close()
      assert.is_table(res.created_before)
      assert.are.equal("req_[redacted]", res.created_before.request_id)
      assert_nowhere(KEY_TAIL, res.created_before, { tostring(res.created_before.error) })
    end)

    it("leaves a header that only starts like the key or a secret as the server wrote it", function()
      -- A "%" elsewhere in the block makes every value be read for escapes.
      local headers = { ["X-Key-Format"] = KEY:sub(1, 8) .. "...", ["X-Secret-Format"] = SECRET:sub(1, 9) .. "...",
        ["X-Ends"] = "see " .. KEY:sub(1, 6), Link = "<https://example.com/a%20b>; rel=help" }
      srv:enqueue { status = 201, body = subscription_body(), headers = headers }
      local _, _, res = client.webhooks.create("fleet_1", { url = URL })
      for name, value in pairs(headers) do assert.are.equal(value, res.headers[name:lower()]) end
      srv:enqueue { status = 200, body = "{}", headers = headers }
      res = assert(client:request("GET", "/x"))
      for name, value in pairs(headers) do assert.are.equal(value, res.headers[name:lower()]) end
    end)

    it("leaves a field that only ends in the key's first bytes as the server wrote it", function()
      -- A decoded string is whole: a start of the key where it ends, or
      -- before "...", is the server's own text, not a cut secret.
      local fields = { url = "https://example.com/hooks/desk_l", description = "100% of keys look like sk_li...",
        tag = "a\\b sk_li" }
      srv:enqueue { status = 201, body = subscription_body(fields) }
      local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      for name, text in pairs(fields) do assert.are.equal(text, sub[name]) end
    end)

    it("echoed in a field nested as deep as the decoder accepts, and printed as JSON", function()
      -- The walk that removes it reaches every level an answer may have.
      for _, depth in ipairs { 70, core.MAX_DECODE_DEPTH - 1 } do
        local deep = ('{"x":'):rep(depth - 1) .. cjson.encode { [KEY] = KEY } .. ("}"):rep(depth - 1)
        srv:enqueue { status = 201, body = subscription_body():gsub("}$", ',"deep":' .. deep .. "}") }
        local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
        assert.are.equal(SECRET, sub.secret)
        for _, form in ipairs { KEY, ESCAPED_KEY, KEY_TAIL } do
          assert_nowhere(form, sub, { tostring(sub), cerca.pretty(sub), assert(cerca.encode_json(sub)) }, lines)
        end
      end
    end)

    -- A text cut short (the API's message at 500 bytes, an answer at
    -- max_response_size) must not keep the start of a key it cut through.
    it("cut inside the key, by the message's bound or by max_response_size, leaves none of it", function()
      for n = 1, #KEY - 1 do
        local err = echo_error(401, cjson.encode { error = { message = ("x"):rep(497 - n) .. KEY .. " (rejected)" } })
        assert.are.equal("authentication", err.type)
        assert_nowhere(KEY:sub(1, 4), err, { tostring(err), cerca.pretty(err) }, lines)
      end
      client:close()
      client = helpers.client(srv, { log_level = "debug", max_retries = 0, max_response_size = 2000,
        logger = function(_, line) lines[#lines + 1] = line end })
      for _, status in ipairs { 500, 200 } do
        for n = 1, #KEY - 1 do
          lines = {}
          -- No Content-Length: the answer ends when the connection closes.
          local head = ("HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"):format(status)
          srv:enqueue { action = "raw", body = head .. ("y"):rep(2000 - n) .. KEY .. ("z"):rep(100) }
          local sub, err = client.webhooks.create("fleet_1", { url = URL })
          assert.is_nil(sub)
          -- From 4 bytes of it on; fewer say next to nothing.
          assert.are.equal(("y"):rep(2000 - n) .. (n >= 4 and "[redacted]" or KEY:sub(1, n)), err.body)
          assert_nowhere(KEY:sub(1, 4), err, { tostring(err), cerca.pretty(err) }, lines)
        end
      end
    end)

    it("as the name of a header of an error, in any case, is removed from err.headers", function()
      local key = "sk_Test_Key1234567"
      local other = assert(cerca.new { api_key = key, base_url = srv.http_url, max_retries = 0 })
      srv:enqueue { action = "raw", body = "HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n" .. key .. ": echoed\r\n"
        .. "X-" .. key:upper() .. ": also\r\n\r\n{}" }
      local _, err = other.webhooks.create("fleet_1", { url = URL })
      other:close()
      assert.are.equal("echoed", err.headers["[redacted]"])
      assert.are.equal("also", err.headers["x-[redacted]"])
      assert_nowhere(key:lower(), err, { tostring(err), cerca.pretty(err) })
      assert_nowhere(key, err)
    end)

    it("too short to be a credential, is not searched for: the secret and the answer reach the caller whole",
      function()
        local short = helpers.start_server { api_key = "Mf", tls = false }
        local body = subscription_body()
        short:enqueue { status = 201, body = body, headers = { ["X-Request-Id"] = "req_Mf" } }
        local c = helpers.client(short)
        local sub, err, res = c.webhooks.create("fleet_1", { url = URL })
        c:close()
        short:stop()
        assert.is_table(sub, tostring(err))
        assert.are.equal(SECRET, sub.secret)
        assert.are.equal("req_Mf", res.request_id)
      end)

    it("given in the wrong argument, is not repeated by the refusal", function()
      local refusals = {}
      local _, err = cerca.new { api_key = KEY, base_url = srv.http_url, log_level = KEY }
      refusals[#refusals + 1] = err
      _, err = cerca.new { api_key = KEY, base_url = srv.http_url, timeout = KEY }
      refusals[#refusals + 1] = err
      _, err = cerca.new { api_key = KEY, base_url = srv.http_url, ca_file = "/nonexistent/" .. KEY }
      refusals[#refusals + 1] = err
      -- The options read through a metatable: the key they give is the one removed.
      local conf = { api_key = KEY, base_url = srv.http_url, timeout = KEY }
      _, err = cerca.new(setmetatable({}, { __pairs = function() return next, conf, nil end }))
      if RUNS_PAIRS then refusals[#refusals + 1] = err end
      _, err = client.webhooks.create("fleet_1", { url = URL }, { idempotency_key = KEY .. " x" })
      refusals[#refusals + 1] = err
      _, err = client.webhooks.create("fleet_1", { url = URL }, { [KEY] = 1 })
      refusals[#refusals + 1] = err
      _, err = client.webhooks.create("fleet_1", { url = URL, extra_body = { [KEY] = print } })
      refusals[#refusals + 1] = err
      local results = assert(client.webhooks.create_many { { fleet_id = "fleet_1", params = { url = URL },
        options = { timeout = KEY } } })
      refusals[#refusals + 1] = results[1].error
      for _, e in ipairs(refusals) do
        assert.is_true(cerca.is_error(e))
        assert.matches("[redacted]", e.message, 1, true)
        assert_nowhere(KEY:sub(1, 8), e, { tostring(e), cerca.pretty(e) })
      end
      assert.are.equal(0, #srv:requests())
    end)

    it("given as any argument of any call of a client, in any shape, is not repeated by the refusal", function()
      -- The key as each argument is given: as it is, inside a list, as a
      -- table's name, and raised by a metamethod that reads it.
      local shapes = {
        function() return KEY end,
        function() return { KEY } end,
        function() return { [KEY] = 1 } end,
        function() return setmetatable({}, { __index = function() error(KEY) end }) end,
      }
      local call = assert(client:prepare("POST", "/fleets/fleet_1/webhooks", { url = URL }))
      local function on_done() end
      -- Each public call with good arguments; one at a time is replaced.
      local calls = {
        { "client:request", function(...) return client:request(...) end,
          { "POST", "/fleets/fleet_1/webhooks", { url = URL }, {} } },
        { "client:prepare", function(...) return client:prepare(...) end,
          { "POST", "/fleets/fleet_1/webhooks", { url = URL }, {} } },
        { "client:request_many", function(...) return client:request_many(...) end,
          { { call }, 1, on_done, nil, nil } },
        { "webhooks.create", client.webhooks.create, { "fleet_1", { url = URL }, {} } },
        { "webhooks.check", client.webhooks.check, { "fleet_1", { url = URL }, {} } },
        { "webhooks.create_many", client.webhooks.create_many,
          { { { fleet_id = "fleet_1", params = { url = URL } } }, {} } },
      }
      local before, tried = #srv:requests(), 0
      for _, c in ipairs(calls) do
        local name, fn, good = c[1], c[2], c[3]
        for position = 1, #good do
          for s, shape in ipairs(shapes) do
            local args = {}
            for k = 1, #good do args[k] = good[k] end
            args[position] = shape()
            local value, err = fn(unpack(args, 1, #good))
            local what = ("%s, argument %d, shape %d"):format(name, position, s)
            -- create_many refuses an item alone: its error is in the results.
            if err == nil and type(value) == "table" and value[1] and value[1].error then err = value[1].error end
            if err ~= nil then
              tried = tried + 1
              assert.is_true(cerca.is_error(err), what)
              assert_nowhere(KEY_TAIL, err, { tostring(err), cerca.pretty(err) })
            end
          end
        end
      end
      -- Most of them are refused (some shapes are fine where any table is).
      assert.is_true(tried >= 40, "refusals: " .. tried)
      -- The calls request_many reads later: refused as they come, through on_done.
      local ended = {}
      local more = { call }
      local read = false
      client:request_many(more, 1, function(i, value, err) ended[i] = { value = value, err = err } end, function()
        if not read then
          read = true
          more[#more + 1] = KEY
        end
        return false
      end)
      assert.are.equal(201, ended[1].value.status)
      local refusal = ended[2].err
      assert.are.equal("invalid_request", refusal.type)
      assert.are.equal("calls[2]", refusal.field)
      assert_nowhere(KEY_TAIL, refusal, { tostring(refusal), cerca.pretty(refusal) })
      -- Nothing refused was sent: only the prepared call went out.
      assert.are.equal(before + 1, #srv:requests())
    end)

    it("given as any option of cerca.new that the client keeps, is refused there, unrepeated", function()
      -- A CA file that exists, at a path that spells the key (its "/" makes
      -- a folder of the key's start).
      local dir = os.tmpname()
      os.remove(dir)
      local ca_path = dir .. "/" .. KEY
      assert(helpers.sh("mkdir -p " .. helpers.q(ca_path:match("^(.*)/"))))
      helpers.write(ca_path, helpers.read(srv.ca_file))
      local kept = "because the client keeps it and cerca.pretty(client) prints it"
      for _, case in ipairs { { "thread_pool", KEY }, { "thread_pool", "x-" .. KEY }, { "ca_file", ca_path } } do
        local name, value = case[1], case[2]
        local c, err = cerca.new { api_key = KEY, base_url = srv.http_url, [name] = value }
        assert.is_nil(c, name .. " " .. kept)
        assert.are.equal("configuration", err.type)
        assert.are.equal(name, err.field)
        assert.matches(name .. " holds the API key", err.message, 1, true)
        assert_nowhere(KEY_TAIL, err, { tostring(err), cerca.pretty(err) })
      end
      -- The same file named by CERCA_CA_FILE.
      local out, status = helpers.run_lua(([[
        local cerca = require "cerca"
        local c, err = cerca.new { api_key = %q, base_url = %q }
        print(c and "made" or err.field, c and cerca.pretty(c) or tostring(err))
      ]]):format(KEY, srv.http_url), { CERCA_CA_FILE = ca_path })
      helpers.sh("rm -rf " .. helpers.q(dir))
      assert.are.equal(0, status, out)
      assert.matches("^CERCA_CA_FILE\t", out)
      assert.matches("CERCA_CA_FILE holds the API key", out, 1, true)
      assert.is_nil(out:find(KEY_TAIL, 1, true), out)
    end)

    it("in a table whose metatable has __index, in client:request's body, is refused: nothing sent", function()
      local before = #srv:requests()
      local defaults = setmetatable({ url = URL }, { __index = { events = { "agent.created" } } })
      local res, err = client:request("POST", "/fleets/fleet_1/webhooks", defaults)
      assert.is_nil(res)
      assert.are.equal("invalid_request", err.type)
      assert.matches("has a metatable with __index: a table's own fields are sent, never those __index gives",
        err.message, 1, true)
      -- Nested too; and cerca.encode_json, which writes output, still writes such a table.
      res, err = client:request("POST", "/fleets/fleet_1/webhooks", { url = URL, extra = defaults })
      assert.is_nil(res)
      assert.matches("__index", err.message, 1, true)
      assert.are.equal(before, #srv:requests())
      assert.are.equal('{"url":"https:\\/\\/example.com\\/webhook"}', cerca.encode_json(defaults))
    end)

    it("is removed from every text an error carries, the field a refusal names included", function()
      local errors, redact = require "cerca.errors", require "cerca.redact"
      local kept = errors.new("invalid_response", "m", { idempotency_key = "order-42-whsec_retry" })
      errors.scrub(kept, redact.list(KEY))
      -- The key to repeat the call with is used as it is, never rewritten.
      assert.are.equal("order-42-whsec_retry", kept.idempotency_key)
      local err = errors.new("invalid_request", "bad " .. KEY, { field = "params.extra_body." .. KEY,
        request_id = "req_" .. KEY, hint = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", body = "raw " .. KEY })
      errors.scrub(err, redact.list(KEY))
      assert.are.equal("params.extra_body.[redacted]", err.field)
      assert.are.equal("whsec_[redacted]", err.hint)
      assert.are.equal("raw [redacted]", err.body)
      assert_nowhere(KEY:sub(1, 8), err, { tostring(err), cerca.pretty(err) })
    end)

    it("given as an idempotency key is refused, nothing sent: that key is kept and printed whole", function()
      for _, own in ipairs { KEY, "k-" .. KEY, "k-" .. ESCAPED_KEY } do
        local sub, err = client.webhooks.create("fleet_1", { url = URL }, { idempotency_key = own })
        assert.is_nil(sub)
        assert.are.equal("invalid_request", err.type)
        assert.are.equal("options.idempotency_key", err.field)
        assert.are.equal(0, err.attempts)
        assert_nowhere(KEY_TAIL, err, { tostring(err), cerca.pretty(err) })
        local results = assert(client.webhooks.create_many { { fleet_id = "fleet_1", params = { url = URL },
          options = { idempotency_key = own } } })
        assert.are.equal("invalid_request", results[1].error.type)
        assert_nowhere(KEY_TAIL, results)
      end
      assert.are.same({}, srv:requests())
      -- A key of your own still goes through whole.
      local _, _, res = assert(client.webhooks.create("fleet_1", { url = URL }, { idempotency_key = "mine-1" }))
      assert.are.equal("mine-1", res.idempotency_key)
    end)

    it("is shown by no table a client holds: cerca.pretty and tostring of each, after calls", function()
      assert(client.webhooks.create("fleet_1", { url = URL }))
      srv:enqueue { status = 500, body = "{}" }
      local _, err = client.webhooks.create("fleet_1", { url = URL })
      assert.is_true(cerca.is_error(err))
      local seen, shown = {}, 0
      local function walk(t, depth)
        if seen[t] or depth > 8 then return end
        seen[t] = true
        shown = shown + 1
        assert_nowhere(KEY_TAIL, { cerca.pretty(t), tostring(t) })
        for k, v in pairs(t) do
          if type(k) == "table" then walk(k, depth + 1) end
          if type(v) == "table" then walk(v, depth + 1) end
        end
        local mt = getmetatable(t)
        if type(mt) == "table" then walk(mt, depth + 1) end
      end
      walk(client, 0)
      walk(err, 0)
      -- A call prepared for request_many, with headers of its own, and its
      -- header lines (the key's among them), which print as a list of secrets.
      local call = assert(client:prepare("POST", "/fleets/fleet_1/webhooks", { url = URL },
        { headers = { ["X-Trace"] = "t1" } }))
      walk(call, 0)
      -- The client's workings were reached, its lists of secrets among them.
      assert.is_true(seen[client._profile.secrets] and seen[call.request.headers] and shown > 10)
      assert.are.equal("cerca.Secrets (1, not shown)", cerca.pretty(client._profile.secrets))
      assert.are.equal("cerca.HeaderLines (4, not shown)", cerca.pretty(call.request.headers))
      assert.is_nil(cerca.pretty(client):find("_profile", 1, true))
      -- Nor written as JSON.
      local text, why = cerca.encode_json(call.request)
      assert.is_nil(text)
      assert.matches("never written", why, 1, true)
    end)

    it("is sent in the Authorization header only: an argument that would carry it elsewhere is refused, unsent",
      function()
        local pct = KEY:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end)
        local function refused(field, kind, sub, err)
          assert.is_nil(sub, field)
          assert.are.equal(kind or "invalid_request", err.type, field)
          assert.are.equal(field, err.field)
          assert.matches("holds the API key, which is sent in the Authorization header only", err.message, 1, true)
          assert_nowhere(KEY_TAIL, err, { tostring(err), cerca.pretty(err) })
        end
        local create = client.webhooks.create
        -- In the URL (as the fleet's path segment, percent-encoded there).
        refused("fleet_id", nil, create(KEY, { url = URL }))
        refused("fleet_id", nil, create("fleet " .. KEY .. " 2", { url = URL }))
        -- In the body, as it is, percent-encoded or JSON-escaped there.
        refused("params.url", nil, create("fleet_1", { url = URL .. "?k=" .. KEY }))
        refused("params.url", nil, create("fleet_1", { url = URL .. "?k=" .. pct }))
        refused("params.extra_body.description", nil,
          create("fleet_1", { url = URL, extra_body = { description = "key: " .. KEY } }))
        refused("params.extra_body.meta", nil,
          create("fleet_1", { url = URL, extra_body = { meta = { a = { 1, "x" .. KEY } } } }))
        refused("params.extra_body", nil, create("fleet_1", { url = URL, extra_body = { [KEY] = true } }))
        -- In another header.
        refused("options.headers.X-Key", nil, create("fleet_1", { url = URL }, { headers = { ["X-Key"] = KEY } }))
        refused("options.headers", nil, create("fleet_1", { url = URL }, { headers = { ["X-" .. pct] = "1" } }))
        -- In a batch's item, and through client:request and client:prepare.
        local results = assert(client.webhooks.create_many { { fleet_id = "fleet_1", params = { url = URL } },
          { fleet_id = KEY, params = { url = URL } } })
        assert.is_true(results[1].ok)
        refused("fleet_id", nil, nil, results[2].error)
        assert.are.equal(2, results[2].error.item)
        refused("path", nil, client:request("GET", "/fleets/" .. pct))
        refused("body", nil, client:request("POST", "/fleets/fleet_1/webhooks", { url = URL, note = KEY }))
        refused("body", nil, client:prepare("POST", "/fleets/fleet_1/webhooks", { [KEY] = 1 }))
        -- In the client's options.
        refused("base_url", "configuration", cerca.new { api_key = KEY, base_url = srv.http_url .. "/" .. pct })
        refused("headers.X-Key", "configuration",
          cerca.new { api_key = KEY, base_url = srv.http_url, headers = { ["X-Key"] = "Bearer " .. KEY } })
        -- Only the batch's good item reached the server, its key in Authorization alone.
        local reqs = srv:requests()
        assert.are.equal(1, #reqs)
        assert.are.equal("/fleets/fleet_1/webhooks", reqs[1].uri)
        assert.is_nil(reqs[1].body:find("D9x", 1, true))
        assert_nowhere(KEY_TAIL, lines)
      end)

    it("given in the wrong argument, is not repeated even cut short, nor by request, prepare or the env", function()
      -- Over the 40 bytes a refused value is quoted in full: cut to 37 and "...".
      local long = "sk_live_" .. string.rep("A1b2C3d4", 6)
      local c = assert(cerca.new { api_key = long, base_url = srv.http_url, log_level = "off", max_retries = 0 })
      local refusals = {}
      local _, err = c.webhooks.create("fleet_1", { url = long })
      refusals[#refusals + 1] = err
      _, err = c.webhooks.create("fleet_1", { url = URL, events = { long } })
      refusals[#refusals + 1] = err
      local results = assert(c.webhooks.create_many { { fleet_id = "fleet_1", params = { url = long } } })
      refusals[#refusals + 1] = results[1].error
      _, err = cerca.new { api_key = long, base_url = srv.http_url, timeout = long }
      refusals[#refusals + 1] = err
      _, err = c:request("GET", "/fleets", nil, { idempotency_key = long .. " " })
      refusals[#refusals + 1] = err
      _, err = c:prepare("POST", "/fleets/fleet_1/webhooks", {}, { timeout = long })
      refusals[#refusals + 1] = err
      _, err = client:request("GET", "/fleets", nil, { idempotency_key = KEY .. " " })
      refusals[#refusals + 1] = err
      c:close()
      for _, e in ipairs(refusals) do
        assert.is_true(cerca.is_error(e))
        assert.matches("[redacted]", e.message, 1, true)
        assert_nowhere(long:sub(1, 12), e, { tostring(e), cerca.pretty(e) })
        assert_nowhere(KEY:sub(1, 8), e, { tostring(e), cerca.pretty(e) })
      end
      -- The key from CERCA_API_KEY, given in an option of cerca.new.
      local out = helpers.run_lua([[
        local cerca = require "cerca"
        for _, opts in ipairs { { base_url = os.getenv("K") }, { timeout = os.getenv("K") },
            { [os.getenv("K")] = 1 } } do
          local _, err = cerca.new(opts)
          print(tostring(err))
        end
      ]], { CERCA_API_KEY = long, K = long })
      assert.are.equal(3, select(2, out:gsub("%[redacted%]", "")), out)
      assert.is_nil(out:find(long:sub(1, 12), 1, true), out)
      assert.are.equal(0, #srv:requests())
      -- Dots of the key's own are not a cut; its backslash escaped or not.
      local dotted = "sk_live_ab...cd\\ef"
      for _, text in ipairs { "got sk_live_ab...cd\\\\ef!", "got sk_live_ab...cd\\ef!", "got sk_live_ab...!" } do
        assert.are.equal(text:match("^got sk_live_ab...cd") and "got [redacted]!" or "got [redacted]...!",
          cerca.redact(text, dotted))
      end
    end)

    it("debug lines hide the whole key and whole whsec_ tokens, punctuation and \\/ included", function()
      srv:enqueue { status = 201, body = subscription_body():gsub("}$", ',"note":"whsec_ab\\/cdXYZW+q="}') }
      assert(client.webhooks.create("fleet_1", { url = URL }))
      local text = log_text()
      assert.matches("Authorization: [redacted]", text, 1, true)
      assert.is_nil(text:find(KEY_TAIL, 1, true), text)
      assert.is_nil(text:find("cdXYZW", 1, true), text)
      assert.is_nil(text:find(SECRET:sub(7), 1, true), text)
    end)
  end)

  describe("the secret is never printed where it was not asked for", function()
    it("echoed in X-Request-Id and in another field of the answer", function()
      srv:enqueue { status = 201, body = subscription_body { id = "wh_" .. SECRET },
        headers = { ["X-Request-Id"] = SECRET } }
      local sub, _, res = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal(SECRET, sub.secret)
      sub.secret = nil
      assert.is_string(res.raw_headers)
      assert_nowhere(SECRET:sub(7), sub, res, res.headers)
      assert.are.equal("[redacted]", res.request_id)
      sub.secret = SECRET
      assert_nowhere(SECRET:sub(7), { tostring(sub), cerca.pretty(sub) }, lines)
    end)

    it("echoed in X-Request-Id in a form no pattern knows stays out of the info log line", function()
      -- "%77" is "w": percent-encoded, the whsec_ shape is not there to see.
      srv:enqueue { status = 201, body = subscription_body(), headers = { ["X-Request-Id"] = "%77" .. SECRET:sub(2) } }
      local sub, _, res = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal(SECRET, sub.secret)
      assert.are.equal("[redacted]", res.request_id)
      assert.matches("request_id=[redacted]", log_text(), 1, true)
      assert_nowhere(SECRET:sub(7), lines)
    end)

    it("in another field written with only some of its \"/\" escaped, or as a field name", function()
      local secret = "whsec_Mf/Q9r8GKYqr/wjUPD8ILPZIo2LaLaSw"
      local mixed = "whsec_Mf/Q9r8GKYqr\\/wjUPD8ILPZIo2LaLaSw"
      local body = subscription_body { secret = secret }:gsub("}$", ',"note":"' .. mixed .. '"}')
      srv:enqueue { status = 201, body = body }
      local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      assert.are.equal(secret, sub.secret)
      assert.are.equal("[redacted]", sub.note)
      srv:enqueue { status = 201, body = subscription_body { [SECRET] = 1, nested = { [SECRET .. "x"] = true } } }
      sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      assert.are.equal(SECRET, sub.secret)
      assert.are.equal(1, sub["[redacted]"])
      assert.is_true(sub.nested["[redacted]x"])
      for _, shown in ipairs { tostring(sub), cerca.pretty(sub) } do assert_nowhere(SECRET:sub(7), { shown }) end
      sub.secret = nil
      assert_nowhere(SECRET:sub(7), sub)
    end)

    it("in another field percent-encoded (a URL's query), or as a field name", function()
      local percent = SECRET:gsub("[_+/=]", function(c) return ("%%%02X"):format(c:byte()) end)
      srv:enqueue { status = 201, body = subscription_body { url = "https://example.com/?s=" .. percent,
        nested = { [percent] = "whsec%5f" .. SECRET:sub(7) } } }
      local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      assert.are.equal(SECRET, sub.secret)
      assert.are.equal("https://example.com/?s=[redacted]", sub.url)
      assert.are.equal("[redacted]", sub.nested["[redacted]"])
      sub.secret = nil
      assert_nowhere(SECRET:sub(7), sub)
      assert_nowhere(percent:sub(7), sub)
      sub.secret = SECRET
      for _, shown in ipairs { tostring(sub), cerca.pretty(sub) } do
        assert_nowhere(SECRET:sub(7), { shown })
        assert_nowhere(percent:sub(7), { shown })
      end
    end)

    it("in another field escaped as text, in an answer without a percent sign", function()
      -- The field's decoded text is the secret JSON-escaped (each "/" as
      -- "\\/", or a byte as "\\u00XX"): the raw answer writes it nowhere
      -- as it is, yet printing it would show the secret.
      local secret = "whsec_Mf/Q9r8GKYqr/wjUPD8ILPZIo2LaLaSw"
      for _, written in ipairs { (secret:gsub("/", "\\/")), "\\u0077" .. secret:sub(2) } do
        srv:enqueue { status = 201, body = subscription_body { secret = secret, note = "s=" .. written } }
        local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
        assert.are.equal(secret, sub.secret)
        assert.are.equal("s=[redacted]", sub.note)
        for _, shown in ipairs { tostring(sub), cerca.pretty(sub) } do assert_nowhere("Q9r8GKYqr", { shown }) end
      end
    end)

    it("holding a control byte, written escaped in one field and raw in another", function()
      -- JSON writes a TAB "\\t"; a lenient decoder also takes it raw: the
      -- raw text then writes the secret once as is, and once another way.
      local secret = "whsec_Mf\tQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
      local escaped = "whsec_Mf\\tQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
      for _, case in ipairs { { escaped, secret }, { secret, escaped } } do
        local body = subscription_body { secret = "S" }:gsub('"S"', '"' .. case[1] .. '"')
          :gsub("}$", ',"note":"' .. case[2] .. '"}')
        srv:enqueue { status = 201, body = body }
        local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
        assert.are.equal(secret, sub.secret)
        assert.are.equal("[redacted]", sub.note)
        assert_nowhere("Q9r8GKYqr", { tostring(sub), cerca.pretty(sub) }, lines)
        lines = {}
      end
    end)

    it("made of digits, echoed as a JSON number however written", function()
      local secret = "738192046571"
      for _, written in ipairs { "738192046571", "7.38192046571e11", "738192046571.0" } do
        srv:enqueue { status = 201, body = subscription_body { secret = secret }:gsub("}$", ',"n":' .. written .. "}") }
        local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
        assert.are.equal(secret, sub.secret)
        assert.are.equal("[redacted]", sub.n)
        assert_nowhere("738192046571", { cerca.pretty(sub), assert(cerca.encode_json { n = sub.n }) })
        assert_nowhere("7381920", lines)
        assert_nowhere("7.381920", lines)
      end
    end)

    it("as a header's name in other letters is not a field name of res.headers", function()
      local secret = "whsec_0123456789abcdef0123456789abcdef"
      local body = subscription_body { secret = secret }
      srv:enqueue { action = "raw", body = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: "
        .. #body .. "\r\n" .. secret:upper() .. ": 1\r\nX-" .. KEY:upper() .. ": 2\r\n\r\n" .. body }
      local sub, _, res = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal(secret, sub.secret)
      assert.are.equal("1", res.headers["[redacted]"])
      assert.are.equal("2", res.headers["x-[redacted]"])
      assert_nowhere(secret:sub(7), res.headers)
      assert_nowhere(KEY:lower(), res.headers)
      -- In other letters and percent-encoded too (lower-cased, "%5F" is
      -- still the secret's "_").
      srv:enqueue { action = "raw", body = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: "
        .. #body .. "\r\n" .. secret:upper():gsub("_", "%%5F") .. ": 1\r\nX-" .. KEY:upper():gsub("_", "%%5F")
        .. ": 2\r\n\r\n" .. body }
      sub, _, res = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal(secret, sub.secret)
      assert.are.equal("1", res.headers["[redacted]"])
      assert.are.equal("2", res.headers["x-[redacted]"])
      assert_nowhere(secret:sub(7), res.headers)
      assert_nowhere(KEY:lower():sub(4), res.headers)
    end)

    it("known from a later attempt stays out of the error's texts of an earlier one, its body kept", function()
      -- The first answer breaks off, its request id echoing the secret; the
      -- second (the same subscription, replayed under the key) names it but
      -- cannot be used.
      local secret = "sec_live_Z9y8X7w6V5u4T3s2R1q0"
      local retrying = helpers.client(srv, { log_level = "debug", max_retries = 1,
        logger = function(_, line) lines[#lines + 1] = line end })
      for _, second in ipairs { { id = cjson.null }, { fleetId = "fleet_2" } } do
        lines = {}
        second.secret = secret
        local full = subscription_body { secret = secret }
        srv:enqueue { action = "partial", status = 201, body = full, bytes = 20,
          headers = { ["X-Request-Id"] = "req_" .. secret, ["X-Echo"] = secret, ["Retry-After"] = "0" } }
        srv:enqueue { status = 201, body = subscription_body(second), headers = { ["X-Request-Id"] = "req_2" } }
        local sub, err = retrying.webhooks.create("fleet_1", { url = URL })
        assert.is_nil(sub)
        assert.are.equal("invalid_response", err.type)
        assert.are.equal(full:sub(1, 20), err.body)
        assert.are.equal("req_[redacted]", err.request_id)
        assert.are.equal("[redacted]", err.headers["x-echo"])
        assert_nowhere(secret, { err.message, err.request_id, err.headers, tostring(err), cerca.pretty(err) })
        assert_nowhere(secret, lines)
      end
      retrying:close()
    end)

    it("of a success cut off before it decoded stays out of the debug log, the retry's secret known or not",
      function()
        -- The first answer breaks off inside its body: its secret is not
        -- known, and it is echoed, without the whsec_ shape, in a field
        -- before it.
        local secret = "c2VjcmV0LW9mLXRoaXMtc3Vic2NyaXB0aW9u"
        local full = '{"note":"' .. secret .. '",' .. subscription_body { secret = secret }:sub(2)
        local retrying = helpers.client(srv, { log_level = "debug", max_retries = 1,
          logger = function(_, line) lines[#lines + 1] = line end })
        srv:enqueue { action = "partial", status = 201, body = full, bytes = 60 }
        srv:enqueue { status = 201, body = full }
        local sub = assert(retrying.webhooks.create("fleet_1", { url = URL }))
        retrying:close()
        assert.are.equal(secret, sub.secret)
        assert.are.equal(2, #srv:requests())
        assert.matches("response body: (60 bytes, not shown", log_text(), 1, true)
        assert_nowhere(secret, lines)
      end)

    it("of an answer for another fleet, given as its fleetId, stays out of the error's message", function()
      -- Plain, and with a TAB or a NUL, which quoting writes "\9", "\0".
      local secrets = { "c2VjcmV0LW9mLWFub3RoZXItZmxlZXQ", "sk9\tQmZ4vPx8Lr2NwT6yB0", "Q\0mZ4vPx8Lr2NwT6yB0x" }
      for _, secret in ipairs(secrets) do
        lines = {}
        srv:enqueue { status = 201, body = subscription_body { secret = secret, fleetId = secret } }
        local sub, err = client.webhooks.create("fleet_1", { url = URL })
        assert.is_nil(sub)
        assert.matches('(fleetId "[redacted]")', err.message, 1, true)
        assert_nowhere(secret:sub(5), err, { tostring(err), cerca.pretty(err) }, lines)
      end
    end)

    it("stays out of the debug log written as \\u escapes, or where the answer's secret is not a string", function()
      local secret = "whsec_p\195\164ssw\195\182rt0123456789abcdef"
      local body = subscription_body { secret = secret }
        :gsub("}$", ',"note":"whsec_p\\u00e4ssw\\u00f6rt0123456789abcdef"}')
      srv:enqueue { status = 201, body = body }
      local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      assert.are.equal("[redacted]", sub.note)
      assert_nowhere("rt0123456789", lines)
      lines = {}
      -- Not a string: the answer is unusable, and what it holds unknown.
      srv:enqueue { status = 201, body = subscription_body { secret = { value = "9f86d081884c7d659a2feaa0c55a" } },
        headers = { ["X-Request-Id"] = "9f86d081884c7d659a2feaa0c55a" } }
      local _, err = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal("invalid_response", err.type)
      assert.matches("response body: %(%d+ bytes, not shown", log_text())
      assert.matches("request_id=(not shown)", log_text(), 1, true)
      assert_nowhere("9f86d081884c7d", lines)
      -- A null secret is none: the log shows such an answer as it is.
      lines = {}
      srv:enqueue { status = 200, body = '{"id":"wh_1","secret":null}', headers = { ["X-Request-Id"] = "req_42" } }
      assert(client:request("GET", "/fleets/fleet_1/webhooks/wh_1"))
      assert.matches("request_id=req_42", log_text(), 1, true)
      assert.matches('response body: {"id":"wh_1","secret":null}', log_text(), 1, true)
    end)

    it("of many backslashes, beside a field of twice as many, is looked for in polynomial time", function()
      local n = 24
      local secret = ("\\"):rep(n) .. "x"
      local body = subscription_body { secret = secret, note = ("\\"):rep(2 * n) .. "y" }
      srv:enqueue { status = 201, body = body }
      local start = os.clock()
      local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      assert.are.equal(secret, sub.secret)
      assert.is_true(os.clock() - start < 2, ("%.2f s of CPU"):format(os.clock() - start))
    end)

    it("in a header's name with one letter escaped in its own case is hidden with the name", function()
      local secret = "Sec_live_Z9y8X7w6V5u4T3s2R1q0"
      local body = subscription_body { secret = secret }
      srv:enqueue { action = "raw", body = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: "
        .. #body .. "\r\nX-%53" .. secret:sub(2):upper() .. ": 1\r\nX-\\u0053" .. secret:sub(2) .. ": 2\r\n\r\n"
        .. body }
      local sub, _, res = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal(secret, sub.secret)
      assert_nowhere(secret:sub(2):lower(), res.headers)
      local values = {}
      for _, v in pairs(res.headers) do values[v] = true end
      assert.is_true(values["1"] and values["2"])
    end)

    it("keeps a request id that only ends in the secret's first bytes, in an unusable create's error", function()
      local secret = "Sec_live_Z9y8X7w6V5u4T3s2R1q0"
      srv:enqueue { status = 201, body = subscription_body { secret = secret, id = cjson.null },
        headers = { ["X-Request-Id"] = "req-Sec_l" } }
      local _, err = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal("invalid_response", err.type)
      assert.are.equal("req-Sec_l", err.request_id)
    end)

    it("many fields named after it are renamed in linear time", function()
      -- Each name decodes to the secret, percent-encoded another way: all
      -- are renamed "[redacted]", "[redacted]#2", ...
      local redact = require "cerca.redact"
      local function named(count)
        local t = {}
        for i = 1, count do
          local k, bits = SECRET, i
          k = k:gsub("[%w_]", function(c)
            local on = bits % 2 == 1
            bits = (bits - bits % 2) / 2
            return on and ("%%%02X"):format(c:byte()) or c
          end)
          t[k] = i
        end
        return t
      end
      local function seconds(count)
        local t = named(count)
        local start = os.clock()
        redact.value(t, redact.list(SECRET))
        local took = os.clock() - start
        local n = 0
        for k in pairs(t) do
          n = n + 1
          assert.matches("^%[redacted%]", k)
        end
        assert.are.equal(count, n)
        return took
      end
      local small, large = helpers.cpu_at_two_sizes(seconds, 1000, 8)
      -- Linear: 8 times the fields take about 8 times as long (quadratic, 64).
      assert.is_true(large < 24 * math.max(small, 0.001), ("%.3f s for 1000, %.3f s for 8000"):format(small, large))
    end)

    it("of 100,000 bytes read two ways beside a field of as many is found without overflowing a stack", function()
      -- Each "%25" of the other field reads as the secret's "%", or as "%"
      -- then "25": a search that recursed at each such place overflowed,
      -- and the create that succeeded was lost.
      local n = 100000
      local secret = ("%"):rep(n)
      srv:enqueue { status = 201, body = subscription_body { secret = secret, note = ("%25"):rep(n) } }
      local sub, err = client.webhooks.create("fleet_1", { url = URL })
      assert.is_nil(err and tostring(err))
      assert.are.equal(secret, sub.secret)
      assert.are.equal("[redacted]", sub.note)
      assert.are.equal("[redacted]", cerca.redact(("%25"):rep(n), secret))
    end)

    it("is not spelt across the parts of a line: tostring, pretty and the log line search it whole", function()
      -- Each part is rid of the secret on its own; a secret holding a space
      -- or a "=" can be spelt by two parts the line puts side by side.
      local cases = {
        { secret = "wh_9 fleet=fleet_1", fields = { id = "wh_9" } },
        { secret = "zzzz       qqqq", fields = { zzzz = "qqqq" } },
        { secret = "attempt=1/1 request_id=req_Zz", headers = { ["X-Request-Id"] = "req_Zz" } },
      }
      for _, case in ipairs(cases) do
        local fields = { secret = case.secret }
        for k, v in pairs(case.fields or {}) do fields[k] = v end
        srv:enqueue { status = 201, body = subscription_body(fields), headers = case.headers }
        local logged = {}
        local c = helpers.client(srv, { log_level = "info", logger = function(_, l) logged[#logged + 1] = l end })
        local sub, err = c.webhooks.create("fleet_1", { url = URL })
        c:close()
        assert.is_nil(err and tostring(err))
        assert.are.equal(case.secret, sub.secret)
        for _, shown in ipairs { tostring(sub), cerca.pretty(sub), table.concat(logged, "\n") } do
          assert.is_nil(shown:find(case.secret, 1, true), shown)
        end
      end
    end)

    it("of fewer than 8 bytes is no credential: the answer's other fields reach the caller whole", function()
      -- Removed from every field, "h" garbled the id and the URL, and "ab"
      -- renamed the required "enabled" away.
      for _, secret in ipairs { "h", "ab", "abled" } do
        srv:enqueue { status = 201, body = subscription_body { secret = secret } }
        local sub, err = client.webhooks.create("fleet_1", { url = URL })
        assert.is_nil(err and tostring(err))
        assert.are.equal(secret, sub.secret)
        assert.are.equal("wh_1", sub.id)
        assert.are.equal(URL, sub.url)
        assert.is_true(sub.enabled)
      end
    end)

    it("is searched in time linear in the answer, however the answer is built to slow the search", function()
      -- A secret of one repeated byte, and fields that hold all but its
      -- last byte beside an escape: searched byte by byte from every place,
      -- a 96 KB answer took 40 s of CPU per search (the create, then each
      -- tostring and pretty), growing with the square of its size. Past a
      -- budget linear in the text, the whole text is hidden instead: never
      -- less safe. Timed at two sizes, 4 times apart: linear, the larger
      -- takes about 4 times as long (quadratic, 16), under valgrind too.
      local function hostile(n)
        local secret = ("a"):rep(n)
        local body = subscription_body { secret = secret, x = ("a"):rep(n - 1) .. "b%", y = secret }
        srv:enqueue { status = 201, body = body }
        local t0 = os.clock()
        local sub, err = client.webhooks.create("fleet_1", { url = URL }, { timeout = 5 })
        assert.is_nil(err and tostring(err))
        local shown = cerca.pretty(sub) .. tostring(sub) .. cerca.redact(body, secret)
        local took = os.clock() - t0
        assert.are.equal(secret, sub.secret)
        assert.are.equal("[redacted]", sub.y)
        assert.is_nil(sub.x:find(("a"):rep(16), 1, true))
        assert.is_nil(shown:find(("a"):rep(16), 1, true))
        return took
      end
      local small, large = helpers.cpu_at_two_sizes(hostile, 8000, 4, 2)
      assert.is_true(large < 10 * math.max(small, 0.005),
        ("%.3f s of CPU for a secret of 8000 bytes, %.3f s for 32000"):format(small, large))
    end)

    it("spelt across a repeated header's joined values stays out of the headers and the request id", function()
      local secret = "whsec_MfKQ9r8GKYqr, TwjUPD8ILPZIo2LaLaSw"
      local body = subscription_body { secret = secret }
      srv:enqueue { action = "raw", body = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: "
        .. #body .. "\r\nX-Request-Id: whsec_MfKQ9r8GKYqr\r\nX-Request-Id: TwjUPD8ILPZIo2LaLaSw\r\n"
        .. "X-Other: whsec_MfKQ9r8GKYqr\r\nx-other: TwjUPD8ILPZIo2LaLaSw\r\n\r\n" .. body }
      local sub, _, res = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal(secret, sub.secret)
      assert_nowhere(secret, res.headers, res.request_id, cerca.pretty(res), lines)
      assert.are.equal("[redacted]", res.request_id)
      -- client:request, which knows only the API key, treats the key so.
      local key = "sk_live_cdEFGH1234,"
      local c = helpers.client(srv, { api_key = key, max_retries = 0 })
      srv:enqueue { action = "raw", body = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2"
        .. "\r\nX-Request-Id: sk_live_cdEFGH1234\r\nX-Request-Id: z\r\n\r\n{}" }
      local got = assert(c:request("GET", "/fleets/fleet_1/webhooks"))
      c:close()
      assert_nowhere(key, got.headers, got.request_id)
    end)

    it("of a success that cannot be read: its request id is kept for the caller, printed nowhere", function()
      -- Not JSON (a stray byte), and a request id holding the secret
      -- percent-encoded: no form of the secret can be looked for.
      local echo = "whsec%5FMfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
      srv:enqueue { status = 201, body = subscription_body() .. "x", headers = { ["X-Request-Id"] = echo } }
      local _, err = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal("invalid_response", err.type)
      assert.is_true(err.withheld)
      assert.are.equal(echo, err.request_id)
      assert.matches(SECRET, err.body, 1, true)
      assert_nowhere(echo, { tostring(err), cerca.pretty(err) }, lines)
      -- Decoded, with a secret that is a number or an object: the same.
      for _, v in ipairs { 7381234567890123456, { value = "zX9-secret-as-object-abcdef" } } do
        lines = {}
        local text = type(v) == "number" and "7381234567890123456" or v.value
        srv:enqueue { status = 201, body = subscription_body { secret = v }, headers = { ["X-Request-Id"] = text } }
        local _, e = client.webhooks.create("fleet_1", { url = URL })
        assert.are.equal("invalid_response", e.type)
        assert.is_true(e.withheld)
        assert_nowhere(text, { tostring(e), cerca.pretty(e) }, lines)
      end
    end)

    it("holding the text of an escape is not spelt by escaping for print", function()
      -- A literal backslash, "x1b": the ESC byte of another field is
      -- printed as those four characters.
      local secret = "sec\\x1bABCDEFGHIJKLMNOP"
      local spelt = "sec\27ABCDEFGHIJKLMNOP"
      srv:enqueue { status = 201, body = subscription_body { secret = secret, note = spelt, id = spelt,
        url = "https://e.example/" .. spelt, events = { spelt } } }
      local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      assert.are.equal(secret, sub.secret)
      assert_nowhere(secret, { cerca.pretty(sub), tostring(sub) }, lines)
      -- An extra field named so; and events whose names, joined with ", "
      -- to be printed, spell a secret that holds ", ".
      local joined = "abcdefghij, klmnopqrstuvwxyz"
      srv:enqueue { status = 201, body = subscription_body { secret = secret, [spelt] = "x" } }
      srv:enqueue { status = 201,
        body = subscription_body { secret = joined, events = { "abcdefghij", "klmnopqrstuvwxyz" } } }
      sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      assert_nowhere(secret, { cerca.pretty(sub), tostring(sub) })
      sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      assert.are.equal(joined, sub.secret)
      assert_nowhere(joined, { cerca.pretty(sub), tostring(sub) })
      -- And a key holding one, in an API error's message.
      local key = "sk_test_ab\\xffcdefgh12345"
      local c = helpers.client(srv, { api_key = key, max_retries = 0, log_level = "debug",
        logger = function(_, line) lines[#lines + 1] = line end })
      srv:enqueue { status = 401, body = '{"error":{"message":"key sk_test_ab\255cdefgh12345 is not valid"}}' }
      local _, err = c.webhooks.create("fleet_1", { url = URL })
      c:close()
      assert.are.equal("authentication", err.type)
      assert_nowhere(key, { tostring(err), cerca.pretty(err), err.message }, lines)
    end)

    it("renamed out of a field name keeps a field the server itself named [redacted]", function()
      local body = subscription_body():gsub("}$", ',"meta":{"[redacted]":"the server\'s","' .. SECRET .. '":"echo"}}')
      srv:enqueue { status = 201, body = body }
      local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      assert.are.same({ ["[redacted]"] = "the server's", ["[redacted]#2"] = "echo" }, sub.meta)
    end)

    it("is hinted at in tostring by a short prefix and at most a quarter of it", function()
      for secret, hint in pairs { QmFzZTY0dXJsU2VjcmV0VmFsdWVzWFla_ = "\226\128\166Fla_",
        whsec_abc123 = "\226\128\166", QxkPzwm_ = "\226\128\166" } do
        srv:enqueue { status = 201, body = subscription_body { secret = secret } }
        local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
        assert.matches("secret=" .. hint .. "$", tostring(sub))
      end
    end)

    it("leaves a field that only ends in the secret's first bytes as the server wrote it", function()
      local fields = { tag = "nowhse", description = "50% off, see whsec_MfK..." }
      srv:enqueue { status = 201, body = subscription_body(fields) }
      local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      assert.are.equal(SECRET, sub.secret)
      for name, text in pairs(fields) do assert.are.equal(text, sub[name]) end
    end)

    it("in another field nested as deep as the decoder accepts", function()
      -- Every level an answer may have (the root is one), name and value.
      for _, depth in ipairs { 70, core.MAX_DECODE_DEPTH - 1 } do
        local deep = ('{"x":'):rep(depth - 1) .. cjson.encode { [SECRET] = SECRET } .. ("}"):rep(depth - 1)
        srv:enqueue { status = 201, body = subscription_body():gsub("}$", ',"deep":' .. deep .. "}") }
        local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
        assert.are.equal(SECRET, sub.secret)
        local leaf = sub.deep
        for _ = 2, depth do leaf = leaf.x end
        assert.are.same({ ["[redacted]"] = "[redacted]" }, leaf)
        sub.secret = nil
        assert_nowhere(SECRET:sub(7), sub, { assert(cerca.encode_json(sub)) })
      end
    end)

    it("of another fleet's subscription stays out of the error that drops it", function()
      srv:enqueue { status = 201, body = subscription_body { fleetId = "fleet_other" },
        headers = { ["X-Request-Id"] = "req_" .. SECRET, ["X-Echo"] = SECRET:gsub("_", "\\u005f") } }
      local sub, err = client.webhooks.create("fleet_1", { url = URL })
      assert.is_nil(sub)
      assert.are.equal("invalid_response", err.type)
      assert.is_nil(err.body)
      assert.are.equal("req_[redacted]", err.request_id)
      assert.are.equal("[redacted]", err.headers["x-echo"])
      assert_nowhere(SECRET:sub(7), err, { tostring(err), cerca.pretty(err) }, lines)
    end)

    it("echoed in an error's message and request id", function()
      srv:enqueue { status = 500, body = '{"error":{"message":"leaked ' .. SECRET .. '"}}',
        headers = { ["X-Request-Id"] = SECRET } }
      local _, err = client.webhooks.create("fleet_1", { url = URL })
      assert_nowhere(SECRET:sub(7), { err.message, err.request_id, tostring(err), cerca.pretty(err) }, lines)
    end)
  end)

  describe("credentials in base_url", function()
    it("are refused, and the refusal does not repeat them", function()
      for _, url in ipairs { "https://user:pa55word@api.example", "https://:pa55word@api.example/v1",
        "http://user:pa55word@127.0.0.1:8080", "https://user:pa55word@", "https://u:pa55word@h?x#y" } do
        local c, err = cerca.new { api_key = "k", base_url = url }
        assert.is_nil(c)
        assert.are.equal("configuration", err.type)
        assert.are.equal("base_url", err.field)
        assert.matches("must not hold a user name or password", err.message, 1, true)
        assert_nowhere("pa55word", err, { tostring(err), cerca.pretty(err) })
      end
      local out = helpers.run_lua([[
        local _, err = require("cerca").new { api_key = "k" }
        io.write(err.field, ": ", tostring(err))
      ]], { CERCA_BASE_URL = "https://me:pa55word@api.example" })
      assert.matches("^CERCA_BASE_URL: ", out)
      assert.is_nil(out:find("pa55word", 1, true))
    end)
  end)

  describe("the API key goes to base_url's host only", function()
    it("refuses a method or path of client:request that would change the request line, host or path", function()
      local other = helpers.start_server { tls = false }
      local elsewhere = other.http_url:match("^http://(.*)$")
      local bad_paths = {
        "@" .. elsewhere .. "/fleets", ":x@" .. elsewhere .. "/", "." .. elsewhere .. "/", elsewhere .. "/fleets",
        "fleets/f/webhooks", "", "?x=1", "#/fleets", "/fleets#frag", "/fleets\r\nX-Injected: 1",
        "/fleets x", "/fleets\0/x", "/fleets/\195\169", "/a\\b", "/a%zz", "/a%2", "/a{b}", "/a|b",
        "/..", "/../admin", "/fleets/../admin", "/fleets/./x", "/%2e%2e/admin", "/%2E./x", "/.%2e",
        "/..%2fadmin", "/x%2F..%2F..%2Fadmin", "/%2e%2e%2f", "/fleets/..%5Cadmin", "/fleets/..%5c",
        "/..;/admin", "/fleets/.;x=1/y", "/%C0%AE%C0%AE/admin", "/a%c1%9cb", "/..%3B/admin", "/..%3f/x",
        "/x/..%23", "/..%00/admin",
        "/x/" .. ("a"):rep(9000),
      }
      local bad_methods = { "Post", "post", "POST\r\nX-Injected: 1", "PO ST", "", "GET /admin HTTP/1.1",
        ("A"):rep(21), 1, true }
      local refused = {}
      for _, path in ipairs(bad_paths) do
        for _, entry in ipairs { "request", "prepare" } do
          local r, err = client[entry](client, "POST", path, {})
          assert.is_nil(r, entry .. " " .. helpers.q(path))
          assert.are.equal("invalid_request", err.type, helpers.q(path))
          assert.are.equal("path", err.field, helpers.q(path))
          assert.are.equal(0, err.attempts)
          refused[#refused + 1] = err.message
        end
      end
      for _, method in ipairs(bad_methods) do
        local r, err = client:request(method, "/fleets/fleet_1/webhooks", {})
        assert.is_nil(r, tostring(method))
        assert.are.equal("invalid_request", err.type, tostring(method))
        assert.are.equal("method", err.field, tostring(method))
        refused[#refused + 1] = err.message
      end
      assert.are.same({}, srv:requests())
      assert.are.same({}, other:requests())
      other:stop()
      -- Each refusal names the field and the fix.
      assert.matches('^path must start with "/" %(got "@', refused[1])
      assert.matches('it is joined to base_url, and anything else could name another host', refused[1], 1, true)
      assert.matches("^path contains whitespace or a control character at position 8, which a request path "
        .. "may not hold; percent%-encode it$", refused[19])
      assert.matches('^path holds a "." or ".." segment', refused[37])
      assert.matches('^path holds a "." or ".." segment', refused[61])
      assert.are.equal('path holds %C0 at position 2: no UTF-8 text holds that byte, and some servers read it as '
        .. 'part of an overlong "." or "/"; pass the path without it', refused[65])
      for i = 35, 38 do
        assert.matches('^path holds a "." or ".." segment %(or one followed by ";", %%3B', refused[i * 2 - 1])
      end
      assert.are.equal('method must be upper case: pass "POST" (got "Post")', refused[#bad_paths * 2 + 1])
      assert.matches('^method must be an HTTP method in upper case, e.g. "POST"', refused[#bad_paths * 2 + 3])
      for _, message in ipairs(refused) do assert.is_nil(message:find(KEY, 1, true)) end
    end)

    it("refuses a fleet id that steps out of the API's path once a server decodes %2F, and nil, nil", function()
      for _, id in ipairs { "../../admin", "a/../b", "..\\x", "x/.", "./y", "..;x", "..?x", "..#x", "x/.;y" } do
        local sub, err = client.webhooks.create(id, { url = URL })
        assert.is_nil(sub)
        assert.are.equal("invalid_request", err.type, id)
        assert.are.equal("fleet_id", err.field, id)
      end
      local r, err = client:prepare(nil, nil)
      assert.is_nil(r)
      assert.are.equal("invalid_request", err.type)
      assert.are.equal("method", err.field)
      r, err = client:request("HEAD", "/x")
      assert.is_nil(r)
      assert.are.equal("method", err.field)
      assert.matches("use GET", err.message, 1, true)
      assert.are.same({}, srv:requests())
    end)

    it("sends what a path may hold (query, sub-delims, percent-encoded bytes, dots inside segments) to base_url",
      function()
        local good = { "/fleets/f.1/webhooks", "/fleets/a..b/x?since=..&q=%2F", "//double/slash", "/a/@b/c:d",
          "/%41;b=c,d!$&'()*+~_-", "/v.1/.well-known" }
        for _, path in ipairs(good) do
          local res, err = client:request("GET", path)
          assert.is_truthy(res or err.status, helpers.q(path) .. " " .. tostring(err))
        end
        -- Each arrived at base_url's server with its path as written.
        local seen = {}
        for i, r in ipairs(srv:requests()) do seen[i] = r.uri end
        assert.are.same(good, seen)
      end)

    it("the C core refuses a method or URL that would break the request line, whatever the Lua layer did", function()
      local s = core.new_session()
      for _, rq in ipairs {
        { method = "POST\r\nX: 1", url = srv.http_url .. "/x" },
        { method = "post", url = srv.http_url .. "/x" },
        { method = "", url = srv.http_url .. "/x" },
        { method = "GET", url = srv.http_url .. "/x\r\nX: 1" },
        { method = "GET", url = srv.http_url .. "/x y" },
        { method = "GET", url = srv.http_url .. "/x\0/y" },
        { method = "GET", url = srv.http_url .. "/x\ty" },
      } do
        local ok, why = pcall(s.request, s, rq)
        assert.is_false(ok)
        assert.matches("field '[a-z]+' must ", tostring(why))
      end
      s:close()
      assert.are.same({}, srv:requests())
    end)
  end)

  describe("what a server sends cannot drive the terminal", function()
    it("escapes control characters in tostring and pretty, of subscriptions and errors", function()
      srv:enqueue { status = 201, body = subscription_body { id = "wh_\27[2J\27]0;pwned\7",
        url = "https://example.com/\194\155" .. "31m\226\128\174" } }
      local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
      for _, text in ipairs { tostring(sub), cerca.pretty(sub), cerca.pretty(sub, { reveal_secret = true }) } do
        assert.is_nil(text:find("[%z\1-\9\11-\31\127]"), text)
        assert.is_nil(text:find("\194\155", 1, true))
        assert.is_nil(text:find("\226\128\174", 1, true))
        assert.matches("wh_\\x1b[2J\\x1b]0;pwned\\x07", text, 1, true)
        assert.matches("\\u{009b}31m\\u{202e}", text, 1, true)
      end
      assert.matches("\\u009b", assert(cerca.encode_json(sub)), 1, true)
      -- nginx would escape the byte in a header it writes: the answer goes out raw.
      srv:enqueue { action = "raw", body = "HTTP/1.1 500 Internal Server Error\r\nX-Request-Id: r\27[1m\r\n"
        .. "Content-Type: application/json\r\nContent-Length: 25\r\n\r\n" .. '{"error":{"message":"x"}}' }
      local _, err = client.webhooks.create("fleet_1", { url = URL })
      assert.are.equal("cerca: server (HTTP 500): x (request id r\\x1b[1m); it may have been created: repeat with "
        .. "idempotency key " .. err.idempotency_key .. " to get it without a duplicate", tostring(err))
      assert.is_nil(cerca.pretty(err):find("\27", 1, true))
    end)
  end)

  describe("input is read once: what was checked is what is sent", function()
    it("changing the client's headers table after cerca.new changes nothing on the wire", function()
      local headers = { ["X-Team"] = "ops" }
      local c = helpers.client(srv, { headers = headers })
      headers["X-Team"] = "ops\r\nAuthorization: Bearer evil"
      headers["X-New"] = "late"
      assert(c.webhooks.create("fleet_1", { url = URL }))
      assert(c.webhooks.create("fleet_1", { url = URL }, { headers = { ["X-Call"] = "1" } }))
      c:close()
      for _, r in ipairs(srv:requests()) do
        assert.are.equal("ops", r.headers["x-team"])
        assert.is_nil(r.headers["x-new"])
        assert.is_nil(r.raw_header:find("evil", 1, true))
        assert.are.equal("Bearer " .. KEY, r.headers["authorization"])
      end
    end)

    it("per-call headers whose __pairs answers differently the second time", function()
      local calls = 0
      local headers = setmetatable({}, { __pairs = function()
        calls = calls + 1
        local t = calls == 1 and { ["X-A"] = "ok" } or { ["X-A"] = "x\r\nAuthorization: Bearer evil" }
        return next, t, nil
      end })
      local sub, err = client.webhooks.create("fleet_1", { url = URL }, { headers = headers })
      assert.is_nil(err)
      assert.is_table(sub)
      local r = srv:requests()[1]
      assert.is_nil(r.raw_header:find("evil", 1, true))
      if RUNS_PAIRS then
        assert.are.equal(1, calls)
        assert.are.equal("ok", r.headers["x-a"])
      end
    end)

    it("options and params whose __index answers differently each time are refused, never read", function()
      local n = 0
      local tricky = { __index = function(_, k)
        n = n + 1
        if k == "connect_timeout" or k == "timeout" then return n == 1 and 5 or "soon" end
        if k == "url" then return n == 1 and URL or "http://evil.example/" end
      end }
      local sub, err = client.webhooks.create("fleet_1", setmetatable({ url = URL }, tricky))
      assert.is_nil(sub)
      assert.are.equal("params", err.field)
      sub, err = client.webhooks.create("fleet_1", { url = URL }, setmetatable({}, tricky))
      assert.is_nil(sub)
      assert.are.equal("options", err.field)
      -- Deeper down too.
      sub, err = client.webhooks.create("fleet_1", { url = URL, extra_body = { meta = setmetatable({}, tricky) } })
      assert.is_nil(sub)
      assert.are.equal("params.extra_body.meta", err.field)
      assert.are.equal(0, n)
      assert.are.same({}, srv:requests())
    end)

    it("a field given only through __index is never left out silently: the table is refused", function()
      -- The defaults pattern: the key to repeat with, a timeout, a replay
      -- guard in __index. Read with pairs, they would be missed: a second
      -- subscription on a repeat, no replay check.
      local defaults = { idempotency_key = "order-42", timeout = 5 }
      local sub, err = client.webhooks.create("fleet_1", { url = URL }, setmetatable({}, { __index = defaults }))
      assert.is_nil(sub)
      assert.are.equal("invalid_request", err.type)
      assert.are.equal("options", err.field)
      assert.are.equal("options has a metatable with __index: cerca reads a table's own fields (with pairs), "
        .. "never through __index; pass a plain table, with any defaults copied into it", err.message)
      local results, merr = client.webhooks.create_many({ { fleet_id = "fleet_1", params = { url = URL } },
        { fleet_id = "fleet_2", params = { url = URL }, options = setmetatable({}, { __index = defaults }) } })
      assert.is_nil(results)
      assert.are.equal("items[2].options", merr.field)
      local _, cerr = cerca.new(setmetatable({ base_url = srv.http_url }, { __index = { api_key = KEY } }))
      assert.are.equal("options", cerr.field)
      local guard = assert(cerca.webhooks.replay_guard())
      local event, verr = cerca.webhooks.verify("{}", {}, SECRET, setmetatable({}, { __index = { replay = guard } }))
      assert.is_nil(event)
      assert.are.equal("invalid_request", verr.type)
      assert.are.equal("opts", verr.field)
      assert.are.same({}, srv:requests())
    end)

    it("a metatable that hides behind __metatable (posing as cerca's list mark) is still seen", function()
      -- getmetatable() answers with the __metatable field: a table can
      -- claim the mark of a decoded list while its real metatable reads
      -- differently each time. cerca looks at the real one.
      local mark = getmetatable(assert(client.webhooks.create("fleet_1", { url = URL, events = {} })).events)
      assert.is_table(mark)
      local reads = 0
      local posing = { __metatable = mark, __index = function(_, k)
        if k ~= "url" then return nil end
        reads = reads + 1
        return reads == 1 and URL or "http://evil.example/"
      end }
      local params = setmetatable({}, posing)
      assert.are.equal(mark, getmetatable(params))
      local sub, err = client.webhooks.create("fleet_1", params)
      assert.is_nil(sub)
      assert.are.equal("invalid_request", err.type)
      assert.are.equal("params", err.field)
      assert.matches("metatable with __index", err.message, 1, true)
      assert.are.equal(0, reads)
      -- Deeper down too: a list of events posing as a decoded one.
      local events = setmetatable({ "agent.created" }, { __metatable = mark,
        __len = function() reads = reads + 1 return reads == 1 and 1 or 0 end })
      sub, err = client.webhooks.create("fleet_1", { url = URL, events = events })
      assert.is_nil(err)
      assert.are.same({ "agent.created" }, sub.events)
      assert.are.same({ "agent.created" }, cjson.decode(srv:requests()[2].body).events)
      assert.are.equal(2, #srv:requests())
      assert.are.equal(0, reads)
    end)
  end)

  describe("bounded checks", function()
    it("a 1 MiB event name is refused at once, without a suggestion", function()
      local name = string.rep("agent.created", 80660)
      local t0 = helpers.now()
      local _, err = client.webhooks.create("fleet_1", { url = URL, events = { name } })
      local elapsed = helpers.now() - t0
      assert.are.equal("params.events[1]", err.field)
      assert.matches("bytes long, which no event name is", err.message, 1, true)
      assert.is_true(elapsed < 0.5, "took " .. elapsed .. " s")
      t0 = helpers.now()
      _, err = client.webhooks.create("fleet_1", { url = URL, [string.rep("u", 2 ^ 20)] = 1 })
      elapsed = helpers.now() - t0
      assert.are.equal("invalid_request", err.type)
      assert.is_true(elapsed < 0.5, "took " .. elapsed .. " s")
      assert.are.same({}, srv:requests())
    end)

    it("an argument of more than MAX_ENTRIES table entries is refused as a whole, naming it, nothing sent", function()
      assert.are.equal(1000000, cerca.webhooks.MAX_ENTRIES)
      -- One params table shared by every item counts for each of them.
      local params = { url = URL, events = {} }
      for i = 1, 18 do params.events[i] = cerca.webhooks.EVENTS[i] end
      local per_item = 1 + 2 + 2 + 18 -- its place, fleet_id and params, url and events, the events
      local fits = math.floor(cerca.webhooks.MAX_ENTRIES / per_item)
      local items = {}
      for i = 1, fits do items[i] = { fleet_id = "fleet_" .. i, params = params } end
      -- As many as fit are taken (stopped at once: none is sent).
      local results, err = client.webhooks.create_many(items, { stop = function() return true end })
      assert.are.equal(fits, #results, tostring(err))
      assert.are.equal("cancelled", results[fits].error.type)
      items[fits + 1] = { fleet_id = "fleet_0", params = params }
      results, err = client.webhooks.create_many(items)
      assert.is_nil(results)
      assert.are.equal("invalid_request", err.type)
      assert.are.equal("items", err.field)
      assert.are.equal("items holds more than 1000000 table entries in all (a table held in several places counts "
        .. "in each); pass less at a time (to create_many, fewer items per call)", err.message)
      assert.are.same({}, srv:requests())
      -- Where Lua runs __pairs, one that never ends is cut at the bound.
      if RUNS_PAIRS then
        local endless = setmetatable({}, { __pairs = function()
          return function(_, k) return (k or 0) + 1, true end, nil, nil
        end })
        local _, cerr = client.webhooks.create("fleet_1", { url = URL, extra_body = endless })
        assert.are.equal("invalid_request", cerr.type)
        assert.matches("^params holds more than 1000000 table entries in all", cerr.message)
      end
    end)

    it("fleet ids and URLs of absurd length are refused before anything is sent", function()
      local _, err = client.webhooks.create(string.rep("f", 1025), { url = URL })
      assert.are.equal("fleet_id is 1025 bytes long; at most 1024 are accepted", err.message)
      _, err = client.webhooks.create("fleet_1", { url = URL .. "?" .. string.rep("q", 9000) })
      assert.are.equal("params.url", err.field)
      assert.are.same({}, srv:requests())
    end)
  end)

  describe("no public function raises", function()
    it("methods called with a dot, and faults inside, come back as nil, err", function()
      local ok, r1, e1 = pcall(client.close)
      assert.is_true(ok)
      assert.is_nil(r1)
      assert.are.equal("invalid_request", e1.type)
      assert.matches("client:close", e1.message, 1, true)
      ok, r1, e1 = pcall(client.request, nil, "POST", "/x")
      assert.is_true(ok)
      assert.is_nil(r1)
      assert.matches("client:request", e1.message, 1, true)
      local hostile = setmetatable({}, { __tostring = function() error("boom") end })
      ok, r1, e1 = pcall(cerca.pretty, hostile)
      assert.is_true(ok)
      assert.is_nil(r1)
      assert.are.equal("internal", e1.type)
      ok, r1, e1 = pcall(cerca.encode_json, { f = function() end })
      assert.is_true(ok)
      assert.is_nil(r1)
      assert.is_string(e1)
    end)

    it("any argument of the wrong type comes back as invalid_request naming it", function()
      for _, bad in ipairs { {}, { nil }, { {} }, { "x" }, { true }, { 1.5 }, { 0 / 0 } } do
        local n = select("#", unpack(bad))
        for name, f in pairs { printable = cerca.printable, exit_by_signal = cerca.system.exit_by_signal } do
          local ok, r, err = pcall(f, unpack(bad, 1, n))
          assert.is_true(ok, name .. " raised: " .. tostring(r))
          if not (name == "printable" and type(bad[1]) == "string") then
            assert.is_nil(r, name)
            assert.are.equal("invalid_request", err.type, name)
          end
        end
      end
      for _, calls in ipairs { false, "x", 1.5, { 1 }, { {} }, { client } } do
        local ok, r, err = pcall(client.request_many, client, calls, 4, function() end)
        assert.is_true(ok, tostring(r))
        assert.is_nil(r)
        assert.are.equal("invalid_request", err.type)
        assert.matches("^calls", err.field)
      end
      local raising = setmetatable({}, { __index = function() error("boom") end, __len = function() return 1 end })
      local r0, e0 = client:request_many(raising, 1, function() end)
      assert.is_nil(r0)
      if #raising == 1 then
        assert.are.equal("calls", e0.field)
        assert.matches("could not be read: a metamethod raised an error", e0.message, 1, true)
      else
        assert.is_nil(e0) -- Lua 5.1 runs no __len for tables: an empty list, nothing to do
      end
      local c = assert(client:prepare("GET", "/x"))
      -- What read_more adds that is no call ends at once, not sent.
      local added, ended = false, {}
      local calls = { c }
      assert.is_nil((client:request_many(calls, 2, function(k, _, e) ended[k] = e and e.field or "sent" end,
        function()
          if added then return false end
          added = true
          calls[2] = "not a call"
          return false
        end)))
      assert.are.same({ "sent", "calls[2]" }, ended)
      -- Where no call can be made (nginx, a phase that cannot yield): each
      -- ends once, refused.
      rawset(client._runtime, "context_error", function() return "no network here" end)
      added, ended, calls = false, {}, { c }
      client:request_many(calls, 2, function(k, _, e) ended[#ended + 1] = k .. ":" .. e.type end, function()
        if added then return false end
        added = true
        calls[2], calls[3] = "not a call", c
        return false
      end)
      rawset(client._runtime, "context_error", nil)
      table.sort(ended)
      assert.are.same({ "1:configuration", "2:invalid_request", "3:configuration" }, ended)
      srv:reset()
      for field, args in pairs { concurrency = { { c }, 0 }, on_done = { { c }, 1, "f" },
        read_more = { { c }, 1, function() end, 3 }, stop = { { c }, 1, function() end, nil, {} },
        [{ "concurrency", "huge" }] = { { c }, math.huge, function() end } } do
        field = type(field) == "table" and field[1] or field
        local r, err = client:request_many(unpack(args, 1, 5))
        assert.is_nil(r)
        assert.are.equal(field, err.field)
      end
      assert.are.same({}, srv:requests())
    end)

    it("a caller's __index that raises is never run: the table is refused, naming it", function()
      local raising = setmetatable({}, { __index = function() error("no fields for you") end })
      local ok, sub, err = pcall(client.webhooks.create, "fleet_1", raising)
      assert.is_true(ok, tostring(sub))
      assert.are.equal("params", err.field)
      ok, sub, err = pcall(client.webhooks.create, "fleet_1", { url = URL }, raising)
      assert.is_true(ok, tostring(sub))
      assert.are.equal("options", err.field)
      ok, sub, err = pcall(cerca.webhooks.verify, "{}", {}, SECRET, raising)
      assert.is_true(ok, tostring(sub))
      assert.are.equal("invalid_request", err.type)
      assert.are.equal("opts", err.field)
      assert.are.same({}, srv:requests())
    end)

    it("a caller's __pairs that raises is an invalid_request, nothing sent (where Lua runs __pairs)", function()
      local raising = setmetatable({}, { __pairs = function() error("no pairs for you") end })
      local calls = {
        function() return client.webhooks.create("fleet_1", raising) end,
        function() return client.webhooks.create("fleet_1", { url = URL }, raising) end,
        function() return client.webhooks.create_many(raising) end,
        function() return cerca.new(raising) end,
        function() return cerca.webhooks.verify("{}", {}, SECRET, raising) end,
      }
      for i, f in ipairs(calls) do
        local ok, r, err = pcall(f)
        assert.is_true(ok, "call " .. i .. " raised: " .. tostring(r))
        if RUNS_PAIRS then
          assert.is_nil(r)
          assert.is_true(err.type == "invalid_request" or err.type == "configuration", tostring(err))
          assert.matches("could not be read: a metamethod raised an error", err.message, 1, true)
        end
      end
      if RUNS_PAIRS then assert.are.same({}, srv:requests()) end
    end)
  end)

  describe("verify fails closed on bad options", function()
    local body = '{"type":"agent.created"}'
    local function headers_at(ts)
      return { ["webhook-id"] = "msg_1", ["webhook-timestamp"] = tostring(ts),
        ["webhook-signature"] = assert(cerca.webhooks.sign(body, SECRET, "msg_1", ts)) }
    end

    it("NaN tolerance, now or max_body is refused, never read as no limit", function()
      local nan = 0 / 0
      for _, opts in ipairs { { tolerance = nan }, { now = nan }, { max_body = nan }, { tolerance = math.huge },
        { tolerance = -1 }, { now = "later" }, { max_body = 1.5 } } do
        local event, err = cerca.webhooks.verify(body, headers_at(1), SECRET, opts)
        assert.is_nil(event)
        assert.are.equal("invalid_request", err.type)
        assert.matches("^opts%.", err.field)
      end
    end)

    it("an unknown option name is refused with a suggestion", function()
      local event, err = cerca.webhooks.verify(body, headers_at(os.time()), SECRET, { tolerence = 10 })
      assert.is_nil(event)
      assert.are.equal("invalid_request", err.type)
      assert.are.equal('opts: unknown key "tolerence"; did you mean "tolerance"?', err.message)
      event, err = cerca.webhooks.verify(body, headers_at(os.time()), SECRET, "fast")
      assert.is_nil(event)
      assert.are.equal("opts", err.field)
    end)

    it("good options still verify", function()
      local now = os.time()
      assert.is_table(cerca.webhooks.verify(body, headers_at(now - 100), SECRET, { tolerance = 200, now = now,
        max_body = 100 }))
    end)
  end)

  describe("request_sent says whether a create may exist", function()
    it("is true once a request reached the server, absent when none could", function()
      srv:enqueue { status = 500, body = "{}" }
      local _, err = client.webhooks.create("fleet_1", { url = URL })
      assert.is_true(err.request_sent)
      local closed = helpers.client(srv, { base_url = "http://127.0.0.1:" .. helpers.closed_port(),
        max_retries = 1 })
      _, err = closed.webhooks.create("fleet_1", { url = URL }, { })
      closed:close()
      assert.are.equal("connection", err.type)
      assert.is_nil(err.request_sent)
      assert.is_string(err.idempotency_key)
    end)
  end)
end)
