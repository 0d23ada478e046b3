/*
 * group_state.c - a group kept in the log, for members on several nodes.
 *
 * When several nodes share one log (ml_log_node), a group's state lives in
 * the system stream $group-NAME, which every node applies in the same order:
 * every node reads the same state from it, and the state is backed up and
 * rebuilt with the events. The state says which ranges of $all are claimed,
 * by which node, and how far each is settled (acked or parked):
 *
 *   Claimed  {node, from, to}   the positions (from, to] are the node's to deliver
 *                               to its members: a new range when from is the
 *                               frontier (the end of the last one claimed), or
 *                               the rest of an open range ending at `to`, taken
 *                               over from a node that is gone or released it
 *   Settled  {node, from, to}   every matching event of the node's range through
 *                               `to` is acked or parked (the parked copies ride
 *                               in the same batch); the range is closed at its end
 *   Released {node, from, to}   the node gives the rest of its range back: any
 *                               node may claim it at once
 *   Snapshot {frontier, open = {{node, from, to}, ...}}   the state as it stands,
 *                               so that a node starting reads from the last one
 *
 * Every event is appended with the stream's version as its expected version
 * (group_claims.c): each was computed on the very state it changes, so ranges
 * never overlap, and a node whose range was taken over cannot settle it any
 * more (its guarded append fails): every node decides alike, as the log's
 * apply checks the guard the same way everywhere. An event that does not fit
 * the state (a guarded append never writes one) changes nothing.
 *
 * Everything through the floor (the lowest open range's `from`, or the
 * frontier) is settled: what NAME.pos is to a group of one node.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moonlog/msgpack.h>

#include "route/route_internal.h"

/* An event's fields; absent ones stay zero. */
struct gev {
	const char *node;
	uint32_t node_len;
	uint64_t from, to, frontier;
	struct ml_msgpack_reader open; /* Snapshot: the open ranges, an array */
	int has_open;
};

static int key_is(const char *k, uint32_t n, const char *want)
{
	return n == strlen(want) && memcmp(k, want, n) == 0;
}

/* Reads an event's data map; -1 if it is not one. */
static int parse(const struct ml_event *e, struct gev *v)
{
	struct ml_msgpack_reader r;
	uint32_t n;
	memset(v, 0, sizeof(*v));
	ml_msgpack_reader_init(&r, e->data, e->data_len);
	if (ml_msgpack_get_map(&r, &n) != 0)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (ml_msgpack_get_str(&r, &k, &kn) != 0)
			return -1;
		int rc = 0;
		if (key_is(k, kn, "node"))
			rc = ml_msgpack_get_str(&r, &v->node, &v->node_len);
		else if (key_is(k, kn, "from"))
			rc = ml_msgpack_get_uint(&r, &v->from);
		else if (key_is(k, kn, "to"))
			rc = ml_msgpack_get_uint(&r, &v->to);
		else if (key_is(k, kn, "frontier"))
			rc = ml_msgpack_get_uint(&r, &v->frontier);
		else if (key_is(k, kn, "open")) {
			v->open = r, v->has_open = 1;
			rc = ml_msgpack_skip(&r, NULL, NULL);
		} else
			rc = ml_msgpack_skip(&r, NULL, NULL);
		if (rc != 0)
			return -1;
	}
	return v->node_len < ML_GROUP_NODE_MAX ? 0 : -1;
}

int ml_claim_mine(const struct ml_group_shared *sh, const struct ml_claim *c)
{
	return c->node_len == sh->me_len && memcmp(c->node, sh->me, c->node_len) == 0;
}

static void set_node(struct ml_claim *c, const char *node, size_t len)
{
	memcpy(c->node, node, len);
	c->node[len] = 0;
	c->node_len = len;
}

static struct ml_claim *claim_add(struct ml_group_shared *sh, const char *node, size_t len,
				  uint64_t from, uint64_t to)
{
	if (sh->nclaims == sh->cap) {
		sh->cap = sh->cap ? sh->cap * 2 : 8;
		sh->claims = ml_xrealloc(sh->claims, sh->cap * sizeof(*sh->claims));
	}
	struct ml_claim *c = &sh->claims[sh->nclaims++];
	*c = (struct ml_claim){.from = from, .to = to, .cursor = from};
	set_node(c, node, len);
	return c;
}

/* The open range ending at `to`, or NULL. */
static struct ml_claim *claim_ending(struct ml_group_shared *sh, uint64_t to)
{
	for (size_t i = 0; i < sh->nclaims; i++)
		if (sh->claims[i].to == to)
			return &sh->claims[i];
	return NULL;
}

static int owned_by(const struct ml_claim *c, const struct gev *v)
{
	return c->node_len == v->node_len && memcmp(c->node, v->node, v->node_len) == 0;
}

static void on_claimed(struct ml_group *g, const struct gev *v)
{
	struct ml_group_shared *sh = g->sh;
	struct ml_claim *c = claim_ending(sh, v->to);
	if (c && v->from == c->from && !owned_by(c, v)) { /* taken over */
		int had_node = c->node_len > 0;		  /* not released: its node was gone */
		if (ml_claim_mine(sh, c))
			ml_group_forget(g, c->from, c->to); /* fenced: no longer ours */
		set_node(c, v->node, v->node_len);
		if (ml_claim_mine(sh, c) && had_node)
			sh->taken_over++;
		c->cursor = c->from;
		return;
	}
	if (c == NULL && v->to > v->from && (!sh->started || v->from == sh->frontier)) {
		claim_add(sh, v->node, v->node_len, v->from, v->to);
		sh->frontier = v->to;
		sh->started = 1;
	}
}

