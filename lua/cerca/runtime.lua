--- Where a client's calls run. One runtime is chosen when the client is
-- made, and everything that differs between plain Lua and nginx goes
-- through it:
--
--     rt:context_error()   why no call can be made from here, or nil
--     rt:attempt(request)  one HTTP attempt -> the C core's response table
--     rt:sleep(seconds)    the wait before a retry
--     rt.log_sink          function(level, line): where log lines go
--     rt:run_many(calls, keys, concurrency, on_done, more)   many calls at
--                          once; `more()`, when given, adds calls (and keys)
--                          and says whether others are to come
--     rt:close()           drops kept connections (the runtime stays usable)
--
-- This module is the plain-Lua runtime: one libcurl session per client,
-- kept between calls, and a curl multi handle for many calls at once.
-- Inside nginx's Lua module, `new` gives the nginx runtime instead
-- (`cerca.nginx`).
-- @module cerca.runtime

local batch = require "cerca.batch"
local core = require "cerca.core"
local transport = require "cerca.transport"

local type = type
local pcall = pcall
local select = select
local error = error
local setmetatable = setmetatable
local stderr = io.stderr

local _M = {}

local Plain = {}
Plain.__index = Plain

--- The plain-Lua runtime.
-- @tparam table conn `ca_file`, `user_agent` (what a session is opened with)
-- @tparam[opt] boolean keep false: open a connection per attempt and per
--   batch, and keep none (nginx's master, whose workers fork later)
function _M.plain(conn, keep)
  return setmetatable({ conn = conn, keep = keep ~= false, closes = 0 }, Plain)
end

--- The runtime for where this code runs: nginx's, inside nginx's Lua
-- module; else the plain one.
-- @tparam table conn `ca_file`, `user_agent`, `thread_pool`
function _M.new(conn)
  if type(ngx) == "table" and type(ngx.get_phase) == "function" then
    return require("cerca.nginx").new(conn)
  end
  return _M.plain(conn)
end

function Plain.context_error()
  return nil
end

function Plain:attempt(request)
  if not self.keep then return transport.attempt_once(self.conn, request) end
  -- The attempt owns the session while it runs, as a batch owns its multi
  -- handle: a finalizer (`__gc`) of the caller's that the collector runs
  -- inside it, and that calls this client, gets a session of its own, and
  -- its close() cannot free the buffers this attempt's answer is read from.
  -- Afterwards the session is kept, unless the runtime was closed meanwhile
  -- or a nested attempt kept its own.
  local s = self.session
  self.session = nil
  if not s then
    local why
    s, why = transport.open(self.conn)
    if not s then return transport.failed("internal", why) end
  end
  local closes = self.closes
  -- (Should the core raise, the session is left to the collector.)
  local res = s:request(request)
  if self.closes == closes and not self.session then
    self.session = s
  else
    s:close()
  end
  return res
end

function Plain.sleep(_, seconds)
  core.sleep(seconds)
end

function Plain.log_sink(_, line)
  stderr:write(line, "\n")
end

--- Runs `calls` (key -> `cerca.call`, in the order of `keys`) at most
-- `concurrency` at a time over the runtime's curl multi handle, kept
-- between batches for its connection cache. `more`, when given, is called
-- between polls while the first calls are in flight, and `stop`, when
-- given, once it is over (see `cerca.batch`).
function Plain:run_many(calls, keys, concurrency, on_done, more, stop)
  local m = self.multi
  self.multi = nil
  if not m then
    local why
    m, why = transport.open_multi(self.conn)
    if not m then
      while more and more() do end
      for i = 1, #keys do on_done(keys[i], nil, select(2, calls[keys[i]]:not_sent("connection", why))) end
      return
    end
  end
  m:limit(concurrency)
  -- The batch owns the handle while it runs: a close() from a callback
  -- cannot pull it from under transfers in flight. Afterwards it is kept,
  -- or closed: after a failed batch (transfers may be left in it), when
  -- the runtime was closed meanwhile, or when nothing is to be kept.
  local closes = self.closes
  local ok, err = pcall(batch.over_multi, m, calls, keys, concurrency, on_done, self, more, stop)
  if ok and self.keep and self.closes == closes and not self.multi then
    self.multi = m
  else
    m:close()
  end
  if not ok then error(err, 0) end
end

function Plain:close()
  local s, m = self.session, self.multi
  self.session, self.multi = nil, nil
  self.closes = self.closes + 1
  if s then s:close() end
  if m then m:close() end
end

return _M
