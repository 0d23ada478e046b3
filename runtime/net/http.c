/*
 * http.c - HTTP with JSON through libevent's evhttp, on the server's loop.
 *
 * Routes (docs/protocol.md): POST/GET /streams/{stream}, GET /all,
 * GET /subscribe (server-sent events, in sse.c), GET /stats, /metrics and
 * /health. Events come in as JSON and are stored as msgpack (so RPC clients
 * and scripts see the same values) and go out as JSON again. An append is
 * answered once the log has made it durable, from the completion queue, like
 * an RPC append; a client that leaves meanwhile is simply not answered.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include "net/http_internal.h"
#include "net/ops.h"

void ml_http_send(struct evhttp_request *req, int code, const char *reason,
		  const struct ml_buf *body, const char *type)
{
	struct evbuffer *b = evbuffer_new();
	/* Never a body for HEAD: libevent 2.1 sends it anyway, without a Content-Length, and
	 * the client (or a proxy reusing the connection) takes it for the next response. */
	if (body && body->len && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add(b, body->data, body->len);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  type ? type : "application/json");
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

static int status_of(enum ml_err code)
{
	switch (code) {
	case ML_ERR_CONFLICT:
		return 409;
	case ML_ERR_NOT_FOUND:
		return 404;
	case ML_ERR_IO:
	case ML_ERR_BUSY:
		return 503;
	case ML_ERR_REFUSED:
		return 422;
	case ML_ERR_USAGE:
		return 400;
	default:
		return 500;
	}
}

/*
 * What a person is told: the message without Lua's traceback and without the
 * positions in moonlog's own Lua modules ("moonlog.host:59: "), which say
 * nothing to a script's author; positions in the user's scripts
 * ("balances.lua:12: ") stay. The traceback goes to the server's log
 * (ml_net_script_failed).
 */
const char *ml_net_person_message(const char *msg, char *out, size_t n)
{
	size_t o = 0;
	for (const char *p = msg; *p && o + 1 < n;) {
		if (strncmp(p, "\nstack traceback:", 17) == 0)
			break;
		if (strncmp(p, "moonlog.", 8) == 0 && (p == msg || p[-1] == ' ')) {
			const char *q = p + 8;
			while ((*q >= 'a' && *q <= 'z') || *q == '_' || *q == '.')
				q++;
			const char *d = q;
			if (*q == ':')
				while (*++d >= '0' && *d <= '9')
					;
			if (*q == ':' && d > q + 1 && d[0] == ':' && d[1] == ' ') {
				p = d + 2; /* "moonlog.mod:N: " */
				continue;
			}
		}
		out[o++] = *p++;
	}
	out[o] = 0;
	return out;
}

/* {"error": {"code": ..., "message": ...}} with the status the code calls for (or `status`). */
void ml_http_error(struct evhttp_request *req, int status, enum ml_err code, int64_t actual,
		   const char *msg)
{
	struct ml_buf b = {0};
	char text[2048];
	msg = ml_net_person_message(msg, text, sizeof(text));
	ml_buf_addf(&b, "{\"error\":{\"code\":\"%s\",\"message\":", ml_err_name(code));
	ml_json_string(&b, msg, strlen(msg));
	if (code == ML_ERR_CONFLICT)
		ml_buf_addf(&b, ",\"actual_version\":%" PRId64, actual);
	ml_buf_add(&b, "}}\n", 3);
	ml_http_send(req, status ? status : status_of(code), NULL, &b, NULL);
	ml_buf_free(&b);
}

/*
 * The status of a write to `stream` that failed, for a code that is not the default one: a
 * failed If-Match (the only guard HTTP has) is 412; a refusal because the stream was deleted
 * for good (a hard delete) is 410 Gone, as every later write to it will be. 0: the default.
 */
int ml_http_write_status(struct ml_server *s, const struct ml_pending *p, const char *stream)
{
	struct ml_stream_meta m;
	if (p->req.err == ML_ERR_CONFLICT)
		return 412;
	if (p->req.err == ML_ERR_REFUSED && stream &&
	    ml_log_stream_meta(s->log, stream, strlen(stream), &m) && m.hard)
		return 410;
	return 0;
}

