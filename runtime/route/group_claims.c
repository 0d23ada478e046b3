/*
 * group_claims.c - this node's part in a group kept in the log (group_state.c).
 *
 * A node delivers only the ranges of $all it claimed in $group-NAME, so that
 * members on different nodes share the events and no event goes to two nodes
 * at once. Every change is one append to that stream, guarded by the version
 * the node read (a compare-and-swap that every node decides alike), and a node
 * has one such append in flight per group:
 *
 *   claim     when its members have room and its ranges are all handed out:
 *             first a range whose node is gone (ml_log_node_state) or that was
 *             released, whole; else the next events after the frontier, as many
 *             matching ones as the members have room for (removed ones, never
 *             delivered, take none), up to the head. Two
 *             nodes claiming at once: one wins, the other's append is refused
 *             and it reads again. Nothing is claimed while no event matches, so
 *             a quiet group writes nothing.
 *   settle    a few times a second (ml_router_tick): each range's settled end
 *             moves up to its first event still unacked (parked ones count as
 *             done, and their copies for $parked-GROUP ride in the same batch).
 *   release   with no member left here, or when the router goes: what is not
 *             settled is given back, for another node to claim at once.
 *   snapshot  every ML_GROUP_SNAPSHOT_EVERY events of the stream.
 *
 * A node that was seen gone but was not (cut off for a while) finds its
 * guarded settles refused once another took its range over: the event may
 * have been delivered twice, never parked twice, and the range's end is the
 * new owner's to settle.
 */
#include <stdlib.h>
#include <string.h>

#include <moonlog/msgpack.h>

#include "route/route_internal.h"

#define ML_GROUP_SNAPSHOT_EVERY 256
#define ML_GROUP_PARK_BATCH	8 /* parked copies in one Settled batch */

enum { OP_FLYING, OP_DONE, OP_ORPHAN };

struct ml_group_op {
	struct ml_append req; /* req.arg: the op */
	int state;	      /* OP_*, atomic: the done callback runs on the writer's thread */
	size_t parked;	      /* parked copies it carried */
};

/* On the thread that completes the append; frees the op if the router is gone. */
static void op_done(struct ml_append *req)
{
	struct ml_group_op *op = req->arg;
	if (__atomic_exchange_n(&op->state, OP_DONE, __ATOMIC_ACQ_REL) == OP_ORPHAN)
		free(op);
}

static void op_orphan(struct ml_group_op *op)
{
	if (op && __atomic_exchange_n(&op->state, OP_ORPHAN, __ATOMIC_ACQ_REL) == OP_DONE)
		free(op);
}

/* Appends events to $group-NAME (and $parked-GROUP), expecting the version the state is at. */
static void submit(struct ml_router *r, struct ml_group *g, const struct ml_event_in *ev, size_t n,
		   size_t parked)
{
	struct ml_group_shared *sh = g->sh;
	struct ml_group_op *op = ml_xcalloc(1, sizeof(*op));
	struct ml_expect_in x = {sh->stream, sh->stream_len, (int64_t)sh->version};
	op->req = (struct ml_append){.events = ev,
				     .n_events = n,
				     .expect = &x,
				     .n_expect = 1,
				     .system = 1,
				     .done = op_done,
				     .arg = op};
	op->parked = parked;
	sh->op = op;
	if (ml_log_submit(r->log, &op->req) != 0)
		op->state = OP_DONE; /* refused or complete at once: no done call */
}

/*
 * Is the append in flight over, and what it changed readable here? Then it is
 * let go, and 1: the next may go. A refused one waits until the version that
 * refused it is readable, so the next is not built on the same stale state.
 */
static int op_over(struct ml_router *r, struct ml_group *g)
{
	struct ml_group_shared *sh = g->sh;
	struct ml_group_op *op = sh->op;
	if (op == NULL)
		return 1;
	if (__atomic_load_n(&op->state, __ATOMIC_ACQUIRE) != OP_DONE)
		return 0;
	const struct ml_append *q = &op->req;
	if (q->err == ML_OK && ml_log_head(r->log) < q->last_position)
		return 0;
	if (q->err == ML_ERR_CONFLICT &&
	    ml_log_stream_version(r->log, sh->stream, sh->stream_len) < (uint64_t)q->actual_version)
		return 0;
	if (q->err != ML_OK && q->err != ML_ERR_CONFLICT) {
		sh->wait_tick = 1; /* a failed write, a stopping writer: not at once again */
		if (op->parked && q->err != ML_ERR_IO)
			sh->drop_parked = 1; /* refused with its copies: settle without them */
	}
	free(op);
	sh->op = NULL;
	ml_group_state_catch_up(r, g);
	return 1;
}

/* ---- claiming ---------------------------------------------------------------------- */

