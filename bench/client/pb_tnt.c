/*
 * pb_tnt.c - Tarantool over its binary protocol (iproto), with msgpack-c.
 *
 * A request is a 5-byte length, a header map {REQUEST_TYPE, SYNC} and a body
 * map. Events are INSERTs of [id, key, amount, note] into space 512 ("ev",
 * a memtx TREE index on id, see bench/peers/tarantool.lua); the reader SELECTs
 * chunks with iterator GT; the fold and the live subscription are CALLs of the
 * Lua functions the configuration file defines (ml_fold, ml_wait).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include <moonlog/msgpack.h>
#include "pb.h"

enum {
	T_SELECT = 1,
	T_INSERT = 2,
	T_CALL = 10,
	K_CODE = 0x00,
	K_SYNC = 0x01,
	K_SPACE = 0x10,
	K_INDEX = 0x11,
	K_LIMIT = 0x12,
	K_ITERATOR = 0x14,
	K_KEY = 0x20,
	K_TUPLE = 0x21,
	K_FUNCTION = 0x22,
	K_DATA = 0x30,
	K_ERROR = 0x31,
	SPACE_EV = 512,
	ITER_GT = 6,
};

struct tstate {
	uint64_t sync, last, got;
	msgpack_unpacked res;
};

static int to_buf(void *data, const char *p, size_t n)
{
	ml_buf_add(data, p, n);
	return 0;
}

/* Starts a request: the length is patched by end_req; the body map follows. */
static size_t begin_req(struct pb_conn *c, msgpack_packer *pk, int type, int body_keys)
{
	struct tstate *st = c->state;
	size_t at = c->out.len;
	ml_buf_add(&c->out, "\xce\0\0\0\0", 5);
	msgpack_packer_init(pk, &c->out, to_buf);
	msgpack_pack_map(pk, 2);
	msgpack_pack_uint8(pk, K_CODE);
	msgpack_pack_uint8(pk, (uint8_t)type);
	msgpack_pack_uint8(pk, K_SYNC);
	msgpack_pack_uint64(pk, ++st->sync);
	msgpack_pack_map(pk, (size_t)body_keys);
	return at;
}

