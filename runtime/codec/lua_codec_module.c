/*
 * lua_codec_module.c - the codec as Lua functions: encode, decode, to_json,
 * from_json and array_mt, part of the moonlog.core module.
 *
 * The only place where codec failures become Lua errors. The functions share
 * one output buffer, a userdata upvalue, so a call allocates nothing but its
 * result string and an error raised after a failure cannot leak the buffer.
 */
#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include <lauxlib.h>
#include <lua.h>

/* A buffer grown past this by one large value is given back after the call. */
#define KEEP_BYTES (1u << 20)

static int buf_gc(lua_State *L)
{
	ml_buf_free(lua_touserdata(L, 1));
	return 0;
}

static struct ml_buf *buf_get(lua_State *L)
{
	struct ml_buf *b = lua_touserdata(L, lua_upvalueindex(1));
	b->len = 0;
	return b;
}

/* Pushes the buffer's bytes as the result, or raises the diag if rc failed. */
static int finish(lua_State *L, struct ml_buf *b, int rc)
{
	if (rc != 0)
		return luaL_error(L, "%s", ml_diag_last());
	lua_pushlstring(L, b->data ? b->data : "", b->len);
	if (b->cap > KEEP_BYTES)
		ml_buf_free(b);
	return 1;
}

/* encode(value) -> msgpack string */
static int l_encode(lua_State *L)
{
	struct ml_buf *b = buf_get(L);
	luaL_checkany(L, 1);
	return finish(L, b, ml_lua_to_msgpack(L, 1, b));
}

/* decode(msgpack string) -> value */
static int l_decode(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	if (ml_lua_push_msgpack(L, s, len) != 0)
		return luaL_error(L, "%s", ml_diag_last());
	return 1;
}

/* to_json(msgpack string) -> JSON text */
static int l_to_json(lua_State *L)
{
	struct ml_buf *b = buf_get(L);
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	return finish(L, b, ml_msgpack_to_json(s, len, b));
}

/* from_json(JSON text) -> msgpack string */
static int l_from_json(lua_State *L)
{
	struct ml_buf *b = buf_get(L);
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	return finish(L, b, ml_json_to_msgpack(s, len, b));
}

int ml_luaopen_codec(lua_State *L)
{
	static const luaL_Reg funcs[] = {
	    {"encode", l_encode},	{"decode", l_decode}, {"to_json", l_to_json},
	    {"from_json", l_from_json}, {NULL, NULL},
	};
	lua_createtable(L, 0, 5);
	struct ml_buf *b = lua_newuserdatauv(L, sizeof(*b), 0);
	*b = (struct ml_buf){0};
	lua_createtable(L, 0, 1);
	lua_pushcfunction(L, buf_gc);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	luaL_setfuncs(L, funcs, 1);
	ml_lua_push_array_mt(L);
	lua_setfield(L, -2, "array_mt");
	return 1;
}
