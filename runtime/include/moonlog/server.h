/*
 * server.h - `moonlog serve`: the log as a network service.
 *
 * One libevent loop owns every socket (msgpack-RPC on TCP and on the admin
 * Unix socket, HTTP with JSON and server-sent events) and the routing of
 * events to subscribers. Appends go to the log's group commit; its flusher
 * thread hands completions and head moves back to the loop in batches, so the
 * loop never waits for a disk. The wire protocols are described in
 * docs/protocol.md, the flags and limits in docs/operations.md.
 */
#ifndef MOONLOG_SERVER_H
#define MOONLOG_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <moonlog/api.h>
#include <moonlog/log.h>
#include <moonlog/util.h>

struct ml_server;

struct ml_server_options {
	const char *dir;    /* the data folder (default ./moonlog-data): admin socket, groups */
	const char *listen; /* msgpack-RPC over TCP, HOST:PORT (default 127.0.0.1:7420); "" = off */
	const char *http;   /* HTTP, HOST:PORT (default 127.0.0.1:7421); "" = off */
	const char *admin;  /* the admin socket (default DATA/moonlog.sock); "" = off */
	const char *token_file;	 /* if set: HTTP needs a bearer token, TCP an auth call */
	uint32_t max_request;	 /* bytes in one request or HTTP body (default 16 MiB) */
	uint32_t max_conns;	 /* open TCP + HTTP connections (default 0: from the descriptor
				    limit, see docs/operations.md; admin ones are not counted) */
	uint32_t max_outbuf;	 /* bytes waiting to be sent to one connection (default 8 MiB) */
	uint32_t max_read;	 /* events in one read answer (default 10000) */
	uint64_t eval_budget;	 /* Lua instructions one eval may run (default 100 million) */
	uint32_t ack_timeout_ms; /* groups' default redelivery timeout (default 30000) */
	uint32_t max_deliveries; /* groups' default deliveries before parking (default 5) */
	/* Slow clients (milliseconds; 0 = never): */
	uint32_t header_timeout_ms;   /* HTTP: a request's head must arrive in this (10000) */
	uint32_t idle_timeout_ms;     /* HTTP: an idle keep-alive connection is closed (60000) */
	uint32_t frame_timeout_ms;    /* RPC: part of a request, then silence this long (10000) */
	uint32_t rpc_idle_timeout_ms; /* RPC over TCP: nothing subscribed or pending (0) */
	uint32_t sse_heartbeat_ms;    /* SSE: a comment after this long without events (15000) */
	const char *cors; /* HTTP: the origin (or "*") whose pages may call the API; NULL = none */
	int quiet;	  /* no log lines on stderr */
};

ML_API void ml_server_options_init(struct ml_server_options *o);

/*
 * Serves `log`, which the caller opened (in o->dir) and closes after
 * ml_server_free, and binds every listener; NULL with diag. Raises the
 * process's soft RLIMIT_NOFILE to its hard limit where allowed (ml_raise_fd_limit:
 * call it before opening the log, as that takes a descriptor per segment).
 */
ML_API struct ml_server *ml_server_new(struct ml_log *log, const struct ml_server_options *o);
/* Runs the loop until SIGTERM/SIGINT or ml_server_stop; 0 on a clean stop. */
ML_API int ml_server_run(struct ml_server *s);
/* Asks the loop to stop (from any thread): stop accepting, finish what is in flight, sync. */
ML_API void ml_server_stop(struct ml_server *s);
/* Frees what ml_server_new made; the log stays open, and calls nothing of the server's
 * any more. NULL is fine. */
ML_API void ml_server_free(struct ml_server *s);
/* The TCP port actually bound (useful with port 0), or 0. */
ML_API int ml_server_rpc_port(struct ml_server *s);
ML_API int ml_server_http_port(struct ml_server *s);

/*
 * Between two turns of the loop, after events have been routed, the server
 * calls each turn hook: the place where hosted scripts are fed the events
 * that became durable meanwhile. Add hooks before ml_server_run.
 */
ML_API void ml_server_on_turn(struct ml_server *s, void (*fn)(struct ml_server *s, void *arg),
			      void *arg);

/* Runs the turn hooks again at the next turn of the loop (from any thread): for a hook
 * with more work to do, or woken by another thread. */
ML_API void ml_server_again(struct ml_server *s);

/* The server's libevent loop, for whoever adds events of its own to it (the script
 * host watches the scripts folder and SIGHUP there). */
struct event_base;
ML_API struct event_base *ml_server_event_base(struct ml_server *s);

/*
 * The scripts the server serves: the RPC methods command, query, get, state,
 * scripts, reload, parked, replay_parked and dry_run, the HTTP routes /commands,
 * /projections, /reducers and /scripts, and eval's scripts() reach them only
 * through this table, which whoever hosts them fills in (the script host, in
 * ml_host_serve). Every call comes on the loop's thread and passes `arg`.
 * Answers are msgpack; -1 and NULL come with a diag whose message the client
 * is shown.
 */
struct ml_script;
struct ml_server_scripts {
	void *arg;
	/* A loaded script by name; NULL (ML_ERR_NOT_FOUND) when there is none. */
	struct ml_script *(*find)(void *arg, const char *name, size_t len);
	/* The reducer that keeps a state for `stream`, for get(stream); NULL when none or
	 * several do. */
	struct ml_script *(*reducer_for)(void *arg, const char *stream, size_t len);
	/* The position a script's state is as of. */
	uint64_t (*position)(void *arg, const struct ml_script *s);
	/* Every script's status (an array of maps); the same as Prometheus text. */
	void (*status)(void *arg, struct ml_buf *out);
	void (*metrics)(void *arg, struct ml_buf *out);
	/* Loads the script `name` again from its file (NULL: rescans the folder); the
	 * outcome. */
	int (*reload)(void *arg, const char *name, size_t len, struct ml_buf *out);
	/* A handler's parked events, or with `replay` handles them again; the outcome. */
	int (*parked)(void *arg, const char *name, size_t len, int replay, struct ml_buf *out);
	/* A dry run of a new version of `name`: options is a msgpack map (ml_host_dry_run in
	 * host.h); the dry run's state or report, or the outcome of applying it. */
	int (*dry_run)(void *arg, const char *name, size_t len, const void *options,
		       size_t options_len, struct ml_buf *out);
};
/* Serves the scripts of `t` (copied) from now on; before ml_server_run. */
ML_API void ml_server_set_scripts(struct ml_server *s, const struct ml_server_scripts *t);

#endif
