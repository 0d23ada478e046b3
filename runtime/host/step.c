/*
 * step.c - feeding hosted scripts in slices, and their checkpoints.
 *
 * One step feeds every script that is behind the head, in turn (the first one
 * rotates), until the step's budget of events or time is spent: a rebuild of
 * millions of events becomes many short steps with the loop's I/O in between.
 * Far behind, events are read with ml_log_scan (mapped segments); near the
 * head, with ml_log_read_all (a few indexed reads are cheaper than a mapping).
 *
 * A handler's event that emits (or is parked) ends its slice: the emitted
 * events, the parked copy and a checkpoint event {position, hash} on
 * $checkpoint-NAME go to the log as one batch (system = 1), submitted without
 * waiting. The flusher's done callback only sets a flag and wakes the loop; the
 * next step settles it and goes on feeding. Events that emit nothing move the
 * handler on without an append; a checkpoint-only batch is written every
 * checkpoint_events events, or after checkpoint_ms when some were handled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/diag.h>

#include "host/host_internal.h"
#include "net/mp.h"

/* ---- checkpoints ---- */

static int last_event(const struct ml_event *ev, void *arg)
{
	uint64_t *pos = arg;
	struct ml_mp r = {ev->data, ev->data + ev->data_len};
	uint32_t n;
	if (ml_mp_map(&r, &n) != 0)
		return 1;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kl;
		if (ml_mp_str(&r, &k, &kl) != 0)
			return 1;
		if (kl == 8 && memcmp(k, "position", 8) == 0 && ml_mp_uint(&r, pos) == 0)
			return 1;
		if (ml_mp_skip(&r, NULL, NULL) != 0)
			return 1;
	}
	return 1;
}

uint64_t ml_host_checkpoint_read(struct ml_host *h, const char *name)
{
	char stream[300];
	int n = snprintf(stream, sizeof(stream), "$checkpoint-%s", name);
	uint64_t pos = 0;
	ml_log_read_stream(h->log, stream, (size_t)n, 0, 1, 1, last_event, &pos);
	return pos;
}

static void fault(struct ml_hosted *e, uint64_t pos, const char *fmt, const char *why)
{
	struct ml_buf b = {0};
	ml_buf_addf(&b, fmt, e->name, (unsigned long long)pos, why);
	free(e->error);
	e->error = b.data;
	e->error_pos = pos;
	ml_host_line(e->h, "%s", e->error);
}

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

static void submit_batch(struct ml_host *h, struct ml_hosted *e, const struct ml_event *ev,
			 int with_outcome, int sync);

/* ml_log_read_all's callback: the batch of the event at the handler's position, again. */
static int resubmit_event(const struct ml_event *ev, void *arg)
{
	struct ml_hosted *e = arg;
	submit_batch(e->h, e, ev, 1, 0);
	return 1;
}

/*
 * A batch the log could not write (a full disk, an I/O error on write: the log
 * undid it and takes appends again) is built again from the handler's outcome,
 * which stays as it was since the handler is fed nothing while it waits, and
 * submitted again, after 100 ms, 200 ms, ... up to 5 s between tries. 1 when
 * the batch waits for its next try; 0 when the failure is for settle to take.
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
	if (e->with_outcome)
		ml_log_read_all(h->log, e->inflight_pos, 1, resubmit_event, e);
	else
		submit_batch(h, e, NULL, 0, 0);
	if (!e->inflight && !e->error && e->saved != e->inflight_pos)
		fault(e, e->inflight_pos, "script %s faulted at position %llu: %s",
		      "cannot read its event again to append its batch");
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
	if (e->req.err == ML_OK)
		e->retry_ms = 0;
	if (e->req.err != ML_OK) {
		fault(
		    e, e->inflight_pos,
		    "script %s faulted at position %llu: cannot append its events and checkpoint: "
		    "%s",
		    e->req.errmsg);
		return;
	}
	e->saved = e->inflight_pos;
	e->saved_ms = ml_host_now_ms();
	e->since = 0;
}

static struct ml_event_in *room(struct ml_hosted *e, size_t n)
{
	if (n > e->evs_cap) {
		e->evs = ml_xrealloc(e->evs, n * sizeof(*e->evs));
		e->evs_cap = n;
	}
	return e->evs;
}

/*
 * Builds and submits the batch for a handler fed up to e->pos: what the last
 * feed emitted (when `with_outcome`), the parked event `ev` (when parked), and
 * the checkpoint. With `sync`, waits for it (closing down).
 */
