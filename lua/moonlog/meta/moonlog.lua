---@meta
-- Type annotations of moonlog's script API and testing kit for the Lua language server
-- (LuaLS / sumneko): completion, hover documentation and type checks in an editor. Never
-- loaded at run time. Set-up: docs/lua-api.md, "Editor support".

---@alias moonlog.Data table|string|number|boolean  The event's data, decoded from msgpack.

---An event as scripts see it: read-only, decoded field by field on access.
---@class moonlog.Event
---@field position integer  Its place in the whole log ($all), from 1.
---@field version integer   Its place in its stream, from 1.
---@field time integer      When it was appended: milliseconds since the Unix epoch.
---@field stream string     The stream it belongs to, e.g. "account-42".
---@field type string       Its type, e.g. "Deposited".
---@field id string         Its id: the client's, or a UUIDv7 made at append.
---@field data moonlog.Data The event's payload.
---@field meta table        Its metadata (causation_id, correlation_id, ...).

---An event to emit or return: ml.event(type, data, meta).
---@class moonlog.NewEvent
---@field type string
---@field data? moonlog.Data
---@field meta? table
---@field id? string  An idempotency id: a retry with the same id is stored once.

---A rejection: ml.reject(reason, details).
---@class moonlog.Rejection
---@field reason string
---@field details? table

---A stream pattern ("account-*", a category "account", an exact "account-42", "$all"), a
---list of them, or { streams = ..., types = { "Type", ... } }.
---@alias moonlog.From string|string[]|{streams: string|string[], types?: string[]}

---What a handler's functions receive beside the event.
---@class moonlog.Context
---@field name string  The handler's name.
local Context = {}
---Emits an event to `stream` (stored with the handler's checkpoint, exactly once).
---@param stream string
---@param type string
---@param data? moonlog.Data
---@param meta? table
function Context.emit(stream, type, data, meta) end

---@class moonlog.Definition
---@field name string          Unique among the scripts of a folder; [%w_.-], 1 to 100 characters.
---@field description? string
---@field from moonlog.From    The events it reads.
---@field upcasters? moonlog.Upcaster|moonlog.UpcasterSpec  This script's own upcasters (they replace the folder's upcasters.lua for the types they name).

---An event in an old shape, as an upcaster step receives it: a plain table it may change
---(type, data, meta; the other fields are the stored event's). meta.schema is its shape's
---version (1 when absent).
---@class moonlog.OldEvent: moonlog.Event
---@field data any
---@field meta table

---One step: an event at schema i in, the same event at schema i + 1 out (or a renamed type).
---@alias moonlog.UpcastStep fun(e: moonlog.OldEvent): moonlog.OldEvent|nil

---Upcasters by event type: one step (schema 1 -> 2) or a list of them (1 -> 2, 2 -> 3, ...).
---@alias moonlog.UpcasterSpec table<string, moonlog.UpcastStep|moonlog.UpcastStep[]>

---Upcasters built by ml.upcaster.
---@class moonlog.Upcaster
---@field current table<string, integer>  The current schema of each type it names.
local Upcaster = {}
---The event in its current shape.
---@param e moonlog.OldEvent
---@return moonlog.OldEvent
function Upcaster:upcast(e) end

---@class moonlog.ReducerSpec: moonlog.Definition
---@field init? table|fun(stream: string): table    The state of a stream before its first event.
---@field on table<string, fun(state: table, e: moonlog.Event)>
---@field reload? "rebuild"|"keep"
---@field snapshot_every? integer

---@class moonlog.DeciderSpec: moonlog.Definition
---@field stream fun(cmd: table, command: string): string  The stream a command targets.
---@field init? table|fun(stream: string): table
---@field on table<string, fun(state: table, e: moonlog.Event)>
---@field decide table<string, fun(state: table, cmd: table): (moonlog.NewEvent[]|moonlog.NewEvent|moonlog.Rejection|nil)>
---@field retries? integer  Re-runs after a version conflict (default 3).

---@class moonlog.ProjectionSpec: moonlog.Definition
---@field init? table|fun(key?: string|number): table
---@field on table<string, fun(state: table, e: moonlog.Event)>
---@field queries? table<string, fun(state: table, ...): any>
---@field partition? fun(e: moonlog.Event): (string|number|nil)  One state per key.
---@field reload? "rebuild"|"keep"
---@field migrate? fun(old: table): table  With reload = "keep".
---@field snapshot_every? integer

---@class moonlog.HandlerSpec: moonlog.Definition
---@field on table<string, fun(e: moonlog.Event, ctx: moonlog.Context)>
---@field on_error? "stop"|"skip"|"park"
---@field start? "beginning"|"end"|integer

---A definition built by ml.reducer, ml.decider, ml.projection or ml.handler.
---@class moonlog.Script
---@field kind "reducer"|"decider"|"projection"|"handler"
---@field name string

---@class moonlog
local ml = {}

---A reducer: the state of each stream it reads.
---@param spec moonlog.ReducerSpec
---@return moonlog.Script
function ml.reducer(spec) end

---A decider: commands decided against the state of their stream.
---@param spec moonlog.DeciderSpec
---@return moonlog.Script
function ml.decider(spec) end

---A projection: a read model over many streams, with queries.
---@param spec moonlog.ProjectionSpec
---@return moonlog.Script
function ml.projection(spec) end

---A handler: reactions that emit events, exactly once.
---@param spec moonlog.HandlerSpec
---@return moonlog.Script
function ml.handler(spec) end

---An event for a decider to return or a test to give.
---@param type string
---@param data? moonlog.Data
---@param meta? table
---@return moonlog.NewEvent
function ml.event(type, data, meta) end

---Refuses a command (HTTP 422), with a reason for a person.
---@param reason string
---@param details? table
---@return moonlog.Rejection
function ml.reject(reason, details) end

---@param x any
---@return boolean
function ml.is_rejection(x) end

---@param x any
---@return boolean
function ml.is_definition(x) end

---Upcasters: turn old shapes of events into the current one before a script sees them
---(meta.schema: 1 when absent; a type with n steps is current at n + 1). In a definition's
---`upcasters`, or returned by the scripts folder's upcasters.lua for every script.
---@param spec moonlog.UpcasterSpec
---@return moonlog.Upcaster
function ml.upcaster(spec) end

---@param x any
---@return boolean
function ml.is_upcaster(x) end

---Does the stream pattern take this stream?
---@param pattern string
---@param stream string
---@return boolean
function ml.matches(pattern, stream) end

---The category of a stream: "account" for "account-42".
---@param stream string
---@return string
function ml.category(stream) end

---@type string
ml._VERSION = "moonlog 0.1"

return ml

