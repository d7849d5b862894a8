--- `make bench`: runs every benchmark, prints one table and writes it to
-- build/bench/results.md. bench/README.md says what each row means.
--
-- Runs under lua5.4 from the repository root, after `make build` and the
-- ceiling's compilation (build/bench/ceiling). Every figure is the median of
-- several runs, each run a fresh process; contenders that are compared run
-- interleaved, in a rotating order, within each round.
--
-- Environment knobs (defaults in brackets):
--   BENCH_ROUNDS      rounds of the creates' throughput runs (rows 1 to 3) [15]
--   BENCH_CREATES     timed creates per throughput run [1000]
--   BENCH_VERIFY_ROUNDS  rounds of the verification runs (rows 5 and 6) [7]
--   BENCH_CPU         where client and server run: same (one CPU for both),
--                     split (one CPU each) or none (the scheduler decides) [same]
--   BENCH_MEMORY      creates of the memory run [100000]; 1,000 is its first reading
--   BENCH_MANY        creates of the large create_many run and of the command
--                     line's batch, 200 in flight [10000]
--   BENCH_CALLGRIND   creates per callgrind run [2000]
--   BENCH_ONLY        the part to run: all, creates (rows 1 to 4) or verify
--                     (delivery verification, rows 5 and 6) [all]
--   BENCH_VERIFIES    timed verifies per verifier process [100000]
--   BENCH_NGINX_SECONDS      length of each load-generator run [3]
--   BENCH_NGINX_CONNECTIONS  keep-alive connections of the load generator [32]
local env = require "bench.env"  -- module paths, /proc CPU times
local launcher = require "spec.server.launcher"

local format = string.format

local function knob(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return tonumber(v) or v
end

-- Many short runs rather than a few long ones: the host's speed changes from
-- one second to the next, and two runs compared are closer in time.
local ROUNDS = knob("BENCH_ROUNDS", 15)
local CREATES = knob("BENCH_CREATES", 1000)
local VERIFY_ROUNDS = knob("BENCH_VERIFY_ROUNDS", 7)
local WARMUP = 200
-- A new TLS connection per call costs a handshake (~2 ms here): fewer creates.
local FRESH_CREATES = math.max(50, math.floor(CREATES / 10))
-- create_many: 1000 creates, 50 in flight, each answered after 20 ms; then
-- BENCH_MANY creates, 200 in flight, through the library and through the
-- command line's batch mode.
local MANY_CREATES, MANY_CONCURRENCY, MANY_DELAY = 1000, 50, 0.02
local MANY_IDEAL = math.ceil(MANY_CREATES / MANY_CONCURRENCY) * MANY_DELAY
local LARGE_CREATES, LARGE_CONCURRENCY = knob("BENCH_MANY", 10000), 200
local LARGE_IDEAL = math.ceil(LARGE_CREATES / LARGE_CONCURRENCY) * MANY_DELAY
local MANY_TARGET = 0.90
-- Length of each load-generator run beside create_many (s).
local LOAD_SECONDS = 2
local FRESH_WARMUP = 20
local CPU_MODE = knob("BENCH_CPU", "same")
local MEMORY_ROUNDS = 3
local MEMORY_FIRST, MEMORY_LAST = 1000, knob("BENCH_MEMORY", 100000)
local REQUIRE_REPS = 41
local CALLGRIND_ROUNDS = 3
local CALLGRIND_CREATES = knob("BENCH_CALLGRIND", 2000)
local CALLGRIND_WARMUP = 200
local OUT_DIR = "build/bench"
local CEILING = OUT_DIR .. "/ceiling"
local ONLY = knob("BENCH_ONLY", "all")
if ONLY ~= "all" and ONLY ~= "creates" and ONLY ~= "verify" then
  error("BENCH_ONLY must be all, creates or verify", 0)
end
local VERIFIES = knob("BENCH_VERIFIES", 100000)
local VERIFY_WARMUP = math.max(1000, math.floor(VERIFIES / 10))
local VERIFY_CEILING = OUT_DIR .. "/verify_ceiling"
local NGINX_SECONDS = knob("BENCH_NGINX_SECONDS", 3)
local NGINX_CONNECTIONS = knob("BENCH_NGINX_CONNECTIONS", 32)
local NGINX_TARGET = 10000

local function progress(...)
  io.stderr:write("bench: ", format(...), "\n")
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end

local function median(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) / 2] end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

-- Runs a command; returns its RESULT fields (numbers where they parse), or
-- raises with the command's output.
local function run(command)
  local pipe = assert(io.popen(command .. " 2>&1"))
  local output = pipe:read("*a")
  pipe:close()
  local line = output:match("RESULT ([^\n]*)")
  if not line then
    error(format("benchmark process failed: %s\n%s", command, output), 0)
  end
  local fields = {}
  for k, v in line:gmatch("([%w_]+)=(%S+)") do fields[k] = tonumber(v) or v end
  return fields
end

-- Servers ------------------------------------------------------------------

-- Every server the benchmarks use, started on first use. One worker: a
-- kept-alive connection is served by a single nginx worker whatever their
-- number, so a second worker would only take the client's CPU away.
local SERVERS = {
  lean = { lean = true, tls = true, delay = 0, workers = 1 },
  -- create_many runs against a server that answers after 20 ms.
  slow = { lean = true, tls = false, delay = MANY_DELAY, workers = 1 },
  -- Records what it receives: for the checks, never timed.
  recording = { lean = false, tls = true, delay = 0, workers = 1 },
}
local started = {}

local function worker_pids(srv)
  local master = (read_file(srv.prefix .. "/logs/nginx.pid") or ""):match("%d+")
  local children = master and read_file(format("/proc/%s/task/%s/children", master, master)) or ""
  local pids = {}
  for pid in children:gmatch("%d+") do pids[#pids + 1] = pid end
  return pids
end

-- CPU placement: the client's command prefix, and the servers' workers
-- pinned to match. By default both share one CPU: a sequential client and
-- its server take turns anyway, and on a virtual machine a wake-up across
-- CPUs can cost more than the request itself (on the 2-vCPU machine this
-- was written on, the ceiling made ~11,500 creates/s on one CPU, ~4,500/s
-- split over two, and anything in between when the scheduler chose). On one
-- CPU the figures are the CPU work of client, server and kernel, and stable.
local client_prefix = ""
local function nproc()
  local p = io.popen("nproc")
  local n = tonumber(p:read("*a")) or 1
  p:close()
  return n
end
local NPROC = nproc()
-- Other work on the machine shows in the figures: say how busy it was.
local LOAD_AT_START = (read_file("/proc/loadavg") or "?"):match("^(%S+)")
local SERVER_CPU, CLIENT_CPU
if CPU_MODE == "same" then
  SERVER_CPU, CLIENT_CPU = NPROC - 1, NPROC - 1
elseif CPU_MODE == "split" and NPROC >= 2 then
  SERVER_CPU, CLIENT_CPU = NPROC - 2, NPROC - 1
elseif CPU_MODE ~= "none" then
  error("BENCH_CPU must be same, split or none (split needs two CPUs)", 0)
end
if CLIENT_CPU then client_prefix = "taskset -c " .. CLIENT_CPU .. " " end

-- Pins the workers of a running nginx (spec/server/launcher.lua or
-- spec/nginx/app.lua) to the server's CPU, and remembers them for server_cpu.
local function pin_workers(srv)
  srv.workers = worker_pids(srv)
  if SERVER_CPU then
    for _, pid in ipairs(srv.workers) do
      os.execute(format("taskset -pc %d %s > /dev/null", SERVER_CPU, pid))
    end
  end
end

local function server(name)
  if started[name] then return started[name] end
  progress("starting the %s server", name)
  local srv = launcher.start(SERVERS[name])
  started[name] = srv
  pin_workers(srv)
  return srv
end

local function stop_servers()
  for name, srv in pairs(started) do
    pcall(srv.stop, srv)
    started[name] = nil
  end
end

-- CPU seconds the server's workers have used so far.
local function server_cpu(srv)
  local seconds = 0
  for _, pid in ipairs(srv.workers) do
    local user, system = env.cpu_times(pid)
    seconds = seconds + user + system
  end
  return seconds
end

-- Contenders ----------------------------------------------------------------

-- The cerca driver under interpreter `lua`, against `url`.
local function driver(lua, srv, url, count, warmup, extra)
  return format("%s bench/creates.lua --url %s --key %s --count %d --warmup %d%s", lua,
    shell_quote(url), shell_quote(srv.api_key), count, warmup, extra or "")
end

local function ceiling(srv, url, count, warmup, extra)
  return format("%s%s -w %d %s %s %d", CEILING, extra or "", warmup, shell_quote(url),
    shell_quote(srv.api_key), count)
end

-- A command run on the client's CPU (not for valgrind, which would then
-- trace taskset instead).
local function pinned(command)
  return client_prefix .. command
end

-- create_many measures how well waits overlap, not CPU work: with client
-- and server on one CPU their work would add up wave after wave and the
-- ideal could not be reached by construction. Its client gets the other CPU.
local function pinned_apart(command)
  if SERVER_CPU and NPROC >= 2 then
    return format("taskset -c %d %s", (SERVER_CPU + 1) % NPROC, command)
  end
  return command
end

local function ca(srv) return " --ca " .. shell_quote(srv.ca_file) end

-- The peers of row 1: the same create written by hand with other clients
-- (bench/README.md). Each sends cerca's user agent and the body cerca
-- encodes, byte for byte.
local PEER_NODE, PEER_PYTHON = "/usr/bin/node", "/usr/bin/python3"
local PEER_AGENT, PEER_BODY
do
  local cerca = require "cerca"
  local client = assert(cerca.new { api_key = "sk_bench", base_url = "http://127.0.0.1" })
  PEER_AGENT = client.user_agent
  client:close()
  -- bench/creates.lua's PARAMS, as cerca encodes them (bench/ceiling.c's body).
  PEER_BODY = assert(require("cerca.json").encode_canonical(require("cerca.webhooks").body {
    url = "https://example.com/webhook", events = { "agent.created", "thread.completed" } }))
end

local function peer(interpreter, script)
  return function(s, c)
    return format("%s %s --url %s --key %s --agent %s --body %s --count %d --warmup %d", interpreter, script,
      shell_quote(s.http_url), shell_quote(s.api_key), shell_quote(PEER_AGENT), shell_quote(PEER_BODY),
      c.creates, c.warmup)
  end
end

-- wrk keeping `connections` creates in flight against the create_many
-- server (bench/load_creates.lua).
local function load_contender(name, connections)
  return { name = name, what = format("wrk, %d connections, fresh Idempotency-Key per create, server delay 20 ms,"
      .. " on the other CPU", connections),
    server = "slow", creates = 0, warmup = 0, connections = "any", apart = true, load = true,
    command = function(s)
      return format("lua5.4 bench/load_creates.lua --url %s --key %s --body %s --connections %d --seconds %g",
        shell_quote(s.http_url), shell_quote(s.api_key), shell_quote(PEER_BODY), connections, LOAD_SECONDS)
    end }
end

