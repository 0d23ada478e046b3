/*
 * ops_retention.c - deleting a stream and setting its retention metadata, for
 * every front of the server (RPC, HTTP, the eval API): the append the log
 * builds for it (ml_log_prepare_delete, ml_log_prepare_meta: what is refused
 * is decided there once), submitted like any other.
 */
#include <string.h>

#include <moonlog/diag.h>
#include <moonlog/log_writer.h>

#include "net/ops.h"

/*
 * Submits a prepared append through p; a refusal goes to p->finish like the log's, and so
 * does an append with nothing to do (prepared 1: a delete done already), as a duplicate.
 */
static void submit(struct ml_server *s, struct ml_pending *p, struct ml_retention_append *a,
		   int prepared)
{
	if (ml_op_append_room(p, 1) != 0)
		return;
	if (prepared < 0) {
		ml_append_refuse(&p->req, ml_diag_code(), "%s", ml_diag_last());
		p->finish(p);
		return;
	}
	if (prepared > 0) {
		p->req.first_position = p->req.last_position = p->poss[0] = a->position;
		p->vers[0] = a->version;
		p->req.duplicate = 1;
		p->finish(p);
		return;
	}
	p->evs[0] = a->ev;
	p->req.system = 1;
	ml_op_append(s, p, a->ev.stream, a->ev.stream_len,
		     a->req.n_expect ? a->guard.expected : ML_EXPECT_ANY); /* the log copies a */
}

void ml_op_delete(struct ml_server *s, struct ml_pending *p, const char *stream, size_t len,
		  int64_t expected, int hard)
{
	struct ml_retention_append a;
	submit(s, p, &a, ml_log_prepare_delete(s->log, &a, stream, len, expected, hard));
}

void ml_op_set_meta(struct ml_server *s, struct ml_pending *p, const char *stream, size_t len,
		    const void *map, size_t map_len, int64_t expected)
{
	struct ml_retention_append a;
	submit(s, p, &a, ml_log_prepare_meta(s->log, &a, stream, len, map, map_len, expected));
}

void ml_op_meta_put(struct ml_server *s, const char *stream, size_t len, struct ml_buf *out)
{
	ml_log_stream_meta_put(s->log, stream, len, out);
}
