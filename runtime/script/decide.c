/*
 * decide.c - running a decider's command: find the target stream, bring its
 * state up to the stream's version, decide, and hand the new events (or the
 * rejection) to the caller, who appends them with the version the state was
 * built at.
 *
 * The state comes from the decider's cache (cache.c) when it holds the stream:
 * only the events after the cached version are read and folded. Otherwise the
 * whole stream is folded from `init`. `decide` gets a copy of the state, so a
 * decide that changes its argument (and then rejects, raises, or loses a
 * version race) never changes what the next command sees.
 *
 * Events are read into C memory first (a buffer the script owns and reuses)
 * and only then turned into views, so that no Lua error can unwind through the
 * log's reader.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include <moonlog/route.h>

#include "script_internal.h"

/* The events of one stream read from the log, copied out of it. */
struct history {
	struct ml_buf bytes;
	struct ml_event *events;
	size_t n, cap;
};

struct ml_decider {
	struct ml_decider_cache *cache; /* NULL: no cache */
	struct history h;
	int fields; /* of the last state copied: the next copy's size */
};

struct decide_call {
	struct ml_script *s;
	struct ml_log *log;
	const char *command;
	const void *args;
	size_t args_len;
	struct ml_script_decision *out;
};

static int copy_event(const struct ml_event *e, void *arg)
{
	struct history *h = arg;
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 16;
		h->events = ml_xrealloc(h->events, h->cap * sizeof(*h->events));
	}
	struct ml_event *c = &h->events[h->n++];
	*c = *e;
	/* Offsets into bytes for now: it may move while it grows. */
	size_t at = h->bytes.len;
	ml_buf_add(&h->bytes, e->stream, e->stream_len);
	ml_buf_add(&h->bytes, e->type, e->type_len);
	ml_buf_add(&h->bytes, e->id, e->id_len);
	ml_buf_add(&h->bytes, e->meta, e->meta_len);
	ml_buf_add(&h->bytes, e->data, e->data_len);
	c->stream = (const char *)(uintptr_t)at;
	return 0;
}

static void history_fix(struct history *h)
{
	for (size_t i = 0; i < h->n; i++) {
		struct ml_event *e = &h->events[i];
		const char *p = h->bytes.data + (uintptr_t)e->stream;
		e->stream = p, p += e->stream_len;
		e->type = p, p += e->type_len;
		e->id = p, p += e->id_len;
		e->meta = (const uint8_t *)p, p += e->meta_len;
		e->data = (const uint8_t *)p;
	}
}

void ml_decider_free(struct ml_decider *d)
{
	if (d == NULL)
		return;
	ml_cache_free(d->cache);
	ml_buf_free(&d->h.bytes);
	free(d->h.events);
	free(d);
}

/* Pushes the command's arguments: a table decoded from msgpack, or {}. */
static void push_args(lua_State *L, const struct decide_call *c)
{
	if (c->args_len == 0) {
		lua_newtable(L);
		return;
	}
	if (ml_lua_push_msgpack(L, c->args, c->args_len) != 0)
		luaL_error(L, "the command's arguments: %s", ml_diag_last());
}

/*
 * Folds the events of `stream` after version `from - 1` into the state at the
 * top (replacing it when a reducer returns a new one); returns the version
 * reached. The history buffer is the script's, reused from call to call.
 */
static uint64_t fold_from(lua_State *L, struct decide_call *c, const char *stream, size_t len,
			  uint64_t from, uint64_t visible)
{
	struct history *h = &c->s->decider->h;
	h->n = 0;
	h->bytes.len = 0;
	uint64_t version = from - 1;
	if (visible < from)
		return version;
	if (ml_log_read_stream(c->log, stream, len, from, 0, 0, copy_event, h) < 0)
		luaL_error(L, "cannot read stream %s: %s", stream, ml_diag_last());
	history_fix(h);
	int state = lua_gettop(L);
	lua_getfield(L, 1, "on");
	lua_getfield(L, 1, "any");
	int on = state + 1, any = state + 2;
	for (size_t i = 0; i < h->n; i++) {
		const struct ml_event *e = &h->events[i];
		version = e->version;
		/* An old shape goes through the upcasters first (upcast.c): a plain table */
		int upcast = c->s->up && ml_upcast_wanted(c->s->up, e);
		if (upcast) {
			ml_upcast_push(L, 1, e);
			lua_getfield(L, -1, "type");
		} else {
			lua_pushlstring(L, e->type, e->type_len);
		}
		/* def:fold: on[type] or the "*" handler, which may return a new state */
		if (lua_rawget(L, on) == LUA_TNIL) {
			lua_pop(L, 1);
			if (lua_isnil(L, any)) {
				lua_pop(L, upcast); /* the upcast event */
				continue;
			}
			lua_pushvalue(L, any);
		}
		if (upcast) { /* [event, fn] -> [fn, state, event] */
			lua_rotate(L, -2, 1);
			lua_pushvalue(L, state);
			lua_rotate(L, -2, 1);
		} else {
			lua_pushvalue(L, state);
			ml_view_push_event(L, e);
			ml_view_set_event_mt(L);
		}
		lua_call(L, 2, 1);
		if (lua_isnil(L, -1))
			lua_pop(L, 1);
		else
			lua_replace(L, state);
	}
	lua_settop(L, state);
	return version;
}

