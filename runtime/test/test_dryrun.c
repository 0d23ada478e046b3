/*
 * test_dryrun.c - a dry run of a reload (runtime/host/dryrun*.c): two states
 * compared key by key whatever the order of their maps, with paths as Lua
 * indexes them and exact counts past the examples kept; a handler's
 * checkpoint says how many events its batch holds; and a hosted handler's
 * new version run over the last events, its emits compared with those in the
 * log, writing nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/host.h>
#include <moonlog/msgpack.h>

#include "host/dryrun.h"
#include "log_helpers.h"
#include "unit.h"

/* The JSON text of msgpack bytes, NUL-terminated (free it). */
static char *json_of(const void *mp, size_t len)
{
	struct ml_buf j = {0};
	if (ml_msgpack_to_json(mp, len, &j) != 0)
		ml_buf_add(&j, "(not msgpack)", 13);
	ml_buf_add(&j, "", 1);
	return j.data;
}

static void kv_int(struct ml_buf *b, const char *k, int64_t v)
{
	ml_msgpack_put_cstr(b, k);
	ml_msgpack_put_int(b, v);
}

/* {total, accounts = {...}, list = {1, 2}, m = {x = 1, y = 2} (in `order`), [7] = true} */
static void state(struct ml_buf *b, int64_t total, const char *const *accounts,
		  const int64_t *balances, int n, int order)
{
	ml_msgpack_put_map(b, 5);
	kv_int(b, "total", total);
	ml_msgpack_put_cstr(b, "accounts");
	ml_msgpack_put_map(b, (uint32_t)n);
	for (int i = 0; i < n; i++)
		kv_int(b, accounts[i], balances[i]);
	ml_msgpack_put_cstr(b, "list");
	ml_msgpack_put_array(b, 2);
	ml_msgpack_put_int(b, 1);
	ml_msgpack_put_int(b, 2);
	ml_msgpack_put_cstr(b, "m");
	ml_msgpack_put_map(b, 2);
	kv_int(b, order ? "y" : "x", order ? 2 : 1);
	kv_int(b, order ? "x" : "y", order ? 1 : 2);
	ml_msgpack_put_int(b, 7);
	ml_msgpack_put_bool(b, 1);
}

static void test_diff(void)
{
	static const char *const old_names[] = {"account-1", "b", "account-3"};
	static const char *const new_names[] = {"account-4", "account-1", "b"};
	static const int64_t old_bal[] = {1, 2, 3}, new_bal[] = {4, 1, 5};
	struct ml_buf a = {0}, b = {0};
	state(&a, 10, old_names, old_bal, 3, 0);
	state(&b, 11, new_names, new_bal, 3, 1);

	struct ml_diff d = {.examples = 10};
	ok(ml_diff_states(&d, a.data, a.len, b.data, b.len) == 0, "two states compared");
	is_int(d.added, 1, "one key added (account-4)");
	is_int(d.removed, 1, "one removed (account-3)");
	is_int(d.changed, 2, "two changed (total, b)");
	is_int(d.same, 5, "the rest the same: account-1, list, m.x, m.y, [7]");
	struct ml_kv kv = {0};
	ml_diff_put(&d, &kv);
	struct ml_buf out = {0};
	ml_kv_put(&kv, &out);
	char *j = json_of(out.data, out.len);
	ok(strstr(j, "\"added\":[{\"key\":\"accounts[\\\"account-4\\\"]\",\"new\":4}]") != NULL,
	   "an added key with its path and value: %s", j);
	ok(strstr(j, "\"removed\":[{\"key\":\"accounts[\\\"account-3\\\"]\",\"old\":3}]") != NULL,
	   "a removed one");
	ok(strstr(j, "{\"key\":\"total\",\"old\":10,\"new\":11}") != NULL, "total: old -> new");
	ok(strstr(j, "{\"key\":\"accounts.b\",\"old\":2,\"new\":5}") != NULL,
	   "a key that is a name: accounts.b");
	free(j);
	ml_diff_free(&d);
	ml_buf_free(&kv.b);
	ml_buf_free(&out);

	/* fewer examples than differences: the counts stay exact */
	struct ml_diff one = {.examples = 1};
	ok(ml_diff_states(&one, a.data, a.len, b.data, b.len) == 0, "again, one example each");
	is_int(one.changed, 2, "both changes counted");
	is_int(one.n_changed_ex, 1, "one of them shown");
	ml_diff_free(&one);

	/* a whole state that is not a map */
	struct ml_buf x = {0}, y = {0};
	ml_msgpack_put_int(&x, 1);
	ml_msgpack_put_cstr(&y, "one");
	struct ml_diff whole = {0};
	ok(ml_diff_states(&whole, x.data, x.len, y.data, y.len) == 0 && whole.changed == 1,
	   "a state that is a value changes as a whole");
	ml_diff_free(&whole);
	whole = (struct ml_diff){0};
	ok(ml_diff_states(&whole, x.data, x.len, "\xc1", 1) == 0 && whole.changed == 1,
	   "bytes that are not msgpack differ from anything");
	ml_diff_free(&whole);

	/* maps inside a value compared whatever their order */
	struct ml_buf p = {0}, q = {0};
	ml_msgpack_put_array(&p, 1);
	ml_msgpack_put_map(&p, 2);
	kv_int(&p, "a", 1);
	kv_int(&p, "b", 2);
	ml_msgpack_put_array(&q, 1);
	ml_msgpack_put_map(&q, 2);
	kv_int(&q, "b", 2);
	kv_int(&q, "a", 1);
	ok(ml_msgpack_same(p.data, p.len, q.data, q.len), "maps in an array: order aside, equal");
	q.data[q.len - 1] = 3;
	ok(!ml_msgpack_same(p.data, p.len, q.data, q.len), "and a value that differs is seen");
	ml_buf_free(&a);
	ml_buf_free(&b);
	ml_buf_free(&x);
	ml_buf_free(&y);
	ml_buf_free(&p);
	ml_buf_free(&q);
}

