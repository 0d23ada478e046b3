/*
 * backup.c - what a consistent copy of a running log is made of
 * (ml_log_backup_files): a position every copy stops at, and the files that
 * hold the log up to it, each with the bytes to take.
 *
 * Under the log's mutex the head (the last acknowledged position) is pinned,
 * and nothing below it ever changes: the segments before the head's are
 * finished (their zeros cut, synced) and never written again, so they can be
 * hard-linked; the head's segment is taken up to the end of the head's
 * record, bytes the flusher never rewrites. Index files are taken only where
 * they are final: a segment's .idx once its blocks reach the segment's end
 * (the indexer appends nothing more to it), the runs that cover only such
 * blocks, and index.seed, without which the runs cannot be read. A run may be
 * merged away before the copier reaches it: it is then left out, and the
 * first open of the copy builds it again (docs/log.md, the index). What is
 * missing of the index, the open builds from the segments. The retention state
 * (deletions and metadata) is taken as bytes of its file as of the pinned head,
 * for the copy to hold as its own DATA/log/retention.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "log/index.h"
#include "log/log_internal.h"
#include "log/retention.h"

/*
 * The last position the .idx of segment i holds blocks for (0: none), mutex held.
 * Called for each segment in order: the blocks are in position order, so *b walks
 * them once.
 */
static uint64_t indexed_to(struct ml_log *log, size_t i, size_t *b)
{
	uint64_t last = 0;
	while (*b < log->nblocks && log->blocks[*b]->seg == log->segs[i])
		last = log->blocks[(*b)++]->t.last;
	return last;
}

static void add(struct ml_backup_file **files, size_t *n, size_t *cap, const char *name,
		uint64_t size, int whole)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*files = ml_xrealloc(*files, *cap * sizeof(**files));
	}
	struct ml_backup_file *f = &(*files)[(*n)++];
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->size = size;
	f->whole = whole;
}

int ml_log_backup_files(struct ml_log *log, struct ml_backup *out)
{
	*out = (struct ml_backup){0};
	size_t cap = 0;
	char name[64];
	pthread_mutex_lock(&log->mu);
	uint64_t head = log->head, indexed = 0;
	out->position = head;
	out->first = log->first;
	int index_whole = 1; /* every .idx so far is final: the runs over them may be taken */
	size_t block = 0;
	for (size_t i = 0; i < log->nsegs && head >= log->segs[i]->first; i++) {
		struct ml_seg *s = log->segs[i];
		int sealed = i + 1 < log->nsegs && log->segs[i + 1]->first <= head;
		uint64_t size = s->durable_end;
		if (!sealed) { /* the head's segment: up to the end of the head's record */
			struct ml_loc l = ml_index_locate(log, head);
			size = head >= s->first ? l.off + l.len : s->durable_end;
		}
		snprintf(name, sizeof(name), "%020" PRIu64 ".seg", s->first);
		add(&out->files, &out->n, &cap, name, size, sealed);
		uint64_t to = indexed_to(log, i, &block);
		if (sealed && index_whole && to + 1 == log->segs[i + 1]->first) {
			snprintf(name, sizeof(name), "%020" PRIu64 ".idx", s->first);
			add(&out->files, &out->n, &cap, name, 0, 1);
			indexed = log->segs[i + 1]->first - 1;
		} else {
			index_whole = 0;
		}
	}
	for (size_t r = 0; r < log->nruns; r++) {
		const struct ml_run *run = log->runs[r];
		if (run->block || run->t.last > indexed)
			continue; /* a block standing alone (in its .idx), or past what is taken */
		snprintf(name, sizeof(name), "%020" PRIu64 "-%020" PRIu64 ".run", run->t.first,
			 run->t.last);
		add(&out->files, &out->n, &cap, name, 0, 1);
	}
	if (out->n)
		add(&out->files, &out->n, &cap, "index.seed", 0, 1);
	struct ml_buf ret = {0};
	ml_ret_file_bytes(log, &ret); /* as of the head pinned here */
	out->retention = ret.data, out->retention_len = ret.len;
	pthread_mutex_unlock(&log->mu);
	/* absolute: the copier's folder is not the server's */
	char *abs = realpath(log->logdir, NULL);
	snprintf(out->dir, sizeof(out->dir), "%s", abs ? abs : log->logdir);
	free(abs);
	return 0;
}

void ml_backup_free(struct ml_backup *b)
{
	free(b->files);
	free(b->retention);
	b->files = NULL;
	b->retention = NULL;
	b->n = b->retention_len = 0;
}
