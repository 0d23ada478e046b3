/*
 * rpc.c - the msgpack-RPC methods: [0, msgid, method, params] in,
 * [1, msgid, error, result] out, and [2, "event", [sub_id, event]]
 * notifications for subscriptions. docs/protocol.md is the reference.
 *
 * An error is a map {code = "conflict" | "bad_request" | ..., message = "..."}
 * (plus actual_version on a conflict). A message that is not a request at all
 * (valid msgpack, wrong shape) is answered with an `error` notification and
 * the connection goes on; bytes that are not msgpack close it (conn.c).
 *
 * Each method is a row of methods[] at the end: its name, its function, the
 * bounds of its params, whether it is admin-only or allowed before auth, and
 * its usage. A new method is a function and a row (and docs/protocol.md).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moonlog/diag.h>

#include "net/ops.h"
#include "net/rpc_put.h"

static void reply_head(struct ml_conn *c, uint64_t msgid)
{
	ml_msgpack_put_array(&c->out, 4);
	ml_msgpack_put_uint(&c->out, 1);
	ml_msgpack_put_uint(&c->out, msgid);
}

void ml_rpc_reply_ok(struct ml_conn *c, uint64_t msgid)
{
	reply_head(c, msgid);
	ml_msgpack_put_nil(&c->out); /* then the caller writes the result */
}

/* An error answer. Returns 0, so that a method can `return ml_rpc_reply_err(...)`: it has answered.
 */
int ml_rpc_reply_err(struct ml_conn *c, uint64_t msgid, enum ml_err code, int64_t actual,
		     const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_head(c, msgid);
	ml_msgpack_put_map(&c->out, code == ML_ERR_CONFLICT ? 3 : 2);
	ml_msgpack_put_cstr(&c->out, "code");
	ml_msgpack_put_cstr(&c->out, ml_err_name(code));
	ml_msgpack_put_cstr(&c->out, "message");
	ml_msgpack_put_cstr(&c->out, msg);
	if (code == ML_ERR_CONFLICT) {
		ml_msgpack_put_cstr(&c->out, "actual_version");
		ml_msgpack_put_int(&c->out, actual);
	}
	ml_msgpack_put_nil(&c->out);
	c->srv->errors++;
	return 0;
}

int ml_rpc_reply_diag(struct ml_conn *c, uint64_t msgid)
{
	return ml_rpc_reply_err(c, msgid, ml_diag_code() ? ml_diag_code() : ML_ERR_USAGE, 0, "%s",
				ml_diag_last());
}

void ml_rpc_notify_error(struct ml_conn *c, const char *why)
{
	ml_msgpack_put_array(&c->out, 3);
	ml_msgpack_put_uint(&c->out, 2);
	ml_msgpack_put_cstr(&c->out, "error");
	ml_msgpack_put_array(&c->out, 1);
	ml_msgpack_put_cstr(&c->out, why);
	c->srv->errors++;
}

/* ---- append ------------------------------------------------------------- */

static int key_is(const char *k, uint32_t n, const char *want)
{
	return strlen(want) == n && memcmp(k, want, n) == 0;
}

enum { KEY_TYPE = 1, KEY_ID = 2, KEY_DATA = 4, KEY_META = 8 };

/* Which of the event's own keys k is (a bit), or 0 for another key. (Compared with
 * memcmp of a constant size, which the compiler makes one load and compare.) */
static unsigned event_key(const char *k, uint32_t n)
{
	if (n == 2)
		return memcmp(k, "id", 2) == 0 ? KEY_ID : 0;
	if (n != 4)
		return 0;
	return memcmp(k, "type", 4) == 0   ? KEY_TYPE
	       : memcmp(k, "data", 4) == 0 ? KEY_DATA
	       : memcmp(k, "meta", 4) == 0 ? KEY_META
					   : 0;
}

