-- End-to-end: the HTTP routes, driven with curl.
local server = require "support.server"

describe("moonlog serve over HTTP", function()
  after_each(server.stop_all)

  it("appends JSON, reads the same JSON back, with versions in If-Match and ETag", function()
    local s = server.start()
    local code, body = s:curl("POST", "/streams/account-1", '{"type":"Deposited","data":{"amount":10,"note":"é","ok":true,"n":null}}',
                              { "-H", "If-Match: no_stream" })
    assert.equal(201, code)
    assert.matches('"version":1', body)
    code, body = s:curl("POST", "/streams/account-1", '[{"type":"A","data":{"x":1.5}},{"type":"B","data":[1,2]}]', { "-H", 'If-Match: "1"' })
    assert.equal(201, code)
    assert.matches('"last_position":3', body)
    code, body = s:curl("POST", "/streams/account-1", '{"type":"C"}', { "-H", "If-Match: 1" })
    assert.equal(412, code) -- a failed precondition (RFC 9110), with the version found
    assert.matches('"code":"conflict"', body)
    assert.matches('"actual_version":3', body)
    local rc, events = s:curl_json("GET", "/streams/account-1?from=1&limit=10")
    assert.equal(200, rc)
    assert.equal(3, #events)
    assert.same({ amount = 10, note = "é", ok = true }, events[1].data)
    assert.equal(1.5, events[2].data.x)
    local headers = server.sh("curl -s -D - -o /dev/null " .. s:url("/streams/account-1"))
    assert.matches('ETag: "3"', headers)
    local _, back = s:curl_json("GET", "/streams/account-1?backwards=true&limit=1")
    assert.equal("B", back[1].type)
    local _, all = s:curl_json("GET", "/all?from=2")
    assert.same({ 2, 3 }, { all[1].position, all[2].position })
    -- what an RPC client sees is the same value
    local rpc = assert(s.client:read("account-1"))
    assert.equal(10, rpc[1].data.amount)
  end)

  it("answers bad requests with a clear status and an error body", function()
    local s = server.start { args = { "--max-request", "4096" } }
    local code, body = s:curl("POST", "/streams/x-1", "{not json")
    assert.equal(400, code)
    assert.matches("JSON", body)
    code = s:curl("POST", "/streams/x-1", '{"data":{}}')
    assert.equal(400, code)
    code = s:curl("GET", "/streams/nobody-1")
    assert.equal(404, code)
    code, body = s:curl("GET", "/no/such/route")
    assert.equal(404, code)
    assert.matches('"code":"not_found"', body)
    code = s:curl("DELETE", "/all")
    assert.equal(405, code)
    code = s:curl("GET", "/all?from=abc")
    assert.equal(400, code)
    code = s:curl("POST", "/streams/x-1", '{"type":"T","data":"' .. string.rep("y", 8000) .. '"}')
    assert.equal(413, code)
    code = s:curl("POST", "/streams/$system", '{"type":"T"}')
    assert.is_true(code == 400 or code == 422)
    code, body = s:curl("GET", "/health")
    assert.equal(200, code)
    assert.matches('"status":"ok"', body)
  end)

  it("streams a subscription as server-sent events, catching up first", function()
    local s = server.start()
    for i = 1, 3 do assert(s.client:append("feed-1", { type = "T", data = { i = i } })) end
    local out = server.sh("curl -s -N -m 1 " .. server.quote(s:url("/subscribe?pattern=feed-*&from=2")))
    assert.matches(": subscribed", out)
    assert.matches("id: 2\ndata: {", out)
    assert.matches("id: 3\ndata: {", out)
    assert.is_nil(out:find("id: 1\n", 1, true))
    out = server.sh("curl -s -N -m 1 -H 'Last-Event-ID: 2' " .. server.quote(s:url("/subscribe?pattern=feed-1")))
    assert.matches("id: 3", out)
    assert.is_nil(out:find("id: 2\n", 1, true))
    assert(s.client:append("feed-1", { type = "T" }))   -- the server is fine after clients left
  end)

  it("serves /stats and /metrics", function()
    local s = server.start()
    assert(s.client:append("m-1", { type = "T" }))
    local code, st = s:curl_json("GET", "/stats")
    assert.equal(200, code)
    assert.equal(1, st.head)
    local _, text = s:curl("GET", "/metrics")
    assert.matches("# TYPE moonlog_head gauge\nmoonlog_head 1\n", text)
    assert.matches("moonlog_events_total 1", text)
  end)

  it("serves metrics that promtool accepts, with histograms, answers by code and process_*", function()
    local s = server.start { scripts = { server.source "examples/bank/scripts" } }
    assert.equal(201, (s:curl("POST", "/commands/account/Open", '{"id": 1, "owner": "ada"}')))
    assert.equal(200, (s:curl("GET", "/projections/balances/balance?arg=account-1")))
    for _ = 1, 3 do assert.equal(404, (s:curl("GET", "/nope"))) end
    local _, text = s:curl("GET", "/metrics")
    assert.matches('moonlog_http_responses_total{code="404"} 3\n', text, 1, true)
    assert.matches('moonlog_http_responses_total{code="201"} 1\n', text, 1, true)
    assert.matches("moonlog_errors_total 3\n", text, 1, true) -- every 4xx counts
    assert.matches("moonlog_command_seconds_count 1\n", text, 1, true)
    assert.matches("moonlog_query_seconds_count 1\n", text, 1, true)
    assert.matches('moonlog_append_seconds_bucket{le="+Inf"} 1\n', text, 1, true)
    assert.matches("\nprocess_start_time_seconds %d+", text)
    assert.matches('moonlog_build_info{version="', text, 1, true)
    assert.is_nil(text:find("uptime_ms", 1, true))
    if server.sh("command -v promtool") == "" then
      return pending("promtool is not installed (tools/deps.sh installs Debian's prometheus)")
    end
    local file = s.root .. "/metrics.txt"
    server.write_file(file, text)
    local out = server.sh("promtool check metrics < " .. server.quote(file) .. " 2>&1; echo rc=$?")
    assert.equal("rc=0", out:match("rc=%d+"), out)
  end)

  it("counts an append as one request, and a refused one as one error, over RPC and HTTP", function()
    -- An HTTP append used to count two requests, and a refused RPC append two errors.
    local s = server.start()
    local c = s.client
    local last = assert(c:stats())
    local function moved()   -- what moved since the last call (the stats call itself is a request)
      local st = assert(c:stats())
      local d = { requests = st.requests - last.requests - 1, errors = st.errors - last.errors }
      last = st
      return d
    end
    assert(c:append("n-1", { type = "T" }))
    assert.same({ requests = 1, errors = 0 }, moved())
    local r, err = c:append("n-1", { type = "T" }, "no_stream")
    assert.is_nil(r); assert.equal("conflict", err.code)
    assert.same({ requests = 1, errors = 1 }, moved())
    assert.equal(201, (s:curl("POST", "/streams/n-2", '{"type":"T"}')))
    assert.same({ requests = 1, errors = 0 }, moved())
    assert.equal(412, (s:curl("POST", "/streams/n-2", '{"type":"T"}', { "-H", "If-Match: no_stream" })))
    assert.same({ requests = 1, errors = 1 }, moved())
  end)

  it("answers HEAD without a body, so the next answer on the connection stays whole", function()
    -- A fuzz find: the 405 to a HEAD went out with its JSON body and no Content-Length,
    -- which a client or a proxy reusing the connection read as the next response.
    local s = server.start()
    local socket = require "socket"
    local c = assert(socket.connect("127.0.0.1", s.http_port))
    c:settimeout(5)
    assert(c:send("HEAD /subscribe HTTP/1.1\r\nHost: x\r\n\r\nHEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
      .. "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
    local function head()
      local lines = {}
      repeat
        local line = assert(c:receive("*l"))
        lines[#lines + 1] = line
      until line == "" or line == "\r"
      return lines
    end
    assert.matches("^HTTP/1.1 405", head()[1]) -- an event stream has no HEAD
    assert.matches("^HTTP/1.1 200", head()[1]) -- HEAD is GET without the body
    assert.equal("HTTP/1.1 200 OK", (assert(c:receive("*l")):gsub("\r$", "")))
    c:close()
  end)

  it("speaks HTTP as browsers, caches and proxies expect: CORS, 304, Location, Link", function()
    local s = server.start { args = { "--cors", "https://app.example", "--max-read", "3" } }
    local function headers(args)
      return server.sh("curl -s -D - -o /dev/null " .. args)
    end
    -- a preflight, answered without the token, for the one origin given
    local h = headers("-X OPTIONS -H 'Origin: https://app.example' -H 'Access-Control-Request-Method: POST' "
      .. s:url("/streams/c-1"))
    assert.matches("^HTTP/1.1 204", h)
    assert.matches("Access%-Control%-Allow%-Origin: https://app.example", h)
    assert.matches("Access%-Control%-Allow%-Headers: [^\n]*If%-Match", h)
    h = headers("-H 'Origin: https://evil.example' " .. s:url("/all"))
    assert.is_nil(h:find("Access-Control-Allow-Origin", 1, true))
    -- 201 with where the events are; their page has them
    h = server.sh("curl -s -D - -o /dev/null -X POST --data-binary '[{\"type\":\"A\"},{\"type\":\"B\"}]' "
      .. "-H 'Origin: https://app.example' " .. s:url("/streams/c-1"))
    assert.matches("^HTTP/1.1 201", h)
    assert.matches("Access%-Control%-Allow%-Origin: https://app.example", h)
    local loc = assert(h:match("Location: ([^\r\n]+)"))
    assert.equal("/streams/c-1?from=1&limit=2", loc)
    local _, page = s:curl_json("GET", loc)
    assert.same({ "A", "B" }, { page[1].type, page[2].type })
    -- a cached copy that is current: 304, no body
    assert.equal(304, (s:curl("GET", "/streams/c-1", nil, { "-H", 'If-None-Match: "2"' })))
    assert.equal(200, (s:curl("GET", "/streams/c-1", nil, { "-H", 'If-None-Match: "1"' })))
    -- a page that stops before the end (at --max-read here) says where the next begins
    assert(s.client:append("c-1", { type = "C" }))
    assert(s.client:append("c-1", { type = "D" }))
    h = headers(s:url("/all?limit=20000"))
    assert.matches('Link: </all%?from=4&limit=3>; rel="next"', h)
    h = headers(s:url("/all?from=4"))
    assert.is_nil(h:find("Link:", 1, true))
    h = headers(server.quote(s:url("/streams/c-1?backwards=true&limit=2")))
    assert.matches('Link: </streams/c%-1%?from=2&limit=2&backwards=true>; rel="next"', h)
  end)

  it("sends event streams with retry, typed events when asked, and keep-alive comments", function()
    local s = server.start { args = { "--sse-heartbeat", "200" } }
    local out = s.root .. "/sse"
    -- (without the sanitizer preload the spec runner gives lua5.4: curl hangs under it)
    os.execute(("env -u LD_PRELOAD curl -s -N -m 3 %s > %s &"):format(server.quote(s:url("/subscribe?pattern=t-*&typed=true")), out))
    server.eventually(function() return server.sh("cat " .. out):find("subscribed", 1, true) end, 10, "the stream")
    assert(s.client:append("t-1", { type = "Opened" }))
    server.eventually(function() return server.sh("cat " .. out):find("keep-alive", 1, true) end, 10, "a heartbeat")
    local text = server.sh("cat " .. out)
    assert.matches("^retry: %d+\n", text)
    assert.matches("id: 1\nevent: Opened\ndata: {", text)
  end)

  it("names the user's script in errors, never the runtime's own Lua files", function()
    local s = server.start { args = { "--scripts", server.source "examples/bank/scripts" } }
    local code, body = s:curl_json("GET", "/projections/balances/totl")
    assert.equal(404, code)
    assert.equal('script balances failed: projection "balances": unknown query "totl" (did you mean "total"?)',
      body.error.message)
    code, body = s:curl_json("POST", "/commands/account/Nope", "{}")
    assert.equal(404, code)
    assert.equal('script account failed: decider "account": unknown command "Nope" (did you mean "Open"?)',
      body.error.message)
    local _, err = s.client:call("query", "balances", "totl")
    assert.is_nil(err.message:find("traceback", 1, true))
    assert.is_nil(err.message:find("moonlog.", 1, true))
  end)

  it("writes error messages that echo a path as UTF-8 JSON", function()
    -- A fuzz find: the bytes of a path went into the message raw, so /projections/%FFx
    -- was answered with a body that is not UTF-8, which JSON must be.
    local s = server.start { args = { "--scripts", server.source "examples/bank/scripts" } }
    local code, body = s:curl_json("GET", "/projections/%FFx")
    assert.equal(404, code)
    assert.is_table(body, "the body is not JSON: " .. tostring(body))
    assert.equal("no script named \"\u{fffd}x\" (see GET /scripts)", body.error.message)
  end)

  it("survives a command whose decider name decodes to a NUL", function()
    -- A fuzz find: POST /commands/a%00/Add took the whole server down (a NULL write).
    local s = server.start { args = { "--scripts", server.source "examples/bank/scripts" } }
    local code = s:curl("POST", "/commands/a%00/Add", "{}")
    assert.equal(404, code)
    code = s:curl("GET", "/health")
    assert.equal(200, code)
  end)
end)
