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

#include <moonlog/msgpack.h>

struct ml_conn;
struct ml_eval;
struct ml_hconn;
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
	uint64_t t0;	      /* when it came (ml_clock_ns; 0: when submitted), for the histogram */
	struct ml_conn *conn; /* RPC: the asking connection and its msgid */
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

/* What a warning is about: each cause prints at most one line a second (limits.c). */
enum ml_warn_cause {
	ML_WARN_ACCEPT,	  /* accept() failed: out of descriptors */
	ML_WARN_FULL,	  /* a connection refused at --max-conns */
	ML_WARN_TIMEOUT,  /* a slow client closed by a timeout */
	ML_WARN_AUTH,	  /* a wrong token */
	ML_WARN_LIBEVENT, /* libevent's own warnings */
	ML_WARN_SCRIPT,	  /* a request failed in a script: its traceback */
	ML_WARN_N
};

struct ml_warn {
	int64_t next_ms;     /* the next line may print from here (monotonic) */
	uint64_t suppressed; /* lines held back since the last one printed */
	char last[240];	     /* the last line held back */
};

/* A latency histogram for /metrics (metrics.c). */
#define ML_HIST_BUCKETS 16
struct ml_hist {
	uint64_t count, sum_ns;
	uint64_t bucket[ML_HIST_BUCKETS]; /* each bucket's own count (not cumulative) */
};
/* Counts one observation: the time since `since_ns` (ml_clock_ns). */
void ml_hist_observe(struct ml_hist *h, uint64_t since_ns);
/* The same for a duration of ns. */
void ml_hist_add(struct ml_hist *h, uint64_t ns);

struct ml_server {
	struct ml_server_options o;
	char *dir, *admin_path;
	struct event_base *base;
	struct ml_log *log;
	struct ml_router *router;
	struct evconnlistener *tcp, *admin, *http_lev; /* http_lev: owned by evhttp */
	struct evhttp *http;
	struct evhttp_bound_socket *http_sock;
	struct event *wake, *pump, *tick, *sigterm, *sigint, *stop_ev;
	struct event *stop_grace; /* stopping: appends that wait longer are given up */
	struct event *resume_ev;  /* accepting again after running out of descriptors */
	int accept_paused;
	uint32_t max_conns; /* what --max-conns came to with the descriptor limit (limits.c) */
	uint64_t fd_limit;  /* RLIMIT_NOFILE, raised to the hard limit where allowed */
	uint64_t refused, timed_out;
	struct ml_warn warns[ML_WARN_N];
	_Atomic(struct ml_pending *) done_q; /* completed appends, newest first */
	atomic_int head_moved;
	char *token;
	size_t token_len;
	struct ml_conn *conns, *dirty;
	uint32_t nconns, nadmin;  /* RPC connections; those of the admin socket */
	uint32_t nhttp;		  /* HTTP connections (http_conn.c) */
	struct ml_hconn **hconns; /* by descriptor */
	size_t hconns_cap;
	struct ml_hconn *hconn_new; /* made, not yet adopted */
	uint32_t hrefusing;	    /* of them, past the limit */
	int http_held;		    /* the HTTP listener waits for the adoption */
	struct event *adopt_ev;
	uint64_t inflight; /* appends queued in the log, all connections */
	int stopping;
	int kick; /* appends were queued this turn: ml_log_kick at its end */
	struct ml_pending *free_pending;
	struct ml_eval *eval;
	struct turn_hook *hooks;
	size_t nhooks;
	struct ml_buf scratch;
	uint64_t requests, errors, appended;
	struct ml_hist hist_append, hist_command, hist_query; /* metrics.c */
	uint64_t http_answers[600];			      /* by status code; [0]: other */
	struct ml_sse *sses;				      /* open server-sent event streams */
	int rpc_port, http_port;
	uint64_t started_ms;
	struct ml_server_scripts scripts; /* the hosted scripts; find is NULL when none */
	struct ml_command *waiting;	  /* commands waiting for a stream (rpc_scripts.c) */
	struct ml_scavenger *scavenger;	  /* the scavenge started last (ops_scavenge.c) */
};

/* http.c: msg for a person, into out: no traceback, no positions in moonlog's own modules. */
const char *ml_net_person_message(const char *msg, char *out, size_t n);
/* rpc_scripts.c: a request failed in a script: its traceback, if any, to the server's log. */
void ml_net_script_failed(struct ml_server *s, const char *full);

