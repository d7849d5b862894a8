-- Installing with LuaRocks into a fresh tree gives a working library.
local helpers = require "spec.helpers"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit:$?\"")
  local out = p:read("*a")
  p:close()
  local text, status = out:match("^(.*)exit:(%d+)%s*$")
  return text, tonumber(status)
end

describe("rockspec/cerca-scm-1.rockspec", function()
  local srv, work

  setup(function()
    srv = helpers.start_server { tls = false }
    work = assert(sh("mktemp -d")):gsub("%s+$", "")
  end)

  teardown(function()
    if srv then srv:stop() end
    if work then sh("rm -rf '" .. work .. "'") end
  end)

  it("installs with luarocks make into a fresh tree and works there under Lua 5.4", function()
    -- Build from a copy, so nothing lands in the work tree.
    local out, status = sh(("cp -r src lua rockspec '%s/' && cd '%s' && "
      .. "luarocks --lua-version 5.4 --tree '%s/tree' make --deps-mode=none rockspec/cerca-scm-1.rockspec "
      .. "CURL_INCDIR=/usr/include/$(gcc -print-multiarch) CURL_LIBDIR=/usr/lib/$(gcc -print-multiarch)")
      :format(work, work, work))
    assert.are.equal(0, status, out)
    assert.matches("cerca scm%-1 is now installed", out)

    local script = work .. "/use.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      local cerca = require "cerca"
      local sub = assert(cerca.webhooks.create("fleet_rock", { url = "https://example.com/webhook" }))
      io.write(package.searchpath("cerca.core", package.cpath), " ", sub.fleetId)
    ]])
    f:close()
    local tree = work .. "/tree"
    out, status = sh(("cd / && env CERCA_API_KEY='%s' CERCA_BASE_URL='%s' "
      .. "LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' LUA_CPATH='%s/lib/lua/5.4/?.so;;' "
      .. "lua5.4 '%s'"):format(srv.api_key, srv.http_url, tree, tree, tree, script))
    assert.are.equal(0, status, out)
    assert.are.equal(tree .. "/lib/lua/5.4/cerca/core.so fleet_rock", out)
  end)
end)
