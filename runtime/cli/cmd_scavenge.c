/*
 * cmd_scavenge.c - `moonlog scavenge`: give back the disk that removed events
 * hold (docs/operations.md, Scavenging).
 *
 * Against a running server (--connect ADDR, or the admin socket of the
 * server holding --data DIR) it asks for a scavenge (RPC scavenge()) and
 * follows its progress in stats() until it is done; the server goes on
 * serving meanwhile. On a log no server holds, it opens the log and scavenges
 * it here, on a thread, following the same progress. Either way a progress
 * line goes to stderr and the result, one line (or a JSON object), to stdout.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"

static const char help[] =
    "usage: moonlog scavenge [--data DIR | --connect ADDR] [--json]\n"
    "\n"
    "Rewrites the log's finished segments without the bytes of removed events (deleted\n"
    "streams, truncated versions, events past a stream's max count or max age) and gives\n"
    "their disk back. Positions and versions of what remains never change, and readers\n"
    "see the same events before and after. A removed event leaves a stub of about 60\n"
    "bytes (its stream, type, position, version and time). The segment being written is\n"
    "left for a later scavenge. Progress goes to stderr; the result to stdout.\n"
    "\n"
    "  --data DIR      the data folder (default ./moonlog-data): through the admin socket of\n"
    "                  the server holding it, or, when none runs, on the log itself\n"
    "  --connect ADDR  a running server: HOST:PORT of its RPC listener, or a socket path\n"
    "  --json          the result as one JSON object\n";

static void print_progress(const struct ml_scavenge_stats *st, int tty)
{
	fprintf(stderr,
		"%sscavenging: %" PRIu64 " of %" PRIu64 " segments, %.1f MB read, %.1f MB "
		"written%s",
		tty ? "\r" : "", st->segments_done, st->segments, (double)st->bytes_read / 1e6,
		(double)st->bytes_written / 1e6, tty ? "   " : "\n");
}

static int print_result(const struct ml_scavenge_stats *st, int json)
{
	if (json)
		printf("{\"segments\":%" PRIu64 ",\"rewritten\":%" PRIu64
		       ",\"events_removed\":%" PRIu64 ",\"bytes_read\":%" PRIu64
		       ",\"bytes_written\":%" PRIu64 ",\"bytes_reclaimed\":%" PRIu64
		       ",\"elapsed_ms\":%" PRIu64 "}\n",
		       st->segments, st->rewritten, st->events_removed, st->bytes_read,
		       st->bytes_written, st->bytes_reclaimed, st->elapsed_ms);
	else
		printf("scavenged: %" PRIu64 " of %" PRIu64 " segments rewritten, %" PRIu64
		       " events removed, %.1f MB given back (%.1f MB read, %.1f MB written) in "
		       "%.2f s\n",
		       st->rewritten, st->segments, st->events_removed,
		       (double)st->bytes_reclaimed / 1e6, (double)st->bytes_read / 1e6,
		       (double)st->bytes_written / 1e6, (double)st->elapsed_ms / 1000.0);
	return CLI_OK;
}

/* The `scavenge` map of a stats() answer (or of scavenge()'s) into st; *running. 0 or -1. */
static int read_status(struct ml_msgpack_reader *r, struct ml_scavenge_stats *st, int *running)
{
	uint32_t n, kl, sl;
	const char *k, *s;
	if (ml_msgpack_get_map(r, &n) != 0)
		return -1;
	const struct {
		const char *name;
		uint64_t *v;
	} f[] = {{"segments", &st->segments},
		 {"segments_done", &st->segments_done},
		 {"rewritten", &st->rewritten},
		 {"events_removed", &st->events_removed},
		 {"bytes_read", &st->bytes_read},
		 {"bytes_written", &st->bytes_written},
		 {"bytes_reclaimed", &st->bytes_reclaimed},
		 {"elapsed_ms", &st->elapsed_ms}};
	for (uint32_t i = 0; i < n; i++) {
		if (ml_msgpack_get_str(r, &k, &kl) != 0)
			return -1;
		size_t j = 0;
		while (j < sizeof(f) / sizeof(f[0]) &&
		       !(strlen(f[j].name) == kl && memcmp(f[j].name, k, kl) == 0))
			j++;
		if (j < sizeof(f) / sizeof(f[0])) {
			if (ml_msgpack_get_uint(r, f[j].v) != 0)
				return -1;
		} else if (kl == 7 && memcmp(k, "running", 7) == 0) {
			if (ml_msgpack_get_bool(r, running) != 0)
				return -1;
		} else if (kl == 5 && memcmp(k, "error", 5) == 0) {
			if (ml_msgpack_get_str(r, &s, &sl) != 0)
				return -1;
			snprintf(st->error, sizeof(st->error), "%.*s", (int)sl, s);
		} else if (ml_msgpack_skip(r, NULL, NULL) != 0) {
			return -1;
		}
	}
	return 0;
}

