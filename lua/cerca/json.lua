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

local _M = {}

--- Marks a table as a JSON array.
_M.array_mt = { __name = "cerca.array" }

-- v, or a copy of it in which every empty marked list is the core's
-- empty-array sentinel. Tables without such a list are not copied.
local function wire(v, depth)
  if type(v) ~= "table" or v == core.empty_array or depth > 64 then return v end
  if getmetatable(v) == _M.array_mt and next(v) == nil then return core.empty_array end
  local copy
  for k, item in pairs(v) do
    local w = wire(item, depth + 1)
    if w ~= item then
      copy = copy or {}
      copy[k] = w
    end
  end
  if not copy then return v end
  for k, item in pairs(v) do
    if copy[k] == nil then copy[k] = item end
  end
  return copy
end

--- JSON text of `value`, or nil and a message.
function _M.encode(value)
  return core.encode(wire(value, 0))
end

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

-- True when no item of the list v is a table (cjson then writes it as is,
-- in order: one call for the whole list).
local function flat(v, n)
  for i = 1, n do
    local item = v[i]
    if type(item) == "table" and item ~= core.empty_array then return false end
  end
  return true
end

-- Appends the canonical text of v to out; nil, or a message.
local function canonical(v, out, depth)
  if type(v) ~= "table" or v == core.empty_array or depth > 64 then
    local text, why = core.encode(v)
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
      local why = canonical(v[i], out, depth + 1)
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
    local why = canonical(v[k], out, depth + 1)
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
  local out = {}
  local why = canonical(value, out, 0)
  if why then return nil, why end
  return concat(out)
end

return _M
