-- The C core on its own: the JSON bridge and one HTTP attempt.
local helpers = require "spec.helpers"
local core = require "cerca.core"
local cjson = require "cjson"

describe("cerca.core", function()
  describe("encode", function()
    it("writes the empty-array sentinel as [] at any depth", function()
      assert.are.equal("[]", core.encode(core.empty_array))
      assert.are.equal('{"a":[[],{"b":[]}]}', core.encode { a = { core.empty_array, { b = core.empty_array } } })
      assert.are.equal("{}", core.encode {})
    end)

    it("writes null", function()
      assert.are.equal("[null,1]", core.encode { core.null, 1 })
    end)

    it("returns nil and a message for what JSON cannot hold", function()
      local json, err = core.encode { f = print }
      assert.is_nil(json)
      assert.matches("Cannot serialise function", err)
      json, err = core.encode { 0 / 0 }
      assert.is_nil(json)
      assert.is_string(err)
    end)

    it("is not changed by the caller's cjson settings", function()
      cjson.encode_invalid_numbers(true)
      local json = core.encode { 0 / 0 }
      cjson.encode_invalid_numbers(false)
      assert.is_nil(json)
    end)
  end)

  describe("canonical encoding (cerca.json)", function()
    local json = require "cerca.json"

    it("writes object keys sorted at every depth, lists in order", function()
      assert.are.equal('{"a":[3,1,{"x":null,"y":"z"}],"b":[],"c":{},"d":true}',
        json.encode_canonical { d = true, c = {}, b = core.empty_array, a = { 3, 1, { y = "z", x = core.null } } })
      assert.are.equal('"x"', json.encode_canonical "x")
    end)

    it("returns nil and a message for what JSON cannot hold", function()
      assert.is_nil((json.encode_canonical { f = print }))
      assert.is_nil((json.encode_canonical { [true] = 1 }))
    end)

    it("escapes every byte lua-cjson escapes, at any offset of a string read eight bytes at a time", function()
      local escaped = 0
      for _, fill in ipairs { "a", "\195\169", "\255" } do
        for at = 0, 19 do
          local lead = string.rep(fill, at):sub(1, at)
          for b = 0, 255 do
            local s = lead .. string.char(b) .. lead
            local want = cjson.encode(s)
            assert.are.equal(want, core.encode_canonical(s, json.array_mt), ("byte %d after %d bytes"):format(b, at))
            if #want > #s + 2 then escaped = escaped + 1 end
          end
        end
      end
      -- The controls, '"', '/', '\\' and DEL: 36 bytes, 3 fills x 20 offsets.
      assert.are.equal(36 * 60, escaped)
    end)
  end)

  describe("printable", function()
    it("escapes each control, DEL and byte that is not UTF-8 at any offset, and only those", function()
      local function alone(b, json)
        if b >= 0x20 and b < 0x7f then return string.char(b) end
        return (json and "\\u%04x" or "\\x%02x"):format(b)
      end
      for at = 0, 19 do
        local lead, tail = ("p"):rep(at), ("q"):rep(19 - at)
        for b = 0, 255 do
          local s = lead .. string.char(b) .. tail
          for _, as_json in ipairs { false, true } do
            assert.are.equal(lead .. alone(b, as_json) .. tail, core.printable(s, as_json),
              ("byte %d after %d bytes"):format(b, at))
          end
        end
        -- UTF-8 across a word's edge: kept, or escaped when a terminal acts on it.
        assert.are.equal(lead .. "\195\169" .. tail, core.printable(lead .. "\195\169" .. tail))
        assert.are.equal(lead .. "\\u{009b}" .. tail, core.printable(lead .. "\194\155" .. tail))
        assert.are.equal(lead .. "\\u{202e}" .. tail, core.printable(lead .. "\226\128\174" .. tail))
      end
      local plain = ("x"):rep(64)
      assert.are.equal(plain, core.printable(plain))
    end)
  end)

  describe("decode", function()
    it("decodes JSON", function()
      assert.are.same({ a = { 1, 2 }, b = "x" }, core.decode '{"a":[1,2],"b":"x"}')
    end)

    it("returns nil and a message for what is not JSON", function()
      for _, text in ipairs { "", "{", "[1,]", '{"a":NaN}', "Infinity", "0x10", "<html>" } do
        local value, err = core.decode(text)
        assert.is_nil(value, text)
        assert.is_string(err, text)
      end
    end)

    it("keeps the last value of a key given twice, and reads large objects and arrays whole", function()
      assert.are.same({ a = 2, b = { 1 } }, core.decode '{"a":1,"b":[1],"a":2}')
      local members, items = {}, {}
      for i = 1, 100 do
        members[i] = ('"k%d":%d'):format(i, i)
        items[i] = tostring(i)
      end
      local obj = core.decode("{" .. table.concat(members, ",") .. ',"k1":"last"}')
      local list = core.decode("[" .. table.concat(items, ",") .. "]")
      assert.are.equal("last", obj.k1)
      assert.are.equal(100, obj.k100)
      assert.are.equal(100, #list)
      for i = 1, 100 do assert.are.equal(i, list[i]) end
    end)

    it("ends, unescapes or refuses a string at its first quote, backslash or control byte, at any offset", function()
      -- Strings are scanned eight bytes at a time: each such byte at each
      -- offset of a word, after ASCII and after bytes >= 0x80.
      local ref, accepted = require("cjson.safe").new(), 0
      for _, fill in ipairs { "a", "\195\169", "\255" } do
        for at = 0, 19 do
          local lead = string.rep(fill, at):sub(1, at)
          -- "": the closing quote itself.
          for _, stop in ipairs { "", '\\n', '\\"', '\\/', "\1", "\31", "\t" } do
            local text = '{"k":"' .. lead .. stop .. '","z":"y"}'
            if helpers.decodes_as(ref.decode, core.decode, text) then accepted = accepted + 1 end
          end
        end
      end
      -- lua-cjson reads every one of them (a raw control byte too: the fast
      -- path leaves those to it): 3 fills x 20 offsets x 7 stops.
      assert.are.equal(420, accepted)
    end)

    it("reads the API's own keys (made once per state) as any other key, and keys that only look like them", function()
      -- The answer keys the decoder pushes from its table of names, and
      -- their near misses: one byte more, less or changed, another case,
      -- escaped, the empty key.
      local ref, seen = require("cjson.safe").new(), 0
      local known = { "url", "error", "id", "fleetId", "events", "enabled", "createdAt", "updatedAt", "secret",
        "message", "type", "param", "code", "data" }
      for _, k in ipairs(known) do
        for _, variant in ipairs { k, k .. "s", k:sub(1, -2), k:sub(2), k:upper(), "x" .. k:sub(2),
          k:sub(1, -2) .. "\\u00" .. ("%02x"):format(k:byte(-1)), "" } do
          local text = ('{"%s":"v","%s":{"%s":[1,"w"]},"z":1}'):format(variant, k, variant)
          assert(helpers.decodes_as(ref.decode, core.decode, text), text)
          seen = seen + 1
        end
        -- The key as a string value stays a value, and a table of names does
        -- not leak into what decode returns.
        local value = core.decode(('{"%s":"%s"}'):format(k, k))
        assert.are.same({ [k] = k }, value)
      end
      assert.are.equal(#known * 8, seen)
    end)

    it("takes no more memory than lua-cjson for many small objects (a server's body chooses their number)", function()
      local parts = {}
      for i = 1, 20000 do parts[i] = '{"":0}' end
      local text = "[" .. table.concat(parts, ",") .. "]"
      local function allocated(decode)
        collectgarbage()
        collectgarbage()
        collectgarbage("stop")
        local before = collectgarbage("count")
        local value = decode(text)
        local kib = collectgarbage("count") - before
        assert.are.equal(20000, #value)
        collectgarbage("restart")
        return kib
      end
      local ours, theirs = allocated(core.decode), allocated(require("cjson.safe").new().decode)
      assert(ours <= theirs * 1.1, ("%.0f KiB against lua-cjson's %.0f KiB"):format(ours, theirs))
    end)

    it("refuses hostile nesting", function()
      local value, err = core.decode(string.rep("[", 5000) .. string.rep("]", 5000))
      assert.is_nil(value)
      assert.matches("too many nested data structures (129)", err, 1, true)
    end)
  end)

  describe("decode_response", function()
    -- What nginx's worker threads hand back undecoded, decoded as a session
    -- would have: the same rule, in one C function.
    it("decodes the body of an answer into json, or says why not in json_error", function()
      local res = { status = 201, headers = {}, body = '{"id":"wh_1","events":[]}' }
      assert.are.equal(res, core.decode_response(res))
      assert.are.same({ id = "wh_1", events = {} }, res.json)
      assert.is_nil(res.json_error)
      res = core.decode_response { status = 502, headers = {}, body = "<html>" }
      assert.is_nil(res.json)
      assert.is_string(res.json_error)
    end)

    it("leaves an answer that failed, or has no body, as it is", function()
      local res = core.decode_response { status = 200, headers = {}, body = '{"a":1}', error = "connection" }
      assert.is_nil(res.json)
      assert.is_nil(res.json_error)
      res = core.decode_response { status = 204, headers = {}, body = "" }
      assert.is_nil(res.json)
      assert.is_nil(res.json_error)
    end)

    it("decodes as the session does: cerca.null for null, and a session's answer is the same", function()
      local srv = helpers.start_server { tls = false }
      local s = core.new_session()
      local req = { method = "POST", url = srv.http_url .. "/fleets/f/webhooks",
        headers = { "Authorization: Bearer " .. srv.api_key, "Content-Type: application/json" },
        body = '{"url":"https://example.com/h"}', timeout_ms = 5000, connect_timeout_ms = 5000, max_body = 65536 }
      local decoded = s:request(req)
      req.decode = false
      req.headers[#req.headers + 1] = "Idempotency-Key: k-decode-response"
      local raw = s:request(req)
      s:close()
      srv:stop()
      assert.is_nil(raw.json)
      core.decode_response(raw)
      assert.are.same(decoded.json.events, raw.json.events)
      assert.are.equal(core.null, core.decode_response({ status = 200, headers = {}, body = '{"a":null}' }).json.a)
    end)
  end)

  describe("uuid4", function()
    it("makes random version 4 UUIDs", function()
      local seen = {}
      for _ = 1, 1000 do
        local id = core.uuid4()
        assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", id)
        assert.is_nil(seen[id])
        seen[id] = true
      end
    end)
  end)

  describe("same_value", function()
    local function same(a, b, depth, left) return core.same_value(a, b, depth or 8, left or 100) end

    it("holds for the same content in other tables, and both ways", function()
      local a = { url = "https://example.com/h", events = { "agent.created", "thread.completed" }, n = 3 }
      local b = { n = 3, events = { "agent.created", "thread.completed" }, url = "https://example.com/h" }
      assert.is_true(same(a, b))
      assert.is_true(same(b, a))
      assert.is_true(same({}, {}))
      assert.is_true(same("x", "x"))
      assert.is_true(same(nil, nil))
      assert.is_true(same(core.empty_array, core.empty_array))
      local t = {}
      assert.is_true(same(t, t, 0, 0))
    end)

    it("tells apart any key or value that differs, on either side", function()
      local function base() return { url = "u", events = { "a", "b" } } end
      local changes = {
        function(t) t.url = "v" end,
        function(t) t.url = nil end,
        function(t) t.extra = 1 end,
        function(t) t.events[2] = nil end,
        function(t) t.events[3] = "c" end,
        function(t) t.events = { "b", "a" } end,
        function(t) t.events.x = true end,
        function(t) t.events = "a" end,
        function(t) t.events = core.empty_array end,
        function(t) t[1] = "u" end,
      }
      for i, change in ipairs(changes) do
        local changed = base()
        change(changed)
        assert.is_false(same(base(), changed), "change " .. i)
        assert.is_false(same(changed, base()), "change " .. i .. ", the other way")
      end
    end)

    it("compares numbers as JSON writes them: subtype, sign of zero, NaN", function()
      assert.is_true(same(1.5, 1.5))
      -- (Made at run time: a literal -0.0 can share 0.0's constant.)
      local negative_zero = -(1 / math.huge)
      assert.are.equal(-math.huge, 1 / negative_zero)
      assert.is_false(same(0.0, negative_zero))
      assert.is_false(same(0 / 0, 0 / 0))
      assert.is_false(same(1, "1"))
      assert.is_false(same(true, 1))
      if math.type then
        -- 1 and 1.0 are equal to `==`, and written "1" and "1.0".
        assert.is_false(same(1, 1.0))
        assert.is_false(same({ n = 1 }, { n = 1.0 }))
        assert.is_true(same({ n = math.maxinteger }, { n = math.maxinteger }))
      end
    end)

    it("takes a table with a metatable for the same only beside the same metatable", function()
      local mt = { __index = function() return "x" end }
      local marked = setmetatable({}, mt)
      assert.is_false(same(marked, {}))
      assert.is_false(same({}, marked))
      assert.is_true(same(marked, setmetatable({}, mt)))
      assert.is_false(same(marked, setmetatable({}, {})))
      -- The real metatable, whatever __metatable says.
      local hidden = setmetatable({}, { __metatable = false })
      assert.is_false(same(hidden, {}))
      -- No metamethod runs: __index and __pairs are not asked.
      local asked = false
      local proxy = setmetatable({}, { __index = function() asked = true return "u" end,
        __pairs = function() asked = true return next, {}, nil end })
      assert.is_false(same(proxy, { url = "u" }))
      assert.is_false(asked)
    end)

    it("gives up, unequal, past its depth or its count of entries", function()
      local deep, deeper = { a = { b = { c = 1 } } }, { a = { b = { c = 1 } } }
      assert.is_true(same(deep, deeper, 3))
      assert.is_false(same(deep, deeper, 2))
      local list, copy = {}, {}
      for i = 1, 10 do list[i], copy[i] = i, i end
      assert.is_true(same(list, copy, 2, 10))
      assert.is_false(same(list, copy, 2, 9))
      -- A table inside itself ends at the depth, not on the C stack.
      local loop, loop2 = {}, {}
      loop.self, loop2.self = loop, loop2
      assert.is_false(same(loop, loop2, 200, 1000))
    end)

    it("compares table keys by identity", function()
      local k = {}
      assert.is_true(same({ [k] = 1 }, { [k] = 1 }))
      assert.is_false(same({ [k] = 1 }, { [{}] = 1 }))
    end)
  end)

  describe("monotime and sleep", function()
    it("sleep waits, and the monotonic clock measures it", function()
      local t0 = core.monotime()
      core.sleep(0.05)
      local elapsed = core.monotime() - t0
      assert.is_true(elapsed >= 0.05 and elapsed < 0.5, "slept " .. elapsed)
      t0 = core.monotime()
      core.sleep(0)
      core.sleep(-1)
      assert.is_true(core.monotime() - t0 < 0.05)
    end)
  end)

  describe("session", function()
    local srv

    setup(function() srv = helpers.start_server { tls = false } end)
    teardown(function() if srv then srv:stop() end end)
    before_each(function() srv:reset() end)

    local function post(s, extra)
      local req = {
        method = "POST", url = srv.http_url .. "/fleets/f/webhooks",
        headers = { "Authorization: Bearer " .. srv.api_key, "Content-Type: application/json" },
        body = '{"url":"https://example.com/h"}', timeout_ms = 5000, connect_timeout_ms = 2000,
        max_body = 65536,
      }
      for k, v in pairs(extra or {}) do req[k] = v end
      return s:request(req)
    end

    it("does one attempt and reports status, headers, body and JSON", function()
      local s = assert(core.new_session { user_agent = "spec/1" })
      local res = post(s)
      assert.are.equal(201, res.status)
      assert.is_nil(res.error)
      -- The header block as received; its table is made only when asked.
      assert.is_nil(res.headers)
      assert.matches("^HTTP/1.1 201", res.raw_headers)
      local headers = core.headers(res.raw_headers)
      assert.are.equal("application/json", headers["content-type"])
      assert.matches("^req_", headers["x-request-id"])
      assert.are.equal(headers["x-request-id"], core.header(res.raw_headers, "x-request-id"))
      assert.are.same(cjson.decode(res.body).id, res.json.id)
      assert.is_number(res.time)
      assert.are.equal(1, res.new_connects)
      assert.are.equal(0, post(s).new_connects)
      assert.are.equal("spec/1", srv:requests()[1].headers["user-agent"])
      s:close()
    end)

    it("sends its User-Agent once, as a line of its own, unless the request names its own", function()
      local s = assert(core.new_session { user_agent = "spec/2" })
      -- The same session, the URL changed and changed back: the parsed
      -- URL libcurl is given follows it.
      assert.are.equal(201, post(s).status)
      assert.are.equal(201, post(s, { headers = { "Authorization: Bearer " .. srv.api_key,
        "Content-Type: application/json", "User-Agent: mine/3" } }).status)
      assert.are.equal(201, post(s, { headers = { "Authorization: Bearer " .. srv.api_key,
        "Content-Type: application/json", "user-agent: lower/4" } }).status)
      assert.are.equal(201, post(s).status)
      local reqs = srv:requests()
      assert.are.same({ "spec/2", "mine/3", "lower/4", "spec/2" }, { reqs[1].headers["user-agent"],
        reqs[2].headers["user-agent"], reqs[3].headers["user-agent"], reqs[4].headers["user-agent"] })
      s:close()
      -- It becomes a header line: one that would start another is refused.
      for _, ua in ipairs { "a\r\nX-Evil: 1", "a\nb", "a\0b" } do
        local ok, why = pcall(core.new_session, { user_agent = ua })
        assert.is_false(ok)
        assert.matches("user_agent", why)
      end
    end)

    it("follows a URL that changes from one attempt to the next on the same session", function()
      local s = assert(core.new_session())
      local base = srv.http_url .. "/fleets/"
      for i, fleet in ipairs { "fleet_a", "fleet_b", "fleet_a", "fleet_c" } do
        local res = post(s, { url = base .. fleet .. "/webhooks" })
        assert.are.equal(201, res.status)
        assert.are.equal("/fleets/" .. fleet .. "/webhooks", srv:requests()[i].uri)
      end
      -- A URL libcurl cannot parse fails that attempt only, as not sent.
      local bad = post(s, { url = "http://[::1" })
      assert.are.equal("url", bad.error)
      assert.is_false(bad.request_sent)
      assert.are.equal(201, post(s, { url = base .. "fleet_d/webhooks" }).status)
      assert.are.equal("/fleets/fleet_d/webhooks", srv:requests()[5].uri)
      s:close()
    end)

    it("sends each URL where it points, whether only its path changed from the URL before or more did", function()
      -- A plain path under the same scheme and authority reuses the parse
      -- before it; a query, a fragment, "." segments, "%" escapes or
      -- another authority are parsed whole, as libcurl reads them alone.
      local s = assert(core.new_session())
      local P = srv.http_url
      local port = P:match(":(%d+)$")
      local sent = {
        { "/fleets/a/webhooks", "/fleets/a/webhooks" },
        { "/fleets/b/webhooks", "/fleets/b/webhooks" },
        { "/fleets/c/webhooks?x=1", "/fleets/c/webhooks?x=1" },
        { "/fleets/d/webhooks", "/fleets/d/webhooks" },
        { "/fleets/e/webhooks#frag", "/fleets/e/webhooks" },
        { "/fleets/f/webhooks", "/fleets/f/webhooks" },
        { "/fleets/G%2Fh/webhooks", "/fleets/G%2Fh/webhooks" },
        { "/fleets/i/webhooks", "/fleets/i/webhooks" },
        { "/fleets/j/x/../webhooks", "/fleets/j/webhooks" },
        { "/fleets/k/./webhooks", "/fleets/k/webhooks" },
        { "/fleets/l.m/webhooks", "/fleets/l.m/webhooks" },
        { "/fleets/n/webhooks/", "/fleets/n/webhooks/" },
      }
      for i, case in ipairs(sent) do
        local res = post(s, { url = P .. case[1] })
        assert.is_nil(res.error, case[1])
        assert.are.equal(case[2], srv:requests()[i].uri, case[1])
      end
      -- Another authority, even one the URL before starts with, is not
      -- that URL's: the port less its last digit is another (closed) port.
      for _, other in ipairs { "http://127.0.0.1:" .. port:sub(1, -2), "http://127.0.0.1:" .. port .. "0",
        "http://127.0.0.2:" .. port } do
        local before = #srv:requests()
        post(s, { url = other .. "/fleets/o/webhooks", connect_timeout_ms = 500 })
        assert.are.equal(before, #srv:requests(), other)
        assert.are.equal(201, post(s, { url = P .. "/fleets/p/webhooks" }).status)
        assert.are.equal(before + 1, #srv:requests(), other)
      end
      s:close()
    end)

    it("refuses, unsent, a URL that only a URL before it would complete (path, query, host without scheme)", function()
      local s = assert(core.new_session())
      assert.are.equal(201, post(s).status)
      for _, url in ipairs { "/fleets/f/webhooks", "?q=1", "//127.0.0.1:1/x" } do
        local res = post(s, { url = url })
        assert.are.equal("url", res.error, url)
        assert.is_false(res.request_sent)
      end
      -- Longer than libcurl parses (8,000,000 bytes) with a path that is
      -- not, under the authority of the URL before: refused as libcurl
      -- refuses the whole URL.
      assert.are.equal(201, post(s, { url = srv.http_url .. "/fleets/h/webhooks" }).status)
      local long = post(s, { url = srv.http_url .. "/" .. ("a"):rep(7999990) })
      assert.are.equal("url", long.error)
      assert.matches("^URL rejected", long.error_message)
      assert.is_false(long.request_sent)
      -- A host without a scheme is read as http://, on its own: not as a
      -- path under the URL before.
      local hostport = srv.http_url:match("^http://(.*)$")
      assert.are.equal(201, post(s, { url = hostport .. "/fleets/g/webhooks" }).status)
      local reqs = srv:requests()
      assert.are.equal(3, #reqs)
      assert.are.equal("/fleets/g/webhooks", reqs[3].uri)
      s:close()
    end)

    it("gives a proxy's CONNECT the User-Agent, which the request's header lines do not reach", function()
      -- A proxy of one connection: it keeps the CONNECT's head and refuses it.
      local port, seen, script = helpers.closed_port(), os.tmpname(), os.tmpname()
      local f = assert(io.open(script, "w"))
      f:write([[
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); head = b""
while b"\r\n\r\n" not in head:
    d = c.recv(4096)
    if not d: break
    head += d
open(sys.argv[2], "wb").write(head)
c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"); c.close()
]])
      f:close()
      local proxy = io.popen(("exec python3 %s %d %s"):format(script, port, seen))
      assert.are.equal("ready", proxy:read("*l"))
      local out = helpers.run_lua(([[
        local s = assert(require("cerca.core").new_session { user_agent = "spec-proxy/1" })
        local res = s:request { method = "GET", url = "https://proxied.invalid/x", headers = { "X-A: 1" },
          timeout_ms = 5000 }
        io.write(tostring(res.status), " ", tostring(res.error))
      ]]), { https_proxy = "http://127.0.0.1:" .. port, no_proxy = "", NO_PROXY = "" })
      proxy:close()
      f = assert(io.open(seen, "rb"))
      local head = f:read("*a")
      f:close()
      os.remove(seen)
      os.remove(script)
      assert.matches("^CONNECT proxied.invalid:443 HTTP/1.1\r\n", head)
      assert.matches("\r\nUser%-Agent: spec%-proxy/1\r\n", head)
      assert.is_nil(head:find("X-A", 1, true), head)
      assert.matches("connection", out)
    end)

    it("reports JSON it cannot decode", function()
      srv:enqueue { status = 200, body = "not json" }
      local res = post(core.new_session())
      assert.are.equal(200, res.status)
      assert.is_nil(res.json)
      assert.is_string(res.json_error)
      assert.are.equal("not json", res.body)
    end)

    it("joins repeated headers and lower-cases names", function()
      srv:enqueue { status = 200, body = "{}", headers = { ["X-Multi"] = { "a", "b" }, ["X-Case"] = "V" } }
      local raw = post(core.new_session()).raw_headers
      local headers = core.headers(raw)
      assert.are.equal("a, b", headers["x-multi"])
      assert.are.equal("V", headers["x-case"])
      -- One field looked up in the block follows the same rules.
      assert.are.equal("a, b", core.header(raw, "x-multi"))
      assert.are.equal("V", core.header(raw, "x-case"))
      assert.is_nil(core.header(raw, "x-absent"))
      assert.is_nil(core.header(raw, "X-Case"))  -- names are asked for in lower case
    end)

    it("lower-cases a name of any length", function()
      local long = string.rep("X-Long", 20)
      srv:enqueue { status = 200, body = "{}", headers = { [long] = "v" } }
      assert.are.equal("v", core.headers(post(core.new_session()).raw_headers)[long:lower()])
    end)

    it("reads a header block into the same fields, whether as a table or one by one", function()
      local raw = "HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\nX-B:\t spaced \t\r\n folded\r\n"
        .. "bad line\r\nX-\195\137: utf8\r\n: empty\r\n\r\n"
      local headers = core.headers(raw)
      -- Not HTTP tokens: no field, in either form.
      assert.are.same({ ["x-a"] = "1, 2", ["x-b"] = "spaced" }, headers)
      for name, value in pairs(headers) do assert.are.equal(value, core.header(raw, name)) end
      assert.is_nil(core.header(raw, "x-\195\137"))
      assert.is_nil(core.header(raw, ""))
      assert.are.same({}, core.headers(""))
      assert.is_nil(core.header("", "x-a"))
      assert.has_error(function() core.header(raw, ("x"):rep(65)) end)
    end)

    it("sends idempotency_key as its own header, and any number of header lines", function()
      local s = core.new_session()
      local lines = { "Authorization: Bearer " .. srv.api_key, "Content-Type: application/json" }
      for i = 1, 30 do lines[#lines + 1] = ("X-Extra-%d: %d"):format(i, i) end
      assert.are.equal(201, post(s, { headers = lines, idempotency_key = "key-1" }).status)
      local seen = srv:requests()[1].headers
      assert.are.equal("key-1", seen["idempotency-key"])
      for i = 1, 30 do assert.are.equal(tostring(i), seen["x-extra-" .. i]) end
      -- One header line, or nothing is sent.
      for _, bad in ipairs { "", "a b", "a\r\nX-Injected: 1", string.rep("k", 256), "caf\195\169" } do
        assert.has_error(function() post(s, { idempotency_key = bad }) end)
      end
      assert.are.equal(1, #srv:requests())
      s:close()
    end)

    it("sends each attempt's own lines, key and URL, whatever the attempt before it sent", function()
      -- The session keeps its header list and URL from one attempt to the
      -- next when they are the same: each change must still reach the wire.
      local s = core.new_session()
      local auth, json = "Authorization: Bearer " .. srv.api_key, "Content-Type: application/json"
      local steps = {
        { lines = { auth, json }, key = "key-1", path = "/fleets/a/webhooks" },
        { lines = { auth, json }, key = "key-2", path = "/fleets/a/webhooks" },
        { lines = { auth, json, "X-One: 1", "X-Two: 2" }, key = "key-3", path = "/fleets/b/webhooks",
          want = { ["x-one"] = "1", ["x-two"] = "2" } },
        -- as many lines as the one before, other text
        { lines = { auth, json, "X-One: one", "X-Three: 3" }, path = "/fleets/b/webhooks",
          want = { ["x-one"] = "one", ["x-three"] = "3" } },
        { lines = { auth, json .. "; charset=utf-8" }, key = "key-5", path = "/fleets/a/webhooks",
          want = { ["content-type"] = "application/json; charset=utf-8" } },
        { lines = { auth, json }, key = "key-6", path = "/fleets/c/webhooks" },
      }
      for _, step in ipairs(steps) do
        assert.are.equal(201, post(s, { headers = step.lines, idempotency_key = step.key,
          url = srv.http_url .. step.path }).status)
      end
      local seen = srv:requests()
      assert.are.equal(#steps, #seen)
      for i, step in ipairs(steps) do
        local h, want = seen[i].headers, step.want or {}
        assert.are.equal(step.path, seen[i].uri)
        assert.are.equal(step.key, h["idempotency-key"])
        for _, name in ipairs { "x-one", "x-two", "x-three" } do assert.are.equal(want[name], h[name]) end
        assert.are.equal(want["content-type"] or "application/json", h["content-type"])
        assert.are.equal("Bearer " .. srv.api_key, h.authorization)
        assert.is_nil(h.expect)
      end
      s:close()
    end)

    it("sends the URL again after an attempt whose URL libcurl refused", function()
      -- libcurl drops the URL it had when it refuses a new one (this one is
      -- over its 8 MB bound): the next attempt must set its URL again.
      local s = core.new_session()
      assert.are.equal(201, post(s).status)
      local refused = post(s, { url = srv.http_url .. "/fleets/f/webhooks?" .. string.rep("a", 9 * 1024 * 1024) })
      assert.are.equal(0, refused.status)
      assert.is_not_nil(refused.error)
      assert.are.equal(201, post(s).status)
      assert.are.equal(2, #srv:requests())
      s:close()
    end)

    it("sends each attempt's own method: a GET after a PUT on one session is a GET", function()
      local s = core.new_session()
      for _, method in ipairs { "PUT", "GET", "DELETE", "POST", "GET" } do
        local res = post(s, { method = method, body = method ~= "GET" and "{}" or nil })
        assert.is_nil(res.error, res.error_message)
      end
      local seen = {}
      for i, rq in ipairs(srv:requests()) do seen[i] = rq.method end
      assert.are.same({ "PUT", "GET", "DELETE", "POST", "GET" }, seen)
      s:close()
    end)

    it("caps the body", function()
      srv:enqueue { status = 200, body = string.rep("x", 100) }
      local res = post(core.new_session(), { max_body = 10 })
      assert.are.equal("too_large", res.error)
      assert.are.equal(200, res.status)
      assert.is_true(#res.body <= 10)
    end)

    it("clamps huge limits and refuses non-positive ones", function()
      local s = core.new_session()
      assert.are.equal(201, post(s, { timeout_ms = 1e300, connect_timeout_ms = math.huge }).status)
      assert.has_error(function() post(s, { max_body = -1 }) end, "field 'max_body' must be at least 1")
      assert.has_error(function() post(s, { timeout_ms = 0 / 0 }) end, "field 'timeout_ms' must be at least 1")
    end)

    it("takes strings only where it keeps pointers to them", function()
      local s = core.new_session()
      assert.has_error(function() post(s, { url = 42 }) end, "field 'url' must be a string")
      assert.has_error(function() post(s, { headers = { 7 } }) end, "headers[1] must be a string")
    end)

    it("sends no header line that holds CR, LF or NUL, on a session or a multi handle", function()
      local s = core.new_session()
      local m = assert(core.new_multi())
      srv:reset()
      for _, bad in ipairs { "X-A: 1\r\nX-Injected: 2", "X-A: 1\nX-Injected: 2", "X-A: 1\rX", "X-A: 1\0X-B: 2" } do
        local lines = { "Authorization: Bearer " .. srv.api_key, bad }
        assert.has_error(function() post(s, { headers = lines }) end, "headers[2] must not hold CR, LF or NUL")
        assert.has_error(function() m:add(1, { method = "POST", url = srv.http_url .. "/fleets/f/webhooks", body = "{}",
          headers = lines }) end, "headers[2] must not hold CR, LF or NUL")
      end
      assert.are.equal(0, #srv:requests())
      -- The session and the handle stay usable.
      assert.are.equal(201, post(s).status)
      m:close()
      s:close()
    end)

    it("refuses a multi token already in flight", function()
      local m = assert(core.new_multi())
      local req = { method = "POST", url = srv.http_url .. "/fleets/f/webhooks", body = "{}",
        headers = { "Authorization: Bearer " .. srv.api_key } }
      assert(m:add(1, req))
      assert.has_error(function() m:add(1, req) end, "token 1 is already in flight")
      local done = {}
      for _ = 1, 100 do
        for _, f in ipairs((m:poll(100))) do done[#done + 1] = f end
        if #done > 0 then break end
      end
      assert.are.equal(1, #done)
      assert.are.equal(1, done[1].token)
      m:close()
      m:close()
    end)

    -- A caller's finalizer may run inside a request while its answer is
    -- made into Lua values from the handle's buffers, and reach the handle.
    -- Each case runs in a fresh interpreter (the hook and the collector's
    -- settings of helpers.finalizer_inside stay out of the suite's), the
    -- finalizer at the 1st, 2nd, ... 24th allocation inside the call in
    -- turn, each twice. The child prints what it saw as JSON.
    local CHILD_HEAD = [[
      local helpers = require "spec.helpers"
      local core = require "cerca.core"
      local cjson = require "cjson"
      local req = { method = "POST", url = os.getenv("URL"), body = '{"url":"https://example.com/h"}',
        headers = { "Authorization: Bearer " .. os.getenv("KEY"), "Content-Type: application/json" },
        timeout_ms = 5000, connect_timeout_ms = 2000, max_body = 65536 }
      local function whole(res)
        if not (res.status == 201 and res.json and res.json.fleetId == "f" and res.json.secret) then
          error(("an answer lost its body: %s %s"):format(tostring(res.status), tostring(res.error_message)), 0)
        end
      end
      -- Prints what the child saw, with the count of `stop` and the error
      -- that ended its loop, if any.
      local function report(seen, stop, ok, why)
        seen.firings = stop()
        seen.error = not ok and tostring(why) or nil
        io.write("RESULT ", cjson.encode(seen), "\n")
      end
    ]]

    local function run_child(body)
      local out, status = helpers.run_lua(CHILD_HEAD .. body, { URL = srv.http_url .. "/fleets/f/webhooks",
        KEY = srv.api_key })
      assert.are.equal(0, status, out)
      return cjson.decode((assert(out:match("RESULT ([^\n]*)"), out)))
    end

    it("refuses a request on a session whose request is under way, and closes it once that is over", function()
      local seen = run_child [[
        local seen = { answers = 0, sent = 0, refused = 0, closed = 0, odd = {} }
        local current, closed_inside = nil, false
        -- (The spec's own checks call the C function itself.)
        local raw_request = core.new_session().request
        -- A nested request: refused while the session's request is under
        -- way, or, once closed inside it, refused as closed; sent when the
        -- finalizer ran as the call was entered, before it was under way
        -- (Lua 5.2 checks the collector there).
        local function nested()
          local ok, why = pcall(function() whole(current:request(req)) end)
          if ok then
            seen.sent = seen.sent + 1
          elseif tostring(why):find("under way", 1, true) or tostring(why):find("closed session", 1, true) then
            seen.refused = seen.refused + 1
            if not closed_inside then
              current:close()
              closed_inside = true
            end
          else
            seen.odd[#seen.odd + 1] = tostring(why)
          end
        end
        local _, stop = helpers.finalizer_inside(helpers.methods(core.new_session()), "request", nested, 24)
        local ok, why = pcall(function()
          for _ = 1, 48 do
            closed_inside = false
            current = assert(core.new_session())
            whole(current:request(req))
            seen.answers = seen.answers + 1
            if closed_inside then
              if pcall(raw_request, current, req) then
                error("a session closed during its request was used after it", 0)
              end
              seen.closed = seen.closed + 1
            end
            current:close()
          end
        end)
        report(seen, stop, ok, why)
      ]]
      assert.is_nil(seen.error)
      assert.are.same({}, seen.odd)
      -- Every answer whole; a nested request refused while another was
      -- under way, and each session closed inside its request closed once
      -- that was over.
      assert.are.equal(48, seen.answers)
      assert.is_true(seen.refused > 0, "no finalizer ran while a request was under way")
      assert.are.equal(seen.firings, seen.sent + seen.refused)
      assert.are.equal(seen.refused, seen.closed)
    end)

    it("refuses a call on a multi handle whose poll is under way, and closes it once that is over", function()
      local seen = run_child [[
        local seen = { answers = 0, closed = 0, with_answers = 0, before = 0, nested = {} }
        local current, closed_inside, nested_now = nil, false, nil
        local raw_poll = core.new_multi().poll
        local _, stop = helpers.finalizer_inside(helpers.methods(core.new_multi()), "poll", function()
          local ok, why = pcall(current.poll, current, 0)
          nested_now = ok and "polled" or tostring(why)
          seen.nested[#seen.nested + 1] = nested_now
          ok, why = pcall(current.add, current, 99, req)
          seen.nested[#seen.nested + 1] = ok and "added" or tostring(why)
          current:close()
          closed_inside = true
        end, 24)
        local ok, why = pcall(function()
          for _ = 1, 48 do
            current, closed_inside = assert(core.new_multi()), false
            for token = 1, 3 do assert(current:add(token, req)) end
            local got = 0
            while got < 3 and not closed_inside do
              nested_now = nil
              local polled, list = pcall(current.poll, current, 100)
              if not polled then
                -- Closed as the call was entered, before it was under way
                -- (Lua 5.2): the call then finds the handle closed.
                assert(nested_now == "polled" and tostring(list):find("closed multi", 1, true), tostring(list))
                seen.before = seen.before + 1
                list = {}
              end
              for _, f in ipairs(list) do
                local res = f.response
                assert(res.status == 201 and res.json.fleetId == "f" and res.json.secret, "an answer lost its body")
                got, seen.answers = got + 1, seen.answers + 1
              end
              if closed_inside and #list > 0 then seen.with_answers = seen.with_answers + 1 end
            end
            if closed_inside then
              assert(not pcall(raw_poll, current, 0), "a handle closed during its poll was used after it")
              seen.closed = seen.closed + 1
            end
            current:close()
          end
        end)
        report(seen, stop, ok, why)
      ]]
      assert.is_nil(seen.error)
      assert.is_true(seen.answers > 0)
      -- One firing a round at most, each closing its handle; some while a
      -- poll made its answers into Lua values.
      assert.are.equal(seen.firings, seen.closed)
      assert.is_true(seen.with_answers > 0, "no finalizer ran while a poll read its answers")
      assert.are.equal(2 * seen.firings, #seen.nested)
      local polled = 0
      for _, n in ipairs(seen.nested) do
        if n == "polled" or n == "added" then
          polled = polled + 1
        else
          assert.is_truthy(n:find("under way", 1, true) or n:find("closed multi", 1, true), n)
        end
      end
      -- (Calls were taken only by a handle not yet under way.)
      assert.are.equal(2 * seen.before, polled)
    end)

    -- The C core reads a request's strings (and new_session's options) by
    -- pointer; a finalizer that an allocation of the call runs may drop
    -- the table's reference to one and collect it. Each is held until the
    -- call returns: what is sent is what was read, or, read after the
    -- finalizer, what it put there; never freed memory.
    it("sends the URL and user agent it read, though a finalizer drops them from their tables", function()
      local seen = run_child [[
        local url, key = os.getenv("URL"), os.getenv("KEY")
        -- (Made at run time: a string in the chunk's code would be held by it.)
        local function fresh(text) return (text .. "#"):sub(1, -2) end
        local junk = {}
        local function collect_over(size)
          collectgarbage()
          collectgarbage()
          -- Strings of the same size, to take the freed memory.
          for i = 1, 20 do junk[#junk + 1] = ("Z"):rep(size - 3) .. ("%03d"):format(i) end
        end
        local results, agents = {}, {}
        -- A request of 20 header lines: the core allocates for their list
        -- after reading the URL.
        local req
        local function request_table()
          local headers = { "Authorization: Bearer " .. key, "Content-Type: application/json" }
          for i = 1, 18 do headers[#headers + 1] = fresh("X-Pad-" .. i .. ": p") end
          return { method = fresh("POST"), url = fresh(url), body = '{"url":"https://example.com/h"}',
            headers = headers, idempotency_key = fresh("key-" .. ("k"):rep(30)) }
        end
        local raw_request = core.new_session().request
        local _, stop = helpers.finalizer_inside(helpers.methods(core.new_session()), "request", function()
          local size = #req.url
          req.url = fresh("http://127.0.0.1:1/refused")
          req.method, req.idempotency_key = fresh("POST"), fresh("key-" .. ("j"):rep(30))
          collect_over(size)
        end, 3)
        local session = assert(core.new_session())
        for i = 1, 6 do
          req = request_table()
          local res = session:request(req)
          results[i] = { status = res.status, error = res.error, message = res.error_message }
        end
        local fired_requests = stop()
        -- The options of new_session: its user agent, dropped and replaced.
        local opts
        local _, stop_new = helpers.finalizer_inside(core, "new_session", function()
          local size = #opts.user_agent
          opts.user_agent = fresh("replaced/1")
          collect_over(size)
        end, 3)
        for i = 1, 6 do
          opts = { user_agent = fresh("agent/" .. ("a"):rep(20) .. i) }
          local s = assert(core.new_session(opts))
          agents[i] = { expected = "agent/" .. ("a"):rep(20) .. i }
          local res = raw_request(s, request_table())
          agents[i].status = res.status
          s:close()
        end
        local fired_new = stop_new()
        io.write("RESULT ", cjson.encode { results = results, agents = agents, fired_requests = fired_requests,
          fired_new = fired_new }, "\n")
      ]]
      assert.is_true(seen.fired_requests > 0 and seen.fired_new > 0)
      local sent = 0
      for i, r in ipairs(seen.results) do
        if r.status == 201 then
          sent = sent + 1
        else
          -- Read after the finalizer: its URL, where nothing listens.
          assert.are.equal("connection", r.error,
            ("request %d: %s %s %s"):format(i, tostring(r.status), tostring(r.error), tostring(r.message)))
        end
      end
      assert.is_true(sent >= 4)
      -- What arrived was the request read: its method, path and key.
      local requests = srv:requests()
      local agents_seen = {}
      for i = 1, #requests do
        local r = requests[i]
        assert.are.equal("POST", r.method)
        assert.are.equal("/fleets/f/webhooks", r.uri)
        assert.matches("^key%-k+$", r.headers["idempotency-key"])
        if i > sent then agents_seen[#agents_seen + 1] = r.headers["user-agent"] end
      end
      assert.are.equal(sent + 6, #requests)
      for i, agent in ipairs(agents_seen) do
        -- The agent given, or, read after the finalizer, the one it put.
        local given = seen.agents[i].expected
        assert.is_truthy(agent:find(given, 1, true) or agent:find("replaced/1", 1, true), agent)
      end
    end)

    -- libcurl reads a body from the request's own string, without a copy,
    -- in the polls after add: the string is held by the handle, not
    -- through the request table, which its caller may change meanwhile.
    it("sends the body it was added with, whatever becomes of the request table", function()
      -- In a child interpreter, whose code is written so that only the
      -- table holds the body (Lua marks a function's dead stack slots too).
      local out, status = helpers.run_lua([[
        local core = require "cerca.core"
        local m = assert(core.new_multi())
        local PREFIX, PAD = '{"url":"https://example.com/h","pad":"', 300000
        local body = PREFIX .. ("a"):rep(PAD) .. '"}'
        local size = #body
        local req = { method = "POST", url = os.getenv("URL"), body = body, decode = false,
          headers = { "Authorization: Bearer " .. os.getenv("KEY"), "Content-Type: application/json" } }
        body = nil
        assert(m:add(1, req))
        -- The table's strings let go, collected, and their memory taken by
        -- others of the same size.
        req.body, req.url, req.headers, req.decode = nil, nil, nil, true
        collectgarbage()
        collectgarbage()
        local others = {}
        for i = 1, 40 do others[i] = string.char(65 + i % 26):rep(size) end
        local done
        while not done do done = m:poll(100)[1] end
        m:close()
        -- (Its answer is left as text, as asked at add.)
        io.write("RESULT ", done.response.status, " ", tostring(done.response.json), " ", #others, "\n")
      ]], { URL = srv.http_url .. "/fleets/f/webhooks", KEY = srv.api_key })
      assert.are.equal(0, status, out)
      assert.are.equal("RESULT 201 nil 40", out:match("RESULT [^\n]*"))
      assert.are.equal(1, #srv:requests())
      local expected = '{"url":"https://example.com/h","pad":"' .. ("a"):rep(300000) .. '"}'
      assert.is_true(srv:requests()[1].body == expected, "the body sent is not the one added")
    end)

    it("takes whole numbers in range where it takes a count, a depth or a descriptor", function()
      local function refused(f, ...)
        local ok, why = pcall(f, ...)
        assert.is_false(ok)
        assert.matches("must be a whole number from", tostring(why))
      end
      -- The walk recurses in C once a level: its depth is bounded, never
      -- cut to 32 bits.
      refused(core.plain_left, {}, nil, nil, 2 ^ 31 - 1, 10)
      refused(core.plain_left, {}, nil, nil, 2 ^ 32 + 5, 10)
      refused(core.plain_left, {}, nil, nil, 5, -1)
      refused(core.plain_left, {}, nil, nil, 5.5, 10)
      assert.are.equal(9, core.plain_left({ {} }, nil, nil, 5, 10))
      refused(core.isatty, 1.9)
      refused(core.isatty, 3)
      refused(core.exit_by_signal, 2.5)
    end)

    it("takes tokens from 1 to 2147483647, one transfer each", function()
      local m = assert(core.new_multi())
      local req = { method = "POST", url = srv.http_url .. "/fleets/f/webhooks", body = "{}",
        headers = { "Authorization: Bearer " .. srv.api_key } }
      -- (A fraction is refused too: Lua 5.1 and LuaJIT would drop it, and
      -- 1.5 would run as token 1.)
      for _, token in ipairs { 0, -1, 2147483648, 1.5, 0 / 0 } do
        assert.has_error(function() m:add(token, req) end,
          "bad argument #1 to 'add' (must be a whole number from 1 to 2147483647)")
      end
      assert(m:add(2147483647, req))
      assert.has_error(function() m:add(2147483647, req) end, "token 2147483647 is already in flight")
      m:close()
    end)

    it("moves every transfer of a multi handle along with 120 at once, on sockets numbered past 64", function()
      -- Files held open push the sockets' numbers up, so that the index of
      -- the watched sockets grows while transfers run; 120 at a time make
      -- libcurl add, change and remove sockets all through.
      local held = {}
      for i = 1, 80 do held[i] = assert(io.open("/dev/null")) end
      local m = assert(core.new_multi())
      local req = { method = "POST", url = srv.http_url .. "/fleets/f/webhooks",
        body = '{"url":"https://example.com/h"}',
        headers = { "Authorization: Bearer " .. srv.api_key, "Content-Type: application/json" } }
      local total, added, in_flight, ended, statuses = 360, 0, 0, 0, {}
      local deadline = core.monotime() + 60
      while ended < total do
        while in_flight < 120 and added < total do
          added = added + 1
          assert(m:add(added, req))
          in_flight = in_flight + 1
        end
        for _, f in ipairs((m:poll(100))) do
          statuses[f.token] = f.response.status
          ended = ended + 1
          in_flight = in_flight - 1
        end
        assert(core.monotime() < deadline, ("%d of %d transfers ended in 60 s"):format(ended, total))
      end
      for i = 1, total do assert.are.equal(201, statuses[i], "transfer " .. i) end
      assert.are.equal(total, #srv:requests())
      -- Each socket was watched once, and none is once nothing is in flight.
      assert.are.equal(0, m:watching())
      m:close()
      for i = 1, #held do held[i]:close() end
    end)

    it("speaks http and https only", function()
      local res = post(core.new_session(), { url = "ftp://127.0.0.1/x" })
      assert.are.equal("url", res.error)
      assert.are.same({}, srv:requests())
    end)

    it("never follows redirects", function()
      srv:enqueue { status = 302, body = "", headers = { Location = srv.http_url .. "/fleets/g/webhooks" } }
      local res = post(core.new_session())
      assert.are.equal(302, res.status)
      assert.are.equal(1, #srv:requests())
    end)

    it("closes idempotently, and refuses to work once closed", function()
      local s = core.new_session()
      assert.matches("^cerca.core.session %(open%)", tostring(s))
      s:close()
      s:close()
      assert.matches("^cerca.core.session %(closed%)", tostring(s))
      assert.has_error(function() post(s) end, "request on a closed session")
    end)

    it("is released by the garbage collector", function()
      for _ = 1, 50 do post(core.new_session()) end
      collectgarbage()
      collectgarbage()
      assert.are.equal(50, #srv:requests())
    end)

    if _VERSION == "Lua 5.4" then
      it("closes as a to-be-closed variable", function()
        local check = assert(load [[
          local core, post = ...
          local kept
          do
            local s <close> = core.new_session()
            kept = s
            post(s)
          end
          return tostring(kept)
        ]])
        assert.matches("%(closed%)", check(core, post))
      end)
    else
      it("has no __close under the 5.1 API", function()
        assert.is_nil(getmetatable(core.new_session()).__close)
      end)
    end
  end)
end)
