--- Time, in one replaceable place.
--
-- `now()` is a monotonic clock in seconds (deadlines, durations) and
-- `sleep(s)` waits between retries. Both block the caller in plain Lua; the
-- OpenResty adapter replaces them (`ngx.now`, `ngx.sleep`) so a wait never
-- stalls an nginx worker. Call them through this table, never cache them.
-- @module cerca.clock

local core = require "cerca.core"

local _M = {
  now = core.monotime,
  sleep = core.sleep,
}

return _M
