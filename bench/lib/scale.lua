-- scale.lua - workload 5, scale-out: two moonlog nodes on one replicated log,
-- on a 3-node NATS JetStream cluster on 127.0.0.1, beside the raw JetStream
-- rate of the same cluster, in the same run, with the same client.
--
--   a  durable appends through both nodes (`moonlog serve --replicate URLS
--      --fsync always`), 64 connections spread over them, 32 in flight on each:
--      events/s and each append's time to its answer, p50/p99
--   b  JetStream alone on the same cluster: publishes with acks to an R3 file
--      stream made for it (stream EV), 64 connections spread over the three
--      servers, 32 in flight on each: messages/s (one message is one event)
--   c  the lag from an append on node A to its delivery on a live
--      subscription on node B, one publisher at 1000 events/s: p50/p99
--
-- The cluster (tools/nats-cluster.sh) and the nodes live in their own folder
-- under the run's temporary folder, on free ports; every process and the
-- folder are removed at the end, also when a step fails.
local sh = require("sh")

local M = {}

local NODE_SETTING = "2 nodes, --fsync always, R3 journal"
local RAW_SETTING = "raw: R3 file stream, publish + ack"

-- The cluster tool, under `timeout` so that a stuck step ends the run.
local function cluster(ctx, st, args)
	return sh.run(("timeout 120 %s %s --dir %s"):format(sh.quote(ctx.tools .. "/nats-cluster.sh"),
		args, sh.quote(st.dir .. "/nats")))
end

local function start(ctx, st, pb)
	if not io.open(ctx.plugin) then
		error("needs the JetStream plugin " .. ctx.plugin .. " (libnats-dev: tools/deps.sh)", 0)
	end
	os.execute("mkdir -p " .. sh.quote(st.dir))
	local base = sh.line(sh.quote(ctx.pb) .. " freeport --span 23")
	local out, ok = cluster(ctx, st, "up --port " .. base)
	st.cluster = true
	if not ok then
		error("the NATS cluster did not start: " .. (out:match("([^\n]+)\n*$") or ""), 0)
	end
	local urls = sh.line(("%s urls --dir %s"):format(sh.quote(ctx.tools .. "/nats-cluster.sh"),
		sh.quote(st.dir .. "/nats")))
	st.nats = ("%d,%d,%d"):format(base, base + 1, base + 2)
	local ports = {}
	for _, name in ipairs({ "a", "b" }) do
		local port = ctx.freeport()
		local dir = st.dir .. "/node-" .. name
		local pid = sh.spawn(("%s serve --data %s --listen 127.0.0.1:%d --http off --fsync always " ..
			"--quiet --replicate %s"):format(sh.quote(ctx.moonlog), sh.quote(dir), port, urls),
			st.dir .. "/node-" .. name .. ".log")
		st.pids[#st.pids + 1] = pid
		ports[#ports + 1] = port
	end
	st.nodes = table.concat(ports, ",")
	print(("scale-out: NATS cluster on 127.0.0.1:%s, moonlog nodes on %s, in %s"):format(
		st.nats, st.nodes, st.dir))
	local _, err = pb("moonlog", "wait", st.nodes, "--seconds 60")
	if err then
		error("the moonlog nodes did not start: " .. err, 0)
	end
end

local function stop(ctx, st)
	for _, pid in ipairs(st.pids) do
		sh.stop(pid)
	end
	if st.cluster then
		cluster(ctx, st, "down")
	end
	os.execute("rm -rf " .. sh.quote(st.dir))
end

-- Runs workload 5 and adds its rows; h holds the harness's helpers (run.lua).
function M.bench(ctx, dir, P, h)
	local W = h.W
	local st = { dir = dir, pids = {} }
	local ok, err = pcall(function()
		start(ctx, st, h.pb)
		local node = { cfg = { client = "moonlog", system = "moonlog", setting = NODE_SETTING },
			port = st.nodes }
		local raw = { cfg = { client = "nats", system = "jetstream", setting = RAW_SETTING },
			port = st.nats }
		local args = ("--conns 64 --window %d --seconds "):format(P.window)
		local rows = { W.s_append, W.s_p50, W.s_p99 }
		local keys = { "events_per_s", "p50_us", "p99_us" }
		h.interleaved({
			h.pb_job(node, rows, "append", args .. P.seconds, args .. P.warm, keys),
			h.pb_job(raw, rows, "append", args .. P.seconds .. " --replicas 3",
				args .. P.warm .. " --replicas 3", keys),
		}, P.reps)
		local lat = ("--count %d --rate %d"):format(P.lat_count, P.rate)
		local warm = ("--count %d --rate %d"):format(P.lat_count // 5, P.rate)
		h.interleaved({ h.pb_job(node, { W.lag50, W.lag99 }, "latency", lat, warm,
			{ "p50_us", "p99_us" }) }, P.lat_reps)
	end)
	stop(ctx, st)
	if not ok then
		h.add(W.s_append, "moonlog", NODE_SETTING, nil, h.failed(tostring(err)))
	end
end

return M
