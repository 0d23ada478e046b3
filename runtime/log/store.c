/*
 * store.c - checking a batch against the log and reserving it: the part of an
 * append that needs the log's state, under its mutex.
 *
 * A batch the front (append.c) has found well formed is checked here against
 * what the log holds: duplicate ids, then expected versions. If it passes, it
 * gets its positions and versions at once (so the next batch already sees
 * them) and its encoded records join the pending buffer, which the flusher
 * (flush.c) writes; if that write fails, the flusher rolls the reservations
 * back. The local writer (writer.c) hands every append here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/index.h"
#include "log/log_internal.h"
#include "log/record.h"
#include "log/retention.h"

static int check_expected(struct ml_log *log, struct ml_append *req)
{
	for (size_t i = 0; i < req->n_expect; i++) {
		const struct ml_expect_in *x = &req->expect[i];
		int64_t v =
		    (int64_t)ml_index_latest(log, ml_index_hash(log, x->stream, x->stream_len),
					     x->stream, x->stream_len)
			.version;
		int ok = x->expected == ML_EXPECT_ANY ||
			 (x->expected == ML_EXPECT_EXISTS && v > 0) || x->expected == v;
		if (ok)
			continue;
		req->actual_version = v;
		const char *want = x->expected == ML_EXPECT_EXISTS ? "an existing stream"
				   : x->expected == 0		   ? "no stream"
								   : NULL;
		if (want)
			return ml_append_refuse(
			    req, ML_ERR_CONFLICT,
			    "version conflict on %.*s: expected %s, but its version is %lld",
			    (int)x->stream_len, x->stream, want, (long long)v);
		return ml_append_refuse(
		    req, ML_ERR_CONFLICT,
		    "version conflict on %.*s: expected version %lld, but it is %lld",
		    (int)x->stream_len, x->stream, (long long)x->expected, (long long)v);
	}
	return 0;
}

/*
 * Is the event stored at `position` the same as e: its stream and, when e has
 * one, its id (else its type)? 1 yes, 0 no, -1 the record could not be read.
 */
static int same_event(struct ml_log *log, uint64_t position, const struct ml_event_in *e,
		      struct ml_buf *scratch, uint64_t *version)
{
	struct ml_rec r;
	scratch->len = 0;
	if (position < log->first || position >= log->next_position)
		return 0; /* (an event dropped with its segment cannot be compared: not a match) */
	if (ml_log_record_at(log, position, scratch) != 0 ||
	    ml_rec_parse((uint8_t *)scratch->data, scratch->len, 0, &r) != ML_REC_OK)
		return -1;
	*version = r.ev.version;
	if (r.flags & ML_REC_REMOVED) /* removed by a scavenge: cannot be compared, not a match */
		return 0;
	if (r.ev.stream_len != e->stream_len || memcmp(r.ev.stream, e->stream, e->stream_len))
		return 0;
	if (e->id_len == 0)
		return r.ev.type_len == e->type_len && !memcmp(r.ev.type, e->type, e->type_len);
	return r.ev.id_len == e->id_len && !memcmp(r.ev.id, e->id, e->id_len);
}

struct dups {
	size_t with_id, found; /* events with a client id; of them, already stored */
	uint64_t base;	       /* position of the stored batch's first event, if consistent */
	int consistent;	       /* every found event sits at base + its index */
	uint64_t last;	       /* the highest stored position */
};

static void note_stored(struct ml_append *req, size_t i, uint64_t p, uint64_t v, struct dups *d)
{
	if (req->positions)
		req->positions[i] = p;
	if (req->versions)
		req->versions[i] = v;
	if (d->found == 0 || p < req->first_position)
		req->first_position = p;
	if (p > d->last)
		d->last = p;
	if (d->found == 0)
		d->base = p - i, d->consistent = p > i;
	else if (p != d->base + i)
		d->consistent = 0;
	d->found++;
}

/*
 * Finds the events of the batch whose id is already stored in their stream,
 * filling positions and versions with the stored ones. Every client-chosen id
 * is remembered, however old (the index's chunks and runs hold them all), so
 * every node that applies the same journal finds the same duplicates, restarted
 * or not. A key the index holds is only a candidate: the stored record must
 * have the same stream and id. -1 if a record could not be read (the append is
 * refused rather than risk storing an event twice).
 */
static int find_duplicates(struct ml_log *log, struct ml_append *req, struct dups *d)
{
	struct ml_buf scratch = {0};
	int rc = 0;
	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < req->n_events && rc == 0; i++) {
		const struct ml_event_in *e = &req->events[i];
		if (e->id_len == 0)
			continue;
		d->with_id++;
		uint64_t cand[8], v = 0;
		size_t n = ml_index_ids(
		    log, ml_index_id_key(log, e->stream, e->stream_len, e->id, e->id_len), cand, 8);
		for (size_t k = 0; k < n && k < 8 && rc == 0; k++) {
			int same = same_event(log, cand[k], e, &scratch, &v);
			if (same < 0)
				rc = -1;
			else if (same) {
				note_stored(req, i, cand[k], v, d);
				break;
			}
		}
	}
	ml_buf_free(&scratch);
	return rc;
}

