-- The orders saga against the real server: orders placed through the decider
-- run through payments, the gateway and fulfilment; an order without a card is
-- parked by the gateway while the others go on.
local server = require "moonlog.testing.server" -- starts `moonlog serve` (run with `moonlog test`)

describe("examples/orders served", function()
  after_each(server.stop_all)

  it("confirms small orders, cancels large ones, parks one without a card", function()
    local s = server.start { args = { "--scripts", server.source "examples/orders/scripts" } }
    local c = s.client
    for i = 1, 10 do
      local amount = i <= 7 and 1000 * i or 500000
      assert(c:call("command", "order", "Place", { id = i, amount = amount, customer = "c" .. i, card = "4242" }))
    end
    assert(c:call("command", "order", "Place", { id = 11, amount = 10, customer = "x" }))
    local _, err = c:call("command", "order", "Place", { id = 1, amount = 5, card = "4242" })
    assert.equal("order already placed", err.message)
    local counts = server.eventually(function()
      local n = assert(c:call("query", "order_status", "counts"))
      return n.confirmed + n.cancelled == 10 and n
    end, 15, "the saga to finish")
    assert.same({ placed = 11, confirmed = 7, cancelled = 3 }, counts)
    assert.equal("confirmed", assert(c:call("query", "order_status", "status", "order-3")))
    assert.equal("cancelled", assert(c:call("query", "order_status", "status", "order-9")))
    assert.equal("placed", assert(c:call("query", "order_status", "status", "order-11")))
    local ship = assert(c:read("shipment-3"))
    assert.equal("ShipmentRequested", ship[1].type)
    local parked = server.eventually(function()
      local p = assert(c:read("$parked-gateway"))
      return #p == 1 and p
    end, 15, "the parked payment")
    assert.equal("payment-11", parked[1].meta.stream)
    assert.matches("without a card", parked[1].meta.reason)
    local code, list = s:curl_json("GET", "/scripts")
    assert.equal(200, code)
    assert.equal(5, #list)
    for _, st in ipairs(list) do assert.equal("running", st.state) end
  end)
end)
