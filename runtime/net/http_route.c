/*
 * http_route.c - the HTTP front door: the bearer token, the route table, and
 * the read-only routes (reads, /stats, /metrics, /health).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include "net/http_internal.h"
#include "net/ops.h"

/* A whole-number query parameter; -1 with a 400 sent if it is not one. */
static int query_uint(struct evhttp_request *req, struct evkeyvalq *q, const char *name,
		      uint64_t *out)
{
	const char *v = evhttp_find_header(q, name);
	if (v == NULL || !*v)
		return 0;
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	if (*end || v[0] == '-') {
		char why[128];
		snprintf(why, sizeof(why), "the query parameter %s must be a whole number", name);
		ml_http_error(req, 400, ML_ERR_USAGE, 0, why);
		return -1;
	}
	*out = n;
	return 0;
}

static int query_bool(struct evkeyvalq *q, const char *name)
{
	const char *v = evhttp_find_header(q, name);
	return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || *v == 0);
}

struct jread {
	struct ml_buf b;
	uint64_t n;
	uint64_t last; /* the version (a stream) or position ($all) of the last event sent */
	int all;
	int failed;
};

static int read_json(const struct ml_event *e, void *arg)
{
	struct jread *j = arg;
	j->last = j->all ? e->position : e->version;
	if (j->n++)
		ml_buf_add(&j->b, ",", 1);
	ml_buf_add(&j->b, "\n", 1);
	return ml_event_json(&j->b, e);
}

/* If-None-Match holds the stream's ETag (or "*"): the client's copy is current. */
static int not_modified(struct evhttp_request *req, const char *etag)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
	if (h == NULL)
		return 0;
	return strcmp(h, "*") == 0 || strstr(h, etag) != NULL; /* in a list, W/ or not */
}

/*
 * A page that stops before the end (at `limit`, or at --max-read) says where the
 * next one starts, as RFC 8288 links do: Link: </all?from=N&limit=L>; rel="next".
 */
static void link_next(struct ml_server *s, struct evhttp_request *req, const char *stream,
		      const struct ml_op_read *rd, const struct jread *j)
{
	uint64_t last =
	    stream ? ml_log_stream_version(s->log, stream, strlen(stream)) : ml_log_head(s->log);
	uint64_t next;
	if (j->n == 0 || (!rd->exact && j->n < rd->count)) /* removed events left out: the end */
		return;
	if (rd->backwards) {
		if (j->last <= 1)
			return;
		next = j->last - 1;
	} else {
		next = j->last + 1;
		if (next > last)
			return;
	}
	struct ml_buf b = {0};
	ml_buf_add(&b, "<", 1);
	if (stream) {
		char *enc = evhttp_uriencode(stream, -1, 0);
		ml_buf_addf(&b, "/streams/%s", enc);
		free(enc);
	} else {
		ml_buf_add(&b, "/all", 4);
	}
	ml_buf_addf(&b, "?from=%" PRIu64 "&limit=%" PRIu64 "%s>; rel=\"next\"", next, rd->limit,
		    rd->backwards ? "&backwards=true" : "");
	ml_buf_add(&b, "", 1);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Link", b.data);
	ml_buf_free(&b);
}

static void read_route(struct ml_server *s, struct evhttp_request *req, const char *stream,
		       struct evkeyvalq *q)
{
	struct ml_op_read rd = {.stream = stream, .stream_len = stream ? strlen(stream) : 0};
	if (query_uint(req, q, "from", &rd.from) || query_uint(req, q, "limit", &rd.limit))
		return;
	rd.backwards = stream && query_bool(q, "backwards"); /* /all has no backwards */
	uint64_t version = stream ? ml_log_stream_version(s->log, stream, rd.stream_len) : 0;
	if (stream && version == 0)
		return ml_http_error(req, 404, ML_ERR_NOT_FOUND, 0,
				     "no such stream (no events yet)");
	char etag[32];
	snprintf(etag, sizeof(etag), "\"%" PRIu64 "\"", version);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	if (stream && not_modified(req, etag)) {
		evhttp_add_header(out, "ETag", etag);
		return ml_http_send(req, 304, "Not Modified", NULL, NULL);
	}
	struct jread j = {.all = stream == NULL};
	ml_buf_add(&j.b, "[", 1);
	if (ml_op_read_plan(s, &rd) != 0 || ml_op_read(s, &rd, read_json, &j) < 0) {
		ml_http_error(req, 0, ml_diag_code(), 0, ml_diag_last());
	} else {
		ml_buf_add(&j.b, "\n]\n", 3);
		if (stream)
			evhttp_add_header(out, "ETag", etag);
		link_next(s, req, stream, &rd, &j);
		ml_http_send(req, 200, "OK", &j.b, NULL);
	}
	ml_buf_free(&j.b);
}

