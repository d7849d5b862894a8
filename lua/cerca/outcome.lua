--- What one attempt's answer means: the one place that reads the C core's
-- response table, and the one place that knows HTTP statuses.
--
-- `classify(res, max_response_size, secrets)` turns the table into either
-- a response (the table itself, with `request_id` added to its `status`,
-- `raw_headers`, `json` and `body`) or a failure:
--
--     { error = <typed error>, retryable = <boolean>, reason = <for the log>,
--       created = <true when a 2xx arrived that cannot be used: the API
--                  acted, and the bytes that arrived must be kept>,
--       uncertain = <true when the request was sent and the answer does
--                    not say the API did not act: a 2xx that cannot be
--                    used, a 5xx, or no answer at all> }
--
-- What is retried is decided here, by what happened: no answer
-- (`connection`), a `timeout`, a 2xx whose body broke off (the same
-- idempotency key is sent again, so the API replays the subscription it
-- made), and the statuses 408, 409, 429 and 5xx; a response header
-- `x-should-retry: true|false` overrides that. How long to wait, and how
-- many attempts, is `cerca.retry`'s.
--
-- It is also the one place where an answer's header block becomes the
-- table of its fields (`headers`), made on first use: a create reads only
-- its request id, looked up in the block.
-- @module cerca.outcome

local core = require "cerca.core"
local errors = require "cerca.errors"
local redact = require "cerca.redact"

local type = type
local ipairs = ipairs
local tostring = tostring
local rawget = rawget
local setmetatable = setmetatable
local format = string.format
local find = string.find
local gsub = string.gsub
local lower = string.lower
local sub = string.sub

local _M = {}

-- The error type of each non-2xx status that has one of its own.
local STATUS_TYPES = {
  [401] = "authentication",
  [403] = "permission_denied",
  [404] = "not_found",
  [409] = "conflict",
  [422] = "unprocessable_entity",
  [429] = "rate_limit",
}

-- Statuses worth another attempt, besides 5xx.
local RETRY_STATUS = { [408] = true, [409] = true, [429] = true }

-- The fix for a server certificate no CA cerca trusts signed.
local CA_FIX = "a server whose certificate a CA of your own signed needs that CA's PEM file as the ca_file option "
  .. "(or CERCA_CA_FILE)"

-- The C core's transport errors: their type, and whether to try again.
local TRANSPORT = {
  connection = { type = "connection", retryable = true },
  timeout = { type = "timeout", retryable = true },
  tls = { type = "tls", retryable = false },
}

-- What to do about a certificate libcurl refused, by what its message says.
local TLS_FIXES = {
  { "local issuer", CA_FIX },
  { "self%-signed", CA_FIX },
  { "unable to get issuer", CA_FIX },
  { "subject name", "the host in base_url must be a name the server's certificate holds" },
  { "expired", "the server's certificate has expired: it must be renewed on the server" },
}

-- Reason phrases for messages when the API gives none of its own.
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

--- The error type for a non-2xx status.
function _M.type_for_status(status)
  return STATUS_TYPES[status] or (status >= 500 and status <= 599 and "server") or "api_status"
end

local header_table = core.headers
local header = core.header

--- The table of an answer's header fields (lower-case names; repeated
-- fields joined with ", "), made from its `raw_headers` on first use and
-- kept in its `headers`.
function _M.headers(res)
  local h = rawget(res, "headers")
  if h == nil then
    h = header_table(res.raw_headers or "")
    res.headers = h
  end
  return h
end
local headers_of = _M.headers

--- The request id an answer carries (`X-Request-Id`, else `Request-Id`), or nil.
function _M.request_id(res)
  local raw = res.raw_headers or ""
  return header(raw, "x-request-id") or header(raw, "request-id")
end
local request_id = _M.request_id

-- What the caller gets in place of an answer's table: `headers` is made
-- when it is first read.
local LAZY_HEADERS = {
  __index = function(t, k)
    if k == "headers" then return headers_of(t) end
  end,
}

local may_hold_folded = core.may_hold_folded
local joinable = redact.joinable

