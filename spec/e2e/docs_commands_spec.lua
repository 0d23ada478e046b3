-- The test commands the README's tour and the examples' READMEs show, run exactly as written
-- (from the repository's root), so that a newcomer who follows them does not stumble. The
-- documents say `build/moonlog`; this runs the binary under test (MOONLOG_BIN) in its place.
local files = require "support.files"

local SRC = os.getenv("MOONLOG_SOURCE_DIR") or "."
local BIN = assert(os.getenv("MOONLOG_BIN"), "MOONLOG_BIN must name the moonlog binary")

-- Every line of a fenced code block of `path` that runs `build/moonlog test`.
local function test_commands(path)
  local f = assert(io.open(SRC .. "/" .. path))
  local out, fenced = {}, false
  for line in f:lines() do
    if line:match("^```") then
      fenced = not fenced
    elseif fenced then
      local cmd = line:match("^%$?%s*(build/moonlog test .*)$")
      if cmd then out[#out + 1] = cmd end
    end
  end
  f:close()
  return out
end

-- Runs `cmd` from the repository's root with the binary under test: exit status and output.
local function run(cmd)
  cmd = cmd:gsub("^build/moonlog", files.quote(BIN))
  -- not files.sh: under the sanitizers lua5.4 needs the preload it was given
  local p = io.popen(("cd %s && %s 2>&1; echo \"rc=$?\""):format(files.quote(SRC), cmd))
  local text = p:read("a")
  p:close()
  local body, rc = text:match("^(.-)rc=(%d+)%s*$")
  return tonumber(rc), body
end

describe("the documents' test commands", function()
  local docs = { "README.md" }
  for path in files.sh("cd " .. files.quote(SRC) .. " && ls examples/*/README.md"):gmatch("[^\n]+") do
    docs[#docs + 1] = path
  end
  for _, doc in ipairs(docs) do
    it("in " .. doc .. " pass as written", function()
      local cmds = test_commands(doc)
      assert.is_true(#cmds > 0, doc .. " shows how to run its tests")
      for _, cmd in ipairs(cmds) do
        local rc, out = run(cmd)
        assert.equal(0, rc, cmd .. " failed:\n" .. out)
        assert.matches("%d+ successes / 0 failures / 0 errors", out)
      end
    end)
  end
end)
