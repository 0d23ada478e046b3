/*
 * ops_scavenge.c - a scavenge of the server's log (docs/operations.md,
 * Scavenging): the operation behind the RPC method scavenge(), POST /scavenge
 * and `moonlog scavenge` against a running server. The scavenge runs on a
 * thread of its own (ml_log_scavenge_removed) while the loop goes on serving;
 * its progress, and then its result, is the `scavenge` map of stats(), GET
 * /stats and GET /scavenge. One runs at a time; the server stops it (after the
 * segment it is rewriting) and waits for it before it closes the log.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include <event2/buffer.h>

#include <moonlog/codec.h>

#include "net/http_internal.h"
#include "net/ops.h"

struct ml_scavenger {
	pthread_t thread;
	struct ml_log *log;
	atomic_int finished; /* the thread is done: join it before the next */
};

static void *scavenge_main(void *arg)
{
	struct ml_scavenger *sc = arg;
	prctl(PR_SET_NAME, "moonlog-scav");
	ml_log_scavenge_removed(sc->log, NULL); /* the outcome is in its progress */
	atomic_store(&sc->finished, 1);
	return NULL;
}

int ml_op_scavenge_start(struct ml_server *s)
{
	struct ml_scavenger *sc = s->scavenger;
	if (sc && !atomic_load(&sc->finished))
		return ml_diag_set(ML_ERR_BUSY, "a scavenge is running already; its progress is "
						"in stats() (GET /scavenge)");
	if (sc) {
		pthread_join(sc->thread, NULL);
		free(sc);
		s->scavenger = NULL;
	}
	sc = ml_xcalloc(1, sizeof(*sc));
	sc->log = s->log;
	if (pthread_create(&sc->thread, NULL, scavenge_main, sc) != 0) {
		free(sc);
		return ml_diag_set(ML_ERR_IO, "cannot start a thread for the scavenge");
	}
	s->scavenger = sc;
	return 0;
}

void ml_op_scavenge_stop(struct ml_server *s)
{
	struct ml_scavenger *sc = s->scavenger;
	if (sc == NULL)
		return;
	ml_log_scavenge_stop(s->log);
	pthread_join(sc->thread, NULL);
	free(sc);
	s->scavenger = NULL;
}

void ml_op_scavenge_status(struct ml_server *s, struct ml_buf *b)
{
	struct ml_scavenge_stats st;
	ml_log_scavenge_progress(s->log, &st);
	/* started but not yet in: running, so that a poll right after a start sees it */
	int running = st.running || (s->scavenger && !atomic_load(&s->scavenger->finished));
	ml_msgpack_put_map(b, 10);
	ml_msgpack_put_cstr(b, "running");
	ml_msgpack_put_bool(b, running);
	const struct {
		const char *name;
		uint64_t v;
	} f[] = {{"segments", st.segments},
		 {"segments_done", st.segments_done},
		 {"rewritten", st.rewritten},
		 {"events_removed", st.events_removed},
		 {"bytes_read", st.bytes_read},
		 {"bytes_written", st.bytes_written},
		 {"bytes_reclaimed", st.bytes_reclaimed},
		 {"elapsed_ms", st.elapsed_ms}};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		ml_msgpack_put_cstr(b, f[i].name);
		ml_msgpack_put_uint(b, f[i].v);
	}
	ml_msgpack_put_cstr(b, "error");
	ml_msgpack_put_cstr(b, st.error);
}

/* scavenge() -> the scavenge map, as stats() shows it, of the one it started */
int ml_rpc_scavenge(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	(void)r, (void)np;
	struct ml_buf *o = &c->out;
	ml_msgpack_put_array(o, 4);
	ml_msgpack_put_uint(o, 1);
	ml_msgpack_put_uint(o, msgid);
	if (ml_op_scavenge_start(c->srv) != 0) {
		ml_msgpack_put_map(o, 2);
		ml_msgpack_put_cstr(o, "code");
		ml_msgpack_put_cstr(o, ml_err_name(ml_diag_code()));
		ml_msgpack_put_cstr(o, "message");
		ml_msgpack_put_cstr(o, ml_diag_last());
		ml_msgpack_put_nil(o);
		c->srv->errors++;
		return 0;
	}
	ml_msgpack_put_nil(o);
	ml_op_scavenge_status(c->srv, o);
	return 0;
}

/* POST /scavenge: 202 with the scavenge map (409 if one runs); GET /scavenge: 200 with it. */
void ml_http_scavenge(struct ml_server *s, struct evhttp_request *req, int start)
{
	if (start && ml_op_scavenge_start(s) != 0) {
		ml_http_error(req, ml_diag_code() == ML_ERR_BUSY ? 409 : 500, ml_diag_code(), 0,
			      ml_diag_last());
		return;
	}
	struct ml_buf mp = {0}, json = {0};
	ml_op_scavenge_status(s, &mp);
	ml_msgpack_to_json(mp.data, mp.len, &json);
	ml_buf_add(&json, "\n", 1);
	ml_http_send(req, start ? 202 : 200, start ? "Accepted" : "OK", &json, NULL);
	ml_buf_free(&mp);
	ml_buf_free(&json);
}
