-- soak.lua - `make soak`: the real `moonlog serve` killed with SIGKILL at random moments
-- under load, round after round, and everything it acknowledged checked after each restart.
--
--   lua5.4 tools/soak.lua [--rounds 1000] [--clients 4] [--depth 8] [--kill-ms 20-600]
--                         [--seed N] [--keep] [--inject lose|double]
--
-- (MOONLOG_BIN names the binary; LUA_PATH and LUA_CPATH reach lua/, spec/ and the built
-- moonlog.core: the Makefile sets them.) Each round starts the server on the same data folder
-- with scripts: examples/orders (a decider, three handlers in a saga, a projection), a handler
-- that answers each Ping with a Pong, and a projection that counts. Several clients pipeline
-- appends with client-chosen ids (so a double is visible), and Place commands; at a random
-- moment the server gets `kill -9`. Then:
--
--   1. `moonlog check` must pass (a torn tail is counted, not a failure: docs/log.md);
--   2. the server starts again; every request whose answer was lost with the kill is sent
--      again with the same ids (an append must then store it once, a command finds its order
--      placed or places it);
--   3. the log from the last verified position is read and checked: positions without gaps,
--      versions in sequence, every event acknowledged before the kill at the position it was
--      acknowledged at, every id exactly once, each connection's appends in the order sent;
--      the handlers' outputs exactly once per input (a Pong per Ping, each step of each
--      order's saga), and the projections' answers equal to a fold of the log.
--
-- An id of a round already verified that shows up again later is a double. The report at the
-- end gives rounds, events acknowledged, lost, doubled, reordered, and the handler outputs;
-- the exit status is 1 if anything was lost, doubled, reordered or wrong. --inject makes the
-- soak damage its own run (cut acknowledged events off the log, or append one again under
-- another stream) so that the suite can see it fail.
--
-- Lua rather than C: it drives the server through the project's own client
-- (lua/moonlog/client.lua) and starts it with the suite's helper (spec/support/server.lua),
-- so the soak checks what the specs check, in their terms; a crash soak needs rounds, not
-- the request rate one Lua process already gives (a few thousand requests a second).
local socket = require "socket"
local server = require "support.server"

local here = arg[0]:match("(.*)/tools/[^/]*$") or "."

local O = { rounds = 1000, clients = 4, depth = 8, kill_min = 20, kill_max = 600,
            seed = os.time(), wait = 60 }

local function usage(why)
  io.stderr:write("soak: ", why, "\nusage: lua5.4 tools/soak.lua [--rounds N] [--clients N] ",
    "[--depth N] [--kill-ms MIN-MAX] [--seed N] [--keep] [--inject lose|double]\n")
  os.exit(2)
end

local function parse_args()
  local i = 1
  while i <= #arg do
    local a, v = arg[i], arg[i + 1]
    if a == "--keep" then
      O.keep, i = true, i + 1
    elseif a == "--kill-ms" then
      O.kill_min, O.kill_max = (v or ""):match("^(%d+)%-(%d+)$")
      O.kill_min, O.kill_max = tonumber(O.kill_min), tonumber(O.kill_max)
      if not O.kill_min or O.kill_min > O.kill_max then usage("--kill-ms takes MIN-MAX, e.g. 20-600") end
      i = i + 2
    elseif a == "--inject" then
      if v ~= "lose" and v ~= "double" then usage("--inject takes lose or double") end
      O.inject, i = v, i + 2
    elseif a == "--rounds" or a == "--clients" or a == "--depth" or a == "--seed" then
      O[a:sub(3)] = math.tointeger(tonumber(v or ""))
      if not O[a:sub(3)] or O[a:sub(3)] < 1 then usage(a .. " takes a whole number from 1") end
      i = i + 2
    else
      usage("unknown argument " .. a)
    end
  end
end

-- ---- the scripts ---------------------------------------------------------------------

local ECHO = [[
local ml = require "moonlog"
return ml.handler {
  name = "echo", from = "ping-*",
  on = { Ping = function(e, ctx) ctx.emit("pong-" .. e.stream:sub(6), "Pong", { ping = e.id }) end },
}
]]

-- The orders example, ECHO, and the count projection of spec/data/count.lua.
local function scripts_folder(root)
  local dir = root .. "/scripts"
  server.sh("mkdir -p " .. server.quote(dir) .. " && cp " .. server.quote(here .. "/examples/orders/scripts")
    .. "/*.lua " .. server.quote(here .. "/spec/data/count.lua") .. " " .. server.quote(dir))
  server.write_file(dir .. "/echo.lua", ECHO)
  return dir
