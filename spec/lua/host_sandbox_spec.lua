-- The script sandbox of the C host: each way out of it is tried, and refused. A script is
-- loaded into its own lua_State by moonlog.core.script, exactly as `moonlog replay` and the
-- server load one; `source` stands in for the file's text.

local host = require("moonlog.core").script

local function load(src)
  return pcall(host.load, "escape.lua", { source = src })
end

-- A script that runs `body` when an event arrives, and keeps what it returns.
local function at_event(body)
  local s = host.load("escape.lua", { source = [[
    local ml = require "moonlog"
    return ml.projection { name = "escape", from = "*", init = {},
      on = { Try = function(s, e) s.result = (function() ]] .. body .. [[ end)() end } }
  ]] })
  local ok, err = s:feed { stream = "x-1", type = "Try", position = 1 }
  return ok, err, ok and s:state().result
end

describe("the script sandbox", function()
  local refused = {
    ["io"] = "return io.open('/etc/passwd')",
    ["os.execute"] = "return os.execute('true')",
    ["os.exit"] = "return os.exit(1)",
    ["os.remove"] = "return os.remove('/tmp/moonlog-sandbox-probe')",
    ["os.getenv"] = "return os.getenv('HOME')",
    ["package.loadlib"] = "return package.loadlib('libc.so.6', 'system')",
    ["debug"] = "return debug.getregistry()",
    ["string.dump"] = "return string.dump(function() end)",
    ["string.dump through a string's metatable"] = "return ('').dump(function() end)",
    ["dofile"] = "return dofile('/etc/passwd')",
    ["loadfile"] = "return loadfile('/etc/passwd')",
    ["collectgarbage"] = "return collectgarbage('stop')",
  }
  for name, src in pairs(refused) do
    it("refuses " .. name .. " at load", function()
      local ok, err = load(src)
      assert.is_false(ok)
      assert.matches("script escape.lua failed: escape.lua:1: attempt to", err, 1, true)
    end)
    it("refuses " .. name .. " while handling an event", function()
      local ok, err = at_event(src)
      assert.is_nil(ok)
      assert.matches("script escape faulted at position 1: escape.lua:", err, 1, true)
      assert.matches("attempt to", err, 1, true)
    end)
  end

  it("refuses to load a binary chunk", function()
    local ok, err, result = at_event([[
      local f, why = load("\27Lua\84\0\25\147\13\10\26\10\4\8\8\120\86", "bin")
      return { f = f == nil, why = why } ]])
    assert.is_true(ok, err)
    assert.is_true(result.f)
    assert.matches("attempt to load a binary chunk", result.why, 1, true)
  end)

  it("loads text chunks into the sandbox", function()
    local ok, err, result = at_event("return load('return io == nil and os.execute == nil')()")
    assert.is_true(ok, err)
    assert.is_true(result)
  end)

  it("refuses require of a module outside moonlog", function()
    for _, name in ipairs({ "socket", "io", "os", "debug", "moonlog.core", "posix" }) do
      local ok, err = load("return require '" .. name .. "'")
      assert.is_false(ok)
      assert.matches('require "' .. name .. '": scripts may require only the moonlog modules',
        err, 1, true)
    end
  end)

  it("allows the moonlog modules and the safe library", function()
    local ok, err, result = at_event([[
      local t = require "moonlog.testing"
      return { type(t.given), math.max(1, 2), ("x"):rep(3), utf8.char(233), table.concat({1, 2}),
               type(os.time()), type(os.clock()), type(os.date("%Y")) } ]])
    assert.is_true(ok, err)
    assert.same({ "function", 2, "xxx", "é", "12", "number", "number", "string" }, result)
  end)

  it("keeps the script's globals to itself", function()
    local a = host.load("a.lua", { source = [[
      local ml = require "moonlog"
      leaked = "a"
      return ml.projection { name = "a", from = "*", init = {},
        on = { T = function(s) s.g = leaked end } } ]] })
    local b = host.load("b.lua", { source = [[
      local ml = require "moonlog"
      return ml.projection { name = "b", from = "*", init = {},
        on = { T = function(s) s.g = tostring(leaked) end } } ]] })
    assert(a:feed { type = "T", position = 1 })
    assert(b:feed { type = "T", position = 1 })
    assert.equal("a", a:state().g)
    assert.equal("nil", b:state().g)
  end)

  it("faults a script that loops for ever, and only that script", function()
    local spin = host.load("spin.lua", { instructions = 100000, source = [[
      local ml = require "moonlog"
      return ml.reducer { name = "spin", from = "*",
        on = { T = function() while true do pcall(error) end end } } ]] })
    local ok, err = spin:feed { stream = "x-1", type = "T", position = 7 }
    assert.is_nil(ok)
    assert.equal("script spin faulted at position 7: ran past its instruction budget "
      .. "(100000 instructions per event) at spin.lua:3", err)
    assert.equal(err, spin:info().fault)
    local ok2 = at_event("return 1")
    assert.is_true(ok2)
  end)

  it("faults a script that eats memory", function()
    local eat = host.load("eat.lua", { memory = 4 << 20, source = [[
      local ml = require "moonlog"
      return ml.projection { name = "eat", from = "*", init = {},
        on = { T = function(s) for i = 1, 1e8 do s[i] = {} end end } } ]] })
    local ok, err = eat:feed { type = "T", position = 3 }
    assert.is_nil(ok)
    assert.equal("script eat faulted at position 3: ran out of its memory limit (4 MiB)", err)
    -- the limit, and the slack a stopped call may use to unwind (1 MiB at least)
    assert.is_true(eat:info().memory_peak <= (4 << 20) + (1 << 20))
  end)
end)
