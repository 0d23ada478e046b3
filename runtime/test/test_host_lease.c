/*
 * test_host_lease.c - a handler on two nodes that share one log (the in-process
 * journal of journal_writer.c, where the test says which node is gone): it runs
 * on one node at a time, the one that holds its lease ($lease-NAME), and every
 * event gets its emits exactly once, whichever node it was appended on.
 *
 * Fencing: node 0 holds the lease and is cut off (its journal held: it applies
 * nothing more, as a paused or partitioned node) while the others think it gone;
 * node 1 takes over and handles what came after node 0's last checkpoint. Node
 * 0, still believing it holds the lease, handles the same event and publishes
 * its batch; once it applies the journal again that batch is refused on every
 * node (the lease stream is past the version it was guarded with), node 0 drops
 * it and goes to standby, and the event has one emit. Then the holder closes: it
 * releases the lease, and the other node takes over at once (while the first is
 * still alive), from the last checkpoint. A lone log (no journal) gets no lease
 * stream and no lease in the status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/diag.h>
#include <moonlog/host.h>
#include <moonlog/log_writer.h>
#include <moonlog/msgpack.h>

#include "test/journal_writer.h"
#include "test/log_helpers.h"
#include "test/unit.h"

static const char echo[] =
    "local ml = require 'moonlog'\n"
    "return ml.handler { name = 'echo', from = 'ping-*',\n"
    "  on = { Ping = function(e, ctx) ctx.emit('pong', 'Pong', { p = e.position }) end } }\n";

/* A node: its data folder (with the script), its log, its host. */
struct node {
	char *dir;
	char scripts[1100];
	struct ml_log *log;
	struct ml_host *h;
};

static void node_open(struct journal *j, int id, struct node *n)
{
	n->dir = unit_tmpdir("host-lease");
	snprintf(n->scripts, sizeof(n->scripts), "%s/scripts", n->dir);
	char path[1200];
	snprintf(path, sizeof(path), "mkdir -p '%s'", n->scripts);
	ok(system(path) == 0, "node %d: a scripts folder", id);
	snprintf(path, sizeof(path), "%s/echo.lua", n->scripts);
	FILE *f = fopen(path, "w");
	fputs(echo, f);
	fclose(f);
	n->log = open_log_fsync(n->dir, 0, ML_FSYNC_NEVER);
	ok(n->log && (j == NULL || journal_node_start(j, id, n->log) == 0), "node %d: a log", id);
}

static struct ml_host *host_open(struct node *n)
{
	struct ml_host_options ho;
	ml_host_options_init(&ho);
	ho.scripts_dir = n->scripts, ho.data_dir = n->dir, ho.quiet = 1;
	n->h = ml_host_open(n->log, &ho);
	ok(n->h != NULL, "a host: %s", n->h ? "" : ml_diag_last());
	return n->h;
}

static void node_close(struct node *n)
{
	ml_host_close(n->h);
	ml_log_close(n->log);
	rm_rf(n->dir);
	free(n->dir);
}

/* The string `key` of the script echo's status ("" when absent). */
static const char *status_of(struct ml_host *h, const char *key, char *out, size_t size)
{
	struct ml_buf b = {0};
	ml_host_status(h, &b);
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, b.data, b.len);
	uint32_t n = 0, m = 0;
	out[0] = '\0';
	if (ml_msgpack_get_array(&r, &n) != 0 || n != 1 || ml_msgpack_get_map(&r, &m) != 0)
		m = 0;
	for (uint32_t i = 0; i < m; i++) {
		const char *k, *v;
		uint32_t kl, vl;
		if (ml_msgpack_get_str(&r, &k, &kl) != 0)
			break;
		if (kl == strlen(key) && memcmp(k, key, kl) == 0 &&
		    ml_msgpack_get_str(&r, &v, &vl) == 0) {
			snprintf(out, size, "%.*s", (int)vl, v);
			break;
		}
		if (ml_msgpack_skip(&r, NULL, NULL) != 0)
			break;
	}
	ml_buf_free(&b);
	return out;
}

