/*
 * append.c - checking and reserving appends, in the caller's thread.
 *
 * Everything that can refuse an append happens here, before a byte is queued:
 * names, sizes, msgpack shape, duplicate ids, expected versions. A batch that
 * passes gets its positions and versions at once (so the next append already
 * sees them) and its encoded records join the pending buffer, which the
 * flusher (flush.c) writes. If that write fails, the flusher rolls the
 * reservations back.
 */
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <moonlog/codec.h>

#include "log/log_internal.h"
#include "log/record.h"

#define ML_BATCH_MAX (1u << 30) /* bytes in one batch: offsets within a segment stay 32-bit */

static int refuse(struct ml_append *req, enum ml_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(struct ml_append *req, enum ml_err code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(req->errmsg, sizeof(req->errmsg), fmt, ap);
	va_end(ap);
	req->err = code;
	ml_req_of(req)->state = ML_APPEND_DONE;
	return ml_diag_set(code, "%s", req->errmsg);
}

/* Length of the UTF-8 sequence at s (at most n bytes), or 0 if it is not valid UTF-8. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
	if (len == 0 || len > n)
		return 0;
	uint32_t cp = len == 1 ? c : c & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) /* control characters */
		return 0;
	return len;
}

/* Stream names, types and ids: 1-255 bytes of UTF-8 without control characters. */
static const char *name_problem(const char *s, size_t len, int system, int reserve_dollar)
{
	if (len == 0)
		return "is empty";
	if (len > 255)
		return "is longer than 255 bytes";
	if (reserve_dollar && s[0] == '$' && !system)
		return "starts with '$', which is reserved for moonlog's own streams";
	for (size_t i = 0; i < len;) {
		size_t n = utf8_len((const unsigned char *)s + i, len - i);
		if (n == 0)
			return "is not UTF-8 text without control characters";
		i += n;
	}
	return NULL;
}

static int check_event(struct ml_log *log, struct ml_append *req, size_t i)
{
	const struct ml_event_in *e = &req->events[i];
	const char *why;
	if ((why = name_problem(e->stream, e->stream_len, req->system, 1)))
		return refuse(req, ML_ERR_USAGE, "event %zu: the stream name %s", i + 1, why);
	if ((why = name_problem(e->type, e->type_len, req->system, 1)))
		return refuse(req, ML_ERR_USAGE, "event %zu: the event type %s", i + 1, why);
	/* An id given empty is a mistake, not a request for a generated one (that is NULL). */
	if (e->id && (why = name_problem(e->id, e->id_len, 1, 0)))
		return refuse(req, ML_ERR_USAGE,
			      "event %zu: the id %s; give 1 to 255 bytes, or no id for a "
			      "generated one",
			      i + 1, why);
	if (e->data_len + e->meta_len > log->opt.max_event_size)
		return refuse(req, ML_ERR_REFUSED,
			      "event %zu is %zu bytes, over the maximum of %u (data and meta)",
			      i + 1, e->data_len + e->meta_len, log->opt.max_event_size);
	/* What is stored, every reader must be able to show: docs/codec.md. */
	if (e->data_len && ml_msgpack_check_value(e->data, e->data_len, "data") != 0)
		return refuse(req, ML_ERR_USAGE, "event %zu: %s", i + 1, ml_diag_last());
	if (e->meta_len && ml_msgpack_check_value(e->meta, e->meta_len, "meta") != 0)
		return refuse(req, ML_ERR_USAGE, "event %zu: %s", i + 1, ml_diag_last());
	if (e->meta_len && !ml_msgpack_is_map(e->meta, e->meta_len))
		return refuse(req, ML_ERR_USAGE, "event %zu: meta must be a map (a JSON object)",
			      i + 1);
	return 0;
}

struct keyed {
	uint64_t key;
	size_t index;
};

static int cmp_keyed(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	return x->key < y->key	 ? -1
	       : x->key > y->key ? 1
				 : (x->index > y->index) - (x->index < y->index);
}

static int same_stream_and_id(const struct ml_event_in *a, const struct ml_event_in *b)
{
	return a->id_len == b->id_len && !memcmp(a->id, b->id, a->id_len) &&
	       a->stream_len == b->stream_len && !memcmp(a->stream, b->stream, a->stream_len);
}

/* One id twice in one stream within a batch is a mistake: sort the keys to find it. */
static int check_ids_unique(struct ml_append *req)
{
	struct keyed *k = ml_xmalloc(req->n_events * sizeof(*k));
	size_t n = 0;
	for (size_t i = 0; i < req->n_events; i++) {
		const struct ml_event_in *e = &req->events[i];
		if (e->id_len)
			k[n++] = (struct keyed){
			    ml_idem_key(e->stream, e->stream_len, e->id, e->id_len), i};
	}
	qsort(k, n, sizeof(*k), cmp_keyed);
	for (size_t i = 1; i < n; i++)
		if (k[i].key == k[i - 1].key &&
		    same_stream_and_id(&req->events[k[i - 1].index], &req->events[k[i].index])) {
			size_t a = k[i - 1].index + 1, b = k[i].index + 1;
			free(k);
			return refuse(req, ML_ERR_USAGE,
				      "events %zu and %zu have the same id in the same stream", a,
				      b);
		}
	free(k);
	return 0;
}

