-- End-to-end: a dry run of a reload (moonlog reload --dry-run, the dry_run method,
-- POST /scripts/{name}/dry-run, NAME:dry_run in the REPL). A new version is built beside
-- the live one and compared with it without swapping it in: a projection's state key by
-- key while the live version keeps serving, a handler's emits over the last events
-- without writing anything; faults come with their event and line; applying swaps in
-- only the version previewed.
local server = require "support.server"

local write, sh, q = server.write_file, server.sh, server.quote
local status_of, at_head = server.status_of, server.at_head

local function eventually(fn, what) return server.eventually(fn, 60, what) end

local BIN = os.getenv("MOONLOG_BIN")

-- The bank example's balances projection with its Deposited handler replaced by `deposited`
-- (the body of function(s, e)), and `extra` lines at the top of the file.
local BALANCES = io.open(server.source("examples/bank/scripts/balances.lua")):read("a")
local LIVE_DEPOSITED = [[
      s.accounts[e.stream] = (s.accounts[e.stream] or 0) + e.data.amount
      s.total = s.total + e.data.amount]]
assert(BALANCES:find(LIVE_DEPOSITED, 1, true), "examples/bank/scripts/balances.lua changed")
local function balances(deposited)
  local i, j = BALANCES:find(LIVE_DEPOSITED, 1, true)
  return BALANCES:sub(1, i - 1) .. deposited .. BALANCES:sub(j + 1)
end

