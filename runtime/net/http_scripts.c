/*
 * http_scripts.c - the hosted scripts over HTTP with JSON:
 *
 *   POST /commands/{decider}/{Command}   body: the command's arguments (a JSON object)
 *   GET  /projections/{name}             the whole state; ?key=K one partition
 *   GET  /projections/{name}/{query}     ?arg=A&arg=B: the query's arguments, in order
 *   GET  /reducers/{name}/{stream}       a reducer's state of one stream
 *   GET  /scripts                        the status of every script
 *   POST /scripts/reload                 reload every script (what SIGHUP does)
 *   POST /scripts/{name}/reload          reload one (422 when the new version fails)
 *   GET  /scripts/{name}/parked          a handler's parked events, not yet replayed
 *   POST /scripts/{name}/parked/replay   handle them again with the current code
 *   POST /scripts/{name}/dry-run         a dry run of a new version; body: its options,
 *                                        {"file", "events", "examples", "apply", "cancel"}
 *
 * A query argument is read as JSON when it is JSON (42, true, null, "text",
 * {"a":1}), otherwise as a string (account-1), so ?arg=account-1&arg=3 calls
 * query(state, "account-1", 3). Answers carry the script's position in the
 * header X-Moonlog-Position: the state is as of that event.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/script.h>

#include "net/http_internal.h"

static void send_mp(struct evhttp_request *req, int status, const struct ml_buf *mp,
		    const struct ml_server_scripts *t, struct ml_script *s)
{
	struct ml_buf json = {0};
	if (ml_msgpack_to_json(mp->data, mp->len, &json) != 0) {
		ml_buf_free(&json);
		return ml_http_error(req, 500, ML_ERR_SCRIPT, 0, ml_diag_last());
	}
	ml_buf_add(&json, "\n", 1);
	if (s) {
		char pos[32];
		snprintf(pos, sizeof(pos), "%" PRIu64, t->position(t->arg, s));
		evhttp_add_header(evhttp_request_get_output_headers(req), "X-Moonlog-Position",
				  pos);
	}
	ml_http_send(req, status, NULL, &json, NULL);
	ml_buf_free(&json);
}

static void script_error(struct ml_server *s, struct evhttp_request *req)
{
	enum ml_err code = ml_diag_code();
	const char *why = ml_diag_last();
	ml_net_script_failed(s, why);
	if (strstr(why, "unknown query") || strstr(why, "unknown command"))
		code = ML_ERR_NOT_FOUND;
	ml_http_error(req, code == ML_ERR_SCRIPT ? 500 : 0, code ? code : ML_ERR_SCRIPT, 0, why);
}

/* ---- POST /commands/{decider}/{Command} ---- */

static void command_answered(const struct ml_command_outcome *o, void *arg)
{
	struct evhttp_request *req = arg;
	if (o->status < 300)
		return send_mp(req, o->status, o->result, NULL, NULL);
	if (o->status != 422)
		return ml_http_error(req, o->status, o->code ? o->code : ML_ERR_SCRIPT, 0,
				     o->message);
	struct ml_buf b = {0};
	ml_buf_add(&b, "{\"error\":{\"code\":\"rejected\",\"message\":", 38);
	ml_json_string(&b, o->message, strlen(o->message));
	ml_buf_add(&b, ",\"details\":", 11);
	if (!o->details || !o->details->len ||
	    ml_msgpack_to_json(o->details->data, o->details->len, &b) != 0)
		ml_buf_add(&b, "null", 4);
	ml_buf_add(&b, "}}\n", 3);
	ml_http_send(req, 422, "Unprocessable Entity", &b, NULL);
	ml_buf_free(&b);
}

static void command_route(struct ml_server *s, struct evhttp_request *req, const char *rest)
{
	const char *slash = strchr(rest, '/');
	if (slash == NULL || slash == rest || !slash[1] || strchr(slash + 1, '/'))
		return ml_http_error(req, 404, ML_ERR_NOT_FOUND, 0,
				     "POST /commands/{decider}/{Command}");
	/* Each part decoded alone: a %00 before the slash would hide it from strchr. */
	char *raw = ml_xstrndup(rest, (size_t)(slash - rest));
	char *decider = evhttp_uridecode(raw, 0, NULL);
	free(raw);
	char *command = evhttp_uridecode(slash + 1, 0, NULL);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	struct ml_buf mp = {0};
	if (len && ml_json_to_msgpack(body, len, &mp) != 0) {
		ml_http_error(req, 400, ML_ERR_USAGE, 0, ml_diag_last());
	} else if (len && !ml_msgpack_is_map(mp.data, mp.len)) {
		ml_http_error(req, 400, ML_ERR_USAGE, 0,
			      "the body is the command's arguments: a JSON object");
	} else {
		ml_command_run(s, decider, strlen(decider), command, strlen(command), mp.data,
			       mp.len, command_answered, req);
	}
	ml_buf_free(&mp);
	free(decider);
	free(command);
}

