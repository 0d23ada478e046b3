/*
 * http_conn.c - HTTP connections as the server counts and times them.
 *
 * evhttp (libevent 2.1) owns HTTP connections and says nothing of them until
 * a request is complete, so by itself it can neither count them against
 * --max-conns nor give a slow client a deadline. The server therefore makes
 * each connection's bufferevent itself (evhttp_set_bevcb) and, once evhttp has
 * wrapped it, adopts the connection: it learns it from the bufferevent's
 * callback argument and sets its close callback, which is where the count goes
 * down. The bufferevent is made before evhttp knows its descriptor, so the
 * adoption waits for an event activated meanwhile, which runs in the same turn
 * of the loop, before the connection can read anything. A connection past the
 * limit is answered 503 there and closed.
 *
 * An adopted connection is in one of four states:
 *   HEAD  a request's head is arriving. It must be complete (the blank line
 *         seen) within --header-timeout of its first byte, or of the
 *         connection's opening for the first request: else 408, and close.
 *   BODY  its body is arriving: closed (408) after --idle-timeout without a byte.
 *   BUSY  the request is with the server: being answered, or a stream of
 *         server-sent events for as long as it lasts. No deadline: a
 *         subscription is never cut for being quiet (TCP keepalive finds a
 *         peer that vanished). A client that takes nothing of an answer for
 *         --idle-timeout is closed (the bufferevent's write timeout).
 *   IDLE  between requests: closed after --idle-timeout.
 * The head is watched in the bytes as they arrive (an input-buffer callback),
 * a state machine looking for an empty line; evhttp parses them as before.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "net/http_internal.h"

#define REFUSE_PER_TURN 16

enum hstate { H_HEAD, H_BODY, H_BUSY, H_IDLE };

struct ml_hconn {
	struct ml_server *srv;
	struct bufferevent *bev;
	struct evhttp_connection *evcon; /* NULL until adopted */
	struct event *timer;
	int fd;
	enum hstate state;
	int eol;    /* the head's end: 0 within a line, 1 after LF, 2 after LF CR */
	int refuse; /* past the limit: answered 503 on adoption */
	struct ml_sse *sse;
	struct ml_hconn *next_new;
};

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);

static void arm(struct ml_hconn *h, uint32_t ms)
{
	if (ms == 0) {
		evtimer_del(h->timer);
		return;
	}
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(h->timer, &tv);
}

/* ---- birth and death ----------------------------------------------------- */

struct bufferevent *ml_hconn_new(struct event_base *base, void *arg)
{
	struct ml_server *s = arg;
	struct ml_hconn *h = ml_xcalloc(1, sizeof(*h));
	h->srv = s;
	h->fd = -1;
	h->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (h->bev == NULL) {
		fputs("moonlog: out of memory\n", stderr);
		abort();
	}
	bufferevent_incref(h->bev); /* until adopted: evhttp may give up on it first */
	h->refuse = !ml_net_room(s);
	s->nhttp++;
	/* The listener accepts a whole burst before adoption: refusing more than a few
	 * per turn would take descriptors as fast as the clients arrive. */
	if (h->refuse && ++s->hrefusing >= REFUSE_PER_TURN && !s->accept_paused) {
		evconnlistener_disable(s->http_lev);
		s->http_held = 1;
	}
	h->next_new = s->hconn_new;
	s->hconn_new = h;
	event_active(s->adopt_ev, EV_READ, 0);
	return h->bev;
}

static void forget(struct ml_hconn *h)
{
	struct ml_server *s = h->srv;
	if (h->fd >= 0 && (size_t)h->fd < s->hconns_cap && s->hconns[h->fd] == h)
		s->hconns[h->fd] = NULL;
	if (h->timer)
		event_free(h->timer);
	s->nhttp--;
	ml_net_conn_gone(s);
	free(h);
}

/* evhttp frees the connection (the client left, a timeout, the answer said close). */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
	struct ml_hconn *h = arg;
	evbuffer_remove_cb(bufferevent_get_input(h->bev), on_input, h);
	if (h->sse)
		ml_sse_gone(h->sse);
	forget(h);
}

