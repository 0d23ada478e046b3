/*
 * ops.h - the server's operations on its log: append, read and stats.
 *
 * Every front of the server reaches the log through here: msgpack-RPC
 * (rpc.c), HTTP (http.c, http_route.c), decided commands (rpc_scripts.c) and
 * the Lua log API of chunks evaluated on the admin socket (lua_eval_log.c).
 * A front decodes its request into the arguments below and encodes the
 * outcome in its own format; what an operation means (what it refuses, how
 * far a read goes, what the stats hold) is decided here once, so that every
 * front refuses the same things with the same words and counts them alike.
 */
#ifndef ML_NET_OPS_H
#define ML_NET_OPS_H

#include "net/net_internal.h"

#define ML_OP_MAX_EVENTS 10000 /* events in one append */

/* ---- append -------------------------------------------------------------- */

/*
 * Makes room in p for the n events of an append (with their positions and
 * versions), for the front to fill in p->evs. -1 with diag (ML_ERR_USAGE) when
 * n is not 1 to ML_OP_MAX_EVENTS: a front calls it before it decodes the events.
 */
int ml_op_append_room(struct ml_pending *p, size_t n);

/*
 * Appends the events in p (ml_op_append_room, filled by the front) to
 * `stream`, guarded by the expected version `expected` (ML_EXPECT_ANY: no
 * guard). The front has set p->finish and its own context in p; finish(p)
 * runs once with the outcome in p->req: at once when the log refuses the
 * append or already holds it, else from the loop once it is durable or has
 * failed. The bytes of the stream and the events are needed only during the
 * call (the log copies them).
 */
void ml_op_append(struct ml_server *s, struct ml_pending *p, const char *stream, size_t stream_len,
		  int64_t expected);

/* The stream's version after a finished append: its last event's. */
uint64_t ml_op_append_version(const struct ml_pending *p);

/* ---- delete and metadata (ops_retention.c) -------------------------------- */

/*
 * Deletes a stream: appends its `$deleted` event ({hard = bool}; hard: a
 * tombstone, the name is never written again), guarded by `expected`
 * (ML_EXPECT_ANY here means the stream must exist). As ml_op_append: p->finish
 * runs with the outcome, also for a refusal (a `$` name, a bad name).
 */
void ml_op_delete(struct ml_server *s, struct ml_pending *p, const char *stream, size_t len,
		  int64_t expected, int hard);
/*
 * Sets a stream's retention metadata: the keys of the msgpack map (max_age in
 * seconds, max_count, truncate_before; nil or 0 removes one) over the ones it
 * has, appended as a `$metadata` event to `$meta-<stream>` guarded by `expected`
 * (that stream's version). As ml_op_delete.
 */
void ml_op_set_meta(struct ml_server *s, struct ml_pending *p, const char *stream, size_t len,
		    const void *map, size_t map_len, int64_t expected);
/* A stream's metadata as a msgpack map {max_age, max_count, truncate_before, deleted,
 * deleted_version, hard}: what the log applies now. */
void ml_op_meta_put(struct ml_server *s, const char *stream, size_t len, struct ml_buf *out);

/* ---- read ---------------------------------------------------------------- */

/* A read, as a front decoded it. */
struct ml_op_read {
	const char *stream; /* NULL: $all */
	size_t stream_len;
	uint64_t from;	/* 0: from the first event (the last one, backwards) */
	uint64_t limit; /* 0, or more than --max-read: --max-read */
	int backwards;
	uint64_t count; /* set by ml_op_read_plan: how many events the read delivers, or at most
			   that many when `exact` is 0 */
	int exact;	/* set by ml_op_read_plan: 0 when removed events (docs/log.md) may be
			   left out, so that the count is known only once it is done */
};

/*
 * Checks a read and fixes what it will deliver: where it starts (rd->from)
 * and how many events (rd->count), known before the first event so that a
 * front may write the count first. 0, or -1 with diag (ML_ERR_USAGE).
 */
int ml_op_read_plan(struct ml_server *s, struct ml_op_read *rd);

/*
 * Delivers the planned events to fn, in order, leaving out the removed ones
 * (ml_log_removed): a read of $all then goes on past them until it has
 * rd->count events or reaches the head. The number delivered, or -1 with diag
 * when fn failed or stopped, or (exact) the log could not read them all.
 */
int64_t ml_op_read(struct ml_server *s, const struct ml_op_read *rd, ml_event_fn fn, void *arg);

/* ---- stats (stats.c) ----------------------------------------------------- */

/* The server's figures (docs/operations.md, "Watching it") as one msgpack map. */
void ml_op_stats(struct ml_server *s, struct ml_buf *out);
/* The same figures in the Prometheus text format, with the hosted scripts' own. */
void ml_op_metrics(struct ml_server *s, struct ml_buf *out);

/* ---- scavenging (ops_scavenge.c) ----------------------------------------- */

/* Starts a scavenge of the log on a thread of its own: 0, or -1 with diag (ML_ERR_BUSY when
 * one runs). */
int ml_op_scavenge_start(struct ml_server *s);
/* Its progress, or the last one's result, as one msgpack map (the `scavenge` of stats). */
void ml_op_scavenge_status(struct ml_server *s, struct ml_buf *out);
/* Stops a running one after its segment, and waits for it (before the log closes). */
void ml_op_scavenge_stop(struct ml_server *s);

#endif