/*
 * Pushes the state of `stream` as of its visible version, from the cache or
 * from init, and sets the decision's expected version.
 */
static void push_state(lua_State *L, struct decide_call *c, const char *stream, size_t len)
{
	struct ml_decider_cache *cache = c->s->decider->cache;
	struct ml_cache_entry *e = cache ? ml_cache_get(cache, L, stream, len) : NULL;
	uint64_t visible = ml_log_stream_version(c->log, stream, len), version = 0;
	/* A version past the visible one means another log (tests): start again. */
	if (e == NULL || !ml_cache_push(cache, L, e, visible, &version)) {
		lua_getfield(L, 1, "initial");
		lua_pushlstring(L, stream, len);
		lua_call(L, 1, 1);
		version = 0;
	}
	version = fold_from(L, c, stream, len, version + 1, visible);
	if (e) {
		ml_cache_store(cache, L, e, -1, version);
		ml_cache_trim(cache, L, c->s->mem);
	}
	c->out->expected_version = version;
}

/*
 * Pushes the command's target stream: what the definition's stream(cmd) returns, checked
 * against `from` by the C filter; anything else goes through def:target, which raises
 * with the message a person needs.
 */
static const char *push_target(lua_State *L, struct ml_script *s, size_t *n)
{
	lua_getfield(L, 1, "stream");
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 3);
	lua_call(L, 2, 1);
	const char *stream = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, n) : NULL;
	/* the stream alone, as def:matches(stream) */
	if (stream && *n > 0 && ml_filter_match_stream(s->filter, stream, *n))
		return stream;
	lua_pop(L, 1);
	lua_getfield(L, 1, "target");
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 3);
	lua_call(L, 2, 1);
	return lua_tolstring(L, -1, n);
}

/* (runner, call): stack 2 the command's name, 3 its arguments, 4 the stream, 5 the state. */
static int l_decide(lua_State *L)
{
	struct decide_call *c = lua_touserdata(L, 2);
	lua_settop(L, 1);
	lua_pushstring(L, c->command); /* 2 */
	push_args(L, c);	       /* 3 */
	size_t n;
	const char *stream = push_target(L, c->s, &n); /* 4 */
	c->out->stream = ml_xstrndup(stream, n);
	push_state(L, c, stream, n); /* 5 */
	lua_getfield(L, 1, "decide");
	if (c->s->decider->cache)
		ml_cache_push_copy(L, 5, &c->s->decider->fields);
	else
		lua_pushvalue(L, 5); /* folded for this command alone */
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 3);
	lua_call(L, 3, 3); /* ok, events | reason, details */
	if (!lua_toboolean(L, -3)) {
		c->out->rejected = 1;
		const char *r = lua_tostring(L, -2);
		c->out->reason = ml_xstrndup(r ? r : "", strlen(r ? r : ""));
		ml_view_encode(L, -1, &c->out->details, "details");
		return 0;
	}
	c->out->n_events = lua_rawlen(L, -2);
	ml_view_encode(L, -2, &c->out->events, "events");
	return 0;
}

int ml_script_decide(struct ml_script *s, struct ml_log *log, const char *command, const void *args,
		     size_t args_len, struct ml_script_decision *out)
{
	memset(out, 0, sizeof(*out));
	if (s->kind != ML_SCRIPT_DECIDER)
		return ml_diag_set(ML_ERR_USAGE, "script %s is a %s: only deciders run commands",
				   s->name, ml_script_kind_name(s->kind));
	if (s->decider == NULL) {
		s->decider = ml_xcalloc(1, sizeof(*s->decider));
		s->decider->cache = ml_cache_new(s->cache_streams, s->cache_memory, s->mem_limit);
	}
	struct decide_call c = {s, log, command, args, args_len, out};
	if (ml_script_pcall(s, l_decide, &c, 0, "decide", 1) != 0) {
		ml_script_decision_free(out);
		return -1;
	}
	return 0;
}

void ml_script_cache_stats(const struct ml_script *s, struct ml_script_cache_stats *out)
{
	ml_cache_stats(s->decider ? s->decider->cache : NULL, out);
	out->max_streams = s->cache_streams;
	out->max_memory = s->cache_streams ? ml_cache_max_memory(s->cache_memory, s->mem_limit) : 0;
}

int ml_script_retries(const struct ml_script *s)
{
	return s->retries;
}

uint64_t ml_script_snapshot_every(const struct ml_script *s)
{
	return s->snapshot_every;
}

void ml_script_decision_free(struct ml_script_decision *d)
{
	free(d->stream);
	free(d->reason);
	ml_buf_free(&d->details);
	ml_buf_free(&d->events);
	memset(d, 0, sizeof(*d));
}
