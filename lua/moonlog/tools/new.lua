-- moonlog.tools.new: `moonlog new KIND NAME [--scripts DIR] [--spec DIR]` writes a script
-- of that kind and a busted spec for it, from templates that pass `moonlog test` as they
-- are, for the author to change into their own. It never overwrites a file.

local new = {}

local KINDS = { "projection", "reducer", "decider", "handler" }

-- The script and the spec of each kind; NAME, SCRIPTS (the script's path from the spec's
-- folder) are filled in.
local TEMPLATES = {}

TEMPLATES.projection = {
  script = [[
-- NAME: a projection, a read model built from the log. It folds the events it
-- subscribes to (from) into one state, and answers queries on it.
local ml = require "moonlog"

return ml.projection {
  name = "NAME",
  description = "what NAME tells: counts of what happened, per stream",
  from = "NAME-*",                 -- the streams it reads: a pattern, a category or a list
  init = function() return { total = 0, per_stream = {} } end,
  on = {
    Happened = function(s, e)
      s.total = s.total + 1
      s.per_stream[e.stream] = (s.per_stream[e.stream] or 0) + 1
    end,
  },
  queries = {
    total = function(s) return s.total end,
    of = function(s, stream) return s.per_stream[stream] or 0 end,
  },
}
]],
  spec = [[
-- NAME's spec: moonlog.testing folds plain tables, no server needed (moonlog test).
local t = require "moonlog.testing"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]+$") or "."
local NAME = dofile(here .. "/SCRIPTS")

describe("NAME", function()
  it("counts what happened, per stream", function()
    t.given(NAME, {})
      :after {
        t.stream("NAME-1", { t.event("Happened", {}), t.event("Happened", {}) }),
        t.stream("NAME-2", { t.event("Happened", {}) }),
      }
      :query("total"):equals(3)
      :query("of", "NAME-1"):equals(2)
  end)
end)
]],
}

TEMPLATES.reducer = {
  script = [[
-- NAME: a reducer, the state of each stream it reads, folded event by event.
local ml = require "moonlog"

return ml.reducer {
  name = "NAME",
  description = "the state of each NAME stream",
  from = "NAME-*",
  init = function() return { count = 0 } end,
  on = {
    Happened = function(s, e)
      s.count = s.count + 1
      s.last = e.data.what
    end,
  },
}
]],
  spec = [[
-- NAME's spec: moonlog.testing folds plain tables, no server needed (moonlog test).
local t = require "moonlog.testing"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]+$") or "."
local NAME = dofile(here .. "/SCRIPTS")

describe("NAME", function()
  it("folds each stream on its own", function()
    t.given(NAME, {})
      :after {
        t.stream("NAME-1", { t.event("Happened", { what = "a" }), t.event("Happened", { what = "b" }) }),
        t.stream("NAME-2", { t.event("Happened", { what = "c" }) }),
      }
      :state_of("NAME-1", { count = 2, last = "b" })
      :state_of("NAME-2", { count = 1, last = "c" })
  end)
end)
]],
}

TEMPLATES.decider = {
  script = [[
-- NAME: a decider, the write side. A command is decided against the state of its
-- stream (folded from the stream's events) and either emits events or is rejected.
local ml = require "moonlog"

return ml.decider {
  name = "NAME",
  description = "starts and finishes a NAME",
  from = "NAME-*",
  stream = function(cmd) return "NAME-" .. tostring(cmd.id) end,
  init = function() return { started = false, finished = false } end,
  on = {
    Started = function(s) s.started = true end,
    Finished = function(s) s.finished = true end,
  },
  decide = {
    Start = function(s, cmd)
      if s.started then return ml.reject("already started") end
      return { ml.event("Started", { by = cmd.by }) }
    end,
    Finish = function(s)
      if not s.started then return ml.reject("not started") end
      if s.finished then return ml.reject("already finished") end
      return { ml.event("Finished", {}) }
    end,
  },
}
]],
  spec = [[
-- NAME's spec: moonlog.testing folds plain tables, no server needed (moonlog test).
local t = require "moonlog.testing"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]+$") or "."
local NAME = dofile(here .. "/SCRIPTS")

describe("NAME", function()
  it("starts once", function()
    t.given(NAME, {}):when("Start", { id = 1, by = "ada" })
      :emits { t.event("Started", { by = "ada" }) }
    t.given(NAME, { t.event("Started", { by = "ada" }) }):when("Start", { id = 1 })
      :rejects("already started")
  end)

  it("finishes what was started", function()
    t.given(NAME, {}):when("Finish", { id = 1 }):rejects("not started")
    t.given(NAME, { t.event("Started", {}) }):when("Finish", { id = 1 })
      :emits { t.event("Finished", {}) }
  end)
end)
]],
}

