--- Prism mock server serving spec/contract/openapi.yaml, the test oracle of
-- the seed contract.
--
--   local prism = require "spec.contract.prism"
--   prism.install()                  -- npm ci of the locked tree, only when needed
--   local p = assert(prism.start())  -- { url = "http://127.0.0.1:PORT", pid, log }
--   ...
--   p:stop()
--
-- Works under Lua 5.1 to 5.4 and LuaJIT with only the standard library; needs
-- a POSIX shell, curl, setsid and node on the PATH.

local M = {}

local HOST = "127.0.0.1"
local DEFAULT_TIMEOUT = 30 -- seconds to wait for Prism to answer
local PORT_ATTEMPTS = 10

-- Keeps Prism's dependencies (Scarf) and npm from phoning home.
local QUIET_ENV = "SCARF_ANALYTICS=false DO_NOT_TRACK=1 NPM_CONFIG_UPDATE_NOTIFIER=false"

-- Directory holding this file, so paths do not depend on package.path.
local DIR = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")) or "."
local DOCUMENT = DIR .. "/openapi.yaml"
local PRISM_BIN = DIR .. "/node_modules/.bin/prism"

local function quote(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

-- os.execute returns a number under Lua 5.1/LuaJIT and (ok, how, code) later.
local function execute(cmd)
  local ok, _, code = os.execute(cmd)
  if type(ok) == "number" then
    return ok == 0
  end
  return ok == true and (code == nil or code == 0)
end

-- Runs cmd through the shell; returns its stdout+stderr and exit status.
local function run(cmd)
  local pipe = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"__exit=$?\""))
  local out = pipe:read("*a")
  pipe:close()
  local body, status = out:match("^(.-)__exit=(%d+)%s*$")
  return body or out, tonumber(status) or -1
end

local function file_exists(path)
  local f = io.open(path, "r")
  if f then
    f:close()
    return true
  end
  return false
end

local function read_file(path)
  local f = io.open(path, "r")
  if not f then
    return ""
  end
  local s = f:read("*a")
  f:close()
  return s
end

local function sleep(seconds)
  execute("sleep " .. seconds)
end

-- True while pid exists and is not a zombie. A process whose parent already
-- exited may stay a zombie when PID 1 does not reap, and `kill -0` would
-- still succeed on it.
local function alive(pid)
  local stat = io.open("/proc/" .. pid .. "/stat", "r")
  if stat then
    local line = stat:read("*l") or ""
    stat:close()
    local state = line:match("^%d+ %b() (%a)")
    return state ~= nil and state ~= "Z" and state ~= "X"
  end
  return execute("kill -0 " .. pid .. " 2>/dev/null")
end

local function random_port()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(2)
  if f then
    f:close()
  end
  local n
  if bytes and #bytes == 2 then
    n = bytes:byte(1) * 256 + bytes:byte(2)
  else
    math.randomseed(os.time() + math.floor(os.clock() * 1e6))
    n = math.random(0, 65535)
  end
  return 20000 + n % 40000 -- 20000..59999
end

-- GETs url/; returns the HTTP status ("000" when nothing answers) and body.
local function probe(url)
  local out = run("curl -s --max-time 1 -w '\\n%{http_code}' " .. quote(url .. "/"))
  local body, status = out:match("^(.-)\n?(%d%d%d)$")
  return status or "000", body or out
end

-- Prism answers an unknown route with its own 404 problem document.
local function is_prism(url)
  local status, body = probe(url)
  return status == "404"
    and body:find("stoplight.io/prism/errors#NO_PATH_MATCHED_ERROR", 1, true) ~= nil
end

local LOCK = DIR .. "/package-lock.json"
-- The lock file node_modules was installed from (a copy, written after a
-- successful `npm ci`): another lock file means another tree to install.
local INSTALLED_LOCK = DIR .. "/node_modules/.cerca-installed-lock.json"

--- Installs Prism into spec/contract/node_modules, exactly as the committed
-- lock file says (`npm ci`), unless that very tree is already there.
-- Raises an error carrying npm's output when the installation fails.
function M.install()
  local lock = read_file(LOCK)
  if file_exists(PRISM_BIN) and lock and read_file(INSTALLED_LOCK) == lock then
    return
  end
  local out, status = run("cd " .. quote(DIR) .. " && " .. QUIET_ENV .. " npm ci --no-audit --no-fund")
  if status ~= 0 or not file_exists(PRISM_BIN) then
    error("npm ci failed in " .. DIR .. " (exit " .. status .. "):\n" .. out, 2)
  end
  run("cp " .. quote(LOCK) .. " " .. quote(INSTALLED_LOCK))
end

local Server = {}
Server.__index = Server

--- Stops the server and every process of its process group. Idempotent.
function Server:stop()
  local pid = self.pid
  if not pid then
    return
  end
  self.pid = nil
  execute("kill -TERM -" .. pid .. " 2>/dev/null")
  for _ = 1, 30 do
    if not alive(pid) then
      break
    end
    sleep(0.1)
  end
  if alive(pid) then
    execute("kill -KILL -" .. pid .. " 2>/dev/null")
  end
  os.remove(self.log)
end

--- True while the server process is running.
function Server:running()
  return self.pid ~= nil and alive(self.pid)
end

-- Starts Prism on port; returns the server, or nil, error, retryable.
local function launch(port, timeout)
  local log = os.tmpname()
  local url = "http://" .. HOST .. ":" .. port
  if probe(url) ~= "000" then
    os.remove(log)
    return nil, "port " .. port .. " is in use", true
  end
  -- setsid makes Prism a process group leader (pgid == pid), so stop() can
  -- signal the whole group. Its output goes to the log, never to our pipe.
  local cmd = QUIET_ENV .. " setsid " .. quote(PRISM_BIN)
    .. " mock " .. quote(DOCUMENT)
    .. " --host " .. HOST .. " --port " .. port
    .. " --errors"
    .. " >" .. quote(log) .. " 2>&1 </dev/null & echo $!"
  local out = run(cmd)
  local pid = tonumber(out:match("(%d+)"))
  if not pid then
    os.remove(log)
    return nil, "could not start prism: " .. out, false
  end
  local server = setmetatable({ url = url, pid = pid, log = log }, Server)
  local deadline = os.time() + timeout
  repeat
    -- The log line proves that this process, not another one, owns the port.
    if read_file(log):find("Prism is listening on " .. url, 1, true) and is_prism(url) then
      return server
    end
    if not alive(pid) then
      local output = read_file(log)
      server:stop()
      return nil, "prism exited:\n" .. output, output:find("EADDRINUSE", 1, true) ~= nil
    end
    sleep(0.2)
  until os.time() > deadline
  local output = read_file(log)
  server:stop()
  return nil, "prism did not answer on " .. url .. " within " .. timeout .. " s:\n" .. output, false
end

--- Starts `prism mock` on the contract on 127.0.0.1, at a random free port.
-- Runs with --errors, so a response that breaks the document is an error too;
-- requests are always validated. Returns { url, pid, log } with :stop() and
-- :running(), or nil and an error message.
-- opts.timeout: seconds to wait for Prism to answer (default 30).
function M.start(opts)
  opts = opts or {}
  if not file_exists(PRISM_BIN) then
    return nil, "prism is not installed: call prism.install() first"
  end
  local timeout = opts.timeout or DEFAULT_TIMEOUT
  local err
  for _ = 1, PORT_ATTEMPTS do
    local server, message, retryable = launch(random_port(), timeout)
    if server then
      return server
    end
    err = message
    if not retryable then
      break
    end
  end
  return nil, err
end

M.document = DOCUMENT

return M
