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
 * change, except by a scavenge (scavenge.c), which swaps a finished segment's
 * file for one where removed events are stubs: a read counts itself in
 * (ml_log_reader_enter) while it uses a segment's fd or mapping without the
 * mutex, and what a scavenge replaced is closed only once no read is in.
 *
 * A removed event's stub is never delivered. A read of $all counts positions,
 * stubs included, but one that found only stubs goes on to the next event
 * kept, so that a reader that moves its cursor to the last event it got always
 * moves on (the head's event is never a stub: its segment is never scavenged).
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

/* Parses the records in buf and calls fn for each but stubs (counted in *stubs); returns fn's
 * verdict. */
static int deliver(const uint8_t *p, size_t n, ml_event_fn fn, void *arg, int64_t *count,
		   uint64_t *stubs)
{
	struct ml_rec r;
	int64_t delivered = 0;
	int rc = 0;
	for (size_t o = 0; o < n; o += r.len) {
		if (ml_rec_parse(p + o, n - o, 0, &r) != ML_REC_OK) {
			rc = ml_diag_set(ML_ERR_CORRUPT, "the log holds a bad record; run "
							 "'moonlog check'");
			break;
		}
		if (__builtin_expect(r.flags & ML_REC_REMOVED, 0)) {
			(*stubs)++;
			continue;
		}
		delivered++;
		if ((rc = fn(&r.ev, arg)) != 0)
			break;
	}
	*count += delivered;
	return rc;
}

struct keep;
static int kept(struct ml_log *log, const struct ml_event *e, const struct keep *k);

/* One record of a stream: it must be of that stream, or the index is wrong. A stub is not
 * delivered, nor, when k is given, an event the predicate removes; *version is the record's
 * either way. */
static int deliver_checked(struct ml_log *log, const uint8_t *p, size_t n, const char *stream,
			   size_t len, const struct keep *k, ml_event_fn fn, void *arg,
			   int64_t *count, uint64_t *version)
{
	struct ml_rec r;
	if (ml_rec_parse(p, n, 0, &r) != ML_REC_OK || r.len != n || r.ev.stream_len != len ||
	    memcmp(r.ev.stream, stream, len) != 0)
		return ml_diag_set(ML_ERR_CORRUPT, "the log's index points at a record of another "
						   "stream; run 'moonlog check'");
	*version = r.ev.version;
	if ((r.flags & ML_REC_REMOVED) || (k && !kept(log, &r.ev, k)))
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
	log->readers = 0;
	ml_log_reader_leave(log);
}

static void retired_free(struct ml_retired *r)
{
	while (r) {
		struct ml_retired *next = r->next;
		if (r->map)
			munmap(r->map, r->len);
		if (r->fd >= 0)
			close(r->fd);
		free(r);
		r = next;
	}
}

void ml_log_reader_leave(struct ml_log *log)
{
	if (log->readers > 0)
		log->readers--;
	if (log->readers == 0 && log->retired) {
		retired_free(log->retired);
		log->retired = NULL;
	}
}

void ml_log_retire(struct ml_log *log, int fd, void *map, size_t len)
{
	struct ml_retired *r = ml_xmalloc(sizeof(*r));
	*r = (struct ml_retired){fd, map, len, log->retired};
	log->retired = r;
	if (log->readers == 0) {
		retired_free(log->retired);
		log->retired = NULL;
	}
}

/* The last position of the run from `from` to `end` that lies in from's segment (mutex held). */
static uint64_t run_end(struct ml_log *log, size_t si, uint64_t end)
{
	if (si + 1 < log->nsegs && log->segs[si + 1]->first - 1 < end)
		return log->segs[si + 1]->first - 1;
	return end;
}

/*
 * Delivers the records of positions from..end (mutex held, let go while reading); returns fn's
 * verdict. *count: events delivered; *stubs: removed events' stubs passed over.
 */
static int read_range(struct ml_log *log, uint64_t from, uint64_t end, struct ml_buf *buf,
		      ml_event_fn fn, void *arg, int64_t *count, uint64_t *stubs)
{
	int rc = 0;
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
		ml_log_reader_enter(log);
		pthread_mutex_unlock(&log->mu);
		if (map == NULL) {
			ml_buf_reserve(buf, stop - off);
			rc = read_exact(fd, buf->data, stop - off, off);
		}
		if (rc == 0)
			rc = deliver(map ? map + off : (uint8_t *)buf->data, stop - off, fn, arg,
				     count, stubs);
		from = last + 1;
		pthread_mutex_lock(&log->mu);
		ml_log_reader_leave(log);
	}
	return rc;
}

