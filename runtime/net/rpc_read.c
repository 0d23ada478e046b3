/*
 * rpc_read.c - events out: the read method, and the encoding of an event that
 * every read and every subscription's delivery goes through (ml_rpc_event).
 * docs/protocol.md ("read") is the reference.
 */
#include <stdint.h>
#include <string.h>

#include <moonlog/diag.h>

#include "net/net_internal.h"
#include "net/ops.h"
#include "net/rpc_put.h"

/* ---- events out ---------------------------------------------------------- */

/*
 * Every event read or delivered goes through here, so it writes into space
 * reserved once with the writer's cursor functions instead of a checked append
 * per field (reading $all spent a quarter of the server's time in those checks).
 * Each key is written together with the header byte of the value after it, as
 * one constant block. position, version and time are always 64-bit (uint 64,
 * or int 64 for a time before 1970): one store each instead of a choice of
 * width, and the same values in msgpack as the shortest form, which every
 * reader decodes alike (the CLI, moonlog.client and the REPL through the
 * codec, moonlog-peerbench through ml_msgpack_frame; test_rpc_event).
 */

/* A str header and its bytes: names are at most 255 bytes (a fixstr or a str 8). */
static inline uint8_t *put_name(uint8_t *p, const char *s, uint8_t n)
{
	if (n <= 31) {
		*p++ = (uint8_t)(0xa0 | n);
	} else {
		*p++ = 0xd9;
		*p++ = n;
	}
	return ml_msgpack_write_bytes(p, s, n);
}

/* A part's msgpack bytes, copied: a call to memcpy beyond 64 bytes (data is often 100). */
static inline uint8_t *put_part(uint8_t *p, const uint8_t *bytes, uint32_t n)
{
	if (n == 0) {
		*p = 0xc0; /* nil */
		return p + 1;
	}
	if (n < 64)
		return ml_msgpack_write_bytes(p, bytes, n);
	memcpy(p, bytes, n);
	return p + n;
}

/* (inlined into read_one, the loop of a read's answer) */
static inline __attribute__((always_inline)) void
put_event(struct ml_buf *b, const struct ml_event *e, uint32_t deliveries)
{
	/* names are at most 255 bytes: bounding them is cheaper than adding them up */
	uint8_t *p = ml_msgpack_room(b, 128 + 3 * 255 + (size_t)e->data_len + e->meta_len);
	*p++ = deliveries ? 0x89 : 0x88; /* a map of 9 or 8 */
	p = be64(KEY(p, "\xa8position\xcf"), e->position);
	p = put_name(KEY(p, "\xa6stream"), e->stream, e->stream_len);
	p = be64(KEY(p, "\xa7version\xcf"), e->version);
	p = put_name(KEY(p, "\xa4type"), e->type, e->type_len);
	p = put_name(KEY(p, "\xa2id"), e->id, e->id_len);
	p = KEY(p, "\xa4time\xcf");
	if (__builtin_expect(e->time < 0, 0)) /* before 1970 */
		p[-1] = 0xd3;
	p = be64(p, (uint64_t)e->time);
	p = put_part(KEY(p, "\xa4"
			    "data"),
		     e->data, e->data_len);
	p = put_part(KEY(p, "\xa4meta"), e->meta, e->meta_len);
	if (deliveries)
		p = ml_msgpack_write_uint(KEY(p, "\xaa"
						 "deliveries"),
					  deliveries);
	ml_msgpack_done(b, p);
}

void ml_rpc_event(struct ml_buf *b, const struct ml_event *e, uint32_t deliveries)
{
	put_event(b, e, deliveries);
}

/*
 * A read that names the fields it wants gets each event as an array of those
 * values, in that order: no key names, and nothing it did not ask for (a page
 * of $all for a consumer that keeps position, stream and data is half the
 * bytes of the maps). The maps stay the default (docs/protocol.md).
 */
enum event_field { F_POSITION, F_STREAM, F_VERSION, F_TYPE, F_ID, F_TIME, F_DATA, F_META, F_N };

static const char *const field_names[F_N] = {"position", "stream", "version", "type",
					     "id",	 "time",   "data",    "meta"};

struct fields {
	uint8_t n, f[F_N];
};

/* The fields param: an array of distinct names of an event's fields. 0, or -1 with diag. */
static int parse_fields(struct ml_msgpack_reader *r, struct fields *out)
{
	uint32_t n, seen = 0;
	if (ml_msgpack_get_array(r, &n) != 0 || n == 0 || n > F_N)
		return ml_diag_set(ML_ERR_USAGE, "read: fields is an array of 1 to 8 of position, "
						 "stream, version, type, id, time, data, meta");
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kl, f = 0;
		if (ml_msgpack_get_str(r, &k, &kl) != 0)
			return ml_diag_set(ML_ERR_USAGE, "read: the fields are names (strings)");
		while (f < F_N &&
		       !(strlen(field_names[f]) == kl && memcmp(field_names[f], k, kl) == 0))
			f++;
		if (f == F_N)
			return ml_diag_set(
			    ML_ERR_USAGE,
			    "read: an event has no field %.*s (it has position, stream, "
			    "version, type, id, time, data, meta)",
			    (int)(kl > 64 ? 64 : kl), k);
		if (seen & (1u << f))
			return ml_diag_set(ML_ERR_USAGE, "read: the field %s is asked for twice",
					   field_names[f]);
		seen |= 1u << f;
		out->f[i] = (uint8_t)f;
	}
	out->n = (uint8_t)n;
	return 0;
}