static void claim(struct ml_router *r, struct ml_group *g, uint64_t from, uint64_t to)
{
	struct ml_buf data = {0};
	ml_group_event_range(&data, g->sh->me, g->sh->me_len, from, to);
	struct ml_event_in ev = {.stream = g->sh->stream,
				 .stream_len = g->sh->stream_len,
				 .type = "Claimed",
				 .type_len = 7,
				 .data = data.data,
				 .data_len = data.len};
	submit(r, g, &ev, 1, 0);
	ml_buf_free(&data);
}

struct scan {
	struct ml_log *log;
	struct ml_group *g;
	uint64_t room, matched, seen;
};

/* A removed event (deleted, truncated: ml_log_removed) is never delivered: it takes no room. */
static int scan_one(const struct ml_event *e, void *arg)
{
	struct scan *s = arg;
	s->seen = e->position;
	if (ml_group_match(s->g, e) && !ml_route_removed(s->log, e) && ++s->matched == s->room)
		return 1;
	return 0;
}

/*
 * The end of the next range to claim after the frontier: as many matching
 * events as `room`, or up to the head (read a batch at a time); 0 while none
 * matches (and sh->scanned remembers how far none does).
 */
static uint64_t next_range_end(struct ml_router *r, struct ml_group *g, uint64_t head,
			       uint64_t room)
{
	struct ml_group_shared *sh = g->sh;
	uint64_t from = sh->started ? sh->frontier : sh->start;
	if (sh->scanned < from)
		sh->scanned = from;
	if (sh->scanned >= head)
		return 0;
	struct scan s = {r->log, g, room, 0, sh->scanned};
	uint64_t n = head - sh->scanned < r->o.batch ? head - sh->scanned : r->o.batch;
	if (ml_log_read_all(r->log, sh->scanned + 1, n, scan_one, &s) < 0)
		return 0;
	if (s.matched == 0) {
		sh->scanned = s.seen;
		return 0;
	}
	return s.seen;
}

/* A range nobody delivers: released, or its node is gone. */
static struct ml_claim *orphan(struct ml_router *r, struct ml_group_shared *sh)
{
	for (size_t i = 0; i < sh->nclaims; i++) {
		struct ml_claim *c = &sh->claims[i];
		if (ml_claim_mine(sh, c))
			continue;
		if (c->node_len == 0 ||
		    ml_log_node_state(r->log, c->node, c->node_len) == ML_NODE_GONE)
			return c;
	}
	return NULL;
}

int ml_group_claims_pump(struct ml_router *r, struct ml_group *g, uint64_t head)
{
	struct ml_group_shared *sh = g->sh;
	ml_group_state_catch_up(r, g);
	int handed_out = 1, more = 0;
	for (size_t i = 0; i < sh->nclaims; i++) {
		struct ml_claim *c = &sh->claims[i];
		if (!ml_claim_mine(sh, c))
			continue;
		uint64_t to = c->to < head ? c->to : head;
		ml_group_dispatch(r, g, &c->cursor, to);
		handed_out &= c->cursor >= c->to;
		more |= c->cursor < to;
	}
	uint64_t room = ml_group_room(g);
	if (!handed_out)
		return more && room > 0;
	if (room == 0 || sh->wait_tick || !op_over(r, g))
		return 0;
	struct ml_claim *c = orphan(r, sh);
	uint64_t to;
	if (c)
		claim(r, g, c->from, c->to);
	else if ((to = next_range_end(r, g, head, room)) != 0)
		claim(r, g, sh->started ? sh->frontier : sh->start, to);
	return 0;
}

/* ---- settling and releasing -------------------------------------------------------- */

/*
 * How far this node's range is settled: up to its first event in flight (not
 * parked), or as far as it was handed out; at most ML_GROUP_PARK_BATCH parked
 * ones in it (counted in *parked) unless their copies are dropped.
 */
static uint64_t settled_end(const struct ml_group *g, const struct ml_claim *c, size_t *parked)
{
	uint64_t end = c->cursor;
	*parked = 0;
	for (size_t i = ml_group_inflight_at(g, c->from + 1); i < g->ninf && g->inf[i].pos <= end;
	     i++) {
		const struct ml_inflight *in = &g->inf[i];
		if (!in->parked || (!g->sh->drop_parked && *parked == ML_GROUP_PARK_BATCH))
			return in->pos - 1;
		*parked += !g->sh->drop_parked;
	}
	return end;
}

/* A batch being built: the events, and the bytes they point to. */
struct batch {
	struct ml_event_in *ev;
	size_t n, cap;
	struct ml_buf *data; /* one per group event */
	struct ml_parked *parked;
	size_t nparked;
};

