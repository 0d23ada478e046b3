/*
 * flush.c - the flusher thread: writes queued batches, syncs them, and
 * acknowledges them (group commit).
 *
 * The flusher takes the whole pending buffer at once, so one write and one
 * fdatasync serve every batch that queued while the previous sync ran. Under
 * --fsync always it also waits a moment for stragglers when the last group
 * was larger than what is queued now: appenders just woken by the last sync
 * are about to append again, and one sync for all of them beats two.
 *
 * A lone append pays for two thread hand-offs around its sync (the flusher
 * woken, then the appender), tens of microseconds each next to a ~100 us
 * fdatasync. So a submitter that gathers its appends (the server, per turn of
 * its loop) may mark them kick_later and call ml_log_kick: when they come one
 * at a time and the flusher is idle, the submitter's thread runs the cycle
 * itself, as one write-and-sync cycle runs at a time (`flushing`); under load
 * the flusher runs them, and the submitter's thread stays free.
 *
 * A failed write or sync fails every queued batch and rolls their
 * reservations back, so the log stays exactly what was acknowledged.
 *
 * Publishing before the sync: under --fsync always a local append becomes
 * visible (the head moves over it, subscribers get it) only once synced, as
 * nothing else keeps it. Entries applied from a journal (a replicated log)
 * are published once written, before the sync: the journal keeps them
 * already, on a quorum of its servers, and a node that loses them in a crash
 * applies them again from there, at the same positions. This takes the
 * node's own sync out of the lag from an append on one node to its delivery
 * on another. Their requests (a client's append on this node) still end
 * after the sync; a sync that fails after publishing breaks the log until a
 * restart (fail_published), as what readers saw cannot be undone.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "log/index.h"
#include "log/log_internal.h"
#include "log/retention.h"
#include "log/record.h"
#ifdef ML_FAULT_INJECTION
#include "log/faults.h"
#endif

#define GATHER_MAX_NS 100000

static int write_all(int fd, const char *p, size_t n, uint64_t off, int fault)
{
	if (fault) {
		errno = fault;
		return -1;
	}
	return ml_pwrite_all(fd, p, n, off);
}

static int sync_fd(int fd, int fault)
{
	if (fault) {
		errno = fault;
		return -1;
	}
	return fdatasync(fd);
}

/* Makes sure the segment's file exists (the mutex is not held). */
static int open_seg(struct ml_log *log, struct ml_seg *seg)
{
	pthread_mutex_lock(&log->mu);
	int fd = seg->fd;
	pthread_mutex_unlock(&log->mu);
	if (fd >= 0)
		return 0;
	fd = ml_log_create_segment(log, seg->first);
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&log->mu);
	seg->zeroed_end = seg->data_end = ML_SEG_HEADER;
	seg->fd = fd;
	pthread_mutex_unlock(&log->mu);
	return 0;
}

/* A segment is finished: cut its zeros off and sync it before the next one starts. */
static int seal(struct ml_log *log, struct ml_seg *seg, int fault_sync)
{
	pthread_mutex_lock(&log->mu);
	seg->sealed = 1;
	ml_log_zeros_settle(log, seg);
	if (seg->zeroed_end > seg->end && ftruncate(seg->fd, (off_t)seg->end) == 0)
		seg->zeroed_end = seg->end;
	pthread_mutex_unlock(&log->mu);
	return log->opt.fsync == ML_FSYNC_NEVER ? 0 : sync_fd(seg->fd, fault_sync);
}

/*
 * Moves the flusher on to the segment of the next run. When that is a new
 * segment, the one before is sealed first (zeros cut, synced), so that a
 * sealed segment is always complete on disk, whichever flush group it ended in.
 */
static int switch_seg(struct ml_log *log, struct ml_seg *next, int fault_sync)
{
	if (next == log->flush_seg)
		return 0;
	if (log->flush_seg && seal(log, log->flush_seg, fault_sync) != 0)
		return -1;
	if (open_seg(log, next) != 0)
		return -1;
	log->flush_seg = next;
	return 0;
}

/*
 * Writes the in-flight buffer: contiguous runs, one pwrite each, and leaves in
 * *last the segment written last (earlier ones are sealed). 0, or -1 with errno.
 */
static int write_inflight(struct ml_log *log, int fault_write, int fault_sync, struct ml_seg **last)
{
	struct ml_flushbuf *fb = &log->inflight;
	struct ml_seg *seg = NULL;
	uint64_t file_off = 0, buf_off = 0, len = 0;

	for (struct ml_append *r = fb->head;; r = ml_req_of(r)->next) {
		struct ml_req *q = r ? ml_req_of(r) : NULL;
		if (q && q->nbytes == 0)
			continue;
		if (q && q->seg == seg && q->file_offset == file_off + len &&
		    q->buf_offset == buf_off + len) {
			len += q->nbytes;
			continue;
		}
		if (len)
			ml_log_zeros_before_write(log, seg, file_off + len);
		if (len && write_all(seg->fd, fb->bytes.data + buf_off, len, file_off, fault_write))
			return -1;
		if (r == NULL)
			break;
		if (switch_seg(log, q->seg, fault_sync) != 0)
			return -1;
		seg = q->seg;
		file_off = q->file_offset, buf_off = q->buf_offset, len = q->nbytes;
	}
	*last = seg;
	return 0;
}

