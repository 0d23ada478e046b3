-- End-to-end: hot reload of scripts in a running server. Editors' save patterns
-- (rename over, truncate and write), bad versions reported while the old one runs,
-- reload over RPC, HTTP and SIGHUP, a deleted file and its return, a name change,
-- a new file, reload = "keep" with migrate, and the parked events' repair loop.
local server = require "support.server"

local write = server.write_file

-- An editor that writes a temporary file and renames it over the script.
local function rename_over(path, text)
  write(path .. ".tmp", text)
  assert(os.rename(path .. ".tmp", path))
end

-- An editor that truncates the file and writes it in several pieces.
local function truncate_write(path, text)
  local f = assert(io.open(path, "w"))
  local third = #text // 3
  f:write(text:sub(1, third)) f:flush()
  f:write(text:sub(third + 1, 2 * third)) f:flush()
  f:write(text:sub(2 * third + 1))
  f:close()
end

local status_of, at_head = server.status_of, server.at_head

local function eventually(fn, what) return server.eventually(fn, 20, what) end

local function handler(version, extra)
  return ([[
local ml = require "moonlog"
return ml.handler {
  name = "echo", from = "ping-*", on_error = "park",
  on = { Ping = function(e, ctx)
    %s
    ctx.emit("pong-" .. e.data.n, "Pong", { n = e.data.n, v = %d })
  end },
}
]]):format(extra or "", version)
end

