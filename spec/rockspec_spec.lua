-- Installing with LuaRocks into a fresh tree gives a working library, for
-- every Lua the rockspec claims (5.1 to 5.4) and for LuaJIT (the 5.1 ABI, as
-- OpenResty uses it), from a checkout that stays clean.
local helpers = require "spec.helpers"

local sh = helpers.sh

describe("rockspec/cerca-scm-1.rockspec", function()
  local srv, work, checkout

  setup(function()
    srv = helpers.start_server { tls = false }
    work = assert(sh("mktemp -d")):gsub("%s+$", "")
    -- Build from a checkout of its own (what git tracks, committed), so that
    -- nothing lands in the work tree and what luarocks leaves behind shows.
    checkout = work .. "/checkout"
    local out, status = sh(("mkdir '%s' && git ls-files -z | xargs -0 tar cf - | tar xf - -C '%s' && cd '%s' && "
      .. "git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm tracked")
      :format(checkout, checkout, checkout))
    assert(status == 0, out)
  end)

  teardown(function()
    if srv then srv:stop() end
    if work then sh("rm -rf '" .. work .. "'") end
  end)

  -- luarocks make into work/tree-ABI, then a script run from / (so nothing
  -- of the work tree is on the path) creates a subscription.
  local function install_and_use(lua_version, interpreter, extra)
    local tree = ("%s/tree-%s"):format(work, interpreter)
    local out, status = sh(("cd '%s' && luarocks --lua-version %s --tree '%s' make --deps-mode=none "
      .. "rockspec/cerca-scm-1.rockspec %s"):format(checkout, lua_version, tree, extra))
    assert.are.equal(0, status, out)
    assert.matches("cerca scm%-1 is now installed", out)

    local script = ("%s/use-%s.lua"):format(work, interpreter)
    local f = assert(io.open(script, "w"))
    f:write([[
      local cerca = require "cerca"
      local sub = assert(cerca.webhooks.create("fleet_rock", { url = "https://example.com/webhook" }))
      io.write(package.searchpath and package.searchpath("cerca.core", package.cpath)
        or package.cpath:match("^([^?]*)") .. "cerca/core.so", " ", sub.fleetId)
    ]])
    f:close()
    local share, lib = ("%s/share/lua/%s"):format(tree, lua_version), ("%s/lib/lua/%s"):format(tree, lua_version)
    out, status = sh(("cd / && env CERCA_API_KEY='%s' CERCA_BASE_URL='%s' "
      .. "LUA_PATH='%s/?.lua;%s/?/init.lua;;' LUA_CPATH='%s/?.so;;' %s '%s'")
      :format(srv.api_key, srv.http_url, share, share, lib, interpreter, script))
    assert.are.equal(0, status, out)
    assert.are.equal(lib .. "/cerca/core.so fleet_rock", out)

    -- Every module of lua/cerca is installed, and nothing else.
    local shipped = assert(sh(("cd '%s/lua/cerca' && ls"):format(checkout)))
    local installed = assert(sh(("cd '%s/cerca' && ls"):format(share)))
    assert.are.equal(shipped, installed)
    -- The checkout is as it was: the core was built in build/ (ignored).
    out = assert(sh(("cd '%s' && git status --porcelain --ignored"):format(checkout)))
    assert.are.equal("!! build/\n", out)
  end

  it("installs with the plain luarocks make (no variables), works under Lua 5.4 and leaves the checkout clean",
    function()
    install_and_use("5.4", "lua5.4", "")
  end)

  it("still takes CURL_INCDIR and CURL_LIBDIR for a libcurl elsewhere", function()
    sh(("rm -rf '%s/tree-lua5.4'"):format(work))
    install_and_use("5.4", "lua5.4", "CURL_INCDIR=/usr/include/$(gcc -print-multiarch) "
      .. "CURL_LIBDIR=/usr/lib/$(gcc -print-multiarch)")
  end)

  for _, v in ipairs { "5.1", "5.2", "5.3" } do
    it("installs with the plain luarocks make and works under Lua " .. v, function()
      install_and_use(v, "lua" .. v, "")
    end)
  end

  it("installs with the plain luarocks make for the 5.1 ABI and works under LuaJIT", function()
    install_and_use("5.1", "luajit", "")
  end)

  it("installs for the 5.1 ABI against LuaJIT's own headers too (LUA_INCDIR)", function()
    sh(("rm -rf '%s/tree-luajit'"):format(work))
    install_and_use("5.1", "luajit", "LUA_INCDIR=/usr/include/luajit-2.1")
  end)
end)
