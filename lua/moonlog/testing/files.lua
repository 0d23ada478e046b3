-- moonlog.testing.files: shell commands, temporary folders and files for specs.
--
--   local files = require "moonlog.testing.files"
--   local dir = files.tmpdir()           -- a fresh folder under /tmp
--   files.write(dir .. "/x.lua", text)
--   files.sh("ls " .. files.quote(dir))  -- the command's output
--   local status, out, err = files.run("moonlog check --data " .. files.quote(dir))
--   files.remove(dir)                    -- rm -rf
--
-- moonlog.testing.server gives the same functions (server.sh, server.tmpdir, ...) to the specs
-- that start the binary.

local M = {}

-- Runs a shell command and returns its output, without the ASan preload the sanitizer
-- build gives the interpreter (curl hangs under it; the binary has its own runtime).
function M.sh(cmd)
  local p = io.popen("unset LD_PRELOAD; " .. cmd, "r")
  local out = p:read("a")
  p:close()
  return out
end

-- Runs a shell command (without the ASan preload, as M.sh); returns its exit status, its
-- standard output and its standard error.
function M.run(cmd)
  local out, err = os.tmpname(), os.tmpname()
  local _, _, status = os.execute(("unset LD_PRELOAD; %s >%s 2>%s"):format(cmd, out, err))
  local function slurp(p)
    local f = assert(io.open(p)); local s = f:read("a"); f:close(); os.remove(p); return s
  end
  return status, slurp(out), slurp(err)
end

-- s as one shell word.
function M.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- A new empty folder under /tmp; the caller removes it (M.remove).
function M.tmpdir()
  return (M.sh("mktemp -d /tmp/moonlog-spec.XXXXXX"):gsub("%s+$", ""))
end

-- Writes `text` to `path`.
function M.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- Removes `path` and everything under it.
function M.remove(path)
  M.sh("rm -rf " .. M.quote(path))
end

return M
