/*
 * rpc_scripts.c - the hosted scripts on the wire: a decider's command run
 * (shared with HTTP), and the RPC methods command, query, get, state,
 * scripts, reload, parked, replay_parked and dry_run. The server finds the scripts
 * only through the table their host gave it (struct ml_server_scripts in
 * server.h; ml_net_scripts), and runs them through their public API (script.h).
 *
 * A command decides (ml_script_decide folds the target stream from the log),
 * then appends the events with the version the state was built at, through
 * the same completion queue as every append, so the loop never waits for the
 * disk. On a version conflict it decides again, at most `retries` times. When
 * the conflicting append is still in flight (the log knows a newer version
 * than readers can see yet), deciding again at once would read the same
 * state: the command waits in a list, retried by a turn hook once the stream's
 * visible version has caught up. A command holds its decider by name, not by
 * pointer: a reload may swap the decider while the command waits, and the
 * retry then decides with the new code.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moonlog/diag.h>
#include <moonlog/script.h>

#include "net/ops.h"

struct ml_command {
	struct ml_server *srv;
	char *decider;
	char *name;
	struct ml_buf args;
	int retries;
	struct ml_script_decision d;
	void (*answer)(const struct ml_command_outcome *o, void *arg);
	void *arg;
	uint64_t wait_version; /* waiting: until the stream shows this version */
	uint64_t t0;	       /* when it came, for the histogram */
	struct ml_command *next;
};

const struct ml_server_scripts *ml_net_scripts(struct ml_server *s)
{
	return s->scripts.find ? &s->scripts : NULL;
}

static void finish(struct ml_command *c, int status, enum ml_err code, const char *msg,
		   const struct ml_buf *details, const struct ml_buf *result)
{
	char text[1024] = "";
	if (msg) { /* a person wants the error, not Lua's traceback */
		snprintf(text, sizeof(text), "%s", msg);
		char *tb = strstr(text, "\nstack traceback:");
		if (tb)
			*tb = 0;
	}
	struct ml_command_outcome o = {status, code, msg ? text : NULL, details, result};
	ml_hist_observe(&c->srv->hist_command, c->t0);
	c->answer(&o, c->arg);
	ml_script_decision_free(&c->d);
	ml_buf_free(&c->args);
	free(c->decider);
	free(c->name);
	free(c);
}

static void decide_and_append(struct ml_command *c);

/* The events as appended: {stream, version, position, last_position, events = [...]}. */
static void result_of(struct ml_command *c, const struct ml_append *req, struct ml_buf *b)
{
	const char *stream = c->d.stream;
	uint64_t version = req ? req->versions[req->n_events - 1] : c->d.expected_version;
	ml_msgpack_put_map(b, 5);
	ml_msgpack_put_cstr(b, "stream");
	ml_msgpack_put_cstr(b, stream);
	ml_msgpack_put_cstr(b, "version");
	ml_msgpack_put_uint(b, version);
	ml_msgpack_put_cstr(b, "position");
	ml_msgpack_put_uint(b, req ? req->first_position : 0);
	ml_msgpack_put_cstr(b, "last_position");
	ml_msgpack_put_uint(b, req ? req->last_position : 0);
	ml_msgpack_put_cstr(b, "events");
	ml_msgpack_put_array(b, req ? (uint32_t)req->n_events : 0);
	for (size_t i = 0; req && i < req->n_events; i++) {
		const struct ml_event_in *e = &req->events[i];
		ml_msgpack_put_map(b, 5);
		ml_msgpack_put_cstr(b, "type");
		ml_msgpack_put_str(b, e->type, e->type_len);
		ml_msgpack_put_cstr(b, "position");
		ml_msgpack_put_uint(b, req->positions[i]);
		ml_msgpack_put_cstr(b, "version");
		ml_msgpack_put_uint(b, req->versions[i]);
		ml_msgpack_put_cstr(b, "data");
		if (e->data_len)
			ml_buf_add(b, e->data, e->data_len);
		else
			ml_msgpack_put_nil(b);
		ml_msgpack_put_cstr(b, "meta");
		if (e->meta_len)
			ml_buf_add(b, e->meta, e->meta_len);
		else
			ml_msgpack_put_nil(b);
	}
}