static int check_request(struct ml_log *log, struct ml_append *req)
{
	if (req->n_events == 0)
		return refuse(req, ML_ERR_USAGE, "an append needs at least one event");
	uint64_t total = 0;
	for (size_t i = 0; i < req->n_events; i++) {
		if (check_event(log, req, i) != 0)
			return -1;
		total += req->events[i].data_len + req->events[i].meta_len;
	}
	if (total > ML_BATCH_MAX)
		return refuse(
		    req, ML_ERR_REFUSED,
		    "this batch holds %llu bytes of data, over the maximum of %u; split it",
		    (unsigned long long)total, ML_BATCH_MAX);
	if (req->n_events > 1 && check_ids_unique(req) != 0)
		return -1;
	for (size_t i = 0; i < req->n_expect; i++) {
		const struct ml_expect_in *x = &req->expect[i];
		const char *why = name_problem(x->stream, x->stream_len, 1, 0);
		if (why)
			return refuse(req, ML_ERR_USAGE, "expected version: the stream name %s",
				      why);
		if (x->expected < ML_EXPECT_EXISTS)
			return refuse(req, ML_ERR_USAGE, "expected version %lld is not valid",
				      (long long)x->expected);
	}
	return 0;
}

static struct ml_stream *find_stream(struct ml_log *log, const char *name, size_t len)
{
	return ml_streams_find(&log->streams, name, len, ml_stream_hash(name, len));
}

static int check_expected(struct ml_log *log, struct ml_append *req)
{
	for (size_t i = 0; i < req->n_expect; i++) {
		const struct ml_expect_in *x = &req->expect[i];
		struct ml_stream *s = find_stream(log, x->stream, x->stream_len);
		int64_t v = s ? s->count : 0;
		int ok = x->expected == ML_EXPECT_ANY ||
			 (x->expected == ML_EXPECT_EXISTS && v > 0) || x->expected == v;
		if (ok)
			continue;
		req->actual_version = v;
		const char *want = x->expected == ML_EXPECT_EXISTS ? "an existing stream"
				   : x->expected == 0		   ? "no stream"
								   : NULL;
		if (want)
			return refuse(
			    req, ML_ERR_CONFLICT,
			    "version conflict on %.*s: expected %s, but its version is %lld",
			    (int)x->stream_len, x->stream, want, (long long)v);
		return refuse(req, ML_ERR_CONFLICT,
			      "version conflict on %.*s: expected version %lld, but it is %lld",
			      (int)x->stream_len, x->stream, (long long)x->expected, (long long)v);
	}
	return 0;
}

/*
 * Is the event stored at `position` the same as e: its stream and, when e has
 * one, its id (else its type)? 1 yes, 0 no, -1 the record could not be read.
 */
static int same_event(struct ml_log *log, uint64_t position, const struct ml_event_in *e,
		      struct ml_buf *scratch, uint64_t *version)
{
	struct ml_rec r;
	scratch->len = 0;
	if (position == 0 || position >= log->next_position)
		return 0;
	if (ml_log_record_at(log, position, scratch) != 0 ||
	    ml_rec_parse((uint8_t *)scratch->data, scratch->len, 0, &r) != ML_REC_OK)
		return -1;
	*version = r.ev.version;
	if (r.ev.stream_len != e->stream_len || memcmp(r.ev.stream, e->stream, e->stream_len))
		return 0;
	if (e->id_len == 0)
		return r.ev.type_len == e->type_len && !memcmp(r.ev.type, e->type, e->type_len);
	return r.ev.id_len == e->id_len && !memcmp(r.ev.id, e->id, e->id_len);
}

struct dups {
	size_t with_id, found; /* events with a client id; of them, already stored */
	uint64_t base;	       /* position of the stored batch's first event, if consistent */
	int consistent;	       /* every found event sits at base + its index */
	uint64_t last;	       /* the highest stored position */
};

static void note_stored(struct ml_append *req, size_t i, uint64_t p, uint64_t v, struct dups *d)
{
	if (req->positions)
		req->positions[i] = p;
	if (req->versions)
		req->versions[i] = v;
	if (d->found == 0 || p < req->first_position)
		req->first_position = p;
	if (p > d->last)
		d->last = p;
	if (d->found == 0)
		d->base = p - i, d->consistent = p > i;
	else if (p != d->base + i)
		d->consistent = 0;
	d->found++;
}

