/*
 * bench_net.c - the server's speed, measured over loopback:
 *
 *   moonlog bench append --connect [ADDR]   N connections of pipelined single-event
 *                                           appends (100-byte events), then $all read
 *                                           back over RPC
 *   moonlog bench subscribe [--connect ADDR] append-to-delivery latency on a live
 *                                           subscription at a steady rate
 *
 * Without ADDR an in-process server is started on a scratch folder (--fsync
 * always unless told otherwise), so one command measures the whole path:
 * framing, the loop, group commit and routing. The client side is a single
 * thread driving every connection with poll(), so the figures include the
 * client's own cost on the same machine.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <moonlog/diag.h>
#include <moonlog/server.h>

#include "cli/bench_net.h"
#include "cli/cli.h"
#include "cli/client.h"

struct bopts {
	const char *connect, *dir;
	enum ml_fsync fsync;
	double seconds;
	uint64_t conns, depth, rate;
	uint64_t page, pages; /* the read back: events per read, reads in flight */
};

/* ---- an in-process server ------------------------------------------------ */

struct inproc {
	struct ml_log *log;
	struct ml_server *srv;
	pthread_t thread;
	char addr[64], dir[1024];
};

static void *serve_thread(void *arg)
{
	ml_server_run(arg);
	return NULL;
}

static int inproc_start(struct inproc *ip, const struct bopts *o)
{
	snprintf(ip->dir, sizeof(ip->dir), "%s", o->dir);
	char cmd[2200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", ip->dir, ip->dir);
	if (system(cmd) != 0)
		return cli_fail("bench", CLI_REFUSED, "cannot create %s", ip->dir);
	struct ml_server_options so;
	ml_server_options_init(&so);
	so.dir = ip->dir;
	so.listen = "127.0.0.1:0";
	so.http = "";
	so.admin = "";
	so.quiet = 1;
	if ((ip->log = cli_open_log("bench", ip->dir, 0, o->fsync)) == NULL)
		return cli_status();
	if ((ip->srv = ml_server_new(ip->log, &so)) == NULL) {
		int rc = cli_diag("bench");
		ml_log_close(ip->log);
		return rc;
	}
	snprintf(ip->addr, sizeof(ip->addr), "127.0.0.1:%d", ml_server_rpc_port(ip->srv));
	pthread_create(&ip->thread, NULL, serve_thread, ip->srv);
	return 0;
}

static void inproc_stop(struct inproc *ip)
{
	if (ip->srv == NULL)
		return;
	ml_server_stop(ip->srv);
	pthread_join(ip->thread, NULL);
	ml_server_free(ip->srv);
	ml_log_close(ip->log);
	char cmd[1100];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ip->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "moonlog bench: could not remove %s\n", ip->dir);
}

/* ---- pipelined appends --------------------------------------------------- */

struct bconn {
	struct cli_client c;
	struct ml_buf req; /* one request, its msgid patched per send */
	size_t id_at;	   /* where the 4-byte msgid sits in req */
	uint64_t outstanding, sent, acked, failed;
	struct ml_buf out;
	size_t out_off;
	/* The server answers a connection's appends in their order, so the k-th answer
	 * is the k-th request's: a ring of the last `depth` send times. */
	uint64_t *stamps, answered;
};

/* Latency samples (ns), grown as they come. */
struct samples {
	uint64_t *v;
	size_t n, cap;
};