/* ---- a hosted handler ---- */

static const char echo[] = "local ml = require 'moonlog'\n"
			   "return ml.handler { name = 'echo', from = 'ping-*',\n"
			   "  on = { Ping = function(e, ctx)\n"
			   "    ctx.emit('pong-' .. e.stream, 'Pong', { n = 1 }) end } }\n";
/* odd pings as before, even ones nothing, ping-3 one more, ping-5 an error on line 5 */
static const char next[] =
    "local ml = require 'moonlog'\n"
    "return ml.handler { name = 'echo', from = 'ping-*',\n"
    "  on = { Ping = function(e, ctx)\n"
    "    local n = tonumber(e.stream:sub(6))\n"
    "    if n == 5 then error('five') end\n"
    "    if n % 2 == 1 then ctx.emit('pong-' .. e.stream, 'Pong', { n = 1 }) end\n"
    "    if n == 3 then ctx.emit('extra', 'Extra', {}) end end } }\n";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

static int last_checkpoint(const struct ml_event *e, void *arg)
{
	char **out = arg;
	free(*out);
	*out = json_of(e->data, e->data_len);
	return 0;
}

/* Calls dry_run with opts (JSON) until it is no longer running; its answer as JSON. */
static char *dry_run(struct ml_host *h, const char *opts)
{
	struct ml_buf mp = {0}, out = {0};
	ml_json_to_msgpack(opts, strlen(opts), &mp);
	for (int i = 0; i < 2000; i++) {
		out.len = 0;
		if (ml_host_dry_run(h, "echo", 4, mp.data, mp.len, &out) != 0) {
			ml_buf_free(&mp);
			ml_buf_free(&out);
			char *why = malloc(strlen(ml_diag_last()) + 1);
			strcpy(why, ml_diag_last());
			return why;
		}
		char *j = json_of(out.data, out.len);
		if (strstr(j, "\"state\":\"running\"") == NULL) {
			ml_buf_free(&mp);
			ml_buf_free(&out);
			return j;
		}
		free(j);
		ml_host_step(h);
		usleep(1000);
	}
	ml_buf_free(&mp);
	ml_buf_free(&out);
	return strdup("(still running)");
}

