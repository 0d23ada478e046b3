/*
 * parked.c - the repair loop for a handler's poison events: list what it
 * parked on $parked-NAME, and once a fixed version is loaded, handle them
 * again.
 *
 * The log is append-only, so "removing" a parked event is recorded rather
 * than done: a successful replay appends, in the same atomic batch as the
 * events the handler emitted for it, a marker event on $parked-NAME,
 * `Replayed {position = P, original_position = O}` with meta {replayed = P},
 * where P is the parked copy's position. The stream then tells the whole
 * story (parked, then replayed), a crash cannot separate the emitted events
 * from their marker, and a second replay skips what a marker covers. (A parked
 * copy's meta always has `reason`; a marker's never has, so an event of the
 * user's own type Replayed is not mistaken for one.)
 *
 * Replays run in a scratch copy of the handler's current code, fed the parked
 * events in their original order with their original stream, id, position
 * and meta, so the live handler's position and outcome are not disturbed, and
 * what it emits carries causation_id = the original event's id. On a log
 * shared by several nodes, replays run only where the handler runs (it holds
 * its lease), and their batch carries the lease's guard like the handler's own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moonlog/diag.h>

#include "host/host_internal.h"
#include <moonlog/msgpack.h>

/* One event of $parked-NAME, copied out of the read. */
struct parked {
	uint64_t pos, orig_pos, replayed; /* replayed: a marker for that position */
	int marker;
	struct ml_buf type, data, meta, stream, id, reason, traceback, orig_meta;
};

struct plist {
	struct parked *v;
	size_t n;
};

static void copy_str(struct ml_buf *b, struct ml_msgpack_reader *r)
{
	const char *s;
	uint32_t n;
	if (ml_msgpack_get_str(r, &s, &n) == 0)
		ml_buf_add(b, s, n);
	else
		ml_msgpack_skip(r, NULL, NULL);
}

/* The parked copy's meta: {reason, traceback, stream, position, id, meta}, or a marker's. */
static void parse_meta(struct parked *p)
{
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, p->meta.data, p->meta.len);
	uint32_t n;
	int has_reason = 0;
	if (p->meta.len == 0 || ml_msgpack_get_map(&r, &n) != 0)
		return;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kl;
		const uint8_t *raw;
		size_t rl;
		if (ml_msgpack_get_str(&r, &k, &kl) != 0)
			return;
#define KEY(s) (kl == sizeof(s) - 1 && memcmp(k, s, kl) == 0)
		if (KEY("reason"))
			copy_str(&p->reason, &r), has_reason = 1;
		else if (KEY("traceback"))
			copy_str(&p->traceback, &r);
		else if (KEY("stream"))
			copy_str(&p->stream, &r);
		else if (KEY("id"))
			copy_str(&p->id, &r);
		else if (KEY("position") && ml_msgpack_get_uint(&r, &p->orig_pos) == 0)
			;
		else if (KEY("replayed") && ml_msgpack_get_uint(&r, &p->replayed) == 0)
			p->marker = 1;
		else if (ml_msgpack_skip(&r, &raw, &rl) == 0 && KEY("meta"))
			ml_buf_add(&p->orig_meta, raw, rl);
#undef KEY
	}
	if (has_reason)
		p->marker = 0;
}

static int collect(const struct ml_event *ev, void *arg)
{
	struct plist *l = arg;
	l->v = ml_xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	struct parked *p = &l->v[l->n++];
	memset(p, 0, sizeof(*p));
	p->pos = ev->position;
	ml_buf_add(&p->type, ev->type, ev->type_len);
	if (ev->data_len)
		ml_buf_add(&p->data, ev->data, ev->data_len);
	if (ev->meta_len)
		ml_buf_add(&p->meta, ev->meta, ev->meta_len);
	parse_meta(p);
	return 0;
}

static void plist_free(struct plist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct parked *p = &l->v[i];
		struct ml_buf *bufs[] = {&p->type, &p->data,   &p->meta,      &p->stream,
					 &p->id,   &p->reason, &p->traceback, &p->orig_meta};
		for (size_t k = 0; k < sizeof(bufs) / sizeof(bufs[0]); k++)
			ml_buf_free(bufs[k]);
	}
	free(l->v);
}

/* Reads $parked-NAME and marks the copies a marker covers (they are left out). */
static void read_parked(struct ml_host *h, const char *name, struct plist *l)
{
	char stream[300];
	int n = snprintf(stream, sizeof(stream), "$parked-%s", name);
	memset(l, 0, sizeof(*l));
	ml_log_read_stream(h->log, stream, (size_t)n, 0, 0, 0, collect, l);
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].marker)
			for (size_t j = 0; j < l->n; j++)
				if (l->v[j].pos == l->v[i].replayed)
					l->v[j].replayed = 1; /* resolved */
}

static int open_copy(const struct parked *p)
{
	return !p->marker && p->replayed == 0;
}

