/*
 * eval_internal.h - what the parts of the server's eval share: running chunks
 * (lua_eval.c), the Lua log API bound to the server (lua_eval_log.c) and the
 * scripts' API (lua_eval_scripts.c).
 */
#ifndef ML_NET_EVAL_INTERNAL_H
#define ML_NET_EVAL_INTERNAL_H

#include <lua.h>

#include "net/net_internal.h"

/* One chunk being evaluated: a coroutine, its connection, what print wrote. */
struct run {
	struct ml_eval *ev;
	struct ml_conn *conn; /* holds a reference on it (inflight) until the answer */
	uint64_t msgid, count;
	lua_State *co;
	int co_ref;
	int in_call;		  /* inside log.append: an immediate answer must not resume */
	struct ml_append *append; /* the Lua log's append in flight (lua_eval_log.c), or NULL */
	struct ml_buf output;
};

struct ml_eval {
	struct ml_server *srv;
	lua_State *L;
	size_t mem;
	int repl_ref;	 /* the moonlog.repl module */
	int log_ref;	 /* the Lua log handed to repl.env */
	int scripts_ref; /* the scripts API table handed to repl.env */
};

static inline struct run *ml_eval_run_of(lua_State *L)
{
	return *(struct run **)lua_getextraspace(L);
}

/* Resumes a run's coroutine (after what it waited for is done). */
void ml_eval_resume(struct run *r, int nargs);
/*
 * Whether the chunk running on L can wait (yield) where `what` is called: 0, or -1
 * with diag. A call that waits (log.append, a command, at()) asks before it
 * starts anything, so that nothing it starts can resume a chunk that is gone.
 */
int ml_eval_can_wait(lua_State *L, const char *what);

/* Pushes the Lua log API (lua_log.h) bound to the server's operations: an append
 * yields the chunk until it is durable. */
void ml_eval_push_log(lua_State *L, struct ml_eval *e);
/* Pushes the scripts API table (lua_eval_scripts.c): list, get, at. */
void ml_eval_push_scripts_api(lua_State *L);

#endif
