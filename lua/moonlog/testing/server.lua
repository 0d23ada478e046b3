-- moonlog.testing.server: starts the real `moonlog serve` for end-to-end specs, a fresh
-- data folder and free loopback ports each, and stops it after the test. Run the specs with
-- `moonlog test` (which sets MOONLOG_BIN to the binary to start), or set MOONLOG_BIN.
--
--   local server = require "moonlog.testing.server"
--   local s = server.start { args = { "--max-outbuf", "65536" } }
--   local s = server.start { nofile = 256 }   -- under `ulimit -n 256`
--   local s = server.start { scripts = { ["echo.lua"] = ECHO } }  -- in s.scripts, --scripts
--   local c = s.client                 -- a moonlog.client on the RPC port
--   local code, body = s:curl("GET", "/stats")
--   after_each(server.stop_all)         -- SIGTERM every server, check each exited 0
--
-- Each server gets a fresh temporary data folder and free loopback ports; its
-- stderr goes to DATA/../serve.log, shown when a server does not exit cleanly.

local socket = require "socket"
local client = require "moonlog.client"
local codec = require("moonlog.core").codec
local files = require "moonlog.testing.files"

local M = {}
local running = {}
local BIN = assert(os.getenv("MOONLOG_BIN"),
  "MOONLOG_BIN is not set: run the specs with `moonlog test`, which sets it, or set it to the moonlog binary")

-- The shell and the files (moonlog.testing.files), for the specs that require only this.
local sh, q = files.sh, files.quote
M.sh, M.quote, M.write_file, M.tmpdir = sh, q, files.write, files.tmpdir

-- The path of `path` (e.g. "examples/bank/scripts") under $MOONLOG_SOURCE_DIR, or the
-- current folder when it is not set.
function M.source(path)
  return (os.getenv("MOONLOG_SOURCE_DIR") or ".") .. "/" .. path
end

-- Waits until fn() is truthy (polling) and returns it; fails after `seconds` (10).
function M.eventually(fn, seconds, what)
  local deadline = socket.gettime() + (seconds or 10)
  while socket.gettime() < deadline do
    local v = fn()
    if v then return v end
    socket.sleep(0.02)
  end
  error("timed out waiting for " .. (what or "a condition"))
end

-- The status of the hosted script `name`, as scripts() over the client `c` gives it.
function M.status_of(c, name)
  for _, st in ipairs(assert(c:call("scripts"))) do
    if st.name == name then return st end
  end
end

-- Waits until the hosted script `name` has handled every event in the log (lag 0, and no
-- new version rebuilding beside it) and returns its status; fails after `seconds` (20).
function M.at_head(c, name, seconds)
  return M.eventually(function()
    local st = M.status_of(c, name)
    return st and st.lag == 0 and not st.rebuild_position and st
  end, seconds or 20, name .. " at the head")
end

function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local Server = {}
Server.__index = Server

