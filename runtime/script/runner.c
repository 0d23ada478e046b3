/*
 * runner.c - the host's Lua side: a small chunk, run inside each script's
 * state, that holds the state and calls the definition's methods per kind.
 *
 * The C host asks for one of a few verbs (feed, state, set, get, query,
 * stream, target, initial, decide, show) and never needs to know how a
 * projection's state differs from a reducer's table of states by stream. The chunk is trusted
 * host code: it runs with the definition and the sandbox's require as
 * arguments, and touches no global.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

static const char runner_src[] =
    "local def, require = ...\n"
    "local kind, R = def.kind, {}\n"
    "local ml = require 'moonlog'\n"
    "local pretty = require 'moonlog.pretty'\n"
    /* The DSL's fold, inlined for the plain kinds: it is the hot path of a replay. */
    "local on, any = def.on, def._any\n"
    "if kind == 'projection' then\n"
    /* The state lives in a cell that C reads too: see ml_feed_projection. */
    "  local fold, cell = def.fold, { def:initial() }\n"
    "  function R.feed(e) cell[1] = fold(def, cell[1], e) end\n"
    "  if not def.partition then\n"
    "    R.cell, R.on, R.any = cell, on, any\n"
    "    function R.feed(e)\n"
    "      local h = on[e.type] or any\n"
    "      if h then local r = h(cell[1], e) if r ~= nil then cell[1] = r end end\n"
    "    end\n"
    "  end\n"
    "  function R.state() return cell[1] end\n"
    "  function R.set(s) cell[1] = s end\n"
    "  function R.get(key) if def.partition then return cell[1][key] end return cell[1] end\n"
    "  function R.query(name, ...) return def:query(cell[1], name, ...) end\n"
    "elseif kind == 'handler' then\n"
    "  local handle = def.handle\n"
    "  function R.feed(e) return handle(def, e) end\n"
    "  function R.state() return nil end\n"
    "  function R.set() end\n"
    "  function R.get() return nil end\n"
    "else\n"
    "  local initial, states = def.initial, {}\n"
    "  function R.feed(e)\n"
    "    local stream = e.stream\n"
    "    local s = states[stream]\n"
    "    if s == nil then s = initial(def, stream) end\n"
    "    local h = on[e.type] or any\n"
    "    if h then local r = h(s, e) if r ~= nil then s = r end end\n"
    "    states[stream] = s\n"
    "  end\n"
    "  function R.state() return states end\n"
    "  function R.set(s) states = s end\n"
    "  function R.get(key) return states[key] end\n"
    "end\n"
    "if kind == 'decider' then\n"
    /* The stream; C checks it against `from` and asks def:target when it is not a
       name there, for its message (decide.c). */
    "  local stream_of = def.stream\n"
    "  function R.stream(command, args) return stream_of(args, command) end\n"
    "  function R.target(command, args) return def:target(command, args) end\n"
    "  function R.initial(stream) return def:initial(stream) end\n"
    /* The fold is C's, from these (decide.c): def:fold without a Lua call to dispatch. */
    "  R.on, R.any = on, any\n"
    "  function R.decide(state, command, args)\n"
    "    local result = def:decide(state, command, args)\n"
    "    if ml.is_rejection(result) then return false, result.reason, result.details end\n"
    "    return true, result\n"
    "  end\n"
    "end\n"
    /* Readable Lua: one key per line, sorted, nested tables indented. */
    "local function show(v, indent, out, seen)\n"
    "  if type(v) ~= 'table' then out[#out + 1] = pretty.format(v) return end\n"
    "  if seen[v] then out[#out + 1] = '<cycle>' return end\n"
    "  local keys = pretty.sorted_keys(v)\n"
    "  if #keys == 0 then out[#out + 1] = '{}' return end\n"
    "  seen[v] = true\n"
    "  local inner = indent .. '  '\n"
    "  out[#out + 1] = '{\\n'\n"
    "  for i = 1, #keys do\n"
    "    local k = keys[i]\n"
    "    out[#out + 1] = inner\n"
    "    if math.type(k) ~= 'integer' or k ~= i then\n"
    "      local f = pretty.format({ [k] = true })\n"
    "      out[#out + 1] = f:sub(2, -7) .. ' = '\n"
    "    end\n"
    "    show(v[k], inner, out, seen)\n"
    "    out[#out + 1] = ',\\n'\n"
    "  end\n"
    "  out[#out + 1] = indent .. '}'\n"
    "  seen[v] = nil\n"
    "end\n"
    "function R.show(v) local out = {} show(v, '', out, {}) return table.concat(out) end\n"
    "return R\n";

