/*
 * test_groups.c - consumer groups whose members sit on two nodes that share one
 * log: two logs in their own folders apply one journal in this process
 * (journal_writer.c), with a router on each, driven by this thread as the
 * server's loop would drive it (pump, tick). The test says which node the
 * others believe gone, and which node runs at all (a paused node is one that
 * was killed, or cut off).
 *
 * What must hold: the members of both nodes share the events (each event to
 * one member, both nodes get some); an event not acked comes again, and after
 * max_deliveries it is parked once; a gone node's range goes to the other
 * node, and a node that was not really gone finds its late settle refused,
 * with its event parked once all the same; a node whose last member leaves
 * gives its range back; both nodes restarted go on from the group's floor; a
 * node that joins late reads the group from its last snapshot; and a log of
 * its own keeps DATA/groups/NAME.pos, with nothing written to the log. The
 * events of a deleted stream are neither delivered nor claimed, nor delivered
 * again or parked when the delete comes while they are in flight.
 */
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <moonlog/log.h>
#include <moonlog/route.h>

#include "route/route_internal.h"
#include "test/journal_writer.h"
#include "test/log_helpers.h"
#include "test/unit.h"

#define NODES	    2
#define MAX_GOT	    512
#define LIVENESS_NS (60ull * 1000000000) /* a generous bound: the condition, or fail */

struct world {
	char dirs[NODES][300];
	struct journal *j;
	struct ml_log *log[NODES];
	struct ml_router *r[NODES];
	int paused[NODES]; /* not run: killed, or cut off */
	int limited;	   /* journal_apply_limit is set: applies stop short, do not wait */
};

struct member {
	struct world *w;
	int node;
	const char *group;
	struct ml_sub *sub;
	uint64_t pos[MAX_GOT];
	uint32_t deliveries[MAX_GOT];
	int n, acked;
};

static void node_open(struct world *w, int i)
{
	/* node 0 syncs every write, node 1 leaves it to the kernel: the same outcomes */
	w->log[i] = open_log_fsync(w->dirs[i], 0, i == 0 ? ML_FSYNC_ALWAYS : ML_FSYNC_NEVER);
	if (w->log[i] == NULL || journal_node_start(w->j, i, w->log[i]) != 0)
		printf("# node %d did not start: %s\n", i, ml_diag_last()), exit(1);
	struct ml_router_options o = {.dir = w->dirs[i]};
	w->r[i] = ml_router_new(w->log[i], &o);
}

/* A clean stop: the router settles and gives back its ranges, the log applies what it sent. */
static void node_close(struct world *w, int i)
{
	ml_router_free(w->r[i]);
	ml_log_close(w->log[i]);
	w->r[i] = NULL, w->log[i] = NULL;
}

static void world_open(struct world *w, const char *dir)
{
	memset(w, 0, sizeof(*w));
	w->j = journal_new();
	for (int i = 0; i < NODES; i++) {
		snprintf(w->dirs[i], sizeof(w->dirs[i]), "%s/node-%d", dir, i);
		node_open(w, i);
	}
}

static void world_close(struct world *w)
{
	journal_apply_limit(w->j, 0);
	for (int i = 0; i < NODES; i++)
		node_close(w, i);
	journal_free(w->j);
}

/* One turn of each running node's loop, then every node applies what was published. */
static void step(struct world *w)
{
	for (int i = 0; i < NODES; i++)
		if (!w->paused[i]) {
			ml_router_pump(w->r[i]);
			ml_router_tick(w->r[i]);
		}
	if (!w->limited)
		for (int i = 0; i < NODES; i++)
			journal_node_sync(w->j, i);
	usleep(200);
}

/* Steps until cond holds (1), or fails after the liveness bound (0). */
#define UNTIL(w, cond)                                                                             \
	({                                                                                         \
		uint64_t until_end_ = ml_clock_ns() + LIVENESS_NS;                                 \
		int until_ok_;                                                                     \
		while (!(until_ok_ = !!(cond)) && ml_clock_ns() < until_end_)                      \
			step(w);                                                                   \
		until_ok_;                                                                         \
	})

static int deliver(struct ml_sub *s, const struct ml_event *e, uint32_t deliveries, void *arg)
{
	struct member *m = arg;
	if (m->n < MAX_GOT) {
		m->pos[m->n] = e->position;
		m->deliveries[m->n] = deliveries;
	}
	m->n++;
	return 0;
}

