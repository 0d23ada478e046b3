-- The Lua log API on a log opened in this process: require("moonlog.core").log
-- (docs/lua-api.md, "The log"). spec/e2e/repl_spec.lua runs the same API in a server.
local core = require "moonlog.core"
local files = require "support.files"

describe("moonlog.core.log", function()
  local dir, log
  before_each(function() dir = files.tmpdir(); log = assert(core.log.open { dir = dir }) end)
  after_each(function() log.close(); files.remove(dir) end)

  it("appends a batch and reads it back with decoded data and meta", function()
    local r = assert(log.append("account-1", {
      { type = "Opened", data = { owner = "ada", limit = 100 } },
      { type = "Deposited", data = { amount = 1 << 53 }, meta = { correlation_id = "c-1" } },
    }, "no_stream"))
    assert.same({ position = 1, last_position = 2, version = 2, duplicate = false }, r)
    local evs = log.read("account-1")
    assert.equal(2, #evs)
    assert.same({ owner = "ada", limit = 100 }, evs[1].data)
    assert.equal(1 << 53, evs[2].data.amount)
    assert.equal("integer", math.type(evs[2].data.amount))
    assert.equal("c-1", evs[2].meta.correlation_id)
    assert.equal(2, evs[2].version)
    assert.equal("string", type(evs[1].id))
    assert.is_true(evs[1].time > 1.7e12)
  end)

  it("returns nil, a message, a code and the actual version on a conflict", function()
    log.append("s-1", { type = "A" })
    local r, msg, code, actual = log.append("s-1", { type = "B" }, 0)
    assert.is_nil(r)
    assert.matches("version conflict", msg)
    assert.equal("conflict", code)
    assert.equal(1, actual)
    assert.equal(1, log.version("s-1"))
    assert(log.append("s-1", { type = "B" }, "exists"))
    assert(log.append("s-1", { type = "C" }, "2"))
  end)

  it("is idempotent on ids", function()
    local a = assert(log.append("o-1", { type = "Placed", id = "req-1" }))
    local b = assert(log.append("o-1", { type = "Placed", id = "req-1" }, 7))
    assert.is_true(b.duplicate)
    assert.equal(a.position, b.position)
  end)

  it("returns what the log refuses, and raises on a call that is wrong in itself", function()
    local r, msg, code = log.append("$sys", { type = "A" })
    assert.is_nil(r); assert.equal("bad_request", code); assert.matches("reserved", msg)
    assert.has_error(function() log.append("s", { type = "A", data = { f = print } }) end,
      "cannot encode a function at data.f")
    assert.has_error(function() log.append("s", {}) end)
    assert.has_error(function() log.append("s", { data = 1 }) end)       -- a list holding no event
    assert.has_error(function() log.append("s", { { data = 1 } }) end,
      'event 1 has no type (give {type = "Name", ...})')
    assert.has_error(function() log.append("s", { { type = "A", id = 5 } }) end,
      "event 1: id must be a string, got number")
    assert.has_error(function() log.append("s", { type = "A" }, -2) end)  -- not a guard in disguise
    assert.has_error(function() log.append("s", { type = "A" }, "sometimes") end)
    assert.has_error(function() log:append("s", { type = "A" }) end,
      "log.append takes a stream name, got a table: call it with a dot, log.append(...)")
    assert.has_error(function() log.read("$all", { backwards = true }) end)
    assert.has_error(function() log.read("s", { limit = -1 }) end, "log.read: limit must be a whole number >= 0")
    assert.equal(0, log.head())
  end)

  it("reads $all with from and limit, 100 events unless told, streams by prefix, and stats", function()
    for i = 1, 5 do log.append("k-" .. i, { type = "T", data = i }) end
    local evs = log.read("$all", { from = 2, limit = 3 })
    assert.same({ 2, 3, 4 }, { evs[1].data, evs[2].data, evs[3].data })
    assert.equal(5, #log.read())
    local back = log.read("k-1", { backwards = true })
    assert.equal(1, #back)
    assert.same({ ["k-1"] = 1, ["k-2"] = 1, ["k-3"] = 1, ["k-4"] = 1, ["k-5"] = 1 }, log.streams("k-"))
    local st = log.stats()
    assert.equal(5, st.events); assert.equal(5, st.head); assert.equal("always", st.fsync)
    assert.equal(5, log.head())
    local many = {}
    for i = 1, 150 do many[i] = { type = "T" } end
    assert(log.append("many-1", many))
    assert.equal(100, #log.read("many-1"))
    assert.equal(150, #log.read("many-1", { limit = 0 }))   -- 0: no limit of its own
  end)

  it("closes once, and says so", function()
    assert.equal("moonlog log (open)", tostring(log))
    log.close()
    assert.equal("moonlog log (closed)", tostring(log))
    assert.has_error(function() log.head() end, "the log is closed")
    log.close()
  end)
end)
