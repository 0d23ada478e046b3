/*
 * index.h - the stream index and the ids, in files (private to log/).
 *
 * What the index answers: where the record of a position is, a stream's
 * version and the positions of its events, and which positions hold a
 * client-chosen (stream, id). Its parts, from the newest:
 *
 *   chunks (chunk.c): the newest events, indexed in memory as they are
 *     reserved: at most `index_block` events each, and never more than one
 *     segment. A chunk whose events are all acknowledged and that is full (or
 *     whose segment was followed by another) is written to a file as a block.
 *
 *   blocks (block.c, idxfile.c): a chunk written down, in the index file of
 *     its segment (<first>.idx): the offset of every record, each stream's
 *     positions and versions there with a link to its event before, the
 *     client ids, and bloom filters. Mapped read-only: the page cache holds
 *     them, not the process.
 *
 *   runs (run.c): the stream and id tables of adjacent blocks merged into one
 *     sorted file (<first>-<last>.run), in the manner of a log-structured
 *     merge tree: a stream's latest version and where its last event is, and
 *     every id. A lookup asks the chunks, then the runs from the newest; the
 *     merger (indexer.c) keeps them few (each at least as large as the next).
 *
 * Opening reads the headers of these files and walks only the records no
 * block holds yet (open.c). The files are derived from the segments: one that
 * is missing or damaged is built again from them.
 *
 * Every hash is seeded by the log's own seed (index.seed, made once), so that
 * client-chosen names cannot be picked to collide, and so that what is in the
 * files stays valid from one process to the next.
 */
#ifndef ML_LOG_INDEX_H
#define ML_LOG_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include <moonlog/util.h>

struct ml_log;
struct ml_seg;
struct ml_check_report;

#define ML_INDEX_BLOCK_DEFAULT 131072 /* events in a chunk, and so in a block */

/* ---- chunks: the newest events, in memory (chunk.c) ---- */

struct ml_cevent {
	uint32_t off;	 /* its record's offset in the segment */
	uint32_t stream; /* index in the chunk's streams */
	uint32_t prev;	 /* the index of its stream's event before it here, or UINT32_MAX */
};

struct ml_cstream {
	uint64_t hash;
	uint64_t first_version; /* the version of its first event in this chunk */
	uint64_t prev;		/* the position of its event before this chunk, 0 if none */
	uint32_t count;		/* its events here (0 once rolled back: the version is one less) */
	uint32_t last;		/* the index of its last event here */
	uint32_t name;		/* offset of its name in the chunk's names */
	uint8_t name_len;
};

struct ml_cid {
	uint64_t key, position;
};

struct ml_chunk {
	uint64_t first; /* the position of its first event */
	struct ml_seg *seg;
	uint32_t start, end; /* segment offsets: its first record, and after its last */
	struct ml_cevent *ev;
	uint32_t count, ev_cap;
	struct ml_cstream *streams;
	uint32_t nstreams, streams_cap;
	uint32_t *stream_slots, stream_mask; /* index + 1; 0 is empty */
	struct ml_cid *ids;
	uint32_t nids, ids_cap;
	uint32_t *id_slots, id_mask;
	char *names;
	uint32_t names_len, names_cap;
	uint64_t last_seq;    /* the journal sequence of its last batch applied from one, or 0 */
	uint64_t new_streams; /* its events of version 1 */
	int frozen;	      /* taken by the indexer: nothing is added to it any more */
	struct ml_chunk *next, *older; /* the next newer one, the one before */
};

/* A new chunk at `first`, its first record at `start` of seg, with room for `expect` events. */
struct ml_chunk *ml_chunk_new(struct ml_seg *seg, uint64_t first, uint32_t start, uint32_t expect);
void ml_chunk_free(struct ml_chunk *c);
/* The anonymous memory it holds. */
size_t ml_chunk_bytes(const struct ml_chunk *c);
static inline uint64_t ml_chunk_last(const struct ml_chunk *c)
{
	return c->first + c->count - 1;
}
struct ml_cstream *ml_chunk_stream(const struct ml_chunk *c, uint64_t hash, const char *name,
				   size_t len);
