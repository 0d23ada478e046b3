-- The read side: each order's status, and how many completed or were cancelled.
local ml = require "moonlog"

return ml.projection {
  name = "order_status",
  from = "order-*",
  init = function() return { orders = {}, placed = 0, confirmed = 0, cancelled = 0 } end,
  on = {
    OrderPlaced    = function(s, e) s.orders[e.stream] = "placed"; s.placed = s.placed + 1 end,
    OrderConfirmed = function(s, e) s.orders[e.stream] = "confirmed"; s.confirmed = s.confirmed + 1 end,
    OrderCancelled = function(s, e) s.orders[e.stream] = "cancelled"; s.cancelled = s.cancelled + 1 end,
  },
  queries = {
    status = function(s, order) return s.orders[order] end,
    counts = function(s) return { placed = s.placed, confirmed = s.confirmed, cancelled = s.cancelled } end,
  },
}