static void batch_group_event(struct batch *b, struct ml_group_shared *sh, const char *type,
			      uint64_t from, uint64_t to)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 8;
		b->ev = ml_xrealloc(b->ev, b->cap * sizeof(*b->ev));
		b->data = ml_xrealloc(b->data, b->cap * sizeof(*b->data));
	}
	struct ml_buf *d = &b->data[b->n];
	*d = (struct ml_buf){0};
	ml_group_event_range(d, sh->me, sh->me_len, from, to);
	b->ev[b->n++] = (struct ml_event_in){sh->stream, sh->stream_len, type,	 strlen(type), NULL,
					     0,		 d->data,	 d->len, NULL,	       0};
}

struct park_read {
	struct ml_log *log;
	struct ml_group *g;
	struct batch *b;
	uint32_t deliveries;
};

/* A removed event (deleted since it was delivered) is settled without a copy of its data. */
static int park_copy(const struct ml_event *e, void *arg)
{
	struct park_read *p = arg;
	if (ml_route_removed(p->log, e))
		return 1;
	ml_parked_make(&p->b->parked[p->b->nparked++], p->g, e, p->deliveries);
	return 1;
}

/* The copies of the parked events in (from, to], read back from the log. */
static void batch_parked(struct ml_router *r, struct ml_group *g, struct batch *b, uint64_t from,
			 uint64_t to, size_t count)
{
	b->parked = ml_xrealloc(b->parked, (b->nparked + count) * sizeof(*b->parked));
	size_t i = ml_group_inflight_at(g, from + 1), want = b->nparked + count;
	for (; i < g->ninf && g->inf[i].pos <= to && b->nparked < want; i++)
		if (g->inf[i].parked) {
			struct park_read p = {r->log, g, b, g->inf[i].deliveries};
			ml_log_read_all(r->log, g->inf[i].pos, 1, park_copy, &p);
		}
}

/*
 * Settles what moved in this node's ranges, with the parked copies, and with
 * `release` gives back what is not settled. 1 if it appended.
 */
static int settle(struct ml_router *r, struct ml_group *g, int release)
{
	struct ml_group_shared *sh = g->sh;
	struct batch b = {0};
	for (size_t i = 0; i < sh->nclaims; i++) {
		const struct ml_claim *c = &sh->claims[i];
		if (!ml_claim_mine(sh, c))
			continue;
		size_t parked;
		uint64_t end = settled_end(g, c, &parked);
		if (end > c->from) {
			batch_group_event(&b, sh, "Settled", c->from, end);
			if (parked)
				batch_parked(r, g, &b, c->from, end, parked);
		}
		if (release && end < c->to)
			batch_group_event(&b, sh, "Released", end, c->to);
	}
	size_t ngroup = b.n;
	for (size_t i = 0; i < b.nparked; i++) {
		if (b.n == b.cap)
			b.ev = ml_xrealloc(b.ev, (b.cap = b.cap * 2) * sizeof(*b.ev));
		b.ev[b.n++] = b.parked[i].in;
	}
	if (b.n)
		submit(r, g, b.ev, b.n, b.nparked);
	if (ngroup)
		sh->drop_parked = 0;
	for (size_t i = 0; i < ngroup; i++)
		ml_buf_free(&b.data[i]);
	for (size_t i = 0; i < b.nparked; i++)
		ml_parked_free(&b.parked[i]);
	free(b.ev), free(b.data), free(b.parked);
	return b.n > 0;
}

static void snapshot(struct ml_router *r, struct ml_group *g)
{
	struct ml_buf data = {0};
	ml_group_event_snapshot(&data, g->sh);
	struct ml_event_in ev = {.stream = g->sh->stream,
				 .stream_len = g->sh->stream_len,
				 .type = "Snapshot",
				 .type_len = 8,
				 .data = data.data,
				 .data_len = data.len};
	submit(r, g, &ev, 1, 0);
	ml_buf_free(&data);
}

void ml_group_claims_tick(struct ml_router *r, struct ml_group *g)
{
	struct ml_group_shared *sh = g->sh;
	sh->wait_tick = 0;
	ml_group_state_catch_up(r, g);
	if (!op_over(r, g) || settle(r, g, g->nmembers == 0))
		return;
	if (sh->started && sh->version - sh->snapshot_version >= ML_GROUP_SNAPSHOT_EVERY)
		snapshot(r, g);
}

void ml_group_claims_stop(struct ml_router *r, struct ml_group *g)
{
	struct ml_group_shared *sh = g->sh;
	ml_group_state_catch_up(r, g);
	if (op_over(r, g))
		settle(r, g, 1); /* its outcome is not waited for: the node is going */
	op_orphan(sh->op);
	sh->op = NULL;
}

int ml_group_claims_acked(const struct ml_group *g, uint64_t pos)
{
	const struct ml_group_shared *sh = g->sh;
	for (size_t i = 0; i < sh->nclaims; i++) {
		const struct ml_claim *c = &sh->claims[i];
		if (pos > c->from && pos <= c->to && ml_claim_mine(sh, c))
			return pos <= c->cursor; /* here: handed out, and acked */
	}
	return sh->started && pos <= sh->frontier; /* settled, or another node's */
}
