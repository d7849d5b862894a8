--- One logical API call: its bytes, its key, and what to do after each
-- attempt. The single path (`Client:request`) and the batch path
-- (`cerca.batch`) drive the same object, so both follow one policy:
--
--     local c = call.new(client, method, path, body, options)  -- or nil, err
--     repeat
--       state, value = c:finish(<one attempt of c:next_request()>)
--     until state ~= "retry"      -- "retry": wait `value` seconds first
--     -- "done": value is the response; "failed": value is the error
-- @module cerca.call

local clock = require "cerca.clock"
local core = require "cerca.core"
local errors = require "cerca.errors"
local json = require "cerca.json"
local redact = require "cerca.redact"
local retry = require "cerca.retry"
local transport = require "cerca.transport"
local validate = require "cerca.validate"

local type = type
local pairs = pairs
local tostring = tostring
local setmetatable = setmetatable
local format = string.format
local lower = string.lower
local match = string.match
local find = string.find
local gsub = string.gsub
local sub = string.sub
local concat = table.concat
local ceil = math.ceil
local min = math.min
local floor = math.floor

local _M = {}

_M.CALL_OPTIONS = { "timeout", "connect_timeout", "max_retries", "headers", "idempotency_key", "deadline" }

-- Headers the library owns, with the way to get what the caller wanted.
_M.RESERVED_HEADERS = {
  authorization = "set the api_key option instead",
  host = "set the base_url option instead",
  ["content-type"] = "the body is always JSON",
  ["content-length"] = "it is computed from the body",
  ["transfer-encoding"] = "it is chosen by libcurl",
  expect = "it is managed by the library",
  ["idempotency-key"] = "set options.idempotency_key instead",
}

