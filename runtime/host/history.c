/*
 * history.c - code history (issue 20, item 3): the versions of a script that
 * went live, appended to the system stream $code-NAME, so that the log says
 * which code made which state, and a past state can be folded again with the
 * code of its day (at(position, name, {history = true}) in the REPL).
 *
 * Each version is one CodeVersion event, data {name, file, kind, hash, position,
 * reason, text[, upcasters]}: `position` is where it took over (it handled the
 * events after it), `reason` why it went live (loaded, reloaded, applied after
 * a dry run, changed while stopped), `text` its file's text and `upcasters` the
 * folder's upcasters.lua it ran with.
 *
 * A script's history starts at its first swap: until then the version it was
 * loaded with is only noted (unrecorded, with the position it was loaded at),
 * so that a server that never reloads writes nothing of it to the log; the
 * first swap (reload.c's swapped: a reload, a rebuild, a dry run applied)
 * appends that version and the new one, later swaps the new one. A script
 * loaded at start or from a new file whose history is not empty is compared
 * with the last version recorded: the same hash appends nothing (a restart with
 * the same files), other code is recorded ("changed while stopped").
 *
 * The append is submitted without waiting: the loop never waits for the disk
 * here. Its id is HASH-POSITION, so the same version recorded twice at one
 * position (two nodes of a shared log) is stored once. What fails to be
 * written says so on stderr and changes nothing else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moonlog/diag.h>
#include <moonlog/msgpack.h>

#include "host/host_internal.h"

#define CODE_TYPE "CodeVersion"

struct code_append {
	struct ml_append req;
	struct ml_event_in ev;
	struct ml_buf data;
	char stream[300], id[64], name[220];
	int quiet;
};

static void code_done(struct code_append *c)
{
	if (c->req.err != ML_OK && !c->quiet)
		ml_line("moonlog serve", "script %s: its version could not be recorded in %s: %s",
			c->name, c->stream, c->req.errmsg);
	ml_buf_free(&c->data);
	free(c);
}

static void on_done(struct ml_append *req)
{
	code_done(req->arg);
}

static void put_str(struct ml_buf *b, const char *k, const char *v, size_t n)
{
	ml_msgpack_put_cstr(b, k);
	ml_msgpack_put_str(b, v, n);
}

void ml_host_history_record(struct ml_host *h, struct ml_hosted *e, struct ml_script *s,
			    const char *reason, uint64_t position)
{
	size_t len, up_len;
	const char *text = ml_script_source(s, &len);
	const char *up = ml_script_upcasters(s, &up_len);
	struct code_append *c = ml_xcalloc(1, sizeof(*c));
	snprintf(c->stream, sizeof(c->stream), "$code-%s", e->name);
	snprintf(c->name, sizeof(c->name), "%s", e->name);
	snprintf(c->id, sizeof(c->id), "%s-%llu", ml_script_hash(s), (unsigned long long)position);
	c->quiet = h->o.quiet;
	struct ml_buf *b = &c->data;
	ml_msgpack_put_map(b, up ? 8 : 7);
	put_str(b, "name", e->name, strlen(e->name));
	put_str(b, "file", e->file, strlen(e->file));
	ml_msgpack_put_cstr(b, "kind");
	ml_msgpack_put_cstr(b, ml_script_kind_name(e->kind));
	put_str(b, "hash", ml_script_hash(s), strlen(ml_script_hash(s)));
	ml_msgpack_put_cstr(b, "position");
	ml_msgpack_put_uint(b, position);
	ml_msgpack_put_cstr(b, "reason");
	ml_msgpack_put_cstr(b, reason);
	put_str(b, "text", text, len);
	if (up)
		put_str(b, "upcasters", up, up_len);
	c->ev = (struct ml_event_in){.stream = c->stream,
				     .stream_len = strlen(c->stream),
				     .type = CODE_TYPE,
				     .type_len = strlen(CODE_TYPE),
				     .id = c->id,
				     .id_len = strlen(c->id),
				     .data = b->data,
				     .data_len = b->len};
	c->req.events = &c->ev;
	c->req.n_events = 1;
	c->req.system = 1;
	c->req.done = on_done;
	c->req.arg = c;
	int rc = ml_log_submit(h->log, &c->req);
	if (rc != 0) /* refused at once (the diag says why), or stored already */
		code_done(c);
}

struct last_version {
	char hash[17];
	int found;
};

/* The hash in the data of the last CodeVersion. */
static int read_hash(const struct ml_event *ev, void *arg)
{
	struct last_version *l = arg;
	struct ml_msgpack_reader r;
	uint32_t n;
	l->found = 1;
	if (ev->data_len == 0)
		return 0;
	ml_msgpack_reader_init(&r, ev->data, ev->data_len);
	if (ml_msgpack_get_map(&r, &n) != 0)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		const char *k, *v;
		uint32_t kn, vn;
		if (ml_msgpack_get_str(&r, &k, &kn) != 0)
			return 0;
		if (kn == 4 && memcmp(k, "hash", 4) == 0 && ml_msgpack_get_str(&r, &v, &vn) == 0) {
			snprintf(l->hash, sizeof(l->hash), "%.*s", (int)vn, v);
			return 0;
		}
		if (ml_msgpack_skip_n(&r, 1) != 0)
			return 0;
	}
	return 0;
}

void ml_host_history_check(struct ml_host *h, struct ml_hosted *e, int at_start)
{
	char stream[300];
	struct last_version l = {{0}, 0};
	snprintf(stream, sizeof(stream), "$code-%s", e->name);
	if (ml_log_read_stream(h->log, stream, strlen(stream), 0, 1, 1, read_hash, &l) < 0) {
		ml_host_line(h, "script %s: cannot read %s: %s", e->name, stream, ml_diag_last());
		return;
	}
	if (!l.found) { /* no history yet: it starts with the first swap */
		e->unrecorded = 1;
		e->loaded_at = ml_log_head(h->log);
		return;
	}
	if (strcmp(l.hash, ml_script_hash(e->s)) == 0)
		return; /* the version recorded last: nothing to add */
	ml_host_line(h,
		     "script %s: its code (%s) is not the version recorded last in %s (%s): "
		     "recording it",
		     e->name, ml_script_hash(e->s), stream, l.hash);
	ml_host_history_record(h, e, e->s, at_start ? "changed while stopped" : "loaded",
			       ml_log_head(h->log));
}

void ml_host_history_swap(struct ml_host *h, struct ml_hosted *e, struct ml_script *old,
			  uint64_t position)
{
	if (e->unrecorded && old) /* the history starts: the version it replaces first */
		ml_host_history_record(h, e, old, "loaded", e->loaded_at);
	e->unrecorded = 0;
	ml_host_history_record(h, e, e->s, e->applied ? "applied" : "reloaded", position);
	e->applied = 0;
}
