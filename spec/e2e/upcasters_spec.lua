-- End-to-end: upcasters in a running server (issue 20, item 4). The scripts folder's
-- upcasters.lua and a script's own `upcasters` turn the old shapes of Deposited into the
-- current one before a projection, a decider or a handler sees them; the stored events never
-- change; an upcaster that raises is the event's fault, with its line; a saved upcasters.lua
-- rebuilds the projection with it; `moonlog replay` uses the upcasters.lua beside the script.
local server = require "support.server"

local write, sh, q = server.write_file, server.sh, server.quote
local status_of, at_head = server.status_of, server.at_head

local function eventually(fn, what) return server.eventually(fn, 20, what) end

-- Schema 1 is { cents }, schema 2 { amount } (whole units), schema 3 adds { currency }.
local UPCASTERS = [[
local ml = require "moonlog"
return ml.upcaster {
  Deposited = {
    function(e) return { type = "Deposited", data = { amount = e.data.cents // 100 } } end,
    function(e) e.data.currency = "EUR" return e end,
  },
}
]]

local BALANCES = [[
local ml = require "moonlog"
return ml.projection {
  name = "balances", from = "account-*",
  init = function() return { accounts = {}, currencies = {}, schemas = {} } end,
  on = { Deposited = function(s, e)
    s.accounts[e.stream] = (s.accounts[e.stream] or 0) + e.data.amount
    s.currencies[e.data.currency] = true
    s.schemas[e.meta.schema] = (s.schemas[e.meta.schema] or 0) + 1
  end },
  queries = {
    balance = function(s, id) return s.accounts[id] end,
    currencies = function(s) local t = {} for c in pairs(s.currencies) do t[#t + 1] = c end table.sort(t) return t end,
    schemas = function(s) return s.schemas end,
  },
}
]]

local ACCOUNT = [[
local ml = require "moonlog"
return ml.decider {
  name = "account", from = "account-*",
  stream = function(cmd) return "account-" .. cmd.id end,
  init = function() return { balance = 0 } end,
  on = { Deposited = function(s, e) s.balance = s.balance + e.data.amount end },
  decide = {
    Deposit = function(s, cmd)
      return { ml.event("Deposited", { amount = cmd.amount, currency = "EUR", was = s.balance }) }
    end,
  },
}
]]

-- The three shapes, in that order, to account-1 (and a v1 to account-2).
local function append_old_and_new(c)
  assert(c:append("account-1", { type = "Deposited", data = { cents = 1000 } }))                      -- v1
  assert(c:append("account-1", { type = "Deposited", data = { amount = 5 }, meta = { schema = 2 } }))  -- v2
  assert(c:append("account-1", { type = "Deposited", data = { amount = 2, currency = "USD" },
                                 meta = { schema = 3 } }))                                           -- v3
  assert(c:append("account-2", { type = "Deposited", data = { cents = 250 } }))                       -- v1
end

local function query(c, ...) return assert(c:call("query", "balances", ...)) end

describe("upcasters", function()
  after_each(server.stop_all)

  it("turn v1 and v2 events into v3 for a projection and a decider, and the log keeps them as they were", function()
    local s = server.start { scripts = { ["upcasters.lua"] = UPCASTERS, ["balances.lua"] = BALANCES,
                                         ["account.lua"] = ACCOUNT } }
    local c = s.client
    append_old_and_new(c)
    at_head(c, "balances")
    -- upcasters.lua is not a script of its own
    for _, st in ipairs(assert(c:call("scripts"))) do assert.are_not.equal("upcasters", st.name) end

    assert.are.equal(10 + 5 + 2, query(c, "balance", "account-1"))
    assert.are.equal(2, query(c, "balance", "account-2"))
    assert.are.same({ "EUR", "USD" }, query(c, "currencies"))
    assert.are.same({ [3] = 4 }, query(c, "schemas"))       -- every event reached it at schema 3

    -- the stored events are untouched
    local stored = assert(c:read("account-1"))
    assert.are.same({ cents = 1000 }, stored[1].data)
    assert.is_nil((stored[1].meta or {}).schema)
    assert.are.same({ amount = 5 }, stored[2].data)

    -- the decider folds the same upcast events, and what it writes carries schema 3
    local r = assert(c:call("command", "account", "Deposit", { id = "1", amount = 1 }))
    assert.are.equal(17, r.events[1].data.was)
    local last = assert(c:read("account-1"))[4]
    assert.are.equal(3, last.meta.schema)
    at_head(c, "balances")
    assert.are.equal(18, query(c, "balance", "account-1"))
    assert.are.same({ [3] = 5 }, query(c, "schemas"))
  end)

  it("chain a script's own upcasters, which replace the folder's for their types", function()
    local own = BALANCES:gsub('name = "balances", from = "account%-%*",', [[
  name = "balances", from = "account-*",
  upcasters = ml.upcaster { Deposited = {
    function(e) e.data = { amount = e.data.cents } return e end,     -- 1 -> 2: cents as they are
    function(e) e.data.currency = "GBP" return e end,                -- 2 -> 3
  } },]])
    local s = server.start { scripts = { ["upcasters.lua"] = UPCASTERS, ["balances.lua"] = own } }
    local c = s.client
    append_old_and_new(c)
    at_head(c, "balances")
    assert.are.equal(1000 + 5 + 2, query(c, "balance", "account-1"))
    assert.are.same({ "GBP", "USD" }, query(c, "currencies"))
  end)

  it("make an upcaster's error the event's fault, with the upcaster's line, and park it for a handler", function()
    local bad = UPCASTERS:gsub("e%.data%.cents // 100", "e.data.cents.oops")
    local handler = [[
local ml = require "moonlog"
return ml.handler {
  name = "mirror", from = "account-*", on_error = "park",
  on = { Deposited = function(e, ctx) ctx.emit("mirror-" .. e.stream, "Mirrored", { amount = e.data.amount }) end },
}
]]
    local s = server.start { scripts = { ["upcasters.lua"] = bad, ["balances.lua"] = BALANCES,
                                         ["mirror.lua"] = handler } }
    local c = s.client
    append_old_and_new(c)
    local st = eventually(function()
      local x = status_of(c, "balances")
      return x.state == "faulted" and x
    end, "the projection's fault")
    assert.are.equal(1, st.error_position)
    assert.matches("upcasters.lua:4: attempt to index", st.error)

    -- the handler parks the two v1 events and mirrors the others
    at_head(c, "mirror")
    local parked = assert(c:call("parked", "mirror"))
    assert.are.equal(2, #parked)
    local v1 = { assert(c:read("account-1"))[1].position, assert(c:read("account-2"))[1].position }
    assert.are.same(v1, { parked[1].original_position, parked[2].original_position })
    assert.matches("upcasters.lua:4:", parked[1].reason)
    local mirrored = assert(c:read("mirror-account-1"))
    assert.are.equal(2, #mirrored)
    assert.are.same({ 5, 2 }, { mirrored[1].data.amount, mirrored[2].data.amount })

    -- the server goes on
    assert(c:append("other-1", { type = "Noted" }))
  end)

  it("rebuild a projection with the new upcasters when upcasters.lua is saved", function()
    local s = server.start { scripts = { ["upcasters.lua"] = UPCASTERS, ["balances.lua"] = BALANCES } }
    local c = s.client
    append_old_and_new(c)
    at_head(c, "balances")
    assert.are.equal(17, query(c, "balance", "account-1"))

    -- cents now count as 1/10: 1000 cents -> 100
    write(s.scripts .. "/upcasters.lua", UPCASTERS:gsub("// 100", "// 10"))
    eventually(function()
      local st = status_of(c, "balances")
      return st.reloads == 1 and not st.rebuild_position
    end, "the rebuild with the new upcasters")
    at_head(c, "balances")
    assert.are.equal(100 + 5 + 2, query(c, "balance", "account-1"))
    assert.are.equal(25, query(c, "balance", "account-2"))

    -- a broken one: the scripts keep running with the old, and the error says where
    write(s.scripts .. "/upcasters.lua", "local ml = require 'moonlog'\nreturn ml.upcaster { Deposited = 5 }\n")
    local st = eventually(function()
      local x = status_of(c, "balances")
      return x.reload_error and x
    end, "the reload error")
    assert.matches("upcasters.lua: ml.upcaster: Deposited must be a function", st.reload_error)
    assert(c:append("account-1", { type = "Deposited", data = { cents = 1000 } }))
    at_head(c, "balances")
    assert.are.equal(100 + 5 + 2 + 100, query(c, "balance", "account-1"))
  end)

  it("upcast in a dry run as in the live version", function()
    local s = server.start { scripts = { ["upcasters.lua"] = UPCASTERS, ["balances.lua"] = BALANCES } }
    local c = s.client
    append_old_and_new(c)
    at_head(c, "balances")
    -- the candidate counts whole units twice: every account changes, and nothing faults on
    -- a v1 event (which has no amount before its upcaster runs)
    local candidate = s.root .. "/balances.lua"
    write(candidate, (BALANCES:gsub("%+ e%.data%.amount", "+ 2 * e.data.amount")))
    local r = server.eventually(function()
      local x = assert(c:call("dry_run", "balances", candidate))
      return x.state ~= "running" and x
    end, 20, "the dry run")
    assert.are.same({}, r.faults or {})
    assert.are.equal(2, r.keys.changed)
    local changed = {}
    for _, x in ipairs(r.changed) do changed[x.key] = { x.old, x.new } end
    assert.are.same({ 17, 34 }, changed['accounts["account-1"]'])
    assert.are.same({ 2, 4 }, changed['accounts["account-2"]'])
  end)

  it("are checked by moonlog lint, which loads each script with them", function()
    local dir = server.tmpdir()
    write(dir .. "/upcasters.lua", UPCASTERS)
    write(dir .. "/balances.lua", BALANCES)
    local bin = q(os.getenv("MOONLOG_BIN"))
    local out = sh(("cd %s && %s lint upcasters.lua balances.lua 2>&1; echo rc=$?"):format(q(dir), bin))
    assert.matches("nothing found", out)
    assert.matches("rc=0", out)
    write(dir .. "/upcasters.lua", "local ml = require 'moonlog'\nreturn ml.upcaster {\n  Deposited = function(e) return e end,\n  Withdrawn = 7 }\n")
    out = sh(("cd %s && %s lint upcasters.lua 2>&1; echo rc=$?"):format(q(dir), bin))
    assert.matches("^upcasters.lua:%d+: .*Withdrawn must be a function", out)
    assert.matches("rc=1", out)
    sh("rm -rf " .. q(dir))
  end)

  it("upcast in moonlog replay with the upcasters.lua beside the script", function()
    local s = server.start { scripts = { ["upcasters.lua"] = UPCASTERS, ["balances.lua"] = BALANCES } }
    append_old_and_new(s.client)
    at_head(s.client, "balances")
    assert(s:stop())
    local out = sh(("%s replay --data %s %s 2>&1"):format(q(os.getenv("MOONLOG_BIN")), q(s.data),
      q(s.scripts .. "/balances.lua")))
    assert.matches('"account%-1":17', out)
    assert.matches('"account%-2":2', out)
  end)
end)
