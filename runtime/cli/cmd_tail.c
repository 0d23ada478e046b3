/*
 * cmd_tail.c - `moonlog tail`: follow a running server's events, catching up
 * from a position first if asked, until interrupted or the server stops.
 */
#include <getopt.h>
#include <string.h>

#include <moonlog/diag.h>

#include "cli/cli.h"
#include "cli/client.h"

static const char help[] =
    "usage: moonlog tail [--connect ADDR | --data DIR] [PATTERN] [--from N] [--json]\n"
    "\n"
    "Prints the events matching PATTERN (default \"*\": every stream but system ones) as a\n"
    "running server makes them durable, from the moment it says \"following\" on stderr. Patterns: "
    "\"account-*\", a category \"account\", an\n"
    "exact name \"account-42\", or \"$all\".\n"
    "\n"
    "  --connect ADDR  the server's RPC port, HOST:PORT (default: the admin socket of\n"
    "                  --data, else 127.0.0.1:7420)\n"
    "  --data DIR      the data folder of a server running on this machine\n"
    "  --from N        first print the events from position N on, then follow\n"
    "  --json          one JSON object per line (JSON Lines)\n";

static int follow(struct cli_client *c, int json)
{
	struct ml_buf out = {0};
	for (;;) {
		struct ml_msgpack_reader m;
		uint32_t n, nl;
		int64_t type;
		const char *name;
		uint64_t id;
		struct ml_event e;
		if (cli_client_next(c, &m) != 0)
			break;
		if (ml_msgpack_get_array(&m, &n) != 0 || ml_msgpack_get_int(&m, &type) != 0 ||
		    type != 2 || ml_msgpack_get_str(&m, &name, &nl) != 0 ||
		    ml_msgpack_get_array(&m, &n) != 0 || ml_msgpack_get_uint(&m, &id) != 0 ||
		    cli_client_event(&m, &e) != 0)
			continue;
		out.len = 0;
		if ((json ? cli_event_json(&e, &out) : cli_event_line(&e, &out)) != 0)
			break;
		fwrite(out.data, 1, out.len, stdout);
		fflush(stdout);
	}
	ml_buf_free(&out);
	return cli_fail("tail", CLI_REFUSED, "%s", ml_diag_last());
}

int cmd_tail(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"connect", required_argument, 0, 'c'}, {"data", required_argument, 0, 'd'},
	    {"from", required_argument, 0, 'f'},    {"json", no_argument, 0, 'j'},
	    {"help", no_argument, 0, 'h'},	    {0, 0, 0, 0},
	};
	const char *addr = NULL, *dir = "./moonlog-data", *pattern = "*";
	uint64_t from = 0;
	int json = 0, has_from = 0, c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			addr = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'f':
			if (cli_uint("tail", "--from", optarg, &from) != 0)
				return CLI_USAGE;
			has_from = 1;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		default:
			return cli_fail("tail", CLI_USAGE, "see moonlog tail --help");
		}
	}
	if (optind < argc)
		pattern = argv[optind++];
	if (optind < argc)
		return cli_fail("tail", CLI_USAGE, "one PATTERN at most; see moonlog tail --help");
	struct cli_client cl;
	if (cli_server_open(&cl, addr, dir) != 0)
		return cli_diag("tail");
	struct ml_buf p = {0};
	struct ml_msgpack_reader r;
	ml_msgpack_put_array(&p, 2);
	ml_msgpack_put_cstr(&p, pattern);
	if (has_from)
		ml_msgpack_put_uint(&p, from);
	else
		ml_msgpack_put_nil(&p);
	int rc = cli_client_call(&cl, "subscribe", &p, &r);
	ml_buf_free(&p);
	if (rc != 0) {
		cli_client_close(&cl);
		return cli_diag("tail");
	}
	/* The server placed the subscription when it answered: every event made durable
	 * from now on is printed. Said on stderr, so that --json's output stays clean. */
	if (has_from)
		fprintf(stderr, "moonlog tail: following %s from position %llu (Ctrl-C stops)\n",
			pattern, (unsigned long long)from);
	else
		fprintf(stderr, "moonlog tail: following %s, new events (Ctrl-C stops)\n", pattern);
	rc = follow(&cl, json);
	cli_client_close(&cl);
	return rc;
}