/*
 * Closes the connection through evhttp, as its own read timeout would: evhttp
 * frees it, and on_close frees h. With a status, a whole response is written
 * first (no answer of evhttp's is under way in the states this is used in).
 */
static void hang_up(struct ml_hconn *h, const char *status, const char *code, const char *msg)
{
	if (status) {
		struct ml_buf body = {0}, b = {0};
		ml_buf_addf(&body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code, msg);
		ml_buf_addf(&b,
			    "HTTP/1.1 %s\r\nContent-Type: application/json\r\nConnection: "
			    "close\r\nContent-Length: %zu\r\n\r\n%.*s",
			    status, body.len, (int)body.len, body.data);
		ssize_t w = write(h->fd, b.data, b.len);
		(void)w; /* best effort: a few hundred bytes into an idle socket */
		ml_buf_free(&body);
		ml_buf_free(&b);
	}
	bufferevent_trigger_event(h->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, 0);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct ml_hconn *h = arg;
	struct ml_server *s = h->srv;
	if (h->state == H_IDLE) {
		hang_up(h, NULL, NULL, NULL);
	} else if (h->state == H_HEAD || h->state == H_BODY) {
		int head = h->state == H_HEAD;
		s->timed_out++;
		ml_server_warn(s, ML_WARN_TIMEOUT,
			       "closed an HTTP connection whose request %s (%s %u ms): 408",
			       head ? "head did not arrive in time" : "body stopped arriving",
			       head ? "--header-timeout" : "--idle-timeout",
			       head ? s->o.header_timeout_ms : s->o.idle_timeout_ms);
		hang_up(h, "408 Request Timeout", "bad_request",
			head ? "the request's head did not arrive in time (--header-timeout); "
			       "send the request at once"
			     : "the request's body stopped arriving (--idle-timeout); send it at "
			       "once");
	}
	ml_server_settle_soon(s);
}

static void keep(struct ml_server *s, struct ml_hconn *h)
{
	if ((size_t)h->fd >= s->hconns_cap) {
		size_t cap = s->hconns_cap ? s->hconns_cap : 256;
		while (cap <= (size_t)h->fd)
			cap *= 2;
		s->hconns = ml_xrealloc(s->hconns, cap * sizeof(*s->hconns));
		memset(s->hconns + s->hconns_cap, 0, (cap - s->hconns_cap) * sizeof(*s->hconns));
		s->hconns_cap = cap;
	}
	s->hconns[h->fd] = h;
}

static void adopt(struct ml_server *s, struct ml_hconn *h)
{
	void *evcon = NULL;
	bufferevent_getcb(h->bev, NULL, NULL, NULL, &evcon);
	if (evcon == NULL) {
		/* evhttp failed to set the connection up and has closed the descriptor itself */
		bufferevent_setfd(h->bev, -1);
		bufferevent_decref(h->bev);
		forget(h);
		return;
	}
	h->evcon = evcon;
	h->fd = bufferevent_getfd(h->bev);
	h->timer = evtimer_new(s->base, on_timer, h);
	evhttp_connection_set_closecb(h->evcon, on_close, h);
	keep(s, h);
	bufferevent_decref(h->bev);
	if (h->refuse) {
		ml_net_refused(s, "an HTTP");
		return hang_up(h, "503 Service Unavailable", "busy",
			       "the server has reached its connection limit (--max-conns); try "
			       "later");
	}
	ml_net_tcp_options(h->fd);
	/* A client that takes nothing of an answer for this long is gone. */
	struct timeval wt = {s->o.idle_timeout_ms / 1000, (s->o.idle_timeout_ms % 1000) * 1000};
	bufferevent_set_timeouts(h->bev, NULL, s->o.idle_timeout_ms ? &wt : NULL);
	evbuffer_add_cb(bufferevent_get_input(h->bev), on_input, h);
	h->state = H_HEAD;
	arm(h, s->o.header_timeout_ms);
}

