-- Validation of webhooks.create's arguments: every rule, its exact message,
-- and the guarantee that a rejected call sends nothing.
local helpers = require "spec.helpers"
local cerca = require "cerca"

describe("webhooks.create validation", function()
  local srv, client

  setup(function()
    srv = helpers.start_server { tls = false }
    client = helpers.client(srv)
  end)

  teardown(function()
    if client then client:close() end
    if srv then srv:stop() end
  end)

  before_each(function() srv:reset() end)

  -- Every rejected call must be invalid_request with this exact message,
  -- name the field, and leave the server untouched.
  local function rejects(message, field, fleet_id, params, options)
    local sub, err = client.webhooks.create(fleet_id, params, options)
    assert.is_nil(sub)
    assert.is_true(cerca.is_error(err))
    assert.are.equal("invalid_request", err.type)
    assert.are.equal(message, err.message)
    assert.are.equal(field, err.field)
    -- webhooks.check refuses it the same way.
    local ok, cerr = client.webhooks.check(fleet_id, params, options)
    assert.is_nil(ok)
    assert.are.equal("invalid_request", cerr.type)
    assert.are.equal(message, cerr.message)
    assert.are.equal(field, cerr.field)
    assert.are.same({}, srv:requests())
  end

  local URL = "https://example.com/webhook"

  it("webhooks.check passes what create would send, sending nothing", function()
    assert.is_true(client.webhooks.check("fleet_1", { url = URL, events = { "agent.created" } },
      { timeout = 5, idempotency_key = "order-42" }))
    assert.is_true(client.webhooks.check("fleet_1", { url = URL, extra_body = { description = "ops" } }))
    assert.are.same({}, srv:requests())
    -- The API key given in the wrong place: refused, as create refuses it.
    local _, err = client.webhooks.check(srv.api_key, { url = URL })
    assert.are.equal("fleet_id", err.field)
    _, err = client.webhooks.check("fleet_1", { url = URL .. "?k=" .. srv.api_key })
    assert.are.equal("params.url", err.field)
    assert.is_nil(err.message:find(srv.api_key, 1, true))
    assert.are.same({}, srv:requests())
  end)

  describe("fleet_id", function()
    it("must be a string", function()
      rejects('fleet_id must be a non-empty string (got nil); pass e.g. "fleet_abc123"',
        "fleet_id", nil, { url = URL })
      rejects('fleet_id must be a non-empty string (got 42); pass e.g. "fleet_abc123"',
        "fleet_id", 42, { url = URL })
    end)

    it("must not be empty", function()
      rejects('fleet_id must not be empty; pass e.g. "fleet_abc123"', "fleet_id", "", { url = URL })
    end)

    it("refuses control characters", function()
      rejects("fleet_id contains a control character (byte 10 at position 6); remove it",
        "fleet_id", "fleet\n1", { url = URL })
      rejects("fleet_id contains a control character (byte 0 at position 2); remove it",
        "fleet_id", "f\0", { url = URL })
      rejects("fleet_id contains a control character (byte 127 at position 1); remove it",
        "fleet_id", "\127", { url = URL })
    end)

    it("cannot be a dot segment", function()
      rejects([[fleet_id cannot be "..", which a URL reads as a path step; pass the fleet's id]],
        "fleet_id", "..", { url = URL })
      rejects([[fleet_id cannot be ".", which a URL reads as a path step; pass the fleet's id]],
        "fleet_id", ".", { url = URL })
    end)

    it("must be UTF-8", function()
      rejects("fleet_id is not valid UTF-8; pass the text encoded as UTF-8",
        "fleet_id", "fleet_\255", { url = URL })
      rejects("fleet_id is not valid UTF-8; pass the text encoded as UTF-8",
        "fleet_id", "\192\175", { url = URL }) -- overlong "/"
    end)

    it("checks every fleet id whatever came before: ids that passed are remembered, never those refused",
      function()
      local webhooks = require "cerca.webhooks"
      -- "." gets a path of its own, yet stays refused.
      assert.are.equal("/fleets/./webhooks", webhooks.path("."))
      for i = 1, 600 do
        assert.is_nil(webhooks.check("fleet_" .. i, { url = URL }))
        assert.are.equal("/fleets/fleet_" .. i .. "/webhooks", webhooks.path("fleet_" .. i))
        if i % 100 == 0 then
          for _, bad in ipairs { ".", "..", "", "fleet_\255", "a\0b" } do
            assert.are.equal("fleet_id", webhooks.check(bad, { url = URL }).field)
          end
        end
      end
      assert.are.equal("/fleets/a%2Fb/webhooks", webhooks.path("a/b"))
    end)

    it("explains a colon call", function()
      local sub, err = client.webhooks:create("fleet_1", { url = URL })
      assert.is_nil(sub)
      assert.are.equal("fleet_id must be a string (got the webhooks table); "
        .. "call create with a dot: client.webhooks.create(fleet_id, params)", err.message)
    end)
  end)

  describe("params", function()
    it("must be a table", function()
      rejects('params must be a table (got nil); pass { url = "https://example.com/webhook" }',
        "params", "fleet_1", nil)
      rejects('params must be a table (got "https://x.io"); pass { url = "https://example.com/webhook" }',
        "params", "fleet_1", "https://x.io")
    end)

    it("rejects unknown keys with a suggestion", function()
      rejects('params: unknown key "evnets"; did you mean "events"?; other body fields go in params.extra_body',
        "params", "fleet_1", { url = URL, evnets = { "agent.created" } })
      rejects('params: unknown key "description"; other body fields go in params.extra_body',
        "params", "fleet_1", { url = URL, description = "x" })
    end)
  end)

  describe("params.url", function()
    it("is required", function()
      rejects('params.url is required; pass the HTTPS endpoint that will receive deliveries, '
        .. 'e.g. "https://example.com/webhook"', "params.url", "fleet_1", {})
    end)

    it("must be a string", function()
      rejects('params.url must be a string (got true); pass e.g. "https://example.com/webhook"',
        "params.url", "fleet_1", { url = true })
    end)

    it("must use https", function()
      rejects("params.url must use https (got http://); deliveries are only sent to HTTPS endpoints",
        "params.url", "fleet_1", { url = "http://example.com/webhook" })
      rejects("params.url must use https (got ftp://); deliveries are only sent to HTTPS endpoints",
        "params.url", "fleet_1", { url = "ftp://example.com/webhook" })
    end)

    it("must be absolute, with a host", function()
      rejects('params.url must be an absolute URL (got "example.com/webhook"); '
        .. 'pass e.g. "https://example.com/webhook"', "params.url", "fleet_1", { url = "example.com/webhook" })
      rejects('params.url must be an absolute URL with a host (got "https:/webhook"); '
        .. 'pass e.g. "https://example.com/webhook"', "params.url", "fleet_1", { url = "https:/webhook" })
      rejects('params.url must name a host (got "https:///webhook"); pass e.g. "https://example.com/webhook"',
        "params.url", "fleet_1", { url = "https:///webhook" })
      -- What stands before "@" may be a password: messages never repeat it.
      rejects('params.url must name a host (got "https://***@:443/"); pass e.g. "https://example.com/webhook"',
        "params.url", "fleet_1", { url = "https://user:pa55@:443/" })
    end)

    it("refuses whitespace and control characters", function()
      rejects("params.url contains whitespace or a control character at position 12; "
        .. "percent-encode it (a space is %20)", "params.url", "fleet_1", { url = "https://exa mple.com" })
      rejects("params.url contains whitespace or a control character at position 21; "
        .. "percent-encode it (a space is %20)", "params.url", "fleet_1", { url = "https://example.com/\r\nX: y" })
    end)

    it("refuses characters a URI may not hold", function()
      rejects("params.url contains a non-ASCII byte at position 10; percent-encode it, and write an "
        .. "international host name in its xn-- (punycode) form", "params.url", "fleet_1",
        { url = "https://b\195\188cher.de/" })
      rejects('params.url contains "<" at position 22, which a URL may not hold; percent-encode it',
        "params.url", "fleet_1", { url = "https://example.com/a<b" })
      rejects("params.url has a % at position 22 not followed by two hex digits; write a literal % as %25",
        "params.url", "fleet_1", { url = "https://example.com/a%zz" })
    end)

    it("keeps brackets to IPv6 hosts and allows one fragment", function()
      rejects('params.url holds "[" or "]" outside an IPv6 host; percent-encode them (%5B, %5D)',
        "params.url", "fleet_1", { url = "https://example.com/?a[0]=1" })
      rejects('params.url holds "[" or "]" outside an IPv6 host; percent-encode them (%5B, %5D)',
        "params.url", "fleet_1", { url = "https://ex[a]mple.com/" })
      rejects('params.url has a host in brackets that is not an IPv6 address (got "[zz]")',
        "params.url", "fleet_1", { url = "https://[zz]/" })
      rejects('params.url holds more than one "#"; percent-encode the others (%23)',
        "params.url", "fleet_1", { url = "https://example.com/#a#b" })
    end)

    it("checks the port", function()
      rejects('params.url has an invalid port (got ":99999"); use a number from 1 to 65535',
        "params.url", "fleet_1", { url = "https://example.com:99999/" })
      rejects('params.url has an invalid port (got ":8x"); use a number from 1 to 65535',
        "params.url", "fleet_1", { url = "https://example.com:8x/" })
      rejects('params.url has an invalid port (got ":0"); use a number from 1 to 65535',
        "params.url", "fleet_1", { url = "https://example.com:0/" })
    end)
  end)

  describe("params.events", function()
    it("must be a list", function()
      rejects('params.events must be a list of event names (got "agent.created"); '
        .. 'e.g. { "agent.created" }, or omit it for all non-test events',
        "params.events", "fleet_1", { url = URL, events = "agent.created" })
    end)

    it("refuses a map-like table", function()
      rejects('params.events must be a list, not a map (found key "agent"); '
        .. 'e.g. { "agent.created" }, or omit it for all non-test events',
        "params.events", "fleet_1", { url = URL, events = { agent = "created" } })
      rejects('params.events must be a list, not a map (found key 3); '
        .. 'e.g. { "agent.created" }, or omit it for all non-test events',
        "params.events", "fleet_1", { url = URL, events = { [1] = "agent.created", [3] = "agent.updated" } })
    end)

    it("holds strings", function()
      rejects("params.events[2] must be an event name string (got 7)",
        "params.events[2]", "fleet_1", { url = URL, events = { "agent.created", 7 } })
    end)

    it("refuses webhook.test with the contract's reason", function()
      rejects('params.events[1]: "webhook.test" is reserved for the test endpoint and cannot be '
        .. "subscribed to; remove it", "params.events[1]", "fleet_1", { url = URL, events = { "webhook.test" } })
    end)

    it("refuses unknown names, suggesting the closest", function()
      rejects('params.events[1]: unknown event "thread.complete"; did you mean "thread.completed"?',
        "params.events[1]", "fleet_1", { url = URL, events = { "thread.complete" } })
      rejects('params.events[2]: unknown event "Agent.Created"; did you mean "agent.created"?',
        "params.events[2]", "fleet_1", { url = URL, events = { "turn.failed", "Agent.Created" } })
      rejects('params.events[1]: unknown event "billing"; see cerca.webhooks.EVENTS for the 19 names',
        "params.events[1]", "fleet_1", { url = URL, events = { "billing" } })
    end)

    it("refuses a list written as one string, giving the list meant", function()
      rejects('params.events[1]: unknown event "agent.created,thread.completed"; give each event its own '
        .. 'item: { "agent.created", "thread.completed" }',
        "params.events[1]", "fleet_1", { url = URL, events = { "agent.created,thread.completed" } })
      rejects('params.events[2]: unknown event "turn.failed turn.completed"; give each event its own '
        .. 'item: { "turn.failed", "turn.completed" }',
        "params.events[2]", "fleet_1", { url = URL, events = { "agent.created", "turn.failed turn.completed" } })
      -- A name in it that is no event: the closest one is suggested instead.
      rejects('params.events[1]: unknown event "agent.created,bogus"; did you mean "agent.created"?',
        "params.events[1]", "fleet_1", { url = URL, events = { "agent.created,bogus" } })
    end)

    it("refuses duplicates", function()
      rejects('params.events[3]: "agent.created" is already listed at params.events[1]; list each event once',
        "params.events[3]", "fleet_1", { url = URL, events = { "agent.created", "turn.failed", "agent.created" } })
    end)

    it("judges each call on its own list: a refused list leaves nothing for the next call", function()
      local webhooks = require "cerca.webhooks"
      for _, events in ipairs {
        { "agent.created", "turn.failed", "agent.created" }, { "agent.created", 7 },
        { "turn.failed", "webhook.test" }, { "agent.created", "billing" },
      } do
        assert.is_table(webhooks.check("fleet_1", { url = URL, events = events }))
        assert.is_nil(webhooks.check("fleet_1", { url = URL, events = { "agent.created", "turn.failed" } }))
      end
    end)
  end)

  describe("params.extra_body", function()
    it("must be a table with string keys", function()
      rejects('params.extra_body must be a table of extra body fields (got "x")',
        "params.extra_body", "fleet_1", { url = URL, extra_body = "x" })
      rejects("params.extra_body has a key of type number; body fields are named by strings",
        "params.extra_body", "fleet_1", { url = URL, extra_body = { "a" } })
    end)

    it("cannot carry the named parameters", function()
      rejects("params.extra_body.url: url is a named parameter; set params.url instead",
        "params.extra_body.url", "fleet_1", { url = URL, extra_body = { url = "https://other.example" } })
      rejects("params.extra_body.events: events is a named parameter; set params.events instead",
        "params.extra_body.events", "fleet_1", { url = URL, extra_body = { events = {} } })
    end)

    it("must be representable as JSON", function()
      rejects("params.extra_body.f is a function, which cannot be sent as JSON; "
        .. "use a string, number, boolean, table or cerca.null",
        "params.extra_body", "fleet_1", { url = URL, extra_body = { f = print } })
      rejects("params.extra_body.n must be a finite number (got inf)",
        "params.extra_body", "fleet_1", { url = URL, extra_body = { n = math.huge } })
      rejects("params.extra_body.s is not valid UTF-8; JSON text must be UTF-8",
        "params.extra_body", "fleet_1", { url = URL, extra_body = { s = "\255" } })
      rejects("params.extra_body.list is a list with holes; JSON arrays cannot hold nil",
        "params.extra_body", "fleet_1", { url = URL, extra_body = { list = { 1, nil, 3, [5] = 5 } } })
      rejects("params.extra_body.mixed mixes list items and named keys; use one or the other",
        "params.extra_body", "fleet_1", { url = URL, extra_body = { mixed = { 1, k = 2 } } })
      rejects("params.extra_body.k has a key that is not valid UTF-8; JSON text must be UTF-8",
        "params.extra_body", "fleet_1", { url = URL, extra_body = { k = { ["\255"] = 1 } } })
      rejects("params.extra_body.id has more digits than JSON numbers keep here (123456789012345); "
        .. "send it as a string", "params.extra_body", "fleet_1", { url = URL, extra_body = { id = 123456789012345 } })
      rejects("params.extra_body.t has a key of type boolean (true); JSON objects need string keys",
        "params.extra_body", "fleet_1", { url = URL, extra_body = { t = { [true] = 1 } } })
      local loop = {}
      loop.self = loop
      rejects("params.extra_body nests deeper than 32 levels (or refers to itself)",
        "params.extra_body", "fleet_1", { url = URL, extra_body = { loop = loop } })
    end)
  end)

  -- Params of the same content as the last create's that passed are not
  -- checked again: whatever differs must be.
  describe("params that passed before", function()
    local function passes(fleet_id, params)
      local sub, err = client.webhooks.create(fleet_id, params)
      assert.is_nil(err)
      assert.is_truthy(sub)
    end

    it("are checked again once changed in place, however little", function()
      local params = { url = URL, events = { "agent.created" } }
      passes("fleet_1", params)
      srv:reset()
      params.events[1] = "agent.creatd"
      rejects('params.events[1]: unknown event "agent.creatd"; did you mean "agent.created"?',
        "params.events[1]", "fleet_1", params)
      params.events[1] = "agent.created"
      params.events[2] = "agent.created"
      rejects('params.events[2]: "agent.created" is already listed at params.events[1]; list each event once',
        "params.events[2]", "fleet_1", params)
      params.events[2] = nil
      params.url = "http://example.com/webhook"
      rejects("params.url must use https (got http://); deliveries are only sent to HTTPS endpoints",
        "params.url", "fleet_1", params)
      params.url = URL
      params.evnets = true
      rejects('params: unknown key "evnets"; did you mean "events"?; other body fields go in params.extra_body',
        "params", "fleet_1", params)
      params.evnets = nil
      passes("fleet_1", params)
      srv:reset()
      -- A list that became a map, and a url that became a table.
      params.events.x = "agent.created"
      rejects('params.events must be a list, not a map (found key "x"); e.g. { "agent.created" }, or omit it for '
        .. "all non-test events", "params.events", "fleet_1", params)
    end)

    it("with a metatable are refused as any others are", function()
      passes("fleet_1", { url = URL })
      srv:reset()
      -- The same fields to a raw read, others through __index.
      local proxy = setmetatable({ url = URL }, { __index = function(_, k)
        if k == "events" then return { "no.such.event" } end
      end })
      rejects("params has a metatable with __index: cerca reads a table's own fields (with pairs), never through "
        .. "__index; pass a plain table, with any defaults copied into it", "params", "fleet_1", proxy)
    end)

    it("leave the fleet id to its own checks", function()
      local params = { url = URL }
      passes("fleet_1", params)
      srv:reset()
      rejects('fleet_id cannot be "..", which a URL reads as a path step; pass the fleet\'s id',
        "fleet_id", "..", params)
      rejects('fleet_id must be a non-empty string (got nil); pass e.g. "fleet_abc123"', "fleet_id", nil, params)
      rejects('fleet_id must be a non-empty string (got nil); pass e.g. "fleet_abc123"', "fleet_id", nil,
        { url = URL })
    end)

    it("are searched for each client's own API key", function()
      -- Params that hold another client's key pass for this one, and are
      -- refused by the client whose key they hold.
      local other_key = "sk_test_other_0123456789"
      local params = { url = URL .. "?token=" .. other_key }
      passes("fleet_1", params)
      local other = helpers.client(srv, { api_key = other_key })
      srv:reset()
      local sub, err = other.webhooks.create("fleet_1", { url = URL .. "?token=" .. other_key })
      other:close()
      assert.is_nil(sub)
      assert.are.equal("params.url", err.field)
      assert.is_nil(err.message:find(other_key, 1, true))
      assert.are.same({}, srv:requests())
    end)

    it("are checked against the URL limit of the time", function()
      local webhooks = require "cerca.webhooks"
      local url = "https://example.com/" .. ("a"):rep(80)
      passes("fleet_1", { url = url })
      srv:reset()
      local limit = webhooks.MAX_URL_BYTES
      webhooks.MAX_URL_BYTES = 50
      local sub, err = client.webhooks.create("fleet_1", { url = url })
      webhooks.MAX_URL_BYTES = limit
      assert.is_nil(sub)
      assert.are.equal("params.url is 100 bytes long; at most 50 are accepted", err.message)
      assert.are.same({}, srv:requests())
    end)

    it("keep a list marked by a metatable that hides itself, read raw", function()
      local json = require "cerca.json"
      json.array_mt.__metatable = "locked"
      local ok, sub, err = pcall(client.webhooks.create, "fleet_1",
        { url = URL, events = setmetatable({ "agent.created" }, json.array_mt) })
      json.array_mt.__metatable = nil
      assert.is_true(ok)
      assert.is_nil(err)
      assert.are.same({ "agent.created" }, { table.unpack and table.unpack(sub.events) or unpack(sub.events) })
    end)

    -- A caller's finalizer that creates runs inside a create: at the 1st,
    -- 2nd, ... allocation of the check of a new fleet on the shortcut, and
    -- of the remembering of params that passed. Each create must send its
    -- own body, and so must every create after. In a fresh interpreter:
    -- the collector's settings of helpers.finalizer_inside stay out of the
    -- suite's.
    it("stay beside their own body when a finalizer creates meanwhile", function()
      local out, status = helpers.run_lua([[
        local helpers = require "spec.helpers"
        local cerca = require "cerca"
        local validate = require "cerca.validate"
        local json = require "cerca.json"
        local client = assert(cerca.new { api_key = os.getenv("KEY"), base_url = os.getenv("URL"),
          log_level = "off", max_retries = 0 })
        local ONE = { url = "https://example.com/one" }
        local TWO = { url = "https://example.com/two", events = { "agent.created" } }
        local wrong, fired, fleets = 0, 0, 0
        local function create(params)
          fleets = fleets + 1
          local sub = assert(client.webhooks.create("fleet_" .. fleets, params))
          if sub.url ~= params.url then wrong = wrong + 1 end
        end
        -- The nested create is refused by its options, after its params
        -- passed: it sends nothing, and leaves its params remembered.
        local function nested() client.webhooks.create("fleet_n", TWO, { bogus = 1 }) end
        for step = 1, 12 do
          for _, where in ipairs { { validate, "request_path" }, { json, "canonical_body" } } do
            create(ONE)
            local _, stop = helpers.finalizer_inside(where[1], where[2], nested, step)
            create(where[2] == "request_path" and ONE or { url = "https://example.com/three" })
            fired = fired + stop()
            create(TWO)
            create(ONE)
          end
        end
        io.write("RESULT ", wrong, " ", fired, "\n")
      ]], { URL = srv.http_url, KEY = srv.api_key })
      assert.are.equal(0, status, out)
      local wrong, fired = out:match("RESULT (%d+) (%d+)")
      assert.are.equal("0", wrong, out)
      -- (LuaJIT runs no finalizer inside the call: nothing to check there.)
      if helpers.abi ~= "luajit" then assert.is_true(tonumber(fired) > 0, out) end
    end)

    it("send the same bytes, in a create and in a batch", function()
      local params = { url = URL, events = { "thread.completed", "agent.created" } }
      passes("fleet_1", params)
      passes("fleet_2", { events = { "thread.completed", "agent.created" }, url = URL })
      local results = client.webhooks.create_many({ { fleet_id = "fleet_3", params = params },
        { fleet_id = "fleet_4", params = { url = URL, events = { "thread.completed", "agent.created" } } } })
      assert.is_true(results[1].ok and results[2].ok)
      local reqs = srv:requests()
      assert.are.equal(4, #reqs)
      for i = 1, 4 do
        assert.are.equal('{"events":["thread.completed","agent.created"],"url":"https:\\/\\/example.com\\/webhook"}',
          reqs[i].body)
      end
    end)
  end)

  describe("per-call options", function()
    it("must be a table of known options", function()
      rejects('options must be a table (got "fast"); e.g. { timeout = 10 }', "options",
        "fleet_1", { url = URL }, "fast")
      rejects('options: unknown key "timeuot"; did you mean "timeout"?', "options",
        "fleet_1", { url = URL }, { timeuot = 5 })
    end)

    it("checks each option", function()
      rejects("options.timeout must be a positive number of seconds (got 0)", "options.timeout",
        "fleet_1", { url = URL }, { timeout = 0 })
      rejects("options.timeout must be at least 0.001 seconds (got 0.0005)", "options.timeout",
        "fleet_1", { url = URL }, { timeout = 0.0005 })
      rejects("options.connect_timeout must be a positive number of seconds (got inf)",
        "options.connect_timeout", "fleet_1", { url = URL }, { connect_timeout = math.huge })
      rejects("options.max_retries must be a whole number from 0 to 10 (got 1.5)", "options.max_retries",
        "fleet_1", { url = URL }, { max_retries = 1.5 })
    end)

    it("refuses header injection", function()
      rejects('options.headers["X-Team"] contains a control character (byte 13 at position 4); '
        .. "CR, LF and NUL would split the request, remove them", "options.headers",
        "fleet_1", { url = URL }, { headers = { ["X-Team"] = "ops\r\nX-Evil: 1" } })
      rejects('options.headers["Bad Name"]: "Bad Name" is not a valid header name; '
        .. "use letters, digits and - only", "options.headers",
        "fleet_1", { url = URL }, { headers = { ["Bad Name"] = "x" } })
      rejects('options.headers["authorization"]: authorization cannot be set as a header; '
        .. "set the api_key option instead", "options.headers",
        "fleet_1", { url = URL }, { headers = { authorization = "Bearer other" } })
      -- A key that is not a string is refused as it is, whatever tostring makes of it.
      rejects("options.headers: 1e+300 is not a valid header name; use letters, digits and - only",
        "options.headers", "fleet_1", { url = URL },
        { headers = { [1e300] = "a\r\nX-Injected: yes", ["1e+300"] = "ok" } })
    end)
  end)
end)
