/*
 * view.c - how an event reaches Lua: a read-only view that decodes on access.
 *
 * Building a table per event (and decoding all its data) is what limits a
 * replay, so an event is handed over as one userdata holding a copy of the
 * record's bytes, and its fields are produced when the script reads them.
 * e.data and e.meta are views too: reading e.data.amount walks the msgpack map
 * to "amount" and pushes that one value; a nested map or array is a further
 * view over the same bytes. Because every view owns (or pins) its own copy of
 * the bytes, a script that keeps an event, or any part of one, sees the same
 * values for ever. Views support indexing, pairs (__pairs), # (__len),
 * tostring (JSON), == (same bytes); writing to one raises. docs/scripts.md
 * tells script authors what they see.
 */
#include <string.h>

#include <lauxlib.h>

#include <moonlog/codec.h>

#include "script_internal.h"

/* The event: fixed fields, then stream, type, id, meta and data bytes. */
struct ev {
	uint64_t position, version;
	int64_t time;
	uint32_t data_len, meta_len;
	uint8_t stream_len, type_len, id_len;
	uint8_t bytes[];
};

#define EV_META(e) ((e)->bytes + (e)->stream_len + (e)->type_len + (e)->id_len)
#define EV_DATA(e) (EV_META(e) + (e)->meta_len)

/* A map or array inside an event's bytes. uservalue 1: the event (pins the bytes). */
struct view {
	const uint8_t *obj;   /* the container's header */
	const uint8_t *first; /* its first element */
	const uint8_t *end;   /* the end of the bytes it lives in (data or meta) */
	uint32_t n;	      /* elements, or pairs of a map */
	uint32_t is_map;
	uint32_t cur_i; /* array cursor: element cur_i (1-based) starts at cur_p */
	const uint8_t *cur_p;
};

static const char event_mt_key = 'e', view_mt_key = 'v';

/* ---- reading msgpack; errors are raised (the bytes were checked when appended) ---- */

/* Raises: luaL_error does not return, which the compiler is told so that it knows
 * that a header whose read failed is never looked at. */
__attribute__((noreturn)) static void bad_bytes(lua_State *L)
{
	luaL_error(L, "cannot read the event's msgpack: %s", ml_diag_last());
	__builtin_unreachable();
}

static void skip_values(lua_State *L, struct ml_msgpack_reader *r, uint64_t n)
{
	if (ml_msgpack_skip_n(r, n) != 0)
		bad_bytes(L);
}

/* Pushes a view of the container whose header was just read. root: the event's index. */
static void push_view(lua_State *L, const struct ml_msgpack_obj *o, const uint8_t *at,
		      const struct ml_msgpack_reader *r, int root)
{
	struct view *v = lua_newuserdatauv(L, sizeof(*v), 1);
	v->obj = at;
	v->first = v->cur_p = r->p;
	v->end = r->end;
	v->n = o->n;
	v->is_map = o->kind == ML_MP_MAP;
	v->cur_i = 1;
	lua_pushvalue(L, root);
	lua_setiuservalue(L, -2, 1);
	lua_pushvalue(L, lua_upvalueindex(1)); /* every view function has the metatable here */
	lua_setmetatable(L, -2);
}

/*
 * Pushes the value at the reader and moves past it (past a container's
 * elements too when `whole`; otherwise only past its header).
 */
static void push_value(lua_State *L, struct ml_msgpack_reader *r, int root, int whole)
{
	struct ml_msgpack_obj o;
	const uint8_t *at = r->p;
	if (ml_msgpack_read(r, &o) != 0)
		bad_bytes(L);
	switch (o.kind) {
	case ML_MP_INT:
		lua_pushinteger(L, o.v.i);
		return;
	case ML_MP_STR:
	case ML_MP_BIN:
		lua_pushlstring(L, o.ptr, o.n);
		return;
	case ML_MP_MAP:
	case ML_MP_ARRAY:
		push_view(L, &o, at, r, root);
		if (whole)
			skip_values(L, r, o.kind == ML_MP_MAP ? 2 * (uint64_t)o.n : o.n);
		return;
	case ML_MP_NIL:
		lua_pushnil(L);
		return;
	case ML_MP_BOOL:
		lua_pushboolean(L, o.v.b);
		return;
	case ML_MP_FLOAT64:
		lua_pushnumber(L, o.v.d);
		return;
	case ML_MP_FLOAT32:
		lua_pushnumber(L, o.v.f);
		return;
	case ML_MP_UINT:
		lua_pushnumber(L, (lua_Number)o.v.u);
		return;
	default: /* an ext value, which only logs of older versions hold (docs/codec.md) */
		ml_lua_push_ext(L, o.ext_type, o.ptr, o.n);
	}
}

