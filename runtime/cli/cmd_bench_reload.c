/*
 * cmd_bench_reload.c - `moonlog bench reload`: what a hot reload costs.
 *
 * In one process and one thread, as the server's loop would: a producer
 * appends at a steady rate (50,000 events/s by default) to a fresh log
 * (--fsync never: the disk is not what is measured), the host is stepped
 * between appends, and a handler is rewritten --reloads times. For each
 * rewrite it measures
 *   - the pause: how long the reload held the loop (reading, compiling and
 *     validating the new version in a fresh lua_State, and the swap), during
 *     which no event is handled; and the swap alone;
 *   - save to live: from before the file is written until the new version has
 *     handled its first event. The server's watcher adds its quiet period
 *     (30 ms after the file is closed or renamed into place) in front of it;
 *     here the reload is asked for at once, so the figure is the host's part.
 * Then a projection with reload = "rebuild" over a log of --events events: the
 * time from its rewrite until the new version, replayed beside the old one in
 * slices while the producer goes on, swaps in at the head. Last, a dry run of
 * another version of that projection over the same log (moonlog reload
 * --dry-run): the time until its report is ready, and meanwhile how long each
 * step of the host held the loop (what a query arriving then waits at most)
 * and how long a query of the live version took.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/host.h>

#include "cli/cli.h"

static const char help[] =
    "usage: moonlog bench reload [--rate 50000] [--reloads 50] [--events 1000000] [--dir DIR]\n"
    "\n"
    "Rewrites a handler --reloads times under a steady --rate of appends and prints the\n"
    "pause each reload holds the loop (p50/p99/max) and the time from the save to the new\n"
    "version's first event; then the time a rebuild projection takes to swap over a log\n"
    "of --events events (0 = skip), and a dry run of another version of it over the same\n"
    "log: its time, and meanwhile each step's hold of the loop and a live query's time.\n"
    "DIR is a scratch folder (default ./moonlog-bench-reload; removed after).\n";

struct bench {
	struct ml_log *log;
	struct ml_host *h;
	char dir[1024], scripts[1100];
	uint64_t rate, t0, sent;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(uint64_t *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return (double)v[i] / 1e6;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		return ml_diag_set(ML_ERR_IO, "cannot write %s", path);
	return 0;
}

/* Appends `n` 30-byte events in batches. */
static int append_n(struct bench *b, uint64_t n)
{
	enum { BATCH = 1000 };
	static struct ml_event_in evs[BATCH];
	static const char data[] = "\x81\xa1n\xcd\x30\x39";
	while (n > 0) {
		size_t k = n < BATCH ? (size_t)n : BATCH;
		for (size_t i = 0; i < k; i++)
			evs[i] = (struct ml_event_in){.stream = "ping-1",
						      .stream_len = 6,
						      .type = "Ping",
						      .type_len = 4,
						      .data = data,
						      .data_len = sizeof(data) - 1};
		struct ml_append req = {.events = evs, .n_events = k};
		if (ml_log_append(b->log, &req) != 0)
			return -1;
		n -= k;
	}
	return 0;
}

/* The producer's due events, then one step of the host. */
static int turn(struct bench *b)
{
	uint64_t due = (ml_clock_ns() - b->t0) * b->rate / 1000000000u;
	if (due > b->sent) {
		if (append_n(b, due - b->sent) != 0)
			return -1;
		b->sent = due;
	}
	ml_host_step(b->h);
	return 0;
}

static void handler_src(char *out, size_t n, int version)
{
	snprintf(out, n,
		 "local ml = require 'moonlog'\n"
		 "local seen = 0\n"
		 "return ml.handler { name = 'echo', from = 'ping-*',\n"
		 "  on = { Ping = function(e) seen = seen + %d end } }\n",
		 version);
}

