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
local setmetatable = setmetatable
local format = string.format
local huge = math.huge
local fast_canonical = core.encode_canonical
local number_text = core.number_text

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

-- True when no item of the list v is a table or a number (cjson then
-- writes it as is, in order: one call for the whole list).
local function flat(v, n)
  for i = 1, n do
    local item = v[i]
    if (type(item) == "table" and item ~= core.empty_array) or type(item) == "number" then return false end
  end
  return true
end

-- Deeper nesting is refused: nothing cerca decoded is deeper, and a table
-- that holds itself would never end.
local MAX_DEPTH = core.MAX_DECODE_DEPTH

-- The most items a list whose `__len` is a caller's is written with: the
-- most table entries cerca reads from one argument
-- (cerca.webhooks.MAX_ENTRIES).
local MAX_ITEMS = 1000000

-- A table's metatable as it is, whatever its `__metatable` says.
local rawmetatable = debug and debug.getmetatable or getmetatable
local rawget = rawget
local tostring = tostring

-- Appends the canonical text of v to out; nil, or a message. `overflow`:
-- infinities are written as 1e999 (output) instead of refused (requests).
-- Numbers are the C core's text (core.number_text: as cjson writes them
-- when that reads back the same, else with the digits that do).
local function canonical(v, out, depth, overflow)
  if type(v) ~= "table" or v == core.empty_array then
    local text, why
    if overflow and OVERFLOW[v] then
      text = OVERFLOW[v]
    elseif type(v) == "number" then
      text = number_text(v)
      if not text then text, why = core.encode(v) end -- NaN, an infinity: cjson's refusal
    else
      text, why = core.encode(v)
    end
    if not text then return why end
    out[#out + 1] = text
    return nil
  end
  if depth >= MAX_DEPTH then
    return format("nests deeper than %d levels (or refers to itself)", MAX_DEPTH)
  end
  local mt = rawmetatable(v)
  if type(mt) == "table" and rawget(mt, "__secrets") then
    return "a list that holds secrets is never written (" .. tostring(v) .. ")"
  end
  -- A request sends a table's own fields: those its __index would give are
  -- refused, not left out without a word (as the arguments' checks do).
  if not overflow and type(mt) == "table" and rawget(mt, "__index") ~= nil then
    return "has a metatable with __index: a table's own fields are sent, never those __index gives; "
      .. "pass a plain table, with any defaults copied into it"
  end
  local n = #v
  -- A caller's `__len` may say anything: a length that is no count of
  -- items, or more than any argument may hold, would have the loop below
  -- run on (for ever, for an infinite one) writing nulls. Without one,
  -- `#` is a border of the table, which holds that many entries.
  if type(mt) == "table" and rawget(mt, "__len") ~= nil
      and (type(n) ~= "number" or n ~= n or n % 1 ~= 0 or n > MAX_ITEMS) then
    return format("has a length (its __len) that is not a whole number up to %d: %s", MAX_ITEMS, tostring(n))
  end
  if n > 0 or (getmetatable(v) == _M.array_mt and next(v) == nil) then
    -- A list is its items 1..n and nothing else: named keys beside them
    -- would be dropped (or, by cjson, written as an object in no set
    -- order), so such a table is refused, as requests refuse it.
    for k in pairs(v) do
      if type(k) ~= "number" or k % 1 ~= 0 or k < 1 or k > n then
        return "mixes list items and named keys; use one or the other"
      end
    end
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

-- Marks a body already encoded by `encode_canonical` (see `canonical_body`).
local ENCODED = { __name = "cerca.encoded_json" }

--- A body whose canonical text is already made: `cerca.prepare` sends
-- `text` as it is instead of encoding the value again. For cerca's own
-- callers, which send the same body many times, make `text` with
-- `encode_canonical` and keep this table to themselves.
-- @tparam string text what `encode_canonical` returned
-- @treturn table the body
function _M.canonical_body(text)
  if type(text) ~= "string" then error("canonical_body: the text must be a string", 2) end
  return setmetatable({ text = text }, ENCODED)
end

--- The text of a body made by `canonical_body`, or nil for any other value.
function _M.canonical_text(body)
  if getmetatable(body) ~= ENCODED then return nil end
  local text = body.text
  if type(text) ~= "string" then return nil end
  return text
end

--- `encode_canonical` without the C core's fast path: the reference that
-- the fast path is checked against.
function _M.encode_canonical_lua(value)
  local out = {}
  local why = canonical(value, out, 0, false)
  if why then return nil, why end
  return concat(out)
end

-- Characters cjson leaves as they are that a terminal would act on (DEL,
-- the C1 controls, the bidirectional overrides) and bytes that are not
-- UTF-8, written as \u escapes: the list of pretty.printable, in the C core.
local function escape_controls(text)
  return core.printable(text, true)
end

--- JSON text of `value` for output (a subscription printed or stored):
-- keys sorted, lists kept as lists even when empty, an infinity decoded
-- from an out-of-range number written back as `1e999`, numbers with the
-- digits that read back as the same number, and no character a terminal
-- would act on (a byte that is not UTF-8 is written as the `\u00NN` of its
-- Latin-1 reading). Anything cerca decoded can be written.
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
