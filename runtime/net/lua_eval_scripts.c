/*
 * lua_eval_scripts.c - the hosted scripts as chunks evaluated in the server
 * see them (the REPL's `scripts`, its globals named after scripts, and at()).
 *
 *   scripts()                    the status of every script
 *   balances:query("total")      a projection's query
 *   account:get("account-1")     a reducer's or decider's state of one stream
 *   account:command("Deposit", { id = 1, amount = 5 })   runs a decider (yields)
 *   at(1000, "balances")         (or balances:at(1000)) the state as of position 1000, replayed
 * into a scratch copy of the script (yields between slices); at(1000, "balances", {history =
 * true}) with the version of its code that was live then ($code-balances)
 *   balances:dry_run("new.lua")  a dry run of a new version: waits (yields) until its report
 *   balances:dry_run("new.lua", { apply = true })   swaps the previewed version in
 *
 * Answers from the scripts come as msgpack and are decoded into plain tables.
 * Long work yields, and the chunk's coroutine is resumed on a later turn of
 * the loop, so the server goes on answering meanwhile.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <lauxlib.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/msgpack.h>
#include <moonlog/script.h>

#include "net/eval_internal.h"

#define SCRIPT_MT "moonlog.eval.script"
#define AT_SLICE  20000 /* events replayed by at() between two turns of the loop */

/* The server's hosted scripts, or NULL when it hosts none. */
static const struct ml_server_scripts *scripts_of(lua_State *L)
{
	struct run *r = ml_eval_run_of(L);
	return r ? ml_net_scripts(r->ev->srv) : NULL;
}

/* The hosted scripts, or raises when the server hosts none. */
static const struct ml_server_scripts *check_scripts(lua_State *L)
{
	const struct ml_server_scripts *t = scripts_of(L);
	if (t == NULL)
		luaL_error(L, "this server hosts no scripts (start it with --scripts DIR)");
	return t;
}

/* Pushes the decoded msgpack in b, or raises the diag (its message says where). */
static int push_answer(lua_State *L, int rc, struct ml_buf *b)
{
	if (rc != 0 || ml_lua_push_msgpack(L, b->data, b->len) != 0) {
		ml_buf_free(b);
		lua_pushstring(L, ml_diag_last());
		return lua_error(L);
	}
	ml_buf_free(b);
	return 1;
}

static struct ml_script *check_script(lua_State *L, int idx)
{
	luaL_checktype(L, idx, LUA_TTABLE);
	lua_getfield(L, idx, "name");
	size_t n;
	const char *name = luaL_checklstring(L, -1, &n);
	const struct ml_server_scripts *t = scripts_of(L);
	struct ml_script *s = t ? t->find(t->arg, name, n) : NULL;
	if (s == NULL)
		luaL_error(L, "no script named %s is loaded", name);
	lua_pop(L, 1);
	return s;
}

/* scripts() -> { {name, kind, state, position, lag, ...}, ... } */
static int l_list(lua_State *L)
{
	const struct ml_server_scripts *t = scripts_of(L);
	if (t == NULL) {
		lua_newtable(L);
		return 1;
	}
	struct ml_buf b = {0};
	t->status(t->arg, &b);
	return push_answer(L, 0, &b);
}

/* script(name) -> an object with the methods below, or nil. */
static int l_script(lua_State *L)
{
	size_t n;
	const char *name = luaL_checklstring(L, 1, &n);
	const struct ml_server_scripts *t = scripts_of(L);
	if (t == NULL || t->find(t->arg, name, n) == NULL) {
		lua_pushnil(L);
		return 1;
	}
	lua_createtable(L, 0, 1);
	lua_pushvalue(L, 1);
	lua_setfield(L, -2, "name");
	luaL_setmetatable(L, SCRIPT_MT);
	return 1;
}

static int m_query(lua_State *L)
{
	struct ml_script *s = check_script(L, 1);
	const char *q = luaL_checkstring(L, 2);
	int nargs = lua_gettop(L) - 2;
	lua_createtable(L, nargs, 0);
	for (int i = 1; i <= nargs; i++) {
		lua_pushvalue(L, i + 2);
		lua_rawseti(L, -2, i);
	}
	struct ml_buf args = {0}, out = {0};
	int rc = nargs ? ml_lua_to_msgpack_named(L, -1, &args, "args") : 0;
	if (rc == 0)
		rc = ml_script_query(s, q, args.data, args.len, &out);
	ml_buf_free(&args);
	return push_answer(L, rc, &out);
}

