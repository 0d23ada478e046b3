-- End-to-end: several moonlog nodes share one log through a real 3-node NATS JetStream
-- cluster (tools/nats-cluster.sh on loopback ports; plugins/jetstream; docs/scale-out.md).
-- Each node has its own data folder; each test has its own JetStream stream.
local server = require "support.server"
local socket = require "socket"

local sh, q = server.sh, server.quote
local SRC = os.getenv("MOONLOG_SOURCE_DIR") or "."
local BIN = os.getenv("MOONLOG_BIN")
local TOOL = SRC .. "/tools/nats-cluster.sh"
local PLUGIN = BIN and (BIN:gsub("[^/]*$", "") .. "plugins/moonlog_jetstream.so")

local function eventually(fn, seconds, what) return server.eventually(fn, seconds or 30, what) end

-- The cluster, once for the file ------------------------------------------------------

local cluster = {}

-- A base port whose 23 ports after it look free (clients +0..2, routes +10..12, http +20..22).
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

function cluster.run(args)
  local out = sh(("%s %s --dir %s 2>&1; echo \"rc=$?\""):format(q(TOOL), args, q(cluster.dir)))
  local text, rc = out:match("^(.-)rc=(%d+)%s*$")
  return tonumber(rc), text
end

function cluster.up()
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
  cluster.dir = server.tmpdir()
  local rc, text = cluster.run("up --port " .. pick_base())
  assert(rc == 0, "the NATS cluster did not start: " .. text)
  cluster.urls = (select(2, cluster.run("urls")):gsub("%s+$", ""))
end

function cluster.down()
  if cluster.dir then
    cluster.run("down")
    os.execute("rm -rf " .. q(cluster.dir))
    cluster.dir = nil
  end
end

-- Nodes -------------------------------------------------------------------------------

local function node(stream, opts)
  opts = opts or {}
  local args = { "--replicate", cluster.urls, "--replicate-stream", stream }
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  return server.start { args = args, data = opts.data, start_timeout = 60 }
end

local function client_of(s) return s:connect { timeout = 60 } end

