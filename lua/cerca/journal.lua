--- A private journal: an append-only file of JSON lines that may hold
-- secrets (the `cerca` command's `--out` file).
--
--     local cerca = require "cerca"      -- cerca.journal is this module
--     local j, why = cerca.journal.open("results.jsonl")
--     if not j then error(why) end
--     for _, r in ipairs(assert(j:records())) do ... end   -- what earlier runs appended
--     assert(j:append { fleet_id = "fleet_1", idempotency_key = cerca.new_idempotency_key() })
--     assert(j:sync())                   -- on disk before it is acted on
--     j:close()
--
-- The file is private. It is opened without following a symbolic link, and
-- must be a regular file with one link, owned by the effective user; a new
-- file is created with mode 0600 whatever the umask; an existing one that
-- others may read or write (any group or other bit) is refused, since a
-- descriptor one of them opened would keep reading after a chmod, and an
-- existing one of 0700, 0500 or 0400 is set to 0600 (by any user). Every
-- check is made on the open descriptor. Each record is
-- one line, appended at the end (`O_APPEND`). Reading back is bounded:
-- `max_bytes` at most.
--
-- No function raises. A failure is `nil, message, kind` (as `io.open`
-- returns): the message names the file and the fix, and `kind` is one of
-- `"symlink"`, `"not_regular"` (a device, FIFO, socket or directory),
-- `"not_owner"`, `"loose_mode"` (others may read or write it),
-- `"hard_links"`, `"in_use"` (another open journal holds the file: each
-- keeps it locked until closed), `"too_large"` (more than `max_bytes` to
-- read back), `"system"` (the system refused: no such directory, a full
-- disk, ...), `"invalid"` (a wrong argument) or `"closed"`.
-- @module cerca.journal

local core = require "cerca.core"
local json = require "cerca.json"

local type = type
local pcall = pcall
local tostring = tostring
local setmetatable = setmetatable
local getmetatable = getmetatable
local find = string.find
local gmatch = string.gmatch

local _M = {}

--- The most read back from a journal unless `open` is told otherwise:
-- 256 MiB.
_M.MAX_BYTES = 256 * 1024 * 1024

-- The largest max_bytes the core takes: 1 TiB.
local MAX_LIMIT = 1099511627776

local Journal = {}
Journal.__index = Journal
Journal.__name = "cerca.journal"

-- The core's file under `self`, or nil, message and kind.
local function file_of(self, method)
  if getmetatable(self) ~= Journal then
    return nil, "call it as journal:" .. method .. "(...), with a colon", "invalid"
  end
  if not self._file then return nil, self.path .. " is closed", "closed" end
  return self._file
end

--- Opens the journal at `path` for appending and reading back, creating it
-- when it does not exist.
-- @tparam string path the file
-- @tparam[opt] number max_bytes the most `records` reads back (default
--   `MAX_BYTES`, at most 1 TiB)
-- @treturn Journal|nil the journal
-- @treturn[opt] string why it was refused: what the path is, and the fix
-- @treturn[opt] string the kind of refusal (see above)
function _M.open(path, max_bytes)
  if type(path) ~= "string" then return nil, "path must be a string, not a " .. type(path), "invalid" end
  if max_bytes == nil then max_bytes = _M.MAX_BYTES end
  if type(max_bytes) ~= "number" or not (max_bytes >= 1 and max_bytes <= MAX_LIMIT) or max_bytes % 1 ~= 0 then
    return nil, "max_bytes must be a whole number of bytes from 1 to 1 TiB (2^40)", "invalid"
  end
  local file, why, kind = core.open_journal(path, max_bytes)
  if not file then return nil, why, kind end
  return setmetatable({ path = path, _file = file }, Journal)
end

--- An open journal, made by `open`.
-- @type Journal

--- Appends one record, as one line at the end of the file. A line cut
-- short (by a crash or a full disk) is ended first: it is skipped by
-- `records`, and the records appended after it are read back.
-- @param record a table, written as JSON (`cerca.encode_json`), or a string
--   of JSON already encoded, written as it is
-- @treturn boolean|nil true
-- @treturn[opt] string why it was not written
-- @treturn[opt] string the kind: `"system"`, `"invalid"` or `"closed"`
function Journal:append(record)
  local file, why, kind = file_of(self, "append")
  if not file then return nil, why, kind end
  local text = record
  if type(record) == "table" then
    local ok, encoded, ewhy = pcall(json.encode, record)
    if not ok or not encoded then
      return nil, "the record cannot be encoded as JSON: " .. tostring(ok and ewhy or encoded), "invalid"
    end
    text = encoded
  elseif type(record) ~= "string" then
    return nil, "a record is a table or a string of JSON, not a " .. type(record), "invalid"
  end
  if find(text, "\n", 1, true) then return nil, "a record is one line: this one holds a line break", "invalid" end
  -- What `records` would skip is not written: a string that is no JSON
  -- object or array would be reported written, and never read back.
  if type(record) == "string" and type(core.decode(text)) ~= "table" then
    return nil, "a record is a JSON object or array: this string is not one", "invalid"
  end
  -- A line left open (cut short by a crash, a full disk, another process
  -- or an edit made while the journal is open) is ended first, so that
  -- this record is a line of its own and is read back: looked at before
  -- every record, since the file may change between two.
  local open, owhy = file:line_open()
  if open == nil then return nil, owhy, "system" end
  if open then text = "\n" .. text end
  local ok, werr = file:write(text .. "\n")
  if not ok then return nil, werr, "system" end
  return true
end

--- What the journal holds: each line that is a JSON object or array,
-- decoded (as `cerca.decode_json` does), in the order written; other lines
-- (one cut short by a crash, say) are skipped.
-- @treturn table|nil the records
-- @treturn[opt] number on success, how many lines were skipped that do not
--   even start like a record (with `{` or `[`): a line cut short does, so
--   a count above 0 says the file is not a journal (a list of fleet ids
--   given in its place, say)
-- @treturn[opt] string why they cannot be read back, naming the file and,
--   when it is larger than `max_bytes`, the figure
-- @treturn[opt] string the kind: `"too_large"`, `"system"`, `"invalid"` or
--   `"closed"`
function Journal:records()
  local file, why, kind = file_of(self, "records")
  if not file then return nil, why, kind end
  local text, rwhy, rkind = file:read()
  if not text then return nil, rwhy, rkind end
  local records, decode, foreign = {}, core.decode, 0
  for line in gmatch(text, "[^\n]+") do
    local r = decode(line)
    if type(r) == "table" then
      records[#records + 1] = r
    elseif not find(line, "^[{%[]") then
      foreign = foreign + 1
    end
  end
  return records, foreign
end

--- Puts what was appended on disk (`fsync`; the first time, the folder's
-- too, so that a new file's name survives a crash of the system, unless
-- the folder may be written in but not read; the folder it was opened in,
-- whatever the working folder is by then): append a record, `sync`, and
-- only then act on it. A file removed or replaced (an editor's save) while
-- open is `nil` and a message: what was appended is in no file any path names.
-- @treturn boolean|nil true
-- @treturn[opt] string why it could not
-- @treturn[opt] string the kind: `"system"`, `"invalid"` or `"closed"`
function Journal:sync()
  local file, why, kind = file_of(self, "sync")
  if not file then return nil, why, kind end
  local ok, serr = file:sync()
  if not ok then return nil, serr, "system" end
  return true
end

--- Closes the file (also done when the journal is collected, and under
-- Lua 5.4 at the end of a `<close>` variable's scope). Closing twice is
-- harmless; other methods then fail with kind `"closed"`.
-- @treturn boolean|nil true
-- @treturn[opt] string why, when not called with a colon
function Journal:close()
  if getmetatable(self) ~= Journal then return nil, "call it as journal:close(), with a colon" end
  local file = self._file
  self._file = nil
  if file then file:close() end
  return true
end

Journal.__close = Journal.close

--- The path the journal was opened with.
-- @field path

return _M
