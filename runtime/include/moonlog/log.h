/*
 * log.h - the durable, append-only event log.
 *
 * The log is a folder of segment files (DATA/log/<first position>.seg). Every
 * append is a batch of one or more events, possibly to several streams, and is
 * all or nothing, also across a crash. Appends are checked (names, sizes,
 * expected versions, duplicate ids) and given positions at once, in the
 * caller's thread; a flusher thread writes them and, under ML_FSYNC_ALWAYS,
 * fdatasyncs before they are acknowledged. One fdatasync covers every batch
 * that was waiting (group commit).
 *
 * That is the local writer's way. The functions here are the front every
 * caller uses, whatever writer is behind it: another writer may have batches
 * ordered elsewhere and applied to this log (log_writer.h). Reads are the same
 * either way: the segments and the index in this process.
 *
 * Readers see only acknowledged events: under ML_FSYNC_ALWAYS an event is
 * visible once it is on disk, so nobody ever reads an event a crash can take
 * back.
 *
 * All functions are safe to call from several threads at once. A process that
 * uses the log should ignore SIGXFSZ, so that a file-size limit fails a write
 * instead of killing the process.
 */
#ifndef MOONLOG_LOG_H
#define MOONLOG_LOG_H

#include <stddef.h>
#include <stdint.h>

#include <moonlog/api.h>
#include <moonlog/diag.h>

struct ml_log;
struct ml_buf;

enum ml_fsync {
	ML_FSYNC_ALWAYS, /* acknowledge after fdatasync covers the batch */
	ML_FSYNC_BATCH,	 /* acknowledge after write; fdatasync every batch_sync_ms */
	ML_FSYNC_NEVER,	 /* acknowledge after write; leave syncing to the kernel */
};

struct ml_log_options {
	const char *dir;	 /* the data folder; the log lives in DIR/log */
	enum ml_fsync fsync;	 /* default ML_FSYNC_ALWAYS */
	unsigned batch_sync_ms;	 /* ML_FSYNC_BATCH: the sync interval (default 5) */
	uint64_t segment_size;	 /* a segment is rolled past this size (default 256 MiB) */
	uint32_t max_event_size; /* data + meta of one event (default 1 MiB, at most 64 MiB) */
	uint32_t index_block;	 /* events the index holds in memory before it writes them to a
				    file as one block (default 131072; tests use small ones) */
	int readonly;		 /* open without the lock and never write (for inspection) */
};

ML_API void ml_log_options_init(struct ml_log_options *o);
ML_API const char *ml_fsync_name(enum ml_fsync mode);
ML_API int ml_fsync_parse(const char *s, enum ml_fsync *out);

/*
 * Opens (creating if needed) the log in o->dir, recovering from a crash: a torn
 * or corrupt last batch is cut off. Fails (NULL + diag) if another process has
 * the log open for writing, or if damage is found that is not a torn tail.
 */
ML_API struct ml_log *ml_log_open(const struct ml_log_options *o);
/* What the open cut off or built again, in one line for a person (a torn batch cut, index
 * files rebuilt); "" when it found the log as it was left. */
ML_API const char *ml_log_recovered(struct ml_log *log);
/* Waits for pending appends, syncs, stops the flusher and frees the log. NULL is fine. */
ML_API void ml_log_close(struct ml_log *log);

/* Expected versions. Any value >= 0 is an exact version; 0 is the same as no stream. */
#define ML_EXPECT_ANY	    (-1)
#define ML_EXPECT_NO_STREAM 0
#define ML_EXPECT_EXISTS    (-2)
ML_API int ml_expect_parse(const char *s, int64_t *out);

/* An event to append. The bytes are borrowed for the duration of the submit call. */
struct ml_event_in {
	const char *stream;
	size_t stream_len;
	const char *type;
	size_t type_len;
	const char *id; /* 1 to 255 bytes; NULL: a UUIDv7 is generated */
	size_t id_len;
	const void *data; /* one msgpack object, or NULL/0 for none */
	size_t data_len;
	const void *meta; /* one msgpack map, or NULL/0 for none */
	size_t meta_len;
};

/* An expected-version guard on one stream of the batch. */
struct ml_expect_in {
	const char *stream;
	size_t stream_len;
	int64_t expected;
};