/*
 * A retried batch that mixes client ids and generated ones: its events without
 * an id are the stored batch's events at the same places. 0 if they are (and
 * their positions are filled in), -1 if this batch is not the stored one.
 */
static int match_generated(struct ml_log *log, struct ml_append *req, struct dups *d)
{
	struct ml_buf scratch = {0};
	int rc = d->consistent ? 0 : -1;
	for (size_t i = 0; i < req->n_events && rc == 0; i++) {
		const struct ml_event_in *e = &req->events[i];
		uint64_t v;
		if (e->id_len)
			continue;
		if (same_event(log, d->base + i, e, &scratch, &v) != 1)
			rc = -1;
		else
			note_stored(req, i, d->base + i, v, d);
	}
	ml_buf_free(&scratch);
	return rc;
}

/* Chooses the segment for a batch of `bytes`, starting a new one past the size limit. */
static struct ml_seg *seg_for(struct ml_log *log, uint64_t bytes)
{
	struct ml_seg *seg = log->nsegs ? log->segs[log->nsegs - 1] : NULL;
	if (seg && !seg->full &&
	    (seg->end == ML_SEG_HEADER || seg->end + bytes <= log->opt.segment_size))
		return seg;
	if (log->nsegs == log->segs_cap) {
		log->segs_cap = log->segs_cap ? log->segs_cap * 2 : 8;
		log->segs = ml_xrealloc(log->segs, log->segs_cap * sizeof(*log->segs));
	}
	seg = ml_xcalloc(1, sizeof(*seg));
	seg->first = log->next_position;
	seg->end = seg->durable_end = ML_SEG_HEADER;
	seg->fd = seg->idx_fd = -1;
	log->segs[log->nsegs++] = seg;
	return seg;
}

/*
 * The last position known to be on disk before any record of the pending
 * buffer is written, which its first record of each batch carries (recovery
 * tells by it whether damage lies only in records never synced: scan.c).
 * Under --fsync always everything reserved before the buffer was started is
 * synced (or rolled back) before the flush that writes the buffer begins:
 * one write-and-sync cycle runs at a time. Under batch and never, only what a
 * sync has covered.
 */
static uint64_t pending_synced(struct ml_log *log)
{
	if (log->pending.bytes.len == 0)
		log->pending.synced = log->opt.fsync == ML_FSYNC_ALWAYS ? log->next_position - 1
									: log->synced_position;
	return log->pending.synced;
}

/*
 * Gives the batch its positions and versions and encodes it into the pending
 * buffer. A batch from a journal keeps the time its submitter gave it, and its
 * last record carries the entry's sequence; its first, the synced position.
 */
static void reserve(struct ml_log *log, struct ml_append *req, char (*ids)[37],
		    const struct ml_stamp *st)
{
	uint64_t seq = st ? st->seq : 0, synced = pending_synced(log);
	uint64_t bytes = (seq ? ML_REC_SEQ_SIZE : 0) + ML_REC_SYNCED_SIZE;
	for (size_t i = 0; i < req->n_events; i++)
		bytes += ml_rec_size(&req->events[i],
				     req->events[i].id_len ? req->events[i].id_len : 36);
	struct ml_seg *seg = seg_for(log, bytes);
	struct ml_buf *buf = &log->pending.bytes;
	ml_buf_reserve(buf, bytes);
	struct ml_req *q = ml_req_of(req);
	q->seg = seg;
	q->file_offset = seg->end;
	q->buf_offset = buf->len;
	q->nbytes = bytes;
	req->first_position = log->next_position;

	int64_t now = st ? st->time : ml_time_ms();
	for (size_t i = 0; i < req->n_events; i++) {
		const struct ml_event_in *e = &req->events[i];
		const char *id = e->id_len ? e->id : ids[i];
		size_t id_len = e->id_len ? e->id_len : 36;
		uint64_t pos = log->next_position++;
		int last = i + 1 == req->n_events;
		uint32_t n =
		    (uint32_t)(ml_rec_size(e, id_len) + (last && seq ? ML_REC_SEQ_SIZE : 0) +
			       (i == 0 ? ML_REC_SYNCED_SIZE : 0));
		/* a generated id is unknown to the client until acknowledged: not remembered */
		uint64_t key =
		    e->id_len ? ml_index_id_key(log, e->stream, e->stream_len, id, id_len) : 0;
		uint64_t ver = ml_index_event(log, seg, pos, (uint32_t)seg->end, n, i == 0,
					      e->stream, e->stream_len,
					      ml_index_hash(log, e->stream, e->stream_len), key, 0);
		if (e->type_len && e->type[0] == '$') /* a deletion or metadata? */
			ml_ret_note(log, e, pos, ver);
		uint8_t flags = (i == 0 ? ML_REC_FIRST | ML_REC_SYNCED : 0) |
				(last ? ML_REC_LAST : 0) | (e->id_len ? 0 : ML_REC_GEN_ID);
		ml_rec_encode((uint8_t *)buf->data + buf->len, e, id, id_len, flags,
			      (uint32_t)(req->n_events - 1 - i), pos, ver, now, last ? seq : 0,
			      synced);
		buf->len += n;
		seg->end += n;
		if (req->positions)
			req->positions[i] = pos;
		if (req->versions)
			req->versions[i] = ver;
	}
	if (seq)
		log->chunk_newest->last_seq = seq;
	req->last_position = log->next_position - 1;
	if (seq)
		log->last_seq = log->pending.last_seq = seq;
	log->stats.appends++;
	log->stats.events += req->n_events;
}

