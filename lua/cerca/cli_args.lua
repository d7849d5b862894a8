--- The `cerca` command's arguments: the flags of `webhooks create` turned
-- into the create's parameters, the client's options, the batch's
-- concurrency and fleets; and the library's field names in errors turned
-- back into the flags the user typed. Every refusal is a usage error
-- (`{ usage = true, message = }`), naming the flag and the fix.
-- @module cerca.cli_args

local cerca = require "cerca"

local type = type
local ipairs = ipairs
local tostring = tostring
local tonumber = tonumber
local format = string.format
local match = string.match
local find = string.find
local gmatch = string.gmatch
local byte = string.byte
local sub = string.sub
local gsub = string.gsub
local char = string.char
local pairs = pairs
local concat = table.concat

local _M = {}

--- A usage error: the message is printed as is, the exit code is 2.
function _M.usage_error(message)
  return { usage = true, message = message }
end

local usage_error = _M.usage_error

-- The flags of each command: `value` maps each flag that takes a value to
-- its key, `repeatable` lists the keys that may be given more than once,
-- `boolean` the flags without a value; `refuse(arg)` returns the message
-- for an argument never taken (a credential), or nil; `help` names the
-- command's help topic.
local HELP_FLAGS = { ["--help"] = "help", ["-h"] = "help" }

local API_KEY_REFUSED = "the API key is never taken as an argument (it would land in the shell's history): "
  .. "set CERCA_API_KEY or use --api-key-file FILE"

local CREATE = {
  help = "webhooks create",
  value = {
    ["--url"] = "url", ["--event"] = "event", ["--extra"] = "extra", ["--idempotency-key"] = "idempotency_key",
    ["--timeout"] = "timeout", ["--fleets-file"] = "fleets_file", ["--concurrency"] = "concurrency",
    ["--out"] = "out", ["--base-url"] = "base_url", ["--api-key-file"] = "api_key_file", ["--ca-file"] = "ca_file",
  },
  repeatable = { event = true, extra = true },
  boolean = { ["--json"] = "json", ["--help"] = "help", ["-h"] = "help" },
  refuse = function(a)
    if a == "--api-key" or match(a, "^%-%-api%-key=") then return API_KEY_REFUSED end
  end,
}

-- Other users can read a process's arguments (ps, /proc): a signing secret
-- given as one is refused, whatever flag it comes with, and not repeated.
local SECRET_REFUSED = "the webhook secret is never taken as an argument (other users can read a "
  .. "command's arguments, and it would land in the shell's history): set CERCA_WEBHOOK_SECRET or use "
  .. "--secret-file FILE"

local function refuse_secret(a)
  if a == "--secret" or match(a, "^%-%-secret=") then return SECRET_REFUSED end
end

--- A usage error when an argument of any command holds a webhook secret
-- (`whsec_`): it is refused before anything could repeat it. Else nil.
function _M.secret_in(argv)
  for _, a in ipairs(argv) do
    if find(a, "whsec_", 1, true) then return usage_error(SECRET_REFUSED) end
  end
end

local DELIVERIES = {
  ["deliveries sign"] = {
    help = "deliveries sign",
    value = { ["--id"] = "id", ["--timestamp"] = "timestamp", ["--data"] = "data", ["--secret-file"] = "secret_file" },
    repeatable = {}, boolean = HELP_FLAGS, refuse = refuse_secret,
  },
  ["deliveries send"] = {
    help = "deliveries send",
    value = { ["--event"] = "event", ["--data"] = "data", ["--secret-file"] = "secret_file",
      ["--timeout"] = "timeout", ["--ca-file"] = "ca_file" },
    repeatable = {}, boolean = HELP_FLAGS, refuse = refuse_secret,
  },
}

