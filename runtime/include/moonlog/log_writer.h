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
 *     ml_log_on_head is called then. A writer never moves the head itself: what
 *     another node wrote reaches this node's readers by being applied.
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
};

struct ml_log_writer {
	const struct ml_log_writer_ops *ops;
	struct ml_log *log; /* set by ml_log_set_writer */
};

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

#endif
