-- End-to-end: a decider's state cache in the server (runtime/script/cache.c). Commands racing
-- on a few accounts from several connections never succeed twice against one version and
-- leave the balance the log's events give; events appended by others (plain appends) reach
-- the next command; a reload of the decider drops the cached states, so the new code folds
-- every stream again.
local server = require "support.server"

-- The account decider with a Deposited fold of `factor` times the amount, and a Peek that
-- rejects with the balance it sees.
local function account(factor)
  return ([[
local ml = require "moonlog"
return ml.decider {
  name = "account", from = "account-*",
  stream = function(cmd) return "account-" .. cmd.id end,
  init = function() return { balance = 0 } end,
  on = {
    Deposited = function(s, e) s.balance = s.balance + %d * e.data.amount end,
    Withdrawn = function(s, e) s.balance = s.balance - e.data.amount end,
  },
  decide = {
    Deposit = function(s, cmd) return { ml.event("Deposited", { amount = cmd.amount }) } end,
    Withdraw = function(s, cmd)
      s.balance = s.balance - cmd.amount -- decide must not change its state: this changes nothing
      if s.balance < 0 then return ml.reject("insufficient funds") end
      return { ml.event("Withdrawn", { amount = cmd.amount }) }
    end,
    Peek = function(s) return ml.reject("peek", { balance = s.balance }) end,
  },
}
]]):format(factor)
end

local function peek(c, id)
  local ok, err = c:call("command", "account", "Peek", { id = id })
  assert(ok == nil and err.code == "rejected", "Peek rejects")
  return err.details.balance
end

local function balance_of(events, factor)
  local b = 0
  for _, e in ipairs(events) do
    if e.type == "Deposited" then b = b + factor * e.data.amount end
    if e.type == "Withdrawn" then b = b - e.data.amount end
  end
  return b
end

describe("a decider's state cache", function()
  after_each(server.stop_all)

  it("never lets two commands succeed against one version, and agrees with the log", function()
    local s = server.start { scripts = { ["account.lua"] = account(1) } }
    for id = 1, 3 do
      assert(s.client:call("command", "account", "Deposit", { id = id, amount = 100 }))
    end
    local conns = { s:connect(), s:connect(), s:connect(), s:connect() }
    local sent = {}
    for i = 1, 240 do -- pipelined on four connections, over three accounts
      local c = conns[i % 4 + 1]
      local id = i % 3 + 1
      local name = i % 5 == 0 and "Deposit" or "Withdraw"
      sent[#sent + 1] = { c, id, assert(c:send("command", "account", name, { id = id, amount = 7 })) }
    end
    local versions = { {}, {}, {} }
    for _, p in ipairs(sent) do
      local r, err = p[1]:wait(p[3])
      if r then
        assert.is_nil(versions[p[2]][r.version], "two commands succeeded at version " .. r.version)
        versions[p[2]][r.version] = true
      else
        assert.is_true(err.code == "rejected" or err.code == "conflict", tostring(err.code))
      end
    end
    for id = 1, 3 do
      local events = assert(s.client:read("account-" .. id))
      local b = balance_of(events, 1)
      assert.is_true(b >= 0)
      assert.equal(b, peek(s.client, id))
    end
    for _, c in ipairs(conns) do c:close() end
  end)

  it("folds in what others appended, and a reload drops the cached states", function()
    local s = server.start { scripts = { ["account.lua"] = account(1) } }
    local c = s.client
    assert(c:call("command", "account", "Deposit", { id = 1, amount = 10 }))
    assert.equal(10, peek(c, 1)) -- cached at version 1
    assert(c:append("account-1", { { type = "Deposited", data = { amount = 5 } } }))
    assert.equal(15, peek(c, 1)) -- a plain append, folded in from the cached version
    local ok, err = c:call("command", "account", "Withdraw", { id = 1, amount = 100 })
    assert.equal("rejected", err.code)
    assert.equal(15, peek(c, 1)) -- the rejected Withdraw changed its copy only

    server.write_file(s.scripts .. "/account.lua", account(2))
    assert(c:call("reload", "account"))
    -- The new code folds the whole stream again: a kept state would still say 15.
    local deadline = os.time() + 20
    while peek(c, 1) ~= 30 and os.time() < deadline do end
    assert.equal(30, peek(c, 1))
    assert.equal(30, balance_of(assert(c:read("account-1")), 2))
  end)
end)
