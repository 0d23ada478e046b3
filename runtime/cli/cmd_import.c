/*
 * cmd_import.c - `moonlog import`: appends the events of a JSON Lines export
 * (cmd_export.c) to a log, in order, keeping their ids, times and bytes.
 *
 * A file is read twice: once to check every line, so that a broken line is
 * reported before anything is written, then to append. Events that share a
 * time are appended together, up to IMPORT_BATCH of them, since a batch has one
 * time; with --fsync always each batch is on disk when the next starts. stdin
 * cannot be read twice: its lines are checked as they are appended, and a bad
 * one stops the import with what was imported before it.
 *
 * Positions are not copied but given by the target log, after its head: into
 * an empty log, an export from its first position gets the same positions
 * back; into a log that holds events, they follow those (renumbered), and the
 * summary says so. Versions likewise continue the target's streams.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <moonlog/codec.h>
#include <moonlog/msgpack.h>

#include "cli/cli.h"

#define IMPORT_BATCH 1000	/* events in one append at most */
#define IMPORT_BYTES (4u << 20) /* data and meta in one append at most, roughly */

static const char help[] =
    "usage: moonlog import [--data DIR] FILE|-\n"
    "\n"
    "Appends the events of a JSON Lines export (moonlog export) to the log in DIR, in\n"
    "order, keeping each event's stream, type, id, time, data and meta (data_msgpack and\n"
    "meta_msgpack, when a line has them, give the exact bytes). The log gives the\n"
    "positions and versions: into an empty log, an export that starts at position 1 gets\n"
    "the same positions and versions back; into a log that holds events they follow its\n"
    "head, and the summary says they were renumbered. An event whose id its stream\n"
    "already holds is not written again (it is counted as already there).\n"
    "\n"
    "A FILE is checked whole before anything is written: a broken line or a missing field\n"
    "is reported with its line number and nothing is imported. From stdin (-) lines are\n"
    "checked as they come, and an error says which lines were imported before it.\n"
    "Import writes to the folder itself: stop a server that holds it first.\n"
    "\n"
    "  --data DIR   the data folder to import into (default ./moonlog-data; created if\n"
    "               missing)\n";

/* One line of the export, decoded: its msgpack form and the event pointing into it. */
struct row {
	struct ml_buf mp, data, meta; /* the line as msgpack; exact bytes from base64 */
	int exact_data, exact_meta;   /* data_msgpack, meta_msgpack given */
	struct ml_event_in ev;
	int64_t time;
	uint64_t position;
	uint64_t line;
};

enum {
	F_POSITION = 1,
	F_STREAM = 2,
	F_VERSION = 4,
	F_TYPE = 8,
	F_ID = 16,
	F_TIME = 32,
	F_DATA = 64,
	F_META = 128,
	F_ALL = 255
};
static const char *const field_names[] = {"position", "stream", "version", "type",
					  "id",	      "time",	"data",	   "meta"};

