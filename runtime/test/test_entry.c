/*
 * Journal entries (log/entry.c, entry1.c): a batch encoded in format 2 decodes
 * to the same batch, ids, expected versions and time included; an entry in
 * format 1, as an older moonlog wrote it into a JetStream stream, applies to
 * the same events as the same batch in format 2, byte for byte in the segment
 * files; malformed format-2 bytes are refused as no entry, each with its
 * reason, at every length they may be cut to; and the bench's event takes the
 * bytes docs/log.md gives.
 */
#include <signal.h>
#include <unistd.h>

#include <moonlog/log.h>
#include <moonlog/log_writer.h>

#include "log/entry.h"
#include "test/log_compare.h"
#include "test/log_helpers.h"
#include "test/unit.h"

#define T0 1700000000000LL

/*
 * A batch of three events on acct-1 with the expected version no_stream, made
 * by an older moonlog's ml_log_entry_encode (format 1): "Opened" with a made id
 * (0190d6a3-7c2e-7abc-9def-0123456789ab), meta {k = 1} and data {}; then two
 * "Deposited" with the client ids "d-1" and 0190d6a3-7c2e-7def-8123-456789abcdef,
 * data {a = 10} and {a = 20}; time T0.
 */
static const char FORMAT1[] = "\x01\x00\x00\x00\x03\x00\x00\x00\x01\x00\x00\x00\x00\x68\xe5\xcf"
			      "\x8b\x01\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00\x00\x61\x63\x63"
			      "\x74\x2d\x31\x01\x06\x06\x24\x04\x00\x00\x00\x01\x00\x00\x00\x61"
			      "\x63\x63\x74\x2d\x31\x4f\x70\x65\x6e\x65\x64\x30\x31\x39\x30\x64"
			      "\x36\x61\x33\x2d\x37\x63\x32\x65\x2d\x37\x61\x62\x63\x2d\x39\x64"
			      "\x65\x66\x2d\x30\x31\x32\x33\x34\x35\x36\x37\x38\x39\x61\x62\x81"
			      "\xa1\x6b\x01\x80\x00\x06\x09\x03\x00\x00\x00\x00\x04\x00\x00\x00"
			      "\x61\x63\x63\x74\x2d\x31\x44\x65\x70\x6f\x73\x69\x74\x65\x64\x64"
			      "\x2d\x31\x81\xa1\x61\x0a\x00\x06\x09\x24\x00\x00\x00\x00\x04\x00"
			      "\x00\x00\x61\x63\x63\x74\x2d\x31\x44\x65\x70\x6f\x73\x69\x74\x65"
			      "\x64\x30\x31\x39\x30\x64\x36\x61\x33\x2d\x37\x63\x32\x65\x2d\x37"
			      "\x64\x65\x66\x2d\x38\x31\x32\x33\x2d\x34\x35\x36\x37\x38\x39\x61"
			      "\x62\x63\x64\x65\x66\x81\xa1\x61\x14";

#define MADE_ID	  "0190d6a3-7c2e-7abc-9def-0123456789ab"
#define CLIENT_ID "0190d6a3-7c2e-7def-8123-456789abcdef"

static struct ml_event_in event(const char *stream, const char *type, const char *id,
				const char *meta, size_t meta_len, const char *data,
				size_t data_len)
{
	return (struct ml_event_in){
	    stream, strlen(stream), type, strlen(type), id, id ? strlen(id) : 0,
	    data,   data_len,	    meta, meta_len};
}

/* The batch FORMAT1 holds, encoded by this moonlog (format 2). */
static struct ml_buf format1_batch_now(void)
{
	struct ml_event_in evs[3] = {
	    event("acct-1", "Opened", NULL, "\x81\xa1k\x01", 4, "\x80", 1),
	    event("acct-1", "Deposited", "d-1", NULL, 0,
		  "\x81\xa1"
		  "a\x0a",
		  4),
	    event("acct-1", "Deposited", CLIENT_ID, NULL, 0,
		  "\x81\xa1"
		  "a\x14",
		  4),
	};
	struct ml_expect_in x = {"acct-1", 6, ML_EXPECT_NO_STREAM};
	char ids[3][37] = {MADE_ID};
	struct ml_append req = {.events = evs, .n_events = 3, .expect = &x, .n_expect = 1};
	struct ml_buf b = {0};
	ml_log_entry_encode(&req, ids, T0, &b);
	return b;
}

