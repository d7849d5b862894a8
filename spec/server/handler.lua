-- Reference server for the cerca-lua specs: the code nginx runs.
--
-- It implements `POST /fleets/{fleetId}/webhooks` as the API contract
-- describes it, records every API request it receives, and can be told, per
-- request, to misbehave (answer something else, stall, trickle, hang up).
-- Its state lives in one lua_shared_dict, so it is shared by all workers.
-- It honours `Idempotency-Key` on creates the way the Cerca API is assumed to:
-- a successful create is stored under its key and replayed for the same key
-- and the same body.
--
-- Entry points, wired in the nginx.conf that spec/server/launcher.lua writes:
--   init()     init_by_lua: reads conf/server.json (API key, lean, delay) in the prefix
--   api()      every request on the API ports
--   control()  /__control/* on the HTTP port (never recorded)

-- luacheck: globals ngx

local cjson = require "cjson.safe"

local type, pairs, ipairs, next, tonumber, tostring = type, pairs, ipairs, next, tonumber, tostring
local concat, sort = table.concat, table.sort
local byte, char, format = string.byte, string.char, string.format
local floor = math.floor
local io_open, os_date = io.open, os.date

local _M = {}

local DICT_NAME = "cerca_server"

-- The event names a subscription may list (the contract's enum, minus
-- `webhook.test`, which is reserved).
local EVENTS = {}
for _, name in ipairs {
    "agent.created", "agent.updated", "agent.deleted",
    "thread.created", "thread.status.changed", "thread.completed", "thread.failed",
    "turn.created", "turn.completed", "turn.failed",
    "message.created",
    "approval.requested", "approval.resolved", "approval.granted",
    "schedule.created", "schedule.deleted", "schedule.triggered",
    "connection.attached", "connection.detached",
} do
    EVENTS[name] = true
end
local RESERVED_EVENT = "webhook.test"

local ACTIONS = {
    respond = true, pass = true, drop = true, create_then_drop = true, trickle = true,
    partial = true, create_then_partial = true, raw = true,
}

local DEFAULT_TRICKLE_INTERVAL = 0.5

-- The answer to a reused Idempotency-Key with another body. A literal, so
-- that its bytes are fixed (cjson would order the members at random).
local IDEMPOTENCY_MISMATCH = '{"error":{"type":"idempotency_error","message":'
    .. '"Idempotency-Key was already used with a different request body"}}'

-- Reason phrases for the status lines written by hand (`partial`).
local REASONS = {
    [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
    [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
    [404] = "Not Found", [409] = "Conflict", [422] = "Unprocessable Entity",
    [429] = "Too Many Requests", [500] = "Internal Server Error",
    [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local config = {}

-- Shared state -------------------------------------------------------------

local function _dict()
    return ngx.shared[DICT_NAME]
end

-- How many resets there have been: a request that arrived before a reset
-- belongs to the test before it, and must not act after it (see _M.api).
local function _epoch()
    return _dict():get("epoch") or 0
end

-- Appends a JSON text to the named list. A counter gives each entry its
-- place, so order is arrival order across all workers. (The shared dict's own
-- lists cannot be read without popping them.)
local function _append(list, json)
    local dict = _dict()
    local n, err = dict:incr(list .. ":n", 1, 0)
    if not n then
        error(format("cannot count %s: %s", list, err))
    end
    -- safe_set never evicts older entries to make room: better to fail loudly
    -- than to silently lose a recorded request.
    local ok
    ok, err = dict:safe_set(list .. ":" .. n, json)
    if not ok then
        error(format("cannot store %s #%d: %s", list, n, err))
    end
end

-- The named list as a JSON array text. Entries are stored encoded, so a
-- subscription keeps `"events":[]` exactly as it was sent.
local function _list_json(list)
    local dict = _dict()
    local parts = {}
    for i = 1, dict:get(list .. ":n") or 0 do
        -- an entry counted but not yet stored belongs to a request in flight
        local json = dict:get(list .. ":" .. i)
        if json then
            parts[#parts + 1] = json
        end
    end
    return "[" .. concat(parts, ",") .. "]"
end

-- Randomness and formats ---------------------------------------------------

-- Bytes from /dev/urandom are read 4 KiB at a time into a pool that belongs
-- to one process: a pool filled before a fork (in the master, at
-- init_by_lua time) would hand every worker the same bytes, so it is
-- refilled whenever the process is not the one that filled it. The handle
-- reads unbuffered, so the pool is the only buffer and a handle shared
-- across a fork hands out no byte twice.
local POOL_SIZE = 4096
local urandom, pool, pool_at, pool_pid = nil, "", 1, nil

local function _random_bytes(n)
    local pid = ngx.worker.pid()
    if pool_pid ~= pid or pool_at + n - 1 > #pool then
        if not urandom then
            urandom = assert(io_open("/dev/urandom", "rb"))
            urandom:setvbuf("no")
        end
        pool = urandom:read(POOL_SIZE)
        if not pool or #pool ~= POOL_SIZE then
            error("short read from /dev/urandom")
        end
        pool_at, pool_pid = 1, pid
    end
    local bytes = pool:sub(pool_at, pool_at + n - 1)
    pool_at = pool_at + n
    return bytes
end

local HEX_FORMATS = {}

-- One string.format call rather than a closure per byte: this runs on every
-- create, lean ones included.
local function _random_hex(n)
    local fmt = HEX_FORMATS[n]
    if not fmt then
        fmt = ("%02x"):rep(n)
        HEX_FORMATS[n] = fmt
    end
    return format(fmt, byte(_random_bytes(n), 1, n))
end

local function _request_id()
    return "req_" .. _random_hex(12)
end

local function _timestamp()
    ngx.update_time()
    local now = ngx.now()
    local seconds = floor(now)
    return os_date("!%Y-%m-%dT%H:%M:%S", seconds)
        .. format(".%03dZ", floor((now - seconds) * 1000))
end

-- Decodes %XX escapes only. ngx.unescape_uri would also turn "+" into a
-- space, which is right for form data but wrong for a path segment.
-- (A function made once: a closure made per call would keep LuaJIT from
-- compiling the handler.)
local function _hex_byte(hex)
    return char(tonumber(hex, 16))
end

local function _percent_decode(s)
    return (s:gsub("%%(%x%x)", _hex_byte))
end

-- Raw JSON inspection ------------------------------------------------------
--
-- Debian's lua-cjson 2.1.0 decodes `[]` and `{}` to the same empty table and
-- has no decode_array_with_array_mt. Whether a member was sent as an array is
-- therefore read from the raw text: the first character of its value. The
-- text has already been accepted by cjson, so these scanners can trust its
-- structure.

-- `i` is at an opening quote; returns the index just past the closing one.
local function _skip_string(s, i)
    i = i + 1
    while true do
        local j = s:find('["\\]', i)
        if not j then
            return #s + 1
        end
        if byte(s, j) == 92 then  -- backslash: skip the escaped character
            i = j + 2
        else
            return j + 1
        end
    end
end

-- `i` is at the first character of a value; returns the index just past it.
local function _skip_value(s, i)
    local c = s:sub(i, i)
    if c == '"' then
        return _skip_string(s, i)
    end
    if c ~= "{" and c ~= "[" then  -- number, true, false, null
        return s:find("[,}%]%s]", i) or #s + 1
    end
    local depth = 0
    repeat
        i = s:find('[%[%]{}"]', i)
        if not i then
            return #s + 1
        end
        c = s:sub(i, i)
        if c == '"' then
            i = _skip_string(s, i)
        else
            depth = depth + ((c == "{" or c == "[") and 1 or -1)
            i = i + 1
        end
    until depth == 0
    return i
end

-- For a JSON object text, maps each top-level key to the first character of
-- its value ("[" for an array, "{" for an object, ...). The last duplicate
-- wins, as it does in cjson.
local function _member_kinds(s)
    local kinds = {}
    local i = s:find("%S", s:find("{", 1, true) + 1)
    while i and s:sub(i, i) == '"' do
        local key_end = _skip_string(s, i)
        local key = cjson.decode(s:sub(i, key_end - 1))
        i = s:find("%S", s:find(":", key_end, true) + 1)
        kinds[key] = s:sub(i, i)
        i = s:find("%S", _skip_value(s, i))
        if not i or s:sub(i, i) ~= "," then
            break
        end
        i = s:find("%S", i + 1)
    end
    return kinds
end

-- Whether the member `key` of the object text `raw`, decoded by cjson into
-- the table `value`, was sent as an array. cjson decodes a non-empty array
-- to the keys 1..n (a null to cjson.null, not nil) and an object to string
-- keys only, so only an empty table needs the raw text.
local function _sent_as_array(value, raw, key)
    if value[1] ~= nil then
        return true
    end
    if next(value) ~= nil then
        return false
    end
    return _member_kinds(raw)[key] == "["
end

-- Responses ----------------------------------------------------------------

local function _error_body(err_type, message, param)
    return cjson.encode { error = { type = err_type, message = message, param = param } }
end

-- Sets status and headers. Content-Length comes first, so that a body is
-- sent with a declared length rather than chunked, unless the headers given
-- carry their own (a script may set a wrong one on purpose).
local function _set_head(status, headers, length)
    ngx.status = status
    ngx.header["Content-Length"] = length
    for name, value in pairs(headers or {}) do
        ngx.header[name] = value
    end
end

local function _send(status, headers, body)
    body = body or ""
    _set_head(status, headers, #body)
    ngx.print(body)
    return ngx.exit(ngx.OK)
end

-- Sends the status and headers at once, then the body one byte at a time,
-- sleeping `interval` seconds before each byte.
local function _trickle(status, headers, body, interval)
    _set_head(status, headers, #body)
    ngx.send_headers()
    ngx.flush(true)
    for i = 1, #body do
        ngx.sleep(interval)
        ngx.print(body:sub(i, i))
        if not ngx.flush(true) then
            return ngx.exit(444)  -- the client is gone
        end
    end
    return ngx.exit(ngx.OK)
end

-- `base` with the headers of `extra` added, an `extra` header replacing the
-- `base` one of the same name in any case.
local function _merge_headers(base, extra)
    if not extra or next(extra) == nil then
        return base
    end
    local merged = {}
    local replaced = {}
    for name in pairs(extra) do
        replaced[name:lower()] = true
    end
    for name, value in pairs(base) do
        if not replaced[name:lower()] then
            merged[name] = value
        end
    end
    for name, value in pairs(extra) do
        merged[name] = value
    end
    return merged
end

-- Sends the status line and headers with a Content-Length of the whole body,
-- then only its first `bytes` bytes (default: half), then closes the
-- connection: the client sees a transfer cut mid-body.
--
-- The response is written by hand on the raw downstream socket
-- (ngx.req.socket(true)), and the request then ends with ngx.exit(ngx.OK).
-- Acquiring the raw socket turns keep-alive off for the connection, so nginx
-- closes it at once; on HTTPS it closes the TLS session properly
-- (close_notify), so the only fault a client sees is the short body, whatever
-- its TLS library. Through nginx's own output (ngx.print + ngx.flush), the
-- request would have to end with ngx.exit(444): ngx.exit(ngx.OK) after a
-- short body leaves a keep-alive connection open and the client waits for
-- the missing bytes until keepalive_timeout; and 444 closes a TLS connection
-- without close_notify, which OpenSSL reports as "unexpected eof while
-- reading" (curl 7.88 still says "transfer closed", other clients may not).
local function _partial(status, headers, body, bytes)
    local length = #body
    local sent = bytes or floor(length / 2)
    if sent > length then
        sent = length
    end
    headers = _merge_headers({
        ["Content-Type"] = "application/json",
        ["Content-Length"] = tostring(length),
        ["Date"] = ngx.http_time(ngx.time()),
    }, headers)
    local names = {}
    for name in pairs(headers) do
        names[#names + 1] = name
    end
    sort(names)
    local lines = { format("HTTP/1.1 %d %s", status, REASONS[status] or "") }
    for _, name in ipairs(names) do
        local value = headers[name]
        for _, v in ipairs(type(value) == "table" and value or { value }) do
            lines[#lines + 1] = name .. ": " .. tostring(v)
        end
    end
    lines[#lines + 1] = ""
    lines[#lines + 1] = body:sub(1, sent)

    -- the request body has been read (recorded) already, as the raw socket
    -- requires
    local sock, err = ngx.req.socket(true)
    if not sock then
        ngx.log(ngx.ERR, "partial: cannot take the raw socket: ", err)
        return ngx.exit(444)
    end
    local ok
    ok, err = sock:send(concat(lines, "\r\n"))
    if not ok then
        ngx.log(ngx.INFO, "partial: send failed: ", err)  -- the client is gone
    end
    return ngx.exit(ngx.OK)
end

-- Sends `bytes` verbatim on the raw downstream socket, then closes the
-- connection: no status line, headers or framing of nginx's own. For
-- answers no HTTP server would give (garbage, endless interim answers,
-- header lines of any shape). Closes as `_partial` does, and for the same
-- reasons.
local function _raw(bytes)
    local sock, err = ngx.req.socket(true)
    if not sock then
        ngx.log(ngx.ERR, "raw: cannot take the raw socket: ", err)
        return ngx.exit(444)
    end
    local ok
    ok, err = sock:send(bytes)
    if not ok then
        ngx.log(ngx.INFO, "raw: send failed: ", err)  -- the client is gone
    end
    return ngx.exit(ngx.OK)
end

-- Recording ----------------------------------------------------------------

local function _read_body()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if body then
        return body
    end
    -- a body larger than client_body_buffer_size was buffered to a file
    local path = ngx.req.get_body_file()
    if not path then
        return ""
    end
    local file = assert(io_open(path, "rb"))
    body = file:read("*a")
    file:close()
    return body
end

-- Records the request as received and returns its raw body.
local function _record()
    local body = _read_body()
    local headers = {}
    -- names come lowercased; a repeated header comes as a list
    for name, value in pairs(ngx.req.get_headers(1000)) do
        if type(value) == "table" then
            value = concat(value, ", ")
        end
        headers[name] = value
    end
    ngx.update_time()
    local var = ngx.var
    _append("requests", cjson.encode {
        method = ngx.req.get_method(),
        uri = var.request_uri,
        headers = headers,
        raw_header = ngx.req.raw_header(),
        body = body,
        port = var.scheme,
        http_version = ngx.req.http_version(),
        time = ngx.now(),
        connection = tonumber(var.connection),
        connection_requests = tonumber(var.connection_requests),
    })
    return body
end

-- The real API -------------------------------------------------------------

local function _authorization_error(headers_in)
    local value = headers_in["authorization"]
    if value == config.authorization then  -- "Bearer <key>", as nearly every client writes it
        return nil
    end
    if value == nil then
        return "missing Authorization header; expected 'Bearer <API key>'"
    end
    local scheme, token
    if type(value) == "string" then
        scheme, token = value:match("^(%S+) +(.-)%s*$")
    end
    if not scheme or scheme:lower() ~= "bearer" then
        return "malformed Authorization header; expected 'Bearer <API key>'"
    end
    if token ~= config.api_key then
        return "invalid API key"
    end
    return nil
end

local function _is_json_content_type(value)
    if type(value) ~= "string" then
        return false
    end
    value = value:lower()
    return value:match("^%s*application/json%s*$") ~= nil
        or value:match("^%s*application/json%s*;") ~= nil
end

-- An absolute https URI with a non-empty host.
local function _is_https_uri(url)
    if url:find("[%s%c]") then
        return false
    end
    -- The common shape first: "https://" and a host of letters, digits,
    -- dots and hyphens, then the end or "/", "?" or "#" (no user, no port).
    local host_end = url:match("^https://[%w.-]+()")
    if host_end and (host_end > #url or url:find("^[/?#]", host_end)) then
        return true
    end
    local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
    if not scheme or scheme:lower() ~= "https" then
        return false
    end
    local authority = rest:match("^[^/?#]*")
    local host = authority:gsub("^.*@", ""):gsub(":%d*$", "")
    return host ~= ""
end

-- Returns nil when `params` is a valid create request, else a message and
-- the name of the offending parameter.
local function _validation_error(params, raw)
    local url = params.url
    if url == nil then
        return "url is required", "url"
    end
    if type(url) ~= "string" then
        return "url must be a string", "url"
    end
    if not _is_https_uri(url) then
        return "url must be an absolute https URI with a host", "url"
    end

    local events = params.events
    if events == nil then
        return nil
    end
    if type(events) ~= "table" or not _sent_as_array(events, raw, "events") then
        return "events must be an array of event names", "events"
    end
    for i = 1, #events do
        local name = events[i]
        if not EVENTS[name] then  -- named on failure only: a create names none
            local param = format("events[%d]", i - 1)
            if type(name) ~= "string" then
                return param .. " must be a string", param
            end
            if name == RESERVED_EVENT then
                return format("%s: %s is reserved for the test endpoint and cannot be subscribed to",
                    param, RESERVED_EVENT), param
            end
            return format("%s: unknown event name %s", param, cjson.encode(name)), param
        end
    end
    return nil
end

-- A subscription as JSON, its fields in a fixed order: id, fleetId, url,
-- events, enabled, createdAt, updatedAt, secret.
-- The strings the caller sent (fleet id, URL, event names) go through
-- cjson; the ones made here (hex, a timestamp, base64) hold no character
-- JSON escapes, and are written as they are. An empty event list is
-- written `[]` (cjson alone would write `{}`).
local function _create_subscription(fleet_id, params)
    local now = _timestamp()
    local events = params.events or {}
    local json = concat {
        '{"id":"wh_', _random_hex(12),
        '","fleetId":', cjson.encode(fleet_id),
        ',"url":', cjson.encode(params.url),
        ',"events":', #events == 0 and "[]" or cjson.encode(events),
        ',"enabled":true,"createdAt":"', now,
        '","updatedAt":"', now,
        '","secret":"whsec_', ngx.encode_base64(_random_bytes(24)),
        '"}',
    }
    if not config.lean then
        _append("subscriptions", json)
    end
    return json
end

local function _api_headers()
    return { ["Content-Type"] = "application/json", ["X-Request-Id"] = _request_id() }
end

-- Idempotency --------------------------------------------------------------
--
-- A successful create sent with an Idempotency-Key is stored under
-- "idempotency:<key>" as one string, so that a reader never sees half of it:
-- "<status> <length of content type> <length of request body>\n", then the
-- content type, the raw request body and the response body, byte for byte.
-- The keys are also listed, in the order stored, in the list
-- "idempotency_keys" (for GET /__control/idempotency_keys).

-- The request's key; nil without one (an empty header counts as none) and in
-- lean mode. A repeated header's values are joined by ", ".
local function _idempotency_key(headers_in)
    if config.lean then
        return nil
    end
    local value = headers_in["idempotency-key"]
    if type(value) == "table" then
        value = concat(value, ", ")
    end
    if value == nil or value == "" then
        return nil
    end
    return value
end

-- The stored answer for `key`: status, content type, request body, response
-- body; nil when nothing is stored.
local function _idempotency_lookup(key)
    local entry = _dict():get("idempotency:" .. key)
    if not entry then
        return nil
    end
    local status, type_length, request_length, i = entry:match("^(%d+) (%d+) (%d+)\n()")
    local type_end = i + tonumber(type_length)
    local request_end = type_end + tonumber(request_length)
    return tonumber(status), entry:sub(i, type_end - 1), entry:sub(type_end, request_end - 1),
        entry:sub(request_end)
end

-- Stores a successful answer under `key`, unless a request with that key
-- completed first (then the first one stays).
local function _idempotency_store(key, request, status, content_type, body)
    local entry = format("%d %d %d\n", status, #content_type, #request)
        .. content_type .. request .. body
    local ok, err = _dict():safe_add("idempotency:" .. key, entry)
    if ok then
        _append("idempotency_keys", cjson.encode(key))
    elseif err ~= "exists" then
        error(format("cannot store the answer for Idempotency-Key %s: %s", key, err))
    end
end

-- Handling a request -------------------------------------------------------

-- Runs the API on a request whose raw body is `raw`; returns status, headers
-- and body. Checks in order: authentication, endpoint, Idempotency-Key (a
-- stored answer is replayed, or the body differs: 422), then the request
-- itself. A successful create is stored (and, with a key, its answer) whether
-- or not that answer is then sent.
local function _handle(raw)
    -- read once: each ngx.req.get_headers() builds a new table
    local headers_in = ngx.req.get_headers()
    local auth_error = _authorization_error(headers_in)
    if auth_error then
        return 401, _api_headers(), _error_body("authentication_error", auth_error)
    end

    local method = ngx.req.get_method()
    -- the raw URI, decoded by hand: in ngx.var.uri an encoded "/" (%2F)
    -- inside the fleet id would already be a path separator
    local path = ngx.var.request_uri:match("^[^?#]*")
    local segment = path:match("^/fleets/([^/]*)/webhooks$")
    if method ~= "POST" or not segment or segment == "" then
        return 404, _api_headers(),
            _error_body("not_found_error", format("no such endpoint: %s %s", method, path))
    end

    local key = _idempotency_key(headers_in)
    if key then
        local status, content_type, request, body = _idempotency_lookup(key)
        if status then
            local headers = _api_headers()
            if request ~= raw then
                return 422, headers, IDEMPOTENCY_MISMATCH
            end
            headers["Content-Type"] = content_type
            headers["Idempotent-Replayed"] = "true"
            return status, headers, body
        end
    end

    if not _is_json_content_type(headers_in["content-type"]) then
        return 400, _api_headers(), _error_body("invalid_request_error",
            "Content-Type must be application/json")
    end
    local params, err = cjson.decode(raw)
    if params == nil then
        return 400, _api_headers(), _error_body("invalid_request_error",
            "request body is not valid JSON: " .. tostring(err))
    end
    if type(params) ~= "table" or raw:match("^%s*(.)") ~= "{" then
        return 400, _api_headers(),
            _error_body("invalid_request_error", "request body must be a JSON object")
    end

    local message, param = _validation_error(params, raw)
    if message then
        return 422, _api_headers(), _error_body("invalid_request_error", message, param)
    end
    local headers = _api_headers()
    local body = _create_subscription(_percent_decode(segment), params)
    if key then
        _idempotency_store(key, raw, 201, headers["Content-Type"], body)
    end
    return 201, headers, body
end

-- Scripts ------------------------------------------------------------------

-- Checks and normalises a script sent to /__control/enqueue.
local function _check_script(script)
    if type(script) ~= "table" then
        return nil, "a script must be a JSON object"
    end
    local status = script.status
    if status ~= nil and (type(status) ~= "number" or status < 100 or status > 999
            or status ~= floor(status)) then
        return nil, "status must be an integer from 100 to 999"
    end
    script.action = script.action or (status and "respond" or "pass")
    if not ACTIONS[script.action] then
        return nil, "unknown action " .. cjson.encode(script.action)
    end
    if script.action == "respond" and not status then
        return nil, "action respond needs a status"
    end
    if (script.action == "partial" or script.action == "raw") and script.body == nil then
        return nil, "action " .. script.action .. " needs a body"
    end
    if script.body ~= nil and type(script.body) ~= "string" then
        return nil, "body must be a string"
    end
    if script.headers ~= nil and type(script.headers) ~= "table" then
        return nil, "headers must be an object"
    end
    for name, value in pairs(script.headers or {}) do
        local values = type(value) == "table" and value or { value }
        for _, v in pairs(values) do
            if type(v) ~= "string" and type(v) ~= "number" then
                return nil, format("header %s must be a string or a list of strings", name)
            end
        end
    end
    for _, field in ipairs { "delay", "interval" } do
        local value = script[field]
        if value ~= nil and (type(value) ~= "number" or value < 0) then
            return nil, field .. " must be a number of seconds >= 0"
        end
    end
    local bytes = script.bytes
    if bytes ~= nil and (type(bytes) ~= "number" or bytes < 0 or bytes ~= floor(bytes)) then
        return nil, "bytes must be an integer >= 0"
    end
    return script
end

local function _next_script()
    local json = _dict():lpop("scripts")
    return json and cjson.decode(json)
end

-- Entry points -------------------------------------------------------------

function _M.init()
    local path = ngx.config.prefix() .. "conf/server.json"
    local file = assert(io_open(path, "rb"))
    local text = file:read("*a")
    file:close()
    config = assert(cjson.decode(text), "invalid " .. path)
    assert(type(config.api_key) == "string", "api_key missing in " .. path)
    config.lean = config.lean == true
    config.authorization = "Bearer " .. config.api_key
    config.delay = tonumber(config.delay) or 0
end

function _M.api()
    -- The resets so far, to tell after the wait whether one came meanwhile.
    -- (Lean mode stores nothing: a request of the test before cannot leave
    -- anything behind.)
    local epoch = not config.lean and _epoch()
    -- recorded first, whatever happens next; in lean mode, nothing is
    -- written to the shared dict at all (an empty script queue is only read)
    local raw = config.lean and _read_body() or _record()
    local script = _next_script()
    local delay
    if script then
        delay = script.delay
    elseif config.lean then
        -- Lean (benchmarks): the answer is made on arrival and sent after
        -- the delay, as from a server that far away. Made after the wait,
        -- the answers of a wave of requests whose waits end together would
        -- be made one after the other, and the last would wait for the
        -- work of all the others on top of the delay.
        local status, headers, body = _handle(raw)
        if config.delay > 0 then
            ngx.sleep(config.delay)
        end
        return _send(status, headers, body)
    else
        script = { action = "pass" }
        delay = config.delay
    end
    if delay and delay > 0 then
        ngx.sleep(delay)
    end
    -- Reset while it waited: the test that sent it is over (its client may
    -- have let it go, as a batch broken off does). Made now, its
    -- subscription would be the next test's: it is dropped, and nothing
    -- is made.
    if epoch and _epoch() ~= epoch then
        return ngx.exit(444)
    end

    local action = script.action
    if action == "respond" then
        return _send(script.status, script.headers, script.body)
    elseif action == "drop" then
        return ngx.exit(444)  -- nginx closes the connection, sending nothing
    elseif action == "trickle" and script.body then
        return _trickle(script.status or 201, script.headers, script.body,
            script.interval or DEFAULT_TRICKLE_INTERVAL)
    elseif action == "partial" then
        return _partial(script.status or 201, script.headers, script.body, script.bytes)
    elseif action == "raw" then
        return _raw(script.body)
    end

    -- pass, create_then_drop, create_then_partial, trickle without a body:
    -- the real API (Idempotency-Key included)
    local status, headers, body = _handle(raw)
    if action == "create_then_drop" then
        return ngx.exit(444)
    elseif action == "trickle" or action == "create_then_partial" then
        status = script.status or status
        headers = _merge_headers(headers, script.headers)
        if action == "trickle" then
            return _trickle(status, headers, body, script.interval or DEFAULT_TRICKLE_INTERVAL)
        end
        return _partial(status, headers, body, script.bytes)
    end
    return _send(status, headers, body)
end

local CONTROL = {}

CONTROL["GET /__control/ping"] = function()
    return 200, cjson.encode { ok = true, pid = ngx.worker.pid() }
end

CONTROL["GET /__control/requests"] = function()
    return 200, _list_json("requests")
end

CONTROL["GET /__control/subscriptions"] = function()
    return 200, _list_json("subscriptions")
end

CONTROL["GET /__control/idempotency_keys"] = function()
    return 200, _list_json("idempotency_keys")
end

CONTROL["POST /__control/reset"] = function()
    local dict = _dict()
    local epoch = _epoch() + 1
    dict:flush_all()
    dict:flush_expired()
    dict:set("epoch", epoch)
    return 200, cjson.encode { ok = true }
end

CONTROL["POST /__control/enqueue"] = function(body)
    local script, err = cjson.decode(body or "")
    if script ~= nil then
        script, err = _check_script(script)
    end
    if not script then
        return 400, _error_body("invalid_request_error", "bad script: " .. tostring(err))
    end
    local length
    length, err = _dict():rpush("scripts", cjson.encode(script))
    if not length then
        return 500, _error_body("api_error", "cannot queue script: " .. tostring(err))
    end
    return 200, cjson.encode { ok = true, queued = length }
end

function _M.control()
    local method = ngx.req.get_method()
    local route = CONTROL[method .. " " .. ngx.var.uri]
    local status, body
    if route then
        status, body = route(_read_body())
    else
        status, body = 404, _error_body("not_found_error",
            format("no such control endpoint: %s %s", method, ngx.var.uri))
    end
    return _send(status, { ["Content-Type"] = "application/json" }, body)
end

return _M