static int lease_is(struct ml_host *h, const char *want)
{
	char v[64];
	return strcmp(status_of(h, "lease", v, sizeof(v)), want) == 0;
}

/* Stands by, behind `holder`. */
static int behind(struct ml_host *h, const char *holder)
{
	char v[64];
	return lease_is(h, "standby") && strcmp(status_of(h, "holder", v, sizeof(v)), holder) == 0;
}

static void ping(struct ml_log *log, int k)
{
	char stream[32];
	snprintf(stream, sizeof(stream), "ping-%d", k);
	struct ml_event_in e = ev(stream, "Ping", NULL);
	struct ml_append req = {.events = &e, .n_events = 1};
	if (ml_log_append(log, &req) != 0)
		printf("# ping: %s\n", ml_diag_last());
}

/* The pongs of the log: how many, and how many pings got more than one. */
struct pongs {
	int n, twice;
	unsigned char seen[4096];
};

static int pong_fn(const struct ml_event *ev, void *arg)
{
	struct pongs *p = arg;
	/* {p = N}: fixmap 1, fixstr "p", then a uint */
	const uint8_t *d = ev->data;
	uint64_t v = d[3] < 0x80 ? d[3] : d[3] == 0xcc ? d[4] : (uint64_t)d[4] << 8 | d[5];
	p->n++;
	if (v < sizeof(p->seen) && p->seen[v]++)
		p->twice++;
	return 0;
}

static struct pongs pongs_of(struct ml_log *log)
{
	struct pongs p;
	memset(&p, 0, sizeof(p));
	ml_log_read_stream(log, "pong", 4, 0, 0, 0, pong_fn, &p);
	return p;
}

static int64_t count(struct ml_log *log, const char *stream)
{
	struct collect c = {.n = 0};
	ml_log_read_stream(log, stream, strlen(stream), 0, 0, 0, collect_fn, &c);
	return c.n;
}

/* Steps both hosts (either may be NULL) until cond holds; 0 after 10 s (a liveness bound). */
#define STEP_UNTIL(a, b, cond)                                                                     \
	({                                                                                         \
		int met_ = 0;                                                                      \
		for (int i_ = 0; i_ < 5000 && !(met_ = (cond)); i_++) {                            \
			if (a)                                                                     \
				ml_host_step(a);                                                   \
			if (b)                                                                     \
				ml_host_step(b);                                                   \
			usleep(2000);                                                              \
		}                                                                                  \
		met_;                                                                              \
	})

/* The types and fields of a lease stream, in order: "Acquired node=node-0,Released ...". */
static int lease_fn(const struct ml_event *ev, void *arg)
{
	struct ml_buf *b = arg;
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, ev->data, ev->data_len);
	uint32_t n = 0, kl, vl;
	const char *k, *v;
	ml_buf_addf(b, "%s%.*s", b->len ? "," : "", (int)ev->type_len, ev->type);
	if (ml_msgpack_get_map(&r, &n) != 0)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		if (ml_msgpack_get_str(&r, &k, &kl) != 0 || ml_msgpack_get_str(&r, &v, &vl) != 0)
			return 0;
		ml_buf_addf(b, " %.*s=%.*s", (int)kl, k, (int)vl, v);
	}
	return 0;
}

static void lease_story(struct ml_log *log, const char *stream, char *out, size_t size)
{
	struct ml_buf b = {0};
	ml_log_read_stream(log, stream, strlen(stream), 0, 0, 0, lease_fn, &b);
	snprintf(out, size, "%.*s", (int)b.len, b.data ? b.data : "");
	ml_buf_free(&b);
}

