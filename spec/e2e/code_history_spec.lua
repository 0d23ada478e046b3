-- End-to-end: code history (issue 20, item 3). From a script's first swap on, each version
-- that goes live is appended to $code-NAME (the first swap appends the version it replaced
-- too); `moonlog scripts history NAME` and the REPL's history(name) list them; at(position,
-- name, {history = true}) folds with the version live at that position (plain at() with the
-- current code); a restart with the same file appends nothing, one with a changed file
-- records it; a dry run's --apply is recorded as applied.
local server = require "support.server"

local write, sh, q = server.write_file, server.sh, server.quote
local status_of, at_head = server.status_of, server.at_head

local function eventually(fn, what) return server.eventually(fn, 20, what) end

-- Version `factor` of a projection that sums amount * factor.
local function totals(factor)
  return ([[
local ml = require "moonlog"
return ml.projection {
  name = "totals", from = "account-*",
  init = { sum = 0 },
  on = { Deposited = function(s, e) s.sum = s.sum + %d * e.data.amount end },
  queries = { sum = function(s) return s.sum end },
}
]]):format(factor)
end

local function deposit(c, n)
  for _ = 1, n do assert(c:append("account-1", { type = "Deposited", data = { amount = 1 } })) end
end

-- Saves version `factor` and waits until it is live (the reloads-th version swapped in).
local function save(s, factor, reloads)
  write(s.scripts .. "/totals.lua", totals(factor))
  eventually(function()
    local st = status_of(s.client, "totals")
    return st.reloads == reloads and not st.rebuild_position
  end, "version " .. factor)
  at_head(s.client, "totals")
end

local function history_cli(s, args)
  return sh(("%s scripts history totals --data %s %s 2>&1; echo rc=$?"):format(
    q(os.getenv("MOONLOG_BIN")), q(s.data), args or ""))
end

local function versions(c)
  return assert(c:read("$code-totals")) or {}
end

