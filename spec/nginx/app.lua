-- An nginx running the SDK, for the specs of the OpenResty adapter: a
-- fresh prefix laid out as examples/openresty/nginx.conf asks, a free port,
-- and the curl command line as the HTTP client.
--
--   local app = require "spec.nginx.app"
--   local a = app.start {
--     conf = function(port) return conf_text end,  -- listens on 127.0.0.1:<port>
--     env = { CERCA_API_KEY = "...", CERCA_BASE_URL = "...", CERCA_CA_FILE = false },
--     files = { ["ca.pem"] = "/path/to/ca.pem" },   -- copied into the prefix:
--     -- env = { CERCA_CA_FILE = "@PREFIX@/ca.pem" } names the copy
--   }
--   local res = a:request("POST", "/subscriptions", '{"fleet_id":...}')
--   -- res.status, res.headers (lower-case names), res.body, res.time (seconds),
--   -- res.connected, res.first_byte (curl's time_connect, time_starttransfer)
--   a:error_log()
--   a:stop()
--
-- The prefix holds copies of lua/ (`lua`), of build/luajit's core (`lib`:
-- nginx's Lua is LuaJIT whatever runs busted) and of spec/nginx/ (`app`,
-- for handlers.lua), a link to nginx's modules (`modules`), and logs/. Starting and stopping are the
-- reference server launcher's (spec/server/launcher.lua).
local launcher = require "spec.server.launcher"

local quote = launcher.quote

local M = {}

local START_TIMEOUT = 5 -- seconds until the first answer

