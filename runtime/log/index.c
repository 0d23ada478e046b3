/*
 * index.c - the in-memory stream index and the window of recent ids.
 *
 * The stream index maps a stream name to the positions of its events, so that
 * reading a stream or knowing its version never scans the log. It costs 8
 * bytes per event (a position) plus, per stream, the struct, its name and two
 * table slots. The offsets array of log.c adds 4 bytes per event for $all.
 *
 * The id window remembers the (stream, id) pairs of the last `cap`
 * client-chosen ids (a generated id cannot be retried: the client never saw
 * it) as 64-bit hashes; after a restart, those among the last `cap` events; a hit is confirmed
 * against the stored record, so a hash collision can never turn an append into a false duplicate.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/random.h>
#include <string.h>

#include "log/log_internal.h"

/* A seed per process: client-chosen names cannot be picked to collide in the tables. */
static uint64_t seed;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void seed_init(void)
{
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = ml_clock_ns();
}

uint64_t ml_stream_hash(const char *name, size_t len)
{
	pthread_once(&seed_once, seed_init);
	uint64_t h = ml_hash64(name, len, seed ^ 0x6d6f6f6e6c6f67ull);
	return h ? h : 1; /* 0 marks an empty slot; the low bits index the table */
}

void ml_streams_init(struct ml_stream_table *t)
{
	t->mask = 1023;
	t->slots = ml_xcalloc(t->mask + 1, sizeof(*t->slots));
	t->used = 0;
	t->bytes = (t->mask + 1) * sizeof(*t->slots);
}

void ml_streams_free(struct ml_stream_table *t)
{
	for (size_t i = 0; t->slots && i <= t->mask; i++)
		if (t->slots[i]) {
			free(t->slots[i]->pos);
			free(t->slots[i]);
		}
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

struct ml_stream *ml_streams_find(struct ml_stream_table *t, const char *name, size_t len,
				  uint64_t hash)
{
	for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
		struct ml_stream *s = t->slots[i];
		if (s == NULL)
			return NULL;
		if (s->hash == hash && s->name_len == len && memcmp(s->name, name, len) == 0)
			return s;
	}
}

static void table_put(struct ml_stream **slots, size_t mask, struct ml_stream *s)
{
	size_t i = s->hash & mask;
	while (slots[i])
		i = (i + 1) & mask;
	slots[i] = s;
}

static void table_grow(struct ml_stream_table *t)
{
	size_t mask = t->mask * 2 + 1;
	struct ml_stream **slots = ml_xcalloc(mask + 1, sizeof(*slots));
	for (size_t i = 0; i <= t->mask; i++)
		if (t->slots[i])
			table_put(slots, mask, t->slots[i]);
	free(t->slots);
	t->bytes += (mask - t->mask) * sizeof(*slots);
	t->slots = slots;
	t->mask = mask;
}

struct ml_stream *ml_streams_add(struct ml_stream_table *t, const char *name, size_t len,
				 uint64_t hash)
{
	if ((t->used + 1) * 4 > (t->mask + 1) * 3)
		table_grow(t);
	struct ml_stream *s = ml_xcalloc(1, sizeof(*s) + len + 1);
	s->hash = hash;
	s->name_len = (uint8_t)len;
	memcpy(s->name, name, len);
	table_put(t->slots, t->mask, s);
	t->used++;
	t->bytes += sizeof(*s) + len + 1;
	return s;
}

/* Linear probing with backward-shift deletion keeps lookups tombstone-free. */
void ml_streams_remove(struct ml_stream_table *t, struct ml_stream *s)
{
	size_t i = s->hash & t->mask;
	while (t->slots[i] != s)
		i = (i + 1) & t->mask;
	for (size_t j = (i + 1) & t->mask; t->slots[j]; j = (j + 1) & t->mask) {
		size_t home = t->slots[j]->hash & t->mask;
		if (((j - home) & t->mask) >= ((j - i) & t->mask)) {
			t->slots[i] = t->slots[j];
			i = j;
		}
	}
	t->slots[i] = NULL;
	t->used--;
	t->bytes -= sizeof(*s) + s->name_len + 1 + (uint64_t)s->cap * sizeof(*s->pos);
	free(s->pos);
	free(s);
}

void ml_stream_push(struct ml_stream_table *t, struct ml_stream *s, uint64_t position)
{
	if (s->count == s->cap) {
		uint64_t cap = s->cap ? s->cap * 2 : 4;
		s->pos = ml_xrealloc(s->pos, (size_t)cap * sizeof(*s->pos));
		t->bytes += (uint64_t)(cap - s->cap) * sizeof(*s->pos);
		s->cap = cap;
	}
	s->pos[s->count++] = position;
}

