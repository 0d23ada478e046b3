-- End-to-end: the web console (GET /, docs/console.md). Its files over plain HTTP first; then
-- the console in a real browser: Debian's chromium, headless, driven through the DevTools
-- protocol (spec/support/chromium.lua) with mouse clicks and typing, against `moonlog serve`
-- on the bank example (examples/bank) with a handler that parks the withdrawals it fails on.
-- Each step saves a screenshot in BUILD/console-screenshots.
local server = require "support.server"
local chromium = require "support.chromium"
local cjson = require "cjson"

-- Notes every withdrawal; this version fails on those over 100, which are parked.
local NOTIFY = [[
local ml = require "moonlog"
return ml.handler {
  name = "notify",
  from = "account-*",
  on_error = "park",
  on = {
    Withdrawn = function(e, ctx)
      if e.data.amount > 100 then error("cannot notify about " .. e.data.amount) end
      ctx.emit("notice-" .. e.stream, "Noticed", { amount = e.data.amount })
    end,
  },
}
]]
local NOTIFY_FIXED = NOTIFY:gsub("if e.data.amount > 100 then[^\n]*\n", "")

-- The bank's projection with a syntax error on line 3.
local BROKEN_BALANCES = [[
local ml = require "moonlog"
return ml.projection { name = "balances", from = "account-*",
  init = function() return { total = } end,
}
]]

local function build_dir()
  return os.getenv("MOONLOG_BUILD_DIR") or assert(os.getenv("MOONLOG_BIN")):match("^(.*)/[^/]*$")
end

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

if not chromium.path() then
  pending("the web console in a real browser: " .. chromium.missing)
  return
end

