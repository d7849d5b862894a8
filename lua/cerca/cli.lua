--- The `cerca` command line (bin/cerca is a two-line wrapper over `main`).
--
--     cerca webhooks create FLEET --url URL [--event NAME]... [--extra KEY=JSON]...
--                                 [--idempotency-key KEY] [--timeout SECONDS] [--json]
--     cerca webhooks create --fleets-file FILE --url URL [--event NAME]...
--                                 [--concurrency N] [--json] [--out FILE]
--     cerca webhooks events
--     cerca --version | cerca help [COMMAND]
--
-- The API key comes from CERCA_API_KEY or --api-key-file, never from an
-- argument (it would land in the shell's history). Errors are one line on
-- stderr; the exit code says what kind (see EXIT).
-- @module cerca.cli

local cerca = require "cerca"
local core = require "cerca.core"

local type = type
local ipairs = ipairs
local tostring = tostring
local tonumber = tonumber
local format = string.format
local rep = string.rep
local match = string.match
local concat = table.concat
local floor = math.floor
local getenv = os.getenv

local _M = {}

--- Exit codes.
_M.EXIT = {
  ok = 0,
  usage = 2,        -- usage or validation error, configuration
  auth = 3,         -- authentication or permission
  api = 4,          -- any other API error
  network = 5,      -- network, TLS or timeout
  partial = 6,      -- a batch finished with some failures
  output = 7,       -- the results could not be written (they went to stderr)
  internal = 1,     -- a bug in cerca
}

local EXIT_FOR_TYPE = {
  invalid_request = "usage", configuration = "usage",
  authentication = "auth", permission_denied = "auth",
  connection = "network", timeout = "network", tls = "network",
}

-- Failures after which the create may have happened on the API's side.
local REPEATABLE_TYPES = { invalid_response = true, connection = true, timeout = true, server = true }

-- The library's names of what was refused, and the flag or argument the
-- user typed for each: errors name what the user can change.
local FLAG_OF = {
  { "^params%.url$", "--url" },
  { "^params%.events%[%d+%]$", "--event" },
  { "^params%.events$", "--event" },
  { "^params%.extra_body%.(.+)$", "--extra %1" },
  { "^params%.extra_body$", "--extra" },
  { "^options%.idempotency_key$", "--idempotency-key" },
  { "^options%.timeout$", "--timeout" },
  { "^timeout$", "--timeout" },
  { "^fleet_id$", "FLEET" },
  { "^base_url$", "--base-url" },
  { "^ca_file$", "--ca-file" },
}

-- `err`'s message with the library's field name at its start replaced by
-- the flag, or nil when it names none of them.
local function flag_message(err)
  local field, message = err.field, err.message
  if type(field) ~= "string" or type(message) ~= "string" then return nil end
  for _, pair in ipairs(FLAG_OF) do
    local flag, n = field:gsub(pair[1], pair[2])
    if n > 0 then
      if message:sub(1, #field) == field then return flag .. message:sub(#field + 1) end
      return flag .. ": " .. message
    end
  end
end

local function exit_code(err)
  return _M.EXIT[EXIT_FOR_TYPE[err.type] or "api"]
end

local HELP = {
  main = [[
cerca - create Cerca webhook subscriptions from a shell

Usage:
  cerca webhooks create FLEET --url URL [options]
  cerca webhooks create --fleets-file FILE --url URL [options]
  cerca webhooks events
  cerca --version
  cerca help [COMMAND]

Environment:
  CERCA_API_KEY    the API key (or --api-key-file FILE; never an argument)
  CERCA_BASE_URL   the API's address (or --base-url URL)
  CERCA_CA_FILE    a PEM file of CAs to trust besides the system's (or --ca-file FILE)
  CERCA_LOG        debug, info, warn (default) or off; log lines go to stderr
  NO_COLOR         no colours, even on a terminal

Exit codes:
  0 success   2 usage or validation error   3 authentication or permission
  4 other API error   5 network, TLS or timeout   6 batch with some failures
  7 the results could not be written (they were printed on stderr instead)

Run 'cerca help webhooks create' for the options of create.
]],
  ["webhooks create"] = [[
Usage:
  cerca webhooks create FLEET --url URL [options]
  cerca webhooks create --fleets-file FILE --url URL [options]

Creates a webhook subscription for FLEET (or for every fleet listed in FILE,
one id per line; blank lines and lines starting with # are skipped) that
delivers events to URL. The subscription's signing secret is shown once.

Options:
  --url URL              HTTPS endpoint that receives deliveries (required)
  --event NAME           subscribe to NAME (repeatable); none: every non-test event
  --extra KEY=JSON       extra body field, its value as JSON (repeatable),
                         e.g. --extra description='"ops"'
  --idempotency-key KEY  key for the create (single fleet only); reuse it to
                         repeat a create safely
  --timeout SECONDS      time allowed for one attempt (default 60)
  --json                 print the subscription as one JSON object (one per line
                         in batch mode), nothing else on stdout
  --base-url URL         the API's address (default CERCA_BASE_URL)
  --ca-file FILE         a PEM file of CAs to trust besides the system's
                         (default CERCA_CA_FILE)
  --api-key-file FILE    read the API key from FILE instead of CERCA_API_KEY
Batch mode (--fleets-file):
  --concurrency N        creates in flight at once (default 16)
  --out FILE             append the results as JSON lines to FILE instead of
                         stdout. FILE holds secrets: it must be a regular file
                         of yours, not a symbolic link, and is created (or set
                         to) mode 0600. Each fleet's idempotency key is
                         recorded there before its create is sent: a re-run
                         skips the fleets already created and repeats the
                         others under the same keys, so an interrupted run is
                         resumed without duplicates
]],
  ["webhooks events"] = [[
Usage:
  cerca webhooks events

Lists the event names a subscription may list, one per line.
]],
}

-- Output: the streams and how to write to them. Replaced by the specs'
-- callers only through real processes: nothing here is global state.
local function new_ui(env)
  local ui = { out = io.stdout, err = io.stderr }
  ui.no_color = (env("NO_COLOR") or "") ~= ""
  ui.color_out = core.isatty(1) and not ui.no_color
  ui.tty_err = core.isatty(2)
  function ui.say(...) ui.out:write(...) end
  function ui.warn(...) ui.err:write(...) end
  return ui
end

local function usage_error(message)
  return { usage = true, message = message }
end

-- Parses the arguments after `webhooks create`.
local FLAGS_WITH_VALUE = {
  ["--url"] = "url", ["--event"] = "event", ["--extra"] = "extra", ["--idempotency-key"] = "idempotency_key",
  ["--timeout"] = "timeout", ["--fleets-file"] = "fleets_file", ["--concurrency"] = "concurrency",
  ["--out"] = "out", ["--base-url"] = "base_url", ["--api-key-file"] = "api_key_file", ["--ca-file"] = "ca_file",
}
local REPEATABLE = { event = true, extra = true }
local BOOLEAN_FLAGS = { ["--json"] = "json", ["--help"] = "help", ["-h"] = "help" }

local function parse_create(args)
  local o = { event = {}, extra = {}, fleets = {} }
  local i = 1
  while i <= #args do
    local a = args[i]
    local flag, inline = match(a, "^(%-%-[%w%-]+)=(.*)$")
    flag = flag or a
    if FLAGS_WITH_VALUE[flag] then
      local key = FLAGS_WITH_VALUE[flag]
      local value = inline
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then return nil, usage_error(flag .. " needs a value") end
      end
      if REPEATABLE[key] then
        o[key][#o[key] + 1] = value
      elseif o[key] ~= nil then
        return nil, usage_error(flag .. " was given twice")
      else
        o[key] = value
      end
    elseif BOOLEAN_FLAGS[a] then
      o[BOOLEAN_FLAGS[a]] = true
    elseif a == "--api-key" or match(a, "^%-%-api%-key=") then
      return nil, usage_error("the API key is never taken as an argument (it would land in the shell's "
        .. "history): set CERCA_API_KEY or use --api-key-file FILE")
    elseif match(a, "^%-") and a ~= "-" then
      return nil, usage_error("unknown option " .. a .. "; see 'cerca help webhooks create'")
    else
      o.fleets[#o.fleets + 1] = a
    end
    i = i + 1
  end
  return o
end

-- The create's parameters from the options (shared by both modes).
local function params_of(o)
  if not o.url then return nil, usage_error("--url is required: the HTTPS endpoint that receives deliveries") end
  local params = { url = o.url }
  if #o.event > 0 then params.events = o.event end
  if #o.extra > 0 then
    params.extra_body = {}
    for _, kv in ipairs(o.extra) do
      local key, json = match(kv, "^([^=]+)=(.*)$")
      if not key then
        return nil, usage_error(format("--extra %s: write KEY=JSON, e.g. --extra description='\"ops\"'", kv))
      end
      local value, why = core.decode(json)
      if value == nil then
        return nil, usage_error(format("--extra %s: the value is not JSON (%s); quote strings: %s='\"%s\"'",
          key, why, key, json))
      end
      params.extra_body[key] = value
    end
  end
  return params
end

-- The most read from each file: a device or an endless pipe given as one
-- ends there, with a usage error, instead of filling the memory.
local API_KEY_FILE_MAX, API_KEY_FILE_MAX_TEXT = 64 * 1024, "64 KiB"
local FLEETS_FILE_MAX, FLEETS_FILE_MAX_TEXT = 64 * 1024 * 1024, "64 MiB"
local OUT_MAX = 256 * 1024 * 1024 -- checked (and named in the message) by core.open_journal

-- The content of `path`, at most `max` bytes (`max_text` names the figure);
-- or nil, why (naming the path), and "too_large" when there is more. Pipes
-- work (<(...)): the file is read in chunks to its end, never asked its size.
local function read_file(path, max, max_text)
  local f, why = io.open(path, "rb")
  if not f then return nil, why end
  local parts, size = {}, 0
  while true do
    local want = max + 1 - size
    local chunk, rerr = f:read(want > 65536 and 65536 or want)
    if not chunk then
      f:close()
      if rerr then return nil, path .. ": " .. tostring(rerr) end
      return concat(parts)
    end
    size = size + #chunk
    if size > max then
      f:close()
      return nil, path .. ": more than " .. max_text, "too_large"
    end
    parts[#parts + 1] = chunk
  end
end

local function client_of(o, env)
  local opts = { base_url = o.base_url, ca_file = o.ca_file }
  if o.api_key_file then
    local text, why, too_large = read_file(o.api_key_file, API_KEY_FILE_MAX, API_KEY_FILE_MAX_TEXT)
    if too_large then
      return nil, usage_error("--api-key-file " .. why .. ", the most a key file may hold; give the file "
        .. "that holds the API key")
    end
    if not text then return nil, usage_error("--api-key-file: " .. tostring(why)) end
    -- A key file usually ends with a newline; nothing else is trimmed (in
    -- linear time: a pattern would backtrack over a long run of newlines).
    local last = #text
    while last > 0 and (text:byte(last) == 10 or text:byte(last) == 13) do last = last - 1 end
    opts.api_key = text:sub(1, last)
  end
  if o.timeout then
    opts.timeout = tonumber(o.timeout)
    if not opts.timeout then return nil, usage_error("--timeout takes a number of seconds") end
  end
  -- Errors reach the user as one line each: no log lines unless asked for.
  if (env("CERCA_LOG") or "") == "" then opts.log_level = "off" end
  return cerca.new(opts)
end

-- Writes and flushes `text` to `file`; true, or nil and why.
local function put(file, text)
  local ok, why = file:write(text)
  if ok then ok, why = file:flush() end
  if not ok then return nil, why or "write failed" end
  return true
end

-- When the results cannot be written where they should go, they go to
-- stderr: a secret must not be lost to a full disk or a closed pipe.
local function rescue(ui, where, why, text)
  ui.warn(format("cerca: could not write to %s (%s); what follows was not written there and holds "
    .. "secrets: store it now\n", where, tostring(why)), text)
  return _M.EXIT.output
end

-- The JSON line of a subscription. Whatever cerca returned as created is
-- written: should a field ever resist encoding, the fields that identify
-- the subscription and its secret (strings by the time a create succeeds)
-- are written instead of nothing.
local function subscription_json(sub)
  local text = cerca.encode_json(sub)
  if text then return text end
  return cerca.encode_json { id = sub.id, fleetId = sub.fleetId, url = sub.url, secret = sub.secret }
end

local function show_subscription(ui, sub, json)
  local json_text = subscription_json(sub) .. "\n"
  local shown = not json and cerca.pretty(sub, { reveal_secret = true, color = ui.color_out })
  local text = shown and (shown .. "\n") or json_text
  local ok, why = put(ui.out, text)
  if not ok then return rescue(ui, "stdout", why, json_text) end
  if not json then
    ui.warn("cerca: the secret above is shown once and will not be shown again: store it now\n")
  end
  return _M.EXIT.ok
end

local function create_one(ui, o, env)
  if #o.fleets ~= 1 then
    return nil, usage_error("give one FLEET, or --fleets-file FILE for many")
  end
  for _, flag in ipairs { "concurrency", "out" } do
    if o[flag] then return nil, usage_error("--" .. flag .. " goes with --fleets-file") end
  end
  local params, perr = params_of(o)
  if not params then return nil, perr end
  local client, err = client_of(o, env)
  if not client then return nil, err end
  local sub, cerr = client.webhooks.create(o.fleets[1], params, { idempotency_key = o.idempotency_key })
  client:close()
  if not sub then return nil, cerr end
  return show_subscription(ui, sub, o.json)
end

-- Fleet ids of a fleets file: one per line, blank lines and # comments
-- skipped, each id once.
local function read_fleets(path)
  local text, why, too_large = read_file(path, FLEETS_FILE_MAX, FLEETS_FILE_MAX_TEXT)
  if too_large then
    return nil, usage_error("--fleets-file " .. why .. ", the most a fleets file may hold; give a file of "
      .. "fleet ids, one per line (split a longer list over several runs)")
  end
  if not text then return nil, usage_error("--fleets-file: " .. tostring(why)) end
  local fleets, seen = {}, {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    -- Trimmed in linear time (a pattern would backtrack over long blanks).
    local first, last = line:find("%S"), #line
    if first then
      local b = line:byte(last)
      while b == 32 or (b >= 9 and b <= 13) do
        last = last - 1
        b = line:byte(last)
      end
    end
    line = first and line:sub(first, last) or ""
    if line ~= "" and not match(line, "^#") and not seen[line] then
      seen[line] = true
      fleets[#fleets + 1] = line
    end
  end
  return fleets
end

-- What an --out file says of earlier runs: the fleets created (a record
-- with a secret), and the idempotency key each other fleet was sent under.
-- Read from the open journal (see open_private); nil, nil and a usage
-- error when it cannot be read back.
local function recorded(journal)
  local created, keys = {}, {}
  local text, why, kind = journal:read()
  if not text then
    return nil, nil, usage_error("--out " .. why .. (kind == "too_large" and "; give a new --out file, and a "
      .. "--fleets-file of the fleets not created in this one" or ""))
  end
  for line in text:gmatch("[^\n]+") do
    local r = core.decode(line)
    if type(r) == "table" then
      if type(r.fleetId) == "string" and type(r.secret) == "string" then
        created[r.fleetId] = true
      elseif type(r.fleet_id) == "string" and type(r.idempotency_key) == "string" then
        keys[r.fleet_id] = keys[r.fleet_id] or r.idempotency_key
      end
    end
  end
  return created, keys
end

-- Opens --out for appending and reading back (it holds secrets): a regular
-- file of ours, not through a symbolic link, created with mode 0600 (set
-- to 0600 when it exists with another mode). A journal, or nil and a
-- usage error naming the file and the fix.
local function open_private(path)
  local journal, why = core.open_journal(path, OUT_MAX)
  if not journal then return nil, usage_error("--out " .. why) end
  return journal
end

local function progress(ui, done, total, failed)
  local width = 30
  local filled = total > 0 and floor(width * done / total) or width
  ui.warn(format("\r[%s%s] %d/%d%s", rep("#", filled), rep(".", width - filled), done, total,
    failed > 0 and format(" (%d failed)", failed) or ""))
end

-- An answer that could not be used may still hold the subscription's
-- secret: its raw text is kept with the error.
local function kept_answer(err)
  if err.type == "invalid_response" and type(err.body) == "string" and err.body ~= "" then return err.body end
end

local function error_record(fleet_id, err, key)
  return { fleet_id = fleet_id, idempotency_key = err.idempotency_key or key, error = { type = err.type,
    message = err.message, status = err.status, request_id = err.request_id,
    request_sent = err.request_sent or false, answer = kept_answer(err) } }
end

local function create_batch(ui, o, env)
  if #o.fleets > 0 then return nil, usage_error("give FLEET or --fleets-file, not both") end
  if o.idempotency_key then
    return nil, usage_error("--idempotency-key is for a single fleet; each fleet of a batch gets its own key")
  end
  local range = cerca.webhooks.CONCURRENCY
  local concurrency = range.default
  if o.concurrency then
    concurrency = tonumber(o.concurrency)
    if not concurrency or concurrency % 1 ~= 0 or concurrency < range.min or concurrency > range.max then
      return nil, usage_error(format("--concurrency takes a whole number from %d to %d", range.min, range.max))
    end
  end
  local params, perr = params_of(o)
  if not params then return nil, perr end
  local fleets, ferr = read_fleets(o.fleets_file)
  if not fleets then return nil, ferr end
  local client, err = client_of(o, env)
  if not client then return nil, err end

  -- The --out file is opened and read back before anything is sent: a
  -- refusal is a usage error.
  local created, keys, journal = {}, {}, nil
  if o.out then
    local jerr
    journal, jerr = open_private(o.out)
    if journal then created, keys, jerr = recorded(journal) end
    if jerr then
      client:close()
      if journal then journal:close() end
      return nil, jerr
    end
  end
  local todo, skipped = {}, 0
  for _, fleet in ipairs(fleets) do
    if created[fleet] then skipped = skipped + 1 else todo[#todo + 1] = fleet end
  end

  local where = o.out or "stdout"
  local unwritten, write_error = {}, nil
  local function record(value)
    local line = (value.secret and subscription_json(value) or cerca.encode_json(value)) .. "\n"
    if write_error then
      unwritten[#unwritten + 1] = line
      return
    end
    local ok, why
    if journal then ok, why = journal:write(line) else ok, why = put(ui.out, line) end
    if not ok then
      write_error = why
      unwritten[#unwritten + 1] = line
    end
  end

  -- Every fleet's key is drawn (or taken from the earlier run) and recorded
  -- before anything is sent: whatever happens next, a re-run repeats each
  -- create under the same key, and the API answers it without a duplicate.
  local items = {}
  for i, fleet in ipairs(todo) do
    local key = keys[fleet] or core.uuid4()
    items[i] = { fleet_id = fleet, params = params, options = { idempotency_key = key } }
    if o.out then record { fleet_id = fleet, idempotency_key = key, pending = true } end
  end
  if write_error then
    -- Without the keys on disk a re-run could not repeat these creates
    -- safely: send nothing.
    client:close()
    journal:close()
    ui.warn(format("cerca: could not write to %s (%s); nothing was sent\n", where, tostring(write_error)))
    return _M.EXIT.output
  end

  local done, failed = 0, 0
  local show_progress = ui.tty_err and #items > 0
  if show_progress then progress(ui, 0, #items, 0) end
  local results = client.webhooks.create_many(items, {
    concurrency = concurrency,
    on_result = function(i, r)
      done = done + 1
      -- Written as it arrives: an interrupted run keeps every secret so far.
      if r.ok then
        record(r.subscription)
      else
        failed = failed + 1
        record(error_record(todo[i], r.error, items[i].options.idempotency_key))
        if not show_progress then ui.warn(format("cerca: %s: %s\n", cerca.printable(todo[i]), tostring(r.error))) end
      end
      if show_progress then progress(ui, done, #items, failed) end
    end,
  })
  client:close()
  if journal then journal:close() end
  if show_progress then
    ui.warn("\n")
    for i, r in ipairs(results or {}) do
      if not r.ok then ui.warn(format("cerca: %s: %s\n", cerca.printable(todo[i]), tostring(r.error))) end
    end
  end
  ui.warn(format("cerca: %d created, %d failed%s%s\n", done - failed, failed,
    o.out and format(", %d skipped (already in %s)", skipped, cerca.printable(o.out)) or "",
    (done - failed > 0 and not o.out) and "; the secrets above are shown once" or ""))
  if write_error then return rescue(ui, where, write_error, table.concat(unwritten)) end
  return failed > 0 and _M.EXIT.partial or _M.EXIT.ok
end

local function webhooks_create(ui, args, env)
  local o, err = parse_create(args)
  if not o then return nil, err end
  if o.help then
    ui.say(HELP["webhooks create"])
    return _M.EXIT.ok
  end
  if o.fleets_file then return create_batch(ui, o, env) end
  return create_one(ui, o, env)
end

local function webhooks_events(ui, args)
  if #args > 0 then return nil, usage_error("webhooks events takes no arguments") end
  ui.say(concat(cerca.webhooks.EVENTS, "\n"), "\n")
  return _M.EXIT.ok
end

-- The help of `topic` and of every command it begins ("webhooks" gives
-- "webhooks create" and "webhooks events"), in the order of HELP_ORDER.
local HELP_ORDER = { "webhooks create", "webhooks events" }

local function help_text(topic)
  if topic == "" then return HELP.main end
  if HELP[topic] then return HELP[topic] end
  local texts = {}
  for _, name in ipairs(HELP_ORDER) do
    if name:sub(1, #topic + 1) == topic .. " " then texts[#texts + 1] = HELP[name] end
  end
  if #texts > 0 then return concat(texts, "\n") end
end

local function help(ui, args)
  local topic = concat(args, " ")
  local text = help_text(topic)
  if not text then return nil, usage_error("no help for '" .. topic .. "'; try 'cerca help'") end
  ui.say(text)
  return _M.EXIT.ok
end

local function slice(t, from)
  local out = {}
  for i = from, #t do out[#out + 1] = t[i] end
  return out
end

local function dispatch(ui, args, env)
  local a1, a2 = args[1], args[2]
  if a1 == nil then
    -- No command is a usage error: the usage goes to stderr.
    ui.warn(HELP.main)
    return _M.EXIT.usage
  end
  if a1 == "help" or a1 == "--help" or a1 == "-h" then return help(ui, slice(args, 2)) end
  if a1 == "--version" then
    ui.say(format("cerca %s (cerca-lua; %s; libcurl %s)\n", cerca.VERSION, _VERSION, core.curl_version))
    return _M.EXIT.ok
  end
  if a1 == "webhooks" and a2 == "create" then return webhooks_create(ui, slice(args, 3), env) end
  if a1 == "webhooks" and a2 == "events" then return webhooks_events(ui, slice(args, 3)) end
  if a1 == "webhooks" and (a2 == nil or a2 == "--help" or a2 == "-h") then
    ui[a2 and "say" or "warn"](help_text("webhooks"))
    return a2 and _M.EXIT.ok or _M.EXIT.usage
  end
  return nil, usage_error(format("unknown command '%s'; see 'cerca help'", concat(args, " ")))
end

--- Runs the command line; returns the exit code.
-- @tparam table args the arguments (`arg` without the script name)
-- @tparam[opt] function env reads an environment variable (default os.getenv)
function _M.main(args, env)
  env = env or getenv
  core.ignore_sigpipe()
  local ui = new_ui(env)
  local ok, code, err = xpcall(function() return dispatch(ui, args, env) end, debug.traceback)
  if not ok then
    -- A bug: one line, without the traceback's file paths and values.
    ui.warn("cerca: internal error: ", (tostring(code):match("^[^\n]*")), "\n")
    return _M.EXIT.internal
  end
  if code then return code end
  if err.usage then
    ui.warn("cerca: ", cerca.printable(err.message), "\n")
    return _M.EXIT.usage
  end
  if (err.type == "invalid_request" or err.type == "configuration") and flag_message(err) then
    ui.warn("cerca: ", cerca.printable(flag_message(err)), "\n")
    return _M.EXIT.usage
  end
  if err.type == "configuration" and err.field == "CERCA_API_KEY" then
    ui.warn("cerca: no API key: set CERCA_API_KEY, or use --api-key-file FILE\n")
    return _M.EXIT.usage
  end
  local hint = ""
  if err.idempotency_key and err.request_sent and REPEATABLE_TYPES[err.type] then
    -- A request reached the API, which may have made the subscription: the
    -- same key gets it back. When none did, there is nothing to get back.
    hint = "; the subscription may exist: repeat with --idempotency-key " .. err.idempotency_key
      .. " to get it without a duplicate"
  end
  ui.warn(tostring(err), hint, "\n")
  local answer = kept_answer(err)
  if answer then
    ui.warn(format("cerca: the answer as received (%d bytes; it may hold the subscription's secret):\n%s\n",
      #answer, cerca.printable(answer)))
  end
  return exit_code(err)
end

return _M