/* metrics.c: an HTTP answer went out with `code` (counted, and in errors if >= 400). */
void ml_net_http_answered(struct ml_server *s, int code);
/* metrics.c: the histograms, HTTP answers, process_* and build info, for GET /metrics. */
void ml_metrics_more(struct ml_server *s, struct ml_buf *b);

enum conn_kind { CONN_TCP, CONN_ADMIN };

struct ml_conn {
	struct ml_server *srv;
	int fd;
	enum conn_kind kind;
	struct event *rev, *wev;
	struct ml_buf in, out;
	size_t in_off, out_off;
	struct ml_msgpack_walk walk; /* how far the next request has been framed */
	uint64_t read_ns;	     /* when its last bytes came (ml_clock_ns): its appends' t0 */
	int authed, closed, dirty, blocked; /* blocked: too much output, subs paused */
	int penalty;			    /* a wrong token is being answered late (conn.c) */
	int timer_on;
	uint32_t auth_failures;
	uint64_t penalty_msgid;
	struct event *timer; /* the penalty, the frame timeout, the idle timeout */
	uint32_t inflight;
	struct ml_sub **subs;
	size_t nsubs;
	int env_ref; /* eval: this connection's Lua environment (LUA_NOREF if none) */
	struct ml_conn *next, *prev, *dirty_next;
};

/* server.c */
struct ml_pending *ml_pending_get(struct ml_server *s);
void ml_pending_put(struct ml_server *s, struct ml_pending *p);
/* Submits p->req; calls p->finish now (answered at once) or later from the loop. The
 * fronts append through ml_op_append (ops.h), which calls it. */
void ml_pending_submit(struct ml_server *s, struct ml_pending *p);
/* Routes what moved and flushes what connections have to send: the end of a turn. */
void ml_server_settle(struct ml_server *s);
/*
 * The same once every callback the loop has ready now has run: what a request
 * callback calls, so that the appends of every client whose request arrived in
 * this turn go to the log together (one sync), not one settle (and sync) each.
 */
void ml_server_settle_soon(struct ml_server *s);
/* A line on stderr, "moonlog serve: ...", unless the server is quiet. */
#define ml_server_log_line(s, ...) ((s)->o.quiet ? (void)0 : ml_line("moonlog serve", __VA_ARGS__))
int ml_net_parse_addr(const char *addr, struct sockaddr_storage *ss, int *sslen);
/* TCP_NODELAY and keepalive (a vanished peer found in about two minutes) on a TCP socket. */
void ml_net_tcp_options(int fd);

/* conn.c */
void ml_conn_accept(struct ml_server *s, int fd, enum conn_kind kind);
void ml_conn_mark(struct ml_conn *c); /* has output: flush at the end of the turn */
void ml_conn_flush(struct ml_conn *c);
/* Hands pending output to the socket now, as far as it takes it, and nothing else. */
void ml_conn_send_early(struct ml_conn *c);
void ml_conn_close(struct ml_conn *c);
void ml_conn_release(struct ml_conn *c); /* an in-flight request of c finished */
/* Bytes were added to c->in (by the socket, or by a fuzz target): handles the complete
 * requests among them; their answers go out at the end of the turn (the loop runs it).
 * c may be closed (and freed) on return. */
void ml_conn_received(struct ml_conn *c);
/* A wrong token: answer msgid after a delay, reading nothing meanwhile; close after a few. */
void ml_conn_auth_failed(struct ml_conn *c, uint64_t msgid);

