-- moonlog.pretty: the one-line printer, deep equality and the first difference.

local pretty = require "moonlog.pretty"
local ml = require "moonlog"

describe("pretty.format", function()
  local cases = {
    { 1, "1" },
    { 1.5, "1.5" },
    { 2.0, "2.0" },
    { "a\"b\nc", '"a\\"b\\nc"' },
    { true, "true" },
    { nil, "nil" },
    { {}, "{}" },
    { { 1, 2, "x" }, '{1, 2, "x"}' },
    { { b = 2, a = 1 }, "{a=1, b=2}" },
    { { amount = 20 }, "{amount=20}" },
    { { ["x-y"] = 1, ["end"] = 2, [10] = 3, [true] = 4 },
      '{[10]=3, ["end"]=2, ["x-y"]=1, [true]=4}' },
    { { 1, 2, n = 2 }, "{1, 2, n=2}" },
    { { [1] = "a", [3] = "c" }, '{"a", [3]="c"}' },
    { { a = { b = { c = {} } } }, "{a={b={c={}}}}" },
  }
  for _, c in ipairs(cases) do
    it("writes " .. c[2], function()
      assert.equal(c[2], pretty.format(c[1]))
    end)
  end

  it("marks cycles", function()
    local t = { name = "x" }
    t.self = t
    assert.equal('{name="x", self=<cycle>}', pretty.format(t))
  end)

  it("writes a table seen twice (not a cycle) in full", function()
    local shared = { 1 }
    assert.equal("{a={1}, b={1}}", pretty.format({ a = shared, b = shared }))
  end)

  it("writes functions by type", function()
    assert.matches("^{f=function: ", pretty.format({ f = print }))
  end)
end)

describe("pretty.event", function()
  it("writes type and data", function()
    assert.equal("Withdrawn {amount=20}", pretty.event(ml.event("Withdrawn", { amount = 20 })))
  end)

  it("writes a missing data as any data", function()
    assert.equal("Withdrawn (any data)", pretty.event({ type = "Withdrawn" }))
  end)

  it("adds the stream and the meta when asked", function()
    local e = { stream = "s-1", type = "A", data = {}, meta = { k = 1 } }
    assert.equal("s-1: A {} meta={k=1}", pretty.event(e, true, true))
    assert.equal("A {}", pretty.event(e))
  end)

  it("writes a rejection", function()
    assert.equal('rejection "no"', pretty.event(ml.reject("no")))
  end)

  it("writes lists of events", function()
    assert.equal("  (no events)", pretty.events({}))
    assert.equal("  A {}\n  B {x=1}",
      pretty.events({ { type = "A", data = {} }, { type = "B", data = { x = 1 } } }))
  end)
end)

describe("pretty.equal", function()
  it("compares deeply", function()
    assert.is_true(pretty.equal({ a = { 1, 2 } }, { a = { 1, 2 } }))
    assert.is_false(pretty.equal({ a = { 1, 2 } }, { a = { 1, 2, 3 } }))
    assert.is_false(pretty.equal({ a = 1 }, { a = 1, b = 2 }))
    assert.is_false(pretty.equal({ a = 1, b = 2 }, { a = 1 }))
    assert.is_true(pretty.equal(1, 1.0))
    assert.is_false(pretty.equal("1", 1))
    assert.is_true(pretty.equal(nil, nil))
  end)
end)

describe("pretty.diff", function()
  it("finds the path of the first difference", function()
    assert.same({ "[1].data.amount", 20, 10 },
      { pretty.diff({ { data = { amount = 20 } } }, { { data = { amount = 10 } } }) })
    assert.same({ ".b", nil, 2 }, { pretty.diff({ a = 1 }, { a = 1, b = 2 }) })
    assert.same({ '["x-y"]', 1, 2 }, { pretty.diff({ ["x-y"] = 1 }, { ["x-y"] = 2 }) })
    assert.is_nil(pretty.diff({ a = 1 }, { a = 1 }))
  end)

  it("writes the difference, unless it is the whole value", function()
    assert.equal("first difference at .a: expected 1, got 2",
      pretty.difference({ a = 1 }, { a = 2 }))
    assert.is_nil(pretty.difference(1, 2))
    assert.is_nil(pretty.difference({}, {}))
  end)
end)
