/*
 * pb_drive.c - the workloads, the same for every system.
 *
 * append:  N connections, each with up to W requests in flight, for S seconds
 *          (or until C events), spread over the ports given; prints events/s and
 *          the percentiles of each request's time from its send to its answer.
 * load:    append exactly C events (the log that read and fold then use).
 * read:    read the C stored events back in chunks through one consumer.
 * fold:    run the system's Lua fold over the stored events, check the sum.
 * latency: one publisher at R events/s, one live subscriber; prints the
 *          percentiles of append-to-delivery time.
 * Every result is one line of key=value pairs on stdout, for bench/run.lua.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb.h"

static struct pb_conn *open_conns(const struct pb_proto *p, const struct pb_opts *o, int n)
{
	struct pb_conn *cs = calloc((size_t)n, sizeof(*cs));
	for (int i = 0; cs != NULL && i < n; i++) {
		if (pb_connect(&cs[i], pb_port(o, i), i) != 0 || p->hello(&cs[i]) != 0) {
			free(cs);
			return NULL;
		}
	}
	return cs;
}

static void close_conns(struct pb_conn *cs, int n)
{
	for (int i = 0; i < n; i++)
		pb_close(&cs[i]);
	free(cs);
}

/*
 * A connection's answers come in the order of its requests (moonlog answers a
 * connection's appends in the order its log finished them, which is theirs;
 * JetStream acknowledges a connection's publishes in order), so the k-th
 * answer on a connection belongs to its k-th request: each connection keeps a
 * ring of its last `window` send times.
 */
struct pump {
	uint64_t next, acked, count, until;
	int window;
	uint64_t *stamps;     /* connection i's ring: stamps[i * window ...] */
	uint64_t *sent, *got; /* per connection: requests sent, answers taken */
	struct pb_samples lat;
};

static int more_to_send(const struct pump *u, uint64_t now)
{
	return u->count ? u->next < u->count : now < u->until;
}

/* Tops every connection up to its window, then sends what the socket takes. */
static int top_up(const struct pb_proto *p, struct pb_conn *cs, int n, struct pump *u)
{
	uint64_t now = pb_now_ns();
	for (int i = 0; i < n; i++) {
		uint64_t *ring = u->stamps + (size_t)i * (size_t)u->window;
		while (cs[i].inflight < u->window && more_to_send(u, now)) {
			p->append(&cs[i], u->next++);
			cs[i].inflight++;
			ring[u->sent[i]++ % (uint64_t)u->window] = now;
		}
		if (pb_write_some(&cs[i]) != 0)
			return -1;
		now = pb_now_ns();
	}
	return 0;
}

static int take_acks(const struct pb_proto *p, struct pb_conn *cs, int i, struct pump *u)
{
	struct pb_conn *c = &cs[i];
	if (pb_read_some(c) != 0)
		return -1;
	uint64_t now = pb_now_ns(), *ring = u->stamps + (size_t)i * (size_t)u->window;
	int r;
	while ((r = p->acked(c)) == 1) {
		c->inflight--;
		u->acked++;
		pb_sample(&u->lat, now - ring[u->got[i]++ % (uint64_t)u->window]);
	}
	return r;
}

static int pump_run(const struct pb_proto *p, struct pb_conn *cs, int n, struct pump *u)
{
	struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
	int rc = 0;
	for (;;) {
		if ((rc = top_up(p, cs, n, u)) != 0)
			break;
		int busy = 0;
		for (int i = 0; i < n; i++) {
			busy += cs[i].inflight;
			pf[i] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
			if (cs[i].out.len)
				pf[i].events |= POLLOUT;
		}
		if (!busy && !more_to_send(u, pb_now_ns()))
			break;
		int ready = poll(pf, (nfds_t)n, 60000);
		if (ready <= 0) {
			rc = pb_fail("no acknowledgement for 60 s (%s)", strerror(errno));
			break;
		}
		for (int i = 0; i < n && rc == 0; i++)
			if (pf[i].revents & (POLLIN | POLLERR | POLLHUP))
				rc = take_acks(p, cs, i, u) < 0 ? -1 : 0;
		if (rc != 0)
			break;
	}
	free(pf);
	return rc;
}

