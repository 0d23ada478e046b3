/*
 * batch.c - a handler's batch: what it emitted, and its checkpoint, in one append.
 *
 * While a handler is fed a slice, the events it emits (and the copies of the
 * events it parks) are gathered in its entry, copied, since the script's own
 * buffers and the log's read buffers change with the next event. When the
 * slice ends (at the head, at the step's budget, at BATCH_EVENTS handled events
 * with output, at BATCH_BYTES, or at a fault), everything gathered goes to the
 * log as one batch with a checkpoint event {position, hash, events} on
 * $checkpoint-NAME (system = 1), submitted without waiting (`events`: how many
 * events of the batch come before the checkpoint). The batch is
 * all-or-nothing, so after a crash the handler resumes after the last batch
 * that was written, and each event it handled has its emits stored exactly
 * once. One batch per slice instead of one per emitting event is what lets a
 * handler that emits on every event keep up with the log: each batch waits for
 * a group commit.
 *
 * The flusher's done callback only sets a flag and wakes the loop; the next
 * step settles it. A batch the log could not write (a full disk) is kept as it
 * is and submitted again later (the handler is fed nothing meanwhile).
 *
 * On a log shared by several nodes every batch also carries the handler's
 * lease guard (lease.c); a batch that guard refuses is dropped, not a fault:
 * another node runs the handler now, from the last checkpoint that went in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/diag.h>

#include "host/host_internal.h"
#include <moonlog/msgpack.h>

#define BATCH_EVENTS 512	/* handled events with output in one batch */
#define BATCH_BYTES  (1u << 20) /* bytes gathered in one batch (one big event may pass it) */

void ml_hosted_fault(struct ml_hosted *e, uint64_t pos, const char *fmt, const char *why)
{
	struct ml_buf b = {0};
	ml_buf_addf(&b, fmt, e->name, (unsigned long long)pos, why);
	free(e->error);
	e->error = b.data;
	e->error_pos = pos;
	ml_host_line(e->h, "%s", e->error);
}

/* ---- gathering ---- */

static size_t put(struct ml_buf *b, const void *p, size_t n)
{
	size_t at = b->len;
	ml_buf_add(b, p, n);
	return at;
}

static struct ml_gathered *next_slot(struct ml_hosted *e)
{
	if (e->n_gathered == e->gathered_cap) {
		e->gathered_cap = e->gathered_cap ? e->gathered_cap * 2 : 16;
		e->gathered = ml_xrealloc(e->gathered, e->gathered_cap * sizeof(*e->gathered));
	}
	return &e->gathered[e->n_gathered++];
}

#define PARK_LINES 10 /* log lines about parked events, per handler and second */

/*
 * A line for the operator about each parked event, so that a handler that parks
 * is seen without polling parked(): at most PARK_LINES a second per handler,
 * then one line that says how many more were parked.
 */
static void say_parked(struct ml_hosted *e, const struct ml_event *ev, const char *why,
		       size_t why_len)
{
	uint64_t now = ml_host_now_ms();
	if (now - e->park_second_ms >= 1000) {
		if (e->park_unsaid)
			ml_host_line(e->h,
				     "script %s parked %u more events in the last second "
				     "(parked(\"%s\") lists them)",
				     e->name, e->park_unsaid, e->name);
		e->park_second_ms = now;
		e->park_lines = e->park_unsaid = 0;
	}
	if (e->park_lines++ >= PARK_LINES) {
		e->park_unsaid++;
		return;
	}
	ml_host_line(e->h,
		     "script %s parked the event at position %llu (%.*s %.*s) in $parked-%s: %.*s",
		     e->name, (unsigned long long)ev->position, (int)ev->stream_len, ev->stream,
		     (int)ev->type_len, ev->type, e->name, (int)why_len, why);
}

