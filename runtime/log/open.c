/*
 * open.c - opening a log: the lock, the segments, recovery and the index.
 *
 * Every segment is walked once to build the stream index. Sealed segments are
 * trusted (their records were synced before the next segment was started) and
 * walked without checksums; the last segment is walked with checksums, and a
 * torn last batch is cut off. Damage anywhere else stops the open and points
 * the user to `moonlog check`.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log_internal.h"
#include "log/scan.h"

void ml_log_options_init(struct ml_log_options *o)
{
	memset(o, 0, sizeof(*o));
	o->dir = "./moonlog-data";
	o->fsync = ML_FSYNC_ALWAYS;
	o->batch_sync_ms = 5;
	o->segment_size = 256u << 20;
	o->max_event_size = 1u << 20;
	o->id_window = 1u << 17;
}

const char *ml_fsync_name(enum ml_fsync mode)
{
	return mode == ML_FSYNC_ALWAYS ? "always" : mode == ML_FSYNC_BATCH ? "batch" : "never";
}

int ml_fsync_parse(const char *s, enum ml_fsync *out)
{
	if (strcmp(s, "always") == 0)
		*out = ML_FSYNC_ALWAYS;
	else if (strcmp(s, "batch") == 0)
		*out = ML_FSYNC_BATCH;
	else if (strcmp(s, "never") == 0)
		*out = ML_FSYNC_NEVER;
	else
		return ml_diag_set(ML_ERR_USAGE, "--fsync must be always, batch or never, not '%s'",
				   s);
	return 0;
}

static int take_lock(struct ml_log *log)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/LOCK", log->logdir);
	log->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, ML_FILE_MODE);
	if (log->lockfd < 0)
		return ml_diag_set(ML_ERR_IO, "cannot open %s: %s", path, strerror(errno));
	if (flock(log->lockfd, LOCK_EX | LOCK_NB) != 0) {
		char pid[32] = "";
		ssize_t n = pread(log->lockfd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		return ml_diag_set(ML_ERR_BUSY,
				   "the log in %s is in use by another process (pid %s); stop it, "
				   "or reach it through its server with --connect",
				   log->dir, pid[0] ? pid : "unknown");
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(log->lockfd, 0) != 0 || pwrite(log->lockfd, pid, (size_t)n, 0) != n)
		return ml_diag_set(ML_ERR_IO, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

static int index_record(const struct ml_rec *r, uint64_t offset, void *arg)
{
	struct ml_log *log = arg;
	ml_log_index_event(log, &r->ev, r->flags, offset);
	if (r->flags & ML_REC_SEQ) /* a batch applied from a journal: where it stood */
		log->last_seq = log->applied_seq = ml_rec_seq(r);
	return 0;
}

/* Walks one segment into the index; cuts a torn tail off the last one. */
static int load_segment(struct ml_log *log, uint64_t first, int last)
{
	char name[32];
	ml_seg_name(name, first);
	int fd = openat(log->dirfd, name, (log->opt.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return ml_diag_set(ML_ERR_IO, "cannot open segment %s: %s", name, strerror(e));
	}
	uint64_t size = (uint64_t)st.st_size, hdr_first;
	uint8_t *p = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0) : NULL;
	if (size && p == MAP_FAILED) {
		close(fd);
		return ml_diag_set(ML_ERR_IO, "cannot map segment %s: %s", name, strerror(errno));
	}
	if (ml_seg_header_parse(p, size, &hdr_first) != 0 || hdr_first != first ||
	    first != log->next_position) {
		if (size)
			munmap(p, size);
		close(fd);
		return ml_diag_set(ML_ERR_CORRUPT,
				   "segment %s/%s: bad header or out of sequence (expected first "
				   "position %" PRIu64 "); run 'moonlog check --data %s'",
				   log->logdir, name, log->next_position, log->dir);
	}
	if (log->nsegs == log->segs_cap) {
		log->segs_cap = log->segs_cap ? log->segs_cap * 2 : 8;
		log->segs = ml_xrealloc(log->segs, log->segs_cap * sizeof(*log->segs));
	}
	struct ml_seg *seg = ml_xcalloc(1, sizeof(*seg));
	log->segs[log->nsegs++] = seg;
	seg->first = first;
	seg->fd = fd;

	struct ml_scan sc = {.next_position = first};
	ml_scan_segment(p, size, last, &sc, index_record, log);
	munmap(p, size);
	log->next_position = sc.next_position;
	seg->end = seg->durable_end = seg->zeroed_end = seg->data_end = sc.good_end;
	if (sc.status == ML_SCAN_CLEAN) {
		seg->zeroed_end = size; /* the zeros written ahead stay for the next appends */
		return 0;
	}
	if (!ml_scan_torn_tail(&sc, last))
		return ml_diag_set(ML_ERR_CORRUPT,
				   "segment %s/%s is damaged at offset %" PRIu64 " (%s); run "
				   "'moonlog check --data %s' for details",
				   log->logdir, name, sc.bad_offset, sc.why, log->dir);
	if (log->opt.readonly)
		return 0;
	/* A torn last batch was never acknowledged: cut it off. */
	if (ftruncate(fd, (off_t)sc.good_end) != 0 || fdatasync(fd) != 0)
		return ml_diag_set(ML_ERR_IO, "cannot cut the torn tail of %s: %s", name,
				   strerror(errno));
	log->stats.truncated_bytes += size - sc.good_end;
	return 0;
}

/*
 * Creates the file of a new segment: header to a temporary file, sync, rename,
 * sync the folder, so that a crash never leaves a segment without its header.
 */