/* The buffer's batches are acknowledged: readers may read their segments up to them. */
static void mark_written(struct ml_flushbuf *fb)
{
	for (struct ml_append *r = fb->head; r; r = ml_req_of(r)->next) {
		struct ml_req *q = ml_req_of(r);
		if (q->nbytes)
			q->seg->durable_end = q->file_offset + q->nbytes;
	}
}

/* Ends the requests of a buffer (mutex held), moving them to `done` for complete(). */
static void finish(struct ml_flushbuf *fb, const char *errmsg, struct ml_append **done)
{
	if (errmsg == NULL)
		mark_written(fb);
	for (struct ml_append *r = fb->head, *next; r; r = next) {
		struct ml_req *q = ml_req_of(r);
		next = q->next;
		if (errmsg) {
			r->err = ML_ERR_IO;
			snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg);
		}
		q->next = *done;
		*done = r;
	}
	fb->head = fb->tail = NULL;
	fb->requests = 0;
	fb->bytes.len = 0;
	fb->last_seq = 0;
}

static void mark_broken(struct ml_log *log, const char *what, int err)
{
	snprintf(log->broken, sizeof(log->broken),
		 "the log in %s %s (%s); restart moonlog to recover it", log->dir, what,
		 strerror(err));
}

/* Removes the last segment, which holds nothing acknowledged (the mutex is held). */
static void drop_last_seg(struct ml_log *log)
{
	struct ml_seg *seg = log->segs[log->nsegs - 1];
	ml_log_zeros_settle(log, seg);
	log->nsegs--;
	if (log->flush_seg == seg)
		log->flush_seg = NULL;
	if (seg->fd >= 0) {
		char name[32];
		ml_seg_name(name, seg->first);
		close(seg->fd);
		if (unlinkat(log->dirfd, name, 0) != 0 || fsync(log->dirfd) != 0)
			mark_broken(log, "could not remove an unfinished segment", errno);
	}
	if (seg->rmap) /* nothing in it was acknowledged, so no reader is in it */
		munmap(seg->rmap, seg->rmap_len);
	free(seg);
}

/* Forgets, in memory, every reservation past the head (mutex held). */
static void forget_reserved(struct ml_log *log)
{
	ml_index_rollback(log, log->head);
	ml_ret_rollback(log, log->head);
	log->next_position = log->head + 1;
	log->last_seq = log->applied_seq;
}

/*
 * After a failed write: everything not acknowledged is undone, in memory and
 * on disk, and every queued batch fails. The mutex is held.
 */
static struct ml_append *rollback(struct ml_log *log, int err)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "cannot write to the log in %s: %s; the append was not stored",
		 log->dir, strerror(err));
	if (log->inflight.last_seq || log->pending.last_seq) /* entries of a journal: the */
		log->apply_stalled = 1; /* writer applies them again, from applied_seq on */
	forget_reserved(log);
	while (log->nsegs > 1 && log->segs[log->nsegs - 1]->first > log->head &&
	       log->segs[log->nsegs - 1]->durable_end == ML_SEG_HEADER)
		drop_last_seg(log);
	struct ml_seg *last = log->nsegs ? log->segs[log->nsegs - 1] : NULL;
	if (last) {
		ml_log_zeros_settle(log, last);
		last->end = last->zeroed_end = last->data_end = last->durable_end;
		/* Cut what the failed write may have left, durably: bytes past the end that
		 * parse as records would otherwise come back as events nobody stored. */
		if (last->fd >= 0 && (ftruncate(last->fd, (off_t)last->durable_end) != 0 ||
				      fdatasync(last->fd) != 0))
			mark_broken(log, "could not undo a failed write", errno);
	}
	struct ml_append *async = NULL;
	finish(&log->inflight, msg, &async);
	finish(&log->pending, msg, &async);
	return async;
}

/* Moves the head over the in-flight batches: readers see them from now on. */
static void publish(struct ml_log *log)
{
	if (log->inflight.last_position > log->head)
		log->head = log->inflight.last_position;
	if (log->inflight.last_seq)
		log->applied_seq = log->inflight.last_seq;
	ml_ret_ack(log, log->head);
	ml_indexer_poke(log);
}