static void join(struct member *m, struct world *w, int node, const char *group,
		 struct ml_group_options go)
{
	memset(m, 0, sizeof(*m));
	m->w = w, m->node = node, m->group = group;
	struct ml_filter *f = ml_filter_new();
	ml_filter_add_stream(f, "job-*", 5);
	struct ml_sink sink = {deliver, m};
	m->sub = ml_sub_new(w->r[node], f, 0, group, &go, &sink);
	if (m->sub == NULL)
		printf("# join failed: %s\n", ml_diag_last()), exit(1);
}

static void leave(struct member *m)
{
	ml_sub_free(m->sub);
	m->sub = NULL;
}

/* Acks what the member got since the last call; the number it got so far. */
static int ack_all(struct member *m)
{
	for (; m->acked < m->n; m->acked++)
		if (ml_router_ack(m->w->r[m->node], m->group, strlen(m->group), m->pos[m->acked]) !=
		    0)
			printf("# ack %" PRIu64 " refused: %s\n", m->pos[m->acked], ml_diag_last());
	return m->n;
}

static int got(const struct member *m, uint64_t pos)
{
	for (int i = 0; i < m->n; i++)
		if (m->pos[i] == pos)
			return 1;
	return 0;
}

/* Appends n job events on node `node`; their positions in out. */
static void jobs(struct world *w, int node, int n, uint64_t *out)
{
	for (int i = 0; i < n; i++) {
		char stream[32];
		snprintf(stream, sizeof(stream), "job-%d", i);
		out[i] = append1(w->log[node], stream, NULL, ML_EXPECT_ANY);
	}
}

static struct ml_group *group_of(struct world *w, int node, const char *name)
{
	for (struct ml_group *g = w->r[node]->groups; g; g = g->next)
		if (strcmp(g->name, name) == 0)
			return g;
	return NULL;
}

/* Everything through here is settled, as node `node` reads the group. */
static uint64_t floor_of(struct world *w, int node, const char *name)
{
	struct ml_group_shared *sh = group_of(w, node, name)->sh;
	return sh->nclaims ? sh->claims[0].from : sh->frontier;
}

static uint64_t version_of(struct world *w, int node, const char *stream)
{
	return ml_log_stream_version(w->log[node], stream, strlen(stream));
}

/* Both nodes read the same state from the group's stream. */
static int same_state(struct world *w, const char *name)
{
	struct ml_group_shared *a = group_of(w, 0, name)->sh, *b = group_of(w, 1, name)->sh;
	if (a->version != b->version || a->frontier != b->frontier || a->nclaims != b->nclaims)
		return 0;
	for (size_t i = 0; i < a->nclaims; i++)
		if (a->claims[i].from != b->claims[i].from || a->claims[i].to != b->claims[i].to ||
		    strcmp(a->claims[i].node, b->claims[i].node) != 0)
			return 0;
	return 1;
}

static int settled_through(struct world *w, const char *name, uint64_t pos)
{
	return floor_of(w, 0, name) >= pos && floor_of(w, 1, name) >= pos && same_state(w, name);
}

static const struct ml_group_options patient = {.ack_timeout_ms = 600000, .max_inflight = 4};

static void share(const char *dir)
{
	struct world w;
	struct member a, b;
	world_open(&w, dir);
	is_str(ml_log_node(w.log[1]), "node-1", "each node has a name");
	join(&a, &w, 0, "workers", patient);
	join(&b, &w, 1, "workers", patient);
	uint64_t pos[40];
	for (int i = 0; i < 40; i += 2) { /* appended on both nodes */
		jobs(&w, 0, 1, &pos[i]);
		jobs(&w, 1, 1, &pos[i + 1]);
	}
	ok(UNTIL(&w, ack_all(&a) + ack_all(&b) >= 40),
	   "40 events delivered (%d on node 0, %d on 1)", a.n, b.n);
	ok(a.n > 0 && b.n > 0, "members on both nodes get some of them");
	int once = a.n + b.n == 40, first = 1;
	for (int i = 0; i < 40; i++)
		once &= got(&a, pos[i]) != got(&b, pos[i]);
	for (int i = 0; i < a.n; i++)
		first &= a.deliveries[i] == 1;
	for (int i = 0; i < b.n; i++)
		first &= b.deliveries[i] == 1;
	ok(once && first, "each event went to one member, once");
	ok(UNTIL(&w, settled_through(&w, "workers", pos[39])),
	   "every event acked: both nodes read the group settled through the last one");
	uint64_t written = version_of(&w, 0, "$group-workers");
	printf("# %" PRIu64 " group events for 40 events (claims and settles)\n", written);
	struct ml_router_stats st;
	ml_router_stats(w.r[0], &st);
	is_int(st.taken_over, 0, "no range taken over");
	world_close(&w);
}