static void submit_batch(struct ml_host *h, struct ml_hosted *e, const struct ml_event *ev,
			 int with_outcome, int sync)
{
	struct ml_script_outcome out = {0};
	if (with_outcome)
		ml_script_outcome(e->s, &out);
	size_t n = out.n_emits + (out.parked ? 1 : 0) + 1;
	struct ml_event_in *evs = room(e, n);
	for (size_t i = 0; i < out.n_emits; i++) {
		const struct ml_script_emit *m = &out.emits[i];
		if (m->stream_len && m->stream[0] == '$')
			return fault(e, e->pos,
				     "script %s faulted at position %llu: %s (handlers emit to "
				     "their own streams only)",
				     "it emitted to a system stream");
		evs[i] = (struct ml_event_in){.stream = m->stream,
					      .stream_len = m->stream_len,
					      .type = m->type,
					      .type_len = m->type_len,
					      .data = m->data,
					      .data_len = m->data_len,
					      .meta = m->meta,
					      .meta_len = m->meta_len};
	}
	struct ml_buf *b = &e->bytes;
	b->len = 0;
	char pstream[300], cstream[300];
	size_t k = out.n_emits;
	if (out.parked) {
		/* The reason and, apart, Lua's traceback: parked() shows both, a person reads
		 * the first. */
		const char *why = out.error ? out.error : "error";
		const char *tb = strstr(why, "\nstack traceback:");
		size_t why_len = tb ? (size_t)(tb - why) : strlen(why);
		ml_mp_put_map(b, (ev->meta_len ? 5 : 4) + (tb ? 1 : 0));
		ml_mp_put_cstr(b, "reason");
		ml_mp_put_str(b, why, why_len);
		if (tb) {
			ml_mp_put_cstr(b, "traceback");
			ml_mp_put_cstr(b, tb + 1);
		}
		ml_mp_put_cstr(b, "stream");
		ml_mp_put_str(b, ev->stream, ev->stream_len);
		ml_mp_put_cstr(b, "position");
		ml_mp_put_uint(b, ev->position);
		ml_mp_put_cstr(b, "id");
		ml_mp_put_str(b, ev->id, ev->id_len);
		if (ev->meta_len) {
			ml_mp_put_cstr(b, "meta");
			ml_buf_add(b, ev->meta, ev->meta_len);
		}
		int pn = snprintf(pstream, sizeof(pstream), "$parked-%s", e->name);
		evs[k++] = (struct ml_event_in){.stream = pstream,
						.stream_len = (size_t)pn,
						.type = ev->type,
						.type_len = ev->type_len,
						.data = ev->data,
						.data_len = ev->data_len,
						.meta = NULL,
						.meta_len = b->len};
	}
	size_t ck = b->len;
	ml_mp_put_map(b, 2);
	ml_mp_put_cstr(b, "position");
	ml_mp_put_uint(b, e->pos);
	ml_mp_put_cstr(b, "hash");
	ml_mp_put_cstr(b, ml_script_hash(e->s));
	if (out.parked)
		evs[k - 1].meta = b->data; /* the buffer has stopped moving */
	int cn = snprintf(cstream, sizeof(cstream), "$checkpoint-%s", e->name);
	evs[k++] = (struct ml_event_in){.stream = cstream,
					.stream_len = (size_t)cn,
					.type = "Checkpoint",
					.type_len = 10,
					.data = b->data + ck,
					.data_len = b->len - ck};
	memset(&e->req, 0, sizeof(e->req));
	e->with_outcome = with_outcome;
	e->req.events = evs;
	e->req.n_events = k;
	e->req.system = 1;
	e->inflight_pos = e->pos;
	if (sync) {
		if (ml_log_append(h->log, &e->req) != 0)
			return fault(e, e->pos,
				     "script %s: cannot write its checkpoint at %llu: %s",
				     ml_diag_last());
		e->saved = e->pos;
		return;
	}
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
	if (rc < 0)
		return fault(e, e->pos,
			     "script %s faulted at position %llu: cannot append its events and "
			     "checkpoint: %s",
			     e->req.errmsg);
	e->saved = e->pos; /* a duplicate: already stored */
}

void ml_host_save(struct ml_host *h, struct ml_hosted *e)
{
	if (e->s == NULL || e->error || e->pos <= e->saved || e->kind == ML_SCRIPT_DECIDER)
		return;
	if (e->kind == ML_SCRIPT_HANDLER) {
		if (!e->inflight)
			submit_batch(h, e, NULL, 0, 1);
		return;
	}
	if (ml_script_snapshot_save(e->s, h->data_dir) != 0) {
		ml_host_line(h, "script %s: cannot save its snapshot: %s", e->name, ml_diag_last());
		e->saved_ms = ml_host_now_ms(); /* try again later, not at once */
		return;
	}
	e->saved = e->pos;
	e->saved_ms = ml_host_now_ms();
}

/* ---- feeding ---- */

/* One slice of one script: the entry's own, or the new version rebuilding beside it. */
struct slice {
	struct ml_host *h;
	struct ml_hosted *e;
	struct ml_script *s;
	uint64_t *pos;
	uint64_t deadline_ns;
	uint32_t budget; /* events left in this step */
	uint32_t n;
};

