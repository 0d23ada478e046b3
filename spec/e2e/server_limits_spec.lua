-- End-to-end: the server within its file descriptors, and slow or idle clients.
-- Past its connection limit it refuses at once; out of descriptors it pauses
-- accepting instead of spinning; either way its CPU stays idle, its log stays
-- short and a client is answered again once others have gone. Slow HTTP and RPC
-- clients are closed after their timeouts; a quiet subscriber never is.
local server = require "support.server"
local client = require "moonlog.client"
local socket = require "socket"

-- CPU ticks (utime + stime, 1/100 s) the process has used so far.
local function cpu_ticks(pid)
  local f = assert(io.open("/proc/" .. pid .. "/stat"))
  local stat = f:read("a")
  f:close()
  local fields = {}
  for w in stat:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = w end
  return tonumber(fields[12]) + tonumber(fields[13])   -- fields 14 and 15 of stat(5)
end

-- Ticks used over `seconds` of doing nothing.
local function idle_cpu(s, seconds)
  local before = cpu_ticks(s.pid)
  socket.sleep(seconds)
  return cpu_ticks(s.pid) - before
end

local function log_lines(s)
  return tonumber((server.sh("wc -l < " .. server.quote(s.log)):gsub("%s", "")))
end

local function raw(port, timeout)
  local c = socket.tcp()
  assert(c:connect("127.0.0.1", port))
  c:settimeout(timeout or 5)
  return c
end

