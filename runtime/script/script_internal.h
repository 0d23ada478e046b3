/*
 * script_internal.h - what the files of the Lua host share (private to script/).
 *
 * The main thread's stack of a script's lua_State is laid out once at load and
 * kept that way, so the hot path never looks anything up by name:
 *   1 the message handler (adds a traceback to an error)
 *   2 the event view's metatable
 *   3 the data view's metatable
 *   4 the runner: a table of functions, one set per kind (see runner.c)
 *   5 the runner's feed function
 *   6 the feed trampoline (a C function that builds the view and calls 5)
 */
#ifndef ML_SCRIPT_INTERNAL_H
#define ML_SCRIPT_INTERNAL_H

#include <lua.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <moonlog/script.h>

enum {
	SLOT_MSGH = 1,
	SLOT_EVENT_MT,
	SLOT_VIEW_MT,
	SLOT_RUNNER,
	SLOT_FEED,
	SLOT_TRAMPOLINE,
	SLOT_COUNT = SLOT_TRAMPOLINE,
};

#define ML_SCRIPT_MAX_PATTERNS 64
#define ML_SCRIPT_MAX_TYPES    256

/* Why a call into the script is being stopped (limits.c). */
enum ml_stop { ML_STOP_NONE, ML_STOP_BUDGET, ML_STOP_TIME, ML_STOP_MEMORY };

/* Which hook the script's main thread has (limits.c). */
enum ml_hook {
	ML_HOOK_NONE,	  /* between the events fed through fold.c, which runs no Lua */
	ML_HOOK_COUNT,	  /* the count hook, every HOOK_STEP instructions */
	ML_HOOK_CALL,	  /* a handler runs straight through: the hook on calls only */
	ML_HOOK_STOPPING, /* every instruction raises */
};

/* The wall clock of a script's calls, shared with the watchdog thread (watchdog.c). */
struct ml_script_clock {
	_Atomic uint64_t seq;	   /* the number of the latest call (from 1) */
	_Atomic int active;	   /* a call is running */
	_Atomic uint64_t expired;  /* the number of a call that ran past the time limit */
	_Atomic uint64_t position; /* the event being fed, or 0 */
	_Atomic int cpu_clock;	   /* the CPU-time clock of the thread that calls (0: none) */
	pthread_t thread;	   /* that thread (the caller's own) */
	int have_thread;
	/* the watchdog's own, under its lock */
	struct ml_script *script;
	uint64_t limit_ns, seen_seq, seen_cpu;
	int stuck_told;
	struct ml_script_clock *next, *prev;
};

struct ml_script {
	lua_State *L;
	char *name, *chunkname, *lua_dir;
	char *src; /* the code, kept for ml_script_load_again */
	size_t src_len;
	struct ml_script_options opts;
	enum ml_script_kind kind;
	char hash[17];
	struct ml_filter *filter; /* `from`, compiled (filter.c) */
	struct ml_upcast_set *up; /* the types its upcasters take (upcast.c), or NULL */
	char *up_src;		  /* the folder's upcasters.lua, kept for ml_script_load_again */
	size_t up_len;
	int on_error; /* handlers: 0 stop, 1 skip, 2 park */
	/* what the definition asks of the host: ml_script_retries, ml_script_snapshot_every */
	int retries;
	uint64_t snapshot_every;

	/* deciders: the state cache (decide.c, cache.c), made at the first command */
	struct ml_decider *decider;
	size_t cache_streams, cache_memory;

	/* limits (limits.c) */
	size_t mem, mem_peak, mem_limit;
	size_t mem_cap; /* what the allocator allows: the limit, or a little more while stopping */
	uint64_t insn_limit, budget_left;
	enum ml_stop stop;    /* sticky until the call's end: the host faults or recovers */
	char stop_where[192]; /* "in string.find at balances.lua:12" */
	size_t refused;	      /* the size the allocator refused: Lua collects, asks again */
	enum ml_hook hook;
	int entry_pending;     /* ML_HOOK_CALL: calls that are the host's own (see limits.c) */
	uint32_t unhooked_len; /* ML_HOOK_CALL: the handler's length, charged when it calls */
	struct ml_script_clock clock;

	uint64_t position;
	uint64_t events, delivered;
	uint64_t fed_plain, fed_unhooked; /* of them: as plain fields, without the count hook */
	struct ml_fold *fold;		  /* a plain projection's handlers (fold.c) */
	const struct ml_event *current;	  /* the event being fed, for the trampoline */
	char *fault;
	int fault_limit; /* the fault is a limit reached, not an error raised */

	/* the last handler outcome */
	struct ml_buf emit_bytes;
	struct ml_script_emit *emits;
	size_t n_emits, emits_cap;
	int parked, skipped;
	char *handler_error;
};

/* script.c */
/* Runs fn(runner, ud) in protected mode under the limits; `what` names the call in a
 * failure. 0, or -1 with a diag. A call that reaches a limit faults the script, unless it
 * is a `request` (it changes no state: a query, a decision), which then fails alone. */