/* Does the msgpack key at the reader equal the Lua key at index 2? Moves past the key. */
static int key_equals(lua_State *L, struct ml_msgpack_reader *r, int ktype, const char *ks,
		      size_t kn)
{
	struct ml_msgpack_obj o;
	if (ml_msgpack_read(r, &o) != 0)
		bad_bytes(L);
	switch (o.kind) {
	case ML_MP_STR:
	case ML_MP_BIN:
		return ktype == LUA_TSTRING && o.n == kn && memcmp(o.ptr, ks, kn) == 0;
	case ML_MP_INT:
		return ktype == LUA_TNUMBER && lua_tonumber(L, 2) == (lua_Number)o.v.i &&
		       (!lua_isinteger(L, 2) || lua_tointeger(L, 2) == o.v.i);
	case ML_MP_FLOAT64:
		return ktype == LUA_TNUMBER && lua_tonumber(L, 2) == o.v.d;
	case ML_MP_FLOAT32:
		return ktype == LUA_TNUMBER && lua_tonumber(L, 2) == (lua_Number)o.v.f;
	case ML_MP_BOOL:
		return ktype == LUA_TBOOLEAN && lua_toboolean(L, 2) == o.v.b;
	case ML_MP_ARRAY:
	case ML_MP_MAP:
		skip_values(L, r, o.kind == ML_MP_MAP ? 2 * (uint64_t)o.n : o.n);
		return 0;
	default:
		return 0;
	}
}

/* ---- the data view ---- */

static struct view *check_view(lua_State *L)
{
	return lua_touserdata(L, 1); /* only our metamethods get here, with our userdata */
}

static int map_index(lua_State *L, struct view *v)
{
	struct ml_msgpack_reader r;
	size_t kn = 0;
	int ktype = lua_type(L, 2);
	const char *ks = ktype == LUA_TSTRING ? lua_tolstring(L, 2, &kn) : NULL;
	ml_msgpack_reader_init(&r, v->first, (size_t)(v->end - v->first));
	lua_getiuservalue(L, 1, 1); /* the root event, for nested views: index 3 */
	for (uint32_t i = 0; i < v->n; i++) {
		if (key_equals(L, &r, ktype, ks, kn)) {
			push_value(L, &r, 3, 0);
			return 1;
		}
		skip_values(L, &r, 1);
	}
	lua_pushnil(L);
	return 1;
}

static int array_index(lua_State *L, struct view *v)
{
	int isnum;
	lua_Integer k = lua_tointegerx(L, 2, &isnum);
	if (!isnum || k < 1 || (lua_Unsigned)k > v->n) {
		lua_pushnil(L);
		return 1;
	}
	struct ml_msgpack_reader r;
	uint32_t i = v->cur_i;
	const uint8_t *p = v->cur_p;
	if ((uint32_t)k < i) /* the cursor serves ipairs and loops that count up */
		i = 1, p = v->first;
	ml_msgpack_reader_init(&r, p, (size_t)(v->end - p));
	skip_values(L, &r, (uint64_t)k - i);
	v->cur_i = (uint32_t)k;
	v->cur_p = r.p;
	lua_getiuservalue(L, 1, 1);
	push_value(L, &r, 3, 0);
	return 1;
}

static int view_index(lua_State *L)
{
	struct view *v = check_view(L);
	return v->is_map ? map_index(L, v) : array_index(L, v);
}

/* Length: an array's size; for a map, the border of its integer keys 1, 2, ... */
static int view_len(lua_State *L)
{
	struct view *v = check_view(L);
	lua_Integer n = 0;
	if (!v->is_map) {
		lua_pushinteger(L, v->n);
		return 1;
	}
	lua_settop(L, 1);
	for (;;) {
		lua_pushinteger(L, n + 1);
		map_index(L, v);
		int more = !lua_isnil(L, -1);
		lua_settop(L, 1);
		if (!more)
			break;
		n++;
	}
	lua_pushinteger(L, n);
	return 1;
}