static void test_two_nodes(void)
{
	struct journal *j = journal_new();
	struct node n0, n1;
	node_open(j, 0, &n0);
	node_open(j, 1, &n1);
	struct ml_host *h0 = host_open(&n0), *h1 = NULL;
	if (!h0)
		return;
	ok(STEP_UNTIL(h0, NULL, lease_is(h0, "running here")), "node 0 takes the free lease");
	h1 = host_open(&n1);
	ok(STEP_UNTIL(h0, h1, behind(h1, "node-0")), "node 1 stands by, naming the holder");
	char v[128];
	is_str(status_of(h1, "state", v, sizeof(v)), "standby", "its state says standby");
	is_str(status_of(h0, "holder", v, sizeof(v)), "node-0", "the holder names itself");

	/* Appended on either node: one emit each. */
	for (int i = 0; i < 50; i++)
		ping(n0.log, i), ping(n1.log, i);
	ok(STEP_UNTIL(h0, h1, pongs_of(n1.log).n >= 100), "every ping handled");
	for (int i = 0; i < 20; i++) /* anything more would show now */
		ml_host_step(h0), ml_host_step(h1), usleep(2000);
	journal_node_sync(j, 0), journal_node_sync(j, 1);
	struct pongs p0 = pongs_of(n0.log), p1 = pongs_of(n1.log);
	is_int(p0.n, 100, "node 0: 100 pings, 100 pongs");
	is_int(p0.twice, 0, "no ping handled twice");
	is_int(p1.n, 100, "node 1 holds the same");

	/* Fencing: node 0 is cut off and thought gone; node 1 takes over. */
	ping(n0.log, 1000);
	journal_node_sync(j, 0), journal_node_sync(j, 1);
	uint64_t head = ml_log_head(n0.log);
	journal_node_hold(j, 0, 1);
	journal_node_state(j, 0, ML_NODE_GONE);
	ok(STEP_UNTIL(NULL, h1, lease_is(h1, "running here") && pongs_of(n1.log).n == 101),
	   "node 1 takes the lease of the gone node over, and handles what came after its "
	   "checkpoint");
	uint64_t before = journal_length(j);
	ok(STEP_UNTIL(h0, NULL, journal_length(j) > before),
	   "node 0, cut off, still thinks it holds the lease: it handles the ping again and "
	   "publishes its batch");
	uint64_t stale = journal_length(j);
	ok(lease_is(h0, "running here"), "(it has not applied the takeover yet)");
	journal_node_hold(j, 0, 0);
	journal_node_sync(j, 0), journal_node_sync(j, 1);
	struct outcome o0 = journal_outcome(j, 0, stale), o1 = journal_outcome(j, 1, stale);
	is_int(o0.err, ML_ERR_CONFLICT, "its batch is refused on node 0: %s", o0.errmsg);
	is_int(o1.err, ML_ERR_CONFLICT, "and on node 1");
	ok(STEP_UNTIL(h0, h1, behind(h0, "node-1")),
	   "node 0 drops it and stands by, behind node 1");
	ok(ml_host_fault(h0, ml_host_script(h0, "echo", 4)) == NULL, "not faulted");
	p0 = pongs_of(n0.log), p1 = pongs_of(n1.log);
	is_int(p0.n, 101, "the ping appended before the cut has one pong");
	is_int(p0.twice + p1.twice, 0, "none twice, on either node");
	is_int(ml_log_head(n0.log), ml_log_head(n1.log), "both logs at the same head");
	ok(ml_log_head(n0.log) > head, "(moved by the takeover)");

	/* Released: node 0 is alive again; node 1 closes, and node 0 takes over at once. */
	journal_node_state(j, 0, ML_NODE_ALIVE);
	for (int i = 0; i < 10; i++)
		ping(n1.log, 2000 + i);
	ml_host_close(h1);
	n1.h = NULL;
	ok(STEP_UNTIL(h0, NULL, lease_is(h0, "running here") && pongs_of(n0.log).n >= 111),
	   "node 1 closed and released the lease: node 0 takes over and handles the rest");
	for (int i = 0; i < 20; i++)
		ml_host_step(h0), usleep(2000);
	p0 = pongs_of(n0.log);
	is_int(p0.n, 111, "111 pings, 111 pongs");
	is_int(p0.twice, 0, "none twice");
	char story[512];
	lease_story(n0.log, "$lease-echo", story, sizeof(story));
	is_str(
	    story,
	    "Acquired node=node-0,Acquired node=node-1,Released node=node-1,Acquired node=node-0",
	    "the lease stream tells who held it, in order");

	/* A node that comes back stands by behind the holder. */
	h1 = host_open(&n1);
	ok(STEP_UNTIL(h0, h1, behind(h1, "node-0")), "node 1, back, stands by behind node 0");

	/*
	 * Fenced, then given the lease back: node 0 is cut off; node 1 takes the
	 * lease over; node 0 handles two more pings, in a batch ordered after that
	 * takeover; node 1 lets the lease go again before it handles anything (it
	 * closes). Node 0, refused, takes the lease back from the checkpoint before
	 * those pings, which its script was fed already: it runs a fresh copy of the
	 * script (which would skip them), and each ping gets its pong.
	 */
	ping(n1.log, 3000);
	ping(n1.log, 3001);
	journal_node_sync(j, 0), journal_node_sync(j, 1);
	journal_node_hold(j, 0, 1);
	journal_node_state(j, 0, ML_NODE_GONE);
	ok(STEP_UNTIL(NULL, h1, lease_is(h1, "taking over")), "node 1 takes the lease over");
	before = journal_length(j);
	ok(STEP_UNTIL(h0, NULL, journal_length(j) > before),
	   "node 0, cut off, handles the pings after that");
	ml_host_close(h1);
	n1.h = NULL;
	journal_node_hold(j, 0, 0);
	journal_node_state(j, 0, ML_NODE_ALIVE);
	ok(STEP_UNTIL(h0, NULL, lease_is(h0, "running here") && pongs_of(n0.log).n >= 113),
	   "node 0 takes the released lease back and handles the pings again");
	for (int i = 0; i < 20; i++)
		ml_host_step(h0), usleep(2000);
	p0 = pongs_of(n0.log);
	is_int(p0.n, 113, "113 pings, 113 pongs");
	is_int(p0.twice, 0, "none twice");
	lease_story(n0.log, "$lease-echo", story, sizeof(story));
	is_str(
	    story,
	    "Acquired node=node-0,Acquired node=node-1,Released node=node-1,Acquired node=node-0,"
	    "Acquired node=node-1,Released node=node-1,Acquired node=node-0",
	    "the lease stream tells who held it, in order");
	node_close(&n0);
	node_close(&n1);
	journal_free(j);
}

