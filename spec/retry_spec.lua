-- The retry policy on its own: what is retried and how long to wait.
require "spec.helpers"
local outcome = require "cerca.outcome"
local retry = require "cerca.retry"

describe("cerca.retry", function()
  -- What is retried is decided where an answer is classified (cerca.outcome);
  -- retry.next_wait decides on that classification only.
  describe("what is retried (outcome.classify)", function()
    local function res(status, headers, err)
      return { status = status, headers = headers or {}, body = "", error = err, error_message = err }
    end
    local function failure(r)
      local value, f = outcome.classify(r, 1024)
      assert.is_nil(value)
      return f
    end
    local function should_retry(r)
      local f = failure(r)
      return f.retryable, f.reason
    end

    it("retries 408, 409, 429 and every 5xx", function()
      for _, status in ipairs { 408, 409, 429, 500, 501, 502, 503, 504, 599 } do
        local again, why = should_retry(res(status))
        assert.is_true(again, status)
        assert.are.equal("HTTP " .. status, why)
      end
    end)

    it("does not retry other statuses", function()
      for _, status in ipairs { 200, 201, 204, 301, 307, 400, 401, 403, 404, 410, 422, 451 } do
        assert.is_false(should_retry(res(status)), status)
      end
    end)

    it("retries connection failures and timeouts, also after a 2xx status line", function()
      assert.is_true(should_retry(res(0, nil, "connection")))
      assert.is_true(should_retry(res(0, nil, "timeout")))
      assert.is_true(should_retry(res(201, nil, "connection")))
      -- A 2xx that broke off: the API made it; the error says so.
      local f = failure(res(201, nil, "connection"))
      assert.is_true(f.created)
      assert.are.equal("invalid_response", f.error.type)
      assert.is_nil(failure(res(0, nil, "connection")).created)
    end)

    it("does not retry TLS failures, oversized answers or bad URLs", function()
      for _, kind in ipairs { "tls", "too_large", "url", "internal" } do
        assert.is_false(should_retry(res(0, nil, kind)), kind)
      end
    end)

    it("lets x-should-retry override the decision", function()
      assert.is_false(should_retry(res(503, { ["x-should-retry"] = "false" })))
      assert.is_true(should_retry(res(400, { ["x-should-retry"] = "true" })))
      assert.is_true(should_retry(res(400, { ["x-should-retry"] = "TRUE" })))
      assert.is_true(should_retry(res(503, { ["x-should-retry"] = "maybe" })))
    end)
  end)

  describe("next_wait", function()
    it("ends the call on a failure that is not retryable, or on the last attempt", function()
      assert.is_nil(retry.next_wait({ retryable = false }, 1, 3, {}))
      assert.is_nil(retry.next_wait({ retryable = true }, 3, 3, {}))
      local wait = retry.next_wait({ retryable = true }, 1, 3, {})
      assert.is_true(wait >= 0.375 and wait <= 0.5, tostring(wait))
    end)

    it("waits what the server names, unless it is longer than MAX_SERVER_DELAY", function()
      assert.are.equal(2, retry.next_wait({ retryable = true }, 1, 3, { ["retry-after"] = "2" }))
      local wait, asked = retry.next_wait({ retryable = true }, 1, 3,
        { ["retry-after"] = tostring(retry.MAX_SERVER_DELAY + 1) })
      assert.is_nil(wait)
      assert.are.equal(retry.MAX_SERVER_DELAY + 1, asked)
    end)
  end)

  describe("backoff", function()
    it("doubles from 0.5 s up to 8 s, with jitter in [0.75, 1]", function()
      local function at(n, r) return retry.backoff(n, function() return r end) end
      assert.are.equal(0.5, at(1, 0))
      assert.are.equal(1, at(2, 0))
      assert.are.equal(2, at(3, 0))
      assert.are.equal(4, at(4, 0))
      assert.are.equal(8, at(5, 0))
      assert.are.equal(8, at(12, 0))
      assert.are.equal(0.375, at(1, 1))
      assert.are.equal(6, at(9, 1))
      for n = 1, 10 do
        local d = retry.backoff(n)
        local base = math.min(0.5 * 2 ^ (n - 1), 8)
        assert.is_true(d >= 0.75 * base and d <= base, n .. ": " .. d)
      end
    end)
  end)

  describe("server_delay", function()
    local NOW = 1784454000 -- 2026-07-19T09:40:00Z

    it("reads retry-after-ms first", function()
      assert.are.equal(0.25, retry.server_delay({ ["retry-after-ms"] = "250", ["retry-after"] = "9" }, NOW))
      assert.are.equal(1.5, retry.server_delay({ ["retry-after-ms"] = " 1500.0 " }, NOW))
    end)

    it("reads Retry-After in seconds", function()
      assert.are.equal(1, retry.server_delay({ ["retry-after"] = "1" }, NOW))
      assert.are.equal(120, retry.server_delay({ ["retry-after"] = "120" }, NOW))
      assert.are.equal(0, retry.server_delay({ ["retry-after"] = "0" }, NOW))
    end)

    it("reads Retry-After as an HTTP date in its three forms", function()
      assert.are.equal(30, retry.server_delay({ ["retry-after"] = "Sun, 19 Jul 2026 09:40:30 GMT" }, NOW))
      assert.are.equal(30, retry.server_delay({ ["retry-after"] = "Sunday, 19-Jul-26 09:40:30 GMT" }, NOW))
      assert.are.equal(30, retry.server_delay({ ["retry-after"] = "Sun Jul 19 09:40:30 2026" }, NOW))
      assert.are.equal(0, retry.server_delay({ ["retry-after"] = "Sun, 19 Jul 2026 09:00:00 GMT" }, NOW))
    end)

    it("reads a field repeated or listed (joined with \", \") as its longest readable wait", function()
      local cases = {
        { "120, 120", 120 }, { "1, 300", 300 }, { "1,5", 5 }, { "soon, 5", 5 },
        { "Sun, 19 Jul 2026 09:40:30 GMT, Sun, 19 Jul 2026 09:41:00 GMT", 60 },
        { "Sun, 19 Jul 2026 09:40:30 GMT, 10", 30 }, { "90, Sun, 19 Jul 2026 09:40:30 GMT", 90 },
        { "soon, later", nil }, { ",", nil },
      }
      for _, c in ipairs(cases) do
        assert.are.equal(c[2], retry.server_delay({ ["retry-after"] = c[1] }, NOW), c[1])
      end
      assert.are.equal(2, retry.server_delay({ ["retry-after-ms"] = "100, 2000" }, NOW))
    end)

    it("reports a wait too long to wait for, however long, as a finite number", function()
      assert.are.equal(1e12, retry.server_delay({ ["retry-after"] = "1000000000000" }, NOW))
      assert.are.equal(1e12, retry.server_delay({ ["retry-after"] = string.rep("9", 400) }, NOW))
      assert.are.equal(1e9, retry.server_delay({ ["retry-after-ms"] = "1000000000000" }, NOW))
      local failure = { retryable = true }
      local wait, server_wait = retry.next_wait(failure, 1, 3, { ["retry-after"] = "99999999999999" })
      assert.is_nil(wait)
      assert.are.equal(1e12, server_wait)
      wait, server_wait = retry.next_wait(failure, 1, 3, { ["retry-after"] = "120, 120" })
      assert.is_nil(wait)
      assert.are.equal(120, server_wait)
    end)

    it("ignores what it cannot read", function()
      for _, v in ipairs { "", "soon", "-1", "1e3", "0x10", "Sun, 32 Jul 2026 09:40:30 GMT",
        "Sun, 19 Foo 2026 09:40:30 GMT", "Sun, 19 Jul 2026 25:40:30 GMT", "nan", "inf" } do
        assert.is_nil(retry.server_delay({ ["retry-after"] = v }, NOW), v)
      end
      assert.is_nil(retry.server_delay({ ["retry-after-ms"] = "abc" }, NOW))
      assert.is_nil(retry.server_delay({}, NOW))
    end)
  end)

  describe("parse_http_date", function()
    it("agrees with the epoch", function()
      assert.are.equal(0, retry.parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"))
      assert.are.equal(784111777, retry.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"))
      assert.are.equal(951782400, retry.parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"))
      assert.are.equal(4102444800, retry.parse_http_date("Fri, 01 Jan 2100 00:00:00 GMT"))
    end)
  end)
end)
