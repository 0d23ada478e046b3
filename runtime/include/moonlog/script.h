/*
 * script.h - the Lua host: one user script (reducer, decider, projection or
 * handler) in a lua_State of its own.
 *
 * A script is loaded from a file into a fresh sandboxed state, with its own
 * memory limit (a counting allocator), and an instruction budget and a time
 * limit per event or call (a count hook and a watchdog thread; limits.c). Its definition is
 * validated by the moonlog DSL, and its `from` is compiled into a filter that runs in C: events it
 * does not subscribe to never reach Lua. Events are then fed one at a time, in log order; each one
 * reaches Lua as a read-only view that decodes its fields on access (see
 * docs/scripts.md).
 *
 * A script that raises an error, or passes a limit, faults: the call returns -1
 * with a diag naming the script, the event position and the limit, and every
 * later feed fails the same way. Nothing a script does takes the process or
 * another script down. Every function returns 0 / -1 (or a pointer / NULL)
 * with a diag; none raises a Lua error. A script is used by one thread at a
 * time.
 */
#ifndef MOONLOG_SCRIPT_H
#define MOONLOG_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include <moonlog/api.h>
#include <moonlog/log.h>
#include <moonlog/util.h>

struct ml_script;

enum ml_script_kind {
	ML_SCRIPT_REDUCER,
	ML_SCRIPT_DECIDER,
	ML_SCRIPT_PROJECTION,
	ML_SCRIPT_HANDLER,
};

struct ml_script_options {
	size_t memory_limit;	    /* bytes of Lua memory (default 256 MiB) */
	uint64_t instruction_limit; /* Lua VM instructions per event or call (default 100M) */
	uint32_t time_limit_ms;	    /* time per event or call (default 1000): CPU time of the
				       thread that calls, so a busy machine does not count */
	const char *lua_dir;	    /* load the moonlog modules from DIR/moonlog/ instead of
				       the copies built into the library (development) */
	/* Deciders keep the folded state of the streams they decided, up to this many
	 * (least recently used out first; default 100,000; 0 = no cache, every command
	 * folds its stream from the log) ... */
	size_t decider_cache_streams;
	/* ... and while the script's Lua memory stays under this many bytes (0 = half of
	 * memory_limit): past it, the least recently used quarter goes. */
	size_t decider_cache_memory;
	/* The folder's upcasters (the text of its upcasters.lua, returning ml.upcaster {...}),
	 * or NULL: every script loaded with these options gets them, before its own
	 * (docs/scripts-in-server.md). The text is copied; its hash is part of the script's. */
	const char *upcasters;
	size_t upcasters_len;
};

ML_API void ml_script_options_init(struct ml_script_options *o);

/* The name of a scripts folder's upcasters file, which is not a script itself. */
#define ML_SCRIPT_UPCASTERS_FILE "upcasters.lua"
/* Reads DIR/upcasters.lua into out (emptied first): 1 when there is one, 0 when there is
 * none, -1 with a diag when it cannot be read. */
ML_API int ml_script_upcasters_read(const char *dir, struct ml_buf *out);

/*
 * Loads and validates the script in `path` (o may be NULL for the defaults).
 * NULL with a diag (ML_ERR_SCRIPT, or ML_ERR_NOT_FOUND) when the file cannot be
 * read, does not compile, raises, passes a limit, or does not return a
 * definition built with the moonlog DSL.
 */
ML_API struct ml_script *ml_script_load(const char *path, const struct ml_script_options *o);
/* The same from a buffer; `chunkname` names the script in messages ("balances.lua"). */
ML_API struct ml_script *ml_script_load_buffer(const char *chunkname, const char *src, size_t len,
					       const struct ml_script_options *o);
/* A fresh copy of a loaded script (same code and limits, the initial state), e.g. to
 * replay the log into a scratch state; NULL with a diag. */
ML_API struct ml_script *ml_script_load_again(const struct ml_script *s);
/* Closes the script's lua_State. NULL is fine. */
ML_API void ml_script_free(struct ml_script *s);
/* Another version of a loaded script's code (`src`, with the folder's upcasters `up`, or
 * NULL), loaded with s's limits: a version of its history (docs/scripts-in-server.md). */
ML_API struct ml_script *ml_script_load_version(const struct ml_script *s, const char *src,
						size_t len, const char *up, size_t up_len);
/* The code a script was loaded from, and the folder's upcasters it was given (NULL: none). */
ML_API const char *ml_script_source(const struct ml_script *s, size_t *len);
ML_API const char *ml_script_upcasters(const struct ml_script *s, size_t *len);

