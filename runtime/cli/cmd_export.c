/*
 * cmd_export.c - `moonlog export`: the log's events as JSON Lines, one event a
 * line with every field, for `moonlog import` (cmd_import.c) or another tool.
 *
 * A line is the event as `read --json` shows it (docs/protocol.md), data and
 * meta as the codec's JSON (docs/codec.md). That JSON does not give every
 * msgpack value back (bin becomes a base64 string, a float 32 a float 64, an
 * integer key a string key, ...), so when converting it back would not give the
 * stored bytes exactly, the line also carries them: "data_msgpack" (or
 * "meta_msgpack") holds them in base64, and import takes those. Reading the
 * JSON stays easy, and a round trip loses nothing.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/codec.h>

#include "cli/cli.h"
#include "cli/client.h"

static const char help[] =
    "usage: moonlog export [--data DIR | --connect ADDR] [--from POS] [--to POS] [FILE|-]\n"
    "\n"
    "Writes the events of the log, in order, as JSON Lines to FILE (or stdout with - or\n"
    "no FILE): one object a line with position, stream, version, type, id, time, data\n"
    "and meta (data and meta as docs/codec.md converts them to JSON, null when absent).\n"
    "When that JSON would not give back the stored bytes exactly (binary, float 32,\n"
    "integer map keys, ...), the line also holds them in base64 as data_msgpack or\n"
    "meta_msgpack, so that `moonlog import` stores the same bytes. A summary goes to\n"
    "stderr.\n"
    "\n"
    "  --data DIR     the data folder (default ./moonlog-data); if a server holds it,\n"
    "                 the export reads through its admin socket\n"
    "  --connect ADDR export from a running server's RPC port (HOST:PORT)\n"
    "  --from POS     the first position to export (default: the first the log holds)\n"
    "  --to POS       the last position to export (default: the last acknowledged)\n";

struct export_ctx {
	FILE *out;
	struct ml_buf line, json, back;
	uint64_t to, events, first, last;
};

/*
 * Would import store these bytes again from their JSON? Import stores null as no
 * value and any other JSON as ml_json_to_msgpack makes it.
 */
static int json_exact(struct export_ctx *c, const uint8_t *mp, uint32_t len)
{
	if (len == 0)
		return 1;
	c->json.len = c->back.len = 0;
	if (ml_msgpack_to_json(mp, len, &c->json) != 0 ||
	    ml_json_to_msgpack(c->json.data, c->json.len, &c->back) != 0)
		return 0;
	if (c->back.len == 1 && (uint8_t)c->back.data[0] == 0xc0)
		return 0; /* a stored nil reads back as no value */
	return c->back.len == len && memcmp(c->back.data, mp, len) == 0;
}

/* ,"name":"<base64 of the bytes>" */
static void add_raw(struct ml_buf *out, const char *name, const uint8_t *mp, uint32_t len)
{
	ml_buf_addf(out, ",\"%s\":\"", name);
	ml_buf_reserve(out, ML_BASE64_SIZE((size_t)len) + 2);
	out->len += ml_codec_base64(out->data + out->len, mp, len);
	ml_buf_add(out, "\"", 1);
}

static int export_event(const struct ml_event *e, void *arg)
{
	struct export_ctx *c = arg;
	if (c->to && e->position > c->to)
		return 1;
	if (ml_event_json(&c->line, e) != 0)
		return -1;
	c->line.len--; /* the closing brace: the raw bytes may follow */
	if (!json_exact(c, e->data, e->data_len))
		add_raw(&c->line, "data_msgpack", e->data, e->data_len);
	if (!json_exact(c, e->meta, e->meta_len))
		add_raw(&c->line, "meta_msgpack", e->meta, e->meta_len);
	ml_buf_add(&c->line, "}\n", 2);
	if (c->events++ == 0)
		c->first = e->position;
	c->last = e->position;
	if (c->line.len > 1 << 16) {
		if (fwrite(c->line.data, 1, c->line.len, c->out) != c->line.len)
			return ml_diag_set(ML_ERR_IO, "cannot write the export: %s",
					   strerror(errno));
		c->line.len = 0;
	}
	return 0;
}

