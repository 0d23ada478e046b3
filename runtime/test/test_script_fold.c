/*
 * test_script_fold.c - a plain projection fed from C (runtime/script/fold.c):
 * handlers that read fields by name get them as plain values, with the same
 * answers a view gives, and every handler that could keep its event gets the
 * view; handlers that run straight through run without the count hook, and
 * the instruction budget, the memory limit and the time limit still stop
 * whatever they call.
 */
#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/script.h>

#include "unit.h"

static struct ml_script *load_src(const char *name, const char *src)
{
	struct ml_script_options o;
	ml_script_options_init(&o);
	o.instruction_limit = 1000000;
	o.memory_limit = 16u << 20;
	o.time_limit_ms = 60000; /* the budget and the memory limit are what these test */
	struct ml_script *s = ml_script_load_buffer(name, src, strlen(src), &o);
	if (s == NULL)
		printf("# load failed: %s\n", ml_diag_last());
	return s;
}

/* A projection named `name` with one "*" handler whose body is `body`. */
static struct ml_script *projection(const char *name, const char *init, const char *body)
{
	char src[4096];
	snprintf(src, sizeof(src),
		 "local ml = require 'moonlog'\n"
		 "return ml.projection { name = '%s', from = '*', init = %s,\n"
		 "  on = { ['*'] = function(s, e)\n%s\n  end },\n"
		 "  queries = { spin = function(s) while true do end end } }\n",
		 name, init, body);
	return load_src(name, src);
}

/* Feeds one event whose data and meta are msgpack bytes (NULL: none). */
static int feed_mp(struct ml_script *s, uint64_t pos, const char *type, const struct ml_buf *data,
		   const struct ml_buf *meta)
{
	struct ml_event e = {.position = pos,
			     .version = pos + 10,
			     .time = 1700000000000 + (int64_t)pos,
			     .stream = "acct-1",
			     .type = type,
			     .id = "id-1",
			     .data = data ? (const uint8_t *)data->data : NULL,
			     .data_len = data ? (uint32_t)data->len : 0,
			     .meta = meta ? (const uint8_t *)meta->data : NULL,
			     .meta_len = meta ? (uint32_t)meta->len : 0,
			     .stream_len = 6,
			     .type_len = (uint8_t)strlen(type),
			     .id_len = 4};
	return ml_script_feed(s, &e);
}

/* The same with JSON (NULL: none). */
static int feed(struct ml_script *s, uint64_t pos, const char *data, const char *meta)
{
	struct ml_buf d = {0}, m = {0};
	if (data)
		ml_json_to_msgpack(data, strlen(data), &d);
	if (meta)
		ml_json_to_msgpack(meta, strlen(meta), &m);
	int rc = feed_mp(s, pos, "Happened", data ? &d : NULL, meta ? &m : NULL);
	ml_buf_free(&d);
	ml_buf_free(&m);
	return rc;
}

/* The state as readable Lua, keys sorted (two states order their tables differently). */
static char *state_lua(struct ml_script *s)
{
	struct ml_buf b = {0};
	if (ml_script_state_lua(s, &b) != 0)
		ml_buf_addf(&b, "error: %s", ml_diag_last());
	ml_buf_add(&b, "", 1);
	return b.data;
}

static char *state_json(struct ml_script *s)
{
	struct ml_buf mp = {0}, j = {0};
	if (ml_script_state(s, &mp) != 0 || ml_msgpack_to_json(mp.data, mp.len, &j) != 0)
		ml_buf_addf(&j, "error: %s", ml_diag_last());
	ml_buf_add(&j, "", 1);
	ml_buf_free(&mp);
	return j.data;
}

static struct ml_script_stats stats(struct ml_script *s)
{
	struct ml_script_stats st;
	ml_script_stats(s, &st);
	return st;
}