/* One event map: type (required), data, meta (a map), id; each at most once. */
static int parse_event(struct ml_msgpack_reader *r, struct ml_event_in *e, uint32_t i)
{
	uint32_t n;
	unsigned seen = 0;
	if (ml_msgpack_get_map(r, &n) != 0)
		return ml_diag_set(ML_ERR_USAGE, "event %u is not a map {type=, data=, meta=, id=}",
				   i + 1);
	for (uint32_t k = 0; k < n; k++) {
		const char *key, *s = NULL;
		uint32_t klen, slen = 0;
		const uint8_t *raw;
		size_t rlen;
		if (ml_msgpack_get_str(r, &key, &klen) != 0)
			return ml_diag_set(ML_ERR_USAGE, "event %u: keys must be strings", i + 1);
		unsigned bit = event_key(key, klen);
		if (bit & seen)
			return ml_diag_set(ML_ERR_USAGE,
					   "event %u has the key %.*s twice; give it once", i + 1,
					   (int)klen, key);
		seen |= bit;
		if (bit & (KEY_TYPE | KEY_ID)) {
			if (ml_msgpack_get_str(r, &s, &slen) != 0 && ml_msgpack_get_nil(r) != 0)
				return ml_diag_set(ML_ERR_USAGE, "event %u: %.*s must be a string",
						   i + 1, (int)klen, key);
			if (bit == KEY_TYPE)
				e->type = s, e->type_len = slen;
			else if (s)
				e->id = s, e->id_len = slen;
			continue;
		}
		if (ml_msgpack_skip(r, &raw, &rlen) != 0)
			return ml_diag_set(ML_ERR_USAGE, "event %u: a value is cut short", i + 1);
		int nil = rlen == 1 && raw[0] == 0xc0;
		if (bit == KEY_DATA) {
			e->data = nil ? NULL : raw, e->data_len = nil ? 0 : rlen;
		} else if (bit == KEY_META) {
			if (!nil && (raw[0] & 0xf0) != 0x80 && raw[0] != 0xde && raw[0] != 0xdf)
				return ml_diag_set(ML_ERR_USAGE, "event %u: meta must be a map",
						   i + 1);
			e->meta = nil ? NULL : raw, e->meta_len = nil ? 0 : rlen;
		} /* other keys are ignored, for clients that send more */
	}
	if (e->type == NULL || e->type_len == 0)
		return ml_diag_set(ML_ERR_USAGE,
				   "event %u has no type (give {type = \"Name\", ...})", i + 1);
	return 0;
}

int ml_rpc_parse_events(struct ml_msgpack_reader *r, struct ml_pending *p)
{
	uint32_t n = 1;
	int one = ml_msgpack_is_map(r->p, ml_msgpack_left(r));
	if (!one && ml_msgpack_get_array(r, &n) != 0)
		return ml_diag_set(ML_ERR_USAGE, "events must be an event map or an array of them");
	if (ml_op_append_room(p, n) != 0)
		return -1;
	for (uint32_t i = 0; i < n; i++)
		if (parse_event(r, &p->evs[i], i) != 0)
			return -1;
	return 0;
}

/* {position, last_position, version, duplicate} at p: constant blocks and three stores. */
static inline uint8_t *put_append_result(uint8_t *p, const struct ml_append *req)
{
	*p++ = 0x84;
	p = be64(KEY(p, "\xa8position\xcf"), req->first_position);
	p = be64(KEY(p, "\xadlast_position\xcf"), req->last_position);
	p = be64(KEY(p, "\xa7version\xcf"), req->versions ? req->versions[req->n_events - 1] : 0);
	p = KEY(p, "\xa9"
		   "duplicate");
	*p++ = req->duplicate ? 0xc3 : 0xc2;
	return p;
}

#define APPEND_RESULT_SIZE 70 /* 1 + (10 + 8) + (15 + 8) + (9 + 8) + (10 + 1) */

