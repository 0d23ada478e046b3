-- End-to-end: what the log accepts, every reader can read (docs/codec.md, "What the log
-- stores"). Values that JSON or Lua cannot show are refused when appended, over RPC, HTTP,
-- the REPL's log and from scripts, with a message naming the field; and an event that an
-- older version stored with such a value (written here into a segment file, since the log
-- no longer takes one) still reads through HTTP paging, SSE, `moonlog read --json`, RPC and
-- a projection.
local server = require "support.server"
local codec = require("moonlog.core").codec
local enc = codec.encode

local SCRIPTS = server.tmpdir()

server.write_file(SCRIPTS .. "/keeper.lua", [[
local ml = require "moonlog"
return ml.projection {
  name = "keeper", from = "old-1",
  init = function() return { n = 0, count = 0, kept = {} } end,
  on = {
    T = function(s, e)
      s.count = s.count + 1
      s.n = s.n + e.data.n
      s.kept[#s.kept + 1] = e.data     -- the whole value, ext and all, goes into the state
    end,
  },
}
]])

-- A projection that reads the ext values themselves, whole data or a field of it.
server.write_file(SCRIPTS .. "/reader.lua", [[
local ml = require "moonlog"
return ml.projection {
  name = "reader", from = "old-*",
  init = function() return { seen = {} } end,
  on = {
    T = function(s, e)
      local d = e.data
      local x = d["$ext"] and d or d.blob        -- d: a view of a map, or the ext's table
      if type(x) == "table" then s.seen[#s.seen + 1] = x["$ext"] .. ":" .. x.base64 end
    end,
  },
}
]])

server.write_file(SCRIPTS .. "/emitter.lua", [[
local ml = require "moonlog"
return ml.handler {
  name = "emitter", from = "in-*",
  on = { Go = function(e, ctx) ctx.emit("out-1", "Went", { x = 0/0 }) end },
}
]])

server.write_file(SCRIPTS .. "/acct.lua", [[
local ml = require "moonlog"
return ml.decider {
  name = "acct", from = "acct-*",
  stream = function(cmd) return "acct-" .. cmd.id end,
  init = function() return {} end,
  on = {},
  decide = { Bad = function(s, cmd) return { ml.event("Made", { r = 1/0 }) } end },
}
]])

-- An event map from raw msgpack values: { {"type", enc("T")}, {"data", "\xd4\x05\x00"} }.
local function event(fields)
  local parts = { string.char(0x80 + #fields) }
  for _, f in ipairs(fields) do parts[#parts + 1] = enc(f[1]) .. f[2] end
  return table.concat(parts)
end

-- append(stream, events) with the events given as raw msgpack.
local function raw_append(c, stream, events)
  local id = c.next_id
  c.next_id = id + 1
  assert(c:send_raw("\x94" .. enc(0) .. enc(id) .. enc("append") .. "\x92" .. enc(stream) .. events))
  return c:wait(id)
end

local EXT = "\xd4\x05\x00"            -- fixext 1, type 5
local NAN = "\xcb\x7f\xf8\0\0\0\0\0\0"
local INF32 = "\xca\x7f\x80\0\0"

-- CRC32C, as the log's records carry it.
local CRC = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1 == 1) and ((c >> 1) ~ 0x82f63b78) or (c >> 1) end
  CRC[i] = c
end
local function crc32c(s)
  local c = 0xffffffff
  for i = 1, #s do c = CRC[(c ~ s:byte(i)) & 0xff] ~ (c >> 8) end
  return c ~ 0xffffffff
end

-- Replaces the one occurrence of `from` in s by `to`, of the same length.
local function swap(s, from, to)
  assert(#from == #to)
  local i = assert(s:find(from, 1, true), "pattern not found")
  assert(not s:find(from, i + 1, true), "pattern found twice")
  return s:sub(1, i - 1) .. to .. s:sub(i + #from)
end

-- Rewrites the records at the given positions of DATA's first segment, as an older
-- version would have written them: patch[position] = { data = fn, meta = fn }, each fn
-- mapping the old bytes to new ones of the same length; the record's CRC is redone.
local function rewrite(data, patch)
  local path = data .. "/log/00000000000000000001.seg"
  local f = assert(io.open(path, "rb"))
  local seg = f:read("a")
  f:close()
  local off, done = 64, 0
  while off + 48 <= #seg do
    local len = string.unpack("<I4", seg, off + 1)
    if len == 0 then break end
    local sl, tl, il, ml, dl = string.unpack("<BBBI4I4", seg, off + 10)
    local pos = string.unpack("<I8", seg, off + 25)
    local p = patch[pos]
    if p then
      local rec = seg:sub(off + 1, off + len)
      local m0 = 48 + sl + tl + il
      local meta, body = rec:sub(m0 + 1, m0 + ml), rec:sub(m0 + ml + 1, m0 + ml + dl)
      if p.meta then meta = p.meta(meta) end
      if p.data then body = p.data(body) end
      rec = rec:sub(1, m0) .. meta .. body .. rec:sub(m0 + ml + dl + 1) -- and its trailers
      assert(#rec == len)
      rec = rec:sub(1, 4) .. string.pack("<I4", crc32c(rec:sub(1, 4) .. rec:sub(9))) .. rec:sub(9)
      seg = seg:sub(1, off) .. rec .. seg:sub(off + len + 1)
      done = done + 1
    end
    off = off + len
  end
  f = assert(io.open(path, "r+b"))
  f:write(seg)
  f:close()
  return done
end

describe("poison events", function()
  after_each(server.stop_all)
  teardown(function() os.execute("rm -rf " .. server.quote(SCRIPTS)) end)

  it("are refused over RPC, each with a message naming the value, and nothing is written", function()
    local s = server.start()
    local c = s.client
    local T = { "type", enc("T") }
    local cases = {
      { { T, { "data", EXT } },
        "event 1: data is an ext value (type 5), which has no JSON or Lua form; send the bytes as bin or a string" },
      { { T, { "data", "\x81" .. enc("items") .. "\x92\x01\x81" .. enc("blob") .. EXT } },
        "event 1: data.items[2].blob is an ext value (type 5)" },
      { { T, { "meta", "\x81" .. enc("trace") .. EXT } }, "event 1: meta.trace is an ext value (type 5)" },
      { { T, { "data", "\x81" .. enc("x") .. NAN } },
        "event 1: data.x is NaN, which JSON cannot carry; send null or a finite number" },
      { { T, { "data", "\x91" .. INF32 } }, "event 1: data[1] is infinity" },
      { { T, { "data", "\x81\xc0\x01" } },
        "event 1: data has a key that is nil; map keys must be strings or integers" },
      { { T, { "data", "\x81\xc3\x01" } }, "event 1: data has a key that is a boolean (true)" },
      { { T, { "data", "\x81\xcb\x40\x04\0\0\0\0\0\0\x01" } }, "event 1: data has a key that is a float (2.5)" },
      { { T, { "data", "\x81\x90\x01" } }, "event 1: data has a key that is an array" },
      { { T, { "data", "\x81" .. enc("a b") .. "\x81\xc4\x01x\x01" } },
        'event 1: data["a b"] has a key that is binary (bin)' },
      { { T, { "data", "\x81\xa2a\xff\x01" } }, 'event 1: data has a key that is not UTF-8 text ("a\\xff")' },
      { { T, { "data", "\x82\xa1a\x01\xa1a\x02" } },
        'event 1: data has the key "a" twice; a key may appear once in a map' },
      { { T, { "data", "\x82\x01\x01\xa11\x02" } },
        'event 1: data has the keys 1 and "1", which JSON shows as the same key; keep one' },
      { { T, { "id", enc("") } },
        "event 1: the id is empty; give 1 to 255 bytes, or no id for a generated one" },
      { { T, { "id", enc(("i"):rep(256)) } }, "event 1: the id is longer than 255 bytes" },
      { { T, { "type", enc("U") } }, "event 1 has the key type twice; give it once" },
    }
    for _, case in ipairs(cases) do
      local r, err = raw_append(c, "p-1", event(case[1]))
      assert.is_nil(r)
      assert.equal("bad_request", err.code)
      assert.equal(case[2], err.message:sub(1, #case[2]))
    end
    -- A nil type is no type; a nil id is no id (a generated one).
    local r, err = raw_append(c, "p-1", event { { "type", "\xc0" } })
    assert.is_nil(r)
    assert.matches("^event 1 has no type", err.message)
    assert.same({}, assert(c:read("$all")))
    -- In a batch, the one bad event refuses the whole batch and says which it is.
    r, err = raw_append(c, "p-1", "\x92" .. event { T } .. event { T, { "data", EXT } })
    assert.is_nil(r)
    assert.matches("^event 2: data is an ext value", err.message)
    assert.same({}, assert(c:read("$all")))
    -- A well-formed event still goes in: bin, uint 64, integer keys, invalid UTF-8 in a value.
    r = assert(raw_append(c, "p-1", event { T, { "data", "\x84\x01\xc4\x02\0\1\xa1k\xcf" .. ("\xff"):rep(8)
                                                         .. "\xa1s\xa2a\xff\x02\xc2" } }))
    assert.equal(1, r.position)
    r = assert(raw_append(c, "p-1", event { T, { "id", "\xc0" } }))
    assert.equal(2, r.position)
    assert.equal(36, #assert(c:read("p-1"))[2].id)
    local code, page = s:curl("GET", "/streams/p-1")
    assert.equal(200, code)
    assert.matches('"data":{"1":"AAE=","k":18446744073709551615,"s":"a\xef\xbf\xbd","2":false}', page, 1, true)
  end)

  it("are refused over HTTP with 400: numbers beyond a double, keys given twice, an empty id", function()
    local s = server.start()
    local cases = {
      { '{"type":"T","data":{"amount":1e999999}}',
        "invalid JSON at line 1, column 30: the number 1e999999 at data.amount is too large for a 64-bit float" },
      { '{"type":"T","data":{"items":[1,{"x":-1e400}]}}', "the number -1e400 at data.items[2].x is too large" },
      { '{"type":"T","data":{"a":{"b":1,"b":2}}}',
        'invalid JSON at line 1, column 32: duplicate key \\"b\\" in data.a; a key may appear once in an object' },
      { '{"type":"T","type":"U"}', 'duplicate key \\"type\\" in the top-level object' },
      { '[{"type":"T"},{"type":"T","id":""}]',
        "event 2: the id is empty; give 1 to 255 bytes, or no id for a generated one" },
    }
    for _, case in ipairs(cases) do
      local code, body = s:curl("POST", "/streams/h-1", case[1])
      assert.equal(400, code)
      assert.truthy(body:find(case[2], 1, true), body)
    end
    local code, body = s:curl("GET", "/all")
    assert.equal(200, code)
    assert.equal("[\n]", (body:gsub("%s+$", "")))
  end)

  it("are refused from scripts, the REPL's log and the command line", function()
    local s = server.start { args = { "--scripts", SCRIPTS } }
    local c = s.client
    local r, err = c:call("command", "acct", "Bad", { id = 1 })
    assert.is_nil(r)
    assert.equal("bad_request", err.code)
    assert.equal("event 1: data.r is infinity, which JSON cannot carry; send null or a finite number", err.message)

    assert(c:append("in-1", { type = "Go" }))
    local st = server.eventually(function()
      local st = server.status_of(c, "emitter")
      return st.state == "faulted" and st
    end, 30, "the handler to fault")
    assert.matches("script emitter faulted at position 1: emitted event 1: data.x is NaN", st.error, 1, true)

    r = assert(s:admin():eval('return log.append("r-1", { type = "T", data = { x = 0/0 } })'))
    assert.same({ "event 1: data.x is NaN, which JSON cannot carry; send null or a finite number",
                  "bad_request" }, { r.values[2], r.values[3] })

    local bin = os.getenv("MOONLOG_BIN") .. " append --connect 127.0.0.1:" .. s.rpc_port
    local out = server.sh(bin .. " --id '' c-1 T 2>&1; echo status=$?")
    assert.matches("the id is empty", out, 1, true)
    assert.matches("status=[12]", out)
    out = server.sh(bin .. [[ c-1 T '{"a":1,"a":2}' 2>&1; echo status=$?]])
    assert.matches('duplicate key "a" in the top-level object', out, 1, true)
    assert.matches("status=2", out)
    assert.equal(0, #assert(c:read("c-1")))
    assert.equal(0, #assert(c:read("r-1")))
  end)

  it("are refused by the Lua log API too", function()
    local dir = server.tmpdir()
    local log = assert(require("moonlog.core").log.open { dir = dir })
    local r, msg = log.append("b-1", { { type = "T", data = { x = 0 / 0 } } })
    assert.is_nil(r)
    assert.equal("event 1: data.x is NaN, which JSON cannot carry; send null or a finite number", msg)
    r, msg = log.append("b-1", { { type = "T", data = { [1] = "a", ["1"] = "b" } } })
    assert.is_nil(r)
    assert.matches('data has the keys 1 and "1"', msg, 1, true)
    r, msg = log.append("b-1", { { type = "T", id = "" } })
    assert.is_nil(r)
    assert.matches("the id is empty", msg, 1, true)
    assert.equal(0, log.version("b-1"))
    log.close()
    os.execute("rm -rf " .. server.quote(dir))
  end)

  describe("stored by an older version", function()
    local data
    before_each(function()
      data = server.tmpdir()
      -- Written as plain values, then turned into what an older version took in.
      local s = server.start { data = data }
      local c = s.client
      assert(c:append("old-1", { type = "T", data = { n = 1, blob = "zz" } }))
      assert(c:append("old-1", { type = "T", data = { n = 2, [""] = 1 } }))
      assert(c:append("old-1", { type = "T", data = { n = 3, x = "zzzzzzzz" } }))
      assert(c:append("old-2", { type = "T", data = "zz", meta = { m = "zz" } }))
      assert(c:append("old-1", { type = "T", data = { n = 5 } }))
      assert(s:stop())
      local ext = function(b) return swap(b, "\xa2zz", "\xd4\x05z") end
      assert.equal(4, rewrite(data, {
        [1] = { data = ext },
        [2] = { data = function(b) return swap(b, "\xa0\x01", "\xc0\x01") end },
        [3] = { data = function(b) return swap(b, "\xa8zzzzzzzz", NAN) end },
        [4] = { data = ext, meta = ext },
      }))
    end)
    after_each(function() os.execute("rm -rf " .. server.quote(data)) end)

    it("read through HTTP pages, SSE, read --json, RPC and a projection", function()
      local s = server.start { data = data, args = { "--scripts", SCRIPTS } }
      local c = s.client
      local blob = { ["$ext"] = 5, base64 = "eg==" }

      -- HTTP: every page answers, with ext values in their documented form.
      local code, page = s:curl_json("GET", "/streams/old-1")
      assert.equal(200, code)
      assert.equal(4, #page)
      assert.same({ n = 1, blob = blob }, page[1].data)
      assert.same({ n = 2, null = 1 }, page[2].data)   -- a nil key, shown as JSON shows it
      assert.same({ n = 3 }, page[3].data)             -- NaN is null
      local positions = {}
      for from = 1, 5, 2 do
        local rc, all = s:curl_json("GET", "/all?from=" .. from .. "&limit=2")
        assert.equal(200, rc)
        for _, e in ipairs(all) do positions[#positions + 1] = e.position end
      end
      assert.same({ 1, 2, 3, 4, 5 }, positions)
      local _, old2 = s:curl_json("GET", "/streams/old-2")
      assert.same(blob, old2[1].data)
      assert.same({ m = blob }, old2[1].meta)

      -- SSE: five messages, each one JSON object.
      local sse = server.sh("curl -s -N -m 2 " .. server.quote(s:url("/subscribe?from=1")))
      local seen = 0
      for line in sse:gmatch("data: ([^\n]*)") do
        local e = codec.decode(codec.from_json(line))
        seen = seen + 1
        assert.equal(seen, e.position)
      end
      assert.equal(5, seen)

      -- The command line, as JSON Lines and as text.
      local bin = os.getenv("MOONLOG_BIN")
      local out = server.sh(bin .. " read --connect 127.0.0.1:" .. s.rpc_port .. " '$all' --json; echo status=$?")
      local lines = 0
      for line in out:gmatch("([^\n]*)\n") do
        if line:sub(1, 1) == "{" then
          lines = lines + 1
          codec.from_json(line)
        end
      end
      assert.equal(5, lines)
      assert.matches("status=0", out)
      out = server.sh(bin .. " read --connect 127.0.0.1:" .. s.rpc_port .. " old-2; echo status=$?")
      assert.matches('{"$ext":5,"base64":"eg=="}', out, 1, true)
      assert.matches("status=0", out)

      -- RPC: the bytes as stored; the Lua client decodes them. The REPL's log reads them too.
      local rpc = assert(c:read("old-2"))
      assert.same(blob, rpc[1].data)
      local r = assert(s:admin():eval('local e = log.read("old-2")[1] return e.data["$ext"], e.meta.m.base64'))
      assert.same({ 5, "eg==" }, r.values)

      -- A projection that reads the other fields and keeps the whole values.
      local st = server.eventually(function()
        local st = server.status_of(c, "keeper")
        return st and st.lag == 0 and st
      end, 30, "the projection at the head")
      assert.not_equal("faulted", st.state)
      local rc, state = s:curl_json("GET", "/projections/keeper")
      assert.equal(200, rc)
      assert.equal(11, state.n)
      assert.equal(4, state.count)
      assert.same({ n = 1, blob = blob }, state.kept[1])
      assert.same({ n = 2 }, state.kept[2])            -- a Lua table cannot hold the nil key
    end)

    it("read by the log's Lua binding", function()
      local log = assert(require("moonlog.core").log.open { dir = data })
      local evs = log.read("old-1")
      assert.equal(4, #evs)
      assert.same({ n = 1, blob = { ["$ext"] = 5, base64 = "eg==" } }, evs[1].data)
      assert.same({ n = 2 }, evs[2].data)
      assert.equal(5, log.read("old-2")[1].data["$ext"])
      log.close()
    end)

    it("read by a script, whole data or a field, as its Lua form", function()
      local s = server.start { data = data, args = { "--scripts", SCRIPTS } }
      local c = s.client
      local st = server.eventually(function()
        local st = server.status_of(c, "reader")
        return st and st.lag == 0 and st
      end, 30, "the reader at the head")
      assert.not_equal("faulted", st.state, st.error)
      local rc, state = s:curl_json("GET", "/projections/reader")
      assert.equal(200, rc)
      assert.same({ "5:eg==", "5:eg==" }, state.seen)  -- old-1's data.blob, old-2's data
    end)
  end)
end)
