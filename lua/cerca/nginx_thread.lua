--- Runs inside nginx's worker threads (`ngx.run_worker_thread`), each with a
-- Lua VM of its own: one blocking HTTP attempt in the C core, off the
-- worker's event loop. Sessions (libcurl handles, hence kept-alive
-- connections) are cached per thread VM and reused by later calls.
-- Only plain values cross the thread boundary: strings, numbers, booleans
-- and tables of them.
-- @module cerca.nginx_thread

local transport = require "cerca.transport"
local core = require "cerca.core"

local ceil = math.ceil
local min = math.min

local _M = {}

local sessions = {}

--- One attempt. Returns the C core's response table, undecoded.
function _M.attempt(ca_file, user_agent, request)
  -- The attempt's time ran while it waited for a thread of the pool: what
  -- is left of it, or nothing sent at all.
  local not_after = request.not_after
  if not_after then
    local left = not_after - core.monotime()
    if left < 0.001 then
      return transport.failed("timeout", "the attempt waited for a thread of nginx's pool (thread_pool "
        .. "threads=) until its time was up; nothing was sent")
    end
    request.timeout_ms = min(request.timeout_ms, ceil(left * 1000))
  end
  local key = (ca_file or "") .. "\0" .. user_agent
  -- The attempt holds the session while it runs, as the plain runtime's
  -- does: should the core raise, the session is left to the collector and
  -- the next attempt opens another. A raise is returned as a fault inside
  -- cerca, so that the worker tells it from a thread that could not run
  -- this module at all (nginx.conf's paths).
  local s = sessions[key]
  sessions[key] = nil
  if not s then
    local why
    s, why = transport.open { ca_file = ca_file, user_agent = user_agent }
    if not s then return transport.failed("internal", why) end
  end
  request.decode = false
  local ok, res = pcall(s.request, s, request)
  if not ok then return transport.failed("internal", "the C core refused the request: " .. tostring(res)) end
  sessions[key] = s
  return res
end

return _M
