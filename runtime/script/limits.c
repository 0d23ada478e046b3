/*
 * limits.c - what keeps one script from taking the process's time or memory:
 * the counting allocator, the count hook, the wall clock (watchdog.c), and
 * what happens when one of them is reached.
 *
 * Memory. The allocator counts every byte and refuses to grow past the limit.
 * Lua answers a refusal with a full collection and one more try; if that try
 * does not fit either, or the heap is still within an eighth of the limit after
 * the collection, the script is at its limit and stops at once. (Going on would
 * mean a full collection at every later allocation: seconds of a stalled loop
 * for a script that fills its memory with small objects.)
 *
 * Time and instructions. A count hook runs every HOOK_STEP instructions: it
 * takes them off the call's instruction budget and reads the watchdog's mark.
 * The library's own loops in C (bounded.c, pattern.c) read the mark too.
 *
 * A count hook makes Lua 5.4 trace every instruction, which is a tenth of what
 * a replay costs. So a projection's handler that runs straight through (no
 * backward jump: shape.c) runs without it: it cannot run more instructions
 * than it has, nor for long. It runs under a hook on calls only, and the first
 * call it makes (a function, a metamethod, anything but the host's own two
 * calls: the feed and the handler) turns the count hook back on at once, with
 * the handler's whole length taken off the budget: the budget holds exactly as
 * before, one call earlier at most by that length, and the same on every run.
 *
 * Stopping. Once a limit is reached the script is *stopping*: the hook fires at
 * every instruction and raises, so no loop survives by catching the error with
 * pcall, and the allocator lets the unwinding use a little memory past the
 * limit (the slack) so that it never collects again. When the call returns,
 * the host either faults the script (an event half applied to its state) or,
 * for a call that changes no state (a query, a command's decision, a handler
 * that skips), collects what the call left and lets the script go on.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

/* The hook runs every HOOK_STEP instructions. */
#define HOOK_STEP 1000

static size_t slack(const struct ml_script *s)
{
	size_t n = s->mem_limit / 16;
	return n < (1u << 20) ? (1u << 20) : n;
}

/* Lua's heap is almost full even after a full collection: stop rather than collect again. */
static int nearly_full(const struct ml_script *s, size_t more)
{
	return s->mem + more > s->mem_limit - s->mem_limit / 8;
}

void ml_script_stop(struct ml_script *s, lua_State *L, enum ml_stop why)
{
	if (s->stop == ML_STOP_NONE) {
		s->stop = why;
		s->mem_cap = s->mem_limit + slack(s);
	}
	/* From now on every instruction raises: see the hook. */
	lua_sethook(L ? L : s->L, ml_script_hook, LUA_MASKCOUNT, 1);
	s->hook = ML_HOOK_STOPPING;
}

static void count_hook(struct ml_script *s)
{
	lua_sethook(s->L, ml_script_hook, LUA_MASKCOUNT, HOOK_STEP);
	s->hook = ML_HOOK_COUNT;
}

static void *refuse(struct ml_script *s, size_t grow)
{
	if (s->stop == ML_STOP_NONE) {
		if (!s->refused || grow != s->refused) {
			s->refused = grow; /* Lua collects everything, then asks once more */
			return NULL;
		}
		ml_script_stop(s, NULL, ML_STOP_MEMORY);
	}
	s->refused = 0;
	return NULL;
}

void *ml_script_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct ml_script *s = ud;
	if (ptr == NULL)
		osize = 0;
	if (nsize == 0) {
		free(ptr);
		s->mem -= osize;
		return NULL;
	}
	if (nsize > osize) {
		size_t grow = nsize - osize;
		if (s->mem + grow > s->mem_cap)
			return refuse(s, grow);
		if (s->refused == grow) { /* Lua's try after a collection fits, but only just? */
			s->refused = 0;
			if (s->stop == ML_STOP_NONE && nearly_full(s, grow)) {
				ml_script_stop(s, NULL, ML_STOP_MEMORY);
				return NULL;
			}
		}
	}
	void *p = realloc(ptr, nsize);
	if (p == NULL)
		return nsize <= osize ? ptr : NULL; /* Lua must not see a failed shrink */
	s->mem = s->mem - osize + nsize;
	if (s->mem > s->mem_peak)
		s->mem_peak = s->mem;
	return p;
}

/*
 * Where the script was stopped, into s->stop_where: "in string.find at balances.lua:12"
 * (the first Lua line from `level` up, and the C function it called, named by `in` or
 * else by how it was called).
 */
static void note_where(struct ml_script *s, lua_State *L, int level, const char *in)
{
	lua_Debug ar;
	char at[128] = "", fn[64] = "";
	if (in)
		snprintf(fn, sizeof(fn), "%s", in);
	for (; lua_getstack(L, level, &ar); level++) {
		if (!lua_getinfo(L, "Sln", &ar))
			break;
		if (ar.currentline > 0) {
			snprintf(at, sizeof(at), "%s:%d", ar.short_src, ar.currentline);
			break;
		}
		if (fn[0] == 0 && ar.name && *ar.what == 'C')
			snprintf(fn, sizeof(fn), "%s", ar.name);
	}
	const char *sep = fn[0] && at[0] ? " " : "";
	snprintf(s->stop_where, sizeof(s->stop_where), "%s%s%s%s%s", fn[0] ? "in " : "", fn, sep,
		 at[0] ? "at " : "", at);
}

void ml_script_note_where(struct ml_script *s, lua_State *L, int level)
{
	if (s->stop != ML_STOP_NONE && s->stop_where[0] == 0)
		note_where(s, L, level, NULL);
}

