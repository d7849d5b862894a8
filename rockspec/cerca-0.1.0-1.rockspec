rockspec_format = "3.0"
package = "cerca"
version = "0.1.0-1"

source = {
  url = "git+https://github.com/cerca-dev/cerca-lua.git",
  tag = "v0.1.0",
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
  type = "builtin",
  modules = {
    ["cerca.core"] = {
      sources = { "src/core.c", "src/http.c", "src/headers.c", "src/crypto.c", "src/multi.c",
                  "src/journal.c" },
      incdirs = { "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      libraries = { "curl", "crypto", "pthread" },
    },
    ["cerca"] = "lua/cerca/init.lua",
    ["cerca.batch"] = "lua/cerca/batch.lua",
    ["cerca.call"] = "lua/cerca/call.lua",
    ["cerca.cli"] = "lua/cerca/cli.lua",
    ["cerca.client"] = "lua/cerca/client.lua",
    ["cerca.clock"] = "lua/cerca/clock.lua",
    ["cerca.deliveries"] = "lua/cerca/deliveries.lua",
    ["cerca.errors"] = "lua/cerca/errors.lua",
    ["cerca.json"] = "lua/cerca/json.lua",
    ["cerca.log"] = "lua/cerca/log.lua",
    ["cerca.nginx"] = "lua/cerca/nginx.lua",
    ["cerca.nginx_thread"] = "lua/cerca/nginx_thread.lua",
    ["cerca.pretty"] = "lua/cerca/pretty.lua",
    ["cerca.redact"] = "lua/cerca/redact.lua",
    ["cerca.retry"] = "lua/cerca/retry.lua",
    ["cerca.transport"] = "lua/cerca/transport.lua",
    ["cerca.validate"] = "lua/cerca/validate.lua",
    ["cerca.webhooks"] = "lua/cerca/webhooks.lua",
  },
  install = {
    -- The `cerca` command (LuaRocks puts a wrapper in the tree's bin/ that
    -- runs it with the tree's interpreter and module paths).
    bin = { cerca = "bin/cerca" },
  },
}

test_dependencies = { "busted" }
test = { type = "busted" }
