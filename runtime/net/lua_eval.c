/*
 * lua_eval.c - `eval` on the admin socket: Lua chunks run inside the server.
 *
 * The server owns one lua_State. Each admin connection gets its own
 * environment (globals it sets stay there, and only there) whose __index is
 * an allow-list: base functions without dofile/loadfile, a text-only load,
 * string, table, math, utf8 and `log` (append, read, head). Each
 * eval runs in a fresh coroutine with a count hook: past the instruction
 * budget it fails, and the server goes on. log.append yields: the coroutine
 * sleeps while the log syncs and is resumed from the completion queue, so an
 * eval never blocks the loop on the disk.
 *
 * The answer is {values = {...}, output = "what print wrote"}; an error is
 * answered as {code = "script", message = ...}.
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

#include "net/net_internal.h"

#define HOOK_EVERY 1000
#define MEM_LIMIT  (512u << 20)

struct run {
	struct ml_eval *ev;
	struct ml_conn *conn; /* holds a reference on it (inflight) until the answer */
	uint64_t msgid, count;
	lua_State *co;
	int co_ref;
	int in_call;		 /* inside log.append: an immediate answer must not resume */
	struct ml_pending *done; /* the finished append, read by append_k */
	struct ml_buf output;
};

struct ml_eval {
	struct ml_server *srv;
	lua_State *L;
	size_t mem;
	int sandbox_ref; /* the allow-listed globals every environment reads through */
};

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

static struct run *run_of(lua_State *L)
{
	return *(struct run **)lua_getextraspace(L);
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
	struct run *r = run_of(L);
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

/* ---- the log table -------------------------------------------------------- */

static int append_k(lua_State *L, int status, lua_KContext ctx)
{
	struct run *r = (struct run *)ctx;
	struct ml_pending *p = r->done;
	r->done = NULL;
	struct ml_append req = p->req;
	char msg[256];
	snprintf(msg, sizeof(msg), "%s", p->req.errmsg);
	uint64_t version = p->ver1;
	ml_pending_put(r->ev->srv, p);
	if (req.err != ML_OK)
		return luaL_error(L, "append failed (%s): %s", ml_err_name(req.err), msg);
	lua_createtable(L, 0, 3);
	lua_pushinteger(L, (lua_Integer)req.first_position);
	lua_setfield(L, -2, "position");
	lua_pushinteger(L, (lua_Integer)version);
	lua_setfield(L, -2, "version");
	lua_pushboolean(L, req.duplicate);
	lua_setfield(L, -2, "duplicate");
	return 1;
}

static void resume(struct run *r, int nargs);

static void append_finished(struct ml_pending *p)
{
	struct run *r = p->ctx;
	r->done = p;
	if (!r->in_call)
		resume(r, 0);
}

static int field_msgpack(lua_State *L, int t, const char *k, struct ml_buf *b)
{
	lua_getfield(L, t, k);
	int rc = lua_isnil(L, -1) ? 0 : ml_lua_to_msgpack_named(L, -1, b, k);
	lua_pop(L, 1);
	return rc;
}

/* log.append(stream, type, data, {expect=, id=, meta=}) -> {position, version, duplicate} */
static int l_append(lua_State *L)
{
	struct run *r = run_of(L);
	size_t slen, tlen, idlen = 0;
	if (r == NULL)
		return luaL_error(L, "log.append runs only in an eval chunk");
	const char *stream = luaL_checklstring(L, 1, &slen);
	const char *type = luaL_checklstring(L, 2, &tlen);
	const char *id = NULL;
	int64_t expect = ML_EXPECT_ANY;
	struct ml_buf data = {0}, meta = {0};
	if (!lua_isnoneornil(L, 3) && ml_lua_to_msgpack_named(L, 3, &data, "data") != 0)
		return luaL_error(L, "%s", ml_diag_last());
	if (lua_istable(L, 4)) {
		lua_getfield(L, 4, "expect");
		if (lua_isinteger(L, -1))
			expect = lua_tointeger(L, -1);
		else if (lua_isstring(L, -1) && ml_expect_parse(lua_tostring(L, -1), &expect) != 0)
			return ml_buf_free(&data), luaL_error(L, "%s", ml_diag_last());
		lua_getfield(L, 4, "id");
		id = lua_tolstring(L, -1, &idlen);
		lua_pop(L, 2 - (id != NULL)); /* keep the id string alive on the stack */
		if (field_msgpack(L, 4, "meta", &meta) != 0)
			return ml_buf_free(&data), luaL_error(L, "%s", ml_diag_last());
	}
	struct ml_pending *p = ml_pending_get(r->ev->srv);
	p->evs = &p->ev1, p->poss = &p->pos1, p->vers = &p->ver1;
	p->ev1 = (struct ml_event_in){stream, slen,	 type,	   tlen,      id,
				      idlen,  data.data, data.len, meta.data, meta.len};
	p->req.events = p->evs;
	p->req.n_events = 1;
	p->req.positions = p->poss;
	p->req.versions = p->vers;
	if (expect != ML_EXPECT_ANY) {
		p->expect = (struct ml_expect_in){stream, slen, expect};
		p->req.expect = &p->expect;
		p->req.n_expect = 1;
	}
	p->ctx = r;
	p->finish = append_finished;
	r->in_call = 1;
	ml_pending_submit(r->ev->srv, p);
	r->in_call = 0;
	ml_buf_free(&data);
	ml_buf_free(&meta);
	if (r->done) /* answered at once */
		return append_k(L, LUA_OK, (lua_KContext)r);
	return lua_yieldk(L, 0, (lua_KContext)r, append_k);
}

struct lread {
	lua_State *L;
	lua_Integer n;
};

static int push_event(const struct ml_event *e, void *arg)
{
	struct lread *lr = arg;
	lua_State *L = lr->L;
	lua_createtable(L, 0, 8);
	lua_pushinteger(L, (lua_Integer)e->position);
	lua_setfield(L, -2, "position");
	lua_pushinteger(L, (lua_Integer)e->version);
	lua_setfield(L, -2, "version");
	lua_pushinteger(L, (lua_Integer)e->time);
	lua_setfield(L, -2, "time");
	lua_pushlstring(L, e->stream, e->stream_len);
	lua_setfield(L, -2, "stream");
	lua_pushlstring(L, e->type, e->type_len);
	lua_setfield(L, -2, "type");
	lua_pushlstring(L, e->id, e->id_len);
	lua_setfield(L, -2, "id");
	if (e->data_len && ml_lua_push_msgpack(L, e->data, e->data_len) == 0)
		lua_setfield(L, -2, "data");
	if (e->meta_len && ml_lua_push_msgpack(L, e->meta, e->meta_len) == 0)
		lua_setfield(L, -2, "meta");
	lua_rawseti(L, -2, ++lr->n);
	return 0;
}

/* log.read(stream | "$all", from, limit, backwards) -> { events } */
static int l_read(lua_State *L)
{
	struct run *r = run_of(L);
	size_t slen;
	const char *stream = luaL_checklstring(L, 1, &slen);
	lua_Integer from = luaL_optinteger(L, 2, 0), limit = luaL_optinteger(L, 3, 100);
	int back = lua_toboolean(L, 4);
	if (from < 0 || limit < 0)
		return luaL_error(L, "from and limit cannot be negative");
	if (limit == 0 || limit > (lua_Integer)r->ev->srv->o.max_read)
		limit = r->ev->srv->o.max_read;
	struct ml_log *log = r->ev->srv->log;
	lua_newtable(L);
	struct lread lr = {L, 0};
	int64_t n = strcmp(stream, "$all") == 0
			? ml_log_read_all(log, (uint64_t)from, (uint64_t)limit, push_event, &lr)
			: ml_log_read_stream(log, stream, slen, (uint64_t)from, (uint64_t)limit,
					     back, push_event, &lr);
	if (n < 0)
		return luaL_error(L, "%s", ml_diag_last());
	return 1;
}

static int l_head(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)ml_log_head(run_of(L)->ev->srv->log));
	return 1;
}