/* An event as the array of the fields asked for (an array of at most 8: one byte). */
static void put_fields(struct ml_buf *b, const struct ml_event *e, const struct fields *fs)
{
	uint8_t *p = ml_msgpack_room(b, 64 + 3 * 255 + (size_t)e->data_len + e->meta_len);
	*p++ = (uint8_t)(0x90 | fs->n);
	for (unsigned i = 0; i < fs->n; i++) {
		switch (fs->f[i]) {
		case F_POSITION:
			*p++ = 0xcf, p = be64(p, e->position);
			break;
		case F_STREAM:
			p = put_name(p, e->stream, e->stream_len);
			break;
		case F_VERSION:
			*p++ = 0xcf, p = be64(p, e->version);
			break;
		case F_TYPE:
			p = put_name(p, e->type, e->type_len);
			break;
		case F_ID:
			p = put_name(p, e->id, e->id_len);
			break;
		case F_TIME:
			*p++ = e->time >= 0 ? 0xcf : 0xd3, p = be64(p, (uint64_t)e->time);
			break;
		case F_DATA:
			p = put_part(p, e->data, e->data_len);
			break;
		default:
			p = put_part(p, e->meta, e->meta_len);
		}
	}
	ml_msgpack_done(b, p);
}

/* ---- read ---------------------------------------------------------------- */

/*
 * A read's answer goes out while it is being written: once the count is
 * known (it is, up front: positions are dense and a stream's versions too),
 * every STREAM_BYTES of events are handed to the socket, so the reader
 * decodes the first events while the server encodes the rest. A read that
 * fails after part of its answer went out cannot take it back: the
 * connection is closed instead (docs/protocol.md).
 */
#define STREAM_BYTES (64u << 10)

struct read_ctx {
	struct ml_conn *c;
	size_t send_at;		   /* c->out.len at which to hand the socket what there is */
	const struct fields *only; /* the fields asked for, or NULL for the whole map */
};

static int read_one(const struct ml_event *e, void *arg)
{
	struct read_ctx *rc = arg;
	if (rc->only)
		put_fields(&rc->c->out, e, rc->only);
	else
		put_event(&rc->c->out, e, 0);
	if (rc->c->out.len >= rc->send_at) {
		ml_conn_send_early(rc->c);
		rc->send_at = rc->c->out.len + STREAM_BYTES;
	}
	return 0;
}

int ml_rpc_read(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	const char *stream;
	uint32_t slen;
	struct ml_op_read rd = {0};
	if (ml_msgpack_get_str(r, &stream, &slen) != 0)
		return -1;
	if ((np > 1 && ml_msgpack_get_nil(r) != 0 && ml_msgpack_get_uint(r, &rd.from) != 0) ||
	    (np > 2 && ml_msgpack_get_nil(r) != 0 && ml_msgpack_get_uint(r, &rd.limit) != 0) ||
	    (np > 3 && ml_msgpack_get_nil(r) != 0 && ml_msgpack_get_bool(r, &rd.backwards) != 0))
		return ml_rpc_reply_err(
		    c, msgid, ML_ERR_USAGE, 0,
		    "read(stream, from, limit, backwards, fields): from and limit are "
		    "whole numbers, backwards a boolean");
	struct fields only;
	int some = np > 4 && ml_msgpack_get_nil(r) != 0;
	if (some && parse_fields(r, &only) != 0)
		return ml_rpc_reply_diag(c, msgid);
	if (!(slen == 4 && memcmp(stream, "$all", 4) == 0))
		rd.stream = stream, rd.stream_len = slen;
	if (ml_op_read_plan(c->srv, &rd) != 0)
		return ml_rpc_reply_diag(c, msgid);
	size_t start = c->out.len;
	ml_rpc_reply_ok(c, msgid);
	size_t count_at = c->out.len;
	if (rd.exact) {
		ml_msgpack_put_array(&c->out, (uint32_t)rd.count);
	} else { /* removed events are left out: the count is written once known (array 32) */
		ml_msgpack_done(&c->out,
				ml_msgpack_write_tagged(ml_msgpack_room(&c->out, 5), 0xdd, 0, 4));
	}
	/* the first piece small, so the reader starts early; then larger ones (an inexact count
	 * goes out whole, once known) */
	struct read_ctx rc = {c, rd.exact ? c->out.len + STREAM_BYTES / 4 : SIZE_MAX,
			      some ? &only : NULL};
	int64_t n = ml_op_read(c->srv, &rd, read_one, &rc);
	if (n >= 0 && !rd.exact) {
		uint8_t be[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
				 (uint8_t)n};
		memcpy(c->out.data + count_at + 1, be, 4);
	}
	if (n >= 0)
		return 0;
	if (c->out_off <= start) { /* nothing of the answer went out: take it back, say why */
		c->out.len = start;
		return ml_rpc_reply_diag(c, msgid);
	}
	ml_server_log_line(c->srv, "a read failed half-way; closing its connection: %s",
			   ml_diag_last());
	ml_conn_close(c);
	return 0;
}