static struct ml_hosted *handler(struct ml_host *h, const char *name, size_t len)
{
	struct ml_hosted *e = ml_host_by_name(h, name, len);
	if (e == NULL || e->s == NULL || e->kind != ML_SCRIPT_HANDLER) {
		ml_diag_set(ML_ERR_NOT_FOUND,
			    "no handler named \"%.*s\" is loaded (parked events belong to "
			    "handlers with on_error = \"park\")",
			    (int)(len > 100 ? 100 : len), name);
		return NULL;
	}
	return e;
}

static void put_buf_str(struct ml_buf *b, const char *key, const struct ml_buf *v)
{
	ml_msgpack_put_cstr(b, key);
	if (v->len)
		ml_msgpack_put_str(b, v->data, v->len);
	else
		ml_msgpack_put_nil(b);
}

static void put_parked(struct ml_buf *b, const struct parked *p)
{
	ml_msgpack_put_map(b, 9);
	ml_msgpack_put_cstr(b, "position");
	ml_msgpack_put_uint(b, p->pos);
	ml_msgpack_put_cstr(b, "original_position");
	ml_msgpack_put_uint(b, p->orig_pos);
	put_buf_str(b, "stream", &p->stream);
	put_buf_str(b, "type", &p->type);
	put_buf_str(b, "id", &p->id);
	put_buf_str(b, "reason", &p->reason);
	put_buf_str(b, "traceback", &p->traceback);
	ml_msgpack_put_cstr(b, "data");
	if (p->data.len)
		ml_buf_add(b, p->data.data, p->data.len);
	else
		ml_msgpack_put_nil(b);
	ml_msgpack_put_cstr(b, "meta");
	if (p->orig_meta.len)
		ml_buf_add(b, p->orig_meta.data, p->orig_meta.len);
	else
		ml_msgpack_put_nil(b);
}

int ml_host_parked(struct ml_host *h, const char *name, size_t len, struct ml_buf *out)
{
	struct ml_hosted *e = handler(h, name, len);
	if (e == NULL)
		return -1;
	struct plist l;
	read_parked(h, e->name, &l);
	uint32_t n = 0;
	for (size_t i = 0; i < l.n; i++)
		n += open_copy(&l.v[i]);
	ml_msgpack_put_array(out, n);
	for (size_t i = 0; i < l.n; i++)
		if (open_copy(&l.v[i]))
			put_parked(out, &l.v[i]);
	plist_free(&l);
	return 0;
}

/* ---- replay ---- */

/* The batch being built: emitted events and markers, their bytes in one buffer. */
struct batch {
	struct ml_buf bytes;
	struct span {
		size_t stream, stream_len, type, type_len, data, data_len, meta, meta_len;
	} * v;
	size_t n;
	struct ml_buf failures; /* msgpack maps {position, reason} */
	uint32_t n_failed;
};

static size_t keep(struct batch *b, const void *p, size_t len)
{
	size_t at = b->bytes.len;
	if (len)
		ml_buf_add(&b->bytes, p, len);
	return at;
}

static void add_event(struct batch *b, const char *stream, size_t sl, const char *type, size_t tl,
		      const void *data, size_t dl, const void *meta, size_t ml)
{
	b->v = ml_xrealloc(b->v, (b->n + 1) * sizeof(*b->v));
	struct span *s = &b->v[b->n++];
	s->stream = keep(b, stream, sl), s->stream_len = sl;
	s->type = keep(b, type, tl), s->type_len = tl;
	s->data = keep(b, data, dl), s->data_len = dl;
	s->meta = keep(b, meta, ml), s->meta_len = ml;
}

static void fail(struct batch *b, const struct parked *p, const char *why)
{
	const char *tb = strstr(why, "\nstack traceback:");
	ml_msgpack_put_map(&b->failures, 2);
	ml_msgpack_put_cstr(&b->failures, "position");
	ml_msgpack_put_uint(&b->failures, p->pos);
	ml_msgpack_put_cstr(&b->failures, "reason");
	ml_msgpack_put_str(&b->failures, why, tb ? (size_t)(tb - why) : strlen(why));
	b->n_failed++;
}

/* The emitted events of one success and its marker; 0, or -1 (emitted to a $ stream). */
static int succeed(struct batch *b, const char *name, const struct parked *p,
		   const struct ml_script_outcome *out)
{
	for (size_t i = 0; i < out->n_emits; i++)
		if (out->emits[i].stream_len && out->emits[i].stream[0] == '$')
			return -1;
	for (size_t i = 0; i < out->n_emits; i++) {
		const struct ml_script_emit *m = &out->emits[i];
		add_event(b, m->stream, m->stream_len, m->type, m->type_len, m->data, m->data_len,
			  m->meta, m->meta_len);
	}
	char stream[300];
	int sn = snprintf(stream, sizeof(stream), "$parked-%s", name);
	struct ml_buf d = {0}, m = {0};
	ml_msgpack_put_map(&d, 2);
	ml_msgpack_put_cstr(&d, "position");
	ml_msgpack_put_uint(&d, p->pos);
	ml_msgpack_put_cstr(&d, "original_position");
	ml_msgpack_put_uint(&d, p->orig_pos);
	ml_msgpack_put_map(&m, 1);
	ml_msgpack_put_cstr(&m, "replayed");
	ml_msgpack_put_uint(&m, p->pos);
	add_event(b, stream, (size_t)sn, "Replayed", 8, d.data, d.len, m.data, m.len);
	ml_buf_free(&d);
	ml_buf_free(&m);
	return 0;
}

