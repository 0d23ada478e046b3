-- End-to-end: a consumer group whose members sit on two moonlog nodes that share one log
-- through a real 3-node NATS JetStream cluster (spec/support/cluster.lua). The group is kept
-- in the log ($group-NAME, docs/scale-out.md "Consumer groups across nodes"): the members of
-- both nodes share the events, an event not acked comes again and is parked once, a node
-- killed with kill -9 leaves its unacked events to the other node's members, and nodes
-- restarted go on from the group's floor.
local server = require "support.server"
local cluster = require "support.cluster"

local node, client_of = cluster.node, cluster.client
local function eventually(fn, seconds, what) return server.eventually(fn, seconds or 30, what) end

local describe = cluster.available and describe or function(name) pending(name .. " (" .. cluster.missing .. ")") end

-- Appends n jobs ("job-1", ... with data {i = ...}) on the clients in turn; their positions.
local function jobs(clients, first, n)
  local pos = {}
  for i = first, first + n - 1 do
    local c = clients[i % #clients + 1]
    pos[i] = assert(c:append("job-" .. i, { type = "Queued", data = { i = i } })).position
  end
  return pos
end

-- The events the member has now, without waiting for more than `wait` seconds for the first.
local function take(m, wait)
  local got = {}
  local sub, e = m:next_event(wait or 0.05)
  while sub do
    got[#got + 1] = e
    sub, e = m:next_event(0.001)
  end
  return got
end

-- The group's floor (everything at or before it is settled), read from $group-NAME the way
-- every node reads it: the lowest open range's settled end, or the end of the last claim.
local function floor_of(c, group)
  local open, frontier = {}, 0
  for _, e in ipairs(assert(c:read_all("$group-" .. group))) do
    local d = e.data
    if e.type == "Claimed" then
      local r = open[d.to]
      if r and r.from == d.from then r.node = d.node
      elseif not r then open[d.to] = { from = d.from, node = d.node } frontier = d.to end
    elseif e.type == "Settled" then
      for to, r in pairs(open) do
        if r.node == d.node and r.from == d.from then
          r.from = d.to
          if d.to == to then open[to] = nil end
          break
        end
      end
    elseif e.type == "Released" and open[d.to] then
      open[d.to].node = ""
    end
  end
  local floor = frontier
  for _, r in pairs(open) do floor = math.min(floor, r.from) end
  return floor
end

describe("a group with members on two nodes of one log", function()
  setup(cluster.up)
  teardown(cluster.down)
  after_each(server.stop_all)

  it("shares the events: each goes to one member, both nodes get some, all acked once", function()
    local a, b = node("G1"), node("G1")
    local ca, cb = client_of(a), client_of(b)
    local ma, mb = a:connect { timeout = 60 }, b:connect { timeout = 60 }
    assert(ma:subscribe("job-*", 0, { group = "workers", max_inflight = 4 }))
    assert(mb:subscribe("job-*", 0, { group = "workers", max_inflight = 4 }))
    local pos = jobs({ ca, cb }, 1, 40)
    local seen, per = {}, { 0, 0 }
    eventually(function()
      for k, m in ipairs { ma, mb } do
        for _, e in ipairs(take(m)) do
          assert.is_nil(seen[e.position], "position " .. e.position .. " delivered twice")
          assert.equal(1, e.deliveries)
          seen[e.position] = k
          per[k] = per[k] + 1
          assert.is_true(m:ack("workers", e.position))
        end
      end
      return per[1] + per[2] == 40
    end, 60, "40 events delivered")
    assert.is_true(per[1] > 0 and per[2] > 0, ("both nodes get some (%d, %d)"):format(per[1], per[2]))
    for i = 1, 40 do assert.is_not_nil(seen[pos[i]], "job " .. i .. " delivered") end
    -- every event acked: both nodes read the group settled through the last one
    eventually(function() return floor_of(ca, "workers") >= pos[40] and floor_of(cb, "workers") >= pos[40] end,
      30, "the group settled on both nodes")
    eventually(function()
      return #assert(ca:read_all("$group-workers")) == #assert(cb:read_all("$group-workers"))
    end, 30, "the same group events on both")
    assert.same(assert(ca:read_all("$group-workers")), assert(cb:read_all("$group-workers")))
    assert.same({}, take(ma, 0.3))
    assert.same({}, take(mb, 0.01))
  end)

  it("delivers an event not acked again, and parks it once after max_deliveries", function()
    local a, b = node("G2"), node("G2")
    local ca, cb = client_of(a), client_of(b)
    local ma, mb = a:connect { timeout = 60 }, b:connect { timeout = 60 }
    local opts = { group = "payer", ack_timeout_ms = 300, max_deliveries = 2 }
    assert(ma:subscribe("job-*", 0, opts))
    assert(mb:subscribe("job-*", 0, opts))
    local pos = jobs({ ca }, 1, 1)[1]
    local got = {}
    eventually(function()
      for _, m in ipairs { ma, mb } do
        for _, e in ipairs(take(m)) do got[#got + 1] = { m, e } end
      end
      return #got >= 2
    end, 30, "two deliveries")
    assert.equal(got[1][1], got[2][1], "both on the node that claimed it")
    assert.same({ pos, 1 }, { got[1][2].position, got[1][2].deliveries })
    assert.same({ pos, 2 }, { got[2][2].position, got[2][2].deliveries })
    local function parked(c) return #assert(c:read("$parked-payer")) end
    eventually(function() return parked(ca) == 1 and parked(cb) == 1 end, 30, "parked on both nodes")
    -- a second one: the first is not parked again
    local pos2 = jobs({ cb }, 2, 1)[2]
    eventually(function() return parked(ca) == 2 and parked(cb) == 2 end, 30, "the second parked")
    local copies = assert(ca:read("$parked-payer"))
    assert.same({ pos, pos2 }, { copies[1].meta.position, copies[2].meta.position })
    assert.same({ "Queued", 1, "job-1" }, { copies[1].type, copies[1].data.i, copies[1].meta.stream })
    assert.matches("2 deliveries", copies[1].meta.reason)
    assert.same(copies, assert(cb:read("$parked-payer")))
    assert.equal(4, #got + #take(ma, 0.01) + #take(mb, 0.01), "each delivered twice, no more")
  end)

  it("gives the unacked events of a node killed with kill -9 to the other node's members", function()
    local a, b = node("G3"), node("G3")
    local ca = client_of(a)
    local mb = b:connect { timeout = 60 }
    assert(mb:subscribe("job-*", 0, { group = "work", max_inflight = 8 }))
    local pos = jobs({ ca }, 1, 3)
    local held = {}
    eventually(function()
      for _, e in ipairs(take(mb)) do held[#held + 1] = e.position end
      return #held == 3
    end, 30, "node b's member holds three events, unacked")
    local ma = a:connect { timeout = 60 }
    assert(ma:subscribe("job-*", 0, { group = "work", max_inflight = 8 }))
    assert.same({}, take(ma, 1), "node b is alive: its events are its own")
    b:stop("KILL")
    local got = {}
    eventually(function()
      for _, e in ipairs(take(ma)) do
        got[#got + 1] = e.position
        assert.is_true(ma:ack("work", e.position))
      end
      return #got >= 3
    end, 30, "node a's member gets them")
    table.sort(got)
    assert.same({ pos[1], pos[2], pos[3] }, got)
    assert.is_true(assert(ca:stats()).group_takeovers >= 1, "node a took node b's ranges over")
    -- and what comes next goes to node a, the group settled through it
    local more = jobs({ ca }, 4, 2)
    eventually(function()
      for _, e in ipairs(take(ma)) do
        got[#got + 1] = e.position
        assert.is_true(ma:ack("work", e.position))
      end
      return #got == 5
    end, 30, "the next two")
    eventually(function() return floor_of(ca, "work") >= more[5] end, 30, "settled")
  end)

  it("goes on from the group's floor when both nodes are restarted", function()
    local a, b = node("G4"), node("G4")
    local ca, cb = client_of(a), client_of(b)
    local opts = { group = "resume", max_inflight = 16 }
    local ma, mb = a:connect { timeout = 60 }, b:connect { timeout = 60 }
    assert(ma:subscribe("job-*", 0, opts))
    assert(mb:subscribe("job-*", 0, opts))
    local pos = jobs({ ca, cb }, 1, 10)
    local n = 0
    eventually(function()
      for _, m in ipairs { ma, mb } do
        for _, e in ipairs(take(m)) do
          n = n + 1
          if e.data.i <= 7 then assert.is_true(m:ack("resume", e.position)) end
        end
      end
      return n == 10
    end, 30, "ten delivered")
    eventually(function() return floor_of(ca, "resume") >= pos[7] end, 30, "settled through the seventh")
    assert.is_true(floor_of(ca, "resume") < pos[8], "not through the eighth")
    ma:close()
    mb:close()
    -- one stops cleanly (it gives its ranges back), the other is killed
    assert.is_true(a:stop())
    b:stop("KILL")
    a:launch()
    b:launch()
    ca, cb = client_of(a), client_of(b)
    ma, mb = a:connect { timeout = 60 }, b:connect { timeout = 60 }
    assert(ma:subscribe("job-*", 0, opts))
    assert(mb:subscribe("job-*", 0, opts))
    for i, p in pairs(jobs({ cb }, 11, 2)) do pos[i] = p end
    local got = {}
    eventually(function()
      for _, m in ipairs { ma, mb } do
        for _, e in ipairs(take(m)) do
          assert.is_nil(got[e.data.i], "job " .. e.data.i .. " delivered twice")
          got[e.data.i] = e.position
          assert.is_true(m:ack("resume", e.position))
        end
      end
      local k = 0
      for _ in pairs(got) do k = k + 1 end
      return k >= 5
    end, 60, "the unacked three and the two new ones")
    assert.same({ [8] = pos[8], [9] = pos[9], [10] = pos[10], [11] = pos[11], [12] = pos[12] }, got)
    eventually(function() return floor_of(cb, "resume") >= pos[12] end, 30, "settled through the last")
  end)
end)
