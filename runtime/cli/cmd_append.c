/*
 * cmd_append.c - `moonlog append`: append one event from the command line.
 */
#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include <moonlog/codec.h>

#include "cli/cli.h"
#include "cli/client.h"

static const char help[] =
    "usage: moonlog append [--data DIR | --connect ADDR] STREAM TYPE [JSON] [options]\n"
    "\n"
    "Appends one event of TYPE to STREAM, with JSON as its data (default {}; - reads\n"
    "the JSON from standard input). A number too large for a 64-bit float, or a key\n"
    "given twice in one object, is refused.\n"
    "\n"
    "  --data DIR     the data folder (default ./moonlog-data); if a server holds it,\n"
    "                 the append goes through its admin socket\n"
    "  --connect ADDR append through a running server's RPC port (HOST:PORT)\n"
    "  --expect V     expected version: any (default), no_stream, exists, or a number;\n"
    "                 if the stream is not at V, nothing is written and the exit status is 1\n"
    "  --id ID        the event's id, 1 to 255 bytes; appending an id already in the\n"
    "                 stream again does nothing and reports the stored event (default: a\n"
    "                 new UUIDv7)\n"
    "  --meta JSON    metadata, a JSON object (correlation_id, causation_id, your headers)\n"
    "  --fsync MODE   always (default), batch or never\n"
    "  --json         print the result as JSON\n";

struct append_args {
	const char *dir, *stream, *type, *data, *meta, *id, *connect;
	int64_t expect;
	enum ml_fsync fsync;
	int json;
};

static int parse(int argc, char **argv, struct append_args *a)
{
	static const struct option opts[] = {
	    {"data", required_argument, 0, 'd'},
	    {"expect", required_argument, 0, 'e'},
	    {"id", required_argument, 0, 'i'},
	    {"meta", required_argument, 0, 'm'},
	    {"fsync", required_argument, 0, 'f'},
	    {"json", no_argument, 0, 'j'},
	    {"help", no_argument, 0, 'h'},
	    {"connect", required_argument, 0, 'c'},
	    {0, 0, 0, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1 || optind < argc) {
		if (c == -1) { /* a positional argument: take it, and go on parsing */
			if (!a->stream)
				a->stream = argv[optind];
			else if (!a->type)
				a->type = argv[optind];
			else if (!a->data)
				a->data = argv[optind];
			else
				return cli_fail(
				    "append", CLI_USAGE,
				    "too many arguments ('%s'); see moonlog append --help",
				    argv[optind]);
			optind++;
			continue;
		}
		switch (c) {
		case 'd':
			a->dir = optarg;
			break;
		case 'e':
			if (ml_expect_parse(optarg, &a->expect) != 0)
				return cli_diag("append");
			break;
		case 'i':
			a->id = optarg;
			break;
		case 'c':
			a->connect = optarg;
			break;
		case 'm':
			a->meta = optarg;
			break;
		case 'f':
			if (ml_fsync_parse(optarg, &a->fsync) != 0)
				return cli_diag("append");
			break;
		case 'j':
			a->json = 1;
			break;
		case 'h':
			fputs(help, stdout);
			return -1;
		default:
			return cli_fail("append", CLI_USAGE, "see moonlog append --help");
		}
	}
	if (!a->stream || !a->type)
		return cli_fail(
		    "append", CLI_USAGE,
		    "needs a STREAM and a TYPE, e.g. moonlog append account-1 Deposited "
		    "'{\"amount\": 10}'");
	return 0;
}

static int to_msgpack(const char *what, const char *json, struct ml_buf *out)
{
	if (ml_json_to_msgpack(json, strlen(json), out) != 0)
		return cli_fail("append", CLI_USAGE, "%s is not valid JSON: %s", what,
				ml_diag_last());
	return 0;
}

/* The data argument, or standard input when it is "-". */
static int read_data(const char *arg, struct ml_buf *json)
{
	if (strcmp(arg, "-") != 0) {
		ml_buf_add(json, arg, strlen(arg));
		ml_buf_add(json, "", 1);
		return 0;
	}
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		ml_buf_add(json, chunk, n);
	ml_buf_add(json, "", 1);
	if (ferror(stdin))
		return cli_fail("append", CLI_USAGE, "cannot read the data from standard input");
	return 0;
}

int cmd_append(int argc, char **argv)
{
	struct append_args a = {.dir = "./moonlog-data", .expect = ML_EXPECT_ANY};
	int rc = parse(argc, argv, &a);
	if (rc != 0)
		return rc < 0 ? CLI_OK : rc;

	struct ml_buf data = {0}, meta = {0}, json = {0};
	if ((rc = read_data(a.data ? a.data : "{}", &json)) != 0 ||
	    (rc = to_msgpack("the data", json.data, &data)) != 0 ||
	    (a.meta && (rc = to_msgpack("--meta", a.meta, &meta)) != 0))
		goto out;
	struct ml_event_in re = {
	    a.stream,  strlen(a.stream), a.type,    strlen(a.type), a.id, a.id ? strlen(a.id) : 0,
	    data.data, data.len,	 meta.data, meta.len};
	if ((rc = cli_remote_append(a.connect, a.dir, &re, a.expect, a.json)) >= 0)
		goto out; /* a server holds the log (or --connect): it did the append */
	rc = 0;
	struct ml_log *log = cli_open_log("append", a.dir, 0, a.fsync);
	if (log == NULL) {
		rc = cli_status();
		goto out;
	}
	struct ml_event_in e = {
	    a.stream,  strlen(a.stream), a.type,    strlen(a.type), a.id, a.id ? strlen(a.id) : 0,
	    data.data, data.len,	 meta.data, meta.len};
	struct ml_expect_in x = {a.stream, strlen(a.stream), a.expect};
	uint64_t version = 0;
	struct ml_append req = {
	    .events = &e, .n_events = 1, .expect = &x, .n_expect = 1, .versions = &version};
	if (ml_log_append(log, &req) != 0) {
		rc = cli_diag("append");
	} else if (a.json) {
		struct ml_buf out = {0};
		ml_buf_add(&out, "{\"stream\":", 10);
		ml_json_string(&out, a.stream, strlen(a.stream));
		ml_buf_addf(&out,
			    ",\"position\":%" PRIu64 ",\"version\":%" PRIu64 ",\"duplicate\":%s}\n",
			    req.first_position, version, req.duplicate ? "true" : "false");
		fwrite(out.data, 1, out.len, stdout);
		ml_buf_free(&out);
	} else {
		printf("%s %s@%" PRIu64 " at position %" PRIu64 "\n",
		       req.duplicate ? "already appended:" : "appended", a.stream, version,
		       req.first_position);
	}
	ml_log_close(log);
out:
	ml_buf_free(&data);
	ml_buf_free(&meta);
	ml_buf_free(&json);
	return rc;
}
