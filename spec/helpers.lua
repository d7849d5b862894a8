-- Loaded by busted before the specs (see .busted): puts the library and
-- the C core built for the running interpreter on the module paths, and
-- offers the few things most specs need.
local is_jit = type(jit) == "table"
-- "luajit", or "lua5.1" to "lua5.4": the build of the core, and the
-- interpreter's command, for the Lua running the specs.
local abi = is_jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
-- CERCA_BUILD picks another build of the core (make check-memory uses "asan").
local build_dir = "./build/" .. (os.getenv("CERCA_BUILD") or abi)

package.path = "./lua/?.lua;./lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build_dir .. "/?.so;" .. package.cpath

local helpers = {}

helpers.abi = abi
-- CERCA_LUA names the interpreter for child processes (make check-memory: the sanitized one).
helpers.interpreter = os.getenv("CERCA_LUA") or abi
helpers.build_dir = build_dir
helpers.API_KEY = "sk_test_spec_0123456789"

-- Every spec file that needs a server starts its own in setup().
function helpers.start_server(opts)
  local launcher = require "spec.server.launcher"
  opts = opts or {}
  if opts.api_key == nil then opts.api_key = helpers.API_KEY end
  return assert(launcher.start(opts))
end

-- A client for `srv`, over HTTP unless `https` is set.
function helpers.client(srv, opts)
  local cerca = require "cerca"
  -- Quiet unless a spec asks: spec/log_spec.lua covers the log lines.
  local o = { api_key = srv.api_key, base_url = srv.http_url, log_level = "off" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(cerca.new(o))
end

-- Wall-clock seconds with sub-second precision, for elapsed-time checks.
function helpers.now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("*l"))
  p:close()
  return t
end

-- The CPU seconds that timed(n) reports at n and at factor * n, each the
-- least of a few runs: a growth-rate check compares the two, and one run
-- slowed by the machine (another process, a collection) must not decide
-- it. timed(n) times only the work under test and returns its seconds; the
-- first run at n is also the warm-up (compiled code, grown tables).
function helpers.cpu_at_two_sizes(timed, n, factor, runs)
  local function least(size)
    local best = math.huge
    for _ = 1, runs or 3 do best = math.min(best, timed(size)) end
    return best
  end
  return least(n), least(factor * n)
end

function helpers.sleep(seconds)
  require("cerca.core").sleep(seconds)
end

-- A loopback port nothing listens on (checked against /proc/net/tcp*).
function helpers.closed_port()
  local used = {}
  for _, f in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
    local fh = io.open(f)
    if fh then
      for line in fh:lines() do
        local port = line:match("^%s*%d+: %x+:(%x+) ")
        if port then used[tonumber(port, 16)] = true end
      end
      fh:close()
    end
  end
  for port = 20000 + math.random(0, 9999), 65000 do
    if not used[port] then return port end
  end
  error("no free port")
end

-- Runs a shell command; returns its output (stdout, and stderr unless
-- redirected) and its exit status.
function helpers.sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit:$?\"")
  local out = p:read("*a")
  p:close()
  local text, status = out:match("^(.*)exit:(%d+)%s*$")
  return text, tonumber(status)
end

-- How many distinct connections the reference server's recorded requests came on.
function helpers.distinct_connections(reqs)
  local seen, n = {}, 0
  for _, r in ipairs(reqs) do
    if not seen[r.connection] then
      seen[r.connection] = true
      n = n + 1
    end
  end
  return n
end

