/*
 * cmd_bench_scavenge.c - `moonlog bench scavenge`: how fast a scavenge gives
 * back the disk, and what it costs the appends that go on meanwhile.
 *
 * It builds a log of N events of about BYTES bytes, a share of them in streams
 * named gone-* (the ones the benchmark's predicate removes), then in the same
 * run measures durable appends (--fsync always, one event each, paced at
 * --rate a second) three times: alone for --seconds, while a scavenge of the
 * whole log runs on another thread, and alone again (how much the disk varies). It reports the
 * scavenge's throughput (the segment bytes it read per second of its run), the bytes it wrote and
 * gave back, and the appends' latency p50/p99 beside each other.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

static const char scavenge_help[] =
    "usage: moonlog bench scavenge [--dir DIR] [--events N] [--size BYTES] [--removed PCT]\n"
    "                              [--rate R] [--seconds S]\n"
    "\n"
    "Builds a log of N events (default 1,000,000) of about BYTES bytes each (default 500,\n"
    "the record included), PCT percent of them (default 50) in streams the benchmark's\n"
    "predicate removes, then measures durable appends of one event, R a second (default\n"
    "1000), for S seconds without a scavenge (default 3), then while a scavenge of the\n"
    "whole log runs, then S seconds without again. It prints the scavenge's throughput in MB/s "
    "(segment bytes read per\n"
    "second), what it wrote and gave back, and the appends' latency p50/p99 beside the\n"
    "same without a scavenge.\n"
    "\n"
    "  --dir DIR     where to build the log (default ./moonlog-bench; removed after)\n";

struct opts {
	const char *dir;
	uint64_t events, size, removed, rate;
	double seconds;
};

/* The benchmark's predicate: the events of streams gone-*. */
static int gone(const struct ml_event *e, void *arg)
{
	(void)arg;
	return e->stream_len > 5 && memcmp(e->stream, "gone-", 5) == 0;
}

static int build(struct ml_log *log, const struct opts *o)
{
	static uint8_t data[1u << 16];
	size_t payload = o->size > 120 ? o->size - 120 : 8;
	if (payload > sizeof(data) - 8)
		payload = sizeof(data) - 8;
	data[0] = 0xc5; /* msgpack bin 16 */
	data[1] = (uint8_t)(payload >> 8), data[2] = (uint8_t)payload;
	memset(data + 3, 'x', payload);
	struct ml_event_in ev[100];
	char streams[100][32];
	for (uint64_t i = 0; i < o->events;) {
		size_t n = 0;
		for (; n < 100 && i < o->events; n++, i++) {
			snprintf(streams[n], sizeof(streams[n]), "%s-%" PRIu64,
				 i % 100 < o->removed ? "gone" : "keep", i % 1000);
			ev[n] = (struct ml_event_in){.stream = streams[n],
						     .stream_len = strlen(streams[n]),
						     .type = "Noted",
						     .type_len = 5,
						     .data = data,
						     .data_len = (uint32_t)payload + 3};
		}
		struct ml_append req = {.events = ev, .n_events = n};
		if (ml_log_append(log, &req) != 0)
			return -1;
	}
	return 0;
}

struct pacer {
	struct ml_log *log;
	uint64_t rate;
	volatile int stop;
	uint64_t *lat;
	size_t n, cap;
	int failed;
};

