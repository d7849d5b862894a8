--- Argument checks shared by the client and the resources.
--
-- Each check returns nothing when the value is good, or a problem:
-- `{ field = <the argument it is about>, message = <naming the field and the
-- fix> }`. The callers turn a problem into an error of their own type
-- (`invalid_request` or `configuration`).
-- @module cerca.validate

local type = type
local pairs = pairs
local tostring = tostring
local format = string.format
local byte = string.byte
local find = string.find
local lower = string.lower
local upper = string.upper
local match = string.match
local sub = string.sub
local gsub = string.gsub
local sort = table.sort
local huge = math.huge
local min = math.min
local floor = math.floor
local setmetatable = setmetatable
local max = math.max
local ipairs = ipairs
local tonumber = tonumber

local json = require "cerca.json"
local core = require "cerca.core"
local redact = require "cerca.redact"
local text_problem = core.text_problem
local number_text = core.number_text

local pcall = pcall
local error = error
-- The real metatable: a __metatable field does not hide it.
local raw_metatable = debug.getmetatable

local _M = {}

--- A check's finding: the field it is about, and a message that names it and
-- says how to fix it.
-- @tparam string field the argument, e.g. `"options.timeout"`
-- @tparam string fmt the message, a `string.format` pattern
function _M.problem(field, fmt, ...)
  return { field = field, message = format(fmt, ...) }
end
local problem = _M.problem

--- nil, or the problem (`{ field, message }`) of a text a request would
-- carry outside its Authorization line (its URL, body or another header)
-- that holds the API key, in any form: the key is sent in that line only,
-- and the others are written into logs along the way (proxies, servers).
-- The one rule for every argument that becomes part of a request
-- (`cerca.prepare` checks what it assembles, `cerca.webhooks` each
-- argument of a create, `cerca.client` its options).
-- @tparam table secrets the client's (`cerca.redact.list` of the API key)
-- @param text what the argument puts in the request (not a string: nil)
-- @tparam string field the argument, named in the message
-- @tparam string where "the URL", "the body" or "another header"
-- @tparam string fix what to do instead
function _M.key_problem(secrets, text, field, where, fix)
  if secrets[1] and type(text) == "string" and not redact.absent(text, secrets)
      and redact.known(text, secrets, true) ~= text then
    return problem(field, "%s holds the API key, which is sent in the Authorization header only, "
      .. "never in %s: %s", field, where, fix)
  end
end

--- nil, or `key_problem` of the first name or value of a header table
-- that holds the API key.
function _M.headers_key_problem(secrets, headers, field)
  for name, value in pairs(headers) do
    local bad = _M.key_problem(secrets, name, field, "another header", "remove that header")
      or _M.key_problem(secrets, value, field .. "." .. name, "another header",
        "remove that header (the api_key option authenticates every call)")
    if bad then return bad end
  end
end

--- Short description of a value for "(got ...)" in messages. Never prints
-- a whole long string.
function _M.describe(v)
  local t = type(v)
  if t == "string" then
    if #v > 40 then v = sub(v, 1, 37) .. "..." end
    return format("%q", v):gsub("\\\n", "\\n")
  elseif t == "nil" or t == "boolean" or t == "number" then
    return tostring(v)
  end
  return t
end

local describe = _M.describe

local function distance(a, b)
  -- Levenshtein distance, two rows.
  local la, lb = #a, #b
  local prev, cur = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = byte(a, i)
    for j = 1, lb do
      local cost = (ca == byte(b, j)) and 0 or 1
      cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev, cur = cur, prev
  end
  return prev[lb]
end

-- Longer words get no suggestion: the edit distance costs the product of
-- the lengths, and no name cerca knows is near this long.
_M.MAX_SUGGEST_LENGTH = 64

