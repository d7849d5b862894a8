-- `cerca deliveries sign` and `cerca deliveries send`, run from the
-- checkout under the interpreter running the suite, against real receivers
-- on 127.0.0.1: the CGI one (examples/receiver.lua, with nginx as its CGI
-- host: spec/nginx/cgi.conf), the nginx one (the /deliveries location of
-- examples/openresty/nginx.conf) and the reference server (HTTPS, and the
-- answers no receiver of ours gives). The secret must never appear in what
-- the command prints.
local helpers = require "spec.helpers"
local app = require "spec.nginx.app"
local cerca = require "cerca"

local sh, q, read, write = helpers.sh, helpers.q, helpers.read, helpers.write

local KEY = "c3BlYyBjbGkgZGVsaXZlcmllcyBzZWNyZXQgMQ=="
local SECRET = "whsec_" .. KEY
local WRONG = "whsec_YW5vdGhlciBzZWNyZXQsIG5vdCB0aGVpcnM="

local function lines(text)
  local t = {}
  for l in text:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("cerca deliveries", function()
  local root = (sh("pwd")):gsub("%s+$", "")
  local work

  setup(function()
    work = (sh("mktemp -d")):gsub("%s+$", "")
  end)

  teardown(function()
    if work then sh("rm -rf " .. q(work)) end
  end)

  -- Runs bin/cerca with only the variables given (none of the shell's
  -- CERCA_*), standard input from `stdin` (a file) or /dev/null; returns
  -- stdout, stderr and the exit code.
  local function run(args, env, stdin)
    local vars = { "LUA_PATH=" .. q(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"),
      "LUA_CPATH=" .. q(root .. "/build/" .. helpers.abi .. "/?.so;;") }
    for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. q(v) end
    local err_file = work .. "/stderr"
    local out, status = sh(("(cd %s && env -u CERCA_WEBHOOK_SECRET -u CERCA_CA_FILE -u CERCA_LOG -u NO_COLOR %s "
      .. "%s %s %s 2>%s <%s)"):format(q(work), table.concat(vars, " "), helpers.interpreter, q(root .. "/bin/cerca"),
      args, q(err_file), q(stdin or "/dev/null")))
    return out, read(err_file) or "", status
  end

  -- Neither secret, whole or without its prefix, nor a traceback.
  local function assert_clean(...)
    for _, text in ipairs { ... } do
      for _, secret in ipairs { SECRET, WRONG } do
        assert.is_nil(text:find(secret:sub(7), 1, true), text)
      end
      assert.is_nil(text:find("stack traceback", 1, true), text)
    end
  end

  local function with_secret(secret) return { CERCA_WEBHOOK_SECRET = secret or SECRET } end

  -- The three header lines `deliveries sign` prints, as a table.
  local function header_table(out)
    local t = {}
    for name, value in out:gmatch("([%w%-]+): ([^\n]*)\n") do t[name] = value end
    return t
  end

  -- The receivers of the examples: each is given SECRET, and each answers
  -- 204 to what verifies and 401 and the error type to what does not.
  local receivers = {
    {
      name = "the CGI receiver (examples/receiver.lua)",
      path = "/receiver",
      start = function()
        return app.start {
          conf = function(port) return app.for_binary((read("spec/nginx/cgi.conf"):gsub("@PORT@", port))) end,
          env = { CERCA_WEBHOOK_SECRET = SECRET, PATH = os.getenv("PATH") },
          files = { ["receiver.lua"] = "examples/receiver.lua" },
        }
      end,
      -- What the script logs (on its stderr) once it has verified and decoded a delivery.
      logged = function(id, event) return ("delivery %s: %s"):format(id, event) end,
    },
    {
      name = "the nginx receiver (examples/openresty/nginx.conf, /deliveries)",
      path = "/deliveries",
      start = function()
        -- As shipped, but logging at info: its line for each verified delivery.
        return app.start_example {
          env = { CERCA_WEBHOOK_SECRET = SECRET, CERCA_API_KEY = false, CERCA_BASE_URL = false, CERCA_CA_FILE = false,
            CERCA_LOG = false, CERCA_BOOT_FLEET = false, CERCA_BOOT_URL = false },
          edits = { { "error_log logs/error.log notice;", "error_log logs/error.log info;" } },
        }
      end,
      logged = function(id, event) return ("cerca: delivery %s %s"):format(id, event) end,
    },
  }

  for _, receiver in ipairs(receivers) do
    describe("to " .. receiver.name, function()
      local a, url

      setup(function()
        a = receiver.start()
        url = a.url .. receiver.path
      end)

      teardown(function()
        if a then a:stop() end
      end)

      it("send: the receiver verifies and decodes the event, exit 0", function()
        local out, err, status = run("deliveries send " .. q(url) .. " --event agent.created "
          .. [[--data '{"id":"agent_42","name":"ops"}']], with_secret())
        assert.are.equal(0, status, err .. a:error_log())
        assert.are.equal("", err)
        local id = out:match("^HTTP 204 from " .. url:gsub("%p", "%%%0")
          .. " %(webhook%-id (msg_%x+), agent%.created%)\n$")
        assert.is_truthy(id, out)
        assert.matches(receiver.logged(id, "agent.created"), a:error_log(), 1, true)
        assert_clean(out, err, a:error_log())
      end)

      it("send: the secret from --secret-file, and any event of the list", function()
        write(work .. "/secret", SECRET .. "\n")
        local out, err, status = run("deliveries send " .. q(url) .. " --event thread.status.changed --secret-file "
          .. q(work .. "/secret"), with_secret(WRONG))
        assert.are.equal(0, status, err)
        local id = out:match("%(webhook%-id (msg_%x+), thread%.status%.changed%)")
        assert.matches(receiver.logged(id, "thread.status.changed"), a:error_log(), 1, true)
        assert_clean(out, err)
      end)

      it("send with a wrong secret: refused, exit 3, the reason shown", function()
        local out, err, status = run("deliveries send " .. q(url) .. " --event agent.created", with_secret(WRONG))
        assert.are.equal(3, status, err)
        assert.matches("^HTTP 401 from ", out)
        assert.are.equal("invalid_signature", lines(out)[2])
        assert.are.equal("cerca: the receiver refused the delivery (HTTP 401): does it verify with the secret "
          .. "given here (CERCA_WEBHOOK_SECRET)?\n", err)
        assert_clean(out, err)
      end)

      it("sign: its headers, given to curl with the same body, are accepted; another body is not", function()
        local body = work .. "/event.json"
        write(body, '{"type":"turn.completed","timestamp":"2025-01-01T00:00:00Z","data":{"id":"turn_1"}}\n')
        local out, err, status = run("deliveries sign --data @" .. q(body), with_secret())
        assert.are.equal(0, status, err)
        assert.are.equal("", err)
        assert_clean(out, err)
        write(work .. "/headers.txt", out)
        local function curl(file)
          return (sh(("curl -q -sS --noproxy '*' -o /dev/null -w '%%{http_code}' --data-binary @%s -H @%s "
            .. "-H 'Content-Type: application/json' %s"):format(q(file), q(work .. "/headers.txt"), q(url))))
        end
        assert.are.equal("204", curl(body))
        assert.matches(receiver.logged(header_table(out)["webhook-id"], "turn.completed"), a:error_log(), 1, true)
        write(work .. "/tampered.json", '{"type":"turn.completed","data":{"id":"turn_2"}}')
        assert.are.equal("401", curl(work .. "/tampered.json"))
      end)
    end)
  end

  describe("send over HTTPS, and what a receiver may answer (the reference server)", function()
    local srv

    setup(function() srv = helpers.start_server() end)
    teardown(function() if srv then srv:stop() end end)
    before_each(function() srv:reset() end)

    -- The one request the server received, verified as a receiver would.
    local function received()
      local reqs = srv:requests()
      assert.are.equal(1, #reqs)
      local event, verr = cerca.webhooks.verify(reqs[1].body, reqs[1].headers, SECRET)
      assert.is_truthy(event, verr and tostring(verr))
      return reqs[1], event
    end

    it("trusts --ca-file, and CERCA_CA_FILE; sends no API key; the body is an event", function()
      srv:enqueue { status = 204, body = "" }
      local out, err, status = run("deliveries send " .. q(srv.https_url .. "/hook") .. " --event agent.created "
        .. "--ca-file " .. q(srv.ca_file), with_secret())
      assert.are.equal(0, status, err)
      assert.matches("^HTTP 204 from https://localhost:%d+/hook ", out)
      local req, event = received()
      assert.are.equal("https", req.port)
      assert.are.equal("POST", req.method)
      assert.is_nil(req.headers.authorization)
      assert.is_nil(req.headers["idempotency-key"])
      assert.are.equal("application/json", req.headers["content-type"])
      assert.matches("^msg_%x+$", req.headers["webhook-id"])
      assert.is_true(math.abs(tonumber(req.headers["webhook-timestamp"]) - os.time()) < 60)
      assert.are.equal("agent.created", event.type)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", event.timestamp)
      assert.are.same({ id = "agent_test" }, event.data)
      assert_clean(out, err)

      srv:reset()
      srv:enqueue { status = 200, body = "ok" }
      local data = '{"n": 12345678901234567890, "nested": {"list": [1, 2]}}'
      write(work .. "/data.json", data)
      out, err, status = run("deliveries send " .. q(srv.https_url .. "/hook") .. " --event approval.requested "
        .. "--data @" .. q(work .. "/data.json"), { CERCA_WEBHOOK_SECRET = SECRET, CERCA_CA_FILE = srv.ca_file })
      assert.are.equal(0, status, err)
      assert.are.equal("ok", lines(out)[2])
      req = received()
      -- --data is sent byte for byte: a number JSON readers would round is kept.
      assert.matches(',"data":' .. data:gsub("%p", "%%%0") .. "}$", req.body)
    end)

    it("exit 5 when the receiver's certificate is not trusted, or nothing listens, or it is too slow", function()
      local cases = {
        { q(srv.https_url .. "/hook"), "^cerca: tls: " },
        { "http://127.0.0.1:" .. helpers.closed_port() .. "/hook", "^cerca: connection: " },
        { q(srv.http_url .. "/hook") .. " --timeout 0.5", "^cerca: timeout: ", { status = 204, body = "", delay = 3 } },
      }
      for _, case in ipairs(cases) do
        if case[3] then srv:enqueue(case[3]) end
        local out, err, status = run("deliveries send " .. case[1] .. " --event agent.created", with_secret())
        assert.are.equal(5, status, err)
        assert.are.equal("", out)
        assert.matches(case[2], err)
        assert_clean(out, err)
      end
    end)

    it("exit 4 for another status: the excerpt escaped, a redirect not followed", function()
      srv:enqueue { status = 500, body = "boom \27[2J" .. ("x"):rep(300) }
      local out, err, status = run("deliveries send " .. q(srv.http_url .. "/hook") .. " --event agent.created",
        with_secret())
      assert.are.equal(4, status, err)
      assert.are.equal("boom \\x1b[2J" .. ("x"):rep(191) .. "... (309 bytes in all)", lines(out)[2])
      assert.is_nil(out:find("\27", 1, true))
      assert.are.equal("cerca: the receiver answered HTTP 500, not a 2xx\n", err)

      srv:reset()
      srv:enqueue { status = 302, body = "", headers = { Location = srv.http_url .. "/elsewhere" } }
      out, err, status = run("deliveries send " .. q(srv.http_url .. "/hook") .. " --event agent.created",
        with_secret())
      assert.are.equal(4, status, err)
      assert.matches("^HTTP 302 ", out)
      assert.are.equal("cerca: the receiver answered HTTP 302, not a 2xx; redirects are not followed (it points to "
        .. srv.http_url .. "/elsewhere)\n", err)
      assert.are.equal(1, #srv:requests())
      assert_clean(out, err)
    end)

    it("says so when the receiver's answer could not be printed, and keeps the failure's exit code", function()
      srv:enqueue { status = 500, body = "boom" }
      local _, err, status = run("deliveries send " .. q(srv.http_url .. "/hook") .. " --event agent.created"
        .. " >/dev/full", with_secret())
      assert.are.equal(4, status, err)
      assert.matches("cerca: the receiver answered HTTP 500, not a 2xx\n", err, 1, true)
      assert.matches("cerca: could not write to stdout (", err, 1, true)
      srv:enqueue { status = 204, body = "" }
      _, err, status = run("deliveries send " .. q(srv.http_url .. "/hook") .. " --event agent.created"
        .. " >/dev/full", with_secret())
      assert.are.equal(7, status, err)
      assert.matches("cerca: could not write to stdout (", err, 1, true)
    end)

    it("exit 2, nothing sent and the secret never repeated, for what it refuses", function()
      local function refused(args, env, message)
        local out, err, status = run(args, env)
        assert.are.equal(2, status, err)
        assert.are.equal("", out)
        if message then assert.are.equal("cerca: " .. message .. "\n", err) end
        assert.are.equal(1, #lines(err), err)
        assert_clean(out, err)
        return err
      end
      local send = "deliveries send " .. q(srv.http_url .. "/hook") .. " "
      local never = "the webhook secret is never taken as an argument (other users can read a command's "
        .. "arguments, and it would land in the shell's history): set CERCA_WEBHOOK_SECRET or use --secret-file FILE"
      refused(send .. "--event agent.created --secret " .. SECRET, nil, never)
      refused(send .. "--event agent.created --secret=" .. SECRET, nil, never)
      refused("deliveries sign --secret " .. SECRET, nil, never)
      refused(send .. "--event agent.created " .. SECRET, nil, never)
      refused("frobnicate " .. SECRET, nil, never)
      refused(send .. "--event agent.created", nil, "no webhook secret: set CERCA_WEBHOOK_SECRET, or use "
        .. "--secret-file FILE (the whsec_ secret the subscription was created with)")
      refused(send .. "--event agent.created", with_secret("whsec_" .. KEY:sub(1, 5) .. "!"),
        "the webhook secret in CERCA_WEBHOOK_SECRET is not valid: expected whsec_ followed by the base64 of the "
        .. "key, as the subscription's create printed it")
      refused(send .. "--event agent.craeted", with_secret(),
        '--event: unknown event "agent.craeted"; did you mean "agent.created"?')
      refused(send .. "--event webhook.test", with_secret(),
        "--event: unknown event \"webhook.test\"; see 'cerca webhooks events' for the 19 names")
      refused(send, with_secret(), "--event is required: the type of the event to send (see 'cerca webhooks events')")
      refused(send .. "--event agent.created --data '[1,2]'", with_secret())
      refused(send .. "--event agent.created --timeout 0", with_secret(),
        "--timeout must be a positive number of seconds (got 0)")
      refused("deliveries send http://example.com/hook --event agent.created", with_secret(),
        "URL uses http:// for example.com; use https:// (plain http is allowed for loopback hosts only)")
      refused("deliveries send --event agent.created", with_secret(),
        "give one URL, the receiver's, e.g. http://127.0.0.1:8080/deliveries")
      refused("deliveries send " .. q(srv.https_url) .. " --event agent.created --ca-file /nonexistent",
        with_secret())
      refused("deliveries sign --data x --timestamp soon", with_secret(), nil)
      refused("deliveries sign --data x --id 'a b'", with_secret(),
        "--id must be 1 to 255 printable ASCII characters without spaces, e.g. msg_1")
      refused("deliveries sign --data x --secret-file /nonexistent", with_secret())
      assert.are.same({}, srv:requests())
    end)

    it("never prints the secret a receiver echoes, in its answer or a redirect, whole or cut", function()
      local pct = SECRET:gsub("[/=+]", function(c) return ("%%%02X"):format(c:byte()) end)
      for _, script in ipairs {
        { status = 401, body = "signature mismatch; receiver is configured with " .. SECRET },
        { status = 401, body = '{"configured":"' .. KEY:gsub("/", "\\/") .. '"}' },
        { status = 500, body = ("x"):rep(200 - 20) .. SECRET },
        { status = 302, body = "", headers = { Location = "https://example.com/bad?secret=" .. pct } },
        { status = 302, body = "", headers = { Location = "https://example.com/bad?key=" .. KEY } },
      } do
        srv:reset()
        srv:enqueue(script)
        local out, err, status = run("deliveries send " .. q(srv.http_url .. "/hook") .. " --event agent.created",
          with_secret())
        assert.are.equal(script.status == 401 and 3 or 4, status, err)
        assert.matches("[redacted]", out .. err, 1, true)
        assert_clean(out, err)
        assert.is_nil((out .. err):find(KEY:sub(1, 8), 1, true), out .. err)
      end
    end)

    it("never prints the secret, even with CERCA_LOG=debug", function()
      srv:enqueue { status = 401, body = "invalid_signature\n" }
      local out, err, status = run("deliveries send " .. q(srv.http_url .. "/hook") .. " --event agent.created",
        { CERCA_WEBHOOK_SECRET = WRONG, CERCA_LOG = "debug" })
      assert.are.equal(3, status, err)
      assert_clean(out, err)
      write(work .. "/wrong", WRONG)
      out, err, status = run("deliveries sign --data '{}' --secret-file " .. q(work .. "/wrong"),
        { CERCA_LOG = "debug" })
      assert.are.equal(0, status, err)
      assert_clean(out, err)
    end)
  end)

  describe("sign", function()
    it("signs standard input, or --data, with a fresh id and the current time unless given", function()
      local body = '{"type":"agent.deleted","data":{"id":"agent_1"}}'
      write(work .. "/body", body)
      local out, err, status = run("deliveries sign", with_secret(), work .. "/body")
      assert.are.equal(0, status, err)
      assert.are.equal(3, #lines(out))
      local headers = header_table(out)
      assert.matches("^msg_%x+$", headers["webhook-id"])
      assert.is_true(math.abs(tonumber(headers["webhook-timestamp"]) - os.time()) < 60)
      assert(cerca.webhooks.verify(body, headers, SECRET))

      out, err, status = run("deliveries sign --id msg_1 --timestamp 1700000000 --data " .. q(body), with_secret())
      assert.are.equal(0, status, err)
      assert.are.equal("webhook-id: msg_1\nwebhook-timestamp: 1700000000\nwebhook-signature: "
        .. cerca.webhooks.sign(body, SECRET, "msg_1", 1700000000) .. "\n", out)
      assert_clean(out, err)
    end)

    it("reads at most 1 MiB of body", function()
      local out, err, status = run("deliveries sign", with_secret(), "/dev/zero")
      assert.are.equal(2, status)
      assert.are.equal("", out)
      assert.matches("standard input: more than 1 MiB", err, 1, true)
    end)
  end)

  it("has help: cerca help deliveries, deliveries --help, and in cerca help", function()
    for _, args in ipairs { "help deliveries", "deliveries --help" } do
      local out, err, status = run(args, with_secret())
      assert.are.equal(0, status, err)
      assert.matches("cerca deliveries sign [--id ID]", out, 1, true)
      assert.matches("cerca deliveries send URL --event NAME", out, 1, true)
      assert.matches("3 the receiver refused the delivery (401, 403", out, 1, true)
      assert_clean(out, err)
    end
    local out = run("help", with_secret())
    assert.matches("cerca deliveries send URL", out, 1, true)
    assert.matches("CERCA_WEBHOOK_SECRET", out, 1, true)
    out = run("deliveries send --help")
    assert.matches("--secret-file FILE", out, 1, true)
    local err, status
    out, err, status = run("deliveries")
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("cerca deliveries sign", err, 1, true)
  end)
end)