struct ml_cstream *ml_chunk_stream_add(struct ml_chunk *c, uint64_t hash, const char *name,
				       size_t len, uint64_t first_version, uint64_t prev);
/* Adds the next event (position first + count) of stream s, whose record is [off, off + len). */
void ml_chunk_push(struct ml_chunk *c, struct ml_cstream *s, uint32_t off, uint32_t len);
void ml_chunk_add_id(struct ml_chunk *c, uint64_t key, uint64_t position);
/* The positions stored for key, up to max of them into out; returns how many there are. */
size_t ml_chunk_ids(const struct ml_chunk *c, uint64_t key, uint64_t *out, size_t max);
/* Forgets its events (and ids) after `position` (a rolled-back write). */
void ml_chunk_pop_to(struct ml_chunk *c, uint64_t position);
/* The version of s at `head`: its events above head (not acknowledged) not counted. */
uint64_t ml_chunk_version_at(const struct ml_chunk *c, const struct ml_cstream *s, uint64_t head);

/* ---- tables: the sorted streams and ids of a block or a run (block.c) ---- */

/*
 * A block and a run share one header (128 bytes) and one entry format. All
 * integers little-endian:
 *
 *   0   u32 magic ("MLBK" a block, "MLRN" a run)   4 u32 crc32c of bytes 8..127
 *   8   u32 format (1)          12  u32 flags (0)
 *   16  u64 length: header and sections, without the padding after them
 *   24  u64 first position      32  u64 last position
 *   40  u64 seed                48  u64 streams       56 u64 ids
 *   64  u64 names bytes         72  u32 stream filter blocks   76 u32 id filter blocks
 *   80  u32 crc32c of the sections (bytes 128..length)
 *   84  u32 block: segment offset of its first record
 *   88  u64 block: segment offset after its last record
 *   96  u64 the journal sequence of the last batch applied from one, at or before its end
 *   104 u64 the blocks it covers (a block: 1)
 *   112 u64 the streams that start in it (its events of version 1)
 *   120 .. 127 zero
 *
 * Then the sections: (a block only) the offset of each record, u32 each, and
 * each stream's positions, u32 each (position - first), grouped by stream;
 * the stream entries, sorted by hash then name; the id entries, sorted by key
 * then position; the stream filter and the id filter (blocked bloom filters,
 * 64 bytes a block, at 64-byte aligned offsets from the header); the names.
 *
 * A stream entry (40 bytes):
 *   0 u64 hash   8 u64 version (its last)   16 u64 link   24 u32 name offset
 *   28 u32 count  32 u32 list   36 u8 name length   37 .. 39 zero
 * In a block, link is the position of its event before this block (0: none),
 * count its events here and list where their positions start. In a run, link
 * is the position of its last event, and count and list are 0.
 * An id entry (16 bytes): u64 key, u64 position.
 */
#define ML_TABLE_HEADER 128
#define ML_SENTRY	40
#define ML_IENTRY	16

struct ml_table {
	uint64_t first, last; /* the positions it covers */
	uint64_t nstreams, nids, names_len, nblocks, last_seq;
	uint64_t new_streams; /* streams that start in it */
	uint32_t sfilter_blocks, ifilter_blocks;
	const uint8_t *streams, *ids, *sfilter, *ifilter;
	const char *names;
	const uint8_t *base; /* its header */
	uint64_t length;
};

struct ml_block {
	struct ml_table t;
	struct ml_seg *seg;
	const uint8_t *offsets, *positions; /* u32 each, count = last - first + 1 */
	uint64_t data_start, data_end;
	void *map; /* the mapping, or the malloc'd bytes (owned) */
	size_t map_len;
	int owned;
};

struct ml_run {
	struct ml_table t;
	struct ml_block *block; /* a block standing as a run of its own; NULL for a run file */
	uint64_t size;		/* entries, for the merge policy */
	void *map;
	size_t map_len;
};

static inline uint64_t ml_tload64(const uint8_t *p)
{
	uint64_t v;
	__builtin_memcpy(&v, p, 8);
	return v; /* the files are little-endian, as is every machine moonlog builds on */
}

static inline uint32_t ml_tload32(const uint8_t *p)
{
	uint32_t v;
	__builtin_memcpy(&v, p, 4);
	return v;
}

