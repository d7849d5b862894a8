-- The journal: a private, append-only file of JSON lines that may hold
-- secrets (the `cerca` command's --out file). The C object under it
-- (core.open_journal), the public module (cerca.journal) on its own, then
-- the refusals of both: each private-file promise is tried here directly,
-- and again through the command in cli_files_spec.lua.
local helpers = require "spec.helpers"
local core = require "cerca.core"
local cerca = require "cerca"

local sh = helpers.sh

local q, read, write, mode_owner = helpers.q, helpers.read, helpers.write_private, helpers.mode_owner

local function trim(s) return (s:gsub("%s+$", "")) end

-- The number of descriptors this process holds open on `path`.
local function open_fds(path)
  local pid = read("/proc/self/stat"):match("^(%d+)")
  local out = sh("ls -l /proc/" .. pid .. "/fd")
  local n = 0
  for _ in out:gmatch("%-> " .. path:gsub("%p", "%%%0") .. "\n") do n = n + 1 end
  return n
end

-- Each test gets a fresh folder.
describe("the journal", function()
  local dir

  before_each(function()
    dir = trim((sh("mktemp -d")))
  end)

  after_each(function()
    sh("rm -rf " .. q(dir))
  end)

  describe("core.open_journal", function()
    it("creates a file with mode 0600, appends, and reads the whole of it back", function()
      local path = dir .. "/j.jsonl"
      local j = assert(core.open_journal(path, 1024))
      assert.are.equal("600", (mode_owner(path):match("^%d+")))
      assert.are.equal("", j:read())
      assert.is_true(j:write("one\n"))
      assert.is_true(j:write(""))
      assert.is_true(j:write(("x"):rep(100000):sub(1, 1000)))
      assert.are.equal("one\n" .. ("x"):rep(1000), j:read())
      assert.is_true(j:close())
      assert.are.equal("one\n" .. ("x"):rep(1000), read(path))
    end)

    it("refuses to read back more than max_bytes, naming the file and the figure", function()
      local path = dir .. "/big"
      write(path, ("y"):rep(2049))
      local j = assert(core.open_journal(path, 2048))
      local text, err, kind = j:read()
      assert.is_nil(text)
      assert.are.equal(path .. " is larger than 2 KiB, the most that is read back", err)
      assert.are.equal("too_large", kind)
      j:close()
      j = assert(core.open_journal(path, 2049))
      assert.are.equal(2049, #j:read())
      j:close()
    end)

    it("refuses an existing file of ours that others may read or write, leaving it as it is", function()
      local path = dir .. "/loose"
      write(path, "kept\n")
      for _, mode in ipairs { "666", "640", "604", "620", "602", "610" } do
        sh("chmod " .. mode .. " " .. q(path))
        local j, msg, kind = core.open_journal(path, 1024)
        assert.is_nil(j, mode)
        assert.are.equal("loose_mode", kind)
        assert.are.equal(path .. " can be read or written by others (mode 0" .. mode .. "), and one of them may "
          .. "hold it open to read the secrets written to it, even after a chmod; give a new path (created "
          .. "0600), or chmod 600 it once sure no one else has it open", msg)
        assert.are.equal(mode, (mode_owner(path):match("^%d+")))
        assert.are.equal("kept\n", read(path))
      end
    end)

    it("sets the owner bits of an existing private file to 0600, keeping its content", function()
      local path = dir .. "/owner-only"
      write(path, "kept\n")
      sh("chmod 700 " .. q(path))
      local j = assert(core.open_journal(path, 1024))
      assert.are.equal("600", (mode_owner(path):match("^%d+")))
      assert.are.equal("kept\n", j:read())
      j:close()
    end)

    it("sets a file of its user's without the write bit (0400, 0500) to 0600, without root's powers", function()
      -- Root writes any file: the open runs without root's capabilities,
      -- as any user's would (open for writing is refused for 0400).
      local root = trim(sh("id -u")) == "0"
      for _, mode in ipairs { "400", "500" } do
        local path = dir .. "/read-only-" .. mode .. ".jsonl"
        write(path, '{"a":0}\n')
        sh("chmod " .. mode .. " " .. q(path))
        local script = dir .. "/ro.lua"
        write(script, ("local j = assert(require('cerca').journal.open(%q)) assert(j:append { a = 1 })"
          .. " print('ok') j:close()"):format(path))
        local out = sh((root and "setpriv --bounding-set=-all --inh-caps=-all " or "")
          .. "env LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH=" .. q(helpers.build_dir .. "/?.so;;")
          .. " " .. helpers.interpreter .. " " .. q(script) .. " 2>&1")
        assert.are.equal("ok", trim(out))
        assert.are.equal("600", (mode_owner(path):match("^%d+")))
        assert.are.equal('{"a":0}\n{"a":1}\n', read(path))
      end
    end)

    it("raises for a caller's bug: a bad max_bytes, a closed journal", function()
      assert.has_error(function() core.open_journal(dir .. "/x", 0) end)
      assert.has_error(function() core.open_journal(dir .. "/x", 1.5) end)
      assert.has_error(function() core.open_journal(dir .. "/x") end)
      assert.has_error(function() core.open_journal(nil, 10) end)
      local j = assert(core.open_journal(dir .. "/x", 10))
      assert.is_true(j:close())
      assert.is_true(j:close())
      assert.matches("^cerca%.core%.journal %(closed%)", tostring(j))
      assert.has_error(function() j:read() end, "attempt to use a closed journal")
      assert.has_error(function() j:write("x") end, "attempt to use a closed journal")
    end)
  end)

  describe("cerca.journal", function()
    local journal = cerca.journal

    -- Runs `code` in a fresh interpreter of the suite's kind under `umask`;
    -- returns its output and exit status.
    local function run_lua_under_umask(umask, code)
      local file = dir .. "/snippet.lua"
      write(file, code)
      return sh(("env LUA_PATH=%s LUA_CPATH=%s sh -c %s"):format(q(package.path), q(package.cpath),
        q("umask " .. umask .. " && exec " .. helpers.interpreter .. " " .. q(file))))
    end

    it("is the module cerca.journal, and the public module's journal", function()
      assert.are.equal(require "cerca.journal", cerca.journal)
      assert.are.equal(256 * 1024 * 1024, journal.MAX_BYTES)
    end)

    it("creates a new file with mode 0600 even under umask 000, owned by the user", function()
      local path = dir .. "/new.jsonl"
      local out, status = run_lua_under_umask("000", ([[
        local j = assert(require("cerca").journal.open(%q))
        assert(j:append { n = 1 })
        assert(j:close())
        local f = assert(io.open(%q, "w")) -- the umask is in force for other files
        f:close()
      ]]):format(path, dir .. "/plain"))
      assert.are.equal(0, status, out)
      assert.are.equal("600 root", mode_owner(path))
      assert.are.equal("666 root", mode_owner(dir .. "/plain"))
      assert.are.equal('{"n":1}\n', read(path))
    end)

    it("refuses an existing file of ours that others may read, keeping what it holds", function()
      local path = dir .. "/loose.jsonl"
      write(path, '{"kept":true}\n')
      sh("chmod 644 " .. q(path))
      local j, why, kind = journal.open(path)
      assert.is_nil(j)
      assert.are.equal("loose_mode", kind)
      assert.matches("(mode 0644)", why, 1, true)
      assert.are.equal("644 root", mode_owner(path))
      assert.are.equal('{"kept":true}\n', read(path))
    end)

    it("keeps its file locked while open: another open, here or in another process, is refused", function()
      local path = dir .. "/locked.jsonl"
      local j = assert(journal.open(path))
      local again, why, kind = journal.open(path)
      assert.is_nil(again)
      assert.are.equal("in_use", kind)
      assert.are.equal(path .. " is in use by another run of cerca, which keeps it locked until it ends; wait for "
        .. "that run, or give another path", why)
      local out = run_lua_under_umask("077", ([[
        local j, why, kind = require("cerca").journal.open(%q)
        io.write(tostring(j), " ", tostring(kind))
      ]]):format(path))
      assert.are.equal("nil in_use", out)
      assert.is_true(j:append { fleet_id = "fleet_1" })
      j:close()
      j = assert(journal.open(path))
      assert.are.same({ { fleet_id = "fleet_1" } }, j:records())
      j:close()
    end)

    it("appends: what earlier opens wrote stays, in order, and new records go at the end", function()
      local path = dir .. "/log.jsonl"
      local j = assert(journal.open(path))
      assert.are.same({}, j:records())
      assert.is_true(j:append { fleet_id = "fleet_1", idempotency_key = "k1", pending = true })
      assert.is_true(j:append '{"already":"encoded"}')
      assert.is_true(j:close())
      j = assert(journal.open(path))
      assert.is_true(j:append { fleet_id = "fleet_2", list = cerca.empty_array, none = cerca.null })
      assert.are.same({ { fleet_id = "fleet_1", idempotency_key = "k1", pending = true }, { already = "encoded" },
        { fleet_id = "fleet_2", list = {}, none = cerca.null } }, j:records())
      j:close()
      assert.are.equal('{"fleet_id":"fleet_1","idempotency_key":"k1","pending":true}\n{"already":"encoded"}\n'
        .. '{"fleet_id":"fleet_2","list":[],"none":null}\n', read(path))
    end)

    it("reads back each line that is a JSON object or array, skipping the others (a line cut short)", function()
      local path = dir .. "/cut.jsonl"
      write(path, '{"a":1}\n{"b":\n\n[1,2]\n"text"\n42\nnot json\n{"c":null}\n{"d":')
      local j = assert(journal.open(path))
      local records, foreign = j:records()
      assert.are.same({ { a = 1 }, { 1, 2 }, { c = cerca.null } }, records)
      -- "text", 42 and "not json" do not even start like a record; the
      -- lines cut short do.
      assert.are.equal(3, foreign)
      j:close()
    end)

    it("ends a line cut short before appending, so the next record is read back", function()
      local path = dir .. "/crashed.jsonl"
      write(path, '{"a":1}\n{"fleet_id":"fleet_1","idempot')
      local j = assert(journal.open(path))
      assert.is_true(j:append { fleet_id = "fleet_2" })
      assert.is_true(j:append { fleet_id = "fleet_3" })
      assert.are.same({ { a = 1 }, { fleet_id = "fleet_2" }, { fleet_id = "fleet_3" } }, j:records())
      j:close()
      assert.are.equal('{"a":1}\n{"fleet_id":"fleet_1","idempot\n{"fleet_id":"fleet_2"}\n{"fleet_id":"fleet_3"}\n',
        read(path))
      -- A file that ends its lines, or is empty, gets no blank line.
      path = dir .. "/clean.jsonl"
      write(path, '{"a":1}\n')
      j = assert(journal.open(path))
      assert.is_true(j:append { b = 2 })
      j:close()
      assert.are.equal('{"a":1}\n{"b":2}\n', read(path))
    end)

    it("syncs to disk: true while open, the kind of failure otherwise", function()
      local j = assert(journal.open(dir .. "/sync.jsonl"))
      assert.is_true(j:append { a = 1 })
      assert.is_true(j:sync())
      assert.is_true(j:sync())
      local ok, why, kind = j.sync()
      assert.is_nil(ok)
      assert.matches("journal:sync", why, 1, true)
      assert.are.equal("invalid", kind)
      j:close()
      ok, why, kind = j:sync()
      assert.is_nil(ok)
      assert.are.equal("closed", kind)
      assert.matches("sync.jsonl is closed", why, 1, true)
    end)

    it("syncs in a folder its user may write in but not read (the file; the folder is left to the system)",
        function()
      -- Root reads any folder: the check then runs without root's
      -- capabilities, in a folder of nobody's that others may write in.
      local root = trim(sh("id -u")) == "0"
      local folder = dir .. "/write-only"
      sh("mkdir " .. q(folder))
      if root then
        sh("chown nobody:nogroup " .. q(folder) .. " && chmod 303 " .. q(folder))
      else
        sh("chmod 300 " .. q(folder))
      end
      local code = ("local j = assert(require('cerca').journal.open(%q)) assert(j:append { a = 1 })"
        .. " print('sync', j:sync()) j:close()"):format(folder .. "/keys.jsonl")
      local script = dir .. "/sync.lua"
      write(script, code)
      local out = sh((root and "setpriv --bounding-set=-all --inh-caps=-all " or "")
        .. "env LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH=" .. q(helpers.build_dir .. "/?.so;;") .. " "
        .. helpers.interpreter .. " " .. q(script) .. " 2>&1")
      assert.are.equal("sync\ttrue", trim(out))
      sh("chmod 700 " .. q(folder))
      assert.matches('"a":1', read(folder .. "/keys.jsonl"), 1, true)
    end)

    it("ends a line that a failed write cut short before the next record, so that record is read back", function()
      -- The file size limit cuts the second record short (SIGXFSZ ignored,
      -- as the command does); once lifted, the third must be a line of its own.
      local path = dir .. "/full.jsonl"
      local out, status = helpers.run_lua(([[
        local cerca = require "cerca"
        cerca.system.ignore_write_signals()
        local pid = io.open("/proc/self/stat"):read("*l"):match("^(%%d+)")
        local function limit(v) assert(os.execute("prlimit --pid " .. pid .. " --fsize=" .. v)) end
        local j = assert(cerca.journal.open(%q))
        print("A", j:append { fleet_id = "fleet_A", idempotency_key = "key-A" })
        limit("1024:")
        print("B", (j:append { fleet_id = "fleet_B", idempotency_key = string.rep("k", 1500) }))
        limit("unlimited:")
        print("C", j:append { fleet_id = "fleet_C", idempotency_key = "key-C" })
        for _, r in ipairs(assert(j:records())) do print("read", r.fleet_id, r.idempotency_key) end
      ]]):format(path))
      assert.are.equal(0, status, out)
      assert.are.equal("A\ttrue\nB\tnil\nC\ttrue\nread\tfleet_A\tkey-A\nread\tfleet_C\tkey-C\n", out)
    end)

    it("ends a line cut short while it is open (an edit, another process) before the next record", function()
      local path = dir .. "/edited.jsonl"
      local j = assert(journal.open(path))
      assert.is_true(j:append { fleet_id = "fleet_1", idempotency_key = "k1" })
      assert.is_true(j:append { fleet_id = "fleet_2", idempotency_key = "k2" })
      sh("truncate -s -10 " .. q(path))
      assert.is_true(j:append { fleetId = "fleet_3", secret = "whsec_THE_ONLY_COPY_OF_THIS_SECRET" })
      local records = assert(j:records())
      j:close()
      assert.are.same({ fleet_id = "fleet_1", idempotency_key = "k1" }, records[1])
      assert.are.same({ fleetId = "fleet_3", secret = "whsec_THE_ONLY_COPY_OF_THIS_SECRET" }, records[2])
      assert.are.equal(2, #records)
    end)

    it("writes no string that is not a JSON object or array: it would never be read back", function()
      local path = dir .. "/strings.jsonl"
      local j = assert(journal.open(path))
      for _, bad in ipairs { '{"c":', '"scalar"', "42", "not json", '{"d":"x\0y"}', "" } do
        local ok, why, kind = j:append(bad)
        assert.is_nil(ok, bad)
        assert.is_string(why)
        assert.are.equal("invalid", kind)
      end
      assert.is_true(j:append '{"e":1}')
      assert.is_true(j:append "[1]")
      local records, foreign = j:records()
      j:close()
      assert.are.same({ { e = 1 }, { 1 } }, records)
      assert.are.equal(0, foreign)
      assert.are.equal('{"e":1}\n[1]\n', read(path))
    end)

    it("syncs the folder it was opened in, even once that folder is renamed", function()
      sh("mkdir " .. q(dir .. "/a"))
      local j = assert(journal.open(dir .. "/a/keys.jsonl"))
      assert.is_true(j:append { fleet_id = "fleet_1", idempotency_key = "k1" })
      sh("mv " .. q(dir .. "/a") .. " " .. q(dir .. "/b"))
      local ok, why = j:sync()
      j:close()
      assert.is_true(ok, why)
      assert.matches('"k1"', read(dir .. "/b/keys.jsonl"), 1, true)
    end)

    it("does not say synced when its file was removed or replaced while open (an editor's save)", function()
      for _, how in ipairs { "replaced", "removed" } do
        local path = dir .. "/" .. how .. ".jsonl"
        local j = assert(journal.open(path))
        assert.is_true(j:append { fleet_id = "fleet_1", idempotency_key = "k1" })
        assert.is_true(j:sync())
        if how == "replaced" then
          sh("cp -p " .. q(path) .. " " .. q(path .. ".new") .. " && mv " .. q(path .. ".new") .. " " .. q(path))
        else
          sh("rm " .. q(path))
        end
        assert.is_true(j:append { fleetId = "fleet_1", secret = "whsec_THE_ONLY_COPY_OF_THIS_SECRET" })
        local ok, why, kind = j:sync()
        j:close()
        assert.is_nil(ok, how)
        assert.matches("removed or replaced", why, 1, true)
        assert.are.equal("system", kind)
      end
    end)

    it("bounds what it reads back: more than max_bytes is refused, naming the file and the figure", function()
      local path = dir .. "/big.jsonl"
      write(path, ("y"):rep(2048) .. "\n")
      local j = assert(journal.open(path, 2048))
      local records, why, kind = j:records()
      assert.is_nil(records)
      assert.are.equal(path .. " is larger than 2 KiB, the most that is read back", why)
      assert.are.equal("too_large", kind)
      -- Appending is not bounded by it.
      assert.is_true(j:append { more = true })
      j:close()
      j = assert(journal.open(path, 4096))
      assert.are.same({ { more = true } }, j:records())
      assert.are.equal(2049 + #'{"more":true}\n', #read(path))
      j:close()
      -- The default bound, 256 MiB: a larger file is refused before it is read.
      local huge = dir .. "/huge.jsonl"
      sh("truncate -s 300M " .. q(huge) .. " && chmod 600 " .. q(huge))
      j = assert(journal.open(huge))
      records, why, kind = j:records()
      assert.is_nil(records)
      assert.are.equal(huge .. " is larger than 256 MiB, the most that is read back", why)
      assert.are.equal("too_large", kind)
      j:close()
    end)

    it("appends one line per record, and writes nothing for what is not one", function()
      local path = dir .. "/strict.jsonl"
      local j = assert(journal.open(path))
      for _, bad in ipairs { 42, true, '{"a":\n1}', { f = print }, { 0 / 0 },
          { "result", { ok = true }, fleetId = "fleet_1", secret = "whsec_ONLY_COPY" } } do
        local ok, why, kind = j:append(bad)
        assert.is_nil(ok)
        assert.is_string(why)
        assert.are.equal("invalid", kind)
      end
      j:close()
      assert.are.equal("", read(path))
    end)

    it("never raises: a wrong argument, a closed journal, a method called with a dot", function()
      for _, args in ipairs { { nil }, { 42 }, { dir .. "/x", 0 }, { dir .. "/x", 1.5 }, { dir .. "/x", "10" },
        { dir .. "/x", 0 / 0 }, { dir .. "/x", math.huge }, { dir .. "/x", 2 ^ 41 } } do
        local ok, j, why, kind = pcall(journal.open, args[1], args[2])
        assert.is_true(ok, tostring(j))
        assert.is_nil(j)
        assert.is_string(why)
        assert.are.equal("invalid", kind)
      end
      assert.is_nil(read(dir .. "/x"))
      local j = assert(journal.open(dir .. "/x", 1024))
      local ok, r, why, kind = pcall(j.append, { n = 1 })
      assert.is_true(ok)
      assert.is_nil(r)
      assert.matches("journal:append", why, 1, true)
      assert.are.equal("invalid", kind)
      ok, r, why = pcall(j.close)
      assert.is_true(ok)
      assert.is_nil(r)
      assert.matches("journal:close", why, 1, true)
      assert.is_true(j:close())
      assert.is_true(j:close())
      for _, method in ipairs { "append", "records" } do
        ok, r, why, kind = pcall(j[method], j, { n = 1 })
        assert.is_true(ok, tostring(r))
        assert.is_nil(r)
        assert.are.equal(dir .. "/x is closed", why)
        assert.are.equal("closed", kind)
      end
      assert.are.equal(dir .. "/x", j.path)
    end)
  end)

  -- What both layers promise alike, the C object and the module: the
  -- refusals, and a file closed when the journal is collected.
  for _, layer in ipairs {
    { name = "core.open_journal", open = function(path) return core.open_journal(path, 1024) end },
    { name = "cerca.journal.open", open = function(path) return cerca.journal.open(path) end },
  } do
    describe(layer.name, function()
      local open = layer.open

      it("refuses devices, FIFOs, directories and sockets, saying what they are", function()
        sh("mkfifo " .. q(dir .. "/fifo"))
        local cases = {
          ["/dev/zero"] = "a character device", ["/dev/full"] = "a character device",
          ["/dev/null"] = "a character device", [dir .. "/fifo"] = "a FIFO (named pipe)", [dir] = "a directory",
        }
        for path, what in pairs(cases) do
          local j, err, kind = open(path)
          assert.is_nil(j)
          assert.are.equal(path .. " is " .. what .. "; give the path of a regular file", err)
          assert.are.equal("not_regular", kind)
        end
      end)

      it("refuses a symbolic link, even a dangling one, and leaves its target alone", function()
        local target, link = dir .. "/target", dir .. "/link"
        write(target, "target\n")
        sh("chmod 644 " .. q(target) .. " && ln -s target " .. q(link) .. " && ln -s nowhere " .. q(dir .. "/dangling"))
        for _, path in ipairs { link, dir .. "/dangling" } do
          local j, err, kind = open(path)
          assert.is_nil(j)
          assert.are.equal(path .. " is a symbolic link; give the path of a regular file", err)
          assert.are.equal("symlink", kind)
        end
        assert.are.equal("644 root", mode_owner(target))
        assert.are.equal("target\n", read(target))
        assert.is_nil(read(dir .. "/nowhere"))
      end)

      it("refuses a file of another user, leaving its mode, owner and content, and a file with another link",
        function()
        local theirs = dir .. "/theirs"
        write(theirs, "theirs\n")
        sh("chmod 644 " .. q(theirs) .. " && chown nobody " .. q(theirs))
        local j, err, kind = open(theirs)
        assert.is_nil(j)
        assert.are.equal(theirs .. " belongs to another user (uid 65534); give a file of your own or a new path", err)
        assert.are.equal("not_owner", kind)
        assert.are.equal("644 nobody", mode_owner(theirs))
        assert.are.equal("theirs\n", read(theirs))
        -- A uid above INT_MAX is named as it is, not as a negative number.
        local far = dir .. "/far"
        write(far, "far\n")
        sh("chown 3000000000 " .. q(far))
        j, err, kind = open(far)
        assert.is_nil(j)
        assert.are.equal(far .. " belongs to another user (uid 3000000000); give a file of your own or a new path", err)
        assert.are.equal("not_owner", kind)

        local mine = dir .. "/mine"
        write(mine, "mine\n")
        sh("ln " .. q(mine) .. " " .. q(dir .. "/alias"))
        j, err, kind = open(dir .. "/alias")
        assert.is_nil(j)
        assert.are.equal(dir .. "/alias has 2 hard links (it is also another file); give a file with one link "
          .. "or a new path", err)
        assert.are.equal("hard_links", kind)
        assert.are.equal("mine\n", read(mine))
      end)

      it("says why a path cannot be opened", function()
        local j, err, kind = open(dir .. "/no/such")
        assert.is_nil(j)
        assert.are.equal("cannot open " .. dir .. "/no/such: No such file or directory; give the path of a "
          .. "regular file you can write", err)
        assert.are.equal("system", kind)
      end)

      it("closes its file when collected (and, under 5.4, at the end of a <close> scope)", function()
        local path = dir .. "/gc"
        -- Counted while held (counting allocates: a collection then would
        -- close an unreachable one first), then let go.
        local held = { assert(open(path)) }
        assert.are.equal(1, open_fds(path))
        held[1] = nil
        assert.are.equal(0, #held)
        collectgarbage()
        collectgarbage()
        assert.are.equal(0, open_fds(path))
        if _VERSION == "Lua 5.4" then
          local scoped = assert(load([[
            local open, path, count = ...
            do
              local j <close> = assert(open(path))
              assert(count(path) == 1)
            end
            return count(path)
          ]]))
          assert.are.equal(0, scoped(open, path, open_fds))
        end
      end)
    end)
  end
end)
