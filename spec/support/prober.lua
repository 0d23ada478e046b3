-- spec/support/prober.lua: a second client that keeps a server busy and times it.
--
--   lua5.4 spec/support/prober.lua PORT STOPFILE
--
-- Until STOPFILE exists (or the server is gone): appends one event to prober-1 and reads it back, then asks
-- for stats, over and over on one RPC connection, timing each answer. Then prints
-- one line: "rounds N appended N read N errors N longest_ms N", where longest_ms is
-- the longest wait for one answer: how long the server's loop was held. With
-- PROBER_TRACE set, each wait over 200 ms is written to stderr as it happens.
local client = require "moonlog.client"
local socket = require "socket"

local port, stop = assert(arg[1]), assert(arg[2])
local c = assert(client.connect("127.0.0.1:" .. port, { timeout = 60 }))
local rounds, appended, read, errors, longest = 0, 0, 0, 0, 0

local function timed(fn, ...)
  local t0 = socket.gettime()
  local r, err = fn(c, ...)
  local ms = (socket.gettime() - t0) * 1000
  if ms > longest then longest = ms end
  if os.getenv("PROBER_TRACE") and ms > 200 then
    local what = fn == c.append and "append" or fn == c.read and "read" or "stats"
    io.stderr:write(("prober: %.0f ms waiting for %s, until %.3f\n"):format(ms, what, socket.gettime()))
  end
  if r == nil then errors = errors + 1 end
  return r, err
end

local function stopped()
  local f = io.open(stop, "r")
  if f then f:close() end
  return f ~= nil
end

local failing = 0
while not stopped() and failing < 20 do
  rounds = rounds + 1
  local r, err = timed(c.append, "prober-1", { type = "Tick", data = { n = rounds } })
  failing = r and 0 or failing + 1
  if err and err.code == "io" then break end -- the connection is gone
  if r then
    appended = appended + 1
    local got = timed(c.read, "prober-1", r.version, 1)
    if got and got[1] and got[1].data.n == rounds then read = read + 1 end
  end
  timed(c.stats)
  socket.sleep(0.005)
end
print(("rounds %d appended %d read %d errors %d longest_ms %d"):format(rounds, appended, read,
  errors, math.floor(longest + 0.5)))
