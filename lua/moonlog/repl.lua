-- moonlog.repl: what a REPL evaluates in, and how it shows results.
--
-- The same code runs wherever chunks are evaluated: inside the server (for
-- `moonlog repl` on its admin socket) or in the REPL's own process (with
-- `--data DIR` and no server). A *backend* gives it the log (the Lua log API of
-- docs/lua-api.md: moonlog.core's log.open in the REPL's process, the same
-- functions bound to the server's operations in a server) and, where scripts
-- run, the scripts; this module turns that into the globals of DESIGN.md (log,
-- streams, scripts, at, stats, help) and evaluates chunks the way lua.c does:
-- `return <line>` first, then the line as a statement.
--
--   local env = repl.env { log = core.log.open { dir = "data" }, scripts = registry }
--   local ok, text = repl.eval(env, "log.read('account-1')")

local pretty = require "moonlog.pretty"

local repl = {}

local fmt <const> = string.format
local MAX_ITEMS <const> = 50   -- entries of one table shown before "… N more"
local MAX_DEPTH <const> = 6

---------------------------------------------------------------------------
-- Showing values
---------------------------------------------------------------------------

local function is_event(v)
  return type(v) == "table" and type(v.type) == "string" and type(v.stream) == "string"
    and math.type(v.position) == "integer"
end

-- One event on one line: #position stream@version Type {data}
function repl.event_line(e)
  local meta = ""
  if type(e.meta) == "table" and next(e.meta) ~= nil then meta = "  meta=" .. pretty.format(e.meta) end
  return fmt("#%d %s@%s %s %s%s", e.position, e.stream, tostring(e.version), e.type,
    e.data == nil and "-" or pretty.format(e.data), meta)
end

local function is_list(t)
  local n = #t
  if n == 0 then return false end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

local function key_text(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
  return "[" .. pretty.format(k) .. "]"
end

local show

-- A table, nested and indented, keys sorted, cut after MAX_ITEMS entries.
local function show_table(t, indent, seen, out, depth)
  if seen[t] then out[#out + 1] = "<cycle>"; return end
  local mt = getmetatable(t)
  if mt and mt.__tostring then out[#out + 1] = tostring(t); return end
  if next(t) == nil then out[#out + 1] = "{}"; return end
  if depth > MAX_DEPTH then out[#out + 1] = "{…}"; return end
  local inline = pretty.format(t)
  if #inline + #indent <= 78 and not inline:find("<cycle>", 1, true) then
    out[#out + 1] = inline; return
  end
  seen[t] = true
  local list, inner = is_list(t), indent .. "  "
  local keys = list and nil or pretty.sorted_keys(t)
  local n = list and #t or #keys
  out[#out + 1] = "{\n"
  for i = 1, math.min(n, MAX_ITEMS) do
    local k = list and i or keys[i]
    out[#out + 1] = inner
    if not list then out[#out + 1] = key_text(k) .. " = " end
    show(t[k], inner, seen, out, depth + 1)
    out[#out + 1] = ",\n"
  end
  if n > MAX_ITEMS then out[#out + 1] = fmt("%s… %d more\n", inner, n - MAX_ITEMS) end
  out[#out + 1] = indent .. "}"
  seen[t] = nil
end

show = function(v, indent, seen, out, depth)
  if is_event(v) then
    out[#out + 1] = repl.event_line(v)
  elseif type(v) == "table" and is_list(v) and is_event(v[1]) then
    for i = 1, math.min(#v, MAX_ITEMS * 20) do
      out[#out + 1] = (i > 1 and "\n" .. indent or "") .. repl.event_line(v[i])
    end
    if #v > MAX_ITEMS * 20 then out[#out + 1] = fmt("\n%s… %d more events", indent, #v - MAX_ITEMS * 20) end
  elseif type(v) == "table" then
    show_table(v, indent, seen, out, depth)
  elseif type(v) == "string" then
    out[#out + 1] = fmt("%q", v):gsub("\\\n", "\\n")
  else
    out[#out + 1] = tostring(v)
  end
end

-- The text of one or more values, as the REPL prints them (tab-separated).
function repl.show(...)
  local parts = {}
  for i = 1, select("#", ...) do
    local out = {}
    show((select(i, ...)), "", {}, out, 1)
    parts[#parts + 1] = table.concat(out)
  end
  return table.concat(parts, "\t")
end

---------------------------------------------------------------------------
-- The environment
---------------------------------------------------------------------------

local HELP <const> = {
  [""] = [==[
moonlog REPL. Type Lua; an expression alone prints its value.
  log.append(stream, event | {events...} [, expected])   append, e.g.
      log.append("account-1", {type = "Opened", data = {owner = "ada"}}, "no_stream")
  log.read(stream | "$all" [, {from=, limit=, backwards=}])   read events
  log.tail([pattern [, from]])   follow new events (Ctrl-C stops)
  log.delete(stream [, {hard=, expected=}])   delete a stream (hard: for good)
  log.set_metadata(stream, {max_age=, max_count=, truncate_before=})   retention
  log.metadata(stream)           a stream's retention and deletion
  log.head()                     the last position
  streams([pattern])             streams and their versions
  streams.count([pattern]), streams.version(stream)
  scripts()                      the loaded scripts and their state; scripts.reload(name)
  parked(name), replay_parked(name)   a handler's parked events, and their repair
  NAME:query(q, ...), NAME:get(stream), NAME:state(), NAME:command(cmd, args)
                                 a loaded script, by its name
  at(position, NAME)             a script's state as of an earlier position (NAME:at(p));
      at(position, NAME, {history = true}) with the code that was live then
  history(NAME)                  the versions of a script that went live ($code-NAME)
  NAME:dry_run(path)             what a new version in path would change, not swapped in
  stats()                        the log's and the server's figures
  help(name)                     more on one of these]==],
  log = "log.append(stream, event or {events...}, expected) appends; an event is {type =, data =,\nmeta =, id =}; expected is any, no_stream, exists or a version. A refused append\nreturns nil, the message and the code. log.read(stream, {from, limit, backwards})\nreturns events (100 unless limit says); log.read('$all', {from, limit}) the whole log.\nlog.version(stream), log.head(), log.stats(). log.tail(pattern, from) follows new events.\nlog.delete(stream, {hard =, expected =}) deletes a stream (a $deleted event; hard: the name\nis never written again); log.set_metadata(stream, {max_age = seconds, max_count =,\ntruncate_before =}) sets its retention; log.metadata(stream) reads it. Reads leave out what\nthey remove (docs/log.md).",
  streams = "streams(pattern) lists streams matching pattern ('account-*', a category, '*')\nwith their versions; streams.count(pattern); streams.version(stream).",
  scripts = "scripts() lists the loaded scripts: kind, position, lag, state, errors;\non a shared log (--replicate) a handler's lease: running here, or standby\nbehind its holder (a node id).\nscripts.reload(name) reloads one from its file (no name: the whole folder);\nscripts.errors() the scripts that failed to load or faulted.\nparked(name) lists a handler's parked events; replay_parked(name) handles them\nagain with the current code.",
  at = "at(position, name), or NAME:at(position), replays the log up to position into a\nscratch copy of the projection or reducer and returns its state then; the live\nscript is untouched. It folds with today's code; at(position, name, {history = true})\nfolds with the version that was live at position, from the script's code history.",
  history = "history(name) lists the versions of a script that went live, oldest first, from\nits code history (the stream $code-NAME): {version, position (live after it), time,\nhash, file, reason, text}.",
  dry_run = "NAME:dry_run(path [, {events =, examples =}]) builds the new version in path\n(a file the server reads, outside the scripts folder) beside the live NAME, runs it\nover the log and returns, once done, what would change: a projection's or reducer's\nkeys added, removed and changed (old -> new), a handler's emits added, dropped and\nchanged over the last events, and every fault with its event and line. Nothing is\nswapped in or written; NAME:dry_run(path, {apply = true}) swaps in what was previewed.",
  stats = "stats() returns the log's figures (head, streams, segments, bytes, appends, syncs)\nand, in a server, the server's (connections, requests, errors, ...), as GET /stats.",
}

local function help(name)
  if type(name) == "table" then
    for k, v in pairs(repl.last_env or {}) do if v == name then name = k break end end
  end
  local text = HELP[name or ""]
  if not text then return "no help for " .. tostring(name) .. "; try help()" end
  return setmetatable({}, { __tostring = function() return text end, __name = "help" })
end

-- Same rules as lua/moonlog/filter.lua: '*' every stream but '$…', 'prefix-*',
-- a name without '-' is a category, a name with '-' is exact.
local function matcher(pattern)
  if pattern == nil or pattern == "*" then return function(s) return s:sub(1, 1) ~= "$" end end
  if pattern == "$all" then return function() return true end end
  local prefix = pattern:match("^(.*)%*$")
  if prefix then return function(s) return s:sub(1, #prefix) == prefix end end
  if not pattern:find("-", 1, true) then
    return function(s) return s == pattern or s:sub(1, #pattern + 1) == pattern .. "-" end
  end
  return function(s) return s == pattern end
end

-- The session's `log`: the Lua log's functions, and tail (the REPL front end follows).
local function make_log(log)
  local t = {}
  for _, k in ipairs { "append", "read", "head", "version", "streams", "stats", "delete", "set_metadata",
                       "metadata" } do t[k] = log[k] end
  t.tail = function(pattern, from)
    -- The caller (the REPL front end) follows the log; evaluation only says so.
    return setmetatable({ pattern = pattern or "*", from = from or log.head() + 1 }, {
      __name = "tail", __tostring = function(t) return "tail " .. t.pattern end })
  end
  return t
end

local function make_streams(log)
  local function list(pattern)
    local m, out = matcher(pattern), {}
    for name, version in pairs(log.streams()) do
      if m(name) then out[name] = version end
    end
    return out
  end
  return setmetatable({
    count = function(pattern) local n = 0; for _ in pairs(list(pattern)) do n = n + 1 end; return n end,
    version = log.version,
    list = list,
  }, { __call = function(_, pattern) return list(pattern) end })
end

local function no_scripts() error("no scripts are loaded here (start the server with --scripts DIR)", 3) end

local function make_scripts(backend)
  local S = backend.scripts
  local function call(fn, ...)
    if not (S and S[fn]) then no_scripts() end
    return S[fn](...)
  end
  return setmetatable({
    reload = function(name) return call("reload", name) end,          -- no name: the whole folder
    parked = function(name) return call("parked", name) end,
    replay_parked = function(name) return call("replay_parked", name) end,
    -- the scripts that failed to load or faulted, with their errors
    errors = function()
      local out = {}
      for _, s in ipairs(S and S.list() or {}) do
        if s.error then out[#out + 1] = { name = s.name, error = s.error, position = s.error_position } end
        if s.reload_error then out[#out + 1] = { name = s.name, reload_error = s.reload_error } end
      end
      return out
    end,
  }, { __call = function() return S and S.list() or {} end })
end

-- The globals of a REPL session. backend = { log = <a Lua log: append, read, head,
-- version, streams, stats>, scripts = <list(), get(name) -> object with
-- query/get/state/command/at methods or nil, at(position, name), reload(name)> | nil }.
function repl.env(backend)
  local log = backend.log
  local env = {}
  for _, k in ipairs { "assert", "error", "ipairs", "next", "pairs", "pcall", "print", "rawequal",
                       "rawget", "rawlen", "rawset", "select", "setmetatable", "getmetatable",
                       "tonumber", "tostring", "type", "xpcall", "_VERSION" } do
    env[k] = _G[k]
  end
  env.string, env.table, env.math, env.utf8 = string, table, math, utf8
  env.os = os and { time = os.time, clock = os.clock, date = os.date } or nil
  env.load = function(chunk, name, mode, e)   -- text only, into this environment by default
    if type(chunk) ~= "string" then error("load: only a string chunk", 2) end
    return load(chunk, name, "t", e or env)
  end
  env.log = make_log(log)
  env.streams = make_streams(log)
  env.scripts = make_scripts(backend)
  env.stats = log.stats
  env.at = function(position, name, options)
    if not (backend.scripts and backend.scripts.at) then no_scripts() end
    return backend.scripts.at(position, name, options)
  end
  env.history = function(name) return repl.history(log, name) end
  env.parked = env.scripts.parked
  env.replay_parked = env.scripts.replay_parked
  env.help = help
  env.show = repl.show
  env._G = env
  if backend.scripts then -- each loaded script is a global named after it
    setmetatable(env, { __index = function(_, k)
      if type(k) == "string" then return backend.scripts.get(k) end
    end })
  end
  repl.last_env = env
  return env
end

---------------------------------------------------------------------------
-- Scripts loaded in the REPL's own process (`moonlog repl --data DIR
-- --scripts DIR` with no server): projections and reducers are fed from the
-- log on demand; handlers and deciders are listed but not run (their effects,
-- appends, belong to a server).
---------------------------------------------------------------------------

-- core: require("moonlog.core"); log: a Lua log (core.log.open); paths: the script files.
-- The versions of script `name` that went live, from its code history ($code-NAME).
function repl.history(log, name)
  if type(name) ~= "string" then error("history(name): name the script, e.g. history(\"balances\")", 2) end
  local out, from = {}, 1
  while true do
    local evs = assert(log.read("$code-" .. name, { from = from, limit = 1000 }))
    for _, e in ipairs(evs) do
      local d = e.data or {}
      out[#out + 1] = { version = e.version, position = d.position, time = e.time, hash = d.hash,
                        file = d.file, kind = d.kind, reason = d.reason, text = d.text,
                        upcasters = d.upcasters }
    end
    if #evs < 1000 then break end
    from = evs[#evs].version + 1
  end
  return out
end

-- The version of `name` live at `position` (the last that took over before it), or raises.
function repl.version_at(log, name, position)
  local found, first
  for _, v in ipairs(repl.history(log, name)) do
    first = first or v.position
    if v.position < position or (position == 0 and v.position == 0) then found = v end
  end
  if found then return found end
  if not first then
    error(("%s has no code history ($code-%s is empty: it starts at the script's first reload): "
      .. "at(position, %q) without {history = true} folds with the current code"):format(name, name, name), 3)
  end
  error(("no version of %s was live at position %d: its code history starts after position %d")
    :format(name, position, first), 3)
end

-- The text of the upcasters.lua beside a script (the server gives it to every script of
-- the folder), or nil.
local function folder_upcasters(path)
  local f = io.open((path:match("^(.*)/[^/]*$") or ".") .. "/upcasters.lua", "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

function repl.local_scripts(core, log, paths)
  local loaded, order, failed = {}, {}, {}
  for _, path in ipairs(paths) do
    local ok, s = pcall(core.script.load, path, { upcasters = folder_upcasters(path) })
    if ok then
      local name = s:info().name
      loaded[name] = { script = s, path = path }
      order[#order + 1] = name
    else
      failed[#failed + 1] = { name = path:match("([^/]+)$"), file = path, state = "faulted", error = s }
    end
  end
  local fed = { projection = true, reducer = true }

  -- Feeds a script the events after its position, up to the head.
  local function catch_up(s, until_position)
    local info = s:info()
    if not fed[info.kind] then return end
    local from = info.position + 1
    while until_position == nil or from <= until_position do
      local limit = until_position and math.min(10000, until_position - from + 1) or 10000
      local evs = assert(log.read("$all", { from = from, limit = limit }))
      if #evs == 0 then break end
      for _, e in ipairs(evs) do
        local ok, err = s:feed(e)
        if not ok then error(err, 0) end
      end
      from = evs[#evs].position + 1
    end
  end

  local methods = {}
  methods.__index = methods
  function methods:query(q, ...) catch_up(self.script); return self.script:query(q, ...) end
  function methods:get(key) catch_up(self.script); return self.script:get(key) end
  function methods:state(key)
    catch_up(self.script)
    if key ~= nil then return self.script:get(key) end
    return self.script:state()
  end
  function methods:position() catch_up(self.script); return self.script:info().position end
  function methods:command()
    error("commands run in a server (moonlog serve --scripts DIR); this REPL opened the log itself", 2)
  end
  function methods:dry_run()
    error("dry runs run in a server (moonlog serve --scripts DIR); this REPL opened the log itself", 2)
  end
  function methods:at(position, options) return repl.last_scripts.at(position, self.name, options) end
  methods.__tostring = function(o) return "script " .. o.name end

  local api = {}
  function api.get(name)
    local e = loaded[name]
    return e and setmetatable({ name = name, script = e.script }, methods) or nil
  end
  function api.list()
    local out = {}
    for _, name in ipairs(order) do
      local s = loaded[name].script
      pcall(catch_up, s)
      local info = s:info()
      out[#out + 1] = { name = name, kind = info.kind, hash = info.hash, position = info.position,
                        file = loaded[name].path:match("([^/]+)$"),
                        state = info.fault and "faulted" or (fed[info.kind] and "running" or "not run here"),
                        error = info.fault, memory = info.memory }
    end
    for _, f in ipairs(failed) do out[#out + 1] = f end
    return out
  end
  function api.at(position, name, options)
    local e = loaded[name]
    if not e then error("no script named " .. tostring(name) .. " is loaded", 2) end
    local scratch
    if type(options) == "table" and options.history then
      local v = repl.version_at(log, name, position)
      scratch = core.script.load(e.path, { source = v.text, upcasters = v.upcasters })
    else
      scratch = core.script.load(e.path, { upcasters = folder_upcasters(e.path) })
    end
    if not fed[scratch:info().kind] then error("at() replays projections and reducers", 2) end
    catch_up(scratch, position)
    local state = scratch:state()
    scratch:close()
    return state
  end
  repl.last_scripts = api
  return api
end

---------------------------------------------------------------------------
-- Evaluating
---------------------------------------------------------------------------

-- Compiles a chunk as lua.c does: `return <chunk>` first (an expression
-- prints its value), then the chunk as statements. Text only, never binary.
-- Returns the function, or nil and the message; incomplete is true when the
-- chunk only lacks its end (the REPL then reads another line).
function repl.compile(env, chunk)
  local f, rerr = load("return " .. chunk, "=repl", "t", env)
  if f then return f end
  local g, err = load(chunk, "=repl", "t", env)
  if g then return g end
  if err:sub(-5) == "<eof>" then return nil, err, true end
  -- "1 +" is an expression that lacks its end, though as a statement it fails at once
  if rerr:sub(-5) == "<eof>" then return nil, rerr, true end
  return nil, err, false
end

local function traceback(msg)
  local tb = debug and debug.traceback and debug.traceback("", 3) or ""
  local lines, kept = {}, 0
  for line in tb:gmatch("[^\n]+") do
    if line:match("^%s*repl:") and kept < 5 then lines[#lines + 1] = line; kept = kept + 1 end
  end
  local m = type(msg) == "string" and msg or repl.show(msg)
  return #lines > 0 and (m .. "\n" .. table.concat(lines, "\n")) or m
end

-- Evaluates a chunk: ok, the text to show, and what to do next (nil, or a tail request).
-- print() inside the chunk is captured into the text.
function repl.eval(env, chunk)
  local f, err, incomplete = repl.compile(env, chunk)
  if not f then return false, err, incomplete and "incomplete" or nil end
  local printed = {}
  local saved = env.print
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    printed[#printed + 1] = table.concat(parts, "\t")
  end
  local res = table.pack(xpcall(f, traceback))
  env.print = saved
  local ok = res[1]
  local text = table.concat(printed, "\n")
  if not ok then
    return false, (text ~= "" and text .. "\n" or "") .. tostring(res[2])
  end
  local mt = res.n == 2 and getmetatable(res[2])
  if mt and mt.__name == "tail" then return true, text, res[2] end
  if res.n > 1 then
    local shown = repl.show(table.unpack(res, 2, res.n))
    text = text ~= "" and text .. "\n" .. shown or shown
  end
  return true, text
end

---------------------------------------------------------------------------
-- Completion
---------------------------------------------------------------------------

-- Candidates for the end of `line`: globals, fields after '.', methods after ':'.
function repl.complete(env, line)
  local path, sep, partial = line:match("([%a_][%w_%.:]*)([%.:])([%a_]*)$")
  local base, candidates = env, {}
  if path then
    for name in path:gmatch("[^%.:]+") do
      local ok, v = pcall(function() return base[name] end)
      if not ok or v == nil then return {} end
      base = v
    end
  else
    partial = line:match("([%a_][%w_]*)$") or ""
    sep = ""
  end
  local prefix = line:sub(1, #line - #partial)
  local seen = {}
  local function add(k, v)
    if sep == ":" and type(v) ~= "function" then return end -- after ':' only methods
    if type(k) == "string" and k:sub(1, #partial) == partial and not seen[k] then
      seen[k] = true
      candidates[#candidates + 1] = prefix .. k
    end
  end
  local function walk(t)
    if type(t) ~= "table" then return end
    for k, v in pairs(t) do add(k, v) end
    local mt = getmetatable(t)
    if mt and type(mt.__index) == "table" then walk(mt.__index) end
  end
  if type(base) == "table" then walk(base) end
  local mt = getmetatable(base)
  if mt and type(mt.__index) == "table" then walk(mt.__index) end
  if not path then -- the loaded scripts are globals too, each named after its script
    local ok, list = pcall(env.scripts)
    for _, st in ipairs(ok and type(list) == "table" and list or {}) do add(st.name) end
    for _, kw in ipairs { "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
                          "if", "in", "local", "nil", "not", "or", "repeat", "return", "then",
                          "true", "until", "while" } do add(kw) end
  end
  table.sort(candidates)
  return candidates
end

return repl
