-- The files the `cerca` command reads and writes: --out (the resume journal,
-- which holds secrets), --fleets-file and --api-key-file. Devices, FIFOs,
-- symbolic links, other users' files and endless input are refused with a
-- usage error before anything is sent. The command is installed with
-- LuaRocks into a fresh tree, as in cli_spec.lua; journal_spec.lua tries
-- the same promises of --out on the journal (cerca.journal) directly.
local helpers = require "spec.helpers"
local cjson = require "cjson"

local sh = helpers.sh

local q, read, write, mode_owner = helpers.q, helpers.read, helpers.write_private, helpers.mode_owner

describe("the cerca command's files", function()
  local srv, work, cerca_bin, tree_paths

  setup(function()
    srv = helpers.start_server()
    work, cerca_bin, tree_paths = helpers.install_command()
  end)

  teardown(function()
    if srv then srv:stop() end
    if work then sh("rm -rf " .. q(work)) end
  end)

  before_each(function() srv:reset() end)

  -- Runs the installed command under bash (for <(...)), bounded in time and
  -- memory so that a regression fails instead of hanging or exhausting the
  -- machine: `timeout` exits 124. `args` is shell text; opts: `umask`,
  -- `api_key`, `tail` (shell text after the command's redirections),
  -- `prefix` (a command the command runs under).
  -- Returns stdout, stderr, exit code.
  local function run(args, opts)
    opts = opts or {}
    local err_file = work .. "/stderr"
    local cmd = ("cd %s && %s && ulimit -v 2000000 && umask %s && env -u NO_COLOR -u CERCA_LOG "
      .. "CERCA_API_KEY=%s CERCA_BASE_URL=%s timeout 10 %s%s %s 2>%s </dev/null %s")
      :format(q(work), tree_paths, opts.umask or "022", q(opts.api_key or srv.api_key), q(srv.http_url),
        opts.prefix or "", q(cerca_bin), args, q(err_file), opts.tail or "")
    local out, status = sh("bash -c " .. q(cmd))
    return out, read(err_file) or "", status
  end

  -- Writes the fleets file; returns its path, quoted for the shell.
  local function fleets_file(text)
    local path = work .. "/fleets.txt"
    write(path, text or "fleet_a\nfleet_b\n")
    return q(path)
  end

  -- A batch over `fleets` (the fleets file's text) that succeeds, to a new
  -- --out file `name` in the work folder; returns its path.
  local function batch_to_new_out(name, fleets)
    local outfile = work .. "/" .. name
    os.remove(outfile)
    local _, err, status = run("webhooks create --fleets-file " .. fleets_file(fleets)
      .. " --url https://example.com/h --out " .. q(outfile))
    assert.are.equal(0, status, err)
    return outfile
  end

  -- A batch create that must be refused with exactly `message`, exit 2,
  -- nothing on stdout and nothing sent.
  local function refused(out_arg, message)
    local out, err, status = run("webhooks create --fleets-file " .. fleets_file()
      .. " --url https://example.com/h --out " .. out_arg)
    assert.are.equal(2, status, err)
    assert.are.equal("", out)
    assert.are.equal("cerca: " .. message .. "\n", err)
    assert.are.same({}, srv:requests())
  end

  describe("--out", function()
    it("refuses /dev/zero and /dev/full at once: exit 2, nothing sent", function()
      refused("/dev/zero", "--out /dev/zero is a character device; give the path of a regular file")
      refused("/dev/full", "--out /dev/full is a character device; give the path of a regular file")
    end)

    it("refuses a FIFO without hanging", function()
      local fifo = work .. "/results.fifo"
      sh("rm -f " .. q(fifo) .. " && mkfifo " .. q(fifo))
      refused(q(fifo), "--out " .. fifo .. " is a FIFO (named pipe); give the path of a regular file")
    end)

    it("refuses /dev/stdout piped to cat without hanging", function()
      local out_file = work .. "/cat.out"
      local _, err, status = run("webhooks create --fleets-file " .. fleets_file()
        .. " --url https://example.com/h --out /dev/stdout",
        { tail = "| cat > " .. q(out_file) .. "; exit ${PIPESTATUS[0]}" })
      assert.are.equal(2, status, err)
      assert.are.equal("cerca: --out /dev/stdout is a symbolic link; give the path of a regular file\n", err)
      assert.are.equal("", read(out_file))
      assert.are.same({}, srv:requests())
    end)

    it("refuses a symbolic link to a file of ours: the target's mode and content stay", function()
      local target, link = work .. "/target.jsonl", work .. "/link.jsonl"
      write(target, "not secret\n")
      sh(("rm -f %s && chmod 644 %s && ln -s %s %s"):format(q(link), q(target), q(target), q(link)))
      refused(q(link), "--out " .. link .. " is a symbolic link; give the path of a regular file")
      assert.are.equal("644 root", mode_owner(target))
      assert.are.equal("not secret\n", read(target))
    end)

    it("refuses a dangling symbolic link, and creates nothing at its target", function()
      local link = work .. "/dangling.jsonl"
      sh(("rm -f %s && ln -s %s %s"):format(q(link), q(work .. "/planted.jsonl"), q(link)))
      refused(q(link), "--out " .. link .. " is a symbolic link; give the path of a regular file")
      assert.is_nil(read(work .. "/planted.jsonl"))
    end)

    it("refuses a file owned by another user: its mode, owner and content stay", function()
      local theirs = work .. "/nobody.jsonl"
      write(theirs, "nobody's\n")
      sh(("chmod 644 %s && chown nobody %s"):format(q(theirs), q(theirs)))
      refused(q(theirs), "--out " .. theirs .. " belongs to another user (uid 65534); give a file of your own "
        .. "or a new path")
      assert.are.equal("644 nobody", mode_owner(theirs))
      assert.are.equal("nobody's\n", read(theirs))
    end)

    it("refuses a second link to a file", function()
      local mine, alias = work .. "/mine.jsonl", work .. "/alias.jsonl"
      write(mine, "")
      sh(("rm -f %s && ln %s %s"):format(q(alias), q(mine), q(alias)))
      refused(q(alias), "--out " .. alias .. " has 2 hard links (it is also another file); give a file with one "
        .. "link or a new path")
      assert.are.equal("", read(mine))
    end)

    it("refuses a directory", function()
      refused(q(work), "--out " .. work .. " is a directory; give the path of a regular file")
    end)

    it("refuses a file too large to read back, before reading it", function()
      local big = work .. "/big.jsonl"
      sh("rm -f " .. q(big) .. " && truncate -s 300M " .. q(big) .. " && chmod 600 " .. q(big))
      refused(q(big), "--out " .. big .. " is larger than 256 MiB, the most that is read back; its keys are "
        .. "needed to repeat its creates without duplicates: make a new --out of its lines that hold no secret, "
        .. "(umask 077; grep -v '\"secret\"' " .. big .. " > NEW), and re-run with --out NEW: each fleet goes "
        .. "again under its recorded key, which gets the subscription already made, not a second one")
      sh("rm -f " .. q(big))
    end)

    it("creates a new file with mode 0600 even under umask 000", function()
      local outfile = work .. "/new.jsonl"
      os.remove(outfile)
      local _, err, status = run("webhooks create --fleets-file " .. fleets_file()
        .. " --url https://example.com/h --out " .. q(outfile), { umask = "000" })
      assert.are.equal(0, status, err)
      assert.are.equal("600 root", mode_owner(outfile))
      local secrets = 0
      for l in read(outfile):gmatch("[^\n]+") do
        if cjson.decode(l).secret then secrets = secrets + 1 end
      end
      assert.are.equal(2, secrets)
    end)

    it("has every key on disk (fsync, and the folder's) before the first create is sent, the secrets at the end",
      function()
      local outfile = work .. "/synced.jsonl"
      os.remove(outfile)
      local trace = work .. "/trace"
      local _, err, status = run("webhooks create --fleets-file " .. fleets_file()
        .. " --url https://example.com/h --out " .. q(outfile),
        { prefix = "strace -f -qq -s 256 -e trace=openat,write,fsync,connect -o " .. q(trace) .. " " })
      assert.are.equal(0, status, err)
      local calls = {}
      for l in read(trace):gmatch("[^\n]+") do calls[#calls + 1] = l end
      local function first(pattern, from)
        for i = from or 1, #calls do if calls[i]:find(pattern) then return i end end
      end
      local opened = assert(first("synced%.jsonl"))
      local fd = assert(calls[opened]:match("= (%d+)$"))
      local pending_a = assert(first('write%(' .. fd .. ', "{\\"fleet_id\\":\\"fleet_a\\".-pending'))
      local pending_b = assert(first('write%(' .. fd .. ', "{\\"fleet_id\\":\\"fleet_b\\".-pending'))
      local synced = assert(first("fsync%(" .. fd .. "%)%s+= 0", math.max(pending_a, pending_b)))
      -- The folder is opened with the file (the one it is in, whatever
      -- the working folder is by the time of the sync), synced after it.
      local folder
      for i = 1, opened do
        if calls[i]:find('openat%(AT_FDCWD, "' .. work:gsub("%p", "%%%0") .. '", O_RDONLY.-O_DIRECTORY') then
          folder = i
        end
      end
      assert(folder)
      local folder_synced = assert(first("fsync%(" .. calls[folder]:match("= (%d+)$") .. "%)%s+= 0", synced))
      local sent = assert(first("connect%("))
      assert.is_true(folder_synced < sent)
      local secret_line = assert(first('write%(' .. fd .. ', "{.-secret'))
      assert.is_truthy(first("fsync%(" .. fd .. "%)%s+= 0", secret_line))
    end)

    it("refuses an existing file of ours that others may read, before anything is sent; a private one resumes",
      function()
        local outfile = batch_to_new_out("loose.jsonl", "fleet_a\n")
        local first_run = read(outfile)
        local _, err, status
        sh("chmod 644 " .. q(outfile))
        srv:reset()
        refused(q(outfile), "--out " .. outfile .. " can be read or written by others (mode 0644), and one of them "
          .. "may hold it open to read the secrets written to it, even after a chmod; give a new path (created "
          .. "0600), or chmod 600 it once sure no one else has it open")
        assert.are.equal("644 root", mode_owner(outfile))
        assert.are.equal(first_run, read(outfile))
        sh("chmod 600 " .. q(outfile))
        _, err, status = run("webhooks create --fleets-file " .. fleets_file("fleet_a\nfleet_b\n")
          .. " --url https://example.com/h --out " .. q(outfile))
        assert.are.equal(0, status, err)
        assert.matches("cerca: 1 created, 0 failed, 1 skipped", err)
        assert.are.equal(1, #srv:requests())
      end)
  end)

  describe("--fleets-file", function()
    it("ends /dev/zero with a usage error naming the bound", function()
      local out, err, status = run("webhooks create --fleets-file /dev/zero --url https://example.com/h")
      assert.are.equal(2, status, err)
      assert.are.equal("", out)
      assert.are.equal("cerca: --fleets-file /dev/zero: more than 64 MiB, the most a fleets file may hold; give "
        .. "a file of fleet ids, one per line (split a longer list over several runs)\n", err)
      assert.are.same({}, srv:requests())
    end)

    it("ends an endless pipe the same way", function()
      local _, err, status = run("webhooks create --fleets-file <(yes fleet_1) --url https://example.com/h")
      assert.are.equal(2, status, err)
      assert.matches("^cerca: %-%-fleets%-file /dev/fd/%d+: more than 64 MiB, the most a fleets file may hold", err)
      assert.are.same({}, srv:requests())
    end)

    it("reads a pipe (process substitution)", function()
      local out, err, status = run("webhooks create --fleets-file <(printf 'fleet_1\\n') "
        .. "--url https://example.com/h --json")
      assert.are.equal(0, status, err)
      assert.are.equal("fleet_1", cjson.decode(out).fleetId)
      assert.are.equal(1, #srv:subscriptions())
    end)

    it("trims lines in linear time, whatever blanks they hold", function()
      -- A pattern that trims both ends backtracks over the inner blanks.
      local out, err, status = run("webhooks create --fleets-file " .. fleets_file("# a" .. (" "):rep(200000)
        .. "b\n" .. (" "):rep(1000) .. "fleet_x" .. ("\t"):rep(1000) .. "\n") .. " --url https://example.com/h --json")
      assert.are.equal(0, status, err)
      assert.are.equal("fleet_x", cjson.decode(out).fleetId)
    end)

    it("refuses an --out file given as --fleets-file (and the other way round): nothing sent, no secret shown",
      function()
        local outfile = batch_to_new_out("swap-out.jsonl", "fleet_a\nfleet_b\n")
        local journal_text = read(outfile)
        local secret = srv:subscriptions()[1].secret
        srv:reset()
        -- The journal as the fleets file: its first line is a key record,
        -- its third a subscription with its secret.
        local out, err, status
        out, err, status = run("webhooks create --fleets-file " .. q(outfile) .. " --url https://example.com/h")
        assert.are.equal(2, status, err)
        assert.are.equal("", out)
        assert.are.equal("cerca: --fleets-file " .. outfile .. ": line 1 starts with \"{\", like a JSON record of an "
          .. "--out file, not a fleet id; give the file that lists one fleet id per line (the --out file of a run "
          .. "is given as --out)\n", err)
        -- Only the lines with a secret, and indented: still refused.
        local secrets_only = work .. "/secrets-only.txt"
        local only = {}
        for line in journal_text:gmatch("[^\n]+") do
          if line:find("whsec_", 1, true) then only[#only + 1] = "  " .. line:match('"secret":"(whsec_[^"]+)"') end
        end
        write(secrets_only, "# copied\n\n" .. table.concat(only, "\n") .. "\n")
        out, err, status = run("webhooks create --fleets-file " .. q(secrets_only) .. " --url https://example.com/h")
        assert.are.equal(2, status, err)
        assert.are.equal("", out)
        assert.are.equal("cerca: --fleets-file " .. secrets_only .. ": line 3 holds a webhook signing secret (it has "
          .. "whsec_ in it), not a fleet id; give the file that lists one fleet id per line (the --out file of a run "
          .. "is given as --out)\n", err)
        -- The fleets file as --out (made private, so that only its content
        -- is wrong): refused before anything is sent, left as it was.
        local list = work .. "/list.txt"
        write(list, "fleet_a\nfleet_b\n")
        out, err, status = run("webhooks create --fleets-file " .. q(outfile) .. " --url https://example.com/h --out "
          .. q(list))
        assert.are.equal(2, status, err)
        assert.are.equal("", out)
        out, err, status = run("webhooks create --fleets-file " .. fleets_file("fleet_c\n")
          .. " --url https://example.com/h --out " .. q(list))
        assert.are.equal(2, status, err)
        assert.are.equal("", out)
        assert.are.equal("cerca: --out " .. list .. " holds 2 lines that no run of cerca wrote (a record starts "
          .. "with {); is it the --fleets-file? give the --out file of an earlier run, or a new path\n", err)
        assert.are.equal("fleet_a\nfleet_b\n", read(list))
        assert.are.same({}, srv:requests())
        for _, text in ipairs { out, err } do assert.is_nil(text:find(secret:sub(7), 1, true)) end
        assert.are.equal(journal_text, read(outfile))
      end)

    it("skips a UTF-8 byte order mark at the start of the file", function()
      local out, err, status = run("webhooks create --fleets-file " .. fleets_file("\239\187\191fleet_bom\n")
        .. " --url https://example.com/h --json")
      assert.are.equal(0, status, err)
      assert.are.equal("fleet_bom", cjson.decode(out).fleetId)
    end)

    it("says what is wrong with a directory", function()
      local _, err, status = run("webhooks create --fleets-file " .. q(work) .. " --url https://example.com/h")
      assert.are.equal(2, status, err)
      assert.are.equal("cerca: --fleets-file: " .. work .. ": Is a directory\n", err)
    end)
  end)

  describe("--api-key-file", function()
    it("ends /dev/zero with a usage error naming the bound", function()
      local out, err, status = run("webhooks create fleet_1 --url https://example.com/h --api-key-file /dev/zero")
      assert.are.equal(2, status, err)
      assert.are.equal("", out)
      assert.are.equal("cerca: --api-key-file /dev/zero: more than 64 KiB, the most a key file may hold; give the "
        .. "file that holds the API key\n", err)
      assert.are.same({}, srv:requests())
    end)

    it("reads a pipe, and trims the line ends of a key file", function()
      local out, err, status = run("webhooks create fleet_1 --url https://example.com/h --json --api-key-file "
        .. "<(printf '%s\\n' " .. q(srv.api_key) .. ")", { api_key = "sk_wrong" })
      assert.are.equal(0, status, err)
      assert.are.equal("fleet_1", cjson.decode(out).fleetId)
      local key = work .. "/key"
      write(key, srv.api_key .. ("\r\n"):rep(3))
      out, err, status = run("webhooks create fleet_1 --url https://example.com/h --json --api-key-file "
        .. q(key), { api_key = "sk_wrong" })
      assert.are.equal(0, status, err)
      assert.are.equal("fleet_1", cjson.decode(out).fleetId)
    end)

    it("is not read for a usage error's message when it is a FIFO: no hang, nothing taken from it", function()
      -- A usage error reads a regular key file to remove the key from what
      -- it quotes; a FIFO would block the message until a writer came, and
      -- its content would be taken for that alone.
      local fifo = work .. "/key.fifo"
      sh("rm -f " .. q(fifo) .. " && mkfifo " .. q(fifo))
      for _, args in ipairs { "webhooks create fleet_1 --bogus", "webhooks create fleet_1",
        "webhooks create fleet_1 --url https://example.com/h --extra 'a=[1'" } do
        local out, err, status = run(args .. " --api-key-file " .. q(fifo))
        assert.are.equal(2, status, err)
        assert.are.equal("", out)
        assert.matches("^cerca: ", err)
        assert.is_nil(err:find("\n.", 1), err)
      end
      assert.are.same({}, srv:requests())
    end)

    it("answers at once for a key file of many line breaks and then text", function()
      -- A pattern that trims the line ends backtracks here in quadratic time.
      local key = work .. "/key"
      write(key, ("\n"):rep(60000) .. "sk_x")
      local _, err, status = run("webhooks create fleet_1 --url https://example.com/h --api-key-file " .. q(key))
      assert.are.equal(2, status, err)
      assert.matches("^cerca: %-%-api%-key%-file: the API key", err)
      assert.are.same({}, srv:requests())
    end)
  end)
end)
