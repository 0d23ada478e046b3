/*
 * lua_eval.c - `eval` and `complete` on the admin socket: Lua chunks run
 * inside the server, the way the REPL shows them.
 *
 * The server owns one lua_State (trusted: the full standard library and the
 * moonlog modules). Each admin connection gets its own environment, built by
 * lua/moonlog/repl.lua (repl.env): an allow-list of safe globals plus log,
 * streams, stats, help; globals a chunk sets stay in its connection's
 * environment. A chunk is compiled as lua.c does (`return <chunk>` first),
 * text only, and runs in a fresh coroutine with a count hook: past the
 * instruction budget it fails and the server goes on. `log` is the Lua log API
 * bound to the server's operations (lua_eval_log.c): log.append yields while
 * the log syncs, so an eval never blocks the loop.
 *
 * The answer is {values = {...}, output = "what print wrote", text = "the
 * values shown readably"[, tail = {pattern, from}]}; a failed chunk is an error
 * {code = "script" | "incomplete", message, output}.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/script.h>

#include "net/eval_internal.h"

#define HOOK_EVERY 1000
#define MEM_LIMIT  (512u << 20)
#define TRACE_MAX  5 /* lines of traceback kept: those in the chunk */

static void *counted_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct ml_eval *e = ud;
	if (ptr == NULL)
		osize = 0;
	if (nsize == 0) {
		e->mem -= osize;
		free(ptr);
		return NULL;
	}
	if (nsize > osize && e->mem + (nsize - osize) > MEM_LIMIT)
		return NULL; /* Lua raises "not enough memory" in the chunk */
	void *p = realloc(ptr, nsize);
	if (p)
		e->mem = e->mem - osize + nsize;
	return p;
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	struct run *r = ml_eval_run_of(L);
	if (r == NULL)
		return;
	r->count += HOOK_EVERY;
	if (r->count <= r->ev->srv->o.eval_budget)
		return;
	/* From now on every instruction fails, so a pcall cannot swallow it for long. */
	lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
	char msg[128]; /* lua_pushfstring knows no PRIu64 */
	snprintf(msg, sizeof(msg),
		 "instruction budget exceeded (%" PRIu64 " instructions); the chunk was stopped",
		 r->ev->srv->o.eval_budget);
	luaL_error(L, "%s", msg);
}

/* print: into the running chunk's output. */
static int eval_print(lua_State *L)
{
	struct run *r = ml_eval_run_of(L);
	int n = lua_gettop(L);
	for (int i = 1; i <= n && r; i++) {
		size_t len;
		const char *s = luaL_tolstring(L, i, &len);
		if (i > 1)
			ml_buf_add(&r->output, "\t", 1);
		ml_buf_add(&r->output, s, len);
		lua_pop(L, 1);
	}
	if (r)
		ml_buf_add(&r->output, "\n", 1);
	return 0;
}

/* Loads moonlog.repl and the log API; runs under lua_pcall. */
static int setup(lua_State *L)
{
	struct ml_eval *e = lua_touserdata(L, 1);
	luaL_openlibs(L);
	ml_script_add_searcher(L);
	lua_pushcfunction(L, eval_print); /* environments copy print from here */
	lua_setglobal(L, "print");
	lua_getglobal(L, "require");
	lua_pushliteral(L, "moonlog.repl");
	lua_call(L, 1, 1);
	e->repl_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	ml_eval_push_log(L, e);
	e->log_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	ml_eval_push_scripts_api(L);
	e->scripts_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

struct ml_eval *ml_eval_new(struct ml_server *s)
{
	struct ml_eval *e = ml_xcalloc(1, sizeof(*e));
	e->srv = s;
	e->L = lua_newstate(counted_alloc, e);
	lua_State *L = e->L;
	*(struct run **)lua_getextraspace(L) = NULL;
	lua_pushcfunction(L, setup);
	lua_pushlightuserdata(L, e);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		ml_diag_set(ML_ERR_SCRIPT, "cannot start eval: %s", lua_tostring(L, -1));
		lua_close(L);
		free(e);
		return NULL;
	}
	return e;
}

void ml_eval_free(struct ml_eval *e)
{
	if (e == NULL)
		return;
	lua_close(e->L);
	free(e);
}

/* Pushes repl.<name>. */
static void repl_fn(struct ml_eval *e, const char *name)
{
	lua_rawgeti(e->L, LUA_REGISTRYINDEX, e->repl_ref);
	lua_getfield(e->L, -1, name);
	lua_remove(e->L, -2);
}

/* Pushes the connection's environment, made by repl.env on first use; 0 or -1. */
static int env_of(struct ml_eval *e, struct ml_conn *c)
{
	lua_State *L = e->L;
	if (c->env_ref == LUA_NOREF) {
		repl_fn(e, "env");
		lua_createtable(L, 0, 3);
		lua_rawgeti(L, LUA_REGISTRYINDEX, e->log_ref);
		lua_setfield(L, -2, "log");
		lua_rawgeti(L, LUA_REGISTRYINDEX, e->scripts_ref);
		lua_setfield(L, -2, "scripts");
		if (lua_pcall(L, 1, 1, 0) != LUA_OK)
			return -1; /* the message is on the stack */
		c->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->env_ref);
	return 0;
}

