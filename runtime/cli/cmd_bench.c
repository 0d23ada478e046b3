/*
 * cmd_bench.c - `moonlog bench append`: the log's append speed, in process.
 *
 * Each scenario appends 100-byte events from N threads for a fixed time on a
 * fresh log, and reports events/s, MB/s and the latency of each append call.
 * Beside them, in the same run and on the same file system, it measures the
 * raw rate of 4 KiB write + fdatasync, the ceiling of one synchronous write,
 * and prints the durable figures as a ratio to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"

static const char help[] =
    "usage: moonlog bench append [--dir DIR] [--seconds S] [--quick]\n"
    "\n"
    "Appends 100-byte events in-process: batch size 1 and 100, 1 and 16 concurrent\n"
    "appenders (and 256 single-event appenders), under each fsync mode, and prints\n"
    "events/s, MB/s and latency percentiles, beside the raw write+fdatasync rate of\n"
    "4 KiB blocks measured in the same run on the same file system.\n"
    "\n"
    "  --dir DIR     where to create the scratch logs (default ./moonlog-bench; removed after)\n"
    "  --seconds S   how long each scenario runs (default 2)\n"
    "  --quick       only the --fsync always scenarios\n";

static const char overview[] =
    "usage: moonlog bench SCENARIO [options]   (moonlog bench SCENARIO --help for its options)\n"
    "\n"
    "In process, on a scratch log (removed after):\n"
    "  append      appends of 100-byte events under each fsync mode, beside the raw\n"
    "              write+fdatasync rate of the same disk\n"
    "  open        a log of --events events over --streams streams: the time to open it,\n"
    "              its memory, version lookups, reads, old ids' retries, appends/s\n"
    "  replay      Lua folds over a log, beside plain lua5.4 with lua-messagepack\n"
    "  reload      the pause a handler's hot reload costs, and a rebuild projection's swap\n"
    "  commands    Deposit commands through examples/bank over 64 RPC connections\n"
    "  orders      the examples/orders saga end to end (orders completed per second)\n"
    "  catchup     the balances projection caught up in slices, beside a plain replay\n"
    "  scavenge    a scavenge's MB/s, and append latency while it runs beside without\n"
    "Against a running server:\n"
    "  append --connect ADDR      durable appends over msgpack-RPC, then $all read back\n"
    "  subscribe --connect ADDR   append-to-delivery latency on a live subscription\n"
    "On a NATS JetStream cluster (docs/scale-out.md):\n"
    "  cluster --nats URLS        two nodes of one replicated log: appends/s through both,\n"
    "                             append latency, and the lag from node A to node B\n"
    "\n"
    "`make bench` runs the same work against Redis Streams, NATS JetStream and Tarantool\n"
    "(bench/README.md).\n";

#define MAX_SAMPLES 200000

struct scenario {
	enum ml_fsync fsync;
	int threads, batch;
	int async; /* appenders are outstanding async requests, not threads */
};

struct worker {
	struct ml_log *log;
	int id, batch;
	uint64_t until_ns, events, appends, failed;
	uint64_t *lat;
	size_t nlat, maxlat;
};

static uint8_t payload[100];

/* A 100-byte msgpack map: {"amount": 12345, "note": "xxx..."}. */
static void make_payload(void)
{
	static const char head[] = "\x82\xa6"
				   "amount"
				   "\xcd\x30\x39"
				   "\xa4"
				   "note";
	size_t h = sizeof(head) - 1, str = sizeof(payload) - h - 2;
	memcpy(payload, head, h);
	payload[h] = 0xd9; /* str 8 */
	payload[h + 1] = (uint8_t)str;
	memset(payload + h + 2, 'x', str);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct ml_event_in evs[100];
	char stream[32];
	snprintf(stream, sizeof(stream), "bench-%d", w->id);
	for (int i = 0; i < w->batch; i++)
		evs[i] = (struct ml_event_in){stream, strlen(stream), "Measured",      8,    NULL,
					      0,      payload,	      sizeof(payload), NULL, 0};
	while (ml_clock_ns() < w->until_ns) {
		struct ml_append req = {.events = evs, .n_events = (size_t)w->batch};
		uint64_t t0 = ml_clock_ns();
		if (ml_log_append(w->log, &req) != 0) {
			w->failed++;
			continue;
		}
		if (w->nlat < w->maxlat)
			w->lat[w->nlat++] = ml_clock_ns() - t0;
		w->appends++;
		w->events += (uint64_t)w->batch;
	}
	return NULL;
}

/*
 * Async appenders: `threads` requests kept outstanding, each resubmitted from
 * its completion callback, as a server does with its connections' appends.
 */
struct slot {
	struct ml_append req;
	struct ml_event_in evs[100];
	char stream[32];
	uint64_t t0;
	struct async_run *run;
};

struct async_run {
	struct ml_log *log;
	uint64_t until_ns, events, appends, failed;
	uint64_t *lat;
	size_t nlat;
	int active;
	pthread_mutex_t mu;
	pthread_cond_t idle;
};

static void slot_submit(struct slot *s);

