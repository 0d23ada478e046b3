/*
 * append.c - the front of every append, in the caller's thread: what a batch
 * is, before anything of the log is looked at; and the same for an entry of a
 * replicated journal, when it is applied.
 *
 * Everything that can refuse an append happens before a byte is queued. Here:
 * names, sizes, msgpack shape, ids given twice; then the ids of events that
 * have none are made, and the batch goes to the log's writer (writer.c,
 * log_writer.h), which checks it against the log (store.c: duplicate ids,
 * expected versions) when it orders it. An entry ordered elsewhere
 * (ml_log_apply) is decoded (entry.c) and goes through the same checks, here
 * and in the store: no rule has a second copy.
 */
#include <linux/futex.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <moonlog/codec.h>

#include "log/entry.h"
#include "log/index.h"
#include "log/log_internal.h"
#include "log/record.h"

#define ML_BATCH_MAX (1u << 30) /* bytes in one batch: offsets within a segment stay 32-bit */

int ml_append_refuse(struct ml_append *req, enum ml_err code, const char *fmt, ...)
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
	for (size_t i = ml_printable_ascii(s, len); i < len;) {
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
		return ml_append_refuse(req, ML_ERR_USAGE, "event %zu: the stream name %s", i + 1,
					why);
	if ((why = name_problem(e->type, e->type_len, req->system, 1)))
		return ml_append_refuse(req, ML_ERR_USAGE, "event %zu: the event type %s", i + 1,
					why);
	/* An id given empty is a mistake, not a request for a generated one (that is NULL). */
	if (e->id && (why = name_problem(e->id, e->id_len, 1, 0)))
		return ml_append_refuse(req, ML_ERR_USAGE,
					"event %zu: the id %s; give 1 to 255 bytes, or no id for a "
					"generated one",
					i + 1, why);
	if (e->data_len + e->meta_len > log->opt.max_event_size)
		return ml_append_refuse(
		    req, ML_ERR_REFUSED,
		    "event %zu is %zu bytes, over the maximum of %u (data and meta)", i + 1,
		    e->data_len + e->meta_len, log->opt.max_event_size);
	/* What is stored, every reader must be able to show: docs/codec.md. */
	if (e->data_len && ml_msgpack_check_value(e->data, e->data_len, "data") != 0)
		return ml_append_refuse(req, ML_ERR_USAGE, "event %zu: %s", i + 1, ml_diag_last());
	if (e->meta_len && ml_msgpack_check_value(e->meta, e->meta_len, "meta") != 0)
		return ml_append_refuse(req, ML_ERR_USAGE, "event %zu: %s", i + 1, ml_diag_last());
	if (e->meta_len && !ml_msgpack_is_map(e->meta, e->meta_len))
		return ml_append_refuse(req, ML_ERR_USAGE,
					"event %zu: meta must be a map (a JSON object)", i + 1);
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
static int check_ids_unique(struct ml_log *log, struct ml_append *req)
{
	struct keyed *k = ml_xmalloc(req->n_events * sizeof(*k));
	size_t n = 0;
	for (size_t i = 0; i < req->n_events; i++) {
		const struct ml_event_in *e = &req->events[i];
		if (e->id_len)
			k[n++] = (struct keyed){
			    ml_index_id_key(log, e->stream, e->stream_len, e->id, e->id_len), i};
	}
	qsort(k, n, sizeof(*k), cmp_keyed);
	for (size_t i = 1; i < n; i++)
		if (k[i].key == k[i - 1].key &&
		    same_stream_and_id(&req->events[k[i - 1].index], &req->events[k[i].index])) {
			size_t a = k[i - 1].index + 1, b = k[i].index + 1;
			free(k);
			return ml_append_refuse(
			    req, ML_ERR_USAGE,
			    "events %zu and %zu have the same id in the same stream", a, b);
		}
	free(k);
	return 0;
}

static int check_request(struct ml_log *log, struct ml_append *req)
{
	if (req->n_events == 0)
		return ml_append_refuse(req, ML_ERR_USAGE, "an append needs at least one event");
	if (req->n_events > ML_BATCH_MAX_EVENTS)
		return ml_append_refuse(
		    req, ML_ERR_REFUSED,
		    "this batch holds %zu events, over the maximum of %u; split it", req->n_events,
		    ML_BATCH_MAX_EVENTS);
	if (req->n_expect > ML_BATCH_MAX_EVENTS)
		return ml_append_refuse(req, ML_ERR_REFUSED,
					"this batch holds %zu expected versions, over the maximum "
					"of %u; split it",
					req->n_expect, ML_BATCH_MAX_EVENTS);
	uint64_t total = 0;
	for (size_t i = 0; i < req->n_events; i++) {
		if (check_event(log, req, i) != 0)
			return -1;
		total += req->events[i].data_len + req->events[i].meta_len;
	}
	if (total > ML_BATCH_MAX)
		return ml_append_refuse(
		    req, ML_ERR_REFUSED,
		    "this batch holds %llu bytes of data, over the maximum of %u; split it",
		    (unsigned long long)total, ML_BATCH_MAX);
	if (req->n_events > 1 && check_ids_unique(log, req) != 0)
		return -1;
	for (size_t i = 0; i < req->n_expect; i++) {
		const struct ml_expect_in *x = &req->expect[i];
		const char *why = name_problem(x->stream, x->stream_len, 1, 0);
		if (why)
			return ml_append_refuse(req, ML_ERR_USAGE,
						"expected version: the stream name %s", why);
		if (x->expected < ML_EXPECT_EXISTS)
			return ml_append_refuse(req, ML_ERR_USAGE,
						"expected version %lld is not valid",
						(long long)x->expected);
	}
	return 0;
}

static void clear_results(struct ml_append *req)
{
	req->err = ML_OK;
	req->errmsg[0] = '\0';
	req->duplicate = 0;
	req->actual_version = -1;
	req->first_position = req->last_position = 0;
}

int ml_log_submit(struct ml_log *log, struct ml_append *req)
{
	clear_results(req);
	if (log->opt.readonly)
		return ml_append_refuse(req, ML_ERR_REFUSED, "the log was opened read-only");
	if (check_request(log, req) != 0)
		return -1;

	char(*ids)[37] = NULL, stack_ids[8][37];
	size_t gen = 0;
	for (size_t i = 0; i < req->n_events; i++)
		gen += req->events[i].id_len == 0;
	if (gen) {
		ids = req->n_events <= 8 ? stack_ids : ml_xmalloc(req->n_events * 37);
		int64_t now = ml_time_ms(); /* one reading for the batch's ids */
		for (size_t i = 0; i < req->n_events; i++)
			if (req->events[i].id_len == 0)
				ml_uuid7_at(now, ids[i]);
	}

	int rc = log->writer->ops->submit(log->writer, req, ids);
	if (ids != stack_ids)
		free(ids);
	return rc;
}

void ml_log_kick(struct ml_log *log)
{
	log->writer->ops->kick(log->writer);
}

/* The ids an entry says were made: the same rules as a client's. */
static int check_made_ids(struct ml_append *req, char (*ids)[37])
{
	for (size_t i = 0; i < req->n_events; i++) {
		const char *why;
		if (req->events[i].id_len == 0 && (why = name_problem(ids[i], 36, 1, 0)))
			return ml_append_refuse(req, ML_ERR_USAGE, "event %zu: the made id %s",
						i + 1, why);
	}
	return 0;
}

/*
 * An entry ordered elsewhere goes through the same checks as a local append,
 * here and in the store, and the same writing; only its ids and time come
 * from the entry, and its sequence is stored with it.
 */
int ml_log_apply(struct ml_log *log, struct ml_append *req, const void *entry, size_t len,
		 uint64_t seq)
{
	clear_results(req);
	if (log->opt.readonly)
		return ml_append_refuse(req, ML_ERR_REFUSED, "the log was opened read-only");
	if (seq == 0)
		return ml_append_refuse(req, ML_ERR_USAGE, "journal sequences start at 1");
	struct ml_entry d;
	int rc = ml_entry_decode(entry, len, &d);
	if (rc != 0) {
		ml_entry_free(&d);
		return ml_append_refuse(req, ML_ERR_CORRUPT, "journal entry %llu: %s",
					(unsigned long long)seq, ml_diag_last());
	}
	req->events = d.events, req->n_events = d.n_events;
	req->expect = d.expect, req->n_expect = d.n_expect;
	req->system = d.system;
	if (check_request(log, req) == 0 && check_made_ids(req, d.ids) == 0) {
		/* Leaves req's inputs cleared, under the log's mutex: once queued, req may be
		 * done and gone before this returns. */
		rc = ml_store_submit(log, req, d.ids, &(struct ml_stamp){d.time, seq});
	} else {
		req->events = NULL, req->n_events = 0;
		req->expect = NULL, req->n_expect = 0;
		rc = -1;
	}
	ml_entry_free(&d);
	return rc;
}

void ml_log_apply_kick(struct ml_log *log)
{
	ml_store_kick(log);
}

uint64_t ml_log_applied_seq(struct ml_log *log)
{
	pthread_mutex_lock(&log->mu);
	uint64_t seq = log->applied_seq;
	pthread_mutex_unlock(&log->mu);
	return seq;
}

int ml_log_broken(struct ml_log *log, char *why, size_t n)
{
	pthread_mutex_lock(&log->mu);
	int broken = log->broken[0] != '\0';
	if (broken && n)
		snprintf(why, n, "%s", log->broken);
	pthread_mutex_unlock(&log->mu);
	return broken;
}

uint64_t ml_log_apply_resume(struct ml_log *log)
{
	pthread_mutex_lock(&log->mu);
	log->apply_stalled = 0;
	uint64_t seq = log->applied_seq;
	pthread_mutex_unlock(&log->mu);
	return seq;
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

/*
 * An import's append: the checks and ids of ml_log_submit, but straight to the
 * store with the time it was given (a stamp with no journal sequence), then a
 * wait as in ml_log_append. A replicated writer orders and stamps its own
 * batches, so only the local one takes it.
 */
int ml_log_append_at(struct ml_log *log, struct ml_append *req, int64_t time_ms)
{
	clear_results(req);
	req->done = NULL;
	if (log->opt.readonly)
		return ml_append_refuse(req, ML_ERR_REFUSED, "the log was opened read-only");
	if (log->writer != &log->local_writer)
		return ml_append_refuse(req, ML_ERR_REFUSED,
					"the log in %s is written through a replicated journal, "
					"which stamps its own times: import into a log alone",
					log->dir);
	if (check_request(log, req) != 0)
		return -1;
	char(*ids)[37] = ml_xmalloc(req->n_events * 37);
	for (size_t i = 0; i < req->n_events; i++)
		if (req->events[i].id_len == 0)
			ml_uuid7(ids[i]);
	int rc = ml_store_submit(log, req, ids, &(struct ml_stamp){time_ms, 0});
	free(ids);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	ml_store_kick(log);
	ml_append_wait(req);
	if (req->err != ML_OK)
		return ml_diag_set(req->err, "%s", req->errmsg);
	return 0;
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