struct applied {
	struct ml_append req;
	int done;
};

static void applied_done(struct ml_append *r)
{
	__atomic_store_n(&((struct applied *)r->arg)->done, 1, __ATOMIC_RELEASE);
}

static void apply_wait(struct ml_log *log, const void *entry, size_t len, uint64_t seq,
		       struct ml_append *out)
{
	struct applied a = {.req = {.done = applied_done}};
	a.req.arg = &a;
	if (ml_log_apply(log, &a.req, entry, len, seq) == 0)
		while (!__atomic_load_n(&a.done, __ATOMIC_ACQUIRE))
			usleep(100);
	*out = a.req;
}

static struct ml_log *open_node(const char *dir)
{
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = dir;
	o.fsync = ML_FSYNC_NEVER;
	return ml_log_open(&o);
}

static int has(const void *p, size_t n, const char *want, size_t want_len)
{
	return n == want_len && (n == 0 || memcmp(p, want, n) == 0);
}

/* The stored events of the FORMAT1 batch, field by field. */
static int stored_as_given(const struct ml_event *e, void *arg)
{
	int *right = arg;
	static const struct {
		const char *type, *id, *data, *meta;
		int made;
	} want[3] = {
	    {"Opened", MADE_ID, "\x80", "\x81\xa1k\x01", 1},
	    {"Deposited", "d-1",
	     "\x81\xa1"
	     "a\x0a",
	     "", 0},
	    {"Deposited", CLIENT_ID,
	     "\x81\xa1"
	     "a\x14",
	     "", 0},
	};
	size_t i = (size_t)e->position - 1;
	*right &= i < 3 && has(e->stream, e->stream_len, "acct-1", 6) &&
		  has(e->type, e->type_len, want[i].type, strlen(want[i].type)) &&
		  has(e->id, e->id_len, want[i].id, strlen(want[i].id)) &&
		  has(e->data, e->data_len, want[i].data, strlen(want[i].data)) &&
		  has(e->meta, e->meta_len, want[i].meta, strlen(want[i].meta)) &&
		  e->id_generated == want[i].made && e->time == T0 && e->version == i + 1;
	return 0;
}

static void test_format1(const char *dir)
{
	char a_dir[300], b_dir[300];
	snprintf(a_dir, sizeof(a_dir), "%s/a", dir);
	snprintf(b_dir, sizeof(b_dir), "%s/b", dir);
	struct ml_log *a = open_node(a_dir), *b = open_node(b_dir);
	struct ml_buf now = format1_batch_now();
	ok(now.len < sizeof(FORMAT1) - 1, "format 2 takes %zu bytes where format 1 took %zu",
	   now.len, sizeof(FORMAT1) - 1);
	struct ml_append oa, ob;
	apply_wait(a, FORMAT1, sizeof(FORMAT1) - 1, 1, &oa);
	apply_wait(b, now.data, now.len, 1, &ob);
	ok(oa.err == ML_OK && ob.err == ML_OK && oa.first_position == 1 && oa.last_position == 3 &&
	       ob.last_position == 3,
	   "a format-1 entry applies as the same batch in format 2 does: %s", oa.errmsg);
	int right = 1;
	ml_log_read_all(a, 1, 0, stored_as_given, &right);
	ok(right && ml_log_head(a) == 3,
	   "its events hold the made id, the client's ids, meta, data and time it gave");
	apply_wait(a, FORMAT1, sizeof(FORMAT1) - 1, 2, &oa);
	apply_wait(b, now.data, now.len, 2, &ob);
	ok(oa.err == ML_OK && oa.duplicate && oa.first_position == 1 && ob.err == ML_OK &&
	       ob.duplicate && ob.first_position == 1,
	   "applied again, both are a duplicate of positions 1 to 3, made id included");
	ok(same_events(a, b), "both logs hold the same events");
	ml_log_close(a);
	ml_log_close(b);
	ok(same_records(a_dir, b_dir), "the segment files hold the same records, byte for byte");
	ml_buf_free(&now);
}

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || (a && b && memcmp(a, b, alen) == 0));
}