-- The fleets of the command line's batch: the ids bench/create_many.lua
-- uses; and a file of one fleet, for what the command costs whatever the
-- batch (row 3f's reason).
local FLEETS_FILE = OUT_DIR .. "/fleets.txt"
local ONE_FLEET_FILE = OUT_DIR .. "/fleet.txt"
local function write_fleets_file()
  os.execute("mkdir -p " .. OUT_DIR)
  local f = assert(io.open(FLEETS_FILE, "w"))
  for i = 1, LARGE_CREATES do f:write("fleet_many_", i, "\n") end
  f:close()
  f = assert(io.open(ONE_FLEET_FILE, "w"))
  f:write("fleet_many_1\n")
  f:close()
end

-- A script's flag on its command line: " --flag", or nothing.
local function flag_arg(flag) return flag and " " .. flag or "" end

-- bench/cli_batch.lua over `fleets_file`, and its flag if any (`--no-gc`):
-- a contender's command.
local function cli_batch_command(fleets_file, flag)
  return function(s, c)
    return format("lua5.4 bench/cli_batch.lua --url %s --key %s --fleets-file %s --count %d --concurrency %d%s",
      shell_quote(s.http_url), shell_quote(s.api_key), shell_quote(fleets_file), c.creates, LARGE_CONCURRENCY,
      flag_arg(flag))
  end
end

-- bench/create_many.lua with `in_flight` creates in flight, and its flag
-- if any (`--core-only`, `--no-gc`, ...): a contender's command.
local function create_many_command(in_flight, flag)
  return function(s, c)
    return format("lua5.4 bench/create_many.lua --url %s --key %s --count %d --concurrency %d%s",
      shell_quote(s.http_url), shell_quote(s.api_key), c.creates, in_flight, flag_arg(flag))
  end
end

-- Sequential creates: each contender is one process per round, timed inside,
-- running `command(server, contender)`; `creates` and `warmup` are its timed
-- and untimed creates, `connections` what it should open while timed:
-- "none" (the default: it reuses one), "each" (one per create) or "any".
-- GROUPS (below) says in which order they run within a round.
-- The HTTPS rows use the server's 127.0.0.1 address (its certificate names
-- it), as the HTTP rows do, so that both connect the same way.
-- cerca's sequential loop under Lua 5.4 over HTTP (rows 1a and 3d's reason).
local function lua54_http(s, c) return driver("lua5.4", s, s.http_url, c.creates, c.warmup) end

