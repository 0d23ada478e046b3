/*
 * index.c - the index's answers, from its parts (index.h): the chunks in
 * memory first, newest first, then the runs, newest first; and the blocks for
 * where a position is and for a stream's older events.
 *
 * A stream's events are a chain: its entry in the newest chunk or block that
 * holds any, with their positions and versions, links to the position of its
 * event before them, and so on back. So its version and its last events are
 * one lookup away, and reading it from version v walks back only over the
 * blocks that hold its events after v. Everything here runs under the log's
 * mutex; the files are mapped and never change once written.
 */
#include <stdlib.h>
#include <string.h>

#include "log/index.h"
#include "log/log_internal.h"

uint64_t ml_index_hash(const struct ml_log *log, const char *name, size_t len)
{
	return ml_index_hash_seed(log->seed, name, len);
}

uint64_t ml_index_id_key(const struct ml_log *log, const char *stream, size_t slen, const char *id,
			 size_t ilen)
{
	return ml_index_id_key_seed(log->seed, stream, slen, id, ilen);
}

/* ---- chunks ---- */

struct ml_chunk *ml_index_chunk_for(struct ml_log *log, struct ml_seg *seg, uint64_t position,
				    uint32_t off, int batch_start)
{
	struct ml_chunk *c = log->chunk_newest;
	if (c && !c->frozen && c->seg == seg && (c->count < log->index_block || !batch_start))
		return c;
	struct ml_chunk *n =
	    ml_chunk_new(seg, position, off, log->index_block < 65536 ? log->index_block : 65536);
	n->older = c;
	if (c)
		c->next = n;
	else
		log->chunks = n;
	log->chunk_newest = n;
	return n;
}

static void chunk_unlink_newest(struct ml_log *log)
{
	struct ml_chunk *c = log->chunk_newest;
	log->chunk_newest = c->older;
	if (c->older)
		c->older->next = NULL;
	else
		log->chunks = NULL;
	ml_chunk_free(c);
}

void ml_index_rollback(struct ml_log *log, uint64_t position)
{
	while (log->chunk_newest && log->chunk_newest->first > position)
		chunk_unlink_newest(log);
	if (log->chunk_newest)
		ml_chunk_pop_to(log->chunk_newest, position);
}

uint64_t ml_index_memory(const struct ml_log *log)
{
	uint64_t n = 0;
	for (const struct ml_chunk *c = log->chunks; c; c = c->next)
		n += ml_chunk_bytes(c);
	return n;
}

/* ---- finding a stream ---- */

/* Where a stream's newest entry is: in a chunk, or in a block (through a run). */
struct found {
	const struct ml_chunk *chunk;
	const struct ml_cstream *cs;
	const struct ml_block *block;
	const uint8_t *e;	    /* the block's stream entry */
	uint64_t version, position; /* its last version, and that event's position */
};

static struct ml_block *block_at(const struct ml_log *log, uint64_t position)
{
	size_t lo = 0, hi = log->nblocks;
	if (hi == 0 || position < log->blocks[0]->t.first)
		return NULL;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (log->blocks[mid]->t.first <= position)
			lo = mid;
		else
			hi = mid;
	}
	struct ml_block *b = log->blocks[lo];
	return position <= b->t.last ? b : NULL;
}

static const struct ml_chunk *chunk_at(const struct ml_log *log, uint64_t position)
{
	for (const struct ml_chunk *c = log->chunk_newest; c; c = c->older)
		if (position >= c->first)
			return position <= ml_chunk_last(c) ? c : NULL;
	return NULL;
}

static void found_in_block(struct found *f, const struct ml_block *b, const uint8_t *e)
{
	f->block = b;
	f->e = e;
	f->version = ml_se_version(e);
	f->position = ml_block_pos(b, e, ml_se_count(e) - 1);
}

static void found_in_chunk(struct found *f, const struct ml_chunk *c, const struct ml_cstream *s)
{
	f->chunk = c;
	f->cs = s;
	f->version = s->first_version + s->count - 1;
	f->position = s->count ? c->first + s->last : s->prev;
}

/* The stream's entry in the chunk or block that holds `position`. 0, or -1 if none does. */
static int find_at(const struct ml_log *log, uint64_t position, uint64_t hash, const char *name,
		   size_t len, struct found *f)
{
	memset(f, 0, sizeof(*f));
	const struct ml_chunk *c =
	    log->chunks && position >= log->chunks->first ? chunk_at(log, position) : NULL;
	if (c) {
		const struct ml_cstream *s = ml_chunk_stream(c, hash, name, len);
		if (s == NULL)
			return -1;
		found_in_chunk(f, c, s);
		return 0;
	}
	const struct ml_block *b = block_at(log, position);
	const uint8_t *e = b ? ml_table_stream(&b->t, hash, name, len) : NULL;
	if (e == NULL)
		return -1;
	found_in_block(f, b, e);
	return 0;
}

