/* The log: appends, reads, versions, duplicates, batches, reopen, segments, faults, kicks. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <moonlog/codec.h>
#include <moonlog/log.h>

#include "log/faults.h"
#include "test/log_helpers.h"
#include "test/unit.h"

static void test_append_read(const char *dir)
{
	struct ml_log *log = open_log(dir, 0);
	ok(log != NULL, "a new log opens");
	is_int(ml_log_head(log), 0, "an empty log's head is 0");
	is_int(append1(log, "account-1", NULL, ML_EXPECT_NO_STREAM), 1, "first append at 1");
	is_int(append1(log, "account-2", NULL, ML_EXPECT_ANY), 2, "second append at 2");
	is_int(append1(log, "account-1", NULL, 1), 3, "expected version 1 matches");
	is_int(append1(log, "account-1", NULL, 1), 0, "a stale expected version is refused");
	is_int(ml_diag_code(), ML_ERR_CONFLICT, "as a conflict");
	ok(strstr(ml_diag_last(), "it is 2") != NULL, "naming the actual version: %s",
	   ml_diag_last());
	is_int(append1(log, "account-9", NULL, ML_EXPECT_EXISTS), 0, "exists on a new stream");
	is_int(append1(log, "account-2", NULL, ML_EXPECT_NO_STREAM), 0, "no_stream on an old one");
	is_int(ml_log_head(log), 3, "refused appends wrote nothing");
	is_int(ml_log_stream_version(log, "account-1", 9), 2, "account-1 is at version 2");

	struct collect c = {0};
	is_int(ml_log_read_stream(log, "account-1", 9, 0, 0, 0, collect_fn, &c), 2, "read stream");
	ok(c.pos[0] == 1 && c.pos[1] == 3 && c.ver[1] == 2, "positions 1, 3; versions 1, 2");
	memset(&c, 0, sizeof(c));
	ml_log_read_stream(log, "account-1", 9, 0, 1, 1, collect_fn, &c);
	ok(c.n == 1 && c.pos[0] == 3, "backwards with limit 1 gives the last event");
	memset(&c, 0, sizeof(c));
	ml_log_read_all(log, 2, 0, collect_fn, &c);
	ok(c.n == 2 && c.pos[0] == 2 && c.pos[1] == 3, "$all from 2");
	ml_log_close(log);

	log = open_log(dir, 0);
	is_int(ml_log_head(log), 3, "reopened: the head is kept");
	is_int(ml_log_stream_version(log, "account-1", 9), 2, "reopened: versions are kept");
	is_int(append1(log, "account-1", NULL, 2), 4, "and appends go on");
	ml_log_close(log);
}

static void test_duplicates(const char *dir)
{
	struct ml_log *log = open_log(dir, 0);
	uint64_t first = append1(log, "order-1", "id-a", ML_EXPECT_ANY);
	ok(first > 0, "an append with an id");
	struct ml_event_in e = ev("order-1", "Placed", "id-a");
	struct ml_expect_in x = {"order-1", 7, 5}; /* a wrong expected version */
	struct ml_append req = {.events = &e, .n_events = 1, .expect = &x, .n_expect = 1};
	is_int(ml_log_append(log, &req), 0, "the same id again succeeds, whatever is expected");
	ok(req.duplicate && req.first_position == first, "returning the stored position");
	is_int(ml_log_stream_version(log, "order-1", 7), 1, "and writes nothing");
	is_int(append1(log, "order-2", "id-a", ML_EXPECT_ANY), first + 1,
	       "the same id in another stream is another event");

	struct ml_event_in two[2] = {ev("order-1", "Placed", "id-a"),
				     ev("order-1", "Paid", "id-b")};
	struct ml_append mixed = {.events = two, .n_events = 2};
	ok(ml_log_append(log, &mixed) != 0 && ml_diag_code() == ML_ERR_REFUSED,
	   "a batch partly appended before is refused: %s", ml_diag_last());
	ml_log_close(log);
	log = open_log(dir, 0);
	struct ml_append again = {.events = &e, .n_events = 1};
	ok(ml_log_append(log, &again) == 0 && again.duplicate && again.first_position == first,
	   "ids are remembered across a reopen");
	ml_log_close(log);
}

