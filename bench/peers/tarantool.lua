-- Tarantool for the benchmarks. bench/run.lua runs `tarantool tarantool.lua`
-- with PB_PORT (listen on 127.0.0.1), PB_DIR (a fresh temporary folder) and
-- PB_WAL_MODE: 'fsync' (the WAL is fsynced after each write, before the
-- commit is acknowledged) or 'write' (Tarantool's default: written to the OS,
-- not fsynced). Everything not set here is Tarantool's default.
local fiber = require('fiber')

box.cfg{
	listen = '127.0.0.1:' .. os.getenv('PB_PORT'),
	work_dir = os.getenv('PB_DIR'),
	wal_mode = os.getenv('PB_WAL_MODE') or 'write',
	memtx_memory = 1024 * 1024 * 1024, -- room for the 1M-event space (default 256 MB)
	net_msg_max = 4096, -- the client keeps up to 64 x 32 requests in flight (default 768)
	log_level = 4,
}

-- The event space: [id, key, amount, note], a TREE primary key on id (memtx).
box.schema.user.grant('guest', 'read,write,execute', 'universe', nil, { if_not_exists = true })
local ev = box.schema.space.create('ev', { id = 512, if_not_exists = true, format = {
	{ name = 'id', type = 'unsigned' }, { name = 'key', type = 'string' },
	{ name = 'amount', type = 'unsigned' }, { name = 'note', type = 'string' },
} })
ev:create_index('pk', { type = 'TREE', parts = { 'id' }, if_not_exists = true })

function ml_reset()
	box.space.ev:truncate()
end

-- Workload 3: a Lua fold over the space, summing amount by key.
function ml_fold()
	local sums = {}
	for _, t in box.space.ev:pairs() do
		local k = t[2]
		sums[k] = (sums[k] or 0) + t[3]
	end
	return sums
end

-- Workload 4: a live subscription as a long poll. A commit of an insert wakes the
-- waiters (box.on_commit runs after the WAL write, so nothing is delivered before
-- it is durable under the chosen wal_mode); ml_wait(last, timeout) returns the
-- tuples after id `last`, waiting up to `timeout` seconds for one to arrive.
local arrived = fiber.cond()
box.space.ev:on_replace(function()
	box.on_commit(function() arrived:broadcast() end)
end)

function ml_wait(last, timeout)
	local deadline = fiber.clock() + timeout
	while true do
		local r = box.space.ev:select({ last }, { iterator = 'GT', limit = 1000 })
		local left = deadline - fiber.clock()
		if #r > 0 or left <= 0 then
			return r
		end
		arrived:wait(left)
	end
end
