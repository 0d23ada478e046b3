/*
 * script.c - a script's life: loading it into a fresh lua_State under its
 * limits (limits.c), validating its definition, protected calls, faults, and
 * freeing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include <moonlog/diag.h>
#include <moonlog/route.h>

#include "script_internal.h"

#define DEFAULT_MEMORY	(256u << 20)
#define DEFAULT_INSNS	100000000ull
#define DEFAULT_TIME_MS 1000
/* Deciders: states kept by stream (see cache.c). */
#define DEFAULT_CACHE_STREAMS 100000

void ml_script_options_init(struct ml_script_options *o)
{
	memset(o, 0, sizeof(*o));
	o->memory_limit = DEFAULT_MEMORY;
	o->instruction_limit = DEFAULT_INSNS;
	o->time_limit_ms = DEFAULT_TIME_MS;
	o->decider_cache_streams = DEFAULT_CACHE_STREAMS;
}

struct ml_script *ml_script_of(lua_State *L)
{
	void *ud;
	lua_getallocf(L, &ud);
	return ud;
}

/* The string at idx cut to `max` bytes, saying how much was left out. */
static const char *cut_message(lua_State *L, int idx, size_t max)
{
	size_t n;
	const char *msg = lua_tolstring(L, idx, &n);
	if (msg == NULL || n <= max)
		return msg;
	idx = lua_absindex(L, idx);
	lua_pushlstring(L, msg, max);
	lua_pushfstring(L, "%s... (%I more bytes)", lua_tostring(L, -1), (lua_Integer)(n - max));
	lua_replace(L, idx);
	lua_pop(L, 1);
	return lua_tostring(L, idx);
}

/* Adds a traceback to errors raised in Lua; limit errors keep their message alone. */
static int l_msgh(lua_State *L)
{
	struct ml_script *s = ml_script_of(L);
	if (s->stop != ML_STOP_NONE) {
		ml_script_note_where(s, L, 1);
		return 1;
	}
	const char *msg = cut_message(L, 1, ML_SCRIPT_MESSAGE_MAX);
	if (msg == NULL)
		return 1;
	luaL_traceback(L, L, msg, 1);
	return 1;
}

static char *position_text(struct ml_script *s, char *buf, size_t n)
{
	if (s->current)
		snprintf(buf, n, " at position %" PRIu64, s->current->position);
	else
		buf[0] = 0;
	return buf;
}

int ml_script_fail(struct ml_script *s, const char *what, int faults)
{
	char where[64], limit[384];
	struct ml_buf b = {0};
	position_text(s, where, sizeof(where));
	if (s->stop != ML_STOP_NONE || s->refused) {
		ml_script_limit_text(s, limit, sizeof(limit));
		ml_buf_addf(&b, "script %s %s%s: %s", s->name, faults ? "faulted" : "failed", where,
			    limit);
	} else {
		/* the message (cut already if it came through l_msgh) and its traceback */
		const char *msg = cut_message(s->L, -1, 4 * ML_SCRIPT_MESSAGE_MAX);
		ml_buf_addf(&b, "script %s %s%s: %s", s->name, faults ? "faulted" : "failed", where,
			    msg ? msg : "an error that is not a string");
	}
	if (what && *what)
		ml_buf_addf(&b, " (in %s)", what);
	if (faults) {
		free(s->fault);
		s->fault = ml_xstrndup(b.data, b.len);
		s->fault_limit = s->stop != ML_STOP_NONE;
	}
	ml_diag_set(ML_ERR_SCRIPT, "%s", b.data);
	ml_buf_free(&b);
	return -1;
}

