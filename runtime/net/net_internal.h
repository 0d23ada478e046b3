/*
 * net_internal.h - what the files of net/ share: the server, its
 * connections, and the pending requests that wait for the log.
 */
#ifndef ML_NET_INTERNAL_H
#define ML_NET_INTERNAL_H

#include <stdatomic.h>
#include <sys/socket.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include <moonlog/log.h>
#include <moonlog/route.h>
#include <moonlog/server.h>
#include <moonlog/util.h>

#include "net/mp.h"

struct ml_conn;
struct ml_eval;
struct ml_sse;

/*
 * An append waiting for the log. `finish` runs on the loop thread once the
 * flusher has called done (or at once when the log answered at once).
 */
struct ml_pending {
	struct ml_append req;
	struct ml_server *srv;
	void (*finish)(struct ml_pending *p);
	struct ml_pending *qnext; /* the completion queue, pushed by the flusher */
	struct ml_conn *conn;	  /* RPC: the asking connection and its msgid */
	uint64_t msgid;
	struct evhttp_request *http; /* HTTP: the request to answer */
	void *ctx;		     /* eval: the run waiting for it */
	struct ml_event_in ev1;	     /* room for a single event (the common case) */
	struct ml_expect_in expect;
	uint64_t pos1, ver1;
	struct ml_event_in *evs; /* several events: allocated */
	uint64_t *poss, *vers;
};

struct turn_hook {
	void (*fn)(struct ml_server *s, void *arg);
	void *arg;
};

struct ml_server {
	struct ml_server_options o;
	char *dir, *admin_path;
	struct event_base *base;
	struct ml_log *log;
	struct ml_router *router;
	struct evconnlistener *tcp, *admin;
	struct evhttp *http;
	struct evhttp_bound_socket *http_sock;
	struct event *wake, *pump, *tick, *sigterm, *sigint, *stop_ev;
	_Atomic(struct ml_pending *) done_q; /* completed appends, newest first */
	atomic_int head_moved;
	char *token;
	size_t token_len;
	struct ml_conn *conns, *dirty;
	uint32_t nconns;
	uint64_t inflight; /* appends queued in the log, all connections */
	int stopping;
	int kick; /* appends were queued this turn: ml_log_kick at its end */
	struct ml_pending *free_pending;
	struct ml_eval *eval;
	struct turn_hook *hooks;
	size_t nhooks;
	struct ml_buf scratch;
	uint64_t requests, errors, appended;
	struct ml_sse *sses; /* open server-sent event streams */
	int rpc_port, http_port;
	uint64_t started_ms;
	struct ml_net_scripts *scripts; /* hosted scripts, or NULL (rpc_scripts.c) */
};

enum conn_kind { CONN_TCP, CONN_ADMIN };

struct ml_conn {
	struct ml_server *srv;
	int fd;
	enum conn_kind kind;
	struct event *rev, *wev;
	struct ml_buf in, out;
	size_t in_off, out_off;
	struct ml_mp_walk walk;		    /* how far the next request has been framed */
	int authed, closed, dirty, blocked; /* blocked: too much output, subs paused */
	uint32_t inflight;
	struct ml_sub **subs;
	size_t nsubs;
	int env_ref; /* eval: this connection's Lua environment (LUA_NOREF if none) */
	struct ml_conn *next, *prev, *dirty_next;
};

