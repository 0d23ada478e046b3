/*
 * chunk.c - the newest events of the index, in memory (see index.h).
 *
 * A chunk indexes up to `index_block` consecutive events of one segment as
 * they are reserved: each record's offset, each stream's events (a chain of
 * indexes through the chunk, newest first, from which a block lays out its
 * position lists) and the client-chosen ids. Everything lives in a few arrays
 * and two open-addressing tables of indexes, so a chunk costs about 40 bytes
 * an event, whatever the number of streams. A rolled-back write pops events
 * off the end; a stream whose events here are all gone keeps its entry, one
 * version below its first, which is what it had before the chunk.
 */
#include <stdlib.h>
#include <string.h>

#include "log/index.h"

#define NONE UINT32_MAX

static uint32_t slots_for(uint32_t n)
{
	uint32_t s = 16;
	while (s < n * 2)
		s *= 2;
	return s;
}

struct ml_chunk *ml_chunk_new(struct ml_seg *seg, uint64_t first, uint32_t start, uint32_t expect)
{
	struct ml_chunk *c = ml_xcalloc(1, sizeof(*c));
	c->seg = seg;
	c->first = first;
	c->start = c->end = start;
	/* Room for `expect` events from the start: growing by doubling would copy and rehash
	 * everything a dozen times over a chunk's life. */
	c->ev_cap = c->ids_cap = expect;
	c->streams_cap = expect / 4 ? expect / 4 : 1;
	c->ev = ml_xmalloc((size_t)c->ev_cap * sizeof(*c->ev));
	c->ids = ml_xmalloc((size_t)c->ids_cap * sizeof(*c->ids));
	c->streams = ml_xmalloc((size_t)c->streams_cap * sizeof(*c->streams));
	c->stream_mask = slots_for(c->streams_cap) - 1;
	c->stream_slots = ml_xcalloc(c->stream_mask + 1, sizeof(uint32_t));
	c->id_mask = slots_for(expect) - 1;
	c->id_slots = ml_xcalloc(c->id_mask + 1, sizeof(uint32_t));
	return c;
}

void ml_chunk_free(struct ml_chunk *c)
{
	if (c == NULL)
		return;
	free(c->ev);
	free(c->streams);
	free(c->stream_slots);
	free(c->ids);
	free(c->id_slots);
	free(c->names);
	free(c);
}

size_t ml_chunk_bytes(const struct ml_chunk *c)
{
	return sizeof(*c) + (size_t)c->ev_cap * sizeof(*c->ev) +
	       (size_t)c->streams_cap * sizeof(*c->streams) +
	       ((size_t)c->stream_mask + 1 + c->id_mask + 1) * sizeof(uint32_t) +
	       (size_t)c->ids_cap * sizeof(*c->ids) + c->names_cap;
}

/* Grows an array of `size`-byte items to hold one more. */
static void *grow(void *p, uint32_t *cap, uint32_t n, size_t size)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 64;
	return ml_xrealloc(p, (size_t)*cap * size);
}

struct ml_cstream *ml_chunk_stream(const struct ml_chunk *c, uint64_t hash, const char *name,
				   size_t len)
{
	for (uint32_t i = (uint32_t)hash & c->stream_mask;; i = (i + 1) & c->stream_mask) {
		uint32_t k = c->stream_slots[i];
		if (k == 0)
			return NULL;
		struct ml_cstream *s = &c->streams[k - 1];
		if (s->hash == hash && s->name_len == len && !memcmp(c->names + s->name, name, len))
			return s;
	}
}

static void stream_slot_put(struct ml_chunk *c, uint32_t index)
{
	uint32_t i = (uint32_t)c->streams[index].hash & c->stream_mask;
	while (c->stream_slots[i])
		i = (i + 1) & c->stream_mask;
	c->stream_slots[i] = index + 1;
}