static void stats_route(struct ml_server *s, struct evhttp_request *req)
{
	struct ml_buf mp = {0}, json = {0};
	ml_op_stats(s, &mp);
	ml_msgpack_to_json(mp.data, mp.len, &json);
	ml_buf_add(&json, "\n", 1);
	ml_http_send(req, 200, "OK", &json, NULL);
	ml_buf_free(&mp);
	ml_buf_free(&json);
}

static void metrics_route(struct ml_server *s, struct evhttp_request *req)
{
	struct ml_buf b = {0};
	ml_op_metrics(s, &b);
	ml_http_send(req, 200, "OK", &b, "text/plain; version=0.0.4");
	ml_buf_free(&b);
}

static void health_route(struct ml_server *s, struct evhttp_request *req)
{
	struct ml_buf b = {0};
	ml_buf_addf(&b, "{\"status\":\"%s\",\"head\":%" PRIu64 "}\n",
		    s->stopping ? "stopping" : "ok", ml_log_head(s->log));
	ml_http_send(req, s->stopping ? 503 : 200, NULL, &b, NULL);
	ml_buf_free(&b);
}

/* After the penalty: a wrong token is answered late, and the connection closed. */
static void send_401(evutil_socket_t fd, short what, void *arg)
{
	struct evhttp_request *req = arg;
	ml_http_error(req, 401, ML_ERR_REFUSED, 0,
		      "unauthorized: send the server's token as 'Authorization: Bearer TOKEN'");
}

static int authorized(struct ml_server *s, struct evhttp_request *req)
{
	if (s->token == NULL)
		return 1;
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (h && strncmp(h, "Bearer ", 7) == 0) {
		const char *t = h + 7;
		size_t n = strlen(t);
		unsigned char d = n != s->token_len;
		for (size_t i = 0; i < n && i < s->token_len; i++)
			d |= (unsigned char)(t[i] ^ s->token[i]);
		if (d == 0)
			return 1;
	}
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	evhttp_add_header(out, "WWW-Authenticate", "Bearer realm=\"moonlog\"");
	evhttp_add_header(out, "Connection", "close");
	ml_server_warn(s, ML_WARN_AUTH, "an HTTP client sent no token or a wrong one");
	struct timeval tv = {0, ML_AUTH_DELAY_MS * 1000};
	/* a client that leaves meanwhile is simply not answered (evhttp keeps req for us) */
	event_base_once(s->base, -1, EV_TIMEOUT, send_401, req, &tv);
	return 0;
}

/*
 * --cors ORIGIN: a page of that origin (or of any, with "*") may read the
 * answers. The headers go on every answer to a request that says where it
 * comes from, errors included, so that a page can read why it failed.
 */
static void cors_headers(struct ml_server *s, struct evhttp_request *req)
{
	const char *origin = evhttp_find_header(evhttp_request_get_input_headers(req), "Origin");
	if (s->o.cors == NULL || origin == NULL)
		return;
	int any = strcmp(s->o.cors, "*") == 0;
	if (!any && strcmp(s->o.cors, origin) != 0)
		return; /* not that page's: the browser keeps the answer from it */
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	evhttp_add_header(out, "Access-Control-Allow-Origin", any ? "*" : origin);
	if (!any)
		evhttp_add_header(out, "Vary", "Origin");
	evhttp_add_header(out, "Access-Control-Expose-Headers", "ETag, Location, Link");
}