/* Publishes the in-flight batches and ends them: waiters are released. */
static struct ml_append *acknowledge(struct ml_log *log)
{
	struct ml_append *async = NULL;
	publish(log);
	finish(&log->inflight, NULL, &async);
	return async;
}

/*
 * A sync failed after its group was published (entries of a journal): readers
 * may have seen them, so nothing is undone (cutting the file under a reader's
 * mapping would kill the process); the log takes no more appends until a
 * restart, and its requests fail with the reason (the journal holds the
 * entries: a retry on another node is answered as a duplicate). The pages the
 * sync could not write may stay cached, so a restart of moonlog alone could
 * read them back: docs/scale-out.md tells the operator to start the node on an
 * empty data folder (it catches up from the stream). Mutex held.
 */
static struct ml_append *fail_published(struct ml_log *log, int err)
{
	mark_broken(log, "failed to sync entries of the journal it had written", err);
	forget_reserved(log);
	struct ml_append *async = NULL;
	finish(&log->inflight, log->broken, &async);
	finish(&log->pending, log->broken, &async);
	return async;
}

/*
 * Releases finished requests without the mutex: a waiting appender is woken
 * through a futex on its own request (no herd on a shared condition), an
 * async one gets its callback (which may append again).
 */
static void complete(struct ml_log *log, struct ml_append *list, uint64_t head, int moved)
{
	void (*on_head)(uint64_t, void *) = moved ? log->on_head : NULL;
	void *arg = log->on_head_arg;
	log->on_head_calls += on_head != NULL; /* ml_log_on_head waits for it to return */
	pthread_mutex_unlock(&log->mu);
	for (struct ml_append *r = list, *next; r; r = next) {
		next = ml_req_of(r)->next; /* r may be gone once it is marked done */
		ml_append_finish(r);
	}
	if (on_head)
		on_head(head, arg);
	pthread_mutex_lock(&log->mu);
	if (on_head && --log->on_head_calls == 0 && log->on_head_waiters)
		pthread_cond_broadcast(&log->head_cv);
}

static void deadline_in(struct timespec *ts, uint64_t ns)
{
	clock_gettime(CLOCK_MONOTONIC, ts); /* flush_cv waits on the monotonic clock */
	ts->tv_nsec += (long)ns;
	ts->tv_sec += ts->tv_nsec / 1000000000;
	ts->tv_nsec %= 1000000000;
}

/* Group commit: wait briefly for the appenders the last sync released. */
static void gather(struct ml_log *log, uint64_t last_cycle_ns)
{
	if (log->opt.fsync != ML_FSYNC_ALWAYS || log->last_group <= 1)
		return;
	uint64_t wait = last_cycle_ns / 4 < GATHER_MAX_NS ? last_cycle_ns / 4 : GATHER_MAX_NS;
	uint64_t until = ml_clock_ns() + wait;
	struct timespec ts;
	deadline_in(&ts, wait);
	while (log->pending.requests < log->last_group && !log->stopping && ml_clock_ns() < until) {
		log->flusher_waiting = 1;
		pthread_cond_timedwait(&log->flush_cv, &log->mu, &ts);
		log->flusher_waiting = 0;
	}
}

/* --fsync batch: sync the last segment every batch_sync_ms. */
static void batch_sync(struct ml_log *log)
{
	struct ml_seg *seg = log->nsegs ? log->segs[log->nsegs - 1] : NULL;
	uint64_t head = log->head;
	int fd = seg ? seg->fd : -1;
	pthread_mutex_unlock(&log->mu);
	int rc = fd >= 0 ? fdatasync(fd) : 0;
	pthread_mutex_lock(&log->mu);
	if (rc == 0)
		log->synced_position = head;
	else /* the kernel may have dropped acknowledged pages: stop taking appends */
		mark_broken(log, "failed to sync acknowledged appends", errno);
	log->last_sync_ns = ml_clock_ns();
	log->stats.syncs++;
}

/*
 * Waits for work; returns 0 when there is a pending buffer to write (and no
 * cycle running in ml_log_kick), -1 to stop.
 */
static int wait_for_work(struct ml_log *log)
{
	while (log->pending.head == NULL || log->flushing) {
		if (log->stopping && !log->flushing)
			return -1;
		int batch_due =
		    log->opt.fsync == ML_FSYNC_BATCH && log->synced_position < log->head;
		log->flusher_waiting = log->flusher_idle = 1;
		if (batch_due && !log->flushing) {
			uint64_t due = log->last_sync_ns + log->opt.batch_sync_ms * 1000000ull;
			uint64_t now = ml_clock_ns();
			if (now >= due) {
				log->flusher_waiting = log->flusher_idle = 0;
				batch_sync(log);
				continue;
			}
			struct timespec ts;
			deadline_in(&ts, due - now);
			pthread_cond_timedwait(&log->flush_cv, &log->mu, &ts);
		} else {
			pthread_cond_wait(&log->flush_cv, &log->mu);
		}
		log->flusher_waiting = log->flusher_idle = 0;
	}
	return 0;
}

