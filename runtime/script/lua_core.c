/*
 * lua_core.c - the Lua C module `moonlog.core`: the C core as seen from plain
 * lua5.4 and busted. Each subsystem contributes one field, opened by its own
 * binding file (ml_luaopen_codec, ...).
 */
#include <lauxlib.h>
#include <lua.h>

#include <moonlog/api.h>
#include <moonlog/codec.h>
#include <moonlog/script.h>
#include <moonlog/lua_log.h>

ML_API int luaopen_moonlog_core(lua_State *L);

int luaopen_moonlog_core(lua_State *L)
{
	lua_newtable(L);
	ml_luaopen_codec(L);
	lua_setfield(L, -2, "codec");
	ml_luaopen_script(L);
	lua_setfield(L, -2, "script");
	ml_luaopen_log(L);
	lua_setfield(L, -2, "log");
	lua_pushliteral(L, "0.1.0");
	lua_setfield(L, -2, "version");
	return 1;
}
