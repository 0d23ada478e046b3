/*
 * scan_read.c - the fast sequential read of $all, for replays: ml_log_scan.
 *
 * ml_log_read_all looks every record up in the index and copies the bytes
 * with pread; a replay that folds millions of events wants neither. The scan
 * takes the index only once, to find where `from` starts, then walks the
 * records of each segment in place through a read-only mapping, a window at a
 * time (so the process never maps more than one window, whatever the size of
 * the log), and hands out pointers into it. Acknowledged bytes never change, so
 * the walk needs no lock; a scavenge may swap a segment's file meanwhile, so
 * the scan counts itself as a reader (read.c) and keeps the fds it took open.
 * Removed events' stubs are walked over, not delivered: a scan covers every
 * position up to `until` unless its callback stops it.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log/index.h"
#include "log/log_internal.h"
#include "log/record.h"

#define WINDOW (16u << 20)

struct scan_seg {
	int fd;
	uint64_t start, end; /* the bytes to walk */
};

struct window {
	uint8_t *map;
	uint64_t off, len; /* of the mapping in the file */
};

static void unmap(struct window *w)
{
	if (w->map)
		munmap(w->map, w->len);
	w->map = NULL;
	w->len = 0;
}

/* Maps [off, off + need) of the segment (need <= what is left of it), and more up to WINDOW. */
static int map_at(struct window *w, const struct scan_seg *s, uint64_t off, uint64_t need)
{
	static uint64_t page;
	if (page == 0)
		page = (uint64_t)sysconf(_SC_PAGESIZE);
	unmap(w);
	uint64_t base = off & ~(page - 1);
	uint64_t len = off - base + (need > WINDOW ? need : WINDOW);
	if (base + len > s->end)
		len = s->end - base;
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, s->fd, (off_t)base);
	if (p == MAP_FAILED)
		return ml_diag_set(ML_ERR_IO, "cannot map the log for reading: %m");
	madvise(p, len, MADV_SEQUENTIAL);
	w->map = p;
	w->off = base;
	w->len = len;
	return 0;
}

/* Walks one segment from s->start, delivering positions *pos .. last. */
static int walk(const struct scan_seg *s, uint64_t *pos, uint64_t last, ml_event_fn fn, void *arg,
		int64_t *count)
{
	struct window w = {0};
	struct ml_rec r;
	uint64_t off = s->start;
	int rc = 0;
	while (rc == 0 && *pos <= last && off < s->end) {
		uint64_t left = s->end - off;
		uint64_t in_map = w.map && off >= w.off ? w.off + w.len - off : 0;
		uint64_t need =
		    in_map >= ML_REC_HEADER ? ml_le32(w.map + (off - w.off)) : ML_REC_HEADER;
		if (need > left || need < ML_REC_HEADER) {
			rc = ml_diag_set(ML_ERR_CORRUPT,
					 "a record runs past the end of its segment; "
					 "run 'moonlog check'");
			break;
		}
		if (in_map < need) {
			if (map_at(&w, s, off, need) != 0) {
				rc = -1;
				break;
			}
			continue;
		}
		if (ml_rec_parse(w.map + (off - w.off), in_map, 0, &r) != ML_REC_OK ||
		    r.ev.position != *pos) {
			rc = ml_diag_set(ML_ERR_CORRUPT,
					 "the log holds a bad record; run 'moonlog check'");
			break;
		}
		(*pos)++;
		off += r.len;
		if (r.flags & ML_REC_REMOVED)
			continue;
		(*count)++;
		rc = fn(&r.ev, arg);
	}
	unmap(&w);
	return rc;
}

int64_t ml_log_scan(struct ml_log *log, uint64_t from, uint64_t until, ml_event_fn fn, void *arg)
{
	pthread_mutex_lock(&log->mu);
	if (from < log->first)
		from = log->first;
	uint64_t last = log->head;
	if (until && until < last)
		last = until;
	if (from > last) {
		pthread_mutex_unlock(&log->mu);
		return 0;
	}
	/* The segments from the one holding `from` to the one holding `last`. */
	struct ml_seg *first = ml_log_seg_of(log, from), *end = ml_log_seg_of(log, last);
	size_t i0 = 0, n = 0;
	while (log->segs[i0] != first)
		i0++;
	while (log->segs[i0 + n] != end)
		n++;
	n++;
	struct scan_seg *segs = ml_xmalloc(n * sizeof(*segs));
	for (size_t i = 0; i < n; i++) {
		struct ml_seg *sg = log->segs[i0 + i];
		segs[i] = (struct scan_seg){sg->fd, ML_SEG_HEADER, sg->durable_end};
	}
	segs[0].start = ml_index_locate(log, from).off;
	ml_log_reader_enter(log);
	pthread_mutex_unlock(&log->mu);

	int64_t count = 0;
	int rc = 0;
	uint64_t pos = from;
	for (size_t i = 0; i < n && rc == 0 && pos <= last; i++)
		rc = walk(&segs[i], &pos, last, fn, arg, &count);
	free(segs);
	pthread_mutex_lock(&log->mu);
	ml_log_reader_leave(log);
	pthread_mutex_unlock(&log->mu);
	return rc < 0 ? -1 : count;
}