/* server.c */
struct ml_pending *ml_pending_get(struct ml_server *s);
void ml_pending_put(struct ml_server *s, struct ml_pending *p);
/* Submits p->req; calls p->finish now (answered at once) or later from the loop. */
void ml_pending_submit(struct ml_server *s, struct ml_pending *p);
/* Routes what moved and flushes what connections have to send: the end of a turn. */
void ml_server_settle(struct ml_server *s);
void ml_server_log_line(struct ml_server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ml_server_stats_mp(struct ml_server *s, struct ml_buf *b);
/* stats.c: the Prometheus text format */
void ml_server_metrics(struct ml_server *s, struct ml_buf *b);
int ml_net_parse_addr(const char *addr, struct sockaddr_storage *ss, int *sslen);

/* conn.c */
void ml_conn_accept(struct ml_server *s, int fd, enum conn_kind kind);
void ml_conn_mark(struct ml_conn *c); /* has output: flush at the end of the turn */
void ml_conn_flush(struct ml_conn *c);
/* Hands pending output to the socket now, as far as it takes it, and nothing else. */
void ml_conn_send_early(struct ml_conn *c);
void ml_conn_close(struct ml_conn *c);
void ml_conn_release(struct ml_conn *c); /* an in-flight request of c finished */

/* rpc.c */
void ml_rpc_dispatch(struct ml_conn *c, const uint8_t *msg, size_t len);
/* Writes an event as a msgpack map: position, stream, version, type, id, time, data, meta. */
void ml_rpc_event(struct ml_buf *b, const struct ml_event *e, uint32_t deliveries);
/* Reads the events of an append (a map or an array of maps) into p; -1 with diag. */
int ml_rpc_parse_events(struct ml_mp *r, struct ml_pending *p, uint32_t max_events);
/* The result of a finished append as a msgpack map. */
void ml_rpc_append_result(struct ml_buf *b, const struct ml_append *req);

/* http.c */
int ml_http_start(struct ml_server *s);
void ml_sse_flush(struct ml_server *s); /* sse.c: send what the streams gathered */
void ml_http_free(struct ml_server *s);

/* rpc_scripts.c: command, query, get, state, scripts */
void ml_rpc_command(struct ml_conn *c, uint64_t msgid, struct ml_mp *r, uint32_t np);
void ml_rpc_query(struct ml_conn *c, uint64_t msgid, struct ml_mp *r, uint32_t np);
void ml_rpc_get(struct ml_conn *c, uint64_t msgid, struct ml_mp *r, uint32_t np);
void ml_rpc_state(struct ml_conn *c, uint64_t msgid, struct ml_mp *r, uint32_t np);
void ml_rpc_scripts(struct ml_conn *c, uint64_t msgid, struct ml_mp *r, uint32_t np);
void ml_rpc_reload(struct ml_conn *c, uint64_t msgid, struct ml_mp *r, uint32_t np);
void ml_rpc_parked(struct ml_conn *c, uint64_t msgid, struct ml_mp *r, uint32_t np);
void ml_rpc_replay_parked(struct ml_conn *c, uint64_t msgid, struct ml_mp *r, uint32_t np);
struct ml_host *ml_server_host(struct ml_server *s); /* NULL when no scripts are hosted */
void ml_scripts_metrics(struct ml_server *s, struct ml_buf *b);
/*
 * A decider's command, run for RPC or HTTP: decide, append with the expected
 * version, decide again on a conflict. `answer` is called once with the outcome.
 */
struct ml_command;
struct ml_command_outcome {
	int status;		      /* 201 appended, 422 rejected, 404, 409, 400, 500, 503 */
	enum ml_err code;	      /* the error's code when status is not 201 */
	const char *message;	      /* the reason or the error */
	const struct ml_buf *details; /* 422: msgpack of the details (nil when none) */
	const struct ml_buf *result;  /* 201: msgpack map {stream, version, position, events} */
};
void ml_command_run(struct ml_server *s, const char *decider, size_t dlen, const char *name,
		    size_t nlen, const void *args, size_t alen,
		    void (*answer)(const struct ml_command_outcome *o, void *arg), void *arg);
/* http_scripts.c: /commands, /projections, /reducers, /scripts; 0 if the path is not one. */
int ml_http_scripts_route(struct ml_server *s, struct evhttp_request *req, const char *path,
			  struct evkeyvalq *q);

/* lua_eval.c */
struct ml_eval *ml_eval_new(struct ml_server *s);
void ml_eval_free(struct ml_eval *e);
/* Runs chunk for connection c and answers msgid (possibly later: appends yield). */
void ml_eval_run(struct ml_eval *e, struct ml_conn *c, uint64_t msgid, const char *chunk,
		 size_t len);
void ml_eval_conn_closed(struct ml_eval *e, struct ml_conn *c);
/* Answers msgid with the completions of line (an array of strings). */
void ml_eval_complete(struct ml_eval *e, struct ml_conn *c, uint64_t msgid, const char *line,
		      size_t len);

#endif
