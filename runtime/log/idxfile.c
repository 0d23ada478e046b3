/*
 * idxfile.c - a segment's index file (<first>.idx): its blocks, appended as
 * chunks are written down, and loaded at open (the format is in index.h).
 *
 * A block is written as its sections, synced, then its header, synced, so a
 * header that reads well at open stands for sections that are on disk; a
 * block whose header does not read well (a crash while it was written) is cut
 * off, and its events are walked again from the segment. A segment indexed
 * from nothing (its index file missing, or the log of a moonlog before index
 * files) has its blocks written to a temporary file, synced and renamed over
 * the index file at the end. Each block is mapped on its own, read-only: the
 * page cache holds it, and a mapping never changes once made.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/index.h"
#include "log/log_internal.h"
#include "log/record.h"

#define IDX_HEADER 64
#define IDX_FORMAT 1

static const char idx_magic[8] = "MLINDEX";

static void idx_name(char out[48], uint64_t first, int tmp)
{
	snprintf(out, 48, "%020" PRIu64 ".idx%s", first, tmp ? ".tmp" : "");
}

static uint64_t align_up(uint64_t v)
{
	return (v + ML_IDX_ALIGN - 1) & ~(uint64_t)(ML_IDX_ALIGN - 1);
}

/* The header; `scavenges`: the rewrite of the segment it indexes (record.h), 0 for none. */
static void header_encode(uint8_t out[IDX_HEADER], uint64_t first, uint64_t seed,
			  uint32_t scavenges)
{
	memset(out, 0, IDX_HEADER);
	memcpy(out, idx_magic, 8);
	ml_put32(out + 8, IDX_FORMAT);
	ml_put32(out + 12, IDX_HEADER);
	ml_put64(out + 16, first);
	ml_put64(out + 24, seed);
	ml_put32(out + 32, scavenges);
	ml_put32(out + 60, ml_crc32c(0, out, 60));
}

/* An index file of another rewrite of its segment (a crash between a scavenge's renames, or
 * files copied at different moments) is built again, as one of another seed is. */
static int header_ok(const uint8_t *p, uint64_t first, uint64_t seed, uint32_t scavenges)
{
	return memcmp(p, idx_magic, 8) == 0 && ml_le32(p + 60) == ml_crc32c(0, p, 60) &&
	       ml_le32(p + 8) == IDX_FORMAT && ml_le64(p + 16) == first &&
	       ml_le64(p + 24) == seed && ml_le32(p + 32) == scavenges;
}

int ml_pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = ENOSPC;
			return -1;
		}
		p += w, n -= (size_t)w, off += (uint64_t)w;
	}
	return 0;
}

void ml_block_free(struct ml_block *b)
{
	if (b == NULL)
		return;
	if (b->owned)
		free(b->map);
	else if (b->map)
		munmap(b->map, b->map_len);
	free(b);
}

/* Maps the block at `at` of fd and reads it: the block, or NULL. */
static struct ml_block *map_block(struct ml_log *log, int fd, uint64_t at, uint64_t avail)
{
	uint8_t head[ML_TABLE_HEADER];
	if (avail < ML_TABLE_HEADER || pread(fd, head, sizeof(head), (off_t)at) != sizeof(head))
		return NULL;
	uint64_t len = ml_tload64(head + 16);
	if (ml_tload32(head) != ML_BLOCK_MAGIC || len < ML_TABLE_HEADER || len > avail)
		return NULL;
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)at);
	if (p == MAP_FAILED)
		return NULL;
	struct ml_block *b = ml_xcalloc(1, sizeof(*b));
	if (ml_block_open(b, p, len, log->seed) != 0) {
		munmap(p, len);
		free(b);
		return NULL;
	}
	b->map = p;
	b->map_len = len;
	return b;
}

