/*
 * Retention: deletions and metadata as the log keeps them (retention.c), and
 * the one predicate ml_log_removed. Each deletion, truncation and limit says
 * which events are removed; reads leave them out; the state is the same after
 * a reopen (from the retention file, without it, with it damaged, read-only),
 * after a kill -9 of a process appending deletions, after a write that failed,
 * and on a second node that applied the same journal.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <moonlog/log.h>
#include <moonlog/util.h>

#include "log/faults.h"
#include "test/journal_writer.h"
#include "test/log_helpers.h"
#include "test/unit.h"

static struct ml_log *open_small(const char *dir, int readonly)
{
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = dir;
	o.index_block = 16; /* blocks (and so the retention file) after a few events */
	o.readonly = readonly;
	struct ml_log *log = ml_log_open(&o);
	if (log == NULL)
		printf("# open failed: %s\n", ml_diag_last());
	return log;
}

static int append_n(struct ml_log *log, const char *stream, int n)
{
	int rc = 0;
	for (int i = 0; i < n; i++)
		rc |= append1(log, stream, NULL, ML_EXPECT_ANY) == 0;
	return rc;
}

static int del(struct ml_log *log, const char *stream, int64_t expected, int hard)
{
	struct ml_retention_append a;
	int rc = ml_log_prepare_delete(log, &a, stream, strlen(stream), expected, hard);
	return rc != 0 ? (rc > 0 ? 0 : -1) : ml_log_append(log, &a.req);
}

static int set_meta(struct ml_log *log, const char *stream, const char *map, size_t len)
{
	struct ml_retention_append a;
	if (ml_log_prepare_meta(log, &a, stream, strlen(stream), map, len, ML_EXPECT_ANY) != 0)
		return -1;
	return ml_log_append(log, &a.req);
}

/* The versions of a stream a forward read gives, as text: "4 5 6". */
static const char *versions(struct ml_log *log, const char *stream, int backwards)
{
	static char out[512];
	struct collect c = {.n = 0};
	ml_log_read_stream(log, stream, strlen(stream), 0, 0, backwards, collect_fn, &c);
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < c.n && o < sizeof(out) - 24; i++)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%llu", i ? " " : "",
				      (unsigned long long)c.ver[i]);
	return out;
}

static int removed(struct ml_log *log, const char *s, uint64_t v)
{
	return ml_log_removed(log, s, strlen(s), v, ml_time_ms(), ml_time_ms());
}

/* What every reopen must find: a-1 soft-deleted at 4 then appended, b-1 hard-deleted,
 * c-1 truncated before 3 and kept to its last 4, d-1 untouched. */
static void build(struct ml_log *log)
{
	append_n(log, "a-1", 3);
	append_n(log, "b-1", 2);
	append_n(log, "c-1", 8);
	append_n(log, "d-1", 2);
	del(log, "a-1", 3, 0);
	append_n(log, "a-1", 1);
	del(log, "b-1", ML_EXPECT_ANY, 1);
	set_meta(log, "c-1", "\x81\xaftruncate_before\x03", 18);
	set_meta(log, "c-1", "\x81\xa9max_count\x04", 12); /* keeps truncate_before */
}

static int as_built(struct ml_log *log, const char *when)
{
	int good =
	    !strcmp(versions(log, "a-1", 0), "4 5") && !strcmp(versions(log, "b-1", 0), "3") &&
	    !strcmp(versions(log, "c-1", 0), "5 6 7 8") &&
	    !strcmp(versions(log, "c-1", 1), "8 7 6 5") && !strcmp(versions(log, "d-1", 0), "1 2");
	struct ml_stream_meta m;
	good &= ml_log_stream_meta(log, "b-1", 3, &m) && m.hard && m.deleted_before == 3;
	good &= ml_log_stream_meta(log, "c-1", 3, &m) && m.truncate_before == 3 &&
		m.max_count == 4 && !m.hard;
	good &= !ml_log_stream_meta(log, "d-1", 3, &m);
	if (!good)
		printf("# %s: a-1 [%s] c-1 [%s]\n", when, versions(log, "a-1", 0),
		       versions(log, "c-1", 0));
	return good;
}

