/*
 * host.c - the registry of hosted scripts: loading every *.lua of the scripts
 * folder (in name order), restoring each one's snapshot or checkpoint, finding
 * scripts by name for the server's methods, and closing down cleanly.
 *
 * Where each kind starts: a projection or reducer from its snapshot when the
 * code hash matches, else from 0 (a rebuild, fed in slices by step.c); a
 * handler after the position in the last event of $checkpoint-NAME, whatever
 * its code (handlers continue, they never re-emit), or from its `start` when
 * it has none (on a shared log, once it holds its lease: lease.c); a decider
 * is not fed. Entries are allocated one by one: a handler's batch in flight
 * holds its entry's address while reloads add and remove others.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <moonlog/diag.h>
#include <moonlog/server.h>

#include "host/host_internal.h"

void ml_host_options_init(struct ml_host_options *o)
{
	*o = (struct ml_host_options){
	    .checkpoint_events = 10000,
	    .checkpoint_ms = 5000,
	    .snapshot_events = 1000000,
	    .snapshot_ms = 30000,
	    .slice_events = 20000,
	    .slice_us = 2000,
	    .scan_from = UINT64_MAX,
	    .stuck_ms = 5000,
	};
	ml_script_options_init(&o->script);
}

uint64_t ml_host_now_ms(void)
{
	return ml_clock_ns() / 1000000;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.lua files of dir but upcasters.lua, sorted; -1 with diag if the folder cannot be
 * read. */
static int list_scripts(const char *dir, char ***out, size_t *n)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return ml_diag_set(ML_ERR_NOT_FOUND,
				   "cannot read the scripts folder %s: %m (give another with "
				   "--scripts DIR)",
				   dir);
	struct dirent *de;
	char **v = NULL;
	size_t k = 0;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len < 5 || de->d_name[0] == '.' || strcmp(de->d_name + len - 4, ".lua") != 0 ||
		    strcmp(de->d_name, ML_SCRIPT_UPCASTERS_FILE) == 0) /* not a script */
			continue;
		v = ml_xrealloc(v, (k + 1) * sizeof(*v));
		v[k++] = ml_xstrndup(de->d_name, len);
	}
	closedir(d);
	if (k)
		qsort(v, k, sizeof(*v), by_name);
	*out = v;
	*n = k;
	return 0;
}

int ml_host_list_files(struct ml_host *h, char ***out, size_t *n)
{
	return list_scripts(h->scripts_dir, out, n);
}

/*
 * A fault recorded for this very code before a restart (a limit reached, or a call
 * stuck): the event it names is passed over rather than run again (step.c).
 */
static void restore_fault(struct ml_host *h, struct ml_hosted *e)
{
	uint64_t pos = 0;
	char *why = NULL;
	int rc = ml_script_fault_recorded(e->s, h->data_dir, &pos, &why);
	if (rc < 0)
		ml_host_line(h, "script %s: %s", e->name, ml_diag_last());
	if (rc == 0) /* none, or one for other code */
		ml_script_fault_forget(h->data_dir, e->name);
	if (rc > 0 && pos <= e->pos) { /* passed before it was recorded: nothing to do */
		ml_script_fault_forget(h->data_dir, e->name);
		free(why);
		rc = 0;
	}
	if (rc <= 0)
		return;
	free(e->poison_why);
	e->poison = pos;
	e->poison_why = why;
	ml_host_line(h, "script %s will not run the event at position %llu again: %s", e->name,
		     (unsigned long long)pos, why);
}

void ml_host_record_fault(struct ml_host *h, struct ml_hosted *e, struct ml_script *s, uint64_t pos)
{
	if (!ml_script_fault_is_limit(s) || e->poison == pos)
		return;
	if (ml_script_fault_record(h->data_dir, e->name, ml_script_hash(s), pos,
				   ml_script_fault(s)) != 0)
		ml_host_line(h, "script %s: cannot record its fault: %s", e->name, ml_diag_last());
}

