-- The four constructors: normalised definitions, defaults, and every validation error.

local ml = require "moonlog"
local fails_with = require "support.fails_with"

local function noop() end

-- A valid definition table of `kind`, with `changes` applied (`false` removes a key).
local function base(kind, changes)
  local t
  if kind == "reducer" then
    t = { name = "r", from = "account-*", on = { Deposited = noop } }
  elseif kind == "decider" then
    t = { name = "d", from = "account-*", on = { Deposited = noop },
          stream = function(cmd) return "account-" .. cmd.id end, decide = { Deposit = noop } }
  elseif kind == "projection" then
    t = { name = "p", from = "account-*", on = { Deposited = noop } }
  else
    t = { name = "h", from = "account-*", on = { Deposited = noop } }
  end
  for k, v in pairs(changes or {}) do
    if v == false then t[k] = nil else t[k] = v end
  end
  return t
end

local KINDS = { "reducer", "decider", "projection", "handler" }

describe("ml.reducer", function()
  it("returns a definition with normalised fields and defaults", function()
    local on = { Deposited = noop, Withdrawn = noop }
    local r = ml.reducer { name = "account", from = "account-*", on = on, description = "x" }
    assert.equal("reducer", r.kind)
    assert.equal("account", r.name)
    assert.equal("x", r.description)
    assert.same({ streams = { "account-*" }, types = { "Deposited", "Withdrawn" } }, r.from)
    assert.equal(on, r.on)
    assert.equal("rebuild", r.reload)
    assert.is_nil(r.snapshot_every)
    assert.same({}, r:initial())
    assert.equal('reducer "account"', tostring(r))
    assert.is_true(ml.is_definition(r))
  end)

  it("keeps reload, snapshot_every and init", function()
    local r = ml.reducer { name = "n", from = "x", on = { A = noop }, reload = "keep",
                           snapshot_every = 100, init = function() return 0 end }
    assert.equal("keep", r.reload)
    assert.equal(100, r.snapshot_every)
    assert.equal(0, r:initial())
  end)

  it("accepts a table as init and copies it for every state", function()
    local r = ml.reducer { name = "n", from = "x", on = { A = noop }, init = { n = 0, l = {} } }
    local a, b = r:initial(), r:initial()
    assert.same({ n = 0, l = {} }, a)
    assert.are_not.equal(a, b)
    assert.are_not.equal(a.l, b.l)
  end)

  it("passes the stream to init", function()
    local r = ml.reducer { name = "n", from = "x", on = { A = noop },
                           init = function(stream) return { id = stream } end }
    assert.same({ id = "x-1" }, r:initial("x-1"))
  end)
end)

describe("ml.decider", function()
  it("returns a definition with commands, stream and retries", function()
    local stream = function(cmd) return "account-" .. cmd.id end
    local w = function() end
    local d = ml.decider { name = "account", from = "account-*", stream = stream,
                           on = { Deposited = noop }, decide = { Withdraw = w } }
    assert.equal("decider", d.kind)
    assert.equal(stream, d.stream)
    assert.same({ Withdraw = w }, d.commands)
    assert.equal(3, d.retries)
    assert.same({ streams = { "account-*" }, types = { "Deposited" } }, d.from)
    assert.same({}, d:initial())
  end)

  it("allows an empty on (a decider with no state)", function()
    local d = ml.decider(base("decider", { on = {} }))
    assert.same({}, d.from.types)
    assert.is_false(d:matches("account-1", "Deposited"))
  end)

  it("keeps retries", function()
    assert.equal(0, ml.decider(base("decider", { retries = 0 })).retries)
  end)
end)

describe("ml.projection", function()
  it("returns a definition with queries, partition, reload and migrate", function()
    local q, part, mig = noop, function(e) return e.stream end, function(o) return o end
    local p = ml.projection { name = "balances", from = "account-*", on = { Deposited = noop },
                              queries = { balance = q }, partition = part, reload = "keep",
                              migrate = mig, snapshot_every = 10 }
    assert.equal("projection", p.kind)
    assert.same({ balance = q }, p.queries)
    assert.equal(part, p.partition)
    assert.equal("keep", p.reload)
    assert.equal(mig, p.migrate)
    assert.equal(10, p.snapshot_every)
  end)

  it("defaults queries to none and reload to rebuild", function()
    local p = ml.projection(base("projection"))
    assert.same({}, p.queries)
    assert.equal("rebuild", p.reload)
    assert.is_nil(p.partition)
    assert.is_nil(p.migrate)
  end)
end)

