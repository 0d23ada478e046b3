/*
 * scavenge.c - giving back the disk that removed events hold: ml_log_scavenge.
 *
 * Each finished segment (one the flusher no longer writes, whose events are
 * all acknowledged and written down in its index file) is read with its
 * checksums, and each event is put to the caller's predicate. A segment with
 * an event to remove is written again to <first>.seg.tmp: kept records byte
 * for byte, and for each removed event a stub (record.h, ML_REC_REMOVED) with
 * its stream, type, position, version, time and batch bookkeeping but none of
 * its id, meta or data. Stubs keep positions without gaps in the file and
 * versions counted as before, so every lookup of the index stays right with
 * only the records' offsets changed, and the segment alone still says all the
 * index needs (it can always be built again from it). The new segment's
 * header has format 3 and the number of this rewrite; its index file is the
 * old one's blocks with the new offsets, written to <first>.idx.tmp with the
 * same number. Both are synced, then renamed over the old files, and the
 * folder synced. A crash at any moment leaves the old segment or the new one
 * whole: an index file whose number is not its segment's is built again from
 * the segment at the next open (idxfile.c), and the open removes leftover
 * .tmp files.
 *
 * Online: the swap in memory (the segment's fd, its read mapping, its
 * blocks' mappings) happens under the log's mutex. Reads that took the old fd
 * or mapping before keep them until they are done (read.c, ml_log_retire);
 * the index's old mappings are only read under the mutex, except by the
 * merger, so they are unmapped at once unless a merge runs (then at close).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log/index.h"
#include "log/log_internal.h"
#include "log/record.h"

#ifdef ML_FAULT_INJECTION
#include "log/faults.h"

void ml_log_scavenge_steps(struct ml_log *log, void (*fn)(int step, uint64_t first, void *arg),
			   void *arg)
{
	log->scavenge_step = fn;
	log->scavenge_step_arg = arg;
}

static void step(struct ml_log *log, int s, uint64_t first)
{
	if (log->scavenge_step)
		log->scavenge_step(s, first, log->scavenge_step_arg);
}
#else
#define step(log, s, first) ((void)0)
#endif

#define WRITE_CHUNK (1u << 20)

/* A segment to scavenge, as taken under the mutex. */
struct target {
	struct ml_seg *seg;
	uint64_t first, npos, size; /* positions first .. first + npos - 1, in size bytes */
	int fd;
	uint32_t scavenges;
	struct ml_block **blocks; /* its blocks, in order */
	size_t nblocks;
};

/* Can segment i be scavenged now, and with which blocks? (mutex held) */
static int take_target(struct ml_log *log, size_t i, struct target *t)
{
	struct ml_seg *s = log->segs[i];
	if (i + 1 >= log->nsegs || !s->sealed || s->fd < 0 || log->segs[i + 1]->first > log->head)
		return 0; /* the head's segment, or one not finished */
	for (const struct ml_chunk *c = log->chunks; c; c = c->next)
		if (c->seg == s)
			return 0; /* some of its events are not in its index file yet */
	*t = (struct target){
	    s,	  s->first, log->segs[i + 1]->first - s->first, s->durable_end, s->fd, s->scavenges,
	    NULL, 0};
	uint64_t next = s->first;
	for (size_t b = 0; b < log->nblocks; b++) {
		if (log->blocks[b]->seg != s)
			continue;
		if (log->blocks[b]->t.first != next)
			break;
		t->blocks = ml_xrealloc(t->blocks, (t->nblocks + 1) * sizeof(*t->blocks));
		t->blocks[t->nblocks++] = log->blocks[b];
		next = log->blocks[b]->t.last + 1;
	}
	if (next != s->first + t->npos) {
		free(t->blocks);
		return 0;
	}
	return 1;
}

static void progress(struct ml_log *log, uint64_t read, uint64_t written)
{
	pthread_mutex_lock(&log->mu);
	log->scav.bytes_read += read;
	log->scav.bytes_written += written;
	pthread_mutex_unlock(&log->mu);
}

/*
 * Reads the segment's records with their checksums and asks the predicate of each event:
 * gone[k] for position first + k. Returns how many are to be removed now, or -1 with diag.
 */