-- Launches the binary; waits until the RPC port answers.
function Server:launch()
  local args = { BIN, "serve", "--data", self.data, "--listen", "127.0.0.1:" .. self.rpc_port,
                 "--http", "127.0.0.1:" .. self.http_port }
  for _, a in ipairs(self.args) do args[#args + 1] = a end
  for i, a in ipairs(args) do args[i] = q(a) end
  -- Under the sanitizers the interpreter runs with the ASan runtime preloaded for
  -- moonlog.core; the binary carries its own, so it must not inherit the preload.
  -- (verify_asan_link_order=0: opts.env may preload a library of its own before it.)
  local env = "exec env -u LD_PRELOAD ASAN_OPTIONS=detect_leaks=1:verify_asan_link_order=0 "
  for _, name in ipairs(self.env_names) do env = env .. q(name .. "=" .. self.env[name]) .. " " end
  local limit = self.nofile and ("ulimit -n %d; "):format(self.nofile) or ""
  local umask = self.umask and ("umask " .. self.umask .. "; ") or ""
  -- exec: the pid echoed is popen's own child, so that close() reaps the server itself
  local cmd = ("exec sh -c %s"):format(q("echo $$; " .. limit .. umask .. env .. table.concat(args, " ") .. " 2>>" .. q(self.log)))
  self.proc = io.popen(cmd, "r")
  self.pid = tonumber(self.proc:read("l"))
  local deadline = socket.gettime() + (self.start_timeout or 10)
  while socket.gettime() < deadline do
    -- The kernel completes a connect as soon as the port is bound, before the scripts
    -- are loaded; the server is ready when it answers a request.
    local c = client.connect("127.0.0.1:" .. self.rpc_port, { token = self.token })
    if c and c:call("stats") ~= nil then
      self.client = c
      return self
    end
    if c then c:close() end
    -- A port found free may be taken by a spec running beside this one before the
    -- server binds it: then try other ports.
    local log = sh("cat " .. q(self.log))
    if log:find("cannot listen", 1, true) and (self.port_tries or 0) < 5 then
      self.proc:close()
      self.port_tries = (self.port_tries or 0) + 1
      self.rpc_port, self.http_port = M.free_port(), M.free_port()
      sh("printf '' > " .. q(self.log))
      return self:launch()
    end
    socket.sleep(0.02)
  end
  error("moonlog serve did not start:\n" .. sh("cat " .. q(self.log)))
end

-- A new RPC client (opts as client.connect's).
function Server:connect(opts)
  opts = opts or {}
  if opts.token == nil then opts.token = self.token end
  return assert(client.connect("127.0.0.1:" .. self.rpc_port, opts))
end

function Server:admin()
  return assert(client.connect({ unix = self.data .. "/moonlog.sock" }))
end

-- Sends SIGTERM and waits: true when the server exited with status 0.
function Server:stop(signal)
  if not self.proc then return true end
  if self.client then self.client:close() self.client = nil end
  os.execute(("kill -%s %d"):format(signal or "TERM", self.pid))
  local ok, how, code = self.proc:close()
  self.proc = nil
  self.exit = { ok = ok, how = how, code = code }
  return ok and how == "exit" and code == 0
end

function Server:restart()
  assert(self:stop(), "the server did not stop cleanly")
  return self:launch()
end

function Server:url(path) return ("http://127.0.0.1:%d%s"):format(self.http_port, path) end

-- curl: status code and body. extra: a list of more curl arguments.
function Server:curl(method, path, body, extra)
  local args = { "curl", "-s", "-m", "10", "-o", "-", "-w", q("\n%{http_code}"), "-X", method }
  for _, a in ipairs(extra or {}) do args[#args + 1] = q(a) end
  if body then args[#args + 1] = "--data-binary" args[#args + 1] = q(body) end
  args[#args + 1] = q(self:url(path))
  local out = sh(table.concat(args, " "))
  local text, code = out:match("^(.*)\n(%d+)$")
  if not code then text, code = "", out:match("^(%d+)$") end
  return tonumber(code), text
end

-- curl, with the JSON body decoded (through msgpack, so nulls become nil).
function Server:curl_json(method, path, body, extra)
  local code, text = self:curl(method, path, body, extra)
  local ok, value = pcall(function() return codec.decode(codec.from_json(text)) end)
  return code, ok and value or text
end

-- Fills the folder `dir` from `scripts`: each name = text is written as a file, and each
-- path in the list part is copied in (a folder: its *.lua files).
local function fill_scripts(dir, scripts)
  sh("mkdir -p " .. q(dir))
  for _, from in ipairs(scripts) do
    sh(("if [ -d %s ]; then cp %s/*.lua %s; else cp %s %s; fi"):format(q(from), q(from), q(dir),
      q(from), q(dir)))
  end
  for name, text in pairs(scripts) do
    if type(name) == "string" then files.write(dir .. "/" .. name, text) end
  end
end

-- Starts a server: opts.args (more flags), opts.scripts (a scripts folder of its own,
-- s.scripts, removed with the server, filled as fill_scripts says and passed as --scripts),
-- opts.token (writes a token file: the token and a newline, or opts.token_file as its whole
-- text), opts.data, opts.nofile (the descriptor limit it runs under), opts.umask (the
-- server's umask, e.g. "000"), opts.start_timeout (s to wait for its first answer, 10),
-- opts.env (more environment for it, name -> value; kept by s:restart()).
function M.start(opts)
  opts = opts or {}
  local root = M.tmpdir()
  local s = setmetatable({ root = root, data = opts.data or (root .. "/data"), log = root .. "/serve.log",
                           rpc_port = M.free_port(), http_port = M.free_port(),
                           args = opts.args or {}, nofile = opts.nofile, umask = opts.umask,
                           start_timeout = opts.start_timeout, env = opts.env or {},
                           env_names = {} }, Server)
  for name in pairs(s.env) do s.env_names[#s.env_names + 1] = name end
  table.sort(s.env_names)
  if opts.scripts then
    s.scripts = root .. "/scripts"
    fill_scripts(s.scripts, opts.scripts)
    table.insert(s.args, "--scripts")
    table.insert(s.args, s.scripts)
  end
  if opts.token then
    local f = assert(io.open(root .. "/token", "w"))
    f:write(opts.token_file or (opts.token .. "\n"))
    f:close()
    s.token = opts.token
    table.insert(s.args, "--token")
    table.insert(s.args, root .. "/token")
  end
  running[#running + 1] = s
  return s:launch()
end

-- For after_each: stops every server started, asserting each exits with status 0.
function M.stop_all()
  local list = running
  running = {}
  for _, s in ipairs(list) do
    local clean = s:stop()
    local log = sh("cat " .. q(s.log))
    os.execute("rm -rf " .. q(s.root))
    assert(clean, ("moonlog serve did not exit cleanly (%s %s):\n%s"):format(
      tostring(s.exit.how), tostring(s.exit.code), log))
  end
end

return M
