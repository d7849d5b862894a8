--- Error objects: the one constructor every failure goes through.
--
-- Every run-time failure in cerca is returned as `nil, err`, where `err` is
-- a table made here: `type` (machine readable), `message`, and where known
-- `status`, `request_id`, `headers`, `body` (the raw response text) and
-- `field` (the argument a validation error is about); `withheld` marks one
-- that keeps a success's answer whose secret could not be found in it (its
-- request id is then not printed). `tostring(err)` is one
-- line, its control characters escaped. No error holds the API key: the
-- call layer passes every error that may carry an answer through `scrub`.
-- @module cerca.errors

local pretty = require "cerca.pretty"
local redact = require "cerca.redact"
local core_printable = require("cerca.core").printable

local setmetatable = setmetatable
local pcall = pcall
local getmetatable = getmetatable
local tostring = tostring
local type = type
local pairs = pairs
local concat = table.concat

local _M = {}

--- Every `err.type` cerca produces, with what it means.
_M.TYPES = {
  invalid_request = "the arguments were rejected before anything was sent",
  configuration = "the client is not usable as configured (e.g. no API key)",
  authentication = "HTTP 401: the API key was refused",
  permission_denied = "HTTP 403: the key may not do this",
  not_found = "HTTP 404: no such fleet or path",
  conflict = "HTTP 409: conflicts with the current state",
  unprocessable_entity = "HTTP 422: the API refused the body",
  rate_limit = "HTTP 429: too many requests",
  server = "HTTP 5xx: the API failed",
  api_status = "any other non-2xx status, redirects included",
  connection = "no answer: refused, reset, closed early, DNS",
  timeout = "the attempt ran out of time",
  tls = "TLS handshake or certificate verification failed",
  invalid_response = "a 2xx answer that cannot be read; raw body kept in err.body",
  cancelled = "create_many was told to stop (opts.stop) before this call was sent: it sent nothing",
  -- webhooks.verify, receiving a delivery:
  missing_header = "a webhook-id, -timestamp or -signature header is missing, empty or repeated",
  invalid_signature = "no v1 signature matches the body and headers",
  timestamp = "webhook-timestamp is not a number, or outside the tolerance",
  invalid_secret = "the secret is not whsec_ and base64, or decodes to nothing",
  invalid_payload = "the body is not a string, too large, or not a JSON object once verified",
  replayed = "a delivery with this webhook-id already passed within the tolerance window (replay guard)",
  internal = "a fault inside cerca (please report it); the call may have been sent: see err.idempotency_key",
}

local Error = {}
Error.__index = Error
Error.__name = "cerca.Error"

local printable = pretty.printable

function Error.__tostring(err)
  local parts = { "cerca: ", printable(tostring(err.type)) }
  if type(err.status) == "number" and err.status > 0 then
    parts[#parts + 1] = " (HTTP " .. tostring(err.status) .. ")"
  end
  parts[#parts + 1] = ": "
  parts[#parts + 1] = printable(tostring(err.message))
  if err.request_id and not err.withheld then
    parts[#parts + 1] = " (request id " .. printable(tostring(err.request_id)) .. ")"
  end
  -- What a repeat needs, on the line a log or a terminal shows.
  if err.maybe_created and type(err.idempotency_key) == "string" then
    parts[#parts + 1] = "; it may have been created: repeat with idempotency key "
    parts[#parts + 1] = printable(err.idempotency_key)
    parts[#parts + 1] = " to get it without a duplicate"
  end
  return concat(parts)
end

--- Makes an error. `fields` (optional) is copied onto it.
-- @tparam string kind one of the keys of `TYPES`
-- @tparam string message one line, naming the field and the fix where it can
-- @tparam[opt] table fields `status`, `request_id`, `headers`, `body`, `field`, ...
-- @treturn table the error
function _M.new(kind, message, fields)
  local err = { type = kind, message = message }
  if fields then
    for k, v in pairs(fields) do
      if err[k] == nil then err[k] = v end
    end
  end
  return setmetatable(err, Error)
end

--- Removes secrets from every string an error carries: known ones
-- (`cerca.redact.list`) and recognisable ones (`whsec_` tokens, ...) from
-- each text, known ones from the raw body. The raw body keeps an
-- answer's secret: it is how a create that cannot be read is recovered.
-- Used on every error that may hold what a server sent. `keep_body`:
-- the raw bodies are left as they are (an unusable create's, which hold
-- the secret removed from everything else).
-- @treturn table the error
-- Values used as they are, never rewritten: the raw body (how a create is
-- recovered; scrubbed of known secrets only, below) and the key to repeat
-- the call with (rewritten, a repeat would make a duplicate).
local EXACT = { body = true, idempotency_key = true }
-- Texts never cut short: a start of a secret at their end is their own.
local WHOLE = { request_id = true }

function _M.scrub(err, secrets, keep_body)
  -- Every text the error carries (the message, the request id, the field
  -- a refusal names, which may quote a table's key), not a list of them.
  for k, v in pairs(err) do
    if type(v) == "string" and not EXACT[k] then
      -- Kept escaped only where escaping spelt a secret (see
      -- `redact.printed`): `tostring` escapes what it prints.
      local clean = redact.text(v, secrets, WHOLE[k])
      local shown = redact.printed(clean, secrets, WHOLE[k])
      err[k] = shown ~= core_printable(clean) and shown or clean
    end
  end
  if type(err.body) == "string" and not keep_body then err.body = redact.known(err.body, secrets) end
  -- Header values are raw text: the key may stand there escaped.
  if type(err.headers) == "table" then redact.fields(err.headers, secrets) end
  if _M.is_error(err.last_error) then _M.scrub(err.last_error, secrets, keep_body) end
  return err
end

local function settle(ok, ...)
  if ok then return ... end
  local why = ...
  why = type(why) == "string" and why or type(why)
  return nil, _M.new("internal", "cerca failed unexpectedly: " .. why .. "; please report it")
end

--- `fn` made safe to call: a fault inside it is returned as `nil, err`
-- (type `internal`) instead of raised. Public functions are wrapped in it.
-- `secrets_of(...)`, given the same arguments, names what such an error
-- must not quote (a client's API key): a raised message may hold it.
-- (Up to four results of `fn` pass through.)
function _M.protect(fn, secrets_of)
  if not secrets_of then
    return function(...) return settle(pcall(fn, ...)) end
  end
  return function(...)
    local ok, a, b, c, d = pcall(fn, ...)
    if ok then return a, b, c, d end
    local _, err = settle(false, a)
    local found, secrets = pcall(secrets_of, ...)
    if found and secrets then pcall(_M.scrub, err, secrets) end
    return nil, err
  end
end

--- True when `v` is an error made by `new`.
function _M.is_error(v)
  return type(v) == "table" and getmetatable(v) == Error
end

return _M