static void sample(struct samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 65536;
		s->v = ml_xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Percentile p of the samples, in microseconds (sorts them). */
static double pct_us(struct samples *s, double p)
{
	if (s->n == 0)
		return 0;
	qsort(s->v, s->n, sizeof(*s->v), cmp_u64);
	return (double)s->v[(size_t)((double)(s->n - 1) * p)] / 1000.0;
}

static void payload100(struct ml_buf *b, uint64_t stamp)
{
	/* {"t": uint64, "pad": "xxx..."} = 100 bytes */
	ml_buf_add(b, "\x82\xa1t\xcf", 4);
	for (int i = 0; i < 8; i++) {
		uint8_t c = (uint8_t)(stamp >> (56 - 8 * i));
		ml_buf_add(b, &c, 1);
	}
	ml_buf_add(b, "\xa3pad\xd9", 5);
	uint8_t n = 100 - 4 - 8 - 5 - 1;
	ml_buf_add(b, &n, 1);
	char pad[100];
	memset(pad, 'x', sizeof(pad));
	ml_buf_add(b, pad, n);
}

static void build_request(struct bconn *b, const char *stream)
{
	struct ml_buf *r = &b->req;
	ml_buf_add(r, "\x94\x00\xce", 3);
	b->id_at = r->len;
	ml_buf_add(r, "\0\0\0\0", 4);
	ml_msgpack_put_cstr(r, "append");
	ml_msgpack_put_array(r, 2);
	ml_msgpack_put_cstr(r, stream);
	ml_msgpack_put_map(r, 2);
	ml_msgpack_put_cstr(r, "type");
	ml_msgpack_put_cstr(r, "Measured");
	ml_msgpack_put_cstr(r, "data");
	payload100(r, 0);
}

static void queue_request(struct bconn *b, uint64_t stamp)
{
	uint32_t id = (uint32_t)++b->sent;
	uint8_t *p = (uint8_t *)b->req.data + b->id_at;
	p[0] = (uint8_t)(id >> 24), p[1] = (uint8_t)(id >> 16), p[2] = (uint8_t)(id >> 8);
	p[3] = (uint8_t)id;
	if (stamp) /* the "t" field sits 4 bytes into the payload, at the end of req */
		for (int i = 0; i < 8; i++)
			b->req.data[b->req.len - 96 + i] = (char)(stamp >> (56 - 8 * i));
	ml_buf_add(&b->out, b->req.data, b->req.len);
	b->outstanding++;
}

static int send_some(struct bconn *b)
{
	while (b->out_off < b->out.len) {
		ssize_t w = write(b->c.fd, b->out.data + b->out_off, b->out.len - b->out_off);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (w <= 0)
			return -1;
		b->out_off += (size_t)w;
	}
	b->out.len = b->out_off = 0;
	return 0;
}

/* Reads what has come, and takes every whole answer: counts successes and failures. */
static int read_some(struct bconn *b)
{
	return cli_client_take_answers(&b->c, &b->outstanding, &b->acked, &b->failed);
}

static void nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Connection i goes to addrs[i % naddrs], and appends to the stream bench-i. */
static int open_conns(struct bconn *bc, uint64_t n, const char *const *addrs, size_t naddrs,
		      uint64_t depth)
{
	for (uint64_t i = 0; i < n; i++) {
		char stream[32];
		snprintf(stream, sizeof(stream), "bench-%" PRIu64, i);
		if (cli_client_connect(&bc[i].c, addrs[i % naddrs]) != 0)
			return cli_diag("bench");
		nonblock(bc[i].c.fd);
		build_request(&bc[i], stream);
		bc[i].stamps = ml_xcalloc(depth, sizeof(*bc[i].stamps));
	}
	return 0;
}

static void close_conns(struct bconn *bc, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		cli_client_close(&bc[i].c);
		ml_buf_free(&bc[i].req);
		ml_buf_free(&bc[i].out);
		free(bc[i].stamps);
	}
}

/* Each answer taken since the last call: its time from the send, into lat. */
static void take_latencies(struct bconn *b, uint64_t depth, struct samples *lat)
{
	uint64_t now = ml_clock_ns();
	while (b->answered < b->acked + b->failed)
		sample(lat, now - b->stamps[b->answered++ % depth]);
}