void ml_rpc_append_result(struct ml_buf *b, const struct ml_append *req)
{
	ml_msgpack_done(b, put_append_result(ml_msgpack_room(b, APPEND_RESULT_SIZE), req));
}

static void finish_append(struct ml_pending *p)
{
	struct ml_conn *c = p->conn;
	if (!c->closed) {
		if (p->req.err != ML_OK) {
			ml_rpc_reply_err(c, p->msgid, p->req.err, p->req.actual_version, "%s",
					 p->req.errmsg);
		} else { /* [1, msgid (uint 32, as msgids are), nil, result] */
			uint8_t *at = ml_msgpack_room(&c->out, 8 + APPEND_RESULT_SIZE);
			uint32_t id = __builtin_bswap32((uint32_t)p->msgid);
			at = KEY(at, "\x94\x01\xce");
			memcpy(at, &id, 4);
			at[4] = 0xc0;
			ml_msgpack_done(&c->out, put_append_result(at + 5, &p->req));
		}
		ml_conn_mark(c);
	}
	ml_conn_release(c);
	ml_pending_put(p->srv, p);
}

/* nil, "any", "no_stream", "exists", a number as text, or an integer. */
static int parse_expected(struct ml_msgpack_reader *r, int64_t *out)
{
	const char *s;
	uint32_t n;
	*out = ML_EXPECT_ANY;
	if (r->p >= r->end || ml_msgpack_get_nil(r) == 0)
		return 0;
	if (ml_msgpack_get_int(r, out) == 0)
		return *out < 0 ? ml_diag_set(ML_ERR_USAGE, "expected version cannot be negative")
				: 0;
	if (ml_msgpack_get_str(r, &s, &n) != 0 || n > 30)
		return ml_diag_set(ML_ERR_USAGE, "expected must be \"any\", \"no_stream\", "
						 "\"exists\" or a version number");
	char text[32];
	memcpy(text, s, n);
	text[n] = 0;
	return ml_expect_parse(text, out);
}

/* Sends an append whose request has been read on its way: its answer comes from finish. */
static void submit_append(struct ml_conn *c, uint64_t msgid, struct ml_pending *p,
			  const char *stream, uint32_t slen, int64_t expected)
{
	p->conn = c;
	p->msgid = msgid;
	p->t0 = c->read_ns;
	p->finish = finish_append;
	c->inflight++;
	ml_op_append(c->srv, p, stream, slen, expected);
}

static int m_append(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	const char *stream;
	uint32_t slen;
	int64_t expected;
	if (ml_msgpack_get_str(r, &stream, &slen) != 0)
		return -1;
	struct ml_pending *p = ml_pending_get(c->srv);
	if (ml_rpc_parse_events(r, p) != 0 ||
	    parse_expected(np > 2 ? r : &(struct ml_msgpack_reader){0}, &expected) != 0) {
		ml_rpc_reply_diag(c, msgid);
		ml_pending_put(c->srv, p);
		return 0;
	}
	submit_append(c, msgid, p, stream, slen, expected);
	return 0;
}

/*
 * An append whose request is whole in buf[0..n), parsed and submitted without
 * being framed first. Framing walks every object of a request before it is
 * parsed, about a tenth of what a small append costs the server, and an
 * append's parse reads every object anyway: every read of it is bounded by n
 * and counted by the arrays and maps it opens, so a parse that succeeds has
 * read a whole request, and its end is where the parse stopped. Returns the
 * request's length, or 0 when it is not such an append (another method, a
 * caller not yet authorised, a request cut short, malformed or too large): the
 * caller then frames it, and ml_rpc_dispatch answers it, errors included.
 */
