-- moonlog.pretty: Lua values written readably on one line, for test failures and the REPL.
--
--   pretty.format({ b = 2, a = { 1, 2 }, ["x-y"] = "s" })   --> {a={1, 2}, b=2, ["x-y"]="s"}
--   pretty.event({ type = "Withdrawn", data = { amount = 20 } })   --> Withdrawn {amount=20}
--
-- Keys are sorted (numbers before strings, then by value) so output is stable; a list prints
-- as { a, b }, a table seen again inside itself as <cycle>. Also: equal(a, b) (deep equality)
-- and diff(expected, actual), the path of their first difference.

local pretty = {}

local fmt <const> = string.format

local KEYWORDS <const> = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end

local TYPE_ORDER <const> = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    local ra, rb = TYPE_ORDER[ta] or 9, TYPE_ORDER[tb] or 9
    if ra ~= rb then return ra < rb end
    return ta < tb
  end
  if ta == "number" or ta == "string" then return a < b end
  if ta == "boolean" then return b and not a end
  return tostring(a) < tostring(b)
end

-- The keys of `t`, sorted.
function pretty.sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks, key_less)
  return ks
end

local function quote(s)
  return (fmt("%q", s):gsub("\\\n", "\\n"))
end

local function is_ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") and not KEYWORDS[k]
end

local function write(v, seen, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = quote(v)
  elseif t ~= "table" then
    out[#out + 1] = tostring(v)
  elseif seen[v] then
    out[#out + 1] = "<cycle>"
  else
    seen[v] = true
    local n = #v
    local first = true
    out[#out + 1] = "{"
    for i = 1, n do
      if not first then out[#out + 1] = ", " end
      first = false
      write(v[i], seen, out)
    end
    for _, k in ipairs(pretty.sorted_keys(v)) do
      if not (math.type(k) == "integer" and k >= 1 and k <= n) then
        if not first then out[#out + 1] = ", " end
        first = false
        if is_ident(k) then
          out[#out + 1] = k
        else
          out[#out + 1] = "["
          write(k, seen, out)
          out[#out + 1] = "]"
        end
        out[#out + 1] = "="
        write(v[k], seen, out)
      end
    end
    out[#out + 1] = "}"
    seen[v] = nil
  end
end

-- One line of Lua-like text for `v`.
function pretty.format(v)
  local out = {}
  write(v, {}, out)
  return table.concat(out)
end

-- "Withdrawn {amount=20}", with "stream: " in front when `with_stream` and the event has one,
-- and " meta={...}" after when `with_meta` and the meta is not empty. An event without data
-- (an expectation that does not care) prints as "Withdrawn (any data)"; a rejection as
-- rejection "reason".
function pretty.event(e, with_stream, with_meta)
  if type(e) ~= "table" then return pretty.format(e) end
  if e.rejected == true and type(e.reason) == "string" and e.type == nil then
    return fmt("rejection %s", quote(e.reason))
  end
  local s = tostring(e.type)
  if e.data == nil then
    s = s .. " (any data)"
  else
    s = s .. " " .. pretty.format(e.data)
  end
  if with_stream and e.stream ~= nil then s = tostring(e.stream) .. ": " .. s end
  if with_meta and type(e.meta) == "table" and next(e.meta) ~= nil then
    s = s .. " meta=" .. pretty.format(e.meta)
  end
  return s
end

-- Lines "  <event>" for a list of events, or "  (no events)".
function pretty.events(list, with_stream, with_meta)
  if #list == 0 then return "  (no events)" end
  local lines = {}
  for i, e in ipairs(list) do lines[i] = "  " .. pretty.event(e, with_stream, with_meta) end
  return table.concat(lines, "\n")
end

-- Deep equality: same type, and for tables the same keys with deeply equal values. Numbers
-- compare with == (so 1 == 1.0); metatables are ignored.
local function equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do
    if not equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end
pretty.equal = equal

local function join(path, k)
  if is_ident(k) then return path .. "." .. k end
  return path .. "[" .. pretty.format(k) .. "]"
end

-- The first difference between `expected` and `actual` (keys visited in sorted order): its
-- path (e.g. "[1].data.amount", "" at the top) and the two values there; nil when equal.
local function diff(expected, actual, path)
  path = path or ""
  if equal(expected, actual) then return nil end
  if type(expected) ~= "table" or type(actual) ~= "table" then return path, expected, actual end
  local keys, seen = {}, {}
  for _, k in ipairs(pretty.sorted_keys(expected)) do
    keys[#keys + 1] = k
    seen[k] = true
  end
  for _, k in ipairs(pretty.sorted_keys(actual)) do
    if not seen[k] then keys[#keys + 1] = k end
  end
  for _, k in ipairs(keys) do
    local p, e, a = diff(expected[k], actual[k], join(path, k))
    if p then return p, e, a end
  end
end
pretty.diff = diff

-- "first difference at .balance: expected 10, got 5", or nil when there is none (or when the
-- difference is the whole value, which the caller shows anyway).
function pretty.difference(expected, actual, prefix)
  local p, e, a = diff(expected, actual, prefix)
  if p == nil or p == (prefix or "") then return nil end
  return fmt("first difference at %s: expected %s, got %s", p, pretty.format(e), pretty.format(a))
end

return pretty