static int feed_one(const struct ml_event *ev, void *arg)
{
	struct slice *sl = arg;
	struct ml_hosted *e = sl->e;
	int live = sl->s == e->s;
	int handler = live && e->kind == ML_SCRIPT_HANDLER;
	int takes = handler && ml_script_filter_match(ml_script_filter(sl->s), ev->stream,
						      ev->stream_len, ev->type, ev->type_len);
	if (ml_script_feed(sl->s, ev) != 0) {
		if (live)
			ml_host_line(sl->h, "%s", ml_diag_last());
		return 1; /* faulted: the script says where */
	}
	*sl->pos = ev->position;
	e->fed += live;
	sl->n++;
	if (takes) {
		e->since++;
		struct ml_script_outcome out;
		ml_script_outcome(e->s, &out);
		if (out.n_emits || out.parked) {
			submit_batch(sl->h, e, ev, 1, 0);
			return 1;
		}
	}
	if (sl->n >= sl->budget)
		return 1;
	if ((sl->n & 255) == 0 && ml_clock_ns() > sl->deadline_ns)
		return 1;
	return 0;
}

static int stopped(const struct ml_hosted *e)
{
	return e->s == NULL || e->error || ml_script_fault(e->s) || e->inflight || e->removed ||
	       e->kind == ML_SCRIPT_DECIDER;
}

uint32_t ml_host_feed_script(struct ml_host *h, struct ml_hosted *e, struct ml_script *s,
			     uint64_t *pos, uint64_t head, uint64_t deadline, uint32_t budget)
{
	struct slice sl = {h, e, s, pos, deadline, budget, 0};
	uint64_t behind = head - *pos;
	if (behind > h->o.scan_from) {
		uint64_t until = *pos + (budget < behind ? budget : behind);
		ml_log_scan(h->log, *pos + 1, until, feed_one, &sl);
	} else {
		ml_log_read_all(h->log, *pos + 1, behind, feed_one, &sl);
	}
	return sl.n;
}

/* Feeds e from its position towards head; returns the events fed. */
static uint32_t feed(struct ml_host *h, struct ml_hosted *e, uint64_t head, uint64_t deadline,
		     uint32_t budget)
{
	return ml_host_feed_script(h, e, e->s, &e->pos, head, deadline, budget);
}

static void maybe_save(struct ml_host *h, struct ml_hosted *e, uint64_t now_ms)
{
	if (e->pos <= e->saved || e->inflight)
		return;
	uint64_t age = now_ms - e->saved_ms;
	if (e->kind == ML_SCRIPT_HANDLER) {
		if (e->pos - e->saved >= h->o.checkpoint_events ||
		    (e->since && age >= h->o.checkpoint_ms))
			submit_batch(h, e, NULL, 0, 0);
		return;
	}
	/* A snapshot every snapshot_events, or the script's own snapshot_every (at most once a
	 * second), or after snapshot_ms. */
	uint64_t every = ml_script_snapshot_every(e->s);
	if ((e->pos - e->saved >= (every ? every : h->o.snapshot_events) && age >= 1000) ||
	    age >= h->o.snapshot_ms)
		ml_host_save(h, e);
}

static void rates(struct ml_host *h, uint64_t now_ms)
{
	for (size_t i = 0; i < h->n; i++) {
		struct ml_hosted *e = h->v[i];
		uint64_t dt = now_ms - e->rate_ms;
		if (dt < 1000)
			continue;
		e->rate = (double)(e->fed - e->rate_fed) * 1000.0 / (double)dt;
		e->rate_fed = e->fed;
		e->rate_ms = now_ms;
	}
}

int ml_host_step(struct ml_host *h)
{
	uint64_t head = ml_log_head(h->log);
	uint64_t start = ml_clock_ns(), deadline = start + (uint64_t)h->o.slice_us * 1000;
	uint32_t budget = h->o.slice_events;
	uint64_t now_ms = start / 1000000;
	int more = ml_host_reload_swaps(h);
	size_t first = h->turn++ % (h->n ? h->n : 1);
	for (size_t k = 0; k < h->n; k++) {
		struct ml_hosted *e = h->v[(first + k) % h->n];
		ml_host_settle(h, e, 0);
		if (e->pending && !e->inflight)
			ml_host_swap_pending(h, e);
		if (stopped(e))
			continue;
		if (e->pos < head && budget > 0 && ml_clock_ns() < deadline)
			budget -= feed(h, e, head, deadline, budget);
		if (stopped(e))
			continue;
		if (e->pos >= head && !e->caught_up) {
			e->caught_up = 1;
			if (e->fed > 100000)
				ml_host_line(h, "script %s caught up at position %llu", e->name,
					     (unsigned long long)e->pos);
		}
		if (e->pos < head)
			more = 1;
		maybe_save(h, e, now_ms);
	}
	/* Rebuilds go after the live feeds, so both meet at the same head; they always get a
	 * share of the step, so a busy log does not starve them. */
	uint32_t share = h->o.slice_events / 8;
	more |= ml_host_reload_rebuilds(h, head, deadline + (uint64_t)h->o.slice_us * 250,
					budget > share ? budget : share);
	rates(h, now_ms);
	return more;
}

void ml_host_drain(struct ml_host *h)
{
	for (;;) {
		int busy = ml_host_step(h);
		for (size_t i = 0; i < h->n; i++)
			if (h->v[i]->inflight) {
				ml_host_settle(h, h->v[i], 1);
				busy = 1;
			}
		if (!busy)
			return;
	}
}