-- Reads one HTTP response (head and Content-Length body): status, head, body.
local function response(c)
  local head = {}
  while true do
    local line, err = c:receive("*l")
    if not line then return nil, err end
    if line == "" then break end
    head[#head + 1] = line
  end
  local len = tonumber(table.concat(head, "\n"):match("[Cc]ontent%-[Ll]ength: *(%d+)")) or 0
  local body = len > 0 and c:receive(len) or ""
  return tonumber(head[1]:match("^HTTP/1%.1 (%d+)")), table.concat(head, "\n"), body
end

-- Whether the server has closed c (all it sent is returned too).
local function closed(c)
  local data, err, partial = c:receive("*a")
  return data ~= nil or err == "closed", data or partial
end

-- Waits until a new RPC client is answered by the server s (once others have gone).
local function answers_new_client(s, what)
  server.eventually(function()
    local c = client.connect("127.0.0.1:" .. s.rpc_port, { timeout = 2 })
    local ok = c and c:stats()
    if c then c:close() end
    return ok
  end, 10, what)
end

-- The lowest descriptor number the process does not use: the next one it would get.
local function next_fd(pid)
  local used = {}
  for n in server.sh("ls /proc/" .. pid .. "/fd"):gmatch("%d+") do used[tonumber(n)] = true end
  local n = 0
  while used[n] do n = n + 1 end
  return n
end

describe("descriptors", function()
  after_each(server.stop_all)

  it("refuses connections past a limit below its descriptor limit, quietly and cheaply", function()
    local s = server.start { nofile = 256 }
    local st = assert(s.client:stats())
    assert.is_true(st.max_conns > 64 and st.max_conns <= 256 - 64,
                   "max_conns " .. st.max_conns .. " from a descriptor limit of 256")
    -- more idle connections than allowed: RPC ones, and HTTP ones with half a request
    local socks = {}
    for i = 1, 300 do
      local c = raw(i % 2 == 0 and s.rpc_port or s.http_port)
      if i % 2 == 1 then c:send("GET /stats HTTP/1.1\r\nHost: x\r\n") end
      socks[#socks + 1] = c
    end
    local late = assert(client.connect("127.0.0.1:" .. s.rpc_port))
    local name, params = late:next_notice(5)
    assert.equal("error", name)
    assert.matches("connection limit", params[1])
    late:close()
    local h = raw(s.http_port)
    h:send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    local code, _, body = response(h)
    assert.equal(503, code)
    assert.matches("connection limit", body)
    h:close()
    st = assert(s.client:stats())
    assert.is_true(st.refused_connections >= 300 + 2 - st.max_conns)
    assert.is_true(idle_cpu(s, 1) < 50, "the server burns CPU while full")
    assert.is_true(log_lines(s) < 30, "the log floods while full")
    -- once some go, a new client is answered
    for i = 1, 100 do socks[i]:close() end
    answers_new_client(s, "a client answered after connections closed")
    for i = 101, #socks do socks[i]:close() end
  end)

  it("pauses accepting when out of descriptors instead of spinning, and accepts again", function()
    local s = server.start { nofile = 256 }
    local pid = s.pid
    -- lower the process's soft limit to the next descriptor it would use: accept() fails
    assert.equal("", server.sh(("prlimit --pid %d --nofile=%d:256 2>&1"):format(pid, next_fd(pid))))
    local waiting = {}
    for i = 1, 20 do waiting[i] = raw(i % 2 == 0 and s.rpc_port or s.http_port) end
    assert.is_true(idle_cpu(s, 1) < 50, "the server spins on accept()")
    local log = server.sh("cat " .. server.quote(s.log))
    assert.matches("cannot accept connections: Too many open files", log)
    assert.is_true(log_lines(s) < 15, "the log floods while out of descriptors:\n" .. log)
    assert(s.client:stats())                           -- connected clients are still served
    server.sh(("prlimit --pid %d --nofile=256:256"):format(pid))
    waiting[2]:send(client.request(1, "stats", 0))     -- those waiting get in
    local data = waiting[2]:receive(2)
    assert.equal("\x94\x01", data)
    waiting[1]:send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(200, (response(waiting[1])))
    for _, c in ipairs(waiting) do c:close() end
  end)

  it("counts HTTP connections against --max-conns", function()
    local s = server.start { args = { "--max-conns", "3" } }   -- the helper's client is one
    local keep = {}
    for i = 1, 2 do
      keep[i] = raw(s.http_port)
      keep[i]:send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.equal(200, (response(keep[i])))         -- and the connection stays open
    end
    local late = assert(client.connect("127.0.0.1:" .. s.rpc_port))
    local name, params = late:next_notice(5)
    assert.equal("error", name)
    assert.matches("connection limit", params[1])
    local h = raw(s.http_port)
    h:send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(503, (response(h)))
    assert.is_true((closed(h)))
    local st = assert(s.client:stats())
    assert.equal(2, st.http_connections)
    assert.equal(3, st.max_conns)
    keep[1]:close()
    answers_new_client(s, "a client answered once an HTTP connection closed")
    keep[2]:close()
  end)
end)

describe("slow clients", function()
  after_each(server.stop_all)

  it("answers 408 to HTTP requests that do not arrive in time, closes idle ones, "
     .. "and never cuts a quiet subscription", function()
    local s = server.start { args = { "--header-timeout", "1000", "--idle-timeout", "1500" } }
    local half = raw(s.http_port)
    half:send("GET /stats HTTP/1.1\r\nHost: x\r\n")
    local drip = raw(s.http_port)                       -- a byte at a time: still too slow
    local body = raw(s.http_port)                       -- a body that stops
    body:send("POST /streams/slow-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"type\"")
    local keep = raw(s.http_port)                       -- keep-alive, then nothing
    keep:send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(200, (response(keep)))
    local sse = raw(s.http_port)
    sse:send("GET /subscribe?pattern=quiet-* HTTP/1.1\r\nHost: x\r\n\r\n")
    repeat local line = assert(sse:receive("*l")) until line == ": subscribed"
    local slowloris = "GET /stats HTTP/1.1\r\nHost: x\r\nX-A: " .. string.rep("a", 100)
    for i = 1, 16 do                                  -- 3.2 s, twice the idle timeout
      drip:send(slowloris:sub(i, i))
      socket.sleep(0.2)
    end
    for _, c in ipairs { half, drip, body } do
      local gone, got = closed(c)
      assert.is_true(gone)
      assert.matches("^HTTP/1%.1 408", got)
    end
    local gone, got = closed(keep)
    assert.is_true(gone)
    assert.equal("", got)
    assert(s.client:append("quiet-1", { type = "Spoke" }))
    local line
    repeat line = assert(sse:receive("*l")) until line:match("^data:")
    assert.matches('"stream":"quiet%-1"', line)
    sse:close()
    local st = assert(s.client:stats())
    assert.is_true(st.timed_out >= 3)
  end)

  it("closes an RPC connection stopped mid-request, and with --rpc-idle-timeout an idle "
     .. "one, never a subscriber or the admin socket", function()
    local s = server.start { args = { "--frame-timeout", "1000", "--rpc-idle-timeout", "1500" } }
    local part = raw(s.rpc_port)
    part:send(client.request(1, "stats", 0):sub(1, 3))
    local sub = s:connect()
    assert(sub:subscribe("quiet-*"))
    local idle = s:connect()
    assert(idle:stats())
    local admin = s:admin()
    socket.sleep(2.2)
    local gone, got = closed(part)
    assert.is_true(gone)
    assert.matches("incomplete request", got)
    local name, params = idle:next_notice(5)
    assert.equal("error", name)
    assert.matches("rpc%-idle%-timeout", params[1])
    local c = s:connect()
    assert(c:append("quiet-1", { type = "Spoke" }))
    local _, event = sub:next_event(5)
    assert.equal("quiet-1", event.stream)
    assert(admin:stats())
  end)
end)
