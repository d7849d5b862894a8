--- The retry policy: whether another attempt is made, and when.
--
-- It decides on a failure as `cerca.outcome` classified it (what is worth
-- retrying is decided there, by what happened), never on the raw answer:
--
-- * a failure that is not `retryable`, or the last allowed attempt, ends
--   the call;
-- * the wait before retry n is `min(0.5 * 2^(n-1), 8)` seconds times a
--   jitter factor in [0.75, 1], unless the server names one
--   (`retry-after-ms`, then `Retry-After` in seconds or as an HTTP date);
-- * a server-named wait over `MAX_SERVER_DELAY` is not waited for: the call
--   ends, and the error says how long the server asked for.
-- @module cerca.retry

local type = type
local tonumber = tonumber
local floor = math.floor
local min = math.min
local random = math.random
local match = string.match
local find = string.find
local gmatch = string.gmatch
local lower = string.lower
local time = os.time

local _M = {}

_M.INITIAL_DELAY = 0.5     -- seconds, before the first retry
_M.MAX_BACKOFF = 8         -- seconds, cap of the exponential backoff
_M.MAX_SERVER_DELAY = 60   -- seconds; a longer Retry-After ends the call

--- Exponential backoff with jitter for retry number `n` (1, 2, ...).
-- @tparam int n the retry number: 1 before the first retry
-- @tparam[opt] function rand a uniform [0, 1) source (default math.random)
function _M.backoff(n, rand)
  local base = min(_M.INITIAL_DELAY * 2 ^ (n - 1), _M.MAX_BACKOFF)
  return base * (1 - 0.25 * (rand or random)())
end

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6,
  jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12 }

-- Days since 1970-01-01 of a proleptic Gregorian date.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy - 719468
end

--- Seconds since the epoch of an HTTP date (RFC 9110: IMF-fixdate, and the
-- obsolete RFC 850 and asctime forms), or nil.
function _M.parse_http_date(s)
  if type(s) ~= "string" or #s > 64 then return nil end
  local d, mon, y, h, mi, sec = match(s, "^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d then
    d, mon, y, h, mi, sec = match(s, "^%a+, (%d%d)%-(%a%a%a)%-(%d%d) (%d%d):(%d%d):(%d%d) GMT$")
    if y then
      -- RFC 9110: a two-digit year more than 50 years ahead is in the past.
      y = tonumber(y) + 2000
      if y > tonumber(os.date("!%Y")) + 50 then y = y - 100 end
    end
  end
  if not d then
    mon, d, h, mi, sec, y = match(s, "^%a%a%a (%a%a%a) ([ %d]%d) (%d%d):(%d%d):(%d%d) (%d%d%d%d)$")
  end
  if not d then return nil end
  local month = MONTHS[lower(mon)]
  d, y, h, mi, sec = tonumber(d), tonumber(y), tonumber(h), tonumber(mi), tonumber(sec)
  if not month or d < 1 or d > 31 or h > 23 or mi > 59 or sec > 60 then return nil end
  return ((days_from_civil(y, month, d) * 24 + h) * 60 + mi) * 60 + sec
end

-- The longest wait reported (seconds, about 31,700 years): a longer one
-- is not waited for either, and stays a finite number.
local MAX_REPORTED = 1e12

local function non_negative(n)
  if n and n == n and n >= 0 then return min(n, MAX_REPORTED) end
  return nil
end

-- One value of `retry-after-ms`, in seconds.
local function ms_value(v)
  local n = non_negative(tonumber(match(v, "^%s*([%d%.]+)%s*$")))
  return n and n / 1000
end

-- One value of `Retry-After`: seconds, or an HTTP date.
local function retry_after_value(v, now)
  local n = non_negative(tonumber(match(v, "^%s*(%d+%.?%d*)%s*$")))
  if n then return n end
  local at = _M.parse_http_date(match(v, "^%s*(.-)%s*$"))
  if not at then return nil end
  local wait = at - now
  return wait > 0 and wait or 0
end

-- The longest of the waits a header names. A field repeated (a proxy that
-- adds its own) arrives joined with ", ", as does the comma of a date's
-- weekday, which is put back. The longest is the safe one to honour.
local function longest(value, read)
  local whole = read(value)
  if whole or not find(value, ",", 1, true) then return whole end
  local best, pending
  for part in gmatch(value .. ",", "([^,]*),") do
    local n
    if pending then
      n = read(pending .. "," .. part) or read(part)
      pending = nil
    elseif match(part, "^%s*%a+%s*$") then
      pending = part
    else
      n = read(part)
    end
    if n and (not best or n > best) then best = n end
  end
  return best
end

--- The wait the server asks for, in seconds, or nil when it names none
-- (or names one we cannot read). A value repeated or listed gives its
-- longest readable wait.
-- @tparam table headers lower-case response headers
-- @tparam[opt] number now wall-clock seconds since the epoch (for dates)
function _M.server_delay(headers, now)
  if not headers then return nil end
  local ms = headers["retry-after-ms"]
  if ms then
    local n = longest(ms, ms_value)
    if n then return n end
  end
  local ra = headers["retry-after"]
  if not ra then return nil end
  now = now or time()
  return longest(ra, function(v) return retry_after_value(v, now) end)
end

--- The wait before retry `n`: the server's if it names one, else backoff.
-- @treturn number seconds
-- @treturn boolean true when the server named it
function _M.delay(n, headers)
  local server = _M.server_delay(headers)
  if server then return server, true end
  return _M.backoff(n), false
end

--- Whether to make another attempt after a failed one, and when.
-- @tparam table failure the failure `cerca.outcome.classify` returned
-- @tparam int attempt the attempt that failed (1 for the first)
-- @tparam int attempts how many attempts the call may make
-- @tparam[opt] table headers the answer's lower-case headers
-- @treturn number|nil seconds to wait before the next attempt; nil: none
-- @treturn[opt] number the server's wait, when it was too long to wait for
function _M.next_wait(failure, attempt, attempts, headers)
  if not failure.retryable or attempt >= attempts then return nil end
  local wait, from_server = _M.delay(attempt, headers)
  if from_server and wait > _M.MAX_SERVER_DELAY then return nil, wait end
  return wait
end

return _M
