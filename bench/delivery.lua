--- The delivery every verifier of the verification benchmark checks: one
-- secret, one message id, one timestamp and one 1 KiB JSON body, the same
-- for all. Used by bench/run.lua.
--
--   local delivery = require("bench.delivery").make(dir, timestamp, id)
--   -- delivery.body_file, .body, .secret, .id, .timestamp, .signature, .type
--
-- The body is a realistic event object: a few envelope fields and a `data`
-- object of string fields, 23 strings in all, padded to exactly 1024 bytes
-- by its `summary`. The signature is `cerca.webhooks.sign`'s; the other
-- verifiers checking it (Node, Python, the reference library) is a check of
-- cerca's signing too.
local cerca = require "cerca"

local M = {}

M.SIZE = 1024
M.TYPE = "thread.completed"
-- whsec_ and the base64 of 24 fixed random bytes, as the API issues secrets.
M.SECRET = "whsec_LSn1Cr+hBOzQUY9HfKZDBINQ6s6A5+x/"
M.ID = "msg_2pKkq7Wc3bUJ9xXoRzL1vFhY4Te"

-- Object keys in a fixed order, so that the bytes never depend on a hash
-- table's order.
local function object(pairs_list)
  local parts = {}
  for i = 1, #pairs_list, 2 do
    local v = pairs_list[i + 1]
    parts[#parts + 1] = string.format("%q:%s", pairs_list[i], v:sub(1, 1) == "{" and v or string.format("%q", v))
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function body_with(summary)
  local data = object {
    "id", "thr_8f3kZ2qLwX9mNc4RtYv7Ab",
    "object", "thread",
    "fleetId", "fleet_abc123",
    "agentId", "agent_5TgH8jKq2Wm",
    "status", "completed",
    "title", "Refund request for order 48213",
    "summary", summary,
    "createdAt", "2025-06-02T09:14:03.512Z",
    "updatedAt", "2025-06-02T09:21:47.090Z",
    "completedAt", "2025-06-02T09:21:47.090Z",
    "model", "cerca-large-2025-05",
    "region", "eu-west-1",
    "userId", "user_Q4n8Ls2Vx",
    "userEmail", "marta.lindqvist@example.com",
    "channel", "email",
    "locale", "sv-SE",
    "priority", "normal",
    "outcome", "resolved",
    "tags", "billing,refund,priority-customer",
    "url", "https://app.example.com/threads/thr_8f3kZ2qLwX9mNc4RtYv7Ab",
  }
  return object {
    "type", M.TYPE,
    "id", "evt_7Yb2nKx9QwLm4Zr8Tc1Vd",
    "timestamp", "2025-06-02T09:21:47.112Z",
    "data", data,
  }
end

local FILLER = "The customer asked for a refund of a duplicated charge on order 48213. "
  .. "The agent checked the payment history, confirmed the duplicate, issued the refund "
  .. "and sent the confirmation; the customer thanked the agent and closed the thread. "

--- The body: body_with a summary that brings it to exactly M.SIZE bytes.
function M.body()
  local bare = #body_with("")
  local text = FILLER:rep(math.ceil((M.SIZE - bare) / #FILLER) + 1):sub(1, M.SIZE - bare)
  local body = body_with(text)
  assert(#body == M.SIZE, "the delivery body is not " .. M.SIZE .. " bytes")
  return body
end

--- Writes the body to dir/delivery.json and signs it at `timestamp`
-- (seconds; default now) with the message id `id` (default M.ID).
function M.make(dir, timestamp, id)
  timestamp = tostring(timestamp or os.time())
  id = id or M.ID
  local body = M.body()
  local path = dir .. "/delivery.json"
  local f = assert(io.open(path, "wb"))
  f:write(body)
  f:close()
  local signature = assert(cerca.webhooks.sign(body, M.SECRET, id, timestamp))
  return { body_file = path, body = body, secret = M.SECRET, id = id, timestamp = timestamp,
    signature = signature, type = M.TYPE }
end

return M
