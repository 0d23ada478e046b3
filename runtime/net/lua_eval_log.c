/*
 * lua_eval_log.c - the log as chunks evaluated in the server see it:
 * log.append, log.read, log.head, and what the REPL's streams() and stats()
 * need. log.append never blocks the loop: the chunk's coroutine yields while
 * the append is synced and is resumed from the completion queue.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include <moonlog/codec.h>

#include "net/eval_internal.h"
#include "net/ops.h"

static int append_k(lua_State *L, int status, lua_KContext ctx)
{
	(void)status;
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

static void append_finished(struct ml_pending *p)
{
	struct run *r = p->ctx;
	r->done = p;
	if (!r->in_call)
		ml_eval_resume(r, 0);
}

static int field_msgpack(lua_State *L, int t, const char *k, struct ml_buf *b)
{
	lua_getfield(L, t, k);
	int rc = lua_isnil(L, -1) ? 0 : ml_lua_to_msgpack_named(L, -1, b, k);
	lua_pop(L, 1);
	return rc;
}

/* Reads {expect=, id=, meta=} at idx; the id string stays on the stack. */
static int append_opts(lua_State *L, int idx, int64_t *expect, const char **id, size_t *idlen,
		       struct ml_buf *meta)
{
	if (!lua_istable(L, idx))
		return 0;
	lua_getfield(L, idx, "expect");
	if (lua_isinteger(L, -1))
		*expect = lua_tointeger(L, -1);
	else if (lua_isstring(L, -1) && ml_expect_parse(lua_tostring(L, -1), expect) != 0)
		return -1;
	lua_pop(L, 1);
	lua_getfield(L, idx, "id");
	*id = lua_tolstring(L, -1, idlen);
	if (*id == NULL)
		lua_pop(L, 1);
	return field_msgpack(L, idx, "meta", meta);
}

/* log.append(stream, type, data, {expect=, id=, meta=}) -> {position, version, duplicate} */
static int l_append(lua_State *L)
{
	struct run *r = ml_eval_run_of(L);
	size_t slen, tlen, idlen = 0;
	if (r == NULL)
		return luaL_error(L, "log.append runs only in an eval chunk");
	/* It yields until the append is durable: refuse before submitting where it cannot. */
	if (!lua_isyieldable(L))
		return luaL_error(L, "log.append cannot wait for the log here (in a metamethod, a "
				     "sort comparator or a gsub function): call it from the chunk "
				     "itself");
	const char *stream = luaL_checklstring(L, 1, &slen);
	const char *type = luaL_checklstring(L, 2, &tlen);
	const char *id = NULL;
	int64_t expect = ML_EXPECT_ANY;
	struct ml_buf data = {0}, meta = {0};
	if ((!lua_isnoneornil(L, 3) && ml_lua_to_msgpack_named(L, 3, &data, "data") != 0) ||
	    append_opts(L, 4, &expect, &id, &idlen, &meta) != 0) {
		ml_buf_free(&data);
		ml_buf_free(&meta);
		return luaL_error(L, "%s", ml_diag_last());
	}
	struct ml_pending *p = ml_pending_get(r->ev->srv);
	ml_op_append_room(p, 1);
	p->ev1 = (struct ml_event_in){NULL,  0,		type,	  tlen,	     id,
				      idlen, data.data, data.len, meta.data, meta.len};
	p->ctx = r;
	p->finish = append_finished;
	r->in_call = 1;
	ml_op_append(r->ev->srv, p, stream, slen, expect);
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
	else
		lua_newtable(L), lua_setfield(L, -2, "meta");
	lua_rawseti(L, -2, ++lr->n);
	return 0;
}

static lua_Integer opt_int(lua_State *L, int t, const char *k, lua_Integer dflt)
{
	if (!lua_istable(L, t))
		return dflt;
	lua_getfield(L, t, k);
	lua_Integer v = lua_isnil(L, -1) ? dflt : luaL_checkinteger(L, -1);
	lua_pop(L, 1);
	return v;
}

/* log.read(stream | "$all", {from=, limit=, backwards=}) -> { events } */
static int l_read(lua_State *L)
{
	struct ml_server *srv = ml_eval_run_of(L)->ev->srv;
	size_t slen;
	const char *stream = luaL_optlstring(L, 1, "$all", &slen);
	lua_Integer from = opt_int(L, 2, "from", 0), limit = opt_int(L, 2, "limit", 100);
	int back = 0;
	if (lua_istable(L, 2)) {
		lua_getfield(L, 2, "backwards");
		back = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	if (from < 0 || limit < 0)
		return luaL_error(L, "from and limit cannot be negative");
	if (limit == 0 || limit > (lua_Integer)srv->o.max_read)
		limit = srv->o.max_read;
	lua_newtable(L);
	struct lread lr = {L, 0};
	int64_t n =
	    strcmp(stream, "$all") == 0
		? ml_log_read_all(srv->log, (uint64_t)from, (uint64_t)limit, push_event, &lr)
		: ml_log_read_stream(srv->log, stream, slen, (uint64_t)from, (uint64_t)limit, back,
				     push_event, &lr);
	if (n < 0)
		return luaL_error(L, "%s", ml_diag_last());
	return 1;
}

static int l_head(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)ml_log_head(ml_eval_run_of(L)->ev->srv->log));
	return 1;
}

static int l_version(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	lua_pushinteger(L,
			(lua_Integer)ml_log_stream_version(ml_eval_run_of(L)->ev->srv->log, s, n));
	return 1;
}

static int add_stream(const char *name, size_t len, uint64_t version, void *arg)
{
	lua_State *L = arg;
	lua_pushlstring(L, name, len);
	lua_pushinteger(L, (lua_Integer)version);
	lua_rawset(L, -3);
	return 0;
}

static int l_streams(lua_State *L)
{
	const char *prefix = luaL_optstring(L, 1, NULL);
	lua_newtable(L);
	ml_log_streams(ml_eval_run_of(L)->ev->srv->log, prefix, add_stream, L);
	return 1;
}

static void set_int(lua_State *L, const char *k, uint64_t v)
{
	lua_pushinteger(L, (lua_Integer)v);
	lua_setfield(L, -2, k);
}

static int l_stats(lua_State *L)
{
	struct ml_server *srv = ml_eval_run_of(L)->ev->srv;
	struct ml_log_stats st;
	ml_log_stats(srv->log, &st);
	lua_createtable(L, 0, 12);
	set_int(L, "head", st.head);
	set_int(L, "streams", st.streams);
	set_int(L, "segments", st.segments);
	set_int(L, "bytes", st.bytes);
	set_int(L, "appends", st.appends);
	set_int(L, "events", st.events);
	set_int(L, "syncs", st.syncs);
	set_int(L, "connections", srv->nconns);
	set_int(L, "requests", srv->requests);
	set_int(L, "errors", srv->errors);
	lua_pushstring(L, ml_fsync_name(ml_log_fsync(srv->log)));
	lua_setfield(L, -2, "fsync");
	return 1;
}

int ml_eval_print(lua_State *L)
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

void ml_eval_push_log_api(lua_State *L)
{
	static const luaL_Reg fns[] = {
	    {"append", l_append},   {"read", l_read},	{"head", l_head}, {"version", l_version},
	    {"streams", l_streams}, {"stats", l_stats}, {NULL, NULL},
	};
	luaL_newlib(L, fns);
}
