/*
 * lease.c - when several nodes share the log (ml_log_node(log) != NULL), a
 * handler runs on one node at a time: the one that holds its lease. A lone
 * server has no lease: its handlers run, and nothing here writes a thing.
 *
 * The lease lives in the log itself, in the system stream $lease-NAME, as
 * events Acquired {node} and Released {node}. A node takes the lease by
 * appending Acquired with the expected version it read, when the stream is
 * empty, its last event is Released, or its holder is gone (ml_log_node_state:
 * not heard from for the writer's heartbeat timeout; while that is not known
 * yet, it waits). Expected versions are checked where each node applies the
 * journal, in its order and with the same outcome everywhere, so of two racing
 * Acquired exactly one wins.
 *
 * Once this node's Acquired is applied here, everything ordered before it is
 * in the local log, the old holder's last batch included: the node reads the
 * handler's checkpoint then, and runs it from there. Fencing: every batch the
 * handler writes carries the guard "$lease-NAME is at the version of my
 * Acquired" (ml_lease_guard). A holder that was thought gone but runs on (cut
 * off, paused) finds its later batches refused by that guard wherever they are
 * applied: it drops what it gathered and stands by (ml_lease_fenced). The
 * steps also check, every LEASE_LOOK_MS, that the local $lease-NAME is still
 * at its version (a holder with nothing to write learns it so). On
 * close and on unloading the script, after its last batch, the holder appends
 * Released (with the guard), so another node takes over at once instead of
 * after the heartbeat timeout.
 *
 * A standby handler is not fed. Its position, in the status, is the holder's
 * last checkpoint, read from the log, and it looks at $lease-NAME every
 * LEASE_LOOK_MS (at once when its version moved). A free lease is taken at once
 * by a node that runs none, a little later by one that runs more (the least
 * loaded wins the race), and lease_balance.c moves a lease from a node that
 * runs two or more handlers more than this one. docs/scale-out.md tells it for
 * users.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/diag.h>

#include "host/host_internal.h"
#include <moonlog/msgpack.h>

#define LEASE_LOOK_MS  100  /* a standby looks at the lease this often */
#define LEASE_DEFER_MS 1000 /* the longest a node that runs handlers waits to take a free one */
#define LEASE_RETRY_MS 1000 /* after an Acquired failed for another reason than a race */

void ml_lease_init(struct ml_host *h, struct ml_hosted *e)
{
	struct ml_lease *l = &e->lease;
	l->state =
	    ml_log_node(h->log) && e->kind == ML_SCRIPT_HANDLER ? ML_LEASE_STANDBY : ML_LEASE_ALONE;
	int n = snprintf(l->stream, sizeof(l->stream), "$lease-%s", e->name);
	l->stream_len = n < (int)sizeof(l->stream) ? (size_t)n : sizeof(l->stream) - 1;
	l->seen = UINT64_MAX; /* not read yet */
}

void ml_lease_free(struct ml_hosted *e)
{
	ml_buf_free(&e->lease.data);
}

int ml_lease_runs(const struct ml_hosted *e)
{
	return e->lease.state == ML_LEASE_ALONE || e->lease.state == ML_LEASE_HELD;
}

const char *ml_lease_name(const struct ml_hosted *e)
{
	switch (e->lease.state) {
	case ML_LEASE_HELD:
		return "running here";
	case ML_LEASE_TAKING:
		return "taking over";
	case ML_LEASE_STANDBY:
		return "standby";
	default:
		return NULL;
	}
}

void ml_lease_guard(struct ml_hosted *e, struct ml_append *req)
{
	struct ml_lease *l = &e->lease;
	if (l->state != ML_LEASE_HELD)
		return;
	l->guard = (struct ml_expect_in){l->stream, l->stream_len, (int64_t)l->version};
	req->expect = &l->guard;
	req->n_expect = 1;
}

/* ---- reading the lease ---- */

/* The last event of $lease-NAME: its version, type and node. */
struct last {
	uint64_t version;
	int released;
	char node[64];
	char from[64]; /* Acquired: the live node it was taken from to even out the load */
};

