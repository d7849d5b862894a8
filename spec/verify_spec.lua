-- Receiving deliveries: Standard Webhooks v1 signatures, known answers and
-- every way a delivery can be wrong.
local helpers = require "spec.helpers"
local cerca = require "cerca"
local cjson = require "cjson"

-- The Standard Webhooks reference test vector.
local SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
local MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
local TS = 1614265330
local BODY = '{"test": 2432232314}'
local SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

local function headers(overrides)
  local h = { ["webhook-id"] = MSG_ID, ["webhook-timestamp"] = tostring(TS), ["webhook-signature"] = SIGNATURE }
  for k, v in pairs(overrides or {}) do
    if v == false then h[k] = nil else h[k] = v end
  end
  return h
end

local AT = { now = TS }

-- Standard base64 with padding (arithmetic only: every Lua the suite runs under).
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(bytes)
  local out = {}
  for i = 1, #bytes, 3 do
    local a, b, c = bytes:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = {}
    for k = 4, 1, -1 do
      local v = n % 64
      chars[k] = B64:sub(v + 1, v + 1)
      n = (n - v) / 64
    end
    if not b then chars[3] = "=" end
    if not c then chars[4] = "=" end
    out[#out + 1] = table.concat(chars)
  end
  return table.concat(out)
end

local function refused(kind, message, body, h, secret, opts)
  local event, err = cerca.webhooks.verify(body, h, secret, opts or AT)
  assert.is_nil(event)
  assert.is_true(cerca.is_error(err))
  assert.are.equal(kind, err.type)
  if message then assert.are.equal(message, err.message) end
  return err
end

describe("webhooks.sign", function()
  it("gives the reference signature", function()
    assert.are.equal(SIGNATURE, cerca.webhooks.sign(BODY, SECRET, MSG_ID, TS))
    assert.are.equal(SIGNATURE, cerca.webhooks.sign(BODY, SECRET, MSG_ID, tostring(TS)))
  end)

  it("takes the secret with or without whsec_", function()
    assert.are.equal(SIGNATURE, cerca.webhooks.sign(BODY, SECRET:sub(7), MSG_ID, TS))
  end)

  it("returns invalid_secret for a secret that does not decode", function()
    for _, bad in ipairs { "whsec_", "whsec_!!!!", "whsec_abc", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", 42 } do
      local sig, err = cerca.webhooks.sign(BODY, bad, MSG_ID, TS)
      assert.is_nil(sig)
      assert.are.equal("invalid_secret", err.type)
    end
  end)

  it("returns invalid_payload for arguments of the wrong type, never raises", function()
    local sig, err = cerca.webhooks.sign(nil, SECRET, MSG_ID, TS)
    assert.is_nil(sig)
    assert.are.equal("invalid_payload", err.type)
    for _, ts in ipairs { 1.5, -1, 1e20, 0 / 0, 1e12, "abc", "", "1.5", " 1", "1000000000000" } do
      sig, err = cerca.webhooks.sign(BODY, SECRET, MSG_ID, ts)
      assert.is_nil(sig)
      assert.are.equal("invalid_payload", err.type)
      assert.are.equal("the timestamp must be a whole number of seconds, at most 12 digits", err.message)
    end
    -- What it signs, verify takes.
    assert(cerca.webhooks.sign(BODY, SECRET, MSG_ID, 999999999999))
  end)
end)

describe("webhooks.verify", function()
  it("accepts the reference delivery and returns the event", function()
    local event, err = cerca.webhooks.verify(BODY, headers(), SECRET, AT)
    assert.is_nil(err)
    assert.are.same({ test = 2432232314 }, event)
  end)

  it("takes headers in any letter case (a plain table, or nginx's)", function()
    local h = { ["Webhook-Id"] = MSG_ID, ["WEBHOOK-TIMESTAMP"] = tostring(TS), ["webhook-Signature"] = SIGNATURE }
    assert(cerca.webhooks.verify(BODY, h, SECRET, AT))
  end)

  describe("signatures", function()
    it("refuses a signature with its last character changed", function()
      refused("invalid_signature", "no signature matches: the body, the headers or the secret differ "
        .. "from what was signed", BODY, headers { ["webhook-signature"] = SIGNATURE:sub(1, -3) .. "A=" }, SECRET)
    end)

    it("refuses the body re-serialised without the space", function()
      refused("invalid_signature", nil, '{"test":2432232314}', headers(), SECRET)
    end)

    it("refuses another id or timestamp than the signed ones", function()
      refused("invalid_signature", nil, BODY, headers { ["webhook-id"] = MSG_ID .. "x" }, SECRET)
      refused("invalid_signature", nil, BODY, headers { ["webhook-timestamp"] = tostring(TS + 1) }, SECRET)
    end)

    it("refuses another secret", function()
      refused("invalid_signature", nil, BODY, headers(), "whsec_" .. ("A"):rep(32))
    end)

    it("finds the valid entry among decoys", function()
      local decoys = "v1,Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg= v1a,abc v2," .. SIGNATURE:sub(4)
      assert(cerca.webhooks.verify(BODY, headers { ["webhook-signature"] = decoys .. " " .. SIGNATURE .. " v1,x" },
        SECRET, AT))
    end)

    it("refuses only decoys", function()
      refused("invalid_signature", nil, BODY,
        headers { ["webhook-signature"] = "v1,Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg= v1,AAAA" }, SECRET)
    end)

    it("skips unknown versions, even one holding the right MAC", function()
      refused("invalid_signature", "webhook-signature holds no v1 signature", BODY,
        headers { ["webhook-signature"] = "v2," .. SIGNATURE:sub(4) .. " v1a," .. SIGNATURE:sub(4) }, SECRET)
    end)

    it("refuses a signature spelt another way than canonical base64 (bits after the last byte set)", function()
      -- The reference signature ends "OE=": "E" carries 2 bits no byte
      -- holds. "F", "G" and "H" decode to the same 32 bytes.
      for _, last in ipairs { "F", "G", "H" } do
        local other = SIGNATURE:sub(1, -3) .. last .. "="
        refused("invalid_signature", nil, BODY, headers { ["webhook-signature"] = other }, SECRET)
      end
      assert(cerca.webhooks.verify(BODY, headers(), SECRET, AT))
    end)

    it("refuses garbage base64 in the signature", function()
      for _, sig in ipairs { "v1,!!!!", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", "v1,", "v1",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE==", "v1, g0hM9SsE", "v1,====" } do
        refused("invalid_signature", nil, BODY, headers { ["webhook-signature"] = sig }, SECRET)
      end
    end)

    it("examines a bounded number of entries", function()
      local decoys = {}
      for i = 1, 16 do decoys[i] = "v1,AAAA" end
      refused("invalid_signature", nil, BODY,
        headers { ["webhook-signature"] = table.concat(decoys, " ") .. " " .. SIGNATURE }, SECRET)
      decoys[16] = SIGNATURE
      assert(cerca.webhooks.verify(BODY, headers { ["webhook-signature"] = table.concat(decoys, " ") }, SECRET, AT))
    end)
  end)

  describe("timestamps", function()
    it("refuses an expired delivery", function()
      refused("timestamp", "the delivery is too old (301 s, tolerance 300 s)", BODY, headers(), SECRET,
        { now = TS + 301 })
      assert(cerca.webhooks.verify(BODY, headers(), SECRET, { now = TS + 300 }))
    end)

    it("refuses a delivery from the future", function()
      refused("timestamp", "the delivery is from the future (301 s ahead, tolerance 300 s)", BODY, headers(),
        SECRET, { now = TS - 301 })
      assert(cerca.webhooks.verify(BODY, headers(), SECRET, { now = TS - 300 }))
    end)

    it("takes another tolerance", function()
      refused("timestamp", nil, BODY, headers(), SECRET, { now = TS + 11, tolerance = 10 })
      refused("timestamp", "the delivery is too old (1 s, tolerance 0.5 s)", BODY, headers(), SECRET,
        { now = TS + 0.75, tolerance = 0.5 })
    end)

    it("uses the current time by default", function()
      refused("timestamp", nil, BODY, headers(), SECRET, {})
      local now = os.time()
      local h = headers { ["webhook-timestamp"] = tostring(now),
        ["webhook-signature"] = cerca.webhooks.sign(BODY, SECRET, MSG_ID, now) }
      assert(cerca.webhooks.verify(BODY, h, SECRET))
    end)

    it("refuses a timestamp that is not a whole number", function()
      for _, ts in ipairs { "1614265330.5", "-1614265330", "0x6037", "abc", " 1614265330", "1e9",
        "99999999999999999999", "1614265330000" } do
        refused("timestamp", "webhook-timestamp is not a whole number of seconds", BODY,
          headers { ["webhook-timestamp"] = ts }, SECRET)
      end
    end)
  end)

  describe("headers", function()
    it("refuses a missing or empty header, naming it", function()
      for _, name in ipairs { "webhook-id", "webhook-timestamp", "webhook-signature" } do
        refused("missing_header", "the " .. name .. " header is missing", BODY, headers { [name] = false }, SECRET)
        refused("missing_header", "the " .. name .. " header is missing", BODY, headers { [name] = "" }, SECRET)
      end
    end)

    it("refuses a header whose value is no string, saying so", function()
      refused("missing_header", "webhook-timestamp must be the header's text, a string (got number)", BODY,
        headers { ["webhook-timestamp"] = TS }, SECRET)
    end)

    it("refuses a header given as a list of values", function()
      refused("missing_header", "webhook-signature was sent more than once; a delivery has exactly one", BODY,
        headers { ["webhook-signature"] = { SIGNATURE, SIGNATURE } }, SECRET)
    end)

    it("refuses the same header twice in different cases", function()
      local h = headers()
      h["Webhook-Id"] = MSG_ID
      refused("missing_header", "webhook-id was sent more than once; a delivery has exactly one", BODY, h, SECRET)
    end)

    it("refuses headers that are not a table", function()
      refused("missing_header", "headers must be a table of the request's headers", BODY, "webhook-id: x", SECRET)
    end)
  end)

  describe("secrets", function()
    it("refuses garbage base64, or nothing, in the secret", function()
      for _, bad in ipairs { "whsec_!!!!", "whsec_", "", "whsec_abc", "whsec_ MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", nil, 7 } do
        refused("invalid_secret", "the secret is not valid: expected whsec_ followed by base64 of the key",
          BODY, headers(), bad)
      end
    end)

    it("refuses a secret spelt another way than canonical base64", function()
      -- "...LaSw" has no padding; a secret of 32 bytes ends with one "=",
      -- whose last character before it must carry no stray bits.
      local key = string.rep("k", 32)
      local canonical = "whsec_" .. base64(key)
      assert.are.equal("=", canonical:sub(-1))
      assert.are_not.equal("=", canonical:sub(-2, -2))
      local stray = canonical:sub(1, -3) .. string.char(canonical:byte(-2) + 1) .. "="
      assert(cerca.webhooks.sign(BODY, canonical, MSG_ID, TS))
      local sig, err = cerca.webhooks.sign(BODY, stray, MSG_ID, TS)
      assert.is_nil(sig)
      assert.are.equal("invalid_secret", err.type)
    end)

    it("takes a key of up to 1024 bytes, and says so past it", function()
      local encode = base64
      for _, n in ipairs { 1022, 1023, 1024 } do
        assert(cerca.webhooks.sign(BODY, "whsec_" .. encode(string.rep("k", n)), MSG_ID, TS), n)
      end
      for _, n in ipairs { 1025, 1026, 5000 } do
        refused("invalid_secret", "the secret is not valid: its key is longer than 1024 bytes", BODY, headers(),
          "whsec_" .. encode(string.rep("k", n)))
      end
    end)

    it("reports a bad secret before anything else", function()
      refused("invalid_secret", nil, BODY, headers { ["webhook-signature"] = false }, "whsec_!!")
    end)
  end)

  describe("bodies", function()
    local function signed(body)
      return headers { ["webhook-signature"] = cerca.webhooks.sign(body, SECRET, MSG_ID, TS) }
    end

    it("refuses an empty body, even correctly signed, as not JSON", function()
      refused("invalid_payload", nil, "", signed(""), SECRET)
    end)

    it("refuses a signed body that is not a JSON object", function()
      refused("invalid_payload", nil, "not json", signed("not json"), SECRET)
      refused("invalid_payload", "the signed body is not a JSON object", "42", signed("42"), SECRET)
      refused("invalid_payload", "the signed body is not a JSON object", "[1,2]", signed("[1,2]"), SECRET)
    end)

    it("verifies a large body", function()
      local body = cjson.encode { type = "message.created", data = { text = ("x"):rep(900 * 1024) } }
      local event = assert(cerca.webhooks.verify(body, signed(body), SECRET, AT))
      assert.are.equal("message.created", event.type)
    end)

    it("refuses a body over the size limit before any work", function()
      local body = ("x"):rep(1024 * 1024 + 1)
      refused("invalid_payload", "the body is larger than 1048576 bytes", body, headers(), SECRET)
      refused("invalid_payload", "the body is larger than 10 bytes", BODY, headers(), SECRET,
        { now = TS, max_body = 10 })
    end)

    it("refuses a body that is not a string", function()
      refused("invalid_payload", "the body must be the raw request body, a string", nil, headers(), SECRET)
    end)
  end)

  describe("replay guard", function()
    local function sign_at(id, ts, body)
      return { ["webhook-id"] = id, ["webhook-timestamp"] = tostring(ts),
        ["webhook-signature"] = assert(cerca.webhooks.sign(body, SECRET, id, ts)) }
    end

    it("refuses a delivery whose id already passed, as replayed", function()
      local guard = assert(cerca.webhooks.replay_guard())
      local opts = { now = TS, replay = guard }
      assert(cerca.webhooks.verify(BODY, headers(), SECRET, opts))
      local err = refused("replayed", nil, BODY, headers(), SECRET, opts)
      assert.matches(MSG_ID, err.message, 1, true)
      -- Another id passes; without the guard, the same one does too.
      assert(cerca.webhooks.verify(BODY, sign_at("msg_other", TS, BODY), SECRET, opts))
      assert(cerca.webhooks.verify(BODY, headers(), SECRET, AT))
    end)

    it("records only deliveries that verified: a forged one cannot block the real one", function()
      local guard = assert(cerca.webhooks.replay_guard())
      local opts = { now = TS, replay = guard }
      refused("invalid_signature", nil, BODY:gsub("2432232314", "1"), headers(), SECRET, opts)
      refused("invalid_payload", nil, "[1]", sign_at(MSG_ID, TS, "[1]"), SECRET, opts)
      assert(cerca.webhooks.verify(BODY, headers(), SECRET, opts))
    end)

    it("forgets an id once its delivery is out of the tolerance window", function()
      local guard = assert(cerca.webhooks.replay_guard())
      assert(cerca.webhooks.verify(BODY, headers(), SECRET, { now = TS, replay = guard }))
      -- Later, a new delivery under the same id and a fresh timestamp passes.
      local later = TS + 301
      assert(cerca.webhooks.verify(BODY, sign_at(MSG_ID, later, BODY), SECRET, { now = later, replay = guard }))
      refused("replayed", nil, BODY, sign_at(MSG_ID, later, BODY), SECRET, { now = later, replay = guard })
    end)

    it("refuses a replay up to the last second a delivery passes in, the tolerance's end", function()
      for _, tolerance in ipairs { 300, 2, 0 } do
        local guard = assert(cerca.webhooks.replay_guard())
        local id = "msg_edge_" .. tolerance
        assert(cerca.webhooks.verify(BODY, sign_at(id, TS, BODY), SECRET,
          { now = TS, tolerance = tolerance, replay = guard }))
        local last = { now = TS + tolerance, tolerance = tolerance, replay = guard }
        refused("replayed", nil, BODY, sign_at(id, TS, BODY), SECRET, last)
        refused("replayed", nil, BODY, sign_at(id, TS, BODY), SECRET, last)
        -- A second later the delivery is too old: refused as that.
        refused("timestamp", nil, BODY, sign_at(id, TS, BODY), SECRET,
          { now = TS + tolerance + 1, tolerance = tolerance, replay = guard })
      end
    end)

    it("is bounded: past size ids, the oldest is forgotten first", function()
      local guard = assert(cerca.webhooks.replay_guard { size = 2 })
      local opts = { now = TS, replay = guard }
      for _, id in ipairs { "msg_1", "msg_2", "msg_3" } do
        assert(cerca.webhooks.verify(BODY, sign_at(id, TS, BODY), SECRET, opts))
      end
      refused("replayed", nil, BODY, sign_at("msg_3", TS, BODY), SECRET, opts)
      refused("replayed", nil, BODY, sign_at("msg_2", TS, BODY), SECRET, opts)
      assert(cerca.webhooks.verify(BODY, sign_at("msg_1", TS, BODY), SECRET, opts))
    end)

    it("keeps an id claimed again after its window the longest: the oldest claim is forgotten first", function()
      local guard = assert(cerca.webhooks.replay_guard { size = 2 })
      local first = { now = TS, replay = guard }
      assert(cerca.webhooks.verify(BODY, sign_at("msg_a", TS, BODY), SECRET, first))
      assert(cerca.webhooks.verify(BODY, sign_at("msg_b", TS, BODY), SECRET, first))
      -- msg_a's window is over: a new delivery under its id passes, and is
      -- the newest claim; msg_c then pushes out msg_b, not msg_a.
      local later_ts = TS + 301 -- past the default tolerance, 300 s
      local later = { now = later_ts, replay = guard }
      assert(cerca.webhooks.verify(BODY, sign_at("msg_a", later_ts, BODY), SECRET, later))
      assert(cerca.webhooks.verify(BODY, sign_at("msg_c", later_ts, BODY), SECRET, later))
      refused("replayed", nil, BODY, sign_at("msg_a", later_ts, BODY), SECRET, later)
      refused("replayed", nil, BODY, sign_at("msg_c", later_ts, BODY), SECRET, later)
    end)

    it("does not repeat the secret given as the name of an option", function()
      local err = refused("invalid_request", nil, BODY, headers(), SECRET, { now = TS, [SECRET] = 1 })
      assert.are.equal('opts: unknown key "[redacted]"', err.message)
    end)

    it("prints the secret in no error, whatever argument it was given in, in either form", function()
      local bare = SECRET:sub(7)
      local errs = {}
      local function keep(_, err) errs[#errs + 1] = err end
      -- Arguments swapped: the secret as the options.
      keep(cerca.webhooks.verify(BODY, headers(), { now = TS }, SECRET))
      keep(cerca.webhooks.verify(BODY, headers(), bare, bare))
      -- The secret as an option's value, given bare or whole.
      keep(cerca.webhooks.verify(BODY, headers(), bare, { now = bare }))
      keep(cerca.webhooks.verify(BODY, headers(), SECRET, { now = bare }))
      keep(cerca.webhooks.verify(BODY, headers(), bare, { tolerance = SECRET }))
      keep(cerca.webhooks.verify(BODY, headers(), SECRET, { [bare] = true }))
      -- To replay_guard and sign.
      keep(cerca.webhooks.replay_guard(SECRET))
      keep(cerca.webhooks.replay_guard { size = SECRET })
      keep(cerca.webhooks.replay_guard { [SECRET] = 1 })
      keep(cerca.webhooks.sign(BODY, SECRET, MSG_ID, SECRET))
      assert.are.equal(10, #errs)
      for i, err in ipairs(errs) do
        assert.is_true(cerca.is_error(err), i)
        for _, text in ipairs { err.message, tostring(err), cerca.pretty(err), tostring(err.field) } do
          assert.is_nil(text:find(bare:sub(1, 12), 1, true), i .. ": " .. text)
        end
      end
    end)

    it("refuses what is not a guard, and bad guard options, naming the field", function()
      local err = refused("invalid_request", nil, BODY, headers(), SECRET, { now = TS, replay = {} })
      assert.are.equal("opts.replay", err.field)
      local guard, gerr = cerca.webhooks.replay_guard { size = 0 }
      assert.is_nil(guard)
      assert.are.equal("opts.size", gerr.field)
      guard, gerr = cerca.webhooks.replay_guard { dict = {} }
      assert.is_nil(guard)
      assert.are.equal("opts.dict", gerr.field)
      guard, gerr = cerca.webhooks.replay_guard { sise = 10 }
      assert.is_nil(guard)
      assert.matches('did you mean "size"', gerr.message, 1, true)
    end)

    it("takes a shared dict with add semantics: of two guards on one dict, one accepts an id", function()
      -- A stand-in with ngx.shared's add(key, value, ttl) contract; the
      -- real one runs in the nginx specs.
      local dict = { items = {} }
      function dict.add(self, key, _, ttl)
        -- 0 would be "never expires" to ngx.shared.
        assert.is_true(ttl >= 1)
        if self.items[key] then return false, "exists" end
        self.items[key] = true
        return true
      end
      local a = assert(cerca.webhooks.replay_guard { dict = dict })
      local b = assert(cerca.webhooks.replay_guard { dict = dict })
      assert(cerca.webhooks.verify(BODY, headers(), SECRET, { now = TS, replay = a }))
      refused("replayed", nil, BODY, headers(), SECRET, { now = TS, replay = b })
      -- At the window's last second too (here its only one).
      local edge = { ["webhook-id"] = "msg_edge", ["webhook-timestamp"] = tostring(TS),
        ["webhook-signature"] = assert(cerca.webhooks.sign(BODY, SECRET, "msg_edge", TS)) }
      assert(cerca.webhooks.verify(BODY, edge, SECRET, { now = TS, tolerance = 0, replay = a }))
    end)
  end)

  it("is on clients too", function()
    local client = assert(cerca.new { api_key = "k" })
    assert.are.equal(SIGNATURE, client.webhooks.sign(BODY, SECRET, MSG_ID, TS))
    assert(client.webhooks.verify(BODY, headers(), SECRET, AT))
  end)

  it("never raises, whatever it is given", function()
    local values = { nil, true, 0, "", "x", {}, print, SECRET, BODY, headers(), { now = "x" } }
    for i = 1, #values + 1 do
      for j = 1, #values + 1 do
        for k = 1, #values + 1 do
          local ok = pcall(cerca.webhooks.verify, values[i], values[j], values[k], values[(i + j + k) % 11 + 1])
          assert.is_true(ok)
          ok = pcall(cerca.webhooks.sign, values[i], values[j], values[k], values[(i * j) % 11 + 1])
          assert.is_true(ok)
        end
      end
    end
  end)
end)

describe("the plain Lua receiver (examples/receiver.lua, a CGI script)", function()
  local function run(body, env)
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "wb"))
    f:write(body)
    f:close()
    local vars = {}
    for k, v in pairs(env) do vars[#vars + 1] = k .. "='" .. v:gsub("'", "'\\''") .. "'" end
    local p = io.popen(("env %s CONTENT_LENGTH=%d REQUEST_METHOD=POST LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' "
      .. "LUA_CPATH='./build/%s/?.so;;' %s examples/receiver.lua < %s 2>/dev/null")
      :format(table.concat(vars, " "), #body, helpers.abi, helpers.interpreter, tmp))
    local out = p:read("*a")
    p:close()
    os.remove(tmp)
    return out
  end

  it("answers 204 to a signed delivery and 401 with a reason to a tampered one", function()
    local now = os.time()
    local body = '{"type":"agent.created","data":{"id":"agent_1"}}'
    local env = {
      CERCA_WEBHOOK_SECRET = SECRET,
      HTTP_WEBHOOK_ID = "msg_1",
      HTTP_WEBHOOK_TIMESTAMP = tostring(now),
      HTTP_WEBHOOK_SIGNATURE = cerca.webhooks.sign(body, SECRET, "msg_1", now),
    }
    assert.are.equal("Status: 204 No Content\r\n\r\n", run(body, env))
    local out = run(body:gsub("agent_1", "agent_2"), env)
    assert.are.equal("Status: 401 Unauthorized\r\nContent-Type: text/plain\r\n\r\ninvalid_signature\n", out)
    assert.is_nil(out:find(SECRET, 1, true))
  end)
end)
