/*
 * searcher.c - `require` of the moonlog modules in a trusted lua_State (the
 * server's eval state, the REPL's own): the copies built into the library, or
 * the files under $MOONLOG_LUA_DIR/moonlog/ when that is set (development).
 * Scripts never get this: their sandbox has its own require (sandbox.c).
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <moonlog/script.h>

#include "script_internal.h"

static int search_moonlog(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const char *dir = getenv("MOONLOG_LUA_DIR");
	if (strcmp(name, "moonlog") != 0 && strncmp(name, "moonlog.", 8) != 0)
		return 0;
	if (dir && *dir) {
		const char *rest = strcmp(name, "moonlog") == 0 ? "init" : name + 8;
		lua_pushfstring(L, "%s/moonlog/%s.lua", dir, rest);
		if (luaL_loadfilex(L, lua_tostring(L, -1), "t") != LUA_OK)
			return lua_error(L);
		lua_insert(L, -2);
		return 2;
	}
	for (size_t i = 0; i < ml_lua_modules_count; i++)
		if (strcmp(ml_lua_modules[i].name, name) == 0) {
			lua_pushfstring(L, "@%s", name);
			if (luaL_loadbufferx(L, ml_lua_modules[i].source, ml_lua_modules[i].len,
					     lua_tostring(L, -1), "t") != LUA_OK)
				return lua_error(L);
			lua_pushstring(L, name);
			return 2;
		}
	lua_pushfstring(L, "no built-in module '%s'", name);
	return 1;
}

void ml_script_add_searcher(lua_State *L)
{
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_getfield(L, -1, LUA_LOADLIBNAME);
	if (!lua_istable(L, -1))
		luaL_error(L, "the package library is not open");
	lua_getfield(L, -1, "searchers");
	lua_pushcfunction(L, search_moonlog);
	lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
	/* put it second, before the file searchers */
	for (lua_Integer i = luaL_len(L, -1); i > 2; i--) {
		lua_rawgeti(L, -1, i - 1);
		lua_rawgeti(L, -2, i);
		lua_rawseti(L, -3, i - 1);
		lua_rawseti(L, -2, i);
	}
	lua_pop(L, 3);
}
