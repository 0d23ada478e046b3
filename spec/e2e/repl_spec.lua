-- End to end: `moonlog repl` at a real terminal (tmux), in a pipe, and `moonlog eval`,
-- against a running server and on a data folder opened directly.
local server = require "support.server"

local BIN = assert(os.getenv("MOONLOG_BIN"))
local sh, q = server.sh, server.quote

-- A REPL in a tmux pane: type into it, read the screen.
local Term = {}
Term.__index = Term

local function sleep(s) sh("sleep " .. s) end

function Term.open(args, home)
  local t = setmetatable({ name = "ml" .. tostring(math.random(1e9)), home = home }, Term)
  local cmd = ("env -u LD_PRELOAD HOME=%s %s repl %s; echo REPL-EXIT=$?; sleep 60")
    :format(q(home), q(BIN), args)
  sh(("tmux new-session -d -s %s -x 150 -y 50 %s"):format(t.name, q(cmd)))
  t:wait_for("help%(%) for help")
  return t
end

function Term:screen() return sh(("tmux capture-pane -p -t %s -S -200"):format(self.name)) end

-- Waits (bounded: 300 looks, 30 s or more on a loaded machine) until the screen matches
-- pattern; returns the screen.
function Term:wait_for(pattern, plain)
  local screen
  for _ = 1, 300 do
    screen = self:screen()
    if screen:find(pattern, 1, plain) then return screen end
    sleep(0.1)
  end
  error("the screen never showed " .. pattern .. ":\n" .. screen, 2)
end

function Term:type(text) sh(("tmux send-keys -t %s -l %s"):format(self.name, q(text))) end