/* ---- balance: six handlers over the nodes ---- */

#define HANDLERS 6

/* Writes the handlers h1..h6 (each emits Pong to pong-hN for each Ping) into a scripts folder. */
static void write_handlers(const char *scripts)
{
	for (int k = 1; k <= HANDLERS; k++) {
		char path[1200];
		snprintf(path, sizeof(path), "%s/h%d.lua", scripts, k);
		FILE *f = fopen(path, "w");
		fprintf(f,
			"local ml = require 'moonlog'\n"
			"return ml.handler { name = 'h%d', from = 'ping-*',\n"
			"  on = { Ping = function(e, ctx) ctx.emit('pong-h%d', 'Pong', { p = "
			"e.position }) end } }\n",
			k, k);
		fclose(f);
	}
}

/* A node whose scripts folder holds h1..h6 (with_handlers), or only a projection. */
static void balance_node(struct journal *j, int id, struct node *n, int with_handlers)
{
	node_open(j, id, n);
	char path[1200];
	snprintf(path, sizeof(path), "%s/echo.lua", n->scripts);
	unlink(path);
	if (with_handlers)
		write_handlers(n->scripts);
}

/* How many handlers run on h ("running here" in its status). */
static int running(struct ml_host *h)
{
	if (h == NULL)
		return 0;
	struct ml_buf b = {0};
	ml_host_status(h, &b);
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, b.data, b.len);
	uint32_t n = 0;
	int count = 0;
	if (ml_msgpack_get_array(&r, &n) != 0)
		n = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t m = 0;
		if (ml_msgpack_get_map(&r, &m) != 0)
			break;
		for (uint32_t k = 0; k < m; k++) {
			const char *key, *v;
			uint32_t kl, vl;
			if (ml_msgpack_get_str(&r, &key, &kl) != 0)
				goto out;
			if (kl == 5 && memcmp(key, "lease", 5) == 0 &&
			    ml_msgpack_get_str(&r, &v, &vl) == 0) {
				count += vl == 12 && memcmp(v, "running here", 12) == 0;
				continue;
			}
			if (ml_msgpack_skip(&r, NULL, NULL) != 0)
				goto out;
		}
	}
