--- A load generator's creates, for the create_many rows: `wrk` keeps
-- `--connections` creates in flight for `--seconds`, each a POST of the
-- body cerca sends with a fresh Idempotency-Key, and this prints what it
-- achieved in the drivers' RESULT form.
--
--   lua5.4 bench/load_creates.lua --url URL --key KEY --body JSON --connections N --seconds S
--
-- Any answer other than 2xx, or any socket error, fails the run.
local env = require "bench.env"

local o = env.options(arg)
local connections = tonumber(o.connections) or error("--connections is required", 0)
local seconds = tonumber(o.seconds) or error("--seconds is required", 0)

local script = os.tmpname()
local f = assert(io.open(script, "w"))
f:write(string.format([[
wrk.method = "POST"
wrk.body = %q
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = %q
local run, n = %q, 0
request = function()
  n = n + 1
  wrk.headers["Idempotency-Key"] = run .. n
  return wrk.format(nil, "/fleets/fleet_load/webhooks")
end
done = function(summary)
  io.write("OTHER_STATUSES ", summary.errors.status, "\n")
end
]], o.body, "Bearer " .. o.key, string.format("load-%d-%d-", os.time(), math.random(1e9))))
f:close()

local pipe = assert(io.popen(string.format("wrk -t1 -c%d -d%gs --timeout 5s -s %s %s 2>&1", connections,
  seconds, script, o.url)))
local out = pipe:read("*a")
pipe:close()
os.remove(script)

local requests, took, unit = out:match("(%d+) requests in ([%d.]+)(%a+)")
local other = tonumber(out:match("OTHER_STATUSES (%d+)"))
if not requests or not other then error("wrk printed no result:\n" .. out, 0) end
took = tonumber(took) * (unit == "ms" and 0.001 or unit == "m" and 60 or 1)
if other > 0 or out:find("Socket errors") then
  error("wrk got answers other than 2xx, or socket errors:\n" .. out, 0)
end
io.write(string.format("RESULT connects=%d creates=%d seconds=%.6f cpu_seconds=0\n", connections, requests, took))
