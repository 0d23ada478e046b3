-- End to end: the moonlog command line on a real data folder.
-- append, read (--json), check (--repair), exit statuses, refusals, a full disk.

local BIN = assert(os.getenv("MOONLOG_BIN"), "MOONLOG_BIN must name the moonlog binary")

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs the binary with args; returns exit status, stdout, stderr.
local function run(args, prefix)
  local out, err = os.tmpname(), os.tmpname()
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = sh_quote(a) end
  local cmd = (prefix or "") .. sh_quote(BIN) .. " " .. table.concat(quoted, " ")
    .. " >" .. out .. " 2>" .. err
  local _, _, status = os.execute("bash -c " .. sh_quote(cmd))
  local function slurp(p)
    local f = assert(io.open(p)); local s = f:read("a"); f:close(); os.remove(p); return s
  end
  return status, slurp(out), slurp(err)
end

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/moonlog-spec-XXXXXX")
  local d = p:read("l"); p:close()
  return d
end

local function lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("moonlog append and read", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() os.execute("rm -rf " .. sh_quote(dir)) end)

  it("appends and reads back the same JSON", function()
    local st, out = run { "append", "--data", dir, "account-1", "Deposited", '{"amount": 10, "note": "caf\\u00e9"}' }
    assert.equal(0, st)
    assert.matches("appended account%-1@1 at position 1", out)
    st = run { "append", "--data", dir, "account-1", "Withdrawn", '{"amount": 2.5}', "--meta", '{"correlation_id": "c-1"}' }
    assert.equal(0, st)
    local st2, json = run { "read", "--data", dir, "account-1", "--json" }
    assert.equal(0, st2)
    local rows = lines(json)
    assert.equal(2, #rows)
    assert.matches('"data":{"amount":10,"note":"café"}', rows[1], 1, true)
    assert.matches('"version":1', rows[1], 1, true)
    assert.matches('"data":{"amount":2.5}', rows[2], 1, true)
    assert.matches('"meta":{"correlation_id":"c-1"}', rows[2], 1, true)
    local _, all = run { "read", "--data", dir, "$all", "--from", "2", "--json" }
    assert.equal(1, #lines(all))
  end)

  it("says so, with status 1, when the stream read has no events", function()
    run { "append", "--data", dir, "s-1", "A" }
    local st, out, err = run { "read", "--data", dir, "nope-1" }
    assert.same({ 1, "" }, { st, out })
    assert.matches("moonlog read: there is no stream nope-1", err, 1, true)
    st = run { "read", "--data", dir, "s-1", "--from", "5" } -- there, but not that far
    assert.equal(0, st)
    -- through a running server too
    local port = 20000 + math.random(20000)
    os.execute(("env -u LD_PRELOAD %s serve --data %s --listen 127.0.0.1:%d --http off 2>/dev/null & echo $! > %s/pid")
      :format(sh_quote(BIN), sh_quote(dir), port, sh_quote(dir)))
    local addr = "127.0.0.1:" .. port
    for _ = 1, 200 do
      if run { "read", "--connect", addr, "s-1" } == 0 then break end
      os.execute("sleep 0.05")
    end
    st, out, err = run { "read", "--connect", addr, "nope-1" }
    assert.same({ 1, "" }, { st, out })
    assert.matches("moonlog read: there is no stream nope-1", err, 1, true)
    assert.equal(0, (run { "read", "--connect", addr, "s-1" }))
    os.execute("kill $(cat " .. sh_quote(dir) .. "/pid); sleep 0.3")
  end)

  it("refuses a stale expected version with status 1 and writes nothing", function()
    run { "append", "--data", dir, "s-1", "A" }
    local st, _, err = run { "append", "--data", dir, "s-1", "B", "--expect", "no_stream" }
    assert.equal(1, st)
    assert.matches("version conflict on s%-1: expected no stream, but its version is 1", err)
    assert.equal(1, #lines(err))
    st = run { "append", "--data", dir, "s-1", "B", "--expect", "1" }
    assert.equal(0, st)
    local _, out = run { "read", "--data", dir, "s-1" }
    assert.equal(2, #lines(out))
  end)

  it("treats a repeated id as already appended", function()
    local _, a = run { "append", "--data", dir, "o-1", "Placed", "--id", "req-7", "--json" }
    local st, b = run { "append", "--data", dir, "o-1", "Placed", "--id", "req-7", "--json", "--expect", "9" }
    assert.equal(0, st)
    assert.matches('"duplicate":false', a, 1, true)
    assert.matches('"position":1,"version":1,"duplicate":true', b, 1, true)
  end)

  it("refuses bad input with one clear line and status 2, leaving the log unchanged", function()
    run { "append", "--data", dir, "s-1", "A" }
    local cases = {
      { { "append", "--data", dir, "s-1" }, "needs a STREAM and a TYPE" },
      { { "append", "--data", dir, "s-1", "T", "{bad" }, "not valid JSON" },
      { { "append", "--data", dir, "$system", "T" }, "reserved" },
      { { "append", "--data", dir, "a\1b", "T" }, "control characters" },
      { { "append", "--data", dir, string.rep("x", 256), "T" }, "longer than 255 bytes" },
      { { "append", "--data", dir, "s-1", "T", "--expect", "soon" }, "expected version must be" },
      { { "append", "--data", dir, "s-1", "T", "--meta", "[1]" }, "meta must be a map (a JSON object)" },
      { { "read", "--data", dir, "s-1", "--limit", "x" }, "whole number" },
      { { "frobnicate" }, "unknown command" },
    }
    for _, c in ipairs(cases) do
      local st, _, err = run(c[1])
      assert.equal(2, st, table.concat(c[1], " "))
      assert.matches(c[2], err, 1, true)
      assert.equal(1, #lines(err))
    end
    local _, out = run { "read", "--data", dir, "$all" }
    assert.equal(1, #lines(out))
  end)

  it("refuses an event over the size limit with status 1", function()
    local big = '{"blob": "' .. string.rep("x", 1024 * 1024) .. '"}'
    local f = assert(io.open(dir .. "/big.json", "w")); f:write(big); f:close()
    local out = os.tmpname()
    local _, _, status = os.execute(string.format("%s append --data %s s-1 T - <%s/big.json 2>%s",
      sh_quote(BIN), sh_quote(dir), dir, out))
    local e = io.open(out):read("a"); os.remove(out)
    assert.equal(1, status)
    assert.matches("over the maximum of 1048576", e, 1, true)
  end)

  it("fails an append on a full disk, keeps the log, and works again with space", function()
    for i = 1, 20 do run { "append", "--data", dir, "s-" .. i, "Filled", '{"n": ' .. i .. '}' } end
    -- a file-size limit of 1 KiB stands in for a full disk: every write past it fails
    local st, _, err = run({ "append", "--data", dir, "s-1", "Lost" }, "ulimit -f 1; ")
    assert.equal(1, st)
    assert.matches("cannot write to the log", err, 1, true)
    assert.matches("the append was not stored", err, 1, true)
    local _, out = run { "read", "--data", dir, "$all" }
    assert.equal(20, #lines(out))
    assert.equal(0, (run { "check", "--data", dir }))
    st = run { "append", "--data", dir, "s-1", "Kept" }
    assert.equal(0, st)
    _, out = run { "read", "--data", dir, "s-1", "--json" }
    assert.equal(2, #lines(out))
    assert.matches('"version":2,"type":"Kept"', out, 1, true)
  end)

  it("check calls a torn tail what it is (exit 0), and --repair cuts it", function()
    for i = 1, 5 do run { "append", "--data", dir, "s-1", "E" .. i } end
    local st, out = run { "check", "--data", dir }
    assert.equal(0, st)
    assert.matches("5 events in 5 batches, last position 5", out, 1, true)
    assert.is_nil(out:find("torn tail", 1, true))
    -- tear the last record: cut the data 10 bytes before its end (zeros follow the data)
    local seg = dir .. "/log/00000000000000000001.seg"
    local f = assert(io.open(seg, "r+b"))
    local data = f:read("a")
    local last = #data:gsub("%z+$", "")
    f:seek("set", last - 10); f:write(string.rep("\0", 10)); f:close()
    local st2, tail, err = run { "check", "--data", dir }
    assert.equal(0, st2, err)
    assert.equal("", err)
    local bytes, at = tail:match("^torn tail: the last batch %((%d+) bytes at offset (%d+) of segment 00000000000000000001%.seg%) was not completely written before a crash; it was never acknowledged, and the next open cuts it off\n")
    assert.is_not_nil(bytes, tail)
    assert.equal(last - 10, tonumber(at) + tonumber(bytes)) -- the written part of the batch
    assert.matches("ok: 1 segments, 4 events in 4 batches, last position 4", tail, 1, true)
    local st3, rep = run { "check", "--data", dir, "--repair" }
    assert.equal(0, st3)
    assert.matches("repaired: cut a torn tail of %d+ bytes off 00000000000000000001.seg", rep)
    assert.matches("4 events", rep)
    local _, after = run { "read", "--data", dir, "s-1" }
    assert.equal(4, #lines(after))
    assert.equal(0, (run { "check", "--data", dir }))
  end)

  it("check fails (exit 1) on damage that good records follow; --repair --force cuts it", function()
    for i = 1, 5 do run { "append", "--data", dir, "s-1", "E" .. i } end
    local seg = dir .. "/log/00000000000000000001.seg"
    local f = assert(io.open(seg, "r+b"))
    f:seek("set", 64 + 30) -- inside the first record
    local b = f:read(1)
    f:seek("set", 64 + 30); f:write(string.char(b:byte() ~ 0x10)); f:close()
    local st, out, err = run { "check", "--data", dir }
    assert.equal(1, st)
    assert.equal("", out)
    assert.matches("00000000000000000001.seg, offset 64: bad record .*not what a crash or a power loss leaves", err)
    assert.is_nil(err:find("torn tail", 1, true))
    local st2, _, err2 = run { "read", "--data", dir, "s-1" }
    assert.equal(1, st2)
    assert.matches("damaged at offset 64", err2, 1, true)
    assert.equal(1, (run { "check", "--data", dir, "--repair" }))
    local st3, rep = run { "check", "--data", dir, "--repair", "--force" }
    assert.equal(0, st3)
    assert.matches("repaired: cut the damaged end of %d+ bytes", rep)
    assert.matches("0 events", rep)
    assert.equal(2, (run { "check", "--data", dir, "--force" }))
  end)

  it("prints help for every command", function()
    for _, cmd in ipairs { "append", "read", "check" } do
      local st, out = run { cmd, "--help" }
      assert.equal(0, st)
      assert.matches("usage: moonlog " .. cmd, out, 1, true)
    end
  end)
end)