/* The parked copy of ev: its type and data, and a meta map with why it failed. */
static void gather_parked(struct ml_hosted *e, const struct ml_event *ev, const char *error)
{
	struct ml_buf *b = &e->bytes;
	struct ml_gathered *g = next_slot(e);
	char pstream[300];
	int pn = snprintf(pstream, sizeof(pstream), "$parked-%s", e->name);
	g->stream = put(b, pstream, (size_t)pn), g->stream_len = (size_t)pn;
	g->type = put(b, ev->type, ev->type_len), g->type_len = ev->type_len;
	g->data = put(b, ev->data, ev->data_len), g->data_len = ev->data_len;
	/* The reason and, apart, Lua's traceback: parked() shows both, a person reads the
	 * first. */
	const char *why = error ? error : "error";
	const char *tb = strstr(why, "\nstack traceback:");
	size_t why_len = tb ? (size_t)(tb - why) : strlen(why);
	say_parked(e, ev, why, why_len);
	g->meta = b->len;
	ml_msgpack_put_map(b, (ev->meta_len ? 5 : 4) + (tb ? 1 : 0));
	ml_msgpack_put_cstr(b, "reason");
	ml_msgpack_put_str(b, why, why_len);
	if (tb) {
		ml_msgpack_put_cstr(b, "traceback");
		ml_msgpack_put_cstr(b, tb + 1);
	}
	ml_msgpack_put_cstr(b, "stream");
	ml_msgpack_put_str(b, ev->stream, ev->stream_len);
	ml_msgpack_put_cstr(b, "position");
	ml_msgpack_put_uint(b, ev->position);
	ml_msgpack_put_cstr(b, "id");
	ml_msgpack_put_str(b, ev->id, ev->id_len);
	if (ev->meta_len) {
		ml_msgpack_put_cstr(b, "meta");
		ml_buf_add(b, ev->meta, ev->meta_len);
	}
	g->meta_len = b->len - g->meta;
}

int ml_host_gather(struct ml_hosted *e, const struct ml_event *ev,
		   const struct ml_script_outcome *out)
{
	for (size_t i = 0; i < out->n_emits; i++) {
		const struct ml_script_emit *m = &out->emits[i];
		if (m->stream_len && m->stream[0] == '$') {
			ml_hosted_fault(e, ev->position,
					"script %s faulted at position %llu: %s (handlers emit to "
					"their own streams only)",
					"it emitted to a system stream");
			return -1;
		}
	}
	struct ml_buf *b = &e->bytes;
	for (size_t i = 0; i < out->n_emits; i++) {
		const struct ml_script_emit *m = &out->emits[i];
		struct ml_gathered *g = next_slot(e);
		g->stream = put(b, m->stream, m->stream_len), g->stream_len = m->stream_len;
		g->type = put(b, m->type, m->type_len), g->type_len = m->type_len;
		g->data = put(b, m->data, m->data_len), g->data_len = m->data_len;
		g->meta = put(b, m->meta, m->meta_len), g->meta_len = m->meta_len;
	}
	if (out->parked)
		gather_parked(e, ev, out->error);
	e->gathered_bytes = b->len;
	e->gathered_events++;
	return e->gathered_events >= BATCH_EVENTS || b->len >= BATCH_BYTES;
}

/* ---- submitting ---- */

/*
 * Flusher thread: the handler's batch is acknowledged (or failed). Once `done`
 * is set the loop may free the entry (a reload that unloads it), so nothing
 * touches e after it; h->inflight drops last, after the wake, and closing the
 * host waits for it (ml_host_quiesce) before freeing h and the server.
 */
static void batch_done(struct ml_append *req)
{
	struct ml_hosted *e = req->arg;
	struct ml_host *h = e->h;
	atomic_store(&e->done, 1);
	if (h->o.wake)
		h->o.wake(h->o.wake_arg);
	atomic_fetch_sub(&h->inflight, 1);
}

void ml_host_quiesce(struct ml_host *h)
{
	while (atomic_load(&h->inflight) > 0)
		usleep(100);
}

static void forget_gathered(struct ml_hosted *e)
{
	e->n_gathered = e->gathered_events = 0;
	e->gathered_bytes = e->bytes.len = 0;
}

void ml_host_drop_batch(struct ml_hosted *e)
{
	forget_gathered(e);
	e->retry_at_ms = e->retry_ms = 0;
}

/* Builds the request from what was gathered and a checkpoint at e->inflight_pos. */
static void build(struct ml_hosted *e)
{
	struct ml_buf *b = &e->bytes;
	b->len = e->gathered_bytes; /* a retry builds its checkpoint again */
	size_t ck = b->len;
	ml_msgpack_put_map(b, 3);
	ml_msgpack_put_cstr(b, "position");
	ml_msgpack_put_uint(b, e->inflight_pos);
	ml_msgpack_put_cstr(b, "hash");
	ml_msgpack_put_cstr(b, ml_script_hash(e->s));
	/* how many events of the batch come before the checkpoint: a dry run reads them as
	 * what the handler emitted (dryrun_emits.c) */
	ml_msgpack_put_cstr(b, "events");
	ml_msgpack_put_uint(b, e->n_gathered);
	size_t n = e->n_gathered + 1;
	if (n > e->evs_cap) {
		e->evs = ml_xrealloc(e->evs, n * sizeof(*e->evs));
		e->evs_cap = n;
	}
	const char *base = b->data; /* the buffer has stopped moving */
	for (size_t i = 0; i < e->n_gathered; i++) {
		const struct ml_gathered *g = &e->gathered[i];
		e->evs[i] = (struct ml_event_in){.stream = base + g->stream,
						 .stream_len = g->stream_len,
						 .type = base + g->type,
						 .type_len = g->type_len,
						 .data = g->data_len ? base + g->data : NULL,
						 .data_len = g->data_len,
						 .meta = g->meta_len ? base + g->meta : NULL,
						 .meta_len = g->meta_len};
	}
	snprintf(e->ckstream, sizeof(e->ckstream), "$checkpoint-%s", e->name);
	e->evs[n - 1] = (struct ml_event_in){.stream = e->ckstream,
					     .stream_len = strlen(e->ckstream),
					     .type = "Checkpoint",
					     .type_len = 10,
					     .data = base + ck,
					     .data_len = b->len - ck};
	memset(&e->req, 0, sizeof(e->req));
	e->req.events = e->evs;
	e->req.n_events = n;
	e->req.system = 1;
	ml_lease_guard(e, &e->req);
}

