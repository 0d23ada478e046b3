/*
 * host_internal.h - what the files of host/ share: the registry of hosted
 * scripts, the per-script bookkeeping of feeding and checkpoints, of hot
 * reloads (a new version waiting to swap in, or rebuilding beside the old),
 * and of a handler's lease when several nodes share the log.
 */
#ifndef ML_HOST_INTERNAL_H
#define ML_HOST_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <moonlog/host.h>

/* An event a handler emitted (or parked) in the batch being gathered: offsets into
 * the entry's bytes, which move as they grow. */
struct ml_gathered {
	size_t stream, stream_len, type, type_len, data, data_len, meta, meta_len;
};

/* A handler's lease, when several nodes share the log (lease.c). */
enum ml_lease_state {
	ML_LEASE_ALONE,	  /* the log is not shared (or not a handler): no lease, it runs */
	ML_LEASE_STANDBY, /* another node holds it, or it is not known to be free yet */
	ML_LEASE_TAKING,  /* this node's Acquired is in flight */
	ML_LEASE_HELD,	  /* this node's Acquired is applied: the handler runs here */
};

struct ml_lease {
	enum ml_lease_state state;
	char stream[300]; /* $lease-NAME */
	size_t stream_len;
	uint64_t version;	   /* held: the version of this node's Acquired */
	struct ml_expect_in guard; /* every batch's: the stream still at `version` */
	char holder[64];	   /* the holder's node id as last read ("" when none) */
	char told[64];		   /* the holder the last "stands by" line named */
	char why[256];		   /* how it came to be free: the takeover's log line */
	uint64_t seen;		   /* the stream's version when last read (UINT64_MAX: read it) */
	int released;		   /* its last event is Released */
	uint64_t look_ms;	   /* a standby looks again then */
	uint64_t free_ms;	   /* when it was first seen free to take (0: it is not) */
	/* the Acquired in flight */
	struct ml_append req;
	struct ml_event_in ev;
	struct ml_expect_in expect;
	struct ml_buf data;
	uint64_t at; /* its version, once applied */
	int inflight;
	atomic_int done;
};

/* One script of the folder. */
struct ml_hosted {
	char *name, *file;
	struct ml_script *s; /* NULL when it failed to load */
	enum ml_script_kind kind;
	char *error;	    /* why it failed to load, or the host's own fault (an append) */
	uint64_t error_pos; /* the position of that fault */
	uint64_t pos;	    /* the last event fed */
	uint64_t saved;	    /* the position of the last checkpoint or snapshot */
	uint64_t saved_ms;  /* when it was taken (monotonic) */
	uint64_t since;	    /* handlers: events handled since the checkpoint */
	int caught_up;	    /* reached the head once */
	uint64_t fed;	    /* events fed since the host opened */
	uint64_t poison;    /* a fault record's position: passed over, not run (0: none) */
	char *poison_why;
	uint64_t rate_fed, rate_ms;
	double rate; /* events per second, over the last second or so */

	/* handlers: the batch being gathered (batch.c), then the one append in flight */
	uint64_t own_first, own_last; /* where the last batch went */
	struct ml_host *h;
	struct ml_gathered *gathered;
	size_t n_gathered, gathered_cap;
	size_t gathered_bytes;	  /* of `bytes`; the checkpoint's data follows */
	uint32_t gathered_events; /* handled events that had output */
	struct ml_buf bytes;	  /* the gathered events' bytes, and the checkpoint's */
	struct ml_event_in *evs;
	size_t evs_cap;
	char ckstream[300]; /* $checkpoint-NAME */
	struct ml_append req;
	int inflight;
	uint64_t inflight_pos; /* the checkpoint's position */
	atomic_int done;
	/* a batch the log failed to write (ML_ERR_IO) is submitted again at retry_at_ms
	 * (0: none waiting), after retry_ms that doubles up to 5 s */
	uint64_t retry_at_ms, retry_ms;
	/* handlers: log lines about parked events, at most PARK_LINES a second (batch.c) */
	uint64_t park_second_ms;
	uint32_t park_lines, park_unsaid;
	uint64_t progress_ms; /* when a rebuild last said how far it is (reload.c) */

	/* hot reload (reload.c) */
	struct ml_script *pending; /* handlers: the new version, swapped in once no batch is
				      in flight */
	struct ml_script *next;	   /* reload = "rebuild": the new version, fed from 0 */
	uint64_t next_pos;	   /* ... up to here; it swaps in at the head */
	uint64_t next_ms;	   /* when its rebuild started */
	char *reload_error;	   /* the last version that did not load (the old one runs) */
	uint64_t reloads;	   /* versions swapped in since the host opened */
	int applied;		   /* the version swapping in is a dry run's, applied */
	int unrecorded;		   /* its version is not in $code-NAME yet (history.c) ... */
	uint64_t loaded_at;	   /* ... and went live at this position */
	int removed;		   /* the file is gone: unload once its batch has settled */