size_t ml_rpc_append_whole(struct ml_conn *c, const uint8_t *buf, size_t n)
{
	struct ml_msgpack_reader r;
	uint32_t four, np, mlen, slen;
	int64_t type, expected = ML_EXPECT_ANY;
	uint64_t msgid;
	const char *m, *stream;
	if (!c->authed || n < 12 || buf[0] != 0x94) /* [0, msgid, method, params] */
		return 0;
	ml_msgpack_reader_init(&r, buf, n);
	if (ml_msgpack_get_array(&r, &four) != 0 || ml_msgpack_get_int(&r, &type) != 0 ||
	    type != 0 || ml_msgpack_get_uint(&r, &msgid) != 0 || msgid > UINT32_MAX ||
	    ml_msgpack_get_str(&r, &m, &mlen) != 0 || mlen != 6 || memcmp(m, "append", 6) != 0 ||
	    ml_msgpack_get_array(&r, &np) != 0 || np < 2 ||
	    ml_msgpack_get_str(&r, &stream, &slen) != 0)
		return 0;
	struct ml_pending *p = ml_pending_get(c->srv);
	/* (parse_expected takes the end of the input for no expected version: here the end may
	 * only be where the bytes received so far stop) */
	if (ml_rpc_parse_events(&r, p) != 0 ||
	    (np > 2 && (r.p == r.end || parse_expected(&r, &expected) != 0)) ||
	    (np > 3 && ml_msgpack_skip_n(&r, np - 3) != 0) ||
	    (size_t)(r.p - buf) > c->srv->o.max_request) {
		ml_pending_put(c->srv, p);
		return 0;
	}
	c->srv->requests++;
	submit_append(c, msgid, p, stream, slen, expected);
	return (size_t)(r.p - buf);
}

/* ---- delete and metadata (ops_retention.c) ------------------------------- */

/* delete(stream, expected, hard): a $deleted event; the answer is append's */
static int m_delete(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	const char *stream;
	uint32_t slen;
	int64_t expected = ML_EXPECT_ANY;
	int hard = 0;
	if (ml_msgpack_get_str(r, &stream, &slen) != 0)
		return -1;
	if ((np > 1 && parse_expected(r, &expected) != 0))
		return ml_rpc_reply_diag(c, msgid);
	if (np > 2 && ml_msgpack_get_nil(r) != 0 && ml_msgpack_get_bool(r, &hard) != 0)
		return -1; /* the usage */
	struct ml_pending *p = ml_pending_get(c->srv);
	p->conn = c;
	p->msgid = msgid;
	p->t0 = c->read_ns;
	p->finish = finish_append;
	c->inflight++;
	ml_op_delete(c->srv, p, stream, slen, expected, hard);
	return 0;
}

/* set_metadata(stream, {max_age=, max_count=, truncate_before=}, expected) */
static int m_set_metadata(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r,
			  uint32_t np)
{
	const char *stream;
	uint32_t slen;
	const uint8_t *map;
	size_t mlen;
	int64_t expected = ML_EXPECT_ANY;
	if (ml_msgpack_get_str(r, &stream, &slen) != 0)
		return -1;
	if (!ml_msgpack_is_map(r->p, ml_msgpack_left(r)) || ml_msgpack_skip(r, &map, &mlen) != 0)
		return -1; /* the usage */
	if (np > 2 && parse_expected(r, &expected) != 0)
		return ml_rpc_reply_diag(c, msgid);
	struct ml_pending *p = ml_pending_get(c->srv);
	p->conn = c;
	p->msgid = msgid;
	p->t0 = c->read_ns;
	p->finish = finish_append;
	c->inflight++;
	ml_op_set_meta(c->srv, p, stream, slen, map, mlen, expected);
	return 0;
}

/* metadata(stream) -> {max_age, max_count, truncate_before, deleted, deleted_version, hard} */
static int m_metadata(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	const char *stream;
	uint32_t slen;
	(void)np;
	if (ml_msgpack_get_str(r, &stream, &slen) != 0)
		return -1;
	ml_rpc_reply_ok(c, msgid);
	ml_op_meta_put(c->srv, stream, slen, &c->out);
	return 0;
}

/* ---- subscriptions ------------------------------------------------------- */

