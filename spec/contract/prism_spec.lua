-- Shows that the Prism oracle (spec/contract/prism.lua + openapi.yaml) is
-- strict: it answers 201 with the seed's example only for requests the seed
-- allows, and pins down what it answers otherwise. curl is the client, so
-- nothing here depends on the SDK. The observed behaviour is documented in
-- spec/contract/README.md.

local prism = require "spec.contract.prism"

local SEED_EXAMPLE = '{"createdAt":"<string>","enabled":true,"fleetId":"<string>",'
  .. '"events":[],"id":"<string>","updatedAt":"<string>","url":"<string>",'
  .. '"secret":"whsec_abc123"}'

local PATH = "/fleets/fleet_abc123/webhooks"
local AUTH = "Authorization: Bearer test-token"
local JSON = "Content-Type: application/json"
local VALID_BODY = '{"url":"https://example.com/webhook"}'

local function quote(s)
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  os.remove(path)
  return s
end

--- POSTs with curl. req: base, path, body (string or nil), headers (list of
-- "Name: value"; default AUTH and JSON), max_time (seconds, default 5).
-- Returns { status = number (0 when nothing answered), body, headers, exit }.
local function post(req)
  local head_file, body_file = os.tmpname(), os.tmpname()
  local args = {
    "curl", "-s", "-g", "--path-as-is",
    "--max-time", tostring(req.max_time or 5),
    "-D", quote(head_file), "-o", quote(body_file),
    "-w", "'%{http_code}'", "-X", "POST",
  }
  for _, header in ipairs(req.headers or { AUTH, JSON }) do
    args[#args + 1] = "-H " .. quote(header)
  end
  if req.body then
    args[#args + 1] = "--data-binary " .. quote(req.body)
  end
  args[#args + 1] = quote(req.base .. (req.path or PATH))
  local pipe = assert(io.popen(table.concat(args, " ") .. '; echo " $?"'))
  local out = pipe:read("*a")
  pipe:close()
  local status, exit = out:match("^(%d+) (%d+)")
  return {
    status = tonumber(status) or 0,
    exit = tonumber(exit),
    headers = slurp(head_file),
    body = slurp(body_file),
  }
end

local function header(res, name)
  for line in res.headers:gmatch("[^\r\n]+") do
    local key, value = line:match("^([^:]+):%s*(.-)%s*$")
    if key and key:lower() == name:lower() then
      return value
    end
  end
  return nil
end

local function assert_created(res)
  assert.are.equal(201, res.status)
  assert.are.equal("application/json", header(res, "Content-Type"))
  assert.are.equal(SEED_EXAMPLE, res.body)
end

--- Checks a Prism problem+json answer: status, error type and a fragment of
-- the body (for 422, the validation entry that explains the rejection).
local function assert_problem(res, status, kind, fragment)
  assert.are.equal(status, res.status)
  assert.are.equal("application/problem+json", header(res, "Content-Type"))
  assert.truthy(res.body:find('"type":"https://stoplight.io/prism/errors#' .. kind .. '"', 1, true),
    res.body)
  assert.truthy(res.body:find('"status":' .. status, 1, true), res.body)
  if fragment then
    assert.truthy(res.body:find(fragment, 1, true), res.body)
  end
end

describe("contract oracle (Prism mock of the seed)", function()
  local server

  setup(function()
    prism.install()
    server = assert(prism.start())
  end)

  teardown(function()
    if server then
      server:stop()
    end
  end)

  local function send(req)
    req.base = server.url
    return post(req)
  end

  describe("accepts with 201 and the seed's example body", function()
    it("a bearer token and a url", function()
      assert_created(send({ body = VALID_BODY }))
    end)

    it("an events list", function()
      assert_created(send({
        body = '{"url":"https://example.com/webhook",'
          .. '"events":["agent.created","thread.status.changed","connection.detached"]}',
      }))
    end)

    it("an empty events list", function()
      assert_created(send({ body = '{"url":"https://example.com/webhook","events":[]}' }))
    end)

    it("extra keys (the seed's {key}: any)", function()
      assert_created(send({
        body = '{"url":"https://example.com/webhook","description":"x","metadata":{"a":[1,null]}}',
      }))
    end)

    it("an http:// url: format uri says nothing about the scheme", function()
      assert_created(send({ body = '{"url":"http://example.com/webhook"}' }))
    end)

    it("a fleetId with percent-encoded reserved characters", function()
      assert_created(send({ path = "/fleets/a%2F..%2Fb%3Fx%23y%20z/webhooks", body = VALID_BODY }))
    end)

    it("a fleetId with percent-encoded UTF-8", function()
      assert_created(send({ path = "/fleets/%C3%A9/webhooks", body = VALID_BODY }))
    end)
  end)

  describe("rejects with 401 UNAUTHORIZED", function()
    local function assert_unauthorized(res)
      assert_problem(res, 401, "UNAUTHORIZED")
      assert.are.equal("Bearer", header(res, "WWW-Authenticate"))
    end

    it("a missing Authorization header", function()
      assert_unauthorized(send({ headers = { JSON }, body = VALID_BODY }))
    end)

    it("a missing Authorization header even when the body is invalid too", function()
      assert_unauthorized(send({ headers = { JSON }, body = "{}" }))
    end)

    it("another scheme", function()
      assert_unauthorized(send({ headers = { "Authorization: Basic dTpw", JSON }, body = VALID_BODY }))
    end)

    it("a lowercase 'bearer' scheme", function()
      assert_unauthorized(send({ headers = { "Authorization: bearer test-token", JSON }, body = VALID_BODY }))
    end)

    it("'Bearer' without a token", function()
      assert_unauthorized(send({ headers = { "Authorization: Bearer", JSON }, body = VALID_BODY }))
    end)
  end)

  describe("rejects with 422 UNPROCESSABLE_ENTITY", function()
    local function assert_invalid(body, fragment)
      assert_problem(send({ body = body }), 422, "UNPROCESSABLE_ENTITY", fragment)
    end

    it("a missing url", function()
      assert_invalid("{}", [["code":"required","message":"Request body must have required property 'url'"]])
    end)

    it("a url that is not a URI", function()
      local fragment = [["location":["body","url"],"severity":"Error","code":"format"]]
      assert_invalid('{"url":"not a uri"}', fragment)
      assert_invalid('{"url":"https://exa mple.com"}', fragment)
      assert_invalid('{"url":"/webhook"}', fragment)
      assert_invalid('{"url":""}', fragment)
    end)

    it("a url that is not a string", function()
      assert_invalid('{"url":null}', [["code":"type","message":"Request body property url must be string"]])
    end)

    it("events that is not an array", function()
      local fragment = [["code":"type","message":"Request body property events must be array"]]
      assert_invalid('{"url":"https://example.com/webhook","events":{}}', fragment)
      assert_invalid('{"url":"https://example.com/webhook","events":null}', fragment)
    end)

    it("an unknown event name", function()
      assert_invalid('{"url":"https://example.com/webhook","events":["agent.exploded"]}',
        [["location":["body","events","0"],"severity":"Error","code":"enum"]])
    end)

    it("webhook.test, which cannot be subscribed to", function()
      assert_invalid('{"url":"https://example.com/webhook","events":["agent.created","webhook.test"]}',
        [["location":["body","events","1"],"severity":"Error","code":"enum"]])
    end)

    it("a non-string events entry", function()
      assert_invalid('{"url":"https://example.com/webhook","events":[1]}',
        [["code":"type","message":"Request body property events.0 must be string"]])
    end)

    it("a body that is not an object", function()
      assert_invalid("[]", [["code":"type","message":"Request body must be object"]])
    end)

    it("an empty fleetId", function()
      local res = send({ path = "/fleets//webhooks", body = VALID_BODY })
      assert_problem(res, 422, "UNPROCESSABLE_ENTITY", [["location":["path"],"severity":"Error","code":"required"]])
    end)
  end)

  describe("answers outside the contract", function()
    it("415 for a body that is not sent as JSON", function()
      local res = send({ headers = { AUTH, "Content-Type: application/x-www-form-urlencoded" }, body = VALID_BODY })
      assert_problem(res, 415, "INVALID_CONTENT_TYPE")
    end)

    it("404 for a fleetId that is a dot segment, even percent-encoded", function()
      for _, segment in ipairs({ "..", "%2E%2E", "." }) do
        local res = send({ path = "/fleets/" .. segment .. "/webhooks", body = VALID_BODY })
        assert_problem(res, 404, "NO_PATH_MATCHED_ERROR")
      end
    end)

    it("400 invalid_json for malformed JSON", function()
      local res = send({ body = '{"url":', max_time = 2 })
      assert.are.equal(0, res.exit)
      assert.are.equal(400, res.status)
      assert.matches('"invalid_json"', res.body, 1, true)
      assert_created(send({ body = VALID_BODY })) -- and the server still serves
    end)
  end)
end)

describe("contract oracle given a fleetId that is not valid percent-encoded UTF-8", function()
  local server

  before_each(function()
    prism.install()
    server = assert(prism.start())
  end)

  after_each(function()
    if server then
      server:stop()
    end
  end)

  local function assert_crashes(path)
    local res = post({ base = server.url, path = path, body = VALID_BODY })
    assert.are.equal(52, res.exit) -- curl: empty reply from server
    assert.are.equal(0, res.status)
    for _ = 1, 30 do
      if not server:running() then
        break
      end
      os.execute("sleep 0.1")
    end
    assert.is_false(server:running())
    local log = assert(io.open(server.log))
    local output = log:read("*a")
    log:close()
    assert.truthy(output:find("URIError: URI malformed", 1, true), output)
  end

  it("kills Prism on invalid UTF-8 (%FF)", function()
    assert_crashes("/fleets/%FF/webhooks")
  end)

  it("kills Prism on a truncated escape (a%2)", function()
    assert_crashes("/fleets/a%2/webhooks")
  end)
end)
