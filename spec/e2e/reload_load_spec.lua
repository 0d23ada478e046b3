-- End-to-end: hot reload under load. A producer appends at a steady 10,000 events/s
-- (pipelined) while a handler and a projection are rewritten 50 times each, mixing
-- good versions with syntax errors, errors at load or in init, and validation errors,
-- saved by rename-over or truncate-write. At the end the handler emitted exactly one
-- Pong per Ping, in order, only from good versions; the projection's state equals a
-- recount of the log; every request was answered; every bad version was reported.
local server = require "support.server"
local socket = require "socket"

local RATE = tonumber(os.getenv("RELOAD_RATE")) or 10000  -- events per second
local BATCH = 50    -- events per append
local VERSIONS = 50 -- of each script
-- The handler reacts to every EVERY-th Ping (1: to each; what one slice of the handler
-- emits goes to the log in one batch with its checkpoint, so it keeps up).
local EVERY = tonumber(os.getenv("RELOAD_EVERY")) or 1

local function write(path, text, rename)
  local target = rename and path .. ".tmp" or path
  local f = assert(io.open(target, "w"))
  f:write(text)
  f:close()
  if rename then assert(os.rename(target, path)) end
end

-- Version v of each script: good when v % 4 == 0 or v == VERSIONS, else one way bad.
local function bad_kind(v)
  if v == VERSIONS then return nil end
  return ({ nil, "syntax", "init", "validation" })[v % 4 + 1]
end

local function handler_src(v)
  local bad = bad_kind(v)
  return ([[
local ml = require "moonlog"
local EVERY = ]] .. EVERY .. [[

%s
return ml.handler {
  name = "echo", from = "ping-*", on_error = %q,
  on = { Ping = function(e, ctx)
    if e.data.n %% EVERY == 0 then
      ctx.emit("pong-" .. e.data.n %% 97, "Pong", { n = e.data.n, v = %d })
    end
  end },
}
]]):format(bad == "syntax" and ("return v%d v%d"):format(v, v)
            or bad == "init" and ('error("broken at load v%d")'):format(v) or "",
            bad == "validation" and ("explode" .. v) or "stop", v)
end

local function projection_src(v)
  local bad = bad_kind(v)
  local keep = v % 8 == 4 -- half the good versions keep their state through migrate
  return ([[
local ml = require "moonlog"
%s
return ml.projection {
  name = "tally", from = "ping-*", reload = %q, %s
  init = function() %s return { count = 0, sum = 0, v = %d } end,
  on = { Ping = function(s, e) s.count = s.count + 1; s.sum = s.sum + e.data.n end },
  queries = { v = function(s) return s.v end },
}
]]):format(bad == "syntax" and ("return v%d v%d"):format(v, v) or "",
            bad == "validation" and ("sometime" .. v) or keep and "keep" or "rebuild",
            keep and ("migrate = function(old) old.v = %d return old end,"):format(v) or "",
            bad == "init" and ('error("broken init v%d")'):format(v) or "", v)
end