static int deliver(struct ml_sub *sub, const struct ml_event *e, uint32_t deliveries, void *arg)
{
	struct ml_conn *c = arg;
	struct ml_buf *b = &c->out;
	ml_buf_add(b,
		   "\x93\x02\xa5"
		   "event"
		   "\x92",
		   9);
	ml_msgpack_put_uint(b, ml_sub_id(sub));
	ml_rpc_event(b, e, deliveries);
	ml_conn_mark(c);
	if (b->len - c->out_off <= c->srv->o.max_outbuf)
		return 0;
	c->blocked = 1; /* resumed by conn.c once the client has read half of it */
	return 1;
}

static int add_patterns(struct ml_filter *f, struct ml_msgpack_reader *r, int types)
{
	const char *s;
	uint32_t n, len;
	if (ml_msgpack_get_str(r, &s, &len) == 0) {
		if (types)
			return ml_filter_add_type(f, s, len), 0;
		return ml_filter_add_stream(f, s, len);
	}
	if (ml_msgpack_get_array(r, &n) != 0)
		return ml_diag_set(ML_ERR_USAGE, "a pattern is a string or an array of strings");
	for (uint32_t i = 0; i < n; i++)
		if (add_patterns(f, r, types) != 0)
			return -1;
	return 0;
}

/* "pattern" | {"p1", "p2"} | {streams = ..., types = {...}} */
static struct ml_filter *parse_filter(struct ml_msgpack_reader *r)
{
	struct ml_filter *f = ml_filter_new();
	uint32_t n;
	int ok = 0, streams = 0;
	if (ml_msgpack_get_map(r, &n) == 0) {
		ok = 1;
		for (uint32_t i = 0; i < n && ok; i++) {
			const char *k;
			uint32_t kl;
			if (ml_msgpack_get_str(r, &k, &kl) != 0)
				ok = 0;
			else if (key_is(k, kl, "streams") || key_is(k, kl, "types"))
				ok = add_patterns(f, r, k[0] == 't') == 0, streams |= k[0] == 's';
			else
				ok = ml_msgpack_skip(r, NULL, NULL) == 0;
		}
		if (ok && !streams) /* types only: every stream but system ones */
			ml_filter_add_stream(f, "*", 1);
	} else {
		ok = add_patterns(f, r, 0) == 0;
	}
	if (!ok) {
		if (ml_diag_code() == ML_OK)
			ml_diag_set(ML_ERR_USAGE,
				    "subscribe(pattern, from, group): pattern is a "
				    "string, an array of them, or {streams=, types=}");
		ml_filter_free(f);
		return NULL;
	}
	return f;
}

static int parse_group(struct ml_msgpack_reader *r, char *name, size_t cap,
		       struct ml_group_options *go)
{
	const char *s;
	uint32_t n, len;
	if (ml_msgpack_get_nil(r) == 0)
		return 0;
	if (ml_msgpack_get_str(r, &s, &len) == 0) {
		snprintf(name, cap, "%.*s", (int)len, s);
		return len < cap ? 1 : ml_diag_set(ML_ERR_USAGE, "the group name is too long");
	}
	if (ml_msgpack_get_map(r, &n) != 0)
		return ml_diag_set(ML_ERR_USAGE, "group is a name or {group=, ack_timeout_ms=, "
						 "max_deliveries=, max_inflight=}");
	int named = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t v = 0;
		if (ml_msgpack_get_str(r, &s, &len) != 0)
			return ml_diag_set(ML_ERR_USAGE, "group options: keys are strings");
		if (key_is(s, len, "group")) {
			const char *g;
			uint32_t gl;
			if (ml_msgpack_get_str(r, &g, &gl) != 0 || gl >= cap)
				return ml_diag_set(ML_ERR_USAGE, "group must be a short string");
			snprintf(name, cap, "%.*s", (int)gl, g);
			named = 1;
			continue;
		}
		if (ml_msgpack_get_uint(r, &v) != 0 || v > UINT32_MAX)
			return ml_diag_set(ML_ERR_USAGE, "group option %.*s must be a whole number",
					   (int)len, s);
		if (key_is(s, len, "ack_timeout_ms"))
			go->ack_timeout_ms = (uint32_t)v;
		else if (key_is(s, len, "max_deliveries"))
			go->max_deliveries = (uint32_t)v;
		else if (key_is(s, len, "max_inflight"))
			go->max_inflight = (uint32_t)v;
	}
	return named ? 1 : ml_diag_set(ML_ERR_USAGE, "group options need group = NAME");
}

