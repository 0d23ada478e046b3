/*
 * read.c - reading events back: one stream by version, or $all by position.
 *
 * The index (taken under the mutex) says where each record is. $all is read
 * in place through a read-only mapping of each segment, made on its first
 * read and kept until the log closes (a mapping is never unmapped while the
 * log is open, so a reader on another thread can never find it gone); a
 * stream's scattered records, or a segment that cannot be mapped, are read
 * with pread. Either way outside the mutex, so readers never hold up
 * appenders. Only acknowledged events are read, and acknowledged bytes never
 * change.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log/index.h"
#include "log/log_internal.h"
#include "log/record.h"

#define READ_CHUNK (1u << 20)

struct loc {
	int fd;
	uint64_t off, len;
};

/* Where the record of a reserved position is, and how long it is (mutex held). */
static struct loc locate(struct ml_log *log, uint64_t p)
{
	struct ml_loc l = ml_index_locate(log, p);
	return (struct loc){l.seg ? l.seg->fd : -1, l.off, l.len};
}

static int read_exact(int fd, void *buf, size_t n, uint64_t off)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return ml_diag_set(ML_ERR_IO, "cannot read the log: %s",
					   r == 0 ? "unexpected end of segment" : strerror(errno));
		p += r, n -= (size_t)r, off += (uint64_t)r;
	}
	return 0;
}

/* Copies a reserved record into buf, from its file or, if not yet written, its buffer. */
int ml_log_record_at(struct ml_log *log, uint64_t position, struct ml_buf *buf)
{
	struct ml_loc il = ml_index_locate(log, position);
	struct ml_seg *seg = il.seg;
	if (seg == NULL)
		return ml_diag_set(ML_ERR_NOT_FOUND, "position %llu is not in the log",
				   (unsigned long long)position);
	struct loc l = {seg->fd, il.off, il.len};
	ml_buf_reserve(buf, l.len);
	if (l.off + l.len <= seg->durable_end) {
		if (read_exact(l.fd, buf->data + buf->len, l.len, l.off) != 0)
			return -1;
		buf->len += l.len;
		return 0;
	}
	struct ml_flushbuf *fbs[] = {&log->inflight, &log->pending};
	for (int i = 0; i < 2; i++)
		for (struct ml_append *r = fbs[i]->head; r; r = ml_req_of(r)->next) {
			struct ml_req *q = ml_req_of(r);
			if (q->nbytes && q->seg == seg && l.off >= q->file_offset &&
			    l.off < q->file_offset + q->nbytes) {
				ml_buf_add(buf,
					   fbs[i]->bytes.data + q->buf_offset +
					       (l.off - q->file_offset),
					   l.len);
				return 0;
			}
		}
	return ml_diag_set(ML_ERR_CORRUPT, "record %llu is not where the index says",
			   (unsigned long long)position);
}

/* Parses the records in buf and calls fn for each; returns fn's verdict. */
static int deliver(const uint8_t *p, size_t n, ml_event_fn fn, void *arg, int64_t *count)
{
	struct ml_rec r;
	for (size_t o = 0; o < n; o += r.len) {
		if (ml_rec_parse(p + o, n - o, 0, &r) != ML_REC_OK)
			return ml_diag_set(ML_ERR_CORRUPT, "the log holds a bad record; run "
							   "'moonlog check'");
		(*count)++;
		int rc = fn(&r.ev, arg);
		if (rc != 0)
			return rc;
	}
	return 0;
}

struct keep;
static int kept(struct ml_log *log, const struct ml_event *e, const struct keep *k);

/* One record of a stream: it must be of that stream, or the index is wrong. Skipped when k
 * is given and the predicate removes it. */
static int deliver_checked(struct ml_log *log, const uint8_t *p, size_t n, const char *stream,
			   size_t len, const struct keep *k, ml_event_fn fn, void *arg,
			   int64_t *count)
{
	struct ml_rec r;
	if (ml_rec_parse(p, n, 0, &r) != ML_REC_OK || r.len != n || r.ev.stream_len != len ||
	    memcmp(r.ev.stream, stream, len) != 0)
		return ml_diag_set(ML_ERR_CORRUPT, "the log's index points at a record of another "
						   "stream; run 'moonlog check'");
	if (k && !kept(log, &r.ev, k))
		return 0;
	(*count)++;
	return fn(&r.ev, arg);
}

