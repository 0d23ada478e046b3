-- moonlog.testing: scenarios, expectations that pass, and the messages of those that fail.

local ml = require "moonlog"
local t = require "moonlog.testing"

local function noop() end

-- The message of the failure `fn` raises, without its position, after checking that the
-- position is this spec file (the line that called the expectation, not the kit).
local function failure(fn)
  local ok, err = pcall(fn)
  assert(not ok, "expected the expectation to fail")
  err = tostring(err)
  assert(err:match("^[^\n]*testing_spec%.lua:%d+: "), "not raised at the spec's line: " .. err)
  return (err:gsub("^[^\n]-testing_spec%.lua:%d+: ", ""))
end

local account = ml.decider {
  name   = "account",
  from   = "account-*",
  stream = function(cmd) return "account-" .. (cmd.id or "1") end,
  init   = function() return { balance = 0, versions = {} } end,
  on     = {
    Deposited = function(s, e)
      s.balance = s.balance + e.data.amount
      s.versions[#s.versions + 1] = e.version
    end,
    Withdrawn = function(s, e)
      s.balance = s.balance - e.data.amount
      s.versions[#s.versions + 1] = e.version
    end,
  },
  decide = {
    Deposit = function(_, cmd)
      return { ml.event("Deposited", { amount = cmd.amount }, { note = cmd.note }) }
    end,
    Withdraw = function(s, cmd)
      if cmd.amount <= 0 then return ml.reject("amount must be > 0") end
      if s.balance < cmd.amount then
        return ml.reject("insufficient funds", { balance = s.balance })
      end
      return { ml.event("Withdrawn", { amount = cmd.amount }) }
    end,
    Split = function(_, cmd)
      return { ml.event("Withdrawn", { amount = cmd.a }),
               ml.event("Withdrawn", { amount = cmd.b }) }
    end,
    Noop = function() end,
  },
}

describe("t.event", function()
  it("makes an event with optional data and meta", function()
    assert.same({ type = "A", data = { x = 1 }, meta = { m = 2 } },
      t.event("A", { x = 1 }, { m = 2 }))
    assert.same({ type = "A" }, t.event("A"))
  end)

  it("checks its arguments", function()
    assert.equal("t.event: type must be a non-empty string, got nil",
      failure(function() t.event() end))
    assert.equal("t.event: meta must be a table, got string",
      failure(function() t.event("A", {}, "x") end))
  end)
end)

describe("t.stream", function()
  it("places copies of events in a stream", function()
    local e = t.event("A", { x = 1 })
    local list = t.stream("account-9", { e, "B" })
    assert.same({ { type = "A", data = { x = 1 }, stream = "account-9" },
                  { type = "B", stream = "account-9" } }, list)
    assert.is_nil(e.stream)
  end)

  it("checks its arguments", function()
    assert.equal("t.stream: name must be a non-empty string, got 1",
      failure(function() t.stream(1, {}) end))
    assert.equal("t.stream: events must be a list, got nil", failure(function() t.stream("s") end))
    assert.equal("t.stream: event #2 must be a table (t.event(...)), got number",
      failure(function() t.stream("s", { "A", 2 }) end))
  end)
end)

describe("t.given", function()
  it("needs a definition", function()
    assert.equal("t.given: expected a definition (ml.reducer, ml.decider, ml.projection or "
      .. "ml.handler), got table", failure(function() t.given({ kind = "decider" }, {}) end))
  end)

  it("checks the events", function()
    assert.equal("t.given: expected a list of events, got string",
      failure(function() t.given(account, "Deposited") end))
    assert.equal("t.given: event #1 has no type (make events with t.event(type, data))",
      failure(function() t.given(account, { { data = {} } }) end))
    assert.equal("t.given: event #2 must be a table (t.event(...)), got boolean",
      failure(function() t.given(account, { "A", true }) end))
  end)
end)

describe("a decider scenario", function()
  local deposited = t.event("Deposited", { amount = 10 })

  it("checks the events of a command", function()
    t.given(account, { deposited, deposited })
     :when("Withdraw", { id = "1", amount = 15 })
     :emits(t.event("Withdrawn", { amount = 15 }))
  end)

  it("takes expected events as a list, as arguments, as {type, data} or as type names", function()
    local s = t.given(account, { deposited }):when("Split", { a = 1, b = 2 })
    s:emits({ t.event("Withdrawn", { amount = 1 }), t.event("Withdrawn", { amount = 2 }) })
    s:emits(t.event("Withdrawn", { amount = 1 }), t.event("Withdrawn", { amount = 2 }))
    s:emits({ { type = "Withdrawn", data = { amount = 1 } },
              { type = "Withdrawn", data = { amount = 2 } } })
    s:emits("Withdrawn", "Withdrawn")
    s:emits({ "Withdrawn", t.event("Withdrawn") })
  end)

  it("compares meta only when the expectation has some", function()
    local s = t.given(account):when("Deposit", { amount = 1, note = "hi" })
    s:emits(t.event("Deposited", { amount = 1 }))
    s:emits(t.event("Deposited", { amount = 1 }, { note = "hi" }))
    assert.equal('expected events:\n  Deposited {amount=1} meta={note="yo"}\nbut got:\n'
      .. '  Deposited {amount=1} meta={note="hi"}\nfirst difference at [1].meta.note: expected '
      .. '"yo", got "hi"', failure(function()
        s:emits(t.event("Deposited", { amount = 1 }, { note = "yo" }))
      end))
  end)

  it("expects no events with :emits() or :emits({})", function()
    t.given(account):when("Noop"):emits():emits({})
  end)

  it("checks a rejection, by exact reason, by pattern, or any", function()
    local s = t.given(account, { deposited }):when("Withdraw", { id = "1", amount = 20 })
    s:rejects("insufficient funds")
    s:rejects("^insufficient")
    s:rejects("funds")
    s:rejects()
    s:rejects("insufficient funds", { balance = 10 })
    t.given(account):when("Withdraw", { amount = 0 }):rejects("amount must be > 0")
  end)

  it("checks the state after the command", function()
    t.given(account, { deposited })
     :when("Withdraw", { amount = 4 })
     :emits(t.event("Withdrawn", { amount = 4 }))
     :state({ balance = 6, versions = { 1, 2 } })
  end)

  it("checks the state before any command", function()
    t.given(account, { deposited, deposited }):state({ balance = 20, versions = { 1, 2 } })
    t.given(account):state({ balance = 0, versions = {} })
  end)

  it("leaves the state alone after a rejection", function()
    t.given(account, { deposited })
     :when("Withdraw", { amount = 40 })
     :rejects("insufficient funds")
     :state({ balance = 10, versions = { 1 } })
  end)

  it("runs commands one after the other on the same log", function()
    t.given(account, { deposited })
     :when("Withdraw", { amount = 6 }):emits(t.event("Withdrawn", { amount = 6 }))
     :when("Withdraw", { amount = 6 }):rejects("insufficient funds", { balance = 4 })
     :when("Deposit", { amount = 2 }):emits(t.event("Deposited", { amount = 2 }))
     :when("Withdraw", { amount = 6 }):emits("Withdrawn")
     :state({ balance = 0, versions = { 1, 2, 3, 4 } })
  end)

  it("puts given events in the command's stream unless they name one", function()
    local s = t.given(account, {
      deposited,
      t.stream("account-2", { t.event("Deposited", { amount = 100 }) }),
    })
    s:when("Withdraw", { id = "1", amount = 50 }):rejects("insufficient funds")
    s:when("Withdraw", { id = "2", amount = 50 }):emits("Withdrawn")
    s:state_of("account-1", { balance = 10, versions = { 1 } })
    s:state_of("account-2", { balance = 50, versions = { 1, 2 } })
  end)

  it("asks for :state_of when the given events are in several streams", function()
    local s = t.given(account, { t.stream("account-1", { deposited }),
                                 t.stream("account-2", { deposited }) })
    assert.equal('decider "account": the given events are in several streams (account-1, '
      .. 'account-2): use :state_of(stream, expected)', failure(function() s:state({}) end))
  end)

  describe("fails", function()
    it("with the rejection when events were expected", function()
      assert.equal('expected events:\n  Withdrawn {amount=20}\nbut got:\n'
        .. '  rejection "insufficient funds"', failure(function()
          t.given(account, { deposited })
           :when("Withdraw", { id = "1", amount = 20 })
           :emits(t.event("Withdrawn", { amount = 20 }))
        end))
    end)

    it("with the first difference when the data differs", function()
      assert.equal("expected events:\n  Withdrawn {amount=5}\nbut got:\n  Withdrawn {amount=4}\n"
        .. "first difference at [1].data.amount: expected 5, got 4", failure(function()
          t.given(account, { deposited }):when("Withdraw", { amount = 4 })
           :emits(t.event("Withdrawn", { amount = 5 }))
        end))
    end)

    it("when the types differ", function()
      assert.equal("expected events:\n  Deposited (any data)\nbut got:\n  Withdrawn {amount=4}\n"
        .. 'first difference at [1].type: expected "Deposited", got "Withdrawn"',
        failure(function()
          t.given(account, { deposited }):when("Withdraw", { amount = 4 }):emits("Deposited")
        end))
    end)

    it("when the number of events differs", function()
      assert.equal("expected events:\n  Withdrawn (any data)\nbut got:\n"
        .. "  Withdrawn {amount=1}\n  Withdrawn {amount=2}", failure(function()
          t.given(account):when("Split", { a = 1, b = 2 }):emits("Withdrawn")
        end))
      assert.equal("expected events:\n  Withdrawn (any data)\nbut got:\n  (no events)",
        failure(function() t.given(account):when("Noop"):emits("Withdrawn") end))
      assert.equal("expected events:\n  (no events)\nbut got:\n  Withdrawn {amount=1}\n"
        .. "  Withdrawn {amount=2}",
        failure(function() t.given(account):when("Split", { a = 1, b = 2 }):emits() end))
    end)

    it("with the events when a rejection was expected", function()
      assert.equal('expected rejection "insufficient funds"\nbut got:\n  Withdrawn {amount=5}',
        failure(function()
          t.given(account, { deposited }):when("Withdraw", { amount = 5 })
           :rejects("insufficient funds")
        end))
      assert.equal("expected a rejection\nbut got:\n  (no events)",
        failure(function() t.given(account):when("Noop"):rejects() end))
    end)

    it("with both reasons when the reason differs", function()
      assert.equal('expected rejection "^funds"\nbut got:\n  rejection "insufficient funds"',
        failure(function()
          t.given(account):when("Withdraw", { amount = 5 }):rejects("^funds")
        end))
      assert.equal('expected rejection "(("\nbut got:\n  rejection "insufficient funds"',
        failure(function()
          t.given(account):when("Withdraw", { amount = 5 }):rejects("((")
        end))
    end)

    it("with both details when they differ", function()
      assert.equal("expected rejection details:\n  {balance=1}\nbut got:\n  {balance=0}",
        failure(function()
          t.given(account):when("Withdraw", { amount = 5 }):rejects("insufficient funds",
            { balance = 1 })
        end))
    end)

    it("with the first difference when the state differs", function()
      assert.equal("expected state:\n  {balance=11, versions={1}}\nbut got:\n"
        .. "  {balance=10, versions={1}}\nfirst difference at .balance: expected 11, got 10",
        failure(function()
          t.given(account, { deposited }):state({ balance = 11, versions = { 1 } })
        end))
      assert.equal("expected state of account-1:\n  {}\nbut got:\n  {balance=10, versions={1}}\n"
        .. "first difference at .balance: expected nil, got 10",
        failure(function() t.given(account, { deposited }):state_of("account-1", {}) end))
    end)

    it("when :emits or :rejects come before :when", function()
      assert.equal('decider "account": call :when(command, args) before :emits',
        failure(function() t.given(account):emits() end))
      assert.equal('decider "account": call :when(command, args) before :rejects',
        failure(function() t.given(account):rejects("x") end))
    end)

    it("on an unknown command", function()
      assert.equal('decider "account": unknown command "Withdrw" (did you mean "Withdraw"?)',
        failure(function() t.given(account):when("Withdrw", {}) end))
    end)

    it("on args that are not a table", function()
      assert.equal(":when: args must be a table, got number",
        failure(function() t.given(account):when("Withdraw", 5) end))
    end)

    it("when the command targets a stream outside from", function()
      local d = ml.decider { name = "d", from = "account-*", on = {}, decide = { X = noop },
                             stream = function() return "order-1" end }
      assert.equal('decider "d": stream(cmd) returned "order-1", which is not in from (account-*)',
        failure(function() t.given(d):when("X") end))
    end)

    it("on methods of other kinds", function()
      assert.equal('decider "account": :after is for reducers, projections and handlers; a '
        .. "decider takes commands: use :when(command, args)",
        failure(function() t.given(account):after({}) end))
      assert.equal('decider "account": :query is for projections',
        failure(function() t.given(account):query("x") end))
      assert.equal('decider "account": :emitted is for handlers',
        failure(function() t.given(account):emitted() end))
      assert.equal('decider "account": :parked is for handlers',
        failure(function() t.given(account):parked() end))
    end)
  end)
end)

describe("the log of a scenario", function()
  it("gives events ids, streams, versions, positions and times", function()
    local seen = {}
    local r = ml.reducer { name = "r", from = "account-*",
                           on = { ["*"] = function(_, e) seen[#seen + 1] = e end } }
    t.given(r, { t.event("A", { x = 1 }, { m = 1 }), t.stream("account-2", { "B" }) })
     :after({ "C", { type = "D", id = "mine", time = 5, stream = "account-2" } })
    assert.same({
      { id = "test-1", stream = "account-1", type = "A", version = 1, position = 1,
        time = t.EPOCH, meta = { m = 1 }, data = { x = 1 } },
      { id = "test-2", stream = "account-2", type = "B", version = 1, position = 2,
        time = t.EPOCH + 1000, meta = {}, data = {} },
      { id = "test-3", stream = "account-1", type = "C", version = 2, position = 3,
        time = t.EPOCH + 2000, meta = {}, data = {} },
      { id = "mine", stream = "account-2", type = "D", version = 2, position = 4,
        time = 5, meta = {}, data = {} },
    }, seen)
  end)

  it("copies event data, so scripts cannot change the test's tables", function()
    local data = { list = {} }
    local r = ml.reducer { name = "r", from = "x", on = { A = function(_, e)
      e.data.list[1] = "changed"
    end } }
    t.given(r, { t.event("A", data) })
    assert.same({ list = {} }, data)
  end)

  it("replays a decider's stream from copies, so a state that keeps event data is safe", function()
    local d = ml.decider { name = "d", from = "x-*", stream = function() return "x-1" end,
                           on = {
                             Set = function(s, e) s.item = e.data end,
                             Bump = function(s) s.item.n = s.item.n + 1 end,
                           },
                           decide = { Bump = function() return { ml.event("Bump") } end } }
    t.given(d, { t.event("Set", { n = 1 }) })
     :when("Bump"):state({ item = { n = 2 } })
     :when("Bump"):state({ item = { n = 3 } })
     :state_of("x-1", { item = { n = 3 } })
  end)

  it("delivers only the events the definition's from takes", function()
    local r = ml.reducer { name = "r", from = "account-*", init = function() return 0 end,
                           on = { A = function(n) return n + 1 end } }
    t.given(r, { t.stream("order-1", { "A" }), "A", "B" }):state_of("account-1", 1):state(1)
  end)
end)

describe("a reducer scenario", function()
  local counter = ml.reducer { name = "counter", from = "c-*", init = function() return 0 end,
                               on = { Inc = function(n, e) return n + (e.data.by or 1) end } }

  it("checks the state of its one stream", function()
    t.given(counter, { "Inc", t.event("Inc", { by = 5 }) }):state(6):after({ "Inc" }):state(7)
    t.given(counter):state(0)
  end)

  it("checks the state of each stream", function()
    t.given(counter, { t.stream("c-1", { "Inc" }), t.stream("c-2", { "Inc", "Inc" }) })
     :state_of("c-1", 1):state_of("c-2", 2):state_of("c-3", 0)
  end)

  it("fails", function()
    assert.equal("expected state:\n  2\nbut got:\n  1",
      failure(function() t.given(counter, { "Inc" }):state(2) end))
    assert.equal('reducer "counter": the events are in several streams (c-1, c-2): use '
      .. ":state_of(stream, expected)", failure(function()
        t.given(counter, { t.stream("c-1", { "Inc" }), t.stream("c-2", { "Inc" }) }):state(1)
      end))
    assert.equal('reducer "counter": :when is for deciders',
      failure(function() t.given(counter):when("X") end))
    assert.equal(":state_of: stream must be a string, got nil",
      failure(function() t.given(counter):state_of() end))
  end)
end)

describe("a projection scenario", function()
  local balances = ml.projection {
    name = "balances",
    from = "account-*",
    init = function() return { accounts = {} } end,
    on = {
      Deposited = function(s, e)
        s.accounts[e.stream] = (s.accounts[e.stream] or 0) + e.data.amount
      end,
    },
    queries = {
      balance = function(s, stream) return s.accounts[stream] end,
      richest = function(s, n)
        local list = {}
        for k, v in pairs(s.accounts) do list[#list + 1] = { k, v } end
        table.sort(list, function(a, b) return a[2] > b[2] end)
        return { table.unpack(list, 1, n) }
      end,
    },
  }
  local events = {
    t.stream("account-1", { t.event("Deposited", { amount = 10 }) }),
    t.stream("account-2", { t.event("Deposited", { amount = 30 }) }),
  }

  it("answers queries after events", function()
    t.given(balances)
     :after(events)
     :query("balance", "account-1"):equals(10)
     :query("balance", "account-2"):equals(30)
     :query("balance", "account-3"):equals(nil)
     :query("richest", 1):equals({ { "account-2", 30 } })
     :after({ t.stream("account-1", { t.event("Deposited", { amount = 25 }) }) })
     :query("balance", "account-1"):equals(35)
  end)

  it("gives the raw answer", function()
    assert.equal(30, t.given(balances, events):query("balance", "account-2"):value())
  end)

  it("checks the whole state", function()
    t.given(balances, events):state({ accounts = { ["account-1"] = 10, ["account-2"] = 30 } })
  end)

  it("fails", function()
    assert.equal('query balance("account-1"):\nexpected:\n  11\nbut got:\n  10',
      failure(function() t.given(balances, events):query("balance", "account-1"):equals(11) end))
    assert.equal('query richest(2):\nexpected:\n  {{"account-2", 30}}\nbut got:\n'
      .. '  {{"account-2", 30}, {"account-1", 10}}\nfirst difference at [2]: expected nil, got '
      .. '{"account-1", 10}', failure(function()
        t.given(balances, events):query("richest", 2):equals({ { "account-2", 30 } })
      end))
    assert.equal('projection "balances": unknown query "balanse" (did you mean "balance"?)',
      failure(function() t.given(balances):query("balanse") end))
    assert.equal(":after: expected a list of events, got nil",
      failure(function() t.given(balances):after() end))
  end)

  it("works with partitions", function()
    local p = ml.projection { name = "per", from = "account-*", init = function() return 0 end,
                              partition = function(e) return e.stream end,
                              on = { Deposited = function(n, e) return n + e.data.amount end },
                              queries = { get = function(states, k) return states[k] end } }
    t.given(p, events)
     :state({ ["account-1"] = 10, ["account-2"] = 30 })
     :query("get", "account-2"):equals(30)
  end)
end)

describe("a handler scenario", function()
  local mailer = ml.handler {
    name = "mailer",
    from = "account-*",
    on = {
      Opened = function(e, ctx)
        ctx.emit("mail-" .. e.data.user, "MailQueued", { to = e.data.user })
      end,
      Broken = function() error("smtp down") end,
    },
  }

  it("checks what was emitted while handling the after events", function()
    t.given(mailer, { t.event("Opened", { user = "old" }) })
     :after({ t.event("Opened", { user = "ann" }), t.event("Other"),
              t.event("Opened", { user = "bob" }) })
     :emitted({ stream = "mail-ann", type = "MailQueued", data = { to = "ann" } },
              t.stream("mail-bob", { t.event("MailQueued", { to = "bob" }) }))
     :emitted("MailQueued", "MailQueued")
  end)

  it("stamps causation and correlation ids", function()
    t.given(mailer)
     :after({ { type = "Opened", id = "ev-1", data = { user = "ann" },
                meta = { correlation_id = "c" } } })
     :emitted({ type = "MailQueued", meta = { causation_id = "ev-1", correlation_id = "c" } })
  end)

  it("fails with streams shown", function()
    assert.equal("expected emitted events:\n  mail-bob: MailQueued (any data)\nbut got:\n"
      .. '  mail-ann: MailQueued {to="ann"}\nfirst difference at [1].stream: expected "mail-bob", '
      .. 'got "mail-ann"', failure(function()
        t.given(mailer):after({ t.event("Opened", { user = "ann" }) })
         :emitted({ stream = "mail-bob", type = "MailQueued" })
      end))
    assert.equal("expected emitted events:\n  MailQueued (any data)\nbut got:\n  (no events)",
      failure(function()
        t.given(mailer, { t.event("Opened", { user = "ann" }) }):emitted("MailQueued")
      end))
  end)

  it("stops at an error with on_error = \"stop\"", function()
    local msg = failure(function()
      t.given(mailer):after({ t.event("Broken"), t.event("Opened", { user = "x" }) })
    end)
    assert.matches('^handler "mailer" failed at account%-1: Broken {} %(position 1%) and stops '
      .. 'there %(on_error = "stop"%): .*smtp down$', msg)
  end)

  it("skips or parks with on_error = \"skip\" or \"park\"", function()
    local skip = ml.handler { name = "s", from = "account-*", on = mailer.on, on_error = "skip" }
    local park = ml.handler { name = "p", from = "account-*", on = mailer.on, on_error = "park" }
    local events = { t.event("Broken", { n = 1 }), t.event("Opened", { user = "x" }) }
    t.given(skip):after(events):emitted("MailQueued"):parked()
    t.given(park):after(events):emitted("MailQueued"):parked(t.event("Broken", { n = 1 }))
    assert.equal("expected parked events:\n  (no events)\nbut got:\n  Broken {n=1}",
      failure(function() t.given(park):after(events):parked() end))
  end)

  it("handles only events after position start", function()
    local late = ml.handler { name = "late", from = "account-*", start = 2, on = mailer.on }
    t.given(late)
     :after({ t.event("Opened", { user = "a" }), t.event("Opened", { user = "b" }),
              t.event("Opened", { user = "c" }) })
     :emitted(t.stream("mail-c", { t.event("MailQueued", { to = "c" }) }))
  end)

  it("fails on methods of other kinds", function()
    assert.equal('handler "mailer": :state is for reducers, deciders and projections (a handler '
      .. "keeps no state)", failure(function() t.given(mailer):state({}) end))
    assert.equal('handler "mailer": :state_of is for reducers and deciders',
      failure(function() t.given(mailer):state_of("x", {}) end))
  end)
end)
