/*
 * lua_log.c - the Lua log API, the one binding of the log for every Lua that
 * reaches one (docs/lua-api.md, "The log"; lua_log.h says what it is bound to):
 *
 *   local log = require("moonlog.core").log.open { dir = "data" }
 *   local r, err, code = log.append("account-1", { type = "Opened", data = {...} }, "no_stream")
 *   for _, e in ipairs(log.read("account-1", { from = 1, limit = 10 })) do ... end
 *
 * A log is a table of functions bound to it, called with a dot. The REPL's
 * `log` global and the chunks a server evaluates get the same functions, so a
 * line means the same wherever it runs. One error style: what the log (or the
 * server) refuses returns nil, a message, a code ("conflict", "bad_request",
 * ...) and, on a conflict, the stream's actual version; a call that is wrong
 * in itself (an argument of the wrong type, an event without a type, a value
 * that has no msgpack form) raises. Events come back as tables with the fields
 * of DESIGN.md, data and meta decoded. Callbacks from the log build each table
 * under lua_pcall, so a Lua error (out of memory) never unwinds through the
 * log's own frames.
 */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include <moonlog/codec.h>
#include <moonlog/lua_log.h>

#define LOG_MT	   "moonlog.log" /* the binding's userdata: collected, it closes an owned log */
#define READ_LIMIT 100		 /* log.read's default limit */

struct lua_log {
	struct ml_log *log; /* NULL once closed */
	const struct ml_lua_log_ops *ops;
	void *ctx;
	int owned; /* opened by log.open: closed by close() or when collected */
};

/* The log the running function is bound to (its first upvalue). */
static struct lua_log *bound(lua_State *L)
{
	struct lua_log *l = lua_touserdata(L, lua_upvalueindex(1));
	if (l->log == NULL)
		luaL_error(L, "the log is closed");
	return l;
}

/* Refused: nil, the message, the code. [-0, +3] */
static int fail(lua_State *L, enum ml_err code, const char *msg)
{
	lua_pushnil(L);
	lua_pushstring(L, msg);
	lua_pushstring(L, ml_err_name(code));
	return 3;
}

/* A stream name at idx; a table there is most likely a call with a colon. */
static const char *check_stream(lua_State *L, int idx, size_t *len, const char *fn)
{
	if (lua_type(L, idx) == LUA_TTABLE)
		luaL_error(
		    L, "log.%s takes a stream name, got a table: call it with a dot, log.%s(...)",
		    fn, fn);
	return luaL_checklstring(L, idx, len);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

/* ---- log.append ---------------------------------------------------------- */

/* One append while it runs: a userdata on the Lua stack, so it lives across a yield. */
struct append_call {
	struct ml_append req;
	struct ml_expect_in guard;
};

/*
 * Encodes a field of the event table at idx (data or meta) and keeps the bytes
 * as a Lua string in the table at keep, so that nothing leaks if a later
 * argument raises. Sets *p and *n to the bytes (NULL/0 when the field is nil).
 */
static void encode_field(lua_State *L, int idx, const char *field, int keep, lua_Integer slot,
			 const void **p, size_t *n)
{
	*p = NULL;
	*n = 0;
	lua_getfield(L, idx, field);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	struct ml_buf b = {0};
	int rc = ml_lua_to_msgpack_named(L, -1, &b, field);
	lua_pop(L, 1);
	if (rc != 0) {
		ml_buf_free(&b);
		luaL_error(L, "%s", ml_diag_last());
	}
	lua_pushlstring(L, b.data, b.len);
	ml_buf_free(&b);
	*p = lua_tolstring(L, -1, n);
	lua_rawseti(L, keep, slot);
}

/* A string field of the event table at idx, or NULL when absent; the string stays alive
 * in the table. */
static const char *string_field(lua_State *L, int idx, const char *k, size_t *len, size_t i)
{
	lua_getfield(L, idx, k);
	const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, len) : NULL;
	if (s == NULL && !lua_isnil(L, -1))
		luaL_error(L, "event %d: %s must be a string, got %s", (int)i + 1, k,
			   luaL_typename(L, -1));
	lua_pop(L, 1);
	return s;
}

