-- moonlog.upcaster: ml.upcaster, turning old shapes of an event into the current one before a
-- script sees it. The stored events never change: a script is handed an upcast copy.
--
--   ml.upcaster {
--     Deposited = {                                   -- meta.schema 1 -> 2, then 2 -> 3
--       function(e) e.data.amount = e.data.cents / 100; e.data.cents = nil return e end,
--       function(e) e.data.currency = e.data.currency or "EUR" return e end,
--     },
--     Credited = function(e) e.type = "Deposited" return e end,   -- a renamed type
--   }
--
-- The version of an event's shape is `meta.schema`, an integer; an event without one is at
-- schema 1 (events written before anyone thought of versions). For a type with n steps the
-- current schema is n + 1: step i takes an event at schema i to schema i + 1, and the steps
-- run one after another from the event's schema up to the current one. A step that changes
-- `type` hands the event to the new type's steps, at the new type's current schema unless
-- the step sets `meta.schema` itself. A step may change `type`, `data` and `meta`; the
-- other fields are the stored event's. Events a decider or handler writes are stamped with
-- the current schema of their type (`stamp`), so that they are never upcast again.
--
-- The host (runtime/script/upcast.c) looks at an event's type and meta.schema in C and calls
-- Lua only for the events that need a step; the testing kit calls `upcast` the same way.

local check = require "moonlog.check"

local fmt <const> = string.format

local M = {}

local Upcaster = {}
Upcaster.__index = Upcaster
Upcaster.__name = "moonlog.upcaster"
Upcaster.__tostring = function(u)
  return fmt("upcaster of %s", table.concat(check.keys(u.steps), ", "))
end

local EXPECTED <const> = "a function(e) returning the event in its next shape, or a list of " ..
  "them (schema 1 -> 2, 2 -> 3, ...)"

-- Steps, and the longest chain a renaming loop may make before it is called a loop.
local MAX_STEPS <const> = 1000

local function fail(msg, ...) error(fmt("ml.upcaster: " .. msg, ...), 0) end

local function build(t)
  if getmetatable(t) == Upcaster then return t end
  if type(t) ~= "table" then
    fail("expects a table mapping event types to upcasters (ml.upcaster { Deposited = " ..
      "function(e) ... return e end }), got %s", check.describe(t))
  end
  local steps, current = {}, {}
  for k, v in pairs(t) do
    if type(k) ~= "string" or k == "" then
      fail("must be keyed by event type name (a non-empty string), got the key %s", check.show(k))
    end
    local list
    if type(v) == "function" then
      list = { v }
    elseif type(v) == "table" and getmetatable(v) == nil then
      list = {}
      local n = 0
      for _ in pairs(v) do n = n + 1 end
      for i = 1, n do
        if type(v[i]) ~= "function" then
          fail("%s[%d] must be a function, got %s (%s)", k, i, check.describe(v[i]), EXPECTED)
        end
        list[i] = v[i]
      end
      if n == 0 then fail("%s must have at least one step (%s)", k, EXPECTED) end
    else
      fail("%s must be %s, got %s", k, EXPECTED, check.describe(v))
    end
    steps[k], current[k] = list, #list + 1
  end
  return setmetatable({ steps = steps, current = current }, Upcaster)
end

-- The upcaster of t (or t itself when it is one); raises a message without a position.
M.build = build

-- ml.upcaster(t): checked at once, raised at the caller's line.
function M.new(t)
  local ok, u = pcall(build, t)
  if not ok then error(u, 2) end
  return u
end

function M.is_upcaster(x)
  return getmetatable(x) == Upcaster
end

-- The upcaster of a folder and a script's own together: the script's steps of a type replace
-- the folder's. Either may be nil; nil when both are (or when neither names a type).
function M.merge(folder, own)
  if folder == nil then return own end
  if own == nil then return folder end
  local t = {}
  for k, v in pairs(folder.steps) do t[k] = v end
  for k, v in pairs(own.steps) do t[k] = v end
  return build(t)
end

-- The event `e` (a plain table the upcaster may change) in its current shape. Raises when a
-- step raises or returns something that is not an event, naming the step. (The hot part of
-- an upcast: no table or closure is made here beside what the steps make.)
function Upcaster:upcast(e)
  local stream, id, version, position, time = e.stream, e.id, e.version, e.position, e.time
  local steps, current = self.steps, self.current
  if e.meta == nil then e.meta = {} end
  local n = 0
  while true do
    local chain = steps[e.type]
    if chain == nil then break end
    local v = e.meta.schema
    if math.type(v) ~= "integer" or v < 1 then v = 1 end
    if v > #chain then break end
    n = n + 1
    if n > MAX_STEPS then
      error(fmt("upcaster of %s: more than %d steps for one event: do two types rename into " ..
        "each other?", e.type, MAX_STEPS), 0)
    end
    local from_type = e.type
    local r = chain[v](e)
    if r ~= nil then e = r end
    if type(e) ~= "table" or type(e.type) ~= "string" or e.type == "" then
      error(fmt("upcaster of %s (schema %d -> %d) must return the event (a table with a type), " ..
        "got %s", from_type, v, v + 1, type(e) == "table" and "a table without a type"
        or check.describe(e)), 0)
    end
    local meta = e.meta
    if meta == nil then meta = {} e.meta = meta end
    if type(meta) ~= "table" then
      error(fmt("upcaster of %s (schema %d -> %d): meta must be a table, got %s", from_type, v,
        v + 1, check.describe(meta)), 0)
    end
    if e.type == from_type then
      meta.schema = v + 1
    elseif meta.schema == nil or meta.schema == v then
      meta.schema = current[e.type]    -- nil for a type without steps: as it was
    end
  end
  e.stream, e.id, e.version, e.position, e.time = stream, id, version, position, time
  return e
end

-- Stamps the events a script writes ({ type, data, meta } tables) with the current schema of
-- their type, when the upcaster names it and the event does not say.
function Upcaster:stamp(events)
  local current = self.current
  for i = 1, #events do
    local e = events[i]
    local c = type(e) == "table" and current[e.type]
    if c then
      if e.meta == nil then e.meta = {} end
      if type(e.meta) == "table" and e.meta.schema == nil then e.meta.schema = c end
    end
  end
  return events
end

return M
