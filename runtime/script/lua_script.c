/*
 * lua_script.c - the Lua host as seen from plain lua5.4 and busted: the
 * `script` field of moonlog.core, so specs can load a script into its own
 * sandboxed state and feed it events, exactly as the server and `moonlog
 * replay` do.
 *
 *   local host = require("moonlog.core").script
 *   local s = host.load("balances.lua", { memory = 1 << 20, instructions = 1e6,
 *                                         time_limit_ms = 100,
 *                                         upcasters = "return ml.upcaster {...}" })
 *   assert(s:feed { stream = "account-1", type = "Deposited", data = { amount = 5 } })
 *   s:state(), s:get(key), s:query(name, ...), s:emitted(), s:fault(), s:stats()
 *
 * The only place where the host's failures become Lua errors: load raises,
 * feed returns nil and the message (the script has faulted, or skipped).
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/route.h>
#include <moonlog/script.h>

#define MT "moonlog.script"

static struct ml_script **check(lua_State *L)
{
	struct ml_script **s = luaL_checkudata(L, 1, MT);
	if (*s == NULL)
		luaL_error(L, "the script is closed");
	return s;
}

static int s_gc(lua_State *L)
{
	struct ml_script **s = luaL_checkudata(L, 1, MT);
	ml_script_free(*s);
	*s = NULL;
	return 0;
}

static int l_load(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	struct ml_script_options o;
	struct ml_script **s;
	ml_script_options_init(&o);
	if (lua_istable(L, 2)) {
		if (lua_getfield(L, 2, "memory") != LUA_TNIL)
			o.memory_limit = (size_t)luaL_checkinteger(L, -1);
		if (lua_getfield(L, 2, "instructions") != LUA_TNIL)
			o.instruction_limit = (uint64_t)luaL_checkinteger(L, -1);
		if (lua_getfield(L, 2, "time_limit_ms") != LUA_TNIL)
			o.time_limit_ms = (uint32_t)luaL_checkinteger(L, -1);
		if (lua_getfield(L, 2, "lua_dir") != LUA_TNIL)
			o.lua_dir = luaL_checkstring(L, -1);
		if (lua_getfield(L, 2, "upcasters") != LUA_TNIL) /* the text of upcasters.lua */
			o.upcasters = luaL_checklstring(L, -1, &o.upcasters_len);
		if (lua_getfield(L, 2, "source") != LUA_TNIL) {
			size_t n;
			const char *src = luaL_checklstring(L, -1, &n);
			s = lua_newuserdatauv(L, sizeof(*s), 0);
			*s = ml_script_load_buffer(path, src, n, &o);
			goto done;
		}
	}
	s = lua_newuserdatauv(L, sizeof(*s), 0);
	*s = ml_script_load(path, &o);
done:
	if (*s == NULL)
		return luaL_error(L, "%s", ml_diag_last());
	luaL_setmetatable(L, MT);
	return 1;
}

static void encode_field(lua_State *L, int t, const char *k, struct ml_buf *b)
{
	lua_getfield(L, t, k);
	if (!lua_isnil(L, -1) && ml_lua_to_msgpack_named(L, -1, b, k) != 0)
		luaL_error(L, "%s", ml_diag_last());
	lua_pop(L, 1);
}

static const char *str_field(lua_State *L, int t, const char *k, const char *dflt, size_t *n)
{
	lua_getfield(L, t, k);
	const char *s = lua_isnil(L, -1) ? dflt : luaL_checklstring(L, -1, n);
	if (s == dflt)
		*n = strlen(dflt);
	lua_pop(L, 1); /* the table keeps the string alive */
	if (*n > 255)
		luaL_error(L, "event.%s is longer than 255 bytes", k);
	return s;
}

static lua_Integer int_field(lua_State *L, int t, const char *k)
{
	lua_getfield(L, t, k);
	lua_Integer v = luaL_optinteger(L, -1, 0);
	lua_pop(L, 1);
	return v;
}

