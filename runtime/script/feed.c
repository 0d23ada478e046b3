/*
 * feed.c - calling into a loaded script: events in (the hot path), and the
 * state, queries and commands out.
 *
 * Feeding an event is one lua_pcall of the trampoline, a C function that
 * builds the event's view inside the protected call (so that running out of
 * memory there is the script's fault, not a crash) and calls the runner's feed.
 * Everything that leaves the script goes through ml_view_encode, which turns
 * views back into plain values.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/route.h>

#include "script_internal.h"

/* Copies a handler's emitted events (the list at the top) out of Lua. */
static void collect_emits(lua_State *L, struct ml_script *s)
{
	int list = lua_gettop(L);
	size_t n = lua_type(L, list) == LUA_TTABLE ? lua_rawlen(L, list) : 0;
	struct {
		size_t stream, stream_len, type, type_len, data, data_len, meta, meta_len;
	} off;
	if (n > s->emits_cap) {
		s->emits = ml_xrealloc(s->emits, n * sizeof(*s->emits));
		s->emits_cap = n;
	}
	struct ml_buf *b = &s->emit_bytes;
	for (size_t i = 0; i < n; i++) {
		lua_rawgeti(L, list, (lua_Integer)i + 1);
		lua_getfield(L, -1, "stream");
		lua_getfield(L, -2, "type");
		const char *stream = lua_tolstring(L, -2, &off.stream_len);
		const char *type = lua_tolstring(L, -1, &off.type_len);
		if (!stream || !type)
			luaL_error(L, "emitted event %d has no stream or type", (int)i + 1);
		off.stream = b->len;
		ml_buf_add(b, stream, off.stream_len);
		off.type = b->len;
		ml_buf_add(b, type, off.type_len);
		lua_pop(L, 2);
		off.data = b->len;
		lua_getfield(L, -1, "data");
		ml_view_encode(L, -1, b, "data");
		off.data_len = b->len - off.data;
		off.meta = b->len;
		lua_getfield(L, -2, "meta");
		ml_view_encode(L, -1, b, "meta");
		off.meta_len = b->len - off.meta;
		/* What the log would refuse fails the handler here, where on_error applies,
		 * rather than its whole batch later. */
		if (ml_msgpack_check_value(b->data + off.data, off.data_len, "data") != 0 ||
		    ml_msgpack_check_value(b->data + off.meta, off.meta_len, "meta") != 0)
			luaL_error(L, "emitted event %d: %s", (int)i + 1, ml_diag_last());
		lua_pop(L, 3);
		/* Offsets now; the buffer may still move. */
		s->emits[i] = (struct ml_script_emit){(const char *)off.stream,
						      (const char *)off.type,
						      off.stream_len,
						      off.type_len,
						      (const uint8_t *)off.data,
						      (const uint8_t *)off.meta,
						      off.data_len,
						      off.meta_len};
	}
	for (size_t i = 0; i < n; i++) {
		struct ml_script_emit *e = &s->emits[i];
		e->stream = b->data + (size_t)e->stream;
		e->type = b->data + (size_t)e->type;
		e->data = (const uint8_t *)b->data + (size_t)e->data;
		e->meta = (const uint8_t *)b->data + (size_t)e->meta;
	}
	s->n_emits = n;
}

/* (event) -> (): upvalues 1 the event metatable, 2 the runner's feed, 3 the script. */
int ml_feed_trampoline(lua_State *L)
{
	const struct ml_event *e = lua_touserdata(L, 1);
	lua_pushvalue(L, lua_upvalueindex(2));
	ml_view_push_event(L, e);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_setmetatable(L, -2);
	lua_call(L, 1, 1);
	struct ml_script *s = lua_touserdata(L, lua_upvalueindex(3));
	if (s->kind == ML_SCRIPT_HANDLER)
		collect_emits(L, s);
	return 0;
}

/*
 * (event, runner, feed) -> (): an event an upcaster must see first (upcast.c). It reaches
 * the upcaster as
 * a plain table, and what comes out is fed to the runner's feed when the filter takes its
 * type (an upcaster may rename a type), for a handler with its emits collected. The stream
 * was matched already.
 */
