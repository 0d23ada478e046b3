/*
 * cmd_scripts.c - `moonlog scripts`: the scripts a running server hosts, as a
 * table (name, kind, state, position, lag, events per second) with each one's
 * error under it (and, on a shared log, where a handler runs), or as JSON Lines. What scripts()
 * shows in the REPL and GET /scripts over HTTP, for a shell.
 */
#include <getopt.h>
#include <string.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include "cli/cli.h"
#include "cli/client.h"

static const char help[] =
    "usage: moonlog scripts [--connect ADDR | --data DIR] [--json]\n"
    "       moonlog scripts history NAME [--show N]   the versions of NAME that went live\n"
    "\n"
    "Shows the scripts a running server hosts: name, kind, state, position, lag (events\n"
    "between its position and the log's head) and events per second, and under each the\n"
    "error it faulted with or the reason its last reload failed. On a log shared by\n"
    "several nodes (--replicate), a handler runs on one of them: under it, where (\"lease:\n"
    "running here\", or \"lease: standby, node ID runs it\"). A script with a dry run of a\n"
    "new version beside it (moonlog reload --dry-run) says how far that is.\n"
    "\n"
    "  --connect ADDR  the server's RPC port, HOST:PORT (default: the admin socket of\n"
    "                  --data, else 127.0.0.1:7420)\n"
    "  --data DIR      the data folder of a server running on this machine\n"
    "  --json          one JSON object per script and line, every field\n";

#define COLS 6
static const char *const columns[COLS] = {"name",     "kind", "state",
					  "position", "lag",  "events_per_second"};

struct row {
	char cell[COLS][64];
	struct ml_buf errors;	    /* "  NAME: error\n" lines */
	char lease[32], holder[64]; /* a handler's on a shared log (docs/scale-out.md) */
	char dry[600];		    /* "  dry run of FILE: state ..." (moonlog reload --dry-run) */
};

/* A dry run's progress {state, file, position, of} as a line under its script. */
static void dry_line(const uint8_t *raw, size_t len, char *out, size_t n)
{
	struct ml_msgpack_reader m;
	uint32_t k;
	char state[32] = "", file[400] = "";
	uint64_t pos = 0, of = 0;
	ml_msgpack_reader_init(&m, raw, len);
	if (ml_msgpack_get_map(&m, &k) != 0)
		return;
	for (uint32_t i = 0; i < k; i++) {
		const char *key, *s;
		uint32_t kl, sl;
		if (ml_msgpack_get_str(&m, &key, &kl) != 0)
			return;
		if (kl == 5 && memcmp(key, "state", 5) == 0 && ml_msgpack_get_str(&m, &s, &sl) == 0)
			snprintf(state, sizeof(state), "%.*s", (int)sl, s);
		else if (kl == 4 && memcmp(key, "file", 4) == 0 &&
			 ml_msgpack_get_str(&m, &s, &sl) == 0)
			snprintf(file, sizeof(file), "%.*s", (int)sl, s);
		else if (kl == 8 && memcmp(key, "position", 8) == 0 &&
			 ml_msgpack_get_uint(&m, &pos) == 0)
			;
		else if (kl == 2 && memcmp(key, "of", 2) == 0 && ml_msgpack_get_uint(&m, &of) == 0)
			;
		else if (ml_msgpack_skip(&m, NULL, NULL) != 0)
			return;
	}
	if (strcmp(state, "running") == 0 && of)
		snprintf(out, n, "  dry run of %s: at %llu of %llu (%llu%%)\n", file,
			 (unsigned long long)pos, (unsigned long long)of,
			 (unsigned long long)(pos * 100 / of));
	else
		snprintf(out, n,
			 "  dry run of %s: %s (moonlog reload --dry-run shows its report)\n", file,
			 state);
}

/* A table cell: the text, cut to fit (the precision tells the compiler it may be cut). */
static void copy_cut(char *out, size_t n, const char *text)
{
	snprintf(out, n, "%.*s", (int)n - 1, text);
}

/* A value as text: a string without its quotes, nil as "-", a rate as a whole number,
 * anything else as JSON. */
static void value_text(const uint8_t *raw, size_t len, char *out, size_t n)
{
	struct ml_buf j = {0};
	struct ml_msgpack_reader r;
	struct ml_msgpack_obj o;
	ml_msgpack_reader_init(&r, raw, len);
	out[0] = 0;
	if (ml_msgpack_read(&r, &o) == 0 && (o.kind == ML_MP_FLOAT64 || o.kind == ML_MP_FLOAT32)) {
		snprintf(out, n, "%.0f", o.kind == ML_MP_FLOAT64 ? o.v.d : (double)o.v.f);
		return;
	}
	if (ml_msgpack_to_json(raw, len, &j) == 0) {
		const char *s = j.data;
		size_t l = j.len;
		if (l >= 2 && s[0] == '"')
			s++, l -= 2;
		else if (l == 4 && memcmp(s, "null", 4) == 0)
			s = "-", l = 1; /* not known, e.g. the kind of a script that did not load */
		snprintf(out, n, "%.*s", (int)l, s);
	}
	ml_buf_free(&j);
}