-- $all as a list of what must be the same on every node.
local function all_of(c)
  local out = {}
  for _, e in ipairs(assert(c:read_all("$all"))) do
    out[#out + 1] = { e.position, e.stream, e.version, e.type, e.id, e.time, e.data }
  end
  return out
end

local function same_all(a, b, n)
  -- the nodes converge (a handler may still be appending its checkpoints meanwhile)
  local x, y
  eventually(function()
    x, y = all_of(a), all_of(b)
    return #x >= n and #x == #y
  end, 30, n .. " events on both")
  assert.same(x, y)
  for i, e in ipairs(x) do assert.equal(i, e[1], "no gap in $all") end
  local ids = {}
  for _, e in ipairs(x) do
    assert.is_nil(ids[e[5]], "no event twice")
    ids[e[5]] = true
  end
  return x
end

local function serve_once(args)
  local out = sh(("env -u LD_PRELOAD %s serve --listen off --http off --admin off %s 2>&1; echo \"rc=$?\"")
    :format(q(BIN), args))
  local text, rc = out:match("^(.-)rc=(%d+)%s*$")
  return tonumber(rc), text
end

-- The specs -----------------------------------------------------------------------------

local have = BIN and io.open(PLUGIN or "") and sh("command -v nats-server") ~= ""
local describe_or_pending = have and describe or function(name) pending(name .. " (needs nats-server and the JetStream plugin: tools/deps.sh)") end

describe_or_pending("two moonlog nodes on one JetStream stream", function()
  setup(cluster.up)
  teardown(cluster.down)
  after_each(server.stop_all)

  it("take appends on either node and show the same $all, races and retries included", function()
    local a, b = node("T1"), node("T1")
    local ca, cb = client_of(a), client_of(b)
    -- pipelined on both at once: one order for all
    local ids = {}
    for i = 1, 20 do
      ids[#ids + 1] = { ca, assert(ca:send("append", "acc-" .. (i % 3), { type = "Deposited", data = { n = i } })) }
      ids[#ids + 1] = { cb, assert(cb:send("append", "acc-" .. (i % 4), { type = "Withdrawn", data = { n = i } })) }
    end
    for _, p in ipairs(ids) do assert(p[1]:wait(p[2])) end
    same_all(ca, cb, 40)

    -- two nodes racing on one stream's expected version: never both
    for i = 1, 10 do
      local ia = assert(ca:send("append", "race-" .. i, { type = "Won", data = { by = "a" } }, "no_stream"))
      local ib = assert(cb:send("append", "race-" .. i, { type = "Won", data = { by = "b" } }, "no_stream"))
      local ra, ea = ca:wait(ia)
      local rb, eb = cb:wait(ib)
      assert.is_true((ra ~= nil) ~= (rb ~= nil), "exactly one of two racing appends succeeds")
      assert.equal("conflict", (ea or eb).code)
    end

    -- an id retried on the other node: a duplicate, with the stored positions
    local r1 = assert(ca:append("order-1", { type = "Placed", id = "order-1-placed", data = {} }))
    assert(ca:append("order-1", { type = "Paid", data = {} }))
    local r2 = assert(cb:append("order-1", { type = "Placed", id = "order-1-placed", data = {} }))
    assert.is_true(r2.duplicate)
    assert.same({ r1.position, r1.last_position, 1 }, { r2.position, r2.last_position, r2.version })
    same_all(ca, cb, 52)
  end)

  it("land a handler's batch, emits to two streams and its checkpoint, on every node or none", function()
    local dir = server.tmpdir()
    server.write_file(dir .. "/fanout.lua", [[
local ml = require "moonlog"
return ml.handler {
  name = "fanout", from = "ping-*",
  on = { Ping = function(e, ctx)
    ctx.emit("left-" .. e.data.n, "Pong", { n = e.data.n })
    ctx.emit("right-" .. e.data.n, "Pong", { n = e.data.n })
  end },
}
]])
    local a = node("T2", { args = { "--scripts", dir, "--checkpoint-events", "1" } })
    local b = node("T2")
    local ca, cb = client_of(a), client_of(b)
    for n = 1, 5 do assert(cb:append("ping-" .. n, { type = "Ping", data = { n = n } })) end
    local function emitted(c) return #assert(c:read("right-5")) == 1 end
    eventually(function() return emitted(ca) and emitted(cb) end, 30, "the handler's last emits")
    local all = same_all(ca, cb, 15)
    -- each pair of emits sits side by side, on both nodes
    local where = {}
    for _, e in ipairs(all) do where[e[2]] = e[1] end
    for n = 1, 5 do assert.equal(where["left-" .. n] + 1, where["right-" .. n]) end
    os.execute("rm -rf " .. q(dir))
  end)

  it("restart a node killed with kill -9 from its own log, and catch up a new one", function()
    local a, b = node("T3"), node("T3")
    local ca = client_of(a)
    local pending = {}
    for i = 1, 300 do
      pending[#pending + 1] = assert(ca:send("append", "job-" .. (i % 7), { type = "Done", data = { i = i } }))
      if i == 150 then b:stop("KILL") end
    end
    for _, id in ipairs(pending) do assert(ca:wait(id)) end
    b:launch() -- the same data folder
    local cb = client_of(b)
    same_all(ca, cb, 300)
    -- a node started later, on an empty folder: serves once caught up
    local c = node("T3")
    local cc = client_of(c)
    assert.equal(300, #all_of(cc))
    assert.same(all_of(ca), all_of(cc))
  end)

  it("refuse a stream that does not fit, and say so when NATS is not there", function()
    local d1, d2 = server.tmpdir(), server.tmpdir()
    local rc, out = serve_once(("--data %s/d --replicate %s --replicate-stream T4 --replicate-replicas 1 --quiet & sleep 3; kill $!; wait")
      :format(q(d1), q(cluster.urls)))
    rc, out = serve_once(("--data %s/d --replicate %s --replicate-stream T4"):format(q(d2), q(cluster.urls)))
    assert.equal(1, rc)
    assert.matches("the JetStream stream T4 does not fit moonlog's journal: it keeps 1 copies %(needs 3", out)
    rc, out = serve_once(("--data %s/e --replicate nats://127.0.0.1:%d"):format(q(d2), server.free_port()))
    assert.equal(1, rc)
    assert.matches("cannot reach NATS at nats://127.0.0.1:%d+", out)
    os.execute("rm -rf " .. q(d1) .. " " .. q(d2))
  end)

  it("pause writes while the stream's leader is killed with kill -9, then resume, losing nothing", function()
    local a, b = node("T5"), node("T5")
    local ca, cb = client_of(a), client_of(b)
    assert(ca:append("warm-1", { type = "Up", data = {} }))
    local rc, leader = cluster.run("leader T5")
    assert.equal(0, rc, leader)
    leader = tonumber(leader:match("%d"))
    local acked, killed_at = {}, nil
    local n = 0
    while #acked < 120 do
      n = n + 1
      local c = n % 2 == 0 and ca or cb
      local r, err = c:append("steady-" .. (n % 5), { type = "Tick", id = "tick-" .. n, data = { n = n } })
      assert(r, err and err.message)
      acked[#acked + 1] = "tick-" .. n
      if n == 40 then
        assert.equal(0, (cluster.run("kill " .. leader)))
        killed_at = n
      end
    end
    assert.equal(40, killed_at)
    assert.equal(0, (cluster.run("start " .. leader)))
    local all = same_all(ca, cb, 121)
    local have_id = {}
    for _, e in ipairs(all) do have_id[e[5]] = true end
    for _, id in ipairs(acked) do assert.is_true(have_id[id], id .. " was acknowledged, so it is stored") end
  end)
end)
