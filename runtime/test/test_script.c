/*
 * test_script.c - the Lua host: loading, the C filter, limits that fault one
 * script alone, what events look like from Lua (the view), conversion of what
 * leaves a script, snapshots, handlers' emits and a decider over a real log.
 */
#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/script.h>

#include "log_helpers.h"
#include "unit.h"

static struct ml_script *load(const char *name, const char *src)
{
	struct ml_script_options o;
	ml_script_options_init(&o);
	o.instruction_limit = 1000000;
	o.memory_limit = 16u << 20;
	o.time_limit_ms = 60000; /* the instruction and memory limits are what these test */
	struct ml_script *s = ml_script_load_buffer(name, src, strlen(src), &o);
	if (s == NULL)
		printf("# load failed: %s\n", ml_diag_last());
	return s;
}

/* Feeds one event; data is JSON. */
static int feed(struct ml_script *s, uint64_t pos, const char *stream, const char *type,
		const char *json)
{
	struct ml_buf data = {0};
	if (json && ml_json_to_msgpack(json, strlen(json), &data) != 0)
		return printf("# bad json: %s\n", ml_diag_last()), -1;
	struct ml_event e = {.position = pos,
			     .version = 1,
			     .time = 1700000000000,
			     .stream = stream,
			     .type = type,
			     .id = "id-1",
			     .data = (const uint8_t *)data.data,
			     .data_len = (uint32_t)data.len,
			     .stream_len = (uint8_t)strlen(stream),
			     .type_len = (uint8_t)strlen(type),
			     .id_len = 4};
	int rc = ml_script_feed(s, &e);
	ml_buf_free(&data);
	return rc;
}

/* The state (or a query's answer) as JSON, into a static buffer. */
static const char *json_of(struct ml_buf *mp, int rc)
{
	static char out[4096];
	struct ml_buf j = {0};
	if (rc != 0 || ml_msgpack_to_json(mp->data, mp->len, &j) != 0)
		snprintf(out, sizeof(out), "error: %s", ml_diag_last());
	else
		snprintf(out, sizeof(out), "%.*s", (int)j.len, j.data);
	ml_buf_free(&j);
	ml_buf_free(mp);
	return out;
}

static const char *state_json(struct ml_script *s)
{
	struct ml_buf b = {0};
	return json_of(&b, ml_script_state(s, &b));
}

static const char *query_json(struct ml_script *s, const char *name)
{
	struct ml_buf b = {0};
	return json_of(&b, ml_script_query(s, name, NULL, 0, &b));
}

static const char counter[] = "local ml = require 'moonlog'\n"
			      "return ml.projection { name = 'counter', from = 'account-*',\n"
			      "  init = { n = 0 }, on = { Deposited = function(s, e)\n"
			      "    s.n = s.n + 1; s.sum = (s.sum or 0) + e.data.amount end },\n"
			      "  queries = { n = function(s) return s.n end } }\n";

static void test_filter(void)
{
	struct ml_script *s = load("counter.lua", counter);
	ok(s != NULL, "a projection loads");
	is_str(ml_script_name(s), "counter", "named by its definition");
	is_str(ml_script_kind_name(ml_script_kind(s)), "projection", "its kind");
	is_int(strlen(ml_script_hash(s)), 16, "a code hash");
	feed(s, 1, "account-1", "Deposited", "{\"amount\":5}");
	feed(s, 2, "account-1", "Withdrawn", "{\"amount\":1}");
	feed(s, 3, "other-1", "Deposited", "{\"amount\":100}");
	feed(s, 4, "account-2", "Deposited", "{\"amount\":7}");
	feed(s, 4, "account-2", "Deposited", "{\"amount\":7}");
	struct ml_script_stats st;
	ml_script_stats(s, &st);
	is_int(st.events, 4, "a position seen twice is fed once");
	is_int(st.delivered, 2, "only events of its streams and types reach Lua");
	is_int(ml_script_position(s), 4, "the position moves with every event");
	const char *js = state_json(s);
	ok(strstr(js, "\"n\":2") && strstr(js, "\"sum\":12"), "the state: %s", js);
	is_str(query_json(s, "n"), "2", "a query");
	ml_script_free(s);
}

