/*
 * dryrun.c - a dry run of a reload: a new version of a hosted script (a
 * candidate, from a file being edited outside the scripts folder, or the
 * script's own file when the server reloads only when asked) is built beside
 * the live one and compared with it, without swapping it in and without
 * writing anything to the log.
 *
 *  - A projection or reducer: the candidate folds the whole log from 0, in
 *    slices fed by the host's step after the live scripts and the rebuilds
 *    (as a blue/green rebuild is), so the live version keeps answering and
 *    following the log. When both stand at the same head, their states are
 *    compared key by key (dryrun_diff.c). The candidate then keeps following
 *    the log, so that applying it is a swap at the next step.
 *  - A handler: the candidate runs over the last N events (1,000 by default)
 *    that the live handler has handled, emitting into nothing, and what it
 *    emits is compared with what the live one emitted (dryrun_emits.c).
 *  - A decider has no state of its own to compare: refused.
 *
 * A call with the same file (and the same text) follows the dry run under way
 * and, once it is done, answers its report; a call after the file changed
 * starts again. Applying swaps the previewed version in only if its file
 * still holds the text that was previewed and the live version is still the
 * one it was compared with; a candidate from outside the scripts folder is
 * then written over the script's file (atomically), so that a restart runs it
 * too. One dry run per script at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <moonlog/diag.h>
#include <moonlog/msgpack.h>

#include "host/dryrun.h"
#include "host/host_internal.h"

#define DEFAULT_EVENTS 1000 /* handlers: the last events run through */
#define MAX_SOURCE     (16u << 20)
#define PROGRESS_MS    5000

enum dry_state { DRY_RUNNING, DRY_DONE, DRY_FAULTED };
static const char *const state_names[] = {"running", "done", "faulted"};

struct ml_dryrun {
	char *path; /* the candidate's file */
	struct ml_buf src;
	int own; /* the script's own file */
	char hash[24], live_hash[24];
	struct ml_script *s; /* projections and reducers: the candidate (emits owns a handler's) */
	enum dry_state state;
	uint64_t events; /* handlers: how many of the last events */
	uint32_t examples;
	uint64_t pos;	   /* projections: fed up to here */
	uint64_t from, to; /* handlers: the window */
	uint64_t started_ms, done_ms, said_ms;
	uint64_t done_events;	    /* events gone through when it was done */
	struct ml_dry_emits *emits; /* handlers */
	struct ml_kv report;	    /* once done or faulted */
};

void ml_dryrun_free(struct ml_dryrun *d)
{
	if (d == NULL)
		return;
	free(d->path);
	ml_buf_free(&d->src);
	ml_script_free(d->s);
	ml_dry_emits_free(d->emits);
	ml_buf_free(&d->report.b);
	free(d);
}

/* ---- the answer: where it is, and the report once done ---- */

static uint64_t position_of(const struct ml_dryrun *d)
{
	return d->emits ? ml_dry_emits_position(d->emits) : d->pos;
}

/* Events gone through: a fold's from 1, a handler's from the start of its window. */
static uint64_t gone_through(const struct ml_dryrun *d)
{
	uint64_t p = position_of(d);
	return d->emits == NULL ? p : p >= d->from ? p - d->from + 1 : 0;
}

void ml_dryrun_put_status(const struct ml_hosted *e, uint64_t head, struct ml_buf *b)
{
	const struct ml_dryrun *d = e->dry;
	ml_msgpack_put_map(b, 4);
	ml_msgpack_put_cstr(b, "state");
	ml_msgpack_put_cstr(b, state_names[d->state]);
	ml_msgpack_put_cstr(b, "file");
	ml_msgpack_put_cstr(b, d->path);
	ml_msgpack_put_cstr(b, "position");
	ml_msgpack_put_uint(b, position_of(d));
	ml_msgpack_put_cstr(b, "of");
	ml_msgpack_put_uint(b, d->emits ? d->to : head);
}