/*
 * Finds the events of the batch whose id is already stored in their stream,
 * filling positions and versions with the stored ones. -1 if a record could not
 * be read (the append is refused rather than risk storing an event twice).
 */
static int find_duplicates(struct ml_log *log, struct ml_append *req, struct dups *d)
{
	struct ml_buf scratch = {0};
	int rc = 0;
	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < req->n_events && rc == 0; i++) {
		const struct ml_event_in *e = &req->events[i];
		if (e->id_len == 0)
			continue;
		d->with_id++;
		uint64_t p = ml_idem_find(&log->idem,
					  ml_idem_key(e->stream, e->stream_len, e->id, e->id_len));
		uint64_t v = 0;
		int same = p ? same_event(log, p, e, &scratch, &v) : 0;
		if (same < 0)
			rc = -1;
		else if (same)
			note_stored(req, i, p, v, d);
	}
	ml_buf_free(&scratch);
	return rc;
}

/*
 * A retried batch that mixes client ids and generated ones: its events without
 * an id are the stored batch's events at the same places. 0 if they are (and
 * their positions are filled in), -1 if this batch is not the stored one.
 */
static int match_generated(struct ml_log *log, struct ml_append *req, struct dups *d)
{
	struct ml_buf scratch = {0};
	int rc = d->consistent ? 0 : -1;
	for (size_t i = 0; i < req->n_events && rc == 0; i++) {
		const struct ml_event_in *e = &req->events[i];
		uint64_t v;
		if (e->id_len)
			continue;
		if (same_event(log, d->base + i, e, &scratch, &v) != 1)
			rc = -1;
		else
			note_stored(req, i, d->base + i, v, d);
	}
	ml_buf_free(&scratch);
	return rc;
}

/* Chooses the segment for a batch of `bytes`, starting a new one past the size limit. */
static struct ml_seg *seg_for(struct ml_log *log, uint64_t bytes)
{
	struct ml_seg *seg = log->nsegs ? log->segs[log->nsegs - 1] : NULL;
	if (seg && (seg->end == ML_SEG_HEADER || seg->end + bytes <= log->opt.segment_size))
		return seg;
	if (log->nsegs == log->segs_cap) {
		log->segs_cap = log->segs_cap ? log->segs_cap * 2 : 8;
		log->segs = ml_xrealloc(log->segs, log->segs_cap * sizeof(*log->segs));
	}
	seg = ml_xcalloc(1, sizeof(*seg));
	seg->first = log->next_position;
	seg->end = seg->durable_end = ML_SEG_HEADER;
	seg->fd = -1;
	log->segs[log->nsegs++] = seg;
	return seg;
}

/* Gives the batch its positions and versions and encodes it into the pending buffer. */
static void reserve(struct ml_log *log, struct ml_append *req, char (*ids)[37])
{
	uint64_t bytes = 0;
	for (size_t i = 0; i < req->n_events; i++)
		bytes += ml_rec_size(&req->events[i],
				     req->events[i].id_len ? req->events[i].id_len : 36);
	struct ml_seg *seg = seg_for(log, bytes);
	struct ml_buf *buf = &log->pending.bytes;
	ml_buf_reserve(buf, bytes);
	struct ml_req *q = ml_req_of(req);
	q->seg = seg;
	q->file_offset = seg->end;
	q->buf_offset = buf->len;
	q->nbytes = bytes;
	req->first_position = log->next_position;

	int64_t now = ml_time_ms();
	for (size_t i = 0; i < req->n_events; i++) {
		const struct ml_event_in *e = &req->events[i];
		const char *id = e->id_len ? e->id : ids[i];
		size_t id_len = e->id_len ? e->id_len : 36;
		uint64_t h = ml_stream_hash(e->stream, e->stream_len);
		struct ml_stream *s = ml_streams_find(&log->streams, e->stream, e->stream_len, h);
		if (s == NULL)
			s = ml_streams_add(&log->streams, e->stream, e->stream_len, h);
		uint64_t pos = log->next_position++, ver = (uint64_t)s->count + 1;
		uint8_t flags = (i == 0 ? ML_REC_FIRST : 0) |
				(i + 1 == req->n_events ? ML_REC_LAST : 0) |
				(e->id_len ? 0 : ML_REC_GEN_ID);
		ml_rec_encode((uint8_t *)buf->data + buf->len, e, id, id_len, flags,
			      (uint32_t)(req->n_events - 1 - i), pos, ver, now);
		ml_stream_push(&log->streams, s, pos);
		ml_log_offsets_reserve(log, pos);
		log->offsets[pos - 1] = (uint32_t)seg->end;
		if (e->id_len) /* a generated id is unknown to the client until acknowledged */
			ml_idem_add(&log->idem, ml_idem_key(e->stream, e->stream_len, id, id_len),
				    pos);
		size_t n = ml_rec_size(e, id_len);
		buf->len += n;
		seg->end += n;
		if (req->positions)
			req->positions[i] = pos;
		if (req->versions)
			req->versions[i] = ver;
	}
	req->last_position = log->next_position - 1;
	log->stats.appends++;
	log->stats.events += req->n_events;
}

