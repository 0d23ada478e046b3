-- End-to-end: what the server takes strictly. An HTTP request whose body length
-- is ambiguous (two Content-Lengths, or one beside Transfer-Encoding) is
-- refused and its connection closed, so that bytes a proxy in front read as
-- another request are never run; wrong tokens are answered late and end the
-- connection after three; the token is the first line of its file.
local server = require "support.server"
local client = require "moonlog.client"
local socket = require "socket"

local function raw(port)
  local c = socket.tcp()
  assert(c:connect("127.0.0.1", port))
  c:settimeout(5)
  return c
end

-- Everything the server sends until it closes the connection.
local function all(c)
  local data, err, partial = c:receive("*a")
  assert(data or err == "closed", err)
  return data or partial
end

local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

describe("HTTP framing", function()
  after_each(server.stop_all)

  it("refuses an ambiguous body length with 400, closes, and runs nothing that followed", function()
    local s = server.start()
    local ev = '{"type":"T"}'
    local smuggled = "POST /streams/smuggled-1 HTTP/1.1\r\nHost: x\r\nContent-Length: "
      .. #ev .. "\r\n\r\n" .. ev
    local cases = {
      -- two lengths: a proxy taking the second sees `smuggled` as the body
      "POST /streams/cl-1 HTTP/1.1\r\nHost: x\r\nContent-Length: " .. #ev
        .. "\r\nContent-Length: " .. (#ev + #smuggled) .. "\r\n\r\n" .. ev .. smuggled,
      -- a length beside chunked: a proxy taking the length sees `smuggled` after 5 bytes
      "POST /streams/te-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        .. "Transfer-Encoding: chunked\r\n\r\n" .. ("%x\r\n%s\r\n0\r\n\r\n"):format(#ev, ev)
        .. smuggled,
      -- a transfer coding other than chunked
      "POST /streams/te-2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        .. ("%x\r\n%s\r\n0\r\n\r\n"):format(#ev, ev) .. smuggled,
    }
    for _, request in ipairs(cases) do
      local c = raw(s.http_port)
      c:send(request)
      local got = all(c)
      assert.matches("^HTTP/1%.1 400", got)             -- (Debian's evhttp refuses the second
      assert.matches("[Cc]onnection: close", got)         -- case itself, in the same way)
      assert.equal(1, count(got, "HTTP/1%.1 "))       -- one answer: nothing after it was read
    end
    -- the same length twice is one length
    local c = raw(s.http_port)
    c:send("POST /streams/dup-1 HTTP/1.1\r\nHost: x\r\nContent-Length: " .. #ev
      .. "\r\nContent-Length: " .. #ev .. "\r\nConnection: close\r\n\r\n" .. ev)
    assert.matches("^HTTP/1%.1 201", all(c))
    local st = assert(s.client:stats())
    assert.equal(1, st.head)
    assert.equal(404, (s:curl("GET", "/streams/smuggled-1")))
  end)
end)

describe("tokens", function()
  after_each(server.stop_all)

  it("answers wrong tokens late and closes the connection after three", function()
    local s = server.start { token = "right-token-1" }
    local c = assert(client.connect("127.0.0.1:" .. s.rpc_port))
    local t0 = socket.gettime()
    local ids = {}
    for i = 1, 10 do ids[i] = c:send("auth", "wrong-token-" .. i) end   -- pipelined at once
    for i = 1, 3 do
      local ok, err = c:wait(ids[i])
      assert.is_nil(ok)
      assert.equal("refused", err.code)
      assert.matches("wrong token", err.message)
      if i == 3 then assert.matches("closed", err.message) end
    end
    -- each failure waits 0.2 s before its answer (a lower bound: slowness cannot fail it)
    assert.is_true(socket.gettime() - t0 >= 0.5)
    local ok, err = c:wait(ids[4])
    assert.is_nil(ok)
    assert.equal("io", err.code)                      -- closed: the rest were never read
    local good = s:connect()
    assert(good:stats())
    -- HTTP: a wrong token is answered 401, late, and the connection closed
    local h = raw(s.http_port)
    local req = "GET /stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope-nope-1\r\n\r\n"
    h:send(req .. req .. req)
    local got = all(h)
    assert.matches("^HTTP/1%.1 401", got)
    assert.matches("[Cc]onnection: close", got)
    assert.equal(1, count(got, "HTTP/1%.1 "))
  end)

  it("takes the first line of the token file, without its trailing white space", function()
    local s = server.start { token = "first-line-token", token_file = "first-line-token \r\nsecond\n" }
    assert(s.client:stats())
    assert.equal(200, (s:curl("GET", "/stats", nil,
                              { "-H", "Authorization: Bearer first-line-token" })))
    local c = assert(client.connect("127.0.0.1:" .. s.rpc_port))
    local ok = c:auth("first-line-token \r\nsecond\n")
    assert.is_nil(ok)
  end)

  it("refuses to start on a token file whose first line is empty", function()
    local root = server.tmpdir()
    server.write_file(root .. "/token", "\nsecret-token-1\n")
    local out = server.sh(("timeout 10 %s serve --data %s --listen 127.0.0.1:%d --http off --admin off "
      .. "--token %s 2>&1; echo \"exit=$?\""):format(server.quote(os.getenv("MOONLOG_BIN")),
      server.quote(root .. "/data"), server.free_port(), server.quote(root .. "/token")))
    os.execute("rm -rf " .. server.quote(root))
    assert.matches("first line of the token file .* is empty", out)
    assert.matches("exit=2", out)
  end)
end)