static void test_predicate(const char *dir)
{
	struct ml_log *log = open_small(dir, 0);
	append_n(log, "a-1", 3);
	ok(!ml_log_any_removed(log), "a log without deletions or metadata removes nothing");
	ok(!removed(log, "a-1", 1), "so the predicate keeps every event");
	ok(del(log, "a-1", 2, 0) != 0 && ml_diag_code() == ML_ERR_CONFLICT,
	   "a delete at the wrong expected version is a conflict");
	ok(del(log, "nobody", ML_EXPECT_ANY, 0) != 0 && ml_diag_code() == ML_ERR_NOT_FOUND,
	   "deleting a stream that does not exist: no such stream");
	ok(del(log, "$parked-x", ML_EXPECT_ANY, 0) != 0 && ml_diag_code() == ML_ERR_USAGE,
	   "deleting a $ stream is refused: %s", ml_diag_last());
	ok(del(log, "a-1", 3, 0) == 0, "a soft delete at the right version");
	ok(ml_log_any_removed(log) && removed(log, "a-1", 1) && removed(log, "a-1", 3) &&
	       !removed(log, "a-1", 4),
	   "removes the versions before its $deleted event, which stays");
	is_str(versions(log, "a-1", 0), "4", "a stream read shows the deletion event only");
	ok(append1(log, "a-1", NULL, 4) != 0, "the stream is written again, its versions going on");
	is_str(versions(log, "a-1", 0), "4 5", "and reads show what follows the deletion");

	ok(del(log, "a-1", ML_EXPECT_ANY, 1) == 0, "a hard delete");
	is_str(versions(log, "a-1", 0), "6", "its tombstone is all a read shows");
	ok(append1(log, "a-1", NULL, ML_EXPECT_ANY) == 0 && ml_diag_code() == ML_ERR_REFUSED,
	   "refuses every later append: %s", ml_diag_last());
	ok(del(log, "a-1", ML_EXPECT_ANY, 0) != 0 && set_meta(log, "a-1", "\x80", 1) != 0,
	   "and every later delete or metadata of it");
	ok(!ml_log_removed(log, "a-1", 3, 6, 0, ml_time_ms()),
	   "its tombstone is never removed, however old: a scavenge keeps it");

	append_n(log, "t-1", 6);
	ok(set_meta(log, "t-1", "\x81\xa9max_count\xff", 12) != 0 && ml_diag_code() == ML_ERR_USAGE,
	   "a negative max_count is refused: %s", ml_diag_last());
	ok(set_meta(log, "t-1", "\x81\xa4junk\x01", 7) != 0, "an unknown key is refused");
	ok(set_meta(log, "t-1", "\x91\x01", 2) != 0, "metadata that is not a map is refused");
	ok(set_meta(log, "t-1", "\x81\xa7max_age\x3c", 10) == 0, "max_age of 60 seconds");
	int64_t now = ml_time_ms();
	ok(ml_log_removed(log, "t-1", 3, 1, now - 61000, now) &&
	       !ml_log_removed(log, "t-1", 3, 1, now - 59000, now),
	   "removes by the event's time against now, nothing else");
	is_str(versions(log, "t-1", 0), "1 2 3 4 5 6", "events of now are all kept");
	ok(set_meta(log, "t-1", "\x82\xa7max_age\x00\xa9max_count\x02", 21) == 0,
	   "max_count 2 (max_age 0: no limit)");
	ok(removed(log, "t-1", 4) && !removed(log, "t-1", 5), "keeps the last two versions");
	append_n(log, "t-1", 1);
	ok(removed(log, "t-1", 5) && !removed(log, "t-1", 6), "and moves with the stream");

	struct collect all = {.n = 0}, kept = {.n = 0};
	ml_log_read_all(log, 1, 0, collect_fn, &all);
	ml_log_read_all_kept(log, 1, 0, collect_fn, &kept);
	ok(all.n == (int)ml_log_head(log) && kept.n == all.n - 5 - 5,
	   "read_all gives every stored event (%d), read_all_kept only the kept ones (%d)", all.n,
	   kept.n);
	struct collect page = {.n = 0};
	ml_log_read_all_kept(log, 1, 2, collect_fn, &page);
	ok(page.n == 2 && page.pos[0] == 6,
	   "a page of $all goes on past removed events (from %llu)",
	   (unsigned long long)page.pos[0]);
	ml_log_close(log);
}

