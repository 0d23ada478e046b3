-- The script library must run in the host's sandbox: plain Lua, no io, os, debug or load, and
-- require only of moonlog modules. Load it into an environment that has nothing else.

local SAFE <const> = { "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall",
  "rawequal", "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring",
  "type", "xpcall", "string", "table", "math", "utf8" }

local function sandbox()
  local env, loaded, required = {}, {}, {}
  for _, name in ipairs(SAFE) do env[name] = _G[name] end
  function env.require(name)
    assert(name == "moonlog" or name:match("^moonlog%."), "require outside moonlog: " .. name)
    if loaded[name] == nil then
      local path = assert(package.searchpath(name, package.path))
      local chunk = assert(loadfile(path, "t", env))
      required[#required + 1] = name
      loaded[name] = chunk(name) or true
    end
    return loaded[name]
  end
  return env, required
end

describe("the library in a sandbox", function()
  for _, module in ipairs({ "moonlog", "moonlog.testing" }) do
    it("loads " .. module .. " with nothing but safe base functions", function()
      local env, required = sandbox()
      assert.is_table(env.require(module))
      assert.is_true(#required > 0)
    end)
  end

  it("builds, folds, decides and handles", function()
    local env = sandbox()
    local ml = env.require("moonlog")
    local d = ml.decider { name = "d", from = "a-*", stream = function(c) return "a-" .. c.id end,
                           init = { n = 0 }, on = { Inc = function(s) s.n = s.n + 1 end },
                           decide = { Inc = function() return { ml.event("Inc") } end } }
    local events = d:execute({ { type = "Inc", stream = "a-1" } }, "Inc", { id = "1" })
    assert.equal("Inc", events[1].type)
    local h = ml.handler { name = "h", from = "*", on = { Inc = function(e, ctx)
      ctx.emit("b-1", "Seen", { of = e.id })
    end } }
    assert.equal("b-1", h:handle({ id = "x", type = "Inc", stream = "a-1", meta = {} })[1].stream)
    local ok, err = pcall(ml.reducer, { name = "r", from = "a", on = { A = 1 } })
    assert.is_false(ok)
    assert.matches('reducer "r": on.A must be a function, got number', err, 1, true)
  end)

  it("writes no globals", function()
    local env = sandbox()
    local before = {}
    for k in pairs(env) do before[k] = true end
    env.require("moonlog")
    env.require("moonlog.testing")
    for k in pairs(env) do assert.is_true(before[k], "global written: " .. tostring(k)) end
  end)
end)