/* What a fault says after "script NAME faulted at position N: ". */
static const char *after_name(const char *msg)
{
	const char *p = strstr(msg, ": ");
	return p ? p + 2 : msg;
}

static const char reads[] =
    "    local d, m = e.data, e.meta\n"
    "    s[#s + 1] = { stream = e.stream, type = e.type, id = e.id, position = e.position,\n"
    "      version = e.version, time = e.time, amount = d.amount, flag = d.flag,\n"
    "      nothing = d.nothing, one = d['1'], big = d.big, cid = m.correlation_id,\n"
    "      missing = e.missing }\n";

/* Data no JSON gives: a bin key, a key twice (the first counts), an integer key, a map key. */
static void odd_map(struct ml_buf *b)
{
	ml_msgpack_put_map(b, 5);
	ml_buf_add(b,
		   "\xc4\x06"
		   "amount",
		   8);
	ml_msgpack_put_int(b, 7);
	ml_msgpack_put_cstr(b, "flag");
	ml_msgpack_put_bool(b, 0);
	ml_msgpack_put_cstr(b, "flag");
	ml_msgpack_put_bool(b, 1);
	ml_msgpack_put_uint(b, 1);
	ml_msgpack_put_cstr(b, "an integer key");
	ml_msgpack_put_map(b, 1);
	ml_msgpack_put_cstr(b, "one");
	ml_msgpack_put_cstr(b, "1");
	ml_msgpack_put_cstr(b, "a map key");
}

static void test_same_answers(void)
{
	char keeps[1024];
	snprintf(keeps, sizeof(keeps), "%s    if s.never then s.keep = e end\n", reads);
	struct ml_script *plain = projection("plain", "{}", reads);
	struct ml_script *view = projection("view", "{}", keeps);
	static const char *const data[] = {
	    "{\"amount\":5,\"note\":\"x\"}",
	    "{\"amount\":1.5,\"flag\":true,\"nothing\":null,\"1\":\"one\"}",
	    "{\"amount\":{\"nested\":[1,2]}}", /* a map where a name is read: the view */
	    "{\"big\":18446744073709551615}",
	    NULL, /* odd_map */
	    "{\"amount\":-3,\"flag\":false,\"1\":[3]}",
	    "[1,2]", /* not a map (d['1'] is its first element): the view */
	};
	int fed = 0;
	for (int i = 0; i < 7; i++) {
		char meta[64];
		snprintf(meta, sizeof(meta),
			 i == 3 ? "{\"other\":1}" : "{\"correlation_id\":\"c-%d\"}", i);
		for (int k = 0; k < 2; k++) {
			struct ml_script *s = k ? view : plain;
			int rc;
			if (data[i]) {
				rc = feed(s, (uint64_t)i + 1, data[i], meta);
			} else {
				struct ml_buf d = {0}, m = {0};
				odd_map(&d);
				ml_json_to_msgpack(meta, strlen(meta), &m);
				rc = feed_mp(s, (uint64_t)i + 1, "Happened", &d, &m);
				ml_buf_free(&d);
				ml_buf_free(&m);
			}
			fed += rc == 0;
		}
	}
	is_int(fed, 14, "every event is fed to both: %s", ml_diag_last());
	char *a = state_lua(plain), *b = state_lua(view);
	is_str(a, b, "plain fields and views give the handler the same values");
	int values = strstr(a, "nested = {") && strstr(a, "amount = 7,") &&
		     strstr(a, "flag = false,") && strstr(a, "one = 1,") &&
		     strstr(a, "big = 1.844674407371e+19") && strstr(a, "cid = \"c-0\"") &&
		     strstr(a, "version = 11,") && strstr(a, "time = 1700000000001,") &&
		     strstr(a, "amount = 1.5,");
	ok(values, "with the values of the events");
	if (!values)
		printf("# %s\n", a);
	free(a);
	free(b);
	/* (a map or an array where a name is read, and data that is not a map, take the view) */
	is_int(stats(plain).plain, 4,
	       "the plain handler got plain fields but where a view was needed");
	is_int(stats(view).plain, 0, "a handler that may keep its event gets views");
	is_int(stats(plain).unhooked, 4,
	       "a straight handler given plain fields runs without the count hook");
	is_int(stats(view).unhooked, 0, "one given a view has it (reading a view calls C)");
	ml_script_free(plain);
	ml_script_free(view);
}