describe("code history", function()
  after_each(server.stop_all)

  it("lists the versions that went live after two reloads, in the CLI and the REPL", function()
    local s = server.start { scripts = { ["totals.lua"] = totals(1) } }
    local c = s.client
    deposit(c, 3)
    at_head(c, "totals")
    save(s, 10, 1)
    deposit(c, 2)
    at_head(c, "totals")
    save(s, 100, 2)

    local evs = eventually(function() local v = versions(c) return #v == 3 and v end, "three versions")
    local reasons, hashes = {}, {}
    for i, e in ipairs(evs) do
      assert.are.equal("CodeVersion", e.type)
      assert.are.equal("totals", e.data.name)
      assert.are.equal("totals.lua", e.data.file)
      assert.are.equal("projection", e.data.kind)
      reasons[i], hashes[i] = e.data.reason, e.data.hash
    end
    assert.are.same({ "loaded", "reloaded", "reloaded" }, reasons)
    assert.are.equal(totals(1), evs[1].data.text)
    assert.are.equal(totals(100), evs[3].data.text)
    assert.are.equal(0, evs[1].data.position)                 -- live from the start
    assert.is_true(evs[2].data.position >= 3 and evs[3].data.position >= evs[2].data.position + 2)
    assert.are.equal(status_of(c, "totals").hash, hashes[3])

    local out = history_cli(s)
    assert.matches("rc=0", out)
    local lines = {}
    for line in out:gmatch("[^\n]+") do if line:match("live from") then lines[#lines + 1] = line end end
    assert.are.equal(3, #lines)
    assert.matches("^%s+1%s+live from position 0%s.*code " .. hashes[1] .. "  totals%.lua  loaded$", lines[1])
    assert.matches("^%s+3%s+live from position %d+%s.*code " .. hashes[3] .. "  totals%.lua  reloaded$", lines[3])
    assert.are.equal(totals(10) .. "rc=0\n", history_cli(s, "--show 2"))
    assert.matches("there is no version 4", history_cli(s, "--show 4"))

    -- the REPL (here its eval over the admin socket)
    local admin = s:admin()
    local listed = assert(admin:eval('return history("totals")')).values[1]
    assert.are.equal(3, #listed)
    assert.are.same({ 1, "loaded", hashes[1] }, { listed[1].version, listed[1].reason, listed[1].hash })
    assert.are.equal(totals(10), listed[2].text)
    admin:close()
  end)

  it("folds at(position) with the code live then when asked, and with today's code by default", function()
    local s = server.start { scripts = { ["totals.lua"] = totals(1) } }
    local c = s.client
    deposit(c, 3)
    at_head(c, "totals")
    save(s, 10, 1)
    deposit(c, 2)
    at_head(c, "totals")
    assert.are.equal(50, assert(c:call("query", "totals", "sum")))
    local d = assert(c:read("account-1"))           -- (the log holds $code-totals events too)
    local third, fifth = d[3].position, d[5].position
    local admin = s:admin()
    local function at(chunk, p) return assert(admin:eval(chunk:format(p or third))).values[1] end
    assert.are.same({ sum = 30 }, at('return at(%d, "totals")'))                    -- today's code
    assert.are.same({ sum = 3 }, at('return at(%d, "totals", { history = true })'))  -- v1's
    assert.are.same({ sum = 3 }, at('return totals:at(%d, { history = true })'))
    assert.are.same({ sum = 50 }, at('return at(%d, "totals", { history = true })', fifth))
    assert.are.same({ sum = 0 }, at('return at(%d, "totals", { history = true })', 0))  -- v1 from 0
    admin:close()

    -- the same in a REPL that opens the data folder itself (no server)
    assert(s:stop())
    local out = sh(("printf '%%s\\n' 'at(%d, \"totals\", { history = true })' 'at(%d, \"totals\")' " ..
      "'#history(\"totals\")' | %s repl --data %s --scripts %s 2>&1"):format(third, third,
      q(os.getenv("MOONLOG_BIN")), q(s.data), q(s.scripts)))
    assert.matches("{sum=3}\n{sum=30}\n2\n", out)
  end)

  it("appends nothing when a restart finds the same code, and records a file changed while stopped", function()
    local s = server.start { scripts = { ["totals.lua"] = totals(1) } }
    deposit(s.client, 2)
    at_head(s.client, "totals")
    s:restart()                                    -- never reloaded: no history yet
    at_head(s.client, "totals")
    assert.are.equal(0, #versions(s.client))
    save(s, 2, 1)                                  -- the history starts: v1 and v2
    eventually(function() return #versions(s.client) == 2 end, "the first two versions")
    s:restart()                                    -- the same file: nothing more
    at_head(s.client, "totals")
    deposit(s.client, 1)
    at_head(s.client, "totals")
    assert.are.equal(2, #versions(s.client))

    assert(s:stop())
    write(s.scripts .. "/totals.lua", totals(7))
    s:launch()
    at_head(s.client, "totals")
    local evs = eventually(function() local v = versions(s.client) return #v == 3 and v end, "the changed version")
    assert.are.same({ "loaded", "reloaded", "changed while stopped" },
      { evs[1].data.reason, evs[2].data.reason, evs[3].data.reason })
    local d = assert(s.client:read("account-1"))
    assert.are.equal(d[#d].position, evs[3].data.position)   -- the head when it started
    assert.are.equal(totals(7), evs[3].data.text)
    assert.are.equal(21, assert(s.client:call("query", "totals", "sum")))
  end)

  it("records a dry run's applied version as applied", function()
    local s = server.start { scripts = { ["totals.lua"] = totals(1) } }
    local c = s.client
    deposit(c, 2)
    at_head(c, "totals")
    local candidate = s.root .. "/totals.lua"
    write(candidate, totals(5))
    eventually(function()
      local r = assert(c:call("dry_run", "totals", candidate))
      return r.state ~= "running" and r
    end, "the dry run")
    assert(c:call("dry_run", "totals", candidate, { apply = true }))
    local evs = eventually(function() local v = versions(c) return #v == 2 and v end, "the applied version")
    assert.are.equal("applied", evs[2].data.reason)
    assert.are.equal(totals(5), evs[2].data.text)
  end)
end)
