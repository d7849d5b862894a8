--- cerca: webhook subscriptions for Cerca fleets.
--
--     local cerca = require "cerca"
--     local sub, err = cerca.webhooks.create("fleet_abc123", { url = "https://example.com/webhook" })
--
-- `cerca.webhooks` is bound to a default client configured from the
-- environment (`CERCA_API_KEY`, `CERCA_BASE_URL`), made on first use;
-- `cerca.new(options)` makes a client of your own, whose `client.webhooks`
-- has the same functions. No function raises: every failure is `nil, err`.
--
-- @{cerca.journal} is the private append-only file of JSON lines the
-- `cerca` command writes its results to (`--out`).
-- @module cerca

local client = require "cerca.client"
local core = require "cerca.core"
local deliveries = require "cerca.deliveries"
local errors = require "cerca.errors"
local journal = require "cerca.journal"
local json = require "cerca.json"
local outcome = require "cerca.outcome"
local prepare = require "cerca.prepare"
local pretty = require "cerca.pretty"
local runtime = require "cerca.runtime"
local redact = require "cerca.redact"
local webhooks = require "cerca.webhooks"

local validate = require "cerca.validate"

local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local format = string.format
local find = string.find
local sort = table.sort

local _M = {}

--- The library's version, `"0.1.0"`.
_M.VERSION = client.VERSION

--- JSON null, for `extra_body` values.
_M.null = core.null

--- An empty JSON array, for `extra_body` values (an empty table is `{}`).
_M.empty_array = core.empty_array

--- Every `err.type` cerca returns, each mapped to what it means.
_M.ERROR_TYPES = errors.TYPES

--- Makes a client of your own.
-- @function new
-- @tparam[opt] table options `api_key`, `base_url`, `timeout`,
--   `connect_timeout`, `max_retries`, `headers`, `ca_file`,
--   `max_response_size`, `log_level`, `logger`, `thread_pool` (the README's
--   table of client options)
-- @treturn table|nil the client: `client.webhooks.create(...)` and
--   `client.webhooks.create_many(...)` as below, and `client:close()`, which
--   drops its kept-alive connection (it stays usable)
-- @treturn[opt] table a `configuration` error naming the option
_M.new = client.new

--- Multi-line rendering of a subscription, an error or a table; the secret
-- shown as a hint unless `reveal_secret`, control characters escaped.
-- @function pretty
-- @param value what to render
-- @tparam[opt] table opts `color` (ANSI colours), `reveal_secret`
-- @treturn string|nil the text
-- @treturn[opt] table an `internal` error
_M.pretty = errors.protect(pretty.pretty)

--- JSON text of a value (a subscription, say): keys sorted, lists kept as
-- lists even when empty, `1e999` for a number beyond the range of doubles.
-- @function encode_json
-- @param value what to encode
-- @treturn string|nil the JSON text
-- @treturn[opt] string why it cannot be encoded
_M.encode_json = errors.protect(json.encode)

--- The value of a JSON text: the counterpart of `encode_json`, through the
-- decoder cerca reads the API's answers with. `null` is `cerca.null`;
-- `NaN`, `Infinity` and hex numbers are refused, nesting is capped at 128
-- levels. `[]` and `{}` both give an empty table (write `cerca.empty_array`
-- to encode `[]`).
-- @function decode_json
-- @tparam string text the JSON text
-- @return the value (a table, string, number, boolean or `cerca.null`), or nil
-- @treturn[opt] string why the text is not JSON
_M.decode_json = function(text)
  if type(text) ~= "string" then return nil, "the JSON text must be a string, not a " .. type(text) end
  return core.decode(text)
end

--- A fresh idempotency key: a random UUIDv4, as cerca draws for every
-- create given none. Keep it (in a file, a database) and pass it as the
-- `idempotency_key` option of `create` to repeat a create, from this
-- process or another, without making a second subscription.
-- @function new_idempotency_key
-- @treturn string|nil the key, e.g. `"9b2f3c1e-7a4d-4c8b-9e1f-2d3c4b5a6f70"`
-- @treturn[opt] string why none could be drawn (the random generator failed)
_M.new_idempotency_key = core.uuid4

--- The version of libcurl cerca runs on: a string such as `"7.88.1"`.
_M.LIBCURL_VERSION = core.curl_version