static int read_row(struct ml_msgpack_reader *m, struct row *r)
{
	uint32_t n;
	if (ml_msgpack_get_map(m, &n) != 0)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kl;
		const uint8_t *raw;
		size_t len;
		char text[1024];
		if (ml_msgpack_get_str(m, &k, &kl) != 0 || ml_msgpack_skip(m, &raw, &len) != 0)
			return -1;
		value_text(raw, len, text, sizeof(text));
		for (int c = 0; c < COLS; c++)
			if (kl == strlen(columns[c]) && memcmp(k, columns[c], kl) == 0)
				copy_cut(r->cell[c], sizeof(r->cell[c]), text);
		if ((kl == 5 && memcmp(k, "error", 5) == 0) ||
		    (kl == 12 && memcmp(k, "reload_error", 12) == 0))
			ml_buf_addf(&r->errors, "  %.*s: %s\n", (int)kl, k, text);
		if (kl == 7 && memcmp(k, "dry_run", 7) == 0)
			dry_line(raw, len, r->dry, sizeof(r->dry));
		if (kl == 5 && memcmp(k, "lease", 5) == 0)
			copy_cut(r->lease, sizeof(r->lease), text);
		if (kl == 6 && memcmp(k, "holder", 6) == 0)
			copy_cut(r->holder, sizeof(r->holder), text);
	}
	return 0;
}

/* Where a handler on a shared log runs, under its row. */
static void show_lease(const struct row *r)
{
	if (r->lease[0] == 0)
		return;
	if (strcmp(r->lease, "running here") == 0)
		printf("  lease: running here\n");
	else if (strcmp(r->holder, "-") == 0 || r->holder[0] == 0)
		printf("  lease: %s, no node runs it yet\n", r->lease);
	else
		printf("  lease: %s, node %s runs it\n", r->lease, r->holder);
}

static int show(struct ml_msgpack_reader *m, int json)
{
	uint32_t n;
	if (ml_msgpack_get_array(m, &n) != 0)
		return cli_fail("scripts", CLI_REFUSED, "the server's answer is not a list");
	if (n == 0 && !json)
		printf("the server hosts no scripts (start it with --scripts DIR)\n");
	else if (!json)
		printf("%-20s %-11s %-12s %10s %10s %10s\n", "NAME", "KIND", "STATE", "POSITION",
		       "LAG", "EVENTS/S");
	for (uint32_t i = 0; i < n; i++) {
		if (json) {
			const uint8_t *raw;
			size_t len;
			struct ml_buf j = {0};
			if (ml_msgpack_skip(m, &raw, &len) != 0 ||
			    ml_msgpack_to_json(raw, len, &j) != 0)
				return cli_diag("scripts");
			printf("%.*s\n", (int)j.len, j.data);
			ml_buf_free(&j);
			continue;
		}
		struct row r = {0};
		if (read_row(m, &r) != 0)
			return cli_fail("scripts", CLI_REFUSED, "a script's status is not a map");
		printf("%-20s %-11s %-12s %10s %10s %10s\n", r.cell[0], r.cell[1], r.cell[2],
		       r.cell[3], r.cell[4], r.cell[5]);
		show_lease(&r);
		fputs(r.dry, stdout);
		if (r.errors.len)
			fwrite(r.errors.data, 1, r.errors.len, stdout);
		ml_buf_free(&r.errors);
	}
	return CLI_OK;
}

int cmd_scripts(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"connect", required_argument, 0, 'c'},
	    {"data", required_argument, 0, 'd'},
	    {"json", no_argument, 0, 'j'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	const char *addr = NULL, *dir = "./moonlog-data";
	int json = 0, c;
	if (argc > 1 && strcmp(argv[1], "history") == 0)
		return cli_scripts_history(argc - 1, argv + 1);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			addr = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		default:
			return cli_fail("scripts", CLI_USAGE, "see moonlog scripts --help");
		}
	}
	if (optind < argc)
		return cli_fail("scripts", CLI_USAGE,
				"takes no arguments; see moonlog scripts --help");
	struct cli_client cl;
	if (cli_server_open(&cl, addr, dir) != 0)
		return cli_diag("scripts");
	struct ml_buf p = {0};
	struct ml_msgpack_reader r;
	ml_msgpack_put_array(&p, 0);
	int rc = cli_client_call(&cl, "scripts", &p, &r);
	ml_buf_free(&p);
	rc = rc != 0 ? cli_diag("scripts") : show(&r, json);
	cli_client_close(&cl);
	return rc;
}
