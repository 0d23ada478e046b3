/*
 * entry.c - a batch as a journal entry: the bytes a replicated writer publishes
 * and every node hands to ml_log_apply (see log_writer.h).
 *
 * An entry holds what a batch is before the log has looked at it: its events
 * (with the ids made for those that had none, marked as made), its expected
 * versions, whether it may name system streams, and the time its submitter
 * gave it. Not its positions or versions: each node's apply finds those, the
 * same on every node. The journal carries every event several times over (the
 * stream's servers store and replicate it, every node reads it), so format 2
 * spends as few bytes around an event as it can: integers are varints
 * (ml_buf_add_varint), signed ones zigzagged (0, -1, 1, -2 ... as 0, 1, 2, 3),
 * an id in ml_uuid7's text form travels as its 16 bytes, and what the event
 * before already said is a flag bit:
 *
 *   u8 format (2), u8 flags (1: system; 2: TIME_BY_ID; 4: SINGLE)
 *   varints: events, expected versions (left out if SINGLE: one event, none)
 *   varint time, ms, zigzag; if TIME_BY_ID, the difference from the time in
 *     the first event's id instead (a UUIDv7's first 48 bits: the submitter's
 *     log made it the moment before, so the difference takes a byte)
 *   per expected version: varint stream length, stream, varint expected (zigzag)
 *   per event: u8 flags, then
 *     stream: varint length and bytes, unless SAME_STREAM (the event before's)
 *     type: likewise, unless SAME_TYPE
 *     id: its 16 bytes if ID16 (given back as the same 36 characters), else
 *         varint length and bytes; MADE: the submitter's log made it
 *     meta: varint length and bytes, if META; data: likewise, if DATA
 *
 * For the bench's event (stream bench-N, type Measured, a made id, 100 bytes of
 * data, alone in its batch) that is 138 bytes where format 1 took 183. Nothing
 * else may follow. Decoding checks only the shape; what the batch holds is
 * checked by the same code as a local append's (append.c, store.c). Format 1
 * is still read (entry1.c).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <moonlog/util.h>

#include "log/entry.h"

#define FORMAT	   2
#define EXPECT_MIN 2 /* the fewest bytes an expected version takes */
#define EVENT_MIN  2 /* and an event: its flags and an empty id's length */

enum { ENTRY_SYSTEM = 1, ENTRY_TIME_BY_ID = 2, ENTRY_SINGLE = 4, ENTRY_FLAGS = 7 };
enum {
	EVENT_MADE = 1,
	EVENT_ID16 = 2,
	EVENT_SAME_STREAM = 4,
	EVENT_SAME_TYPE = 8,
	EVENT_META = 16,
	EVENT_DATA = 32,
	EVENT_FLAGS = 63 /* all of them: any other bit is no entry of this format */
};

static uint64_t zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* ---- encoding: into room reserved once (room_for), through a cursor ---- */

#define VARINT_MAX 10

static uint8_t *put_varint(uint8_t *w, uint64_t v)
{
	for (; v >= 0x80; v >>= 7)
		*w++ = (uint8_t)(v | 0x80);
	*w++ = (uint8_t)v;
	return w;
}

static uint8_t *put_bytes(uint8_t *w, const void *p, size_t n)
{
	w = put_varint(w, n);
	if (n)
		memcpy(w, p, n);
	return w + n;
}