static const char looper[] = "local ml = require 'moonlog'\n"
			     "return ml.reducer { name = 'looper', from = '*',\n"
			     "  on = { Spin = function(s, e) while true do\n"
			     "    pcall(function() while true do end end) end end,\n"
			     "  Eat = function(s, e) local t = {} for i = 1, 1e9 do\n"
			     "    t[i] = ('x'):rep(1024) .. i end end,\n"
			     "  Ok = function(s, e) s.n = (s.n or 0) + 1 end } }\n";

static void test_limits(void)
{
	struct ml_script *a = load("looper.lua", looper), *b = load("looper.lua", looper);
	ok(feed(a, 1, "x-1", "Ok", NULL) == 0, "a script runs");
	ok(feed(a, 2, "x-1", "Spin", NULL) != 0, "a loop that catches errors still faults");
	ok(strstr(ml_diag_last(),
		  "script looper faulted at position 2: ran past its instruction "
		  "budget (1000000 instructions per event) at looper.lua:4") != NULL,
	   "the error names the script, the position and the limit: %s", ml_diag_last());
	is_int(ml_diag_code(), ML_ERR_SCRIPT, "a script error");
	ok(feed(a, 3, "x-1", "Ok", NULL) != 0 && ml_script_fault(a) != NULL, "the fault sticks");
	ok(feed(b, 1, "x-1", "Ok", NULL) == 0, "another script goes on");
	ok(feed(b, 9, "x-1", "Eat", NULL) != 0, "eating memory faults");
	ok(strstr(ml_diag_last(), "script looper faulted at position 9: ran out of its memory "
				  "limit (16 MiB)") != NULL,
	   "with the limit named: %s", ml_diag_last());
	struct ml_script_stats st;
	ml_script_stats(b, &st);
	ok(st.memory_peak <= st.memory_limit + (1u << 20),
	   "the allocator held the limit (and the slack for unwinding): %zu", st.memory_peak);
	ml_script_free(a);
	ml_script_free(b);
	struct ml_script *c = load("looper.lua", looper);
	ok(c && feed(c, 1, "x-1", "Ok", NULL) == 0, "a fresh one is fine");
	ml_script_free(c);
}

/* What scripts see: a view that decodes on access and stays stable when kept. */
static const char viewer[] =
    "local ml = require 'moonlog'\n"
    "return ml.projection { name = 'viewer', from = '*', init = { seen = {} },\n"
    "  on = { ['*'] = function(s, e)\n"
    "    local d = e.data\n"
    "    s.seen[#s.seen + 1] = e\n"
    "    s.kept = s.kept or d\n"
    "    s.types = (s.types or '') .. type(e.position) .. type(d.f) .. math.type(d.i)\n"
    "    if d.list then\n"
    "      s.second, s.len = d.list[2], #d.list\n"
    "      local n = 0 for k, v in pairs(d) do n = n + 1 end s.pairs = n\n"
    "      local m = 0 for i, v in ipairs(d.list) do m = m + v end s.ipairs = m\n"
    "      s.nested = d.map.deep.x\n"
    "    end\n"
    "    s.same = e.data == e.data\n"
    "    s.big = d.big\n"
    "    s.ro = select(2, pcall(function() d.i = 1 end))\n"
    "  end },\n"
    "  queries = { kept = function(s) return { s.kept.i, s.seen[1].stream, s.seen[1].data.s } "
    "end } }\n";

