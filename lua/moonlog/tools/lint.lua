-- moonlog.tools.lint: `moonlog lint FILE...`. Loads each script exactly as the server does
-- (moonlog.core's script.load: the same sandbox, the same checks of the definition), then
-- looks across the files given for what loads but cannot be right, and prints what it finds
-- as `file:line: message` lines, which editors (vim's quickfix, VS Code's problem matchers,
-- Emacs' compile mode) jump to. Exit status 1 when a file does not load, else 0. A folder's
-- upcasters.lua is loaded as the server loads it (with a probe script), and each script with
-- the upcasters.lua of its folder.
--
-- The checks past loading (warnings):
--   * from.types names a type that `on` does not handle: the script subscribes to events it
--     then ignores;
--   * a script handles a type that none of the deciders and handlers among the files emits
--     (ml.event("Type", ...), ctx.emit(stream, "Type", ...) or { type = "Type" } in their
--     text): a typo, or an event that comes from outside (then lint it with its emitter, or
--     ignore the line). Only when at least one decider or handler is among the files.

local core = require "moonlog.core"

local lint = {}

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  return text
end

-- The first line of `text` where `pattern` matches, or 1.
local function line_of(text, pattern)
  local n = 1
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line:find(pattern) then return n end
    n = n + 1
  end
  return 1
end

-- A load error as file:line: message: the line Lua named, else the line of the key the
-- message names ('unknown key "bogus"'), else 1.
local function load_error(path, text, msg)
  msg = tostring(msg):gsub("\nstack traceback:.*$", "")
  local base = path:match("([^/]+)$")
  local line, rest = msg:match(base:gsub("%p", "%%%0") .. ":(%d+): (.*)$")
  if line then return { file = path, line = tonumber(line), message = rest } end
  rest = msg:gsub("^script [^:]- failed to load: ", ""):gsub("^script [^:]- failed: ", "")
  local key = rest:match('key "([%w_]+)"') or rest:match('"([%w_]+)"')
  return { file = path, line = key and line_of(text, "[%s{,]" .. key .. "%s*=") or 1, message = rest }
end

-- The definition as the testing kit sees it (plain Lua, the same moonlog library).
local function definition(path)
  local env = setmetatable({}, { __index = _G })
  local chunk = loadfile(path, "t", env)
  if not chunk then return nil end
  local ok, def = pcall(chunk)
  return ok and type(def) == "table" and def or nil
end

-- Types the text of a decider or handler emits.
local function emitted_types(text, into)
  for t in text:gmatch("event%s*%(%s*[\"']([^\"']+)[\"']") do into[t] = true end
  for t in text:gmatch("emit%s*%([^,]+,%s*[\"']([^\"']+)[\"']") do into[t] = true end
  for t in text:gmatch("type%s*=%s*[\"']([^\"']+)[\"']") do into[t] = true end
end

-- A script that takes every event, to load a folder's upcasters.lua with, as the server does.
local PROBE <const> = "local ml = require 'moonlog' return ml.handler { name = 'upcasters', " ..
  "from = '$all', on = { ['*'] = function() end } }"

-- The text of the upcasters.lua beside `path` (the server gives it to every script of the
-- folder), or nil.
local function folder_upcasters(path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  return read(dir .. "/upcasters.lua")
end

-- Loads a file as the server would: upcasters.lua with a probe script, any other with the
-- upcasters of its folder. Returns the script or raises.
local function load(path, text)
  local probe = path:match("([^/]+)$") == "upcasters.lua"
  -- through pcall, so that the message carries no position of this file
  local ok, s = pcall(core.script.load, path, probe and { source = PROBE, upcasters = text }
    or { upcasters = folder_upcasters(path) })
  if not ok then error(s, 0) end
  return s, probe
end

-- Lints the files; returns the findings ({file, line, message, warning}) and how many failed.
function lint.run(paths)
  local findings, failed, scripts, emitted, emitters = {}, 0, {}, {}, 0
  for _, path in ipairs(paths) do
    local text, err = read(path)
    if not text then
      findings[#findings + 1] = { file = path, line = 1, message = "cannot read it: " .. tostring(err) }
      failed = failed + 1
    else
      local ok, s, only_upcasters = pcall(load, path, text)
      if not ok then
        findings[#findings + 1] = load_error(path, text, s)
        failed = failed + 1
      elseif only_upcasters then
        s:close()
      else
        local info = s:info()
        s:close()
        local def = definition(path)
        scripts[#scripts + 1] = { path = path, text = text, kind = info.kind, name = info.name, def = def }
        if info.kind == "decider" or info.kind == "handler" then
          emitters = emitters + 1
          emitted_types(text, emitted)
        end
      end
    end
  end
  for _, sc in ipairs(scripts) do
    local def = sc.def
    local on = def and type(def.on) == "table" and def.on or {}
    local from = def and def.from
    for _, t in ipairs(from and from.types or {}) do
      if on[t] == nil and on["*"] == nil then
        findings[#findings + 1] = { file = sc.path, warning = true,
          line = line_of(sc.text, "types"),
          message = ("from.types names %q, which on does not handle: %s is fed events it ignores")
            :format(t, sc.name) }
      end
    end
    if emitters > 0 then
      local types = {}
      for t in pairs(on) do if t ~= "*" and not emitted[t] then types[#types + 1] = t end end
      table.sort(types)
      for _, t in ipairs(types) do
        findings[#findings + 1] = { file = sc.path, warning = true,
          line = line_of(sc.text, "[%s{,]" .. t:gsub("%p", "%%%0") .. "%s*="),
          message = ("%s handles %q, which no decider or handler among these files emits")
            :format(sc.name, t) }
      end
    end
  end
  table.sort(findings, function(a, b)
    if a.file ~= b.file then return a.file < b.file end
    return a.line < b.line
  end)
  return findings, failed
end

-- `moonlog lint FILE...`: prints the findings; the exit status.
function lint.main(args)
  local paths = {}
  for _, a in ipairs(args) do
    if a == "--help" or a == "-h" then
      io.write("usage: moonlog lint FILE...\n\n",
        "Loads each script as the server would (syntax, the definition and its keys) and\n",
        "checks the files together: types named in from.types but not handled, types\n",
        "handled that no decider or handler among the files emits. Prints file:line:\n",
        "message lines (warnings say so); exits 1 when a file does not load. A folder's\n",
        "upcasters.lua is checked as the server loads it, and every script is loaded with\n",
        "the upcasters.lua of its own folder.\n")
      return 0
    end
    paths[#paths + 1] = a
  end
  if #paths == 0 then
    io.stderr:write("moonlog lint: give the script files to check (moonlog lint scripts/*.lua)\n")
    return 2
  end
  local findings, failed = lint.run(paths)
  for _, f in ipairs(findings) do
    io.write(("%s:%d: %s%s\n"):format(f.file, f.line, f.warning and "warning: " or "", f.message))
  end
  if #findings == 0 then
    io.stderr:write(("moonlog lint: %d file%s, nothing found\n"):format(#paths, #paths == 1 and "" or "s"))
  end
  return failed > 0 and 1 or 0
end

return lint
