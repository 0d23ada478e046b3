-- moonlog.client: a msgpack-RPC client for a moonlog server (docs/protocol.md).
--
--   local client = require "moonlog.client"
--   local c = assert(client.connect("127.0.0.1:7420"))      -- or { unix = "DATA/moonlog.sock" }
--   c:append("account-1", { type = "Deposited", data = { amount = 10 } }, "no_stream")
--   local events = c:read("account-1")
--   local id = c:subscribe("account-*", 0)
--   local sub, event = c:next_event(5)                       -- waits up to 5 s
--
-- Every method returns the result, or nil and an error table { code =, message = }.
-- Requests can be pipelined: c:send(method, ...) returns a msgid, c:wait(msgid) the answer.

local socket = require "socket"
local codec = require("moonlog.core").codec

local client = {}
local Client = {}
Client.__index = Client

local byte, sub, unpack, char = string.byte, string.sub, string.unpack, string.char

-- Length of the one msgpack object at s[i..]; nil if it is not all there yet.
local function frame(s, i)
  local n, todo = #s, 1
  while todo > 0 do
    if i > n then return nil end
    local c = byte(s, i)
    local hdr, body, kids = 1, 0, 0
    if c <= 0x7f or c >= 0xe0 or c == 0xc0 or c == 0xc2 or c == 0xc3 then
    elseif c >= 0x80 and c <= 0x8f then kids = 2 * (c - 0x80)
    elseif c >= 0x90 and c <= 0x9f then kids = c - 0x90
    elseif c >= 0xa0 and c <= 0xbf then body = c - 0xa0
    elseif c == 0xcc or c == 0xd0 then body = 1
    elseif c == 0xcd or c == 0xd1 then body = 2
    elseif c == 0xce or c == 0xd2 or c == 0xca then body = 4
    elseif c == 0xcf or c == 0xd3 or c == 0xcb then body = 8
    elseif c >= 0xd4 and c <= 0xd8 then body = 1 + (1 << (c - 0xd4))
    else
      local lb = (c == 0xc4 or c == 0xd9 or c == 0xc7) and 1
        or (c == 0xc5 or c == 0xda or c == 0xc8 or c == 0xdc or c == 0xde) and 2 or 4
      if i + lb > n then return nil end
      local v = unpack(lb == 1 and ">I1" or lb == 2 and ">I2" or ">I4", s, i + 1)
      hdr = 1 + lb
      if c == 0xdc or c == 0xdd then kids = v
      elseif c == 0xde or c == 0xdf then kids = 2 * v
      else body = v + ((c >= 0xc7 and c <= 0xc9) and 1 or 0) end
    end
    i = i + hdr + body
    if i > n + 1 then return nil end
    todo = todo - 1 + kids
  end
  return i
end
client.frame = frame

local function array_head(n)
  if n < 16 then return char(0x90 + n) end
  return "\xdc" .. string.pack(">I2", n)
end