static void appended(struct ml_pending *p)
{
	struct ml_command *c = p->ctx;
	struct ml_server *s = p->srv;
	struct ml_append *req = &p->req;
	if (req->err == ML_OK) {
		struct ml_buf b = {0};
		result_of(c, req, &b);
		ml_pending_put(s, p);
		finish(c, 201, ML_OK, NULL, NULL, &b);
		ml_buf_free(&b);
		return;
	}
	enum ml_err err = req->err;
	int64_t actual = req->actual_version;
	char msg[sizeof(req->errmsg)];
	memcpy(msg, req->errmsg, sizeof(msg));
	ml_pending_put(s, p);
	if (err != ML_ERR_CONFLICT)
		return finish(c,
			      err == ML_ERR_IO	    ? 503
			      : err == ML_ERR_USAGE ? 400
						    : 500,
			      err, msg, NULL, NULL);
	if (c->retries-- <= 0)
		return finish(c, 409, ML_ERR_CONFLICT,
			      "the stream kept changing while the command was decided: retries "
			      "ran out; try again",
			      NULL, NULL);
	uint64_t visible = ml_log_stream_version(s->log, c->d.stream, strlen(c->d.stream));
	if (actual > 0 && visible < (uint64_t)actual) { /* the other append is in flight */
		c->wait_version = (uint64_t)actual;
		c->next = s->waiting;
		s->waiting = c;
		return;
	}
	decide_and_append(c);
}

static void decide_and_append(struct ml_command *c)
{
	struct ml_server *s = c->srv;
	ml_script_decision_free(&c->d);
	const struct ml_server_scripts *t = ml_net_scripts(s);
	struct ml_script *sc = t->find(t->arg, c->decider, strlen(c->decider));
	if (sc == NULL) /* unloaded while the command waited */
		return finish(c, 404, ML_ERR_NOT_FOUND, ml_diag_last(), NULL, NULL);
	if (ml_script_decide(sc, s->log, c->name, c->args.data, c->args.len, &c->d) != 0) {
		const char *why = ml_diag_last();
		int unknown = strstr(why, "unknown command") != NULL;
		return finish(c,
			      unknown			       ? 404
			      : ml_diag_code() == ML_ERR_USAGE ? 400
							       : 500,
			      unknown ? ML_ERR_NOT_FOUND : ml_diag_code(), why, NULL, NULL);
	}
	if (c->d.rejected)
		return finish(c, 422, ML_ERR_REFUSED, c->d.reason, &c->d.details, NULL);
	if (c->d.n_events == 0) { /* nothing to do: the state as it is */
		struct ml_buf b = {0};
		result_of(c, NULL, &b);
		finish(c, 200, ML_OK, NULL, NULL, &b);
		ml_buf_free(&b);
		return;
	}
	struct ml_pending *p = ml_pending_get(s);
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, c->d.events.data, c->d.events.len);
	if (ml_rpc_parse_events(&r, p) != 0) {
		ml_pending_put(s, p);
		return finish(c, 500, ML_ERR_SCRIPT, ml_diag_last(), NULL, NULL);
	}
	p->ctx = c;
	p->finish = appended;
	ml_op_append(s, p, c->d.stream, strlen(c->d.stream), (int64_t)c->d.expected_version);
}

void ml_command_run(struct ml_server *s, const char *decider, size_t dlen, const char *name,
		    size_t nlen, const void *args, size_t alen,
		    void (*answer)(const struct ml_command_outcome *o, void *arg), void *arg)
{
	const struct ml_server_scripts *t = ml_net_scripts(s);
	struct ml_command_outcome o = {404, ML_ERR_NOT_FOUND, NULL, NULL, NULL};
	struct ml_script *sc = t ? t->find(t->arg, decider, dlen) : NULL;
	if (t == NULL)
		o.message = "this server hosts no scripts (start it with --scripts DIR)";
	else if (sc == NULL)
		o.message = ml_diag_last();
	else if (ml_script_kind(sc) != ML_SCRIPT_DECIDER)
		o.message = "that script is not a decider: commands go to deciders";
	if (o.message)
		return answer(&o, arg);
	struct ml_command *c = ml_xcalloc(1, sizeof(*c));
	c->srv = s;
	c->t0 = ml_clock_ns();
	c->decider = ml_xstrndup(decider, dlen);
	c->name = ml_xstrndup(name, nlen);
	if (alen)
		ml_buf_add(&c->args, args, alen);
	c->retries = ml_script_retries(sc); /* the definition's `retries` (default 3) */
	c->answer = answer;
	c->arg = arg;
	decide_and_append(c);
}

