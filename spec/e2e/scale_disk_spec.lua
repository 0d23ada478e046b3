-- End-to-end: a node of a replicated log whose disk is full (docs/scale-out.md). Two moonlog
-- nodes on a real 3-node NATS JetStream cluster (tools/nats-cluster.sh on loopback ports);
-- node B's writes fail while the other goes on, then space returns and B applies the stream
-- again from where its own log stands: no gap, nothing twice, and its clients' appends
-- answered with the outcome the journal's order gave them.
--
-- The full disk: a file-size limit (RLIMIT_FSIZE) set on the running node with prlimit, at
-- the size of its segment. moonlog ignores SIGXFSZ, so a write that would grow the file
-- fails with EFBIG, as one on a full disk fails with ENOSPC: the same path (the write
-- undone, ML_ERR_IO, the journal applied again). Raising the limit is the space returning.
local server = require "support.server"
local cluster = require "support.cluster"

local sh = server.sh
local node, all_of = cluster.node, cluster.all_of
local function eventually(fn, seconds, what) return server.eventually(fn, seconds or 30, what) end

local function run(cmd)
  local out = sh(cmd .. " 2>&1; echo \"rc=$?\"")
  local text, rc = out:match("^(.-)rc=(%d+)%s*$")
  return tonumber(rc), text
end

local function head_of(c) return assert(c:stats()).head end

-- How many lines of the node's stderr hold `text`.
local function said(s, text)
  local n = 0
  for line in sh("cat " .. server.quote(s.log)):gmatch("[^\n]+") do
    if line:find(text, 1, true) then n = n + 1 end
  end
  return n
end

-- The node's disk is "full": none of its files may grow past its largest segment's size now.
local function fill_disk(s)
  local size = tonumber(sh("stat -c %s " .. server.quote(s.data) .. "/log/*.seg | sort -n | tail -n 1"))
  assert(size and size > 0, "the node has a segment")
  local rc, out = run(("prlimit --pid %d --fsize=%d:unlimited"):format(s.pid, size))
  assert.equal(0, rc, out)
end

local function free_disk(s)
  local rc, out = run(("prlimit --pid %d --fsize=unlimited:unlimited"):format(s.pid))
  assert.equal(0, rc, out)
end