static int last_fn(const struct ml_event *ev, void *arg)
{
	struct last *t = arg;
	t->version = ev->version;
	t->released = ev->type_len == 8 && memcmp(ev->type, "Released", 8) == 0;
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, ev->data, ev->data_len);
	uint32_t n = 0;
	if (ml_msgpack_get_map(&r, &n) != 0)
		return 1;
	for (uint32_t i = 0; i < n; i++) {
		const char *k, *v;
		uint32_t kl, vl;
		if (ml_msgpack_get_str(&r, &k, &kl) != 0)
			return 1;
		char *to = kl == 4 && memcmp(k, "node", 4) == 0	  ? t->node
			   : kl == 4 && memcmp(k, "from", 4) == 0 ? t->from
								  : NULL;
		if (to && ml_msgpack_get_str(&r, &v, &vl) == 0)
			snprintf(to, sizeof(t->node), "%.*s", (int)vl, v);
		else if (to || ml_msgpack_skip(&r, NULL, NULL) != 0)
			return 1;
	}
	return 1;
}

static void read_last(struct ml_host *h, struct ml_lease *l, struct last *t)
{
	memset(t, 0, sizeof(*t));
	ml_log_read_stream(h->log, l->stream, l->stream_len, 0, 1, 1, last_fn, t);
}

/* {node = this node's id}: the data of Acquired and Released; {node, from} for an Acquired
 * that takes the lease from a live node to even out the load. */
static void node_data(struct ml_host *h, struct ml_buf *b, const char *from)
{
	b->len = 0;
	ml_msgpack_put_map(b, from ? 2 : 1);
	ml_msgpack_put_cstr(b, "node");
	ml_msgpack_put_cstr(b, ml_log_node(h->log));
	if (from) {
		ml_msgpack_put_cstr(b, "from");
		ml_msgpack_put_cstr(b, from);
	}
}

/* ---- losing it ---- */

/* Another node's Acquired (`t`, the last event of the lease stream) is in. */
static void stand_by(struct ml_host *h, struct ml_hosted *e, const struct last *t)
{
	struct ml_lease *l = &e->lease;
	l->state = ML_LEASE_STANDBY;
	l->seen = UINT64_MAX;
	l->look_ms = 0;
	if (strcmp(t->from, ml_log_node(h->log)) == 0)
		ml_host_line(h,
			     "script %s (handler) no longer runs here: node %s took its lease over "
			     "to even out the handlers between the nodes; what it handled after "
			     "position %llu is handled there",
			     e->name, t->node, (unsigned long long)e->saved);
	else
		ml_host_line(h,
			     "script %s (handler) no longer runs here: node %s took its lease over "
			     "(this node was thought gone); what it handled after position %llu is "
			     "dropped, for the holder to handle",
			     e->name, t->node[0] ? t->node : "(unknown)",
			     (unsigned long long)e->saved);
}

int ml_lease_fenced(struct ml_host *h, struct ml_hosted *e, const struct ml_append *req)
{
	struct ml_lease *l = &e->lease;
	if (l->state == ML_LEASE_ALONE || req->err != ML_ERR_CONFLICT)
		return 0;
	if (l->state == ML_LEASE_HELD) { /* the guard was the batch's only one */
		struct last t;
		read_last(h, l, &t);
		stand_by(h, e, &t);
	}
	return 1;
}

/* ---- taking it ---- */

/* Flusher or tail thread: the Acquired is applied (or refused); as batch.c's batch_done. */
static void lease_done(struct ml_append *req)
{
	struct ml_hosted *e = req->arg;
	struct ml_host *h = e->h;
	atomic_store(&e->lease.done, 1);
	if (h->o.wake)
		h->o.wake(h->o.wake_arg);
	atomic_fetch_sub(&h->inflight, 1);
}

/* A fresh copy of the script, when the one here was fed past where the handler now starts
 * (it held the lease before): a script skips what is at or below its position. */
static int fresh(struct ml_hosted *e, uint64_t from)
{
	if (ml_script_position(e->s) <= from)
		return 0;
	struct ml_script *s = ml_script_load_again(e->s);
	if (s == NULL) {
		ml_hosted_fault(e, from + 1,
				"script %s faulted at position %llu: cannot start it again to run "
				"it here: %s",
				ml_diag_last());
		return -1;
	}
	ml_script_free(e->s);
	e->s = s;
	return 0;
}

