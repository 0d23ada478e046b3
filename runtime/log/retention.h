/*
 * retention.h - which streams have deletions or retention metadata, kept by
 * the log where it indexes records (private to log/; retention.c).
 *
 * Deletions and metadata are ordinary events, so they replicate and recover
 * like any other: a `$deleted` event in the stream itself (data {hard = bool})
 * and a `$metadata` event in the stream's metadata stream `$meta-<stream>`
 * (data {max_age = seconds, max_count = n, truncate_before = version}). The
 * log notes them as they are reserved (store.c), applies them to the state
 * that readers see once they are acknowledged (flush.c), forgets them when a
 * write fails, and writes that state with its head to DATA/log/retention each
 * time the index writes a block (indexer.c), so that an open reads that file
 * and scans only the records after it.
 */
#ifndef ML_LOG_RETENTION_H
#define ML_LOG_RETENTION_H

#include <stddef.h>
#include <stdint.h>

struct ml_log;
struct ml_event_in;
struct ml_append;
struct ml_buf;

#define ML_RET_FILE "retention"

/* The state of no retention at all, made at open. */
struct ml_retention *ml_ret_new(struct ml_log *log);
void ml_ret_free(struct ml_retention *rt);

/* At the end of an open (head known, no thread running): reads DATA/log/retention and
 * scans the records after it. 0, or -1 with diag. */
int ml_ret_open(struct ml_log *log);

/* Is the event that will be `position`, at `version`, a deletion or metadata? Notes it
 * (mutex held; from reserve). Only events whose type starts with '$' can be. */
void ml_ret_note(struct ml_log *log, const struct ml_event_in *e, uint64_t position,
		 uint64_t version);
/* Refuses (ml_append_refuse, -1) a batch that writes to a hard-deleted stream, or to the
 * metadata of one (mutex held). */
int ml_ret_check(struct ml_log *log, struct ml_append *req);
/* The head moved: the changes up to it are what readers see now (mutex held). */
void ml_ret_ack(struct ml_log *log, uint64_t head);
/* A failed write: forgets the changes after `position` (mutex held). */
void ml_ret_rollback(struct ml_log *log, uint64_t position);
/* The index wrote a block, or the log closes (no lock held): writes the state readers see,
 * with the head it stands for, to the retention file. */
void ml_ret_save(struct ml_log *log);
/* The retention file's bytes as of the head, appended to an empty out (log->mu held, so that
 * every change up to the head is in the state); nothing before the open has read it. */
void ml_ret_file_bytes(struct ml_log *log, struct ml_buf *out);

#endif
