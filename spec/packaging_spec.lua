-- Packaging: both rockspecs pass `luarocks lint` and agree with each other
-- and with the source tree; `make rock` makes the release's source rock
-- offline from the working tree, and that rock installs into a fresh tree
-- where `require "cerca"` works under Lua 5.4 (and, once bin/cerca exists,
-- where the `cerca` command lands in the tree's bin/ and runs).
local helpers = require "spec.helpers"

local sh = helpers.sh

local SCM = "rockspec/cerca-scm-1.rockspec"
local RELEASE = "rockspec/cerca-0.1.0-1.rockspec"
local ROCK = "cerca-0.1.0-1.src.rock"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- A rockspec's fields, as LuaRocks reads them (plain Lua assignments).
local function load_rockspec(path)
  local env = {}
  local chunk
  if setfenv then -- LuaJIT
    chunk = assert(loadfile(path))
    setfenv(chunk, env)
  else
    chunk = assert(loadfile(path, "t", env))
  end
  chunk()
  return env
end

-- Deep comparison that names the first difference.
local function same(a, b, where)
  if type(a) ~= "table" or type(b) ~= "table" then
    if a ~= b then return false, where end
    return true
  end
  for k, v in pairs(a) do
    local ok, at = same(v, b[k], where .. "." .. tostring(k))
    if not ok then return false, at end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, where .. "." .. tostring(k) end
  end
  return true
end

describe("packaging", function()
  local work

  setup(function()
    work = assert(sh("mktemp -d")):gsub("%s+$", "")
  end)

  teardown(function()
    if work then sh("rm -rf " .. q(work)) end
  end)

  it("make docs builds the public API reference without an LDoc warning", function()
    local out, status = sh("make --no-print-directory docs")
    assert.are.equal(0, status, out)
    -- The index lists the public modules, each on a page of its own.
    local function page(path)
      local f = assert(io.open("build/doc/" .. path))
      local text = f:read("*a"):gsub("<[^>]+>", "")
      f:close()
      return text
    end
    local index, text, journal = page("index.html"), page("modules/cerca.html"), page("modules/cerca.journal.html")
    assert.matches("cerca.journal", index, 1, true)
    -- The signatures users call, and no internal module.
    for _, signature in ipairs { "webhooks.create (fleet_id, params[, options])",
      "webhooks.create_many (items[, opts])", "webhooks.verify (raw_body, headers, secret[, opts])",
      "new ([options])", "pretty (value[, opts])", "decode_json (text)", "new_idempotency_key ()",
      "system.isatty (fd)", "system.ignore_write_signals ()", "LIBCURL_VERSION" } do
      assert.matches(signature, text, 1, true)
    end
    for _, signature in ipairs { "open (path[, max_bytes])", "Journal:append (record)", "Journal:records ()",
      "Journal:close ()" } do
      assert.matches(signature, journal, 1, true)
    end
    for _, t in ipairs { index, text, journal } do
      assert.is_nil(t:find("cerca.call", 1, true))
      assert.is_nil(t:find("cerca.cli", 1, true))
      assert.is_nil(t:find("@tparam", 1, true))
    end
  end)

  it("make install puts each Lua's library and command side by side", function()
    local dest = work .. "/dest"
    for _, v in ipairs { "5.4", "5.1", "5.3" } do
      local out, status = sh(("make --no-print-directory install DESTDIR=%s LUA_VERSION=%s"):format(q(dest), v))
      assert.are.equal(0, status, out)
    end
    local bin = dest .. "/usr/local/bin/"
    local out = sh("readlink " .. q(bin .. "cerca"))
    assert.are.equal("cerca-5.4\n", out)
    for v, lua in pairs { ["5.4"] = "Lua 5.4", ["5.1"] = "Lua 5.1", ["5.3"] = "Lua 5.3" } do
      local share, lib = dest .. "/usr/local/share/lua/" .. v, dest .. "/usr/local/lib/lua/" .. v
      local version, status = sh(("cd / && env LUA_PATH=%s LUA_CPATH=%s %s --version"):format(
        q(share .. "/?.lua;" .. share .. "/?/init.lua;;"), q(lib .. "/?.so;;"), q(bin .. "cerca-" .. v)))
      assert.are.equal(0, status, version)
      assert.matches("(cerca-lua; " .. lua, version, 1, true)
    end
  end)

  it("both rockspecs pass luarocks lint", function()
    for _, spec in ipairs { SCM, RELEASE } do
      local out, status = sh("luarocks lint " .. spec)
      assert.are.equal(0, status, spec .. ": " .. out)
    end
  end)

  it("the release rockspec is the scm one but for version and source (the v<version> tag)", function()
    local scm, rel = load_rockspec(SCM), load_rockspec(RELEASE)
    assert.are.equal("scm-1", scm.version)
    assert.are.equal("0.1.0-1", rel.version)
    assert.are.same({ url = scm.source.url, tag = "v0.1.0" }, rel.source)
    assert.are.same({ url = "git+https://github.com/cerca-dev/cerca-lua.git", branch = "main" }, scm.source)
    scm.version, scm.source, rel.version, rel.source = nil, nil, nil, nil
    local ok, at = same(scm, rel, "rockspec")
    assert(ok, "the rockspecs differ at " .. tostring(at))
  end)

  it("the release version is the library's VERSION", function()
    assert.are.equal(load_rockspec(RELEASE).version:match("^(.*)%-%d+$"), require("cerca").VERSION)
  end)

  it("the rockspec builds with the Makefile's rock targets and installs the command", function()
    local rs = load_rockspec(SCM)
    assert.are.equal("make", rs.build.type)
    for _, target in ipairs { rs.build.build_target, rs.build.install_target } do
      local out, status = sh("make -n --no-print-directory " .. q(target) .. " LUADIR=/x LIBDIR=/y")
      assert.are.equal(0, status, out)
    end
    assert.are.same({ cerca = "bin/cerca" }, rs.build.install.bin)
  end)

  it("make rock makes the source rock, which installs into a fresh tree and works under Lua 5.4", function()
    local rocks, tree = work .. "/rocks", work .. "/tree"
    local out, status = sh(("make --no-print-directory rock ROCK_DIR=%s"):format(q(rocks)))
    assert.are.equal(0, status, out)
    local rock = rocks .. "/" .. ROCK
    assert(exists(rock), "no " .. rock .. " after make rock: " .. out)

    -- The layout LuaRocks expects: the rockspec, and the sources in the
    -- directory named after the git URL.
    out, status = sh("unzip -Z1 " .. q(rock))
    assert.are.equal(0, status, out)
    assert.matches("\ncerca%-lua/src/core%.c\n", "\n" .. out)
    assert.matches("\ncerca%-0%.1%.0%-1%.rockspec\n", "\n" .. out)
    assert.is_nil(out:find("cerca-lua/.git/", 1, true))

    -- The plain command: no variable to find libcurl's header.
    out, status = sh(("cd / && luarocks --lua-version 5.4 --tree %s install --deps-mode=none %s")
      :format(q(tree), q(rock)))
    assert.are.equal(0, status, out)
    assert.matches("cerca 0%.1%.0%-1 is now installed", out)

    -- From / with only the tree on the paths (lua-cjson comes from Debian).
    local share, lib = tree .. "/share/lua/5.4", tree .. "/lib/lua/5.4"
    out, status = sh(("cd / && env LUA_PATH=%s LUA_CPATH=%s lua5.4 -e %s"):format(
      q(share .. "/?.lua;" .. share .. "/?/init.lua;;"), q(lib .. "/?.so;;"),
      q([[local cerca = require "cerca"
          io.write(cerca.VERSION, " ", package.searchpath("cerca.core", package.cpath), " ",
            package.searchpath("cerca", package.path), " ", type(cerca.webhooks.create))]])))
    assert.are.equal(0, status, out)
    assert.are.equal(("0.1.0 %s/cerca/core.so %s/cerca/init.lua function"):format(lib, share), out)

    -- The command: enforced once bin/cerca is in the source tree.
    if exists("bin/cerca") then
      assert(exists(tree .. "/bin/cerca"), "bin/cerca is in the source tree, not in " .. tree .. "/bin")
      -- LuaRocks' wrapper finds the modules through the configured trees or
      -- LUA_PATH: for a tree of one's own, `luarocks path` sets them.
      out, status = sh(("cd / && eval \"$(luarocks --lua-version 5.4 --tree %s path)\" && "
        .. "command -v cerca && cerca --version"):format(q(tree)))
      assert.are.equal(0, status, out)
      assert.are.equal(tree .. "/bin/cerca\n", out:match("^[^\n]*\n"))
      assert.matches("\ncerca 0%.1%.0 ", out)
    end
  end)
end)