static void end_req(struct pb_conn *c, size_t at)
{
	uint32_t n = (uint32_t)(c->out.len - at - 5);
	unsigned char *p = (unsigned char *)c->out.data + at + 1;
	p[0] = (unsigned char)(n >> 24), p[1] = (unsigned char)(n >> 16);
	p[2] = (unsigned char)(n >> 8), p[3] = (unsigned char)n;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static const msgpack_object *map_get(const msgpack_object *m, uint64_t key)
{
	for (uint32_t i = 0; m->type == MSGPACK_OBJECT_MAP && i < m->via.map.size; i++)
		if (m->via.map.ptr[i].key.via.u64 == key)
			return &m->via.map.ptr[i].val;
	return NULL;
}

/* One response off c->in; its body's DATA in *data (or NULL). 1, 0 (more), -1. */
static int response(struct pb_conn *c, const msgpack_object **data)
{
	struct tstate *st = c->state;
	const unsigned char *b = (const unsigned char *)pb_in(c);
	if (pb_avail(c) < 5)
		return 0;
	size_t n = (size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4], off = 0;
	if (pb_avail(c) < 5 + n)
		return 0;
	const char *p = (const char *)b + 5;
	c->in_off += 5 + n;
	if (msgpack_unpack_next(&st->res, p, n, &off) != MSGPACK_UNPACK_SUCCESS)
		return pb_fail("tarantool: a response header that does not parse");
	const msgpack_object *code = map_get(&st->res.data, K_CODE);
	uint64_t status = code ? code->via.u64 : 0;
	if (off < n && msgpack_unpack_next(&st->res, p, n, &off) != MSGPACK_UNPACK_SUCCESS)
		return pb_fail("tarantool: a response body that does not parse");
	const msgpack_object *err = map_get(&st->res.data, K_ERROR);
	if (status != 0)
		return pb_fail("tarantool: %.*s", err ? (int)err->via.str.size : 7,
			       err ? err->via.str.ptr : "failure");
	*data = map_get(&st->res.data, K_DATA);
	return 1;
}

static int wait_response(struct pb_conn *c, const msgpack_object **data)
{
	int r;
	while ((r = response(c, data)) == 0)
		if (pb_fill(c) != 0)
			return -1;
	return r < 0 ? -1 : 0;
}

static void call_req(struct pb_conn *c, const char *fn, int nargs, const uint64_t *args)
{
	msgpack_packer pk;
	size_t at = begin_req(c, &pk, T_CALL, 2);
	msgpack_pack_uint8(&pk, K_FUNCTION);
	pack_str(&pk, fn, strlen(fn));
	msgpack_pack_uint8(&pk, K_TUPLE);
	msgpack_pack_array(&pk, (size_t)nargs);
	for (int i = 0; i < nargs; i++)
		msgpack_pack_uint64(&pk, args[i]);
	end_req(c, at);
}

static int call(struct pb_conn *c, const char *fn, const msgpack_object **data)
{
	call_req(c, fn, 0, NULL);
	return pb_flush(c) == 0 ? wait_response(c, data) : -1;
}

static int t_hello(struct pb_conn *c)
{
	struct tstate *st = calloc(1, sizeof(*st));
	msgpack_unpacked_init(&st->res);
	c->state = st;
	while (pb_avail(c) < 128) /* the greeting: version and salt */
		if (pb_fill(c) != 0)
			return -1;
	c->in_off += 128;
	return 0;
}

static int t_reset(struct pb_conn *c, const struct pb_opts *o)
{
	(void)o;
	const msgpack_object *data;
	return call(c, "ml_reset", &data);
}

static void t_append(struct pb_conn *c, uint64_t seq)
{
	msgpack_packer pk;
	char key[32];
	int kn = pb_key(seq, key);
	size_t at = begin_req(c, &pk, T_INSERT, 2);
	msgpack_pack_uint8(&pk, K_SPACE);
	msgpack_pack_uint16(&pk, SPACE_EV);
	msgpack_pack_uint8(&pk, K_TUPLE);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint64(&pk, seq + 1);
	pack_str(&pk, key, (size_t)kn);
	msgpack_pack_uint64(&pk, pb_amount(seq));
	pack_str(&pk, pb_note, PB_NOTE_LEN);
	end_req(c, at);
}

static int t_acked(struct pb_conn *c)
{
	const msgpack_object *data;
	return response(c, &data);
}

static void select_req(struct pb_conn *c, uint64_t after, int chunk)
{
	msgpack_packer pk;
	size_t at = begin_req(c, &pk, T_SELECT, 5);
	msgpack_pack_uint8(&pk, K_SPACE);
	msgpack_pack_uint16(&pk, SPACE_EV);
	msgpack_pack_uint8(&pk, K_INDEX);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint8(&pk, K_LIMIT);
	msgpack_pack_uint32(&pk, (uint32_t)chunk);
	msgpack_pack_uint8(&pk, K_ITERATOR);
	msgpack_pack_uint8(&pk, ITER_GT);
	msgpack_pack_uint8(&pk, K_KEY);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_uint64(&pk, after);
	end_req(c, at);
}

/* Counts an array of tuples and keeps the id of the last one. */
static uint64_t tuples(const msgpack_object *a, uint64_t *last)
{
	if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size == 0)
		return 0;
	const msgpack_object *t = &a->via.array.ptr[a->via.array.size - 1];
	*last = t->via.array.ptr[0].via.u64;
	return a->via.array.size;
}

/*
 * A SELECT's answer, framed by its length: counts the tuples and keeps the id
 * of the last, walking the rest without decoding it (as the other clients read
 * only what they need). 1 with *count, 0 for more bytes, -1; an error answer
 * goes through response(), which prints it.
 */
