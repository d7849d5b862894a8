-- The public module's utilities besides webhooks: decode_json,
-- new_idempotency_key, LIBCURL_VERSION, suggest, post, and the command-line
-- helpers of cerca.system. (cerca.journal has journal_spec.lua.)
local helpers = require "spec.helpers"
local cerca = require "cerca"
local core = require "cerca.core"
local json = require "cerca.json"
local cjson = require "cjson"

local sh, q = helpers.sh, helpers.q

describe("cerca.decode_json", function()
  it("decodes JSON, null as cerca.null, through the core's decoder", function()
    assert.are.same({ a = { 1, 2 }, b = "x", c = cerca.null, d = true },
      cerca.decode_json '{"a":[1,2],"b":"x","c":null,"d":true}')
    assert.are.equal(cerca.null, cerca.decode_json "null")
    assert.are.equal(3.5, cerca.decode_json "3.5")
    assert.are.equal("ops", cerca.decode_json '"ops"')
    assert.are.same({}, cerca.decode_json "[]")
  end)

  it("reads back what encode_json wrote", function()
    local value = { id = "wh_1", events = { "agent.created" }, nested = { n = 1, none = cerca.null }, big = math.huge }
    assert.are.same(value, cerca.decode_json(assert(cerca.encode_json(value))))
  end)

  it("encode_json writes each character a terminal would act on as a \\u escape, alone or with others", function()
    local forms = {
      { "\127", "\\u007f" }, { "\194\128", "\\u0080" }, { "\194\155", "\\u009b" }, { "\194\159", "\\u009f" },
      { "\226\128\170", "\\u202a" }, { "\226\128\174", "\\u202e" },
      { "\226\129\166", "\\u2066" }, { "\226\129\169", "\\u2069" },
    }
    for _, f in ipairs(forms) do
      assert.are.equal('{"v":"a' .. f[2] .. 'b"}', cerca.encode_json { v = "a" .. f[1] .. "b" })
    end
    -- The lead bytes of those, in other characters, stay as they are.
    for _, text in ipairs { "\194\160", "\226\130\172", "\226\128\169" } do
      assert.are.equal('["' .. text .. '"]', cerca.encode_json { text })
    end
    assert.are.equal('["\\u007f\\u202e\\u009b"]', cerca.encode_json { "\127\226\128\174\194\155" })
  end)

  it("encode_json writes each byte that is not UTF-8 as the \\u00NN of its Latin-1 reading", function()
    -- A lone C1 byte (0x9b: the 8-bit CSI), a cut sequence, an overlong
    -- form, a surrogate, beyond U+10FFFF: none reaches the output raw.
    local forms = { { "\155", "\\u009b" }, { "\226\128", "\\u00e2\\u0080" }, { "\192\175", "\\u00c0\\u00af" },
      { "\237\160\128", "\\u00ed\\u00a0\\u0080" }, { "\244\144\128\128", "\\u00f4\\u0090\\u0080\\u0080" },
      { "\255", "\\u00ff" } }
    for _, f in ipairs(forms) do
      local text = assert(cerca.encode_json { ["k" .. f[1]] = "a" .. f[1] .. "2J" })
      assert.are.equal('{"k' .. f[2] .. '":"a' .. f[2] .. '2J"}', text)
      assert.is_nil(text:find("[\128-\255]"), text)
    end
    -- Well-formed characters around them are kept.
    assert.are.equal('["é\\u009b€"]', cerca.encode_json { "é\155€" })
  end)

  it("encode_json writes every number so that it reads back as the same number", function()
    -- What a server may send: more digits than lua-cjson's 14.
    local text = '{"at_us":1735689600123456,"big":9007199254740992,"list":[0.1234567890123456,-2.5e-300],'
      .. '"weight":0.1234567890123456}'
    local value = assert(cerca.decode_json(text))
    assert.are.equal(text, cerca.encode_json(value))
    for _, x in ipairs { 1735689600123456, 0.1, 1 / 3, 2 / 3 * 1e300, 5e-324, -1.7976931348623157e308,
      123456789.12345678 } do
      local written = assert(cerca.encode_json { x })
      assert.are.equal(x, cerca.decode_json(written)[1], written)
    end
    -- An integer beyond 2^53 (Lua 5.3 on), digit for digit.
    if math.type then
      -- An integer no double holds, digit for digit; one a double holds
      -- (-2^63), as that double.
      for _, big in ipairs { math.maxinteger, math.tointeger(2 ^ 53) + 1, -math.tointeger(2 ^ 60) - 1 } do
        assert.are.equal("[" .. tostring(big) .. "]", cerca.encode_json { big })
      end
      assert.are.equal(math.mininteger, cerca.decode_json(cerca.encode_json { math.mininteger })[1])
    end
  end)

  it("encode_json writes a number a request may hold with the bytes it always had (lua-cjson's %.14g)", function()
    -- The canonical body of a create repeated under its idempotency key
    -- must not change: numbers validation accepts keep their text.
    -- 10000000000000000 and 12345678900000000 are integers from Lua 5.3 on.
    for _, x in ipairs { 0, 1, -1, 0.1, 0.5, 1e14, 1e15, 123.456, 1e-7, 12345678901234, 1e300, -0.25, 1e16,
      10000000000000000, 12345678900000000, -1e18 } do
      assert.are.equal("[" .. string.format("%.14g", x) .. "]", cerca.encode_json { x })
      assert.are.equal('{"n":' .. string.format("%.14g", x) .. "}", json.encode_canonical { n = x })
      assert.are.equal('{"n":' .. string.format("%.14g", x) .. "}", json.encode_canonical_lua { n = x })
    end
  end)

  it("numbers are written and read with JSON's \".\", whatever decimal point the program's locale has", function()
    -- Two locales built for the test: a decimal comma, and a point of two
    -- bytes (U+066B, as in ps_AF). setlocale is the whole process's: a
    -- child process runs the checks.
    local srv = helpers.start_server()
    local dir = helpers.sh("mktemp -d"):gsub("%s+$", "")
    for name, point in pairs { comma = "<U002C>", arabic = "<U066B>" } do
      helpers.write(dir .. "/" .. name .. ".src", ('LC_NUMERIC\ndecimal_point "%s"\nthousands_sep ""\ngrouping -1\n'
        .. "END LC_NUMERIC\n"):format(point))
      sh(("localedef -c -f UTF-8 -i %s %s >/dev/null 2>&1; test -d %s"):format(q(dir .. "/" .. name .. ".src"),
        q(dir .. "/xx_" .. name), q(dir .. "/xx_" .. name)))
    end
    for _, name in ipairs { "xx_comma", "xx_arabic" } do
      local out, status = helpers.run_lua(([[
        -- Loaded first: Lua reads the numbers of its own source with the
        -- locale's point.
        local cerca, json = require "cerca", require "cerca.json"
        assert(os.setlocale(%q, "numeric"), "no locale")
        local text = '{"a":1.5,"b":0.30000000000000004,"c":[-2.5e-300,1735689600123456.5]}'
        local v = assert(cerca.decode_json(text))
        assert(v.a == 3 / 2 and v.b == 0.1 + 0.2 and v.c[1] == -2.5e-300, "decoded wrong")
        assert(cerca.encode_json(v) == text, cerca.encode_json(v))
        assert(json.encode_canonical { n = 1.5 } == '{"n":1.5}', json.encode_canonical { n = 1.5 })
        assert(json.encode_canonical_lua { n = 1.5 } == '{"n":1.5}', json.encode_canonical_lua { n = 1.5 })
        -- A create: 1.5 is sent as 1.5, 1/3 refused (more than 14 digits).
        local client = assert(cerca.new { log_level = "off" })
        assert(client.webhooks.create("fleet_1", { url = "https://example.com/h", extra_body = { n = 1.5 } }))
        local _, err = client.webhooks.create("fleet_1", { url = "https://example.com/h", extra_body = { n = 1 / 3 } })
        assert(err.message:find("(0.3333333333333333)", 1, true), err.message)
        io.write("ok")
      ]]):format(name), { LOCPATH = dir, CERCA_API_KEY = srv.api_key, CERCA_BASE_URL = srv.http_url,
        LSAN_OPTIONS = "print_suppressions=0:suppressions=" .. helpers.sh("pwd"):gsub("%s+$", "")
          .. "/spec/tools/lsan-locpath.supp" })
      assert.are.equal(0, status, out)
      assert.are.equal("ok", out)
      local requests = srv:requests()
      assert.are.equal(1, #requests)
      assert.are.same({ url = "https://example.com/h", n = 1.5 }, cjson.decode(requests[1].body))
      assert.matches('"n":1.5', requests[1].body, 1, true)
      srv:reset()
    end
    srv:stop()
    sh("rm -rf " .. q(dir))
  end)

  it("encode_json writes anything the decoder accepts, nested as deep as it allows, and refuses deeper", function()
    local deepest = string.rep('{"x":', core.MAX_DECODE_DEPTH - 1) .. '{"x":0.1234567890123456}'
      .. string.rep("}", core.MAX_DECODE_DEPTH - 1)
    local value = assert(cerca.decode_json(deepest))
    assert.are.equal(deepest, cerca.encode_json(value))
    assert.is_nil(cerca.decode_json("[" .. deepest .. "]"))
    local cycle = {}
    cycle.self = cycle
    local text, why = cerca.encode_json(cycle)
    assert.is_nil(text)
    assert.are.equal("nests deeper than " .. core.MAX_DECODE_DEPTH .. " levels (or refers to itself)", why)
  end)

  it("returns nil and a message for what is not JSON, as the core does, and never raises", function()
    for _, text in ipairs { "", "{", "[1,]", '{"a":NaN}', "Infinity", "0x10", "<html>",
      string.rep("[", 5000) .. string.rep("]", 5000) } do
      local ok, value, why = pcall(cerca.decode_json, text)
      assert.is_true(ok)
      assert.is_nil(value, text)
      assert.are.equal(select(2, core.decode(text)), why)
    end
    for _, v in ipairs { 42, true, {}, print } do
      local ok, value, why = pcall(cerca.decode_json, v)
      assert.is_true(ok)
      assert.is_nil(value)
      assert.are.equal("the JSON text must be a string, not a " .. type(v), why)
    end
    local ok, value, why = pcall(cerca.decode_json)
    assert.is_true(ok)
    assert.is_nil(value)
    assert.are.equal("the JSON text must be a string, not a nil", why)
  end)
end)

describe("cerca.encode_json of what a caller should not hand it", function()
  it("never writes a client's lists of secrets: the API key stays out of JSON as of tostring and pretty", function()
    local key = "sk_test_SUPERSECRETKEY123456"
    local client = assert(cerca.new { api_key = key, base_url = "http://127.0.0.1:9" })
    local lists = { client._refusal_secrets, client._profile.secrets, client._profile.secrets.probes }
    for _, list in ipairs(lists) do
      for _, v in ipairs { list, { list }, { nested = { list } } } do
        local text, why = cerca.encode_json(v)
        assert.is_nil(text)
        assert.is_string(why)
        assert.is_nil(why:find(key, 1, true))
        assert.are.equal("cerca.Secrets (1, not shown)", tostring(list))
      end
    end
    client:close()
  end)

  it("refuses a table that mixes list items and named keys, rather than drop or shuffle the keys", function()
    for _, v in ipairs {
      { "pending", {}, fleet = "fleet_1", secret = "whsec_ONLY_COPY" },
      { "pending", fleet = "fleet_1", secret = "whsec_ONLY_COPY", z = 1, a = 2, m = 3 },
      { outer = { 1, 2, x = true } },
    } do
      local text, why = cerca.encode_json(v)
      assert.is_nil(text)
      assert.matches("mixes list items and named keys", why, 1, true)
    end
    assert.are.equal('["a",["b"],{"c":1}]', cerca.encode_json { "a", { "b" }, { c = 1 } })
  end)

  it("refuses a table whose __len is no whole count, or a count beyond MAX_ENTRIES, at once", function()
    -- (Lua 5.1 and LuaJIT do not call a table's __len: the items are written.)
    local len_called = #setmetatable({}, { __len = function() return 1 end }) == 1
    for _, len in ipairs { 1 / 0, 2 ^ 60, 0 / 0, 1.5, "x", 1000001 } do
      local v = setmetatable({ 1, 2, 3 }, { __len = function() return len end })
      local started = os.clock()
      local text, why = cerca.encode_json(v)
      if len_called then
        assert.is_nil(text)
        assert.is_truthy(why)
      else
        assert.are.equal("[1,2,3]", text)
      end
      assert.is_true(os.clock() - started < 1)
    end
    -- A __len that tells a length within reason is honoured, as before.
    assert.are.equal(len_called and "[1,2,3,null]" or "[1,2,3]",
      cerca.encode_json(setmetatable({ 1, 2, 3 }, { __len = function() return 4 end })))
  end)
end)

describe("cerca.new_idempotency_key", function()
  it("draws a fresh UUIDv4 each time", function()
    local seen = {}
    for _ = 1, 1000 do
      local key = cerca.new_idempotency_key()
      assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", key)
      assert.is_nil(seen[key])
      seen[key] = true
    end
  end)

  it("is a key a create takes, and sends as is", function()
    local srv = helpers.start_server()
    finally(function() srv:stop() end)
    local client = helpers.client(srv)
    local key = cerca.new_idempotency_key()
    local sub, err, res = client.webhooks.create("fleet_1", { url = "https://example.com/h" },
      { idempotency_key = key })
    client:close()
    assert.is_table(sub, tostring(err))
    assert.are.equal(key, res.idempotency_key)
    assert.are.equal(key, srv:requests()[1].headers["idempotency-key"])
  end)
end)

describe("cerca.LIBCURL_VERSION", function()
  it("is the version of the libcurl the core runs on", function()
    assert.matches("^%d+%.%d+%.%d+", cerca.LIBCURL_VERSION)
    assert.are.equal(core.curl_version, cerca.LIBCURL_VERSION)
  end)
end)

describe("cerca.suggest", function()
  it("names the candidate a typo meant, and nothing for a guess; never raises", function()
    assert.are.equal("thread.completed", cerca.suggest("thread.complete", cerca.webhooks.EVENTS))
    assert.are.equal("agent.created", cerca.suggest("Agent.Craeted", cerca.webhooks.EVENTS))
    assert.is_nil(cerca.suggest("billing", cerca.webhooks.EVENTS))
    assert.is_nil(cerca.suggest(("a"):rep(65), { ("a"):rep(65) }))
    for _, args in ipairs { {}, { 1, {} }, { "x", "y" }, { "x", { 1 } } } do
      assert.is_true((pcall(cerca.suggest, args[1], args[2])))
    end
  end)
end)

describe("cerca.post", function()
  local srv

  setup(function() srv = helpers.start_server() end)
  teardown(function() if srv then srv:stop() end end)
  before_each(function() srv:reset() end)

  it("POSTs the bytes with the headers given, and nothing of the API's: no key, no idempotency key", function()
    srv:enqueue { status = 202, body = "queued\n", headers = { ["X-Receiver"] = "r1" } }
    local body = '{"b":1e999,"a":"\\u00e9"}\0tail'
    local res, err = cerca.post(srv.http_url .. "/hook?x=1", body, { headers = { ["webhook-id"] = "msg_1",
      ["Content-Type"] = "application/json" } })
    assert.is_table(res, tostring(err))
    assert.are.equal(202, res.status)
    assert.are.equal("queued\n", res.body)
    assert.are.equal("r1", res.headers["x-receiver"])
    local req = srv:requests()[1]
    assert.are.equal("POST", req.method)
    assert.are.equal("/hook?x=1", req.uri)
    assert.are.equal(body, req.body)
    assert.are.equal("msg_1", req.headers["webhook-id"])
    assert.are.equal("application/json", req.headers["content-type"])
    assert.is_nil(req.headers.authorization)
    assert.is_nil(req.headers["idempotency-key"])
    assert.matches("^cerca%-lua/", req.headers["user-agent"])
  end)

  it("gives any status as an answer, follows no redirect and makes one attempt", function()
    srv:enqueue { status = 503, body = "down" }
    local res = assert(cerca.post(srv.http_url .. "/hook", ""))
    assert.are.equal(503, res.status)
    srv:enqueue { status = 307, body = "", headers = { Location = srv.http_url .. "/other" } }
    res = assert(cerca.post(srv.http_url .. "/hook", ""))
    assert.are.equal(307, res.status)
    assert.are.equal(srv.http_url .. "/other", res.headers.location)
    assert.are.equal(2, #srv:requests())
  end)

  it("verifies TLS, trusting ca_file (or CERCA_CA_FILE) besides the system's CAs", function()
    srv:enqueue { status = 204, body = "" }
    local res, err = cerca.post(srv.https_url .. "/hook", "x", { ca_file = srv.ca_file })
    assert.is_table(res, tostring(err))
    assert.are.equal(204, res.status)
    res, err = cerca.post(srv.https_url .. "/hook", "x")
    assert.is_nil(res)
    assert.are.equal("tls", err.type)
    assert.are.equal(1, #srv:requests())
  end)

  it("fails as a call does: connection, timeout, an answer over max_response_size", function()
    local res, err = cerca.post("http://127.0.0.1:" .. helpers.closed_port() .. "/", "x")
    assert.is_nil(res)
    assert.are.equal("connection", err.type)
    srv:enqueue { status = 200, body = "late", delay = 2 }
    res, err = cerca.post(srv.http_url .. "/", "x", { timeout = 0.3 })
    assert.is_nil(res)
    assert.are.equal("timeout", err.type)
    srv:enqueue { status = 200, body = ("x"):rep(100) }
    res, err = cerca.post(srv.http_url .. "/", "x", { max_response_size = 10 })
    assert.is_nil(res)
    assert.are.equal("invalid_response", err.type)
    assert.matches("larger than opts.max_response_size (10 bytes)", err.message, 1, true)
  end)

  it("refuses, sending nothing: plain http to another host, credentials, reserved headers, bad options", function()
    local function refused(field, url, body, opts)
      local ok, res, err = pcall(cerca.post, url, body, opts)
      assert.is_true(ok)
      assert.is_nil(res)
      assert.are.equal("invalid_request", err.type, tostring(err))
      assert.are.equal(field, err.field, tostring(err))
      return err
    end
    assert.matches("loopback hosts only", refused("url", "http://example.com/h", "").message)
    local err = refused("url", "https://user:pw@example.com/h", "")
    assert.is_nil(err.message:find("pw", 1, true))
    refused("url", "ftp://127.0.0.1/h", "")
    refused("url", "127.0.0.1/h", "")
    refused("url", nil, "")
    refused("body", srv.http_url, { "x" })
    refused("opts.headers", srv.http_url, "", { headers = { Host = "other" } })
    refused("opts.headers", srv.http_url, "", { headers = { ["X-A"] = "a\r\nX-B: b" } })
    refused("opts", srv.http_url, "", { timout = 1 })
    refused("opts", srv.http_url, "", 5)
    refused("opts.timeout", srv.http_url, "", { timeout = 0 })
    refused("opts.max_response_size", srv.http_url, "", { max_response_size = 0.5 })
    local _, cerr = cerca.post(srv.http_url, "", { ca_file = "/nonexistent" })
    assert.are.equal("configuration", cerr.type)
    assert.are.same({}, srv:requests())
  end)
end)

describe("cerca.system", function()
  -- Runs `code` in a fresh interpreter of the suite's kind; `wrap` turns
  -- the shell command into the one run. Returns output and status.
  local function run(code, wrap)
    local file = os.tmpname()
    helpers.write(file, code)
    local cmd = ("env LUA_PATH=%s LUA_CPATH=%s %s %s"):format(q(package.path), q(package.cpath),
      helpers.interpreter, q(file))
    local out, status = sh(wrap(cmd))
    os.remove(file)
    return out, status
  end

  it("isatty says whether 0, 1 or 2 is a terminal", function()
    local code = [[
      local isatty = require("cerca").system.isatty
      io.stdout:write(tostring(isatty(0)), " ", tostring(isatty(1)), " ", tostring(isatty(2)), "\n")
    ]]
    local out = run(code, function(cmd) return cmd .. " </dev/null 2>/dev/null | cat" end)
    assert.are.equal("false false false\n", out)
    -- script(1) gives the command a terminal for all three.
    out = run(code, function(cmd) return "script -qec " .. q(cmd) .. " /dev/null </dev/null" end)
    assert.matches("true true true", out, 1, true)
  end)

  it("isatty refuses other descriptors with nil and a message, and never raises", function()
    for _, fd in ipairs { 3, -1, 1.5, "1", true } do
      local ok, is, why = pcall(cerca.system.isatty, fd)
      assert.is_true(ok)
      assert.is_nil(is)
      assert.are.equal("fd must be 0, 1 or 2", why)
    end
    local ok, is = pcall(cerca.system.isatty)
    assert.is_true(ok)
    assert.is_nil(is)
  end)

  -- Runs a writer that writes until a write fails, then says why on stderr
  -- and exits 3; `shape` is the bash command around it (%s: the writer,
  -- given a file to write to or none for stdout, then the stderr file).
  -- Returns the writer's exit status and stderr.
  local function writer_status(mode, shape, to_file)
    local file, out_file, err_file = os.tmpname(), os.tmpname(), os.tmpname()
    helpers.write(file, [[
      if arg[1] == "ignore" then require("cerca").system.ignore_write_signals() end
      local out = arg[2] and assert(io.open(arg[2], "w")) or io.stdout
      out:setvbuf("no")
      for _ = 1, 10000 do
        local ok, why = out:write(("x"):rep(4096))
        if not ok then
          io.stderr:write("handled: ", tostring(why), "\n")
          os.exit(3, true)
        end
      end
    ]])
    local writer = ("env LUA_PATH=%s LUA_CPATH=%s %s %s %s %s"):format(q(package.path), q(package.cpath),
      helpers.interpreter, q(file), mode, to_file and q(out_file) or "")
    local _, status = sh("bash -c " .. q(shape:format(writer, q(err_file))))
    local err = helpers.read(err_file)
    os.remove(file)
    os.remove(out_file)
    os.remove(err_file)
    return status, err
  end

  it("no_core_dumps sets the core file size limit to 0, soft and hard", function()
    local file = os.tmpname()
    helpers.write(file, [[
      assert(require("cerca").system.no_core_dumps())
      for line in io.lines("/proc/self/limits") do
        if line:find("^Max core file size") then print(line:match("^Max core file size%s+(%S+)%s+(%S+)")) end
      end
    ]])
    local out = sh(("bash -c %s"):format(q(("ulimit -c unlimited && env LUA_PATH=%s LUA_CPATH=%s %s %s")
      :format(q(package.path), q(package.cpath), helpers.interpreter, q(file)))))
    os.remove(file)
    assert.are.equal("0\t0\n", out)
  end)

  it("ignore_write_signals turns a write to a closed pipe into an error the program handles", function()
    -- `true` reads nothing and exits at once.
    local shape = "%s 2>%s | true; exit ${PIPESTATUS[0]}"
    -- Without it, SIGPIPE kills the process (128 + 13).
    assert.are.equal(141, (writer_status("default", shape)))
    local status, err = writer_status("ignore", shape)
    assert.are.equal(3, status)
    assert.matches("^handled: Broken pipe", err)
  end)

  it("ignore_write_signals turns a write past the file size limit into an error the program handles", function()
    -- A limit of 8 KiB (bash counts 1024-byte blocks): the third write goes past it.
    local shape = "ulimit -f 8; %s 2>%s"
    -- Without it, SIGXFSZ kills the process (128 + 25).
    assert.are.equal(153, (writer_status("default", shape, true)))
    local status, err = writer_status("ignore", shape, true)
    assert.are.equal(3, status)
    assert.matches("^handled: File too large", err)
  end)

  it("catch_stop_signals keeps the first SIGINT or SIGTERM as a flag; a second SIGINT ends the process", function()
    local file = os.tmpname()
    -- The shell popen starts signals its parent, this process. (Not
    -- os.execute: the C library's system() ignores SIGINT while it waits.)
    helpers.write(file, [[
      local system = require("cerca").system
      local function signal(name) io.popen("kill -" .. name .. " $PPID"):close() end
      system.catch_stop_signals()
      print(system.stop_signal())
      signal("INT")
      print(system.stop_signal())
      signal("TERM")
      print(system.stop_signal())
      print(system.release_stop_signals())
      print(system.stop_signal())
      system.catch_stop_signals()
      signal("TERM")
      print(system.stop_signal())
      signal("INT")
      print(system.release_stop_signals())
      -- Caught again, then the second SIGINT: the default, the end.
      system.catch_stop_signals()
      signal("INT")
      print(system.stop_signal())
      io.stdout:flush()
      signal("INT")
      print("still running")
    ]])
    local out, status = sh(("env LUA_PATH=%s LUA_CPATH=%s %s %s; echo \"exit $?\"")
      :format(q(package.path), q(package.cpath), helpers.interpreter, q(file)))
    os.remove(file)
    assert.are.equal(table.concat({ "nil", "2\tSIGINT", "2\tSIGINT", "2\tSIGINT", "nil", "15\tSIGTERM",
      "15\tSIGTERM", "2\tSIGINT", "exit 130", "" }, "\n"), out)
    assert.are.equal(0, status)
  end)

  it("catch_stop_signals keeps a SIGHUP as a flag; default_stop_signals lets Ctrl-C end a lua script", function()
    local file = os.tmpname()
    helpers.write(file, [[
      local system = require("cerca").system
      local function signal(name) io.popen("kill -" .. name .. " $PPID"):close() end
      system.catch_stop_signals()
      signal("HUP")
      print(system.release_stop_signals())
      -- The interpreter's own SIGINT handler raises "interrupted!" here
      -- without this: the default ends the process.
      system.default_stop_signals()
      io.stdout:flush()
      local ok, err = pcall(function()
        signal("INT")
        for _ = 1, 1000 do local _ = {} end
      end)
      print("still running", ok, err)
    ]])
    local out = sh(("perl -e 'system(@ARGV); print \"signal=\", $? & 127' env LUA_PATH=%s LUA_CPATH=%s %s %s")
      :format(q(package.path), q(package.cpath), helpers.interpreter, q(file)))
    os.remove(file)
    assert.are.equal("1\tSIGHUP\nsignal=2", out)
  end)

  it("exit_by_signal ends the process by the signal, after C's buffered output", function()
    local file = os.tmpname()
    helpers.write(file, [[
      local system = require("cerca").system
      system.catch_stop_signals()
      io.stdout:setvbuf("full")
      io.write("written first")
      system.exit_by_signal(tonumber(arg[1]))
      print("still running")
    ]])
    -- perl (in every Debian) reports how its child ended: killed by which
    -- signal, or exited with which code.
    for _, sig in ipairs { 2, 15, 1 } do
      local out = sh(("perl -e 'system(@ARGV); print \" signal=\", $? & 127, \" code=\", $? >> 8' env LUA_PATH=%s "
        .. "LUA_CPATH=%s %s %s %d"):format(q(package.path), q(package.cpath), helpers.interpreter, q(file), sig))
      assert.are.equal("written first signal=" .. sig .. " code=0", out)
    end
    os.remove(file)
  end)
end)
