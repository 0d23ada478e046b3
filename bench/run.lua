-- run.lua - `make bench`: moonlog side by side with Redis Streams, NATS JetStream
-- and Tarantool, on 127.0.0.1, in one run.
--
--   lua5.4 bench/run.lua [--quick] [--build DIR] [--tmp DIR] [--only redis,jetstream,...]
--
-- Each peer configuration (bench/peers/) is started in a fresh temporary folder,
-- measured with the C client build/moonlog-peerbench (bench/client/), and stopped;
-- moonlog is measured through its own bench commands where they exist
-- (bench/lib/moonlog.lua). Every figure is the median of several runs after a
-- warm-up run, printed with its spread; the table, a CSV and an SVG chart go to
-- bench/results/. See bench/README.md for what each workload does and why.
local here = arg[0]:match("(.*)/") or "."
package.path = here .. "/lib/?.lua;" .. package.path
local sh = require("sh")
local peers = require("peers")
local moonlog = require("moonlog")
local R = require("report")

local FULL = { mode = "full", reps = 5, seconds = 3, warm = 1, count = 1000000, chunk = 1000,
	lat_count = 5000, lat_reps = 3, rate = 1000, window = 32, conns = { 1, 64 } }
local QUICK = { mode = "quick", reps = 3, seconds = 1, warm = 0.5, count = 200000, chunk = 1000,
	lat_count = 1000, lat_reps = 3, rate = 1000, window = 32, conns = { 1, 64 } }

local function parse_args()
	local o = { p = FULL, build = "build", tmp = os.getenv("TMPDIR") or "/tmp", out = here .. "/results" }
	local i = 1
	while i <= #arg do
		local a = arg[i]
		if a == "--quick" then
			o.p = QUICK
		elseif a == "--build" or a == "--tmp" or a == "--only" or a == "--out" then
			o[a:sub(3)] = arg[i + 1]
			i = i + 1
		else
			io.stderr:write("usage: lua5.4 bench/run.lua [--quick] [--build DIR] [--tmp DIR] " ..
				"[--only redis,jetstream,tarantool,moonlog] [--out DIR]\n")
			os.exit(2)
		end
		i = i + 1
	end
	return o
end