/* OPTIONS: what may be asked here; with --cors, a browser's preflight. No token needed. */
static void options_route(struct ml_server *s, struct evhttp_request *req)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *methods = "GET, HEAD, POST, PUT, DELETE, OPTIONS";
	evhttp_add_header(out, "Allow", methods);
	if (s->o.cors && evhttp_find_header(out, "Access-Control-Allow-Origin")) {
		evhttp_add_header(out, "Access-Control-Allow-Methods", methods);
		evhttp_add_header(out, "Access-Control-Allow-Headers",
				  "Authorization, Content-Type, If-Match, If-None-Match, "
				  "Last-Event-ID");
		evhttp_add_header(out, "Access-Control-Max-Age", "600");
	}
	ml_http_send(req, 204, "No Content", NULL, NULL);
}

static void wrong_method(struct evhttp_request *req, const char *allow)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
	char why[96];
	snprintf(why, sizeof(why), "method not allowed here: use %s", allow);
	ml_http_error(req, 405, ML_ERR_USAGE, 0, why);
}

static void route(struct ml_server *s, struct evhttp_request *req, const char *path,
		  struct evkeyvalq *q)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	int get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD; /* HEAD: the same, no body */
	if (m == EVHTTP_REQ_OPTIONS)
		return options_route(s, req);
	if (strcmp(path, "/health") == 0)
		return get ? health_route(s, req) : wrong_method(req, "GET");
	if (ml_http_console_route(s, req, path)) /* the page: http_console.c */
		return;
	if (!authorized(s, req))
		return;
	size_t plen = strlen(path);
	if (strncmp(path, "/streams/", 9) == 0 && plen > 18 &&
	    strcmp(path + plen - 9, "/metadata") == 0) { /* http_retention.c */
		char *raw = ml_xstrndup(path + 9, plen - 18);
		char *stream = evhttp_uridecode(raw, 0, NULL);
		ml_http_metadata(s, req, stream);
		free(stream);
		free(raw);
		return;
	}
	if (strncmp(path, "/streams/", 9) == 0 && path[9]) {
		char *stream = evhttp_uridecode(path + 9, 0, NULL);
		if (m == EVHTTP_REQ_POST)
			ml_http_append(s, req, stream);
		else if (m == EVHTTP_REQ_DELETE)
			ml_http_delete(s, req, stream, q); /* http_retention.c */
		else if (get)
			read_route(s, req, stream, q);
		else
			wrong_method(req, "GET, POST, DELETE");
		free(stream);
		return;
	}
	if (strcmp(path, "/all") == 0)
		return get ? read_route(s, req, NULL, q) : wrong_method(req, "GET");
	if (strcmp(path, "/streams") == 0) /* the list: http_streams.c */
		return get ? ml_http_streams(s, req, q) : wrong_method(req, "GET");
	if (strcmp(path, "/subscribe") == 0)
		return m == EVHTTP_REQ_GET ? ml_sse_start(s, req, q) : wrong_method(req, "GET");
	if (strcmp(path, "/stats") == 0)
		return get ? stats_route(s, req) : wrong_method(req, "GET");
	if (strcmp(path, "/metrics") == 0)
		return get ? metrics_route(s, req) : wrong_method(req, "GET");
	if (strcmp(path, "/scavenge") == 0) /* ops_scavenge.c */
		return get || m == EVHTTP_REQ_POST ? ml_http_scavenge(s, req, !get)
						   : wrong_method(req, "GET, POST");
	if (ml_http_scripts_route(s, req, path, q)) /* http_scripts.c */
		return;
	if (strcmp(path, "/eval") == 0)
		return ml_http_error(req, 403, ML_ERR_REFUSED, 0,
				     "eval is only available on the admin socket "
				     "(DATA/moonlog.sock), not over HTTP");
	ml_http_error(req, 404, ML_ERR_NOT_FOUND, 0,
		      "no such route; see docs/protocol.md (/streams/NAME, /all, /subscribe, "
		      "/stats, /metrics, /health, /scavenge)");
}

/* A Content-Length that is all digits: its value, or -1. */
static int64_t length_of(const char *v)
{
	int64_t n = 0;
	if (*v == 0)
		return -1;
	for (; *v; v++) {
		if (*v < '0' || *v > '9' || n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*v - '0');
	}
	return n;
}

/*
 * RFC 9112 section 6: a body's length must be unambiguous, or a proxy in front
 * and this server may see different requests in the same bytes. evhttp takes
 * the first Content-Length, and chunked over any Content-Length, so the
 * ambiguous cases are refused here: the answer closes the connection, and what
 * followed on it is never read as a request. The reason, or NULL.
 */
