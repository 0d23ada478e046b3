-- runner.lua - the host's Lua side, run inside each script's state (runtime/script/runner.c).
--
-- It holds the script's state and answers the few verbs the C host asks for (feed, state,
-- set, get, query, stream, target, initial, decide, show, upcast), so C never needs to know
-- how a projection's state differs from a reducer's table of states by stream. Trusted host
-- code: built into the library at build time, run with the definition, the sandbox's require
-- and the folder's upcaster (or nil) as arguments, touching no global. Not a module scripts
-- can require.
local def, require, folder_upcaster = ...
local kind, R = def.kind, {}
local ml = require 'moonlog'
local pretty = require 'moonlog.pretty'
-- The DSL's fold, inlined for the plain kinds: it is the hot path of a replay.
local on, any = def.on, def._any
if kind == 'projection' then
  -- The state lives in a cell that C reads too: see ml_feed_projection.
  local fold, cell = def.fold, { def:initial() }
  function R.feed(e) cell[1] = fold(def, cell[1], e) end
  if not def.partition then
    R.cell, R.on, R.any = cell, on, any
    function R.feed(e)
      local h = on[e.type] or any
      if h then local r = h(cell[1], e) if r ~= nil then cell[1] = r end end
    end
  end
  function R.state() return cell[1] end
  function R.set(s) cell[1] = s end
  function R.get(key) if def.partition then return cell[1][key] end return cell[1] end
  function R.query(name, ...) return def:query(cell[1], name, ...) end
elseif kind == 'handler' then
  local handle = def.handle
  function R.feed(e) return handle(def, e) end
  function R.state() return nil end
  function R.set() end
  function R.get() return nil end
else
  local initial, states = def.initial, {}
  function R.feed(e)
    local stream = e.stream
    local s = states[stream]
    if s == nil then s = initial(def, stream) end
    local h = on[e.type] or any
    if h then local r = h(s, e) if r ~= nil then s = r end end
    states[stream] = s
  end
  function R.state() return states end
  function R.set(s) states = s end
  function R.get(key) return states[key] end
end
if kind == 'decider' then
  -- The stream; C checks it against `from` and asks def:target when it is not a name
  -- there, for its message (decide.c).
  local stream_of = def.stream
  function R.stream(command, args) return stream_of(args, command) end
  function R.target(command, args) return def:target(command, args) end
  function R.initial(stream) return def:initial(stream) end
  -- The fold is C's, from these (decide.c): def:fold without a Lua call to dispatch.
  R.on, R.any = on, any
  function R.decide(state, command, args)
    local result = def:decide(state, command, args)
    if ml.is_rejection(result) then return false, result.reason, result.details end
    return true, result
  end
end
-- Upcasters: the folder's and the script's own. C looks at `upcast_types` (type -> current
-- schema) and calls `upcast` only for an event of such a type below its current schema
-- (upcast.c); what the script writes is stamped with the current schema of its types.
local up = require('moonlog.upcaster').merge(folder_upcaster, def.upcasters)
if up and next(up.current) ~= nil then
  R.upcast_types = up.current
  function R.upcast(e) return up:upcast(e) end
  if kind == 'handler' then
    local feed = R.feed
    function R.feed(e) return up:stamp(feed(e)) end
  elseif kind == 'decider' then
    local decide = R.decide
    function R.decide(state, command, args)
      local ok, result, details = decide(state, command, args)
      if ok then up:stamp(result) end
      return ok, result, details
    end
  end
end
-- Readable Lua: one key per line, sorted, nested tables indented.
local function show(v, indent, out, seen)
  if type(v) ~= 'table' then out[#out + 1] = pretty.format(v) return end
  if seen[v] then out[#out + 1] = '<cycle>' return end
  local keys = pretty.sorted_keys(v)
  if #keys == 0 then out[#out + 1] = '{}' return end
  seen[v] = true
  local inner = indent .. '  '
  out[#out + 1] = '{\n'
  for i = 1, #keys do
    local k = keys[i]
    out[#out + 1] = inner
    if math.type(k) ~= 'integer' or k ~= i then
      local f = pretty.format({ [k] = true })
      out[#out + 1] = f:sub(2, -7) .. ' = '
    end
    show(v[k], inner, out, seen)
    out[#out + 1] = ',\n'
  end
  out[#out + 1] = indent .. '}'
  seen[v] = nil
end
function R.show(v) local out = {} show(v, '', out, {}) return table.concat(out) end
return R
