-- support.chromium: drives Debian's chromium, headless, through the Chrome DevTools
-- protocol, for the specs that test the web console in a real browser (console_spec).
--
--   local chromium = require "support.chromium"
--   if not chromium.path() then pending(chromium.missing) end
--   local b = chromium.launch()              -- one browser, a fresh profile
--   local page = b:open("http://127.0.0.1:7421/#streams")
--   page:wait("document.querySelector('#streams-table tbody tr')", "a stream row")
--   page:click("[data-stream='account-1'] button")   -- a real mouse click at its centre
--   page:type("#streams-pattern", "account-*")       -- focus it, select all, type
--   page:screenshot("/path/shot.png")
--   b:close()
--
-- The protocol goes over the browser's own websocket (--remote-debugging-port=0: the
-- port it chose is in DevToolsActivePort in its profile), spoken here with luasocket: a
-- websocket client is a handshake and a frame format, about sixty lines below. Every wait
-- has a generous bound and fails with what it waited for; the page's uncaught exceptions
-- and console errors are collected, for a spec to assert there were none.

local socket = require "socket"
local mime = require "mime"
local cjson = require "cjson"
local files = require "moonlog.testing.files"

local M = {}
M.missing = "chromium is not installed (tools/deps.sh installs Debian's chromium where the " ..
            "distribution has it): the browser test of the web console cannot run here"

local sh, q = files.sh, files.quote

-- The browser's path, or nil.
function M.path()
  for _, name in ipairs { os.getenv("CHROMIUM") or "chromium", "chromium-browser" } do
    local p = sh("command -v " .. q(name) .. " 2>/dev/null || true"):gsub("%s+$", "")
    if p ~= "" then return p end
  end
end

-- ---- a websocket client (RFC 6455), enough for DevTools: text frames, ping, close ----

local function ws_connect(port, path)
  local c = assert(socket.tcp())
  c:settimeout(30)
  assert(c:connect("127.0.0.1", port))
  local key = mime.b64(string.pack("I8I8", math.random(0, 1 << 62), math.random(0, 1 << 62)))
  assert(c:send(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n" ..
    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n")
    :format(path, port, key)))
  local status = assert(c:receive("*l"))
  assert(status:match("^HTTP/1.1 101"), "the DevTools websocket refused the upgrade: " .. status)
  repeat local line = assert(c:receive("*l")) until line == ""
  return c
end

