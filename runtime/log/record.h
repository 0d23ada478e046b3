/*
 * record.h - the on-disk format of segments and records (private to log/).
 *
 * A segment file starts with a 64-byte header:
 *   0  "MOONLOG\0"          magic
 *   8  u32 format version   (ML_FORMAT_VERSION; 1 is read too: no record has
 *                           ML_REC_SYNCED; 3 is a segment rewritten by a
 *                           scavenge, format 2 plus ML_REC_REMOVED stubs)
 *   12 u32 header size      (64)
 *   16 u64 first position   (also the file name)
 *   24 i64 created, ms
 *   32 u32 scavenges         (format 3 only: how many times a scavenge rewrote
 *                           it; its index file names the same number)
 *   36 .. 59 reserved, zero
 *   60 u32 crc32c of bytes 0..59
 * followed by records, back to back. A record is a 48-byte header and the
 * variable fields, all little-endian:
 *   0  u32 length of the whole record
 *   4  u32 crc32c of bytes 0..3 and 8..length
 *   8  u8  flags  (ML_REC_FIRST, ML_REC_LAST: the record opens / closes a batch;
 *                  ML_REC_GEN_ID: the id was generated, not client-chosen;
 *                  ML_REC_SEQ, ML_REC_SYNCED: the trailers below follow;
 *                  ML_REC_REMOVED: a stub, in a scavenged segment only, that
 *                  stands for a removed event: its stream, type, position,
 *                  version, time and batch bookkeeping, and nothing else: no
 *                  id, meta or data. Readers skip it; the index counts it)
 *   9  u8  stream length  10 u8 type length  11 u8 id length
 *   12 u32 meta length    16 u32 data length
 *   20 u32 events left in the batch after this one
 *   24 u64 position       32 u64 version      40 i64 time, ms
 *   48 stream, type, id, meta, data
 *   then, with ML_REC_SEQ: u64 the journal sequence of the entry the batch was
 *   applied from (the last record of a batch applied by ml_log_apply);
 *   then, with ML_REC_SYNCED: u64 the last position known to be on disk when
 *   the batch was reserved: nothing of its write began before every event up
 *   to it was synced (the first record of every batch, from format 2 on)
 * A batch is the records from one with ML_REC_FIRST to one with ML_REC_LAST;
 * recovery keeps only whole batches, and tells from ML_REC_SYNCED whether
 * damage lies in records that were never synced (scan.c).
 */
#ifndef ML_LOG_RECORD_H
#define ML_LOG_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include <moonlog/log.h>

#define ML_FORMAT_VERSION   2
#define ML_FORMAT_SCAVENGED 3 /* format 2 with ML_REC_REMOVED stubs (scavenge.c) */
#define ML_SEG_HEADER	    64
#define ML_REC_HEADER	    48
#define ML_REC_SEQ_SIZE	    8
#define ML_REC_SYNCED_SIZE  8
#define ML_REC_MAX	    (ML_REC_HEADER + 3 * 255 + (64u << 20) + ML_REC_SEQ_SIZE + ML_REC_SYNCED_SIZE)

enum {
	ML_REC_FIRST = 1,
	ML_REC_LAST = 2,
	ML_REC_GEN_ID = 4,
	ML_REC_SEQ = 8,
	ML_REC_SYNCED = 16,
	ML_REC_REMOVED = 32
};

struct ml_rec {
	uint32_t len;
	uint8_t flags;
	uint32_t left;
	struct ml_event ev;
};

static inline uint32_t ml_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t ml_le64(const uint8_t *p)
{
	return (uint64_t)ml_le32(p) | (uint64_t)ml_le32(p + 4) << 32;
}

static inline void ml_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
	p[3] = (uint8_t)(v >> 24);
}

static inline void ml_put64(uint8_t *p, uint64_t v)
{
	ml_put32(p, (uint32_t)v);
	ml_put32(p + 4, (uint32_t)(v >> 32));
}

/* The encoded size of an event (without trailers: ML_REC_SEQ_SIZE more with a journal
 * sequence, ML_REC_SYNCED_SIZE more with the synced position). */
size_t ml_rec_size(const struct ml_event_in *e, size_t id_len);
/* Encodes one record into out, computing its crc: ml_rec_size bytes, ML_REC_SEQ_SIZE more when
 * seq is not 0 (ML_REC_SEQ is then set), and ML_REC_SYNCED_SIZE more with `synced` when flags
 * has ML_REC_SYNCED. */
void ml_rec_encode(uint8_t *out, const struct ml_event_in *e, const char *id, size_t id_len,
		   uint8_t flags, uint32_t left, uint64_t position, uint64_t version, int64_t time,
		   uint64_t seq, uint64_t synced);

/* The journal sequence a parsed record carries (ML_REC_SEQ), or 0. */
static inline uint64_t ml_rec_seq(const struct ml_rec *r)
{
	return r->flags & ML_REC_SEQ ? ml_le64(r->ev.data + r->ev.data_len) : 0;
}

