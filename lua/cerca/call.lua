--- One logical API call: the state machine from its first attempt to its
-- end. The single path (`call:run`) and the many-at-once drivers
-- (`cerca.batch`, `cerca.nginx`) drive the same object, so both follow one
-- policy:
--
--     local c = call.new(profile, method, path, body, options)  -- or nil, err
--     repeat
--       state, value = c:finish(<one attempt of c:next_request()>)
--     until state ~= "retry"      -- "retry": wait `value` seconds first
--     -- "done": value is the response; "failed": value is the error
--
-- What an answer means is `cerca.outcome`'s; whether and when to try again
-- is `cerca.retry`'s; the request's bytes are `cerca.prepare`'s.
-- @module cerca.call

local core = require "cerca.core"
local errors = require "cerca.errors"
local outcome = require "cerca.outcome"
local prepare = require "cerca.prepare"
local redact = require "cerca.redact"
local retry = require "cerca.retry"

local type = type
local tostring = tostring
local setmetatable = setmetatable
local format = string.format
local find = string.find
local sub = string.sub
local gsub = string.gsub
local concat = table.concat
local min = math.min
local floor = math.floor
local now = core.monotime
local request_id = outcome.request_id

local _M = {}

-- One log line per attempt: what was sent, what came back, what happens
-- next. (Called only when the log takes info lines.)
local function log_attempt(lg, method, path, res, attempt, attempts, elapsed, next_wait, why)
  -- The answer's own secret is removed from what the server wrote (the
  -- request id, the body), in any form; the sink removes the API key.
  local answer = res.json
  local secret = type(answer) == "table" and type(answer.secret) == "string" and answer.secret or nil
  -- A success whose secret is not known may hold it in any field and any
  -- form: its request id and body are not shown (the caller gets them).
  local unsure = outcome.secret_unknown(res)
  local line = format("%s %s status=%s duration_ms=%d attempt=%d/%d", method, path,
    res.status > 0 and tostring(res.status) or res.error, floor(elapsed * 1000 + 0.5), attempt, attempts)
  local rid = request_id(res)
  if rid then
    line = line .. " request_id=" .. (unsure and "(not shown)" or secret and redact.printed(rid, redact.list(secret))
      or rid)
  end
  if res.error and res.status > 0 then line = line .. " error=" .. res.error end
  if next_wait then line = format("%s retry_in=%.2fs reason=%q", line, next_wait, why) end
  -- The line could spell the secret across its parts (a secret holding a
  -- space or a "="): searched whole.
  if secret then line = redact.known(line, redact.list(secret), true) end
  lg:write("info", line)
  if lg.debug then
    local body = res.body
    if unsure then
      body = format("(%d bytes, not shown: a success whose secret cannot be found in it in every form)", #body)
    end
    lg:write("debug", redact.printed(format("%s %s response body: %s", method, path, body), redact.list(secret)))
  end
end

local Call = {}
Call.__index = Call

--- Prepares a call (`cerca.prepare`): checks the per-call options, encodes
-- the body once and draws the idempotency key once, so that every attempt
-- sends the same bytes under the same key.
-- @tparam table profile what the client gives every call: `url`,
--   `timeout`, `connect_timeout`, `max_retries`, `max_response_size`,
--   `no_proxy`, `header_lines(call_headers)`, `secrets`, `log`
-- @treturn table|nil the call
-- @treturn[opt] table the error (nothing was sent)
function _M.new(profile, method, path, body, options, options_copied)
  -- Every field a call gets is named here, the later ones as nil: the
  -- table is made at its final size instead of grown as they arrive.
  local c = {
    method = method,
    path = path,
    attempt = 0,
    secrets = profile.secrets,
    max_response_size = profile.max_response_size,
    log = profile.log,
    -- prepare.call's
    key = nil, attempts = nil, timeout = nil, deadline_seconds = nil, request = nil,
    -- each attempt's
    in_flight = nil, started = nil, deadline = nil, request_sent = nil,
    -- Added only by a failed attempt, which is rare: `last_error` (what a
    -- retry would follow), `created` (a 2xx that could not be used),
    -- `uncertain` (the first attempt that may have acted) and `resent`
    -- (requests libcurl sent again). Named here, they would take the
    -- table's hash part past 16 slots, to 32.
  }
  local _, err = prepare.call(profile, method, path, body, options, c, options_copied)
  if err then return nil, err end
  setmetatable(c, Call)
  return c
end

-- The request as a debug line, once: the credential is left out where it
-- is written, not found later.
local function log_request(lg, method, path, request)
  local lines, shown = request.headers, {}
  if request.idempotency_key then shown[1] = "Idempotency-Key: " .. request.idempotency_key end
  for i = 1, #lines do
    shown[#shown + 1] = find(lines[i], "^[Aa]uthorization:") and "Authorization: " .. redact.REDACTED or lines[i]
  end
  lg:write("debug", format("%s %s headers: %s; body: %s", method, path, concat(shown, "; "), request.body or ""))
end

-- Less than this is left of the deadline: no attempt is worth starting.
local MIN_BUDGET = 0.001

--- The request table for the next attempt (its timeout is what is left of
-- `timeout` and of the deadline), or nil when the deadline has passed:
-- then `expire()` ends the call.
function Call:next_request()
  local t = now()
  if self.deadline_seconds and not self.deadline then self.deadline = t + self.deadline_seconds end
  local budget = self.timeout
  if self.deadline then budget = min(budget, self.deadline - t) end
  if budget < MIN_BUDGET then return nil end
  if self.attempt == 0 and self.log.debug then
    log_request(self.log, self.method, self.path, self.request)
  end
  self.attempt = self.attempt + 1
  self.in_flight = true
  self.request.timeout_ms = prepare.milliseconds(budget)
  self.started = t
  return self.request
end

-- The end of a call that will not be retried: count the attempts, and warn
-- about what a user must not miss.
local function give_up(self, err)
  local created, uncertain = self.created, self.uncertain
  if created and err ~= created.error and not (err.status and err.status >= 200 and err.status < 300
      and sub(err.body or "", 1, #created.body) == created.body) then
    -- An earlier attempt got a 2xx it could not use: the API did create.
    -- Its bytes are the error's body, the later failure its last_error;
    -- unless that is a 2xx whose bytes hold all of the earlier ones (the
    -- same answer, delivered as far or further).
    err = outcome.after_created(created, err)
  elseif uncertain and err ~= uncertain.last and self.key then
    -- The last answer turned the request away, but an earlier attempt's
    -- outcome is unknown: say so, or a repeat without the key duplicates.
    err.message = format("%s; attempt %d's outcome is unknown (%s), so the call may have acted: repeat it "
      .. "with err.idempotency_key to find out without a duplicate", err.message, uncertain.attempt,
      uncertain.error.type)
  end
  -- Whether the call may have acted (created the subscription): a repeat
  -- with err.idempotency_key tells, without a duplicate.
  if uncertain then err.maybe_created = true end
  local attempts = self.attempt + (self.resent or 0)
  err.attempts = attempts
  -- The key a repeat must carry to find what this call may have made, and
  -- whether any attempt's request reached a server (if none did, nothing
  -- can have been made).
  if self.key and self.attempt > 0 then err.idempotency_key = self.key end
  if self.request_sent then err.request_sent = true end
  errors.scrub(err, self.secrets)
  local lg = self.log
  if err.type == "invalid_response" then
    lg:write("warn", format("%s %s: %s", self.method, self.path, err.message))
  elseif attempts > 1 then
    -- The error's line without its own "cerca: " (the log line has one).
    lg:write("warn", format("%s %s failed after %d attempts: %s", self.method, self.path, attempts,
      (gsub(tostring(err), "^cerca: ", ""))))
  end
  return "failed", err
end

--- When the call's deadline leaves no time for another attempt at `t`
-- (monotonic seconds): the time it ends by, and whether that is already
-- past; nil when the call has no deadline running.
-- @tparam number t now
-- @treturn number|nil the time by which its next attempt must start
-- @treturn boolean true when that time has come
function Call:deadline_left(t)
  local deadline = self.deadline
  if not deadline then return nil end
  return deadline - MIN_BUDGET, t + MIN_BUDGET >= deadline
end

--- Ends a call whose deadline passed before its next attempt could start.
-- @treturn string "failed"
-- @treturn table a `timeout` error
function Call:expire()
  return give_up(self, errors.new("timeout", format("no time was left for attempt %d (%s)", self.attempt + 1,
    self.deadline_seconds and format("deadline %g s", self.deadline_seconds) or "timeout under 1 ms")))
end

--- Ends a call whose request could not be handed to the network (no multi
-- handle, or libcurl refused it): that is not an attempt.
-- @tparam string kind the error type
-- @tparam string message why
-- @treturn string "failed"
-- @treturn table the error
function Call:not_sent(kind, message)
  if self.in_flight then
    self.in_flight = false
    self.attempt = self.attempt - 1
  end
  return give_up(self, errors.new(kind, message))
end

--- Ends a call whose batch broke off before it did (a fault inside cerca):
-- an `internal` error that says whether the call may have reached the API,
-- with the key to repeat it under when it may have.
-- @tparam table fault the batch's error
-- @tparam[opt] string what what happened ("the batch stopped before this
--   call ended" unless given)
-- @treturn table the error
function Call:broken_off(fault, what)
  -- A transfer in flight may have had its bytes sent.
  if self.in_flight then self.request_sent = true end
  -- An answer in hand when the fault came (it was being read): a 2xx's
  -- bytes may hold the only copy of a secret, kept as an unusable 2xx's are.
  local answer = self.answer
  local kept = answer and type(answer.status) == "number" and answer.status >= 200 and answer.status <= 299
    and type(answer.body) == "string" and answer.body ~= "" and answer or nil
  local err = errors.new("internal", format("%s (%s); %s%s", what or "the batch stopped before this call ended",
    tostring(type(fault) == "table" and fault.message or fault), self.attempt > 0
      and "it may have reached the API: repeat it with err.idempotency_key" or "it was not sent",
    kept and format("; its answer (HTTP %d) is kept in err.body", kept.status) or ""),
    kept and { status = kept.status, body = kept.body } or nil)
  if kept then self.request_sent = true end
  -- This message says it already.
  if self.attempt > 0 then self.uncertain = { attempt = self.attempt, error = err, last = err } end
  local _
  _, err = give_up(self, err)
  return err
end

--- Ends a call that a batch told to stop (`create_many`'s `stop`) does not
-- go on with: one never sent gets a `cancelled` error; one waiting for its
-- next attempt ends with its last attempt's error, and the key to repeat
-- it under. Either error has `stopped = true`.
-- @tparam string why what stopped the batch
-- @treturn string "failed"
-- @treturn table the error
function Call:stop(why)
  local last = self.last_error
  local state, err
  if self.attempt > 0 and last then
    last.message = format("%s (not retried: %s)", last.message, why)
    state, err = give_up(self, last)
  else
    state, err = give_up(self, errors.new("cancelled", format("not sent: %s before this call started; it sent "
      .. "nothing, and can be sent again later", why)))
  end
  -- Set on what give_up returns: after a 2xx that broke off, that is a
  -- new invalid_response error, not `last`.
  err.stopped = true
  return state, err
end

-- A successful answer, ready for the caller: counted, keyed, and holding
-- nothing of the API key. (The header table is made from the raw block,
-- and the decoded body can hold the key only if the raw text can.)
local function done(self, value)
  local resent = self.resent
  if resent then value.resent = nil end
  value.attempts = self.attempt + (resent or 0)
  value.idempotency_key = self.key
  -- An earlier 2xx that could not be used: should this answer not be
  -- usable either (the resource's check), those bytes are what to keep.
  if self.created then value.created_before = self.created end
  local secrets = self.secrets
  local raw = value.raw_headers or ""
  -- (A repeated field's values are joined with ", " in the table and the
  -- request id: a secret with a comma or a space may be spelt across two.)
  if not redact.absent(raw, secrets) or secrets.joinable then
    value.raw_headers = redact.known(raw, secrets, true)
    value.headers = nil
    local rid = request_id(value)
    value.request_id = rid and redact.known(rid, secrets, true)
  end
  if not redact.absent(value.body, secrets) then
    redact.value(value.json, secrets)
    value.body = redact.known(value.body, secrets)
  end
  return "done", outcome.lazy_headers(value, secrets[1])
end

-- What `finish` says of `res`.
local function settle(self, res)
  self.in_flight = false
  local elapsed = now() - self.started
  if res.request_sent then self.request_sent = true end
  -- Requests libcurl sent again within the attempt count as attempts made
  -- (not against max_retries, which is cerca's own policy).
  if res.resent then self.resent = (self.resent or 0) + res.resent end
  local value, failure = outcome.classify(res, self.max_response_size, self.secrets)
  local lg, attempt, attempts = self.log, self.attempt, self.attempts
  if value then
    if lg.info then log_attempt(lg, self.method, self.path, res, attempt, attempts, elapsed) end
    return done(self, value)
  end
  local err = failure.error
  if failure.created and not self.created then
    -- Kept for the caller, so without the API key, as any error is.
    local secrets, rid = self.secrets, request_id(res)
    self.created = { status = res.status, headers = redact.fields(outcome.headers(res), secrets),
      body = redact.known(res.body, secrets), request_id = rid and redact.text(rid, secrets),
      attempt = attempt, broke_off = res.error ~= nil, error = errors.scrub(err, secrets),
      withheld = outcome.secret_unknown(res) or nil }
  end
  if failure.uncertain then
    -- The first such attempt is the one named; the last, whether the
    -- final error already says so itself.
    local u = self.uncertain
    if u then u.last = err else self.uncertain = { attempt = attempt, error = err, last = err } end
  end
  if err.type == "timeout" and self.deadline and now() + MIN_BUDGET >= self.deadline then
    -- The attempt's time was what the deadline left: name it.
    err.message = format("%s; the call's deadline (%g s) has passed", err.message, self.deadline_seconds)
  end
  self.last_error = err
  local wait, server_wait = retry.next_wait(failure, attempt, attempts, outcome.headers(res))
  -- A wait the server asked for but that is too long is left to the caller.
  if server_wait then err.retry_after = server_wait end
  if not wait or (self.deadline and now() + wait + MIN_BUDGET >= self.deadline) then
    if lg.info then log_attempt(lg, self.method, self.path, res, attempt, attempts, elapsed) end
    return give_up(self, err)
  end
  if lg.info then log_attempt(lg, self.method, self.path, res, attempt, attempts, elapsed, wait, failure.reason) end
  return "retry", wait
end

--- Takes an attempt's response table and says what comes next.
-- @treturn string "done" (value: the response), "failed" (value: the
--   error) or "retry" (value: seconds to wait before the next attempt)
function Call:finish(res)
  -- Held while it is read: should that raise, `broken_off` keeps it.
  self.answer = res
  local state, value = settle(self, res)
  self.answer = nil
  return state, value
end

-- While a call waits to retry, a batch that may be told to stop asks at
-- least this often (seconds).
local STOP_STEP = 0.1

--- Drives the call to its end on `runtime` (`cerca.runtime`): an attempt,
-- then done, failed, or a wait and the next attempt.
-- @tparam[opt] function stop says why the batch stops (a string), or nil:
--   asked while the call waits for a next attempt
-- @treturn table|nil the response
-- @treturn[opt] table the error
function Call:run(runtime, stop)
  while true do
    local request = self:next_request()
    local state, value
    if request then
      state, value = self:finish(runtime:attempt(request))
    else
      state, value = self:expire()
    end
    if state == "retry" and not stop then
      runtime:sleep(value)
    elseif state == "retry" then
      -- The wait goes by in short steps, asking between them.
      local why, wake = stop(), now() + value
      while not why and now() < wake do
        runtime:sleep(min(STOP_STEP, wake - now()))
        why = stop()
      end
      if why then state, value = self:stop(why) end
    end
    if state == "done" then return value end
    if state == "failed" then return nil, value end
  end
end


--- True when `v` is a call made by `new`.
function _M.is_call(v)
  return getmetatable(v) == Call
end

return _M