-- Presses a key (tmux's name for it); with `shown`, waits until the screen shows that text.
function Term:key(k, shown)
  sh(("tmux send-keys -t %s %s"):format(self.name, k))
  if shown then return self:wait_for(shown, true) end
end

-- Types a line and Enter; with `shown`, waits until the screen shows that text.
function Term:line(text, shown) self:type(text); return self:key("Enter", shown) end

function Term:close() sh(("tmux kill-session -t %s 2>/dev/null"):format(self.name)) end

local function run(cmd) -- status, output
  local out = sh(cmd .. " 2>&1; echo \"status=$?\"")
  return tonumber(out:match("status=(%d+)%s*$")), out:gsub("status=%d+%s*$", "")
end

describe("moonlog repl on a running server", function()
  local s, home, term
  before_each(function()
    s = server.start()
    home = server.tmpdir()
    assert(s.client:append("account-1", { { type = "Opened", data = { owner = "ada" } } }))
  end)
  after_each(function()
    if term then term:close(); term = nil end
    server.stop_all()
    sh("rm -rf " .. q(home))
  end)
  -- The REPL at a terminal, on the server's data folder.
  local function open() term = Term.open("--data " .. q(s.data), home) end

  it("prints expressions, continues multi-line chunks, reports errors and goes on", function()
    open()
    term:line("1 + 2", "\n3\n")
    term:line("function double(n)", "\n>>")
    term:line("return n * 2")
    term:line("end")
    term:line("double(21)", "\n42\n")
    term:line("error('boom')", "repl:1: boom")
    term:line("log.read('account-1')", '#1 account-1@1 Opened {owner="ada"}')
    term:line("{ b = { 1, 2 }, a = 'x' }", '{a="x", b={1, 2}}')
  end)

  it("stops a runaway loop with an error, and the server goes on", function()
    open()
    term:line("while true do end", "instruction budget exceeded")
    term:line("log.head()", "\n1\n")
    assert(s.client:stats())
  end)

  it("completes globals and fields with Tab", function()
    open()
    term:type("stre")
    term:key("Tab")
    term:type(".cou")
    term:key("Tab", "streams.count")
    term:type("()")
    term:key("Enter", "streams.count()\n1\n")
  end)

  it("keeps history across runs", function()
    open()
    term:line("40 + 2", "\n42\n")
    term:key("C-d", "REPL-EXIT=0")
    term:close()
    open()
    term:key("Up", "> 40 + 2")
    term:key("Enter", "\n42\n")
  end)

  it("follows a tail until Ctrl-C, then returns to the prompt", function()
    open()
    term:line("log.tail('account-*', 1)", "account-1@1  Opened")
    assert(s.client:append("account-2", { { type = "Opened", data = { owner = "bob" } } }))
    term:wait_for("account-2@1  Opened", true)
    term:key("C-c", "(tail stopped)")
    term:line("log.head()", "\n2\n")
  end)

  it("reads chunks from a pipe without prompts", function()
    local status, out = run(("printf 'x = 20 +\\n 1\\nx * 2\\nprint(\"hi\")\\n' | env -u LD_PRELOAD %s repl --data %s")
      :format(q(BIN), q(s.data)))
    assert.equal(0, status)
    assert.equal("42\nhi\n", out)
    status, out = run(("printf 'error(\"nope\")\\n' | env -u LD_PRELOAD %s repl --data %s"):format(q(BIN), q(s.data)))
    assert.equal(1, status)
    assert.matches("nope", out)
    -- an expression that lacks its end goes on to the next line, and at the end says so
    status, out = run(("printf '1 +\\n 2\\n' | env -u LD_PRELOAD %s repl --data %s"):format(q(BIN), q(s.data)))
    assert.same({ 0, "3\n" }, { status, out })
    status, out = run(("echo '1+' | env -u LD_PRELOAD %s repl --data %s"):format(q(BIN), q(s.data)))
    assert.equal(1, status)
    assert.equal("moonlog repl: the input ended inside an unfinished chunk: repl:1: unexpected symbol near <eof>\n", out)
  end)

  it("moonlog eval runs one chunk; status 1 on error", function()
    local status, out = run(("env -u LD_PRELOAD %s eval --data %s 'log.head() + 1'"):format(q(BIN), q(s.data)))
    assert.equal(0, status)
    assert.equal("2\n", out)
    status, out = run(("env -u LD_PRELOAD %s eval --data %s 'nothing.here'"):format(q(BIN), q(s.data)))
    assert.equal(1, status)
    assert.matches("attempt to index a nil value", out)
  end)
end)

describe("moonlog repl with no server", function()
  it("opens the log itself, and says so", function()
    local dir = server.tmpdir()
    local status, out = run(("printf 'log.append(\"k-1\", {type = \"Made\", data = {n = 1}})\\nlog.read(\"k-1\")[1].data.n\\n' | env -u LD_PRELOAD %s repl --data %s")
      :format(q(BIN), q(dir)))
    assert.equal(0, status)
    assert.matches("position=1", out)
    assert.matches("\n1\n$", out)
    local home = server.tmpdir()
    local term = Term.open("--data " .. q(dir), home)
    term:wait_for("log opened here", true)
    term:close()
    sh("rm -rf " .. q(dir) .. " " .. q(home))
  end)

  it("tails the folder's log without a deleted stream's removed events", function()
    local dir, home = server.tmpdir(), server.tmpdir()
    for _, a in ipairs { "append --data %s account-1 Opened", "append --data %s account-1 Renamed",
                         "delete --data %s account-1", "append --data %s account-2 Opened" } do
      assert.equal(0, (run(("env -u LD_PRELOAD %s " .. a):format(q(BIN), q(dir)))))
    end
    local term = Term.open("--data " .. q(dir), home)
    finally(function() -- also when an assertion fails: no tmux session left behind
      term:close()
      sh("rm -rf " .. q(dir) .. " " .. q(home))
    end)
    term:line("log.tail('account-*', 1)", "account-2@1  Opened")
    local screen = term:wait_for("account-1@3  $deleted", true)
    assert.is_nil(screen:find("account-1@1", 1, true), screen)
    assert.is_nil(screen:find("account-1@2", 1, true), screen)
    term:key("C-c", "(tail stopped)")
  end)

  it("loads --scripts and answers their queries and at(position) from the log", function()
    local dir = server.tmpdir()
    local src = assert(os.getenv("MOONLOG_SOURCE_DIR"))
    for _, e in ipairs { { "Opened", '{"owner":"ada"}' }, { "Deposited", '{"amount":100}' },
                         { "Withdrawn", '{"amount":30}' } } do
      assert.equal(0, (run(("env -u LD_PRELOAD %s append --data %s account-1 %s %s")
        :format(q(BIN), q(dir), e[1], q(e[2])))))
    end
    local chunks = 'balances:query("balance", "account-1")\nat(2, "balances").total\n' ..
      'balances:query("total")\naccount:command("Open", { id = 2, owner = "x" })\n'
    local status, out = run(("printf %s | env -u LD_PRELOAD %s repl --data %s --scripts %s")
      :format(q(chunks), q(BIN), q(dir), q(src .. "/examples/bank/scripts")))
    assert.equal(1, status)
    assert.matches("^70\n100\n70\n", out)
    assert.matches("commands run in a server", out, 1, true)
    sh("rm -rf " .. q(dir))
  end)
end)

describe("moonlog repl with scripts running in the server", function()
  after_each(server.stop_all)

  it("reaches each script by name, runs commands, and answers at(position)", function()
    local s = server.start { args = { "--scripts", server.source "examples/bank/scripts" } }
    local chunks = table.concat({
      'account:command("Open", { id = 1, owner = "ada" }).version',
      'account:command("Deposit", { id = 1, amount = 100 }).version',
      'account:command("Withdraw", { id = 1, amount = 30 }).position',
      'balances:query("balance", "account-1")',
      'at(2, "balances").total',                 -- as of position 2: after the deposit
      'balances:at(3).accounts["account-1"]',
      'balances:query("total")',                 -- the live one is untouched
      '#scripts()',
      'account:command("Withdraw", { id = 1, amount = 500 })',
    }, "\n")
    local f = assert(io.open(s.root .. "/chunks.lua", "w")); f:write(chunks, "\n"); f:close()
    local status, out = run(("env -u LD_PRELOAD %s repl --data %s < %s")
      :format(q(BIN), q(s.data), q(s.root .. "/chunks.lua")))
    assert.equal(1, status) -- the last command is rejected
    assert.matches("^1\n2\n3\n70\n100\n70\n70\n2\n", out)
    assert.matches("rejected: insufficient funds", out, 1, true)

    -- and at a terminal
    local home = server.tmpdir()
    local term = Term.open("--data " .. q(s.data), home)
    term:line('at(2, "balances")', '{accounts={["account-1"]=100}, open=1, total=100}')
    term:line('balances:query("total")', "\n70\n")
    -- Tab completes the scripts' names and, after ':', their methods
    term:type("balan")
    term:key("Tab")
    term:type(":que")
    term:key("Tab", "balances:query")
    term:type('("total")')
    term:key("Enter", 'balances:query("total")\n70\n')
    term:close()
    sh("rm -rf " .. q(home))
  end)
end)

describe("moonlog repl completion in a server", function()
  after_each(server.stop_all)

  it("is bounded like an eval: a looping __index met while completing fails that completion only", function()
    local s = server.start { args = { "--eval-budget", "1000000" } }
    local a = s:admin()
    assert(a:call("eval", "trap = setmetatable({}, { __index = function() while true do end end })"))
    local got = a:call("complete", "trap.x.")
    assert.same({}, got)
    assert.equal(2, a:call("eval", "1 + 1").values[1]) -- and the server goes on
    assert.same({ "trap" }, a:call("complete", "tra"))
    a:close()
  end)
end)

describe("moonlog repl and hot reload", function()
  after_each(server.stop_all)

  it("reloads a script, reports a bad version, and lists it in scripts.errors()", function()
    local src = assert(os.getenv("MOONLOG_SOURCE_DIR"))
    local dir = server.tmpdir()
    sh(("cp %s/examples/bank/scripts/*.lua %s/"):format(q(src), q(dir)))
    local s = server.start { args = { "--scripts", dir } }
    local function eval(chunk)
      return run(("env -u LD_PRELOAD %s eval --data %s %s"):format(q(BIN), q(s.data), q(chunk)))
    end
    local good = assert(io.open(dir .. "/balances.lua")):read("a")
    local f = assert(io.open(dir .. "/balances.lua", "w"))
    f:write((good:gsub('name%s*=%s*"balances",', 'name = "balances", oops = 1,', 1))); f:close()
    local status, out = eval('scripts.reload("balances")')
    assert.equal(1, status)
    assert.matches('unknown key "oops"', out, 1, true)
    status, out = eval('scripts.errors()[1].reload_error')
    assert.equal(0, status)
    assert.matches('unknown key', out, 1, true)
    status, out = eval('balances:query("total")')        -- the old version still answers
    assert.equal(0, status)
    assert.equal("0\n", out)
    f = assert(io.open(dir .. "/balances.lua", "w")); f:write(good); f:close()
    status, out = eval('scripts.reload("balances").outcome')
    assert.equal(0, status)
    assert.is_truthy(out:match('"reloaded"') or out:match('"rebuilding"') or out:match('"unchanged"'))
    sh("rm -rf " .. q(dir))
  end)
end)

describe("the Lua log API", function()
  after_each(server.stop_all)

  it("means the same in a server's eval as on a log opened here", function()
    local chunk = table.concat({
      'local r = assert(log.append("t-1", { { type = "A", data = { n = 1 } }, { type = "B", id = "b" } }, "no_stream"))',
      'local nope, msg, code, actual = log.append("t-1", { type = "C" }, 0)',
      'local dup = assert(log.append("t-1", { type = "B", id = "b" }))',
      'local e = log.read("t-1", { backwards = true, limit = 1 })[1]',
      'local ok, err = pcall(log.append, "t-1", { { data = 1 } })',
      'return r.position, r.last_position, r.version, r.duplicate, nope, msg, code, actual,',
      '  dup.duplicate, dup.position, e.type, e.data, log.version("t-1"), log.head(), #log.read(),',
      '  log.stats().events, ok, err',
    }, "\n")
    local s = server.start()
    local dir = server.tmpdir()
    local status, in_server = run(("env -u LD_PRELOAD %s eval --data %s %s"):format(q(BIN), q(s.data), q(chunk)))
    assert.equal(0, status)
    local here
    status, here = run(("env -u LD_PRELOAD %s eval --data %s %s"):format(q(BIN), q(dir), q(chunk)))
    assert.equal(0, status)
    assert.equal('1\t2\t2\tfalse\tnil\t"version conflict on t-1: expected no stream, but its version is 2"\t' ..
                 '"conflict"\t2\ttrue\t2\t"B"\tnil\t2\t2\t2\t2\tfalse\t' ..
                 '"event 1 has no type (give {type = \\"Name\\", ...})"\n', in_server)
    assert.equal(in_server, here)
    sh("rm -rf " .. q(dir))
  end)

  it("in a server, refuses and bounds as RPC does, and gives the server's stats", function()
    local s = server.start { args = { "--max-read", "3" } }
    local a = s:admin()
    local r = assert(a:eval([[
      local many = {}
      for i = 1, 10001 do many[i] = { type = "T" } end
      local nope, msg, code = log.append("big-1", many)
      for i = 1, 5 do assert(log.append("k-1", { type = "T", data = i })) end
      local st = stats()
      return nope, msg, code, #log.read("k-1", { limit = 0 }), #log.read("k-1"), st.connections, st.fsync]]))
    assert.same({ nil, "too many events in one append (10001; at most 10000)", "bad_request", 3, 3, 2, "always" },
      { table.unpack(r.values, 1, 7) })
    local rpc, err = s.client:append("big-1", (function()
      local many = {}
      for i = 1, 10001 do many[i] = { type = "T" } end
      return many
    end)())
    assert.is_nil(rpc)
    assert.equal("too many events in one append (10001; at most 10000)", err.message)
  end)
end)