static void enqueue(struct ml_log *log, struct ml_append *req)
{
	struct ml_flushbuf *fb = &log->pending;
	ml_req_of(req)->state = ML_APPEND_QUEUED;
	ml_req_of(req)->next = NULL;
	if (fb->tail)
		ml_req_of(fb->tail)->next = req;
	else
		fb->head = req;
	fb->tail = req;
	fb->requests++;
}

/* Under the lock: duplicates, then expected versions, then the reservation. */
static int submit_locked(struct ml_log *log, struct ml_append *req, char (*ids)[37])
{
	if (log->broken[0])
		return refuse(req, ML_ERR_IO, "%s", log->broken);
	struct dups d;
	if (find_duplicates(log, req, &d) != 0)
		return refuse(req, ML_ERR_IO, "cannot check this batch's ids against the log: %s",
			      ml_diag_last());
	size_t dups = d.found;
	if (d.with_id > 0 && dups == d.with_id && dups < req->n_events &&
	    match_generated(log, req, &d) != 0)
		return refuse(req, ML_ERR_REFUSED,
			      "the ids of this batch were appended before, in a batch with other "
			      "events; retry the batch exactly as it was first sent");
	dups = d.found;
	if (d.with_id > 0 && dups == req->n_events) {
		req->duplicate = 1;
		req->last_position = d.last;
		if (d.last <= log->head) {
			ml_req_of(req)->state = ML_APPEND_DONE;
			return 1;
		}
		ml_req_of(req)->nbytes = 0; /* completes when the original does */
		enqueue(log, req);
		return 0;
	}
	if (dups > 0)
		return refuse(
		    req, ML_ERR_REFUSED,
		    "%zu of the %zu events of this batch were appended before (same id "
		    "in the same stream) and the others were not; retry the batch exactly "
		    "as it was first sent",
		    dups, req->n_events);
	if (check_expected(log, req) != 0)
		return -1;
	reserve(log, req, ids);
	enqueue(log, req);
	return 0;
}

int ml_log_submit(struct ml_log *log, struct ml_append *req)
{
	req->err = ML_OK;
	req->errmsg[0] = '\0';
	req->duplicate = 0;
	req->actual_version = -1;
	req->first_position = req->last_position = 0;
	if (log->opt.readonly)
		return refuse(req, ML_ERR_REFUSED, "the log was opened read-only");
	if (check_request(log, req) != 0)
		return -1;

	char(*ids)[37] = NULL, stack_ids[8][37];
	size_t gen = 0;
	for (size_t i = 0; i < req->n_events; i++)
		gen += req->events[i].id_len == 0;
	if (gen)
		ids = req->n_events <= 8 ? stack_ids : ml_xmalloc(req->n_events * 37);
	for (size_t i = 0; gen && i < req->n_events; i++)
		if (req->events[i].id_len == 0)
			ml_uuid7(ids[i]);

	pthread_mutex_lock(&log->mu);
	int rc = submit_locked(log, req, ids); /* 0: queued */
	int wake = rc == 0 && !req->kick_later && log->flusher_waiting;
	pthread_mutex_unlock(&log->mu);
	/* After the unlock: a flusher woken under the mutex would only block on it again. */
	if (wake)
		pthread_cond_signal(&log->flush_cv);
	if (ids != stack_ids)
		free(ids);
	return rc;
}

/*
 * A blocking appender sleeps on a futex in its own request. The flusher reads
 * everything it needs from the request before it marks it done, since the
 * waiter may return (and its request go out of scope) at once.
 */
void ml_append_wait(struct ml_append *req)
{
	uint32_t s, *state = &ml_req_of(req)->state;
	while ((s = __atomic_load_n(state, __ATOMIC_ACQUIRE)) != ML_APPEND_DONE)
		syscall(SYS_futex, state, FUTEX_WAIT_PRIVATE, s, NULL, NULL, 0);
}

void ml_append_wake(struct ml_append *req)
{
	uint32_t *state = &ml_req_of(req)->state;
	__atomic_store_n(state, ML_APPEND_DONE, __ATOMIC_RELEASE);
	syscall(SYS_futex, state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int ml_log_append(struct ml_log *log, struct ml_append *req)
{
	req->done = NULL;
	int rc = ml_log_submit(log, req);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	ml_append_wait(req);
	if (req->err != ML_OK)
		return ml_diag_set(req->err, "%s", req->errmsg);
	return 0;
}