/* Turn hook: commands whose conflicting append has become visible decide again. */
static void retry_waiting(struct ml_server *s, void *arg)
{
	struct ml_command **pp = &s->waiting;
	while (*pp) {
		struct ml_command *c = *pp;
		if (ml_log_stream_version(s->log, c->d.stream, strlen(c->d.stream)) <
		    c->wait_version) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		decide_and_append(c);
	}
}

void ml_net_script_failed(struct ml_server *s, const char *full)
{
	if (strstr(full, "\nstack traceback:"))
		ml_server_warn(s, ML_WARN_SCRIPT, "%s", full);
}

int ml_net_query(struct ml_server *s, struct ml_script *sc, const char *name, const void *args,
		 size_t len, struct ml_buf *out)
{
	uint64_t t0 = ml_clock_ns();
	int rc = ml_script_query(sc, name, args, len, out);
	ml_hist_observe(&s->hist_query, t0);
	return rc;
}

void ml_server_set_scripts(struct ml_server *s, const struct ml_server_scripts *t)
{
	if (s->scripts.find == NULL)
		ml_server_on_turn(s, retry_waiting, NULL);
	s->scripts = *t;
}

/* ---- the RPC methods ---- */

static void reply(struct ml_conn *c, uint64_t msgid, enum ml_err code, const char *msg)
{
	ml_msgpack_put_array(&c->out, 4);
	ml_msgpack_put_uint(&c->out, 1);
	ml_msgpack_put_uint(&c->out, msgid);
	if (code == ML_OK) {
		ml_msgpack_put_nil(&c->out); /* the caller writes the result */
		return;
	}
	char text[2048];
	ml_msgpack_put_map(&c->out, 2);
	ml_msgpack_put_cstr(&c->out, "code");
	ml_msgpack_put_cstr(&c->out, ml_err_name(code));
	ml_msgpack_put_cstr(&c->out, "message");
	ml_msgpack_put_cstr(&c->out, ml_net_person_message(msg, text, sizeof(text)));
	ml_msgpack_put_nil(&c->out);
	c->srv->errors++;
}

struct rpc_ask {
	struct ml_conn *c;
	uint64_t msgid;
};

static void command_answered(const struct ml_command_outcome *o, void *arg)
{
	struct rpc_ask *a = arg;
	struct ml_conn *c = a->c;
	if (!c->closed) {
		if (o->status < 300) {
			reply(c, a->msgid, ML_OK, NULL);
			ml_buf_add(&c->out, o->result->data, o->result->len);
		} else if (o->status == 422) { /* rejected: {code, message, details} */
			ml_msgpack_put_array(&c->out, 4);
			ml_msgpack_put_uint(&c->out, 1);
			ml_msgpack_put_uint(&c->out, a->msgid);
			ml_msgpack_put_map(&c->out, 3);
			ml_msgpack_put_cstr(&c->out, "code");
			ml_msgpack_put_cstr(&c->out, "rejected");
			ml_msgpack_put_cstr(&c->out, "message");
			ml_msgpack_put_cstr(&c->out, o->message);
			ml_msgpack_put_cstr(&c->out, "details");
			if (o->details && o->details->len)
				ml_buf_add(&c->out, o->details->data, o->details->len);
			else
				ml_msgpack_put_nil(&c->out);
			ml_msgpack_put_nil(&c->out);
		} else {
			reply(c, a->msgid, o->code ? o->code : ML_ERR_SCRIPT, o->message);
		}
		ml_conn_mark(c);
	}
	ml_conn_release(c);
	free(a);
}

