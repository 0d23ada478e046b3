/*
 * cmd_bench_open.c - `moonlog bench open`: what a large log costs to open and
 * to keep, and how fast it answers once open.
 *
 * It builds a log of N events over M streams (each with a client-chosen id,
 * unless --no-ids), then measures in a fresh process (the builder execs itself
 * with --measure, so that nothing of the build is left in its memory): the
 * time to open, the process's anonymous memory (RssAnon, what the page cache
 * does not hold) after the open and after the reads, a stream's version
 * lookup and its last 10 events read (p50/p99, random streams), the duplicate
 * check of old ids (appends retrying ids of the first 1% of the log), and
 * durable appends per second from 16 async appenders to random streams, with
 * and without client ids. Only the public API is used, so that the same file
 * measures an older moonlog the same way.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

static const char open_help[] =
    "usage: moonlog bench open [--dir DIR] [--events N] [--streams M] [--size BYTES]\n"
    "                          [--no-ids] [--seconds S] [--reuse] [--keep]\n"
    "\n"
    "Builds a log of N events (default 10,000,000) of about BYTES bytes each (default\n"
    "200, the record included) over M streams (default 100,000; event n goes to stream\n"
    "n mod M, with the client id id-n unless --no-ids), with --fsync never, then in a\n"
    "fresh process opens it with --fsync always and reports:\n"
    "  the time to open, and the process's anonymous memory (RssAnon) after it;\n"
    "  a stream's version lookup, and its last 10 events read, p50/p99 (random streams;\n"
    "  the reads twice: cold, then warm);\n"
    "  RssAnon after those reads;\n"
    "  the duplicate check of an old id: an append that retries the id of an event from\n"
    "  the first 1% of the log, p50/p99, and how many were answered duplicate;\n"
    "  durable appends per second from 16 async appenders to random streams, without\n"
    "  and with client ids.\n"
    "\n"
    "  --dir DIR     where to build the log (default ./moonlog-bench; removed after)\n"
    "  --seconds S   how long each timed part runs (default 3)\n"
    "  --reuse       measure the log already in DIR instead of building one\n"
    "  --keep        leave the log in DIR\n";

struct opts {
	const char *dir;
	uint64_t events, streams, size;
	double seconds;
	int ids, reuse, keep, measure;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13, x ^= x >> 7, x ^= x << 17;
	return rng_state = x;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_us(uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	return (double)v[(size_t)((double)(n - 1) * p)] / 1000.0;
}

/* The process's memory, from /proc/self/status: RssAnon (or another field), in bytes. */
static uint64_t status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kb = 0;
	size_t n = strlen(field);
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			kb = strtoull(line + n + 1, NULL, 10);
	if (f)
		fclose(f);
	return kb * 1024;
}