static int m_subscribe(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	uint64_t from = UINT64_MAX;
	char group[128];
	struct ml_group_options go = {0};
	struct ml_filter *f = parse_filter(r);
	if (f == NULL)
		return ml_rpc_reply_diag(c, msgid);
	if (np > 1 && ml_msgpack_get_nil(r) != 0 && ml_msgpack_get_uint(r, &from) != 0) {
		ml_filter_free(f);
		return ml_rpc_reply_err(
		    c, msgid, ML_ERR_USAGE, 0,
		    "subscribe: from is a position (or nil for new events only)");
	}
	int g = np > 2 ? parse_group(r, group, sizeof(group), &go) : 0;
	if (g < 0) {
		ml_filter_free(f);
		return ml_rpc_reply_diag(c, msgid);
	}
	struct ml_sink sink = {deliver, c};
	struct ml_sub *sub = ml_sub_new(c->srv->router, f, from, g ? group : NULL, &go, &sink);
	if (sub == NULL)
		return ml_rpc_reply_diag(c, msgid);
	c->subs = ml_xrealloc(c->subs, (c->nsubs + 1) * sizeof(*c->subs));
	c->subs[c->nsubs++] = sub;
	ml_rpc_reply_ok(c, msgid);
	ml_msgpack_put_uint(&c->out, ml_sub_id(sub));
	return 0;
}

static int m_unsubscribe(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r,
			 uint32_t np)
{
	uint64_t id;
	if (ml_msgpack_get_uint(r, &id) != 0)
		return -1;
	for (size_t i = 0; i < c->nsubs; i++)
		if (ml_sub_id(c->subs[i]) == id) {
			ml_sub_free(c->subs[i]);
			c->subs[i] = c->subs[--c->nsubs];
			ml_rpc_reply_ok(c, msgid);
			ml_msgpack_put_bool(&c->out, 1);
			return 0;
		}
	return ml_rpc_reply_err(c, msgid, ML_ERR_NOT_FOUND, 0,
				"no subscription %" PRIu64 " on this connection", id);
}

static int m_ack(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	const char *g;
	uint32_t gl;
	uint64_t pos;
	if (ml_msgpack_get_str(r, &g, &gl) != 0 || ml_msgpack_get_uint(r, &pos) != 0)
		return -1;
	if (ml_router_ack(c->srv->router, g, gl, pos) != 0)
		return ml_rpc_reply_diag(c, msgid);
	ml_rpc_reply_ok(c, msgid);
	ml_msgpack_put_bool(&c->out, 1);
	return 0;
}

static int m_stats(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	ml_rpc_reply_ok(c, msgid);
	ml_op_stats(c->srv, &c->out);
	return 0;
}

