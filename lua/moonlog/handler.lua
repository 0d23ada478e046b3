-- moonlog.handler: ml.handler, reactions to events. `on[type](event, ctx)` may call
-- `ctx.emit(stream, type, data, meta)`; `def:handle` collects what it emits, stamped with
-- causation_id = the event's id and correlation_id = the event's correlation_id (or its id),
-- for the host to append together with the handler's checkpoint.

local check = require "moonlog.check"
local dsl   = require "moonlog.dsl"
local new_event = require "moonlog.event"

local fmt <const> = string.format
local describe <const> = check.describe

local methods = {}

-- Run the handler for `event`. `ctx`, when given, is a table of extra fields the handler sees
-- through its context (its `emit` is always the collecting one). Returns the list of emitted
-- events { stream, type, data, meta }, empty when the handler has nothing for this type.
function methods:handle(event, ctx)
  local emitted = {}
  local f = self.on[event.type] or self._any
  if not f then return emitted end
  local cause = event.id
  local in_meta = event.meta
  local correlation = in_meta and in_meta.correlation_id or cause
  local label = tostring(self)
  local c = setmetatable({ name = self.name }, ctx and { __index = ctx } or nil)
  function c.emit(stream, type_, data, meta)
    if type(stream) ~= "string" or stream == "" then
      error(fmt("%s: ctx.emit: stream must be a non-empty string, got %s", label,
        check.show(stream)), 2)
    end
    if type(type_) ~= "string" or type_ == "" then
      error(fmt("%s: ctx.emit: type must be a non-empty string, got %s", label,
        check.show(type_)), 2)
    end
    if data == nil then data = {} end
    if not new_event.is_data(data) then
      error(fmt("%s: ctx.emit: data must be a table, string, number or boolean, got %s", label,
        type(data)), 2)
    end
    if meta ~= nil and type(meta) ~= "table" then
      error(fmt("%s: ctx.emit: meta must be a table, got %s", label, describe(meta)), 2)
    end
    local m = {}
    if meta then
      for k, v in pairs(meta) do m[k] = v end
    end
    m.causation_id = cause
    m.correlation_id = correlation
    emitted[#emitted + 1] = { stream = stream, type = type_, data = data, meta = m }
  end
  f(event, c)
  return emitted
end

local Handler = dsl.class("handler", methods, false)

local START_EXPECTED <const> = '"beginning", "end" or a position (an integer >= 0)'

return dsl.constructor(function(t)
  local c, def = dsl.common("handler", t, {})
  def.on_error = c:enum("on_error", { "stop", "skip", "park" }, "stop")
  local start = t.start
  if start == nil then
    start = "beginning"
  elseif start ~= "beginning" and start ~= "end"
      and not (math.type(start) == "integer" and start >= 0) then
    c:fail("start must be %s, got %s%s", START_EXPECTED, check.show(start),
      check.hint(start, { "beginning", "end" }))
  end
  def.start = start
  return setmetatable(def, Handler)
end)