static int bench_handler(struct bench *b, int reloads)
{
	char path[1200], src[512];
	snprintf(path, sizeof(path), "%s/echo.lua", b->scripts);
	uint64_t *pause = ml_xcalloc((size_t)reloads, sizeof(uint64_t));
	uint64_t *swap = ml_xcalloc((size_t)reloads, sizeof(uint64_t));
	uint64_t *live = ml_xcalloc((size_t)reloads, sizeof(uint64_t));
	for (int i = 0; i < reloads; i++) {
		uint64_t until = ml_clock_ns() + 100000000; /* 100 ms of steady load between */
		while (ml_clock_ns() < until)
			if (turn(b) != 0)
				return -1;
		handler_src(src, sizeof(src), i + 2);
		uint64_t saved = ml_clock_ns();
		if (write_file(path, src) != 0)
			return -1;
		uint64_t t = ml_clock_ns();
		if (ml_host_reload(b->h, "echo", 4, NULL) != 0)
			return -1;
		pause[i] = ml_clock_ns() - t;
		swap[i] = ml_host_last_swap_ns(b->h);
		struct ml_script *s;
		do { /* until the new version has handled an event */
			if (turn(b) != 0)
				return -1;
			s = ml_host_script(b->h, "echo", 4);
		} while (s == NULL || ml_script_position(s) == 0);
		live[i] = ml_clock_ns() - saved;
	}
	printf("reload: handler swapped %d times under %" PRIu64 " events/s\n", reloads, b->rate);
	printf("  pause (load + validate + swap, the loop held): p50 %.3f ms  p99 %.3f ms  max "
	       "%.3f ms\n",
	       pct_ms(pause, (size_t)reloads, 0.5), pct_ms(pause, (size_t)reloads, 0.99),
	       pct_ms(pause, (size_t)reloads, 1.0));
	printf("  of which the swap: p50 %.3f ms  max %.3f ms\n",
	       pct_ms(swap, (size_t)reloads, 0.5), pct_ms(swap, (size_t)reloads, 1.0));
	printf(
	    "  save to first event: p50 %.3f ms  p99 %.3f ms  max %.3f ms (+ the watcher's 30 ms "
	    "quiet period when served)\n",
	    pct_ms(live, (size_t)reloads, 0.5), pct_ms(live, (size_t)reloads, 0.99),
	    pct_ms(live, (size_t)reloads, 1.0));
	free(pause);
	free(swap);
	free(live);
	return 0;
}

static const char tally[] = "local ml = require 'moonlog'\n"
			    "return ml.projection { name = 'tally', from = 'ping-*',\n"
			    "  init = function() return { n = 0 } end,\n"
			    "  on = { Ping = function(s) s.n = s.n + %d end },\n"
			    "  queries = { n = function(s) return s.n end } }\n";

static int bench_rebuild(struct bench *b, uint64_t events)
{
	char path[1200], src[512];
	snprintf(path, sizeof(path), "%s/tally.lua", b->scripts);
	uint64_t head = ml_log_head(b->log);
	if (events > head && append_n(b, events - head) != 0)
		return -1;
	snprintf(src, sizeof(src), tally, 1);
	if (write_file(path, src) != 0 || ml_host_reload(b->h, "tally.lua", 9, NULL) != 0)
		return -1;
	ml_host_drain(b->h);
	struct ml_script *old = ml_host_script(b->h, "tally", 5);
	snprintf(src, sizeof(src), tally, 2);
	b->t0 = ml_clock_ns(), b->sent = 0; /* the producer goes on from here */
	uint64_t t = ml_clock_ns();
	if (write_file(path, src) != 0 || ml_host_reload(b->h, "tally", 5, NULL) != 0)
		return -1;
	while (ml_host_script(b->h, "tally", 5) == old)
		if (turn(b) != 0)
			return -1;
	double secs = (double)(ml_clock_ns() - t) / 1e9;
	uint64_t n = ml_log_head(b->log);
	printf("reload: a rebuild projection over %" PRIu64 " events swapped in %.2f s (%.2f M "
	       "events/s, %" PRIu64 " appended meanwhile)\n",
	       n, secs, (double)n / secs / 1e6, b->sent);
	return 0;
}

/* Whether the answer of a dry run says it is still running. */
static int still_running(const struct ml_buf *out)
{
	struct ml_buf j = {0};
	ml_msgpack_to_json(out->data, out->len, &j);
	ml_buf_add(&j, "", 1);
	int yes = strstr(j.data, "\"state\":\"running\"") != NULL;
	ml_buf_free(&j);
	return yes;
}

struct samples {
	uint64_t *v;
	size_t n, cap;
};

static void sample(struct samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 4096;
		s->v = ml_xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = ns;
}