--- Gives `t` (a table holding `raw_headers`, rid of the secrets `a` and
-- `b` as they are written) a `headers` field made on its first read.
-- Header names are lower-cased there, which would spell a secret the block
-- holds in other letters, plainly or escaped, and a repeated field's values
-- are joined with ", ", which would spell one that holds a comma or a
-- space: when the table may (the block holds a secret in other letters, or
-- a `%` or `\`; a secret holds a comma or a space: all rare), it is made
-- now, without them. Returns `t`.
function _M.lazy_headers(t, a, b)
  setmetatable(t, LAZY_HEADERS)
  if (a and joinable(a)) or (b and joinable(b)) or ((a or b) and may_hold_folded(t.raw_headers or "", a, b)) then
    redact.fields(headers_of(t), redact.list(a, b))
  end
  return t
end

-- The message of an API error body, if it has a readable one: cut to 500
-- bytes, after `secrets` are removed (cut first, a secret across the cut
-- would no longer be found whole).
local function api_message(answer, secrets)
  if type(answer) ~= "table" then return nil end
  local e = answer.error
  local m = (type(e) == "table" and e.message) or answer.message or e
  if type(m) ~= "string" or m == "" then return nil end
  m = gsub(m, "%c", " ")
  if secrets then m = redact.text(m, secrets) end
  if #m > 500 then m = sub(m, 1, 497) .. "..." end
  return m
end

--- True when `res` is a success whose secret cannot be found in every form
-- it may take: its body did not decode, or its secret is an object, a list
-- or a number (a `null` or `false` secret is none), or reads as a number
-- (which may stand elsewhere written another way, 7.38e11). Any text of
-- such an answer may hold the secret: its request id and body are never
-- printed (the log, an error's message and `pretty`), though the caller
-- gets them (`withheld` on an error), as the way to recover the create.
function _M.secret_unknown(res)
  local answer = res.json
  local secret = type(answer) == "table" and answer.secret
  return res.status >= 200 and res.status <= 299 and (res.body or "") ~= "" and (type(answer) ~= "table"
    or type(secret) == "table" or type(secret) == "number" or (type(secret) == "string" and tonumber(secret) ~= nil))
end
local secret_unknown = _M.secret_unknown

-- What an error keeps of the answer: status, headers, raw body, request id.
local function answer_fields(res)
  local answered = res.status > 0
  return {
    status = answered and res.status or nil, headers = answered and headers_of(res) or nil,
    body = answered and res.body or nil, request_id = request_id(res), withheld = secret_unknown(res) or nil,
  }
end

local function status_error(res, note, secrets)
  local status = res.status
  local message = api_message(res.json, secrets)
    or ("HTTP " .. status .. (REASONS[status] and (" " .. REASONS[status]) or ""))
  local headers = headers_of(res)
  if status >= 300 and status < 400 and headers.location then
    message = message .. "; redirects are not followed (Location: " .. headers.location .. ")"
  end
  return errors.new(_M.type_for_status(status), message .. (note or ""), {
    status = status, headers = headers, body = res.body, request_id = request_id(res),
  })
end

-- The error of an attempt that gave no usable response, and whether the
-- kind of failure is worth another attempt (before any x-should-retry).
local function failure_of(res, max_response_size, secrets)
  local status, kind = res.status, res.error
  local ok = status >= 200 and status < 300
  local fields = answer_fields(res)
  if kind == "too_large" then
    if find(res.error_message or "", "^the response headers") then
      -- The cap on headers (the C core's, interim answers included): the
      -- request was sent, the answer is not one to read.
      return errors.new("invalid_response", res.error_message .. "; what arrived of the body is kept "
        .. "in err.body", fields), false
    end
    if ok or status == 0 then
      return errors.new("invalid_response", format("the answer is larger than max_response_size "
        .. "(%d bytes); what arrived is kept in err.body", max_response_size), fields), false
    end
    return status_error(res, " (body truncated at max_response_size)", secrets), false
  end
  if kind == "configuration" or kind == "internal" then
    -- Nothing was sent (transport.failed): no handle, or a request the C
    -- core refused in another Lua VM (nginx's threads).
    return errors.new(kind, res.error_message), false
  end
  if kind then
    if ok then
      -- Headers said 2xx, then the body broke off: the call may well have
      -- succeeded, so keep every byte that arrived, and ask again with the
      -- same key to get the subscription.
      return errors.new("invalid_response", format("the answer broke off after HTTP %d (%s); "
        .. "what arrived is kept in err.body", status, res.error_message), fields), TRANSPORT[kind] ~= nil
        and TRANSPORT[kind].retryable
    end
    if kind == "url" then
      return errors.new("configuration", "the request URL is not usable: " .. res.error_message, fields), false
    end
    local t, message = TRANSPORT[kind], res.error_message
    if kind == "tls" then
      for _, fix in ipairs(TLS_FIXES) do
        if find(message, fix[1]) then
          message = message .. "; " .. fix[2]
          break
        end
      end
    end
    return errors.new(t and t.type or "connection", message, fields), t ~= nil and t.retryable
  end
  if not ok then
    return status_error(res, nil, secrets), RETRY_STATUS[status] or (status >= 500 and status <= 599)
  end
  return errors.new("invalid_response", format("the answer (HTTP %d) is not JSON: %s; "
    .. "the raw answer is kept in err.body", status, res.json_error or "empty body"), fields), false
end

--- What a 2xx that could not be used is worth when a later attempt ended
-- the call: the API did act, so its bytes (which may hold the secret) are
-- what the error keeps, and the later failure follows in `last_error`.
-- @tparam table created the 2xx: `status`, `headers`, `body`,
--   `request_id`, `attempt`, `broke_off` (its transfer failed)
-- @tparam table later the error that ended the call
-- @treturn table an `invalid_response` error
function _M.after_created(created, later)
  return errors.new("invalid_response", format("the create succeeded (HTTP %d) on attempt %d but its answer "
    .. "%s, and %s (last: %s); what arrived is kept in err.body: repeat the call with err.idempotency_key "
    .. "to get the subscription", created.status, created.attempt,
    created.broke_off and "broke off" or "could not be used",
    later.type == "invalid_response" and "a later answer could not be used either" or "the later attempts failed",
    tostring(later)), {
      status = created.status, headers = created.headers, body = created.body,
      request_id = created.request_id, withheld = created.withheld, last_error = later,
    })
end

--- Classifies one attempt's response table (the C core's).
-- @tparam table res `status`, `raw_headers`, `body`, `json` or `json_error`,
--   `error` and `error_message` when no usable answer arrived
-- @tparam number max_response_size the cap, named in messages
-- @tparam[opt] table secrets removed from the API's message before it is cut
-- @treturn table|nil the response
-- @treturn[opt] table the failure: `error`, `retryable`, `reason`, `created`,
--   `uncertain`
function _M.classify(res, max_response_size, secrets)
  local status = res.status
  if status >= 200 and status < 300 and not res.error and res.json ~= nil then
    -- The common case first, without building what only failures need:
    -- the attempt's own table is the response.
    res.request_id = request_id(res)
    return res
  end
  local err, retryable = failure_of(res, max_response_size, secrets)
  local reason = retryable and (res.error or ("HTTP " .. status)) or nil
  local override = headers_of(res)["x-should-retry"]
  if override then
    override = lower(override)
    if override == "true" then
      retryable, reason = true, "x-should-retry: true"
    elseif override == "false" then
      retryable, reason = false, nil
    end
  end
  local created = status >= 200 and status < 300
  -- libcurl sent the request again within this attempt (a kept-alive
  -- connection closed before any byte of an answer): the first send reached
  -- a server and got no answer, so whatever answered the later one (a 409
  -- "in progress", a 429, a 4xx) says nothing of what the first did.
  local lost_send = res.request_sent and (res.resent or 0) > 0
  if lost_send and not (created or (res.error ~= nil and status == 0) or (status >= 500 and status <= 599)) then
    err.message = format("%s; the request went out %d times in this attempt (libcurl sent it again after a "
      .. "connection closed with no answer), so an earlier one may have acted", err.message, res.resent + 1)
  end
  return nil, {
    error = err,
    retryable = retryable or false,
    reason = reason,
    created = created or nil,
    -- A 5xx may follow work done; any other status turned the request away
    -- (a 409 or 429 after an attempt whose outcome is unknown does not
    -- undo that attempt: the call keeps its uncertainty).
    uncertain = res.request_sent and (created or (res.error ~= nil and status == 0)
      or (status >= 500 and status <= 599) or lost_send) or nil,
  }
end

return _M