ML_API const char *ml_script_name(const struct ml_script *s);
ML_API enum ml_script_kind ml_script_kind(const struct ml_script *s);
ML_API const char *ml_script_kind_name(enum ml_script_kind kind);
/* A hash of the script's code and of the library it was built with, in 16 hex digits. */
ML_API const char *ml_script_hash(const struct ml_script *s);
/* The position of the last event fed (0 before any): the script's checkpoint. */
ML_API uint64_t ml_script_position(const struct ml_script *s);
/* Why the script faulted, or NULL while it runs. */
ML_API const char *ml_script_fault(const struct ml_script *s);

/* The C side of `from`: a route filter (moonlog/route.h: ml_filter_match). */
struct ml_filter;
ML_API const struct ml_filter *ml_script_filter(const struct ml_script *s);

/*
 * Feeds one event. Events at or below the script's position are skipped (so a
 * restored snapshot can be fed the log from anywhere before it); events the
 * filter rejects only move the position. Returns 0, or -1 with a diag
 * (ML_ERR_SCRIPT) when the script faults. A handler whose on_error is "skip" or
 * "park" does not fault on an error of its own; see ml_script_outcome.
 */
ML_API int ml_script_feed(struct ml_script *s, const struct ml_event *e);

/* What the last feed of a handler produced: the events it emitted (valid until the next
 * call on the script), and whether the event is to be parked or was skipped. */
struct ml_script_emit {
	const char *stream, *type;
	size_t stream_len, type_len;
	const uint8_t *data, *meta; /* msgpack; meta carries causation_id and correlation_id */
	size_t data_len, meta_len;
};
struct ml_script_outcome {
	const struct ml_script_emit *emits;
	size_t n_emits;
	int parked;	   /* on_error = "park": append the event to $parked-NAME */
	int skipped;	   /* on_error = "skip" (or "park"): the handler failed on it */
	const char *error; /* the handler's error when parked or skipped, else NULL */
};
ML_API void ml_script_outcome(const struct ml_script *s, struct ml_script_outcome *out);
/* Moves s over e without running it, as if it had failed there with `why`: a handler that
 * skips or parks does (see ml_script_outcome); any other script faults at e (-1 with the
 * diag). For the event a fault record names (below). */
ML_API int ml_script_pass(struct ml_script *s, const struct ml_event *e, const char *why);

/* The whole state (a projection's state, a reducer's table of states by stream) as msgpack
 * appended to out. */
ML_API int ml_script_state(struct ml_script *s, struct ml_buf *out);
/* The same as readable Lua text (a table constructor, keys sorted). */
ML_API int ml_script_state_lua(struct ml_script *s, struct ml_buf *out);
/* A reducer's or decider's state of one stream (nil when it has none), or a partitioned
 * projection's state of one key, as msgpack. */
ML_API int ml_script_get(struct ml_script *s, const char *key, size_t key_len, struct ml_buf *out);
/* A projection's query `name` with the arguments in `args` (a msgpack array, or NULL/0 for
 * none); the answer as msgpack. */
ML_API int ml_script_query(struct ml_script *s, const char *name, const void *args, size_t args_len,
			   struct ml_buf *out);

/*
 * Runs command `command` of a decider with `args` (a msgpack map, or NULL/0 for
 * {}): the target stream is read from `log` and folded, then decide runs. The
 * caller appends `events` to `stream` with `expected_version` (and retries on a
 * conflict). Free the decision with ml_script_decision_free.
 */
struct ml_script_decision {
	char *stream;
	uint64_t expected_version; /* the stream's version the state was built at */
	int rejected;
	char *reason;	       /* when rejected */
	struct ml_buf details; /* when rejected: msgpack of the details (nil when none) */
	struct ml_buf events;  /* msgpack array of { type, data, meta[, id] } maps */
	size_t n_events;
};
ML_API int ml_script_decide(struct ml_script *s, struct ml_log *log, const char *command,
			    const void *args, size_t args_len, struct ml_script_decision *out);
ML_API void ml_script_decision_free(struct ml_script_decision *d);

/* A decider's `retries`: how often the host decides again after a version conflict (3 when
 * the definition does not say; 0 for the other kinds' definitions, which have none). */
ML_API int ml_script_retries(const struct ml_script *s);
/* A projection's or reducer's `snapshot_every` (a snapshot after this many events), or 0
 * when the definition leaves it to the host. */
ML_API uint64_t ml_script_snapshot_every(const struct ml_script *s);

/* A decider's state cache (see ml_script_options and docs/scripts-in-server.md). */
struct ml_script_cache_stats {
	uint64_t hits;	    /* commands whose state came from the cache */
	uint64_t misses;    /* ... folded from the stream's start */
	uint64_t evictions; /* states dropped for the bounds */
	size_t streams;	    /* states held now */
	size_t max_streams, max_memory;
};
ML_API void ml_script_cache_stats(const struct ml_script *s, struct ml_script_cache_stats *out);

