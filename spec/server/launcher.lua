-- Starts and stops the reference server (nginx + spec/server/handler.lua)
-- and talks to its control endpoints.
--
--   local launcher = require "spec.server.launcher"
--   local srv = launcher.start { api_key = "sk_test_123", tls = true, workers = 1 }
--   ... srv.http_url, srv.https_url, srv:requests(), srv:enqueue { status = 500 } ...
--   (more options: lean = true for benchmarks, delay = <seconds> on every request)
--   srv:stop()
--
-- Runs under Lua 5.4 and LuaJIT with the standard library and cjson only:
-- every outside job (mktemp, openssl, nginx, curl) goes through the shell.
-- This is a test helper, so every failure raises an error.

local cjson = require "cjson"

local M = {}

local MODULES_DIR = "/usr/lib/nginx/modules"
local PORT_MIN, PORT_MAX = 20000, 60000
local START_ATTEMPTS = 20
local STOP_TIMEOUT = 5  -- seconds

-- Shell helpers ------------------------------------------------------------

local function _quote(s)
    return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

-- os.execute as a plain exit code: Lua 5.1 gives the raw wait status,
-- Lua 5.2+ (and LuaJIT built with 5.2 extensions) give (ok, "exit"|"signal", n).
local function _execute(command)
    local a, how, n = os.execute(command)
    if type(a) == "number" then
        if a % 256 ~= 0 then
            return 128 + a % 128  -- killed by a signal, as a shell reports it
        end
        return math.floor(a / 256)
    end
    if how == "signal" then
        return 128 + n
    end
    return n or (a and 0 or 1)
end

local function _capture(command)
    local pipe = assert(io.popen(command, "r"))
    local output = pipe:read("*a")
    pipe:close()
    return output
end

local function _read_file(path)
    local file = io.open(path, "rb")
    if not file then
        return nil
    end
    local text = file:read("*a")
    file:close()
    return text
end

local function _write_file(path, text)
    local file = assert(io.open(path, "wb"))
    assert(file:write(text))
    assert(file:close())
end

local function _sleep(seconds)
    os.execute("sleep " .. seconds)
end

local function _random_bytes(n)
    local file = assert(io.open("/dev/urandom", "rb"))
    local bytes = file:read(n)
    file:close()
    return bytes
end

-- Where things are ---------------------------------------------------------

local function _nginx_binary()
    local from_env = os.getenv("CERCA_NGINX")
    if from_env and from_env ~= "" then
        return from_env
    end
    -- /usr/sbin may be missing from PATH for a non-root user
    if _read_file("/usr/sbin/nginx") then
        return "/usr/sbin/nginx"
    end
    return "nginx"
end

-- The absolute directory of this file, where handler.lua lives too.
local function _server_dir()
    local source = debug.getinfo(1, "S").source
    local dir = source:match("^@(.*)/[^/]*$") or "."
    if dir:sub(1, 1) ~= "/" then
        dir = _capture("pwd"):gsub("%s+$", "") .. "/" .. dir
    end
    return (dir:gsub("/%./", "/"):gsub("/%.$", ""))
end

local SERVER_DIR = _server_dir()

-- Ports --------------------------------------------------------------------

-- Local ports in use in any state, from /proc/net/tcp{,6}: listening
-- sockets, and also the source ports of open connections, which block a bind
-- to the same address just as well. Avoiding them up front matters: on
-- "address in use" nginx retries its bind five times before giving up.
local function _ports_in_use()
    local ports = {}
    for _, path in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
        local text = _read_file(path) or ""
        for port in text:gmatch("\n%s*%d+: %x+:(%x+) ") do
            ports[tonumber(port, 16)] = true
        end
    end
    return ports
end