	struct ml_lease lease; /* handlers on a shared log (lease.c) */

	struct ml_dryrun *dry; /* a dry run of a new version beside this one (dryrun.c) */
};

struct ml_host {
	struct ml_host_options o;
	char *scripts_dir, *data_dir;
	struct ml_log *log;
	struct ml_hosted **v; /* pointers: a batch in flight holds its entry's address */
	size_t n;
	size_t turn; /* which script goes first in the next step */
	atomic_int inflight;
	struct ml_watch *watch;	 /* inotify on the scripts folder, SIGHUP (watch.c) */
	uint64_t swap_ns_last;	 /* the last swap's pause, for bench reload */
	uint64_t rest_until;	 /* after a long step, no feeding before this (step.c) */
	struct ml_buf upcasters; /* the text of the folder's upcasters.lua (upcasters.c) */
	uint64_t even_ms;	 /* lease_balance.c looks again then (0: not started) */
};

/* A line on stderr, "moonlog serve: ...", unless the host is quiet. */
#define ml_host_line(h, ...) ((h)->o.quiet ? (void)0 : ml_line("moonlog serve", __VA_ARGS__))
uint64_t ml_host_now_ms(void);
struct ml_hosted *ml_host_entry(struct ml_host *h, const struct ml_script *s);

/* host.c */
/* Adds an entry for `file` holding `s` (NULL: it failed to load with `why`). */
struct ml_hosted *ml_host_add(struct ml_host *h, const char *file, struct ml_script *s,
			      const char *why);
/* Sets a loaded entry where it starts: its snapshot or checkpoint, or its start. */
void ml_host_restore(struct ml_host *h, struct ml_hosted *e);
/* Saves, settles and frees an entry, and takes it out of the registry. */
void ml_host_remove(struct ml_host *h, struct ml_hosted *e);
struct ml_hosted *ml_host_by_file(struct ml_host *h, const char *file);
struct ml_hosted *ml_host_by_name(struct ml_host *h, const char *name, size_t len);
/* Lists the *.lua files of the scripts folder, sorted. */
int ml_host_list_files(struct ml_host *h, char ***out, size_t *n);

/* reload.c */
/* Loads `file` again (or unloads it when it is gone); the outcome as a msgpack map when
 * `out` is not NULL. -1 with a diag when the new version did not load. */
int ml_host_reload_file(struct ml_host *h, const char *file, struct ml_buf *out);
/* At a step's start: unloads the entries of removed files whose batch has settled. 1 when
 * some wait. */
int ml_host_reload_swaps(struct ml_host *h);
/* Swaps a handler's or decider's pending version in (no batch is in flight). */
void ml_host_swap_pending(struct ml_host *h, struct ml_hosted *e);
/* Feeds the rebuilding versions a slice each and swaps those at the head; 1 if more to do. */
int ml_host_reload_rebuilds(struct ml_host *h, uint64_t head, uint64_t deadline, uint32_t budget);
void ml_hosted_free_reload(struct ml_hosted *e);

/* watch.c */
struct event_base;
int ml_host_watch_start(struct ml_host *h, struct event_base *base);
void ml_host_watch_stop(struct ml_host *h);
/* Whether a saved script reloads by itself (the folder is watched, not --reload manual). */
int ml_host_watching(struct ml_host *h);

/* history.c: the versions that went live, in $code-NAME */
/* Records s (e's script, or the one it replaces) as live from `position` (why: "reloaded",
 * "applied", ...). */
void ml_host_history_record(struct ml_host *h, struct ml_hosted *e, struct ml_script *s,
			    const char *reason, uint64_t position);
/* A script just loaded (at start, or from a new file): recorded when its history is not
 * empty and it is not the version recorded last; noted as unrecorded when it is empty. */
void ml_host_history_check(struct ml_host *h, struct ml_hosted *e, int at_start);
/* e's new script swapped in for `old` at `position` (the old one first, if unrecorded). */
void ml_host_history_swap(struct ml_host *h, struct ml_hosted *e, struct ml_script *old,
			  uint64_t position);

