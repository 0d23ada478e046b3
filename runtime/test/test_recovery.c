/*
 * Recovery: the last batch cut at every byte offset, and every single bit of
 * it flipped; each time the log must open with exactly the batches before it,
 * and check must call it a torn tail at the offset open cuts (not a failure),
 * then pass. Damage before the last batch (every bit of a middle batch, a
 * torn end of a segment that is not the last) must stop the open and fail
 * check, not be called a torn tail. A power loss that wrote the last write's
 * pages out of order (a page of it lost, later ones on disk) is cut by the open
 * by itself; damage in an earlier, synced write still stops it.
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

/* ---- a power loss ---- */

struct rec_at {
	size_t off, len;
	uint64_t position, synced;
	int first;
};

/* The records of a segment's bytes, in order (at most max). */
static size_t records_of(const uint8_t *p, size_t n, struct rec_at *out, size_t max)
{
	size_t k = 0;
	for (size_t o = SEG_HEADER; o + 48 <= n && k < max;) {
		size_t len = (size_t)p[o] | (size_t)p[o + 1] << 8 | (size_t)p[o + 2] << 16 |
			     (size_t)p[o + 3] << 24;
		if (len < 48 || len > n - o)
			break;
		uint64_t pos = 0, synced = UINT64_MAX;
		for (int b = 7; b >= 0; b--)
			pos = pos << 8 | p[o + 24 + b];
		if (p[o + 8] & 16) { /* the synced position: the record's last 8 bytes here */
			synced = 0;
			for (int b = 7; b >= 0; b--)
				synced = synced << 8 | p[o + len - 8 + b];
		}
		out[k++] = (struct rec_at){o, len, pos, synced, p[o + 8] & 1};
		o += len;
	}
	return k;
}

static struct ml_event_in big_event(const char *stream)
{
	static uint8_t data[3 + 1200];
	data[0] = 0xc5, data[1] = 1200 >> 8, data[2] = 1200 & 0xff; /* bin 16 */
	memset(data + 3, 'p', 1200);
	return (struct ml_event_in){stream, strlen(stream), "Paged",	  5,	NULL,
				    0,	    data,	    sizeof(data), NULL, 0};
}

struct queued {
	struct ml_append req;
	struct ml_event_in ev;
	int done;
};

static void queued_done(struct ml_append *req)
{
	__atomic_store_n(&((struct queued *)req->arg)->done, 1, __ATOMIC_RELEASE);
}

/*
 * Eight batches of about 1.3 KB queued together and written by one write and
 * one sync: the last write, spread over several pages. Returns the index of
 * its first record among n, or -1 (the flusher took them in two writes: the
 * caller tries again, within a generous bound).
 */
static long last_write(struct ml_log *log, const char *dir, uint8_t **seg, size_t *seg_len,
		       struct rec_at *recs, size_t *n)
{
	struct queued q[8];
	for (int i = 0; i < 8; i++) {
		q[i] = (struct queued){.ev = big_event("power-1")};
		q[i].req = (struct ml_append){.events = &q[i].ev,
					      .n_events = 1,
					      .done = queued_done,
					      .arg = &q[i],
					      .kick_later = 1};
		ml_log_submit(log, &q[i].req);
	}
	ml_log_kick(log);
	for (int i = 0; i < 8; i++)
		while (!__atomic_load_n(&q[i].done, __ATOMIC_ACQUIRE))
			usleep(1000);
	struct ml_log_stats st;
	ml_log_stats(log, &st);
	char path[512];
	snprintf(path, sizeof(path), "%s/log/" SEG1, dir);
	FILE *f = fopen(path, "rb");
	free(*seg);
	*seg = malloc(st.bytes);
	*seg_len = f ? fread(*seg, 1, st.bytes, f) : 0;
	if (f)
		fclose(f);
	*n = records_of(*seg, *seg_len, recs, 64);
	long w = (long)*n - 8;
	for (size_t i = (size_t)w; w >= 0 && i < *n; i++)
		if (recs[i].synced != recs[w].synced) /* one write: one synced position */
			return -1;
	return w;
}

