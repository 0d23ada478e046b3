/*
 * log.c - the log's small queries: the segment of a position, the head, a
 * stream's version, the listing of streams, stats.
 */
#include <stdlib.h>
#include <string.h>

#include "log/index.h"
#include "log/log_internal.h"

size_t ml_log_seg_index(struct ml_log *log, uint64_t position)
{
	size_t lo = 0, hi = log->nsegs; /* a position before the first segment: the first */
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (log->segs[mid]->first <= position)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

struct ml_seg *ml_log_seg_of(struct ml_log *log, uint64_t position)
{
	return log->segs[ml_log_seg_index(log, position)];
}

uint64_t ml_log_head(struct ml_log *log)
{
	pthread_mutex_lock(&log->mu);
	uint64_t h = log->head;
	pthread_mutex_unlock(&log->mu);
	return h;
}

uint64_t ml_log_first(struct ml_log *log)
{
	pthread_mutex_lock(&log->mu);
	uint64_t first = log->first;
	pthread_mutex_unlock(&log->mu);
	return first;
}

uint64_t ml_log_stream_version(struct ml_log *log, const char *stream, size_t len)
{
	pthread_mutex_lock(&log->mu);
	uint64_t v = ml_index_version(log, ml_index_hash(log, stream, len), stream, len);
	pthread_mutex_unlock(&log->mu);
	return v;
}

/* One stream as a listing finds it: its name, version, and how new the part that says so is. */
struct listed {
	uint64_t hash, version;
	const char *name;
	uint8_t len;
	uint32_t age; /* 0 for the newest chunk, then older chunks, then runs newest first */
};

static int cmp_listed(const void *a, const void *b)
{
	const struct listed *x = a, *y = b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
	if (c || x->len != y->len)
		return c ? c : x->len < y->len ? -1 : 1;
	return (x->age > y->age) - (x->age < y->age);
}

static void list_add(struct listed **l, size_t *n, size_t *cap, struct listed e, const char *prefix,
		     size_t plen)
{
	if (e.len < plen || (plen && memcmp(e.name, prefix, plen) != 0))
		return;
	if (*n == *cap)
		*l = ml_xrealloc(*l, (*cap = *cap ? *cap * 2 : 256) * sizeof(**l));
	(*l)[(*n)++] = e;
}

int ml_log_streams(struct ml_log *log, const char *prefix, ml_stream_fn fn, void *arg)
{
	size_t plen = prefix ? strlen(prefix) : 0, n = 0, cap = 0;
	struct listed *l = NULL;
	struct out {
		char name[256];
		uint8_t len;
		uint64_t version;
	} *list = NULL;
	size_t nout = 0;

	/* Every part's entries, the newest first for each stream; copied out under the lock. */
	pthread_mutex_lock(&log->mu);
	uint32_t age = 0;
	for (const struct ml_chunk *c = log->chunk_newest; c; c = c->older, age++)
		for (uint32_t i = 0; i < c->nstreams; i++) {
			const struct ml_cstream *s = &c->streams[i];
			list_add(&l, &n, &cap,
				 (struct listed){s->hash, ml_chunk_version_at(c, s, log->head),
						 c->names + s->name, s->name_len, age},
				 prefix, plen);
		}
	for (size_t r = log->nruns; r-- > 0; age++) {
		const struct ml_table *t = &log->runs[r]->t;
		for (uint64_t i = 0; i < t->nstreams; i++) {
			const uint8_t *e = t->streams + ML_SENTRY * i;
			size_t len;
			const char *name = ml_se_name(t, e, &len);
			list_add(&l, &n, &cap,
				 (struct listed){ml_se_hash(e), ml_se_version(e), name,
						 (uint8_t)len, age},
				 prefix, plen);
		}
	}
	if (n)
		qsort(l, n, sizeof(*l), cmp_listed);
	list = ml_xmalloc((n ? n : 1) * sizeof(*list));
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && l[i].hash == l[i - 1].hash && l[i].len == l[i - 1].len &&
		    memcmp(l[i].name, l[i - 1].name, l[i].len) == 0)
			continue; /* an older part's word on a stream already listed */
		if (l[i].version == 0)
			continue;
		memcpy(list[nout].name, l[i].name, l[i].len);
		list[nout].len = l[i].len;
		list[nout].version = l[i].version;
		nout++;
	}
	pthread_mutex_unlock(&log->mu);
	free(l);
	int rc = 0;
	for (size_t i = 0; i < nout && rc == 0; i++)
		rc = fn(list[i].name, list[i].len, list[i].version, arg);
	free(list);
	return rc < 0 ? -1 : 0;
}

void ml_log_on_head(struct ml_log *log, void (*fn)(uint64_t head, void *arg), void *arg)
{
	pthread_mutex_lock(&log->mu);
	log->on_head = fn;
	log->on_head_arg = arg;
	log->on_head_waiters++;
	while (log->on_head_calls) /* the one before may be running: let it return */
		pthread_cond_wait(&log->head_cv, &log->mu);
	log->on_head_waiters--;
	pthread_mutex_unlock(&log->mu);
}

enum ml_fsync ml_log_fsync(struct ml_log *log)
{
	return log->opt.fsync;
}

void ml_log_stats(struct ml_log *log, struct ml_log_stats *out)
{
	pthread_mutex_lock(&log->mu);
	*out = log->stats;
	out->head = log->head;
	out->streams = 0; /* the streams that start in each part */
	for (const struct ml_chunk *c = log->chunks; c; c = c->next)
		out->streams += c->new_streams;
	for (size_t i = 0; i < log->nruns; i++)
		out->streams += log->runs[i]->t.new_streams;
	out->segments = log->nsegs;
	out->bytes = 0;
	for (size_t i = 0; i < log->nsegs; i++)
		out->bytes += log->segs[i]->durable_end;
	out->index_bytes = ml_index_memory(log);
	out->index_blocks = log->nblocks;
	out->index_runs = log->nruns;
	out->index_pending = ml_indexer_pending(log);
	pthread_mutex_unlock(&log->mu);
}

const char *ml_log_recovered(struct ml_log *log)
{
	return log->recovered;
}

int ml_expect_parse(const char *s, int64_t *out)
{
	char *end;
	if (strcmp(s, "any") == 0)
		*out = ML_EXPECT_ANY;
	else if (strcmp(s, "no_stream") == 0)
		*out = ML_EXPECT_NO_STREAM;
	else if (strcmp(s, "exists") == 0)
		*out = ML_EXPECT_EXISTS;
	else if ((*out = strtoll(s, &end, 10)) < 0 || end == s || *end)
		return ml_diag_set(ML_ERR_USAGE,
				   "expected version must be any, no_stream, exists or a version "
				   "number, not '%s'",
				   s);
	return 0;
}