end

-- ---- figures and failures ----------------------------------------------------------

local T = { acked_events = 0, acked_appends = 0, acked_commands = 0, resent_appends = 0,
            resent_commands = 0, resent_stored = 0, lost = 0, doubled = 0, reordered = 0, pings = 0, pongs = 0,
            orders = 0, saga_steps = 0, handler_missing = 0, handler_doubled = 0, wrong = 0,
            torn_tails = 0, checks = 0, projection_checks = 0 }
local failures = {}

-- Counts a failure of `kind` (a field of T) and keeps its description (the first 30).
local function fail(kind, fmt, ...)
  T[kind] = T[kind] + 1
  if #failures < 30 then failures[#failures + 1] = (kind .. ": " .. fmt):format(...) end
end

-- ---- the load -------------------------------------------------------------------------

-- The next request of client `cl` in round `r`: an op { kind, method, args, ids, ... }.
local function next_op(cl, r)
  cl.k = cl.k + 1
  local k, c, roll = cl.k, cl.n, math.random()
  local tag = ("r%d.c%d.k%d"):format(r, c, k)
  local op = { seq = k, client = cl }
  if roll < 0.005 then
    -- a batch of 10-40 KiB: its write spans pages, so that a kill can land inside it
    local evs, pad = {}, ("x"):rep(200)
    for i = 1, math.random(30, 150) do
      evs[i] = { type = "Moved", id = tag .. "." .. i, data = { k = k, i = i, pad = pad } }
    end
    op.kind, op.stream, op.events = "append", "bulk-" .. c, evs
  elseif roll < 0.40 then
    local evs = {}
    for i = 1, math.random(3) do
      evs[i] = { type = "Moved", id = tag .. "." .. i, data = { k = k, i = i } }
    end
    op.kind, op.stream, op.events = "append", ("acct-%d-%d"):format(c, k % 7), evs
  elseif roll < 0.65 then
    op.kind, op.stream = "append", "ping-" .. c
    op.events = { { type = "Ping", id = tag .. ".1", data = { k = k } } }
  elseif roll < 0.80 then
    op.kind, op.stream = "append", "item-" .. k % 5
    op.events = { { type = "Added", id = tag .. ".1", data = { v = k % 7 + 1 } } }
  else
    op.kind = "command"
    op.order = ("r%dc%dk%d"):format(r, c, k)
    op.amount = 1000 * (1 + k % 150) -- above 100000 the gateway fails the payment
  end
  return op
end

local function send(c, op)
  if op.kind == "append" then return c:send("append", op.stream, op.events) end
  return c:send("command", "order", "Place", { id = op.order, amount = op.amount, card = "4242" })
end

-- Takes the answers that have arrived on client `cl`; false once its connection is closed.
local function collect(cl)
  local ok = cl.c:fill(0)
  local open = ok ~= nil
  cl.c:drain()
  for id, op in pairs(cl.inflight) do
    local a = cl.c.answers[id]
    if a then
      cl.c.answers[id], cl.inflight[id], cl.n_inflight = nil, nil, cl.n_inflight - 1
      op.err, op.answer = a[1], a[2]
      op.acked = op.err == nil
    end
  end
  return open
end

-- Arms a killer of its own that sends SIGKILL after `delay` s: the load goes on meanwhile, so
-- that the kill lands anywhere in the server's work, not at a pause of this loop.
local function arm_kill(pid, delay)
  os.execute(("unset LD_PRELOAD; sh -c 'sleep %.3f; kill -9 %d' >/dev/null 2>&1 &"):format(delay, pid))
end

