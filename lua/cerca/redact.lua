--- Redaction: the one place that removes secrets from what leaves cerca.
--
-- Two kinds of secret are removed:
--
-- * **known values** (the client's API key, a subscription's secret): every
--   occurrence, whole, however the text writes it: as is, JSON-escaped
--   (`\/`, `\\`, `\"`, `\t`, `\u00XX`), or percent-encoded (`%2F`), in any mix;
-- * **recognisable shapes**, for secrets cerca does not hold: the value of an
--   `Authorization:` header, `"secret": "..."` in JSON, and `whsec_` tokens,
--   each removed to the end of the value (a `\/` or a `;` inside it does
--   not stop the match).
--
-- `text` is for text that people read (log lines, messages); `value` walks
-- a decoded answer and removes known values, whole, from its strings (a
-- decoded string is never cut short: a start of a secret at its end is
-- the server's own text).
-- @module cerca.redact

local type = type
local pairs = pairs
local byte = string.byte
local find = string.find
local sub = string.sub
local gmatch = string.gmatch
local match = string.match
local gsub = string.gsub
local lower = string.lower
local char = string.char
local floor = math.floor
local tonumber = tonumber
local concat = table.concat
local sort = table.sort
local format = string.format
local setmetatable = setmetatable

local core = require "cerca.core"

local _M = {}

_M.REDACTED = "[redacted]"
local REDACTED = _M.REDACTED

local BACKSLASH, PERCENT, LOWER_U = 92, 37, 117

-- The byte each two-byte JSON escape writes (`\"`, `\/`, `\\`, `\b`,
-- `\f`, `\n`, `\r`, `\t`).
local SHORT_ESCAPE = { [34] = 34, [47] = 47, [92] = 92, [98] = 8, [102] = 12, [110] = 10, [114] = 13, [116] = 9 }
local DOT = 46

-- A text cut short (an answer at max_response_size, a long value quoted
-- in a message) may end inside a secret: what made it is hidden too, from
-- this many bytes of the secret.
local MIN_PART = 4

-- The UTF-8 bytes of code point cp.
local function utf8_of(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40, 0x80 + floor(cp / 0x40) % 0x40,
    0x80 + cp % 0x40)
end

-- Length of `secret` written at position i of `text`, each of its bytes as
-- is, as a JSON escape or percent-encoded; or, unless `whole`, of the first
-- MIN_PART bytes or more of it where the text ends or "..." cuts it; nil
-- when it is not there.
--
-- Where the text can be read two ways (a `\` or `%` that the secret holds
-- too, as an escape or as is; a "..." that cuts it or its own dots), the
-- first reading is followed and the other kept on a list of places to try
-- after it, in the order a recursive search would try them. A list, not
-- recursion: a text of 100,000 such places must not overflow the C stack.
-- Each place (j, k) is tried once: the tries cannot grow exponentially.
-- Each byte compared spends one step of `budget.left`: spent, the search
-- gives up (false).
local function match_at(text, i, secret, whole, budget)
  local m = #secret
  local j, k = i, 1
  -- Places still to try: j, k pairs; a k of 0 stands for "a match cut
  -- at j" (the reading where "..." cut the secret).
  local pending, top, tried = nil, 0, nil
  local left = budget.left
  while true do
    local len
    while true do
      left = left - 1
      if left < 0 then
        budget.left = 0
        return false
      end
      if k > m then
        len = j - i
        break
      end
      local c, t = byte(secret, k), byte(text, j)
      if t == nil then
        if k > MIN_PART and not whole then len = j - i end
        break
      elseif t == DOT and k > MIN_PART and not whole and sub(text, j, j + 2) == "..." then
        -- Cut there (as `validate.describe` cuts), unless the secret goes
        -- on with these dots: that reading first, the cut after it.
        if c ~= DOT then
          len = j - i
          break
        end
        pending, top = pending or {}, top + 2
        pending[top - 1], pending[top] = j, 0
      end
      -- The text's byte may start an escape: its reading as one is tried
      -- first; where the secret holds that byte too (a `\` or a `%` of its
      -- own), the byte as is after.
      local escape, kn = nil, k + 1
      if t == BACKSLASH then
        local n = byte(text, j + 1)
        if SHORT_ESCAPE[n] == c then
          escape = 2
        elseif n == LOWER_U and find(text, "^%x%x%x%x", j + 2) then
          -- A \u escape writes a character: its UTF-8 bytes in the secret
          -- (a pair of them one beyond U+FFFF), or one byte of the same value.
          local cp, ulen = tonumber(sub(text, j + 2, j + 5), 16), 6
          if cp >= 0xD800 and cp <= 0xDBFF and find(text, "^\\u[dD][c-fC-F]%x%x", j + 6) then
            cp, ulen = 0x10000 + (cp - 0xD800) * 0x400 + (tonumber(sub(text, j + 8, j + 11), 16) - 0xDC00), 12
          end
          local u = utf8_of(cp)
          if sub(secret, k, k + #u - 1) == u then
            escape, kn = ulen, k + #u
          elseif cp == c then
            escape = ulen
          end
        end
      elseif t == PERCENT and find(text, "^%x%x", j + 1) and tonumber(sub(text, j + 1, j + 2), 16) == c then
        escape = 3
      end
      if escape and t == c then
        -- Both readings may go on: the plain one is kept for later.
        tried = tried or {}
        local plain = (j + 1) * (m + 2) + k + 1
        if not tried[plain] then
          tried[plain] = true
          pending, top = pending or {}, top + 2
          pending[top - 1], pending[top] = j + 1, k + 1
        end
        local at = (j + escape) * (m + 2) + kn
        if tried[at] then break end
        tried[at] = true
        j, k = j + escape, kn
      elseif escape then
        j, k = j + escape, kn
      elseif t == c then
        j, k = j + 1, k + 1
      else
        break
      end
    end
    if len then
      budget.left = left
      return len
    end
    if top == 0 then
      budget.left = left
      return nil
    end
    j, k, top = pending[top - 1], pending[top], top - 2
    if k == 0 then
      budget.left = left
      return j - i
    end
  end
end

-- The steps a search for one secret in a text may take: linear in their
-- lengths. A text searched byte by byte from every place (a secret of one
-- repeated byte, a text of that byte and escapes) would take their
-- product: seconds to hours for an answer a hostile server builds for it.
-- Past the budget the whole text is hidden, which is never less safe.
local function search_budget(s, secret)
  return { left = 8 * (#s + #secret) + 4096 }
end

-- Adds the span of each start of `secret` (MIN_PART bytes or more of it,
-- as is) where `s` is cut: where it ends, or where "..." follows (as
-- `validate.describe` cuts a long value).
local function cut_spans(s, secret, spans, budget)
  local head = sub(secret, 1, MIN_PART)
  if #head < MIN_PART then return end
  budget = budget or search_budget(s, secret)
  local n = #s
  local i = find(s, head, 1, true)
  while i do
    -- The longest start of the secret written here that the text's end or
    -- a "..." cuts (dots may be the secret's own: each place is a cut).
    local k, cut = MIN_PART, nil
    while k < #secret do
      budget.left = budget.left - 1
      if budget.left < 0 then
        -- Spent: the whole text is hidden.
        spans[#spans + 1] = { 1, n }
        return
      end
      local after = i + k
      if after > n then
        cut = k
        break
      end
      if sub(s, after, after + 2) == "..." then cut = k end
      if byte(s, after) ~= byte(secret, k + 1) then break end
      k = k + 1
    end
    if cut then spans[#spans + 1] = { i, i + cut - 1 } end
    i = find(s, head, i + 1, true)
  end
end

-- Adds to `spans` the {from, to} of every place `secret` is written in `s`,
-- and, unless `whole`, of its start where `s` is cut short.
local function secret_spans(s, secret, spans, whole)
  local first = byte(secret, 1)
  local budget = search_budget(s, secret)
  if not find(s, "\\", 1, true) and not find(s, "%", 1, true) then
    -- Plain text holds no escape: a plain search finds every occurrence.
    local i, j = find(s, secret, 1, true)
    while i do
      spans[#spans + 1] = { i, j }
      i, j = find(s, secret, j + 1, true)
    end
    if not whole then cut_spans(s, secret, spans, budget) end
    return
  end
  -- Only where the text holds the secret's first byte or an escape can
  -- it start: jump from one such place to the next.
  local starts = "[" .. gsub(char(first), "%W", "%%%0") .. "\\%%]"
  local i = find(s, starts)
  while i do
    local len = match_at(s, i, secret, whole, budget)
    if len == false then
      -- Spent: the whole text is hidden.
      spans[#spans + 1] = { 1, #s }
      return
    end
    if len then
      spans[#spans + 1] = { i, i + len - 1 }
      i = find(s, starts, i + len)
    else
      i = find(s, starts, i + 1)
    end
  end
end

-- Adds the span of each value matched by `pattern` (whose two position
-- captures bound the value).
local function pattern_spans(s, pattern, spans)
  for from, to in s:gmatch(pattern) do
    if to > from then spans[#spans + 1] = { from, to - 1 } end
  end
end

-- Adds the span of each JSON "secret" string value, to its closing quote
-- (escapes skipped) or to the end of a text cut off inside it.
local function json_secret_spans(s, spans)
  local _, j = find(s, '"secret"%s*:%s*"')
  while j do
    local k = j + 1
    while true do
      local q = find(s, '["\\]', k)
      if not q then k = #s + 1 break end
      if byte(s, q) == BACKSLASH then k = q + 2 else k = q break end
    end
    if k > j + 1 then spans[#spans + 1] = { j + 1, k - 1 } end
    _, j = find(s, '"secret"%s*:%s*"', k)
  end
end

-- Bytes a whsec_ secret may hold in any of its written forms (base64,
-- base64url, JSON escapes, percent-encoding).
local TOKEN_BYTES = "[%w%+/=_%-\\%%%.]"
local WHSEC = "whsec_()" .. TOKEN_BYTES .. "+()"
local AUTHORIZATION = "[Aa][Uu][Tt][Hh][Oo][Rr][Ii][Zz][Aa][Tt][Ii][Oo][Nn]:[ \t]*()[^\r\n;]*()"

-- `s` with every span hidden; spans that overlap or touch are hidden as one.
local function hide(s, spans)
  if #spans == 0 then return s end
  sort(spans, function(a, b) return a[1] < b[1] end)
  local out, pos = {}, 1
  local from, to = spans[1][1], spans[1][2]
  for i = 2, #spans + 1 do
    local span = spans[i]
    if span and span[1] <= to + 1 then
      if span[2] > to then to = span[2] end
    else
      out[#out + 1] = sub(s, pos, from - 1)
      out[#out + 1] = REDACTED
      pos = to + 1
      if span then from, to = span[1], span[2] end
    end
  end
  out[#out + 1] = sub(s, pos)
  return concat(out)
end

-- The spans of every known secret in `s` (`whole`: see secret_spans).
local function known_spans(s, secrets, whole)
  local spans = {}
  for i = 1, #secrets do secret_spans(s, secrets[i], spans, whole) end
  return spans
end

-- The spans `text` hides. Each shape is looked for only where a plain
-- search (done in C) finds what it must hold, unless `every`: most texts
-- hold none, and a pattern tried at every byte of a long text costs
-- milliseconds.
local function text_spans(s, secrets, whole, every)
  local spans = secrets and known_spans(s, secrets, whole) or {}
  if every or find(s, '"secret"', 1, true) then json_secret_spans(s, spans) end
  if every or find(s, "whsec_", 1, true) then pattern_spans(s, WHSEC, spans) end
  if every or find(s, "n:", 1, true) or find(s, "N:", 1, true) then pattern_spans(s, AUTHORIZATION, spans) end
  return spans
end

--- Removes known secrets and recognisable ones from a text. Every place to
-- hide is found in the original text first, then overlapping places are
-- hidden as one: no match can cut another short.
-- @tparam string s the text
-- @tparam[opt] table secrets known secret values (`list`)
-- @tparam[opt] boolean whole the text is never cut short (a request id):
--   a start of a known secret at its end is its own text
-- @treturn string
function _M.text(s, secrets, whole)
  return hide(s, text_spans(s, secrets, whole, false))
end

--- `text` with every shape looked for in every text: the reference that
-- `text`'s plain searches are checked against.
function _M.text_every_shape(s, secrets, whole)
  return hide(s, text_spans(s, secrets, whole, true))
end

-- The longest run of a secret without the bytes JSON may write another
-- way (/, \, ", control bytes): text that lacks that run, and holds no \u or % escape,
-- cannot hold the secret in any form. Plain searches, done in C: the
-- common case (an answer that does not echo a secret) costs little.
local function probe(secret)
  -- The text before the first such byte is usually long enough (secrets
  -- and keys are mostly letters and digits).
  local head = match(secret, '^[^/\\"%c]*')
  if #head >= 16 or #head == #secret then return head end
  local best = head
  for run in gmatch(secret, '[^/\\"%c]+') do
    if #run > #best then best = run end
  end
  return best
end

-- How many times the probes of `secrets` occur in `s` at most (a bound on
-- how often a secret is written there); nil when escapes make it unknown
-- (a `\u` or `%` in `s`, or an empty probe). Counted in C; a list holds two
-- secrets at most.
local occurrences_of = core.occurrences
local function occurrences(s, secrets)
  local probes = secrets.probes
  return occurrences_of(s, probes[1], probes[2])
end

--- False only when `s` cannot hold `secret`: it is not there as is, and
-- `s` has no escape (`\`, `%`) that could write it another way. For raw
-- text that rarely holds either (a header block).
function _M.maybe_in(s, secret)
  return occurrences_of(s, secret, "\\") ~= 0
end

--- `text(s, secrets, whole)`, escaped for printing (`cerca.printable`).
-- Escaping writes bytes as text (ESC as `\x1b`): a secret that holds such
-- text may be spelt by it, so the escaped text is searched again.
-- Escaping it again changes nothing.
function _M.printed(s, secrets, whole)
  local clean = _M.text(s, secrets, whole)
  local shown = core.printable(clean)
  if shown ~= clean then shown = _M.text(shown, secrets, whole) end
  return shown
end

--- True when `secret` holds a comma or a space: the values of a repeated
-- header field, joined with ", ", may then spell it where no one of them
-- does. (A list of secrets says it in its `joinable`.)
-- @function joinable
_M.joinable = core.joinable
local joinable = _M.joinable

--- True when none of `secrets` can be written in `s`, in any form.
function _M.absent(s, secrets)
  local probes = secrets.probes
  return occurrences_of(s, probes[1], probes[2]) == 0
end

--- Removes known secrets from the text of a raw answer (kept for the user:
-- nothing else is changed). `whole`: the text is never cut short (a
-- header block, a header's value), so a start of a secret at its end, or
-- before "...", is its own text.
function _M.known(s, secrets, whole)
  if occurrences(s, secrets) == 0 then
    if whole then return s end
    -- Not there whole: only the start of one, where a cut text ends.
    local spans = {}
    for i = 1, #secrets do cut_spans(s, secrets[i], spans) end
    return hide(s, spans)
  end
  return hide(s, known_spans(s, secrets, whole))
end

--- True when the raw JSON text `s` writes `secret` at most once (in the
-- field that holds it): then no other decoded string can hold it. JSON
-- may write each "/" of a base64 secret as is or as "\/", each on its own:
-- every such form is counted; a \u escape leaves it undecided (false).
-- Counted in C (`random_input_spec` holds it to the rule written in Lua).
_M.written_once = core.written_once

--- True when the raw JSON answer `s` can hold `secret` in one field only
-- (the one that holds it): the text writes it once (`written_once`: the
-- secret holds no byte JSON may write two ways, such as a TAB, and does
-- not read as a number), and holds neither a `%` (a percent-encoded
-- secret) nor an escaped backslash (a secret escaped as text, which
-- decodes to `\/` or `\u00XX`). When false, the decoded answer is walked
-- (`value`). One call into C (`random_input_spec` holds it to this rule).
-- @function in_one_field
_M.in_one_field = core.in_one_field

-- Moves each field of `t` named k to the name renamed[k]; where that name
-- is taken (a field the server named "[redacted]" itself, or another
-- renamed one), to the first free "name#2", "name#3", ...: no field is lost.
local function rename(t, renamed)
  local moved = {}
  for k in pairs(renamed) do
    moved[k] = t[k]
    t[k] = nil
  end
  -- The next suffix to try for each name: each is tried once, however
  -- many fields a hostile answer names after a secret.
  local next_of = {}
  for k, hidden in pairs(renamed) do
    local n = next_of[hidden] or 1
    local name = n == 1 and hidden or hidden .. "#" .. n
    while t[name] ~= nil do
      n = n + 1
      name = hidden .. "#" .. n
    end
    next_of[hidden] = n + 1
    t[name] = moved[k]
  end
end

-- Whether `s` may write one of `secrets`: its probe is there as is, or an
-- escape (`\`, `%`) could write it another way.
local function may_hold(s, secrets)
  if find(s, "[\\%%]") then return true end
  local probes = secrets.probes
  for i = 1, #probes do
    if probes[i] == "" or find(s, probes[i], 1, true) then return true end
  end
  return false
end

-- The secrets of a list in lower case (for header names).
local function lowered_list(secrets)
  local out = {}
  for i = 1, #secrets do out[i] = lower(secrets[i]) end
  return out
end

local SHORT_BYTE = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

-- `s` with its escapes read, JSON's and percent-encoding's, until none is
-- left to read (an escape may write another: `%5Cu0053`), three rounds
-- at most.
local function unescaped(s)
  for _ = 1, 3 do
    local before = s
    s = gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end)
    s = gsub(s, "\\u([dD][89abAB]%x%x)\\u([dD][c-fC-F]%x%x)", function(hi, lo)
      return utf8_of(0x10000 + (tonumber(hi, 16) - 0xD800) * 0x400 + (tonumber(lo, 16) - 0xDC00))
    end)
    s = gsub(s, "\\u(%x%x%x%x)", function(h) return utf8_of(tonumber(h, 16)) end)
    s = gsub(s, "\\([bfnrt\\/\"])", function(e) return SHORT_BYTE[e] or e end)
    if s == before then break end
  end
  return s
end

--- Removes known secrets from the string values of a flat table (headers:
-- raw text, where a secret may be written as is, JSON-escaped or
-- percent-encoded), in place; and from its names, which arrive lower-cased
-- (a server may name a header after a secret).
function _M.fields(t, secrets)
  for k, v in pairs(t) do
    if type(v) == "string" and may_hold(v, secrets) then
      -- A header value is whole: a start of a secret at its end is its own.
      t[k] = hide(v, known_spans(v, secrets, true))
    end
  end
  -- Names arrive lower-cased: they are searched for the secrets lower-cased
  -- too, in every form (a name is whole, never cut).
  local renamed, lowered
  for k in pairs(t) do
    if type(k) == "string" then
      lowered = lowered or lowered_list(secrets)
      local hidden = hide(k, known_spans(k, secrets, true))
      hidden = hide(hidden, known_spans(hidden, lowered, true))
      -- What is left may still spell one once its escapes are read (a
      -- letter escaped keeps its case, `%53`): then the whole name goes.
      local read = lower(unescaped(hidden))
      for i = 1, #lowered do
        if find(read, lowered[i], 1, true) then hidden = REDACTED end
      end
      if hidden ~= k then
        renamed = renamed or {}
        renamed[k] = hidden
      end
    end
  end
  if renamed then rename(t, renamed) end
  return t
end

-- Decoded values nest no deeper than the decoder accepts: the walk reaches
-- every string of them.
local MAX_DEPTH = core.MAX_DECODE_DEPTH

local function value(v, secrets, depth)
  if type(v) == "number" then
    -- A secret made of digits, echoed as a number.
    local numbers = secrets.numbers
    if numbers and (v == numbers[1] or v == numbers[2]) then return REDACTED end
    return v
  end
  if type(v) == "string" then
    -- A decoded string holds no JSON escape of its own, but may hold a
    -- secret percent-encoded (a URL's query) or escaped as text. It is
    -- whole, never cut: a start of a secret at its end is its own text.
    if may_hold(v, secrets) then return hide(v, known_spans(v, secrets, true)) end
    return v
  end
  if type(v) ~= "table" or depth > MAX_DEPTH then return v end
  local renamed
  for k, item in pairs(v) do
    local kind = type(item)
    if kind == "string" or kind == "table" or (kind == "number" and secrets.numbers) then
      local clean = value(item, secrets, depth + 1)
      if clean ~= item then v[k] = clean end
    end
    -- A name may hold a secret too: renamed once the walk is over.
    if type(k) == "string" then
      local hidden = value(k, secrets, depth + 1)
      if hidden ~= k then
        renamed = renamed or {}
        renamed[k] = hidden
      end
    end
  end
  if renamed then rename(v, renamed) end
  return v
end

--- Removes known secrets from every string of a decoded value, names
-- included, in place, in every form `text` finds them in.
-- @return the value
function _M.value(v, secrets)
  return value(v, secrets, 0)
end

-- A list of secrets, and its probes (runs of them), are printed as this
-- says, never as what they hold: `cerca.pretty` and `tostring` of any
-- table reachable from a client show no key.
local SECRETS = {
  __name = "cerca.Secrets",
  __tostring = function(t) return format("cerca.Secrets (%d, not shown)", #t) end,
  -- Nor written as JSON: `cerca.encode_json` refuses it (cerca.json).
  __secrets = true,
}

-- A call's header lines hold the API key (its `Authorization` line): they
-- print and encode as a list of secrets does, never as what they hold.
-- The C core reads them raw.
local HEADER_LINES = {
  __name = "cerca.HeaderLines",
  __tostring = function(t) return format("cerca.HeaderLines (%d, not shown)", #t) end,
  __secrets = true,
}

--- `lines` (a list of header lines, one of them the API key's), marked to
-- print as `cerca.HeaderLines (n, not shown)`. Returns `lines`.
function _M.sealed_lines(lines)
  return setmetatable(lines, HEADER_LINES)
end


--- A list of known secrets, exactly as given: the non-empty strings among
-- `a` and `b`, longest first (a secret that holds another is removed
-- whole), with what finds them fast (`probes`, `numbers`) and whether a
-- joined header may spell one (`joinable`). For a caller who names the
-- text to remove (`cerca.redact`), however short; cerca's own lists of
-- secrets are made by `list`.
function _M.exact_list(a, b)
  local out
  if type(a) ~= "string" or a == "" then a, b = b, nil end
  if type(b) ~= "string" or b == "" then b = nil end
  if not a or a == "" then
    out = {}
  elseif b then
    out = #a >= #b and { a, b } or { b, a }
  else
    out = { a }
  end
  local probes = {}
  out.joinable = false
  for i = 1, #out do
    probes[i] = probe(out[i])
    out.joinable = out.joinable or joinable(out[i])
    -- A secret that reads as a number, as the decoder reads one.
    local n = tonumber(out[i])
    if n then
      out.numbers = out.numbers or {}
      out.numbers[#out.numbers + 1] = n
    end
  end
  out.probes = setmetatable(probes, SECRETS)
  return setmetatable(out, SECRETS)
end

-- A secret shorter than this is no credential (an API key, a webhook
-- secret: 24 bytes and more), and removing it from every text would
-- garble them: "h" from every id and URL, "ab" from a field's name (the
-- answer's `enabled` lost). It is not searched for.
_M.MIN_SECRET = 8
local MIN_SECRET = _M.MIN_SECRET

local function searchable(s)
  return type(s) == "string" and #s >= MIN_SECRET and s or nil
end

--- The list of secrets cerca searches for (the API key, an answer's
-- secret): `exact_list` of those of `a` and `b` that are `MIN_SECRET`
-- bytes or longer.
function _M.list(a, b)
  return _M.exact_list(searchable(a), searchable(b))
end

return _M
