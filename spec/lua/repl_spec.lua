-- moonlog.repl: showing values, evaluating chunks, completing names, the globals.
local repl = require "moonlog.repl"
local core = require "moonlog.core"
local files = require "support.files"

describe("repl.show", function()
  it("prints scalars like Lua, strings quoted", function()
    assert.equal('42\t"a\\nb"\tnil\ttrue', repl.show(42, "a\nb", nil, true))
  end)

  it("prints short tables on one line with sorted keys", function()
    assert.equal('{a=1, b={1, 2}, ["x-y"]="s"}', repl.show { b = { 1, 2 }, a = 1, ["x-y"] = "s" })
  end)

  it("nests and indents long tables, marks cycles, cuts long ones with a count", function()
    local t = { name = string.rep("n", 40), list = {}, more = { deep = string.rep("d", 60) } }
    t.self = t
    for i = 1, 120 do t.list[i] = i * 1000 end
    local s = repl.show(t)
    assert.matches("^{\n  list = {\n    1000,\n", s)
    assert.matches("… 70 more\n", s, 1, true)
    assert.matches("self = <cycle>", s, 1, true)
    assert.matches('\n  more = {deep="ddd', s, 1, true)
  end)

  it("prints events one per line", function()
    local evs = {
      { position = 7, stream = "account-1", version = 2, type = "Deposited", data = { amount = 5 }, meta = {} },
      { position = 9, stream = "account-2", version = 1, type = "Opened", data = { owner = "ada" }, meta = { k = "v" } },
    }
    assert.equal('#7 account-1@2 Deposited {amount=5}\n#9 account-2@1 Opened {owner="ada"}  meta={k="v"}',
      repl.show(evs))
  end)
end)

describe("repl.eval", function()
  local dir, log, env
  before_each(function()
    dir = files.tmpdir(); log = assert(core.log.open { dir = dir }); env = repl.env { log = log }
  end)
  after_each(function() log.close(); files.remove(dir) end)

  it("prints an expression's value, runs statements, keeps locals out and globals in", function()
    assert.same({ true, "3" }, { repl.eval(env, "1 + 2") })
    assert.same({ true, "" }, { repl.eval(env, "x = 10") })
    assert.same({ true, "10" }, { repl.eval(env, "x") })
    assert.same({ true, "hello\t1" }, { repl.eval(env, "print('hello', 1)") })
  end)

  it("says when a chunk is incomplete, so the REPL reads another line", function()
    local ok, msg, what = repl.eval(env, "function f(a)\n  return a * 2")
    assert.is_false(ok); assert.equal("incomplete", what); assert.matches("<eof>", msg)
    assert.same({ true, "" }, { repl.eval(env, "function f(a)\n  return a * 2\nend") })
    assert.same({ true, "8" }, { repl.eval(env, "f(4)") })
  end)

  it("reports errors with the message and a short traceback", function()
    local ok, msg = repl.eval(env, "local function g() error('boom') end\ng()")
    assert.is_false(ok)
    assert.matches("repl:1: boom", msg, 1, true)
    assert.matches("in local 'g'", msg, 1, true)
    local ok2, msg2, what = repl.eval(env, "1 +* 2")
    assert.is_false(ok2); assert.is_nil(what); assert.matches("unexpected symbol", msg2)
  end)

  it("has the log, streams and help as globals", function()
    assert(repl.eval(env, "log.append('account-1', {type = 'Opened', data = {owner = 'ada'}})"))
    assert(repl.eval(env, "log.append('account-1', {type = 'Deposited', data = {amount = 5}}, 1)"))
    local ok, text = repl.eval(env, "log.read('account-1')")
    assert.is_true(ok)
    assert.matches("#2 account%-1@2 Deposited {amount=5}", text)
    assert.same({ true, '{["account-1"]=2}' }, { repl.eval(env, "streams('account')") })
    assert.same({ true, "1" }, { repl.eval(env, "streams.count()") })
    assert.same({ true, "2" }, { repl.eval(env, "log.head()") })
    local ok2, refused = repl.eval(env, "log.append('account-1', {type = 'X'}, 0)")
    assert.is_true(ok2)   -- a refusal is an answer: nil, the message, the code, the version
    assert.equal('nil\t"version conflict on account-1: expected no stream, but its version is 2"\t"conflict"\t2',
      refused)
    local bad, err = repl.eval(env, "assert(log.append('account-1', {type = 'X'}, 0))")
    assert.is_false(bad); assert.matches("version conflict on account%-1", err)
    local _, h = repl.eval(env, "help()")
    assert.matches("log.append(stream, event | {events...} [, expected])", h, 1, true)
    local _, hl = repl.eval(env, "help(log)")
    assert.matches("expected is any, no_stream, exists or a version", hl, 1, true)
  end)

  it("hands a tail back to the front end instead of blocking", function()
    local ok, _, tail = repl.eval(env, "log.tail('account-*')")
    assert.is_true(ok)
    assert.equal("account-*", tail.pattern)
    assert.equal(1, tail.from)
  end)

  it("refuses binary chunks and has no io", function()
    assert.same({ true, "nil" }, { repl.eval(env, "io") })
    local ok, msg = repl.eval(env, string.dump(function() end))
    assert.is_false(ok)
  end)
end)

describe("repl.complete", function()
  it("completes globals, fields and methods", function()
    local dir = files.tmpdir()
    local log = assert(core.log.open { dir = dir })
    local env = repl.env { log = log }
    assert.same({ "load", "local", "log" }, repl.complete(env, "lo"))
    assert.same({ "log.append" }, repl.complete(env, "log.app"))
    assert.same({ "x = streams.count" }, repl.complete(env, "x = streams.co"))
    assert.same({ "string.format" }, repl.complete(env, "string.form"))
    local s = setmetatable({ queue = 3 }, { __index = { query = function() end, get = function() end } })
    env.balances = s
    assert.same({ "balances:query" }, repl.complete(env, "balances:qu")) -- after ':' methods only
    assert.same({ "balances.query", "balances.queue" }, repl.complete(env, "balances.qu"))
    assert.same({}, repl.complete(env, "nothing.he"))
    log.close(); files.remove(dir)
  end)
end)