/* The event table at idx, the i-th of the append, into e; its bytes are kept in `keep`. */
static void event_in(lua_State *L, int idx, size_t i, struct ml_event_in *e, int keep)
{
	if (!lua_istable(L, idx))
		luaL_error(L, "event %d is not a table {type =, data =, meta =, id =}", (int)i + 1);
	e->type = string_field(L, idx, "type", &e->type_len, i);
	if (e->type == NULL)
		luaL_error(L, "event %d has no type (give {type = \"Name\", ...})", (int)i + 1);
	e->id = string_field(L, idx, "id", &e->id_len, i);
	encode_field(L, idx, "data", keep, 2 * (lua_Integer)i + 1, &e->data, &e->data_len);
	encode_field(L, idx, "meta", keep, 2 * (lua_Integer)i + 2, &e->meta, &e->meta_len);
}

/* nil, "any", "no_stream", "exists", a version, or a version as text. */
static int64_t check_expected(lua_State *L, int idx)
{
	int64_t v;
	int exact;
	if (lua_isnoneornil(L, idx))
		return ML_EXPECT_ANY;
	lua_Integer n = lua_tointegerx(L, idx, &exact);
	if (exact && lua_type(L, idx) == LUA_TNUMBER) {
		luaL_argcheck(L, n >= 0, idx, "an expected version cannot be negative");
		return n;
	}
	if (lua_type(L, idx) == LUA_TSTRING && ml_expect_parse(lua_tostring(L, idx), &v) == 0)
		return v;
	return luaL_argerror(L, idx,
			     "expected is \"any\", \"no_stream\", \"exists\" or a version number");
}

/* { position, last_position, version, duplicate }, or nil, message, code[, actual]. */
static int push_appended(lua_State *L, const struct ml_append *req)
{
	if (req->err != ML_OK) {
		fail(L, req->err, req->errmsg);
		if (req->err != ML_ERR_CONFLICT)
			return 3;
		lua_pushinteger(L, req->actual_version);
		return 4;
	}
	lua_createtable(L, 0, 4);
	set_int(L, "position", (lua_Integer)req->first_position);
	set_int(L, "last_position", (lua_Integer)req->last_position);
	set_int(L, "version", (lua_Integer)req->versions[req->n_events - 1]);
	lua_pushboolean(L, req->duplicate);
	lua_setfield(L, -2, "duplicate");
	return 1;
}

/* After the yield of an append whose outcome came later (ctx: its request). */
static int append_k(lua_State *L, int status, lua_KContext ctx)
{
	(void)status;
	return push_appended(L, (struct ml_append *)ctx);
}

/* Appends req (in a userdata on the stack: it lives across a yield) and pushes the outcome. */
static int run_append(lua_State *L, struct lua_log *l, struct ml_append *req)
{
	if (l->ops == NULL) {
		ml_log_append(l->log, req); /* blocks until durable; req says how it went */
		return push_appended(L, req);
	}
	int rc = l->ops->append(l->ctx, L, req);
	if (rc < 0)
		return luaL_error(L, "%s", ml_diag_last());
	if (rc > 0)
		return lua_yieldk(L, 0, (lua_KContext)req, append_k);
	return push_appended(L, req);
}

/* log.append(stream, event | { events... }[, expected]) */
static int l_append(lua_State *L)
{
	struct lua_log *l = bound(L);
	size_t slen;
	const char *stream = check_stream(L, 1, &slen, "append");
	luaL_checktype(L, 2, LUA_TTABLE);
	int64_t expected = check_expected(L, 3);
	lua_settop(L, 3);
	lua_getfield(L, 2, "type");
	int single = !lua_isnil(L, -1); /* one event, not a list of them */
	lua_pop(L, 1);
	lua_Integer n = single ? 1 : luaL_len(L, 2);
	luaL_argcheck(L, n >= 1, 2,
		      "no events: give an event {type = ..., data = ...} or a list of them");
	if (n > ML_BATCH_MAX_EVENTS) /* before allocating for them */
		return luaL_error(
		    L, "append: %I events, over the maximum of %d in one batch; split it", n,
		    ML_BATCH_MAX_EVENTS);

	/* Userdata scratch memory is collected even if an argument error unwinds. */
	struct append_call *a = lua_newuserdatauv(L, sizeof(*a), 0);
	struct ml_event_in *evs = lua_newuserdatauv(L, (size_t)n * sizeof(*evs), 0);
	uint64_t *nums = lua_newuserdatauv(L, 2 * (size_t)n * sizeof(*nums), 0);
	lua_createtable(L, 2 * (int)n, 0); /* keeps the encoded bytes alive */
	int keep = lua_gettop(L);
	for (lua_Integer i = 0; i < n; i++) {
		if (single)
			lua_pushvalue(L, 2);
		else
			lua_geti(L, 2, i + 1);
		evs[i] = (struct ml_event_in){.stream = stream, .stream_len = slen};
		event_in(L, lua_gettop(L), (size_t)i, &evs[i], keep);
		lua_pop(L, 1);
	}
	*a = (struct append_call){
	    .req = {.events = evs, .n_events = (size_t)n, .positions = nums, .versions = nums + n}};
	if (expected != ML_EXPECT_ANY) {
		a->guard = (struct ml_expect_in){stream, slen, expected};
		a->req.expect = &a->guard;
		a->req.n_expect = 1;
	}
	return run_append(L, l, &a->req);
}