/* ---- reads ---- */

/* A query string value: its JSON value, or the text as a string. */
static void arg_value(struct ml_buf *b, const char *v)
{
	size_t at = b->len;
	if (*v && ml_json_to_msgpack(v, strlen(v), b) == 0)
		return;
	b->len = at;
	size_t n = strlen(v);
	if (n < 32) {
		uint8_t h = (uint8_t)(0xa0 | n);
		ml_buf_add(b, &h, 1);
	} else {
		uint8_t h[5] = {0xdb, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
				(uint8_t)n};
		ml_buf_add(b, h, 5);
	}
	ml_buf_add(b, v, n);
}

static void query_route(struct ml_server *s, struct evhttp_request *req, struct ml_script *sc,
			const char *name, struct evkeyvalq *q)
{
	const struct ml_server_scripts *t = ml_net_scripts(s);
	struct ml_buf args = {0}, vals = {0}, out = {0};
	uint32_t n = 0;
	struct evkeyval *kv;
	for (kv = q->tqh_first; kv; kv = kv->next.tqe_next)
		if (strcmp(kv->key, "arg") == 0) {
			arg_value(&vals, kv->value);
			n++;
		}
	uint8_t hdr[5] = {0xdd, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
			  (uint8_t)n};
	ml_buf_add(&args, hdr, 5);
	if (vals.len)
		ml_buf_add(&args, vals.data, vals.len);
	if (ml_net_query(s, sc, name, args.data, args.len, &out) != 0)
		script_error(s, req);
	else
		send_mp(req, 200, &out, t, sc);
	ml_buf_free(&args);
	ml_buf_free(&vals);
	ml_buf_free(&out);
}

/* /projections/{name}[/{query}] and /reducers/{name}/{stream}: rest is after the prefix. */
static void read_route(struct ml_server *s, struct evhttp_request *req, const char *rest,
		       struct evkeyvalq *q, int reducer)
{
	const struct ml_server_scripts *t = ml_net_scripts(s);
	const char *slash = strchr(rest, '/');
	char *raw = ml_xstrndup(rest, slash ? (size_t)(slash - rest) : strlen(rest));
	char *name = evhttp_uridecode(raw, 0, NULL);
	char *sub = slash ? evhttp_uridecode(slash + 1, 0, NULL) : NULL;
	free(raw);
	struct ml_script *sc = t->find(t->arg, name, strlen(name));
	struct ml_buf out = {0};
	enum ml_script_kind want = reducer ? ML_SCRIPT_REDUCER : ML_SCRIPT_PROJECTION;
	if (sc == NULL) {
		ml_http_error(req, 404, ML_ERR_NOT_FOUND, 0, ml_diag_last());
	} else if (ml_script_kind(sc) != want) {
		char why[200];
		snprintf(why, sizeof(why), "%s is a %s, not a %s", name,
			 ml_script_kind_name(ml_script_kind(sc)), ml_script_kind_name(want));
		ml_http_error(req, 404, ML_ERR_NOT_FOUND, 0, why);
	} else if (reducer && (sub == NULL || !*sub)) {
		ml_http_error(req, 404, ML_ERR_NOT_FOUND, 0, "GET /reducers/{name}/{stream}");
	} else if (sub && *sub && !reducer) {
		query_route(s, req, sc, sub, q);
	} else {
		const char *key = reducer ? sub : evhttp_find_header(q, "key");
		int rc =
		    key ? ml_script_get(sc, key, strlen(key), &out) : ml_script_state(sc, &out);
		if (rc != 0)
			script_error(s, req);
		else
			send_mp(req, 200, &out, t, sc);
	}
	ml_buf_free(&out);
	free(name);
	free(sub);
}

/* ---- /scripts/...: reload and parked events ---- */

static int want(struct evhttp_request *req, enum evhttp_cmd_type m, const char *name)
{
	if (evhttp_request_get_command(req) == m)
		return 1;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", name);
	ml_http_error(req, 405, ML_ERR_USAGE, 0,
		      m == EVHTTP_REQ_POST ? "method not allowed here: use POST"
					   : "method not allowed here: use GET");
	return 0;
}

static void host_answer(struct evhttp_request *req, int rc, struct ml_buf *out)
{
	if (rc == 0) {
		send_mp(req, 200, out, NULL, NULL);
	} else {
		enum ml_err code = ml_diag_code() ? ml_diag_code() : ML_ERR_SCRIPT;
		ml_http_error(req,
			      code == ML_ERR_NOT_FOUND ? 404
			      : code == ML_ERR_SCRIPT  ? 422
						       : 0,
			      code, 0, ml_diag_last());
	}
	ml_buf_free(out);
}