/* A host in dir running echo.lua over ping-1 .. ping-6, each handled; dir/scripts its folder. */
static struct ml_host *echo_host(const char *dir, struct ml_log **log)
{
	char scripts[1100], path[1200], cmd[1300];
	snprintf(scripts, sizeof(scripts), "%s/scripts", dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", scripts);
	ok(system(cmd) == 0, "a scripts folder");
	snprintf(path, sizeof(path), "%s/echo.lua", scripts);
	write_file(path, echo);
	*log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	struct ml_host_options ho;
	ml_host_options_init(&ho);
	ho.scripts_dir = scripts, ho.data_dir = dir, ho.quiet = 1;
	struct ml_host *h = ml_host_open(*log, &ho);
	ok(h != NULL, "a host");
	for (int i = 1; i <= 6; i++) {
		char stream[16];
		snprintf(stream, sizeof(stream), "ping-%d", i);
		struct ml_event_in e = ev(stream, "Ping", NULL);
		struct ml_append req = {.events = &e, .n_events = 1};
		ml_log_append(*log, &req);
	}
	ml_host_drain(h);
	return h;
}

static void test_handler(void)
{
	char *dir = unit_tmpdir("dryrun-handler");
	char scripts[1100], path[1200];
	snprintf(scripts, sizeof(scripts), "%s/scripts", dir);
	struct ml_log *log;
	struct ml_host *h = echo_host(dir, &log);
	char *ck = NULL;
	ml_log_read_stream(log, "$checkpoint-echo", 16, 0, 0, 0, last_checkpoint, &ck);
	ok(ck && strstr(ck, "\"position\":6,") && strstr(ck, "\"events\":6}"),
	   "the checkpoint says the 6 events of its batch come before it: %s", ck ? ck : "none");
	free(ck);
	uint64_t head = ml_log_head(log);

	snprintf(path, sizeof(path), "%s/echo-next.lua", dir);
	write_file(path, next);
	char opts[1400];
	snprintf(opts, sizeof(opts), "{\"file\": \"%s\"}", path);
	char *j = dry_run(h, opts);
	ok(strstr(j, "\"state\":\"done\"") != NULL, "the dry run is done: %s", j);
	ok(strstr(j, "\"emits\":{\"added\":1,\"dropped\":4,\"changed\":0,\"same\":2}") != NULL,
	   "ping-3's extra added; 2, 4, 6 dropped and 5's (it faulted); 1 and 3 the same");
	ok(strstr(j, "\"handled\":6") != NULL, "six pings handled");
	ok(strstr(j, "\"fault_count\":1,\"faults\":[{\"position\":5,\"stream\":\"ping-5\","
		     "\"type\":\"Ping\",\"error\":") != NULL &&
	       strstr(j, "five\",\"line\":5}]") != NULL,
	   "the fault with its event and line");
	ok(strstr(j,
		  "\"dropped\":[{\"position\":2,\"stream\":\"ping-2\",\"type\":\"Ping\","
		  "\"emit\":{\"stream\":\"pong-ping-2\",\"type\":\"Pong\",\"data\":{\"n\":1},") !=
	       NULL,
	   "a dropped emit with its cause");
	free(j);
	is_int(ml_log_head(log), head, "the log's head did not move");

	/* applying writes the previewed text over the script's file, and swaps it in */
	j = dry_run(h, "{\"apply\": true}");
	ok(strstr(j, "\"outcome\":\"applied\"") != NULL, "applied: %s", j);
	free(j);
	snprintf(path, sizeof(path), "%s/echo.lua", scripts);
	FILE *f = fopen(path, "r");
	char text[2048] = "";
	size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
	if (f)
		fclose(f);
	text[n] = 0;
	is_str(text, next, "the script's file holds the new version");
	j = dry_run(h, "{\"apply\": true}");
	ok(strstr(j, "no dry run of echo") != NULL, "a second apply has nothing to apply: %s", j);
	free(j);

	ml_host_close(h);
	ml_log_close(log);
	rm_rf(dir);
	free(dir);
}

/*
 * A deleted stream's events are not the candidate's inputs, as they are not the live
 * handler's: ping-5 (where the candidate fails) deleted after it was handled is not run,
 * and what the live handler emitted for it is neither compared nor dropped.
 */
static void test_handler_deleted(void)
{
	char *dir = unit_tmpdir("dryrun-deleted");
	struct ml_log *log;
	struct ml_host *h = echo_host(dir, &log);
	struct ml_retention_append a;
	ok(ml_log_prepare_delete(log, &a, "ping-5", 6, ML_EXPECT_ANY, 0) == 0 &&
	       ml_log_append(log, &a.req) == 0,
	   "ping-5 deleted");
	ml_host_drain(h);
	char path[1200], opts[1400];
	snprintf(path, sizeof(path), "%s/echo-next.lua", dir);
	write_file(path, next);
	snprintf(opts, sizeof(opts), "{\"file\": \"%s\"}", path);
	char *j = dry_run(h, opts);
	ok(strstr(j, "\"state\":\"done\"") != NULL, "the dry run is done: %s", j);
	ok(strstr(j, "\"fault_count\":0,") != NULL, "ping-5 was not run: no fault");
	ok(strstr(j, "\"handled\":5,") != NULL, "five pings handled, not six");
	ok(strstr(j, "\"emits\":{\"added\":1,\"dropped\":3,\"changed\":0,\"same\":2}") != NULL,
	   "2, 4, 6 dropped; ping-5's live emit neither compared nor dropped");
	free(j);
	ml_host_close(h);
	ml_log_close(log);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	test_diff();
	test_handler();
	test_handler_deleted();
	return done_testing();
}