-- Appends `n` events as few batches (one append each) through the admin socket's eval.
local function bulk(s, stream, n, amount)
  local admin = s:admin()
  local chunk = ([[
    for b = 1, %d, 1000 do
      local evs = {}
      for i = b, math.min(b + 999, %d) do evs[#evs + 1] = { type = "Deposited", data = { amount = %d } } end
      assert(log.append(%q, evs))
    end
    return log.head()]]):format(n, n, amount, stream)
  local head = assert(admin:eval(chunk))
  admin:close()
  return head
end

-- Opens accounts 1 to 20, each with one deposit of 10 * i.
local function open_accounts(c)
  for i = 1, 20 do
    assert(c:call("command", "account", "Open", { id = i, owner = "o" .. i }))
    assert(c:call("command", "account", "Deposit", { id = i, amount = 10 * i }))
  end
end

-- Calls dry_run until it is no longer running; returns the last answer.
local function finished(c, name, file, opts)
  return eventually(function()
    local r = assert(c:call("dry_run", name, file, opts))
    return r.state ~= "running" and r
  end, "the dry run of " .. name .. " to finish")
end

local function keys_of(list)
  local out = {}
  for _, x in ipairs(list) do out[#out + 1] = x.key end
  table.sort(out)
  return out
end

describe("a dry run of a reload", function()
  after_each(server.stop_all)

  it("reports exactly the accounts whose balance a new version computes differently, while the live version serves", function()
    local s = server.start { scripts = { server.source("examples/bank/scripts") } }
    local c = s.client
    open_accounts(c)
    -- many deposits of 0 to account-0, so that the candidate folds for a while (it spins on
    -- each deposit: the fold is slow on purpose)
    assert(c:call("command", "account", "Open", { id = 0, owner = "filler" }))
    bulk(s, "account-0", 60000, 0)
    at_head(c, "balances", 60)
    local candidate = s.root .. "/balances-bonus.lua"
    write(candidate, balances([[
      for _ = 1, 2000 do end
      local bonus = e.data.amount >= 150 and 1 or 0
      s.accounts[e.stream] = (s.accounts[e.stream] or 0) + e.data.amount + bonus
      s.total = s.total + e.data.amount]]))

    local first = assert(c:call("dry_run", "balances", candidate))
    assert.are.equal("running", first.state)
    assert.are.equal("projection", first.kind)
    assert.are.equal(candidate, first.file)
    -- meanwhile the live version answers queries and takes commands, and its status says
    -- how far the dry run is
    local served, seen_progress = 0, false
    local r = eventually(function()
      local before = assert(c:call("dry_run", "balances", candidate))
      assert.are.equal(30, assert(c:call("query", "balances", "balance", "account-3")))
      local st = status_of(c, "balances")
      if st.dry_run and st.dry_run.state == "running" then
        seen_progress = seen_progress or (st.dry_run.position < st.dry_run.of and st.dry_run.file == candidate)
      end
      if before.state == "running" then served = served + 1 end
      return before.state ~= "running" and before
    end, "the dry run of balances")
    assert.is_true(served > 0, "no query was answered while the dry run ran")
    assert.is_true(seen_progress, "the status never showed the dry run's progress")
    assert.are.equal("running", status_of(c, "balances").state)

    assert.are.equal("done", r.state)
    assert.are.equal(0, r.fault_count)
    assert.are.same({ added = 0, removed = 0, changed = 6, same = r.keys.same }, r.keys)
    assert.are.same({ 'accounts["account-15"]', 'accounts["account-16"]', 'accounts["account-17"]',
                      'accounts["account-18"]', 'accounts["account-19"]', 'accounts["account-20"]' },
                    keys_of(r.changed))
    for _, ch in ipairs(r.changed) do
      local i = tonumber(ch.key:match("account%-(%d+)"))
      assert.are.equal(10 * i, ch.old)
      assert.are.equal(10 * i + 1, ch.new)
    end
    -- nothing was swapped: the live version still computes the old way
    assert.are.equal(200, assert(c:call("query", "balances", "balance", "account-20")))

    -- applying swaps in the previewed version and writes it over the script's file
    local applied = assert(c:call("dry_run", "balances", candidate, { apply = true }))
    assert.are.equal("applied", applied.outcome)
    eventually(function()
      return c:call("query", "balances", "balance", "account-20") == 201
    end, "the applied version")
    assert.are.equal(io.open(candidate):read("a"), io.open(s.scripts .. "/balances.lua"):read("a"))
    assert.are.equal(r.hash, at_head(c, "balances").hash)
  end)

  it("runs a handler's new version over the last events and shows the emits added, dropped and changed, writing nothing", function()
    local function echo(body)
      return ([[
local ml = require "moonlog"
return ml.handler {
  name = "echo", from = "ping-*",
  on = { Ping = function(e, ctx)
%s
  end },
}
]]):format(body)
    end
    local s = server.start { scripts = { ["echo.lua"] = echo([[ctx.emit("pong-" .. e.data.n, "Pong", { n = e.data.n, v = 1 })]]) } }
    local c = s.client
    for n = 1, 12 do assert(c:append("ping-" .. n, { type = "Ping", data = { n = n } })) end
    at_head(c, "echo")
    local candidate = s.root .. "/echo-next.lua"
    -- odd pings emit nothing now (6 dropped), even ones emit v = 2 (6 changed), every
    -- third emits a Triple as well (4 added)
    write(candidate, echo([[
    if e.data.n % 2 == 0 then ctx.emit("pong-" .. e.data.n, "Pong", { n = e.data.n, v = 2 }) end
    if e.data.n % 3 == 0 then ctx.emit("triple-" .. e.data.n, "Triple", { n = e.data.n }) end]]))
    local head = assert(c:stats()).head
    local checkpoints = #assert(c:read("$checkpoint-echo"))

    local r = finished(c, "echo", candidate)
    assert.are.equal("done", r.state)
    assert.are.equal(1, r.from)
    assert.are.equal(head, r.to)
    assert.are.same({ added = 4, dropped = 6, changed = 6, same = 0 }, r.emits)
    assert.are.equal(12, r.handled)
    assert.are.equal(0, r.fault_count)
    local dropped = {}
    for _, d in ipairs(r.dropped) do
      assert.are.equal("Ping", d.type)
      assert.are.equal("Pong", d.emit.type)
      assert.are.equal(1, d.emit.data.v)
      dropped[#dropped + 1] = d.emit.data.n
    end
    assert.are.same({ 1, 3, 5, 7, 9, 11 }, dropped)
    for _, a in ipairs(r.added) do
      assert.are.equal("Triple", a.emit.type)
      assert.are.equal("triple-" .. a.emit.data.n, a.emit.stream)
    end
    for _, ch in ipairs(r.changed) do
      assert.are.same({ 1, 2 }, { ch.old.data.v, ch.new.data.v })
      assert.are.equal(ch.old.data.n, ch.new.data.n)
    end

    -- the same through the command line
    local out = sh(("%s reload --connect 127.0.0.1:%d --dry-run echo %s; echo \"exit $?\""):format(
      q(BIN), s.rpc_port, q(candidate)))
    assert.truthy(out:find("emits: 4 added, 6 dropped, 6 changed, 0 the same", 1, true), out)
    assert.truthy(out:find("- pong-1 Pong", 1, true), out)
    assert.truthy(out:find("+ triple-3 Triple", 1, true), out)
    assert.truthy(out:find("exit 0", 1, true), out)

    -- nothing was written: the head did not move, no checkpoint, no Triple stream
    assert.are.equal(head, assert(c:stats()).head)
    assert.are.equal(checkpoints, #assert(c:read("$checkpoint-echo")))
    assert.are.same({}, assert(c:read("triple-3")))
    assert.are.equal(0, status_of(c, "echo").reloads)
  end)

  it("reports a bad new version's fault with its event and line, and will not apply it", function()
    local s = server.start { scripts = { server.source("examples/bank/scripts") } }
    local c = s.client
    open_accounts(c)
    at_head(c, "balances")
    local candidate = s.root .. "/balances-bad.lua"
    local text = balances([[
      if e.data.amount == 130 then error("no deposits of 130") end
      s.accounts[e.stream] = (s.accounts[e.stream] or 0) + e.data.amount
      s.total = s.total + e.data.amount]])
    write(candidate, text)
    local line = 1
    for l in text:gmatch("[^\n]*\n") do
      if l:find("no deposits of 130", 1, true) then break end
      line = line + 1
    end

    local r = finished(c, "balances", candidate)
    assert.are.equal("faulted", r.state)
    assert.are.equal(1, r.fault_count)
    local f = r.faults[1]
    assert.are.equal("account-13", f.stream)
    assert.are.equal("Deposited", f.type)
    assert.are.equal(line, f.line)
    assert.truthy(f.error:find("no deposits of 130", 1, true), f.error)
    assert.are.equal(f.position, assert(c:read("account-13"))[2].position)
    local _, err = c:call("dry_run", "balances", candidate, { apply = true })
    assert.truthy(err.message:find("faulted", 1, true), err.message)

    -- a version that does not compile: its line, through the command line (exit status 1)
    write(candidate, "local ml = require 'moonlog'\nreturn ml.projection {\n  name = \n}\n")
    local out = sh(("%s reload --connect 127.0.0.1:%d --dry-run balances %s; echo \"exit $?\""):format(
      q(BIN), s.rpc_port, q(candidate)))
    assert.truthy(out:find("loading it, line 4:", 1, true), out)
    assert.truthy(out:find("exit 1", 1, true), out)
    -- the live version never changed
    assert.are.equal(0, status_of(c, "balances").reloads)
    assert.are.equal(130, assert(c:call("query", "balances", "balance", "account-13")))
  end)

  it("previews a script's own file only on a server that reloads when asked, and applies only what was previewed", function()
    local s = server.start { scripts = { server.source("examples/bank/scripts") } }
    local c = s.client
    local _, err = c:call("dry_run", "balances")
    assert.truthy(err.message:find("--reload manual", 1, true), err.message)
    _, err = c:call("dry_run", "account", s.root .. "/x.lua")
    assert.truthy(err.message:find("decider", 1, true), err.message)
    assert(s:stop())

    s = server.start { scripts = { server.source("examples/bank/scripts") }, args = { "--reload", "manual" } }
    c = s.client
    open_accounts(c)
    at_head(c, "balances")
    local own = s.scripts .. "/balances.lua"
    write(own, balances([[
      s.accounts[e.stream] = (s.accounts[e.stream] or 0) + 2 * e.data.amount
      s.total = s.total + e.data.amount]]))
    local r = finished(c, "balances")
    assert.are.equal("done", r.state)
    assert.are.equal(20, r.keys.changed)
    assert.are.equal(10, #r.changed) -- the first ten of them
    -- the saved file did not reload by itself
    assert.are.equal(30, assert(c:call("query", "balances", "balance", "account-3")))

    -- over HTTP: the same dry run, followed
    local code, body = s:curl_json("POST", "/scripts/balances/dry-run", "{}")
    assert.are.equal(200, code)
    assert.are.equal("done", body.state)
    assert.are.equal(20, body.keys.changed)

    -- the file changed after its dry run: applying is refused
    write(own, balances([[
      s.accounts[e.stream] = (s.accounts[e.stream] or 0) + 3 * e.data.amount
      s.total = s.total + e.data.amount]]))
    _, err = c:call("dry_run", "balances", nil, { apply = true })
    assert.truthy(err.message:find("changed since its dry run", 1, true), err.message)
    -- previewed again, it applies, through the command line
    finished(c, "balances")
    local out = sh(("%s reload --connect 127.0.0.1:%d --apply balances; echo \"exit $?\""):format(
      q(BIN), s.rpc_port))
    assert.truthy(out:find("exit 0", 1, true), out)
    eventually(function()
      return c:call("query", "balances", "balance", "account-3") == 90
    end, "the applied version")
  end)

  it("waits for its report in the REPL", function()
    local s = server.start { scripts = { server.source("examples/bank/scripts") } }
    local c = s.client
    open_accounts(c)
    at_head(c, "balances")
    local candidate = s.root .. "/v2.lua"
    write(candidate, balances([[
      s.accounts[e.stream] = (s.accounts[e.stream] or 0) + e.data.amount
      s.total = s.total + 2 * e.data.amount]]))
    local admin = s:admin()
    local r = assert(admin:eval(("return balances:dry_run(%q)"):format(candidate))).values[1]
    assert.are.equal("done", r.state)
    assert.are.same({ added = 0, removed = 0, changed = 1, same = 21 }, r.keys)
    assert.are.same({ { key = "total", old = 2100, new = 4200 } }, r.changed)
    admin:close()
  end)
end)
