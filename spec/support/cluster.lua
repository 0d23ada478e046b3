-- A real 3-node NATS JetStream cluster on loopback ports (tools/nats-cluster.sh) and
-- moonlog nodes replicating through it (plugins/jetstream, docs/scale-out.md), for the
-- scale-out specs. Each spec file starts one cluster (setup/teardown); each test gives its
-- nodes a stream of their own, so tests do not see each other's events.
local server = require "support.server"
local socket = require "socket"
local assert = require "luassert"

local sh, q = server.sh, server.quote
local SRC = os.getenv("MOONLOG_SOURCE_DIR") or "."
local BIN = os.getenv("MOONLOG_BIN")
local TOOL = SRC .. "/tools/nats-cluster.sh"
local PLUGIN = BIN and (BIN:gsub("[^/]*$", "") .. "plugins/moonlog_jetstream.so")

local cluster = {}

-- Is everything there: the binary, its plugin and nats-server?
cluster.available = BIN and io.open(PLUGIN or "") and sh("command -v nats-server") ~= "" or false

-- What to say when a spec cannot run: pending(cluster.missing).
cluster.missing = "needs nats-server and the JetStream plugin: tools/deps.sh"

-- A base port whose 23 ports after it look free (clients +0..2, routes +10..12, http +20..22).
local function pick_base()
  for _ = 1, 50 do
    local base = math.random(20000, 50000)
    local free = true
    for _, off in ipairs { 0, 1, 2, 10, 11, 12, 20, 21, 22 } do
      local s = socket.bind("127.0.0.1", base + off)
      if not s then free = false break end
      s:close()
    end
    if free then return base end
  end
  error("no free ports for a NATS cluster")
end

-- Runs tools/nats-cluster.sh ARGS on this cluster: its exit status and output.
function cluster.run(args)
  local out = sh(("%s %s --dir %s 2>&1; echo \"rc=$?\""):format(q(TOOL), args, q(cluster.dir)))
  local text, rc = out:match("^(.-)rc=(%d+)%s*$")
  return tonumber(rc), text
end

function cluster.up()
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
  cluster.dir = server.tmpdir()
  local rc, text = cluster.run("up --port " .. pick_base())
  assert(rc == 0, "the NATS cluster did not start: " .. text)
  cluster.urls = (select(2, cluster.run("urls")):gsub("%s+$", ""))
end

function cluster.down()
  if cluster.dir then
    cluster.run("down")
    os.execute("rm -rf " .. q(cluster.dir))
    cluster.dir = nil
  end
end

-- A moonlog node on the journal `stream`; opts.args are more `serve` arguments, opts.data
-- a data folder to start on (a new one by default), opts.scripts a scripts folder of its
-- own, filled as server.start's opts.scripts; opts.env more environment for it.
function cluster.node(stream, opts)
  opts = opts or {}
  local args = { "--replicate", cluster.urls, "--replicate-stream", stream }
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  return server.start { args = args, data = opts.data, scripts = opts.scripts, start_timeout = 60,
                        env = opts.env }
end

function cluster.client(s) return s:connect { timeout = 60 } end

-- $all as a list of what must be the same on every node.
function cluster.all_of(c)
  local out = {}
  for _, e in ipairs(assert(c:read_all("$all"))) do
    out[#out + 1] = { e.position, e.stream, e.version, e.type, e.id, e.time, e.data }
  end
  return out
end

-- Waits until both nodes hold at least n events, the same ones, then checks them: the same
-- $all, no gap, no event twice. Returns $all.
function cluster.same_all(a, b, n)
  local x, y
  server.eventually(function()
    x, y = cluster.all_of(a), cluster.all_of(b)
    return #x >= n and #x == #y
  end, 30, n .. " events on both")
  assert.same(x, y)
  for i, e in ipairs(x) do assert.equal(i, e[1], "no gap in $all") end
  local ids = {}
  for _, e in ipairs(x) do
    assert.is_nil(ids[e[5]], "no event twice")
    ids[e[5]] = true
  end
  return x
end

-- Runs `moonlog serve ARGS` with no listeners, to see how it refuses: exit status, output.
function cluster.serve_once(args)
  local out = sh(("env -u LD_PRELOAD %s serve --listen off --http off --admin off %s 2>&1; echo \"rc=$?\"")
    :format(q(BIN), args))
  local text, rc = out:match("^(.-)rc=(%d+)%s*$")
  return tonumber(rc), text
end

return cluster
