-- The order saga, step by step, with moonlog.testing.
local t = require "moonlog.testing"

local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]+$") or "examples/orders"
local function script(name) return dofile(here .. "/scripts/" .. name .. ".lua") end
local order, payments, gateway = script("order"), script("payments"), script("gateway")
local fulfilment, status = script("fulfilment"), script("order_status")

describe("the order saga", function()
  it("places an order once", function()
    t.given(order, {}):when("Place", { id = 7, amount = 1200, card = "4111" })
      :emits { t.event("OrderPlaced", { amount = 1200, card = "4111" }) }
    t.given(order, { t.event("OrderPlaced", { amount = 1 }) })
      :when("Place", { id = 7, amount = 5 }):rejects("order already placed")
  end)

  it("asks for payment when an order is placed", function()
    t.given(payments, {})
      :after { t.stream("order-7", { t.event("OrderPlaced", { amount = 1200, card = "4111" }) }) }
      :emitted { { stream = "payment-7", type = "PaymentRequested",
                   data = { order = "order-7", amount = 1200, card = "4111" } } }
  end)

  it("settles small payments and fails large ones", function()
    t.given(gateway, {})
      :after { t.stream("payment-1", { t.event("PaymentRequested", { order = "order-1", amount = 500, card = "4111" }) }),
               t.stream("payment-2", { t.event("PaymentRequested", { order = "order-2", amount = 500000, card = "4111" }) }) }
      :emitted {
        { stream = "payment-1", type = "PaymentSettled", data = { order = "order-1", amount = 500 } },
        { stream = "payment-2", type = "PaymentFailed", data = { order = "order-2", reason = "over the card limit" } },
      }
  end)

  it("parks a payment request without a card, and goes on", function()
    t.given(gateway, {})
      :after { t.stream("payment-3", { t.event("PaymentRequested", { order = "order-3", amount = 5 }) }),
               t.stream("payment-4", { t.event("PaymentRequested", { order = "order-4", amount = 5, card = "4111" }) }) }
      :parked { { stream = "payment-3", type = "PaymentRequested" } }
      :emitted { { stream = "payment-4", type = "PaymentSettled", data = { order = "order-4", amount = 5 } } }
  end)

  it("confirms and ships a paid order, cancels an unpaid one", function()
    t.given(fulfilment, {})
      :after { t.stream("payment-1", { t.event("PaymentSettled", { order = "order-1", amount = 5 }) }),
               t.stream("payment-2", { t.event("PaymentFailed", { order = "order-2", reason = "declined" }) }) }
      :emitted {
        { stream = "order-1", type = "OrderConfirmed", data = { amount = 5 } },
        { stream = "shipment-1", type = "ShipmentRequested", data = { order = "order-1" } },
        { stream = "order-2", type = "OrderCancelled", data = { reason = "declined" } },
      }
  end)

  it("counts orders by outcome", function()
    t.given(status, {})
      :after { t.stream("order-1", { t.event("OrderPlaced", { amount = 1 }), t.event("OrderConfirmed", {}) }),
               t.stream("order-2", { t.event("OrderPlaced", { amount = 1 }), t.event("OrderCancelled", {}) }) }
      :query("status", "order-1"):equals("confirmed")
      :query("counts"):equals { placed = 2, confirmed = 1, cancelled = 1 }
  end)
end)