/* stats() of the server, its `scavenge` map. 0 or -1 with diag. */
static int poll_server(struct cli_client *cl, struct ml_scavenge_stats *st, int *running)
{
	struct ml_buf p = {0};
	ml_msgpack_put_array(&p, 0);
	struct ml_msgpack_reader r;
	int rc = cli_client_call(cl, "stats", &p, &r);
	ml_buf_free(&p);
	uint32_t n, kl;
	const char *k;
	if (rc != 0 || ml_msgpack_get_map(&r, &n) != 0)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		if (ml_msgpack_get_str(&r, &k, &kl) != 0)
			return -1;
		if (kl == 8 && memcmp(k, "scavenge", 8) == 0)
			return read_status(&r, st, running);
		if (ml_msgpack_skip(&r, NULL, NULL) != 0)
			return -1;
	}
	return ml_diag_set(ML_ERR_USAGE, "the server's stats() say nothing of a scavenge: is it "
					 "the same moonlog version as this one?");
}

static int online(struct cli_client *cl, int json)
{
	struct ml_buf p = {0};
	ml_msgpack_put_array(&p, 0);
	struct ml_msgpack_reader r;
	int rc = cli_client_call(cl, "scavenge", &p, &r);
	ml_buf_free(&p);
	if (rc != 0)
		return cli_diag("scavenge");
	struct ml_scavenge_stats st = {0};
	int running = 1, tty = isatty(2);
	while (running) {
		usleep(200000);
		if (poll_server(cl, &st, &running) != 0)
			return cli_diag("scavenge");
		print_progress(&st, tty);
	}
	if (tty)
		fputc('\n', stderr);
	if (st.error[0])
		return cli_fail("scavenge", CLI_REFUSED, "%s", st.error);
	return print_result(&st, json);
}

struct here {
	struct ml_log *log;
	int rc;
	volatile int done;
};

static void *scavenge_here(void *arg)
{
	struct here *h = arg;
	h->rc = ml_log_scavenge_removed(h->log, NULL);
	h->done = 1;
	return NULL;
}

static int offline(const char *dir, int json)
{
	char logdir[4200];
	struct stat sb;
	snprintf(logdir, sizeof(logdir), "%s/log", dir);
	if (stat(logdir, &sb) != 0)
		return cli_fail("scavenge", CLI_REFUSED,
				"there is no log in %s; give the data folder with --data DIR, or a "
				"running server with --connect ADDR",
				dir);
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = dir;
	struct ml_log *log = ml_log_open(&o);
	if (log == NULL)
		return cli_diag("scavenge");
	struct here h = {log, 0, 0};
	pthread_t th;
	pthread_create(&th, NULL, scavenge_here, &h);
	struct ml_scavenge_stats st;
	int tty = isatty(2);
	while (!h.done) {
		usleep(200000);
		ml_log_scavenge_progress(log, &st);
		if (!h.done)
			print_progress(&st, tty);
	}
	pthread_join(th, NULL);
	if (tty)
		fputc('\n', stderr);
	ml_log_scavenge_progress(log, &st);
	ml_log_close(log);
	if (h.rc != 0)
		return cli_fail("scavenge", CLI_REFUSED, "%s", st.error);
	return print_result(&st, json);
}

int cmd_scavenge(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data", required_argument, 0, 'd'},
	    {"connect", required_argument, 0, 'c'},
	    {"json", no_argument, 0, 'j'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	const char *dir = "./moonlog-data", *addr = NULL;
	int c, json = 0, have_dir = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'd')
			dir = optarg, have_dir = 1;
		else if (c == 'c')
			addr = optarg;
		else if (c == 'j')
			json = 1;
		else if (c == 'h')
			return fputs(help, stdout), CLI_OK;
		else
			return cli_fail("scavenge", CLI_USAGE, "see moonlog scavenge --help");
	}
	if (optind != argc || (addr && have_dir))
		return cli_fail("scavenge", CLI_USAGE,
				"give --data DIR or --connect ADDR (not both), and nothing else");
	struct cli_client cl;
	int remote = cli_remote_open(&cl, addr, dir);
	if (remote < 0)
		return cli_diag("scavenge");
	if (remote) {
		int rc = online(&cl, json);
		cli_client_close(&cl);
		return rc;
	}
	return offline(dir, json);
}