/* 1 if the decoded entry d is the batch req with made ids `made` (at the events without an id). */
static int decodes_to(const struct ml_entry *d, const struct ml_append *req, char (*made)[37],
		      int64_t time)
{
	int same = d->n_events == req->n_events && d->n_expect == req->n_expect &&
		   d->system == req->system && d->time == time;
	for (size_t i = 0; same && i < d->n_expect; i++) {
		const struct ml_expect_in *x = &d->expect[i], *y = &req->expect[i];
		same = same_bytes(x->stream, x->stream_len, y->stream, y->stream_len) &&
		       x->expected == y->expected;
	}
	for (size_t i = 0; same && i < d->n_events; i++) {
		const struct ml_event_in *e = &d->events[i], *f = &req->events[i];
		same = same_bytes(e->stream, e->stream_len, f->stream, f->stream_len) &&
		       same_bytes(e->type, e->type_len, f->type, f->type_len) &&
		       same_bytes(e->id, e->id_len, f->id, f->id_len) &&
		       same_bytes(e->meta, e->meta_len, f->meta, f->meta_len) &&
		       same_bytes(e->data, e->data_len, f->data, f->data_len) &&
		       (f->id_len || strcmp(d->ids[i], made[i]) == 0);
	}
	return same;
}

/* Every shape format 2 spells differently comes back as it went. */
static void test_round_trip(void)
{
	char long_id[256], long_stream[201];
	memset(long_id, 'i', 255), long_id[255] = '\0';
	memset(long_stream, 's', 200), long_stream[200] = '\0';
	static const char data[300] = {'\xc4', 0x7f}; /* a data longer than 127 bytes */
	struct ml_event_in evs[] = {
	    event("a-1", "Opened", NULL, NULL, 0, NULL, 0),
	    event("a-1", "Opened", CLIENT_ID, "\x80", 1, "\x01", 1), /* same stream and type */
	    event("a-1", "Moved", "0190D6A3-7C2E-7DEF-8123-456789ABCDEF", NULL, 0, data, 129),
	    event("b-2", "Moved", long_id, NULL, 0, data, 300), /* same type, other stream */
	    event(long_stream, "Closed", "x", "\x81\xa1k\x01", 4, NULL, 0),
	    event(long_stream, "Closed", NULL, NULL, 0, "\xc0", 1),
	};
	enum { N = sizeof(evs) / sizeof(evs[0]) };
	struct ml_expect_in x[] = {
	    {"a-1", 3, ML_EXPECT_ANY},
	    {"b-2", 3, ML_EXPECT_EXISTS},
	    {long_stream, 200, ML_EXPECT_NO_STREAM},
	    {"c-3", 3, (int64_t)1 << 40},
	};
	char made[N][37];
	for (int i = 0; i < N; i++)
		ml_uuid7(made[i]);
	static const int64_t times[] = {T0, 0, -1, INT64_MIN, INT64_MAX};
	/* from which event, how many, with how many expected versions: the first event's id
	 * made (the time kept beside it) or not, one event alone, none */
	static const size_t shapes[][3] = {
	    {0, N, 4}, {1, N - 1, 2}, {2, 1, 0}, {5, 1, 0}, {0, 0, 1}};
	int all = 1;
	for (size_t t = 0; t < sizeof(times) / sizeof(times[0]); t++)
		for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
			const size_t *sh = shapes[s];
			struct ml_append req = {.events = evs + sh[0],
						.n_events = sh[1],
						.expect = x,
						.n_expect = sh[2],
						.system = (int)(t % 2)};
			struct ml_buf b = {0};
			ml_log_entry_encode(&req, made + sh[0], times[t], &b);
			struct ml_entry d;
			all &= ml_entry_decode(b.data, b.len, &d) == 0 &&
			       decodes_to(&d, &req, made + sh[0], times[t]);
			ml_entry_free(&d);
			ml_buf_free(&b);
		}
	ok(all,
	   "events with and without ids, meta and data, repeated streams and types, every "
	   "kind of expected version, the system flag and any time, in batches of several events, "
	   "one or none: decoded as encoded");

	/* An id in ml_uuid7's form costs 16 bytes; the same id in capitals goes as given. */
	struct ml_event_in lower = event("a-1", "Opened", CLIENT_ID, NULL, 0, NULL, 0);
	struct ml_event_in upper = lower;
	upper.id = "0190D6A3-7C2E-7DEF-8123-456789ABCDEF";
	struct ml_append rl = {.events = &lower, .n_events = 1},
			 ru = {.events = &upper, .n_events = 1};
	struct ml_buf bl = {0}, bu = {0};
	ml_log_entry_encode(&rl, made, T0, &bl);
	ml_log_entry_encode(&ru, made, T0, &bu);
	is_int((int64_t)bu.len - (int64_t)bl.len, 21,
	       "a client's id in lower-case UUID form travels in 16 bytes, in capitals in 37");
	ml_buf_free(&bl);
	ml_buf_free(&bu);
}

