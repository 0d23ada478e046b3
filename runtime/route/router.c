/*
 * router.c - subscriptions: cursors into the log moved towards the head.
 *
 * The server calls ml_router_pump after anything that may let a subscription
 * move: the head advanced, a sink drained, an ack freed a group member. Each
 * plain subscription reads the log from its cursor while its sink has room,
 * so a catch-up and the live feed are the same loop, and a stalled sink
 * holds no events in memory. Groups are pumped in group.c.
 */
#include <stdlib.h>
#include <string.h>

#include <moonlog/diag.h>

#include "route/route_internal.h"

struct ml_router *ml_router_new(struct ml_log *log, const struct ml_router_options *o)
{
	struct ml_router *r = ml_xcalloc(1, sizeof(*r));
	r->log = log;
	r->o = *o;
	r->dir = ml_xstrndup(o->dir ? o->dir : ".", strlen(o->dir ? o->dir : "."));
	r->o.dir = r->dir;
	if (!r->o.batch)
		r->o.batch = 4096;
	if (!r->o.ack_timeout_ms)
		r->o.ack_timeout_ms = 30000;
	if (!r->o.max_deliveries)
		r->o.max_deliveries = 5;
	if (!r->o.max_inflight)
		r->o.max_inflight = 64;
	r->next_id = 1;
	r->node = ml_log_node(log);
	return r;
}

void ml_router_free(struct ml_router *r)
{
	if (r == NULL)
		return;
	while (r->subs)
		ml_sub_free(r->subs);
	for (struct ml_group *g = r->groups, *n; g; g = n) {
		n = g->next;
		ml_group_free(r, g);
	}
	free(r->dir);
	free(r);
}

struct ml_sub *ml_sub_new(struct ml_router *r, struct ml_filter *f, uint64_t from,
			  const char *group, const struct ml_group_options *go,
			  const struct ml_sink *sink)
{
	struct ml_group *g = NULL;
	if (group && (g = ml_group_join(r, group, f, from, go)) == NULL) {
		ml_filter_free(f);
		return NULL;
	}
	struct ml_sub *s = ml_xcalloc(1, sizeof(*s));
	s->r = r;
	s->id = r->next_id++;
	s->f = f;
	s->sink = *sink;
	s->group = g;
	if (from == UINT64_MAX)
		s->cursor = ml_log_head(r->log);
	else
		s->cursor = from ? from - 1 : 0;
	if (g)
		ml_group_add(g, s);
	s->next = r->subs;
	if (r->subs)
		r->subs->prev = s;
	r->subs = s;
	r->st.subs++;
	return s;
}

void ml_sub_free(struct ml_sub *s)
{
	if (s == NULL)
		return;
	struct ml_router *r = s->r;
	if (s->group)
		ml_group_leave(r, s);
	if (s->prev)
		s->prev->next = s->next;
	else
		r->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	r->st.subs--;
	ml_filter_free(s->f);
	free(s);
}

uint64_t ml_sub_id(const struct ml_sub *s)
{
	return s->id;
}

void ml_sub_resume(struct ml_sub *s)
{
	s->full = 0;
}

void *ml_sub_data(struct ml_sub *s)
{
	return s->data;
}

void ml_sub_set_data(struct ml_sub *s, void *p)
{
	s->data = p;
}

/* Is e removed (deleted, truncated, past max count or age: docs/log.md)? Subscribers,
 * groups and scripts leave it out, as every reader does; with no deletion or metadata in
 * the log, one load. */
int ml_route_removed(struct ml_log *log, const struct ml_event *e)
{
	return ml_log_any_removed(log) &&
	       ml_log_removed(log, e->stream, e->stream_len, e->version, e->time, ml_time_ms());
}

static int feed(const struct ml_event *e, void *arg)
{
	struct ml_sub *s = arg;
	s->cursor = e->position;
	if (!ml_filter_match(s->f, e->stream, e->stream_len, e->type, e->type_len) ||
	    ml_route_removed(s->r->log, e))
		return 0;
	s->r->st.delivered++;
	if (s->sink.deliver(s, e, 0, s->sink.arg) == 0)
		return 0;
	s->full = 1;
	return 1;
}

/* Moves one plain subscription; 1 if it has more to take. */
static int pump_sub(struct ml_router *r, struct ml_sub *s, uint64_t head)
{
	if (s->full || s->cursor >= head)
		return 0;
	if (ml_log_read_all(r->log, s->cursor + 1, r->o.batch, feed, s) < 0)
		return 0; /* a read error: the log reports it; try again next pump */
	return !s->full && s->cursor < head;
}

int ml_router_pump(struct ml_router *r)
{
	uint64_t head = ml_log_head(r->log);
	int more = 0;
	for (struct ml_sub *s = r->subs; s; s = s->next)
		if (!s->group)
			more |= pump_sub(r, s, head);
	for (struct ml_group *g = r->groups; g; g = g->next)
		more |= ml_group_pump(r, g, head);
	return more;
}

void ml_router_tick(struct ml_router *r)
{
	uint64_t now = ml_clock_ns();
	for (struct ml_group *g = r->groups; g; g = g->next) {
		ml_group_tick(r, g, now);
		ml_group_store(r, g);
	}
}

void ml_router_stats(struct ml_router *r, struct ml_router_stats *out)
{
	*out = r->st;
	out->groups = out->taken_over = 0;
	for (struct ml_group *g = r->groups; g; g = g->next) {
		out->groups++;
		out->taken_over += g->sh ? g->sh->taken_over : 0;
	}
}