local system = {}

--- For command-line programs (the `cerca` command uses it): whether
-- standard input (0), output (1) or error (2) is a terminal, to decide on
-- colours and progress bars.
-- @function system.isatty
-- @tparam number fd 0, 1 or 2
-- @treturn boolean|nil true on a terminal
-- @treturn[opt] string why, when `fd` is not 0, 1 or 2
system.isatty = function(fd)
  if fd ~= 0 and fd ~= 1 and fd ~= 2 then return nil, "fd must be 0, 1 or 2" end
  return core.isatty(fd)
end

--- For command-line programs (the `cerca` command uses it): ignores
-- SIGPIPE and SIGXFSZ in the whole process, so that a write to a closed
-- pipe, or past the file size limit (`ulimit -f`), fails with an error the
-- program can handle (and rescue what it was writing, secrets included)
-- instead of killing it silently. It changes settings of the process: not
-- for a library's host (nginx, an application).
-- @function system.ignore_write_signals
system.ignore_write_signals = core.ignore_write_signals

--- What `path` is, without opening it (symbolic links followed):
-- `"file"`, `"directory"`, `"fifo"`, `"device"` or `"socket"`; a program
-- can then leave alone what reading would block on or consume.
-- @function system.file_kind
-- @tparam string path
-- @treturn string|nil the kind
-- @treturn[opt] string why it cannot be told (no such file, ...)
system.file_kind = errors.protect(core.file_kind)

--- For command-line programs (the `cerca` command uses it): sets the
-- process's core file size limit to 0, soft and hard, so that a crash or
-- Ctrl-\ (SIGQUIT) writes no core file holding the API key and secrets in
-- memory. Not for a library's host (nginx, an application).
-- @function system.no_core_dumps
-- @treturn boolean|nil true
-- @treturn[opt] string why the limit could not be set
system.no_core_dumps = core.no_core_dumps

--- Opens again each standard descriptor (0, 1, 2) the process was started
-- without: 0 on /dev/null, 1 and 2 on /dev/full, where every write fails
-- (where those are missing, on a pipe that reads nothing, or that no one
-- reads: a write there raises SIGPIPE unless `ignore_write_signals` ran).
-- Left closed, the next socket or file opened would take its number, and
-- what a program prints would go there. Returns how many were closed.
-- @function system.hold_std_streams
system.hold_std_streams = core.hold_std_streams

--- For command-line programs (the `cerca` command calls it first): SIGINT,
-- SIGTERM and SIGHUP get their default action back (the process ends),
-- unless ignored. The `lua` interpreter turns Ctrl-C into a Lua error
-- ("interrupted!") that a `pcall` would take for a fault of the program.
-- @function system.default_stop_signals
system.default_stop_signals = core.default_stop_signals

--- For command-line programs (the `cerca` command uses it around its
-- creates): from now on SIGINT (Ctrl-C), SIGTERM and SIGHUP only set a flag, which
-- `system.stop_signal` reads, typically from `create_many`'s `stop`. The
-- first of each is caught; a second one has its default effect (the
-- process ends at once). A signal ignored when this is called stays
-- ignored. It changes settings of the process: not for a library's host
-- (nginx, an application).
-- @function system.catch_stop_signals
system.catch_stop_signals = core.catch_stop_signals

--- The signal caught since `system.catch_stop_signals`, if any.
-- @function system.stop_signal
-- @treturn number|nil its number (2 or 15)
-- @treturn[opt] string its name, `"SIGINT"` or `"SIGTERM"`
system.stop_signal = core.stop_signal

--- Gives SIGINT and SIGTERM back to the handlers they had before
-- `system.catch_stop_signals`, and forgets what was caught.
-- @function system.release_stop_signals
-- @treturn number|nil the signal that was caught, as `system.stop_signal`
-- @treturn[opt] string its name
system.release_stop_signals = core.release_stop_signals

