--- Logging with redaction.
--
-- Levels: `debug` < `info` < `warn` < `off`. The level comes from the
-- client's `log_level` option, else `CERCA_LOG`, else `warn`. Lines go to the
-- client's `logger(level, line)`, else to `log.sink` (stderr; the OpenResty
-- adapter points it at `ngx.log`). Every line passes through `redact` first:
-- the `Authorization` value, the API key wherever it appears, `secret`
-- values in JSON and `whsec_` tokens never reach a sink.
-- @module cerca.log

local type = type
local gsub = string.gsub
local find = string.find
local sub = string.sub
local format = string.format
local getenv = os.getenv
local stderr = io.stderr

local _M = {}

_M.LEVELS = { debug = 1, info = 2, warn = 3, off = 4 }
_M.DEFAULT_LEVEL = "warn"

--- Where lines go when the client has no `logger`. Replaceable.
function _M.sink(_, line)
  stderr:write(line, "\n")
end

local REDACTED = "[redacted]"

-- Replaces every plain occurrence of `needle` in `s`.
local function replace_plain(s, needle, by)
  local out, start = {}, 1
  while true do
    local i, j = find(s, needle, start, true)
    if not i then break end
    out[#out + 1] = sub(s, start, i - 1)
    out[#out + 1] = by
    start = j + 1
  end
  if start == 1 then return s end
  out[#out + 1] = sub(s, start)
  return table.concat(out)
end

--- Removes secrets from a line of text.
-- @tparam string s the text
-- @tparam[opt] string api_key removed wherever it appears
function _M.redact(s, api_key)
  -- Secrets first: a key that happens to read "secret" must not hide them.
  s = gsub(s, "([Aa]uthorization:%s*)[^;\r\n]*", "%1" .. REDACTED)
  -- "secret": "..." in JSON, including one cut off before its closing quote.
  s = gsub(s, '("secret"%s*:%s*")(.-[^\\])"', '%1' .. REDACTED .. '"')
  s = gsub(s, '("secret"%s*:%s*")[^"]*$', '%1' .. REDACTED)
  s = gsub(s, "whsec_[%w%+/=_%-]+", "whsec_" .. REDACTED)
  if api_key and api_key ~= "" then s = replace_plain(s, api_key, REDACTED) end
  return s
end

--- Checks a level name; returns its number or nil and a message.
function _M.level(name, field)
  local n = _M.LEVELS[name]
  if n then return n end
  return nil, format("%s must be one of debug, info, warn, off (got %s)", field,
    type(name) == "string" and format("%q", name) or type(name))
end

--- The level name to use when the client option is not given.
function _M.default_level_name()
  local env = getenv("CERCA_LOG")
  if env and env ~= "" then return env, "CERCA_LOG" end
  return _M.DEFAULT_LEVEL, "log_level"
end

--- A logger bound to one client: `log:write(level, line)`.
-- @tparam number level the threshold
-- @tparam[opt] function logger the client's `logger`
-- @tparam string api_key scrubbed from every line
function _M.new(level, logger, api_key)
  return {
    level = level,
    enabled = function(self, name) return _M.LEVELS[name] >= self.level end,
    write = function(self, name, line)
      if _M.LEVELS[name] < self.level then return end
      line = _M.redact("cerca: " .. line, api_key)
      -- A logger that fails must not turn a successful create into a loss.
      pcall(logger or _M.sink, name, line)
    end,
  }
end

return _M