/* s:feed(event) -> true | nil, message */
static int s_feed(lua_State *L)
{
	struct ml_script **s = check(L);
	luaL_checktype(L, 2, LUA_TTABLE);
	struct ml_buf data = {0}, meta = {0};
	size_t sn, tn, in;
	struct ml_event e = {0};
	e.stream = str_field(L, 2, "stream", "test-1", &sn);
	e.type = str_field(L, 2, "type", "", &tn);
	e.id = str_field(L, 2, "id", "", &in);
	e.stream_len = (uint8_t)sn, e.type_len = (uint8_t)tn, e.id_len = (uint8_t)in;
	e.position = (uint64_t)int_field(L, 2, "position");
	e.version = (uint64_t)int_field(L, 2, "version");
	e.time = int_field(L, 2, "time");
	encode_field(L, 2, "data", &data); /* (raises before anything is held but the bufs) */
	encode_field(L, 2, "meta", &meta);
	e.data = (const uint8_t *)data.data, e.data_len = (uint32_t)data.len;
	e.meta = (const uint8_t *)meta.data, e.meta_len = (uint32_t)meta.len;
	int rc = ml_script_feed(*s, &e);
	ml_buf_free(&data);
	ml_buf_free(&meta);
	struct ml_script_outcome out;
	ml_script_outcome(*s, &out);
	if (rc != 0 || out.skipped) {
		lua_pushnil(L);
		lua_pushstring(L, rc != 0 ? ml_diag_last() : out.error);
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* Pushes the msgpack result of a host call, or raises its error. */
static int result(lua_State *L, int rc, struct ml_buf *b)
{
	if (rc == 0 && ml_lua_push_msgpack(L, b->data, b->len) != 0)
		rc = -1;
	ml_buf_free(b);
	if (rc != 0)
		return luaL_error(L, "%s", ml_diag_last());
	return 1;
}

static int s_state(lua_State *L)
{
	struct ml_buf b = {0};
	return result(L, ml_script_state(*check(L), &b), &b);
}

static int s_state_lua(lua_State *L)
{
	struct ml_buf b = {0};
	int rc = ml_script_state_lua(*check(L), &b);
	if (rc == 0)
		lua_pushlstring(L, b.data ? b.data : "", b.len);
	ml_buf_free(&b);
	return rc == 0 ? 1 : luaL_error(L, "%s", ml_diag_last());
}

static int s_get(lua_State *L)
{
	size_t n;
	const char *k = luaL_checklstring(L, 2, &n);
	struct ml_buf b = {0};
	return result(L, ml_script_get(*check(L), k, n, &b), &b);
}

static int s_query(lua_State *L)
{
	struct ml_script **s = check(L);
	const char *name = luaL_checkstring(L, 2);
	struct ml_buf args = {0}, b = {0};
	int n = lua_gettop(L) - 2;
	lua_createtable(L, n, 0);
	for (int i = 1; i <= n; i++) {
		lua_pushvalue(L, i + 2);
		lua_rawseti(L, -2, i);
	}
	if (n > 0 && ml_lua_to_msgpack(L, -1, &args) != 0)
		return luaL_error(L, "%s", ml_diag_last());
	int rc = ml_script_query(*s, name, args.data, args.len, &b);
	ml_buf_free(&args);
	return result(L, rc, &b);
}

static int s_emitted(lua_State *L)
{
	struct ml_script_outcome out;
	ml_script_outcome(*check(L), &out);
	lua_createtable(L, (int)out.n_emits, 0);
	for (size_t i = 0; i < out.n_emits; i++) {
		const struct ml_script_emit *e = &out.emits[i];
		lua_createtable(L, 0, 4);
		lua_pushlstring(L, e->stream, e->stream_len);
		lua_setfield(L, -2, "stream");
		lua_pushlstring(L, e->type, e->type_len);
		lua_setfield(L, -2, "type");
		if (ml_lua_push_msgpack(L, e->data, e->data_len) == 0)
			lua_setfield(L, -2, "data");
		if (ml_lua_push_msgpack(L, e->meta, e->meta_len) == 0)
			lua_setfield(L, -2, "meta");
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_pushboolean(L, out.parked);
	return 2;
}

static int s_info(lua_State *L)
{
	struct ml_script *s = *check(L);
	struct ml_script_stats st;
	ml_script_stats(s, &st);
	lua_createtable(L, 0, 10);
	lua_pushstring(L, ml_script_name(s));
	lua_setfield(L, -2, "name");
	lua_pushstring(L, ml_script_kind_name(ml_script_kind(s)));
	lua_setfield(L, -2, "kind");
	lua_pushstring(L, ml_script_hash(s));
	lua_setfield(L, -2, "hash");
	lua_pushinteger(L, (lua_Integer)ml_script_position(s));
	lua_setfield(L, -2, "position");
	if (ml_script_fault(s)) {
		lua_pushstring(L, ml_script_fault(s));
		lua_setfield(L, -2, "fault");
	}
	lua_pushinteger(L, (lua_Integer)st.events);
	lua_setfield(L, -2, "events");
	lua_pushinteger(L, (lua_Integer)st.delivered);
	lua_setfield(L, -2, "delivered");
	lua_pushinteger(L, (lua_Integer)st.memory);
	lua_setfield(L, -2, "memory");
	lua_pushinteger(L, (lua_Integer)st.memory_peak);
	lua_setfield(L, -2, "memory_peak");
	return 1;
}

static int s_snapshot(lua_State *L)
{
	struct ml_script *s = *check(L);
	const char *dir = luaL_checkstring(L, 2);
	const char *op = luaL_optstring(L, 3, "save");
	int rc = strcmp(op, "load") == 0 ? ml_script_snapshot_load(s, dir)
					 : ml_script_snapshot_save(s, dir);
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushstring(L, ml_diag_last());
		return 2;
	}
	lua_pushinteger(L, rc);
	return 1;
}

/* match(pattern, stream): the C rules of stream patterns (moonlog/route.h), for specs. */
static int l_match(lua_State *L)
{
	size_t pn, n;
	const char *p = luaL_checklstring(L, 1, &pn);
	const char *s = luaL_checklstring(L, 2, &n);
	lua_pushboolean(L, ml_pattern_match(p, pn, s, n));
	return 1;
}

int ml_luaopen_script(lua_State *L)
{
	static const luaL_Reg methods[] = {
	    {"feed", s_feed}, {"state", s_state},	{"state_lua", s_state_lua},
	    {"get", s_get},   {"query", s_query},	{"emitted", s_emitted},
	    {"info", s_info}, {"snapshot", s_snapshot}, {"close", s_gc},
	    {NULL, NULL},
	};
	if (luaL_newmetatable(L, MT)) {
		luaL_newlib(L, methods);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, s_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_pop(L, 1);
	lua_createtable(L, 0, 2);
	lua_pushcfunction(L, l_load);
	lua_setfield(L, -2, "load");
	lua_pushcfunction(L, l_match);
	lua_setfield(L, -2, "pattern_match");
	return 1;
}
