/*
 * fuzz_log.c - segment files as the disk may hold them (torn, damaged, or
 * written by hand) through recovery at open and through `moonlog check`:
 * record.c, scan.c, open.c, index.c, check.c and the reads that follow.
 *
 * The input is a flags byte, then one or more segment files back to back: a
 * new file starts at each "MOONLOG\0" after the first, named after the first
 * position its header gives. Flag bit 0 recomputes each header's checksum and
 * bit 1 each record's, so that mutations get past the checksums to the checks
 * behind them; without them a changed byte mostly shows as a bad checksum.
 *
 * Promises held: neither check nor open crashes; each either succeeds or
 * refuses with a reason; what check finds clean, open opens, at the same last
 * position; a torn tail that open cut off is gone for the next check; and an
 * opened log reads back every event it counted, in order, through $all (read
 * and scanned) and through each stream, forward and backward.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <moonlog/codec.h>
#include <moonlog/log.h>

#include "fuzz.h"
#include "log/record.h"

#define MAX_SEGMENTS 8

static char dir[600], logdir[640];

static void fix_checksums(uint8_t *p, size_t n, int header, int records)
{
	if (header && n >= ML_SEG_HEADER)
		ml_put32(p + 60, ml_crc32c(0, p, 60));
	for (size_t o = ML_SEG_HEADER; records && o + ML_REC_HEADER <= n;) {
		uint32_t len = ml_le32(p + o);
		if (len < ML_REC_HEADER || len > n - o)
			break;
		ml_put32(p + o + 4, ml_crc32c(ml_crc32c(0, p + o, 4), p + o + 8, len - 8));
		o += len;
	}
}

static void write_segment(const uint8_t *p, size_t n, int index)
{
	char path[700];
	uint64_t first = n >= 24 ? ml_le64(p + 16) : (uint64_t)index + 1;
	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".seg", logdir, first);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	FUZZ_ASSERT(fd >= 0, "cannot write %s", path);
	FUZZ_ASSERT(write(fd, p, n) == (ssize_t)n, "cannot write %s", path);
	close(fd);
}

/* Lays the input out as segment files in a fresh DIR/log. */
static void lay_out(const uint8_t *data, size_t size)
{
	static const char magic[8] = "MOONLOG";
	uint8_t flags = data[0];
	const uint8_t *p = data + 1, *end = data + size;
	fuzz_rm_rf(dir);
	FUZZ_ASSERT(mkdir(dir, 0700) == 0 && mkdir(logdir, 0700) == 0, "cannot make %s", logdir);
	for (int i = 0; i < MAX_SEGMENTS && p < end; i++) {
		const uint8_t *next = p + 1;
		while (i + 1 < MAX_SEGMENTS && next + 8 <= end && memcmp(next, magic, 8) != 0)
			next++;
		if (i + 1 == MAX_SEGMENTS || next + 8 > end)
			next = end;
		size_t n = (size_t)(next - p);
		uint8_t *seg = malloc(n ? n : 1);
		memcpy(seg, p, n);
		fix_checksums(seg, n, flags & 1, flags & 2);
		write_segment(seg, n, i);
		free(seg);
		p = next;
	}
}

struct reading {
	uint64_t next, count;
	const char *stream;
	size_t stream_len;
	struct ml_buf json;
};

static int read_event(const struct ml_event *e, void *arg)
{
	struct reading *r = arg;
	FUZZ_ASSERT(r->stream || e->position == r->next,
		    "$all gave position %" PRIu64 " for %" PRIu64, e->position, r->next);
	FUZZ_ASSERT(!r->stream || (e->stream_len == r->stream_len &&
				   memcmp(e->stream, r->stream, r->stream_len) == 0),
		    "a stream's read gave an event of another stream");
	r->next = e->position + 1;
	r->count++;
	/* What a reader does with the bytes: the data may be anything, it must not crash. */
	r->json.len = 0;
	if (e->data_len)
		ml_msgpack_to_json(e->data, e->data_len, &r->json);
	if (e->meta_len)
		ml_msgpack_to_json(e->meta, e->meta_len, &r->json);
	return 0;
}

