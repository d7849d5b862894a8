--- `cerca deliveries sign` and `cerca deliveries send`: signed deliveries
-- (Standard Webhooks v1) made here, without the API, to test a receiver.
-- The secret comes from `--secret-file` or `CERCA_WEBHOOK_SECRET`, never
-- from an argument, and is never printed. Each function returns the name
-- of its exit code in `cerca.cli.EXIT`, or nil and an error (a usage error
-- or the library's).
-- @module cerca.cli_deliveries

local cerca = require "cerca"
local cli_args = require "cerca.cli_args"

local type = type
local ipairs = ipairs
local tonumber = tonumber
local format = string.format
local match = string.match
local gsub = string.gsub
local byte = string.byte
local time = os.time
local date = os.date

local usage_error = cli_args.usage_error

local _M = {}

--- Bytes of a receiver's answer shown at most.
_M.EXCERPT_BYTES = 200

-- A fresh message id: "msg_" and 32 random hex digits.
local function message_id()
  local uuid, why = cerca.new_idempotency_key()
  if not uuid then return nil, { type = "internal", message = "no random id: " .. tostring(why) } end
  return "msg_" .. (gsub(uuid, "%-", ""))
end

-- The webhook-signature value, or nil and a usage error that names where
-- the secret came from, never the secret.
local function signature(o, secret, id, timestamp, body)
  local sig, err = cerca.webhooks.sign(body, secret, id, timestamp)
  if sig then return sig end
  if err.type == "invalid_secret" then
    return nil, usage_error(format("the webhook secret in %s is not valid: expected whsec_ followed by the "
      .. "base64 of the key, as the subscription's create printed it",
      o.secret_file and ("--secret-file " .. o.secret_file) or "CERCA_WEBHOOK_SECRET"))
  end
  return nil, err
end

-- `value` quoted for a message, cut when long.
local function quoted(value)
  if #value > 40 then value = value:sub(1, 37) .. "..." end
  return format("%q", value)
end

--- `cerca deliveries sign`: the three webhook-* headers of a body, as
-- `Name: value` lines (for `curl -H @FILE`).
-- @tparam table ui the output streams (`say`, `warn`)
-- @tparam table o the options (`cerca.cli_args.parse_deliveries`)
-- @tparam function env reads an environment variable
function _M.sign(ui, o, env)
  if #o.args > 0 then
    return nil, usage_error("deliveries sign takes no arguments besides its options; give the body with "
      .. "--data JSON, --data @FILE or on standard input")
  end
  local id = o.id
  if id and (#id > 255 or not match(id, "^[\33-\126]+$")) then
    return nil, usage_error("--id must be 1 to 255 printable ASCII characters without spaces, e.g. msg_1")
  end
  local timestamp = o.timestamp
  if timestamp and not match(timestamp, "^%d%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?%d?$") then
    return nil, usage_error("--timestamp takes whole seconds since the epoch, e.g. " .. format("%d", time()))
  end
  local secret, serr = cli_args.webhook_secret(o, env)
  if not secret then return nil, serr end
  local body, berr = cli_args.data(o)
  if not body then
    if berr then return nil, berr end
    if cerca.system.isatty(0) then
      return nil, usage_error("give the body to sign with --data JSON, --data @FILE, or on standard input "
        .. "(a pipe or a file, not a terminal)")
    end
    body, berr = cli_args.stdin()
    if not body then return nil, berr end
  end
  if not id then
    local why
    id, why = message_id()
    if not id then return nil, why end
  end
  timestamp = timestamp or format("%d", time())
  local sig, err = signature(o, secret, id, timestamp, body)
  if not sig then return nil, err end
  ui.say("webhook-id: ", id, "\nwebhook-timestamp: ", timestamp, "\nwebhook-signature: ", sig, "\n")
  return "ok"
end

-- The data object of an event when --data gives none: an id named after
-- the event's resource (`agent.created` -> `{"id":"agent_test"}`).
local function default_data(event)
  return format('{"id":"%s_test"}', match(event, "^[^.]+"))
end

local function known_event(name)
  for _, known in ipairs(cerca.webhooks.EVENTS) do
    if name == known then return true end
  end
  return false
end

-- The event's data as JSON text: --data as given (checked to be a JSON
-- object, and sent byte for byte), else the default; or nil and an error.
local function event_data(o)
  local text, err = cli_args.data(o)
  if not text then
    if err then return nil, err end
    return default_data(o.event)
  end
  local value, why = cerca.decode_json(text)
  if type(value) ~= "table" or not match(text, "^%s*{") then
    return nil, usage_error("--data must be a JSON object, the event's data, e.g. --data '{\"id\":\"agent_1\"}'"
      .. (why and (" (" .. why .. ")") or ""))
  end
  return text
end

-- The answer's body, escaped and cut to EXCERPT_BYTES; the line break it
-- ends with, as most do, is left out. `clean` removes the secret first:
-- cut first, a secret across the cut would no longer be found whole.
local function excerpt(body, clean)
  local total = #body
  body = clean(body)
  local last = #body
  while last > 0 and (byte(body, last) == 10 or byte(body, last) == 13) do last = last - 1 end
  if last <= _M.EXCERPT_BYTES then return cerca.printable(body:sub(1, last)) end
  return format("%s... (%d bytes in all)", cerca.printable(body:sub(1, _M.EXCERPT_BYTES)), total)
end

--- `cerca deliveries send URL --event NAME`: one signed delivery POSTed to
-- a receiver; its status and the start of its answer on stdout. "ok" on a
-- 2xx, "auth" on 401 and 403 (the receiver refused the delivery), "api" on
-- any other status.
-- @tparam table ui the output streams
-- @tparam table o the options
-- @tparam function env reads an environment variable
function _M.send(ui, o, env)
  if #o.args ~= 1 then
    return nil, usage_error("give one URL, the receiver's, e.g. http://127.0.0.1:8080/deliveries")
  end
  local url = o.args[1]
  if not o.event then
    return nil, usage_error("--event is required: the type of the event to send (see 'cerca webhooks events')")
  end
  if not known_event(o.event) then
    local guess = cerca.suggest(o.event, cerca.webhooks.EVENTS)
    return nil, usage_error(format("--event: unknown event %s; %s", quoted(o.event),
      guess and format("did you mean %q?", guess) or "see 'cerca webhooks events' for the 19 names"))
  end
  local timeout
  if o.timeout then
    timeout = tonumber(o.timeout)
    if not timeout then return nil, usage_error("--timeout takes a number of seconds") end
  end
  local data, derr = event_data(o)
  if not data then return nil, derr end
  local secret, serr = cli_args.webhook_secret(o, env)
  if not secret then return nil, serr end

  local id, why = message_id()
  if not id then return nil, why end
  local now = time()
  local timestamp = format("%d", now)
  local body = format('{"type":%s,"timestamp":"%s","data":%s}', cerca.encode_json(o.event),
    date("!%Y-%m-%dT%H:%M:%SZ", now), data)
  local sig, err = signature(o, secret, id, timestamp, body)
  if not sig then return nil, err end
  local res, perr = cerca.post(url, body, {
    headers = { ["Content-Type"] = "application/json", ["webhook-id"] = id, ["webhook-timestamp"] = timestamp,
      ["webhook-signature"] = sig },
    timeout = timeout, ca_file = o.ca_file,
  })
  if not res then return nil, perr end

  -- A receiver may echo the secret (or its key without the prefix): what
  -- it sends is printed without either.
  local function clean(text) return cerca.redact(text, secret, secret:match("^whsec_(.+)$")) end
  local status = res.status
  ui.say(format("HTTP %d from %s (webhook-id %s, %s)\n", status, cerca.printable(url), id, o.event))
  if res.body ~= "" then ui.say(excerpt(res.body, clean), "\n") end
  if status >= 200 and status < 300 then return "ok" end
  if status == 401 or status == 403 then
    ui.warn(format("cerca: the receiver refused the delivery (HTTP %d): does it verify with the secret "
      .. "given here (%s)?\n", status, o.secret_file and "--secret-file" or "CERCA_WEBHOOK_SECRET"))
    return "auth"
  end
  local location = status >= 300 and status < 400 and res.headers.location
  ui.warn(format("cerca: the receiver answered HTTP %d, not a 2xx%s\n", status, location
    and ("; redirects are not followed (it points to " .. cerca.printable(clean(location)) .. ")") or ""))
  return "api"
end

return _M
