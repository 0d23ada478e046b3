---@meta moonlog.testing
-- Type annotations of moonlog.testing for the Lua language server (see moonlog.lua here).

---The testing kit (require "moonlog.testing"): scenarios over an in-memory log.
---@class moonlog.testing
local t = {}

---@param type string
---@param data? moonlog.Data  nil: any data in an expectation, {} in the log.
---@param meta? table
---@return moonlog.NewEvent
function t.event(type, data, meta) end

---Copies of the events, placed in stream `name`, for given/after.
---@param name string
---@param events (moonlog.NewEvent|string)[]
---@return moonlog.NewEvent[]
function t.stream(name, events) end

---The scripts folder's upcasters (what its upcasters.lua returns) for the scenarios that
---follow, used with each definition's own; nil forgets them.
---@param u moonlog.Upcaster|moonlog.UpcasterSpec|nil
function t.upcasters(u) end

---A scenario: `def` after the given events.
---@param def moonlog.Script
---@param events moonlog.NewEvent[]
---@return moonlog.Scenario
function t.given(def, events) end

---@param a any
---@param b any
---@return boolean
function t.equal(a, b) end

---@param v any
---@return string
function t.pretty(v) end

---@class moonlog.Scenario
local Scenario = {}
---Feeds more events (projections, reducers, handlers).
---@param events moonlog.NewEvent[]
---@return moonlog.Scenario
function Scenario:after(events) end
---Runs a decider's command.
---@param command string
---@param args? table
---@return moonlog.Scenario
function Scenario:when(command, args) end
---The command emitted exactly these events.
---@return moonlog.Scenario
function Scenario:emits(...) end
---The command was rejected with this reason (a substring), and details if given.
---@param reason string
---@param details? table
---@return moonlog.Scenario
function Scenario:rejects(reason, details) end
---The whole state equals `expected`.
---@param expected table
---@return moonlog.Scenario
function Scenario:state(expected) end
---A reducer's or decider's state of one stream equals `expected`.
---@param stream string
---@param expected table
---@return moonlog.Scenario
function Scenario:state_of(stream, expected) end
---Asks a projection.
---@param name string
---@return moonlog.Query
function Scenario:query(name, ...) end
---Every event a handler emitted: { stream =, type =, data = } each.
---@return moonlog.Scenario
function Scenario:emitted(...) end
---The events a handler with on_error = "park" failed on.
---@return moonlog.Scenario
function Scenario:parked(...) end

---@class moonlog.Query
local Query = {}
---The answer equals `expected` (deeply).
---@param expected any
---@return moonlog.Scenario
function Query:equals(expected) end
---The answer.
---@return any
function Query:value() end

return t
