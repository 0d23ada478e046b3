/*
 * plain.c - turning values that may hold event views back into plain Lua
 * values, where they leave the script: a snapshot of the state, the events a
 * handler emits or a decider decides, a query's answer, the printed state.
 *
 * The codec encodes tables, not our userdata, so a value is first walked: a
 * table with no view anywhere inside is used as it is, and one that holds
 * views is copied with each view decoded from its bytes. The script's own
 * tables are never changed. Only tables on a path to a view are copied, so
 * this costs a walk of the value and nothing more when there is no view.
 */
#include <lauxlib.h>

#include <moonlog/codec.h>

#include "script_internal.h"

/* Beyond this the codec refuses anyway; the walk stops here so that it cannot recurse away. */
#define MAX_DEPTH (ML_CODEC_MAX_DEPTH + 1)

/* Is the plain form of each entry of the table at idx the entry itself? */
static void plain(lua_State *L, int idx, int memo, int depth);

static int unchanged(lua_State *L, int idx, int memo, int depth)
{
	lua_pushnil(L);
	while (lua_next(L, idx)) { /* key value */
		int k = lua_gettop(L) - 1;
		plain(L, k, memo, depth + 1);
		plain(L, k + 1, memo, depth + 1);
		int same = lua_rawequal(L, k, k + 2) && lua_rawequal(L, k + 1, k + 3);
		lua_pop(L, 3);
		if (!same) {
			lua_pop(L, 1);
			return 0;
		}
	}
	return 1;
}

/*
 * Pushes the plain form of the value at idx. memo (a table) maps each table
 * seen to its copy, or to false when it needs none (or is being walked: a cycle
 * then points at the original, which the encoder reports as a cycle).
 */
static void plain(lua_State *L, int idx, int memo, int depth)
{
	idx = lua_absindex(L, idx);
	if (ml_view_kind(L, idx)) {
		ml_view_push_decoded(L, idx);
		return;
	}
	if (lua_type(L, idx) != LUA_TTABLE || depth > MAX_DEPTH) {
		lua_pushvalue(L, idx);
		return;
	}
	luaL_checkstack(L, 8, "a value nested too deep");
	lua_pushvalue(L, idx);
	if (lua_rawget(L, memo) != LUA_TNIL) { /* seen: its copy, or false */
		if (!lua_toboolean(L, -1)) {
			lua_pop(L, 1);
			lua_pushvalue(L, idx);
		}
		return;
	}
	lua_pop(L, 1);
	lua_pushvalue(L, idx);
	lua_pushboolean(L, 0);
	lua_rawset(L, memo);
	if (unchanged(L, idx, memo, depth)) {
		lua_pushvalue(L, idx);
		return;
	}
	lua_newtable(L);
	int copy = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int k = lua_gettop(L) - 1;
		plain(L, k, memo, depth + 1);
		plain(L, k + 1, memo, depth + 1);
		lua_rawset(L, copy);
		lua_pop(L, 1);
	}
	if (lua_getmetatable(L, idx)) /* array_mt, so that an empty array stays one */
		lua_setmetatable(L, copy);
	lua_pushvalue(L, idx);
	lua_pushvalue(L, copy);
	lua_rawset(L, memo);
}

/*
 * Does the value at idx hold no view? A walk without a memo, for the small
 * values that leave a script on every command or emit (a few events): 1 when
 * it holds none, 0 when it holds one or is too large or deep to tell this way
 * (a cycle among them: the walk with a memo then decides).
 */
static int no_view(lua_State *L, int idx, int depth, int *budget)
{
	if (ml_view_kind(L, idx))
		return 0;
	if (lua_type(L, idx) != LUA_TTABLE)
		return 1;
	if (depth > 8 || --*budget < 0)
		return 0;
	luaL_checkstack(L, 4, "a value nested too deep");
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int k = lua_gettop(L) - 1;
		if (!no_view(L, k, depth + 1, budget) || !no_view(L, k + 1, depth + 1, budget)) {
			lua_pop(L, 2);
			return 0;
		}
		lua_pop(L, 1);
	}
	return 1;
}

void ml_view_push_plain(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	int budget = 64;
	if (no_view(L, idx, 0, &budget)) {
		lua_pushvalue(L, idx);
		return;
	}
	lua_newtable(L);
	int memo = lua_gettop(L);
	plain(L, idx, memo, 0);
	lua_remove(L, memo);
}

void ml_view_encode(lua_State *L, int idx, struct ml_buf *out, const char *name)
{
	ml_view_push_plain(L, idx);
	int rc = ml_lua_to_msgpack_named(L, -1, out, name);
	lua_pop(L, 1);
	if (rc != 0)
		luaL_error(L, "%s", ml_diag_last());
}