int ml_script_pcall(struct ml_script *s, lua_CFunction fn, void *ud, int nresults, const char *what,
		    int request);
/* Marks the script faulted with the current Lua error (at the top) or the limit passed. */
int ml_script_fail(struct ml_script *s, const char *what, int faults);
struct ml_script *ml_script_of(lua_State *L);
/* Error messages kept from a script are cut to this many bytes. */
#define ML_SCRIPT_MESSAGE_MAX 4096

/* limits.c */
void *ml_script_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
void ml_script_hook(lua_State *L, lua_Debug *ar);
/* Arms the limits for one call (position: the event fed, or 0). */
void ml_script_arm(struct ml_script *s, uint64_t position);
/* The same for feeding an event through fold.c, which sets the hook per handler. */
void ml_script_arm_feed(struct ml_script *s, uint64_t position);
/* Before the host calls a handler: without the count hook when unhooked_len (the handler's
 * length) is not 0, else with it. */
void ml_script_hook_for(struct ml_script *s, uint32_t unhooked_len);
/* After the handler has returned: the hook on calls is taken off. */
void ml_script_hook_done(struct ml_script *s);
static inline void ml_script_disarm(struct ml_script *s);
void ml_script_stop(struct ml_script *s, lua_State *L, enum ml_stop why);
/* For C functions that may run long: raises the time limit's error once the call is past
 * it. `in` names the function for the message ("string.find"). */
void ml_script_check(lua_State *L, const char *in);
/* After a call stopped on a limit that left no state half changed: collects and resets.
 * -1 when the script cannot go on (its memory is still full). */
int ml_script_recover(struct ml_script *s);
/* Notes where a stopped call was, from the message handler (the stack is still whole). */
void ml_script_note_where(struct ml_script *s, lua_State *L, int level);
/* "ran past its time limit (1000 ms per call) in string.find at balances.lua:12" */
size_t ml_script_limit_text(const struct ml_script *s, char *buf, size_t n);

/* watchdog.c */
void ml_watch_add(struct ml_script_clock *c, struct ml_script *s, uint64_t limit_ns);
void ml_watch_remove(struct ml_script_clock *c);
/* Notes the calling thread's CPU clock (its first call, or a call from another thread). */
void ml_watch_thread(struct ml_script_clock *c);
static inline void ml_watch_begin(struct ml_script_clock *c, uint64_t position)
{
	if (!c->have_thread || !pthread_equal(c->thread, pthread_self()))
		ml_watch_thread(c);
	uint64_t n = atomic_load_explicit(&c->seq, memory_order_relaxed) + 1;
	atomic_store_explicit(&c->position, position, memory_order_relaxed);
	atomic_store_explicit(&c->seq, n, memory_order_release);
	atomic_store_explicit(&c->active, 1, memory_order_release);
}
static inline void ml_watch_end(struct ml_script_clock *c)
{
	atomic_store_explicit(&c->active, 0, memory_order_release);
}
static inline int ml_watch_expired(struct ml_script_clock *c)
{
	return atomic_load_explicit(&c->expired, memory_order_acquire) ==
	       atomic_load_explicit(&c->seq, memory_order_relaxed);
}
static inline void ml_script_disarm(struct ml_script *s)
{
	ml_watch_end(&s->clock);
}

/* sandbox.c: opens the safe libraries and pushes the sandbox environment. */
int ml_sandbox_open(lua_State *L, const char *lua_dir);
/* The hash of the moonlog modules the sandbox loads. */
uint64_t ml_sandbox_library_hash(const char *lua_dir);

/* bounded.c: replaces the standard functions that could outrun the time limit in C, and
 * setmetatable (no __gc), in the state's own libraries. */
void ml_bounded_open(lua_State *L);
/* pattern.c: find, match, gmatch and gsub into the table at idx. */
void ml_pattern_open(lua_State *L, int string_table);

/* filter.c */
/* Compiles the normalised `from` at from_idx into s->filter (and returns it); raises. */
struct ml_filter *ml_script_filter_load(lua_State *L, int from_idx);

/* view.c */
void ml_view_open(lua_State *L); /* pushes the event and data metatables */
void ml_view_push_event(lua_State *L, const struct ml_event *e);
void ml_view_set_event_mt(lua_State *L);
/* 0: not a view, 1: an event, 2: a data view. */
int ml_view_kind(lua_State *L, int idx);
/* Pushes the view at idx decoded into plain tables. */
void ml_view_push_decoded(lua_State *L, int idx);
/* Pushes the event as a plain table of its fields (data and meta decoded). */
void ml_view_push_table(lua_State *L, const struct ml_event *e);
/* plain.c: pushes the value at idx with every view in it decoded into tables (the same
 * value when it holds none). */
