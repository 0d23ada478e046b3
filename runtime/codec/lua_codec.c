/*
 * lua_codec.c - msgpack to Lua values and back: how events reach scripts and
 * how the events scripts emit are stored.
 *
 * Both directions sit in hot loops (replay decodes every event into tables), so
 * the decoder reads straight from the bytes onto the Lua stack and the encoder
 * writes straight into the output buffer. Neither raises a Lua error for bad
 * input: they return -1 with a diag and leave the stack as they found it. The
 * rules (empty tables, holes, integers, depth) are in docs/codec.md.
 */
#include "codec_internal.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>

#include <lauxlib.h>
#include <lua.h>

/* Stack slots one nesting level may hold: the table, a key and a value. */
#define STACK_NEED (3 * ML_CODEC_MAX_DEPTH + 8)

static const char array_mt_key = 'a';

void ml_lua_push_array_mt(lua_State *L)
{
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key) == LUA_TTABLE)
		return;
	lua_pop(L, 1);
	lua_createtable(L, 0, 1);
	lua_pushboolean(L, 1);
	lua_setfield(L, -2, "__array");
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
}

/* ---- decoding: msgpack -> Lua ---- */

static int push_value(lua_State *L, struct ml_msgpack_reader *r, int depth);

void ml_lua_push_ext(lua_State *L, int type, const void *bytes, size_t n)
{
	luaL_Buffer b; /* Lua's memory: nothing leaks if Lua raises for want of it */
	lua_createtable(L, 0, 2);
	lua_pushinteger(L, type);
	lua_setfield(L, -2, "$ext");
	char *o = luaL_buffinitsize(L, &b, ML_BASE64_SIZE(n));
	luaL_pushresultsize(&b, ml_codec_base64(o, bytes, n));
	lua_setfield(L, -2, "base64");
}

/* Each element takes at least a byte, so a count beyond the bytes left is a lie. */
static int check_count(const struct ml_msgpack_reader *r, const uint8_t *at, uint64_t bytes,
		       int depth)
{
	if (depth >= ML_CODEC_MAX_DEPTH)
		return ml_msgpack_err_depth(r, at);
	if (bytes > ml_msgpack_left(r) || bytes > INT_MAX)
		return ml_diag_set(ML_ERR_USAGE,
				   "invalid msgpack: the %s at byte %zu announces more elements "
				   "than the %zu bytes left can hold",
				   ml_msgpack_format_name(*at), (size_t)(at - r->base),
				   ml_msgpack_left(r));
	return 0;
}

static int push_array(lua_State *L, struct ml_msgpack_reader *r, uint32_t n, const uint8_t *at,
		      int depth)
{
	if (check_count(r, at, n, depth) != 0)
		return -1;
	lua_createtable(L, (int)n, 0);
	if (n == 0) {
		/* So that an empty array encodes back as an array, not an empty map. */
		ml_lua_push_array_mt(L);
		lua_setmetatable(L, -2);
		return 0;
	}
	for (uint32_t i = 1; i <= n; i++) {
		if (push_value(L, r, depth + 1) != 0)
			return -1;
		lua_rawseti(L, -2, i);
	}
	return 0;
}

static int push_map(lua_State *L, struct ml_msgpack_reader *r, uint32_t n, const uint8_t *at,
		    int depth)
{
	if (check_count(r, at, 2 * (uint64_t)n, depth) != 0)
		return -1;
	lua_createtable(L, 0, (int)n);
	for (uint32_t i = 0; i < n; i++) {
		if (push_value(L, r, depth + 1) != 0)
			return -1;
		if (push_value(L, r, depth + 1) != 0)
			return -1;
		/*
		 * No Lua table can hold a nil or NaN key (lua_rawset would raise): the log
		 * refuses them, and an entry of an older log that has one is left out, as
		 * the event view's pairs() does.
		 */
		if (lua_isnil(L, -2) || (lua_type(L, -2) == LUA_TNUMBER && !lua_isinteger(L, -2) &&
					 isnan(lua_tonumber(L, -2))))
			lua_pop(L, 2);
		else
			lua_rawset(L, -3);
	}
	return 0;
}