describe("the web console in a real browser", function()
  local browser
  local shots = build_dir() .. "/console-screenshots"

  lazy_setup(function()
    os.execute("mkdir -p " .. server.quote(shots))
    browser = chromium.launch()
  end)
  lazy_teardown(function()
    if browser then browser:close() end
  end)
  after_each(server.stop_all)

  local function start(opts)
    opts = opts or {}
    opts.scripts = { server.source("examples/bank/scripts"), ["notify.lua"] = NOTIFY }
    return server.start(opts)
  end

  local function command(s, name, args)
    local code, body = s:curl("POST", "/commands/account/" .. name, cjson.encode(args),
                              s.token and { "-H", "Authorization: Bearer " .. s.token })
    assert(code == 201, body)
  end

  -- Opens the console in a new tab and goes to a view by clicking its link.
  local function open(s, view)
    local page = browser:open(s:url("/"))
    if view then page:click(("nav a[data-view='%s']"):format(view)) end
    return page
  end

  local function shot(page, name)
    page:screenshot(("%s/%s.png"):format(shots, name))
  end

  -- The page ran without an uncaught exception or a console error.
  local function done(page)
    assert.same({}, page.errors)
    page:close()
  end

  it("lists the streams matching a pattern and opens a stream's events", function()
    local s = start()
    command(s, "Open", { id = 1, owner = "ada" })
    command(s, "Open", { id = 2, owner = "bob" })
    command(s, "Open", { id = 3, owner = "cy" })
    command(s, "Deposit", { id = 2, amount = 250 })
    assert.equal(201, (s:curl("POST", "/streams/other-1", '{"type":"Noted","data":{"by":"test"}}')))
    local page = open(s, "streams")
    page:wait_text("#streams-count", "4 streams match *")
    page:type("#streams-pattern", "account-*")
    page:click("#streams-form button[type=submit]")
    page:wait_text("#streams-count", "3 streams match account-*")
    assert.is_nil(page:text("[data-stream='other-1']"))
    assert.equal("2", page:text("[data-stream='account-2'] td.num"))
    assert.equal("1", page:text("[data-stream='account-3'] td.num"))
    page:click("[data-stream='account-2'] button")
    page:wait_text("#stream-events", "Deposited")
    local events = page:text("#stream-events")
    assert.truthy(events:find('"amount": 250', 1, true), events)
    assert.truthy(events:find('"owner": "bob"', 1, true), events)
    assert.is_nil(events:find("ada", 1, true))
    assert.equal("#streams/account-2", page:eval("location.hash"))
    assert.matches("version 2", page:text("#stream-version"))
    shot(page, "1-streams")
    -- the overview: the figures and the appends chart
    page:click("nav a[data-view='overview']")
    page:wait("document.querySelector('[data-figure=head] dd')?.innerText === '5'", "the head figure 5")
    page:wait("document.querySelectorAll('#legend-lag li').length === 3", "a lag line per script")
    for _, name in ipairs { "account", "balances", "notify" } do
      assert.truthy(page:text(("#legend-lag [data-series='%s']"):format(name)))
    end
    -- events appended while the page looks: the chart's rate goes up from 0
    local batch = {}
    for i = 1, 20 do batch[i] = { type = "Ticked", data = { i = i } } end
    page:until_true(function()
      assert.equal(201, (s:curl("POST", "/streams/ticks-1", cjson.encode(batch))))
      local rate = tonumber(page:text("#legend-appends [data-series='events/s'] .value"))
      return rate and rate > 0
    end, "the chart's events/s to show the appends")
    shot(page, "0-overview")
    done(page)
  end)

  it("follows $all live: an event appended by the test appears", function()
    local s = start()
    command(s, "Open", { id = 1, owner = "ada" })
    local page = open(s, "live")
    page:wait("document.getElementById('live-state').dataset.following === 'yes'", "the live view to follow")
    page:wait_text("#live-events", "account-1 v1") -- the events before it opened: caught up
    local n = math.random(100000, 999999)
    assert.equal(201, (s:curl("POST", "/streams/probe-1", cjson.encode { type = "Pinged", data = { n = n } })))
    local first = page:wait_text("#live-events li:first-child", tostring(n))
    assert.truthy(first:find("Pinged", 1, true))
    assert.truthy(first:find("probe-1 v1", 1, true))
    assert.truthy(first:find("position 2", 1, true))
    shot(page, "2-live")
    done(page)
  end)

  it("shows a broken script save with its file and line, and clears it once fixed", function()
    local s = start()
    local page = open(s, "scripts")
    page:wait_text("[data-script=balances] td.state", "running")
    server.write_file(s.scripts .. "/balances.lua", BROKEN_BALANCES)
    local shown = page:wait_text("[data-script=balances] .problems", "balances.lua, line 3")
    assert.truthy(shown:find("did not load", 1, true), shown)
    assert.truthy(shown:find("unexpected symbol", 1, true), shown)
    assert.equal("running", page:text("[data-script=balances] td.state")) -- the old one runs on
    shot(page, "3-broken-script")
    server.sh("cp " .. server.quote(server.source("examples/bank/scripts/balances.lua")) .. " " ..
              server.quote(s.scripts .. "/balances.lua"))
    page:wait("document.querySelector('[data-script=balances] .problems').childElementCount === 0",
              "the error to go once the file is fixed")
    done(page)
  end)

  it("replays a parked event with the button once the handler is fixed", function()
    local s = start()
    command(s, "Open", { id = 7, owner = "gus", overdraft = 1000 })
    command(s, "Withdraw", { id = 7, amount = 300 })
    local page = open(s, "scripts")
    page:wait("document.querySelector('[data-script=notify] td.parked-count')?.innerText === '1'",
              "one parked event")
    local parked = page:text("[data-script=notify] .parked")
    assert.truthy(parked:find("Withdrawn at position 2 of account-7", 1, true), parked)
    assert.truthy(parked:find("notify.lua, line 8: cannot notify about 300", 1, true), parked)
    shot(page, "4-parked")
    server.write_file(s.scripts .. "/notify.lua", NOTIFY_FIXED)
    page:wait("document.querySelector('[data-script=notify] td.reloads').innerText === '1'",
              "the fixed handler to be loaded")
    page:click("[data-script=notify] button.replay")
    page:wait_text("[data-script=notify] .note", "Replayed 1 parked event: 1 handled, 0 failed again")
    page:wait("document.querySelector('[data-script=notify] td.parked-count').innerText === '0'",
              "no parked event left")
    local code, notices = s:curl_json("GET", "/streams/notice-account-7")
    assert.equal(200, code)
    assert.equal("Noticed", notices[1].type)
    assert.equal(300, notices[1].data.amount)
    shot(page, "5-replayed")
    done(page)
  end)

  it("sends a decider's command and answers a projection's query from its forms", function()
    local s = start()
    local page = open(s, "ask")
    local function send(name, args)
      page:choose("#command-decider", "account")
      page:type("#command-name", name)
      page:type("#command-args", args)
      page:click("#command-form button[type=submit]")
    end
    send("Open", '{"id": 5, "owner": "eve"}')
    page:wait_text("#command-answer", "Accepted: 1 event appended to account-5, now at version 1")
    send("Deposit", '{"id": 5, "amount": 120}')
    page:wait_text("#command-answer", "now at version 2")
    assert.truthy(page:text("#command-answer pre"):find('"type": "Deposited"', 1, true))
    send("Withdraw", '{"id": 5, "amount": 500}')
    page:wait_text("#command-answer", "Rejected: insufficient funds")
    assert.truthy(page:text("#command-answer"):find('"balance": 120', 1, true)) -- the details
    page:choose("#query-script", "balances")
    page:type("#query-name", "balance")
    page:type("#query-args", "account-5")
    page:click("#query-form button[type=submit]")
    page:wait_text("#query-answer", "as of position")
    assert.equal("120", page:text("#query-answer pre"))
    shot(page, "6-query-command")
    done(page)
  end)

  it("asks for the token of a server started with --token, and follows live with it", function()
    local s = start { token = "console-s3cret" }
    local page = browser:open(s:url("/"))
    page:wait("document.getElementById('token-dialog').open", "the token dialog")
    shot(page, "7-token")
    page:type("#token-input", "wrong")
    page:click("#token-form button[type=submit]")
    page:wait_text("#token-why", "refused")
    page:type("#token-input", "console-s3cret")
    page:click("#token-form button[type=submit]")
    page:wait_text("#status", "connected")
    assert.is_false(page:eval("document.getElementById('token-dialog').open"))
    page:click("nav a[data-view='live']")
    page:wait("document.getElementById('live-state').dataset.following === 'yes'", "the live view to follow")
    command(s, "Open", { id = 9, owner = "ida" })
    page:wait_text("#live-events li:first-child", "account-9 v1")
    done(page)
  end)
end)
