-- moonlog: the library scripts are written against (require "moonlog").
--
--   ml.reducer{...}  ml.decider{...}  ml.projection{...}  ml.handler{...}   definitions
--   ml.event(type, data, meta)  ml.reject(reason, details)  ml.is_rejection(x)
--   ml.is_definition(x)  ml.matches(pattern, stream)  ml.category(stream)
--   ml.upcaster{...}  ml.is_upcaster(x)                                      old event shapes
--
-- Everything here is plain Lua: it runs unchanged in the host's script sandbox, in busted
-- specs and in the REPL. See docs/lua-api.md.

local dsl    = require "moonlog.dsl"
local event  = require "moonlog.event"
local filter = require "moonlog.filter"
local upcaster = require "moonlog.upcaster"

return {
  reducer       = dsl.reducer,
  decider       = require "moonlog.decider",
  projection    = require "moonlog.projection",
  handler       = require "moonlog.handler",
  upcaster      = upcaster.new,
  is_upcaster   = upcaster.is_upcaster,
  event         = event.event,
  reject        = event.reject,
  is_rejection  = event.is_rejection,
  is_definition = dsl.is_definition,
  matches       = filter.matches,
  category      = filter.category,
  _VERSION      = "moonlog 0.1",
}
