-- moonlog.lua - the moonlog side of the comparison, through the moonlog binary's
-- own bench commands. Each workload needs a command that may not exist yet; the
-- harness looks for it (by its --help) and, when it is missing or prints no
-- figure, reports "not measured yet (needs ...)" instead of a number.
--
-- What the harness calls, and reads back from a key=value line (events_per_s=,
-- p50_us=, p99_us=), or a JSON object with the same keys:
--   1  moonlog serve --data D --listen 127.0.0.1:P --fsync always
--      moonlog bench append --connect 127.0.0.1:P --connections N --pipeline W --seconds S
--   2  moonlog bench subscribe --connect 127.0.0.1:P --catch-up --events N
--   3  moonlog bench replay --events N
--   4  moonlog bench subscribe --connect 127.0.0.1:P --rate R --events N
local sh = require("sh")

local M = {}

local function help(ctx, args)
	local out, ok = sh.run(sh.quote(ctx.moonlog) .. " " .. args .. " --help")
	return ok and out or nil
end

function M.detect(ctx)
	local top = help(ctx, "") or ""
	local append = help(ctx, "bench append") or ""
	local sub = help(ctx, "bench subscribe") or ""
	local replay = help(ctx, "bench replay") or ""
	local cap = {
		serve = top:match("\n%s*serve%s") ~= nil,
		append = append:match("%-%-connect") ~= nil,
		catchup = sub:match("%-%-catch%-up") ~= nil,
		live = sub:match("%-%-rate") ~= nil,
		replay = replay:match("%-%-events") ~= nil,
	}
	return cap
end

-- Reads the figures out of a bench command's output (key=value or JSON).
local function figures(out)
	local kv = sh.kv(out) or {}
	for k, v in out:gmatch('"([%w_]+)"%s*:%s*([%d%.]+)') do
		kv[k] = kv[k] or tonumber(v)
	end
	return kv
end

local function port_open(port)
	return os.execute("bash -c 'exec 3<>/dev/tcp/127.0.0.1/" .. port .. "' 2>/dev/null") == true
end

-- Starts `moonlog serve` on a fresh folder; returns pid, address, or nil, reason.
function M.serve(ctx, dir, fsync)
	local port = ctx.freeport()
	os.execute("mkdir -p " .. sh.quote(dir))
	local pid = sh.spawn(("%s serve --data %s --listen 127.0.0.1:%d --fsync %s"):format(
		sh.quote(ctx.moonlog), sh.quote(dir .. "/data"), port, fsync), dir .. "/server.log")
	for _ = 1, 100 do
		if port_open(port) then
			return pid, "127.0.0.1:" .. port
		end
		sh.sleep(0.1)
	end
	sh.stop(pid)
	return nil, "moonlog serve did not listen on 127.0.0.1:" .. port
end

-- Runs one moonlog bench command; returns its figures or nil, why.
function M.bench(ctx, args, key)
	local cmd = "timeout 300 " .. sh.quote(ctx.moonlog) .. " bench " .. args
	local out, ok = sh.run(cmd)
	local f = figures(out)
	if not ok then
		return nil, "failed: moonlog bench " .. args .. ": " .. (out:match("[^\n]*$") or "")
	end
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
