/*
 * bench_replay.c - `moonlog bench replay`: how fast a script folds the log.
 *
 * Builds (or reuses) a log of N events with 100 bytes of msgpack data each,
 * over 10,000 streams and ten event types, then replays it through two
 * projections: (a) one counting one type out of ten, where the C filter
 * rejects nine events in ten by comparing bytes, and (b) one summing
 * data.amount of every event by stream, where every event reaches Lua. Beside
 * them, in the same run, plain lua5.4 decodes the same events with the
 * lua-messagepack library and folds them the same way: the baseline.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <moonlog/script.h>

#include "cli/cli.h"

static const char help[] =
    "usage: moonlog bench replay [--dir DIR] [--events N] [--baseline N] [--keep]\n"
    "\n"
    "Folds a log of N events (100-byte data, 10,000 streams, 10 types) through (a) a\n"
    "projection counting one type of ten and (b) one summing data.amount by stream, and\n"
    "prints events/s for each beside plain lua5.4 + lua-messagepack doing the same on\n"
    "the same events. Host memory is the process's peak resident memory during the\n"
    "replay beyond what it held before, less the script's own Lua memory.\n"
    "\n"
    "  --dir DIR       where to build the log (default ./moonlog-bench-replay; removed\n"
    "                  after unless --keep; a kept log of the same size is reused)\n"
    "  --events N      events in the log (default 10000000)\n"
    "  --baseline N    events the plain-Lua baseline decodes (default 1000000: it is slow)\n"
    "  --keep          keep the log and the scripts\n";

#define STREAMS	 10000
#define DATA_LEN 100

static const char *const types[10] = {"Opened", "Deposited", "Withdrawn", "Renamed", "Frozen",
				      "Thawed", "Noted",     "Audited",	  "Flagged", "Closed"};

static const char count_lua[] =
    "local ml = require 'moonlog'\n"
    "return ml.projection { name = 'count', from = '*', init = { n = 0 },\n"
    "  on = { Deposited = function(s) s.n = s.n + 1 end } }\n";

static const char sum_lua[] =
    "local ml = require 'moonlog'\n"
    "return ml.projection { name = 'sum', from = '*', init = {},\n"
    "  on = { ['*'] = function(s, e) local k = e.stream; s[k] = (s[k] or 0) + e.data.amount "
    "end } }\n";

static const char baseline_lua[] =
    "package.path = package.path .. ';/usr/share/lua/5.3/?.lua;/usr/share/lua/5.4/?.lua'\n"
    "local mp = require 'MessagePack'\n"
    "local f = assert(io.open(arg[1], 'rb')) local blob = f:read('a') f:close()\n"
    "local t0, n, count = os.clock(), 0, 0\n"
    "for _, e in mp.unpacker(blob) do n = n + 1 if e.type == 'Deposited' then count = count + "
    "1 end end\n"
    "print('a', n / (os.clock() - t0), count)\n"
    "local sums = {} t0, n = os.clock(), 0\n"
    "for _, e in mp.unpacker(blob) do n = n + 1 local k = e.stream sums[k] = (sums[k] or 0) + "
    "e.data.amount end\n"
    "print('b', n / (os.clock() - t0))\n";

/* The 100-byte data of event i: {"amount": i % 1000, "note": "xxx..."}. */
static void make_data(uint8_t out[DATA_LEN], uint64_t i)
{
	static const char head[] = "\x82\xa6"
				   "amount"
				   "\xcd";
	size_t h = sizeof(head) - 1;
	memcpy(out, head, h);
	out[h] = (uint8_t)((i % 1000) >> 8);
	out[h + 1] = (uint8_t)(i % 1000);
	memcpy(out + h + 2, "\xa4note\xd9", 6);
	size_t str = DATA_LEN - h - 2 - 6 - 1;
	out[h + 8] = (uint8_t)str;
	memset(out + h + 9, 'x', str);
}

