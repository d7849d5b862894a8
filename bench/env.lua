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