static int same(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* The most bytes the entry of req takes: each part at its longest. */
static size_t room_for(const struct ml_append *req)
{
	size_t n = 2 + 3 * VARINT_MAX;
	for (size_t i = 0; i < req->n_expect; i++)
		n += 2 * VARINT_MAX + req->expect[i].stream_len;
	for (size_t i = 0; i < req->n_events; i++) {
		const struct ml_event_in *e = &req->events[i];
		n += 1 + 5 * VARINT_MAX + e->stream_len + e->type_len +
		     (e->id_len ? e->id_len : 36) + e->meta_len + e->data_len;
	}
	return n;
}

/*
 * One event; prev is the event before it in the batch (NULL for the first), made its made
 * id, packed that id as 16 bytes when the caller packed it already (NULL: not yet).
 */
static uint8_t *encode_event(uint8_t *w, const struct ml_event_in *e,
			     const struct ml_event_in *prev, const char *made,
			     const uint8_t *packed)
{
	const char *id = made ? made : e->id;
	size_t id_len = made ? 36 : e->id_len;
	uint8_t own16[16];
	const uint8_t *id16 = packed;
	if (id16 == NULL && ml_uuid_pack(id, id_len, own16) == 0)
		id16 = own16;
	uint8_t f = (made ? EVENT_MADE : 0) | (id16 ? EVENT_ID16 : 0);
	if (prev && same(prev->stream, prev->stream_len, e->stream, e->stream_len))
		f |= EVENT_SAME_STREAM;
	if (prev && same(prev->type, prev->type_len, e->type, e->type_len))
		f |= EVENT_SAME_TYPE;
	f |= (e->meta_len ? EVENT_META : 0) | (e->data_len ? EVENT_DATA : 0);
	*w++ = f;
	if (!(f & EVENT_SAME_STREAM))
		w = put_bytes(w, e->stream, e->stream_len);
	if (!(f & EVENT_SAME_TYPE))
		w = put_bytes(w, e->type, e->type_len);
	if (id16)
		memcpy(w, id16, 16), w += 16;
	else
		w = put_bytes(w, id, id_len);
	if (f & EVENT_META)
		w = put_bytes(w, e->meta, e->meta_len);
	if (f & EVENT_DATA)
		w = put_bytes(w, e->data, e->data_len);
	return w;
}

/* The milliseconds a UUIDv7 begins with (its first 48 bits). */
static uint64_t id_ms(const uint8_t id16[16])
{
	uint64_t ms = 0;
	for (int i = 0; i < 6; i++)
		ms = ms << 8 | id16[i];
	return ms;
}

void ml_log_entry_encode(const struct ml_append *req, char (*ids)[37], int64_t time,
			 struct ml_buf *out)
{
	uint8_t flags = req->system ? ENTRY_SYSTEM : 0, id16[16];
	const struct ml_event_in *first = req->n_events ? &req->events[0] : NULL;
	int packed = first && first->id_len == 0 && ml_uuid_pack(ids[0], 36, id16) == 0;
	if (packed) {
		flags |= ENTRY_TIME_BY_ID; /* unsigned: the difference wraps, and back */
		time = (int64_t)((uint64_t)time - id_ms(id16));
	}
	if (req->n_events == 1 && req->n_expect == 0)
		flags |= ENTRY_SINGLE;
	ml_buf_reserve(out, room_for(req));
	uint8_t *w = (uint8_t *)out->data + out->len;
	*w++ = FORMAT, *w++ = flags;
	if (!(flags & ENTRY_SINGLE)) {
		w = put_varint(w, req->n_events);
		w = put_varint(w, req->n_expect);
	}
	w = put_varint(w, zigzag(time));
	for (size_t i = 0; i < req->n_expect; i++) {
		const struct ml_expect_in *x = &req->expect[i];
		w = put_bytes(w, x->stream, x->stream_len);
		w = put_varint(w, zigzag(x->expected));
	}
	for (size_t i = 0; i < req->n_events; i++) {
		const struct ml_event_in *e = &req->events[i];
		w = encode_event(w, e, i ? e - 1 : NULL, e->id_len == 0 ? ids[i] : NULL,
				 i == 0 && packed ? id16 : NULL);
	}
	out->len = (size_t)(w - (uint8_t *)out->data);
}

/* ---- decoding ---- */

int ml_entry_bad(const char *why)
{
	return ml_diag_set(ML_ERR_CORRUPT, "it is not a batch this moonlog can read (%s)", why);
}

void ml_entry_event_finish(struct ml_event_in *e, int made, char id[37])
{
	if (made) {
		if (e->id != id)
			memcpy(id, e->id, 36);
		id[36] = '\0';
		e->id = NULL, e->id_len = 0;
	}
	if (e->meta_len == 0)
		e->meta = NULL;
	if (e->data_len == 0)
		e->data = NULL;
}

void ml_entry_alloc(struct ml_entry *d)
{
	if (d->n_events <= ML_ENTRY_INLINE) {
		memset(d->events_in, 0, sizeof(d->events_in));
		memset(d->ids_in, 0, sizeof(d->ids_in));
		d->events = d->events_in, d->ids = d->ids_in;
	} else {
		d->events = ml_xcalloc(d->n_events, sizeof(*d->events));
		d->ids = ml_xcalloc(d->n_events, sizeof(*d->ids));
	}
	if (d->n_expect <= ML_ENTRY_INLINE) {
		memset(d->expect_in, 0, sizeof(d->expect_in));
		d->expect = d->expect_in;
	} else {
		d->expect = ml_xcalloc(d->n_expect, sizeof(*d->expect));
	}
}

static int take_varint(struct ml_entry_cursor *c, uint64_t *v)
{
	size_t n = ml_varint_get(c->p, c->left, v);
	return ml_entry_take(c, n) && n ? 0 : -1;
}

/* A varint length and that many bytes: 0, or -1 when they are cut short. */
static int take_bytes(struct ml_entry_cursor *c, const void **p, size_t *len)
{
	uint64_t n;
	if (take_varint(c, &n) != 0 || n > c->left)
		return -1;
	*len = (size_t)n;
	*p = ml_entry_take(c, *len);
	return 0;
}

static int decode_expect(struct ml_entry_cursor *c, struct ml_expect_in *x)
{
	uint64_t v;
	if (take_bytes(c, (const void **)&x->stream, &x->stream_len) != 0 ||
	    take_varint(c, &v) != 0)
		return ml_entry_bad("cut short in an expected version");
	x->expected = unzigzag(v);
	return 0;
}

/* The id of an event with flags f: its 16 bytes as text in id, or its bytes as given. */
static int decode_id(struct ml_entry_cursor *c, uint8_t f, struct ml_event_in *e, char id[37],
		     const uint8_t **id16)
{
	if (f & EVENT_ID16) {
		const uint8_t *p = ml_entry_take(c, 16);
		if (p == NULL)
			return -1;
		ml_uuid_unpack(p, id);
		e->id = id, e->id_len = 36;
		*id16 = p;
		return 0;
	}
	return take_bytes(c, (const void **)&e->id, &e->id_len);
}

/* One event; prev is the one before it (NULL for the first); its flags in *flags, and its
 * id's 16 bytes in *id16 when sent so. */
static int decode_event(struct ml_entry_cursor *c, struct ml_event_in *e,
			const struct ml_event_in *prev, char id[37], uint8_t *flags,
			const uint8_t **id16)
{
	const uint8_t *fp = ml_entry_take(c, 1);
	if (fp == NULL)
		return ml_entry_bad("cut short in an event");
	uint8_t f = *flags = *fp;
	if (f & ~EVENT_FLAGS)
		return ml_entry_bad("an event with flags this moonlog does not know");
	if (prev == NULL && (f & (EVENT_SAME_STREAM | EVENT_SAME_TYPE)))
		return ml_entry_bad("a first event that names the one before it");
	if (f & EVENT_SAME_STREAM)
		e->stream = prev->stream, e->stream_len = prev->stream_len;
	else if (take_bytes(c, (const void **)&e->stream, &e->stream_len) != 0)
		return ml_entry_bad("cut short in an event");
	if (f & EVENT_SAME_TYPE)
		e->type = prev->type, e->type_len = prev->type_len;
	else if (take_bytes(c, (const void **)&e->type, &e->type_len) != 0)
		return ml_entry_bad("cut short in an event");
	if (decode_id(c, f, e, id, id16) != 0 ||
	    ((f & EVENT_META) && take_bytes(c, &e->meta, &e->meta_len)) ||
	    ((f & EVENT_DATA) && take_bytes(c, &e->data, &e->data_len)))
		return ml_entry_bad("cut short in an event");
	if ((f & EVENT_MADE) && e->id_len != 36)
		return ml_entry_bad("a made id that is not 36 bytes long");
	ml_entry_event_finish(e, f & EVENT_MADE, id);
	return 0;
}

/* The time of an entry whose first event's id holds it (ENTRY_TIME_BY_ID): 0, or -1. */
static int time_by_id(struct ml_entry *d)
{
	if (d->first_id16 == NULL)
		return ml_entry_bad("a time kept in a first id it does not have");
	d->time = (int64_t)((uint64_t)d->time + id_ms(d->first_id16));
	return 0;
}

static int decode2(struct ml_entry_cursor *c, size_t len, struct ml_entry *d)
{
	const uint8_t *flags = ml_entry_take(c, 1);
	uint64_t n_events = 1, n_expect = 0, time;
	if (flags == NULL ||
	    (!(*flags & ENTRY_SINGLE) &&
	     (take_varint(c, &n_events) != 0 || take_varint(c, &n_expect) != 0)) ||
	    take_varint(c, &time) != 0)
		return ml_entry_bad("shorter than its header");
	if (*flags & ~ENTRY_FLAGS)
		return ml_entry_bad("flags this moonlog does not know");
	/* Bound the counts by the bytes before allocating for them. */
	if (n_events > len / EVENT_MIN || n_expect > len / EXPECT_MIN)
		return ml_entry_bad("more events than bytes");
	if (n_events > ML_BATCH_MAX_EVENTS || n_expect > ML_BATCH_MAX_EVENTS)
		return ml_entry_bad("more events than a batch may hold");
	d->system = (*flags & ENTRY_SYSTEM) != 0;
	d->n_events = (size_t)n_events, d->n_expect = (size_t)n_expect;
	d->time = unzigzag(time);
	ml_entry_alloc(d);
	for (size_t i = 0; i < d->n_expect; i++)
		if (decode_expect(c, &d->expect[i]) != 0)
			return -1;
	uint8_t f = 0;
	for (size_t i = 0; i < d->n_events; i++) {
		const uint8_t *id16 = NULL;
		if (decode_event(c, &d->events[i], i ? &d->events[i - 1] : NULL, d->ids[i], &f,
				 &id16) != 0)
			return -1;
		if (i == 0)
			d->first_id16 = id16;
	}
	return *flags & ENTRY_TIME_BY_ID ? time_by_id(d) : 0;
}

int ml_entry_decode(const void *bytes, size_t len, struct ml_entry *d)
{
	struct ml_entry_cursor c = {bytes, len};
	memset(d, 0, offsetof(struct ml_entry, events_in)); /* ml_entry_alloc clears the rest */
	const uint8_t *format = ml_entry_take(&c, 1);
	if (format == NULL)
		return ml_entry_bad("shorter than its header");
	int rc;
	if (*format == FORMAT)
		rc = decode2(&c, len, d);
	else if (*format == 1)
		rc = ml_entry_decode1(&c, len, d);
	else
		return ml_entry_bad("an unknown format");
	if (rc == 0 && c.left)
		return ml_entry_bad("bytes after its last event");
	return rc;
}

void ml_entry_free(struct ml_entry *d)
{
	if (d->events != d->events_in)
		free(d->events), free(d->ids);
	if (d->expect != d->expect_in)
		free(d->expect);
	d->events = NULL, d->expect = NULL, d->ids = NULL;
	d->n_events = d->n_expect = 0;
}
