/*
 * lua_log.c - the log as seen from Lua: `require("moonlog.core").log`.
 *
 *   local log = core.log.open { dir = "data", fsync = "always" }
 *   local r, err, code, actual = log:append("account-1", { { type = "Opened", data = {...} } }, 0)
 *   for _, e in ipairs(log:read("account-1", { from = 1, limit = 10 })) do ... end
 *
 * Refusals return nil, a message, a code ("conflict", "bad_request", ...) and,
 * on a conflict, the stream's actual version; misuse (a wrong argument type)
 * raises. Events come back as tables with the fields of DESIGN.md, data and
 * meta decoded. Callbacks from the log build each table under lua_pcall, so a
 * Lua error (out of memory) never unwinds through the log's own frames.
 */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include <moonlog/codec.h>
#include <moonlog/log.h>

#define LOG_MT "moonlog.log"

struct lua_log {
	struct ml_log *log;
	int owned; /* closed when collected */
};

static struct ml_log *check_log(lua_State *L)
{
	struct lua_log *l = luaL_checkudata(L, 1, LOG_MT);
	if (l->log == NULL)
		luaL_error(L, "the log is closed");
	return l->log;
}

void ml_lua_push_log(lua_State *L, struct ml_log *log)
{
	struct lua_log *l = lua_newuserdatauv(L, sizeof(*l), 0);
	l->log = log;
	l->owned = 0;
	luaL_setmetatable(L, LOG_MT);
}

static int fail(lua_State *L, enum ml_err code, const char *msg)
{
	lua_pushnil(L);
	lua_pushstring(L, msg);
	lua_pushstring(L, ml_err_name(code));
	return 3;
}

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
	struct lua_log *l = lua_newuserdatauv(L, sizeof(*l), 0);
	l->log = NULL;
	l->owned = 1;
	luaL_setmetatable(L, LOG_MT);
	l->log = ml_log_open(&o);
	if (l->log == NULL)
		return fail(L, ml_diag_code(), ml_diag_last());
	return 1;
}

static int l_close(lua_State *L)
{
	struct lua_log *l = luaL_checkudata(L, 1, LOG_MT);
	if (l->owned)
		ml_log_close(l->log);
	l->log = NULL;
	return 0;
}

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

/* One event table from the Lua side into an ml_event_in; its bytes are kept in `keep`. */
static void event_in(lua_State *L, int idx, const char *stream, size_t slen, struct ml_event_in *e,
		     int keep, lua_Integer i)
{
	luaL_checktype(L, idx, LUA_TTABLE);
	memset(e, 0, sizeof(*e));
	e->stream = stream;
	e->stream_len = slen;
	lua_getfield(L, idx, "type");
	e->type = luaL_checklstring(L, -1, &e->type_len);
	lua_pop(L, 1); /* the string stays alive in the table */
	lua_getfield(L, idx, "id");
	if (!lua_isnil(L, -1))
		e->id = luaL_checklstring(L, -1, &e->id_len);
	lua_pop(L, 1);
	encode_field(L, idx, "data", keep, 2 * i + 1, &e->data, &e->data_len);
	encode_field(L, idx, "meta", keep, 2 * i + 2, &e->meta, &e->meta_len);
}

static int64_t check_expected(lua_State *L, int idx)
{
	if (lua_isnoneornil(L, idx))
		return ML_EXPECT_ANY;
	if (lua_isinteger(L, idx))
		return lua_tointeger(L, idx);
	int64_t v;
	if (ml_expect_parse(luaL_checkstring(L, idx), &v) != 0)
		luaL_argerror(L, idx, ml_diag_last());
	return v;
}

/* log:append(stream, events | event, expected) -> { first_position, last_position, version,
 * duplicate } */
static int l_append(lua_State *L)
{
	struct ml_log *log = check_log(L);
	size_t slen;
	const char *stream = luaL_checklstring(L, 2, &slen);
	luaL_checktype(L, 3, LUA_TTABLE);
	int64_t expected = check_expected(L, 4);
	lua_getfield(L, 3, "type");
	int single = !lua_isnil(L, -1);
	lua_pop(L, 1);
	size_t n = single ? 1 : luaL_len(L, 3);
	if (n == 0)
		return luaL_argerror(L, 3, "no events to append");
	if (n > 100000)
		return luaL_argerror(L, 3, "more than 100000 events in one append");

	/* Userdata scratch memory is collected even if an argument error unwinds. */
	struct ml_event_in *evs = lua_newuserdatauv(L, n * sizeof(*evs), 0);
	uint64_t *versions = lua_newuserdatauv(L, n * sizeof(*versions), 0);
	lua_createtable(L, (int)(2 * n), 0); /* keeps the encoded bytes alive */
	int keep = lua_gettop(L);
	for (size_t i = 0; i < n; i++) {
		if (single)
			lua_pushvalue(L, 3);
		else
			lua_geti(L, 3, (lua_Integer)i + 1);
		event_in(L, lua_gettop(L), stream, slen, &evs[i], keep, (lua_Integer)i);
		lua_pop(L, 1);
	}
	struct ml_expect_in x = {stream, slen, expected};
	struct ml_append req = {
	    .events = evs, .n_events = n, .expect = &x, .n_expect = 1, .versions = versions};
	if (ml_log_append(log, &req) != 0) {
		fail(L, req.err, req.errmsg);
		if (req.err == ML_ERR_CONFLICT) {
			lua_pushinteger(L, req.actual_version);
			return 4;
		}
		return 3;
	}
	lua_createtable(L, 0, 4);
	lua_pushinteger(L, (lua_Integer)req.first_position);
	lua_setfield(L, -2, "first_position");
	lua_pushinteger(L, (lua_Integer)req.last_position);
	lua_setfield(L, -2, "last_position");
	lua_pushinteger(L, (lua_Integer)versions[n - 1]);
	lua_setfield(L, -2, "version");
	lua_pushboolean(L, req.duplicate);
	lua_setfield(L, -2, "duplicate");
	return 1;
}