static void answer(struct ml_host *h, const struct ml_hosted *e, const struct ml_dryrun *d,
		   struct ml_buf *out)
{
	struct ml_kv kv = {0};
	uint64_t head = ml_log_head(h->log);
	uint64_t end = d->done_ms ? d->done_ms : ml_host_now_ms();
	double secs = (double)(end - d->started_ms) / 1000.0;
	ml_kv_str(&kv, "name", e->name);
	ml_kv_str(&kv, "kind", ml_script_kind_name(e->kind));
	ml_kv_str(&kv, "file", d->path);
	ml_kv_str(&kv, "hash", d->hash);
	ml_kv_str(&kv, "live_hash", d->live_hash);
	ml_kv_str(&kv, "state", state_names[d->state]);
	ml_kv_uint(&kv, "position", position_of(d));
	ml_kv_uint(&kv, "of", d->emits ? d->to : head);
	uint64_t went = d->done_ms ? d->done_events : gone_through(d);
	ml_kv_uint(&kv, "events", went);
	ml_kv_key(&kv, "events_per_second");
	ml_msgpack_put_double(&kv.b, secs > 0 ? (double)went / secs : 0);
	ml_kv_uint(&kv, "elapsed_ms", end - d->started_ms);
	if (d->report.n) {
		ml_buf_add(&kv.b, d->report.b.data, d->report.b.len);
		kv.n += d->report.n;
	}
	ml_kv_put(&kv, out);
	ml_buf_free(&kv.b);
}

/* ---- stepping ---- */

/* The event at pos, read for a fault's report. */
static int fault_at(const struct ml_event *ev, void *arg)
{
	struct ml_dryrun *d = arg;
	ml_kv_uint(&d->report, "fault_count", 1);
	ml_kv_key(&d->report, "faults");
	ml_msgpack_put_array(&d->report.b, 1);
	ml_dry_put_fault(&d->report.b, ev, ml_script_fault(d->s), d->path);
	return 1;
}

static void finish(struct ml_host *h, struct ml_hosted *e, struct ml_dryrun *d,
		   enum dry_state state, const char *how)
{
	d->state = state;
	d->done_ms = ml_host_now_ms();
	d->done_events = gone_through(d);
	ml_host_line(h, "script %s: dry run of %s %s after %llu events in %llu ms", e->name,
		     d->path, how, (unsigned long long)gone_through(d),
		     (unsigned long long)(d->done_ms - d->started_ms));
}

/* The candidate faulted while folding: the report says where, and it is dropped. */
static void folded_into_fault(struct ml_host *h, struct ml_hosted *e, struct ml_dryrun *d)
{
	if (ml_log_read_all(h->log, d->pos + 1, 1, fault_at, d) != 1) {
		ml_kv_uint(&d->report, "fault_count", 1);
		ml_kv_key(&d->report, "faults");
		ml_msgpack_put_array(&d->report.b, 1);
		ml_dry_put_fault(&d->report.b, NULL, ml_script_fault(d->s), d->path);
	}
	finish(h, e, d, DRY_FAULTED, "faulted");
	ml_script_free(d->s);
	d->s = NULL;
}

/* Both at the same position: the two states, key by key. */
static void compare_states(struct ml_host *h, struct ml_hosted *e, struct ml_dryrun *d)
{
	struct ml_buf a = {0}, b = {0};
	struct ml_diff diff = {.examples = d->examples};
	snprintf(d->live_hash, sizeof(d->live_hash), "%s", ml_script_hash(e->s));
	ml_kv_uint(&d->report, "at", d->pos);
	ml_kv_uint(&d->report, "live_position", e->pos);
	if (ml_script_state(e->s, &a) != 0 || ml_script_state(d->s, &b) != 0 ||
	    ml_diff_states(&diff, a.data, a.len, b.data, b.len) != 0) {
		ml_kv_uint(&d->report, "fault_count", 1);
		ml_kv_key(&d->report, "faults");
		ml_msgpack_put_array(&d->report.b, 1);
		ml_dry_put_fault(&d->report.b, NULL, ml_diag_last(), d->path);
		finish(h, e, d, DRY_FAULTED, "could not compare the states");
	} else {
		ml_diff_put(&diff, &d->report);
		ml_kv_uint(&d->report, "fault_count", 0);
		ml_kv_key(&d->report, "faults");
		ml_msgpack_put_array(&d->report.b, 0);
		finish(h, e, d, DRY_DONE, "done");
	}
	ml_diff_free(&diff);
	ml_buf_free(&a);
	ml_buf_free(&b);
}