static void test_retries(const char *dir)
{
	struct ml_log *log = open_log(dir, 0);
	/* a batch with a client id and a generated one can be retried */
	struct ml_event_in two[2] = {ev("cart-1", "Added", "add-1"), ev("cart-1", "Priced", NULL)};
	uint64_t pos[2], pos2[2];
	struct ml_append a = {.events = two, .n_events = 2, .positions = pos};
	ok(ml_log_append(log, &a) == 0, "a batch mixing a client id and a generated one");
	struct ml_append b = {.events = two, .n_events = 2, .positions = pos2};
	ok(ml_log_append(log, &b) == 0 && b.duplicate && pos2[0] == pos[0] && pos2[1] == pos[1],
	   "its retry is a duplicate with the stored positions: %s", b.errmsg);
	two[1].type = "Discounted";
	two[1].type_len = 10;
	struct ml_append c = {.events = two, .n_events = 2};
	ok(ml_log_append(log, &c) != 0 && ml_diag_code() == ML_ERR_REFUSED,
	   "a different batch reusing the id is refused: %s", ml_diag_last());

	/* a failed write does not make the log forget older ids */
	append1(log, "w-1", "a", ML_EXPECT_ANY);
	append1(log, "w-1", "b", ML_EXPECT_ANY);
	append1(log, "w-1", "c", ML_EXPECT_ANY);
	uint64_t head = ml_log_head(log);
	ml_log_inject_fault(log, 1, ENOSPC);
	ok(append1(log, "w-1", "d", ML_EXPECT_ANY) == 0, "a write fails");
	struct ml_event_in again = ev("w-1", "Deposited", "b");
	struct ml_append r = {.events = &again, .n_events = 1};
	ok(ml_log_append(log, &r) == 0 && r.duplicate, "an id stored before it is still known");
	is_int(ml_log_head(log), head, "and nothing was written twice");

	struct collect col = {0};
	ml_log_read_all(log, 2, UINT64_MAX, collect_fn, &col);
	is_int(col.n, (int)head - 1, "a limit of UINT64_MAX reads to the head");
	ml_log_close(log);
}

static void test_batches(const char *dir)
{
	struct ml_log *log = open_log(dir, 0);
	struct ml_event_in evs[3] = {ev("a-1", "X", NULL), ev("b-1", "Y", NULL),
				     ev("a-1", "Z", NULL)};
	struct ml_expect_in xs[2] = {{"a-1", 3, 0}, {"b-1", 3, 0}};
	uint64_t pos[3], ver[3];
	struct ml_append req = {.events = evs,
				.n_events = 3,
				.expect = xs,
				.n_expect = 2,
				.positions = pos,
				.versions = ver};
	is_int(ml_log_append(log, &req), 0, "a batch over two streams");
	ok(pos[0] + 1 == pos[1] && pos[1] + 1 == pos[2], "consecutive positions");
	ok(ver[0] == 1 && ver[1] == 1 && ver[2] == 2, "per-stream versions 1, 1, 2");
	xs[1].expected = 5;
	uint64_t head = ml_log_head(log);
	ok(ml_log_append(log, &req) != 0, "one stale guard fails the whole batch");
	is_int(ml_log_head(log), head, "and nothing of it is written");
	is_int(ml_log_stream_version(log, "a-1", 3), 2, "a-1 untouched");
	ml_log_close(log);
}

struct times {
	int n, made, same;
	int64_t first;
	char made_at[14]; /* the first made id's time: its first 13 characters */
};

static int times_fn(const struct ml_event *e, void *arg)
{
	struct times *t = arg;
	if (t->n++ == 0)
		t->first = e->time;
	t->same &= e->time == t->first;
	if (e->id_generated && t->made++ == 0)
		memcpy(t->made_at, e->id, 13);
	else if (e->id_generated)
		t->same &= memcmp(t->made_at, e->id, 13) == 0;
	return 0;
}

/* A batch has one time, and the ids the log makes for it are made with one reading of the
 * clock: they hold the same millisecond. */
static void test_made_ids(const char *dir)
{
	struct ml_log *log = open_log(dir, 0);
	struct ml_event_in evs[3] = {ev("a-1", "X", NULL), ev("b-1", "Y", "given-1"),
				     ev("a-1", "Z", NULL)};
	struct ml_append req = {.events = evs, .n_events = 3};
	int64_t before = ml_time_ms();
	is_int(ml_log_append(log, &req), 0, "a batch with two ids to make");
	int64_t after = ml_time_ms();
	struct times t = {.same = 1};
	ml_log_read_all(log, 1, 0, times_fn, &t);
	ok(t.n == 3 && t.made == 2 && t.same, "its events have one time, its made ids one too");
	ok(t.first >= before && t.first <= after, "the time it was appended");
	ml_log_close(log);
}