/* upcasters.c: the folder's upcasters.lua */
/* Reads it into h->upcasters and the options every script is loaded with; -1 with a diag. */
int ml_host_upcasters_load(struct ml_host *h);
/* Is `file` (a name in the scripts folder) the upcasters file? */
int ml_host_is_upcasters(const char *file);
/* Reads it again and reloads every script with it; the outcome as a msgpack map. */
int ml_host_upcasters_reload(struct ml_host *h, struct ml_buf *out);

/* dryrun.c */
/* Feeds the dry runs a slice each and compares those at the end; 1 if more to do. */
int ml_host_dry_runs(struct ml_host *h, uint64_t head, uint64_t deadline, uint32_t budget);
/* A dry run's progress for the status: {state, file, position, of}. */
void ml_dryrun_put_status(const struct ml_hosted *e, uint64_t head, struct ml_buf *b);
void ml_dryrun_free(struct ml_dryrun *d);

/* batch.c */
/* Sets e's fault: fmt takes the script's name, the position and `why`. */
void ml_hosted_fault(struct ml_hosted *e, uint64_t pos, const char *fmt, const char *why);
/* Gathers what a handler's feed of ev put out into its batch: 1 when the batch is full,
 * -1 when the handler faulted (it emitted to a system stream; nothing was gathered). */
int ml_host_gather(struct ml_hosted *e, const struct ml_event *ev,
		   const struct ml_script_outcome *out);
/* Submits what was gathered with a checkpoint at e->pos; with `sync`, waits (closing). */
void ml_host_submit_batch(struct ml_host *h, struct ml_hosted *e, int sync);
/* Waits until no flusher callback of a handler's batch is running (before freeing h). */
void ml_host_quiesce(struct ml_host *h);
/* Waits for a handler's append in flight and settles it. */
void ml_host_settle(struct ml_host *h, struct ml_hosted *e, int wait);
/* Forgets what a handler gathered, and a failed batch waiting to be tried again. */
void ml_host_drop_batch(struct ml_hosted *e);

/* Records the limit fault of s (e's script or its rebuild) at pos, for a restart. */
void ml_host_record_fault(struct ml_host *h, struct ml_hosted *e, struct ml_script *s,
			  uint64_t pos);

/* lease.c: a handler on a shared log runs on the node that holds its lease */
/* Sets a loaded handler's lease up: standing by on a shared log, else none (ALONE). */
void ml_lease_init(struct ml_host *h, struct ml_hosted *e);
void ml_lease_free(struct ml_hosted *e);
/* Whether the handler runs here: no lease needed, or held. */
int ml_lease_runs(const struct ml_hosted *e);
/* "running here", "taking over", "standby"; NULL when there is no lease. */
const char *ml_lease_name(const struct ml_hosted *e);
/* Each step: takes a free lease, checks a held one is still this node's. */
void ml_lease_tick(struct ml_host *h, struct ml_hosted *e, uint64_t now_ms);
/* Adds the guard "$lease-NAME is at the version of this node's Acquired" to req, if held. */
void ml_lease_guard(struct ml_hosted *e, struct ml_append *req);
/* A batch of e's refused: 1 when its lease guard refused it (e stands by: drop the batch). */
int ml_lease_fenced(struct ml_host *h, struct ml_hosted *e, const struct ml_append *req);
/* Settles an Acquired in flight (with `wait`, waits for it). */
void ml_lease_settle(struct ml_host *h, struct ml_hosted *e, int wait);
/* At close or unload, after the last batch: appends Released, if held. */
void ml_lease_release(struct ml_host *h, struct ml_hosted *e);
/* Appends Acquired {node, from} expecting the version last read: wins, or loses a race.
 * `from`: the live node it is taken from to even out the load (NULL: it is free). */
void ml_lease_take(struct ml_host *h, struct ml_hosted *e, const char *from);

/* lease_balance.c: the leases spread over the nodes */
/* The leases this node holds or is taking. */
int ml_lease_held_here(struct ml_host *h);
/* Each step: takes one lease over from a node that holds two or more than this one. */
void ml_lease_balance(struct ml_host *h, uint64_t now_ms);

/* step.c */
/* Feeds `s` (the entry's script or its rebuild) from *pos towards head. */
uint32_t ml_host_feed_script(struct ml_host *h, struct ml_hosted *e, struct ml_script *s,
			     uint64_t *pos, uint64_t head, uint64_t deadline, uint32_t budget);
/* Reads the last checkpoint of a handler (0 if none). */
uint64_t ml_host_checkpoint_read(struct ml_host *h, const char *name);
/* Writes a checkpoint (handlers, synchronously) or a snapshot (projections, reducers). */
void ml_host_save(struct ml_host *h, struct ml_hosted *e);

#endif
