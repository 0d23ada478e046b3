/*
 * route_internal.h - what router.c and group.c share.
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

/* One unacknowledged event of a group. member == NULL: waiting to be redelivered. */
struct ml_inflight {
	uint64_t pos;
	struct ml_sub *member;
	uint32_t deliveries;
	uint64_t deadline_ns;
};

struct ml_group {
	char *name;
	struct ml_filter *f; /* the first member's filter (copied in spirit: its own) */
	struct ml_group_options o;
	uint64_t cursor;       /* the last position looked at for dispatch */
	uint64_t stored_floor; /* the acked position last written to disk */
	struct ml_inflight *inf;
	size_t ninf, cap; /* sorted by position */
	struct ml_sub **members;
	size_t nmembers, rr; /* rr: where the round robin starts */
	struct ml_group *next;
};

struct ml_router {
	struct ml_log *log;
	struct ml_router_options o;
	char *dir;
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
void ml_group_free(struct ml_group *g);

#endif
