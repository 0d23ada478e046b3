-- What a script sees of an event in the C host: read-only views that decode on access (see
-- docs/scripts.md), fed through moonlog.core.script.

local host = require("moonlog.core").script

local function projection(on_body, queries)
  return host.load("view.lua", { source = [[
    local ml = require "moonlog"
    return ml.projection { name = "view", from = "*", init = { kept = {} },
      on = { ["*"] = function(s, e) ]] .. on_body .. [[ end },
      queries = { ]] .. (queries or "") .. [[ } } ]] })
end

describe("events seen from a script", function()
  it("have the fields of DESIGN.md", function()
    local s = projection([[
      s.last = { e.stream, e.type, e.id, e.position, e.version, e.time, e.data.n, e.meta.m } ]])
    assert(s:feed { stream = "a-1", type = "T", id = "the-id", position = 5, version = 2,
                    time = 1700000000000, data = { n = 1 }, meta = { m = "x" } })
    assert.same({ "a-1", "T", "the-id", 5, 2, 1700000000000, 1, "x" }, s:state().last)
  end)

  it("are stable when kept", function()
    local s = projection("s.kept[#s.kept + 1] = e; s.data = s.data or e.data",
      "first = function(s) return { s.kept[1].data.v, s.data.v, s.kept[2].data.v } end")
    assert(s:feed { type = "T", position = 1, data = { v = "one" } })
    assert(s:feed { type = "T", position = 2, data = { v = "two" } })
    assert.same({ "one", "one", "two" }, s:query("first"))
  end)

  it("convert back to plain values when they leave the script", function()
    local s = projection("s.copy = e.data")
    local data = { a = { 1, 2, { b = true } }, s = "str", f = 0.5, i = -3, empty = {} }
    assert(s:feed { type = "T", position = 1, data = data })
    assert.same(data, s:state().copy)
  end)

  it("support pairs, ipairs, # and tostring", function()
    local s = projection([[
      local keys = {}
      for k in pairs(e.data) do keys[#keys + 1] = k end
      table.sort(keys)
      local sum = 0
      for _, v in ipairs(e.data.list) do sum = sum + v end
      s.r = { table.concat(keys, ","), sum, #e.data.list, tostring(e.data.list),
              tostring(e):match("^event T") ~= nil } ]])
    assert(s:feed { type = "T", position = 1, data = { list = { 4, 5, 6 }, x = 1 } })
    assert.same({ "list,x", 15, 3, "[4,5,6]", true }, s:state().r)
  end)

  it("refuse writes", function()
    local s = projection("e.data.x = 1")
    local ok, err = s:feed { type = "T", position = 1, data = { x = 0 } }
    assert.is_nil(ok)
    assert.matches("events are read-only", err, 1, true)
  end)

  it("round-trip many random values", function()
    local s = projection("s.copy = e.data")
    math.randomseed(42)
    local function value(depth)
      local r = math.random(depth > 3 and 5 or 7)
      if r == 1 then return math.random(-1 << 62, 1 << 62) end
      if r == 2 then return math.random() * 1e6 end
      if r == 3 then return ("s"):rep(math.random(0, 40)) end
      if r == 4 then return math.random(2) == 1 end
      if r == 5 then return math.random(-100, 100) end
      if r == 6 then
        local t = {}
        for i = 1, math.random(1, 5) do t[i] = value(depth + 1) end
        return t
      end
      local t = {}
      for _ = 1, math.random(1, 5) do t["k" .. math.random(100)] = value(depth + 1) end
      return t
    end
    for i = 1, 300 do
      local data = { v = value(0) }
      assert(s:feed { type = "T", position = i, data = data })
      assert.same(data, s:state().copy)
    end
  end)
end)
