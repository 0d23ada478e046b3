-- End-to-end: GET /streams, the streams matching a pattern with their versions, a page at a
-- time in name order (docs/protocol.md, "Listing streams"; the web console's stream list).
local server = require "support.server"

-- A handler that parks every event it is given: its $parked-park stream is a system stream.
local PARK = [[
local ml = require "moonlog"
return ml.handler { name = "park", from = "order-*", on_error = "park",
  on = { Placed = function() error("parked on purpose") end } }
]]

describe("GET /streams", function()
  after_each(server.stop_all)

  local function list(s, query)
    local code, body = s:curl_json("GET", "/streams" .. (query or ""))
    assert(code == 200, ("GET /streams%s answered %s"):format(query or "", code))
    local names = {}
    for i, row in ipairs(body.streams) do names[i] = row.stream end
    return body, names
  end

  it("lists the streams a pattern matches, as subscriptions match them, with versions", function()
    local s = server.start { scripts = { ["park.lua"] = PARK } }
    local c = s.client
    for _, name in ipairs { "account-1", "account-2", "accounts-9", "account", "B-1" } do
      assert(c:append(name, { type = "Opened" }))
    end
    assert(c:append("account-2", { { type = "Deposited" }, { type = "Deposited" } }))
    assert(c:append("order-1", { type = "Placed" }))
    server.eventually(function()
      return s.client:call("read", "$parked-park", 1, 1)[1]
    end, 20, "the handler to park its event")

    local body, names = list(s)
    assert.same({ "B-1", "account", "account-1", "account-2", "accounts-9", "order-1" }, names)
    assert.equal(6, body.count)
    assert.is_nil(body.next)
    assert.same({ stream = "account-2", version = 3 }, body.streams[4])
    _, names = list(s, "?pattern=%24all") -- $all: the system streams too (the handler's own)
    assert.same({ "$checkpoint-park", "$parked-park", "B-1", "account", "account-1", "account-2", "accounts-9",
                  "order-1" }, names)
    _, names = list(s, "?pattern=account") -- a category: itself and account-...
    assert.same({ "account", "account-1", "account-2" }, names)
    _, names = list(s, "?pattern=account*")
    assert.same({ "account", "account-1", "account-2", "accounts-9" }, names)
    body, names = list(s, "?pattern=account-2") -- one stream
    assert.same({ "account-2" }, names)
    assert.equal(3, body.streams[1].version)
    body, names = list(s, "?pattern=nobody-*")
    assert.same({}, names)
    assert.equal(0, body.count)
  end)

  it("pages through many streams in name order, each once", function()
    local s = server.start()
    local want = {}
    for i = 1, 250 do
      want[i] = ("item-%03d"):format(i)
      assert(s.client:append(want[i], { type = "Made", data = { i = i } }))
    end
    assert(s.client:append("other", { type = "Made" }))
    local got, after, pages = {}, nil, 0
    repeat
      local body, names = list(s, "?pattern=item-*&limit=100" .. (after and ("&after=" .. after) or ""))
      assert.equal(250, body.count) -- every page counts them all
      assert.is_true(#names <= 100)
      for _, n in ipairs(names) do got[#got + 1] = n end
      after, pages = body.next, pages + 1
      if after then assert.equal(names[#names], after) end
    until not after
    assert.equal(3, pages)
    assert.same(want, got)
    -- the next page, also as the reads say it (RFC 8288); none after the last
    local function headers(query)
      return server.sh("curl -s -D - -o /dev/null " .. server.quote(s:url("/streams" .. query)))
    end
    local link = headers("?pattern=item-*&limit=100"):match('Link: <(/streams%?[^>]*)>; rel="next"')
    assert.equal("/streams?pattern=item-%2A&limit=100&after=item-100", link)
    local _, names = list(s, link:sub(#"/streams" + 1))
    assert.equal("item-101", names[1])
    assert.is_nil(headers("?pattern=item-*&limit=100&after=item-200"):find("Link:", 1, true))
  end)

  it("refuses a bad pattern, a bad limit and a method other than GET", function()
    local s = server.start()
    local code, body = s:curl("GET", "/streams?pattern=a*b")
    assert.equal(400, code)
    assert.matches("only at the end", body)
    code, body = s:curl("GET", "/streams?limit=0")
    assert.equal(400, code)
    assert.matches("limit must be a whole number", body)
    assert.equal(400, (s:curl("GET", "/streams?limit=ten")))
    assert.equal(405, (s:curl("POST", "/streams", '{"type":"X"}')))
    -- a limit past --max-read is lowered to it
    local big = server.start { args = { "--max-read", "3" } }
    for i = 1, 5 do assert(big.client:append("s-" .. i, { type = "X" })) end
    local all = select(2, list(big, "?limit=1000"))
    assert.same({ "s-1", "s-2", "s-3" }, all)
  end)
end)
