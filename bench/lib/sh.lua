-- sh.lua - the few shell helpers the bench harness needs: run a command and
-- capture its output, start a server in the background, stop it by its pid.
local sh = {}

function sh.quote(s)
	return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs cmd; returns its stdout and stderr together, and whether it exited 0.
function sh.run(cmd)
	local f = assert(io.popen("(" .. cmd .. ") 2>&1", "r"))
	local out = f:read("a")
	local ok, _, code = f:close()
	return out, ok == true, code
end

-- The first line of a command's output (version strings and the like).
function sh.line(cmd)
	local out = sh.run(cmd)
	return (out:match("^[^\n]*") or ""):gsub("%s+$", "")
end

function sh.sleep(s)
	os.execute("sleep " .. s)
end

-- Starts `cmd` in the background with its output in `log`; returns its pid.
function sh.spawn(cmd, log, env)
	local pidfile = log .. ".pid"
	local prefix = ""
	for k, v in pairs(env or {}) do
		prefix = prefix .. k .. "=" .. sh.quote(v) .. " "
	end
	os.execute(prefix .. "exec " .. cmd .. " >" .. sh.quote(log) .. " 2>&1 & echo $! >" .. sh.quote(pidfile))
	local f = assert(io.open(pidfile))
	local pid = tonumber(f:read("l"))
	f:close()
	return pid
end

local function alive(pid)
	local f = io.open("/proc/" .. pid .. "/stat")
	if not f then
		return false
	end
	local st = f:read("l") or ""
	f:close()
	return not st:match("^%d+ %b() Z")
end

-- SIGTERM, up to 15 s for a clean exit, then SIGKILL: only this pid.
function sh.stop(pid)
	if not pid then
		return
	end
	os.execute("kill " .. pid .. " 2>/dev/null")
	for _ = 1, 150 do
		if not alive(pid) then
			return
		end
		sh.sleep(0.1)
	end
	os.execute("kill -9 " .. pid .. " 2>/dev/null")
end

-- key=value pairs of the last line that has them.
function sh.kv(out)
	local r
	for line in out:gmatch("[^\n]+") do
		local t = {}
		for k, v in line:gmatch("([%w_]+)=([%d%.]+)") do
			t[k] = tonumber(v)
		end
		if next(t) then
			r = t
		end
	end
	return r
end

return sh
