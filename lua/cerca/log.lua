--- Logging with redaction.
--
-- Levels: `debug` < `info` < `warn` < `off`. The level comes from the
-- client's `log_level` option, else `CERCA_LOG`, else `warn`. Lines go to the
-- client's `logger(level, line)`, else to its runtime's sink (stderr in
-- plain Lua, `ngx.log` inside nginx). Every line passes through `cerca.redact`
-- first: the API key however it is written, the `Authorization` value,
-- `secret` values in JSON and whole `whsec_` tokens never reach a sink.
-- Each line is then escaped (`cerca.printable`): one line, no control
-- characters, whatever a server sent.
-- @module cerca.log

local redact = require "cerca.redact"

local type = type
local format = string.format
local getenv = os.getenv
local pcall = pcall

local _M = {}

_M.LEVELS = { debug = 1, info = 2, warn = 3, off = 4 }
_M.DEFAULT_LEVEL = "warn"

--- Removes secrets from a line of text (see `cerca.redact`).
-- @tparam string s the text
-- @tparam[opt] string api_key removed wherever and however it appears
function _M.redact(s, api_key)
  return redact.text(s, redact.exact_list(api_key))
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
-- @tparam function sink `sink(level, line)`: the client's `logger`, or its
--   runtime's
-- @tparam table secrets known secrets (`cerca.redact.list`) removed from every line
-- @tparam[opt] boolean callers_sink the sink is the caller's code (a `logger`)
function _M.new(level, sink, secrets, callers_sink)
  return {
    level = level,
    -- Whether writing a line may run the caller's code: what may run
    -- while a batch still reads its items (see `Client:request_many`).
    runs_callers_code = callers_sink == true and level < _M.LEVELS.off,
    -- `enabled("info")` and `enabled("debug")`, worked out once: every
    -- attempt reads them.
    info = _M.LEVELS.info >= level,
    debug = _M.LEVELS.debug >= level,
    enabled = function(self, name) return _M.LEVELS[name] >= self.level end,
    write = function(self, name, line)
      if _M.LEVELS[name] < self.level then return end
      -- Redacted, then escaped: a server's bytes (a request id, a body)
      -- cannot drive a terminal or start a forged line (CR, LF, ESC).
      line = redact.printed("cerca: " .. line, secrets)
      -- A logger that fails must not turn a successful create into a loss.
      pcall(sink, name, line)
    end,
  }
end

return _M