/* POST /scripts/{name}/dry-run: the body (a JSON object, or nothing) is the options. */
static void dry_run_route(const struct ml_server_scripts *t, struct evhttp_request *req,
			  const char *name)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	struct ml_buf mp = {0}, out = {0};
	if (len && (ml_json_to_msgpack(body, len, &mp) != 0 || !ml_msgpack_is_map(mp.data, mp.len)))
		ml_http_error(req, 400, ML_ERR_USAGE, 0,
			      "the body is the dry run's options: a JSON object such as "
			      "{\"file\": \"/path/to/new.lua\"}");
	else
		host_answer(req, t->dry_run(t->arg, name, strlen(name), mp.data, mp.len, &out),
			    &out);
	ml_buf_free(&mp);
}

#define ADMIN_ROUTES                                                                               \
	"POST /scripts/{name}/reload, GET /scripts/{name}/parked, POST "                           \
	"/scripts/{name}/parked/replay, POST /scripts/{name}/dry-run"

/* rest: what follows "/scripts/": "reload", "{name}/reload", "{name}/parked[/replay]",
 * "{name}/dry-run". */
static void admin_route(const struct ml_server_scripts *t, struct evhttp_request *req,
			const char *rest)
{
	struct ml_buf out = {0};
	if (strcmp(rest, "reload") == 0) {
		if (want(req, EVHTTP_REQ_POST, "POST"))
			host_answer(req, t->reload(t->arg, NULL, 0, &out), &out);
		return;
	}
	const char *slash = strchr(rest, '/');
	if (slash == NULL || slash == rest)
		return ml_http_error(req, 404, ML_ERR_NOT_FOUND, 0, ADMIN_ROUTES);
	char *raw = ml_xstrndup(rest, (size_t)(slash - rest));
	char *name = evhttp_uridecode(raw, 0, NULL);
	free(raw);
	const char *what = slash + 1;
	size_t n = strlen(name);
	if (strcmp(what, "reload") == 0) {
		if (want(req, EVHTTP_REQ_POST, "POST"))
			host_answer(req, t->reload(t->arg, name, n, &out), &out);
	} else if (strcmp(what, "parked") == 0) {
		if (want(req, EVHTTP_REQ_GET, "GET"))
			host_answer(req, t->parked(t->arg, name, n, 0, &out), &out);
	} else if (strcmp(what, "parked/replay") == 0) {
		if (want(req, EVHTTP_REQ_POST, "POST"))
			host_answer(req, t->parked(t->arg, name, n, 1, &out), &out);
	} else if (strcmp(what, "dry-run") == 0) {
		if (want(req, EVHTTP_REQ_POST, "POST"))
			dry_run_route(t, req, name);
	} else {
		ml_http_error(req, 404, ML_ERR_NOT_FOUND, 0, ADMIN_ROUTES);
	}
	free(name);
}

int ml_http_scripts_route(struct ml_server *s, struct evhttp_request *req, const char *path,
			  struct evkeyvalq *q)
{
	if (strncmp(path, "/scripts/", 9) == 0 && path[9]) {
		const struct ml_server_scripts *t = ml_net_scripts(s);
		if (t == NULL)
			ml_http_error(req, 404, ML_ERR_NOT_FOUND, 0,
				      "this server hosts no scripts (start it with --scripts DIR)");
		else
			admin_route(t, req, path + 9);
		return 1;
	}

	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const char *rest = NULL;
	int kind = 0;
	if (strncmp(path, "/commands/", 10) == 0)
		kind = 1, rest = path + 10;
	else if (strncmp(path, "/projections/", 13) == 0 && path[13])
		kind = 2, rest = path + 13;
	else if (strncmp(path, "/reducers/", 10) == 0 && path[10])
		kind = 3, rest = path + 10;
	else if (strcmp(path, "/scripts") == 0)
		kind = 4;
	if (kind == 0)
		return 0;
	int want_post = kind == 1;
	if ((want_post && m != EVHTTP_REQ_POST) || (!want_post && m != EVHTTP_REQ_GET)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
				  want_post ? "POST" : "GET");
		ml_http_error(req, 405, ML_ERR_USAGE, 0,
			      want_post ? "method not allowed here: use POST"
					: "method not allowed here: use GET");
		return 1;
	}
	const struct ml_server_scripts *t = ml_net_scripts(s);
	if (t == NULL && kind != 4) {
		ml_http_error(req, 404, ML_ERR_NOT_FOUND, 0,
			      "this server hosts no scripts (start it with --scripts DIR)");
		return 1;
	}
	if (kind == 1) {
		command_route(s, req, rest);
	} else if (kind == 4) {
		struct ml_buf mp = {0};
		if (t)
			t->status(t->arg, &mp);
		else
			ml_buf_add(&mp, "\x90", 1);
		send_mp(req, 200, &mp, NULL, NULL);
		ml_buf_free(&mp);
	} else {
		read_route(s, req, rest, q, kind == 3);
	}
	return 1;
}