int ml_feed_upcast(lua_State *L)
{
	const struct ml_event *e = lua_touserdata(L, 1);
	struct ml_script *s = ml_script_of(L);
	ml_upcast_push(L, 2, e);
	lua_getfield(L, -1, "type");
	size_t n;
	const char *type = lua_tolstring(L, -1, &n);
	int takes = type && ml_filter_match(s->filter, e->stream, e->stream_len, type, n);
	lua_pop(L, 1);
	if (!takes)
		return 0;
	s->delivered++;
	lua_pushvalue(L, 3);
	lua_insert(L, -2);
	lua_call(L, 1, 1);
	if (s->kind == ML_SCRIPT_HANDLER)
		collect_emits(L, s);
	return 0;
}

static void reset_outcome(struct ml_script *s)
{
	s->n_emits = 0;
	s->emit_bytes.len = 0;
	s->parked = s->skipped = 0;
	free(s->handler_error);
	s->handler_error = NULL;
}

static void forgive(struct ml_script *s, const char *why)
{
	s->handler_error = ml_xstrndup(why, strlen(why));
	s->skipped = 1;
	s->parked = s->on_error == 2;
	s->n_emits = 0;
}

/*
 * A handler's error under on_error = skip or park: recorded, not a fault. So is a
 * limit it reached, once what the call built is collected (a handler keeps no state
 * of the host's to leave half changed); a handler whose memory stays full faults.
 */
static int handler_forgives(struct ml_script *s)
{
	if (s->kind != ML_SCRIPT_HANDLER || s->on_error == 0)
		return 0;
	if (s->stop != ML_STOP_NONE) {
		char text[384];
		ml_script_limit_text(s, text, sizeof(text));
		if (ml_script_recover(s) != 0)
			return 0;
		forgive(s, text);
		return 1;
	}
	const char *msg = lua_tostring(s->L, -1);
	forgive(s, msg ? msg : "error");
	lua_pop(s->L, 1);
	return 1;
}

/* After the pcall of a feed: 0, or -1 when the script faulted (a handler that skips or parks
 * forgives itself). */
static int feed_done(struct ml_script *s, int rc)
{
	lua_State *L = s->L;
	if (rc == LUA_OK && s->stop == ML_STOP_NONE) {
		s->current = NULL;
		return 0;
	}
	if (rc == LUA_OK)
		lua_pushnil(L);
	if (handler_forgives(s)) {
		s->current = NULL;
		return 0;
	}
	ml_script_fail(s, NULL, 1);
	lua_settop(L, SLOT_COUNT);
	s->current = NULL;
	return -1;
}

/* An event of a type the upcasters name, at an old schema: upcast before the filter looks at
 * its type (ml_feed_upcast), when the filter takes its stream. */
static int feed_upcast(struct ml_script *s, const struct ml_event *e)
{
	if (!ml_filter_match_stream(s->filter, e->stream, e->stream_len))
		return 0;
	lua_State *L = s->L;
	s->current = e;
	lua_pushcfunction(L, ml_feed_upcast);
	lua_pushlightuserdata(L, (void *)e);
	lua_pushvalue(L, SLOT_RUNNER);
	lua_pushvalue(L, SLOT_FEED);
	ml_script_arm(s, e->position);
	int rc = lua_pcall(L, 3, 0, SLOT_MSGH);
	ml_script_disarm(s);
	return feed_done(s, rc);
}

int ml_script_feed(struct ml_script *s, const struct ml_event *e)
{
	if (s->fault)
		return ml_diag_set(ML_ERR_SCRIPT, "%s", s->fault);
	if (e->position != 0 && e->position <= s->position)
		return 0;
	if (s->n_emits || s->skipped)
		reset_outcome(s);
	s->position = e->position ? e->position : s->position;
	s->events++;
	if (s->up && ml_upcast_wanted(s->up, e)) /* a script without upcasters: one test */
		return feed_upcast(s, e);
	if (!ml_filter_match(s->filter, e->stream, e->stream_len, e->type, e->type_len))
		return 0;
	s->delivered++;

	lua_State *L = s->L;
	s->current = e;
	lua_pushvalue(L, SLOT_TRAMPOLINE);
	lua_pushlightuserdata(L, (void *)e);
	if (s->fold)
		ml_script_arm_feed(s, e->position);
	else
		ml_script_arm(s, e->position);
	int rc = lua_pcall(L, 1, 0, SLOT_MSGH);
	ml_script_disarm(s);
	return feed_done(s, rc);
}

