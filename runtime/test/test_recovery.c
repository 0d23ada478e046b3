/*
 * Recovery: the last batch cut at every byte offset, and every single bit of
 * it flipped; each time the log must open with exactly the batches before it,
 * and check must call it a torn tail at the offset open cuts (not a failure),
 * then pass. Damage before the last batch (every bit of a middle batch, a
 * torn end of a segment that is not the last) must stop the open and fail
 * check, not be called a torn tail.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <moonlog/log.h>

#include "test/log_helpers.h"
#include "test/unit.h"

#define SEG1	   "00000000000000000001.seg"
#define SEG_HEADER 64 /* docs/log.md: the segment header before the records */

static char seg_path[512];
static uint8_t *pristine;
static size_t pristine_len, last_batch_at, first_batch_end, second_batch_end;

static int recovers_to_five_plus(const char *dir, uint64_t extra);

static void write_seg(const uint8_t *p, size_t n)
{
	int fd = open(seg_path, O_WRONLY | O_TRUNC);
	if (fd < 0 || write(fd, p, n) != (ssize_t)n)
		perror("write_seg");
	close(fd);
}

/* Builds 4 batches (1, 3, 1, 3 events) and remembers where the last one starts. */
static void build(const char *dir)
{
	struct ml_log *log = open_log(dir, 0);
	for (int b = 0; b < 4; b++) {
		struct ml_event_in evs[3] = {ev("acc-1", "A", NULL), ev("acc-2", "B", NULL),
					     ev("acc-1", "C", NULL)};
		struct ml_append req = {.events = evs, .n_events = b % 2 ? 3 : 1};
		ml_log_append(log, &req);
		struct ml_log_stats st;
		ml_log_stats(log, &st); /* bytes: where the data ends (zeros are written ahead) */
		if (b == 0)
			first_batch_end = (size_t)st.bytes;
		if (b == 1)
			second_batch_end = (size_t)st.bytes;
		if (b == 2)
			last_batch_at = (size_t)st.bytes;
		pristine_len = (size_t)st.bytes;
	}
	/* the zeros are written ahead by a thread of the log's own: give it a moment */
	snprintf(seg_path, sizeof(seg_path), "%s/log/" SEG1, dir);
	struct stat zs;
	for (int i = 0; i < 500 && stat(seg_path, &zs) == 0 && (size_t)zs.st_size <= pristine_len;
	     i++)
		usleep(10000);
	ml_log_close(log);
	int fd = open(seg_path, O_RDONLY);
	struct stat st;
	fstat(fd, &st);
	ok((size_t)st.st_size > pristine_len, "zeros are written ahead of the data (%zu > %zu)",
	   (size_t)st.st_size, pristine_len);
	ok(recovers_to_five_plus(dir, 3), "a log with zeros after its data opens whole");
	pristine = malloc(pristine_len);
	if (read(fd, pristine, pristine_len) != (ssize_t)pristine_len)
		perror("read");
	close(fd);
}

/* Opens the damaged log: does it hold exactly positions 1..5 (the first three batches)? */
static int recovers_to_five(const char *dir)
{
	return recovers_to_five_plus(dir, 0);
}

static int recovers_to_five_plus(const char *dir, uint64_t extra)
{
	/* fsync never: thousands of reopenings need no syncs to prove what recovery keeps */
	struct ml_log *log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	if (log == NULL)
		return 0;
	struct collect c = {0};
	ml_log_read_all(log, 1, 0, collect_fn, &c);
	int good = ml_log_head(log) == 5 + extra && c.n == (int)(5 + extra) &&
		   ml_log_stream_version(log, "acc-1", 5) == 4 + (extra ? 2 : 0);
	/* the log must take appends after the cut, at the next position */
	good = good && append1(log, "acc-3", NULL, ML_EXPECT_ANY) == 6 + extra;
	ml_log_close(log);
	struct ml_check_report r;
	return good && ml_log_check(dir, 0, &r) == 0 && r.records == 6 + extra;
}

/* The bytes of p[from, to) that are written: zeros at the end are not counted. */
static size_t written(const uint8_t *p, size_t from, size_t to)
{
	while (to > from && p[to - 1] == 0)
		to--;
	return to - from;
}

