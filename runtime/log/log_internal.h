/*
 * log_internal.h - the parts of the log shared by its files (private to log/).
 *
 * Locking: one mutex guards everything below except what only the flusher
 * thread touches while it writes (the in-flight buffer and the fds it writes).
 * Appenders check and reserve under the mutex and copy their records into the
 * pending buffer; the flusher swaps the pending buffer for an empty one, writes
 * and syncs it without the mutex, then takes the mutex to publish the new head.
 */
#ifndef ML_LOG_INTERNAL_H
#define ML_LOG_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <moonlog/log.h>
#include <moonlog/log_writer.h>
#include <moonlog/util.h>

struct ml_seg {
	uint64_t first;	      /* position of its first record */
	uint64_t end;	      /* bytes reserved: where the next record goes */
	uint64_t durable_end; /* bytes written and acknowledged */
	uint64_t zeroed_end;  /* the file is written (records, then zeros) up to here */
	uint64_t data_end;    /* the flusher writes records up to here (zeros.c stays past it) */
	uint64_t claim_end;   /* zeros.c is filling [zeroed_end, claim_end); 0 when idle */
	int sealed;	      /* finished (or no zeros to be had): zeros.c leaves it alone */
	int fd;		      /* -1 until the flusher has created the file */
	int full;	      /* takes no more records: the next batch starts a new segment */
	uint32_t format;      /* its header's format version (record.h) */
	uint32_t scavenges;   /* how many times a scavenge rewrote it (its header says) */
	int idx_fd;	  /* idxfile.c: the temporary index file while it is built whole, or -1 */
	uint64_t idx_end; /* idxfile.c: where the next block goes in its index file (0: none) */
	uint8_t *rmap;	  /* read.c: the file mapped read-only from 0 (NULL: not yet) */
	uint64_t rmap_len;
};

/* A read mapping replaced by a longer one: readers may still be in it until close. */
struct ml_old_map {
	void *p;
	size_t len;
	struct ml_old_map *next;
};

/* A segment's file descriptor and mapping replaced by a scavenge: readers that took them before
 * may still be in them; freed when the last reader leaves (read.c). */
struct ml_retired {
	int fd;
	void *map;
	size_t len;
	struct ml_retired *next;
};

/*
 * The log's bookkeeping for a request in flight, kept in the opaque `priv`
 * area of struct ml_append (so callers can keep requests on their stack, and
 * see none of it). may_alias: the area is declared as integers.
 */
enum ml_append_state { ML_APPEND_IDLE, ML_APPEND_QUEUED, ML_APPEND_DONE };

struct __attribute__((may_alias)) ml_req {
	uint32_t state; /* enum ml_append_state; a futex word */
	struct ml_append *next;
	struct ml_seg *seg;
	uint64_t file_offset, buf_offset, nbytes;
};

_Static_assert(sizeof(struct ml_req) <= sizeof(((struct ml_append *)0)->priv),
	       "struct ml_req must fit in struct ml_append's priv area");

static inline struct ml_req *ml_req_of(struct ml_append *r)
{
	return (struct ml_req *)(void *)&r->priv;
}

/* A buffer of encoded batches and the requests they belong to. */
struct ml_flushbuf {
	struct ml_buf bytes;
	struct ml_append *head, *tail;
	size_t requests;
	uint64_t last_position;
	uint64_t last_seq; /* of the last batch in it applied from a journal, or 0 */
	uint64_t synced;   /* the synced position its batches carry (store.c) */
};

struct ml_chunk;
struct ml_block;
struct ml_run;

struct ml_log {
	struct ml_log_options opt;
	char *dir, *logdir;
	int dirfd, lockfd;
	struct ml_log_writer *writer;	   /* behind the front: &local_writer, or one set */
	struct ml_log_writer local_writer; /* writer.c */

	pthread_mutex_t mu;
	pthread_cond_t flush_cv; /* wakes the flusher */
	pthread_cond_t zero_cv;	 /* wakes the zero writer, and whoever waits for it */
	pthread_t zero_thread;
	int zero_running;
	pthread_t flusher;
	int flusher_running, stopping, flusher_waiting;
	int flusher_idle;  /* the flusher waits for work (not gathering a group) */
	int flushing;	   /* a write-and-sync cycle runs, on the flusher or in ml_log_kick */
	uint64_t cycle_ns; /* how long the last cycle took */

	/* reserved state: includes appends not yet acknowledged */
	uint64_t first; /* the first position the log holds (its first segment's) */
	uint64_t next_position;
	struct ml_seg **segs; /* each allocated once: the flusher holds pointers */
	size_t nsegs, segs_cap;

	/* the index (index.h): chunks in memory, blocks and runs in files */
	uint64_t seed;	      /* of every hash the index files hold (index.seed) */
	uint32_t index_block; /* events in a chunk */
	struct ml_chunk *chunks, *chunk_newest; /* oldest first */
	struct ml_block **blocks;		/* in position order */
	size_t nblocks, blocks_cap;
	struct ml_run **runs; /* oldest first; each covers the blocks after the one before */
	size_t nruns, runs_cap;
	uint64_t indexed_seq; /* the journal sequence the last block written carries */
	pthread_t indexer, merger;
	int indexer_running, merger_running, index_stopping;
	int merging; /* the merger is merging two runs */
	pthread_cond_t index_cv, merge_cv;
	char index_error[256]; /* the last failure to write the index (retried), or "" */

