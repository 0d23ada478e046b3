/*
 * cmd_bench_scripts.c - the speed of scripts living in the server:
 *
 *   moonlog bench commands [--conns 64] [--depth 8] [--accounts 1000] [--seconds 5]
 *       Deposit commands through the bank example's account decider, over
 *       msgpack-RPC to an in-process server (--fsync always): durable commands/s.
 *   moonlog bench orders [--conns 64] [--depth 8] [--seconds 5]
 *       the orders saga of examples/orders end to end: Place commands through the
 *       order decider over RPC, then the handlers (payments, gateway, fulfilment)
 *       take each order to OrderConfirmed or OrderCancelled (one in ten is over
 *       the card limit); orders completed per second, counted from the log.
 *   moonlog bench catchup [--events 10000000] [--accounts 1000]
 *       a log of Deposited events; the balances projection caught up by the host
 *       (ml_host_drain, in slices) against the plain replay path (ml_log_scan
 *       straight into the script, as `moonlog replay` does).
 *
 * The client is one thread driving every connection with poll(), so the
 * figures include the client's own cost on the same machine.
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
#include <moonlog/host.h>
#include <moonlog/server.h>

#include "cli/cli.h"
#include "cli/client.h"

static const char scripts_help[] =
    "usage: moonlog bench commands [--conns 64] [--depth 8] [--accounts 1000] [--seconds 5]\n"
    "       moonlog bench orders [--conns 64] [--depth 8] [--seconds 5]\n"
    "       moonlog bench catchup [--events 10000000] [--accounts 1000]\n"
    "\n"
    "commands: Deposit commands through examples/bank's account decider over msgpack-RPC to\n"
    "  a server in this process (--fsync always); durable commands per second.\n"
    "orders: Place commands through examples/orders, then its handlers take each order to\n"
    "  OrderConfirmed or OrderCancelled; orders completed per second, counted from the log.\n"
    "catchup: a log of Deposited events; the balances projection caught up by the host in\n"
    "  slices, beside the plain replay path of `moonlog replay`.\n"
    "\n"
    "  --dir DIR   the scratch folder (default /tmp/moonlog-bench-scripts; removed after)\n";

struct sopts {
	uint64_t conns, depth, accounts, events;
	double seconds;
	int orders; /* the orders saga instead of the bank */
	char dir[1024], scripts[1024];
};

