-- The README's commands, run as written: the LuaRocks lines (each names its
-- Lua version), and the "Try it locally" session against `make serve`'s
-- server. `make demo` and `make test` themselves are what CI runs.
local helpers = require "spec.helpers"

local sh, q, read, write = helpers.sh, helpers.q, helpers.read, helpers.write

-- The lines of the ```sh blocks of a Markdown text, each with the heading
-- of its section.
local function shell_lines(text)
  local out, section, in_block = {}, "", false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("^```sh") then
      in_block = true
    elseif line:match("^```") then
      in_block = false
    elseif in_block then
      out[#out + 1] = { section = section, line = line }
    else
      section = line:match("^##+ (.*)$") or section
    end
  end
  return out
end

local function docs()
  local files = { "README.md" }
  for name in (sh("ls doc/*.md")):gmatch("%S+") do files[#files + 1] = name end
  return files
end

describe("the README's commands", function()
  -- The subcommands that build or install for one Lua.
  local function versioned(cmd)
    for _, sub in ipairs { "make", "install", "path" } do
      if cmd:match("luarocks .*%f[%w]" .. sub .. "%f[%W]") then return true end
    end
  end

  it("every luarocks line of the README and doc/ names its --lua-version", function()
    local seen = 0
    for _, file in ipairs(docs()) do
      local text = read(file)
      for _, l in ipairs(shell_lines(text)) do
        if l.line:match("^%s*luarocks") and versioned(l.line) then
          seen = seen + 1
          assert.matches("%-%-lua%-version %d", l.line, nil, false, file .. ": " .. l.line)
        end
      end
      -- Inline commands too (`luarocks ... path`, say); a bare subcommand
      -- named in prose (`luarocks make`) is not a command to run.
      for cmd in text:gmatch("`([^`]*luarocks [^`]*)`") do
        local _, words = cmd:gsub("%S+", "")
        if versioned(cmd) and words > 2 then
          assert.matches("%-%-lua%-version %d", cmd, nil, false, file .. ": " .. cmd)
        end
      end
    end
    assert.is_true(seen >= 2, "no luarocks line found")
  end)

  it("runs the README's luarocks lines as written, and the library and command work", function()
    local work = (sh("mktemp -d")):gsub("%s+$", "")
    local ok, err = pcall(function()
      -- A checkout, and a LuaRocks configuration of our own: the rock goes
      -- to a tree of the spec's, and dependencies come from Debian (no
      -- LuaRocks server is reachable), as --deps-mode=none would say.
      local _, status = sh(("cp -r Makefile src lua bin rockspec %s/"):format(q(work)))
      assert(status == 0)
      local tree = work .. "/tree"
      write(work .. "/config.lua", ("rocks_trees = { { name = 'spec', root = %q } }\ndeps_mode = 'none'\n")
        :format(tree))
      local ran = 0
      for _, l in ipairs(shell_lines(read("README.md"))) do
        local line = l.line:gsub("%s+#.*$", "")
        if line:match("^luarocks ") then
          local out, code = sh(("cd %s && LUAROCKS_CONFIG=%s %s 2>&1"):format(q(work), q(work .. "/config.lua"), line))
          assert.are.equal(0, code, line .. "\n" .. out)
          ran = ran + 1
        end
      end
      assert.is_true(ran >= 1)
      -- The README's way onto the paths, for the tree the rock went to.
      local out, code = sh(("cd / && eval \"$(luarocks --lua-version 5.4 --tree %s path)\" && "
        .. "lua5.4 -e 'io.write(require(\"cerca\").VERSION)' && cerca --version"):format(q(tree)))
      assert.are.equal(0, code, out)
      assert.matches("^0%.1%.0cerca 0%.1%.0 ", out)
    end)
    sh("rm -rf " .. q(work))
    assert(ok, err)
  end)

  it("Try it locally: make serve's server, then the session of the README", function()
    local out_file = os.tmpname()
    -- serve.lua waits for a line on its standard input: one comes after the
    -- session, and it stops the server.
    local fifo = os.tmpname()
    os.remove(fifo)
    assert(sh("mkfifo " .. q(fifo)))
    -- Output first, in a command of its own: the open of the FIFO waits for
    -- a writer, and must not hold the output of this shell meanwhile (a
    -- shell may open every file of one command before it applies any).
    sh(("(exec > %s 2>&1; exec lua5.4 spec/server/serve.lua < %s) &"):format(q(out_file), q(fifo)))
    local feeder = assert(io.open(fifo, "w"))  -- its input, open until the session ends
    local printed
    for _ = 1, 100 do
      printed = read(out_file) or ""
      if printed:find("Press Enter", 1, true) then break end
      helpers.sleep(0.1)
    end
    local url = printed:match("export CERCA_BASE_URL=(%S+)")
    local key = printed:match("export CERCA_API_KEY=(%S+)")
    local ok, err = pcall(function()
      assert(url and key, "make serve printed: " .. printed)
      local session
      for _, l in ipairs(shell_lines(read("README.md"))) do
        if l.section == "Try it locally" and not l.line:match("^make serve") and not l.line:match("^export ") then
          session = (session and session .. "\n" or "") .. l.line
        end
      end
      assert(session and session:find("bin/cerca", 1, true), "no session found in the README")
      local install = [[export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/build/lua5.4/?.so;;"]]
      local script = os.tmpname()
      write(script, ("export CERCA_BASE_URL=%s CERCA_API_KEY=%s\n%s\n%s\n"):format(q(url), q(key), install, session))
      local out, code = sh("sh -e " .. q(script))
      os.remove(script)
      assert.are.equal(0, code, out)
      assert.matches("whsec_", out, 1, true)
      assert.matches('"uri":"\\/fleets\\/fleet_1\\/webhooks"', out, 1, true)
    end)
    feeder:write("\n")
    feeder:close()
    for _ = 1, 100 do
      if (read(out_file) or ""):find("stopped", 1, true) then break end
      helpers.sleep(0.1)
    end
    local final = read(out_file) or ""
    os.remove(out_file)
    os.remove(fifo)
    assert(ok, err)
    assert.matches("stopped\n$", final)
  end)
end)