/* Writes and syncs everything pending as one group, and completes it (mutex held). */
static void run_cycle(struct ml_log *log)
{
	log->flushing = 1;
	struct ml_flushbuf tmp = log->inflight;
	log->inflight = log->pending;
	log->pending = tmp;
	log->inflight.last_position = log->next_position - 1;
	log->last_group = log->inflight.requests;
	int fault_write = 0, fault_sync = 0;
#ifdef ML_FAULT_INJECTION
	fault_write = log->fault_write, fault_sync = log->fault_sync;
	log->fault_write = log->fault_sync = 0;
#endif
	uint64_t old_head = log->head;
	pthread_mutex_unlock(&log->mu);

	uint64_t t0 = ml_clock_ns();
	struct ml_seg *seg = NULL;
	int rc = write_inflight(log, fault_write, fault_sync, &seg), err = errno;
	int sync = rc == 0 && seg && log->opt.fsync == ML_FSYNC_ALWAYS;
	int early = sync && log->inflight.last_seq; /* publishing before the sync: above */
	if (early) { /* readers (ml_log_scan, a backup) read the segment up to them */
		pthread_mutex_lock(&log->mu);
		mark_written(&log->inflight);
		publish(log);
		complete(log, NULL, log->head, log->head != old_head);
		pthread_mutex_unlock(&log->mu);
	}
	if (sync && (rc = sync_fd(seg->fd, fault_sync)) != 0)
		err = errno;
	uint64_t took = ml_clock_ns() - t0;

	pthread_mutex_lock(&log->mu);
	log->cycle_ns = took;
	log->stats.groups++;
	log->stats.syncs += (uint64_t)(sync && rc == 0);
	/* before the head moves: the index writes blocks up to what is synced (indexer.c) */
	if (rc == 0 && sync && log->inflight.last_position > log->synced_position)
		log->synced_position = log->inflight.last_position;
	struct ml_append *list = rc == 0 ? acknowledge(log)
				 : early ? fail_published(log, err)
					 : rollback(log, err);
	complete(log, list, log->head, log->head != old_head && !early);
	log->flushing = 0;
}

static void *flusher_main(void *arg)
{
	struct ml_log *log = arg;
	prctl(PR_SET_NAME, "moonlog-flush");
	prctl(PR_SET_TIMERSLACK, 1UL); /* group-commit waits are tens of microseconds */
	pthread_mutex_lock(&log->mu);
	while (wait_for_work(log) == 0) {
		gather(log, log->cycle_ns);
		run_cycle(log);
	}
	pthread_mutex_unlock(&log->mu);
	return NULL;
}

#ifdef ML_FAULT_INJECTION
void ml_log_inject_fault(struct ml_log *log, int on_write, int err)
{
	pthread_mutex_lock(&log->mu);
	if (on_write)
		log->fault_write = err;
	else
		log->fault_sync = err;
	pthread_mutex_unlock(&log->mu);
}
#endif

/* Appends "one at a time": what ml_log_kick writes on the caller's thread (under every
 * --fsync mode: with batch or never the cycle is only a write, and the hand-offs were
 * most of a lone append's time). */
#define KICK_INLINE_MAX 2

void ml_store_kick(struct ml_log *log)
{
	pthread_mutex_lock(&log->mu);
	if (log->pending.head && log->flusher_idle && !log->flushing &&
	    log->pending.requests <= KICK_INLINE_MAX && log->last_group <= KICK_INLINE_MAX)
		run_cycle(log);
	if ((log->pending.head || log->stopping) && log->flusher_waiting)
		pthread_cond_signal(&log->flush_cv);
	pthread_mutex_unlock(&log->mu);
}

int ml_log_flusher_start(struct ml_log *log)
{
	log->last_sync_ns = ml_clock_ns();
	if (pthread_create(&log->flusher, NULL, flusher_main, log) != 0)
		return ml_diag_set(ML_ERR_IO, "cannot start the log's flusher thread");
	log->flusher_running = 1;
	return ml_log_zeros_start(log);
}

/* Lets the flusher write what is queued, syncs, and joins it. */
void ml_log_flusher_stop(struct ml_log *log)
{
	if (!log->flusher_running)
		return;
	pthread_mutex_lock(&log->mu);
	log->stopping = 1;
	pthread_cond_signal(&log->flush_cv);
	pthread_mutex_unlock(&log->mu);
	pthread_join(log->flusher, NULL);
	log->flusher_running = 0;
	ml_log_zeros_stop(log);
	for (size_t i = 0; i < log->nsegs; i++)
		if (log->segs[i]->fd >= 0)
			fdatasync(log->segs[i]->fd);
}
