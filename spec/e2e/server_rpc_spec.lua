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

  it("feeds moonlog tail, catching up first", function()
    local s = server.start()
    assert(s.client:append("tail-1", { type = "A", data = { n = 1 } }))
    assert(s.client:append("other-1", { type = "B" }))
    local out = server.sh(("timeout 1 %s tail --connect 127.0.0.1:%d tail --from 1 --json")
      :format(server.quote(os.getenv("MOONLOG_BIN")), s.rpc_port))
    assert.matches('"stream":"tail%-1"', out)
    assert.matches('"data":{"n":1}', out)
    assert.is_nil(out:find("other-1", 1, true))
  end)

  it("keeps the log across a restart", function()
    local s = server.start()
    assert(s.client:append("keep-1", { type = "A", data = { x = 1 } }))
    s:restart()
    local events = assert(s.client:read("keep-1"))
    assert.equal(1, events[1].data.x)
  end)
end)