/* ---- log.delete, log.set_metadata, log.metadata (docs/lua-api.md) -------- */

/* log.delete(stream[, { hard = bool, expected = v }]) -> as log.append */
static int l_delete(lua_State *L)
{
	struct lua_log *l = bound(L);
	size_t slen;
	const char *stream = check_stream(L, 1, &slen, "delete");
	int64_t expected = ML_EXPECT_ANY;
	int hard = 0;
	lua_settop(L, 2);
	if (!lua_isnil(L, 2)) {
		luaL_checktype(L, 2, LUA_TTABLE);
		lua_getfield(L, 2, "hard");
		hard = lua_toboolean(L, -1);
		lua_getfield(L, 2, "expected");
		expected = check_expected(L, -1);
		lua_settop(L, 2);
	}
	struct ml_retention_append *a = lua_newuserdatauv(L, sizeof(*a), 0);
	int rc = ml_log_prepare_delete(l->log, a, stream, slen, expected, hard);
	if (rc < 0)
		return fail(L, ml_diag_code(), ml_diag_last());
	if (rc > 0) /* deleted already: the answer is that deletion's */
		return push_appended(L, &a->req);
	return run_append(L, l, &a->req);
}

/* log.set_metadata(stream, { max_age =, max_count =, truncate_before = }[, expected]) */
static int l_set_metadata(lua_State *L)
{
	struct lua_log *l = bound(L);
	size_t slen;
	const char *stream = check_stream(L, 1, &slen, "set_metadata");
	luaL_checktype(L, 2, LUA_TTABLE);
	int64_t expected = check_expected(L, 3);
	lua_settop(L, 3);
	struct ml_retention_append *a = lua_newuserdatauv(L, sizeof(*a), 0);
	struct ml_buf b = {0};
	int rc = ml_lua_to_msgpack_named(L, 2, &b, "metadata");
	if (rc == 0)
		rc = ml_log_prepare_meta(l->log, a, stream, slen, b.data, b.len, expected);
	ml_buf_free(&b);
	if (rc != 0)
		return fail(L, ml_diag_code(), ml_diag_last());
	return run_append(L, l, &a->req);
}

/* log.metadata(stream) -> { max_age, max_count, truncate_before, deleted_version, hard } */
static int l_metadata(lua_State *L)
{
	struct lua_log *l = bound(L);
	size_t slen;
	const char *stream = check_stream(L, 1, &slen, "metadata");
	struct ml_stream_meta m;
	ml_log_stream_meta(l->log, stream, slen, &m);
	lua_createtable(L, 0, 5);
	set_int(L, "max_age", (lua_Integer)m.max_age);
	set_int(L, "max_count", (lua_Integer)m.max_count);
	set_int(L, "truncate_before", (lua_Integer)m.truncate_before);
	set_int(L, "deleted_version", (lua_Integer)m.deleted_before);
	lua_pushboolean(L, m.hard);
	lua_setfield(L, -2, "hard");
	return 1;
}

/* ---- log.read ------------------------------------------------------------ */

/* Pushes an event table; run under lua_pcall. [-0, +1] */
static int push_event(lua_State *L)
{
	const struct ml_event *e = lua_touserdata(L, 1);
	lua_createtable(L, 0, 8);
	lua_pushlstring(L, e->id, e->id_len);
	lua_setfield(L, -2, "id");
	lua_pushlstring(L, e->stream, e->stream_len);
	lua_setfield(L, -2, "stream");
	lua_pushlstring(L, e->type, e->type_len);
	lua_setfield(L, -2, "type");
	set_int(L, "version", (lua_Integer)e->version);
	set_int(L, "position", (lua_Integer)e->position);
	set_int(L, "time", e->time);
	if (e->data_len && ml_lua_push_msgpack(L, e->data, e->data_len) == 0)
		lua_setfield(L, -2, "data");
	if (e->meta_len && ml_lua_push_msgpack(L, e->meta, e->meta_len) == 0)
		lua_setfield(L, -2, "meta");
	else
		lua_newtable(L), lua_setfield(L, -2, "meta");
	return 1;
}

