--- Error objects: the one constructor every failure goes through.
--
-- Every run-time failure in cerca is returned as `nil, err`, where `err` is
-- a table made here: `type` (machine readable), `message`, and where known
-- `status`, `request_id`, `headers`, `body` (the raw response text) and
-- `field` (the argument a validation error is about). `tostring(err)` is one
-- line. No error ever holds the API key: nothing here reads request headers.
-- @module cerca.errors

local setmetatable = setmetatable
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
  -- webhooks.verify, receiving a delivery:
  missing_header = "a webhook-id, -timestamp or -signature header is missing, empty or repeated",
  invalid_signature = "no v1 signature matches the body and headers",
  timestamp = "webhook-timestamp is not a number, or outside the tolerance",
  invalid_secret = "the secret is not whsec_ and base64, or decodes to nothing",
  invalid_payload = "the body is not a string, too large, or not a JSON object once verified",
}

local Error = {}
Error.__index = Error
Error.__name = "cerca.Error"

function Error.__tostring(err)
  local parts = { "cerca: ", err.type }
  if err.status and err.status > 0 then
    parts[#parts + 1] = " (HTTP " .. tostring(err.status) .. ")"
  end
  parts[#parts + 1] = ": "
  parts[#parts + 1] = err.message
  if err.request_id then
    parts[#parts + 1] = " (request id " .. err.request_id .. ")"
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

--- True when `v` is an error made by `new`.
function _M.is_error(v)
  return type(v) == "table" and getmetatable(v) == Error
end

local STATUS_TYPES = {
  [401] = "authentication",
  [403] = "permission_denied",
  [404] = "not_found",
  [409] = "conflict",
  [422] = "unprocessable_entity",
  [429] = "rate_limit",
}

--- The error type for a non-2xx status.
function _M.type_for_status(status)
  return STATUS_TYPES[status] or (status >= 500 and status <= 599 and "server") or "api_status"
end

return _M