/* Passes one event on and stops: the read that goes on past removed events. */
struct first_kept {
	ml_event_fn fn;
	void *arg;
};

static int deliver_first(const struct ml_event *e, void *arg)
{
	struct first_kept *k = arg;
	int rc = k->fn(e, k->arg);
	return rc ? rc : 1;
}

int64_t ml_log_read_all(struct ml_log *log, uint64_t from, uint64_t limit, ml_event_fn fn,
			void *arg)
{
	struct ml_buf buf = {0};
	int64_t count = 0;
	uint64_t stubs = 0;
	pthread_mutex_lock(&log->mu);
	if (from < log->first) /* what is before the first segment kept is gone */
		from = log->first;
	uint64_t end = log->head;
	if (limit && from <= end && limit - 1 < end - from)
		end = from + limit - 1;
	int rc = read_range(log, from, end, &buf, fn, arg, &count, &stubs);
	if (rc == 0 && count == 0 && stubs && end < log->head) { /* only stubs: to the next kept */
		struct first_kept k = {fn, arg};
		rc = read_range(log, end + 1, log->head, &buf, deliver_first, &k, &count, &stubs);
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

/*
 * Delivers the events of the stream at the positions the index gave for one read (mutex held,
 * let go while reading). *version: the version of the last record read, stubs included.
 */
static int read_positions(struct ml_log *log, const uint64_t *pos, size_t n, const char *stream,
			  size_t stream_len, const struct keep *k, struct ml_buf *buf,
			  ml_event_fn fn, void *arg, int64_t *count, uint64_t *version)
{
	struct loc *locs = ml_xmalloc((n ? n : 1) * sizeof(*locs));
	for (size_t i = 0; i < n; i++)
		locs[i] = locate(log, pos[i]);
	ml_log_reader_enter(log);
	pthread_mutex_unlock(&log->mu);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0 && (!k || !k->limit || *count < (int64_t)k->limit);
	     i++) {
		if (locs[i].fd < 0) {
			rc = ml_diag_set(
			    ML_ERR_CORRUPT,
			    "the index of the log in %s disagrees with its segments; run "
			    "'moonlog check'",
			    log->dir);
			break;
		}
		ml_buf_reserve(buf, locs[i].len);
		rc = read_exact(locs[i].fd, buf->data, locs[i].len, locs[i].off);
		if (rc == 0)
			rc = deliver_checked(log, (uint8_t *)buf->data, locs[i].len, stream,
					     stream_len, k, fn, arg, count, version);
	}
	free(locs);
	pthread_mutex_lock(&log->mu);
	ml_log_reader_leave(log);
	return rc;
}

int64_t ml_log_read_stream(struct ml_log *log, const char *stream, size_t stream_len, uint64_t from,
			   uint64_t limit, int backwards, ml_event_fn fn, void *arg)
{
	struct keep k = {0};
	if (ml_log_any_removed(log) &&
	    narrow(log, stream, stream_len, &from, &limit, backwards, &k) != 0)
		return 0;
	struct ml_buf buf = {0};
	int64_t count = 0;
	int rc = 0;
	pthread_mutex_lock(&log->mu);
	for (;;) {
		/* A limited read whose positions held stubs asks again from after the last. */
		uint64_t *pos = NULL, want = limit ? limit - (uint64_t)count : 0, version = 0;
		int64_t before = count;
		size_t n =
		    ml_index_stream_positions(log, stream, stream_len, from, want, backwards, &pos);
		rc = read_positions(log, pos, n, stream, stream_len, k.filter ? &k : NULL, &buf, fn,
				    arg, &count, &version);
		free(pos);
		if (rc != 0 || !limit || n < want || (uint64_t)(count - before) == n ||
		    (uint64_t)count >= limit || (backwards && version <= 1))
			break;
		from = backwards ? version - 1 : version + 1;
	}
	pthread_mutex_unlock(&log->mu);
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