/*
 * The most events one batch holds, whoever makes it (a client, a script, another node's
 * journal entry): ten times what one append over RPC or HTTP may carry, and low enough
 * that decoding a hostile entry's event count allocates megabytes, not gigabytes.
 */
#define ML_BATCH_MAX_EVENTS 100000

/*
 * One append request: a batch. Fill the inputs, submit, and read the results
 * once it is done. The request must stay alive until then.
 */
struct ml_append {
	/* inputs */
	const struct ml_event_in *events;
	size_t n_events;
	const struct ml_expect_in *expect; /* guards; may be NULL */
	size_t n_expect;
	int system;	     /* allow stream names starting with '$' */
	uint64_t *positions; /* optional, n_events long: each event's position */
	uint64_t *versions;  /* optional, n_events long: each event's stream version */
	void (*done)(struct ml_append *req); /* async completion, run on the thread that
						completes it: the flusher, the kicking
						thread, or a writer's (log_writer.h) */
	void *arg;
	int kick_later; /* the flusher is not woken for this one (an awake flusher may still
			   take it): the submitter calls ml_log_kick once it has queued what
			   it has (see there) */

	/* results */
	enum ml_err err;	 /* ML_OK, or why the append failed */
	char errmsg[256];	 /* the reason, for a person */
	uint64_t first_position; /* of the batch (the first stored one if a duplicate) */
	uint64_t last_position;
	int duplicate;		/* 1: every id was already stored; nothing was written */
	int64_t actual_version; /* on ML_ERR_CONFLICT: the stream's version */

	/* the log's own bookkeeping while the request is in flight: not to be touched */
	struct {
		uint64_t opaque[6];
	} priv;
};

/*
 * Checks and queues an append. Returns -1 (with diag, and req->err/errmsg set)
 * if it is refused at once: a bad name, too large, a version conflict. Returns
 * 1 if it completed at once (a duplicate whose events are already visible;
 * done is not called). Returns 0 if queued: req->done will be called once it
 * is acknowledged or has failed (req->err).
 */
ML_API int ml_log_submit(struct ml_log *log, struct ml_append *req);
/*
 * Starts the writing of the appends submitted with kick_later. With the local
 * writer: when appends come one at a time (this one or two queued, and the
 * last group as small), and the flusher is idle, the calling thread writes
 * them itself (and syncs them, under ML_FSYNC_ALWAYS), which spares the two
 * thread hand-offs of a lone append (the flusher woken, the caller woken):
 * their done callbacks then run on this thread before ml_log_kick returns.
 * Otherwise the flusher is woken, so that under load the caller keeps its
 * thread while the disk syncs. Call it holding no lock that a done callback
 * takes.
 */
ML_API void ml_log_kick(struct ml_log *log);
/*
 * The nodes that share this log, for work that must run on one node at a time
 * (a handler; a group's share of the events): with a replicated writer
 * (log_writer.h) every node applies the same journal, and these say who is
 * there. ml_log_node is this node's id (NULL when the log is not shared: there
 * is no other node). ml_log_node_state tells what this node knows of a node by
 * its id: ML_NODE_ALIVE (this node, or heard from within the writer's timeout),
 * ML_NODE_GONE (not heard from for that long, or said it left), or
 * ML_NODE_UNKNOWN (too early to tell: this node has not been connected for the
 * timeout yet). Only a node's own word (its heartbeats) makes it alive: a node
 * that takes over another's work must also fence it (an expected version that
 * the other's later batches fail), since "gone" may be a node cut off for a
 * while that comes back.
 */
enum ml_node_state { ML_NODE_UNKNOWN = -1, ML_NODE_GONE = 0, ML_NODE_ALIVE = 1 };
ML_API const char *ml_log_node(struct ml_log *log);
ML_API enum ml_node_state ml_log_node_state(struct ml_log *log, const char *node, size_t len);

/* Submits and waits: 0 once acknowledged, -1 with diag on any failure. Ignores req->done. */
ML_API int ml_log_append(struct ml_log *log, struct ml_append *req);

