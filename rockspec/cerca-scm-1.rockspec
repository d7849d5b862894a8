rockspec_format = "3.0"
package = "cerca"
version = "scm-1"

source = {
  url = "git+https://github.com/cerca-dev/cerca-lua.git",
  branch = "main",
}

description = {
  summary = "Cerca API webhook subscriptions for Lua and OpenResty",
  detailed = [[
Create webhook subscriptions for Cerca fleets from Lua 5.1 to 5.4, LuaJIT and
OpenResty. A C core does the HTTP (libcurl) and JSON (lua-cjson) work; the Lua
layer validates arguments, maps failures to typed errors and keeps the signing
secret out of logs.
]],
  license = "MIT",
  homepage = "https://github.com/cerca-dev/cerca-lua",
  labels = { "webhooks", "http", "openresty", "api" },
}

dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1.0",
}

external_dependencies = {
  -- The library only: Debian and Ubuntu keep curl/curl.h in the multiarch
  -- folder (/usr/include/x86_64-linux-gnu), which LuaRocks does not search
  -- but the compiler does. libcurl.so comes with the -dev package, so the
  -- check still says when the headers are missing.
  CURL = { library = "curl" },
  OPENSSL = { header = "openssl/rand.h", library = "crypto" },
}

build = {
  -- The Makefile's rock-build and rock-install targets: the core is compiled
  -- in build/rock/, so a `luarocks make` leaves the checkout clean, and
  -- lua/cerca/*.lua are installed as they are (no module list to keep).
  type = "make",
  build_target = "rock-build",
  build_variables = {
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    CURL_INCDIR = "$(CURL_INCDIR)",
    CURL_LIBDIR = "$(CURL_LIBDIR)",
    OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
    OPENSSL_LIBDIR = "$(OPENSSL_LIBDIR)",
  },
  install_target = "rock-install",
  install_variables = {
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
  },
  install = {
    -- The `cerca` command (LuaRocks puts a wrapper in the tree's bin/ that
    -- runs it with the tree's interpreter and module paths).
    bin = { cerca = "bin/cerca" },
  },
}

test_dependencies = { "busted" }
test = { type = "busted" }
