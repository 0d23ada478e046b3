-- End to end: a short `make soak` (tools/soak.lua), so that the long one cannot rot: three
-- kill -9 rounds against the real server must report nothing lost, doubled or reordered; and
-- the soak must fail when its own run is damaged (acknowledged events cut off the log, or an
-- acknowledged event appended again), or it would prove nothing.
local SRC = os.getenv("MOONLOG_SOURCE_DIR") or "."

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs the soak with `args`: its exit status and its report.
local function soak(args)
  local p = io.popen(("cd %s && lua5.4 tools/soak.lua %s 2>&1"):format(q(SRC), args))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

local function figure(out, name)
  return tonumber(out:match(name .. ": (%d+)"))
end

describe("make soak", function()
  it("runs kill -9 rounds with nothing lost, doubled or reordered", function()
    local code, out = soak("--rounds 3 --kill-ms 50-400")
    assert.equal(0, code, out)
    assert.matches("soak: 3 rounds of kill -9", out, 1, true)
    assert.equal(0, figure(out, "lost"), out)
    assert.equal(0, figure(out, "doubled"), out)
    assert.equal(0, figure(out, "reordered"), out)
    assert.is_true(figure(out, "acknowledged") > 0, out)
    local pongs, pings = out:match("exactly once: (%d+) of (%d+) Pings")
    assert.equal(pings, pongs)
    assert.matches("projections equal to the log: 3 of 3 rounds", out, 1, true)
    assert.matches("moonlog check after the kill: 3 runs", out, 1, true)
    assert.matches("soak: ok\n$", out)
  end)

  it("fails when acknowledged events are cut off the log", function()
    local code, out = soak("--rounds 1 --inject lose")
    assert.equal(1, code, out)
    assert.is_true(figure(out, "lost") > 0, out)
    assert.matches("lost: r1%.c%d+%.k%d+%.%d %(acknowledged at %d+%)", out)
    assert.matches("soak: FAILED\n$", out)
  end)

  it("fails when an acknowledged event is stored twice", function()
    local code, out = soak("--rounds 1 --inject double")
    assert.equal(1, code, out)
    assert.is_true(figure(out, "doubled") > 0, out)
    assert.matches("doubled: r1%.c%d+%.k%d+%.%d 2 times", out)
  end)
end)