--- The candidate closest to `word`, or nil when none is plausibly meant.
-- @tparam string word what the caller wrote
-- @tparam table candidates a list of valid names
function _M.suggest(word, candidates)
  if type(word) ~= "string" or #word > _M.MAX_SUGGEST_LENGTH then return nil end
  local best, best_d = nil, huge
  local w = lower(word)
  for i = 1, #candidates do
    local d = distance(w, candidates[i])
    if d < best_d then best, best_d = candidates[i], d end
  end
  -- A third of the word's length, at least 2: catches typos, not guesses.
  if best_d <= max(2, floor(#word / 3)) then return best end
  return nil
end

--- Position and byte of the first control character (C0, DEL), or nil.
-- `allow_tab` lets horizontal tab through (header values may hold it).
function _M.control_char(s, allow_tab)
  local i = 0
  while true do
    i = find(s, "[%z\1-\31\127]", i + 1)
    if not i then return nil end
    local b = byte(s, i)
    if not (allow_tab and b == 9) then return i, b end
  end
end

--- The UTF-8 sequence starting at byte `i` of `s` (`n` = `#s`): its length
-- and code point, or nil when it is not well-formed (overlong, surrogate,
-- beyond U+10FFFF, cut short).
local function utf8_at(s, i, n)
  local c = byte(s, i)
  if c < 0x80 then return 1, c end
  local len, lo, hi, cp
  if c >= 0xC2 and c <= 0xDF then len, lo, hi, cp = 2, 0x80, 0xBF, c - 0xC0
  elseif c == 0xE0 then len, lo, hi, cp = 3, 0xA0, 0xBF, c - 0xE0
  elseif c == 0xED then len, lo, hi, cp = 3, 0x80, 0x9F, c - 0xE0
  elseif c >= 0xE1 and c <= 0xEF then len, lo, hi, cp = 3, 0x80, 0xBF, c - 0xE0
  elseif c == 0xF0 then len, lo, hi, cp = 4, 0x90, 0xBF, c - 0xF0
  elseif c >= 0xF1 and c <= 0xF3 then len, lo, hi, cp = 4, 0x80, 0xBF, c - 0xF0
  elseif c == 0xF4 then len, lo, hi, cp = 4, 0x80, 0x8F, c - 0xF0
  else return nil end
  if i + len - 1 > n then return nil end
  local c2 = byte(s, i + 1)
  if c2 < lo or c2 > hi then return nil end
  cp = cp * 64 + (c2 - 0x80)
  for k = i + 2, i + len - 1 do
    local ck = byte(s, k)
    if ck < 0x80 or ck > 0xBF then return nil end
    cp = cp * 64 + (ck - 0x80)
  end
  return len, cp
end

--- True when `s` is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
function _M.is_utf8(s)
  -- ASCII text needs no walk.
  if not find(s, "[\128-\255]") then return true end
  local i, n = 1, #s
  while i <= n do
    local len = utf8_at(s, i, n)
    if not len then return false end
    i = i + len
  end
  return true
end

--- Checks a non-empty text value with no control characters, valid UTF-8.
-- @param v the value to check
-- @tparam string field name for messages
-- @tparam string example a good value, shown in the fix
-- @tparam[opt] number max_bytes the longest value accepted
function _M.text(v, field, example, max_bytes)
  if type(v) ~= "string" then
    return problem(field, "%s must be a non-empty string (got %s); pass e.g. %q", field, describe(v), example)
  end
  if v == "" then
    return problem(field, "%s must not be empty; pass e.g. %q", field, example)
  end
  if max_bytes and #v > max_bytes then
    return problem(field, "%s is %d bytes long; at most %d are accepted", field, #v, max_bytes)
  end
  local kind, at, b = text_problem(v)
  if kind == "control" then
    return problem(field, "%s contains a control character (byte %d at position %d); remove it", field, b, at)
  end
  if kind then
    return problem(field, "%s is not valid UTF-8; pass the text encoded as UTF-8", field)
  end
end

-- Characters a URI may hold as they are (RFC 3986: unreserved, gen-delims,
-- sub-delims); "%" is checked separately for its two hex digits.
local NOT_URI_CHAR = "[^%w%-%._~:/%?#%[%]@!%$&'%(%)%*%+,;=%%]"

-- A URL for messages: credentials before an "@" are never repeated.
local function describe_url(v)
  local masked, n = gsub(v, "^([^/]*//)[^/%?#]*@", "%1***@")
  if n == 0 then masked = gsub(v, "^[^/%?#]*@", "***@") end
  return describe(masked)
end

-- URLs that parsed, by field: a batch (or a loop of creates) checks the
-- same URL again and again, and the strict parse is the costliest check
-- (its patterns run a character class per byte). Bounded; a string's parse
-- never changes, so a hit gives what the parse would.
local parsed, parsed_count = {}, 0
local MAX_PARSED = 256

local parse_url

--- Parses an absolute http(s) URL strictly (RFC 3986 characters only).
-- Messages never repeat the URL's user:password part.
-- @tparam[opt] number max_bytes the longest URL accepted
-- @return scheme (lower case), host, or nil and a problem
function _M.parse_url(v, field, example, max_bytes)
  local by_field = parsed[field]
  local hit = by_field and by_field[v]
  if hit and hit.max_bytes == max_bytes then return hit.scheme, hit.host end
  local scheme, host = parse_url(v, field, example, max_bytes)
  if scheme and type(v) == "string" then
    if parsed_count >= MAX_PARSED then parsed, parsed_count = {}, 0 end
    by_field = parsed[field]
    if not by_field then
      by_field = {}
      parsed[field] = by_field
    end
    by_field[v] = { scheme = scheme, host = host, max_bytes = max_bytes }
    parsed_count = parsed_count + 1
  end
  return scheme, host
end

function parse_url(v, field, example, max_bytes)
  if type(v) ~= "string" then
    return nil, problem(field, "%s must be a string (got %s); pass e.g. %q", field, describe(v), example)
  end
  if max_bytes and #v > max_bytes then
    return nil, problem(field, "%s is %d bytes long; at most %d are accepted", field, #v, max_bytes)
  end
  -- One scan finds the first character a URL may not hold as it is; only
  -- then is it worth saying what is wrong with it.
  local bad = find(v, NOT_URI_CHAR)
  if bad then
    local ch = sub(v, bad, bad)
    if find(ch, "[%s%c]") then
      return nil, problem(field, "%s contains whitespace or a control character at position %d; "
        .. "percent-encode it (a space is %%20)", field, bad)
    end
    if byte(ch) >= 128 then
      return nil, problem(field, "%s contains a non-ASCII byte at position %d; "
        .. "percent-encode it, and write an international host name in its xn-- (punycode) form", field, bad)
    end
    return nil, problem(field, "%s contains %q at position %d, which a URL may not hold; "
      .. "percent-encode it", field, ch, bad)
  end
  local pct = find(v, "%", 1, true)
  while pct do
    if not find(v, "^%x%x", pct + 1) then
      return nil, problem(field, "%s has a %% at position %d not followed by two hex digits; "
        .. "write a literal %% as %%25", field, pct)
    end
    pct = find(v, "%", pct + 3, true)
  end
  local scheme, rest = match(v, "^(%a[%w%+%-%.]*):(.*)$")
  if not scheme then
    return nil, problem(field, "%s must be an absolute URL (got %s); pass e.g. %q", field, describe_url(v), example)
  end
  local authority = match(rest, "^//([^/%?#]*)")
  if not authority then
    return nil, problem(field, "%s must be an absolute URL with a host (got %s); pass e.g. %q", field,
      describe_url(v), example)
  end
  local userinfo, hostport = match(authority, "^(.*)@(.*)$")
  hostport = hostport or authority
  local host, port = match(hostport, "^(%[[^%]]*%])(.*)$")
  if not host then
    host, port = match(hostport, "^([^:]*)(.*)$")
  end
  if host == "" then
    return nil, problem(field, "%s must name a host (got %s); pass e.g. %q", field, describe_url(v), example)
  end
  -- "[" and "]" belong around an IPv6 host only; "#" starts the one fragment.
  local beyond = sub(rest, #authority + 3)
  if find(host, "^%[") and not find(host, "^%[[%x:%.]+%]$") then
    return nil, problem(field, "%s has a host in brackets that is not an IPv6 address (got %s)", field, describe(host))
  end
  if find(beyond, "[%[%]]") or find(userinfo or "", "[%[%]]") or find(port, "[%[%]]")
    or (not find(host, "^%[") and find(host, "[%[%]]")) then
    return nil, problem(field, "%s holds \"[\" or \"]\" outside an IPv6 host; percent-encode them (%%5B, %%5D)", field)
  end
  if find(beyond, "#.*#") then
    return nil, problem(field, "%s holds more than one \"#\"; percent-encode the others (%%23)", field)
  end
  if port ~= "" then
    local digits = match(port, "^:(%d*)$")
    local number = tonumber(digits)
    if not digits or (digits ~= "" and (number < 1 or number > 65535)) then
      return nil, problem(field, "%s has an invalid port (got %s); use a number from 1 to 65535", field, describe(port))
    end
  end
  return lower(scheme), lower(host)
end

-- The methods of the API are upper-case words; a method is compared
-- byte for byte (RFC 9110), so "Post" is not POST and would draw no
-- idempotency key.
local MAX_METHOD_BYTES = 20

--- Checks an HTTP method: upper-case letters only.
function _M.http_method(v, field)
  if v == "POST" or v == "GET" then return nil end
  if v == "HEAD" then
    -- An answer without a body: the transport would wait for one.
    return problem(field, "%s HEAD is not supported: its answer has no body to read; use GET", field)
  end
  if type(v) == "string" and #v <= MAX_METHOD_BYTES then
    if find(v, "^[A-Z]+$") then return nil end
    if find(v, "^%a+$") then
      return problem(field, "%s must be upper case: pass %q (got %s)", field, upper(v), describe(v))
    end
  end
  return problem(field, "%s must be an HTTP method in upper case, e.g. \"POST\" (got %s)", field, describe(v))
end

local path_problem = core.path_problem
local MAX_PATH_BYTES = 8192

--- Checks a request path below base_url ("/fleets/f/webhooks?x=1"). It is
-- joined to base_url as it is: anything but a leading "/" could name
-- another host ("@evil.example/") and send it the API key, a CR or LF
-- would start a header, and a "." or ".." segment would step out of
-- base_url's path. What a path may hold: RFC 3986 pchar, "/" and "?" (no
-- "#": a fragment is never sent), "%" with two hex digits; scanned in C
-- (`core.path_problem`), since every create pays it.
-- Paths that passed, for the calls that follow (a loop or a batch over the
-- same fleets sends the same few): a lookup instead of a scan. Bounded:
-- emptied when full.
local MAX_GOOD_PATHS = 256
local good_paths, good_paths_count = {}, 0

local check_path, path_kind_problem

-- @treturn[opt] table the problem
-- @treturn[opt] string what kind of problem (`core.path_problem`'s)
function _M.request_path(v, field)
  if good_paths[v] then return nil end
  local bad, kind = check_path(v, field)
  if bad then return bad, kind end
  if good_paths_count >= MAX_GOOD_PATHS then good_paths, good_paths_count = {}, 0 end
  good_paths[v] = true
  good_paths_count = good_paths_count + 1
end

function check_path(v, field)
  local example = "/fleets/fleet_abc123/webhooks"
  if type(v) ~= "string" then
    return problem(field, "%s must be a string (got %s); pass e.g. %q", field, describe(v), example)
  end
  if #v > MAX_PATH_BYTES then
    return problem(field, "%s is %d bytes long; at most %d are accepted", field, #v, MAX_PATH_BYTES)
  end
  local at, kind = path_problem(v)
  if not at then return nil end
  return path_kind_problem(v, field, example, at, kind), kind
end

function path_kind_problem(v, field, example, at, kind)
  if kind == "start" then
    return problem(field, "%s must start with \"/\" (got %s): it is joined to base_url, "
      .. "and anything else could name another host; pass e.g. %q", field, describe(v), example)
  elseif kind == "char" then
    local ch = sub(v, at, at)
    local what = find(ch, "[%s%c]") and "whitespace or a control character"
      or byte(ch) >= 128 and "a non-ASCII byte" or format("%q", ch)
    return problem(field, "%s contains %s at position %d, which a request path may not hold; "
      .. "percent-encode it", field, what, at)
  elseif kind == "percent" then
    return problem(field, "%s has a %% at position %d not followed by two hex digits; "
      .. "write a literal %% as %%25", field, at)
  elseif kind == "overlong" then
    return problem(field, "%s holds %s at position %d: no UTF-8 text holds that byte, and some servers read it "
      .. "as part of an overlong \".\" or \"/\"; pass the path without it", field, upper(sub(v, at, at + 2)), at)
  end
  return problem(field, "%s holds a \".\" or \"..\" segment (or one followed by \";\", %%3B, %%3F, %%23 or "
    .. "%%00), which URL handling reads as a step out of base_url's path (got %s); pass the path without it",
    field, describe(v))
end

-- Header field names are RFC 9110 tokens.
local TOKEN = "^[%w!#%$%%&'%*%+%-%.%^_`|~]+$"

--- Checks a table of extra HTTP headers (name -> value).
-- @param v the value to check (nil passes)
-- @tparam string field name for messages
-- @tparam table reserved lower-case names the caller may not set, each
--   mapped to the fix to show
function _M.headers(v, field, reserved)
  if v == nil then return nil end
  if type(v) ~= "table" then
    return problem(field, "%s must be a table of name = value strings (got %s)", field, describe(v))
  end
  -- Checked key by key as they are (never through tostring, which could
  -- make two keys one), in a stable order for the message.
  local names = {}
  for name in pairs(v) do
    if type(name) ~= "string" then
      return problem(field, "%s: %s is not a valid header name; use letters, digits and - only", field, describe(name))
    end
    names[#names + 1] = name
  end
  sort(names)
  for _, name in ipairs(names) do
    local value = v[name]
    local where = format("%s[%q]", field, name)
    if not find(name, TOKEN) then
      return problem(field, "%s: %s is not a valid header name; use letters, digits and - only", where, describe(name))
    end
    local fix = reserved[lower(name)]
    if fix then
      return problem(field, "%s: %s cannot be set as a header; %s", where, name, fix)
    end
    if type(value) ~= "string" then
      return problem(field, "%s must be a string (got %s)", where, describe(value))
    end
    local at, b = _M.control_char(value, true)
    if at then
      return problem(field, "%s contains a control character (byte %d at position %d); "
        .. "CR, LF and NUL would split the request, remove them", where, b, at)
    end
  end
end

--- Checks an idempotency key: 1 to 255 printable ASCII characters, no space.
function _M.idempotency_key(v, field)
  if v == nil then return nil end
  if type(v) ~= "string" or #v < 1 or #v > 255 or not find(v, "^[\33-\126]+$") then
    return problem(field, "%s must be 1 to 255 printable ASCII characters without spaces (got %s)",
      field, describe(v))
  end
end

--- Checks a number of seconds: positive and finite.
function _M.seconds(v, field)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v <= 0 or v == huge then
    return problem(field, "%s must be a positive number of seconds (got %s)", field, describe(v))
  end
  if v < 0.001 then
    return problem(field, "%s must be at least 0.001 seconds (got %s)", field, describe(v))
  end
end

--- Checks a finite number within [lo, hi] (NaN and infinities refused).
function _M.number(v, field, lo, hi)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v < lo or v > hi then
    return problem(field, "%s must be a number from %s to %s (got %s)", field, tostring(lo), tostring(hi), describe(v))
  end
end

--- Checks a whole number within [lo, hi].
function _M.integer(v, field, lo, hi)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= floor(v) or v < lo or v > hi then
    return problem(field, "%s must be a whole number from %d to %d (got %s)", field, lo, hi, describe(v))
  end
end

--- Checks that the keys of `t` are all in `known` (a list); suggests the
-- closest one otherwise.
-- @tparam table t the table to check
-- @tparam string field name for messages
-- @tparam {string,...} known the allowed keys
-- @tparam[opt] string hint appended to the message (where other keys belong)
local allowed_sets = setmetatable({}, { __mode = "k" })

function _M.known_keys(t, field, known, hint)
  local allowed = allowed_sets[known]
  if not allowed then
    allowed = {}
    for i = 1, #known do allowed[known[i]] = true end
    allowed_sets[known] = allowed
  end
  local bad
  for k in pairs(t) do
    if not allowed[k] then
      bad = bad or {}
      bad[#bad + 1] = k
    end
  end
  if not bad then return nil end
  sort(bad, function(a, b) return tostring(a) < tostring(b) end)
  local key = bad[1]
  local guess = _M.suggest(key, known)
  return problem(field, "%s: unknown key %s%s%s", field, describe(key),
    guess and format("; did you mean %q?", guess) or "",
    hint and ("; " .. hint) or "")
end

local MAX_DEPTH = 32
-- Entries read from one argument at most: a __pairs that never ends
-- cannot hang the caller.
local MAX_ENTRIES = 1000000
_M.MAX_ENTRIES = MAX_ENTRIES

-- Raised inside `snapshot` to stop the copy with a message of ours.
local Stop = {}

-- Where a copy stopped, for its message: the field and the first `keys`
-- keys of the path to the value being read.
local function stop(ctx, message, keys)
  local where = ctx.field
  for i = 1, keys do
    local k = ctx.path[i]
    if type(k) == "string" then
      where = where .. "." .. k
    else
      where = where .. "[" .. tostring(k) .. "]"
    end
  end
  Stop.message, Stop.where = format(message, where), where
  error(Stop)
end

local function copy(v, depth, ctx)
  if type(v) ~= "table" or v == core.empty_array then return v end
  -- An object cerca made (a replay guard) is passed on as it is: it is not
  -- the caller's data, and its state must stay shared.
  local mt = raw_metatable(v)
  if mt ~= nil and rawget(mt, "__cerca_object") then return v end
  -- Fields given through __index would be in no copy (tables are read with
  -- pairs, and no code of the caller's is run): an idempotency key, a
  -- replay guard or a timeout would be left out without a word. Refused.
  if mt ~= nil and rawget(mt, "__index") ~= nil then
    stop(ctx, "%s has a metatable with __index: cerca reads a table's own fields (with pairs), never through "
      .. "__index; pass a plain table, with any defaults copied into it", depth)
  end
  -- Two levels more than JSON values may nest, so that their own check
  -- (json_value) is the one that speaks of a deep value.
  if depth > MAX_DEPTH + 2 then
    stop(ctx, "%s nests deeper than " .. MAX_DEPTH .. " levels (or refers to itself)", 1)
  end
  local out = {}
  for k, item in pairs(v) do
    ctx.left = ctx.left - 1
    if ctx.left < 0 then
      -- Counted for the whole argument, not the part being read.
      stop(ctx, "%s holds more than " .. MAX_ENTRIES .. " table entries in all (a table held in several places "
        .. "counts in each); pass less at a time (to create_many, fewer items per call)", 0)
    end
    ctx.path[depth + 1] = k
    out[copy(k, depth + 1, ctx)] = copy(item, depth + 1, ctx)
  end
  -- Lists decoded by cerca keep their mark (an empty one stays [] in JSON).
  if mt == json.array_mt then setmetatable(out, json.array_mt) end
  return out
end

-- How many more entries a plain `v` could hold within `max_entries`, or
-- false: plain is no table of `v` with a metatable cerca does not know
-- (the real metatable, whatever a __metatable field says), no table as a
-- key, no deeper nesting than the copy allows. Then nothing but the
-- caller's own code can change it, and no code of the caller runs between
-- cerca's checks and its use of the value within one synchronous call.
-- No metamethod is run to find out. (The walk is the C core's.)
local plain_left = core.plain_left

--- An argument used within one synchronous call: itself when it is plain
-- (no metatable cerca does not know, anywhere in it), else `snapshot(v)`.
-- A value kept, or used after a yield, needs `snapshot`.
-- @tparam[opt] number max_entries entries walked at most to find out (1000)
function _M.settled(v, field, max_entries)
  if type(v) ~= "table" or plain_left(v, json.array_mt, core.empty_array, MAX_DEPTH + 2, max_entries or 1000) then
    return v
  end
  return _M.snapshot(v, field)
end

--- A plain copy of an argument, read once: tables are walked with `pairs`
-- (so a `__pairs` runs once), and the copy has no metatable (except the
-- JSON list mark), so what is checked afterwards is exactly what is sent.
-- @param v the argument
-- @tparam string field its name, for messages
-- @return the copy, or nil, a message (a metamethod that raised, or an
--   absurd size) and the field it is about
function _M.snapshot(v, field)
  if type(v) ~= "table" then return v end
  local ctx = { left = MAX_ENTRIES, field = field, path = {} }
  local ok, result = pcall(copy, v, 0, ctx)
  if ok then return result end
  if result == Stop then return nil, Stop.message, Stop.where end
  local why = type(result) == "string" and result or ("a " .. type(result))
  if #why > 200 then why = sub(why, 1, 197) .. "..." end
  return nil, format("%s could not be read: a metamethod raised an error (%s)", field, why), field
end

-- Checks that v can be sent as JSON exactly as the caller means it.
local function json_value(v, path, depth, ctx)
  local t = type(v)
  if t == "string" then
    if not _M.is_utf8(v) then
      return problem(ctx.root, "%s is not valid UTF-8; JSON text must be UTF-8", path)
    end
  elseif t == "number" then
    if v ~= v or v == huge or v == -huge then
      return problem(ctx.root, "%s must be a finite number (got %s)", path, tostring(v))
    end
    -- Request bodies keep the bytes lua-cjson's 14 significant digits gave
    -- them (a repeat under an idempotency key sends the same body): a
    -- number that needs more is refused (core.number_text says, in the C
    -- locale, whatever decimal point the program's locale has).
    local digits, cjson_digits = number_text(v)
    if not cjson_digits then
      return problem(ctx.root, "%s has more digits than JSON numbers keep here (%s); send it as a string", path,
        digits)
    end
  elseif t == "boolean" then
    return nil
  elseif v == ctx.null or v == ctx.empty_array then
    return nil
  elseif t == "table" then
    if depth >= MAX_DEPTH then
      return problem(ctx.root, "%s nests deeper than %d levels (or refers to itself)", ctx.root, MAX_DEPTH)
    end
    -- A list has only keys 1..n; an object only string keys.
    local ints, strings, max_key = 0, 0, 0
    for k in pairs(v) do
      if type(k) == "number" and k >= 1 and k == floor(k) then
        ints = ints + 1
        if k > max_key then max_key = k end
      elseif type(k) == "string" then
        if not _M.is_utf8(k) then
          return problem(ctx.root, "%s has a key that is not valid UTF-8; JSON text must be UTF-8", path)
        end
        strings = strings + 1
      else
        return problem(ctx.root, "%s has a key of type %s (%s); JSON objects need string keys",
          path, type(k), describe(k))
      end
    end
    if ints > 0 and strings > 0 then
      return problem(ctx.root, "%s mixes list items and named keys; use one or the other", path)
    end
    if ints ~= max_key then
      return problem(ctx.root, "%s is a list with holes; JSON arrays cannot hold nil", path)
    end
    for k, item in pairs(v) do
      local sub_path = (type(k) == "number") and format("%s[%d]", path, k) or format("%s.%s", path, k)
      local msg = json_value(item, sub_path, depth + 1, ctx)
      if msg then return msg end
    end
  else
    return problem(ctx.root, "%s is a %s, which cannot be sent as JSON; "
      .. "use a string, number, boolean, table or cerca.null", path, t)
  end
end

--- Checks a value destined for the JSON body.
-- @param v the value to check
-- @tparam string path where it is, for messages
-- @param null the JSON null sentinel
-- @param empty_array the empty-array sentinel
function _M.json_value(v, path, null, empty_array)
  return json_value(v, path, 0, { root = path, null = null, empty_array = empty_array })
end

return _M
