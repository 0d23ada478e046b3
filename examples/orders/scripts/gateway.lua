-- Step 2: the payment gateway (simulated). Small amounts settle, large ones fail.
-- A request without a card number is a bug upstream: the handler raises, and
-- with on_error = "park" the event goes to $parked-gateway to be repaired and
-- replayed, while the other orders go on.
local ml = require "moonlog"

local LIMIT = 100000 -- cents

return ml.handler {
  name     = "gateway",
  from     = "payment-*",
  on_error = "park",
  on = {
    PaymentRequested = function(e, ctx)
      assert(type(e.data.card) == "string", "payment request without a card number")
      if e.data.amount <= LIMIT then
        ctx.emit(e.stream, "PaymentSettled", { order = e.data.order, amount = e.data.amount })
      else
        ctx.emit(e.stream, "PaymentFailed", { order = e.data.order, reason = "over the card limit" })
      end
    end,
  },
}