static int build(struct ml_log *log, uint64_t events)
{
	enum { BATCH = 1000 };
	static struct ml_event_in in[BATCH];
	static uint8_t data[BATCH][DATA_LEN];
	static char streams[BATCH][16];
	uint64_t rnd = 88172645463325252ull;
	fprintf(stderr, "building a log of %" PRIu64 " events...\n", events);
	for (uint64_t done = 0; done < events;) {
		size_t n = events - done < BATCH ? (size_t)(events - done) : BATCH;
		for (size_t j = 0; j < n; j++) {
			uint64_t i = done + j;
			rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
			int sl = snprintf(streams[j], sizeof(streams[j]), "acct-%u",
					  (unsigned)(rnd % STREAMS));
			make_data(data[j], i);
			const char *t = types[i % 10];
			in[j] =
			    (struct ml_event_in){streams[j], (size_t)sl, t,	   strlen(t), NULL,
						 0,	     data[j],	 DATA_LEN, NULL,      0};
		}
		struct ml_append req = {.events = in, .n_events = n};
		if (ml_log_append(log, &req) != 0)
			return -1;
		done += n;
	}
	return 0;
}

/* Peak resident memory since the last reset, in bytes; resets it when asked. */
static uint64_t rss_peak(int reset)
{
	if (reset) {
		FILE *f = fopen("/proc/self/clear_refs", "w");
		if (f)
			fputs("5", f), fclose(f);
	}
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kb = 0;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = strtoull(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kb * 1024;
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int feed(const struct ml_event *e, void *arg)
{
	return ml_script_feed(arg, e);
}

struct result {
	double rate, cpu_rate; /* events per second of wall time, of the process's CPU time */
	uint64_t lua_mem, host_mem;
};

static int run(struct ml_log *log, const char *dir, const char *name, const char *src,
	       struct result *r)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.lua", dir, name);
	FILE *f = fopen(path, "w");
	if (f == NULL || fputs(src, f) < 0 || fclose(f) != 0)
		return cli_fail("bench", CLI_REFUSED, "cannot write %s", path);
	struct ml_script *s = ml_script_load(path, NULL);
	if (s == NULL)
		return cli_diag("bench");
	uint64_t before = rss_peak(1);
	uint64_t t0 = ml_clock_ns(), c0 = cpu_ns();
	int64_t n = ml_log_scan(log, 1, 0, feed, s);
	uint64_t ns = ml_clock_ns() - t0, cpu = cpu_ns() - c0;
	struct ml_script_stats st;
	ml_script_stats(s, &st);
	uint64_t peak = rss_peak(0);
	ml_script_free(s);
	if (n < 0)
		return cli_diag("bench");
	r->rate = (double)n / ((double)ns / 1e9);
	r->cpu_rate = (double)n / ((double)cpu / 1e9);
	r->lua_mem = st.memory_peak;
	r->host_mem = peak > before + st.memory_peak ? peak - before - st.memory_peak : 0;
	return 0;
}

/* Writes the first n events as msgpack maps {stream, type, data} for the baseline. */
static int export_one(const struct ml_event *e, void *arg)
{
	FILE *f = arg;
	fputs("\x83\xa6stream", f);
	fputc(0xa0 | e->stream_len, f); /* names here are shorter than 32 bytes */
	fwrite(e->stream, 1, e->stream_len, f);
	fputs("\xa4type", f);
	fputc(0xa0 | e->type_len, f);
	fwrite(e->type, 1, e->type_len, f);
	fputs("\xa4"
	      "data",
	      f);
	fwrite(e->data, 1, e->data_len, f);
	return 0;
}

static int baseline(struct ml_log *log, const char *dir, uint64_t n, double rate[2])
{
	char mp[4096], lua[4096], cmd[8400], line[256];
	snprintf(mp, sizeof(mp), "%s/baseline.mp", dir);
	snprintf(lua, sizeof(lua), "%s/baseline.lua", dir);
	FILE *f = fopen(mp, "wb");
	FILE *g = fopen(lua, "w");
	if (f == NULL || g == NULL)
		return cli_fail("bench", CLI_REFUSED, "cannot write the baseline files in %s", dir);
	fputs(baseline_lua, g);
	fclose(g);
	int64_t got = ml_log_scan(log, 1, n, export_one, f);
	fclose(f);
	if (got < 0)
		return cli_diag("bench");
	snprintf(cmd, sizeof(cmd), "lua5.4 '%s' '%s'", lua, mp);
	FILE *p = popen(cmd, "r");
	rate[0] = rate[1] = 0;
	while (p && fgets(line, sizeof(line), p))
		if ((line[0] == 'a' || line[0] == 'b') && line[1] == '\t')
			rate[line[0] - 'a'] = strtod(line + 2, NULL);
	if (p == NULL || pclose(p) != 0 || rate[0] == 0 || rate[1] == 0)
		return cli_fail("bench", CLI_REFUSED,
				"the plain-Lua baseline failed: is lua-messagepack installed? (apt "
				"install lua-messagepack)");
	return 0;
}

static void report(uint64_t events, const struct result r[2], const double base[2], uint64_t base_n)
{
	static const char *names[2] = {"(a) count one type of ten",
				       "(b) sum data.amount by stream"};
	printf("moonlog bench replay: %" PRIu64 " events (100-byte data, %d streams, 10 types)\n\n",
	       events, STREAMS);
	printf("%-30s %10s %10s %13s %11s %12s\n", "projection", "events/s", "(per CPU s)",
	       "plain lua5.4", "Lua memory", "host memory");
	for (int i = 0; i < 2; i++)
		printf("%-30s %8.2f M %8.2f M %8.2f M %4.1fx %7.1f MiB %8.1f MiB\n", names[i],
		       r[i].rate / 1e6, r[i].cpu_rate / 1e6, base[i] / 1e6, r[i].rate / base[i],
		       (double)r[i].lua_mem / 1048576, (double)r[i].host_mem / 1048576);
	printf("\nplain lua5.4: lua-messagepack decoding the first %" PRIu64
	       " events, exported as {stream, type, data} maps (rate per CPU second)\n",
	       base_n);
	printf("targets: (a) >= 20 M/s: %s; (b) >= 2 M/s and >= 3x plain Lua: %s; host memory "
	       "< 64 MiB: %s\n",
	       r[0].rate >= 20e6 ? "met" : "MISSED",
	       r[1].rate >= 2e6 && r[1].rate >= 3 * base[1] ? "met" : "MISSED",
	       r[0].host_mem < (64u << 20) && r[1].host_mem < (64u << 20) ? "met" : "MISSED");
}

int bench_replay(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, 0, 'd'},	     {"events", required_argument, 0, 'e'},
	    {"baseline", required_argument, 0, 'b'}, {"keep", no_argument, 0, 'k'},
	    {"help", no_argument, 0, 'h'},	     {0, 0, 0, 0},
	};
	const char *dir = "./moonlog-bench-replay";
	uint64_t events = 10000000, base_n = 1000000;
	int keep = 0, c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'd')
			dir = optarg;
		else if (c == 'e' && cli_uint("bench", "--events", optarg, &events) != 0)
			return CLI_USAGE;
		else if (c == 'b' && cli_uint("bench", "--baseline", optarg, &base_n) != 0)
			return CLI_USAGE;
		else if (c == 'k')
			keep = 1;
		else if (c == 'h')
			return fputs(help, stdout), CLI_OK;
		else if (c == '?')
			return cli_fail("bench", CLI_USAGE, "see moonlog bench replay --help");
	}
	if (events == 0)
		return cli_fail("bench", CLI_USAGE, "--events must be at least 1");
	if (base_n > events)
		base_n = events;
	mkdir(dir, 0755);
	struct ml_log *log = cli_open_log("bench", dir, 0, ML_FSYNC_NEVER);
	if (log == NULL)
		return cli_status();
	int rc = 0;
	if (ml_log_head(log) != 0 && ml_log_head(log) != events)
		rc =
		    cli_fail("bench", CLI_USAGE,
			     "%s holds a log of %" PRIu64 " events; remove it or use another --dir",
			     dir, ml_log_head(log));
	else if (ml_log_head(log) == 0 && build(log, events) != 0)
		rc = cli_diag("bench");
	struct result r[2];
	double base[2];
	if (rc == 0)
		rc = run(log, dir, "count", count_lua, &r[0]);
	if (rc == 0)
		rc = run(log, dir, "sum", sum_lua, &r[1]);
	if (rc == 0)
		rc = baseline(log, dir, base_n, base);
	if (rc == 0)
		report(events, r, base, base_n);
	ml_log_close(log);
	if (!keep) {
		char cmd[4200];
		snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "moonlog bench: could not remove %s\n", dir);
	}
	return rc;
}
