-- End-to-end: tokens, eval only on the admin socket, one server per data folder,
-- and bad input of every kind leaving the server answering.
local server = require "support.server"
local client = require "moonlog.client"
local socket = require "socket"

local function still_answers(s)
  local c = s:connect()
  local st = assert(c:stats())
  c:close()
  return st
end

describe("security", function()
  after_each(server.stop_all)

  it("requires the token on HTTP and an auth call first on TCP", function()
    local s = server.start { token = "s3cret-token" }
    local code = s:curl("GET", "/stats")
    assert.equal(401, code)
    code = s:curl("GET", "/stats", nil, { "-H", "Authorization: Bearer wrong-token" })
    assert.equal(401, code)
    code = s:curl("GET", "/stats", nil, { "-H", "Authorization: Bearer s3cret-token" })
    assert.equal(200, code)
    assert.equal(200, (s:curl("GET", "/health")))
    local raw = assert(client.connect("127.0.0.1:" .. s.rpc_port))
    local ok, err = raw:stats()
    assert.is_nil(ok)
    assert.matches("unauthorized", err.message)
    ok, err = raw:auth("nope-nope")
    assert.is_nil(ok)
    assert(raw:auth("s3cret-token"))
    assert(raw:stats())
    raw:close()
  end)

  it("evaluates Lua on the admin socket only, within an instruction budget", function()
    local s = server.start { args = { "--eval-budget", "2000000" } }
    local ok, err = s.client:eval("1 + 1")
    assert.is_nil(ok)
    assert.matches("admin socket", err.message)
    local code = s:curl("POST", "/eval", "1+1")
    assert.equal(403, code)
    local mode = server.sh("stat -c %a " .. server.quote(s.data .. "/moonlog.sock"))
    assert.equal("600", mode:gsub("%s", ""))
    local a = s:admin()
    assert.same({ 2 }, assert(a:eval("1 + 1")).values)
    local r = assert(a:eval("x = 41; print('hi', x); return x + 1"))
    assert.same({ 42 }, r.values)
    assert.equal("hi\t41\n", r.output)
    assert.same({ 41 }, assert(a:eval("x")).values)             -- the connection's globals stay
    r = assert(a:eval("return log.append('ev-1', { type = 'Made', data = { n = 1 } }).position"))
    assert.same({ 1 }, r.values)
    r = assert(a:eval("local e = log.read('ev-1'); return #e, e[1].data.n, log.head()"))
    assert.same({ 1, 1, 1 }, r.values)
    ok, err = a:eval("while true do end")
    assert.is_nil(ok)
    assert.matches("budget", err.message)
    ok, err = a:eval("while true do pcall(function() while true do end end) end")
    assert.is_nil(ok)
    ok, err = a:eval("return io.open('/etc/passwd')")
    assert.is_nil(ok)
    ok, err = a:eval("return os.execute('true')")
    assert.is_nil(ok)
    local r2 = assert(a:eval("return load(string.dump(function() end))"))
    assert.matches("binary chunk", r2.values[2])                -- a binary chunk does not load
    local other = s:admin()
    assert.same({}, assert(other:eval("x")).values)             -- nor does another connection see x
    still_answers(s)
  end)

  it("refuses an eval's append where the chunk cannot wait for it, and goes on", function()
    -- A sort comparator cannot yield: the append used to be submitted anyway, the chunk
    -- then failed, and the append's answer resumed a freed chunk (the server crashed).
    local s = server.start()
    local a = s:admin()
    local ok, err = a:eval("table.sort({ 3, 1, 2 }, function(x, y) log.append('w-1', { type = 'T' }) return x < y end)")
    assert.is_nil(ok)
    assert.matches("log.append has to wait, which Lua cannot do here", err.message, 1, true)
    assert.same({ 0 }, assert(a:eval("log.head()")).values)     -- nothing was appended
    assert(a:eval("assert(log.append('w-1', { type = 'T' }))"))
    assert.equal(1, still_answers(s).head)
  end)

  it("refuses an eval's command or at() where the chunk cannot wait for it, and goes on", function()
    -- The same crash as an append's: both yield, command until decided, at() between slices.
    local s = server.start { args = { "--scripts", server.source("examples/bank/scripts") } }
    local a = s:admin()
    local ok, err = a:eval([[table.sort({ 3, 1, 2 }, function(x, y)
      account:command("Open", { id = 1, owner = "ada" }) return x < y end)]])
    assert.is_nil(ok)
    assert.matches("command has to wait, which Lua cannot do here", err.message, 1, true)
    ok, err = a:eval('string.gsub("x", "x", function() return tostring(at(0, "balances")) end)')
    assert.is_nil(ok)
    assert.matches("at has to wait, which Lua cannot do here", err.message, 1, true)
    assert.same({ 0 }, assert(a:eval("log.head()")).values)
    assert.same({ 1 }, assert(a:eval('account:command("Open", { id = 1, owner = "ada" }).version')).values)
    assert.equal(1, still_answers(s).head)
  end)

  it("refuses a second server on the same data folder", function()
    local s = server.start()
    local out = server.sh(("%s serve --data %s --listen 127.0.0.1:%d --http off 2>&1; echo \"exit=$?\"")
      :format(server.quote(os.getenv("MOONLOG_BIN")), server.quote(s.data), server.free_port()))
    assert.matches("exit=1", out)
    assert.matches("moonlog serve:", out)
    still_answers(s)
    -- and the CLI goes through the admin socket instead of opening the log twice
    out = server.sh(("%s append --data %s cli-1 Made '{\"a\":1}' 2>&1")
      :format(server.quote(os.getenv("MOONLOG_BIN")), server.quote(s.data)))
    assert.matches("appended cli%-1@1", out)
    out = server.sh(("%s read --connect 127.0.0.1:%d cli-1 --json"):format(server.quote(os.getenv("MOONLOG_BIN")), s.rpc_port))
    assert.matches('"data":{"a":1}', out)
  end)
end)

