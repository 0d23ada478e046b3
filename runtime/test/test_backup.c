/*
 * test_backup.c - ml_log_backup_files: the files it lists, linked or copied as
 * it says while appends go on, make a log that checks clean and holds exactly
 * the events up to the position it pinned, byte for byte, at the same
 * positions; and that log takes appends after it. The deletions and
 * retention metadata in force go with it as of that position, also where the
 * copy could not rebuild them from its segments (the first one dropped).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test/log_compare.h"
#include "test/log_helpers.h"
#include "test/unit.h"

struct appender {
	struct ml_log *log;
	volatile int stop;
	uint64_t appended;
};

/* Appends one event at a time until told to stop: the steady load a backup runs under. */
static void *append_steadily(void *arg)
{
	struct appender *a = arg;
	char stream[32];
	while (!a->stop) {
		snprintf(stream, sizeof(stream), "acct-%llu",
			 (unsigned long long)(a->appended % 7));
		if (append1(a->log, stream, NULL, ML_EXPECT_ANY) == 0)
			break;
		a->appended++;
	}
	return NULL;
}

/* As moonlog backup does: a link for a whole file, else its first `size` bytes. */
static int take(const char *from, const char *to, const struct ml_backup_file *f, int *linked)
{
	char src[4200], dst[4200];
	snprintf(src, sizeof(src), "%s/%s", from, f->name);
	snprintf(dst, sizeof(dst), "%s/%s", to, f->name);
	*linked = 0;
	if (f->whole) {
		if (link(src, dst) == 0)
			return (*linked = 1), 0;
		return errno == ENOENT && strstr(f->name, ".run") ? 0 : -1; /* merged away */
	}
	int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0600);
	char *buf = malloc(f->size ? f->size : 1);
	int rc = in >= 0 && out >= 0 && pread(in, buf, f->size, 0) == (ssize_t)f->size &&
			 write(out, buf, f->size) == (ssize_t)f->size
		     ? 0
		     : -1;
	free(buf);
	close(in), close(out);
	return rc;
}

static void dump_to(struct ml_log *log, uint64_t until, struct ml_buf *out)
{
	ml_log_scan(log, 1, until, dump_event, out);
}

/* The versions a forward read of the stream gives, as text: "5 6". */
static const char *versions(struct ml_log *log, const char *stream)
{
	static char out[256];
	struct collect c = {.n = 0};
	ml_log_read_stream(log, stream, strlen(stream), 0, 0, 0, collect_fn, &c);
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < c.n && o < sizeof(out) - 24; i++)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%llu", i ? " " : "",
				      (unsigned long long)c.ver[i]);
	return out;
}

