/*
 * host.h - the scripts that live in the server: every *.lua of the scripts
 * folder, loaded once and fed the log from their checkpoints to the head and
 * then live.
 *
 * The host runs on the thread that calls ml_host_step (the server's loop,
 * between two turns) and feeds in slices bounded by a number of events and a
 * time, so a rebuild from position 0 never holds the loop for long. Handlers
 * append what they emit together with a checkpoint event in the system stream
 * $checkpoint-NAME, as one atomic batch, through the log's asynchronous
 * submit; while that append is in flight the handler is fed nothing more.
 * Projections and reducers save snapshots (DATA/scripts/NAME.snap) every N
 * events or T milliseconds and when the host closes. Deciders are not fed:
 * each command folds its target stream from the log (see ml_script_decide).
 * docs/scripts-in-server.md describes it for users.
 */
#ifndef MOONLOG_HOST_H
#define MOONLOG_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <moonlog/api.h>
#include <moonlog/log.h>
#include <moonlog/script.h>
#include <moonlog/util.h>

struct ml_host;
struct ml_server;

struct ml_host_options {
	const char *scripts_dir;    /* every *.lua in it is loaded (required) */
	const char *data_dir;	    /* snapshots go to DATA/scripts/ (required) */
	uint64_t checkpoint_events; /* handlers: a checkpoint after this many events (10000) */
	uint32_t checkpoint_ms;	    /* ... or after this long with events handled (5000) */
	uint64_t snapshot_events;   /* projections, reducers: a snapshot after this many (1M) */
	uint32_t snapshot_ms;	    /* ... or after this long with events fed (30000) */
	uint32_t slice_events;	    /* events fed in one step, all scripts together (20000) */
	uint32_t slice_us;	    /* time one step may take, roughly (2000) */
	uint64_t scan_from; /* read with ml_log_scan when this far behind, else indexed reads */
	struct ml_script_options script;
	/* A script's call still running this long past its time limit is stuck where nothing
	 * can stop it: served, the host records its fault and ends the process (5000). */
	uint32_t stuck_ms;
	/* Called from any thread when a handler's append finished: call ml_host_step soon. */
	void (*wake)(void *arg);
	void *wake_arg;
	int quiet; /* no log lines on stderr */
	/* Served: scripts reload only when asked (reload(), SIGHUP), not when their file is
	 * saved, so that a script's own file can be previewed with a dry run. */
	int manual_reload;
};

ML_API void ml_host_options_init(struct ml_host_options *o);

/*
 * Loads every script of o->scripts_dir and restores snapshots and checkpoints.
 * A script that fails to load is kept as a faulted entry (its error shows in
 * the status) and the others go on. NULL with a diag when the folder cannot be
 * read or two scripts share a name.
 */
ML_API struct ml_host *ml_host_open(struct ml_log *log, const struct ml_host_options *o);
/*
 * Waits for handlers' appends in flight, writes their checkpoints and the
 * snapshots of projections and reducers, and frees the host. NULL is fine.
 */
ML_API void ml_host_close(struct ml_host *h);

/* Feeds one slice; returns 1 if there is more to do at once, 0 if it is idle. */
ML_API int ml_host_step(struct ml_host *h);
/* Steps until every script is at the head (or faulted, or waiting for an append). For tests. */
ML_API void ml_host_drain(struct ml_host *h);

/* A loaded script by name; NULL with a diag (ML_ERR_NOT_FOUND) when there is none. */
ML_API struct ml_script *ml_host_script(struct ml_host *h, const char *name, size_t len);
/* The reducer whose `from` takes `stream`, for get(stream); NULL with a diag if none. */
ML_API struct ml_script *ml_host_reducer_for(struct ml_host *h, const char *stream, size_t len);
/* The position a script has been fed to (its state is as of that position). */
ML_API uint64_t ml_host_position(struct ml_host *h, const struct ml_script *s);
/* The host's own fault of a script (an append that failed), or its script's fault, or NULL. */
ML_API const char *ml_host_fault(struct ml_host *h, const struct ml_script *s);