describe("ml.handler", function()
  it("returns a definition with on_error and start defaults", function()
    local h = ml.handler(base("handler"))
    assert.equal("handler", h.kind)
    assert.equal("stop", h.on_error)
    assert.equal("beginning", h.start)
    assert.is_nil(h.init)
    assert.is_nil(h.fold)
  end)

  it("keeps on_error and start", function()
    assert.equal("park", ml.handler(base("handler", { on_error = "park" })).on_error)
    assert.equal("skip", ml.handler(base("handler", { on_error = "skip" })).on_error)
    assert.equal("end", ml.handler(base("handler", { start = "end" })).start)
    assert.equal(0, ml.handler(base("handler", { start = 0 })).start)
    assert.equal(42, ml.handler(base("handler", { start = 42 })).start)
  end)
end)

describe("from", function()
  local function from(f, on)
    return ml.projection { name = "p", from = f, on = on or { B = noop, A = noop } }.from
  end

  it("takes a pattern string and derives the types from on (sorted)", function()
    assert.same({ streams = { "account-*" }, types = { "A", "B" } }, from("account-*"))
  end)

  it("takes a list of patterns, without duplicates", function()
    assert.same({ streams = { "a-*", "b", "c-1" }, types = { "A", "B" } },
      from({ "a-*", "b", "c-1", "b" }))
  end)

  it("takes { streams = ..., types = ... }", function()
    assert.same({ streams = { "a-*" }, types = { "B", "A" } },
      from({ streams = "a-*", types = { "B", "A", "B" } }))
    assert.same({ streams = { "a-*", "b-*" }, types = { "A", "B" } },
      from({ streams = { "a-*", "b-*" } }))
  end)

  it("has no types (every type) when on has a catch-all \"*\"", function()
    local f = from("*", { ["*"] = noop, A = noop })
    assert.same({ streams = { "*" } }, f)
    assert.is_nil(f.types)
  end)

  it("keeps explicit types with a catch-all", function()
    assert.same({ streams = { "*" }, types = { "A", "Z" } },
      from({ streams = "*", types = { "A", "Z" } }, { ["*"] = noop, A = noop }))
  end)
end)

