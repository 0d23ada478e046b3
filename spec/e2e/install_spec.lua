-- End to end: `make install` into a staging folder (DESTDIR) gives a user everything the
-- documents promise: the binary, libmoonlog with its headers and a pkg-config file that a C
-- program builds and links with, the Lua modules (moonlog.testing.server included) and
-- moonlog.core, and the man page.
local files = require "support.files"

local BIN = assert(os.getenv("MOONLOG_BIN"), "MOONLOG_BIN must name the moonlog binary")
local BUILD = BIN:gsub("/[^/]*$", "")
local sh, q = files.sh, files.quote

local PROGRAM = [[
#include <stdio.h>
#include <string.h>
#include <moonlog/log.h>

int main(int argc, char **argv)
{
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = argv[1];
	struct ml_log *log = ml_log_open(&o);
	if (log == NULL)
		return 1;
	struct ml_event_in e = {.stream = "hello-1", .stream_len = 7, .type = "Said", .type_len = 4};
	struct ml_append req = {.events = &e, .n_events = 1};
	int rc = ml_log_append(log, &req);
	printf("%d %llu\n", rc, (unsigned long long)req.first_position);
	ml_log_close(log);
	return rc != 0;
}
]]

describe("make install", function()
  it("installs the binary, the library with pkg-config, the Lua modules and the man page", function()
    local root = files.tmpdir()
    local out = sh(("DESTDIR=%s cmake --install %s --prefix /usr/local 2>&1; echo rc=$?"):format(q(root), q(BUILD)))
    assert.matches("rc=0", out)
    local function find(pattern)
      return (sh(("cd %s && find . -path %s | head -1"):format(q(root), q(pattern))):gsub("%s+$", ""))
    end
    for _, p in ipairs { "./usr/local/bin/moonlog", "*/libmoonlog.so.0", "*/include/moonlog/log.h",
                         "*/pkgconfig/moonlog.pc", "*/man1/moonlog.1",
                         "*/share/lua/5.4/moonlog/init.lua", "*/share/lua/5.4/moonlog/testing/server.lua",
                         "*/lua/5.4/moonlog/core.so" } do
      assert.is_true(find(p) ~= "", p .. " is installed")
    end
    -- a C program builds against what pkg-config says, and runs
    local pcdir = root .. "/" .. find("*/pkgconfig/moonlog.pc"):gsub("^%./", ""):gsub("/moonlog.pc$", "")
    local flags = sh(("PKG_CONFIG_PATH=%s PKG_CONFIG_SYSROOT_DIR=%s pkg-config --cflags --libs moonlog 2>&1")
      :format(q(pcdir), q(root))):gsub("%s+$", "")
    assert.matches("%-lmoonlog", flags)
    files.write(root .. "/hello.c", PROGRAM)
    -- with the build's compiler, and its sanitizers when the library has them
    local cache = BUILD .. "/CMakeCache.txt"
    local cc = sh("sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' " .. q(cache)):gsub("%s+$", "")
    local san = ""
    if tonumber(sh("grep -c '^ML_SANITIZE:BOOL=ON' " .. q(cache))) == 1 then
      san = "-fsanitize=address,undefined "
      if cc:find("clang", 1, true) then -- the one shared runtime the library was built with
        local rt = sh(q(cc) .. " -print-file-name=libclang_rt.asan-x86_64.so"):gsub("%s+$", "")
        san = san .. "-shared-libasan -Wl,-rpath," .. rt:gsub("/[^/]*$", "") .. " "
      end
    end
    out = sh(("cd %s && %s %s-o hello hello.c %s 2>&1 && echo built"):format(q(root), q(cc), san, flags))
    assert.matches("built", out)
    local libdir = flags:match("%-L(%S+)")
    out = sh(("cd %s && LD_LIBRARY_PATH=%s ./hello %s 2>&1"):format(q(root), q(libdir), q(root .. "/data")))
    assert.equal("0 1\n", out)
    files.remove(root)
  end)
end)
