/*
 * pb_latency.c - append-to-delivery latency on a live subscription.
 *
 * One publisher connection appends at a steady rate (one event every
 * 1/R seconds, not waiting for acknowledgements); one subscriber connection
 * holds the system's live subscription. A single publisher keeps deliveries in
 * append order, so the k-th delivery belongs to the k-th append and its
 * latency is the time between the two on the same monotonic clock.
 *
 * Given two ports, the publisher appends through the first and the subscriber
 * listens on the second: for moonlog's nodes on one replicated log, the lag
 * from an append on node A to its delivery on node B.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include "pb.h"

struct lat_run {
	uint64_t *sent;
	struct pb_samples lat;
	uint64_t n, next, got;
	uint64_t t0, period;
};

/* Sends every event that is due; returns the poll timeout until the next. */
static int send_due(const struct pb_proto *p, struct pb_conn *pub, struct lat_run *r)
{
	uint64_t now = pb_now_ns();
	while (r->next < r->n && r->t0 + r->next * r->period <= now) {
		r->sent[r->next] = pb_now_ns();
		p->append(pub, r->next++);
		pub->inflight++;
	}
	if (pb_write_some(pub) != 0)
		return -2;
	if (r->next >= r->n)
		return 100;
	uint64_t due = r->t0 + r->next * r->period;
	return due > now ? (int)((due - now + 999999) / 1000000) : 0;
}

static int on_delivery(const struct pb_proto *p, struct pb_conn *sub, struct lat_run *r)
{
	uint64_t got = r->got;
	if (pb_read_some(sub) != 0 || p->sub_recv(sub, &got) != 0)
		return -1;
	uint64_t now = pb_now_ns();
	if (got > r->next)
		return pb_fail("%s: %llu deliveries for %llu appends", p->name,
			       (unsigned long long)got, (unsigned long long)r->next);
	for (; r->got < got; r->got++)
		pb_sample(&r->lat, now - r->sent[r->got]);
	return 0;
}

static int drain_acks(const struct pb_proto *p, struct pb_conn *pub)
{
	if (pb_read_some(pub) != 0)
		return -1;
	int k;
	while ((k = p->acked(pub)) == 1)
		pub->inflight--;
	return k < 0 ? -1 : 0;
}

static int lat_loop(const struct pb_proto *p, struct pb_conn *pub, struct pb_conn *sub,
		    struct lat_run *r)
{
	uint64_t deadline = pb_now_ns() + (uint64_t)(r->n * r->period) + 30000000000ull;
	while (r->got < r->n) {
		int wait = send_due(p, pub, r);
		if (wait < -1 || pb_now_ns() > deadline)
			return wait < -1 ? -1 : pb_fail("%s: deliveries stopped", p->name);
		struct pollfd pf[2] = {{.fd = pub->fd, .events = POLLIN},
				       {.fd = sub->fd, .events = POLLIN}};
		if (pub->out.len)
			pf[0].events |= POLLOUT;
		if (sub->out.len)
			pf[1].events |= POLLOUT;
		if (poll(pf, 2, wait) < 0)
			return pb_fail("poll failed");
		if ((pf[0].revents & POLLIN) && drain_acks(p, pub) != 0)
			return -1;
		if ((pf[1].revents & POLLIN) && on_delivery(p, sub, r) != 0)
			return -1;
		if ((pf[1].revents & POLLOUT) && pb_write_some(sub) != 0)
			return -1;
	}
	return 0;
}

int pb_run_latency(const struct pb_proto *p, const struct pb_opts *o)
{
	struct pb_conn pub, sub;
	if (p->sub_open == NULL)
		return pb_fail("%s: no live subscription", p->name);
	if (pb_connect(&pub, pb_port(o, 0), 0) != 0 || p->hello(&pub) != 0 ||
	    p->reset(&pub, o) != 0)
		return -1;
	if (pb_connect(&sub, pb_port(o, 1), 1) != 0 || p->hello(&sub) != 0 ||
	    p->sub_open(&sub) != 0)
		return -1;
	struct lat_run r = {.n = o->count, .period = 1000000000ull / (uint64_t)o->rate};
	r.sent = calloc(r.n, sizeof(*r.sent));
	r.t0 = pb_now_ns();
	int rc = lat_loop(p, &pub, &sub, &r);
	pb_close(&pub);
	pb_close(&sub);
	if (rc == 0) {
		pb_samples_sort(&r.lat);
		printf("events=%llu rate=%d p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n",
		       (unsigned long long)r.n, o->rate, pb_pct_us(&r.lat, 0.5),
		       pb_pct_us(&r.lat, 0.99), pb_pct_us(&r.lat, 0.999), pb_pct_us(&r.lat, 1.0));
	}
	free(r.sent);
	free(r.lat.v);
	return rc;
}
