--- The client: configuration, and the way one API call goes out and back.
--
--   client:request(method, path, body, options)
--     -> per-call options checked and merged over the client's
--     -> body encoded to JSON once, idempotency key drawn once: every
--        attempt of the call sends the same bytes under the same key
--     -> attempt loop: transport.attempt (one HTTP exchange in the C core),
--        the answer mapped to a response or a typed error, and
--        cerca.retry asked whether and when to go again
--     -> the response, or the last error with err.attempts
-- @module cerca.client

local clock = require "cerca.clock"
local core = require "cerca.core"
local deliveries = require "cerca.deliveries"
local errors = require "cerca.errors"
local log = require "cerca.log"
local retry = require "cerca.retry"
local validate = require "cerca.validate"
local transport = require "cerca.transport"
local webhooks = require "cerca.webhooks"

local type = type
local pairs = pairs
local setmetatable = setmetatable
local tostring = tostring
local format = string.format
local lower = string.lower
local match = string.match
local gsub = string.gsub
local sub = string.sub
local find = string.find
local concat = table.concat
local ceil = math.ceil
local min = math.min
local floor = math.floor
local getenv = os.getenv
local open = io.open

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

local CALL_OPTIONS = { "timeout", "connect_timeout", "max_retries", "headers", "idempotency_key", "deadline" }

-- Headers the library owns, with the way to get what the caller wanted.
local RESERVED_HEADERS = {
  authorization = "set the api_key option instead",
  host = "set the base_url option instead",
  ["content-type"] = "the body is always JSON",
  ["content-length"] = "it is computed from the body",
  ["transfer-encoding"] = "it is chosen by libcurl",
  expect = "it is managed by the library",
  ["idempotency-key"] = "set options.idempotency_key instead",
}

local LOOPBACK_HOSTS = { localhost = true, ["[::1]"] = true }

local function is_loopback(host)
  return LOOPBACK_HOSTS[host] or find(host, "^127%.%d+%.%d+%.%d+$") ~= nil
end

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

local function normalise_base_url(url, field)
  local scheme, host = validate.parse_url(url, field, _M.DEFAULT_BASE_URL)
  if not scheme then return nil, config_error(field, host) end
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

local function user_agent()
  local lua = _VERSION
  if type(jit) == "table" and jit.version then lua = lua .. "; " .. jit.version end
  return format("cerca-lua/%s (%s; libcurl %s)", _M.VERSION, lua, core.curl_version)
end

