-- Step 1 of the saga: a placed order asks for its payment.
local ml = require "moonlog"

return ml.handler {
  name = "payments",
  from = { streams = "order-*", types = { "OrderPlaced" } },
  on = {
    OrderPlaced = function(e, ctx)
      local id = e.stream:match("^order%-(.+)$")
      ctx.emit("payment-" .. id, "PaymentRequested", { order = e.stream, amount = e.data.amount, card = e.data.card })
    end,
  },
}