/* The hosted script `name`, or NULL once the caller has been told there is none. */
static struct ml_script *script_named(struct ml_conn *c, uint64_t msgid, const char *name,
				      uint32_t n)
{
	const struct ml_server_scripts *t = ml_net_scripts(c->srv);
	struct ml_script *s = NULL;
	if (t == NULL)
		reply(c, msgid, ML_ERR_NOT_FOUND,
		      "this server hosts no scripts (start it with --scripts DIR)");
	else if ((s = t->find(t->arg, name, n)) == NULL)
		reply(c, msgid, ml_diag_code(), ml_diag_last());
	return s;
}

/*
 * The methods, called by rpc.c's dispatcher once the number of params fits
 * (its method table holds the bounds and the usage). Each returns -1 when a
 * param is not of the kind it takes (the dispatcher then answers with the
 * usage), else 0: answered, or to be answered later.
 */

int ml_rpc_command(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	const char *d, *n;
	uint32_t dl, nl;
	const uint8_t *args = NULL;
	size_t alen = 0;
	if (ml_msgpack_get_str(r, &d, &dl) != 0 || ml_msgpack_get_str(r, &n, &nl) != 0)
		return -1;
	if (np > 2 && ml_msgpack_get_nil(r) != 0) {
		if (!ml_msgpack_is_map(r->p, ml_msgpack_left(r)) ||
		    ml_msgpack_skip(r, &args, &alen) != 0)
			return -1;
	}
	struct rpc_ask *a = ml_xmalloc(sizeof(*a));
	*a = (struct rpc_ask){c, msgid};
	c->inflight++;
	ml_command_run(c->srv, d, dl, n, nl, args, alen, command_answered, a);
	return 0;
}

int ml_rpc_query(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	struct ml_script *s;
	const char *p, *n;
	uint32_t pl, nl;
	if (ml_msgpack_get_str(r, &p, &pl) != 0)
		return -1;
	if ((s = script_named(c, msgid, p, pl)) == NULL)
		return 0;
	if (ml_msgpack_get_str(r, &n, &nl) != 0)
		return -1;
	/* The remaining params become the query's argument array. */
	struct ml_buf args = {0}, out = {0};
	ml_msgpack_put_array(&args, np - 2);
	ml_buf_add(&args, r->p, (size_t)(r->end - r->p));
	char *name = ml_xstrndup(n, nl);
	if (ml_net_query(c->srv, s, name, args.data, args.len, &out) != 0) {
		ml_net_script_failed(c->srv, ml_diag_last());
		int unknown = strstr(ml_diag_last(), "unknown query") != NULL;
		reply(c, msgid, unknown ? ML_ERR_NOT_FOUND : ml_diag_code(), ml_diag_last());
	} else {
		reply(c, msgid, ML_OK, NULL);
		ml_buf_add(&c->out, out.data, out.len);
	}
	free(name);
	ml_buf_free(&args);
	ml_buf_free(&out);
	return 0;
}

/* Answers with out, or the diag of the call that failed. */
static void answer(struct ml_conn *c, uint64_t msgid, int rc, struct ml_buf *out)
{
	if (rc != 0) {
		ml_net_script_failed(c->srv, ml_diag_last());
		reply(c, msgid, ml_diag_code() ? ml_diag_code() : ML_ERR_SCRIPT, ml_diag_last());
	} else
		reply(c, msgid, ML_OK, NULL), ml_buf_add(&c->out, out->data, out->len);
	ml_buf_free(out);
}

/* get(stream) or get(reducer, stream): a reducer's state of one stream. */
int ml_rpc_get(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	const struct ml_server_scripts *t = ml_net_scripts(c->srv);
	struct ml_script *s = NULL;
	const char *k;
	uint32_t kl;
	if (np == 2) {
		if (ml_msgpack_get_str(r, &k, &kl) != 0)
			return -1;
		if ((s = script_named(c, msgid, k, kl)) == NULL)
			return 0;
	}
	if (ml_msgpack_get_str(r, &k, &kl) != 0)
		return -1;
	if (t == NULL)
		return reply(c, msgid, ML_ERR_NOT_FOUND, "this server hosts no scripts"), 0;
	if (s == NULL && (s = t->reducer_for(t->arg, k, kl)) == NULL)
		return reply(c, msgid, ML_ERR_NOT_FOUND, ml_diag_last()), 0;
	struct ml_buf out = {0};
	answer(c, msgid, ml_script_get(s, k, kl, &out), &out);
	return 0;
}