int ml_script_pass(struct ml_script *s, const struct ml_event *e, const char *why)
{
	if (s->fault)
		return ml_diag_set(ML_ERR_SCRIPT, "%s", s->fault);
	if (s->n_emits || s->skipped)
		reset_outcome(s);
	s->position = e->position;
	s->events++;
	if (s->kind == ML_SCRIPT_HANDLER && s->on_error != 0) {
		forgive(s, why);
		return 0;
	}
	struct ml_buf b = {0};
	ml_buf_addf(&b, "%s (recorded before a restart: reload the script to run it again)", why);
	s->fault = ml_xstrndup(b.data, b.len);
	s->fault_limit = 1;
	ml_buf_free(&b);
	return ml_diag_set(ML_ERR_SCRIPT, "%s", s->fault);
}

void ml_script_outcome(const struct ml_script *s, struct ml_script_outcome *out)
{
	out->emits = s->emits;
	out->n_emits = s->n_emits;
	out->parked = s->parked;
	out->skipped = s->skipped;
	out->error = s->handler_error;
}

/* ---- reading the state ---- */

struct call {
	struct ml_script *s;
	const char *name, *key;
	size_t key_len;
	const void *args;
	size_t args_len;
	struct ml_buf *out;
	int lua_text;
};

/* Calls runner[verb] with the arguments above the two of a pcall'd function. */
static void runner_call(lua_State *L, const char *verb, int nargs, int nresults)
{
	lua_getfield(L, 1, verb);
	if (lua_isnil(L, -1))
		luaL_error(L, "a %s has no %s", ml_script_kind_name(ml_script_of(L)->kind), verb);
	lua_insert(L, -nargs - 1);
	lua_call(L, nargs, nresults);
}

static void emit_result(lua_State *L, struct call *c)
{
	if (c->lua_text) {
		ml_view_push_plain(L, -1);
		runner_call(L, "show", 1, 1);
		size_t n;
		const char *t = lua_tolstring(L, -1, &n);
		ml_buf_add(c->out, t, n);
	} else {
		ml_view_encode(L, -1, c->out, c->name);
	}
}

static int l_state(lua_State *L)
{
	struct call *c = lua_touserdata(L, 2);
	runner_call(L, "state", 0, 1);
	emit_result(L, c);
	return 0;
}

static int l_get(lua_State *L)
{
	struct call *c = lua_touserdata(L, 2);
	lua_pushlstring(L, c->key, c->key_len);
	runner_call(L, "get", 1, 1);
	emit_result(L, c);
	return 0;
}

static int l_query(lua_State *L)
{
	struct call *c = lua_touserdata(L, 2);
	int base = lua_gettop(L);
	lua_pushstring(L, c->name);
	int nargs = 1;
	if (c->args_len) {
		if (ml_lua_push_msgpack(L, c->args, c->args_len) != 0)
			luaL_error(L, "the query's arguments: %s", ml_diag_last());
		if (!lua_istable(L, -1))
			luaL_error(L, "the query's arguments must be a msgpack array");
		int t = lua_gettop(L);
		lua_Integer n = (lua_Integer)lua_rawlen(L, t);
		luaL_checkstack(L, (int)n + 4, "too many query arguments");
		for (lua_Integer i = 1; i <= n; i++)
			lua_rawgeti(L, t, i);
		lua_remove(L, t);
		nargs += (int)n;
	}
	runner_call(L, "query", nargs, 1);
	(void)base;
	emit_result(L, c);
	return 0;
}

int ml_script_state(struct ml_script *s, struct ml_buf *out)
{
	struct call c = {.s = s, .name = "state", .out = out};
	return ml_script_pcall(s, l_state, &c, 0, "state", 1);
}

int ml_script_state_lua(struct ml_script *s, struct ml_buf *out)
{
	struct call c = {.s = s, .name = "state", .out = out, .lua_text = 1};
	return ml_script_pcall(s, l_state, &c, 0, "state", 1);
}

int ml_script_get(struct ml_script *s, const char *key, size_t key_len, struct ml_buf *out)
{
	struct call c = {.s = s, .name = "state", .key = key, .key_len = key_len, .out = out};
	return ml_script_pcall(s, l_get, &c, 0, "get", 1);
}

int ml_script_query(struct ml_script *s, const char *name, const void *args, size_t args_len,
		    struct ml_buf *out)
{
	if (s->kind != ML_SCRIPT_PROJECTION)
		return ml_diag_set(ML_ERR_USAGE,
				   "script %s is a %s: only projections answer queries", s->name,
				   ml_script_kind_name(s->kind));
	struct call c = {.s = s, .name = name, .args = args, .args_len = args_len, .out = out};
	return ml_script_pcall(s, l_query, &c, 0, "query", 1);
}