out:
	ml_buf_free(&b);
	return count;
}

/* Events in the lease streams of h1..h6: moves of a lease add to it. */
static int64_t lease_events(struct ml_log *log)
{
	int64_t sum = 0;
	for (int k = 1; k <= HANDLERS; k++) {
		char stream[32];
		snprintf(stream, sizeof(stream), "$lease-h%d", k);
		sum += count(log, stream);
	}
	return sum;
}

/* Steps every host of ns (NULL ones skipped) until cond holds; 0 after about 60 s. */
#define STEP_ALL_UNTIL(ns, cnt, cond)                                                              \
	({                                                                                         \
		int met_ = 0;                                                                      \
		for (int i_ = 0; i_ < 30000 && !(met_ = (cond)); i_++) {                           \
			for (int k_ = 0; k_ < (cnt); k_++)                                         \
				if ((ns)[k_].h)                                                    \
					ml_host_step((ns)[k_].h);                                  \
			usleep(2000);                                                              \
		}                                                                                  \
		met_;                                                                              \
	})

/* Every handler has one pong per ping of the log: `pings` of them, none twice. */
static int once_each(struct ml_log *log, int pings)
{
	for (int k = 1; k <= HANDLERS; k++) {
		char stream[32];
		snprintf(stream, sizeof(stream), "pong-h%d", k);
		struct pongs p;
		memset(&p, 0, sizeof(p));
		ml_log_read_stream(log, stream, strlen(stream), 0, 0, 0, pong_fn, &p);
		if (p.n != pings || p.twice != 0)
			return 0;
	}
	return 1;
}

/*
 * Node 0 starts alone and takes all six leases; node 1 starts: the leases
 * spread, three each, under pings, and every ping has one pong per handler.
 * A third node without the handlers changes nothing. Then nothing moves any
 * more. When node 1 stops, node 0 runs all six again.
 */