local o = parse_args()
local P = o.p
local function count_name(n)
	return n >= 1000000 and (n // 1000000) .. "M" or (n // 1000) .. "k"
end
local W = {
	append1 = { name = "1 append, 1 conn", metric = "", unit = "events/s", better = "higher" },
	append64 = { name = "1 append, 64 conns", metric = "", unit = "events/s", better = "higher" },
	-- each system's consumer: moonlog a subscription from position 1, JetStream a pull
	-- consumer, Redis (XRANGE) and Tarantool (select) pages, which is all they have
	read = { name = "2 read " .. count_name(P.count), metric = "consumer", unit = "events/s",
		better = "higher" },
	-- the same access for all: pages of P.chunk, one read in flight (JetStream has no such read)
	paged = { name = "2 read " .. count_name(P.count), metric = "paged", unit = "events/s",
		better = "higher" },
	fold = { name = "3 Lua fold " .. count_name(P.count), metric = "", unit = "events/s",
		better = "higher" },
	p50 = { name = "4 live latency", metric = "p50", unit = "us", better = "lower" },
	p99 = { name = "4 live latency", metric = "p99", unit = "us", better = "lower" },
}

local ctx = {
	peers = here .. "/peers",
	moonlog = o.build .. "/moonlog",
	pb = o.build .. "/moonlog-peerbench",
}
function ctx.freeport()
	return tonumber((sh.run(sh.quote(ctx.pb) .. " freeport")))
end

local function want(system)
	return not o.only or ("," .. o.only .. ","):find("," .. system .. ",", 1, true)
end

-- Runs the peer client once; returns its figures or nil and the reason.
local function pb(client, workload, port, args)
	local cmd = ("timeout 600 %s %s %s --port %d %s"):format(sh.quote(ctx.pb), client, workload,
		port, args or "")
	local out, ok = sh.run(cmd)
	if not ok then
		return nil, (out:match("([^\n]+)\n*$") or "failed")
	end
	return sh.kv(out)
end

-- A warm-up run, then `reps` measured runs; the values of `key` or nil, why.
local function repeated(reps, warm, run, key)
	if warm then
		local _, err = warm()
		if err then
			return nil, err
		end
	end
	local values, values2 = {}, {}
	for _ = 1, reps do
		local f, err = run()
		if not f then
			return nil, err
		end
		values[#values + 1] = f[key[1]]
		values2[#values2 + 1] = key[2] and f[key[2]]
	end
	return values, nil, values2
end

local rows = {}
local function add(w, system, setting, values, note)
	rows[#rows + 1] = R.row(w, system, setting, values, note)
	local r = rows[#rows]
	r.index = #rows
	io.write(string.format("  %-22s %-10s %-44s %s\n", w.name .. " " .. w.metric, system, setting,
		r.median and string.format("%.1f %s", r.median, w.unit) or (note or "")))
	io.flush()
end

local function failed(why)
	return "failed: " .. why
end

local function bench_appends(cfg, port)
	for _, n in ipairs(P.conns) do
		local args = ("--conns %d --window %d"):format(n, P.window)
		local v, err = repeated(P.reps,
			function() return pb(cfg.client, "append", port, args .. " --seconds " .. P.warm) end,
			function() return pb(cfg.client, "append", port, args .. " --seconds " .. P.seconds) end,
			{ "events_per_s" })
		add(n == 1 and W.append1 or W.append64, cfg.system, cfg.setting, v, err and failed(err))
	end
end

local function bench_reads(cfg, port)
	local _, err = pb(cfg.client, "load", port, ("--count %d --conns 8 --window 64"):format(P.count))
	local args = ("--count %d --chunk %d"):format(P.count, P.chunk)
	local v
	if not err then
		v, err = repeated(P.reps, function() return pb(cfg.client, "read", port, args) end,
			function() return pb(cfg.client, "read", port, args) end, { "events_per_s" })
	end
	add(W.read, cfg.system, cfg.setting, v, err and failed(err))
	if cfg.client ~= "nats" then -- its pages are the same read
		add(W.paged, cfg.system, cfg.setting, v, err and failed(err))
	end
	if not cfg.fold then
		return
	end
	args = ("--count %d --fold-file %s"):format(P.count, sh.quote(ctx.peers .. "/redis-fold.lua"))
	v, err = repeated(P.reps, function() return pb(cfg.client, "fold", port, args) end,
		function() return pb(cfg.client, "fold", port, args) end, { "events_per_s" })
	add(W.fold, cfg.system, cfg.setting, v, err and failed(err))
end

local function bench_latency(cfg, port)
	local args = ("--count %d --rate %d"):format(P.lat_count, P.rate)
	local warm = ("--count %d --rate %d"):format(P.lat_count // 5, P.rate)
	local p50, err, p99 = repeated(P.lat_reps, function() return pb(cfg.client, "latency", port, warm) end,
		function() return pb(cfg.client, "latency", port, args) end, { "p50_us", "p99_us" })
	add(W.p50, cfg.system, cfg.setting, p50, err and failed(err))
	add(W.p99, cfg.system, cfg.setting, p99, err and failed(err))
end

local function bench_peer(cfg, tmp, i)
	local dir = ("%s/%s-%d"):format(tmp, cfg.system, i)
	os.execute("mkdir -p " .. sh.quote(dir))
	local port = ctx.freeport()
	print(("%s (%s) on 127.0.0.1:%d in %s"):format(cfg.system, cfg.setting, port, dir))
	local pid = cfg.start(ctx, dir, port)
	local _, err = pb(cfg.client, "wait", port, "--seconds 30")
	if err then
		add(W.append1, cfg.system, cfg.setting, nil, failed("did not start: " .. err))
	else
		bench_appends(cfg, port)
		if cfg.reads then
			bench_reads(cfg, port)
		end
		bench_latency(cfg, port)
	end
	sh.stop(pid)
	os.execute("rm -rf " .. sh.quote(dir))
end

local ML = "--fsync always (default)"

local function ml_missing(ws, need)
	for _, w in ipairs(ws) do
		add(w, "moonlog", ML, nil, "not measured yet (needs " .. need .. ")")
	end
end

-- Workload 1 on one server; returns the 64-connection rate for workload 2.
local function ml_appends(tmp)
	local pid, addr = moonlog.serve(ctx, tmp .. "/moonlog-append", "always")
	local rate64
	for _, n in ipairs(P.conns) do
		local args = ("append --connect %s --conns %d --depth %d --seconds "):format(addr, n, P.window)
		local v, err
		if pid then
			v, err = repeated(P.reps,
				function() return moonlog.bench(ctx, "append", args .. P.warm, "events_per_s") end,
				function() return moonlog.bench(ctx, "append", args .. P.seconds, "events_per_s") end,
				{ "events_per_s" })
		end
		local why = not pid and addr or err
		add(n == 1 and W.append1 or W.append64, "moonlog", ML, v, why and failed(why) or nil)
		rate64 = v and R.median(v) or rate64
	end
	sh.stop(pid)
	return rate64
end

-- Workload 2: a fresh server per run, appended to for about P.count events;
-- then `bench append` reads $all back over RPC in pages (P.chunk events, one
-- read in flight, as the Redis and Tarantool readers page) and consumes it by
-- a subscription from position 1. The rows say how many events were read.
local function ml_read(tmp, rate64)
	local seconds = math.max(0.3, math.min(60, P.count / rate64 * 1.05))
	local paged, consumed, counts, err = {}, {}, {}, nil
	for i = 0, P.reps do
		local pid, addr = moonlog.serve(ctx, tmp .. "/moonlog-read", "always")
		if not pid then
			err = addr
			break
		end
		local f, e = moonlog.bench(ctx, "append", ("append --connect %s --conns 64 --depth %d " ..
			"--seconds %.1f --page %d --pages 1"):format(addr, P.window, seconds, P.chunk), "read_per_s")
		sh.stop(pid)
		if f and not f.consume_per_s then
			f, e = nil, "no consume figure in the output of moonlog bench append"
		end
		if not f then
			err = e
			break
		end
		if i > 0 then -- run 0 is the warm-up
			paged[#paged + 1], consumed[#consumed + 1] = f.read_per_s, f.consume_per_s
			counts[#counts + 1] = f.read_events
		end
	end
	local read = #counts > 0 and ("; read %s events"):format(count_name(R.median(counts))) or ""
	add(W.read, "moonlog", ML .. ", a subscription from 1" .. read, not err and consumed or nil,
		err and failed(err))
	add(W.paged, "moonlog", ML .. read, not err and paged or nil, err and failed(err))
end

local function ml_fold()
	local args = ("replay --events %d --baseline 10000 --dir %s"):format(P.count,
		sh.quote(o.tmp .. "/moonlog-bench-replay"))
	local v, err = repeated(P.reps, function() return moonlog.bench(ctx, "replay", args, "events_per_s") end,
		function() return moonlog.bench(ctx, "replay", args, "events_per_s") end, { "events_per_s" })
	add(W.fold, "moonlog", "moonlog replay, in process", v, err and failed(err))
end

local function ml_latency(tmp)
	local pid, addr = moonlog.serve(ctx, tmp .. "/moonlog-live", "always")
	local args = ("subscribe --connect %s --rate %d --seconds "):format(addr, P.rate)
	local p50, err, p99
	if pid then
		p50, err, p99 = repeated(P.lat_reps,
			function() return moonlog.bench(ctx, "subscribe", args .. (P.lat_count / P.rate / 5), "p50_us") end,
			function() return moonlog.bench(ctx, "subscribe", args .. (P.lat_count / P.rate), "p50_us") end,
			{ "p50_us", "p99_us" })
	else
		err = addr
	end
	sh.stop(pid)
	add(W.p50, "moonlog", ML, p50, err and failed(err))
	add(W.p99, "moonlog", ML, p99, err and failed(err))
end

local function bench_moonlog(tmp)
	print("moonlog (" .. ctx.moonlog .. ")")
	local cap = moonlog.detect(ctx)
	local rate64
	if cap.serve and cap.append then
		rate64 = ml_appends(tmp)
	else
		ml_missing({ W.append1, W.append64 }, "`moonlog serve` and `moonlog bench append --connect`")
	end
	if rate64 then
		ml_read(tmp, rate64)
	else
		ml_missing({ W.read, W.paged }, "`moonlog bench append --connect`, which reads $all back over RPC")
	end
	if cap.replay then
		ml_fold()
	else
		ml_missing({ W.fold }, "`moonlog bench replay`, later the projection catch-up in the server")
	end
	if cap.serve and cap.subscribe then
		ml_latency(tmp)
	else
		ml_missing({ W.p50, W.p99 }, "`moonlog serve` and `moonlog bench subscribe --connect`")
	end
end

-- Machine details for the header: CPU, memory, the disk under the temporary folder.
local function machine(tmp)
	local cpu = sh.line("grep -m1 'model name' /proc/cpuinfo"):gsub("^.-:%s*", "")
	local mem = sh.line("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
	local disk = sh.line("findmnt -n -o SOURCE,FSTYPE,OPTIONS --target " .. sh.quote(tmp))
	local dd = sh.run("dd if=/dev/zero of=" .. sh.quote(tmp .. "/dd-probe") ..
		" bs=4k count=500 oflag=dsync 2>&1; rm -f " .. sh.quote(tmp .. "/dd-probe"))
	local secs = tonumber(dd:match("copied, ([%d%.]+) s"))
	local v = peers.versions()
	return {
		"date: " .. os.date("!%Y-%m-%d %H:%M UTC") .. "   mode: " .. P.mode ..
			("   runs: %d (+1 warm-up), %g s each append run"):format(P.reps, P.seconds),
		("cpu: %s, %s cores (nproc)   memory: %s   kernel: %s"):format(cpu, sh.line("nproc"), mem,
			sh.line("uname -r")),
		("disk (temporary folders): %s   4 KiB write+O_DSYNC: %s/s"):format(disk,
			secs and string.format("%.0f", 500 / secs) or "?"),
		"moonlog: " .. sh.line("git -C " .. sh.quote(here) .. " describe --always --dirty") ..
			"   " .. v.redis:gsub(" sha=.*", ""),
		v.jetstream .. "   " .. v.tarantool,
		("events: 100-byte payload, keys account-0..999; appends pipelined %d deep per " ..
			"connection; reads in chunks of %d; latency at %d events/s"):format(P.window, P.chunk, P.rate),
		"moonlog ratio: moonlog (--fsync always) over the peer; > 1 means moonlog is ahead",
	}
end

local function write(path, text)
	local f = assert(io.open(path, "w"))
	f:write(text)
	f:close()
end

local function main()
	local t0 = os.time()
	if not io.open(ctx.pb) then
		io.stderr:write("bench: " .. ctx.pb .. " is missing; run `make bench` (it builds it)\n")
		os.exit(1)
	end
	local tmp = sh.line("mktemp -d " .. sh.quote(o.tmp .. "/moonlog-bench.XXXXXX"))
	if sh.line("stat -f -c %T " .. sh.quote(tmp)) == "tmpfs" then
		print("warning: " .. tmp .. " is on tmpfs: fsync costs nothing there; use --tmp DIR on a disk")
	end
	local head = machine(tmp)
	print(table.concat(head, "\n") .. "\n")
	for i, cfg in ipairs(peers.all) do
		if want(cfg.system) then
			bench_peer(cfg, tmp, i)
		end
	end
	local inproc
	if want("moonlog") then
		bench_moonlog(tmp)
		inproc = moonlog.inprocess(ctx, tmp .. "/moonlog-inprocess", P.seconds)
	end
	os.execute("rm -rf " .. sh.quote(tmp))
	table.sort(rows, function(a, b)
		local ka, kb = a.workload .. a.metric, b.workload .. b.metric
		if ka ~= kb then
			return ka < kb
		end
		local ma, mb = a.system == "moonlog" and 0 or 1, b.system == "moonlog" and 0 or 1
		if ma ~= mb then
			return ma < mb
		end
		return a.index < b.index
	end)
	R.ratios(rows)
	local tbl = R.table(rows)
	local text = table.concat(head, "\n") .. "\n\n" .. tbl .. "\n"
	if inproc then
		text = text .. "\nReference, not comparable (in process, no network): " ..
			"moonlog bench append --quick\n" .. inproc
	end
	text = text .. ("\ntotal time: %d s\n"):format(os.time() - t0)
	print("\n" .. text)
	os.execute("mkdir -p " .. sh.quote(o.out))
	write(o.out .. "/bench.txt", text)
	write(o.out .. "/bench.csv", R.csv(rows))
	write(o.out .. "/bench.svg", R.svg(rows, "moonlog side by side (" .. P.mode .. " run)",
		head[1] .. " | " .. head[2]))
	print("wrote " .. o.out .. "/bench.txt, bench.csv, bench.svg")
end

main()