static void rm_log(const char *dir)
{
	char cmd[4300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/log'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "moonlog bench: could not remove %s/log\n", dir);
}

static uint64_t du_bytes(const char *dir, const char *pattern)
{
	char cmd[4400], out[64] = "0";
	snprintf(cmd, sizeof(cmd), "cat %s/log/%s 2>/dev/null | wc -c", dir, pattern);
	FILE *p = popen(cmd, "r");
	if (p && fgets(out, sizeof(out), p) == NULL)
		out[0] = '\0';
	if (p)
		pclose(p);
	return strtoull(out, NULL, 10);
}

/* ---- the build ---- */

/* A msgpack map padding each event to about `size` bytes: {"amount": n, "note": "xxx..."}. */
static size_t event_data(uint8_t *out, size_t size, uint64_t n)
{
	size_t used = 48 + 20 + 9 + 16; /* record header, stream, type, id, roughly */
	size_t note = size > used + 32 ? size - used - 32 : 8;
	if (note > 255)
		note = 255;
	size_t k = 0;
	out[k++] = 0x82;
	out[k++] = 0xa6;
	memcpy(out + k, "amount", 6), k += 6;
	out[k++] = 0xcf; /* uint 64 */
	for (int b = 7; b >= 0; b--)
		out[k++] = (uint8_t)(n >> (8 * b));
	out[k++] = 0xa4;
	memcpy(out + k, "note", 4), k += 4;
	out[k++] = 0xd9; /* str 8 */
	out[k++] = (uint8_t)note;
	memset(out + k, 'x', note), k += note;
	return k;
}

static int build(const struct opts *o)
{
	rm_log(o->dir);
	struct ml_log_options lo;
	ml_log_options_init(&lo);
	lo.dir = o->dir;
	lo.fsync = ML_FSYNC_NEVER;
	struct ml_log *log = ml_log_open(&lo);
	if (log == NULL)
		return cli_diag("bench");
	enum { BATCH = 1000 };
	static struct ml_event_in evs[BATCH];
	static char names[BATCH][32], ids[BATCH][32];
	static uint8_t data[BATCH][300];
	uint64_t t0 = ml_clock_ns(), next_report = t0 + 10000000000ull;
	for (uint64_t done = 0; done < o->events;) {
		size_t n = o->events - done < BATCH ? (size_t)(o->events - done) : BATCH;
		for (size_t i = 0; i < n; i++) {
			uint64_t e = done + i;
			int len =
			    snprintf(names[i], sizeof(names[i]), "stream-%" PRIu64, e % o->streams);
			int ilen = snprintf(ids[i], sizeof(ids[i]), "id-%" PRIu64, e);
			size_t dlen = event_data(data[i], o->size, e);
			evs[i] = (struct ml_event_in){names[i],
						      (size_t)len,
						      "Measured",
						      8,
						      o->ids ? ids[i] : NULL,
						      o->ids ? (size_t)ilen : 0,
						      data[i],
						      dlen,
						      "\x80",
						      1};
		}
		struct ml_append req = {.events = evs, .n_events = n};
		if (ml_log_append(log, &req) != 0) {
			ml_log_close(log);
			return cli_diag("bench");
		}
		done += n;
		if (ml_clock_ns() > next_report) {
			fprintf(stderr, "moonlog bench: built %" PRIu64 " of %" PRIu64 " events\n",
				done, o->events);
			next_report += 10000000000ull;
		}
	}
	double secs = (double)(ml_clock_ns() - t0) / 1e9;
	uint64_t c0 = ml_clock_ns();
	struct ml_log_stats st;
	do { /* the index's files written and merged, so that the measures find it settled */
		usleep(10000);
		ml_log_stats(log, &st);
	} while (st.index_pending > 0);
	double settle = (double)(ml_clock_ns() - c0) / 1e9;
	c0 = ml_clock_ns();
	ml_log_close(log);
	printf("built %" PRIu64 " events over %" PRIu64 " streams%s in %.1f s (%.0f events/s, "
	       "fsync never); its index settled %.1f s later; closed in %.1f s\n",
	       o->events, o->streams, o->ids ? ", each with a client id," : "", secs,
	       (double)o->events / secs, settle, (double)(ml_clock_ns() - c0) / 1e9);
	fflush(stdout);
	return CLI_OK;
}

/* ---- the measures ---- */

static int noop(const struct ml_event *e, void *arg)
{
	(void)e;
	(*(uint64_t *)arg)++;
	return 0;
}

static void stream_name(char out[32], uint64_t s, int *len)
{
	*len = snprintf(out, 32, "stream-%" PRIu64, s);
}

/* A stream's last 10 events, read for each stream of `sample`: latencies into lat. */
static uint64_t read_last(struct ml_log *log, const uint64_t *sample, size_t n, uint64_t *lat)
{
	uint64_t events = 0;
	for (size_t i = 0; i < n; i++) {
		char name[32];
		int len;
		stream_name(name, sample[i], &len);
		uint64_t t0 = ml_clock_ns();
		ml_log_read_stream(log, name, (size_t)len, 0, 10, 1, noop, &events);
		lat[i] = ml_clock_ns() - t0;
	}
	return events;
}

/*
 * Random streams: each version lookup, then each read of its last 10 events,
 * twice over the same streams: first as the open left the page cache and the
 * process (cold: the pages mapped for the first time, maybe read from disk),
 * then again (warm: what a server that has run a while sees).
 */
static void lookups(struct ml_log *log, const struct opts *o)
{
	enum { MAX = 20000 };
	uint64_t *lat = ml_xmalloc(MAX * sizeof(*lat)), *sample = ml_xmalloc(MAX * sizeof(*sample));
	uint64_t wrong = 0, per_stream = o->events / o->streams;
	size_t n = 0;
	uint64_t until = ml_clock_ns() + (uint64_t)(o->seconds * 1e9);
	while (n < MAX && ml_clock_ns() < until) {
		char name[32];
		int len;
		sample[n] = rnd() % o->streams;
		stream_name(name, sample[n], &len);
		uint64_t t0 = ml_clock_ns();
		uint64_t v = ml_log_stream_version(log, name, (size_t)len);
		lat[n++] = ml_clock_ns() - t0;
		wrong += v < per_stream;
	}
	printf("version lookup: p50 %.1f us, p99 %.1f us (%zu random streams%s)\n",
	       pct_us(lat, n, 0.5), pct_us(lat, n, 0.99), n, wrong ? ", SOME WRONG" : "");
	for (int pass = 0; pass < 2; pass++) {
		uint64_t events = read_last(log, sample, n, lat);
		printf("last 10 events of a stream, %s: p50 %.1f us, p99 %.1f us (%zu reads, %.1f "
		       "events each)\n",
		       pass ? "warm (the same streams again)" : "cold", pct_us(lat, n, 0.5),
		       pct_us(lat, n, 0.99), n, n ? (double)events / (double)n : 0);
	}
	free(sample);
	free(lat);
}

/* Retries of ids from the first 1% of the log: each should be a duplicate. */
static void old_ids(struct ml_log *log, const struct opts *o)
{
	enum { MAX = 20000 };
	uint64_t *lat = ml_xmalloc(MAX * sizeof(*lat)), dups = 0;
	size_t n = 0;
	uint64_t old = o->events / 100 ? o->events / 100 : 1;
	uint64_t until = ml_clock_ns() + (uint64_t)(o->seconds * 1e9);
	uint8_t data[300];
	while (n < MAX && ml_clock_ns() < until) {
		uint64_t e = rnd() % old;
		char name[32], id[32];
		int len, ilen = snprintf(id, sizeof(id), "id-%" PRIu64, e);
		stream_name(name, e % o->streams, &len);
		struct ml_event_in ev = {name,	     (size_t)len,
					 "Measured", 8,
					 id,	     (size_t)ilen,
					 data,	     event_data(data, o->size, e),
					 "\x80",     1};
		struct ml_append req = {.events = &ev, .n_events = 1};
		uint64_t t0 = ml_clock_ns();
		if (ml_log_append(log, &req) != 0)
			break;
		lat[n++] = ml_clock_ns() - t0;
		dups += req.duplicate;
	}
	printf("an id from the first 1%% retried: p50 %.1f us, p99 %.1f us; %" PRIu64 " of %zu "
	       "answered duplicate%s\n",
	       pct_us(lat, n, 0.5), pct_us(lat, n, 0.99), dups, n,
	       dups == n ? "" : " (the others were stored again)");
	free(lat);
}

/* 16 async appenders to random streams, each request resubmitted from its completion. */
struct slot {
	struct ml_append req;
	struct ml_event_in ev;
	char name[32], id[40];
	uint8_t data[300];
	struct appending *run;
};

struct appending {
	struct ml_log *log;
	const struct opts *o;
	int ids;
	uint64_t until, events, failed, next_id;
	int active;
	pthread_mutex_t mu;
	pthread_cond_t idle;
};

static void slot_submit(struct slot *s);

static void slot_done(struct ml_append *req)
{
	struct slot *s = req->arg;
	struct appending *a = s->run;
	pthread_mutex_lock(&a->mu);
	if (req->err == ML_OK)
		a->events++;
	else
		a->failed++;
	int more = ml_clock_ns() < a->until;
	if (!more && --a->active == 0)
		pthread_cond_signal(&a->idle);
	pthread_mutex_unlock(&a->mu);
	if (more)
		slot_submit(s);
}

static void slot_submit(struct slot *s)
{
	struct appending *a = s->run;
	int len, ilen = 0;
	pthread_mutex_lock(&a->mu);
	uint64_t k = a->next_id++, stream = rnd() % a->o->streams;
	pthread_mutex_unlock(&a->mu);
	stream_name(s->name, stream, &len);
	if (a->ids)
		ilen = snprintf(s->id, sizeof(s->id), "new-%" PRIu64, k);
	s->ev = (struct ml_event_in){s->name,
				     (size_t)len,
				     "Measured",
				     8,
				     a->ids ? s->id : NULL,
				     (size_t)ilen,
				     s->data,
				     event_data(s->data, a->o->size, k),
				     "\x80",
				     1};
	s->req = (struct ml_append){.events = &s->ev, .n_events = 1, .done = slot_done, .arg = s};
	if (ml_log_submit(a->log, &s->req) != 0) /* refused at once: count it, stop the slot */
		slot_done(&s->req);
}

static void appends(struct ml_log *log, const struct opts *o, int ids)
{
	enum { SLOTS = 16 };
	struct slot *slots = ml_xcalloc(SLOTS, sizeof(*slots));
	static uint64_t next_id;
	struct appending a = {.log = log, .o = o, .ids = ids, .active = SLOTS, .next_id = next_id};
	pthread_mutex_init(&a.mu, NULL);
	pthread_cond_init(&a.idle, NULL);
	uint64_t t0 = ml_clock_ns();
	a.until = t0 + (uint64_t)(o->seconds * 1e9);
	for (int i = 0; i < SLOTS; i++) {
		slots[i].run = &a;
		slot_submit(&slots[i]);
	}
	pthread_mutex_lock(&a.mu);
	while (a.active > 0)
		pthread_cond_wait(&a.idle, &a.mu);
	pthread_mutex_unlock(&a.mu);
	double secs = (double)(ml_clock_ns() - t0) / 1e9;
	next_id = a.next_id;
	printf("durable appends, 16 async to random streams, %s client ids: %.0f/s%s\n",
	       ids ? "with" : "without", (double)a.events / secs, a.failed ? " (SOME FAILED)" : "");
	pthread_mutex_destroy(&a.mu);
	pthread_cond_destroy(&a.idle);
	free(slots);
}

static int measure(const struct opts *o)
{
	struct ml_log_options lo;
	ml_log_options_init(&lo);
	lo.dir = o->dir;
	lo.fsync = ML_FSYNC_ALWAYS;
	sync(); /* the build's writeback done: appends are not measured behind it */
	uint64_t anon0 = status_kb("RssAnon"), t0 = ml_clock_ns();
	struct ml_log *log = ml_log_open(&lo);
	uint64_t open_ns = ml_clock_ns() - t0;
	if (log == NULL)
		return cli_diag("bench");
	uint64_t anon1 = status_kb("RssAnon");
	struct ml_log_stats st;
	ml_log_stats(log, &st);
	printf("open: %.3f s for %" PRIu64 " events over %" PRIu64 " streams in %" PRIu64
	       " segments (%.2f GB of segments, %.2f GB of index files)\n",
	       (double)open_ns / 1e9, st.head, st.streams, st.segments,
	       (double)du_bytes(o->dir, "*.seg") / 1e9,
	       (double)(du_bytes(o->dir, "*.idx") + du_bytes(o->dir, "*.run")) / 1e9);
	printf("anonymous memory (RssAnon): %.1f MiB after the open (%.1f MiB before it; the "
	       "index holds %.1f MiB)\n",
	       (double)anon1 / 1048576.0, (double)anon0 / 1048576.0,
	       (double)st.index_bytes / 1048576.0);
	fflush(stdout);
	lookups(log, o);
	printf("anonymous memory (RssAnon): %.1f MiB after the reads\n",
	       (double)status_kb("RssAnon") / 1048576.0);
	fflush(stdout);
	if (o->ids)
		old_ids(log, o);
	appends(log, o, 0);
	appends(log, o, 1);
	printf("anonymous memory (RssAnon): %.1f MiB at the end\n",
	       (double)status_kb("RssAnon") / 1048576.0);
	ml_log_close(log);
	return CLI_OK;
}

/* Runs the measures in a fresh process: this one, exec'd again with --measure. */
static int measure_fresh(const struct opts *o)
{
	char events[32], streams[32], size[32], seconds[32];
	snprintf(events, sizeof(events), "%" PRIu64, o->events);
	snprintf(streams, sizeof(streams), "%" PRIu64, o->streams);
	snprintf(size, sizeof(size), "%" PRIu64, o->size);
	snprintf(seconds, sizeof(seconds), "%g", o->seconds);
	char *argv[20] = {"moonlog",	  "bench",    "open",	   "--measure", "--dir",
			  (char *)o->dir, "--events", events,	   "--streams", streams,
			  "--size",	  size,	      "--seconds", seconds};
	int n = 14;
	if (!o->ids)
		argv[n++] = "--no-ids";
	if (o->keep)
		argv[n++] = "--keep";
	argv[n] = NULL;
	fflush(stdout);
	execv("/proc/self/exe", argv);
	return cli_fail("bench", CLI_REFUSED, "cannot run the measures in a new process: %s",
			strerror(errno));
}

int cli_bench_open(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, 0, 'd'},
	    {"events", required_argument, 0, 'e'},
	    {"streams", required_argument, 0, 's'},
	    {"size", required_argument, 0, 'z'},
	    {"seconds", required_argument, 0, 't'},
	    {"no-ids", no_argument, 0, 'n'},
	    {"reuse", no_argument, 0, 'r'},
	    {"keep", no_argument, 0, 'k'},
	    {"measure", no_argument, 0, 'm'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	struct opts o = {"./moonlog-bench", 10000000, 100000, 200, 3, 1, 0, 0, 0};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o.dir = optarg;
			break;
		case 'e':
			if (cli_uint("bench", "--events", optarg, &o.events) != 0 || o.events == 0)
				return CLI_USAGE;
			break;
		case 's':
			if (cli_uint("bench", "--streams", optarg, &o.streams) != 0 ||
			    o.streams == 0)
				return CLI_USAGE;
			break;
		case 'z':
			if (cli_uint("bench", "--size", optarg, &o.size) != 0 || o.size < 100 ||
			    o.size > 400)
				return cli_fail("bench", CLI_USAGE,
						"--size must be 100 to 400 bytes");
			break;
		case 't':
			o.seconds = atof(optarg);
			break;
		case 'n':
			o.ids = 0;
			break;
		case 'r':
			o.reuse = 1;
			break;
		case 'k':
			o.keep = 1;
			break;
		case 'm':
			o.measure = o.reuse = 1;
			break;
		case 'h':
			fputs(open_help, stdout);
			return CLI_OK;
		default:
			return cli_fail("bench", CLI_USAGE, "see moonlog bench open --help");
		}
	}
	if (o.seconds <= 0)
		return cli_fail("bench", CLI_USAGE, "--seconds must be a positive number");
	if (o.measure) {
		int rc = measure(&o);
		if (!o.keep)
			rm_log(o.dir);
		return rc;
	}
	char mk[4300];
	snprintf(mk, sizeof(mk), "mkdir -p '%s'", o.dir);
	if (system(mk) != 0)
		return cli_fail("bench", CLI_REFUSED, "cannot create %s", o.dir);
	if (!o.reuse && build(&o) != CLI_OK)
		return CLI_REFUSED;
	return measure_fresh(&o); /* which removes the log after, unless --keep */
}
