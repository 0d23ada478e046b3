/*
 * dryrun_emits.c - a handler's dry run: a candidate version runs over the last
 * events of the log, writing nothing, and what it emits for each event is
 * compared with what the live handler emitted for that same event.
 *
 * What the live handler emitted is in the log: each of its slices ended in one
 * batch, its emitted events (and parked copies) followed by a Checkpoint
 * event on $checkpoint-NAME whose data says the last event of the slice
 * (`position`) and how many events the batch holds before the checkpoint
 * (`events`, batch.c). So the checkpoints in the window, read at the start,
 * tell where every batch is, and the events of a batch come in the order of
 * the events that caused them, each emitted event with causation_id = the
 * cause's id (a parked copy with its position). An event that emitted
 * nothing has nothing in any batch. A checkpoint written before moonlog
 * recorded `events` does not say where its batch starts: the events of that
 * slice are counted as not compared.
 *
 * For one event, the candidate's emits and the live ones are paired by stream
 * and type in order: a pair is the same or changed (data or meta differ); a
 * candidate emit without a pair is added, a live one dropped. Faults (an
 * error, a limit, on_error skip or park) are counted with the event and line;
 * a candidate that stopped on one is loaded again for the next event.
 *
 * Events the log says are removed (deleted, truncated, past a stream's max
 * count or age: ml_log_removed) are not inputs, as the live handler never
 * gets them: what the live handler emitted for one before it was removed is
 * passed over, neither compared nor counted as dropped.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moonlog/diag.h>
#include <moonlog/msgpack.h>
#include <moonlog/route.h>

#include "host/dryrun.h"

/* A checkpoint of the live handler: its own position, the last event of its slice, and
 * how many events of its batch come before it (-1: not recorded). */
struct ck {
	uint64_t at, upto;
	int64_t events;
};

/* An event of the batch being compared, copied: offsets into `bytes`. */
struct live {
	size_t stream, stream_len, type, type_len, data, data_len, meta, meta_len;
	size_t cause, cause_len;
	uint64_t parked_of; /* a parked copy: the position of the event it parked */
	int used;
};

struct ml_dry_emits {
	struct ml_log *log;
	struct ml_script *s;
	char *file;
	char parked[300]; /* $parked-NAME */
	size_t parked_len;
	uint64_t from, to, next; /* the window, and the next event to go through */
	uint32_t examples;

	struct ck *cks; /* the checkpoints whose slices reach into the window, in order */
	size_t n_cks, k;
	int loaded; /* the batch of cks[k] is in `live` */
	struct ml_buf bytes;
	struct live *live;
	size_t n_live, live_cap, cursor;
	int unknown; /* cks[k] does not say where its batch starts */

	uint32_t budget, n;
	uint64_t deadline_ns;
	int removes; /* the log has deletions or retention: ask ml_log_removed of each event */
	int64_t now; /* as of when (this step) */

	uint64_t handled, added, dropped, changed, same, uncompared, live_parked, faults;
	struct ml_buf added_ex, dropped_ex, changed_ex, fault_ex;
	uint32_t n_added_ex, n_dropped_ex, n_changed_ex, n_fault_ex;
};

/* ---- faults ---- */

/* The line in `file` that an error names (file:LINE:), or 0. */
static uint64_t line_of(const char *error, const char *file)
{
	const char *base = strrchr(file, '/');
	base = base ? base + 1 : file;
	size_t bl = strlen(base);
	for (const char *p = strstr(error, base); p && bl; p = strstr(p + 1, base))
		if (p[bl] == ':' && isdigit((unsigned char)p[bl + 1]))
			return strtoull(p + bl + 1, NULL, 10);
	return 0;
}