static void say_progress(struct ml_host *h, struct ml_hosted *e, struct ml_dryrun *d, uint64_t of)
{
	uint64_t now = ml_host_now_ms();
	if (d->state != DRY_RUNNING || now - d->started_ms < PROGRESS_MS ||
	    now - d->said_ms < PROGRESS_MS || of == 0)
		return;
	d->said_ms = now;
	uint64_t p = position_of(d);
	ml_host_line(h,
		     "script %s: dry run of %s at position %llu of %llu (%llu%%), %.0f events/s; "
		     "the live version serves meanwhile",
		     e->name, d->path, (unsigned long long)p, (unsigned long long)of,
		     (unsigned long long)(p * 100 / of),
		     (double)gone_through(d) * 1000.0 / (double)(now - d->started_ms));
}

/* A projection's or reducer's candidate: a slice of the fold, and the comparison. */
static int step_fold(struct ml_host *h, struct ml_hosted *e, struct ml_dryrun *d, uint64_t head,
		     uint64_t deadline, uint32_t budget)
{
	if (d->s == NULL)
		return 0;
	if (d->pos < head && budget > 0 && ml_clock_ns() < deadline)
		ml_host_feed_script(h, e, d->s, &d->pos, head, deadline, budget);
	if (ml_script_fault(d->s)) {
		folded_into_fault(h, e, d);
		return 0;
	}
	say_progress(h, e, d, head);
	int live_stuck = e->error || ml_script_fault(e->s);
	if (d->state == DRY_RUNNING && d->pos >= head && (e->pos >= head || live_stuck))
		compare_states(h, e, d);
	return d->pos < head || d->state == DRY_RUNNING;
}

static int step_emits(struct ml_host *h, struct ml_hosted *e, struct ml_dryrun *d,
		      uint64_t deadline, uint32_t budget)
{
	if (d->state != DRY_RUNNING)
		return 0;
	int more = ml_dry_emits_step(d->emits, budget, deadline);
	say_progress(h, e, d, d->to);
	if (more)
		return 1;
	ml_dry_emits_put(d->emits, &d->report);
	finish(h, e, d, DRY_DONE, "done");
	return 0;
}

int ml_host_dry_runs(struct ml_host *h, uint64_t head, uint64_t deadline, uint32_t budget)
{
	int more = 0;
	for (size_t i = 0; i < h->n; i++) {
		struct ml_hosted *e = h->v[i];
		if (e->dry == NULL || e->removed || e->s == NULL)
			continue;
		if (e->dry->emits)
			more |= step_emits(h, e, e->dry, deadline, budget);
		else
			more |= step_fold(h, e, e->dry, head, deadline, budget);
	}
	return more;
}

/* ---- starting one ---- */

/* Reads the candidate's text; -1 with a diag. */
static int read_source(const char *path, int own, struct ml_buf *out)
{
	struct stat st;
	size_t len = strlen(path);
	if (!own && (len < 5 || strcmp(path + len - 4, ".lua") != 0))
		return ml_diag_set(ML_ERR_USAGE,
				   "the candidate %s is not a .lua file: give the file that holds "
				   "the new version of the script",
				   path);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ml_diag_set(ML_ERR_NOT_FOUND, "cannot read the candidate %s: %s", path,
				   strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_SOURCE) {
		close(fd);
		return ml_diag_set(
		    ML_ERR_USAGE, "the candidate %s is not a regular file of at most 16 MiB", path);
	}
	out->len = 0;
	char chunk[65536];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		ml_buf_add(out, chunk, (size_t)n);
	int err = n < 0 ? errno : 0;
	close(fd);
	if (err)
		return ml_diag_set(ML_ERR_IO, "cannot read the candidate %s: %s", path,
				   strerror(err));
	return 0;
}

/* Whether `path` is a file of the scripts folder (where the server would load it itself);
 * its name there in `file`. */
static int in_scripts_folder(struct ml_host *h, const char *path, char *file, size_t n)
{
	char dir[PATH_MAX], real[PATH_MAX];
	if (realpath(h->scripts_dir, dir) == NULL || realpath(path, real) == NULL)
		return 0;
	size_t dl = strlen(dir);
	if (strncmp(real, dir, dl) != 0 || real[dl] != '/' || strchr(real + dl + 1, '/'))
		return 0;
	snprintf(file, n, "%s", real + dl + 1);
	return 1;
}

struct request {
	const char *file;
	uint32_t file_len;
	uint64_t events, examples;
	int apply, cancel, restart;
};

