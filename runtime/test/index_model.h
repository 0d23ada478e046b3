/*
 * index_model.h - what a log should answer, kept beside it by the index tests:
 * every appended event's stream and version, each stream's positions. agrees()
 * asks the log every question the index answers (versions, stream reads
 * forwards and backwards from many versions, $all, the scan, the listing of
 * streams) and compares.
 */
#ifndef ML_TEST_INDEX_MODEL_H
#define ML_TEST_INDEX_MODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moonlog/log.h>

#define MODEL_STREAMS 48
#define MODEL_EVENTS  (1 << 16)

struct model {
	uint64_t first, head; /* the first position the log holds, the last */
	int stream_of[MODEL_EVENTS + 1];
	uint64_t version_of[MODEL_EVENTS + 1];
	uint64_t *pos[MODEL_STREAMS]; /* each stream's positions, version - 1 -> position */
	uint64_t n[MODEL_STREAMS];
	unsigned rng;
	int forgotten_ok;  /* a stream with no event kept may have version 0 (no run knows it) */
	int extra_streams; /* streams the test appended to beside the model's */
	uint64_t own_from; /* the first position the model appended (the test's before) */
};

static inline void model_name(char out[32], int s)
{
	snprintf(out, 32, "%s-%d", s % 3 ? "acct" : "order", s);
}

static inline unsigned model_rand(struct model *m)
{
	m->rng = m->rng * 1103515245u + 12345u;
	return m->rng >> 8;
}

static inline void model_free(struct model *m)
{
	for (int s = 0; s < MODEL_STREAMS; s++)
		free(m->pos[s]);
	memset(m, 0, sizeof(*m));
}

/* An empty model (freeing the one before), its random choices seeded. */
static inline void model_reset(struct model *m, unsigned seed)
{
	model_free(m);
	m->rng = seed;
}

/* Appends `events` events in batches of 1 to 4; stream 0 gets about a third of them, and
 * every other event has a client id. 0, or -1. */
static inline int model_append(struct model *m, struct ml_log *log, int events)
{
	for (int done = 0; done < events;) {
		int n = 1 + (int)(model_rand(m) % 4), streams[4];
		struct ml_event_in evs[4];
		char names[4][32], ids[4][32];
		for (int i = 0; i < n; i++) {
			unsigned r = model_rand(m);
			streams[i] = r % 3 == 0 ? 0 : (int)(r / 3 % MODEL_STREAMS);
			model_name(names[i], streams[i]);
			snprintf(ids[i], sizeof(ids[i]), "id-%u", r);
			evs[i] = (struct ml_event_in){names[i],
						      strlen(names[i]),
						      "Moved",
						      5,
						      r % 2 ? ids[i] : NULL,
						      r % 2 ? strlen(ids[i]) : 0,
						      "\xc0",
						      1,
						      NULL,
						      0};
		}
		uint64_t pos[4], ver[4];
		struct ml_append req = {
		    .events = evs, .n_events = (size_t)n, .positions = pos, .versions = ver};
		if (ml_log_append(log, &req) != 0 || req.duplicate)
			return -1;
		for (int i = 0; i < n; i++) {
			int s = streams[i];
			if (pos[i] != m->head + 1 || ver[i] != m->n[s] + 1 || pos[i] > MODEL_EVENTS)
				return -1;
			m->pos[s] = realloc(m->pos[s], (m->n[s] + 1) * sizeof(uint64_t));
			m->pos[s][m->n[s]++] = pos[i];
			m->stream_of[pos[i]] = s;
			m->version_of[pos[i]] = ver[i];
			m->head = pos[i];
		}
		if (m->first == 0)
			m->first = 1; /* (a test that appends before the model sets head) */
		done += n;
	}
	return 0;
}

struct seen {
	uint64_t pos[MODEL_EVENTS];
	uint64_t ver[MODEL_EVENTS];
	int stream[MODEL_EVENTS];
	size_t n;
};

static inline int seen_fn(const struct ml_event *e, void *arg)
{
	struct seen *s = arg;
	if (s->n < MODEL_EVENTS) {
		s->pos[s->n] = e->position;
		s->ver[s->n] = e->version;
		const char *d = memchr(e->stream, '-', e->stream_len);
		int v = 0;
		for (d = d ? d + 1 : e->stream + e->stream_len; d < e->stream + e->stream_len; d++)
			v = v * 10 + (*d - '0');
		s->stream[s->n] = v;
	}
	s->n++;
	return 0;
}

/* The versions of stream s the log still holds (from its first kept position on). */
static inline uint64_t model_kept_from(const struct model *m, int s)
{
	uint64_t v = 1;
	while (v <= m->n[s] && m->pos[s][v - 1] < m->first)
		v++;
	return v;
}

