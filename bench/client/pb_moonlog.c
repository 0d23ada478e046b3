/*
 * pb_moonlog.c - moonlog over its msgpack-RPC port, with msgpack-c, so that
 * moonlog is measured by the same driver as every peer.
 *
 * Requests are [0, msgid, method, params]; answers [1, msgid, error, result]
 * and subscriptions' events [2, "event", [sub_id, event]]. msgpack-RPC has no
 * length prefix, so a message is framed by walking it (moonlog's own walker,
 * moonlog/msgpack.h, as its command line does), resuming
 * where the walk stopped when a long answer arrives in pieces; like the other
 * clients, this one reads only what it needs (the kind of message, an error,
 * how many events) and decodes no payload. Events
 * are appends of {type = "Deposited", data = <the 100-byte payload>} to the
 * stream named by the key; the reader pages $all with `read`, the consumer
 * subscribes to $all from position 1, the live subscription to "*" from now.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include <moonlog/msgpack.h>
#include "pb.h"

struct mstate {
	uint32_t msgid;
	struct ml_msgpack_walk walk; /* of the message arriving */
	uint64_t got;
};

static int to_buf(void *data, const char *p, size_t n)
{
	ml_buf_add(data, p, n);
	return 0;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* Starts [0, msgid, method, [...]]; the caller packs the `nparams` params. */
static void request(struct pb_conn *c, msgpack_packer *pk, const char *method, size_t nparams)
{
	struct mstate *st = c->state;
	msgpack_packer_init(pk, &c->out, to_buf);
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint8(pk, 0);
	msgpack_pack_uint32(pk, ++st->msgid);
	pack_str(pk, method, strlen(method));
	msgpack_pack_array(pk, nparams);
}

/* The next whole message off c->in: 1, 0 when more bytes are needed, -1. */
static int next_msg(struct pb_conn *c, struct ml_msgpack_reader *m)
{
	struct mstate *st = c->state;
	const uint8_t *p = (const uint8_t *)pb_in(c);
	size_t len;
	int r = ml_msgpack_frame_resume(p, pb_avail(c), &st->walk, &len);
	if (r < 0)
		return pb_fail("moonlog: the server sent bytes that are not msgpack");
	if (r > 0)
		return 0;
	st->walk = (struct ml_msgpack_walk){0, 0};
	ml_msgpack_reader_init(m, p, len);
	c->in_off += len;
	return 1;
}

/* The error of an answer, printed (decoding the error map is rare enough for msgpack-c). */
static int refused(const uint8_t *p, const uint8_t *end)
{
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	const char *why = "the server refused a request";
	int wn = (int)strlen(why);
	if (msgpack_unpack_next(&u, (const char *)p, (size_t)(end - p), NULL) ==
		MSGPACK_UNPACK_SUCCESS &&
	    u.data.type == MSGPACK_OBJECT_MAP)
		for (uint32_t i = 0; i < u.data.via.map.size; i++) {
			const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
			if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 7 &&
			    memcmp(kv->key.via.str.ptr, "message", 7) == 0 &&
			    kv->val.type == MSGPACK_OBJECT_STR)
				why = kv->val.via.str.ptr, wn = (int)kv->val.via.str.size;
		}
	pb_fail("moonlog: %.*s", wn, why);
	msgpack_unpacked_destroy(&u);
	return -1;
}

/*
 * 1 for an answer (*result at its result), 2 for an event notification, 0 for
 * anything else; an error answer is printed and gives -1.
 */
static int kind(const struct ml_msgpack_reader *msg, const uint8_t **result)
{
	struct ml_msgpack_reader m = *msg;
	uint32_t n, ml;
	uint64_t type, msgid;
	const char *method;
	if (ml_msgpack_get_array(&m, &n) != 0 || n < 3 || ml_msgpack_get_uint(&m, &type) != 0)
		return 0;
	if (type == 2)
		return ml_msgpack_get_str(&m, &method, &ml) == 0 && ml == 5 &&
			       memcmp(method, "event", 5) == 0
			   ? 2
			   : 0;
	if (type != 1 || n != 4 || ml_msgpack_get_uint(&m, &msgid) != 0)
		return 0;
	if (ml_msgpack_get_nil(&m) != 0) /* the error is not nil */
		return refused(m.p, m.end);
	*result = m.p;
	return 1;
}

/* Waits for the answer to the request just sent; its result at *result. */
static int wait_answer(struct pb_conn *c, struct ml_msgpack_reader *m, const uint8_t **result)
{
	for (;;) {
		int r = next_msg(c, m);
		if (r < 0)
			return -1;
		if (r == 0) {
			if (pb_fill(c) != 0)
				return -1;
			continue;
		}
		r = kind(m, result);
		if (r != 0)
			return r == 1 ? 0 : -1;
	}
}

