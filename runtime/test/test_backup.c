/*
 * test_backup.c - ml_log_backup_files: the files it lists, linked or copied as
 * it says while appends go on, make a log that checks clean and holds exactly
 * the events up to the position it pinned, byte for byte, at the same
 * positions; and that log takes appends after it.
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

int main(void)
{
	plan(9);
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
	return done_testing();
}
