/*
 * script.c - a script's life: loading it into a fresh lua_State under its
 * limits, validating its definition, protected calls, faults, and freeing.
 *
 * Limits. The state's allocator counts every byte and refuses to grow past the
 * memory limit; a count hook raises once a call has run its instruction budget.
 * Both set a sticky flag, so a script that catches the error with pcall still
 * faults when the host's call returns, and after the budget is spent the hook
 * fires on every instruction, so no loop can keep running by catching it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include <moonlog/diag.h>

#include "script_internal.h"

#define DEFAULT_MEMORY (256u << 20)
#define DEFAULT_INSNS  100000000ull
/* Deciders: states kept by stream (see cache.c). */
#define DEFAULT_CACHE_STREAMS 100000
/* The hook runs every HOOK_STEP instructions and checks the budget then. */
#define HOOK_STEP 1000

void ml_script_options_init(struct ml_script_options *o)
{
	memset(o, 0, sizeof(*o));
	o->memory_limit = DEFAULT_MEMORY;
	o->instruction_limit = DEFAULT_INSNS;
	o->decider_cache_streams = DEFAULT_CACHE_STREAMS;
}

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct ml_script *s = ud;
	if (ptr == NULL)
		osize = 0;
	if (nsize == 0) {
		free(ptr);
		s->mem -= osize;
		return NULL;
	}
	if (nsize > osize && s->mem + (nsize - osize) > s->mem_limit) {
		s->over_memory = 1;
		return NULL;
	}
	void *p = realloc(ptr, nsize);
	if (p == NULL)
		return nsize <= osize ? ptr : NULL; /* Lua must not see a failed shrink */
	s->mem = s->mem - osize + nsize;
	if (s->mem > s->mem_peak)
		s->mem_peak = s->mem;
	return p;
}

struct ml_script *ml_script_of(lua_State *L)
{
	void *ud;
	lua_getallocf(L, &ud);
	return ud;
}

/*
 * The count hook runs every HOOK_STEP instructions and takes them off the
 * budget (lua_sethook's count is an int; the budget is a uint64).
 */
static void l_hook(lua_State *L, lua_Debug *ar)
{
	struct ml_script *s = ml_script_of(L);
	(void)ar;
	if (!s->over_budget && s->budget_left > HOOK_STEP) {
		s->budget_left -= HOOK_STEP;
		return;
	}
	s->over_budget = 1;
	/* From now on every instruction raises: no loop survives by catching it. */
	lua_sethook(L, l_hook, LUA_MASKCOUNT, 1);
	s->hooked = 0;
	luaL_error(L, "ran past its instruction budget (%" PRIu64 " instructions per event)",
		   s->insn_limit);
}

/*
 * Arms the budget for one call into Lua. The hook stays installed between
 * calls (installing it is not free, and this runs once per event), so only the
 * budget is reset; the first step of a call may come early, never late.
 */
void ml_script_arm(struct ml_script *s)
{
	s->budget_left = s->insn_limit;
	if (!s->hooked) {
		lua_sethook(s->L, l_hook, LUA_MASKCOUNT, HOOK_STEP);
		s->hooked = 1;
	}
}

/* Adds a traceback to errors raised in Lua; limit errors keep their message alone. */
static int l_msgh(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	struct ml_script *s = ml_script_of(L);
	if (msg == NULL || s->over_budget || s->over_memory)
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
	char where[64], limit[128];
	struct ml_buf b = {0};
	position_text(s, where, sizeof(where));
	if (s->over_memory) {
		snprintf(limit, sizeof(limit), "ran out of its memory limit (%zu MiB)",
			 s->mem_limit >> 20);
		ml_buf_addf(&b, "script %s faulted%s: %s", s->name, where, limit);
	} else if (s->over_budget) {
		ml_buf_addf(&b,
			    "script %s faulted%s: ran past its instruction budget (%" PRIu64
			    " instructions per event)",
			    s->name, where, s->insn_limit);
	} else {
		const char *msg = lua_tostring(s->L, -1);
		ml_buf_addf(&b, "script %s %s%s: %s", s->name, faults ? "faulted" : "failed", where,
			    msg ? msg : "an error that is not a string");
	}
	if (what && *what)
		ml_buf_addf(&b, " (in %s)", what);
	if (faults) {
		free(s->fault);
		s->fault = ml_xstrndup(b.data, b.len);
	}
	ml_diag_set(ML_ERR_SCRIPT, "%s", b.data);
	ml_buf_free(&b);
	return -1;
}