/*
 * Like ml_log_append, but its events get time_ms (ms since the epoch) as their time
 * instead of the clock's: what `moonlog import` uses to keep the times an export
 * shows. Only with the local writer (a replicated log stamps its journal's entries).
 */
ML_API int ml_log_append_at(struct ml_log *log, struct ml_append *req, int64_t time_ms);

/* A stored event as read back. The pointers are valid only during the callback. */
struct ml_event {
	uint64_t position;
	uint64_t version;
	int64_t time; /* milliseconds since the Unix epoch, when appended */
	const char *stream;
	const char *type;
	const char *id;
	const uint8_t *data; /* msgpack bytes, as the client sent them; data_len 0 = none */
	const uint8_t *meta;
	uint32_t data_len, meta_len;
	uint8_t stream_len, type_len, id_len;
	uint8_t id_generated; /* the id was made by the log (the client gave none) */
};

/*
 * Appends the event as one JSON object, as HTTP and `--json` show it:
 * {"position":..,"stream":..,"version":..,"type":..,"id":..,"time":..,"data":..,"meta":..}
 * with data and meta converted as ml_msgpack_to_json does (null when absent).
 * 0, or -1 with a diag when they are not msgpack (out then holds part of it).
 */
ML_API int ml_event_json(struct ml_buf *out, const struct ml_event *e);

/* Called per event; return 0 to go on, 1 to stop early, -1 to fail the read (set diag). */
typedef int (*ml_event_fn)(const struct ml_event *e, void *arg);

/*
 * Reads the events of one stream from version `from` (inclusive; forward from 1
 * when 0), at most `limit` (0 = no limit). Backwards reads go down from `from`
 * (UINT64_MAX or 0 = from the last event). Returns the number of events
 * delivered, or -1.
 */
ML_API int64_t ml_log_read_stream(struct ml_log *log, const char *stream, size_t stream_len,
				  uint64_t from, uint64_t limit, int backwards, ml_event_fn fn,
				  void *arg);
/* Reads $all forward from position `from` (inclusive), at most `limit` (0 = all visible). */
ML_API int64_t ml_log_read_all(struct ml_log *log, uint64_t from, uint64_t limit, ml_event_fn fn,
			       void *arg);

/*
 * Reads $all forward like ml_log_read_all, but leaves out the events that
 * ml_log_removed says are removed (as of the call), and goes on past them until
 * `limit` events are delivered (0: to the head) or the head is reached: what a
 * person reading $all is shown. ml_log_read_all and ml_log_scan deliver every
 * stored event: their callers that show or fold events ask ml_log_removed
 * themselves (checking ml_log_any_removed once per batch).
 */
ML_API int64_t ml_log_read_all_kept(struct ml_log *log, uint64_t from, uint64_t limit,
				    ml_event_fn fn, void *arg);

/*
 * Reads $all forward like ml_log_read_all, from `from` (inclusive) to `until`
 * (inclusive; 0 = the head when called), but straight from the segment files
 * mapped a window at a time: the fast path for replays. The event's pointers
 * point into the mapping and are valid only during the callback.
 */
ML_API int64_t ml_log_scan(struct ml_log *log, uint64_t from, uint64_t until, ml_event_fn fn,
			   void *arg);

/* The --fsync mode the log was opened with. */
ML_API enum ml_fsync ml_log_fsync(struct ml_log *log);

/* The last acknowledged position (0 for an empty log). */
ML_API uint64_t ml_log_head(struct ml_log *log);
/*
 * The first position the log holds: 1, unless its first segments were dropped
 * (retention): positions and versions go on where they were, and reads start
 * here (reading $all from 1 gives the events from here; a stream read from
 * version 1 gives its events from the first one kept). head + 1 when it holds
 * none.
 */
ML_API uint64_t ml_log_first(struct ml_log *log);
/* A stream's version: its number of visible events; 0 when it does not exist. */
ML_API uint64_t ml_log_stream_version(struct ml_log *log, const char *stream, size_t len);

/*
 * Deletion and retention (docs/log.md, "Removed events"). A stream is deleted by
 * a `$deleted` event appended to it (data {hard = bool}: a hard delete is a
 * tombstone, and the name is never written again); its retention limits are the
 * latest `$metadata` event of its metadata stream `$meta-<stream>` (data
 * {max_age = seconds, max_count = n, truncate_before = version}, 0 for none).
 * Both are ordinary events, appended with `system` set, so they replicate and
 * recover like any other; the log keeps what they say as it indexes them.
 */
