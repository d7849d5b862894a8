-- Logging: levels, the line per attempt, and redaction of every secret.
local helpers = require "spec.helpers"
local cerca = require "cerca"
local log = require "cerca.log"
local cjson = require "cjson"

local URL = "https://example.com/webhook"

describe("logging", function()
  local srv

  setup(function() srv = helpers.start_server { tls = false } end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  -- A client whose log lines are collected as { level, line } pairs.
  local function logged_client(level, opts)
    local lines = {}
    local o = { log_level = level, logger = function(lvl, line) lines[#lines + 1] = { lvl, line } end }
    for k, v in pairs(opts or {}) do o[k] = v end
    return helpers.client(srv, o), lines
  end

  it("says nothing at the default level when all goes well", function()
    local client, lines = logged_client(nil)
    assert(client.webhooks.create("fleet_1", { url = URL }))
    client:close()
    assert.are.same({}, lines)
  end)

  it("writes one info line per attempt, with why a retry happens", function()
    local client, lines = logged_client("info")
    srv:enqueue { status = 503, body = "{}", headers = { ["X-Request-Id"] = "req_first", ["Retry-After-Ms"] = "10" } }
    local sub, err = client.webhooks.create("fleet_1", { url = URL })
    client:close()
    assert.is_nil(err)
    assert.are.equal(2, #lines)
    assert.are.equal("info", lines[1][1])
    assert.matches('^cerca: POST /fleets/fleet_1/webhooks status=503 duration_ms=%d+ attempt=1/3 '
      .. 'request_id=req_first retry_in=0%.01s reason="HTTP 503"$', lines[1][2])
    assert.matches("^cerca: POST /fleets/fleet_1/webhooks status=201 duration_ms=%d+ attempt=2/3 request_id=req_%x+$",
      lines[2][2])
    assert.truthy(sub.id)
  end)

  it("warns when a call fails after retries", function()
    local client, lines = logged_client("warn")
    for _ = 1, 2 do srv:enqueue { status = 500, body = "{}", headers = { ["Retry-After-Ms"] = "1" } } end
    local _, err = client.webhooks.create("fleet_1", { url = URL }, { max_retries = 1 })
    client:close()
    assert.are.equal("server", err.type)
    assert.are.same({ { "warn", "cerca: POST /fleets/fleet_1/webhooks failed after 2 attempts: "
      .. "server (HTTP 500): HTTP 500 Internal Server Error; it may have been created: repeat with idempotency "
      .. "key " .. err.idempotency_key .. " to get it without a duplicate" } }, lines)
  end)

  it("warns when a 2xx cannot be read", function()
    local client, lines = logged_client("warn")
    srv:enqueue { status = 201, body = "not json" }
    client.webhooks.create("fleet_1", { url = URL })
    client:close()
    assert.are.equal(1, #lines)
    assert.matches("^cerca: POST /fleets/fleet_1/webhooks: the answer %(HTTP 201%) is not JSON", lines[1][2])
  end)

  it("shows headers and bodies at debug, with the key and the secret redacted", function()
    local client, lines = logged_client("debug")
    local sub = assert(client.webhooks.create("fleet_1", { url = URL }))
    client:close()
    local text = {}
    for i, l in ipairs(lines) do text[i] = l[2] end
    text = table.concat(text, "\n")
    assert.matches("Authorization: [redacted]", text, 1, true)
    assert.matches('"secret":"[redacted]"', text, 1, true)
    assert.matches("Idempotency%-Key: %x+%-", text)
    assert.matches('"url":"https:\\/\\/example.com\\/webhook"', text, 1, true)
    assert.is_nil(text:find(srv.api_key, 1, true))
    assert.is_nil(text:find(sub.secret, 1, true))
  end)

  it("never lets the key or a secret into the log stream", function()
    local client, lines = logged_client("debug", { max_retries = 1 })
    local secret = "whsec_" .. string.rep("Zq9", 12)
    local plain_secret = "not-prefixed-" .. string.rep("k", 20)
    local stored = cjson.encode { id = "wh_1", fleetId = "f", url = URL, events = {}, enabled = true,
      createdAt = "t", updatedAt = "t", secret = secret }
    -- A successful create, a retried 503, an unreadable 2xx holding a
    -- secret, one cut off inside the secret, a 401, and a secret echoed in
    -- an error body.
    assert(client.webhooks.create("fleet_1", { url = URL }))
    srv:enqueue { status = 503, body = '{"error":{"message":"busy"}}', headers = { ["Retry-After-Ms"] = "1" } }
    assert(client.webhooks.create("fleet_2", { url = URL }))
    srv:enqueue { status = 201, body = stored:sub(1, -2) }
    client.webhooks.create("fleet_3", { url = URL })
    srv:enqueue { status = 201, body = '{"id":"wh_2","secret":"' .. plain_secret }
    client.webhooks.create("fleet_4", { url = URL })
    srv:enqueue { status = 422, body = '{"error":{"message":"bad"},"echo":{"secret":"' .. plain_secret .. '"}}' }
    client.webhooks.create("fleet_5", { url = URL })
    client:close()
    local bad = assert(cerca.new { api_key = "sk_wrong_" .. srv.api_key, base_url = srv.http_url,
      log_level = "debug", logger = function(lvl, line) lines[#lines + 1] = { lvl, line } end })
    bad.webhooks.create("fleet_6", { url = URL })
    bad:close()

    assert.is_true(#lines >= 12)
    local secrets = { secret, plain_secret, srv.api_key }
    for _, s in ipairs(srv:subscriptions()) do secrets[#secrets + 1] = s.secret end
    for _, l in ipairs(lines) do
      for _, s in ipairs(secrets) do
        assert.is_nil(l[2]:find(s, 1, true), l[2])
      end
      assert.is_nil(l[2]:find("whsec_%w"), l[2])
    end
  end)

  it("survives a logger that fails", function()
    local client = helpers.client(srv, { log_level = "debug", logger = function() error("disk full") end })
    assert(client.webhooks.create("fleet_1", { url = URL }))
    client:close()
  end)

  it("takes the level from CERCA_LOG and writes to stderr by default", function()
    local out, status = helpers.run_lua([[
      local cerca = require "cerca"
      assert(cerca.webhooks.create("fleet_env", { url = "https://example.com/webhook" }))
    ]], { CERCA_API_KEY = srv.api_key, CERCA_BASE_URL = srv.http_url, CERCA_LOG = "info" })
    assert.are.equal(0, status)
    assert.matches("^cerca: POST /fleets/fleet_env/webhooks status=201 duration_ms=%d+ attempt=1/3 "
      .. "request_id=req_%x+\n$", out)
  end)

  it("escapes what a server sent: one line per event, no control character reaches the sink", function()
    srv:enqueue { status = 400, body = '{"error":{"message":"bad"}}\r\ncerca: POST /forged status=201\n\27[2J',
      headers = { ["X-Request-Id"] = "req_1\27]0;pwned\7" } }
    local client, lines = logged_client("debug", { max_retries = 0 })
    assert.is_nil((client.webhooks.create("fleet_1", { url = URL })))
    client:close()
    assert.is_true(#lines > 0)
    local seen_body = false
    for _, l in ipairs(lines) do
      assert.is_nil(l[2]:find("[%c\127]"), l[2])
      if l[2]:find("cerca: POST /forged", 1, true) then
        seen_body = true
        -- The forged line stays inside the body's line, escaped.
        assert.matches("\\x0d\\x0acerca: POST /forged status=201\\x0a\\x1b[2J", l[2], 1, true)
      end
    end
    assert.is_true(seen_body)
  end)

  it("refuses an unknown level", function()
    local c, err = cerca.new { api_key = "k", log_level = "verbose" }
    assert.is_nil(c)
    assert.are.equal('log_level must be one of debug, info, warn, off (got "verbose")', err.message)
    local out = helpers.run_lua([[
      local cerca = require "cerca"
      local _, err = cerca.new { api_key = "k" }
      io.write(err.field, ": ", err.message)
    ]], { CERCA_LOG = "loud" })
    assert.are.equal('CERCA_LOG: CERCA_LOG must be one of debug, info, warn, off (got "loud")', out)
  end)

  it("off is silent even on failure", function()
    local client, lines = logged_client("off")
    srv:enqueue { status = 201, body = "not json" }
    client.webhooks.create("fleet_1", { url = URL })
    client:close()
    assert.are.same({}, lines)
  end)

  describe("redact", function()
    it("removes the key, Authorization values, secret fields and whsec_ tokens", function()
      assert.are.equal("a [redacted] b [redacted]", log.redact("a sk_1234 b sk_1234", "sk_1234"))
      assert.are.equal("Authorization: [redacted]; Accept: x", log.redact("Authorization: Bearer k; Accept: x"))
      assert.are.equal('{"secret":"[redacted]","id":"x"}', log.redact('{"secret":"abc\\"def","id":"x"}'))
      assert.are.equal('{"secret": "[redacted]', log.redact('{"secret": "cut-off-val'))
      assert.are.equal("token whsec_[redacted] end", log.redact("token whsec_ab+/c= end"))
      -- A key that reads like a field name cannot shield a secret.
      assert.are.equal('{"[redacted]":"[redacted]"}', log.redact('{"secret":"plain-value"}', "secret"))
    end)
  end)
end)
