-- End-to-end: several moonlog nodes share one log through a real 3-node NATS JetStream
-- cluster (tools/nats-cluster.sh on loopback ports; plugins/jetstream; docs/scale-out.md).
-- Each node has its own data folder; each test has its own JetStream stream.
local server = require "support.server"
local cluster = require "support.cluster"

local q = server.quote
local node, client_of, all_of, same_all = cluster.node, cluster.client, cluster.all_of, cluster.same_all
local serve_once = cluster.serve_once
local function eventually(fn, seconds, what) return server.eventually(fn, seconds or 30, what) end

local describe = cluster.available and describe or function(name) pending(name .. " (" .. cluster.missing .. ")") end

-- A journal entry in format 1, as moonlog wrote them before format 2 (runtime/log/entry1.c):
-- events { stream, type, id (36 characters when made), made, meta, data }, expected versions
-- { stream, version }, all little-endian.
local function format1_entry(events, expect, time)
  local out = { string.pack("<BBI2I4I4i8", 1, 0, 0, #events, #expect, time) }
  for _, x in ipairs(expect) do out[#out + 1] = string.pack("<Bi8", #x[1], x[2]) .. x[1] end
  for _, e in ipairs(events) do
    local meta, data = e.meta or "", e.data or ""
    out[#out + 1] = string.pack("<BBBBI4I4", e.made and 1 or 0, #e.stream, #e.type, #e.id, #meta, #data)
      .. e.stream .. e.type .. e.id .. meta .. data
  end
  return table.concat(out)
end

-- A message as an older moonlog published it (plugins/jetstream/message.h, format 1): "MLJ1",
-- the node's id, a count, then each entry's token, length and bytes, big-endian.
local function format1_message(node_id, entries)
  local out = { "MLJ1", node_id, string.pack(">I4", #entries) }
  for i, e in ipairs(entries) do out[#out + 1] = string.pack(">I8I4", i, #e) .. e end
  return table.concat(out)
end

-- Publishes body on subject through NATS's text protocol; JetStream's acknowledgement.
local function publish(urls, subject, body)
  local host, port = urls:match("nats://([%d.]+):(%d+)")
  local s = assert(require("socket").connect(host, tonumber(port)))
  s:settimeout(30)
  assert.matches("^INFO ", assert(s:receive("*l")))
  assert(s:send(('CONNECT {"verbose":false}\r\nSUB ack.journal 1\r\nPUB %s ack.journal %d\r\n%s\r\n')
    :format(subject, #body, body)))
  local n = tonumber(assert(s:receive("*l")):match("^MSG ack%.journal 1 (%d+)$"))
  local ack = assert(s:receive(n))
  s:close()
  return ack
end

describe("two moonlog nodes on one JetStream stream", function()
  setup(cluster.up)
  teardown(cluster.down)
  after_each(server.stop_all)

  it("take appends on either node and show the same $all, races and retries included", function()
    local a, b = node("T1"), node("T1")
    local ca, cb = client_of(a), client_of(b)
    -- each node names itself, and its writer
    local sa, sb = assert(ca:call("stats")), assert(cb:call("stats"))
    assert.equal("jetstream", sa.writer)
    assert.matches("^%x+%-%x+%-7%x+%-%x+%-%x+$", sa.node)
    assert.are_not.equal(sa.node, sb.node)
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
    -- and then the log rests: a checkpoint is an event, yet it calls for no checkpoint
    require("socket").sleep(1)
    assert.equal(#all, #same_all(ca, cb, #all))
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
    -- a node started later, on an empty folder: serves once caught up (reading no faster
    -- than it writes: here it waits for its disk after every 8 entries in flight)
    local c = node("T3", { env = { MOONLOG_JS_APPLY_MAX = "8" } })
    local cc = client_of(c)
    assert.equal(300, #all_of(cc))
    assert.same(all_of(ca), all_of(cc))
  end)

  it("apply a stream an older moonlog wrote (format-1 entries) to the same events on every node", function()
    local a = node("T9")
    local ca = client_of(a)
    local made = "0190d6a3-7c2e-7abc-9def-0123456789ab"
    local uuid = "0190d6a3-7c2e-7def-8123-456789abcdef"
    local opened = format1_entry({
      { stream = "acct-1", type = "Opened", id = made, made = true, meta = "\x81\xa1k\x01", data = "\x80" },
      { stream = "acct-1", type = "Deposited", id = "d-1", data = "\x81\xa1a\x0a" },
      { stream = "acct-1", type = "Deposited", id = uuid, data = "\x81\xa1a\x14" },
    }, { { "acct-1", 0 } }, 1700000000000)
    local again = format1_entry({ { stream = "acct-1", type = "Deposited", id = "d-1" } }, {}, 1700000000001)
    local ack = publish(cluster.urls, "moonlog.T9",
      format1_message("0190d6a3-0000-7000-8000-000000000000", { opened, again }))
    assert.matches('"stream":"T9"', ack)
    assert(ca:append("acct-1", { type = "Closed", data = {} }, 3)) -- format 2, after them
    local b = node("T9") -- catches up from the stream's first message
    local all = same_all(ca, client_of(b), 4)
    assert.same({ 1, "acct-1", 1, "Opened", made, 1700000000000, {} }, all[1])
    assert.same({ 2, "acct-1", 2, "Deposited", "d-1", 1700000000000, { a = 10 } }, all[2])
    assert.same({ 3, "acct-1", 3, "Deposited", uuid, 1700000000000, { a = 20 } }, all[3])
    assert.same({ 4, "acct-1", 4, "Closed" }, { all[4][1], all[4][2], all[4][3], all[4][4] })
    assert.equal(4, #all, "the retried id is a duplicate, on both nodes")
    local first = assert(ca:read("acct-1", 1, 1))[1]
    assert.same({ k = 1 }, first.meta)
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
  it("stop on SIGTERM while NATS is away, answering a waiting append with an unknown outcome", function()
    local a = node("T6")
    local ca = client_of(a)
    assert(ca:append("warm-1", { type = "Up", id = "warm-1", data = {} }))
    for n = 1, 3 do assert.equal(0, (cluster.run("kill " .. n))) end
    local id = assert(ca:send("append", "away-1", { type = "Waited", id = "away-1", data = {} }))
    -- the append waits for NATS; a stop waits for it a while, then gives it up, and exits 0
    assert.is_true(a:stop(), "the node stopped, with status 0")
    local r, err = ca:wait(id)
    assert.is_nil(r)
    assert.truthy(err.message:find("it may still be stored", 1, true), err.message)
    for n = 1, 3 do assert.equal(0, (cluster.run("start " .. n))) end
    -- started again, the node holds what was acknowledged, and the unknown one at most once
    a:launch()
    local c2 = client_of(a)
    assert.equal(1, #assert(c2:read("warm-1")))
    assert.is_true(#assert(c2:read("away-1")) <= 1)
  end)
end)
