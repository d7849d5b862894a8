--- Module paths for the benchmark scripts, as spec/helpers.lua sets them:
-- the library from lua/, the C core built for the running interpreter
-- from build/<abi>/. The scripts run from the repository root.
local is_jit = type(jit) == "table"
local abi = is_jit and "luajit" or "lua5.4"

package.path = "./lua/?.lua;./lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "./build/" .. abi .. "/?.so;" .. package.cpath

local env = { abi = abi }

--- `--name value` pairs (and bare `--flag`s, as true) from the command line.
function env.options(args)
  local o, i = {}, 1
  while i <= #args do
    local name = args[i]:match("^%-%-([%w%-]+)$")
    if not name then error("unexpected argument: " .. args[i], 0) end
    local value = args[i + 1]
    if value == nil or value:match("^%-%-") then
      o[name] = true
      i = i + 1
    else
      o[name] = value
      i = i + 2
    end
  end
  return o
end

-- Clock ticks per second of the /proc CPU times.
local clk_tck
local function ticks_per_second()
  if not clk_tck then
    local p = assert(io.popen("getconf CLK_TCK"))
    clk_tck = tonumber(p:read("*a")) or 100
    p:close()
  end
  return clk_tck
end

--- CPU seconds from /proc/PID/stat (10 ms ticks): user, system. `pid`
-- defaults to this process ("self"); with `children`, the times of its
-- waited-for children instead. 0, 0 for a process that is gone.
function env.cpu_times(pid, children)
  local f = io.open("/proc/" .. (pid or "self") .. "/stat")
  if not f then return 0, 0 end
  local stat = f:read("*a") or ""
  f:close()
  -- utime, stime, cutime, cstime: fields 14 to 17, counted after the ")" that ends the name
  local utime, stime, cutime, cstime = stat:match("%) %S+" .. string.rep(" %S+", 10) .. " (%d+) (%d+) (%d+) (%d+)")
  if children then utime, stime = cutime, cstime end
  local hz = ticks_per_second()
  return (tonumber(utime) or 0) / hz, (tonumber(stime) or 0) / hz
end

--- The one line a benchmark process reports: `RESULT k=v k=v ...`, keys sorted.
function env.report(fields)
  local keys = {}
  for k in pairs(fields) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = { "RESULT" }
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(fields[k]) end
  io.write(table.concat(parts, " "), "\n")
end

return env