size_t ml_idx_load(struct ml_log *log, struct ml_seg *seg, uint64_t seg_size, int as_runs)
{
	char name[48];
	idx_name(name, seg->first, 0);
	int fd = openat(log->dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t head[IDX_HEADER];
	seg->idx_end = 0;
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) != 0 || pread(fd, head, sizeof(head), 0) != sizeof(head) ||
	    !header_ok(head, seg->first, log->seed, seg->scavenges)) {
		close(fd);
		return 0; /* built again whole, over it */
	}
	uint64_t size = (uint64_t)st.st_size, at = ML_IDX_ALIGN, next = seg->first;
	uint64_t data = ML_SEG_HEADER;
	size_t n = 0;
	while (at < size) {
		struct ml_block *b = map_block(log, fd, at, size - at);
		if (b && (b->t.first != next || b->data_start != data || b->data_end > seg_size)) {
			ml_block_free(b);
			b = NULL;
		}
		if (b == NULL)
			break;
		b->seg = seg;
		ml_index_add_block(log, b);
		if (as_runs)
			ml_index_add_run(log, ml_run_of_block(b));
		next = b->t.last + 1;
		data = b->data_end;
		at = align_up(at + b->t.length);
		n++;
	}
	close(fd);
	if (at < size && !log->opt.readonly) { /* a torn or bad block: cut it and what follows */
		int wfd = openat(log->dirfd, name, O_WRONLY | O_CLOEXEC);
		if (wfd < 0 || ftruncate(wfd, (off_t)at) != 0 || fdatasync(wfd) != 0)
			at = 0; /* could not: build it again whole */
		if (wfd >= 0)
			close(wfd);
	}
	seg->idx_end = at;
	return n;
}

/* Makes a new index file for seg, header only: temporary file, sync, rename. */
static int create_file(struct ml_log *log, struct ml_seg *seg, int keep_tmp)
{
	char name[48], tmp[48];
	uint8_t head[IDX_HEADER];
	idx_name(name, seg->first, 0);
	idx_name(tmp, seg->first, 1);
	header_encode(head, seg->first, log->seed, seg->scavenges);
	int fd = openat(log->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, ML_FILE_MODE);
	if (fd < 0 || ml_pwrite_all(fd, head, sizeof(head), 0) != 0 ||
	    (!keep_tmp && (fdatasync(fd) != 0 || renameat(log->dirfd, tmp, log->dirfd, name) != 0 ||
			   fsync(log->dirfd) != 0))) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		unlinkat(log->dirfd, tmp, 0);
		return ml_diag_set(ML_ERR_IO, "cannot create the index file %s: %s", name,
				   strerror(e));
	}
	seg->idx_end = ML_IDX_ALIGN;
	if (keep_tmp)
		return fd;
	close(fd);
	return 0;
}

int ml_idx_whole_begin(struct ml_log *log, struct ml_seg *seg)
{
	if (log->opt.readonly)
		return 0;
	int fd = create_file(log, seg, 1);
	if (fd < 0)
		return -1;
	seg->idx_fd = fd;
	return 0;
}

int ml_idx_whole_end(struct ml_log *log, struct ml_seg *seg)
{
	if (seg->idx_fd < 0)
		return 0;
	char name[48], tmp[48];
	idx_name(name, seg->first, 0);
	idx_name(tmp, seg->first, 1);
	int rc = fdatasync(seg->idx_fd) == 0 && renameat(log->dirfd, tmp, log->dirfd, name) == 0 &&
			 fsync(log->dirfd) == 0
		     ? 0
		     : ml_diag_set(ML_ERR_IO, "cannot write the index file %s: %s", name,
				   strerror(errno));
	close(seg->idx_fd);
	seg->idx_fd = -1;
	return rc;
}

