-- End-to-end: appends, reads and stats over msgpack-RPC against the real server.
local server = require "support.server"

describe("moonlog serve over msgpack-RPC", function()
  after_each(server.stop_all)

  it("appends with and without expected versions, and reads back", function()
    local s = server.start()
    local c = s.client
    local r = assert(c:append("account-1", { type = "Deposited", data = { amount = 10 } }, "no_stream"))
    assert.same({ position = 1, last_position = 1, version = 1, duplicate = false }, r)
    r = assert(c:append("account-1", { { type = "Deposited", data = { amount = 5 } },
                                       { type = "Withdrawn", data = { amount = 3 } } }, 1))
    assert.same({ position = 2, last_position = 3, version = 3, duplicate = false }, r)
    local ok, err = c:append("account-1", { type = "Deposited", data = { amount = 1 } }, 1)
    assert.is_nil(ok)
    assert.equal("conflict", err.code)
    assert.equal(3, err.actual_version)
    ok, err = c:append("account-2", { type = "X" }, "exists")
    assert.equal("conflict", err.code)
    local events = assert(c:read("account-1"))
    assert.equal(3, #events)
    assert.equal("Withdrawn", events[3].type)
    assert.equal(3, events[3].data.amount)
    assert.equal(3, events[3].version)
    local back = assert(c:read("account-1", nil, 2, true))
    assert.same({ 3, 2 }, { back[1].version, back[2].version })
    local all = assert(c:read("$all", 2))
    assert.same({ 2, 3 }, { all[1].position, all[2].position })
    assert.same({}, assert(c:read("nobody-1")))
  end)

  it("treats an id already in the stream as done, returning the stored positions", function()
    local s = server.start()
    local c = s.client
    local a = assert(c:append("order-7", { type = "Placed", id = "id-1", data = {} }))
    assert.is_false(a.duplicate)
    assert(c:append("order-7", { type = "Paid", data = {} }))
    local b = assert(c:append("order-7", { type = "Placed", id = "id-1", data = {} }))
    assert.is_true(b.duplicate)
    assert.equal(a.position, b.position)
    assert.equal(2, #assert(c:read("order-7")))
  end)

  it("answers pipelined requests with their msgids", function()
    local s = server.start()
    local c = s.client
    local ids = {}
    for i = 1, 200 do ids[i] = assert(c:send("append", "pipe-" .. (i % 7), { type = "T", data = { i = i } })) end
    local seen = {}
    for i = 1, 200 do
      local r = assert(c:wait(ids[i]))
      assert.is_nil(seen[r.position])
      seen[r.position] = true
    end
    assert.equal(200, #assert(c:read_all("$all")))
    local st = assert(c:stats())
    assert.equal(200, st.head)
    assert.equal("always", st.fsync)
  end)

  -- An append that is all there is taken without framing it first (rpc.c, ml_rpc_append_whole);
  -- one that is not must wait for the rest, whatever part of it has come.
  it("takes an append arriving in pieces as one request: a byte at a time, or cut just "
     .. "before its expected version", function()
    local socket = require "socket"
    local request = require("moonlog.client").request
    local s = server.start()
    local c = s:connect()
    local whole = request(101, "append", 3, "drip-1", { type = "T", data = { n = 1 } }, "no_stream")
    for i = 1, #whole do
      assert(c.sock:send(whole:sub(i, i)))
      socket.sleep(0.001)
    end
    assert.equal(1, assert(c:wait(101)).version)
    -- Without its last param this is a whole append with no expected version; it must not
    -- be taken as one.
    local again = request(102, "append", 3, "drip-1", { type = "T" }, "no_stream")
    local cut = #again - #"\xa9no_stream"
    assert(c.sock:send(again:sub(1, cut)))
    socket.sleep(0.2)
    assert(c.sock:send(again:sub(cut + 1)))
    local ok, err = c:wait(102)
    assert.is_nil(ok)
    assert.equal("conflict", err.code)
    -- Params past those append reads are skipped, and the next request follows them.
    assert(c.sock:send(request(103, "append", 5, "drip-1", { type = "T" }, 1, "more", { x = { 1 } })
                       .. request(104, "stats", 0)))
    assert.equal(2, assert(c:wait(103)).version)
    assert.is_table(assert(c:wait(104)))   -- (answered when read: perhaps before 103)
    assert.equal(2, #assert(c:read_all("drip-1")))
  end)

  it("syncs together the appends of many clients that arrive in one turn, over RPC and HTTP", function()
    -- Each connection's read used to end its own turn, and its lone append was synced on
    -- the spot: 64 clients with one append each in flight got no more than one client.
    -- The server is stopped while the requests arrive, so that it finds them all at once.
    local socket = require "socket"
    local s = server.start()
    local rpcs, https = {}, {}
    for i = 1, 10 do
      rpcs[i] = s:connect()
      assert(rpcs[i]:stats())                                -- accepted, and read from
      https[i] = assert(socket.connect("127.0.0.1", s.http_port))
      https[i]:settimeout(10)
      assert(https[i]:send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
      local body = 0
      repeat
        local line = assert(https[i]:receive("*l"))
        body = tonumber(line:match("^Content%-Length: (%d+)")) or body
      until line == ""
      assert(https[i]:receive(body))
    end
    local before = assert(s.client:stats())
    os.execute("kill -STOP " .. s.pid)
    local ids = {}
    for i = 1, 10 do
      ids[i] = assert(rpcs[i]:send("append", "turn-" .. i, { type = "T" }))
      local body = '{"type":"T"}'
      assert(https[i]:send(("POST /streams/web-%d HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" ..
                            "Content-Length: %d\r\n\r\n%s"):format(i, #body, body)))
    end
    os.execute("kill -CONT " .. s.pid)
    for i = 1, 10 do
      assert(rpcs[i]:wait(ids[i]))
      assert.equal("HTTP/1.1 201 Created", assert(https[i]:receive("*l")))
    end
    local after = assert(s.client:stats())
    assert.equal(20, after.events - before.events)
    local syncs = after.syncs - before.syncs
    assert.is_true(syncs <= 5, ("20 appends found in one turn took %d syncs"):format(syncs))
  end)

  it("answers a read longer than the socket takes at once whole and in order", function()
    -- Long answers go out while the server is still writing them (64 KiB at a
    -- time); every event must arrive once, in order, with its count in front.
    local s = server.start()
    local c = s.client
    local pad = string.rep("p", 300)
    for b = 1, 30 do
      local batch = {}
      for i = 1, 100 do batch[i] = { type = "Padded", data = { n = (b - 1) * 100 + i, pad = pad } } end
      assert(c:append("long-" .. (b % 3), batch))
    end
    local ids = { assert(c:send("read", "$all", 1, 3000)), assert(c:send("read", "long-1", 0, 900, true)),
                  assert(c:send("append", "long-9", { type = "After" })) }
    local all = assert(c:wait(ids[1]))
    assert.equal(3000, #all)
    for i = 1, 3000 do
      assert.equal(i, all[i].position)
      assert.equal(i, all[i].data.n)
    end
    assert.equal(pad, all[3000].data.pad)
    local back = assert(c:wait(ids[2]))
    assert.equal(900, #back)
    for i = 1, 900 do assert.equal(1001 - i, back[i].version) end
    assert.equal(3001, assert(c:wait(ids[3])).position)
    assert.equal(1000, #assert(c:read("long-2", 1, 5000)))
  end)

  it("reads only the fields asked for, each event an array of them", function()
    local s = server.start()
    local c = s.client
    assert(c:append("acct-1", { { type = "Deposited", data = { amount = 10 } },
                                { type = "Noted", meta = { by = "ann" } } }))
    assert(c:append("acct-2", { type = "Deposited", data = { amount = 7 } }))
    local whole = assert(c:read("$all", 1, 10))
    local page = assert(c:read("$all", 1, 10, nil, { "position", "stream", "data" }))
    assert.equal(3, #page)
    for i, e in ipairs(page) do
      assert.same({ whole[i].position, whole[i].stream, whole[i].data }, { e[1], e[2], e[3] })
    end
    -- every field, in an order of the reader's choosing; a stream read backwards too
    local all = { "meta", "time", "id", "type", "version", "stream", "data", "position" }
    local back = assert(c:read("acct-1", nil, 10, true, all))
    assert.equal(2, #back)
    for i, e in ipairs(back) do
      local w = whole[3 - i]
      assert.same({ w.meta, w.time, w.id, w.type, w.version, w.stream, w.data, w.position },
                  { e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8] })
    end
    -- a subscription and a read without fields still get the maps
    assert.equal("Deposited", assert(c:read("acct-2"))[1].type)
    for _, bad in ipairs({ { "nope" }, { "data", "data" }, {}, "data",
                           { "position", "stream", "version", "type", "id", "time", "data", "meta", "x" } }) do
      local ok, err = c:read("$all", 1, 10, nil, bad)
      assert.is_nil(ok)
      assert.equal("bad_request", err.code)
      assert.matches("^read: ", err.message)
    end
  end)

  it("feeds moonlog tail, catching up first", function()
    local s = server.start()
    assert(s.client:append("tail-1", { type = "A", data = { n = 1 } }))
    assert(s.client:append("other-1", { type = "B" }))
    local out = server.sh(("timeout 1 %s tail --connect 127.0.0.1:%d tail --from 1 --json 2>/dev/null")
      :format(server.quote(os.getenv("MOONLOG_BIN")), s.rpc_port))
    assert.matches('"stream":"tail%-1"', out)
    assert.matches('"data":{"n":1}', out)
    assert.is_nil(out:find("other-1", 1, true))
  end)

  it("shows in moonlog tail every event appended once it says it follows", function()
    local s = server.start()
    assert(s.client:append("account-0", { type = "Before" }))
    local root = server.tmpdir()
    local out, err = root .. "/out", root .. "/err"
    -- (without the sanitizer preload the spec runner gives lua5.4: tools hang under it)
    os.execute(("env -u LD_PRELOAD timeout 10 %s tail --connect 127.0.0.1:%d 'account-*' >%s 2>%s &")
      :format(server.quote(os.getenv("MOONLOG_BIN")), s.rpc_port, out, err))
    server.eventually(function() return server.sh("cat " .. err):find("following", 1, true) end, 10, "the following line")
    assert.truthy(server.sh("cat " .. err):find("moonlog tail: following account-*, new events", 1, true))
    assert(s.client:append("account-1", { type = "Opened" })) -- right after it: shown
    server.eventually(function() return server.sh("cat " .. out):find("Opened", 1, true) end, 10, "the event in tail")
    assert.is_nil(server.sh("cat " .. out):find("Before", 1, true))
    server.sh("pkill -f 'tail --connect 127.0.0.1:" .. s.rpc_port .. "'; rm -rf " .. server.quote(root))
  end)

  it("keeps the log across a restart", function()
    local s = server.start()
    assert(s.client:append("keep-1", { type = "A", data = { x = 1 } }))
    s:restart()
    local events = assert(s.client:read("keep-1"))
    assert.equal(1, events[1].data.x)
  end)
end)