static int m_get(lua_State *L)
{
	struct ml_script *s = check_script(L, 1);
	size_t n;
	const char *key = luaL_checklstring(L, 2, &n);
	struct ml_buf out = {0};
	return push_answer(L, ml_script_get(s, key, n, &out), &out);
}

static int m_state(lua_State *L)
{
	struct ml_script *s = check_script(L, 1);
	struct ml_buf out = {0};
	if (lua_isnoneornil(L, 2))
		return push_answer(L, ml_script_state(s, &out), &out);
	size_t n;
	const char *key = luaL_checklstring(L, 2, &n);
	return push_answer(L, ml_script_get(s, key, n, &out), &out);
}

static int m_position(lua_State *L)
{
	struct ml_script *s = check_script(L, 1);
	const struct ml_server_scripts *t = scripts_of(L);
	lua_pushinteger(L, (lua_Integer)t->position(t->arg, s));
	return 1;
}

/* ---- command: the decider path of RPC and HTTP, waited for by a yield ---- */

struct cmd_wait {
	struct run *r;
	int answered, status;
	char message[512];
	struct ml_buf result, details;
};

static void cmd_answered(const struct ml_command_outcome *o, void *arg)
{
	struct cmd_wait *w = arg;
	w->answered = 1;
	w->status = o->status;
	snprintf(w->message, sizeof(w->message), "%s", o->message ? o->message : "");
	if (o->result)
		ml_buf_add(&w->result, o->result->data, o->result->len);
	if (o->details)
		ml_buf_add(&w->details, o->details->data, o->details->len);
	if (!w->r->in_call)
		ml_eval_resume(w->r, 0);
}

static int command_k(lua_State *L, int status, lua_KContext ctx)
{
	(void)status;
	struct cmd_wait *w = (struct cmd_wait *)ctx;
	struct cmd_wait copy = *w;
	free(w);
	if (copy.status != 201) {
		ml_buf_free(&copy.result);
		ml_buf_free(&copy.details);
		return luaL_error(L, "%s: %s", copy.status == 422 ? "rejected" : "command failed",
				  copy.message);
	}
	ml_buf_free(&copy.details);
	return push_answer(L, 0, &copy.result);
}

/* account:command("Deposit", { id = 1, amount = 5 }) -> {stream, version, events, ...} */
static int m_command(lua_State *L)
{
	struct run *r = ml_eval_run_of(L);
	check_script(L, 1);
	if (ml_eval_can_wait(L, "command") != 0) /* it yields until the command is decided */
		return luaL_error(L, "%s", ml_diag_last());
	lua_getfield(L, 1, "name");
	size_t dl, nl;
	const char *decider = lua_tolstring(L, -1, &dl);
	const char *name = luaL_checklstring(L, 2, &nl);
	struct ml_buf args = {0};
	if (!lua_isnoneornil(L, 3) && ml_lua_to_msgpack_named(L, 3, &args, "args") != 0) {
		ml_buf_free(&args);
		return luaL_error(L, "%s", ml_diag_last());
	}
	struct cmd_wait *w = ml_xcalloc(1, sizeof(*w));
	w->r = r;
	r->in_call = 1;
	ml_command_run(r->ev->srv, decider, dl, name, nl, args.data, args.len, cmd_answered, w);
	r->in_call = 0;
	ml_buf_free(&args);
	if (w->answered)
		return command_k(L, LUA_OK, (lua_KContext)w);
	return lua_yieldk(L, 0, (lua_KContext)w, command_k);
}

/* ---- at(position, name): a replay into a scratch copy, a slice per turn ---- */

struct at_replay {
	struct run *r;
	struct ml_script *scratch;
	uint64_t next, until;
	int failed;
};

static void resume_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	ml_eval_resume(arg, 0);
}

static int feed_one(const struct ml_event *e, void *arg)
{
	struct at_replay *a = arg;
	struct ml_log *log = a->r->ev->srv->log;
	if (e->position > a->until) { /* past removed events a read goes on to the next kept */
		a->next = a->until + 1;
		return 1;
	}
	a->next = e->position + 1;
	if (ml_log_any_removed(log) && /* as the live script: removed events passed over */
	    ml_log_removed(log, e->stream, e->stream_len, e->version, e->time, ml_time_ms()))
		return 0;
	if (ml_script_feed(a->scratch, e) != 0) {
		a->failed = 1;
		return 1;
	}
	return 0;
}