void ml_dry_put_fault(struct ml_buf *b, const struct ml_event *ev, const char *error,
		      const char *file)
{
	const char *why = error ? error : "error";
	const char *tb = strstr(why, "\nstack traceback:");
	uint64_t line = line_of(why, file);
	ml_msgpack_put_map(b, (ev ? 3 : 0) + 1 + (line ? 1 : 0));
	if (ev) {
		ml_msgpack_put_cstr(b, "position");
		ml_msgpack_put_uint(b, ev->position);
		ml_msgpack_put_cstr(b, "stream");
		ml_msgpack_put_str(b, ev->stream, ev->stream_len);
		ml_msgpack_put_cstr(b, "type");
		ml_msgpack_put_str(b, ev->type, ev->type_len);
	}
	ml_msgpack_put_cstr(b, "error");
	ml_msgpack_put_str(b, why, tb ? (size_t)(tb - why) : strlen(why));
	if (line) {
		ml_msgpack_put_cstr(b, "line");
		ml_msgpack_put_uint(b, line);
	}
}

static void fault(struct ml_dry_emits *d, const struct ml_event *ev, const char *error)
{
	d->faults++;
	if (d->n_fault_ex >= d->examples)
		return;
	d->n_fault_ex++;
	ml_dry_put_fault(&d->fault_ex, ev, error, d->file);
}

/* ---- the live handler's checkpoints and batches ---- */

/* Positions the reader at the value of `key` in the msgpack map m: 0, or -1. */
static int field(const uint8_t *m, size_t len, const char *key, struct ml_msgpack_reader *r)
{
	uint32_t n;
	size_t kl = strlen(key);
	ml_msgpack_reader_init(r, m, len);
	if (len == 0 || ml_msgpack_get_map(r, &n) != 0)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t l;
		if (ml_msgpack_get_str(r, &k, &l) != 0)
			return -1;
		if (l == kl && memcmp(k, key, kl) == 0)
			return 0;
		if (ml_msgpack_skip(r, NULL, NULL) != 0)
			return -1;
	}
	return -1;
}

struct ck_list {
	struct ml_dry_emits *d;
	struct ck *v;
	size_t n, cap;
};

/* Read backwards: the checkpoints down to the first whose slice ends before the window. */
static int ck_one(const struct ml_event *ev, void *arg)
{
	struct ck_list *l = arg;
	struct ml_msgpack_reader r;
	uint64_t upto = 0, events = 0;
	if (field(ev->data, ev->data_len, "position", &r) != 0 ||
	    ml_msgpack_get_uint(&r, &upto) != 0)
		return 0;
	if (upto < l->d->from)
		return 1;
	int has = field(ev->data, ev->data_len, "events", &r) == 0 &&
		  ml_msgpack_get_uint(&r, &events) == 0 && events < ev->position;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = ml_xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = (struct ck){ev->position, upto, has ? (int64_t)events : -1};
	return 0;
}

static void read_checkpoints(struct ml_dry_emits *d, const char *name)
{
	char stream[300];
	int n = snprintf(stream, sizeof(stream), "$checkpoint-%s", name);
	struct ck_list l = {d, NULL, 0, 0};
	ml_log_read_stream(d->log, stream, (size_t)n, 0, 0, 1, ck_one, &l);
	for (size_t i = 0; i < l.n / 2; i++) { /* oldest first */
		struct ck t = l.v[i];
		l.v[i] = l.v[l.n - 1 - i];
		l.v[l.n - 1 - i] = t;
	}
	d->cks = l.v;
	d->n_cks = l.n;
}

static size_t keep(struct ml_buf *b, const void *p, size_t n)
{
	size_t at = b->len;
	if (n)
		ml_buf_add(b, p, n);
	return at;
}

static int batch_one(const struct ml_event *ev, void *arg)
{
	struct ml_dry_emits *d = arg;
	if (d->n_live == d->live_cap) {
		d->live_cap = d->live_cap ? d->live_cap * 2 : 64;
		d->live = ml_xrealloc(d->live, d->live_cap * sizeof(*d->live));
	}
	struct live *l = &d->live[d->n_live++];
	memset(l, 0, sizeof(*l));
	struct ml_buf *b = &d->bytes;
	l->stream = keep(b, ev->stream, ev->stream_len), l->stream_len = ev->stream_len;
	l->type = keep(b, ev->type, ev->type_len), l->type_len = ev->type_len;
	l->data = keep(b, ev->data, ev->data_len), l->data_len = ev->data_len;
	l->meta = keep(b, ev->meta, ev->meta_len), l->meta_len = ev->meta_len;
	struct ml_msgpack_reader r;
	const char *s;
	uint32_t sn;
	if (ev->stream_len == d->parked_len && memcmp(ev->stream, d->parked, d->parked_len) == 0) {
		if (field(ev->meta, ev->meta_len, "position", &r) != 0 ||
		    ml_msgpack_get_uint(&r, &l->parked_of) != 0)
			l->parked_of = 0;
	} else if (field(ev->meta, ev->meta_len, "causation_id", &r) == 0 &&
		   ml_msgpack_get_str(&r, &s, &sn) == 0) {
		l->cause = keep(b, s, sn), l->cause_len = sn;
	}
	return 0;
}

