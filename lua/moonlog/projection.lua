-- moonlog.projection: ml.projection, the read side. A projection folds every event its `from`
-- takes into one state, or with `partition` into one state per key, and answers `queries`.
--
-- Partitioned: the projection's state is a table { [key] = state }, a key's state created by
-- `init(key)` at its first event; an event whose `partition(e)` is nil is left out. Queries
-- always receive the projection's whole state: the single state, or the table of partitions.

local check = require "moonlog.check"
local dsl   = require "moonlog.dsl"

local fmt <const> = string.format

local methods = {}

-- The partition key of an event: a string or a number, or nil to leave the event out.
function methods:partition_of(event)
  local key = self.partition(event)
  local kt = type(key)
  if key ~= nil and kt ~= "string" and (kt ~= "number" or key ~= key) then
    error(fmt("%s: partition(e) must return a string or a number (or nil to leave the event "
      .. "out), got %s", tostring(self), check.show(key)), 0)
  end
  return key
end

-- The state before any event: init() or, when partitioned, an empty table of partitions.
function methods:initial()
  if self.partition then return {} end
  local s = self.init()
  if s == nil then
    error(fmt("%s: init returned nil (it must return the initial state)", tostring(self)), 0)
  end
  return s
end

local plain_fold <const> = dsl.stateful.fold

function methods:fold(state, event)
  if not self.partition then return plain_fold(self, state, event) end
  local key = self:partition_of(event)
  if key == nil then return state end
  local part = state[key]
  if part == nil then
    part = self.init(key)
    if part == nil then
      error(fmt("%s: init returned nil (it must return the initial state)", tostring(self)), 0)
    end
  end
  state[key] = plain_fold(self, part, event)
  return state
end

function methods:replay(events, state)
  if state == nil then state = self:initial() end
  for i = 1, #events do state = self:fold(state, events[i]) end
  return state
end

-- Answer query `name` with `...` against the projection's state.
function methods:query(state, name, ...)
  local q = self.queries[name]
  if q == nil then
    error(fmt("%s: unknown query %s%s", tostring(self), check.show(name),
      check.hint(name, check.keys(self.queries))), 2)
  end
  return q(state, ...)
end

-- The state to carry over a reload with reload = "keep": migrate(old) when given, else old.
function methods:migrate_state(old)
  if self.migrate then return self.migrate(old) end
  return old
end

local Projection = dsl.class("projection", methods, true)

return dsl.constructor(function(t)
  local c, def = dsl.common("projection", t, { init = true })
  def.queries = c:function_map("queries", false, "query",
    "a table mapping query names to functions(state, ...)") or {}
  def.partition = c:func("partition", false, "a function(e) returning the partition key")
  def.reload = c:enum("reload", dsl.RELOAD, "rebuild")
  def.migrate = c:func("migrate", false, "a function(old_state) returning the new state")
  if def.migrate and def.reload ~= "keep" then
    c:fail('migrate is only used with reload = "keep" (reload is "%s")', def.reload)
  end
  def.snapshot_every = c:integer("snapshot_every", 1, nil)
  return setmetatable(def, Projection)
end)