static int at_k(lua_State *L, int status, lua_KContext ctx)
{
	(void)status;
	struct at_replay *a = (struct at_replay *)ctx;
	struct ml_log *log = a->r->ev->srv->log;
	uint64_t want = a->until - a->next + 1;
	if (a->next <= a->until && !a->failed &&
	    ml_log_read_all(log, a->next, want < AT_SLICE ? want : AT_SLICE, feed_one, a) >= 0 &&
	    a->next <= a->until && !a->failed && a->next <= ml_log_head(log)) {
		struct timeval now = {0, 0};
		event_base_once(a->r->ev->srv->base, -1, EV_TIMEOUT, resume_later, a->r, &now);
		return lua_yieldk(L, 0, ctx, at_k);
	}
	struct ml_buf out = {0};
	int rc = a->failed ? -1 : ml_script_state(a->scratch, &out);
	ml_script_free(a->scratch);
	free(a);
	return push_answer(L, rc, &out);
}

/* The version of a script that was live at a position, from its code history ($code-NAME:
 * the last CodeVersion that took over before it, and so handled the event there;
 * history.c). */
struct at_version {
	uint64_t position;	 /* asked for */
	uint64_t first;		 /* the earliest recorded (UINT64_MAX: none) */
	uint64_t took_over, nth; /* the one found, and its number in the stream */
	int found, has_up;
	struct ml_buf text, up;
};

/* One CodeVersion: its position, text and upcasters (pointers into the event's data). */
static int read_version(const uint8_t *p, size_t n, uint64_t *pos, const char **text, uint32_t *tn,
			const char **up, uint32_t *un)
{
	struct ml_msgpack_reader r;
	uint32_t k;
	int seen = 0;
	*up = NULL;
	if (n == 0)
		return -1;
	ml_msgpack_reader_init(&r, p, n);
	if (ml_msgpack_get_map(&r, &k) != 0)
		return -1;
	for (uint32_t i = 0; i < k; i++) {
		const char *key;
		uint32_t kn;
		if (ml_msgpack_get_str(&r, &key, &kn) != 0)
			return -1;
		if (kn == 8 && memcmp(key, "position", 8) == 0 && ml_msgpack_get_uint(&r, pos) == 0)
			seen |= 1;
		else if (kn == 4 && memcmp(key, "text", 4) == 0 &&
			 ml_msgpack_get_str(&r, text, tn) == 0)
			seen |= 2;
		else if (kn == 9 && memcmp(key, "upcasters", 9) == 0 &&
			 ml_msgpack_get_str(&r, up, un) == 0)
			continue;
		else if (ml_msgpack_skip_n(&r, 1) != 0)
			return -1;
	}
	return seen == 3 ? 0 : -1;
}

static int pick_version(const struct ml_event *ev, void *arg)
{
	struct at_version *v = arg;
	uint64_t pos;
	const char *text, *up;
	uint32_t tn, un;
	if (read_version(ev->data, ev->data_len, &pos, &text, &tn, &up, &un) != 0)
		return 0;
	if (pos < v->first)
		v->first = pos;
	/* live at X: took over before X (it handled event X), or from 0 for at(0) */
	if ((pos >= v->position && !(pos == 0 && v->position == 0)) ||
	    (v->found && pos < v->took_over))
		return 0;
	v->found = 1;
	v->took_over = pos;
	v->nth = ev->version;
	v->text.len = v->up.len = 0;
	ml_buf_add(&v->text, text, tn);
	v->has_up = up != NULL;
	if (up)
		ml_buf_add(&v->up, up, un);
	return 0;
}

/* A scratch copy of the version of s live at `position`, or NULL with a diag. */
static struct ml_script *load_live_at(struct ml_log *log, struct ml_script *s, uint64_t position)
{
	const char *name = ml_script_name(s);
	char stream[300];
	snprintf(stream, sizeof(stream), "$code-%s", name);
	struct at_version v = {.position = position, .first = UINT64_MAX};
	struct ml_script *old = NULL;
	if (ml_log_read_stream(log, stream, strlen(stream), 0, 0, 0, pick_version, &v) < 0) {
		ml_buf_free(&v.text);
		ml_buf_free(&v.up);
		return NULL;
	}
	if (!v.found && v.first == UINT64_MAX)
		ml_diag_set(ML_ERR_NOT_FOUND,
			    "%s has no code history (%s is empty: it starts at the script's first "
			    "reload): at(position, \"%s\") without {history = true} folds with the "
			    "current code",
			    name, stream, name);
	else if (!v.found)
		ml_diag_set(ML_ERR_NOT_FOUND,
			    "no version of %s was live at position %llu: its code history starts "
			    "after position %llu (at(position, \"%s\") without {history = true} "
			    "folds with the current code)",
			    name, (unsigned long long)position, (unsigned long long)v.first, name);
	else
		old = ml_script_load_version(s, v.text.data ? v.text.data : "", v.text.len,
					     v.has_up ? (v.up.data ? v.up.data : "") : NULL,
					     v.up.len);
	if (old &&
	    (ml_script_kind(old) != ml_script_kind(s) || strcmp(ml_script_name(old), name) != 0)) {
		ml_diag_set(ML_ERR_REFUSED,
			    "version %llu of %s in %s is a %s named %s: at() folds projections "
			    "and reducers of that name",
			    (unsigned long long)v.nth, name, stream,
			    ml_script_kind_name(ml_script_kind(old)), ml_script_name(old));
		ml_script_free(old);
		old = NULL;
	}
	ml_buf_free(&v.text);
	ml_buf_free(&v.up);
	return old;
}

