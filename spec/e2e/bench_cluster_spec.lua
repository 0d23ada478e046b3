-- End-to-end: the scale-out benchmarks against a real 3-node NATS JetStream cluster
-- (tools/nats-cluster.sh on loopback ports), at a tiny size, so that neither rots unseen:
-- `moonlog bench cluster` (it starts two nodes of its own executable, measures, and cleans
-- up), and the peer client's parts of `make bench`'s workload 5 (JetStream's raw rate on an
-- R3 stream, and the lag from an append on one node to its delivery on another).
local server = require "support.server"
local cluster = require "support.cluster"

local sh, q = server.sh, server.quote
local BIN = os.getenv("MOONLOG_BIN")
local PB = os.getenv("PEERBENCH_BIN")

local function run(cmd)
  local out = sh(cmd .. " 2>&1; echo \"rc=$?\"")
  local text, rc = out:match("^(.-)rc=(%d+)%s*$")
  return tonumber(rc), text
end

-- The cluster's client ports, "P1,P2,P3", and its first node's monitoring port.
local function ports()
  local list = {}
  for p in cluster.urls:gmatch(":(%d+)") do list[#list + 1] = p end
  return table.concat(list, ","), tonumber(list[1]) + 20
end

-- Whether the cluster holds the stream `name` (a node reports a leader for it).
local function has(name) return cluster.run("leader " .. name) == 0 end

-- The copies the stream `name` keeps, from its configuration on the first node's monitoring page.
local function replicas(name)
  local json = sh(("curl -s -m 5 'http://127.0.0.1:%d/jsz?streams=true&config=true'"):format(select(2, ports())))
  return tonumber(json:match('"config":%s*{%s*"name":%s*"' .. name .. '"[^{}]-"num_replicas":%s*(%d+)'))
end

local function figures(out)
  local kv = {}
  for k, v in out:gmatch("([%w_]+)=([%d%.]+)") do kv[k] = tonumber(v) end
  return kv
end

local describe = cluster.available and describe or function(name) pending(name .. " (" .. cluster.missing .. ")") end

describe("the scale-out benchmarks on a real cluster", function()
  setup(cluster.up)
  teardown(cluster.down)
  after_each(server.stop_all)

  it("moonlog bench cluster: two nodes of its own, their figures, and nothing left behind", function()
    local dir = server.tmpdir()
    local rc, out = run(("env -u LD_PRELOAD %s bench cluster --nats %s --conns 4 --depth 4 --seconds 0.5 " ..
      "--rate 200 --lag-seconds 0.5 --dir %s/run"):format(q(BIN), q(cluster.urls), q(dir)))
    assert.equal(0, rc, out)
    local stream = out:match("on the JetStream stream (BENCH%-[%d%-]+)")
    assert.is_not_nil(stream, out)
    local rate, p50, p99 = out:match("appends: 2 nodes, 4 connections x 4 in flight, 100%-byte events: (%d+) " ..
      "durable appends/s %(%d+ in [%d%.]+ s, 0 failed%); each answered in p50 ([%d%.]+) us, p99 ([%d%.]+) us")
    assert.is_not_nil(rate, out)
    assert.is_true(tonumber(rate) > 0 and tonumber(p50) > 0 and tonumber(p99) >= tonumber(p50), out)
    local sent, delivered = out:match("lag: (%d+) events appended on node A at [%d%.]+/s, (%d+) delivered on node B")
    assert.is_not_nil(sent, out)
    assert.equal(sent, delivered)
    assert.is_true(tonumber(sent) > 0)
    -- the nodes are gone, and so are their folders and the run's stream
    assert.equal("", sh("pgrep -f " .. q("[s]erve --data " .. dir .. "/run/node-") .. " || true"))
    assert.equal("", sh("ls -A " .. q(dir)))
    assert.is_false(has(stream), stream .. " was deleted")
    os.execute("rm -rf " .. q(dir))
  end)

  it("moonlog bench cluster without --nats says what it needs", function()
    local rc, out = run(("env -u LD_PRELOAD %s bench cluster"):format(q(BIN)))
    assert.equal(2, rc)
    assert.matches("bench cluster needs %-%-nats URLS", out)
  end)

  it("peerbench: JetStream's raw rate on an R3 stream, and the lag from node A to node B", function()
    if not (PB and io.open(PB)) then
      pending("moonlog-peerbench was not built (msgpack-c missing)")
      return
    end
    local nats = ports()
    local rc, out = run(("%s nats append --port %s --replicas 3 --conns 3 --window 4 --seconds 0.3")
      :format(q(PB), nats))
    assert.equal(0, rc, out)
    local kv = figures(out)
    assert.is_true(kv.events > 0 and kv.p99_us >= kv.p50_us, out)
    assert.equal(3, replicas("EV"), "the raw rate's stream keeps 3 copies")

    local a, b = cluster.node("LAG"), cluster.node("LAG")
    rc, out = run(("%s moonlog latency --port %d,%d --count 100 --rate 500"):format(q(PB), a.rpc_port, b.rpc_port))
    assert.equal(0, rc, out)
    kv = figures(out)
    assert.equal(100, kv.events)
    -- B delivered every one, so its log holds them; A's answers may still be on their way
    assert.equal(100, assert(b.client:stats()).head)
    server.eventually(function() return assert(a.client:stats()).head == 100 end, 30, "A's own applies")
  end)
end)
