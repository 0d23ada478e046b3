/*
 * cmd_replay.c - `moonlog replay`: fold the log through one script and print
 * its final state. The event-sourcing test of truth: delete every derived
 * state and rebuild it from the log.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <moonlog/codec.h>
#include <moonlog/script.h>

#include "cli/cli.h"

static const char help[] =
    "usage: moonlog replay [--data DIR] SCRIPT [options]\n"
    "\n"
    "Loads SCRIPT (a reducer, decider, projection or handler), feeds it every event of\n"
    "the log in order, and prints its final state as JSON. Events the script does not\n"
    "subscribe to are skipped without reaching Lua. A handler's state is null; it is run\n"
    "as a dry run (what it emits is counted, not appended). The upcasters.lua beside\n"
    "SCRIPT, if there is one, upcasts old events for it as the server does.\n"
    "\n"
    "  --data DIR          the data folder (default ./moonlog-data)\n"
    "  --until POSITION    stop after the event at POSITION (default: the last)\n"
    "  --lua               print the state as a readable Lua table instead of JSON\n"
    "  --stats             report events, events/s and Lua memory on stderr\n"
    "  --snapshot          start from DIR/scripts/NAME.snap when its code hash matches,\n"
    "                      and save the snapshot at the end\n"
    "  --memory MIB        the script's memory limit (default 256)\n"
    "  --instructions N    the instruction budget per event (default 100000000)\n"
    "  --time-limit MS     the time one event may take (CPU time; default 1000)\n"
    "\n"
    "On a terminal, a line on stderr says how far the replay is.\n";

struct replay {
	struct ml_script *script;
	uint64_t emitted;
	int progress;		 /* stderr is a terminal: a progress line */
	uint64_t first, last;	 /* the positions the replay goes over */
	uint64_t seen, shown_ns; /* events fed; when the line was last redrawn */
	struct ml_log *log;	 /* when it has deletions or retention: removed events are
				    passed over (docs/log.md), as the server's scripts do */
	int64_t now;
};

/* "moonlog replay: 1234567 of 10000000 events (12%)", from the 65,536th event on,
 * redrawn at most 4 times a second. */
static void show_progress(struct replay *r, uint64_t position, int done)
{
	uint64_t now = ml_clock_ns();
	if (!done && now - r->shown_ns < 250000000)
		return;
	r->shown_ns = now;
	uint64_t total = r->last >= r->first ? r->last - r->first + 1 : 0;
	uint64_t at = position >= r->first ? position - r->first + 1 : 0;
	if (done) {
		fputs("\r\033[K", stderr); /* the line goes: the result follows on stdout */
		return;
	}
	fprintf(stderr, "\rmoonlog replay: %llu of %llu events (%llu%%)\033[K",
		(unsigned long long)at, (unsigned long long)total,
		(unsigned long long)(total ? at * 100 / total : 100));
}

static int feed(const struct ml_event *e, void *arg)
{
	struct replay *r = arg;
	if (r->progress && (++r->seen & 0xffff) == 0)
		show_progress(r, e->position, 0);
	if (r->log && ml_log_removed(r->log, e->stream, e->stream_len, e->version, e->time, r->now))
		return 0;
	if (ml_script_feed(r->script, e) != 0)
		return -1;
	if (ml_script_kind(r->script) == ML_SCRIPT_HANDLER) {
		struct ml_script_outcome out;
		ml_script_outcome(r->script, &out);
		r->emitted += out.n_emits;
	}
	return 0;
}

struct replay_args {
	const char *dir, *path;
	uint64_t until, memory_mib, insns, time_ms;
	int lua, stats, snapshot;
};

static int parse(int argc, char **argv, struct replay_args *a)
{
	static const struct option opts[] = {
	    {"data", required_argument, 0, 'd'},
	    {"until", required_argument, 0, 'u'},
	    {"lua", no_argument, 0, 'l'},
	    {"stats", no_argument, 0, 's'},
	    {"snapshot", no_argument, 0, 'S'},
	    {"memory", required_argument, 0, 'm'},
	    {"instructions", required_argument, 0, 'i'},
	    {"time-limit", required_argument, 0, 't'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			a->dir = optarg;
			break;
		case 'u':
			if (cli_uint("replay", "--until", optarg, &a->until) != 0)
				return CLI_USAGE;
			break;
		case 'm':
			if (cli_uint("replay", "--memory", optarg, &a->memory_mib) != 0)
				return CLI_USAGE;
			break;
		case 'i':
			if (cli_uint("replay", "--instructions", optarg, &a->insns) != 0)
				return CLI_USAGE;
			break;
		case 't':
			if (cli_uint("replay", "--time-limit", optarg, &a->time_ms) != 0)
				return CLI_USAGE;
			if (a->time_ms == 0 || a->time_ms > UINT32_MAX)
				return cli_fail("replay", CLI_USAGE,
						"--time-limit takes milliseconds, from 1 to %u",
						UINT32_MAX);
			break;
		case 'l':
			a->lua = 1;
			break;
		case 's':
			a->stats = 1;
			break;
		case 'S':
			a->snapshot = 1;
			break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return cli_fail("replay", CLI_USAGE, "see moonlog replay --help");
		}
	}
	if (optind + 1 != argc)
		return cli_fail("replay", CLI_USAGE,
				"needs one SCRIPT, the Lua file to replay the log through");
	a->path = argv[optind];
	return 0;
}

