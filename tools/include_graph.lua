-- include_graph.lua - the folders of runtime/ as layers: draws the graph of which folder
-- includes which from the #include lines, and fails when it has a circle or when a file
-- reaches into another folder's private headers.
--
--   lua5.4 tools/include_graph.lua [RUNTIME_DIR] [--print] [--allow 'FILE -> HEADER' ...]
--
-- RUNTIME_DIR defaults to ./runtime; --print writes the graph (one line per folder: what it
-- includes, and through which file first) even when it passes; --allow replaces ALLOWED. ctest runs it as
-- unit/include_graph. Exit status 0 when the graph has no circle and no file includes a
-- private header of another folder; 1 with one line per fault, naming the files.
--
-- The folders are those under runtime/ (cli, codec, host, ...), test/ aside: tests may look
-- inside what they test. A folder's public header lives in include/moonlog/ and belongs to
-- the folder that implements it (OWNER below), so `#include <moonlog/server.h>` in host/ is
-- the edge host -> net, and a public header that includes another makes an edge of its
-- owner. Every other header is private to its folder: `"net/mp.h"` included from host/ is a
-- fault (and still an edge, as it is a dependency all the same).

-- Which folder implements each public header. A new public header must be added here.
local OWNER = {
  ["api.h"] = "util",
  ["diag.h"] = "util",
  ["util.h"] = "util",
  ["codec.h"] = "codec",
  ["host.h"] = "host",
  ["log.h"] = "log",
  ["log_writer.h"] = "log",
  ["lua_log.h"] = "log",
  ["msgpack.h"] = "codec",
  ["replicate.h"] = "cli", -- what `moonlog serve --replicate` loads a plugin by (cli/replicate.c)
  ["route.h"] = "route",
  ["script.h"] = "script",
  ["server.h"] = "net",
}

-- Private headers of another folder that a file may include: none. An entry is
-- "file -> header", as the fault line prints it; an entry whose file no longer includes the
-- header is a fault too. Give the folder a public function instead of adding one.
local ALLOWED = {}

local root, print_graph, allow = "runtime", false, nil
local i = 1
while arg[i] do
  if arg[i] == "--print" then
    print_graph = true
  elseif arg[i] == "--allow" then -- instead of ALLOWED (for the checker's own spec)
    allow = allow or {}
    allow[arg[i + 1]] = true
    i = i + 1
  else
    root = arg[i]
  end
  i = i + 1
end
ALLOWED = allow or ALLOWED

local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The source files, as paths below root: "net/rpc.c", "include/moonlog/server.h".
local files = lines_of(("cd %s && find . -type f \\( -name '*.c' -o -name '*.h' \\) | sort")
  :format(quote(root)))
if #files == 0 then
  io.stderr:write("include_graph: no C files under ", root, "\n")
  os.exit(2)
end

local faults = {}
local function fault(fmt, ...) faults[#faults + 1] = fmt:format(...) end

-- The folder a file belongs to: its first directory, or the owner of a public header.
local function folder_of(path)
  local public = path:match("^include/moonlog/([^/]+)$")
  if public then
    if not OWNER[public] then
      fault("include/moonlog/%s: a public header with no owner; add it to OWNER in %s",
        public, arg[0])
    end
    return OWNER[public]
  end
  return path:match("^([^/]+)/")
end

local edges = {} -- edges[from][to] = "file includes header" (the first seen)
local nodes = {}
local present, used = {}, {} -- the files read; the allowances they still need
for _, f in ipairs(files) do
  f = f:gsub("^%./", "")
  present[f] = true
  local from = folder_of(f)
  if from and from ~= "test" then
    nodes[from] = true
    local n = 0
    for line in io.lines(root .. "/" .. f) do
      n = n + 1
      local kind, inc = line:match('^%s*#%s*include%s*([<"])([^>"]+)[>"]')
      local to, header
      if kind == "<" and inc:match("^moonlog/") then
        header = inc:sub(9)
        to = OWNER[header]
        if not to then fault("%s:%d: includes <%s>, a public header with no owner in %s", f, n, inc, arg[0]) end
      elseif kind == '"' then
        to = inc:match("^([^/]+)/") or f:match("^([^/]+)/")
        header = inc:find("/") and inc or (to .. "/" .. inc)
        local own = f:match("^include/") and "include" or f:match("^([^/]+)/")
        if to ~= own then
          local key = ("%s -> %s"):format(f, header)
          used[key] = true
          if not ALLOWED[key] then
            fault("%s:%d: includes %s, a private header of %s/ (use that folder's public header)",
              f, n, header, to)
          end
        end
      end
      if to and to ~= from then
        nodes[to] = true
        edges[from] = edges[from] or {}
        edges[from][to] = edges[from][to] or ("%s includes %s"):format(f, kind == "<" and "<" .. inc .. ">" or header)
      end
    end
  end
end

-- An allowance whose file no longer includes that header is done with.
local stale = {}
for key in pairs(ALLOWED) do
  if present[key:match("^(%S+)")] and not used[key] then stale[#stale + 1] = key end
end
table.sort(stale)
for _, key in ipairs(stale) do
  fault("%s: no longer included; take it out of ALLOWED in %s", key, arg[0])
end

local names = {}
for k in pairs(nodes) do names[#names + 1] = k end
table.sort(names)

local function targets(from)
  local t = {}
  for to in pairs(edges[from] or {}) do t[#t + 1] = to end
  table.sort(t)
  return t
end

-- Circles: a depth-first walk; an edge back to a folder on the walk's path closes one.
local state, path, seen = {}, {}, {}
local function walk(v)
  state[v] = "open"
  path[#path + 1] = v
  for _, w in ipairs(targets(v)) do
    if state[w] == "open" then
      local at
      for i = #path, 1, -1 do if path[i] == w then at = i break end end
      local circle, why = {}, {}
      for i = at, #path do
        local a, b = path[i], path[i + 1] or w
        circle[#circle + 1] = a
        why[#why + 1] = edges[a][b]
      end
      circle[#circle + 1] = w
      local key = table.concat(circle, " -> ")
      if not seen[key] then
        seen[key] = true
        fault("a circle between folders: %s (%s)", key, table.concat(why, "; "))
      end
    elseif state[w] == nil then
      walk(w)
    end
  end
  path[#path] = nil
  state[v] = "done"
end
for _, v in ipairs(names) do if state[v] == nil then walk(v) end end

if print_graph or #faults > 0 then
  for _, v in ipairs(names) do
    local t = targets(v)
    local parts = {}
    for _, w in ipairs(t) do parts[#parts + 1] = ("%s (%s)"):format(w, edges[v][w]) end
    print(("%-7s -> %s"):format(v, #t > 0 and table.concat(parts, ", ") or "nothing"))
  end
end
for _, f in ipairs(faults) do io.stderr:write("include_graph: ", f, "\n") end
os.exit(#faults == 0 and 0 or 1)
