/*
 * The index in files: a log of many small blocks (a block every 16 events,
 * a segment every 8 KiB) answers every question as a model says, before and
 * after a reopen; its runs stay few; a segment whose index file is gone, or
 * every index file gone (a log of the format before them), is indexed again
 * at open, once; a damaged index file is found by check and removed by
 * --repair; the memory the index holds stays that of a block or two however
 * many events and streams.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <moonlog/log.h>

#include "test/index_model.h"
#include "test/log_compare.h"
#include "test/log_helpers.h"
#include "test/unit.h"

#define BLOCK	16
#define SEGMENT 8192

static struct model m;

static struct ml_log *open_small(const char *dir)
{
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = dir;
	o.fsync = ML_FSYNC_NEVER;
	o.segment_size = SEGMENT;
	o.index_block = BLOCK;
	struct ml_log *log = ml_log_open(&o);
	if (log == NULL)
		printf("# open failed: %s\n", ml_diag_last());
	return log;
}

/* Waits until the index has written and merged all it wants to (a generous liveness bound of a
 * minute, not a timing: the threads are idle within milliseconds on a quiet machine). */
static void settle(struct ml_log *log)
{
	struct ml_log_stats st;
	for (int i = 0; i < 30000; i++) {
		ml_log_stats(log, &st);
		if (st.index_pending == 0)
			return;
		usleep(2000);
	}
}

/* The files of DIR/log whose names end with `suffix`, removed; how many. */
static int remove_files(const char *dir, const char *suffix, int only_one)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/log", dir);
	DIR *d = opendir(path);
	int n = 0;
	for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
		size_t len = strlen(de->d_name), sl = strlen(suffix);
		if (len < sl || strcmp(de->d_name + len - sl, suffix) != 0)
			continue;
		char f[1024];
		snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
		if (unlink(f) == 0)
			n++;
		if (only_one)
			break;
	}
	if (d)
		closedir(d);
	return n;
}

static void test_blocks(const char *dir)
{
	struct ml_log *log = open_small(dir);
	model_reset(&m, 7);
	ok(model_append(&m, log, 3000) == 0, "3000 events appended in batches");
	ok(agrees(&m, log), "the log answers as the model says while it writes its index");
	settle(log);
	struct ml_log_stats st;
	ml_log_stats(log, &st);
	ok(st.index_blocks > 100 && st.segments > 10, "%llu blocks in %llu segments",
	   (unsigned long long)st.index_blocks, (unsigned long long)st.segments);
	ok(st.index_runs <= 16, "merged into %llu runs", (unsigned long long)st.index_runs);
	ok(agrees(&m, log), "and from its files");
	ml_log_close(log);

	log = open_small(dir);
	ok(log && agrees(&m, log), "reopened: the same answers");
	ok(log && ml_log_recovered(log)[0] == '\0', "and the open had nothing to redo: '%s'",
	   log ? ml_log_recovered(log) : "");
	ml_log_stats(log, &st);
	ok(st.index_rebuilt == 0, "no segment indexed again");
	ok(model_append(&m, log, 500) == 0 && agrees(&m, log), "appends go on after it");
	ml_log_close(log);
	struct ml_check_report r;
	ok(ml_log_check(dir, 0, &r) == 0, "check passes: %s", r.bad_segment);
}

