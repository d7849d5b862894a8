--- The `cerca` command's batch mode, timed from outside. Run by
-- bench/run.lua (from the repository root) under lua5.4:
--
--   bench/cli_batch.lua --url URL --key KEY --fleets-file FILE --count N --concurrency C [--no-gc]
--
-- Runs, from the checkout (lua/ and build/lua5.4/, as bench/env.lua sets
-- the paths for the benchmark scripts),
--
--   CERCA_API_KEY=KEY CERCA_BASE_URL=URL lua5.4 bin/cerca webhooks create \
--     --fleets-file FILE --url https://example.com/webhook --concurrency C --json > /dev/null
--
-- and prints
--
--   RESULT connects=0 cpu_seconds=T creates=N seconds=S sys_seconds=K
--
-- S is the wall time of the whole command (start-up, reading the fleets,
-- drawing the keys, the batch, writing the results), T its CPU time and K
-- the part of T spent in the kernel (the children's, from /proc, in clock
-- ticks). The command must exit 0 and say
-- that all N were created; anything else aborts the run with its message.
--
-- --no-gc runs the command with Lua's garbage collector stopped from its
-- start (`LUA_INIT_5_4`, which the interpreter runs before the script, after
-- it has chosen the collector's mode): what the collector's work costs the
-- whole command (row 3m).
local env = require "bench.env"
local core = require "cerca.core"

local format = string.format

local o = env.options(arg)
local count = tonumber(o.count) or error("--count is required", 0)
local concurrency = tonumber(o.concurrency) or error("--concurrency is required", 0)

local function q(s) return "'" .. tostring(s):gsub("'", [['\'']]) .. "'" end

local err_file = os.tmpname()
local init = o["no-gc"] and "LUA_INIT_5_4='collectgarbage(\"stop\")'" or ""
local command = format("env -u CERCA_LOG -u CERCA_CA_FILE -u NO_COLOR %s LUA_PATH=%s LUA_CPATH=%s"
  .. " CERCA_API_KEY=%s CERCA_BASE_URL=%s lua5.4 bin/cerca webhooks create --fleets-file %s"
  .. " --url https://example.com/webhook --concurrency %d --json > /dev/null 2> %s < /dev/null",
  init, q("./lua/?.lua;./lua/?/init.lua;;"), q("./build/lua5.4/?.so;;"), q(o.key), q(o.url), q(o["fleets-file"]),
  concurrency, q(err_file))

local user0, sys0 = env.cpu_times("self", true)
local t0 = core.monotime()
local ok = os.execute(command)
local seconds = core.monotime() - t0
local user1, sys1 = env.cpu_times("self", true)

local f = io.open(err_file)
local said = f and f:read("*a") or ""
if f then f:close() end
os.remove(err_file)
if ok ~= true and ok ~= 0 then error("the command failed: " .. said, 0) end
if not said:find(format("cerca: %d created, 0 failed", count), 1, true) then
  error(format("the command did not create all %d: %s", count, said), 0)
end
env.report { connects = 0, cpu_seconds = format("%.6f", user1 - user0 + sys1 - sys0), creates = count,
  seconds = format("%.6f", seconds), sys_seconds = format("%.6f", sys1 - sys0) }
