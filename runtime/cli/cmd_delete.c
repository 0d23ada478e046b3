/*
 * cmd_delete.c - `moonlog delete` and `moonlog meta`: delete a stream, and read
 * or set its retention metadata (docs/operations.md, "Retention and
 * deletion"). Like `append`, through a running server (--connect, or the admin
 * socket of the server holding --data), or on the folder when none holds it;
 * either way the log builds the event (ml_log_prepare_delete, _meta).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <moonlog/codec.h>

#include "cli/cli.h"
#include "cli/client.h"

static const char delete_help[] =
    "usage: moonlog delete [--data DIR | --connect ADDR] STREAM [--hard] [--expect V]\n"
    "\n"
    "Deletes STREAM: appends a $deleted event to it, which subscribers, projections and\n"
    "handlers see. Its events before it read as removed at once; scavenging frees their\n"
    "space later. A soft delete (the default) lets the stream be written again: its\n"
    "versions go on, and reads show the $deleted event and what follows it. --hard leaves\n"
    "a tombstone: the name can never be written again. Deleting a stream that is\n"
    "already deleted the same way (and not written since) appends nothing and answers\n"
    "its deletion (exit status 0); a stream that was never written is an error (1).\n"
    "\n"
    "  --hard         a tombstone: every later append to STREAM is refused\n"
    "  --expect V     the stream's expected version: a number or exists; if the stream\n"
    "                 is not at V, nothing is deleted and the exit status is 1 (without\n"
    "                 it: the stream must exist, at any version)\n"
    "  --data DIR     the data folder (default ./moonlog-data); if a server holds it, the\n"
    "                 delete goes through its admin socket\n"
    "  --connect ADDR delete through a running server's RPC port (HOST:PORT)\n"
    "  --fsync MODE   always (default), batch or never\n"
    "  --json         print the result as JSON\n";

static const char meta_help[] =
    "usage: moonlog meta [--data DIR | --connect ADDR] STREAM [--max-age AGE] [--max-count N]\n"
    "                    [--truncate-before V] [--expect V]\n"
    "\n"
    "With no limit given, prints STREAM's retention metadata as JSON: max_age (seconds),\n"
    "max_count, truncate_before (0: none), deleted, deleted_version, hard. With limits,\n"
    "sets them (the ones not given stay as they are) as a $metadata event of the stream\n"
    "$meta-STREAM; reads leave out what they remove at once, scavenging frees the space.\n"
    "\n"
    "  --max-age AGE         remove the events older than AGE: seconds, or a number with a\n"
    "                        unit: 90s, 15m, 12h, 30d (0: no limit)\n"
    "  --max-count N         keep only the last N events of the stream (0: no limit)\n"
    "  --truncate-before V   remove the versions before V (0: none)\n"
    "  --expect V            the expected version of $meta-STREAM (any, no_stream, a number)\n"
    "  --data DIR, --connect ADDR, --fsync MODE, --json   as for moonlog delete\n";

struct args {
	const char *cmd, *dir, *connect, *stream;
	int64_t expect;
	enum ml_fsync fsync;
	int json, hard;
	struct ml_buf limits; /* meta: a msgpack map of the limits given, after a map32 head */
	uint32_t nlimits;
};

/* AGE: seconds, or a number with s, m, h or d. */
static int parse_age(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long n = strtoull(s, &end, 10);
	uint64_t unit = *end == 0 || !strcmp(end, "s") ? 1
			: !strcmp(end, "m")	       ? 60
			: !strcmp(end, "h")	       ? 3600
			: !strcmp(end, "d")	       ? 86400
						       : 0;
	if (end == s || s[0] == '-' || unit == 0 || n > (uint64_t)INT64_MAX / 1000 / unit)
		return cli_fail("meta", CLI_USAGE,
				"--max-age takes seconds or a number with a unit (90s, 15m, 12h, "
				"30d), not '%s'",
				s);
	*out = n * unit;
	return 0;
}

