-- luacheck configuration: library code in the OpenResty style (no globals
-- created), specs with busted's globals, the reference server with ngx.
std = "max"
max_line_length = 120
exclude_files = { "spec/contract/node_modules", "build" }

files["spec"] = { std = "+busted" }
files["spec/server/handler.lua"] = { globals = { "ngx" } }
-- The OpenResty adapter reads nginx's API table when it runs inside nginx.
files["lua/cerca/nginx.lua"] = { read_globals = { "ngx" } }
files["lua/cerca/runtime.lua"] = { read_globals = { "ngx" } }
files["bin/cerca"] = { std = "max" }
files["examples/openresty"] = { read_globals = { "ngx" } }
