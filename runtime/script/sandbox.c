/*
 * sandbox.c - what a script can reach: an allow-list environment.
 *
 * The state opens only the base, string, table, math, utf8 and os libraries,
 * and the script runs in a fresh _ENV built from an allow-list of them:
 * no io, no os beyond time/clock/date, no debug, no package, no dofile or
 * loadfile, no string.dump, no collectgarbage. `load` takes text only and
 * defaults to the sandbox environment; `require` knows only the moonlog
 * modules, which are built into the library (or read from a development
 * folder) and loaded as text into the same environment. The string metatable,
 * reachable from any string, is pointed at the sandbox's string table so that
 * ("").dump is not a way round the list. The functions of those libraries
 * that could run past the time limit in C are replaced by bounded ones
 * (bounded.c, pattern.c), and setmetatable refuses finalizers.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include <moonlog/util.h>

#include "script_internal.h"

static const char *const safe_base[] = {
    "assert",	"error",  "getmetatable", "ipairs",   "next",	"pairs",	"pcall",
    "rawequal", "rawget", "rawlen",	  "rawset",   "select", "setmetatable", "tonumber",
    "tostring", "type",	  "xpcall",	  "_VERSION", NULL,
};
static const char *const safe_libs[] = {"string", "table", "math", "utf8", NULL};
static const char *const safe_os[] = {"time", "clock", "date", NULL};

/* A shallow copy of the table at idx, without the names in `drop`. */
static void copy_table(lua_State *L, int idx, const char *drop)
{
	idx = lua_absindex(L, idx);
	lua_newtable(L);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		if (drop && lua_type(L, -2) == LUA_TSTRING &&
		    strcmp(lua_tostring(L, -2), drop) == 0) {
			lua_pop(L, 1);
			continue;
		}
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, -4);
	}
}

/* Hands the parser a chunk in pieces, so that a long one is compiled within the time
 * limit: when the call is past it, the text ends early and l_load raises. */
struct load_text {
	lua_State *L;
	const char *s;
	size_t left;
	int late;
};

static const char *read_piece(lua_State *L, void *ud, size_t *n)
{
	struct load_text *t = ud;
	(void)L;
	if (t->left == 0 || (t->late = ml_watch_expired(&ml_script_of(t->L)->clock)) != 0)
		return NULL;
	*n = t->left < 65536 ? t->left : 65536;
	const char *piece = t->s;
	t->s += *n;
	t->left -= *n;
	return piece;
}

/* load(chunk [, name [, mode [, env]]]): text only, in the sandbox unless given an env. */
static int l_load(lua_State *L)
{
	const char *name = luaL_optstring(L, 2, "=(load)");
	int has_env = !lua_isnone(L, 4);
	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "load: scripts may load only text chunks given as strings");
	struct load_text t = {L, NULL, 0, 0};
	t.s = lua_tolstring(L, 1, &t.left);
	int rc = lua_load(L, read_piece, &t, name, "t");
	if (t.late)
		ml_script_check(L, "load");
	if (rc != LUA_OK) {
		luaL_pushfail(L);
		lua_insert(L, -2);
		return 2;
	}
	lua_pushvalue(L, has_env ? 4 : lua_upvalueindex(1));
	if (!lua_setupvalue(L, -2, 1))
		lua_pop(L, 1);
	return 1;
}

/*
 * The built-in modules, compiled once per process. Every script gets a fresh
 * lua_State, and parsing the ~35 KB of the moonlog modules again for each was
 * most of what loading a script cost (0.8 ms of a hot reload's pause, on the
 * server's loop). The bytecode is made here from the library's own sources,
 * with debug information kept for tracebacks, and is the only binary chunk a
 * sandboxed state ever loads: scripts and their load() take text only.
 */
struct compiled {
	char *code;
	size_t len, cap;
};
static struct compiled compiled[64];
static pthread_once_t compiled_once = PTHREAD_ONCE_INIT;
static uint64_t library_hash;

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
	(void)L;
	struct compiled *c = ud;
	if (c->len + n > c->cap) {
		c->cap = (c->len + n) * 2;
		c->code = ml_xrealloc(c->code, c->cap);
	}
	memcpy(c->code + c->len, p, n);
	c->len += n;
	return 0;
}

static void compile_modules(void)
{
	lua_State *L = luaL_newstate();
	for (size_t i = 0; L && i < ml_lua_modules_count && i < 64; i++) {
		char chunkname[128];
		snprintf(chunkname, sizeof(chunkname), "@%s", ml_lua_modules[i].name);
		if (luaL_loadbufferx(L, ml_lua_modules[i].source, ml_lua_modules[i].len, chunkname,
				     "t") == LUA_OK)
			lua_dump(L, dump_writer, &compiled[i], 0);
		lua_settop(L, 0); /* a module that does not compile is loaded as text: its error */
	}
	if (L)
		lua_close(L);
	uint64_t h = 0x6d6f6f6e6c6f67; /* "moonlog" */
	for (size_t i = 0; i < ml_lua_modules_count; i++)
		h = ml_hash64(ml_lua_modules[i].source, ml_lua_modules[i].len, h);
	library_hash = h;
}

