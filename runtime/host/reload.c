/*
 * reload.c - hot reload: a script's file changed (or was asked to reload), so
 * its new version is staged beside the old one, validated, and swapped in
 * between two events; a bad version never replaces a running one.
 *
 * Stage and validate: the file is loaded into a fresh lua_State
 * (ml_script_load compiles it, checks the definition with the DSL and runs a
 * projection's init). If that fails, the old version runs on untouched, and
 * the error (file:line: message) is kept as the entry's reload_error, shown
 * by scripts() and GET /scripts and written to stderr. Same code (the same
 * hash) is no change.
 *
 * Swap. Everything here runs on the loop thread, which is also the one that
 * feeds scripts, so a swap always falls between two feeds: the position the
 * old version reached is where the new one goes on, and no event is skipped
 * or handled twice. Per kind:
 *  - handler: the new version waits in `pending` until no batch is in flight
 *    (the batch's bytes belong to the old lua_State), then takes the old one's
 *    place and continues from its position; its checkpoints carry its hash;
 *  - decider: swapped at once (its state cache goes with the old script);
 *  - projection, reducer with reload = "rebuild" (the default): the new
 *    version is fed the log from 0 (or its own snapshot) in slices beside the
 *    old one, which keeps answering; when both stand at the same head they
 *    swap, and the old one is freed;
 *  - reload = "keep": the new version takes the old state through its
 *    migrate_state(old) (ml_script_adopt_state) and the old position, at once.
 * A changed `name` or kind is another script: the old one is unloaded, the
 * new one starts like a new file. A deleted file unloads its script after a
 * last checkpoint or snapshot, which a restored file resumes from.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <moonlog/diag.h>

#include "host/host_internal.h"
#include <moonlog/msgpack.h>

/* ---- outcomes: {name, file, outcome[, error]} ---- */

static void outcome(struct ml_buf *out, const char *name, const char *file, const char *what,
		    const char *error)
{
	if (out == NULL)
		return;
	ml_msgpack_put_map(out, error ? 4 : 3);
	ml_msgpack_put_cstr(out, "name");
	ml_msgpack_put_cstr(out, name);
	ml_msgpack_put_cstr(out, "file");
	ml_msgpack_put_cstr(out, file);
	ml_msgpack_put_cstr(out, "outcome");
	ml_msgpack_put_cstr(out, what);
	if (error) {
		ml_msgpack_put_cstr(out, "error");
		ml_msgpack_put_cstr(out, error);
	}
}

static void set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = s ? ml_xstrndup(s, strlen(s)) : NULL;
}

void ml_hosted_free_reload(struct ml_hosted *e)
{
	ml_script_free(e->pending);
	ml_script_free(e->next);
	free(e->reload_error);
	e->pending = e->next = NULL;
	e->reload_error = NULL;
}

/* ---- the new version did not load ---- */

static int failed(struct ml_host *h, struct ml_hosted *e, const char *file, const char *why,
		  struct ml_buf *out)
{
	char *msg = ml_xstrndup(why, strlen(why));
	if (e == NULL) {
		ml_host_line(h, "script %s did not load: %s", file, msg);
		e = ml_host_add(h, file, NULL, msg);
	} else if (e->s == NULL) {
		ml_host_line(h, "script %s did not load: %s", file, msg);
		set_str(&e->error, msg);
	} else {
		ml_host_line(h,
			     "script %s: the new version in %s did not load, the old one keeps "
			     "running: %s",
			     e->name, file, msg);
		set_str(&e->reload_error, msg);
	}
	outcome(out, e->name, file, "failed", msg);
	ml_diag_set(ML_ERR_SCRIPT, "%s", msg);
	free(msg);
	return -1;
}

/* ---- unloading ---- */

static void unload(struct ml_host *h, struct ml_hosted *e, const char *why)
{
	if (e->s)
		ml_host_line(h, "script %s unloaded: %s (its checkpoint or snapshot stays)",
			     e->name, why);
	e->removed = 1;
	ml_host_settle(h, e, 0);
	if (!e->inflight)
		ml_host_remove(h, e);
}

int ml_host_reload_swaps(struct ml_host *h)
{
	int waiting = 0;
	for (size_t i = 0; i < h->n; i++) {
		struct ml_hosted *e = h->v[i];
		if (!e->removed)
			continue;
		ml_host_settle(h, e, 0);
		if (e->inflight) {
			waiting = 1;
			continue;
		}
		ml_host_remove(h, e);
		i--;
	}
	return waiting;
}

/* ---- swapping ---- */