/* The stream's newest entry: 0, or -1 for a stream the log does not know. */
static int find_newest(const struct ml_log *log, uint64_t hash, const char *name, size_t len,
		       struct found *f)
{
	memset(f, 0, sizeof(*f));
	for (const struct ml_chunk *c = log->chunk_newest; c; c = c->older) {
		const struct ml_cstream *s = ml_chunk_stream(c, hash, name, len);
		if (s) {
			found_in_chunk(f, c, s);
			return 0;
		}
	}
	for (size_t i = log->nruns; i-- > 0;) {
		const struct ml_run *r = log->runs[i];
		const uint8_t *e = ml_table_stream(&r->t, hash, name, len);
		if (e == NULL)
			continue;
		if (r->block) {
			found_in_block(f, r->block, e);
			return 0;
		}
		/* a run says where its last event is; the block there holds its entry */
		if (find_at(log, ml_se_link(e), hash, name, len, f) == 0)
			return 0;
		f->version = ml_se_version(e); /* its events are gone: its version stays */
		f->position = ml_se_link(e);
		return 0;
	}
	return -1;
}

struct ml_latest ml_index_latest(struct ml_log *log, uint64_t hash, const char *name, size_t len)
{
	struct found f;
	if (find_newest(log, hash, name, len, &f) != 0)
		return (struct ml_latest){0, 0};
	return (struct ml_latest){f.version, f.position};
}

uint64_t ml_index_version(struct ml_log *log, uint64_t hash, const char *name, size_t len)
{
	struct found f;
	if (find_newest(log, hash, name, len, &f) != 0)
		return 0;
	return f.cs ? ml_chunk_version_at(f.chunk, f.cs, log->head) : f.version;
}

uint64_t ml_index_event(struct ml_log *log, struct ml_seg *seg, uint64_t position, uint32_t off,
			uint32_t len, int batch_start, const char *stream, size_t slen,
			uint64_t hash, uint64_t id_key, uint64_t version)
{
	struct ml_chunk *c = ml_index_chunk_for(log, seg, position, off, batch_start);
	struct ml_cstream *s = ml_chunk_stream(c, hash, stream, slen);
	if (s == NULL) {
		/* Versions count a stream's events; a record's own version is taken only for a
		 * stream whose earlier events may be gone with the log's first segments. */
		struct ml_latest l = ml_index_latest(log, hash, stream, slen);
		int gone = version && l.version == 0 && log->first > 1;
		s = ml_chunk_stream_add(c, hash, stream, slen, gone ? version : l.version + 1,
					l.position);
	}
	uint64_t v = s->first_version + s->count;
	ml_chunk_push(c, s, off, len);
	if (id_key)
		ml_chunk_add_id(c, id_key, position);
	return v;
}

size_t ml_index_ids(struct ml_log *log, uint64_t key, uint64_t *out, size_t max)
{
	size_t n = 0;
	for (const struct ml_chunk *c = log->chunk_newest; c; c = c->older)
		n += ml_chunk_ids(c, key, out + (n < max ? n : max), n < max ? max - n : 0);
	for (size_t i = log->nruns; i-- > 0;)
		n += ml_table_ids(&log->runs[i]->t, key, out + (n < max ? n : max),
				  n < max ? max - n : 0);
	return n;
}

struct ml_loc ml_index_locate(struct ml_log *log, uint64_t position)
{
	const struct ml_chunk *c =
	    log->chunks && position >= log->chunks->first ? chunk_at(log, position) : NULL;
	if (c) {
		uint64_t i = position - c->first;
		uint64_t end = i + 1 < c->count ? c->ev[i + 1].off : c->end;
		return (struct ml_loc){c->seg, c->ev[i].off, end - c->ev[i].off};
	}
	const struct ml_block *b = block_at(log, position);
	if (b == NULL)
		return (struct ml_loc){NULL, 0, 0};
	uint64_t off = ml_block_offset(b, position);
	uint64_t end = position < b->t.last ? ml_block_offset(b, position + 1) : b->data_end;
	return (struct ml_loc){b->seg, off, end - off};
}

/* ---- a stream's positions, for a read ---- */