/* The bench's event (runtime/cli/bench_net.c): bench-1, Measured, a made id, 100 bytes. */
static void test_bench_event(void)
{
	char data[100] = {0}, made[1][37];
	ml_uuid7(made[0]);
	struct ml_event_in e = event("bench-1", "Measured", NULL, NULL, 0, data, sizeof(data));
	struct ml_append req = {.events = &e, .n_events = 1};
	struct ml_buf b = {0};
	ml_log_entry_encode(&req, made, ml_time_ms(), &b);
	is_int(b.len, 138, "the bench's event alone in its batch takes 138 bytes (format 1: 183)");
	ml_buf_free(&b);
}

/* -1 with ML_ERR_CORRUPT and "(why)" in the message. */
static int refused(const void *bytes, size_t len, const char *why)
{
	struct ml_entry d;
	int rc = ml_entry_decode(bytes, len, &d);
	ml_entry_free(&d);
	return rc == -1 && ml_diag_code() == ML_ERR_CORRUPT &&
	       strstr(ml_diag_last(), "it is not a batch this moonlog can read (") &&
	       (why == NULL || strstr(ml_diag_last(), why));
}

static void test_malformed(const char *dir)
{
	struct ml_buf good = format1_batch_now();
	int cut = 1;
	for (size_t n = 0; n < good.len; n++)
		cut &= refused(good.data, n, NULL);
	ok(cut, "a format-2 entry cut at any of its %zu lengths is refused", good.len);
	struct ml_buf more = {0};
	ml_buf_add(&more, good.data, good.len);
	ml_buf_add(&more, "", 1);
	ok(refused(more.data, more.len, "bytes after its last event"),
	   "so is one with a byte more");
	ml_buf_free(&more);

	/* Hand-made: format 2, flags, events, expected versions, time 0; then one event. */
	static const struct {
		const char *bytes;
		size_t len;
		const char *why;
	} cases[] = {
#define CASE(b, why) {b, sizeof(b) - 1, why}
	    CASE("\x03\x00\x01\x00\x00", "an unknown format"),
	    CASE("\x02\x08\x01\x00\x00" /**/ "\x20\x01s\x01t\x00\x01\xc0",
		 "flags this moonlog does not know"),
	    CASE("\x02\x02\x01\x00\x00" /**/ "\x00\x01s\x01t\x01x",
		 "a time kept in a first id it does not have"),
	    CASE("\x02\x06\x00" /**/ "\x01\x01s\x01t\x24" /**/ MADE_ID,
		 "a time kept in a first id it does not have"),
	    CASE("\x02\x04\x00" /**/ "\x00\x01s\x01t\x01x\x00", "bytes after its last event"),
	    CASE("\x02\x00\x01\x00\x00" /**/ "\x60\x01s\x01t\x00\x01\xc0",
		 "an event with flags this moonlog does not know"),
	    CASE("\x02\x00\x01\x00\x00" /**/ "\x04\x01t\x00", "a first event that names the one"),
	    CASE("\x02\x00\x01\x00\x00" /**/ "\x01\x01s\x01t\x03"
		 "abc",
		 "a made id that is not 36 bytes long"),
	    CASE("\x02\x00\x01\x00\x00" /**/ "\x03\x01s\x01t" /**/ "0123456789abcde",
		 "cut short in an event"),
	    CASE("\x02\x00\x01\x00\x00" /**/ "\x00\x05s\x01t\x00", "cut short in an event"),
	    CASE("\x02\x00\x01\x00\x00" /**/ "\x20\x01s\x01t\x00\xff\xff\xff\xff\x0f",
		 "cut short in an event"),
	    CASE("\x02\x00\x64\x00\x00" /**/ "\x00\x01s\x01t\x00", "more events than bytes"),
	    CASE("\x02\x00\x00\x01\x00" /**/ "\x01s", "cut short in an expected version"),
	    CASE("\x02\x00\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01\x00\x00",
		 "shorter than its header"),
	};
	int each = 1;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (!refused(cases[i].bytes, cases[i].len, cases[i].why)) {
			printf("# case %zu: %s\n", i, ml_diag_last());
			each = 0;
		}
	ok(each, "%zu kinds of malformed bytes are refused, each with its reason",
	   sizeof(cases) / sizeof(cases[0]));

	/* Through ml_log_apply, as every node meets them: refused alike, the log unchanged. */
	struct ml_log *log = open_node(dir);
	struct ml_append out;
	apply_wait(log, cases[2].bytes, cases[2].len, 7, &out);
	ok(out.err == ML_ERR_CORRUPT && strstr(out.errmsg, "journal entry 7: it is not a batch") &&
	       ml_log_head(log) == 0,
	   "applied, it is refused and nothing is written: %s", out.errmsg);
	apply_wait(log, good.data, good.len, 8, &out);
	ok(out.err == ML_OK && ml_log_head(log) == 3, "and the next good entry applies");
	ml_log_close(log);
	ml_buf_free(&good);
}

