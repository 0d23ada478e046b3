/*
 * check.c - `moonlog check`: verify every record of every segment.
 *
 * Unlike recovery at open, check reads every byte and verifies every
 * checksum, in every segment. A torn tail of the last segment, or a lost
 * write (what a crash or a power loss leaves, decided by the same rule as
 * open: ml_scan_torn_tail) is reported but is not a failure: it was never
 * acknowledged and the next open cuts it off. With repair it cuts that tail
 * and nothing else; with repair 2 (--force) it also cuts the last segment at
 * damage that good records follow.
 * The index files are verified against the records too (check_index.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/index.h"
#include "log/log_internal.h"
#include "log/scan.h"

/* Cuts the torn tail of the last segment, holding the log's lock while doing it. */
static int repair_tail(const char *logdir, const char *name, uint64_t good_end, uint64_t size,
		       struct ml_check_report *r)
{
	char path[4096 + 64];
	snprintf(path, sizeof(path), "%s/LOCK", logdir);
	int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, ML_FILE_MODE);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) {
		if (lock >= 0)
			close(lock);
		return ml_diag_set(ML_ERR_BUSY,
				   "cannot repair: the log in %s is in use by another "
				   "process; stop it first",
				   logdir);
	}
	snprintf(path, sizeof(path), "%s/%s", logdir, name);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	int rc = fd >= 0 && ftruncate(fd, (off_t)good_end) == 0 && fdatasync(fd) == 0 ? 0 : -1;
	if (rc != 0)
		ml_diag_set(ML_ERR_IO, "cannot cut %s: %s", path, strerror(errno));
	else
		r->cut_bytes = size - good_end;
	if (fd >= 0)
		close(fd);
	close(lock);
	return rc;
}

/* Where the written bytes of [from, size) end: the zeros written ahead are not data. */
static uint64_t written_end(const uint8_t *p, uint64_t from, uint64_t size)
{
	while (size > from && p[size - 1] == 0)
		size--;
	return size;
}

/* What the index files are checked with: the log folder, and the seed of the index. */
struct check_ctx {
	const char *logdir;
	int dirfd, have_seed;
	uint64_t seed;
};

static int count_stub(const struct ml_rec *rec, uint64_t offset, void *arg)
{
	(void)offset;
	((struct ml_check_report *)arg)->stubs += (rec->flags & ML_REC_REMOVED) != 0;
	return 0;
}

static int check_segment(const struct check_ctx *x, uint64_t first, int last, int repair,
			 uint64_t *next, struct ml_check_report *r)
{
	const char *logdir = x->logdir;
	char name[32], path[4096 + 64];
	ml_seg_name(name, first);
	snprintf(path, sizeof(path), "%s/%s", logdir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return ml_diag_set(ML_ERR_IO, "cannot open %s: %s", path, strerror(e));
	}
	uint64_t size = (uint64_t)st.st_size, hdr_first = 0;
	uint8_t *p = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
	close(fd);
	if (size && p == MAP_FAILED)
		return ml_diag_set(ML_ERR_IO, "cannot map %s: %s", path, strerror(errno));

	int rc = 0;
	snprintf(r->bad_segment, sizeof(r->bad_segment), "%s", name);
	if (ml_seg_header_parse(p, size, &hdr_first) != 0 || hdr_first != first || first != *next) {
		r->bad_offset = 0;
		rc = ml_diag_set(ML_ERR_CORRUPT,
				 "%s, offset 0: bad segment header or first position %" PRIu64
				 " out of sequence (expected %" PRIu64 ")",
				 path, hdr_first, *next);
		goto out;
	}
	struct ml_scan sc = {.next_position = first,
			     .scavenged = ml_seg_format(p) == ML_FORMAT_SCAVENGED};
	ml_scan_segment(p, size, 1, &sc, sc.scavenged ? count_stub : NULL, r);
	r->segments++;
	r->scavenged += sc.scavenged;
	r->records += sc.records;
	r->batches += sc.batches;
	*next = sc.next_position;
	r->last_position = sc.next_position - 1;
	if (sc.status == ML_SCAN_CLEAN) {
		r->bad_segment[0] = '\0';
		rc = ml_check_index(x->dirfd, x->seed, x->have_seed, first, p, size, *next, repair,
				    r);
		goto out;
	}
	r->bad_offset = sc.bad_offset;
	r->torn_tail = ml_scan_torn_tail(&sc, last);
	if (r->torn_tail) {
		/* what a crash leaves, not damage: the next open cuts it off at good_end */
		r->torn_offset = sc.good_end;
		r->torn_bytes = written_end(p, sc.good_end, size) - sc.good_end;
		r->lost_write = sc.status == ML_SCAN_FLUSH;
		r->lost_batches = sc.after_batches;
		rc = ml_check_index(x->dirfd, x->seed, x->have_seed, first, p, size, *next, repair,
				    r);
		if (rc == 0 && repair >= 1)
			rc = repair_tail(logdir, name, sc.good_end, size, r);
		goto out;
	}
	if (last && repair >= 2) {
		rc = repair_tail(logdir, name, sc.good_end, size, r);
		goto out;
	}
	rc =
	    ml_diag_set(ML_ERR_CORRUPT, "%s, offset %" PRIu64 ": %s%s", path, sc.bad_offset, sc.why,
			last ? " (good records follow it, written after it was synced: this is "
			       "not what a crash or a power loss leaves; 'moonlog check --repair "
			       "--force' cuts the segment there, losing them)"
			     : "");
out:
	if (size)
		munmap(p, size);
	return rc;
}

int ml_log_check(const char *dir, int repair, struct ml_check_report *r)
{
	return ml_log_check_progress(dir, repair, r, NULL, NULL);
}

int ml_log_check_progress(const char *dir, int repair, struct ml_check_report *r,
			  ml_check_progress_fn progress, void *arg)
{
	char logdir[4096];
	uint64_t *firsts = NULL, next = 1;
	size_t n = 0;
	memset(r, 0, sizeof(*r));
	snprintf(logdir, sizeof(logdir), "%s/log", dir);
	if (ml_seg_list(logdir, 0, &firsts, &n) != 0)
		return -1;
	if (n > 0 && firsts[0] > 0) /* the first segments may have been dropped */
		next = firsts[0];
	struct check_ctx x = {logdir, open(logdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), 0, 0};
	x.have_seed = x.dirfd >= 0 && ml_index_read_seed(x.dirfd, &x.seed) == 0;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (progress)
			progress(r, i, n, arg);
		rc = check_segment(&x, firsts[i], i + 1 == n, repair, &next, r);
	}
	if (rc == 0 && x.dirfd >= 0)
		rc = ml_check_runs(x.dirfd, logdir, x.seed, x.have_seed, repair, r);
	if (x.dirfd >= 0)
		close(x.dirfd);
	free(firsts);
	return rc;
}