uint64_t ml_idem_key(const char *stream, size_t slen, const char *id, size_t ilen)
{
	pthread_once(&seed_once, seed_init);
	uint64_t h = ml_hash64(id, ilen, ml_hash64(stream, slen, seed ^ 0x1de));
	return h ? h : 1;
}

void ml_idem_init(struct ml_idem *w, size_t cap)
{
	size_t slots = 16;
	while (slots < cap * 2)
		slots *= 2;
	w->cap = cap ? cap : 1;
	w->ring_cap = w->cap;
	w->ring = ml_xcalloc(w->ring_cap, sizeof(*w->ring));
	w->table = ml_xcalloc(slots, sizeof(*w->table));
	w->mask = slots - 1;
	w->head = w->count = 0;
}

void ml_idem_free(struct ml_idem *w)
{
	free(w->ring);
	free(w->table);
	memset(w, 0, sizeof(*w));
}

uint64_t ml_idem_find(const struct ml_idem *w, uint64_t key)
{
	for (size_t i = key & w->mask; w->table[i].key; i = (i + 1) & w->mask)
		if (w->table[i].key == key)
			return w->table[i].position;
	return 0;
}

static void idem_table_del(struct ml_idem *w, uint64_t key, uint64_t position)
{
	size_t i = key & w->mask;
	while (w->table[i].key && !(w->table[i].key == key && w->table[i].position == position))
		i = (i + 1) & w->mask;
	if (w->table[i].key == 0)
		return;
	for (size_t j = (i + 1) & w->mask; w->table[j].key; j = (j + 1) & w->mask) {
		size_t home = w->table[j].key & w->mask;
		if (((j - home) & w->mask) >= ((j - i) & w->mask)) {
			w->table[i] = w->table[j];
			i = j;
		}
	}
	w->table[i].key = 0;
}

static void idem_table_put(struct ml_idem *w, uint64_t key, uint64_t position)
{
	size_t i = key & w->mask;
	while (w->table[i].key && w->table[i].key != key)
		i = (i + 1) & w->mask;
	w->table[i].key = key; /* a newer entry for the same key replaces the older */
	w->table[i].position = position;
}

/* The ring's i-th oldest entry. */
static size_t ring_at(const struct ml_idem *w, size_t i)
{
	return (w->head + w->ring_cap - w->count + i) % w->ring_cap;
}

/* More room while appends are in flight: the ring and the table double. */
static void idem_grow(struct ml_idem *w)
{
	size_t cap = w->ring_cap * 2;
	__typeof__(w->ring) ring = ml_xcalloc(cap, sizeof(*ring));
	for (size_t i = 0; i < w->count; i++)
		ring[i] = w->ring[ring_at(w, i)];
	free(w->ring);
	w->ring = ring;
	w->ring_cap = cap;
	w->head = w->count;
	free(w->table);
	w->mask = w->mask * 2 + 1;
	w->table = ml_xcalloc(w->mask + 1, sizeof(*w->table));
	for (size_t i = 0; i < w->count; i++)
		idem_table_put(w, w->ring[i].key, w->ring[i].position);
}

/*
 * Adds an id at reservation. Nothing is forgotten here: the oldest ids are
 * evicted only once newer ones are acknowledged (ml_idem_trim), so a write
 * that fails and is rolled back leaves the window as it was.
 */
void ml_idem_add(struct ml_idem *w, uint64_t key, uint64_t position)
{
	if (w->count == w->ring_cap)
		idem_grow(w);
	w->ring[w->head].key = key;
	w->ring[w->head].position = position;
	w->head = (w->head + 1) % w->ring_cap;
	w->count++;
	idem_table_put(w, key, position);
}

void ml_idem_trim(struct ml_idem *w)
{
	while (w->count > w->cap) {
		size_t oldest = ring_at(w, 0);
		idem_table_del(w, w->ring[oldest].key, w->ring[oldest].position);
		w->count--;
	}
}

void ml_idem_rollback(struct ml_idem *w, uint64_t position)
{
	while (w->count > 0) {
		size_t last = (w->head + w->ring_cap - 1) % w->ring_cap;
		if (w->ring[last].position <= position)
			break;
		idem_table_del(w, w->ring[last].key, w->ring[last].position);
		w->head = last;
		w->count--;
	}
}
