-- moonlog.lua - the moonlog side of the comparison, through the moonlog binary's
-- own bench commands. Each workload needs a command that may not exist yet; the
-- harness looks for it (by its --help) and, when it is missing or prints no
-- figure, reports "not measured yet (needs ...)" instead of a number.
--
--   1  moonlog serve --data D --listen 127.0.0.1:P --http off --fsync always
--      moonlog bench append --connect 127.0.0.1:P --conns N --depth W --seconds S
--        reads "N durable appends/s"
--   2  the same command on a fresh server, run long enough for about the peers'
--      event count; it then reads $all back over RPC: "read $all ...: N events/s"
--      (pages) and "consume $all by subscription from 1: ...: N events/s"
--   3  moonlog bench replay --events N: "(b) sum data.amount by stream  X M"
--   4  moonlog bench subscribe --connect 127.0.0.1:P --rate R --seconds S
--        reads "p50 X us, p99 Y us"
local sh = require("sh")

local M = {}

local function help(ctx, args)
	local out, ok = sh.run(sh.quote(ctx.moonlog) .. " " .. args .. " --help")
	return ok and out or ""
end

function M.detect(ctx)
	local net = help(ctx, "bench append --connect")
	return {
		serve = help(ctx, "serve"):match("%-%-listen") ~= nil,
		append = net:match("%-%-conns") ~= nil and net:match("%-%-depth") ~= nil,
		subscribe = help(ctx, "bench subscribe"):match("%-%-rate") ~= nil,
		replay = help(ctx, "bench replay"):match("%-%-events") ~= nil,
	}
end

-- What each command prints, as figures.
M.parse = {
	append = function(out)
		local eps = out:match("([%d%.]+) durable appends/s")
		local n, reps = out:match("read %$all over RPC: (%d+) events in [%d%.]+ s: ([%d%.]+) events/s")
		local cps = out:match("consume %$all by subscription from 1: %d+ events in [%d%.]+ s: ([%d%.]+) events/s")
		return { events_per_s = tonumber(eps), read_events = tonumber(n), read_per_s = tonumber(reps),
			consume_per_s = tonumber(cps) }
	end,
	replay = function(out)
		local m = out:match("%(b%) sum data%.amount by stream%s+([%d%.]+) M")
		return { events_per_s = m and tonumber(m) * 1e6 }
	end,
	subscribe = function(out)
		return { p50_us = tonumber(out:match("p50 ([%d%.]+) us")),
			p99_us = tonumber(out:match("p99 ([%d%.]+) us")) }
	end,
}

local function port_open(port)
	return os.execute("bash -c 'exec 3<>/dev/tcp/127.0.0.1/" .. port .. "' 2>/dev/null") == true
end

-- Starts `moonlog serve` on a fresh folder; returns pid, address, or nil, reason.
function M.serve(ctx, dir, fsync)
	local port = ctx.freeport()
	os.execute("rm -rf " .. sh.quote(dir) .. "; mkdir -p " .. sh.quote(dir))
	local pid = sh.spawn(("%s serve --data %s --listen 127.0.0.1:%d --http off --fsync %s --quiet")
		:format(sh.quote(ctx.moonlog), sh.quote(dir .. "/data"), port, fsync), dir .. "/server.log")
	for _ = 1, 100 do
		if port_open(port) then
			return pid, "127.0.0.1:" .. port
		end
		sh.sleep(0.1)
	end
	sh.stop(pid)
	return nil, "moonlog serve did not listen on 127.0.0.1:" .. port
end

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
