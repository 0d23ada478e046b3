/*
 * decide.c - running a decider's command: find the target stream, fold its
 * events from the log, decide, and hand the new events (or the rejection) to
 * the caller, who appends them with the version the state was built at.
 *
 * The stream is read into C memory first and only then turned into views, so
 * that no Lua error can unwind through the log's reader.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include "script_internal.h"

struct decide_call {
	struct ml_script *s;
	struct ml_log *log;
	const char *command;
	const void *args;
	size_t args_len;
	struct ml_script_decision *out;
};

/* The events of one stream, copied out of the log. */
struct history {
	struct ml_buf bytes;
	struct ml_event *events;
	size_t n, cap;
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

static void history_free(struct history *h)
{
	ml_buf_free(&h->bytes);
	free(h->events);
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

static int history_gc(lua_State *L)
{
	history_free(lua_touserdata(L, 1));
	return 0;
}

/*
 * Reads the target stream (its name at the top) and pushes the list of its
 * events as views. The copies live in a userdata with a __gc, made before the
 * read, so that an error anywhere after it frees them.
 */
static void push_history(lua_State *L, struct decide_call *c)
{
	size_t n;
	const char *stream = lua_tolstring(L, -1, &n);
	struct history *h = lua_newuserdatauv(L, sizeof(*h), 0);
	memset(h, 0, sizeof(*h));
	if (luaL_newmetatable(L, "moonlog.history")) {
		lua_pushcfunction(L, history_gc);
		lua_setfield(L, -2, "__gc");
	}
	lua_setmetatable(L, -2);
	int box = lua_gettop(L);
	if (ml_log_read_stream(c->log, stream, n, 0, 0, 0, copy_event, h) < 0)
		luaL_error(L, "cannot read stream %s: %s", stream, ml_diag_last());
	history_fix(h);
	c->out->expected_version = h->n;
	lua_createtable(L, (int)h->n, 0);
	for (size_t i = 0; i < h->n; i++) {
		ml_view_push_event(L, &h->events[i]);
		ml_view_set_event_mt(L);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_remove(L, box);
}

static int l_decide(lua_State *L)
{
	struct decide_call *c = lua_touserdata(L, 2);
	lua_settop(L, 1);
	lua_pushstring(L, c->command); /* 2 */
	push_args(L, c);	       /* 3 */
	lua_getfield(L, 1, "target");
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 3);
	lua_call(L, 2, 1); /* 4: the stream */
	size_t n;
	const char *stream = lua_tolstring(L, 4, &n);
	c->out->stream = ml_xstrndup(stream, n);
	push_history(L, c); /* 5 */
	lua_getfield(L, 1, "decide");
	lua_pushvalue(L, 5);
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
	struct decide_call c = {s, log, command, args, args_len, out};
	if (ml_script_pcall(s, l_decide, &c, 0, "decide") != 0) {
		ml_script_decision_free(out);
		return -1;
	}
	return 0;
}

void ml_script_decision_free(struct ml_script_decision *d)
{
	free(d->stream);
	free(d->reason);
	ml_buf_free(&d->details);
	ml_buf_free(&d->events);
	memset(d, 0, sizeof(*d));
}
