/*
 * ops.c - the server's append and read, for every front (ops.h says who
 * calls them and why they are here; stats.c has the third operation).
 *
 * An append here is what is the same whichever way the events came in: the
 * size of the batch, the stream set on each event, the expected-version
 * guard, the hand-off to the log through the completion queue (server.c).
 * A read is bounded by --max-read and fixed before its first event, so that
 * a front can announce the count and a read that comes up short is an error,
 * not a quietly shorter answer.
 */
#include <moonlog/diag.h>

#include "net/ops.h"

int ml_op_append_room(struct ml_pending *p, size_t n)
{
	if (n == 0)
		return ml_diag_set(ML_ERR_USAGE, "an append needs at least one event");
	if (n > ML_OP_MAX_EVENTS)
		return ml_diag_set(ML_ERR_USAGE, "too many events in one append (%zu; at most %u)",
				   n, ML_OP_MAX_EVENTS);
	if (n == 1) { /* the common case: room in p itself */
		p->evs = &p->ev1, p->poss = &p->pos1, p->vers = &p->ver1;
	} else {
		p->evs = ml_xcalloc(n, sizeof(*p->evs));
		p->poss = ml_xmalloc(n * sizeof(uint64_t));
		p->vers = ml_xmalloc(n * sizeof(uint64_t));
	}
	p->req.events = p->evs;
	p->req.n_events = n;
	p->req.positions = p->poss;
	p->req.versions = p->vers;
	return 0;
}

void ml_op_append(struct ml_server *s, struct ml_pending *p, const char *stream, size_t stream_len,
		  int64_t expected)
{
	for (size_t i = 0; i < p->req.n_events; i++)
		p->evs[i].stream = stream, p->evs[i].stream_len = stream_len;
	if (expected != ML_EXPECT_ANY) {
		p->expect = (struct ml_expect_in){stream, stream_len, expected};
		p->req.expect = &p->expect;
		p->req.n_expect = 1;
	}
	ml_pending_submit(s, p);
}

uint64_t ml_op_append_version(const struct ml_pending *p)
{
	return p->req.n_events ? p->vers[p->req.n_events - 1] : 0;
}

int ml_op_read_plan(struct ml_server *s, struct ml_op_read *rd)
{
	if (rd->stream == NULL && rd->backwards)
		return ml_diag_set(ML_ERR_USAGE, "$all is read forward only");
	if (rd->limit == 0 || rd->limit > s->o.max_read)
		rd->limit = s->o.max_read;
	rd->exact = 1;
	/* Positions are dense, and so are a stream's versions: the count is known now, unless
	 * retention removes some of them (then it is at most this), or the log's first segments
	 * were dropped (docs/log.md): $all then starts at the first position kept, and a stream
	 * may have lost versions below it. */
	uint64_t last = rd->stream ? ml_log_stream_version(s->log, rd->stream, rd->stream_len)
				   : ml_log_head(s->log);
	if (ml_log_any_removed(s->log)) {
		struct ml_stream_meta m;
		rd->exact =
		    rd->stream && !ml_log_stream_meta(s->log, rd->stream, rd->stream_len, &m);
	}
	uint64_t first = ml_log_first(s->log);
	if (first > 1 && rd->stream)
		rd->exact = 0;
	else if (first > 1 && !rd->backwards && rd->from < first)
		rd->from = first;
	if (rd->backwards) {
		if (rd->from == 0 || rd->from > last)
			rd->from = last;
		rd->count = rd->from < rd->limit ? rd->from : rd->limit;
		return 0;
	}
	if (rd->from == 0)
		rd->from = 1;
	rd->count = rd->from > last		      ? 0
		    : last - rd->from + 1 < rd->limit ? last - rd->from + 1
						      : rd->limit;
	return 0;
}

int64_t ml_op_read(struct ml_server *s, const struct ml_op_read *rd, ml_event_fn fn, void *arg)
{
	if (rd->count == 0)
		return 0;
	if (!rd->exact)
		return rd->stream ? ml_log_read_stream(s->log, rd->stream, rd->stream_len, rd->from,
						       rd->count, rd->backwards, fn, arg)
				  : ml_log_read_all_kept(s->log, rd->from, rd->count, fn, arg);
	int64_t n = rd->stream ? ml_log_read_stream(s->log, rd->stream, rd->stream_len, rd->from,
						    rd->count, rd->backwards, fn, arg)
			       : ml_log_read_all(s->log, rd->from, rd->count, fn, arg);
	if (n == (int64_t)rd->count)
		return n;
	if (n >= 0)
		ml_diag_set(ML_ERR_CORRUPT, "read %lld of the %llu events the index promised",
			    (long long)n, (unsigned long long)rd->count);
	return -1;
}