/* at(position, name [, {history = true}]): the state as of position, folded with the
 * current code, or with the version that was live then. */
static int l_at(lua_State *L)
{
	struct run *r = ml_eval_run_of(L);
	lua_Integer position = luaL_checkinteger(L, 1);
	size_t n;
	const char *name = luaL_checklstring(L, 2, &n);
	const struct ml_server_scripts *t = scripts_of(L);
	struct ml_script *s = t ? t->find(t->arg, name, n) : NULL;
	if (s == NULL)
		return luaL_error(L, "no script named %s is loaded", name);
	enum ml_script_kind k = ml_script_kind(s);
	if (k != ML_SCRIPT_PROJECTION && k != ML_SCRIPT_REDUCER)
		return luaL_error(L, "at() replays projections and reducers; %s is a %s", name,
				  ml_script_kind_name(k));
	if (position < 0)
		return luaL_error(L, "at(position, name): the position cannot be negative");
	if (ml_eval_can_wait(L, "at") != 0) /* it yields between slices of the replay */
		return luaL_error(L, "%s", ml_diag_last());
	struct at_replay *a = ml_xcalloc(1, sizeof(*a));
	a->r = r;
	a->next = 1;
	a->until = (uint64_t)position;
	int history = 0;
	if (lua_istable(L, 3)) {
		lua_getfield(L, 3, "history");
		history = lua_toboolean(L, -1);
		lua_pop(L, 1);
	} else if (!lua_isnoneornil(L, 3)) {
		free(a);
		return luaL_error(L, "at(position, name, options): options must be a table such "
				     "as {history = true}");
	}
	a->scratch = history ? load_live_at(r->ev->srv->log, s, (uint64_t)position)
			     : ml_script_load_again(s);
	if (a->scratch == NULL) {
		free(a);
		return luaL_error(L, "%s", ml_diag_last());
	}
	return at_k(L, LUA_OK, (lua_KContext)a);
}

/* reload([name]) -> the outcome: one script again from its file, or (no name) the
 * whole folder, as SIGHUP does. A version that does not load raises its error. */
static int l_reload(lua_State *L)
{
	const struct ml_server_scripts *t = check_scripts(L);
	struct ml_buf out = {0};
	size_t n;
	const char *name = luaL_optlstring(L, 1, NULL, &n);
	return push_answer(L, t->reload(t->arg, name, n, &out), &out);
}

static int parked(lua_State *L, int replay)
{
	size_t n;
	const char *name = luaL_checklstring(L, 1, &n);
	const struct ml_server_scripts *t = check_scripts(L);
	struct ml_buf out = {0};
	return push_answer(L, t->parked(t->arg, name, n, replay, &out), &out);
}

/* parked(name) -> the handler's parked events not yet replayed */
static int l_parked(lua_State *L)
{
	return parked(L, 0);
}

/* replay_parked(name) -> {replayed, succeeded, failed} */
static int l_replay_parked(lua_State *L)
{
	return parked(L, 1);
}

/* ---- dry_run(path [, options]): the host's dry run, waited for ---- */

#define DRY_POLL_MS 20 /* how often a waiting chunk looks at its dry run */

struct dry_wait {
	char *name;
	struct ml_buf opts;  /* msgpack: {file?, ...options}, restart = true unless told */
	struct ml_buf again; /* the same with restart = false: to follow it */
};

