-- End-to-end: the data folder is its owner's alone. moonlog serve creates it and every
-- folder in it 0700 and every file 0600, whatever the umask; a folder that already exists
-- with wider permissions is left as it is and named in one warning line at start.
local server = require "support.server"

local COUNT = [[
local ml = require "moonlog"
return ml.projection {
  name = "count", from = "item-*",
  init = function() return { n = 0 } end,
  on = { Added = function(s) s.n = s.n + 1 end },
  queries = { n = function(s) return s.n end },
}
]]

-- The permission bits of each path, as octal text ("700"); nil for a missing one.
local function modes(paths)
  local out = {}
  for _, p in ipairs(paths) do
    local m = server.sh("stat -c %a " .. server.quote(p) .. " 2>/dev/null"):gsub("%s+$", "")
    out[p] = m ~= "" and m or nil
  end
  return out
end

describe("the data folder", function()
  after_each(server.stop_all)

  for _, umask in ipairs { "000", "022" } do
    it("is created 0700 with files 0600 under umask " .. umask, function()
      local scripts = server.tmpdir()
      server.write_file(scripts .. "/count.lua", COUNT)
      local s = server.start { umask = umask, args = { "--scripts", scripts } }
      local c = s.client
      assert(c:append("item-1", { type = "Added", data = {} }))
      assert(c:subscribe("item-*", 1, "readers"))
      local _, e = c:next_event(10)
      assert(c:ack("readers", e.position))
      server.eventually(function() return c:call("query", "count", "n") == 1 end, 10, "the query")
      assert(s:stop()) -- a clean stop writes the snapshot and the group's position
      local d = s.data
      local want = {
        [d] = "700", [d .. "/log"] = "700", [d .. "/scripts"] = "700", [d .. "/groups"] = "700",
        [d .. "/log/LOCK"] = "600", [d .. "/log/00000000000000000001.seg"] = "600",
        [d .. "/scripts/count.snap"] = "600", [d .. "/groups/readers.pos"] = "600",
      }
      local paths = {}
      for p in pairs(want) do paths[#paths + 1] = p end
      assert.same(want, modes(paths))
      assert.equal("", server.sh("find " .. server.quote(d) .. " -perm /077"))
      s:launch() -- the admin socket (0600) exists while the server runs
      assert.same({ [d .. "/moonlog.sock"] = "600" }, modes { d .. "/moonlog.sock" })
      assert.is_nil(server.sh("cat " .. server.quote(s.log)):find("warning", 1, true))
      os.execute("rm -rf " .. server.quote(scripts))
    end)
  end

  it("that exists open to others is named in one warning line, and left as it is", function()
    local root = server.tmpdir()
    local d = root .. "/shared"
    os.execute("mkdir -m 755 " .. server.quote(d))
    local s = server.start { data = d, umask = "022" }
    assert(s.client:append("s-1", { type = "A" }))
    local log = server.sh("cat " .. server.quote(s.log))
    local lines = {}
    for l in log:gmatch("[^\n]*warning[^\n]*") do lines[#lines + 1] = l end
    assert.same({ ("moonlog serve: warning: other users can enter the data folder %s (mode 0755) "
      .. "and read any file in it that is not mode 0600; 'chmod 700 %s' keeps them out"):format(d, d) },
      lines)
    assert.same({ [d] = "755", [d .. "/log"] = "700", [d .. "/log/LOCK"] = "600" },
      modes { d, d .. "/log", d .. "/log/LOCK" })
    assert(s:stop())
    -- once the owner closes it, the warning goes
    os.execute("chmod 700 " .. server.quote(d))
    s:launch()
    assert.is_nil(server.sh("cat " .. server.quote(s.log)):find("warning: other users", #log + 1, true))
    assert(s:stop())
    os.execute("rm -rf " .. server.quote(root))
  end)
end)