/* A stream entry's fields. */
static inline uint64_t ml_se_hash(const uint8_t *e)
{
	return ml_tload64(e);
}
static inline uint64_t ml_se_version(const uint8_t *e)
{
	return ml_tload64(e + 8);
}
static inline uint64_t ml_se_link(const uint8_t *e)
{
	return ml_tload64(e + 16);
}
static inline uint32_t ml_se_count(const uint8_t *e)
{
	return ml_tload32(e + 28);
}
static inline uint32_t ml_se_list(const uint8_t *e)
{
	return ml_tload32(e + 32);
}
static inline const char *ml_se_name(const struct ml_table *t, const uint8_t *e, size_t *len)
{
	*len = e[36];
	return t->names + ml_tload32(e + 24);
}
/* The position of the i-th event of stream entry e of a block. */
static inline uint64_t ml_block_pos(const struct ml_block *b, const uint8_t *e, uint32_t i)
{
	return b->t.first + ml_tload32(b->positions + 4 * ((uint64_t)ml_se_list(e) + i));
}
static inline uint32_t ml_block_offset(const struct ml_block *b, uint64_t position)
{
	return ml_tload32(b->offsets + 4 * (position - b->t.first));
}

/* Encodes chunk c (all of it) as a block into out (from out->len, which must be 0). */
void ml_block_encode(const struct ml_chunk *c, uint64_t seed, uint64_t last_seq,
		     struct ml_buf *out);
/*
 * Reads a table's header at p (avail bytes from p): 0 and t filled, or -1 with
 * diag when it is not one of `magic` for this seed, or runs past avail. Does
 * not read the sections' checksum (ml_table_verify does).
 */
int ml_table_open(struct ml_table *t, const uint8_t *p, size_t avail, uint32_t magic,
		  uint64_t seed);
int ml_block_open(struct ml_block *b, const uint8_t *p, size_t avail, uint64_t seed);
/* Does the sections' checksum match, and are the entries in order? 0, or -1 with diag. */
int ml_table_verify(const struct ml_table *t);
/* The stream's entry in t, or NULL. */
const uint8_t *ml_table_stream(const struct ml_table *t, uint64_t hash, const char *name,
			       size_t len);
/* The positions t holds for key, up to max into out; returns how many it holds. */
size_t ml_table_ids(const struct ml_table *t, uint64_t key, uint64_t *out, size_t max);

#define ML_BLOCK_MAGIC 0x4b424c4du /* "MLBK" */
#define ML_RUN_MAGIC   0x4e524c4du /* "MLRN" */

/* The header fields both kinds share, written into p (ML_TABLE_HEADER bytes). */
void ml_table_header(uint8_t *p, uint32_t magic, const struct ml_table *t, uint64_t seed,
		     uint32_t data_start, uint64_t data_end);
/* Seals a table built in memory: the sections' crc, then the header's. */
void ml_table_seal(uint8_t *p, uint64_t length);

/* ---- blocked bloom filters (block.c) ---- */

/* Filter blocks (64 bytes each) for n keys. */
uint32_t ml_bloom_blocks(uint64_t n);
void ml_bloom_add(uint8_t *f, uint32_t blocks, uint64_t key);
int ml_bloom_maybe(const uint8_t *f, uint32_t blocks, uint64_t key);

/* ---- index files of segments (idxfile.c) ---- */

/*
 * <first>.idx: a 64-byte header, then blocks at 4096-byte aligned offsets:
 *   0 "MLINDEX\0"  8 u32 format (1)  12 u32 header size (64)  16 u64 the
 *   segment's first position  24 u64 seed  60 u32 crc32c of bytes 0..59
 * Blocks follow each other without gaps in positions, the first at the
 * segment's first position. A block is appended as its sections, synced,
 * then its header, synced: a header that reads well stands for sections that
 * are on disk. A file built whole (a segment indexed again) is written to a
 * temporary file, synced and renamed.
 */
#define ML_IDX_ALIGN 4096u

/* Loads the valid blocks of seg's index file (seg_size: the segment's bytes), in order, onto
 * the log's blocks (and its runs when as_runs); a writable log cuts a torn or bad block off
 * the file. Returns how many it loaded. */
