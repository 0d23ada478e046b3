/*
 * metrics.c - what GET /metrics adds to the server's figures (stats.c) so
 * that Prometheus and its users find what they expect of any service: how
 * long appends, commands and queries take (histograms), the HTTP answers by
 * status code, the process_* figures every Prometheus client library exports,
 * and a build-info metric. Names follow Prometheus' conventions (base units,
 * seconds and bytes; _total on counters), which `promtool check metrics`
 * checks in the suite.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <lua.h>

#include "net/net_internal.h"

/* Upper bounds of the buckets, in microseconds: 100 us to 10 s. */
static const uint64_t bounds_us[ML_HIST_BUCKETS] = {
    100,   250,	   500,	   1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

void ml_hist_observe(struct ml_hist *h, uint64_t since_ns)
{
	ml_hist_add(h, ml_clock_ns() - since_ns);
}

void ml_hist_add(struct ml_hist *h, uint64_t ns)
{
	h->count++;
	h->sum_ns += ns;
	/* The first bucket whose bound holds it, by halving (16 bounds: 4 steps); none past
	 * the last, which only +Inf holds. ns <= bound * 1000 is us <= bound, us rounded up. */
	uint64_t us = (ns + 999) / 1000;
	size_t i = 0;
	for (size_t step = ML_HIST_BUCKETS / 2; step > 0; step /= 2)
		if (us > bounds_us[i + step - 1])
			i += step;
	if (i < ML_HIST_BUCKETS && us <= bounds_us[i])
		h->bucket[i]++; /* not cumulative here: summed as it is written */
}

static void put_hist(struct ml_buf *b, const char *name, const char *help, const struct ml_hist *h)
{
	ml_buf_addf(b, "# HELP moonlog_%s_seconds %s\n# TYPE moonlog_%s_seconds histogram\n", name,
		    help, name);
	uint64_t sum = 0;
	for (int i = 0; i < ML_HIST_BUCKETS; i++) {
		sum += h->bucket[i];
		ml_buf_addf(b, "moonlog_%s_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", name,
			    (double)bounds_us[i] / 1e6, sum);
	}
	ml_buf_addf(b,
		    "moonlog_%s_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
		    "moonlog_%s_seconds_sum %.6f\nmoonlog_%s_seconds_count %" PRIu64 "\n",
		    name, h->count, name, (double)h->sum_ns / 1e9, name, h->count);
}

void ml_net_http_answered(struct ml_server *s, int code)
{
	if (code >= 400)
		s->errors++;
	if (code < 100 || code > 599)
		code = 0;
	s->http_answers[code]++;
}

static void put_http(struct ml_server *s, struct ml_buf *b)
{
	ml_buf_addf(b, "# HELP moonlog_http_responses_total HTTP answers sent, by status code\n"
		       "# TYPE moonlog_http_responses_total counter\n");
	for (int code = 0; code < 600; code++)
		if (s->http_answers[code])
			ml_buf_addf(b, "moonlog_http_responses_total{code=\"%d\"} %" PRIu64 "\n",
				    code, s->http_answers[code]);
}

/* From /proc/self/stat: CPU seconds (user + system) and resident bytes. */
static void proc_stat(double *cpu, uint64_t *rss)
{
	*cpu = 0, *rss = 0;
	FILE *f = fopen("/proc/self/stat", "r");
	if (f == NULL)
		return;
	char line[1024];
	size_t n = fread(line, 1, sizeof(line) - 1, f);
	fclose(f);
	line[n] = 0;
	char *p = strrchr(line, ')'); /* the command's name may hold spaces */
	unsigned long utime = 0, stime = 0;
	long rss_pages = 0;
	/* after ')': state(3) ... utime(14) stime(15) ... rss(24) */
	if (p && sscanf(p + 2,
			"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d "
			"%*d %*u %*u %ld",
			&utime, &stime, &rss_pages) == 3) {
		*cpu = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
		*rss = (uint64_t)rss_pages * (uint64_t)sysconf(_SC_PAGESIZE);
	}
}

/* The descriptors open: the entries of /proc/self/fd (less the one reading it). */
static uint64_t open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return 0;
	uint64_t n = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n ? n - 1 : 0;
}

static void put_process(struct ml_server *s, struct ml_buf *b)
{
	double cpu;
	uint64_t rss;
	proc_stat(&cpu, &rss);
	ml_buf_addf(b,
		    "# HELP process_cpu_seconds_total user and system CPU time\n"
		    "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n"
		    "# HELP process_resident_memory_bytes resident memory\n"
		    "# TYPE process_resident_memory_bytes gauge\n"
		    "process_resident_memory_bytes %" PRIu64 "\n"
		    "# HELP process_open_fds open file descriptors\n"
		    "# TYPE process_open_fds gauge\nprocess_open_fds %" PRIu64 "\n"
		    "# HELP process_max_fds the descriptor limit\n"
		    "# TYPE process_max_fds gauge\nprocess_max_fds %" PRIu64 "\n"
		    "# HELP process_start_time_seconds when the process started, since the epoch\n"
		    "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n"
		    "# HELP moonlog_uptime_seconds seconds since the server started\n"
		    "# TYPE moonlog_uptime_seconds gauge\nmoonlog_uptime_seconds %.3f\n",
		    cpu, rss, open_fds(), s->fd_limit, (double)s->started_ms / 1e3,
		    (double)((uint64_t)ml_time_ms() - s->started_ms) / 1e3);
}

static void put_build(struct ml_buf *b)
{
	ml_buf_addf(b,
		    "# HELP moonlog_build_info the version of moonlog and of what it runs with\n"
		    "# TYPE moonlog_build_info gauge\n"
		    "moonlog_build_info{version=\"%s\",lua=\"%s\",libevent=\"%s\"} 1\n",
		    ML_VERSION, LUA_RELEASE, event_get_version());
}

void ml_metrics_more(struct ml_server *s, struct ml_buf *b)
{
	put_hist(b, "append", "time from a request's append to its answer (durable, or refused)",
		 &s->hist_append);
	put_hist(b, "command", "time from a command to its answer (decided and appended)",
		 &s->hist_command);
	put_hist(b, "query", "time a projection's query takes", &s->hist_query);
	put_http(s, b);
	put_process(s, b);
	put_build(b);
}