/*
 * A batch holds at most ML_BATCH_MAX_EVENTS events, from a client or in another node's
 * entry: an entry that claims more is refused before anything is allocated for them.
 */
static void test_batch_cap(const char *dir)
{
	struct ml_buf hostile = {0};
	ml_buf_add(&hostile, "\x02\x00", 2); /* format 2, no flags: the counts follow */
	ml_buf_add_varint(&hostile, ML_BATCH_MAX_EVENTS + 1);
	ml_buf_add_varint(&hostile, 0);
	ml_buf_add_varint(&hostile, 0); /* time */
	ml_buf_reserve(&hostile, 2 * (ML_BATCH_MAX_EVENTS + 1));
	memset((char *)hostile.data + hostile.len, 0, 2 * (ML_BATCH_MAX_EVENTS + 1));
	hostile.len += 2 * (ML_BATCH_MAX_EVENTS + 1); /* bytes enough for that many events */
	ok(refused(hostile.data, hostile.len, "more events than a batch may hold"),
	   "an entry that claims %u events is refused by its count: %s", ML_BATCH_MAX_EVENTS + 1,
	   ml_diag_last());
	ml_buf_free(&hostile);

	struct ml_log *log = open_node(dir);
	size_t n = ML_BATCH_MAX_EVENTS + 1;
	struct ml_event_in *evs = ml_xcalloc(n, sizeof(*evs));
	for (size_t i = 0; i < n; i++)
		evs[i] = event("many", "Tick", NULL, NULL, 0, NULL, 0);
	struct ml_append req = {.events = evs, .n_events = n};
	ok(ml_log_append(log, &req) != 0 && req.err == ML_ERR_REFUSED &&
	       strstr(req.errmsg, "over the maximum of 100000; split it") && ml_log_head(log) == 0,
	   "a local batch of as many is refused, nothing written: %s", req.errmsg);
	req = (struct ml_append){.events = evs, .n_events = n - 1};
	ok(ml_log_append(log, &req) == 0 && req.err == ML_OK && ml_log_head(log) == n - 1,
	   "one of %zu events is written", n - 1);
	free(evs);
	ml_log_close(log);
}

int main(void)
{
	signal(SIGXFSZ, SIG_IGN);
	test_round_trip();
	test_bench_event();
	static const struct unit_dir_test tests[] = {
	    {"entry-format1", test_format1},
	    {"entry-malformed", test_malformed},
	    {"entry-batch-cap", test_batch_cap},
	};
	run_in_tmpdirs(tests, sizeof(tests) / sizeof(tests[0]));
	return done_testing();
}
