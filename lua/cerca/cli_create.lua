--- `cerca webhooks create`: one create, or a batch from `--fleets-file`,
-- and where their results go (stdout, the `--out` journal, or stderr when
-- neither can be written: a secret is never lost). Each function returns
-- the name of its exit code in `cerca.cli.EXIT` ("ok", "partial",
-- "output"), "stopped" when a signal cut it short, or nil and an error (a
-- usage error or the library's).
-- @module cerca.cli_create

local cerca = require "cerca"
local cli_args = require "cerca.cli_args"

local type = type
local ipairs = ipairs
local concat = table.concat
local tostring = tostring
local sort = table.sort
local format = string.format
local rep = string.rep
local gsub = string.gsub
local floor = math.floor
local min = math.min
local max = math.max

local usage_error = cli_args.usage_error

local _M = {}

--- Fleets per `create_many` call at most (see `batch`).
_M.BATCH_SLICE = 100000

-- Table entries `create_many` reads for `item`: its own and those of the
-- tables it holds, as often as they are held (the params all items share
-- count for each), and one for its place in the list.
-- An error's line after the "cerca: " it starts with: a batch's lines
-- already start with it, and the fleet.
local function after_prefix(err)
  return (gsub(tostring(err), "^cerca: ", "", 1))
end

local function entries_of(item)
  local n = 1
  for _, v in pairs(item) do
    n = n + 1
    if type(v) == "table" then n = n + entries_of(v) - 1 end
  end
  return n
end

--- Fleets per `create_many` call for these items (all alike: the same
-- params, a key each or none): as many as one call reads the entries of
-- (`cerca.webhooks.MAX_ENTRIES`), `BATCH_SLICE` at most.
function _M.slice_size(items)
  if #items == 0 then return _M.BATCH_SLICE end
  return max(1, min(_M.BATCH_SLICE, floor(cerca.webhooks.MAX_ENTRIES / entries_of(items[1]))))
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
    .. "secrets: store it now\n", cerca.printable(where), cerca.printable(tostring(why))), text)
  return "output"
end

-- The JSON text of a subscription. Whatever cerca returned as created is
-- written: should a field ever resist encoding, the fields that identify
-- the subscription and its secret (strings by the time a create succeeds)
-- are written instead of nothing.
local function subscription_json(sub)
  local text = cerca.encode_json(sub)
  if text then return text end
  return cerca.encode_json { id = sub.id, fleetId = sub.fleetId, url = sub.url, secret = sub.secret }
end

