-- moonlog.lua - the moonlog figures that are not taken with moonlog-peerbench:
-- workload 3, a Lua fold over the stored events, is moonlog's projection
-- catch-up, measured in process by `moonlog bench replay`, and the in-process
-- append figures printed beside the table for reference. (Workloads 1, 2 and 4
-- drive `moonlog serve` with the same client as every peer: peers.lua.)
--
--   3  moonlog bench replay --events N: "(b) sum data.amount by stream  X M"
local sh = require("sh")

local M = {}

local function help(ctx, args)
	local out, ok = sh.run(sh.quote(ctx.moonlog) .. " " .. args .. " --help")
	return ok and out or ""
end

function M.detect(ctx)
	return { replay = help(ctx, "bench replay"):match("%-%-events") ~= nil }
end

-- What each command prints, as figures.
M.parse = {
	replay = function(out)
		local m = out:match("%(b%) sum data%.amount by stream%s+([%d%.]+) M")
		return { events_per_s = m and tonumber(m) * 1e6 }
	end,
}

-- Runs `moonlog bench ARGS`; returns its figures (with `key` present) or nil, why.
function M.bench(ctx, kind, args, key)
	local out, ok = sh.run("timeout 600 " .. sh.quote(ctx.moonlog) .. " bench " .. args)
	if not ok then
		return nil, "moonlog bench " .. args .. " failed: " .. (out:match("([^\n]+)\n*$") or "")
	end
	local f = M.parse[kind](out)
	if f[key] == nil then
		return nil, "no " .. key .. " in the output of moonlog bench " .. args
	end
	return f
end

-- The in-process append figures (no network): a reference printed beside the table.
function M.inprocess(ctx, dir, seconds)
	local out, ok = sh.run(("timeout 300 %s bench append --quick --seconds %s --dir %s"):format(
		sh.quote(ctx.moonlog), seconds, sh.quote(dir)))
	return ok and out or ("moonlog bench append failed:\n" .. out)
end

return M
