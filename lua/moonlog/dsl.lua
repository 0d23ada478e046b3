-- moonlog.dsl: what the four kinds of definition share, and the reducer itself.
--
-- A definition object is a plain table holding the normalised fields of the script's table
-- (`kind`, `name`, `from` as a filter, `init` as a function, `on`, ...) whose metatable gives
-- the behaviour the host and the testing kit call: `def:matches(stream, type)`,
-- `def:fold(state, event)`, `def:initial(key)`, `def:replay(events)`. The per-kind modules
-- (moonlog.decider, moonlog.projection, moonlog.handler) add their own.

local check    = require "moonlog.check"
local filter   = require "moonlog.filter"
local upcaster = require "moonlog.upcaster"

local dsl = {}

local fmt <const> = string.format

dsl.KEYS = {
  reducer    = { "name", "from", "init", "on", "reload", "snapshot_every", "description",
                 "upcasters" },
  decider    = { "name", "from", "stream", "init", "on", "decide", "description", "retries",
                 "upcasters" },
  projection = { "name", "from", "init", "on", "queries", "partition", "reload", "migrate",
                 "snapshot_every", "description", "upcasters" },
  handler    = { "name", "from", "on", "on_error", "start", "description", "upcasters" },
}

dsl.ON_EXPECTED = "a table mapping event types to functions"

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[deep_copy(k)] = deep_copy(x) end
  return c
end
dsl.deep_copy = deep_copy

local function empty() return {} end

-- Methods every kind has.
local base = {}

function base:matches(stream, event_type)
  local types = self._types
  if event_type ~= nil and types ~= nil and not types[event_type] then return false end
  local ms = self._matchers
  for i = 1, #ms do
    if filter.match(ms[i], stream) then return true end
  end
  return false
end

function base:handles(event_type)
  local types = self._types
  return types == nil or types[event_type] == true
end

-- Methods of the kinds that fold events into a state (reducer, decider, projection).
local stateful = {}

function stateful:initial(key)
  local s = self.init(key)
  if s == nil then
    error(fmt("%s: init returned nil (it must return the initial state)", tostring(self)), 0)
  end
  return s
end

function stateful:fold(state, event)
  local h = self.on[event.type] or self._any
  if h then
    local r = h(state, event)
    if r ~= nil then return r end
  end
  return state
end

-- Fold a list of events into `state` (the initial state of the first event's stream when nil).
function stateful:replay(events, state)
  if state == nil then state = self:initial(events[1] and events[1].stream) end
  for i = 1, #events do state = self:fold(state, events[i]) end
  return state
end

dsl.stateful = stateful

local classes = {}

-- A metatable for a kind: the shared methods, then the kind's own.
function dsl.class(kind, methods, with_state)
  local index = {}
  for k, f in pairs(base) do index[k] = f end
  if with_state then
    for k, f in pairs(stateful) do index[k] = f end
  end
  for k, f in pairs(methods or {}) do index[k] = f end
  local mt = {
    __index = index,
    __name = "moonlog." .. kind,
    __tostring = function(def) return fmt('%s "%s"', def.kind, def.name) end,
  }
  classes[mt] = kind
  return mt
end

-- The fields every kind checks the same way. Returns the checker and a new definition with
-- kind, name, description, on, from, init (when the kind has one) filled in.
function dsl.common(kind, t, opts)
  local c = check.new(kind, t)
  c:known_keys(dsl.KEYS[kind])
  local def = { kind = kind, name = c:name(), description = c:optional_string("description") }
  local on = c:function_map("on", true, "event type", dsl.ON_EXPECTED)
  if not opts.empty_on and next(on) == nil then
    c:fail("on must handle at least one event type")
  end
  def.on = on
  def._any = on["*"]
  if t.upcasters ~= nil then
    -- the script's own upcasters (ml.upcaster { ... }, or the table it takes)
    local ok, u = pcall(upcaster.build, t.upcasters)
    if not ok then c:fail("upcasters: %s", (tostring(u):gsub("^ml%.upcaster: ", ""))) end
    def.upcasters = u
  end
  def.from, def._matchers, def._types = filter.normalise(t.from, on,
    function(...) c:fail(...) end)
  if opts.init then
    local init = t.init
    if init == nil then
      init = empty
    elseif type(init) == "table" then
      local proto = init
      init = function() return deep_copy(proto) end
    elseif type(init) ~= "function" then
      c:fail("init must be a function returning the initial state (or a table to copy), got %s",
        check.describe(init))
    end
    def.init = init
  end
  return c, def
end

-- Wrap a builder so that validation errors are raised at the script's own line.
function dsl.constructor(build)
  return function(t)
    local ok, def = pcall(build, t)
    if not ok then error(def, 2) end
    return def
  end
end

dsl.RELOAD = { "rebuild", "keep" }

local Reducer = dsl.class("reducer", nil, true)

dsl.reducer = dsl.constructor(function(t)
  local c, def = dsl.common("reducer", t, { init = true })
  def.reload = c:enum("reload", dsl.RELOAD, "rebuild")
  def.snapshot_every = c:integer("snapshot_every", 1, nil)
  return setmetatable(def, Reducer)
end)

-- Is `x` a definition built by this library?
function dsl.is_definition(x)
  return type(x) == "table" and classes[getmetatable(x)] ~= nil
end

return dsl