-- Header lines from a name -> value table, overriding `into` by lower-case name.
local function merge_headers(into, order, headers)
  for name, value in pairs(headers) do
    local key = lower(name)
    if not into[key] then order[#order + 1] = key end
    into[key] = name .. ": " .. value
  end
end

local function header_lines(api_key, client_headers, call_headers)
  local by_name, order = {}, {}
  merge_headers(by_name, order, {
    Authorization = "Bearer " .. api_key,
    ["Content-Type"] = "application/json",
    Accept = "application/json",
  })
  if client_headers then merge_headers(by_name, order, client_headers) end
  if call_headers then merge_headers(by_name, order, call_headers) end
  local lines = {}
  for i = 1, #order do lines[i] = by_name[order[i]] end
  return lines
end

local Client = {}
Client.__index = Client
Client.__name = "cerca.Client"

function Client.__tostring(client)
  return format("cerca.Client (%s)", client.base_url)
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
  local msg = validate.known_keys(opts, "cerca.new", CLIENT_OPTIONS)
  if msg then return nil, config_error("options", msg) end

  local api_key = opts.api_key
  local key_field = "api_key"
  if api_key == nil then api_key, key_field = getenv_nonempty("CERCA_API_KEY"), "CERCA_API_KEY" end
  local err = check_api_key(api_key, key_field)
  if err then return nil, err end

  local base_url, base_field = opts.base_url, "base_url"
  if base_url == nil then base_url, base_field = getenv_nonempty("CERCA_BASE_URL"), "CERCA_BASE_URL" end
  base_url, err = normalise_base_url(base_url or _M.DEFAULT_BASE_URL, base_field)
  if not base_url then return nil, err end

  msg = validate.seconds(opts.timeout, "timeout")
    or validate.seconds(opts.connect_timeout, "connect_timeout")
    or validate.integer(opts.max_retries, "max_retries", 0, 10)
    or validate.integer(opts.max_response_size, "max_response_size", 1, 2 ^ 31)
    or validate.headers(opts.headers, "headers", RESERVED_HEADERS)
  if msg then return nil, config_error(match(msg, "^[%w_]+"), msg) end

  if opts.logger ~= nil and type(opts.logger) ~= "function" then
    return nil, config_error("logger", format("logger must be a function(level, line) (got %s)",
      validate.describe(opts.logger)))
  end
  local level_name, level_field = opts.log_level, "log_level"
  if level_name == nil then level_name, level_field = log.default_level_name() end
  local level
  level, msg = log.level(level_name, level_field)
  if not level then return nil, config_error(level_field, msg) end

  local ca_file, ca_field = opts.ca_file, "ca_file"
  if ca_file == nil then ca_file, ca_field = getenv_nonempty("CERCA_CA_FILE"), "CERCA_CA_FILE" end
  if ca_file ~= nil then
    if type(ca_file) ~= "string" then
      return nil, config_error(ca_field, format("%s must be the path of a PEM file (got %s)", ca_field,
        validate.describe(ca_file)))
    end
    local f, why = open(ca_file, "rb")
    if not f then
      return nil, config_error(ca_field, format("%s cannot be read: %s", ca_field, tostring(why)))
    end
    f:close()
  end

  local pool = opts.thread_pool
  if pool ~= nil and pool ~= false and (type(pool) ~= "string" or pool == "") then
    return nil, config_error("thread_pool", format("thread_pool must be the name of an nginx thread_pool, "
      .. "or false to run calls in the worker itself (got %s)", validate.describe(pool)))
  end

  local client = setmetatable({
    base_url = base_url,
    timeout = opts.timeout or _M.DEFAULTS.timeout,
    connect_timeout = opts.connect_timeout or _M.DEFAULTS.connect_timeout,
    max_retries = opts.max_retries or _M.DEFAULTS.max_retries,
    max_response_size = opts.max_response_size or _M.DEFAULTS.max_response_size,
    ca_file = ca_file,
    thread_pool = pool,
    user_agent = user_agent(),
    -- Kept apart from the fields a caller may print.
    _api_key = api_key,
    _headers = opts.headers,
    _header_lines = header_lines(api_key, opts.headers),
    _log = log.new(level, opts.logger, api_key),
  }, Client)

  client.webhooks = {
    EVENTS = webhooks.EVENTS,
    verify = deliveries.verify,
    sign = deliveries.sign,
    create = function(fleet_id, params, options)
      return webhooks.create(client, fleet_id, params, options)
    end,
  }
  return client
end

--- Releases the client's connection. The client stays usable: the next
-- call opens a new one.
function Client:close()
  transport.close(self)
end

local function check_call_options(options)
  if options == nil then return nil end
  if type(options) ~= "table" then
    return format("options must be a table (got %s); e.g. { timeout = 10 }", validate.describe(options))
  end
  return validate.known_keys(options, "options", CALL_OPTIONS)
    or validate.seconds(options.timeout, "options.timeout")
    or validate.seconds(options.connect_timeout, "options.connect_timeout")
    or validate.integer(options.max_retries, "options.max_retries", 0, 10)
    or validate.headers(options.headers, "options.headers", RESERVED_HEADERS)
    or validate.seconds(options.deadline, "options.deadline")
    or validate.idempotency_key(options.idempotency_key, "options.idempotency_key")
end

local function request_id(headers)
  return headers["x-request-id"] or headers["request-id"]
end

-- The message of an API error body, if it has a readable one.
local function api_message(json)
  if type(json) ~= "table" then return nil end
  local e = json.error
  local m = (type(e) == "table" and e.message) or json.message or e
  if type(m) ~= "string" or m == "" then return nil end
  m = gsub(m, "%c", " ")
  if #m > 500 then m = sub(m, 1, 497) .. "..." end
  return m
end

local REASONS = {
  [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
  [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [408] = "Request Timeout",
  [409] = "Conflict", [413] = "Content Too Large", [415] = "Unsupported Media Type",
  [422] = "Unprocessable Content", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

local function status_error(res, note)
  local status = res.status
  local message = api_message(res.json)
    or ("HTTP " .. status .. (REASONS[status] and (" " .. REASONS[status]) or ""))
  if status >= 300 and status < 400 and res.headers.location then
    message = message .. "; redirects are not followed (Location: " .. res.headers.location .. ")"
  end
  return errors.new(errors.type_for_status(status), message .. (note or ""), {
    status = status, headers = res.headers, body = res.body, request_id = request_id(res.headers),
  })
end

local TRANSPORT_TYPES = { timeout = "timeout", tls = "tls" }

-- Maps one attempt's outcome to a response or an error.
local function outcome(res, max_response_size)
  local status, headers = res.status, res.headers
  local ok = status >= 200 and status < 300
  local answered = status > 0
  local fields = {
    status = answered and status or nil, headers = answered and headers or nil,
    body = answered and res.body or nil, request_id = request_id(headers),
  }
  if res.error == "too_large" then
    if ok or status == 0 then
      return nil, errors.new("invalid_response", format("the answer is larger than max_response_size "
        .. "(%d bytes); what arrived is kept in err.body", max_response_size), fields)
    end
    return nil, status_error(res, " (body truncated at max_response_size)")
  end
  if res.error == "configuration" then
    return nil, errors.new("configuration", res.error_message)
  end
  if res.error then
    if ok then
      -- Headers said 2xx, then the body broke off: the call may well have
      -- succeeded, so keep every byte that arrived.
      return nil, errors.new("invalid_response", format("the answer broke off after HTTP %d (%s); "
        .. "what arrived is kept in err.body", status, res.error_message), fields)
    end
    if res.error == "url" then
      return nil, errors.new("configuration", "the request URL is not usable: " .. res.error_message, fields)
    end
    return nil, errors.new(TRANSPORT_TYPES[res.error] or "connection", res.error_message, fields)
  end
  if not ok then return nil, status_error(res) end
  if res.json == nil then
    return nil, errors.new("invalid_response", format("the answer (HTTP %d) is not JSON: %s; "
      .. "the raw answer is kept in err.body", status, res.json_error or "empty body"), fields)
  end
  return {
    status = status, headers = headers, request_id = fields.request_id, json = res.json, body = res.body,
  }
end

-- One log line per attempt: what was sent, what came back, what happens next.
local function log_attempt(lg, method, path, res, attempt, attempts, elapsed, next_wait, why)
  if not lg:enabled("info") then return end
  local line = format("%s %s status=%s duration_ms=%d attempt=%d/%d", method, path,
    res.status > 0 and tostring(res.status) or res.error, floor(elapsed * 1000 + 0.5), attempt, attempts)
  local rid = request_id(res.headers)
  if rid then line = line .. " request_id=" .. rid end
  if res.error and res.status > 0 then line = line .. " error=" .. res.error end
  if next_wait then line = format("%s retry_in=%.2fs reason=%q", line, next_wait, why) end
  lg:write("info", line)
  if lg:enabled("debug") then
    lg:write("debug", format("%s %s response body: %s", method, path, res.body))
  end
end

local function log_request(lg, method, path, lines, encoded)
  if not lg:enabled("debug") then return end
  lg:write("debug", format("%s %s headers: %s; body: %s", method, path, concat(lines, "; "), encoded or ""))
end

-- The end of a call that will not be retried: count the attempts, and warn
-- about what a user must not miss.
local function give_up(lg, method, path, err, attempts)
  err.attempts = attempts
  if err.type == "invalid_response" then
    lg:write("warn", format("%s %s: %s", method, path, err.message))
  elseif attempts > 1 then
    lg:write("warn", format("%s %s failed after %d attempts: %s", method, path, attempts, tostring(err)))
  end
  return nil, err
end

--- Sends one API call, retrying as `cerca.retry` decides, and reads the answer.
-- @tparam string method HTTP method
-- @tparam string path path below base_url, already encoded
-- @param body Lua value sent as JSON (nil: no body)
-- @tparam[opt] table options per-call options
-- @treturn table|nil `{ status, headers, request_id, json, body, attempts }`
-- @treturn[opt] table the error (`err.attempts`: how many attempts were made)
function Client:request(method, path, body, options)
  local msg = check_call_options(options)
  if msg then
    return nil, errors.new("invalid_request", msg, { field = match(msg, "^[%w_%.]+"), attempts = 0 })
  end
  msg = transport.context_error()
  if msg then return nil, errors.new("configuration", msg, { attempts = 0 }) end
  options = options or {}
  local encoded
  if body ~= nil then
    local why
    encoded, why = core.encode(body)
    if not encoded then
      return nil, errors.new("invalid_request", "the body cannot be encoded as JSON: " .. why, { attempts = 0 })
    end
  end
  local lines = self._header_lines
  if options.headers then lines = header_lines(self._api_key, self._headers, options.headers) end
  -- One key for the whole call: a retry of a create that did happen gets
  -- the same subscription back instead of a second one.
  local key = options.idempotency_key
  if key == nil and method == "POST" then
    key = core.uuid4()
    if not key then
      return nil, errors.new("configuration", "cannot draw an idempotency key: the random generator failed",
        { attempts = 0 })
    end
  end
  if key then
    local with_key = { "Idempotency-Key: " .. key }
    for i = 1, #lines do with_key[i + 1] = lines[i] end
    lines = with_key
  end

  local lg = self._log
  local max_retries = options.max_retries or self.max_retries
  local attempts = max_retries + 1
  local timeout = options.timeout or self.timeout
  local deadline = options.deadline and (clock.now() + options.deadline)
  local request = {
    method = method,
    url = self.base_url .. path,
    headers = lines,
    body = encoded,
    connect_timeout_ms = ceil((options.connect_timeout or self.connect_timeout) * 1000),
    max_body = self.max_response_size,
  }
  log_request(lg, method, path, lines, encoded)

  local attempt = 0
  while true do
    attempt = attempt + 1
    local budget = timeout
    if deadline then budget = min(budget, deadline - clock.now()) end
    request.timeout_ms = ceil(budget * 1000)
    local started = clock.now()
    local res = transport.attempt(self, request)
    local elapsed = clock.now() - started
    local value, err = outcome(res, self.max_response_size)
    if value then
      log_attempt(lg, method, path, res, attempt, attempts, elapsed)
      value.attempts = attempt
      return value
    end
    local again, why = retry.should_retry(res)
    if not again or attempt >= attempts then
      log_attempt(lg, method, path, res, attempt, attempts, elapsed)
      return give_up(lg, method, path, err, attempt)
    end
    local wait, from_server = retry.delay(attempt, res.headers)
    if from_server and wait > retry.MAX_SERVER_DELAY then
      -- Not waited for: the caller decides what to do with that long a pause.
      err.retry_after = wait
      log_attempt(lg, method, path, res, attempt, attempts, elapsed)
      return give_up(lg, method, path, err, attempt)
    end
    if deadline and clock.now() + wait >= deadline then
      log_attempt(lg, method, path, res, attempt, attempts, elapsed)
      return give_up(lg, method, path, err, attempt)
    end
    log_attempt(lg, method, path, res, attempt, attempts, elapsed, wait, why)
    clock.sleep(wait)
  end
end

return _M
