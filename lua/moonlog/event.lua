-- moonlog.event: the values a script hands back to the host, new events (`ml.event`) and
-- rejections (`ml.reject`).
--
-- A new event is a plain table { type = "Withdrawn", data = {...}, meta = {...} } (and an `id`
-- when the script chose one); the host adds stream, version, position and time when it appends.
-- A rejection is { rejected = true, reason = "...", details = ... } carrying a private
-- metatable, so `is_rejection` cannot be fooled by event data that happens to look alike.

local check = require "moonlog.check"
local describe <const>, show <const> = check.describe, check.show

local M = {}

local fmt <const> = string.format

local PLAIN <const> = { table = true, string = true, number = true, boolean = true }

-- Data a script may pass on: a plain value, or a view of a stored event's data (the C host
-- hands events to scripts as read-only views, whose metatable reads "moonlog.view").
local function plain_data(v)
  return PLAIN[type(v)] or getmetatable(v) == "moonlog.view"
end
M.is_data = plain_data

local Rejection = {}
Rejection.__index = Rejection
Rejection.__name = "moonlog.rejection"
function Rejection.__tostring(r) return fmt("rejection %q", r.reason) end

-- ml.event(type, data, meta): a new event. `data` defaults to {} and `meta` to {}.
function M.event(type_, data, meta)
  if type(type_) ~= "string" or type_ == "" then
    error(fmt("ml.event: type must be a non-empty string, got %s", show(type_)), 2)
  end
  if data ~= nil and not plain_data(data) then
    error(fmt("ml.event: data must be a table, string, number or boolean, got %s", type(data)), 2)
  end
  if meta ~= nil and type(meta) ~= "table" then
    error(fmt("ml.event: meta must be a table, got %s", describe(meta)), 2)
  end
  if data == nil then data = {} end
  return { type = type_, data = data, meta = meta or {} }
end

-- ml.reject(reason, details): a refused command. `reason` is a non-empty string, `details`
-- an optional value returned with it (e.g. { balance = 10 }).
function M.reject(reason, details)
  if type(reason) ~= "string" or reason == "" then
    error(fmt("ml.reject: reason must be a non-empty string, got %s", show(reason)), 2)
  end
  return setmetatable({ rejected = true, reason = reason, details = details }, Rejection)
end

function M.is_rejection(x)
  return getmetatable(x) == Rejection
end

-- Normalise one value a script returned as an event: a table with a string `type`. Returns
-- a fresh { type, data, meta[, id] } or nil and what was wrong.
function M.normalise(e)
  if type(e) ~= "table" then
    return nil, fmt("expected an event (ml.event(type, data)), got %s", describe(e))
  end
  if M.is_rejection(e) then
    return nil, "expected an event, got a rejection (return ml.reject(...) on its own)"
  end
  if type(e.type) ~= "string" or e.type == "" then
    return nil, fmt("expected an event with a type (a non-empty string), got type = %s",
      show(e.type))
  end
  if e.meta ~= nil and type(e.meta) ~= "table" then
    return nil, fmt("event meta must be a table, got %s", describe(e.meta))
  end
  if e.id ~= nil and type(e.id) ~= "string" then
    return nil, fmt("event id must be a string, got %s", show(e.id))
  end
  local data = e.data
  if data == nil then data = {} end
  if not plain_data(data) then
    return nil, fmt("event data must be a table, string, number or boolean, got %s", type(data))
  end
  return { type = e.type, data = data, meta = e.meta or {}, id = e.id }
end

return M