/* Reads the batch of checkpoint k into `live` (none past the last checkpoint). */
static void load_batch(struct ml_dry_emits *d)
{
	d->bytes.len = 0;
	d->n_live = d->cursor = 0;
	d->unknown = 0;
	d->loaded = 1;
	if (d->k >= d->n_cks)
		return;
	const struct ck *c = &d->cks[d->k];
	if (c->events < 0)
		d->unknown = 1;
	else if (c->events > 0)
		ml_log_read_all(d->log, c->at - (uint64_t)c->events, (uint64_t)c->events, batch_one,
				d);
}

/* ---- comparing one event's emits ---- */

#define AT(d, off) ((const uint8_t *)(d)->bytes.data + (off))

static void put_event_of(struct ml_buf *b, const struct ml_event *ev)
{
	ml_msgpack_put_cstr(b, "position");
	ml_msgpack_put_uint(b, ev->position);
	ml_msgpack_put_cstr(b, "stream");
	ml_msgpack_put_str(b, ev->stream, ev->stream_len);
	ml_msgpack_put_cstr(b, "type");
	ml_msgpack_put_str(b, ev->type, ev->type_len);
}

static void put_raw(struct ml_buf *b, const char *key, const void *p, size_t n)
{
	ml_msgpack_put_cstr(b, key);
	if (n)
		ml_buf_add(b, p, n);
	else
		ml_msgpack_put_nil(b);
}

/* An emitted event: {stream, type, data, meta} from the live batch or the candidate. */
static void put_live(struct ml_buf *b, const struct ml_dry_emits *d, const struct live *l)
{
	ml_msgpack_put_map(b, 4);
	ml_msgpack_put_cstr(b, "stream");
	ml_msgpack_put_str(b, (const char *)AT(d, l->stream), l->stream_len);
	ml_msgpack_put_cstr(b, "type");
	ml_msgpack_put_str(b, (const char *)AT(d, l->type), l->type_len);
	put_raw(b, "data", AT(d, l->data), l->data_len);
	put_raw(b, "meta", AT(d, l->meta), l->meta_len);
}

static void put_emit(struct ml_buf *b, const struct ml_script_emit *m)
{
	ml_msgpack_put_map(b, 4);
	ml_msgpack_put_cstr(b, "stream");
	ml_msgpack_put_str(b, m->stream, m->stream_len);
	ml_msgpack_put_cstr(b, "type");
	ml_msgpack_put_str(b, m->type, m->type_len);
	put_raw(b, "data", m->data, m->data_len);
	put_raw(b, "meta", m->meta, m->meta_len);
}

/* {position, stream, type} of the cause, then `emit` (or old and new) to follow. */
static int room(struct ml_dry_emits *d, uint32_t *n, struct ml_buf *b, const struct ml_event *ev,
		uint32_t fields)
{
	if (*n >= d->examples)
		return 0;
	(*n)++;
	ml_msgpack_put_map(b, 3 + fields);
	put_event_of(b, ev);
	return 1;
}

static int same_kind(const struct ml_dry_emits *d, const struct live *l,
		     const struct ml_script_emit *m)
{
	return l->stream_len == m->stream_len && l->type_len == m->type_len &&
	       memcmp(AT(d, l->stream), m->stream, m->stream_len) == 0 &&
	       memcmp(AT(d, l->type), m->type, m->type_len) == 0;
}

