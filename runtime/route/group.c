/*
 * group.c - groups: durable subscriptions shared by competing consumers.
 *
 * A group walks the log with one cursor and hands each matching event to one
 * member with room (round robin), remembering it as in flight until acked.
 * An event not acked within the timeout goes back for redelivery, to any
 * member; after max_deliveries it is appended to $parked-GROUP with the reason
 * and counts as done. The acked position (everything at or before it is
 * settled) is written to DATA/groups/NAME.pos a few times a second and at
 * shutdown, so a restart redelivers at most what was in flight: delivery is
 * at least once.
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
	int64_t stored = load_floor(r, name);
	if (stored >= 0)
		g->cursor = (uint64_t)stored;
	else if (from == UINT64_MAX)
		g->cursor = ml_log_head(r->log);
	else
		g->cursor = from ? from - 1 : 0;
	g->stored_floor = stored >= 0 ? (uint64_t)stored : UINT64_MAX;
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

void ml_group_free(struct ml_group *g)
{
	ml_filter_free(g->f);
	free(g->members);
	free(g->inf);
	free(g->name);
	free(g);
}

/* A member with room for one more event, round robin; NULL if none. */
static struct ml_sub *pick(struct ml_group *g)
{
	for (size_t k = 0; k < g->nmembers; k++) {
		size_t i = (g->rr + k) % g->nmembers;
		struct ml_sub *m = g->members[i];
		if (!m->full && m->inflight < g->o.max_inflight) {
			g->rr = i + 1;
			return m;
		}
	}
	return NULL;
}

static int has_room(const struct ml_group *g)
{
	for (size_t i = 0; i < g->nmembers; i++)
		if (!g->members[i]->full && g->members[i]->inflight < g->o.max_inflight)
			return 1;
	return 0;
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
	struct ml_inflight *in; /* redelivery: the entry; NULL for new events */
};

static int feed_new(const struct ml_event *e, void *arg)
{
	struct gctx *c = arg;
	struct ml_group *g = c->g;
	if (!ml_filter_match(g->f, e->stream, e->stream_len, e->type, e->type_len)) {
		g->cursor = e->position;
		return 0;
	}
	struct ml_sub *m = pick(g);
	if (m == NULL)
		return 1; /* nobody has room: stop before this event */
	if (g->ninf == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 64;
		g->inf = ml_xrealloc(g->inf, g->cap * sizeof(*g->inf));
	}
	struct ml_inflight *in = &g->inf[g->ninf++];
	*in = (struct ml_inflight){.pos = e->position};
	g->cursor = e->position;
	give(c->r, g, in, m, e);
	return 0;
}

static int feed_again(const struct ml_event *e, void *arg)
{
	struct gctx *c = arg;
	struct ml_sub *m = pick(c->g);
	if (m)
		give(c->r, c->g, c->in, m, e);
	return 1;
}

int ml_group_pump(struct ml_router *r, struct ml_group *g, uint64_t head)
{
	struct gctx c = {r, g, NULL};
	for (size_t i = 0; i < g->ninf; i++) {
		if (g->inf[i].member)
			continue;
		c.in = &g->inf[i];
		if (ml_log_read_all(r->log, g->inf[i].pos, 1, feed_again, &c) < 0 ||
		    !g->inf[i].member)
			return 0; /* nobody has room (or a read failed): wait */
	}
	if (g->cursor >= head)
		return 0;
	c.in = NULL;
	if (ml_log_read_all(r->log, g->cursor + 1, r->o.batch, feed_new, &c) < 0)
		return 0;
	return g->cursor < head && has_room(g);
}

static void drop(struct ml_group *g, size_t i)
{
	memmove(&g->inf[i], &g->inf[i + 1], (g->ninf - i - 1) * sizeof(*g->inf));
	g->ninf--;
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
	size_t lo = 0, hi = g->ninf;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (g->inf[mid].pos < position)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < g->ninf && g->inf[lo].pos == position) {
		if (g->inf[lo].member)
			g->inf[lo].member->inflight--;
		drop(g, lo);
		return 0;
	}
	if (position <= g->cursor)
		return 0; /* already settled: acking twice is harmless */
	return ml_diag_set(ML_ERR_NOT_FOUND, "group %s has not delivered position %" PRIu64 " yet",
			   g->name, position);
}

/* msgpack for the parked event's meta: a few fixed-format writers. */
static void mp_str(struct ml_buf *b, const char *s, size_t n)
{
	uint8_t h[5] = {0xdb, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
			(uint8_t)n};
	ml_buf_add(b, h, 5);
	ml_buf_add(b, s, n);
}

static void mp_uint(struct ml_buf *b, uint64_t v)
{
	uint8_t h[9] = {0xcf};
	for (int i = 0; i < 8; i++)
		h[1 + i] = (uint8_t)(v >> (56 - 8 * i));
	ml_buf_add(b, h, 9);
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

/* Appends the event to $parked-GROUP with why; the original meta rides along. */
static int park_one(const struct ml_event *e, void *arg)
{
	struct park *p = arg;
	struct ml_buf meta = {0};
	char stream[128], reason[160];
	int slen = snprintf(stream, sizeof(stream), "$parked-%s", p->g->name);
	int rlen = snprintf(reason, sizeof(reason),
			    "not acknowledged after %u deliveries (ack timeout %u ms)",
			    p->deliveries, p->g->o.ack_timeout_ms);
	ml_buf_add(&meta, e->meta_len ? "\x86" : "\x85", 1);
	mp_str(&meta, "reason", 6), mp_str(&meta, reason, (size_t)rlen);
	mp_str(&meta, "stream", 6), mp_str(&meta, e->stream, e->stream_len);
	mp_str(&meta, "position", 8), mp_uint(&meta, e->position);
	mp_str(&meta, "id", 2), mp_str(&meta, e->id, e->id_len);
	mp_str(&meta, "deliveries", 10), mp_uint(&meta, p->deliveries);
	if (e->meta_len)
		mp_str(&meta, "meta", 4), ml_buf_add(&meta, e->meta, e->meta_len);
	struct ml_event_in in = {stream, (size_t)slen, e->type,	    e->type_len, NULL,
				 0,	 e->data,      e->data_len, meta.data,	 meta.len};
	struct ml_append *req = ml_xcalloc(1, sizeof(*req));
	req->events = &in;
	req->n_events = 1;
	req->system = 1;
	req->done = park_done;
	if (ml_log_submit(p->r->log, req) != 0)
		free(req); /* refused (logged nowhere else): the event is still settled */
	ml_buf_free(&meta);
	p->r->st.parked++;
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
		struct park p = {r, g, in->deliveries};
		ml_log_read_all(r->log, in->pos, 1, park_one, &p);
		drop(g, i);
	}
}
