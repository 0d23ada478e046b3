-- The write side of a bank account: open it, deposit, withdraw without going
-- below zero (or below the overdraft limit it was opened with), close it.
local ml = require "moonlog"

return ml.decider {
  name        = "account",
  description = "bank accounts: open, deposit, withdraw (with an overdraft limit), close",
  from        = "account-*",
  stream      = function(cmd) return "account-" .. tostring(cmd.id) end,
  init        = function() return { open = false, balance = 0, overdraft = 0 } end,
  on = {
    Opened    = function(s, e) s.open, s.owner, s.overdraft = true, e.data.owner, e.data.overdraft or 0 end,
    Deposited = function(s, e) s.balance = s.balance + e.data.amount end,
    Withdrawn = function(s, e) s.balance = s.balance - e.data.amount end,
    Closed    = function(s) s.open = false end,
  },
  decide = {
    Open = function(s, cmd)
      if s.open then return ml.reject("account already open") end
      if type(cmd.owner) ~= "string" or cmd.owner == "" then return ml.reject("an owner is required") end
      return { ml.event("Opened", { owner = cmd.owner, overdraft = cmd.overdraft or 0 }) }
    end,
    Deposit = function(s, cmd)
      if not s.open then return ml.reject("no such account") end
      if math.type(cmd.amount) ~= "integer" or cmd.amount <= 0 then
        return ml.reject("amount must be a positive whole number of cents")
      end
      return { ml.event("Deposited", { amount = cmd.amount }) }
    end,
    Withdraw = function(s, cmd)
      if not s.open then return ml.reject("no such account") end
      if math.type(cmd.amount) ~= "integer" or cmd.amount <= 0 then
        return ml.reject("amount must be a positive whole number of cents")
      end
      if s.balance - cmd.amount < -s.overdraft then
        return ml.reject("insufficient funds", { balance = s.balance, overdraft = s.overdraft })
      end
      return { ml.event("Withdrawn", { amount = cmd.amount }) }
    end,
    Close = function(s)
      if not s.open then return ml.reject("no such account") end
      if s.balance ~= 0 then return ml.reject("balance must be zero to close") end
      return { ml.event("Closed", {}) }
    end,
  },
}