/* state(script [, key]): a projection's or reducer's whole state, or one key's. */
int ml_rpc_state(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	struct ml_script *s;
	const char *name, *k = NULL;
	uint32_t n, kl = 0;
	if (ml_msgpack_get_str(r, &name, &n) != 0)
		return -1;
	if ((s = script_named(c, msgid, name, n)) == NULL)
		return 0;
	if (np > 1 && ml_msgpack_get_nil(r) != 0 && ml_msgpack_get_str(r, &k, &kl) != 0)
		return -1;
	struct ml_buf out = {0};
	answer(c, msgid, k ? ml_script_get(s, k, kl, &out) : ml_script_state(s, &out), &out);
	return 0;
}

int ml_rpc_scripts(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	const struct ml_server_scripts *t = ml_net_scripts(c->srv);
	reply(c, msgid, ML_OK, NULL);
	if (t)
		t->status(t->arg, &c->out);
	else
		ml_msgpack_put_array(&c->out, 0);
	return 0;
}

/* ---- hot reload and parked events ---- */

static const struct ml_server_scripts *scripts_or_reply(struct ml_conn *c, uint64_t msgid)
{
	const struct ml_server_scripts *t = ml_net_scripts(c->srv);
	if (t == NULL)
		reply(c, msgid, ML_ERR_NOT_FOUND,
		      "this server hosts no scripts (start it with --scripts DIR)");
	return t;
}

/* reload(name): {name, file, outcome[, error]}; reload() every script: an array of them. */
int ml_rpc_reload(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	const char *name = NULL;
	uint32_t n = 0;
	const struct ml_server_scripts *t;
	if (np == 1 && ml_msgpack_get_nil(r) != 0 && ml_msgpack_get_str(r, &name, &n) != 0)
		return -1;
	if ((t = scripts_or_reply(c, msgid)) == NULL)
		return 0;
	struct ml_buf out = {0};
	answer(c, msgid, t->reload(t->arg, name, n, &out), &out);
	return 0;
}

static int parked_method(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, int replay)
{
	const char *name;
	uint32_t n;
	const struct ml_server_scripts *t;
	if (ml_msgpack_get_str(r, &name, &n) != 0)
		return -1;
	if ((t = scripts_or_reply(c, msgid)) == NULL)
		return 0;
	struct ml_buf out = {0};
	answer(c, msgid, t->parked(t->arg, name, n, replay, &out), &out);
	return 0;
}

int ml_rpc_parked(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	return parked_method(c, msgid, r, 0);
}

int ml_rpc_replay_parked(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r,
			 uint32_t np)
{
	return parked_method(c, msgid, r, 1);
}

/* dry_run(name [, file [, options]]): the options map with `file` put in; see host.h. */
int ml_rpc_dry_run(struct ml_conn *c, uint64_t msgid, struct ml_msgpack_reader *r, uint32_t np)
{
	const char *name, *file = NULL;
	uint32_t n, fl = 0, no = 0;
	const uint8_t *pairs = NULL;
	const struct ml_server_scripts *t;
	if (ml_msgpack_get_str(r, &name, &n) != 0)
		return -1;
	if (np > 1 && ml_msgpack_get_nil(r) != 0 && ml_msgpack_get_str(r, &file, &fl) != 0)
		return -1;
	if (np > 2 && ml_msgpack_get_nil(r) != 0) {
		if (ml_msgpack_get_map(r, &no) != 0)
			return -1;
		pairs = r->p;
		if (ml_msgpack_skip_n(r, 2 * (uint64_t)no) != 0)
			return -1;
	}
	if ((t = scripts_or_reply(c, msgid)) == NULL)
		return 0;
	struct ml_buf o = {0}, out = {0};
	ml_msgpack_put_map(&o, no + (file ? 1 : 0));
	if (no)
		ml_buf_add(&o, pairs, (size_t)(r->p - pairs));
	if (file) { /* last: it wins over a `file` in the options */
		ml_msgpack_put_cstr(&o, "file");
		ml_msgpack_put_str(&o, file, fl);
	}
	answer(c, msgid, t->dry_run(t->arg, name, n, o.data, o.len, &out), &out);
	ml_buf_free(&o);
	return 0;
}