static int fresh_dir(const char *dir)
{
	char cmd[2200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
	return system(cmd) == 0 ? 0 : cli_fail("bench", CLI_REFUSED, "cannot create %s", dir);
}

static void *serve_thread(void *arg)
{
	ml_server_run(arg);
	return NULL;
}

/* One connection: `depth` Deposit commands in flight, to account (i % accounts). */
struct cconn {
	struct cli_client c;
	struct ml_buf out;
	uint64_t outstanding, ok, failed, next;
};

/* Place order n (ids are unique per connection: n carries the connection's offset). */
static void queue_order(struct ml_buf *w, uint64_t n)
{
	ml_msgpack_put_cstr(w, "order");
	ml_msgpack_put_cstr(w, "Place");
	ml_msgpack_put_map(w, 4);
	ml_msgpack_put_cstr(w, "id");
	ml_msgpack_put_uint(w, n);
	ml_msgpack_put_cstr(w, "amount");
	ml_msgpack_put_uint(w, n % 10 == 0 ? 250000 : 1000 + n % 5000);
	ml_msgpack_put_cstr(w, "customer");
	ml_msgpack_put_cstr(w, "bench");
	ml_msgpack_put_cstr(w, "card");
	ml_msgpack_put_cstr(w, "4242");
}

static void queue(struct cconn *b, const struct sopts *o, uint64_t n)
{
	struct ml_buf *w = &b->out;
	ml_msgpack_put_array(w, 4);
	ml_msgpack_put_uint(w, 0);
	ml_msgpack_put_uint(w, b->c.next_id++);
	ml_msgpack_put_cstr(w, "command");
	ml_msgpack_put_array(w, 3);
	if (o->orders) {
		queue_order(w, n);
		b->outstanding++;
		return;
	}
	ml_msgpack_put_cstr(w, "account");
	ml_msgpack_put_cstr(w, "Deposit");
	ml_msgpack_put_map(w, 2);
	ml_msgpack_put_cstr(w, "id");
	ml_msgpack_put_uint(w, n % o->accounts);
	ml_msgpack_put_cstr(w, "amount");
	ml_msgpack_put_uint(w, 1);
	b->outstanding++;
}

/* Reads what has come, and takes every whole answer: counts successes and failures. */
static int take(struct cconn *b)
{
	return cli_client_take_answers(&b->c, &b->outstanding, &b->ok, &b->failed);
}

static int send_out(struct cconn *b)
{
	size_t off = 0;
	while (off < b->out.len) {
		ssize_t w = write(b->c.fd, b->out.data + off, b->out.len - off);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	memmove(b->out.data, b->out.data + off, b->out.len - off);
	b->out.len -= off;
	return 0;
}

/* Orders that reached OrderConfirmed or OrderCancelled: the log read from where it was. */
struct done_count {
	struct ml_log *log;
	uint64_t next; /* the position to read from */
	uint64_t done;
};

static int count_event(const struct ml_event *e, void *arg)
{
	struct done_count *d = arg;
	d->next = e->position + 1;
	if ((e->type_len == 14 && memcmp(e->type, "OrderConfirmed", 14) == 0) ||
	    (e->type_len == 14 && memcmp(e->type, "OrderCancelled", 14) == 0))
		d->done++;
	return 0;
}

static void count_done(struct done_count *d)
{
	ml_log_read_all(d->log, d->next, 0, count_event, d);
}

/* Waits (up to ten minutes) for every placed order to complete, then prints the figures. */
static int report_orders(struct done_count *d, uint64_t placed, uint64_t bad, double secs,
			 uint64_t t0)
{
	uint64_t in_window = d->done, deadline = ml_clock_ns() + 600000000000ull;
	while (d->done < placed && ml_clock_ns() < deadline) {
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
		count_done(d);
	}
	double all = (double)(ml_clock_ns() - t0) / 1e9;
	printf("orders: %" PRIu64 " placed in %.2f s (%.0f/s; %" PRIu64 " refused), %" PRIu64
	       " completed within it; all %" PRIu64
	       " completed (confirmed or cancelled) after %.2f s: %.0f orders completed/s end to "
	       "end\n",
	       placed, secs, (double)placed / secs, bad, in_window, d->done, all,
	       (double)d->done / all);
	return d->done < placed ? cli_fail("bench", CLI_REFUSED,
					   "%" PRIu64 " orders did not complete within ten minutes",
					   placed - d->done)
				: 0;
}

static int bench_commands(const struct sopts *o)
{
	if (fresh_dir(o->dir) != 0)
		return CLI_REFUSED;
	struct ml_server_options so;
	ml_server_options_init(&so);
	so.dir = o->dir, so.listen = "127.0.0.1:0", so.http = "", so.admin = "", so.quiet = 1;
	struct ml_log *log = cli_open_log("bench", o->dir, 0, ML_FSYNC_ALWAYS);
	if (log == NULL)
		return cli_status();
	struct ml_server *srv = ml_server_new(log, &so);
	struct ml_host_options ho;
	ml_host_options_init(&ho);
	ho.scripts_dir = o->scripts, ho.data_dir = o->dir, ho.quiet = 1;
	struct ml_host *h = srv ? ml_host_open(log, &ho) : NULL;
	if (h == NULL) {
		int rc = cli_diag("bench");
		ml_server_free(srv);
		ml_log_close(log);
		return rc;
	}
	ml_host_serve(h, srv);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ml_server_rpc_port(srv));
	pthread_t th;
	pthread_create(&th, NULL, serve_thread, srv);

	struct cconn *bc = ml_xcalloc(o->conns, sizeof(*bc));
	struct pollfd *pf = ml_xcalloc(o->conns, sizeof(*pf));
	struct cli_client setup;
	int rc = cli_client_connect(&setup, addr);
	for (uint64_t a = 0; rc == 0 && !o->orders && a < o->accounts; a++) { /* open accounts */
		struct ml_buf p = {0};
		struct ml_msgpack_reader res;
		ml_msgpack_put_array(&p, 3);
		ml_msgpack_put_cstr(&p, "account");
		ml_msgpack_put_cstr(&p, "Open");
		ml_msgpack_put_map(&p, 2);
		ml_msgpack_put_cstr(&p, "id"), ml_msgpack_put_uint(&p, a);
		ml_msgpack_put_cstr(&p, "owner"), ml_msgpack_put_cstr(&p, "bench");
		rc = cli_client_call(&setup, "command", &p, &res);
		ml_buf_free(&p);
	}
	if (rc == 0)
		cli_client_close(&setup);
	for (uint64_t i = 0; rc == 0 && i < o->conns; i++) {
		rc = cli_client_connect(&bc[i].c, addr);
		fcntl(bc[i].c.fd, F_SETFL, fcntl(bc[i].c.fd, F_GETFL) | O_NONBLOCK);
		bc[i].next = o->orders ? i << 40 : i * 7919;
	}
	struct done_count done = {log, 1, 0};
	uint64_t t0 = ml_clock_ns(), until = t0 + (uint64_t)(o->seconds * 1e9), ok = 0, bad = 0;
	while (rc == 0 && ml_clock_ns() < until) {
		for (uint64_t i = 0; i < o->conns; i++) {
			while (bc[i].outstanding < o->depth)
				queue(&bc[i], o, bc[i].next++);
			if (send_out(&bc[i]) != 0)
				rc = -1;
			pf[i] =
			    (struct pollfd){bc[i].c.fd, POLLIN | (bc[i].out.len ? POLLOUT : 0), 0};
		}
		poll(pf, o->conns, 100);
		for (uint64_t i = 0; i < o->conns && rc == 0; i++)
			if ((pf[i].revents & POLLIN) && take(&bc[i]) != 0)
				rc = -1;
		if (o->orders)
			count_done(&done);
	}
	double secs = (double)(ml_clock_ns() - t0) / 1e9;
	for (uint64_t i = 0; i < o->conns; i++) {
		while (rc == 0 && o->orders && bc[i].outstanding > 0) { /* orders on their way */
			struct pollfd p = {bc[i].c.fd, POLLIN, 0};
			if (poll(&p, 1, 10000) <= 0 || take(&bc[i]) != 0)
				rc = -1;
		}
		ok += bc[i].ok, bad += bc[i].failed;
		cli_client_close(&bc[i].c);
		ml_buf_free(&bc[i].out);
	}
	if (rc != 0)
		cli_fail("bench", CLI_REFUSED, "a connection failed: %s", ml_diag_last());
	else if (o->orders)
		rc = report_orders(&done, ok, bad, secs, t0);
	else
		printf("commands: %" PRIu64 " durable Deposit commands in %.2f s over %" PRIu64
		       " connections (depth %" PRIu64 ", %" PRIu64 " accounts): %.0f commands/s"
		       " (%" PRIu64 " refused or conflicted)\n",
		       ok, secs, o->conns, o->depth, o->accounts, (double)ok / secs, bad);
	ml_server_stop(srv);
	pthread_join(th, NULL);
	ml_host_close(h);
	ml_server_free(srv);
	ml_log_close(log);
	free(bc);
	free(pf);
	return rc == 0 ? CLI_OK : CLI_REFUSED;
}

/* ---- catch-up ---- */

static int feed_replay(const struct ml_event *e, void *arg)
{
	return ml_script_feed(arg, e) == 0 ? 0 : -1;
}

static int bench_catchup(const struct sopts *o)
{
	if (fresh_dir(o->dir) != 0)
		return CLI_REFUSED;
	struct ml_log_options lo;
	ml_log_options_init(&lo);
	lo.dir = o->dir, lo.fsync = ML_FSYNC_NEVER;
	struct ml_log *log = ml_log_open(&lo);
	if (log == NULL)
		return cli_diag("bench");
	enum { BATCH = 1000 };
	struct ml_event_in evs[BATCH];
	char streams[BATCH][32];
	const char data[] = "\x81\xa6"
			    "amount\x05";
	for (uint64_t done = 0; done < o->events; done += BATCH) {
		for (int i = 0; i < BATCH; i++) {
			int n = snprintf(streams[i], 32, "account-%" PRIu64,
					 (done + (uint64_t)i) % o->accounts);
			evs[i] = (struct ml_event_in){.stream = streams[i],
						      .stream_len = (size_t)n,
						      .type = "Deposited",
						      .type_len = 9,
						      .data = data,
						      .data_len = sizeof(data) - 1};
		}
		struct ml_append req = {.events = evs, .n_events = BATCH};
		if (ml_log_append(log, &req) != 0)
			return cli_diag("bench");
	}
	char path[1100];
	snprintf(path, sizeof(path), "%s/balances.lua", o->scripts);
	struct ml_script *s = ml_script_load(path, NULL);
	if (s == NULL)
		return cli_diag("bench");
	uint64_t t0 = ml_clock_ns();
	ml_log_scan(log, 1, 0, feed_replay, s);
	double replay = (double)(ml_clock_ns() - t0) / 1e9;
	ml_script_free(s);

	struct ml_host_options ho;
	ml_host_options_init(&ho);
	ho.scripts_dir = o->scripts, ho.data_dir = o->dir, ho.quiet = 1;
	t0 = ml_clock_ns();
	struct ml_host *h = ml_host_open(log, &ho);
	if (h == NULL)
		return cli_diag("bench");
	ml_host_drain(h);
	double host = (double)(ml_clock_ns() - t0) / 1e9;
	ml_host_close(h);
	ml_log_close(log);
	uint64_t n = o->events;
	printf("catchup: %" PRIu64 " events; replay %.2f s (%.2f M/s); host, in slices, with "
	       "the bank scripts %.2f s (%.2f M/s): %.2fx\n",
	       n, replay, (double)n / replay / 1e6, host, (double)n / host / 1e6, host / replay);
	char cmd[1100];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", o->dir);
	return system(cmd) == 0 ? CLI_OK : CLI_OK;
}

int cli_bench_scripts(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"conns", required_argument, 0, 'c'},    {"depth", required_argument, 0, 'd'},
	    {"accounts", required_argument, 0, 'a'}, {"events", required_argument, 0, 'e'},
	    {"seconds", required_argument, 0, 's'},  {"dir", required_argument, 0, 'D'},
	    {"help", no_argument, 0, 'h'},	     {0, 0, 0, 0},
	};
	struct sopts o = {
	    .conns = 64, .depth = 8, .accounts = 1000, .events = 10000000, .seconds = 5};
	snprintf(o.dir, sizeof(o.dir), "/tmp/moonlog-bench-scripts");
	snprintf(o.scripts, sizeof(o.scripts), "%s/../examples/bank/scripts",
		 ml_script_lua_source_dir());
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		uint64_t v = 0;
		if (c != 'D' && c != 'h' && c != '?' &&
		    cli_uint("bench", "option", optarg, &v) != 0)
			return CLI_USAGE;
		if (c == 'c')
			o.conns = v ? v : 1;
		else if (c == 'd')
			o.depth = v ? v : 1;
		else if (c == 'a')
			o.accounts = v ? v : 1;
		else if (c == 'e')
			o.events = v < 1000 ? 1000 : v;
		else if (c == 's')
			o.seconds = (double)v;
		else if (c == 'D')
			snprintf(o.dir, sizeof(o.dir), "%s", optarg);
		else if (c == 'h')
			return fputs(scripts_help, stdout), CLI_OK;
		else
			return fputs(scripts_help, stderr), CLI_USAGE;
	}
	if (strcmp(argv[0], "catchup") == 0)
		return bench_catchup(&o);
	if (strcmp(argv[0], "orders") == 0) {
		o.orders = 1;
		snprintf(o.scripts, sizeof(o.scripts), "%s/../examples/orders/scripts",
			 ml_script_lua_source_dir());
	}
	return bench_commands(&o);
}
