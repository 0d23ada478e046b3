/*
 * open.c - opening a log: the lock, the segments, recovery and the index.
 *
 * The index is in files (index.h), so opening reads their headers and walks
 * only the records that no block holds yet: the last segment's since its
 * last block, at most one chunk's worth when the log was closed or crashed.
 * Those are the only records a crash can have touched (a block is written
 * only for records on disk), and they are walked with their checksums: a torn
 * last batch is cut off; damage anywhere else stops the open and points the
 * user to `moonlog check`.
 *
 * A sealed segment whose index file is missing, damaged or short (a log
 * written before index files, or a crash while its last block was written)
 * is walked and indexed again, and its blocks written, before the segments
 * after it. The runs are chosen from the run files; the merger catches up on
 * the rest after the open.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/index.h"
#include "log/log_internal.h"
#include "log/retention.h"
#include "log/scan.h"

void ml_log_options_init(struct ml_log_options *o)
{
	memset(o, 0, sizeof(*o));
	o->dir = "./moonlog-data";
	o->fsync = ML_FSYNC_ALWAYS;
	o->batch_sync_ms = 5;
	o->segment_size = 256u << 20;
	o->max_event_size = 1u << 20;
	o->index_block = ML_INDEX_BLOCK_DEFAULT;
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

/* ---- the seed of the index files ---- */

