--- Where the Lua side of a create spends its VM instructions: a sampling
-- profile of sequential creates against a running server.
--
--   lua5.4 bench/profile.lua --url URL --key KEY [--count N] [--ca FILE] [--top K]
--
-- A count hook fires every INTERVAL VM instructions and charges the sample
-- to the Lua function running (and to its line). Time spent inside C
-- functions (libcurl, cjson, the C core) executes no VM instruction and so
-- is not charged here: callgrind (see bench/README.md) covers that side.
-- Under LuaJIT, use its own profiler instead: `luajit -jp=fl bench/creates.lua ...`.
local env = require "bench.env"
local cerca = require "cerca"

local o = env.options(arg)
if not (o.url and o.key) then
  io.stderr:write("usage: lua5.4 bench/profile.lua --url URL --key KEY [--count N] [--ca FILE] [--top K]\n")
  os.exit(2)
end
local count = tonumber(o.count) or 2000
local top = tonumber(o.top) or 25
local INTERVAL = 97  -- prime, so the samples do not lock onto a loop's period

local client = assert(cerca.new { api_key = o.key, base_url = o.url, ca_file = o.ca,
  log_level = "off", max_retries = 0 })
local params = { url = "https://example.com/webhook", events = { "agent.created", "thread.completed" } }

-- The connection is opened before sampling starts.
assert(client.webhooks.create("fleet_bench", params))

local by_function, by_line, samples = {}, {}, 0
local getinfo = debug.getinfo
debug.sethook(function()
  local info = getinfo(2, "Sl")
  if not info then return end
  samples = samples + 1
  local fn = info.short_src .. ":" .. info.linedefined
  local line = info.short_src .. ":" .. info.currentline
  by_function[fn] = (by_function[fn] or 0) + 1
  by_line[line] = (by_line[line] or 0) + 1
end, "", INTERVAL)

for _ = 1, count do
  assert(client.webhooks.create("fleet_bench", params))
end
debug.sethook()

local function show(title, counts)
  local rows = {}
  for k, n in pairs(counts) do rows[#rows + 1] = { k, n } end
  table.sort(rows, function(a, b) return a[2] > b[2] end)
  print(title)
  for i = 1, math.min(top, #rows) do
    print(string.format("  %5.1f%%  %7.0f  %s", 100 * rows[i][2] / samples,
      rows[i][2] * INTERVAL / count, rows[i][1]))
  end
end

print(string.format("%d creates, %d samples, about %.0f VM instructions per create",
  count, samples, samples * INTERVAL / count))
print("  share  instr/create  where")
show("by function (file:line where it is defined)", by_function)
show("by line", by_line)