/* ---- POST /streams/{stream} ---------------------------------------------- */

/* Where the appended events can be read: their page of the stream (p->ctx: its name). */
static void location(struct evkeyvalq *out, const struct ml_pending *p, uint64_t version)
{
	char *enc = evhttp_uriencode(p->ctx, -1, 0);
	struct ml_buf b = {0};
	size_t n = p->req.n_events;
	ml_buf_addf(&b, "/streams/%s?from=%" PRIu64 "&limit=%zu", enc, version + 1 - n, n);
	ml_buf_add(&b, "", 1);
	evhttp_add_header(out, "Location", b.data);
	ml_buf_free(&b);
	free(enc);
}

static void finish_append(struct ml_pending *p)
{
	struct evhttp_request *req = p->http;
	if (p->req.err != ML_OK) {
		int status = ml_http_write_status(p->srv, p, p->ctx);
		ml_http_error(req, status, p->req.err, p->req.actual_version, p->req.errmsg);
	} else {
		uint64_t version = ml_op_append_version(p);
		struct ml_buf b = {0};
		ml_buf_addf(&b,
			    "{\"position\":%" PRIu64 ",\"last_position\":%" PRIu64
			    ",\"version\":%" PRIu64 ",\"duplicate\":%s}\n",
			    p->req.first_position, p->req.last_position, version,
			    p->req.duplicate ? "true" : "false");
		char etag[32];
		snprintf(etag, sizeof(etag), "\"%" PRIu64 "\"", version);
		struct evkeyvalq *out = evhttp_request_get_output_headers(req);
		evhttp_add_header(out, "ETag", etag);
		location(out, p, version);
		ml_http_send(req, p->req.duplicate ? 200 : 201, NULL, &b, NULL);
		ml_buf_free(&b);
	}
	free(p->ctx);
	p->ctx = NULL;
	ml_pending_put(p->srv, p);
}

/* If-Match: a version (quoted or not), no_stream, exists or any; absent = any. */
int ml_http_if_match(struct evhttp_request *req, int64_t *out)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "If-Match");
	*out = ML_EXPECT_ANY;
	if (h == NULL)
		return 0;
	char v[64];
	size_t n = strlen(h);
	if (n >= 2 && h[0] == '"' && h[n - 1] == '"')
		h++, n -= 2;
	if (n >= sizeof(v))
		return ml_diag_set(ML_ERR_USAGE, "If-Match is too long");
	memcpy(v, h, n);
	v[n] = 0;
	if (strcmp(v, "*") == 0)
		return *out = ML_EXPECT_EXISTS, 0;
	return ml_expect_parse(v, out);
}

void ml_http_append(struct ml_server *s, struct evhttp_request *req, const char *stream)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	struct ml_buf mp = {0};
	int64_t expected;
	if (ml_http_if_match(req, &expected) != 0)
		return ml_http_error(req, 400, ML_ERR_USAGE, 0, ml_diag_last());
	if (len == 0 || ml_json_to_msgpack(body, len, &mp) != 0) {
		char why[400];
		snprintf(why, sizeof(why),
			 "the body must be JSON: one event {\"type\": ..., "
			 "\"data\": ...} or an array of them%s%s",
			 len ? ": " : "", len ? ml_diag_last() : "");
		ml_buf_free(&mp);
		return ml_http_error(req, 400, ML_ERR_USAGE, 0, why);
	}
	struct ml_pending *p = ml_pending_get(s);
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, mp.data, mp.len);
	if (ml_rpc_parse_events(&r, p) != 0) {
		ml_http_error(req, 400, ML_ERR_USAGE, 0, ml_diag_last());
		ml_pending_put(s, p);
	} else {
		p->http = req;
		/* for Location and a 410: the log keeps no copy */
		p->ctx = ml_xstrndup(stream, strlen(stream));
		p->finish = finish_append;
		ml_op_append(s, p, stream, strlen(stream), expected);
	}
	ml_buf_free(&mp); /* the log has copied the events */
}
