-- A small bank written the way users write scripts, and specced with the testing kit the way
-- users spec them: an account decider, a balances projection, a per-branch partitioned
-- projection and an alerts handler.

local ml = require "moonlog"
local t = require "moonlog.testing"

local account = ml.decider {
  name = "account",
  description = "opens accounts and moves money in and out of them",
  from = "account-*",
  stream = function(cmd) return "account-" .. cmd.id end,
  init = function() return { open = false, balance = 0 } end,
  on = {
    Opened = function(s, e)
      s.open, s.owner, s.branch = true, e.data.owner, e.data.branch
    end,
    Deposited = function(s, e) s.balance = s.balance + e.data.amount end,
    Withdrawn = function(s, e) s.balance = s.balance - e.data.amount end,
    Closed = function(s) s.open = false end,
  },
  decide = {
    Open = function(s, cmd)
      if s.open then return ml.reject("already open") end
      return { ml.event("Opened", { owner = cmd.owner, branch = cmd.branch or "main" }) }
    end,
    Deposit = function(s, cmd)
      if not s.open then return ml.reject("account is not open") end
      if type(cmd.amount) ~= "number" or cmd.amount <= 0 then
        return ml.reject("amount must be a positive number")
      end
      return { ml.event("Deposited", { amount = cmd.amount }) }
    end,
    Withdraw = function(s, cmd)
      if not s.open then return ml.reject("account is not open") end
      if s.balance < cmd.amount then
        return ml.reject("insufficient funds", { balance = s.balance, asked = cmd.amount })
      end
      return { ml.event("Withdrawn", { amount = cmd.amount }) }
    end,
    Close = function(s)
      if not s.open then return ml.reject("account is not open") end
      local events = {}
      if s.balance > 0 then events[1] = ml.event("Withdrawn", { amount = s.balance }) end
      events[#events + 1] = ml.event("Closed")
      return events
    end,
  },
}

local balances = ml.projection {
  name = "balances",
  from = "account-*",
  init = function() return { total = 0, accounts = {} } end,
  on = {
    Deposited = function(s, e)
      s.accounts[e.stream] = (s.accounts[e.stream] or 0) + e.data.amount
      s.total = s.total + e.data.amount
    end,
    Withdrawn = function(s, e)
      s.accounts[e.stream] = s.accounts[e.stream] - e.data.amount
      s.total = s.total - e.data.amount
    end,
    Closed = function(s, e) s.accounts[e.stream] = nil end,
  },
  queries = {
    balance = function(s, stream) return s.accounts[stream] end,
    total = function(s) return s.total end,
  },
}

-- One state per branch; an event finds its branch through the account it belongs to.
local branch_of = {}
local branches = ml.projection {
  name = "branches",
  from = "account-*",
  partition = function(e)
    if e.type == "Opened" then branch_of[e.stream] = e.data.branch end
    return branch_of[e.stream]
  end,
  init = function(branch) return { branch = branch, accounts = 0 } end,
  on = {
    Opened = function(s) s.accounts = s.accounts + 1 end,
    Closed = function(s) s.accounts = s.accounts - 1 end,
  },
  queries = {
    accounts = function(states, branch) return states[branch] and states[branch].accounts or 0 end,
  },
}

local alerts = ml.handler {
  name = "alerts",
  from = { streams = "account-*", types = { "Withdrawn" } },
  on_error = "park",
  on = {
    Withdrawn = function(e, ctx)
      if e.data.amount >= 1000 then
        ctx.emit("alerts-" .. e.stream:match("^account%-(.*)$"), "LargeWithdrawal",
          { account = e.stream, amount = e.data.amount })
      end
    end,
  },
}

local function opened(owner, branch)
  return t.event("Opened", { owner = owner, branch = branch or "main" })
end

describe("the bank", function()
  describe("account", function()
    it("opens an account", function()
      t.given(account)
       :when("Open", { id = "1", owner = "ann" })
       :emits(t.event("Opened", { owner = "ann", branch = "main" }))
       :state({ open = true, owner = "ann", branch = "main", balance = 0 })
    end)

    it("opens an account once", function()
      t.given(account, { opened("ann") }):when("Open", { id = "1", owner = "bob" })
       :rejects("already open")
    end)

    it("takes deposits", function()
      t.given(account, { opened("ann") })
       :when("Deposit", { id = "1", amount = 50 })
       :emits(t.event("Deposited", { amount = 50 }))
    end)

    it("refuses odd amounts", function()
      t.given(account, { opened("ann") })
       :when("Deposit", { id = "1", amount = -5 }):rejects("positive")
       :when("Deposit", { id = "1", amount = "5" }):rejects("^amount must be")
    end)

    it("refuses to overdraw", function()
      t.given(account, { opened("ann"), t.event("Deposited", { amount = 10 }) })
       :when("Withdraw", { id = "1", amount = 20 })
       :rejects("insufficient funds", { balance = 10, asked = 20 })
    end)

    it("refuses money moves on an account that is not open", function()
      t.given(account):when("Deposit", { id = "1", amount = 5 }):rejects("account is not open")
      t.given(account, { opened("ann"), t.event("Closed") })
       :when("Withdraw", { id = "1", amount = 5 }):rejects("account is not open")
    end)

    it("pays out the balance when closing", function()
      t.given(account, { opened("ann"), t.event("Deposited", { amount = 30 }) })
       :when("Close", { id = "1" })
       :emits(t.event("Withdrawn", { amount = 30 }), t.event("Closed"))
       :state({ open = false, owner = "ann", branch = "main", balance = 0 })
    end)

    it("runs a day of commands", function()
      t.given(account)
       :when("Open", { id = "7", owner = "cy" }):emits("Opened")
       :when("Deposit", { id = "7", amount = 100 }):emits(t.event("Deposited", { amount = 100 }))
       :when("Withdraw", { id = "7", amount = 60 }):emits(t.event("Withdrawn", { amount = 60 }))
       :when("Withdraw", { id = "7", amount = 60 }):rejects("insufficient funds")
       :state_of("account-7", { open = true, owner = "cy", branch = "main", balance = 40 })
    end)

    it("reports a wrong expectation readably", function()
      local ok, err = pcall(function()
        t.given(account, { opened("ann"), t.event("Deposited", { amount = 10 }) })
         :when("Withdraw", { id = "1", amount = 20 })
         :emits(t.event("Withdrawn", { amount = 20 }))
      end)
      assert.is_false(ok)
      assert.matches("bank_spec%.lua:%d+: expected events:\n  Withdrawn {amount=20}\nbut got:\n"
        .. '  rejection "insufficient funds"$', err)
    end)
  end)

  describe("balances", function()
    it("follows deposits and withdrawals over accounts", function()
      t.given(balances, {
        t.stream("account-1", { opened("ann"), t.event("Deposited", { amount = 100 }) }),
        t.stream("account-2", { opened("bob"), t.event("Deposited", { amount = 20 }) }),
      })
       :after({ t.stream("account-1", { t.event("Withdrawn", { amount = 30 }) }) })
       :query("balance", "account-1"):equals(70)
       :query("balance", "account-2"):equals(20)
       :query("total"):equals(90)
       :after({ t.stream("account-2",
         { t.event("Withdrawn", { amount = 20 }), t.event("Closed") }) })
       :query("balance", "account-2"):equals(nil)
       :state({ total = 70, accounts = { ["account-1"] = 70 } })
    end)
  end)

  describe("branches", function()
    before_each(function()
      for k in pairs(branch_of) do branch_of[k] = nil end
    end)

    it("counts open accounts per branch", function()
      t.given(branches, {
        t.stream("account-1", { opened("ann", "north") }),
        t.stream("account-2", { opened("bob", "south") }),
        t.stream("account-3", { opened("cy", "north"), t.event("Closed") }),
        t.stream("account-4", { opened("di", "north") }),
      })
       :query("accounts", "north"):equals(2)
       :query("accounts", "south"):equals(1)
       :query("accounts", "east"):equals(0)
       :state({ north = { branch = "north", accounts = 2 },
                south = { branch = "south", accounts = 1 } })
    end)
  end)

  describe("alerts", function()
    it("raises an alert for a large withdrawal", function()
      t.given(alerts)
       :after(t.stream("account-9", {
         t.event("Withdrawn", { amount = 5 }),
         { type = "Withdrawn", id = "w-2", data = { amount = 5000 } },
       }))
       :emitted({ stream = "alerts-9", type = "LargeWithdrawal",
                  data = { account = "account-9", amount = 5000 },
                  meta = { causation_id = "w-2", correlation_id = "w-2" } })
    end)

    it("parks an event it cannot handle", function()
      t.given(alerts)
       :after({ t.event("Withdrawn", { amount = "lots" }),
                t.event("Withdrawn", { amount = 2000 }) })
       :parked(t.event("Withdrawn", { amount = "lots" }))
       :emitted("LargeWithdrawal")
    end)

    it("is only handed withdrawals", function()
      assert.same({ "Withdrawn" }, alerts.from.types)
      assert.is_false(alerts:matches("account-1", "Deposited"))
    end)
  end)

  it("feeds a command's events to the projection", function()
    local _, state = account:execute({}, "Open", { id = "1", owner = "ann" })
    assert.same({ open = false, balance = 0 }, state)
    local history = {}
    local function run(cmd, args)
      local result = account:execute(history, cmd, args)
      assert.is_false(ml.is_rejection(result))
      for _, e in ipairs(result) do
        e.stream, e.version = "account-1", #history + 1
        history[#history + 1] = e
      end
    end
    run("Open", { id = "1", owner = "ann" })
    run("Deposit", { id = "1", amount = 80 })
    run("Withdraw", { id = "1", amount = 30 })
    local s = balances:replay(history)
    assert.equal(50, balances:query(s, "balance", "account-1"))
  end)
end)
