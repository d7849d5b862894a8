-- Create a webhook subscription for a fleet and show it.
--
--   CERCA_API_KEY=sk_... lua5.4 examples/create.lua [FLEET_ID] [URL]
--
-- The secret is printed redacted; a real program stores sub.secret in its
-- secret store right here, because the API never shows it again.
local cerca = require "cerca"

local fleet_id = arg[1] or "fleet_abc123"
local url = arg[2] or "https://example.com/webhook"

local sub, err, res = cerca.webhooks.create(fleet_id, {
  url = url,
  events = { "agent.created", "thread.completed" },
})
if not sub then
  io.stderr:write(cerca.pretty(err), "\n")
  os.exit(1)
end

print(cerca.pretty(sub))
print(("(HTTP %d, request id %s)"):format(res.status, tostring(res.request_id)))
