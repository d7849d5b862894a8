--- Sequential creates written by hand in Lua 5.1 over Debian's lua-curl
-- binding (`require "curl"`) and lua-cjson: no validation, no retries, the
-- body encoded once. A peer of bench/creates.lua, run by bench/run.lua
-- (from the repository root) under lua5.1:
--
--   bench/creates_lua_curl.lua --url URL --key KEY --agent UA --body JSON --count N [--warmup W]
--
-- One easy handle, its options set once; per create only the header list
-- (the Idempotency-Key changes) is set again, then perform, the answer read
-- into a table, its status taken from the status line and the body decoded.
-- --body is what cerca sends: the body encoded here must be the same bytes.
-- Prints
--
--   RESULT connects=C cpu_seconds=T creates=N seconds=S
--
-- S is the wall time of the timed creates, T the process's CPU time over
-- them. The binding has no curl_easy_getinfo: C counts the TCP sockets open
-- at the end of the timed creates that were not open at their start (0 when
-- the connection of the warm-up served them all). Any failed create
-- aborts the run with a message.
local curl = require "curl"
local cjson = require "cjson"
local monotime = require("system.core").monotime

local format, byte, concat = string.format, string.byte, table.concat

local o = {}
do
  local i = 1
  while i <= #arg do
    local name = arg[i]:match("^%-%-([%w%-]+)$")
    if not name or arg[i + 1] == nil then error("unexpected argument: " .. arg[i], 0) end
    o[name] = arg[i + 1]
    i = i + 2
  end
end
local count = tonumber(o.count) or error("--count is required", 0)
local warmup = tonumber(o.warmup) or 0

local BODY = cjson.encode { url = "https://example.com/webhook", events = { "agent.created", "thread.completed" } }
if BODY ~= o.body then
  error(format("cjson encoded %s, cerca sends %s", BODY, tostring(o.body)), 0)
end

-- UUIDv4 keys from the kernel's generator, 16 bytes at a time from a
-- buffered handle.
local urandom = assert(io.open("/dev/urandom", "rb"))
local UUID = "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x"
local function uuid4()
  local b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16 = byte(urandom:read(16), 1, 16)
  return format(UUID, b1, b2, b3, b4, b5, b6, b7 % 16 + 64, b8, b9 % 64 + 128, b10, b11, b12, b13, b14, b15, b16)
end

local chunks, n, status = {}, 0, nil
local c = curl.easy_init()
c:setopt(curl.OPT_URL, o.url .. "/fleets/fleet_bench/webhooks")
c:setopt(curl.OPT_NOSIGNAL, 1)
c:setopt(curl.OPT_TIMEOUT_MS, 60000)
c:setopt(curl.OPT_CONNECTTIMEOUT_MS, 10000)
c:setopt(curl.OPT_USERAGENT, o.agent)
c:setopt(curl.OPT_POSTFIELDS, BODY)
c:setopt(curl.OPT_WRITEFUNCTION, function(s, len)
  n = n + 1
  chunks[n] = s
  return len
end)
c:setopt(curl.OPT_HEADERFUNCTION, function(s, len)
  if status == nil then status = tonumber(s:match("^HTTP/%S+ (%d%d%d)")) end
  return len
end)

local AUTH = "Authorization: Bearer " .. o.key
local function create()
  c:setopt(curl.OPT_HTTPHEADER, { "Idempotency-Key: " .. uuid4(), AUTH, "Content-Type: application/json",
    "Accept: application/json", "Expect:" })
  n, status = 0, nil
  local code, err = c:perform()
  if code ~= 0 or status ~= 201 then
    error(format("create failed: %s (HTTP %s)", tostring(err or code), tostring(status)), 0)
  end
  local sub = cjson.decode(concat(chunks, "", 1, n))
  if type(sub) ~= "table" or type(sub.id) ~= "string" then error("create failed: no subscription in the answer", 0) end
end

-- The TCP sockets this process has open, by inode (not timed).
local pid = assert(io.open("/proc/self/stat")):read("*l"):match("^%d+")
local function sockets()
  local tcp = {}
  for _, path in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
    local f = io.open(path)
    if f then
      for line in f:lines() do
        local inode = line:match("^%s*%d+:" .. ("%s+%S+"):rep(8) .. "%s+(%d+)")
        if inode then tcp[inode] = true end
      end
      f:close()
    end
  end
  local p = assert(io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null"))
  local set = {}
  for inode in p:read("*a"):gmatch("socket:%[(%d+)%]") do
    if tcp[inode] then set[inode] = true end
  end
  p:close()
  return set
end

for _ = 1, warmup do create() end
local before = sockets()
local started, cpu_started = monotime(), os.clock()
for _ = 1, count do create() end
local seconds, cpu = monotime() - started, os.clock() - cpu_started
local connects = 0
for inode in pairs(sockets()) do
  if not before[inode] then connects = connects + 1 end
end
io.write(format("RESULT connects=%d cpu_seconds=%.6f creates=%d seconds=%.6f\n", connects, cpu, count, seconds))
