-- moonlog.testing: the kit for users' busted specs (require "moonlog.testing").
--
--   t.given(account, { t.event("Deposited", { amount = 10 }) })
--    :when("Withdraw", { id = "1", amount = 20 })
--    :rejects("insufficient funds")
--
-- A scenario keeps a small in-memory log: events given to it get a stream, a version, a
-- position, an id and a time, then go to the definition through the same methods the host
-- calls (def:fold, def:decide, def:handle). Expectations raise an error at the caller's line
-- showing expected and actual values; every method returns the scenario, so they chain.

local ml     = require "moonlog"
local pretty = require "moonlog.pretty"
local check  = require "moonlog.check"
local filter = require "moonlog.filter"
local upcaster = require "moonlog.upcaster"

local t = {}

local fmt <const> = string.format
local equal <const>, deep_copy <const> = pretty.equal, require("moonlog.dsl").deep_copy

-- Event times start here (2024-01-01T00:00:00Z, in ms) and advance a second per event.
t.EPOCH = 1704067200000

t.pretty = pretty.format
t.equal = pretty.equal

-- Raise `msg` at the line that called the public method that calls this.
local function fail(msg)
  error(msg, 3)
end

-- t.event(type, data, meta): an event for given/after, or an expected event (data nil means
-- "any data" in an expectation and {} in the log).
function t.event(type_, data, meta)
  if type(type_) ~= "string" or type_ == "" then
    fail(fmt("t.event: type must be a non-empty string, got %s", check.show(type_)))
  end
  if meta ~= nil and type(meta) ~= "table" then
    fail(fmt("t.event: meta must be a table, got %s", type(meta)))
  end
  return { type = type_, data = data, meta = meta }
end

-- t.stream(name, events): copies of the events, placed in stream `name`.
function t.stream(name, events)
  if type(name) ~= "string" or name == "" then
    fail(fmt("t.stream: name must be a non-empty string, got %s", check.show(name)))
  end
  if type(events) ~= "table" then
    fail(fmt("t.stream: events must be a list, got %s", type(events)))
  end
  local out = {}
  for i, e in ipairs(events) do
    if type(e) == "string" then e = { type = e } end
    if type(e) ~= "table" then
      fail(fmt("t.stream: event #%d must be a table (t.event(...)), got %s", i, type(e)))
    end
    local c = {}
    for k, v in pairs(e) do c[k] = v end
    c.stream = name
    out[i] = c
  end
  return out
end