--- The nginx binary the SDK's specs run: CERCA_SDK_NGINX, else the reference
-- server's (CERCA_NGINX, else Debian's). Any nginx with the Lua module, built
-- in (OpenResty) or loadable (Debian's libnginx-mod-http-lua).
M.binary = os.getenv("CERCA_SDK_NGINX") or os.getenv("CERCA_NGINX") or "/usr/sbin/nginx"

--- True when the binary has the Lua module built in (no load_module needed).
function M.lua_built_in()
  if M._built_in == nil then
    local v = launcher.capture(quote(M.binary) .. " -V 2>&1")
    M._built_in = v:find("lua%-nginx%-module") ~= nil or v:find("ngx_lua") ~= nil
  end
  return M._built_in
end

--- A configuration text fit for the binary: the load_module lines of the
-- Lua module and the NDK dropped where the module is built in.
function M.for_binary(text)
  if not M.lua_built_in() then return text end
  return (text:gsub("\nload_module [^\n]*ndk_http_module%.so;", "\n")
    :gsub("\nload_module [^\n]*ngx_http_lua_module%.so;", "\n"))
end

local function repo_root()
  return (launcher.capture("pwd"):gsub("%s+$", ""))
end

-- Runs curl; returns what it printed (its -w output, or its error), trimmed.
local function curl(args)
  local out = launcher.capture("curl -q -sS --noproxy '*' " .. args .. " 2>&1")
  return (out:gsub("%s+$", ""))
end

local App = {}
App.__index = App

--- Starts nginx and waits until it answers. Raises when it cannot, with
-- its error.log. opts.conf(port) returns the configuration text; opts.env
-- sets (name -> value, "@PREFIX@" standing for the prefix) or removes
-- (name -> false) environment variables;
-- opts.files copies files into the prefix (name -> source path), readable
-- by the workers, which do not run as root; opts.setup is a list of shell
-- commands run once the prefix is laid out ("@PREFIX@" standing for it);
-- opts.ready is the path asked until nginx answers (default /ping);
-- opts.main is another file of conf/ to start from (see launcher.start_nginx).
function M.start(opts)
  local prefix = launcher.make_prefix()
  local a = setmetatable({ prefix = prefix }, App)
  local ok, err = pcall(function()
    local root = repo_root()
    -- Workers run as `nobody` when nginx starts as root and the conf names
    -- no user: they must be able to read the SDK. Copies, not links, so
    -- that a checkout only root can read (/root is 0700) works as well.
    local setup = {
      "chmod 755 " .. quote(prefix),
      "cp -R " .. quote(root .. "/lua") .. " " .. quote(prefix .. "/lua"),
      "mkdir -p " .. quote(prefix .. "/lib/cerca"),
      "cp " .. quote(root .. "/build/luajit/cerca/core.so") .. " " .. quote(prefix .. "/lib/cerca/core.so"),
      "ln -s /usr/lib/nginx/modules " .. quote(prefix .. "/modules"),
      "cp -R " .. quote(root .. "/spec/nginx") .. " " .. quote(prefix .. "/app"),
      "chmod -R a+rX " .. quote(prefix .. "/lua") .. " " .. quote(prefix .. "/lib") .. " " .. quote(prefix .. "/app"),
    }
    for name, source in pairs(opts.files or {}) do
      setup[#setup + 1] = "install -m 644 " .. quote(source) .. " " .. quote(prefix .. "/" .. name)
    end
    for _, command in ipairs(opts.setup or {}) do
      setup[#setup + 1] = (command:gsub("@PREFIX@", prefix))
    end
    if launcher.execute(table.concat(setup, " && ")) ~= 0 then
      error("cannot lay out the prefix " .. prefix, 0)
    end
    local env = {}
    for name, value in pairs(opts.env or {}) do
      env[name] = type(value) == "string" and value:gsub("@PREFIX@", prefix) or value
    end
    local ports = launcher.start_nginx {
      prefix = prefix,
      env = env,
      nginx = M.binary,
      main = opts.main,
      conf = function(p) return opts.conf(p[1]) end,
    }
    a.port = ports[1]
    a.url = "http://127.0.0.1:" .. a.port
    -- nginx listens before its workers are up: wait for a first answer.
    local waited = 0
    local ready = quote(a.url .. (opts.ready or "/ping"))
    while curl("-o /dev/null --max-time 1 -w '%{http_code}' " .. ready) == "000" do
      if waited >= START_TIMEOUT then error("nginx does not answer on " .. a.url, 0) end
      launcher.sleep(0.05)
      waited = waited + 0.05
    end
  end)
  if not ok then
    local log = launcher.read_file(prefix .. "/logs/error.log") or ""
    pcall(launcher.stop_nginx, prefix)
    error("cannot start nginx: " .. tostring(err) .. (log ~= "" and ("\nerror.log:\n" .. log) or ""), 0)
  end
  return a
end

--- The shipped example configuration, the line of it that names its port,
-- and the loader Debian's nginx starts it through.
M.EXAMPLE = "examples/openresty/nginx.conf"
M.EXAMPLE_LISTEN = "listen 127.0.0.1:8080;"
M.DEBIAN_LOADER = "examples/openresty/debian.conf"

-- `text` with `from` (plain text, which must be there once) replaced by `to`.
local function replace_once(text, from, to)
  local out, n = text:gsub(from:gsub("%p", "%%%0"), (to:gsub("%%", "%%%%")))
  assert(n == 1, M.EXAMPLE .. " no longer holds `" .. from .. "` once")
  return out
end

--- The example's text, listening on `port` instead of 8080, with each
-- `{ from, to }` of `edits` (plain text, found once) applied.
function M.example_conf(port, edits)
  local conf = replace_once(launcher.read_file(M.EXAMPLE), M.EXAMPLE_LISTEN, "listen 127.0.0.1:" .. port .. ";")
  for _, edit in ipairs(edits or {}) do conf = replace_once(conf, edit[1], edit[2]) end
  return conf
end

--- Starts the shipped example as `M.start` starts a configuration (opts:
-- `env`, `files`, `setup`, and `edits` as for example_conf): as it is for
-- an nginx with the Lua module built in; for a loadable module (Debian),
-- through the shipped loader, verbatim, which includes it (conf/nginx.conf).
function M.start_example(opts)
  local o = { env = opts.env, files = opts.files, setup = {} }
  for i, command in ipairs(opts.setup or {}) do o.setup[i] = command end
  o.conf = function(port) return M.for_binary(M.example_conf(port, opts.edits)) end
  if not M.lua_built_in() then
    o.setup[#o.setup + 1] = "install -m 644 " .. quote(M.DEBIAN_LOADER) .. " @PREFIX@/conf/debian.conf"
    o.main = "debian.conf"
  end
  return M.start(o)
end

--- Where a file of the prefix is.
function App:path(name)
  return self.prefix .. "/" .. name
end

-- curl arguments of one request; its answer goes to files named after `tag`.
function App:_args(method, path, body, tag, max_time, headers)
  local args = {
    "--max-time " .. (max_time or 30),
    "-X " .. method,
    "-D " .. quote(self:path(tag .. ".headers")),
    "-o " .. quote(self:path(tag .. ".body")),
    "-w " .. quote("%{http_code} %{time_total} %{time_connect} %{time_starttransfer}"),
  }
  for name, value in pairs(headers or {}) do
    args[#args + 1] = "-H " .. quote(name .. ": " .. value)
  end
  if body then
    launcher.write_file(self:path(tag .. ".request"), body)
    args[#args + 1] = "-H 'Content-Type: application/json' --data-binary @" .. quote(self:path(tag .. ".request"))
  end
  args[#args + 1] = quote(self.url .. path)
  return table.concat(args, " ")
end

-- The answer left in the files named after `tag` by a curl that wrote `out`.
function App:_answer(out, tag)
  local status, time, connected, first_byte = out:match("^(%d%d%d) ([%d%.]+) ([%d%.]+) ([%d%.]+)$")
  if not status or status == "000" then
    error("no answer from nginx: " .. out .. "\nerror.log:\n" .. self:error_log(), 0)
  end
  local headers = {}
  for name, value in (launcher.read_file(self:path(tag .. ".headers")) or ""):gmatch("([%w%-]+):%s*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  return {
    status = tonumber(status),
    time = tonumber(time),
    connected = tonumber(connected),
    first_byte = tonumber(first_byte),
    headers = headers,
    body = launcher.read_file(self:path(tag .. ".body")) or "",
  }
end

--- One request through curl: { status, headers, body, time, connected,
-- first_byte } (curl's %{time_total}, %{time_connect} and
-- %{time_starttransfer}, seconds), with extra request `headers` (name ->
-- value) if given. Raises when nginx does not answer.
function App:request(method, path, body, max_time, headers)
  return self:_answer(curl(self:_args(method, path, body, "answer", max_time, headers)), "answer")
end

--- Starts a request in the background; `:wait()` on the returned handle
-- gives its answer as App:request does.
function App:spawn(method, path, body, max_time)
  self._spawned = (self._spawned or 0) + 1
  local tag = "spawned" .. self._spawned
  local out = self:path(tag .. ".out")
  launcher.execute("(curl -q -sS --noproxy '*' " .. self:_args(method, path, body, tag, max_time)
    .. " > " .. quote(out .. ".tmp") .. " 2>&1; mv " .. quote(out .. ".tmp") .. " " .. quote(out)
    .. ") > /dev/null 2>&1 &")
  local app = self
  return {
    wait = function(_, timeout)
      local waited = 0
      while not launcher.read_file(out) do
        if waited >= (timeout or 30) then error("the background request did not end", 0) end
        launcher.sleep(0.02)
        waited = waited + 0.02
      end
      return app:_answer((launcher.read_file(out):gsub("%s+$", "")), tag)
    end,
  }
end

--- The text of logs/error.log.
function App:error_log()
  return launcher.read_file(self:path("logs/error.log")) or ""
end

--- Stops nginx and removes the prefix (CERCA_SERVER_KEEP=1 keeps it).
-- Idempotent.
function App:stop()
  if self._stopped then return true end
  self._stopped = true
  return launcher.stop_nginx(self.prefix)
end

return M
