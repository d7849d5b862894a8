-- The `cerca` command, installed with LuaRocks into a fresh tree and run
-- against the reference server: output streams, exit codes, batch mode.
local helpers = require "spec.helpers"
local cjson = require "cjson"
local cerca = require "cerca"

local sh = helpers.sh

local q, read, write = helpers.q, helpers.read, helpers.write

local function lines(text)
  local t = {}
  for l in text:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("the cerca command", function()
  local srv, work, cerca_bin, tree_paths

  setup(function()
    srv = helpers.start_server()
    work, cerca_bin, tree_paths = helpers.install_command()
  end)

  teardown(function()
    if srv then srv:stop() end
    if work then sh("rm -rf " .. q(work)) end
  end)

  before_each(function() srv:reset() end)

  -- Runs the installed command; returns stdout, stderr, exit code.
  local function run(args, env)
    local vars = { "CERCA_API_KEY=" .. q(srv.api_key), "CERCA_BASE_URL=" .. q(srv.http_url) }
    for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. q(v) end
    local err_file = work .. "/stderr"
    local out, status = sh(("(cd %s && %s && env -u NO_COLOR -u CERCA_LOG %s %s %s 2>%s </dev/null)")
      :format(q(work), tree_paths, table.concat(vars, " "), q(cerca_bin), args, q(err_file)))
    return out, read(err_file) or "", status
  end

  local function assert_clean(...)
    for _, text in ipairs { ... } do
      assert.is_nil(text:find(srv.api_key, 1, true))
      assert.is_nil(text:find("stack traceback", 1, true))
      assert.is_nil(text:find("\27[", 1, true))
    end
  end

  describe("single create", function()
    it("shows the subscription with the whole secret once, and says so on stderr", function()
      local out, err, status = run("webhooks create fleet_abc123 --url https://example.com/webhook")
      assert.are.equal(0, status)
      local stored = srv:subscriptions()[1]
      assert.matches("^Webhook subscription " .. stored.id .. "\n", out)
      assert.matches("  secret     " .. stored.secret .. "\n", out, 1, true)
      assert.are.equal("cerca: the secret above is shown once and will not be shown again: store it now\n", err)
      assert_clean(out, err)
    end)

    it("--json prints one JSON object and nothing else", function()
      local out, err, status = run("webhooks create fleet_1 --url https://example.com/h --json "
        .. "--event agent.created --event turn.failed --extra description='\"ops\"' --extra n=3")
      assert.are.equal(0, status)
      assert.are.equal("", err)
      assert.are.equal(1, #lines(out))
      local sub = cjson.decode(out)
      assert.are.same(srv:subscriptions()[1], sub)
      local body = cjson.decode(srv:requests()[1].body)
      assert.are.same({ url = "https://example.com/h", events = { "agent.created", "turn.failed" },
        description = "ops", n = 3 }, body)
    end)

    it("--json writes what the server sent as it sent it, without a byte a terminal would act on", function()
      -- More digits than lua-cjson keeps, a lone 0x9b byte (the 8-bit CSI)
      -- and a C1 control written as UTF-8.
      local body = '{"id":"wh_1","fleetId":"fleet_1","url":"https://example.com/h","events":[],"enabled":true,'
        .. '"createdAt":"2026-12-01T00:00:00Z","updatedAt":"2026-12-01T00:00:00Z",'
        .. '"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw","at_us":1735689600123456,'
        .. '"weight":0.1234567890123456,"note":"a\155' .. '2J b\194\155' .. '2J"}'
      srv:enqueue { status = 201, body = body }
      local out, err, status = run("webhooks create fleet_1 --url https://example.com/h --json")
      assert.are.equal(0, status, err)
      assert.is_nil(out:find("[\128-\255]"), out)
      assert.matches('"at_us":1735689600123456,', out, 1, true)
      assert.matches('"weight":0.1234567890123456}', out, 1, true)
      assert.matches('"note":"a\\u009b2J b\\u009b2J"', out, 1, true)
    end)

    it("keeps an empty events list as [] in --json", function()
      local out = run("webhooks create fleet_1 --url https://example.com/h --json")
      assert.matches('"events":%[%]', out)
    end)

    it("sends --idempotency-key", function()
      local _, _, status = run("webhooks create fleet_1 --url https://example.com/h --idempotency-key k-42")
      assert.are.equal(0, status)
      assert.are.equal("k-42", srv:requests()[1].headers["idempotency-key"])
    end)

    it("puts the subscription on stderr, exit 7, when stdout cannot be written", function()
      for _, flag in ipairs { "", " --json" } do
        srv:reset()
        local _, err, status = run("webhooks create fleet_1 --url https://example.com/h" .. flag .. " >/dev/full")
        assert.are.equal(7, status, err)
        assert.matches("^cerca: could not write to stdout %(", err)
        local rescued = cjson.decode(lines(err)[#lines(err)])
        assert.are.equal(srv:subscriptions()[1].secret, rescued.secret)
      end
    end)

    it("says so, exit 7, when what the other commands print cannot be written", function()
      for _, args in ipairs { "--version", "webhooks events", "help", "help webhooks", "webhooks --help",
        "deliveries sign --help", "deliveries sign --data '{}'" } do
        local out, err, status = run(args .. " >/dev/full",
          { CERCA_WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" })
        assert.are.equal(7, status, args .. ": " .. err)
        assert.are.equal("", out)
        assert.are.equal("cerca: could not write to stdout (No space left on device)\n", err, args)
      end
      local out, err, status = run("webhooks events")
      assert.are.equal(0, status, err)
      assert.matches("^agent%.created\n", out)
    end)

    it("rescues the subscription to stderr when stdout is a pipe nobody reads", function()
      local err_file = work .. "/pipe.err"
      local _, status = sh(("(cd %s && %s && env CERCA_API_KEY=%s CERCA_BASE_URL=%s %s webhooks create fleet_1 "
        .. "--url https://example.com/h --json 2>%s; echo $? > %s.rc) | (exec 0<&-; sleep 1)")
        :format(q(work), tree_paths, q(srv.api_key), q(srv.http_url), q(cerca_bin), q(err_file), q(err_file)))
      assert.are.equal(0, status)
      assert.are.equal("7", (read(err_file .. ".rc"):gsub("%s+$", "")))
      local err = read(err_file)
      assert.matches("^cerca: could not write to stdout %(", err)
      assert.are.equal(srv:subscriptions()[1].secret, cjson.decode(lines(err)[#lines(err)]).secret)
    end)

    it("names the key to repeat with when the create may have happened", function()
      srv:enqueue { action = "create_then_partial" }
      srv:enqueue { status = 503, body = "{}", headers = { ["X-Should-Retry"] = "false" } }
      local out, err, status = run("webhooks create fleet_1 --url https://example.com/h --json")
      assert.are.equal(4, status)
      assert.are.equal("", out)
      local key = err:match("repeat with %-%-idempotency%-key (%S+) to get it without a duplicate\n")
      assert.is_truthy(key, err)
      out, err, status = run("webhooks create fleet_1 --url https://example.com/h --json --idempotency-key " .. key)
      assert.are.equal(0, status, err)
      assert.are.equal(srv:subscriptions()[1].secret, cjson.decode(out).secret)
      assert.are.equal(1, #srv:subscriptions())
    end)

    it("takes --ca-file, and CERCA_CA_FILE, for an HTTPS API signed by another CA", function()
      local out, err, status = run("webhooks create fleet_1 --url https://example.com/h --json --ca-file "
        .. q(srv.ca_file), { CERCA_BASE_URL = srv.https_url })
      assert.are.equal(0, status, err)
      assert.are.equal(srv:subscriptions()[1].secret, cjson.decode(out).secret)
      out, err, status = run("webhooks create fleet_2 --url https://example.com/h --json",
        { CERCA_BASE_URL = srv.https_url, CERCA_CA_FILE = srv.ca_file })
      assert.are.equal(0, status, err)
      assert.are.equal(srv:subscriptions()[2].secret, cjson.decode(out).secret)
      out, err, status = run("webhooks create fleet_3 --url https://example.com/h --ca-file /nonexistent",
        { CERCA_BASE_URL = srv.https_url })
      assert.are.equal(2, status)
      assert.are.equal("", out)
      assert.matches("^cerca: %-%-ca%-file", err)
      -- Without the server's CA: the fix named in the command's terms.
      out, err, status = run("webhooks create fleet_4 --url https://example.com/h",
        { CERCA_BASE_URL = srv.https_url })
      assert.are.equal(5, status)
      assert.are.equal("", out)
      assert.matches("^cerca: tls: .*certificate.*needs that CA's PEM file as %-%-ca%-file FILE "
        .. "%(or CERCA_CA_FILE%)\n$", err)
    end)

    it("reads the key from --api-key-file, and never takes it as an argument", function()
      write(work .. "/key", srv.api_key .. "\n")
      local out, err, status = run("webhooks create fleet_1 --url https://example.com/h --json --api-key-file "
        .. q(work .. "/key"), { CERCA_API_KEY = "sk_wrong" })
      assert.are.equal(0, status, err)
      assert.truthy(cjson.decode(out).id)
      out, err, status = run("webhooks create fleet_1 --url https://example.com/h --api-key " .. srv.api_key)
      assert.are.equal(2, status)
      assert.are.equal("", out)
      assert.are.equal("cerca: the API key is never taken as an argument (it would land in the shell's history): "
        .. "set CERCA_API_KEY or use --api-key-file FILE\n", err)
      -- A file without a key, or with more than a key: the flag is named.
      write(work .. "/key", "\n")
      out, err, status = run("webhooks create fleet_1 --url https://example.com/h --api-key-file " .. q(work .. "/key"))
      assert.are.equal(2, status)
      assert.are.equal("", out)
      assert.are.equal("cerca: --api-key-file " .. work .. "/key is empty: write the API key in it\n", err)
      write(work .. "/key", " " .. srv.api_key .. "\n")
      out, err, status = run("webhooks create fleet_1 --url https://example.com/h --api-key-file " .. q(work .. "/key"))
      assert.are.equal(2, status)
      assert.are.equal("", out)
      assert.matches("^cerca: %-%-api%-key%-file: the API key contains a space", err)
    end)
  end)

  describe("exit codes", function()
    local function fails(code, args, env, script)
      if script then srv:enqueue(script) end
      local out, err, status = run(args or "webhooks create fleet_1 --url https://example.com/h", env)
      assert.are.equal(code, status, err)
      assert.are.equal("", out)
      assert.are.equal(1, #lines(err), err)
      assert_clean(out, err)
      return err
    end

    it("1 when the library cannot be loaded (lua-cjson missing): what and how, no traceback", function()
      -- Only the tree's C modules on the path: no lua-cjson.
      local out, err, status = run("--version", { LUA_CPATH = work .. "/tree/lib/lua/5.4/?.so" })
      assert.are.equal(1, status)
      assert.are.equal("", out)
      assert.are.equal(2, #lines(err), err)
      assert.matches("^cerca: cannot load the library for Lua 5.4: module 'cjson.safe' not found", err)
      assert.matches("apt-get install lua-cjson", err, 1, true)
      assert_clean(out, err)
      assert.are.equal(0, #srv:requests())
    end)

    it("2 for usage and validation errors, nothing sent", function()
      -- Errors name the flag the user typed, not the library's field.
      assert.are.equal('cerca: --event: unknown event "thread.complete"; did you mean "thread.completed"?\n',
        fails(2, "webhooks create fleet_1 --url https://example.com/h --event thread.complete"))
      assert.are.equal('cerca: --event: unknown event "agent.created, turn.failed"; give each event its own '
        .. "--event: --event agent.created --event turn.failed\n",
        fails(2, "webhooks create fleet_1 --url https://example.com/h --event 'agent.created, turn.failed'"))
      assert.are.equal("cerca: --url must use https (got http://); deliveries are only sent to HTTPS endpoints\n",
        fails(2, "webhooks create fleet_1 --url http://example.com/h"))
      assert.are.equal("cerca: --idempotency-key must be 1 to 255 printable ASCII characters without spaces "
        .. '(got "a b")\n', fails(2, "webhooks create fleet_1 --url https://example.com/h --idempotency-key 'a b'"))
      assert.are.equal("cerca: --extra url: url is a named parameter; use --url instead\n",
        fails(2, "webhooks create fleet_1 --url https://example.com/h --extra url='\"x\"'"))
      assert.are.equal("cerca: --extra events: events is a named parameter; use --event instead\n",
        fails(2, "webhooks create fleet_1 --url https://example.com/h --extra events='[\"agent.created\"]'"))
      assert.are.equal('cerca: --event: "agent.created" is already given by --event number 1; give each event '
        .. "once\n", fails(2, "webhooks create fleet_1 --url https://example.com/h --event agent.created "
        .. "--event agent.created"))
      assert.are.equal('cerca: --event: unknown event "agent.created,thread.completed"; give each event its own '
        .. "--event: --event agent.created --event thread.completed\n", fails(2, "webhooks create fleet_1 --url "
        .. "https://example.com/h --event agent.created,thread.completed"))
      -- Quoting is the fix for a bare word, not for JSON written wrong.
      assert.matches("; quote strings: description='\"ops\"'\n$",
        fails(2, "webhooks create fleet_1 --url https://example.com/h --extra description=ops"))
      assert.matches("; correct the JSON\n$",
        fails(2, "webhooks create fleet_1 --url https://example.com/h --extra 'a={\"b\":'"))
      assert.are.equal("cerca: --url is required: the HTTPS endpoint that receives deliveries\n",
        fails(2, "webhooks create fleet_1"))
      assert.are.equal("cerca: unknown option --evnt; see 'cerca help webhooks create'\n",
        fails(2, "webhooks create fleet_1 --url https://example.com/h --evnt x"))
      assert.are.equal("cerca: no API key: set CERCA_API_KEY, or use --api-key-file FILE\n",
        fails(2, nil, { CERCA_API_KEY = "" }))
      assert.are.equal("cerca: --timeout must be at least 0.001 seconds (got 0.0005)\n",
        fails(2, "webhooks create fleet_1 --url https://example.com/h --timeout 0.0005"))
      fails(2, "frobnicate")
      assert.are.same({}, srv:requests())
    end)

    it("for every type of error, the code the help lists (1 for a fault inside cerca)", function()
      local cli = require "cerca.cli"
      local expected = { invalid_request = 2, configuration = 2, authentication = 3, permission_denied = 3,
        connection = 5, timeout = 5, tls = 5, internal = 1 }
      for t in pairs(cerca.ERROR_TYPES) do
        assert.are.equal(expected[t] or 4, cli.EXIT[cli.EXIT_FOR_TYPE[t] or "api"], t)
      end
    end)

    it("3 for authentication and permission", function()
      assert.matches("^cerca: authentication %(HTTP 401%)", fails(3, nil, { CERCA_API_KEY = "sk_wrong" }))
      fails(3, nil, nil, { status = 403, body = '{"error":{"message":"no"}}' })
    end)

    it("4 for other API errors", function()
      fails(4, nil, nil, { status = 422, body = '{"error":{"message":"bad"}}' })
      assert.are.equal("cerca: conflict (HTTP 409): taken\n",
        fails(4, nil, nil, { status = 409, body = '{"error":{"message":"taken"}}',
          headers = { ["X-Should-Retry"] = "false" } }))
    end)

    it("5 for network, TLS and timeouts", function()
      fails(5, nil, { CERCA_BASE_URL = srv.https_url })
      -- A timeout is retried: every attempt must stall.
      srv:enqueue { status = 201, body = "{}", delay = 2 }
      srv:enqueue { status = 201, body = "{}", delay = 2 }
      fails(5, "webhooks create fleet_1 --url https://example.com/h --timeout 0.3", nil,
        { status = 201, body = "{}", delay = 2 })
    end)
  end)

  describe("batch mode", function()
    local FLEETS = "fleet_a\n\n# a comment\nfleet_b\n  fleet_c  \nfleet_d\n"

    it("creates one subscription per listed fleet, results to --out (mode 0600), a summary on stderr", function()
      write(work .. "/fleets.txt", FLEETS)
      local outfile = work .. "/out.jsonl"
      os.remove(outfile)
      local out, err, status = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --out " .. q(outfile) .. " --concurrency 2")
      assert.are.equal(0, status, err)
      assert.are.equal("", out)
      assert.are.equal("cerca: 4 created, 0 failed, 0 skipped (already in " .. outfile .. ")\n", err)
      assert.are.equal("600", (sh("stat -c %a " .. q(outfile))):gsub("%s+$", ""))
      local got, pending = {}, 0
      local records = lines(read(outfile))
      -- First, what the batch is made with.
      assert.are.same({ params = { url = "https://example.com/h" } }, cjson.decode(table.remove(records, 1)))
      for _, l in ipairs(records) do
        local r = cjson.decode(l)
        if r.pending then
          pending = pending + 1
          assert.matches("^%x+%-", r.idempotency_key)
        else
          got[r.fleetId] = r.secret
        end
      end
      assert.are.equal(4, pending)
      local stored = srv:subscriptions()
      assert.are.equal(4, #stored)
      for _, s in ipairs(stored) do assert.are.equal(s.secret, got[s.fleetId]) end
    end)

    -- Every subscription the server made (`n`), its secret on a JSON line
    -- of stderr (`err`): rescued from a stdout that could not be written.
    local function assert_all_rescued(err, n)
      local rescued = {}
      for _, l in ipairs(lines(err)) do
        if l:sub(1, 1) == "{" then
          local r = cjson.decode(l)
          rescued[r.fleetId] = r.secret
        end
      end
      local stored = srv:subscriptions()
      assert.are.equal(n, #stored)
      for _, s in ipairs(stored) do assert.are.equal(s.secret, rescued[s.fleetId]) end
    end

    it("started with stdout closed, puts every secret on stderr, exit 7 (not into a socket)", function()
      -- Left closed, descriptor 1 is the next one opened (libcurl's first
      -- socket), and the results would be written into it.
      write(work .. "/fleets.txt", FLEETS)
      local _, err, status = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --json --concurrency 1 >&-")
      assert.are.equal(7, status, err)
      assert.matches("^cerca: could not write to stdout %(", err)
      assert_all_rescued(err, 4)
    end)

    it("started with stdout closed where /dev/full is missing (a bare chroot), rescues the secrets the same", function()
      -- In a mount namespace of its own, /dev holds null, zero, random and
      -- urandom only: the stand-in for descriptor 1 is then a pipe no one
      -- reads, where every write fails as on /dev/full.
      write(work .. "/fleets.txt", FLEETS)
      local dev = work .. "/dev"
      local inner = ("mkdir -p %s && mount -t tmpfs none %s && for d in null zero random urandom; do "
        .. "touch %s/$d && mount --bind /dev/$d %s/$d; done && mount --bind %s /dev && test ! -e /dev/full && "
        .. "cd %s && %s && env -u NO_COLOR CERCA_API_KEY=%s CERCA_BASE_URL=%s %s webhooks create --fleets-file "
        .. "fleets.txt --url https://example.com/h --json --concurrency 1 2>%s >&-; echo $? > %s")
        :format(q(dev), q(dev), q(dev), q(dev), q(dev), q(work), tree_paths, q(srv.api_key), q(srv.http_url),
          q(cerca_bin), q(work .. "/nodevfull.err"), q(work .. "/nodevfull.rc"))
      sh("unshare -m sh -c " .. q(inner) .. " </dev/null")
      local err = read(work .. "/nodevfull.err") or ""
      assert.are.equal("7", ((read(work .. "/nodevfull.rc") or ""):gsub("%s+$", "")), err)
      assert.matches("^cerca: could not write to stdout %(", err)
      assert.is_nil(err:find("traceback", 1, true), err)
      assert_all_rescued(err, 4)
    end)

    it("escapes the --out file's name in the line that says it could not be written", function()
      write(work .. "/fleets.txt", FLEETS)
      local name = "esc\27]0;pwned\7\27[2J.jsonl"
      local err_file = work .. "/ulimit.err"
      -- No file may grow past 0 blocks: the first record cannot be written.
      -- (stderr goes through a pipe, which the limit does not apply to.)
      sh(("(cd %s && %s && { (ulimit -f 0 && exec env CERCA_API_KEY=%s CERCA_BASE_URL=%s %s webhooks create "
        .. "--fleets-file fleets.txt --url https://example.com/h --out %s </dev/null 2>&1 >/dev/null);"
        .. " echo $? > %s.rc; } | cat > %s)")
        :format(q(work), tree_paths, q(srv.api_key), q(srv.http_url), q(cerca_bin), q(name), q(err_file),
          q(err_file)))
      os.remove(work .. "/" .. name)
      local err = read(err_file)
      assert.are.equal("7", (read(err_file .. ".rc"):gsub("%s+$", "")), err)
      assert.matches("could not write to esc", err, 1, true)
      assert.is_nil(err:find("[%z\1-\9\11-\31\127]"), err)
      assert.are.equal(0, #srv:requests())
    end)

    it("refuses what every create shares, or a fleets file holding the key, before writing or sending", function()
      write(work .. "/fleets.txt", FLEETS)
      local outfile = work .. "/shared.jsonl"
      os.remove(outfile)
      local function refused(args, message)
        local out, err, status = run(args)
        assert.are.equal(2, status, err)
        assert.are.equal("", out)
        assert.are.equal(message, err)
        assert_clean(out, err)
        assert.is_nil(io.open(outfile))
      end
      -- A flag typed wrong is one usage error naming it, not a failure per
      -- fleet recorded in --out (which a corrected re-run would then refuse).
      refused("webhooks create --fleets-file fleets.txt --url http://e.com/h --event agent.craeted --out "
        .. q(outfile), "cerca: --url must use https (got http://); deliveries are only sent to HTTPS endpoints\n")
      refused("webhooks create --fleets-file fleets.txt --url https://e.com/h --event agent.craeted --out "
        .. q(outfile), 'cerca: --event: unknown event "agent.craeted"; did you mean "agent.created"?\n')
      -- The key in a shared flag, or in the fleets file (a .env given by
      -- mistake): refused without printing or recording it.
      refused("webhooks create --fleets-file fleets.txt --url " .. q("https://e.com/h?t=" .. srv.api_key)
        .. " --out " .. q(outfile), "cerca: --url holds the API key, which is sent in the Authorization header "
        .. "only, never in the body: pass the HTTPS endpoint that receives deliveries\n")
      refused("webhooks create --fleets-file fleets.txt --url https://e.com/h --extra "
        .. q('note="' .. srv.api_key .. '"') .. " --out " .. q(outfile), "cerca: --extra note holds the API key, "
        .. "which is sent in the Authorization header only, never in the body: remove it from --extra note\n")
      write(work .. "/dotenv", "fleet_a\nCERCA_API_KEY=" .. srv.api_key .. "\n")
      refused("webhooks create --fleets-file dotenv --url https://e.com/h --out " .. q(outfile),
        "cerca: --fleets-file dotenv: fleet id number 2 holds the API key; give the file that lists one "
        .. "fleet id per line\n")
      assert.are.equal(0, #srv:requests())
      -- Corrected, the same --out takes the batch.
      local _, err, status = run("webhooks create --fleets-file fleets.txt --url https://e.com/h --out "
        .. q(outfile))
      assert.are.equal(0, status, err)
      assert.are.equal(4, #srv:subscriptions())
    end)

    it("refuses an --out file another run is writing (exit 2), sending nothing", function()
      write(work .. "/fleets.txt", FLEETS)
      local outfile = work .. "/busy.jsonl"
      os.remove(outfile)
      local other = assert(cerca.journal.open(outfile))
      finally(function() other:close() end)
      local _, err, status = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --out " .. q(outfile))
      assert.are.equal(2, status, err)
      assert.matches("is in use by another run of cerca", err, 1, true)
      assert.are.equal(0, #srv:requests())
      assert.are.equal("", read(outfile))
    end)

    it("sends a long fleets file in slices, each fleet's result under its own name", function()
      -- Slices of 3 (100,000 by default): 8 fleets make three create_many
      -- calls; the fifth fleet, refused, is in the second.
      write(work .. "/fleets.txt", "fleet_1\nfleet_2\nfleet_3\nfleet_4\n.\nfleet_6\nfleet_7\nfleet_8\n")
      local err_file = work .. "/slices.err"
      local out, status = sh(("(cd %s && %s && env -u NO_COLOR -u CERCA_LOG CERCA_API_KEY=%s CERCA_BASE_URL=%s "
        .. "lua5.4 -e 'require(\"cerca.cli_create\").BATCH_SLICE = 3' bin/cerca webhooks create --fleets-file %s "
        .. "--url https://example.com/h --json --concurrency 2 2>%s </dev/null)"):format(q(work), tree_paths,
        q(srv.api_key), q(srv.http_url), q(work .. "/fleets.txt"), q(err_file)))
      local err = read(err_file)
      assert.are.equal(6, status, err)
      assert.matches("cerca: 7 created, 1 failed", err)
      local secrets, failed = {}, {}
      for _, l in ipairs(lines(out)) do
        local r = cjson.decode(l)
        if r.secret then secrets[r.fleetId] = r.secret else failed[#failed + 1] = r.fleet_id end
      end
      assert.are.same({ "." }, failed)
      local stored = srv:subscriptions()
      assert.are.equal(7, #stored)
      for _, sub in ipairs(stored) do assert.are.equal(sub.secret, secrets[sub.fleetId]) end
    end)

    it("slices by what each fleet's create reads: the shared --extra values count for every fleet", function()
      -- 1005 table entries per fleet: 995 fleets per create_many call, so
      -- 2100 fleets take three calls instead of being refused as one.
      local names = {}
      for i = 1, 2100 do names[i] = "fleet_" .. i end
      write(work .. "/fleets.txt", table.concat(names, "\n") .. "\n")
      local data = "[" .. ("0,"):rep(999) .. "0]"
      local out, err, status = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --json --concurrency 8 --extra data=" .. q(data))
      assert.are.equal(0, status, err)
      assert.matches("cerca: 2100 created, 0 failed", err)
      assert.are.equal(2100, #lines(out))
      assert.are.equal(2100, #srv:subscriptions())
    end)

    it("keeps every secret when its stdout reaches the file size limit (exit 7, the rest on stderr)", function()
      local names = {}
      for i = 1, 20 do names[i] = "fleet_" .. i end
      write(work .. "/fleets.txt", table.concat(names, "\n") .. "\n")
      local out_file, err_file = work .. "/limited.out", work .. "/limited.err"
      os.remove(out_file)
      -- A limit of 2 KiB (bash counts 1024-byte blocks) for the command
      -- alone: a few JSON lines fit in its stdout, then a write fails. Its
      -- stderr is a pipe, which the limit does not apply to.
      local _, status = sh(("(cd %s && %s && { env CERCA_API_KEY=%s CERCA_BASE_URL=%s bash -c 'ulimit -f 2 && "
        .. "exec \"$@\"' sh %s webhooks create --fleets-file %s --url https://example.com/h --json --concurrency 4 "
        .. ">%s </dev/null; echo $? > %s.rc; } 2>&1 | cat >%s)"):format(q(work), tree_paths, q(srv.api_key),
        q(srv.http_url), q(cerca_bin), q(work .. "/fleets.txt"), q(out_file), q(err_file), q(err_file)))
      assert.are.equal(0, status)
      local err = read(err_file)
      assert.are.equal("7", (read(err_file .. ".rc"):gsub("%s+$", "")), err)
      assert.matches("cerca: could not write to stdout %(", err)
      -- The secrets of the JSON lines that were written whole, on either.
      local kept = {}
      for _, l in ipairs(lines(read(out_file) .. "\n" .. err)) do
        local ok, r = pcall(cjson.decode, l)
        if ok and type(r) == "table" and r.secret then kept[r.fleetId] = r.secret end
      end
      local stored = srv:subscriptions()
      assert.are.equal(20, #stored)
      for _, sub in ipairs(stored) do assert.are.equal(sub.secret, kept[sub.fleetId]) end
    end)

    it("exits 6 when some fail, and a re-run with the same --out resumes without duplicates", function()
      write(work .. "/fleets.txt", FLEETS)
      local outfile = work .. "/resume.jsonl"
      os.remove(outfile)
      srv:enqueue { status = 403, body = '{"error":{"message":"fleet locked"}}' }
      local _, err, status = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --out " .. q(outfile) .. " --concurrency 1")
      assert.are.equal(6, status)
      assert.matches("\ncerca: fleet_a: permission_denied %(HTTP 403%): fleet locked", "\n" .. err)
      assert.matches("cerca: 3 created, 1 failed, 0 skipped", err)
      assert.are.equal(3, #srv:subscriptions())

      srv:reset()
      _, err, status = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --out " .. q(outfile))
      assert.are.equal(0, status, err)
      assert.matches("cerca: 1 created, 0 failed, 3 skipped", err)
      local reqs = srv:requests()
      assert.are.equal(1, #reqs)
      assert.matches("/fleets/fleet_a/webhooks", reqs[1].uri, 1, true)
    end)

    it("resumes an --out only with the parameters it was started with (events in any order)", function()
      write(work .. "/fleets.txt", "fleet_p1\nfleet_p2\n")
      local outfile = work .. "/params.jsonl"
      os.remove(outfile)
      local base = "webhooks create --fleets-file " .. q(work .. "/fleets.txt") .. " --out " .. q(outfile)
      srv:enqueue { status = 403, body = '{"error":{"message":"fleet locked"}}' }
      local _, err, status = run(base .. " --url https://example.com/h --event agent.created --event "
        .. "thread.completed --concurrency 1")
      assert.are.equal(6, status, err)
      assert.are.equal(1, #srv:subscriptions())
      local first = cjson.decode(lines(read(outfile))[1])
      assert.are.same({ url = "https://example.com/h", events = { "agent.created", "thread.completed" } },
        first.params)
      local before = read(outfile)
      -- Another --url, other events, an --extra: refused, nothing sent or written.
      -- The message names the flags, not their values (a URL may carry a token).
      for _, other in ipairs {
        { " --url https://example.com/other --event agent.created --event thread.completed", "--url" },
        { " --url https://example.com/h --event agent.created", "--event" },
        { " --url https://example.com/h --event agent.created --event thread.completed --extra description='\"x\"'",
          "--extra" },
        { " --url https://example.com/o --event agent.created", "--url and --event" } } do
        srv:reset()
        local out
        out, err, status = run(base .. other[1])
        assert.are.equal(2, status, err)
        assert.are.equal("", out)
        assert.are.equal("cerca: --out " .. outfile .. " holds a batch started with another " .. other[2] .. "; a "
          .. "re-run resumes it only with the same --url, --event and --extra: repeat those, or give a new --out for "
          .. "these\n", err)
        assert.are.same({}, srv:requests())
        assert.are.equal(before, read(outfile))
      end
      -- The same, events in another order: resumed, the failed fleet under its key.
      srv:reset()
      _, err, status = run(base .. " --url https://example.com/h --event thread.completed --event agent.created")
      assert.are.equal(0, status, err)
      assert.matches("cerca: 1 created, 0 failed, 1 skipped", err, 1, true)
      local params_records = 0
      for _, l in ipairs(lines(read(outfile))) do
        if cjson.decode(l).params then params_records = params_records + 1 end
      end
      assert.are.equal(1, params_records)
    end)

    it("on stdout, a failure's record gives the key it was sent under, and none when nothing was sent", function()
      write(work .. "/fleets.txt", ".\nfleet_b\n")
      srv:enqueue { status = 403, body = '{"error":{"message":"fleet locked"}}' }
      local out, err, status = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --concurrency 1")
      assert.are.equal(6, status, err)
      assert.matches("cerca: 0 created, 2 failed", err)
      local reqs = srv:requests()
      assert.are.equal(1, #reqs)
      local records = {}
      for _, l in ipairs(lines(out)) do
        local r = cjson.decode(l)
        records[r.fleet_id] = r
      end
      assert.are.equal("invalid_request", records["."].error.type)
      assert.is_false(records["."].error.request_sent)
      assert.is_nil(records["."].idempotency_key)
      assert.are.equal("permission_denied", records.fleet_b.error.type)
      assert.is_true(records.fleet_b.error.request_sent)
      assert.are.equal(reqs[1].headers["idempotency-key"], records.fleet_b.idempotency_key)
      -- Attempts that reached no server (a refused connection) sent nothing.
      write(work .. "/fleets.txt", "fleet_c\n")
      out, err, status = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h", { CERCA_BASE_URL = "http://127.0.0.1:1" })
      assert.are.equal(6, status, err)
      local record = cjson.decode(out)
      assert.are.equal("connection", record.error.type)
      assert.is_false(record.error.request_sent)
      assert.is_false(record.error.maybe_created)
      assert.is_nil(record.idempotency_key)
    end)

    it("repeats an unanswered create under the same key on resume: no duplicate", function()
      write(work .. "/fleets.txt", "fleet_a\nfleet_a\n")
      local outfile = work .. "/lost.jsonl"
      os.remove(outfile)
      -- Every attempt creates, then the answer is lost.
      for _ = 1, 3 do srv:enqueue { action = "create_then_drop" } end
      local _, err, status = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --out " .. q(outfile))
      assert.are.equal(6, status, err)
      assert.are.equal(1, #srv:subscriptions())
      local records = lines(read(outfile))
      assert.are.equal(3, #records) -- the params, the pending key, then the error
      local key = cjson.decode(records[2]).idempotency_key
      assert.are.equal(key, cjson.decode(records[3]).idempotency_key)

      _, err, status = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --out " .. q(outfile))
      assert.are.equal(0, status, err)
      assert.matches("cerca: 1 created, 0 failed, 0 skipped", err)
      assert.are.equal(1, #srv:subscriptions())
      local reqs = srv:requests()
      assert.are.equal(key, reqs[#reqs].headers["idempotency-key"])
      local written = lines(read(outfile))
      -- Then the subscription: a key the file holds is not written again,
      -- so that re-runs do not grow it.
      assert.are.equal(4, #written)
      local last = cjson.decode(written[4])
      assert.are.equal(srv:subscriptions()[1].secret, last.secret)
    end)

    it("after a record cut short by a crash, a run killed mid-create resumes with its key: no duplicate",
      function()
      write(work .. "/fleets.txt", "fleet_cut\n")
      local outfile = work .. "/cut.jsonl"
      -- An earlier run died while writing: its last line has no end.
      helpers.write_private(outfile, '{"fleet_id":"fleet_other","idempot')
      -- The API creates, then answers one byte a second; the command is
      -- killed once the subscription exists, before any answer is read.
      srv:enqueue { action = "trickle", interval = 1 }
      local pid = sh(("(cd %s && %s && env CERCA_API_KEY=%s CERCA_BASE_URL=%s %s webhooks create --fleets-file %s "
        .. "--url https://example.com/h --out %s >/dev/null 2>&1 </dev/null & echo $!)")
        :format(q(work), tree_paths, q(srv.api_key), q(srv.http_url), q(cerca_bin), q(work .. "/fleets.txt"),
          q(outfile))):match("%d+")
      local deadline = os.time() + 10
      while #srv:subscriptions() == 0 and os.time() < deadline do sh("sleep 0.05") end
      sh("kill -9 " .. pid)
      assert.are.equal(1, #srv:subscriptions())

      local _, err, status = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --out " .. q(outfile))
      assert.are.equal(0, status, err)
      -- The key recorded before the create was read back and sent again:
      -- the API replayed the subscription it had made.
      assert.are.equal(1, #srv:subscriptions())
      local reqs = srv:requests()
      assert.are.equal(reqs[#reqs - 1].headers["idempotency-key"], reqs[#reqs].headers["idempotency-key"])
    end)

    -- Starts the installed command in the background; returns its pid and
    -- a function that waits for it to end and returns stdout, stderr and
    -- how it ended: "exit N", or "signal N" when a signal ended it (perl,
    -- in every Debian, tells the two apart; a shell's $? does not).
    local PARENT = [[my ($pid_file, $status_file, @command) = @ARGV;
      my $pid = fork(); defined $pid or exit(126);
      if ($pid == 0) { $SIG{INT} = $SIG{TERM} = $SIG{HUP} = "DEFAULT"; exec(@command) or exit(127); }
      open(my $f, ">", "$pid_file.new"); print $f $pid; close($f); rename("$pid_file.new", $pid_file);
      waitpid($pid, 0); my $how = ($? & 127) ? "signal " . ($? & 127) : "exit " . ($? >> 8);
      open($f, ">", "$status_file.new"); print $f $how; close($f); rename("$status_file.new", $status_file);]]
    -- (`stdout`: where its stdout goes; a file of its own by default.)
    local function start(args, stdout)
      local dir = work .. "/bg"
      sh("rm -rf " .. q(dir) .. " && mkdir " .. q(dir))
      sh(("(cd %s && %s && env CERCA_API_KEY=%s CERCA_BASE_URL=%s perl -e %s %s %s %s %s >%s 2>%s </dev/null &)")
        :format(q(work), tree_paths, q(srv.api_key), q(srv.http_url), q(PARENT), q(dir .. "/pid"),
          q(dir .. "/status"), q(cerca_bin), args, q(stdout or dir .. "/out"), q(dir .. "/err")))
      local pid
      local pid_deadline = os.time() + 30
      repeat
        pid = (read(dir .. "/pid") or ""):match("%d+")
        if not pid then sh("sleep 0.05") end
      until pid or os.time() > pid_deadline
      assert(pid, "no pid")
      return pid, function()
        local deadline = os.time() + 60
        while not read(dir .. "/status") and os.time() < deadline do sh("sleep 0.05") end
        return read(dir .. "/out") or "", read(dir .. "/err") or "", read(dir .. "/status")
      end
    end

    local function wait_for(what, ready)
      local deadline = os.time() + 30
      while not ready() and os.time() < deadline do sh("sleep 0.05") end
      assert(ready(), "timed out waiting for " .. what)
    end

    -- A batch of `n` fleets to --out, two in flight and each create 2 s
    -- long, sent `signal` once a first wave is created. Returns its stderr,
    -- how it ended and its --out file.
    local function interrupted_batch(name, n, signal)
      local fleets = {}
      for i = 1, n do fleets[i] = "fleet_" .. name .. "_" .. i end
      write(work .. "/fleets.txt", table.concat(fleets, "\n") .. "\n")
      for _ = 1, n do srv:enqueue { action = "pass", delay = 2 } end
      local outfile = work .. "/" .. name .. ".jsonl"
      local pid, ended = start("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --concurrency 2 --out " .. q(outfile))
      wait_for("a first wave", function() return #srv:subscriptions() >= 2 end)
      sh("kill -" .. signal .. " " .. pid)
      local _, err, status = ended()
      return err, status, outfile
    end

    it("writes no core file: the key and the secrets in its memory stay there (core size limit 0)", function()
      srv:enqueue { action = "pass", delay = 2 }
      local pid, ended = start("webhooks create fleet_core --url https://example.com/h --json")
      wait_for("the create sent", function() return #srv:requests() >= 1 end)
      local limits = read("/proc/" .. pid .. "/limits") or ""
      local soft, hard = limits:match("Max core file size%s+(%S+)%s+(%S+)")
      local _, err, status = ended()
      assert.are.equal("0", soft, limits)
      assert.are.equal("0", hard, limits)
      assert.are.equal("exit 0", status, err)
    end)

    it("with stdout failing, puts each secret on stderr as it comes: a second Ctrl-C loses none already made",
      function()
      local fleets = {}
      for i = 1, 6 do fleets[i] = "fleet_full_" .. i end
      write(work .. "/fleets.txt", table.concat(fleets, "\n") .. "\n")
      for _ = 1, 6 do srv:enqueue { action = "pass", delay = 1 } end
      local pid, ended = start("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --json --concurrency 1", "/dev/full")
      -- A third subscription is made once the first two were answered.
      wait_for("two creates answered", function() return #srv:subscriptions() >= 3 end)
      sh("sleep 0.3")
      sh("kill -INT " .. pid .. "; sleep 0.2; kill -INT " .. pid)
      local _, err, status = ended()
      assert.are.equal("signal 2", status, err)
      assert.matches("^cerca: could not write to stdout %(", err)
      local rescued = {}
      for _, l in ipairs(lines(err)) do
        local ok, r = pcall(cjson.decode, l)
        if ok and type(r) == "table" and r.secret then rescued[r.fleetId] = r.secret end
      end
      local stored = srv:subscriptions()
      for i = 1, 2 do assert.are.equal(stored[i].secret, rescued[stored[i].fleetId], err) end
      -- The create in flight at the kill is made on the server a delay
      -- later: not in the next test's count.
      sh("sleep 1.5")
    end)

    it("stops at Ctrl-C: the creates in flight end and are written, none is started after; a re-run ends it",
      function()
      -- Uninterrupted, the batch would take 12 s (six waves of two creates,
      -- 2 s each): the signal lands in it however slow the machine is.
      local err, status, outfile = interrupted_batch("int", 12, "INT")
      -- Ended by the signal, once everything was written.
      assert.are.equal("signal 2", status, err)
      assert.matches("cerca: SIGINT: stopping; the creates in flight end and are written (Ctrl-C again quits at "
        .. "once, and a re-run with the same --out repeats them under their keys)\n", err, 1, true)
      local created, unsent = err:match("cerca: stopped by SIGINT: (%d+) created, 0 failed, (%d+) not sent, 0 "
        .. "skipped %(already in [^)]+%)\n$")
      assert.truthy(created, err)
      created, unsent = tonumber(created), tonumber(unsent)
      assert.are.equal(12, created + unsent)
      assert.is_true(unsent > 0, err)
      -- Every create the API made is in the journal with its secret: the
      -- ones in flight at the signal were waited for.
      local stored = srv:subscriptions()
      assert.are.equal(created, #stored)
      local secret_of, cancelled = {}, 0
      for _, l in ipairs(lines(read(outfile))) do
        local r = cjson.decode(l)
        if r.secret then secret_of[r.fleetId] = r.secret end
        if r.error then
          assert.are.equal("cancelled", r.error.type)
          assert.matches("the batch was stopped (SIGINT)", r.error.message, 1, true)
          assert.is_false(r.error.request_sent)
          cancelled = cancelled + 1
        end
      end
      for _, sub in ipairs(stored) do assert.are.equal(sub.secret, secret_of[sub.fleetId]) end
      assert.are.equal(unsent, cancelled)
      assert.are.equal(created, #srv:requests())

      local _, rerr, rstatus = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --concurrency 2 --out " .. q(outfile))
      assert.are.equal(0, rstatus, rerr)
      assert.matches(("cerca: %d created, 0 failed, %d skipped"):format(unsent, created), rerr, 1, true)
      assert.are.equal(12, #srv:subscriptions())
    end)

    it("lets a single create already sent end at Ctrl-C, with its key named first, and shows its secret", function()
      srv:enqueue { action = "pass", delay = 5 }
      local pid, ended = start("webhooks create fleet_sig --url https://example.com/h --json")
      wait_for("the request", function() return #srv:requests() >= 1 end)
      sh("kill -INT " .. pid)
      local out, err, status = ended()
      -- Nothing was cut short: the exit code says how the create ended.
      assert.are.equal("exit 0", status, err)
      local key = srv:requests()[1].headers["idempotency-key"]
      assert.are.equal("cerca: SIGINT: stopping; a create not yet sent is not sent, one already sent is let end "
        .. "(Ctrl-C again quits at once: if it was sent, repeat with --idempotency-key " .. key .. " to get its "
        .. "subscription without a duplicate)\n", err)
      assert.are.equal(1, #srv:subscriptions())
      assert.are.equal(srv:subscriptions()[1].secret, cjson.decode(out).secret)
    end)

    it("ends at once at the first signal while it waits for an input (a FIFO): nothing sent or written", function()
      -- Nothing is caught before every input is read: one Ctrl-C ends a
      -- wait for a writer that never comes.
      local fifo = work .. "/input.fifo"
      for _, case in ipairs {
        { "webhooks create fleet_sig --url https://example.com/h --api-key-file " .. q(fifo), "TERM", "signal 15" },
        { "webhooks create --fleets-file " .. q(fifo) .. " --url https://example.com/h --out "
          .. q(work .. "/fifo-out.jsonl"), "INT", "signal 2" },
        { "webhooks create --fleets-file " .. q(fifo) .. " --url https://example.com/h", "HUP", "signal 1" },
      } do
        sh("rm -f " .. q(fifo) .. " " .. q(work .. "/fifo-out.jsonl") .. " && mkfifo " .. q(fifo))
        local pid, ended = start(case[1])
        -- Waiting in the open of the FIFO, for a writer (the kernel's name
        -- for that wait changed over the versions).
        wait_for("the wait on the FIFO", function()
          local wchan = read("/proc/" .. pid .. "/wchan") or ""
          return wchan == "fifo_open" or wchan == "wait_for_partner"
        end)
        sh("kill -" .. case[2] .. " " .. pid)
        local out, err, status = ended()
        assert.are.equal(case[3], status, err)
        assert.are.equal("", out)
        assert.are.equal("", err)
        assert.is_nil(read(work .. "/fifo-out.jsonl"))
      end
      assert.are.same({}, srv:requests())
    end)

    it("stops a batch at SIGHUP (its terminal closed) as at Ctrl-C, and ends by it once all is written", function()
      local err, status, outfile = interrupted_batch("hup", 8, "HUP")
      assert.are.equal("signal 1", status, err)
      assert.matches("cerca: SIGHUP: stopping; the creates in flight end and are written (SIGHUP again quits at "
        .. "once, and a re-run with the same --out repeats them under their keys)\n", err, 1, true)
      local created = tonumber(err:match("cerca: stopped by SIGHUP: (%d+) created, 0 failed, %d+ not sent"))
      assert.truthy(created, err)
      local stored, secret_of = srv:subscriptions(), {}
      assert.are.equal(created, #stored)
      for _, l in ipairs(lines(read(outfile))) do
        local r = cjson.decode(l)
        if r.secret then secret_of[r.fleetId] = r.secret end
      end
      for _, sub in ipairs(stored) do assert.are.equal(sub.secret, secret_of[sub.fleetId]) end
    end)

    it("ends a single create's wait to retry at SIGTERM, with the key to repeat it under", function()
      srv:enqueue { status = 503, body = "{}", headers = { ["Retry-After-Ms"] = "20000" } }
      local pid, ended = start("webhooks create fleet_sig --url https://example.com/h")
      wait_for("the request", function() return #srv:requests() >= 1 end)
      local t0 = helpers.now()
      sh("kill -TERM " .. pid)
      local out, err, status = ended()
      assert.is_true(helpers.now() - t0 < 10, "it waited")
      assert.are.equal("signal 15", status, err)
      assert.are.equal("", out)
      local key = srv:requests()[1].headers["idempotency-key"]
      assert.matches("(not retried: the batch was stopped (SIGTERM)); the subscription may exist: repeat with "
        .. "--idempotency-key " .. key, err, 1, true)
      assert.are.equal(1, #srv:requests())
    end)

    it("--json writes one object per line to stdout, and only that", function()
      write(work .. "/fleets.txt", "f1\nf2\nf3\n")
      local out, err, status = run("webhooks create --fleets-file " .. q(work .. "/fleets.txt")
        .. " --url https://example.com/h --json")
      assert.are.equal(0, status)
      local ls = lines(out)
      assert.are.equal(3, #ls)
      for _, l in ipairs(ls) do assert.truthy(cjson.decode(l).secret) end
      assert.are.equal("cerca: 3 created, 0 failed; the secrets above are shown once\n", err)
    end)
  end)

  -- The hostile-answer cases run the command from the checkout under the
  -- interpreter running the suite (Lua 5.4, then LuaJIT), as well as the
  -- installed one above.
  describe("hostile answers", function()
    local root = (sh("pwd")):gsub("%s+$", "")
    local build = root .. "/build/" .. helpers.abi
    local function run_here(args, env)
      local vars = { "CERCA_API_KEY=" .. q(srv.api_key), "CERCA_BASE_URL=" .. q(srv.http_url),
        "LUA_PATH=" .. q(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"), "LUA_CPATH=" .. q(build .. "/?.so;;") }
      for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. q(v) end
      local err_file = work .. "/stderr"
      local out, status = sh(("(cd %s && env -u NO_COLOR -u CERCA_LOG %s %s %s %s 2>%s </dev/null)")
        :format(q(work), table.concat(vars, " "), helpers.interpreter, q(root .. "/bin/cerca"), args, q(err_file)))
      return out, read(err_file) or "", status
    end

    local function sub_body(fleet, extra)
      return cjson.encode { id = "wh_" .. fleet, fleetId = fleet, url = "https://example.com/h", events = {},
        enabled = true, createdAt = "t", updatedAt = "t", secret = "whsec_" .. fleet .. "Secret0123" }
        :gsub("}$", extra or "}")
    end

    it("prints a created subscription holding 1e999, secret included, exit 0", function()
      for _, flag in ipairs { "", " --json" } do
        srv:enqueue { status = 201, body = sub_body("fleet_1", ',"big":1e999}') }
        local out, err, status = run_here("webhooks create fleet_1 --url https://example.com/h" .. flag)
        assert.are.equal(0, status, err)
        assert.matches("whsec_fleet_1Secret0123", out, 1, true)
        if flag ~= "" then assert.are.equal(math.huge, cjson.decode(out).big) end
      end
    end)

    it("shows an earlier answer that may hold a second subscription: after the one created, "
      .. "in a batch as its own record; the create's exit code stays 0", function()
      -- A server that does not honour the key: the first answer broke off
      -- with all of wh_first's secret, the repeat answers fleet_1's own.
      local first_secret = "whsec_" .. ("f"):rep(40)
      local first = cjson.encode { id = "wh_first", fleetId = "fleet_1", secret = first_secret }
      local function enqueue_both()
        srv:enqueue { action = "partial", body = first, bytes = #first - 2, headers = { ["Retry-After-Ms"] = "1" } }
        srv:enqueue { status = 201, body = sub_body("fleet_1") }
      end
      for _, flag in ipairs { "", " --json" } do
        enqueue_both()
        local out, err, status = run_here("webhooks create fleet_1 --url https://example.com/h" .. flag)
        assert.are.equal(0, status, err)
        assert.matches("whsec_fleet_1Secret0123", out, 1, true)
        assert.is_nil(out:find(first_secret, 1, true))
        assert.matches("cerca: fleet_1: warning: created on a repeat, but an earlier attempt's answer (HTTP 201, "
          .. (#first - 2) .. " bytes) does not show this subscription: it may hold a second subscription and its "
          .. "secret; it follows as received:\n", err, 1, true)
        assert.matches(first_secret, err, 1, true)
      end
      write(work .. "/one.txt", "fleet_1\n")
      local outfile = work .. "/before.jsonl"
      os.remove(outfile)
      enqueue_both()
      local _, err, status = run_here("webhooks create --fleets-file " .. q(work .. "/one.txt")
        .. " --url https://example.com/h --out " .. q(outfile))
      assert.are.equal(0, status, err)
      assert.matches("1 created (1 with an earlier answer to check: created_before), 0 failed", err, 1, true)
      assert.matches("it is the created_before.answer of the record after the subscription's", err, 1, true)
      assert.is_nil(err:find(first_secret, 1, true))
      local records = {}
      for _, l in ipairs(lines(read(outfile))) do records[#records + 1] = cjson.decode(l) end
      local last, created = records[#records], records[#records - 1]
      assert.are.equal("whsec_fleet_1Secret0123", created.secret)
      assert.are.equal("fleet_1", last.fleet_id)
      assert.are.equal(first:sub(1, -3), last.created_before.answer)
      assert.are.equal(201, last.created_before.status)
      -- A re-run resumes from it: the fleet is created, nothing is sent.
      local sent = #srv:requests()
      _, err, status = run_here("webhooks create --fleets-file " .. q(work .. "/one.txt")
        .. " --url https://example.com/h --out " .. q(outfile))
      assert.are.equal(0, status, err)
      assert.are.equal(sent, #srv:requests())
    end)

    it("writes every created subscription of a batch, 1e999 and all, and counts only what it wrote", function()
      write(work .. "/two.txt", "fleet_1\nfleet_2\n")
      local outfile = work .. "/big.jsonl"
      os.remove(outfile)
      srv:enqueue { status = 201, body = sub_body("fleet_1", ',"big":1e999}') }
      srv:enqueue { status = 201, body = sub_body("fleet_2", ',"big":-1e999}') }
      local _, err, status = run_here("webhooks create --fleets-file " .. q(work .. "/two.txt")
        .. " --url https://example.com/h --concurrency 1 --out " .. q(outfile))
      assert.are.equal(0, status, err)
      assert.matches("2 created, 0 failed", err, 1, true)
      local secrets = {}
      for _, l in ipairs(lines(read(outfile))) do
        local r = cjson.decode(l)
        if r.secret then secrets[#secrets + 1] = r.secret end
      end
      assert.are.same({ "whsec_fleet_1Secret0123", "whsec_fleet_2Secret0123" }, secrets)
    end)

    it("an unusable 2xx: the key to repeat with, and the raw answer kept on stderr or in --out", function()
      local raw = '{"id":"wh_1","fleetId":"fleet_1","secret":"whsec_only_copy"}'
      srv:enqueue { status = 201, body = raw }
      local out, err, status = run_here("webhooks create fleet_1 --url https://example.com/h --json")
      assert.are.equal(4, status)
      assert.are.equal("", out)
      local key = srv:requests()[1].headers["idempotency-key"]
      assert.matches("repeat with --idempotency-key " .. key .. " to get it without a duplicate", err, 1, true)
      assert.matches(raw, err, 1, true)

      srv:reset()
      write(work .. "/one.txt", "fleet_1\n")
      local outfile = work .. "/unusable.jsonl"
      os.remove(outfile)
      srv:enqueue { status = 201, body = raw }
      out, err, status = run_here("webhooks create --fleets-file " .. q(work .. "/one.txt")
        .. " --url https://example.com/h --out " .. q(outfile))
      assert.are.equal(6, status, err)
      assert.are.equal("", out)
      local last = cjson.decode(lines(read(outfile))[3])
      assert.are.equal(raw, last.error.answer)
      assert.are.equal(srv:requests()[1].headers["idempotency-key"], last.idempotency_key)
    end)

    it("does not repeat the API key pasted into the wrong flag", function()
      -- The first two quote what was typed.
      for i, args in ipairs {
        "webhooks create fleet_1 --url https://example.com/h --idempotency-key " .. q(srv.api_key .. "x y"),
        "webhooks create fleet_1 --url https://example.com/h --api_key=" .. q(srv.api_key),
        "webhooks create fleet_1 --url https://example.com/h --timeout " .. q(srv.api_key),
      } do
        local _, err, status = run_here(args)
        assert.are.equal(2, status, err)
        if i <= 2 then assert.matches("[redacted]", err, 1, true) end
        assert.is_nil(err:find(srv.api_key, 1, true), err)
      end
      -- A key the message quotes escaped, or cut short; one from --api-key-file.
      local quoted, long = 'sk_live_ab"cd\\efgh', "sk_live_" .. string.rep("A1b2C3d4", 6)
      local key_file = work .. "/key.txt"
      write(key_file, long .. "\n")
      for _, case in ipairs {
        { "webhooks create fleet_1 --url https://example.com/h --event " .. q(quoted), { CERCA_API_KEY = quoted } },
        { "webhooks create fleet_1 --url " .. q(long), { CERCA_API_KEY = long } },
        { "webhooks create fleet_1 --api-key-file " .. q(key_file) .. " --url https://example.com/h --event "
          .. q(long) },
        -- Refused before the file is read.
        { "webhooks create fleet_1 --api-key-file " .. q(key_file) .. " --url https://example.com/h --extra "
          .. q(long) },
        { "webhooks create fleet_1 --api-key-file=" .. q(key_file) .. " --" .. long },
      } do
        local _, err, status = run_here(case[1], case[2])
        assert.are.equal(2, status, err)
        assert.matches("[redacted]", err, 1, true)
        assert.is_nil(err:find("sk_live_", 1, true), err)
      end
      -- A key too short to be a credential is not removed from the words.
      local _, err = run_here("webhooks create fleet_1 --event agent.created", { CERCA_API_KEY = "e" })
      assert.is_nil(err:find("[redacted]", 1, true), err)
      assert.matches("--url", err, 1, true)
      assert.are.equal(0, #srv:requests())
    end)

    it("says the subscription may exist only when a request may have reached the API", function()
      local _, err, status = run_here("webhooks create fleet_1 --url https://example.com/h",
        { CERCA_BASE_URL = "http://127.0.0.1:" .. helpers.closed_port() })
      assert.are.equal(5, status)
      assert.is_nil(err:find("may exist", 1, true), err)
      assert.is_nil(err:find("--idempotency-key", 1, true), err)
      for _ = 1, 3 do srv:enqueue { status = 503, body = "{}", headers = { ["Retry-After-Ms"] = "1" } } end
      _, err, status = run_here("webhooks create fleet_1 --url https://example.com/h")
      assert.are.equal(4, status)
      assert.matches("the subscription may exist: repeat with --idempotency-key", err, 1, true)
      -- Whatever the last attempt got: here the first created, then lost its answer.
      for _, last in ipairs { { 409, 2 }, { 429, 2 }, { 422, 1 } } do
        srv:reset()
        srv:enqueue { action = "create_then_drop" }
        for _ = 1, last[2] do
          srv:enqueue { status = last[1], body = '{"error":{"message":"no"}}', headers = { ["Retry-After-Ms"] = "1" } }
        end
        _, err, status = run_here("webhooks create fleet_1 --url https://example.com/h")
        assert.are.equal(4, status)
        assert.matches("the subscription may exist: repeat with --idempotency-key "
          .. srv:requests()[1].headers["idempotency-key"] .. " to get it without a duplicate", err, 1, true)
        assert.are.equal(1, #srv:subscriptions())
      end
    end)

    it("escapes what the server sends before it reaches the terminal", function()
      srv:enqueue { status = 201, body = sub_body("fleet_1"):gsub('"wh_fleet_1"', '"wh_\\u001b[2J\\u009b1m"') }
      local out, err, status = run_here("webhooks create fleet_1 --url https://example.com/h")
      assert.are.equal(0, status, err)
      assert.matches("wh_\\x1b[2J\\u{009b}1m", out, 1, true)
      assert.is_nil(out:find("[%z\1-\9\11-\31\127]"))
      assert.is_nil(out:find("\194\155", 1, true))
      -- A usage error repeats what was typed: escaped too.
      out, err, status = run_here(
        [[webhooks create fleet_1 --url https://example.com/h --extra "$(printf 'x=\033[31m')"]])
      assert.are.equal(2, status)
      assert.are.equal("", out)
      assert.matches("\\x1b[31m", err, 1, true)
      assert.is_nil(err:find("\27", 1, true), err)
    end)
  end)

  describe("on a terminal", function()
    -- script(1) runs the command on a pseudo-terminal.
    local function on_tty(args, env)
      local vars = { "CERCA_API_KEY=" .. q(srv.api_key), "CERCA_BASE_URL=" .. q(srv.http_url) }
      for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. q(v) end
      local cmd = ("env -u NO_COLOR %s %s %s"):format(table.concat(vars, " "), q(cerca_bin), args)
      return (sh("cd " .. q(work) .. " && " .. tree_paths .. " && script -qec " .. q(cmd) .. " /dev/null"))
    end

    it("uses colour, unless NO_COLOR is set", function()
      local out = on_tty("webhooks create fleet_1 --url https://example.com/h")
      assert.matches("\27[1mWebhook subscription", out, 1, true)
      out = on_tty("webhooks create fleet_1 --url https://example.com/h", { NO_COLOR = "1" })
      assert.matches("Webhook subscription", out, 1, true)
      assert.is_nil(out:find("\27[", 1, true))
    end)

    it("draws a progress bar in batch mode", function()
      write(work .. "/fleets.txt", "t1\nt2\n")
      local out = on_tty("webhooks create --fleets-file fleets.txt --url https://example.com/h --out tty.jsonl")
      assert.matches("\r[" .. ("#"):rep(30) .. "] 2/2", out, 1, true)
    end)

    -- The failures' lines under the finished bar, in the order they come.
    local function listed(out, total, names)
      local after = out:sub(out:find("] " .. total .. "/" .. total, 1, true) or error("no finished bar: " .. out))
      local at = {}
      for i, name in ipairs(names) do
        at[i] = after:find("\ncerca: " .. name .. ": ", 1, true)
        assert.is_truthy(at[i], name .. " is not listed: " .. after)
      end
      return at, after
    end

    it("lists the failures again under the bar once it is done, in the file's order, across slices", function()
      write(work .. "/fleets.txt", "t1\n..\nt3\nt4\n.\nt6\n")
      -- Slices of 4 (either variable: a LUA_INIT_5_4 of the caller's would
      -- hide LUA_INIT); the mark says the slice size was set.
      local init = "require('cerca.cli_create').BATCH_SLICE = 4; io.stderr:write('slices of 4\\n')"
      local out = on_tty("webhooks create --fleets-file fleets.txt --url https://example.com/h --out tty2.jsonl"
        .. " --concurrency 1", { LUA_INIT = init, LUA_INIT_5_4 = init })
      assert.matches("slices of 4", out, 1, true)
      local at, after = listed(out, 6, { "..", "." })
      assert.is_true(at[1] < at[2], after)
      assert.matches("cerca: 4 created, 2 failed", after, 1, true)
    end)

    it("lists them in the file's order within a slice too: a refused fleet after one the API turned down", function()
      -- The refused fleet is reported when the items are read, before the
      -- answer of the one sent first.
      write(work .. "/fleets.txt", "t1\n..\nt3\n")
      srv:enqueue { status = 400, body = '{"error":{"message":"fleet t1 refused"}}' }
      local out = on_tty("webhooks create --fleets-file fleets.txt --url https://example.com/h --out tty3.jsonl"
        .. " --concurrency 1")
      local at, after = listed(out, 3, { "t1", ".." })
      assert.is_true(at[1] < at[2], after)
      assert.matches("fleet t1 refused", after, 1, true)
      assert.matches("cerca: 1 created, 2 failed", after, 1, true)
    end)

    it("wipes the bar before a result line on the same terminal: each line starts with its JSON", function()
      write(work .. "/fleets.txt", "t1\nt2\nt3\n")
      local out = on_tty("webhooks create --fleets-file fleets.txt --url https://example.com/h")
      -- What the terminal shows of a line: each CR starts writing over it
      -- from its first column.
      local function shown(line)
        local screen = ""
        for part in (line .. "\r"):gmatch("([^\r]*)\r") do
          screen = part .. screen:sub(#part + 1)
        end
        return (screen:gsub(" +$", ""))
      end
      local results = 0
      for line in out:gmatch("[^\n]+") do
        local visible = shown(line)
        if visible:find('"secret"', 1, true) then
          results = results + 1
          -- The JSON alone: nothing of the bar before or after it.
          assert.matches("^{.*}$", visible)
        end
      end
      assert.are.equal(3, results)
    end)
  end)

  it("prints help, the events and its version", function()
    local out, err, status = run("help")
    assert.are.equal(0, status, err)
    assert.matches("^cerca %- create Cerca webhook subscriptions", out)
    assert.matches("CERCA_CA_FILE", out, 1, true)
    out = run("help webhooks create")
    assert.matches("%-%-fleets%-file", out)
    local range = cerca.webhooks.CONCURRENCY
    assert.matches(("creates in flight at once, %d to %d (default %d)"):format(range.min, range.max, range.default),
      out, 1, true)
    assert.matches("--ca-file FILE", out, 1, true)
    -- Help for any prefix of a command: every command under it.
    for _, args in ipairs { "help webhooks", "webhooks --help" } do
      out, err, status = run(args)
      assert.are.equal(0, status, err)
      assert.matches("cerca webhooks create FLEET", out, 1, true)
      assert.matches("cerca webhooks events", out, 1, true)
    end
    -- No command, or half of one: the usage, on stderr, exit 2.
    for _, args in ipairs { "", "webhooks" } do
      out, err, status = run(args)
      assert.are.equal(2, status)
      assert.are.equal("", out)
      assert.matches("Usage:", err, 1, true)
    end
    out = run("webhooks events")
    assert.are.equal(19, #lines(out))
    assert.are.equal("agent.created", lines(out)[1])
    out = run("--version")
    assert.matches("^cerca 0%.1%.0 %(cerca%-lua; Lua 5%.4; libcurl %d", out)
  end)
end)

describe("the command's modules", function()
  it("use the library through its public module only: each requires cerca and its own parts", function()
    local files = (helpers.sh("ls lua/cerca/cli.lua lua/cerca/cli_*.lua")):gsub("%s+$", "")
    local n = 0
    for file in files:gmatch("%S+") do
      n = n + 1
      for name in helpers.read(file):gmatch("require%s*%(?%s*[\"']([^\"']+)[\"']") do
        assert.is_truthy(name == "cerca" or name:match("^cerca%.cli_%w+$"), file .. " requires " .. name)
      end
    end
    assert.is_true(n >= 3, files)
  end)
end)
