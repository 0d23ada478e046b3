/*
 * test_script_cache.c - a decider's state cache (runtime/script/cache.c):
 * cached and uncached decisions agree over a run of commands, events appended
 * by others are folded in, a decide that changes its state (and rejects or
 * raises) changes nothing, a fold that raises half way is folded again, and
 * the bounds evict the least recently used streams. Also what a definition
 * asks of the host: `retries`, `snapshot_every`.
 */
#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/script.h>

#include "log_helpers.h"
#include <moonlog/msgpack.h>
#include "unit.h"

static const char account[] =
    "local ml = require 'moonlog'\n"
    "local bad = 0\n"
    "return ml.decider { name = 'account', from = 'account-*',\n"
    "  stream = function(cmd) return 'account-' .. cmd.id end,\n"
    "  init = function() return { balance = 0, log = {} } end,\n"
    "  on = {\n"
    "    Deposited = function(s, e) s.balance = s.balance + e.data.amount end,\n"
    "    Withdrawn = function(s, e) s.balance = s.balance - e.data.amount\n"
    "      s.log[#s.log + 1] = e.version end,\n"
    /* raises the first time only: the next command must fold again from the start */
    "    Glitch = function(s) bad = bad + 1 if bad == 1 then error('glitch') end end,\n"
    "  },\n"
    "  decide = {\n"
    "    Withdraw = function(s, cmd)\n"
    "      if s.balance < cmd.amount then return ml.reject('insufficient funds') end\n"
    "      return { ml.event('Withdrawn', { amount = cmd.amount }) } end,\n"
    /* decide must not change its state; these do, and must change nothing */
    "    Spoil = function(s, cmd) s.balance = -1000 s.log[1] = 'x' return ml.reject('no') end,\n"
    "    Explode = function(s) s.balance = -1000 error('boom') end,\n"
    "    Peek = function(s) return ml.reject('balance', { balance = s.balance }) end,\n"
    "  } }\n";

static struct ml_script *load(size_t cache_streams)
{
	struct ml_script_options o;
	ml_script_options_init(&o);
	o.decider_cache_streams = cache_streams;
	struct ml_script *s = ml_script_load_buffer("account.lua", account, strlen(account), &o);
	if (s == NULL)
		printf("# load failed: %s\n", ml_diag_last());
	return s;
}

static int decide(struct ml_script *s, struct ml_log *log, const char *cmd, int id, int amount,
		  struct ml_script_decision *d)
{
	struct ml_buf a = {0};
	ml_msgpack_put_map(&a, 2);
	ml_msgpack_put_cstr(&a, "id");
	ml_msgpack_put_uint(&a, (uint64_t)id);
	ml_msgpack_put_cstr(&a, "amount");
	ml_msgpack_put_uint(&a, (uint64_t)amount);
	int rc = ml_script_decide(s, log, cmd, a.data, a.len, d);
	ml_buf_free(&a);
	return rc;
}

/* A decision's one event (type and data bytes; keys come in the order of each state's
 * hash, so the encodings of two scripts are compared by field). */
static int event_of(const struct ml_script_decision *d, struct ml_event_in *e)
{
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, d->events.data, d->events.len);
	uint32_t n, m;
	*e = (struct ml_event_in){.stream = d->stream, .stream_len = strlen(d->stream)};
	if (ml_msgpack_get_array(&r, &n) != 0 || n != 1 || ml_msgpack_get_map(&r, &m) != 0)
		return -1;
	for (uint32_t i = 0; i < m; i++) {
		const char *k, *t;
		uint32_t kl, tl;
		const uint8_t *v;
		size_t vl;
		if (ml_msgpack_get_str(&r, &k, &kl) != 0)
			return -1;
		if (kl == 4 && memcmp(k, "type", 4) == 0 && ml_msgpack_get_str(&r, &t, &tl) == 0)
			e->type = t, e->type_len = tl;
		else if (kl == 4 && memcmp(k, "data", 4) == 0 && ml_msgpack_skip(&r, &v, &vl) == 0)
			e->data = v, e->data_len = vl;
		else if (ml_msgpack_skip(&r, NULL, NULL) != 0)
			return -1;
	}
	return 0;
}

/* Appends a decision's one event with its expected version. */
static int append_decision(struct ml_log *log, const struct ml_script_decision *d)
{
	struct ml_event_in e;
	if (event_of(d, &e) != 0)
		return -1;
	struct ml_expect_in x = {d->stream, e.stream_len, (int64_t)d->expected_version};
	struct ml_append req = {.events = &e, .n_events = 1, .expect = &x, .n_expect = 1};
	return ml_log_append(log, &req);
}

