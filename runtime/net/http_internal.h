/*
 * http_internal.h - what the HTTP files of net/ share (http*.c, sse.c).
 */
#ifndef ML_NET_HTTP_INTERNAL_H
#define ML_NET_HTTP_INTERNAL_H

#include <netinet/in.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "net/net_internal.h"

void ml_http_send(struct evhttp_request *req, int code, const char *reason,
		  const struct ml_buf *body, const char *type);
void ml_http_error(struct evhttp_request *req, int status, enum ml_err code, int64_t actual,
		   const char *msg);
void ml_http_append(struct ml_server *s, struct evhttp_request *req, const char *stream);
/* If-Match: a version (quoted or not), no_stream, exists, * or any; absent = any. 0, or -1
 * with diag. */
int ml_http_if_match(struct evhttp_request *req, int64_t *out);
/* The status of a failed write to stream (p->req.err): 412 a failed If-Match, 410 a stream
 * deleted for good, else 0 (the code's own). */
int ml_http_write_status(struct ml_server *s, const struct ml_pending *p, const char *stream);

/* http_retention.c: DELETE /streams/{stream}, and GET/PUT /streams/{stream}/metadata */
void ml_http_delete(struct ml_server *s, struct evhttp_request *req, const char *stream,
		    struct evkeyvalq *q);
void ml_http_metadata(struct ml_server *s, struct evhttp_request *req, const char *stream);

/* http_console.c: GET / and /console/{file}, the web console's files (served without the
 * token); 0 when the path is not one of them. */
int ml_http_console_route(struct ml_server *s, struct evhttp_request *req, const char *path);
/* http_streams.c: GET /streams, the streams matching a pattern. */
void ml_http_streams(struct ml_server *s, struct evhttp_request *req, struct evkeyvalq *q);
/* ops_scavenge.c: POST /scavenge (start: 202) and GET /scavenge (its progress). */
void ml_http_scavenge(struct ml_server *s, struct evhttp_request *req, int start);

/* sse.c */
void ml_sse_start(struct ml_server *s, struct evhttp_request *req, struct evkeyvalq *q);
void ml_sse_free_all(struct ml_server *s);

#endif
