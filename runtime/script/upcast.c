/*
 * upcast.c - which events a script's upcasters must see, decided in C.
 *
 * A script's upcasters (its own `upcasters` and the folder's upcasters.lua,
 * merged by runner.lua) turn old shapes of an event into the current one
 * (lua/moonlog/upcaster.lua). Most events need none, and a Lua call per event
 * to find that out would cost what the fold itself costs, so at load the types
 * they name and each one's current schema are copied into a small hash set
 * here. An event is handed to Lua's upcast only when its type is in the set and
 * its meta.schema (1 when absent) is below the current one; a script without
 * upcasters has no set, and its events pay one pointer test.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include <moonlog/msgpack.h>

#include "script_internal.h"

struct upcast_slot {
	char *type; /* NULL: empty */
	size_t len;
	int64_t current;
};

struct ml_upcast_set {
	uint64_t lengths[4]; /* bit n: a type of n bytes is in the set (types are < 256 bytes) */
	size_t mask;	     /* slots - 1, a power of two minus one */
	struct upcast_slot *slots;
};

static size_t type_hash(const char *t, size_t n)
{
	return (size_t)ml_hash64(t, n, 0x75706361);
}

static struct upcast_slot *find(const struct ml_upcast_set *u, const char *t, size_t n)
{
	for (size_t i = type_hash(t, n) & u->mask;; i = (i + 1) & u->mask) {
		struct upcast_slot *sl = &u->slots[i];
		if (sl->type == NULL || (sl->len == n && memcmp(sl->type, t, n) == 0))
			return sl;
	}
}

struct ml_upcast_set *ml_upcast_set_load(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	size_t n = 0;
	for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1))
		n++;
	if (n == 0)
		return NULL;
	size_t cap = 8;
	while (cap < 2 * n)
		cap *= 2;
	struct ml_upcast_set *u = ml_xcalloc(1, sizeof(*u));
	u->mask = cap - 1;
	u->slots = ml_xcalloc(cap, sizeof(*u->slots));
	for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
		size_t len;
		const char *t = lua_tolstring(L, -2, &len); /* keys are strings (upcaster.lua) */
		struct upcast_slot *sl = find(u, t, len);
		if (sl->type == NULL) {
			sl->type = ml_xstrndup(t, len);
			sl->len = len;
			u->lengths[(len & 255) >> 6] |= 1ull << (len & 63);
		}
		sl->current = lua_tointeger(L, -1);
	}
	return u;
}

void ml_upcast_set_free(struct ml_upcast_set *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i <= u->mask; i++)
		free(u->slots[i].type);
	free(u->slots);
	free(u);
}

/* meta.schema as upcaster.lua reads it: an integer >= 1, else 1. */
static int64_t schema_of(const uint8_t *meta, size_t len)
{
	struct ml_msgpack_reader r;
	struct ml_msgpack_obj o;
	if (len == 0) /* no meta (its pointer may be NULL) */
		return 1;
	ml_msgpack_reader_init(&r, meta, len);
	if (ml_msgpack_read(&r, &o) != 0 || o.kind != ML_MP_MAP)
		return 1;
	for (uint32_t i = 0; i < o.n; i++) {
		struct ml_msgpack_obj k = {0}; /* (gcc -O3 warns that k.ptr may be unset) */
		if (ml_msgpack_read(&r, &k) != 0)
			return 1;
		if (k.kind == ML_MP_ARRAY || k.kind == ML_MP_MAP) {
			if (ml_msgpack_skip_n(&r, k.kind == ML_MP_MAP ? 2 * (uint64_t)k.n : k.n))
				return 1;
		} else if (k.kind == ML_MP_STR && k.n == 6 && memcmp(k.ptr, "schema", 6) == 0) {
			struct ml_msgpack_obj v;
			if (ml_msgpack_read(&r, &v) != 0 || v.kind != ML_MP_INT || v.v.i < 1)
				return 1;
			return v.v.i;
		}
		if (ml_msgpack_skip_n(&r, 1) != 0)
			return 1;
	}
	return 1;
}

int ml_upcast_wanted(const struct ml_upcast_set *u, const struct ml_event *e)
{
	/* most types are told apart by their length alone, without hashing them */
	if (!(u->lengths[e->type_len >> 6] & (1ull << (e->type_len & 63))))
		return 0;
	const struct upcast_slot *sl = find(u, e->type, e->type_len);
	return sl->type != NULL && schema_of(e->meta, e->meta_len) < sl->current;
}

/*
 * Pushes the event at e in its current shape: a plain table through the upcast of the
 * runner at index `runner`. Raises what the upcaster raises.
 */
void ml_upcast_push(lua_State *L, int runner, const struct ml_event *e)
{
	lua_getfield(L, runner, "upcast");
	ml_view_push_table(L, e);
	lua_call(L, 1, 1);
}