static int same(const struct ml_script_decision *a, const struct ml_script_decision *b)
{
	if (strcmp(a->stream, b->stream) != 0 || a->expected_version != b->expected_version ||
	    a->rejected != b->rejected)
		return 0;
	if (a->rejected)
		return strcmp(a->reason, b->reason) == 0;
	struct ml_event_in x, y;
	return event_of(a, &x) == 0 && event_of(b, &y) == 0 && x.type_len == y.type_len &&
	       memcmp(x.type, y.type, x.type_len) == 0 && x.data_len == y.data_len &&
	       memcmp(x.data, y.data, x.data_len) == 0;
}

/* The balance a Peek sees (its rejection's details are {balance = N}). */
static long long peek(struct ml_script *s, struct ml_log *log, int id)
{
	struct ml_script_decision d;
	if (decide(s, log, "Peek", id, 0, &d) != 0)
		return printf("# peek: %s\n", ml_diag_last()), -99999;
	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, d.details.data, d.details.len);
	uint32_t m;
	const char *k;
	uint32_t kl;
	int64_t v = -99999;
	if (ml_msgpack_get_map(&r, &m) == 0 && m == 1 && ml_msgpack_get_str(&r, &k, &kl) == 0)
		ml_msgpack_get_int(&r, &v);
	ml_script_decision_free(&d);
	return (long long)v;
}

static void test_agree(void)
{
	char *dir = unit_tmpdir("cache-agree");
	struct ml_log *log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	struct ml_script *cached = load(100), *plain = load(0);
	for (int id = 0; id < 20; id++) /* 5 deposits of 10 each */
		for (int k = 0; k < 5; k++) {
			char stream[32];
			snprintf(stream, sizeof(stream), "account-%d", id);
			append1(log, stream, NULL, -1);
		}
	int agree = 1, appended = 0, rejected = 0;
	uint32_t seed = 7;
	for (int i = 0; i < 2000 && agree; i++) {
		seed = seed * 1103515245u + 12345u;
		int id = (int)(seed >> 16) % 20, amount = 1 + (int)(seed >> 8) % 7;
		if ((seed >> 4) % 9 == 0) { /* someone else deposits: the cache must see it */
			char stream[32];
			snprintf(stream, sizeof(stream), "account-%d", id);
			append1(log, stream, NULL, -1);
		}
		struct ml_script_decision a, b;
		if (decide(cached, log, "Withdraw", id, amount, &a) != 0 ||
		    decide(plain, log, "Withdraw", id, amount, &b) != 0) {
			printf("# decide: %s\n", ml_diag_last());
			agree = 0;
			break;
		}
		agree = same(&a, &b);
		if (agree && !a.rejected)
			appended += append_decision(log, &a) == 0;
		rejected += a.rejected;
		ml_script_decision_free(&a);
		ml_script_decision_free(&b);
	}
	ok(agree, "2000 cached and uncached decisions agree");
	ok(appended > 100 && rejected > 100, "with %d appended and %d rejected", appended,
	   rejected);
	struct ml_script_cache_stats st;
	ml_script_cache_stats(cached, &st);
	ok(st.misses == 20 && st.hits == 2000 - 20 && st.streams == 20,
	   "one miss per stream, hits after (%llu hits, %llu misses)", (unsigned long long)st.hits,
	   (unsigned long long)st.misses);
	ml_script_cache_stats(plain, &st);
	ok(st.hits == 0 && st.streams == 0 && st.max_streams == 0, "no cache with 0 streams");
	ml_script_free(cached);
	ml_script_free(plain);
	ml_log_close(log);
	rm_rf(dir);
	free(dir);
}

static void test_decide_changes_nothing(void)
{
	char *dir = unit_tmpdir("cache-pure");
	struct ml_log *log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	struct ml_script *s = load(100);
	append1(log, "account-1", NULL, -1);
	struct ml_script_decision d;
	ok(decide(s, log, "Withdraw", 1, 3, &d) == 0 && append_decision(log, &d) == 0,
	   "a withdrawal of 3 from 10");
	ml_script_decision_free(&d);
	is_int(peek(s, log, 1), 7, "the balance is 7");
	ok(decide(s, log, "Spoil", 1, 0, &d) == 0 && d.rejected,
	   "a decide that spoils and rejects");
	ml_script_decision_free(&d);
	is_int(peek(s, log, 1), 7, "leaves the balance at 7");
	ok(decide(s, log, "Explode", 1, 0, &d) != 0 && strstr(ml_diag_last(), "boom"),
	   "a decide that spoils and raises");
	is_int(peek(s, log, 1), 7, "leaves it at 7 too");
	ok(ml_script_fault(s) == NULL, "and the script runs on");

	/* A fold that raises half way: the entry is folded again from the start. */
	struct ml_event_in g[2] = {ev("account-1", "Glitch", NULL),
				   ev("account-1", "Deposited", NULL)};
	struct ml_append req = {.events = g, .n_events = 2};
	ok(ml_log_append(log, &req) == 0, "a Glitch and a deposit of 10 by someone else");
	ok(decide(s, log, "Withdraw", 1, 1, &d) != 0 && strstr(ml_diag_last(), "glitch"),
	   "the fold raises at the Glitch");
	is_int(peek(s, log, 1), 17, "the next command folds from the start: 17");
	ml_script_free(s);
	ml_log_close(log);
	rm_rf(dir);
	free(dir);
}