struct collect {
	lua_State *L;
	lua_Integer n;
	int failed; /* a Lua error: its message is on the stack */
};

static int collect_event(const struct ml_event *e, void *arg)
{
	struct collect *c = arg;
	lua_pushcfunction(c->L, push_event);
	lua_pushlightuserdata(c->L, (void *)e);
	if (lua_pcall(c->L, 1, 1, 0) != LUA_OK) {
		c->failed = 1;
		return 1;
	}
	lua_rawseti(c->L, -2, ++c->n);
	return 0;
}

/* A whole number >= 0 in the options table at idx, or dflt. */
static uint64_t opt_count(lua_State *L, int idx, const char *k, uint64_t dflt)
{
	if (!lua_istable(L, idx))
		return dflt;
	lua_getfield(L, idx, k);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return dflt;
	}
	int exact;
	lua_Integer v = lua_tointegerx(L, -1, &exact);
	if (!exact || v < 0)
		luaL_error(L, "log.read: %s must be a whole number >= 0", k);
	lua_pop(L, 1);
	return (uint64_t)v;
}

/* log.read([stream | "$all"[, { from =, limit =, backwards = }]]) -> { events... } */
static int l_read(lua_State *L)
{
	struct lua_log *l = bound(L);
	size_t slen = 4;
	const char *stream = lua_isnoneornil(L, 1) ? "$all" : check_stream(L, 1, &slen, "read");
	uint64_t from = opt_count(L, 2, "from", 0), limit = opt_count(L, 2, "limit", READ_LIMIT);
	int back = 0;
	if (lua_istable(L, 2)) {
		lua_getfield(L, 2, "backwards");
		back = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	int all = slen == 4 && memcmp(stream, "$all", 4) == 0;
	if (all && back)
		return luaL_argerror(L, 2, "$all is read forward only");
	lua_settop(L, 2);
	lua_newtable(L);
	struct collect c = {L, 0, 0};
	int64_t rc;
	if (l->ops)
		rc = l->ops->read(l->ctx, all ? NULL : stream, slen, from, limit, back,
				  collect_event, &c);
	else if (all)
		rc = ml_log_read_all_kept(l->log, from, limit, collect_event, &c);
	else
		rc = ml_log_read_stream(l->log, stream, slen, from, limit, back, collect_event, &c);
	if (c.failed)
		return lua_error(L);
	if (rc < 0)
		return fail(L, ml_diag_code(), ml_diag_last());
	return 1;
}

/* ---- the rest ------------------------------------------------------------ */

static int l_head(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)ml_log_head(bound(L)->log));
	return 1;
}

