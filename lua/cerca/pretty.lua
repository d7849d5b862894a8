--- Rendering for people: one line (`tostring`) or an aligned block (`pretty`).
--
-- Secrets are shown as a hint (`whsec_…c123`) unless the caller asks for
-- them with `reveal_secret`; error bodies are never printed (a 2xx body
-- may hold the secret), only their size. The API key is never held by the
-- values rendered here. Every value is passed through `printable`: what a
-- server sent cannot drive the terminal it is printed on.
-- @module cerca.pretty

-- The C core keeps the one list of what a terminal acts on (JSON output
-- escapes the same, see cerca.json).
local core_printable = require("cerca.core").printable
local number_text = require("cerca.core").number_text
local redact = require "cerca.redact"

local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local getmetatable = getmetatable
local rawget = rawget
local format = string.format
local rep = string.rep
local sub = string.sub
local match = string.match
local find = string.find
local concat = table.concat
local sort = table.sort

local _M = {}

local ELLIPSIS = "\226\128\166" -- U+2026

--- `s` safe to print on a terminal: control characters (C0, DEL, C1),
-- bidirectional overrides and bytes that are not UTF-8 are written as
-- `\xNN` or `\u{NNNN}`; everything else is unchanged.
-- @tparam string s
-- @treturn string
function _M.printable(s)
  return core_printable(s)
end

local printable = _M.printable

-- Any value as printable text; a number with all the digits it was sent
-- with (as JSON output writes it), not tostring's 14. `secrets`: the
-- subscription's own, in a list (`cerca.redact.list`). Its other fields
-- hold no form of it (the create removed them), but escaping writes bytes
-- as text (ESC as `\x1b`), which may spell a secret holding such text:
-- what a string prints as is searched again.
local function text(v, secrets)
  if type(v) == "number" then return number_text(v) or tostring(v) end
  if secrets and type(v) == "string" then return redact.printed(v, secrets, true) end
  return printable(tostring(v))
end

-- Keys whose values are never printed whole.
local SECRET_KEYS = { secret = true, api_key = true, _api_key = true, authorization = true }

-- A hint shows, of a secret with at least this many characters after its
-- type prefix (`whsec_`, at most 8 bytes), the prefix and the last 4:
-- never more than a quarter of what is secret. Of a shorter one, nothing.
local MAX_PREFIX, MIN_REST = 8, 16

--- A recognisable hint of a secret: its short `xxx_` prefix and last 4
-- characters; only `…` for a secret with fewer than 16 after the prefix.
function _M.redact(secret)
  if type(secret) ~= "string" then return tostring(secret) end
  local prefix, rest = match(secret, "^(%a+_)(.*)$")
  if not prefix or #prefix > MAX_PREFIX then prefix, rest = "", secret end
  if #rest >= MIN_REST then
    return prefix .. ELLIPSIS .. sub(rest, -4)
  end
  return ELLIPSIS
end

local function events_text(events, secrets)
  if type(events) ~= "table" then return text(events, secrets) end
  if #events == 0 then return "all events" end
  local names = {}
  for i = 1, #events do names[i] = text(events[i], secrets) end
  -- Joined with ", ", names may spell a secret that holds a comma or a space.
  if secrets and secrets.joinable then return redact.printed(concat(names, ", "), secrets, true) end
  return concat(names, ", ")
end

-- The list of a subscription's secret, to search what it prints for.
local function secrets_of(sub_)
  return type(sub_.secret) == "string" and redact.list(sub_.secret) or nil
end

--- One line for a subscription; the secret redacted.
function _M.subscription_line(sub_)
  local secrets = secrets_of(sub_)
  local line = format("cerca.Subscription %s fleet=%s url=%s events=%s enabled=%s secret=%s",
    text(sub_.id, secrets), text(sub_.fleetId, secrets), text(sub_.url, secrets), events_text(sub_.events, secrets),
    text(sub_.enabled), text(_M.redact(sub_.secret)))
  -- Each field is rid of the secret on its own; the line they make could
  -- spell it across two (a secret holding a space or a "="): searched whole.
  return secrets and redact.known(line, secrets, true) or line
end

local COLORS = { title = "\27[1m", key = "\27[36m", secret = "\27[33m", bad = "\27[31m", reset = "\27[0m" }

local function painter(enabled)
  if not enabled then return function(_, s) return s end end
  return function(kind, s) return COLORS[kind] .. s .. COLORS.reset end
end