static void slot_done(struct ml_append *req)
{
	struct slot *s = req->arg;
	struct async_run *run = s->run;
	uint64_t now = ml_clock_ns();
	pthread_mutex_lock(&run->mu);
	if (req->err == ML_OK) {
		if (run->nlat < MAX_SAMPLES)
			run->lat[run->nlat++] = now - s->t0;
		run->appends++;
		run->events += req->n_events;
	} else {
		run->failed++;
	}
	int more = now < run->until_ns;
	if (!more && --run->active == 0)
		pthread_cond_signal(&run->idle);
	pthread_mutex_unlock(&run->mu);
	if (more)
		slot_submit(s);
}

static void slot_submit(struct slot *s)
{
	s->t0 = ml_clock_ns();
	if (ml_log_submit(s->run->log, &s->req) != 0) /* refused at once: count, stop it */
		slot_done(&s->req);
}

static void run_async(struct async_run *run, int n, int batch)
{
	struct slot *slots = ml_xcalloc((size_t)n, sizeof(*slots));
	pthread_mutex_init(&run->mu, NULL);
	pthread_cond_init(&run->idle, NULL);
	run->active = n;
	for (int i = 0; i < n; i++) {
		struct slot *s = &slots[i];
		snprintf(s->stream, sizeof(s->stream), "bench-%d", i);
		for (int j = 0; j < batch; j++)
			s->evs[j] = (struct ml_event_in){
			    s->stream, strlen(s->stream), "Measured",	   8,	 NULL,
			    0,	       payload,		  sizeof(payload), NULL, 0};
		s->req = (struct ml_append){
		    .events = s->evs, .n_events = (size_t)batch, .done = slot_done, .arg = s};
		s->run = run;
	}
	for (int i = 0; i < n; i++)
		slot_submit(&slots[i]);
	pthread_mutex_lock(&run->mu);
	while (run->active > 0)
		pthread_cond_wait(&run->idle, &run->mu);
	pthread_mutex_unlock(&run->mu);
	pthread_mutex_destroy(&run->mu);
	pthread_cond_destroy(&run->idle);
	free(slots);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
	return n ? (double)v[(size_t)((double)(n - 1) * p)] / 1000.0 : 0;
}

/* Raw write + fdatasync of 4 KiB blocks: appends per second one file can make. */
static double raw_fdatasync_rate(const char *dir, double seconds)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/raw-fdatasync", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return 0;
	char block[4096];
	memset(block, 'r', sizeof(block));
	uint64_t n = 0, t0 = ml_clock_ns(), until = t0 + (uint64_t)(seconds * 1e9);
	while (ml_clock_ns() < until) {
		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) || fdatasync(fd) != 0)
			break;
		n++;
	}
	double rate = (double)n / ((double)(ml_clock_ns() - t0) / 1e9);
	close(fd);
	unlink(path);
	return rate;
}

