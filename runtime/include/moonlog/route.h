/*
 * route.h - which events go where: stream patterns, filters, subscriptions
 * that catch up from the log and then follow it live, and groups of competing
 * consumers with acknowledgements, redelivery and parking.
 *
 * A subscription never holds events of its own: it is a cursor into the log
 * and a filter. The router moves each cursor towards the log's head while its
 * sink has room, reading the events back from the log, so catching up and
 * following live are one path (no gap, no duplicate at the switch), and a
 * sink that stops taking events costs a cursor, not memory. Everything here
 * runs on one thread (the server's loop).
 *
 * A group's members may sit on several nodes that share one log (log.h,
 * ml_log_node): the group is then kept in the log itself, in the system stream
 * $group-NAME, where each node claims ranges of positions to deliver to its own
 * members, settles them as they are acked, and takes over the ranges of a node
 * that is gone (docs/scale-out.md). On a log of its own, a group's acked
 * position is a file in DATA/groups/.
 */
#ifndef MOONLOG_ROUTE_H
#define MOONLOG_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include <moonlog/api.h>
#include <moonlog/log.h>
#include <moonlog/util.h>

/*
 * Stream patterns, the same rules as lua/moonlog/filter.lua: "$all" every
 * stream; "*" every stream but system ones ("$..."); "prefix-*" (a '*' only
 * at the end); a name without '-' is a category (itself and "name-..."); a
 * name with '-' is exact.
 */
ML_API int ml_pattern_check(const char *p, size_t len); /* 0, or -1 with diag */
ML_API int ml_pattern_match(const char *p, size_t plen, const char *stream, size_t slen);

/* A filter: any of several stream patterns, and optionally a set of event types. */
struct ml_filter;
ML_API struct ml_filter *ml_filter_new(void);
ML_API void ml_filter_free(struct ml_filter *f);
/* Adds a stream pattern; -1 with diag if it is not a valid one. */
ML_API int ml_filter_add_stream(struct ml_filter *f, const char *p, size_t len);
/* Adds an event type: once any is added, only those types match. */
ML_API void ml_filter_add_type(struct ml_filter *f, const char *t, size_t len);
/* Only the types added match, and while none is, nothing does. */
ML_API void ml_filter_types_only(struct ml_filter *f);
ML_API int ml_filter_match(const struct ml_filter *f, const char *stream, size_t slen,
			   const char *type, size_t tlen);
/* Does one of the filter's patterns take the stream (whatever the type)? */
ML_API int ml_filter_match_stream(const struct ml_filter *f, const char *stream, size_t slen);
/* The filter in words ("account-*, order types Placed|Paid"), for stats. */
ML_API void ml_filter_describe(const struct ml_filter *f, struct ml_buf *out);

struct ml_router;
struct ml_sub;

/*
 * Where a subscription's events go. deliver returns 0 to go on, or 1 when the
 * sink is now full: the router stops feeding the subscription (the event just
 * given counts as delivered) until ml_sub_resume. `deliveries` is 0 for a
 * plain subscription, the delivery count (1, 2, ...) for a group member.
 */
struct ml_sink {
	int (*deliver)(struct ml_sub *s, const struct ml_event *e, uint32_t deliveries, void *arg);
	void *arg;
};

struct ml_router_options {
	const char *dir;	 /* DATA: group positions live in DATA/groups/ (a log not shared) */
	uint32_t batch;		 /* events read per subscription per turn (default 4096) */
	uint32_t ack_timeout_ms; /* group default: redeliver after this (default 30000) */
	uint32_t max_deliveries; /* group default: park after this many (default 5) */
	uint32_t max_inflight;	 /* group default: unacked events per member (default 64) */
};

ML_API struct ml_router *ml_router_new(struct ml_log *log, const struct ml_router_options *o);
/*
 * Writes every group's acked position (a shared log: settles this node's ranges
 * and gives back the rest, without waiting), frees the subscriptions and the
 * router. Call it before the log closes.
 */
ML_API void ml_router_free(struct ml_router *r);

/* Group settings given by the first member; 0 fields take the router's defaults. */
struct ml_group_options {
	uint32_t ack_timeout_ms, max_deliveries, max_inflight;
};

/*
 * A new subscription: events matching `f` (consumed) after position `from`
 * (0 = from the start; UINT64_MAX = only new ones). With a group name, it
 * joins (creating if needed) that group: `from` then only matters for a new
 * group with no stored position. -1 with diag on a bad group name.
 */
ML_API struct ml_sub *ml_sub_new(struct ml_router *r, struct ml_filter *f, uint64_t from,
				 const char *group, const struct ml_group_options *go,
				 const struct ml_sink *sink);
ML_API void ml_sub_free(struct ml_sub *s);
ML_API uint64_t ml_sub_id(const struct ml_sub *s);
/* The sink has room again: the router feeds the subscription on the next pump. */
ML_API void ml_sub_resume(struct ml_sub *s);
ML_API void *ml_sub_data(struct ml_sub *s);
ML_API void ml_sub_set_data(struct ml_sub *s, void *p);

/* Acknowledges a group's event; -1 with diag if the group or position is unknown. */
ML_API int ml_router_ack(struct ml_router *r, const char *group, size_t len, uint64_t position);

/*
 * Moves every subscription that has room towards the log's head, at most
 * opt.batch events each. Returns 1 if some still have events to take (call
 * again on the next turn), 0 when all are at the head or full.
 */
ML_API int ml_router_pump(struct ml_router *r);
/* Time passes: redelivers expired group events, parks those past max_deliveries,
 * writes changed group positions (or settles what moved in a shared log's group).
 * Call a few times a second. */
ML_API void ml_router_tick(struct ml_router *r);

struct ml_router_stats {
	uint64_t subs, groups, delivered, redelivered, parked;
	uint64_t taken_over; /* shared log: group ranges taken over from a node gone */
};
ML_API void ml_router_stats(struct ml_router *r, struct ml_router_stats *out);

#endif
