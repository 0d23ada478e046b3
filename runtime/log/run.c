/*
 * run.c - runs: the stream and id tables of adjacent blocks merged into one
 * sorted file, <first>-<last>.run (the format is in index.h).
 *
 * A lookup asks every run, newest first, so runs are kept few: the merger
 * (indexer.c) merges two neighbours whenever the older is not larger than the
 * newer, as a binary counter does, and there are about log2(blocks) of them.
 * A merge reads both inputs in order (they are sorted), keeps the newer entry
 * of a stream both hold and every id of both, and writes the result through a
 * mapping of a temporary file, which is synced and renamed: a run file that
 * exists is whole. At open the runs that cover the blocks are chosen again
 * from the files (the largest first), and what no run covers stands as blocks
 * until the merger catches up; a leftover or damaged file is removed.
 */
#include <dirent.h>
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

static void run_name(char out[64], uint64_t first, uint64_t last, int tmp)
{
	snprintf(out, 64, "%020" PRIu64 "-%020" PRIu64 ".run%s", first, last, tmp ? ".tmp" : "");
}

static uint64_t align64(uint64_t v)
{
	return (v + 63) & ~(uint64_t)63;
}

struct ml_run *ml_run_of_block(struct ml_block *b)
{
	struct ml_run *r = ml_xcalloc(1, sizeof(*r));
	r->t = b->t;
	r->block = b;
	r->size = b->t.nstreams + b->t.nids;
	return r;
}

void ml_run_free(struct ml_run *r)
{
	if (r == NULL)
		return;
	if (!r->block && r->map)
		munmap(r->map, r->map_len);
	free(r);
}

void ml_run_remove(struct ml_log *log, const struct ml_run *r)
{
	char name[64];
	if (r->block || log->opt.readonly)
		return;
	run_name(name, r->t.first, r->t.last, 0);
	unlinkat(log->dirfd, name, 0);
}

/* Maps a run file whole, read-only, and reads its header: the run, or NULL. */
static struct ml_run *map_run(struct ml_log *log, int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size < ML_TABLE_HEADER)
		return NULL;
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	struct ml_run *r = ml_xcalloc(1, sizeof(*r));
	if (ml_table_open(&r->t, p, (size_t)st.st_size, ML_RUN_MAGIC, log->seed) != 0) {
		munmap(p, (size_t)st.st_size);
		free(r);
		return NULL;
	}
	r->map = p;
	r->map_len = (size_t)st.st_size;
	r->size = r->t.nstreams + r->t.nids;
	return r;
}

/* ---- merging two runs ---- */

/* One input of a merge: its table, and the block behind it if it stands for one. */
struct input {
	const struct ml_table *t;
	const struct ml_block *block;
};

static int entry_cmp(const struct input *a, uint64_t i, const struct input *b, uint64_t j)
{
	const uint8_t *x = a->t->streams + ML_SENTRY * i, *y = b->t->streams + ML_SENTRY * j;
	if (ml_se_hash(x) != ml_se_hash(y))
		return ml_se_hash(x) < ml_se_hash(y) ? -1 : 1;
	size_t lx, ly;
	const char *nx = ml_se_name(a->t, x, &lx), *ny = ml_se_name(b->t, y, &ly);
	int c = memcmp(nx, ny, lx < ly ? lx : ly);
	return c ? c : (lx > ly) - (lx < ly);
}

/* The position of the last event of a stream entry: a run says it; a block's list has it. */
static uint64_t last_position(const struct input *in, const uint8_t *e)
{
	return in->block ? ml_block_pos(in->block, e, ml_se_count(e) - 1) : ml_se_link(e);
}