-- The arguments of a command as a table keyed by option (a list for each
-- repeatable one; `args` the other arguments), or nil and a usage error.
local function parse(args, spec)
  local o = { args = {} }
  for key in pairs(spec.repeatable) do o[key] = {} end
  local i = 1
  while i <= #args do
    local a = args[i]
    local refusal = spec.refuse(a)
    if refusal then return nil, usage_error(refusal) end
    local flag, inline = match(a, "^(%-%-[%w%-]+)=(.*)$")
    flag = flag or a
    if spec.value[flag] then
      local key = spec.value[flag]
      local value = inline
      if value == nil then
        i = i + 1
        value = args[i]
        if value == nil then return nil, usage_error(flag .. " needs a value") end
        refusal = spec.refuse(value)
        if refusal then return nil, usage_error(refusal) end
      end
      if spec.repeatable[key] then
        o[key][#o[key] + 1] = value
      elseif o[key] ~= nil then
        return nil, usage_error(flag .. " was given twice")
      else
        o[key] = value
      end
    elseif spec.boolean[a] then
      o[spec.boolean[a]] = true
    elseif match(a, "^%-") and a ~= "-" then
      return nil, usage_error("unknown option " .. a .. "; see 'cerca help " .. spec.help .. "'")
    else
      o.args[#o.args + 1] = a
    end
    i = i + 1
  end
  return o
end

--- The arguments after `webhooks create`, as a table keyed by option
-- (`url`, `event` and `extra` lists, `fleets` the other arguments, ...),
-- or nil and a usage error.
function _M.parse_create(args)
  local o, err = parse(args, CREATE)
  if not o then return nil, err end
  o.fleets = o.args
  return o
end

--- The arguments after `deliveries sign` or `deliveries send` (`command`
-- names which), as a table keyed by option (`args` the other arguments),
-- or nil and a usage error.
function _M.parse_deliveries(command, args)
  return parse(args, DELIVERIES[command])
end

--- The create's parameters from the options (shared by both modes), or
-- nil and a usage error.
function _M.params(o)
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
      local value, why = cerca.decode_json(json)
      if value == nil then
        -- Quoting is the fix for a bare word, not for JSON written wrong.
        local fix = find(json, '^%s*[%[{"%-%d]') and "correct the JSON"
          or format("quote strings: %s='\"%s\"'", key, json)
        return nil, usage_error(format("--extra %s: the value is not JSON (%s); %s", key, why, fix))
      end
      params.extra_body[key] = value
    end
  end
  return params
end

-- The most read from each file a flag names, and what to give instead: a
-- device or an endless pipe given as one ends there, with a usage error,
-- instead of filling the memory.
local INPUT_FILES = {
  ["--api-key-file"] = { max = 64 * 1024, max_text = "64 KiB", holds = "a key file",
    fix = "give the file that holds the API key" },
  ["--secret-file"] = { max = 64 * 1024, max_text = "64 KiB", holds = "a secret file",
    fix = "give the file that holds the webhook secret (the one that starts with whsec_)" },
  ["--fleets-file"] = { max = 64 * 1024 * 1024, max_text = "64 MiB", holds = "a fleets file",
    fix = "give a file of fleet ids, one per line (split a longer list over several runs)" },
  -- A receiver refuses a larger body by default (webhooks.verify's max_body).
  ["--data"] = { max = 1024 * 1024, max_text = "1 MiB", holds = "a delivery's body",
    fix = "give a smaller body: receivers refuse larger ones by default" },
}

-- The rest of the open file `f` (named `name` in messages), at most `max`
-- bytes (`max_text` names the figure); or nil, why, and "too_large" when
-- there is more. Read in chunks to its end, never asked its size: pipes work.
local function read_stream(f, name, max, max_text)
  local parts, size = {}, 0
  while true do
    local want = max + 1 - size
    local chunk, rerr = f:read(want > 65536 and 65536 or want)
    if not chunk then
      if rerr then return nil, name .. ": " .. tostring(rerr) end
      return concat(parts)
    end
    size = size + #chunk
    if size > max then return nil, name .. ": more than " .. max_text, "too_large" end
    parts[#parts + 1] = chunk
  end
end

-- The content of `path`, as read_stream reads it (process substitution,
-- <(...), works).
local function read_file(path, max, max_text)
  local f, why = io.open(path, "rb")
  if not f then return nil, why end
  local text, rwhy, too_large = read_stream(f, path, max, max_text)
  f:close()
  return text, rwhy, too_large
end

-- The content of the file given to `flag` (a key of INPUT_FILES), or nil
-- and a usage error.
local function read_input(flag, path)
  local limit = INPUT_FILES[flag]
  local text, why, too_large = read_file(path, limit.max, limit.max_text)
  if too_large then
    return nil, usage_error(format("%s %s, the most %s may hold; %s", flag, why, limit.holds, limit.fix))
  end
  if not text then return nil, usage_error(flag .. ": " .. tostring(why)) end
  return text
end

-- `text` without the line breaks it ends with: a key or secret file usually
-- ends with one; nothing else is trimmed (in linear time: a pattern would
-- backtrack over a long run of newlines).
local function chomp(text)
  local last = #text
  while last > 0 and (text:byte(last) == 10 or text:byte(last) == 13) do last = last - 1 end
  return text:sub(1, last)
end

--- Reads the key of `--api-key-file` in `argv` into `key_read`, if no run
-- did yet (a usage error found before the file was read may quote the key
-- all the same; it is removed then). Only a regular file is read: a FIFO
-- would block the error's message, and lose what it holds. Whatever fails
-- here is left unsaid.
function _M.read_key_for_messages(argv)
  if _M.key_read then return end
  for i = 1, #argv do
    local a = argv[i]
    local path = (a == "--api-key-file" and argv[i + 1])
      or (type(a) == "string" and a:match("^%-%-api%-key%-file=(.+)$"))
    if path then
      if cerca.system.file_kind(path) ~= "file" then return end
      local text = read_input("--api-key-file", path)
      if text then _M.key_read = chomp(text) end
      return
    end
  end
end

--- The client's options (`cerca.new`) from the options and the environment
-- (`env(name)` reads a variable), or nil and a usage error.
function _M.client_options(o, env)
  local opts = { base_url = o.base_url, ca_file = o.ca_file }
  if o.api_key_file then
    local text, err = read_input("--api-key-file", o.api_key_file)
    if not text then return nil, err end
    opts.api_key = chomp(text)
    _M.key_read = opts.api_key
    if opts.api_key == "" then
      return nil, usage_error("--api-key-file " .. o.api_key_file .. " is empty: write the API key in it")
    end
  end
  if o.timeout then
    opts.timeout = tonumber(o.timeout)
    if not opts.timeout then return nil, usage_error("--timeout takes a number of seconds") end
  end
  -- Errors reach the user as one line each: no log lines unless asked for.
  if (env("CERCA_LOG") or "") == "" then opts.log_level = "off" end
  return opts
end

--- The batch's concurrency: `--concurrency`, else the library's default;
-- or nil and a usage error.
function _M.concurrency(o)
  local range = cerca.webhooks.CONCURRENCY
  if not o.concurrency then return range.default end
  local n = tonumber(o.concurrency)
  if not n or n % 1 ~= 0 or n < range.min or n > range.max then
    return nil, usage_error(format("--concurrency takes a whole number from %d to %d", range.min, range.max))
  end
  return n
end

local HASH = byte("#")

-- `line` without its leading and trailing blanks (%s), in linear time: a
-- pattern would backtrack over a long run of them.
local function trim(line)
  local first, last = find(line, "%S"), #line
  if not first then return "" end
  local b = byte(line, last)
  while b == 32 or (b >= 9 and b <= 13) do
    last = last - 1
    b = byte(line, last)
  end
  return sub(line, first, last)
end

--- The fleet ids of `--fleets-file`: one per line, blank lines and #
-- comments skipped, each id once; or nil and a usage error.
function _M.fleets(o)
  local text, err = read_input("--fleets-file", o.fleets_file)
  if not text then return nil, err end
  return _M.fleet_lines(text, "--fleets-file " .. o.fleets_file)
end

--- The API key as this run knows it (`CERCA_API_KEY`, and `--api-key-file`
-- once read), each only when 8 bytes or longer: a shorter one is no
-- credential, and removing it would garble the words of a message.
function _M.api_keys(env)
  local function long(k) return type(k) == "string" and #k >= 8 and k or nil end
  local key, other = long(env("CERCA_API_KEY")), long(_M.key_read)
  if key then return key, other end
  return other
end

--- `text` with the API key removed, in any form it may be written in (a
-- message quotes what was typed: the key pasted into the wrong flag, or
-- into a file of fleet ids, is not repeated).
function _M.without_key(text, env)
  local key, other = _M.api_keys(env)
  if key then return cerca.redact(text, key, other) end
  return text
end

local OPEN_BRACE, OPEN_BRACKET = byte("{"), byte("[")

-- Why line `pos` of `text` cannot be a fleet id, or nil. A line that
-- starts a JSON record, or holds a signing secret, is a line of an --out
-- file given as --fleets-file: sent as fleet ids, its secrets would go into
-- request paths (and the server's logs). The line itself is not quoted.
local function not_a_fleet(text, pos, line, b, name)
  local why
  if b == OPEN_BRACE or b == OPEN_BRACKET then
    why = format("starts with %q, like a JSON record of an --out file", char(b))
  elseif find(line, "whsec_", 1, true) then
    why = "holds a webhook signing secret (it has whsec_ in it)"
  else
    return nil
  end
  local _, n = gsub(sub(text, 1, pos), "\n", "")
  return usage_error(format("%s: line %d %s, not a fleet id; give the file that lists one fleet id per line "
    .. "(the --out file of a run is given as --out)", name, n + 1, why))
end

-- Whether `text` holds the API key (`key`, `other`) in any form.
-- (`cerca.redact` also removes what it recognises, `whsec_` tokens: that
-- alone is no key.)
local function holds_key(text, key, other)
  return find(text, key, 1, true) ~= nil or (other ~= nil and find(text, other, 1, true) ~= nil)
    or cerca.redact(text, key, other) ~= cerca.redact(text)
end

--- The usage error for fleet ids (`fleets_file`'s) of which one holds the
-- API key, naming which (not quoting it), or nil. Sent as a fleet id the
-- key would be refused; written in a record or an error line, printed. (A
-- `.env` given by mistake.) The ids are searched at once, then one by one.
function _M.key_in_fleets(fleets, fleets_file, env)
  local key, other = _M.api_keys(env)
  if not key or not holds_key(concat(fleets, "\n"), key, other) then return nil end
  for i, fleet in ipairs(fleets) do
    if holds_key(fleet, key, other) then
      return usage_error(format("--fleets-file %s: fleet id number %d holds the API key; give the file that "
        .. "lists one fleet id per line", fleets_file, i))
    end
  end
end

--- The fleet ids a fleets file's text lists, in order: each line trimmed
-- of blanks (%s), empty lines and lines that start with # skipped, each
-- id once; or nil and a usage error for a line that is no fleet id (see
-- `not_a_fleet`). A UTF-8 byte order mark at the start is skipped.
-- @tparam string text the file's content
-- @tparam[opt] string name the file, for messages
function _M.fleet_lines(text, name)
  local fleets, n, seen = {}, 0, {}
  -- A line is searched for whsec_ only when the whole text holds it (most
  -- do not).
  local whsec = find(text, "whsec_", 1, true) ~= nil
  local from = sub(text, 1, 3) == "\239\187\191" and 4 or 1
  for pos, line in gmatch(from == 1 and text or sub(text, from), "()([^\n]+)") do
    -- Most lines are an id alone: a line is trimmed only when its first or
    -- last byte may be blank (a control byte is not, but is rare enough to
    -- take the slow way too).
    local b = byte(line, 1)
    if b <= 32 or byte(line, -1) <= 32 then
      line = trim(line)
      b = byte(line, 1)
    end
    if b and b ~= HASH and not seen[line] then
      if whsec or b == OPEN_BRACE or b == OPEN_BRACKET then
        local bad = not_a_fleet(text, pos + from - 1, line, b, name or "--fleets-file")
        if bad then return nil, bad end
      end
      seen[line] = true
      n = n + 1
      fleets[n] = line
    end
  end
  return fleets
end

--- The webhook secret deliveries are signed with: the content of
-- `--secret-file`, else `CERCA_WEBHOOK_SECRET`; or nil and a usage error.
-- It is never repeated in a message.
function _M.webhook_secret(o, env)
  if o.secret_file then
    local text, err = read_input("--secret-file", o.secret_file)
    if not text then return nil, err end
    text = chomp(text)
    if text == "" then return nil, usage_error("--secret-file " .. o.secret_file .. " is empty") end
    return text
  end
  local secret = env("CERCA_WEBHOOK_SECRET")
  if secret == nil or secret == "" then
    return nil, usage_error("no webhook secret: set CERCA_WEBHOOK_SECRET, or use --secret-file FILE "
      .. "(the whsec_ secret the subscription was created with)")
  end
  return secret
end

--- The bytes of `--data`: the text given, or the content of the file
-- after `@`; nil when there is no --data; or nil and a usage error.
function _M.data(o)
  if o.data == nil then return nil end
  local path = match(o.data, "^@(.*)$")
  if path then return read_input("--data", path) end
  return o.data
end

--- Standard input to its end, at most what `--data` may hold; or nil and
-- a usage error.
function _M.stdin()
  local limit = INPUT_FILES["--data"]
  local text, why, too_large = read_stream(io.stdin, "standard input", limit.max, limit.max_text)
  if too_large then return nil, usage_error(format("%s, the most %s may hold; %s", why, limit.holds, limit.fix)) end
  if not text then return nil, usage_error(tostring(why)) end
  return text
end

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
  { "^api_key$", "--api-key-file" },
  -- cerca.post, for deliveries send:
  { "^opts%.timeout$", "--timeout" },
  { "^url$", "URL" },
}

-- What the rest of a library message names in its own terms, in the
-- command's.
local TERMS_OF = {
  { "set params%.url instead", "use --url instead" },
  { "remove it from params%.extra_body%.", "remove it from --extra " },
  { "set params%.events instead", "use --event instead" },
  { "already listed at params%.events%[(%d+)%]", "already given by --event number %1" },
  { "list each event once", "give each event once" },
  { "give each event its own item: { (.-) }$", function(list)
    return "give each event its own --event: " .. list:gsub('"([^"]*)",? ?', "--event %1 "):gsub(" $", "")
  end },
  { "see cerca%.webhooks%.EVENTS", "see 'cerca webhooks events'" },
  { "as the ca_file option %(or CERCA_CA_FILE%)", "as --ca-file FILE (or CERCA_CA_FILE)" },
  { "the host in base_url", "the host in --base-url (or CERCA_BASE_URL)" },
  { "; it may have been created: repeat with idempotency key ",
    "; the subscription may exist: repeat with --idempotency-key " },
}

--- `text` (a library message) with the library's terms in the command's.
function _M.flag_terms(text)
  for _, term in ipairs(TERMS_OF) do text = text:gsub(term[1], term[2]) end
  return text
end

--- `err`'s message with the library's field name at its start replaced by
-- the flag, and the library's terms after it by the command's, or nil
-- when it names none of the fields.
function _M.flag_message(err)
  local field, message = err.field, err.message
  if type(field) ~= "string" or type(message) ~= "string" then return nil end
  for _, pair in ipairs(FLAG_OF) do
    local flag, n = field:gsub(pair[1], pair[2])
    if n > 0 then
      if message:sub(1, #field) == field then
        message = message:sub(#field + 1)
      else
        message = ": " .. message
      end
      return flag .. _M.flag_terms(message)
    end
  end
end

return _M