void ml_view_push_plain(lua_State *L, int idx);
/* Encodes the value at idx (views included) as msgpack; raises on failure. */
void ml_view_encode(lua_State *L, int idx, struct ml_buf *out, const char *name);

/* runner.c: checks the definition at def and pushes the runner, its feed and the
 * trampoline (SLOT_RUNNER .. SLOT_TRAMPOLINE). up: the index of the folder's upcaster, or 0. */
int ml_runner_open(lua_State *L, int env, int def, int up);
/* feed.c: the C function that builds an event's view and feeds it (upvalues: the event
 * metatable, the runner's feed, the script). */
int ml_feed_trampoline(lua_State *L);
/* fold.c: reads the handlers of a plain projection's `on` (at index on) into s->fold, and
 * pushes its trampoline, which feeds the state in the table at cell ({state}). */
void ml_fold_open(lua_State *L, struct ml_script *s, int on, int cell);
void ml_fold_free(struct ml_fold *f);

/* shape.c: what a handler does with its event, read from its bytecode. */
#define ML_SHAPE_MAX_KEYS 32
struct ml_shape {
	uint32_t length;  /* instructions */
	int takes_event;  /* it has a second parameter (or varargs) */
	int straight;	  /* no backward jump: runs each instruction at most once */
	int plain;	  /* reads the event's fields by name only and keeps nothing */
	unsigned fields;  /* plain: the event fields it reads, in view.c's order (bits) */
	char **data_keys; /* plain: the names it reads of e.data, of e.meta */
	char **meta_keys;
	size_t n_data, n_meta;
};
/* Reads the shape of the function at fn: 0, or -1 when it cannot (a C function, or bytecode
 * this does not know; *out then says: takes the event, not plain, not straight). */
int ml_shape_read(lua_State *L, int fn, struct ml_shape *out);
void ml_shape_clear_keys(struct ml_shape *s);

/* feed.c: an event that an upcaster must see first (upcast.c): upcast, then fed when the
 * filter takes its type. (event as a light userdata, the runner, its feed) -> (). */
int ml_feed_upcast(lua_State *L);

/* upcast.c: the set of types a script upcasts, each with its current schema */
struct ml_upcast_set;
/* From the table at idx ({type = current schema}); NULL when it is empty. */
struct ml_upcast_set *ml_upcast_set_load(lua_State *L, int idx);
void ml_upcast_set_free(struct ml_upcast_set *u);
/* Is e of a type in the set, with a meta.schema below its current one? */
int ml_upcast_wanted(const struct ml_upcast_set *u, const struct ml_event *e);
/* Pushes e through the upcast of the runner at index `runner` (a plain table in its
 * current shape); raises. */
void ml_upcast_push(lua_State *L, int runner, const struct ml_event *e);

/* decide.c */
void ml_decider_free(struct ml_decider *d);

/* cache.c: a decider's states by stream (see the top of cache.c). */
struct ml_decider_cache;
struct ml_cache_entry;
/* NULL when max_streams is 0 (no cache); max_memory 0 is half of mem_limit. */
struct ml_decider_cache *ml_cache_new(size_t max_streams, size_t max_memory, size_t mem_limit);
size_t ml_cache_max_memory(size_t max_memory, size_t mem_limit);
void ml_cache_free(struct ml_decider_cache *c);
/* The entry of a stream, made (invalid) when there is none; it becomes the most recent. */
struct ml_cache_entry *ml_cache_get(struct ml_decider_cache *c, lua_State *L, const char *stream,
				    size_t len);
/* Pushes the entry's state and sets *version, or returns 0 (pushing nothing) when it has no
 * valid state at or below `visible`. Either way the entry is invalid until stored. */
int ml_cache_push(struct ml_decider_cache *c, lua_State *L, struct ml_cache_entry *e,
		  uint64_t visible, uint64_t *version);
/* Keeps the value at idx as the entry's state at `version`, and marks it valid. */
void ml_cache_store(struct ml_decider_cache *c, lua_State *L, struct ml_cache_entry *e, int idx,
		    uint64_t version);
/* Drops the least recently used quarter and collects when Lua memory `mem` is over the bound. */
void ml_cache_trim(struct ml_decider_cache *c, lua_State *L, size_t mem);
void ml_cache_stats(const struct ml_decider_cache *c, struct ml_script_cache_stats *out);
/* Pushes a deep copy of the value at idx (tables copied, everything else shared); *fields
 * carries a size guess from one copy to the next. */
void ml_cache_push_copy(lua_State *L, int idx, int *fields);

/* embedded modules (generated at configure time: lua_modules.c) */
struct ml_lua_module {
	const char *name; /* "moonlog.dsl" */
	const char *source;
	size_t len;
};
extern const struct ml_lua_module ml_lua_modules[];
extern const size_t ml_lua_modules_count;
/* runner.lua, the same way (runner.c) */
extern const char ml_runner_lua[];
extern const size_t ml_runner_lua_len;

#endif
