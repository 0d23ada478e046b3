/*
 * repl_remote.c - the REPL backend that evaluates in a running server: `eval`
 * and `complete` on its admin socket, `subscribe` for tails. The server
 * shows values with the same lua/moonlog/repl.lua as the local backend.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include <moonlog/diag.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/repl.h"

struct remote {
	struct repl_backend b;
	struct cli_client cl;
	char where[4200];
};

/* Copies the string at the cursor into out (NUL-terminated); 0 or -1. */
static int take_str(struct ml_msgpack_reader *m, struct ml_buf *out)
{
	const char *s;
	uint32_t n;
	if (ml_msgpack_get_str(m, &s, &n) != 0)
		return -1;
	ml_buf_add(out, s, n);
	ml_buf_add(out, "", 1);
	out->len--;
	return 0;
}

static void read_tail(struct ml_msgpack_reader *m, struct repl_result *r)
{
	uint32_t n, kl;
	const char *k;
	if (ml_msgpack_get_map(m, &n) != 0)
		return;
	for (uint32_t i = 0; i < n; i++) {
		if (ml_msgpack_get_str(m, &k, &kl) != 0)
			return;
		if (kl == 7 && memcmp(k, "pattern", 7) == 0) {
			const char *p;
			uint32_t pl;
			if (ml_msgpack_get_str(m, &p, &pl) == 0)
				snprintf(r->tail, sizeof(r->tail), "%.*s", (int)pl, p);
		} else if (kl == 4 && memcmp(k, "from", 4) == 0) {
			ml_msgpack_get_uint(m, &r->tail_from);
		} else {
			ml_msgpack_skip(m, NULL, NULL);
		}
	}
}

/* The answer {values, output, text[, tail]}: what print wrote, then the values shown. */
static void read_answer(struct ml_msgpack_reader *m, struct repl_result *r)
{
	struct ml_buf output = {0}, text = {0};
	uint32_t n, kl;
	const char *k;
	if (ml_msgpack_get_map(m, &n) == 0)
		for (uint32_t i = 0; i < n && ml_msgpack_get_str(m, &k, &kl) == 0; i++) {
			if (kl == 6 && memcmp(k, "output", 6) == 0)
				take_str(m, &output);
			else if (kl == 4 && memcmp(k, "text", 4) == 0)
				take_str(m, &text);
			else if (kl == 4 && memcmp(k, "tail", 4) == 0)
				read_tail(m, r);
			else
				ml_msgpack_skip(m, NULL, NULL);
		}
	if (output.len && output.data[output.len - 1] == '\n')
		output.len--; /* print's last newline: the front end ends the text */
	ml_buf_add(&r->text, output.data ? output.data : "", output.len);
	if (output.len && text.len)
		ml_buf_add(&r->text, "\n", 1);
	ml_buf_add(&r->text, text.data ? text.data : "", text.len);
	ml_buf_add(&r->text, "", 1);
	r->text.len--;
	ml_buf_free(&output);
	ml_buf_free(&text);
}

static int remote_eval(struct repl_backend *b, const char *chunk, struct repl_result *r)
{
	struct remote *rm = (struct remote *)b;
	struct ml_buf p = {0};
	struct ml_msgpack_reader m;
	ml_msgpack_put_array(&p, 1);
	ml_msgpack_put_cstr(&p, chunk);
	int rc = cli_client_call(&rm->cl, "eval", &p, &m);
	ml_buf_free(&p);
	if (rc == 0) {
		r->ok = 1;
		read_answer(&m, r);
		return 0;
	}
	const char *msg = ml_diag_last();
	size_t len = strlen(msg);
	/* As lua.c: a syntax error at <eof> means the chunk goes on. */
	r->incomplete = ml_diag_code() == ML_ERR_REFUSED && len >= 5 &&
			(strstr(msg, "<eof>") != NULL && strchr(msg, '\n') == NULL);
	ml_buf_addf(&r->text, "%s", msg);
	return 0;
}

