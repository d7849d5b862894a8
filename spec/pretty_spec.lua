-- Rendering for people, and the redaction of the secret and the API key.
require "spec.helpers"
local cerca = require "cerca"
local errors = require "cerca.errors"
local pretty = require "cerca.pretty"
local webhooks = require "cerca.webhooks"

local SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

local function subscription(overrides)
  local t = {
    id = "wh_123", fleetId = "fleet_abc123", url = "https://example.com/webhook",
    events = { "agent.created", "thread.completed" }, enabled = true,
    createdAt = "2026-11-28T10:00:00Z", updatedAt = "2026-11-28T10:00:00Z", secret = SECRET,
  }
  for k, v in pairs(overrides or {}) do t[k] = v end
  return assert(webhooks.subscription(t))
end

describe("redaction", function()
  it("keeps the prefix and the last four characters", function()
    assert.are.equal("whsec_\226\128\166LaSw", pretty.redact(SECRET))
    assert.are.equal("\226\128\166alue", pretty.redact("plain-secret-value"))
  end)

  it("shows nothing of a short secret: never more than a quarter of it", function()
    assert.are.equal("\226\128\166", pretty.redact("whsec_ab12"))
    assert.are.equal("\226\128\166", pretty.redact("whsec_abc123"))
    assert.are.equal("\226\128\166", pretty.redact("whsec_0123456789abcde"))
    assert.are.equal("\226\128\166", pretty.redact("QxkPzwm_"))
    assert.are.equal("\226\128\166", pretty.redact("whsecKp_9"))
    assert.are.equal("whsec_\226\128\166cdef", pretty.redact("whsec_0123456789abcdef"))
    assert.are.equal("\226\128\166", pretty.redact("abc"))
  end)

  it("shows no long prefix: letters up to an underscore may be most of the secret", function()
    assert.are.equal("\226\128\166Fla_", pretty.redact("QmFzZTY0dXJsU2VjcmV0VmFsdWVzWFla_"))
    assert.are.equal("\226\128\166Zx9w", pretty.redact("KxQpZrTfWmNbVcYhGjDsLaEuIoPq_Zx9w"))
    assert.are.equal("\226\128\166", pretty.redact("sk_test_short"))
    assert.are.equal("sk_\226\128\166long", pretty.redact("sk_test_very_very_long"))
  end)
end)

describe("tostring(subscription)", function()
  it("is one line with the secret redacted", function()
    assert.are.equal("cerca.Subscription wh_123 fleet=fleet_abc123 url=https://example.com/webhook "
      .. "events=agent.created, thread.completed enabled=true secret=whsec_\226\128\166LaSw",
      tostring(subscription()))
  end)

  it("says all events for an empty list", function()
    assert.matches("events=all events enabled=false", tostring(subscription { events = {}, enabled = false }), 1, true)
  end)

  it("leaves the secret readable in the table itself", function()
    assert.are.equal(SECRET, subscription().secret)
  end)
end)

describe("cerca.pretty", function()
  it("renders a subscription as an aligned block", function()
    assert.are.equal(table.concat({
      "Webhook subscription wh_123",
      "  id         wh_123",
      "  fleetId    fleet_abc123",
      "  url        https://example.com/webhook",
      "  events     agent.created, thread.completed",
      "  enabled    true",
      "  createdAt  2026-11-28T10:00:00Z",
      "  updatedAt  2026-11-28T10:00:00Z",
      "  secret     whsec_\226\128\166LaSw",
      "  (the secret is shown once, at create: read sub.secret to store it)",
    }, "\n"), cerca.pretty(subscription()))
  end)

  it("lists fields the contract does not name after the known ones", function()
    local out = cerca.pretty(subscription { description = "ops", zone = "eu" })
    assert.matches("  secret       whsec_\226\128\166LaSw\n  description  ops\n  zone         eu\n", out, 1, true)
  end)

  it("shows a number with the digits it was sent with, not tostring's 14", function()
    local text = cerca.pretty(subscription { at_us = 1735689600123456, weight = 0.1234567890123456, n = 3 })
    assert.matches("\n  at_us      1735689600123456\n", text, 1, true)
    assert.matches("\n  weight     0.1234567890123456\n", text, 1, true)
    assert.matches("\n  n          3\n", text, 1, true)
  end)

  it("reveals the secret only when asked", function()
    local out = cerca.pretty(subscription(), { reveal_secret = true })
    assert.matches("  secret     " .. SECRET, out, 1, true)
    assert.is_nil(out:find("shown once", 1, true))
    assert.is_nil(cerca.pretty(subscription()):find(SECRET, 1, true))
  end)

  it("uses colour only when asked", function()
    assert.is_nil(cerca.pretty(subscription()):find("\27", 1, true))
    local out = cerca.pretty(subscription(), { color = true })
    assert.matches("\27[1mWebhook subscription wh_123\27[0m", out, 1, true)
    assert.matches("\27[33mwhsec_\226\128\166LaSw\27[0m", out, 1, true)
  end)

  it("renders an error, never its body", function()
    local err = errors.new("invalid_response", "the answer is not JSON", {
      status = 201, request_id = "req_9", body = '{"secret":"' .. SECRET .. '"', headers = {},
    })
    assert.are.equal(table.concat({
      "cerca error: invalid_response",
      "  type        invalid_response",
      "  status      201",
      "  message     the answer is not JSON",
      "  request_id  req_9",
      "  body        " .. #err.body .. " bytes (in err.body)",
    }, "\n"), cerca.pretty(err))
  end)

  it("redacts secret-like keys of any table", function()
    local out = cerca.pretty { secret = SECRET, api_key = "sk_live_abcdefgh", name = "x" }
    assert.is_nil(out:find(SECRET, 1, true))
    assert.is_nil(out:find("sk_live_abcdefgh", 1, true))
    assert.matches("  name     x", out, 1, true)
  end)
end)

describe("the API key", function()
  local KEY = "sk_live_do_not_print_0123456789"

  it("never appears in a client, an error or their renderings", function()
    local client = assert(cerca.new { api_key = KEY, base_url = "http://127.0.0.1:1", timeout = 1,
      log_level = "off" })
    local texts = { tostring(client), cerca.pretty(client) }
    local function collect(_, err)
      texts[#texts + 1] = tostring(err)
      texts[#texts + 1] = cerca.pretty(err)
      for _, v in pairs(err) do texts[#texts + 1] = tostring(v) end
    end
    collect(client.webhooks.create("fleet_1", { url = "https://example.com/webhook" }))
    collect(client.webhooks.create("fleet_1", { url = "http://example.com/webhook" }))
    collect(client.webhooks.create("fleet_1", { url = "https://example.com/webhook" }, { headers = { A = "\n" } }))
    collect(cerca.new { api_key = KEY .. "\n" })
    collect(cerca.new { api_key = KEY, base_url = "http://example.com" })
    assert.is_true(#texts > 20)
    for _, text in ipairs(texts) do
      assert.is_nil(text:find(KEY, 1, true), text)
      assert.is_nil(text:find("do_not_print", 1, true), text)
    end
  end)
end)