/* Where a loaded script starts. */
void ml_host_restore(struct ml_host *h, struct ml_hosted *e)
{
	e->saved_ms = ml_host_now_ms();
	ml_lease_init(h, e);
	if (e->kind == ML_SCRIPT_HANDLER) {
		e->pos = e->saved = ml_host_checkpoint_read(h, e->name);
		int here =
		    ml_lease_runs(e); /* else where it starts is read when it takes its lease */
		if (here && e->pos)
			ml_host_line(h, "script %s (handler) continues after position %llu",
				     e->name, (unsigned long long)e->pos);
		else if (here) /* a new handler: its `start` */
			e->pos = ml_script_start_position(e->s, ml_log_head(h->log));
		restore_fault(h, e);
		return;
	}
	if (e->kind == ML_SCRIPT_DECIDER) {
		e->caught_up = 1;
		return;
	}
	int rc = ml_script_snapshot_load(e->s, h->data_dir);
	if (rc == 1) {
		e->pos = e->saved = ml_script_position(e->s);
		ml_host_line(h, "script %s (%s) restored its snapshot at position %llu", e->name,
			     ml_script_kind_name(e->kind), (unsigned long long)e->pos);
	} else if (rc < 0) {
		ml_host_line(h, "script %s: %s; rebuilding from the log", e->name, ml_diag_last());
	}
	restore_fault(h, e);
}

struct ml_hosted *ml_host_add(struct ml_host *h, const char *file, struct ml_script *s,
			      const char *why)
{
	h->v = ml_xrealloc(h->v, (h->n + 1) * sizeof(*h->v));
	struct ml_hosted *e = ml_xcalloc(1, sizeof(*e));
	h->v[h->n++] = e;
	e->h = h;
	e->file = ml_xstrndup(file, strlen(file));
	e->s = s;
	if (s == NULL) {
		e->error = ml_xstrndup(why, strlen(why));
		e->name = ml_xstrndup(file, strlen(file) - 4);
		return e;
	}
	e->kind = ml_script_kind(s);
	e->name = ml_xstrndup(ml_script_name(s), strlen(ml_script_name(s)));
	return e;
}

static void add_file(struct ml_host *h, const char *file)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", h->scripts_dir, file);
	struct ml_script *s = ml_script_load(path, &h->o.script);
	if (s == NULL)
		ml_host_line(h, "script %s did not load: %s", file, ml_diag_last());
	ml_host_add(h, file, s, s ? NULL : ml_diag_last());
}

struct ml_host *ml_host_open(struct ml_log *log, const struct ml_host_options *o)
{
	char **files = NULL;
	size_t nfiles = 0;
	if (list_scripts(o->scripts_dir, &files, &nfiles) != 0)
		return NULL;
	struct ml_host *h = ml_xcalloc(1, sizeof(*h));
	h->o = *o;
	h->log = log;
	h->scripts_dir = ml_xstrndup(o->scripts_dir, strlen(o->scripts_dir));
	h->data_dir = ml_xstrndup(o->data_dir, strlen(o->data_dir));
	h->o.scripts_dir = h->scripts_dir;
	h->o.data_dir = h->data_dir;
	if (ml_host_upcasters_load(h) != 0) {
		for (size_t i = 0; i < nfiles; i++)
			free(files[i]);
		free(files);
		ml_host_close(h);
		return NULL;
	}
	for (size_t i = 0; i < nfiles; i++) {
		add_file(h, files[i]);
		free(files[i]);
	}
	free(files);
	for (size_t i = 0; i < h->n; i++)
		for (size_t j = 0; j < i; j++)
			if (h->v[i]->s && h->v[j]->s && strcmp(h->v[i]->name, h->v[j]->name) == 0) {
				ml_diag_set(ML_ERR_USAGE,
					    "scripts %s and %s are both named \"%s\": rename one",
					    h->v[j]->file, h->v[i]->file, h->v[i]->name);
				ml_host_close(h);
				return NULL;
			}
	size_t ok = 0;
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i]->s) {
			ml_host_restore(h, h->v[i]);
			ml_host_history_check(h, h->v[i], 1);
			ok++;
		}
	ml_host_line(h, "hosting %zu scripts from %s%s", ok, h->scripts_dir,
		     ok < h->n ? " (some failed to load: see above)" : "");
	return h;
}