static int remote_complete(struct repl_backend *b, const char *line, char ***out)
{
	struct remote *rm = (struct remote *)b;
	struct ml_buf p = {0};
	struct ml_msgpack_reader m;
	uint32_t n = 0;
	*out = NULL;
	ml_msgpack_put_array(&p, 1);
	ml_msgpack_put_cstr(&p, line);
	int rc = cli_client_call(&rm->cl, "complete", &p, &m);
	ml_buf_free(&p);
	if (rc != 0 || ml_msgpack_get_array(&m, &n) != 0)
		return 0;
	*out = calloc((size_t)n + 1, sizeof(char *));
	for (uint32_t i = 0; i < n; i++) {
		struct ml_buf s = {0};
		take_str(&m, &s);
		(*out)[i] = s.data ? s.data : strdup("");
	}
	return (int)n;
}

/* subscribe(pattern, from), print events until *stop, then unsubscribe. */
static int remote_tail(struct repl_backend *b, const char *pattern, uint64_t from,
		       volatile sig_atomic_t *stop)
{
	struct remote *rm = (struct remote *)b;
	struct ml_buf p = {0}, line = {0};
	struct ml_msgpack_reader m;
	uint64_t sub = 0;
	ml_msgpack_put_array(&p, 2);
	ml_msgpack_put_cstr(&p, pattern);
	ml_msgpack_put_uint(&p, from);
	int rc = cli_client_call(&rm->cl, "subscribe", &p, &m);
	if (rc != 0) {
		ml_buf_free(&p);
		return cli_diag("repl");
	}
	ml_msgpack_get_uint(&m, &sub);
	while (!*stop) {
		/* Wait in poll, not in read: the client's reads go on through EINTR, and
		 * Ctrl-C must be seen within a moment. */
		struct pollfd pfd = {.fd = rm->cl.fd, .events = POLLIN};
		if (rm->cl.in_off >= rm->cl.in.len && poll(&pfd, 1, 100) <= 0)
			continue;
		uint32_t n, nl;
		int64_t type;
		const char *name;
		uint64_t id;
		struct ml_event e;
		if (cli_client_next(&rm->cl, &m) != 0)
			break; /* interrupted (EINTR), or the server went away */
		if (ml_msgpack_get_array(&m, &n) != 0 || ml_msgpack_get_int(&m, &type) != 0 ||
		    type != 2 || ml_msgpack_get_str(&m, &name, &nl) != 0 ||
		    ml_msgpack_get_array(&m, &n) != 0 || ml_msgpack_get_uint(&m, &id) != 0 ||
		    cli_client_event(&m, &e) != 0)
			continue;
		line.len = 0;
		cli_event_line(&e, &line);
		fwrite(line.data, 1, line.len, stdout);
		fflush(stdout);
	}
	p.len = 0;
	ml_msgpack_put_array(&p, 1);
	ml_msgpack_put_uint(&p, sub);
	cli_client_call(&rm->cl, "unsubscribe", &p, &m);
	ml_buf_free(&p);
	ml_buf_free(&line);
	return 0;
}

static void remote_close(struct repl_backend *b)
{
	struct remote *rm = (struct remote *)b;
	cli_client_close(&rm->cl);
	free(rm);
}

struct repl_backend *repl_remote_open(const char *addr, const char *where)
{
	struct remote *rm = calloc(1, sizeof(*rm));
	if (cli_client_connect(&rm->cl, addr) != 0) {
		cli_diag("repl");
		free(rm);
		return NULL;
	}
	snprintf(rm->where, sizeof(rm->where), "%s", where);
	rm->b = (struct repl_backend){.where = rm->where,
				      .how = "server",
				      .eval = remote_eval,
				      .complete = remote_complete,
				      .tail = remote_tail,
				      .close = remote_close};
	return &rm->b;
}
