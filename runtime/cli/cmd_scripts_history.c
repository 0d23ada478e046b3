/*
 * cmd_scripts_history.c - `moonlog scripts history NAME`: the versions of a
 * script that went live, from its code history $code-NAME (runtime/host/
 * history.c): when each took over, its code's hash, its file and why, or with
 * --show N the text of one of them. Read through the running server (the
 * admin socket of --data, or --connect), else from the data folder itself.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include "cli/cli.h"
#include "cli/client.h"

static const char help[] =
    "usage: moonlog scripts history NAME [--connect ADDR | --data DIR] [--json] [--show N]\n"
    "\n"
    "Lists the versions of script NAME that went live, oldest first, from its code\n"
    "history (the system stream $code-NAME): its number, the position from which it\n"
    "was live, when, its code's hash, its file and why it went live (loaded, reloaded,\n"
    "applied after a dry run, changed while the server was stopped).\n"
    "\n"
    "  --connect ADDR  a running server's RPC port, HOST:PORT\n"
    "  --data DIR      the data folder (through its server's admin socket when one runs,\n"
    "                  else read from the folder; default ./moonlog-data)\n"
    "  --json          one JSON object per version, with every field (its text too)\n"
    "  --show N        print the text of version N (to compare or restore it)\n";

struct history {
	int json;
	uint64_t show; /* 0: list */
	uint64_t count;
	int shown;
	struct ml_buf out;
};

/* The string or number of `key` in the data map, as text into buf ("" when absent). */
static void field(const uint8_t *p, size_t n, const char *key, char *buf, size_t cap,
		  const char **whole, uint32_t *whole_len)
{
	struct ml_msgpack_reader r;
	uint32_t k;
	buf[0] = 0;
	if (n == 0)
		return;
	ml_msgpack_reader_init(&r, p, n);
	if (ml_msgpack_get_map(&r, &k) != 0)
		return;
	for (uint32_t i = 0; i < k; i++) {
		const char *s;
		uint32_t sn;
		uint64_t u;
		if (ml_msgpack_get_str(&r, &s, &sn) != 0)
			return;
		if (sn != strlen(key) || memcmp(s, key, sn) != 0) {
			if (ml_msgpack_skip_n(&r, 1) != 0)
				return;
			continue;
		}
		if (ml_msgpack_get_str(&r, &s, &sn) == 0) {
			snprintf(buf, cap, "%.*s", (int)sn, s);
			if (whole)
				*whole = s, *whole_len = sn;
		} else if (ml_msgpack_get_uint(&r, &u) == 0) {
			snprintf(buf, cap, "%llu", (unsigned long long)u);
		}
		return;
	}
}

static int one_version(const struct ml_event *e, void *arg)
{
	struct history *h = arg;
	h->count++;
	if (h->show) {
		if (e->version != h->show)
			return 0;
		char dummy[2];
		const char *text = NULL;
		uint32_t len = 0;
		field(e->data, e->data_len, "text", dummy, sizeof(dummy), &text, &len);
		if (text)
			ml_buf_add(&h->out, text, len);
		h->shown = 1;
		return 0;
	}
	if (h->json) {
		struct ml_buf data = {0};
		if (ml_msgpack_to_json(e->data, e->data_len, &data) != 0 || data.len < 2) {
			ml_buf_free(&data);
			return 0;
		}
		ml_buf_addf(&h->out, "{\"version\":%llu,\"time\":%lld,",
			    (unsigned long long)e->version, (long long)e->time);
		ml_buf_add(&h->out, data.data + 1, data.len - 1);
		ml_buf_add(&h->out, "\n", 1);
		ml_buf_free(&data);
		return 0;
	}
	char pos[32], hash[32], file[256], reason[64], when[32];
	field(e->data, e->data_len, "position", pos, sizeof(pos), NULL, NULL);
	field(e->data, e->data_len, "hash", hash, sizeof(hash), NULL, NULL);
	field(e->data, e->data_len, "file", file, sizeof(file), NULL, NULL);
	field(e->data, e->data_len, "reason", reason, sizeof(reason), NULL, NULL);
	time_t t = (time_t)(e->time / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	ml_buf_addf(&h->out, "%4llu  live from position %-10s %s  code %s  %s  %s\n",
		    (unsigned long long)e->version, pos, when, hash, file, reason);
	return 0;
}

/* Every event of the stream through the server: 0, or -1 with a diag. */
static int read_remote(struct cli_client *c, const char *stream, struct history *h)
{
	uint64_t from = 1;
	for (;;) {
		struct ml_buf p = {0};
		struct ml_msgpack_reader r;
		uint32_t n;
		ml_msgpack_put_array(&p, 4);
		ml_msgpack_put_cstr(&p, stream);
		ml_msgpack_put_uint(&p, from);
		ml_msgpack_put_uint(&p, 0);
		ml_msgpack_put_bool(&p, 0);
		int rc = cli_client_call(c, "read", &p, &r);
		ml_buf_free(&p);
		if (rc != 0 || ml_msgpack_get_array(&r, &n) != 0)
			return -1;
		for (uint32_t i = 0; i < n; i++) {
			struct ml_event e;
			if (cli_client_event(&r, &e) != 0)
				return -1;
			one_version(&e, h);
			from = e.version + 1;
		}
		if (n == 0)
			return 0;
	}
}

int cli_scripts_history(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"connect", required_argument, 0, 'c'}, {"data", required_argument, 0, 'd'},
	    {"json", no_argument, 0, 'j'},	    {"show", required_argument, 0, 's'},
	    {"help", no_argument, 0, 'h'},	    {0, 0, 0, 0},
	};
	const char *addr = NULL, *dir = "./moonlog-data";
	struct history h = {0};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			addr = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'j':
			h.json = 1;
			break;
		case 's':
			if (cli_uint("scripts history", "--show", optarg, &h.show) != 0)
				return CLI_USAGE;
			break;
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		default:
			return cli_fail("scripts history", CLI_USAGE,
					"see moonlog scripts history --help");
		}
	}
	if (optind + 1 != argc)
		return cli_fail("scripts history", CLI_USAGE,
				"needs the NAME of one script (moonlog scripts lists them)");
	char stream[300];
	snprintf(stream, sizeof(stream), "$code-%s", argv[optind]);
	struct cli_client cl;
	int rc = cli_remote_open(&cl, addr, dir);
	if (rc < 0)
		return cli_diag("scripts history");
	if (rc > 0) {
		rc = read_remote(&cl, stream, &h);
		cli_client_close(&cl);
	} else { /* no server holds the folder: read it */
		struct ml_log *log = cli_open_log("scripts history", dir, 1, ML_FSYNC_NEVER);
		if (log == NULL)
			return cli_status();
		rc = ml_log_read_stream(log, stream, strlen(stream), 0, 0, 0, one_version, &h) < 0
			 ? -1
			 : 0;
		ml_log_close(log);
	}
	if (rc != 0) {
		ml_buf_free(&h.out);
		return cli_diag("scripts history");
	}
	fwrite(h.out.data, 1, h.out.len, stdout);
	ml_buf_free(&h.out);
	if (h.count == 0)
		return cli_fail("scripts history", CLI_REFUSED,
				"%s is empty: the code history of a script starts at its first "
				"reload, and no script named %s was reloaded with this log "
				"(moonlog scripts lists the scripts)",
				stream, argv[optind]);
	if (h.show && !h.shown)
		return cli_fail("scripts history", CLI_REFUSED,
				"%s has versions 1 to %llu: there is no version %llu", stream,
				(unsigned long long)h.count, (unsigned long long)h.show);
	return CLI_OK;
}
