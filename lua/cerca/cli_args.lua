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
local concat = table.concat

local _M = {}

--- A usage error: the message is printed as is, the exit code is 2.
function _M.usage_error(message)
  return { usage = true, message = message }
end

local usage_error = _M.usage_error

local FLAGS_WITH_VALUE = {
  ["--url"] = "url", ["--event"] = "event", ["--extra"] = "extra", ["--idempotency-key"] = "idempotency_key",
  ["--timeout"] = "timeout", ["--fleets-file"] = "fleets_file", ["--concurrency"] = "concurrency",
  ["--out"] = "out", ["--base-url"] = "base_url", ["--api-key-file"] = "api_key_file", ["--ca-file"] = "ca_file",
}
local REPEATABLE = { event = true, extra = true }
local BOOLEAN_FLAGS = { ["--json"] = "json", ["--help"] = "help", ["-h"] = "help" }

--- The arguments after `webhooks create`, as a table keyed by option
-- (`url`, `event` and `extra` lists, `fleets` the other arguments, ...),
-- or nil and a usage error.
function _M.parse_create(args)
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
        return nil, usage_error(format("--extra %s: the value is not JSON (%s); quote strings: %s='\"%s\"'",
          key, why, key, json))
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
  ["--fleets-file"] = { max = 64 * 1024 * 1024, max_text = "64 MiB", holds = "a fleets file",
    fix = "give a file of fleet ids, one per line (split a longer list over several runs)" },
}

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

--- The client's options (`cerca.new`) from the options and the environment
-- (`env(name)` reads a variable), or nil and a usage error.
function _M.client_options(o, env)
  local opts = { base_url = o.base_url, ca_file = o.ca_file }
  if o.api_key_file then
    local text, err = read_input("--api-key-file", o.api_key_file)
    if not text then return nil, err end
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

--- The fleet ids of `--fleets-file`: one per line, blank lines and #
-- comments skipped, each id once; or nil and a usage error.
function _M.fleets(o)
  local text, err = read_input("--fleets-file", o.fleets_file)
  if not text then return nil, err end
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

--- `err`'s message with the library's field name at its start replaced by
-- the flag, or nil when it names none of them.
function _M.flag_message(err)
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

return _M