static int dry_k(lua_State *L, int status, lua_KContext ctx)
{
	(void)status;
	struct dry_wait *w = (struct dry_wait *)ctx;
	struct run *r = ml_eval_run_of(L);
	const struct ml_server_scripts *t = scripts_of(L);
	struct ml_buf out = {0};
	int rc = t ? t->dry_run(t->arg, w->name, strlen(w->name), w->opts.data, w->opts.len, &out)
		   : ml_diag_set(ML_ERR_NOT_FOUND, "this server hosts no scripts");
	if (w->again.len) { /* from now on, follow the dry run this call started */
		ml_buf_free(&w->opts);
		w->opts = w->again;
		w->again = (struct ml_buf){0};
	}
	if (rc == 0 && ml_lua_push_msgpack(L, out.data, out.len) == 0) {
		lua_getfield(L, -1, "state");
		int running = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "running") == 0;
		lua_pop(L, 2);
		if (running) { /* not done yet: look again a little later */
			ml_buf_free(&out);
			struct timeval later = {0, DRY_POLL_MS * 1000};
			event_base_once(r->ev->srv->base, -1, EV_TIMEOUT, resume_later, r, &later);
			return lua_yieldk(L, 0, ctx, dry_k);
		}
	}
	free(w->name);
	ml_buf_free(&w->opts);
	ml_buf_free(&w->again);
	free(w);
	return push_answer(L, rc, &out);
}

/* balances:dry_run([path [, options]]) -> the report once the dry run is done (or the
 * outcome of { apply = true }); options as ml_host_dry_run takes them. */
static int m_dry_run(lua_State *L)
{
	check_script(L, 1);
	const char *path = luaL_optstring(L, 2, NULL);
	if (!lua_isnoneornil(L, 3))
		luaL_checktype(L, 3, LUA_TTABLE);
	lua_settop(L, 3);
	lua_newtable(L); /* 4: the options, the caller's table left as it is */
	if (lua_istable(L, 3))
		for (lua_pushnil(L); lua_next(L, 3);) { /* key, value */
			lua_pushvalue(L, -2);
			lua_insert(L, -2);  /* key, key, value */
			lua_settable(L, 4); /* key: for lua_next */
		}
	lua_replace(L, 3);
	if (path) {
		lua_pushvalue(L, 2);
		lua_setfield(L, 3, "file");
	}
	lua_getfield(L, 3, "restart"); /* a fresh dry run, unless told to follow one */
	if (lua_isnil(L, -1)) {
		lua_pushboolean(L, 1);
		lua_setfield(L, 3, "restart");
	}
	lua_pop(L, 1);
	struct dry_wait *w = ml_xcalloc(1, sizeof(*w));
	int rc = ml_lua_to_msgpack_named(L, 3, &w->opts, "options");
	lua_pushboolean(L, 0);
	lua_setfield(L, 3, "restart");
	if (rc != 0 || ml_lua_to_msgpack_named(L, 3, &w->again, "options") != 0 ||
	    ml_eval_can_wait(L, "dry_run") != 0) { /* it yields until the report is ready */
		ml_buf_free(&w->opts);
		ml_buf_free(&w->again);
		free(w);
		return luaL_error(L, "%s", ml_diag_last());
	}
	lua_getfield(L, 1, "name");
	w->name = ml_xstrndup(lua_tostring(L, -1), strlen(lua_tostring(L, -1)));
	lua_pop(L, 1);
	return dry_k(L, LUA_OK, (lua_KContext)w);
}

/* balances:at(position [, options]) is at(position, "balances" [, options]) */
static int m_at(lua_State *L)
{
	check_script(L, 1);
	lua_settop(L, 3);
	lua_getfield(L, 1, "name");
	lua_replace(L, 1); /* (name, position, options) */
	lua_pushvalue(L, 1);
	lua_remove(L, 1);
	lua_insert(L, 2); /* (position, name, options) */
	return l_at(L);
}

void ml_eval_push_scripts_api(lua_State *L)
{
	static const luaL_Reg methods[] = {
	    {"query", m_query},	      {"get", m_get},
	    {"state", m_state},	      {"command", m_command},
	    {"position", m_position}, {"at", m_at},
	    {"dry_run", m_dry_run},   {NULL, NULL},
	};
	if (luaL_newmetatable(L, SCRIPT_MT)) {
		luaL_newlib(L, methods);
		lua_setfield(L, -2, "__index");
	}
	lua_pop(L, 1);
	static const luaL_Reg fns[] = {
	    {"list", l_list},	  {"get", l_script},	{"at", l_at},
	    {"reload", l_reload}, {"parked", l_parked}, {"replay_parked", l_replay_parked},
	    {NULL, NULL},
	};
	luaL_newlib(L, fns);
}