static void rm_log(const char *dir)
{
	char cmd[4300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/log'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "moonlog bench: could not remove %s/log\n", dir);
}

static int run(const char *dir, const struct scenario *s, double seconds, double raw)
{
	rm_log(dir);
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = dir;
	o.fsync = s->fsync;
	struct ml_log *log = ml_log_open(&o);
	if (log == NULL)
		return cli_diag("bench");
	struct worker *w = ml_xcalloc((size_t)s->threads, sizeof(*w));
	pthread_t *t = ml_xcalloc((size_t)s->threads, sizeof(*t));
	uint64_t t0 = ml_clock_ns(), until = t0 + (uint64_t)(seconds * 1e9);
	size_t per = MAX_SAMPLES / (size_t)s->threads + 1;
	uint64_t *lat = ml_xmalloc(per * (size_t)s->threads * sizeof(*lat));
	for (int i = 0; i < s->threads; i++) {
		w[i] = (struct worker){.log = log,
				       .id = i,
				       .batch = s->batch,
				       .until_ns = until,
				       .lat = lat + per * (size_t)i,
				       .maxlat = per};
		if (!s->async)
			pthread_create(&t[i], NULL, work, &w[i]);
	}
	uint64_t events = 0, appends = 0, failed = 0;
	size_t nlat = 0;
	if (s->async) {
		struct async_run ar = {.log = log, .until_ns = until, .lat = lat};
		run_async(&ar, s->threads, s->batch);
		events = ar.events, appends = ar.appends, failed = ar.failed, nlat = ar.nlat;
	}
	for (int i = 0; i < s->threads && !s->async; i++) {
		pthread_join(t[i], NULL);
		events += w[i].events, appends += w[i].appends, failed += w[i].failed;
		memmove(lat + nlat, w[i].lat, w[i].nlat * sizeof(*lat));
		nlat += w[i].nlat;
	}
	double secs = (double)(ml_clock_ns() - t0) / 1e9;
	struct ml_log_stats st;
	ml_log_stats(log, &st);
	ml_log_close(log);
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	double eps = (double)events / secs, aps = (double)appends / secs;
	printf("%-7s %6d %-6s %6d %12.0f %8.1f %9.1f %9.1f %9.1f %8.1f %7.1f",
	       ml_fsync_name(s->fsync), s->threads, s->async ? "async" : "thread", s->batch, eps,
	       eps * (double)sizeof(payload) / 1e6, pct(lat, nlat, 0.5), pct(lat, nlat, 0.99),
	       pct(lat, nlat, 0.999), st.groups ? (double)appends / (double)st.groups : 0,
	       s->fsync == ML_FSYNC_ALWAYS ? aps / raw : 0);
	if (failed)
		printf("  (%" PRIu64 " failed)", failed);
	printf("\n");
	fflush(stdout);
	free(w);
	free(t);
	free(lat);
	return 0;
}

static int bench_append(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, 0, 'd'},
	    {"seconds", required_argument, 0, 's'},
	    {"quick", no_argument, 0, 'q'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	const char *dir = "./moonlog-bench";
	double seconds = 2;
	int quick = 0, c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'q':
			quick = 1;
			break;
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		default:
			return cli_fail("bench", CLI_USAGE, "see moonlog bench append --help");
		}
	}
	if (seconds <= 0)
		return cli_fail("bench", CLI_USAGE, "--seconds must be a positive number");
	char mk[4300];
	snprintf(mk, sizeof(mk), "mkdir -p '%s'", dir);
	if (system(mk) != 0)
		return cli_fail("bench", CLI_REFUSED, "cannot create %s", dir);
	make_payload();

	double raw = raw_fdatasync_rate(dir, seconds);
	printf("raw write+fdatasync of 4 KiB blocks in %s: %.0f/s (%.1f us each)\n\n", dir, raw,
	       raw > 0 ? 1e6 / raw : 0);
	printf("%-7s %13s %6s %12s %8s %9s %9s %9s %8s %7s\n", "fsync", "appenders", "batch",
	       "events/s", "MB/s", "p50 us", "p99 us", "p99.9 us", "per-sync", "x raw");
	static const struct scenario all[] = {
	    {ML_FSYNC_ALWAYS, 1, 1, 0},	   {ML_FSYNC_ALWAYS, 16, 1, 0},
	    {ML_FSYNC_ALWAYS, 16, 1, 1},   {ML_FSYNC_ALWAYS, 256, 1, 0},
	    {ML_FSYNC_ALWAYS, 256, 1, 1},  {ML_FSYNC_ALWAYS, 1, 100, 0},
	    {ML_FSYNC_ALWAYS, 16, 100, 0}, {ML_FSYNC_ALWAYS, 16, 100, 1},
	    {ML_FSYNC_BATCH, 1, 1, 0},	   {ML_FSYNC_BATCH, 16, 1, 0},
	    {ML_FSYNC_BATCH, 1, 100, 0},   {ML_FSYNC_BATCH, 16, 100, 0},
	    {ML_FSYNC_NEVER, 1, 1, 0},	   {ML_FSYNC_NEVER, 16, 1, 0},
	    {ML_FSYNC_NEVER, 1, 100, 0},   {ML_FSYNC_NEVER, 16, 100, 0},
	};
	int rc = 0;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]) && rc == 0; i++)
		if (!quick || all[i].fsync == ML_FSYNC_ALWAYS)
			rc = run(dir, &all[i], seconds, raw);
	printf(
	    "\n'thread' appenders are threads calling ml_log_append and waiting; 'async' ones\n"
	    "are requests kept outstanding with ml_log_submit, as the server keeps its clients'.\n"
	    "'x raw' is appends/s over the raw write+fdatasync rate (fsync always only);\n"
	    "'per-sync' is appends per flush group (write, and fdatasync under always).\n");
	rm_log(dir);
	rmdir(dir);
	return rc;
}

int cli_bench_scripts(int argc, char **argv);  /* cmd_bench_scripts.c */
int cli_bench_reload(int argc, char **argv);   /* cmd_bench_reload.c */
int cli_bench_open(int argc, char **argv);     /* cmd_bench_open.c */
int cli_bench_scavenge(int argc, char **argv); /* cmd_bench_scavenge.c */

int cmd_bench(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "commands") == 0 || strcmp(argv[1], "catchup") == 0 ||
			  strcmp(argv[1], "orders") == 0))
		return cli_bench_scripts(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "open") == 0)
		return cli_bench_open(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "reload") == 0)
		return cli_bench_reload(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "scavenge") == 0)
		return cli_bench_scavenge(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "replay") == 0)
		return bench_replay(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "subscribe") == 0)
		return cli_bench_net(argc - 1, argv + 1, 1);
	if (argc >= 2 && strcmp(argv[1], "cluster") == 0)
		return cli_bench_cluster(argc - 1, argv + 1);
	for (int i = 2; i < argc && strcmp(argv[1], "append") == 0; i++)
		if (strncmp(argv[i], "--connect", 9) == 0) /* over the network: bench_net.c */
			return cli_bench_net(argc - 1, argv + 1, 0);
	if (argc >= 2 && strcmp(argv[1], "append") == 0)
		return bench_append(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(overview, stdout);
		return CLI_OK;
	}
	fputs(overview, stderr);
	return argc >= 2 ? cli_fail("bench", CLI_USAGE, "no benchmark called \"%s\"", argv[1])
			 : CLI_USAGE;
}