static void set_str(lua_State *L, const char *k, const char *s, size_t n)
{
	lua_pushlstring(L, s, n);
	lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, k);
}

/* Pushes an event table; run under lua_pcall. [-0, +1] */
static int push_event(lua_State *L)
{
	const struct ml_event *e = lua_touserdata(L, 1);
	lua_createtable(L, 0, 8);
	set_str(L, "id", e->id, e->id_len);
	set_str(L, "stream", e->stream, e->stream_len);
	set_str(L, "type", e->type, e->type_len);
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
	int failed;
};

static int collect_event(const struct ml_event *e, void *arg)
{
	struct collect *c = arg;
	lua_pushcfunction(c->L, push_event);
	lua_pushlightuserdata(c->L, (void *)e);
	if (lua_pcall(c->L, 1, 1, 0) != LUA_OK) {
		c->failed = 1;
		return 1; /* the error message stays on the stack */
	}
	lua_rawseti(c->L, -2, ++c->n);
	return 0;
}

static uint64_t opt_field(lua_State *L, int idx, const char *k, uint64_t dflt)
{
	if (lua_type(L, idx) != LUA_TTABLE)
		return dflt;
	lua_getfield(L, idx, k);
	uint64_t v = lua_isnil(L, -1) ? dflt : (uint64_t)luaL_checkinteger(L, -1);
	lua_pop(L, 1);
	return v;
}

static int finish_read(lua_State *L, int64_t rc, struct collect *c)
{
	if (c->failed)
		return lua_error(L);
	if (rc < 0)
		return fail(L, ml_diag_code(), ml_diag_last());
	return 1;
}

/* log:read(stream, { from, limit, backwards }) -> { events... } ('$all' reads the whole log) */
static int l_read(lua_State *L)
{
	struct ml_log *log = check_log(L);
	size_t slen;
	const char *stream = luaL_checklstring(L, 2, &slen);
	uint64_t from = opt_field(L, 3, "from", 0), limit = opt_field(L, 3, "limit", 1000);
	int backwards = 0;
	if (lua_type(L, 3) == LUA_TTABLE) {
		lua_getfield(L, 3, "backwards");
		backwards = lua_toboolean(L, -1);
		lua_pop(L, 1);
	}
	lua_newtable(L);
	struct collect c = {L, 0, 0};
	int64_t rc =
	    strcmp(stream, "$all") == 0
		? ml_log_read_all(log, from, limit, collect_event, &c)
		: ml_log_read_stream(log, stream, slen, from, limit, backwards, collect_event, &c);
	return finish_read(L, rc, &c);
}

static int l_head(lua_State *L)
{
	lua_pushinteger(L, (lua_Integer)ml_log_head(check_log(L)));
	return 1;
}

static int l_version(lua_State *L)
{
	struct ml_log *log = check_log(L);
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	lua_pushinteger(L, (lua_Integer)ml_log_stream_version(log, s, n));
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

/* log:streams([prefix]) -> { [name] = version } */
static int l_streams(lua_State *L)
{
	struct ml_log *log = check_log(L);
	const char *prefix = luaL_optstring(L, 2, NULL);
	lua_checkstack(L, 4);
	lua_newtable(L);
	ml_log_streams(log, prefix, add_stream, L);
	return 1;
}

static int l_stats(lua_State *L)
{
	struct ml_log_stats st;
	ml_log_stats(check_log(L), &st);
	lua_createtable(L, 0, 12);
	set_int(L, "head", (lua_Integer)st.head);
	set_int(L, "streams", (lua_Integer)st.streams);
	set_int(L, "segments", (lua_Integer)st.segments);
	set_int(L, "bytes", (lua_Integer)st.bytes);
	set_int(L, "appends", (lua_Integer)st.appends);
	set_int(L, "events", (lua_Integer)st.events);
	set_int(L, "syncs", (lua_Integer)st.syncs);
	set_int(L, "groups", (lua_Integer)st.groups);
	set_int(L, "index_bytes", (lua_Integer)st.index_bytes);
	set_int(L, "open_ns", (lua_Integer)st.open_ns);
	return 1;
}

static int l_tostring(lua_State *L)
{
	struct lua_log *l = luaL_checkudata(L, 1, LOG_MT);
	lua_pushfstring(L, "moonlog log (%s)", l->log ? "open" : "closed");
	return 1;
}

int ml_luaopen_log(lua_State *L)
{
	static const luaL_Reg methods[] = {
	    {"append", l_append},   {"read", l_read},	{"head", l_head},   {"version", l_version},
	    {"streams", l_streams}, {"stats", l_stats}, {"close", l_close}, {NULL, NULL},
	};
	if (luaL_newmetatable(L, LOG_MT)) {
		luaL_newlib(L, methods);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, l_close);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, l_tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
	lua_newtable(L);
	lua_pushcfunction(L, l_open);
	lua_setfield(L, -2, "open");
	return 1;
}