struct ml_cstream *ml_chunk_stream_add(struct ml_chunk *c, uint64_t hash, const char *name,
				       size_t len, uint64_t first_version, uint64_t prev)
{
	if ((c->nstreams + 1) * 4 > (c->stream_mask + 1) * 3) { /* keep the table under 3/4 */
		free(c->stream_slots);
		c->stream_mask = c->stream_mask * 2 + 1;
		c->stream_slots = ml_xcalloc(c->stream_mask + 1, sizeof(uint32_t));
		for (uint32_t k = 0; k < c->nstreams; k++)
			stream_slot_put(c, k);
	}
	c->streams = grow(c->streams, &c->streams_cap, c->nstreams, sizeof(*c->streams));
	while (c->names_len + len > c->names_cap) {
		c->names_cap = c->names_cap ? c->names_cap * 2 : 1024;
		c->names = ml_xrealloc(c->names, c->names_cap);
	}
	memcpy(c->names + c->names_len, name, len);
	struct ml_cstream *s = &c->streams[c->nstreams];
	*s = (struct ml_cstream){.hash = hash,
				 .first_version = first_version,
				 .prev = prev,
				 .last = NONE,
				 .name = c->names_len,
				 .name_len = (uint8_t)len};
	c->names_len += (uint32_t)len;
	stream_slot_put(c, c->nstreams++);
	return s;
}

void ml_chunk_push(struct ml_chunk *c, struct ml_cstream *s, uint32_t off, uint32_t len)
{
	c->ev = grow(c->ev, &c->ev_cap, c->count, sizeof(*c->ev));
	c->ev[c->count] =
	    (struct ml_cevent){.off = off, .stream = (uint32_t)(s - c->streams), .prev = s->last};
	c->new_streams += s->first_version + s->count == 1; /* its version is 1 */
	s->last = c->count++;
	s->count++;
	c->end = off + len;
}

static void id_slot_put(struct ml_chunk *c, uint32_t index)
{
	uint32_t i = (uint32_t)c->ids[index].key & c->id_mask;
	while (c->id_slots[i])
		i = (i + 1) & c->id_mask;
	c->id_slots[i] = index + 1;
}

void ml_chunk_add_id(struct ml_chunk *c, uint64_t key, uint64_t position)
{
	if ((c->nids + 1) * 4 > (c->id_mask + 1) * 3) {
		free(c->id_slots);
		c->id_mask = c->id_mask * 2 + 1;
		c->id_slots = ml_xcalloc(c->id_mask + 1, sizeof(uint32_t));
		for (uint32_t k = 0; k < c->nids; k++)
			id_slot_put(c, k);
	}
	c->ids = grow(c->ids, &c->ids_cap, c->nids, sizeof(*c->ids));
	c->ids[c->nids] = (struct ml_cid){key, position};
	id_slot_put(c, c->nids++);
}

size_t ml_chunk_ids(const struct ml_chunk *c, uint64_t key, uint64_t *out, size_t max)
{
	size_t n = 0;
	for (uint32_t i = (uint32_t)key & c->id_mask; c->id_slots[i]; i = (i + 1) & c->id_mask) {
		const struct ml_cid *e = &c->ids[c->id_slots[i] - 1];
		if (e->key == key && n++ < max)
			out[n - 1] = e->position;
	}
	return n;
}

/* Removes id entry `index`, the last of the array, from the table: backward-shift deletion. */
static void id_slot_del(struct ml_chunk *c, uint32_t index)
{
	uint32_t i = (uint32_t)c->ids[index].key & c->id_mask;
	while (c->id_slots[i] != index + 1)
		i = (i + 1) & c->id_mask;
	for (uint32_t j = (i + 1) & c->id_mask; c->id_slots[j]; j = (j + 1) & c->id_mask) {
		uint32_t home = (uint32_t)c->ids[c->id_slots[j] - 1].key & c->id_mask;
		if (((j - home) & c->id_mask) >= ((j - i) & c->id_mask)) {
			c->id_slots[i] = c->id_slots[j];
			i = j;
		}
	}
	c->id_slots[i] = 0;
}

void ml_chunk_pop_to(struct ml_chunk *c, uint64_t position)
{
	while (c->count > 0 && ml_chunk_last(c) > position) {
		struct ml_cevent *e = &c->ev[--c->count];
		struct ml_cstream *s = &c->streams[e->stream];
		c->new_streams -= s->first_version + s->count - 1 == 1;
		s->last = e->prev;
		s->count--;
		c->end = e->off;
	}
	/* ids are added in position order: the ones past `position` are at the end */
	while (c->nids > 0 && c->ids[c->nids - 1].position > position)
		id_slot_del(c, --c->nids);
}

uint64_t ml_chunk_version_at(const struct ml_chunk *c, const struct ml_cstream *s, uint64_t head)
{
	uint64_t v = s->first_version + s->count - 1;
	for (uint32_t i = s->last; i != NONE && c->first + i > head; i = c->ev[i].prev)
		v--;
	return v;
}
