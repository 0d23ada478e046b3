-- Orders are placed through this decider; the saga's handlers take it from there.
local ml = require "moonlog"

return ml.decider {
  name   = "order",
  from   = "order-*",
  stream = function(cmd) return "order-" .. tostring(cmd.id) end,
  init   = function() return { status = "none" } end,
  on = {
    OrderPlaced    = function(s, e) s.status, s.amount = "placed", e.data.amount end,
    OrderConfirmed = function(s) s.status = "confirmed" end,
    OrderCancelled = function(s, e) s.status, s.reason = "cancelled", e.data.reason end,
  },
  decide = {
    Place = function(s, cmd)
      if s.status ~= "none" then return ml.reject("order already placed") end
      if math.type(cmd.amount) ~= "integer" then return ml.reject("amount must be a whole number of cents") end
      return { ml.event("OrderPlaced", { amount = cmd.amount, customer = cmd.customer, card = cmd.card }) }
    end,
  },
}