static int l_print(lua_State *L)
{
	struct run *r = run_of(L);
	int n = lua_gettop(L);
	for (int i = 1; i <= n; i++) {
		size_t len;
		const char *s = luaL_tolstring(L, i, &len);
		if (i > 1)
			ml_buf_add(&r->output, "\t", 1);
		ml_buf_add(&r->output, s, len);
		lua_pop(L, 1);
	}
	ml_buf_add(&r->output, "\n", 1);
	return 0;
}

/* load, text chunks only; the environment defaults to the caller's. */
static int l_load(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);
	const char *name = luaL_optstring(L, 2, "=(load)");
	int env = !lua_isnone(L, 4) ? 4 : 0;
	if (luaL_loadbufferx(L, s, len, name, "t") != LUA_OK) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	struct run *r = run_of(L);
	if (env)
		lua_pushvalue(L, env);
	else if (r && r->conn)
		lua_rawgeti(L, LUA_REGISTRYINDEX, r->conn->env_ref);
	else
		return 1;
	if (!lua_setupvalue(L, -2, 1))
		lua_pop(L, 1);
	return 1;
}

/* ---- running a chunk ----------------------------------------------------- */

static const luaL_Reg log_fns[] = {
    {"append", l_append}, {"read", l_read}, {"head", l_head}, {NULL, NULL}};

