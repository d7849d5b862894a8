-- Run by check-memory.sh under the sanitized interpreter, once per heap
-- layout: `lua-asan spec/tools/heap-layouts.lua K` keeps K one-slot tables
-- (each moves the next 16-byte allocation one chunk on), then makes a
-- create against port 1 of loopback (closed), which loads libcurl's
-- libraries and their thread-local storage. LeakSanitizer checks the
-- process when it exits.
local k = tonumber(arg[1])
local kept = {}
for i = 1, k do kept[i] = { true } end
local cerca = require "cerca"
local client = assert(cerca.new { api_key = "sk_layout", base_url = "http://127.0.0.1:1",
  log_level = "off", max_retries = 0 })
local sub, err = client.webhooks.create("fleet_1", { url = "https://example.com/hook" })
assert(sub == nil and err.type == "connection", "expected a connection error")
io.write(#kept, "\n")