/* Through a server: pages of `read $all` until the end or past --to. 0 or -1 (diag). */
static int export_remote(struct cli_client *cl, uint64_t from, struct export_ctx *c)
{
	for (;;) {
		struct ml_buf p = {0};
		ml_msgpack_put_array(&p, 4);
		ml_msgpack_put_cstr(&p, "$all");
		ml_msgpack_put_uint(&p, from);
		ml_msgpack_put_uint(&p, 0);
		ml_msgpack_put_bool(&p, 0);
		struct ml_msgpack_reader r;
		uint32_t n;
		int rc = cli_client_call(cl, "read", &p, &r);
		ml_buf_free(&p);
		if (rc != 0 || ml_msgpack_get_array(&r, &n) != 0)
			return -1;
		if (n == 0)
			return 0;
		for (uint32_t i = 0; i < n; i++) {
			struct ml_event e;
			if (cli_client_event(&r, &e) != 0)
				return -1;
			if ((rc = export_event(&e, c)) != 0)
				return rc < 0 ? -1 : 0;
			from = e.position + 1;
		}
	}
}

/* Exports from whichever holds the log: --connect, the server on DIR, or DIR itself. */
static int export_from(const char *connect, const char *dir, uint64_t from, struct export_ctx *c)
{
	struct cli_client cl;
	int remote = cli_remote_open(&cl, connect, dir);
	if (remote < 0)
		return cli_diag("export");
	if (remote) {
		int rc = export_remote(&cl, from, c);
		cli_client_close(&cl);
		return rc == 0 ? CLI_OK : cli_diag("export");
	}
	struct ml_log *log = cli_open_log("export", dir, 1, ML_FSYNC_NEVER);
	if (log == NULL)
		return cli_status();
	int64_t n = ml_log_scan(log, from, c->to, export_event, c);
	ml_log_close(log);
	return n < 0 ? cli_diag("export") : CLI_OK;
}

int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data", required_argument, 0, 'd'}, {"connect", required_argument, 0, 'c'},
	    {"from", required_argument, 0, 'f'}, {"to", required_argument, 0, 't'},
	    {"help", no_argument, 0, 'h'},	 {0, 0, 0, 0},
	};
	const char *dir = "./moonlog-data", *connect = NULL, *path = "-";
	uint64_t from = 0;
	struct export_ctx c = {.out = stdout};
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'c':
			connect = optarg;
			break;
		case 'f':
			if (cli_uint("export", "--from", optarg, &from) != 0)
				return CLI_USAGE;
			break;
		case 't':
			if (cli_uint("export", "--to", optarg, &c.to) != 0)
				return CLI_USAGE;
			break;
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		default:
			return cli_fail("export", CLI_USAGE, "see moonlog export --help");
		}
	}
	if (optind + 1 < argc)
		return cli_fail("export", CLI_USAGE, "takes one FILE (or - for stdout) at most");
	if (optind < argc)
		path = argv[optind];
	if (c.to && from > c.to)
		return cli_fail("export", CLI_USAGE, "--from %" PRIu64 " is after --to %" PRIu64,
				from, c.to);
	if (strcmp(path, "-") != 0 && (c.out = fopen(path, "w")) == NULL)
		return cli_fail("export", CLI_REFUSED, "cannot create %s: %s; give a writable path",
				path, strerror(errno));
	int rc = export_from(connect, dir, from, &c);
	int wrote = fwrite(c.line.data, 1, c.line.len, c.out) == c.line.len;
	wrote = fflush(c.out) == 0 && wrote;
	if (c.out != stdout)
		wrote = fsync(fileno(c.out)) == 0 && fclose(c.out) == 0 && wrote;
	ml_buf_free(&c.line), ml_buf_free(&c.json), ml_buf_free(&c.back);
	if (rc != CLI_OK)
		return rc;
	if (!wrote)
		return cli_fail("export", CLI_REFUSED, "cannot write %s: %s", path,
				strerror(errno));
	if (c.events)
		fprintf(stderr,
			"moonlog export: %" PRIu64 " events, positions %" PRIu64 " to %" PRIu64
			"\n",
			c.events, c.first, c.last);
	else
		fprintf(stderr, "moonlog export: no events in that range\n");
	return CLI_OK;
}