#define ML_DELETED_TYPE	 "$deleted"
#define ML_METADATA_TYPE "$metadata"
#define ML_META_PREFIX	 "$meta-"

struct ml_stream_meta {
	int64_t max_age;	  /* seconds: events older are removed; 0 none */
	uint64_t max_count;	  /* only the last max_count versions are kept; 0 none */
	uint64_t truncate_before; /* versions below are removed; 0 none */
	uint64_t deleted_before;  /* the version of its last $deleted event (those below are
				     removed); 0: never deleted */
	int hard;		  /* hard-deleted: a tombstone */
};

/*
 * THE predicate: is version `version` of `stream`, appended at time_ms, removed
 * as of now_ms (deleted, truncated, past max count or max age)? 1 removed, 0
 * kept. Every reader asks it (stream reads, $all reads and scans through their
 * callers, subscriptions, script rebuilds), and a scavenger drops what it says.
 * A function of the log's retention state (the acknowledged deletions and
 * metadata, and for max_count the stream's version), the event and now only.
 * Safe from any thread; do not call it holding a log callback's lock.
 */
ML_API int ml_log_removed(struct ml_log *log, const char *stream, size_t len, uint64_t version,
			  int64_t time_ms, int64_t now_ms);
/* 0 when no stream of the log has a deletion or metadata, so that nothing is removed:
 * a reader checks this once per read (or batch) and skips the predicate then. */
ML_API int ml_log_any_removed(struct ml_log *log);
/* A stream's deletion and limits as acknowledged: 1 and *out, or 0 (zeros) when it has none. */
ML_API int ml_log_stream_meta(struct ml_log *log, const char *stream, size_t len,
			      struct ml_stream_meta *out);
/* The first version of a stream that deletion, truncation and max count keep (1 when none);
 * *exact 0 when max age may remove some of the versions after it too. */
ML_API uint64_t ml_log_stream_floor(struct ml_log *log, const char *stream, size_t len, int *exact);
/*
 * The append that deletes a stream, or sets its metadata, by the log's rules:
 * every front builds it here and submits a->req like any append (`system` is
 * set; the event's bytes live in *a). Refused (-1 with diag ML_ERR_USAGE): a
 * name starting with '$' (moonlog's own streams), an empty or too long one,
 * metadata that is not a map of max_age, max_count, truncate_before with whole
 * numbers >= 0. A delete's "any" expected version means "the stream exists":
 * -1 with ML_ERR_NOT_FOUND when it never did; and a delete with "any" of a
 * stream already deleted the same way (soft and nothing appended since, or
 * hard) returns 1 without an append to make: a->req then holds the answer, the
 * existing $deleted event's position and version with `duplicate` set, as for
 * an idempotent append. Metadata keys not given keep the stream's current value
 * (nil or 0 removes one); its guard is on the metadata stream's version.
 */
struct ml_retention_append {
	struct ml_append req;
	struct ml_event_in ev;
	struct ml_expect_in guard;
	uint64_t position, version;
	char stream[256];
	uint8_t data[64];
};
ML_API int ml_log_prepare_delete(struct ml_log *log, struct ml_retention_append *a,
				 const char *stream, size_t len, int64_t expected, int hard);
/* A stream's metadata as one msgpack map appended to out: {max_age, max_count,
 * truncate_before, deleted (it reads as deleted: nothing appended since its last $deleted, or
 * hard), deleted_version, hard}, what metadata() and GET .../metadata answer. */
ML_API void ml_log_stream_meta_put(struct ml_log *log, const char *stream, size_t len,
				   struct ml_buf *out);
ML_API int ml_log_prepare_meta(struct ml_log *log, struct ml_retention_append *a,
			       const char *stream, size_t len, const void *map, size_t map_len,
			       int64_t expected);
/* A $metadata event's data from its limits, and back (0, or -1 with diag ML_ERR_USAGE when it
 * is not a map of those keys with whole numbers >= 0; nil is "none"). */
