/*
 * runner.c - loading a script's definition into the host: its kind, name and
 * `from`, and the host's Lua side (runner.lua: a small chunk, run inside each
 * script's state, that holds the state and calls the definition's methods per
 * kind), with the C trampolines that feed it.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

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

/* The runner's upcast_types (at the top) as the script's C set: upcast.c. */
static void set_upcasts(lua_State *L, struct ml_script *s)
{
	ml_upcast_set_free(s->up);
	s->up = NULL;
	if (lua_getfield(L, -1, "upcast_types") == LUA_TTABLE)
		s->up = ml_upcast_set_load(L, -1);
	lua_pop(L, 1);
}

int ml_runner_open(lua_State *L, int env, int def, int up)
{
	struct ml_script *s = ml_script_of(L);
	check_definition(L, s, env, def);
	set_kind(L, s, def);
	lua_getfield(L, def, "from");
	ml_script_filter_load(L, -1);
	lua_pop(L, 1);

	if (luaL_loadbufferx(L, ml_runner_lua, ml_runner_lua_len, "=moonlog.host", "t") != LUA_OK)
		return lua_error(L);
	lua_pushvalue(L, def);
	lua_getfield(L, env, "require");
	if (up)
		lua_pushvalue(L, up);
	else
		lua_pushnil(L);
	lua_call(L, 3, 1); /* SLOT_RUNNER */
	set_upcasts(L, s);
	lua_getfield(L, -1, "feed"); /* SLOT_FEED */
	if (lua_getfield(L, -2, "cell") == LUA_TTABLE) {
		/* A plain projection: fed from C (fold.c). */
		lua_getfield(L, -3, "on");
		ml_fold_open(L, s, -1, -2); /* SLOT_TRAMPOLINE */
		lua_replace(L, -3);
		lua_pop(L, 1);
		return 0;
	}
	lua_pop(L, 1);
	lua_pushvalue(L, SLOT_EVENT_MT);
	lua_pushvalue(L, -2);
	lua_pushlightuserdata(L, s);
	lua_pushcclosure(L, ml_feed_trampoline, 3); /* SLOT_TRAMPOLINE */
	return 0;
}