static void test_view(void)
{
	struct ml_script *s = load("viewer.lua", viewer);
	ok(feed(s, 1, "a-1", "T",
		"{\"i\":-9007199254740993,\"f\":1.5,\"s\":\"x\",\"list\":[1,2,3],"
		"\"map\":{\"deep\":{\"x\":true}},\"big\":18446744073709551615}") == 0,
	   "fed");
	ok(feed(s, 2, "b-2", "T", "{\"i\":1,\"s\":\"other\"}") == 0, "fed another");
	struct ml_buf b = {0};
	ml_script_query(s, "kept", NULL, 0, &b);
	is_str(json_of(&b, 0), "[-9007199254740993,\"a-1\",\"x\"]",
	       "a kept event and its data keep their values");
	const char *st = state_json(s);
	ok(strstr(st, "\"types\":\"numbernumberintegernumbernilinteger\"") != NULL,
	   "integers stay integers, floats floats: %s", st);
	ok(strstr(st, "\"ipairs\":6") && strstr(st, "\"pairs\":6") && strstr(st, "\"len\":3") &&
	       strstr(st, "\"second\":2") && strstr(st, "\"nested\":true"),
	   "indexing, ipairs, pairs and # work on views");
	ok(strstr(st, "\"big\":1.8446744073709552e+19") != NULL, "a uint64 above int64 is a float");
	ok(strstr(st, "\"same\":true") != NULL, "e.data is the same value each time");
	ok(strstr(st, "read-only") != NULL, "writing to a view raises");
	ok(strstr(st, "\"seen\":[{") && strstr(st, "\"stream\":\"a-1\"") &&
	       strstr(st, "\"list\":[1,2,3]"),
	   "kept events encode as plain values in the state");
	ml_script_free(s);
}

static const char forwarder[] =
    "local ml = require 'moonlog'\n"
    "return ml.handler { name = 'fwd', from = 'in-*', on_error = 'park',\n"
    "  on = { Got = function(e, ctx) ctx.emit('out-1', 'Sent', e.data) end,\n"
    "         Bad = function(e, ctx) error('bad event') end } }\n";

static void test_handler(void)
{
	struct ml_script *s = load("fwd.lua", forwarder);
	struct ml_script_outcome o;
	ok(feed(s, 1, "in-1", "Got", "{\"a\":[1,{\"b\":2}]}") == 0, "a handler runs");
	ml_script_outcome(s, &o);
	is_int(o.n_emits, 1, "it emitted one event");
	struct ml_buf d = {0};
	if (o.n_emits)
		ml_buf_add(&d, o.emits[0].data, o.emits[0].data_len);
	is_str(json_of(&d, 0), "{\"a\":[1,{\"b\":2}]}", "its data is the event's data, re-encoded");
	ok(feed(s, 2, "in-1", "Bad", NULL) == 0, "on_error = park: no fault");
	ml_script_outcome(s, &o);
	ok(o.parked && o.error && strstr(o.error, "bad event"), "the event is to be parked");
	ml_script_free(s);
}