/*
 * The segment's file mapped from 0 to at least `need` (mutex held), or NULL.
 * The segment still being written is mapped past its end, to the size it
 * rolls at and some, so that it is mapped once; pages past the end of the file
 * are never touched, as only acknowledged bytes are read.
 */
static const uint8_t *seg_map(struct ml_log *log, struct ml_seg *seg, uint64_t need)
{
	if (seg->rmap_len >= need)
		return seg->rmap;
	uint64_t len = seg->sealed && seg->end > need ? seg->end : need;
	if (!seg->sealed && len < log->opt.segment_size + (64u << 20))
		len = log->opt.segment_size + (64u << 20);
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, seg->fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (seg->rmap) { /* a reader may still be in the shorter one */
		struct ml_old_map *o = ml_xmalloc(sizeof(*o));
		*o = (struct ml_old_map){seg->rmap, seg->rmap_len, log->old_maps};
		log->old_maps = o;
	}
	seg->rmap = p;
	seg->rmap_len = len;
	return seg->rmap;
}

void ml_log_unmap_all(struct ml_log *log)
{
	for (size_t i = 0; i < log->nsegs; i++)
		if (log->segs[i]->rmap)
			munmap(log->segs[i]->rmap, log->segs[i]->rmap_len);
	while (log->old_maps) {
		struct ml_old_map *o = log->old_maps;
		log->old_maps = o->next;
		munmap(o->p, o->len);
		free(o);
	}
}

/* The last position of the run from `from` to `end` that lies in from's segment (mutex held). */
static uint64_t run_end(struct ml_log *log, size_t si, uint64_t end)
{
	if (si + 1 < log->nsegs && log->segs[si + 1]->first - 1 < end)
		return log->segs[si + 1]->first - 1;
	return end;
}

int64_t ml_log_read_all(struct ml_log *log, uint64_t from, uint64_t limit, ml_event_fn fn,
			void *arg)
{
	struct ml_buf buf = {0};
	int64_t count = 0;
	int rc = 0;
	pthread_mutex_lock(&log->mu);
	if (from < log->first) /* what is before the first segment kept is gone */
		from = log->first;
	uint64_t end = log->head;
	if (limit && from <= end && limit - 1 < end - from)
		end = from + limit - 1;
	while (rc == 0 && from <= end) {
		/* The run of records from `from` within one segment. */
		size_t si = ml_log_seg_index(log, from);
		struct ml_seg *seg = log->segs[si];
		uint64_t last = run_end(log, si, end);
		uint64_t off = locate(log, from).off;
		struct loc lastl = locate(log, last);
		uint64_t stop = lastl.off + lastl.len;
		const uint8_t *map = seg_map(log, seg, stop);
		if (map == NULL && stop - off > READ_CHUNK) { /* pread it a chunk at a time */
			while (last > from && locate(log, last).off - off > READ_CHUNK)
				last = from + (last - from) / 2;
			lastl = locate(log, last);
			stop = lastl.off + lastl.len;
		}
		int fd = seg->fd;
		pthread_mutex_unlock(&log->mu);
		if (map == NULL) {
			ml_buf_reserve(&buf, stop - off);
			rc = read_exact(fd, buf.data, stop - off, off);
		}
		if (rc == 0)
			rc = deliver(map ? map + off : (uint8_t *)buf.data, stop - off, fn, arg,
				     &count);
		from = last + 1;
		pthread_mutex_lock(&log->mu);
	}
	pthread_mutex_unlock(&log->mu);
	ml_buf_free(&buf);
	return rc < 0 ? -1 : count;
}

/*
 * What a stream read leaves out (retention.c): versions below the floor that
 * deletion, truncation and max count set are never asked of the index; max age
 * is asked of the predicate per event (inexact), the read then going on until
 * `limit` events are kept.
 */
struct keep {
	int filter;	/* ask the predicate of each event */
	uint64_t limit; /* 0: all */
	int64_t now;
};

