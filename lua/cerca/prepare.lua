--- One call's request, made once before its first attempt: the per-call
-- options checked, the body encoded once, the idempotency key drawn once,
-- the header lines assembled. Every attempt sends these same bytes.
-- @module cerca.prepare

local core = require "cerca.core"
local errors = require "cerca.errors"
local json = require "cerca.json"
local validate = require "cerca.validate"
local redact = require "cerca.redact"

local type = type
local pairs = pairs
local lower = string.lower
local ceil = math.ceil

local _M = {}

-- A call without options reads its settings from this (never written).
local NO_OPTIONS = {}

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

--- The header lines of a call: the library's, then the client's, then the
-- call's own (a later one replaces an earlier one of the same name).
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
  return redact.sealed_lines(lines)
end

local key_problem = validate.key_problem
local headers_key_problem = validate.headers_key_problem
local absent = redact.absent

local function check_options(options)
  if options == nil then return nil end
  if type(options) ~= "table" then
    return validate.problem("options", "options must be a table (got %s); e.g. { timeout = 10 }",
      validate.describe(options))
  end
  return validate.known_keys(options, "options", _M.CALL_OPTIONS)
    or validate.seconds(options.timeout, "options.timeout")
    or validate.seconds(options.connect_timeout, "options.connect_timeout")
    or validate.integer(options.max_retries, "options.max_retries", 0, 10)
    or validate.headers(options.headers, "options.headers", _M.RESERVED_HEADERS)
    or validate.seconds(options.deadline, "options.deadline")
    or validate.idempotency_key(options.idempotency_key, "options.idempotency_key")
end

-- The method and path of the last call that passed their checks, and the
-- secrets the path was checked against (at first a value no argument
-- equals: nil must be checked too).
local NONE = {}
local last_method, last_path, last_secrets = NONE, NONE, NONE
-- The body text that last passed its search for the key, and those
-- secrets; a longer text is not kept alive for it.
local last_clean_body, last_clean_secrets = NONE, NONE
local MAX_CLEAN_KEPT = 4096
local canonical_text = json.canonical_text

local function refused(kind, message, field)
  return nil, errors.new(kind, message, { field = field, attempts = 0 })
end

--- Whole milliseconds (rounded up) of a number of seconds the checks let
-- through, for the C core's `timeout_ms` and `connect_timeout_ms`. In
-- floating point: an integer (Lua 5.3 on) times 1000 wraps around
-- (math.maxinteger to a negative number, 18446744073709552 to 384 ms);
-- the C core caps what it is given at about 24 days.
-- @tparam number seconds
-- @treturn number
function _M.milliseconds(seconds)
  return ceil(seconds * 1000.0)
end

--- Prepares a call. `profile` is what the client gives every call (see
-- `cerca.client`): `url`, `timeout`, `connect_timeout`, `max_retries`,
-- `max_response_size`, `no_proxy`, and `header_lines(call_headers)`.
-- @tparam table into the table the plan is written into (the call)
-- @tparam[opt] boolean options_copied `options` is already a private copy
-- @treturn table|nil `into`, with `request` (the table each attempt hands
--   to the C core), `key`, `attempts`, `timeout`, `deadline_seconds`
-- @treturn[opt] table the error (nothing was sent)
function _M.call(profile, method, path, body, options, into, options_copied)
  -- The path is joined to base_url as it is, and the method goes on the
  -- request line: both are checked before anything else is read (a loop
  -- or a batch sends the pair it sent last: two comparisons then).
  local bad
  local secrets = profile.secrets
  if path ~= last_path or method ~= last_method or secrets ~= last_secrets then
    bad = validate.http_method(method, "method") or validate.request_path(path, "path")
      or key_problem(secrets, path, "path", "the URL", "remove it from the path")
    if bad then return refused("invalid_request", bad.message, bad.field) end
    last_method, last_path, last_secrets = method, path, secrets
  end
  if options ~= nil then
    if not options_copied then
      -- Read once: what is checked is what is sent.
      local copy, msg, where = validate.snapshot(options, "options")
      if msg then return refused("invalid_request", msg, where) end
      options = copy
    end
    -- The key to repeat a call with is kept whole in the result and in
    -- every error, and printed: never the API key given in the wrong place.
    bad = check_options(options)
      or key_problem(secrets, options.idempotency_key, "options.idempotency_key", "another header",
        "give a key of your own (1 to 255 printable ASCII characters; cerca.new_idempotency_key() draws one)")
      or (options.headers and headers_key_problem(secrets, options.headers, "options.headers"))
    if bad then return refused("invalid_request", bad.message, bad.field) end
  else
    options = NO_OPTIONS
  end
  local encoded
  if body ~= nil then
    encoded = canonical_text(body)
    if not encoded then
      local why
      encoded, why = json.encode_canonical(body)
      if not encoded then return refused("invalid_request", "the body cannot be encoded as JSON: " .. why) end
    end
    -- (A body that cannot hold the key in any form, as a rule, is passed
    -- by the one search in C; the text that passed it last is not searched
    -- again for the same key.)
    if secrets[1] and (encoded ~= last_clean_body or secrets ~= last_clean_secrets) then
      if not absent(encoded, secrets) then
        bad = key_problem(secrets, encoded, "body", "the body", "remove it from the body")
        if bad then return refused("invalid_request", bad.message, bad.field) end
      end
      if #encoded <= MAX_CLEAN_KEPT then last_clean_body, last_clean_secrets = encoded, secrets end
    end
  end
  local lines = profile.header_lines(options.headers)
  -- One key for the whole call: a retry of a create that did happen gets
  -- the same subscription back instead of a second one.
  local key = options.idempotency_key
  if key == nil and method == "POST" then
    key = core.uuid4()
    if not key then
      return refused("configuration", "cannot draw an idempotency key: the random generator failed")
    end
  end
  into.key = key
  into.attempts = (options.max_retries or profile.max_retries) + 1
  into.timeout = options.timeout or profile.timeout
  -- Runs from the first attempt, not from the time a batch queued the call.
  into.deadline_seconds = options.deadline
  into.request = {
    method = method,
    url = profile.url .. path,
    -- The client's lines as they are (shared by its calls); the C core
    -- sends the key first, as its own line.
    headers = lines,
    idempotency_key = key,
    body = encoded,
    connect_timeout_ms = _M.milliseconds(options.connect_timeout or profile.connect_timeout),
    max_body = profile.max_response_size,
    no_proxy = profile.no_proxy,
    timeout_ms = nil,  -- each attempt's (named: the table is made with its slot)
  }
  return into
end

return _M