static void compare(struct ml_dry_emits *d, const struct ml_event *ev, size_t c0, size_t c1,
		    const struct ml_script_emit *emits, size_t n)
{
	for (size_t j = 0; j < n; j++) {
		const struct ml_script_emit *m = &emits[j];
		struct live *l = NULL;
		for (size_t i = c0; i < c1 && l == NULL; i++)
			if (!d->live[i].used && !d->live[i].parked_of &&
			    same_kind(d, &d->live[i], m))
				l = &d->live[i];
		if (l == NULL) {
			d->added++;
			if (room(d, &d->n_added_ex, &d->added_ex, ev, 1)) {
				ml_msgpack_put_cstr(&d->added_ex, "emit");
				put_emit(&d->added_ex, m);
			}
			continue;
		}
		l->used = 1;
		if (ml_msgpack_same(AT(d, l->data), l->data_len, m->data, m->data_len) &&
		    ml_msgpack_same(AT(d, l->meta), l->meta_len, m->meta, m->meta_len)) {
			d->same++;
			continue;
		}
		d->changed++;
		if (room(d, &d->n_changed_ex, &d->changed_ex, ev, 2)) {
			ml_msgpack_put_cstr(&d->changed_ex, "old");
			put_live(&d->changed_ex, d, l);
			ml_msgpack_put_cstr(&d->changed_ex, "new");
			put_emit(&d->changed_ex, m);
		}
	}
	for (size_t i = c0; i < c1; i++) {
		struct live *l = &d->live[i];
		if (l->parked_of) {
			d->live_parked++;
		} else if (!l->used) {
			d->dropped++;
			if (room(d, &d->n_dropped_ex, &d->dropped_ex, ev, 1)) {
				ml_msgpack_put_cstr(&d->dropped_ex, "emit");
				put_live(&d->dropped_ex, d, l);
			}
		}
	}
}

/* Is l what the live handler put out for ev (an emit it caused, or its parked copy)? */
static int caused_by(const struct ml_dry_emits *d, const struct live *l, const struct ml_event *ev)
{
	if (l->parked_of)
		return l->parked_of == ev->position;
	return l->cause_len == ev->id_len && memcmp(AT(d, l->cause), ev->id, ev->id_len) == 0;
}

/* ---- going through the window ---- */

static int input_one(const struct ml_event *ev, void *arg)
{
	struct ml_dry_emits *d = arg;
	if (ev->position > d->to) { /* past removed events a read goes on to the next kept */
		d->next = d->to + 1;
		return 1;
	}
	d->next = ev->position + 1;
	d->n++;
	if (d->removes &&
	    ml_log_removed(d->log, ev->stream, ev->stream_len, ev->version, ev->time, d->now))
		return d->n >= d->budget;
	/* The live output for ev: the run of batch events it caused, from the first one on
	 * (events before it in the batch were caused by events before the window). */
	size_t c0 = d->cursor;
	while (c0 < d->n_live && !caused_by(d, &d->live[c0], ev))
		c0++;
	size_t c1 = c0;
	while (c1 < d->n_live && caused_by(d, &d->live[c1], ev))
		c1++;
	if (c1 > c0)
		d->cursor = c1;
	int takes = ml_filter_match(ml_script_filter(d->s), ev->stream, ev->stream_len, ev->type,
				    ev->type_len);
	struct ml_script_outcome out = {0};
	if (ml_script_feed(d->s, ev) != 0) { /* on_error = "stop", or a limit */
		fault(d, ev, ml_diag_last());
		struct ml_script *fresh = ml_script_load_again(d->s);
		if (fresh) {
			ml_script_free(d->s);
			d->s = fresh;
		}
	} else if (takes) {
		ml_script_outcome(d->s, &out);
		if (out.skipped || out.parked)
			fault(d, ev, out.error);
	}
	if (takes || c1 > c0) {
		d->handled++;
		if (d->unknown)
			d->uncompared++;
		else
			compare(d, ev, c0, c1, out.emits, out.n_emits);
	}
	if (d->n >= d->budget)
		return 1;
	return (d->n & 63) == 0 && ml_clock_ns() > d->deadline_ns;
}