ML_API void ml_stream_meta_encode(const struct ml_stream_meta *m, struct ml_buf *out);
ML_API int ml_stream_meta_decode(const void *data, size_t len, struct ml_stream_meta *m);
/* The same, setting only the keys the map holds (nil or 0: that limit removed); the others
 * keep their value in m. */
ML_API int ml_stream_meta_merge(const void *data, size_t len, struct ml_stream_meta *m);

/* Lists streams whose name starts with `prefix` (NULL for all), in no set order. */
typedef int (*ml_stream_fn)(const char *name, size_t len, uint64_t version, void *arg);
ML_API int ml_log_streams(struct ml_log *log, const char *prefix, ml_stream_fn fn, void *arg);

/*
 * Called each time the head advances, whichever writer's batch moved it, on the
 * thread that acknowledged it (the flusher, or a thread in ml_log_kick), after
 * the done callbacks of the batches that moved it. Set it before appending.
 * Setting another (or NULL) waits until a call of the one before has returned,
 * so that its arg may then be freed: never do so from inside the callback.
 */
ML_API void ml_log_on_head(struct ml_log *log, void (*fn)(uint64_t head, void *arg), void *arg);

struct ml_log_stats {
	uint64_t head, streams, segments, bytes;
	uint64_t appends, events, syncs, groups; /* since open */
	uint64_t index_bytes;			 /* memory the index holds (the events not yet in
						    its files) */
	uint64_t index_blocks, index_runs;	 /* its blocks and runs in files */
	uint64_t index_pending;	  /* its work waiting: chunks ready to write, runs to merge */
	uint64_t open_ns;	  /* how long opening (recovery, index) took */
	uint64_t truncated_bytes; /* cut off by recovery at open */
	uint64_t index_rebuilt;	  /* segments indexed again at open */
};
ML_API void ml_log_stats(struct ml_log *log, struct ml_log_stats *out);

/*
 * A consistent copy of a running log (moonlog backup, docs/operations.md): the
 * files that hold it up to `position`, the head when it was called. A file with
 * `whole` 1 never changes again and may be hard-linked or copied whole (a .run
 * may be removed by a merge before it is copied: leave it out then, the copy's
 * first open builds it); one with `whole` 0 (the last segment) is copied up to
 * `size` bytes, which never change. The files are in `dir`, the log's folder
 * (DATA/log). `retention` holds the retention file (DATA/log/retention: the
 * deletions and metadata in force) as of `position`, for the copy to write as
 * its own: the log's file may stand for a later head, which a copy's open would
 * not take, and a copy's open cannot rebuild what was in segments dropped from
 * the front. 0 always (the call cannot fail); free with ml_backup_free.
 */
struct ml_backup_file {
	char name[64];
	uint64_t size; /* whole 0: the bytes to copy */
	int whole;
};
struct ml_backup {
	uint64_t position, first; /* the last position the files hold; the first */
	char dir[4096];
	struct ml_backup_file *files;
	size_t n;
	void *retention; /* the bytes of DATA/log/retention as of position (NULL: none) */
	size_t retention_len;
};
ML_API int ml_log_backup_files(struct ml_log *log, struct ml_backup *out);
ML_API void ml_backup_free(struct ml_backup *b);

/*
 * Scavenging (docs/log.md, Scavenged segments): rewrites the log's finished
 * segments without the bytes of removed events, while appends, reads and
 * subscriptions go on. `removed` says of each stored event whether it is
 * removed (1) or kept (0); it is called on the scavenging thread, without the
 * log's lock. A removed event leaves a stub in the rewritten segment (its stream,
 * type, position, version and time: no id, meta or data), so that positions and
 * versions never change, the index can always be built again from the segment,
 * and every reader skips it. Segments are rewritten one at a time to temporary
 * files, synced and renamed over the old ones: a crash at any moment leaves
 * either segment whole. The segment being written to, and one whose index is
 * not yet in its file, are left for a later scavenge. One scavenge runs at a
 * time: 0 and the result, or -1 with diag (ML_ERR_BUSY when one runs already).
 */