static int bench_dry_run(struct bench *b)
{
	char draft[1200], path[1300], src[512];
	snprintf(draft, sizeof(draft), "%s/draft", b->dir);
	snprintf(path, sizeof(path), "%s/tally.lua", draft);
	snprintf(src, sizeof(src), tally, 3);
	if (mkdir(draft, 0700) != 0 || write_file(path, src) != 0)
		return ml_diag_set(ML_ERR_IO, "cannot write %s", path);
	struct ml_buf opts = {0}, out = {0}, answer = {0};
	ml_msgpack_put_map(&opts, 1);
	ml_msgpack_put_cstr(&opts, "file");
	ml_msgpack_put_cstr(&opts, path);
	struct samples steps = {0}, queries = {0};
	b->t0 = ml_clock_ns(), b->sent = 0;
	uint64_t t = ml_clock_ns(), head = ml_log_head(b->log);
	int rc = ml_host_dry_run(b->h, "tally", 5, opts.data, opts.len, &out);
	for (uint64_t i = 0; rc == 0 && still_running(&out); i++) {
		uint64_t due = (ml_clock_ns() - b->t0) * b->rate / 1000000000u;
		if (due > b->sent && (rc = append_n(b, due - b->sent)) == 0)
			b->sent = due;
		uint64_t s0 = ml_clock_ns();
		ml_host_step(b->h);
		uint64_t q0 = ml_clock_ns();
		struct ml_script *live = ml_host_script(b->h, "tally", 5);
		answer.len = 0;
		if (live == NULL || ml_script_query(live, "n", NULL, 0, &answer) != 0)
			rc = -1;
		sample(&steps, q0 - s0);
		sample(&queries, ml_clock_ns() - q0);
		out.len = 0;
		if (rc == 0 && (i & 63) == 63)
			rc = ml_host_dry_run(b->h, "tally", 5, opts.data, opts.len, &out);
		else if (rc == 0)
			ml_buf_add(&out, "\x81\xa5state\xa7running", 15);
	}
	double secs = (double)(ml_clock_ns() - t) / 1e9;
	if (rc == 0 && steps.n)
		printf("reload: a dry run of another version over %" PRIu64
		       " events done in %.2f s "
		       "(%.2f M events/s, %" PRIu64 " appended meanwhile)\n"
		       "  meanwhile each step held the loop p50 %.3f ms  p99 %.3f ms  max %.3f ms; "
		       "a query of the live version p99 %.3f ms\n",
		       head, secs, (double)head / secs / 1e6, b->sent,
		       pct_ms(steps.v, steps.n, 0.5), pct_ms(steps.v, steps.n, 0.99),
		       pct_ms(steps.v, steps.n, 1.0), pct_ms(queries.v, queries.n, 0.99));
	free(steps.v);
	free(queries.v);
	ml_buf_free(&opts);
	ml_buf_free(&out);
	ml_buf_free(&answer);
	return rc;
}

static int run(struct bench *b, int reloads, uint64_t events)
{
	struct ml_log_options lo;
	ml_log_options_init(&lo);
	lo.dir = b->dir, lo.fsync = ML_FSYNC_NEVER;
	if ((b->log = ml_log_open(&lo)) == NULL)
		return -1;
	char path[1200], src[512];
	snprintf(path, sizeof(path), "%s/echo.lua", b->scripts);
	handler_src(src, sizeof(src), 1);
	if (write_file(path, src) != 0)
		return -1;
	struct ml_host_options ho;
	ml_host_options_init(&ho);
	ho.scripts_dir = b->scripts, ho.data_dir = b->dir, ho.quiet = 1;
	if ((b->h = ml_host_open(b->log, &ho)) == NULL)
		return -1;
	b->t0 = ml_clock_ns();
	int rc = bench_handler(b, reloads);
	if (rc == 0 && events)
		rc = bench_rebuild(b, events);
	if (rc == 0 && events)
		rc = bench_dry_run(b);
	ml_host_close(b->h);
	ml_log_close(b->log);
	return rc;
}

int cli_bench_reload(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"rate", required_argument, 0, 'r'},   {"reloads", required_argument, 0, 'n'},
	    {"events", required_argument, 0, 'e'}, {"dir", required_argument, 0, 'd'},
	    {"help", no_argument, 0, 'h'},	   {0, 0, 0, 0}};
	struct bench b = {.rate = 50000};
	int reloads = 50, c;
	uint64_t events = 1000000;
	const char *dir = "./moonlog-bench-reload";
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'r')
			b.rate = strtoull(optarg, NULL, 10);
		else if (c == 'n')
			reloads = atoi(optarg);
		else if (c == 'e')
			events = strtoull(optarg, NULL, 10);
		else if (c == 'd')
			dir = optarg;
		else
			return fputs(help, c == 'h' ? stdout : stderr),
			       c == 'h' ? CLI_OK : CLI_USAGE;
	}
	if (reloads < 1 || b.rate == 0)
		return cli_fail("bench", CLI_USAGE, "--reloads and --rate must be positive");
	snprintf(b.dir, sizeof(b.dir), "%s", dir);
	snprintf(b.scripts, sizeof(b.scripts), "%s/src", dir);
	char cmd[2200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", b.dir, b.scripts);
	if (system(cmd) != 0)
		return cli_fail("bench", CLI_REFUSED, "cannot make %s", b.scripts);
	int rc = run(&b, reloads, events);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b.dir);
	if (system(cmd) != 0)
		rc = -1;
	return rc == 0 ? CLI_OK : cli_diag("bench");
}