int ml_dry_emits_step(struct ml_dry_emits *d, uint32_t budget, uint64_t deadline_ns)
{
	d->budget = budget;
	d->n = 0;
	d->deadline_ns = deadline_ns;
	d->removes = ml_log_any_removed(d->log);
	d->now = ml_time_ms();
	while (d->next <= d->to && d->n < budget && ml_clock_ns() < deadline_ns) {
		size_t k = d->k;
		while (k < d->n_cks && d->cks[k].upto < d->next)
			k++;
		if (k != d->k || !d->loaded) {
			d->k = k;
			load_batch(d);
		}
		uint64_t end = k < d->n_cks && d->cks[k].upto < d->to ? d->cks[k].upto : d->to;
		uint64_t want = end - d->next + 1, left = budget - d->n;
		uint64_t next = d->next;
		if (ml_log_read_all(d->log, next, want < left ? want : left, input_one, d) <= 0 ||
		    d->next == next)
			d->next = d->to + 1; /* the log ends before the window does: nothing more */
	}
	return d->next <= d->to;
}

struct ml_dry_emits *ml_dry_emits_new(struct ml_log *log, const char *name, struct ml_script *s,
				      const char *file, uint64_t from, uint64_t to,
				      uint32_t examples)
{
	struct ml_dry_emits *d = ml_xcalloc(1, sizeof(*d));
	d->log = log;
	d->s = s;
	d->file = ml_xstrndup(file, strlen(file));
	d->parked_len = (size_t)snprintf(d->parked, sizeof(d->parked), "$parked-%s", name);
	d->from = d->next = from;
	d->to = to;
	d->examples = examples ? examples : ML_DRY_EXAMPLES;
	read_checkpoints(d, name);
	return d;
}

uint64_t ml_dry_emits_position(const struct ml_dry_emits *d)
{
	return d->next - 1;
}

static void put_list(struct ml_kv *kv, const char *key, const struct ml_buf *ex, uint32_t n)
{
	ml_kv_key(kv, key);
	ml_msgpack_put_array(&kv->b, n);
	if (ex->len)
		ml_buf_add(&kv->b, ex->data, ex->len);
}

void ml_dry_emits_put(const struct ml_dry_emits *d, struct ml_kv *kv)
{
	ml_kv_uint(kv, "from", d->from);
	ml_kv_uint(kv, "to", d->to);
	ml_kv_uint(kv, "handled", d->handled);
	ml_kv_key(kv, "emits");
	ml_msgpack_put_map(&kv->b, 4);
	ml_msgpack_put_cstr(&kv->b, "added");
	ml_msgpack_put_uint(&kv->b, d->added);
	ml_msgpack_put_cstr(&kv->b, "dropped");
	ml_msgpack_put_uint(&kv->b, d->dropped);
	ml_msgpack_put_cstr(&kv->b, "changed");
	ml_msgpack_put_uint(&kv->b, d->changed);
	ml_msgpack_put_cstr(&kv->b, "same");
	ml_msgpack_put_uint(&kv->b, d->same);
	put_list(kv, "added", &d->added_ex, d->n_added_ex);
	put_list(kv, "dropped", &d->dropped_ex, d->n_dropped_ex);
	put_list(kv, "changed", &d->changed_ex, d->n_changed_ex);
	ml_kv_uint(kv, "live_parked", d->live_parked);
	ml_kv_uint(kv, "uncompared", d->uncompared);
	ml_kv_uint(kv, "fault_count", d->faults);
	put_list(kv, "faults", &d->fault_ex, d->n_fault_ex);
}

void ml_dry_emits_free(struct ml_dry_emits *d)
{
	if (d == NULL)
		return;
	ml_script_free(d->s);
	free(d->file);
	free(d->cks);
	free(d->live);
	ml_buf_free(&d->bytes);
	ml_buf_free(&d->added_ex);
	ml_buf_free(&d->dropped_ex);
	ml_buf_free(&d->changed_ex);
	ml_buf_free(&d->fault_ex);
	free(d);
}