static void test_rebuild(const char *dir)
{
	struct ml_log *log = open_small(dir);
	model_reset(&m, 11);
	model_append(&m, log, 2000);
	settle(log);
	ml_log_close(log);

	char idx[512];
	snprintf(idx, sizeof(idx), "%s/log/00000000000000000001.idx", dir);
	ok(unlink(idx) == 0, "the first segment's index file is removed");
	log = open_small(dir);
	struct ml_log_stats st;
	ml_log_stats(log, &st);
	ok(log && st.index_rebuilt == 1 &&
	       strstr(ml_log_recovered(log), "index of 1 segment again"),
	   "the open indexes it again: %s", log ? ml_log_recovered(log) : ml_diag_last());
	ok(log && agrees(&m, log), "and answers as before");
	ml_log_close(log);

	int idx_files = remove_files(dir, ".idx", 0);
	int runs = remove_files(dir, ".run", 0);
	remove_files(dir, "index.seed", 0);
	ok(idx_files > 5, "every index file removed (%d, and %d runs): a log of the format before",
	   idx_files, runs);
	struct ml_log_options ro;
	ml_log_options_init(&ro);
	ro.dir = dir;
	ro.readonly = 1;
	ro.index_block = BLOCK;
	log = ml_log_open(&ro);
	ok(log && agrees(&m, log), "a read-only open indexes it in memory and answers as before");
	ml_log_close(log);
	ok(remove_files(dir, ".idx", 0) == 0, "and writes no index file");
	log = open_small(dir);
	ml_log_stats(log, &st);
	ok(log && st.index_rebuilt == st.segments - 1,
	   "the open indexes every sealed segment (%llu of %llu)",
	   (unsigned long long)st.index_rebuilt, (unsigned long long)st.segments);
	ok(log && agrees(&m, log), "and answers as before");
	ml_log_close(log);
	log = open_small(dir);
	ml_log_stats(log, &st);
	ok(log && st.index_rebuilt == 0 && agrees(&m, log), "once: the next open finds it all");
	ml_log_close(log);
}

/*
 * A log whose first segments are gone, as the retention of a later moonlog
 * drops them: positions and versions go on where they were, and every reader
 * starts at the first position kept. With the run files kept, a stream whose
 * events are all gone keeps its version; with every index file gone, the log
 * is indexed from the segments left.
 */
static void test_first_gone(const char *dir)
{
	struct ml_log *log = open_small(dir);
	model_reset(&m, 17);
	for (int i = 0; i < 5; i++) /* a stream that lives only in the first segment */
		append1(log, "early-1", NULL, ML_EXPECT_ANY);
	m.head = 5;
	m.own_from = 6;
	m.extra_streams = 1;
	model_append(&m, log, 2000);
	settle(log);
	ml_log_close(log);

	/* As retention would: drop the sealed segments the oldest run covers (all but the one
	 * it ends in), so that what the run says of their streams stays. */
	char path[512];
	uint64_t run_last = 0, kept = 0;
	DIR *d = opendir(strcat(strcpy(path, dir), "/log"));
	for (struct dirent *de; d && (de = readdir(d)) != NULL;)
		if (strncmp(de->d_name, "00000000000000000001-", 21) == 0)
			run_last = strtoull(de->d_name + 21, NULL, 10);
	if (d)
		closedir(d);
	size_t n, dropped = 0;
	char **segs = segment_files(dir, &n);
	for (size_t i = 0; i + 1 < n; i++) {
		uint64_t first = strtoull(segs[i], NULL, 10),
			 next = strtoull(segs[i + 1], NULL, 10);
		kept = first;
		if (next - 1 >= run_last)
			break;
		kept = next;
		snprintf(path, sizeof(path), "%s/log/%s", dir, segs[i]);
		unlink(path);
		snprintf(path, sizeof(path), "%s/log/%020llu.idx", dir, (unsigned long long)first);
		unlink(path);
		dropped++;
	}
	for (size_t i = 0; i < n; i++)
		free(segs[i]);
	free(segs);
	m.first = kept;
	log = open_small(dir);
	ok(log && dropped > 0 && ml_log_first(log) == kept,
	   "the first %zu segments gone (the run 1-%llu covers them), the log starts at %llu",
	   dropped, (unsigned long long)run_last,
	   (unsigned long long)(log ? ml_log_first(log) : 0));
	ok(log && agrees(&m, log), "every reader starts there; versions and positions are kept");
	struct collect c = {0};
	ok(log && ml_log_stream_version(log, "early-1", 7) == 5 &&
	       ml_log_read_stream(log, "early-1", 7, 0, 0, 0, collect_fn, &c) == 0,
	   "a stream whose events are all gone keeps its version (5), and reads none");
	ok(log && model_append(&m, log, 300) == 0 && agrees(&m, log), "and appends go on");
	ml_log_close(log);
	struct ml_check_report r;
	ok(ml_log_check(dir, 0, &r) == 0 && r.last_position == m.head,
	   "check passes, to position %llu", (unsigned long long)r.last_position);

	remove_files(dir, ".idx", 0);
	remove_files(dir, ".run", 0);
	log = open_small(dir);
	m.forgotten_ok = 1; /* a stream with no event kept is not known without the runs */
	m.extra_streams = 0;
	ok(log && agrees(&m, log), "every index file gone too: indexed from the segments left");
	ok(log && ml_log_stream_version(log, "early-1", 7) == 0,
	   "where nothing tells of a stream whose events are all gone any more");
	ml_log_close(log);
	m.forgotten_ok = 0;
}