int ml_script_pcall(struct ml_script *s, lua_CFunction fn, void *ud, int nresults, const char *what,
		    int request)
{
	lua_State *L = s->L;
	if (s->fault)
		return ml_diag_set(ML_ERR_SCRIPT, "%s", s->fault);
	lua_pushcfunction(L, fn);
	lua_pushvalue(L, SLOT_RUNNER);
	lua_pushlightuserdata(L, ud);
	ml_script_arm(s, 0);
	int rc = lua_pcall(L, 2, nresults, SLOT_MSGH);
	ml_script_disarm(s);
	if (rc == LUA_OK && s->stop == ML_STOP_NONE)
		return 0;
	if (rc == LUA_OK) {
		lua_pop(L, nresults);
		lua_pushnil(L);
	}
	/* A call that fails on its own leaves the script running; a limit faults it, unless
	 * the call changed no state and the script's memory is free again. */
	int faults = s->stop != ML_STOP_NONE;
	ml_script_fail(s, what, faults && !request);
	if (faults && request && ml_script_recover(s) != 0) {
		ml_script_fail(s, what, 1);
		lua_settop(L, SLOT_COUNT);
		return -1;
	}
	lua_settop(L, SLOT_COUNT);
	return -1;
}

/* ---- loading ---- */

struct load_args {
	const char *chunkname, *src, *lua_dir;
	size_t len;
	const char *up_src; /* the folder's upcasters.lua, or NULL */
	size_t up_len;
};

/* Runs the folder's upcasters.lua in the sandbox and pushes what it returns, checked to be
 * an upcaster (ml.upcaster { ... }). */
static void push_folder_upcaster(lua_State *L, int env, const struct load_args *a)
{
	if (luaL_loadbufferx(L, a->up_src, a->up_len, "@" ML_SCRIPT_UPCASTERS_FILE, "t") != LUA_OK)
		lua_error(L);
	lua_pushvalue(L, env);
	lua_setupvalue(L, -2, 1);
	if (lua_pcall(L, 0, 1, 0) != LUA_OK) { /* say which file, when Lua did not */
		const char *msg = lua_tostring(L, -1);
		if (msg && strncmp(msg, ML_SCRIPT_UPCASTERS_FILE ":", 14) != 0)
			luaL_error(L, ML_SCRIPT_UPCASTERS_FILE ": %s", msg);
		lua_error(L);
	}
	lua_getfield(L, env, "require");
	lua_pushliteral(L, "moonlog");
	lua_call(L, 1, 1);
	lua_getfield(L, -1, "is_upcaster");
	lua_pushvalue(L, -3);
	lua_call(L, 1, 1);
	int ok = lua_toboolean(L, -1);
	lua_pop(L, 2);
	if (!ok)
		luaL_error(L,
			   ML_SCRIPT_UPCASTERS_FILE
			   " must return the folder's upcasters (return "
			   "ml.upcaster { Type = function(e) ... return e end }), got %s",
			   luaL_typename(L, -1));
}

/* Builds the host stack (slots 1 to 6) and the script's definition: runs in pcall. */
static int l_setup(lua_State *L)
{
	struct load_args *a = lua_touserdata(L, 1);
	lua_settop(L, 0);
	lua_pushcfunction(L, l_msgh); /* SLOT_MSGH */
	ml_view_open(L);	      /* SLOT_EVENT_MT, SLOT_VIEW_MT */
	ml_sandbox_open(L, a->lua_dir);
	int env = lua_gettop(L);
	int up = 0;
	if (a->up_src) {
		push_folder_upcaster(L, env, a);
		up = lua_gettop(L);
	}
	lua_pushfstring(L, "@%s", a->chunkname); /* messages say "balances.lua:3:" */
	if (luaL_loadbufferx(L, a->src, a->len, lua_tostring(L, -1), "t") != LUA_OK)
		return lua_error(L);
	lua_remove(L, -2);
	lua_pushvalue(L, env);
	lua_setupvalue(L, -2, 1); /* the chunk's _ENV */
	lua_call(L, 0, 1);
	int def = lua_gettop(L);
	ml_runner_open(L, env, def, up); /* SLOT_RUNNER, SLOT_FEED, SLOT_TRAMPOLINE */
	lua_remove(L, def);
	if (up)
		lua_remove(L, up);
	lua_remove(L, env);
	return SLOT_COUNT;
}