void ml_eval_conn_closed(struct ml_eval *e, struct ml_conn *c)
{
	if (c->env_ref != LUA_NOREF)
		luaL_unref(e->L, LUA_REGISTRYINDEX, c->env_ref);
	c->env_ref = LUA_NOREF;
}

static void put_output(struct ml_buf *b, const struct run *r)
{
	ml_msgpack_put_cstr(b, "output");
	ml_msgpack_put_str(b, r->output.data ? r->output.data : "", r->output.len);
}

/* The error, and the traceback lines that point into the chunk. */
static void put_error(struct ml_buf *b, struct run *r, const char *code, const char *msg)
{
	lua_State *L = r->ev->L;
	luaL_traceback(L, r->co, msg ? msg : "the chunk raised an error that is not a string", 0);
	const char *tb = lua_tostring(L, -1);
	struct ml_buf m = {0};
	const char *nl = strchr(tb, '\n');
	ml_buf_add(&m, tb, nl ? (size_t)(nl - tb) : strlen(tb));
	int kept = 0;
	for (const char *line = nl; line && kept < TRACE_MAX; line = strchr(line + 1, '\n')) {
		const char *end = strchr(line + 1, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (len > 6 && memcmp(line, "\n\trepl:", 7) == 0) {
			ml_buf_add(&m, line, len);
			kept++;
		}
	}
	lua_pop(L, 1);
	ml_msgpack_put_map(b, 3);
	ml_msgpack_put_cstr(b, "code");
	ml_msgpack_put_cstr(b, code);
	ml_msgpack_put_cstr(b, "message");
	ml_msgpack_put_str(b, m.data, m.len);
	put_output(b, r);
	ml_buf_free(&m);
}

/* A single value that asks the REPL to follow the log: { pattern, from } (repl.lua). */
static int is_tail(lua_State *co, int nres)
{
	if (nres != 1 || !lua_getmetatable(co, 1))
		return 0;
	lua_getfield(co, -1, "__name");
	int tail = lua_isstring(co, -1) && strcmp(lua_tostring(co, -1), "tail") == 0;
	lua_pop(co, 2);
	return tail;
}

static void put_tail(struct ml_buf *b, lua_State *co)
{
	ml_msgpack_put_cstr(b, "tail");
	ml_msgpack_put_map(b, 2);
	lua_getfield(co, 1, "pattern");
	ml_msgpack_put_cstr(b, "pattern");
	ml_msgpack_put_cstr(b, lua_isstring(co, -1) ? lua_tostring(co, -1) : "*");
	lua_getfield(co, 1, "from");
	ml_msgpack_put_cstr(b, "from");
	ml_msgpack_put_uint(b, (uint64_t)lua_tointeger(co, -1));
	lua_pop(co, 2);
}

/* The values shown the REPL's way (repl.show), bounded by the same budget. */
static void put_text(struct ml_buf *b, struct run *r, int nres)
{
	lua_State *co = r->co;
	ml_msgpack_put_cstr(b, "text");
	repl_fn(r->ev, "show");
	lua_xmove(r->ev->L, co, 1);
	for (int i = 1; i <= nres; i++)
		lua_pushvalue(co, i);
	if (nres == 0 || lua_pcall(co, nres, 1, 0) != LUA_OK) {
		lua_settop(co, nres);
		ml_msgpack_put_cstr(b, "");
		return;
	}
	size_t len;
	const char *s = lua_tolstring(co, -1, &len);
	ml_msgpack_put_str(b, s ? s : "", s ? len : 0);
	lua_pop(co, 1);
}

static void put_values(struct ml_buf *b, struct run *r, int nres)
{
	lua_State *co = r->co;
	int tail = is_tail(co, nres);
	ml_msgpack_put_map(b, tail ? 4 : 3);
	ml_msgpack_put_cstr(b, "values");
	ml_msgpack_put_array(b, tail ? 0 : (uint32_t)nres);
	for (int i = 1; i <= nres && !tail; i++)
		if (ml_lua_to_msgpack(co, i, b) != 0) { /* a function, say: show it */
			size_t len;
			const char *s = luaL_tolstring(co, i, &len);
			ml_msgpack_put_str(b, s, len);
			lua_pop(co, 1);
		}
	put_output(b, r);
	if (tail) {
		put_tail(b, co);
		ml_msgpack_put_cstr(b, "text");
		ml_msgpack_put_cstr(b, "");
	} else {
		put_text(b, r, nres);
	}
}

/* Answers the connection (if still there) and frees the run. */
static void finish(struct run *r, int status, int nres, const char *code)
{
	struct ml_conn *c = r->conn;
	if (c && !c->closed) {
		struct ml_buf *b = &c->out;
		ml_msgpack_put_array(b, 4);
		ml_msgpack_put_uint(b, 1);
		ml_msgpack_put_uint(b, r->msgid);
		if (status == LUA_OK) {
			ml_msgpack_put_nil(b);
			put_values(b, r, nres);
		} else {
			put_error(b, r, code, lua_tostring(r->co, -1));
			ml_msgpack_put_nil(b);
			c->srv->errors++;
		}
		ml_conn_mark(c);
	}
	if (c)
		ml_conn_release(c);
	luaL_unref(r->ev->L, LUA_REGISTRYINDEX, r->co_ref);
	ml_buf_free(&r->output);
	free(r);
}

void ml_eval_resume(struct run *r, int nargs)
{
	int nres = 0;
	int status = lua_resume(r->co, r->ev->L, nargs, &nres);
	if (status == LUA_YIELD) {
		/* A call that waits yielded (an append, a command, a slice of at()): what it
		 * waits for resumes the chunk. (Chunks have no coroutine library of their own.) */
		lua_pop(r->co, nres);
		return;
	}
	finish(r, status, status == LUA_OK ? nres : 0, "script");
}

int ml_eval_can_wait(lua_State *L, const char *what)
{
	if (ml_eval_run_of(L) == NULL)
		return ml_diag_set(ML_ERR_USAGE, "%s runs only in an eval chunk", what);
	if (!lua_isyieldable(L))
		return ml_diag_set(
		    ML_ERR_USAGE,
		    "%s has to wait, which Lua cannot do here (inside a function that "
		    "a C function calls, such as a table.sort comparator or a "
		    "string.gsub replacement): call it from the chunk itself",
		    what);
	return 0;
}

static struct run *run_new(struct ml_eval *e, struct ml_conn *c, uint64_t msgid)
{
	struct run *r = ml_xcalloc(1, sizeof(*r));
	r->ev = e;
	r->conn = c;
	r->msgid = msgid;
	c->inflight++; /* released by finish */
	r->co = lua_newthread(e->L);
	r->co_ref = luaL_ref(e->L, LUA_REGISTRYINDEX);
	*(struct run **)lua_getextraspace(r->co) = r;
	return r;
}

void ml_eval_run(struct ml_eval *e, struct ml_conn *c, uint64_t msgid, const char *chunk,
		 size_t len)
{
	lua_State *L = e->L;
	struct run *r = run_new(e, c, msgid);
	/* repl.compile(env, chunk) -> f | nil, message, incomplete */
	repl_fn(e, "compile");
	if (env_of(e, c) != 0) {
		lua_xmove(L, r->co, 1);
		finish(r, LUA_ERRRUN, 0, "script");
		lua_pop(L, 1);
		return;
	}
	lua_pushlstring(L, chunk, len);
	if (lua_pcall(L, 2, 3, 0) != LUA_OK || lua_isnil(L, -3)) {
		int incomplete = lua_toboolean(L, -1);
		lua_pop(L, 1);
		lua_xmove(L, r->co, 1); /* the message */
		lua_pop(L, lua_gettop(L) > 0 ? 1 : 0);
		finish(r, LUA_ERRSYNTAX, 0, incomplete ? "incomplete" : "script");
		return;
	}
	lua_pop(L, 2);
	lua_xmove(L, r->co, 1); /* the compiled chunk */
	lua_sethook(r->co, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
	ml_eval_resume(r, 0);
}

void ml_eval_complete(struct ml_eval *e, struct ml_conn *c, uint64_t msgid, const char *line,
		      size_t len)
{
	lua_State *L = e->L;
	struct ml_buf *b = &c->out;
	int top = lua_gettop(L);
	/* A run of its own while it completes: the scripts API finds the server through
	 * it (balan<Tab>, balances:<Tab>), and a chunk's __index met on the way is
	 * bounded by the same budget as an eval. */
	struct run r = {.ev = e, .conn = c};
	struct run **slot = (struct run **)lua_getextraspace(L), *was = *slot;
	*slot = &r;
	lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
	repl_fn(e, "complete");
	int ok = env_of(e, c) == 0;
	if (ok) {
		lua_pushlstring(L, line, len);
		ok = lua_pcall(L, 2, 1, 0) == LUA_OK && lua_istable(L, -1);
	}
	lua_sethook(L, NULL, 0, 0);
	*slot = was;
	ml_msgpack_put_array(b, 4);
	ml_msgpack_put_uint(b, 1);
	ml_msgpack_put_uint(b, msgid);
	ml_msgpack_put_nil(b);
	lua_Integer n = ok ? luaL_len(L, -1) : 0;
	ml_msgpack_put_array(b, (uint32_t)n);
	for (lua_Integer i = 1; i <= n; i++) {
		lua_rawgeti(L, -1, i);
		size_t sl;
		const char *s = lua_tolstring(L, -1, &sl);
		ml_msgpack_put_str(b, s ? s : "", s ? sl : 0);
		lua_pop(L, 1);
	}
	lua_settop(L, top);
	ml_conn_mark(c);
}