static void enqueue(struct ml_log *log, struct ml_append *req)
{
	struct ml_flushbuf *fb = &log->pending;
	ml_req_of(req)->state = ML_APPEND_QUEUED;
	ml_req_of(req)->next = NULL;
	if (fb->tail)
		ml_req_of(fb->tail)->next = req;
	else
		fb->head = req;
	fb->tail = req;
	fb->requests++;
}

/* Is this batch the right kind for this log: a journal's entry in order, or a local append
 * to a log that never applied one? 0, or -1 refused. */
static int check_origin(struct ml_log *log, struct ml_append *req, const struct ml_stamp *st)
{
	if ((st == NULL || st->seq == 0) && log->last_seq)
		return ml_append_refuse(
		    req, ML_ERR_REFUSED,
		    "the log in %s holds batches applied from a replicated journal (up to "
		    "entry %llu): an append written here alone would part it from the other "
		    "nodes; append through a node of the cluster instead",
		    log->dir, (unsigned long long)log->last_seq);
	if (st && log->apply_stalled)
		return ml_append_refuse(req, ML_ERR_IO,
					"a write to the log in %s failed and was undone: apply the "
					"journal again after entry %llu (ml_log_apply_resume)",
					log->dir, (unsigned long long)log->applied_seq);
	if (st && st->seq <= log->last_seq)
		return ml_append_refuse(req, ML_ERR_USAGE,
					"journal entry %llu comes at or before entry %llu, the "
					"last this log applied: apply each entry once, in order",
					(unsigned long long)st->seq,
					(unsigned long long)log->last_seq);
	return 0;
}

/* Under the lock: duplicates, then expected versions, then the reservation. */
static int submit_locked(struct ml_log *log, struct ml_append *req, char (*ids)[37],
			 const struct ml_stamp *st)
{
	if (log->broken[0])
		return ml_append_refuse(req, ML_ERR_IO, "%s", log->broken);
	if (((st && st->seq) || log->last_seq) && check_origin(log, req, st) != 0)
		return -1;
	struct dups d;
	if (find_duplicates(log, req, &d) != 0)
		return ml_append_refuse(req, ML_ERR_IO,
					"cannot check this batch's ids against the log: %s",
					ml_diag_last());
	size_t dups = d.found;
	if (d.with_id > 0 && dups == d.with_id && dups < req->n_events &&
	    match_generated(log, req, &d) != 0)
		return ml_append_refuse(
		    req, ML_ERR_REFUSED,
		    "the ids of this batch were appended before, in a batch with other "
		    "events; retry the batch exactly as it was first sent");
	dups = d.found;
	if (d.with_id > 0 && dups == req->n_events) {
		req->duplicate = 1;
		req->last_position = d.last;
		if (d.last <= log->head) {
			ml_req_of(req)->state = ML_APPEND_DONE;
			return 1;
		}
		ml_req_of(req)->nbytes = 0; /* completes when the original does */
		enqueue(log, req);
		return 0;
	}
	if (dups > 0)
		return ml_append_refuse(
		    req, ML_ERR_REFUSED,
		    "%zu of the %zu events of this batch were appended before (same id "
		    "in the same stream) and the others were not; retry the batch exactly "
		    "as it was first sent",
		    dups, req->n_events);
	if (ml_ret_check(log, req) != 0 || check_expected(log, req) != 0)
		return -1;
	reserve(log, req, ids, st);
	enqueue(log, req);
	return 0;
}

int ml_store_submit(struct ml_log *log, struct ml_append *req, char (*ids)[37],
		    const struct ml_stamp *st)
{
	pthread_mutex_lock(&log->mu);
	int rc = submit_locked(log, req, ids, st); /* 0: queued */
	if (st && st->seq) /* an entry's events were decoded for the call: the caller gets
			      none of them */
		req->events = NULL, req->n_events = 0, req->expect = NULL, req->n_expect = 0;
	int wake = rc == 0 && !req->kick_later && log->flusher_waiting;
	pthread_mutex_unlock(&log->mu);
	/* After the unlock: a flusher woken under the mutex would only block on it again. */
	if (wake)
		pthread_cond_signal(&log->flush_cv);
	return rc;
}