static int same_token(const char *a, size_t an, const char *b, size_t bn)
{
	unsigned char d = an != bn;
	for (size_t i = 0; i < an && i < bn; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

static int m_auth(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	const char *t;
	uint32_t tl;
	struct ml_server *s = c->srv;
	if (ml_msgpack_get_str(r, &t, &tl) != 0)
		return -1;
	if (s->token && !same_token(t, tl, s->token, s->token_len))
		return ml_conn_auth_failed(c, msgid), 0; /* answered late: ml_rpc_auth_refused */
	c->authed = 1;
	ml_rpc_reply_ok(c, msgid);
	ml_msgpack_put_bool(&c->out, 1);
	return 0;
}

void ml_rpc_auth_refused(struct ml_conn *c, uint64_t msgid)
{
	if (c->auth_failures >= ML_AUTH_TRIES)
		ml_rpc_reply_err(c, msgid, ML_ERR_REFUSED, 0,
				 "unauthorized: wrong token, %u times: the connection is closed",
				 c->auth_failures);
	else
		ml_rpc_reply_err(c, msgid, ML_ERR_REFUSED, 0, "unauthorized: wrong token");
}

/* eval(chunk) and complete(line): a string for the server's Lua (admin socket only: flags). */
static int eval_method(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r,
		       void (*fn)(struct ml_eval *, struct ml_conn *, uint64_t, const char *,
				  size_t))
{
	const char *text;
	uint32_t len;
	if (ml_msgpack_get_str(r, &text, &len) != 0)
		return -1;
	fn(c->srv->eval, c, msgid, text, len);
	return 0;
}

static int m_eval(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	return eval_method(c, msgid, r, ml_eval_run);
}

static int m_complete(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	return eval_method(c, msgid, r, ml_eval_complete);
}

/* ---- the method table and the dispatcher ---------------------------------- */

/*
 * A method is a row: its name, its function, how many params it takes, and
 * who may call it. The dispatcher checks all of that before the function
 * runs; a function reads its params and returns -1 when one is not of the
 * kind it takes, and the caller is then given the row's usage (bad_request).
 * Params past those a method reads are ignored (ANY: no upper bound).
 */
#define ANY	    UINT32_MAX
#define ADMIN	    1u /* on the admin socket only: eval runs Lua inside the server */
#define BEFORE_AUTH 2u /* allowed before auth(token) on a server with --token */

static const struct rpc_method {
	const char *name;
	int (*fn)(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np);
	uint32_t min, max;
	unsigned flags;
	const char *usage;
} methods[] = {
    {"append", m_append, 2, ANY, 0, "append(stream, events, expected): stream must be a string"},
    {"read", ml_rpc_read, 1, ANY, 0, /* rpc_read.c */
     "read(stream, from, limit, backwards, fields): stream must be a string (or \"$all\")"},
    {"subscribe", m_subscribe, 1, ANY, 0,
     "subscribe(pattern, from, group): give a pattern such as \"*\""},
    {"unsubscribe", m_unsubscribe, 1, ANY, 0, "unsubscribe(id): id is a number"},
    {"ack", m_ack, 2, ANY, 0, "ack(group, position): a group name and a position"},
    {"delete", m_delete, 1, 3, 0,
     "delete(stream, expected, hard): stream must be a string, hard a boolean"},
    {"set_metadata", m_set_metadata, 2, 3, 0,
     "set_metadata(stream, meta, expected): stream must be a string, meta a map"},
    {"metadata", m_metadata, 1, 1, 0, "metadata(stream): stream must be a string"},
    {"stats", m_stats, 0, ANY, 0, "stats()"},
    {"auth", m_auth, 1, ANY, BEFORE_AUTH, "auth(token): the token is a string"},
    {"eval", m_eval, 1, ANY, ADMIN, "eval(chunk): the chunk is a string"},
    {"complete", m_complete, 1, ANY, ADMIN, "complete(line): the line is a string"},
    {"backup", ml_rpc_backup, 0, ANY, ADMIN, "backup()"},   /* rpc_backup.c */
    {"scavenge", ml_rpc_scavenge, 0, ANY, 0, "scavenge()"}, /* ops_scavenge.c */
    /* rpc_scripts.c: the hosted scripts */
    {"command", ml_rpc_command, 2, ANY, 0,
     "command(decider, name, args): names are strings, args a map"},
    {"query", ml_rpc_query, 2, ANY, 0, "query(projection, name, args...): names are strings"},
    {"get", ml_rpc_get, 1, 2, 0, "get(stream) or get(reducer, stream): strings"},
    {"state", ml_rpc_state, 1, ANY, 0, "state(script, key): the script's name, an optional key"},
    {"scripts", ml_rpc_scripts, 0, ANY, 0, "scripts()"},
    {"reload", ml_rpc_reload, 0, 1, 0, "reload(name): a script's name or file; reload() for all"},
    {"parked", ml_rpc_parked, 1, 1, 0, "parked(handler): the handler's name"},
    {"replay_parked", ml_rpc_replay_parked, 1, 1, 0, "replay_parked(handler): the handler's name"},
    {"dry_run", ml_rpc_dry_run, 1, 3, 0,
     "dry_run(name, file, options): a script's name, the candidate's path (or nil), a map"},
};
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

static const struct rpc_method *method_named(const char *m, uint32_t len)
{
	for (size_t i = 0; i < N_METHODS; i++)
		if (key_is(m, len, methods[i].name))
			return &methods[i];
	return NULL;
}

static int reply_unknown(struct ml_conn *c, uint64_t msgid, const char *m, uint32_t len)
{
	char names[512];
	size_t at = 0;
	for (size_t i = 0; i < N_METHODS && at < sizeof(names); i++)
		at += (size_t)snprintf(names + at, sizeof(names) - at, "%s%s", i ? ", " : "",
				       methods[i].name);
	return ml_rpc_reply_err(c, msgid, ML_ERR_NOT_FOUND, 0, "unknown method '%.*s'; methods: %s",
				(int)(len > 64 ? 64 : len), m, names);
}

/* Calls the method named m if its row lets this caller, with these params, in. */
static int call(struct ml_conn *c, uint64_t msgid, const char *m, uint32_t len,
		struct ml_msgpack_reader *r, uint32_t np)
{
	const struct rpc_method *f = method_named(m, len);
	if (!c->authed && !(f && (f->flags & BEFORE_AUTH)))
		return ml_rpc_reply_err(c, msgid, ML_ERR_REFUSED, 0,
					"unauthorized: this server needs auth(token) first");
	if (f == NULL)
		return reply_unknown(c, msgid, m, len);
	if ((f->flags & ADMIN) && c->kind != CONN_ADMIN)
		return ml_rpc_reply_err(
		    c, msgid, ML_ERR_REFUSED, 0,
		    "%s is only available on the admin socket (DATA/moonlog.sock), "
		    "not over TCP",
		    f->name);
	if (np < f->min || np > f->max || f->fn(c, msgid, r, np) != 0)
		return ml_rpc_reply_err(c, msgid, ML_ERR_USAGE, 0, "%s", f->usage);
	return 0;
}

void ml_rpc_dispatch(struct ml_conn *c, const uint8_t *msg, size_t len)
{
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, msg, len);
	uint32_t n, np, mlen;
	int64_t type;
	uint64_t msgid;
	const char *m;
	c->srv->requests++;
	if (ml_msgpack_get_array(&r, &n) != 0 || n != 4 || ml_msgpack_get_int(&r, &type) != 0 ||
	    type != 0)
		return ml_rpc_notify_error(
		    c, "not a msgpack-RPC request: send [0, msgid, method, params]");
	if (ml_msgpack_get_uint(&r, &msgid) != 0 || msgid > UINT32_MAX)
		return ml_rpc_notify_error(c, "bad msgid: it must be an unsigned 32-bit integer");
	if (ml_msgpack_get_str(&r, &m, &mlen) != 0)
		ml_rpc_reply_err(c, msgid, ML_ERR_USAGE, 0, "the method name must be a string");
	else if (ml_msgpack_get_array(&r, &np) != 0)
		ml_rpc_reply_err(c, msgid, ML_ERR_USAGE, 0, "params must be an array");
	else
		call(c, msgid, m, mlen, &r, np);
}
