--- The seam to the C core: a libcurl session, one attempt on it, and the
-- shape of an attempt that never reached the network. Every runtime (plain
-- Lua, nginx's master, nginx's worker threads) goes through here, so an
-- attempt's response table always has the same fields: `status`,
-- `raw_headers`, `body`, `json` or `json_error`, and `error` /
-- `error_message` when no usable answer arrived. Nothing here raises for anything the network does.
-- @module cerca.transport

local core = require "cerca.core"

local _M = {}

--- The response table of an attempt that could not be made at all.
-- @tparam string kind `internal` or `configuration`
-- @tparam string message why
function _M.failed(kind, message)
  return { status = 0, raw_headers = "", body = "", error = kind, error_message = message }
end

--- A libcurl session (one easy handle: its connection and TLS session are
-- reused by later attempts), or nil and why.
-- @tparam table conn `ca_file`, `user_agent`
function _M.open(conn)
  return core.new_session { ca_file = conn.ca_file, user_agent = conn.user_agent }
end

--- A curl multi handle for many attempts at once, or nil and why.
-- @tparam table conn `ca_file`, `user_agent`
function _M.open_multi(conn)
  return core.new_multi { ca_file = conn.ca_file, user_agent = conn.user_agent }
end

--- One attempt on a session opened for it and closed after: nothing of its
-- connection is kept (nginx's master, whose workers fork later).
function _M.attempt_once(conn, request)
  local s, why = _M.open(conn)
  if not s then return _M.failed("internal", why) end
  local ok, res = pcall(s.request, s, request)
  s:close()
  if not ok then error(res, 0) end
  return res
end

return _M
