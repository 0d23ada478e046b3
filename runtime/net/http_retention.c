/*
 * http_retention.c - deleting a stream and its retention metadata over HTTP
 * (docs/protocol.md): DELETE /streams/{stream}[?hard=true] with If-Match for
 * the expected version, and GET/PUT /streams/{stream}/metadata with a JSON
 * object {max_age, max_count, truncate_before}. What they append and refuse
 * is ops_retention.c's, as for RPC.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include "net/http_internal.h"
#include "net/ops.h"

/* 200 {"position", "version"} or the error: 412, 410 as for an append (p->ctx: the stream). */
static void finish(struct ml_pending *p)
{
	struct evhttp_request *req = p->http;
	if (p->req.err != ML_OK) {
		int status = ml_http_write_status(p->srv, p, p->ctx);
		ml_http_error(req, status, p->req.err, p->req.actual_version, p->req.errmsg);
	} else {
		struct ml_buf b = {0};
		uint64_t version = ml_op_append_version(p);
		ml_buf_addf(&b,
			    "{\"position\":%" PRIu64 ",\"version\":%" PRIu64 ",\"duplicate\":%s}\n",
			    p->req.first_position, version, p->req.duplicate ? "true" : "false");
		char etag[32];
		snprintf(etag, sizeof(etag), "\"%" PRIu64 "\"", version);
		evhttp_add_header(evhttp_request_get_output_headers(req), "ETag", etag);
		ml_http_send(req, 200, NULL, &b, NULL);
		ml_buf_free(&b);
	}
	free(p->ctx);
	p->ctx = NULL;
	ml_pending_put(p->srv, p);
}

void ml_http_delete(struct ml_server *s, struct evhttp_request *req, const char *stream,
		    struct evkeyvalq *q)
{
	int64_t expected;
	const char *h = evhttp_find_header(q, "hard");
	if (h && strcmp(h, "true") != 0 && strcmp(h, "false") != 0 && strcmp(h, "1") != 0 &&
	    strcmp(h, "0") != 0)
		return ml_http_error(req, 400, ML_ERR_USAGE, 0,
				     "the query parameter hard must be true or false");
	if (ml_http_if_match(req, &expected) != 0)
		return ml_http_error(req, 400, ML_ERR_USAGE, 0, ml_diag_last());
	struct ml_pending *p = ml_pending_get(s);
	p->http = req;
	p->ctx = ml_xstrndup(stream, strlen(stream));
	p->finish = finish;
	ml_op_delete(s, p, stream, strlen(stream), expected,
		     h && (strcmp(h, "true") == 0 || strcmp(h, "1") == 0));
}

static void get_meta(struct ml_server *s, struct evhttp_request *req, const char *stream)
{
	struct ml_buf mp = {0}, json = {0};
	ml_op_meta_put(s, stream, strlen(stream), &mp);
	ml_msgpack_to_json(mp.data, mp.len, &json);
	ml_buf_add(&json, "\n", 1);
	ml_http_send(req, 200, "OK", &json, NULL);
	ml_buf_free(&mp);
	ml_buf_free(&json);
}

void ml_http_metadata(struct ml_server *s, struct evhttp_request *req, const char *stream)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
		return get_meta(s, req, stream);
	if (m != EVHTTP_REQ_PUT) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, PUT");
		return ml_http_error(req, 405, ML_ERR_USAGE, 0,
				     "method not allowed here: use GET or PUT");
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	struct ml_buf mp = {0};
	int64_t expected;
	if (ml_http_if_match(req, &expected) != 0)
		return ml_http_error(req, 400, ML_ERR_USAGE, 0, ml_diag_last());
	if (len == 0 || ml_json_to_msgpack(body, len, &mp) != 0 ||
	    !ml_msgpack_is_map(mp.data, mp.len)) {
		ml_buf_free(&mp);
		return ml_http_error(req, 400, ML_ERR_USAGE, 0,
				     "the body must be a JSON object {\"max_age\": seconds, "
				     "\"max_count\": n, \"truncate_before\": version}");
	}
	struct ml_pending *p = ml_pending_get(s);
	p->http = req;
	p->ctx = ml_xstrndup(stream, strlen(stream));
	p->finish = finish;
	ml_op_set_meta(s, p, stream, strlen(stream), mp.data, mp.len, expected);
	ml_buf_free(&mp); /* the log has copied the event */
}
