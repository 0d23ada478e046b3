/*
 * fold.c - feeding a plain projection (one state, no partition) from C, which
 * is what a replay and a projection's catch-up spend their time in.
 *
 * The projection's handlers are read once, at load, into a table of their
 * own keyed by event type, each with its shape (shape.c). Per event:
 *
 * - the handler is found from the type's bytes, without a Lua string or a
 *   Lua table lookup;
 * - a plain handler (one that only reads fields by name and keeps nothing)
 *   gets the fields it reads, decoded into tables that are reused from one
 *   event to the next: no view, no userdata, nothing for the collector; any
 *   other handler, or an event whose data or meta the tables cannot stand for
 *   (not a map, or a field that is itself a map, an array or an ext value),
 *   gets the view of view.c;
 * - a handler that runs straight through (no loop) runs without the count
 *   hook; the first thing it calls turns the hook on, with the handler's
 *   length charged to the budget (limits.c).
 *
 * The Lua side: upvalue 2 of the trampoline is an array with four entries per
 * handler: the function, the event table, the data table and the meta table
 * (the last three only for plain handlers); up to UPVALUE_HANDLERS handlers,
 * the same values follow as upvalues 4, 5, ...
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include "script_internal.h"

enum {
	F_POSITION = 1,
	F_VERSION = 2,
	F_TIME = 4,
	F_STREAM = 8,
	F_TYPE = 16,
	F_ID = 32,
	F_DATA = 64,
	F_META = 128
};

struct fold_handler {
	char *type; /* NULL for "*" */
	size_t type_len;
	struct ml_shape shape;
	uint32_t unhooked;	/* its length, when it may run without the count hook; else 0 */
	int data_set, meta_set; /* the event table's data / meta hold their tables */
};

struct ml_fold {
	struct fold_handler *h;
	size_t n;
	struct fold_handler *any;
	size_t n_typed;	 /* handlers of a type (not "*") */
	uint32_t *index; /* open addressing by the type's hash: handler + 1, 0 empty */
	uint32_t mask;
	int upvalues; /* the handlers' four values are upvalues of the trampoline too */
};

/* With this many handlers or fewer, their values are upvalues of the trampoline too (at most
 * 255, and an upvalue is pushed faster than a table's entry). */
#define UPVALUE_HANDLERS 60

static uint32_t hash_type(const char *t, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)t[i]) * 16777619u;
	return h;
}

static struct fold_handler *find(const struct ml_fold *f, const char *t, size_t n)
{
	if (f->n_typed == 0) /* only "*" */
		return f->any;
	for (uint32_t i = hash_type(t, n) & f->mask;; i = (i + 1) & f->mask) {
		uint32_t at = f->index[i];
		if (at == 0)
			return f->any;
		struct fold_handler *h = &f->h[at - 1];
		if (h->type_len == n && memcmp(h->type, t, n) == 0)
			return h;
	}
}

void ml_fold_free(struct ml_fold *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->h[i].type);
		ml_shape_clear_keys(&f->h[i].shape);
	}
	free(f->h);
	free(f->index);
	free(f);
}

/* Pushes entry `at` (4 * handler + 1..4) of the handlers: the function, the event table, ... */
static void push_slot(lua_State *L, const struct ml_fold *f, int at)
{
	if (f->upvalues)
		lua_pushvalue(L, lua_upvalueindex(3 + at));
	else
		lua_rawgeti(L, lua_upvalueindex(2), at);
}

/* ---- plain fields ---- */

/* Pushes a scalar msgpack value at the reader; -1 (nothing pushed) for a container or ext. */
static int push_scalar(lua_State *L, struct ml_msgpack_reader *r)
{
	struct ml_msgpack_obj o;
	if (ml_msgpack_read(r, &o) != 0)
		return -1;
	return ml_lua_push_scalar(L, &o);
}

/*
 * Sets the keys a handler reads of a map (e.data or e.meta) in the table at t,
 * as the view would answer them: the first pair whose key is that string, or
 * nil. -1 when a value read is not a scalar, or the bytes are not a map.
 */
