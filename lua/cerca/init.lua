--- cerca: webhook subscriptions for Cerca fleets.
--
--     local cerca = require "cerca"
--     local sub, err = cerca.webhooks.create("fleet_abc123", { url = "https://example.com/webhook" })
--
-- `cerca.webhooks` is bound to a default client configured from the
-- environment (`CERCA_API_KEY`, `CERCA_BASE_URL`), made on first use;
-- `cerca.new(options)` makes a client of your own.
-- @module cerca

local client = require "cerca.client"
local core = require "cerca.core"
local deliveries = require "cerca.deliveries"
local errors = require "cerca.errors"
local json = require "cerca.json"
local pretty = require "cerca.pretty"
local webhooks = require "cerca.webhooks"

local _M = {
  VERSION = client.VERSION,
  --- JSON null, for `extra_body` values.
  null = core.null,
  --- An empty JSON array, for `extra_body` values (an empty table is `{}`).
  empty_array = core.empty_array,
  --- The error types, each with what it means.
  ERROR_TYPES = errors.TYPES,
}

--- Makes a client. See the README's table of options.
-- @tparam[opt] table options
-- @treturn table|nil client
-- @treturn[opt] table a `configuration` error
_M.new = client.new

--- Multi-line rendering of a subscription or an error; control characters
-- escaped.
-- @function pretty
_M.pretty = errors.protect(pretty.pretty)

--- JSON text of a value (a subscription, say): keys sorted, lists kept as
-- lists even when empty, `1e999` for a number beyond the range of doubles;
-- nil and a message when it cannot be encoded.
-- @function encode_json
_M.encode_json = errors.protect(json.encode)

--- Text safe to print on a terminal: control characters, bidirectional
-- overrides and bytes that are not UTF-8 escaped (`\x1b`, `\u{9b}`).
-- @function printable
_M.printable = pretty.printable

--- True when `v` is a cerca error.
_M.is_error = errors.is_error

local default_client

-- The default client, made from the environment on first successful use.
local function default()
  if default_client then return default_client end
  local c, err = client.new()
  if c then default_client = c end
  return c, err
end

--- Webhook subscriptions through the default client.
_M.webhooks = {
  EVENTS = webhooks.EVENTS,
  --- Verifies a delivery's Standard Webhooks signature; see `cerca.deliveries.verify`.
  verify = deliveries.verify,
  --- The `webhook-signature` value for a payload; see `cerca.deliveries.sign`.
  sign = deliveries.sign,
  --- Creates a webhook subscription for a fleet.
  -- @tparam string fleet_id
  -- @tparam table params `url` (required), `events`, `extra_body`
  -- @tparam[opt] table options per-call options (`timeout`, ...)
  -- @treturn table|nil the subscription
  -- @treturn[opt] table the error
  -- @treturn[opt] table on success: `{ status, headers, request_id }`
  create = errors.protect(function(fleet_id, params, options)
    local c, err = default()
    if not c then return nil, err end
    return c.webhooks.create(fleet_id, params, options)
  end),
  --- Creates many subscriptions at once; see the README.
  -- @tparam table items list of `{ fleet_id =, params =, options = }`
  -- @tparam[opt] table opts `concurrency` (default 16), `on_result(i, result)`
  -- @treturn table|nil results in input order
  -- @treturn[opt] table the error when `items` or `opts` are wrong
  create_many = errors.protect(function(items, opts)
    local c, err = default()
    if not c then return nil, err end
    return c.webhooks.create_many(items, opts)
  end),
}

return _M