static struct ml_script *script_new(const char *chunkname, const struct ml_script_options *o)
{
	struct ml_script *s = ml_xcalloc(1, sizeof(*s));
	s->mem_limit = o->memory_limit ? o->memory_limit : DEFAULT_MEMORY;
	s->mem_cap = s->mem_limit;
	s->insn_limit = o->instruction_limit ? o->instruction_limit : DEFAULT_INSNS;
	uint32_t ms = o->time_limit_ms ? o->time_limit_ms : DEFAULT_TIME_MS;
	atomic_init(&s->clock.seq, 1);
	atomic_init(&s->clock.cpu_clock, 0);
	s->cache_streams = o->decider_cache_streams;
	s->cache_memory = o->decider_cache_memory;
	const char *base = strrchr(chunkname, '/');
	s->chunkname =
	    ml_xstrndup(base ? base + 1 : chunkname, strlen(base ? base + 1 : chunkname));
	s->name = ml_xstrndup(s->chunkname, strlen(s->chunkname));
	s->L = lua_newstate(ml_script_alloc, s);
	ml_watch_add(&s->clock, s, (uint64_t)ms * 1000000u);
	return s;
}

/* The code's hash: the script's text, the library's and the folder's upcasters'. */
static void make_hash(struct ml_script *s, const char *src, size_t len, const char *lua_dir)
{
	uint64_t h = ml_hash64(src, len, ml_sandbox_library_hash(lua_dir));
	if (s->up_src)
		h = ml_hash64(s->up_src, s->up_len, h);
	snprintf(s->hash, sizeof(s->hash), "%016" PRIx64, h);
}

struct ml_script *ml_script_load_buffer(const char *chunkname, const char *src, size_t len,
					const struct ml_script_options *o)
{
	struct ml_script_options defaults;
	if (o == NULL) {
		ml_script_options_init(&defaults);
		o = &defaults;
	}
	struct ml_script *s = script_new(chunkname, o);
	if (s->L == NULL) {
		ml_script_free(s);
		ml_diag_set(ML_ERR_SCRIPT, "cannot create a Lua state for %s", chunkname);
		return NULL;
	}
	lua_atpanic(s->L, NULL);
	if (o->lua_dir)
		s->lua_dir = ml_xstrndup(o->lua_dir, strlen(o->lua_dir));
	if (o->upcasters) {
		s->up_src = ml_xstrndup(o->upcasters, o->upcasters_len);
		s->up_len = o->upcasters_len;
	}
	struct load_args a = {chunkname, src, s->lua_dir, len, s->up_src, s->up_len};
	lua_pushcfunction(s->L, l_setup);
	lua_pushlightuserdata(s->L, &a);
	ml_script_arm(s, 0);
	int rc = lua_pcall(s->L, 1, LUA_MULTRET, 0);
	ml_script_disarm(s);
	if (rc != LUA_OK || s->stop != ML_STOP_NONE) {
		if (rc == LUA_OK)
			lua_pushnil(s->L);
		ml_script_fail(s, NULL, 0);
		/* "failed to load", with the script's file name rather than its definition's. */
		char *msg = ml_xstrndup(ml_diag_last(), strlen(ml_diag_last()));
		ml_diag_set(ML_ERR_SCRIPT, "%s", msg);
		free(msg);
		ml_script_free(s);
		return NULL;
	}
	lua_settop(s->L, SLOT_COUNT);
	make_hash(s, src, len, o->lua_dir);
	s->src = ml_xstrndup(src, len);
	s->src_len = len;
	s->opts = *o;
	s->opts.lua_dir = s->lua_dir;
	s->opts.upcasters = s->up_src;
	/* Events and their views die young: the generational collector suits them. */
	lua_gc(s->L, LUA_GCGEN, 0, 0);
	return s;
}