/* Settles and saves an entry, then frees it. */
static void entry_free(struct ml_host *h, struct ml_hosted *e)
{
	if (e->s) {
		ml_lease_settle(h, e, 1);
		ml_host_settle(h, e, 1);
		ml_host_save(h, e);
		ml_lease_release(h, e); /* after the last batch: another node takes over now */
	}
	ml_lease_free(e);
	ml_hosted_free_reload(e);
	ml_dryrun_free(e->dry);
	ml_script_free(e->s);
	free(e->name);
	free(e->file);
	free(e->error);
	free(e->evs);
	free(e->poison_why);
	free(e->gathered);
	ml_buf_free(&e->bytes);
	free(e);
}

void ml_host_remove(struct ml_host *h, struct ml_hosted *e)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i] == e) {
			memmove(&h->v[i], &h->v[i + 1], (h->n - i - 1) * sizeof(*h->v));
			h->n--;
			break;
		}
	entry_free(h, e);
}

void ml_host_close(struct ml_host *h)
{
	if (h == NULL)
		return;
	ml_script_on_stuck(NULL, NULL, 0);
	ml_host_watch_stop(h);
	for (size_t i = 0; i < h->n; i++)
		entry_free(h, h->v[i]);
	ml_host_quiesce(h);
	free(h->v);
	ml_buf_free(&h->upcasters);
	free(h->scripts_dir);
	free(h->data_dir);
	free(h);
}

struct ml_hosted *ml_host_entry(struct ml_host *h, const struct ml_script *s)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i]->s == s)
			return h->v[i];
	return NULL;
}

struct ml_hosted *ml_host_by_file(struct ml_host *h, const char *file)
{
	for (size_t i = 0; i < h->n; i++)
		if (!h->v[i]->removed && strcmp(h->v[i]->file, file) == 0)
			return h->v[i];
	return NULL;
}

/* A script by name; removed entries (files gone, unloading) are not found. */
struct ml_hosted *ml_host_by_name(struct ml_host *h, const char *name, size_t len)
{
	for (size_t i = 0; i < h->n; i++) {
		struct ml_hosted *e = h->v[i];
		if (!e->removed && strlen(e->name) == len && memcmp(e->name, name, len) == 0)
			return e;
	}
	return NULL;
}

struct ml_script *ml_host_script(struct ml_host *h, const char *name, size_t len)
{
	struct ml_hosted *e = ml_host_by_name(h, name, len);
	if (e && e->s == NULL)
		ml_diag_set(ML_ERR_SCRIPT, "%s", e->error);
	else if (e == NULL)
		ml_diag_set(ML_ERR_NOT_FOUND, "no script named \"%.*s\" (see GET /scripts)",
			    (int)(len > 100 ? 100 : len), name);
	return e ? e->s : NULL;
}

/* The reducer that holds a state for the stream; the only reducer when none does. */
struct ml_script *ml_host_reducer_for(struct ml_host *h, const char *stream, size_t len)
{
	struct ml_script *only = NULL;
	size_t reducers = 0;
	struct ml_buf b = {0};
	for (size_t i = 0; i < h->n; i++) {
		struct ml_hosted *e = h->v[i];
		if (e->s == NULL || e->removed || e->kind != ML_SCRIPT_REDUCER)
			continue;
		reducers++;
		only = e->s;
		b.len = 0;
		if (ml_script_get(e->s, stream, len, &b) == 0 && b.len &&
		    (uint8_t)b.data[0] != 0xc0) {
			ml_buf_free(&b);
			return e->s;
		}
	}
	ml_buf_free(&b);
	if (reducers == 1)
		return only;
	ml_diag_set(ML_ERR_NOT_FOUND,
		    "no reducer has a state for the stream \"%.*s\" (name the reducer: "
		    "get(reducer, stream))",
		    (int)(len > 100 ? 100 : len), stream);
	return NULL;
}

uint64_t ml_host_position(struct ml_host *h, const struct ml_script *s)
{
	struct ml_hosted *e = ml_host_entry(h, s);
	if (e && e->kind == ML_SCRIPT_DECIDER)
		return ml_log_head(h->log);
	return e ? e->pos : 0;
}