/* index.seed: 8 random bytes and their crc32c, made once (temporary file, sync, rename). */
static int load_seed(struct ml_log *log)
{
	uint8_t b[12];
	int fd = openat(log->dirfd, "index.seed", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? pread(fd, b, sizeof(b), 0) : -1;
	if (fd >= 0)
		close(fd);
	if (n == sizeof(b) && ml_le32(b + 8) == ml_crc32c(0, b, 8)) {
		log->seed = ml_le64(b);
		return 0;
	}
	if (getrandom(&log->seed, sizeof(log->seed), 0) != sizeof(log->seed))
		log->seed = ml_clock_ns() ^ (uint64_t)getpid() << 32;
	if (log->opt.readonly) /* the index is then built in memory, under this seed */
		return 0;
	ml_put64(b, log->seed);
	ml_put32(b + 8, ml_crc32c(0, b, 8));
	fd = openat(log->dirfd, "index.seed.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    ML_FILE_MODE);
	if (fd < 0 || write(fd, b, sizeof(b)) != (ssize_t)sizeof(b) || fdatasync(fd) != 0 ||
	    renameat(log->dirfd, "index.seed.tmp", log->dirfd, "index.seed") != 0 ||
	    fsync(log->dirfd) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return ml_diag_set(ML_ERR_IO, "cannot write %s/index.seed: %s", log->logdir,
				   strerror(e));
	}
	close(fd);
	return 0;
}

/* ---- segments ---- */

/* Opens the segment that starts at `first` (the next position) and adds it: the segment, or
 * NULL with diag. *size: its bytes. */
static struct ml_seg *add_segment(struct ml_log *log, uint64_t first, uint64_t *size)
{
	char name[32];
	uint8_t hdr[ML_SEG_HEADER];
	uint64_t hdr_first = 0;
	ml_seg_name(name, first);
	int fd = openat(log->dirfd, name, (log->opt.readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		ml_diag_set(ML_ERR_IO, "cannot open segment %s: %s", name, strerror(e));
		return NULL;
	}
	*size = (uint64_t)st.st_size;
	ssize_t n = pread(fd, hdr, sizeof(hdr), 0);
	if (ml_seg_header_parse(hdr, n > 0 ? (size_t)n : 0, &hdr_first) != 0 ||
	    hdr_first != first || first != log->next_position || first == 0) {
		close(fd);
		ml_diag_set(ML_ERR_CORRUPT,
			    "segment %s/%s: bad header or out of sequence (expected first "
			    "position %" PRIu64 "); run 'moonlog check --data %s'",
			    log->logdir, name, log->next_position, log->dir);
		return NULL;
	}
	if (log->nsegs == log->segs_cap) {
		log->segs_cap = log->segs_cap ? log->segs_cap * 2 : 8;
		log->segs = ml_xrealloc(log->segs, log->segs_cap * sizeof(*log->segs));
	}
	struct ml_seg *seg = ml_xcalloc(1, sizeof(*seg));
	log->segs[log->nsegs++] = seg;
	seg->first = first;
	seg->fd = fd;
	seg->idx_fd = -1;
	seg->format = ml_seg_format(hdr);
	seg->scavenges = ml_seg_scavenges(hdr);
	seg->end = seg->durable_end = seg->zeroed_end = seg->data_end = ML_SEG_HEADER;
	return seg;
}

/* The last block, if it is seg's. */
static const struct ml_block *last_block_of(const struct ml_log *log, const struct ml_seg *seg)
{
	const struct ml_block *b = log->nblocks ? log->blocks[log->nblocks - 1] : NULL;
	return b && b->seg == seg ? b : NULL;
}

/* Its blocks hold every record of seg up to `end` (a position): sets where it ends. */
static int indexed_to(struct ml_log *log, struct ml_seg *seg, uint64_t end)
{
	const struct ml_block *b = last_block_of(log, seg);
	if (b == NULL || b->t.last + 1 != end)
		return 0;
	seg->end = seg->durable_end = seg->zeroed_end = seg->data_end = b->data_end;
	log->next_position = end;
	log->indexed_seq = b->t.last_seq;
	return 1;
}

struct walk {
	struct ml_log *log;
	struct ml_seg *seg;
	int sealed; /* write its chunks as blocks as they fill */
	int failed;
};

/* Writes the oldest chunk as a block during the open (no thread runs yet). */
static int write_chunk(struct ml_log *log)
{
	pthread_mutex_lock(&log->mu);
	int rc = ml_indexer_write_oldest(log);
	pthread_mutex_unlock(&log->mu);
	return rc == 0 ? ml_runs_settle(log) : -1;
}

static int index_record(const struct ml_rec *r, uint64_t offset, void *arg)
{
	struct walk *w = arg;
	struct ml_log *log = w->log;
	const struct ml_event *e = &r->ev;
	uint64_t key = e->id_generated || (r->flags & ML_REC_REMOVED)
			   ? 0 /* a removed event's stub keeps no id */
			   : ml_index_id_key(log, e->stream, e->stream_len, e->id, e->id_len);
	ml_index_event(log, w->seg, e->position, (uint32_t)offset, r->len, r->flags & ML_REC_FIRST,
		       e->stream, e->stream_len, ml_index_hash(log, e->stream, e->stream_len), key,
		       e->version);
	if (r->flags & ML_REC_SEQ) /* a batch applied from a journal: where it stood */
		log->last_seq = log->applied_seq = log->chunk_newest->last_seq = ml_rec_seq(r);
	if (w->sealed && (r->flags & ML_REC_LAST) && log->chunk_newest->count >= log->index_block &&
	    write_chunk(log) != 0) {
		w->failed = 1;
		return 1;
	}
	return 0;
}

/* Cuts a torn tail off the last segment: it was never acknowledged. */
static int cut_tail(struct ml_log *log, struct ml_seg *seg, const struct ml_scan *sc, uint64_t size)
{
	char name[32];
	ml_seg_name(name, seg->first);
	if (log->opt.readonly)
		return 0;
	if (ftruncate(seg->fd, (off_t)sc->good_end) != 0 || fdatasync(seg->fd) != 0)
		return ml_diag_set(ML_ERR_IO, "cannot cut the torn tail of %s: %s", name,
				   strerror(errno));
	log->stats.truncated_bytes += size - sc->good_end;
	if (sc->status == ML_SCAN_FLUSH)
		snprintf(
		    log->recovered, sizeof(log->recovered),
		    "cut the last write's records from offset %" PRIu64 " of segment %s "
		    "(positions %" PRIu64 " to %" PRIu64 "): a power loss left them damaged at "
		    "offset %" PRIu64 " with %" PRIu64 " whole batches after it, all written "
		    "after position %" PRIu64 " was synced, in one write whose sync never "
		    "completed (under --fsync always no client was told it was stored; on a node "
		    "of a cluster, the stream gives it again)",
		    sc->good_end, name, sc->next_position, sc->after_last, sc->bad_offset,
		    sc->after_batches, sc->next_position - 1);
	else
		snprintf(
		    log->recovered, sizeof(log->recovered),
		    "cut the torn last batch (%" PRIu64 " bytes at offset %" PRIu64
		    " of segment %s): a crash stopped its write, and it was never acknowledged",
		    size - sc->good_end, sc->good_end, name);
	return 0;
}

/* A sealed segment walked: it must end where the next one starts; its chunks become blocks. */
static int finish_sealed(struct ml_log *log, struct ml_seg *seg, const struct ml_scan *sc,
			 uint64_t next_first, int whole)
{
	char name[32];
	ml_seg_name(name, seg->first);
	if (sc->status != ML_SCAN_CLEAN || sc->next_position != next_first)
		return ml_diag_set(
		    ML_ERR_CORRUPT,
		    "segment %s/%s is damaged at offset %" PRIu64
		    " (%s); run 'moonlog check --data %s' for details",
		    log->logdir, name, sc->status == ML_SCAN_CLEAN ? sc->good_end : sc->bad_offset,
		    sc->why ? sc->why : "it ends before the next segment starts", log->dir);
	seg->sealed = 1;
	while (log->chunks)
		if (write_chunk(log) != 0)
			return -1;
	log->stats.index_rebuilt++;
	return whole ? ml_idx_whole_end(log, seg) : 0;
}

/* The last segment walked: a torn tail or a lost write is cut, other damage stops the open. */
static int finish_last(struct ml_log *log, struct ml_seg *seg, const struct ml_scan *sc,
		       uint64_t size)
{
	if (sc->status == ML_SCAN_CLEAN) {
		seg->zeroed_end = size; /* the zeros written ahead stay for the next appends */
		return 0;
	}
	char name[32];
	ml_seg_name(name, seg->first);
	if (!ml_scan_torn_tail(sc, 1))
		return ml_diag_set(ML_ERR_CORRUPT,
				   "segment %s/%s is damaged at offset %" PRIu64 " (%s); run "
				   "'moonlog check --data %s' for details",
				   log->logdir, name, sc->bad_offset, sc->why, log->dir);
	return cut_tail(log, seg, sc, size);
}

/*
 * Walks the records of seg that no block holds (all of them when it has none),
 * with their checksums, into chunks: the last segment's stay in memory, a
 * sealed one's are written as blocks now. Cuts a torn tail off the last one.
 */
static int walk_segment(struct ml_log *log, struct ml_seg *seg, uint64_t size, int last,
			uint64_t next_first)
{
	const struct ml_block *lb = last_block_of(log, seg);
	uint64_t start = lb ? lb->data_end : ML_SEG_HEADER;
	if (!last && indexed_to(log, seg, next_first)) {
		seg->sealed = 1; /* finished: a scavenge may rewrite it */
		return 0;
	}
	if (lb) { /* its blocks hold its records up to there */
		log->next_position = lb->t.last + 1;
		log->indexed_seq = lb->t.last_seq;
	}
	uint8_t *p = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, seg->fd, 0) : NULL;
	if (size && p == MAP_FAILED)
		return ml_diag_set(ML_ERR_IO, "cannot map segment %020" PRIu64 ".seg: %s",
				   seg->first, strerror(errno));
	if (size > start) /* the pages to walk, read ahead at once: one fault each otherwise */
		madvise(p + (start & ~4095ull), size - (start & ~4095ull), MADV_POPULATE_READ);
	int whole = !last && !lb && seg->idx_end == 0;
	if (whole && ml_idx_whole_begin(log, seg) != 0) {
		munmap(p, size);
		return -1;
	}
	struct walk w = {log, seg, !last, 0};
	struct ml_scan sc = {.next_position = log->next_position,
			     .start = start,
			     .scavenged = seg->format == ML_FORMAT_SCAVENGED};
	ml_scan_segment(p, size, 1, &sc, index_record, &w);
	if (size)
		munmap(p, size);
	if (w.failed)
		return -1;
	log->next_position = sc.next_position;
	seg->end = seg->durable_end = seg->zeroed_end = seg->data_end = sc.good_end;
	return last ? finish_last(log, seg, &sc, size)
		    : finish_sealed(log, seg, &sc, next_first, whole);
}

/*
 * The last segment of a log written before format 2 (its records carry no
 * synced position) takes no more records: its zeros are cut, and the next
 * batch starts a segment of format 2, so that a segment's header says what
 * its records are.
 */
static int retire_old_format(struct ml_log *log, struct ml_seg *seg)
{
	if (seg->format >= ML_FORMAT_VERSION || log->opt.readonly)
		return 0;
	if (ftruncate(seg->fd, (off_t)seg->end) != 0 || fdatasync(seg->fd) != 0)
		return ml_diag_set(ML_ERR_IO, "cannot seal the last segment of %s: %s", log->logdir,
				   strerror(errno));
	seg->full = seg->sealed = 1;
	seg->zeroed_end = seg->end;
	snprintf(log->recovered + strlen(log->recovered),
		 sizeof(log->recovered) - strlen(log->recovered),
		 "%ssealed its last segment, of format %u: new records go to a segment of "
		 "format %d",
		 log->recovered[0] ? "; " : "", seg->format, ML_FORMAT_VERSION);
	return 0;
}

/*
 * The segments in order: first every one whose index files hold it whole (the
 * runs then cover their blocks), then, from the first that is not, each is
 * walked and indexed in turn; the last one's tail stays in chunks.
 */
static int open_segments(struct ml_log *log, const uint64_t *firsts, size_t n)
{
	size_t k = 0;
	uint64_t size = 0;
	struct ml_seg *seg = NULL;
	for (; k < n; k++) {
		if ((seg = add_segment(log, firsts[k], &size)) == NULL)
			return -1;
		ml_idx_load(log, seg, size, 0);
		if (k + 1 == n || !indexed_to(log, seg, firsts[k + 1]))
			break;
		seg->sealed = 1;
	}
	if (ml_runs_cover(log) != 0)
		return -1;
	log->last_seq = log->applied_seq = log->indexed_seq;
	for (; k < n; k++) {
		if (seg == NULL) {
			if ((seg = add_segment(log, firsts[k], &size)) == NULL)
				return -1;
			ml_idx_load(log, seg, size, 1);
		}
		if (walk_segment(log, seg, size, k + 1 == n, k + 1 < n ? firsts[k + 1] : 0) != 0 ||
		    (k + 1 == n && retire_old_format(log, seg) != 0))
			return -1;
		seg = NULL;
	}
	if (log->stats.index_rebuilt)
		snprintf(log->recovered + strlen(log->recovered),
			 sizeof(log->recovered) - strlen(log->recovered),
			 "%sbuilt the index of %" PRIu64 " segment%s again from %s records (%s)",
			 log->recovered[0] ? "; " : "", log->stats.index_rebuilt,
			 log->stats.index_rebuilt == 1 ? "" : "s",
			 log->stats.index_rebuilt == 1 ? "its" : "their",
			 log->stats.index_rebuilt == 1
			     ? "its index file was missing, damaged or short"
			     : "their index files were missing, damaged or short: a log written "
			       "before index files is indexed once, at its first open");
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

static void log_free(struct ml_log *log)
{
	ml_log_unmap_all(log);
	ml_index_free(log);
	ml_ret_free(log->ret);
	for (size_t i = 0; i < log->nsegs; i++) {
		struct ml_seg *seg = log->segs[i];
		if (seg->fd >= 0)
			close(seg->fd);
		if (seg->idx_fd >= 0) { /* an index file built whole, left unfinished */
			char tmp[48];
			snprintf(tmp, sizeof(tmp), "%020" PRIu64 ".idx.tmp", seg->first);
			close(seg->idx_fd);
			unlinkat(log->dirfd, tmp, 0);
		}
		free(seg);
	}
	if (log->dirfd >= 0)
		close(log->dirfd);
	if (log->lockfd >= 0)
		close(log->lockfd);
	ml_buf_free(&log->pending.bytes);
	ml_buf_free(&log->inflight.bytes);
	pthread_mutex_destroy(&log->mu);
	pthread_cond_destroy(&log->flush_cv);
	pthread_cond_destroy(&log->zero_cv);
	pthread_cond_destroy(&log->head_cv);
	pthread_cond_destroy(&log->index_cv);
	pthread_cond_destroy(&log->merge_cv);
	free(log->segs);
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
	log->first = log->next_position = 1;
	log->index_block = o->index_block ? o->index_block : ML_INDEX_BLOCK_DEFAULT;
	pthread_mutex_init(&log->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&log->flush_cv, &ca);
	pthread_cond_init(&log->zero_cv, NULL);
	pthread_cond_init(&log->head_cv, NULL);
	pthread_cond_init(&log->index_cv, NULL);
	pthread_cond_init(&log->merge_cv, NULL);
	pthread_condattr_destroy(&ca);
	ml_log_writer_local_init(log);
	log->ret = ml_ret_new(log);

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
	if ((!o->readonly && take_lock(log) != 0) || load_seed(log) != 0 ||
	    ml_seg_list(log->logdir, !o->readonly, &firsts, &n) != 0)
		goto fail;
	if (n > 0) /* the log may start after 1: sealed segments can be dropped from the front */
		log->first = log->next_position = firsts[0];
	if (open_segments(log, firsts, n) != 0)
		goto fail;
	free(firsts);
	firsts = NULL;
	log->head = log->synced_position = log->next_position - 1;
	if (ml_ret_open(log) != 0)
		goto fail;
	if (!o->readonly && (ml_log_flusher_start(log) != 0 || ml_indexer_start(log) != 0))
		goto fail;
	log->stats.open_ns = ml_clock_ns() - t0;
	return log;
fail:
	free(firsts);
	ml_log_flusher_stop(log);
	ml_indexer_stop(log);
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
	ml_indexer_stop(log); /* after the flusher: the blocks that became ready are written */
	ml_ret_save(log);     /* so that the next open scans nothing for the retention state */
	log_free(log);
	if (set)
		set->ops->free(set);
}