/* The source of an allowed module, from the built-in copies or the development folder. */
static int load_module(lua_State *L, const char *name, const char *lua_dir)
{
	char chunkname[128];
	if (lua_dir) {
		char path[4096];
		const char *rest = strcmp(name, "moonlog") == 0 ? "init" : name + 8;
		snprintf(path, sizeof(path), "%s/moonlog/%s.lua", lua_dir, rest);
		return luaL_loadfilex(L, path, "t") == LUA_OK;
	}
	pthread_once(&compiled_once, compile_modules);
	for (size_t i = 0; i < ml_lua_modules_count; i++) {
		if (strcmp(ml_lua_modules[i].name, name) != 0)
			continue;
		snprintf(chunkname, sizeof(chunkname), "@%s", name);
		if (i < 64 && compiled[i].len > 0)
			return luaL_loadbufferx(L, compiled[i].code, compiled[i].len, chunkname,
						"b") == LUA_OK;
		return luaL_loadbufferx(L, ml_lua_modules[i].source, ml_lua_modules[i].len,
					chunkname, "t") == LUA_OK;
	}
	lua_pushfstring(L, "no such module");
	return 0;
}

/* require(name): the moonlog modules only. Upvalues: the env, the loaded table, lua_dir. */
static int l_require(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const char *lua_dir = lua_touserdata(L, lua_upvalueindex(3));
	lua_settop(L, 1);
	if (lua_getfield(L, lua_upvalueindex(2), name) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	if (!(strcmp(name, "moonlog") == 0 ||
	      (strncmp(name, "moonlog.", 8) == 0 && strcmp(name, "moonlog.core") != 0)))
		return luaL_error(L,
				  "require \"%s\": scripts may require only the moonlog modules "
				  "(moonlog, moonlog.testing, ...)",
				  name);
	if (!load_module(L, name, lua_dir))
		return luaL_error(L, "require \"%s\": %s", name, lua_tostring(L, -1));
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_setupvalue(L, -2, 1);
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, lua_upvalueindex(2), name);
	return 1;
}

/* print(...): to stderr, one line, prefixed with the script's name. */
static int l_print(lua_State *L)
{
	struct ml_script *s = ml_script_of(L);
	luaL_Buffer b;
	int n = lua_gettop(L);
	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	size_t len;
	const char *line = lua_tolstring(L, -1, &len);
	if (len <= ML_SCRIPT_MESSAGE_MAX)
		fprintf(stderr, "[%s] %s\n", s->name, line);
	else /* one line of the server's log, not megabytes of it */
		fprintf(stderr, "[%s] %.*s... (%zu more bytes)\n", s->name, ML_SCRIPT_MESSAGE_MAX,
			line, len - ML_SCRIPT_MESSAGE_MAX);
	return 0;
}

static void open_libs(lua_State *L)
{
	static const luaL_Reg libs[] = {
	    {LUA_GNAME, luaopen_base},
	    {LUA_STRLIBNAME, luaopen_string},
	    {LUA_TABLIBNAME, luaopen_table},
	    {LUA_MATHLIBNAME, luaopen_math},
	    {LUA_UTF8LIBNAME, luaopen_utf8},
	    {LUA_OSLIBNAME, luaopen_os},
	    {NULL, NULL},
	};
	for (const luaL_Reg *l = libs; l->name; l++) {
		luaL_requiref(L, l->name, l->func, 1);
		lua_pop(L, 1);
	}
	ml_bounded_open(L);
}

/* Pushes the sandbox environment. */
int ml_sandbox_open(lua_State *L, const char *lua_dir)
{
	open_libs(L);
	lua_pushglobaltable(L);
	int g = lua_gettop(L);
	lua_newtable(L);
	int env = lua_gettop(L);
	for (const char *const *n = safe_base; *n; n++) {
		lua_getfield(L, g, *n);
		lua_setfield(L, env, *n);
	}
	for (const char *const *n = safe_libs; *n; n++) {
		lua_getfield(L, g, *n);
		copy_table(L, -1, strcmp(*n, "string") == 0 ? "dump" : NULL);
		lua_setfield(L, env, *n);
		lua_pop(L, 1);
	}
	lua_createtable(L, 0, 3);
	lua_getfield(L, g, "os");
	for (const char *const *n = safe_os; *n; n++) {
		lua_getfield(L, -1, *n);
		lua_setfield(L, -3, *n);
	}
	lua_pop(L, 1);
	lua_setfield(L, env, "os");

	/* Strings index the sandbox's string table, which has no dump. */
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_getfield(L, env, "string");
	lua_setfield(L, -2, "__index");
	lua_pop(L, 2);

	lua_pushvalue(L, env);
	lua_pushcclosure(L, l_load, 1);
	lua_setfield(L, env, "load");
	lua_pushvalue(L, env);
	lua_newtable(L);
	lua_pushlightuserdata(L, (void *)lua_dir);
	lua_pushcclosure(L, l_require, 3);
	lua_setfield(L, env, "require");
	lua_pushcfunction(L, l_print);
	lua_setfield(L, env, "print");
	lua_pushvalue(L, env);
	lua_setfield(L, env, "_G");

	/* What is not in the list is gone from the state's own globals too. */
	static const char *const unsafe[] = {"dofile",	       "loadfile", "load",    "os",
					     "collectgarbage", "require",  "package", "io",
					     "debug",	       NULL};
	for (const char *const *n = unsafe; *n; n++) {
		lua_pushnil(L);
		lua_setfield(L, g, *n);
	}
	lua_getfield(L, g, "string");
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_pop(L, 1);
	lua_remove(L, g);
	return 0;
}

uint64_t ml_sandbox_library_hash(const char *lua_dir)
{
	if (lua_dir)
		return ml_hash64(lua_dir, strlen(lua_dir), 0x6d6f6f6e6c6f67);
	pthread_once(&compiled_once, compile_modules);
	return library_hash;
}
