--- The client: its configuration, checked once, and its runtime.
--
--   client:request(method, path, body, options)
--     -> cerca.call prepares the call from the client's profile (options,
--        body encoded once, idempotency key drawn once)
--     -> call:run(runtime): one attempt at a time through the runtime
--        chosen when the client was made (cerca.runtime: plain Lua, or
--        cerca.nginx), until done, failed, or a wait and the next one
--   client:prepare(...) prepares one call; client:request_many(calls, ...)
--   runs prepared calls at once (runtime:run_many).
-- @module cerca.client

local call = require "cerca.call"
local core = require "cerca.core"
local deliveries = require "cerca.deliveries"
local errors = require "cerca.errors"
local log = require "cerca.log"
local prepare = require "cerca.prepare"
local redact = require "cerca.redact"
local runtime = require "cerca.runtime"
local validate = require "cerca.validate"
local webhooks = require "cerca.webhooks"

local type = type
local setmetatable = setmetatable
local getmetatable = getmetatable
local tostring = tostring
local pcall = pcall
local format = string.format
local gsub = string.gsub
local find = string.find
local getenv = os.getenv
local floor = math.floor

local _M = {}

_M.VERSION = "0.1.0"

--- Where requests go when neither `base_url` nor `CERCA_BASE_URL` is set.
-- The contract does not name a production host; this is the assumed one.
_M.DEFAULT_BASE_URL = "https://api.cerca.dev"

--- Defaults of the client options.
_M.DEFAULTS = {
  timeout = 60,                     -- seconds, one whole attempt
  connect_timeout = 10,             -- seconds
  max_retries = 2,
  max_response_size = 1024 * 1024,  -- bytes
}

local CLIENT_OPTIONS = {
  "api_key", "base_url", "timeout", "connect_timeout", "max_retries",
  "headers", "ca_file", "max_response_size", "logger", "log_level", "thread_pool",
}

local LOOPBACK_HOSTS = { localhost = true, ["[::1]"] = true }

--- Whether a host (lower-case, as `validate.parse_url` gives it) is a
-- loopback one: plain http is allowed to these only.
function _M.is_loopback(host)
  return LOOPBACK_HOSTS[host] or find(host, "^127%.%d+%.%d+%.%d+$") ~= nil
end

local is_loopback = _M.is_loopback

local function config_error(field, message)
  return errors.new("configuration", message, { field = field })
end

local function getenv_nonempty(name)
  local v = getenv(name)
  if v == "" then return nil end
  return v
end

local function check_api_key(key, field)
  if key == nil then
    return config_error(field, "no API key: set the CERCA_API_KEY environment variable "
      .. "or pass api_key to cerca.new")
  end
  if type(key) ~= "string" or key == "" then
    return config_error(field, format("api_key must be a non-empty string (got %s)",
      type(key) == "string" and "an empty string" or type(key)))
  end
  -- The key itself never appears in a message.
  if find(key, "[^\33-\126]") then
    return config_error(field, "the API key contains a space, a line break or another "
      .. "non-printable character; copy it again without surrounding whitespace")
  end
end

