-- The bank's logic, specced with moonlog.testing: no server, no log, just the scripts.
local t = require "moonlog.testing"

local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]+$") or "examples/bank"
local account = dofile(here .. "/scripts/account.lua")
local balances = dofile(here .. "/scripts/balances.lua")

describe("account", function()
  it("opens once", function()
    t.given(account, {}):when("Open", { id = 1, owner = "ada" })
      :emits { t.event("Opened", { owner = "ada", overdraft = 0 }) }
    t.given(account, { t.event("Opened", { owner = "ada" }) })
      :when("Open", { id = 1, owner = "bob" }):rejects("account already open")
  end)

  it("takes deposits of whole cents only", function()
    local opened = { t.event("Opened", { owner = "ada" }) }
    t.given(account, opened):when("Deposit", { id = 1, amount = 500 })
      :emits { t.event("Deposited", { amount = 500 }) }
    t.given(account, opened):when("Deposit", { id = 1, amount = 1.5 })
      :rejects("amount must be a positive whole number of cents")
    t.given(account, opened):when("Deposit", { id = 1, amount = -3 }):rejects("positive")
  end)

  it("refuses a withdrawal past the overdraft limit", function()
    local history = { t.event("Opened", { owner = "ada", overdraft = 100 }), t.event("Deposited", { amount = 50 }) }
    t.given(account, history):when("Withdraw", { id = 1, amount = 150 })
      :emits { t.event("Withdrawn", { amount = 150 }) }
    t.given(account, history):when("Withdraw", { id = 1, amount = 151 })
      :rejects("insufficient funds", { balance = 50, overdraft = 100 })
  end)

  it("folds its state from the events", function()
    t.given(account, { t.event("Opened", { owner = "ada" }), t.event("Deposited", { amount = 70 }),
                       t.event("Withdrawn", { amount = 20 }) })
      :state { open = true, owner = "ada", balance = 50, overdraft = 0 }
  end)

  it("closes only at zero", function()
    local history = { t.event("Opened", { owner = "ada" }), t.event("Deposited", { amount = 5 }) }
    t.given(account, history):when("Close", { id = 1 }):rejects("balance must be zero to close")
    t.given(account, { t.event("Opened", { owner = "ada" }) }):when("Close", { id = 1 })
      :emits { t.event("Closed", {}) }
    t.given(account, {}):when("Withdraw", { id = 9, amount = 1 }):rejects("no such account")
  end)
end)

describe("balances", function()
  it("keeps each account's balance and the total", function()
    t.given(balances, {})
      :after {
        t.stream("account-1", { t.event("Opened", { owner = "ada" }), t.event("Deposited", { amount = 100 }) }),
        t.stream("account-2", { t.event("Opened", { owner = "bob" }), t.event("Deposited", { amount = 30 }),
                                t.event("Withdrawn", { amount = 10 }) }),
      }
      :query("balance", "account-1"):equals(100)
      :query("balance", "account-2"):equals(20)
      :query("summary"):equals { total = 120, open = 2 }
  end)
end)