/* The pairs iterator: upvalues 1 the metatable, 2 the byte offset, 3 the elements read. */
static int view_next(lua_State *L)
{
	struct view *v = check_view(L);
	lua_Integer off = lua_tointeger(L, lua_upvalueindex(2));
	lua_Integer done = lua_tointeger(L, lua_upvalueindex(3));
	struct ml_msgpack_reader r;
	lua_settop(L, 1);
	lua_getiuservalue(L, 1, 1); /* 2: the root */
	ml_msgpack_reader_init(&r, v->first + off, (size_t)(v->end - v->first - off));
	while ((lua_Unsigned)done < v->n) {
		done++;
		if (v->is_map)
			push_value(L, &r, 2, 1);
		else
			lua_pushinteger(L, done);
		if (lua_isnil(L, -1)) { /* a nil key: no Lua table could hold it */
			lua_pop(L, 1);
			skip_values(L, &r, 1);
			continue;
		}
		push_value(L, &r, 2, 1);
		lua_pushinteger(L, r.p - v->first);
		lua_replace(L, lua_upvalueindex(2));
		lua_pushinteger(L, done);
		lua_replace(L, lua_upvalueindex(3));
		return 2;
	}
	lua_pushnil(L);
	return 1;
}

/*
 * What __pairs returns for the view or event at index 1: `next` as a closure over
 * upvalue 1 (the view metatable) and `counters` zeros, then the object and nil.
 */
static int pairs_of(lua_State *L, lua_CFunction next, int counters)
{
	lua_pushvalue(L, lua_upvalueindex(1));
	for (int i = 0; i < counters; i++)
		lua_pushinteger(L, 0);
	lua_pushcclosure(L, next, 1 + counters);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

static int view_pairs(lua_State *L)
{
	return pairs_of(L, view_next, 2);
}

static size_t view_size(lua_State *L, struct view *v)
{
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, v->first, (size_t)(v->end - v->first));
	skip_values(L, &r, v->is_map ? 2 * (uint64_t)v->n : v->n);
	return (size_t)(r.p - v->obj);
}

static int view_tostring(lua_State *L)
{
	struct view *v = check_view(L);
	struct ml_buf b = {0};
	int rc = ml_msgpack_to_json(v->obj, view_size(L, v), &b);
	if (rc == 0)
		lua_pushlstring(L, b.data, b.len);
	ml_buf_free(&b);
	if (rc != 0)
		lua_pushfstring(L, "moonlog.view: %p", (void *)v);
	return 1;
}

static int view_eq(lua_State *L)
{
	struct view *a = lua_touserdata(L, 1), *b = lua_touserdata(L, 2);
	lua_pushboolean(L, a && b && a->obj == b->obj);
	return 1;
}

static int read_only(lua_State *L)
{
	return luaL_error(L, "events are read-only: their data cannot be changed (copy what you "
			     "keep into your state)");
}

/* ---- the event ---- */

static void push_bytes_value(lua_State *L, const uint8_t *p, uint32_t n, int root)
{
	struct ml_msgpack_reader r;
	if (n == 0) {
		lua_pushnil(L);
		return;
	}
	ml_msgpack_reader_init(&r, p, n);
	push_value(L, &r, root, 0);
}

/* e.data and e.meta: made once per event and kept in its uservalues, so e.data == e.data. */
static void push_cached(lua_State *L, struct ev *e, int slot, const uint8_t *p, uint32_t n)
{
	if (lua_getiuservalue(L, 1, slot) != LUA_TNIL || n == 0)
		return;
	lua_pop(L, 1);
	push_bytes_value(L, p, n, 1);
	lua_pushvalue(L, -1);
	lua_setiuservalue(L, 1, slot);
}

