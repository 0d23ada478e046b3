/*
 * sse.c - GET /subscribe: a subscription as server-sent events.
 *
 * Query: pattern (default "*"; several separated by commas), types
 * (comma-separated), from (a position; absent = only new events), typed. A
 * Last-Event-ID header resumes after that position, so a browser's
 * EventSource reconnects without a gap (after `retry:` ms, said first). Each
 * event is
 *   id: POSITION
 *   event: TYPE          (with typed=true only)
 *   data: {"position": ..., "stream": ..., ...}
 * `event:` is asked for rather than always sent because an EventSource hands
 * typed events only to listeners of that type: onmessage, the one way to take
 * every event, would then get none. A comment line goes out after
 * --sse-heartbeat ms (15 s) without events, so that proxies, which cut idle streams
 * after 30-60 s, keep it open. Events gather in a buffer during a turn and go
 * out as one chunk. While more than max_outbuf bytes wait in the socket, the
 * subscription pauses and falls back to catching up from the log once the
 * client has read them.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include <moonlog/diag.h>

#include "net/http_internal.h"

#define SSE_RETRY_MS 2000

struct ml_sse {
	struct ml_server *srv;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	struct ml_hconn *hconn; /* tells us when the client leaves (http_conn.c) */
	struct ml_sub *sub;
	struct ml_buf buf;
	int full;
	int typed;	  /* an `event: TYPE` line per event */
	uint64_t sent_ms; /* when the last chunk went out (ml_clock) */
	struct ml_sse *next, *prev;
};

static size_t queued(struct ml_sse *x)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(x->evcon);
	return x->buf.len + (bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0);
}

static int deliver(struct ml_sub *sub, const struct ml_event *e, uint32_t deliveries, void *arg)
{
	struct ml_sse *x = arg;
	ml_buf_addf(&x->buf, "id: %" PRIu64 "\n", e->position);
	if (x->typed) { /* a type holds no line break: names are checked at append */
		ml_buf_add(&x->buf, "event: ", 7);
		ml_buf_add(&x->buf, e->type, e->type_len);
		ml_buf_add(&x->buf, "\n", 1);
	}
	ml_buf_add(&x->buf, "data: ", 6);
	if (ml_event_json(&x->buf, e) != 0)
		ml_buf_add(&x->buf, "null", 4);
	ml_buf_add(&x->buf, "\n\n", 2);
	if (queued(x) <= x->srv->o.max_outbuf)
		return 0;
	x->full = 1;
	return 1;
}

static void unlink_sse(struct ml_sse *x)
{
	struct ml_server *s = x->srv;
	if (x->prev)
		x->prev->next = x->next;
	else
		s->sses = x->next;
	if (x->next)
		x->next->prev = x->prev;
	ml_sub_free(x->sub);
	ml_buf_free(&x->buf);
}

/* The client went away: libevent has let go of the request; free both. */
void ml_sse_gone(struct ml_sse *x)
{
	unlink_sse(x);
	if (evhttp_request_get_connection(x->req) == NULL)
		evhttp_send_reply_end(x->req); /* frees a request without a connection */
	free(x);
}

static void on_sent(struct evhttp_connection *evcon, void *arg)
{
	struct ml_sse *x = arg;
	if (x->full && queued(x) <= x->srv->o.max_outbuf / 2) {
		x->full = 0;
		ml_sub_resume(x->sub);
		event_active(x->srv->pump, EV_READ, 0);
	}
}

static uint64_t now_ms(void)
{
	return ml_clock_ns() / 1000000;
}

void ml_sse_heartbeat(struct ml_server *s)
{
	uint64_t now = now_ms();
	for (struct ml_sse *x = s->sses; x; x = x->next)
		if (x->buf.len == 0 && s->o.sse_heartbeat_ms &&
		    now - x->sent_ms >= s->o.sse_heartbeat_ms)
			ml_buf_add(&x->buf, ": keep-alive\n\n", 14);
	ml_sse_flush(s);
}

void ml_sse_flush(struct ml_server *s)
{
	for (struct ml_sse *x = s->sses; x; x = x->next) {
		if (x->buf.len == 0)
			continue;
		x->sent_ms = now_ms();
		struct evbuffer *chunk = evbuffer_new();
		evbuffer_add(chunk, x->buf.data, x->buf.len);
		x->buf.len = 0;
		evhttp_send_reply_chunk_with_cb(x->req, chunk, on_sent, x);
		evbuffer_free(chunk);
	}
}

/* Adds comma-separated items to f as stream patterns or types. */
static int add_list(struct ml_filter *f, const char *list, int types)
{
	while (list && *list) {
		const char *comma = strchr(list, ',');
		size_t n = comma ? (size_t)(comma - list) : strlen(list);
		if (types)
			ml_filter_add_type(f, list, n);
		else if (ml_filter_add_stream(f, list, n) != 0)
			return -1;
		list = comma ? comma + 1 : NULL;
	}
	return 0;
}

void ml_sse_start(struct ml_server *s, struct evhttp_request *req, struct evkeyvalq *q)
{
	const char *pattern = evhttp_find_header(q, "pattern");
	const char *types = evhttp_find_header(q, "types");
	const char *from_s = evhttp_find_header(q, "from");
	const char *last =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Last-Event-ID");
	uint64_t from = UINT64_MAX;
	char *end;
	if (last && *last) {
		from = strtoull(last, &end, 10) + 1;
	} else if (from_s && *from_s) {
		from = strtoull(from_s, &end, 10);
		if (*end || from_s[0] == '-')
			return ml_http_error(req, 400, ML_ERR_USAGE, 0,
					     "from must be a position (a whole number)");
	}
	struct ml_filter *f = ml_filter_new();
	if (add_list(f, pattern && *pattern ? pattern : "*", 0) != 0 ||
	    add_list(f, types, 1) != 0) {
		ml_filter_free(f);
		return ml_http_error(req, 400, ML_ERR_USAGE, 0, ml_diag_last());
	}
	struct ml_hconn *hc = ml_hconn_of(s, req);
	if (hc == NULL) { /* every connection is adopted before it reads: cannot happen */
		ml_filter_free(f);
		return ml_http_error(req, 500, ML_ERR_IO, 0,
				     "internal error: the connection is not tracked");
	}
	struct ml_sse *x = ml_xcalloc(1, sizeof(*x));
	x->srv = s;
	x->req = req;
	const char *typed = evhttp_find_header(q, "typed");
	x->typed = typed && (strcmp(typed, "true") == 0 || strcmp(typed, "1") == 0);
	x->evcon = evhttp_request_get_connection(req);
	x->hconn = hc;
	struct ml_sink sink = {deliver, x};
	x->sub = ml_sub_new(s->router, f, from, NULL, NULL, &sink);
	x->next = s->sses;
	if (s->sses)
		s->sses->prev = x;
	s->sses = x;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Content-Type", "text/event-stream");
	evhttp_add_header(h, "Cache-Control", "no-cache");
	evhttp_send_reply_start(req, 200, "OK");
	ml_hconn_set_sse(hc, x);
	ml_buf_addf(&x->buf, "retry: %d\n: subscribed\n\n", SSE_RETRY_MS);
}

void ml_sse_free_all(struct ml_server *s)
{
	while (s->sses) {
		struct ml_sse *x = s->sses;
		ml_hconn_set_sse(x->hconn, NULL);
		unlink_sse(x);
		evhttp_send_reply_end(x->req);
		free(x);
	}
}
