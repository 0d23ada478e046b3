/*
 * idem.c - the window of recent ids, for duplicate detection.
 *
 * It remembers the (stream, id) pairs of the last `cap` client-chosen ids (a
 * generated id cannot be retried: the client never saw it) as 64-bit hashes;
 * after a restart, those among the last `cap` events; a hit is confirmed
 * against the stored record, so a hash collision can never turn an append
 * into a false duplicate.
 */
#include <stdlib.h>
#include <string.h>

#include "log/log_internal.h"

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