/* This node's Acquired is applied at `version`: the handler runs here, from its checkpoint. */
static void held(struct ml_host *h, struct ml_hosted *e, uint64_t version)
{
	struct ml_lease *l = &e->lease;
	l->state = ML_LEASE_HELD;
	l->version = version;
	snprintf(l->holder, sizeof(l->holder), "%s", ml_log_node(h->log));
	uint64_t ck = ml_host_checkpoint_read(h, e->name);
	uint64_t from = ck ? ck : ml_script_start_position(e->s, ml_log_head(h->log));
	if (fresh(e, from) != 0)
		return;
	ml_host_drop_batch(e);
	e->pos = e->saved = from;
	e->saved_ms = ml_host_now_ms();
	e->since = 0;
	e->caught_up = 0;
	ml_host_line(h, "script %s (handler) runs here now, after position %llu: %s", e->name,
		     (unsigned long long)from, l->why);
	if (ck == 0 && from > 0) /* its start ("end", or a position) for whoever comes next */
		ml_host_submit_batch(h, e, 0);
}

/* The Acquired in flight has an outcome. */
static void taken(struct ml_host *h, struct ml_hosted *e)
{
	struct ml_lease *l = &e->lease;
	l->inflight = 0;
	if (l->req.err == ML_OK)
		return held(h, e, l->at);
	l->state = ML_LEASE_STANDBY;
	l->seen = UINT64_MAX;
	l->look_ms = 0;
	if (l->req.err == ML_ERR_CONFLICT) /* another node took it first: look at who */
		return;
	l->look_ms = ml_host_now_ms() + LEASE_RETRY_MS;
	ml_host_line(h, "script %s (handler) cannot take its lease: %s; trying again in %d ms",
		     e->name, l->req.errmsg, LEASE_RETRY_MS);
}

void ml_lease_take(struct ml_host *h, struct ml_hosted *e, const char *from)
{
	struct ml_lease *l = &e->lease;
	node_data(h, &l->data, from);
	l->ev = (struct ml_event_in){.stream = l->stream,
				     .stream_len = l->stream_len,
				     .type = "Acquired",
				     .type_len = 8,
				     .data = l->data.data,
				     .data_len = l->data.len};
	l->expect = (struct ml_expect_in){l->stream, l->stream_len, (int64_t)l->seen};
	l->req = (struct ml_append){.events = &l->ev,
				    .n_events = 1,
				    .expect = &l->expect,
				    .n_expect = 1,
				    .system = 1,
				    .versions = &l->at,
				    .done = lease_done,
				    .arg = e};
	l->state = ML_LEASE_TAKING;
	l->free_ms = 0;
	atomic_store(&l->done, 0);
	atomic_fetch_add(&h->inflight, 1);
	if (ml_log_submit(h->log, &l->req) == 0) {
		l->inflight = 1;
		return;
	}
	atomic_fetch_sub(&h->inflight, 1);
	taken(h, e); /* refused at once */
}

void ml_lease_settle(struct ml_host *h, struct ml_hosted *e, int wait)
{
	struct ml_lease *l = &e->lease;
	if (!l->inflight)
		return;
	while (!atomic_load(&l->done)) {
		if (!wait)
			return;
		usleep(200);
	}
	taken(h, e);
}

/* A lease free to take (empty, released, or its holder gone) is taken at once by a node that
 * runs no handler, and after LEASE_LOOK_MS more for each one it runs (LEASE_DEFER_MS at most):
 * the least loaded node wins the race, and a lease nobody else wants is still taken. */
static int may_take(struct ml_host *h, struct ml_lease *l, uint64_t now)
{
	if (l->free_ms == 0)
		l->free_ms = now;
	uint64_t wait = (uint64_t)ml_lease_held_here(h) * LEASE_LOOK_MS;
	return now >= l->free_ms + (wait < LEASE_DEFER_MS ? wait : LEASE_DEFER_MS);
}