static void redeliver_and_park(const char *dir)
{
	struct world w;
	struct member a, b;
	world_open(&w, dir);
	struct ml_group_options go = {.ack_timeout_ms = 20, .max_deliveries = 2, .max_inflight = 4};
	join(&a, &w, 0, "payer", go);
	join(&b, &w, 1, "payer", go);
	uint64_t pos;
	jobs(&w, 1, 1, &pos);
	ok(UNTIL(&w, version_of(&w, 0, "$parked-payer") >= 1 &&
			 version_of(&w, 1, "$parked-payer") >= 1 &&
			 settled_through(&w, "payer", pos)),
	   "an event never acked is parked, and settled, on both nodes");
	struct member *m = a.n ? &a : &b;
	ok(m->n == 2 && a.n + b.n == 2 && m->pos[0] == pos && m->pos[1] == pos &&
	       m->deliveries[0] == 1 && m->deliveries[1] == 2,
	   "it was delivered twice (1, then 2) on one node before it was parked");
	/* a second one: if the first were parked again, there would be three copies */
	uint64_t pos2;
	jobs(&w, 0, 1, &pos2);
	ok(UNTIL(&w, version_of(&w, 0, "$parked-payer") >= 2 &&
			 version_of(&w, 1, "$parked-payer") >= 2 &&
			 settled_through(&w, "payer", pos2)),
	   "a second event never acked is parked too");
	is_int(a.n + b.n, 4, "each delivered twice");
	is_int(version_of(&w, 0, "$parked-payer"), 2, "parked once each: two copies on node 0");
	is_int(version_of(&w, 1, "$parked-payer"), 2, "and on node 1");
	struct collect c = {0};
	ml_log_read_stream(w.log[1], "$parked-payer", 13, 1, 0, 0, collect_fn, &c);
	ok(c.n == 2 && c.pos[0] > pos && c.pos[1] > pos2,
	   "each copy comes after its event in $all");
	world_close(&w);
}

static void takeover(const char *dir)
{
	struct world w;
	struct member a, b;
	world_open(&w, dir);
	join(&b, &w, 1, "work", patient);
	uint64_t pos[5];
	jobs(&w, 0, 3, pos);
	ok(UNTIL(&w, b.n == 3), "node 1's member gets three events, and acks none");
	/* node 1 dies: it runs no more, and the other node hears from it no more */
	w.paused[1] = 1;
	journal_node_gone(w.j, 1, 1);
	join(&a, &w, 0, "work", patient);
	ok(UNTIL(&w, ack_all(&a) == 3), "node 0's member gets them");
	ok(got(&a, pos[0]) && got(&a, pos[1]) && got(&a, pos[2]), "the same three");
	jobs(&w, 0, 2, pos + 3);
	ok(UNTIL(&w, ack_all(&a) == 5), "and what comes next");
	struct ml_router_stats st;
	ml_router_stats(w.r[0], &st);
	/* one range per claim node 1 made: one, or more when its events came apart under load */
	ok(st.taken_over >= 1 && st.taken_over <= 3, "node 0 took node 1's ranges over (%llu)",
	   (unsigned long long)st.taken_over);
	/* node 1 comes back: its range is gone, and its late acks are harmless */
	w.paused[1] = 0;
	journal_node_gone(w.j, 1, 0);
	ok(UNTIL(&w, settled_through(&w, "work", pos[4])), "both nodes read the group settled");
	is_int(ack_all(&b), 3, "node 1's late acks are taken (and change nothing)");
	is_int(group_of(&w, 1, "work")->ninf, 0, "node 1 holds none of them any more");
	is_int(b.n, 3, "and delivers none of them again");
	world_close(&w);
}

