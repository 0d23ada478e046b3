-- End-to-end: deleting streams and their retention metadata over RPC (docs/log.md, "Removed
-- events"; docs/protocol.md): soft and hard delete, truncate-before, max count, and what
-- reads, subscriptions and the metadata method then say.
local server = require "support.server"

local function types(events)
  local t = {}
  for i, e in ipairs(events) do t[i] = e.type .. "@" .. e.version end
  return t
end

describe("delete over RPC", function()
  after_each(server.stop_all)

  it("soft-deletes a stream: it reads as deleted, and appends continue its versions", function()
    local s = server.start()
    local c = s.client
    assert(c:append("acct-1", { { type = "Opened" }, { type = "Deposited" }, { type = "Deposited" } }))
    assert(c:append("acct-2", { type = "Opened" }))
    local r = assert(c:delete("acct-1"))
    assert.equal(4, r.version)
    assert.same({ "$deleted@4" }, types(assert(c:read("acct-1"))))
    local m = assert(c:metadata("acct-1"))
    assert.is_true(m.deleted)
    assert.is_false(m.hard)
    assert.equal(4, m.deleted_version)
    -- $all hides the removed events; the deletion event stays
    local all = assert(c:read("$all"))
    assert.same({ "Opened@1", "$deleted@4" }, types(all))
    assert.equal("acct-2", all[1].stream)
    -- appending again continues the versions; reads show only what follows the deletion
    r = assert(c:append("acct-1", { type = "Opened" }, 4))
    assert.equal(5, r.version)
    assert.same({ "$deleted@4", "Opened@5" }, types(assert(c:read("acct-1"))))
    assert.same({ "Opened@5", "$deleted@4" }, types(assert(c:read("acct-1", 0, 10, true))))
    assert.is_false(assert(c:metadata("acct-1")).deleted)
  end)

  it("deletes a deleted stream again as a no-op that answers the deletion", function()
    local s = server.start()
    local c = s.client
    assert(c:append("acct-1", { { type = "Opened" }, { type = "Deposited" } }))
    local first = assert(c:delete("acct-1"))
    assert.is_false(first.duplicate)
    local again = assert(c:delete("acct-1"))
    assert.is_true(again.duplicate)
    assert.equal(first.position, again.position)
    assert.equal(3, again.version)
    assert.same({ "$deleted@3" }, types(assert(c:read("acct-1"))))
    assert.equal(first.position, assert(c:stats()).head)
    -- written again, it is deleted again; hard after soft is a tombstone, and again a no-op
    assert(c:append("acct-1", { type = "Opened" }))
    assert.equal(5, assert(c:delete("acct-1")).version)
    local hard = assert(c:delete("acct-1", nil, true))
    assert.equal(6, hard.version)
    local hard_again = assert(c:delete("acct-1", nil, true))
    assert.is_true(hard_again.duplicate)
    assert.equal(hard.position, hard_again.position)
  end)

  it("hard-deletes a stream: a tombstone, and the name is never written again", function()
    local s = server.start()
    local c = s.client
    assert(c:append("acct-1", { type = "Opened" }))
    assert(c:delete("acct-1", 1, true))
    local m = assert(c:metadata("acct-1"))
    assert.is_true(m.hard and m.deleted)
    local _, err = c:append("acct-1", { type = "Opened" })
    assert.equal("refused", err.code)
    assert.matches("deleted for good", err.message)
    _, err = c:delete("acct-1")
    assert.equal("refused", err.code)
    _, err = c:set_metadata("acct-1", { max_count = 1 })
    assert.equal("refused", err.code)
    assert.same({ "$deleted@2" }, types(assert(c:read("acct-1"))))
    -- it stays so after a restart
    s:restart()
    c = s.client
    _, err = c:append("acct-1", { type = "Opened" })
    assert.equal("refused", err.code)
    assert.same({ "$deleted@2" }, types(assert(c:read("acct-1"))))
  end)

  it("refuses what is not a client's to delete, and keeps the expected version", function()
    local s = server.start()
    local c = s.client
    local _, err = c:delete("nobody")
    assert.equal("not_found", err.code)
    assert.matches("no such stream", err.message)
    _, err = c:delete("nobody", "exists")
    assert.equal("conflict", err.code)
    assert.equal(0, err.actual_version)
    assert(c:append("acct-1", { type = "Opened" }))
    _, err = c:delete("acct-1", 5)
    assert.equal("conflict", err.code)
    assert.equal(1, err.actual_version)
    _, err = c:delete("$meta-acct-1")
    assert.equal("bad_request", err.code)
    assert.matches("moonlog's own", err.message)
    _, err = c:delete("$all", nil, true)
    assert.equal("bad_request", err.code)
    _, err = c:delete("acct-1", nil, "yes")
    assert.equal("bad_request", err.code)
    -- a client cannot write the events these methods write, before or after one of them
    _, err = c:append("acct-1", { type = "$deleted", data = { hard = true } })
    assert.equal("bad_request", err.code)
    _, err = c:append("$meta-acct-1", { type = "$metadata", data = { max_count = 1 } })
    assert.equal("bad_request", err.code)
    -- deleting twice: the second is done already, and answers the first's version
    assert(c:delete("acct-1"))
    local r = assert(c:delete("acct-1"))
    assert.equal(2, r.version)
    assert.is_true(r.duplicate)
    assert.same({ "$deleted@2" }, types(assert(c:read("acct-1"))))
  end)
end)

describe("stream metadata over RPC", function()
  after_each(server.stop_all)

  it("truncates before a version and keeps only max_count, at once and after a restart", function()
    local s = server.start()
    local c = s.client
    local evs = {}
    for i = 1, 10 do evs[i] = { type = "E" .. i } end
    assert(c:append("log-1", evs))
    assert(c:set_metadata("log-1", { truncate_before = 4 }))
    assert.same({ "E4@4", "E5@5", "E6@6" }, types(assert(c:read("log-1", 1, 3))))
    assert(c:set_metadata("log-1", { max_count = 2 }))
    local m = assert(c:metadata("log-1"))
    assert.equal(4, m.truncate_before)
    assert.equal(2, m.max_count)
    assert.same({ "E9@9", "E10@10" }, types(assert(c:read("log-1"))))
    assert(c:append("log-1", { type = "E11" }))
    assert.same({ "E10@10", "E11@11" }, types(assert(c:read("log-1"))))
    -- the metadata stream holds the changes, as events
    local meta = assert(c:read("$meta-log-1"))
    assert.equal(2, #meta)
    assert.equal("$metadata", meta[2].type)
    assert.equal(2, meta[2].data.max_count)
    s:restart()
    assert.same({ "E10@10", "E11@11" }, types(assert(s.client:read("log-1"))))
    -- $all: only the kept events of log-1, and the metadata events
    local kept = {}
    for _, e in ipairs(assert(s.client:read("$all"))) do
      if e.stream == "log-1" then kept[#kept + 1] = e.version end
    end
    assert.same({ 10, 11 }, kept)
  end)

  it("refuses hostile metadata with a reason", function()
    local s = server.start()
    local c = s.client
    assert(c:append("x", { type = "E" }))
    local _, err = c:set_metadata("x", { max_count = -1 })
    assert.equal("bad_request", err.code)
    assert.matches("max_count must be a whole number", err.message)
    _, err = c:set_metadata("x", { max_counts = 1 })
    assert.matches("no key max_counts", err.message)
    _, err = c:set_metadata("x", { max_age = "30d" })
    assert.equal("bad_request", err.code)
    _, err = c:set_metadata("x", "nope")
    assert.equal("bad_request", err.code)
    _, err = c:set_metadata("$parked-x", { max_count = 1 })
    assert.equal("bad_request", err.code)
    _, err = c:set_metadata(("y"):rep(250), { max_count = 1 })
    assert.matches("longer than 249 bytes", err.message)
    _, err = c:set_metadata("x", { max_count = 1, junk = ("z"):rep(10 * 1024 * 1024) })
    assert.truthy(err)
    assert.same({ "E@1" }, types(assert(c:read("x"))))
  end)
end)
