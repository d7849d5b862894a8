--- Delivery verification with cerca, timed inside the process. Run by
-- bench/run.lua (from the repository root) under lua5.4 or luajit:
--
--   bench/verify.lua --body FILE --secret S --id ID --timestamp TS
--                    --signature SIG --type T --count N [--warmup W]
--
-- The body is read from FILE once. Each verify is one call of the public
-- API, `require("cerca").webhooks.verify(body, headers, secret)`, with the
-- default options (300 s tolerance around os.time()) and the headers as a
-- receiver has them (a table, lower-case names): the signature checked and
-- the body decoded into a table. W untimed verifies first (LuaJIT compiles
-- its traces), then N timed ones. Prints
--
--   RESULT cpu_seconds=T seconds=S verifies=N
--
-- Before the timed loop, a copy of the body with one byte changed must be
-- refused as invalid_signature, and the event must carry type T; any verify
-- that fails aborts the run.
local env = require "bench.env"
local cerca = require "cerca"
local now = require("cerca.core").monotime

local o = env.options(arg)
local count = tonumber(o.count) or error("--count is required", 0)
local warmup = tonumber(o.warmup) or 0

local f = assert(io.open(o.body, "rb"))
local body = f:read("*a")
f:close()

local headers = {
  ["content-type"] = "application/json",
  ["webhook-id"] = o.id,
  ["webhook-timestamp"] = o.timestamp,
  ["webhook-signature"] = o.signature,
}
local secret = o.secret
local verify = cerca.webhooks.verify

local half = math.floor(#body / 2)
-- The middle byte with its lowest bit flipped (LuaJIT has no `~`).
local c = body:byte(half + 1)
local tampered = body:sub(1, half) .. string.char(c % 2 == 0 and c + 1 or c - 1) .. body:sub(half + 2)
local refused, why = verify(tampered, headers, secret)
if refused or why.type ~= "invalid_signature" then
  error("a tampered body was not refused as invalid_signature", 0)
end
local event, err = verify(body, headers, secret)
if not event then error("the delivery does not verify: " .. tostring(err), 0) end
if event.type ~= o.type then error("the decoded event has type " .. tostring(event.type), 0) end

local function loop(n)
  for _ = 1, n do
    if not verify(body, headers, secret) then
      error("a verify failed: " .. tostring(select(2, verify(body, headers, secret))), 0)
    end
  end
end

loop(warmup)
local started, cpu_started = now(), os.clock()
loop(count)
local seconds, cpu = now() - started, os.clock() - cpu_started
env.report { verifies = count, seconds = string.format("%.6f", seconds), cpu_seconds = string.format("%.6f", cpu) }