describe("validation", function()
  it("needs a table", function()
    fails_with("ml.projection expects a definition table (ml.projection { name = ..., ... }), "
      .. "got string", function() ml.projection("balances") end)
    fails_with("ml.handler expects a definition table", function() ml.handler() end)
  end)

  it("raises at the script's line", function()
    local err = fails_with("unknown key", function() ml.reducer(base("reducer", { x = 1 })) end)
    assert.matches("^[^:]*dsl_spec%.lua:%d+: reducer \"r\": unknown key", err)
  end)

  it("names unknown keys and suggests the nearest one", function()
    fails_with('projection "balances": unknown key "quries" (did you mean "queries"?)', function()
      ml.projection { name = "balances", from = "a-*", on = { A = noop }, quries = {} }
    end)
    fails_with('reducer "r": unknown key "snapshot_evry" (did you mean "snapshot_every"?)',
      function() ml.reducer(base("reducer", { snapshot_evry = 1 })) end)
    fails_with('decider "d": unknown key "Decide" (did you mean "decide"?)',
      function() ml.decider(base("decider", { Decide = {} })) end)
    fails_with('handler "h": unknown key "onerror" (did you mean "on_error"?)',
      function() ml.handler(base("handler", { onerror = "skip" })) end)
    fails_with('handler "h": unknown key "strat" (did you mean "start"?)',
      function() ml.handler(base("handler", { strat = "end" })) end)
    fails_with('reducer "r": unknown key "intit" (did you mean "init"?)',
      function() ml.reducer(base("reducer", { intit = noop })) end)
  end)

  it("names unknown keys without a suggestion when nothing is near", function()
    local err = fails_with('reducer "r": unknown key "zzzzzz"',
      function() ml.reducer(base("reducer", { zzzzzz = 1 })) end)
    assert.is_nil(err:find("did you mean", 1, true))
  end)

  it("refuses keys of another kind", function()
    fails_with('reducer "r": unknown key "queries"',
      function() ml.reducer(base("reducer", { queries = {} })) end)
    fails_with('handler "h": unknown key "init"',
      function() ml.handler(base("handler", { init = noop })) end)
    fails_with('projection "p": unknown key "decide"',
      function() ml.projection(base("projection", { decide = {} })) end)
    fails_with('decider "d": unknown key "reload"',
      function() ml.decider(base("decider", { reload = "keep" })) end)
  end)

  it("uses <unnamed> when the name is missing", function()
    fails_with('handler "<unnamed>": unknown key "nmae" (did you mean "name"?)',
      function() ml.handler { nmae = "x", from = "a", on = { A = noop } } end)
  end)

  it("refuses positional values", function()
    fails_with('reducer "r": unexpected value at [1]: a definition takes named keys',
      function() ml.reducer { "oops", name = "r", from = "a", on = { A = noop } } end)
  end)

  describe("name", function()
    for _, kind in ipairs(KINDS) do
      it("is required for a " .. kind, function()
        fails_with(kind .. ': missing "name" (a string)',
          function() ml[kind](base(kind, { name = false })) end)
      end)
    end

    it("must be a string", function()
      fails_with("handler: name must be a string, got number",
        function() ml.handler(base("handler", { name = 42 })) end)
    end)

    it("must be made of letters, digits, _ - and .", function()
      fails_with('handler "my handler": name must start with a letter or "_"',
        function() ml.handler(base("handler", { name = "my handler" })) end)
      fails_with('got "9lives"', function() ml.handler(base("handler", { name = "9lives" })) end)
      assert.equal("a_b-c.d", ml.handler(base("handler", { name = "a_b-c.d" })).name)
    end)
  end)

  it("wants description to be a string", function()
    fails_with('reducer "r": description must be a string, got table',
      function() ml.reducer(base("reducer", { description = {} })) end)
  end)

  describe("on", function()
    for _, kind in ipairs(KINDS) do
      it("is required for a " .. kind, function()
        fails_with(kind .. ' "' .. base(kind).name
          .. '": missing "on" (a table mapping event types to functions)',
          function() ml[kind](base(kind, { on = false })) end)
      end)
    end

    it("must be a table", function()
      fails_with('projection "p": on must be a table mapping event types to functions, got string',
        function() ml.projection(base("projection", { on = "Deposited" })) end)
    end)

    it("holds functions", function()
      fails_with('decider "account": on.Deposited must be a function, got string', function()
        ml.decider(base("decider", { name = "account", on = { Deposited = "x" } }))
      end)
      fails_with('handler "h": on["Money moved"] must be a function, got table',
        function() ml.handler(base("handler", { on = { ["Money moved"] = {} } })) end)
    end)

    it("is keyed by event type", function()
      fails_with('reducer "r": on must be keyed by event type name (a non-empty string), got '
        .. 'the key 1', function() ml.reducer(base("reducer", { on = { noop } })) end)
      fails_with('got the key ""',
        function() ml.reducer(base("reducer", { on = { [""] = noop } })) end)
    end)

    for _, kind in ipairs({ "reducer", "projection", "handler" }) do
      it("handles at least one type in a " .. kind, function()
        fails_with("on must handle at least one event type",
          function() ml[kind](base(kind, { on = {} })) end)
      end)
    end
  end)

  describe("from", function()
    for _, kind in ipairs(KINDS) do
      it("is required for a " .. kind, function()
        fails_with('missing "from" (a stream pattern such as "account-*", a list of patterns, '
          .. 'or { streams = ..., types = {...} })',
          function() ml[kind](base(kind, { from = false })) end)
      end)
    end

    it("is a pattern, a list or a filter table", function()
      fails_with('reducer "r": from must be a stream pattern such as "account-*", a list of '
        .. 'patterns, or { streams = ..., types = {...} }, got number',
        function() ml.reducer(base("reducer", { from = 42 })) end)
    end)

    it("names at least one pattern", function()
      fails_with('reducer "r": from must name at least one stream pattern',
        function() ml.reducer(base("reducer", { from = {} })) end)
      fails_with("from.streams must name at least one stream pattern",
        function() ml.reducer(base("reducer", { from = { streams = {} } })) end)
    end)

    it("checks each pattern", function()
      fails_with('reducer "r": from: invalid stream pattern "acc*ount": expected "*" only at '
        .. 'the end',
        function() ml.reducer(base("reducer", { from = "acc*ount" })) end)
      fails_with('from: invalid stream pattern "": expected a non-empty string',
        function() ml.reducer(base("reducer", { from = "" })) end)
      fails_with('from[2]: invalid stream pattern number: expected a non-empty string',
        function() ml.reducer(base("reducer", { from = { "a-*", 7 } })) end)
      fails_with('from.streams[1]: invalid stream pattern "*x"',
        function() ml.reducer(base("reducer", { from = { streams = { "*x" } } })) end)
    end)

    it("names unknown keys of a filter table", function()
      fails_with('handler "h": from: unknown key "stream" (did you mean "streams"?)',
        function() ml.handler(base("handler", { from = { stream = "a-*" } })) end)
      fails_with('from: unknown key "typs" (did you mean "types"?)',
        function() ml.handler(base("handler", { from = { streams = "a-*", typs = { "A" } } })) end)
    end)

    it("does not mix a list with keys", function()
      fails_with("from: use either a list of patterns or { streams = ..., types = {...} }, "
        .. "not both",
        function() ml.handler(base("handler", { from = { "a-*", types = { "Deposited" } } })) end)
    end)

    it("needs streams in a filter table", function()
      fails_with('from: missing "streams" (a pattern or a list of patterns)',
        function() ml.handler(base("handler", { from = { types = { "Deposited" } } })) end)
    end)

    it("checks types", function()
      fails_with("from.types must be a non-empty list of event types, got an empty table",
        function() ml.handler(base("handler", { from = { streams = "*", types = {} } })) end)
      fails_with("from.types must be a non-empty list of event types, got string",
        function() ml.handler(base("handler", { from = { streams = "*", types = "A" } })) end)
      fails_with("from.types[2] must be an event type (a non-empty string), got boolean",
        function() ml.handler(base("handler", { from = { streams = "*", types = { "A", true } } }))
        end)
    end)

    it("refuses an on entry that the types filter never lets through", function()
      fails_with('handler "h": on.Deposited never runs: "Deposited" is not in from.types',
        function() ml.handler(base("handler", { from = { streams = "*", types = { "Other" } } }))
        end)
      fails_with('on["Money moved"] never runs: "Money moved" is not in from.types',
        function()
          ml.handler(base("handler", { from = { streams = "*", types = { "Deposited" } },
                                       on = { Deposited = noop, ["Money moved"] = noop } }))
        end)
    end)
  end)

  describe("init", function()
    it("is a function or a table", function()
      fails_with('reducer "r": init must be a function returning the initial state (or a table '
        .. 'to copy), got string', function() ml.reducer(base("reducer", { init = "x" })) end)
    end)

    it("must not return nil", function()
      local r = ml.reducer(base("reducer", { init = noop }))
      fails_with('reducer "r": init returned nil (it must return the initial state)',
        function() r:initial() end)
      local p = ml.projection(base("projection", { init = noop }))
      fails_with('projection "p": init returned nil', function() p:initial() end)
    end)
  end)

  it("checks reload", function()
    fails_with('reducer "r": reload must be "rebuild" or "keep", got "rebiuld" (did you mean '
      .. '"rebuild"?)', function() ml.reducer(base("reducer", { reload = "rebiuld" })) end)
    fails_with('projection "p": reload must be "rebuild" or "keep", got true',
      function() ml.projection(base("projection", { reload = true })) end)
  end)

  it("checks snapshot_every", function()
    fails_with('reducer "r": snapshot_every must be an integer >= 1, got 0',
      function() ml.reducer(base("reducer", { snapshot_every = 0 })) end)
    fails_with("snapshot_every must be an integer >= 1, got 1.5",
      function() ml.projection(base("projection", { snapshot_every = 1.5 })) end)
  end)

  describe("decider", function()
    it("needs stream", function()
      fails_with('decider "d": missing "stream" (a function(cmd) returning the stream a command '
        .. 'targets)', function() ml.decider(base("decider", { stream = false })) end)
      fails_with('decider "d": stream must be a function(cmd) returning the stream a command '
        .. 'targets, got string', function() ml.decider(base("decider", { stream = "a-1" })) end)
    end)

    it("needs decide", function()
      fails_with('decider "d": missing "decide" (a table mapping command names to '
        .. 'functions(state, cmd))', function() ml.decider(base("decider", { decide = false })) end)
      fails_with('decider "d": decide must be a table mapping command names to '
        .. 'functions(state, cmd), got function',
        function() ml.decider(base("decider", { decide = noop })) end)
      fails_with('decider "d": decide must handle at least one command',
        function() ml.decider(base("decider", { decide = {} })) end)
      fails_with('decider "d": decide.Withdraw must be a function, got boolean',
        function() ml.decider(base("decider", { decide = { Withdraw = true } })) end)
      fails_with("decide must be keyed by command name (a non-empty string), got the key 1",
        function() ml.decider(base("decider", { decide = { noop } })) end)
    end)

    it("checks retries", function()
      fails_with('decider "d": retries must be an integer >= 0, got -1',
        function() ml.decider(base("decider", { retries = -1 })) end)
      fails_with('retries must be an integer >= 0, got "3"',
        function() ml.decider(base("decider", { retries = "3" })) end)
    end)
  end)

  describe("projection", function()
    it("checks queries", function()
      fails_with('projection "p": queries must be a table mapping query names to '
        .. 'functions(state, ...), got function',
        function() ml.projection(base("projection", { queries = noop })) end)
      fails_with('projection "p": queries.balance must be a function, got number',
        function() ml.projection(base("projection", { queries = { balance = 1 } })) end)
    end)

    it("checks partition", function()
      fails_with('projection "p": partition must be a function(e) returning the partition key, '
        .. 'got string', function() ml.projection(base("projection", { partition = "stream" })) end)
    end)

    it("checks migrate, which only goes with reload = \"keep\"", function()
      fails_with('projection "p": migrate must be a function(old_state) returning the new state, '
        .. 'got table', function()
          ml.projection(base("projection", { reload = "keep", migrate = {} }))
        end)
      fails_with('projection "p": migrate is only used with reload = "keep" (reload is "rebuild")',
        function() ml.projection(base("projection", { migrate = noop })) end)
    end)
  end)

  describe("handler", function()
    it("checks on_error", function()
      fails_with('handler "h": on_error must be "stop" or "skip" or "park", got "skp" (did you '
        .. 'mean "skip"?)', function() ml.handler(base("handler", { on_error = "skp" })) end)
    end)

    it("checks start", function()
      fails_with('handler "h": start must be "beginning", "end" or a position (an integer >= 0), '
        .. 'got "begining" (did you mean "beginning"?)',
        function() ml.handler(base("handler", { start = "begining" })) end)
      fails_with("start must be \"beginning\", \"end\" or a position (an integer >= 0), got -1",
        function() ml.handler(base("handler", { start = -1 })) end)
      fails_with("got 1.5", function() ml.handler(base("handler", { start = 1.5 })) end)
    end)
  end)
end)