/* Retries the first batch (a client id, then a generated one) and single ids from every part of
 * the log: each a duplicate with the stored positions and versions, whatever it expects. */
static int old_ids_known(struct ml_log *log, const char *what)
{
	int good = 1;
	struct ml_event_in two[2] = {ev("cart-1", "Added", "add-1"), ev("cart-1", "Priced", NULL)};
	uint64_t pos[2], ver[2];
	struct ml_append b = {.events = two, .n_events = 2, .positions = pos, .versions = ver};
	good &=
	    ml_log_append(log, &b) == 0 && b.duplicate && pos[0] == 1 && pos[1] == 2 && ver[1] == 2;
	for (int k = 0; k < 300 && good; k += 7) {
		char id[32];
		snprintf(id, sizeof(id), "old-%d", k);
		struct ml_event_in e = ev("older", "Noted", id);
		struct ml_expect_in x = {"older", 5, 12345}; /* a version it does not have */
		uint64_t p, v;
		struct ml_append r = {.events = &e,
				      .n_events = 1,
				      .expect = &x,
				      .n_expect = 1,
				      .positions = &p,
				      .versions = &v};
		good &= ml_log_append(log, &r) == 0 && r.duplicate && p == 3 + (uint64_t)k &&
			v == 1 + (uint64_t)k;
	}
	ok(good, "%s: every old id is a duplicate with its stored position and version", what);
	return good;
}

/* Every client-chosen id is remembered, however old: a retry of one written down in the
 * blocks long ago, merged into the runs, is a duplicate, before and after a reopen. */
static void test_old_ids(const char *dir)
{
	struct ml_log *log = open_small(dir);
	struct ml_event_in two[2] = {ev("cart-1", "Added", "add-1"), ev("cart-1", "Priced", NULL)};
	struct ml_append first = {.events = two, .n_events = 2};
	ml_log_append(log, &first);
	for (int k = 0; k < 300; k++) {
		char id[32];
		snprintf(id, sizeof(id), "old-%d", k);
		append1(log, "older", id, ML_EXPECT_ANY);
	}
	model_reset(&m, 19);
	m.head = ml_log_head(log);
	m.own_from = m.head + 1;
	m.extra_streams = 2;
	model_append(&m, log, 3000);
	settle(log);
	struct ml_log_stats st;
	ml_log_stats(log, &st);
	ok(st.index_blocks > 150, "3302 events later (%llu blocks in %llu runs)",
	   (unsigned long long)st.index_blocks, (unsigned long long)st.index_runs);
	old_ids_known(log, "ran on");
	ml_log_close(log);
	log = open_small(dir);
	old_ids_known(log, "reopened");
	ok(ml_log_head(log) == m.head && agrees(&m, log), "and nothing was stored twice");
	ml_log_close(log);
}

/* Flips one bit at `at` of a file. */
static void flip(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b = 0;
	if (fd < 0 || pread(fd, &b, 1, at) != 1)
		perror("flip");
	b ^= 0x10;
	if (pwrite(fd, &b, 1, at) != 1)
		perror("flip");
	close(fd);
}

