-- Specs of the reference server itself (spec/server/), with the curl command
-- line as the client, so that they do not depend on the SDK they serve.

local cjson = require "cjson"
local launcher = require "spec.server.launcher"

local API_KEY = "sk_test_spec"
local PATH = "/fleets/fleet_abc123/webhooks"

local srv

local quote, read_file = launcher.quote, launcher.read_file

-- One request with curl. `opts` (all optional):
--   method ("POST"), path (PATH), base (srv.http_url), body (string or a
--   table to encode), key (API_KEY; false to send no Authorization),
--   content_type ("application/json"; false for none), headers (list of
--   "Name: value"), args (list of extra raw curl arguments).
-- Returns { exit = curl's exit code, status, headers (lowercased, last
-- value wins), body, json (decoded body or nil), time (seconds, curl's total,
-- its writing of the answer to disk included: what lower bounds read, as
-- nginx's timers run on its cached clock and may end a wait a little
-- early), first_byte (seconds to the answer's first byte: what upper
-- bounds read) }.
local function request(opts)
    opts = opts or {}
    local head_file = srv.prefix .. "/spec-head.txt"
    local body_file = srv.prefix .. "/spec-body.txt"
    local send_file = srv.prefix .. "/spec-send.txt"
    os.remove(head_file)
    os.remove(body_file)
    local words = {
        "curl -q -sS --noproxy '*' --max-time 5 --path-as-is",
        "-D", quote(head_file), "-o", quote(body_file),
        "-w", quote("%{http_code} %{time_total} %{time_starttransfer}"),
        "-X", opts.method or "POST",
    }
    local function add(...)
        for _, word in ipairs { ... } do
            words[#words + 1] = word
        end
    end
    if opts.key ~= false then
        add("-H", quote("Authorization: Bearer " .. (opts.key or API_KEY)))
    end
    if opts.content_type ~= false then
        add("-H", quote("Content-Type: " .. (opts.content_type or "application/json")))
    end
    for _, header in ipairs(opts.headers or {}) do
        add("-H", quote(header))
    end
    local body = opts.body
    if type(body) == "table" then
        body = cjson.encode(body)
    end
    if body then
        local file = assert(io.open(send_file, "wb"))
        file:write(body)
        file:close()
        add("--data-binary", "@" .. quote(send_file))
    end
    for _, arg in ipairs(opts.args or {}) do
        add(arg)
    end
    add(quote((opts.base or srv.http_url) .. (opts.path or PATH)))

    local pipe = assert(io.popen(table.concat(words, " ") .. " 2>/dev/null; echo \" $?\""))
    local output = pipe:read("*a")
    pipe:close()
    local status, time, first_byte, exit = output:match("^(%d+) ([%d.]+) ([%d.]+) (%d+)%s*$")
    assert(exit, "unexpected curl output: " .. output)

    local result = {
        exit = tonumber(exit),
        status = status ~= "000" and tonumber(status) or nil,
        time = tonumber(time),
        first_byte = tonumber(first_byte),
        headers = {},
        body = read_file(body_file) or "",
    }
    -- the last header block is the final response's
    local head = (read_file(head_file) or ""):gsub("\r", "")
    for line in head:gmatch("[^\n]+") do
        if line:match("^HTTP/") then
            result.headers = {}
        else
            local name, value = line:match("^([^:]+):%s*(.-)%s*$")
            if name then
                result.headers[name:lower()] = value
            end
        end
    end
    local ok, json = pcall(cjson.decode, result.body)
    result.json = ok and json or nil
    return result
end

local VALID = { url = "https://example.com/webhook", events = { "agent.created" } }

local IDEMPOTENCY_MISMATCH = '{"error":{"type":"idempotency_error","message":'
    .. '"Idempotency-Key was already used with a different request body"}}'

local function with_key(key, opts)
    opts = opts or {}
    opts.body = opts.body or VALID
    opts.headers = { "Idempotency-Key: " .. key }
    return opts
end

-- Several requests on one curl command line (so on one kept-alive connection
-- where possible). Returns, per request, { status, bytes, connects, body }.
-- (curl's exit code is the last transfer's only, so it is not returned.)
local function requests_on_one_connection(paths)
    local words = { "curl -q -sS --noproxy '*' --max-time 5" }
    local files = {}
    for i, path in ipairs(paths) do
        files[i] = srv.prefix .. "/spec-multi-" .. i .. ".txt"
        os.remove(files[i])
        if i > 1 then
            words[#words + 1] = "--next"
        end
        words[#words + 1] = "-H " .. quote("Authorization: Bearer " .. API_KEY)
            .. " -H 'Content-Type: application/json' --data-binary " .. quote(cjson.encode(VALID))
            .. " -o " .. quote(files[i])
            .. " -w " .. quote("%{http_code} %{size_download} %{num_connects}\\n")
            .. " " .. quote(srv.http_url .. path)
    end
    local pipe = assert(io.popen(table.concat(words, " ") .. " 2>/dev/null"))
    local output = pipe:read("*a")
    pipe:close()
    local results = {}
    for status, bytes, connects in output:gmatch("(%d+) (%d+) (%d+)\n") do
        local i = #results + 1
        results[i] = {
            status = tonumber(status), bytes = tonumber(bytes), connects = tonumber(connects),
            body = read_file(files[i]) or "",
        }
    end
    return results
end

-- Runs `body(server)` against a server of its own, started with `opts`,
-- and stops that server whatever the body does.
local function with_own_server(opts, body)
    local own = launcher.start(opts)
    local ok, err = pcall(body, own)
    own:stop()
    assert(ok, err)
end

describe("reference server", function()
    setup(function()
        srv = launcher.start { api_key = API_KEY, tls = true, workers = 1 }
    end)

    teardown(function()
        if srv then
            srv:stop()
        end
    end)

    before_each(function()
        srv:reset()
    end)

    describe("POST /fleets/{fleetId}/webhooks", function()
        it("creates a subscription", function()
            local res = request { body = VALID }
            assert.are.equal(0, res.exit)
            assert.are.equal(201, res.status)
            assert.are.equal("application/json", res.headers["content-type"])
            assert.truthy(res.headers["x-request-id"]:match("^req_" .. ("%x"):rep(24) .. "$"))

            local sub = res.json
            local fields = 0
            for _ in pairs(sub) do
                fields = fields + 1
            end
            assert.are.equal(8, fields)
            assert.truthy(sub.id:match("^wh_%x+$"))
            assert.are.equal("fleet_abc123", sub.fleetId)
            assert.are.equal(VALID.url, sub.url)
            assert.are.same({ "agent.created" }, sub.events)
            assert.are.equal(true, sub.enabled)
            assert.truthy(sub.createdAt:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"))
            assert.are.equal(sub.createdAt, sub.updatedAt)
            -- 24 random bytes in base64
            assert.truthy(sub.secret:match("^whsec_[%w+/]+$"))
            assert.are.equal(#"whsec_" + 32, #sub.secret)

            assert.are.same({ sub }, srv:subscriptions())
        end)

        it("gives every subscription its own id and secret", function()
            -- random bytes come from a 4 KiB pool: 200 creates refill it twice
            local seen = {}
            for _ = 1, 200 do
                local res = request { body = VALID }
                for _, value in ipairs { res.json.id, res.json.secret, res.headers["x-request-id"] } do
                    assert.is_nil(seen[value], value)
                    seen[value] = true
                end
            end
        end)

        it("answers an empty or omitted event list as []", function()
            local res = request { body = '{"url":"https://example.com/webhook","events":[]}' }
            assert.are.equal(201, res.status)
            assert.truthy(res.body:find('"events":[]', 1, true))
            res = request { body = { url = "https://example.com/webhook" } }
            assert.are.equal(201, res.status)
            assert.truthy(res.body:find('"events":[]', 1, true))
        end)

        it("judges every shape of URL alike, not only the plain one", function()
            for _, url in ipairs {
                "https://example.com", "https://example.com?x=1", "https://example.com#f",
                "HTTPS://Example.com/webhook", "https://example.com:8443/webhook",
                "https://user@example.com/webhook", "https://[::1]/webhook",
            } do
                local res = request { body = { url = url } }
                assert.are.equal(201, res.status, url)
                assert.are.equal(url, res.json.url)
            end
            for _, url in ipairs {
                "https://user@/webhook", "https://:8443/webhook", "https://",
                "https://example.com/a b", "ftp://example.com/webhook",
            } do
                local res = request { body = { url = url } }
                assert.are.equal(422, res.status, url)
                assert.are.equal("url", res.json.error.param)
            end
        end)

        it("writes the subscription as JSON whatever the caller's strings hold", function()
            local url = 'https://example.com/a"b\\c/\195\169'
            local res = request { path = "/fleets/q%22%5C%2F/webhooks", body = { url = url } }
            assert.are.equal(201, res.status)
            assert.are.equal(url, res.json.url)
            assert.are.equal('q"\\/', res.json.fleetId)
            assert.are.same({}, res.json.events)
            assert.are.equal(true, res.json.enabled)
            assert.are.equal(res.json.createdAt, res.json.updatedAt)
            assert.truthy(res.json.createdAt:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"))
            assert.truthy(res.json.id:match("^wh_%x+$"))
            assert.truthy(res.json.secret:match("^whsec_[%w+/]+=*$"))
            -- the fields in the order the API writes them
            local at = {}
            for _, field in ipairs { "id", "fleetId", "url", "events", "enabled", "createdAt", "updatedAt",
                "secret" } do
                at[#at + 1] = assert(res.body:find('"' .. field .. '":', 1, true), field)
            end
            for i = 2, #at do assert.is_true(at[i] > at[i - 1]) end
        end)

        it("accepts the Bearer scheme in any case, with spaces around the key", function()
            for _, value in ipairs { "bearer " .. API_KEY, "BEARER   " .. API_KEY .. "  " } do
                local res = request { key = false, headers = { "Authorization: " .. value }, body = VALID }
                assert.are.equal(201, res.status, value)
            end
        end)

        it("accepts keys the contract does not name", function()
            local res = request { body = { url = "https://example.com/webhook", description = "x" } }
            assert.are.equal(201, res.status)
        end)

        it("decodes the fleet id from the one raw path segment", function()
            local res = request { path = "/fleets/a%2Fb%20c+d/webhooks", body = VALID }
            assert.are.equal(201, res.status)
            assert.are.equal("a/b c+d", res.json.fleetId)
            assert.are.equal("/fleets/a%2Fb%20c+d/webhooks", srv:requests()[1].uri)
        end)

        it("answers 401 without an Authorization header", function()
            local res = request { key = false, body = VALID }
            assert.are.equal(401, res.status)
            assert.are.equal("authentication_error", res.json.error.type)
            assert.truthy(res.headers["x-request-id"])
            assert.are.equal(1, #srv:requests())
            assert.are.same({}, srv:subscriptions())
        end)

        it("answers 401 with a wrong key, without echoing it", function()
            local res = request { key = "sk_test_wrong", body = VALID }
            assert.are.equal(401, res.status)
            assert.are.equal("authentication_error", res.json.error.type)
            assert.falsy(res.body:find("sk_test_wrong", 1, true))
        end)

        local invalid = {
            {
                "a reserved event", { url = VALID.url, events = { "webhook.test" } },
                "events[0]", "reserved",
            },
            {
                "an unknown event", { url = VALID.url, events = { "agent.created", "agent.exploded" } },
                "events[1]", "unknown event",
            },
            { "a missing url", { events = { "agent.created" } }, "url", "required" },
            { "an http url", { url = "http://example.com/webhook" }, "url", "https" },
            { "a url without host", { url = "https:///webhook" }, "url", "host" },
            { "events as an object", '{"url":"https://example.com/webhook","events":{}}', "events", "array" },
            {
                "events as an object with members",
                '{"url":"https://example.com/webhook","events":{"1":"agent.created"}}', "events", "array",
            },
            { "a null event", '{"url":"https://example.com/webhook","events":[null]}', "events[0]", "string" },
            { "events as a string", { url = VALID.url, events = "agent.created" }, "events", "array" },
        }
        for _, case in ipairs(invalid) do
            local what, body, param, message = case[1], case[2], case[3], case[4]
            it("answers 422 for " .. what, function()
                local res = request { body = body }
                assert.are.equal(422, res.status)
                assert.are.equal("invalid_request_error", res.json.error.type)
                assert.are.equal(param, res.json.error.param)
                assert.truthy(res.json.error.message:find(message, 1, true))
                assert.truthy(res.headers["x-request-id"])
                assert.are.same({}, srv:subscriptions())
            end)
        end

        it("answers 400 for a body that is not a JSON object", function()
            for _, body in ipairs { "not json", "[]", '"https://example.com"' } do
                local res = request { body = body }
                assert.are.equal(400, res.status)
                assert.are.equal("invalid_request_error", res.json.error.type)
            end
            local res = request { body = VALID, content_type = "text/plain" }
            assert.are.equal(400, res.status)
        end)

        it("answers 404 elsewhere", function()
            for _, case in ipairs {
                { method = "GET" },
                { path = "/fleets//webhooks" },
                { path = "/fleets/a/b/webhooks" },
                { path = "/nowhere" },
            } do
                case.body = VALID
                local res = request(case)
                assert.are.equal(404, res.status)
                assert.are.equal("not_found_error", res.json.error.type)
            end
        end)
    end)

    describe("recording", function()
        it("keeps method, raw uri, headers, raw header and body, in order", function()
            local body = '{"url":"https://example.com/webhook"}'
            request { body = body, headers = { "X-Trace: one", "X-Trace: two" } }
            request { method = "GET", path = "/second?x=%41" }
            local recorded = srv:requests()
            assert.are.equal(2, #recorded)

            local first = recorded[1]
            assert.are.equal("POST", first.method)
            assert.are.equal(PATH, first.uri)
            assert.are.equal(body, first.body)
            assert.are.equal("http", first.port)
            assert.are.equal("Bearer " .. API_KEY, first.headers.authorization)
            assert.are.equal("one, two", first.headers["x-trace"])
            assert.truthy(first.raw_header:find("X-Trace: one\r\nX-Trace: two\r\n", 1, true))

            assert.are.equal("GET", recorded[2].method)
            assert.are.equal("/second?x=%41", recorded[2].uri)
            assert.are.equal("", recorded[2].body)
        end)

        it("does not record control requests", function()
            srv:requests()
            srv:subscriptions()
            assert.are.same({}, srv:requests())
        end)

        it("forgets requests, subscriptions and scripts on reset", function()
            request { body = VALID }
            srv:enqueue { action = "drop" }
            srv:reset()
            assert.are.same({}, srv:requests())
            assert.are.same({}, srv:subscriptions())
            assert.are.equal(201, request { body = VALID }.status)
        end)

        it("makes nothing for a request still waiting out its delay when reset: it is the test before's",
            function()
            -- A create that waits 0.5 s, sent in the background; reset once
            -- it has arrived.
            srv:enqueue { action = "pass", delay = 0.5 }
            local out = srv.prefix .. "/spec-late.txt"
            os.remove(out)
            os.execute(table.concat({ "(curl -q -sS --noproxy '*' --max-time 5 -o /dev/null -w '%{http_code}'",
                "-X POST -H", quote("Authorization: Bearer " .. API_KEY), "-H 'Content-Type: application/json'",
                "--data-binary", quote(cjson.encode(VALID)), quote(srv.http_url .. PATH), "2>/dev/null;",
                "echo \" $?\") >", quote(out), "&" }, " "))
            local waited = 0
            while #srv:requests() == 0 do
                assert(waited < 400, "the request did not arrive")
                os.execute("sleep 0.01")
                waited = waited + 1
            end
            srv:reset()
            waited = 0
            while not (read_file(out) or ""):match(" %d+%s*$") do
                assert(waited < 700, "curl did not end")
                os.execute("sleep 0.01")
                waited = waited + 1
            end
            -- No answer (curl: 52, empty reply), and nothing made.
            assert.are.equal("000 52", (read_file(out):gsub("%s+$", "")))
            assert.are.same({}, srv:subscriptions())
            assert.are.same({}, srv:idempotency_keys())
            assert.are.equal(201, request { body = VALID }.status)
            assert.are.equal(1, #srv:subscriptions())
        end)
    end)

    describe("scripts", function()
        it("respond: answers exactly the scripted reply, first in first out", function()
            srv:enqueue {
                status = 503,
                headers = { ["Retry-After"] = "7", ["X-Custom"] = "yes" },
                body = '{"error":{"type":"overloaded"}}',
            }
            srv:enqueue { status = 418, body = "teapot", headers = { ["Content-Type"] = "text/plain" } }

            local res = request { body = VALID }
            assert.are.equal(503, res.status)
            assert.are.equal("7", res.headers["retry-after"])
            assert.are.equal("yes", res.headers["x-custom"])
            assert.are.equal('{"error":{"type":"overloaded"}}', res.body)

            res = request { body = VALID }
            assert.are.equal(418, res.status)
            assert.are.equal("text/plain", res.headers["content-type"])
            assert.are.equal("teapot", res.body)

            assert.are.equal(201, request { body = VALID }.status)
            assert.are.equal(1, #srv:subscriptions())
            assert.are.equal(3, #srv:requests())
        end)

        it("delay: waits before answering", function()
            srv:enqueue { delay = 0.3 }
            local res = request { body = VALID }
            assert.are.equal(201, res.status)
            assert.is_true(res.time >= 0.3)
        end)

        it("drop: closes the connection without an answer", function()
            srv:enqueue { action = "drop" }
            local res = request { body = VALID }
            assert.are.equal(52, res.exit)  -- curl: empty reply from server
            assert.is_nil(res.status)
            assert.are.same({}, srv:subscriptions())
            assert.are.equal(1, #srv:requests())
        end)

        it("create_then_drop: stores the subscription, then hangs up", function()
            srv:enqueue { action = "create_then_drop" }
            local res = request { body = VALID }
            assert.are.equal(52, res.exit)
            local subs = srv:subscriptions()
            assert.are.equal(1, #subs)
            assert.are.equal("fleet_abc123", subs[1].fleetId)
        end)

        it("trickle: sends the body a byte at a time", function()
            srv:enqueue { action = "trickle", body = "abcd", interval = 0.05 }
            local res = request { body = VALID }
            assert.are.equal(201, res.status)
            assert.are.equal("abcd", res.body)
            assert.is_true(res.time >= 0.2)

            srv:enqueue { action = "trickle", body = "abcd", interval = 0.5 }
            res = request { body = VALID, args = { "--max-time 0.3" } }
            assert.are.equal(28, res.exit)  -- curl: timeout
        end)

        it("pass with a delay: runs the real API after the delay", function()
            srv:enqueue { action = "pass", delay = 0.2 }
            local res = request { body = VALID }
            assert.are.equal(201, res.status)
            assert.is_true(res.time >= 0.2)
            assert.are.same({ res.json }, srv:subscriptions())
        end)

        it("partial: full Content-Length, half the body, then the connection closes", function()
            local body = ("0123456789"):rep(10)
            srv:enqueue { action = "partial", body = body, headers = { ["X-Custom"] = "yes" } }
            local res = request { body = VALID }
            assert.are.equal(18, res.exit)  -- curl: transfer closed with bytes remaining
            assert.are.equal(201, res.status)
            assert.are.equal("100", res.headers["content-length"])
            assert.are.equal("yes", res.headers["x-custom"])
            assert.are.equal(body:sub(1, 50), res.body)
            assert.are.same({}, srv:subscriptions())
            assert.are.same({}, srv:idempotency_keys())

            srv:enqueue { action = "partial", status = 503, body = body, bytes = 7 }
            res = request { base = srv.https_url, body = VALID, args = { "--cacert " .. quote(srv.ca_file) } }
            assert.are.equal(18, res.exit)
            assert.are.equal(503, res.status)
            assert.are.equal(body:sub(1, 7), res.body)
        end)

        it("partial: cuts a kept-alive connection; the next request gets a new one", function()
            srv:enqueue { action = "pass" }
            srv:enqueue { action = "partial", body = ("x"):rep(40) }
            local results = requests_on_one_connection { PATH, PATH, PATH }
            assert.are.equal(3, #results)
            assert.are.same({ 201, 201, 201 }, { results[1].status, results[2].status, results[3].status })
            assert.are.equal(1, results[1].connects)
            assert.are.equal(0, results[2].connects)  -- reused, then cut
            assert.are.equal(("x"):rep(20), results[2].body)
            assert.are.equal(1, results[3].connects)
            assert.are.equal(2, #srv:subscriptions())
            local recorded = srv:requests()
            assert.are.equal(recorded[1].connection, recorded[2].connection)
            assert.are_not.equal(recorded[2].connection, recorded[3].connection)
        end)

        it("create_then_partial: stores the subscription, then cuts its answer", function()
            srv:enqueue { action = "create_then_partial" }
            local res = request { body = VALID }
            assert.are.equal(18, res.exit)
            assert.are.equal(201, res.status)
            assert.truthy(res.headers["x-request-id"])
            local subs = srv:subscriptions()
            assert.are.equal(1, #subs)
            local full = cjson.encode(subs[1])  -- only for its length
            assert.truthy(#res.body < #full)
            assert.are.equal(subs[1].id, res.body:match('"id":"([^"]*)"'))
        end)

        it("rejects a malformed script", function()
            assert.has_error(function()
                srv:enqueue { action = "explode" }
            end)
            assert.has_error(function()
                srv:enqueue { action = "respond" }
            end)
            assert.has_error(function()
                srv:enqueue { action = "partial" }
            end)
            assert.has_error(function()
                srv:enqueue { action = "create_then_partial", bytes = -1 }
            end)
        end)
    end)

    describe("Idempotency-Key", function()
        it("replays the stored answer for the same key and body, creating nothing", function()
            local first = request(with_key("key-1"))
            local again = request(with_key("key-1"))
            assert.are.equal(201, first.status)
            assert.is_nil(first.headers["idempotent-replayed"])
            assert.are.equal(201, again.status)
            assert.are.equal(first.body, again.body)  -- same id, same secret, same bytes
            assert.are.equal("true", again.headers["idempotent-replayed"])
            assert.are.equal("application/json", again.headers["content-type"])
            assert.truthy(again.headers["x-request-id"]:match("^req_%x+$"))
            assert.are_not.equal(first.headers["x-request-id"], again.headers["x-request-id"])
            assert.are.same({ first.json }, srv:subscriptions())
            assert.are.same({ "key-1" }, srv:idempotency_keys())
            assert.are.equal(2, #srv:requests())
        end)

        it("answers 422 for the same key with another body, creating nothing", function()
            local first = request(with_key("key-2"))
            local other = request(with_key("key-2", { body = { url = "https://example.com/other" } }))
            assert.are.equal(422, other.status)
            assert.are.equal(IDEMPOTENCY_MISMATCH, other.body)
            assert.truthy(other.headers["x-request-id"])
            -- byte-identical, not merely equivalent JSON
            other = request(with_key("key-2", { body = cjson.encode(VALID) .. " " }))
            assert.are.equal(422, other.status)
            assert.are.same({ first.json }, srv:subscriptions())
        end)

        it("without the header, two creates make two subscriptions", function()
            local a = request { body = VALID }
            local b = request { body = VALID }
            assert.are_not.equal(a.json.id, b.json.id)
            assert.are.equal(2, #srv:subscriptions())
            assert.are.same({}, srv:idempotency_keys())
        end)

        it("checks the API key first and stores no failed answer", function()
            local res = request(with_key("key-3", { key = "sk_test_wrong" }))
            assert.are.equal(401, res.status)
            assert.are.same({}, srv:idempotency_keys())

            res = request(with_key("key-3", { body = { url = "http://example.com/webhook" } }))
            assert.are.equal(422, res.status)
            assert.are.equal("url", res.json.error.param)
            assert.are.same({}, srv:idempotency_keys())

            -- a corrected retry with the same key goes through
            res = request(with_key("key-3"))
            assert.are.equal(201, res.status)
            assert.is_nil(res.headers["idempotent-replayed"])
            assert.are.same({ "key-3" }, srv:idempotency_keys())
            assert.are.equal(1, #srv:subscriptions())
        end)

        it("a respond script answers without touching the store", function()
            srv:enqueue { status = 503, body = "{}" }
            assert.are.equal(503, request(with_key("key-4")).status)
            assert.are.same({}, srv:idempotency_keys())
            local res = request(with_key("key-4"))
            assert.are.equal(201, res.status)
            assert.is_nil(res.headers["idempotent-replayed"])
        end)

        it("create_then_drop stores the answer: the retry gets the subscription", function()
            srv:enqueue { action = "create_then_drop" }
            local dropped = request(with_key("key-5"))
            assert.are.equal(52, dropped.exit)
            local retry = request(with_key("key-5"))
            assert.are.equal(201, retry.status)
            assert.are.equal("true", retry.headers["idempotent-replayed"])
            local subs = srv:subscriptions()
            assert.are.equal(1, #subs)
            assert.are.same(subs[1], retry.json)
        end)

        it("create_then_partial stores the answer: the retry gets it whole", function()
            srv:enqueue { action = "create_then_partial" }
            local cut = request(with_key("key-6"))
            assert.are.equal(18, cut.exit)
            local retry = request(with_key("key-6"))
            assert.are.equal(201, retry.status)
            assert.are.equal("true", retry.headers["idempotent-replayed"])
            assert.are.equal(math.floor(#retry.body / 2), #cut.body)
            assert.are.equal(retry.body:sub(1, #cut.body), cut.body)
            local subs = srv:subscriptions()
            assert.are.equal(1, #subs)
            assert.are.same(subs[1], retry.json)
        end)

        it("is forgotten on reset", function()
            local first = request(with_key("key-7"))
            srv:reset()
            assert.are.same({}, srv:idempotency_keys())
            local res = request(with_key("key-7"))
            assert.are.equal(201, res.status)
            assert.are_not.equal(first.json.id, res.json.id)
        end)
    end)

    describe("launcher options", function()
        it("lean: validates and answers, records and stores nothing", function()
            with_own_server({ api_key = API_KEY, tls = false, lean = true }, function(lean)
                local ids = {}
                for _ = 1, 2 do
                    local res = request(with_key("key-lean", { base = lean.http_url }))
                    assert.are.equal(201, res.status)
                    assert.truthy(res.headers["x-request-id"]:match("^req_%x+$"))
                    assert.is_nil(res.headers["idempotent-replayed"])
                    ids[#ids + 1] = res.json.id
                end
                assert.are_not.equal(ids[1], ids[2])
                assert.are.equal(422, request { base = lean.http_url, body = { url = "ftp://x" } }.status)
                assert.are.equal(401, request { base = lean.http_url, key = false, body = VALID }.status)
                assert.are.same({}, lean:requests())
                assert.are.same({}, lean:subscriptions())
                assert.are.same({}, lean:idempotency_keys())
                -- scripts still apply
                lean:enqueue { status = 503, body = "{}" }
                assert.are.equal(503, request { base = lean.http_url, body = VALID }.status)
            end)
        end)

        it("delay: every API request without a script waits that long", function()
            with_own_server({ api_key = API_KEY, tls = false, delay = 0.2 }, function(slow)
                local res = request { base = slow.http_url, body = VALID }
                assert.are.equal(201, res.status)
                assert.is_true(res.time >= 0.2)
                res = request { base = slow.http_url, key = false, body = VALID }
                assert.are.equal(401, res.status)
                assert.is_true(res.time >= 0.2)
                -- a queued script brings its own delay (none here); read at
                -- the first byte: curl's total includes writing the answer
                -- to disk, which other writes on the machine can hold
                slow:enqueue { status = 204, body = "" }
                res = request { base = slow.http_url, body = VALID }
                assert.are.equal(204, res.status)
                assert.is_true(res.first_byte < 0.2)
            end)
        end)

        it("delay in lean mode: the answer is made on arrival and sent after the delay", function()
            with_own_server({ api_key = API_KEY, tls = false, lean = true, delay = 0.2 }, function(slow)
                local res = request { base = slow.http_url, body = VALID }
                assert.are.equal(201, res.status)
                assert.truthy(res.json.secret:match("^whsec_"))
                assert.is_true(res.time >= 0.2)
                res = request { base = slow.http_url, key = false, body = VALID }
                assert.are.equal(401, res.status)
                assert.is_true(res.time >= 0.2)
                res = request { base = slow.http_url, body = { url = "ftp://x" } }
                assert.are.equal(422, res.status)
                assert.is_true(res.time >= 0.2)
                slow:enqueue { status = 204, body = "" }
                res = request { base = slow.http_url, body = VALID }
                assert.are.equal(204, res.status)
                assert.is_true(res.time < 0.2)
            end)
        end)

        it("keeps the memory a wave of requests used (glibc does not trim it)", function()
            -- Without MALLOC_TRIM_THRESHOLD_ (see the launcher), the worker
            -- gives its heap back after each wave of requests held open,
            -- and page-faults it in again on the next: that, not the
            -- delay, set the pace of the batch benchmarks.
            with_own_server({ api_key = API_KEY, tls = false, lean = true, delay = 0.05 }, function(slow)
                local master = read_file(slow.prefix .. "/logs/nginx.pid"):match("%d+")
                local worker = read_file("/proc/" .. master .. "/task/" .. master .. "/children"):match("%d+")
                local function heap_kib()
                    local smaps = read_file("/proc/" .. worker .. "/smaps")
                    return tonumber(smaps:match("%[heap%]\n.-\nRss:%s*(%d+)"))
                end
                local before = heap_kib()
                local out = io.popen("curl -s --no-progress-meter -o /dev/null -w '%{http_code}\\n'"
                    .. " --parallel --parallel-max 300 -X POST -H 'Content-Type: application/json'"
                    .. " -H " .. quote("Authorization: Bearer " .. API_KEY) .. " -d " .. quote(cjson.encode(VALID))
                    .. " " .. quote(slow.http_url .. "/fleets/f[1-300]/webhooks"))
                local statuses = out:read("*a")
                out:close()
                local _, created = statuses:gsub("201", "")
                assert.are.equal(300, created)
                local after = heap_kib()
                assert.is_true(after >= before + 1024, string.format("heap %d KiB before, %d KiB after", before, after))
            end)
        end)

        it("rejects bad options", function()
            assert.has_error(function()
                launcher.start { lean = "yes" }
            end)
            assert.has_error(function()
                launcher.start { delay = -1 }
            end)
        end)
    end)

    describe("TLS", function()
        it("serves the API over HTTPS to a client trusting the test CA", function()
            for _, base in ipairs { srv.https_url, srv.https_ip_url } do
                local res = request { base = base, body = VALID, args = { "--cacert " .. quote(srv.ca_file) } }
                assert.are.equal(0, res.exit)
                assert.are.equal(201, res.status)
            end
            local recorded = srv:requests()
            assert.are.equal("https", recorded[1].port)
        end)

        it("fails the handshake for a client not trusting it, recording nothing", function()
            local res = request { base = srv.https_url, body = VALID }
            assert.are.equal(60, res.exit)  -- curl: peer certificate cannot be authenticated
            assert.are.same({}, srv:requests())
        end)
    end)

    describe("stop", function()
        it("is idempotent and frees the port", function()
            local other = launcher.start { tls = false }
            assert.is_nil(other.https_url)
            assert.are.equal("sk_test_cerca", other.api_key)
            local res = request { base = other.http_url, key = "sk_test_cerca", body = VALID }
            assert.are.equal(201, res.status)

            assert.is_true(other:stop())
            assert.is_true(other:stop())
            res = request { base = other.http_url, body = VALID }
            assert.are.equal(7, res.exit)  -- curl: could not connect
            assert.is_nil(io.open(other.prefix .. "/conf/nginx.conf"))
        end)
    end)
end)