/* A copy made as moonlog backup makes it: the listed files, and the retention bytes. */
static int copy_backup(const struct ml_backup *b, const char *dst)
{
	char logdir[600], path[700];
	snprintf(logdir, sizeof(logdir), "%s/log", dst);
	mkdir(logdir, 0700);
	int failed = 0, linked;
	for (size_t i = 0; i < b->n; i++)
		failed += take(b->dir, logdir, &b->files[i], &linked) != 0;
	snprintf(path, sizeof(path), "%s/retention", logdir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	failed += fd < 0 || write(fd, b->retention, b->retention_len) != (ssize_t)b->retention_len;
	if (fd >= 0)
		close(fd);
	return failed ? -1 : 0;
}

/*
 * spam-7 hard-deleted and acct-1 kept to its last 2 versions, both in the first segment,
 * which is then dropped (as an operator may, the log closed): the log keeps both in its
 * retention file, and a backup's copy keeps them too, though no event of its segments says so.
 */
static void retention_kept(void)
{
	char *src = unit_tmpdir("backup-ret-src"), *dst = unit_tmpdir("backup-ret-dst");
	struct ml_log *log = open_log(src, 4096);
	struct ml_retention_append a;
	append1(log, "spam-7", NULL, ML_EXPECT_ANY);
	ml_log_prepare_delete(log, &a, "spam-7", 6, ML_EXPECT_ANY, 1);
	ml_log_append(log, &a.req);
	for (int i = 0; i < 3; i++)
		append1(log, "acct-1", NULL, ML_EXPECT_ANY);
	ml_log_prepare_meta(log, &a, "acct-1", 6, "\x81\xa9max_count\x02", 12, ML_EXPECT_ANY);
	ml_log_append(log, &a.req);
	for (int i = 0; i < 200; i++) /* a few segments */
		append1(log, "filler-1", NULL, ML_EXPECT_ANY);
	for (int i = 0; i < 3; i++)
		append1(log, "acct-1", NULL, ML_EXPECT_ANY);
	ml_log_close(log);
	char path[700];
	snprintf(path, sizeof(path), "%s/log/00000000000000000001.seg", src);
	int dropped = unlink(path) == 0;
	snprintf(path, sizeof(path), "%s/log/00000000000000000001.idx", src);
	unlink(path);
	log = open_log(src, 4096);
	ok(dropped && log && ml_log_first(log) > 6,
	   "the first segment dropped: the log starts at %llu",
	   log ? (unsigned long long)ml_log_first(log) : 0ULL);
	ok(append1(log, "spam-7", NULL, ML_EXPECT_ANY) == 0 &&
	       !strcmp(versions(log, "acct-1"), "5 6"),
	   "the log keeps the tombstone and the max count: acct-1 reads [%s]",
	   versions(log, "acct-1"));
	struct ml_backup b;
	ml_log_backup_files(log, &b);
	ok(b.retention_len > 0 && copy_backup(&b, dst) == 0,
	   "the backup hands over the retention file (%zu bytes), written into the copy",
	   b.retention_len);
	struct ml_log *copy = open_log(dst, 4096);
	ok(copy && append1(copy, "spam-7", NULL, ML_EXPECT_ANY) == 0 &&
	       ml_diag_code() == ML_ERR_REFUSED,
	   "the copy refuses the hard-deleted name: %s", ml_diag_last());
	is_str(copy ? versions(copy, "acct-1") : "", "5 6", "and keeps acct-1 to its last 2");
	ml_backup_free(&b);
	ml_log_close(copy);
	ml_log_close(log);
	rm_rf(src), rm_rf(dst);
	free(src), free(dst);
}

int main(void)
{
	plan(14);
	char *src = unit_tmpdir("backup-src"), *dst = unit_tmpdir("backup-dst");
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = src;
	o.segment_size = 16384; /* many segments */
	o.index_block = 32;	/* many blocks, and runs merged from them */
	struct ml_log *log = ml_log_open(&o);
	struct appender a = {.log = log};
	for (int i = 0; i < 2000; i++)
		append1(log, i % 2 ? "acct-1" : "acct-2", NULL, ML_EXPECT_ANY);
	pthread_t th;
	pthread_create(&th, NULL, append_steadily, &a);
	while (a.appended < 200) /* the load is on */
		usleep(1000);

	struct ml_backup b;
	ml_log_backup_files(log, &b);
	char logdir[600];
	snprintf(logdir, sizeof(logdir), "%s/log", dst);
	mkdir(logdir, 0700);
	int failed = 0, linked, segs = 0, idx = 0, copied = 0;
	for (size_t i = 0; i < b.n; i++) {
		failed += take(b.dir, logdir, &b.files[i], &linked) != 0;
		segs += linked && strstr(b.files[i].name, ".seg") != NULL;
		idx += linked && strstr(b.files[i].name, ".idx") != NULL;
		copied += !b.files[i].whole;
	}
	uint64_t more = a.appended;
	usleep(20000); /* appends go on after the copy */
	ok(a.appended > more, "appends went on during the backup (%llu, then %llu)",
	   (unsigned long long)more, (unsigned long long)a.appended);
	a.stop = 1;
	pthread_join(th, NULL);
	ok(failed == 0, "every listed file linked or copied");
	ok(segs > 3 && idx > 3 && copied == 1,
	   "sealed segments (%d) and their index files (%d) linked, one segment copied", segs, idx);
	ok(b.position >= 2200 && b.position < ml_log_head(log),
	   "the backup pinned position %llu, under steady appends (head now %llu)",
	   (unsigned long long)b.position, (unsigned long long)ml_log_head(log));

	struct ml_check_report r;
	int rc = ml_log_check(dst, 0, &r);
	ok(rc == 0 && !r.torn_tail, "check is clean on the copy: %s", rc ? ml_diag_last() : "ok");
	is_int(r.last_position, b.position, "the copy ends at the pinned position");

	struct ml_buf want = {0}, got = {0};
	dump_to(log, b.position, &want);
	struct ml_log *copy = open_log(dst, 16384);
	if (copy)
		dump_to(copy, 0, &got);
	ok(copy && want.len == got.len && memcmp(want.data, got.data, want.len) == 0,
	   "the copy holds the same events, byte for byte, at the same positions");
	is_int(copy ? ml_log_head(copy) : 0, b.position, "its head is the pinned position");
	is_int(copy ? append1(copy, "acct-9", NULL, ML_EXPECT_ANY) : 0, b.position + 1,
	       "the copy takes an append after it");
	ml_buf_free(&want), ml_buf_free(&got);
	ml_backup_free(&b);
	ml_log_close(copy);
	ml_log_close(log);
	rm_rf(src), rm_rf(dst);
	free(src), free(dst);
	retention_kept();
	return done_testing();
}