static int fill_map(lua_State *L, int t, const uint8_t *p, uint32_t len, char **keys, size_t nkeys)
{
	struct ml_msgpack_reader r;
	struct ml_msgpack_obj o;
	uint64_t found = 0, all = nkeys >= 64 ? ~0ull : (1ull << nkeys) - 1;
	ml_msgpack_reader_init(&r, p, len);
	if (ml_msgpack_read(&r, &o) != 0 || o.kind != ML_MP_MAP)
		return -1;
	for (uint32_t i = 0; i < o.n && found != all; i++) {
		struct ml_msgpack_obj k;
		size_t which = nkeys;
		if (ml_msgpack_read(&r, &k) != 0)
			return -1;
		if (k.kind == ML_MP_STR || k.kind == ML_MP_BIN) {
			for (size_t j = 0; j < nkeys; j++)
				if (!(found & (1ull << j)) && strlen(keys[j]) == k.n &&
				    memcmp(keys[j], k.ptr, k.n) == 0) {
					which = j;
					break;
				}
		} else if (k.kind == ML_MP_MAP || k.kind == ML_MP_ARRAY) {
			if (ml_msgpack_skip_n(&r, k.kind == ML_MP_MAP ? 2 * (uint64_t)k.n : k.n))
				return -1;
		}
		if (which == nkeys) {
			if (ml_msgpack_skip_n(&r, 1) != 0)
				return -1;
			continue;
		}
		if (push_scalar(L, &r) != 0)
			return -1;
		lua_setfield(L, t, keys[which]);
		found |= 1ull << which;
	}
	for (size_t j = 0; j < nkeys; j++)
		if (!(found & (1ull << j))) {
			lua_pushnil(L);
			lua_setfield(L, t, keys[j]);
		}
	return 0;
}

/* e.data or e.meta in the event table at et: nil without bytes, else the table at t. */
static int fill_part(lua_State *L, int et, int t, const char *name, int *set, const uint8_t *p,
		     uint32_t len, char **keys, size_t nkeys)
{
	if (len == 0) {
		if (*set) {
			lua_pushnil(L);
			lua_setfield(L, et, name);
			*set = 0;
		}
		return 0;
	}
	if (fill_map(L, t, p, len, keys, nkeys) != 0)
		return -1;
	if (!*set) {
		lua_pushvalue(L, t);
		lua_setfield(L, et, name);
		*set = 1;
	}
	return 0;
}

/*
 * Pushes the event table of a plain handler with what it reads of e filled in;
 * -1, with nothing pushed, when the event is one the tables cannot stand for.
 */
static int push_plain(lua_State *L, const struct ml_fold *fold, struct fold_handler *h, int slot,
		      const struct ml_event *e)
{
	int base = lua_gettop(L);
	uint8_t f = h->shape.fields;
	push_slot(L, fold, slot + 2);
	int et = base + 1;
	if (f & F_DATA) {
		push_slot(L, fold, slot + 3);
		if (fill_part(L, et, base + 2, "data", &h->data_set, e->data, e->data_len,
			      h->shape.data_keys, h->shape.n_data) != 0)
			goto cannot;
		lua_settop(L, et);
	}
	if (f & F_META) {
		push_slot(L, fold, slot + 4);
		if (fill_part(L, et, base + 2, "meta", &h->meta_set, e->meta, e->meta_len,
			      h->shape.meta_keys, h->shape.n_meta) != 0)
			goto cannot;
		lua_settop(L, et);
	}
	if (f & F_STREAM) {
		lua_pushlstring(L, e->stream, e->stream_len);
		lua_setfield(L, et, "stream");
	}
	if (f & F_TYPE) {
		lua_pushlstring(L, e->type, e->type_len);
		lua_setfield(L, et, "type");
	}
	if (f & F_ID) {
		lua_pushlstring(L, e->id_len ? e->id : "", e->id_len);
		lua_setfield(L, et, "id");
	}
	if (f & F_POSITION) {
		lua_pushinteger(L, (lua_Integer)e->position);
		lua_setfield(L, et, "position");
	}
	if (f & F_VERSION) {
		lua_pushinteger(L, (lua_Integer)e->version);
		lua_setfield(L, et, "version");
	}
	if (f & F_TIME) {
		lua_pushinteger(L, e->time);
		lua_setfield(L, et, "time");
	}
	return 0;
cannot:
	lua_settop(L, base);
	return -1;
}

/* ---- feeding ---- */

/* (event) -> (): upvalues 1 the event metatable, 2 the handlers, 3 the state's cell.
 */
