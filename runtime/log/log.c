/*
 * log.c - the reserved index shared by recovery and appends, and the log's
 * small queries (head, versions, stream listing, stats).
 */
#include <stdlib.h>
#include <string.h>

#include "log/log_internal.h"

void ml_log_offsets_reserve(struct ml_log *log, uint64_t position)
{
	if (position <= log->offsets_cap)
		return;
	size_t cap = log->offsets_cap ? log->offsets_cap : 4096;
	while (cap < position)
		cap *= 2;
	log->offsets = ml_xrealloc(log->offsets, cap * sizeof(*log->offsets));
	log->offsets_cap = cap;
}

void ml_log_index_event(struct ml_log *log, const struct ml_event *e, uint8_t flags,
			uint64_t offset)
{
	(void)flags;
	uint64_t h = ml_stream_hash(e->stream, e->stream_len);
	struct ml_stream *s = ml_streams_find(&log->streams, e->stream, e->stream_len, h);
	if (s == NULL)
		s = ml_streams_add(&log->streams, e->stream, e->stream_len, h);
	ml_stream_push(&log->streams, s, e->position);
	ml_log_offsets_reserve(log, e->position);
	log->offsets[e->position - 1] = (uint32_t)offset;
}

size_t ml_log_seg_index(struct ml_log *log, uint64_t position)
{
	size_t lo = 0, hi = log->nsegs;
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

/* The number of a stream's positions that are visible (at or below the head). */
static uint64_t visible_count(const struct ml_stream *s, uint64_t head)
{
	uint64_t n = s->count;
	while (n > 0 && s->pos[n - 1] > head)
		n--;
	return n;
}

uint64_t ml_log_stream_version(struct ml_log *log, const char *stream, size_t len)
{
	pthread_mutex_lock(&log->mu);
	struct ml_stream *s =
	    ml_streams_find(&log->streams, stream, len, ml_stream_hash(stream, len));
	uint64_t v = s ? visible_count(s, log->head) : 0;
	pthread_mutex_unlock(&log->mu);
	return v;
}

int ml_log_streams(struct ml_log *log, const char *prefix, ml_stream_fn fn, void *arg)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	struct {
		char name[256];
		uint8_t len;
		uint64_t version;
	} *list = NULL;
	size_t n = 0, cap = 0;

	/* Copy out under the lock, call back without it. */
	pthread_mutex_lock(&log->mu);
	for (size_t i = 0; i <= log->streams.mask; i++) {
		struct ml_stream *s = log->streams.slots[i];
		if (s == NULL || s->name_len < plen || (plen && memcmp(s->name, prefix, plen) != 0))
			continue;
		uint64_t v = visible_count(s, log->head);
		if (v == 0)
			continue;
		if (n == cap)
			list = ml_xrealloc(list, (cap = cap ? cap * 2 : 64) * sizeof(*list));
		memcpy(list[n].name, s->name, s->name_len);
		list[n].len = s->name_len;
		list[n].version = v;
		n++;
	}
	pthread_mutex_unlock(&log->mu);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
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
	out->streams = log->streams.used;
	out->segments = log->nsegs;
	out->bytes = 0;
	for (size_t i = 0; i < log->nsegs; i++)
		out->bytes += log->segs[i]->durable_end;
	out->index_bytes = log->streams.bytes + log->offsets_cap * sizeof(*log->offsets) +
			   (log->idem.cap + log->idem.mask + 1) * 16;
	pthread_mutex_unlock(&log->mu);
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