static int print_state(struct ml_script *s, int lua)
{
	struct ml_buf mp = {0}, out = {0};
	int rc = lua ? ml_script_state_lua(s, &out) : ml_script_state(s, &mp);
	if (rc == 0 && !lua)
		rc = ml_msgpack_to_json(mp.data, mp.len, &out);
	if (rc == 0) {
		fwrite(out.data, 1, out.len, stdout);
		fputc('\n', stdout);
	}
	ml_buf_free(&mp);
	ml_buf_free(&out);
	return rc;
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void print_stats(struct ml_script *s, struct replay *r, int64_t n, uint64_t ns, uint64_t cpu)
{
	struct ml_script_stats st;
	ml_script_stats(s, &st);
	double secs = (double)ns / 1e9;
	fprintf(stderr,
		"moonlog replay: %s: %" PRId64 " events read, %" PRIu64 " passed the filter, in "
		"%.3f s (%.3f s of CPU): %.0f events/s; position %" PRIu64 "; %" PRIu64
		" given as plain fields, %" PRIu64 " handled without the count hook"
		"; Lua memory %.1f MiB (peak %.1f)",
		ml_script_name(s), n, st.delivered, secs, (double)cpu / 1e9,
		secs > 0 ? (double)n / secs : 0.0, ml_script_position(s), st.plain, st.unhooked,
		(double)st.memory / 1048576, (double)st.memory_peak / 1048576);
	if (ml_script_kind(s) == ML_SCRIPT_HANDLER)
		fprintf(stderr, "; %" PRIu64 " events emitted (not appended)", r->emitted);
	fputc('\n', stderr);
}

static int restore(struct ml_script *s, const char *dir, int stats)
{
	int rc = ml_script_snapshot_load(s, dir);
	if (rc < 0 && ml_diag_code() == ML_ERR_REFUSED) {
		fprintf(stderr, "moonlog replay: %s; rebuilding\n", ml_diag_last());
		return 0;
	}
	if (rc < 0)
		return cli_diag("replay");
	if (rc == 1 && stats)
		fprintf(stderr, "moonlog replay: restored %s at position %" PRIu64 "\n",
			ml_script_name(s), ml_script_position(s));
	return 0;
}

/* A call stuck past every check of its time limit: nothing can give the thread back. */
static void stuck(const struct ml_script_stuck *st, void *arg)
{
	(void)arg;
	fprintf(
	    stderr,
	    "moonlog replay: script %s ran %llu ms (CPU) at position %llu without returning, stuck "
	    "where its time limit could not stop it; stopping\n",
	    st->name, (unsigned long long)st->ran_ms, (unsigned long long)st->position);
	_exit(CLI_REFUSED);
}

int cmd_replay(int argc, char **argv)
{
	struct replay_args a = {.dir = "./moonlog-data"};
	int rc = parse(argc, argv, &a);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;
	struct ml_script_options o;
	ml_script_options_init(&o);
	if (a.memory_mib)
		o.memory_limit = (size_t)a.memory_mib << 20;
	if (a.insns)
		o.instruction_limit = a.insns;
	if (a.time_ms)
		o.time_limit_ms = (uint32_t)a.time_ms;
	ml_script_on_stuck(stuck, NULL, 0);
	/* the folder's upcasters, as the server gives them to the scripts of its folder */
	struct ml_buf up = {0};
	char *dir = ml_xstrndup(a.path, strlen(a.path));
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	int has_up = ml_script_upcasters_read(slash ? dir : ".", &up);
	free(dir);
	if (has_up < 0) {
		ml_buf_free(&up);
		return cli_diag("replay");
	}
	o.upcasters = has_up ? up.data : NULL;
	o.upcasters_len = up.len;
	struct ml_script *s = ml_script_load(a.path, &o);
	ml_buf_free(&up);
	if (s == NULL)
		return cli_diag("replay");
	struct ml_log *log = cli_open_log("replay", a.dir, 1, ML_FSYNC_NEVER);
	if (log == NULL) {
		ml_script_free(s);
		return cli_status();
	}
	struct replay r = {.script = s,
			   .progress = isatty(STDERR_FILENO),
			   .log = ml_log_any_removed(log) ? log : NULL,
			   .now = ml_time_ms()};
	rc = a.snapshot ? restore(s, a.dir, a.stats) : 0;
	r.first = ml_script_position(s) + 1;
	r.last = a.until && a.until < ml_log_head(log) ? a.until : ml_log_head(log);
	uint64_t t0 = ml_clock_ns(), c0 = cpu_ns();
	int64_t n = rc ? 0 : ml_log_scan(log, r.first, a.until, feed, &r);
	uint64_t ns = ml_clock_ns() - t0, cpu = cpu_ns() - c0;
	if (r.progress)
		show_progress(&r, 0, 1);
	if (rc == 0 && n < 0)
		rc = cli_diag("replay");
	if (rc == 0 && a.stats)
		print_stats(s, &r, n, ns, cpu);
	if (rc == 0 && a.snapshot && ml_script_snapshot_save(s, a.dir) != 0)
		rc = cli_diag("replay");
	if (rc == 0 && print_state(s, a.lua) != 0)
		rc = cli_diag("replay");
	ml_log_close(log);
	ml_script_free(s);
	return rc;
}
