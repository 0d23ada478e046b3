-- What the host calls on definitions: fold, replay, decide, target, query, partitions,
-- migrate, handle.

local ml = require "moonlog"
local fails_with = require "support.fails_with"

local function noop() end

local function ev(stream, type_, data, extra)
  local e = { id = "e-" .. type_, stream = stream, type = type_, version = 1, position = 1,
              time = 0, meta = {}, data = data or {} }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

describe("def:fold", function()
  it("lets on functions mutate the state", function()
    local r = ml.reducer { name = "r", from = "a-*", init = function() return { n = 0 } end,
                           on = { Inc = function(s, e) s.n = s.n + e.data.by end } }
    local s = r:initial()
    local s2 = r:fold(s, ev("a-1", "Inc", { by = 2 }))
    assert.equal(s, s2)
    assert.same({ n = 2 }, s2)
  end)

  it("uses a returned value as the new state", function()
    local r = ml.reducer { name = "r", from = "a-*", init = function() return 0 end,
                           on = { Inc = function(s, e) return s + e.data.by end } }
    assert.equal(5, r:fold(r:fold(r:initial(), ev("a-1", "Inc", { by = 2 })),
      ev("a-1", "Inc", { by = 3 })))
  end)

  it("leaves the state alone for a type it has no function for", function()
    local r = ml.reducer { name = "r", from = "a-*", on = { A = function() return "new" end } }
    local s = {}
    assert.equal(s, r:fold(s, ev("a-1", "B")))
  end)

  it("calls the catch-all \"*\" for types without their own function", function()
    local seen = {}
    local r = ml.reducer { name = "r", from = "a-*", on = {
      A = function() seen[#seen + 1] = "A" end,
      ["*"] = function(_, e) seen[#seen + 1] = "*" .. e.type end,
    } }
    r:replay({ ev("a-1", "A"), ev("a-1", "B") })
    assert.same({ "A", "*B" }, seen)
  end)

  it("replays a list of events from the initial state of their stream", function()
    local r = ml.reducer { name = "r", from = "a-*",
                           init = function(stream) return { stream = stream, n = 0 } end,
                           on = { A = function(s) s.n = s.n + 1 end } }
    assert.same({ stream = "a-1", n = 2 }, r:replay({ ev("a-1", "A"), ev("a-1", "A") }))
    assert.same({ n = 5 }, r:replay({ ev("a-1", "A") }, { n = 4 }))
  end)
end)

describe("decider", function()
  local account = ml.decider {
    name   = "account",
    from   = "account-*",
    stream = function(cmd) return "account-" .. cmd.id end,
    init   = function() return { balance = 0 } end,
    on     = {
      Deposited = function(s, e) s.balance = s.balance + e.data.amount end,
      Withdrawn = function(s, e) s.balance = s.balance - e.data.amount end,
    },
    decide = {
      Deposit  = function(_, cmd) return { ml.event("Deposited", { amount = cmd.amount }) } end,
      Withdraw = function(s, cmd)
        if s.balance < cmd.amount then
          return ml.reject("insufficient funds", { balance = s.balance })
        end
        return { ml.event("Withdrawn", { amount = cmd.amount }) }
      end,
      Single   = function() return ml.event("Pinged") end,
      Nothing  = function() end,
      Empty    = function() return {} end,
      Literal  = function() return { { type = "Raw", id = "my-id" } } end,
      Bad      = function() return "nope" end,
      BadList  = function() return { ml.event("A"), 42 } end,
      BadTable = function() return { foo = 1 } end,
      Nested   = function() return { ml.reject("x") } end,
    },
  }

  it("decides events", function()
    local events = account:decide({ balance = 30 }, "Withdraw", { id = "1", amount = 20 })
    assert.same({ { type = "Withdrawn", data = { amount = 20 }, meta = {} } }, events)
  end)

  it("decides a rejection", function()
    local r = account:decide({ balance = 10 }, "Withdraw", { id = "1", amount = 20 })
    assert.is_true(ml.is_rejection(r))
    assert.equal("insufficient funds", r.reason)
    assert.same({ balance = 10 }, r.details)
  end)

  it("normalises a single event, nil and literal tables", function()
    assert.same({ { type = "Pinged", data = {}, meta = {} } }, account:decide({}, "Single"))
    assert.same({}, account:decide({}, "Nothing"))
    assert.same({}, account:decide({}, "Empty"))
    assert.same({ { type = "Raw", data = {}, meta = {}, id = "my-id" } },
      account:decide({}, "Literal"))
  end)

  it("refuses what is neither events nor a rejection", function()
    fails_with('decider "account": decide.Bad must return a list of events (ml.event) or '
      .. 'ml.reject(reason), got string', function() account:decide({}, "Bad") end)
    fails_with('decider "account": decide.BadList returned an invalid event at [2]: expected an '
      .. 'event (ml.event(type, data)), got number', function() account:decide({}, "BadList") end)
    fails_with("decide.BadTable returned a table that is neither an event nor a list of events",
      function() account:decide({}, "BadTable") end)
    fails_with("decide.Nested returned an invalid event at [1]: expected an event, got a "
      .. "rejection (return ml.reject(...) on its own)",
      function() account:decide({}, "Nested") end)
  end)

  it("names an unknown command", function()
    fails_with('decider "account": unknown command "Withdrw" (did you mean "Withdraw"?)',
      function() account:decide({}, "Withdrw", {}) end)
    fails_with('unknown command nil', function() account:decide({}, nil, {}) end)
  end)

  it("finds the target stream of a command", function()
    assert.equal("account-7", account:target("Deposit", { id = "7" }))
  end)

  it("checks the target stream", function()
    local d = ml.decider { name = "d", from = "account-*", on = {},
                           stream = function(cmd) return cmd.s end, decide = { X = noop } }
    fails_with('decider "d": stream(cmd) must return a stream name (a non-empty string), got nil',
      function() d:target("X", {}) end)
    fails_with('decider "d": stream(cmd) returned "order-1", which is not in from (account-*)',
      function() d:target("X", { s = "order-1" }) end)
  end)

  it("executes a command against a stream's history", function()
    local history = { ev("account-1", "Deposited", { amount = 50 }) }
    local events, state = account:execute(history, "Withdraw", { id = "1", amount = 20 })
    assert.same({ balance = 50 }, state)
    assert.same({ { type = "Withdrawn", data = { amount = 20 }, meta = {} } }, events)
  end)

  it("passes the command name to stream", function()
    local d = ml.decider { name = "d", from = "*", on = {}, decide = { Open = noop },
                           stream = function(_, name) return "x-" .. name end }
    assert.equal("x-Open", d:target("Open"))
  end)
end)

describe("projection", function()
  -- the bank example's: balance per account, total, open accounts
  local src = os.getenv("MOONLOG_SOURCE_DIR") or "."
  local balances = dofile(src .. "/examples/bank/scripts/balances.lua")

  it("folds events into one state and answers queries", function()
    local s = balances:replay({ ev("account-1", "Deposited", { amount = 5 }),
                                ev("account-2", "Deposited", { amount = 7 }) })
    assert.equal(5, balances:query(s, "balance", "account-1"))
    assert.equal(12, balances:query(s, "total"))
    assert.is_nil(balances:query(s, "balance", "account-3"))
  end)

  it("names an unknown query", function()
    fails_with('projection "balances": unknown query "balanse" (did you mean "balance"?)',
      function() balances:query({}, "balanse") end)
  end)

  describe("partitioned", function()
    local per_category = ml.projection {
      name = "counts",
      from = "*",
      partition = function(e) return e.data.skip == nil and ml.category(e.stream) or nil end,
      init = function(key) return { key = key, n = 0 } end,
      on = { ["*"] = function(s) s.n = s.n + 1 end },
      queries = {
        count = function(states, key) return states[key] and states[key].n or 0 end,
        keys = function(states)
          local ks = {}
          for k in pairs(states) do ks[#ks + 1] = k end
          table.sort(ks)
          return ks
        end,
      },
    }

    it("keeps one state per key, made by init(key), and queries get them all", function()
      local s = per_category:replay({ ev("account-1", "A"), ev("account-2", "B"),
                                      ev("order-1", "C"), ev("order-1", "D", { skip = true }) })
      assert.same({ account = { key = "account", n = 2 }, order = { key = "order", n = 1 } }, s)
      assert.equal(2, per_category:query(s, "count", "account"))
      assert.equal(0, per_category:query(s, "count", "user"))
      assert.same({ "account", "order" }, per_category:query(s, "keys"))
    end)

    it("starts from an empty table of partitions", function()
      assert.same({}, per_category:initial())
    end)

    it("checks the key", function()
      local p = ml.projection { name = "p", from = "*", on = { A = noop },
                                partition = function(e) return e.data.key end }
      fails_with('projection "p": partition(e) must return a string or a number (or nil to leave '
        .. 'the event out), got table', function() p:fold({}, ev("x-1", "A", { key = {} })) end)
      fails_with("nan", function() p:fold({}, ev("x-1", "A", { key = 0 / 0 })) end)
      assert.same({ [3] = {} }, p:fold({}, ev("x-1", "A", { key = 3 })))
    end)

    it("lets on functions return a new partition state", function()
      local p = ml.projection { name = "p", from = "*", init = function() return 0 end,
                                partition = function(e) return e.stream end,
                                on = { A = function(n) return n + 1 end } }
      assert.same({ ["x-1"] = 2, ["x-2"] = 1 },
        p:replay({ ev("x-1", "A"), ev("x-2", "A"), ev("x-1", "A") }))
    end)
  end)

  it("migrates a kept state", function()
    local p = ml.projection { name = "p", from = "*", on = { A = noop }, reload = "keep",
                              migrate = function(old) return { v = 2, n = old.n } end }
    assert.same({ v = 2, n = 3 }, p:migrate_state({ n = 3 }))
    local q = ml.projection { name = "q", from = "*", on = { A = noop }, reload = "keep" }
    local old = { n = 1 }
    assert.equal(old, q:migrate_state(old))
  end)
end)

describe("handler", function()
  local mailer = ml.handler {
    name = "mailer",
    from = "account-*",
    on = {
      Opened = function(e, ctx)
        ctx.emit("mail-" .. e.data.user, "MailQueued", { to = e.data.user }, { template = "hi" })
        ctx.emit("audit", "Seen")
      end,
      Closed = function(e, ctx) ctx.emit(ctx.prefix .. e.stream, "Archived", { by = ctx.name }) end,
      Bad = function(e, ctx) ctx.emit(e.data.stream, e.data.type, e.data.data, e.data.meta) end,
    },
  }

  it("collects emitted events with causation and correlation ids", function()
    local out = mailer:handle(ev("account-1", "Opened", { user = "ann" }, { id = "ev-1" }))
    assert.same({
      { stream = "mail-ann", type = "MailQueued", data = { to = "ann" },
        meta = { template = "hi", causation_id = "ev-1", correlation_id = "ev-1" } },
      { stream = "audit", type = "Seen", data = {},
        meta = { causation_id = "ev-1", correlation_id = "ev-1" } },
    }, out)
  end)

  it("keeps the correlation id of the triggering event", function()
    local out = mailer:handle(ev("account-1", "Opened", { user = "ann" },
      { id = "ev-2", meta = { correlation_id = "req-9" } }))
    assert.equal("ev-2", out[1].meta.causation_id)
    assert.equal("req-9", out[1].meta.correlation_id)
  end)

  it("does not change the meta table it was given", function()
    local meta = { template = "x" }
    local h = ml.handler { name = "h", from = "*", on = { A = function(_, ctx)
      ctx.emit("s-1", "B", {}, meta)
    end } }
    h:handle(ev("x-1", "A"))
    assert.same({ template = "x" }, meta)
  end)

  it("returns nothing for a type it does not handle", function()
    assert.same({}, mailer:handle(ev("account-1", "Other")))
  end)

  it("gives the handler the host's context fields and its name", function()
    local out = mailer:handle(ev("account-1", "Closed"), { prefix = "archive/" })
    assert.same({ stream = "archive/account-1", type = "Archived", data = { by = "mailer" },
                  meta = { causation_id = "e-Closed", correlation_id = "e-Closed" } }, out[1])
  end)

  it("checks what is emitted", function()
    local function bad(data)
      return function() mailer:handle(ev("account-1", "Bad", data)) end
    end
    fails_with('handler "mailer": ctx.emit: stream must be a non-empty string, got nil',
      bad({ type = "X" }))
    fails_with('handler "mailer": ctx.emit: type must be a non-empty string, got 5',
      bad({ stream = "s", type = 5 }))
    fails_with("ctx.emit: meta must be a table, got string",
      bad({ stream = "s", type = "X", meta = "m" }))
    local err = fails_with("ctx.emit: stream must be", bad({ type = "X" }))
    assert.matches("behaviour_spec%.lua:%d+:", err)
  end)

  it("has no fold and no state", function()
    assert.is_nil(mailer.fold)
    assert.is_nil(mailer.initial)
  end)
end)
