-- A CGI/1.1 gateway (RFC 3875) in nginx's Lua, for the specs: each request
-- runs a Lua script of the prefix as a CGI program, under LuaJIT (the core
-- in lib/ is built for it), with the request's headers as HTTP_* variables
-- and its body on standard input, and is answered with what the script
-- wrote: its Status header, its other headers, its body. What the script
-- writes on standard error goes to nginx's error log. One process per
-- request, run blocking: a test host, not a server.
-- luacheck: globals ngx
local M = {}

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local text = f:read("*a")
  f:close()
  return text
end

local function request_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  -- A body nginx buffered to a file.
  return read(ngx.req.get_body_file() or "")
end

function M.run(script)
  local prefix = ngx.config.prefix()
  local body = request_body()
  local input, errors = os.tmpname(), os.tmpname()
  local f = assert(io.open(input, "wb"))
  f:write(body)
  f:close()

  local vars = {
    GATEWAY_INTERFACE = "CGI/1.1",
    REQUEST_METHOD = ngx.req.get_method(),
    CONTENT_LENGTH = tostring(#body),
    CONTENT_TYPE = ngx.var.content_type or "",
    QUERY_STRING = ngx.var.args or "",
    SCRIPT_NAME = ngx.var.uri,
    SERVER_NAME = ngx.var.server_addr,
    SERVER_PORT = ngx.var.server_port,
    SERVER_PROTOCOL = ngx.var.server_protocol,
    REMOTE_ADDR = ngx.var.remote_addr,
    LUA_PATH = prefix .. "lua/?.lua;" .. prefix .. "lua/?/init.lua;;",
    LUA_CPATH = prefix .. "lib/?.so;;",
  }
  for name, value in pairs(ngx.req.get_headers()) do
    local var = "HTTP_" .. name:upper():gsub("%-", "_")
    -- Content-Length and -Type have variables of their own.
    if var:match("^[%w_]+$") and var ~= "HTTP_CONTENT_LENGTH" and var ~= "HTTP_CONTENT_TYPE" then
      vars[var] = type(value) == "table" and table.concat(value, ", ") or value
    end
  end
  local assignments = {}
  for k, v in pairs(vars) do assignments[#assignments + 1] = k .. "=" .. quote(v) end

  local pipe = io.popen(("cd %s && env %s luajit %s < %s 2> %s"):format(quote(prefix),
    table.concat(assignments, " "), quote(script), quote(input), quote(errors)))
  local out = pipe:read("*a")
  pipe:close()
  local stderr = read(errors)
  os.remove(input)
  os.remove(errors)
  if stderr ~= "" then ngx.log(ngx.NOTICE, "cgi ", script, ": ", stderr) end

  -- The script's header block, then its body.
  local head, rest = out:match("^(.-)\r?\n\r?\n(.*)$")
  if not head then
    ngx.log(ngx.ERR, "cgi ", script, ": no header block in ", #out, " bytes")
    return ngx.exit(502)
  end
  local status = 200
  for line in (head .. "\n"):gmatch("([^\r\n]*)\r?\n") do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name and name:lower() == "status" then
      status = tonumber(value:match("^%d+"))
    elseif name then
      ngx.header[name] = value
    end
  end
  ngx.status = status
  if rest ~= "" then ngx.print(rest) end
  return ngx.exit(status)
end

return M