static void test_bad_input(const char *dir)
{
	struct ml_log *log = open_log(dir, 0);
	uint64_t head = ml_log_head(log);
	struct {
		const char *stream, *type, *what;
	} bad[] = {
	    {"", "T", "an empty stream name"},
	    {"$system", "T", "a reserved stream name"},
	    {"a\x01"
	     "b",
	     "T", "a control character"},
	    {"a\xff"
	     "b",
	     "T", "invalid UTF-8"},
	    {"s", "", "an empty type"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ml_event_in e = ev(bad[i].stream, bad[i].type, NULL);
		struct ml_append req = {.events = &e, .n_events = 1};
		ok(ml_log_append(log, &req) != 0 && ml_diag_code() == ML_ERR_USAGE,
		   "refuses %s: %s", bad[i].what, ml_diag_last());
	}
	/* A bad byte at each place of a 17-byte name: the first two words are checked as
	 * words, the last byte alone; every place must still be seen. */
	static const char bad_bytes[] = {0x01, 0x1f, 0x7f, (char)0x80, (char)0xff};
	int refused = 0, tried = 0;
	for (size_t b = 0; b < sizeof(bad_bytes); b++)
		for (int at = 0; at < 17; at++, tried++) {
			char name[18];
			memset(name, 'a', 17);
			name[17] = 0;
			name[at] = bad_bytes[b];
			struct ml_event_in e = ev(name, "T", NULL);
			struct ml_append req = {.events = &e, .n_events = 1};
			refused += ml_log_append(log, &req) != 0 && ml_diag_code() == ML_ERR_USAGE;
		}
	is_int(refused, tried, "refuses a control character or a bad byte at any place of a name");
	char printable[96];
	for (int c = 0x20; c < 0x7f; c++)
		printable[c - 0x20] = (char)c;
	printable[95] = 0;
	const char *good[] = {printable, "\xc3\xbcnic\xc3\xb6\x64\x65-stream-with-a-long-name",
			      "account-1234567\xc3\xa9"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct ml_event_in e = ev(good[i], "T", NULL);
		struct ml_append req = {.events = &e, .n_events = 1};
		ok(ml_log_append(log, &req) == 0, "takes a name of printable ASCII or UTF-8 (%zu)",
		   i);
	}
	struct ml_event_in c1 = ev("abcdefgh\xc2\x85", "T", NULL);
	struct ml_append c1req = {.events = &c1, .n_events = 1};
	ok(ml_log_append(log, &c1req) != 0, "refuses a C1 control character (U+0085) after a word");
	head += 3;
	char longname[300];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[299] = '\0';
	struct ml_event_in e = ev(longname, "T", NULL);
	struct ml_append req = {.events = &e, .n_events = 1};
	ok(ml_log_append(log, &req) != 0, "refuses a 299-byte name");
	e = ev("s", "T", NULL);
	e.data = "\x92\x01";
	e.data_len = 2;
	ok(ml_log_append(log, &req) != 0, "refuses truncated msgpack data");
	static char big[(1 << 20) + 10];
	big[0] = (char)0xc6; /* bin32 of 1 MiB + 5 */
	big[1] = 0, big[2] = 0x10, big[3] = 0, big[4] = 5;
	e.data = big;
	e.data_len = sizeof(big);
	ok(ml_log_append(log, &req) != 0 && ml_diag_code() == ML_ERR_REFUSED,
	   "refuses an event over 1 MiB: %s", ml_diag_last());
	struct ml_event_in sys = ev("$parked-x", "T", NULL);
	struct ml_append sreq = {.events = &sys, .n_events = 1, .system = 1};
	ok(ml_log_append(log, &sreq) == 0, "the system may write $ streams");
	is_int(ml_log_head(log), head + 1, "only that was written");
	ml_log_close(log);
}

static void test_segments(const char *dir)
{
	struct ml_log *log = open_log(dir, 4096);
	for (int i = 0; i < 200; i++)
		append1(log, i % 2 ? "odd" : "even", NULL, ML_EXPECT_ANY);
	struct ml_log_stats st;
	ml_log_stats(log, &st);
	ok(st.segments > 5, "small segments roll (%llu segments)", (unsigned long long)st.segments);
	ml_log_close(log);
	/* the first segment is sealed: the zeros written ahead of its records were cut, so its
	 * records, each as long as its first 4 bytes say, end where the file ends */
	char path[512];
	snprintf(path, sizeof(path), "%s/log/00000000000000000001.seg", dir);
	FILE *f = fopen(path, "rb");
	uint8_t buf[8192];
	size_t size = f ? fread(buf, 1, sizeof(buf), f) : 0, o = 64;
	while (o + 4 <= size && (buf[o] | buf[o + 1] << 8 | buf[o + 2] << 16) != 0)
		o += (size_t)(buf[o] | buf[o + 1] << 8 | buf[o + 2] << 16 |
			      (uint32_t)buf[o + 3] << 24);
	if (f)
		fclose(f);
	ok(size > 64 && o == size, "a sealed segment carries no zeros after its records");
	log = open_log(dir, 4096);
	struct collect c = {0};
	ml_log_read_all(log, 1, 0, collect_fn, &c);
	int seq = c.n == 200;
	for (int i = 0; i < c.n && seq; i++)
		seq = c.pos[i] == (uint64_t)i + 1;
	ok(seq, "all 200 events read back in order across segments");
	is_int(ml_log_stream_version(log, "odd", 3), 100, "stream index across segments");
	/* Reads map each segment once; the segment being written keeps growing (and
	 * is sealed, and others follow it) after it was mapped. */
	for (int i = 0; i < 150; i++)
		append1(log, "more", NULL, ML_EXPECT_ANY);
	c = (struct collect){0};
	ml_log_read_all(log, 1, 0, collect_fn, &c);
	seq = c.n == 350;
	for (int i = 0; i < c.n && seq; i++)
		seq = c.pos[i] == (uint64_t)i + 1;
	ok(seq, "appended after the first read: all 350 read back in order");
	c = (struct collect){0};
	ml_log_read_all(log, 190, 25, collect_fn, &c);
	ok(c.n == 25 && c.pos[0] == 190 && c.pos[24] == 214,
	   "a read across segments mapped before and after it grew");
	ml_log_close(log);
	struct ml_check_report r;
	is_int(ml_log_check(dir, 0, &r), 0, "check passes");
	is_int(r.records, 350, "check saw every record");
}

static void test_faults(const char *dir)
{
	struct ml_log *log = open_log(dir, 0);
	append1(log, "f-1", NULL, ML_EXPECT_ANY);
	uint64_t head = ml_log_head(log);
	ml_log_inject_fault(log, 1, ENOSPC);
	ok(append1(log, "f-1", "x", ML_EXPECT_ANY) == 0 && ml_diag_code() == ML_ERR_IO,
	   "a full disk fails the append: %s", ml_diag_last());
	is_int(ml_log_head(log), head, "the head did not move");
	is_int(ml_log_stream_version(log, "f-1", 3), 1, "the version was rolled back");
	ml_log_inject_fault(log, 0, EIO);
	ok(append1(log, "f-2", "y", ML_EXPECT_ANY) == 0, "a failed fdatasync fails the append");
	is_int(ml_log_stream_version(log, "f-2", 3), 0, "and leaves no stream behind");
	is_int(append1(log, "f-1", "x", 1), head + 1, "appends work again after the fault");
	ml_log_close(log);
	log = open_log(dir, 0);
	is_int(ml_log_head(log), head + 1, "after reopen, exactly the acknowledged events");
	ml_log_close(log);
	struct ml_check_report r;
	is_int(ml_log_check(dir, 0, &r), 0, "and check passes");
}

struct kicked {
	struct ml_append req;
	struct ml_event_in ev;
	pthread_t on; /* the thread its done callback ran on */
	int done;     /* set by the callback */
};

static void kicked_done(struct ml_append *req)
{
	struct kicked *k = req->arg;
	k->on = pthread_self();
	__atomic_store_n(&k->done, 1, __ATOMIC_RELEASE);
}

static void kicked_init(struct kicked *k, const char *stream)
{
	*k = (struct kicked){0};
	k->ev = ev(stream, "Kicked", NULL);
	k->req = (struct ml_append){
	    .events = &k->ev, .n_events = 1, .done = kicked_done, .arg = k, .kick_later = 1};
}

static void test_kick(const char *dir)
{
	struct ml_log *log = open_log(dir, 0);
	append1(log, "k-0", NULL, ML_EXPECT_ANY);
	usleep(50000); /* the flusher back to waiting: awake, it would take the next one itself */
	struct kicked k[8];
	kicked_init(&k[0], "k-1");
	ok(ml_log_submit(log, &k[0].req) == 0, "an append waiting for a kick is queued");
	usleep(50000);
	ok(!__atomic_load_n(&k[0].done, __ATOMIC_ACQUIRE), "nothing writes it before the kick");
	ml_log_kick(log);
	ok(k[0].done && pthread_equal(k[0].on, pthread_self()) && k[0].req.err == ML_OK,
	   "a lone append is written and synced by the kicking thread, done before kick returns");
	is_int(ml_log_head(log), 2, "and the head moved");

	/* Several at once: the flusher writes them, the kicking thread goes on. */
	for (int i = 0; i < 8; i++) {
		kicked_init(&k[i], "k-2");
		ml_log_submit(log, &k[i].req);
	}
	ml_log_kick(log);
	int all = 0;
	for (int t = 0; t < 2000 && !all; t++, usleep(1000)) {
		all = 1;
		for (int i = 0; i < 8; i++)
			all &= __atomic_load_n(&k[i].done, __ATOMIC_ACQUIRE);
	}
	int elsewhere = all;
	for (int i = 0; i < 8 && all; i++)
		elsewhere &= !pthread_equal(k[i].on, pthread_self()) && k[i].req.err == ML_OK;
	ok(elsewhere, "a group of eight goes to the flusher thread and is acknowledged");

	/* A fault in a write made by the kicking thread rolls back like the flusher's. */
	usleep(50000); /* the flusher idle again, the last group large: wait for a lone one */
	kicked_init(&k[0], "k-3");
	ml_log_submit(log, &k[0].req);
	ml_log_kick(log); /* after a group of eight: the flusher takes this one */
	for (int t = 0; t < 2000 && !__atomic_load_n(&k[0].done, __ATOMIC_ACQUIRE); t++)
		usleep(1000);
	uint64_t head = ml_log_head(log);
	usleep(50000); /* the flusher back to waiting */
	ml_log_inject_fault(log, 1, ENOSPC);
	kicked_init(&k[1], "k-4");
	ml_log_submit(log, &k[1].req);
	ml_log_kick(log);
	ok(k[1].done && pthread_equal(k[1].on, pthread_self()) && k[1].req.err == ML_ERR_IO,
	   "a full disk fails the kicked append at once: %s", k[1].req.errmsg);
	is_int(ml_log_head(log), head, "the head did not move");
	is_int(ml_log_stream_version(log, "k-4", 3), 0, "and no stream was left behind");
	ml_log_close(log);
	struct ml_check_report r;
	is_int(ml_log_check(dir, 0, &r), 0, "check passes");
	is_int(r.records, head, "with exactly the acknowledged events");
}

static void test_lock(const char *dir)
{
	struct ml_log *a = open_log(dir, 0);
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = dir;
	struct ml_log *b = ml_log_open(&o);
	ok(a && b == NULL && ml_diag_code() == ML_ERR_BUSY, "a second writer is refused: %s",
	   ml_diag_last());
	ml_log_close(a);
}

static int json_fn(const struct ml_event *e, void *arg)
{
	struct ml_buf *b = arg;
	ml_buf_addf(b, "%lld ", (long long)e->time);
	return ml_event_json(b, e);
}

/* The one JSON form of an event (HTTP, server-sent events, --json), of an event read back. */
static void test_event_json(const char *dir)
{
	struct ml_log *log = open_log(dir, 0);
	const char *stream = "acct-\"1\"\\";
	append1(log, stream, "x-1", ML_EXPECT_ANY);
	struct ml_buf got = {0}, want = {0};
	ok(ml_log_read_all(log, 1, 0, json_fn, &got) == 1, "an event read back renders as JSON");
	long long time = strtoll(got.data ? got.data : "0", NULL, 10);
	ml_buf_addf(&want,
		    "%lld {\"position\":1,\"stream\":\"acct-\\\"1\\\"\\\\\",\"version\":1,"
		    "\"type\":\"Deposited\",\"id\":\"x-1\",\"time\":%lld,\"data\":{\"amount\":10},"
		    "\"meta\":null}",
		    time, time);
	ml_buf_add(&got, "", 1);
	ml_buf_add(&want, "", 1);
	is_str(got.data, want.data, "its fields in order, strings escaped, no meta as null");
	ml_buf_free(&got);
	ml_buf_free(&want);
	ml_log_close(log);
}

int main(void)
{
	signal(SIGXFSZ, SIG_IGN);
	static const struct unit_dir_test tests[] = {
	    {"append", test_append_read}, {"dups", test_duplicates},
	    {"retries", test_retries},	  {"batch", test_batches},
	    {"bad", test_bad_input},	  {"segments", test_segments},
	    {"faults", test_faults},	  {"kick", test_kick},
	    {"lock", test_lock},	  {"event_json", test_event_json},
	    {"made_ids", test_made_ids},
	};
	run_in_tmpdirs(tests, sizeof(tests) / sizeof(tests[0]));
	return done_testing();
}