struct ml_eval *ml_eval_new(struct ml_server *s)
{
	struct ml_eval *e = ml_xcalloc(1, sizeof(*e));
	e->srv = s;
	e->L = lua_newstate(counted_alloc, e);
	lua_State *L = e->L;
	*(struct run **)lua_getextraspace(L) = NULL;
	static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
					{LUA_STRLIBNAME, luaopen_string},
					{LUA_TABLIBNAME, luaopen_table},
					{LUA_MATHLIBNAME, luaopen_math},
					{LUA_UTF8LIBNAME, luaopen_utf8}};
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		luaL_requiref(L, libs[i].name, libs[i].func, 1);
		lua_pop(L, 1);
	}
	/* The globals are the allow-list: take out what reaches files. */
	lua_pushnil(L);
	lua_setglobal(L, "dofile");
	lua_pushnil(L);
	lua_setglobal(L, "loadfile");
	lua_pushcfunction(L, l_load);
	lua_setglobal(L, "load");
	lua_pushcfunction(L, l_print);
	lua_setglobal(L, "print");
	luaL_newlib(L, log_fns);
	lua_setglobal(L, "log");
	return e;
}

void ml_eval_free(struct ml_eval *e)
{
	if (e == NULL)
		return;
	lua_close(e->L);
	free(e);
}

static void env_of(struct ml_eval *e, struct ml_conn *c)
{
	lua_State *L = e->L;
	if (c->env_ref == LUA_NOREF) {
		lua_newtable(L); /* env */
		lua_createtable(L, 0, 1);
		lua_pushglobaltable(L);
		lua_setfield(L, -2, "__index");
		lua_setmetatable(L, -2);
		c->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	}
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->env_ref);
}

void ml_eval_conn_closed(struct ml_eval *e, struct ml_conn *c)
{
	if (c->env_ref != LUA_NOREF)
		luaL_unref(e->L, LUA_REGISTRYINDEX, c->env_ref);
	c->env_ref = LUA_NOREF;
}

/* Answers the connection (if still there) and frees the run. */
static void finish(struct run *r, int status, int nres)
{
	struct ml_conn *c = r->conn;
	lua_State *co = r->co;
	if (c && !c->closed) {
		struct ml_buf *b = &c->out;
		ml_mp_put_array(b, 4);
		ml_mp_put_uint(b, 1);
		ml_mp_put_uint(b, r->msgid);
		if (status == LUA_OK) {
			ml_mp_put_nil(b);
			ml_mp_put_map(b, 2);
			ml_mp_put_cstr(b, "values");
			ml_mp_put_array(b, (uint32_t)nres);
			for (int i = 1; i <= nres; i++)
				if (ml_lua_to_msgpack(co, i, b) !=
				    0) { /* a function, say: show it */
					size_t len;
					const char *s = luaL_tolstring(co, i, &len);
					ml_mp_put_str(b, s, len);
					lua_pop(co, 1);
				}
			ml_mp_put_cstr(b, "output");
			ml_mp_put_str(b, r->output.data ? r->output.data : "", r->output.len);
		} else {
			size_t len;
			const char *msg = lua_tolstring(co, -1, &len);
			ml_mp_put_map(b, 3);
			ml_mp_put_cstr(b, "code");
			ml_mp_put_cstr(b, "script");
			ml_mp_put_cstr(b, "message");
			if (msg)
				ml_mp_put_str(b, msg, len);
			else
				ml_mp_put_cstr(b, "the chunk raised an error that is not a string");
			ml_mp_put_cstr(b, "output");
			ml_mp_put_str(b, r->output.data ? r->output.data : "", r->output.len);
			ml_mp_put_nil(b);
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

static void resume(struct run *r, int nargs)
{
	int nres = 0;
	int status = lua_resume(r->co, r->ev->L, nargs, &nres);
	if (status == LUA_YIELD) {
		if (r->done == NULL) {
			lua_pop(r->co, nres);
			return; /* waiting for an append */
		}
		/* a plain coroutine.yield at the top: treat as the end */
		status = LUA_OK;
	}
	finish(r, status, status == LUA_OK ? nres : 0);
}

void ml_eval_run(struct ml_eval *e, struct ml_conn *c, uint64_t msgid, const char *chunk,
		 size_t len)
{
	lua_State *L = e->L;
	struct run *r = ml_xcalloc(1, sizeof(*r));
	r->ev = e;
	r->conn = c;
	r->msgid = msgid;
	c->inflight++; /* released by finish */
	r->co = lua_newthread(L);
	r->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	*(struct run **)lua_getextraspace(r->co) = r;
	lua_sethook(r->co, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
	/* Like lua.c: an expression first ("1 + 1" shows 2), else a statement. */
	struct ml_buf ret = {0};
	ml_buf_addf(&ret, "return %.*s", (int)len, chunk);
	int rc = luaL_loadbufferx(r->co, ret.data, ret.len, "=eval", "t");
	ml_buf_free(&ret);
	if (rc != LUA_OK) {
		lua_pop(r->co, 1);
		rc = luaL_loadbufferx(r->co, chunk, len, "=eval", "t");
	}
	if (rc != LUA_OK) {
		finish(r, rc, 0);
		return;
	}
	env_of(e, c);
	lua_xmove(L, r->co, 1);
	lua_setupvalue(r->co, -2, 1);
	resume(r, 0);
}
