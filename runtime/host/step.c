/*
 * step.c - feeding hosted scripts in slices, and their checkpoints.
 *
 * One step feeds every script that is behind the head, in turn (the first one
 * rotates), until the step's budget of events or time is spent: a rebuild of
 * millions of events becomes many short steps with the loop's I/O in between.
 * Far behind, events are read with ml_log_scan (mapped segments); near the
 * head, with ml_log_read_all (a few indexed reads are cheaper than a mapping).
 *
 * A handler's slice gathers what it emits (batch.c) and ends in one batch of
 * those events and its checkpoint, submitted without waiting; the handler is
 * fed again once the batch has settled. Events that emit nothing move the
 * handler on without an append; a checkpoint-only batch is written every
 * checkpoint_events events, or after checkpoint_ms when some were handled.
 * On a shared log, a handler is fed only on the node that holds its lease
 * (lease.c, looked after at each step, and spread over the nodes: lease_balance.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/diag.h>
#include <moonlog/route.h>

#include "host/host_internal.h"
#include <moonlog/msgpack.h>

/* ---- checkpoints ---- */

static int last_event(const struct ml_event *ev, void *arg)
{
	uint64_t *pos = arg;
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, ev->data, ev->data_len);
	uint32_t n;
	if (ml_msgpack_get_map(&r, &n) != 0)
		return 1;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kl;
		if (ml_msgpack_get_str(&r, &k, &kl) != 0)
			return 1;
		if (kl == 8 && memcmp(k, "position", 8) == 0 && ml_msgpack_get_uint(&r, pos) == 0)
			return 1;
		if (ml_msgpack_skip(&r, NULL, NULL) != 0)
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