const char *ml_host_fault(struct ml_host *h, const struct ml_script *s)
{
	struct ml_hosted *e = ml_host_entry(h, s);
	if (e && e->error)
		return e->error;
	return ml_script_fault(s);
}

/* ---- inside a server ---- */

static void on_turn(struct ml_server *s, void *arg)
{
	if (ml_host_step(arg))
		ml_server_again(s);
}

static void wake(void *arg)
{
	ml_server_again(arg);
}

/*
 * A script's call has run far past its time limit, where nothing checks it (the
 * watchdog thread calls this while the loop thread is still inside the call). The
 * loop cannot be given back, so the server records the fault (a restart then passes
 * over that event) and ends here: a supervisor restarts it. Appends acknowledged are
 * on disk already.
 */
static void stuck(const struct ml_script_stuck *st, void *arg)
{
	struct ml_host *h = arg;
	char why[512];
	snprintf(why, sizeof(why),
		 "script %s faulted at position %llu: ran %llu ms (CPU) without returning, stuck "
		 "where its "
		 "time limit could not stop it (the server stopped)",
		 st->name, (unsigned long long)st->position, (unsigned long long)st->ran_ms);
	if (st->position)
		ml_script_fault_record(h->data_dir, st->name, st->hash, st->position, why);
	fprintf(stderr,
		"moonlog serve: %s; %s, and the server exits now so that its supervisor restarts "
		"it\n",
		why,
		st->position ? "the fault is recorded in the data folder's scripts/ (a restart "
			       "does not run that event again)"
			     : "it was not feeding an event, so nothing is recorded");
	_exit(1);
}

/* What the server asks of the scripts (server.h), answered by the host. */
static struct ml_script *find(void *h, const char *name, size_t len)
{
	return ml_host_script(h, name, len);
}

static struct ml_script *reducer_for(void *h, const char *stream, size_t len)
{
	return ml_host_reducer_for(h, stream, len);
}

static uint64_t position(void *h, const struct ml_script *s)
{
	return ml_host_position(h, s);
}

static void status(void *h, struct ml_buf *out)
{
	ml_host_status(h, out);
}

static void metrics(void *h, struct ml_buf *out)
{
	ml_host_metrics(h, out);
}

static int reload(void *h, const char *name, size_t len, struct ml_buf *out)
{
	return ml_host_reload(h, name, len, out);
}

static int parked(void *h, const char *name, size_t len, int replay, struct ml_buf *out)
{
	return replay ? ml_host_replay_parked(h, name, len, out)
		      : ml_host_parked(h, name, len, out);
}

static int dry_run(void *h, const char *name, size_t len, const void *options, size_t olen,
		   struct ml_buf *out)
{
	return ml_host_dry_run(h, name, len, options, olen, out);
}

/* The one place where a server and the script host meet: the host is stepped by a turn
 * hook, wakes the loop when a handler's append is done, watches the scripts folder on
 * the server's loop, and answers the server's questions about scripts. */
void ml_host_serve(struct ml_host *h, struct ml_server *s)
{
	ml_script_on_stuck(stuck, h, h->o.stuck_ms);
	h->o.wake = wake;
	h->o.wake_arg = s;
	ml_server_on_turn(s, on_turn, h);
	ml_server_set_scripts(s, &(struct ml_server_scripts){.arg = h,
							     .find = find,
							     .reducer_for = reducer_for,
							     .position = position,
							     .status = status,
							     .metrics = metrics,
							     .reload = reload,
							     .parked = parked,
							     .dry_run = dry_run});
	if (ml_host_watch_start(h, ml_server_event_base(s)) != 0)
		ml_host_line(h, "not watching %s for changes: %s (reload with SIGHUP or reload())",
			     h->scripts_dir, ml_diag_last());
	else if (h->o.manual_reload)
		ml_host_line(h, "scripts reload only when asked (--reload manual): moonlog reload, "
				"reload() or SIGHUP");
	ml_server_again(s);
}
