/*
 * log_writer.h - the seam behind ml_log_submit: how a batch gets its order and
 * becomes durable. For those who write a writer (a plugin); everyone else
 * appends and reads through log.h.
 *
 * Every caller goes through the front in log.h (ml_log_submit, ml_log_kick,
 * ml_log_append, the reads). The front checks what a batch is (names, sizes,
 * msgpack shape, an id given twice), makes the ids of the events that have
 * none, and hands the batch to the log's writer. Two kinds of writer:
 *
 *   local (the default): this process orders and syncs the batch. Under the
 *   log's mutex the batch is checked against the log (duplicate ids, expected
 *   versions) and given its positions; the flusher thread writes it and, under
 *   --fsync always, fdatasyncs it together with whatever queued meanwhile
 *   (group commit); a lone append is written by the thread that kicks the log.
 *
 *   replicated: another system orders the batch and keeps it, and every node
 *   applies it. The writer encodes the batch as a journal entry
 *   (ml_log_entry_encode) and publishes it to a shared, ordered journal. Every
 *   node tails the journal and hands each entry, in the journal's order, to
 *   ml_log_apply, which checks it against that node's log with the same code
 *   as a local append (so every node accepts and refuses the same entries, and
 *   gives every event the same position) and writes it with the local flusher.
 *   The node that published a batch completes its request when its own apply
 *   reaches that entry, with the outcome the apply found: appended at these
 *   positions, a version conflict, a duplicate (ml_log_writer_done).
 *
 * What differs, and where it lives:
 *
 *   submitting a batch: ops->submit; ops->kick is "the caller has queued what
 *     it has for now (the kick_later ones): start", the place for group commit
 *     (the local writer writes a lone append on the kicking thread; a
 *     replicated one can publish what gathered as one message);
 *   being told it is durable, or refused with the reason: the writer completes
 *     each request it took exactly once, with ml_log_writer_done (the local
 *     writer's flusher does it itself); a refusal at once is ml_append_refuse;
 *   learning that the head moved: the head belongs to the local segment log,
 *     which is every writer's read side (reads, the index, ml_log_scan). It
 *     moves only when a batch written to that log is acknowledged, whoever
 *     submitted it (here, or another node whose entry was applied here), and
 *     ml_log_on_head is called then. An applied batch is acknowledged once
 *     written, before its sync (the journal keeps it already); its request
 *     still completes after the sync. A writer never moves the head itself:
 *     what another node wrote reaches this node's readers by being applied.
 *
 * Threads: submit and kick run on the submitter's thread and must not block
 * on the disk or the network for long; ml_log_writer_done may be called from
 * any thread, without locks a done callback takes.
 */
#ifndef MOONLOG_LOG_WRITER_H
#define MOONLOG_LOG_WRITER_H

#include <moonlog/api.h>
#include <moonlog/diag.h>
#include <moonlog/log.h>

struct ml_log_writer;

struct ml_log_writer_ops {
	const char *name; /* "local", "jetstream": for messages */
	/*
	 * Takes one batch the front has checked. ids[i] is the id made for event
	 * i when it has none (36 characters; ids is NULL when every event has one).
	 * The batch's bytes and ids are borrowed for the call only. Returns as
	 * ml_log_submit does: -1 refused at once (ml_append_refuse), 1 complete at
	 * once, 0 taken: the writer completes it later with ml_log_writer_done.
	 */
	int (*submit)(struct ml_log_writer *w, struct ml_append *req, char (*ids)[37]);
	/* ml_log_kick: the submitter has queued what it has for now. */
	void (*kick)(struct ml_log_writer *w);
	/* At ml_log_close, first: complete every request taken, stop the writer's threads.
	 * The log's flusher still runs (it stops after). */
	void (*stop)(struct ml_log_writer *w);
	/* After stop, when the log is gone: frees the writer. */
	void (*free)(struct ml_log_writer *w);
	/*
	 * The nodes that share the journal, for work that runs on one node at a
	 * time (ml_log_node, ml_log_node_state in log.h): this node's id, and what
	 * this node knows of another one. NULL in a writer with no other nodes
	 * (the local one). Called from any thread.
	 */
	const char *(*node)(struct ml_log_writer *w);
	enum ml_node_state (*node_state)(struct ml_log_writer *w, const char *node, size_t len);
};

struct ml_log_writer {
	const struct ml_log_writer_ops *ops;
	struct ml_log *log; /* set by ml_log_set_writer */
};

