-- End-to-end: what the RPC dispatcher checks before a method runs (net/rpc.c's method
-- table): the number of params, admin-only methods, the methods allowed before auth, and
-- the unknown method's answer, which lists every method. The messages and codes are the
-- ones clients have always been given; params past those a method reads are ignored.
local server = require "support.server"
local client = require "moonlog.client"

local METHODS = { "append", "read", "subscribe", "unsubscribe", "ack", "delete", "set_metadata", "metadata",
                  "stats", "auth", "eval",
                  "complete", "backup", "scavenge", "command", "query", "get", "state", "scripts", "reload", "parked",
                  "replay_parked", "dry_run" }

-- Each method's usage, which names it.
local USAGE = {}
for _, usage in ipairs {
  "append(stream, events, expected): stream must be a string",
  'read(stream, from, limit, backwards, fields): stream must be a string (or "$all")',
  'subscribe(pattern, from, group): give a pattern such as "*"',
  "unsubscribe(id): id is a number",
  "ack(group, position): a group name and a position",
  "delete(stream, expected, hard): stream must be a string, hard a boolean",
  "set_metadata(stream, meta, expected): stream must be a string, meta a map",
  "metadata(stream): stream must be a string",
  "auth(token): the token is a string",
  "eval(chunk): the chunk is a string",
  "complete(line): the line is a string",
  "command(decider, name, args): names are strings, args a map",
  "query(projection, name, args...): names are strings",
  "get(stream) or get(reducer, stream): strings",
  "state(script, key): the script's name, an optional key",
  "reload(name): a script's name or file; reload() for all",
  "parked(handler): the handler's name",
  "replay_parked(handler): the handler's name",
  "dry_run(name, file, options): a script's name, the candidate's path (or nil), a map",
} do USAGE[usage:match("^[%w_]+")] = usage end

local NO_SCRIPTS = "this server hosts no scripts (start it with --scripts DIR)"

local function refused_as(c, expect_code, expect_message, method, ...)
  local ok, err = c:call(method, ...)
  assert.is_nil(ok, method)
  assert.same({ expect_code, expect_message }, { err.code, err.message })
end

describe("the RPC method table", function()
  after_each(server.stop_all)

  it("answers too few params, too many, and params of the wrong kind with the method's usage", function()
    local s = server.start()
    local c, admin = s.client, s:admin()
    local function usage(method, ...) refused_as(c, "bad_request", USAGE[method], method, ...) end
    -- too few
    usage("append")
    usage("append", "s-1")
    usage("read")
    usage("subscribe")
    usage("unsubscribe")
    usage("ack", "g")
    usage("delete")
    usage("set_metadata", "s-1")
    usage("metadata")
    usage("auth")
    usage("command", "account")
    usage("query", "balances")
    usage("get")
    usage("state")
    usage("parked")
    usage("replay_parked")
    usage("dry_run")
    refused_as(admin, "bad_request", USAGE.eval, "eval")
    refused_as(admin, "bad_request", USAGE.complete, "complete")
    -- too many, where a method has a bound
    usage("get", "a", "b", "c")
    usage("delete", "a", nil, false, 1)
    usage("set_metadata", "a", {}, nil, 1)
    usage("metadata", "a", "b")
    usage("reload", "a", "b")
    usage("parked", "a", "b")
    usage("replay_parked", "a", nil)
    usage("dry_run", "a", nil, nil, nil)
    -- of the wrong kind
    usage("append", 42, { { type = "T" } })
    usage("read", 1)
    usage("unsubscribe", "1")
    usage("ack", "g", "1")
    usage("delete", 1)
    usage("delete", "s-1", nil, "yes")
    usage("set_metadata", "s-1", 5)
    usage("metadata", 1)
    usage("auth", 5)
    usage("command", "account", 5)
    usage("command", "account", "Open", { 1, 2 })
    usage("query", 1, "total")
    usage("get", 1)
    usage("state", true)
    usage("reload", 1)
    usage("parked", 1)
    usage("dry_run", 1)
    usage("dry_run", "balances", 1)
    usage("dry_run", "balances", nil, "apply")
    refused_as(admin, "bad_request", USAGE.eval, "eval", 1)
    refused_as(admin, "bad_request", USAGE.complete, "complete", {})
    -- the right count and kinds reach the method, which finds no scripts here
    refused_as(c, "not_found", NO_SCRIPTS, "query", "balances", "total")
    refused_as(c, "not_found", NO_SCRIPTS, "state", "counter")
    refused_as(c, "not_found", NO_SCRIPTS, "reload")
    refused_as(c, "not_found", NO_SCRIPTS, "replay_parked", "echo")
    refused_as(c, "not_found", NO_SCRIPTS, "dry_run", "balances", "/tmp/b.lua", { events = 5 })
    refused_as(c, "not_found", "this server hosts no scripts", "get", "ping-1")
    -- params past those a method reads are ignored, as they always were
    assert(c:call("append", "s-1", { type = "T" }, nil, "more", "and more"))
    assert.equal(1, #assert(c:call("read", "s-1", 1, 10, false, nil, "more")))
    assert(c:call("stats", "more"))
    assert.same({}, assert(c:call("scripts", "more")))
    local r = assert(admin:call("eval", "return 1 + 1", "more"))
    assert.same({ 2 }, r.values)
    admin:close()
  end)

  it("keeps eval, complete and backup to the admin socket", function()
    local s = server.start()
    for _, m in ipairs { "eval", "complete", "backup" } do
      -- refused before its params are looked at
      refused_as(s.client, "refused",
        m .. " is only available on the admin socket (DATA/moonlog.sock), not over TCP", m)
      refused_as(s.client, "refused",
        m .. " is only available on the admin socket (DATA/moonlog.sock), not over TCP", m, "x")
    end
    local admin = s:admin()
    assert.same({ "print" }, assert(admin:call("complete", "prin")))
    admin:close()
  end)

  it("lets only auth through before auth(token), unknown methods included", function()
    local s = server.start { token = "s3cret-token" }
    local c = assert(client.connect("127.0.0.1:" .. s.rpc_port))
    local unauthorized = "unauthorized: this server needs auth(token) first"
    for _, m in ipairs(METHODS) do
      if m ~= "auth" then refused_as(c, "refused", unauthorized, m) end
    end
    refused_as(c, "refused", unauthorized, "frobnicate")
    refused_as(c, "bad_request", USAGE.auth, "auth")
    assert(c:auth("s3cret-token"))
    assert(c:stats())
    c:close()
  end)

  it("answers an unknown method with every method there is", function()
    local s = server.start()
    local ok, err = s.client:call("frobnicate", 1)
    assert.is_nil(ok)
    assert.equal("not_found", err.code)
    assert.equal("unknown method 'frobnicate'; methods: " .. table.concat(METHODS, ", "), err.message)
    -- a long name is cut in the message
    _, err = s.client:call(("x"):rep(300))
    assert.equal("unknown method '" .. ("x"):rep(64) .. "'; methods: " .. table.concat(METHODS, ", "),
      err.message)
  end)
end)
