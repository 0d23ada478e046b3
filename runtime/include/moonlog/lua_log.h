/*
 * lua_log.h - the Lua log API: log.append, log.read, log.head, log.version,
 * log.streams, log.stats (docs/lua-api.md, "The log").
 *
 * One binding (runtime/log/lua_log.c) serves every Lua that reaches a log:
 * moonlog.core's log.open, the REPL on a log it opened itself, and the chunks
 * a server evaluates on its admin socket. It reads the Lua arguments and
 * builds the results and errors; what it is bound to does the work: the log
 * in this process (an append blocks until it is durable), or a set of
 * operations given here (the server's operation layer, net/lua_eval_log.c,
 * where an append yields the chunk's coroutine until it is durable).
 */
#ifndef MOONLOG_LUA_LOG_H
#define MOONLOG_LUA_LOG_H

#include <stddef.h>
#include <stdint.h>

#include <moonlog/api.h>
#include <moonlog/log.h>
#include <moonlog/util.h>

struct lua_State;

/* What a Lua log is bound to, when not to the log in this process. */
struct ml_lua_log_ops {
	/*
	 * Appends req: its events (each with its stream), the guard in expect (or
	 * none), positions and versions with room for n_events. Returns 0 when req
	 * holds the outcome (err ML_OK, or the refusal with errmsg and
	 * actual_version); 1 when the outcome comes later: the binding yields the
	 * calling coroutine, and whoever resumes it fills in req's outcome first;
	 * -1 with diag when the append cannot be made from here (the binding
	 * raises that as a Lua error).
	 */
	int (*append)(void *ctx, struct lua_State *L, struct ml_append *req);
	/* Reads as ml_log_read_stream does (stream NULL: $all, forward; limit 0: as many
	 * as allowed): the number of events delivered, or -1 with diag. */
	int64_t (*read)(void *ctx, const char *stream, size_t stream_len, uint64_t from,
			uint64_t limit, int backwards, ml_event_fn fn, void *arg);
	/* The figures log.stats() returns, as one msgpack map appended to out. */
	void (*stats)(void *ctx, struct ml_buf *out);
};

/* Pushes the table { open = function } that moonlog.core exposes as `log`. */
ML_API int ml_luaopen_log(struct lua_State *L);

/*
 * Pushes a Lua log bound to `log`, which stays the caller's: it has no close,
 * and the caller keeps the log open while Lua can reach it. With ops (and
 * ctx for them), appends, reads and stats go through ops; head, version and
 * streams read `log` itself, the read side of every kind of log.
 */
ML_API void ml_lua_push_log(struct lua_State *L, struct ml_log *log,
			    const struct ml_lua_log_ops *ops, void *ctx);

#endif
