-- The bank example against the real server: the account decider over HTTP and
-- RPC, and the balances projection answering as the commands land.
local server = require "moonlog.testing.server" -- starts `moonlog serve` (run with `moonlog test`)

describe("examples/bank served", function()
  after_each(server.stop_all)

  it("opens, deposits, refuses an overdraft, and shows the balances", function()
    local s = server.start { args = { "--scripts", server.source "examples/bank/scripts" } }
    assert.equal(201, (s:curl("POST", "/commands/account/Open", '{"id": 1, "owner": "ada", "overdraft": 50}')))
    assert.equal(201, (s:curl("POST", "/commands/account/Deposit", '{"id": 1, "amount": 100}')))
    local code, body = s:curl_json("POST", "/commands/account/Withdraw", '{"id": 1, "amount": 151}')
    assert.same({ 422, "insufficient funds" }, { code, body.error.message })
    code, body = s:curl_json("POST", "/commands/account/Withdraw", '{"id": 1, "amount": 150}')
    assert.same({ 201, 3 }, { code, body.version })
    assert.equal(422, (s:curl("POST", "/commands/account/Close", '{"id": 1}')))
    local c = s.client
    assert(c:call("command", "account", "Open", { id = 2, owner = "bob" }))
    assert(c:call("command", "account", "Deposit", { id = 2, amount = 70 }))
    server.at_head(c, "balances") -- the projection has seen every event
    code, body = s:curl_json("GET", "/projections/balances/balance?arg=account-1")
    assert.same({ 200, -50 }, { code, body })
    assert.same({ total = 20, open = 2 }, assert(c:call("query", "balances", "summary")))
    code, body = s:curl_json("GET", "/projections/balances")
    assert.same({ ["account-1"] = -50, ["account-2"] = 70 }, body.accounts)
  end)
end)