/*
 * Completes every request the writer took and stops its threads (ops->stop), before
 * ml_log_close does: for a front whose appends still wait at shutdown (a replicated node
 * whose disk is full, or whose NATS is away), which the writer then fails with an unknown
 * outcome once its own grace has passed. Safe to call again; ml_log_close calls it too.
 */
ML_API void ml_log_stop_writer(struct ml_log *log);

/*
 * Puts w behind the log's front, in place of the local writer; the log owns it
 * from then on (ops->free at close). Call it before the first append, with no
 * append in flight. -1 with diag if the log is read-only.
 */
ML_API int ml_log_set_writer(struct ml_log *log, struct ml_log_writer *w);
/* The name of the writer behind the log's front ("local" unless one was set). */
ML_API const char *ml_log_writer_name(struct ml_log *log);

/*
 * Completes a request the writer took: copies the outcome (err, errmsg,
 * first_position, last_position, duplicate, actual_version; the writer fills
 * req's positions and versions itself, if it asked for them) and runs req's
 * done callback, or wakes its ml_log_append. req may be gone once it returns.
 * outcome may be req itself.
 */
ML_API void ml_log_writer_done(struct ml_append *req, const struct ml_append *outcome);

/* Refuses a request at once: sets err, errmsg and diag; returns -1, for ops->submit. */
ML_API int ml_append_refuse(struct ml_append *req, enum ml_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- replicated writers: journal entries and applying them ---- */

/*
 * Encodes a batch that ops->submit took (with its made ids, as submit got
 * them) as one journal entry, appended to out: its events, ids, expected
 * versions, system flag, and `time` (ms since the epoch: the time every node
 * will store). Not its positions: each node's apply finds them.
 */
struct ml_buf;
ML_API void ml_log_entry_encode(const struct ml_append *req, char (*ids)[37], int64_t time,
				struct ml_buf *out);

/*
 * Applies the journal entry numbered `seq` (> 0, each higher than the last
 * written here) to this log: checks it against the log exactly as a local
 * append is checked (names, sizes, duplicate ids, expected versions: the same
 * code), then writes it with the local flusher and moves the head. Call it for
 * every entry, in the journal's order, from one thread.
 *
 * req receives the outcome; set only done, arg, kick_later, and positions and
 * versions if wanted (as long as the entry's events). The entry's bytes are
 * borrowed for the call. Returns as ml_log_submit: -1 refused, 1 complete at
 * once (a duplicate), 0 queued (done is called once it is durable).
 *
 * An outcome is the same on every node that applies the same entries: an
 * append at the same positions, a duplicate of the same events, or a refusal
 * (ML_ERR_CONFLICT, ML_ERR_USAGE, ML_ERR_REFUSED, ML_ERR_CORRUPT for bytes that
 * are not an entry) with the same message. Duplicates are found alike because
 * every node remembers every client-chosen id it applied, however old, whether
 * it ran on or restarted (the index keeps them all; nodes must share
 * max_event_size). ML_ERR_IO is not an
 * outcome but this node's failure (a full disk): every entry not yet durable
 * is undone, later applies are refused until ml_log_apply_resume, and the
 * writer applies again from the entry after the sequence that returns.
 */
ML_API int ml_log_apply(struct ml_log *log, struct ml_append *req, const void *entry, size_t len,
			uint64_t seq);
/* Starts the writing of applies made with kick_later (ml_log_kick does so for submits). */
ML_API void ml_log_apply_kick(struct ml_log *log);

/*
 * Where this log stands in the journal: the sequence of the last entry whose
 * batch is written here and acknowledged (0 for none). Each batch written by an
 * apply carries its entry's sequence (in its last record, under the checksum:
 * a torn batch takes it along), so after a crash or a restart this is found
 * again, and the writer resumes with the entry after it. Entries after it
 * that wrote nothing (refused, or duplicates) are then applied again and give
 * the same outcome: they changed nothing. A log that applied entries refuses
 * local appends (the local writer), which would part it from the other nodes.
 */
ML_API uint64_t ml_log_applied_seq(struct ml_log *log);
/* After an ML_ERR_IO outcome: lets applies in again; returns ml_log_applied_seq. */
ML_API uint64_t ml_log_apply_resume(struct ml_log *log);
/*
 * Whether the log is broken: a sync failed after its entries were shown to readers (or an
 * undo failed), so it takes no append or apply until moonlog restarts. 1 and the reason in
 * why (n bytes at most), or 0. An ML_ERR_IO outcome from a broken log is final: applying
 * again cannot succeed, unlike after a failed write (a full disk).
 */
ML_API int ml_log_broken(struct ml_log *log, char *why, size_t n);

#endif
