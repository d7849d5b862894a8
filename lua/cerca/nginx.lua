--- The OpenResty / nginx adapter: the same API, never stalling a worker.
--
-- Loaded by `cerca.transport` when the code runs inside nginx's Lua module.
-- In the phases that can yield (rewrite, access, content, timers) each HTTP
-- attempt runs in nginx's thread pool (`ngx.run_worker_thread`), keeping the
-- HTTP in the C core while the worker goes on serving other requests; the
-- waits between retries use `ngx.sleep`. In `init_by_lua` (the master,
-- before any request) a blocking call is fine and runs directly. Other
-- phases cannot wait without blocking the worker: calls there are refused.
-- @module cerca.nginx

local core = require "cerca.core"
local clock = require "cerca.clock"
local log = require "cerca.log"

local ngx = ngx
local format = string.format

local _M = {}

--- The thread pool used when the client names none (`thread_pool` option).
_M.DEFAULT_THREAD_POOL = "cerca"

-- Phases where a request may wait for the network without blocking.
local YIELDABLE = { rewrite = true, access = true, content = true, timer = true }

--- Why no call can be made in the current phase, or nil when it can.
function _M.context_error()
  local phase = ngx.get_phase()
  if phase == "init" or YIELDABLE[phase] then return nil end
  return format("cerca cannot call the API in nginx's %s phase: it cannot wait for the network there "
    .. "without blocking the worker; run the call from a timer instead: "
    .. "ngx.timer.at(0, function() ... end)", phase)
end

--- Whether this call's attempts go to the thread pool (false: run here).
function _M.offloads(client)
  return client.thread_pool ~= false and ngx.get_phase() ~= "init"
end

--- Why the thread pool's Lua VMs cannot load `module`, or nil when it
-- looks loadable. They load it from files, as nginx's worker user (`user`
-- directive; `nobody` when nginx starts as root): a file there that this
-- user cannot read is named, so is a path that holds no such file.
function _M.unloadable(module)
  local name = module:gsub("%.", "/")
  local denied
  for template in package.path:gmatch("[^;]+") do
    local path = template:gsub("%?", name)
    local f, why = io.open(path, "rb")
    if f then
      f:close()
      return nil
    end
    if not denied and type(why) == "string" and why:find("Permission denied", 1, true) then denied = path end
  end
  if denied then
    return format("nginx's worker user cannot read %s (permission denied), so the thread pool cannot load "
      .. "%s: install cerca where the user of nginx's `user` directive (nobody, when nginx starts as root) "
      .. "can read it, or make the files and their folders readable by that user", denied, module)
  end
  return format("%s is on none of the paths of lua_package_path (%s): add the folder cerca is installed in",
    module, package.path)
end

--- One attempt in the thread pool; the JSON is decoded here, in the
-- request's own VM (cjson's null cannot cross the thread boundary).
function _M.attempt(client, request)
  local pool = client.thread_pool or _M.DEFAULT_THREAD_POOL
  local ok, res = ngx.run_worker_thread(pool, "cerca.nginx_thread", "attempt",
    client.ca_file, client.user_agent, request)
  if not ok then
    -- Nothing was sent: the thread never ran the attempt. Both causes are
    -- in nginx.conf (the pool, or lua_package_path/cpath for the thread).
    local message = tostring(res)
    if message:find("^thread pool .* not found") then
      message = format("nginx has no thread pool %q: add `thread_pool %s threads=16;` "
        .. "to the main context of nginx.conf", pool, pool)
    else
      message = _M.unloadable("cerca.nginx_thread") or ("nginx's worker thread could not run the attempt "
        .. "(check lua_package_path and lua_package_cpath): " .. message)
    end
    return { status = 0, headers = {}, body = "", error = "configuration", error_message = message }
  end
  if not res.error and res.body ~= "" then
    local value, why = core.decode(res.body)
    if value == nil then res.json_error = why else res.json = value end
  end
  return res
end

local LEVELS = { debug = ngx.DEBUG, info = ngx.INFO, warn = ngx.WARN }

-- Waits and log lines go through nginx once this module is loaded.
clock.sleep = function(seconds)
  if ngx.get_phase() == "init" then return core.sleep(seconds) end
  return ngx.sleep(seconds)
end

log.sink = function(level, line)
  ngx.log(LEVELS[level] or ngx.WARN, line)
end

return _M
