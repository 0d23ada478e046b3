-- End-to-end: a node of a replicated log whose disk fails a sync (docs/scale-out.md, "a
-- node's disk fails a sync"). Two moonlog nodes on a real 3-node NATS JetStream cluster
-- (tools/nats-cluster.sh on loopback ports). A node shows an applied entry to its readers
-- before its own fdatasync; when that sync fails nothing can be undone, so the node must
-- say so: its clients' appends fail with the reason, from then on too, while the other node
-- serves, and a retry there is answered `duplicate`. Restarted on an empty data folder, as
-- the docs tell, the node catches up from the stream: the same $all as the other, no gap,
-- nothing twice.
--
-- And one server alone (no cluster needed): the append whose sync failed is refused, the
-- write is undone, the log takes no more appends until a restart (the undo's own sync failed
-- too) but serves reads, and started again it holds exactly what was acknowledged.
--
-- The failing disk: support/failsync.c, preloaded into the server, fails the fdatasync of
-- its segments with EIO while a trigger file exists (the data written stays in the page
-- cache).
local server = require "support.server"
local cluster = require "support.cluster"

local sh, q = server.sh, server.quote
local node, all_of = cluster.node, cluster.all_of
local function eventually(fn, seconds, what) return server.eventually(fn, seconds or 30, what) end

local FAILSYNC = os.getenv("FAILSYNC_SO")
local have_shim = FAILSYNC and sh("test -f " .. q(FAILSYNC) .. " && echo y") ~= ""
local function when(ok, why) return ok and describe or function(name) pending(name .. " (" .. why .. ")") end end
local describe_one = when(have_shim, "no FAILSYNC_SO: run it through ctest")
local describe = when(have_shim and cluster.available, have_shim and cluster.missing or "no FAILSYNC_SO: run it through ctest")

local BROKEN = "failed to sync entries of the journal it had written"

-- How many lines of the node's stderr hold `text`.
local function said(s, text)
  local n = 0
  for line in sh("cat " .. q(s.log)):gmatch("[^\n]+") do
    if line:find(text, 1, true) then n = n + 1 end
  end
  return n
end

describe("a node whose disk fails a sync, on a replicated log", function()
  setup(cluster.up)
  teardown(cluster.down)
  after_each(server.stop_all)

  it("fails its clients' appends with the reason while the other node serves, and catches up on a new data folder", function()
    local trigger = server.tmpdir() .. "/fail-now"
    local a = node("SYNC", { env = { LD_PRELOAD = FAILSYNC, ML_FAILSYNC = trigger } })
    local b = node("SYNC")
    local ca, cb = cluster.client(a), cluster.client(b)
    for i = 1, 5 do assert(ca:append("before", { type = "Up", id = "before-" .. i, data = { i = i } })) end
    cluster.same_all(ca, cb, 5)

    sh("touch " .. q(trigger))
    local r, err = ca:append("lost", { type = "Synced", id = "lost-1", data = { n = 1 } })
    assert.is_nil(r, "an append whose sync failed is not acknowledged")
    assert.truthy(err.message:find(BROKEN, 1, true), err.message)
    sh("rm -f " .. q(trigger))

    -- the stream holds the entry: B applied it, and a retry there is a duplicate
    eventually(function() return #assert(cb:read("lost")) == 1 end, 30, "B applied the entry")
    local again = assert(cb:append("lost", { type = "Synced", id = "lost-1", data = { n = 1 } }))
    assert.is_true(again.duplicate)
    -- A refuses appends from then on, saying why, even with its disk well again
    local r2, err2 = ca:append("after", { type = "Refused", id = "after-a", data = {} })
    assert.is_nil(r2)
    assert.truthy(err2.message:find(BROKEN, 1, true), err2.message)
    -- once, A's log says what happened and what to do; it does not retry as after a full disk
    -- (the line is written just after the failed append is answered: it may come a moment later)
    eventually(function() return said(a, "this node stops applying the stream: the log in") > 0 end,
               10, "A's log says it stops applying")
    assert.equal(1, said(a, "this node stops applying the stream: the log in"))
    assert.equal(1, said(a, "Start it again on an empty data folder"))
    assert.equal(0, said(a, "free some disk space"))
    if os.getenv("SHOW_LOG") then print(sh("cat " .. q(a.log))) end
    -- B serves on
    for i = 1, 3 do assert(cb:append("after", { type = "Served", id = "after-b-" .. i, data = { i = i } })) end

    -- A, stopped and started on an empty data folder, catches up from the stream
    ca:close()
    a:stop()
    local a2 = node("SYNC")
    local ca2 = cluster.client(a2)
    local all = cluster.same_all(ca2, cb, 9)
    assert.equal(9, #all)
    local ids = {}
    for _, e in ipairs(all) do ids[e[5]] = true end
    assert.is_true(ids["lost-1"] and ids["after-b-3"] and not ids["after-a"],
                   "the entry whose sync failed is kept once; the refused append is not there")
    assert(ca2:append("after", { type = "Served", id = "after-a2", data = {} }))
    assert.same(all_of(ca2), eventually(function()
      local x = all_of(cb)
      return #x == 10 and x
    end, 30, "B applied A's new append"))
  end)
end)

describe_one("one server whose disk fails a sync", function()
  after_each(server.stop_all)

  it("refuses the append, keeps the log as it was, and says to restart; started again it serves", function()
    local trigger = server.tmpdir() .. "/fail-now"
    local s = server.start { env = { LD_PRELOAD = FAILSYNC, ML_FAILSYNC = trigger } }
    local c = s.client
    for i = 1, 3 do assert(c:append("acct-1", { type = "Deposited", id = "d-" .. i, data = { n = i } })) end
    sh("touch " .. q(trigger))
    local r, err = c:append("acct-1", { type = "Deposited", id = "d-4", data = { n = 4 } })
    assert.is_nil(r, "an append whose sync failed is not acknowledged")
    assert.truthy(err.message:find("Input/output error; the append was not stored", 1, true), err.message)
    sh("rm -f " .. q(trigger))
    -- the write could not be undone durably either (its sync failed too): the log takes no
    -- more appends, says why, and still serves reads of what was acknowledged
    local r2, err2 = c:append("acct-1", { type = "Deposited", id = "d-5", data = { n = 5 } })
    assert.is_nil(r2)
    assert.truthy(err2.message:find("restart moonlog", 1, true), err2.message)
    assert.equal(3, #assert(c:read("acct-1")))
    -- a restart finds the three acknowledged events and nothing of the refused ones
    assert(s:restart())
    local c2 = s:connect()
    local evs = assert(c2:read("acct-1"))
    assert.equal(3, #evs)
    for i, e in ipairs(evs) do assert.equal("d-" .. i, e.id) end
    assert(c2:append("acct-1", { type = "Deposited", id = "d-6", data = { n = 6 } }))
    assert.equal(4, #assert(c2:read("acct-1")))
  end)
end)