-- The first option besides the key, the URL and the headers (checked with
-- their own messages) whose text holds the key, the CA file read from
-- CERCA_CA_FILE included: the client keeps these as its fields (a file's
-- path, a pool's name), and `cerca.pretty(client)` prints them.
local function option_key_problem(secrets, opts, ca_file)
  local function problem(name, value)
    return validate.key_problem(secrets, value, name, "another option", "give " .. name .. " its own value")
  end
  for i = 1, #CLIENT_OPTIONS do
    local name = CLIENT_OPTIONS[i]
    local value = opts[name]
    if name ~= "api_key" and name ~= "base_url" and type(value) == "string" then
      local bad = problem(name, value)
      if bad then return bad end
    end
  end
  if opts.ca_file == nil then return problem("CERCA_CA_FILE", ca_file) end
end

-- Longer base URLs are refused: no API address is near this long.
local MAX_BASE_URL = 2048

local function normalise_base_url(url, field)
  -- Credentials in the URL would be printed wherever the URL is (the
  -- client's tostring, messages): refused, without repeating them.
  if type(url) == "string" and find(url, "^[^/]*//[^/%?#]*@") then
    return nil, config_error(field, format("%s must not hold a user name or password (user:password@host); "
      .. "the API key is the only credential: pass it as api_key or CERCA_API_KEY", field))
  end
  local scheme, host = validate.parse_url(url, field, _M.DEFAULT_BASE_URL, MAX_BASE_URL)
  if not scheme then return nil, config_error(host.field, host.message) end
  if scheme ~= "https" and scheme ~= "http" then
    return nil, config_error(field, format("%s must use https (got %s://)", field, scheme))
  end
  if scheme == "http" and not is_loopback(host) then
    return nil, config_error(field, format("%s uses http:// for %s, which would send the API key "
      .. "in clear text; use https:// (plain http is allowed for loopback hosts only)", field, host))
  end
  if find(url, "[%?#]") then
    return nil, config_error(field, format("%s must not hold a query or fragment (got %s)",
      field, validate.describe(url)))
  end
  return (gsub(url, "/+$", ""))
end

--- The `ca_file` option (`CERCA_CA_FILE` when nil): nil, or the path of a
-- file that can be read; or false and a `configuration` error naming the
-- option. libcurl reads it for every new connection: a FIFO, a pipe or a
-- device there would block, never end or be read once, and is refused
-- (looked at first: a file of another kind is never opened).
function _M.ca_file(ca_file)
  local field = "ca_file"
  if ca_file == nil then ca_file, field = getenv_nonempty("CERCA_CA_FILE"), "CERCA_CA_FILE" end
  if ca_file == nil then return nil end
  if type(ca_file) ~= "string" then
    return false, config_error(field, format("%s must be the path of a PEM file (got %s)", field,
      validate.describe(ca_file)))
  end
  if find(ca_file, "\0", 1, true) then
    return false, config_error(field, format("%s must be the path of a PEM file (got a string with a NUL byte)",
      field))
  end
  local kind, why = core.file_kind(ca_file)
  if kind and kind ~= "file" then
    return false, config_error(field, format("%s must be the path of a PEM file, not of a %s", field, kind))
  end
  local f
  if kind then f, why = io.open(ca_file, "rb") end
  if not f then
    return false, config_error(field, format("%s cannot be read: %s", field, tostring(why)))
  end
  f:close()
  return ca_file
end

--- The User-Agent of every request cerca sends.
function _M.user_agent()
  local lua = _VERSION
  if type(jit) == "table" and jit.version then lua = lua .. "; " .. jit.version end
  return format("cerca-lua/%s (%s; libcurl %s)", _M.VERSION, lua, core.curl_version)
end

local Client = {}
Client.__index = Client
Client.__name = "cerca.Client"

function Client.__tostring(client)
  return format("cerca.Client (%s)", client.base_url)
end

-- A key shorter than this is no credential (the API refuses it), and
-- removing it from a refusal or an answer would garble their words.
local MIN_KEY_REMOVED = redact.MIN_SECRET

-- The secrets to remove from a refusal (a refused argument, which its
-- message may quote) for the keys given (the option, the environment's),
-- should the caller give one in the wrong place; nil when none is long
-- enough to remove.
local function refusal_secrets(key, other)
  local function long(k) return type(k) == "string" and #k >= MIN_KEY_REMOVED and k or nil end
  key, other = long(key), long(other)
  if key or other then return redact.list(key, other) end
end

local function refused(message)
  return errors.new("configuration", message, { attempts = 0 })
end

-- The call run on `rt`, then, when `shape` is given, its result made by
-- `shape(res, err, a, b, d)` with the answer held: a fault while it is
-- made keeps the answer, as one while it is read does (Call:broken_off).
local function run(c, rt, shape, a, b, d)
  local res, err = c:run(rt)
  if not shape then return res, err end
  c.answer = res
  return shape(res, err, a, b, d)
end

-- Client:request, unguarded but for the call itself, its result made by
-- `shape` when given (a resource's create: cerca.webhooks), a refusal's
-- too (nothing sent).
local function send(self, method, path, body, options, shape, a, b, d)
  local c, err = call.new(self._profile, method, path, body, options)
  local rt = self._runtime
  if not c then
    err = self:scrub_refusal(err)
  else
    local why = rt:context_error()
    if why then c, err = nil, refused(why) end
  end
  if not c then
    if shape then return shape(nil, err, a, b, d) end
    return nil, err
  end
  -- A fault once an attempt may have gone out (a caller's finalizer that
  -- raises at an allocation, as Lua 5.1 to 5.3 let it; memory running
  -- out) ends the call with its key, and a 2xx being read in its body.
  local ok, value, failure, more = pcall(run, c, rt, shape, a, b, d)
  if not ok then return nil, c:broken_off(value, "cerca failed inside this call") end
  return value, failure, more
end

--- Creates a client.
-- @tparam[opt] table opts see the README's table of client options
-- @treturn table|nil the client
-- @treturn[opt] table a `configuration` error
function _M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    return nil, config_error("options", format("cerca.new takes a table of options (got %s)",
      validate.describe(opts)))
  end
  -- Read once: what is checked below is what the client keeps.
  local msg
  opts, msg = validate.snapshot(opts, "cerca.new options")
  if not opts then return nil, config_error("options", msg) end
  local bad = validate.known_keys(opts, "cerca.new", CLIENT_OPTIONS)
  if bad then return nil, config_error("options", bad.message) end

  local api_key = opts.api_key
  local key_field = "api_key"
  if api_key == nil then api_key, key_field = getenv_nonempty("CERCA_API_KEY"), "CERCA_API_KEY" end
  local err = check_api_key(api_key, key_field)
  if err then return nil, err end

  local base_url, base_field = opts.base_url, "base_url"
  if base_url == nil then base_url, base_field = getenv_nonempty("CERCA_BASE_URL"), "CERCA_BASE_URL" end
  base_url, err = normalise_base_url(base_url or _M.DEFAULT_BASE_URL, base_field)
  if not base_url then return nil, err end

  bad = validate.seconds(opts.timeout, "timeout")
    or validate.seconds(opts.connect_timeout, "connect_timeout")
    or validate.integer(opts.max_retries, "max_retries", 0, 10)
    or validate.integer(opts.max_response_size, "max_response_size", 1, 2 ^ 31)
    or validate.headers(opts.headers, "headers", prepare.RESERVED_HEADERS)
  if bad then return nil, config_error(bad.field, bad.message) end

  if opts.logger ~= nil and type(opts.logger) ~= "function" then
    return nil, config_error("logger", format("logger must be a function(level, line) (got %s)",
      validate.describe(opts.logger)))
  end
  local level_name, level_field = opts.log_level, "log_level"
  if level_name == nil then level_name, level_field = log.default_level_name() end
  local level
  level, msg = log.level(level_name, level_field)
  if not level then return nil, config_error(level_field, msg) end

  local ca_file
  ca_file, err = _M.ca_file(opts.ca_file)
  if ca_file == false then return nil, err end

  local pool = opts.thread_pool
  if pool ~= nil and pool ~= false and (type(pool) ~= "string" or pool == "") then
    return nil, config_error("thread_pool", format("thread_pool must be the name of an nginx thread_pool, "
      .. "or false to run calls in the worker itself (got %s)", validate.describe(pool)))
  end

  -- A key too short to be a credential is not searched for in answers:
  -- removing "ab" from every text would garble them, the subscription's
  -- secret included, which must reach the caller whole.
  local secrets = redact.list(#api_key >= MIN_KEY_REMOVED and api_key or nil)
  bad = validate.key_problem(secrets, base_url, base_field, "the URL", "give the API's address only")
    or (opts.headers and validate.headers_key_problem(secrets, opts.headers, "headers"))
    or option_key_problem(secrets, opts, ca_file)
  if bad then return nil, config_error(bad.field, bad.message) end
  local ua = _M.user_agent()
  local rt = runtime.new { ca_file = ca_file, user_agent = ua, thread_pool = pool }
  local client = setmetatable({
    base_url = base_url,
    timeout = opts.timeout or _M.DEFAULTS.timeout,
    connect_timeout = opts.connect_timeout or _M.DEFAULTS.connect_timeout,
    max_retries = opts.max_retries or _M.DEFAULTS.max_retries,
    max_response_size = opts.max_response_size or _M.DEFAULTS.max_response_size,
    ca_file = ca_file,
    thread_pool = pool,
    user_agent = ua,
    _runtime = rt,
    _refusal_secrets = refusal_secrets(api_key),
  }, Client)

  -- What every call of this client starts from (cerca.call). The API key
  -- stays in the header lines; `client_headers` is the checked copy:
  -- changing the caller's table later changes nothing.
  local client_headers = opts.headers
  local header_lines = prepare.header_lines(api_key, client_headers)
  client._profile = {
    url = base_url,
    timeout = client.timeout,
    connect_timeout = client.connect_timeout,
    max_retries = client.max_retries,
    max_response_size = client.max_response_size,
    -- Plain http is allowed for loopback hosts only; those calls never go
    -- through a proxy, which would carry the key in clear text.
    no_proxy = find(base_url, "^[Hh][Tt][Tt][Pp]://") ~= nil,
    header_lines = function(call_headers)
      if not call_headers then return header_lines end
      return prepare.header_lines(api_key, client_headers, call_headers)
    end,
    secrets = secrets,
    log = log.new(level, opts.logger or rt.log_sink, secrets, opts.logger ~= nil),
  }

  -- A fault's message may quote the key too.
  local function secrets_of() return client._refusal_secrets end
  client.webhooks = {
    EVENTS = webhooks.EVENTS,
    verify = deliveries.verify,
    sign = deliveries.sign,
    replay_guard = deliveries.replay_guard,
    -- An argument refused is quoted in its error: the client's key, given
    -- in the wrong place, is removed (as from every error of a call).
    create = errors.protect(function(fleet_id, params, options)
      local sub, cerr, res = webhooks.create(client, send, fleet_id, params, options)
      return sub, cerr and client:scrub_refusal(cerr), res
    end, secrets_of),
    create_many = errors.protect(function(items, batch_opts)
      local results, merr = webhooks.create_many(client, items, batch_opts)
      return results, merr and client:scrub_refusal(merr)
    end, secrets_of),
    check = errors.protect(function(fleet_id, params, options)
      local cerr = webhooks.refusal(client, fleet_id, params, options)
      if cerr then return nil, client:scrub_refusal(cerr) end
      return true
    end, secrets_of),
  }
  return client
end

local new = _M.new
_M.new = errors.protect(function(opts)
  -- Read once, here: the key the refusal below removes is the one the
  -- options gave, through a metatable too.
  if type(opts) == "table" then
    local msg
    opts, msg = validate.snapshot(opts, "cerca.new options")
    if not opts then return nil, config_error("options", msg) end
  end
  local client, err = new(opts)
  -- A refused option is quoted: the key, given in the wrong one, is removed.
  local secrets = err and refusal_secrets(type(opts) == "table" and rawget(opts, "api_key") or nil,
    getenv_nonempty("CERCA_API_KEY"))
  if secrets then errors.scrub(err, secrets) end
  return client, err
end)

local function not_a_client(method)
  return errors.new("invalid_request", format("%s is a method: call it with a colon, client:%s(...)",
    method, method), { field = "self" })
end

--- `err` without the client's API key, which a refused argument's message
-- may quote (given in the wrong place). Returns `err`.
function Client:scrub_refusal(err)
  local secrets = self._refusal_secrets
  if secrets then errors.scrub(err, secrets) end
  return err
end

--- Releases the client's connection. The client stays usable: the next
-- call opens a new one.
-- @treturn true|nil
-- @treturn[opt] table the error when called without the client
function Client:close()
  if getmetatable(self) ~= Client then return nil, not_a_client("close") end
  self._runtime:close()
  return true
end

--- Sends one API call, retrying as `cerca.retry` decides, and reads the answer.
-- @tparam string method HTTP method
-- @tparam string path path below base_url, already encoded
-- @param body Lua value sent as JSON (nil: no body)
-- @tparam[opt] table options per-call options
-- @treturn table|nil `{ status, raw_headers, request_id, json, body, attempts,
--   idempotency_key }`; its `headers` is made from `raw_headers` on first read
-- @treturn[opt] table the error (`err.attempts`: how many attempts were made)
function Client:request(method, path, body, options)
  if getmetatable(self) ~= Client then return nil, not_a_client("request") end
  return send(self, method, path, body, options)
end

--- Prepares one call for `request_many` (`cerca.call`): its options
-- checked, its body encoded and its key drawn now, as `request` does.
-- @tparam[opt] boolean options_copied `options` is already a private copy
-- @treturn table|nil the call
-- @treturn[opt] table the error (nothing was sent)
function Client:prepare(method, path, body, options, options_copied)
  if getmetatable(self) ~= Client then return nil, not_a_client("prepare") end
  local c, err = call.new(self._profile, method, path, body, options, options_copied)
  if not c then return nil, self:scrub_refusal(err) end
  return c
end

-- Calls in flight at most, as the transports take it.
local MAX_IN_FLIGHT = 100000

local function bad_argument(field, what, got)
  return errors.new("invalid_request", format("client:request_many: %s must be %s, not %s", field, what,
    validate.describe(got)), { field = field })
end

-- Why calls[from..] are refused, or nil.
local function calls_refusal(calls, from)
  for k = from, #calls do
    if not call.is_call(calls[k]) then
      return bad_argument("calls[" .. k .. "]", "a call from client:prepare", calls[k])
    end
  end
end

-- Why request_many's arguments are refused, or nil.
local function request_many_refusal(calls, concurrency, on_done, read_more, stop)
  if type(calls) ~= "table" then return bad_argument("calls", "a list of calls from client:prepare", calls) end
  local ok, why = pcall(calls_refusal, calls, 1)
  if not ok then
    return errors.new("invalid_request", "client:request_many: calls could not be read: a metamethod raised an "
      .. "error (" .. (type(why) == "string" and why or type(why)) .. ")", { field = "calls" })
  end
  if why then return why end
  if type(concurrency) ~= "number" or concurrency < 1 or concurrency > MAX_IN_FLIGHT
    or concurrency ~= floor(concurrency) then
    return bad_argument("concurrency", "a whole number of calls in flight from 1 to " .. MAX_IN_FLIGHT, concurrency)
  end
  if type(on_done) ~= "function" then return bad_argument("on_done", "a function", on_done) end
  if read_more ~= nil and type(read_more) ~= "function" then
    return bad_argument("read_more", "a function or nil", read_more)
  end
  if stop ~= nil and type(stop) ~= "function" then return bad_argument("stop", "a function or nil", stop) end
  return nil
end

--- Sends prepared calls at once (curl multi; under nginx, light threads),
-- each with the same policy as `request`.
-- @tparam table calls list of calls from `prepare`
-- @tparam number concurrency calls in flight at most
-- @tparam function on_done `on_done(i, value, err)` as each call ends; it
--   must not raise (the caller wraps user callbacks)
-- @tparam[opt] function read_more prepares more calls, appending them to
--   `calls`, and says whether any are still to come: the runtime calls it
--   until it says no, while the first calls are in flight where it can.
--   No code of the caller may run while it reads the caller's items, so
--   with a `logger` of the caller's (which the calls in flight write to)
--   it is called until it says no before anything is sent.
-- @tparam[opt] function stop says why the batch is to stop (a string), or
--   nil; asked once every call is read (see `cerca.batch`)
function Client:request_many(calls, concurrency, on_done, read_more, stop)
  if getmetatable(self) ~= Client then return nil, not_a_client("request_many") end
  local why = request_many_refusal(calls, concurrency, on_done, read_more, stop)
  -- A refusal quotes what it was given: the key, given in the wrong place,
  -- is removed (as from every refusal of a call).
  if why then return nil, self:scrub_refusal(why) end
  local keys = {}
  for k = 1, #calls do keys[k] = k end
  -- The calls read_more adds get the next keys; anything else it adds is
  -- refused as it comes, and not sent.
  local read = #calls
  local more = read_more and function()
    local again = read_more()
    for k = read + 1, #calls do
      if call.is_call(calls[k]) then
        keys[#keys + 1] = k
      else
        on_done(k, nil, self:scrub_refusal(bad_argument("calls[" .. k .. "]", "a call from client:prepare", calls[k])))
      end
    end
    read = #calls
    return again
  end
  local rt = self._runtime
  why = rt:context_error()
  if why or #calls == 0 or self._profile.log.runs_callers_code then
    while more and more() do end
    more = nil
  end
  if why then
    for i = 1, #keys do on_done(keys[i], nil, refused(why)) end
    return
  end
  if #calls == 0 then return end
  return rt:run_many(calls, keys, concurrency, on_done, more, stop)
end

-- No public method raises: a fault inside becomes `nil, err`, without
-- the client's key.
local function secrets_of(self)
  if getmetatable(self) == Client then return rawget(self, "_refusal_secrets") end
end
Client.close = errors.protect(Client.close, secrets_of)
Client.request = errors.protect(Client.request, secrets_of)
Client.prepare = errors.protect(Client.prepare, secrets_of)
Client.request_many = errors.protect(Client.request_many, secrets_of)

return _M
