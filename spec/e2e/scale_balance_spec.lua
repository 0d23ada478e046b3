-- End-to-end: the leases of six handlers spread over two moonlog nodes that share one log
-- through a real 3-node NATS JetStream cluster (docs/scale-out.md, "Spreading the
-- handlers"). The first node, alone, runs all six; once a second node with the same scripts
-- is up, they end at three each, every input still gets exactly one emit per handler, and no
-- lease moves any more, also with a third node that has none of the handlers. When a node
-- is killed with kill -9, the other runs all six again. Each test has a JetStream stream of
-- its own.
local server = require "support.server"
local cluster = require "support.cluster"
local socket = require "socket"

local node = cluster.node
local function eventually(fn, what) return server.eventually(fn, 90, what) end

local describe = cluster.available and describe or function(name) pending(name .. " (" .. cluster.missing .. ")") end

local HANDLERS = 6

-- h1..h6: each emits Pong {n} to out-hK for each Ping {n}.
local function handlers()
  local t = {}
  for k = 1, HANDLERS do
    t["h" .. k .. ".lua"] = ([[
local ml = require "moonlog"
return ml.handler {
  name = "h%d", from = "in-*",
  on = { Ping = function(e, ctx) ctx.emit("out-h%d", "Pong", { n = e.data.n }) end },
}
]]):format(k, k)
  end
  return t
end

local function node_id(s) return assert(s.client:call("stats")).node end

-- How many of the handlers run on s ("running here").
local function running(s)
  local n = 0
  for _, st in ipairs(assert(s.client:call("scripts"))) do
    if st.lease == "running here" then n = n + 1 end
  end
  return n
end

-- The events of the six lease streams on s, in all: each Acquired and Released adds one.
local function lease_events(s)
  local n = 0
  for k = 1, HANDLERS do n = n + #assert(s.client:read_all("$lease-h" .. k)) end
  return n
end

local function ping(s, n)
  return s.client:append("in-" .. (n % 5), { type = "Ping", id = "ping-" .. n, data = { n = n } })
end

-- Every handler has exactly one emit for each input 1..count, on node s.
local function exactly_once(s, count)
  eventually(function()
    for k = 1, HANDLERS do
      if #assert(s.client:read_all("out-h" .. k)) < count then return false end
    end
    return true
  end, count .. " emits per handler")
  for k = 1, HANDLERS do
    local seen, out = {}, assert(s.client:read_all("out-h" .. k))
    for _, e in ipairs(out) do seen[e.data.n] = (seen[e.data.n] or 0) + 1 end
    for n = 1, count do assert.equal(1, seen[n], ("h%d: input %d has exactly one emit"):format(k, n)) end
    assert.equal(count, #out, "and there is no other emit")
  end
end

describe("the handlers' leases on several moonlog nodes of one shared log", function()
  setup(cluster.up)
  teardown(cluster.down)
  after_each(server.stop_all)

  it("spread over the nodes that have the handlers, and then stay", function()
    local a = node("B1", { scripts = handlers() })
    eventually(function() return running(a) == HANDLERS end, "the first node running all six")
    local n = 0
    for _ = 1, 30 do n = n + 1 assert(ping(a, n)) end
    -- a node with none of the handlers, then one with the same scripts
    local c = node("B1", { scripts = { ["p.lua"] = [[
local ml = require "moonlog"
return ml.projection { name = "p", from = "in-*", init = function() return { n = 0 } end,
  on = { Ping = function(s) s.n = s.n + 1 end } }
]] } })
    local b = node("B1", { scripts = handlers() })
    -- appends go on, on both, while the leases move
    local deadline = socket.gettime() + 90
    while not (running(a) == 3 and running(b) == 3) do
      assert(socket.gettime() < deadline, ("the leases did not spread (%d, %d)"):format(running(a), running(b)))
      n = n + 1
      assert(ping(n % 2 == 0 and a or b, n))
      socket.sleep(0.01)
    end
    exactly_once(a, n)
    exactly_once(b, n)
    assert.equal(0, running(c))
    -- each move is an Acquired that names the node it was taken from
    local moved = 0
    for k = 1, HANDLERS do
      for _, e in ipairs(assert(b.client:read_all("$lease-h" .. k))) do
        if e.data.from then
          moved = moved + 1
          assert.equal("Acquired", e.type)
          assert.equal(node_id(a), e.data.from)
          assert.equal(node_id(b), e.data.node)
        end
      end
    end
    assert.equal(3, moved, "three leases moved from the first node to the second")
    assert.matches("taken over from node " .. node_id(a):gsub("%p", "%%%0") .. ", which ran 6",
      server.sh("cat " .. server.quote(b.log)))
    assert.matches("took its lease over to even out the handlers", server.sh("cat " .. server.quote(a.log)))
    -- moonlog scripts on the second node: three lines "lease: running here"
    local bin = server.quote(os.getenv("MOONLOG_BIN"))
    local out = server.sh(("%s scripts --connect 127.0.0.1:%d 2>&1"):format(bin, b.rpc_port))
    local _, here = out:gsub("\n  lease: running here\n", "")
    assert.equal(3, here, out)
    -- then no lease moves, for longer than any delay of the balancing
    local before = lease_events(a)
    for _ = 1, 50 do n = n + 1 assert(ping(n % 2 == 0 and a or b, n)) socket.sleep(0.1) end
    assert.equal(before, lease_events(a), "no lease moved once they were even")
    assert.same({ 3, 3, 0 }, { running(a), running(b), running(c) })
    exactly_once(a, n)
  end)

  it("all run on the other node when one is killed with kill -9", function()
    local a, b = node("B2", { scripts = handlers() }), node("B2", { scripts = handlers() })
    eventually(function() return running(a) == 3 and running(b) == 3 end, "three each")
    local n = 0
    for _ = 1, 20 do n = n + 1 assert(ping(n % 2 == 0 and a or b, n)) end
    b:stop("KILL")
    eventually(function() return running(a) == HANDLERS end, "the other node running all six")
    for _ = 1, 20 do n = n + 1 assert(ping(a, n)) end
    exactly_once(a, n)
  end)
end)