/* Reads the file at path into b: 0, or -1 with a diag (ML_ERR_NOT_FOUND when it is not there). */
static int read_file(const char *path, const char *what, struct ml_buf *b)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return ml_diag_set(errno == ENOENT ? ML_ERR_NOT_FOUND : ML_ERR_SCRIPT,
				   "cannot read the %s %s: %s", what, path, strerror(errno));
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ml_buf_add(b, chunk, n);
	int err = ferror(f);
	fclose(f);
	if (err)
		return ml_diag_set(ML_ERR_SCRIPT, "cannot read the %s %s", what, path);
	return 0;
}

struct ml_script *ml_script_load(const char *path, const struct ml_script_options *o)
{
	struct ml_buf b = {0};
	if (read_file(path, "script", &b) != 0) {
		ml_buf_free(&b);
		return NULL;
	}
	struct ml_script *s = ml_script_load_buffer(path, b.data ? b.data : "", b.len, o);
	ml_buf_free(&b);
	return s;
}

int ml_script_upcasters_read(const char *dir, struct ml_buf *out)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, ML_SCRIPT_UPCASTERS_FILE);
	out->len = 0;
	if (read_file(path, "upcasters file", out) == 0) {
		ml_buf_add(out, "", 1); /* a text, never NULL even when empty */
		out->len--;
		return 1;
	}
	return ml_diag_code() == ML_ERR_NOT_FOUND ? 0 : -1;
}

void ml_script_free(struct ml_script *s)
{
	if (s == NULL)
		return;
	ml_watch_remove(&s->clock);
	if (s->L)
		lua_close(s->L);
	ml_decider_free(s->decider);
	ml_fold_free(s->fold);
	ml_filter_free(s->filter);
	ml_upcast_set_free(s->up);
	free(s->up_src);
	ml_buf_free(&s->emit_bytes);
	free(s->emits);
	free(s->handler_error);
	free(s->fault);
	free(s->name);
	free(s->chunkname);
	free(s->lua_dir);
	free(s->src);
	free(s);
}

struct ml_script *ml_script_load_again(const struct ml_script *s)
{
	return ml_script_load_buffer(s->chunkname, s->src, s->src_len, &s->opts);
}

struct ml_script *ml_script_load_version(const struct ml_script *s, const char *src, size_t len,
					 const char *up, size_t up_len)
{
	struct ml_script_options o = s->opts;
	o.upcasters = up;
	o.upcasters_len = up ? up_len : 0;
	return ml_script_load_buffer(s->chunkname, src, len, &o);
}

const char *ml_script_source(const struct ml_script *s, size_t *len)
{
	*len = s->src_len;
	return s->src;
}

const char *ml_script_upcasters(const struct ml_script *s, size_t *len)
{
	*len = s->up_len;
	return s->up_src;
}

const char *ml_script_name(const struct ml_script *s)
{
	return s->name;
}

enum ml_script_kind ml_script_kind(const struct ml_script *s)
{
	return s->kind;
}

const char *ml_script_kind_name(enum ml_script_kind kind)
{
	static const char *names[] = {"reducer", "decider", "projection", "handler"};
	return (unsigned)kind < 4 ? names[kind] : "unknown";
}

const char *ml_script_hash(const struct ml_script *s)
{
	return s->hash;
}

uint64_t ml_script_position(const struct ml_script *s)
{
	return s->position;
}

const char *ml_script_fault(const struct ml_script *s)
{
	return s->fault;
}

const struct ml_filter *ml_script_filter(const struct ml_script *s)
{
	return s->filter;
}

void ml_script_stats(const struct ml_script *s, struct ml_script_stats *out)
{
	out->events = s->events;
	out->delivered = s->delivered;
	out->plain = s->fed_plain;
	out->unhooked = s->fed_unhooked;
	out->memory = s->mem;
	out->memory_peak = s->mem_peak;
	out->memory_limit = s->mem_limit;
	out->instruction_limit = s->insn_limit;
	out->time_limit_ms = (uint32_t)(s->clock.limit_ns / 1000000);
}

int ml_script_fault_is_limit(const struct ml_script *s)
{
	return s->fault && s->fault_limit;
}

const char *ml_script_lua_source_dir(void)
{
	return ML_LUA_SOURCE_DIR;
}