static int l_version(lua_State *L)
{
	struct lua_log *l = bound(L);
	size_t n;
	const char *s = check_stream(L, 1, &n, "version");
	lua_pushinteger(L, (lua_Integer)ml_log_stream_version(l->log, s, n));
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

/* log.streams([prefix]) -> { [name] = version } */
static int l_streams(lua_State *L)
{
	struct lua_log *l = bound(L);
	const char *prefix = luaL_optstring(L, 1, NULL);
	lua_checkstack(L, 4);
	lua_newtable(L);
	ml_log_streams(l->log, prefix, add_stream, L);
	return 1;
}

/* log.stats() -> { head =, streams =, ... }: the server's figures when bound to one. */
static int l_stats(lua_State *L)
{
	struct lua_log *l = bound(L);
	if (l->ops) {
		struct ml_buf b = {0};
		l->ops->stats(l->ctx, &b);
		int rc = ml_lua_push_msgpack(L, b.data, b.len);
		ml_buf_free(&b);
		return rc == 0 ? 1 : fail(L, ml_diag_code(), ml_diag_last());
	}
	struct ml_log_stats st;
	ml_log_stats(l->log, &st);
	lua_createtable(L, 0, 11);
	set_int(L, "head", (lua_Integer)st.head);
	set_int(L, "streams", (lua_Integer)st.streams);
	set_int(L, "segments", (lua_Integer)st.segments);
	set_int(L, "bytes", (lua_Integer)st.bytes);
	set_int(L, "appends", (lua_Integer)st.appends);
	set_int(L, "events", (lua_Integer)st.events);
	set_int(L, "syncs", (lua_Integer)st.syncs);
	set_int(L, "flush_groups", (lua_Integer)st.groups);
	set_int(L, "index_bytes", (lua_Integer)st.index_bytes);
	set_int(L, "open_ns", (lua_Integer)st.open_ns);
	lua_pushstring(L, ml_fsync_name(ml_log_fsync(l->log)));
	lua_setfield(L, -2, "fsync");
	return 1;
}

/* log.close(): only a log that log.open opened has it. */
static int l_close(lua_State *L)
{
	struct lua_log *l = lua_touserdata(L, lua_upvalueindex(1));
	if (l->owned)
		ml_log_close(l->log);
	l->log = NULL;
	return 0;
}

static int l_gc(lua_State *L)
{
	struct lua_log *l = luaL_checkudata(L, 1, LOG_MT);
	if (l->owned)
		ml_log_close(l->log);
	l->log = NULL;
	return 0;
}

static int l_tostring(lua_State *L)
{
	struct lua_log *l = lua_touserdata(L, lua_upvalueindex(1));
	lua_pushfstring(L, "moonlog log (%s)", l->log ? "open" : "closed");
	return 1;
}

/* Pushes the table of functions bound to a new lua_log; returns the lua_log. [-0, +1] */
static struct lua_log *push_bound(lua_State *L, int owned)
{
	static const luaL_Reg fns[] = {
	    {"append", l_append},     {"read", l_read},	      {"head", l_head},
	    {"version", l_version},   {"streams", l_streams}, {"stats", l_stats},
	    {"close", l_close},	      {"delete", l_delete},   {"set_metadata", l_set_metadata},
	    {"metadata", l_metadata}, {NULL, NULL},
	};
	lua_createtable(L, 0, 10);
	struct lua_log *l = lua_newuserdatauv(L, sizeof(*l), 0);
	*l = (struct lua_log){.owned = owned};
	if (luaL_newmetatable(L, LOG_MT)) {
		lua_pushcfunction(L, l_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	lua_createtable(L, 0, 2); /* the table's own metatable: how it prints */
	lua_pushvalue(L, -2);
	lua_pushcclosure(L, l_tostring, 1);
	lua_setfield(L, -2, "__tostring");
	lua_pushliteral(L, "moonlog.log");
	lua_setfield(L, -2, "__name");
	lua_setmetatable(L, -3);
	luaL_setfuncs(L, fns, 1); /* each function holds the lua_log as its upvalue */
	if (!owned) {		  /* the caller's log: not Lua's to close */
		lua_pushnil(L);
		lua_setfield(L, -2, "close");
	}
	return l;
}

void ml_lua_push_log(lua_State *L, struct ml_log *log, const struct ml_lua_log_ops *ops, void *ctx)
{
	struct lua_log *l = push_bound(L, 0);
	l->log = log;
	l->ops = ops;
	l->ctx = ctx;
}

/* log.open(dir | { dir =, fsync =, readonly = }) -> log, or nil, message, code */
static int l_open(lua_State *L)
{
	struct ml_log_options o;
	ml_log_options_init(&o);
	if (lua_type(L, 1) == LUA_TSTRING) {
		o.dir = lua_tostring(L, 1);
	} else {
		luaL_checktype(L, 1, LUA_TTABLE);
		lua_getfield(L, 1, "dir");
		o.dir = luaL_optstring(L, -1, o.dir);
		lua_getfield(L, 1, "fsync");
		if (!lua_isnil(L, -1) && ml_fsync_parse(luaL_checkstring(L, -1), &o.fsync) != 0)
			return luaL_error(L, "%s", ml_diag_last());
		lua_getfield(L, 1, "readonly");
		o.readonly = lua_toboolean(L, -1);
	}
	struct lua_log *l = push_bound(L, 1); /* first: an error below cannot leak the log */
	l->log = ml_log_open(&o);
	if (l->log == NULL)
		return fail(L, ml_diag_code(), ml_diag_last());
	return 1;
}

int ml_luaopen_log(lua_State *L)
{
	lua_newtable(L);
	lua_pushcfunction(L, l_open);
	lua_setfield(L, -2, "open");
	return 1;
}