int ml_script_pcall(struct ml_script *s, lua_CFunction fn, void *ud, int nresults, const char *what)
{
	lua_State *L = s->L;
	if (s->fault)
		return ml_diag_set(ML_ERR_SCRIPT, "%s", s->fault);
	lua_pushcfunction(L, fn);
	lua_pushvalue(L, SLOT_RUNNER);
	lua_pushlightuserdata(L, ud);
	ml_script_arm(s);
	int rc = lua_pcall(L, 2, nresults, SLOT_MSGH);
	if (rc == LUA_OK && !s->over_memory && !s->over_budget)
		return 0;
	if (rc == LUA_OK) {
		lua_pop(L, nresults);
		lua_pushnil(L);
	}
	/* A call that fails on its own leaves the script running; a limit faults it. */
	ml_script_fail(s, what, s->over_memory || s->over_budget);
	lua_pop(L, 1);
	return -1;
}

/* ---- loading ---- */

struct load_args {
	const char *chunkname, *src, *lua_dir;
	size_t len;
};

/* Builds the host stack (slots 1 to 6) and the script's definition: runs in pcall. */
static int l_setup(lua_State *L)
{
	struct load_args *a = lua_touserdata(L, 1);
	lua_settop(L, 0);
	lua_pushcfunction(L, l_msgh); /* SLOT_MSGH */
	ml_view_open(L);	      /* SLOT_EVENT_MT, SLOT_VIEW_MT */
	ml_sandbox_open(L, a->lua_dir);
	int env = lua_gettop(L);
	lua_pushfstring(L, "@%s", a->chunkname); /* messages say "balances.lua:3:" */
	if (luaL_loadbufferx(L, a->src, a->len, lua_tostring(L, -1), "t") != LUA_OK)
		return lua_error(L);
	lua_remove(L, -2);
	lua_pushvalue(L, env);
	lua_setupvalue(L, -2, 1); /* the chunk's _ENV */
	lua_call(L, 0, 1);
	int def = lua_gettop(L);
	ml_runner_open(L, env, def); /* SLOT_RUNNER, SLOT_FEED, SLOT_TRAMPOLINE */
	lua_remove(L, def);
	lua_remove(L, env);
	return SLOT_COUNT;
}

static struct ml_script *script_new(const char *chunkname, const struct ml_script_options *o)
{
	struct ml_script *s = ml_xcalloc(1, sizeof(*s));
	s->mem_limit = o->memory_limit ? o->memory_limit : DEFAULT_MEMORY;
	s->insn_limit = o->instruction_limit ? o->instruction_limit : DEFAULT_INSNS;
	s->cache_streams = o->decider_cache_streams;
	s->cache_memory = o->decider_cache_memory;
	const char *base = strrchr(chunkname, '/');
	s->chunkname =
	    ml_xstrndup(base ? base + 1 : chunkname, strlen(base ? base + 1 : chunkname));
	s->name = ml_xstrndup(s->chunkname, strlen(s->chunkname));
	s->L = lua_newstate(l_alloc, s);
	return s;
}

static void make_hash(struct ml_script *s, const char *src, size_t len, const char *lua_dir)
{
	uint64_t h = ml_hash64(src, len, ml_sandbox_library_hash(lua_dir));
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
	struct load_args a = {chunkname, src, s->lua_dir, len};
	lua_pushcfunction(s->L, l_setup);
	lua_pushlightuserdata(s->L, &a);
	ml_script_arm(s);
	int rc = lua_pcall(s->L, 1, LUA_MULTRET, 0);
	if (rc != LUA_OK || s->over_memory || s->over_budget) {
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
	/* Events and their views die young: the generational collector suits them. */
	lua_gc(s->L, LUA_GCGEN, 0, 0);
	return s;
}

struct ml_script *ml_script_load(const char *path, const struct ml_script_options *o)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return ml_diag_set(errno == ENOENT ? ML_ERR_NOT_FOUND : ML_ERR_SCRIPT,
				   "cannot read the script %s: %s", path, strerror(errno)),
		       NULL;
	struct ml_buf b = {0};
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ml_buf_add(&b, chunk, n);
	int err = ferror(f);
	fclose(f);
	if (err) {
		ml_buf_free(&b);
		ml_diag_set(ML_ERR_SCRIPT, "cannot read the script %s", path);
		return NULL;
	}
	struct ml_script *s = ml_script_load_buffer(path, b.data ? b.data : "", b.len, o);
	ml_buf_free(&b);
	return s;
}

void ml_script_free(struct ml_script *s)
{
	if (s == NULL)
		return;
	if (s->L)
		lua_close(s->L);
	ml_decider_free(s->decider);
	ml_script_filter_clear(&s->filter);
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

const struct ml_script_filter *ml_script_filter(const struct ml_script *s)
{
	return &s->filter;
}

void ml_script_stats(const struct ml_script *s, struct ml_script_stats *out)
{
	out->events = s->events;
	out->delivered = s->delivered;
	out->memory = s->mem;
	out->memory_peak = s->mem_peak;
	out->memory_limit = s->mem_limit;
	out->instruction_limit = s->insn_limit;
}

const char *ml_script_lua_source_dir(void)
{
	return ML_LUA_SOURCE_DIR;
}