-- Aligned "key  value" rows under a title.
local function block(title, rows, paint, secrets)
  local keys, width = {}, 0
  for i, row in ipairs(rows) do
    keys[i] = text(row[1], secrets)
    if #keys[i] > width then width = #keys[i] end
  end
  local out = { title }
  for i, row in ipairs(rows) do
    out[#out + 1] = "  " .. paint("key", keys[i]) .. rep(" ", width - #keys[i] + 2) .. row[2]
  end
  return concat(out, "\n")
end

local function sorted_extra_keys(t, known)
  local seen, extra = {}, {}
  for _, k in ipairs(known) do seen[k] = true end
  for k in pairs(t) do
    if not seen[k] then extra[#extra + 1] = k end
  end
  sort(extra, function(a, b) return tostring(a) < tostring(b) end)
  return extra
end

local function value_text(k, v, opts, paint, secrets)
  if SECRET_KEYS[k] and v ~= nil then
    if k == "secret" and opts.reveal_secret then return paint("secret", text(v)) end
    return paint("secret", text(_M.redact(v)))
  end
  if k == "events" then return events_text(v, secrets) end
  if type(v) == "table" then return "(table)" end
  return text(v, secrets)
end

-- `fields`: the subscription's own fields in order (cerca.webhooks.FIELDS,
-- carried by its metatable); other fields follow, sorted.
local function render_subscription(s, fields, opts, paint)
  local rows, known = {}, {}
  local secrets = secrets_of(s)
  for i, f in ipairs(fields) do
    known[i] = f[1]
    rows[i] = { f[1], value_text(f[1], s[f[1]], opts, paint, secrets) }
  end
  for _, k in ipairs(sorted_extra_keys(s, known)) do
    rows[#rows + 1] = { k, value_text(k, s[k], opts, paint, secrets) }
  end
  local out = block(paint("title", "Webhook subscription " .. text(s.id, secrets)), rows, paint, secrets)
  -- The block may spell the secret across a name and its value, or two
  -- rows: searched whole (with the secret shown on request, its own row
  -- is left as it is).
  if secrets and not opts.reveal_secret then out = redact.known(out, secrets, true) end
  if not opts.reveal_secret then
    out = out .. "\n  (the secret is shown once, at create: read sub.secret to store it)"
  end
  return out
end

-- What a repeat needs comes last: whether the call may have created, and
-- the key that gets what it made without a duplicate.
local ERROR_ORDER = { "type", "status", "message", "field", "request_id", "attempts", "retry_after",
  "maybe_created", "idempotency_key" }

local function render_error(e, opts, paint)
  local rows = {}
  for _, k in ipairs(ERROR_ORDER) do
    if k == "request_id" and e.withheld and e[k] ~= nil then
      -- A success's answer whose secret could not be found in it.
      rows[#rows + 1] = { k, "(not shown: in err.request_id)" }
    elseif e[k] ~= nil then
      rows[#rows + 1] = { k, value_text(k, e[k], opts, paint) }
    end
  end
  if e.body ~= nil then
    rows[#rows + 1] = { "body", format("%d bytes (in err.body)", #tostring(e.body)) }
  end
  return block(paint("bad", "cerca error: " .. text(e.type)), rows, paint)
end

-- `private`: fields whose names start with "_" (a client's workings) are
-- left out.
local function render_table(t, opts, paint, private)
  local rows = {}
  for _, k in ipairs(sorted_extra_keys(t, {})) do
    if not (private and type(k) == "string" and find(k, "^_")) then
      rows[#rows + 1] = { k, value_text(k, t[k], opts, paint) }
    end
  end
  return block(paint("title", text(t)), rows, paint)
end

--- Multi-line rendering of a subscription, an error, or any table.
-- @param value what to render
-- @tparam[opt] table opts `color` (ANSI colours, default false),
--   `reveal_secret` (print the whole secret, default false)
-- @treturn string
function _M.pretty(value, opts)
  opts = opts or {}
  local paint = painter(opts.color)
  local mt = getmetatable(value)
  local name = type(mt) == "table" and mt.__name
  if name == "cerca.Subscription" then return render_subscription(value, mt.fields, opts, paint) end
  if name == "cerca.Error" then return render_error(value, opts, paint) end
  -- A list that holds secrets (cerca.Secrets, cerca.HeaderLines) says so.
  if type(mt) == "table" and rawget(mt, "__secrets") then return tostring(value) end
  if type(value) == "table" then return render_table(value, opts, paint, name == "cerca.Client") end
  return text(value)
end

return _M
