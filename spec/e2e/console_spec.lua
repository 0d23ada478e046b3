-- End-to-end: the web console (GET /, docs/console.md): its files over plain HTTP.
local server = require "support.server"

describe("the web console's files", function()
  after_each(server.stop_all)

  it("are served at / and /console/ from the binary, without the token the API needs", function()
    local s = server.start { token = "console-s3cret" }
    local code, page = s:curl("GET", "/")
    assert.equal(200, code)
    assert.truthy(page:find("<title>moonlog console</title>", 1, true))
    local headers = server.sh("curl -s -D - -o /dev/null " .. server.quote(s:url("/")))
    assert.matches("Content%-Type: text/html; charset=utf%-8", headers)
    assert.matches("Content%-Security%-Policy: default%-src 'none'; script%-src 'self'", headers)
    local etag = assert(headers:match('ETag: ("%x+")'))
    -- a browser that has the page asks again and is told it is current
    assert.equal(304, (s:curl("GET", "/", nil, { "-H", "If-None-Match: " .. etag })))
    -- HEAD: the same headers, the page's length, no body
    local head = server.sh("curl -s -I " .. server.quote(s:url("/")))
    assert.matches("HTTP/1.1 200", head)
    assert.matches("Content%-Length: " .. #page .. "\r\n", head)
    code, page = s:curl("GET", "/console/console.js")
    assert.equal(200, code)
    assert.truthy(page:find("Authorization", 1, true))
    assert.equal(200, (s:curl("GET", "/console/console.css")))
    assert.matches("Content%-Type: text/javascript",
      server.sh("curl -s -D - -o /dev/null " .. server.quote(s:url("/console/console.js"))))
    -- nothing else is a file of the console, and the API still needs the token
    code, page = s:curl("GET", "/console/passwd")
    assert.equal(404, code)
    assert.matches("no such file in the web console", page)
    assert.equal(405, (s:curl("POST", "/")))
    assert.equal(401, (s:curl("GET", "/stats")))
    assert.equal(401, (s:curl("GET", "/streams")))
  end)
end)