size_t ml_idx_load(struct ml_log *log, struct ml_seg *seg, uint64_t seg_size, int as_runs);
/* Writes the block of chunk c at the end of its segment's index file (made if missing) and
 * maps it (a read-only log keeps it in memory); NULL with diag on failure. Between
 * ml_idx_whole_begin and _end, it goes to the segment's temporary index file. */
struct ml_block *ml_idx_write(struct ml_log *log, const struct ml_chunk *c, uint64_t last_seq);
/* A segment indexed again from nothing: its blocks go to <first>.idx.tmp, which _end syncs and
 * renames over the index file. */
int ml_idx_whole_begin(struct ml_log *log, struct ml_seg *seg);
int ml_idx_whole_end(struct ml_log *log, struct ml_seg *seg);
void ml_block_free(struct ml_block *b);
/*
 * A scavenged segment's index file: seg's blocks (blocks[0..n), every one it has) as they
 * are, but for each record's offset, off[position - seg->first] (npos positions; seg_end:
 * the new segment's size), with its header naming the segment's rewrite `scavenges`; written
 * to <first>.idx.tmp and synced. 0 with its fd and each block's place in it (at_out), or -1
 * with diag (nothing left behind). ml_idx_rename_tmp renames it over the index file.
 */
int ml_idx_rewrite(struct ml_log *log, const struct ml_seg *seg, uint32_t scavenges,
		   struct ml_block *const *blocks, size_t n, const uint32_t *off, uint64_t npos,
		   uint64_t seg_end, int *fd_out, uint64_t *at_out);
int ml_idx_rename_tmp(struct ml_log *log, uint64_t first);
/* Maps the block at `at` of an index file (avail bytes from there): the block, or NULL. */
struct ml_block *ml_idx_map_block(struct ml_log *log, int fd, uint64_t at, uint64_t avail);

/* ---- runs (run.c) ---- */

/* Merges two adjacent runs (a older, b newer) into a run file; NULL with diag, or when
 * `*stop` became set (the log is closing). */
struct ml_run *ml_run_merge(struct ml_log *log, const struct ml_run *a, const struct ml_run *b,
			    const int *stop);
/* A block standing as a run of its own. */
struct ml_run *ml_run_of_block(struct ml_block *b);
/* Unmaps a run (its file stays). */
void ml_run_free(struct ml_run *r);
/* Removes a run's file (a merged run, once merged into a larger one). */
void ml_run_remove(struct ml_log *log, const struct ml_run *r);
/* At open: replaces the leading blocks by the run files that cover them (the largest first)
 * and removes the run files nothing uses. */
int ml_runs_cover(struct ml_log *log);

/* ---- the index as a whole (index.c) ---- */

/* Where a stream stands: its version (0: none) and the position of its last event. */
struct ml_latest {
	uint64_t version, position;
};

/* The hashes the index keys streams and (stream, id) pairs by, under a log's seed. */
static inline uint64_t ml_index_hash_seed(uint64_t seed, const char *name, size_t len)
{
	uint64_t h = ml_hash64(name, len, seed ^ 0x6d6f6f6e6c6f67ull);
	return h ? h : 1;
}
static inline uint64_t ml_index_id_key_seed(uint64_t seed, const char *stream, size_t slen,
					    const char *id, size_t ilen)
{
	uint64_t h = ml_hash64(id, ilen, ml_hash64(stream, slen, seed ^ 0x1deull));
	return h ? h : 1;
}
uint64_t ml_index_hash(const struct ml_log *log, const char *name, size_t len);
uint64_t ml_index_id_key(const struct ml_log *log, const char *stream, size_t slen, const char *id,
			 size_t ilen);
/* The newest chunk, ready for the event at `position` of seg, at off: a new one when the
 * newest is frozen or of another segment, or full and this event starts a batch (a chunk
 * holds whole batches, so that a walk can start where a block ends). */
struct ml_chunk *ml_index_chunk_for(struct ml_log *log, struct ml_seg *seg, uint64_t position,
				    uint32_t off, int batch_start);
