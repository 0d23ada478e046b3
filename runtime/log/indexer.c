/*
 * indexer.c - the two threads that keep the index in files: the indexer
 * writes each ready chunk down as a block, and the merger merges runs.
 *
 * A chunk is ready when every event in it is acknowledged and nothing more
 * will join it (it is full, or a newer chunk started: its segment ended). Its
 * block goes into its segment's index file; under the mutex the block takes
 * the chunk's place, in the same step, so a lookup finds the events in one or
 * the other. Under --fsync batch or never the segment is synced first: a
 * block only ever stands for records that are on disk.
 *
 * The merger keeps the runs few: while a run is not larger than the one after
 * it, the two are merged (run.c), outside the mutex; the new run takes their
 * place under it. A failure to write (a full disk) is kept in index_error and
 * tried again a second later; meanwhile the chunks wait in memory.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "log/index.h"
#include "log/log_internal.h"
#include "log/retention.h"

/*
 * Under --fsync always a block is written only for records synced: entries of a
 * journal are published before their sync (flush.c), and a block must never
 * stand for records the disk may not keep (the indexer syncs nothing itself
 * there, so that no sync of its own can take a failure the flusher must see).
 */
int ml_chunk_ready(const struct ml_log *log, const struct ml_chunk *c)
{
	uint64_t upto = log->opt.fsync == ML_FSYNC_ALWAYS ? log->synced_position : log->head;
	return c->count > 0 && ml_chunk_last(c) <= upto &&
	       (c->next != NULL || c->count >= log->index_block || c->frozen);
}

void ml_indexer_poke(struct ml_log *log)
{
	if (log->indexer_running && log->chunks && ml_chunk_ready(log, log->chunks))
		pthread_cond_signal(&log->index_cv);
}

static void wait_a_second(pthread_cond_t *cv, pthread_mutex_t *mu)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 1;
	pthread_cond_timedwait(cv, mu, &ts);
}

static void note_error(struct ml_log *log, const char *what)
{
	snprintf(log->index_error, sizeof(log->index_error), "%s", what);
}

int ml_indexer_write_oldest(struct ml_log *log)
{
	struct ml_chunk *c = log->chunks;
	c->frozen = 1; /* nothing joins it now, whatever happens to the chunks after it */
	uint64_t seq = c->last_seq > log->indexed_seq ? c->last_seq : log->indexed_seq;
	int sync = log->opt.fsync != ML_FSYNC_ALWAYS;
	int fd = c->seg->fd;
	pthread_mutex_unlock(&log->mu);
	struct ml_block *b = NULL;
	if (sync && fdatasync(fd) != 0)
		ml_diag_set(ML_ERR_IO, "cannot sync the log before indexing it: %s",
			    strerror(errno));
	else
		b = ml_idx_write(log, c, seq);
	pthread_mutex_lock(&log->mu);
	if (b == NULL) {
		note_error(log, ml_diag_last());
		return -1;
	}
	log->index_error[0] = '\0';
	ml_index_add_block(log, b);
	ml_index_add_run(log, ml_run_of_block(b));
	log->chunks = c->next; /* the block stands for it from now on */
	if (c->next)
		c->next->older = NULL;
	else
		log->chunk_newest = NULL;
	log->indexed_seq = seq;
	if (sync && ml_chunk_last(c) > log->synced_position)
		log->synced_position = ml_chunk_last(c);
	pthread_cond_signal(&log->merge_cv);
	pthread_mutex_unlock(&log->mu);
	ml_chunk_free(c);
	ml_ret_save(log); /* the retention file follows the blocks */
	pthread_mutex_lock(&log->mu);
	return 0;
}

