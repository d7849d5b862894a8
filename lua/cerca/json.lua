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
local ipairs = ipairs
local sort = table.sort
local concat = table.concat
local next = next
local getmetatable = getmetatable
local format = string.format
local gsub = string.gsub
local find = string.find
local byte = string.byte
local huge = math.huge
local fast_canonical = core.encode_canonical

local _M = {}

--- Marks a table as a JSON array.
_M.array_mt = { __name = "cerca.array" }

-- Encoded object keys, by key: bodies repeat the same few names.
local encoded_keys, cached_keys = {}, 0

local function encoded_key(k)
  local text = encoded_keys[k]
  if text then return text end
  text = core.encode(k)
  if cached_keys < 1024 then
    encoded_keys[k] = text
    cached_keys = cached_keys + 1
  end
  return text
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

-- Appends the canonical text of v to out; nil, or a message. `overflow`:
-- infinities are written as 1e999 (output) instead of refused (requests).
local function canonical(v, out, depth, overflow)
  if type(v) ~= "table" or v == core.empty_array or depth > 64 then
    local text, why
    if overflow and OVERFLOW[v] then text = OVERFLOW[v] else text, why = core.encode(v) end
    if not text then return why end
    out[#out + 1] = text
    return nil
  end
  local n = #v
  if n > 0 or (getmetatable(v) == _M.array_mt and next(v) == nil) then
    if n > 0 and flat(v, n) then
      local text, why = core.encode(v)
      if not text then return why end
      out[#out + 1] = text
      return nil
    end
    out[#out + 1] = "["
    for i = 1, n do
      if i > 1 then out[#out + 1] = "," end
      local why = canonical(v[i], out, depth + 1, overflow)
      if why then return why end
    end
    out[#out + 1] = "]"
    return nil
  end
  local keys = {}
  for k in pairs(v) do
    if type(k) ~= "string" then return "object keys must be strings" end
    keys[#keys + 1] = k
  end
  sort(keys)
  out[#out + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then out[#out + 1] = "," end
    out[#out + 1] = encoded_key(k)
    out[#out + 1] = ":"
    local why = canonical(v[k], out, depth + 1, overflow)
    if why then return why end
  end
  out[#out + 1] = "}"
  return nil
end

--- Canonical JSON text of `value`: object keys in sorted order at every
-- depth, so that the same value gives the same bytes in every process (a
-- repeat under an idempotency key must send the body the API stored).
-- @treturn string|nil the text
-- @treturn[opt] string why it cannot be encoded
function _M.encode_canonical(value)
  -- The C core writes the same bytes for plain values, and declines the rest.
  local text = fast_canonical(value, _M.array_mt)
  if text then return text end
  return _M.encode_canonical_lua(value)
end

--- `encode_canonical` without the C core's fast path: the reference that
-- the fast path is checked against.
function _M.encode_canonical_lua(value)
  local out = {}
  local why = canonical(value, out, 0, false)
  if why then return nil, why end
  return concat(out)
end

-- Characters cjson leaves as they are that a terminal would act on: DEL,
-- the C1 controls and the bidirectional overrides, written as \u escapes
-- (the same JSON value).
local function escape_controls(text)
  -- Each starts with one of three bytes, which most texts lack: three plain
  -- searches (memchr) cost far less than the four pattern scans.
  if not find(text, "\127", 1, true) and not find(text, "\194", 1, true) and not find(text, "\226", 1, true) then
    return text
  end
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
  local text = fast_canonical(value, _M.array_mt)
  if text then return escape_controls(text) end
  local out = {}
  local why = canonical(value, out, 0, true)
  if why then return nil, why end
  return escape_controls(concat(out))
end

return _M
