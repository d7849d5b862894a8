--- JSON for callers: the C core's encoder, with lists kept as lists.
--
-- Debian's lua-cjson decodes `[]` and `{}` to the same empty table, and
-- encodes an empty table as `{}`. Lists that cerca decodes (a
-- subscription's `events`) carry `array_mt`, and `encode` writes such a
-- table as `[]` even when it is empty, so a subscription re-encoded by the
-- caller has the contract's shape.
-- @module cerca.json

local core = require "cerca.core"

local type = type
local pairs = pairs
local sort = table.sort
local concat = table.concat
local next = next
local getmetatable = getmetatable
local format = string.format
local gsub = string.gsub
local byte = string.byte
local huge = math.huge

local _M = {}

--- Marks a table as a JSON array.
_M.array_mt = { __name = "cerca.array" }

-- Encoded object members' openings, by key: `"key":` and, for every member
-- but the first, `,"key":`. Bodies repeat the same few names.
local first_members, next_members, cached_keys = {}, {}, 0

local function member(k, first)
  local text = (first and first_members or next_members)[k]
  if text then return text end
  local encoded = core.encode(k) .. ":"
  if cached_keys < 1024 then
    first_members[k], next_members[k] = encoded, "," .. encoded
    cached_keys = cached_keys + 1
  end
  return first and encoded or "," .. encoded
end

-- A number beyond the range of doubles (1e999 in an answer) decodes to
-- an infinity, which JSON cannot write as such: it is written back as the
-- out-of-range literal every JSON reader turns into the same value again.
local OVERFLOW = { [huge] = "1e999", [-huge] = "-1e999" }

-- True when no item of the list v is a table or an infinity (cjson then
-- writes it as is, in order: one call for the whole list).
local function flat(v, n)
  for i = 1, n do
    local item = v[i]
    if (type(item) == "table" and item ~= core.empty_array) or OVERFLOW[item] then return false end
  end
  return true
end

-- Appends the canonical text of v to out after its n-th item; returns the
-- new count, or nil and a message. `overflow`: infinities are written as
-- 1e999 (output) instead of refused (requests).
local function canonical(v, out, n, depth, overflow)
  if type(v) ~= "table" or v == core.empty_array or depth > 64 then
    local text, why
    if overflow and OVERFLOW[v] then text = OVERFLOW[v] else text, why = core.encode(v) end
    if not text then return nil, why end
    out[n + 1] = text
    return n + 1
  end
  local len = #v
  if len > 0 or (getmetatable(v) == _M.array_mt and next(v) == nil) then
    if len > 0 and flat(v, len) then
      local text, why = core.encode(v)
      if not text then return nil, why end
      out[n + 1] = text
      return n + 1
    end
    n = n + 1
    out[n] = "["
    for i = 1, len do
      if i > 1 then
        n = n + 1
        out[n] = ","
      end
      local why
      n, why = canonical(v[i], out, n, depth + 1, overflow)
      if not n then return nil, why end
    end
    out[n + 1] = "]"
    return n + 1
  end
  local keys, count = {}, 0
  for k in pairs(v) do
    if type(k) ~= "string" then return nil, "object keys must be strings" end
    count = count + 1
    keys[count] = k
  end
  if count > 1 then sort(keys) end
  n = n + 1
  out[n] = "{"
  for i = 1, count do
    local k = keys[i]
    out[n + 1] = member(k, i == 1)
    local why
    n, why = canonical(v[k], out, n + 1, depth + 1, overflow)
    if not n then return nil, why end
  end
  out[n + 1] = "}"
  return n + 1
end

--- Canonical JSON text of `value`: object keys in sorted order at every
-- depth, so that the same value gives the same bytes in every process (a
-- repeat under an idempotency key must send the body the API stored).
-- @treturn string|nil the text
-- @treturn[opt] string why it cannot be encoded
function _M.encode_canonical(value)
  local out = {}
  local n, why = canonical(value, out, 0, 0, false)
  if not n then return nil, why end
  return concat(out)
end

-- Characters cjson leaves as they are that a terminal would act on: DEL,
-- the C1 controls and the bidirectional overrides, written as \u escapes
-- (the same JSON value).
local function escape_controls(text)
  text = gsub(text, "\127", "\\u007f")
  text = gsub(text, "\194([\128-\159])", function(c) return format("\\u%04x", byte(c)) end)
  text = gsub(text, "\226\128([\170-\174])", function(c) return format("\\u%04x", 0x2000 + byte(c) - 0x80) end)
  return (gsub(text, "\226\129([\166-\169])", function(c) return format("\\u%04x", 0x2040 + byte(c) - 0x80) end))
end

--- JSON text of `value` for output (a subscription printed or stored):
-- keys sorted, lists kept as lists even when empty, an infinity decoded
-- from an out-of-range number written back as `1e999`, and no character a
-- terminal would act on. Anything cerca decoded can be written.
-- @treturn string|nil the text
-- @treturn[opt] string why it cannot be encoded
function _M.encode(value)
  local out = {}
  local n, why = canonical(value, out, 0, 0, true)
  if not n then return nil, why end
  return escape_controls(concat(out))
end

return _M