/* The synced position a parsed record carries (ML_REC_SYNCED), or UINT64_MAX: unknown. */
static inline uint64_t ml_rec_synced(const struct ml_rec *r)
{
	const uint8_t *p = r->ev.data + r->ev.data_len + (r->flags & ML_REC_SEQ ? 8 : 0);
	return r->flags & ML_REC_SYNCED ? ml_le64(p) : UINT64_MAX;
}

/* The crc32c a record's header holds: of bytes 0..3 and 8..len. */
uint32_t ml_rec_crc(const uint8_t *p, uint32_t len);

enum ml_rec_status { ML_REC_OK, ML_REC_SHORT, ML_REC_BAD };
/*
 * Parses the record at p (avail bytes there). ML_REC_SHORT: the record runs
 * past avail (or its length field is zero: unwritten space). ML_REC_BAD: the
 * header is inconsistent or, when verify is set, the crc does not match.
 * Inline: reads and scans run it once per record.
 */
static inline __attribute__((always_inline)) enum ml_rec_status
ml_rec_parse(const uint8_t *p, size_t avail, int verify, struct ml_rec *r)
{
	if (avail < ML_REC_HEADER)
		return avail >= 4 && ml_le32(p) != 0 && ml_le32(p) < ML_REC_HEADER ? ML_REC_BAD
										   : ML_REC_SHORT;
	uint32_t len = ml_le32(p);
	if (len == 0)
		return ML_REC_SHORT;
	uint32_t meta_len = ml_le32(p + 12), data_len = ml_le32(p + 16);
	uint8_t flags = p[8];
	/* want == len also holds len to at least ML_REC_HEADER; every test but the crc's is a
	 * branch the reads and scans of a sound log never take */
	uint64_t want = (uint64_t)ML_REC_HEADER + p[9] + p[10] + p[11] + meta_len + data_len +
			(flags & ML_REC_SEQ ? ML_REC_SEQ_SIZE : 0) +
			(flags & ML_REC_SYNCED ? ML_REC_SYNCED_SIZE : 0);
	if (__builtin_expect(want != len, 0) || __builtin_expect(len > ML_REC_MAX, 0) ||
	    __builtin_expect(p[9] == 0, 0) || __builtin_expect(p[10] == 0, 0))
		return ML_REC_BAD;
	if (__builtin_expect(len > avail, 0))
		return ML_REC_SHORT;
	if (verify && ml_rec_crc(p, len) != ml_le32(p + 4))
		return ML_REC_BAD;

	r->len = len;
	r->flags = flags;
	r->left = ml_le32(p + 20);
	struct ml_event *e = &r->ev;
	e->id_generated = (flags & ML_REC_GEN_ID) != 0;
	e->stream_len = p[9];
	e->type_len = p[10];
	e->id_len = p[11];
	e->meta_len = meta_len;
	e->data_len = data_len;
	e->position = ml_le64(p + 24);
	e->version = ml_le64(p + 32);
	e->time = (int64_t)ml_le64(p + 40);
	const uint8_t *q = p + ML_REC_HEADER;
	e->stream = (const char *)q, q += e->stream_len;
	e->type = (const char *)q, q += e->type_len;
	e->id = (const char *)q, q += e->id_len;
	e->meta = q, q += meta_len;
	e->data = q;
	return ML_REC_OK;
}

void ml_seg_header_encode(uint8_t out[ML_SEG_HEADER], uint64_t first_position);
/* The header of a segment rewritten by a scavenge: format 3, its `scavenges`th rewrite, and
 * the creation time of the segment it replaces. */
void ml_seg_header_encode_scavenged(uint8_t out[ML_SEG_HEADER], uint64_t first_position,
				    int64_t created, uint32_t scavenges);
/* 0 and the first position, or -1 with diag when the header is not a valid one. The format
 * version is then ml_seg_format(p): 1, 2 or 3. */
int ml_seg_header_parse(const uint8_t *p, size_t avail, uint64_t *first_position);
static inline uint32_t ml_seg_format(const uint8_t *header)
{
	return ml_le32(header + 8);
}
/* How many times a scavenge rewrote the segment (0: never; its index file must say the same). */
static inline uint32_t ml_seg_scavenges(const uint8_t *header)
{
	return ml_seg_format(header) == ML_FORMAT_SCAVENGED ? ml_le32(header + 32) : 0;
}
/* The file name of a segment: 20 digits of its first position and ".seg". */
void ml_seg_name(char out[32], uint64_t first_position);

/* The first positions of the segments in logdir, sorted (free *out); removes
 * leftover temporary files when remove_tmp is set. */
int ml_seg_list(const char *logdir, int remove_tmp, uint64_t **out, size_t *n);

#endif