/* Handles one parked copy in the scratch script; a scratch that faulted is replaced. */
static void replay_one(struct batch *b, const char *name, struct ml_script **scratch,
		       const struct parked *p)
{
	struct ml_event ev = {
	    .position = p->orig_pos,
	    .stream = p->stream.data,
	    .stream_len = (uint8_t)p->stream.len,
	    .type = p->type.data,
	    .type_len = (uint8_t)p->type.len,
	    .id = p->id.data,
	    .id_len = (uint8_t)p->id.len,
	    .data = (const uint8_t *)p->data.data,
	    .data_len = (uint32_t)p->data.len,
	    .meta = (const uint8_t *)p->orig_meta.data,
	    .meta_len = (uint32_t)p->orig_meta.len,
	};
	if (ev.position <= ml_script_position(*scratch)) { /* out of order: a fresh copy */
		struct ml_script *fresh = ml_script_load_again(*scratch);
		if (fresh == NULL)
			return fail(b, p, ml_diag_last());
		ml_script_free(*scratch);
		*scratch = fresh;
	}
	if (ml_script_feed(*scratch, &ev) != 0) { /* on_error = "stop" now: it faulted */
		fail(b, p, ml_diag_last());
		struct ml_script *fresh = ml_script_load_again(*scratch);
		if (fresh) {
			ml_script_free(*scratch);
			*scratch = fresh;
		}
		return;
	}
	struct ml_script_outcome out;
	ml_script_outcome(*scratch, &out);
	if (out.skipped)
		return fail(b, p, out.error ? out.error : "error");
	if (succeed(b, name, p, &out) != 0)
		fail(b, p, "it emitted to a system stream (handlers emit to their own streams)");
}

/* Appends the batch, with the handler's lease guard on a shared log. */
static int append_batch(struct ml_host *h, struct ml_hosted *e, struct batch *b)
{
	if (b->n == 0)
		return 0;
	struct ml_event_in *evs = ml_xcalloc(b->n, sizeof(*evs));
	for (size_t i = 0; i < b->n; i++) {
		const struct span *s = &b->v[i];
		const char *base = b->bytes.data;
		evs[i] = (struct ml_event_in){
		    base + s->stream, s->stream_len, base + s->type, s->type_len, NULL, 0,
		    base + s->data,   s->data_len,   base + s->meta, s->meta_len};
	}
	struct ml_append req = {.events = evs, .n_events = b->n, .system = 1};
	ml_lease_guard(e, &req);
	int rc = ml_log_append(h->log, &req);
	free(evs);
	if (rc != 0 && ml_lease_fenced(h, e, &req))
		ml_diag_set(
		    ML_ERR_REFUSED,
		    "handler %s: another node took it over while its parked events were "
		    "replayed, and nothing was stored: replay them on the node that runs it "
		    "(scripts() says which)",
		    e->name);
	return rc;
}

int ml_host_replay_parked(struct ml_host *h, const char *name, size_t len, struct ml_buf *out)
{
	struct ml_hosted *e = handler(h, name, len);
	if (e == NULL)
		return -1;
	if (!ml_lease_runs(e)) /* the holder's own handling could emit for them too */
		return ml_diag_set(ML_ERR_REFUSED,
				   "handler %s runs on another node (%s) of the shared log: replay "
				   "its parked events there",
				   e->name, e->lease.holder[0] ? e->lease.holder : "none yet");
	struct ml_script *scratch = ml_script_load_again(e->pending ? e->pending : e->s);
	if (scratch == NULL)
		return -1;
	struct plist l;
	struct batch b = {0};
	uint32_t tried = 0, markers;
	read_parked(h, e->name, &l);
	for (size_t i = 0; i < l.n; i++)
		if (open_copy(&l.v[i])) {
			replay_one(&b, e->name, &scratch, &l.v[i]);
			tried++;
		}
	markers = tried - b.n_failed;
	int rc = append_batch(h, e, &b);
	if (rc == 0) {
		ml_msgpack_put_map(out, 3);
		ml_msgpack_put_cstr(out, "replayed");
		ml_msgpack_put_uint(out, tried);
		ml_msgpack_put_cstr(out, "succeeded");
		ml_msgpack_put_uint(out, markers);
		ml_msgpack_put_cstr(out, "failed");
		ml_msgpack_put_array(out, b.n_failed);
		if (b.failures.len)
			ml_buf_add(out, b.failures.data, b.failures.len);
		ml_host_line(h, "script %s: replayed %u parked events, %u succeeded", e->name,
			     tried, markers);
	}
	ml_script_free(scratch);
	plist_free(&l);
	ml_buf_free(&b.bytes);
	ml_buf_free(&b.failures);
	free(b.v);
	return rc;
}
