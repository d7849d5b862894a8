--- One HTTP attempt: the seam between the Lua policy and the C core.
--
-- `attempt(client, request)` returns the C core's response table
-- (`status`, `headers`, `body`, `json` or `json_error`, and `error` /
-- `error_message` when no usable answer arrived). It never raises for
-- anything the network does. Inside nginx, attempts go through
-- `cerca.nginx` (the thread pool) instead of blocking the worker.
-- @module cerca.transport

local core = require "cerca.core"

-- Inside nginx's Lua module (not the plain interpreter, nor a worker thread).
local in_nginx = type(ngx) == "table" and type(ngx.get_phase) == "function"
-- The adapter needs ngx.run_worker_thread (lua-nginx-module 0.10.21,
-- OpenResty 1.21.4): without it, a call would block the worker.
local nginx = in_nginx and type(ngx.run_worker_thread) == "function" and require "cerca.nginx" or nil

local NO_THREADS = "cerca needs ngx.run_worker_thread to call the API from nginx without blocking the "
  .. "worker: use lua-nginx-module 0.10.21 or newer (OpenResty 1.21.4 or newer), built on Linux"

local _M = {}

-- The client's libcurl handle, opened on first use and kept, so that
-- consecutive calls reuse the connection (and the TLS session).
local function session(client)
  local s = client._session
  if s then return s end
  local why
  s, why = core.new_session { ca_file = client.ca_file, user_agent = client.user_agent }
  if s then client._session = s end
  return s, why
end

--- Why no call can be made from here (an nginx phase that cannot yield),
-- or nil.
function _M.context_error()
  if nginx then return nginx.context_error() end
  if in_nginx and ngx.get_phase() ~= "init" then return NO_THREADS end
  return nil
end

-- In nginx's master (init_by_lua) a call may block, but its connection
-- must not be kept: the workers forked later would share the socket.
local function attempt_once(client, request)
  local s, why = core.new_session { ca_file = client.ca_file, user_agent = client.user_agent }
  if not s then
    return { status = 0, headers = {}, body = "", error = "internal", error_message = why }
  end
  local res = s:request(request)
  s:close()
  return res
end

function _M.attempt(client, request)
  if nginx then
    if nginx.offloads(client) then return nginx.attempt(client, request) end
    if ngx.get_phase() == "init" then return attempt_once(client, request) end
  end
  local s, why = session(client)
  if not s then
    return { status = 0, headers = {}, body = "", error = "internal", error_message = why }
  end
  return s:request(request)
end

--- True inside nginx's Lua module, where calls must not block the worker.
function _M.in_nginx()
  return nginx ~= nil and ngx.get_phase() ~= "init"
end

--- Takes the client's concurrent driver (a curl multi handle, kept
-- between batches for its connection cache), limited to
-- `max_connections`; the batch gives it back with `give_back_multi`,
-- passing the third value (how many closes the client had seen).
function _M.take_multi(client, max_connections)
  local m = client._multi
  client._multi = nil
  if not m then
    local why
    m, why = core.new_multi { ca_file = client.ca_file, user_agent = client.user_agent }
    if not m then return nil, why end
  end
  m:limit(max_connections)
  return m, nil, client._closes or 0
end

--- Gives the handle back to the client, or closes it: after a failed
-- batch (transfers may be left in it), when the client was closed during
-- the batch, or in nginx's master (workers must not inherit connections).
function _M.give_back_multi(client, m, closes_seen, broken)
  if broken or (client._closes or 0) ~= closes_seen or client._multi
    or (nginx and ngx.get_phase() == "init") then
    m:close()
  else
    client._multi = m
  end
end

function _M.close(client)
  local s, m = client._session, client._multi
  client._session, client._multi = nil, nil
  client._closes = (client._closes or 0) + 1
  if s then s:close() end
  if m then m:close() end
end

return _M
