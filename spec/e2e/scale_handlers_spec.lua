-- End-to-end: a handler on two moonlog nodes that share one log through a real 3-node NATS
-- JetStream cluster (docs/scale-out.md, "Handlers: one node at a time"). It runs on the node
-- that holds its lease (the system stream $lease-echo), the other stands by; every input
-- gets exactly one emit, whichever node it was appended on; the lease moves when its node
-- is killed with kill -9 (once the heartbeats say it is gone) or stopped with SIGTERM
-- (through Released, at once); a killed node that comes back stands by. Each test has a
-- JetStream stream of its own.
local server = require "support.server"
local cluster = require "support.cluster"
local socket = require "socket"

local node = cluster.node
local function eventually(fn, what) return server.eventually(fn, 60, what) end

local describe = cluster.available and describe or function(name) pending(name .. " (" .. cluster.missing .. ")") end

local ECHO = [[
local ml = require "moonlog"
return ml.handler {
  name = "echo", from = "in-*",
  on = { Ping = function(e, ctx) ctx.emit("out", "Pong", { n = e.data.n }) end },
}
]]

-- Two nodes on the journal `stream`, each with the echo handler in a scripts folder of its own.
local function pair(stream)
  return node(stream, { scripts = { ["echo.lua"] = ECHO } }), node(stream, { scripts = { ["echo.lua"] = ECHO } })
end

local function echo(s) return server.status_of(s.client, "echo") end
local function node_id(s) return assert(s.client:call("stats")).node end

-- Waits until one node runs echo and the other stands by behind it: {holder, standby}.
local function roles(x, y)
  return eventually(function()
    local sx, sy = echo(x), echo(y)
    if sx.lease == "running here" and sy.lease == "standby" and sy.holder == node_id(x) then return { x, y } end
    if sy.lease == "running here" and sx.lease == "standby" and sx.holder == node_id(y) then return { y, x } end
  end, "one node running echo, the other standing by")
end

-- Appends the input n (Ping {n}, id ping-n) on the node s.
local function ping(s, n)
  return s.client:append("in-" .. (n % 5), { type = "Ping", id = "ping-" .. n, data = { n = n } })
end

-- Waits until `holder` has handled every event of its log and holds `count` emits, then checks
-- that the inputs 1..count have exactly one emit each, on both nodes given.
local function exactly_once(holder, other, count)
  eventually(function()
    local st = echo(holder)
    return st.lease == "running here" and st.lag == 0 and #assert(holder.client:read_all("out")) >= count
  end, count .. " emits")
  for _, s in ipairs { holder, other } do
    local out
    eventually(function()
      out = assert(s.client:read_all("out"))
      return #out >= count
    end, "the emits on both nodes")
    local seen = {}
    for _, e in ipairs(out) do seen[e.data.n] = (seen[e.data.n] or 0) + 1 end
    for n = 1, count do assert.equal(1, seen[n], "input " .. n .. " has exactly one emit") end
    assert.equal(count, #out, "and there is no other emit")
  end
end

-- s as a Lua pattern that matches it literally (node ids hold '-').
local function literal(s) return (s:gsub("%p", "%%%0")) end

-- $lease-echo on node s, as { {type, node}, ... }.
local function lease_story(s)
  local out = {}
  for _, e in ipairs(assert(s.client:read_all("$lease-echo"))) do out[#out + 1] = { e.type, e.data.node } end
  return out
end

describe("a handler on two moonlog nodes of one shared log", function()
  setup(cluster.up)
  teardown(cluster.down)
  after_each(server.stop_all)

  it("runs on one node only, and emits once for each event appended on either node", function()
    local a, b = pair("H1")
    for n = 1, 40 do assert(ping(n % 2 == 0 and a or b, n)) end
    local holder, standby = table.unpack(roles(a, b))
    exactly_once(holder, standby, 40)
    local st = echo(standby)
    assert.equal("standby", st.state)
    assert.equal(0, st.events, "the standby node fed its handler nothing")
    assert.equal(node_id(holder), echo(holder).holder)
    -- HTTP says so too, and so does /metrics
    local code, list = standby:curl_json("GET", "/scripts")
    assert.equal(200, code)
    assert.equal("standby", list[1].lease)
    assert.equal(node_id(holder), list[1].holder)
    -- and from a shell: moonlog scripts
    local bin = server.quote(os.getenv("MOONLOG_BIN"))
    local out = server.sh(("%s scripts --connect 127.0.0.1:%d 2>&1"):format(bin, standby.rpc_port))
    assert.matches("\necho%s+handler%s+standby%s", out)
    assert.matches("\n  lease: standby, node " .. literal(node_id(holder)) .. " runs it\n", out)
    out = server.sh(("%s scripts --connect 127.0.0.1:%d 2>&1"):format(bin, holder.rpc_port))
    assert.matches("\necho%s+handler%s+running%s[^\n]*\n  lease: running here\n", out)
    local _, metrics = standby:curl("GET", "/metrics")
    assert.matches('moonlog_script_standby{script="echo",kind="handler"} 1', metrics, 1, true)
    assert.same({ { "Acquired", node_id(holder) } }, lease_story(standby))
    -- parked events are replayed where the handler runs
    local r, err = standby.client:call("replay_parked", "echo")
    assert.is_nil(r)
    assert.equal("refused", err.code)
    assert.matches("runs on another node (" .. node_id(holder) .. ")", err.message, 1, true)
    assert.same({ replayed = 0, succeeded = 0, failed = {} }, assert(holder.client:call("replay_parked", "echo")))
  end)

  it("moves to the other node when its node is killed with kill -9 under steady appends", function()
    local a, b = pair("H2")
    local holder, other = table.unpack(roles(a, b))
    local gone = node_id(holder)
    local n = 0
    for _ = 1, 30 do n = n + 1 assert(ping(n % 2 == 0 and holder or other, n)) end
    holder:stop("KILL")
    -- appends go on, on the other node, until it runs the handler and for 50 inputs after
    local deadline, after = socket.gettime() + 60, 0
    while after < 50 do
      assert(socket.gettime() < deadline, "the other node did not take the handler over")
      n = n + 1
      assert(ping(other, n))
      if echo(other).lease == "running here" then after = after + 1 end
      socket.sleep(0.005)
    end
    exactly_once(other, other, n)
    local story = lease_story(other)
    assert.same({ { "Acquired", gone }, { "Acquired", node_id(other) } }, story,
      "taken over from a node that released nothing")
    assert.matches("runs here now.*" .. literal(gone) .. " is gone", server.sh("cat " .. server.quote(other.log)))
    -- the killed node comes back, under a new node id, and stands by
    holder:launch()
    eventually(function()
      local st = echo(holder)
      return st.lease == "standby" and st.holder == node_id(other)
    end, "the restarted node standing by")
    exactly_once(other, holder, n)
  end)

  it("moves to the other node at once, through Released, when its node stops", function()
    local a, b = pair("H3")
    local holder, other = table.unpack(roles(a, b))
    local left = node_id(holder)
    for n = 1, 20 do assert(ping(n % 2 == 0 and holder or other, n)) end
    assert.is_true(holder:stop(), "the holder stops cleanly on SIGTERM")
    eventually(function() return echo(other).lease == "running here" end, "the other node taking over")
    for n = 21, 40 do assert(ping(other, n)) end
    exactly_once(other, other, 40)
    local story = lease_story(other)
    assert.same({ "Released", left }, story[#story - 1])
    assert.same({ "Acquired", node_id(other) }, story[#story])
    assert.matches("runs here now.*" .. literal(left) .. " released it", server.sh("cat " .. server.quote(other.log)))
  end)
end)