static void test_bounds(void)
{
	char *dir = unit_tmpdir("cache-bounds");
	struct ml_log *log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	struct ml_script *s = load(2);
	for (int id = 1; id <= 3; id++) {
		char stream[32];
		snprintf(stream, sizeof(stream), "account-%d", id);
		for (int k = 0; k < id; k++)
			append1(log, stream, NULL, -1);
	}
	int right = 1;
	for (int round = 0; round < 3; round++)
		for (int id = 1; id <= 3; id++)
			right &= peek(s, log, id) == 10 * id;
	ok(right, "three streams through a cache of two: every state right");
	struct ml_script_cache_stats st;
	ml_script_cache_stats(s, &st);
	ok(st.streams == 2 && st.evictions == 7 && st.hits == 0,
	   "least recently used out first (%zu held, %llu evicted)", st.streams,
	   (unsigned long long)st.evictions);
	is_int(peek(s, log, 3), 30, "the most recent is held");
	ml_script_cache_stats(s, &st);
	is_int(st.hits, 1, "and hit");
	ml_script_free(s);

	/* The memory bound: a tiny one keeps the cache trimmed, and answers stay right. */
	struct ml_script_options o;
	ml_script_options_init(&o);
	o.decider_cache_memory = 1;
	s = ml_script_load_buffer("account.lua", account, strlen(account), &o);
	right = 1;
	for (int round = 0; round < 3; round++)
		for (int id = 1; id <= 3; id++)
			right &= peek(s, log, id) == 10 * id;
	ml_script_cache_stats(s, &st);
	ok(right && st.streams <= 2 && st.evictions > 0 && st.max_memory == 1,
	   "past the memory bound it trims (%zu held, %llu evicted)", st.streams,
	   (unsigned long long)st.evictions);
	ml_script_free(s);
	ml_log_close(log);
	rm_rf(dir);
	free(dir);
}

/* The stream is checked against `from` in C, a miss gets def:target's message; and what
 * the definition asks of the host (retries, snapshot_every). */
static void test_target(void)
{
	static const char src[] =
	    "local ml = require 'moonlog'\n"
	    "return ml.decider { name = 'd', from = 'account-*',\n"
	    "  stream = function(cmd) return cmd.id == 1 and 'other-1' or 7 end,\n"
	    "  on = {}, decide = { Peek = function() return {} end } }\n";
	char *dir = unit_tmpdir("cache-target");
	struct ml_log *log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	struct ml_script *s = ml_script_load_buffer("d.lua", src, strlen(src), NULL);
	struct ml_script_decision d;
	ok(s && decide(s, log, "Peek", 1, 0, &d) != 0 &&
	       strstr(ml_diag_last(), "returned \"other-1\", which is not in from (account-*)"),
	   "a stream outside from");
	ok(s && decide(s, log, "Peek", 2, 0, &d) != 0 &&
	       strstr(ml_diag_last(), "stream(cmd) must return a stream name"),
	   "a stream that is not a string");
	is_int(ml_script_retries(s), 3, "retries: 3 when the definition does not say");
	ml_script_free(s);
	static const char src2[] = "local ml = require 'moonlog'\n"
				   "return ml.decider { name = 'd', from = 'a-*', retries = 0,\n"
				   "  stream = function() return 'a-1' end, on = {},\n"
				   "  decide = { Peek = function() return {} end } }\n";
	s = ml_script_load_buffer("d.lua", src2, strlen(src2), NULL);
	is_int(s ? ml_script_retries(s) : -1, 0, "retries = 0");
	is_int(s ? ml_script_snapshot_every(s) : 9, 0, "no snapshot_every for a decider");
	ml_script_free(s);
	static const char src3[] =
	    "local ml = require 'moonlog'\n"
	    "return ml.projection { name = 'p', from = 'a-*', snapshot_every = 50,\n"
	    "  on = { X = function() end } }\n";
	s = ml_script_load_buffer("p.lua", src3, strlen(src3), NULL);
	is_int(s ? ml_script_snapshot_every(s) : 0, 50, "snapshot_every = 50");
	is_int(s ? ml_script_retries(s) : 9, 0, "no retries for a projection");
	ml_script_free(s);
	ml_log_close(log);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	test_target();
	test_agree();
	test_decide_changes_nothing();
	test_bounds();
	return done_testing();
}