-- Runs a Lua snippet in a fresh interpreter of the same kind, with extra
-- environment variables; returns its stdout and exit status.
function helpers.run_lua(code, env)
  local tmp = os.tmpname()
  local f = assert(io.open(tmp, "w"))
  f:write(code)
  f:close()
  local parts = { "env" }
  for k, v in pairs(env or {}) do
    parts[#parts + 1] = k .. "='" .. v:gsub("'", "'\\''") .. "'"
  end
  parts[#parts + 1] = "LUA_PATH='./lua/?.lua;./lua/?/init.lua;;'"
  parts[#parts + 1] = "LUA_CPATH='" .. build_dir .. "/?.so;;'"
  parts[#parts + 1] = helpers.interpreter .. " " .. tmp .. " 2>&1; echo \"exit:$?\""
  local p = io.popen(table.concat(parts, " "))
  local out = p:read("*a")
  p:close()
  os.remove(tmp)
  local body, status = out:match("^(.*)exit:(%d+)%s*$")
  return body, tonumber(status)
end

-- Quotes a value for the shell.
-- Whether two decoded JSON values are the same value: numbers equal in
-- sign of zero and in subtype (5.3+), tables member for member.
local function same_value(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if a ~= b or (a == 0 and 1 / a ~= 1 / b) then return false end
    return math.type == nil or math.type(a) == math.type(b)
  end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same_value(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

--- Asserts that `decode(text)` gives what `reference(text)` gives: the same
-- value, or a refusal with the same message. Returns true when the text was
-- accepted.
function helpers.decodes_as(reference, decode, text)
  local want, want_err = reference(text)
  local got, got_err = decode(text)
  if want == nil then
    assert(got == nil, "accepted what the reference refuses: " .. text)
    assert(want_err == got_err, ("refused with %q, the reference with %q: %s"):format(
      tostring(got_err), tostring(want_err), text))
    return false
  end
  assert(same_value(want, got), "decoded differently from the reference: " .. text)
  return true
end

function helpers.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The content of a file, or nil.
function helpers.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local t = f:read("*a")
  f:close()
  return t
end

function helpers.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- Writes a file only its owner may read (mode 0600), as a journal must be.
function helpers.write_private(path, text)
  helpers.write(path, text)
  assert(os.execute("chmod 600 " .. helpers.q(path)))
end

-- "600 root": the mode and owner of a path (a link itself, not followed).
function helpers.mode_owner(path)
  return ((helpers.sh("stat -c '%a %U' " .. helpers.q(path))):gsub("%s+$", ""))
end

-- Installs the `cerca` command with LuaRocks (Lua 5.4) into a fresh tree
-- under a new temporary folder `work`, from a copy of the checkout. Returns
-- work, the command's path, and the shell text that puts the tree on the
-- Lua paths, as a user of a tree of their own does.
function helpers.install_command()
  local q = helpers.q
  local work = (helpers.sh("mktemp -d")):gsub("%s+$", "")
  local out, status = helpers.sh(("cp -r Makefile src lua rockspec bin %s/ && cd %s && luarocks --lua-version 5.4 "
    .. "--tree %s/tree make --deps-mode=none rockspec/cerca-scm-1.rockspec 2>&1"):format(q(work), q(work), q(work)))
  assert(status == 0, out)
  return work, work .. "/tree/bin/cerca",
    ("eval \"$(luarocks --lua-version 5.4 --tree %s path)\""):format(q(work .. "/tree"))
end

--- The table of methods of a C core object (its metatable's `__index`),
-- for `finalizer_inside`.
function helpers.methods(object)
  return assert(debug.getmetatable(object).__index)
end

--- Runs `action()` from a finalizer (`__gc`) at an allocation inside the
-- C function `holder[name]` (a C core method: `holder` is
-- `helpers.methods(object)`; or a module's function), as a caller's
-- finalizer may run there. Deterministic: the function is replaced, until
-- `stop()`, by one that ends the collector's cycle and sets it to run a
-- whole cycle at every allocation until the C function returns; at each
-- cycle inside the call one object with a finalizer is let go, and the
-- k-th one runs `action`, k = 1, 2, ... `steps` in turn from call to call
-- (then 1 again), so that calling it `steps` times reaches each of its
-- first `steps` allocations. (Under Lua 5.2 the first may be the call's
-- own entry, before the function's body: 5.2 checks the collector there.)
-- A collector left to itself ran no finalizer there for 20 s in some
-- heaps. Returns `fired` (how many times `action` ran) and `stop()`, which
-- ends it, puts the function, the collector and LuaJIT's compiler back and
-- returns that count. `action` may call the function (not counted).
function helpers.finalizer_inside(holder, name, action, steps)
  steps = steps or 24
  local version = _VERSION
  local c_function = assert(holder[name])
  local busy, done, spent, calls, firings = false, false, true, 0, 0
  -- This call's objects still held, only to keep them (the next to let go
  -- at [cycle + 1]), how many cycles ran inside it, and the one that runs
  -- `action`.
  local held, cycle, last = {}, 0, 0 -- luacheck: ignore 241
  local jit_was_on = rawget(_G, "jit") and jit.status()
  if jit_was_on then jit.off() end  -- (no finalizer runs inside a trace)
  local mode = version == "Lua 5.4" and collectgarbage("incremental")
  local pause, stepmul = collectgarbage("setpause", 0), collectgarbage("setstepmul", 200)
  local function calm()
    collectgarbage("setpause", pause)
    collectgarbage("setstepmul", stepmul)
    if version == "Lua 5.4" then collectgarbage("incremental", 0, 0, 13) end
  end
  calm()
  -- A whole cycle at each allocation: no pause, no limit to a step's work.
  local function eager()
    collectgarbage("setpause", 0)
    if version == "Lua 5.4" then
      collectgarbage("setstepmul", 1000)
      collectgarbage("incremental", 0, 0, 40)
    elseif version == "Lua 5.1" then
      collectgarbage("setstepmul", 0)  -- (0: no limit, in 5.1 and LuaJIT)
    else
      collectgarbage("setstepmul", 100000000)
    end
  end
  -- Lua 5.2 puts the collector's next step some kilobytes off at each
  -- check made while a finalizer runs (a call is one), after the cycle:
  -- some kilobytes allocated where nothing checks bring it back.
  local padding = {}
  local function pad()
    if version ~= "Lua 5.2" then return end
    local p = padding[#padding]
    padding[#padding] = nil
    for i = 1, 1024 do p[i] = true end
  end
  local wrapper
  -- Whether a collection runs inside the C function (or what it calls),
  -- not in the wrapper before or after it.
  local function inside()
    local level = 3
    while true do
      local info = debug.getinfo(level, "f")
      if not info or info.func == wrapper then return false end
      if info.func == c_function then return true end
      level = level + 1
    end
  end
  -- (Allocates nothing but where it calls `action`.)
  local function finalizer()
    if busy or done or spent then return end
    -- (Outside: the call is over, or ended by an error.)
    if not inside() then spent = true return end
    cycle = cycle + 1
    if cycle < last then
      held[cycle + 1] = nil  -- (collected by the next cycle, the next allocation)
      return pad()
    end
    spent, busy, firings = true, true, firings + 1
    pcall(action)
    busy = false
  end
  local new
  if version == "Lua 5.1" then
    local proto = newproxy(true)
    getmetatable(proto).__gc = finalizer
    new = function() return newproxy(proto) end
  else
    local mt = { __gc = finalizer }
    new = function() return setmetatable({}, mt) end
  end
  local function settle(...)
    spent = true
    calm()
    return ...
  end
  -- (No pcall around the C function: under 5.2 its entry would check the
  -- collector outside. Should the function raise, the next collection
  -- finds it gone and does nothing, and the next call or `stop` calms
  -- the collector.)
  wrapper = function(...)
    if busy or done then return c_function(...) end
    calls = calls + 1
    cycle, last = 0, (calls - 1) % steps + 1
    held, padding = {}, {}
    for i = 2, last do held[i], padding[i] = new(), {} end
    padding[1] = {}
    eager()
    collectgarbage("collect")  -- (the last call's objects go now, doing nothing)
    pad()
    spent = false
    new()  -- (the first, let go at once)
    return settle(c_function(...))
  end
  holder[name] = wrapper
  return function() return firings end, function()
    done = true
    holder[name] = c_function
    calm()
    if mode then collectgarbage(mode) end
    if jit_was_on then jit.on() end
    return firings
  end
end

return helpers
