-- The read side: every account's balance and the bank's total, from the events.
local ml = require "moonlog"

return ml.projection {
  name        = "balances",
  description = "balance per account, total and number of open accounts",
  from        = "account-*",
  init        = function() return { total = 0, open = 0, accounts = {} } end,
  on = {
    Opened    = function(s, e) s.accounts[e.stream] = 0; s.open = s.open + 1 end,
    Deposited = function(s, e)
      s.accounts[e.stream] = (s.accounts[e.stream] or 0) + e.data.amount
      s.total = s.total + e.data.amount
    end,
    Withdrawn = function(s, e)
      s.accounts[e.stream] = (s.accounts[e.stream] or 0) - e.data.amount
      s.total = s.total - e.data.amount
    end,
    Closed    = function(s, e) s.accounts[e.stream] = nil; s.open = s.open - 1 end,
  },
  queries = {
    balance = function(s, stream) return s.accounts[stream] end,
    total   = function(s) return s.total end,
    summary = function(s) return { total = s.total, open = s.open } end,
  },
}