TEMPLATES.handler = {
  script = [[
-- NAME: a handler, a reaction: for each event it handles it may emit events to
-- other streams. In a server its emits and its checkpoint are stored together,
-- so each event's reaction is stored exactly once.
local ml = require "moonlog"

return ml.handler {
  name = "NAME",
  description = "answers each Requested with a Done",
  from = "NAME-*",
  on_error = "park",              -- an event it fails on is parked, to replay after a fix
  on = {
    Requested = function(e, ctx)
      ctx.emit("NAME-done-" .. e.data.id, "Done", { id = e.data.id })
    end,
  },
}
]],
  spec = [[
-- NAME's spec: moonlog.testing folds plain tables, no server needed (moonlog test).
local t = require "moonlog.testing"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]+$") or "."
local NAME = dofile(here .. "/SCRIPTS")

describe("NAME", function()
  it("answers each request", function()
    t.given(NAME, {})
      :after { t.stream("NAME-1", { t.event("Requested", { id = 7 }) }) }
      :emitted { { stream = "NAME-done-7", type = "Done", data = { id = 7 } } }
  end)
end)
]],
}

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

-- The path of `to` relative to the folder `from` (both relative to the same place, or
-- both absolute).
local function relative(from, to)
  local a, b = {}, {}
  for p in from:gmatch("[^/]+") do if p ~= "." then a[#a + 1] = p end end
  for p in to:gmatch("[^/]+") do if p ~= "." then b[#b + 1] = p end end
  local i = 1
  while a[i] and b[i] and a[i] == b[i] do i = i + 1 end
  local out = {}
  for _ = i, #a do out[#out + 1] = ".." end
  for j = i, #b do out[#out + 1] = b[j] end
  return table.concat(out, "/")
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local HELP = [[
usage: moonlog new projection|reducer|decider|handler NAME [--scripts DIR] [--spec DIR]

Writes DIR/NAME.lua (--scripts, default ./scripts) and NAME_spec.lua (--spec, default
./spec): a working script of that kind and its spec, which `moonlog test` passes as they
are. Change them into your own. Existing files are never overwritten.
]]

function new.main(args)
  local pos, scripts, spec = {}, "scripts", "spec"
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then io.write(HELP) return 0 end
    if a == "--scripts" or a == "--spec" then
      if not args[i + 1] then io.stderr:write("moonlog new: ", a, " needs a folder\n") return 2 end
      if a == "--scripts" then scripts = args[i + 1] else spec = args[i + 1] end
      i = i + 2
    else
      pos[#pos + 1] = a
      i = i + 1
    end
  end
  local kind, name = pos[1], pos[2]
  if not TEMPLATES[kind or ""] or not name or pos[3] then
    io.stderr:write("moonlog new: give a kind (", table.concat(KINDS, ", "), ") and a name; ",
      "see moonlog new --help\n")
    return 2
  end
  if not name:match("^[%a_][%w_]*$") then
    io.stderr:write(("moonlog new: %q is not a name a script can have here: use letters, digits "
      .. "and '_', starting with a letter (it is also the script's Lua variable in its spec)\n"):format(name))
    return 2
  end
  local script_path, spec_path = scripts .. "/" .. name .. ".lua", spec .. "/" .. name .. "_spec.lua"
  for _, p in ipairs { script_path, spec_path } do
    if exists(p) then
      io.stderr:write("moonlog new: ", p, " exists already; nothing was written\n")
      return 1
    end
  end
  os.execute(("mkdir -p '%s' '%s'"):format(scripts:gsub("'", "'\\''"), spec:gsub("'", "'\\''")))
  local tpl = TEMPLATES[kind]
  write(script_path, (tpl.script:gsub("NAME", name)))
  local from_spec = relative(spec, script_path)
  write(spec_path, (tpl.spec:gsub("SCRIPTS", from_spec):gsub("NAME", name)))
  io.write(("wrote %s (a %s) and %s; run: moonlog test %s\n"):format(script_path, kind, spec_path, spec_path))
  return 0
end

return new