static int64_t decide(struct ml_log *log, const struct target *t, const uint8_t *p,
		      ml_removed_fn removed, void *arg, uint8_t *gone)
{
	char name[32];
	ml_seg_name(name, t->first);
	struct ml_rec r;
	int64_t n = 0;
	uint64_t o = ML_SEG_HEADER, k = 0;
	for (; o < t->size && k < t->npos; o += r.len, k++) {
		if (ml_rec_parse(p + o, t->size - o, 1, &r) != ML_REC_OK ||
		    r.ev.position != t->first + k)
			return ml_diag_set(ML_ERR_CORRUPT,
					   "segment %s is damaged at offset %" PRIu64
					   ": nothing was scavenged; run 'moonlog check --data %s'",
					   name, o, log->dir);
		gone[k] = 0;
		if (r.flags & ML_REC_REMOVED)
			continue; /* a stub already */
		int rc = removed(&r.ev, arg);
		if (rc < 0)
			return -1;
		gone[k] = rc > 0;
		n += gone[k];
	}
	if (k != t->npos || o != t->size)
		return ml_diag_set(ML_ERR_CORRUPT,
				   "segment %s does not end where its index says: nothing was "
				   "scavenged; run 'moonlog check --data %s'",
				   name, log->dir);
	return n;
}

/* Encodes the stub of the removed event r into out. */
static void stub_of(const struct ml_rec *r, struct ml_buf *out)
{
	struct ml_event_in e = {0};
	e.stream = r->ev.stream;
	e.stream_len = r->ev.stream_len;
	e.type = r->ev.type;
	e.type_len = r->ev.type_len;
	uint8_t keep = ML_REC_FIRST | ML_REC_LAST | ML_REC_GEN_ID | ML_REC_SYNCED;
	uint64_t seq = ml_rec_seq(r), synced = ml_rec_synced(r);
	size_t len = ml_rec_size(&e, 0) + (seq ? ML_REC_SEQ_SIZE : 0) +
		     (r->flags & ML_REC_SYNCED ? ML_REC_SYNCED_SIZE : 0);
	ml_buf_reserve(out, len);
	ml_rec_encode((uint8_t *)out->data + out->len, &e, "", 0,
		      (uint8_t)((r->flags & keep) | ML_REC_REMOVED), r->left, r->ev.position,
		      r->ev.version, r->ev.time, seq, synced);
	out->len += len;
}

/*
 * Writes the new segment to <first>.seg.tmp (synced): kept records as they are, stubs for
 * the removed. off[k]: the new offset of position first + k. Its fd and size, or -1.
 */
