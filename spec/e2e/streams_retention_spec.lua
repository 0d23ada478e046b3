-- End-to-end: deletion and retention over HTTP, the command line and the REPL, and what
-- subscriptions and hosted scripts see of them (docs/log.md, "Removed events";
-- docs/operations.md, "Retention and deletion").
local server = require "support.server"
local files = require "moonlog.testing.files"

local BIN = assert(os.getenv("MOONLOG_BIN"))
local q = files.quote

-- Runs the binary with a shell argument string; returns exit status, stdout, stderr.
local function run(args) return files.run(q(BIN) .. " " .. args) end

local function types(events)
  local t = {}
  for i, e in ipairs(events) do t[i] = e.type .. "@" .. e.version end
  return t
end

describe("delete and metadata over HTTP", function()
  after_each(server.stop_all)

  it("deletes with If-Match as the expected version: 412 when it does not match", function()
    local s = server.start()
    assert(s.client:append("acct-1", { { type = "Opened" }, { type = "Deposited" } }))
    local code, body = s:curl_json("DELETE", "/streams/acct-1", nil, { "-H", "If-Match: 1" })
    assert.equal(412, code)
    assert.equal(2, body.error.actual_version)
    code, body = s:curl_json("DELETE", "/streams/acct-1", nil, { "-H", 'If-Match: "2"' })
    assert.equal(200, code)
    assert.equal(3, body.version)
    code, body = s:curl_json("GET", "/streams/acct-1")
    assert.equal(200, code)
    assert.same({ "$deleted@3" }, types(body))
    -- deleted again: nothing appended, the deletion's answer
    code, body = s:curl_json("DELETE", "/streams/acct-1")
    assert.equal(200, code)
    assert.same({ position = 3, version = 3, duplicate = true }, body)
    code, body = s:curl_json("DELETE", "/streams/nobody")
    assert.equal(404, code)
    assert.equal("not_found", body.error.code)
    assert.matches("no such stream", body.error.message)
    code = s:curl("DELETE", "/streams/nobody", nil, { "-H", "If-Match: exists" })
    assert.equal(412, code)
    -- the stream is written again after a soft delete; then a hard delete: 410 Gone for ever
    code = s:curl("POST", "/streams/acct-1", '{"type":"Opened"}')
    assert.equal(201, code)
    code, body = s:curl_json("DELETE", "/streams/acct-1?hard=true")
    assert.equal(200, code)
    code, body = s:curl_json("POST", "/streams/acct-1", '{"type":"Opened"}')
    assert.equal(410, code)
    assert.equal("refused", body.error.code)
    assert.matches("deleted for good", body.error.message)
    code = s:curl("PUT", "/streams/acct-1/metadata", '{"max_count":1}')
    assert.equal(410, code)
    code = s:curl("DELETE", "/streams/acct-1")
    assert.equal(410, code)
    code, body = s:curl_json("DELETE", "/streams/acct-1?hard=true")
    assert.equal(200, code)
    assert.is_true(body.duplicate)
    -- a read of it still answers 200: the tombstone, as for every deleted stream
    code, body = s:curl_json("GET", "/streams/acct-1")
    assert.equal(200, code)
    assert.same({ "$deleted@5" }, types(body))
    code, body = s:curl_json("DELETE", "/streams/acct-1?hard=maybe")
    assert.equal(400, code)
    code, body = s:curl_json("DELETE", "/streams/%24parked-x")
    assert.equal(400, code)
    assert.matches("moonlog's own", body.error.message)
    code, body = s:curl_json("GET", "/streams/acct-1/metadata")
    assert.equal(200, code)
    assert.is_true(body.hard)
    assert.equal(5, body.deleted_version)
  end)

  it("sets and reads metadata; bad bodies are refused with a reason", function()
    local s = server.start()
    local evs = {}
    for i = 1, 5 do evs[i] = { type = "E" .. i } end
    assert(s.client:append("x", evs))
    local code, body = s:curl_json("PUT", "/streams/x/metadata", '{"max_count": 2}')
    assert.equal(200, code)
    assert.equal(1, body.version) -- of $meta-x
    code, body = s:curl_json("GET", "/streams/x")
    assert.same({ "E4@4", "E5@5" }, types(body))
    code, body = s:curl_json("GET", "/all")
    assert.same({ "E4@4", "E5@5", "$metadata@1" }, types(body))
    code, body = s:curl_json("PUT", "/streams/x/metadata", '{"truncate_before": 5}', { "-H", "If-Match: 1" })
    assert.equal(200, code)
    code, body = s:curl_json("GET", "/streams/x/metadata")
    assert.same({ max_age = 0, max_count = 2, truncate_before = 5, deleted = false, deleted_version = 0,
                  hard = false }, body)
    code = s:curl("PUT", "/streams/x/metadata", '{"max_count": 3}', { "-H", "If-Match: 1" })
    assert.equal(412, code)
    code, body = s:curl_json("PUT", "/streams/x/metadata", '{"max_count": -1}')
    assert.equal(400, code)
    assert.matches("whole number", body.error.message)
    code = s:curl("PUT", "/streams/x/metadata", '[1, 2]')
    assert.equal(400, code)
    code = s:curl("PUT", "/streams/x/metadata", 'not json')
    assert.equal(400, code)
    local big = os.tmpname()
    files.write(big, '{"max_count": 1, "pad": "' .. ("z"):rep(10 * 1024 * 1024) .. '"}')
    code = s:curl("PUT", "/streams/x/metadata", nil, { "--data-binary", "@" .. big })
    os.remove(big)
    assert.is_true(code == 413 or code == 400, "a 10 MB metadata answered " .. tostring(code))
    code = s:curl("POST", "/streams/x/metadata", '{}')
    assert.equal(405, code)
    code, body = s:curl_json("GET", "/streams/x")
    assert.same({ "E5@5" }, types(body))
  end)
end)

