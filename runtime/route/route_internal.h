/*
 * route_internal.h - what router.c and the group files share.
 *
 *   router.c        subscriptions: cursors moved towards the head
 *   group.c         a group on this node: members, round robin, acks, redelivery,
 *                   parking, and the acked position in DATA/groups/NAME.pos
 *                   when the log is this node's alone
 *   group_state.c   a group kept in the log, when several nodes share it: the
 *                   events of $group-NAME and the state they build, the same on
 *                   every node
 *   group_claims.c  this node's part in such a group: what it claims, settles,
 *                   releases and takes over, as guarded appends to $group-NAME
 */
#ifndef ML_ROUTE_INTERNAL_H
#define ML_ROUTE_INTERNAL_H

#include <moonlog/route.h>

struct ml_group;

struct ml_sub {
	struct ml_router *r;
	uint64_t id;
	struct ml_filter *f;
	uint64_t cursor; /* plain subscription: the last position looked at */
	int full;	 /* the sink said stop; ml_sub_resume clears it */
	struct ml_sink sink;
	void *data;
	struct ml_group *group; /* NULL, or the group it is a member of */
	uint32_t inflight;	/* group member: events delivered, not yet acked */
	struct ml_sub *next, *prev;
};

/*
 * One unacknowledged event of a group. member == NULL: waiting to be
 * redelivered, or parked: a shared group keeps a parked event here until the
 * Settled that carries its copy to $parked-GROUP is in the log.
 */
struct ml_inflight {
	uint64_t pos;
	struct ml_sub *member;
	uint32_t deliveries;
	int parked;
	uint64_t deadline_ns;
};

#define ML_GROUP_NODE_MAX 64 /* a node's id, as ml_log_node gives it, and its NUL */

/*
 * An open range of a shared group: the positions (from, to] of $all, of which
 * everything through `from` is settled (acked or parked). It belongs to the
 * node named, or to nobody (node_len 0: released, for any node to claim).
 */
struct ml_claim {
	uint64_t from, to;
	char node[ML_GROUP_NODE_MAX];
	size_t node_len;
	uint64_t cursor; /* this node's range: looked at for dispatch through here */
};

struct ml_group_op; /* group_claims.c: the append to $group-NAME in flight */

/* A group kept in the log (group_state.c, group_claims.c); NULL when the log is not shared. */
struct ml_group_shared {
	char stream[112]; /* "$group-NAME" */
	size_t stream_len;
	const char *me; /* this node's id (ml_log_node) */
	size_t me_len;

	/* the state the stream's events build, the same on every node */
	uint64_t version;	   /* events of the stream applied to it */
	uint64_t snapshot_version; /* where the last Snapshot is (0: none) */
	int started;		   /* some range was ever claimed: frontier holds */
	uint64_t frontier;	   /* the end of the last range claimed */
	struct ml_claim *claims;   /* open ranges, by position */
	size_t nclaims, cap;

	/* this node's own */
	uint64_t start;		/* a new group: where this node's first range begins */
	uint64_t scanned;	/* after the frontier, no match through here */
	struct ml_group_op *op; /* one append at a time */
	int wait_tick;		/* the last append failed: try again on the next tick */
	int drop_parked;	/* a Settled with parked copies was refused: settle without */
	uint64_t taken_over;	/* ranges this node took over from a node gone */
};

struct ml_group {
	char *name;
	struct ml_filter *f; /* the first member's filter (copied in spirit: its own) */
	struct ml_group_options o;
	uint64_t cursor;       /* the last position looked at for dispatch (alone) */
	uint64_t stored_floor; /* the acked position last written to disk (alone) */
	struct ml_inflight *inf;
	size_t ninf, cap; /* sorted by position */
	struct ml_sub **members;
	size_t nmembers, rr; /* rr: where the round robin starts */
	struct ml_group_shared *sh;
	struct ml_group *next;
};

struct ml_router {
	struct ml_log *log;
	struct ml_router_options o;
	char *dir;
	const char *node;    /* ml_log_node: groups are kept in the log when not NULL */
	struct ml_sub *subs; /* every subscription, members included */
	struct ml_group *groups;
	uint64_t next_id;
	struct ml_router_stats st;
};

/* pattern.c */
struct ml_filter *ml_filter_dup(const struct ml_filter *f);

/* group.c */
struct ml_group *ml_group_join(struct ml_router *r, const char *name, struct ml_filter *f,
			       uint64_t from, const struct ml_group_options *go);
void ml_group_add(struct ml_group *g, struct ml_sub *s);
void ml_group_leave(struct ml_router *r, struct ml_sub *s);
int ml_group_pump(struct ml_router *r, struct ml_group *g, uint64_t head);
void ml_group_tick(struct ml_router *r, struct ml_group *g, uint64_t now_ns);
void ml_group_store(struct ml_router *r, struct ml_group *g);
void ml_group_free(struct ml_router *r, struct ml_group *g);
/* Does the group take this event? (Never the events of $group-... streams.) */
int ml_group_match(const struct ml_group *g, const struct ml_event *e);
/* router.c: is e removed by the log's retention (ml_log_removed), as of now? */
int ml_route_removed(struct ml_log *log, const struct ml_event *e);
/* Hands the matching events after *cursor, through `to`, to members with room. */
void ml_group_dispatch(struct ml_router *r, struct ml_group *g, uint64_t *cursor, uint64_t to);
/* Room for more events: the unacked events the members may still take. */
uint64_t ml_group_room(const struct ml_group *g);
/* The first in-flight entry at or after position `pos` (g->ninf if none). */
size_t ml_group_inflight_at(const struct ml_group *g, uint64_t pos);
/* Forgets the in-flight events in (from, to]: settled, or no longer this node's. */
void ml_group_forget(struct ml_group *g, uint64_t from, uint64_t to);

/* The copy of an event for $parked-GROUP, owning its bytes (for a batch built later). */
struct ml_parked {
	char stream[112];
	struct ml_buf type, data, meta;
	struct ml_event_in in;
};
void ml_parked_make(struct ml_parked *p, const struct ml_group *g, const struct ml_event *e,
		    uint32_t deliveries);
void ml_parked_free(struct ml_parked *p);

/* group_state.c */
/* Sets up g->sh for a group kept in the log and reads its state; `start` as for a new group. */
void ml_group_state_open(struct ml_router *r, struct ml_group *g, uint64_t start);
void ml_group_state_free(struct ml_group *g);
/* Applies the stream's events this state has not seen yet. */
void ml_group_state_catch_up(struct ml_router *r, struct ml_group *g);
/* Is the claim this node's? */
int ml_claim_mine(const struct ml_group_shared *sh, const struct ml_claim *c);
/* The events of $group-NAME, as msgpack maps, appended to out. */
void ml_group_event_range(struct ml_buf *out, const char *node, size_t len, uint64_t from,
			  uint64_t to);
void ml_group_event_snapshot(struct ml_buf *out, const struct ml_group_shared *sh);

/* group_claims.c */
/* Claims or takes over what this node's members have room for; 1 if dispatch has more. */
int ml_group_claims_pump(struct ml_router *r, struct ml_group *g, uint64_t head);
/* Settles what moved, releases what no member here can take, snapshots now and then. */
void ml_group_claims_tick(struct ml_router *r, struct ml_group *g);
/* The router goes: settles and releases this node's ranges, leaves the append in flight. */
void ml_group_claims_stop(struct ml_router *r, struct ml_group *g);
/* Is position `pos` settled or past this node (an ack of it is harmless)? */
int ml_group_claims_acked(const struct ml_group *g, uint64_t pos);

#endif
