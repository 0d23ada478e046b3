/*
 * entry1.c - the decoder of journal entries in format 1, which moonlog wrote
 * before format 2 (entry.c): entries an older moonlog left in a replicated
 * journal still apply, to the same events. Nothing writes format 1 any more.
 * All integers little-endian:
 *
 *   0  u8  format (1)       1 u8 flags (1: system)       2 u16 zero
 *   4  u32 events           8 u32 expected versions      12 i64 time, ms
 *   20 per expected version: u8 stream length, i64 expected, stream
 *      per event: u8 flags (1: the id was made), u8 stream, type and id
 *      lengths, u32 meta length, u32 data length, stream, type, id, meta, data
 *
 * Nothing else may follow.
 */
#include <string.h>

#include <moonlog/util.h>

#include "log/entry.h"
#include "log/record.h"

#define HEAD	   19 /* after the format byte */
#define EXPECT_MIN 9  /* an expected version's fixed part */
#define EVENT_MIN  12 /* an event's fixed part */

enum { ENTRY_SYSTEM = 1, EVENT_MADE_ID = 1 };

static int decode_expect(struct ml_entry_cursor *c, struct ml_expect_in *x)
{
	const uint8_t *h = ml_entry_take(c, EXPECT_MIN);
	if (h == NULL)
		return ml_entry_bad("cut short in an expected version");
	x->stream_len = h[0];
	x->expected = (int64_t)ml_le64(h + 1);
	if ((x->stream = (const char *)ml_entry_take(c, x->stream_len)) == NULL)
		return ml_entry_bad("cut short in an expected version");
	return 0;
}

static int decode_event(struct ml_entry_cursor *c, struct ml_event_in *e, char id[37])
{
	const uint8_t *h = ml_entry_take(c, EVENT_MIN);
	if (h == NULL)
		return ml_entry_bad("cut short in an event");
	int made = h[0] & EVENT_MADE_ID;
	e->stream_len = h[1], e->type_len = h[2], e->id_len = h[3];
	e->meta_len = ml_le32(h + 4), e->data_len = ml_le32(h + 8);
	if (made && e->id_len != 36)
		return ml_entry_bad("a made id that is not 36 bytes long");
	const uint8_t *body = ml_entry_take(c, e->stream_len + e->type_len + e->id_len);
	e->meta = ml_entry_take(c, e->meta_len);
	e->data = ml_entry_take(c, e->data_len);
	if (body == NULL || e->meta == NULL || e->data == NULL)
		return ml_entry_bad("cut short in an event");
	e->stream = (const char *)body;
	e->type = e->stream + e->stream_len;
	e->id = e->type + e->type_len;
	ml_entry_event_finish(e, made, id);
	return 0;
}

int ml_entry_decode1(struct ml_entry_cursor *c, size_t len, struct ml_entry *d)
{
	const uint8_t *h = ml_entry_take(c, HEAD);
	if (h == NULL)
		return ml_entry_bad("shorter than its header");
	d->system = (h[0] & ENTRY_SYSTEM) != 0;
	d->n_events = ml_le32(h + 3);
	d->n_expect = ml_le32(h + 7);
	d->time = (int64_t)ml_le64(h + 11);
	/* Bound the counts by the bytes before allocating for them. */
	if (d->n_events > len / EVENT_MIN || d->n_expect > len / EXPECT_MIN)
		return ml_entry_bad("more events than bytes");
	if (d->n_events > ML_BATCH_MAX_EVENTS || d->n_expect > ML_BATCH_MAX_EVENTS)
		return ml_entry_bad("more events than a batch may hold");
	ml_entry_alloc(d);
	for (size_t i = 0; i < d->n_expect; i++)
		if (decode_expect(c, &d->expect[i]) != 0)
			return -1;
	for (size_t i = 0; i < d->n_events; i++)
		if (decode_event(c, &d->events[i], d->ids[i]) != 0)
			return -1;
	return 0;
}