struct ml_block *ml_idx_write(struct ml_log *log, const struct ml_chunk *c, uint64_t last_seq)
{
	struct ml_seg *seg = c->seg;
	struct ml_buf buf = {0};
	ml_block_encode(c, log->seed, last_seq, &buf);
	if (log->opt.readonly) { /* nothing is written: the block stays in memory */
		struct ml_block *b = ml_xcalloc(1, sizeof(*b));
		ml_block_open(b, (uint8_t *)buf.data, buf.len, log->seed);
		b->seg = seg;
		b->map = buf.data;
		b->map_len = buf.len;
		b->owned = 1;
		return b;
	}
	char name[48];
	idx_name(name, seg->first, 0);
	int whole = seg->idx_fd >= 0, fd = seg->idx_fd;
	if (!whole && seg->idx_end == 0 && create_file(log, seg, 0) != 0)
		goto fail;
	if (!whole && (fd = openat(log->dirfd, name, O_RDWR | O_CLOEXEC)) < 0) {
		ml_diag_set(ML_ERR_IO, "cannot open the index file %s: %s", name, strerror(errno));
		goto fail;
	}
	uint64_t at = seg->idx_end;
	/* The sections, then (once they are on disk) the header that stands for them. */
	if (ml_pwrite_all(fd, buf.data + ML_TABLE_HEADER, buf.len - ML_TABLE_HEADER,
			  at + ML_TABLE_HEADER) != 0 ||
	    (!whole && fdatasync(fd) != 0) ||
	    ml_pwrite_all(fd, buf.data, ML_TABLE_HEADER, at) != 0 ||
	    (!whole && fdatasync(fd) != 0)) {
		ml_diag_set(ML_ERR_IO, "cannot write the index file %s: %s", name, strerror(errno));
		if (!whole)
			close(fd);
		goto fail;
	}
	struct ml_block *b = map_block(log, fd, at, buf.len);
	if (!whole)
		close(fd);
	if (b == NULL) {
		ml_diag_set(ML_ERR_IO, "cannot map the index file %s: %s", name, strerror(errno));
		goto fail;
	}
	b->seg = seg;
	seg->idx_end = align_up(at + buf.len);
	ml_buf_free(&buf);
	return b;
fail:
	ml_buf_free(&buf);
	return NULL;
}

/* ---- a scavenged segment's index file (scavenge.c) ---- */

int ml_idx_rewrite(struct ml_log *log, const struct ml_seg *seg, uint32_t scavenges,
		   struct ml_block *const *blocks, size_t n, const uint32_t *off, uint64_t npos,
		   uint64_t seg_end, int *fd_out, uint64_t *at_out)
{
	char tmp[48];
	uint8_t head[IDX_HEADER];
	idx_name(tmp, seg->first, 1);
	header_encode(head, seg->first, log->seed, scavenges);
	int fd = openat(log->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, ML_FILE_MODE);
	int rc = fd >= 0 && ml_pwrite_all(fd, head, sizeof(head), 0) == 0 ? 0 : -1;
	uint64_t at = ML_IDX_ALIGN;
	for (size_t i = 0; i < n && rc == 0; i++) {
		/* The block as it was, with each position's new offset, sealed again. */
		const struct ml_block *b = blocks[i];
		uint64_t len = b->t.length, count = b->t.last - b->t.first + 1;
		uint8_t *p = ml_xmalloc(len);
		memcpy(p, b->map, len);
		uint8_t *offs = p + (b->offsets - (const uint8_t *)b->map);
		for (uint64_t k = 0; k < count; k++)
			ml_put32(offs + 4 * k, off[b->t.first + k - seg->first]);
		uint64_t after = b->t.last + 1 - seg->first;
		uint64_t end = after < npos ? off[after] : seg_end;
		ml_put32(p + 84, off[b->t.first - seg->first]);
		ml_put64(p + 88, end);
		ml_table_seal(p, len);
		at_out[i] = at;
		rc = ml_pwrite_all(fd, p, len, at);
		free(p);
		at = align_up(at + len);
	}
	if (rc == 0 && fdatasync(fd) != 0)
		rc = -1;
	if (rc != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		unlinkat(log->dirfd, tmp, 0);
		return ml_diag_set(ML_ERR_IO, "cannot write the index file %s: %s", tmp,
				   strerror(e));
	}
	*fd_out = fd;
	return 0;
}

struct ml_block *ml_idx_map_block(struct ml_log *log, int fd, uint64_t at, uint64_t avail)
{
	return map_block(log, fd, at, avail);
}

int ml_idx_rename_tmp(struct ml_log *log, uint64_t first)
{
	char name[48], tmp[48];
	idx_name(name, first, 0);
	idx_name(tmp, first, 1);
	if (renameat(log->dirfd, tmp, log->dirfd, name) != 0)
		return ml_diag_set(ML_ERR_IO, "cannot rename the index file %s: %s", tmp,
				   strerror(errno));
	return 0;
}