static void power_loss(void)
{
	char *dir = unit_tmpdir("recovery-power");
	snprintf(seg_path, sizeof(seg_path), "%s/log/" SEG1, dir); /* for write_seg */
	struct ml_log *log = open_log(dir, 0);
	for (int i = 0; i < 3; i++) { /* written and synced one at a time: acknowledged */
		struct ml_event_in e = big_event("power-0");
		struct ml_append req = {.events = &e, .n_events = 1};
		ml_log_append(log, &req);
	}
	uint8_t *seg = NULL;
	size_t seg_len = 0, n = 0;
	struct rec_at recs[64];
	long w = -1;
	for (int tries = 0; tries < 5 && w < 0; tries++)
		w = last_write(log, dir, &seg, &seg_len, recs, &n);
	ml_log_close(log);
	ok(w >= 3 && recs[w].synced == recs[w].position - 1,
	   "a last write of 8 batches, each saying what was synced before it (%llu)",
	   (unsigned long long)(w >= 0 ? recs[w].synced : 0));
	if (w < 3) {
		free(seg);
		rm_rf(dir);
		free(dir);
		return;
	}
	size_t wstart = recs[w].off, wend = seg_len;
	/* The disk wrote the write's pages out of order and lost power: the page that holds its
	 * third batch was never written (it still holds the zeros written ahead), the pages
	 * after it were. */
	size_t page = recs[w + 2].off & ~(size_t)4095, lost_from = page > wstart ? page : wstart;
	size_t lost_to = page + 4096 < wend ? page + 4096 : wend;
	uint8_t *copy = malloc(seg_len);
	memcpy(copy, seg, seg_len);
	memset(copy + lost_from, 0, lost_to - lost_from);
	write_seg(copy, seg_len);
	long first_bad = w;
	while (recs[first_bad].off + recs[first_bad].len <= lost_from)
		first_bad++;
	uint64_t keep = recs[first_bad].position - 1;
	/* The batches after the lost page are whole; how many depends on where the write began
	 * in its page (at least two: eight batches of about 1.3 KB, the lost page ends at most
	 * 6.7 KB into the write). */
	uint64_t whole_after = 0;
	for (size_t i = (size_t)first_bad + 1; i < n; i++)
		whole_after += recs[i].off >= lost_to;
	struct ml_check_report r;
	ok(ml_log_check(dir, 0, &r) == 0 && r.torn_tail && r.lost_write && whole_after >= 2 &&
	       r.lost_batches == whole_after && r.torn_offset == recs[first_bad].off,
	   "check: a lost write from offset %llu, %llu whole batches after the damage (not "
	   "damage; %llu expected)",
	   (unsigned long long)r.torn_offset, (unsigned long long)r.lost_batches,
	   (unsigned long long)whole_after);
	log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	ok(log && ml_log_head(log) == keep && strstr(ml_log_recovered(log), "power loss"),
	   "the open cuts it by itself, keeping positions to %llu: %s", (unsigned long long)keep,
	   log ? ml_log_recovered(log) : ml_diag_last());
	ok(log && append1(log, "power-2", NULL, ML_EXPECT_ANY) == keep + 1,
	   "and appends go on from there");
	ml_log_close(log);
	ok(ml_log_check(dir, 0, &r) == 0 && !r.torn_tail && r.last_position == keep + 1,
	   "then check finds the log clean");

	/* Damage in an earlier write, synced and acknowledged, with the last write whole: the
	 * batches after it say they were written after it was synced. */
	memcpy(copy, seg, seg_len);
	copy[recs[1].off + 60] ^= 0x08;
	write_seg(copy, seg_len);
	ok(ml_log_check(dir, 0, &r) != 0 && !r.torn_tail && !r.lost_write &&
	       r.bad_offset == recs[1].off,
	   "damage in an acknowledged write fails check: %s", ml_diag_last());
	log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	ok(log == NULL && ml_diag_code() == ML_ERR_CORRUPT, "and stops the open: %s",
	   ml_diag_last());
	ml_log_close(log);
	/* The same in the last write's first batch, with its later batches whole: cut. */
	memcpy(copy, seg, seg_len);
	copy[recs[w].off + 60] ^= 0x08;
	write_seg(copy, seg_len);
	log = open_log_fsync(dir, 0, ML_FSYNC_NEVER);
	ok(log && ml_log_head(log) == recs[w].position - 1,
	   "damage in the last write's first batch is cut with the whole write: %s",
	   log ? ml_log_recovered(log) : ml_diag_last());
	ml_log_close(log);
	free(copy);
	free(seg);
	rm_rf(dir);
	free(dir);
}

/* A log of the format before this one (a segment of format 1, no index files, written by the
 * moonlog before): it opens, is indexed once, and new records go to a segment of format 2. */
static void old_format(void)
{
	char *dir = unit_tmpdir("recovery-v1"), cmd[1024], path[512];
	snprintf(cmd, sizeof(cmd), "cp -r '%s/runtime/test/data/v1-log/log' '%s/'", ML_SOURCE_DIR,
		 dir);
	ok(system(cmd) == 0, "a data folder of format 1");
	struct ml_log *log = open_log(dir, 0);
	ok(log && ml_log_head(log) == 8 && strstr(ml_log_recovered(log), "format 1"), "opens: %s",
	   log ? ml_log_recovered(log) : ml_diag_last());
	ok(log && ml_log_stream_version(log, "account-0", 9) == 3 &&
	       ml_log_stream_version(log, "order-1", 7) == 2,
	   "with its streams' versions");
	struct ml_event_in e = ev("account-1", "Deposited", "dep-1");
	struct ml_append req = {.events = &e, .n_events = 1};
	ok(log && ml_log_append(log, &req) == 0 && req.duplicate && req.first_position == 1,
	   "and its ids: a retry is a duplicate of position 1");
	ok(log && append1(log, "account-1", NULL, 3) == 9, "appends go on at position 9");
	ml_log_close(log);
	snprintf(path, sizeof(path), "%s/log/00000000000000000009.seg", dir);
	FILE *f = fopen(path, "rb");
	uint8_t hdr[12] = {0};
	ok(f && fread(hdr, 1, 12, f) == 12 && hdr[8] == 2, "in a new segment, of format 2");
	if (f)
		fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "cmp -s '%s/runtime/test/data/v1-log/log/" SEG1 "' '%s/log/" SEG1 "'",
		 ML_SOURCE_DIR, dir);
	ok(system(cmd) == 0, "the old segment is left as it was");
	struct ml_check_report r;
	ok(ml_log_check(dir, 0, &r) == 0 && r.records == 9, "check passes");
	log = open_log(dir, 0);
	struct collect c = {0};
	ok(log && ml_log_recovered(log)[0] == '\0' &&
	       ml_log_read_all(log, 1, 0, collect_fn, &c) == 9,
	   "and the next open has nothing to redo ('%s')", log ? ml_log_recovered(log) : "");
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
	power_loss();
	old_format();
	free(dir);
	return done_testing();
}