/*
 * A delete with "any" of a stream deleted the same way is done already: the answer is that
 * deletion's, as for a duplicate append, and nothing is appended. A stream that never was is
 * "no such stream", unless an explicit guard said what to expect.
 */
static void test_delete_again(const char *dir)
{
	struct ml_log *log = open_small(dir, 0);
	append_n(log, "r-1", 2);
	struct ml_retention_append a;
	ok(ml_log_prepare_delete(log, &a, "r-1", 3, ML_EXPECT_ANY, 0) == 0 &&
	       ml_log_append(log, &a.req) == 0 && a.version == 3,
	   "a soft delete: its $deleted event is version 3");
	uint64_t at = a.position, head = ml_log_head(log);
	ok(ml_log_prepare_delete(log, &a, "r-1", 3, ML_EXPECT_ANY, 0) == 1 && a.position == at &&
	       a.version == 3 && a.req.duplicate && a.req.first_position == at,
	   "deleting it again is done already: the first deletion's position and version");
	ok(ml_log_head(log) == head && ml_log_stream_version(log, "r-1", 3) == 3,
	   "and appends nothing");
	ok(del(log, "r-1", ML_EXPECT_ANY, 1) == 0 && ml_log_stream_version(log, "r-1", 3) == 4,
	   "a hard delete of a soft-deleted stream is a tombstone appended");
	at = ml_log_head(log);
	ok(ml_log_prepare_delete(log, &a, "r-1", 3, ML_EXPECT_ANY, 1) == 1 && a.position == at &&
	       a.version == 4,
	   "a hard delete again is done already");
	ok(del(log, "r-1", ML_EXPECT_ANY, 0) != 0 && ml_diag_code() == ML_ERR_REFUSED,
	   "a soft delete of a hard-deleted stream is refused: %s", ml_diag_last());
	append_n(log, "r-2", 1);
	ok(del(log, "r-2", ML_EXPECT_ANY, 0) == 0 &&
	       append1(log, "r-2", NULL, ML_EXPECT_ANY) != 0 &&
	       del(log, "r-2", ML_EXPECT_ANY, 0) == 0 && ml_log_stream_version(log, "r-2", 3) == 4,
	   "a stream written again after its delete is deleted again (a new $deleted event)");
	ok(ml_log_prepare_delete(log, &a, "never", 5, ML_EXPECT_ANY, 0) != 0 &&
	       ml_diag_code() == ML_ERR_NOT_FOUND && strstr(ml_diag_last(), "no such stream"),
	   "a stream that never was: %s", ml_diag_last());
	ok(del(log, "never", ML_EXPECT_EXISTS, 0) != 0 && ml_diag_code() == ML_ERR_CONFLICT,
	   "with an explicit \"exists\" it is that guard's conflict");
	ml_log_close(log);
}

static void test_reopen(const char *dir)
{
	struct ml_log *log = open_small(dir, 0);
	build(log);
	ok(as_built(log, "built"), "deletions and limits apply at once");
	ml_log_close(log);
	char path[512];
	snprintf(path, sizeof(path), "%s/log/retention", dir);
	struct stat st;
	ok(stat(path, &st) == 0, "the index's blocks wrote the retention file");

	log = open_small(dir, 0);
	ok(log && as_built(log, "reopened"), "the same after a reopen");
	ml_log_close(log);
	log = open_small(dir, 1);
	ok(log && as_built(log, "read-only"), "and for a read-only open");
	ml_log_close(log);

	unlink(path);
	log = open_small(dir, 0);
	ok(log && as_built(log, "no file"), "without the file: the open scans the log");
	ml_log_close(log);
	ok(stat(path, &st) == 0, "and writes it again");

	int fd = open(path, O_WRONLY);
	ok(fd >= 0 && pwrite(fd, "\xff\xff", 2, 40) == 2, "a damaged retention file");
	close(fd);
	log = open_small(dir, 0);
	ok(log && as_built(log, "damaged file"), "is read past: the open scans the log");
	ml_log_close(log);
}