/* Keeps `depth` appends in flight on every connection for the given time. */
static int run_appends(struct bconn *bc, const struct bopts *o, uint64_t *events, double *secs,
		       struct samples *lat)
{
	struct pollfd *pf = ml_xcalloc(o->conns, sizeof(*pf));
	uint64_t t0 = ml_clock_ns(), until = t0 + (uint64_t)(o->seconds * 1e9);
	int stopping = 0, rc = 0;
	for (;;) {
		uint64_t left = 0;
		stopping = stopping || ml_clock_ns() >= until;
		for (uint64_t i = 0; i < o->conns; i++) {
			struct bconn *b = &bc[i];
			uint64_t now = ml_clock_ns();
			while (!stopping && b->outstanding < o->depth) {
				queue_request(b, 0);
				b->stamps[(b->sent - 1) % o->depth] = now;
			}
			if (send_some(b) != 0)
				rc = -1;
			left += b->outstanding;
			pf[i] = (struct pollfd){.fd = b->c.fd,
						.events = POLLIN | (b->out.len ? POLLOUT : 0)};
		}
		if (rc != 0 || (stopping && left == 0))
			break;
		if (poll(pf, (nfds_t)o->conns, 1000) < 0 && errno != EINTR)
			break;
		for (uint64_t i = 0; i < o->conns; i++) {
			if ((pf[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    read_some(&bc[i]) != 0)
				rc = -1;
			take_latencies(&bc[i], o->depth, lat);
		}
	}
	*secs = (double)(ml_clock_ns() - t0) / 1e9;
	*events = 0;
	for (uint64_t i = 0; i < o->conns; i++)
		*events += bc[i].acked;
	free(pf);
	return rc;
}

/* Reads $all from 1 to head over one connection, `depth` pages in flight. */
static int run_read_all(const char *addr, uint64_t head, uint64_t page, uint64_t depth,
			double *secs, uint64_t *got)
{
	struct cli_client c;
	if (cli_client_connect(&c, addr) != 0)
		return cli_diag("bench");
	uint64_t next = 1, inflight = 0;
	*got = 0;
	uint64_t t0 = ml_clock_ns();
	struct ml_buf req = {0};
	while (*got < head) {
		while (inflight < depth && next <= head) {
			req.len = 0;
			ml_msgpack_put_array(&req, 4);
			ml_msgpack_put_uint(&req, 0);
			ml_msgpack_put_uint(&req, next);
			ml_msgpack_put_cstr(&req, "read");
			ml_msgpack_put_array(&req, 3);
			ml_msgpack_put_cstr(&req, "$all");
			ml_msgpack_put_uint(&req, next);
			ml_msgpack_put_uint(&req, page);
			if (write(c.fd, req.data, req.len) != (ssize_t)req.len)
				break;
			next += page;
			inflight++;
		}
		struct ml_msgpack_reader m;
		uint32_t n, cnt;
		int64_t type;
		uint64_t id;
		if (cli_client_next(&c, &m) != 0)
			break;
		if (ml_msgpack_get_array(&m, &n) != 0 || ml_msgpack_get_int(&m, &type) != 0 ||
		    type != 1 || ml_msgpack_get_uint(&m, &id) != 0 || ml_msgpack_get_nil(&m) != 0 ||
		    ml_msgpack_get_array(&m, &cnt) != 0)
			break;
		inflight--;
		*got += cnt;
		if (cnt == 0)
			break;
	}
	*secs = (double)(ml_clock_ns() - t0) / 1e9;
	ml_buf_free(&req);
	cli_client_close(&c);
	return *got == head ? 0
			    : cli_fail("bench", CLI_REFUSED, "read back %" PRIu64 " of %" PRIu64,
				       *got, head);
}

/* Reads $all from 1 to head as a consumer does: one subscription from position 1. */
static int run_consume_all(const char *addr, uint64_t head, double *secs, uint64_t *got)
{
	struct cli_client c;
	struct ml_buf p = {0};
	struct ml_msgpack_reader m;
	if (cli_client_connect(&c, addr) != 0)
		return cli_diag("bench");
	*got = 0;
	uint64_t t0 = ml_clock_ns();
	ml_msgpack_put_array(&p, 2);
	ml_msgpack_put_cstr(&p, "$all");
	ml_msgpack_put_uint(&p, 1);
	int rc = cli_client_call(&c, "subscribe", &p, &m);
	ml_buf_free(&p);
	while (rc == 0 && *got < head && cli_client_next(&c, &m) == 0) {
		uint32_t n, ml;
		int64_t type;
		const char *method;
		if (ml_msgpack_get_array(&m, &n) != 0 || n != 3 ||
		    ml_msgpack_get_int(&m, &type) != 0 || type != 2 ||
		    ml_msgpack_get_str(&m, &method, &ml) != 0 || ml != 5 ||
		    memcmp(method, "event", 5) != 0)
			break;
		(*got)++;
	}
	*secs = (double)(ml_clock_ns() - t0) / 1e9;
	cli_client_close(&c);
	if (rc != 0)
		return cli_diag("bench");
	return *got == head
		   ? 0
		   : cli_fail("bench", CLI_REFUSED,
			      "the subscription delivered %" PRIu64 " of %" PRIu64, *got, head);
}

static uint64_t head_of(const char *addr)
{
	struct cli_client c;
	struct ml_buf p = {0};
	struct ml_msgpack_reader r;
	uint64_t head = 0;
	uint32_t n, kl;
	const char *k;
	ml_msgpack_put_array(&p, 0);
	if (cli_client_connect(&c, addr) == 0 && cli_client_call(&c, "stats", &p, &r) == 0 &&
	    ml_msgpack_get_map(&r, &n) == 0) {
		for (uint32_t i = 0; i < n && ml_msgpack_get_str(&r, &k, &kl) == 0; i++) {
			if (kl == 4 && memcmp(k, "head", 4) == 0)
				ml_msgpack_get_uint(&r, &head);
			else
				ml_msgpack_skip(&r, NULL, NULL);
		}
	}
	cli_client_close(&c);
	ml_buf_free(&p);
	return head;
}

/* The stamp in a delivered event's data {"t": ..., ...}; 0 if none. */
static uint64_t stamp_of(struct ml_msgpack_reader *m)
{
	uint32_t n, kl;
	const char *k;
	int64_t type;
	uint64_t id, t = 0;
	if (ml_msgpack_get_array(m, &n) != 0 || ml_msgpack_get_int(m, &type) != 0 || type != 2 ||
	    ml_msgpack_get_str(m, &k, &kl) != 0 || ml_msgpack_get_array(m, &n) != 0 ||
	    ml_msgpack_get_uint(m, &id) != 0 || ml_msgpack_get_map(m, &n) != 0)
		return 0;
	for (uint32_t i = 0; i < n && ml_msgpack_get_str(m, &k, &kl) == 0; i++) {
		uint32_t dn, dkl;
		const char *dk;
		if (kl == 4 && memcmp(k, "data", 4) == 0 && ml_msgpack_get_map(m, &dn) == 0 &&
		    dn > 0 && ml_msgpack_get_str(m, &dk, &dkl) == 0 &&
		    ml_msgpack_get_uint(m, &t) == 0)
			return t;
		ml_msgpack_skip(m, NULL, NULL);
	}
	return 0;
}

/*
 * One connection appends to `pub` at a steady rate, each event stamped with the
 * time it was sent; a live subscription on `sub` (the same server, or another
 * node of one replicated log) takes each delivery's stamp off the clock.
 */
int cli_bench_lag(const char *pub, const char *sub_addr, uint64_t rate, double seconds,
		  struct cli_bench_lag *out)
{
	struct bconn app = {0};
	struct cli_client sub;
	struct ml_buf p = {0};
	struct ml_msgpack_reader r;
	if (cli_client_connect(&sub, sub_addr) != 0 || cli_client_connect(&app.c, pub) != 0)
		return cli_diag("bench");
	ml_msgpack_put_array(&p, 2);
	ml_msgpack_put_cstr(&p, "bench-lat");
	ml_msgpack_put_nil(&p);
	int rc = cli_client_call(&sub, "subscribe", &p, &r);
	ml_buf_free(&p);
	if (rc != 0) {
		cli_client_close(&sub);
		cli_client_close(&app.c);
		return cli_diag("bench");
	}
	nonblock(app.c.fd);
	build_request(&app, "bench-lat");
	struct samples lat = {0};
	uint64_t per_tick = rate / 1000 ? rate / 1000 : 1, tick_ns = 1000000;
	uint64_t t0 = ml_clock_ns(), until = t0 + (uint64_t)(seconds * 1e9), next = t0;
	uint64_t sent = 0, got = 0;
	while (got < sent || ml_clock_ns() < until) {
		uint64_t now = ml_clock_ns();
		if (now >= next && now < until) {
			for (uint64_t i = 0; i < per_tick; i++, sent++)
				queue_request(&app, ml_clock_ns());
			next += tick_ns;
		}
		if (send_some(&app) != 0)
			break;
		/* Sleep exactly until the next tick (ppoll: a busy client would steal a core). */
		uint64_t wait = now >= until ? 1000000000 : next > now ? next - now : 0;
		struct timespec ts = {(time_t)(wait / 1000000000), (long)(wait % 1000000000)};
		struct pollfd pf[2] = {
		    {.fd = sub.fd, .events = POLLIN},
		    {.fd = app.c.fd, .events = POLLIN | (app.out.len ? POLLOUT : 0)}};
		int n = ppoll(pf, 2, &ts, NULL);
		if (n == 0 && now >= until)
			break; /* nothing more is coming */
		if (pf[1].revents & POLLIN)
			read_some(&app);
		if (!(pf[0].revents & POLLIN))
			continue;
		/* Take every whole notification the subscriber has. */
		if (cli_client_read_some(&sub) <= 0)
			break;
		uint64_t arrived = ml_clock_ns();
		for (;;) {
			size_t len;
			const uint8_t *q = (const uint8_t *)sub.in.data + sub.in_off;
			if (ml_msgpack_frame(q, sub.in.len - sub.in_off, &len) != 0)
				break;
			struct ml_msgpack_reader m;
			ml_msgpack_reader_init(&m, q, len);
			sub.in_off += len;
			uint64_t st = stamp_of(&m);
			if (st)
				sample(&lat, arrived - st);
			got += st != 0;
		}
	}
	double secs = (double)(ml_clock_ns() - t0) / 1e9;
	*out = (struct cli_bench_lag){.sent = sent,
				      .delivered = lat.n,
				      .rate = (double)sent / secs,
				      .p50_us = pct_us(&lat, 0.5),
				      .p99_us = pct_us(&lat, 0.99),
				      .p999_us = pct_us(&lat, 0.999),
				      .max_us = pct_us(&lat, 1.0)};
	free(lat.v);
	cli_client_close(&sub);
	close_conns(&app, 1);
	return CLI_OK;
}

static int bench_subscribe(const struct bopts *o, const char *addr)
{
	struct cli_bench_lag l;
	int rc = cli_bench_lag(addr, addr, o->rate, o->seconds, &l);
	if (rc != CLI_OK)
		return rc;
	printf("subscribe: %" PRIu64 " events appended at %.0f/s, %" PRIu64
	       " delivered; append-to-delivery "
	       "latency p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us (fsync %s)\n",
	       l.sent, l.rate, l.delivered, l.p50_us, l.p99_us, l.p999_us, l.max_us,
	       ml_fsync_name(o->fsync));
	return CLI_OK;
}

int cli_bench_appends(const char *const *addrs, size_t naddrs, uint64_t conns, uint64_t depth,
		      double seconds, struct cli_bench_appends *out)
{
	struct bopts o = {.conns = conns, .depth = depth, .seconds = seconds};
	struct bconn *bc = ml_xcalloc(conns, sizeof(*bc));
	struct samples lat = {0};
	*out = (struct cli_bench_appends){0};
	int rc = open_conns(bc, conns, addrs, naddrs, depth);
	if (rc == 0 && run_appends(bc, &o, &out->events, &out->seconds, &lat) != 0)
		rc = cli_fail("bench", CLI_REFUSED, "a connection failed");
	for (uint64_t i = 0; i < conns; i++)
		out->failed += bc[i].failed;
	out->p50_us = pct_us(&lat, 0.5);
	out->p99_us = pct_us(&lat, 0.99);
	free(lat.v);
	close_conns(bc, conns);
	free(bc);
	return rc;
}

static int bench_append_net(const struct bopts *o, const char *addr)
{
	struct cli_bench_appends a;
	int rc = cli_bench_appends(&addr, 1, o->conns, o->depth, o->seconds, &a);
	if (rc != 0)
		return rc;
	printf("append: %" PRIu64 " connections x %" PRIu64 " pipelined, 100-byte events: %.0f "
	       "durable appends/s (%" PRIu64 " in %.2f s, %" PRIu64
	       " failed), each answered in p50 %.1f us, p99 %.1f us\n",
	       o->conns, o->depth, (double)a.events / a.seconds, a.events, a.seconds, a.failed,
	       a.p50_us, a.p99_us);
	uint64_t head = head_of(addr), got = 0;
	double secs = 0;
	rc = run_read_all(addr, head, o->page, o->pages, &secs, &got);
	if (rc == 0)
		printf("read $all over RPC: %" PRIu64 " events in %.2f s: %.0f events/s (reads of "
		       "%" PRIu64 ", %" PRIu64 " in flight)\n",
		       got, secs, (double)got / secs, o->page, o->pages);
	if (rc == 0 && (rc = run_consume_all(addr, head, &secs, &got)) == 0)
		printf("consume $all by subscription from 1: %" PRIu64
		       " events in %.2f s: %.0f events/s\n",
		       got, secs, (double)got / secs);
	return rc;
}

static const char help[] =
    "usage: moonlog bench append --connect [ADDR] [options]\n"
    "       moonlog bench subscribe [--connect ADDR] [options]\n"
    "\n"
    "append: N connections each keep D single-event appends (100-byte events) in flight\n"
    "for S seconds; then the whole log is read back as $all over RPC twice: in pages\n"
    "(read), and as a consumer does (one subscription from position 1).\n"
    "subscribe: one connection appends at a steady rate, another has a live subscription;\n"
    "prints append-to-delivery latency percentiles.\n"
    "Without ADDR an in-process server runs on a scratch folder.\n"
    "\n"
    "  --conns N     connections (append; default 64)\n"
    "  --depth D     appends in flight per connection (append; default 64)\n"
    "  --rate R      events/s (subscribe; default 50000)\n"
    "  --seconds S   how long (default 5)\n"
    "  --page N      events per read when reading back (append; default 1000)\n"
    "  --pages K     reads in flight when reading back (append; default 1: each read\n"
    "                waits for the one before, as a consumer paging through would)\n"
    "  --fsync MODE  of the in-process server (default always)\n"
    "  --dir DIR     its scratch folder (default ./moonlog-bench-net; removed after)\n";

int cli_bench_net(int argc, char **argv, int subscribe)
{
	struct bopts o = {.dir = "./moonlog-bench-net",
			  .seconds = 5,
			  .conns = 64,
			  .depth = 64,
			  .rate = 50000,
			  .page = 1000,
			  .pages = 1};
	static const struct option opts[] = {
	    {"connect", optional_argument, 0, 'c'},
	    {"conns", required_argument, 0, 'n'},
	    {"depth", required_argument, 0, 'p'},
	    {"rate", required_argument, 0, 'r'},
	    {"seconds", required_argument, 0, 's'},
	    {"fsync", required_argument, 0, 'f'},
	    {"dir", required_argument, 0, 'd'},
	    {"page", required_argument, 0, 'P'},
	    {"pages", required_argument, 0, 'K'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	int c, bad = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (optarg)
				o.connect = optarg;
			else if (optind < argc && argv[optind][0] != '-')
				o.connect = argv[optind++]; /* --connect ADDR */
			break;
		case 'n':
			bad |= cli_uint("bench", "--conns", optarg, &o.conns);
			break;
		case 'p':
			bad |= cli_uint("bench", "--depth", optarg, &o.depth);
			break;
		case 'r':
			bad |= cli_uint("bench", "--rate", optarg, &o.rate);
			break;
		case 'P':
			bad |= cli_uint("bench", "--page", optarg, &o.page);
			break;
		case 'K':
			bad |= cli_uint("bench", "--pages", optarg, &o.pages);
			break;
		case 's':
			o.seconds = atof(optarg);
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 'f':
			if (ml_fsync_parse(optarg, &o.fsync) != 0)
				return cli_diag("bench");
			break;
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		default:
			return cli_fail("bench", CLI_USAGE, "see moonlog bench subscribe --help");
		}
	}
	if (bad || o.conns == 0 || o.depth == 0 || o.rate == 0 || o.seconds <= 0 || o.page == 0 ||
	    o.pages == 0)
		return bad ? CLI_USAGE
			   : cli_fail("bench", CLI_USAGE, "counts and --seconds must be positive");
	struct inproc ip = {0};
	if (!o.connect && inproc_start(&ip, &o) != 0)
		return CLI_REFUSED;
	const char *addr = o.connect ? o.connect : ip.addr;
	int rc = subscribe ? bench_subscribe(&o, addr) : bench_append_net(&o, addr);
	inproc_stop(&ip);
	return rc;
}