static int select_answer(struct pb_conn *c, uint64_t *count, uint64_t *last)
{
	struct tstate *st = c->state;
	const uint8_t *b = (const uint8_t *)pb_in(c);
	if (pb_avail(c) < 5)
		return 0;
	size_t n = (size_t)b[1] << 24 | (size_t)b[2] << 16 | (size_t)b[3] << 8 | b[4], off = 0;
	if (pb_avail(c) < 5 + n)
		return 0;
	const uint8_t *p = b + 5, *end = b + 5 + n;
	if (msgpack_unpack_next(&st->res, (const char *)p, n, &off) != MSGPACK_UNPACK_SUCCESS)
		return pb_fail("tarantool: a response header that does not parse");
	const msgpack_object *code = map_get(&st->res.data, K_CODE);
	if (code && code->via.u64 != 0) {
		const msgpack_object *data;
		return response(c, &data) < 0 ? -1 : pb_fail("tarantool: the select failed");
	}
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, p + off, (size_t)(end - p) - off);
	uint32_t keys, k = 0, fields;
	uint64_t key, id = 0;
	int ok = ml_msgpack_get_map(&r, &keys) == 0;
	for (uint32_t i = 0; ok && i < keys; i++) {
		ok = ml_msgpack_get_uint(&r, &key) == 0;
		if (ok && key != K_DATA) {
			ok = ml_msgpack_skip(&r, NULL, NULL) == 0;
			continue;
		}
		ok = ok && ml_msgpack_get_array(&r, &k) == 0;
		for (uint32_t t = 0; ok && t + 1 < k; t++)
			ok = ml_msgpack_skip(&r, NULL, NULL) == 0;
		if (ok && k > 0)
			ok = ml_msgpack_get_array(&r, &fields) == 0 &&
			     ml_msgpack_get_uint(&r, &id) == 0;
		break;
	}
	if (!ok)
		return pb_fail("tarantool: a select answer that does not parse");
	c->in_off += 5 + n;
	*count = k;
	if (k > 0)
		*last = id;
	return 1;
}

static int t_read_all(struct pb_conn *c, const struct pb_opts *o)
{
	uint64_t n = o->count;
	int chunk = o->chunk;
	uint64_t last = 0;
	for (uint64_t got = 0; got < n;) {
		uint64_t k = 0;
		int r;
		select_req(c, last, chunk);
		if (pb_flush(c) != 0)
			return -1;
		while ((r = select_answer(c, &k, &last)) == 0)
			if (pb_fill(c) != 0)
				return -1;
		if (r < 0)
			return -1;
		if (k == 0)
			return pb_fail("tarantool: the space ended after %llu events",
				       (unsigned long long)got);
		got += k;
	}
	return 0;
}

static int t_fold(struct pb_conn *c, const char *arg, struct pb_fold *out)
{
	const msgpack_object *data = NULL;
	if (call(c, "ml_fold", &data) != 0)
		return -1;
	if (data == NULL || data->type != MSGPACK_OBJECT_ARRAY || data->via.array.size != 1 ||
	    data->via.array.ptr[0].type != MSGPACK_OBJECT_MAP)
		return pb_fail("tarantool: ml_fold did not return one map");
	const msgpack_object_map *m = &data->via.array.ptr[0].via.map;
	for (uint32_t i = 0; i < m->size; i++) {
		out->total += m->ptr[i].val.via.u64;
		out->keys++;
	}
	return 0;
}

static void wait_req(struct pb_conn *c)
{
	struct tstate *st = c->state;
	uint64_t args[2] = {st->last, 10};
	call_req(c, "ml_wait", 2, args);
}

static int t_sub_open(struct pb_conn *c)
{
	wait_req(c);
	return pb_flush(c);
}

/* ml_wait answers [[tuple, ...]] with the events after the last one seen. */
static int t_sub_recv(struct pb_conn *c, uint64_t *got)
{
	struct tstate *st = c->state;
	const msgpack_object *data = NULL;
	int r;
	while ((r = response(c, &data)) == 1) {
		if (data && data->type == MSGPACK_OBJECT_ARRAY && data->via.array.size == 1)
			st->got += tuples(&data->via.array.ptr[0], &st->last);
		wait_req(c);
	}
	*got = st->got;
	return r < 0 ? -1 : pb_write_some(c);
}

const struct pb_proto pb_tnt = {
    .name = "tarantool",
    .hello = t_hello,
    .reset = t_reset,
    .append = t_append,
    .acked = t_acked,
    .read_all = t_read_all,
    .fold = t_fold,
    .sub_open = t_sub_open,
    .sub_recv = t_sub_recv,
};
