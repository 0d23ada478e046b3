-- End to end: the script author's tools. `moonlog new` writes a script and a spec that pass
-- `moonlog test` and `moonlog lint` as they are; `moonlog lint` prints file:line: lines and
-- exits 1 on a broken script; the luacheck configuration flags what the sandbox lacks; the
-- language server's type files are Lua.
local files = require "support.files"

local SRC = os.getenv("MOONLOG_SOURCE_DIR") or "."
local BIN = assert(os.getenv("MOONLOG_BIN"), "MOONLOG_BIN must name the moonlog binary")
local q = files.quote

-- Runs a shell command (keeping the sanitizer preload that lua5.4 needs): status, output.
local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  local body, rc = out:match("^(.-)rc=(%d+)%s*$")
  return tonumber(rc), body
end

describe("moonlog new", function()
  it("starts a script of each kind, with a spec that passes as it is", function()
    local dir = files.tmpdir()
    for _, kind in ipairs { "projection", "reducer", "decider", "handler" } do
      local rc, out = run(("cd %s && %s new %s my_%s"):format(q(dir), q(BIN), kind, kind))
      assert.equal(0, rc, out)
      assert.matches("wrote scripts/my_" .. kind .. ".lua", out, 1, true)
    end
    local rc, out = run(("cd %s && %s test spec"):format(q(dir), q(BIN)))
    assert.equal(0, rc, out)
    assert.matches("5 successes / 0 failures / 0 errors", out)
    rc, out = run(("cd %s && %s lint scripts/*.lua"):format(q(dir), q(BIN)))
    assert.equal(0, rc, out)
    -- never over a file that is there
    rc, out = run(("cd %s && %s new handler my_handler"):format(q(dir), q(BIN)))
    assert.equal(1, rc)
    assert.matches("exists already; nothing was written", out, 1, true)
    rc, out = run(("cd %s && %s new widget x"):format(q(dir), q(BIN)))
    assert.equal(2, rc)
    assert.matches("give a kind", out, 1, true)
    files.remove(dir)
  end)
end)

describe("moonlog lint", function()
  it("prints file:line: message for what the server would refuse, and exits 1", function()
    local dir = files.tmpdir()
    files.write(dir .. "/syntax.lua", 'local ml = require "moonlog"\nreturn ml.projection {\n  name = "x",\n  on = { A = function(s) s.n = s.n + end },\n}\n')
    files.write(dir .. "/key.lua", 'local ml = require "moonlog"\nreturn ml.projection {\n  name = "y", from = "a-*",\n  on = { A = function() end },\n  bogus = 1,\n}\n')
    files.write(dir .. "/unused.lua", 'local ml = require "moonlog"\nreturn ml.projection {\n  name = "z",\n  from = { streams = "a-*", types = { "A", "B" } },\n  on = { A = function() end },\n}\n')
    local rc, out = run(("%s lint %s %s %s"):format(q(BIN), q(dir .. "/syntax.lua"), q(dir .. "/key.lua"),
      q(dir .. "/unused.lua")))
    assert.equal(1, rc, out)
    assert.matches(dir .. "/syntax.lua:4: unexpected symbol near 'end'", out, 1, true)
    assert.matches(dir .. '/key.lua:5: projection "y": unknown key "bogus"', out, 1, true)
    assert.matches(dir .. '/unused.lua:4: warning: from.types names "B", which on does not handle', out, 1, true)
    files.remove(dir)
  end)

  it("finds handled types that nothing among the files emits", function()
    local rc, out = run(("%s lint %s/examples/bank/scripts/*.lua"):format(q(BIN), q(SRC)))
    assert.same({ 0, "moonlog lint: 2 files, nothing found\n" }, { rc, out })
    local dir = files.tmpdir()
    files.write(dir .. "/typo.lua", 'local ml = require "moonlog"\nreturn ml.projection {\n  name = "typo", from = "account-*",\n  on = {\n    Deposited = function() end,\n    Withdrawal = function() end,\n  },\n}\n')
    rc, out = run(("%s lint %s/examples/bank/scripts/account.lua %s"):format(q(BIN), q(SRC), q(dir .. "/typo.lua")))
    assert.equal(0, rc, out) -- a warning
    assert.equal(dir .. '/typo.lua:6: warning: typo handles "Withdrawal", which no decider or handler among these files emits\n', out)
    files.remove(dir)
  end)
end)

describe("editor support", function()
  it("has type files for the language server that are Lua", function()
    for _, f in ipairs { "/lua/moonlog/meta/moonlog.lua", "/lua/moonlog/meta/moonlog/testing.lua" } do
      local text = assert(io.open(SRC .. f)):read("a")
      assert.matches("^%-%-%-@meta", text)
      assert(load(text, "=" .. f, "t"))
      assert.matches("---@class moonlog", text, 1, true)
    end
  end)

  it("has a luacheck configuration that flags what the sandbox lacks", function()
    if files.sh("command -v luacheck") == "" then
      return pending("luacheck is not installed (tools/deps.sh installs lua-check)")
    end
    local rc_file = SRC .. "/lua/moonlog/tools/luacheckrc"
    local rc, out = run(("luacheck --no-color --config %s %s/examples/*/scripts/*.lua"):format(q(rc_file), q(SRC)))
    assert.equal(0, rc, out)
    local dir = files.tmpdir()
    files.write(dir .. "/bad.lua", 'local ml = require "moonlog"\nreturn ml.handler { name = "b", from = "a-*",\n  on = { A = function(e) io.write(e.type); os.execute("x") end } }\n')
    rc, out = run(("luacheck --no-color --config %s %s"):format(q(rc_file), q(dir .. "/bad.lua")))
    assert.equal(1, rc, out)
    assert.matches("bad.lua:3:%d+: accessing undefined variable 'io'", out)
    assert.matches("bad.lua:3:%d+: accessing undefined field 'execute' of global 'os'", out)
    files.remove(dir)
  end)
end)