static void on_settled(struct ml_group *g, const struct gev *v)
{
	struct ml_group_shared *sh = g->sh;
	for (size_t i = 0; i < sh->nclaims; i++) {
		struct ml_claim *c = &sh->claims[i];
		if (c->from != v->from || !owned_by(c, v) || v->to <= c->from || v->to > c->to)
			continue;
		if (ml_claim_mine(sh, c))
			ml_group_forget(g, c->from, v->to); /* the parked ones were copied */
		c->from = v->to;
		if (c->cursor < c->from)
			c->cursor = c->from;
		if (c->from == c->to) {
			memmove(c, c + 1, (sh->nclaims - i - 1) * sizeof(*c));
			sh->nclaims--;
		}
		return;
	}
}

static void on_released(struct ml_group *g, const struct gev *v)
{
	struct ml_group_shared *sh = g->sh;
	struct ml_claim *c = claim_ending(sh, v->to);
	if (c == NULL || c->from != v->from || !owned_by(c, v))
		return;
	if (ml_claim_mine(sh, c))
		ml_group_forget(g, c->from, c->to);
	set_node(c, "", 0);
}

/* Loads a Snapshot's state (at start only: later ones restate what is known). */
static void load_snapshot(struct ml_group *g, const struct gev *v)
{
	struct ml_group_shared *sh = g->sh;
	struct ml_msgpack_reader r = v->open;
	uint32_t n;
	sh->nclaims = 0;
	sh->frontier = v->frontier;
	sh->started = 1;
	if (!v->has_open || ml_msgpack_get_array(&r, &n) != 0)
		return;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t three, len;
		const char *node;
		uint64_t from, to;
		if (ml_msgpack_get_array(&r, &three) != 0 || three != 3 ||
		    ml_msgpack_get_str(&r, &node, &len) != 0 || len >= ML_GROUP_NODE_MAX ||
		    ml_msgpack_get_uint(&r, &from) != 0 || ml_msgpack_get_uint(&r, &to) != 0)
			return;
		claim_add(sh, node, len, from, to);
	}
}

static int type_is(const struct ml_event *e, const char *t)
{
	return e->type_len == strlen(t) && memcmp(e->type, t, e->type_len) == 0;
}

static int apply(const struct ml_event *e, void *arg)
{
	struct ml_group *g = arg;
	struct gev v;
	g->sh->version = e->version;
	if (parse(e, &v) != 0)
		return 0;
	if (type_is(e, "Claimed"))
		on_claimed(g, &v);
	else if (type_is(e, "Settled"))
		on_settled(g, &v);
	else if (type_is(e, "Released"))
		on_released(g, &v);
	else if (type_is(e, "Snapshot"))
		g->sh->snapshot_version = e->version;
	return 0;
}

void ml_group_state_catch_up(struct ml_router *r, struct ml_group *g)
{
	struct ml_group_shared *sh = g->sh;
	if (ml_log_stream_version(r->log, sh->stream, sh->stream_len) > sh->version)
		ml_log_read_stream(r->log, sh->stream, sh->stream_len, sh->version + 1, 0, 0, apply,
				   g);
}

/* Reading backwards: stops at the last Snapshot, and loads it. */
static int find_snapshot(const struct ml_event *e, void *arg)
{
	struct ml_group *g = arg;
	struct gev v;
	if (!type_is(e, "Snapshot") || parse(e, &v) != 0)
		return 0;
	load_snapshot(g, &v);
	g->sh->version = g->sh->snapshot_version = e->version;
	return 1;
}

void ml_group_state_open(struct ml_router *r, struct ml_group *g, uint64_t start)
{
	struct ml_group_shared *sh = ml_xcalloc(1, sizeof(*sh));
	g->sh = sh;
	sh->stream_len = (size_t)snprintf(sh->stream, sizeof(sh->stream), "$group-%s", g->name);
	sh->me = r->node;
	sh->me_len = strlen(r->node);
	sh->start = start;
	ml_log_read_stream(r->log, sh->stream, sh->stream_len, 0, 0, 1, find_snapshot, g);
	ml_group_state_catch_up(r, g);
}

void ml_group_state_free(struct ml_group *g)
{
	if (g->sh == NULL)
		return;
	free(g->sh->claims);
	free(g->sh);
	g->sh = NULL;
}

void ml_group_event_range(struct ml_buf *out, const char *node, size_t len, uint64_t from,
			  uint64_t to)
{
	ml_msgpack_put_map(out, 3);
	ml_msgpack_put_cstr(out, "node"), ml_msgpack_put_str(out, node, len);
	ml_msgpack_put_cstr(out, "from"), ml_msgpack_put_uint(out, from);
	ml_msgpack_put_cstr(out, "to"), ml_msgpack_put_uint(out, to);
}

void ml_group_event_snapshot(struct ml_buf *out, const struct ml_group_shared *sh)
{
	ml_msgpack_put_map(out, 2);
	ml_msgpack_put_cstr(out, "frontier"), ml_msgpack_put_uint(out, sh->frontier);
	ml_msgpack_put_cstr(out, "open"), ml_msgpack_put_array(out, (uint32_t)sh->nclaims);
	for (size_t i = 0; i < sh->nclaims; i++) {
		const struct ml_claim *c = &sh->claims[i];
		ml_msgpack_put_array(out, 3);
		ml_msgpack_put_str(out, c->node, c->node_len);
		ml_msgpack_put_uint(out, c->from);
		ml_msgpack_put_uint(out, c->to);
	}
}