static void test_damaged(const char *dir)
{
	struct ml_log *log = open_small(dir);
	model_reset(&m, 13);
	model_append(&m, log, 1000);
	settle(log);
	ml_log_close(log);
	char idx[512];
	snprintf(idx, sizeof(idx), "%s/log/00000000000000000001.idx", dir);
	struct ml_check_report r;
	ok(ml_log_check(dir, 0, &r) == 0 && r.index_blocks > 10 && r.unindexed < 4 * BLOCK,
	   "check verifies %llu blocks and %llu runs (%llu records left to the open's walk)",
	   (unsigned long long)r.index_blocks, (unsigned long long)r.index_runs,
	   (unsigned long long)r.unindexed);
	flip(idx, 4096 + 128 + 4 * 3); /* the offset of the first block's fourth record */
	ok(ml_log_check(dir, 0, &r) != 0 && strcmp(r.bad_index, "00000000000000000001.idx") == 0,
	   "a damaged index file fails the check: %s", ml_diag_last());
	ok(ml_log_check(dir, 1, &r) == 0 && r.index_removed == 1 && access(idx, F_OK) != 0,
	   "--repair removes it");
	ok(ml_log_check(dir, 0, &r) == 0 && r.unindexed > 0, "then check passes");
	log = open_small(dir);
	ok(log && agrees(&m, log) && access(idx, F_OK) == 0, "and the open builds it again: %s",
	   log ? ml_log_recovered(log) : ml_diag_last());
	ml_log_close(log);

	char run[512];
	snprintf(run, sizeof(run), "%s/log", dir);
	DIR *d = opendir(run);
	for (struct dirent *de; d && (de = readdir(d)) != NULL;)
		if (strstr(de->d_name, ".run")) {
			snprintf(run, sizeof(run), "%s/log/%s", dir, de->d_name);
			break;
		}
	if (d)
		closedir(d);
	flip(run, 200);
	ok(ml_log_check(dir, 0, &r) != 0 && strstr(r.bad_index, ".run"),
	   "a damaged run fails the check: %s", ml_diag_last());
	ok(ml_log_check(dir, 1, &r) == 0 && r.index_removed == 1, "--repair removes it");
	log = open_small(dir);
	ok(log && agrees(&m, log), "and the log answers as before without it");
	ml_log_close(log);
}

/* The memory of the index: a block or two, whatever the number of events and streams. */
static void test_memory(const char *dir)
{
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = dir;
	o.fsync = ML_FSYNC_NEVER;
	o.index_block = 256;
	struct ml_log *log = ml_log_open(&o);
	uint64_t most = 0;
	struct ml_log_stats st;
	for (int round = 0; round < 40; round++) {
		enum { N = 500 };
		struct ml_event_in evs[N];
		char names[N][32];
		for (int i = 0; i < N; i++) {
			snprintf(names[i], sizeof(names[i]), "s-%d", round * N + i); /* all new */
			evs[i] = ev(names[i], "Made", NULL);
		}
		struct ml_append req = {.events = evs, .n_events = N};
		ml_log_append(log, &req);
		settle(log);
		ml_log_stats(log, &st);
		if (st.index_bytes > most)
			most = st.index_bytes;
	}
	ok(st.streams == 20000 && st.head == 20000, "20000 streams of one event each (%llu)",
	   (unsigned long long)st.streams);
	ok(most < 1024 * 1024, "the index held at most %llu bytes of memory",
	   (unsigned long long)most);
	ml_log_close(log);
}

int main(void)
{
	signal(SIGXFSZ, SIG_IGN);
	static const struct unit_dir_test tests[] = {
	    {"blocks", test_blocks},	     {"rebuild", test_rebuild}, {"damaged", test_damaged},
	    {"first_gone", test_first_gone}, {"old_ids", test_old_ids}, {"memory", test_memory},
	};
	run_in_tmpdirs(tests, sizeof(tests) / sizeof(tests[0]));
	model_free(&m);
	return done_testing();
}
