-- Runs the reference server until you stop it, for trying the library and
-- the command by hand (`make serve`):
--
--   lua5.4 spec/server/serve.lua
--
-- prints the variables to export in another shell, then waits for Enter or
-- Ctrl-C and stops the server. Works under luajit too.

local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = script_dir .. "/../../?.lua;" .. package.path

local launcher = require "spec.server.launcher"

local ok, srv = pcall(launcher.start, { tls = true })
if not ok then
    io.stderr:write("serve: ", tostring(srv), "\n")
    os.exit(1)
end

io.write(([[
The reference server is running (a local stand-in for the Cerca API).
In another shell:

  export CERCA_BASE_URL=%s
  export CERCA_API_KEY=%s

Over HTTPS: %s (its CA: %s).
What it received: curl -s %s/__control/requests
Press Enter or Ctrl-C here to stop it.
]]):format(srv.http_url, srv.api_key, srv.https_url, srv.ca_file, srv.http_url))
io.flush()

-- The wait runs in a shell: while it runs, this process ignores Ctrl-C
-- (system() does), so the server is stopped whichever way the wait ends.
os.execute("trap 'exit 0' INT; read line")

local stopped, err = pcall(srv.stop, srv)
if not stopped then
    io.stderr:write("serve: ", tostring(err), "\n")
    os.exit(1)
end
io.write("stopped\n")