/* Runs node i's loop (pump only: no time passes for it) until cond, applying everywhere. */
#define PUMP_UNTIL(w, i, cond)                                                                     \
	({                                                                                         \
		uint64_t end_ = ml_clock_ns() + LIVENESS_NS;                                       \
		while (!(cond) && ml_clock_ns() < end_) {                                          \
			ml_router_pump((w)->r[i]);                                                 \
			journal_node_sync((w)->j, 0), journal_node_sync((w)->j, 1);                \
			usleep(200);                                                               \
		}                                                                                  \
		!!(cond);                                                                          \
	})

static void fenced(const char *dir)
{
	struct world w;
	struct member a, b;
	world_open(&w, dir);
	struct ml_group_options go = {.ack_timeout_ms = 20, .max_deliveries = 1, .max_inflight = 4};
	join(&b, &w, 1, "fence", go);
	uint64_t pos;
	jobs(&w, 0, 1, &pos);
	ok(PUMP_UNTIL(&w, 1, b.n == 1), "node 1 delivers the event");
	/* Node 1 is cut off: the others believe it gone, and take its range over; node 1 does
	 * not know yet. Applies stop short, so that both decide on what they read now. */
	journal_node_gone(w.j, 1, 1);
	w.limited = 1;
	journal_apply_limit(w.j, journal_length(w.j));
	join(&a, &w, 0, "fence", go);
	ml_router_pump(w.r[0]);
	uint64_t claim_seq = journal_length(w.j);
	usleep(40 * 1000); /* past node 1's ack timeout: its tick parks the event */
	ml_router_tick(w.r[1]);
	uint64_t settle_seq = journal_length(w.j);
	ok(settle_seq == claim_seq + 1 && claim_seq > 0,
	   "node 0 claims node 1's range, and node 1 settles it, parked, at the same version");
	journal_apply_limit(w.j, 0);
	w.limited = 0;
	journal_node_sync(w.j, 0), journal_node_sync(w.j, 1);
	struct outcome oc = journal_outcome(w.j, 1, claim_seq),
		       os = journal_outcome(w.j, 1, settle_seq);
	ok(oc.err == ML_OK && os.err == ML_ERR_CONFLICT,
	   "the claim, first in the journal, wins; node 1's settle is refused (%s)", os.errmsg);
	is_int(version_of(&w, 1, "$parked-fence"), 0, "so its parked copy is not written");
	journal_node_gone(w.j, 1, 0);
	ok(UNTIL(&w, version_of(&w, 0, "$parked-fence") == 1 && settled_through(&w, "fence", pos)),
	   "node 0 delivers the event in its turn, parks it and settles it");
	ok(a.n == 1 && a.pos[0] == pos && b.n == 1, "delivered once on each node");
	is_int(version_of(&w, 1, "$parked-fence"), 1, "parked once, seen on both nodes");
	world_close(&w);
}

static void release_on_leave(const char *dir)
{
	struct world w;
	struct member a, b;
	world_open(&w, dir);
	join(&a, &w, 0, "hand", patient);
	uint64_t pos[3];
	jobs(&w, 0, 3, pos);
	ok(UNTIL(&w, a.n == 3), "node 0's member gets three events");
	join(&b, &w, 1, "hand", patient);
	leave(&a); /* unacked: node 0 gives its range back, nobody is gone */
	ok(UNTIL(&w, ack_all(&b) == 3), "node 1's member gets them");
	ok(got(&b, pos[0]) && got(&b, pos[1]) && got(&b, pos[2]), "the same three");
	struct ml_router_stats st;
	ml_router_stats(w.r[1], &st);
	is_int(st.taken_over, 0, "given back, not taken over");
	world_close(&w);
}

static void restart(const char *dir)
{
	struct world w;
	struct member a, b;
	struct ml_group_options roomy = {.ack_timeout_ms = 600000, .max_inflight = 16};
	world_open(&w, dir);
	join(&a, &w, 0, "resume", roomy);
	join(&b, &w, 1, "resume", roomy);
	uint64_t pos[12];
	jobs(&w, 0, 10, pos);
	ok(UNTIL(&w, a.n + b.n == 10), "ten events delivered");
	/* every one acked but the last three */
	for (struct member *m = &a; m; m = m == &a ? &b : NULL)
		for (int i = 0; i < m->n; i++)
			if (m->pos[i] < pos[7])
				ml_router_ack(w.r[m->node], "resume", 6, m->pos[i]);
	ok(UNTIL(&w, settled_through(&w, "resume", pos[6])), "settled through the seventh");
	node_close(&w, 0);
	node_close(&w, 1);
	node_open(&w, 0);
	node_open(&w, 1);
	join(&a, &w, 0, "resume", roomy);
	join(&b, &w, 1, "resume", roomy);
	jobs(&w, 1, 2, pos + 10);
	ok(UNTIL(&w, a.n + b.n == 5), "after both restarted: five events delivered");
	int right = 1;
	for (int i = 7; i < 12; i++)
		right &= got(&a, pos[i]) != got(&b, pos[i]);
	ok(right, "the three unacked and the two new ones, each once: the group went on from its "
		  "floor");
	world_close(&w);
}

