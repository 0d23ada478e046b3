-- moonlog.filter: stream patterns and subscription filters.
--
-- A pattern names a set of streams:
--
--   "$all"        every stream, system streams ("$..." such as "$parked-NAME") included
--   "*"           every stream except system streams
--   "account-*"   every stream whose name starts with "account-" ("*" only at the end)
--   "account"     a category: the stream "account" and every "account-..." stream
--   "account-42"  exactly that stream (a name holding a "-" is never a category)
--
-- A filter is what a script subscribes to: { streams = { patterns... }, types = { ... } | nil },
-- `types == nil` meaning every event type.

local check = require "moonlog.check"

local filter = {}

local sub <const>, byte <const>, find <const> = string.sub, string.byte, string.find

local ALL <const>, VISIBLE <const>, PREFIX <const>, CATEGORY <const>, EXACT <const> = 1, 2, 3, 4, 5
local DOLLAR <const> = 36

-- The category of a stream: the part before the first "-" (the whole name if there is none).
function filter.category(stream)
  local i = find(stream, "-", 1, true)
  return i and sub(stream, 1, i - 1) or stream
end

-- Compile a pattern into a matcher { kind, ... }; nil and a reason when it is not valid.
function filter.compile(p)
  if type(p) ~= "string" or p == "" then return nil, "a non-empty string" end
  if p == "$all" then return { ALL } end
  if p == "*" then return { VISIBLE } end
  local star = find(p, "*", 1, true)
  if star then
    if star ~= #p then return nil, '"*" only at the end' end
    local prefix = sub(p, 1, -2)
    return { PREFIX, prefix, #prefix }
  end
  if find(p, "-", 1, true) then return { EXACT, p } end
  return { CATEGORY, p, p .. "-", #p + 1 }
end

-- Does compiled matcher `m` take `stream`?
local function match(m, stream)
  local kind = m[1]
  if kind == EXACT then return stream == m[2] end
  if kind == PREFIX then return sub(stream, 1, m[3]) == m[2] end
  if kind == CATEGORY then return stream == m[2] or sub(stream, 1, m[4]) == m[3] end
  if kind == VISIBLE then return byte(stream, 1) ~= DOLLAR end
  return true
end
filter.match = match

-- Does the pattern (a string) take `stream`? Raises on an invalid pattern.
function filter.matches(pattern, stream)
  local m, why = filter.compile(pattern)
  if not m then
    error(string.format("invalid stream pattern %q: expected %s", tostring(pattern), why), 2)
  end
  return match(m, stream)
end

-- A stream name that the filter takes, for tests that do not name one: "account-*" gives
-- "account-1", a category "account" gives "account-1", an exact name itself, "*" gives "test-1".
function filter.example_stream(f)
  local p = f.streams[1]
  if p == "*" or p == "$all" then return "test-1" end
  if sub(p, -1) == "*" then return sub(p, 1, -2) .. "1" end
  if find(p, "-", 1, true) then return p end
  return p .. "-1"
end

local FROM_EXPECTED <const> =
  'a stream pattern such as "account-*", a list of patterns, or { streams = ..., types = {...} }'

local function patterns(value, fail, where)
  local list = type(value) == "string" and { value } or value
  if type(list) ~= "table" then
    fail("%s must be %s, got %s", where, FROM_EXPECTED, type(value))
  end
  if #list == 0 then fail("%s must name at least one stream pattern", where) end
  local out, compiled, seen = {}, {}, {}
  for i, p in ipairs(list) do
    local m, why = filter.compile(p)
    if not m then
      local at = type(value) == "string" and where or string.format("%s[%d]", where, i)
      fail("%s: invalid stream pattern %s: expected %s", at,
        type(p) == "string" and string.format("%q", p) or type(p), why)
    end
    if not seen[p] then
      seen[p] = true
      out[#out + 1] = p
      compiled[#compiled + 1] = m
    end
  end
  for k in pairs(list) do
    if math.type(k) ~= "integer" or k < 1 or k > #list then
      fail("%s must be a list of patterns, got the key %s", where, tostring(k))
    end
  end
  return out, compiled
end

local function type_list(value, fail)
  if type(value) ~= "table" or #value == 0 then
    fail("from.types must be a non-empty list of event types, got %s",
      type(value) == "table" and "an empty table" or type(value))
  end
  local out, set = {}, {}
  for i, ty in ipairs(value) do
    if type(ty) ~= "string" or ty == "" then
      fail("from.types[%d] must be an event type (a non-empty string), got %s", i, type(ty))
    end
    if not set[ty] then
      set[ty] = true
      out[#out + 1] = ty
    end
  end
  return out, set
end

-- Normalise a script's `from` with the keys of its `on` table.
-- `fail(fmt, ...)` raises the error. Returns the filter, the compiled patterns and the set of
-- types (nil for every type).
function filter.normalise(from, on, fail)
  if from == nil then fail('missing "from" (%s)', FROM_EXPECTED) end
  local streams, compiled, types, set
  if type(from) == "table" and next(check.keys(from)) then
    for k in pairs(from) do
      if type(k) ~= "string" then
        fail("from: use either a list of patterns or { streams = ..., types = {...} }, not both")
      end
    end
    for _, k in ipairs(check.keys(from)) do
      if k ~= "streams" and k ~= "types" then
        fail('from: unknown key "%s"%s', k, check.hint(k, { "streams", "types" }))
      end
    end
    if from.streams == nil then
      fail('from: missing "streams" (a pattern or a list of patterns)')
    end
    streams, compiled = patterns(from.streams, fail, "from.streams")
    if from.types ~= nil then types, set = type_list(from.types, fail) end
  else
    streams, compiled = patterns(from, fail, "from")
  end
  if types then
    for _, k in ipairs(check.keys(on)) do
      if k ~= "*" and not set[k] then
        fail('%s never runs: "%s" is not in from.types', check.path("on", k), k)
      end
    end
  elseif on["*"] == nil then
    types, set = {}, {}
    for k in pairs(on) do
      types[#types + 1] = k
      set[k] = true
    end
    table.sort(types)
  end
  return { streams = streams, types = types }, compiled, set
end

return filter