-- A create that succeeded on a repeat, whose earlier attempt's answer does
-- not show the subscription the repeat answered (the library's
-- `res.created_before`: a server that made a second one in spite of the
-- key): that answer may hold the second subscription's only copy of its
-- secret. What to say of it (after "cerca: FLEET: "), its bytes and the
-- error holding them; nil when there is none.
local function earlier_answer(res)
  local before = res and res.created_before
  if not before then return nil end
  local body = type(before.body) == "string" and before.body or ""
  return format("warning: created on a repeat, but an earlier attempt's answer (HTTP %s, %d bytes) does not show "
    .. "this subscription: it may hold a second subscription and its secret", tostring(before.status), #body),
    body, before
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
  return "ok"
end

-- The client for the options, or nil and an error. Every input is read
-- by then (the --api-key-file last): from here on SIGINT, SIGTERM and
-- SIGHUP are caught, so that a signal cannot cut off a create whose
-- secret is on its way (the first of each is caught; a second one quits
-- at once). Before, nothing is sent or written, and a signal ends the
-- process at once, a wait on a FIFO included. `cerca.cli.main` gives the
-- signals back once the results are written, and ends by the one caught
-- when it cut the work short (the work returned "stopped", or an error
-- with `stopped`).
local function client_of(o, env)
  local opts, err = cli_args.client_options(o, env)
  if not opts then return nil, err end
  local client
  client, err = cerca.new(opts)
  if not client then return nil, err end
  cerca.system.catch_stop_signals()
  return client
end

-- How to send `name` (a signal caught) again.
local function again(name)
  return name == "SIGINT" and "Ctrl-C" or name
end

-- A `stop` for `create_many` over the signal the command caught (see
-- `client_of`): it says once, through `on_first(name)`, what happens now,
-- and gives the signal's name as the reason the calls not ended stop.
local function signal_stop(on_first)
  local seen
  return function()
    if not seen then
      local _, name = cerca.system.stop_signal()
      if name then
        seen = name
        on_first(name)
      end
    end
    return seen
  end
end

-- One create, for the one FLEET given. It runs as a batch of one, so that
-- a signal ends a wait to retry at once (a create in flight is let end).
local function one(ui, o, env)
  if #o.fleets ~= 1 then
    return nil, usage_error("give one FLEET, or --fleets-file FILE for many")
  end
  for _, flag in ipairs { "concurrency", "out" } do
    if o[flag] then return nil, usage_error("--" .. flag .. " goes with --fleets-file") end
  end
  local params, perr = cli_args.params(o)
  if not params then return nil, perr end
  local client, err = client_of(o, env)
  if not client then return nil, err end
  -- Drawn here, so that a user who quits at once knows the key to repeat
  -- with (should none be drawn, the create draws its own, unnamed).
  local key = o.idempotency_key or cerca.new_idempotency_key()
  local results, cerr = client.webhooks.create_many({
    { fleet_id = o.fleets[1], params = params, options = key and { idempotency_key = key } or nil },
  }, {
    concurrency = 1,
    stop = signal_stop(function(name)
      -- Whether the create was sent is known only once it ends: say both.
      ui.warn(format("cerca: %s: stopping; a create not yet sent is not sent, one already sent is let end (%s "
        .. "again quits at once%s)\n", name, again(name), key and format(": if it was sent, repeat with "
          .. "--idempotency-key %s to get its subscription without a duplicate", cerca.printable(key)) or ""))
    end),
  })
  client:close()
  if not results then return nil, cerr end
  local r = results[1]
  if not r.ok then return nil, r.error end
  local shown = show_subscription(ui, r.subscription, o.json)
  local said, answer = earlier_answer(r.response)
  -- After the subscription, on stderr as a kept answer of a failure is.
  -- The exit code stays that of the create, which succeeded: a script that
  -- took a failure's code for "nothing was created" would drop the secret
  -- shown, or create again under a new key.
  if said then
    ui.warn(format("cerca: %s: %s; it follows as received:\n%s\n", cerca.printable(o.fleets[1]), said,
      cerca.printable(answer)))
  end
  return shown
end

-- What an --out journal says of earlier runs: the fleets created (a record
-- with a secret), and the idempotency key each other fleet was sent under;
-- or nil, nil and a usage error when it cannot be read back.
-- The parameters of a batch as its --out records them (the first time the
-- file is used), and as a re-run's are compared with them: the events in
-- sorted order, since the order of --event flags does not matter.
local function run_params(params)
  local recorded = { url = params.url, extra_body = params.extra_body }
  if type(params.events) == "table" then
    recorded.events = {}
    for i, event in ipairs(params.events) do recorded.events[i] = event end
    sort(recorded.events, function(a, b) return tostring(a) < tostring(b) end)
  end
  return recorded
end

-- The flags whose values differ between the parameters an --out recorded
-- and this run's ("--url and --event"), or nil when none does: resumed
-- with another --url, its fleets created for the old one would be skipped,
-- and the others repeated under keys the API holds for another body.
local FLAG_OF = { { "url", "--url" }, { "events", "--event" }, { "extra_body", "--extra" } }
local function changed_flags(recorded, params)
  local was, now, changed = run_params(recorded), run_params(params), {}
  for _, pair in ipairs(FLAG_OF) do
    local name = pair[1]
    if cerca.encode_json({ was[name] }) ~= cerca.encode_json({ now[name] }) then changed[#changed + 1] = pair[2] end
  end
  -- Anything else in the record (written by hand) is a difference too.
  if #changed == 0 and cerca.encode_json(was) ~= cerca.encode_json(now) then changed[1] = "--extra" end
  return #changed > 0 and concat(changed, " and ") or nil
end

local function resumed(journal, params)
  local created, keys, started_with = {}, {}, nil
  local records, why, kind = journal:records()
  if not records then
    -- Its keys are what repeats its creates without a duplicate: the way
    -- on keeps them (the lines without a secret are far fewer).
    return nil, nil, usage_error("--out " .. why .. (kind == "too_large" and format("; its keys are needed to "
      .. "repeat its creates without duplicates: make a new --out of its lines that hold no secret, "
      .. "(umask 077; grep -v '\"secret\"' %s > NEW), and re-run with --out NEW: each fleet goes again "
      .. "under its recorded key, which gets the subscription already made, not a second one",
      journal.path) or ""))
  end
  local foreign = why
  if foreign > 0 then
    -- Not written by cerca (a fleets file given as --out, say): appending
    -- secrets to it would mix them into a file kept as something else.
    return nil, nil, usage_error(format("--out %s holds %d line%s that no run of cerca wrote (a record starts "
      .. "with {); is it the --fleets-file? give the --out file of an earlier run, or a new path", journal.path,
      foreign, foreign == 1 and "" or "s"))
  end
  for _, r in ipairs(records) do
    if type(r.fleetId) == "string" and type(r.secret) == "string" then
      created[r.fleetId] = true
    elseif type(r.fleet_id) == "string" and type(r.idempotency_key) == "string" then
      keys[r.fleet_id] = keys[r.fleet_id] or r.idempotency_key
    elseif type(r.params) == "table" and started_with == nil then
      started_with = r.params
    end
  end
  local changed = started_with and changed_flags(started_with, params)
  if changed then
    -- The values are not quoted: a --url may carry a token in its query.
    return nil, nil, usage_error(format("--out %s holds a batch started with another %s; a re-run resumes it only "
      .. "with the same --url, --event and --extra: repeat those, or give a new --out for these", journal.path,
      changed))
  end
  return created, keys, started_with ~= nil
end

-- Opens --out (see cerca.journal: a private file, append-only) and reads
-- back what earlier runs recorded there: the journal, the fleets created
-- and the keys sent under; or nil and a usage error naming the file and
-- the fix.
local function open_out(path, params)
  local journal, why = cerca.journal.open(path)
  if not journal then return nil, usage_error("--out " .. why) end
  local created, keys, recorded = resumed(journal, params)
  if not created then
    journal:close()
    return nil, recorded
  end
  return journal, created, keys, recorded
end

-- Draws the bar (on stderr, a terminal); returns its length.
local function progress(ui, done, total, failed)
  local width = 30
  local filled = total > 0 and floor(width * done / total) or width
  local bar = format("\r[%s%s] %d/%d%s", rep("#", filled), rep(".", width - filled), done, total,
    failed > 0 and format(" (%d failed)", failed) or "")
  ui.warn(bar)
  return #bar
end

--- The raw text of an answer that could not be used: it may still hold
-- the subscription's secret, and is kept with the error (nil when none).
function _M.kept_answer(err)
  -- (An `internal` error keeps one too: a fault while a 2xx was read.)
  if (err.type == "invalid_response" or err.type == "internal") and type(err.body) == "string" and err.body ~= "" then
    return err.body
  end
end

-- A failure's record: `key` is the one --out recorded; without it, the key
-- the attempts went out under, when some request reached a server (one
-- that reached none made nothing, and a key would only suggest otherwise).
local function error_record(fleet_id, err, key)
  local sent = err.request_sent or err.maybe_created
  return { fleet_id = fleet_id, idempotency_key = key or (sent and err.idempotency_key) or nil,
    error = { type = err.type, message = err.message, status = err.status, request_id = err.request_id,
      request_sent = err.request_sent or false, maybe_created = err.maybe_created or false,
      answer = _M.kept_answer(err) } }
end

local function batch(ui, o, env)
  if #o.fleets > 0 then return nil, usage_error("give FLEET or --fleets-file, not both") end
  if o.idempotency_key then
    return nil, usage_error("--idempotency-key is for a single fleet; each fleet of a batch gets its own key")
  end
  local concurrency, cerr = cli_args.concurrency(o)
  if not concurrency then return nil, cerr end
  local params, perr = cli_args.params(o)
  if not params then return nil, perr end
  local fleets, ferr = cli_args.fleets(o)
  if not fleets then return nil, ferr end
  local client, err = client_of(o, env)
  if not client then return nil, err end
  -- A fleets file that holds the API key is refused (once the key is
  -- read): its ids would be printed and recorded.
  local held = cli_args.key_in_fleets(fleets, o.fleets_file, env)
  if held then
    client:close()
    return nil, held
  end
  -- What every create of the batch shares (--url, --event, --extra, the
  -- client's options) is checked before anything is written or sent: a
  -- flag typed wrong is a usage error naming it, not one failure per
  -- fleet, and no --out records it. (A fleet's own id is checked with its
  -- create: a bad one fails alone.)
  local _, shared = client.webhooks.check(fleets[1] or "fleet", params)
  if shared and shared.field ~= "fleet_id" then
    client:close()
    return nil, shared
  end

  -- The --out file is opened and read back before anything is sent: a
  -- refusal is a usage error.
  local created, keys, journal, params_recorded = {}, {}, nil, false
  if o.out then
    local jcreated, jkeys
    journal, jcreated, jkeys, params_recorded = open_out(o.out, params)
    if not journal then
      client:close()
      return nil, jcreated
    end
    created, keys = jcreated, jkeys
  end
  local todo, skipped = {}, 0
  for _, fleet in ipairs(fleets) do
    if created[fleet] then skipped = skipped + 1 else todo[#todo + 1] = fleet end
  end

  local where = o.out or "stdout"
  -- `sending`: creates have started. From the first record that cannot be
  -- written on, each one goes to stderr as it comes: held back until the
  -- end, a second Ctrl-C or a crash would lose the secrets in it.
  -- (Before that, a record only holds the key of a create not sent.)
  local write_error, sending = nil, false
  -- The length of the progress bar drawn on the terminal stdout shares,
  -- if any: a line written there would follow the bar's text (a secret
  -- behind "[###...] 3/10"), so the bar is wiped first, and drawn again.
  local bar_shown = nil
  local function record(value)
    local json = value.secret and subscription_json(value) or cerca.encode_json(value)
    local line = json .. "\n"
    if not write_error then
      local ok, why
      if bar_shown then ui.warn("\r" .. rep(" ", bar_shown) .. "\r") end
      if journal then ok, why = journal:append(json) else ok, why = put(ui.out, line) end
      if ok then return end
      write_error = why
      if sending then rescue(ui, where, why, "") end
    end
    if sending then ui.warn(line) end
  end

  -- With --out, every fleet's key is drawn (or taken from the earlier run)
  -- and recorded before anything is sent: whatever happens next, a re-run
  -- repeats each create under the same key, and the API answers it without
  -- a duplicate. Without it, each create draws its own key, and a failure's
  -- record gives the key its attempts were sent under.
  local items = {}
  if journal and not params_recorded and #todo > 0 then
    -- First, what the batch is made with: a re-run must be made with it too.
    record { params = run_params(params) }
  end
  for i, fleet in ipairs(todo) do
    items[i] = { fleet_id = fleet, params = params }
    if o.out then
      local key = keys[fleet]
      -- Only a key drawn now is recorded: a re-run adds no line for a key
      -- the file holds, so that re-runs do not grow it.
      if not key then
        key = cerca.new_idempotency_key()
        record { fleet_id = fleet, idempotency_key = key, pending = true }
      end
      items[i].options = { idempotency_key = key }
    end
  end
  if journal and not write_error and #items > 0 then
    -- On disk, not only in the system's cache, before anything is sent: a
    -- crash of the machine must not lose a key a create went out under.
    local ok, why = journal:sync()
    if not ok then write_error = why end
  end
  if write_error then
    -- Without the keys on disk a re-run could not repeat these creates
    -- safely: send nothing.
    client:close()
    journal:close()
    ui.warn(format("cerca: could not write to %s (%s); nothing was sent\n", cerca.printable(where),
      cerca.printable(tostring(write_error))))
    return "output"
  end
  sending = true

  -- unsent: cancelled, never sent; cut: ended by a signal (unsent ones too);
  -- doubtful: created, with an earlier answer that may hold another (a
  -- warning, with a record of its own: the exit code is the batch's)
  local done, failed, unsent, cut, doubtful = 0, 0, 0, 0, 0
  local show_progress = ui.tty_err and #items > 0
  local bar_shares_stdout = show_progress and not journal and cerca.system.isatty(1)
  local function draw_bar()
    local len = progress(ui, done, #items, failed)
    if bar_shares_stdout then bar_shown = len end
  end
  if show_progress then draw_bar() end
  -- The failures listed again under the progress bar once it is done, as
  -- { index, the line's text }: only those lines are kept, not the results
  -- (the secrets among them, and an unusable answer's raw body an error may
  -- hold), which are written as they come.
  local failures = {}
  local function on_result(i, r)
    if show_progress and not r.ok and r.error.type ~= "cancelled" then
      failures[#failures + 1] = { i, after_prefix(r.error) }
    end
    done = done + 1
    -- Written as it arrives: an interrupted run keeps every secret so far.
    if r.ok then
      record(r.subscription)
      local said, answer, before = earlier_answer(r.response)
      if said then
        doubtful = doubtful + 1
        record { fleet_id = todo[i], created_before = { message = before.message, status = before.status,
          request_id = not before.withheld and before.request_id or nil, answer = answer } }
        said = said .. "; it is the created_before.answer of the record after the subscription's"
        if show_progress then
          failures[#failures + 1] = { i, said }
        else
          ui.warn(format("cerca: %s: %s\n", cerca.printable(todo[i]), said))
        end
      end
    else
      local cancelled = r.error.type == "cancelled"
      if cancelled then unsent = unsent + 1 else failed = failed + 1 end
      if r.error.stopped then cut = cut + 1 end
      record(error_record(todo[i], r.error, items[i].options and items[i].options.idempotency_key))
      if not show_progress and not cancelled then
        ui.warn(format("cerca: %s: %s\n", cerca.printable(todo[i]), after_prefix(r.error)))
      end
    end
    if show_progress then draw_bar() end
  end
  -- SIGINT, SIGTERM or SIGHUP (caught since `client_of`) stops the batch: no
  -- create is started after it, those in flight end and are written.
  local stopped_by
  local stop = signal_stop(function(name)
    stopped_by = name
    ui.warn(format("%scerca: %s: stopping; the creates in flight end and are written (%s again quits at once, "
      .. "%s)\n", show_progress and "\n" or "", name, again(name), o.out
      and "and a re-run with the same --out repeats them under their keys"
      or "losing the secrets of those in flight"))
  end)
  -- The fleets go to `create_many` a slice at a time: one call reads a
  -- bounded number of table entries (the shared params count for every
  -- fleet), and a fleets file may list more.
  local refusal, slice_size = nil, _M.slice_size(items)
  for first = 1, #items, slice_size do
    local slice = {}
    for i = first, min(#items, first + slice_size - 1) do slice[#slice + 1] = items[i] end
    local got, why = client.webhooks.create_many(slice, {
      concurrency = concurrency,
      on_result = function(k, r) on_result(first + k - 1, r) end,
      stop = stop,
    })
    -- Each result went to on_result: the slice's are let go here.
    if not got then
      refusal = why
      break
    end
  end
  client:close()
  if journal then
    -- The secrets too (should a line be lost all the same, a re-run
    -- repeats its create under its key, and gets the same subscription).
    local synced, why = journal:sync()
    if not synced then
      ui.warn(format("cerca: %s: %s; the results are written, but a crash of the system may lose them\n",
        cerca.printable(o.out), cerca.printable(tostring(why))))
    end
    journal:close()
  end
  if show_progress then
    ui.warn("\n")
    sort(failures, function(a, b) return a[1] < b[1] end)
    for _, f in ipairs(failures) do
      ui.warn(format("cerca: %s: %s\n", cerca.printable(todo[f[1]]), f[2]))
    end
  end
  local created_count = done - failed - unsent
  ui.warn(format("cerca: %s%d created%s, %d failed%s%s%s\n", cut > 0 and format("stopped by %s: ", stopped_by) or "",
    created_count, doubtful > 0 and format(" (%d with an earlier answer to check: created_before)", doubtful) or "",
    failed, unsent > 0 and format(", %d not sent", unsent) or "",
    o.out and format(", %d skipped (already in %s)", skipped, cerca.printable(o.out)) or "",
    (created_count > 0 and not o.out) and "; the secrets above are shown once" or ""))
  -- What could not be written went to stderr as it came (see `record`).
  if write_error then return "output" end
  if refusal then return nil, refusal end
  -- Cut short by a signal: `cerca.cli.main` ends by it.
  if cut > 0 then return "stopped" end
  return failed > 0 and "partial" or "ok"
end

--- One create, for the one FLEET given; a Ctrl-C lets it end and shows it.
-- @tparam table ui the output streams (`out`, `say`, `warn`, `color_out`, `tty_err`)
-- @tparam table o the options (`cerca.cli_args.parse_create`)
-- @tparam function env reads an environment variable
function _M.one(ui, o, env)
  return one(ui, o, env)
end

--- A create for each fleet of `--fleets-file`, through `create_many`; the
-- results as JSON lines on stdout or in the `--out` journal, from which a
-- re-run resumes. SIGINT, SIGTERM or SIGHUP stops it between creates.
-- @tparam table ui the output streams
-- @tparam table o the options
-- @tparam function env reads an environment variable
function _M.batch(ui, o, env)
  return batch(ui, o, env)
end

return _M
