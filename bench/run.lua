-- run.lua - `make bench`: moonlog side by side with Redis Streams, NATS JetStream
-- and Tarantool, on 127.0.0.1, in one run.
--
--   lua5.4 bench/run.lua [--quick] [--build DIR] [--tmp DIR] [--only redis,jetstream,...]
--
-- moonlog and each peer configuration (bench/peers/) is started in a fresh
-- temporary folder, all at once, measured with the same C client,
-- build/moonlog-peerbench (bench/client/), the repetitions of each workload
-- going round the systems in turn, and stopped; moonlog's Lua fold is its
-- in-process replay (bench/lib/moonlog.lua). Then workload 5, scale-out: a
-- 3-node JetStream cluster and two moonlog nodes on it (bench/lib/scale.lua).
-- Every figure is the median of several runs after a
-- warm-up run, printed with its spread; the table, a CSV and an SVG chart go to
-- bench/results/. See bench/README.md for what each workload does and why.
local here = arg[0]:match("(.*)/") or "."
package.path = here .. "/lib/?.lua;" .. package.path
local sh = require("sh")
local peers = require("peers")
local moonlog = require("moonlog")
local scale = require("scale")
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
				"[--only redis,jetstream,tarantool,moonlog,scale] [--out DIR]\n")
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
	-- the same pages, moonlog's asking for the fields the peers' records hold (position,
	-- stream, data: read's `fields`), each event an array; the peers send what they sent
	paged3 = { name = "2 read " .. count_name(P.count), metric = "paged, 3 fields",
		unit = "events/s", better = "higher" },
	fold = { name = "3 Lua fold " .. count_name(P.count), metric = "", unit = "events/s",
		better = "higher" },
	p50 = { name = "4 live latency", metric = "p50", unit = "us", better = "lower" },
	p99 = { name = "4 live latency", metric = "p99", unit = "us", better = "lower" },
	-- workload 5: two moonlog nodes on a 3-node JetStream cluster, beside JetStream's raw
	-- rate on the same cluster (an R3 stream; one message is one event)
	s_append = { name = "5 scale-out appends, 64 conns", metric = "", unit = "events/s",
		better = "higher" },
	s_p50 = { name = "5 scale-out appends, 64 conns", metric = "p50", unit = "us", better = "lower" },
	s_p99 = { name = "5 scale-out appends, 64 conns", metric = "p99", unit = "us", better = "lower" },
	lag50 = { name = "5 scale-out lag, node A to B", metric = "p50", unit = "us", better = "lower" },
	lag99 = { name = "5 scale-out lag, node A to B", metric = "p99", unit = "us", better = "lower" },
}

local ctx = {
	peers = here .. "/peers",
	tools = here .. "/../tools",
	plugin = o.build .. "/plugins/moonlog_jetstream.so",
	moonlog = o.build .. "/moonlog",
	pb = o.build .. "/moonlog-peerbench",
}
function ctx.freeport()
	return tonumber((sh.run(sh.quote(ctx.pb) .. " freeport")))
end

local function want(system)
	return not o.only or ("," .. o.only .. ","):find("," .. system .. ",", 1, true)
end

-- Runs the peer client once; returns its figures or nil and the reason. port: a
-- number, or "P,P,..." for the servers of a cluster.
local function pb(client, workload, port, args)
	local cmd = ("timeout 600 %s %s %s --port %s %s"):format(sh.quote(ctx.pb), client, workload,
		port, args or "")
	local out, ok = sh.run(cmd)
	if not ok then
		return nil, (out:match("([^\n]+)\n*$") or "failed")
	end
	return sh.kv(out)
end

