-- Stream patterns, categories and def:matches.

local ml = require "moonlog"
local filter = require "moonlog.filter"

local function noop() end

describe("stream patterns", function()
  local data = require "data.stream_patterns"
  local c_match = require("moonlog.core").script.pattern_match -- the C rules (runtime/route/pattern.c)
  for _, c in ipairs(data.matches) do
    local pattern, stream, want = c[1], c[2], c[3]
    it(string.format("%q %s %q", pattern, want and "takes" or "does not take", stream), function()
      assert.equal(want, ml.matches(pattern, stream))
      assert.equal(want, c_match(pattern, stream), "the C rules")
    end)
  end
  for _, c in ipairs(data.invalid) do
    it(string.format("refuses %q", c[1]), function()
      assert.is_false((pcall(ml.matches, c[1], "a")))
      assert.is_false(c_match(c[1], "a"))
    end)
  end

  it("refuses invalid patterns", function()
    local ok, err = pcall(ml.matches, "a*b", "a")
    assert.is_false(ok)
    assert.matches('invalid stream pattern "a*b": expected "*" only at the end', err, 1, true)
    ok, err = pcall(ml.matches, "", "a")
    assert.is_false(ok)
    assert.matches("expected a non-empty string", err, 1, true)
  end)
end)

describe("ml.category", function()
  it("is the part before the first dash", function()
    assert.equal("account", ml.category("account-42"))
    assert.equal("account", ml.category("account-42-x"))
    assert.equal("account", ml.category("account"))
    assert.equal("$parked", ml.category("$parked-mailer"))
  end)
end)

describe("filter.example_stream", function()
  it("gives a stream the filter takes", function()
    for _, f in ipairs({ "account-*", "acc*", "account", "account-7", "*", "$all" }) do
      local def = ml.reducer { name = "r", from = f, on = { A = noop } }
      local s = filter.example_stream(def.from)
      assert.is_true(def:matches(s), f .. " -> " .. s)
    end
  end)
end)

describe("def:matches", function()
  it("checks the stream against every pattern", function()
    local r = ml.reducer { name = "r", from = { "account-*", "user" }, on = { A = noop } }
    assert.is_true(r:matches("account-1"))
    assert.is_true(r:matches("user-2"))
    assert.is_false(r:matches("order-1"))
  end)

  it("checks the type against the types derived from on", function()
    local r = ml.reducer { name = "r", from = "account-*", on = { A = noop, B = noop } }
    assert.is_true(r:matches("account-1", "A"))
    assert.is_true(r:matches("account-1", "B"))
    assert.is_false(r:matches("account-1", "C"))
    assert.is_false(r:matches("order-1", "A"))
    assert.is_true(r:handles("A"))
    assert.is_false(r:handles("C"))
  end)

  it("checks the type against explicit types", function()
    local h = ml.handler { name = "h", from = { streams = "*", types = { "A", "C" } },
                           on = { ["*"] = noop } }
    assert.is_true(h:matches("x-1", "A"))
    assert.is_true(h:matches("x-1", "C"))
    assert.is_false(h:matches("x-1", "B"))
  end)

  it("takes every type with a catch-all and no types", function()
    local h = ml.handler { name = "h", from = "*", on = { ["*"] = noop } }
    assert.is_true(h:matches("x-1", "Anything"))
    assert.is_true(h:handles("Anything"))
    assert.is_false(h:matches("$parked-h", "Anything"))
  end)
end)