-- A takes appends of 64 KiB events until B's writes reach the end of what its segment had
-- zeroed ahead (a few MiB) and fail.
local function writes_fail(ca, b)
  local big = string.rep("x", 65536)
  local n = 0
  eventually(function()
    local ids = {}
    for _ = 1, 8 do
      n = n + 1
      ids[#ids + 1] = assert(ca:send("append", "big-" .. (n % 4), { type = "Filled", id = "big-" .. n, data = { n = n, pad = big } }))
    end
    for _, id in ipairs(ids) do assert(ca:wait(id)) end
    return said(b, "this node cannot write its log (") > 0
  end, 120, "B's writes to fail")
end

local have = cluster.available and sh("command -v prlimit") ~= ""
local describe = have and describe or function(name)
  pending(name .. " (" .. cluster.missing .. "; and prlimit, of util-linux)")
end

describe("a node whose disk is full, on a replicated log", function()
  setup(cluster.up)
  teardown(cluster.down)
  after_each(server.stop_all)

  it("fails its writes while the other node serves, then applies again with no gap and nothing twice", function()
    local a, b = node("DISK"), node("DISK")
    local ca, cb = a:connect { timeout = 60 }, b:connect { timeout = 60 }
    local watch = b:connect { timeout = 60 } -- B's reads, while its appends wait
    assert(ca:append("warm-1", { type = "Up", data = {} }))
    eventually(function() return head_of(watch) == 1 end, 30, "B applied the first event")

    fill_disk(b)
    writes_fail(ca, b)
    assert.is_true(said(b, "File too large") > 0, "the line says why the write failed")

    -- B's clients append while B cannot write: their entries take their place in the
    -- journal at once (A applies them), their answers wait for B's own apply
    local waiting = {}
    for i = 1, 5 do
      waiting[i] = assert(cb:send("append", "from-b-" .. i, { type = "Waited", id = "from-b-" .. i, data = { i = i } }))
    end
    local race_b = assert(cb:send("append", "race-1", { type = "Won", data = { by = "b" } }, "no_stream"))
    eventually(function() return #assert(ca:read("race-1")) == 1 end, 30, "B's race-1 entry applied on A")
    -- A goes on serving, in the journal's order: B's race-1 came first
    local r, err = ca:append("race-1", { type = "Won", data = { by = "a" } }, "no_stream")
    assert.is_nil(r)
    assert.equal("conflict", err.code)
    for i = 1, 5 do assert.equal(1, #assert(ca:read("from-b-" .. i))) end
    assert(ca:append("during-1", { type = "Served", id = "during-1", data = {} }))
    -- B reads on, behind A, and has answered none of its clients' appends
    local stuck = head_of(watch)
    assert.is_true(stuck < head_of(ca), "B is behind A while it cannot write")
    assert.equal(0, #assert(watch:read("from-b-1")))
    cb:fill(0.2)
    cb:drain()
    for _, id in ipairs(waiting) do assert.is_nil(cb.answers[id], "no answer while B cannot write") end
    assert.is_nil(cb.answers[race_b])

    free_disk(b)
    -- B applies again from where its log stands, and answers its clients with what the
    -- journal's order gave them, the same on both nodes
    local answers = {}
    for i, id in ipairs(waiting) do answers[i] = assert(cb:wait(id)) end
    local won = assert(cb:wait(race_b))
    eventually(function() return head_of(watch) == head_of(ca) end, 60, "B caught up with A")
    local x, y = all_of(ca), all_of(cb)
    assert.same(x, y)
    local ids = {}
    for i, e in ipairs(x) do
      assert.equal(i, e[1], "no gap in $all")
      assert.is_nil(ids[e[5]], "no event twice")
      ids[e[5]] = e
    end
    for i, got in ipairs(answers) do
      local e = ids["from-b-" .. i]
      assert.equal(e[1], got.position, "from-b-" .. i .. " answered with its position")
    end
    assert.equal(1, won.version)
    assert.equal("b", assert(cb:read("race-1"))[1].data.by)
    assert.is_true(ids["during-1"] ~= nil)
    -- one line when writes begin to fail, one when they work again: once each, or (when an
    -- entry small enough for the space zeroed ahead was written between two that were not,
    -- as happened under ASan's timing) once each per time writes failed, never a flood
    local failed, recovered = said(b, "this node cannot write its log ("), said(b, "this node writes its log again")
    assert.is_true(failed >= 1 and failed <= 3, "times writes began to fail: " .. failed)
    assert.equal(failed, recovered, "each time writes failed, a line when they work again")
    -- and B takes appends again at once
    assert(cb:append("after-1", { type = "Done", data = {} }))
    eventually(function() return #assert(ca:read("after-1")) == 1 end, 30, "A applied B's new append")
    watch:close()
  end)
  it("stops on SIGTERM while its clients' appends wait for the disk, and answers them", function()
    local a, b = node("DISKSTOP"), node("DISKSTOP")
    local ca, cb = a:connect { timeout = 60 }, b:connect { timeout = 60 }
    assert(ca:append("warm-1", { type = "Up", data = {} }))
    eventually(function() return #assert(cb:read("warm-1")) == 1 end, 30, "B applied the first event")
    fill_disk(b)
    writes_fail(ca, b)
    local stuck = assert(cb:send("append", "stuck-1", { type = "Waited", id = "stuck-1", data = {} }))
    eventually(function() return #assert(ca:read("stuck-1")) == 1 end, 30, "B's entry applied on A")

    -- SIGTERM: B waits for its appends a while, then gives them up, and exits cleanly
    assert.is_true(b:stop(), "B stopped, with status 0")
    local r, err = cb:wait(stuck)
    assert.is_nil(r, "no success is claimed for an append B never applied")
    assert.is_not_nil(err)
    assert.equal(1, said(b, "appends still wait for the log's writer after"))

    -- started again with room on its disk (the limit went with the process), B catches up
    b:launch()
    local cb2 = b:connect { timeout = 60 }
    eventually(function() return #all_of(cb2) == #all_of(ca) end, 60, "B caught up with A")
    assert.same(all_of(ca), all_of(cb2))
    assert.equal(1, #assert(cb2:read("stuck-1")), "the entry the stream held, once")
  end)
end)
