/*
 * group.c - groups: durable subscriptions shared by competing consumers.
 *
 * A group walks the log with a cursor and hands each matching event to one
 * member with room (round robin), remembering it as in flight until acked.
 * An event not acked within the timeout goes back for redelivery, to any
 * member; after max_deliveries it is parked: copied to $parked-GROUP with the
 * reason, and it counts as done. An event removed (ml_log_removed: its stream
 * deleted or truncated) is never handed out, nor again once removed while in
 * flight, nor copied when parked: it counts as done.
 *
 * Where the cursor may go, and where the settled position is kept, depends on
 * the log. A log that is this node's alone: the cursor walks to the head, and
 * the acked position (everything at or before it is settled) is written to
 * DATA/groups/NAME.pos a few times a second and at shutdown, so a restart
 * redelivers at most what was in flight: delivery is at least once. A log that
 * several nodes share (ml_log_node): the group is kept in the log, and this
 * node walks only the ranges it claimed there (group_claims.c); a parked
 * event's copy goes out with the Settled that covers it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <moonlog/diag.h>
#include <moonlog/msgpack.h>

#include "route/route_internal.h"

static int valid_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 100 || name[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

/* ---- the acked position in DATA/groups/NAME.pos (a log of this node's alone) ---- */

static void pos_path(struct ml_router *r, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/groups/%s.pos", r->dir, name);
}