static void swapped(struct ml_host *h, struct ml_hosted *e, struct ml_script *old, uint64_t t0)
{
	/* where it took over: a decider is not fed, so the head */
	ml_host_history_swap(h, e, old,
			     e->kind == ML_SCRIPT_DECIDER ? ml_log_head(h->log) : e->pos);
	ml_script_free(old);
	free(e->error); /* the host's fault of the old version (an append refused) */
	e->error = NULL;
	e->poison = 0; /* a fault recorded for older code (or for this code, tried again) */
	ml_script_fault_forget(h->data_dir, e->name);
	set_str(&e->reload_error, NULL);
	e->reloads++;
	h->swap_ns_last = ml_clock_ns() - t0;

	ml_host_line(h, "script %s reloaded (code %s), at position %llu", e->name,
		     ml_script_hash(e->s), (unsigned long long)e->pos);
}

void ml_host_swap_pending(struct ml_host *h, struct ml_hosted *e)
{
	uint64_t t0 = ml_clock_ns();
	struct ml_script *old = e->s;
	e->s = e->pending;
	e->pending = NULL;
	swapped(h, e, old, t0);
}

static void swap_rebuilt(struct ml_host *h, struct ml_hosted *e)
{
	uint64_t t0 = ml_clock_ns();
	struct ml_script *old = e->s;
	ml_host_line(h, "script %s: its new version caught up with %llu events in %llu ms", e->name,
		     (unsigned long long)e->next_pos,
		     (unsigned long long)(ml_host_now_ms() - e->next_ms));
	e->s = e->next;
	e->next = NULL;
	e->pos = e->next_pos;
	e->saved = 0; /* no snapshot of this code yet */
	e->saved_ms = ml_host_now_ms();
	e->caught_up = 1;
	swapped(h, e, old, t0);
}

/* A long rebuild says how far it is every PROGRESS_MS, with its rate. */
#define PROGRESS_MS 5000
static void say_progress(struct ml_host *h, struct ml_hosted *e, uint64_t head)
{
	uint64_t now = ml_host_now_ms();
	if (e->next_pos >= head || now - e->next_ms < PROGRESS_MS ||
	    now - e->progress_ms < PROGRESS_MS)
		return;
	e->progress_ms = now;
	double s = (double)(now - e->next_ms) / 1000.0;
	ml_host_line(h,
		     "script %s: rebuilding its new version: at position %llu of %llu (%llu%%), "
		     "%.0f events/s; the old version serves meanwhile",
		     e->name, (unsigned long long)e->next_pos, (unsigned long long)head,
		     (unsigned long long)(e->next_pos * 100 / head), (double)e->next_pos / s);
}

int ml_host_reload_rebuilds(struct ml_host *h, uint64_t head, uint64_t deadline, uint32_t budget)
{
	int more = 0;
	for (size_t i = 0; i < h->n; i++) {
		struct ml_hosted *e = h->v[i];
		if (e->next == NULL || e->removed)
			continue;
		/* The deadline is checked before each script, not only inside its slice: one
		 * event that ran to a script's time limit is all one step may hold the loop. */
		if (e->next_pos < head && budget > 0 && ml_clock_ns() < deadline)
			budget -= ml_host_feed_script(h, e, e->next, &e->next_pos, head, deadline,
						      budget);
		say_progress(h, e, head);
		const char *fault = ml_script_fault(e->next);
		if (fault) {
			ml_host_line(h,
				     "script %s: the new version faulted while rebuilding, the "
				     "old one keeps running: %s",
				     e->name, fault);
			set_str(&e->reload_error, fault);
			ml_script_free(e->next);
			e->next = NULL;
			continue;
		}
		int old_stuck = e->error || ml_script_fault(e->s);
		if (e->next_pos >= head && (e->pos >= head || old_stuck))
			swap_rebuilt(h, e);
		else
			more = 1;
	}
	return more;
}

/* ---- staging a new version ---- */

static int faulted(const struct ml_hosted *e)
{
	return e->error || ml_script_fault(e->s);
}

static void stage_rebuild(struct ml_host *h, struct ml_hosted *e, struct ml_script *s)
{
	ml_script_free(e->next);
	e->next = s;
	e->next_pos = 0;
	e->next_ms = ml_host_now_ms();
	if (ml_script_snapshot_load(s, h->data_dir) == 1) /* this very code was seen before */
		e->next_pos = ml_script_position(s);
	ml_host_line(h, "script %s: rebuilding its new version from position %llu", e->name,
		     (unsigned long long)e->next_pos);
}