/* The latest of a stream, reserved events included (mutex held). */
struct ml_latest ml_index_latest(struct ml_log *log, uint64_t hash, const char *name, size_t len);
/* Its version counting only acknowledged events (mutex held). */
uint64_t ml_index_version(struct ml_log *log, uint64_t hash, const char *name, size_t len);
/*
 * Indexes the event at `position`, the next one: its stream, its record at off
 * (len bytes) in seg, whether it starts its batch, and its client id's key (0:
 * none). Its version is the one after its stream's latest; `version`, the
 * record's own (0: none), is taken only for a stream the index does not know
 * in a log whose first segments are gone. Returns its version.
 */
uint64_t ml_index_event(struct ml_log *log, struct ml_seg *seg, uint64_t position, uint32_t off,
			uint32_t len, int batch_start, const char *stream, size_t slen,
			uint64_t hash, uint64_t id_key, uint64_t version);
/* The positions stored for key, up to max into out; returns how many (mutex held). */
size_t ml_index_ids(struct ml_log *log, uint64_t key, uint64_t *out, size_t max);
/* Where a position's record is (mutex held; the position must be reserved and retained). */
struct ml_loc {
	struct ml_seg *seg;
	uint64_t off, len;
};
struct ml_loc ml_index_locate(struct ml_log *log, uint64_t position);
/* Forgets everything after `position` (a rolled-back write; mutex held). */
void ml_index_rollback(struct ml_log *log, uint64_t position);
/*
 * The positions of a stream's visible events for a read (mutex held): from
 * version `from` forward, or backwards from it (0: from the last), at most
 * `limit` (0: all), into *out (malloc'd). Returns how many.
 */
size_t ml_index_stream_positions(struct ml_log *log, const char *name, size_t len, uint64_t from,
				 uint64_t limit, int backwards, uint64_t **out);
/* Adds a block to the table of blocks, and a run to the runs (the newest; mutex held). */
void ml_index_add_block(struct ml_log *log, struct ml_block *b);
void ml_index_add_run(struct ml_log *log, struct ml_run *r);
/* The memory the chunks hold (mutex held). */
uint64_t ml_index_memory(const struct ml_log *log);
void ml_index_free(struct ml_log *log);

/* ---- checking the index files (check_index.c) ---- */

/* The seed of the index files in logdir: 0 and *seed, or -1 when index.seed is missing or bad. */
int ml_index_read_seed(int dirfd, uint64_t *seed);
/*
 * Verifies the index file of the segment that starts at `first` against its
 * records (p, size: the segment, mapped; `end` the position after its last
 * record): every block's checksum, order and filters, each record's offset,
 * each stream's positions and versions, each id. 0 (a missing, stale or torn
 * index is not damage: the next open indexes those records again), or -1 with
 * diag naming the file; with repair, a damaged index file is removed instead.
 */
int ml_check_index(int dirfd, uint64_t seed, int have_seed, uint64_t first, const uint8_t *p,
		   uint64_t size, uint64_t end, int repair, struct ml_check_report *r);
/* Verifies every run file's checksum, order and filters; as ml_check_index. */
int ml_check_runs(int dirfd, const char *logdir, uint64_t seed, int have_seed, int repair,
		  struct ml_check_report *r);

/* ---- the threads that write blocks and merge runs (indexer.c) ---- */

int ml_indexer_start(struct ml_log *log);
/* Writes the blocks that are ready, then stops both threads. */
void ml_indexer_stop(struct ml_log *log);
/* The head moved or a segment was added (mutex held): wakes the indexer if a chunk is ready. */
void ml_indexer_poke(struct ml_log *log);
/* Writes the oldest chunk down as a block, which takes its place (mutex held, released while
 * writing). 0, or -1 with diag (and index_error). */
int ml_indexer_write_oldest(struct ml_log *log);
/* Is chunk c ready to be written as a block? (mutex held) */
int ml_chunk_ready(const struct ml_log *log, const struct ml_chunk *c);
/* The index's work waiting: chunks ready to be written, a merge running or wanted (mutex held;
 * 0 when the readonly log has no threads only if nothing is wanted). */
uint64_t ml_indexer_pending(const struct ml_log *log);
/* Merges runs while the merge policy asks for it (at open, before the merger runs: a segment
 * indexed again adds blocks as runs, and lookups must stay few). */
int ml_runs_settle(struct ml_log *log);

#endif