/* Standing by: reads the lease when it moved, and takes it when it is free. */
static void look(struct ml_host *h, struct ml_hosted *e, uint64_t now)
{
	struct ml_lease *l = &e->lease;
	l->look_ms = now + LEASE_LOOK_MS;
	uint64_t v = ml_log_stream_version(h->log, l->stream, l->stream_len);
	if (v != l->seen) {
		struct last t;
		read_last(h, l, &t);
		l->seen = t.version;
		l->released = t.released;
		l->free_ms = 0;
		snprintf(l->holder, sizeof(l->holder), "%s", t.released ? "" : t.node);
		if (t.released)
			snprintf(l->why, sizeof(l->why), "node %s released it", t.node);
	}
	e->pos = e->saved = ml_host_checkpoint_read(h, e->name); /* the holder's progress */
	if (e->error || ml_script_fault(e->s)) /* faulted here: another node may run it */
		return;
	if (l->seen == 0 || l->released) {
		if (l->seen == 0)
			snprintf(l->why, sizeof(l->why), "the lease was free");
		if (may_take(h, l, now))
			ml_lease_take(h, e, NULL);
		return;
	}
	const char *me = ml_log_node(h->log);
	if (strcmp(l->holder, me) == 0) { /* its own Acquired, whose answer was lost */
		snprintf(l->why, sizeof(l->why), "this node's own Acquired");
		return held(h, e, l->seen);
	}
	if (ml_log_node_state(h->log, l->holder, strlen(l->holder)) != ML_NODE_GONE) {
		if (strcmp(l->told, l->holder) != 0) /* once per holder */
			ml_host_line(h, "script %s (handler) stands by: node %s runs it", e->name,
				     l->holder);
		snprintf(l->told, sizeof(l->told), "%s", l->holder);
		l->free_ms = 0;
		return; /* alive, or not known yet: wait */
	}
	snprintf(l->why, sizeof(l->why),
		 "node %.64s is gone (not heard from); batches it may still send are refused",
		 l->holder);
	if (may_take(h, l, now))
		ml_lease_take(h, e, NULL);
}

void ml_lease_tick(struct ml_host *h, struct ml_hosted *e, uint64_t now)
{
	struct ml_lease *l = &e->lease;
	if (l->state == ML_LEASE_ALONE || e->s == NULL || e->removed)
		return;
	ml_lease_settle(h, e, 0);
	if (e->inflight) /* a batch in flight: its outcome comes first */
		return;
	if (l->state == ML_LEASE_HELD && now >= l->look_ms) {
		/* Only sooner than a refused batch would tell: the guard is what fences. */
		l->look_ms = now + LEASE_LOOK_MS;
		uint64_t v = ml_log_stream_version(h->log, l->stream, l->stream_len);
		if (v != l->version) { /* another node's Acquired is in: fenced already */
			struct last t;
			read_last(h, l, &t);
			stand_by(h, e, &t);
			ml_host_drop_batch(e);
		}
		return;
	}
	if (l->state == ML_LEASE_STANDBY && now >= l->look_ms)
		look(h, e, now);
}

void ml_lease_release(struct ml_host *h, struct ml_hosted *e)
{
	struct ml_lease *l = &e->lease;
	ml_lease_settle(h, e, 1);
	if (l->state != ML_LEASE_HELD)
		return;
	struct ml_buf b = {0};
	node_data(h, &b, NULL);
	struct ml_event_in ev = {.stream = l->stream,
				 .stream_len = l->stream_len,
				 .type = "Released",
				 .type_len = 8,
				 .data = b.data,
				 .data_len = b.len};
	struct ml_append req = {.events = &ev, .n_events = 1, .system = 1};
	ml_lease_guard(e, &req);
	if (ml_log_append(h->log, &req) == 0)
		ml_host_line(h, "script %s (handler) released its lease after position %llu",
			     e->name, (unsigned long long)e->saved);
	else if (req.err != ML_ERR_CONFLICT) /* another node takes over once this one is gone */
		ml_host_line(h, "script %s (handler) cannot release its lease: %s", e->name,
			     req.errmsg);
	l->state = ML_LEASE_STANDBY;
	ml_buf_free(&b);
}