/* The status of every script as a msgpack array of maps (see docs/scripts-in-server.md). */
ML_API void ml_host_status(struct ml_host *h, struct ml_buf *out);
/* The same as Prometheus text: moonlog_script_* gauges labelled by script. */
ML_API void ml_host_metrics(struct ml_host *h, struct ml_buf *out);

/*
 * Hot reload (docs/scripts-in-server.md). Loads the script `name` again from
 * its file (or the file `name` when it ends in .lua: a new or restored file);
 * a NULL name rescans the whole folder (new files load, deleted ones unload,
 * changed ones reload: what SIGHUP does). A version that does not load leaves
 * the running one untouched: -1 with the diag (file:line: message), and the
 * error shows in the status as reload_error. `out` (may be NULL) receives the
 * outcome as msgpack: a map {name, file, outcome, error?} where outcome is
 * "reloaded", "rebuilding" (a projection replaying beside the old version),
 * "loaded", "unloaded", "unchanged" or "failed"; an array of them for a rescan.
 * Call on the loop's thread (the one that steps the host).
 */
ML_API int ml_host_reload(struct ml_host *h, const char *name, size_t len, struct ml_buf *out);
ML_API int ml_host_rescan(struct ml_host *h, struct ml_buf *out);
/* How long the last swap held the loop, in nanoseconds (for moonlog bench reload). */
ML_API uint64_t ml_host_last_swap_ns(struct ml_host *h);

/*
 * A dry run of a reload (docs/scripts-in-server.md): a new version of the
 * script `name`, from a file, is built beside the live one and compared with
 * it, writing nothing. `options` is a msgpack map (or NULL/0):
 *   file      the candidate (a path the server reads; default: the script's
 *             own file, allowed only with manual_reload)
 *   events    handlers: how many of the last events to run it over (1000)
 *   examples  how many differences of each kind to show (10)
 *   restart   true: start again even when a dry run of the same text is kept
 *   apply     true: swap in the version a finished dry run previewed, if its
 *             file still holds that text and the live version has not changed
 *   cancel    true: drop the dry run
 * A projection or reducer folds the whole log in slices (ml_host_step), a
 * handler runs over the last events: the call answers at once with where it
 * is, {name, kind, file, hash, live_hash, state = "running" | "done" |
 * "faulted", position, of, events, events_per_second, elapsed_ms}, and, once
 * done, the report: for a state {at, keys = {added, removed, changed, same},
 * added, removed, changed = [{key, old, new}]}, for a handler {from, to,
 * handled, emits = {added, dropped, changed, same}, added, dropped, changed},
 * and {fault_count, faults = [{position, stream, type, error, line}]}. A call
 * with the same file and text follows the same dry run; changed text starts
 * again. Applying answers {name, file, outcome = "applied", hash}. -1 with a
 * diag. On the loop's thread.
 */
ML_API int ml_host_dry_run(struct ml_host *h, const char *name, size_t len, const void *options,
			   size_t options_len, struct ml_buf *out);

/*
 * Handlers' parked events (on_error = "park"): parked() lists those not yet
 * replayed, oldest first, as a msgpack array of maps {position (in $all, of the
 * parked copy), stream, type, data, original_position, id, reason, traceback,
 * meta}; replay_parked() handles each again, in order, with the handler's
 * current code (a scratch copy of it, so the live handler is not disturbed)
 * and appends, as one batch, what the successful ones emit together with a
 * Replayed marker per success on $parked-NAME. The outcome as a map
 * {replayed, succeeded, failed = [{position, reason}]}. -1 with a diag
 * (ML_ERR_NOT_FOUND: no such handler). On the loop's thread; replay_parked
 * waits for its append.
 */
ML_API int ml_host_parked(struct ml_host *h, const char *name, size_t len, struct ml_buf *out);
ML_API int ml_host_replay_parked(struct ml_host *h, const char *name, size_t len,
				 struct ml_buf *out);

/*
 * Runs the host inside a server, the one place where the two meet: a turn
 * hook steps it, and handlers' appends wake the loop. The scripts folder is
 * watched (inotify on the loop) and SIGHUP rescans it. The server's RPC
 * methods, HTTP routes and eval then reach the scripts through the table the
 * host hands it (struct ml_server_scripts, server.h).
 */
ML_API void ml_host_serve(struct ml_host *h, struct ml_server *s);

#endif