-- Flatten a list of events (nested lists, e.g. from t.stream, are spliced in); a string is
-- shorthand for { type = s }. Returns the list, or nil and what is wrong.
local function flatten(list, where, out)
  out = out or {}
  if type(list) ~= "table" then
    return nil, fmt("%s: expected a list of events, got %s", where, type(list))
  end
  for _, e in ipairs(list) do
    if type(e) == "string" then
      out[#out + 1] = { type = e }
    elseif type(e) ~= "table" then
      return nil, fmt("%s: event #%d must be a table (t.event(...)), got %s", where, #out + 1,
        type(e))
    elseif e.type == nil and e[1] ~= nil then
      local _, err = flatten(e, where, out)
      if err then return nil, err end
    elseif type(e.type) ~= "string" or e.type == "" then
      return nil, fmt("%s: event #%d has no type (make events with t.event(type, data))", where,
        #out + 1)
    else
      out[#out + 1] = e
    end
  end
  return out
end

-- The expected events of :emits(...) / :emitted(...): either one list or the events as
-- separate arguments.
local function expectations(where, ...)
  local n = select("#", ...)
  local first = ...
  if n == 1 and type(first) == "table" and first.type == nil then
    return flatten(first, where)
  end
  return flatten(table.pack(...), where)
end

------------------------------------------------------------------------------------------------
-- The in-memory log.

local function append(s, e, stream)
  local log = s.log
  log.position = log.position + 1
  local version = (log.versions[stream] or 0) + 1
  log.versions[stream] = version
  local data = e.data
  if data == nil then data = {} end
  local stored = {
    id = e.id or ("test-" .. log.position),
    stream = stream,
    type = e.type,
    version = version,
    position = log.position,
    time = e.time or (t.EPOCH + (log.position - 1) * 1000),
    meta = deep_copy(e.meta or {}),
    data = deep_copy(data),
  }
  local list = log.streams[stream]
  if not list then
    list = {}
    log.streams[stream] = list
    log.order[#log.order + 1] = stream
  end
  list[#list + 1] = stored
  return stored
end

------------------------------------------------------------------------------------------------
-- Scenarios.

local Scenario = {}
Scenario.__index = Scenario

local Query = {}
Query.__index = Query

-- The folder's upcasters (t.upcasters), for the scenarios that follow.
local folder_upcaster = nil

-- t.upcasters(u): the upcasters of the scripts folder (what its upcasters.lua returns, or the
-- table ml.upcaster takes), used with each definition's own by the scenarios that follow, as
-- the server uses them; t.upcasters(nil) forgets them.
function t.upcasters(u)
  if u == nil then folder_upcaster = nil return end
  local ok, built = pcall(upcaster.build, u)
  if not ok then fail("t.upcasters: " .. tostring(built):gsub("^ml%.upcaster: ", "")) end
  folder_upcaster = built
end

-- A stored event as the definition sees it: a copy in its current shape when an upcaster
-- names its type (the log keeps the stored one). Raises what the upcaster raises.
local function upcast(s, e)
  if s.up == nil or s.up.current[e.type] == nil then return e end
  local ok, r = pcall(s.up.upcast, s.up, deep_copy(e))
  if not ok then
    error(fmt("the upcaster failed at %s (position %d): %s", pretty.event(e, true), e.position,
      tostring(r)), 0)
  end
  return r
end

-- Copies of stored events as the definition sees them, for a fold.
local function as_seen(s, list)
  local out = {}
  for i, e in ipairs(list) do out[i] = upcast(s, deep_copy(e)) end
  return out
end

-- Deliver a stored event to a reducer, projection or handler, as the host would.
local function deliver(s, e)
  local def = s.def
  if not def:matches(e.stream) then return nil end
  if def.kind == "handler" and s.up then
    local ok, r = pcall(upcast, s, e)
    if not ok then
      if def.on_error == "stop" then
        return fmt("%s failed at %s (position %d) and stops there (on_error = \"stop\"): %s",
          tostring(def), pretty.event(e, true), e.position, tostring(r))
      elseif def.on_error == "park" then
        s._parked[#s._parked + 1] = e
      end
      return nil
    end
    e = r
  else
    e = upcast(s, e)
  end
  if not def:matches(e.stream, e.type) then return nil end
  if def.kind == "reducer" then
    local st = s.states[e.stream]
    if st == nil then
      st = def:initial(e.stream)
      s.folded[#s.folded + 1] = e.stream
    end
    s.states[e.stream] = def:fold(st, e)
  elseif def.kind == "projection" then
    s._state = def:fold(s._state, e)
  elseif def.kind == "handler" then
    if math.type(def.start) == "integer" and e.position <= def.start then return nil end
    local ok, res = pcall(def.handle, def, e)
    if ok then
      if s.up then s.up:stamp(res) end
      for _, x in ipairs(res) do s._emitted[#s._emitted + 1] = x end
    elseif def.on_error == "stop" then
      return fmt("%s failed at %s (position %d) and stops there (on_error = \"stop\"): %s",
        tostring(def), pretty.event(e, true), e.position, tostring(res))
    elseif def.on_error == "park" then
      s._parked[#s._parked + 1] = e
    end
  end
end

local function add_events(s, list, handle)
  local default = filter.example_stream(s.def.from)
  for _, e in ipairs(list) do
    local stored = append(s, e, e.stream or default)
    if handle or s.def.kind ~= "handler" then
      local err = deliver(s, stored)
      if err then return err end
    end
  end
end

-- t.given(def, events): a scenario starting from `events` already in the log.
function t.given(def, events)
  if not ml.is_definition(def) then
    fail(fmt("t.given: expected a definition (ml.reducer, ml.decider, ml.projection or "
      .. "ml.handler), got %s", type(def)))
  end
  local list, err = flatten(events or {}, "t.given")
  if not list then fail(err) end
  local s = setmetatable({
    def = def,
    up = upcaster.merge(folder_upcaster, def.upcasters),
    log = { position = 0, versions = {}, streams = {}, order = {} },
    states = {},
    folded = {},
    _emitted = {},
    _parked = {},
  }, Scenario)
  if def.kind == "decider" then
    s.pending = list
  else
    if def.kind == "projection" then s._state = def:initial() end
    add_events(s, list, false)
  end
  return s
end

local function wrong_kind(s, method, kinds)
  return fmt("%s: :%s is for %s", tostring(s.def), method, kinds)
end

-- :after(events): more events arrive (folded by reducers and projections, handled by handlers).
function Scenario:after(events)
  if self.def.kind == "decider" then
    fail(wrong_kind(self, "after", "reducers, projections and handlers; "
      .. "a decider takes commands: use :when(command, args)"))
  end
  local list, err = flatten(events, ":after")
  if not list then fail(err) end
  err = add_events(self, list, true)
  if err then fail(err) end
  return self
end

-- Put the given events of a decider in the log: each in its own stream if it names one, else
-- in `stream` (the first command's target).
local function flush(s, stream)
  if s.pending then
    for _, e in ipairs(s.pending) do append(s, e, e.stream or stream) end
    s.pending = nil
  end
end

-- :when(command, args): run a decider's command against its target stream.
function Scenario:when(command, args)
  local def = self.def
  if def.kind ~= "decider" then fail(wrong_kind(self, "when", "deciders")) end
  if type(command) ~= "string" or def.commands[command] == nil then
    fail(fmt("%s: unknown command %s%s", tostring(def), check.show(command),
      check.hint(command, check.keys(def.commands))))
  end
  if args ~= nil and type(args) ~= "table" then
    fail(fmt(":when: args must be a table, got %s", type(args)))
  end
  args = args or {}
  local ok, stream = pcall(def.target, def, command, args)
  if not ok then fail(tostring(stream)) end
  flush(self, stream)
  local state = def:replay(as_seen(self, self.log.streams[stream] or {}), def:initial(stream))
  local result = def:decide(state, command, args)
  if not ml.is_rejection(result) then
    if self.up then self.up:stamp(result) end
    for _, e in ipairs(result) do state = def:fold(state, upcast(self, append(self, e, stream))) end
  end
  self.states[stream] = state
  self.last = { command = command, args = args, stream = stream, result = result }
  return self
end

local function no_command(s, method)
  return fmt("%s: call :when(command, args) before :%s", tostring(s.def), method)
end

-- Compare expected events with actual ones: nil when they match, else the message.
local function compare_events(title, expected, actual)
  local with_stream, with_meta = false, false
  local exp, act = {}, {}
  for i, e in ipairs(expected) do
    with_stream = with_stream or e.stream ~= nil
    with_meta = with_meta or (type(e.meta) == "table" and next(e.meta) ~= nil)
    local a = actual[i] or {}
    exp[i], act[i] = { type = e.type }, { type = a.type }
    if e.data ~= nil then exp[i].data, act[i].data = e.data, a.data end
    if e.stream ~= nil then exp[i].stream, act[i].stream = e.stream, a.stream end
    if type(e.meta) == "table" then
      exp[i].meta, act[i].meta = {}, {}
      for k, v in pairs(e.meta) do exp[i].meta[k], act[i].meta[k] = v, (a.meta or {})[k] end
    end
  end
  if #expected == #actual and equal(exp, act) then return nil end
  local msg = fmt("expected %s:\n%s\nbut got:\n%s", title,
    pretty.events(expected, with_stream, with_meta), pretty.events(actual, with_stream, with_meta))
  if #expected == #actual then
    msg = msg .. "\n" .. pretty.difference(exp, act)
  end
  return msg
end

-- :emits(...): the last command's events, in order (type and data compared deeply).
function Scenario:emits(...)
  local last = self.last
  if not last then fail(no_command(self, "emits")) end
  local expected, err = expectations(":emits", ...)
  if not expected then fail(err) end
  if ml.is_rejection(last.result) then
    fail(fmt("expected events:\n%s\nbut got:\n  %s", pretty.events(expected),
      pretty.event(last.result)))
  end
  local msg = compare_events("events", expected, last.result)
  if msg then fail(msg) end
  return self
end

local function reason_matches(pattern, reason)
  if pattern == reason then return true end
  local ok, found = pcall(string.find, reason, pattern)
  return ok and found ~= nil
end

-- :rejects(reason[, details]): the last command was rejected; `reason` is the exact reason or
-- a Lua pattern found in it (nil: any reason); `details`, when given, compared deeply.
function Scenario:rejects(reason, details)
  local last = self.last
  if not last then fail(no_command(self, "rejects")) end
  if reason ~= nil and type(reason) ~= "string" then
    fail(fmt(":rejects: reason must be a string (or nil for any), got %s", type(reason)))
  end
  local r = last.result
  local want = reason and fmt("rejection %s", pretty.format(reason)) or "a rejection"
  if not ml.is_rejection(r) then
    fail(fmt("expected %s\nbut got:\n%s", want, pretty.events(r)))
  end
  if reason ~= nil and not reason_matches(reason, r.reason) then
    fail(fmt("expected %s\nbut got:\n  %s", want, pretty.event(r)))
  end
  if details ~= nil and not equal(details, r.details) then
    fail(fmt("expected rejection details:\n  %s\nbut got:\n  %s", pretty.format(details),
      pretty.format(r.details)))
  end
  return self
end

-- The state :state() looks at, or nil and why not.
local function current_state(s)
  local def = s.def
  if def.kind == "projection" then return s._state end
  if def.kind == "decider" then
    if s.last then return s.states[s.last.stream] end
    local stream = filter.example_stream(def.from)
    local copy = setmetatable({ log = { position = 0, versions = {}, streams = {}, order = {} } },
      { __index = s })
    flush(copy, stream)
    local only = copy.log.order[1] or stream
    if #copy.log.order > 1 then
      return nil, fmt("%s: the given events are in several streams (%s): use "
        .. ":state_of(stream, expected)", tostring(def), table.concat(copy.log.order, ", "))
    end
    return def:replay(as_seen(s, copy.log.streams[only] or {}), def:initial(only))
  end
  local order = s.folded
  if #order > 1 then
    return nil, fmt("%s: the events are in several streams (%s): use :state_of(stream, expected)",
      tostring(def), table.concat(order, ", "))
  end
  local stream = order[1] or filter.example_stream(def.from)
  local st = s.states[stream]
  if st == nil then st = def:initial(stream) end
  return st
end

local function compare_state(title, expected, actual)
  if equal(expected, actual) then return nil end
  local msg = fmt("expected %s:\n  %s\nbut got:\n  %s", title, pretty.format(expected),
    pretty.format(actual))
  local d = pretty.difference(expected, actual)
  if d then msg = msg .. "\n" .. d end
  return msg
end

-- :state(expected): the state, compared deeply. A reducer's or decider's state is that of the
-- one stream its events are in (after the last command, for a decider); a projection's is
-- the whole state (the table of partitions when partitioned).
function Scenario:state(expected)
  if self.def.kind == "handler" then fail(wrong_kind(self, "state", "reducers, deciders and "
    .. "projections (a handler keeps no state)")) end
  local st, err = current_state(self)
  if err then fail(err) end
  local msg = compare_state("state", expected, st)
  if msg then fail(msg) end
  return self
end

-- :state_of(stream, expected): a reducer's or decider's state for one stream.
function Scenario:state_of(stream, expected)
  local def = self.def
  if def.kind ~= "reducer" and def.kind ~= "decider" then
    fail(wrong_kind(self, "state_of", "reducers and deciders"))
  end
  if type(stream) ~= "string" then
    fail(fmt(":state_of: stream must be a string, got %s", type(stream)))
  end
  if def.kind == "decider" then flush(self, filter.example_stream(def.from)) end
  local st = self.states[stream]
  if st == nil or def.kind == "decider" then
    st = def:replay(as_seen(self, self.log.streams[stream] or {}), def:initial(stream))
  end
  local msg = compare_state(fmt("state of %s", stream), expected, st)
  if msg then fail(msg) end
  return self
end

-- :query(name, ...): ask a projection; returns a query with :equals(expected) and :value().
function Scenario:query(name, ...)
  local def = self.def
  if def.kind ~= "projection" then fail(wrong_kind(self, "query", "projections")) end
  if def.queries[name] == nil then
    fail(fmt("%s: unknown query %s%s", tostring(def), check.show(name),
      check.hint(name, check.keys(def.queries))))
  end
  local value = def:query(self._state, name, ...)
  return setmetatable({ scenario = self, name = name, args = table.pack(...), answer = value },
    Query)
end

-- The query's answer.
function Query:value()
  return self.answer
end

-- :equals(expected): the answer, compared deeply; returns the scenario.
function Query:equals(expected)
  if not equal(expected, self.answer) then
    local args = {}
    for i = 1, self.args.n do args[i] = pretty.format(self.args[i]) end
    local msg = fmt("query %s(%s):\nexpected:\n  %s\nbut got:\n  %s", self.name,
      table.concat(args, ", "), pretty.format(expected), pretty.format(self.answer))
    local d = pretty.difference(expected, self.answer)
    if d then msg = msg .. "\n" .. d end
    fail(msg)
  end
  return self.scenario
end

-- :emitted(...): every event a handler emitted while handling the :after events.
function Scenario:emitted(...)
  if self.def.kind ~= "handler" then fail(wrong_kind(self, "emitted", "handlers")) end
  local expected, err = expectations(":emitted", ...)
  if not expected then fail(err) end
  local msg = compare_events("emitted events", expected, self._emitted)
  if msg then fail(msg) end
  return self
end

-- :parked(...): the events a handler with on_error = "park" failed on.
function Scenario:parked(...)
  if self.def.kind ~= "handler" then fail(wrong_kind(self, "parked", "handlers")) end
  local expected, err = expectations(":parked", ...)
  if not expected then fail(err) end
  local msg = compare_events("parked events", expected, self._parked)
  if msg then fail(msg) end
  return self
end

return t