-- What the report of bad version v says (an older version's report never contains it).
local function marker(v)
  return ({ syntax = "'v" .. v .. "'", init = "v" .. v, validation = "e" .. v })[bad_kind(v)]
end

describe("hot reload under load", function()
  after_each(server.stop_all)

  it("loses nothing while a handler and a projection are rewritten 50 times each", function()
    local dir = server.tmpdir()
    write(dir .. "/echo.lua", handler_src(0))
    write(dir .. "/tally.lua", projection_src(0))
    local s = server.start { args = { "--scripts", dir } }
    local producer, watcher = s:connect(), s:connect()
    local n, sent, answered, failures = 0, {}, 0, {}
    local t0 = socket.gettime()
    local producing = true

    -- Sends what the steady rate owes by now (while producing), and collects the answers
    -- that came.
    local function pump()
      local owed = producing and math.floor((socket.gettime() - t0) * RATE) - n or 0
      while owed >= BATCH do
        local evs = {}
        for i = 1, BATCH do evs[i] = { type = "Ping", data = { n = n + i } } end
        sent[#sent + 1] = assert(producer:send("append", "ping-" .. (n // BATCH) % 101, evs))
        n, owed = n + BATCH, owed - BATCH
      end
      producer:fill(0)
      producer:drain()
      for i = #sent, 1, -1 do
        local a = producer.answers[sent[i]]
        if a then
          producer.answers[sent[i]] = nil
          if a[1] ~= nil then failures[#failures + 1] = a[1] end
          answered = answered + 1
          table.remove(sent, i)
        end
      end
    end

    local function status(name)
      for _, st in ipairs(assert(watcher:call("scripts"))) do
        if st.name == name then return st end
      end
    end

    -- Pumps until fn() holds (no time limit on the condition itself: the spec's timeout is).
    local function until_(fn, what)
      local deadline = socket.gettime() + 60
      while socket.gettime() < deadline do
        pump()
        local v = fn()
        if v then return v end
        socket.sleep(0.003)
      end
      local st = {}
      for _, x in ipairs(watcher:call("scripts") or {}) do
        st[#st + 1] = ("%s reloads=%s error=%s lag=%s"):format(x.name, tostring(x.reloads),
          tostring(x.reload_error), tostring(x.lag))
      end
      error("timed out waiting for " .. what .. ": " .. table.concat(st, "; ") .. "\n"
        .. server.sh("tail -10 " .. server.quote(s.log)))
    end

    -- (version 0 of both is running before version 1 is written)
    until_(function()
      local e, t = status("echo"), status("tally")
      return e and e.hash and t and t.hash
    end, "version 0 running")
    local reloads = { echo = 0, tally = 0 }
    for v = 1, VERSIONS do
      for _, script in ipairs { { "echo", handler_src }, { "tally", projection_src } } do
        local name, src = script[1], script[2]
        write(dir .. "/" .. name .. ".lua", src(v), v % 2 == 0)
        if bad_kind(v) then
          until_(function()
            local e = status(name).reload_error
            return e and e:find(marker(v), 1, true)
          end, name .. " reporting bad version " .. v)
        else
          reloads[name] = reloads[name] + 1
          until_(function()
            local st = status(name)
            return st.reloads == reloads[name] and not st.reload_error
          end, name .. " running good version " .. v)
        end
      end
      local pause = socket.gettime() + 0.1 -- the producer goes on between two saves
      until_(function() return socket.gettime() > pause end, "a pause")
    end
    -- The producer stops here, so that n is the count the scripts must reach (an append
    -- sent while waiting below would race the reads of their state).
    producing = false
    until_(function() return #sent == 0 end, "every append answered")
    local head = n
    until_(function()
      local e, t = status("echo"), status("tally")
      return e.lag == 0 and e.position >= head and t.lag == 0 and t.position >= head
    end, "both scripts at the head")
    assert.same({}, failures)
    assert.is_true(answered > 0)

    -- The projection equals a recount of the log.
    local tally = assert(watcher:call("state", "tally"))
    assert.same({ n, VERSIONS }, { tally.count, tally.v })
    -- (compared with ==: a sum past 2^32 may come back as a float from some codecs)
    assert.is_true(tally.sum == n * (n + 1) // 2, ("sum %s"):format(tostring(tally.sum)))
    -- The handler: one Pong per Ping, each from a good version, versions in the log's order.
    local pong_of, last_v = {}, {}
    for k = 0, 96 do
      for _, e in ipairs(watcher:read_all("pong-" .. k)) do
        local p = e.data
        assert.is_nil(pong_of[p.n], "ping " .. p.n .. " handled twice")
        assert.is_nil(bad_kind(p.v), "bad version " .. p.v .. " ran")
        assert.is_true(p.v >= (last_v[k] or 0), "versions out of order")
        pong_of[p.n], last_v[k] = p.v, p.v
      end
    end
    for i = EVERY, n, EVERY do assert.is_not_nil(pong_of[i], "ping " .. i .. " not handled") end
    os.execute("rm -rf " .. server.quote(dir))
  end)
end)
