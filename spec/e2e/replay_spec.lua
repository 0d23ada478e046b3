-- End to end: append with the real binary, rebuild a state with `moonlog replay`.

local bin = assert(os.getenv("MOONLOG_BIN"), "MOONLOG_BIN is not set")
local cjson = require "cjson"

-- The binary carries its own sanitizer runtime in sanitizer builds: the LD_PRELOAD that the
-- spec runner sets for lua5.4 must not reach it.
local function sh(cmd)
  local p = io.popen("{ unset LD_PRELOAD; " .. cmd .. "; } 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  local body, code = out:match("^(.-)exit=(%d+)\n$")
  return body, tonumber(code)
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

describe("moonlog replay", function()
  local dir, script

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
    -- the bank example's projection: balance per account, total, open accounts
    script = (os.getenv("MOONLOG_SOURCE_DIR") or ".") .. "/examples/bank/scripts/balances.lua"
    for _, a in ipairs({ { "account-1", "Deposited", 100 }, { "account-2", "Deposited", 50 },
                         { "other-1", "Deposited", 1000 }, { "account-1", "Withdrawn", 30 },
                         { "account-1", "Renamed", 0 } }) do
      local out, code = sh(("%s append --data %s %s %s '{\"amount\":%d}'"):format(
        q(bin), q(dir), a[1], a[2], a[3]))
      assert.equal(0, code, out)
    end
  end)

  teardown(function()
    os.execute("rm -rf " .. q(dir))
  end)

  it("rebuilds the state from the log and prints it as JSON", function()
    local out, code = sh(("%s replay --data %s %s"):format(q(bin), q(dir), q(script)))
    assert.equal(0, code, out)
    assert.same({ total = 120, open = 0, accounts = { ["account-1"] = 70, ["account-2"] = 50 } },
      cjson.decode(out))
  end)

  it("stops at --until", function()
    local out, code = sh(("%s replay --data %s %s --until 2"):format(q(bin), q(dir), q(script)))
    assert.equal(0, code, out)
    assert.same({ total = 150, open = 0, accounts = { ["account-1"] = 100, ["account-2"] = 50 } },
      cjson.decode(out))
  end)

  it("prints a readable Lua table with --lua, and stats on stderr", function()
    local out, code = sh(("%s replay --data %s %s --lua --stats 2>%s/err"):format(
      q(bin), q(dir), q(script), q(dir)))
    assert.equal(0, code, out)
    assert.matches('["account-1"] = 70,', out, 1, true)
    assert.matches("total = 120,", out, 1, true)
    local err = io.open(dir .. "/err"):read("a")
    assert.matches("5 events read, 3 passed the filter", err, 1, true)
    assert.matches("events/s", err, 1, true)
  end)

  it("resumes from a snapshot taken by the same code", function()
    local cmd = ("%s replay --data %s %s --snapshot --stats"):format(q(bin), q(dir), q(script))
    local out, code = sh(cmd)
    assert.equal(0, code, out)
    local f = io.open(dir .. "/scripts/balances.snap", "rb")
    assert.is_not_nil(f)
    f:close()
    out, code = sh(cmd)
    assert.equal(0, code, out)
    assert.matches("restored balances at position 5", out, 1, true)
    assert.matches('"total":120', out, 1, true)
  end)

  it("says what is wrong, in one line, with exit 1 for a faulting script", function()
    local bad = dir .. "/bad.lua"
    local f = assert(io.open(bad, "w"))
    f:write([[
local ml = require "moonlog"
return ml.projection { name = "bad", from = "*", init = {},
  on = { Withdrawn = function(s, e) return s.missing.field end } }
]])
    f:close()
    local out, code = sh(("%s replay --data %s %s"):format(q(bin), q(dir), q(bad)))
    assert.equal(1, code)
    assert.matches("^moonlog replay: script bad faulted at position 4: " .. "[^\n]*bad.lua:3:", out)
  end)

  it("exits 2 on a usage error", function()
    local out, code = sh(("%s replay --data %s"):format(q(bin), q(dir)))
    assert.equal(2, code, out)
    assert.matches("needs one SCRIPT", out, 1, true)
  end)
end)

describe("moonlog replay and check on a terminal", function()
  it("say how far they are on stderr, and leave the result alone on stdout", function()
    local dir = os.tmpname()
    os.remove(dir)
    -- 100,000 events: a progress line shows from the 65,536th on
    local out, code = sh(("%s bench replay --events 100000 --dir %s --keep"):format(q(bin), q(dir)))
    assert.equal(0, code, out)
    local count = dir .. "/count.lua"
    -- `script` gives the command a terminal; its output is what that terminal got
    out, code = sh(("script -qec %s /dev/null"):format(q(("%s replay --data %s %s"):format(q(bin), q(dir), q(count)))))
    assert.equal(0, code, out)
    assert.matches("\rmoonlog replay: %d+ of 100000 events %(%d+%%%)", out)
    -- and check, segment by segment
    out, code = sh(("script -qec %s /dev/null"):format(q(("%s check --data %s"):format(q(bin), q(dir)))))
    assert.equal(0, code, out)
    assert.matches("\rmoonlog check: segment 1 of %d+ %(0%%%), 0 events so far", out)
    assert.matches("ok: %d+ segments, 100000 events", out)
    -- piped, no such line
    out, code = sh(("%s replay --data %s %s 2>&1 | cat"):format(q(bin), q(dir), q(count)))
    assert.equal(0, code, out)
    assert.is_nil(out:find("moonlog replay:", 1, true))
    os.execute("rm -rf " .. q(dir))
  end)
end)
