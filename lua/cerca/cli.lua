--- The `cerca` command line (bin/cerca is a two-line wrapper over `main`).
--
--     cerca webhooks create FLEET --url URL [--event NAME]... [--extra KEY=JSON]...
--                                 [--idempotency-key KEY] [--timeout SECONDS] [--json]
--     cerca webhooks create --fleets-file FILE --url URL [--event NAME]... [--extra KEY=JSON]...
--                                 [--timeout SECONDS] [--concurrency N] [--out FILE]
--     cerca webhooks events
--     cerca deliveries sign [--id ID] [--timestamp T] [--data JSON | --data @FILE]
--     cerca deliveries send URL --event NAME [--data JSON | --data @FILE]
--     cerca --version | cerca help [COMMAND]
--
-- The API key comes from CERCA_API_KEY or --api-key-file, the webhook
-- secret from CERCA_WEBHOOK_SECRET or --secret-file, never from an argument
-- (other users can read those, and they land in the shell's history).
-- Errors are one line on stderr; the exit code says what kind (see EXIT).
--
-- This module dispatches, prints help and errors, and picks the exit code;
-- cerca.cli_args reads the flags, cerca.cli_create runs the creates,
-- cerca.cli_deliveries signs and sends test deliveries. The command uses
-- the library only through its public module, `cerca`.
-- @module cerca.cli

local cerca = require "cerca"
local cli_args = require "cerca.cli_args"
local create = require "cerca.cli_create"
local deliveries = require "cerca.cli_deliveries"

local ipairs = ipairs
local tostring = tostring
local format = string.format
local concat = table.concat
local getenv = os.getenv

local usage_error = cli_args.usage_error

local _M = {}

--- Exit codes.
_M.EXIT = {
  ok = 0,
  usage = 2,        -- usage or validation error, configuration
  auth = 3,         -- authentication or permission; a receiver refused a delivery (401, 403)
  api = 4,          -- any other API error; a receiver's other non-2xx answer
  network = 5,      -- network, TLS or timeout
  partial = 6,      -- a batch finished with some failures
  output = 7,       -- the results could not be written (they went to stderr)
  -- A create or batch cut short by SIGINT (Ctrl-C), SIGTERM or SIGHUP
  -- ends by that signal once its results are written: the shell sees
  -- 128 + its number (and a script running it stops too). These are the
  -- codes should the signal not end the process.
  interrupted = 130,
  terminated = 143,
  hung_up = 129,
  internal = 1,     -- a bug in cerca
}

--- The exit code (a key of EXIT) for an error of each type; "api" for
-- the types not listed (the API's other answers).
_M.EXIT_FOR_TYPE = {
  invalid_request = "usage", configuration = "usage",
  authentication = "auth", permission_denied = "auth",
  connection = "network", timeout = "network", tls = "network",
  internal = "internal",
}
local EXIT_FOR_TYPE = _M.EXIT_FOR_TYPE

local HELP = {
  main = [[
cerca - create Cerca webhook subscriptions from a shell, and test a receiver of their deliveries

Usage:
  cerca webhooks create FLEET --url URL [options]
  cerca webhooks create --fleets-file FILE --url URL [options]
  cerca webhooks events
  cerca deliveries sign [--id ID] [--timestamp T] [--data JSON | --data @FILE]
  cerca deliveries send URL --event NAME [--data JSON | --data @FILE]
  cerca --version
  cerca help [COMMAND]

Environment:
  CERCA_API_KEY         the API key (or --api-key-file FILE; never an argument)
  CERCA_BASE_URL        the API's address (or --base-url URL)
  CERCA_CA_FILE         a PEM file of CAs to trust besides the system's (or --ca-file FILE)
  CERCA_WEBHOOK_SECRET  the secret deliveries are signed with (or --secret-file FILE;
                        never an argument)
  CERCA_LOG             debug, info, warn or off: log lines on stderr (unset: none)
  NO_COLOR              no colours, even on a terminal

Exit codes:
  0 success   2 usage or validation error   3 authentication or permission
  4 other API error   5 network, TLS or timeout   6 batch with some failures
  7 the results could not be written (they were printed on stderr instead)
  1 internal error (a bug in cerca), or the library cannot be loaded
  130, 143, 129 a create or batch cut short by Ctrl-C (SIGINT), SIGTERM or
  SIGHUP (a create let end keeps its own code)
  (deliveries send: 3 the receiver refused the delivery (401, 403), 4 it
  answered another non-2xx)

Run 'cerca help webhooks create' for the options of create, 'cerca help
deliveries' for signing and sending test deliveries.
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
  --json                 print the subscription as one JSON object, nothing else
                         on stdout (batch mode always writes JSON lines)
  --base-url URL         the API's address (default CERCA_BASE_URL)
  --ca-file FILE         a PEM file of CAs to trust besides the system's
                         (default CERCA_CA_FILE)
  --api-key-file FILE    read the API key from FILE instead of CERCA_API_KEY
Batch mode (--fleets-file):
  --concurrency N        creates in flight at once, ]] .. cerca.webhooks.CONCURRENCY.min .. [[ to ]]
    .. cerca.webhooks.CONCURRENCY.max .. [[ (default ]] .. cerca.webhooks.CONCURRENCY.default .. [[)
  --out FILE             append the results as JSON lines to FILE instead of
                         stdout. FILE holds secrets: it must be a regular file
                         of yours, not a symbolic link, that no one else may
                         read (a new one is created with mode 0600). Each fleet's idempotency key is
                         recorded there before its create is sent: a re-run
                         skips the fleets already created and repeats the
                         others under the same keys, so an interrupted run is
                         resumed without duplicates
Ctrl-C (or SIGTERM, SIGHUP) stops a batch: no create is started after it, those in
flight end and are written, and a wait to retry ends with its error; the
same signal again quits at once. A single create already sent is let end;
one not yet sent is not sent.
]],
  ["webhooks events"] = [[
Usage:
  cerca webhooks events

Lists the event names a subscription may list, one per line.
]],
  ["deliveries sign"] = [[
Usage:
  cerca deliveries sign [--id ID] [--timestamp T] [--data JSON | --data @FILE]

Prints the three Standard Webhooks headers of a delivery of the body given
(--data, else standard input), signed with the webhook secret, as
"Name: value" lines: give them to curl with -H @FILE, and send the same
bytes (--data-binary, not -d):
  cerca deliveries sign --data @event.json > headers.txt
  curl --data-binary @event.json -H @headers.txt \
       -H 'Content-Type: application/json' http://127.0.0.1:8080/deliveries

Options:
  --data JSON            the body, as given (nothing is added or checked)
  --data @FILE           the body from FILE (at most 1 MiB)
  --id ID                the webhook-id (default: a fresh msg_...)
  --timestamp T          the webhook-timestamp, seconds since the epoch
                         (default: now; receivers refuse one more than
                         5 minutes away)
  --secret-file FILE     read the webhook secret from FILE instead of
                         CERCA_WEBHOOK_SECRET (never give it as an argument)
]],
  ["deliveries send"] = [[
Usage:
  cerca deliveries send URL --event NAME [--data JSON | --data @FILE]

POSTs a signed delivery of an event NAME (one of 'cerca webhooks events') to
the receiver at URL, as the API would, with a fresh webhook-id and the
current time. The body is {"type":NAME,"timestamp":"<RFC 3339, UTC>",
"data":DATA}, DATA the JSON object of --data (sent byte for byte), else
{"id":"<resource>_test"} ("agent_test" for agent.created). Prints the
receiver's status and the start of its answer. No API key is sent;
redirects are not followed; http:// only to loopback hosts.

Options:
  --event NAME           the event's type (required)
  --data JSON            the event's data, a JSON object
  --data @FILE           the event's data from FILE (at most 1 MiB)
  --timeout SECONDS      time allowed for the whole request (default ]]
    .. cerca.POST_DEFAULTS.timeout .. [[)
  --ca-file FILE         a PEM file of CAs to trust besides the system's
                         (default CERCA_CA_FILE)
  --secret-file FILE     read the webhook secret from FILE instead of
                         CERCA_WEBHOOK_SECRET (never give it as an argument)

Exit codes:
  0 the receiver answered 2xx   2 usage error, no or bad secret
  3 the receiver refused the delivery (401, 403: a wrong secret, say)
  4 the receiver answered another status (3xx included)
  5 network, TLS or timeout     1 internal error
]],
}

-- Output: the streams and how to write to them. Replaced by the specs'
-- callers only through real processes: nothing here is global state.
local function new_ui(env)
  local ui = { out = io.stdout, err = io.stderr }
  ui.no_color = (env("NO_COLOR") or "") ~= ""
  ui.color_out = cerca.system.isatty(1) and not ui.no_color
  ui.tty_err = cerca.system.isatty(2)
  -- What `say` prints is checked (written and flushed): a help, a list of
  -- events or a signature lost to a full disk or a closed pipe must not
  -- end with exit 0. The first failure is kept, and `main` reports it.
  function ui.say(...)
    if ui.say_failed then return end
    local ok, why = ui.out:write(...)
    if ok then ok, why = ui.out:flush() end
    if not ok then ui.say_failed = why or "write failed" end
  end
  function ui.warn(...) ui.err:write(...) end
  return ui
end

-- Each command returns the name of its exit code (a key of EXIT), or nil
-- and an error: a usage error (cerca.cli_args) or the library's.

local function webhooks_create(ui, argv, env)
  local o, err = cli_args.parse_create(argv)
  if not o then return nil, err end
  if o.help then
    ui.say(HELP["webhooks create"])
    return "ok"
  end
  if o.fleets_file then return create.batch(ui, o, env) end
  return create.one(ui, o, env)
end

local function deliveries_command(ui, name, argv, env)
  local o, err = cli_args.parse_deliveries(name, argv)
  if not o then return nil, err end
  if o.help then
    ui.say(HELP[name])
    return "ok"
  end
  if name == "deliveries sign" then return deliveries.sign(ui, o, env) end
  return deliveries.send(ui, o, env)
end

local function webhooks_events(ui, argv)
  if #argv > 0 then return nil, usage_error("webhooks events takes no arguments") end
  ui.say(concat(cerca.webhooks.EVENTS, "\n"), "\n")
  return "ok"
end

-- The help of `topic` and of every command it begins ("webhooks" gives
-- "webhooks create" and "webhooks events"), in the order of HELP_ORDER.
local HELP_ORDER = { "webhooks create", "webhooks events", "deliveries sign", "deliveries send" }

local function help_text(topic)
  if topic == "" then return HELP.main end
  if HELP[topic] then return HELP[topic] end
  local texts = {}
  for _, name in ipairs(HELP_ORDER) do
    if name:sub(1, #topic + 1) == topic .. " " then texts[#texts + 1] = HELP[name] end
  end
  if #texts > 0 then return concat(texts, "\n") end
end

local function help(ui, argv)
  local topic = concat(argv, " ")
  local text = help_text(topic)
  if not text then return nil, usage_error("no help for '" .. topic .. "'; try 'cerca help'") end
  ui.say(text)
  return "ok"
end

local function slice(t, from)
  local out = {}
  for i = from, #t do out[#out + 1] = t[i] end
  return out
end

local function dispatch(ui, argv, env)
  local a1, a2 = argv[1], argv[2]
  if a1 == nil then
    -- No command is a usage error: the usage goes to stderr.
    ui.warn(HELP.main)
    return "usage"
  end
  -- Nothing is repeated before this check: not even an unknown command.
  local secret_err = cli_args.secret_in(argv)
  if secret_err then return nil, secret_err end
  if a1 == "help" or a1 == "--help" or a1 == "-h" then return help(ui, slice(argv, 2)) end
  if a1 == "--version" then
    ui.say(format("cerca %s (cerca-lua; %s; libcurl %s)\n", cerca.VERSION, _VERSION, cerca.LIBCURL_VERSION))
    return "ok"
  end
  if a1 == "webhooks" and a2 == "create" then return webhooks_create(ui, slice(argv, 3), env) end
  if a1 == "webhooks" and a2 == "events" then return webhooks_events(ui, slice(argv, 3)) end
  if a1 == "deliveries" and (a2 == "sign" or a2 == "send") then
    return deliveries_command(ui, "deliveries " .. a2, slice(argv, 3), env)
  end
  if (a1 == "webhooks" or a1 == "deliveries") and (a2 == nil or a2 == "--help" or a2 == "-h") then
    ui[a2 and "say" or "warn"](help_text(a1))
    return a2 and "ok" or "usage"
  end
  return nil, usage_error(format("unknown command '%s'; see 'cerca help'", concat(argv, " ")))
end

-- A usage error quotes what was typed: should the API key (from the
-- environment, or --api-key-file once read) have been pasted into the
-- wrong flag, it is removed, in any form the message writes it (quoted
-- with escapes, cut short).
local without_key = cli_args.without_key

-- Says what went wrong, in one line on stderr (and the answer as received
-- when it may hold the secret); returns the name of the exit code.
local function report(ui, err, env)
  if err.type == "cancelled" then
    ui.warn("cerca: stopped before the create was sent: it sent nothing\n")
    return "api"
  end
  if err.usage then
    ui.warn("cerca: ", cerca.printable(without_key(err.message, env)), "\n")
    return "usage"
  end
  local flagged = (err.type == "invalid_request" or err.type == "configuration") and cli_args.flag_message(err)
  if flagged then
    ui.warn("cerca: ", cerca.printable(without_key(flagged, env)), "\n")
    return "usage"
  end
  if err.type == "configuration" and err.field == "CERCA_API_KEY" then
    ui.warn("cerca: no API key: set CERCA_API_KEY, or use --api-key-file FILE\n")
    return "usage"
  end
  -- When an attempt's outcome is not known (whatever the last one got),
  -- the error's line ends with the key that gets the subscription back,
  -- if any: said with the flag a user types.
  ui.warn(cli_args.flag_terms(tostring(err)), "\n")
  local answer = create.kept_answer(err)
  if answer then
    ui.warn(format("cerca: the answer as received (%d bytes; it may hold the subscription's secret):\n%s\n",
      #answer, cerca.printable(answer)))
  end
  return EXIT_FOR_TYPE[err.type] or "api"
end

--- Runs the command line; returns the exit code.
-- @tparam table argv the arguments (`arg` without the script name)
-- @tparam[opt] function env reads an environment variable (default os.getenv)
function _M.main(argv, env)
  env = env or getenv
  cli_args.key_read = nil
  -- Started with stdout closed, the command would print the secrets into
  -- libcurl's first socket, which takes descriptor 1: a write that fails
  -- instead sends them to the rescue on stderr.
  cerca.system.hold_std_streams()
  cerca.system.ignore_write_signals()
  -- The key and the secrets are in this process's memory: a crash or a
  -- Ctrl-\ must not write them into a core file.
  cerca.system.no_core_dumps()
  -- Until every input is read, a signal ends the command (nothing is sent
  -- or written yet): not the interpreter's "interrupted!" error.
  cerca.system.default_stop_signals()
  local ui = new_ui(env)
  -- The exit code, and whether a signal cut the work short (see
  -- cerca.cli_create: "stopped", or an error ended by the stop).
  local ok, code, cut_short = xpcall(function()
    local outcome, err = dispatch(ui, argv, env)
    if ui.say_failed and outcome then
      ui.warn(format("cerca: could not write to stdout (%s)\n", cerca.printable(tostring(ui.say_failed))))
      -- A failure's own code says more (a receiver's 500 is still exit 4).
      if outcome == "ok" or outcome == "partial" then outcome = "output" end
    end
    if outcome == "stopped" then return _M.EXIT.interrupted, true end
    if outcome then return _M.EXIT[outcome] or _M.EXIT.internal, false end
    cli_args.read_key_for_messages(argv)
    local exit = _M.EXIT[report(ui, err, env)] or _M.EXIT.internal
    -- An answer kept on stderr (it may hold the secret) keeps its exit code.
    return exit, err.stopped == true and not create.kept_answer(err)
  end, debug.traceback)
  if not ok then
    -- A bug: one line, without the traceback's file paths and values.
    ui.warn("cerca: internal error: ", (tostring(code):match("^[^\n]*")), "\n")
    code, cut_short = _M.EXIT.internal, false
  end
  -- Everything is written. A SIGINT, SIGTERM or SIGHUP that cut the work short
  -- now ends the process, as it would have at once, so that a shell
  -- script running cerca stops as well; one that came when nothing was
  -- left to stop leaves the exit code to say how the work ended.
  local signal = cerca.system.release_stop_signals()
  if signal and cut_short then
    cerca.system.exit_by_signal(signal)
    return signal == 2 and _M.EXIT.interrupted or signal == 1 and _M.EXIT.hung_up or _M.EXIT.terminated
  end
  return code
end

return _M