/*
 * check's verdict on the log as it is: 'c' clean, 't' a torn tail where open
 * cuts (the last batch's offset) of `bytes` bytes (or any, if -1), 'd' damage,
 * '?' anything else (a torn tail elsewhere, or a failure called torn).
 */
static char verdict(const char *dir, long bytes)
{
	struct ml_check_report r;
	if (ml_log_check(dir, 0, &r) != 0)
		return r.torn_tail ? '?' : 'd';
	if (!r.torn_tail)
		return 'c';
	int where = r.torn_offset == last_batch_at && strcmp(r.bad_segment, SEG1) == 0 &&
		    r.records == 5 && r.last_position == 5;
	return where && (bytes < 0 || r.torn_bytes == (uint64_t)bytes) ? 't' : '?';
}

/*
 * A torn end of a segment that is not the last one is damage: sealed segments
 * were synced before the next one started, so no crash leaves that.
 */
static void torn_sealed_segment(void)
{
	char *dir = unit_tmpdir("recovery-sealed");
	struct ml_log *log = open_log(dir, 4096);
	struct ml_log_stats st = {0};
	for (int i = 0; i < 200 && st.segments < 2; i++) {
		append1(log, "acc-1", NULL, ML_EXPECT_ANY);
		ml_log_stats(log, &st);
	}
	ml_log_close(log);
	char path[512];
	snprintf(path, sizeof(path), "%s/log/" SEG1, dir);
	int fd = open(path, O_RDWR);
	struct stat fs;
	fstat(fd, &fs);
	uint8_t *p = malloc((size_t)fs.st_size);
	if (read(fd, p, (size_t)fs.st_size) != fs.st_size)
		perror("read");
	/* cut its last record short, as an unfinished write would */
	size_t end = SEG_HEADER + written(p, SEG_HEADER, (size_t)fs.st_size);
	if (ftruncate(fd, (off_t)(end - 7)) != 0)
		perror("ftruncate");
	close(fd);
	free(p);
	struct ml_check_report r;
	ok(st.segments >= 2 && ml_log_check(dir, 0, &r) != 0 && !r.torn_tail &&
	       strcmp(r.bad_segment, SEG1) == 0,
	   "a torn end of the first of %llu segments is damage: %s",
	   (unsigned long long)st.segments, ml_diag_last());
	log = open_log_fsync(dir, 4096, ML_FSYNC_NEVER);
	ok(log == NULL && ml_diag_code() == ML_ERR_CORRUPT, "and open refuses it: %s",
	   ml_diag_last());
	ml_log_close(log);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	signal(SIGXFSZ, SIG_IGN);
	char *dir = unit_tmpdir("recovery");
	build(dir);
	ok(last_batch_at > 64 && last_batch_at < pristine_len, "the last batch is at %zu of %zu",
	   last_batch_at, pristine_len);

	int cuts_ok = 1, cuts = 0;
	for (size_t cut = last_batch_at; cut <= pristine_len; cut++, cuts++) {
		write_seg(pristine, cut);
		char want = cut == last_batch_at || cut == pristine_len ? 'c' : 't';
		char got = verdict(dir, (long)written(pristine, last_batch_at, cut));
		if (got != want || (cut < pristine_len && !recovers_to_five(dir))) {
			printf("# cut at %zu: check says '%c', not '%c' (%s)\n", cut, got, want,
			       ml_diag_last());
			cuts_ok = 0;
			break;
		}
	}
	ok(cuts_ok,
	   "cut at each of %d offsets: check calls it a torn tail where open cuts it, "
	   "and the first three batches are kept",
	   cuts);

	/* The same torn writes inside zeros written ahead: the bytes after the cut are zeros. */
	int zeroed_ok = 1;
	uint8_t *z = calloc(1, pristine_len + 8192);
	for (size_t cut = last_batch_at + 1; cut < pristine_len && zeroed_ok; cut++) {
		memset(z, 0, pristine_len + 8192);
		memcpy(z, pristine, cut);
		write_seg(z, pristine_len + 8192);
		char got = verdict(dir, (long)written(pristine, last_batch_at, cut));
		if (got != 't' || !recovers_to_five(dir)) {
			printf("# zeroed cut at %zu failed: check says '%c'\n", cut, got);
			zeroed_ok = 0;
		}
	}
	free(z);
	ok(zeroed_ok, "a batch torn inside zeros written ahead: a torn tail at each offset, cut");

	int flips_ok = 1, flips = 0;
	uint8_t *copy = malloc(pristine_len);
	for (size_t byte = last_batch_at; byte < pristine_len && flips_ok; byte++)
		for (int bit = 0; bit < 8; bit++, flips++) {
			memcpy(copy, pristine, pristine_len);
			copy[byte] ^= (uint8_t)(1 << bit);
			write_seg(copy, pristine_len);
			char got = verdict(dir, -1);
			if (got != 't' || !recovers_to_five(dir)) {
				printf("# flip of bit %d at byte %zu failed: check says '%c'\n",
				       bit, byte, got);
				flips_ok = 0;
				break;
			}
		}
	ok(flips_ok, "each of %d single-bit flips in the last batch: a torn tail, it alone is cut",
	   flips);

	/* Each byte of a batch in the middle (one bit, a different one each time): damage,
	 * never a torn tail; the open refuses. */
	int middle_ok = 1, middle = 0;
	for (size_t byte = first_batch_end; byte < second_batch_end && middle_ok;
	     byte++, middle++) {
		int bit = (int)(byte % 8);
		memcpy(copy, pristine, pristine_len);
		copy[byte] ^= (uint8_t)(1 << bit);
		write_seg(copy, pristine_len);
		char got = verdict(dir, -1);
		struct ml_log_options o; /* opened quietly: hundreds of refusals */
		ml_log_options_init(&o);
		o.dir = dir;
		o.fsync = ML_FSYNC_NEVER;
		struct ml_log *l = ml_log_open(&o);
		if (got != 'd' || l != NULL || ml_diag_code() != ML_ERR_CORRUPT) {
			printf("# flip of bit %d at byte %zu: check says '%c', open %s\n", bit,
			       byte, got, l ? "went on" : "refused");
			middle_ok = 0;
			ml_log_close(l);
		}
	}
	ok(middle_ok,
	   "a bit flipped in each of the %d bytes of a middle batch: damage (check fails, "
	   "open refuses)",
	   middle);

	/* Repair: a torn tail is cut by check --repair. */
	write_seg(pristine, pristine_len - 7);
	struct ml_check_report r;
	ok(ml_log_check(dir, 0, &r) == 0 && r.torn_tail && r.cut_bytes == 0,
	   "check reports a torn tail, and cuts nothing without --repair");
	ok(ml_log_check(dir, 1, &r) == 0 && r.cut_bytes > 0, "--repair cuts it (%llu bytes)",
	   (unsigned long long)r.cut_bytes);
	ok(ml_log_check(dir, 0, &r) == 0 && r.records == 5, "and then check passes");

	/* Damage before the last batch is not a torn tail: open refuses, check points at it. */
	memcpy(copy, pristine, pristine_len);
	copy[first_batch_end - 3] ^= 0x10;
	write_seg(copy, pristine_len);
	struct ml_log *log = open_log(dir, 0);
	ok(log == NULL && ml_diag_code() == ML_ERR_CORRUPT, "damage mid-log stops the open: %s",
	   ml_diag_last());
	ok(ml_log_check(dir, 1, &r) != 0 && !r.torn_tail && r.bad_offset == 64,
	   "check names the bad record at offset %llu: %s", (unsigned long long)r.bad_offset,
	   ml_diag_last());
	ok(strstr(ml_diag_last(), "00000000000000000001.seg") != NULL, "and its segment");
	ok(ml_log_check(dir, 2, &r) == 0 && r.cut_bytes > 0, "--repair --force cuts it anyway");
	ok(ml_log_check(dir, 0, &r) == 0 && r.records == 0, "leaving the records before it (none)");
	ml_log_close(log);
	free(copy);
	free(pristine);
	rm_rf(dir);
	torn_sealed_segment();
	free(dir);
	return done_testing();
}