/* Puts a prefix before the current diag's message (a copy: the diag is rewritten). -1. */
static int __attribute__((format(printf, 1, 2))) diag_prefix(const char *fmt, ...)
{
	char prefix[128], last[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	snprintf(last, sizeof(last), "%s", ml_diag_last());
	return ml_diag_set(ml_diag_code(), "%s%s", prefix, last);
}

/* The field of one key of the line's map into r; *have gets its bit. 0 or -1 (diag). */
static int read_field(struct ml_msgpack_reader *rd, const char *k, uint32_t kl, struct row *r,
		      unsigned *have, const uint8_t **data, size_t *data_len, const uint8_t **meta,
		      size_t *meta_len)
{
#define KEY(name) (kl == sizeof(name) - 1 && memcmp(k, name, kl) == 0)
	const char *s;
	uint32_t sl;
	uint64_t u;
	int bad = 0;
	if (KEY("position"))
		bad = ml_msgpack_get_uint(rd, &r->position), *have |= F_POSITION;
	else if (KEY("version"))
		bad = ml_msgpack_get_uint(rd, &u), *have |= F_VERSION;
	else if (KEY("time"))
		bad = ml_msgpack_get_int(rd, &r->time), *have |= F_TIME;
	else if (KEY("stream") || KEY("type") || KEY("id")) {
		bad = ml_msgpack_get_str(rd, &s, &sl);
		if (KEY("stream"))
			r->ev.stream = s, r->ev.stream_len = sl, *have |= F_STREAM;
		else if (KEY("type"))
			r->ev.type = s, r->ev.type_len = sl, *have |= F_TYPE;
		else
			r->ev.id = s, r->ev.id_len = sl, *have |= F_ID;
	} else if (KEY("data_msgpack") || KEY("meta_msgpack")) {
		int d = KEY("data_msgpack");
		if (ml_msgpack_get_str(rd, &s, &sl) != 0)
			return ml_diag_set(ML_ERR_USAGE, "%.*s is not a string of base64", (int)kl,
					   k);
		struct ml_buf *b = d ? &r->data : &r->meta;
		*(d ? &r->exact_data : &r->exact_meta) = 1;
		if (ml_codec_unbase64(b, s, sl) != 0)
			return diag_prefix("%.*s: ", (int)kl, k);
	} else if (KEY("data"))
		bad = ml_msgpack_skip(rd, data, data_len), *have |= F_DATA;
	else if (KEY("meta"))
		bad = ml_msgpack_skip(rd, meta, meta_len), *have |= F_META;
	else
		bad = ml_msgpack_skip(rd, NULL, NULL); /* a field of a later export: not ours */
	if (bad)
		return ml_diag_set(ML_ERR_USAGE, "the field \"%.*s\" is not %s", (int)kl, k,
				   KEY("position") || KEY("version") ? "a non-negative integer"
				   : KEY("time") ? "an integer (ms since the epoch)"
						 : "a string");
#undef KEY
	return 0;
}

/* A missing field, or -1 with a diag naming the first one missing. */
static int check_fields(unsigned have)
{
	for (unsigned i = 0; i < 8; i++)
		if (!(have & (1u << i)))
			return ml_diag_set(
			    ML_ERR_USAGE,
			    "the event has no \"%s\"; a line of an export holds "
			    "position, stream, version, type, id, time, data and meta",
			    field_names[i]);
	return 0;
}

/* data or meta: the exact bytes if the line gave them, else the JSON's (null: none). */
static void pick(int given, struct ml_buf *exact, const uint8_t *json, size_t json_len,
		 const void **p, size_t *n)
{
	if (given) {
		*p = exact->data, *n = exact->len;
		return;
	}
	int nil = json_len == 1 && json[0] == 0xc0;
	*p = nil ? NULL : json, *n = nil ? 0 : json_len;
}

/* Decodes one line into r. 0, or -1 with a diag saying what is wrong with it. */
static int parse_row(const char *text, size_t n, struct row *r)
{
	r->mp.len = r->data.len = r->meta.len = 0;
	r->exact_data = r->exact_meta = 0;
	r->ev = (struct ml_event_in){0};
	if (ml_json_to_msgpack(text, n, &r->mp) != 0)
		return -1;
	struct ml_msgpack_reader rd;
	ml_msgpack_reader_init(&rd, r->mp.data, r->mp.len);
	uint32_t keys, kl;
	const char *k;
	if (ml_msgpack_get_map(&rd, &keys) != 0)
		return ml_diag_set(ML_ERR_USAGE, "the line is not a JSON object");
	unsigned have = 0;
	const uint8_t *data = NULL, *meta = NULL;
	size_t data_len = 0, meta_len = 0;
	for (uint32_t i = 0; i < keys; i++) {
		if (ml_msgpack_get_str(&rd, &k, &kl) != 0 ||
		    read_field(&rd, k, kl, r, &have, &data, &data_len, &meta, &meta_len) != 0)
			return -1;
	}
	if (check_fields(have) != 0)
		return -1;
	pick(r->exact_data, &r->data, data, data_len, &r->ev.data, &r->ev.data_len);
	pick(r->exact_meta, &r->meta, meta, meta_len, &r->ev.meta, &r->ev.meta_len);
	if (r->ev.data_len && ml_msgpack_check_value(r->ev.data, r->ev.data_len, "data") != 0)
		return -1;
	if (r->ev.meta_len && (ml_msgpack_check_value(r->ev.meta, r->ev.meta_len, "meta") != 0 ||
			       !ml_msgpack_is_map(r->ev.meta, r->ev.meta_len)))
		return ml_diag_code() == ML_OK ? ml_diag_set(ML_ERR_USAGE, "meta is not an object")
					       : -1;
	return 0;
}

struct import {
	const char *path;
	FILE *in;
	struct ml_log *log;
	struct row rows[IMPORT_BATCH]; /* the batch waiting: n of them */
	struct row next;	       /* the line just read */
	struct ml_event_in evs[IMPORT_BATCH];
	size_t n, bytes;
	uint64_t events, dups, first_pos, last_pos, first_export, last_export, prev_export;
	uint64_t first_line; /* of the rows waiting */
};

/* Appends the rows waiting as one batch. 0, or -1 with a diag. */
static int flush_rows(struct import *im)
{
	if (im->n == 0)
		return 0;
	for (size_t i = 0; i < im->n; i++)
		im->evs[i] = im->rows[i].ev;
	struct ml_append req = {.events = im->evs, .n_events = im->n, .system = 1};
	if (ml_log_append_at(im->log, &req, im->rows[0].time) != 0)
		return diag_prefix("lines %" PRIu64 " to %" PRIu64 ": ", im->rows[0].line,
				   im->rows[im->n - 1].line);
	if (req.duplicate)
		im->dups += im->n;
	else {
		if (im->events == 0)
			im->first_pos = req.first_position;
		im->events += im->n;
		im->last_pos = req.last_position;
	}
	im->n = im->bytes = 0;
	return 0;
}

/*
 * One pass over the input: checks each line and, with a log, appends them. Returns 0,
 * or -1 with *bad_line set and a diag.
 */
static int pass(struct import *im, uint64_t *bad_line)
{
	char *text = NULL;
	size_t cap = 0;
	ssize_t len;
	uint64_t line = 0;
	int rc = 0;
	im->prev_export = 0;
	while ((len = getline(&text, &cap, im->in)) > 0) {
		line++;
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
			len--;
		if (len == 0)
			continue;
		struct row *r = &im->next;
		if (parse_row(text, (size_t)len, r) != 0 ||
		    (r->position <= im->prev_export &&
		     ml_diag_set(ML_ERR_USAGE,
				 "position %" PRIu64 " comes after position %" PRIu64
				 "; an export lists events in the log's order",
				 r->position, im->prev_export) != 0)) {
			*bad_line = line;
			rc = -1;
			break;
		}
		r->line = line;
		if (im->prev_export == 0)
			im->first_export = r->position;
		im->prev_export = im->last_export = r->position;
		if (!im->log)
			continue;
		/* a batch has one time: a line of another time, or a full batch, sends the
		 * waiting ones first */
		if (im->n > 0 &&
		    (r->time != im->rows[0].time || im->n == IMPORT_BATCH ||
		     im->bytes > IMPORT_BYTES) &&
		    flush_rows(im) != 0) {
			*bad_line = 0;
			rc = -1;
			break;
		}
		/* swapped, not copied: the row's buffers (and ev's pointers into them) move
		 * to the batch, and the batch's spare buffers serve the next line */
		struct row spare = im->rows[im->n];
		im->rows[im->n] = *r;
		*r = spare;
		im->bytes += im->rows[im->n].ev.data_len + im->rows[im->n].ev.meta_len;
		im->n++;
	}
	if (rc == 0 && ferror(im->in))
		rc = ml_diag_set(ML_ERR_IO, "cannot read %s: %s", im->path, strerror(errno)),
		*bad_line = 0;
	if (rc == 0 && im->log && flush_rows(im) != 0)
		rc = -1, *bad_line = 0;
	free(text);
	return rc;
}

static void free_rows(struct import *im)
{
	for (size_t i = 0; i <= IMPORT_BATCH; i++) {
		struct row *r = i < IMPORT_BATCH ? &im->rows[i] : &im->next;
		ml_buf_free(&r->mp);
		ml_buf_free(&r->data);
		ml_buf_free(&r->meta);
	}
}

/* The error of a failed import, with what was written before it. */
static int import_failed(struct import *im, uint64_t bad_line, int checked_first)
{
	char where[64] = "";
	if (bad_line)
		snprintf(where, sizeof(where), "line %" PRIu64 " of %s: ", bad_line, im->path);
	if (im->events == 0)
		return cli_fail("import", CLI_REFUSED, "%s%s; nothing was imported%s", where,
				ml_diag_last(),
				checked_first ? "" : " (fix the input and import it again)");
	return cli_fail("import", CLI_REFUSED,
			"%s%s; %" PRIu64 " events were imported before it (positions %" PRIu64
			" to %" PRIu64 ", the lines before line %" PRIu64
			"): import the rest from there",
			where, ml_diag_last(), im->events, im->first_pos, im->last_pos,
			bad_line ? bad_line : im->rows[0].line);
}

static void report(const struct import *im)
{
	fprintf(stderr, "moonlog import: %" PRIu64 " events from %s", im->events, im->path);
	if (im->events)
		fprintf(stderr, " at positions %" PRIu64 " to %" PRIu64 "%s", im->first_pos,
			im->last_pos,
			im->first_pos == im->first_export ? " (as in the export)"
							  : " (renumbered: the log held events)");
	if (im->dups)
		fprintf(stderr, "; %" PRIu64 " were already in the log (same id, same stream)",
			im->dups);
	fputc('\n', stderr);
}

int cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"data", required_argument, 0, 'd'},
	    {"help", no_argument, 0, 'h'},
	    {0, 0, 0, 0},
	};
	const char *dir = "./moonlog-data";
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'h':
			fputs(help, stdout);
			return CLI_OK;
		default:
			return cli_fail("import", CLI_USAGE, "see moonlog import --help");
		}
	}
	if (optind + 1 != argc)
		return cli_fail("import", CLI_USAGE, "needs one FILE to import, or - for stdin");
	struct import *im = ml_xcalloc(1, sizeof(*im));
	im->path = argv[optind];
	int is_stdin = strcmp(im->path, "-") == 0;
	im->in = is_stdin ? stdin : fopen(im->path, "r");
	if (im->in == NULL) {
		int rc = cli_fail("import", CLI_REFUSED, "cannot open %s: %s", im->path,
				  strerror(errno));
		free(im);
		return rc;
	}
	struct stat st;
	int twice = !is_stdin && fstat(fileno(im->in), &st) == 0 && S_ISREG(st.st_mode);
	uint64_t bad = 0;
	int rc = CLI_OK;
	if (twice && pass(im, &bad) != 0)
		rc = import_failed(im, bad, 1);
	else if (twice)
		rewind(im->in);
	if (rc == CLI_OK && (im->log = cli_open_log("import", dir, 0, ML_FSYNC_ALWAYS)) == NULL)
		rc = cli_status();
	if (rc == CLI_OK && pass(im, &bad) != 0)
		rc = import_failed(im, bad, twice);
	ml_log_close(im->log);
	if (rc == CLI_OK)
		report(im);
	if (!is_stdin)
		fclose(im->in);
	free_rows(im);
	free(im);
	return rc;
}