describe("moonlog delete and moonlog meta", function()
  local dir
  before_each(function() dir = files.tmpdir() end)
  after_each(function()
    server.stop_all()
    files.remove(dir)
  end)

  it("delete and set limits on a folder and through a server, with exit statuses", function()
    local data = q(dir .. "/d")
    assert.equal(0, (run(("append --data %s a-1 Opened"):format(data))))
    local st, out, err = run(("delete --data %s a-1 --expect 5"):format(data))
    assert.equal(1, st)
    assert.matches("expected version 5, but it is 1", err)
    st, out = run(("delete --data %s a-1"):format(data))
    assert.equal(0, st)
    assert.matches("deleted a%-1: its %$deleted event is version 2", out)
    st, _, err = run(("delete --data %s nobody"):format(data))
    assert.equal(1, st)
    assert.matches("cannot delete nobody: there is no such stream", err)
    st, out = run(("delete --data %s a-1"):format(data))
    assert.equal(0, st)
    assert.matches("already deleted a%-1: its %$deleted event is version 2", out)
    st, _, err = run(("delete --data %s"):format(data))
    assert.equal(2, st)
    assert.matches("needs a STREAM", err)
    st, _, err = run(("delete --data %s '$all'"):format(data))
    assert.equal(2, st)
    st, out = run(("meta --data %s a-1 --max-count 10 --max-age 30d --json"):format(data))
    assert.equal(0, st)
    assert.matches('"version":1', out)
    st, out = run(("meta --data %s a-1"):format(data))
    assert.equal(0, st)
    assert.matches('"max_age":2592000,"max_count":10', out, 1, true)
    st, _, err = run(("meta --data %s a-1 --max-count -3"):format(data))
    assert.equal(2, st)
    st, _, err = run(("meta --data %s a-1 --max-age 2w"):format(data))
    assert.equal(2, st)
    assert.matches("--max-age takes seconds", err, 1, true)

    -- through a server holding the folder, and over --connect: the same, and hard is for ever
    local s = server.start { data = dir .. "/d" }
    st, out = run(("delete --data %s a-1 --hard --expect 2"):format(data))
    assert.equal(0, st, out)
    assert.matches("for good", out)
    st, _, err = run(("append --connect 127.0.0.1:%d a-1 Opened"):format(s.rpc_port))
    assert.equal(1, st)
    assert.matches("deleted for good", err)
    st, _, err = run(("delete --connect 127.0.0.1:%d a-1"):format(s.rpc_port))
    assert.equal(1, st)
    st, out = run(("meta --connect 127.0.0.1:%d a-1"):format(s.rpc_port))
    assert.equal(0, st)
    assert.matches('"hard":true', out, 1, true)
    st, out = run(("read --connect 127.0.0.1:%d a-1 --json"):format(s.rpc_port))
    assert.equal(0, st)
    assert.matches('"type":"$deleted"', out, 1, true)
    assert.is_nil(out:find('"type":"Opened"', 1, true))
  end)

  it("applies max age by each event's own time (imported with old times)", function()
    local now = os.time() * 1000
    local lines = {}
    for i = 1, 4 do -- two events 10 days old, two of a minute ago
      local t = i <= 2 and now - 10 * 86400 * 1000 or now - 60 * 1000
      lines[i] = ('{"position":%d,"stream":"s-1","version":%d,"type":"E%d","id":"id-%d","time":%d,"data":null,"meta":null}')
        :format(i, i, i, i, t)
    end
    files.write(dir .. "/e.jsonl", table.concat(lines, "\n") .. "\n")
    local data = q(dir .. "/d")
    assert.equal(0, (run(("import --data %s %s"):format(data, q(dir .. "/e.jsonl")))))
    assert.equal(0, (run(("meta --data %s s-1 --max-age 1d"):format(data))))
    local st, out = run(("read --data %s s-1 --json"):format(data))
    assert.equal(0, st)
    assert.is_nil(out:find('"E1"', 1, true))
    assert.is_nil(out:find('"E2"', 1, true))
    assert.matches('"type":"E3"', out, 1, true)
    -- a server on the folder: its reads, $all and a backwards read leave them out too
    local s = server.start { data = dir .. "/d" }
    assert.same({ "E3@3", "E4@4" }, types(assert(s.client:read("s-1"))))
    assert.same({ "E4@4", "E3@3" }, types(assert(s.client:read("s-1", 0, 10, true))))
    assert.same({ "E3@3", "E4@4", "$metadata@1" }, types(assert(s.client:read("$all"))))
    assert.same({ "E3@3" }, types(assert(s.client:read("$all", 1, 1))))
    -- a limit of 0 lifts it
    assert(s.client:set_metadata("s-1", { max_age = 0 }))
    assert.equal(4, #assert(s.client:read("s-1")))
  end)
end)

describe("the REPL's log", function()
  local dir
  before_each(function() dir = files.tmpdir() end)
  after_each(function()
    server.stop_all()
    files.remove(dir)
  end)

  local CHUNK = [[
local r = assert(log.append("acct-1", { { type = "Opened" }, { type = "Deposited" } }))
local d = assert(log.delete("acct-1", { hard = true, expected = 2 }))
local again, msg = log.append("acct-1", { type = "Opened" })
local meta = assert(log.set_metadata("other", { max_count = 1 }))
local bad, why = log.delete("$all")
local m = log.metadata("acct-1")
return d.version .. " " .. tostring(again) .. " " .. (msg:match("deleted for good") or msg)
  .. " " .. meta.version .. " " .. tostring(bad) .. " " .. (why:match("moonlog's own") or why)
  .. " " .. tostring(m.hard) .. " " .. #log.read("acct-1")
]]

  it("deletes and sets metadata in a server's eval and on a folder alike", function()
    local st, here = run(("eval --data %s %s"):format(q(dir .. "/local"), q(CHUNK)))
    assert.equal(0, st, here)
    assert.equal('"3 nil deleted for good 1 nil moonlog\'s own true 1"\n', here)
    local s = server.start()
    local status, there = run(("eval --data %s %s"):format(q(s.data), q(CHUNK)))
    assert.equal(0, status, there)
    assert.equal(here, there)
  end)
end)

-- A projection that counts deposits per stream and forgets a stream when it is deleted, and
-- one that counts every deposit and never looks at deletions.
local PROJ = [[
local ml = require "moonlog"
return ml.projection {
  name = "%s", from = "acct-*", reload = "rebuild",
  init = function() return { n = 0, per = {}, deleted = 0 } end,
  on = {
    Deposited = function(s, e) s.n = s.n + 1; s.per[e.stream] = (s.per[e.stream] or 0) + 1 end,
    %s
  },
  queries = { n = function(s) return s.n end, per = function(s, k) return s.per[k] or 0 end,
              deleted = function(s) return s.deleted end },
} -- %s
]]
local REACTS = [=[["$deleted"] = function(s, e) s.deleted = s.deleted + 1; s.n = s.n - (s.per[e.stream] or 0); s.per[e.stream] = nil end,]=]

-- A handler that closes an account's card when the account is deleted.
local CLOSER = [[
local ml = require "moonlog"
return ml.handler { name = "closer", from = "acct-*",
  on = { ["$deleted"] = function(e, ctx)
    ctx.emit("card-" .. e.stream, "CardClosed", { hard = e.data.hard, at = e.version })
  end } }
]]

describe("subscriptions and scripts", function()
  after_each(server.stop_all)

  it("a handler reacts to the deletion event, once", function()
    local s = server.start { scripts = { ["closer.lua"] = CLOSER } }
    local c = s.client
    assert(c:append("acct-1", { type = "Opened" }))
    assert(c:delete("acct-1", 1, true))
    local closed = server.eventually(function()
      local evs = assert(c:read("card-acct-1"))
      return evs[1] and evs
    end, 20, "the handler's emit")
    assert.equal(1, #closed)
    assert.same({ hard = true, at = 2 }, closed[1].data)
  end)

  it("a subscription sees the deletion event, live and in its catch-up without the removed events", function()
    local s = server.start()
    local c = s.client
    local sub = assert(c:subscribe("acct-*", 0))
    assert(c:append("acct-1", { { type = "Opened" }, { type = "Deposited" } }))
    for _ = 1, 2 do assert(c:next_event(10)) end
    assert(c:delete("acct-1"))
    local id, e = c:next_event(10)
    assert.equal(sub, id)
    assert.equal("$deleted", e.type)
    assert.same({ hard = false }, e.data)
    -- a new subscription catching up from the start sees only what is kept
    local late = assert(server.start and s:admin())
    assert(late:subscribe("acct-*", 0))
    local _, first = late:next_event(10)
    assert.equal("$deleted", first.type)
    late:close()
  end)

  it("a projection reacts to the deletion; a rebuild after it folds only what remains", function()
    local s = server.start { scripts = {
      ["reacts.lua"] = PROJ:format("reacts", REACTS, "v1"),
      ["counts.lua"] = PROJ:format("counts", "", "v1"),
    } }
    local c = s.client
    assert(c:append("acct-1", { { type = "Deposited" }, { type = "Deposited" }, { type = "Deposited" } }))
    assert(c:append("acct-2", { { type = "Deposited" }, { type = "Deposited" } }))
    assert(c:delete("acct-1"))
    server.at_head(c, "reacts")
    server.at_head(c, "counts")
    assert.equal(2, assert(c:call("query", "reacts", "n")))
    assert.equal(1, assert(c:call("query", "reacts", "deleted")))
    assert.equal(5, assert(c:call("query", "counts", "n"))) -- it folded them before the delete
    -- a new version rebuilds from the log: the deleted stream's deposits are not there
    files.write(s.scripts .. "/counts.lua", PROJ:format("counts", "", "v2"))
    server.eventually(function() return server.status_of(c, "counts").reloads == 1 end, 30, "the rebuild")
    server.at_head(c, "counts")
    assert.equal(2, assert(c:call("query", "counts", "n")))
    assert.equal(0, assert(c:call("query", "counts", "per", "acct-1")))
    -- a state as of a position is replayed the same way
    local admin = s:admin()
    local at = assert(admin:eval(("return at(%d, 'counts').n"):format(assert(c:stats()).head)))
    assert.same({ 2 }, at.values)
    admin:close()
    -- and the one that reacts folds the same after a rebuild as it did live
    files.write(s.scripts .. "/reacts.lua", PROJ:format("reacts", REACTS, "v2"))
    server.eventually(function() return server.status_of(c, "reacts").reloads == 1 end, 30, "the rebuild")
    server.at_head(c, "reacts")
    assert.equal(2, assert(c:call("query", "reacts", "n")))
    assert.equal(1, assert(c:call("query", "reacts", "deleted")))
  end)
end)
