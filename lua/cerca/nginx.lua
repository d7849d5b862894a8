--- The nginx runtime (see `cerca.runtime`): the same API, never stalling a
-- worker.
--
-- Chosen for a client made inside nginx's Lua module. In the phases that
-- can yield (rewrite, access, content, timers) each HTTP attempt runs in
-- nginx's thread pool (`ngx.run_worker_thread`), keeping the HTTP in the C
-- core while the worker goes on serving other requests; the waits between
-- retries use `ngx.sleep`; many calls at once run in light threads; log
-- lines go to `ngx.log`. In `init_by_lua` (the master, before any request)
-- a blocking call is fine: it runs as in plain Lua, keeping no connection
-- for the workers forked later. Other phases cannot wait without blocking
-- the worker: calls there are refused.
-- @module cerca.nginx

local core = require "cerca.core"
local runtime = require "cerca.runtime"
local transport = require "cerca.transport"

local ngx = ngx
local type = type
local tostring = tostring
local select = select
local setmetatable = setmetatable
local format = string.format
local find = string.find
local min = math.min
local getinfo = debug.getinfo
local pcall = pcall
local xpcall = xpcall

local _M = {}

--- The thread pool used when the client names none (`thread_pool` option).
_M.DEFAULT_THREAD_POOL = "cerca"

-- Phases where a request may wait for the network without blocking.
local YIELDABLE = { rewrite = true, access = true, content = true, timer = true }

-- The runtime needs ngx.run_worker_thread (lua-nginx-module 0.10.21,
-- OpenResty 1.21.4): without it, a call would block the worker.
local HAS_THREADS = type(ngx.run_worker_thread) == "function"

local NO_THREADS = "cerca needs ngx.run_worker_thread to call the API from nginx without blocking the "
  .. "worker: use lua-nginx-module 0.10.21 or newer (OpenResty 1.21.4 or newer), built on Linux"

local LEVELS = { debug = ngx.DEBUG, info = ngx.INFO, warn = ngx.WARN }

-- The one test of the phase that may block: nginx's master, before forking.
local function in_master()
  return ngx.get_phase() == "init"
end

-- Whether the running code can wait (yield to nginx): false inside a call
-- from C (a string.gsub callback, a table.sort comparator, a metamethod
-- run by tostring), where a wait would fail after the attempt was handed
-- over. Nginx's LuaJIT has no coroutine.isyieldable (a Lua 5.2 extension
-- it is built without): the stack is read instead, for a C function other
-- than pcall and xpcall (across which LuaJIT yields).
local function can_wait()
  local level = 3
  while true do
    local info = getinfo(level, "Sf")
    if not info then return true end
    if info.what == "C" and info.func ~= pcall and info.func ~= xpcall then return false end
    level = level + 1
  end
end

local Nginx = {}
Nginx.__index = Nginx

--- The nginx runtime of one client.
-- @tparam table conn `ca_file`, `user_agent`, `thread_pool` (false: attempts
--   run in the worker itself, blocking it)
function _M.new(conn)
  return setmetatable({
    conn = conn,
    pool = conn.thread_pool or _M.DEFAULT_THREAD_POOL,
    offload = conn.thread_pool ~= false,
    -- In the master: a connection per attempt, none kept.
    master = runtime.plain(conn, false),
    -- thread_pool = false: attempts in the worker itself, on a kept session.
    here = runtime.plain(conn),
  }, Nginx)
end

function Nginx.context_error()
  if in_master() then return nil end
  if not HAS_THREADS then return NO_THREADS end
  local phase = ngx.get_phase()
  if not YIELDABLE[phase] then
    return format("cerca cannot call the API in nginx's %s phase: it cannot wait for the network there "
      .. "without blocking the worker; run the call from a timer instead: "
      .. "ngx.timer.at(0, function() ... end)", phase)
  end
  -- The attempt would be handed to the thread pool, and its answer never
  -- waited for: sent, with no result and no key to repeat it with.
  if not can_wait() then
    return "cerca cannot call the API from inside a function that C code calls (a string.gsub or "
      .. "table.sort callback, a metamethod, an iterator): nginx cannot wait for the network there; make "
      .. "the call outside it"
  end
  return nil
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