static void test_balance(void)
{
	struct journal *j = journal_new();
	struct node n[3];
	memset(n, 0, sizeof(n));
	balance_node(j, 0, &n[0], 1);
	balance_node(j, 1, &n[1], 1);
	balance_node(j, 2, &n[2], 0);
	if (!host_open(&n[0]))
		return;
	ok(STEP_ALL_UNTIL(n, 1, running(n[0].h) == HANDLERS), "node 0, alone, runs all six");
	int pings = 0;
	for (; pings < 20; pings++)
		ping(n[0].log, pings);
	host_open(&n[1]);
	ok(STEP_ALL_UNTIL(n, 2, running(n[0].h) == 3 && running(n[1].h) == 3),
	   "node 1 starts: the leases spread, three each (node 0: %d, node 1: %d)", running(n[0].h),
	   running(n[1].h));
	for (; pings < 60; pings++)
		ping(n[pings % 2].log, pings);
	ok(STEP_ALL_UNTIL(n, 2, once_each(n[0].log, pings)), "every ping has one pong per handler");
	journal_node_sync(j, 0);
	is_int(lease_events(n[0].log), HANDLERS + 3, "six Acquired, then three moves");
	char story[512];
	for (int k = 1; k <= HANDLERS; k++) { /* the moves name the node they were taken from */
		char stream[32];
		snprintf(stream, sizeof(stream), "$lease-h%d", k);
		lease_story(n[0].log, stream, story, sizeof(story));
		if (strchr(story, ','))
			is_str(story, "Acquired node=node-0,Acquired node=node-1 from=node-0", "%s",
			       stream);
	}

	/* A node without the handlers joins: nothing moves, for a few seconds of steps. */
	host_open(&n[2]);
	journal_node_sync(j, 0), journal_node_sync(j, 1);
	int64_t moves = lease_events(n[0].log);
	for (int i = 0; i < 1500; i++) /* 3 s and more: past every delay of lease.c */
		ml_host_step(n[0].h), ml_host_step(n[1].h), ml_host_step(n[2].h), usleep(2000);
	journal_node_sync(j, 0), journal_node_sync(j, 1);
	is_int(lease_events(n[0].log), moves,
	       "then no lease moves (nor with a node that lacks them)");
	is_int(running(n[0].h), 3, "node 0 runs three");
	is_int(running(n[1].h), 3, "node 1 runs three");
	is_int(running(n[2].h), 0, "node 2 none");
	ok(once_each(n[0].log, pings) && once_each(n[1].log, pings), "one pong per ping, on both");

	/* Node 1 stops: node 0 runs all six again. */
	ml_host_close(n[1].h);
	n[1].h = NULL;
	for (; pings < 70; pings++)
		ping(n[0].log, pings);
	ok(STEP_ALL_UNTIL(n, 1, running(n[0].h) == HANDLERS && once_each(n[0].log, pings)),
	   "node 1 stops: node 0 runs all six, and handles the rest once");
	for (int k = 0; k < 3; k++)
		node_close(&n[k]);
	journal_free(j);
}

/* Two nodes start together, with every lease free: they share them, and then keep them. */
static void test_balance_together(void)
{
	struct journal *j = journal_new();
	struct node n[2];
	memset(n, 0, sizeof(n));
	balance_node(j, 0, &n[0], 1);
	balance_node(j, 1, &n[1], 1);
	if (!host_open(&n[0]) || !host_open(&n[1]))
		return;
	int pings = 0;
	for (; pings < 30; pings++)
		ping(n[pings % 2].log, pings);
	ok(STEP_ALL_UNTIL(n, 2, running(n[0].h) == 3 && running(n[1].h) == 3),
	   "started together: three each (node 0: %d, node 1: %d)", running(n[0].h),
	   running(n[1].h));
	ok(STEP_ALL_UNTIL(n, 2, once_each(n[0].log, pings) && once_each(n[1].log, pings)),
	   "every ping has one pong per handler");
	journal_node_sync(j, 0);
	int64_t moves = lease_events(n[0].log);
	printf("# %lld events in the six lease streams\n", (long long)moves);
	for (int i = 0; i < 1500; i++) /* 3 s and more: past every delay of lease.c */
		ml_host_step(n[0].h), ml_host_step(n[1].h), usleep(2000);
	journal_node_sync(j, 0);
	is_int(lease_events(n[0].log), moves, "and then no lease moves");
	for (int k = 0; k < 2; k++)
		node_close(&n[k]);
	journal_free(j);
}

static void test_alone(void)
{
	struct node n;
	node_open(NULL, 0, &n);
	struct ml_host *h = host_open(&n);
	if (!h)
		return;
	ping(n.log, 1);
	ml_host_drain(h);
	is_int(pongs_of(n.log).n, 1, "alone: the handler runs");
	is_int(count(n.log, "$lease-echo"), 0, "with no lease stream");
	char v[64];
	is_str(status_of(h, "lease", v, sizeof(v)), "", "and no lease in its status");
	is_str(status_of(h, "state", v, sizeof(v)), "running", "running");
	node_close(&n);
}

int main(void)
{
	test_two_nodes();
	test_balance();
	test_balance_together();
	test_alone();
	return done_testing();
}
