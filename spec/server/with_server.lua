-- Runs a command against a fresh reference server:
--
--   lua5.4 spec/server/with_server.lua CMD [ARGS...]
--
-- starts the server (HTTP and HTTPS), runs CMD with these variables added to
-- its environment, stops the server, and exits with CMD's exit status:
--
--   CERCA_BASE_URL        http://127.0.0.1:<port>
--   CERCA_API_KEY         the key the server accepts
--   CERCA_TEST_HTTPS_URL  https://localhost:<port>
--   CERCA_TEST_CA_FILE    PEM of the CA that signed the server certificate
--
-- Works under luajit too.

local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = script_dir .. "/../../?.lua;" .. package.path

local launcher = require "spec.server.launcher"

local quote, execute = launcher.quote, launcher.execute

if not arg or #arg == 0 then
    io.stderr:write("usage: lua5.4 spec/server/with_server.lua CMD [ARGS...]\n")
    os.exit(2)
end

local ok, srv = pcall(launcher.start, { tls = true })
if not ok then
    io.stderr:write("with_server: ", tostring(srv), "\n")
    os.exit(1)
end

-- shell assignments in front of the command: they reach its environment only
local words = {
    "CERCA_BASE_URL=" .. quote(srv.http_url),
    "CERCA_API_KEY=" .. quote(srv.api_key),
    "CERCA_TEST_HTTPS_URL=" .. quote(srv.https_url),
    "CERCA_TEST_CA_FILE=" .. quote(srv.ca_file),
}
for i = 1, #arg do
    words[#words + 1] = quote(arg[i])
end

local code = execute(table.concat(words, " "))

local stopped, err = pcall(srv.stop, srv)
if not stopped then
    io.stderr:write("with_server: ", tostring(err), "\n")
    if code == 0 then
        code = 1
    end
end
os.exit(code)