/* A stream reads back as many events as its version, or, in a log whose first segments are
 * gone, at most as many (and as many forwards as backwards). */
static int read_stream(const char *name, size_t len, uint64_t version, void *arg)
{
	struct ml_log *log = arg;
	int whole = ml_log_first(log) == 1;
	struct reading r = {.stream = name, .stream_len = len};
	int64_t n = ml_log_read_stream(log, name, len, 1, 0, 0, read_event, &r);
	FUZZ_ASSERT(whole ? n == (int64_t)version : n >= 0 && (uint64_t)n <= version,
		    "a stream of version %" PRIu64 " read %" PRIu64 " events", version, r.count);
	r.count = 0;
	FUZZ_ASSERT(ml_log_read_stream(log, name, len, 0, 0, 1, read_event, &r) == n,
		    "a stream of version %" PRIu64 " read %" PRIu64 " backwards", version, r.count);
	ml_buf_free(&r.json);
	return 0;
}

static void read_everything(struct ml_log *log)
{
	uint64_t head = ml_log_head(log), first = ml_log_first(log);
	struct reading r = {.next = first}; /* from 1: it starts at the first position kept */
	FUZZ_ASSERT(ml_log_read_all(log, 1, 0, read_event, &r) == (int64_t)(head + 1 - first),
		    "$all from %" PRIu64 " to %" PRIu64 " read %" PRIu64 " events", first, head,
		    r.count);
	r = (struct reading){.next = first, .json = r.json};
	FUZZ_ASSERT(ml_log_scan(log, 1, 0, read_event, &r) == (int64_t)(head + 1 - first),
		    "a scan from %" PRIu64 " to %" PRIu64 " read %" PRIu64 " events", first, head,
		    r.count);
	ml_buf_free(&r.json);
	FUZZ_ASSERT(ml_log_streams(log, "", read_stream, log) == 0, "cannot list the streams");
}

static void refused_with_reason(const char *what)
{
	FUZZ_ASSERT(ml_diag_code() != ML_OK && ml_diag_last()[0], "%s failed without a reason",
		    what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "%s/data", fuzz_scratch_dir());
		snprintf(logdir, sizeof(logdir), "%s/log", dir);
	}
	lay_out(data, size);

	struct ml_check_report before, after;
	ml_diag_clear();
	int clean = ml_log_check(dir, 0, &before) == 0;
	if (!clean)
		refused_with_reason("check");

	/* Read-only first: the same walk and index as a writing open, without its threads
	 * (whose 4 MiB of zeros per open would be most of a run's time). */
	struct ml_log_options o;
	ml_log_options_init(&o);
	o.dir = dir;
	o.readonly = 1;
	ml_diag_clear();
	struct ml_log *log = ml_log_open(&o);
	FUZZ_ASSERT(log || !clean, "open refused a log that check finds clean");
	if (log == NULL) {
		refused_with_reason("open");
		return 0;
	}
	uint64_t head = ml_log_head(log);
	FUZZ_ASSERT(!clean || head == before.last_position,
		    "open counted %" PRIu64 " events, check %" PRIu64, head, before.last_position);
	read_everything(log);
	ml_log_close(log);
	if (!before.torn_tail)
		return 0;

	/* A torn tail: a writing open cuts it off, and then nothing is left to find. */
	o.readonly = 0;
	o.fsync = ML_FSYNC_NEVER;
	ml_diag_clear();
	log = ml_log_open(&o);
	FUZZ_ASSERT(log != NULL, "a writing open refused what a read-only one took: %s",
		    ml_diag_last());
	FUZZ_ASSERT(ml_log_head(log) == head, "the writing open counted %" PRIu64 ", not %" PRIu64,
		    ml_log_head(log), head);
	ml_log_close(log);
	ml_diag_clear();
	FUZZ_ASSERT(ml_log_check(dir, 0, &after) == 0 && after.last_position == head,
		    "after open cut the torn tail, check still finds: %s", ml_diag_last());
	return 0;
}
