/*
 * cmd_read.c - `moonlog read`: print the events of a stream or of $all.
 */
#include <getopt.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"

static const char help[] =
    "usage: moonlog read [--data DIR | --connect ADDR] STREAM|'$all' [options]\n"
    "\n"
    "Prints the events of a stream (or of the whole log with '$all'), one per line:\n"
    "position, time, stream@version, type, data. Removed events (a deleted stream's, or\n"
    "past its truncate-before, max count or max age: moonlog meta --help) are left out.\n"
    "\n"
    "  --data DIR     the data folder (default ./moonlog-data); if a server holds it,\n"
    "                 the read goes through its admin socket\n"
    "  --connect ADDR read from a running server's RPC port (HOST:PORT)\n"
    "  --from N       start at version N of the stream, or position N of $all (default: the\n"
    "                 first; with --backwards, the last)\n"
    "  --limit N      print at most N events\n"
    "  --backwards    newest first (streams only)\n"
    "  --json         one JSON object per line (JSON Lines)\n"
    "\n"
    "Exits with status 1, saying so, when the stream has no events at all.\n";

struct read_ctx {
	int json;
	struct ml_buf out;
};

static int print_event(const struct ml_event *e, void *arg)
{
	struct read_ctx *c = arg;
	int rc = c->json ? cli_event_json(e, &c->out) : cli_event_line(e, &c->out);
	if (c->out.len > 1 << 16) {
		fwrite(c->out.data, 1, c->out.len, stdout);
		c->out.len = 0;
	}
	return rc;
}

int cmd_read(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data", required_argument, 0, 'd'},  {"from", required_argument, 0, 'f'},
	    {"limit", required_argument, 0, 'l'}, {"backwards", no_argument, 0, 'b'},
	    {"json", no_argument, 0, 'j'},	  {"connect", required_argument, 0, 'c'},
	    {"help", no_argument, 0, 'h'},	  {0, 0, 0, 0},
	};
	const char *dir = "./moonlog-data", *stream = NULL, *connect = NULL;
	uint64_t from = 0, limit = 0;
	int backwards = 0, c;
	struct read_ctx ctx = {0};
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'f':
			if (cli_uint("read", "--from", optarg, &from) != 0)
				return CLI_USAGE;
			break;
		case 'l':
			if (cli_uint("read", "--limit", optarg, &limit) != 0)
				return CLI_USAGE;
			break;
		case 'c':
			connect = optarg;
			break;
		case 'b':
			backwards = 1;
			break;
		case 'j':
			ctx.json = 1;
			break;
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		default:
			return cli_fail("read", CLI_USAGE, "see moonlog read --help");
		}
	}
	if (optind + 1 != argc)
		return cli_fail("read", CLI_USAGE,
				"needs one STREAM, or '$all' for the whole log (quote the $)");
	stream = argv[optind];
	int all = strcmp(stream, "$all") == 0;
	if (all && backwards)
		return cli_fail("read", CLI_USAGE, "$all is read forward only");

	int rc = cli_remote_read(connect, dir, stream, from, limit, backwards, ctx.json);
	if (rc >= 0)
		return rc; /* a server holds the log (or --connect): it answered */
	struct ml_log *log = cli_open_log("read", dir, 1, ML_FSYNC_NEVER);
	if (log == NULL)
		return cli_status();
	int64_t n = all ? ml_log_read_all_kept(log, from, limit, print_event, &ctx)
			: ml_log_read_stream(log, stream, strlen(stream), from, limit, backwards,
					     print_event, &ctx);
	fwrite(ctx.out.data, 1, ctx.out.len, stdout);
	ml_buf_free(&ctx.out);
	int missing = n == 0 && !all && ml_log_stream_version(log, stream, strlen(stream)) == 0;
	ml_log_close(log);
	if (n < 0)
		return cli_diag("read");
	return missing ? cli_no_stream(stream) : CLI_OK;
}

int cli_no_stream(const char *stream)
{
	return cli_fail("read", CLI_REFUSED,
			"there is no stream %s (no event was ever appended to it); '$all' "
			"lists every event",
			stream);
}
