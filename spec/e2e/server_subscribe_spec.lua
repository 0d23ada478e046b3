-- End-to-end: subscriptions (patterns, catch-up, live, slow subscribers) and groups.
local server = require "support.server"

local function collect(c, n, timeout)
  local got = {}
  while #got < n do
    local sub, e = c:next_event(timeout or 10)
    assert(sub, "waited for event " .. (#got + 1) .. " of " .. n .. ": " .. (e and e.message or "?"))
    got[#got + 1] = e
  end
  return got
end

describe("subscriptions", function()
  after_each(server.stop_all)

  it("catches up from a position and goes live with no gap and no duplicate", function()
    local s = server.start()
    local w, r = s:connect(), s:connect()
    local ids = {}
    for i = 1, 1500 do ids[#ids + 1] = w:send("append", "load-" .. (i % 13), { type = "T", data = { i = i } }) end
    local sub = assert(r:subscribe("*", 1))          -- while those appends are landing
    for i = 1501, 3000 do ids[#ids + 1] = w:send("append", "load-" .. (i % 13), { type = "T", data = { i = i } }) end
    local got = collect(r, 3000)
    for i, e in ipairs(got) do assert.equal(i, e.position) end
    for _, id in ipairs(ids) do assert(w:wait(id)) end
    assert.is_number(sub)
    assert.is_nil(r:next_event(0.2))                 -- nothing more
  end)

  it("filters by stream pattern and event type", function()
    local s = server.start()
    local c = s.client
    local sub = s:connect()
    assert(sub:subscribe({ streams = { "account" }, types = { "Deposited" } }, 0))
    local cat = s:connect()
    assert(cat:subscribe("order-*", 0))
    assert(c:append("account-1", { type = "Deposited", data = {} }))
    assert(c:append("account-1", { type = "Withdrawn", data = {} }))
    assert(c:append("accounts-1", { type = "Deposited", data = {} }))
    assert(c:append("order-5", { type = "Placed", data = {} }))
    assert(c:append("account", { type = "Deposited", data = {} }))
    local a = collect(sub, 2)
    assert.same({ "account-1", "account" }, { a[1].stream, a[2].stream })
    local o = collect(cat, 1)
    assert.equal("order-5", o[1].stream)
    assert.is_nil(sub:next_event(0.2))
  end)

  it("delivers only new events without a from, and stops after unsubscribe", function()
    local s = server.start()
    local c, sub = s.client, s:connect()
    assert(c:append("x-1", { type = "Old" }))
    local id = assert(sub:subscribe("x-1"))
    assert(c:append("x-1", { type = "New" }))
    local sid, e = sub:next_event(5)
    assert.equal(id, sid)
    assert.equal("New", e.type)
    assert.is_true(assert(sub:unsubscribe(id)))
    assert(c:append("x-1", { type = "After" }))
    assert.is_nil(sub:next_event(0.3))
  end)

  it("lets a subscriber that stops reading fall behind, then delivers everything in order", function()
    local s = server.start { args = { "--max-outbuf", "65536" } }
    local c, slow = s.client, s:connect()
    assert(slow:subscribe("big-*", 0))
    local pad = string.rep("x", 1000)
    local ids = {}
    for i = 1, 3000 do ids[i] = c:send("append", "big-" .. (i % 5), { type = "T", data = { i = i, pad = pad } }) end
    for _, id in ipairs(ids) do assert(c:wait(id)) end -- appends go on while it does not read
    local st = assert(c:stats())
    assert.equal(3000, st.head)
    local got = collect(slow, 3000)
    for i, e in ipairs(got) do
      assert.equal(i, e.position)
      assert.equal(i, e.data.i)
    end
  end)
end)

describe("groups", function()
  after_each(server.stop_all)

  it("shares events between members, each to one", function()
    local s = server.start()
    local m1, m2, c = s:connect(), s:connect(), s.client
    assert(m1:subscribe("job-*", 0, "workers"))
    assert(m2:subscribe("job-*", 0, "workers"))
    for i = 1, 40 do assert(c:append("job-" .. i, { type = "Queued", data = { i = i } })) end
    local seen, per = {}, { 0, 0 }
    local total = 0
    while total < 40 do
      for k, m in ipairs({ m1, m2 }) do
        local _, e = m:next_event(0.05)
        if e then
          assert.is_nil(seen[e.position])
          seen[e.position] = true
          per[k] = per[k] + 1
          total = total + 1
          assert(m:ack("workers", e.position))
        end
      end
    end
    assert.is_true(per[1] > 0 and per[2] > 0)
  end)

  it("redelivers an unacknowledged event, then parks it", function()
    local s = server.start()
    local m, c = s:connect(), s.client
    assert(m:subscribe("pay-*", 0, { group = "payer", ack_timeout_ms = 200, max_deliveries = 2 }))
    assert(c:append("pay-1", { type = "Due", data = { amount = 3 } }))
    local _, e1 = m:next_event(5)
    assert.equal(1, e1.deliveries)
    local _, e2 = m:next_event(5)                   -- never acked: comes again
    assert.equal(e1.position, e2.position)
    assert.equal(2, e2.deliveries)
    local parked
    for _ = 1, 100 do
      parked = assert(c:read("$parked-payer"))
      if #parked > 0 then break end
      require("socket").sleep(0.05)
    end
    assert.equal(1, #parked)
    assert.equal("Due", parked[1].type)
    assert.equal(3, parked[1].data.amount)
    assert.equal("pay-1", parked[1].meta.stream)
    assert.matches("2 deliveries", parked[1].meta.reason)
    local st = assert(c:stats())
    assert.equal(1, st.parked)
  end)

  it("keeps its acknowledged position across a restart", function()
    local s = server.start()
    local m = s:connect()
    assert(m:subscribe("task-*", 0, "g1"))
    for i = 1, 10 do assert(s.client:append("task-1", { type = "T", data = { i = i } })) end
    for _ = 1, 5 do
      local _, e = m:next_event(5)
      assert(m:ack("g1", e.position))
    end
    m:close()
    s:restart()
    local again = s:connect()
    assert(again:subscribe("task-*", 0, "g1"))
    local _, e = again:next_event(5)
    assert.equal(6, e.data.i)
  end)
end)