/* Appends one event at a time, `rate` a second, keeping each append's latency. */
static void *pace(void *arg)
{
	struct pacer *p = arg;
	uint64_t gap = 1000000000ull / (p->rate ? p->rate : 1), next = ml_clock_ns();
	static const uint8_t data[] = "\x81\xa1n\x01";
	while (!p->stop && p->n < p->cap) {
		uint64_t now = ml_clock_ns();
		if (now < next) {
			struct timespec ts = {0, (long)(next - now)};
			nanosleep(&ts, NULL);
		}
		next += gap;
		struct ml_event_in e = {.stream = "paced",
					.stream_len = 5,
					.type = "Ticked",
					.type_len = 6,
					.data = data,
					.data_len = sizeof(data) - 1};
		struct ml_append req = {.events = &e, .n_events = 1};
		uint64_t t0 = ml_clock_ns();
		if (ml_log_append(p->log, &req) != 0) {
			p->failed = 1;
			break;
		}
		p->lat[p->n++] = ml_clock_ns() - t0;
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	return (double)v[(size_t)(q * (double)(n - 1))] / 1000.0;
}

struct scav_run {
	struct ml_log *log;
	struct ml_scavenge_stats st;
	int rc;
	volatile int done;
};

static void *scavenge(void *arg)
{
	struct scav_run *s = arg;
	s->rc = ml_log_scavenge(s->log, gone, NULL, &s->st);
	s->done = 1;
	return NULL;
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {{"dir", 1, 0, 'd'},  {"events", 1, 0, 'n'},
					      {"size", 1, 0, 'b'}, {"removed", 1, 0, 'r'},
					      {"rate", 1, 0, 'R'}, {"seconds", 1, 0, 's'},
					      {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	*o = (struct opts){"./moonlog-bench", 1000000, 500, 50, 1000, 3};
	optind = 1;
	for (int c; (c = getopt_long(argc, argv, "h", longs, NULL)) != -1;) {
		if (c == 'h') {
			fputs(scavenge_help, stdout);
			return -1;
		}
		if (c == '?')
			return -2;
		uint64_t v = strtoull(optarg, NULL, 10);
		switch (c) {
		case 'd':
			o->dir = optarg;
			break;
		case 'n':
			o->events = v;
			break;
		case 'b':
			o->size = v;
			break;
		case 'r':
			o->removed = v > 100 ? 100 : v;
			break;
		case 'R':
			o->rate = v ? v : 1;
			break;
		case 's':
			o->seconds = atof(optarg);
			break;
		}
	}
	return 0;
}

int cli_bench_scavenge(int argc, char **argv)
{
	struct opts o;
	int p = parse(argc, argv, &o);
	if (p != 0) {
		if (p == -2)
			fputs(scavenge_help, stderr);
		return p == -1 ? CLI_OK : CLI_USAGE;
	}
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", o.dir);
	if (system(cmd) != 0)
		return cli_fail("bench scavenge", CLI_REFUSED, "cannot clear %s", o.dir);
	struct ml_log_options lo;
	ml_log_options_init(&lo);
	lo.dir = o.dir;
	lo.fsync = ML_FSYNC_NEVER;
	lo.segment_size = 16u << 20; /* many finished segments */
	struct ml_log *log = ml_log_open(&lo);
	if (log == NULL || build(log, &o) != 0)
		return cli_diag("bench scavenge");
	ml_log_close(log);
	lo.fsync = ML_FSYNC_ALWAYS;
	if ((log = ml_log_open(&lo)) == NULL)
		return cli_diag("bench scavenge");
	struct ml_log_stats ls;
	do { /* the index written down: every finished segment is scavenged */
		usleep(10000);
		ml_log_stats(log, &ls);
	} while (ls.index_pending);
	sync(); /* the build's pages written back: they would slow the first measurement's syncs */
	printf("log: %" PRIu64 " events of ~%" PRIu64 " bytes, %" PRIu64 "%% removed, %.1f MB "
	       "in %" PRIu64 " segments\n",
	       o.events, o.size, o.removed, (double)ls.bytes / 1e6, ls.segments);

	size_t cap = (size_t)(o.rate * (o.seconds + 600));
	struct pacer alone = {log, o.rate, 0, ml_xmalloc(cap * sizeof(uint64_t)), 0, cap, 0};
	pthread_t th;
	pthread_create(&th, NULL, pace, &alone);
	usleep((useconds_t)(o.seconds * 1e6));
	alone.stop = 1;
	pthread_join(th, NULL);

	struct pacer during = {log, o.rate, 0, ml_xmalloc(cap * sizeof(uint64_t)), 0, cap, 0};
	struct scav_run s = {.log = log};
	pthread_t ts;
	pthread_create(&th, NULL, pace, &during);
	usleep(100000); /* the appends are under way */
	size_t from = during.n;
	pthread_create(&ts, NULL, scavenge, &s);
	while (!s.done)
		usleep(1000);
	size_t to = during.n;
	during.stop = 1;
	pthread_join(ts, NULL);
	pthread_join(th, NULL);
	struct pacer after = {log, o.rate, 0, ml_xmalloc(cap * sizeof(uint64_t)), 0, cap, 0};
	pthread_create(&th, NULL, pace, &after); /* alone again: how much the disk varies */
	usleep((useconds_t)(o.seconds * 1e6));
	after.stop = 1;
	pthread_join(th, NULL);
	ml_log_close(log);
	int rc = CLI_OK;
	if (s.rc != 0 || alone.failed || during.failed || after.failed)
		rc = cli_fail("bench scavenge", CLI_REFUSED, "%s", ml_diag_last());
	double secs = (double)s.st.elapsed_ms / 1000.0;
	printf("scavenge: %" PRIu64 " of %" PRIu64 " segments rewritten, %" PRIu64
	       " events removed in %.2f s: %.1f MB read (%.1f MB/s), %.1f MB written, %.1f MB "
	       "given back\n",
	       s.st.rewritten, s.st.segments, s.st.events_removed, secs,
	       (double)s.st.bytes_read / 1e6, secs > 0 ? (double)s.st.bytes_read / 1e6 / secs : 0,
	       (double)s.st.bytes_written / 1e6, (double)s.st.bytes_reclaimed / 1e6);
	printf("appends (--fsync always, %" PRIu64 "/s), latency p50 / p99 (appends):\n"
	       "  without a scavenge, before  %.0f / %.0f us (%zu)\n"
	       "  while it runs               %.0f / %.0f us (%zu)\n"
	       "  without a scavenge, after   %.0f / %.0f us (%zu)\n",
	       o.rate, pct(alone.lat, alone.n, 0.5), pct(alone.lat, alone.n, 0.99), alone.n,
	       pct(during.lat + from, to - from, 0.5), pct(during.lat + from, to - from, 0.99),
	       to - from, pct(after.lat, after.n, 0.5), pct(after.lat, after.n, 0.99), after.n);
	free(after.lat);
	free(alone.lat);
	free(during.lat);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", o.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "moonlog bench scavenge: could not remove %s\n", o.dir);
	return rc;
}
