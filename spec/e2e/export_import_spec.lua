-- End to end: moonlog export and import. A log holding values JSON cannot carry (binary,
-- float 32, integer keys, odd integer encodings, bytes that are not UTF-8) goes through
-- export -> import -> export and gives the same lines; a broken line or a missing field is
-- one error with its line number, and nothing is imported.

local server = require "spec.support.server"
local files = require "moonlog.testing.files"

local BIN = assert(os.getenv("MOONLOG_BIN"), "MOONLOG_BIN must name the moonlog binary")
local q = files.quote

-- Runs the binary with a shell argument string; returns exit status, stdout, stderr.
local function run(args) return files.run(q(BIN) .. " " .. args) end

local function fixstr(s) return string.char(0xa0 + #s) .. s end

-- An append request sent as raw msgpack, so that data can be any msgpack the log takes:
-- [0, msgid, "append", [stream, [{type=..., data=<raw>}], nil]].
local function raw_append(c, msgid, stream, type, data)
  local req = "\x94\x00" .. string.char(msgid) .. fixstr("append") .. "\x93" .. fixstr(stream)
    .. "\x91\x82" .. fixstr("type") .. fixstr(type) .. fixstr("data") .. data .. "\xc0"
  assert(c:send_raw(req))
  local r, err = c:wait(msgid)
  assert(r, err and err.message)
  return r
end

-- Values whose codec JSON does not give back the same bytes.
local ODD = {
  { "Bin", "\xc4\x04\x00\x01\xfe\xff" },          -- bin: base64 text in JSON
  { "Float32", "\xca\x3f\xc0\x00\x00" },          -- float 32 1.5: a float 64 in JSON
  { "IntKey", "\x81\x01\xa1x" },                  -- {1 = "x"}: the key "1" in JSON
  { "Wide", "\xcd\x00\x05" },                     -- 5 as a uint 16: a fixint from JSON
  { "Latin1", "\xa2\xe9\xff" },                   -- a str that is not UTF-8: U+FFFD in JSON
  { "Nested", "\x82\xa1a\xc4\x01\x07\xa1b\x92\xca\x40\x20\x00\x00\x01" }, -- bin and float 32 inside
}

local function lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

describe("moonlog export and import", function()
  local dir
  before_each(function() dir = files.tmpdir() end)
  after_each(function()
    server.stop_all()
    files.remove(dir)
  end)

  it("round-trips every field and the exact bytes of values JSON cannot carry", function()
    local s = server.start {}
    local c = s.client
    assert(c:append("acct-1", { { type = "Opened", data = { owner = "ann", n = 1 }, id = "open-1",
      meta = { correlation_id = "k1" } } }))
    for i, v in ipairs(ODD) do raw_append(c, 100 + i, "odd-" .. i, v[1], v[2]) end
    assert(c:append("acct-1", { { type = "A", data = { 1, 2 } }, { type = "B", data = "s" } }))
    -- through the running server's admin socket (--data) and its RPC port (--connect)
    local st, via_admin, err = run(("export --data %s"):format(q(s.data)))
    assert.equal(0, st, err)
    assert.matches("9 events, positions 1 to 9", err, 1, true)
    local st2, via_rpc = run(("export --connect 127.0.0.1:%d"):format(s.rpc_port))
    assert.equal(0, st2)
    assert.equal(via_admin, via_rpc)
    local rows = lines(via_admin)
    assert.equal(9, #rows)
    assert.matches('"id":"open-1"', rows[1], 1, true)
    assert.matches('"meta":{"correlation_id":"k1"}', rows[1], 1, true)
    assert.not_matches("data_msgpack", rows[1], 1, true)
    for i = 2, 7 do assert.matches('"data_msgpack":"', rows[i], 1, true) end
    assert.matches([["data":"AAH+/w==","meta":null,"data_msgpack":"xAQAAf7/"]], rows[2], 1, true)
    files.write(dir .. "/a.jsonl", via_admin)

    local st3, _, ierr = run(("import --data %s %s"):format(q(dir .. "/new"), q(dir .. "/a.jsonl")))
    assert.equal(0, st3, ierr)
    assert.matches("9 events from .* at positions 1 to 9 %(as in the export%)", ierr)
    local _, again = run(("export --data %s"):format(q(dir .. "/new")))
    assert.equal(via_admin, again)
    local st4, chk = run(("check --data %s"):format(q(dir .. "/new")))
    assert.equal(0, st4, chk)

    -- a server on the imported folder serves the same bytes at the same positions
    local s2 = server.start { data = dir .. "/new" }
    local got = assert(s2.client:read("$all", 1, 100))
    local want = assert(c:read("$all", 1, 100))
    assert.equal(#want, #got)
    for i = 1, #want do
      for _, k in ipairs { "position", "stream", "version", "type", "id", "time", "data", "meta" } do
        assert.same(want[i][k], got[i][k])
      end
    end
  end)

  it("imports into a log that holds events after its head, and says they were renumbered", function()
    run(("append --data %s x-1 T '{\"a\":1}'"):format(q(dir .. "/src")))
    run(("append --data %s x-1 U"):format(q(dir .. "/src")))
    run(("append --data %s y-1 T"):format(q(dir .. "/dst")))
    assert.equal(0, (run(("export --data %s %s"):format(q(dir .. "/src"), q(dir .. "/e.jsonl")))))
    local st, _, err = run(("import --data %s %s"):format(q(dir .. "/dst"), q(dir .. "/e.jsonl")))
    assert.equal(0, st, err)
    assert.matches("2 events from .* at positions 2 to 3 %(renumbered", err)
    -- again: the ids are there, nothing is written twice
    local st2, _, err2 = run(("import --data %s - < %s"):format(q(dir .. "/dst"), q(dir .. "/e.jsonl")))
    assert.equal(0, st2, err2)
    assert.matches("0 events from %-; 2 were already in the log", err2)
    local _, out = run(("read --data %s '$all' --json"):format(q(dir .. "/dst")))
    assert.equal(3, #lines(out))
  end)

  it("refuses a broken line or a missing field with its line number, importing nothing", function()
    run(("append --data %s x-1 T '{\"a\":1}'"):format(q(dir .. "/src")))
    run(("append --data %s x-1 U '[1]'"):format(q(dir .. "/src")))
    run(("append --data %s x-2 V"):format(q(dir .. "/src")))
    local _, good = run(("export --data %s"):format(q(dir .. "/src")))
    local rows = lines(good)
    assert.equal(3, #rows)
    local cases = {
      { rows[1] .. "\n" .. rows[2] .. "\n" .. rows[3]:sub(1, 20) .. "\n", "line 3 of .*invalid JSON" },
      { rows[1] .. "\n" .. rows[2]:gsub(',"type":"U"', "") .. "\n" .. rows[3] .. "\n", 'line 2 of .*no "type"' },
      { rows[1] .. "\n" .. rows[2]:gsub('"data":%[1%]', '"data":[1],"data_msgpack":"@@@@"') .. "\n",
        "line 2 of .*base64" },
      { rows[2] .. "\n" .. rows[1] .. "\n", "line 2 of .*position 1 comes after position 2" },
    }
    for i, case in ipairs(cases) do
      local f = ("%s/bad%d.jsonl"):format(dir, i)
      files.write(f, case[1])
      local target = ("%s/t%d"):format(dir, i)
      local st, _, err = run(("import --data %s %s"):format(q(target), q(f)))
      assert.equal(1, st, err)
      assert.matches(case[2], err)
      assert.matches("nothing was imported", err, 1, true)
      assert.equal(1, #lines(err), err) -- one line
      local _, out = run(("export --data %s"):format(q(target)))
      assert.equal("", out)
    end
  end)
end)

describe("moonlog backup and restore", function()
  local dir
  before_each(function() dir = files.tmpdir() end)
  after_each(function()
    files.write(dir .. "/stop", "")
    server.stop_all()
    files.remove(dir)
  end)

  it("a backup under steady appends restores to exactly the acknowledged prefix up to its position", function()
    local s = server.start {}
    for i = 1, 200 do assert(s.client:append("seed-" .. (i % 4), { { type = "T", data = { i = i } } })) end
    -- a producer in its own process: one acknowledged append after another, each noted
    local loop = ("i=0; while [ ! -f %s ]; do %s append --connect 127.0.0.1:%d s-$((i %% 3)) T "
      .. "\"{\\\"i\\\":$i}\" >> %s || break; i=$((i+1)); done; touch %s")
      :format(q(dir .. "/stop"), q(BIN), s.rpc_port, q(dir .. "/acked"), q(dir .. "/done"))
    os.execute(("unset LD_PRELOAD; sh -c %s >/dev/null 2>&1 &"):format(q(loop)))
    local function acked()
      local f = io.open(dir .. "/acked")
      if not f then return {} end
      local t = {}
      for l in f:lines() do
        local stream, v, pos = l:match("^appended (%S+)@(%d+) at position (%d+)$")
        if stream then t[#t + 1] = { stream = stream, version = tonumber(v), position = tonumber(pos) } end
      end
      f:close()
      return t
    end
    server.eventually(function() return #acked() >= 20 end, 60, "the producer appending")
    local st, out, err = run(("backup --data %s %s"):format(q(s.data), q(dir .. "/bk")))
    assert.equal(0, st, err)
    local pos = tonumber(out:match("up to position (%d+)"))
    assert.truthy(pos, out)
    local n_before = #acked()
    server.eventually(function() return #acked() >= n_before + 20 end, 60, "appends after the backup")
    files.write(dir .. "/stop", "")
    server.eventually(function() return io.open(dir .. "/done") end, 60, "the producer stopping")
    local all = acked()
    assert.truthy(all[#all].position > pos, "appends went on past the backup's position")

    local st2, chk, cerr = run(("check --data %s"):format(q(dir .. "/bk")))
    assert.equal(0, st2, cerr)
    assert.matches("last position " .. pos .. ";", chk, 1, true)
    local st3, rout, rerr = run(("restore %s %s"):format(q(dir .. "/bk"), q(dir .. "/restored")))
    assert.equal(0, st3, rerr)
    assert.matches("last position " .. pos, rout, 1, true)
    -- a restore refuses a folder that holds anything
    local st4, _, rerr2 = run(("restore %s %s"):format(q(dir .. "/bk"), q(dir .. "/restored")))
    assert.equal(1, st4)
    assert.matches("is not empty", rerr2, 1, true)

    local _, original = run(("export --data %s --to %d"):format(q(s.data), pos))
    local s2 = server.start { data = dir .. "/restored" }
    local _, restored = run(("export --connect 127.0.0.1:%d"):format(s2.rpc_port))
    assert.equal(pos, #lines(restored))
    assert.equal(original, restored)
    -- every acknowledged append at or before the position is there, and none after it
    local by_pos = {}
    for _, l in ipairs(lines(restored)) do
      by_pos[tonumber(l:match('"position":(%d+)'))] = l
    end
    for _, a in ipairs(all) do
      if a.position <= pos then
        assert.matches(('"stream":"%s","version":%d,'):format(a.stream, a.version), by_pos[a.position], 1, true)
      else
        assert.is_nil(by_pos[a.position])
      end
    end
    assert(s2.client:append("after-restore", { { type = "T" } }))
    local got = assert(s2.client:read("after-restore", 1, 10))
    assert.equal(pos + 1, got[1].position)
  end)

  it("a backup keeps the deletions and retention limits in force at its position", function()
    local s = server.start { args = { "--segment-size", "4096" } }
    local c = s.client
    assert(c:append("spam-7", { { type = "T" } }))
    assert(c:delete("spam-7", nil, true))
    assert(c:append("acct-1", { { type = "T" }, { type = "T" }, { type = "T" } }))
    assert(c:set_metadata("acct-1", { max_count = 2 }))
    assert(c:append("gone-1", { { type = "T" }, { type = "T" } }))
    for i = 1, 40 do assert(c:append("filler-1", { { type = "F", data = { pad = ("x"):rep(200), i = i } } })) end
    assert(c:delete("gone-1"))
    assert(c:append("acct-1", { { type = "T" }, { type = "T" }, { type = "T" } }))
    -- the first segment (the tombstone and the max count in it) dropped while stopped, as
    -- an operator may: the server keeps both in DATA/log/retention
    assert(s:stop())
    assert(os.remove(s.data .. "/log/00000000000000000001.seg"))
    os.remove(s.data .. "/log/00000000000000000001.idx")
    s:launch()
    local st, out, err = run(("backup --data %s %s"):format(q(s.data), q(dir .. "/bk")))
    assert.equal(0, st, err)
    assert.truthy(io.open(dir .. "/bk/log/retention"), "the backup holds DATA/log/retention")
    st, out, err = run(("restore %s %s"):format(q(dir .. "/bk"), q(dir .. "/restored")))
    assert.equal(0, st, err)
    local s2 = server.start { data = dir .. "/restored" }
    local function versions(cl, stream)
      local t = {}
      for i, e in ipairs(assert(cl:read(stream))) do t[i] = e.type .. "@" .. e.version end
      return t
    end
    for _, cl in ipairs { s.client, s2.client } do
      assert.same({ "$deleted@3" }, versions(cl, "gone-1"))
      assert.is_true(assert(cl:metadata("gone-1")).deleted)
      assert.same({ "T@5", "T@6" }, versions(cl, "acct-1"))
      local _, e = cl:append("spam-7", { { type = "T" } })
      assert.equal("refused", e and e.code)
      -- a stream with no limits whose first versions went with the dropped segment reads
      -- from its first version kept
      local f = assert(cl:read("filler-1"))
      assert.truthy(#f > 0 and #f < 40 and f[1].version > 1 and f[#f].version == 40)
    end
  end)

  it("refuses a DEST that is not empty, and says so when no server runs", function()
    local s = server.start {}
    files.write(dir .. "/x", "")
    local st, _, err = run(("backup --data %s %s"):format(q(s.data), q(dir)))
    assert.equal(1, st)
    assert.matches("is not empty", err, 1, true)
    local st2, _, err2 = run(("backup --data %s %s"):format(q(dir .. "/none"), q(dir .. "/bk")))
    assert.equal(1, st2)
    assert.matches("no server answers", err2, 1, true)
  end)
end)
