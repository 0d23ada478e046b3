/*
 * zeros.c - zeros written ahead of the records, by a thread of their own.
 *
 * When a write grows a file, its fdatasync must also commit the new size
 * through the file system's journal, which costs about a third more on ext4
 * than flushing data alone. So the segment the flusher writes to is kept
 * zeroed (and synced) a few MiB ahead of its records; recovery reads zeros as
 * the end of the data. Doing it here, not on the flusher, keeps the multi-MiB
 * write and sync out of every append's path.
 *
 * The writer never touches a byte the flusher may write: it fills only past
 * the flusher's frontier (data_end), and the flusher waits (rarely) before
 * writing into a range being filled. The state is under the log's mutex; the
 * writing is not.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log/log_internal.h"
#include "log/record.h"

#define ZERO_CHUNK (4u << 20) /* filled at a time */
#define ZERO_AHEAD (2u << 20) /* refill when fewer zeros than this are left */
#define ZERO_PIECE (256u << 10)
#define ALIGN	   4096u

static uint64_t align_up(uint64_t v)
{
	return (v + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
}

/* Does this segment want zeros now? (mutex held) */
static int wants_zeros(struct ml_log *log, struct ml_seg *seg)
{
	return seg && seg->fd >= 0 && !seg->sealed &&
	       seg->zeroed_end < seg->data_end + ZERO_AHEAD &&
	       align_up(seg->zeroed_end > seg->data_end ? seg->zeroed_end : seg->data_end) <
		   (log->opt.segment_size & ~(uint64_t)(ALIGN - 1));
}

static int open_seg_file(struct ml_log *log, uint64_t first)
{
	char name[32];
	ml_seg_name(name, first);
	return openat(log->dirfd, name, O_WRONLY | O_CLOEXEC);
}

/*
 * Writes zeros over [from, to) and syncs them; 0 or -1. Piece by piece, each
 * written back at once (sync_file_range), so that few zero pages are ever
 * dirty for the flusher's fdatasync to wait on; the pages stay cached, so
 * the records written over them later need no read.
 */
static int fill(int fd, const void *zeros, uint64_t from, uint64_t to)
{
	for (uint64_t at = from; at < to;) {
		size_t n = to - at < ZERO_PIECE ? (size_t)(to - at) : ZERO_PIECE;
		ssize_t w = pwrite(fd, zeros, n, (off_t)at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		sync_file_range(fd, (off_t)at, w,
				SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
				    SYNC_FILE_RANGE_WAIT_AFTER);
		at += (uint64_t)w;
	}
	return fdatasync(fd);
}

static void *zeros_main(void *arg)
{
	struct ml_log *log = arg;
	prctl(PR_SET_NAME, "moonlog-zeros");
	void *zeros = NULL;
	if (posix_memalign(&zeros, ALIGN, ZERO_CHUNK) != 0)
		return NULL;
	memset(zeros, 0, ZERO_CHUNK);
	uint64_t open_first = 0; /* the segment fd is open on (segments are freed and reused) */
	int fd = -1;
	pthread_mutex_lock(&log->mu);
	for (;;) {
		struct ml_seg *seg = log->flush_seg;
		while (!log->stopping && !wants_zeros(log, seg = log->flush_seg))
			pthread_cond_wait(&log->zero_cv, &log->mu);
		if (log->stopping)
			break;
		uint64_t from =
		    align_up(seg->zeroed_end > seg->data_end ? seg->zeroed_end : seg->data_end);
		uint64_t to = from + ZERO_CHUNK;
		if (to > log->opt.segment_size)
			to = log->opt.segment_size & ~(uint64_t)(ALIGN - 1);
		seg->claim_end = to; /* the flusher waits before writing past zeroed_end */
		pthread_mutex_unlock(&log->mu);

		if (seg->first != open_first || fd < 0) {
			if (fd >= 0)
				close(fd);
			fd = open_seg_file(log, seg->first);
			open_first = seg->first;
		}
		int ok = fd >= 0 && fill(fd, zeros, from, to) == 0;

		pthread_mutex_lock(&log->mu);
		seg->claim_end = 0;
		if (ok)
			seg->zeroed_end = to;
		else
			seg->sealed =
			    1; /* no zeros here (a full disk?): the writes grow the file */
		if (!ok && ftruncate(seg->fd, (off_t)seg->data_end) != 0)
			(void)0; /* the flusher's next write fails the same way and rolls back */
		pthread_cond_broadcast(&log->zero_cv);
	}
	pthread_mutex_unlock(&log->mu);
	if (fd >= 0)
		close(fd);
	free(zeros);
	return NULL;
}

int ml_log_zeros_start(struct ml_log *log)
{
	if (log->opt.fsync == ML_FSYNC_NEVER)
		return 0; /* no syncs to speed up */
	if (pthread_create(&log->zero_thread, NULL, zeros_main, log) != 0)
		return ml_diag_set(ML_ERR_IO, "cannot start the log's zero writer thread");
	log->zero_running = 1;
	return 0;
}

void ml_log_zeros_stop(struct ml_log *log)
{
	if (!log->zero_running)
		return;
	pthread_mutex_lock(&log->mu);
	log->stopping = 1;
	pthread_cond_broadcast(&log->zero_cv);
	pthread_mutex_unlock(&log->mu);
	pthread_join(log->zero_thread, NULL);
	log->zero_running = 0;
}

void ml_log_zeros_before_write(struct ml_log *log, struct ml_seg *seg, uint64_t end)
{
	pthread_mutex_lock(&log->mu);
	while (seg->claim_end && end > seg->zeroed_end)
		pthread_cond_wait(&log->zero_cv, &log->mu);
	if (end > seg->data_end)
		seg->data_end = end;
	if (end > seg->zeroed_end)
		seg->zeroed_end = end; /* the file grows past the zeros */
	if (wants_zeros(log, seg))
		pthread_cond_signal(&log->zero_cv);
	pthread_mutex_unlock(&log->mu);
}

void ml_log_zeros_settle(struct ml_log *log, struct ml_seg *seg)
{
	while (seg->claim_end)
		pthread_cond_wait(&log->zero_cv, &log->mu);
}