/* The positions of entry f's events, oldest first, into out (its count of them). */
static uint32_t piece_positions(const struct found *f, uint64_t *out)
{
	if (f->cs) {
		uint32_t n = f->cs->count, k = n;
		for (uint32_t i = f->cs->last; i != UINT32_MAX; i = f->chunk->ev[i].prev)
			out[--k] = f->chunk->first + i;
		return n;
	}
	uint32_t n = ml_se_count(f->e);
	for (uint32_t i = 0; i < n; i++)
		out[i] = ml_block_pos(f->block, f->e, i);
	return n;
}

static uint32_t piece_count(const struct found *f)
{
	return f->cs ? f->cs->count : ml_se_count(f->e);
}

static uint64_t piece_prev(const struct found *f)
{
	return f->cs ? f->cs->prev : ml_se_link(f->e);
}

/* Adds the versions of piece f in [a, b] to out, in reading order, until `limit`. */
static void emit(const struct found *f, uint64_t a, uint64_t b, uint64_t limit, int backwards,
		 uint64_t **out, size_t *n, size_t *cap, uint64_t *scratch)
{
	uint32_t count = piece_positions(f, scratch);
	for (uint32_t k = 0; k < count && (!limit || *n < limit); k++) {
		uint32_t i = backwards ? count - 1 - k : k;
		uint64_t v = f->version - count + 1 + i;
		if (v < a || v > b)
			continue;
		if (*n == *cap)
			*out = ml_xrealloc(*out, (*cap = *cap ? *cap * 2 : 16) * sizeof(**out));
		(*out)[(*n)++] = scratch[i];
	}
}

size_t ml_index_stream_positions(struct ml_log *log, const char *name, size_t len, uint64_t from,
				 uint64_t limit, int backwards, uint64_t **out)
{
	*out = NULL;
	uint64_t hash = ml_index_hash(log, name, len);
	struct found f;
	if (find_newest(log, hash, name, len, &f) != 0 || (!f.cs && !f.e))
		return 0;
	uint64_t top = f.cs ? ml_chunk_version_at(f.chunk, f.cs, log->head) : f.version;
	uint64_t a = backwards ? 1 : from ? from : 1;
	uint64_t b = backwards && from && from < top ? from : top;
	if (a > b)
		return 0;
	/* The chain from the newest entry back to the one holding version a, or to its start
	 * (older events may be gone); the versions between a and b are in these pieces. */
	struct found *chain = NULL;
	size_t nchain = 0, chain_cap = 0, most = 0;
	for (;;) {
		if (nchain == chain_cap)
			chain = ml_xrealloc(chain, (chain_cap = chain_cap ? chain_cap * 2 : 8) *
						       sizeof(*chain));
		chain[nchain++] = f;
		if (piece_count(&f) > most)
			most = piece_count(&f);
		uint64_t prev = piece_prev(&f), lo = f.version - piece_count(&f) + 1;
		if (lo <= a || prev == 0 || prev < log->first ||
		    (backwards && limit && lo <= b && b - lo + 1 >= limit) ||
		    find_at(log, prev, hash, name, len, &f) != 0)
			break;
	}
	uint64_t *scratch = ml_xmalloc((most ? most : 1) * sizeof(*scratch));
	size_t n = 0, cap = 0;
	for (size_t k = 0; k < nchain && (!limit || n < limit); k++)
		emit(&chain[backwards ? k : nchain - 1 - k], a, b, limit, backwards, out, &n, &cap,
		     scratch);
	free(scratch);
	free(chain);
	return n;
}

/* ---- the tables of blocks and runs ---- */

void ml_index_add_block(struct ml_log *log, struct ml_block *b)
{
	if (log->nblocks == log->blocks_cap) {
		log->blocks_cap = log->blocks_cap ? log->blocks_cap * 2 : 64;
		log->blocks = ml_xrealloc(log->blocks, log->blocks_cap * sizeof(*log->blocks));
	}
	log->blocks[log->nblocks++] = b;
}

void ml_index_add_run(struct ml_log *log, struct ml_run *r)
{
	if (log->nruns == log->runs_cap) {
		log->runs_cap = log->runs_cap ? log->runs_cap * 2 : 64;
		log->runs = ml_xrealloc(log->runs, log->runs_cap * sizeof(*log->runs));
	}
	log->runs[log->nruns++] = r;
}

void ml_index_free(struct ml_log *log)
{
	while (log->chunk_newest)
		chunk_unlink_newest(log);
	for (size_t i = 0; i < log->nruns; i++)
		ml_run_free(log->runs[i]);
	for (size_t i = 0; i < log->nblocks; i++)
		ml_block_free(log->blocks[i]);
	free(log->runs);
	free(log->blocks);
	log->runs = NULL;
	log->blocks = NULL;
	log->nruns = log->nblocks = 0;
}
