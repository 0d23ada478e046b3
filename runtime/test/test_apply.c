/*
 * Applying batches ordered elsewhere (ml_log_apply): two logs given the same
 * journal entries hold the same events at the same positions and give the same
 * outcomes, refusals included; where a log stands in the journal survives a
 * reopen and a torn write; a failed write stalls the applies until the writer
 * resumes from where the log stands; entries are published before their sync.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <moonlog/log.h>
#include <moonlog/log_writer.h>

#include "log/faults.h"
#include "test/log_compare.h"
#include "test/log_helpers.h"
#include "test/unit.h"

#define T0 1700000000000LL /* the time the "submitters" stamp their entries with */

/* Encodes a batch as a submitter does: ids made for the events without one. */
static struct ml_buf entry_of(struct ml_event_in *evs, size_t n, struct ml_expect_in *x, size_t nx,
			      int64_t time)
{
	char ids[16][37];
	for (size_t i = 0; i < n; i++)
		if (evs[i].id == NULL)
			ml_uuid7(ids[i]);
	struct ml_append req = {.events = evs, .n_events = n, .expect = x, .n_expect = nx};
	struct ml_buf b = {0};
	ml_log_entry_encode(&req, ids, time, &b);
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

/* Applies an entry and waits for its outcome, left in *out. */
static void apply_wait(struct ml_log *log, const struct ml_buf *entry, uint64_t seq,
		       struct ml_append *out)
{
	struct applied a = {.req = {.done = applied_done}};
	a.req.arg = &a;
	if (ml_log_apply(log, &a.req, entry->data, entry->len, seq) == 0)
		while (!__atomic_load_n(&a.done, __ATOMIC_ACQUIRE))
			usleep(100);
	*out = a.req;
}

static int same_outcome(const struct ml_append *a, const struct ml_append *b)
{
	return a->err == b->err && strcmp(a->errmsg, b->errmsg) == 0 &&
	       a->first_position == b->first_position && a->last_position == b->last_position &&
	       a->duplicate == b->duplicate && a->actual_version == b->actual_version;
}

/* A log whose index writes a block every `block` events (0: the default). */
static struct ml_log *open_node(const char *dir, uint32_t block)
{
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = dir;
	o.fsync = ML_FSYNC_NEVER;
	o.index_block = block;
	return ml_log_open(&o);
}

static int first_gen_id(const struct ml_event *e, void *arg)
{
	if (e->position == 1)
		*(int *)arg = e->id_generated && e->id_len == 36 && e->time == T0;
	return 0;
}

static void test_same(const char *dir)
{
	char a_dir[300], b_dir[300];
	snprintf(a_dir, sizeof(a_dir), "%s/a", dir);
	snprintf(b_dir, sizeof(b_dir), "%s/b", dir);
	struct ml_log *a = open_node(a_dir, 0), *b = open_node(b_dir, 0);

	struct ml_event_in open2[2] = {ev("acct-1", "Opened", NULL),
				       ev("acct-1", "Deposited", "d-1")};
	struct ml_expect_in none = {"acct-1", 6, ML_EXPECT_NO_STREAM};
	struct ml_event_in other = ev("acct-2", "Deposited", "d-2");
	struct ml_event_in late = ev("acct-1", "Deposited", "d-5");
	struct ml_expect_in stale = {"acct-1", 6, 5};
	struct ml_event_in partial[2] = {ev("acct-1", "Deposited", "d-1"),
					 ev("acct-1", "Deposited", "d-9")};
	struct ml_event_in sys = ev("$x", "Deposited", NULL);
	struct ml_buf entries[7] = {
	    entry_of(open2, 2, &none, 1, T0),  /* appended at 1, 2 */
	    entry_of(&other, 1, NULL, 0, T0),  /* appended at 3 */
	    entry_of(open2, 2, &none, 1, T0),  /* a retry: a duplicate */
	    entry_of(&late, 1, &stale, 1, T0), /* a version conflict */
	    {0},			       /* bytes that are not an entry */
	    entry_of(partial, 2, NULL, 0, T0), /* half a retry: refused */
	    entry_of(&sys, 1, NULL, 0, T0),    /* a system stream: refused */
	};
	ml_buf_add(&entries[4], "\x01\x00\x00\x00\xff\xff", 6);
	struct ml_append oa[7], ob[7];
	int all_same = 1;
	for (int i = 0; i < 7; i++) {
		apply_wait(a, &entries[i], (uint64_t)i + 1, &oa[i]);
		apply_wait(b, &entries[i], (uint64_t)i + 1, &ob[i]);
		all_same &= same_outcome(&oa[i], &ob[i]);
	}
	ok(all_same, "two logs give every entry the same outcome");
	ok(oa[0].err == ML_OK && oa[0].first_position == 1 && oa[1].first_position == 3,
	   "entries append at the positions the journal's order gives");
	ok(oa[2].err == ML_OK && oa[2].duplicate && oa[2].first_position == 1,
	   "a retried batch is a duplicate with the stored positions");
	ok(oa[3].err == ML_ERR_CONFLICT && oa[3].actual_version == 2,
	   "a stale expected version is a conflict: %s", oa[3].errmsg);
	ok(oa[4].err == ML_ERR_CORRUPT, "bytes that are no entry are refused: %s", oa[4].errmsg);
	ok(oa[5].err == ML_ERR_REFUSED, "half a retry is refused as a local append is: %s",
	   oa[5].errmsg);
	ok(oa[6].err == ML_ERR_USAGE, "so is a system stream: %s", oa[6].errmsg);
	ok(same_events(a, b), "both logs hold the same events at the same positions");
	int made = 0;
	ml_log_read_all(a, 1, 1, first_gen_id, &made);
	ok(made, "a made id and the submitter's time are stored as the entry gave them");
	is_int(ml_log_applied_seq(a), 2, "the log stands at the last entry that wrote");

	struct ml_append again;
	apply_wait(a, &entries[1], 2, &again);
	ok(again.err == ML_ERR_USAGE, "an entry is not applied twice: %s", again.errmsg);
	apply_wait(a, &entries[3], 4, &again);
	ok(same_outcome(&again, &oa[3]), "an entry that wrote nothing gives the same outcome "
					 "again");
	ml_log_close(a);
	ml_log_close(b);
	ok(same_records(a_dir, b_dir), "the segment files hold the same records, byte for byte");

	a = open_node(a_dir, 0);
	is_int(ml_log_applied_seq(a), 2, "reopened, the log knows where it stands");
	ok(append1(a, "acct-3", NULL, ML_EXPECT_ANY) == 0 && ml_diag_code() == ML_ERR_REFUSED &&
	       strstr(ml_diag_last(), "replicated journal"),
	   "a local append to a log that applied entries is refused: %s", ml_diag_last());
	ml_log_close(a);
	struct ml_check_report r;
	is_int(ml_log_check(a_dir, 0, &r), 0, "check passes on a log of applied batches");
	is_int(r.records, 3, "and counts their records");
	for (int i = 0; i < 7; i++)
		ml_buf_free(&entries[i]);
}

/*
 * Every node remembers every id, however old: a retry of an id hundreds of
 * events back (written down in the index's blocks and merged into its runs) is
 * a duplicate with the stored position on a log that ran on and on one that
 * restarted, whatever events without client ids came in between.
 */
/* Waits (up to 10 s) until the index has written down every full chunk and merged its runs. */
static void wait_indexed(struct ml_log *log)
{
	struct ml_log_stats st;
	for (int i = 0; i < 10000; i++) {
		ml_log_stats(log, &st);
		if (st.index_pending == 0)
			return;
		usleep(1000);
	}
}

static void test_ids_forever(const char *dir)
{
	char a_dir[300], b_dir[300];
	snprintf(a_dir, sizeof(a_dir), "%s/a", dir);
	snprintf(b_dir, sizeof(b_dir), "%s/b", dir);
	struct ml_log *a = open_node(a_dir, 4), *b = open_node(b_dir, 4);
	struct ml_event_in with_id = ev("w-1", "Deposited", "a"), made = ev("w-2", "Noted", NULL);
	enum { N = 403 };
	static struct ml_buf entries[N];
	entries[0] = entry_of(&with_id, 1, NULL, 0, T0);
	for (int i = 1; i < N - 2; i++)
		entries[i] = entry_of(&made, 1, NULL, 0, T0);
	entries[N - 2] = entry_of(&with_id, 1, NULL, 0, T0); /* its id is 400 positions back */
	entries[N - 1] = entry_of(&with_id, 1, NULL, 0, T0); /* and again */
	static struct ml_append oa[N], ob[N];
	for (int i = 0; i < N; i++) {
		if (i == N - 2) { /* b restarts here; a runs on, its index written down */
			ml_log_close(b);
			b = open_node(b_dir, 4);
			wait_indexed(a);
		}
		apply_wait(a, &entries[i], (uint64_t)i + 1, &oa[i]);
		apply_wait(b, &entries[i], (uint64_t)i + 1, &ob[i]);
	}
	struct ml_log_stats st;
	ml_log_stats(a, &st);
	ok(st.index_blocks > 50, "the id is in a block long written down (%llu blocks)",
	   (unsigned long long)st.index_blocks);
	ok(same_outcome(&oa[N - 2], &ob[N - 2]) && oa[N - 2].duplicate &&
	       oa[N - 2].first_position == 1,
	   "an id 400 positions back is a duplicate of position 1 on a log that ran on and on "
	   "one that restarted");
	ok(same_outcome(&oa[N - 1], &ob[N - 1]) && oa[N - 1].duplicate &&
	       oa[N - 1].first_position == 1,
	   "and again");
	ok(same_events(a, b) && ml_log_head(a) == N - 2, "both hold the same events, once each");
	ml_log_close(a);
	ml_log_close(b);
	for (int i = 0; i < N; i++)
		ml_buf_free(&entries[i]);
}

/* A crash in the middle of a batch's write takes the batch and its sequence away. */
static void test_torn(const char *dir)
{
	struct ml_log *log = open_node(dir, 0);
	struct ml_event_in e1 = ev("t-1", "A", "x-1"), e2 = ev("t-1", "B", "x-2");
	struct ml_buf x = entry_of(&e1, 1, NULL, 0, T0), y = entry_of(&e2, 1, NULL, 0, T0);
	struct ml_append out;
	apply_wait(log, &x, 10, &out);
	apply_wait(log, &y, 12, &out);
	is_int(ml_log_applied_seq(log), 12, "the log stands at entry 12");
	ml_log_close(log);
	char path[512];
	snprintf(path, sizeof(path), "%s/log/00000000000000000001.seg", dir);
	struct ml_buf recs = segment_records(path);
	ok(truncate(path, (off_t)(64 + recs.len - 3)) == 0, "the last batch is torn");
	ml_buf_free(&recs);
	log = open_node(dir, 0);
	is_int(ml_log_head(log), 1, "reopened, the torn batch is cut off");
	is_int(ml_log_applied_seq(log), 10, "and the log stands at the entry before it");
	apply_wait(log, &y, 12, &out);
	ok(out.err == ML_OK && out.first_position == 2, "from where entry 12 applies again");
	ml_log_close(log);
	ml_buf_free(&x);
	ml_buf_free(&y);
}

/*
 * A write that fails undoes every entry not yet durable; applies are refused
 * until the writer resumes from where the log stands, and then the log ends as
 * one that never failed.
 */
static void test_failed_write(const char *dir)
{
	char a_dir[300], b_dir[300];
	snprintf(a_dir, sizeof(a_dir), "%s/a", dir);
	snprintf(b_dir, sizeof(b_dir), "%s/b", dir);
	struct ml_log *a = open_node(a_dir, 0), *ref = open_node(b_dir, 0);
	struct ml_buf entries[6];
	struct ml_append out;
	for (int i = 0; i < 6; i++) {
		char stream[16];
		snprintf(stream, sizeof(stream), "f-%d", i % 2);
		struct ml_event_in e = ev(stream, "Moved", NULL);
		struct ml_expect_in x = {e.stream, e.stream_len, i / 2};
		entries[i] = entry_of(&e, 1, &x, 1, T0);
		apply_wait(ref, &entries[i], (uint64_t)i + 1, &out);
	}
	apply_wait(a, &entries[0], 1, &out);
	apply_wait(a, &entries[1], 2, &out);
	ml_log_inject_fault(a, 1, ENOSPC);
	apply_wait(a, &entries[2], 3, &out);
	ok(out.err == ML_ERR_IO, "a failed write fails the entry: %s", out.errmsg);
	apply_wait(a, &entries[3], 4, &out);
	ok(out.err == ML_ERR_IO && strstr(out.errmsg, "after entry 2"),
	   "later entries are refused until the writer resumes: %s", out.errmsg);
	uint64_t from = ml_log_apply_resume(a);
	is_int(from, 2, "resuming tells where the log stands");
	for (uint64_t s = from + 1; s <= 6; s++)
		apply_wait(a, &entries[s - 1], s, &out);
	ok(out.err == ML_OK && same_events(a, ref),
	   "applied again from there, the log is the same as one that never failed");
	ml_log_close(a);
	ml_log_close(ref);
	for (int i = 0; i < 6; i++)
		ml_buf_free(&entries[i]);
}

static int count_events(const struct ml_event *e, void *arg)
{
	(void)e;
	++*(int *)arg;
	return 0;
}

static void count_head_calls(uint64_t head, void *arg)
{
	(void)head;
	__atomic_add_fetch((int *)arg, 1, __ATOMIC_RELAXED);
}

/*
 * Under --fsync always, entries of a journal are published once written,
 * before their sync (the journal keeps them already), and their requests end
 * after it: a sync that fails then leaves them visible and breaks the log
 * until a reopen, which finds them on disk. A local append on the same kind of
 * log is published only after its sync.
 */
static void test_published_before_sync(const char *dir)
{
	char a_dir[300], l_dir[300];
	snprintf(a_dir, sizeof(a_dir), "%s/a", dir);
	snprintf(l_dir, sizeof(l_dir), "%s/local", dir);
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = a_dir;
	o.fsync = ML_FSYNC_ALWAYS;
	o.index_block = 1; /* a block for every event the index may write */
	struct ml_log *a = ml_log_open(&o);
	int calls = 0;
	ml_log_on_head(a, count_head_calls, &calls);
	struct ml_buf entries[3];
	struct ml_append out;
	for (int i = 0; i < 3; i++) {
		struct ml_event_in e = ev("p-1", "Moved", NULL);
		entries[i] = entry_of(&e, 1, NULL, 0, T0);
	}
	apply_wait(a, &entries[0], 1, &out);
	ok(out.err == ML_OK && ml_log_head(a) == 1 && calls == 1,
	   "an entry synced is published once (%d calls)", calls);
	ml_log_inject_fault(a, 0, EIO);
	apply_wait(a, &entries[1], 2, &out);
	ok(out.err == ML_ERR_IO && strstr(out.errmsg, "failed to sync") &&
	       strstr(out.errmsg, "restart"),
	   "a failed sync fails the entry's request: %s", out.errmsg);
	ok(ml_log_head(a) == 2 && calls == 2,
	   "the entry was published before its sync: it stays (head %llu)",
	   (unsigned long long)ml_log_head(a));
	int scanned = 0;
	ml_log_scan(a, 1, 0, count_events, &scanned);
	is_int(scanned, 2, "a scan reads it too");
	usleep(100000); /* time for the indexer, were it to write a block for it */
	struct ml_log_stats st;
	ml_log_stats(a, &st);
	is_int(st.index_blocks, 1, "the index writes no block for what no sync covered");
	apply_wait(a, &entries[2], 3, &out);
	ok(out.err == ML_ERR_IO && strstr(out.errmsg, "failed to sync"),
	   "the log takes nothing more until a restart: %s", out.errmsg);
	char why[256] = "";
	ok(ml_log_broken(a, why, sizeof(why)) == 1 && strcmp(why, out.errmsg) == 0,
	   "ml_log_broken says so, with the same reason: %s", why);
	ml_log_on_head(a, NULL, NULL);
	ml_log_close(a);
	a = ml_log_open(&o);
	ok(a && ml_log_head(a) == 2, "reopened, the log holds what it published");
	if (a)
		apply_wait(a, &entries[2], 3, &out);
	ok(a && out.err == ML_OK && out.first_position == 3, "and applies the journal on");
	ok(a && ml_log_broken(a, why, sizeof(why)) == 0, "a log opened again is not broken");
	ml_log_close(a);

	o.dir = l_dir;
	struct ml_log *l = ml_log_open(&o);
	struct ml_event_in e = ev("l-1", "Moved", NULL);
	ml_log_inject_fault(l, 0, EIO);
	struct ml_append req = {.events = &e, .n_events = 1};
	ok(ml_log_append(l, &req) != 0 && req.err == ML_ERR_IO && ml_log_head(l) == 0,
	   "a local append whose sync fails was never published: %s", req.errmsg);
	ml_log_close(l);
	for (int i = 0; i < 3; i++)
		ml_buf_free(&entries[i]);
}

int main(void)
{
	signal(SIGXFSZ, SIG_IGN);
	static const struct unit_dir_test tests[] = {
	    {"apply-same", test_same},
	    {"apply-ids", test_ids_forever},
	    {"apply-torn", test_torn},
	    {"apply-failed", test_failed_write},
	    {"apply-published", test_published_before_sync},
	};
	run_in_tmpdirs(tests, sizeof(tests) / sizeof(tests[0]));
	return done_testing();
}