static const char *framing_error(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	int64_t len = -2;
	int te = 0;
	for (struct evkeyval *kv = TAILQ_FIRST(h); kv; kv = TAILQ_NEXT(kv, next)) {
		if (evutil_ascii_strcasecmp(kv->key, "Content-Length") == 0) {
			int64_t n = length_of(kv->value);
			if (n < 0 || (len != -2 && n != len))
				return "conflicting or malformed Content-Length headers: send one";
			len = n;
		} else if (evutil_ascii_strcasecmp(kv->key, "Transfer-Encoding") == 0) {
			if (te++ || evutil_ascii_strcasecmp(kv->value, "chunked") != 0)
				return "Transfer-Encoding other than a single 'chunked': send the "
				       "body with Content-Length or chunked";
		}
	}
	if (te && len != -2)
		return "both Content-Length and Transfer-Encoding: send only one";
	return NULL;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct ml_server *s = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	struct evkeyvalq q = {0};
	const char *bad;
	s->requests++;
	ml_hconn_busy(s, req); /* no deadline while the server answers (http_conn.c) */
	cors_headers(s, req);
	if ((bad = framing_error(req)) != NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		ml_http_error(req, 400, ML_ERR_USAGE, 0, bad);
	} else if (path == NULL ||
		   evhttp_parse_query_str(
		       evhttp_uri_get_query(uri) ? evhttp_uri_get_query(uri) : "", &q) != 0) {
		ml_http_error(req, 400, ML_ERR_USAGE, 0, "cannot read the request's path or query");
	} else {
		route(s, req, path, &q);
	}
	evhttp_clear_headers(&q);
	ml_server_settle_soon(s);
}

static void on_adopt(evutil_socket_t fd, short what, void *arg)
{
	ml_hconn_adopt_all(arg);
}

int ml_http_start(struct ml_server *s)
{
	struct sockaddr_storage ss;
	int len;
	if (ml_net_parse_addr(s->o.http, &ss, &len) != 0)
		return -1;
	s->http = evhttp_new(s->base);
	evhttp_set_max_body_size(s->http, s->o.max_request);
	evhttp_set_max_headers_size(s->http, 64 << 10);
	evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
						EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
						EVHTTP_REQ_OPTIONS);
	evhttp_set_gencb(s->http, on_request, s);
	evhttp_set_bevcb(s->http, ml_hconn_new, s); /* counted and timed: http_conn.c */
	s->adopt_ev = event_new(s->base, -1, 0, on_adopt, s);
	char host[256];
	const char *colon = strrchr(s->o.http, ':');
	snprintf(host, sizeof(host), "%.*s", (int)(colon - s->o.http), s->o.http);
	if (host[0] == '[') /* [::1]:7421 */
		memmove(host, host + 1, strlen(host)), host[strlen(host) - 1] = 0;
	s->http_sock = evhttp_bind_socket_with_handle(s->http, host, (uint16_t)atoi(colon + 1));
	if (s->http_sock == NULL)
		return ml_diag_set(ML_ERR_REFUSED,
				   "cannot listen for HTTP on %s (is another server there? choose "
				   "another with --http)",
				   s->o.http);
	s->http_lev = evhttp_bound_socket_get_listener(s->http_sock);
	ml_net_watch_listener(s, s->http_lev);
	evutil_socket_t fd = evhttp_bound_socket_get_fd(s->http_sock);
	struct sockaddr_storage b;
	socklen_t blen = sizeof(b);
	if (getsockname(fd, (struct sockaddr *)&b, &blen) == 0)
		s->http_port = ntohs(((struct sockaddr_in *)&b)->sin_port);
	return 0;
}

void ml_http_free(struct ml_server *s)
{
	ml_sse_free_all(s);
	ml_hconn_adopt_all(s); /* so that each learns of its end */
	if (s->http)
		evhttp_free(s->http);
	s->http = NULL;
	s->http_lev = NULL;
	if (s->adopt_ev)
		event_free(s->adopt_ev);
	s->adopt_ev = NULL;
	free(s->hconns);
	s->hconns = NULL;
}