-- The candidate ports: PORT_MIN..PORT_MAX less the kernel's ephemeral range
-- (where curl's own outgoing connections take their source ports), unless
-- that leaves too few.
local function _port_candidates()
    local text = _read_file("/proc/sys/net/ipv4/ip_local_port_range") or ""
    local low, high = text:match("(%d+)%s+(%d+)")
    low, high = tonumber(low), tonumber(high)
    if low and low - PORT_MIN >= 1000 and high >= PORT_MAX then
        return PORT_MIN, low - 1
    end
    return PORT_MIN, PORT_MAX
end

local function _pick_ports(count)
    local taken = _ports_in_use()
    local first, last = _port_candidates()
    local ports = {}
    while #ports < count do
        local b1, b2, b3 = _random_bytes(3):byte(1, 3)
        local port = first + ((b1 * 256 + b2) * 256 + b3) % (last - first + 1)
        if not taken[port] then
            taken[port] = true
            ports[#ports + 1] = port
        end
    end
    return ports
end

-- Set-up of the prefix -----------------------------------------------------

local function _make_prefix()
    local tmp = os.getenv("TMPDIR")
    if not tmp or tmp == "" then
        tmp = "/tmp"
    end
    local prefix = _capture("mktemp -d " .. _quote(tmp .. "/cerca-server.XXXXXX") .. " 2>&1")
        :gsub("%s+$", "")
    if prefix:sub(1, 1) ~= "/" or _execute("test -d " .. _quote(prefix)) ~= 0 then
        error("cannot create a temporary directory: " .. prefix, 0)
    end
    local code = _execute("mkdir -p " .. _quote(prefix .. "/conf") .. " " .. _quote(prefix .. "/logs")
        .. " " .. _quote(prefix .. "/temp") .. " " .. _quote(prefix .. "/tls"))
    if code ~= 0 then
        error("cannot create directories in " .. prefix, 0)
    end
    return prefix
end

local SERVER_CERT_EXTENSIONS = [[
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
]]

-- A throw-away CA and a server certificate it signs, both on P-256 keys
-- (generated in milliseconds, unlike RSA).
local function _make_certificates(prefix)
    local dir = prefix .. "/tls"
    _write_file(dir .. "/server.ext", SERVER_CERT_EXTENSIONS)
    local key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    local script = table.concat({
        "cd " .. _quote(dir),
        "openssl req -x509 " .. key .. " -keyout ca.key -out ca.pem -days 7"
            .. " -subj '/CN=cerca-lua test CA'"
            .. " -addext 'basicConstraints=critical,CA:TRUE'"
            .. " -addext 'keyUsage=critical,keyCertSign,cRLSign'",
        "openssl req -new " .. key .. " -keyout server.key -out server.csr -subj /CN=localhost",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
            .. " -days 7 -extfile server.ext -out server.pem",
    }, " && ")
    local log = dir .. "/openssl.log"
    if _execute("(" .. script .. ") > " .. _quote(log) .. " 2>&1") ~= 0 then
        error("cannot create the test certificates: " .. (_read_file(log) or "?"), 0)
    end
    return {
        ca_file = dir .. "/ca.pem",
        cert = dir .. "/server.pem",
        key = dir .. "/server.key",
    }
end

local function _is_root()
    return _capture("id -u"):match("^%s*0%s*$") ~= nil
end

local function _nginx_conf(o)
    local lines = {
        "# Written by spec/server/launcher.lua for one run of the reference server.",
        "load_module " .. MODULES_DIR .. "/ndk_http_module.so;",
        "load_module " .. MODULES_DIR .. "/ngx_http_lua_module.so;",
        o.root and "user root;" or "",
        "daemon on;",
        "worker_processes " .. o.workers .. ";",
        "pid logs/nginx.pid;",
        "error_log logs/error.log warn;",
        "events { worker_connections 1024; }",
        "http {",
        "    access_log off;",
        "    server_tokens off;",
        "    default_type application/json;",
        "    client_body_temp_path temp/client_body;",
        "    proxy_temp_path temp/proxy;",
        "    fastcgi_temp_path temp/fastcgi;",
        "    uwsgi_temp_path temp/uwsgi;",
        "    scgi_temp_path temp/scgi;",
        -- bodies stay in memory up to this size (larger ones spill to a file,
        -- which the handler also reads)
        "    client_max_body_size 64m;",
        "    client_body_buffer_size 1m;",
        -- record headers exactly as sent, odd names and long values included
        "    underscores_in_headers on;",
        "    ignore_invalid_headers off;",
        "    large_client_header_buffers 4 64k;",
        "    keepalive_timeout 75s;",
        "    keepalive_requests 100000;",
        '    lua_package_path "' .. SERVER_DIR .. '/?.lua;;";',
        "    lua_shared_dict cerca_server 64m;",
        '    init_by_lua_block { require("handler").init() }',
        "    server {",
        "        listen 127.0.0.1:" .. o.http_port .. ";",
        '        location /__control/ { content_by_lua_block { require("handler").control() } }',
        '        location / { content_by_lua_block { require("handler").api() } }',
        "    }",
    }
    if o.https_port then
        local tls = {
            "    server {",
            "        listen 127.0.0.1:" .. o.https_port .. " ssl;",
            "        ssl_certificate " .. o.certs.cert .. ";",
            "        ssl_certificate_key " .. o.certs.key .. ";",
            '        location / { content_by_lua_block { require("handler").api() } }',
            "    }",
        }
        for _, line in ipairs(tls) do
            lines[#lines + 1] = line
        end
    end
    lines[#lines + 1] = "}"
    return table.concat(lines, "\n") .. "\n"
end

-- The server object --------------------------------------------------------

local Server = {}
Server.__index = Server

-- One control request with the curl command line; returns the decoded JSON.
function Server:_control(method, path, payload)
    if self._stopped then
        error("the reference server is stopped", 0)
    end
    local args = {
        "curl -q -sS --noproxy '*' --max-time 10",
        "-X " .. method,
        "-w " .. _quote("\n%{http_code}"),
    }
    if payload ~= nil then
        local file = self.prefix .. "/control-request.json"
        _write_file(file, cjson.encode(payload))
        args[#args + 1] = "-H 'Content-Type: application/json' --data-binary @" .. _quote(file)
    end
    args[#args + 1] = _quote(self.http_url .. "/__control/" .. path)
    local output = _capture(table.concat(args, " ") .. " 2>&1")
    local body, code = output:match("^(.*)\n(%d%d%d)$")
    local what = method .. " /__control/" .. path
    if not code or code == "000" then
        error(what .. " failed: " .. output .. " (see " .. self.prefix .. "/logs/error.log)", 0)
    end
    local ok, value = pcall(cjson.decode, body)
    if code ~= "200" or not ok then
        error(what .. " answered " .. code .. ": " .. body, 0)
    end
    return value
end

function Server:requests()
    return self:_control("GET", "requests")
end

function Server:subscriptions()
    return self:_control("GET", "subscriptions")
end

-- The Idempotency-Keys under which an answer is stored, in the order stored.
function Server:idempotency_keys()
    return self:_control("GET", "idempotency_keys")
end

function Server:reset()
    self:_control("POST", "reset", {})
    return true
end

function Server:enqueue(script)
    if type(script) ~= "table" then
        error("enqueue expects a script table, got " .. type(script), 2)
    end
    -- floor: cjson hands Lua 5.4 a float (1.0) where an integer is meant
    return math.floor(self:_control("POST", "enqueue", script).queued)
end

-- The state letter of a process ("S", "R", "Z", ...), nil once it is gone.
local function _process_state(pid)
    local stat = _read_file("/proc/" .. pid .. "/stat")
    return stat and stat:match("^%d+ %b() (%a)")
end

function Server:stop()
    if self._stopped then
        return true
    end
    local pid = tonumber(_read_file(self.prefix .. "/logs/nginx.pid") or "")
    if pid then
        _execute("kill -TERM " .. pid .. " 2>/dev/null")
        -- The master exits after its workers, and its sockets close with it.
        -- Nobody may reap it (the daemon is re-parented), so a zombie ("Z")
        -- counts as gone.
        local waited = 0
        local state = _process_state(pid)
        while state and state ~= "Z" do
            if waited >= STOP_TIMEOUT then
                error("nginx (pid " .. pid .. ") did not stop within " .. STOP_TIMEOUT
                    .. "s; prefix kept: " .. self.prefix, 0)
            end
            _sleep(0.02)
            waited = waited + 0.02
            state = _process_state(pid)
        end
    end
    self._stopped = true
    local keep = os.getenv("CERCA_SERVER_KEEP")
    if (not keep or keep == "" or keep == "0") and self.prefix:match("/cerca%-server%.[%w]+$") then
        _execute("rm -rf " .. _quote(self.prefix))
    end
    return true
end

-- Starting -----------------------------------------------------------------

-- glibc's malloc settings for the server: keep what it frees. By default
-- glibc gives the top of the heap back to the kernel once 128 KiB of it is
-- free, and takes it back page fault by page fault on the next wave of
-- requests; with 200 requests held open for a delay, that churn was most
-- of the worker's CPU (a page fault costs microseconds on a virtual
-- machine), and its queue, not the delay, set the pace of row 3 of `make
-- bench`. The client's processes are left with glibc's defaults.
local SERVER_MALLOC = { MALLOC_TRIM_THRESHOLD_ = "268435456", MALLOC_TOP_PAD_ = "16777216" }

local function _start_nginx(srv, o)
    return M.start_nginx {
        prefix = srv.prefix,
        nginx = o.nginx,
        env = SERVER_MALLOC,
        ports = o.tls and 2 or 1,
        conf = function(ports)
            o.http_port, o.https_port = ports[1], ports[2]
            return _nginx_conf(o)
        end,
    }
end

function M.start(opts)
    opts = opts or {}
    if type(opts) ~= "table" then
        error("start expects an options table, got " .. type(opts), 2)
    end
    local api_key = opts.api_key or "sk_test_cerca"
    local workers = opts.workers or 1
    local tls = opts.tls ~= false
    local lean = opts.lean == true
    local delay = opts.delay or 0
    if type(api_key) ~= "string" or api_key == "" then
        error("api_key must be a non-empty string", 2)
    end
    if type(workers) ~= "number" or workers < 1 or workers % 1 ~= 0 then
        error("workers must be a positive integer", 2)
    end
    if opts.lean ~= nil and type(opts.lean) ~= "boolean" then
        error("lean must be a boolean", 2)
    end
    if type(delay) ~= "number" or delay < 0 or delay ~= delay or delay == math.huge then
        error("delay must be a number of seconds >= 0", 2)
    end

    local srv = setmetatable({
        api_key = api_key, lean = lean, delay = delay, prefix = _make_prefix(),
    }, Server)
    local ok, err = pcall(function()
        _write_file(srv.prefix .. "/conf/server.json",
            cjson.encode { api_key = api_key, lean = lean, delay = delay })
        local o = {
            nginx = _nginx_binary(),
            workers = string.format("%d", workers),
            root = _is_root(),
            tls = tls,
        }
        if tls then
            o.certs = _make_certificates(srv.prefix)
            srv.ca_file = o.certs.ca_file
        end
        local ports = _start_nginx(srv, o)
        srv.http_port, srv.https_port = ports[1], ports[2]
        srv.http_url = "http://127.0.0.1:" .. ports[1]
        if tls then
            srv.https_url = "https://localhost:" .. ports[2]
            srv.https_ip_url = "https://127.0.0.1:" .. ports[2]
        end
        -- nginx listens before it forks the workers; the first answer shows
        -- that the handler loaded and a worker is serving
        srv:_control("GET", "ping")
    end)
    if not ok then
        local log = _read_file(srv.prefix .. "/logs/error.log")
        pcall(srv.stop, srv)
        error("cannot start the reference server: " .. tostring(err)
            .. (log and log ~= "" and ("\nerror.log:\n" .. log) or ""), 0)
    end
    return srv
end

-- Helpers for specs that run an nginx of their own -------------------------
--
-- The reference server's own machinery, public: a fresh prefix, free ports,
-- starting nginx on them (retrying when a port turns out to be taken) and
-- stopping it. spec/nginx/app.lua builds on these.

M.quote = _quote
M.execute = _execute
M.capture = _capture
M.read_file = _read_file
M.write_file = _write_file
M.sleep = _sleep
-- pick_ports(n): n distinct loopback ports, free when picked.
M.pick_ports = _pick_ports
-- make_prefix(): a fresh temp directory (mode 0700) holding conf/, logs/,
-- temp/ and tls/; stop_nginx removes it.
M.make_prefix = _make_prefix

-- Starts nginx as a daemon in `opts.prefix` (trailing slash optional) with
-- the configuration `opts.conf(ports)` (a string, written to
-- prefix/conf/nginx.conf), on `opts.ports` (default 1) ports picked by
-- pick_ports, with `opts.env` (name -> value, or false to remove the
-- variable) applied to the environment it inherits; `opts.nginx` names the
-- binary and `opts.main` another file of conf/ to start from.
-- Returns the ports. The configuration must keep its pid file at
-- logs/nginx.pid, where stop_nginx looks.
function M.start_nginx(opts)
    local prefix = opts.prefix:gsub("/+$", "")
    local conf = prefix .. "/conf/nginx.conf"
    -- opts.main: another file of conf/ to start from (it may include nginx.conf).
    local main = opts.main and (prefix .. "/conf/" .. opts.main) or conf
    local log = prefix .. "/logs/start.log"
    local env = {}
    for name, value in pairs(opts.env or {}) do
        env[#env + 1] = value == false and ("-u " .. name) or (name .. "=" .. _quote(value))
    end
    table.sort(env)
    local command = (#env > 0 and ("env " .. table.concat(env, " ") .. " ") or "")
        .. _quote(opts.nginx or _nginx_binary()) .. " -p " .. _quote(prefix .. "/")
        .. " -c " .. _quote(main) .. " > " .. _quote(log) .. " 2>&1"
    for _ = 1, START_ATTEMPTS do
        local ports = _pick_ports(opts.ports or 1)
        _write_file(conf, opts.conf(ports))
        local code = _execute(command)
        if code == 0 then
            return ports
        end
        local output = _read_file(log) or ""
        if not output:find("Address already in use", 1, true) then
            error("nginx failed to start (exit " .. code .. "): " .. output, 0)
        end
    end
    error("nginx found no free port in " .. START_ATTEMPTS .. " attempts", 0)
end

-- Stops the nginx started in `prefix` exactly as Server:stop does (TERM,
-- wait until it is gone) and removes a prefix made by make_prefix unless
-- CERCA_SERVER_KEEP is set. Raises if nginx does not stop.
function M.stop_nginx(prefix)
    return Server.stop(setmetatable({ prefix = prefix:gsub("/+$", "") }, Server))
end

return M