/* The options map {file, events, examples, apply, cancel}; -1 with a diag. */
static int parse_request(const void *opts, size_t len, struct request *q)
{
	struct ml_msgpack_reader r;
	uint32_t n = 0;
	memset(q, 0, sizeof(*q));
	if (opts == NULL || len == 0)
		return 0;
	ml_msgpack_reader_init(&r, opts, len);
	if (ml_msgpack_get_nil(&r) == 0 || (ml_msgpack_get_array(&r, &n) == 0 && n == 0))
		return 0; /* none (an empty Lua table may come as an empty array) */
	if (ml_msgpack_get_map(&r, &n) != 0)
		return ml_diag_set(ML_ERR_USAGE, "the dry run's options must be a map");
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kl;
		if (ml_msgpack_get_str(&r, &k, &kl) != 0)
			return ml_diag_set(ML_ERR_USAGE, "the dry run's options have string keys");
#define KEY(s) (kl == sizeof(s) - 1 && memcmp(k, s, kl) == 0)
		int rc = 0;
		if (ml_msgpack_get_nil(&r) == 0)
			continue;
		if (KEY("file"))
			rc = ml_msgpack_get_str(&r, &q->file, &q->file_len);
		else if (KEY("events"))
			rc = ml_msgpack_get_uint(&r, &q->events) || q->events == 0;
		else if (KEY("examples"))
			rc = ml_msgpack_get_uint(&r, &q->examples) || q->examples > 100000;
		else if (KEY("apply"))
			rc = ml_msgpack_get_bool(&r, &q->apply);
		else if (KEY("cancel"))
			rc = ml_msgpack_get_bool(&r, &q->cancel);
		else if (KEY("restart"))
			rc = ml_msgpack_get_bool(&r, &q->restart);
		else
			return ml_diag_set(ML_ERR_USAGE,
					   "unknown dry run option \"%.*s\": file, events, "
					   "examples, restart, apply or cancel",
					   (int)(kl > 40 ? 40 : kl), k);
		if (rc != 0)
			return ml_diag_set(ML_ERR_USAGE,
					   "dry run option %.*s: file is a path, events a number "
					   "above 0, examples a number, restart, apply and cancel "
					   "true or false",
					   (int)kl, k);
#undef KEY
	}
	return 0;
}

/* The candidate did not load: the answer says why (and where), nothing is kept. */
static int did_not_load(struct ml_hosted *e, const char *path, const char *why, struct ml_buf *out)
{
	struct ml_kv kv = {0};
	ml_kv_str(&kv, "name", e->name);
	ml_kv_str(&kv, "kind", ml_script_kind_name(e->kind));
	ml_kv_str(&kv, "file", path);
	ml_kv_str(&kv, "state", "faulted");
	ml_kv_uint(&kv, "fault_count", 1);
	ml_kv_key(&kv, "faults");
	ml_msgpack_put_array(&kv.b, 1);
	ml_dry_put_fault(&kv.b, NULL, why, path);
	ml_kv_put(&kv, out);
	ml_buf_free(&kv.b);
	return 0;
}

static int start(struct ml_host *h, struct ml_hosted *e, const char *path, int own,
		 struct ml_buf *src, const struct request *q, struct ml_buf *out)
{
	struct ml_script *s =
	    ml_script_load_buffer(path, src->data ? src->data : "", src->len, &h->o.script);
	if (s == NULL) {
		char *why = ml_xstrndup(ml_diag_last(), strlen(ml_diag_last()));
		ml_host_line(h, "script %s: the candidate %s did not load: %s", e->name, path, why);
		did_not_load(e, path, why, out);
		free(why);
		return 0;
	}
	if (strcmp(ml_script_name(s), e->name) != 0 || ml_script_kind(s) != e->kind) {
		ml_diag_set(ML_ERR_USAGE,
			    "%s defines the %s \"%s\", not the %s \"%s\": a dry run previews a new "
			    "version of the same script",
			    path, ml_script_kind_name(ml_script_kind(s)), ml_script_name(s),
			    ml_script_kind_name(e->kind), e->name);
		ml_script_free(s);
		return -1;
	}
	struct ml_dryrun *d = ml_xcalloc(1, sizeof(*d));
	d->path = ml_xstrndup(path, strlen(path));
	d->src = *src;
	*src = (struct ml_buf){0};
	d->own = own;
	d->examples = q->examples ? (uint32_t)q->examples : ML_DRY_EXAMPLES;
	d->events = q->events ? q->events : DEFAULT_EVENTS;
	d->started_ms = ml_host_now_ms();
	snprintf(d->hash, sizeof(d->hash), "%s", ml_script_hash(s));
	snprintf(d->live_hash, sizeof(d->live_hash), "%s", ml_script_hash(e->s));
	if (e->kind == ML_SCRIPT_HANDLER) {
		/* the events whose emits are in the log: up to its last batch that settled */
		d->to = e->inflight ? e->saved : e->pos;
		d->from = d->to >= d->events ? d->to - d->events + 1 : 1;
		d->emits = ml_dry_emits_new(h->log, e->name, s, path, d->from, d->to, d->examples);
		ml_host_line(h, "script %s: dry run of %s over the events %llu to %llu", e->name,
			     path, (unsigned long long)d->from, (unsigned long long)d->to);
	} else {
		d->s = s;
		ml_host_line(h,
			     "script %s: dry run of %s, folding the log from 0 beside the live "
			     "version",
			     e->name, path);
	}
	ml_dryrun_free(e->dry);
	e->dry = d;
	if (h->o.wake)
		h->o.wake(h->o.wake_arg);
	answer(h, e, d, out);
	return 0;
}