int ml_lua_push_scalar(lua_State *L, const struct ml_msgpack_obj *o)
{
	switch (o->kind) {
	case ML_MP_STR:
	case ML_MP_BIN:
		lua_pushlstring(L, o->ptr, o->n);
		return 0;
	case ML_MP_INT:
		lua_pushinteger(L, o->v.i);
		return 0;
	case ML_MP_NIL:
		lua_pushnil(L);
		return 0;
	case ML_MP_BOOL:
		lua_pushboolean(L, o->v.b);
		return 0;
	case ML_MP_FLOAT64:
		lua_pushnumber(L, o->v.d);
		return 0;
	case ML_MP_FLOAT32:
		lua_pushnumber(L, o->v.f);
		return 0;
	case ML_MP_UINT:
		lua_pushnumber(L, (lua_Number)o->v.u);
		return 0;
	default:
		return -1;
	}
}

static int push_value(lua_State *L, struct ml_msgpack_reader *r, int depth)
{
	struct ml_msgpack_obj o;
	const uint8_t *at = r->p;
	if (ml_msgpack_read(r, &o) != 0)
		return -1;
	switch (o.kind) {
	case ML_MP_MAP:
		return push_map(L, r, o.n, at, depth);
	case ML_MP_ARRAY:
		return push_array(L, r, o.n, at, depth);
	case ML_MP_EXT:
		ml_lua_push_ext(L, o.ext_type, o.ptr, o.n);
		return 0;
	default:
		return ml_lua_push_scalar(L, &o);
	}
}

int ml_lua_push_msgpack(lua_State *L, const void *mp, size_t len)
{
	struct ml_msgpack_reader r;
	int top = lua_gettop(L);

	if (!lua_checkstack(L, STACK_NEED))
		return ml_diag_set(ML_ERR_USAGE, "cannot decode into Lua: the Lua stack is full");
	ml_msgpack_reader_init(&r, mp, len);
	if (push_value(L, &r, 0) != 0 || (r.p != r.end && ml_msgpack_err_trailing(&r))) {
		lua_settop(L, top);
		return -1;
	}
	return 0;
}

/* ---- encoding: Lua -> msgpack ---- */

struct encoder {
	lua_State *L;
	struct ml_buf *out;
	const char *root;
	int depth; /* tables open on the current path */
	/* Per open table: itself (to catch cycles) and where the walk is in it. */
	struct {
		const void *table;
		int key; /* stack index of the current key, or 0 in an array */
		lua_Integer index;
	} path[ML_CODEC_MAX_DEPTH];
};

static void path_key(struct encoder *e, struct ml_buf *b, int level)
{
	lua_State *L = e->L;
	int k = e->path[level].key;
	size_t n;
	if (k == 0) {
		ml_buf_addf(b, "[%lld]", (long long)e->path[level].index);
	} else if (lua_type(L, k) == LUA_TSTRING) {
		const char *s = lua_tolstring(L, k, &n);
		ml_codec_path_key(b, s, n);
	} else if (lua_isinteger(L, k)) {
		ml_buf_addf(b, "[%lld]", (long long)lua_tointeger(L, k));
	} else {
		ml_buf_addf(b, "[%.14g]", (double)lua_tonumber(L, k));
	}
}

/* "cannot encode <what> at value.a[2]", the path through the first `levels` open tables. */
__attribute__((format(printf, 3, 4))) static int fail(struct encoder *e, int levels,
						      const char *fmt, ...)
{
	struct ml_buf b = {0};
	va_list ap;

	ml_buf_add(&b, "cannot encode ", 14);
	va_start(ap, fmt);
	char what[128];
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	ml_buf_addf(&b, "%s at %s", what, e->root);
	for (int i = 0; i < levels; i++)
		path_key(e, &b, i);
	ml_buf_add(&b, "", 1);
	ml_diag_set(ML_ERR_USAGE, "%s", b.data);
	ml_buf_free(&b);
	return -1;
}

static int encode_value(struct encoder *e, int idx);

/*
 * Looks for a true __array in the metatable by walking it: pushing the string
 * "__array" could start a GC step, whose finalizers could change the tables being
 * walked or re-enter the caller, and lua_getfield could call a metamethod. The
 * encoder allocates nothing from Lua, so none of that can happen while it runs.
 */
static int has_array_mt(lua_State *L, int idx)
{
	int yes = 0;
	if (!lua_getmetatable(L, idx))
		return 0;
	lua_pushnil(L);
	while (lua_next(L, -2)) { /* mt key value */
		size_t n = 0;
		const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &n) : NULL;
		if (n == 7 && memcmp(k, "__array", 7) == 0) {
			yes = lua_toboolean(L, -1);
			lua_pop(L, 2);
			break;
		}
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return yes;
}

