-- End-to-end: scavenging a running server (docs/operations.md, "Scavenging"). The events of
-- deleted streams carry a marker; a scavenge runs while appends go on and a subscription
-- follows; afterwards every acknowledged kept event is read at its position, the marker is
-- in no file of the log, check passes, and a projection rebuilt over the log folds what
-- remains. The CLI (online and on a stopped log) and POST /scavenge too.
local server = require "support.server"
local files = require "support.files"

local BIN = assert(os.getenv("MOONLOG_BIN"), "MOONLOG_BIN must name the moonlog binary")
local MARKER = "PERSONAL-DATA-7f3a"
local PAD = string.rep("p", 200)

-- Runs the moonlog binary with args (quoted): exit status and output.
local function moonlog(...)
  local args = { files.quote(BIN) }
  for _, a in ipairs({ ... }) do args[#args + 1] = files.quote(a) end
  local p = io.popen("env -u LD_PRELOAD " .. table.concat(args, " ") .. " 2>&1; echo \"rc=$?\"")
  local text = p:read("a")
  p:close()
  local body, rc = text:match("^(.-)rc=(%d+)%s*$")
  return tonumber(rc), body
end

-- The files of DATA/log that hold `needle`.
local function files_holding(data, needle)
  return files.sh(("grep -l -a -F %s %s/log/* || true"):format(files.quote(needle), files.quote(data)))
end

-- Appends the spec's events: 40 users' events with the marker, then accounts' events that
-- push them into finished segments. Returns the accounts' events by position.
local function fill(c)
  for i = 1, 400 do
    assert(c:append("user-" .. (i % 40), { type = "Noted", data = { secret = MARKER, pad = PAD, amount = 1 } }))
  end
  local kept = {}
  for i = 1, 1200 do
    local r = assert(c:append("acct-" .. (i % 30), { type = "Noted", data = { amount = i, pad = PAD } }))
    kept[r.position] = i
  end
  for u = 0, 39 do assert(c:delete("user-" .. u)) end
  return kept
end

local function scavenge_stats(c)
  return assert(c:stats()).scavenge
end

describe("scavenge", function()
  after_each(server.stop_all)

  it("rewrites a running server's log under appends and a subscription, and the bytes are gone", function()
    local s = server.start { args = { "--segment-size", "65536" } }
    local c = s.client
    local kept = fill(c)
    local sub = s:connect()
    assert(sub:subscribe("*", 0))
    local seen, last = {}, 0
    local function drain(timeout)
      while true do
        local id, e = sub:next_event(timeout)
        if not id then return end
        assert.is_true(e.position > last, "subscription positions increase")
        last = e.position
        seen[e.position] = e
      end
    end
    drain(0.2)

    local started = assert(c:call("scavenge"))
    assert.is_true(started.running)
    local _, busy = c:call("scavenge")
    assert.equal("busy", busy and busy.code)
    -- appends go on, one at a time, until the scavenge is done (and some more)
    local live, polls = {}, 0
    local st = scavenge_stats(c)
    while st.running or polls < 50 do
      local r = assert(c:append("live", { type = "Noted", data = { amount = 0, n = polls } }))
      live[#live + 1] = r.position
      polls = polls + 1
      drain(0)
      st = scavenge_stats(c)
    end
    assert.equal("", st.error)
    assert.equal(400, st.events_removed)
    assert.is_true(st.rewritten > 0 and st.segments_done == st.segments)
    assert.is_true(st.bytes_reclaimed > 400 * 200, "bytes given back: " .. st.bytes_reclaimed)

    -- every acknowledged kept event, at its position; no user event
    local all = assert(c:read("$all", 0, 100000))
    local at = {}
    for _, e in ipairs(all) do
      at[e.position] = e
      -- of a deleted stream, only its $deleted event is left
      assert.is_true(not e.stream:match("^user%-") or e.type == "$deleted",
        "a removed event is read: " .. e.stream .. " " .. e.type)
    end
    for pos, i in pairs(kept) do
      assert.equal(i, at[pos] and at[pos].data.amount, "position " .. pos)
    end
    for _, pos in ipairs(live) do assert.equal("live", at[pos] and at[pos].stream) end
    -- the subscription got every live append, in order, past the scavenge
    server.eventually(function() drain(0.05) return seen[live[#live]] ~= nil end, 10, "the last live event")
    for _, pos in ipairs(live) do assert.truthy(seen[pos], "subscription missed " .. pos) end
    -- a deleted stream keeps its version
    assert.equal(11, assert(c:metadata("user-1")).deleted_version)

    assert.equal("", files_holding(s.data, MARKER))
    assert.is_true(s:stop())
    local rc, out = moonlog("check", "--data", s.data)
    assert.equal(0, rc, out)
    s:launch()
    assert.same(all, assert(s.client:read("$all", 0, 100000)))
  end)

  it("rebuilds a projection after a scavenge from what remains", function()
    local TOTALS = [[
local ml = require "moonlog"
return ml.projection {
  name = "totals",
  from = "*",
  init = function() return { n = 0, sum = 0 } end,
  on = { Noted = function(s, e) s.n = s.n + 1; s.sum = s.sum + e.data.amount end },
  queries = { n = function(s) return s.n end, sum = function(s) return s.sum end },
  reload = "rebuild",
}
]]
    local s = server.start { args = { "--segment-size", "65536" }, scripts = { ["totals.lua"] = TOTALS } }
    local c = s.client
    fill(c)
    local rc, out = moonlog("scavenge", "--data", s.data)
    assert.equal(0, rc, out)
    assert.matches("400 events removed", out)
    -- a new version of the script: rebuilt from the log, after the scavenge
    files.write(s.scripts .. "/totals.lua", TOTALS .. "-- v2\n")
    assert(c:call("reload", "totals"))
    server.eventually(function()
      local n = c:call("query", "totals", "n")
      return n == 1200
    end, 20, "totals rebuilt over the 1200 kept events")
    assert.equal(1200 * 1201 / 2, c:call("query", "totals", "sum"))
  end)

  it("restarts a handler from a checkpoint past a scavenged range: each kept event handled once",
     function()
    local ECHO = [[
local ml = require "moonlog"
return ml.handler { name = "echo", from = "*",
  on = { Noted = function(e, ctx) ctx.emit("echo-" .. e.stream, "Echoed", { of = e.position }) end } }
]]
    local s = server.start { args = { "--segment-size", "65536" }, scripts = { ["echo.lua"] = ECHO } }
    local c = s.client
    local function echoes()
      local n = 0
      for _, e in ipairs(assert(c:read_all("$all"))) do n = n + (e.type == "Echoed" and 1 or 0) end
      return n
    end
    fill(c) -- 400 events of users (deleted after), 1200 of accounts
    server.eventually(function() return echoes() == 1600 end, 30, "every event echoed once")
    assert.is_true(s:stop())
    local rc, out = moonlog("scavenge", "--data", s.data)
    assert.equal(0, rc, out)
    assert.matches("400 events removed", out)
    s:launch()
    c = s.client
    for i = 1, 5 do assert(c:append("acct-new", { type = "Noted", data = { amount = i } })) end
    server.eventually(function() return echoes() == 1605 end, 30, "the new events echoed")
    require("socket").sleep(0.5) -- time for a second run over anything, which must not come
    assert.equal(1605, echoes())
  end)

  it("runs from the CLI on a stopped log and over HTTP", function()
    local s = server.start { args = { "--segment-size", "65536" } }
    fill(s.client)
    assert.is_true(s:stop())
    local rc, out = moonlog("scavenge", "--data", s.data, "--json")
    assert.equal(0, rc, out)
    local removed = out:match('"events_removed":(%d+)')
    assert.equal("400", removed, out)
    assert.equal("", files_holding(s.data, MARKER))
    rc, out = moonlog("check", "--data", s.data)
    assert.equal(0, rc, out)
    s:launch()
    local code, body = s:curl_json("POST", "/scavenge")
    assert.equal(202, code)
    assert.is_true(body.running)
    server.eventually(function()
      local c2, b2 = s:curl_json("GET", "/scavenge")
      return c2 == 200 and not b2.running
    end, 10, "the HTTP scavenge to finish")
    local _, b = s:curl_json("GET", "/scavenge")
    assert.equal(0, b.events_removed) -- the stubs are what is left of them
    code = s:curl("DELETE", "/scavenge")
    assert.equal(405, code)
  end)
end)
