--- Webhook subscriptions: `POST /fleets/{fleetId}/webhooks`.
--
-- This module owns what the contract says about the resource: the event
-- names, the rules for the parameters, the shape of the body and of the
-- answer. Sending is the client's job (`cerca.client`).
-- @module cerca.webhooks

local core = require "cerca.core"
local errors = require "cerca.errors"
local json = require "cerca.json"
local redact = require "cerca.redact"
local outcome = require "cerca.outcome"
local validate = require "cerca.validate"
local pretty = require "cerca.pretty"

local type = type
local pairs = pairs
local ipairs = ipairs
local format = string.format
local concat = table.concat
local strsub = string.sub
local match = string.match
local find = string.find
local byte = string.byte
local setmetatable = setmetatable
local rawget = rawget
local pcall = pcall
local tostring = tostring
local min = math.min

local _M = {}

-- For `errors.scrub` where no secret is known: it still removes `whsec_` tokens.
local NO_SECRETS = redact.list()

--- The 19 event names a subscription may list, in the contract's order.
_M.EVENTS = {
  "agent.created", "agent.updated", "agent.deleted",
  "thread.created", "thread.status.changed", "thread.completed", "thread.failed",
  "turn.created", "turn.completed", "turn.failed",
  "message.created",
  "approval.requested", "approval.resolved", "approval.granted",
  "schedule.created", "schedule.deleted", "schedule.triggered",
  "connection.attached", "connection.detached",
}

-- Reserved by the API for its test endpoint; never subscribable.
local TEST_EVENT = "webhook.test"

local KNOWN_EVENT = {}
for _, name in ipairs(_M.EVENTS) do KNOWN_EVENT[name] = true end

local PARAM_KEYS = { "url", "events", "extra_body" }

-- Longest values accepted: far beyond any real one, short enough that a
-- value passed through from a request cannot cost real time to check.
_M.MAX_FLEET_ID_BYTES = 1024
_M.MAX_URL_BYTES = 8192
local MAX_EVENT_NAME_BYTES = 64

--- A subscription's fields, in the order they are shown, each with the Lua
-- type every create answer must give it (other fields are kept as they come).
_M.FIELDS = {
  { "id", "string" }, { "fleetId", "string" }, { "url", "string" },
  { "events", "table" }, { "enabled", "boolean" }, { "createdAt", "string" },
  { "updatedAt", "string" }, { "secret", "string" },
}
local FIELDS = _M.FIELDS

local function invalid(field, message)
  return errors.new("invalid_request", message, { field = field })
end