local rows = {}
local function add(w, system, setting, values, note, ceiling)
	rows[#rows + 1] = R.row(w, system, setting, values, note)
	local r = rows[#rows]
	r.index = #rows
	r.ceiling = ceiling
	io.write(string.format("  %-22s %-10s %-44s %s\n", w.name .. " " .. w.metric, system, setting,
		r.median and string.format("%.1f %s", r.median, w.unit) or (note or "")))
	io.flush()
end

local function failed(why)
	return "failed: " .. why
end

--[[
Measurements are interleaved: every configuration's server runs at once, and
each repetition of a workload goes round all of them in turn (after one warm-up
run each), so that a slow minute of a shared machine falls on every system
alike instead of on whichever happened to be measured then. A job is one system
on one workload: `run` returns its figures; `keys` are the ones kept, the i-th
to the i-th of `rows` (the first key to every row when there is one key only).
]]
local function interleaved(jobs, reps)
	for _, j in ipairs(jobs) do
		j.values = {}
		for i = 1, #j.rows do
			j.values[i] = {}
		end
		if j.warm and not j.err then
			local _, err = j.warm()
			j.err = err
		end
	end
	for _ = 1, reps do
		for _, j in ipairs(jobs) do
			if not j.err then
				local f, err = j.run()
				for i, v in ipairs(f and j.values or {}) do
					v[#v + 1] = f[j.keys[i] or j.keys[1]]
				end
				j.err = err
				sh.sleep(0.2) -- the last run's writes settle before the next system's run
			end
		end
	end
	for _, j in ipairs(jobs) do
		for i, w in ipairs(j.rows) do
			add(w, j.system, j.setting, not j.err and j.values[i] or nil, j.err and failed(j.err),
				j.ceiling)
		end
	end
end

-- A job running `moonlog-peerbench CLIENT WORKLOAD` against one server.
local function pb_job(srv, rows, workload, args, warm_args, keys)
	local function call(a)
		return function() return pb(srv.cfg.client, workload, srv.port, a) end
	end
	return { system = srv.cfg.system, setting = srv.cfg.setting, ceiling = srv.cfg.ceiling,
		rows = rows, run = call(args),
		warm = warm_args and call(warm_args), keys = keys or { "events_per_s" }, err = srv.err }
end

local function bench_appends(servers)
	for _, n in ipairs(P.conns) do
		local jobs = {}
		local args = ("--conns %d --window %d --seconds "):format(n, P.window)
		for _, srv in ipairs(servers) do
			jobs[#jobs + 1] = pb_job(srv, { n == 1 and W.append1 or W.append64 }, "append",
				args .. P.seconds, args .. P.warm)
		end
		interleaved(jobs, P.reps)
	end
end

-- Workload 3 for moonlog: its projection catch-up, in process (`moonlog bench replay`).
local function ml_fold_job()
	local args = ("replay --events %d --baseline 10000 --dir %s"):format(P.count,
		sh.quote(o.tmp .. "/moonlog-bench-replay"))
	local run = function() return moonlog.bench(ctx, "replay", args, "events_per_s") end
	return { system = "moonlog", setting = "moonlog replay, in process", rows = { W.fold },
		run = run, warm = run, keys = { "events_per_s" },
		err = not moonlog.detect(ctx).replay and "needs `moonlog bench replay`" or nil }
end

-- Workload 2: `read` pages, one request in flight (JetStream's read is its pull
-- consumer, which keeps several); `consume` is a system's consumer where it has
-- one that does not page (moonlog: a subscription from position 1). Then
-- workload 3, on the servers that fold in Lua, and moonlog's in process.
local function bench_reads(servers)
	local jobs, folds = {}, {}
	local args = ("--count %d --chunk %d"):format(P.count, P.chunk)
	for _, srv in ipairs(servers) do
		if srv.cfg.reads then
			local c = srv.cfg.client
			local _, err = pb(c, "load", srv.port, ("--count %d --conns 8 --window 64"):format(P.count))
			srv.err = err
			-- pages fill the paged row, and the consumer row of the systems that only page
			local rows = c == "moonlog" and { W.paged } or c == "nats" and { W.read } or
				{ W.read, W.paged, W.paged3 }
			jobs[#jobs + 1] = pb_job(srv, rows, "read", args, args)
			if c == "moonlog" then
				local fargs = args .. " --fields position,stream,data"
				jobs[#jobs + 1] = pb_job(srv, { W.paged3 }, "read", fargs, fargs)
				jobs[#jobs + 1] = pb_job(srv, { W.read }, "consume", args, args)
			end
			if srv.cfg.fold then
				local fargs = ("--count %d --fold-file %s"):format(P.count,
					sh.quote(ctx.peers .. "/redis-fold.lua"))
				folds[#folds + 1] = pb_job(srv, { W.fold }, "fold", fargs, fargs)
			end
			srv.err = nil
		end
	end
	interleaved(jobs, P.reps)
	if want("moonlog") then
		folds[#folds + 1] = ml_fold_job()
	end
	interleaved(folds, P.reps)
end

local function bench_latency(servers)
	local jobs = {}
	local args = ("--count %d --rate %d"):format(P.lat_count, P.rate)
	local warm = ("--count %d --rate %d"):format(P.lat_count // 5, P.rate)
	for _, srv in ipairs(servers) do
		if not srv.cfg.ceiling then
			jobs[#jobs + 1] = pb_job(srv, { W.p50, W.p99 }, "latency", args, warm,
				{ "p50_us", "p99_us" })
		end
	end
	interleaved(jobs, P.lat_reps)
end

-- Starts every configuration asked for, each on its own port in its own folder.
local function start_all(tmp)
	local servers = {}
	for i, cfg in ipairs(peers.all) do
		if want(cfg.system) then
			local dir = ("%s/%s-%d"):format(tmp, cfg.system, i)
			os.execute("mkdir -p " .. sh.quote(dir))
			local port = ctx.freeport()
			print(("%s (%s) on 127.0.0.1:%d in %s"):format(cfg.system, cfg.setting, port, dir))
			local pid = cfg.start(ctx, dir, port)
			local _, err = pb(cfg.client, "wait", port, "--seconds 30")
			if err then
				add(W.append1, cfg.system, cfg.setting, nil, failed("did not start: " .. err))
				sh.stop(pid)
			else
				servers[#servers + 1] = { cfg = cfg, port = port, pid = pid, dir = dir }
			end
		end
	end
	return servers
end

local function stop_all(servers)
	for _, srv in ipairs(servers) do
		sh.stop(srv.pid)
		os.execute("rm -rf " .. sh.quote(srv.dir))
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
	local servers = start_all(tmp)
	bench_appends(servers)
	bench_reads(servers)
	bench_latency(servers)
	stop_all(servers)
	if want("scale") or (want("moonlog") and want("jetstream")) then
		scale.bench(ctx, tmp .. "/scale", P, { pb = pb, pb_job = pb_job, interleaved = interleaved,
			add = add, failed = failed, W = W })
	end
	local inproc
	if want("moonlog") then
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
