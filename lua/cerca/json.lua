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

return _M