static void snapshot(const char *dir)
{
	struct world w;
	struct member a, b;
	world_open(&w, dir);
	join(&a, &w, 0, "snap", (struct ml_group_options){.max_inflight = 1});
	int rounds = 0;
	uint64_t pos = 0;
	while (version_of(&w, 0, "$group-snap") < 300 && rounds < 400) {
		jobs(&w, 0, 1, &pos);
		if (!UNTIL(&w, ack_all(&a) == rounds + 1))
			break;
		rounds++;
	}
	ok(version_of(&w, 0, "$group-snap") >= 300, "%d events: %" PRIu64 " group events", rounds,
	   version_of(&w, 0, "$group-snap"));
	ok(UNTIL(&w, floor_of(&w, 0, "snap") >= pos), "all settled");
	join(&b, &w, 1, "snap", (struct ml_group_options){.max_inflight = 1});
	struct ml_group_shared *sh = group_of(&w, 1, "snap")->sh;
	ok(sh->snapshot_version > 0,
	   "a node joining late reads from the last snapshot (at %" PRIu64 " of %" PRIu64 ")",
	   sh->snapshot_version, sh->version);
	ok(UNTIL(&w, same_state(&w, "snap")), "and reads the same state");
	world_close(&w);
}

static int count_claims(const struct ml_event *e, void *arg)
{
	*(int *)arg += e->type_len == 7 && memcmp(e->type, "Claimed", 7) == 0;
	return 0;
}

/*
 * A deleted stream's events take no room in a claim (they are never delivered): with room
 * for two, the first claim reaches past six removed ones to the deletion event and the next
 * job, and those two are what the member gets.
 */
static void removed(const char *dir)
{
	struct world w;
	struct member a;
	world_open(&w, dir);
	join(&a, &w, 0, "clean",
	     (struct ml_group_options){.ack_timeout_ms = 600000, .max_inflight = 2});
	for (int i = 0; i < 6; i++)
		append1(w.log[0], "job-1", NULL, ML_EXPECT_ANY);
	struct ml_retention_append del;
	ok(ml_log_prepare_delete(w.log[0], &del, "job-1", 5, ML_EXPECT_ANY, 0) == 0 &&
	       ml_log_append(w.log[0], &del.req) == 0,
	   "job-1 deleted after its six events");
	uint64_t next = append1(w.log[0], "job-2", NULL, ML_EXPECT_ANY);
	ok(UNTIL(&w, a.n == 2), "two events delivered");
	ok(a.pos[0] == del.position && a.pos[1] == next,
	   "the deletion event and the next job (%" PRIu64 " %" PRIu64 ")", a.pos[0], a.pos[1]);
	int claims = 0;
	ml_log_read_stream(w.log[0], "$group-clean", 12, 0, 0, 0, count_claims, &claims);
	is_int(claims, 1, "one claim covers them: the removed events took no room");
	world_close(&w);
}

/*
 * An event in flight whose stream is deleted before it is acked is not delivered again, nor
 * parked (its copy would keep the deleted data): it is settled as if acked. The ack timeout
 * is long enough for the delete to come first.
 */