static int kept(struct ml_log *log, const struct ml_event *e, const struct keep *k)
{
	return !ml_log_removed(log, e->stream, e->stream_len, e->version, e->time, k->now);
}

/* Narrows a read to the versions kept from floor on: 0, or 1 when none is left. */
static int narrow(struct ml_log *log, const char *stream, size_t len, uint64_t *from,
		  uint64_t *limit, int backwards, struct keep *k)
{
	int exact;
	uint64_t floor = ml_log_stream_floor(log, stream, len, &exact);
	k->filter = !exact, k->limit = *limit, k->now = ml_time_ms();
	if (!backwards && *from < floor)
		*from = floor;
	if (backwards) {
		uint64_t v = ml_log_stream_version(log, stream, len);
		uint64_t top = *from == 0 || *from > v ? v : *from;
		if (top < floor)
			return 1;
		if (*limit == 0 || *limit > top - floor + 1)
			*limit = top - floor + 1;
		k->limit = *limit;
	}
	if (k->filter)
		*limit = backwards ? *limit : 0; /* forward: as many as it takes to keep `limit` */
	return 0;
}

int64_t ml_log_read_stream(struct ml_log *log, const char *stream, size_t stream_len, uint64_t from,
			   uint64_t limit, int backwards, ml_event_fn fn, void *arg)
{
	uint64_t *pos = NULL;
	struct keep k = {0};
	if (ml_log_any_removed(log) &&
	    narrow(log, stream, stream_len, &from, &limit, backwards, &k) != 0)
		return 0;
	pthread_mutex_lock(&log->mu);
	size_t n = ml_index_stream_positions(log, stream, stream_len, from, limit, backwards, &pos);
	struct loc *locs = ml_xmalloc((n ? n : 1) * sizeof(*locs));
	for (size_t i = 0; i < n; i++)
		locs[i] = locate(log, pos[i]);
	pthread_mutex_unlock(&log->mu);
	free(pos);

	struct ml_buf buf = {0};
	int64_t count = 0;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0 && (!k.limit || count < (int64_t)k.limit); i++) {
		if (locs[i].fd < 0) {
			rc = ml_diag_set(
			    ML_ERR_CORRUPT,
			    "the index of the log in %s disagrees with its segments; run "
			    "'moonlog check'",
			    log->dir);
			break;
		}
		ml_buf_reserve(&buf, locs[i].len);
		rc = read_exact(locs[i].fd, buf.data, locs[i].len, locs[i].off);
		if (rc == 0)
			rc = deliver_checked(log, (uint8_t *)buf.data, locs[i].len, stream,
					     stream_len, k.filter ? &k : NULL, fn, arg, &count);
	}
	free(locs);
	ml_buf_free(&buf);
	return rc < 0 ? -1 : count;
}

/* A read of $all that leaves the removed events out and goes on past them. */
struct kept_all {
	struct ml_log *log;
	ml_event_fn fn;
	void *arg;
	uint64_t next, want, got;
	int64_t now;
	int stop; /* fn stopped the read (1) or failed it (-1) */
};

static int keep_one(const struct ml_event *e, void *arg)
{
	struct kept_all *k = arg;
	k->next = e->position + 1;
	if (ml_log_removed(k->log, e->stream, e->stream_len, e->version, e->time, k->now))
		return 0;
	k->got++;
	int rc = k->fn(e, k->arg);
	if (rc != 0)
		return k->stop = rc;
	return k->want && k->got == k->want;
}

int64_t ml_log_read_all_kept(struct ml_log *log, uint64_t from, uint64_t limit, ml_event_fn fn,
			     void *arg)
{
	if (!ml_log_any_removed(log))
		return ml_log_read_all(log, from, limit, fn, arg);
	struct kept_all k = {log, fn, arg, from, limit, 0, ml_time_ms(), 0};
	uint64_t head = ml_log_head(log);
	while ((k.want == 0 || k.got < k.want) && k.next <= head && k.stop == 0) {
		int64_t n = ml_log_read_all(log, k.next, k.want ? k.want - k.got : 0, keep_one, &k);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
	}
	return (int64_t)k.got;
}