static int raise_stop(struct ml_script *s, lua_State *L)
{
	char text[256];
	ml_script_limit_text(s, text, sizeof(text));
	lua_pushstring(L, text);
	return lua_error(L);
}

/* ML_HOOK_CALL: a call. The host's own pass; anything else turns the count hook on. */
static void call_hook(struct ml_script *s, lua_State *L)
{
	if (s->entry_pending > 0 && L == s->L) {
		s->entry_pending--;
		return;
	}
	s->budget_left = s->insn_limit - s->unhooked_len; /* unhooked_len <= insn_limit */
	lua_sethook(L, ml_script_hook, LUA_MASKCOUNT, HOOK_STEP);
	if (L != s->L)
		count_hook(s);
	s->hook = ML_HOOK_COUNT;
}

void ml_script_hook(lua_State *L, lua_Debug *ar)
{
	struct ml_script *s = ml_script_of(L);
	if (ar->event == LUA_HOOKCALL || ar->event == LUA_HOOKTAILCALL) {
		call_hook(s, L);
		return;
	}
	if (s->stop == ML_STOP_NONE) {
		uint64_t step = (uint64_t)lua_gethookcount(L);
		int late = ml_watch_expired(&s->clock);
		if (!late && s->budget_left > step) {
			s->budget_left -= step;
			return;
		}
		ml_script_stop(s, L, late ? ML_STOP_TIME : ML_STOP_BUDGET);
	} else if (lua_gethookcount(L) != 1) {
		ml_script_stop(s, L, s->stop); /* the allocator stopped it: this thread too */
	}
	if (s->stop_where[0] == 0)
		note_where(s, L, 0, NULL);
	raise_stop(s, L);
}

void ml_script_check(lua_State *L, const char *in)
{
	struct ml_script *s = ml_script_of(L);
	if (s->stop == ML_STOP_NONE && !ml_watch_expired(&s->clock))
		return;
	ml_script_stop(s, L, s->stop == ML_STOP_NONE ? ML_STOP_TIME : s->stop);
	if (s->stop_where[0] == 0)
		note_where(s, L, 1, in);
	raise_stop(s, L);
}

void ml_script_arm(struct ml_script *s, uint64_t position)
{
	s->budget_left = s->insn_limit;
	s->refused = 0;
	if (s->hook != ML_HOOK_COUNT)
		count_hook(s);
	ml_watch_begin(&s->clock, position);
}

void ml_script_arm_feed(struct ml_script *s, uint64_t position)
{
	s->budget_left = s->insn_limit;
	s->refused = 0;
	if (s->hook == ML_HOOK_CALL)
		s->entry_pending = 1; /* the call of the feed itself (after a handler's error) */
	else if (s->hook == ML_HOOK_STOPPING)
		count_hook(s);
	ml_watch_begin(&s->clock, position);
}

void ml_script_hook_for(struct ml_script *s, uint32_t unhooked_len)
{
	if (s->stop != ML_STOP_NONE)
		return;
	if (unhooked_len == 0) {
		if (s->hook != ML_HOOK_COUNT)
			count_hook(s);
		return;
	}
	if (s->hook != ML_HOOK_CALL) {
		lua_sethook(s->L, ml_script_hook, LUA_MASKCALL, 0);
		s->hook = ML_HOOK_CALL;
	}
	s->entry_pending = 1; /* the call of the handler */
	s->unhooked_len = unhooked_len;
}

void ml_script_hook_done(struct ml_script *s)
{
	/* No hook until the next handler: the host's own calls into C need none, and the
	 * next feed's call then costs no hook call either. */
	if (s->hook == ML_HOOK_CALL) {
		lua_sethook(s->L, NULL, 0, 0);
		s->hook = ML_HOOK_NONE;
		s->fed_unhooked++; /* it called nothing: the count hook never came on */
	}
}

int ml_script_recover(struct ml_script *s)
{
	enum ml_stop why = s->stop;
	lua_settop(s->L, SLOT_COUNT);
	s->stop = ML_STOP_NONE;
	s->stop_where[0] = 0;
	s->refused = 0;
	s->mem_cap = s->mem_limit;
	count_hook(s);
	if (why == ML_STOP_MEMORY)
		lua_gc(s->L, LUA_GCCOLLECT); /* what the call built is garbage now */
	if (s->mem > s->mem_limit || nearly_full(s, 0)) {
		s->stop = why;
		return -1;
	}
	return 0;
}

size_t ml_script_limit_text(const struct ml_script *s, char *buf, size_t n)
{
	int k = 0;
	const char *per = s->current ? "event" : "call";
	/* A refusal nothing got past (lauxlib's buffers raise at once): the limit too. */
	switch (s->stop == ML_STOP_NONE && s->refused ? ML_STOP_MEMORY : s->stop) {
	case ML_STOP_MEMORY:
		k = snprintf(buf, n, "ran out of its memory limit (%zu MiB)", s->mem_limit >> 20);
		break;
	case ML_STOP_TIME:
		k = snprintf(buf, n, "ran past its time limit (%" PRIu64 " ms per %s)",
			     s->clock.limit_ns / 1000000, per);
		break;
	case ML_STOP_BUDGET:
		k = snprintf(buf, n,
			     "ran past its instruction budget (%" PRIu64 " instructions per %s)",
			     s->insn_limit, per);
		break;
	default:
		k = snprintf(buf, n, "was stopped");
	}
	if (s->stop_where[0] && k > 0 && (size_t)k < n)
		k += snprintf(buf + k, n - (size_t)k, " %s", s->stop_where);
	return k < 0 ? 0 : (size_t)k < n ? (size_t)k : n - 1;
}