-- Runs the load until the server is killed, taking every answer that got out before it.
local function drive(s, r, ops)
  local clients = {}
  for n = 1, O.clients do clients[n] = { n = n, c = s:connect(), k = 0, inflight = {}, n_inflight = 0 } end
  local delay = (O.kill_min + math.random() * (O.kill_max - O.kill_min)) / 1000
  if O.inject == "lose" then delay = 0.5 end -- enough to cut off
  local kill_at = socket.gettime() + delay
  arm_kill(s.pid, delay)
  local open = #clients
  while open > 0 and socket.gettime() < kill_at + 10 do
    local socks = {}
    for _, cl in ipairs(clients) do
      while cl.open ~= false and cl.n_inflight < O.depth do
        local op = next_op(cl, r)
        local id = send(cl.c, op)
        if not id then break end -- the server is gone: its answers are still to be read
        ops[#ops + 1] = op
        cl.inflight[id], cl.n_inflight = op, cl.n_inflight + 1
      end
      if cl.open ~= false then socks[#socks + 1] = cl.c.sock end
    end
    socket.select(socks, nil, 0.01)
    for _, cl in ipairs(clients) do
      if cl.open ~= false and not collect(cl) then
        cl.open, open = false, open - 1
        cl.c:close()
        if socket.gettime() < kill_at - 0.005 then
          fail("wrong", "round %d: the server closed a connection %.0f ms before it was killed", r,
            (kill_at - socket.gettime()) * 1000)
        end
      end
    end
  end
  if open > 0 then fail("wrong", "round %d: the server still answered 10 s after kill -9", r) end
  while socket.gettime() < kill_at + 0.05 do socket.sleep(0.01) end -- the killer is done
  s.client:close()
  s.client = nil
  s.proc:close() -- reaps it
  s.proc = nil
end

-- ---- after the kill -------------------------------------------------------------------

local function last_segment(data)
  local name = server.sh("ls " .. server.quote(data .. "/log") .. " | grep '\\.seg$' | sort | tail -1")
  return data .. "/log/" .. name:gsub("%s+$", "")
end

-- --inject lose: zero the log from the last batch acknowledged to a client on (the layout
-- is docs/log.md's: a 64-byte segment header, then records with their length at offset 0
-- and their position at 24), so that the next open ends the log before it.
local function inject_loss(data, ops)
  local last = 0
  for _, op in ipairs(ops) do
    if op.acked and op.kind == "append" then last = math.max(last, op.answer.position) end
  end
  local path = last_segment(data)
  local f = assert(io.open(path, "r+b"))
  local bytes = f:read("a")
  local o = 64
  while o + 32 <= #bytes do
    local len, pos = string.unpack("<I4", bytes, o + 1), string.unpack("<I8", bytes, o + 25)
    if len == 0 or pos == last then break end
    o = o + len
  end
  f:seek("set", o)
  f:write(string.rep("\0", #bytes - o))
  f:close()
end

-- `moonlog check` on the killed server's folder: it must pass; a torn tail is counted.
local function check(data)
  local out = server.sh(("%s check --data %s 2>&1; echo \"exit=$?\""):format(
    server.quote(os.getenv("MOONLOG_BIN")), server.quote(data)))
  local ok = out:match("exit=(%d+)%s*$") == "0"
  T.checks = T.checks + 1
  if out:find("^torn tail: ") then T.torn_tails = T.torn_tails + 1 end
  if not ok then fail("wrong", "moonlog check after the kill: %s", (out:gsub("\n", " "))) end
end

-- Sends again, with the same ids, every request whose answer went down with the server.
local function resend(c, ops)
  local sent = {}
  for _, op in ipairs(ops) do
    if not op.acked and not op.err then
      sent[#sent + 1] = { id = assert(send(c, op)), op = op }
    end
  end
  for _, x in ipairs(sent) do
    local op = x.op
    local res, err = c:wait(x.id, 60)
    op.resent = true
    if op.kind == "append" then
      T.resent_appends = T.resent_appends + 1
      if not res then fail("wrong", "append %s sent again after the kill: %s", op.events[1].id, err.message) end
      if res and res.duplicate then T.resent_stored = T.resent_stored + 1 end
    else
      T.resent_commands = T.resent_commands + 1
      if err and err.message == "order already placed" then
        T.resent_stored = T.resent_stored + 1
      elseif not res then
        fail("wrong", "Place %s sent again after the kill: %s", op.order, err.message)
      end
    end
  end
end

-- ---- reading the log back -------------------------------------------------------------

-- What the verified part of the log is, across rounds.
local L = { cursor = 0, cursor_id = nil, versions = {}, added = { n = 0, sum = 0 },
            saga = { placed = 0, confirmed = 0, cancelled = 0 } }

-- The events of an order's story: the decider's OrderPlaced, then the handlers' steps.
local SAGA = { OrderPlaced = true, PaymentRequested = true, PaymentSettled = true, PaymentFailed = true,
               OrderConfirmed = true, OrderCancelled = true, ShipmentRequested = true }

-- The round an id, or an order's stream, belongs to.
local function round_of_id(id) return tonumber(id:match("^r(%d+)%.c%d+%.k%d+%.%d+$")) end
local function order_of_stream(stream) return stream:match("^%a+%-(r%d+c%d+k%d+)$") end

-- Takes one event read at the next position into the round's model `m`.
local function take(e, r, m)
  if e.position ~= L.cursor + 1 then
    fail("lost", "position %d follows %d in $all", e.position, L.cursor)
  end
  L.cursor, L.cursor_id = e.position, e.id
  local v = L.versions[e.stream] or 0
  if e.version ~= v + 1 then fail("wrong", "%s@%d follows version %d", e.stream, e.version, v) end
  L.versions[e.stream] = e.version
  local q = round_of_id(e.id)
  if q then
    if q < r then return fail("doubled", "%s (of round %d) again at %d", e.id, q, e.position) end
    m.seen[e.id] = (m.seen[e.id] or 0) + 1
    m.at[e.id] = e.position
    if e.type == "Ping" then m.pings[e.id] = m.pings[e.id] or 0 end
    if e.type == "Added" and e.stream:match("^item%-") then
      L.added.n, L.added.sum = L.added.n + 1, L.added.sum + e.data.v
    end
  elseif e.type == "Pong" then
    local ping = e.meta and e.meta.causation_id
    if ping ~= e.data.ping then fail("wrong", "the Pong at %d has causation_id %s", e.position, tostring(ping)) end
    local pq = round_of_id(e.data.ping)
    if pq < r then return fail("handler_doubled", "a Pong for %s (round %d) at %d", e.data.ping, pq, e.position) end
    m.pongs[e.data.ping] = (m.pongs[e.data.ping] or 0) + 1
  elseif SAGA[e.type] then
    local order = order_of_stream(e.stream)
    local oq = tonumber(order:match("^r(%d+)"))
    if oq < r then
      return fail(e.type == "OrderPlaced" and "doubled" or "handler_doubled", "%s of order %s (round %d) at %d",
        e.type, order, oq, e.position)
    end
    local steps = m.orders[order] or {}
    m.orders[order] = steps
    steps[e.type] = (steps[e.type] or 0) + 1
    if e.type == "OrderPlaced" then
      m.placed_at[order], L.saga.placed = e.position, L.saga.placed + 1
    elseif e.type == "OrderConfirmed" then
      L.saga.confirmed = L.saga.confirmed + 1
    elseif e.type == "OrderCancelled" then
      L.saga.cancelled = L.saga.cancelled + 1
    end
  elseif e.stream:match("^%$parked") then
    fail("wrong", "an event parked at %d: %s", e.position, tostring(e.meta and e.meta.reason))
  end
end

-- Reads $all from the cursor to the head into the model.
local function read_new(c, r, m)
  while true do
    local page = assert(c:read("$all", L.cursor + 1))
    for _, e in ipairs(page) do take(e, r, m) end
    if #page == 0 then return end
  end
end

-- Is every handler output of the round there (a Pong per Ping, each order's saga done)?
local function settled(m)
  for ping in pairs(m.pings) do
    if not m.pongs[ping] then return false end
  end
  for _, st in pairs(m.orders) do
    local done = (st.OrderConfirmed and st.ShipmentRequested) or st.OrderCancelled
    if not (st.PaymentRequested and (st.PaymentSettled or st.PaymentFailed) and done) then return false end
  end
  return true
end

local function projections_agree(c)
  local t = c:call("query", "count", "totals")
  local o = c:call("query", "order_status", "counts")
  return t and o and t.n == L.added.n and t.sum == L.added.sum and o.placed == L.saga.placed
    and o.confirmed == L.saga.confirmed and o.cancelled == L.saga.cancelled
end

-- Reads the log until the handlers and projections have caught up (or `O.wait` s passed).
local function settle(c, r)
  local m = { seen = {}, at = {}, pings = {}, pongs = {}, orders = {}, placed_at = {} }
  local deadline = socket.gettime() + O.wait
  repeat
    read_new(c, r, m)
    if settled(m) and projections_agree(c) then return m, true end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return m, false
end

-- ---- the verdict on one round -----------------------------------------------------------

local function verify_ops(ops, m)
  local last_at = {}
  for _, op in ipairs(ops) do
    if op.err then
      fail("wrong", "a request answered with an error before the kill: %s", op.err.message)
    elseif op.kind == "append" then
      for i, ev in ipairs(op.events) do
        local n = m.seen[ev.id] or 0
        if n == 0 and (op.acked or op.resent) then
          fail("lost", "%s (%s)", ev.id, op.acked and "acknowledged at " .. op.answer.position or "sent again")
        elseif n > 1 then
          fail("doubled", "%s %d times", ev.id, n)
        elseif op.acked and m.at[ev.id] ~= op.answer.position + i - 1 then
          fail("reordered", "%s at %s, acknowledged at %d", ev.id, tostring(m.at[ev.id]), op.answer.position + i - 1)
        end
      end
      if op.acked then
        T.acked_appends, T.acked_events = T.acked_appends + 1, T.acked_events + #op.events
        local prev = last_at[op.client]
        if prev and op.answer.position <= prev then
          fail("reordered", "client %d: append %d stored at %d, before an earlier one at %d", op.client.n,
            op.seq, op.answer.position, prev)
        end
        last_at[op.client] = op.answer.position
        if op.answer.duplicate then fail("wrong", "%s answered as a duplicate", op.events[1].id) end
      end
    else -- a Place command
      local placed = m.orders[op.order] and m.orders[op.order].OrderPlaced or 0
      if placed == 0 and (op.acked or op.resent) then
        fail("lost", "order %s (%s)", op.order, op.acked and "acknowledged" or "sent again")
      elseif placed > 1 then
        fail("doubled", "order %s placed %d times", op.order, placed)
      elseif op.acked and m.placed_at[op.order] ~= op.answer.position then
        fail("reordered", "order %s placed at %s, acknowledged at %d", op.order,
          tostring(m.placed_at[op.order]), op.answer.position)
      end
      if op.acked then T.acked_commands, T.acked_events = T.acked_commands + 1, T.acked_events + 1 end
    end
  end
end

-- Each input of a handler has exactly one output: a Pong per Ping, one of each saga step.
local function verify_handlers(m)
  for ping in pairs(m.pings) do
    local n = m.pongs[ping] or 0
    T.pings, T.pongs = T.pings + 1, T.pongs + (n == 1 and 1 or 0)
    if n == 0 then fail("handler_missing", "no Pong for %s", ping) end
    if n > 1 then fail("handler_doubled", "%d Pongs for %s", n, ping) end
  end
  for ping in pairs(m.pongs) do
    if not m.pings[ping] then fail("wrong", "a Pong for %s, which is not in the log", ping) end
  end
  for order, st in pairs(m.orders) do
    T.orders = T.orders + 1
    local settled_ = (st.PaymentSettled or 0) > 0
    local want = { OrderPlaced = 1, PaymentRequested = 1, PaymentSettled = settled_ and 1 or 0,
                   PaymentFailed = settled_ and 0 or 1, OrderConfirmed = settled_ and 1 or 0,
                   ShipmentRequested = settled_ and 1 or 0, OrderCancelled = settled_ and 0 or 1 }
    for step, n in pairs(want) do
      local got = st[step] or 0
      if got < n then fail("handler_missing", "order %s: no %s", order, step) end
      if got > n then fail("handler_doubled", "order %s: %d %s", order, got, step) end
      T.saga_steps = T.saga_steps + math.min(got, n)
    end
  end
end

-- Round-scoped streams leave the version table once their round is verified.
local function forget_round_streams()
  for stream in pairs(L.versions) do
    if order_of_stream(stream) then L.versions[stream] = nil end
  end
end

-- ---- the run ------------------------------------------------------------------------------

local function still_there(c)
  if L.cursor == 0 then return end
  local e = (c:read("$all", L.cursor, 1) or {})[1]
  if not e or e.id ~= L.cursor_id then
    fail("lost", "position %d, verified before, now holds %s", L.cursor, e and e.id or "nothing")
  end
end

-- Seconds spent in each phase of the rounds, for the report.
local phase = { load = 0, check = 0, restart = 0, verify = 0 }
local phase_t = socket.gettime()
local function lap(name)
  local now = socket.gettime()
  phase[name], phase_t = phase[name] + now - phase_t, now
end

local function round(s, r)
  local ops = {}
  phase_t = socket.gettime()
  drive(s, r, ops)
  lap("load")
  if O.inject == "lose" then inject_loss(s.data, ops) end
  check(s.data)
  lap("check")
  local started, why = pcall(s.launch, s)
  lap("restart")
  if not started then
    fail("wrong", "round %d: %s", r, (tostring(why):gsub("\n.*", "")))
    return false
  end
  local c = s.client
  still_there(c)
  resend(c, ops)
  if O.inject == "double" then
    for _, op in ipairs(ops) do
      if op.acked and op.kind == "append" and op.events[1].type == "Moved" then
        assert(c:append("dup-" .. r, op.events))
        break
      end
    end
  end
  local m, caught_up = settle(c, r)
  if not caught_up then
    fail("wrong", "round %d: the handlers or projections did not catch up in %d s", r, O.wait)
  end
  T.projection_checks = T.projection_checks + (caught_up and 1 or 0)
  verify_ops(ops, m)
  verify_handlers(m)
  forget_round_streams()
  lap("verify")
  return true
end

local function report(rounds, seconds, data)
  local bad = T.lost + T.doubled + T.reordered + T.handler_missing + T.handler_doubled + T.wrong
  print(("soak: %d rounds of kill -9 in %.0f s (seed %d, %d clients, depth %d, kill after %d-%d ms)"):format(
    rounds, seconds, O.seed, O.clients, O.depth, O.kill_min, O.kill_max))
  print(("  acknowledged: %d events (%d appends, %d Place commands)"):format(T.acked_events, T.acked_appends,
    T.acked_commands))
  print(("  answers lost with the kill, sent again: %d appends, %d commands (%d of them stored before the kill)")
    :format(T.resent_appends, T.resent_commands, T.resent_stored))
  print(("  lost: %d   doubled: %d   reordered: %d"):format(T.lost, T.doubled, T.reordered))
  print(("  handlers, exactly once: %d of %d Pings answered by one Pong; %d orders, %d saga steps; missing %d, doubled %d")
    :format(T.pongs, T.pings, T.orders, T.saga_steps, T.handler_missing, T.handler_doubled))
  print(("  projections equal to the log: %d of %d rounds; moonlog check after the kill: %d runs, %d torn tails"):format(
    T.projection_checks, rounds, T.checks, T.torn_tails))
  print(("  time: load until the kill %.0f s, moonlog check %.0f s, restart %.0f s, resend and verify %.0f s")
    :format(phase.load, phase.check, phase.restart, phase.verify))
  print(("  log: %d events; other failures: %d%s"):format(L.cursor, T.wrong, bad > 0 and ("; data kept in " .. data) or ""))
  for _, f in ipairs(failures) do print("  " .. f) end
  print(bad == 0 and "soak: ok" or "soak: FAILED")
  return bad == 0
end

local function main()
  parse_args()
  math.randomseed(O.seed)
  local root = server.tmpdir()
  local scripts = scripts_folder(root)
  local t0 = socket.gettime()
  local s = server.start { data = root .. "/data", start_timeout = 120, args = { "--scripts", scripts,
    "--http", "off", "--checkpoint-events", "50", "--snapshot-events", "500", "--snapshot-ms", "200" } }
  local rounds, stopped_short = 0, false
  for r = 1, O.rounds do
    rounds = r
    if not round(s, r) then
      stopped_short = true
      break
    end
    if r % 50 == 0 then
      io.stderr:write(("soak: round %d, %d events acknowledged, %d failures\n"):format(r, T.acked_events,
        T.lost + T.doubled + T.reordered + T.handler_missing + T.handler_doubled + T.wrong))
    end
  end
  if stopped_short then
    s:stop("KILL") -- the server that did not answer
  else
    -- A last clean stop and start: nothing of any verified round may appear after it.
    if not s:stop() then fail("wrong", "the server did not stop cleanly at the end") end
    s:launch()
    local m, caught_up = settle(s.client, O.rounds + 1)
    if not caught_up then fail("wrong", "after the last restart the projections disagree with the log") end
    verify_handlers(m)
    s:stop()
  end
  local good = report(rounds, socket.gettime() - t0, root .. " (server log: " .. s.log .. ")")
  if (good or O.inject) and not O.keep then
    os.execute("rm -rf " .. server.quote(root) .. " " .. server.quote(s.root))
  end
  os.exit(good and 0 or 1)
end

main()