/* Does reading stream s (from, limit, backwards) give what the model says? */
static inline int model_read_ok(const struct model *m, struct ml_log *log, int s, uint64_t from,
				uint64_t limit, int back, struct seen *got)
{
	char name[32];
	model_name(name, s);
	got->n = 0;
	int64_t n = ml_log_read_stream(log, name, strlen(name), from, limit, back, seen_fn, got);
	uint64_t kept = model_kept_from(m, s), want[MODEL_EVENTS];
	size_t nw = 0;
	if (!back) {
		uint64_t v = from > kept ? from : kept;
		for (; v <= m->n[s] && (!limit || nw < limit); v++)
			want[nw++] = v;
	} else {
		uint64_t v = from == 0 || from > m->n[s] ? m->n[s] : from;
		for (; v >= kept && v > 0 && (!limit || nw < limit); v--)
			want[nw++] = v;
	}
	if (n != (int64_t)nw || got->n != nw) {
		printf("# %s from %llu limit %llu%s: %lld events, not %zu\n", name,
		       (unsigned long long)from, (unsigned long long)limit,
		       back ? " backwards" : "", (long long)n, nw);
		return 0;
	}
	for (size_t i = 0; i < nw; i++)
		if (got->ver[i] != want[i] || got->pos[i] != m->pos[s][want[i] - 1] ||
		    got->stream[i] != s) {
			printf("# %s event %zu: version %llu at %llu, not %llu at %llu\n", name, i,
			       (unsigned long long)got->ver[i], (unsigned long long)got->pos[i],
			       (unsigned long long)want[i],
			       (unsigned long long)m->pos[s][want[i] - 1]);
			return 0;
		}
	return 1;
}

static inline int count_stream(const char *name, size_t len, uint64_t version, void *arg)
{
	(void)name, (void)len, (void)version;
	(*(int *)arg)++;
	return 0;
}

/* Asks the log everything the index answers and compares with the model: 1 if all agree. */
static inline int agrees(const struct model *m, struct ml_log *log)
{
	static struct seen got; /* large: not on the stack */
	if (ml_log_head(log) != m->head) {
		printf("# head %llu, not %llu\n", (unsigned long long)ml_log_head(log),
		       (unsigned long long)m->head);
		return 0;
	}
	int streams = 0;
	for (int s = 0; s < MODEL_STREAMS; s++) {
		char name[32];
		model_name(name, s);
		uint64_t v = ml_log_stream_version(log, name, strlen(name));
		int forgotten = m->forgotten_ok && v == 0 && model_kept_from(m, s) > m->n[s];
		if (v != m->n[s] && !forgotten) {
			printf("# %s: version %llu, not %llu\n", name, (unsigned long long)v,
			       (unsigned long long)m->n[s]);
			return 0;
		}
		streams += m->n[s] > 0 && !forgotten;
		if (forgotten)
			continue;
		uint64_t froms[] = {0, 1, 2, m->n[s] / 3, m->n[s] / 2, m->n[s], m->n[s] + 1};
		uint64_t limits[] = {0, 1, 10, 100};
		for (size_t f = 0; f < sizeof(froms) / sizeof(froms[0]); f++)
			for (size_t l = 0; l < sizeof(limits) / sizeof(limits[0]); l++)
				for (int back = 0; back < 2; back++)
					if (!model_read_ok(m, log, s, froms[f], limits[l], back,
							   &got))
						return 0;
	}
	int listed = 0;
	ml_log_streams(log, NULL, count_stream, &listed);
	if (listed != streams + m->extra_streams) {
		printf("# %d streams listed, not %d\n", listed, streams + m->extra_streams);
		return 0;
	}
	uint64_t starts[] = {0, 1, m->first, m->first + 1, m->head / 2, m->head};
	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++)
		for (int scan = 0; scan < 2; scan++) {
			got.n = 0;
			int64_t n = scan ? ml_log_scan(log, starts[i], 0, seen_fn, &got)
					 : ml_log_read_all(log, starts[i], 0, seen_fn, &got);
			uint64_t from = starts[i] > m->first ? starts[i] : m->first;
			uint64_t want = m->head >= from ? m->head - from + 1 : 0;
			if (n != (int64_t)want || got.n != want) {
				printf("# %s from %llu: %lld events, not %llu\n",
				       scan ? "scan" : "$all", (unsigned long long)starts[i],
				       (long long)n, (unsigned long long)want);
				return 0;
			}
			for (size_t k = 0; k < got.n; k++)
				if (got.pos[k] != from + k ||
				    (from + k >= m->own_from &&
				     (got.stream[k] != m->stream_of[from + k] ||
				      got.ver[k] != m->version_of[from + k]))) {
					printf("# $all at %llu: wrong event\n",
					       (unsigned long long)(from + k));
					return 0;
				}
		}
	return 1;
}

#endif
