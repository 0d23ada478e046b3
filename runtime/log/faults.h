/*
 * faults.h - failing the log's writes on purpose, for the unit tests.
 *
 * Compiled only into the copy of the log that the unit tests link (the CMake
 * target moonlog_log_faults, built with ML_FAULT_INJECTION): no shipped build
 * can fail a write on purpose.
 */
#ifndef ML_LOG_FAULTS_H
#define ML_LOG_FAULTS_H

#ifndef ML_FAULT_INJECTION
#error "log/faults.h is for the unit tests: only they are built with ML_FAULT_INJECTION"
#endif

#include <stdint.h>

struct ml_log;

/* Makes the next write (on_write 1) or fdatasync (0) of a write cycle fail with errno `err`. */
void ml_log_inject_fault(struct ml_log *log, int on_write, int err);

/* The steps of a scavenge's rewrite of one segment (scavenge.c), where a test can stop it
 * (kill the process) to see what a crash there leaves. */
enum ml_scavenge_step {
	ML_SCAV_SEG_WRITTEN = 1, /* <first>.seg.tmp written and synced */
	ML_SCAV_IDX_WRITTEN,	 /* <first>.idx.tmp too */
	ML_SCAV_SEG_RENAMED,	 /* the segment renamed over the old one */
	ML_SCAV_IDX_RENAMED,	 /* the index file too */
	ML_SCAV_DIR_SYNCED,	 /* the folder synced: the rewrite is complete on disk */
	ML_SCAV_SWAPPED,	 /* readers use the new files */
};
/* Calls fn at each step of each segment a scavenge rewrites (first: the segment's). */
void ml_log_scavenge_steps(struct ml_log *log, void (*fn)(int step, uint64_t first, void *arg),
			   void *arg);

#endif
