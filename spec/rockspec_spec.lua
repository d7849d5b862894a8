-- Installing with LuaRocks into a fresh tree gives a working library, for
-- every Lua the rockspec claims (5.1 to 5.4) and for LuaJIT (the 5.1 ABI, as
-- OpenResty uses it).
local helpers = require "spec.helpers"

local sh = helpers.sh

describe("rockspec/cerca-scm-1.rockspec", function()
  local srv, work

  setup(function()
    srv = helpers.start_server { tls = false }
    work = assert(sh("mktemp -d")):gsub("%s+$", "")
    -- Build from a copy, so nothing lands in the work tree.
    local _, status = sh(("cp -r src lua bin rockspec '%s/'"):format(work))
    assert(status == 0)
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
      .. "rockspec/cerca-scm-1.rockspec %s"):format(work, lua_version, tree, extra))
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
  end

  it("installs with the plain luarocks make (no variables) and works under Lua 5.4", function()
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
