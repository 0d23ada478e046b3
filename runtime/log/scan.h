/*
 * scan.h - walking the records of one segment (private to log/).
 *
 * Used by recovery at open and by `moonlog check`. The walk delivers only the
 * records of complete batches, and tells a torn tail (an unfinished last
 * batch, unwritten space) from damage (a bad record with good ones after it).
 */
#ifndef ML_LOG_SCAN_H
#define ML_LOG_SCAN_H

#include "log/record.h"

enum ml_scan_status {
	ML_SCAN_CLEAN,	 /* complete batches, then nothing or only zeros */
	ML_SCAN_TORN,	 /* an unfinished or damaged last batch, nothing valid after it */
	ML_SCAN_DAMAGED, /* a bad record with valid batches after it: not a torn write */
};

struct ml_scan {
	uint64_t start;		/* in: the offset to start at (0: after the segment's header) */
	uint64_t next_position; /* in: the position the first record must have; out: after */
	uint64_t good_end;	/* offset just past the last complete batch (zeros may follow) */
	uint64_t bad_offset;	/* where the walk stopped, if not clean */
	enum ml_scan_status status;
	const char *why; /* what was wrong at bad_offset */
	uint64_t records, batches;
};

/* Called for each record of a complete batch, in order; non-zero stops the walk. */
typedef int (*ml_scan_fn)(const struct ml_rec *r, uint64_t offset, void *arg);

/* Walks p[start .. size); verify: check each record's crc. */
void ml_scan_segment(const uint8_t *p, uint64_t size, int verify, struct ml_scan *s, ml_scan_fn fn,
		     void *arg);

/*
 * The one rule for what a crash may leave: a torn tail of the last segment,
 * which open cuts off at good_end (it was never acknowledged). Anything else
 * that is not clean is damage. Open and check both decide with this.
 */
static inline int ml_scan_torn_tail(const struct ml_scan *s, int last_segment)
{
	return last_segment && s->status == ML_SCAN_TORN;
}

#endif
