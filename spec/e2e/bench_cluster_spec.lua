-- End-to-end: the scale-out benchmarks against a real 3-node NATS JetStream cluster
-- (tools/nats-cluster.sh on loopback ports), at a tiny size, so that neither rots unseen:
-- `moonlog bench cluster` (it starts two nodes of its own executable, measures, and cleans
-- up), and the peer client's parts of `make bench`'s workload 5 (JetStream's raw rate on an
-- R3 stream, and the lag from an append on one node to its delivery on another).
local server = require "support.server"
local socket = require "socket"

local sh, q = server.sh, server.quote
local SRC = os.getenv("MOONLOG_SOURCE_DIR") or "."
local BIN = os.getenv("MOONLOG_BIN")
local PB = os.getenv("PEERBENCH_BIN")
local TOOL = SRC .. "/tools/nats-cluster.sh"
local PLUGIN = BIN and (BIN:gsub("[^/]*$", "") .. "plugins/moonlog_jetstream.so")

-- The cluster, once for the file (a copy of scale_spec.lua's, until spec/support has one).
local cluster = {}

local function pick_base()
  for _ = 1, 50 do
    local base = math.random(20000, 50000)
    local free = true
    for _, off in ipairs { 0, 1, 2, 10, 11, 12, 20, 21, 22 } do
      local s = socket.bind("127.0.0.1", base + off)
      if not s then free = false break end
      s:close()
    end
    if free then return base end
  end
  error("no free ports for a NATS cluster")
end

local function run(cmd)
  local out = sh(cmd .. " 2>&1; echo \"rc=$?\"")
  local text, rc = out:match("^(.-)rc=(%d+)%s*$")
  return tonumber(rc), text
end

function cluster.up()
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
  cluster.dir = server.tmpdir()
  cluster.base = pick_base()
  local rc, text = run(("%s up --port %d --dir %s"):format(q(TOOL), cluster.base, q(cluster.dir)))
  assert(rc == 0, "the NATS cluster did not start: " .. text)
  cluster.urls = (select(2, run(("%s urls --dir %s"):format(q(TOOL), q(cluster.dir)))):gsub("%s+$", ""))
end

function cluster.down()
  if cluster.dir then
    run(("%s down --dir %s"):format(q(TOOL), q(cluster.dir)))
    os.execute("rm -rf " .. q(cluster.dir))
    cluster.dir = nil
  end
end

-- Whether the cluster holds the stream `name` (a node reports a leader for it).
function cluster.has(name)
  return run(("%s leader %s --dir %s"):format(q(TOOL), name, q(cluster.dir))) == 0
end

-- The copies the stream `name` keeps, from its configuration on the first node's monitoring page.
function cluster.replicas(name)
  local json = sh(("curl -s -m 5 'http://127.0.0.1:%d/jsz?streams=true&config=true'"):format(cluster.base + 20))
  return tonumber(json:match('"config":%s*{%s*"name":%s*"' .. name .. '"[^{}]-"num_replicas":%s*(%d+)'))
end

local function figures(out)
  local kv = {}
  for k, v in out:gmatch("([%w_]+)=([%d%.]+)") do kv[k] = tonumber(v) end
  return kv
end

local have = BIN and io.open(PLUGIN or "") and sh("command -v nats-server") ~= ""
local describe_or_pending = have and describe or function(name)
  pending(name .. " (needs nats-server and the JetStream plugin: tools/deps.sh)")
end

describe_or_pending("the scale-out benchmarks on a real cluster", function()
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
    assert.is_false(cluster.has(stream), stream .. " was deleted")
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
    local nats = ("%d,%d,%d"):format(cluster.base, cluster.base + 1, cluster.base + 2)
    local rc, out = run(("%s nats append --port %s --replicas 3 --conns 3 --window 4 --seconds 0.3")
      :format(q(PB), nats))
    assert.equal(0, rc, out)
    local kv = figures(out)
    assert.is_true(kv.events > 0 and kv.p99_us >= kv.p50_us, out)
    assert.equal(3, cluster.replicas("EV"), "the raw rate's stream keeps 3 copies")

    local args = { "--replicate", cluster.urls, "--replicate-stream", "LAG" }
    local a = server.start { args = args, start_timeout = 60 }
    local b = server.start { args = args, start_timeout = 60 }
    rc, out = run(("%s moonlog latency --port %d,%d --count 100 --rate 500"):format(q(PB), a.rpc_port, b.rpc_port))
    assert.equal(0, rc, out)
    kv = figures(out)
    assert.equal(100, kv.events)
    -- B delivered every one, so its log holds them; A's answers may still be on their way
    assert.equal(100, assert(b.client:stats()).head)
    server.eventually(function() return assert(a.client:stats()).head == 100 end, 30, "A's own applies")
  end)
end)
