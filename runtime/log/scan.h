/*
 * scan.h - walking the records of one segment (private to log/).
 *
 * Used by recovery at open and by `moonlog check`. The walk delivers only the
 * records of complete batches, and tells what a crash or a power loss leaves
 * from damage:
 *
 *   a torn tail: an unfinished or damaged last batch, nothing valid after it
 *   (a crash in the middle of a write);
 *   a lost flush: damage with valid batches after it, where every batch after
 *   it says (by its synced position, ML_REC_SYNCED) that it was written before
 *   the damaged records were synced: they all belong to the last write, whose
 *   sync never finished, and a disk that lost power wrote its pages out of
 *   order (records of format 1 carry no synced position: never this);
 *   damage: anything else, such as a bad record that a later batch says was
 *   synced before it was written.
 */
#ifndef ML_LOG_SCAN_H
#define ML_LOG_SCAN_H

#include "log/record.h"

enum ml_scan_status {
	ML_SCAN_CLEAN,	 /* complete batches, then nothing or only zeros */
	ML_SCAN_TORN,	 /* an unfinished or damaged last batch, nothing valid after it */
	ML_SCAN_FLUSH,	 /* damage with valid batches after it, all of the last, unsynced write */
	ML_SCAN_DAMAGED, /* a bad record that valid batches after it say was synced: damage */
};

struct ml_scan {
	uint64_t start;		/* in: the offset to start at (0: after the segment's header) */
	int scavenged;		/* in: the segment is of format 3: its stubs are valid */
	uint64_t next_position; /* in: the position the first record must have; out: after */
	uint64_t good_end;	/* offset just past the last complete batch (zeros may follow) */
	uint64_t bad_offset;	/* where the walk stopped, if not clean */
	enum ml_scan_status status;
	const char *why; /* what was wrong at bad_offset */
	uint64_t records, batches;
	uint64_t after_batches; /* ML_SCAN_FLUSH: the valid batches after the damage */
	uint64_t after_last;	/* ML_SCAN_FLUSH: the last position they hold */
};

/* Called for each record of a complete batch, in order; non-zero stops the walk. */
typedef int (*ml_scan_fn)(const struct ml_rec *r, uint64_t offset, void *arg);

/* Walks p[start .. size); verify: check each record's crc. */
void ml_scan_segment(const uint8_t *p, uint64_t size, int verify, struct ml_scan *s, ml_scan_fn fn,
		     void *arg);

/*
 * The one rule for what a crash or a power loss may leave: a torn tail or a
 * lost flush of the last segment, which open cuts off at good_end (it was
 * never acknowledged; under --fsync batch or never, never synced). Anything
 * else that is not clean is damage. Open and check both decide with this.
 */
static inline int ml_scan_torn_tail(const struct ml_scan *s, int last_segment)
{
	return last_segment && (s->status == ML_SCAN_TORN || s->status == ML_SCAN_FLUSH);
}

#endif