static int fold_feed(lua_State *L)
{
	const struct ml_event *e = lua_touserdata(L, 1);
	struct ml_script *s = ml_script_of(L);
	struct fold_handler *h = find(s->fold, e->type, e->type_len);
	if (h == NULL)
		return 0;
	int slot = 4 * (int)(h - s->fold->h);
	push_slot(L, s->fold, slot + 1);
	lua_rawgeti(L, lua_upvalueindex(3), 1);
	uint32_t unhooked = h->unhooked;
	if (h->shape.takes_event) {
		if (h->shape.plain && push_plain(L, s->fold, h, slot, e) == 0) {
			s->fed_plain++;
		} else {
			ml_view_push_event(L, e);
			lua_pushvalue(L, lua_upvalueindex(1));
			lua_setmetatable(L, -2);
			unhooked = 0; /* reading a view calls its metamethods */
		}
	}
	ml_script_hook_for(s, unhooked);
	lua_call(L, h->shape.takes_event ? 2 : 1, 1);
	ml_script_hook_done(s);
	if (!lua_isnil(L, -1))
		lua_rawseti(L, lua_upvalueindex(3), 1);
	return 0;
}

/* A table with room for the names a plain handler reads (so that filling it never grows it). */
static void new_table(lua_State *L, size_t fields)
{
	lua_createtable(L, 0, (int)(fields < 64 ? fields : 64));
}

static void add_handler(lua_State *L, struct ml_script *s, struct ml_fold *f, int handlers,
			const char *type, size_t len, int fn)
{
	struct fold_handler *h = &f->h[f->n];
	int slot = 4 * (int)f->n++;
	memset(h, 0, sizeof(*h));
	h->type = type ? ml_xstrndup(type, len) : NULL;
	h->type_len = len;
	ml_shape_read(L, fn, &h->shape);
	if (h->shape.straight && h->shape.length <= s->insn_limit &&
	    (h->shape.plain || !h->shape.takes_event))
		h->unhooked = h->shape.length;
	lua_pushvalue(L, fn);
	lua_rawseti(L, handlers, slot + 1);
	if (!h->shape.plain)
		return;
	new_table(L, 8);
	lua_rawseti(L, handlers, slot + 2);
	new_table(L, h->shape.n_data);
	lua_rawseti(L, handlers, slot + 3);
	new_table(L, h->shape.n_meta);
	lua_rawseti(L, handlers, slot + 4);
}

void ml_fold_open(lua_State *L, struct ml_script *s, int on, int cell)
{
	on = lua_absindex(L, on);
	cell = lua_absindex(L, cell);
	struct ml_fold *f = ml_xcalloc(1, sizeof(*f));
	size_t n = 0;
	lua_pushnil(L);
	while (lua_next(L, on)) { /* the DSL has checked: string keys, function values */
		n++;
		lua_pop(L, 1);
	}
	f->h = ml_xcalloc(n ? n : 1, sizeof(*f->h));
	uint32_t cap = 8;
	while (cap < 2 * n)
		cap *= 2;
	f->index = ml_xcalloc(cap, sizeof(*f->index));
	f->mask = cap - 1;
	ml_fold_free(s->fold);
	s->fold = f;

	lua_pushvalue(L, SLOT_EVENT_MT);
	lua_createtable(L, 4 * (int)n, 0);
	int handlers = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, on)) {
		size_t len;
		const char *type = lua_tolstring(L, -2, &len);
		int any = len == 1 && type[0] == '*';
		add_handler(L, s, f, handlers, any ? NULL : type, len, lua_gettop(L));
		if (any) {
			f->any = &f->h[f->n - 1];
		} else {
			uint32_t i = hash_type(type, len) & f->mask;
			while (f->index[i])
				i = (i + 1) & f->mask;
			f->index[i] = (uint32_t)f->n;
			f->n_typed++;
		}
		lua_pop(L, 1);
	}
	lua_pushvalue(L, cell);
	f->upvalues = n <= UPVALUE_HANDLERS;
	for (int at = 1; f->upvalues && at <= 4 * (int)n; at++)
		lua_rawgeti(L, handlers, at);
	lua_pushcclosure(L, fold_feed, f->upvalues ? 3 + 4 * (int)n : 3);
}