/* Walks the merged streams of a and b in order: counts them (out NULL), or writes them. */
static uint64_t merge_streams(const struct input *a, const struct input *b, uint8_t *out,
			      char *names, uint8_t *filter, uint32_t fblocks, uint64_t *names_len)
{
	uint64_t i = 0, j = 0, n = 0, at = 0;
	while (i < a->t->nstreams || j < b->t->nstreams) {
		int c = i == a->t->nstreams ? 1 : j == b->t->nstreams ? -1 : entry_cmp(a, i, b, j);
		const struct input *in = c < 0 ? a : b; /* on a tie the newer, b, wins */
		const uint8_t *e = in->t->streams + ML_SENTRY * (c < 0 ? i : j);
		if (c <= 0)
			i++;
		if (c >= 0)
			j++;
		size_t len;
		const char *name = ml_se_name(in->t, e, &len);
		if (out) {
			uint8_t *o = out + ML_SENTRY * n;
			memset(o, 0, ML_SENTRY);
			memcpy(o, e, 16); /* hash, version */
			uint64_t link = last_position(in, e);
			uint32_t noff = (uint32_t)at;
			memcpy(o + 16, &link, 8);
			memcpy(o + 24, &noff, 4);
			o[36] = (uint8_t)len;
			memcpy(names + at, name, len);
			ml_bloom_add(filter, fblocks, ml_se_hash(e));
		}
		at += len;
		n++;
	}
	*names_len = at;
	return n;
}

static void merge_ids(const struct ml_table *a, const struct ml_table *b, uint8_t *out,
		      uint8_t *filter, uint32_t fblocks, const int *stop)
{
	uint64_t i = 0, j = 0, n = 0;
	while (i < a->nids || j < b->nids) {
		const uint8_t *x = i < a->nids ? a->ids + ML_IENTRY * i : NULL;
		const uint8_t *y = j < b->nids ? b->ids + ML_IENTRY * j : NULL;
		int take_a =
		    x &&
		    (!y || ml_tload64(x) < ml_tload64(y) ||
		     (ml_tload64(x) == ml_tload64(y) && ml_tload64(x + 8) < ml_tload64(y + 8)));
		const uint8_t *e = take_a ? x : y;
		if (take_a)
			i++;
		else
			j++;
		memcpy(out + ML_IENTRY * n++, e, ML_IENTRY);
		ml_bloom_add(filter, fblocks, ml_tload64(e));
		if ((n & 0xffff) == 0 && __atomic_load_n(stop, __ATOMIC_RELAXED))
			return;
	}
}

struct ml_run *ml_run_merge(struct ml_log *log, const struct ml_run *ra, const struct ml_run *rb,
			    const int *stop)
{
	struct input a = {&ra->t, ra->block}, b = {&rb->t, rb->block};
	struct ml_table t = {.first = ra->t.first,
			     .last = rb->t.last,
			     .nids = ra->t.nids + rb->t.nids,
			     .nblocks = ra->t.nblocks + rb->t.nblocks,
			     .last_seq = rb->t.last_seq,
			     .new_streams = ra->t.new_streams + rb->t.new_streams};
	t.nstreams = merge_streams(&a, &b, NULL, NULL, NULL, 0, &t.names_len);
	t.sfilter_blocks = ml_bloom_blocks(t.nstreams);
	t.ifilter_blocks = ml_bloom_blocks(t.nids);
	uint64_t streams = ML_TABLE_HEADER, ids = streams + ML_SENTRY * t.nstreams;
	uint64_t sfilter = align64(ids + ML_IENTRY * t.nids);
	uint64_t ifilter = sfilter + 64ull * t.sfilter_blocks;
	uint64_t names = ifilter + 64ull * t.ifilter_blocks, length = names + t.names_len;

	char name[64], tmp[64];
	run_name(name, t.first, t.last, 0);
	run_name(tmp, t.first, t.last, 1);
	int fd = openat(log->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, ML_FILE_MODE);
	uint8_t *p = MAP_FAILED;
	if (fd < 0 || ftruncate(fd, (off_t)length) != 0 ||
	    (p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		ml_diag_set(ML_ERR_IO, "cannot write the index run %s: %s", name, strerror(errno));
		goto fail;
	}
	ml_table_header(p, ML_RUN_MAGIC, &t, log->seed, 0, 0);
	uint64_t names_len;
	merge_streams(&a, &b, p + streams, (char *)p + names, p + sfilter, t.sfilter_blocks,
		      &names_len);
	merge_ids(&ra->t, &rb->t, p + ids, p + ifilter, t.ifilter_blocks, stop);
	if (__atomic_load_n(stop, __ATOMIC_RELAXED)) {
		ml_diag_set(ML_ERR_IO, "the log is closing");
		goto fail;
	}
	ml_table_seal(p, length);
	munmap(p, length);
	p = MAP_FAILED;
	if (fdatasync(fd) != 0 || renameat(log->dirfd, tmp, log->dirfd, name) != 0 ||
	    fsync(log->dirfd) != 0) {
		ml_diag_set(ML_ERR_IO, "cannot write the index run %s: %s", name, strerror(errno));
		goto fail;
	}
	struct ml_run *r = map_run(log, fd);
	close(fd);
	if (r == NULL)
		ml_diag_set(ML_ERR_IO, "cannot map the index run %s", name);
	return r;
fail:
	if (p != MAP_FAILED)
		munmap(p, length);
	if (fd >= 0)
		close(fd);
	unlinkat(log->dirfd, tmp, 0);
	return NULL;
}

/* ---- the runs at open ---- */

struct file_run {
	uint64_t first, last;
	struct ml_run *run; /* mapped and read; NULL until then or when unusable */
	int used;
};

/* The run files in the log's folder (their names), removing temporary ones. */
static size_t list_runs(struct ml_log *log, struct file_run **out)
{
	DIR *d = opendir(log->logdir);
	size_t n = 0, cap = 0;
	*out = NULL;
	for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
		uint64_t first, last;
		char tail[16];
		if (!log->opt.readonly && strstr(de->d_name, ".run.tmp")) {
			unlinkat(dirfd(d), de->d_name, 0);
			continue;
		}
		if (sscanf(de->d_name, "%20" SCNu64 "-%20" SCNu64 "%15s", &first, &last, tail) !=
			3 ||
		    strcmp(tail, ".run") != 0)
			continue;
		if (n == cap)
			*out = ml_xrealloc(*out, (cap = cap ? cap * 2 : 16) * sizeof(**out));
		(*out)[n++] = (struct file_run){first, last, NULL, 0};
	}
	if (d)
		closedir(d);
	return n;
}