local CONTENDERS = {
  { name = "http_lua54", what = "cerca, Lua 5.4, HTTP", server = "lean", command = lua54_http },
  -- The same loop with its client on the other CPU than the server, as the
  -- batches run: what one create costs a client that waits across CPUs
  -- (row 3d's reason).
  { name = "http_lua54_apart", what = "cerca, Lua 5.4, HTTP, client on the other CPU", server = "lean", apart = true,
    command = lua54_http },
  { name = "http_luajit", what = "cerca, LuaJIT, HTTP", server = "lean",
    command = function(s, c) return driver("luajit", s, s.http_url, c.creates, c.warmup) end },
  { name = "http_core", what = "C core alone (session:request loop), Lua 5.4, HTTP", server = "lean",
    command = function(s, c) return driver("lua5.4", s, s.http_url, c.creates, c.warmup, " --core-only") end },
  { name = "http_ceiling", what = "C ceiling, HTTP", server = "lean",
    command = function(s, c) return ceiling(s, s.http_url, c.creates, c.warmup) end },
  { name = "https_lua54", what = "cerca, Lua 5.4, HTTPS, reused connection", server = "lean",
    command = function(s, c) return driver("lua5.4", s, s.https_ip_url, c.creates, c.warmup, ca(s)) end },
  { name = "https_ceiling", what = "C ceiling, HTTPS, reused connection", server = "lean",
    command = function(s, c)
      return ceiling(s, s.https_ip_url, c.creates, c.warmup, " -c " .. shell_quote(s.ca_file))
    end },
  { name = "https_fresh", what = "C ceiling, HTTPS, new connection per create", server = "lean",
    creates = FRESH_CREATES, warmup = FRESH_WARMUP, connections = "each",
    command = function(s, c)
      return ceiling(s, s.https_ip_url, c.creates, c.warmup, " -f -c " .. shell_quote(s.ca_file))
    end },
  { name = "many_lua54", what = "create_many, Lua 5.4, 50 in flight, server delay 20 ms, client on the other CPU",
    server = "slow", creates = MANY_CREATES, warmup = 0, connections = "any", apart = true,
    command = create_many_command(MANY_CONCURRENCY) },
  { name = "http_lua_curl", what = "Lua 5.1 + lua-curl + cjson, hand-written loop, HTTP", server = "lean",
    command = peer("lua5.1", "bench/creates_lua_curl.lua") },
  { name = "http_node", what = "Node fetch loop, HTTP", server = "lean",
    command = peer(PEER_NODE, "bench/creates_node.js") },
  { name = "http_python", what = "Python requests Session loop, HTTP", server = "lean",
    command = peer(PEER_PYTHON, "bench/creates_python.py") },
  { name = "many_large",
    what = format("create_many, Lua 5.4, %d in flight, server delay 20 ms, client on the other CPU", LARGE_CONCURRENCY),
    server = "slow", creates = LARGE_CREATES, warmup = 0, connections = "any", apart = true,
    command = create_many_command(LARGE_CONCURRENCY) },
  -- One wave alone: as many creates as are in flight, each on a connection
  -- of its own opened for it. The first wave of the large batch is this,
  -- the rest of it waves on connections kept alive (row 3d's reason).
  { name = "many_one_wave",
    what = format("create_many, Lua 5.4, %d creates, %d in flight (one wave), server delay 20 ms, client on the"
      .. " other CPU", LARGE_CONCURRENCY, LARGE_CONCURRENCY),
    server = "slow", creates = LARGE_CONCURRENCY, warmup = 0, connections = "any", apart = true,
    command = create_many_command(LARGE_CONCURRENCY) },
  -- The same batch through the C core alone, no Lua layer: what libcurl and
  -- the core's multi handle allow this client (row 3d's reason).
  { name = "many_core",
    what = format("the C core's multi handle alone (Lua 5.4, no Lua layer), %d in flight, server delay 20 ms,"
      .. " client on the other CPU", LARGE_CONCURRENCY),
    server = "slow", creates = LARGE_CREATES, warmup = 0, connections = "any", apart = true,
    command = create_many_command(LARGE_CONCURRENCY, "--core-only") },
  -- The library's batch with Lua's garbage collector stopped while it runs:
  -- what the collector's work costs it (row 3d's reason).
  { name = "many_no_gc",
    what = format("create_many, Lua 5.4, %d in flight, server delay 20 ms, Lua's garbage collector stopped during"
      .. " the batch, client on the other CPU", LARGE_CONCURRENCY),
    server = "slow", creates = LARGE_CREATES, warmup = 0, connections = "any", apart = true,
    command = create_many_command(LARGE_CONCURRENCY, "--no-gc") },
  -- The library's batch recording the stretches it spends away from the
  -- network, and Lua's heap around the longest (row 3d's reason).
  { name = "many_stalls",
    what = format("create_many, Lua 5.4, %d in flight, server delay 20 ms, its stretches away from the network"
      .. " recorded, client on the other CPU", LARGE_CONCURRENCY),
    server = "slow", creates = LARGE_CREATES, warmup = 0, connections = "any", apart = true,
    command = create_many_command(LARGE_CONCURRENCY, "--stalls") },
  -- The library's batch with the collector in incremental mode, the
  -- interpreter's other mode (row 3l).
  { name = "many_incremental",
    what = format("create_many, Lua 5.4, %d in flight, server delay 20 ms, incremental collector, client on the"
      .. " other CPU", LARGE_CONCURRENCY),
    server = "slow", creates = LARGE_CREATES, warmup = 0, connections = "any", apart = true,
    command = create_many_command(LARGE_CONCURRENCY, "--incremental") },
  -- The same batch against a server that answers at once: its client never
  -- waits, so its CPU per create is the batch's own work, without what
  -- waking up after each wait costs (row 3d's reason).
  { name = "many_nowait",
    what = format("create_many, Lua 5.4, %d in flight, server without delay, client on the other CPU",
      LARGE_CONCURRENCY),
    server = "lean", creates = LARGE_CREATES, warmup = 0, connections = "any", apart = true,
    command = create_many_command(LARGE_CONCURRENCY) },
  -- What a load generator makes of the same server: how much of the ideal
  -- the server itself allows with that many creates in flight.
  load_contender("load_many", MANY_CONCURRENCY),
  load_contender("load_large", LARGE_CONCURRENCY),
  { name = "cli_large", what = format("`cerca webhooks create --fleets-file` (Lua 5.4), %d in flight, server delay"
      .. " 20 ms, client on the other CPU, whole command", LARGE_CONCURRENCY),
    server = "slow", creates = LARGE_CREATES, warmup = 0, connections = "any", apart = true,
    command = cli_batch_command(FLEETS_FILE) },
  -- The same command with Lua's garbage collector stopped from its start:
  -- what the collector's work costs the whole command (row 3m).
  { name = "cli_no_gc", what = format("`cerca webhooks create --fleets-file` (Lua 5.4), %d in flight, server"
      .. " delay 20 ms, Lua's garbage collector stopped from its start, client on the other CPU, whole command",
      LARGE_CONCURRENCY),
    server = "slow", creates = LARGE_CREATES, warmup = 0, connections = "any", apart = true,
    command = cli_batch_command(FLEETS_FILE, "--no-gc") },
  -- The same command with one fleet: its start-up and exit, one connection
  -- and one create (row 3f's reason).
  { name = "cli_one", what = "`cerca webhooks create --fleets-file` (Lua 5.4), one fleet, server delay 20 ms, client"
      .. " on the other CPU, whole command",
    server = "slow", creates = 1, warmup = 0, connections = "any", apart = true,
    command = cli_batch_command(ONE_FLEET_FILE) },
}
-- The peers' versions, into their labels.
local function peer_versions()
  local function said(command)
    local p = io.popen(command .. " 2>&1")
    local text = p:read("*a")
    p:close()
    return text
  end
  local python, requests = said(PEER_PYTHON
    .. [[ -c 'import sys, requests; print(sys.version.split()[0], requests.__version__)']]):match("^(%S+) (%S+)")
  local label = {
    http_lua_curl = format("%s + Debian's lua-curl %s (`require \"curl\"`, %s) + lua-cjson, hand-written loop, HTTP",
      said("lua5.1 -v"):match("^(Lua %S+)") or "Lua 5.1",
      said([[lua5.1 -e 'io.write(require("curl")._VERSION)']]):match("^%S+") or "?",
      said([[lua5.1 -e 'io.write(require("curl").version())']]):match("^(libcurl/%S+ %S+)") or "libcurl"),
    http_node = format("Node %s `fetch` loop (undici %s, default agent), HTTP",
      said(PEER_NODE .. " --version"):match("^(%S+)") or "?",
      said(PEER_NODE .. [[ -p process.versions.undici]]):match("^(%S+)") or "?"),
    http_python = format("Python %s `requests` %s Session loop, HTTP", python or "?", requests or "?"),
  }
  for _, c in ipairs(CONTENDERS) do c.what = label[c.name] or c.what end
end

for _, c in ipairs(CONTENDERS) do
  c.creates = c.creates or CREATES
  c.warmup = c.warmup or WARMUP
  c.connections = c.connections or "none"
end

-- Within a round the contenders run group after group, and within a group
-- one after the other, in an order that rotates from round to round: the
-- runs a ratio compares are a second or two apart, not the length of a
-- round (Node and Python take a second or more each; they are compared with
-- the ceiling only, and run apart from the rest).
local GROUPS = {
  { "http_lua54", "http_luajit", "http_core", "http_ceiling", "http_lua_curl",
    "https_lua54", "https_ceiling", "https_fresh", "http_lua54_apart" },
  { "http_node", "http_python" },
  { "many_lua54", "load_many", "many_no_gc", "many_large", "cli_large", "cli_no_gc", "load_large", "many_nowait",
    "many_one_wave", "cli_one", "many_core", "many_stalls", "many_incremental" },
}
do
  local by_name, grouped = {}, 0
  for _, c in ipairs(CONTENDERS) do by_name[c.name] = c end
  for _, group in ipairs(GROUPS) do
    for i, name in ipairs(group) do
      group[i] = by_name[name] or error("no contender " .. name, 0)
      by_name[name] = nil
      grouped = grouped + 1
    end
  end
  if grouped ~= #CONTENDERS then error("a contender is in no group, or in two", 0) end
end

-- runs[name][round] = { rate =, seconds =, creates =, connects =, cpu_seconds =, server_seconds = }
local runs = {}

local function throughput_rounds()
  for _, c in ipairs(CONTENDERS) do runs[c.name] = {} end
  for round = 1, ROUNDS do
    for _, group in ipairs(GROUPS) do
      -- Rotate the order, so that no contender always runs first or last.
      for i = 0, #group - 1 do
        local c = group[(i + round - 1) % #group + 1]
        local srv = server(c.server)
        local cpu_before = server_cpu(srv)
        local r = run((c.apart and pinned_apart or pinned)(c.command(srv, c)))
        r.server_seconds = server_cpu(srv) - cpu_before
        r.rate = r.creates / r.seconds
        runs[c.name][round] = r
        progress("round %d/%d  %-14s %8.0f creates/s", round, ROUNDS, c.name, r.rate)
      end
    end
  end
end

-- The median over rounds of f(run of a, run of b): ratios are taken within
-- a round, where the two ran side by side.
-- `set` holds the runs by contender and round (default: the creates).
local function per_round(a, b, f, set)
  set = set or runs
  local values = {}
  for round = 1, #set[a] do values[round] = f(set[a][round], set[b] and set[b][round]) end
  return median(values), values
end

local function rate(name)
  return per_round(name, nil, function(r) return r.rate end)
end

local function ratio(a, b)
  return per_round(a, b, function(x, y) return x.rate / y.rate end)
end

-- Memory ----------------------------------------------------------------------

local memory = {}

local function memory_runs()
  local srv = server("lean")
  for round = 1, MEMORY_ROUNDS do
    local r = run(pinned(driver("lua5.4", srv, srv.http_url, MEMORY_LAST, 0, " --rss-after " .. MEMORY_FIRST)))
    memory[round] = r.rss_kib_last - r.rss_kib_first
    progress("memory %d/%d  RSS %d KiB after %d creates, %d KiB after %d", round, MEMORY_ROUNDS,
      r.rss_kib_first, MEMORY_FIRST, r.rss_kib_last, MEMORY_LAST)
  end
end

-- require time ---------------------------------------------------------------

local require_time = { cjson = {}, cerca = {} }

local function require_runs()
  for i = 1, REQUIRE_REPS do
    -- Alternate which module goes first.
    local order = i % 2 == 1 and { "cjson", "cerca" } or { "cerca", "cjson" }
    for _, name in ipairs(order) do
      local r = run(pinned("lua5.4 bench/require_time.lua " .. name))
      table.insert(require_time[name], r.seconds)
    end
  end
  progress("require: %d fresh processes each for cjson and cerca", REQUIRE_REPS)
end

-- Instructions per create (callgrind) -----------------------------------------

local instructions = { cerca = {}, core = {}, ceiling = {}, decode = {}, luajit = {}, lua_curl = {} }

-- Total instructions (Ir) of `command` under callgrind.
local function callgrind_ir(command)
  local out = os.tmpname()
  run("valgrind --tool=callgrind --callgrind-out-file=" .. shell_quote(out) .. " " .. command)
  local text = read_file(out) or ""
  os.remove(out)
  local ir = tonumber(text:match("\nsummary: (%d+)") or text:match("\ntotals: (%d+)"))
  if not ir then error("no callgrind summary for: " .. command, 0) end
  return ir
end

-- The sequential clients the per-create counts (callgrind, strace) compare,
-- each a function of its count of creates. Every run makes the same
-- untimed creates first, so that the difference of two runs is a create in
-- the steady state: one-time costs (the connection, the random generator's
-- set-up, the first use of each code path) cancel out.
local function counted_clients(srv)
  local w = CALLGRIND_WARMUP
  return {
    cerca = function(count) return driver("lua5.4", srv, srv.http_url, count, w) end,
    luajit = function(count) return driver("luajit", srv, srv.http_url, count, w) end,
    core = function(count) return driver("lua5.4", srv, srv.http_url, count, w, " --core-only") end,
    ceiling = function(count) return ceiling(srv, srv.http_url, count, w) end,
    decode = function(count) return driver("lua5.4", srv, srv.http_url, count, w, " --decode-only") end,
    lua_curl = function(count)
      return peer("lua5.1", "bench/creates_lua_curl.lua")(srv, { creates = count, warmup = w })
    end,
  }
end

local function callgrind_runs()
  local n = CALLGRIND_CREATES
  local commands = counted_clients(server("lean"))
  for round = 1, CALLGRIND_ROUNDS do
    for _, name in ipairs { "cerca", "core", "ceiling", "decode", "luajit", "lua_curl" } do
      local with = callgrind_ir(commands[name](n))
      local without = callgrind_ir(commands[name](0))
      instructions[name][round] = (with - without) / n
      progress("callgrind %d/%d  %-8s %.0f instructions per create", round, CALLGRIND_ROUNDS, name,
        instructions[name][round])
    end
  end
end

-- First-level data cache misses per create (cachegrind) -----------------------

-- The time a client's memory traffic takes, which instructions do not show:
-- its reads and writes that miss the first-level data cache, in
-- cachegrind's simulation of this machine's caches. One round: the counts
-- move by a few per cent from run to run (where the heap and the stacks
-- fall), not with the machine's load.
local CACHE_CLIENTS = { "cerca", "luajit", "core", "ceiling", "lua_curl" }
local d1_misses = {}

-- D1 misses (reads and writes) of `command` under cachegrind.
local function cachegrind_d1(command)
  local out = os.tmpname()
  run("valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=" .. shell_quote(out) .. " " .. command)
  local text = read_file(out) or ""
  os.remove(out)
  local names, counts = text:match("\nevents: ([^\n]+)"), text:match("\nsummary: ([^\n]+)")
  if not (names and counts) then error("no cachegrind summary for: " .. command, 0) end
  local of, k = {}, 0
  for count in counts:gmatch("%d+") do
    k = k + 1
    of[k] = tonumber(count)
  end
  local misses, found = 0, 0
  k = 0
  for name in names:gmatch("%S+") do
    k = k + 1
    if name == "D1mr" or name == "D1mw" then
      misses, found = misses + of[k], found + 1
    end
  end
  if found ~= 2 then error("no D1 misses in the cachegrind summary for: " .. command, 0) end
  return misses
end

local function cachegrind_runs()
  local n = CALLGRIND_CREATES
  local commands = counted_clients(server("lean"))
  for _, name in ipairs(CACHE_CLIENTS) do
    d1_misses[name] = (cachegrind_d1(commands[name](n)) - cachegrind_d1(commands[name](0))) / n
    progress("cachegrind  %-8s %.0f first-level data cache misses per create", name, d1_misses[name])
  end
end

-- Checks (not timed) -----------------------------------------------------------

local checks = {}

local function check(ok, text)
  checks[#checks + 1] = (ok and "ok: " or "SUSPICIOUS: ") .. text
end

-- System calls per create (strace) ---------------------------------------------

-- The kernel's share of a create, which callgrind does not see: one system
-- call costs about a microsecond on a virtual machine with page-table
-- isolation, so each one more than the ceiling makes shows in rows 1d to 1k.
local SYSCALL_CLIENTS = { "cerca", "luajit", "core", "ceiling", "lua_curl" }
local syscalls = {}

-- System calls of `command` (and its children), by name.
local function strace_calls(command)
  local out = os.tmpname()
  -- On the client's CPU, which the server shares (BENCH_CPU=same): the
  -- server answers only once the client waits, as in the timed runs, so
  -- the count of polls does not depend on who was quicker.
  run(pinned("strace -f -c -o " .. shell_quote(out) .. " " .. command))
  local text = read_file(out) or ""
  os.remove(out)
  local by_name = {}
  for calls, name in text:gmatch("\n%s*[%d.]+%s+[%d.]+%s+%d*%s+(%d+)%s+%d*%s*([%w_]+)") do
    if name ~= "total" then by_name[name] = tonumber(calls) end
  end
  if not next(by_name) then error("no strace summary for: " .. command, 0) end
  return by_name
end

local function syscall_runs()
  local n = CALLGRIND_CREATES
  local commands = counted_clients(server("lean"))
  for _, name in ipairs(SYSCALL_CLIENTS) do
    local with, without = strace_calls(commands[name](n)), strace_calls(commands[name](0))
    local per, total = {}, 0
    for call, count in pairs(with) do
      local d = (count - (without[call] or 0)) / n
      if d >= 0.05 then per[call] = d end
      total = total + d
    end
    syscalls[name] = { total = total, by_name = per }
    progress("strace  %-8s %.2f system calls per create", name, total)
  end
  -- cerca asks the kernel for nothing the plain C loop does not.
  for _, name in ipairs { "cerca", "luajit", "core" } do
    check(syscalls[name].total <= syscalls.ceiling.total + 0.1, format("system calls per create: %s %.2f, "
      .. "the ceiling %.2f (strace -c, %d creates minus 0)", name, syscalls[name].total, syscalls.ceiling.total, n))
  end
end

-- What the server received from each peer of row 1: the body cerca sends,
-- cerca's Authorization, Content-Type, Accept and User-Agent, a distinct
-- UUIDv4 Idempotency-Key on each, no Expect header; the connections and the
-- headers the peer's library adds are shown.
local UUID4 = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local SENT = { host = true, ["content-length"] = true, authorization = true, ["content-type"] = true,
  accept = true, ["user-agent"] = true, ["idempotency-key"] = true }

local function peer_checks(srv, cerca_requests)
  local n, cerca_same = 20, 0
  for _, rq in ipairs(cerca_requests) do
    if rq.body == PEER_BODY and rq.headers["user-agent"] == PEER_AGENT then cerca_same = cerca_same + 1 end
  end
  check(#cerca_requests > 0 and cerca_same == #cerca_requests, format("the body and user agent the peers are given"
    .. " are cerca's: %d of the %d requests of cerca (Lua 5.4, HTTP) above carried them", cerca_same,
    #cerca_requests))
  for _, name in ipairs { "http_lua_curl", "http_node", "http_python" } do
    local c
    for _, contender in ipairs(CONTENDERS) do
      if contender.name == name then c = contender end
    end
    srv:reset()
    run(pinned(c.command(srv, { creates = n, warmup = 0 })))
    local requests = srv:requests()
    local connections, keys, same, distinct, extra, conns = {}, {}, 0, 0, {}, 0
    for _, rq in ipairs(requests) do
      local h = rq.headers
      if not connections[rq.connection] then conns = conns + 1 end
      connections[rq.connection] = true
      local key = h["idempotency-key"]
      if type(key) == "string" and key:match(UUID4) and not keys[key] then distinct = distinct + 1 end
      if key then keys[key] = true end
      if rq.body == PEER_BODY and h.authorization == "Bearer " .. srv.api_key and not h.expect
          and h["content-type"] == "application/json" and h.accept == "application/json"
          and h["user-agent"] == PEER_AGENT then
        same = same + 1
      end
      for header in pairs(h) do
        if not SENT[header] and not extra[header] then
          extra[header] = true
          extra[#extra + 1] = header
        end
      end
    end
    table.sort(extra)
    check(#requests == n and same == n and distinct == n,
      format("%s, %d creates: %d requests, %d with cerca's body, headers and user agent and no Expect, %d distinct"
        .. " UUIDv4 Idempotency-Keys; %d connection(s) (from the first create); headers its library adds: %s",
        c.what, n, #requests, same, distinct, conns, #extra > 0 and table.concat(extra, ", ") or "none"))
  end
end

-- What the server received from cerca: one connection per client, no
-- Expect header, a distinct Idempotency-Key per create; and no create
-- stalled the way a Nagle / delayed-ACK interplay would (~40 ms).
local function recording_checks()
  local srv = server("recording")
  local n, cerca_requests = 200, nil
  for _, case in ipairs {
    { lua = "lua5.4", name = "Lua 5.4", port = "http", url = srv.http_url, extra = "" },
    { lua = "lua5.4", name = "Lua 5.4", port = "https", url = srv.https_ip_url, extra = ca(srv) },
    { lua = "luajit", name = "LuaJIT", port = "http", url = srv.http_url, extra = "" },
  } do
    srv:reset()
    local r = run(pinned(driver(case.lua, srv, case.url, n, 0, " --latencies" .. case.extra)))
    local requests = srv:requests()
    cerca_requests = cerca_requests or requests
    local connections, keys, expect, distinct = {}, {}, 0, 0
    for _, rq in ipairs(requests) do
      connections[rq.connection] = true
      if rq.headers.expect then expect = expect + 1 end
      local key = rq.headers["idempotency-key"]
      if key and not keys[key] then distinct = distinct + 1 end
      if key then keys[key] = true end
    end
    local conns = 0
    for _ in pairs(connections) do conns = conns + 1 end
    local label = format("cerca (%s) over %s, %d creates", case.name, case.port:upper(), n)
    check(#requests == n and conns == 1 and expect == 0 and distinct == n and r.max_ms < 40,
      format("%s: %d requests on %d connection(s), %d with an Expect header, %d distinct Idempotency-Keys;"
        .. " latency median %.2f ms, p99 %.2f ms, max %.2f ms (a Nagle / delayed-ACK stall shows as ~40 ms)",
        label, #requests, conns, expect, distinct, r.p50_ms, r.p99_ms, r.max_ms))
  end
  peer_checks(srv, cerca_requests)
end

-- Delivery verification -----------------------------------------------------------

local delivery = require "bench.delivery"
local nginx_app = require "spec.nginx.app"

local NODE, PYTHON = "/usr/bin/node", "/usr/bin/python3"
local VERIFY_DIR = OUT_DIR .. "/verify"
local EXAMPLE = "examples/openresty/nginx.conf"
local STATIC = "/static-204"

-- The first line a command prints (its version), for the labels.
local function first_line(command)
  local p = io.popen(command .. " 2>&1")
  local line = p:read("*l") or "?"
  p:close()
  return line
end

local versions = {}
local function find_versions()
  versions.node = first_line(NODE .. " --version")
  versions.python = first_line(PYTHON .. " --version"):match("Python (%S+)") or "?"
  versions.standardwebhooks = (read_file("bench/verify-node/node_modules/standardwebhooks/package.json") or "")
    :match('"version"%s*:%s*"([^"]+)"') or "?"
  versions.lua54 = first_line("lua5.4 -v"):match("^(Lua %S+)") or "?"
  versions.luajit = first_line("luajit -v"):match("^(LuaJIT %S+)") or "?"
  versions.nginx = first_line(shell_quote(nginx_app.binary) .. " -v"):match("nginx/(%S+)") or "?"
  versions.wrk = first_line("wrk --version"):match("^wrk (%S+)") or "?"
end

local function verifier_args(d, count, warmup)
  return format(" --body %s --secret %s --id %s --timestamp %s --signature %s --type %s --count %d --warmup %d",
    shell_quote(d.body_file), shell_quote(d.secret), shell_quote(d.id), shell_quote(d.timestamp),
    shell_quote(d.signature), shell_quote(d.type), count, warmup)
end

-- Each verifier: one process per round, timed inside, checking `count`
-- deliveries after `warmup` untimed ones (bench/README.md says what each
-- does per verify).
local VERIFIERS = {
  { name = "c",
    what = function() return "C loop over OpenSSL HMAC-SHA256, no JSON decode (`bench/verify_ceiling.c`)" end,
    command = function(d, n, w)
      return format("%s -w %d %s %s %s %s %s %d", VERIFY_CEILING, w, shell_quote(d.body_file),
        shell_quote(d.secret), shell_quote(d.id), shell_quote(d.timestamp), shell_quote(d.signature), n)
    end },
  { name = "node", what = function()
      return format("Node %s, hand-written: `node:crypto` createHmac + timingSafeEqual + JSON.parse", versions.node)
    end,
    command = function(d, n, w) return NODE .. " bench/verify-node/hand.js" .. verifier_args(d, n, w) end },
  { name = "python", what = function()
      return format("Python %s, hand-written: `hmac.digest` + `hmac.compare_digest` + `json.loads`", versions.python)
    end,
    command = function(d, n, w) return PYTHON .. " bench/verify_python.py" .. verifier_args(d, n, w) end },
  { name = "standardwebhooks", what = function()
      return format("npm `standardwebhooks` %s (Node %s): `new Webhook(secret).verify(body, headers)`",
        versions.standardwebhooks, versions.node)
    end,
    command = function(d, n, w) return NODE .. " bench/verify-node/standardwebhooks.js" .. verifier_args(d, n, w) end },
  { name = "lua54", what = function() return format("`cerca.webhooks.verify`, %s", versions.lua54) end,
    command = function(d, n, w) return "lua5.4 bench/verify.lua" .. verifier_args(d, n, w) end },
  { name = "luajit", what = function() return format("`cerca.webhooks.verify`, %s", versions.luajit) end,
    command = function(d, n, w) return "luajit bench/verify.lua" .. verifier_args(d, n, w) end },
}

-- verify_runs[name][round] = { rate =, seconds =, verifies =, cpu_seconds = }
local verify_runs = {}

local function verify_rounds()
  for _, v in ipairs(VERIFIERS) do verify_runs[v.name] = {} end
  for round = 1, VERIFY_ROUNDS do
    -- One delivery per round, the same for every verifier; signed anew
    -- each round so that no round comes near the 300 s tolerance.
    local d = delivery.make(VERIFY_DIR)
    for i = 0, #VERIFIERS - 1 do
      local v = VERIFIERS[(i + round - 1) % #VERIFIERS + 1]
      local r = run(pinned(v.command(d, VERIFIES, VERIFY_WARMUP)))
      if r.verifies ~= VERIFIES then error(v.name .. " reported " .. tostring(r.verifies) .. " verifies", 0) end
      r.rate = r.verifies / r.seconds
      verify_runs[v.name][round] = r
      progress("round %d/%d  %-16s %9.0f verifies/s", round, VERIFY_ROUNDS, v.name, r.rate)
    end
  end
  check(true, format("every verifier, in each of its %d processes, refused the delivery with one byte changed"
    .. " and decoded the event (type %q) before timing", VERIFY_ROUNDS, delivery.TYPE))
end

-- The example's receiver: examples/openresty/nginx.conf as the nginx specs
-- start it (spec/nginx/app.lua), with one worker instead of `auto` and a
-- static location beside /deliveries.
local function receiver_conf(port)
  local text = assert(read_file(EXAMPLE))
  local n1, n2, n3
  text, n1 = text:gsub("\nworker_processes auto;", "\nworker_processes 1;")
  text, n2 = text:gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:" .. port .. ";")
  text, n3 = text:gsub("\n( *)location = /ping {",
    "\n%1location = " .. STATIC .. " {\n%1    return 204;\n%1}\n\n%1location = /ping {")
  if n1 ~= 1 or n2 ~= 1 or n3 ~= 1 then
    error(EXAMPLE .. " no longer holds `worker_processes auto;`, `listen 127.0.0.1:8080;` and"
      .. " `location = /ping {` once each", 0)
  end
  return nginx_app.for_binary(text)
end

local function receiver(secret)
  progress("starting the example's receiver (%s, 1 worker)", EXAMPLE)
  local setup, main = {}, nil
  if not nginx_app.lua_built_in() then
    -- Debian's loadable Lua module: the shipped loader includes the example.
    setup[1] = "install -m 644 examples/openresty/debian.conf @PREFIX@/conf/debian.conf"
    main = "debian.conf"
  end
  local a = nginx_app.start {
    conf = receiver_conf, setup = setup, main = main,
    -- Only the secret: no CERCA_* of the calling shell reaches nginx.
    env = { CERCA_WEBHOOK_SECRET = secret, CERCA_API_KEY = false, CERCA_BASE_URL = false,
      CERCA_CA_FILE = false, CERCA_LOG = false, CERCA_BOOT_FLEET = false, CERCA_BOOT_URL = false },
  }
  started.receiver = a
  pin_workers(a)
  if #a.workers ~= 1 then error(format("the receiver runs %d workers, not 1", #a.workers), 0) end
  return a
end

local function delivery_headers(d)
  return { ["webhook-id"] = d.id, ["webhook-timestamp"] = d.timestamp, ["webhook-signature"] = d.signature }
end

-- What wrk counts: the answers by status, summed over its threads at the
-- end; with WRK_SIGNED, also the signed deliveries it loaded, those it
-- took, and the requests it wanted beyond them.
local WRK_COUNT = [[
local threads = {}
function setup(thread) threads[#threads + 1] = thread end
answered_204, answered_other, first_other = 0, 0, 0
loaded, taken, beyond = 0, 0, 0
function response(status)
  if status == 204 then
    answered_204 = answered_204 + 1
  else
    answered_other = answered_other + 1
    if first_other == 0 then first_other = status end
  end
end
function done(summary)
  local ok, other, first, l, t, b = 0, 0, 0, 0, 0, 0
  for _, th in ipairs(threads) do
    ok, other = ok + th:get("answered_204"), other + th:get("answered_other")
    if first == 0 then first = th:get("first_other") end
    l, t, b = l + th:get("loaded"), t + th:get("taken"), b + th:get("beyond")
  end
  local e = summary.errors
  io.write(string.format("RESULT requests=%d seconds=%.6f answered_204=%d answered_other=%d first_other=%d"
    .. " errors=%d loaded=%d taken=%d beyond=%d\n", summary.requests, summary.duration / 1e6, ok, other, first,
    e.connect + e.read + e.write + e.timeout, l, t, b))
end
]]

-- A distinct delivery per request, for one wrk thread: SIGNED holds a line
-- "id signature" per delivery, signed before the run; request() gives the
-- next one, its two headers put right after the request line of
-- wrk.format's request (made once), so that each request costs one
-- concatenation. Right after, because LuaJIT interns every string and
-- hashes a long one from a sample of its bytes (the LuaJIT branch of
-- OpenResty, which Debian's wrk links, hashes the first 128 in full):
-- requests that differed only further on would all collide, each new one
-- a walk along all the others, and wrk, not nginx, would set the pace.
-- When the deliveries run out, the thread stops and what it still sends
-- carries no valid signature: the run fails, and no delivery goes twice.
local WRK_SIGNED = [[
local ids, signatures = {}, {}
local head, middle, tail, none
function init()
  for line in io.lines(SIGNED) do
    loaded = loaded + 1
    ids[loaded], signatures[loaded] = line:match("^(%S+) (%S+)$")
  end
  local request_line, rest = wrk.format():match("^(.-\r\n)(.*)$")
  head, middle, tail = request_line .. "webhook-id: ", "\r\nwebhook-signature: ", "\r\n" .. rest
  none = head .. "none" .. middle .. "none" .. tail
end
function request()
  local n = taken + 1
  if n > loaded then
    beyond = beyond + 1
    if beyond == 1 then wrk.thread:stop() end
    return none
  end
  taken = n
  return head .. ids[n] .. middle .. signatures[n] .. tail
end
]]

-- The requests per second /deliveries could possibly see, well above what
-- one worker verifies: a run signs this many deliveries for each second of
-- its length, and for one second more.
local NGINX_RATE_BOUND = 100000

-- Message ids of one width, so that every request of row 6 has the same
-- length: the `n`th of wrk run number `number`.
local function message_id(number, n)
  return format("msg_%04d_%09d", number, n)
end

-- Signs `count` deliveries of the body at the current time, with the ids
-- message_id(number, 1 .. count), and writes "id signature" lines for
-- WRK_SIGNED. Returns the first delivery (body, secret, timestamp) and the
-- file.
local function sign_deliveries(number, count)
  local d = delivery.make(VERIFY_DIR, nil, message_id(number, 1))
  local path = VERIFY_DIR .. "/wrk-signed.txt"
  local f = assert(io.open(path, "wb"))
  local sign, lines = require("cerca").webhooks.sign, {}
  for n = 1, count do
    local id = message_id(number, n)
    lines[#lines + 1] = id .. " " .. assert(sign(d.body, d.secret, id, d.timestamp)) .. "\n"
    if #lines == 4096 or n == count then
      f:write(table.concat(lines))
      lines = {}
    end
  end
  f:close()
  return d, path
end

-- The wrk script: POST, JSON, the delivery's three headers; with `signed`
-- (the file of sign_deliveries), a distinct id and signature per request.
local function wrk_script(d, signed)
  local path = VERIFY_DIR .. "/wrk-delivery.lua"
  local headers = delivery_headers(d)
  if signed then headers["webhook-id"], headers["webhook-signature"] = nil, nil end
  local lines = { "-- Written by bench/run.lua for one run.", 'wrk.method = "POST"',
    "wrk.body = " .. format("%q", d.body), 'wrk.headers["Content-Type"] = "application/json"' }
  for name, value in pairs(headers) do
    lines[#lines + 1] = format("wrk.headers[%q] = %q", name, value)
  end
  if signed then lines[#lines + 1] = format("local SIGNED = %q", signed) end
  local f = assert(io.open(path, "w"))
  f:write(table.concat(lines, "\n"), "\n", WRK_COUNT, signed and WRK_SIGNED or "")
  f:close()
  return path
end

local nginx_runs = { deliveries = {}, static = {} }
local nginx_failures = {}
local PATHS = { deliveries = "/deliveries", static = STATIC }
local wrk_runs = 0

-- One load-generator run against `location`: to /deliveries a distinct
-- delivery per request, signed just before; to /static-204 one delivery,
-- signed just before, in every request. A run where any answer is not 204,
-- a socket failed, or wrk wanted more deliveries than were signed is
-- recorded as a failure, not as a figure.
local function wrk_run(a, location, seconds)
  wrk_runs = wrk_runs + 1
  local script, signed
  if location == "deliveries" then
    signed = math.ceil((seconds + 1) * NGINX_RATE_BOUND)
    script = wrk_script(sign_deliveries(wrk_runs, signed))
  else
    script = wrk_script(delivery.make(VERIFY_DIR, nil, message_id(wrk_runs, 0)))
  end
  local command = format("wrk -t1 -c%d -d%gs --timeout 2s -s %s %s", NGINX_CONNECTIONS, seconds,
    shell_quote(script), shell_quote(a.url .. PATHS[location]))
  local cpu_before = server_cpu(a)
  local r = run(pinned_apart(command))
  r.server_seconds = server_cpu(a) - cpu_before
  r.rate = r.requests / r.seconds
  local why
  if signed and r.beyond > 0 then
    why = format("%s: wrk wanted %d request(s) beyond the %d deliveries signed for the run (%d/s for %g s + 1 s);"
      .. " none was sent twice, raise NGINX_RATE_BOUND in bench/run.lua", PATHS[location], r.beyond, signed,
      NGINX_RATE_BOUND, seconds)
  elseif signed and r.loaded ~= signed then
    why = format("%s: wrk loaded %d of the %d signed deliveries", PATHS[location], r.loaded, signed)
  elseif r.requests == 0 or r.answered_204 ~= r.requests or r.answered_other ~= 0 or r.errors ~= 0 then
    why = format("%s: %d answers, %d of them 204, %d other (first: %d), %d socket errors", PATHS[location],
      r.requests, r.answered_204, r.answered_other, r.first_other, r.errors)
  end
  if why then
    nginx_failures[#nginx_failures + 1] = why
    progress("FAILED: %s", why)
    r.failed = true
  end
  return r
end

local function nginx_rounds()
  local first = delivery.make(VERIFY_DIR)
  local a = receiver(first.secret)
  -- Before timing: the receiver verifies (a changed byte is refused), its
  -- replay guard refuses a delivery that already passed, and both locations
  -- answer 204 to the delivery.
  local tampered = first.body:gsub('"thread%.completed"', '"thread.completes"')
  local good = a:request("POST", "/deliveries", first.body, 5, delivery_headers(first))
  local again = a:request("POST", "/deliveries", first.body, 5, delivery_headers(first))
  local bad = a:request("POST", "/deliveries", tampered, 5, delivery_headers(first))
  local static = a:request("POST", STATIC, first.body, 5, delivery_headers(first))
  local function shown(res) return format("%d %q", res.status, (res.body:gsub("%s+$", ""))) end
  check(good.status == 204 and again.status == 409 and again.body == "replayed\n" and bad.status == 401
    and bad.body == "invalid_signature\n" and static.status == 204,
    format("the receiver (curl, before timing): the signed delivery -> %d, the same again -> %s, the same with"
      .. " one byte changed -> %s, %s -> %d", good.status, shown(again), shown(bad), STATIC, static.status))
  -- Untimed: the worker's LuaJIT compiles its traces, the connections open.
  for _, location in ipairs { "deliveries", "static" } do wrk_run(a, location, 1) end
  for round = 1, VERIFY_ROUNDS do
    local order = round % 2 == 1 and { "deliveries", "static" } or { "static", "deliveries" }
    for _, location in ipairs(order) do
      local r = wrk_run(a, location, NGINX_SECONDS)
      nginx_runs[location][round] = r
      progress("round %d/%d  nginx %-12s %8.0f answers/s%s", round, VERIFY_ROUNDS, PATHS[location], r.rate,
        r.failed and " (FAILED)" or "")
    end
  end
  local requests = 0
  for _, list in pairs(nginx_runs) do
    for _, r in ipairs(list) do requests = requests + r.requests end
  end
  check(#nginx_failures == 0, #nginx_failures == 0
    and format("nginx: all %d timed answers were 204, with no socket error", requests)
    or ("nginx: runs that failed: " .. table.concat(nginx_failures, "; ")))
  a:stop()
  started.receiver = nil
end

local function verification()
  os.execute("mkdir -p " .. VERIFY_DIR)
  find_versions()
  verify_rounds()
  nginx_rounds()
end

-- The table ---------------------------------------------------------------------

-- Each format shows a value with its unit, or bare (for the range of the
-- runs). Ratios are truncated, not rounded, so that a ratio shown as 0.80
-- is at least 0.80 and its PASS / MISS never contradicts what is printed.
local function fmt_rate(v, bare) return format(bare and "%.0f" or "%.0f creates/s", v) end
local function fmt_ratio(v) return format("%.2f", math.floor(v * 100) / 100) end
local function fmt_kib(v, bare) return format(bare and "%.0f" or "%.0f KiB", v) end
local function fmt_ms(v, bare) return format(bare and "%.2f" or "%.2f ms", v) end
local function fmt_times(v) return format("%.1fx", v) end
local function fmt_count(v) return format("%.0f", v) end
local function fmt_calls(v) return format("%.2f", v) end

local function passes(value, target)
  if target.min then return value >= target.min end
  return value < target.below
end

local function scaled(list, k)
  local out = {}
  for i, v in ipairs(list) do out[i] = v * k end
  return out
end

local function of(list) return median(list), list end

-- " (lowest to highest)" of the runs behind a median.
local function range(values, show)
  if not values or #values < 2 then return "" end
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do
    lo, hi = math.min(lo, v), math.max(hi, v)
  end
  return format(" (%s to %s)", show(lo, true), show(hi, true))
end

local function fmt_seconds(v, bare) return format(bare and "%.3f" or "%.3f s", v) end
local many_target = { min = MANY_TARGET, text = format(">= %.2f", MANY_TARGET) }

-- A peer of row 1: its creates per second, and the median of its per-round
-- ratios to the ceiling.
local function peer_row(id, label, name)
  return { id, label, function() return rate(name) end, fmt_rate,
    measured = function()
      local v, vs = rate(name)
      local r, rs = ratio(name, "http_ceiling")
      return format("%s%s; %s%s of the ceiling", fmt_rate(v), range(vs, fmt_rate), fmt_ratio(r), range(rs, fmt_ratio))
    end }
end

-- The instructions per create one layer adds over another: their
-- difference within each callgrind round.
local function layer_diffs(upper, lower)
  local d = {}
  for round, v in ipairs(instructions[upper]) do d[round] = v - instructions[lower][round] end
  return d
end

-- The instructions per create one layer adds (a row of 4h, 4i), and its
-- share of cerca's total.
local function layer_row(id, label, upper, lower)
  return { id, label, function() return of(layer_diffs(upper, lower)) end, fmt_count,
    measured = function()
      local d = layer_diffs(upper, lower)
      return format("%s%s (%.0f%% of 4e)", fmt_count(median(d)), range(d, fmt_count),
        median(d) / median(instructions.cerca) * 100)
    end }
end

-- The instructions per create of `a` / those of `b`, per callgrind round:
-- the median and the rounds' values (1j and 1k's steady counterpart, 4n).
local function instruction_ratio(a, b)
  local r = {}
  for round, v in ipairs(instructions[a]) do r[round] = v / instructions[b][round] end
  return median(r), r
end

local CONTENDER = {}
for _, c in ipairs(CONTENDERS) do CONTENDER[c.name] = c end

-- What one contender did per create, medians over the rounds: wall time,
-- its own CPU time and the server worker's (us; the server also served the
-- untimed creates), the share of the wall time its own CPU was busy, the
-- connections it opened while timed (-1: not known) and its rate.
local function per_create(name)
  local c = CONTENDER[name]
  local wall, cpu, sys, srv, busy, conns, rates = {}, {}, {}, {}, {}, {}, {}
  for round, r in ipairs(runs[name]) do
    wall[round] = r.seconds / r.creates * 1e6
    cpu[round] = (r.cpu_seconds or 0) / r.creates * 1e6
    sys[round] = (r.sys_seconds or 0) / r.creates * 1e6
    srv[round] = r.server_seconds / (r.creates + c.warmup) * 1e6
    busy[round] = (r.cpu_seconds or 0) / r.seconds
    conns[round] = tonumber(r.connects) or -1
    rates[round] = r.rate or 0
  end
  return { wall = median(wall), cpu = median(cpu), sys = median(sys), server = median(srv), busy = median(busy),
    connects = median(conns), rate = median(rates) }
end

-- Why a sequential contender is slower than another, as this run measured
-- it: the client CPU and round trip per create of both.
local function cpu_why(a, a_label, b, b_label)
  local x, y = per_create(a), per_create(b)
  return format("client CPU per create: %s %.1f us, %s %.1f us; round trip %.1f us against %.1f us"
    .. " (server CPU %.1f us against %.1f us)", a_label, x.cpu, b_label, y.cpu, x.wall, y.wall, x.server, y.server)
end

-- A batch's ideal time / its actual time, per round (rows 3b, 3d, 3f).
local function ideal_ratio(name, ideal)
  return per_round(name, nil, function(r) return ideal / r.seconds end)
end

-- What the collector does to a batch, from the `--stalls` rounds: the
-- longest stretch it spent away from the network (Lua's work between two
-- polls, the collector's included) and Lua's heap before and after it;
-- the stretches over 2 ms; the interval (between two polls, or one poll,
-- its wait included) in which the heap fell most, where the largest
-- collection seen ran; then the batch under the incremental collector.
-- A round's figures are read together: those of the middle round by each
-- measure (the lower middle one for an even number of rounds).
local function stalls_why(name)
  local function middle(field)
    local rounds = {}
    for i, r in ipairs(runs[name]) do rounds[i] = r end
    table.sort(rounds, function(a, b) return a[field] < b[field] end)
    return rounds[math.floor((#rounds + 1) / 2)]
  end
  local long, fall = middle("longest_stall_ms"), middle("fall_ms")
  local over = per_round(name, nil, function(r) return r.stalls_over_2ms_ms end)
  return format("recording the stretches it spends away from the network, the same batch's longest was %.1f ms"
    .. " (the middle round), in which Lua's heap went from %.1f to %.1f MiB%s; its stretches over 2 ms add up to"
    .. " %.1f ms; the largest collection it saw (the heap falling from %.1f to %.1f MiB) ran %s (while the heap"
    .. " only grows, and a batch keeps every result, the generational collector the lua5.4 interpreter starts"
    .. " makes full, stop-the-world collections: doc/performance.md); under the incremental collector the batch"
    .. " reaches %s (3l)", long.longest_stall_ms, long.stall_heap_from_kib / 1024, long.stall_heap_to_kib / 1024,
    long.stall_heap_to_kib < long.stall_heap_from_kib and " (a collection ran in it)" or "", over,
    fall.fall_from_kib / 1024, fall.fall_to_kib / 1024, fall.fall_in_poll == 1
      and format("inside a poll that took %.1f ms, its wait for answers included", fall.fall_ms)
      or format("between two polls, in a stretch of %.1f ms", fall.fall_ms),
    fmt_ratio(ideal_ratio("many_incremental", LARGE_IDEAL)))
end

-- What a load generator keeping `in_flight` creates in flight reaches on
-- the batch server: its rate / the ideal rate (rows 3h, 3i).
local function load_ratio(load, in_flight)
  return per_round(load, nil, function(r) return r.rate * MANY_DELAY / in_flight end)
end

-- Why a batch falls short of the ideal: what the load generator reached on
-- the same server, and how busy the batch's own client was (and how much
-- of that in the kernel: system calls, and loopback TCP, whose receiving
-- side the sender's CPU runs).
local function batch_why(name, load, in_flight, load_row)
  local b = per_create(name)
  return format("wrk, doing next to no client work, reaches %s of the ideal on the same server (%s); this"
    .. " client's CPU was busy %.0f%% of the batch (%.1f us per create, %.1f us of it in the kernel), the server's"
    .. " worker %.1f us per create",
    fmt_ratio(load_ratio(load, in_flight)), load_row, b.busy * 100, b.cpu, b.sys, b.server)
end

-- Where a large batch's time beyond the ideal goes: its first wave (the
-- same work as one wave alone, connections opened) and the waves after it,
-- on kept-alive connections. Medians of the rounds, in ms.
local function waves_why(name, one_wave, creates, in_flight)
  local first = per_round(one_wave, nil, function(r) return r.seconds end) * 1000
  local all = per_round(name, nil, function(r) return r.seconds end) * 1000
  local later = math.ceil(creates / in_flight) - 1
  local w = per_create(one_wave)
  return format("one wave alone (%d creates, %d in flight, a new connection each) takes %.1f ms against the"
    .. " ideal %.0f ms, at %.1f us of client CPU per create (%.1f us in the kernel); the %d waves after it then"
    .. " take %.2f ms each", in_flight, in_flight, first, MANY_DELAY * 1000, w.cpu, w.sys, later,
    (all - first) / later)
end

-- What the command takes beyond the library on the same batch (3e - 3c):
-- the part any run of it takes (one fleet: start-up, a connection, one
-- create and exit, less the create's 20 ms), and the rest, per create.
-- Medians of the rounds.
local function command_why(command, library, one, ideal, target)
  local whole = per_round(command, nil, function(r) return r.seconds end) * 1000
  local lib = per_round(library, nil, function(r) return r.seconds end) * 1000
  local alone = per_round(one, nil, function(r) return r.seconds end) * 1000
  local creates = CONTENDER[command].creates
  local fixed, beyond = alone - MANY_DELAY * 1000, whole - lib
  local rest = beyond - fixed
  local budget = ideal / target * 1000
  return format("the command takes %.0f ms more than the library (3e - 3c); with one fleet it takes %.1f ms, %.1f"
    .. " ms beyond its create's %.0f ms (starting, one connection, exiting), %s (the library's client"
    .. " spent %.1f us of CPU per create)", beyond, alone, fixed, MANY_DELAY * 1000, rest > 0
    and format("so the other %.0f ms are %.1f us per create of its own", rest, rest / creates * 1000)
    or "which covers all of it", per_create(library).cpu)
    .. format("; at the target the whole command may take %.0f ms, %s, and starting, one connection and exiting"
    .. " take %.1f ms", budget, budget > lib and format("%.0f ms beyond the library's batch", budget - lib)
    or "less than the library's batch alone", fixed)
end

-- Each row: id, label, its figure (a function of the measurements returning
-- the median and the values it is the median of), how to show it, and its
-- target, if any.
local ROWS = {
  { "1a", "Sequential creates/s, HTTP, cerca under Lua 5.4", function() return rate("http_lua54") end, fmt_rate },
  { "1b", "Sequential creates/s, HTTP, cerca under LuaJIT", function() return rate("http_luajit") end, fmt_rate },
  { "1c", "Sequential creates/s, HTTP, C ceiling (bench/ceiling.c)",
    function() return rate("http_ceiling") end, fmt_rate },
  { "1d", "cerca (Lua 5.4) / ceiling, HTTP", function() return ratio("http_lua54", "http_ceiling") end,
    fmt_ratio, { min = 0.90, text = ">= 0.90" },
    why = function()
      return format("%s; per create, the Lua layer runs %s instructions (4h) and the C core %s more than the"
        .. " ceiling (4i)", cpu_why("http_lua54", "cerca", "http_ceiling", "the ceiling"),
        fmt_count(median(layer_diffs("cerca", "core"))), fmt_count(median(layer_diffs("core", "ceiling"))))
    end },
  { "1e", "cerca (LuaJIT) / ceiling, HTTP", function() return ratio("http_luajit", "http_ceiling") end, fmt_ratio },
  { "1f", "C core alone (Lua 5.4, no Lua layer) / ceiling, HTTP",
    function() return ratio("http_core", "http_ceiling") end, fmt_ratio, { min = 0.95, text = ">= 0.95" },
    why = function()
      return format("%s; per create, the core runs %s instructions more than the ceiling (4i), %s of them the JSON"
        .. " decode (4j), makes %s system calls against the ceiling's %s (4k), and misses the first-level data"
        .. " cache %s times against the ceiling's %s (4o)",
        cpu_why("http_core", "the core", "http_ceiling", "the ceiling"),
        fmt_count(median(layer_diffs("core", "ceiling"))), fmt_count(median(instructions.decode)),
        fmt_calls(syscalls.core.total), fmt_calls(syscalls.ceiling.total), fmt_count(d1_misses.core),
        fmt_count(d1_misses.ceiling))
    end },
  peer_row("1g", "Sequential creates/s, HTTP, Lua 5.1 + lua-curl + cjson, hand-written loop", "http_lua_curl"),
  peer_row("1h", "Sequential creates/s, HTTP, Node `fetch` loop", "http_node"),
  peer_row("1i", "Sequential creates/s, HTTP, Python `requests` Session loop", "http_python"),
  { "1j", "cerca (Lua 5.4) / hand-written lua-curl loop, HTTP (1a / 1g)",
    function() return ratio("http_lua54", "http_lua_curl") end, fmt_ratio, { min = 0.90, text = ">= 0.90" },
    why = function()
      return format("%s; per create, cerca runs %s instructions (4e), the lua-curl loop %s (4m): %s in"
        .. " instructions (4n); and misses the first-level data cache %s times, the lua-curl loop %s (4o)",
        cpu_why("http_lua54", "cerca", "http_lua_curl", "the lua-curl loop"),
        fmt_count(median(instructions.cerca)), fmt_count(median(instructions.lua_curl)),
        fmt_ratio(instruction_ratio("lua_curl", "cerca")), fmt_count(d1_misses.cerca), fmt_count(d1_misses.lua_curl))
    end },
  { "1k", "cerca (LuaJIT) / hand-written lua-curl loop, HTTP (1b / 1g)",
    function() return ratio("http_luajit", "http_lua_curl") end, fmt_ratio, { min = 1.0, text = ">= 1.00" },
    why = function()
      return format("%s; per create, cerca runs %s instructions (4l), the lua-curl loop %s (4m): %s in"
        .. " instructions (4n); and misses the first-level data cache %s times, the lua-curl loop %s (4o)",
        cpu_why("http_luajit", "cerca", "http_lua_curl", "the lua-curl loop"),
        fmt_count(median(instructions.luajit)), fmt_count(median(instructions.lua_curl)),
        fmt_ratio(instruction_ratio("lua_curl", "luajit")), fmt_count(d1_misses.luajit), fmt_count(d1_misses.lua_curl))
    end },
  { "2a", "Sequential creates/s, HTTPS, cerca (Lua 5.4), reused connection",
    function() return rate("https_lua54") end, fmt_rate },
  { "2b", "Sequential creates/s, HTTPS, C ceiling, reused connection",
    function() return rate("https_ceiling") end, fmt_rate },
  { "2c", "Sequential creates/s, HTTPS, C ceiling, new connection per create",
    function() return rate("https_fresh") end, fmt_rate },
  { "2d", "HTTPS: cerca reusing / new connection per create",
    function() return ratio("https_lua54", "https_fresh") end, fmt_ratio, { min = 5, text = ">= 5" } },
  { "2e", "cerca (Lua 5.4): HTTPS with reuse / HTTP", function() return ratio("https_lua54", "http_lua54") end,
    fmt_ratio, { min = 0.8, text = ">= 0.80" },
    why = function()
      return format("TLS costs the C ceiling as much: HTTPS / HTTP %s (2f); %s",
        fmt_ratio(ratio("https_ceiling", "http_ceiling")),
        cpu_why("https_lua54", "cerca over HTTPS", "http_lua54", "over HTTP"))
    end },
  -- What TLS costs on this server and libcurl with no Lua at all: the bound
  -- of 2e for a client as fast as the ceiling.
  { "2f", "C ceiling: HTTPS with reuse / HTTP (2b / 1c)", function() return ratio("https_ceiling", "http_ceiling") end,
    fmt_ratio },
  { "3a", "create_many: 1000 creates, 50 in flight, server delay 20 ms: seconds",
    function() return per_round("many_lua54", nil, function(r) return r.seconds end) end, fmt_seconds },
  { "3b", "create_many: ideal (ceil(1000/50) x 20 ms = 0.4 s) / actual",
    function() return ideal_ratio("many_lua54", MANY_IDEAL) end,
    fmt_ratio, many_target,
    why = function() return batch_why("many_lua54", "load_many", MANY_CONCURRENCY, "3h") end },
  { "3c", format("create_many: %d creates, %d in flight, server delay 20 ms: seconds", LARGE_CREATES,
      LARGE_CONCURRENCY),
    function() return per_round("many_large", nil, function(r) return r.seconds end) end, fmt_seconds },
  { "3d", format("create_many: ideal (ceil(%d/%d) x 20 ms = %g s) / actual", LARGE_CREATES, LARGE_CONCURRENCY,
      LARGE_IDEAL),
    function() return ideal_ratio("many_large", LARGE_IDEAL) end,
    fmt_ratio, many_target,
    why = function()
      return format("the C core alone, driving the same batch with no Lua layer, reaches %s at %.1f us of client"
        .. " CPU per create (3j), and cerca %.1f us; with Lua's garbage collector stopped during the batch, cerca"
        .. " reaches %s at %.1f us (3k): the collector's work is that much of the gap; %s; %s; against a server that"
        .. " answers at once, so that it never waits, the same batch costs its client %.1f us per create: the"
        .. " rest comes with the waits (a CPU gone idle that wakes for each group of answers); one create at a"
        .. " time (1a's loop) costs its client %.1f us with client and server on one CPU, %.1f us with them on"
        .. " two as here; %s",
        fmt_ratio(ideal_ratio("many_core", LARGE_IDEAL)), per_create("many_core").cpu, per_create("many_large").cpu,
        fmt_ratio(ideal_ratio("many_no_gc", LARGE_IDEAL)), per_create("many_no_gc").cpu, stalls_why("many_stalls"),
        batch_why("many_large", "load_large", LARGE_CONCURRENCY, "3i"), per_create("many_nowait").cpu,
        per_create("http_lua54").cpu, per_create("http_lua54_apart").cpu,
        waves_why("many_large", "many_one_wave", LARGE_CREATES, LARGE_CONCURRENCY))
    end },
  { "3e", format("`cerca webhooks create --fleets-file` (%d fleets, --concurrency %d), the whole command: seconds",
      LARGE_CREATES, LARGE_CONCURRENCY),
    function() return per_round("cli_large", nil, function(r) return r.seconds end) end, fmt_seconds },
  { "3f", format("command line: ideal (%g s) / actual", LARGE_IDEAL),
    function() return ideal_ratio("cli_large", LARGE_IDEAL) end,
    fmt_ratio, many_target,
    why = function()
      return format("the library reaches %s on the same work (3d); %s; %s; %s",
        fmt_ratio(ideal_ratio("many_large", LARGE_IDEAL)),
        command_why("cli_large", "many_large", "cli_one", LARGE_IDEAL, many_target.min),
        format("with Lua's garbage collector stopped from its start, the command reaches %s (3m)",
          fmt_ratio(ideal_ratio("cli_no_gc", LARGE_IDEAL))),
        batch_why("cli_large", "load_large", LARGE_CONCURRENCY, "3i"))
    end },
  { "3g", "command line / library on the same work (3f / 3d)",
    function() return per_round("cli_large", "many_large", function(x, y) return y.seconds / x.seconds end) end,
    fmt_ratio },
  { "3h", format("wrk, %d connections, same server: rate / ideal rate (%d / 20 ms = %d/s)", MANY_CONCURRENCY,
      MANY_CONCURRENCY, MANY_CONCURRENCY / MANY_DELAY),
    function() return load_ratio("load_many", MANY_CONCURRENCY) end, fmt_ratio },
  { "3i", format("wrk, %d connections, same server: rate / ideal rate (%d / 20 ms = %d/s)", LARGE_CONCURRENCY,
      LARGE_CONCURRENCY, LARGE_CONCURRENCY / MANY_DELAY),
    function() return load_ratio("load_large", LARGE_CONCURRENCY) end, fmt_ratio },
  { "3j", format("the C core alone (no Lua layer) on 3d's batch: ideal (%g s) / actual", LARGE_IDEAL),
    function() return ideal_ratio("many_core", LARGE_IDEAL) end, fmt_ratio },
  { "3k", format("create_many with Lua's garbage collector stopped during 3d's batch: ideal (%g s) / actual",
      LARGE_IDEAL),
    function() return ideal_ratio("many_no_gc", LARGE_IDEAL) end, fmt_ratio },
  { "3l", format("create_many under Lua 5.4's incremental collector (`collectgarbage(\"incremental\")`) on 3d's"
      .. " batch: ideal (%g s) / actual", LARGE_IDEAL),
    function() return ideal_ratio("many_incremental", LARGE_IDEAL) end, fmt_ratio },
  { "3m", format("the command's batch (3e) with Lua's garbage collector stopped from its start: ideal (%g s) /"
      .. " actual", LARGE_IDEAL),
    function() return ideal_ratio("cli_no_gc", LARGE_IDEAL) end, fmt_ratio },
  { "4a", format("RSS growth from %d to %d sequential creates (Lua 5.4)", MEMORY_FIRST, MEMORY_LAST),
    function() return of(memory) end, fmt_kib, { below = 1024, text = "< 1024 KiB" } },
  { "4b", 'require "cerca" (fresh process, CPU time)',
    function() return of(scaled(require_time.cerca, 1000)) end, fmt_ms },
  { "4c", 'require "cjson" (fresh process, CPU time)',
    function() return of(scaled(require_time.cjson, 1000)) end, fmt_ms },
  { "4d", 'require "cerca" / require "cjson" (ratio of the medians)',
    function() return median(require_time.cerca) / median(require_time.cjson) end, fmt_times },
  { "4e", "Instructions per create, cerca (Lua 5.4), callgrind",
    function() return of(instructions.cerca) end, fmt_count },
  { "4f", "Instructions per create, C core alone (Lua 5.4, no Lua layer), callgrind",
    function() return of(instructions.core) end, fmt_count },
  { "4g", "Instructions per create, C ceiling, callgrind",
    function() return of(instructions.ceiling) end, fmt_count },
  layer_row("4h", "Lua layer: cerca over the C core alone (4e - 4f)", "cerca", "core"),
  layer_row("4i", "C core over the ceiling (4f - 4g)", "core", "ceiling"),
  { "4j", "Of 4i: decoding the answer into a Lua table (the C core's JSON decode alone, callgrind)",
    function() return of(instructions.decode) end, fmt_count,
    measured = function()
      local d, over = instructions.decode, {}
      for round, v in ipairs(instructions.core) do over[round] = v - instructions.ceiling[round] end
      return format("%s%s (%.0f%% of 4i)", fmt_count(median(d)), range(d, fmt_count), median(d) / median(over) * 100)
    end },
  { "4k", "System calls per create (strace -c): cerca (Lua 5.4); then LuaJIT, C core alone, ceiling, lua-curl loop",
    function() return syscalls.cerca.total, { syscalls.cerca.total } end, fmt_calls,
    measured = function()
      local others = {}
      for i = 2, #SYSCALL_CLIENTS do others[#others + 1] = fmt_calls(syscalls[SYSCALL_CLIENTS[i]].total) end
      local names = {}
      for call, count in pairs(syscalls.cerca.by_name) do
        names[#names + 1] = format("%s %s", call, fmt_calls(count))
      end
      table.sort(names)
      return format("%s (%s); %s", fmt_calls(syscalls.cerca.total), table.concat(names, ", "),
        table.concat(others, " / "))
    end },
  { "4l", "Instructions per create, cerca (LuaJIT), callgrind",
    function() return of(instructions.luajit) end, fmt_count },
  { "4m", "Instructions per create, Lua 5.1 + lua-curl + cjson, hand-written loop (1g), callgrind",
    function() return of(instructions.lua_curl) end, fmt_count },
  { "4n", "The lua-curl loop's instructions per create / cerca's, under Lua 5.4 (4m / 4e); under LuaJIT (4m / 4l)",
    function() return instruction_ratio("lua_curl", "cerca") end, fmt_ratio,
    measured = function()
      local r, rs = instruction_ratio("lua_curl", "cerca")
      local j, js = instruction_ratio("lua_curl", "luajit")
      return format("%s%s; %s%s", fmt_ratio(r), range(rs, fmt_ratio), fmt_ratio(j), range(js, fmt_ratio))
    end },
  { "4o", "First-level data cache misses per create (cachegrind): cerca (Lua 5.4); then LuaJIT, C core alone,"
      .. " ceiling, lua-curl loop",
    function() return d1_misses.cerca, { d1_misses.cerca } end, fmt_count,
    measured = function()
      local others = {}
      for i = 2, #CACHE_CLIENTS do others[#others + 1] = fmt_count(d1_misses[CACHE_CLIENTS[i]]) end
      return format("%s; %s", fmt_count(d1_misses.cerca), table.concat(others, " / "))
    end },
}

-- A row's `measured`, when present, gives the text of its Measured cell
-- (its value still decides the result); a row whose `failed` returns true
-- shows no figure and FAIL.
local function row_result(row)
  local value_of, show, target = row[3], row[4], row[5]
  if row.pending then return "(pending)", "PENDING" end
  if row.failed and row.failed() then return "(failed: see the checks)", "FAIL" end
  local value, values = value_of()
  local measured = row.measured and row.measured() or (show(value) .. range(values, show))
  local result = target and target.text and (target.min or target.below)
    and (passes(value, target) and "PASS" or "MISS") or "-"
  return measured, result, show(value)
end

local function table_lines(rows)
  local lines = {
    "| # | Figure | Measured (range of the runs) | Target | Result |",
    "|---|--------|---------:|--------|--------|",
  }
  for _, row in ipairs(rows) do
    local measured, result = row_result(row)
    lines[#lines + 1] = format("| %s | %s | %s | %s | %s |", row[1], row[2], measured,
      row[5] and row[5].text or "-", result)
  end
  return lines
end

-- Each missed target with what this run measured about it (the row's
-- `why`): the figures that say where the time went, not a guess.
local function miss_lines(rows)
  local lines = {}
  for _, row in ipairs(rows) do
    local _, result, shown = row_result(row)
    if result == "MISS" then
      lines[#lines + 1] = format("- %s (%s, target %s): %s.", row[1], shown, row[5].text,
        row.why and row.why() or "this run measured nothing more about it than the row itself")
    end
  end
  if #lines == 0 then return {} end
  table.insert(lines, 1, "Misses, and what this run measured about each:")
  table.insert(lines, 2, "")
  return lines
end

-- What each throughput contender did per create: wall time, its own CPU
-- time, the server's CPU time, and the connections it opened while timed.
local function detail_lines()
  local lines = { "Per create (medians over the rounds):", "" }
  for _, c in ipairs(CONTENDERS) do
    local p = per_create(c.name)
    if c.load then
      lines[#lines + 1] = format("- %s: %.0f creates/s, %.1f us server CPU per create", c.what, p.rate, p.server)
    else
      lines[#lines + 1] = format("- %s: %.1f us round trip, %.1f us client CPU, %.1f us server CPU;"
        .. " %s new connection(s) in %d timed creates", c.what, p.wall, p.cpu, p.server,
        p.connects < 0 and "unknown" or format("%.0f", p.connects), c.creates)
    end
  end
  return lines
end

-- Delivery verification: the verifiers' table, then the rows with targets.
local function verify_rate(name)
  return per_round(name, nil, function(r) return r.rate end, verify_runs)
end

local function verify_ratio(a, b)
  return per_round(a, b, function(x, y) return x.rate / y.rate end, verify_runs)
end

local function nginx_rate(location)
  return per_round(location, nil, function(r) return r.rate end, nginx_runs)
end

local function fmt_verifies(v, bare) return format(bare and "%.0f" or "%.0f verifies/s", v) end
local function fmt_per_second(v, bare) return format(bare and "%.0f" or "%.0f/s", v) end

local VERIFY_ROWS = {
  { "5g", "cerca (Lua 5.4) / hand-written Node, verifies per second (5e / 5b)",
    function() return verify_ratio("lua54", "node") end, fmt_ratio, { min = 1.0, text = ">= 1.00" } },
  { "5h", "cerca (LuaJIT) / hand-written Node, verifies per second (5f / 5b)",
    function() return verify_ratio("luajit", "node") end, fmt_ratio, { min = 1.3, text = ">= 1.30" } },
  { "6a", "nginx, the example's receiver, 1 worker: deliveries verified per second on `/deliveries`,"
      .. " vs `return 204;` on the same nginx",
    function() return nginx_rate("deliveries") end, fmt_per_second,
    { min = NGINX_TARGET, text = format(">= %d/s on /deliveries", NGINX_TARGET) },
    measured = function()
      local d, ds = nginx_rate("deliveries")
      local st, sts = nginx_rate("static")
      return format("%s%s vs %s%s", fmt_per_second(d), range(ds, fmt_per_second), fmt_per_second(st),
        range(sts, fmt_per_second))
    end,
    failed = function() return #nginx_failures > 0 end },
  { "6b", "nginx: `/deliveries` / `return 204;`",
    function()
      return per_round("deliveries", "static", function(x, y) return x.rate / y.rate end, nginx_runs)
    end, fmt_ratio, failed = function() return #nginx_failures > 0 end },
}

local function verify_lines()
  local lines = {
    format("Delivery verification: one %d-byte JSON event (%s), the same secret, id, timestamp and signature"
      .. " for every verifier; each verifier checks the signature and decodes the JSON, but 5a, which does"
      .. " not decode.", delivery.SIZE, "`bench/delivery.lua`"),
    "",
    "| # | Verifier | Verifies/s (range of the runs) | vs OpenSSL C loop (range of the rounds) |",
    "|---|----------|---------:|---------:|",
  }
  for i, v in ipairs(VERIFIERS) do
    local value, values = verify_rate(v.name)
    local vs = "1.00"
    if v.name ~= "c" then
      local r, rs = verify_ratio(v.name, "c")
      vs = fmt_ratio(r) .. range(rs, fmt_ratio)
    end
    lines[#lines + 1] = format("| 5%s | %s | %s | %s |", string.char(96 + i), v.what(),
      fmt_verifies(value) .. range(values, fmt_verifies), vs)
  end
  lines[#lines + 1] = ""
  for _, l in ipairs(table_lines(VERIFY_ROWS)) do lines[#lines + 1] = l end
  return lines
end

-- Per verify and per request: wall time and CPU time.
local function verify_detail_lines()
  local lines = { "Per verify and per request (medians over the rounds):", "" }
  for _, v in ipairs(VERIFIERS) do
    local wall, cpu = {}, {}
    for round, r in ipairs(verify_runs[v.name]) do
      wall[round] = r.seconds / r.verifies * 1e6
      cpu[round] = r.cpu_seconds / r.verifies * 1e6
    end
    lines[#lines + 1] = format("- %s: %.2f us per verify, %.2f us CPU", v.what(), median(wall), median(cpu))
  end
  for _, location in ipairs { "deliveries", "static" } do
    local worker, busy, answers = {}, {}, 0
    for round, r in ipairs(nginx_runs[location]) do
      worker[round] = r.server_seconds / r.requests * 1e6
      busy[round] = r.server_seconds / r.seconds * 100
      answers = answers + r.requests
    end
    lines[#lines + 1] = format("- nginx `%s`: %.1f us of worker CPU per request; the worker busy %.0f%% of"
      .. " each run (below 100%%: it waited for the load generator, or other work had its CPU); %d timed answers",
      PATHS[location], median(worker), median(busy), answers)
  end
  return lines
end

local function setup_lines()
  local placement = {
    same = "client and server worker pinned to CPU " .. tostring(CLIENT_CPU),
    split = format("client on CPU %s, server worker on CPU %s", tostring(CLIENT_CPU), tostring(SERVER_CPU)),
    none = "placed by the scheduler",
  }
  local lines = {
    format("Setup: %s (BENCH_CPU=%s); %d CPUs; load average at the start %s, at the end %s.",
      placement[CPU_MODE], CPU_MODE, NPROC, LOAD_AT_START,
      (read_file("/proc/loadavg") or "?"):match("^(%S+)")),
  }
  if ONLY ~= "verify" then
    lines[#lines + 1] = format("Creates: reference server in lean mode, 1 nginx worker, no delay. Throughput:"
      .. " %d rounds; in each, the contenders in three groups (the HTTP and HTTPS clients of rows 1 and 2;"
      .. " Node and Python; the batches), one after the other in an order that rotates from round to round;"
      .. " %d timed creates per run after %d untimed"
      .. " (new-connection runs: %d after %d).", ROUNDS, CREATES, WARMUP, FRESH_CREATES, FRESH_WARMUP)
    lines[#lines + 1] = format("Peers of row 1: Lua 5.1 with Debian's lua-curl, %s and %s, in the same rounds."
      .. " Batches: server delay %g ms, %d creates with %d in flight and %d with %d (BENCH_MANY), in the same"
      .. " rounds, the client on the other CPU.", PEER_NODE, PEER_PYTHON, MANY_DELAY * 1000, MANY_CREATES,
      MANY_CONCURRENCY, LARGE_CREATES, LARGE_CONCURRENCY)
    lines[#lines + 1] = format("Memory: %d runs. require: %d fresh processes per module. callgrind: %d rounds"
      .. " of %d creates minus 0, each run after %d untimed creates.", MEMORY_ROUNDS, REQUIRE_REPS, CALLGRIND_ROUNDS,
      CALLGRIND_CREATES, CALLGRIND_WARMUP)
  end
  if ONLY ~= "creates" then
    lines[#lines + 1] = format("Verification: %d rounds, verifiers interleaved in rotating order, each a fresh"
      .. " process on the client's CPU: %d untimed then %d timed verifies (BENCH_VERIFIES); the delivery"
      .. " signed anew each round. Node from %s, Python %s.", VERIFY_ROUNDS, VERIFY_WARMUP, VERIFIES, NODE, PYTHON)
    lines[#lines + 1] = format("nginx: %s (%s) with `%s` as the nginx specs start it, `worker_processes 1`"
      .. " and `location = %s { return 204; }` added; its worker on CPU %s; wrk %s, 1 thread, on CPU %s,"
      .. " %d keep-alive connections (BENCH_NGINX_CONNECTIONS), %g s per run (BENCH_NGINX_SECONDS), the two"
      .. " locations alternating for %d rounds after 1 s of each untimed; each request to /deliveries a distinct"
      .. " delivery (its own webhook-id; up to %d/s of the run's length + 1 s signed before the run), to %s the"
      .. " same request throughout a run (one delivery signed before it, its id of the same length).",
      nginx_app.binary, versions.nginx, EXAMPLE, STATIC,
      tostring(SERVER_CPU or "any"), versions.wrk,
      SERVER_CPU and NPROC >= 2 and tostring((SERVER_CPU + 1) % NPROC) or "any",
      NGINX_CONNECTIONS, NGINX_SECONDS, VERIFY_ROUNDS, NGINX_RATE_BOUND, STATIC)
  end
  return lines
end

local function connection_checks()
  for _, c in ipairs(CONTENDERS) do
    for round, r in ipairs(runs[c.name]) do
      local n = tonumber(r.connects)
      if c.connections == "any" then
        break
      elseif n == nil then
        check(false, format("%s, round %d: connections not observed", c.what, round))
        break
      elseif (c.connections == "each" and n ~= r.creates) or (c.connections == "none" and n ~= 0) then
        check(false, format("%s, round %d: %d new connection(s) in %d timed creates", c.what, round, n, r.creates))
        break
      end
    end
  end
end

-- Measures everything; returns the text to print.
local function measure()
  local t0 = os.time()
  local verify_seconds
  if ONLY ~= "verify" then
    write_fleets_file()
    peer_versions()
    recording_checks()
    throughput_rounds()
    connection_checks()
    memory_runs()
    require_runs()
    callgrind_runs()
    cachegrind_runs()
    syscall_runs()
  end
  if ONLY ~= "creates" then
    local v0 = os.time()
    verification()
    verify_seconds = os.time() - v0
  end

  local lines = {}
  local function add(list)
    for _, l in ipairs(list) do lines[#lines + 1] = l end
    lines[#lines + 1] = ""
  end
  if ONLY ~= "verify" then
    add(table_lines(ROWS))
    local misses = miss_lines(ROWS)
    if #misses > 0 then add(misses) end
    add(detail_lines())
  end
  if ONLY ~= "creates" then
    add(verify_lines())
    add(verify_detail_lines())
  end
  lines[#lines + 1] = "Checks:"
  lines[#lines + 1] = ""
  for _, c in ipairs(checks) do lines[#lines + 1] = "- " .. c end
  lines[#lines + 1] = ""
  for _, l in ipairs(setup_lines()) do lines[#lines + 1] = l end
  lines[#lines + 1] = format("Run took %d s%s.", os.time() - t0,
    verify_seconds and format(", the verification part %d s", verify_seconds) or "")
  return table.concat(lines, "\n") .. "\n"
end

-- The servers stop before anything is printed: a reader that goes away
-- early (`make bench | head`) must not leave nginx running.
local ok, text = pcall(measure)
stop_servers()
if not ok then
  io.stderr:write("bench: ", tostring(text), "\n")
  os.exit(1)
end
os.execute("mkdir -p " .. OUT_DIR)
local f = assert(io.open(OUT_DIR .. "/results.md", "w"))
f:write("# cerca-lua benchmarks (`make bench`, ", os.date("!%Y-%m-%d %H:%M UTC"), ")\n\n", text)
f:close()
io.write(text)
-- A load-generator run that got an answer other than 204 is a failure.
if #nginx_failures > 0 then os.exit(1) end