/* limits.c: descriptors, the connection limit, paused accept, rate-limited warnings */
#define ML_AUTH_DELAY_MS 200 /* a wrong token is answered this late */
#define ML_AUTH_TRIES	 3   /* wrong tokens before the connection is closed */
/* Sets s->max_conns from --max-conns and the descriptors left (once the server is set up). */
void ml_net_plan_conns(struct ml_server *s);
/* Whether one more TCP or HTTP connection fits under s->max_conns (admin ones always do). */
int ml_net_room(const struct ml_server *s);
/* Makes a listener pause, not spin, when accept() fails (out of descriptors). */
void ml_net_watch_listener(struct ml_server *s, struct evconnlistener *l);
/* A connection closed: an accept paused for want of descriptors may resume now. */
void ml_net_conn_gone(struct ml_server *s);
/* Notes a connection refused at the limit (counted, and a rate-limited warning). */
void ml_net_refused(struct ml_server *s, const char *what);
/* The server whose loop runs on this thread (for callbacks whose argument is evhttp's). */
void ml_net_set_serving(struct ml_server *s);
/* One line on stderr for `cause`, at most one a second; those held back are counted. */
void ml_server_warn(struct ml_server *s, enum ml_warn_cause cause, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints the count of the lines held back once their second has passed (on the tick). */
void ml_net_warn_tick(struct ml_server *s);
void ml_net_limits_free(struct ml_server *s);

/* rpc.c */
void ml_rpc_dispatch(struct ml_conn *c, const uint8_t *msg, size_t len);
/* An append whole in buf[0..n) submitted without framing: its length, or 0 (frame it). */
size_t ml_rpc_append_whole(struct ml_conn *c, const uint8_t *buf, size_t n);
/* Writes an `error` notification [2, "error", [why]] (for a message that is no request). */
void ml_rpc_notify_error(struct ml_conn *c, const char *why);
/* Answers an auth call whose token was wrong (after the penalty, conn.c). */
void ml_rpc_auth_refused(struct ml_conn *c, uint64_t msgid);
/* Answers msgid: ok (the caller then writes the result), or an error (code, message; a
 * conflict's actual version), or the diag's error. The errors return 0: "answered". */
void ml_rpc_reply_ok(struct ml_conn *c, uint64_t msgid);
int ml_rpc_reply_err(struct ml_conn *c, uint64_t msgid, enum ml_err code, int64_t actual,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int ml_rpc_reply_diag(struct ml_conn *c, uint64_t msgid);

/* rpc_read.c */
/* Writes an event as a msgpack map: position, stream, version, type, id, time, data, meta. */
void ml_rpc_event(struct ml_buf *b, const struct ml_event *e, uint32_t deliveries);
/* The read method: read(stream, from, limit, backwards, fields). */
int ml_rpc_read(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np);
/* Reads the events of an append (a map or an array of maps) into p (ops.h); -1 with diag. */
int ml_rpc_parse_events(struct ml_msgpack_reader *r, struct ml_pending *p);
/* The result of a finished append as a msgpack map. */
void ml_rpc_append_result(struct ml_buf *b, const struct ml_append *req);

/* http.c */
int ml_http_start(struct ml_server *s);
/* http_conn.c: HTTP connections counted against --max-conns, and their deadlines */
struct bufferevent *ml_hconn_new(struct event_base *base, void *srv); /* evhttp's bevcb */
void ml_hconn_adopt_all(struct ml_server *s);
struct ml_hconn *ml_hconn_of(struct ml_server *s, struct evhttp_request *req);
/* A request is complete and with the server: no deadline until it is answered. */
struct ml_hconn *ml_hconn_busy(struct ml_server *s, struct evhttp_request *req);
void ml_hconn_set_sse(struct ml_hconn *h, struct ml_sse *x); /* told when the client leaves */
void ml_sse_gone(struct ml_sse *x);			     /* sse.c: the client left */
void ml_sse_flush(struct ml_server *s);	    /* sse.c: send what the streams gathered */
void ml_sse_heartbeat(struct ml_server *s); /* sse.c: a comment on streams idle for 15 s */
void ml_http_free(struct ml_server *s);

/* ml_script_query, timed for the query histogram (rpc_scripts.c). */
struct ml_script;
int ml_net_query(struct ml_server *s, struct ml_script *sc, const char *name, const void *args,
		 size_t len, struct ml_buf *out);

/* rpc_scripts.c: the methods command, query, get, state, scripts, reload, parked,
 * replay_parked and dry_run, in rpc.c's method table: -1 when a param is not of the kind
 * they take. */
int ml_rpc_command(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np);
int ml_rpc_query(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np);
int ml_rpc_get(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np);
int ml_rpc_state(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np);
int ml_rpc_scripts(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np);
int ml_rpc_backup(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np);
int ml_rpc_scavenge(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r,
		    uint32_t np); /* ops_scavenge.c */
int ml_rpc_reload(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np);
int ml_rpc_parked(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np);
int ml_rpc_dry_run(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np);
int ml_rpc_replay_parked(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r,
			 uint32_t np);
/* The table of the hosted scripts (server.h), or NULL when the server hosts none. */
const struct ml_server_scripts *ml_net_scripts(struct ml_server *s);
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
