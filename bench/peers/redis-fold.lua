#!lua name=mlbench
-- The fold of workload 3 as a Redis Function: walks the stream KEYS[1] with
-- XRANGE in chunks of 1000 inside the server and sums field "a" by field "k".
-- Returns a flat array: key, sum, key, sum, ...
local function fold(keys, args)
	local sums, from = {}, '-'
	while true do
		local chunk = redis.call('XRANGE', keys[1], from, '+', 'COUNT', 1000)
		local n = #chunk
		if n == 0 then break end
		for i = 1, n do
			local f = chunk[i][2] -- { 'k', key, 'a', amount, 'n', note }
			local k = f[2]
			sums[k] = (sums[k] or 0) + tonumber(f[4])
		end
		from = '(' .. chunk[n][1]
	end
	local out = {}
	for k, v in pairs(sums) do
		out[#out + 1] = k
		out[#out + 1] = v
	end
	return out
end

redis.register_function{ function_name = 'mlbench_fold', callback = fold,
	flags = { 'no-writes' } }