-- The error for events[i]: not a string, reserved, unknown or repeated.
local function event_error(i, name, first_at)
  local field = format("params.events[%d]", i)
  if type(name) ~= "string" then
    return invalid(field, format("%s must be an event name string (got %s)", field, validate.describe(name)))
  end
  if name == TEST_EVENT then
    return invalid(field, format("%s: %q is reserved for the test endpoint and cannot be subscribed to; "
      .. "remove it", field, TEST_EVENT))
  end
  if first_at then
    return invalid(field, format("%s: %q is already listed at params.events[%d]; list each event once",
      field, name, first_at))
  end
  if #name > MAX_EVENT_NAME_BYTES then
    return invalid(field, format("%s is %d bytes long, which no event name is; "
      .. "see cerca.webhooks.EVENTS for the 19 names", field, #name))
  end
  -- Several names in one string (commas or spaces between them, each
  -- known): the list meant, item by item.
  local parts = {}
  for part in name:gmatch("[^,%s]+") do
    if not KNOWN_EVENT[part] then parts = nil break end
    parts[#parts + 1] = format("%q", part)
  end
  if parts and #parts > 1 then
    return invalid(field, format("%s: unknown event %s; give each event its own item: { %s }", field,
      validate.describe(name), concat(parts, ", ")))
  end
  local guess = validate.suggest(name, _M.EVENTS)
  return invalid(field, format("%s: unknown event %s; %s", field, validate.describe(name),
    guess and format("did you mean %q?", guess) or "see cerca.webhooks.EVENTS for the 19 names"))
end

-- nil, or what makes a table no list of (given) values: "key" or "value",
-- and the key. Walked in C, in `pairs` order.
local list_problem = core.list_problem
-- nil, or the index of the first { name, type } of a list whose field in a
-- table has another type.
local field_problem = core.field_problem
-- nil, or the index of a list's first item that is no key of a set or that
-- repeats one before it, and the index of that one.
local set_problem = core.set_problem

local function check_events(events)
  if events == nil then return nil end
  if type(events) ~= "table" then
    return invalid("params.events", format("params.events must be a list of event names (got %s); "
      .. "e.g. { \"agent.created\" }, or omit it for all non-test events", validate.describe(events)))
  end
  local _, k = list_problem(events)
  if k ~= nil then
    return invalid("params.events", format("params.events must be a list, not a map (found key %s); "
      .. "e.g. { \"agent.created\" }, or omit it for all non-test events", validate.describe(k)))
  end
  -- The first name not in KNOWN_EVENT (which holds strings only, never
  -- webhook.test) or given twice, and where it was first given.
  local bad, first_at = set_problem(events, KNOWN_EVENT)
  if bad then return event_error(bad, events[bad], first_at) end
end

local function check_extra_body(extra)
  if extra == nil then return nil end
  if type(extra) ~= "table" then
    return invalid("params.extra_body", format("params.extra_body must be a table of extra body fields (got %s)",
      validate.describe(extra)))
  end
  for k in pairs(extra) do
    if type(k) ~= "string" then
      return invalid("params.extra_body", format("params.extra_body has a key of type %s; "
        .. "body fields are named by strings", type(k)))
    end
    if k == "url" or k == "events" then
      return invalid("params.extra_body." .. k, format("params.extra_body.%s: %s is a named parameter; "
        .. "set params.%s instead", k, k, k))
    end
  end
  local bad = validate.json_value(extra, "params.extra_body", core.null, core.empty_array)
  if bad then return invalid(bad.field, bad.message) end
end

-- Every byte outside RFC 3986 "unreserved" is escaped, so the id stays
-- one path segment whatever it holds ("/", "..", "?", "#", spaces).
local encode_segment = core.percent_encode

-- Fleet ids that passed their checks, with their paths: a loop or a batch
-- over the same fleets checks and encodes each once. Bounded: emptied
-- when full.
local MAX_CHECKED = 256
local checked_paths, checked_count = {}, 0

local function remember_path(fleet_id, path)
  if checked_count >= MAX_CHECKED then checked_paths, checked_count = {}, 0 end
  checked_paths[fleet_id] = path
  checked_count = checked_count + 1
end

-- The first argument of a create that holds the API key (`secrets`, the
-- client's), named as the caller gave it; nil when none does. Asked when
-- the call refused its path or body for holding it (`cerca.prepare`), so
-- that the refusal names the argument.
local function key_problem(secrets, fleet_id, params)
  local bad = validate.key_problem(secrets, fleet_id, "fleet_id", "the URL", "pass the fleet's id")
    or validate.key_problem(secrets, params.url, "params.url", "the body",
      "pass the HTTPS endpoint that receives deliveries")
  if bad or not params.extra_body or not secrets[1] then return bad end
  for k, v in pairs(params.extra_body) do
    local field = "params.extra_body." .. k
    bad = validate.key_problem(secrets, k, "params.extra_body", "the body", "remove that field")
      or validate.key_problem(secrets, type(v) == "table" and json.encode(v) or v, field, "the body",
        "remove it from " .. field)
    if bad then return bad end
  end
end

-- `err`, a refusal of the call made from `fleet_id` and `params`, naming
-- the argument that put the API key in its path or body.
local function named(err, secrets, fleet_id, params)
  if (err.field == "path" or err.field == "body") and err.attempts == 0 then
    local bad = key_problem(secrets, fleet_id, params)
    if bad then err.field, err.message = bad.field, bad.message end
  end
  return err
end

-- nil, or the `invalid_request` error of a fleet id a create cannot use.
local function check_fleet(fleet_id)
  if type(fleet_id) == "table" and rawget(fleet_id, "create") then
    return invalid("fleet_id", "fleet_id must be a string (got the webhooks table); "
      .. "call create with a dot: client.webhooks.create(fleet_id, params)")
  end
  local bad
  if not checked_paths[fleet_id] then
    bad = validate.text(fleet_id, "fleet_id", "fleet_abc123", _M.MAX_FLEET_ID_BYTES)
    if bad then return invalid(bad.field, bad.message) end
    if fleet_id == "." or fleet_id == ".." then
      -- Even percent-encoded, URL handling reads these as path steps.
      return invalid("fleet_id", format('fleet_id cannot be "%s", which a URL reads as a path step; '
        .. "pass the fleet's id", fleet_id))
    end
    -- Checked as every request path is (validate.request_path), which
    -- remembers it: the call then finds it checked.
    local path = "/fleets/" .. encode_segment(fleet_id) .. "/webhooks"
    local _, kind = validate.request_path(path, "path")
    if kind == "dot" then
      -- The rule of every request path: many servers decode %2F, %3B, ...
      -- before they resolve "..": "../admin" would step out of the API's path.
      return invalid("fleet_id", 'fleet_id holds a "." or ".." step between "/" or "\\", or followed by ";", '
        .. '"?" or "#", which a server may read as a path step out of the API\'s path; pass the fleet\'s id')
    end
    remember_path(fleet_id, path)
  end
end

--- Checks the arguments of `create`; returns nil or an `invalid_request` error.
function _M.check(fleet_id, params)
  local bad = check_fleet(fleet_id)
  if bad then return bad end
  if type(params) ~= "table" then
    return invalid("params", format("params must be a table (got %s); "
      .. "pass { url = \"https://example.com/webhook\" }", validate.describe(params)))
  end
  bad = validate.known_keys(params, "params", PARAM_KEYS, "other body fields go in params.extra_body")
  if bad then return invalid(bad.field, bad.message) end
  if params.url == nil then
    return invalid("params.url", "params.url is required; pass the HTTPS endpoint that will receive "
      .. "deliveries, e.g. \"https://example.com/webhook\"")
  end
  local scheme
  scheme, bad = validate.parse_url(params.url, "params.url", "https://example.com/webhook", _M.MAX_URL_BYTES)
  if not scheme then return invalid(bad.field, bad.message) end
  if scheme ~= "https" then
    return invalid("params.url", format("params.url must use https (got %s://); "
      .. "deliveries are only sent to HTTPS endpoints", scheme))
  end
  return check_events(params.events) or check_extra_body(params.extra_body)
end

--- The request path for a fleet: one percent-encoded segment.
function _M.path(fleet_id)
  return checked_paths[fleet_id] or ("/fleets/" .. encode_segment(fleet_id) .. "/webhooks")
end

--- The JSON body as a Lua table: extra fields, then the named ones.
function _M.body(params)
  local events = params.events
  -- An empty list means "no event" to us and must reach the wire as [].
  if events and #events == 0 then events = core.empty_array end
  local extra = params.extra_body
  -- Made at its size when there is nothing else (the common case).
  if not extra then return { url = params.url, events = events } end
  local body = {}
  for k, v in pairs(extra) do body[k] = v end
  -- (check refuses extra_body.url and extra_body.events.)
  body.url = params.url
  body.events = events
  return body
end

--- Subscriptions carry this metatable: `tostring` gives one redacted line.
_M.Subscription = {
  __name = "cerca.Subscription",
  -- What cerca.pretty shows, in order.
  fields = FIELDS,
  __tostring = function(sub) return pretty.subscription_line(sub) end,
}

--- Wraps a decoded create answer, or explains why it cannot be used.
-- @treturn table|nil the subscription
-- @treturn[opt] string what is wrong with it
function _M.subscription(value)
  if type(value) ~= "table" then
    return nil, "the answer is not a JSON object"
  end
  local wrong_field = field_problem(value, FIELDS)
  if wrong_field then
    local name, want = FIELDS[wrong_field][1], FIELDS[wrong_field][2]
    return nil, format("the answer's %s is %s, not a %s", name,
      value[name] == nil and "missing" or ("a " .. type(value[name])), want)
  end
  local wrong, k = list_problem(value.events, "string")
  if wrong == "key" then return nil, "the answer's events is not a list" end
  if wrong then return nil, format("the answer's events[%d] is not a string", k) end
  if value.secret == "" then
    return nil, "the answer's secret is empty"
  end
  setmetatable(value.events, json.array_mt)
  setmetatable(value, _M.Subscription)
  return value
end

-- A create's response, as the subscription and the call's details, or
-- as an error that keeps the raw answer and the key to repeat the call with.
-- The error for a 2xx that is not this create's subscription, keeping
-- first what an earlier attempt's 2xx delivered, if one did (the API acted
-- then: its bytes may hold the secret). The answer's secret, if it has
-- one, is removed from every text of the error, this answer's and the
-- earlier attempt's (the same subscription, replayed under the key), but
-- not from the raw bodies: they are how the create is recovered.
local function unusable(res, err, secret)
  local before = res.created_before
  if before then
    err = outcome.after_created(before, err)
    err.attempts, err.idempotency_key = res.attempts, res.idempotency_key
  end
  errors.scrub(err, secret and redact.list(secret) or NO_SECRETS, true)
  err.request_sent, err.maybe_created = true, true
  return nil, err
end

-- The earlier 2xx of a create that succeeded on a repeat, when its bytes
-- do not show the subscription the repeat answered (`sub`): an API that
-- honours the key replays the one it made, so these bytes may hold another
-- (made in spite of the key), and are kept. Bytes that name this one's id
-- or hold its secret are this one's; no bytes hold nothing. An error, so
-- that its body is printed nowhere (it may hold that other secret). Logged
-- as a warning.
local function earlier_answer(before, sub, lg)
  local body = before.body or ""
  if body == "" or find(body, sub.id, 1, true) or find(body, sub.secret, 1, true) then return nil end
  local kept = errors.new("invalid_response", format("the create's answer on attempt %d (HTTP %d) %s, and the "
    .. "repeat under the same idempotency key answered subscription %s, which those bytes do not show: they "
    .. "may hold another subscription, kept in res.created_before.body", before.attempt, before.status,
    before.broke_off and "broke off" or "could not be used", validate.describe(sub.id)), {
      status = before.status, headers = before.headers, body = before.body, request_id = before.request_id,
      withheld = before.withheld })
  if lg then lg:write("warn", kept.message) end
  return kept
end

local function created(fleet_id, res, err, lg)
  if not res then return nil, err end
  local sub, why = _M.subscription(res.json)
  if not sub or sub.fleetId ~= fleet_id then
    local fields = { status = res.status, headers = res.headers, body = res.body, request_id = res.request_id,
      attempts = res.attempts, idempotency_key = res.idempotency_key, withheld = outcome.secret_unknown(res) or nil }
    if not sub then
      local answer = res.json
      local secret = type(answer) == "table" and type(answer.secret) == "string" and answer.secret or nil
      return unusable(res, errors.new("invalid_response", "the create succeeded (HTTP " .. res.status .. ") but "
        .. why .. "; the raw answer is kept in err.body: repeat the call with err.idempotency_key to get the "
        .. "subscription", fields), secret)
    end
    -- Not this call's answer (a connection shared across fork(), a proxy
    -- that mixed answers up): neither a success nor something to keep,
    -- and the other subscription's secret stays nowhere in the error.
    fields.body = nil
    -- Quoted without the secret: quoting escapes what a text search for
    -- it would then miss (a TAB as "\9").
    local quoted = validate.describe(redact.value(sub.fleetId, redact.list(sub.secret)))
    return unusable(res, errors.new("invalid_response", "the answer names another fleet than the one asked for "
      .. "(fleetId " .. quoted .. "), so it is not this call's answer and was dropped; repeat the call with "
      .. "err.idempotency_key to get this fleet's subscription", fields), sub.secret)
  end
  -- The secret is printed only where it is asked for: never inside the
  -- other fields, nor in the answer's headers.
  local secret = sub.secret
  -- Written once in the raw text, and nowhere percent-encoded or escaped
  -- as text: no other field can hold it.
  if not redact.in_one_field(res.body, secret) then
    -- Any other field, name or value, at any depth, in any form.
    sub.secret = nil
    redact.value(sub, redact.list(secret))
    sub.secret = secret
  end
  -- Headers are raw text: the secret may stand there as is, or escaped.
  -- The table of fields is made from the block on first read of `headers`,
  -- unless it was made already (a name held the API key in other letters).
  -- A repeated field's values are joined with ", ": a secret holding a
  -- comma or a space may be spelt across two of them, in the table and in
  -- the request id.
  local raw, headers = res.raw_headers, rawget(res, "headers")
  if redact.maybe_in(raw, secret) or redact.joinable(secret) then
    local secrets = redact.list(secret)
    res.raw_headers = redact.known(raw, secrets, true)
    if headers then redact.fields(headers, secrets) end
    local rid = outcome.request_id(res)
    res.request_id = rid and redact.known(rid, secrets, true)
  end
  local before = res.created_before
  return sub, nil, outcome.lazy_headers({ status = res.status, raw_headers = res.raw_headers, headers = headers,
    request_id = res.request_id, attempts = res.attempts, idempotency_key = res.idempotency_key,
    created_before = before and earlier_answer(before, sub, lg) }, secret)
end

-- `params` read once (a plain one as it is, one with metamethods into a
-- copy) and checked with `fleet_id`: the params to use, or nil and the
-- `invalid_request` error (nothing sent).
local function checked(fleet_id, params)
  local copy, why, where = validate.settled(params, "params")
  if why then return nil, errors.new("invalid_request", why, { field = where, attempts = 0 }) end
  local err = _M.check(fleet_id, copy)
  if err then
    err.attempts = 0
    return nil, err
  end
  return copy
end

-- The params of the last create that passed their checks, as a private
-- copy (one without extra_body), its body, encoded, and the URL limit they
-- were checked against, in one table set in one statement (a finalizer
-- that creates meanwhile cannot leave a body beside other params): a
-- create whose params hold the same (`core.same_value`: the same keys and
-- values, the same metatables) would pass the same checks and send the
-- same bytes, so it is neither checked nor encoded again. Its fleet is
-- checked as ever.
local same_value = core.same_value
local rawmetatable = debug and debug.getmetatable or getmetatable
-- (Lua 5.1's `#` reads no __len of a table.)
local rawlen = rawlen or function(t) return #t end
local last_passed = nil
-- Deep enough for { url =, events = { ... } }; a larger list is not kept.
local SAME_DEPTH, SAME_ENTRIES = 2, 64

-- The body of params that passed their checks, encoded as `text`; kept
-- with a copy of the params (read raw) when they can be compared later.
local function passed(params, text)
  local body = json.canonical_body(text)
  local events, copy = rawget(params, "events"), nil
  if rawget(params, "extra_body") ~= nil then return body end
  if events ~= nil then
    local n, mt = rawlen(events), rawmetatable(events)
    if n > SAME_ENTRIES - 2 or (mt ~= nil and mt ~= json.array_mt) then return body end
    copy = {}
    for i = 1, n do copy[i] = rawget(events, i) end
    setmetatable(copy, mt)
  end
  last_passed = { params = { url = rawget(params, "url"), events = copy }, body = body,
    max_url = _M.MAX_URL_BYTES }
  return body
end

-- `params` checked with `fleet_id`, and the body they make: the params to
-- use (a copy of ones with metamethods) and the body, encoded when it can
-- be; or nil and the `invalid_request` error (nothing sent). `settle`: the
-- params may have metamethods (not for an item of a list already read).
local function checked_body(fleet_id, params, settle)
  local last = last_passed
  if last and last.max_url == _M.MAX_URL_BYTES and same_value(params, last.params, SAME_DEPTH, SAME_ENTRIES) then
    -- (Such params have no metamethod either: nothing to settle.)
    local err = check_fleet(fleet_id)
    if err then
      err.attempts = 0
      return nil, err
    end
    return params, last.body
  end
  local err
  if settle then
    params, err = checked(fleet_id, params)
  else
    err = _M.check(fleet_id, params)
  end
  if err then return nil, err end
  local body = _M.body(params)
  local text = json.encode_canonical(body)
  -- (A body that cannot be encoded goes on as it is: preparing the call
  -- says why.)
  if not text then return params, body end
  return params, passed(params, text)
end

--- What `create` would refuse before sending anything, or nil: the same
-- checks, nothing sent. See `cerca.webhooks.check`.
function _M.refusal(client, fleet_id, params, options)
  local err
  params, err = checked(fleet_id, params)
  if not params then return err end
  local _
  _, err = client:prepare("POST", _M.path(fleet_id), _M.body(params), options)
  if err then
    err = named(err, client._profile.secrets, fleet_id, params)
    err.attempts = 0
  end
  return err
end

-- What a create's call ends in: its error named, or its answer made into
-- the subscription.
local function create_result(res, err, client, fleet_id, params)
  local profile = client._profile
  if err then return nil, named(err, profile.secrets, fleet_id, params) end
  return created(fleet_id, res, nil, profile.log)
end

--- Creates a subscription through `client`, its call sent by `send`
-- (`cerca.client`'s, which makes the result with `create_result` inside
-- the call's own guard). See `cerca.webhooks.create`.
function _M.create(client, send, fleet_id, params, options)
  -- Checked, then turned into the body before anything else runs.
  local body
  params, body = checked_body(fleet_id, params, true)
  if not params then return nil, body end
  return send(client, "POST", _M.path(fleet_id), body, options, create_result, client, fleet_id, params)
end

local ITEM_KEYS = { "fleet_id", "params", "options" }
local ITEM_KEY = { fleet_id = true, params = true, options = true }
local MANY_OPTIONS = { "concurrency", "on_result", "stop" }
-- Items read between two polls of a running batch (about 0.5 ms of work).
local READ_CHUNK = 64
-- The most of a reason `stop` gives (or of its error) that a message quotes.
local MAX_REASON = 200

--- How many creates `create_many` keeps in flight: the default and the range
-- (the command line's `--concurrency` takes the same).
_M.CONCURRENCY = { default = 16, min = 1, max = 1000 }
local CONCURRENCY = _M.CONCURRENCY

-- What `stop` said (or raised) to quote in messages: a string, at most
-- MAX_REASON bytes, not cut inside a UTF-8 character; nil for anything else.
local function reason(said)
  if type(said) ~= "string" or said == "" then return nil end
  if #said <= MAX_REASON then return said end
  local cut = strsub(said, 1, MAX_REASON)
  -- Drop a last character only when the cut left it incomplete: its lead
  -- byte says how many continuation bytes it needs.
  local lead, tail = match(cut, "()[\192-\255]([\128-\191]*)$")
  if lead then
    local b = byte(cut, lead)
    local needs = b >= 240 and 3 or b >= 224 and 2 or 1
    if #tail < needs then cut = strsub(cut, 1, lead - 1) end
  end
  if cut == "" then return nil end
  return cut
end

--- Creates many subscriptions at once through `client`. See
-- `cerca.webhooks.create_many`.
-- @treturn table|nil results in input order: `{ ok = true, subscription =,
--   response = }` or `{ ok = false, error = }`
-- @treturn[opt] table an `invalid_request` error when `items` or `opts`
--   themselves are wrong (nothing was sent)
function _M.create_many(client, items, opts)
  local why, about
  local secrets = client._profile.secrets
  -- Read once: each item is checked and turned into its prepared call (body
  -- encoded, options read, key drawn) in one pass, and nothing of `items`
  -- is read after it. A progress callback may change them, so no result is
  -- handed to one before the pass is over. The first `concurrency` items are
  -- read before anything is sent; the others while those are in flight
  -- (`read_more`, between the batch's polls), and what ends meanwhile is held
  -- back. The items refused are reported first, once the pass is over. An
  -- item's options are copied: they become header lines, and a finalizer
  -- (`__gc`) of the caller's may run while the body is encoded.
  -- `opts` comes first: its `stop` is asked before `items` is looked at.
  opts, why, about = validate.settled(opts, "opts")
  if why then return nil, invalid(about, why) end
  if opts ~= nil and type(opts) ~= "table" then
    return nil, invalid("opts", format("opts must be a table (got %s); e.g. { concurrency = %d }",
      validate.describe(opts), CONCURRENCY.default))
  end
  opts = opts or {}
  local bad = validate.known_keys(opts, "opts", MANY_OPTIONS)
    or validate.integer(opts.concurrency, "opts.concurrency", CONCURRENCY.min, CONCURRENCY.max)
  if bad then return nil, invalid(bad.field, bad.message) end
  local on_result = opts.on_result
  if on_result ~= nil and type(on_result) ~= "function" then
    return nil, invalid("opts.on_result", format("opts.on_result must be a function(i, result) (got %s)",
      validate.describe(on_result)))
  end
  local stop = opts.stop
  if stop ~= nil and type(stop) ~= "function" then
    return nil, invalid("opts.stop", format("opts.stop must be a function() returning true to stop the batch "
      .. "(got %s)", validate.describe(stop)))
  end
  local concurrency = opts.concurrency or CONCURRENCY.default

  -- The caller's stop is asked only where no code of the caller's can
  -- change an item not yet read: before `items` is looked at, and once
  -- every item is read. Its first true (or the reason it gives, a string)
  -- holds for the rest of the batch; one that raises stops it too.
  local stopped
  local function should_stop()
    if not stopped then
      local ok, yes = pcall(stop)
      if not ok then
        stopped = format("the batch was stopped (opts.stop raised an error: %s)", reason(yes) or type(yes))
      elseif yes then
        stopped = format("the batch was stopped (%s)", reason(yes) or "opts.stop")
      end
    end
    return stopped
  end
  if stop then should_stop() end

  items, why, about = validate.settled(items, "items", validate.MAX_ENTRIES)
  if why then return nil, invalid(about, why) end
  if type(items) ~= "table" then
    return nil, invalid("items", format("items must be a list of { fleet_id =, params =, options = } tables "
      .. "(got %s)", validate.describe(items)))
  end

  local results, calls, index_of, fleet_of, key_owner, refused = {}, {}, {}, {}, {}, {}
  local reading, held = true, {}
  local function report(i, result)
    -- An item refused is quoted in its error: the client's key, given in
    -- the wrong place, is removed (as from every error of a call).
    if not result.ok then client:scrub_refusal(result.error) end
    results[i] = result
    if reading then
      held[#held + 1] = i
    elseif on_result then
      -- A failing progress callback must not lose the results still to come.
      pcall(on_result, i, result)
    end
  end
  local function read_item(i)
    local item, err, c, fleet = items[i]
    if type(item) ~= "table" then
      local where = format("items[%d]", i)
      err = invalid(where, format("%s must be a { fleet_id =, params =, options = } table (got %s)",
        where, validate.describe(item)))
    else
      local unknown
      for k in pairs(item) do
        if not ITEM_KEY[k] then
          unknown = validate.known_keys(item, format("items[%d]", i), ITEM_KEYS)
          break
        end
      end
      local fleet_id, params, options = item.fleet_id, item.params, item.options
      local body
      if unknown then
        err = invalid(unknown.field, unknown.message)
      else
        params, body = checked_body(fleet_id, params, false)
        if not params then err = body end
      end
      if not err and options ~= nil then
        options, why, about = validate.snapshot(options, format("items[%d].options", i))
        if why then err = invalid(about, why) end
      end
      if not err then
        c, err = client:prepare("POST", _M.path(fleet_id), body, options, true)
        if err then err = named(err, secrets, fleet_id, params) end
        fleet = fleet_id
      end
      -- One key names one create: two items under it would both get the
      -- first one's subscription. (`options` is the private copy.)
      local key = c and options and options.idempotency_key
      if key and key_owner[key] then
        local where = format("items[%d]", i)
        err = invalid(where .. ".options.idempotency_key", format("%s.options.idempotency_key is already "
          .. "used by items[%d]; each create needs a key of its own", where, key_owner[key]))
      elseif key then
        key_owner[key] = i
      end
    end
    if err then
      err.attempts = 0
      err.item = i
      refused[#refused + 1] = err
    else
      calls[#calls + 1] = c
      index_of[#calls] = i
      fleet_of[#calls] = fleet
    end
  end
  -- The list's length is read once too: every item up to it gets one result.
  local count = #items
  -- The next item to read. It moves on item by item: should reading one
  -- fail inside cerca, the items read before it have their calls (or their
  -- refusal) already, and it and those after it are reported unread.
  local next_item = 1
  local function read_to(last)
    for i = next_item, last do
      read_item(i)
      next_item = i + 1
    end
  end
  -- The pass is over: the refused items are reported, then what ended meanwhile.
  local function end_reading()
    local ended = held
    reading, held = false, nil
    for k = 1, #refused do report(refused[k].item, { ok = false, error = refused[k] }) end
    for k = 1, #ended do
      if on_result then pcall(on_result, ended[k], results[ended[k]]) end
    end
  end
  local function read_more()
    read_to(min(count, next_item + READ_CHUNK - 1))
    if next_item <= count then return true end
    end_reading()
    return false
  end

  -- Stopped before it starts: every item is read, and each ends unsent.
  read_to(min(count, stopped and count or concurrency))
  if next_item > count then end_reading() end
  local _, fault = client:request_many(calls, concurrency, function(k, res, err)
    local sub, e, response = created(fleet_of[k], res, err, client._profile.log)
    if sub then
      report(index_of[k], { ok = true, subscription = sub, response = response })
    else
      e.item = index_of[k]
      report(index_of[k], { ok = false, error = e })
    end
    -- Its result is kept: the call is not read again, and its memory (body,
    -- header lines, key) goes back to the heap for the calls still to come.
    -- (Let go earlier, a fault above would leave the item without its
    -- call, and the loop below could not give it its result.)
    calls[k] = false
  end, reading and read_more or nil, stop and should_stop)
  if reading then
    -- The batch broke off inside cerca before every item was read: the
    -- others were never sent.
    for i = next_item, count do
      report(i, { ok = false, error = errors.new("internal", format("the batch stopped before this item was "
        .. "read (%s); it was not sent", tostring(fault and (fault.message or fault) or "no reason given")),
        { attempts = 0, item = i }) })
    end
    end_reading()
  end
  -- A batch that broke off inside cerca leaves creates without a result:
  -- each gets one, with the key to repeat it under if it may have been sent.
  for k = 1, #calls do
    local i = index_of[k]
    if results[i] == nil then
      local e = calls[k]:broken_off(fault or errors.new("internal", "no answer was handed back for it"))
      e.item = i
      report(i, { ok = false, error = e })
    end
  end
  return results
end

return _M