static void set_kind(lua_State *L, struct ml_script *s, int def)
{
	static const char *const kinds[] = {"reducer", "decider", "projection", "handler"};
	lua_getfield(L, def, "kind");
	const char *k = lua_tostring(L, -1);
	for (int i = 0; i < 4; i++)
		if (k && strcmp(k, kinds[i]) == 0)
			s->kind = (enum ml_script_kind)i;
	lua_pop(L, 1);

	lua_getfield(L, def, "name");
	size_t n;
	const char *name = lua_tolstring(L, -1, &n);
	if (name == NULL || n == 0 || n > 200 || memchr(name, '/', n) || name[0] == '.')
		luaL_error(L, "the definition's name must be 1 to 200 characters with no '/' and "
			      "not starting with '.'");
	free(s->name);
	s->name = ml_xstrndup(name, n);
	lua_pop(L, 1);

	/* What the host reads with ml_script_retries and ml_script_snapshot_every (the DSL
	 * has checked both: integers, retries >= 0 defaulting to 3, snapshot_every >= 1). */
	lua_getfield(L, def, "retries");
	lua_Integer retries = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 3;
	s->retries = s->kind != ML_SCRIPT_DECIDER ? 0 : retries > 1000 ? 1000 : (int)retries;
	lua_getfield(L, def, "snapshot_every");
	s->snapshot_every = lua_isinteger(L, -1) ? (uint64_t)lua_tointeger(L, -1) : 0;
	lua_pop(L, 2);

	s->on_error = 0;
	if (s->kind == ML_SCRIPT_HANDLER) {
		lua_getfield(L, def, "on_error");
		const char *e = lua_tostring(L, -1);
		s->on_error = e && strcmp(e, "skip") == 0 ? 1 : e && strcmp(e, "park") == 0 ? 2 : 0;
		lua_pop(L, 1);
	}
}

/* Checks the value at def with the DSL's own is_definition. */
static void check_definition(lua_State *L, struct ml_script *s, int env, int def)
{
	lua_getfield(L, env, "require");
	lua_pushliteral(L, "moonlog");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "is_definition");
	lua_pushvalue(L, def);
	lua_call(L, 1, 1);
	int ok = lua_toboolean(L, -1);
	lua_pop(L, 2);
	if (!ok)
		luaL_error(L,
			   "%s must return a definition built with the moonlog DSL (return "
			   "ml.projection { ... }, ml.reducer, ml.decider or ml.handler), got %s",
			   s->chunkname, luaL_typename(L, def));
}

int ml_runner_open(lua_State *L, int env, int def)
{
	struct ml_script *s = ml_script_of(L);
	check_definition(L, s, env, def);
	set_kind(L, s, def);
	lua_getfield(L, def, "from");
	ml_script_filter_load(L, -1);
	lua_pop(L, 1);

	if (luaL_loadbufferx(L, runner_src, sizeof(runner_src) - 1, "=moonlog.host", "t") != LUA_OK)
		return lua_error(L);
	lua_pushvalue(L, def);
	lua_getfield(L, env, "require");
	lua_call(L, 2, 1);	     /* SLOT_RUNNER */
	lua_getfield(L, -1, "feed"); /* SLOT_FEED */
	if (lua_getfield(L, -2, "cell") == LUA_TTABLE) {
		/* A plain projection: C dispatches on the type itself (ml_feed_projection). */
		lua_pop(L, 1);
		lua_pushvalue(L, SLOT_EVENT_MT);
		lua_pushlightuserdata(L, s);
		lua_getfield(L, -4, "on");
		lua_getfield(L, -5, "any");
		lua_getfield(L, -6, "cell");
		lua_newtable(L);
		lua_pushcclosure(L, ml_feed_projection, 6); /* SLOT_TRAMPOLINE */
		return 0;
	}
	lua_pop(L, 1);
	lua_pushvalue(L, SLOT_EVENT_MT);
	lua_pushvalue(L, -2);
	lua_pushlightuserdata(L, s);
	lua_pushcclosure(L, ml_feed_trampoline, 3); /* SLOT_TRAMPOLINE */
	return 0;
}
