-- A webhook receiver in plain Lua, as a CGI script: any web server that
-- runs CGI (nginx with fcgiwrap, Apache, lighttpd, busybox httpd) can serve
-- it. It verifies each delivery's Standard Webhooks signature before
-- trusting a byte of it.
--
--   CERCA_WEBHOOK_SECRET=whsec_... (the secret of the subscription)
--
-- Answers 204 to a verified delivery, 401 with the reason otherwise.
-- A CGI script is a process per request: it keeps no replay guard (a
-- verified delivery sent again within the tolerance window passes again).
-- Record each webhook-id where requests share state, or see the nginx
-- receiver (doc/deliveries.md).
local cerca = require "cerca"

local MAX_BODY = 1024 * 1024

local function answer(status, text)
  io.write("Status: ", status, "\r\n")
  if text then io.write("Content-Type: text/plain\r\n\r\n", text, "\n") else io.write("\r\n") end
end

local length = tonumber(os.getenv("CONTENT_LENGTH") or "0") or 0
if length > MAX_BODY then return answer("413 Content Too Large", "too large") end
local body = length > 0 and io.read(length) or ""

-- CGI hands the request headers over as HTTP_* variables.
local headers = {
  ["webhook-id"] = os.getenv("HTTP_WEBHOOK_ID"),
  ["webhook-timestamp"] = os.getenv("HTTP_WEBHOOK_TIMESTAMP"),
  ["webhook-signature"] = os.getenv("HTTP_WEBHOOK_SIGNATURE"),
}

local event, err = cerca.webhooks.verify(body, headers, os.getenv("CERCA_WEBHOOK_SECRET"))
if not event then
  -- The reason is a type name: it tells the sender what failed, never a secret.
  return answer("401 Unauthorized", err.type)
end

-- The delivery is authentic: act on it (here, note it in the server's log).
io.stderr:write("delivery ", headers["webhook-id"], ": ", tostring(event.type), "\n")
answer("204 No Content")
