-- Step 3: a settled payment confirms the order and asks for shipment; a failed
-- one cancels the order.
local ml = require "moonlog"

return ml.handler {
  name = "fulfilment",
  from = "payment-*",
  on = {
    PaymentSettled = function(e, ctx)
      local id = e.data.order:match("^order%-(.+)$")
      ctx.emit(e.data.order, "OrderConfirmed", { amount = e.data.amount })
      ctx.emit("shipment-" .. id, "ShipmentRequested", { order = e.data.order })
    end,
    PaymentFailed = function(e, ctx)
      ctx.emit(e.data.order, "OrderCancelled", { reason = e.data.reason })
    end,
  },
}