static int m_hello(struct pb_conn *c)
{
	struct mstate *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return pb_fail("moonlog: out of memory");
	c->state = st;
	msgpack_packer pk;
	struct ml_msgpack_reader m;
	const uint8_t *result;
	request(c, &pk, "stats", 0);
	return pb_flush(c) == 0 ? wait_answer(c, &m, &result) : -1;
}

static int m_reset(struct pb_conn *c, const struct pb_opts *o)
{
	(void)o;
	(void)c; /* the harness gives every workload a fresh server: the log is empty */
	return 0;
}

static void m_append(struct pb_conn *c, uint64_t seq)
{
	msgpack_packer pk;
	char key[32];
	uint8_t payload[128];
	size_t n = pb_payload(seq, payload);
	request(c, &pk, "append", 2);
	pack_str(&pk, key, (size_t)pb_key(seq, key));
	msgpack_pack_map(&pk, 2);
	pack_str(&pk, "type", 4);
	pack_str(&pk, "Deposited", 9);
	pack_str(&pk, "data", 4);
	ml_buf_add(&c->out, payload, n);
}

static int m_acked(struct pb_conn *c)
{
	struct ml_msgpack_reader m;
	const uint8_t *result;
	int r;
	while ((r = next_msg(c, &m)) == 1)
		if ((r = kind(&m, &result)) != 0)
			return r == 1 ? 1 : -1;
	return r;
}

/* The fields param of read: an array of the names in "a,b,c". */
static void pack_fields(msgpack_packer *pk, const char *list)
{
	uint32_t n = 1;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	msgpack_pack_array(pk, n);
	for (const char *p = list;; p++) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		pack_str(pk, p, len);
		if (end == NULL)
			return;
		p = end;
	}
}

static int m_read_all(struct pb_conn *c, const struct pb_opts *o)
{
	uint64_t n = o->count, from = 1;
	for (uint64_t got = 0; got < n;) {
		msgpack_packer pk;
		struct ml_msgpack_reader m;
		const uint8_t *events;
		uint32_t k;
		request(c, &pk, "read", o->fields ? 5 : 3);
		pack_str(&pk, "$all", 4);
		msgpack_pack_uint64(&pk, from);
		msgpack_pack_int(&pk, o->chunk);
		if (o->fields) {
			msgpack_pack_nil(&pk);
			pack_fields(&pk, o->fields);
		}
		if (pb_flush(c) != 0 || wait_answer(c, &m, &events) != 0)
			return -1;
		struct ml_msgpack_reader r;
		ml_msgpack_reader_init(&r, events, (size_t)(m.end - events));
		if (ml_msgpack_get_array(&r, &k) != 0 || k == 0)
			return pb_fail("moonlog: the log ended after %llu events",
				       (unsigned long long)got);
		got += k;
		from += k;
	}
	return 0;
}

/* The consumer: one subscription to $all from position 1, events counted as they come. */
static int m_consume_all(struct pb_conn *c, uint64_t n)
{
	msgpack_packer pk;
	struct ml_msgpack_reader m;
	const uint8_t *result;
	request(c, &pk, "subscribe", 2);
	pack_str(&pk, "$all", 4);
	msgpack_pack_uint8(&pk, 1);
	if (pb_flush(c) != 0 || wait_answer(c, &m, &result) != 0)
		return -1;
	for (uint64_t got = 0; got < n;) {
		int r = next_msg(c, &m);
		if (r < 0 || (r == 0 && pb_fill(c) != 0))
			return -1;
		if (r == 1 && kind(&m, &result) == 2)
			got++;
	}
	return 0;
}

static int m_sub_open(struct pb_conn *c)
{
	msgpack_packer pk;
	struct ml_msgpack_reader m;
	const uint8_t *result;
	request(c, &pk, "subscribe", 2);
	pack_str(&pk, "*", 1);
	msgpack_pack_nil(&pk);
	return pb_flush(c) == 0 ? wait_answer(c, &m, &result) : -1;
}

static int m_sub_recv(struct pb_conn *c, uint64_t *got)
{
	struct mstate *st = c->state;
	struct ml_msgpack_reader m;
	const uint8_t *result;
	int r;
	while ((r = next_msg(c, &m)) == 1)
		if (kind(&m, &result) == 2)
			st->got++;
	*got = st->got;
	return r < 0 ? -1 : 0;
}

const struct pb_proto pb_moonlog = {
    .name = "moonlog",
    .hello = m_hello,
    .reset = m_reset,
    .append = m_append,
    .acked = m_acked,
    .read_all = m_read_all,
    .consume_all = m_consume_all,
    .sub_open = m_sub_open,
    .sub_recv = m_sub_recv,
};
