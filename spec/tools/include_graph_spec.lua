-- tools/include_graph.lua (ctest's unit/include_graph) on small trees made for it: it must
-- name a circle between folders, a private header of another folder, and a public header
-- it cannot place, and pass a tree that has none.
local files = require "support.files"

local SOURCE = assert(os.getenv("MOONLOG_SOURCE_DIR"))

-- Runs the check on a tree of these files (paths below runtime/): its exit status and output.
local root
local function tree(list, allow)
  if root then files.remove(root) end
  root = files.tmpdir()
  for path, text in pairs(list) do
    files.sh("mkdir -p " .. files.quote(root .. "/runtime/" .. (path:match("^(.*)/") or ".")))
    files.write(root .. "/runtime/" .. path, text)
  end
  local out = files.sh(("lua5.4 %s/tools/include_graph.lua %s/runtime %s 2>&1; echo \"rc=$?\"")
    :format(files.quote(SOURCE), files.quote(root), allow and "--allow " .. files.quote(allow) or ""))
  local text, rc = out:match("^(.-)rc=(%d+)\n$")
  return tonumber(rc), text
end

after_each(function()
  if root then files.remove(root) end
  root = nil
end)

describe("the include graph check", function()
  it("passes layers that include downwards only, private headers within their folder", function()
    local rc, out = tree {
      ["include/moonlog/log.h"] = "#include <moonlog/util.h>\n",
      ["include/moonlog/util.h"] = "#include <stddef.h>\n",
      ["log/log.c"] = '#include <moonlog/log.h>\n#include "log/log_internal.h"\n#include "record.h"\n',
      ["log/log_internal.h"] = "",
      ["util/util.c"] = "#include <moonlog/util.h>\n",
      ["test/test_log.c"] = '#include "log/log_internal.h"\n#include "net/net_internal.h"\n',
    }
    assert.equal(0, rc, out)
  end)

  it("names a circle through public headers, and the files that make it", function()
    local rc, out = tree {
      ["include/moonlog/server.h"] = "",
      ["include/moonlog/host.h"] = "",
      ["include/moonlog/script.h"] = "",
      ["net/rpc.c"] = "#include <moonlog/script.h>\n",
      ["script/feed.c"] = "#include <moonlog/host.h>\n",
      ["host/host.c"] = "#include <moonlog/server.h>\n",
    }
    assert.equal(1, rc)
    assert.matches("a circle between folders: host %-> net %-> script %-> host %(host/host.c includes "
      .. "<moonlog/server.h>; net/rpc.c includes <moonlog/script.h>; script/feed.c includes "
      .. "<moonlog/host.h>%)", out)
  end)

  it("names a file that includes another folder's private header, wherever it is", function()
    local rc, out = tree {
      ["net/mp.h"] = "",
      ["codec/codec.c"] = '#  include "net/mp.h"\n',
    }
    assert.equal(1, rc)
    assert.matches("codec/codec.c:1: includes net/mp.h, a private header of net/", out)
  end)

  it("lets an allowed private include by, and names an allowance the tree no longer needs", function()
    local allow = "cli/cli.c -> net/http_internal.h"
    local rc, out = tree({ ["cli/cli.c"] = '#include "net/http_internal.h"\n' }, allow)
    assert.equal(0, rc, out)
    rc, out = tree({ ["cli/cli.c"] = "#include <stdio.h>\n" }, allow)
    assert.equal(1, rc)
    assert.matches("cli/cli.c %-> net/http_internal.h: no longer included; take it out of ALLOWED", out)
  end)

  it("names a public header that no folder owns", function()
    local rc, out = tree {
      ["include/moonlog/new.h"] = "",
      ["log/log.c"] = "#include <moonlog/new.h>\n",
    }
    assert.equal(1, rc)
    assert.matches("log/log.c:1: includes <moonlog/new.h>, a public header with no owner", out)
  end)
end)
