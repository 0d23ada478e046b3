-- peers.lua - moonlog and the systems it is measured against, one entry per
-- server configuration: how to start it on 127.0.0.1 in a fresh folder with its
-- configuration file from bench/peers/, and which workloads it takes part in.
-- Every entry is driven by the same client (moonlog-peerbench, bench/client/).
local sh = require("sh")

local peers = {}

local function redis(setting, conf, durable)
	return {
		system = "redis", client = "redis", setting = setting, durable = durable,
		fold = true,
		start = function(ctx, dir, port)
			return sh.spawn(("redis-server %s --port %d --dir %s"):format(
				sh.quote(ctx.peers .. "/" .. conf), port, sh.quote(dir)), dir .. "/server.log")
		end,
	}
end

local function tarantool(setting, wal_mode, durable)
	return {
		system = "tarantool", client = "tarantool", setting = setting, durable = durable,
		fold = true,
		start = function(ctx, dir, port)
			return sh.spawn("tarantool " .. sh.quote(ctx.peers .. "/tarantool.lua"),
				dir .. "/server.log", { PB_PORT = port, PB_DIR = dir, PB_WAL_MODE = wal_mode })
		end,
	}
end

local nats = {
	system = "jetstream", client = "nats", durable = false,
	setting = "file store, no per-write fsync (2.9: none offered)",
	fold = false,
	start = function(ctx, dir, port)
		return sh.spawn(("nats-server -c %s -a 127.0.0.1 -p %d -sd %s"):format(
			sh.quote(ctx.peers .. "/nats.conf"), port, sh.quote(dir .. "/js")), dir .. "/server.log")
	end,
}

local function moonlog_start(fsync)
	return function(ctx, dir, port)
		return sh.spawn(("%s serve --data %s --listen 127.0.0.1:%d --http off --fsync %s --quiet")
			:format(sh.quote(ctx.moonlog), sh.quote(dir .. "/data"), port, fsync), dir .. "/server.log")
	end
end

local moonlog = {
	system = "moonlog", client = "moonlog", durable = true,
	setting = "--fsync always (default)",
	fold = false, -- its fold is the projection catch-up, measured in process (run.lua)
	start = moonlog_start("always"),
}

-- Not a configuration anyone should run: moonlog with no sync at all, in workload 1
-- only, beside the durable one. It shows what the machine leaves for appends when
-- syncing costs nothing (the client and the server share its cores), so that a
-- durable figure can be read against it. No ratio is taken against it (report.lua).
local moonlog_nosync = {
	system = "moonlog", client = "moonlog", durable = false, ceiling = true,
	setting = "--fsync never (no sync: ceiling, not durable)",
	fold = false,
	start = moonlog_start("never"),
}

-- The read and fold workloads do not depend on the write durability: they run
-- once per system, on the entry marked `reads`.
peers.all = {
	moonlog,
	redis("appendfsync always", "redis-always.conf", true),
	redis("appendfsync everysec (default)", "redis-everysec.conf", false),
	nats,
	tarantool("wal_mode fsync", "fsync", true),
	tarantool("wal_mode write (default)", "write", false),
	moonlog_nosync, -- appends only
}
peers.all[1].reads = true
peers.all[3].reads = true
peers.all[4].reads = true
peers.all[6].reads = true

function peers.versions()
	return {
		redis = sh.line("redis-server --version"),
		jetstream = sh.line("nats-server --version"),
		tarantool = sh.line("tarantool --version"),
	}
end

return peers
