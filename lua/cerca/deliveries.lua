--- Receiving deliveries: Standard Webhooks v1 signatures.
--
-- A delivery carries three headers: `webhook-id` (the message id),
-- `webhook-timestamp` (seconds since the epoch) and `webhook-signature`
-- (space-separated `v1,<base64>` entries). The signed bytes are
-- `id .. "." .. timestamp .. "." .. raw_body`, the MAC is HMAC-SHA256 under
-- the base64-decoded secret (after an optional `whsec_` prefix). The MAC,
-- the base64, the parsing of the signature list and the constant-time
-- comparison happen in the C core, with OpenSSL, on a key decoded once per
-- secret; this module reads the headers and the options.
-- @module cerca.deliveries

local core = require "cerca.core"
local errors = require "cerca.errors"
local validate = require "cerca.validate"
local redact = require "cerca.redact"

local type = type
local tostring = tostring
local getmetatable = getmetatable
local setmetatable = setmetatable
local pairs = pairs
local tonumber = tonumber
local select = select
local format = string.format
local lower = string.lower
local match = string.match
local time = os.time

local _M = {}

_M.DEFAULT_TOLERANCE = 300          -- seconds, either side of now
_M.DEFAULT_MAX_BODY = 1024 * 1024   -- bytes
_M.MAX_SIGNATURES = 16              -- entries of webhook-signature examined
_M.DEFAULT_GUARD_SIZE = 100000      -- message ids an in-process replay guard keeps

local HEADERS = { "webhook-id", "webhook-timestamp", "webhook-signature" }

local NO_SECRETS = redact.list()

local BAD_SECRET = {
  invalid_secret = "the secret is not valid: expected whsec_ followed by base64 of the key",
  too_long = format("the secret is not valid: its key is longer than %d bytes", core.MAX_KEY_BYTES),
}

local function fail(kind, message, field)
  return nil, errors.new(kind, message, field and { field = field } or nil)
end

-- A timestamp as the headers carry it: twelve digits at most reach the
-- year 33658, longer is garbage, not a time. The number, or nil.
local function seconds_of(text)
  return match(text, "^%d%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?$") and tonumber(text)
end

-- Replay guards: message ids that passed, each kept until its delivery's
-- timestamp leaves the tolerance window (after which the delivery is
-- refused as too old anyway).
local Guard = {}
Guard.__index = Guard
Guard.__name = "cerca.ReplayGuard"
Guard.__cerca_object = true -- validate.snapshot passes it on as it is

-- Claims `id` until `expires` (seconds since the epoch): true when it was
-- not held, false when a delivery with this id already passed.
function Guard:claim(id, expires, now)
  local dict = self.dict
  if dict then
    -- `add` is atomic across nginx's workers: of two racing on one id,
    -- one gets true.
    -- Held through the second `expires` itself, the last one a delivery
    -- passes in (never 0, which a shared dict reads as "forever").
    local ok, why = dict:add(id, true, expires - now + 1)
    if ok then return true end
    if why == "exists" then return false end
    return nil, "the replay guard's shared dict refused the id: " .. tostring(why)
  end
  local seen, slot = self.seen, self.slot
  local at = seen[id]
  if at and at >= now then return false end
  -- Bounded: past `size` claims, the oldest is forgotten first. An id
  -- claimed again (its window over) takes the newest place: the place it
  -- held before no longer counts, and forgetting it there would let a
  -- replay of the new claim through.
  local ring, head = self.ring, self.head
  local old = ring[head]
  if old ~= nil and slot[old] == head then seen[old], slot[old] = nil, nil end
  ring[head] = id
  slot[id] = head
  self.head = head % self.size + 1
  seen[id] = expires
  return true
end

