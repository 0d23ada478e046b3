/*
 * entry.c - a batch as a journal entry: the bytes a replicated writer publishes
 * and every node hands to ml_log_apply (see log_writer.h).
 *
 * An entry holds what a batch is before the log has looked at it: its events
 * (with the ids made for those that had none, marked as made), its expected
 * versions, whether it may name system streams, and the time its submitter
 * gave it. Not its positions or versions: each node's apply finds those, the
 * same on every node. All integers little-endian:
 *
 *   0  u8  format (1)       1 u8 flags (1: system)       2 u16 zero
 *   4  u32 events           8 u32 expected versions      12 i64 time, ms
 *   20 per expected version: u8 stream length, i64 expected, stream
 *      per event: u8 flags (1: the id was made), u8 stream, type and id
 *      lengths, u32 meta length, u32 data length, stream, type, id, meta, data
 *
 * Nothing else may follow. Decoding checks only the shape; what the batch
 * holds is checked by the same code as a local append's (append.c, store.c).
 */
#include <stdlib.h>
#include <string.h>

#include <moonlog/util.h>

#include "log/entry.h"
#include "log/record.h"

#define FORMAT	   1
#define HEAD	   20
#define EXPECT_MIN 9  /* an expected version's fixed part */
#define EVENT_MIN  12 /* an event's fixed part */

enum { ENTRY_SYSTEM = 1, EVENT_MADE_ID = 1 };

static void put8(struct ml_buf *b, uint8_t v)
{
	ml_buf_add(b, &v, 1);
}

static void put32(struct ml_buf *b, uint32_t v)
{
	uint8_t p[4];
	ml_put32(p, v);
	ml_buf_add(b, p, 4);
}

static void put64(struct ml_buf *b, uint64_t v)
{
	uint8_t p[8];
	ml_put64(p, v);
	ml_buf_add(b, p, 8);
}

void ml_log_entry_encode(const struct ml_append *req, char (*ids)[37], int64_t time,
			 struct ml_buf *out)
{
	put8(out, FORMAT);
	put8(out, req->system ? ENTRY_SYSTEM : 0);
	put8(out, 0), put8(out, 0);
	put32(out, (uint32_t)req->n_events);
	put32(out, (uint32_t)req->n_expect);
	put64(out, (uint64_t)time);
	for (size_t i = 0; i < req->n_expect; i++) {
		const struct ml_expect_in *x = &req->expect[i];
		put8(out, (uint8_t)x->stream_len);
		put64(out, (uint64_t)x->expected);
		ml_buf_add(out, x->stream, x->stream_len);
	}
	for (size_t i = 0; i < req->n_events; i++) {
		const struct ml_event_in *e = &req->events[i];
		int made = e->id_len == 0;
		put8(out, made ? EVENT_MADE_ID : 0);
		put8(out, (uint8_t)e->stream_len);
		put8(out, (uint8_t)e->type_len);
		put8(out, made ? 36 : (uint8_t)e->id_len);
		put32(out, (uint32_t)e->meta_len);
		put32(out, (uint32_t)e->data_len);
		ml_buf_add(out, e->stream, e->stream_len);
		ml_buf_add(out, e->type, e->type_len);
		ml_buf_add(out, made ? ids[i] : e->id, made ? 36 : e->id_len);
		if (e->meta_len)
			ml_buf_add(out, e->meta, e->meta_len);
		if (e->data_len)
			ml_buf_add(out, e->data, e->data_len);
	}
}

/* A cursor over the entry's bytes: each take fails once past the end. */
struct cursor {
	const uint8_t *p;
	size_t left;
};

static const uint8_t *take(struct cursor *c, size_t n)
{
	if (n > c->left)
		return NULL;
	const uint8_t *p = c->p;
	c->p += n, c->left -= n;
	return p;
}

static int bad(const char *why)
{
	return ml_diag_set(ML_ERR_CORRUPT, "it is not a batch this moonlog can read (%s)", why);
}

static int decode_expect(struct cursor *c, struct ml_expect_in *x)
{
	const uint8_t *h = take(c, EXPECT_MIN);
	if (h == NULL)
		return bad("cut short in an expected version");
	x->stream_len = h[0];
	x->expected = (int64_t)ml_le64(h + 1);
	if ((x->stream = (const char *)take(c, x->stream_len)) == NULL)
		return bad("cut short in an expected version");
	return 0;
}

static int decode_event(struct cursor *c, struct ml_event_in *e, char id[37])
{
	const uint8_t *h = take(c, EVENT_MIN);
	if (h == NULL)
		return bad("cut short in an event");
	int made = h[0] & EVENT_MADE_ID;
	e->stream_len = h[1], e->type_len = h[2], e->id_len = h[3];
	e->meta_len = ml_le32(h + 4), e->data_len = ml_le32(h + 8);
	if (made && e->id_len != 36)
		return bad("a made id that is not 36 bytes long");
	const uint8_t *body = take(c, e->stream_len + e->type_len + e->id_len);
	e->meta = take(c, e->meta_len);
	e->data = take(c, e->data_len);
	if (body == NULL || e->meta == NULL || e->data == NULL)
		return bad("cut short in an event");
	e->stream = (const char *)body;
	e->type = e->stream + e->stream_len;
	e->id = e->type + e->type_len;
	if (made) { /* as if the client gave none: the log makes it, here with these bytes */
		memcpy(id, e->id, 36);
		id[36] = '\0';
		e->id = NULL, e->id_len = 0;
	}
	if (e->meta_len == 0)
		e->meta = NULL;
	if (e->data_len == 0)
		e->data = NULL;
	return 0;
}

int ml_entry_decode(const void *bytes, size_t len, struct ml_entry *d)
{
	struct cursor c = {bytes, len};
	memset(d, 0, sizeof(*d));
	const uint8_t *h = take(&c, HEAD);
	if (h == NULL)
		return bad("shorter than its header");
	if (h[0] != FORMAT)
		return bad("an unknown format");
	d->system = (h[1] & ENTRY_SYSTEM) != 0;
	d->n_events = ml_le32(h + 4);
	d->n_expect = ml_le32(h + 8);
	d->time = (int64_t)ml_le64(h + 12);
	/* Bound the counts by the bytes before allocating for them. */
	if (d->n_events > len / EVENT_MIN || d->n_expect > len / EXPECT_MIN)
		return bad("more events than bytes");
	d->events = ml_xcalloc(d->n_events ? d->n_events : 1, sizeof(*d->events));
	d->expect = ml_xcalloc(d->n_expect ? d->n_expect : 1, sizeof(*d->expect));
	d->ids = ml_xcalloc(d->n_events ? d->n_events : 1, sizeof(*d->ids));
	for (size_t i = 0; i < d->n_expect; i++)
		if (decode_expect(&c, &d->expect[i]) != 0)
			return -1;
	for (size_t i = 0; i < d->n_events; i++)
		if (decode_event(&c, &d->events[i], d->ids[i]) != 0)
			return -1;
	if (c.left)
		return bad("bytes after its last event");
	return 0;
}

void ml_entry_free(struct ml_entry *d)
{
	free(d->events);
	free(d->expect);
	free(d->ids);
	memset(d, 0, sizeof(*d));
}
