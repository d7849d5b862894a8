-- Seeded random inputs (250,000 in all) against everything that reads
-- caller or server data in Lua: argument validation, the retry headers,
-- log redaction and the command's fleets file; and against the C core's
-- fast paths, each held to the Lua rule it stands for. None may raise;
-- what validation lets through must encode to JSON and to one path
-- segment.
local helpers = require "spec.helpers"
local core = require "cerca.core"
local webhooks = require "cerca.webhooks"
local outcome = require "cerca.outcome"
local retry = require "cerca.retry"
local log = require "cerca.log"
local errors = require "cerca.errors"
local cli_args = require "cerca.cli_args"

local SEED = 20261128
local random = math.random

local function random_bytes(n, alphabet)
  local t = {}
  for i = 1, n do
    if alphabet then
      local k = random(#alphabet)
      t[i] = alphabet:sub(k, k)
    else
      t[i] = string.char(random(0, 255))
    end
  end
  return table.concat(t)
end

local URLISH = "https://example.com/ab%2F?#[]@!$&'()*+,;=:~-._ \t\r\n<>\"{}|\\^`\0\127\195\169\255"

local function random_string()
  local r = random()
  if r < 0.3 then return random_bytes(random(0, 12)) end
  if r < 0.5 then return random_bytes(random(0, 40), URLISH) end
  if r < 0.6 then return webhooks.EVENTS[random(#webhooks.EVENTS)] end
  if r < 0.7 then return "https://" .. random_bytes(random(0, 20), URLISH) end
  if r < 0.8 then return "fleet_" .. random_bytes(random(0, 6), "abc123/.%? ") end
  if r < 0.85 then return random_bytes(random(200, 2000), URLISH) end
  return random_bytes(random(1, 8), "abcdefghijklmnopqrstuvwxyz._")
end

local NUMBERS = { 0, -0.0, 1, -1, 0.5, 1 / 0, -1 / 0, 0 / 0, 2 ^ 53, -2 ^ 63, 1e308, 3 }

local random_value

local function random_table(depth)
  local t = {}
  local shape = random()
  local n = random(0, 5)
  for i = 1, n do
    if shape < 0.4 then
      t[i] = random_value(depth + 1)
    elseif shape < 0.8 then
      t[random_string()] = random_value(depth + 1)
    else
      local k = random_value(depth + 1)
      if k == nil or k ~= k then k = 1 end -- nil and NaN cannot be keys
      t[k] = random_value(depth + 1)
    end
  end
  if random() < 0.05 then t.self = t end -- a cycle
  if random() < 0.05 then t[n + 2] = "hole" end
  return t
end

function random_value(depth)
  local r = random()
  if depth > 6 then r = r * 0.6 end
  if r < 0.1 then return nil end
  if r < 0.15 then return random() < 0.5 end
  if r < 0.25 then return NUMBERS[random(#NUMBERS)] end
  if r < 0.55 then return random_string() end
  if r < 0.58 then return print end
  if r < 0.6 then return io.stdout end
  if r < 0.62 then return core.null end
  if r < 0.64 then return core.empty_array end
  return random_table(depth)
end

-- Parameters: mostly near-valid, with one part replaced at random.
local function random_params()
  if random() < 0.1 then return random_value(0) end
  local p = { url = "https://example.com/webhook" }
  local r = random()
  if r < 0.3 then p.url = random_value(0) end
  if random() < 0.5 then
    local events = {}
    for i = 1, random(0, 6) do
      events[i] = random() < 0.9 and webhooks.EVENTS[random(#webhooks.EVENTS)] or random_value(1)
    end
    p.events = events
  elseif random() < 0.2 then
    p.events = random_value(0)
  end
  if random() < 0.4 then p.extra_body = random_value(0) end
  if random() < 0.05 then p[random_string()] = random_value(0) end
  return p
end

describe("random inputs", function()
  it("validation never raises, and what passes encodes and stays one path segment (60,000 calls)", function()
    math.randomseed(SEED)
    local passed, refused = 0, 0
    for _ = 1, 60000 do
      local fleet_id = random() < 0.7 and random_string() or random_value(0)
      local params = random_params()
      local ok, err = pcall(webhooks.check, fleet_id, params)
      assert(ok, err)
      if err then
        assert.is_true(errors.is_error(err))
        assert.are.equal("invalid_request", err.type)
        assert.is_string(err.message)
        assert.is_string(err.field)
        refused = refused + 1
      else
        local path = webhooks.path(fleet_id)
        assert.matches("^/fleets/[%w%-%._~%%]+/webhooks$", path)
        local json, why = core.encode(webhooks.body(params))
        assert(json, why)
        assert.is_table(core.decode(json))
        passed = passed + 1
      end
    end
    print(("\nrandom inputs: %d argument sets passed validation, %d refused"):format(passed, refused))
    assert.is_true(passed > 5000 and refused > 5000)
  end)

  it("the core's JSON decoder gives lua-cjson's value or refusal for every text (30,000 texts)", function()
    -- The reference: lua-cjson configured as the core configures its own.
    local ref = require("cjson.safe").new()
    ref.decode_invalid_numbers(false)
    ref.decode_max_depth(128)
    math.randomseed(SEED + 3)
    local STRING_BITS = { "a", "Z", " ", "\\n", "\\\"", "\\\\", "\\/", "\\t", "\\u00e9", "\\ud83d\\ude00",
      "\\u0000", "\\x", "\t", "\1", "\127", "\195\169", "\255", "\\" }
    local JSON_NUMBERS = { "0", "-0", "1", "-1", "10", "01", "1.5", "1.", ".5", "-", "1e5", "1E+2", "1e-2", "1e",
      "2e308",
      "1e999", "-1e999", "123456789012345", "1234567890123456", "12345678901234567890", "0.1", "1.0e0",
      "0x10", "Infinity", "NaN", "+1", "1.5e", "9007199254740993" }
    local SPACES = { "", " ", "\n", "\r\n", "\t", "\f", "\v" }
    local function pick(t) return t[random(#t)] end
    local gen
    local function str()
      local t = {}
      for i = 1, random(0, 6) do t[i] = pick(STRING_BITS) end
      return '"' .. table.concat(t) .. (random() < 0.03 and "" or '"')
    end
    function gen(depth)
      local r = random()
      if depth > 4 or r < 0.3 then
        local k = random(5)
        if k == 1 then return str() end
        if k == 2 then return pick(JSON_NUMBERS) end
        return pick { "true", "false", "null", "nul", "tru" }
      end
      -- Now and then more members than the decoder keeps pending (32).
      local n, items = (depth <= 1 and random() < 0.1) and random(28, 70) or random(0, 5), {}
      local obj = r < 0.65
      for i = 1, n do
        items[i] = obj and (str() .. pick(SPACES) .. ":" .. pick(SPACES) .. gen(depth + 1)) or gen(depth + 1)
      end
      local sep = random() < 0.03 and ",," or ("," .. pick(SPACES))
      local text = (obj and "{" or "[") .. pick(SPACES) .. table.concat(items, sep) .. pick(SPACES)
      return text .. (random() < 0.03 and "" or (obj and "}" or "]"))
    end
    local accepted = 0
    for i = 1, 30000 do
      local text = pick(SPACES) .. gen(0) .. pick(SPACES)
      if i % 500 == 0 then text = string.rep("[", 126 + i % 5) .. string.rep("]", 126 + i % 5) end
      if helpers.decodes_as(ref.decode, core.decode, text) then accepted = accepted + 1 end
    end
    print(("JSON decoder: %d of 30000 texts accepted, the rest refused as lua-cjson does"):format(accepted))
    assert.is_true(accepted > 3000, accepted .. " accepted")
  end)

  it("the core's canonical encoder writes json.lua's bytes, or declines, for every value (30,000 values)",
    function()
    local json = require "cerca.json"
    local cjson = require "cjson"
    -- Every byte, alone and amid text, as lua-cjson escapes it.
    for b = 0, 255 do
      local s = string.char(b)
      assert.are.equal(cjson.encode(s), core.encode_canonical(s, json.array_mt), "byte " .. b)
      assert.are.equal(cjson.encode { "ab" .. s .. "cd" }, core.encode_canonical({ "ab" .. s .. "cd" }, json.array_mt))
    end
    math.randomseed(SEED + 4)
    local function plain(depth)
      local r = random()
      if depth > 3 or r < 0.5 then
        local k = random(6)
        if k == 1 then return random_string() end
        if k == 2 then return NUMBERS[random(#NUMBERS)] end
        if k == 3 then return (random() - 0.5) * 10 ^ random(-20, 20) end
        if k == 4 then return random(-1e9, 1e9) end
        if k == 5 then return core.null end
        return random() < 0.5
      end
      local t, n = {}, random(0, (depth == 0 and r < 0.55) and 40 or 5)
      if r < 0.75 then
        for _ = 1, n do t[random_string()] = plain(depth + 1) end
      else
        for i = 1, n do t[i] = plain(depth + 1) end
        if n == 0 and random() < 0.5 then
          return random() < 0.5 and core.empty_array or setmetatable(t, json.array_mt)
        end
        if random() < 0.2 then setmetatable(t, json.array_mt) end
      end
      return t
    end
    -- Metatables of every kind: inert ones (a subscription's) and ones that
    -- change what json.lua sees (a length, members, a hidden list mark).
    local METATABLES = {
      { __name = "cerca.Subscription", __tostring = function() return "sub" end },
      { __index = function() return "x" end },
      { __len = function() return 1 end },
      { __pairs = function(t) return next, t, nil end },
      { __metatable = json.array_mt },
      { __metatable = "locked" },
    }
    local function dress(v, depth)
      if type(v) ~= "table" or v == core.empty_array or depth > 4 then return v end
      for _, item in pairs(v) do dress(item, depth + 1) end
      if getmetatable(v) == nil and random() < 0.3 then setmetatable(v, METATABLES[random(#METATABLES)]) end
      return v
    end
    local accepted = 0
    for i = 1, 30000 do
      local v = (i % 3 == 0) and random_value(0) or plain(0)
      if i % 4 == 0 then v = dress(v, 0) end
      local want, want_err = json.encode_canonical_lua(v)
      local got = core.encode_canonical(v, json.array_mt)
      if got ~= nil then
        accepted = accepted + 1
        assert(want == got, "wrote other bytes than json.lua: " .. tostring(want) .. " / " .. tostring(got))
      end
      -- Declined or not, the public encoder's answer is json.lua's.
      local text, err = json.encode_canonical(v)
      assert.are.equal(want, text)
      assert.are.equal(want_err, err)
    end
    print(("canonical encoder: %d of 30000 values written by the core, the rest by json.lua"):format(accepted))
    assert.is_true(accepted > 18000, accepted .. " accepted")
  end)

  it("the core's text checks and count agree with the Lua rules (30,000 strings)", function()
    local validate = require "cerca.validate"
    math.randomseed(SEED + 5)
    -- Bytes around every boundary of the UTF-8 rules, and controls.
    local EDGES = { 0, 9, 10, 31, 32, 126, 127, 128, 159, 160, 191, 192, 193, 194, 223, 224, 225, 236, 237, 238,
      239, 240, 241, 243, 244, 245, 255, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF }
    local function edgy()
      local t = {}
      for i = 1, random(0, 10) do
        t[i] = string.char(random() < 0.6 and EDGES[random(#EDGES)] or random(0, 255))
      end
      return table.concat(t)
    end
    local function lua_count(s, needle)
      -- (Lua 5.1 finds "" past the end again and again: counted here.)
      if needle == "" then return #s + 1 end
      local n, j = 0, s:find(needle, 1, true)
      while j do
        n = n + 1
        j = s:find(needle, j + 1, true)
      end
      return n
    end
    -- The rule of redact.written_once: the secret written at most once,
    -- each of its "/" as is or as "\/" (each on its own); undecided (false)
    -- past a backslash, a quote or a control byte in it, a secret that
    -- reads as a number, or a \u escape in the text.
    local function lua_written_once(s, secret)
      if secret:find("\\", 1, true) or secret:find('"', 1, true) or secret:find("%c") or tonumber(secret)
        or s:find("\\u", 1, true) then
        return false
      end
      if not secret:find("/", 1, true) then return lua_count(s, secret) <= 1 end
      -- Byte by byte, not a pattern: Lua 5.1's patterns stop at a NUL.
      local function written_at(i)
        for k = 1, #secret do
          local c = secret:sub(k, k)
          if s:sub(i, i) == c then
            i = i + 1
          elseif c == "/" and s:sub(i, i + 1) == "\\/" then
            i = i + 2
          else
            return false
          end
        end
        return true
      end
      local found = 0
      for i = 1, #s do
        if written_at(i) then found = found + 1 end
      end
      return found <= 1
    end
    local function lua_percent(v)
      return (v:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
    end
    for i = 1, 30000 do
      local v = (i % 2 == 0) and edgy() or random_string()
      local allow_tab = i % 3 == 0
      local at, b = validate.control_char(v, allow_tab)
      local kind, got_at, got_b = core.text_problem(v, allow_tab)
      if at then
        assert(kind == "control" and got_at == at and got_b == b,
          ("%q: %s %s"):format(v, tostring(kind), tostring(got_at)))
      elseif not validate.is_utf8(v) then
        assert(kind == "utf8", ("%q: %s"):format(v, tostring(kind)))
      else
        assert(kind == nil, ("%q: %s"):format(v, tostring(kind)))
      end
      assert.are.equal(lua_percent(v), core.percent_encode(v))
      local from = random(1, #v + 1)
      local needle = (i % 5 == 0) and edgy() or v:sub(from, from + random(0, 3) - 1)
      local text = v .. needle .. v .. needle:sub(1, -2) .. needle
      assert.are.equal(lua_count(text, needle), core.count(text, needle), ("%q in %q"):format(needle, text))
      -- The redaction bound: the largest count of either probe, unknown
      -- (nil) when an escape or an empty probe leaves it open.
      local other = (i % 7 == 0) and "" or ((i % 3 == 0) and edgy() or nil)
      local text2 = (i % 11 == 0) and (text .. "\\u00" .. needle) or text
      local want
      if text2:find("\\u", 1, true) or text2:find("%", 1, true) or needle == "" or other == "" then
        want = nil
      else
        want = math.max(lua_count(text2, needle), other and lua_count(text2, other) or 0)
      end
      assert.are.equal(want, core.occurrences(text2, needle, other), ("%q, %q in %q"):format(needle,
        tostring(other), text2))
      -- Whether a JSON text writes a secret once, "/" as is or as "\/".
      local secret = (i % 13 == 0) and "" or needle .. ((i % 4 == 0) and "/x/" or "") .. needle:sub(1, 2)
      -- Each "/" escaped, or only the first (JSON allows either).
      local json_text = (i % 6 == 0) and (text2 .. secret:gsub("/", "\\/"))
        or (i % 6 == 3) and (text2 .. secret .. secret:gsub("/", "\\/", 1)) or text2
      assert.are.equal(lua_written_once(json_text, secret), core.written_once(json_text, secret),
        ("%q in %q"):format(secret, json_text))
      local with_escape = (i % 5 == 0) and json_text .. "\\\\" or (i % 5 == 1) and json_text .. "%" or json_text
      assert.are.equal(lua_written_once(with_escape, secret) and not with_escape:find("%", 1, true)
        and not with_escape:find("\\\\", 1, true), core.in_one_field(with_escape, secret))
      -- Whether a header block holds a secret in any letter case: the
      -- secret put there in random case half of the time.
      local folded = (i % 2 == 0) and needle ~= "" and (text2 .. needle:gsub("%a", function(c)
        return random() < 0.5 and c:upper() or c:lower()
      end) .. text2) or text2
      assert.are.equal(needle == "" or folded:lower():find(needle:lower(), 1, true) ~= nil
        or folded:find("[%%\\]") ~= nil, core.may_hold_folded(folded, needle), ("%q in %q"):format(needle, folded))
      -- Whether a secret may be spelt across a repeated field's values,
      -- joined with ", ".
      local joined = (i % 3 == 0) and (needle .. (i % 2 == 0 and "," or " ") .. text2) or needle
      assert.are.equal(joined:find("[, ]") ~= nil, core.joinable(joined), ("%q"):format(joined))
    end
  end)

  it("the core's list and set checks agree with the Lua rules (40,000 tables)", function()
    math.randomseed(SEED + 6)
    local KEYS = { 1, 2, 3, 4, 0, -1, 1.5, 2 ^ 53, "1", "a", true }
    local VALUES = { "s", "", 1, false, {} }
    -- The rule as the Lua code wrote it: the first entry in pairs order
    -- whose key is no index of the list, or whose value has another type.
    local function lua_problem(t, want)
      local n = #t
      for k, v in pairs(t) do
        if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return "key", k end
        if want and type(v) ~= want then return "value", k end
      end
    end
    local lists = 0
    for i = 1, 20000 do
      local t = {}
      if i % 2 == 0 then
        for j = 1, random(0, 5) do t[j] = VALUES[random(#VALUES)] end
      end
      for _ = 1, random(0, 2) do t[KEYS[random(#KEYS)]] = VALUES[random(#VALUES)] end
      local want = (i % 3 == 0) and "string" or nil
      local kind, key = core.list_problem(t, want)
      local lua_kind, lua_key = lua_problem(t, want)
      assert(kind == lua_kind and key == lua_key, ("%s %s, Lua: %s %s"):format(tostring(kind), tostring(key),
        tostring(lua_kind), tostring(lua_key)))
      if kind == nil then lists = lists + 1 end
    end
    assert.is_true(lists > 2000 and lists < 18000, lists .. " lists")

    -- The first item outside a set, or repeated, and where it first stood.
    local ALLOWED = { a = true, b = true, c = true, [1] = true }
    local ITEMS = { "a", "b", "c", "d", 1, 2, true, "A" }
    local function lua_set_problem(list)
      local seen = {}
      for i = 1, #list do
        local v = list[i]
        if not ALLOWED[v] or seen[v] then return i, seen[v] end
        seen[v] = i
      end
    end
    local clean = 0
    for _ = 1, 20000 do
      local list = {}
      for j = 1, random(0, 6) do list[j] = ITEMS[random(random() < 0.8 and 3 or #ITEMS)] end
      local i, j = core.set_problem(list, ALLOWED)
      local li, lj = lua_set_problem(list)
      assert(i == li and j == lj, ("%s %s, Lua: %s %s"):format(tostring(i), tostring(j), tostring(li), tostring(lj)))
      if i == nil then clean = clean + 1 end
    end
    assert.is_true(clean > 2000 and clean < 18000, clean .. " without a problem")
  end)

  it("the retry headers never raise and give a sane wait (20,000 header sets)", function()
    math.randomseed(SEED + 1)
    local DATEISH = "0123456789 :,-GMTSunJulNov" .. "abc.+e"
    for _ = 1, 20000 do
      local headers = {
        ["retry-after"] = random() < 0.5 and random_bytes(random(0, 40), DATEISH) or random_string(),
        ["retry-after-ms"] = random() < 0.3 and random_bytes(random(0, 8), "0123456789.-e ") or nil,
        ["x-should-retry"] = random() < 0.2 and random_string() or nil,
      }
      local ok, wait = pcall(retry.server_delay, headers, 1784454000)
      assert(ok, wait)
      assert.is_true(wait == nil or (wait >= 0 and wait < 1e12 and wait == wait))
      local ok2, value, failure = pcall(outcome.classify, { status = random(0, 600), headers = headers, body = "" },
        1024)
      assert(ok2, value)
      assert.is_nil(value) -- no JSON: never a response
      assert.is_boolean(failure.retryable)
    end
  end)

  it("redaction never raises and never lets the key through (20,000 lines)", function()
    math.randomseed(SEED + 2)
    for _ = 1, 20000 do
      local key = "sk_" .. random_bytes(random(1, 12), "abcXYZ019_-")
      local line = random_string() .. key .. random_string()
      local ok, out = pcall(log.redact, line, key)
      assert(ok, out)
      assert.is_nil(out:find(key, 1, true))
    end
  end)

  it("a request path passes exactly when its documented rule says so (50,000 paths)", function()
    -- The rule, written plainly: a leading "/", then RFC 3986 pchar, "/"
    -- and "?" only, each "%" with two hex digits, no "%C0" or "%C1", and
    -- no segment before the "?" that is "." or ".." (before any ";") once
    -- each "%2E" is read as a dot, each "%2F" or "%5C" as a "/", and each
    -- "%3B", "%3F", "%23" or "%00" as a ";".
    local function passes(path)
      if path:sub(1, 1) ~= "/" then return false end
      if path:find("[^%w%-%._~!%$&'%(%)%*%+,;=:@/%?%%]") then return false end
      for i in path:gmatch("()%%") do
        if not path:find("^%x%x", i + 1) then return false end
      end
      if path:find("%%[cC][01]") then return false end
      local before_query = path:match("^[^?]*"):gsub("%%2[fF]", "/"):gsub("%%5[cC]", "/")
        :gsub("%%3[bBfF]", ";"):gsub("%%23", ";"):gsub("%%00", ";")
      for segment in (before_query:gsub("%%2[eE]", ".") .. "/"):gmatch("/([^/]*)") do
        local name = segment:match("^[^;]*")
        if name == "." or name == ".." then return false end
      end
      return true
    end
    local validate = require "cerca.validate"
    local PATHISH = "/..%%2eEfF5cC013bB;?a@#: \r\n\0\128Z9"
    math.randomseed(SEED + 4)
    for _ = 1, 50000 do
      local path = (random() < 0.8 and "/" or "") .. random_bytes(random(0, 12), PATHISH)
      local bad = validate.request_path(path, "path")
      assert(passes(path) == (bad == nil), ("%q: %s"):format(path, bad and bad.message or "passed"))
    end
  end)

  it("redaction looks for a shape only where it can be, and removes what trying it everywhere removes "
    .. "(20,000 texts)", function()
    local redact = require "cerca.redact"
    -- Pieces of every shape, in every case and spacing, cut and whole.
    local pieces = { "Authorization:", "AUTHORIZATION: ", "aUtHoRiZaTiOn:\t", "authorizatio", "n:", "N:", "on",
      '"secret"', '"secret" : "', '"secret":"', '"secre', 't":"', "whsec_", "whsec", "_", "abc", "/+=", "%2F",
      "\\", '\\"', "\\u0041", " ", "\r\n", ";", "...", "sk_test_cerca", "sk_t", "\0", "\195\169" }
    local secrets = redact.list("sk_test_cerca")
    math.randomseed(SEED + 5)
    for n = 1, 20000 do
      local parts = {}
      for i = 1, random(0, 8) do parts[i] = pieces[random(#pieces)] end
      local text = table.concat(parts)
      local with = random() < 0.5 and secrets or nil
      local whole = random() < 0.5
      local want = redact.text_every_shape(text, with, whole)
      assert(redact.text(text, with, whole) == want, ("text %d: %q: %q, not %q"):format(n, text,
        redact.text(text, with, whole), want))
    end
  end)

  it("a fleets file holds the API key exactly where redacting it changes the text (20,000 files)", function()
    local cerca = require "cerca"
    -- The rule, written plainly: the whole file first, then id by id; an id
    -- holds the key when it is there as is, or when removing the key (in
    -- any form it may be written in, or its start where the text is cut)
    -- changes what redaction leaves.
    local function holds(text, key, other)
      return text:find(key, 1, true) ~= nil or (other ~= nil and text:find(other, 1, true) ~= nil)
        or cerca.redact(text, key, other) ~= cerca.redact(text)
    end
    local function by_rule(fleets, key, other)
      if not holds(table.concat(fleets, "\n"), key, other) then return nil end
      for i, fleet in ipairs(fleets) do
        if holds(fleet, key, other) then return i end
      end
      return nil
    end
    local KEYS = { "sk_test_cerca", "sk_live_a/b\\c%d", "k3y.with...dots" }
    math.randomseed(SEED + 4)
    for n = 1, 20000 do
      local key = KEYS[random(#KEYS)]
      local other = random() < 0.2 and "sk_second_key" or nil
      -- Pieces of the key and of the ways a text may write it.
      local pieces = { key, other or "ab", key:sub(1, random(2, #key)), key:sub(random(2, #key)), "%", "%73",
        "%2F", "\\u0073", "\\/", "\\\\", "...", "a", "_", "whsec_x", "Authorization: ", "\"secret\":\"" }
      local fleets = {}
      for i = 1, random(1, 4) do
        local parts = {}
        for j = 1, random(1, 4) do parts[j] = pieces[random(#pieces)] end
        fleets[i] = table.concat(parts)
      end
      local env = function(name) return name == "CERCA_API_KEY" and key or nil end
      cli_args.key_read = other
      local err = cli_args.key_in_fleets(fleets, "fleets.txt", env)
      cli_args.key_read = nil
      local want = by_rule(fleets, key, other)
      if want then
        assert(err and err.message:find("fleet id number " .. want .. " holds the API key", 1, true),
          ("file %d: id %d holds the key, but the check said %s"):format(n, want, err and err.message or "nothing"))
      else
        assert(err == nil, ("file %d holds no key, but the check said %s"):format(n, tostring(err and err.message)))
      end
    end
  end)

  it("a fleets file's ids are those its documented rule gives (20,000 texts)", function()
    -- The rule, written plainly: lines trimmed of %s, empty ones and #
    -- comments skipped, each id once, in order.
    local function by_rule(text)
      local ids, seen = {}, {}
      for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        local id = line:match("^%s*(.-)%s*$")
        if id ~= "" and id:sub(1, 1) ~= "#" and not seen[id] then
          seen[id] = true
          ids[#ids + 1] = id
        end
      end
      return ids
    end
    local LINEISH = "ab#_ \t\r\n\n\v\f\0\1\127\195\169"
    math.randomseed(SEED + 3)
    for _ = 1, 20000 do
      local text = random_bytes(random(0, 40), LINEISH)
      local ok, ids = pcall(cli_args.fleet_lines, text)
      assert(ok, ids)
      assert.are.same(by_rule(text), ids)
    end
  end)
end)
