-- End-to-end: the benchmark client's moonlog protocol (bench/client/pb_moonlog.c)
-- against the real server, so that `make bench` cannot rot unseen: every
-- workload it runs for moonlog, at a tiny size, with its figures checked.
local server = require "support.server"

local PB = os.getenv("PEERBENCH_BIN")

local function pb(s, args)
  local out = server.sh(("%s moonlog %s --port %d 2>&1; echo \"exit=$?\""):format(
    server.quote(PB), args, s.rpc_port))
  local kv = {}
  for k, v in out:gmatch("([%w_]+)=([%d%.]+)") do kv[k] = tonumber(v) end
  return kv, out
end

describe("moonlog-peerbench against moonlog serve", function()
  after_each(server.stop_all)

  local have = PB and io.open(PB) ~= nil
  if not have then
    pending("moonlog-peerbench was not built (msgpack-c missing)")
    return
  end

  it("appends, loads, reads in pages, consumes and measures latency", function()
    local s = server.start()
    local kv, out = pb(s, "append --conns 2 --window 4 --seconds 0.2")
    assert.equal(0, kv.exit, out)
    assert.is_true(kv.events > 0, out)
    -- each append's time from its send to its answer
    assert.is_true(kv.p50_us > 0 and kv.p99_us >= kv.p50_us, out)
    local before = assert(s.client:stats()).head
    assert.equal(before, kv.events)
    kv, out = pb(s, "load --count 3000 --conns 2 --window 8")
    assert.equal(0, kv.exit, out)
    assert.equal(before + 3000, assert(s.client:stats()).head)
    local e = assert(s.client:read("$all", before + 1, 1))[1]
    assert.equal("Deposited", e.type)
    assert.matches("^account%-%d+$", e.stream)
    assert.equal(82, #e.data.note)
    -- 2500 events in pages of 1000 (the last one short of a page), then as a consumer
    kv, out = pb(s, "read --count 2500 --chunk 1000")
    assert.equal(0, kv.exit, out)
    assert.equal(2500, kv.events)
    -- the same pages asking for three fields (the arrays the bench's "paged, 3 fields" row reads);
    -- a field the server does not know fails the run
    kv, out = pb(s, "read --count 2500 --chunk 1000 --fields position,stream,data")
    assert.equal(0, kv.exit, out)
    assert.equal(2500, kv.events)
    kv, out = pb(s, "read --count 10 --fields position,nope")
    assert.is_not.equal(0, kv.exit, out)
    kv, out = pb(s, "consume --count 2500")
    assert.equal(0, kv.exit, out)
    assert.equal(2500, kv.events)
    kv, out = pb(s, "latency --count 40 --rate 400")
    assert.equal(0, kv.exit, out)
    assert.is_true(kv.p50_us > 0 and kv.p99_us >= kv.p50_us, out)
  end)

  it("spreads its connections over several servers given as --port A,B", function()
    local a, b = server.start(), server.start()
    local out = server.sh(("%s moonlog append --port %d,%d --conns 4 --window 4 --seconds 0.2 2>&1; echo \"exit=$?\"")
      :format(server.quote(PB), a.rpc_port, b.rpc_port))
    local kv = {}
    for k, v in out:gmatch("([%w_]+)=([%d%.]+)") do kv[k] = tonumber(v) end
    assert.equal(0, kv.exit, out)
    local ha, hb = assert(a.client:stats()).head, assert(b.client:stats()).head
    assert.is_true(ha > 0 and hb > 0, "both servers took appends: " .. ha .. ", " .. hb)
    assert.equal(kv.events, ha + hb)
    out = server.sh(("%s moonlog wait --port %d,%d --seconds 5 2>&1; echo \"exit=$?\""):format(
      server.quote(PB), a.rpc_port, b.rpc_port))
    assert.matches("exit=0", out)
  end)

  it("fails, saying why, when the log holds fewer events than asked", function()
    local s = server.start()
    assert(s.client:append("few-1", { { type = "A" }, { type = "B" } }))
    local kv, out = pb(s, "read --count 10 --chunk 4")
    assert.equal(1, kv.exit, out)
    assert.matches("the log ended after 2 events", out)
  end)
end)