--- A replay guard for `verify`: an id that already passed within the
-- tolerance window is refused (`replayed`).
-- @tparam table opts `size` (in-process: the most ids kept, 1 to 10,000,000,
--   default 100,000) or `dict` (an `ngx.shared` dict, shared by nginx's
--   workers)
-- @treturn table|nil the guard
-- @treturn[opt] table an `invalid_request` error
function _M.replay_guard(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    return fail("invalid_request", format("replay_guard takes a table: { size = 100000 } or "
      .. "{ dict = ngx.shared.NAME } (got %s)", validate.describe(opts)), "opts")
  end
  local bad = validate.known_keys(opts, "opts", { "size", "dict" })
    or validate.integer(opts.size, "opts.size", 1, 1e7)
  if bad then return fail("invalid_request", bad.message, bad.field) end
  local dict = opts.dict
  if dict ~= nil then
    if opts.size ~= nil then
      return fail("invalid_request", "opts: give size (in-process) or dict (shared), not both", "opts")
    end
    if type(dict) ~= "table" or type(dict.add) ~= "function" then
      return fail("invalid_request", format("opts.dict must be an ngx.shared dict, e.g. ngx.shared.cerca_replay "
        .. "(declared with lua_shared_dict in nginx.conf) (got %s)", validate.describe(dict)), "opts.dict")
    end
    return setmetatable({ dict = dict }, Guard)
  end
  return setmetatable({ size = opts.size or _M.DEFAULT_GUARD_SIZE, seen = {}, slot = {}, ring = {}, head = 1 },
    Guard)
end

local VERIFY_OPTIONS = { "tolerance", "now", "max_body", "replay" }
local NO_OPTIONS = {}

-- The checked options of verify (a plain copy), or nil, a message and the
-- field: a bad option fails the verification, it is never ignored.
local function verify_options(opts)
  if opts == nil then return NO_OPTIONS end
  if type(opts) ~= "table" then
    return nil, format("opts must be a table (got %s); e.g. { tolerance = 300 }", validate.describe(opts)), "opts"
  end
  local copy, why = validate.snapshot(opts, "opts")
  if not copy then return nil, why, "opts" end
  local bad = validate.known_keys(copy, "opts", VERIFY_OPTIONS)
    or validate.number(copy.tolerance, "opts.tolerance", 0, 1e9)
    or validate.number(copy.now, "opts.now", 0, 1e15)
    or validate.integer(copy.max_body, "opts.max_body", 0, 2 ^ 40)
  if bad then return nil, bad.message, bad.field end
  if copy.replay ~= nil and getmetatable(copy.replay) ~= Guard then
    return nil, format("opts.replay must be a guard made by cerca.webhooks.replay_guard (got %s)",
      validate.describe(copy.replay)), "opts.replay"
  end
  return copy
end

-- Decoded keys by secret, so that a secret is decoded (and its HMAC states
-- made) once, not on every delivery. Bounded: a program verifies for a few
-- subscriptions; past the bound the cache starts over.
local MAX_KEYS = 64
local keys, key_count = {}, 0

-- The key of a `whsec_...` secret (the prefix is optional), or nil and
-- what is wrong with it (a key of BAD_SECRET).
local function key_of(secret)
  if type(secret) ~= "string" then return nil, "invalid_secret" end
  local key = keys[secret]
  if key then return key end
  local why
  key, why = core.webhook_key(match(secret, "^whsec_(.*)$") or secret)
  if not key then return nil, why end
  if key_count >= MAX_KEYS then keys, key_count = {}, 0 end
  keys[secret], key_count = key, key_count + 1
  return key
end

-- The lengths of the three names: only a name of one of these lengths is
-- lower-cased and compared (most headers are not looked at twice).
local NAME_LENGTH = { [#HEADERS[1]] = true, [#HEADERS[2]] = true, [#HEADERS[3]] = true }
local WANTED = { [HEADERS[1]] = 1, [HEADERS[2]] = 2, [HEADERS[3]] = 3 }

-- The three headers (id, timestamp, signature), looked up whatever their
-- letter case; one sent twice (in two spellings, or as a list) is refused.
local function read_headers(headers)
  if type(headers) ~= "table" then
    return nil, "headers must be a table of the request's headers"
  end
  local found = {}
  for name, value in pairs(headers) do
    local i = type(name) == "string" and NAME_LENGTH[#name] and WANTED[lower(name)]
    if i then
      if found[i] ~= nil or type(value) == "table" then
        return nil, format("%s was sent more than once; a delivery has exactly one", HEADERS[i])
      end
      if type(value) ~= "string" then
        return nil, format("%s must be the header's text, a string (got %s)", HEADERS[i], type(value))
      end
      found[i] = value
    end
  end
  for i = 1, 3 do
    if found[i] == nil or found[i] == "" then
      return nil, format("the %s header is missing", HEADERS[i])
    end
  end
  return found[1], found[2], found[3]
end

--- The `webhook-signature` value for a payload: `"v1,<base64>"`.
-- @tparam string raw_body the exact bytes sent
-- @tparam string secret `whsec_...`
-- @tparam string msg_id the `webhook-id`
-- @param timestamp the `webhook-timestamp` (seconds; number or string)
-- @treturn string|nil the header value
-- @treturn[opt] table an `invalid_secret` error
function _M.sign(raw_body, secret, msg_id, timestamp)
  if type(raw_body) ~= "string" or type(msg_id) ~= "string"
    or (type(timestamp) ~= "number" and type(timestamp) ~= "string") then
    return fail("invalid_payload", "sign(raw_body, secret, msg_id, timestamp) takes strings "
      .. "(the timestamp may be a number)")
  end
  if type(timestamp) == "number" then
    if timestamp ~= timestamp or timestamp < 0 or timestamp >= 1e12 or timestamp % 1 ~= 0 then
      return fail("invalid_payload", "the timestamp must be a whole number of seconds, at most 12 digits")
    end
    timestamp = format("%.0f", timestamp)
  end
  -- What verify would refuse is not signed.
  if not seconds_of(timestamp) then
    return fail("invalid_payload", "the timestamp must be a whole number of seconds, at most 12 digits")
  end
  local key, why = key_of(secret)
  if not key then return fail("invalid_secret", BAD_SECRET[why] or BAD_SECRET.invalid_secret) end
  return "v1," .. key:sign(msg_id, timestamp, raw_body)
end

--- Verifies a delivery and decodes its JSON event.
-- @tparam string raw_body the request body exactly as received
-- @tparam table headers the request headers (any letter case)
-- @tparam string secret the subscription's `whsec_...` secret
-- @tparam[opt] table opts `tolerance` (seconds, default 300), `now`
--   (seconds since the epoch, default the current time), `max_body` (bytes,
--   default 1 MiB)
-- @treturn table|nil the event
-- @treturn[opt] table an error: `missing_header`, `invalid_signature`,
--   `timestamp`, `invalid_secret` or `invalid_payload`
function _M.verify(raw_body, headers, secret, opts)
  local why, field
  opts, why, field = verify_options(opts)
  if not opts then return fail("invalid_request", why, field) end
  local max_body = opts.max_body or _M.DEFAULT_MAX_BODY
  if type(raw_body) ~= "string" then
    return fail("invalid_payload", "the body must be the raw request body, a string")
  end
  if #raw_body > max_body then
    return fail("invalid_payload", format("the body is larger than %d bytes", max_body))
  end
  -- A secret that does not decode is a configuration fault: say so first,
  -- whatever else is wrong with this delivery.
  local key, bad_key = key_of(secret)
  if not key then return fail("invalid_secret", BAD_SECRET[bad_key] or BAD_SECRET.invalid_secret) end

  local id, timestamp, signature = read_headers(headers)
  if not id then return fail("missing_header", timestamp) end

  local ts = seconds_of(timestamp)
  if not ts then
    return fail("timestamp", "webhook-timestamp is not a whole number of seconds")
  end
  local tolerance = opts.tolerance or _M.DEFAULT_TOLERANCE
  local now = opts.now or time()
  if ts < now - tolerance then
    return fail("timestamp", format("the delivery is too old (%.0f s, tolerance %g s)", now - ts, tolerance))
  end
  if ts > now + tolerance then
    return fail("timestamp", format("the delivery is from the future (%.0f s ahead, tolerance %g s)",
      ts - now, tolerance))
  end

  local ok, no_match = key:verify(id, timestamp, raw_body, signature, _M.MAX_SIGNATURES)
  if not ok then
    if no_match == "no_v1" then
      return fail("invalid_signature", "webhook-signature holds no v1 signature")
    end
    return fail("invalid_signature", "no signature matches: the body, the headers or the secret differ "
      .. "from what was signed")
  end

  local event, json_why = core.decode(raw_body)
  -- An event is an object; a JSON array decodes to a table too.
  if type(event) ~= "table" or not match(raw_body, "^%s*{") then
    return fail("invalid_payload", "the signed body is not a JSON object"
      .. (json_why and (": " .. json_why) or ""))
  end
  -- Recorded only now: a forged or broken delivery cannot block a real one.
  local guard = opts.replay
  if guard then
    local fresh, gwhy = guard:claim(id, ts + tolerance, now)
    if fresh == nil then return fail("internal", gwhy) end
    if not fresh then
      return fail("replayed", format("a delivery with this webhook-id (%s) already passed within the "
        .. "tolerance window", validate.describe(id)))
    end
  end
  return event
end

-- The secret a function was given, in both the forms `verify` takes it
-- (with and without `whsec_`), as a list for `errors.scrub`.
local function given_secrets(secret)
  if type(secret) ~= "string" then return NO_SECRETS end
  local bare = match(secret, "^whsec_(.*)$") or secret
  -- (A form shorter than redact.MIN_SECRET is no secret, and is left out.)
  return redact.list("whsec_" .. bare, bare)
end

-- `fn` whose every error is rid of the secret in its argument `secret_at`
-- and of any `whsec_` token: a secret given in the wrong place (as an
-- option, or as the options) is never printed.
local function scrubbed(fn, secret_at)
  return function(...)
    local value, err = fn(...)
    if value == nil and errors.is_error(err) then
      errors.scrub(err, given_secrets(secret_at and (select(secret_at, ...))))
    end
    return value, err
  end
end

-- No public function raises: a fault inside becomes `nil, err`.
_M.sign = scrubbed(errors.protect(_M.sign), 2)
_M.verify = scrubbed(errors.protect(_M.verify), 3)
_M.replay_guard = scrubbed(errors.protect(_M.replay_guard))

return _M