describe("limits", function()
  after_each(server.stop_all)

  it("refuses connections past --max-conns with a clear error, and goes on", function()
    local s = server.start { args = { "--max-conns", "2" } }  -- the helper's client is one
    local second = s:connect()
    local third = assert(client.connect("127.0.0.1:" .. s.rpc_port))
    local name, params = third:next_notice(5)
    assert.equal("error", name)
    assert.matches("connection limit", params[1])
    third:close()
    assert(second:stats())
  end)
end)

describe("bad input", function()
  after_each(server.stop_all)

  local function raw(s)
    local c = assert(socket.connect("127.0.0.1", s.rpc_port))
    c:settimeout(5)
    return c
  end

  it("answers a wrong request shape, a bad msgid and an unknown method, and goes on", function()
    local s = server.start()
    local c = s:connect()
    c:send_raw("\xa5hello")                           -- valid msgpack, not a request
    local name, params = c:next_notice(5)
    assert.equal("error", name)
    assert.matches("not a msgpack%-RPC request", params[1])
    c:send_raw("\x94\x00\xa1x\xa4read\x90")            -- msgid is a string
    name, params = c:next_notice(5)
    assert.matches("msgid", params[1])
    local ok, err = c:call("frobnicate", 1)
    assert.is_nil(ok)
    assert.equal("not_found", err.code)
    assert.matches("unknown method", err.message)
    ok, err = c:call("append", 42)
    assert.equal("bad_request", err.code)
    ok, err = c:call("append", "s-1", { { data = {} } })
    assert.matches("no type", err.message)
    ok, err = c:call("read", "s-1", "x")
    assert.equal("bad_request", err.code)
    ok, err = c:call("subscribe", "a*b")
    assert.matches("only at the end", err.message)
    assert(c:stats())
  end)

  it("closes the connection on malformed msgpack, an oversized request, or random bytes", function()
    local s = server.start { args = { "--max-request", "1024" } }
    local c = raw(s)
    c:send("\xc1\xc1\xc1")
    local data, err, partial = c:receive("*a")
    assert.matches("malformed msgpack", data or partial)
    c = raw(s)
    c:send(client.request(1, "append", 2, "big-1", { type = "T", data = string.rep("z", 5000) }))
    data, err, partial = c:receive("*a")
    assert.matches("too large", data or partial)
    math.randomseed(7)
    for _ = 1, 20 do
      c = raw(s)
      local bytes = {}
      for i = 1, 300 do bytes[i] = string.char(math.random(0, 255)) end
      c:send(table.concat(bytes))
      c:close()
    end
    c = raw(s)                                         -- half a request, then gone
    c:send(client.request(1, "append", 2, "half-1", { type = "T" }):sub(1, 10))
    c:close()
    local st = still_answers(s)
    assert.equal(0, st.head)
  end)
end)
