-- End-to-end: scripts living in the server (moonlog serve --scripts DIR): deciders
-- over RPC and HTTP (and two clients racing on one account), projections and their
-- queries, reducers, handlers with causation and parking, status, metrics, and
-- restarts from snapshots and checkpoints.
local server = require "support.server"
local status_of, at_head = server.status_of, server.at_head

local BANK = server.source "examples/bank/scripts"

local HANDLERS = [[
local ml = require "moonlog"
return ml.handler {
  name = "echo", from = "ping-*", on_error = "park",
  on = {
    Ping = function(e, ctx)
      assert(e.data.n ~= 13, "unlucky number")
      ctx.emit("pong-" .. e.data.n, "Pong", { n = e.data.n })
    end,
  },
}
]]

local REDUCER = [[
local ml = require "moonlog"
return ml.reducer {
  name = "counter", from = "ping-*",
  init = function() return { n = 0 } end,
  on = { Ping = function(s) s.n = s.n + 1 end },
}
]]

describe("scripts in the server", function()
  after_each(server.stop_all)

  it("runs a decider's commands over RPC and HTTP: 201, 422, 404", function()
    local s = server.start { args = { "--scripts", BANK } }
    local c = s.client
    local r = assert(c:call("command", "account", "Open", { id = 1, owner = "ann" }))
    assert.same({ "account-1", 1, 1 }, { r.stream, r.version, r.position })
    assert.equal("Opened", r.events[1].type)
    r = assert(c:call("command", "account", "Deposit", { id = 1, amount = 100 }))
    assert.equal(2, r.version)
    local ok, err = c:call("command", "account", "Withdraw", { id = 1, amount = 500 })
    assert.is_nil(ok)
    assert.same({ "rejected", "insufficient funds" }, { err.code, err.message })
    assert.same({ balance = 100, overdraft = 0 }, err.details)
    ok, err = c:call("command", "account", "Explode", { id = 1 })
    assert.equal("not_found", err.code)
    ok, err = c:call("command", "nobody", "Open", { id = 1 })
    assert.equal("not_found", err.code)

    local code, body = s:curl_json("POST", "/commands/account/Withdraw", '{"id":1,"amount":30}')
    assert.equal(201, code)
    assert.same({ "account-1", 3 }, { body.stream, body.version })
    assert.equal(30, body.events[1].data.amount)
    code, body = s:curl_json("POST", "/commands/account/Withdraw", '{"id":1,"amount":3000}')
    assert.equal(422, code)
    assert.equal("insufficient funds", body.error.message)
    assert.equal(70, body.error.details.balance)
    code = s:curl("POST", "/commands/account/Nope", "{}")
    assert.equal(404, code)
    code = s:curl("POST", "/commands/missing/Open", "{}")
    assert.equal(404, code)
    code = s:curl("POST", "/commands/account/Open", "[1,2]")
    assert.equal(400, code)
    code = s:curl("GET", "/commands/account/Open")
    assert.equal(405, code)
    local events = assert(c:read("account-1"))
    assert.equal(3, #events)
  end)

  it("never lets two clients racing on one account both succeed against one version", function()
    local s = server.start { args = { "--scripts", BANK } }
    assert(s.client:call("command", "account", "Open", { id = 7, owner = "bo" }))
    assert(s.client:call("command", "account", "Deposit", { id = 7, amount = 100 }))
    local a, b = s:connect(), s:connect()
    local ids = {}
    for i = 1, 20 do -- 20 withdrawals of 10 from 100, pipelined on two connections
      local c = i % 2 == 0 and a or b
      ids[#ids + 1] = { c, assert(c:send("command", "account", "Withdraw", { id = 7, amount = 10 })) }
    end
    local versions, ok_n, rejected, conflicts = {}, 0, 0, 0
    for _, p in ipairs(ids) do
      local r, err = p[1]:wait(p[2])
      if r then
        ok_n = ok_n + 1
        assert.is_nil(versions[r.version], "two commands succeeded at version " .. tostring(r.version))
        versions[r.version] = true
      elseif err.code == "rejected" then
        rejected = rejected + 1
      else
        assert.equal("conflict", err.code)
        conflicts = conflicts + 1
      end
    end
    assert.equal(20, ok_n + rejected + conflicts)
    local events = assert(s.client:read("account-7"))
    assert.equal(2 + ok_n, #events)
    assert.is_true(ok_n <= 10)
    local balance = 0
    for _, e in ipairs(events) do
      if e.type == "Deposited" then balance = balance + e.data.amount end
      if e.type == "Withdrawn" then balance = balance - e.data.amount end
    end
    assert.is_true(balance >= 0)
    assert.equal(100 - 10 * ok_n, balance)
    a:close()
    b:close()
  end)

  it("answers projection queries, whole states and reducers over RPC and HTTP", function()
    local s = server.start { scripts = { BANK, ["counter.lua"] = REDUCER } }
    local c = s.client
    for i = 1, 3 do
      assert(c:call("command", "account", "Open", { id = i, owner = "o" .. i }))
      assert(c:call("command", "account", "Deposit", { id = i, amount = 10 * i }))
    end
    assert(c:append("ping-1", { { type = "Ping", data = { n = 1 } }, { type = "Ping", data = { n = 2 } } }))
    at_head(c, "balances")
    at_head(c, "counter")
    assert.equal(20, assert(c:call("query", "balances", "balance", "account-2")))
    assert.equal(60, assert(c:call("query", "balances", "total")))
    assert.same({ total = 60, open = 3 }, assert(c:call("query", "balances", "summary")))
    local _, err = c:call("query", "balances", "nope")
    assert.equal("not_found", err.code)
    _, err = c:call("query", "missing", "total")
    assert.equal("not_found", err.code)
    assert.same({ n = 2 }, assert(c:call("get", "ping-1")))
    assert.same({ n = 2 }, assert(c:call("get", "counter", "ping-1")))
    assert.equal(60, assert(c:call("state", "balances")).total)

    local code, body = s:curl_json("GET", "/projections/balances/balance?arg=account-3")
    assert.same({ 200, 30 }, { code, body })
    code, body = s:curl_json("GET", "/projections/balances")
    assert.equal(200, code)
    assert.same({ ["account-1"] = 10, ["account-2"] = 20, ["account-3"] = 30 }, body.accounts)
    code, body = s:curl_json("GET", "/reducers/counter/ping-1")
    assert.same({ 200, { n = 2 } }, { code, body })
    assert.equal(404, (s:curl("GET", "/projections/balances/nope")))
    assert.equal(404, (s:curl("GET", "/projections/missing")))
    assert.equal(404, (s:curl("GET", "/reducers/balances/account-1")))
    -- an answer is as of the script's position: a header over HTTP, position() in eval
    local head = assert(c:call("stats")).head
    local _, text = s:curl("GET", "/projections/balances", nil, { "-i" })
    assert.equal(tostring(head), text:match("X%-Moonlog%-Position: (%d+)"))
    local r = assert(s:admin():eval("return balances:position()"))
    assert.same({ head }, r.values)
  end)

  it("runs handlers: emits with causation, parks what fails, reports status and metrics", function()
    local s = server.start { scripts = { ["echo.lua"] = HANDLERS, ["broken.lua"] = "return 42\n" } }
    local c = s.client
    local sent = {}
    for n = 10, 15 do
      local r = assert(c:append("ping-" .. n, { type = "Ping", id = "ping-id-" .. n, data = { n = n },
                                               meta = { correlation_id = "corr-" .. n } }))
      sent[n] = r.position
    end
    at_head(c, "echo")
    for n = 10, 15 do
      local pong = assert(c:read("pong-" .. n))
      if n == 13 then
        assert.same({}, pong)
      else
        assert.equal(1, #pong)
        assert.same({ n = n }, pong[1].data)
        assert.equal("ping-id-" .. n, pong[1].meta.causation_id)
        assert.equal("corr-" .. n, pong[1].meta.correlation_id)
      end
    end
    local parked = assert(c:read("$parked-echo"))
    assert.equal(1, #parked)
    assert.equal("Ping", parked[1].type)
    assert.equal(13, parked[1].data.n)
    assert.equal(sent[13], parked[1].meta.position)
    assert.matches("unlucky number", parked[1].meta.reason)
    local cps = assert(c:read("$checkpoint-echo"))
    assert.is_true(#cps >= 5)

    local st = status_of(c, "echo")
    assert.same({ "handler", "running", 0 }, { st.kind, st.state, st.lag })
    assert.equal(16, #st.hash)
    assert.is_true(st.memory > 0)
    local broken = status_of(c, "broken")
    assert.equal("faulted", broken.state)
    assert.is_string(broken.error)
    local code, list = s:curl_json("GET", "/scripts")
    assert.equal(200, code)
    assert.equal(2, #list)
    local _, metrics = s:curl("GET", "/metrics")
    assert.matches('moonlog_script_lag{script="echo",kind="handler"} 0', metrics, 1, true)
    assert.matches('moonlog_script_faulted{script="broken",kind="unknown"} 1', metrics, 1, true)
    assert.matches('moonlog_script_parked{script="echo",kind="handler"} 1\n', metrics, 1, true)
    assert.matches('moonlog_script_reload_failed{script="echo",kind="handler"} 0\n', metrics, 1, true)
    assert.matches("moonlog_group_parked_total 0\n", metrics, 1, true)
    -- a parked event is said in the server's log, with why
    local log = server.sh("cat " .. server.quote(s.log))
    assert.matches("script echo parked the event at position %d+ %(ping%-13 Ping%) in %$parked%-echo: [^\n]*unlucky number", log)
    -- and from a shell: moonlog scripts
    local out = server.sh(("%s scripts --data %s 2>&1"):format(server.quote(os.getenv("MOONLOG_BIN")),
      server.quote(s.data)))
    assert.matches("NAME%s+KIND%s+STATE%s+POSITION%s+LAG%s+EVENTS/S\n", out)
    assert.matches("\necho%s+handler%s+running%s+%d+%s+0%s+%d+\n", out) -- events/s: a whole number
    assert.matches("\nbroken%s+%-%s+faulted", out)
    assert.matches("\n  error: [^\n]*broken", out)
    out = server.sh(("%s scripts --json --data %s"):format(server.quote(os.getenv("MOONLOG_BIN")),
      server.quote(s.data)))
    assert.matches('^{"name":"', out)
  end)

  it("continues from snapshots and checkpoints after a restart, and rebuilds on new code", function()
    local s = server.start { scripts = { BANK .. "/balances.lua", ["echo.lua"] = HANDLERS } }
    local c = s.client
    assert(c:append("account-1", { { type = "Opened", data = {} }, { type = "Deposited", data = { amount = 5 } } }))
    assert(c:append("ping-1", { type = "Ping", data = { n = 1 } }))
    at_head(c, "balances")
    at_head(c, "echo")
    s:restart()
    c = s.client
    local st = at_head(c, "balances")
    -- Restored from the snapshot: only what came after it (the handler's last checkpoint).
    assert.is_true(st.events <= 1)
    assert.equal(5, assert(c:call("query", "balances", "total")))
    assert(c:append("ping-2", { type = "Ping", data = { n = 2 } }))
    at_head(c, "echo")
    assert.equal(1, #assert(c:read("pong-1")))
    assert.equal(1, #assert(c:read("pong-2")))
    assert(s:stop())
    -- New code: the snapshot's hash no longer matches, so it rebuilds from the log.
    local f = assert(io.open(s.scripts .. "/balances.lua", "a"))
    f:write("-- changed\n")
    f:close()
    s:launch()
    c = s.client
    st = at_head(c, "balances")
    assert.is_true(st.events >= 2)
    assert.equal(5, assert(c:call("query", "balances", "total")))
  end)
end)
