/*
 * scan.c - the segment walker shared by recovery and check (see scan.h).
 */
#include "log/scan.h"

/*
 * What follows damage at `from`, whose records are past position `good` (the
 * last one of a complete batch before it): TORN if no valid batch does, FLUSH
 * if every one that does says it was written before `good` + 1 was synced,
 * DAMAGED if one says otherwise (or says nothing: format 1).
 */
static enum ml_scan_status after_damage(const uint8_t *p, uint64_t size, uint64_t from,
					uint64_t good, struct ml_scan *s)
{
	struct ml_rec r;
	enum ml_scan_status st = ML_SCAN_TORN;
	for (uint64_t o = from; o + ML_REC_HEADER <= size;) {
		const uint8_t *q = p + o;
		if (!(q[8] & ML_REC_FIRST) || ml_le64(q + 24) <= good ||
		    ml_rec_parse(q, size - o, 1, &r) != ML_REC_OK) {
			o++;
			continue;
		}
		if (ml_rec_synced(&r) > good) /* it was written after `good` + 1 was synced */
			return ML_SCAN_DAMAGED;
		st = ML_SCAN_FLUSH;
		s->after_batches++;
		if (r.ev.position + r.left > s->after_last)
			s->after_last = r.ev.position + r.left;
		o += r.len;
	}
	return st;
}

static int all_zero(const uint8_t *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static int deliver_batch(const uint8_t *p, uint64_t from, uint64_t to, ml_scan_fn fn, void *arg)
{
	struct ml_rec r;
	for (uint64_t o = from; o < to; o += r.len) {
		ml_rec_parse(p + o, to - o, 0, &r);
		if (fn && fn(&r, o, arg))
			return 1;
	}
	return 0;
}

/* Checks that a record follows its predecessor: position, and the batch bookkeeping; and that a
 * stub of a removed event is in a scavenged segment and holds nothing of the event's bytes. */
static const char *misplaced(const struct ml_rec *r, uint64_t want_pos, int in_batch,
			     uint32_t want_left, int scavenged)
{
	if ((r->flags & ML_REC_REMOVED) && !scavenged)
		return "a removed event's stub in a segment no scavenge wrote";
	if ((r->flags & ML_REC_REMOVED) && (r->ev.id_len || r->ev.meta_len || r->ev.data_len))
		return "a removed event's stub that still holds its bytes";
	if (r->ev.position != want_pos)
		return "position out of sequence";
	if (in_batch && ((r->flags & ML_REC_FIRST) || r->left != want_left))
		return "batch interrupted";
	if (!in_batch && !(r->flags & ML_REC_FIRST))
		return "record outside a batch";
	if (!!(r->flags & ML_REC_LAST) != (r->left == 0))
		return "batch end marker inconsistent";
	return NULL;
}

void ml_scan_segment(const uint8_t *p, uint64_t size, int verify, struct ml_scan *s, ml_scan_fn fn,
		     void *arg)
{
	uint64_t o = s->start ? s->start : ML_SEG_HEADER, batch_start = o, pos = s->next_position;
	uint32_t left = 0, in_batch = 0, batch_records = 0;
	struct ml_rec r;

	s->status = ML_SCAN_CLEAN;
	s->why = NULL;
	s->good_end = o;
	while (o < size) {
		if (!in_batch && all_zero(p + o, size - o < 4 ? size - o : 4) &&
		    all_zero(p + o, size - o)) {
			s->good_end = o; /* zeros written ahead of the data: its end */
			return;
		}
		enum ml_rec_status st = ml_rec_parse(p + o, size - o, verify, &r);
		s->why = st == ML_REC_SHORT ? "record cut short"
			 : st == ML_REC_BAD
			     ? (verify ? "bad record (checksum or header)" : "bad record header")
			     : misplaced(&r, pos, in_batch, left, s->scavenged);
		if (s->why)
			break;
		if (!in_batch)
			batch_start = o, batch_records = 0;
		in_batch = !(r.flags & ML_REC_LAST);
		left = r.left - in_batch;
		pos++;
		o += r.len;
		batch_records++;
		if (in_batch)
			continue;
		s->good_end = o;
		s->next_position = pos;
		s->batches++;
		s->records += batch_records;
		if (deliver_batch(p, batch_start, o, fn, arg))
			return;
	}
	if (s->good_end == size)
		return;
	if (!s->why)
		s->why = "last batch cut short";
	s->bad_offset = o < size ? o : batch_start;
	s->status = after_damage(p, size, o, s->next_position - 1, s);
}