typedef int (*ml_removed_fn)(const struct ml_event *e, void *arg);
struct ml_scavenge_stats {
	int running;			  /* a scavenge is running now */
	uint64_t segments, segments_done; /* the finished segments it looks at; done so far */
	uint64_t rewritten;		  /* segments rewritten (with at least one event removed) */
	uint64_t events_removed;	  /* events that became stubs in this scavenge */
	uint64_t bytes_read, bytes_written; /* of segments, so far */
	uint64_t bytes_reclaimed;	    /* disk given back: old files' sizes minus the new */
	uint64_t started_ms, elapsed_ms;    /* when it started (wall clock); how long it took */
	char error[256];		    /* why it failed or stopped, or "" */
};
ML_API int ml_log_scavenge(struct ml_log *log, ml_removed_fn removed, void *arg,
			   struct ml_scavenge_stats *out);
/* A scavenge that removes what the log's own predicate says is removed now (ml_log_removed:
 * deleted, truncated, past max count or max age): `moonlog scavenge`. */
ML_API int ml_log_scavenge_removed(struct ml_log *log, struct ml_scavenge_stats *out);
/* The running scavenge's progress, or the last one's result (all 0 before the first). */
ML_API void ml_log_scavenge_progress(struct ml_log *log, struct ml_scavenge_stats *out);
/* Asks a running scavenge to stop once the segment it is rewriting is in (it then fails
 * with ML_ERR_BUSY); call it before ml_log_close when a scavenge may run on another thread,
 * and wait for that to return. */
ML_API void ml_log_scavenge_stop(struct ml_log *log);

/*
 * Verifies every record of every segment in DIR/log without opening the log
 * for writing. Prints nothing; fills the report. Returns 0 if all is well, -1
 * with diag naming the first bad record (segment file and offset).
 *
 * A torn tail (an unfinished last batch at the end of the last segment, what a
 * crash in the middle of a write leaves) is not damage: it was never
 * acknowledged and the next open cuts it off (the same rule decides both).
 * Nor is a lost write: damage in the last segment with whole batches after it
 * that all say (by the synced position each batch carries) that they were
 * written before the damaged records were synced, which a power loss leaves
 * when the disk wrote the last write's pages out of order. check returns 0 for
 * either and sets torn_tail, torn_offset and torn_bytes (and lost_write and
 * lost_batches for the second). With `repair` 1, that tail is cut off (and
 * only it: damage that a later batch says was synced is reported, not cut);
 * with 2, damage in the last segment is cut off even then (what follows it is
 * lost).
 *
 * The index files are verified too, against the records: a damaged one fails
 * the check (bad_index names it) and, with repair, is removed, for the next
 * open to build again from the segment.
 */
struct ml_check_report {
	uint64_t segments, records, batches, last_position;
	uint64_t bad_offset;   /* of the first bad record */
	char bad_segment[64];  /* its file name, empty if none */
	int torn_tail;	       /* the last segment ends in a torn batch (not damage) */
	uint64_t torn_offset;  /* where that batch starts: open cuts the segment there */
	uint64_t torn_bytes;   /* how much of it was written (zeros after it not counted) */
	int lost_write;	       /* that tail is the last write's, damaged by a power loss */
	uint64_t lost_batches; /* the whole batches of that write after the damage */
	uint64_t cut_bytes;    /* removed by --repair */
	/* the index files (docs/log.md): blocks and runs verified, records no block holds
	 * yet (the next open walks them, or indexes their segment again), the first damaged
	 * index file, and how many damaged ones --repair removed (the next open builds them) */
	uint64_t index_blocks, index_runs, unindexed;
	char bad_index[64];
	uint64_t index_removed;
	uint64_t scavenged, stubs; /* segments a scavenge rewrote; the removed events' stubs */
};
ML_API int ml_log_check(const char *dir, int repair, struct ml_check_report *r);
/* The same, calling progress before each segment: the report so far, the segment's index
 * (from 0) and how many there are (for a progress line). */
typedef void (*ml_check_progress_fn)(const struct ml_check_report *r, size_t segment,
				     size_t segments, void *arg);
ML_API int ml_log_check_progress(const char *dir, int repair, struct ml_check_report *r,
				 ml_check_progress_fn progress, void *arg);

#endif