-- A client's frame is masked (RFC 6455 5.3).
local function ws_send(c, opcode, payload)
  local n = #payload
  local head = string.char(0x80 | opcode)
  if n < 126 then head = head .. string.char(0x80 | n)
  elseif n < 65536 then head = head .. string.char(0x80 | 126) .. string.pack(">I2", n)
  else head = head .. string.char(0x80 | 127) .. string.pack(">I8", n) end
  local mask = { math.random(0, 255), math.random(0, 255), math.random(0, 255), math.random(0, 255) }
  local out = {}
  for i = 1, n, 4096 do
    local chunk = { payload:byte(i, math.min(n, i + 4095)) }
    for k = 1, #chunk do chunk[k] = chunk[k] ~ mask[(i + k - 2) % 4 + 1] end
    out[#out + 1] = string.char(table.unpack(chunk))
  end
  assert(c:send(head .. string.char(table.unpack(mask)) .. table.concat(out)))
end

-- The next whole message (text), answering pings; nil, "timeout" when none came in time.
local function ws_receive(c, timeout)
  local parts = {}
  c:settimeout(timeout)
  while true do
    local h, err, partial = c:receive(2)
    c:settimeout(30) -- the rest of a frame that has begun comes soon
    if not h and partial and #partial > 0 then h = assert(c:receive(2, partial)) end
    if not h then return nil, err end
    local b1, b2 = h:byte(1, 2)
    local n = b2 & 0x7f
    if n == 126 then n = string.unpack(">I2", assert(c:receive(2)))
    elseif n == 127 then n = string.unpack(">I8", assert(c:receive(8))) end
    local payload = n > 0 and assert(c:receive(n)) or ""
    local opcode = b1 & 0x0f
    if opcode == 0x8 then error("the browser closed the DevTools connection") end
    if opcode == 0x9 then ws_send(c, 0xA, payload)
    elseif opcode ~= 0xA then
      parts[#parts + 1] = payload
      if b1 & 0x80 ~= 0 then return table.concat(parts) end
    end
  end
end

-- ---- the browser ----

local Browser = {}
Browser.__index = Browser
local Page = {}
Page.__index = Page

-- Starts chromium headless with a fresh profile; opts.log: where its stderr goes.
function M.launch(opts)
  opts = opts or {}
  local bin = assert(M.path(), M.missing)
  local dir = files.tmpdir()
  local b = setmetatable({ dir = dir, log = opts.log or (dir .. "/chromium.log"), next_id = 0,
                           pages = {} }, Browser)
  -- --no-sandbox: chromium's sandbox needs user namespaces or running as a user other than
  -- root, which containers and CI machines often lack; it browses only our own page.
  local args = { bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--mute-audio", "--hide-scrollbars", "--window-size=1280,900",
    "--remote-debugging-port=0", "--user-data-dir=" .. dir .. "/profile", "about:blank" }
  for i, a in ipairs(args) do args[i] = q(a) end
  -- Under the sanitizers the specs' interpreter runs with the ASan runtime preloaded (for
  -- moonlog.core); the browser must not inherit it.
  b.proc = io.popen(("exec sh -c %s"):format(q("echo $$; exec env -u LD_PRELOAD -u ASAN_OPTIONS " ..
    table.concat(args, " ") .. " >/dev/null 2>>" .. q(b.log))), "r")
  b.pid = tonumber(b.proc:read("l"))
  local port, path
  local deadline = socket.gettime() + 60
  while not port do
    local f = io.open(dir .. "/profile/DevToolsActivePort")
    if f then
      port, path = f:read("l", "l")
      f:close()
      port = tonumber(port)
    end
    if not (port and path) then
      port = nil
      if socket.gettime() > deadline then
        local log = sh("cat " .. q(b.log) .. " 2>&1")
        b:close()
        error("chromium did not open its DevTools port within 60 s:\n" .. log)
      end
      socket.sleep(0.05)
    end
  end
  b.ws = ws_connect(port, path)
  return b
end

-- Sends a command and waits for its answer (events that come meanwhile go to their page).
function Browser:call(method, params, session, timeout)
  self.next_id = self.next_id + 1
  local id = self.next_id
  ws_send(self.ws, 0x1, cjson.encode { id = id, method = method, params = params or {},
                                        sessionId = session })
  local deadline = socket.gettime() + (timeout or 60)
  while true do
    local left = deadline - socket.gettime()
    local text = left > 0 and ws_receive(self.ws, left)
    if not text then error(("chromium did not answer %s within %d s"):format(method, timeout or 60)) end
    local msg = cjson.decode(text)
    if msg.id == id then
      if msg.error then error(("%s: %s"):format(method, cjson.encode(msg.error))) end
      return msg.result
    end
    if msg.method then self:event(msg) end
  end
end

-- Reads what the browser sent meanwhile, without waiting.
function Browser:drain()
  while true do
    local text = ws_receive(self.ws, 0)
    if not text then return end
    local msg = cjson.decode(text)
    if msg.method then self:event(msg) end
  end
end

function Browser:event(msg)
  local page = msg.sessionId and self.pages[msg.sessionId]
  if not page then return end
  local p = msg.params
  if msg.method == "Runtime.exceptionThrown" then
    local d = p.exceptionDetails
    page.errors[#page.errors + 1] = (d.exception and d.exception.description) or d.text
  elseif msg.method == "Runtime.consoleAPICalled" and (p.type == "error" or p.type == "assert") then
    local parts = {}
    for _, a in ipairs(p.args) do parts[#parts + 1] = tostring(a.value or a.description) end
    page.errors[#page.errors + 1] = "console." .. p.type .. ": " .. table.concat(parts, " ")
  elseif msg.method == "Page.loadEventFired" then
    page.loaded = true
  end
end

-- Opens a new tab at url and waits for its load event.
function Browser:open(url)
  local target = self:call("Target.createTarget", { url = "about:blank" }).targetId
  local session = self:call("Target.attachToTarget", { targetId = target, flatten = true }).sessionId
  local page = setmetatable({ browser = self, session = session, target = target, errors = {} }, Page)
  self.pages[session] = page
  page:call("Page.enable")
  page:call("Runtime.enable")
  page:navigate(url)
  return page
end

function Browser:close()
  if self.ws then
    pcall(self.call, self, "Browser.close", nil, nil, 10)
    self.ws:close()
    self.ws = nil
  end
  if self.proc then
    -- Browser.close ends it (it stays a zombie until reaped below); should it not within
    -- 10 s, it is ended by its pid
    local function alive()
      local f = io.open(("/proc/%d/stat"):format(self.pid))
      local stat = f and f:read("a")
      if f then f:close() end
      return stat and not stat:match("^%d+ %b() Z")
    end
    local deadline = socket.gettime() + 10
    while alive() and socket.gettime() < deadline do socket.sleep(0.05) end
    if alive() then os.execute("kill -9 " .. self.pid) end
    self.proc:close()
    self.proc = nil
  end
  os.execute("rm -rf " .. q(self.dir))
end

-- ---- a page ----

function Page:call(method, params, timeout)
  return self.browser:call(method, params, self.session, timeout)
end

-- Goes to url and waits for the page's load event (none comes when only the #fragment
-- changes: the page stays, and Page.navigate gives no loaderId).
function Page:navigate(url)
  self.loaded = false
  local r = self:call("Page.navigate", { url = url })
  if r.errorText then error(("chromium could not open %s: %s"):format(url, r.errorText)) end
  if r.loaderId then
    self:until_true(function() return self.loaded end, "the page at " .. url .. " to load")
  end
end

-- Waits (polling) until fn() is truthy and returns it; fails naming `what` (or what() says)
-- after `seconds` (30).
function Page:until_true(fn, what, seconds)
  local deadline = socket.gettime() + (seconds or 30)
  while true do
    self.browser:drain()
    local v = fn()
    if v then return v end
    if socket.gettime() > deadline then
      if type(what) == "function" then what = what() end
      error(("timed out after %d s waiting for %s%s"):format(seconds or 30, what,
        #self.errors > 0 and ("; the page's errors: " .. table.concat(self.errors, " | ")) or ""), 2)
    end
    socket.sleep(0.05)
  end
end

-- The value of a JavaScript expression in the page (awaited when it is a promise).
function Page:eval(expr)
  local r = self:call("Runtime.evaluate", { expression = expr, returnByValue = true, awaitPromise = true })
  if r.exceptionDetails then
    local d = r.exceptionDetails
    error("in the page: " .. ((d.exception and d.exception.description) or d.text) .. "\n" .. expr, 2)
  end
  local v = r.result.value
  if v == cjson.null then return nil end
  return v
end

-- Waits until the expression is truthy in the page; returns its value.
function Page:wait(expr, what, seconds)
  return self:until_true(function() return self:eval(expr) end, what or expr, seconds)
end

local function js(s) return cjson.encode(s) end

-- The text of the first element matching the selector, or nil.
function Page:text(selector)
  return self:eval(("(() => { const e = document.querySelector(%s); return e ? e.innerText : null })()")
    :format(js(selector)))
end

-- Waits until the selector's element shows text containing `needle` (plain); returns it.
function Page:wait_text(selector, needle, seconds)
  return self:until_true(function()
    local t = self:text(selector)
    return t and t:find(needle, 1, true) and t
  end, function()
    return ("%q in %s (it shows: %s)"):format(needle, selector, tostring(self:text(selector)))
  end, seconds)
end

-- A left click with the mouse at the centre of the element, as a user's: the element is
-- scrolled into view, must be visible and enabled, and must be what is under the pointer.
function Page:click(selector)
  local where = self:wait(([[(() => {
    const e = document.querySelector(%s);
    if (!e || e.disabled) return null;
    e.scrollIntoView({ block: 'center' });
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return null;
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    const top = document.elementFromPoint(x, y);
    return top && (top === e || e.contains(top)) ? [x, y] : null;
  })()]]):format(js(selector)), selector .. " to be visible and enabled")
  local x, y = where[1], where[2]
  self:call("Input.dispatchMouseEvent", { type = "mouseMoved", x = x, y = y })
  self:call("Input.dispatchMouseEvent", { type = "mousePressed", x = x, y = y, button = "left", clickCount = 1 })
  self:call("Input.dispatchMouseEvent", { type = "mouseReleased", x = x, y = y, button = "left", clickCount = 1 })
end

-- Clicks into a text field, selects what it holds and types `text` over it.
function Page:type(selector, text)
  self:click(selector)
  self:eval(("document.querySelector(%s).select()"):format(js(selector)))
  self:call("Input.insertText", { text = text })
end

-- Chooses an option of a <select> by its value (the keyboard's way: focus, then the value,
-- then the change event a user's choice fires).
function Page:choose(selector, value)
  self:wait(("[...document.querySelectorAll(%s + ' option')].some(o => o.value === %s)")
    :format(js(selector), js(value)), ("the option %s in %s"):format(value, selector))
  self:eval(([[(() => { const s = document.querySelector(%s); s.focus(); s.value = %s;
    s.dispatchEvent(new Event('input', { bubbles: true }));
    s.dispatchEvent(new Event('change', { bubbles: true })); })()]]):format(js(selector), js(value)))
end

-- Saves a PNG of the page as it is now.
function Page:screenshot(path)
  local r = self:call("Page.captureScreenshot", { format = "png" })
  local f = assert(io.open(path, "wb"))
  f:write((mime.unb64(r.data)))
  f:close()
  return path
end

function Page:close()
  self.browser.pages[self.session] = nil
  pcall(self.browser.call, self.browser, "Target.closeTarget", { targetId = self.target })
end

return M