int ml_log_create_segment(struct ml_log *log, uint64_t first)
{
	char name[32], tmp[40];
	uint8_t hdr[ML_SEG_HEADER];
	ml_seg_name(name, first);
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	ml_seg_header_encode(hdr, first);

	int fd = openat(log->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, ML_FILE_MODE);
	if (fd < 0)
		return ml_diag_set(ML_ERR_IO, "cannot create segment %s: %s", name,
				   strerror(errno));
	ssize_t n = write(fd, hdr, sizeof(hdr));
	if (n != (ssize_t)sizeof(hdr) || fdatasync(fd) != 0 ||
	    renameat(log->dirfd, tmp, log->dirfd, name) != 0 || fsync(log->dirfd) != 0) {
		int e = n >= 0 && n != (ssize_t)sizeof(hdr) ? ENOSPC : errno;
		close(fd);
		unlinkat(log->dirfd, tmp, 0);
		ml_diag_set(ML_ERR_IO, "cannot create segment %s: %s", name, strerror(e));
		errno = e;
		return -1;
	}
	return fd;
}

static int remember_id(const struct ml_event *e, void *arg)
{
	struct ml_idem *w = arg;
	if (!e->id_generated)
		ml_idem_add(w, ml_idem_key(e->stream, e->stream_len, e->id, e->id_len),
			    e->position);
	return 0;
}

/* Refills the id window from the last id_window events of the log. */
static int load_ids(struct ml_log *log)
{
	uint64_t from = log->head > log->idem.cap ? log->head - log->idem.cap + 1 : 1;
	return ml_log_read_all(log, from, 0, remember_id, &log->idem) < 0 ? -1 : 0;
}

static void log_free(struct ml_log *log)
{
	ml_log_unmap_all(log);
	for (size_t i = 0; i < log->nsegs; i++) {
		if (log->segs[i]->fd >= 0)
			close(log->segs[i]->fd);
		free(log->segs[i]);
	}
	if (log->dirfd >= 0)
		close(log->dirfd);
	if (log->lockfd >= 0)
		close(log->lockfd);
	ml_streams_free(&log->streams);
	ml_idem_free(&log->idem);
	ml_buf_free(&log->pending.bytes);
	ml_buf_free(&log->inflight.bytes);
	pthread_mutex_destroy(&log->mu);
	pthread_cond_destroy(&log->flush_cv);
	pthread_cond_destroy(&log->zero_cv);
	pthread_cond_destroy(&log->head_cv);
	free(log->segs);
	free(log->offsets);
	free(log->dir);
	free(log->logdir);
	free(log);
}

static int check_options(const struct ml_log_options *o)
{
	if (o->max_event_size == 0 || o->max_event_size > (64u << 20))
		return ml_diag_set(ML_ERR_USAGE, "the maximum event size must be 1 byte to 64 MiB");
	if (o->segment_size < 4096 || o->segment_size > (1ull << 31))
		return ml_diag_set(ML_ERR_USAGE, "the segment size must be 4 KiB to 2 GiB");
	return 0;
}

struct ml_log *ml_log_open(const struct ml_log_options *o)
{
	uint64_t t0 = ml_clock_ns();
	if (check_options(o) != 0)
		return NULL;
	struct ml_log *log = ml_xcalloc(1, sizeof(*log));
	log->opt = *o;
	log->dir = ml_xstrndup(o->dir, strlen(o->dir));
	log->logdir = ml_xmalloc(strlen(o->dir) + 5);
	sprintf(log->logdir, "%s/log", o->dir);
	log->opt.dir = log->dir;
	log->dirfd = log->lockfd = -1;
	log->next_position = 1;
	pthread_mutex_init(&log->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&log->flush_cv, &ca);
	pthread_cond_init(&log->zero_cv, NULL);
	pthread_cond_init(&log->head_cv, NULL);
	pthread_condattr_destroy(&ca);
	ml_streams_init(&log->streams);
	ml_idem_init(&log->idem, o->id_window);
	ml_log_writer_local_init(log);

	uint64_t *firsts = NULL;
	size_t n = 0;
	if (!o->readonly && ml_mkdir_private(log->logdir, NULL) != 0) {
		ml_diag_set(ML_ERR_IO, "cannot create %s: %s", log->logdir, strerror(errno));
		goto fail;
	}
	log->dirfd = open(log->logdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (log->dirfd < 0) {
		ml_diag_set(errno == ENOENT ? ML_ERR_NOT_FOUND : ML_ERR_IO, "cannot open %s: %s",
			    log->logdir, strerror(errno));
		goto fail;
	}
	if ((!o->readonly && take_lock(log) != 0) ||
	    ml_seg_list(log->logdir, !o->readonly, &firsts, &n) != 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (load_segment(log, firsts[i], i + 1 == n) != 0)
			goto fail;
	free(firsts);
	log->head = log->synced_position = log->next_position - 1;
	if (load_ids(log) != 0)
		goto fail;
	ml_idem_trim(&log->idem);
	if (!o->readonly && ml_log_flusher_start(log) != 0)
		goto fail;
	log->stats.open_ns = ml_clock_ns() - t0;
	return log;
fail:
	free(firsts);
	log_free(log);
	return NULL;
}

void ml_log_close(struct ml_log *log)
{
	if (log == NULL)
		return;
	struct ml_log_writer *set = log->writer != &log->local_writer ? log->writer : NULL;
	log->writer->ops->stop(log->writer); /* what it took is complete, or queued here */
	ml_log_flusher_stop(log);
	log_free(log);
	if (set)
		set->ops->free(set);
}