static int event_field(lua_State *L, struct ev *e, const char *k, size_t n)
{
	const char *b = (const char *)e->bytes;
	switch (n) {
	case 4:
		if (memcmp(k, "type", 4) == 0)
			lua_pushlstring(L, b + e->stream_len, e->type_len);
		else if (memcmp(k, "data", 4) == 0)
			push_cached(L, e, 1, EV_DATA(e), e->data_len);
		else if (memcmp(k, "meta", 4) == 0)
			push_cached(L, e, 2, EV_META(e), e->meta_len);
		else if (memcmp(k, "time", 4) == 0)
			lua_pushinteger(L, e->time);
		else
			return 0;
		return 1;
	case 6:
		if (memcmp(k, "stream", 6) != 0)
			return 0;
		lua_pushlstring(L, b, e->stream_len);
		return 1;
	case 2:
		if (memcmp(k, "id", 2) != 0)
			return 0;
		lua_pushlstring(L, b + e->stream_len + e->type_len, e->id_len);
		return 1;
	case 7:
		if (memcmp(k, "version", 7) != 0)
			return 0;
		lua_pushinteger(L, (lua_Integer)e->version);
		return 1;
	case 8:
		if (memcmp(k, "position", 8) != 0)
			return 0;
		lua_pushinteger(L, (lua_Integer)e->position);
		return 1;
	}
	return 0;
}

/* __index of the event: upvalue 1 is the view metatable. */
static int event_index(lua_State *L)
{
	size_t n;
	const char *k = lua_tolstring(L, 2, &n);
	if (k == NULL || lua_type(L, 2) != LUA_TSTRING ||
	    !event_field(L, lua_touserdata(L, 1), k, n))
		lua_pushnil(L);
	return 1;
}

static const char *const event_fields[] = {"position", "version", "time", "stream", "type",
					   "id",       "data",	  "meta", NULL};

static int event_next(lua_State *L)
{
	lua_Integer i = lua_tointeger(L, lua_upvalueindex(2));
	struct ev *e = lua_touserdata(L, 1);
	lua_settop(L, 1);
	for (; event_fields[i]; i++) {
		lua_pushstring(L, event_fields[i]);
		if (!event_field(L, e, event_fields[i], strlen(event_fields[i])) ||
		    lua_isnil(L, -1)) {
			lua_settop(L, 1);
			continue;
		}
		lua_pushinteger(L, i + 1);
		lua_replace(L, lua_upvalueindex(2));
		return 2;
	}
	lua_pushnil(L);
	return 1;
}

static int event_pairs(lua_State *L)
{
	return pairs_of(L, event_next, 1);
}

static int event_tostring(lua_State *L)
{
	struct ev *e = lua_touserdata(L, 1);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	luaL_addstring(&b, "event ");
	luaL_addlstring(&b, (const char *)e->bytes + e->stream_len, e->type_len);
	luaL_addchar(&b, ' ');
	luaL_addlstring(&b, (const char *)e->bytes, e->stream_len);
	lua_pushfstring(L, "@%I (position %I)", (lua_Integer)e->version, (lua_Integer)e->position);
	luaL_addvalue(&b);
	luaL_pushresult(&b);
	return 1;
}

static const luaL_Reg event_methods[] = {
    {"__index", event_index},
    {"__pairs", event_pairs},
    {"__newindex", read_only},
    {"__tostring", event_tostring},
    {NULL, NULL},
};

static const luaL_Reg view_methods[] = {
    {"__index", view_index},
    {"__len", view_len},
    {"__pairs", view_pairs},
    {"__newindex", read_only},
    {"__tostring", view_tostring},
    {"__eq", view_eq},
    {NULL, NULL},
};

/*
 * Fills the metatable at index mt: its methods, each a closure over the view
 * metatable (at index vw) as upvalue 1, and its name.
 */
static void fill_mt(lua_State *L, int mt, int vw, const luaL_Reg *methods, const char *name)
{
	lua_pushvalue(L, mt);
	lua_pushvalue(L, vw);
	luaL_setfuncs(L, methods, 1);
	lua_pushstring(L, name);
	lua_setfield(L, -2, "__name");
	lua_pushstring(L, name);
	lua_setfield(L, -2, "__metatable");
	lua_pop(L, 1);
}

void ml_view_open(lua_State *L)
{
	lua_newtable(L); /* SLOT_EVENT_MT */
	int ev = lua_gettop(L);
	lua_newtable(L); /* SLOT_VIEW_MT */
	int vw = ev + 1;
	fill_mt(L, ev, vw, event_methods, "moonlog.event");
	fill_mt(L, vw, vw, view_methods, "moonlog.view");
	lua_pushvalue(L, ev);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &event_mt_key);
	lua_pushvalue(L, vw);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &view_mt_key);
}