void ml_hconn_adopt_all(struct ml_server *s)
{
	while (s->hconn_new) {
		struct ml_hconn *h = s->hconn_new;
		s->hconn_new = h->next_new;
		adopt(s, h);
	}
	s->hrefusing = 0;
	if (s->http_held) {
		s->http_held = 0;
		if (!s->accept_paused)
			evconnlistener_enable(s->http_lev);
	}
}

/* ---- watching the head arrive ------------------------------------------- */

/* Feeds n bytes to the state machine; 1 when they end the head. */
static int scan(struct ml_hconn *h, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			if (h->eol)
				return 1;
			h->eol = 1;
		} else {
			h->eol = p[i] == '\r' && h->eol == 1 ? 2 : 0;
		}
	}
	return 0;
}

/* Scans the input from byte `from`; moves HEAD to BODY at the end of the head. */
static void scan_input(struct ml_hconn *h, struct evbuffer *buf, size_t from)
{
	struct evbuffer_ptr at;
	size_t len = evbuffer_get_length(buf);
	if (from >= len || evbuffer_ptr_set(buf, &at, from, EVBUFFER_PTR_SET) != 0)
		return;
	struct evbuffer_iovec v[8];
	while (from < len) {
		int n = evbuffer_peek(buf, (ev_ssize_t)(len - from), &at, v, 8);
		if (n > 8)
			n = 8;
		for (int i = 0; i < n; i++) {
			if (scan(h, v[i].iov_base, v[i].iov_len)) {
				h->state = H_BODY;
				arm(h, h->srv->o.idle_timeout_ms);
				return;
			}
			from += v[i].iov_len;
		}
		if (n <= 0 || evbuffer_ptr_set(buf, &at, from, EVBUFFER_PTR_SET) != 0)
			return;
	}
}

static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct ml_hconn *h = arg;
	if (info->n_added == 0)
		return;
	size_t len = evbuffer_get_length(buf);
	size_t from = len > info->n_added ? len - info->n_added : 0;
	switch (h->state) {
	case H_IDLE: /* the first byte of the next request */
		h->state = H_HEAD;
		h->eol = 0;
		arm(h, h->srv->o.header_timeout_ms);
		scan_input(h, buf, from);
		break;
	case H_HEAD:
		scan_input(h, buf, from);
		break;
	case H_BODY: /* arriving: the deadline moves */
		arm(h, h->srv->o.idle_timeout_ms);
		break;
	case H_BUSY: /* a pipelined request: looked at once this one is answered */
		break;
	}
}

/* ---- requests ------------------------------------------------------------- */

/* The answer is out: the connection waits for its next request. */
static void on_complete(struct evhttp_request *req, void *arg)
{
	struct ml_hconn *h = arg;
	struct evbuffer *in = bufferevent_get_input(h->bev);
	ml_net_http_answered(h->srv, evhttp_request_get_response_code(req));
	h->eol = 0;
	if (evbuffer_get_length(in) > 0) { /* pipelined: its head has begun */
		h->state = H_HEAD;
		arm(h, h->srv->o.header_timeout_ms);
		scan_input(h, in, 0);
	} else {
		h->state = H_IDLE;
		arm(h, h->srv->o.idle_timeout_ms);
	}
}

struct ml_hconn *ml_hconn_of(struct ml_server *s, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	int fd = bev ? bufferevent_getfd(bev) : -1;
	if (fd < 0 || (size_t)fd >= s->hconns_cap || s->hconns[fd] == NULL ||
	    s->hconns[fd]->evcon != evcon)
		return NULL;
	return s->hconns[fd];
}

struct ml_hconn *ml_hconn_busy(struct ml_server *s, struct evhttp_request *req)
{
	struct ml_hconn *h = ml_hconn_of(s, req);
	if (h == NULL)
		return NULL;
	h->state = H_BUSY;
	arm(h, 0);
	evhttp_request_set_on_complete_cb(req, on_complete, h);
	return h;
}

void ml_hconn_set_sse(struct ml_hconn *h, struct ml_sse *x)
{
	h->sse = x;
}
