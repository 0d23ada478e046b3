-- moonlog.decider: ml.decider, the write side. A decider is a reducer over the one stream a
-- command targets (`stream(cmd)`) plus one `decide` function per command type, which returns
-- the new events or a rejection. The host folds the target stream, calls `def:decide` and
-- appends the events with the version the state was built at, retrying on a conflict.

local check = require "moonlog.check"
local dsl   = require "moonlog.dsl"
local event = require "moonlog.event"

local fmt <const> = string.format
local describe <const> = check.describe

local methods = {}

-- The stream a command targets: `stream(args, command)`, checked to be a name in `from`.
function methods:target(command, args)
  if args == nil then args = {} end
  local s = self.stream(args, command)
  if type(s) ~= "string" or s == "" then
    error(fmt("%s: stream(cmd) must return a stream name (a non-empty string), got %s",
      tostring(self), check.show(s)), 0)
  end
  if not self:matches(s) then
    error(fmt('%s: stream(cmd) returned "%s", which is not in from (%s)', tostring(self), s,
      table.concat(self.from.streams, ", ")), 0)
  end
  return s
end

-- Run command `command` with `args` against `state`. Returns a list of new events
-- ({ type, data, meta[, id] }, possibly empty) or a rejection (see ml.is_rejection).
function methods:decide(state, command, args)
  local f = self.commands[command]
  if f == nil then
    error(fmt("%s: unknown command %s%s", tostring(self), check.show(command),
      check.hint(command, check.keys(self.commands))), 2)
  end
  if args == nil then args = {} end
  local result = f(state, args)
  if result == nil or event.is_rejection(result) then return result or {} end
  -- (check.path only on the way to an error: this runs for every command)
  if type(result) ~= "table" then
    error(fmt("%s: %s must return a list of events (ml.event) or ml.reject(reason), got %s",
      tostring(self), check.path("decide", command), describe(result)), 0)
  end
  if result.type ~= nil then result = { result } end
  if #result == 0 and next(result) ~= nil then
    error(fmt("%s: %s returned a table that is neither an event nor a list of events",
      tostring(self), check.path("decide", command)), 0)
  end
  local events = {}
  for i = 1, #result do
    local e, why = event.normalise(result[i])
    if not e then
      error(fmt("%s: %s returned an invalid event at [%d]: %s", tostring(self),
        check.path("decide", command), i, why), 0)
    end
    events[i] = e
  end
  return events
end

-- Fold `history` (the events of the target stream, in order) and decide. Returns the result
-- of `decide` and the state it was decided on.
function methods:execute(history, command, args)
  local state = self:replay(history, self:initial(self:target(command, args)))
  return self:decide(state, command, args), state
end

local Decider = dsl.class("decider", methods, true)

return dsl.constructor(function(t)
  local c, def = dsl.common("decider", t, { init = true, empty_on = true })
  def.stream = c:func("stream", true, "a function(cmd) returning the stream a command targets")
  def.commands = c:function_map("decide", true, "command",
    "a table mapping command names to functions(state, cmd)")
  if next(def.commands) == nil then c:fail("decide must handle at least one command") end
  def.retries = c:integer("retries", 0, 3)
  return setmetatable(def, Decider)
end)