local function pongs(c, n)
  local out = {}
  for i = 1, n do
    local evs = assert(c:read("pong-" .. i))
    out[i] = {}
    for _, e in ipairs(evs) do out[i][#out[i] + 1] = e.data.v end
  end
  return out
end

local function ping(c, from, to)
  for n = from, to do
    assert(c:append("ping-" .. n, { type = "Ping", data = { n = n } }))
  end
end

-- A server with one script, NAME.lua = text, that has handled pings 1 to n: the server, its
-- client and the script's file.
local function serve(name, text, n)
  local s = server.start { scripts = { [name .. ".lua"] = text } }
  ping(s.client, 1, n)
  at_head(s.client, name)
  return s, s.client, s.scripts .. "/" .. name .. ".lua"
end

describe("hot reload", function()
  after_each(server.stop_all)

  it("follows rename-over and truncate-write saves, reports bad versions and keeps the old one", function()
    local s, c, file = serve("echo", handler(1), 3)

    rename_over(file, handler(2))
    eventually(function() return status_of(c, "echo").reloads == 1 end, "the renamed-over version")
    ping(c, 4, 5)
    truncate_write(file, handler(3))
    eventually(function() return status_of(c, "echo").reloads == 2 end, "the truncated-and-written version")
    ping(c, 6, 7)

    -- a syntax error: reported with file and line, the old version handles what comes
    rename_over(file, handler(4, "local x = = 1"))
    local st = eventually(function()
      local st = status_of(c, "echo")
      return st.reload_error and st
    end, "the syntax error")
    assert.matches("echo.lua:5:", st.reload_error)
    assert.equal("running", st.state)
    ping(c, 8, 8)
    -- a validation error, then an error while loading
    truncate_write(file, handler(5):gsub('"park"', '"explode"'))
    eventually(function() return (status_of(c, "echo").reload_error or ""):match("explode") end)
    rename_over(file, 'error("broken at load")\n' .. handler(6))
    eventually(function() return (status_of(c, "echo").reload_error or ""):match("broken at load") end)
    ping(c, 9, 9)
    -- a good save replaces it and clears the error
    truncate_write(file, handler(7))
    eventually(function()
      local st = status_of(c, "echo")
      return st.reloads == 3 and not st.reload_error
    end, "the good version")
    ping(c, 10, 10)
    at_head(c, "echo")
    assert.same({ {1}, {1}, {1}, {2}, {2}, {3}, {3}, {3}, {3}, {7} }, pongs(c, 10))
    assert.matches("the new version in echo.lua did not load", server.sh("cat " .. server.quote(s.log)))
  end)

  it("reloads on reload(name) over RPC, POST /scripts/{name}/reload and SIGHUP", function()
    local s, c, file = serve("echo", handler(1), 0) -- version 1 is loaded before the file changes
    -- the file is still open for writing, so the watcher waits (a second): reload() is
    -- first, unless this machine is slower than that
    local f = assert(io.open(file, "w"))
    f:write(handler(2)) f:flush()
    local r = assert(c:call("reload", "echo"))
    assert.same({ "echo", "echo.lua" }, { r.name, r.file })
    assert.is_truthy(r.outcome == "reloaded" or r.outcome == "unchanged")
    f:close()
    r = assert(c:call("reload", "echo"))
    assert.equal("unchanged", r.outcome)
    ping(c, 1, 1)

    f = assert(io.open(file, "w"))
    f:write(handler(3, "local x = = 1")) f:flush()
    local ok, err = c:call("reload", "echo")
    assert.is_nil(ok)
    assert.equal("script", err.code)
    assert.matches("echo.lua:5:", err.message)
    local code, body = s:curl_json("POST", "/scripts/echo/reload")
    assert.equal(422, code)
    assert.matches("echo.lua:5:", body.error.message)
    f:close()

    f = assert(io.open(file, "w"))
    f:write(handler(4)) f:flush()
    code, body = s:curl_json("POST", "/scripts/echo/reload")
    assert.equal(200, code)
    assert.is_truthy(body.outcome == "reloaded" or body.outcome == "unchanged")
    f:close()
    ping(c, 2, 2)

    f = assert(io.open(file, "w"))
    f:write(handler(5)) f:flush()
    os.execute("kill -HUP " .. s.pid)
    eventually(function() return status_of(c, "echo").reloads == 3 end, "the reload by SIGHUP")
    f:close()
    ping(c, 3, 3)
    at_head(c, "echo")
    assert.same({ {2}, {4}, {5} }, pongs(c, 3))
    code = s:curl("POST", "/scripts/nobody/reload")
    assert.equal(404, code)
    ok, err = c:call("reload", "nobody")
    assert.equal("not_found", err.code)
  end)

  it("unloads a deleted file, resumes it from its checkpoint when restored, and loads new files", function()
    local s, c, file = serve("echo", handler(1), 2)
    os.remove(file)
    eventually(function() return status_of(c, "echo") == nil end, "the unload")
    ping(c, 3, 4)
    write(file, handler(2))
    eventually(function() return status_of(c, "echo") end, "the restored script")
    at_head(c, "echo")
    -- it went on after its checkpoint: what came meanwhile is handled once, by the new code
    assert.same({ {1}, {1}, {2}, {2} }, pongs(c, 4))

    -- a name change is another script: it starts from its own start
    write(file, (handler(3):gsub('name = "echo"', 'name = "echo2", start = "end"')))
    eventually(function() return status_of(c, "echo2") and not status_of(c, "echo") end, "echo2")
    ping(c, 5, 5)
    at_head(c, "echo2")
    assert.same({ {1}, {1}, {2}, {2}, {3} }, pongs(c, 5))

    -- a new file: a counter from the beginning
    write(s.scripts .. "/count.lua", [[
local ml = require "moonlog"
return ml.projection { name = "count", from = "ping-*", init = function() return { n = 0 } end,
  on = { Ping = function(s) s.n = s.n + 1 end }, queries = { n = function(s) return s.n end } }
]])
    eventually(function() return status_of(c, "count") end, "the new file")
    at_head(c, "count")
    assert.equal(5, assert(c:call("query", "count", "n")))
  end)

  it("rebuilds a projection beside the old one, or keeps its state through migrate", function()
    local function counter(step, reload, migrate)
      return ([[
local ml = require "moonlog"
return ml.projection { name = "count", from = "ping-*", reload = %q, %s
  init = function() return { n = 0 } end,
  on = { Ping = function(s) s.n = s.n + %d end },
  queries = { n = function(s) return s.n end, tag = function(s) return s.tag end } }
]]):format(reload, migrate or "", step)
    end
    local _, c, file = serve("count", counter(1, "rebuild"), 200)
    assert.equal(200, c:call("query", "count", "n"))
    write(file, counter(10, "rebuild")) -- every event again, with the new code
    eventually(function() return status_of(c, "count").reloads == 1 end, "the rebuild's swap")
    at_head(c, "count")
    assert.equal(2000, c:call("query", "count", "n"))
    -- keep: the state stays, migrate reshapes it, the new code goes on from here
    write(file, counter(100, "keep", 'migrate = function(old) old.tag = "migrated" return old end,'))
    eventually(function() return status_of(c, "count").reloads == 2 end, "the kept state")
    assert.equal(2000, c:call("query", "count", "n"))
    assert.equal("migrated", c:call("query", "count", "tag"))
    ping(c, 201, 201)
    at_head(c, "count")
    assert.equal(2100, c:call("query", "count", "n"))
    -- a migrate that fails is a bad version: the old state and code stay
    write(file, counter(1000, "keep", 'migrate = function(old) error("cannot migrate") end,'))
    eventually(function() return (status_of(c, "count").reload_error or ""):match("cannot migrate") end)
    ping(c, 202, 202)
    at_head(c, "count")
    assert.equal(2200, c:call("query", "count", "n"))
  end)

  it("answers clients while a slow rebuild runs: the loop looks at its sockets between slices", function()
    local s = server.start { scripts = { server.source("examples/bank/scripts") } }
    local c = s.client
    assert(c:call("command", "account", "Open", { id = 1, owner = "o" }))
    local admin = s:admin()
    assert(admin:eval([[
      for b = 1, 60 do
        local evs = {}
        for i = 1, 1000 do evs[i] = { type = "Deposited", data = { amount = 1 } } end
        assert(log.append("account-1", evs))
      end]]))
    admin:close()
    at_head(c, "balances", 60)
    -- a new version that spins on each deposit, so that its rebuild takes a while
    local file = s.scripts .. "/balances.lua"
    local text = assert(io.open(file)):read("a")
    write(file, (text:gsub("Deposited = function%(s, e%)", "Deposited = function(s, e) for _ = 1, 2000 do end", 1)))
    -- every status asked for while it rebuilds is answered between two of its slices
    -- (the loop used to run the slices back to back and answer once the rebuild was done)
    local answered = 0
    server.eventually(function()
      local st = status_of(c, "balances")
      if st.rebuild_position then answered = answered + 1 end
      return st.reloads == 1
    end, 60, "the rebuilt version")
    assert.is_true(answered >= 5, ("only %d answers came while it rebuilt"):format(answered))
    assert.are.equal(60000, assert(c:call("query", "balances", "balance", "account-1")))
  end)

  it("lists parked events with their error and traceback, and replays them with fixed code", function()
    local poisoned = handler(1, 'assert(e.data.n % 2 == 1, "even numbers are poison")')
    local s, c, file = serve("echo", poisoned, 6)
    local parked = assert(c:call("parked", "echo"))
    assert.equal(3, #parked)
    for i, p in ipairs(parked) do
      assert.equal(2 * i, p.data.n)
      assert.equal("ping-" .. 2 * i, p.stream)
      assert.equal("Ping", p.type)
      assert.matches("echo.lua:5: even numbers are poison", p.reason)
      assert.matches("^stack traceback:", p.traceback)
    end
    -- still broken: nothing succeeds, nothing is removed
    local r = assert(c:call("replay_parked", "echo"))
    assert.same({ 3, 0, 3 }, { r.replayed, r.succeeded, #r.failed })
    -- the same in eval, on the admin socket
    local admin = s:admin()
    r = assert(admin:eval('return #scripts.parked("echo"), scripts.replay_parked("echo")'))
    assert.same({ 3, 0, 3 }, { r.values[2].replayed, r.values[2].succeeded, #r.values[2].failed })
    assert.equal(3, r.values[1])
    local _, err = admin:eval('return scripts.parked("nope")')
    assert.matches("no handler named \"nope\"", err.message)
    admin:close()
    -- fixed for 2 and 4 only
    write(file, handler(2, 'assert(e.data.n % 2 == 1 or e.data.n < 6, "six")'))
    eventually(function() return status_of(c, "echo").reloads == 1 end)
    r = assert(c:call("replay_parked", "echo"))
    assert.same({ 3, 2, 1 }, { r.replayed, r.succeeded, #r.failed })
    assert.matches("six", r.failed[1].reason)
    local code, left = s:curl_json("GET", "/scripts/echo/parked")
    assert.equal(200, code)
    assert.equal(1, #left)
    assert.equal(6, left[1].data.n)
    -- fixed for all, over HTTP
    write(file, handler(3))
    eventually(function() return status_of(c, "echo").reloads == 2 end)
    code, r = s:curl_json("POST", "/scripts/echo/parked/replay")
    assert.equal(200, code)
    assert.same({ 1, 1 }, { r.replayed, r.succeeded })
    assert.same({}, assert(c:call("parked", "echo")))
    -- each event handled once: the odd ones live, the even ones by the replays, with causation
    local got = pongs(c, 6)
    assert.same({ {1}, {2}, {1}, {2}, {1}, {3} }, got)
    local pong = assert(c:read("pong-2"))[1]
    local ping2 = assert(c:read("ping-2"))[1]
    assert.equal(ping2.id, pong.meta.causation_id)
    -- the log tells it: parked copies, then Replayed markers
    local stream = assert(c:read("$parked-echo"))
    local markers = 0
    for _, e in ipairs(stream) do markers = markers + (e.type == "Replayed" and 1 or 0) end
    assert.equal(3, markers)
    assert.equal(404, (s:curl("GET", "/scripts/nobody/parked")))
  end)
end)