static int add_limit(struct args *a, const char *key, const char *opt, const char *v)
{
	uint64_t n;
	if (strcmp(key, "max_age") == 0 ? parse_age(v, &n) != 0 : cli_uint("meta", opt, v, &n) != 0)
		return CLI_USAGE;
	ml_msgpack_put_cstr(&a->limits, key);
	ml_msgpack_put_uint(&a->limits, n);
	a->nlimits++;
	return 0;
}

static int parse(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
	    {"data", required_argument, 0, 'd'},
	    {"connect", required_argument, 0, 'c'},
	    {"expect", required_argument, 0, 'e'},
	    {"fsync", required_argument, 0, 'f'},
	    {"json", no_argument, 0, 'j'},
	    {"hard", no_argument, 0, 'H'},
	    {"max-age", required_argument, 0, 'a'},
	    {"max-count", required_argument, 0, 'n'},
	    {"truncate-before", required_argument, 0, 't'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	int meta = strcmp(a->cmd, "meta") == 0, c;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1 || optind < argc) {
		if (c == -1) {
			if (a->stream)
				return cli_fail(a->cmd, CLI_USAGE,
						"too many arguments ('%s'); see moonlog %s --help",
						argv[optind], a->cmd);
			a->stream = argv[optind++];
			continue;
		}
		int rc = 0;
		if (c == 'd')
			a->dir = optarg;
		else if (c == 'c')
			a->connect = optarg;
		else if (c == 'e')
			rc = ml_expect_parse(optarg, &a->expect) != 0 ? cli_diag(a->cmd) : 0;
		else if (c == 'f')
			rc = ml_fsync_parse(optarg, &a->fsync) != 0 ? cli_diag(a->cmd) : 0;
		else if (c == 'j')
			a->json = 1;
		else if (c == 'H' && !meta)
			a->hard = 1;
		else if (c == 'a' && meta)
			rc = add_limit(a, "max_age", "--max-age", optarg);
		else if (c == 'n' && meta)
			rc = add_limit(a, "max_count", "--max-count", optarg);
		else if (c == 't' && meta)
			rc = add_limit(a, "truncate_before", "--truncate-before", optarg);
		else if (c == 'h')
			return fputs(meta ? meta_help : delete_help, stdout), -1;
		else
			return cli_fail(a->cmd, CLI_USAGE, "see moonlog %s --help", a->cmd);
		if (rc != 0)
			return rc;
	}
	if (!a->stream)
		return cli_fail(a->cmd, CLI_USAGE, "needs a STREAM, e.g. moonlog %s account-1%s",
				a->cmd, meta ? " --max-count 100" : "");
	return 0;
}

/* The limits as one msgpack map (a map 32 head before the pairs). */
static void limits_map(const struct args *a, struct ml_buf *out)
{
	ml_msgpack_done(out, ml_msgpack_write_tagged(ml_msgpack_room(out, 5), 0xdf, a->nlimits, 4));
	ml_buf_add(out, a->limits.data, a->limits.len);
}

static void put_expect(struct ml_buf *p, int64_t expect)
{
	if (expect == ML_EXPECT_ANY)
		ml_msgpack_put_nil(p);
	else if (expect == ML_EXPECT_EXISTS)
		ml_msgpack_put_cstr(p, "exists");
	else
		ml_msgpack_put_int(p, expect);
}

/* What a delete or a metadata change did, in a line or as JSON. */
static void report(const struct args *a, const char *stream, uint64_t position, uint64_t version,
		   int dup)
{
	if (a->json) {
		struct ml_buf out = {0};
		ml_buf_add(&out, "{\"stream\":", 10);
		ml_json_string(&out, stream, strlen(stream));
		ml_buf_addf(&out,
			    ",\"position\":%" PRIu64 ",\"version\":%" PRIu64 ",\"duplicate\":%s}\n",
			    position, version, dup ? "true" : "false");
		fwrite(out.data, 1, out.len, stdout);
		ml_buf_free(&out);
	} else if (strcmp(a->cmd, "delete") == 0) {
		printf("%s %s%s: its $deleted event is version %" PRIu64 ", at position %" PRIu64
		       "\n",
		       dup ? "already deleted" : "deleted", stream,
		       a->hard ? " for good (a tombstone)" : "", version, position);
	} else {
		printf("set the metadata of %s: %s%s@%" PRIu64 " at position %" PRIu64 "\n", stream,
		       ML_META_PREFIX, stream, version, position);
	}
}