/* Pushes the event view, without its metatable (the caller sets it). Raises only on memory. */
void ml_view_push_event(lua_State *L, const struct ml_event *in)
{
	size_t n = (size_t)in->stream_len + in->type_len + in->id_len + in->meta_len + in->data_len;
	struct ev *e = lua_newuserdatauv(L, sizeof(*e) + n, 2);
	uint8_t *p = e->bytes;
	e->position = in->position;
	e->version = in->version;
	e->time = in->time;
	e->data_len = in->data_len;
	e->meta_len = in->meta_len;
	e->stream_len = in->stream_len;
	e->type_len = in->type_len;
	e->id_len = in->id_len;
	memcpy(p, in->stream, in->stream_len), p += in->stream_len;
	memcpy(p, in->type, in->type_len), p += in->type_len;
	if (in->id_len)
		memcpy(p, in->id, in->id_len), p += in->id_len;
	if (in->meta_len)
		memcpy(p, in->meta, in->meta_len), p += in->meta_len;
	if (in->data_len)
		memcpy(p, in->data, in->data_len);
}

/* Sets the event metatable on the event view at the top. */
void ml_view_set_event_mt(lua_State *L)
{
	lua_rawgetp(L, LUA_REGISTRYINDEX, &event_mt_key);
	lua_setmetatable(L, -2);
}

/* Which kind of view the value at idx is: 0 none, 1 an event, 2 a data view. */
int ml_view_kind(lua_State *L, int idx)
{
	if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
		return 0;
	int kind = 0;
	lua_rawgetp(L, LUA_REGISTRYINDEX, &event_mt_key);
	if (lua_rawequal(L, -1, -2))
		kind = 1;
	lua_pop(L, 1);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &view_mt_key);
	if (lua_rawequal(L, -1, -2))
		kind = 2;
	lua_pop(L, 2);
	return kind;
}

static void push_decoded(lua_State *L, const uint8_t *p, size_t n)
{
	if (n == 0) {
		lua_pushnil(L);
		return;
	}
	if (ml_lua_push_msgpack(L, p, n) != 0)
		luaL_error(L, "cannot decode the event's msgpack: %s", ml_diag_last());
}

/* Pushes an event as a plain table of its fields, data and meta decoded. */
static void push_table(lua_State *L, const struct ml_event *e)
{
	lua_createtable(L, 0, 8);
	lua_pushinteger(L, (lua_Integer)e->position);
	lua_setfield(L, -2, "position");
	lua_pushinteger(L, (lua_Integer)e->version);
	lua_setfield(L, -2, "version");
	lua_pushinteger(L, e->time);
	lua_setfield(L, -2, "time");
	lua_pushlstring(L, e->stream, e->stream_len);
	lua_setfield(L, -2, "stream");
	lua_pushlstring(L, e->type, e->type_len);
	lua_setfield(L, -2, "type");
	lua_pushlstring(L, e->id, e->id_len);
	lua_setfield(L, -2, "id");
	push_decoded(L, e->data, e->data_len);
	lua_setfield(L, -2, "data");
	push_decoded(L, e->meta, e->meta_len);
	lua_setfield(L, -2, "meta");
}

/* Pushes a plain Lua value for the view at idx: tables instead of views. */
void ml_view_push_decoded(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	if (ml_view_kind(L, idx) == 2) {
		struct view *v = lua_touserdata(L, idx);
		push_decoded(L, v->obj, view_size(L, v));
		return;
	}
	struct ev *e = lua_touserdata(L, idx);
	const char *b = (const char *)e->bytes;
	struct ml_event in = {
	    .position = e->position,
	    .version = e->version,
	    .time = e->time,
	    .stream = b,
	    .type = b + e->stream_len,
	    .id = b + e->stream_len + e->type_len,
	    .meta = EV_META(e),
	    .data = EV_DATA(e),
	    .stream_len = e->stream_len,
	    .type_len = e->type_len,
	    .id_len = e->id_len,
	    .meta_len = e->meta_len,
	    .data_len = e->data_len,
	};
	push_table(L, &in);
}

/* Pushes the event as a plain table that the script may change (an upcaster's argument). */
void ml_view_push_table(lua_State *L, const struct ml_event *e)
{
	if (!lua_checkstack(L, 8))
		luaL_error(L, "no room on the Lua stack for an event");
	push_table(L, e);
}