/* An event without data, with a number as data, or without meta: the same fault either way. */
static void test_same_faults(void)
{
	static const char *const cases[][2] = {
	    {NULL, "attempt to index a nil value (field 'data')"},
	    {"5", "attempt to index a number value (field 'data')"},
	};
	const char *body = "    s.nodata = e.data == nil\n    s.v = e.data.v\n";
	char keeps[256];
	snprintf(keeps, sizeof(keeps), "%s    if s.never then s.keep = e end\n", body);
	for (int i = 0; i < 2; i++) {
		char msg[2][512];
		for (int k = 0; k < 2; k++) {
			struct ml_script *s = projection("f", "{}", k ? keeps : body);
			feed(s, 1, "{\"v\":1}", NULL);
			ok(feed(s, 2, cases[i][0], NULL) != 0, "a handler that indexes a %s faults",
			   cases[i][0] ? cases[i][0] : "missing e.data");
			snprintf(msg[k], sizeof(msg[k]), "%s", after_name(ml_diag_last()));
			ml_script_free(s);
		}
		ok(strstr(msg[0], cases[i][1]) != NULL, "with Lua's message: %s", msg[0]);
		is_str(msg[0], msg[1], "the same with plain fields as with views");
	}
	struct ml_script *s = projection("f", "{}", "    s.c = e.meta.c\n");
	ok(feed(s, 1, "{}", "{\"c\":1}") == 0 && feed(s, 2, "{}", NULL) != 0 &&
	       strstr(ml_diag_last(), "attempt to index a nil value (field 'meta')"),
	   "an event without meta: e.meta is nil: %s", ml_diag_last());
	ml_script_free(s);
}

/* Handlers that could keep, change or hand on their event, which must get views. */
static void test_keepers(void)
{
	static const char *const bodies[] = {
	    "s.keep = e",
	    "s.keep = e.data",
	    "local d = e.data s.keep = d",
	    "s.f = s.f or function() return e end",
	    "s.t = tostring(e)",
	    "s.n = #e.data",
	    "s.a = e.data[1]",
	    "local k = 'amount' s.a = e.data[k]",
	    "s[e.data] = true",
	    "s.r = select(2, pcall(rawset, e, 'x', 1))",
	    "s.r = select(2, pcall(function() e.data.x = 1 end))",
	    "for k in pairs(e.data) do s.k = k end",
	    "s.c = e.stream .. tostring(e.data == s)",
	    "local t = { e.stream, e.data } s.t = t",
	    "if e.data < s then end",
	};
	int all = 1;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct ml_script *s = projection("k", "{}", bodies[i]);
		int rc = feed(s, 1, "{\"amount\":1}", NULL) | feed(s, 2, "{\"amount\":2}", NULL);
		(void)rc; /* (some raise: what matters is that they saw a view) */
		if (s == NULL || stats(s).plain != 0) {
			all = 0;
			printf("# given plain fields: %s\n", bodies[i]);
		}
		ml_script_free(s);
	}
	ok(all, "every handler that may keep, write or pass on its event or e.data gets views");

	struct ml_script *s =
	    projection("k", "{}", "if not s.first then s.first = e end s.last = e");
	feed(s, 1, "{\"amount\":1}", NULL);
	feed(s, 2, "{\"amount\":2}", NULL);
	char *st = state_json(s);
	ok(strstr(st, "\"first\":{") && strstr(st, "\"amount\":1}") && strstr(st, "\"amount\":2}"),
	   "a kept event keeps its own values: %s", st);
	free(st);
	ml_script_free(s);

	s = projection("w", "{}", "e.x = 1");
	ok(feed(s, 1, "{}", NULL) != 0 && strstr(ml_diag_last(), "read-only"),
	   "writing to the event still raises: %s", ml_diag_last());
	ml_script_free(s);
}