static void removed_in_flight(const char *dir)
{
	struct world w;
	struct member a;
	world_open(&w, dir);
	join(&a, &w, 0, "drop",
	     (struct ml_group_options){
		 .ack_timeout_ms = 2000, .max_deliveries = 2, .max_inflight = 4});
	uint64_t pos = append1(w.log[0], "job-1", NULL, ML_EXPECT_ANY);
	ok(UNTIL(&w, a.n == 1), "delivered, not acked");
	struct ml_retention_append del;
	ok(ml_log_prepare_delete(w.log[0], &del, "job-1", 5, ML_EXPECT_ANY, 0) == 0 &&
	       ml_log_append(w.log[0], &del.req) == 0,
	   "job-1 deleted while its event is in flight");
	ok(UNTIL(&w, got(&a, del.position)), "the deletion event delivered");
	ml_router_ack(w.r[0], "drop", 4, del.position);
	ok(UNTIL(&w, floor_of(&w, 0, "drop") >= del.position), "both settled");
	int times = 0;
	for (int i = 0; i < a.n; i++)
		times += a.pos[i] == pos;
	is_int(times, 1, "the deleted event was not delivered again");
	is_int(version_of(&w, 0, "$parked-drop"), 0, "nor parked");
	world_close(&w);
}

/* A log of its own: DATA/groups/NAME.pos, as before, and nothing in the log. */
static void alone(const char *dir)
{
	struct ml_log *log = open_log(dir, 0);
	struct ml_router_options o = {.dir = dir};
	struct ml_router *r = ml_router_new(log, &o);
	struct world w = {.r = {r}};
	struct member a;
	join(&a, &w, 0, "solo", patient);
	uint64_t pos = append1(log, "job-1", NULL, ML_EXPECT_ANY);
	ml_router_pump(r);
	ok(a.n == 1 && ml_router_ack(r, "solo", 4, pos) == 0, "delivered and acked");
	ml_router_tick(r);
	ml_router_free(r);
	char path[400];
	snprintf(path, sizeof(path), "%s/groups/solo.pos", dir);
	struct stat st;
	ok(stat(path, &st) == 0, "the acked position is in DATA/groups/solo.pos");
	is_int(ml_log_stream_version(log, "$group-solo", 11), 0, "and no $group-solo stream");
	is_int(ml_log_head(log), 1, "the log holds the one event");
	ml_log_close(log);
}

/* The same on a log of its own, where a parked event is copied at once: a deleted one is not. */
static void alone_removed(const char *dir)
{
	struct ml_log *log = open_log(dir, 0);
	struct ml_router_options o = {.dir = dir};
	struct ml_router *r = ml_router_new(log, &o);
	struct world w = {.r = {r}};
	struct member a;
	join(&a, &w, 0, "solo",
	     (struct ml_group_options){
		 .ack_timeout_ms = 2000, .max_deliveries = 1, .max_inflight = 4});
	append1(log, "job-1", NULL, ML_EXPECT_ANY);
	ml_router_pump(r);
	struct ml_retention_append del;
	ok(a.n == 1 && ml_log_prepare_delete(log, &del, "job-1", 5, ML_EXPECT_ANY, 0) == 0 &&
	       ml_log_append(log, &del.req) == 0,
	   "delivered, then its stream deleted while it is in flight");
	uint64_t end = ml_clock_ns() + LIVENESS_NS;
	while (a.n < 2 && ml_clock_ns() < end)
		ml_router_pump(r), usleep(1000);
	ok(a.n == 2 && a.pos[1] == del.position && ml_router_ack(r, "solo", 4, del.position) == 0,
	   "the deletion event delivered and acked");
	struct ml_router_stats st = {0};
	while (st.parked == 0 && ml_clock_ns() < end) {
		ml_router_pump(r);
		ml_router_tick(r);
		ml_router_stats(r, &st);
		usleep(1000);
	}
	ok(st.parked == 1, "not acked in time, with one delivery allowed: it is settled as parked");
	is_int(ml_log_stream_version(log, "$parked-solo", 12), 0, "but with no copy of its data");
	ml_router_free(r);
	ml_log_close(log);
}

int main(void)
{
	signal(SIGXFSZ, SIG_IGN);
	static const struct unit_dir_test tests[] = {
	    {"groups-share", share},
	    {"groups-park", redeliver_and_park},
	    {"groups-takeover", takeover},
	    {"groups-fenced", fenced},
	    {"groups-leave", release_on_leave},
	    {"groups-restart", restart},
	    {"groups-snapshot", snapshot},
	    {"groups-alone", alone},
	    {"groups-removed", removed},
	    {"groups-removed-in-flight", removed_in_flight},
	    {"groups-alone-removed", alone_removed},
	};
	run_in_tmpdirs(tests, sizeof(tests) / sizeof(tests[0]));
	return done_testing();
}