/* A new version of the same script (same name and kind) in e's place. */
static int stage(struct ml_host *h, struct ml_hosted *e, struct ml_script *s, struct ml_buf *out)
{
	const char *what = "reloaded";
	if (e->kind == ML_SCRIPT_HANDLER || e->kind == ML_SCRIPT_DECIDER) {
		ml_script_free(e->pending);
		e->pending = s;
		if (!e->inflight)
			ml_host_swap_pending(h, e);
	} else if (ml_script_reload_keep(s) && !faulted(e)) {
		if (ml_script_adopt_state(s, e->s) != 0) {
			char *why = ml_xstrndup(ml_diag_last(), strlen(ml_diag_last()));
			ml_script_free(s);
			int rc = failed(h, e, e->file, why, out);
			free(why);
			return rc;
		}
		uint64_t t0 = ml_clock_ns();
		struct ml_script *old = e->s;
		e->s = s;
		ml_script_free(e->next); /* a rebuild of an older version is moot */
		e->next = NULL;
		swapped(h, e, old, t0);
	} else {
		stage_rebuild(h, e, s);
		set_str(&e->reload_error, NULL);
		what = "rebuilding";
	}
	outcome(out, e->name, e->file, what, NULL);
	return 0;
}

/* Is s the code e already runs (or is about to)? */
static int unchanged(const struct ml_hosted *e, const struct ml_script *s)
{
	const char *hash = ml_script_hash(s);
	if (e->next)
		return strcmp(ml_script_hash(e->next), hash) == 0;
	if (e->pending)
		return strcmp(ml_script_hash(e->pending), hash) == 0;
	return !faulted(e) && strcmp(ml_script_hash(e->s), hash) == 0;
}

/* A script new to the host (a new file, or a name or kind that changed). */
static int add_new(struct ml_host *h, const char *file, struct ml_script *s, struct ml_buf *out)
{
	const char *name = ml_script_name(s);
	struct ml_hosted *other = ml_host_by_name(h, name, strlen(name));
	if (other && other->s && strcmp(other->file, file) != 0) {
		char why[600];
		snprintf(why, sizeof(why), "%s: the name \"%s\" is taken by %s: rename one", file,
			 name, other->file);
		ml_script_free(s);
		return failed(h, ml_host_by_file(h, file), file, why, out);
	}
	struct ml_hosted *e = ml_host_by_file(h, file);
	if (e)
		unload(h, e, "its file now holds another script");
	e = ml_host_add(h, file, s, NULL);
	ml_host_restore(h, e);
	ml_host_history_check(h, e, 0);
	ml_host_line(h, "script %s (%s) loaded from %s", e->name, ml_script_kind_name(e->kind),
		     file);
	outcome(out, e->name, file, "loaded", NULL);
	return 0;
}

int ml_host_reload_file(struct ml_host *h, const char *file, struct ml_buf *out)
{
	if (ml_host_is_upcasters(file)) /* not a script: every script, with it */
		return ml_host_upcasters_reload(h, out);
	char path[4096];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", h->scripts_dir, file);
	struct ml_hosted *e = ml_host_by_file(h, file);
	if (stat(path, &st) != 0 && errno == ENOENT) {
		if (e == NULL)
			return ml_diag_set(ML_ERR_NOT_FOUND, "no script file %s", path);
		outcome(out, e->name, file, "unloaded", NULL);
		unload(h, e, "its file is gone");
		return 0;
	}
	struct ml_script *s = ml_script_load(path, &h->o.script);
	if (s == NULL)
		return failed(h, e, file, ml_diag_last(), out);
	if (e == NULL || e->s == NULL || strcmp(e->name, ml_script_name(s)) != 0 ||
	    e->kind != ml_script_kind(s))
		return add_new(h, file, s, out);
	if (unchanged(e, s)) {
		ml_script_free(s);
		set_str(&e->reload_error, NULL);
		outcome(out, e->name, file, "unchanged", NULL);
		return 0;
	}
	return stage(h, e, s, out);
}

int ml_host_reload(struct ml_host *h, const char *name, size_t len, struct ml_buf *out)
{
	if (name == NULL)
		return ml_host_rescan(h, out);
	struct ml_hosted *e = ml_host_by_name(h, name, len);
	char file[512];
	if (e) {
		snprintf(file, sizeof(file), "%s", e->file); /* e may go while reloading */
	} else if (len > 4 && len < sizeof(file) && memcmp(name + len - 4, ".lua", 4) == 0 &&
		   !memchr(name, '/', len) && name[0] != '.') {
		snprintf(file, sizeof(file), "%.*s", (int)len, name);
	} else {
		return ml_diag_set(ML_ERR_NOT_FOUND,
				   "no script named \"%.*s\" (reload takes a loaded script's name, "
				   "or a file of the scripts folder: name.lua)",
				   (int)(len > 100 ? 100 : len), name);
	}
	return ml_host_reload_file(h, file, out);
}