static void submit(struct ml_host *h, struct ml_hosted *e)
{
	build(e);
	e->req.done = batch_done;
	e->req.arg = e;
	atomic_store(&e->done, 0);
	atomic_fetch_add(&h->inflight, 1);
	int rc = ml_log_submit(h->log, &e->req);
	if (rc == 0) {
		e->inflight = 1;
		return;
	}
	atomic_fetch_sub(&h->inflight, 1);
	if (rc < 0 && ml_lease_fenced(h, e, &e->req)) {
		forget_gathered(e);
		return;
	}
	if (rc < 0) {
		ml_hosted_fault(e, e->inflight_pos,
				"script %s faulted at position %llu: cannot append its events and "
				"checkpoint: %s",
				e->req.errmsg);
		forget_gathered(e);
		return;
	}
	e->saved = e->inflight_pos; /* a duplicate: already stored */
	forget_gathered(e);
}

void ml_host_submit_batch(struct ml_host *h, struct ml_hosted *e, int sync)
{
	e->inflight_pos = e->pos;
	if (!sync)
		return submit(h, e);
	build(e);
	if (ml_log_append(h->log, &e->req) == 0) {
		e->saved = e->pos;
		e->own_first = e->req.first_position, e->own_last = e->req.last_position;
	} else if (!ml_lease_fenced(h, e, &e->req))
		ml_hosted_fault(e, e->pos, "script %s: cannot write its checkpoint at %llu: %s",
				ml_diag_last());
	forget_gathered(e);
}

/* ---- settling ---- */

/*
 * A batch the log could not write (a full disk, an I/O error on write: the log
 * undid it and takes appends again) is submitted again as it was, after 100 ms,
 * 200 ms, ... up to 5 s between tries. 1 when the batch waits for its next try;
 * 0 when the failure is for settle to take.
 */
static int retry_later(struct ml_host *h, struct ml_hosted *e, int wait)
{
	if (e->retry_at_ms == 0) {
		if (e->req.err != ML_ERR_IO || wait || e->removed)
			return 0;
		e->retry_ms = e->retry_ms ? (e->retry_ms * 2 > 5000 ? 5000 : e->retry_ms * 2) : 100;
		e->retry_at_ms = ml_host_now_ms() + e->retry_ms;
		ml_host_line(h,
			     "script %s: cannot append its batch at position %llu: %s; trying "
			     "again in %llu ms",
			     e->name, (unsigned long long)e->inflight_pos, e->req.errmsg,
			     (unsigned long long)e->retry_ms);
		return 1;
	}
	if (wait || e->removed) { /* closing or unloading: no more tries */
		e->retry_at_ms = 0;
		return 0;
	}
	if (ml_host_now_ms() < e->retry_at_ms)
		return 1;
	e->retry_at_ms = 0;
	e->inflight = 0;
	submit(h, e);
	return 1;
}

void ml_host_settle(struct ml_host *h, struct ml_hosted *e, int wait)
{
	if (!e->inflight)
		return;
	while (!atomic_load(&e->done)) {
		if (!wait)
			return;
		usleep(200);
	}
	if (e->req.err != ML_OK && retry_later(h, e, wait))
		return;
	e->inflight = 0;
	forget_gathered(e);
	if (e->req.err != ML_OK && ml_lease_fenced(h, e, &e->req))
		return;
	if (e->req.err != ML_OK) {
		ml_hosted_fault(e, e->inflight_pos,
				"script %s faulted at position %llu: cannot append its events and "
				"checkpoint: %s",
				e->req.errmsg);
		return;
	}
	e->retry_ms = 0;
	e->own_first = e->req.first_position, e->own_last = e->req.last_position;
	e->saved = e->inflight_pos;
	e->saved_ms = ml_host_now_ms();
	e->since = 0;
}