	uint64_t last_seq; /* the journal sequence of the last batch applied, or 0 */
	int apply_stalled; /* a write failed: applies wait for ml_log_apply_resume */

	/* acknowledged state */
	uint64_t head;
	uint64_t applied_seq;	  /* last_seq, acknowledged (and found at open) */
	uint64_t synced_position; /* fsync batch mode: what is known on disk */
	uint64_t last_sync_ns;

	struct ml_flushbuf pending, inflight;
	struct ml_seg *flush_seg; /* the segment the flusher writes to: flusher only */
	size_t last_group;	  /* requests in the last group written: how many to gather */

	void (*on_head)(uint64_t head, void *arg);
	void *on_head_arg;
	int on_head_calls, on_head_waiters; /* calls running; ml_log_on_head waiting for them */
	pthread_cond_t head_cv;		    /* the last running call returned */

	struct ml_old_map *old_maps; /* read.c */
	struct ml_retention *ret;    /* retention.c: deletions and metadata */
	int readers; /* read.c: reads using segments' fds or maps outside the mutex */
	struct ml_retired *retired; /* read.c: what they may still use, freed when none does */

	int scavenging;		       /* scavenge.c: a scavenge runs */
	int scavenge_stop;	       /* scavenge.c: it is asked to stop */
	struct ml_scavenge_stats scav; /* its progress, or the last one's result */

	char broken[256];    /* set when a failed write could not be undone: refuse appends */
	char recovered[512]; /* what the open cut or built again, for a log line; or "" */
#ifdef ML_FAULT_INJECTION
	int fault_write, fault_sync; /* faults.h: injected errno for the next write / sync */
	void (*scavenge_step)(int step, uint64_t first, void *arg); /* faults.h */
	void *scavenge_step_arg;
#endif
	struct ml_log_stats stats;
};

/* read.c: unmaps every read mapping (at close) */
void ml_log_unmap_all(struct ml_log *log);
/* read.c: a read that will use segments' fds or mappings outside the mutex enters before it
 * lets go of the mutex and leaves after taking it again (mutex held for both); what a
 * scavenge replaced is closed when the last reader leaves. */
static inline void ml_log_reader_enter(struct ml_log *log)
{
	log->readers++;
}
void ml_log_reader_leave(struct ml_log *log);
/* read.c: hands a segment's old fd and mapping (either may be -1 / NULL) to the readers that
 * may still use them: freed at once if there are none (mutex held). */
void ml_log_retire(struct ml_log *log, int fd, void *map, size_t len);

/* log.c: the segment holding a position (which must be reserved). */
size_t ml_log_seg_index(struct ml_log *log, uint64_t position); /* its index in segs */
struct ml_seg *ml_log_seg_of(struct ml_log *log, uint64_t position);

/* open.c */
/* Creates a segment's file (header, sync, rename, sync the folder): its fd, or -1. */
int ml_log_create_segment(struct ml_log *log, uint64_t first);
/* pwrite of all n bytes at off, through EINTR and short writes; 0, or -1 with errno (ENOSPC
 * for a write of nothing). idxfile.c. */
int ml_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);

/* append.c: blocking appenders wait on their own request */
void ml_append_wait(struct ml_append *req);
void ml_append_wake(struct ml_append *req);

/* How a batch reaches the store: NULL for a local append (stamped now), this for an
 * entry of a replicated journal (entry.c, ml_log_apply), or this with seq 0 for a local
 * append that keeps a time it was given (ml_log_append_at: an import). */
struct ml_stamp {
	int64_t time; /* its events' time, as its submitter gave it */
	uint64_t seq; /* the entry's sequence in the journal, > 0; 0 for a local append */
};

/* store.c: checks a batch against the log (ids, expected versions), reserves and queues
 * it for the flusher; returns as ml_log_submit. ids as for ml_log_writer_ops.submit. */
int ml_store_submit(struct ml_log *log, struct ml_append *req, char (*ids)[37],
		    const struct ml_stamp *st);

/* flush.c: the flusher thread, and a kick (see ml_log_kick) */
int ml_log_flusher_start(struct ml_log *log);
void ml_log_flusher_stop(struct ml_log *log);
void ml_store_kick(struct ml_log *log);

/* writer.c */
void ml_log_writer_local_init(struct ml_log *log);

/* A finished request: its done callback runs, or its waiter wakes (it may be gone after). */
static inline void ml_append_finish(struct ml_append *req)
{
	if (req->done) {
		ml_req_of(req)->state = ML_APPEND_DONE;
		req->done(req);
	} else {
		ml_append_wake(req);
	}
}

/* zeros.c: the zero writer thread, and what the flusher tells it */
int ml_log_zeros_start(struct ml_log *log);
void ml_log_zeros_stop(struct ml_log *log);
/* Before the flusher writes records up to `end` of seg (takes the mutex). */
void ml_log_zeros_before_write(struct ml_log *log, struct ml_seg *seg, uint64_t end);
/* Waits until no zeros are being written to seg (mutex held). */
void ml_log_zeros_settle(struct ml_log *log, struct ml_seg *seg);

/* read.c: copies the record at a position into buf (the caller holds mu); 0 or -1. */
int ml_log_record_at(struct ml_log *log, uint64_t position, struct ml_buf *buf);

#endif