/* Through a server: the exit status, or -1 when none holds the folder. */
static int remote(const struct args *a)
{
	struct cli_client c;
	int rc = cli_remote_open(&c, a->connect, a->dir);
	if (rc <= 0)
		return rc < 0 ? cli_diag(a->cmd) : -1;
	struct ml_buf p = {0};
	struct ml_msgpack_reader r;
	int del = strcmp(a->cmd, "delete") == 0, show = !del && a->nlimits == 0;
	ml_msgpack_put_array(&p, show ? 1 : 3);
	ml_msgpack_put_cstr(&p, a->stream);
	if (del) {
		put_expect(&p, a->expect);
		ml_msgpack_put_bool(&p, a->hard);
	} else if (!show) {
		limits_map(a, &p);
		put_expect(&p, a->expect);
	}
	rc = cli_client_call(&c, del ? "delete" : show ? "metadata" : "set_metadata", &p, &r);
	ml_buf_free(&p);
	if (rc != 0) {
		rc = cli_diag(a->cmd);
	} else if (show) {
		struct ml_buf json = {0};
		ml_msgpack_to_json(r.p, ml_msgpack_left(&r), &json);
		printf("%.*s\n", (int)json.len, json.data);
		ml_buf_free(&json);
	} else {
		uint64_t pos = 0, ver = 0;
		int dup = 0;
		cli_append_result(&r, &pos, &ver, &dup);
		report(a, a->stream, pos, ver, dup);
	}
	cli_client_close(&c);
	return rc;
}

/* On the folder itself, no server holding it. */
static int local(const struct args *a)
{
	int del = strcmp(a->cmd, "delete") == 0, show = !del && a->nlimits == 0, rc = CLI_OK;
	struct ml_log *log = cli_open_log(a->cmd, a->dir, show, a->fsync);
	if (log == NULL)
		return cli_status();
	struct ml_buf map = {0};
	struct ml_retention_append ra;
	size_t slen = strlen(a->stream);
	if (show) {
		struct ml_buf json = {0};
		ml_log_stream_meta_put(log, a->stream, slen, &map);
		ml_msgpack_to_json(map.data, map.len, &json);
		printf("%.*s\n", (int)json.len, json.data);
		ml_buf_free(&json);
	} else {
		if (!del)
			limits_map(a, &map);
		int done =
		    del ? ml_log_prepare_delete(log, &ra, a->stream, slen, a->expect, a->hard)
			: ml_log_prepare_meta(log, &ra, a->stream, slen, map.data, map.len,
					      a->expect);
		if (done < 0 || (done == 0 && ml_log_append(log, &ra.req) != 0))
			rc = cli_diag(a->cmd);
		else
			report(a, a->stream, ra.req.first_position, ra.version, ra.req.duplicate);
	}
	ml_buf_free(&map);
	ml_log_close(log);
	return rc;
}

static int run(const char *cmd, int argc, char **argv)
{
	struct args a = {.cmd = cmd, .dir = "./moonlog-data", .expect = ML_EXPECT_ANY};
	int rc = parse(argc, argv, &a);
	if (rc == 0 && (rc = remote(&a)) < 0)
		rc = local(&a);
	ml_buf_free(&a.limits);
	return rc < 0 ? CLI_OK : rc;
}

int cmd_delete(int argc, char **argv)
{
	return run("delete", argc, argv);
}

int cmd_meta(int argc, char **argv)
{
	return run("meta", argc, argv);
}