-- nginx's graceful exit (a reload, `nginx -s quit`) ends a worker once no
-- timer is left, cutting off its open requests: a request waiting on the
-- thread pool holds no timer, and would lose the secret on its way. A
-- light thread sleeping in steps this long holds one until the answer is
-- back (a sleeping request is waited for).
local HOLD_STEP = 0.1

-- All Lua VMs of the thread pool busy (`lua_worker_thread_vm_pool_size`,
-- 100 by default): nothing was sent, and the attempt waits for one, in
-- sleeps that grow to this long, as long as its timeout.
local VM_WAIT_MAX = 0.05

-- Runs the attempt in the pool, waiting for a free Lua VM; returns what
-- ngx.run_worker_thread returned.
local function run_in_pool(self, request)
  local give_up_at = core.monotime() + (request.timeout_ms or 0) / 1000
  -- The attempt's time runs from now, not from when a thread takes it.
  request.not_after = give_up_at
  local step = 0.001
  while true do
    local ok, res = ngx.run_worker_thread(self.pool, "cerca.nginx_thread", "attempt",
      self.conn.ca_file, self.conn.user_agent, request)
    if ok or not find(tostring(res), "no available Lua vm", 1, true) then return ok, res end
    if core.monotime() + step >= give_up_at then
      return false, "every Lua VM of nginx's worker threads stayed busy (lua_worker_thread_vm_pool_size, 100 "
        .. "by default): raise it, or run fewer creates at once in one worker"
    end
    ngx.sleep(step)
    step = min(step * 2, VM_WAIT_MAX)
  end
end

-- One attempt in the thread pool; the JSON is decoded here, in the
-- request's own VM (cjson's null cannot cross the thread boundary).
local function in_thread_pool(self, request)
  local pool = self.pool
  local back = false
  local holder = ngx.thread.spawn(function()
    while not back do ngx.sleep(HOLD_STEP) end
  end)
  local ok, res = run_in_pool(self, request)
  back = true
  ngx.thread.kill(holder)
  if not ok and find(tostring(res), "^every Lua VM") then
    -- Nothing was sent: a failure to connect, as far as retries go.
    return transport.failed("connection", res)
  end
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
    return transport.failed("configuration", message)
  end
  return core.decode_response(res)
end

function Nginx:attempt(request)
  if in_master() then return self.master:attempt(request) end
  if self.offload then return in_thread_pool(self, request) end
  return self.here:attempt(request)
end

function Nginx.sleep(_, seconds)
  if in_master() then return core.sleep(seconds) end
  return ngx.sleep(seconds)
end

function Nginx.log_sink(level, line)
  ngx.log(LEVELS[level] or ngx.WARN, line)
end

--- Many calls at once: `concurrency` light threads, each running calls one
-- after another as a single create does (in the master, as in plain Lua).
-- `stop` is asked before each call is taken and before each wait to retry.
function Nginx:run_many(calls, keys, concurrency, on_done, more, stop)
  if in_master() then return self.master:run_many(calls, keys, concurrency, on_done, more, stop) end
  -- Every call is read before the light threads start.
  while more and more() do end
  local taken = 0
  local function worker()
    while taken < #keys do
      taken = taken + 1
      local k = keys[taken]
      local why = stop and stop()
      if why then
        on_done(k, nil, select(2, calls[k]:stop(why)))
      else
        -- A fault inside cerca (the C core refusing a request) ends this
        -- call, not the light thread with the calls it had still to take.
        local ran, res, err = pcall(calls[k].run, calls[k], self, stop)
        if ran then
          on_done(k, res, err)
        else
          on_done(k, nil, calls[k]:broken_off(res, "cerca failed inside this call"))
        end
      end
    end
  end
  local threads = {}
  for i = 1, min(concurrency, #keys) do threads[i] = ngx.thread.spawn(worker) end
  for i = 1, #threads do ngx.thread.wait(threads[i]) end
end

function Nginx:close()
  self.master:close()
  self.here:close()
end

return _M
