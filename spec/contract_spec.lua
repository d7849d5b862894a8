-- The library against an independent validator of the contract: Prism,
-- serving spec/contract/openapi.yaml (a transcription of the vendor's page).
-- Every request the library lets through must be accepted, and the
-- library must read the contract's example response.
require "spec.helpers"
local prism = require "spec.contract.prism"
local cerca = require "cerca"

local URL = "https://example.com/webhook"
-- The contract's example answer names fleet "<string>": a create for that
-- fleet is one the example answers. For any other fleet the library must
-- refuse the example as another call's answer (a 201 all the same, which
-- is what shows the oracle accepted the request).
local EXAMPLE_FLEET = "<string>"

describe("the contract oracle", function()
  local server, client

  setup(function()
    prism.install()
    server = assert(prism.start())
    client = assert(cerca.new { api_key = "sk_contract_key", base_url = server.url, max_retries = 0 })
  end)

  teardown(function()
    if client then client:close() end
    if server then server:stop() end
  end)

  local function assert_seed_example(sub)
    assert.are.same({
      createdAt = "<string>", enabled = true, fleetId = "<string>", events = {}, id = "<string>",
      updatedAt = "<string>", url = "<string>", secret = "whsec_abc123",
    }, setmetatable(sub, nil))
  end

  it("accepts the smallest create, and the library reads the example answer", function()
    local sub, err, res = client.webhooks.create(EXAMPLE_FLEET, { url = URL })
    assert.is_nil(err)
    assert.are.equal(201, res.status)
    assert.are.equal("cerca.Subscription <string> fleet=<string> url=<string> events=all events "
      .. "enabled=true secret=\226\128\166", tostring(sub))
    assert_seed_example(sub)
  end)

  it("accepts every event, an empty list, and extra fields", function()
    assert_seed_example(assert(client.webhooks.create(EXAMPLE_FLEET, { url = URL, events = cerca.webhooks.EVENTS })))
    assert_seed_example(assert(client.webhooks.create(EXAMPLE_FLEET, { url = URL, events = {} })))
    assert_seed_example(assert(client.webhooks.create(EXAMPLE_FLEET, {
      url = URL, extra_body = { description = "ops", tags = cerca.empty_array, meta = { a = cerca.null } },
    })))
  end)

  it("answers another fleet's create with the example, which the library refuses as not its answer", function()
    local sub, err = client.webhooks.create("fleet_abc123", { url = URL })
    assert.is_nil(sub)
    assert.are.equal("invalid_response", err.type)
    assert.are.equal(201, err.status)
    assert.matches("the answer names another fleet than the one asked for", err.message, 1, true)
    assert.is_string(err.idempotency_key)
    assert.is_nil(err.body)
  end)

  it("refuses what the library would refuse too (the oracle is strict)", function()
    local bad = assert(cerca.new { api_key = "sk_contract_key", base_url = server.url, max_retries = 0 })
    -- Bypass the library's validation by talking to the resource layer's
    -- transport directly: webhook.test must be refused by the oracle as well.
    local _, err = bad:request("POST", "/fleets/fleet_1/webhooks", { url = URL, events = { "webhook.test" } })
    bad:close()
    assert.are.equal("unprocessable_entity", err.type)
    assert.are.equal(422, err.status)
  end)

  -- Seeded generators of arguments. A call is "plausible" (drawn from
  -- values that may well be valid, odd ones included) or "hostile" (drawn
  -- from everything), half and half.
  local function pick(list) return list[math.random(#list)] end

  local FLEET_OK = { "fleet_", "abc", "123", "/", "?", "#", " ", "%", "%2F", "+", "~", "_", "-", ".",
    "\195\169", "\240\159\154\128", "a/b", "x y", "&=;", "[", "]", "@", ":", "'", "\"", "\\" }
  local FLEET_BAD = { "\255", "\n", "\0", "\127", "\192\175", "\237\160\128", "" }
  local SCHEMES_OK = { "https://", "HTTPS://", "Https://" }
  local SCHEMES_BAD = { "http://", "ftp://", "", "https:/", "https:", "https//" }
  local HOSTS_OK = { "example.com", "hooks.example.org", "127.0.0.1", "[::1]", "xn--bcher-kva.example",
    "user@example.com", "user:pw@example.com", "EXAMPLE.COM", "a-b.c_d.io", "[2001:db8::7]", "localhost" }
  local HOSTS_BAD = { "", "exa mple.com", "b\195\188cher.de", "exa<mple.com", "[zz]", "ex[a]mple.com" }
  local PORTS_OK = { "", "", ":443", ":8443", ":1", ":65535", ":" }
  local PORTS_BAD = { ":0", ":65536", ":x", ":-1" }
  local PATHS_OK = { "", "/", "/webhook", "/a/b;c=d", "/~user/hook", "/hook?x=1&y=2", "/hook#frag", "/%20x",
    "/(x)*'!$,", "/hook/?q=%E2%82%AC", "//double", "/a@b:c", "/%41%42" }
  local PATHS_BAD = { "/%zz", "/a<b", "/a|b", "/\195\169", "/a b", "/a\tb", "/a\"b", "/{x}", "/a^b", "/%4",
    "/a[b]", "/?a[0]=1", "/#a#b" }

  local function either(hostile, ok, bad)
    if hostile and math.random() < 0.5 then return pick(bad) end
    return pick(ok)
  end

  local function gen_fleet(hostile)
    if hostile and math.random() < 0.1 then return pick { 42, {}, true } end
    local parts = {}
    for i = 1, math.random(1, 4) do parts[i] = either(hostile, FLEET_OK, FLEET_BAD) end
    return table.concat(parts)
  end

  local function gen_url(hostile)
    if hostile and math.random() < 0.05 then return pick { 7, {}, "" } end
    return either(hostile, SCHEMES_OK, SCHEMES_BAD) .. either(hostile, HOSTS_OK, HOSTS_BAD)
      .. either(hostile, PORTS_OK, PORTS_BAD) .. either(hostile, PATHS_OK, PATHS_BAD)
  end

  local function gen_events(hostile)
    local r = math.random()
    if r < 0.3 then return nil end
    if r < 0.4 then return {} end
    if hostile and r < 0.6 then
      return pick { "agent.created", { a = 1 }, { "webhook.test" }, { "thread.complete" }, { 1 },
        { "agent.created", "agent.created" } }
    end
    local events, used = {}, {}
    for _ = 1, math.random(1, 8) do
      local e = pick(cerca.webhooks.EVENTS)
      if not used[e] then
        events[#events + 1] = e
        used[e] = true
      end
    end
    return events
  end

  local EXTRA_OK = {
    { description = "ops team" },
    { description = "caf\195\169 \226\130\172", retries = 3, active = false },
    { meta = { owner = { name = "x", tags = { "a", "b" } }, empty = cerca.empty_array, gone = cerca.null } },
    { n = 1.5e300, i = -7, z = 0, f = 0.1 },
    { ["weird key \n\"quoted\""] = "ok", [""] = "" },
  }
  local EXTRA_BAD = {
    { url = "https://evil.example" }, { bad = "\255" }, { f = print }, { n = 0 / 0 }, { [1] = "x" },
  }

  local function gen_extra(hostile)
    if math.random() < 0.5 then return nil end
    return either(hostile, EXTRA_OK, EXTRA_BAD)
  end

  local function show(v)
    if type(v) == "string" then return string.format("%q", v) end
    if type(v) ~= "table" then return tostring(v) end
    local parts = {}
    for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. show(x) end
    table.sort(parts)
    return "{" .. table.concat(parts, ", ") .. "}"
  end

  it("accepts every request the library lets through (600 seeded random calls)", function()
    math.randomseed(20261128)
    local accepted, refused = 0, 0
    for _ = 1, 600 do
      local hostile = math.random() < 0.5
      local fleet_id = gen_fleet(hostile)
      local params = { url = gen_url(hostile), events = gen_events(hostile), extra_body = gen_extra(hostile) }
      local sub, err = client.webhooks.create(fleet_id, params)
      if err and err.type == "invalid_request" then
        refused = refused + 1
      else
        -- Accepted: a 201, read as the example (fleet "<string>") or
        -- refused as another fleet's answer.
        local other_fleet = err and err.type == "invalid_response" and err.status == 201
          and err.message:find("names another fleet", 1, true)
        assert(sub or other_fleet, "the library sent fleet_id=" .. show(fleet_id) .. " params=" .. show(params)
          .. " and the oracle refused it: " .. tostring(err) .. " " .. tostring(err and err.body))
        if sub then assert.are.equal("whsec_abc123", sub.secret) end
        accepted = accepted + 1
      end
    end
    print(("\ncontract oracle: %d calls sent and accepted, %d refused by the library before sending")
      :format(accepted, refused))
    -- The generator must exercise both sides for the check to mean anything.
    assert.is_true(accepted >= 100, "only " .. accepted .. " calls were sent")
    assert.is_true(refused >= 100, "only " .. refused .. " calls were refused")
  end)
end)