--- Ends the process by SIGINT or SIGTERM, as if the signal had never been
-- caught (C's output buffers are flushed first): a shell sees 128 + its
-- number, and a shell script running the program stops too. For a program
-- that caught the signal to finish its writes first.
-- @function system.exit_by_signal
-- @tparam number sig 2 (SIGINT), 15 (SIGTERM) or 1 (SIGHUP)
-- @return nil and an `invalid_request` error for any other `sig`
local STOP_SIGNALS = { [1] = true, [2] = true, [15] = true }
function system.exit_by_signal(sig)
  if not STOP_SIGNALS[sig] then
    return nil, errors.new("invalid_request", "system.exit_by_signal: sig must be 2 (SIGINT), 15 (SIGTERM) or 1 "
      .. "(SIGHUP), not " .. validate.describe(sig), { field = "sig" })
  end
  return core.exit_by_signal(sig)
end

_M.system = system

_M.journal = journal

--- Text safe to print on a terminal: control characters, bidirectional
-- overrides and bytes that are not UTF-8 escaped (`\x1b`, `\u{009b}`).
-- @function printable
-- @tparam string s the text
-- @treturn string
-- @return nil and an `invalid_request` error when `s` is not a string
function _M.printable(s)
  if type(s) ~= "string" then
    return nil, errors.new("invalid_request", "printable: s must be a string, not " .. validate.describe(s)
      .. " (tostring it first)", { field = "s" })
  end
  return pretty.printable(s)
end

--- `s` without the secrets given nor the ones cerca recognises, for text a
-- program prints or logs: each secret given is removed wherever it is
-- written (as is, JSON-escaped, percent-encoded, or its start where the
-- text ends or `...` cuts it), as are `whsec_` tokens, `"secret"` JSON values and
-- `Authorization:` values. Errors, log lines and `tostring` of cerca's own
-- values are redacted already.
-- @tparam string s the text
-- @tparam[opt] string secret one secret to remove
-- @tparam[opt] string other another one
-- @treturn string
function _M.redact(s, secret, other)
  if type(s) ~= "string" then return s end
  return redact.text(s, redact.exact_list(secret, other))
end

--- True when `v` is an error made by cerca.
-- @function is_error
-- @param v any value
-- @treturn boolean
_M.is_error = errors.is_error

--- The candidate closest to `word`, for "did you mean" messages (the
-- suggestions cerca's own errors make), or nil when none is plausibly meant.
-- @function suggest
-- @tparam string word what was written
-- @tparam {string,...} candidates the valid names, e.g. `cerca.webhooks.EVENTS`
-- @treturn string|nil the candidate
_M.suggest = errors.protect(validate.suggest)

--- Defaults of `post`'s options.
_M.POST_DEFAULTS = { timeout = 10, connect_timeout = 10, max_response_size = 64 * 1024 }

local POST_OPTIONS = { "headers", "timeout", "connect_timeout", "ca_file", "max_response_size" }
local POST_RESERVED = {
  host = "it is taken from the URL",
  ["content-length"] = "it is computed from the body",
  ["transfer-encoding"] = "it is chosen by libcurl",
  expect = "it is managed by the library",
}
-- What the C core reports when no usable answer came, as error types.
local POST_FAILURES = { connection = "connection", timeout = "timeout", tls = "tls", too_large = "invalid_response",
  url = "invalid_request" }

local function refused(kind, problem)
  return nil, errors.new(kind, problem.message, { field = problem.field })
end

--- One HTTP POST of `body` to any URL: not an API call (no API key, no
-- idempotency key, no retry), for programs that send to a receiver of
-- their own (`cerca deliveries send` does). Redirects are never followed;
-- plain `http://` is allowed for loopback hosts only (and never goes
-- through a proxy); TLS is verified as for API calls.
-- @function post
-- @tparam string url `https://...`, or `http://` to a loopback host
-- @tparam string body the bytes to send
-- @tparam[opt] table opts `headers` (name -> value), `timeout` (seconds,
--   default 10, the whole request), `connect_timeout` (default 10),
--   `ca_file` (default `CERCA_CA_FILE`), `max_response_size` (bytes,
--   default 64 KiB)
-- @treturn table|nil the answer, whatever its status: `status`, `headers`
--   (lower-case names), `body`
-- @treturn[opt] table the error: `invalid_request`, `configuration`
--   (`ca_file`), `connection`, `timeout`, `tls`, `invalid_response` (an
--   answer over `max_response_size`)
_M.post = errors.protect(function(url, body, opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    return refused("invalid_request", validate.problem("opts", "opts must be a table (got %s)",
      validate.describe(opts)))
  end
  local why, where
  opts, why, where = validate.snapshot(opts, "opts")
  if not opts then return refused("invalid_request", { field = where, message = why }) end
  if type(url) == "string" and find(url, "^[^/]*//[^/%?#]*@") then
    return refused("invalid_request", validate.problem("url", "url must not hold a user name or password"))
  end
  local scheme, host = validate.parse_url(url, "url", "https://example.com/webhook", webhooks.MAX_URL_BYTES)
  if not scheme then return refused("invalid_request", host) end
  local bad = (scheme ~= "https" and scheme ~= "http"
      and validate.problem("url", "url must use https (got %s://)", scheme))
    or (scheme == "http" and not client.is_loopback(host)
      and validate.problem("url", "url uses http:// for %s; use https:// (plain http is allowed for "
        .. "loopback hosts only)", host))
    or (type(body) ~= "string" and validate.problem("body", "body must be a string (got %s)",
      validate.describe(body)))
    or validate.known_keys(opts, "opts", POST_OPTIONS)
    or validate.headers(opts.headers, "opts.headers", POST_RESERVED)
    or validate.seconds(opts.timeout, "opts.timeout")
    or validate.seconds(opts.connect_timeout, "opts.connect_timeout")
    or validate.integer(opts.max_response_size, "opts.max_response_size", 1, 2 ^ 31)
  if bad then return refused("invalid_request", bad) end
  local ca_file, err = client.ca_file(opts.ca_file)
  if ca_file == false then return nil, err end

  local names, lines = {}, {}
  for name in pairs(opts.headers or {}) do names[#names + 1] = name end
  sort(names)
  for i, name in ipairs(names) do lines[i] = name .. ": " .. opts.headers[name] end
  local defaults = _M.POST_DEFAULTS
  -- Where it runs as a client's calls do: inside nginx, in its thread pool
  -- (never blocking the worker), refused where nginx cannot wait; a
  -- connection of its own, kept by none.
  local rt = runtime.new { ca_file = ca_file, user_agent = client.user_agent() }
  local cannot = rt:context_error()
  if cannot then
    rt:close()
    return nil, errors.new("configuration", cannot)
  end
  local res = rt:attempt {
    method = "POST", url = url, headers = lines, body = body, decode = false, no_proxy = scheme == "http",
    timeout_ms = prepare.milliseconds(opts.timeout or defaults.timeout),
    connect_timeout_ms = prepare.milliseconds(opts.connect_timeout or defaults.connect_timeout),
    max_body = opts.max_response_size or defaults.max_response_size,
  }
  rt:close()
  if res.error then
    local kind = POST_FAILURES[res.error] or "internal"
    local message = tostring(res.error_message or res.error)
    if res.error == "too_large" then
      message = format("the answer is larger than opts.max_response_size (%d bytes): %s",
        opts.max_response_size or defaults.max_response_size, message)
    end
    return nil, errors.new(kind, message, { status = res.status > 0 and res.status or nil,
      field = kind == "invalid_request" and "url" or nil })
  end
  return { status = res.status, headers = outcome.headers(res), body = res.body }
end)

local default_client

-- The default client, made from the environment on first successful use.
local function default()
  if default_client then return default_client end
  local c, err = client.new()
  if c then default_client = c end
  return c, err
end

local api = {}

--- The 19 event names a subscription may list, in the contract's order.
-- @table webhooks.EVENTS
api.EVENTS = webhooks.EVENTS

--- How many creates `create_many` keeps in flight: `default` (16), `min` (1)
-- and `max` (1000).
-- @table webhooks.CONCURRENCY
api.CONCURRENCY = webhooks.CONCURRENCY

--- The most table entries one argument may hold, all its tables counted
-- (1,000,000; a table held in several places counts in each): more, and
-- the call is refused, sending nothing. A `create_many` whose items share
-- one `params` table counts that table once per item.
-- @field webhooks.MAX_ENTRIES
api.MAX_ENTRIES = validate.MAX_ENTRIES

--- Creates a webhook subscription for a fleet (through the default client;
-- `client.webhooks.create` takes the same arguments).
-- @function webhooks.create
-- @tparam string fleet_id the fleet, e.g. `"fleet_abc123"`
-- @tparam table params `url` (required, https), `events` (a list of names
--   from `webhooks.EVENTS`; omitted: every non-test event), `extra_body`
-- @tparam[opt] table options `timeout`, `connect_timeout`, `max_retries`,
--   `headers`, `idempotency_key`, `deadline`
-- @treturn table|nil the subscription: `id`, `fleetId`, `url`, `events`,
--   `enabled`, `createdAt`, `updatedAt`, `secret` (shown once: store it)
-- @treturn[opt] table the error (`err.type`, `err.message`, and
--   `err.idempotency_key` to repeat the call with)
-- @treturn[opt] table on success: `status`, `headers`, `request_id`,
--   `attempts`, `idempotency_key`
api.create = errors.protect(function(fleet_id, params, options)
  local c, err = default()
  if not c then return nil, err end
  return c.webhooks.create(fleet_id, params, options)
end)

--- Checks the arguments of a create as `create` does, sending nothing
-- (`client.webhooks.check` takes the same arguments): what would be
-- refused before anything is sent, such as a form's URL or events, or
-- the API key given in the wrong place.
-- @function webhooks.check
-- @tparam string fleet_id the fleet
-- @tparam table params as `create` takes them
-- @tparam[opt] table options as `create` takes them
-- @treturn boolean|nil true when `create` would send the request
-- @treturn[opt] table the `invalid_request` error `create` would return
api.check = errors.protect(function(fleet_id, params, options)
  local c, err = default()
  if not c then return nil, err end
  return c.webhooks.check(fleet_id, params, options)
end)

--- Creates many subscriptions at once, each as `create` would.
-- @function webhooks.create_many
-- @tparam table items a list of `{ fleet_id =, params =, options = }`
-- @tparam[opt] table opts `concurrency` (default 16, 1 to 1000),
--   `on_result(i, result)` (called as each item ends), `stop()` (asked
--   before `items` is read, then between waits once every item is read;
--   once it returns true, or a string saying why, no further create is
--   started, and the items not sent end with a `cancelled` error)
-- @treturn table|nil the results in input order: `{ ok = true,
--   subscription =, response = }` or `{ ok = false, error = }`
-- @treturn[opt] table the error when `items` or `opts` are wrong
api.create_many = errors.protect(function(items, opts)
  local c, err = default()
  if not c then return nil, err end
  return c.webhooks.create_many(items, opts)
end)

--- Verifies a delivery's Standard Webhooks v1 signature and decodes its event.
-- @function webhooks.verify
-- @tparam string raw_body the request body exactly as received
-- @tparam table headers the request's headers (any letter case)
-- @tparam string secret the subscription's `whsec_...` secret
-- @tparam[opt] table opts `tolerance` (seconds, default 300), `now`,
--   `max_body` (bytes, default 1 MiB), `replay` (a `replay_guard`)
-- @treturn table|nil the event
-- @treturn[opt] table the error: `missing_header`, `invalid_signature`,
--   `timestamp`, `invalid_secret`, `invalid_payload`, `replayed` or
--   `invalid_request`
api.verify = deliveries.verify

--- The `webhook-signature` value of a payload, `"v1,<base64>"` (for tests
-- and senders).
-- @function webhooks.sign
-- @tparam string raw_body the exact bytes sent
-- @tparam string secret `whsec_...`
-- @tparam string msg_id the `webhook-id`
-- @param timestamp the `webhook-timestamp`, seconds (number or string)
-- @treturn string|nil the header value
-- @treturn[opt] table the error
api.sign = deliveries.sign

--- A replay guard for `verify`'s `replay` option: a delivery whose
-- `webhook-id` already passed within the tolerance window is refused with
-- `err.type == "replayed"`. Only deliveries that verified are recorded.
-- @function webhooks.replay_guard
-- @tparam[opt] table opts `size` (in-process: the most ids kept, default
--   100,000; the oldest is forgotten first) or `dict` (an `ngx.shared` dict:
--   one guard for all of nginx's workers)
-- @treturn table|nil the guard
-- @treturn[opt] table an `invalid_request` error
api.replay_guard = deliveries.replay_guard

_M.webhooks = api

return _M
