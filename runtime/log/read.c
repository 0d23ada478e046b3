/*
 * read.c - reading events back: one stream by version, or $all by position.
 *
 * The index (taken under the mutex) says where each record is; the bytes are
 * read with pread outside the mutex, so readers never hold up appenders.
 * Only acknowledged events are read, and acknowledged bytes never change.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
	struct ml_seg *seg = ml_log_seg_of(log, p);
	struct loc l = {.fd = seg->fd, .off = log->offsets[p - 1]};
	if (p + 1 < log->next_position && ml_log_seg_of(log, p + 1) == seg)
		l.len = log->offsets[p] - l.off;
	else
		l.len = seg->end - l.off;
	return l;
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
	struct ml_seg *seg = ml_log_seg_of(log, position);
	struct loc l = locate(log, position);
	ml_buf_reserve(buf, l.len);
	if (l.off + l.len <= seg->durable_end) {
		if (read_exact(l.fd, buf->data + buf->len, l.len, l.off) != 0)
			return -1;
		buf->len += l.len;
		return 0;
	}
	struct ml_flushbuf *fbs[] = {&log->inflight, &log->pending};
	for (int i = 0; i < 2; i++)
		for (struct ml_append *r = fbs[i]->head; r; r = r->next)
			if (r->nbytes && r->seg == seg && l.off >= r->file_offset &&
			    l.off < r->file_offset + r->nbytes) {
				ml_buf_add(buf,
					   fbs[i]->bytes.data + r->buf_offset +
					       (l.off - r->file_offset),
					   l.len);
				return 0;
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

int64_t ml_log_read_all(struct ml_log *log, uint64_t from, uint64_t limit, ml_event_fn fn,
			void *arg)
{
	struct ml_buf buf = {0};
	int64_t count = 0;
	int rc = 0;
	if (from == 0)
		from = 1;
	pthread_mutex_lock(&log->mu);
	uint64_t end = log->head;
	if (limit && from <= end && limit - 1 < end - from)
		end = from + limit - 1;
	while (rc == 0 && from <= end) {
		/* The run of records from `from` within one segment, at most READ_CHUNK bytes. */
		struct ml_seg *seg = ml_log_seg_of(log, from);
		struct loc l = locate(log, from);
		uint64_t last = from, bytes = l.len;
		while (last < end && ml_log_seg_of(log, last + 1) == seg) {
			struct loc nl = locate(log, last + 1);
			if (bytes + nl.len > READ_CHUNK)
				break;
			bytes += nl.len;
			last++;
		}
		pthread_mutex_unlock(&log->mu);
		ml_buf_reserve(&buf, bytes);
		rc = read_exact(l.fd, buf.data, bytes, l.off);
		if (rc == 0)
			rc = deliver((uint8_t *)buf.data, bytes, fn, arg, &count);
		from = last + 1;
		pthread_mutex_lock(&log->mu);
	}
	pthread_mutex_unlock(&log->mu);
	ml_buf_free(&buf);
	return rc < 0 ? -1 : count;
}

/* The locations of the stream's events to read, in reading order (mutex held). */
static size_t stream_slice(struct ml_log *log, struct ml_stream *s, uint64_t from, uint64_t limit,
			   int backwards, struct loc **out)
{
	uint64_t n = s->count;
	while (n > 0 && s->pos[n - 1] > log->head)
		n--;
	uint64_t first, count;
	if (!backwards) {
		first = from ? from : 1;
		count = first > n ? 0 : n - first + 1;
	} else {
		uint64_t top = (from == 0 || from > n) ? n : from;
		count = top;
		first = top;
	}
	if (limit && count > limit)
		count = limit;
	*out = ml_xmalloc((count ? count : 1) * sizeof(**out));
	for (uint64_t i = 0; i < count; i++) {
		uint64_t v = backwards ? first - i : first + i;
		(*out)[i] = locate(log, s->pos[v - 1]);
	}
	return count;
}

int64_t ml_log_read_stream(struct ml_log *log, const char *stream, size_t stream_len, uint64_t from,
			   uint64_t limit, int backwards, ml_event_fn fn, void *arg)
{
	struct loc *locs = NULL;
	size_t n = 0;
	pthread_mutex_lock(&log->mu);
	struct ml_stream *s =
	    ml_streams_find(&log->streams, stream, stream_len, ml_stream_hash(stream, stream_len));
	if (s)
		n = stream_slice(log, s, from, limit, backwards, &locs);
	pthread_mutex_unlock(&log->mu);

	struct ml_buf buf = {0};
	int64_t count = 0;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		ml_buf_reserve(&buf, locs[i].len);
		rc = read_exact(locs[i].fd, buf.data, locs[i].len, locs[i].off);
		if (rc == 0)
			rc = deliver((uint8_t *)buf.data, locs[i].len, fn, arg, &count);
	}
	free(locs);
	ml_buf_free(&buf);
	return rc < 0 ? -1 : count;
}