/* Handlers that only read, with the event's registers reused: plain, and right. */
static void test_readers(void)
{
	static const char *const bodies[] = {
	    "local x = e.data or {} s.x = x.amount",
	    "local d = e.data local a = d.amount d = {} s.t = d s.x = a",
	    "s.x = e.data.amount s.y = e.stream",
	    "if e.data.amount > 1 then s.x = e.data.amount else s.x = -1 end",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct ml_script *s = projection("r", "{}", bodies[i]);
		feed(s, 1, "{\"amount\":1}", NULL);
		feed(s, 2, "{\"amount\":2}", NULL);
		char *st = state_json(s);
		is_int(stats(s).plain, 2, "given plain fields: %s", bodies[i]);
		ok(strstr(st, "\"x\":2") != NULL, "and it read them: %s", st);
		free(st);
		ml_script_free(s);
	}
}

/* Limits hold for what a straight handler calls. */
static void test_limits(void)
{
	struct ml_script *s = projection("mm",
					 "function() return setmetatable({}, { __index = "
					 "function() while true do end end }) end",
					 "s.v = s.missing");
	ok(feed(s, 1, "{}", NULL) != 0 &&
	       strstr(ml_diag_last(), "ran past its instruction budget (1000000 instructions per "
				      "event) at mm:2") != NULL,
	   "a metamethod a straight handler runs into is counted: %s", ml_diag_last());
	ml_script_free(s);

	s = projection("pc", "{}", "s.ok = pcall(function() while true do end end)");
	ok(feed(s, 1, "{}", NULL) != 0 && strstr(ml_diag_last(), "ran past its instruction budget"),
	   "so is a function it calls, caught errors or not: %s", ml_diag_last());
	ml_script_free(s);

	s = projection("gs", "{}", "s.r = ('aaa'):gsub('a', function() while true do end end)");
	ok(feed(s, 1, "{}", NULL) != 0 && strstr(ml_diag_last(), "ran past its instruction budget"),
	   "and Lua that a C function calls back: %s", ml_diag_last());
	ml_script_free(s);

	s = projection("q", "{}", "s.n = (s.n or 0) + e.data.amount");
	ok(feed(s, 1, "{\"amount\":1}", NULL) == 0 && stats(s).unhooked == 1,
	   "a straight handler ran without the hook");
	struct ml_buf b = {0};
	ok(ml_script_query(s, "spin", NULL, 0, &b) != 0 &&
	       strstr(ml_diag_last(), "ran past its instruction budget"),
	   "a query after it is counted: %s", ml_diag_last());
	ml_buf_free(&b);
	ok(feed(s, 2, "{\"amount\":2}", NULL) == 0 && stats(s).unhooked == 2,
	   "and the script goes on without it");
	ml_script_free(s);

	s = projection("mem", "{}", "s.x = (s.x or 'x') .. (s.x or 'x')");
	int rc = 0;
	for (uint64_t i = 1; i <= 40 && rc == 0; i++)
		rc = feed(s, i, "{}", NULL);
	ok(rc != 0 && strstr(ml_diag_last(), "ran out of its memory limit (16 MiB)"),
	   "a straight handler that fills its memory stops at the limit: %s", ml_diag_last());
	struct ml_script_stats st = stats(s);
	ok(st.memory_peak <= st.memory_limit + (1u << 20), "which held: %zu", st.memory_peak);
	ml_script_free(s);
}

int main(void)
{
	test_same_answers();
	test_same_faults();
	test_keepers();
	test_readers();
	test_limits();
	return done_testing();
}