-- Header lines from a name -> value table, overriding `into` by lower-case name.
local function merge_headers(into, order, headers)
  for name, value in pairs(headers) do
    local key = lower(name)
    if not into[key] then order[#order + 1] = key end
    into[key] = name .. ": " .. value
  end
end

function _M.header_lines(api_key, client_headers, call_headers)
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

local function check_call_options(options)
  if options == nil then return nil end
  if type(options) ~= "table" then
    return format("options must be a table (got %s); e.g. { timeout = 10 }", validate.describe(options))
  end
  return validate.known_keys(options, "options", _M.CALL_OPTIONS)
    or validate.seconds(options.timeout, "options.timeout")
    or validate.seconds(options.connect_timeout, "options.connect_timeout")
    or validate.integer(options.max_retries, "options.max_retries", 0, 10)
    or validate.headers(options.headers, "options.headers", _M.RESERVED_HEADERS)
    or validate.seconds(options.deadline, "options.deadline")
    or validate.idempotency_key(options.idempotency_key, "options.idempotency_key")
end

local function request_id(headers)
  return headers["x-request-id"] or headers["request-id"]
end

-- The message of an API error body, if it has a readable one.
local function api_message(answer)
  if type(answer) ~= "table" then return nil end
  local e = answer.error
  local m = (type(e) == "table" and e.message) or answer.message or e
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
-- What an error keeps of the answer: status, headers, raw body, request id.
local function answer_fields(res)
  local answered = res.status > 0
  return {
    status = answered and res.status or nil, headers = answered and res.headers or nil,
    body = answered and res.body or nil, request_id = request_id(res.headers),
  }
end

local function outcome(res, max_response_size)
  local status, headers = res.status, res.headers
  local ok = status >= 200 and status < 300
  if ok and not res.error and res.json ~= nil then
    -- The common case first, without building what only errors need.
    return {
      status = status, headers = headers, request_id = request_id(headers), json = res.json, body = res.body,
      raw_headers = res.raw_headers,
    }
  end
  local fields = answer_fields(res)
  if res.error == "too_large" then
    if find(res.error_message or "", "^the response headers") then
      -- The cap on headers (the C core's, interim answers included): the
      -- request was sent, the answer is not one to read.
      return nil, errors.new("invalid_response", res.error_message .. "; what arrived of the body is kept "
        .. "in err.body", fields)
    end
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
  return nil, errors.new("invalid_response", format("the answer (HTTP %d) is not JSON: %s; "
    .. "the raw answer is kept in err.body", status, res.json_error or "empty body"), fields)
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
    -- The answer's own secret is removed wherever the body repeats it.
    local answer = res.json
    local secret = type(answer) == "table" and type(answer.secret) == "string" and answer.secret or nil
    lg:write("debug", redact.text(format("%s %s response body: %s", method, path, res.body), redact.list(secret)))
  end
end

local Call = {}
Call.__index = Call

--- Prepares a call: checks the per-call options, encodes the body once and
-- draws the idempotency key once, so that every attempt sends the same
-- bytes under the same key.
-- @treturn table|nil the call
-- @treturn[opt] table the error (nothing was sent)
function _M.new(client, method, path, body, options)
  -- Read once: what is checked is what is sent.
  local copy, msg, where = validate.snapshot(options, "options")
  if msg then return nil, errors.new("invalid_request", msg, { field = where, attempts = 0 }) end
  options = copy
  msg = check_call_options(options)
  if msg then
    return nil, errors.new("invalid_request", msg, { field = match(msg, "^[%w_%.]+"), attempts = 0 })
  end
  msg = transport.context_error()
  if msg then return nil, errors.new("configuration", msg, { attempts = 0 }) end
  options = options or {}
  local encoded
  if body ~= nil then
    local why
    encoded, why = json.encode_canonical(body)
    if not encoded then
      return nil, errors.new("invalid_request", "the body cannot be encoded as JSON: " .. why, { attempts = 0 })
    end
  end
  local lines = client._header_lines
  if options.headers then lines = _M.header_lines(client._api_key, client._headers, options.headers) end
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

  local lg = client._log
  if lg:enabled("debug") then
    local shown = {}
    for i = 1, #lines do
      -- The credential is left out where it is written, not found later.
      shown[i] = find(lines[i], "^[Aa]uthorization:") and "Authorization: " .. redact.REDACTED or lines[i]
    end
    lg:write("debug", format("%s %s headers: %s; body: %s", method, path, concat(shown, "; "), encoded or ""))
  end
  return setmetatable({
    method = method,
    path = path,
    key = key,
    attempt = 0,
    attempts = (options.max_retries or client.max_retries) + 1,
    secrets = client._secrets,
    timeout = options.timeout or client.timeout,
    -- The deadline runs from the first attempt, not from the time a batch
    -- queued the call.
    deadline_seconds = options.deadline,
    max_response_size = client.max_response_size,
    log = lg,
    request = {
      method = method,
      url = client.base_url .. path,
      headers = lines,
      body = encoded,
      connect_timeout_ms = ceil((options.connect_timeout or client.connect_timeout) * 1000),
      max_body = client.max_response_size,
      no_proxy = client.no_proxy,
    },
  }, Call)
end

-- Less than this is left of the deadline: no attempt is worth starting.
local MIN_BUDGET = 0.001

--- The request table for the next attempt (its timeout is what is left of
-- `timeout` and of the deadline), or nil when the deadline has passed:
-- then `expire()` ends the call.
function Call:next_request()
  local now = clock.now()
  if self.deadline_seconds and not self.deadline then self.deadline = now + self.deadline_seconds end
  local budget = self.timeout
  if self.deadline then budget = min(budget, self.deadline - now) end
  if budget < MIN_BUDGET then return nil end
  self.attempt = self.attempt + 1
  self.request.timeout_ms = ceil(budget * 1000)
  self.started = now
  return self.request
end

--- Ends a call whose deadline passed before its next attempt could start.
-- @treturn string "failed"
-- @treturn table a `timeout` error
function Call:expire()
  return self:_give_up(errors.new("timeout", format("no time was left for attempt %d (%s)", self.attempt + 1,
    self.deadline_seconds and format("deadline %g s", self.deadline_seconds) or "timeout under 1 ms")))
end

-- The end of a call that will not be retried: count the attempts, and warn
-- about what a user must not miss.
function Call:_give_up(err)
  local created = self.created
  if created and err.type ~= "invalid_response" then
    -- An earlier attempt got a 2xx that broke off: the API did create. Its
    -- bytes matter more than the later failure.
    err = errors.new("invalid_response", format("the create succeeded (HTTP %d) on attempt %d but its "
      .. "answer broke off, and the later attempts failed (last: %s); what arrived is kept in err.body: "
      .. "repeat the call with err.idempotency_key to get the subscription", created.status, created.attempt,
      tostring(err)), {
        status = created.status, headers = created.headers, body = created.body,
        request_id = created.request_id, last_error = err,
      })
  end
  err.attempts = self.attempt
  -- The key a repeat must carry to find what this call may have made, and
  -- whether any attempt's request reached a server (if none did, nothing
  -- can have been made).
  if self.key and self.attempt > 0 then err.idempotency_key = self.key end
  if self.request_sent then err.request_sent = true end
  errors.scrub(err, self.secrets)
  local lg = self.log
  if err.type == "invalid_response" then
    lg:write("warn", format("%s %s: %s", self.method, self.path, err.message))
  elseif self.attempt > 1 then
    lg:write("warn", format("%s %s failed after %d attempts: %s", self.method, self.path, self.attempt,
      tostring(err)))
  end
  return "failed", err
end

--- Takes an attempt's response table and says what comes next.
-- @treturn string "done" (value: the response), "failed" (value: the
--   error) or "retry" (value: seconds to wait before the next attempt)
function Call:finish(res)
  local elapsed = clock.now() - self.started
  if res.request_sent then self.request_sent = true end
  local value, err = outcome(res, self.max_response_size)
  local method, path, lg = self.method, self.path, self.log
  if res.error and res.status >= 200 and res.status < 300 and not self.created then
    self.created = { status = res.status, headers = res.headers, body = res.body,
      request_id = request_id(res.headers), attempt = self.attempt }
  end
  local attempt, attempts = self.attempt, self.attempts
  if value then
    log_attempt(lg, method, path, res, attempt, attempts, elapsed)
    value.attempts = attempt
    value.idempotency_key = self.key
    -- An answer that echoes the API key does not hand it on. (The headers
    -- and the decoded body can hold it only if the raw text can.)
    local secrets = self.secrets
    if not redact.absent(value.raw_headers or "", secrets) then
      redact.fields(value.headers, secrets)
      value.request_id = request_id(value.headers)
    end
    if not redact.absent(value.body, secrets) then
      redact.value(value.json, secrets)
      value.body = redact.known(value.body, secrets)
    end
    return "done", value
  end
  local again, why = retry.should_retry(res)
  if not again or attempt >= attempts then
    log_attempt(lg, method, path, res, attempt, attempts, elapsed)
    return self:_give_up(err)
  end
  local wait, from_server = retry.delay(attempt, res.headers)
  if from_server and wait > retry.MAX_SERVER_DELAY then
    -- Not waited for: the caller decides what to do with that long a pause.
    err.retry_after = wait
    log_attempt(lg, method, path, res, attempt, attempts, elapsed)
    return self:_give_up(err)
  end
  if self.deadline and clock.now() + wait + MIN_BUDGET >= self.deadline then
    log_attempt(lg, method, path, res, attempt, attempts, elapsed)
    return self:_give_up(err)
  end
  log_attempt(lg, method, path, res, attempt, attempts, elapsed, wait, why)
  return "retry", wait
end

return _M