/* 1 if the keys of the table are exactly 1 .. n. */
static int is_sequence(lua_State *L, int idx, lua_Unsigned n)
{
	lua_Unsigned count = 0;
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
		    (lua_Unsigned)lua_tointeger(L, -1) > n) {
			lua_pop(L, 1);
			return 0;
		}
		count++;
	}
	return count == n;
}

static int encode_array(struct encoder *e, int idx, lua_Unsigned n)
{
	lua_State *L = e->L;
	int level = e->depth - 1;
	if (n > UINT32_MAX)
		return fail(e, e->depth, "an array of more than 2^32 - 1 elements");
	ml_msgpack_put_array(e->out, (uint32_t)n);
	e->path[level].key = 0;
	for (lua_Unsigned i = 1; i <= n; i++) {
		lua_rawgeti(L, idx, (lua_Integer)i);
		e->path[level].index = (lua_Integer)i;
		if (encode_value(e, lua_gettop(L)) != 0)
			return -1;
		lua_pop(L, 1);
	}
	return 0;
}

static int encode_key(struct encoder *e, int idx)
{
	lua_State *L = e->L;
	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
	case LUA_TNUMBER:
		return encode_value(e, idx);
	default:
		return fail(e, e->depth - 1,
			    "a table with a %s key (keys must be strings or numbers)",
			    luaL_typename(L, idx));
	}
}

/* The count is known only at the end, so the header is fixed afterwards. */
static int encode_map(struct encoder *e, int idx)
{
	lua_State *L = e->L;
	int level = e->depth - 1;
	size_t head = e->out->len;
	uint32_t n = 0;

	ml_msgpack_put_byte(e->out, 0x80);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		int key = lua_gettop(L) - 1;
		e->path[level].key = key;
		if (n == UINT32_MAX)
			return fail(e, level, "a table of more than 2^32 - 1 entries");
		if (encode_key(e, key) != 0 || encode_value(e, key + 1) != 0)
			return -1;
		lua_pop(L, 1);
		n++;
	}
	ml_msgpack_fix_head(e->out, head, 1, n);
	return 0;
}

static int encode_table(struct encoder *e, int idx)
{
	lua_State *L = e->L;
	const void *t = lua_topointer(L, idx);
	if (e->depth >= ML_CODEC_MAX_DEPTH)
		return fail(e, e->depth, "tables nested deeper than %d levels", ML_CODEC_MAX_DEPTH);
	for (int i = 0; i < e->depth; i++)
		if (e->path[i].table == t)
			return fail(e, e->depth, "a table that contains itself (a cycle)");
	e->path[e->depth++].table = t;

	lua_Unsigned n = lua_rawlen(L, idx);
	int rc;
	if (has_array_mt(L, idx) || (n > 0 && is_sequence(L, idx, n)))
		rc = encode_array(e, idx, n);
	else
		rc = encode_map(e, idx);
	if (rc == 0)
		e->depth--;
	return rc;
}

static int encode_value(struct encoder *e, int idx)
{
	lua_State *L = e->L;
	size_t n;
	const char *s;
	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &n);
		if (n > UINT32_MAX)
			return fail(e, e->depth, "a string longer than 4 GiB");
		ml_msgpack_put_str(e->out, s, n);
		return 0;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			ml_msgpack_put_int(e->out, lua_tointeger(L, idx));
		else
			ml_msgpack_put_double(e->out, lua_tonumber(L, idx));
		return 0;
	case LUA_TTABLE:
		return encode_table(e, idx);
	case LUA_TBOOLEAN:
		ml_msgpack_put_bool(e->out, lua_toboolean(L, idx));
		return 0;
	case LUA_TNIL:
		ml_msgpack_put_nil(e->out);
		return 0;
	default:
		return fail(e, e->depth, "a %s", luaL_typename(L, idx));
	}
}

int ml_lua_to_msgpack_named(lua_State *L, int idx, struct ml_buf *out, const char *name)
{
	struct encoder e; /* not zeroed: path[] is written before it is read */
	int top = lua_gettop(L);
	size_t start = out->len;

	e.L = L;
	e.out = out;
	e.root = name ? name : "value";
	e.depth = 0;
	idx = lua_absindex(L, idx);
	if (!lua_checkstack(L, STACK_NEED))
		return ml_diag_set(ML_ERR_USAGE, "cannot encode: the Lua stack is full");
	int rc = encode_value(&e, idx);
	lua_settop(L, top);
	if (rc != 0)
		out->len = start;
	return rc;
}

int ml_lua_to_msgpack(lua_State *L, int idx, struct ml_buf *out)
{
	return ml_lua_to_msgpack_named(L, idx, out, NULL);
}