/* The index of the block that ends at `last`, or -1. */
static long block_ending(const struct ml_log *log, size_t from, uint64_t last)
{
	size_t lo = from, hi = log->nblocks;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (log->blocks[mid]->t.last < last)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < log->nblocks && log->blocks[lo]->t.last == last ? (long)lo : -1;
}

int ml_runs_cover(struct ml_log *log)
{
	struct file_run *files;
	size_t nf = list_runs(log, &files);
	for (size_t i = 0; i < log->nblocks;) {
		long best = -1, best_end = -1;
		for (size_t f = 0; f < nf; f++) {
			/* The first run may start before the first block: its first segments were
			 * dropped, and what it says of their streams (their versions) still holds.
			 */
			if (files[f].first != log->blocks[i]->t.first &&
			    (i > 0 || files[f].first > log->blocks[i]->t.first))
				continue;
			long end = block_ending(log, i, files[f].last);
			if (end <= best_end)
				continue;
			if (files[f].run == NULL) {
				char name[64];
				run_name(name, files[f].first, files[f].last, 0);
				int fd = openat(log->dirfd, name, O_RDONLY | O_CLOEXEC);
				files[f].run = fd >= 0 ? map_run(log, fd) : NULL;
				if (fd >= 0)
					close(fd);
			}
			struct ml_run *r = files[f].run;
			uint64_t covered = (uint64_t)(end - (long)i + 1);
			if (r && r->t.first == files[f].first && r->t.last == files[f].last &&
			    (r->t.first == log->blocks[i]->t.first ? r->t.nblocks == covered
								   : r->t.nblocks > covered))
				best = (long)f, best_end = end;
		}
		if (best >= 0) {
			files[best].used = 1;
			ml_index_add_run(log, files[best].run);
			i = (size_t)best_end + 1;
		} else {
			ml_index_add_run(log, ml_run_of_block(log->blocks[i]));
			i++;
		}
	}
	for (size_t f = 0; f < nf; f++) {
		if (files[f].used)
			continue;
		if (files[f].run)
			ml_run_free(files[f].run);
		if (!log->opt.readonly) { /* covers what no block holds, or overlaps a larger one */
			char name[64];
			run_name(name, files[f].first, files[f].last, 0);
			unlinkat(log->dirfd, name, 0);
		}
	}
	free(files);
	return 0;
}