/*
 * Snapshots: the state, the position and the code hash, written atomically to
 * DATA/scripts/NAME.snap (a temporary file, fsync, rename, fsync of the folder).
 * Loading restores state and position; it returns 1 when restored, 0 when there
 * is no snapshot, and -1 (ML_ERR_REFUSED) when the snapshot was taken with other
 * code (a different hash): rebuild from the log instead.
 */
ML_API int ml_script_snapshot_save(struct ml_script *s, const char *data_dir);
ML_API int ml_script_snapshot_load(struct ml_script *s, const char *data_dir);

struct ml_script_stats {
	uint64_t events;	    /* fed */
	uint64_t delivered;	    /* of them, passed the filter and ran in Lua */
	uint64_t plain;		    /* of them, given to a handler as plain fields (no view) */
	uint64_t unhooked;	    /* handlers run without the count hook (straight code) */
	size_t memory, memory_peak; /* bytes of Lua memory */
	size_t memory_limit;
	uint64_t instruction_limit;
	uint32_t time_limit_ms;
};
ML_API void ml_script_stats(const struct ml_script *s, struct ml_script_stats *out);

struct lua_State;

/*
 * Lets `require` of a trusted lua_State (with the package library open) find the
 * moonlog modules built into the library, or $MOONLOG_LUA_DIR/moonlog/NAME.lua.
 */
ML_API void ml_script_add_searcher(struct lua_State *L);

/* The lua/ folder of the source tree this library was built from (for `moonlog test`). */
ML_API const char *ml_script_lua_source_dir(void);

/*
 * Hot reload (the host's runtime/host/reload.c). Whether the definition asks for
 * reload = "keep" (projections and reducers; 0 for "rebuild" and other kinds);
 * where a handler without a checkpoint starts (its `start`: 0, the head for
 * "end", or p); and a new version taking over the state and position of the
 * old one through its migrate_state(old) (the state crosses as msgpack, like a
 * snapshot's): -1 with a diag when the old state cannot be read or migrate
 * fails, and `to` is then to be dropped.
 */
ML_API int ml_script_reload_keep(struct ml_script *s);
ML_API uint64_t ml_script_start_position(struct ml_script *s, uint64_t head);
ML_API int ml_script_adopt_state(struct ml_script *to, struct ml_script *from);

/*
 * The last line of defence of the time limit. Every place where a script can
 * spend time checks it (the count hook, the library's C loops), so a call
 * stops within a few milliseconds of its limit. A call still running `grace_ms`
 * after its limit is stuck where nothing checks; `fn` is then called on the
 * watchdog thread (while the call goes on) with what is known of it. The
 * server records the script's fault and ends the process there. One handler
 * per process; NULL removes it. grace_ms 0 keeps the current grace (5 s).
 */
struct ml_script_stuck {
	const char *name, *hash; /* the script's */
	uint64_t position;	 /* the event being fed, or 0 for a call that is not a feed */
	uint64_t ran_ms;	 /* the CPU time the call has used */
};
typedef void ml_script_stuck_fn(const struct ml_script_stuck *stuck, void *arg);
ML_API void ml_script_on_stuck(ml_script_stuck_fn *fn, void *arg, uint64_t grace_ms);

/*
 * Fault records (DATA/scripts/NAME.fault): that the code with `hash` reached a
 * limit, or got stuck, at `position`. A restart of the same code starts
 * faulted there instead of running into it again (docs/scripts-in-server.md).
 * Written atomically; safe to call from any thread. recorded: 1 with the
 * position and the reason (free it) when there is a record for s's code, 0
 * when there is none (or it is for other code), -1 with a diag.
 */
ML_API int ml_script_fault_record(const char *data_dir, const char *name, const char *hash,
				  uint64_t position, const char *reason);
ML_API int ml_script_fault_recorded(const struct ml_script *s, const char *data_dir,
				    uint64_t *position, char **reason);
ML_API void ml_script_fault_forget(const char *data_dir, const char *name);

/* When (ml_clock_ns) the watchdog last saw a call into any script running longer than
 * 50 ms, or 0: the host rests its feeding after one, so that clients are answered. */
ML_API uint64_t ml_script_slow_call_ns(void);

/* Whether the script's fault is a limit it reached (time, memory, instructions), rather
 * than an error its code raised. */
ML_API int ml_script_fault_is_limit(const struct ml_script *s);

/* The Lua binding (moonlog.core.script): load(path [, options]) -> script object. */
struct lua_State;
ML_API int ml_luaopen_script(struct lua_State *L);

#endif