static int appends(const struct pb_proto *p, const struct pb_opts *o, uint64_t count)
{
	struct pb_conn *cs = open_conns(p, o, o->conns);
	if (cs == NULL || p->reset(&cs[0], o) != 0)
		return -1;
	struct pump u = {.count = count, .window = o->window};
	u.stamps = calloc((size_t)o->conns * (size_t)o->window, sizeof(*u.stamps));
	u.sent = calloc((size_t)o->conns, sizeof(*u.sent));
	u.got = calloc((size_t)o->conns, sizeof(*u.got));
	uint64_t t0 = pb_now_ns();
	u.until = t0 + (uint64_t)(o->seconds * 1e9);
	int rc =
	    u.stamps && u.sent && u.got ? pump_run(p, cs, o->conns, &u) : pb_fail("out of memory");
	double secs = (double)(pb_now_ns() - t0) / 1e9;
	close_conns(cs, o->conns);
	pb_samples_sort(&u.lat);
	if (rc == 0)
		printf("events=%llu seconds=%.3f events_per_s=%.0f p50_us=%.1f p99_us=%.1f\n",
		       (unsigned long long)u.acked, secs, (double)u.acked / secs,
		       pb_pct_us(&u.lat, 0.5), pb_pct_us(&u.lat, 0.99));
	free(u.stamps);
	free(u.sent);
	free(u.got);
	free(u.lat.v);
	return rc == 0 ? 0 : -1;
}

int pb_run_append(const struct pb_proto *p, const struct pb_opts *o)
{
	return appends(p, o, 0);
}

int pb_run_load(const struct pb_proto *p, const struct pb_opts *o)
{
	return appends(p, o, o->count);
}

static int reads(const struct pb_proto *p, const struct pb_opts *o, int consumer)
{
	struct pb_conn c;
	if (p->read_all == NULL)
		return pb_fail("%s: no read workload", p->name);
	if (pb_connect(&c, pb_port(o, 0), 0) != 0 || p->hello(&c) != 0)
		return -1;
	uint64_t t0 = pb_now_ns();
	int rc = consumer && p->consume_all ? p->consume_all(&c, o->count) : p->read_all(&c, o);
	double secs = (double)(pb_now_ns() - t0) / 1e9;
	pb_close(&c);
	if (rc != 0)
		return -1;
	printf("events=%llu seconds=%.3f events_per_s=%.0f\n", (unsigned long long)o->count, secs,
	       (double)o->count / secs);
	return 0;
}

/* Pages of --chunk, one request in flight (JetStream: its pull consumer). */
int pb_run_read(const struct pb_proto *p, const struct pb_opts *o)
{
	return reads(p, o, 0);
}

/* The system's own consumer where it has one (moonlog: a subscription), else pages. */
int pb_run_consume(const struct pb_proto *p, const struct pb_opts *o)
{
	return reads(p, o, 1);
}

int pb_run_fold(const struct pb_proto *p, const struct pb_opts *o)
{
	struct pb_conn c;
	struct pb_fold f = {0};
	if (p->fold == NULL)
		return pb_fail("%s: no fold workload", p->name);
	if (pb_connect(&c, pb_port(o, 0), 0) != 0 || p->hello(&c) != 0)
		return -1;
	uint64_t t0 = pb_now_ns();
	int rc = p->fold(&c, o->arg, &f);
	double secs = (double)(pb_now_ns() - t0) / 1e9;
	pb_close(&c);
	if (rc != 0)
		return -1;
	uint64_t want = pb_expected_sum(o->count), keys = o->count < PB_KEYS ? o->count : PB_KEYS;
	if (f.total != want || f.keys != keys)
		return pb_fail("%s fold: %llu keys summing to %llu, expected %llu keys and %llu",
			       p->name, (unsigned long long)f.keys, (unsigned long long)f.total,
			       (unsigned long long)keys, (unsigned long long)want);
	printf("events=%llu seconds=%.3f events_per_s=%.0f keys=%llu\n",
	       (unsigned long long)o->count, secs, (double)o->count / secs,
	       (unsigned long long)f.keys);
	return 0;
}