/* The acked position stored for a group, or -1 when there is none. */
static int64_t load_floor(struct ml_router *r, const char *name)
{
	char path[4200], text[32] = {0};
	pos_path(r, name, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	return n > 0 ? (int64_t)strtoull(text, NULL, 10) : -1;
}

static uint64_t floor_of(const struct ml_group *g)
{
	return g->ninf ? g->inf[0].pos - 1 : g->cursor;
}

/* Writes the acked position atomically (temporary file, fsync, rename) if it moved. */
void ml_group_store(struct ml_router *r, struct ml_group *g)
{
	if (g->sh) /* kept in the log: group_claims.c settles */
		return;
	uint64_t fl = floor_of(g);
	if (fl == g->stored_floor)
		return;
	char dir[4200], path[4200], tmp[4300], text[32];
	snprintf(dir, sizeof(dir), "%s/groups", r->dir);
	ml_mkdir_private(dir, NULL);
	pos_path(r, g->name, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int len = snprintf(text, sizeof(text), "%" PRIu64 "\n", fl);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, ML_FILE_MODE);
	if (fd < 0)
		return;
	int ok = write(fd, text, (size_t)len) == len && fsync(fd) == 0;
	close(fd);
	if (ok && rename(tmp, path) == 0)
		g->stored_floor = fl;
}

/* ---- joining and leaving ------------------------------------------------------------ */

struct ml_group *ml_group_join(struct ml_router *r, const char *name, struct ml_filter *f,
			       uint64_t from, const struct ml_group_options *go)
{
	if (!valid_name(name)) {
		ml_diag_set(ML_ERR_USAGE,
			    "invalid group name \"%.100s\": use 1-100 letters, digits, '-', '_' "
			    "or '.'",
			    name);
		return NULL;
	}
	struct ml_group *g;
	for (g = r->groups; g; g = g->next)
		if (strcmp(g->name, name) == 0)
			return g;
	g = ml_xcalloc(1, sizeof(*g));
	g->name = ml_xstrndup(name, strlen(name));
	g->f = ml_filter_dup(f);
	struct ml_group_options o = go ? *go : (struct ml_group_options){0};
	g->o.ack_timeout_ms = o.ack_timeout_ms ? o.ack_timeout_ms : r->o.ack_timeout_ms;
	g->o.max_deliveries = o.max_deliveries ? o.max_deliveries : r->o.max_deliveries;
	g->o.max_inflight = o.max_inflight ? o.max_inflight : r->o.max_inflight;
	uint64_t start = from == UINT64_MAX ? ml_log_head(r->log) : from ? from - 1 : 0;
	if (r->node) {
		ml_group_state_open(r, g, start);
	} else {
		int64_t stored = load_floor(r, name);
		g->cursor = stored >= 0 ? (uint64_t)stored : start;
		g->stored_floor = stored >= 0 ? (uint64_t)stored : UINT64_MAX;
	}
	g->next = r->groups;
	r->groups = g;
	return g;
}

void ml_group_add(struct ml_group *g, struct ml_sub *s)
{
	g->members = ml_xrealloc(g->members, (g->nmembers + 1) * sizeof(*g->members));
	g->members[g->nmembers++] = s;
}

void ml_group_leave(struct ml_router *r, struct ml_sub *s)
{
	struct ml_group *g = s->group;
	for (size_t i = 0; i < g->ninf; i++)
		if (g->inf[i].member == s)
			g->inf[i].member = NULL; /* redeliver to someone else */
	for (size_t i = 0; i < g->nmembers; i++)
		if (g->members[i] == s) {
			g->members[i] = g->members[--g->nmembers];
			break;
		}
}

void ml_group_free(struct ml_router *r, struct ml_group *g)
{
	if (g->sh)
		ml_group_claims_stop(r, g);
	else
		ml_group_store(r, g);
	ml_group_state_free(g);
	ml_filter_free(g->f);
	free(g->members);
	free(g->inf);
	free(g->name);
	free(g);
}

/* ---- handing events to members ------------------------------------------------------ */

int ml_group_match(const struct ml_group *g, const struct ml_event *e)
{
	/* A group's own bookkeeping is never work: a group on "$all" would otherwise
	 * claim the events of its claims, for ever. */
	if (e->stream_len >= 7 && memcmp(e->stream, "$group-", 7) == 0)
		return 0;
	return ml_filter_match(g->f, e->stream, e->stream_len, e->type, e->type_len);
}

static int member_has_room(const struct ml_group *g, const struct ml_sub *m)
{
	return !m->full && m->inflight < g->o.max_inflight;
}

/* A member with room for one more event, round robin; NULL if none. */
static struct ml_sub *pick(struct ml_group *g)
{
	for (size_t k = 0; k < g->nmembers; k++) {
		size_t i = (g->rr + k) % g->nmembers;
		struct ml_sub *m = g->members[i];
		if (member_has_room(g, m)) {
			g->rr = i + 1;
			return m;
		}
	}
	return NULL;
}

uint64_t ml_group_room(const struct ml_group *g)
{
	uint64_t room = 0;
	for (size_t i = 0; i < g->nmembers; i++)
		if (member_has_room(g, g->members[i]))
			room += g->o.max_inflight - g->members[i]->inflight;
	return room;
}

size_t ml_group_inflight_at(const struct ml_group *g, uint64_t pos)
{
	size_t lo = 0, hi = g->ninf;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (g->inf[mid].pos < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A new in-flight entry at its place by position (a shared group walks several ranges). */
static struct ml_inflight *inflight_add(struct ml_group *g, uint64_t pos)
{
	if (g->ninf == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 64;
		g->inf = ml_xrealloc(g->inf, g->cap * sizeof(*g->inf));
	}
	size_t i = ml_group_inflight_at(g, pos);
	memmove(&g->inf[i + 1], &g->inf[i], (g->ninf - i) * sizeof(*g->inf));
	g->ninf++;
	g->inf[i] = (struct ml_inflight){.pos = pos};
	return &g->inf[i];
}

static void drop(struct ml_group *g, size_t i)
{
	memmove(&g->inf[i], &g->inf[i + 1], (g->ninf - i - 1) * sizeof(*g->inf));
	g->ninf--;
}

void ml_group_forget(struct ml_group *g, uint64_t from, uint64_t to)
{
	size_t i = ml_group_inflight_at(g, from + 1);
	while (i < g->ninf && g->inf[i].pos <= to) {
		if (g->inf[i].member)
			g->inf[i].member->inflight--;
		drop(g, i);
	}
}

static void give(struct ml_router *r, struct ml_group *g, struct ml_inflight *in, struct ml_sub *m,
		 const struct ml_event *e)
{
	in->member = m;
	in->deliveries++;
	in->deadline_ns = ml_clock_ns() + (uint64_t)g->o.ack_timeout_ms * 1000000;
	m->inflight++;
	if (in->deliveries > 1)
		r->st.redelivered++;
	r->st.delivered++;
	if (m->sink.deliver(m, e, in->deliveries, m->sink.arg) != 0)
		m->full = 1;
}

struct gctx {
	struct ml_router *r;
	struct ml_group *g;
	struct ml_inflight *in; /* redelivery: the entry */
	uint64_t *cursor;	/* new events: the cursor they move */
	int removed;		/* redelivery: the event was removed since (a deleted stream's) */
};

static int feed_new(const struct ml_event *e, void *arg)
{
	struct gctx *c = arg;
	struct ml_group *g = c->g;
	if (!ml_group_match(g, e) || ml_route_removed(c->r->log, e)) {
		*c->cursor = e->position;
		return 0;
	}
	struct ml_sub *m = pick(g);
	if (m == NULL)
		return 1; /* nobody has room: stop before this event */
	*c->cursor = e->position;
	give(c->r, g, inflight_add(g, e->position), m, e);
	return 0;
}

static int feed_again(const struct ml_event *e, void *arg)
{
	struct gctx *c = arg;
	if ((c->removed = ml_route_removed(c->r->log, e)) != 0)
		return 1;
	struct ml_sub *m = pick(c->g);
	if (m)
		give(c->r, c->g, c->in, m, e);
	return 1;
}

void ml_group_dispatch(struct ml_router *r, struct ml_group *g, uint64_t *cursor, uint64_t to)
{
	if (*cursor >= to)
		return;
	uint64_t n = to - *cursor < r->o.batch ? to - *cursor : r->o.batch;
	struct gctx c = {r, g, NULL, cursor, 0};
	ml_log_read_all(r->log, *cursor + 1, n, feed_new, &c);
}

int ml_group_pump(struct ml_router *r, struct ml_group *g, uint64_t head)
{
	struct gctx c = {r, g, NULL, NULL, 0};
	if (g->sh) /* first: what is no longer this node's is not delivered again */
		ml_group_state_catch_up(r, g);
	for (size_t i = 0; i < g->ninf;) {
		if (g->inf[i].member || g->inf[i].parked) {
			i++;
			continue;
		}
		c.in = &g->inf[i];
		if (ml_log_read_all(r->log, g->inf[i].pos, 1, feed_again, &c) < 0)
			return 0; /* a read failed: wait */
		if (c.removed) {  /* deleted since it was delivered: settled, as if acked */
			drop(g, i);
			continue;
		}
		if (!g->inf[i].member)
			return 0; /* nobody has room: wait */
		i++;
	}
	if (g->sh)
		return ml_group_claims_pump(r, g, head);
	ml_group_dispatch(r, g, &g->cursor, head);
	return g->cursor < head && ml_group_room(g) > 0;
}

int ml_router_ack(struct ml_router *r, const char *group, size_t len, uint64_t position)
{
	struct ml_group *g;
	for (g = r->groups; g; g = g->next)
		if (strlen(g->name) == len && memcmp(g->name, group, len) == 0)
			break;
	if (g == NULL)
		return ml_diag_set(ML_ERR_NOT_FOUND, "no group named \"%.*s\"",
				   (int)(len > 100 ? 100 : len), group);
	size_t i = ml_group_inflight_at(g, position);
	if (i < g->ninf && g->inf[i].pos == position) {
		if (g->inf[i].parked)
			return 0; /* too late: its copy goes to $parked-GROUP */
		if (g->inf[i].member)
			g->inf[i].member->inflight--;
		drop(g, i);
		return 0;
	}
	if (g->sh ? ml_group_claims_acked(g, position) : position <= g->cursor)
		return 0; /* already settled: acking twice is harmless */
	return ml_diag_set(ML_ERR_NOT_FOUND, "group %s has not delivered position %" PRIu64 " yet",
			   g->name, position);
}

/* ---- parking ---------------------------------------------------------------------- */

void ml_parked_make(struct ml_parked *p, const struct ml_group *g, const struct ml_event *e,
		    uint32_t deliveries)
{
	memset(p, 0, sizeof(*p));
	int slen = snprintf(p->stream, sizeof(p->stream), "$parked-%s", g->name);
	char reason[160];
	int rlen = snprintf(reason, sizeof(reason),
			    "not acknowledged after %u deliveries (ack timeout %u ms)", deliveries,
			    g->o.ack_timeout_ms);
	struct ml_buf *m = &p->meta;
	ml_msgpack_put_map(m, e->meta_len ? 6 : 5);
	ml_msgpack_put_cstr(m, "reason"), ml_msgpack_put_str(m, reason, (size_t)rlen);
	ml_msgpack_put_cstr(m, "stream"), ml_msgpack_put_str(m, e->stream, e->stream_len);
	ml_msgpack_put_cstr(m, "position"), ml_msgpack_put_uint(m, e->position);
	ml_msgpack_put_cstr(m, "id"), ml_msgpack_put_str(m, e->id, e->id_len);
	ml_msgpack_put_cstr(m, "deliveries"), ml_msgpack_put_uint(m, deliveries);
	if (e->meta_len)
		ml_msgpack_put_cstr(m, "meta"), ml_buf_add(m, e->meta, e->meta_len);
	ml_buf_add(&p->type, e->type, e->type_len);
	ml_buf_add(&p->data, e->data, e->data_len);
	p->in = (struct ml_event_in){p->stream, (size_t)slen, p->type.data, p->type.len, NULL,
				     0,		p->data.data, p->data.len,  m->data,	 m->len};
}

void ml_parked_free(struct ml_parked *p)
{
	ml_buf_free(&p->type);
	ml_buf_free(&p->data);
	ml_buf_free(&p->meta);
}

static void park_done(struct ml_append *req)
{
	free(req);
}

struct park {
	struct ml_router *r;
	struct ml_group *g;
	uint32_t deliveries;
};

/* Appends the event to $parked-GROUP at once (a log of this node's alone); a removed one
 * (deleted since) is settled without a copy, which would keep its data. */
static int park_one(const struct ml_event *e, void *arg)
{
	struct park *p = arg;
	if (ml_route_removed(p->r->log, e))
		return 1;
	struct ml_parked copy;
	ml_parked_make(&copy, p->g, e, p->deliveries);
	struct ml_append *req = ml_xcalloc(1, sizeof(*req));
	req->events = &copy.in;
	req->n_events = 1;
	req->system = 1;
	req->done = park_done;
	if (ml_log_submit(p->r->log, req) != 0)
		free(req); /* refused (logged nowhere else): the event is still settled */
	ml_parked_free(&copy);
	return 1;
}

void ml_group_tick(struct ml_router *r, struct ml_group *g, uint64_t now_ns)
{
	for (size_t i = 0; i < g->ninf;) {
		struct ml_inflight *in = &g->inf[i];
		if (!in->member || in->deadline_ns > now_ns) {
			i++;
			continue;
		}
		in->member->inflight--;
		in->member = NULL;
		if (in->deliveries < g->o.max_deliveries) {
			i++;
			continue;
		}
		r->st.parked++;
		if (g->sh) { /* its copy goes with the Settled that covers it */
			in->parked = 1;
			i++;
			continue;
		}
		struct park p = {r, g, in->deliveries};
		ml_log_read_all(r->log, in->pos, 1, park_one, &p);
		drop(g, i);
	}
	if (g->sh)
		ml_group_claims_tick(r, g);
}
