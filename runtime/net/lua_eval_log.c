/*
 * lua_eval_log.c - the Lua log API (lua_log.h) of the chunks a server
 * evaluates, bound to the server's operation layer (ops.h): log.append,
 * log.read and log.stats are the same operations an RPC or HTTP client asks
 * for, with the same checks and bounds. An append never blocks the loop: the
 * chunk's coroutine yields while the log syncs, and the completion queue
 * resumes it.
 */
#include <stdio.h>
#include <string.h>

#include <lua.h>

#include <moonlog/diag.h>
#include <moonlog/lua_log.h>

#include "net/eval_internal.h"
#include "net/ops.h"

/* Completion queue (or at once): the outcome goes into the Lua log's request. */
static void appended(struct ml_pending *p)
{
	struct run *r = p->ctx;
	struct ml_append *into = r->append;
	size_t n = into->n_events;
	into->err = p->req.err;
	memcpy(into->errmsg, p->req.errmsg, sizeof(into->errmsg));
	into->actual_version = p->req.actual_version;
	into->first_position = p->req.first_position;
	into->last_position = p->req.last_position;
	into->duplicate = p->req.duplicate;
	memcpy(into->positions, p->poss, n * sizeof(*p->poss));
	memcpy(into->versions, p->vers, n * sizeof(*p->vers));
	ml_pending_put(p->srv, p);
	r->append = NULL;
	if (!r->in_call) /* it yielded: go on */
		ml_eval_resume(r, 0);
}

static int op_append(void *ctx, lua_State *L, struct ml_append *req)
{
	struct ml_eval *e = ctx;
	struct run *r = ml_eval_run_of(L);
	if (ml_eval_can_wait(L, "log.append") != 0) /* it yields until the append is durable */
		return -1;
	struct ml_pending *p = ml_pending_get(e->srv);
	if (ml_op_append_room(p, req->n_events) != 0) {
		ml_pending_put(e->srv, p);
		req->err = ml_diag_code();
		snprintf(req->errmsg, sizeof(req->errmsg), "%s", ml_diag_last());
		return 0;
	}
	memcpy(p->evs, req->events, req->n_events * sizeof(*p->evs));
	p->req.system = req->system; /* a delete or metadata (ml_log_prepare_delete) */
	p->ctx = r;
	p->finish = appended;
	r->append = req;
	r->in_call = 1;
	ml_op_append(e->srv, p, req->events[0].stream, req->events[0].stream_len,
		     req->n_expect ? req->expect[0].expected : ML_EXPECT_ANY);
	r->in_call = 0;
	return r->append ? 1 : 0; /* 1: still in flight, appended() resumes the chunk */
}

static int64_t op_read(void *ctx, const char *stream, size_t stream_len, uint64_t from,
		       uint64_t limit, int backwards, ml_event_fn fn, void *arg)
{
	struct ml_eval *e = ctx;
	struct ml_op_read rd = {stream, stream_len, from, limit, backwards, 0, 0};
	if (ml_op_read_plan(e->srv, &rd) != 0)
		return -1;
	return ml_op_read(e->srv, &rd, fn, arg);
}

static void op_stats(void *ctx, struct ml_buf *out)
{
	ml_op_stats(((struct ml_eval *)ctx)->srv, out);
}

void ml_eval_push_log(lua_State *L, struct ml_eval *e)
{
	static const struct ml_lua_log_ops ops = {op_append, op_read, op_stats};
	ml_lua_push_log(L, e->srv->log, &ops, e);
}