static void *indexer_main(void *arg)
{
	struct ml_log *log = arg;
	prctl(PR_SET_NAME, "moonlog-index");
	pthread_mutex_lock(&log->mu);
	for (;;) {
		if (log->chunks && ml_chunk_ready(log, log->chunks)) {
			if (ml_indexer_write_oldest(log) != 0) {
				if (log->index_stopping)
					break; /* the next open walks these events again */
				wait_a_second(&log->index_cv, &log->mu);
			}
			continue;
		}
		if (log->index_stopping)
			break;
		pthread_cond_wait(&log->index_cv, &log->mu);
	}
	pthread_mutex_unlock(&log->mu);
	return NULL;
}

/* The pair to merge: the newest run not larger than the one after it; -1 if none. Each run is
 * then larger than the next, so there are at most about log2(blocks) of them. */
static long pick_pair(const struct ml_log *log)
{
	for (size_t i = log->nruns; i-- > 1;)
		if (log->runs[i - 1]->size <= log->runs[i]->size)
			return (long)i - 1;
	return -1;
}

/* Merges runs i and i + 1 (mutex held, released while merging). 0, or -1. */
static int merge_pair(struct ml_log *log, size_t i)
{
	struct ml_run *a = log->runs[i], *b = log->runs[i + 1];
	log->merging = 1;
	pthread_mutex_unlock(&log->mu);
	struct ml_run *r = ml_run_merge(log, a, b, &log->index_stopping);
	pthread_mutex_lock(&log->mu);
	log->merging = 0;
	if (r == NULL) {
		if (!log->index_stopping)
			note_error(log, ml_diag_last());
		return -1;
	}
	log->runs[i] = r; /* only the merger removes runs: i and i + 1 are still a and b */
	memmove(&log->runs[i + 1], &log->runs[i + 2], (log->nruns - i - 2) * sizeof(*log->runs));
	log->nruns--;
	pthread_mutex_unlock(&log->mu);
	ml_run_remove(log, a);
	ml_run_remove(log, b);
	ml_run_free(a);
	ml_run_free(b);
	pthread_mutex_lock(&log->mu);
	return 0;
}

static void *merger_main(void *arg)
{
	struct ml_log *log = arg;
	prctl(PR_SET_NAME, "moonlog-merge");
	pthread_mutex_lock(&log->mu);
	while (!log->index_stopping) {
		long i = pick_pair(log);
		if (i < 0)
			pthread_cond_wait(&log->merge_cv, &log->mu);
		else if (merge_pair(log, (size_t)i) != 0 && !log->index_stopping)
			wait_a_second(&log->merge_cv, &log->mu);
	}
	pthread_mutex_unlock(&log->mu);
	return NULL;
}

uint64_t ml_indexer_pending(const struct ml_log *log)
{
	uint64_t n = (uint64_t)log->merging + (pick_pair(log) >= 0);
	for (const struct ml_chunk *c = log->chunks; c && ml_chunk_ready(log, c); c = c->next)
		n++;
	return n;
}

int ml_runs_settle(struct ml_log *log)
{
	long i;
	while ((i = pick_pair(log)) >= 0) {
		pthread_mutex_lock(&log->mu);
		int rc = merge_pair(log, (size_t)i);
		pthread_mutex_unlock(&log->mu);
		if (rc != 0)
			return -1;
	}
	return 0;
}

int ml_indexer_start(struct ml_log *log)
{
	if (pthread_create(&log->indexer, NULL, indexer_main, log) != 0)
		return ml_diag_set(ML_ERR_IO, "cannot start the log's indexer thread");
	log->indexer_running = 1;
	if (pthread_create(&log->merger, NULL, merger_main, log) != 0)
		return ml_diag_set(ML_ERR_IO, "cannot start the log's merger thread");
	log->merger_running = 1;
	return 0;
}

void ml_indexer_stop(struct ml_log *log)
{
	pthread_mutex_lock(&log->mu);
	__atomic_store_n(&log->index_stopping, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&log->index_cv);
	pthread_cond_broadcast(&log->merge_cv);
	pthread_mutex_unlock(&log->mu);
	if (log->indexer_running)
		pthread_join(log->indexer, NULL);
	if (log->merger_running)
		pthread_join(log->merger, NULL);
	log->indexer_running = log->merger_running = 0;
}