static int write_segment(struct ml_log *log, const struct target *t, const uint8_t *p,
			 const uint8_t *gone, uint32_t *off, uint64_t *size)
{
	char name[32], tmp[40];
	ml_seg_name(name, t->first);
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	int fd = openat(log->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, ML_FILE_MODE);
	if (fd < 0)
		return ml_diag_set(ML_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
	struct ml_buf buf = {0};
	ml_buf_reserve(&buf, ML_SEG_HEADER);
	ml_seg_header_encode_scavenged((uint8_t *)buf.data, t->first, (int64_t)ml_le64(p + 24),
				       t->scavenges + 1);
	buf.len = ML_SEG_HEADER;
	uint64_t at = 0, o = ML_SEG_HEADER, read = 0;
	int rc = 0;
	struct ml_rec r = {0};
	for (uint64_t k = 0; k < t->npos && rc == 0; k++, o += r.len) {
		if (ml_rec_parse(p + o, t->size - o, 0, &r) != ML_REC_OK) { /* decide() read it */
			rc = -1, errno = EIO;
			break;
		}
		off[k] = (uint32_t)(at + buf.len);
		if (gone[k])
			stub_of(&r, &buf);
		else
			ml_buf_add(&buf, p + o, r.len);
		read += r.len;
		if (buf.len >= WRITE_CHUNK || k + 1 == t->npos) {
			rc = ml_pwrite_all(fd, buf.data, buf.len, at);
			progress(log, read, buf.len);
			at += buf.len, buf.len = 0, read = 0;
		}
	}
	if (t->npos == 0)
		rc = ml_pwrite_all(fd, buf.data, buf.len, 0), at = buf.len;
	ml_buf_free(&buf);
	if (rc != 0 || fdatasync(fd) != 0) {
		int e = errno;
		close(fd);
		unlinkat(log->dirfd, tmp, 0);
		return ml_diag_set(ML_ERR_IO, "cannot write %s: %s", tmp, strerror(e));
	}
	*size = at;
	return fd;
}

/* Replaces seg's fd, mapping and blocks by the new ones (mutex held). */
static void swap_in(struct ml_log *log, const struct target *t, int fd, uint64_t size,
		    struct ml_block **nb)
{
	struct ml_seg *s = t->seg;
	ml_log_retire(log, s->fd, s->rmap, s->rmap_len); /* readers in them keep them */
	s->fd = fd;
	s->rmap = NULL;
	s->rmap_len = 0;
	s->end = s->durable_end = s->zeroed_end = s->data_end = size;
	s->format = ML_FORMAT_SCAVENGED;
	s->scavenges = t->scavenges + 1;
	for (size_t i = 0; i < t->nblocks; i++) {
		struct ml_block *b = t->blocks[i];
		void *old = b->map;
		size_t old_len = b->map_len;
		*b = *nb[i];
		b->seg = s;
		free(nb[i]);
		for (size_t r = 0; r < log->nruns; r++)
			if (log->runs[r]->block == b)
				log->runs[r]->t = b->t;
		if (log->merging) { /* the merger may be reading its tables: at close */
			struct ml_old_map *o = ml_xmalloc(sizeof(*o));
			*o = (struct ml_old_map){old, old_len, log->old_maps};
			log->old_maps = o;
		} else {
			munmap(old, old_len);
		}
	}
}

/* Scavenges one segment; 0 (*removed: its events removed now, 0 if it was left as it was),
 * or -1 with diag. */
static int scavenge_one(struct ml_log *log, const struct target *t, ml_removed_fn removed,
			void *arg, uint64_t *nremoved)
{
	*nremoved = 0;
	const uint8_t *p = mmap(NULL, t->size, PROT_READ, MAP_SHARED, t->fd, 0);
	if (p == MAP_FAILED)
		return ml_diag_set(ML_ERR_IO, "cannot map segment %020" PRIu64 ".seg: %s", t->first,
				   strerror(errno));
	madvise((void *)p, t->size, MADV_SEQUENTIAL);
	uint8_t *gone = ml_xmalloc(t->npos ? t->npos : 1);
	uint32_t *off = ml_xmalloc((t->npos ? t->npos : 1) * sizeof(*off));
	struct ml_block **nb = ml_xcalloc(t->nblocks ? t->nblocks : 1, sizeof(*nb));
	uint64_t *at = ml_xmalloc((t->nblocks ? t->nblocks : 1) * sizeof(*at));
	uint64_t size = 0;
	int fd = -1, idx_fd = -1, rc = -1;
	int64_t n = decide(log, t, p, removed, arg, gone);
	if (n <= 0) {
		if (n == 0)
			progress(log, t->size, 0);
		rc = n < 0 ? -1 : 0;
		goto out;
	}
	if ((fd = write_segment(log, t, p, gone, off, &size)) < 0)
		goto out;
	step(log, ML_SCAV_SEG_WRITTEN, t->first);
	char name[32], tmp[40];
	ml_seg_name(name, t->first);
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	if (ml_idx_rewrite(log, t->seg, t->scavenges + 1, t->blocks, t->nblocks, off, t->npos, size,
			   &idx_fd, at) != 0)
		goto undo;
	step(log, ML_SCAV_IDX_WRITTEN, t->first);
	for (size_t i = 0; i < t->nblocks; i++)
		if ((nb[i] = ml_idx_map_block(log, idx_fd, at[i], t->blocks[i]->t.length)) ==
		    NULL) {
			ml_diag_set(ML_ERR_IO, "cannot map the new index of %s: %s", name,
				    strerror(errno));
			goto undo;
		}
	/* The segment first: from here a crash leaves the new one, whose old index file is
	 * then built again from it (its number differs); then the index file. */
	if (renameat(log->dirfd, tmp, log->dirfd, name) != 0) {
		ml_diag_set(ML_ERR_IO, "cannot rename %s: %s", tmp, strerror(errno));
		goto undo;
	}
	step(log, ML_SCAV_SEG_RENAMED, t->first);
	int idx_rc = ml_idx_rename_tmp(log, t->first);
	step(log, ML_SCAV_IDX_RENAMED, t->first);
	if (fsync(log->dirfd) != 0 && idx_rc == 0)
		idx_rc = ml_diag_set(ML_ERR_IO, "cannot sync %s: %s", log->logdir, strerror(errno));
	step(log, ML_SCAV_DIR_SYNCED, t->first);
	pthread_mutex_lock(&log->mu);
	swap_in(log, t, fd, size, nb);
	pthread_mutex_unlock(&log->mu);
	step(log, ML_SCAV_SWAPPED, t->first);
	fd = -1;
	memset(nb, 0, t->nblocks * sizeof(*nb));
	*nremoved = (uint64_t)n;
	rc = idx_rc; /* the segment is in: a failed index rename is mended at the next open */
	goto out;
undo:
	unlinkat(log->dirfd, tmp, 0);
	{
		char itmp[48];
		snprintf(itmp, sizeof(itmp), "%020" PRIu64 ".idx.tmp", t->first);
		unlinkat(log->dirfd, itmp, 0);
	}
out:
	for (size_t i = 0; i < t->nblocks; i++)
		ml_block_free(nb[i]);
	if (fd >= 0)
		close(fd);
	if (idx_fd >= 0)
		close(idx_fd);
	munmap((void *)p, t->size);
	free(gone);
	free(off);
	free(nb);
	free(at);
	return rc;
}

int ml_log_scavenge(struct ml_log *log, ml_removed_fn removed, void *arg,
		    struct ml_scavenge_stats *out)
{
	if (log->opt.readonly)
		return ml_diag_set(ML_ERR_USAGE,
				   "the log in %s is open read-only: open it for "
				   "writing to scavenge it",
				   log->dir);
	pthread_mutex_lock(&log->mu);
	if (log->scavenging) {
		pthread_mutex_unlock(&log->mu);
		return ml_diag_set(ML_ERR_BUSY,
				   "a scavenge of the log in %s is running already; wait for it "
				   "to finish",
				   log->dir);
	}
	log->scavenging = 1;
	log->scav = (struct ml_scavenge_stats){.running = 1, .started_ms = (uint64_t)ml_time_ms()};
	uint64_t *firsts = ml_xmalloc((log->nsegs ? log->nsegs : 1) * sizeof(*firsts));
	size_t n = 0;
	for (size_t i = 0; i + 1 < log->nsegs; i++)
		firsts[n++] = log->segs[i]->first;
	log->scav.segments = n;
	pthread_mutex_unlock(&log->mu);

	uint64_t t0 = ml_clock_ns();
	int rc = 0;
	for (size_t k = 0; k < n && rc == 0; k++) {
		struct target t = {0};
		if (__atomic_load_n(&log->scavenge_stop, __ATOMIC_RELAXED)) {
			rc = ml_diag_set(ML_ERR_BUSY,
					 "the scavenge stopped after %zu of %zu segments: the log "
					 "is closing; run it again to finish",
					 k, n);
			break;
		}
		pthread_mutex_lock(&log->mu);
		size_t i = ml_log_seg_index(log, firsts[k]);
		int ok = log->segs[i]->first == firsts[k] && take_target(log, i, &t);
		pthread_mutex_unlock(&log->mu);
		uint64_t gone = 0;
		if (ok) {
			rc = scavenge_one(log, &t, removed, arg, &gone);
			free(t.blocks);
		}
		pthread_mutex_lock(&log->mu);
		log->scav.segments_done++;
		if (gone) {
			log->scav.rewritten++;
			log->scav.events_removed += gone;
			log->scav.bytes_reclaimed += t.size - t.seg->durable_end;
		}
		pthread_mutex_unlock(&log->mu);
	}
	free(firsts);
	pthread_mutex_lock(&log->mu);
	log->scav.running = 0;
	log->scav.elapsed_ms = (ml_clock_ns() - t0) / 1000000;
	if (rc != 0)
		snprintf(log->scav.error, sizeof(log->scav.error), "%s", ml_diag_last());
	log->scavenging = 0;
	log->scavenge_stop = 0;
	if (out)
		*out = log->scav;
	pthread_mutex_unlock(&log->mu);
	return rc;
}

void ml_log_scavenge_stop(struct ml_log *log)
{
	pthread_mutex_lock(&log->mu);
	if (log->scavenging)
		__atomic_store_n(&log->scavenge_stop, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&log->mu);
}

void ml_log_scavenge_progress(struct ml_log *log, struct ml_scavenge_stats *out)
{
	pthread_mutex_lock(&log->mu);
	*out = log->scav;
	if (out->running)
		out->elapsed_ms = (uint64_t)ml_time_ms() - out->started_ms;
	pthread_mutex_unlock(&log->mu);
}