/* A child appends deletions and reports each acknowledged one on a pipe until killed. */
static void child_deletes(const char *dir, int out)
{
	struct ml_log *log = open_small(dir, 0);
	for (int i = 0;; i++) {
		char name[32];
		snprintf(name, sizeof(name), "k-%d", i);
		if (append1(log, name, NULL, ML_EXPECT_NO_STREAM) == 0 ||
		    del(log, name, 1, i % 2) != 0)
			_exit(1);
		if (write(out, &i, sizeof(i)) != sizeof(i))
			_exit(1);
	}
}

static void test_kill9(const char *dir)
{
	int good = 1, rounds = 3;
	for (int round = 0; round < rounds && good; round++) {
		int last = -1;
		int p[2];
		if (pipe(p) != 0)
			return;
		pid_t pid = fork();
		if (pid == 0) {
			close(p[0]);
			char sub[512];
			snprintf(sub, sizeof(sub), "%s/r%d", dir, round);
			child_deletes(sub, p[1]);
		}
		close(p[1]);
		int i, target = 40 + 37 * round; /* past a few blocks of 16 events */
		while (read(p[0], &i, sizeof(i)) == sizeof(i) && i < target)
			last = i;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(p[0]);
		char sub[512];
		snprintf(sub, sizeof(sub), "%s/r%d", dir, round);
		struct ml_log *log = open_small(sub, 0);
		good = log != NULL;
		for (int k = 0; good && k <= last; k++) {
			char name[32];
			struct ml_stream_meta m;
			snprintf(name, sizeof(name), "k-%d", k);
			good = ml_log_stream_meta(log, name, strlen(name), &m) &&
			       m.deleted_before == 2 && m.hard == k % 2 && removed(log, name, 1);
			if (!good)
				printf("# round %d: k-%d is not deleted after the kill\n", round,
				       k);
		}
		if (good && last % 2) { /* a hard-deleted one stays refused */
			char name[32];
			snprintf(name, sizeof(name), "k-%d", last);
			good = append1(log, name, NULL, ML_EXPECT_ANY) == 0;
		}
		ml_log_close(log);
	}
	ok(good,
	   "after kill -9 of a process deleting streams, every acknowledged deletion holds "
	   "(%d rounds)",
	   rounds);
}

static void test_failed_write(const char *dir)
{
	struct ml_log *log = open_small(dir, 0);
	append_n(log, "f-1", 2);
	ml_log_inject_fault(log, 1, ENOSPC);
	ok(del(log, "f-1", ML_EXPECT_ANY, 1) != 0, "a hard delete whose write fails is refused");
	ok(!ml_log_any_removed(log) && append1(log, "f-1", NULL, ML_EXPECT_ANY) != 0,
	   "and leaves nothing behind: the stream is written again");
	ml_log_close(log);
}

static void test_replicated(const char *dir)
{
	struct journal *j = journal_new();
	struct ml_log *logs[2];
	int started = 1;
	for (int i = 0; i < 2; i++) {
		char sub[512];
		snprintf(sub, sizeof(sub), "%s/node-%d", dir, i);
		logs[i] = open_small(sub, 0);
		started &= logs[i] && journal_node_start(j, i, logs[i]) == 0;
	}
	ok(started, "two nodes share one journal");
	build(logs[0]);
	journal_node_sync(j, 1);
	ok(as_built(logs[1], "node 1"), "the other node applies the same deletions and limits");
	ok(append1(logs[1], "b-1", NULL, ML_EXPECT_ANY) == 0 && ml_diag_code() == ML_ERR_REFUSED,
	   "and refuses to write a stream hard-deleted on the first");
	ml_log_close(logs[0]);
	ml_log_close(logs[1]);
	journal_free(j);
}

int main(void)
{
	signal(SIGXFSZ, SIG_IGN);
	static const struct unit_dir_test tests[] = {
	    {"predicate", test_predicate},   {"reopen", test_reopen},
	    {"kill9", test_kill9},	     {"failed_write", test_failed_write},
	    {"replicated", test_replicated}, {"delete_again", test_delete_again},
	};
	run_in_tmpdirs(tests, sizeof(tests) / sizeof(tests[0]));
	return done_testing();
}