describe("ml.event", function()
  it("makes an event with data and meta defaulting to {}", function()
    assert.same({ type = "Deposited", data = { amount = 10 }, meta = {} },
      ml.event("Deposited", { amount = 10 }))
    assert.same({ type = "Opened", data = {}, meta = { user = "u" } },
      ml.event("Opened", nil, { user = "u" }))
    assert.same({ type = "Counted", data = 3, meta = {} }, ml.event("Counted", 3))
  end)

  it("checks its arguments", function()
    fails_with("ml.event: type must be a non-empty string, got nil", function() ml.event() end)
    fails_with('ml.event: type must be a non-empty string, got ""', function() ml.event("") end)
    fails_with("ml.event: data must be a table, string, number or boolean, got function",
      function() ml.event("A", noop) end)
    fails_with("ml.event: meta must be a table, got string",
      function() ml.event("A", {}, "m") end)
  end)
end)

describe("ml.reject", function()
  it("makes a rejection", function()
    local r = ml.reject("insufficient funds", { balance = 5 })
    assert.is_true(ml.is_rejection(r))
    assert.is_true(r.rejected)
    assert.equal("insufficient funds", r.reason)
    assert.same({ balance = 5 }, r.details)
    assert.equal('rejection "insufficient funds"', tostring(r))
  end)

  it("is told apart from look-alike tables", function()
    assert.is_false(ml.is_rejection({ rejected = true, reason = "x" }))
    assert.is_false(ml.is_rejection(nil))
    assert.is_false(ml.is_rejection("x"))
  end)

  it("needs a reason", function()
    fails_with("ml.reject: reason must be a non-empty string, got nil", function() ml.reject() end)
    fails_with("ml.reject: reason must be a non-empty string, got 3", function() ml.reject(3) end)
  end)
end)

describe("ml.is_definition", function()
  it("knows definitions from other tables", function()
    for _, kind in ipairs(KINDS) do
      assert.is_true(ml.is_definition(ml[kind](base(kind))))
    end
    assert.is_false(ml.is_definition({ kind = "reducer" }))
    assert.is_false(ml.is_definition(setmetatable({}, { __name = "moonlog.reducer" })))
    assert.is_false(ml.is_definition("reducer"))
  end)
end)
