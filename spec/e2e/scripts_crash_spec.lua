-- End-to-end: a handler killed with SIGKILL at random moments under a steady load
-- emits exactly one event per triggering event (its emits and its checkpoint are one
-- atomic batch), and a projection rebuilt from position 0 keeps the server answering.
local server = require "support.server"
local status_of = server.status_of
local function eventually(fn, seconds, what) return server.eventually(fn, seconds or 20, what) end
local socket = require "socket"

local ECHO = [[
local ml = require "moonlog"
return ml.handler {
  name = "echo", from = "ping-*",
  on = { Ping = function(e, ctx) ctx.emit("pong-" .. (e.data.n % 50), "Pong", { n = e.data.n }) end },
}
]]

describe("scripts in the server, under crashes and rebuilds", function()
  after_each(server.stop_all)

  it("emits exactly once per event across 10 kill -9 at random moments", function()
    local s = server.start { scripts = { ["echo.lua"] = ECHO }, args = { "--checkpoint-events", "50" } }
    math.randomseed(os.time())
    local n = 0
    for round = 1, 10 do
      -- A steady load: pipelined appends of one Ping each, some still in flight at the kill.
      local c = s:connect()
      local ids = {}
      for _ = 1, 300 do
        n = n + 1
        ids[#ids + 1] = c:send("append", "ping-" .. (n % 20), { type = "Ping", data = { n = n } })
      end
      socket.sleep(math.random() * 0.05)
      assert.is_falsy(s:stop("KILL"), "round " .. round .. ": the server should have been killed")
      c:close()
      s:launch()
    end
    local c = s.client
    local head = assert(c:stats()).head
    eventually(function()
      local st = status_of(c, "echo")
      return st.lag == 0
    end, 30, "the handler to reach the head")
    -- Every Ping that made it into the log has exactly one Pong, and no Pong is extra.
    local pings, pongs = {}, {}
    for _, e in ipairs(assert(c:read_all("$all"))) do
      if e.type == "Ping" then pings[e.data.n] = e.id end
      if e.type == "Pong" then
        assert.is_nil(pongs[e.data.n], "a second Pong for Ping " .. e.data.n)
        pongs[e.data.n] = e.meta.causation_id
      end
    end
    local count = 0
    for k, id in pairs(pings) do
      count = count + 1
      assert.equal(id, pongs[k], "the Pong of Ping " .. k)
    end
    for k in pairs(pongs) do assert.is_not_nil(pings[k], "a Pong without its Ping " .. k) end
    assert.is_true(count > 0 and head > 0)
  end)

  it("keeps answering reads, appends and queries while a projection rebuilds", function()
    local dir = server.tmpdir()
    local s = server.start()
    local c = s.client
    local total, sum = 0, 0
    for _ = 1, 200 do -- 200,000 events, 1,000 per append, pipelined
      local batch = {}
      for i = 1, 1000 do
        batch[i] = { type = "Added", data = { v = i % 7 } }
        sum = sum + i % 7
      end
      total = total + 1000
      c:send("append", "item-" .. (total // 1000 % 100), batch)
    end
    eventually(function() return assert(c:stats()).head == total end, 60, "the appends")
    assert(s:stop())
    server.sh(("cp %s %s"):format(server.quote(server.source "spec/data/count.lua"), server.quote(dir)))
    table.insert(s.args, "--scripts")
    table.insert(s.args, dir)
    s:launch()
    c = s.client
    local answered, during = 0, 0
    repeat
      local st = status_of(c, "count")
      if st.state == "catching up" then during = during + 1 end
      local n = assert(c:call("query", "count", "totals")).n
      assert.is_true(n >= 0 and n <= total + 1)
      assert.equal(1, #assert(c:read("item-1", 1, 1)))
      assert(c:append("other-1", { type = "Noted", data = {} }))
      answered = answered + 1
    until st.lag == 0 and st.state == "running"
    assert.is_true(answered > 0)
    assert.same({ n = total, sum = sum }, assert(c:call("query", "count", "totals")))
    os.execute("rm -rf " .. server.quote(dir))
  end)
end)