static void test_snapshot(void)
{
	char *dir = unit_tmpdir("script");
	struct ml_script *s = load("counter.lua", counter);
	feed(s, 1, "account-1", "Deposited", "{\"amount\":5}");
	feed(s, 2, "account-1", "Deposited", "{\"amount\":6}");
	ok(ml_script_snapshot_save(s, dir) == 0, "a snapshot is saved");
	ml_script_free(s);
	s = load("counter.lua", counter);
	is_int(ml_script_snapshot_load(s, dir), 1, "and loaded by the same code");
	is_int(ml_script_position(s), 2, "with its position");
	const char *st = state_json(s);
	ok(strstr(st, "\"n\":2") && strstr(st, "\"sum\":11"), "and its state: %s", st);
	ml_script_free(s);
	/* A field this version does not know, holding a container, is skipped whole. */
	char path[4096];
	snprintf(path, sizeof(path), "%s/scripts/counter.snap", dir);
	struct ml_buf file = {0}, later = {0};
	FILE *f = fopen(path, "rb");
	char chunk[4096];
	size_t got;
	while (f && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ml_buf_add(&file, chunk, got);
	if (f)
		fclose(f);
	ml_msgpack_put_map(&later, 9); /* its 7 fields after two more */
	ml_msgpack_put_cstr(&later, "later");
	ml_msgpack_put_map(&later, 0);
	ml_msgpack_put_cstr(&later, "later_too");
	ml_msgpack_put_array(&later, 2);
	ml_msgpack_put_uint(&later, 1);
	ml_msgpack_put_array(&later, 0);
	if (file.len && (uint8_t)file.data[0] == 0x87)
		ml_buf_add(&later, file.data + 1, file.len - 1);
	f = fopen(path, "wb");
	if (f) {
		fwrite(later.data, 1, later.len, f);
		fclose(f);
	}
	ml_buf_free(&file);
	ml_buf_free(&later);
	s = load("counter.lua", counter);
	is_int(ml_script_snapshot_load(s, dir), 1,
	       "a snapshot with fields of a later version (a map, an array) loads: %s",
	       ml_diag_last());
	st = state_json(s);
	ok(strstr(st, "\"n\":2") && strstr(st, "\"sum\":11"), "with its state: %s", st);
	ml_script_free(s);
	char other[sizeof(counter) + 16];
	snprintf(other, sizeof(other), "%s-- changed\n", counter);
	s = load("counter.lua", other);
	is_int(ml_script_snapshot_load(s, dir), -1, "other code is refused");
	is_int(ml_diag_code(), ML_ERR_REFUSED, "as refused");
	is_int(ml_script_position(s), 0, "and starts over");
	ml_script_free(s);
	rm_rf(dir);
	free(dir);
}

static const char account[] =
    "local ml = require 'moonlog'\n"
    "return ml.decider { name = 'account', from = 'account-*',\n"
    "  stream = function(cmd) return 'account-' .. cmd.id end,\n"
    "  init = { balance = 0 },\n"
    "  on = { Deposited = function(s, e) s.balance = s.balance + e.data.amount end },\n"
    "  decide = { Withdraw = function(s, cmd)\n"
    "    if s.balance < cmd.amount then return ml.reject('insufficient funds') end\n"
    "    return { ml.event('Withdrawn', { amount = cmd.amount }) } end } }\n";

static void test_decide(void)
{
	char *dir = unit_tmpdir("decide");
	struct ml_log *log = open_log(dir, 0);
	struct ml_event_in in[2] = {ev("account-7", "Deposited", NULL),
				    ev("account-7", "Deposited", NULL)};
	struct ml_append req = {.events = in, .n_events = 2};
	ok(log && ml_log_append(log, &req) == 0, "two deposits of 10");
	struct ml_script *s = load("account.lua", account);
	struct ml_script_decision d;
	struct ml_buf args = {0};
	ml_json_to_msgpack("{\"id\":\"7\",\"amount\":15}", 22, &args);
	ok(ml_script_decide(s, log, "Withdraw", args.data, args.len, &d) == 0, "decides");
	is_str(d.stream, "account-7", "on the target stream");
	is_int(d.expected_version, 2, "at the version it was built at");
	is_int(d.n_events, 1, "one event");
	struct ml_buf e = {0};
	ml_buf_add(&e, d.events.data, d.events.len);
	const char *j = json_of(&e, 0);
	ok(strstr(j, "\"type\":\"Withdrawn\"") && strstr(j, "\"data\":{\"amount\":15}"),
	   "the new event: %s", j);
	ml_script_decision_free(&d);
	args.len = 0;
	ml_json_to_msgpack("{\"id\":\"7\",\"amount\":25}", 22, &args);
	ok(ml_script_decide(s, log, "Withdraw", args.data, args.len, &d) == 0 && d.rejected,
	   "a rejection");
	is_str(d.reason, "insufficient funds", "with its reason");
	ml_script_decision_free(&d);
	ml_buf_free(&args);
	ml_script_free(s);
	ml_log_close(log);
	rm_rf(dir);
	free(dir);
}

static void test_load_errors(void)
{
	ok(load("x.lua", "return 42") == NULL, "a script must return a definition");
	ok(strstr(ml_diag_last(), "x.lua must return a definition built with the moonlog DSL"),
	   "%s", ml_diag_last());
	ok(load("y.lua", "local ml = require 'moonlog' return ml.projection { nam = 'x' }") == NULL,
	   "a misspelt key");
	ok(strstr(ml_diag_last(), "y.lua") && strstr(ml_diag_last(), "unknown key \"nam\""),
	   "names the file and the key: %s", ml_diag_last());
	ok(ml_script_load("/nonexistent/z.lua", NULL) == NULL && ml_diag_code() == ML_ERR_NOT_FOUND,
	   "a missing file");
}

int main(void)
{
	test_filter();
	test_limits();
	test_view();
	test_handler();
	test_snapshot();
	test_decide();
	test_load_errors();
	return done_testing();
}