-- Encodes a request; params may hold nils (sent as nil), up to `n`.
local function request(msgid, method, n, ...)
  local parts = { "\x94", codec.encode(0), codec.encode(msgid), codec.encode(method), array_head(n) }
  for i = 1, n do
    local v = select(i, ...)
    parts[#parts + 1] = v == nil and "\xc0" or codec.encode(v)
  end
  return table.concat(parts)
end
client.request = request

-- Connects to "HOST:PORT", { host =, port = } or { unix = PATH }. opts.timeout (s, default 10).
function client.connect(addr, opts)
  opts = opts or {}
  local sock, err
  if type(addr) == "table" and addr.unix then
    sock = require("socket.unix").stream()
    local ok, e = sock:connect(addr.unix)
    if not ok then return nil, { code = "io", message = "cannot connect to " .. addr.unix .. ": " .. e } end
  else
    local host, port
    if type(addr) == "table" then host, port = addr.host, addr.port
    else host, port = addr:match("^(.*):(%d+)$") end
    sock, err = socket.connect(host or "127.0.0.1", tonumber(port))
    if not sock then
      return nil, { code = "io", message = ("cannot connect to %s:%s: %s"):format(host, port, err) }
    end
    sock:setoption("tcp-nodelay", true)
  end
  sock:settimeout(0)
  local c = setmetatable({ sock = sock, buf = "", pos = 1, next_id = 1, answers = {},
                           events = {}, notices = {}, timeout = opts.timeout or 10 }, Client)
  if opts.token then
    local ok, e = c:auth(opts.token)
    if not ok then c:close() return nil, e end
  end
  return c
end

function Client:close()
  if self.sock then self.sock:close() self.sock = nil end
end

function Client:send_raw(bytes)
  local i = 1
  while i <= #bytes do
    local _, err, last = self.sock:send(bytes, i)
    if err == "timeout" then
      i = last + 1
      socket.select(nil, { self.sock }, 1)
    elseif err then
      return nil, { code = "io", message = "send failed: " .. err }
    else
      break
    end
  end
  return true
end

-- Sends a request without waiting; returns its msgid.
function Client:send(method, ...)
  local id = self.next_id
  self.next_id = id + 1
  local ok, err = self:send_raw(request(id, method, select("#", ...), ...))
  if not ok then return nil, err end
  return id
end

-- Reads what the socket has, waiting up to `timeout` s; false on timeout, nil+err if closed.
function Client:fill(timeout)
  local r = socket.select({ self.sock }, nil, timeout)
  if #r == 0 then return false end
  local data, err, partial = self.sock:receive(1 << 16)
  data = data or partial
  if data and #data > 0 then
    if self.pos > 1 then self.buf, self.pos = sub(self.buf, self.pos), 1 end
    self.buf = self.buf .. data
    return true
  end
  if err == "closed" then return nil, { code = "io", message = "the server closed the connection" } end
  return true
end

-- Takes every complete message out of the buffer and sorts it.
function Client:drain()
  while true do
    local e = frame(self.buf, self.pos)
    if not e then return end
    local msg = codec.decode(sub(self.buf, self.pos, e - 1))
    self.pos = e
    if msg[1] == 1 then
      self.answers[msg[2]] = { msg[3], msg[4] }
    elseif msg[1] == 2 and msg[2] == "event" then
      self.events[#self.events + 1] = msg[3]
    elseif msg[1] == 2 then
      self.notices[#self.notices + 1] = { msg[2], msg[3] }
    end
  end
end

-- Waits for the answer to msgid: result, or nil and the error.
function Client:wait(msgid, timeout)
  local deadline = socket.gettime() + (timeout or self.timeout)
  while true do
    self:drain()
    local a = self.answers[msgid]
    if a then
      self.answers[msgid] = nil
      if a[1] ~= nil then return nil, a[1] end
      return a[2] == nil and true or a[2]
    end
    local left = deadline - socket.gettime()
    if left <= 0 then return nil, { code = "timeout", message = "no answer in time" } end
    local ok, err = self:fill(left)
    if ok == nil then return nil, err end
  end
end

function Client:call(method, ...)
  local id, err = self:send(method, ...)
  if not id then return nil, err end
  return self:wait(id)
end

-- The next event notification: sub_id, event; or nil and an error on timeout.
function Client:next_event(timeout)
  local deadline = socket.gettime() + (timeout or self.timeout)
  while true do
    self:drain()
    if #self.events > 0 then
      local p = table.remove(self.events, 1)
      return p[1], p[2]
    end
    local left = deadline - socket.gettime()
    if left <= 0 then return nil, { code = "timeout", message = "no event in time" } end
    local ok, err = self:fill(left)
    if ok == nil then return nil, err end
  end
end

-- The next non-event notification (e.g. "error"): name, params.
function Client:next_notice(timeout)
  local deadline = socket.gettime() + (timeout or self.timeout)
  while true do
    self:drain()
    if #self.notices > 0 then
      local n = table.remove(self.notices, 1)
      return n[1], n[2]
    end
    local left = deadline - socket.gettime()
    if left <= 0 then return nil, { code = "timeout", message = "no notice in time" } end
    local ok, err = self:fill(left)
    if ok == nil then return nil, err end
  end
end

function Client:append(stream, events, expected) return self:call("append", stream, events, expected) end
-- fields (optional): names of the fields to send, e.g. { "position", "data" }: each event is
-- then an array of those values, in that order (docs/protocol.md, read).
function Client:read(stream, from, limit, backwards, fields)
  return self:call("read", stream, from, limit, backwards, fields)
end
function Client:subscribe(pattern, from, group) return self:call("subscribe", pattern, from, group) end
function Client:unsubscribe(id) return self:call("unsubscribe", id) end
function Client:ack(group, position) return self:call("ack", group, position) end
function Client:delete(stream, expected, hard) return self:call("delete", stream, expected, hard) end
function Client:set_metadata(stream, meta, expected) return self:call("set_metadata", stream, meta, expected) end
function Client:metadata(stream) return self:call("metadata", stream) end
function Client:stats() return self:call("stats") end
function Client:auth(token) return self:call("auth", token) end
function Client:eval(chunk) return self:call("eval", chunk) end

-- Reads a whole stream (or $all) page by page.
function Client:read_all(stream, from)
  local out, at = {}, from or 0
  while true do
    local page, err = self:read(stream, at)
    if not page then return nil, err end
    for _, e in ipairs(page) do out[#out + 1] = e end
    if #page == 0 then return out end
    local last = page[#page]
    at = (stream == "$all" and last.position or last.version) + 1
  end
end

return client