/* ---- applying it ---- */

/* Writes the previewed text over the script's file: temporary file, fsync, rename. */
static int install(struct ml_host *h, struct ml_hosted *e, const struct ml_dryrun *d)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/%s", h->scripts_dir, e->file);
	snprintf(tmp, sizeof(tmp), "%s/.%s.dry-run", h->scripts_dir, e->file);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return ml_diag_set(ML_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
	size_t done = 0;
	while (done < d->src.len) {
		ssize_t w = write(fd, d->src.data + done, d->src.len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		done += (size_t)w;
	}
	int err = done < d->src.len || fsync(fd) != 0 ? errno : 0;
	close(fd);
	if (err == 0 && rename(tmp, path) != 0)
		err = errno;
	if (err) {
		unlink(tmp);
		return ml_diag_set(ML_ERR_IO, "cannot write the new version over %s: %s", path,
				   strerror(err));
	}
	int dfd = open(h->scripts_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

static int apply(struct ml_host *h, struct ml_hosted *e, const char *path, struct ml_buf *out)
{
	struct ml_dryrun *d = e->dry;
	struct ml_buf now = {0};
	if (d == NULL)
		return ml_diag_set(ML_ERR_NOT_FOUND,
				   "there is no dry run of %s to apply: run one first (moonlog "
				   "reload --dry-run %s FILE)",
				   e->name, e->name);
	if (path && strcmp(path, d->path) != 0)
		return ml_diag_set(ML_ERR_REFUSED,
				   "the dry run of %s previewed %s, not %s: run a dry run of %s "
				   "first",
				   e->name, d->path, path, path);
	if (d->state == DRY_RUNNING)
		return ml_diag_set(ML_ERR_REFUSED,
				   "the dry run of %s is still running (at position %llu): apply "
				   "it once it is done",
				   e->name, (unsigned long long)position_of(d));
	if (d->state == DRY_FAULTED)
		return ml_diag_set(ML_ERR_REFUSED,
				   "the version previewed from %s faulted: fix it and run the dry "
				   "run again",
				   d->path);
	if (read_source(d->path, d->own, &now) != 0 || now.len != d->src.len ||
	    memcmp(now.data, d->src.data, now.len) != 0) {
		ml_buf_free(&now);
		return ml_diag_set(ML_ERR_REFUSED,
				   "%s changed since its dry run, so what it holds now was not "
				   "previewed: run the dry run again",
				   d->path);
	}
	ml_buf_free(&now);
	if (strcmp(ml_script_hash(e->s), d->live_hash) != 0)
		return ml_diag_set(ML_ERR_REFUSED,
				   "%s was reloaded since its dry run (its code is %s now): run "
				   "the dry run again",
				   e->name, ml_script_hash(e->s));
	if (!d->own && install(h, e, d) != 0)
		return -1;
	if (e->kind == ML_SCRIPT_HANDLER) {
		char own[4096];
		snprintf(own, sizeof(own), "%s/%s", h->scripts_dir, e->file);
		struct ml_script *s =
		    ml_script_load_buffer(own, d->src.data, d->src.len, &h->o.script);
		if (s == NULL)
			return -1;
		ml_script_free(e->pending);
		e->pending = s;
		e->applied = 1; /* what its code history says (history.c) */
		if (!e->inflight)
			ml_host_swap_pending(h, e);
	} else { /* it follows the log: it swaps in at the next step, both at the head */
		e->applied = 1;
		ml_script_free(e->next);
		e->next = d->s;
		e->next_pos = d->pos;
		e->next_ms = ml_host_now_ms();
		d->s = NULL;
	}
	ml_host_line(h, "script %s: the version previewed from %s is applied (code %s)", e->name,
		     d->path, d->hash);
	struct ml_kv kv = {0};
	ml_kv_str(&kv, "name", e->name);
	ml_kv_str(&kv, "file", e->file);
	ml_kv_str(&kv, "outcome", "applied");
	ml_kv_str(&kv, "hash", d->hash);
	ml_kv_put(&kv, out);
	ml_buf_free(&kv.b);
	ml_dryrun_free(d);
	e->dry = NULL;
	if (h->o.wake)
		h->o.wake(h->o.wake_arg);
	return 0;
}

/* ---- the call ---- */

static int cancel(struct ml_hosted *e, struct ml_buf *out)
{
	struct ml_kv kv = {0};
	ml_kv_str(&kv, "name", e->name);
	ml_kv_str(&kv, "state", e->dry ? "cancelled" : "none");
	ml_kv_put(&kv, out);
	ml_buf_free(&kv.b);
	ml_dryrun_free(e->dry);
	e->dry = NULL;
	return 0;
}

int ml_host_dry_run(struct ml_host *h, const char *name, size_t len, const void *options,
		    size_t options_len, struct ml_buf *out)
{
	struct request q;
	if (parse_request(options, options_len, &q) != 0)
		return -1;
	struct ml_hosted *e = ml_host_by_name(h, name, len);
	if (e == NULL || e->s == NULL)
		return ml_diag_set(ML_ERR_NOT_FOUND,
				   e ? "%.*s did not load: its dry run needs a running version to "
				       "compare with (reload it first)"
				     : "no script named \"%.*s\" (see scripts())",
				   (int)(len > 100 ? 100 : len), name);
	char path[PATH_MAX + 1], file[512];
	if (q.file &&
	    (q.file_len == 0 || q.file_len >= sizeof(path) || memchr(q.file, 0, q.file_len)))
		return ml_diag_set(ML_ERR_USAGE, "the candidate's file name is empty or too long");
	if (q.file)
		snprintf(path, sizeof(path), "%.*s", (int)q.file_len, q.file);
	if (q.cancel)
		return cancel(e, out);
	if (q.apply)
		return apply(h, e, q.file ? path : NULL, out);
	if (e->kind == ML_SCRIPT_DECIDER)
		return ml_diag_set(ML_ERR_REFUSED,
				   "%s is a decider: a dry run compares a projection's or "
				   "reducer's state, or a handler's emits; check a decider with "
				   "moonlog lint and moonlog test",
				   e->name);
	int own = q.file == NULL;
	if (own) {
		snprintf(path, sizeof(path), "%s/%s", h->scripts_dir, e->file);
	} else if (in_scripts_folder(h, path, file, sizeof(file))) {
		if (strcmp(file, e->file) != 0)
			return ml_diag_set(ML_ERR_USAGE,
					   "%s is in the scripts folder, where the server loads it "
					   "as a script of its own: keep the candidate outside it",
					   path);
		own = 1;
	}
	if (own && ml_host_watching(h))
		return ml_diag_set(ML_ERR_REFUSED,
				   "this server reloads %s as soon as it is saved, so its own file "
				   "is the live version: give a copy outside the scripts folder to "
				   "preview (or serve with --reload manual)",
				   e->file);
	struct ml_buf src = {0};
	if (read_source(path, own, &src) != 0)
		return -1;
	struct ml_dryrun *d = e->dry;
	if (d && !q.restart && strcmp(d->path, path) == 0 && d->src.len == src.len &&
	    memcmp(d->src.data, src.data, src.len) == 0 &&
	    (q.events == 0 || q.events == d->events) &&
	    (q.examples == 0 || q.examples == d->examples)) {
		ml_buf_free(&src);
		answer(h, e, d, out); /* the same: how far it is, or its report */
		return 0;
	}
	int rc = start(h, e, path, own, &src, &q, out);
	ml_buf_free(&src);
	return rc;
}
