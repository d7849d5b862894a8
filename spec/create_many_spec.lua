-- webhooks.create_many: many creates at once, each with the policy of one.
local helpers = require "spec.helpers"

local URL = "https://example.com/webhook"

local function items_for(n)
  local items = {}
  for i = 1, n do items[i] = { fleet_id = "fleet_" .. i, params = { url = URL } } end
  return items
end

local distinct_connections = helpers.distinct_connections

-- A fault inside cerca after each create ends, as a bug in the driver
-- would raise one: `c`'s runtime raises once it has handed an answer on.
-- With `pass_read_more` false, the runtime also drops the rest of the
-- items' pass (`read_more`), as a driver that knows nothing of it would.
local function break_off_after_each_answer(c, pass_read_more)
  local rt = c._runtime
  local run_many = rt.run_many
  rt.run_many = function(self, calls, keys, concurrency, on_done, more)
    return run_many(self, calls, keys, concurrency, function(k, ...)
      on_done(k, ...)
      error("injected fault")
    end, pass_read_more and more or nil)
  end
end

describe("webhooks.create_many", function()
  local srv, client

  setup(function()
    srv = helpers.start_server { tls = false, delay = 0.02 }
    client = helpers.client(srv)
  end)

  teardown(function()
    if client then client:close() end
    if srv then srv:stop() end
  end)

  before_each(function() srv:reset() end)

  it("returns one result per item, in input order", function()
    local results = assert(client.webhooks.create_many(items_for(60), { concurrency = 10 }))
    assert.are.equal(60, #results)
    local stored = {}
    for _, s in ipairs(srv:subscriptions()) do stored[s.id] = s end
    for i = 1, 60 do
      assert.is_true(results[i].ok)
      local sub = results[i].subscription
      assert.are.equal("fleet_" .. i, sub.fleetId)
      assert.are.equal(stored[sub.id].secret, sub.secret)
      assert.are.equal(201, results[i].response.status)
      assert.are.equal(1, results[i].response.attempts)
      assert.matches("^cerca.Subscription ", tostring(sub))
    end
    assert.are.equal(60, #srv:subscriptions())
  end)

  it("never has more than `concurrency` connections to the server", function()
    local results = assert(client.webhooks.create_many(items_for(40), { concurrency = 5 }))
    for i = 1, 40 do assert.is_true(results[i].ok) end
    local reqs = srv:requests()
    assert.are.equal(40, #reqs)
    local n = distinct_connections(reqs)
    assert.is_true(n >= 2 and n <= 5, n .. " connections")
  end)

  it("runs calls concurrently", function()
    -- Each answer waits 200 ms: one after another, 50 take 10 s; two waves
    -- of 25 take 0.4 s plus the client's own time (seconds under valgrind
    -- on a busy machine, which is why the bar is far from both).
    for _ = 1, 50 do srv:enqueue { action = "pass", delay = 0.2 } end
    local t0 = helpers.now()
    assert(client.webhooks.create_many(items_for(50), { concurrency = 25 }))
    local elapsed = helpers.now() - t0
    assert.is_true(elapsed < 3, "elapsed " .. elapsed)
  end)

  it("fails an invalid item alone, before any traffic for it", function()
    local items = items_for(5)
    items[2] = { fleet_id = "fleet_2", params = { url = "http://example.com" } }
    items[4] = "not an item"
    items[5] = { fleet_id = "fleet_5", params = { url = URL }, optoins = {} }
    local results = assert(client.webhooks.create_many(items))
    assert.is_true(results[1].ok and results[3].ok)
    assert.are.equal("invalid_request", results[2].error.type)
    assert.are.equal("params.url must use https (got http://); deliveries are only sent to HTTPS endpoints",
      results[2].error.message)
    assert.are.equal(2, results[2].error.item)
    assert.are.equal(0, results[2].error.attempts)
    assert.are.equal('items[4] must be a { fleet_id =, params =, options = } table (got "not an item")',
      results[4].error.message)
    assert.are.equal('items[5]: unknown key "optoins"; did you mean "options"?', results[5].error.message)
    assert.are.equal(2, #srv:requests())
  end)

  it("reports a server failure for its item only", function()
    srv:enqueue { status = 401, body = '{"error":{"message":"bad key"}}' }
    local results = assert(client.webhooks.create_many(items_for(3), { concurrency = 1 }))
    assert.are.equal("authentication", results[1].error.type)
    assert.are.equal("bad key", results[1].error.message)
    assert.are.equal(1, results[1].error.item)
    assert.is_true(results[2].ok and results[3].ok)
  end)

  it("retries inside a batch, each item under its own key", function()
    for _ = 1, 3 do srv:enqueue { status = 503, body = "{}", headers = { ["Retry-After-Ms"] = "30" } } end
    local results = assert(client.webhooks.create_many(items_for(10), { concurrency = 4 }))
    local retried = 0
    for i = 1, 10 do
      assert.is_true(results[i].ok, tostring(results[i].error))
      retried = retried + (results[i].response.attempts - 1)
    end
    assert.are.equal(3, retried)
    local reqs = srv:requests()
    assert.are.equal(13, #reqs)
    local keys = {}
    for _, r in ipairs(reqs) do
      local k = r.headers["idempotency-key"]
      keys[k] = (keys[k] or 0) + 1
    end
    local distinct = 0
    for _ in pairs(keys) do distinct = distinct + 1 end
    assert.are.equal(10, distinct)
    assert.are.equal(10, #srv:subscriptions())
  end)

  it("recovers a create whose answer was lost, without duplicates", function()
    srv:enqueue { action = "create_then_drop" }
    srv:enqueue { action = "create_then_partial" }
    local results = assert(client.webhooks.create_many(items_for(8), { concurrency = 4 }))
    for i = 1, 8 do assert.is_true(results[i].ok, tostring(results[i].error)) end
    assert.are.equal(8, #srv:subscriptions())
  end)

  it("gives up an item after its retries, as a single create does", function()
    for _ = 1, 3 do srv:enqueue { status = 500, body = "{}", headers = { ["Retry-After-Ms"] = "1" } } end
    local results = assert(client.webhooks.create_many(items_for(1), { concurrency = 2 }))
    assert.are.equal("server", results[1].error.type)
    assert.are.equal(3, results[1].error.attempts)
  end)

  it("starts a retry whose wait is over before the items not yet started: its deadline holds", function()
    -- One at a time, each answer 0.2 s away: behind the 9 other items, the
    -- first one's retry would start after 1.8 s, past its 1 s deadline.
    srv:enqueue { status = 503, body = "{}", headers = { ["Retry-After-Ms"] = "1" } }
    for _ = 1, 10 do srv:enqueue { action = "pass", delay = 0.2 } end
    local items = items_for(10)
    items[1].options = { deadline = 1 }
    local results = assert(client.webhooks.create_many(items, { concurrency = 1 }))
    assert.is_true(results[1].ok, results[1].error and tostring(results[1].error))
    assert.are.equal(2, results[1].response.attempts)
    -- The retry went out second or third: at most after the one item in
    -- flight when its wait ended (none, when it ended before the batch
    -- had read a second item).
    local reqs = srv:requests()
    local key, at = reqs[1].headers["idempotency-key"], nil
    for i = 2, #reqs do
      if reqs[i].headers["idempotency-key"] == key then at = i end
    end
    assert.is_true(at == 2 or at == 3, "the retry was request " .. tostring(at))
    for i = 2, 10 do assert.is_true(results[i].ok) end
  end)

  it("ends a due retry at its deadline when every place is taken, not when a place frees", function()
    srv:enqueue { status = 503, body = "{}", headers = { ["Retry-After"] = "0.2" } }
    srv:enqueue { action = "pass", delay = 3 }
    local t0, ended = helpers.now(), {}
    local items = items_for(2)
    items[1].options = { deadline = 1 }
    local results = assert(client.webhooks.create_many(items, { concurrency = 1,
      on_result = function(i) ended[i] = helpers.now() - t0 end }))
    assert.is_true(results[2].ok)
    assert.are.equal("timeout", results[1].error.type)
    assert.is_true(results[1].error.maybe_created)
    assert.is_string(results[1].error.idempotency_key)
    assert.is_true(ended[1] < 1.5, "item 1 (deadline 1 s) ended after " .. ended[1] .. " s")
  end)

  it("applies per-item options", function()
    srv:enqueue { status = 201, body = "{}", delay = 2 }
    local items = items_for(2)
    items[1].options = { timeout = 0.3, max_retries = 0 }
    items[2].options = { idempotency_key = "batch-key-2" }
    local results = assert(client.webhooks.create_many(items, { concurrency = 1 }))
    assert.are.equal("timeout", results[1].error.type)
    assert.is_true(results[2].ok)
    assert.are.equal("batch-key-2", srv:requests()[2].headers["idempotency-key"])
  end)

  it("ends a transfer at its timeout, not at the next activity or idle wake-up", function()
    -- nothing else is in flight: only libcurl's timer can end the wait, and
    -- the loop's idle wake-up (1 s) comes too late to pass
    srv:enqueue { status = 201, body = "{}", delay = 3 }
    local items = items_for(1)
    items[1].options = { timeout = 0.3, max_retries = 0 }
    local now = require("cerca.core").monotime
    local started = now()
    local results = assert(client.webhooks.create_many(items))
    local took = now() - started
    assert.are.equal("timeout", results[1].error.type)
    assert.is_true(took >= 0.29 and took < 0.8, ("took %.3f s"):format(took))
  end)

  it("reports progress as items finish, and survives a failing callback", function()
    local seen = {}
    local results = assert(client.webhooks.create_many(items_for(12), {
      concurrency = 3,
      on_result = function(i, r)
        seen[#seen + 1] = i
        assert(r.ok)
        if #seen == 5 then error("progress bar crashed") end
      end,
    }))
    assert.are.equal(12, #seen)
    table.sort(seen)
    for i = 1, 12 do
      assert.are.equal(i, seen[i])
      assert.is_true(results[i].ok)
    end
  end)

  it("reads the items once: a progress callback that changes them changes nothing sent or matched", function()
    local items = items_for(6)
    items[6] = { fleet_id = "fleet_6", params = { url = "http://example.com/not-https" } } -- refused at once
    local options5 = { idempotency_key = "key-5" }
    items[5].options = options5
    local calls = 0
    local results = assert(client.webhooks.create_many(items, {
      concurrency = 1,
      on_result = function()
        calls = calls + 1
        options5.idempotency_key = "key-mutated"
        for i = 1, 5 do
          items[i].fleet_id = "fleet_changed"
          items[i].params.url = "https://changed.example.com/"
          items[i].options = { idempotency_key = "key-changed-" .. i }
        end
      end,
    }))
    assert.are.equal(6, calls)
    assert.is_false(results[6].ok)
    local sent = srv:requests()
    assert.are.equal(5, #sent)
    for i = 1, 5 do
      assert.is_true(results[i].ok, tostring(results[i].error))
      assert.are.equal("fleet_" .. i, results[i].subscription.fleetId)
      assert.are.equal(URL, results[i].subscription.url)
    end
    local keys = {}
    for _, rq in ipairs(sent) do keys[rq.headers["idempotency-key"]] = true end
    assert.is_true(keys["key-5"])
    assert.is_nil(keys["key-mutated"])
    for i = 1, 5 do assert.is_nil(keys["key-changed-" .. i]) end
  end)

  it("reads every item before any callback runs: one for an item refused first changes nothing sent", function()
    local items = items_for(5)
    items[1] = { fleet_id = "fleet_1", params = { url = "http://example.com/not-https" } } -- refused at once
    items[3].options = { idempotency_key = "key-3", timeout = 10 }
    local seen = {}
    local results = assert(client.webhooks.create_many(items, {
      concurrency = 1,
      on_result = function(i)
        seen[#seen + 1] = i
        for k = 2, 5 do
          items[k].fleet_id = "fleet_changed"
          items[k].params.url = "https://changed.example.com/"
          items[k].options = { idempotency_key = "key-changed-" .. k, timeout = "soon" }
        end
        items[3].options.idempotency_key = "key-mutated"
      end,
    }))
    assert.are.equal(1, seen[1])
    assert.are.equal(5, #seen)
    assert.is_false(results[1].ok)
    assert.are.equal("params.url", results[1].error.field)
    local sent = srv:requests()
    assert.are.equal(4, #sent)
    local keys = {}
    for _, rq in ipairs(sent) do
      keys[rq.headers["idempotency-key"]] = true
      assert.is_truthy(rq.uri:find("^/fleets/fleet_%d/webhooks$"), rq.uri)
    end
    for k = 2, 5 do
      assert.is_true(results[k].ok, tostring(results[k].error))
      assert.are.equal("fleet_" .. k, results[k].subscription.fleetId)
      assert.are.equal(URL, results[k].subscription.url)
      assert.is_nil(keys["key-changed-" .. k])
    end
    assert.is_true(keys["key-3"])
    assert.is_nil(keys["key-mutated"])
  end)

  it("reads items past the first wave while it is in flight, and hands no result over before all are read",
    function()
      -- 300 items, 2 in flight: the pass goes on, a chunk between two polls,
      -- while the first creates are sent and answered. A callback that
      -- changes every item must still change nothing sent.
      local items = items_for(300)
      items[250].options = { idempotency_key = "key-250" }
      local first_seen
      local results = assert(client.webhooks.create_many(items, {
        concurrency = 2,
        on_result = function(i)
          first_seen = first_seen or i
          for k = 1, #items do
            items[k].fleet_id = "fleet_changed"
            items[k].params.url = "https://changed.example.com/"
            items[k].options = { idempotency_key = "key-changed-" .. k }
          end
        end,
      }))
      assert.is_number(first_seen)
      local sent = srv:requests()
      assert.are.equal(300, #sent)
      local keys = {}
      for _, rq in ipairs(sent) do
        keys[rq.headers["idempotency-key"]] = true
        assert.is_truthy(rq.uri:find("^/fleets/fleet_%d+/webhooks$"), rq.uri)
      end
      assert.is_true(keys["key-250"])
      for i = 1, 300 do
        assert.is_true(results[i].ok, tostring(results[i].error))
        assert.are.equal("fleet_" .. i, results[i].subscription.fleetId)
        assert.is_nil(keys["key-changed-" .. i])
      end
    end)

  it("sends the first calls before the rest are read (client:request_many with read_more)", function()
    local c = helpers.client(srv)
    local path, body = "/fleets/fleet_read/webhooks", { url = URL }
    local calls = { assert(c:prepare("POST", path, body)) }
    local reads, sent_before_read = 0, false
    local function read_more()
      reads = reads + 1
      -- Each look at the server is a control request; the create ahead of
      -- it may need a few polls to be on the wire.
      if #srv:requests() > 0 then sent_before_read = true end
      if sent_before_read or reads >= 100 then
        calls[#calls + 1] = assert(c:prepare("POST", path, body))
        return false
      end
      return true
    end
    local ended = {}
    c:request_many(calls, 2, function(k, res, err) ended[k] = res or err end, read_more)
    c:close()
    assert.is_true(sent_before_read, "nothing reached the server in " .. reads .. " reads")
    assert.are.equal(2, #calls)
    assert.are.equal(201, ended[1].status)
    assert.are.equal(201, ended[2].status)
    assert.are.equal(2, #srv:requests())
  end)

  it("gives every item a result when the batch breaks off while items are still being read", function()
    local c = helpers.client(srv)
    break_off_after_each_answer(c, true)
    local seen = {}
    local results = assert(c.webhooks.create_many(items_for(200), {
      concurrency = 2,
      on_result = function(i) seen[#seen + 1] = i end,
    }))
    c:close()
    assert.are.equal(200, #seen)
    local not_sent = 0
    for i = 1, 200 do
      local r = results[i]
      if not r.ok then
        assert.are.equal("internal", r.error.type)
        assert.are.equal(i, r.error.item)
        assert.matches("injected fault", r.error.message, 1, true)
        if r.error.attempts == 0 then
          not_sent = not_sent + 1
          assert.is_nil(r.error.request_sent)
          assert.matches("it was not sent", r.error.message, 1, true)
        end
      end
    end
    -- The fault came with the first answer: most items were never sent.
    assert.is_true(not_sent >= 150, not_sent .. " not sent")
    assert.is_true(#srv:requests() <= 50, #srv:requests() .. " sent")
  end)

  it("runs no code of the caller while it reads the items: a logger that changes them changes nothing sent",
    function()
      -- The logger is the caller's code, and the creates in flight write to
      -- it (at "debug", each one as it is sent, at "info" as it ends): with
      -- one, the whole pass is read before anything is sent.
      local items = items_for(300)
      local lines = 0
      local c = helpers.client(srv, { log_level = "debug", logger = function()
        lines = lines + 1
        for k = 1, #items do
          items[k].fleet_id = "fleet_changed"
          items[k].params.url = "https://changed.example.com/"
        end
        for k = #items, 101, -1 do items[k] = nil end
      end })
      local results = assert(c.webhooks.create_many(items, { concurrency = 50 }))
      c:close()
      assert.is_true(lines > 0)
      local sent = srv:requests()
      assert.are.equal(300, #sent)
      for _, rq in ipairs(sent) do assert.is_truthy(rq.uri:find("^/fleets/fleet_%d+/webhooks$"), rq.uri) end
      for i = 1, 300 do
        assert.is_true(results[i].ok, tostring(results[i].error))
        assert.are.equal("fleet_" .. i, results[i].subscription.fleetId)
        assert.are.equal(URL, results[i].subscription.url)
      end
    end)

  it("reads the list's length once: items removed while it reads still get one result each", function()
    -- Caller code cerca does not call (a finalizer, say) may still run
    -- while the pass goes on: here, after the first chunk past the first
    -- wave, the list loses its tail.
    local c = helpers.client(srv)
    local items = items_for(300)
    local rt = c._runtime
    local run_many = rt.run_many
    rt.run_many = function(self, calls, keys, concurrency, on_done, more)
      return run_many(self, calls, keys, concurrency, on_done, more and function()
        local again = more()
        for i = #items, 101, -1 do items[i] = nil end
        return again
      end)
    end
    local seen = {}
    local results = assert(c.webhooks.create_many(items, {
      concurrency = 2,
      on_result = function(i) seen[i] = (seen[i] or 0) + 1 end,
    }))
    c:close()
    local removed = 0
    for i = 1, 300 do
      assert.are.equal(1, seen[i], "results handed over for item " .. i)
      local r = results[i]
      if r.ok then
        assert.are.equal("fleet_" .. i, r.subscription.fleetId)
      else
        removed = removed + 1
        assert.is_true(i > 100)
        assert.are.equal(0, r.error.attempts)
        assert.matches("items%[" .. i .. "%] must be a .* table %(got nil%)", r.error.message)
      end
    end
    assert.are.equal(200, removed)
    assert.are.equal(100, #srv:requests())
  end)

  it("gives one result per item when reading one fails inside cerca, with refused items in the same chunk",
    function()
      local webhooks = require "cerca.webhooks"
      local body = webhooks.body
      finally(function() webhooks.body = body end)
      -- A fault inside cerca while item 80 is read, in the chunk after the
      -- first wave's: item 70, in that chunk too, was refused just before.
      webhooks.body = function(params)
        if params.url == "https://fault.example.com/" then error("injected fault") end
        return body(params)
      end
      local items = items_for(200)
      items[70].fleet_id = 42
      items[80].params.url = "https://fault.example.com/"
      local seen = {}
      local results = assert(client.webhooks.create_many(items, {
        concurrency = 2,
        on_result = function(i) seen[i] = (seen[i] or 0) + 1 end,
      }))
      for i = 1, 200 do assert.are.equal(1, seen[i], "results handed over for item " .. i) end
      assert.are.equal("invalid_request", results[70].error.type)
      assert.are.equal(70, results[70].error.item)
      -- The first creates may have ended, and their places gone to items
      -- read before the fault, on a slow machine: every item is either
      -- answered, in flight when the batch broke off (with its key), or
      -- not sent.
      local attempted = 0
      for i = 1, 200 do
        local r = results[i]
        if i ~= 70 and not r.ok then
          assert.are.equal("internal", r.error.type)
          assert.matches("injected fault", r.error.message, 1, true)
          if r.error.attempts == 0 then
            assert.matches("it was not sent", r.error.message, 1, true)
          else
            assert.is_string(r.error.idempotency_key)
          end
        end
        if i >= 80 then assert.are.equal(0, r.error.attempts) end
        if r.ok or r.error.attempts > 0 then attempted = attempted + 1 end
      end
      assert.are.equal(attempted, #srv:requests())
    end)

  it("gives every item a result when the batch breaks off inside cerca, with the key if it may be sent", function()
    local c = helpers.client(srv)
    -- A fault inside cerca, after the first create ended: what a bug in the
    -- driver would do.
    break_off_after_each_answer(c, false)
    local seen = {}
    local results = assert(c.webhooks.create_many(items_for(5), {
      concurrency = 2,
      on_result = function(i) seen[#seen + 1] = i end,
    }))
    c:close()
    assert.are.equal(5, #seen)
    assert.is_true(results[1].ok)
    local keys_seen = {}
    for _, rq in ipairs(srv:requests()) do keys_seen[rq.headers["idempotency-key"]] = rq.uri end
    local maybe_sent = 0
    for i = 2, 5 do
      local err = results[i].error
      assert.is_false(results[i].ok)
      assert.are.equal("internal", err.type)
      assert.are.equal(i, err.item)
      assert.matches("injected fault", err.message, 1, true)
      if err.attempts > 0 then
        maybe_sent = maybe_sent + 1
        assert.is_true(err.request_sent)
        assert.matches("repeat it with err.idempotency_key", err.message, 1, true)
        assert.is_string(err.idempotency_key)
        -- Repeated under its key, the create gives one subscription, never two.
        local sub = assert(client.webhooks.create("fleet_" .. i, { url = URL },
          { idempotency_key = err.idempotency_key }))
        assert.are.equal("fleet_" .. i, sub.fleetId)
      else
        assert.is_nil(err.idempotency_key)
        assert.is_nil(err.request_sent)
        assert.matches("it was not sent", err.message, 1, true)
        assert.is_nil(keys_seen[err.idempotency_key or ""])
      end
    end
    assert.is_true(maybe_sent >= 1, "no create was in flight when the batch broke off")
    local per_fleet = {}
    for _, sub in ipairs(srv:subscriptions()) do
      assert.is_nil(per_fleet[sub.fleetId], "two subscriptions for " .. sub.fleetId)
      per_fleet[sub.fleetId] = true
    end
  end)

  it("gives an item a result with its key when reading its answer fails inside cerca", function()
    -- A fault while the third answer is read into a subscription: what a
    -- bug in cerca would do.
    local webhooks = require "cerca.webhooks"
    local subscription, answers = webhooks.subscription, 0
    webhooks.subscription = function(...)
      answers = answers + 1
      if answers == 3 then error("injected fault") end
      return subscription(...)
    end
    finally(function() webhooks.subscription = subscription end)
    local results = assert(client.webhooks.create_many(items_for(6), { concurrency = 1 }))
    webhooks.subscription = subscription
    assert.are.equal(6, #results)
    assert.is_true(results[1].ok and results[2].ok)
    -- The third was made: its error gives the key that gets it back.
    local err = results[3].error
    assert.are.equal("internal", err.type)
    assert.is_true(err.request_sent)
    local sub = assert(client.webhooks.create("fleet_3", { url = URL }, { idempotency_key = err.idempotency_key }))
    assert.are.equal(srv:subscriptions()[3].secret, sub.secret)
    -- The fourth was sent as the third's answer came (places are refilled
    -- before answers are read); the others were not.
    assert.are.equal("internal", results[4].error.type)
    assert.is_string(results[4].error.idempotency_key)
    for i = 5, 6 do
      assert.are.equal("internal", results[i].error.type)
      assert.matches("it was not sent", results[i].error.message, 1, true)
    end
    local per_fleet = {}
    for _, s in ipairs(srv:subscriptions()) do
      assert.is_nil(per_fleet[s.fleetId], "two subscriptions for " .. s.fleetId)
      per_fleet[s.fleetId] = true
    end
  end)

  it("takes lists of any length, and copies one whose tables carry metatables", function()
    local items = items_for(1500)
    local results = assert(client.webhooks.create_many(items, { concurrency = 50 }))
    for i = 1, 1500 do assert.is_true(results[i].ok) end
    srv:reset()
    local proxied = items_for(3)
    proxied[2] = setmetatable({ fleet_id = "fleet_2", params = { url = URL } }, { __tostring = tostring })
    results = assert(client.webhooks.create_many(proxied))
    for i = 1, 3 do assert.are.equal("fleet_" .. i, results[i].subscription.fleetId) end
  end)

  it("refuses bad arguments as a whole, sending nothing", function()
    local r, err = client.webhooks.create_many("fleet_1")
    assert.is_nil(r)
    assert.are.equal('items must be a list of { fleet_id =, params =, options = } tables (got "fleet_1")',
      err.message)
    r, err = client.webhooks.create_many(items_for(1), { concurrency = 0 })
    assert.is_nil(r)
    assert.are.equal("opts.concurrency must be a whole number from 1 to 1000 (got 0)", err.message)
    r, err = client.webhooks.create_many(items_for(1), { concurency = 4 })
    assert.is_nil(r)
    assert.are.equal('opts: unknown key "concurency"; did you mean "concurrency"?', err.message)
    r, err = client.webhooks.create_many(items_for(1), { on_result = true })
    assert.is_nil(r)
    assert.are.equal("opts.on_result must be a function(i, result) (got true)", err.message)
    r, err = client.webhooks.create_many(items_for(1), { stop = "now" })
    assert.is_nil(r)
    assert.are.equal('opts.stop must be a function() returning true to stop the batch (got "now")', err.message)
    assert.are.same({}, srv:requests())
  end)

  it("starts no create once opts.stop says so: those in flight end, the rest are cancelled unsent", function()
    local ended, ended_at_stop = 0, nil
    local results = assert(client.webhooks.create_many(items_for(40), {
      concurrency = 4,
      on_result = function() ended = ended + 1 end,
      stop = function()
        if ended >= 6 then ended_at_stop = ended_at_stop or ended end
        return ended >= 6
      end,
    }))
    assert.are.equal(40, #results)
    local created, cancelled = 0, 0
    for i = 1, 40 do
      local r = results[i]
      if r.ok then
        created = created + 1
      else
        cancelled = cancelled + 1
        assert.are.equal("cancelled", r.error.type, tostring(r.error))
        assert.are.equal(i, r.error.item)
        assert.are.equal(0, r.error.attempts)
        assert.is_nil(r.error.idempotency_key)
        assert.is_nil(r.error.request_sent)
        assert.is_true(r.error.stopped)
        assert.matches("not sent: the batch was stopped (opts.stop) before this call started; it sent nothing",
          r.error.message, 1, true)
      end
    end
    -- Past the creates ended when it said so, only the four in flight then
    -- may end created.
    assert.is_true(ended_at_stop >= 6 and ended_at_stop < 40, tostring(ended_at_stop))
    assert.is_true(created >= ended_at_stop and created <= ended_at_stop + 4,
      created .. " created, " .. ended_at_stop .. " ended when told to stop")
    assert.are.equal(40, created + cancelled)
    -- Every create sent was answered and handed back: none is lost.
    assert.are.equal(created, #srv:requests())
    assert.are.equal(created, #srv:subscriptions())
  end)

  it("ends a create waiting to retry when told to stop, with its last error and key, without the wait", function()
    srv:enqueue { status = 503, body = "{}", headers = { ["Retry-After-Ms"] = "3000" } }
    -- Stop is said once the attempt's log line has scheduled the 3 s retry,
    -- however slow the first attempt was (valgrind).
    local retry_at
    local c = helpers.client(srv, { log_level = "info", logger = function(_, line)
      if line:find("retry_in=", 1, true) then retry_at = retry_at or helpers.now() end
    end })
    local results = assert(c.webhooks.create_many(items_for(1), {
      stop = function() return retry_at ~= nil and "out of time" end,
    }))
    c:close()
    assert.is_truthy(retry_at)
    local waited = helpers.now() - retry_at
    assert.is_true(waited < 2, "waited " .. waited .. " s after the retry was scheduled")
    local err = results[1].error
    assert.are.equal("server", err.type)
    assert.is_true(err.stopped)
    assert.matches("(not retried: the batch was stopped (out of time))", err.message, 1, true)
    assert.are.equal(1, err.attempts)
    assert.is_true(err.request_sent)
    assert.are.equal(srv:requests()[1].headers["idempotency-key"], err.idempotency_key)
    assert.are.equal(1, #srv:requests())
  end)

  it("keeps what a 2xx that broke off delivered when told to stop while its retry waits", function()
    srv:enqueue { action = "create_then_partial" }
    -- The attempt's log line says a retry is scheduled (it waits at least
    -- 0.375 s): stop is said from then on, during that wait, however slow
    -- the first attempt was (valgrind).
    local retry_scheduled = false
    local c = helpers.client(srv, { log_level = "info", logger = function(_, line)
      if line:find("retry_in=", 1, true) then retry_scheduled = true end
    end })
    local results = assert(c.webhooks.create_many(items_for(1), {
      stop = function() return retry_scheduled end,
    }))
    c:close()
    assert.is_true(retry_scheduled)
    local err = results[1].error
    assert.are.equal("invalid_response", err.type)
    assert.is_true(err.stopped)
    assert.is_true(#err.body > 0)
    assert.are.equal(srv:requests()[1].headers["idempotency-key"], err.idempotency_key)
    assert.are.equal(1, #srv:requests())
    assert.are.equal(1, #srv:subscriptions())
  end)

  it("sends nothing when opts.stop says so before the batch starts; invalid items are still refused", function()
    local items = items_for(30)
    items[7].params = { url = "http://example.com/plain" }
    local asked = 0
    local results = assert(client.webhooks.create_many(items, {
      concurrency = 4,
      stop = function() asked = asked + 1 return true end,
    }))
    assert.are.equal(1, asked)
    for i = 1, 30 do
      assert.are.equal(i == 7 and "invalid_request" or "cancelled", results[i].error.type)
    end
    assert.are.same({}, srv:requests())
  end)

  it("stops a batch whose opts.stop raises, and says so", function()
    local results = assert(client.webhooks.create_many(items_for(5), { stop = function() error("boom", 0) end }))
    for i = 1, 5 do
      assert.are.equal("cancelled", results[i].error.type)
      assert.matches("(opts.stop raised an error: boom)", results[i].error.message, 1, true)
    end
    assert.are.same({}, srv:requests())
  end)

  it("quotes at most 200 bytes of the reason opts.stop gives, never half a character", function()
    local function quoted(said)
      local results = assert(client.webhooks.create_many(items_for(1), { stop = function() return said end }))
      assert.are.equal("cancelled", results[1].error.type)
      return results[1].error.message:match("the batch was stopped %((.-)%) before")
    end
    -- 198 bytes, then a 3-byte character: cut inside it, so it goes whole.
    assert.are.equal(("a"):rep(198), quoted(("a"):rep(198) .. "\226\130\172" .. "tail"))
    -- 197 bytes, then a 3-byte character that ends at byte 200: it stays.
    assert.are.equal(("a"):rep(197) .. "\226\130\172", quoted(("a"):rep(197) .. "\226\130\172" .. "tail"))
    -- 199 bytes, then a 2-byte character: cut inside it.
    assert.are.equal(("a"):rep(199), quoted(("a"):rep(199) .. "\195\169" .. "tail"))
    -- Only 4-byte characters (50 of them in 200 bytes): kept whole.
    assert.are.equal(("\240\159\154\151"):rep(50), quoted(("\240\159\154\151"):rep(60)))
    -- An empty reason: the message names opts.stop instead.
    assert.are.equal("opts.stop", quoted(""))
    assert.are.same({}, srv:requests())
  end)

  it("asks opts.stop before it looks at the items: a metatable its first question adds is seen", function()
    -- Were the items looked at first, item 150 would pass for plain and be
    -- read later, while the first creates travel, and its raising
    -- metamethod would break the batch off with those creates' answers.
    local items, asked = items_for(200), 0
    local r, err = client.webhooks.create_many(items, {
      concurrency = 4,
      stop = function()
        asked = asked + 1
        if asked == 1 then setmetatable(items[150], { __pairs = function() error("boom", 0) end }) end
        return false
      end,
    })
    if _VERSION == "Lua 5.1" then
      -- No __pairs in Lua 5.1 and LuaJIT: the item is copied, and sent.
      for i = 1, 200 do assert.is_true(r[i].ok, tostring(r[i].error)) end
      assert.are.equal(200, #srv:subscriptions())
    else
      -- Its __pairs raised while the items were read, before anything was sent.
      assert.is_nil(r)
      assert.are.equal("invalid_request", err.type)
      assert.are.same({}, srv:requests())
    end
  end)

  it("asks opts.stop only where it cannot change an item being read", function()
    -- Past its first question, this stop rewrites every item: an item read
    -- after it runs would be sent to the wrong URL.
    local items, asked = items_for(300), 0
    local results = assert(client.webhooks.create_many(items, {
      concurrency = 2,
      stop = function()
        asked = asked + 1
        if asked > 1 then
          for i = 1, #items do items[i].params = { url = "https://example.com/changed" } end
        end
        return false
      end,
    }))
    assert.is_true(asked > 1, asked .. " questions")
    for i = 1, 300 do assert.is_true(results[i].ok, tostring(results[i].error)) end
    for _, s in ipairs(srv:subscriptions()) do assert.are.equal(URL, s.url) end
    assert.are.equal(300, #srv:subscriptions())
  end)

  it("starts an item's deadline at its first attempt, not while it waits in the queue", function()
    srv:enqueue { action = "pass", delay = 0.6 }
    local items = items_for(3)
    for i = 1, 3 do items[i].options = { deadline = 0.5 } end
    local results = assert(client.webhooks.create_many(items, { concurrency = 1 }))
    assert.are.equal("timeout", results[1].error.type)
    assert.is_true(results[2].ok and results[3].ok)
  end)

  it("ends an item whose deadline passed between attempts, without raising", function()
    srv:enqueue { status = 503, body = "{}", headers = { ["Retry-After-Ms"] = "400" } }
    local items = items_for(1)
    items[1].options = { deadline = 0.3 }
    local results = assert(client.webhooks.create_many(items))
    assert.are.equal("server", results[1].error.type)
    assert.are.equal(1, results[1].error.attempts)
  end)

  it("keeps going when a callback closes the client, and the client works after", function()
    local c = helpers.client(srv)
    local results = assert(c.webhooks.create_many(items_for(6), {
      concurrency = 3, on_result = function() c:close() end,
    }))
    for i = 1, 6 do assert.is_true(results[i].ok, tostring(results[i].error)) end
    results = assert(c.webhooks.create_many(items_for(4), { concurrency = 2 }))
    for i = 1, 4 do assert.are.equal("fleet_" .. i, results[i].subscription.fleetId) end
    c:close()
  end)

  it("refuses two items under one idempotency key", function()
    local items = items_for(2)
    items[1].options = { idempotency_key = "deploy-1" }
    items[2].options = { idempotency_key = "deploy-1" }
    local results = assert(client.webhooks.create_many(items))
    assert.is_true(results[1].ok)
    assert.are.equal("items[2].options.idempotency_key is already used by items[1]; "
      .. "each create needs a key of its own", results[2].error.message)
    assert.are.equal(1, #srv:requests())
  end)

  it("returns an empty list for no items", function()
    assert.are.same({}, client.webhooks.create_many({}))
  end)

  it("works through the default client", function()
    local out, status = helpers.run_lua([[
      local cerca = require "cerca"
      local items = {}
      for i = 1, 3 do items[i] = { fleet_id = "env_" .. i, params = { url = "https://example.com/h" } } end
      local results = assert(cerca.webhooks.create_many(items))
      for i = 1, 3 do io.write(results[i].subscription.fleetId, " ") end
    ]], { CERCA_API_KEY = srv.api_key, CERCA_BASE_URL = srv.http_url })
    assert.are.equal(0, status)
    assert.are.equal("env_1 env_2 env_3 ", out)
  end)

  it("works over HTTPS", function()
    local tls = helpers.start_server { tls = true }
    local c = helpers.client(tls, { base_url = tls.https_url, ca_file = tls.ca_file })
    local results = assert(c.webhooks.create_many(items_for(20), { concurrency = 4 }))
    c:close()
    for i = 1, 20 do assert.is_true(results[i].ok, tostring(results[i].error)) end
    assert.is_true(distinct_connections(tls:requests()) <= 4)
    tls:stop()
  end)
end)