void ml_host_save(struct ml_host *h, struct ml_hosted *e)
{
	if (e->s == NULL || e->error || e->pos <= e->saved || e->kind == ML_SCRIPT_DECIDER)
		return;
	if (e->kind == ML_SCRIPT_HANDLER) {
		if (!e->inflight && ml_lease_runs(e))
			ml_host_submit_batch(h, e, 1);
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
	uint64_t slow; /* ml_script_slow_call_ns() when the slice began */
	int keep;      /* the log has deletions or retention: ask ml_log_removed of each event */
	int64_t now;
};

static int feed_one(const struct ml_event *ev, void *arg)
{
	struct slice *sl = arg;
	struct ml_hosted *e = sl->e;
	if (sl->keep &&
	    ml_log_removed(sl->h->log, ev->stream, ev->stream_len, ev->version, ev->time,
			   sl->now)) { /* removed (docs/log.md): passed over */
		*sl->pos = ev->position;
		return ++sl->n >= sl->budget;
	}
	int live = sl->s == e->s;
	int handler = live && e->kind == ML_SCRIPT_HANDLER;
	int takes = handler && ml_filter_match(ml_script_filter(sl->s), ev->stream, ev->stream_len,
					       ev->type, ev->type_len);
	int rc = ev->position == e->poison && live ? ml_script_pass(sl->s, ev, e->poison_why)
						   : ml_script_feed(sl->s, ev);
	if (rc != 0) {
		if (live)
			ml_host_line(sl->h, "%s", ml_diag_last());
		if (live || sl->s == e->next) /* a dry run's candidate leaves no trace */
			ml_host_record_fault(sl->h, e, sl->s, ev->position);
		return 1; /* faulted: the script says where */
	}
	if (ev->position == e->poison && live) { /* a handler passed over it: done with */
		ml_script_fault_forget(sl->h->data_dir, e->name);
		e->poison = 0;
	}
	uint64_t before = *sl->pos;
	*sl->pos = ev->position;
	e->fed += live;
	sl->n++;
	if (takes) {
		e->since++;
		struct ml_script_outcome out;
		ml_script_outcome(e->s, &out);
		if (out.n_emits || out.parked) {
			int full = ml_host_gather(e, ev, &out);
			if (full < 0) /* faulted on ev: the batch so far ends before it */
				*sl->pos = before;
			if (full != 0)
				return 1;
		}
	}
	if (sl->n >= sl->budget)
		return 1;
	if ((sl->n & 255) == 0 && ml_clock_ns() > sl->deadline_ns)
		return 1;
	/* An event the watchdog saw running long ends the slice at once (a load, no clock). */
	return ml_script_slow_call_ns() != sl->slow;
}

static int stopped(const struct ml_hosted *e)
{
	return e->s == NULL || e->error || ml_script_fault(e->s) || e->inflight || e->removed ||
	       e->kind == ML_SCRIPT_DECIDER || !ml_lease_runs(e);
}

uint32_t ml_host_feed_script(struct ml_host *h, struct ml_hosted *e, struct ml_script *s,
			     uint64_t *pos, uint64_t head, uint64_t deadline, uint32_t budget)
{
	struct slice sl = {h,
			   e,
			   s,
			   pos,
			   deadline,
			   budget,
			   0,
			   ml_script_slow_call_ns(),
			   ml_log_any_removed(h->log),
			   ml_time_ms()};
	uint64_t behind = head - *pos;
	if (behind > h->o.scan_from) {
		uint64_t until = *pos + (budget < behind ? budget : behind);
		/* nothing delivered: every position up to until was a removed event's stub */
		if (ml_log_scan(h->log, *pos + 1, until, feed_one, &sl) == 0)
			*pos = until;
	} else {
		ml_log_read_all(h->log, *pos + 1, behind, feed_one, &sl);
	}
	return sl.n;
}

/* Feeds e from its position towards head; returns the events fed. */
static uint32_t feed(struct ml_host *h, struct ml_hosted *e, uint64_t head, uint64_t deadline,
		     uint32_t budget)
{
	uint32_t n = ml_host_feed_script(h, e, e->s, &e->pos, head, deadline, budget);
	if (e->n_gathered > 0) /* a handler's emits (also before a fault) */
		ml_host_submit_batch(h, e, 0);
	return n;
}

/*
 * The events a handler went past since its checkpoint, its own last batch not
 * counted: that batch holds the checkpoint, an event like any other, and counting
 * it would checkpoint the checkpoint (forever, at --checkpoint-events 1).
 */
static uint64_t passed(const struct ml_hosted *e)
{
	uint64_t n = e->pos - e->saved;
	if (e->own_first > e->saved && e->own_first <= e->pos)
		n -= (e->own_last < e->pos ? e->own_last : e->pos) - e->own_first + 1;
	return n;
}

static void maybe_save(struct ml_host *h, struct ml_hosted *e, uint64_t now_ms)
{
	if (e->pos <= e->saved || e->inflight)
		return;
	uint64_t age = now_ms - e->saved_ms;
	if (e->kind == ML_SCRIPT_HANDLER) {
		uint64_t n = passed(e);
		if ((n && n >= h->o.checkpoint_events) || (e->since && age >= h->o.checkpoint_ms))
			ml_host_submit_batch(h, e, 0);
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

/*
 * After the loop was held long by a script (an event, a query, a command or a
 * load that ran up to its time limit), the host rests: steps feed nothing for
 * REST_NS, so that the loop answers its clients before the next script runs,
 * instead of going from one slow call to the next (the server's tick wakes the
 * host again). A slow call is one the watchdog saw past 50 ms, or a long step.
 */
#define LONG_STEP_NS (50 * 1000000ull)
#define REST_NS	     (50 * 1000000ull)

static int step(struct ml_host *h);

int ml_host_step(struct ml_host *h)
{
	uint64_t start = ml_clock_ns(), slow = ml_script_slow_call_ns();
	if (slow && slow + REST_NS > h->rest_until)
		h->rest_until = slow + REST_NS;
	if (start < h->rest_until)
		return 0;
	int more = step(h);
	uint64_t end = ml_clock_ns();
	if (end - start > LONG_STEP_NS) {
		h->rest_until = end + REST_NS;
		return 0;
	}
	return more;
}

static int step(struct ml_host *h)
{
	uint64_t head = ml_log_head(h->log);
	uint64_t start = ml_clock_ns(), deadline = start + (uint64_t)h->o.slice_us * 1000;
	uint32_t budget = h->o.slice_events;
	uint64_t now_ms = start / 1000000;
	int more = ml_host_reload_swaps(h);
	ml_lease_balance(h, now_ms);
	size_t first = h->turn++ % (h->n ? h->n : 1);
	for (size_t k = 0; k < h->n; k++) {
		struct ml_hosted *e = h->v[(first + k) % h->n];
		ml_host_settle(h, e, 0);
		if (e->pending && !e->inflight)
			ml_host_swap_pending(h, e);
		ml_lease_tick(h, e, now_ms);
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
	/* Dry runs last, with a quarter of a slice of their own: they never come first. */
	uint64_t now = ml_clock_ns(), quarter = (uint64_t)h->o.slice_us * 250;
	more |= ml_host_dry_runs(h, head, now + quarter, h->o.slice_events);
	rates(h, now_ms);
	return more;
}

void ml_host_drain(struct ml_host *h)
{
	for (;;) {
		int busy = step(h);
		for (size_t i = 0; i < h->n; i++) {
			if (h->v[i]->lease.inflight) {
				ml_lease_settle(h, h->v[i], 1);
				busy = 1;
			}
			if (h->v[i]->inflight) {
				ml_host_settle(h, h->v[i], 1);
				busy = 1;
			}
		}
		if (!busy)
			return;
	}
}
