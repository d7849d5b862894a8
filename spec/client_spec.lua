-- cerca.new: every client option, its default and its checks.
local helpers = require "spec.helpers"
local cerca = require "cerca"

describe("cerca.new", function()
  local function refuses(message, field, opts)
    local client, err = cerca.new(opts)
    assert.is_nil(client)
    assert.is_true(cerca.is_error(err))
    assert.are.equal("configuration", err.type)
    assert.are.equal(message, err.message)
    assert.are.equal(field, err.field)
    return err
  end

  it("applies the documented defaults", function()
    local client = assert(cerca.new { api_key = "sk_1" })
    assert.are.equal("https://api.cerca.dev", client.base_url)
    assert.are.equal(60, client.timeout)
    assert.are.equal(10, client.connect_timeout)
    assert.are.equal(2, client.max_retries)
    assert.are.equal(1024 * 1024, client.max_response_size)
    assert.is_nil(client.ca_file)
    assert.are.same(cerca.webhooks.EVENTS, client.webhooks.EVENTS)
    assert.are.equal("cerca.Client (https://api.cerca.dev)", tostring(client))
  end)

  it("takes every option", function()
    local client = assert(cerca.new {
      api_key = "sk_1", base_url = "https://api.example.com/v2/", timeout = 5, connect_timeout = 1.5,
      max_retries = 0, headers = { ["X-Team"] = "ops" }, ca_file = "/etc/hostname", max_response_size = 4096,
    })
    assert.are.equal("https://api.example.com/v2", client.base_url)
    assert.are.equal(5, client.timeout)
    assert.are.equal(1.5, client.connect_timeout)
    assert.are.equal(0, client.max_retries)
    assert.are.equal("/etc/hostname", client.ca_file)
    assert.are.equal(4096, client.max_response_size)
  end)

  it("refuses what is not a table, and unknown options", function()
    refuses('cerca.new takes a table of options (got "sk_1")', "options", "sk_1")
    refuses('cerca.new: unknown key "time_out"; did you mean "timeout"?', "options",
      { api_key = "k", time_out = 3 })
    refuses('cerca.new: unknown key "apikey"; did you mean "api_key"?', "options", { apikey = "k" })
  end)

  describe("api_key", function()
    it("is required, from the option or CERCA_API_KEY", function()
      local out = helpers.run_lua([[
        local cerca = require "cerca"
        local c, err = cerca.new()
        io.write(tostring(c), " | ", err.field, " | ", err.message, "\n")
        c = assert(cerca.new { api_key = "sk_from_option" })
        io.write(c.base_url, "\n")
      ]], { CERCA_API_KEY = "" })
      assert.are.equal("nil | CERCA_API_KEY | no API key: set the CERCA_API_KEY environment variable "
        .. "or pass api_key to cerca.new\nhttps://api.cerca.dev\n", out)
    end)

    it("refuses non-strings and empty strings", function()
      refuses("api_key must be a non-empty string (got number)", "api_key", { api_key = 12 })
      refuses("api_key must be a non-empty string (got an empty string)", "api_key", { api_key = "" })
    end)

    it("refuses whitespace and control characters without echoing the key", function()
      for _, key in ipairs { "sk_secret\n", " sk_secret", "sk_sec ret", "sk_secret\r\nX-Evil: 1", "sk_\0" } do
        local err = refuses("the API key contains a space, a line break or another non-printable "
          .. "character; copy it again without surrounding whitespace", "api_key", { api_key = key })
        assert.is_nil(tostring(err):find("secret", 1, true))
      end
    end)
  end)

  describe("base_url", function()
    it("comes from CERCA_BASE_URL when not given", function()
      local out = helpers.run_lua([[
        local cerca = require "cerca"
        io.write(assert(cerca.new()).base_url)
      ]], { CERCA_API_KEY = "sk_1", CERCA_BASE_URL = "https://staging.example.com/" })
      assert.are.equal("https://staging.example.com", out)
    end)

    it("allows plain http for loopback hosts only", function()
      for _, url in ipairs { "http://127.0.0.1:8080", "http://localhost", "http://[::1]:9/", "http://127.9.0.1" } do
        assert(cerca.new { api_key = "k", base_url = url })
      end
      refuses("base_url uses http:// for api.cerca.dev, which would send the API key in clear text; "
        .. "use https:// (plain http is allowed for loopback hosts only)", "base_url",
        { api_key = "k", base_url = "http://api.cerca.dev" })
      refuses("base_url uses http:// for 10.0.0.1, which would send the API key in clear text; "
        .. "use https:// (plain http is allowed for loopback hosts only)", "base_url",
        { api_key = "k", base_url = "http://10.0.0.1" })
    end)

    it("must be an http(s) URL without query or fragment", function()
      refuses("base_url must use https (got ftp://)", "base_url", { api_key = "k", base_url = "ftp://x.example" })
      refuses('base_url must be an absolute URL (got "api.cerca.dev"); pass e.g. "https://api.cerca.dev"',
        "base_url", { api_key = "k", base_url = "api.cerca.dev" })
      refuses('base_url must not hold a query or fragment (got "https://x.example/?a=1")', "base_url",
        { api_key = "k", base_url = "https://x.example/?a=1" })
      refuses('base_url must be a string (got 8080); pass e.g. "https://api.cerca.dev"', "base_url",
        { api_key = "k", base_url = 8080 })
    end)
  end)

  describe("numbers", function()
    it("are checked", function()
      refuses("timeout must be a positive number of seconds (got -1)", "timeout", { api_key = "k", timeout = -1 })
      refuses('timeout must be a positive number of seconds (got "10")', "timeout", { api_key = "k", timeout = "10" })
      refuses("connect_timeout must be a positive number of seconds (got 0)", "connect_timeout",
        { api_key = "k", connect_timeout = 0 })
      refuses("max_retries must be a whole number from 0 to 10 (got 11)", "max_retries",
        { api_key = "k", max_retries = 11 })
      refuses("max_response_size must be a whole number from 1 to 2147483648 (got 0)", "max_response_size",
        { api_key = "k", max_response_size = 0 })
    end)
  end)

  describe("headers", function()
    it("refuses reserved names and injection", function()
      refuses('headers["Content-Length"]: Content-Length cannot be set as a header; it is computed from the body',
        "headers", { api_key = "k", headers = { ["Content-Length"] = "1" } })
      refuses('headers["X-A"] contains a control character (byte 10 at position 2); '
        .. "CR, LF and NUL would split the request, remove them", "headers",
        { api_key = "k", headers = { ["X-A"] = "a\nb" } })
      refuses('headers["X-A"] must be a string (got 1)', "headers", { api_key = "k", headers = { ["X-A"] = 1 } })
      refuses('headers must be a table of name = value strings (got "X-A: 1")', "headers",
        { api_key = "k", headers = "X-A: 1" })
    end)
  end)

  describe("under an nginx without ngx.run_worker_thread", function()
    it("refuses calls (they would block the worker), nothing sent", function()
      local port = helpers.closed_port()
      local out, status = helpers.run_lua(([[
        ngx = { get_phase = function() return "content" end }  -- an older lua-nginx-module
        local cerca = require "cerca"
        local c = assert(cerca.new { api_key = "k", base_url = "http://127.0.0.1:%d", log_level = "off" })
        local sub, err = c.webhooks.create("fleet_1", { url = "https://example.com/h" })
        io.write(tostring(sub), " ", err.type, " ", err.attempts, " ", err.message)
      ]]):format(port))
      assert.are.equal(0, status, out)
      assert.are.equal("nil configuration 0 cerca needs ngx.run_worker_thread to call the API from nginx "
        .. "without blocking the worker: use lua-nginx-module 0.10.21 or newer (OpenResty 1.21.4 or newer), "
        .. "built on Linux", out)
    end)
  end)

  describe("ca_file", function()
    it("must be readable", function()
      refuses("ca_file cannot be read: /nonexistent/ca.pem: No such file or directory", "ca_file",
        { api_key = "k", ca_file = "/nonexistent/ca.pem" })
      refuses("ca_file must be the path of a PEM file (got true)", "ca_file", { api_key = "k", ca_file = true })
    end)

    it("must be a file: a FIFO, a device or a folder is refused at once, without opening it", function()
      -- libcurl reads ca_file for every new connection: a FIFO without a
      -- writer would block there (and here, were it opened to check it).
      local dir = helpers.sh("mktemp -d"):gsub("%s+$", "")
      helpers.sh("mkfifo " .. helpers.q(dir .. "/ca.fifo"))
      local t0 = helpers.now()
      refuses("ca_file must be the path of a PEM file, not of a fifo", "ca_file",
        { api_key = "k", ca_file = dir .. "/ca.fifo" })
      assert.is_true(helpers.now() - t0 < 1)
      refuses("ca_file must be the path of a PEM file, not of a device", "ca_file",
        { api_key = "k", ca_file = "/dev/zero" })
      refuses("ca_file must be the path of a PEM file, not of a directory", "ca_file", { api_key = "k", ca_file = dir })
      refuses("ca_file must be the path of a PEM file (got a string with a NUL byte)", "ca_file",
        { api_key = "k", ca_file = "/etc/hostname\0/dev/zero" })
      local _, err = cerca.post("https://127.0.0.1:1/", "", { ca_file = dir .. "/ca.fifo" })
      assert.are.equal("ca_file must be the path of a PEM file, not of a fifo", err.message)
      helpers.sh("rm -rf " .. helpers.q(dir))
    end)
  end)
end)
