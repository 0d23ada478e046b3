-- moonlog.check: the validation toolkit behind the DSL constructors.
--
-- A checker wraps one definition table (`ml.decider { ... }`) and raises plain strings, without
-- a position (error level 0), of the form
--
--   <kind> "<name>": <what is wrong>
--
-- The constructors catch them and raise again at the script's own line. Nothing here touches
-- anything but plain Lua: the C host runs it inside the script sandbox.

local check = {}

local fmt <const> = string.format
local lower <const> = string.lower

-- What kind of value `v` is, for "got ..." in messages: its type.
function check.describe(v)
  return type(v)
end

-- A value shown in a message: strings quoted (and shortened), numbers and booleans as they
-- are, anything else by its type.
function check.show(v)
  local t = type(v)
  if t == "string" then
    if #v > 40 then v = v:sub(1, 37) .. "..." end
    return fmt("%q", v)
  end
  if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
  return t
end

-- Optimal string alignment distance (Levenshtein plus adjacent transpositions), ignoring case.
function check.distance(a, b)
  a, b = lower(a), lower(b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local before, prev = {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    local cur = { [0] = i }
    local ca = a:byte(i)
    for j = 1, lb do
      local cb = b:byte(j)
      local d = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca == cb and 0 or 1))
      if i > 1 and j > 1 and ca == b:byte(j - 1) and a:byte(i - 1) == cb then
        d = math.min(d, before[j - 2] + 1)
      end
      cur[j] = d
    end
    before, prev = prev, cur
  end
  return prev[lb]
end

-- The candidate nearest to `word`, if it is near enough to be a plausible misspelling.
function check.suggest(word, candidates)
  if type(word) ~= "string" then return nil end
  local best, best_d
  for _, c in ipairs(candidates) do
    local d = check.distance(word, c)
    if d <= 2 and d < #word and (best_d == nil or d < best_d or (d == best_d and c < best)) then
      best, best_d = c, d
    end
  end
  return best
end

-- ' (did you mean "x"?)' or "".
function check.hint(word, candidates)
  local s = check.suggest(word, candidates)
  return s and fmt(' (did you mean "%s"?)', s) or ""
end

-- The sorted string keys of a table.
function check.keys(t)
  local ks = {}
  for k in pairs(t) do
    if type(k) == "string" then ks[#ks + 1] = k end
  end
  table.sort(ks)
  return ks
end

local function is_ident(s)
  return s:match("^[%a_][%w_]*$") ~= nil
end

-- "on.Deposited", 'on["my type"]', "on[1]".
function check.path(parent, key)
  if type(key) == "string" and is_ident(key) then return parent .. "." .. key end
  if type(key) == "string" then return fmt("%s[%q]", parent, key) end
  return fmt("%s[%s]", parent, tostring(key))
end

local Checker = {}
Checker.__index = Checker

-- A checker for definition table `t` of `kind`; fails at once if `t` is not a table.
function check.new(kind, t)
  if type(t) ~= "table" then
    error(fmt("ml.%s expects a definition table (ml.%s { name = ..., ... }), got %s",
      kind, kind, check.describe(t)), 0)
  end
  local name = rawget(t, "name")
  local label = fmt('%s "%s"', kind, type(name) == "string" and name or "<unnamed>")
  return setmetatable({ kind = kind, t = t, label = label }, Checker)
end

function Checker:fail(msg, ...)
  error(self.label .. ": " .. fmt(msg, ...), 0)
end

-- Every key of the table must be one of `allowed`; report the first unknown one (sorted),
-- then any positional value.
function Checker:known_keys(allowed)
  local set = {}
  for _, k in ipairs(allowed) do set[k] = true end
  local unknown = {}
  for _, k in ipairs(check.keys(self.t)) do
    if not set[k] then unknown[#unknown + 1] = k end
  end
  if #unknown > 0 then
    self:fail('unknown key "%s"%s', unknown[1], check.hint(unknown[1], allowed))
  end
  local positional = self.t[1] ~= nil and 1 or nil
  if positional == nil then
    for k in pairs(self.t) do
      if type(k) ~= "string" then
        positional = k
        break
      end
    end
  end
  if positional ~= nil then
    self:fail('unexpected value at [%s]: a definition takes named keys (%s)',
      tostring(positional), table.concat(allowed, ", "))
  end
end

-- The script's name: a required string of letters, digits, "_", "-" and ".".
function Checker:name()
  local name = self.t.name
  if name == nil then
    error(fmt('%s: missing "name" (a string)', self.kind), 0)
  end
  if type(name) ~= "string" then
    error(fmt('%s: name must be a string, got %s', self.kind, check.describe(name)), 0)
  end
  if not name:match("^[%a_][%w_%.%-]*$") then
    self:fail('name must start with a letter or "_" and hold only letters, digits, "_", "-" '
      .. 'and ".", got %q', name)
  end
  return name
end

function Checker:required(key, expected)
  local v = self.t[key]
  if v == nil then self:fail('missing "%s" (%s)', key, expected) end
  return v
end

function Checker:optional_string(key)
  local v = self.t[key]
  if v ~= nil and type(v) ~= "string" then
    self:fail("%s must be a string, got %s", key, check.describe(v))
  end
  return v
end

-- A function; `expected` describes it, e.g. "a function(cmd) returning the stream name".
function Checker:func(key, required, expected)
  local v = required and self:required(key, expected) or self.t[key]
  if v ~= nil and type(v) ~= "function" then
    self:fail("%s must be %s, got %s", key, expected, check.describe(v))
  end
  return v
end

-- One of `options` (a list of strings); `default` when absent.
function Checker:enum(key, options, default)
  local v = self.t[key]
  if v == nil then return default end
  for _, o in ipairs(options) do
    if v == o then return v end
  end
  local quoted = {}
  for i, o in ipairs(options) do quoted[i] = fmt("%q", o) end
  self:fail("%s must be %s, got %s%s", key, table.concat(quoted, " or "), check.show(v),
    check.hint(v, options))
end

-- An integer >= `min`, or `default` when absent.
function Checker:integer(key, min, default)
  local v = self.t[key]
  if v == nil then return default end
  if math.type(v) ~= "integer" or v < min then
    self:fail("%s must be an integer >= %d, got %s", key, min, check.show(v))
  end
  return v
end

-- A table mapping names (strings) to functions. `what` names the keys ("event type",
-- "command", "query"); `expected` describes the table for "missing" messages.
function Checker:function_map(key, required, what, expected)
  local m = required and self:required(key, expected) or self.t[key]
  if m == nil then return nil end
  if type(m) ~= "table" then
    self:fail("%s must be %s, got %s", key, expected, check.describe(m))
  end
  local odd
  for k in pairs(m) do
    if type(k) ~= "string" or k == "" then
      odd = k
      break
    end
  end
  if odd ~= nil then
    self:fail("%s must be keyed by %s name (a non-empty string), got the key %s", key, what,
      type(odd) == "string" and '""' or tostring(odd))
  end
  for _, k in ipairs(check.keys(m)) do
    local f = m[k]
    if type(f) ~= "function" then
      self:fail("%s must be a function, got %s", check.path(key, k), check.describe(f))
    end
  end
  return m
end

return check
