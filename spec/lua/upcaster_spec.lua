-- ml.upcaster, in the testing kit and in the C host (moonlog.core.script): old shapes of an
-- event reach a script in the current one, chained by meta.schema; the given events stay as
-- they were; what a decider or handler writes is stamped with the current schema; an
-- upcaster's error is the event's, raised or parked as a handler's would be.
local ml = require "moonlog"
local t = require "moonlog.testing"
local host = require("moonlog.core").script

-- Deposited: schema 1 { cents }, 2 { amount }, 3 { amount, currency }; Credited is the old
-- name of Deposited, in schema 2's shape.
local UP = {
  Deposited = {
    function(e) e.data = { amount = e.data.cents // 100 } return e end,
    function(e) e.data.currency = e.data.currency or "EUR" return e end,
  },
  Credited = function(e) e.type = "Deposited" e.meta.schema = 2 return e end,
}

local function balances(upcasters)
  return ml.projection {
    name = "balances", from = "account-*", upcasters = upcasters,
    init = { total = 0, seen = {} },
    on = { Deposited = function(s, e)
      s.total = s.total + e.data.amount
      s.seen[#s.seen + 1] = e.data.currency .. "@" .. e.meta.schema
    end },
  }
end

local v1 = t.event("Deposited", { cents = 1000 })
local v2 = t.event("Deposited", { amount = 5 }, { schema = 2 })
local v3 = t.event("Deposited", { amount = 2, currency = "USD" }, { schema = 3 })
local old_name = t.event("Credited", { amount = 1 })

describe("ml.upcaster", function()
  after_each(function() t.upcasters(nil) end)

  it("knows its types' current schemas and checks its table", function()
    local u = ml.upcaster(UP)
    assert.is_true(ml.is_upcaster(u))
    assert.are.same({ Deposited = 3, Credited = 2 }, u.current)
    assert.has_error(function() ml.upcaster { Deposited = 5 } end,
      "ml.upcaster: Deposited must be a function(e) returning the event in its next shape, or a list of them (schema 1 -> 2, 2 -> 3, ...), got number")
    assert.has_error(function() ml.upcaster { Deposited = {} } end)
    assert.has_error(function() ml.upcaster { [1] = function() end } end)
    assert.has_error(function() ml.upcaster { Deposited = { function() end, 7 } } end)
    assert.has_error(function() balances { Deposited = "x" } end)
  end)

  it("chains v1 -> v2 -> v3 in the testing kit; v3 passes as it is; a renamed type follows its new name's steps", function()
    t.given(balances(ml.upcaster(UP)), { v1, v2, v3, old_name })
     :state({ total = 10 + 5 + 2 + 1, seen = { "EUR@3", "EUR@3", "USD@3", "EUR@3" } })
  end)

  it("takes the folder's upcasters from t.upcasters, and a script's own replace them for their types", function()
    t.upcasters(UP)
    t.given(balances(), { v1, v2 }):state({ total = 15, seen = { "EUR@3", "EUR@3" } })
    local own = ml.upcaster { Deposited = {
      function(e) e.data = { amount = e.data.cents } return e end,
      function(e) e.data.currency = "GBP" return e end,
    } }
    t.given(balances(own), { v1, v2, old_name })
     :state({ total = 1000 + 5 + 1, seen = { "GBP@3", "GBP@3", "GBP@3" } })
  end)

  it("leaves the given events as they were", function()
    local given = { v1 }
    t.given(balances(ml.upcaster(UP)), given):state({ total = 10, seen = { "EUR@3" } })
    assert.are.same({ cents = 1000 }, given[1].data)
    assert.is_nil(given[1].meta)
  end)

  it("folds a decider's stream upcast and stamps what it decides with the current schema", function()
    local account = ml.decider {
      name = "account", from = "account-*", upcasters = ml.upcaster(UP),
      stream = function(cmd) return "account-" .. cmd.id end,
      init = { balance = 0 },
      on = { Deposited = function(s, e) s.balance = s.balance + e.data.amount end },
      decide = { Deposit = function(s, cmd)
        return ml.event("Deposited", { amount = cmd.amount, currency = "EUR", was = s.balance })
      end },
    }
    t.given(account, { v1, v2 })
     :when("Deposit", { id = "1", amount = 3 })
     :emits(t.event("Deposited", { amount = 3, currency = "EUR", was = 15 }, { schema = 3 }))
     :state({ balance = 18 })
  end)

  it("makes an upcaster's error the event's: raised for a projection, parked by a handler", function()
    local broken = ml.upcaster { Deposited = function(e) return e.data.cents.x end }
    local ok, err = pcall(function() t.given(balances(broken), { v1 }) end)
    assert.is_false(ok)
    assert.matches("the upcaster failed at account%-1: Deposited {cents=1000} %(position 1%)", err)
    assert.matches("attempt to index a number value", err)
    local mirror = ml.handler {
      name = "mirror", from = "account-*", on_error = "park", upcasters = broken,
      on = { Deposited = function(e, ctx) ctx.emit("m-1", "Mirrored", { amount = e.data.amount }) end },
    }
    t.given(mirror):after({ v1, t.event("Deposited", { amount = 4 }, { schema = 2 }) })
     :parked(t.event("Deposited", { cents = 1000 }))
     :emitted({ type = "Mirrored", data = { amount = 4 } })
  end)

  it("upcasts the same way in the C host, from the folder's text and the script's own", function()
    local src = [[
local ml = require "moonlog"
return ml.reducer {
  name = "acc", from = "account-*",
  init = function() return { total = 0, seen = {} } end,
  on = { Deposited = function(s, e)
    s.total = s.total + e.data.amount
    s.seen[#s.seen + 1] = e.data.currency .. "@" .. e.meta.schema
  end },
}
]]
    local folder = [[
local ml = require "moonlog"
return ml.upcaster {
  Deposited = {
    function(e) e.data = { amount = e.data.cents // 100 } return e end,
    function(e) e.data.currency = e.data.currency or "EUR" return e end,
  },
  Credited = function(e) e.type = "Deposited" e.meta.schema = 2 return e end,
}
]]
    local s = host.load("acc.lua", { source = src, upcasters = folder })
    local n = 0
    local function feed(e)
      n = n + 1
      e.stream, e.position = e.stream or "account-1", n
      assert(s:feed(e))
    end
    feed { type = "Deposited", data = { cents = 1000 } }
    feed { type = "Deposited", data = { amount = 5 }, meta = { schema = 2 } }
    feed { type = "Deposited", data = { amount = 2, currency = "USD" }, meta = { schema = 3 } }
    feed { type = "Credited", data = { amount = 1 } }
    feed { type = "Credited", stream = "other-1", data = { amount = 1 } }   -- not its stream
    assert.are.same({ ["account-1"] = { total = 18, seen = { "EUR@3", "EUR@3", "USD@3", "EUR@3" } } },
      s:state())

    -- a broken step faults the script at its event, with the upcaster's line
    local bad = host.load("acc.lua", { source = src,
      upcasters = "local ml = require 'moonlog'\nreturn ml.upcaster {\n  Deposited = function(e) return e.data.cents.x end }\n" })
    local ok, err = bad:feed { stream = "account-1", type = "Deposited", position = 1, data = { cents = 1 } }
    assert.is_nil(ok)
    assert.matches("^script acc faulted at position 1: upcasters.lua:3: attempt to index", err)

    -- a folder file that is not an upcaster does not load, and says which file
    assert.has_error(function() host.load("acc.lua", { source = src, upcasters = "return 5" }) end,
      "script acc.lua failed: upcasters.lua must return the folder's upcasters (return ml.upcaster { Type = function(e) ... return e end }), got number")
  end)
end)
