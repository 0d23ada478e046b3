/*
 * block.c - the sorted tables of blocks and runs: laying a chunk out as a
 * block, reading a table's header, finding a stream or an id in one, and the
 * bloom filters in front of them (the format is in index.h).
 *
 * The keys are seeded 64-bit hashes, so they are spread evenly: a search
 * interpolates where the key should be, and finds it in a few probes where a
 * binary search would take twenty (falling back to halving if it does not
 * converge). A filter of 10 bits a key answers "not here" for about 98% of
 * the tables a missing key is asked of, reading one cache line.
 */
#include <stdlib.h>
#include <string.h>

#include <moonlog/diag.h>

#include "log/index.h"

#define FORMAT	     1
#define BLOOM_BITS   10 /* per key */
#define BLOOM_PROBES 6
#define BLOOM_BLOCK  64

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t align64(uint64_t v)
{
	return (v + 63) & ~(uint64_t)63;
}

/* ---- bloom filters ---- */

uint32_t ml_bloom_blocks(uint64_t n)
{
	uint64_t blocks = (n * BLOOM_BITS + BLOOM_BLOCK * 8 - 1) / (BLOOM_BLOCK * 8);
	return blocks ? (uint32_t)blocks : 1;
}

static uint32_t bloom_block(uint64_t key, uint32_t blocks)
{
	return (uint32_t)(((key >> 32) * (uint64_t)blocks) >> 32);
}

void ml_bloom_add(uint8_t *f, uint32_t blocks, uint64_t key)
{
	uint8_t *b = f + (uint64_t)bloom_block(key, blocks) * BLOOM_BLOCK;
	uint64_t h = key * 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < BLOOM_PROBES; i++, h >>= 9)
		b[(h & 511) >> 3] |= (uint8_t)(1u << (h & 7));
}

int ml_bloom_maybe(const uint8_t *f, uint32_t blocks, uint64_t key)
{
	const uint8_t *b = f + (uint64_t)bloom_block(key, blocks) * BLOOM_BLOCK;
	uint64_t h = key * 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < BLOOM_PROBES; i++, h >>= 9)
		if (!(b[(h & 511) >> 3] & (1u << (h & 7))))
			return 0;
	return 1;
}

/* ---- the header and the sections' places ---- */

struct layout {
	uint64_t offsets, positions, streams, ids, sfilter, ifilter, names, end;
};

static struct layout layout_of(int block, uint64_t count, const struct ml_table *t)
{
	struct layout l;
	l.offsets = ML_TABLE_HEADER;
	l.positions = l.offsets + (block ? 4 * count : 0);
	l.streams = l.positions + (block ? 4 * count : 0);
	l.ids = l.streams + ML_SENTRY * t->nstreams;
	l.sfilter = align64(l.ids + ML_IENTRY * t->nids);
	l.ifilter = l.sfilter + (uint64_t)BLOOM_BLOCK * t->sfilter_blocks;
	l.names = l.ifilter + (uint64_t)BLOOM_BLOCK * t->ifilter_blocks;
	l.end = l.names + t->names_len;
	return l;
}

void ml_table_header(uint8_t *p, uint32_t magic, const struct ml_table *t, uint64_t seed,
		     uint32_t data_start, uint64_t data_end)
{
	memset(p, 0, ML_TABLE_HEADER);
	put32(p, magic);
	put32(p + 8, FORMAT);
	put64(p + 24, t->first);
	put64(p + 32, t->last);
	put64(p + 40, seed);
	put64(p + 48, t->nstreams);
	put64(p + 56, t->nids);
	put64(p + 64, t->names_len);
	put32(p + 72, t->sfilter_blocks);
	put32(p + 76, t->ifilter_blocks);
	put32(p + 84, data_start);
	put64(p + 88, data_end);
	put64(p + 96, t->last_seq);
	put64(p + 104, t->nblocks);
	put64(p + 112, t->new_streams);
}

void ml_table_seal(uint8_t *p, uint64_t length)
{
	put64(p + 16, length);
	put32(p + 80, ml_crc32c(0, p + ML_TABLE_HEADER, length - ML_TABLE_HEADER));
	put32(p + 4, ml_crc32c(0, p + 8, ML_TABLE_HEADER - 8));
}

static void set_sections(struct ml_table *t, const uint8_t *p, const struct layout *l)
{
	t->base = p;
	t->streams = p + l->streams;
	t->ids = p + l->ids;
	t->sfilter = p + l->sfilter;
	t->ifilter = p + l->ifilter;
	t->names = (const char *)p + l->names;
}

int ml_table_open(struct ml_table *t, const uint8_t *p, size_t avail, uint32_t magic, uint64_t seed)
{
	if (avail < ML_TABLE_HEADER || ml_tload32(p) != magic)
		return ml_diag_set(ML_ERR_CORRUPT, "not an index table (bad magic)");
	if (ml_tload32(p + 4) != ml_crc32c(0, p + 8, ML_TABLE_HEADER - 8))
		return ml_diag_set(ML_ERR_CORRUPT, "index table header checksum mismatch");
	if (ml_tload32(p + 8) != FORMAT)
		return ml_diag_set(ML_ERR_CORRUPT, "index table format %u; this moonlog reads %d",
				   ml_tload32(p + 8), FORMAT);
	if (ml_tload64(p + 40) != seed)
		return ml_diag_set(ML_ERR_CORRUPT, "index table of another seed");
	memset(t, 0, sizeof(*t));
	t->length = ml_tload64(p + 16);
	t->first = ml_tload64(p + 24);
	t->last = ml_tload64(p + 32);
	t->nstreams = ml_tload64(p + 48);
	t->nids = ml_tload64(p + 56);
	t->names_len = ml_tload64(p + 64);
	t->sfilter_blocks = ml_tload32(p + 72);
	t->ifilter_blocks = ml_tload32(p + 76);
	t->last_seq = ml_tload64(p + 96);
	t->nblocks = ml_tload64(p + 104);
	t->new_streams = ml_tload64(p + 112);
	int block = magic == ML_BLOCK_MAGIC;
	/* Bounds before any multiplication: a header that reads well may still lie. */
	if (t->first == 0 || t->last < t->first || t->length > avail ||
	    t->nstreams > avail / ML_SENTRY || t->nids > avail / ML_IENTRY ||
	    t->names_len > avail || t->sfilter_blocks == 0 || t->ifilter_blocks == 0 ||
	    (uint64_t)t->sfilter_blocks + t->ifilter_blocks > avail / BLOOM_BLOCK ||
	    (block && (t->last - t->first >= avail / 8 || t->nblocks != 1)) || t->nblocks == 0)
		return ml_diag_set(ML_ERR_CORRUPT, "index table header out of bounds");
	struct layout l = layout_of(block, t->last - t->first + 1, t);
	if (l.end != t->length)
		return ml_diag_set(ML_ERR_CORRUPT, "index table sections do not add up");
	set_sections(t, p, &l);
	return 0;
}

int ml_block_open(struct ml_block *b, const uint8_t *p, size_t avail, uint64_t seed)
{
	memset(b, 0, sizeof(*b));
	if (ml_table_open(&b->t, p, avail, ML_BLOCK_MAGIC, seed) != 0)
		return -1;
	struct layout l = layout_of(1, b->t.last - b->t.first + 1, &b->t);
	b->offsets = p + l.offsets;
	b->positions = p + l.positions;
	b->data_start = ml_tload32(p + 84);
	b->data_end = ml_tload64(p + 88);
	if (b->data_start != ml_tload32(b->offsets) || b->data_end <= b->data_start)
		return ml_diag_set(ML_ERR_CORRUPT, "index block offsets out of place");
	return 0;
}

/* ---- searching ---- */

static uint64_t key_at(const uint8_t *base, size_t stride, uint64_t i)
{
	return ml_tload64(base + stride * i);
}

/*
 * The first index whose key is `key` in a table sorted by key (n entries of
 * `stride` bytes, the key first), or n if none. Interpolation: the keys are
 * evenly spread hashes.
 */
static uint64_t find_key(const uint8_t *base, size_t stride, uint64_t n, uint64_t key)
{
	if (n == 0)
		return n;
	uint64_t lo = 0, hi = n - 1;
	for (int step = 0; lo <= hi; step++) {
		uint64_t klo = key_at(base, stride, lo), khi = key_at(base, stride, hi), mid;
		if (key < klo || key > khi)
			return n;
		if (step >= 8 || khi == klo)
			mid = lo + (hi - lo) / 2;
		else
			mid = lo +
			      (uint64_t)((unsigned __int128)(key - klo) * (hi - lo) / (khi - klo));
		uint64_t k = key_at(base, stride, mid);
		if (k < key) {
			lo = mid + 1;
		} else if (k > key) {
			if (mid == 0)
				return n;
			hi = mid - 1;
		} else {
			while (mid > 0 && key_at(base, stride, mid - 1) == key)
				mid--;
			return mid;
		}
	}
	return n;
}

const uint8_t *ml_table_stream(const struct ml_table *t, uint64_t hash, const char *name,
			       size_t len)
{
	if (!ml_bloom_maybe(t->sfilter, t->sfilter_blocks, hash))
		return NULL;
	for (uint64_t i = find_key(t->streams, ML_SENTRY, t->nstreams, hash);
	     i < t->nstreams && ml_se_hash(t->streams + ML_SENTRY * i) == hash; i++) {
		const uint8_t *e = t->streams + ML_SENTRY * i;
		size_t elen;
		const char *ename = ml_se_name(t, e, &elen);
		if (elen == len && memcmp(ename, name, len) == 0)
			return e;
	}
	return NULL;
}

size_t ml_table_ids(const struct ml_table *t, uint64_t key, uint64_t *out, size_t max)
{
	if (!ml_bloom_maybe(t->ifilter, t->ifilter_blocks, key))
		return 0;
	size_t n = 0;
	for (uint64_t i = find_key(t->ids, ML_IENTRY, t->nids, key);
	     i < t->nids && key_at(t->ids, ML_IENTRY, i) == key; i++, n++)
		if (n < max)
			out[n] = ml_tload64(t->ids + ML_IENTRY * i + 8);
	return n;
}

/* ---- checking a table ---- */

static int names_cmp(const struct ml_table *t, const uint8_t *a, const uint8_t *b)
{
	size_t la, lb;
	const char *na = ml_se_name(t, a, &la), *nb = ml_se_name(t, b, &lb);
	int c = memcmp(na, nb, la < lb ? la : lb);
	return c ? c : (la > lb) - (la < lb);
}

int ml_table_verify(const struct ml_table *t)
{
	if (ml_tload32(t->base + 80) !=
	    ml_crc32c(0, t->base + ML_TABLE_HEADER, t->length - ML_TABLE_HEADER))
		return ml_diag_set(ML_ERR_CORRUPT, "checksum mismatch");
	for (uint64_t i = 0; i < t->nstreams; i++) {
		const uint8_t *e = t->streams + ML_SENTRY * i, *p = e - ML_SENTRY;
		if ((uint64_t)ml_tload32(e + 24) + e[36] > t->names_len || e[36] == 0)
			return ml_diag_set(ML_ERR_CORRUPT, "stream entry %llu: name out of bounds",
					   (unsigned long long)i);
		if (i > 0 && (ml_se_hash(p) > ml_se_hash(e) ||
			      (ml_se_hash(p) == ml_se_hash(e) && names_cmp(t, p, e) >= 0)))
			return ml_diag_set(ML_ERR_CORRUPT, "stream entry %llu out of order",
					   (unsigned long long)i);
		if (!ml_bloom_maybe(t->sfilter, t->sfilter_blocks, ml_se_hash(e)))
			return ml_diag_set(ML_ERR_CORRUPT,
					   "stream entry %llu missing from the filter",
					   (unsigned long long)i);
	}
	for (uint64_t i = 0; i < t->nids; i++) {
		const uint8_t *e = t->ids + ML_IENTRY * i;
		uint64_t pos = ml_tload64(e + 8);
		if (pos < t->first || pos > t->last)
			return ml_diag_set(ML_ERR_CORRUPT, "id entry %llu: position out of range",
					   (unsigned long long)i);
		if (i > 0 && (key_at(t->ids, ML_IENTRY, i - 1) > ml_tload64(e) ||
			      (key_at(t->ids, ML_IENTRY, i - 1) == ml_tload64(e) &&
			       ml_tload64(e - ML_IENTRY + 8) >= pos)))
			return ml_diag_set(ML_ERR_CORRUPT, "id entry %llu out of order",
					   (unsigned long long)i);
		if (!ml_bloom_maybe(t->ifilter, t->ifilter_blocks, ml_tload64(e)))
			return ml_diag_set(ML_ERR_CORRUPT, "id entry %llu missing from the filter",
					   (unsigned long long)i);
	}
	return 0;
}

/* ---- a chunk laid out as a block ---- */

static int cmp_streams(const void *a, const void *b, void *arg)
{
	const struct ml_chunk *ch = arg;
	const struct ml_cstream *x = &ch->streams[*(const uint32_t *)a];
	const struct ml_cstream *y = &ch->streams[*(const uint32_t *)b];
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	int c = memcmp(ch->names + x->name, ch->names + y->name,
		       x->name_len < y->name_len ? x->name_len : y->name_len);
	return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static int cmp_ids(const void *a, const void *b)
{
	const struct ml_cid *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return (x->position > y->position) - (x->position < y->position);
}

void ml_block_encode(const struct ml_chunk *c, uint64_t seed, uint64_t last_seq, struct ml_buf *out)
{
	uint32_t *order = ml_xmalloc(((size_t)c->nstreams + 1) * sizeof(*order));
	uint32_t ns = 0;
	for (uint32_t i = 0; i < c->nstreams; i++)
		if (c->streams[i].count > 0)
			order[ns++] = i;
	qsort_r(order, ns, sizeof(*order), cmp_streams, (void *)c);

	struct ml_table t = {.first = c->first,
			     .last = ml_chunk_last(c),
			     .nstreams = ns,
			     .nids = c->nids,
			     .nblocks = 1,
			     .last_seq = last_seq,
			     .new_streams = c->new_streams};
	for (uint32_t i = 0; i < ns; i++)
		t.names_len += c->streams[order[i]].name_len;
	t.sfilter_blocks = ml_bloom_blocks(ns);
	t.ifilter_blocks = ml_bloom_blocks(c->nids);
	struct layout l = layout_of(1, c->count, &t);
	ml_buf_reserve(out, l.end);
	uint8_t *p = (uint8_t *)out->data;
	memset(p, 0, l.end);
	ml_table_header(p, ML_BLOCK_MAGIC, &t, seed, c->start, c->end);

	/* each stream's list starts where the ones before it in order end */
	uint32_t *list = ml_xcalloc((size_t)c->nstreams + 1, sizeof(*list));
	uint32_t *fill = ml_xcalloc((size_t)c->nstreams + 1, sizeof(*fill));
	uint64_t at = 0, name_at = 0;
	for (uint32_t i = 0; i < ns; i++) {
		const struct ml_cstream *s = &c->streams[order[i]];
		uint8_t *e = p + l.streams + (uint64_t)ML_SENTRY * i;
		list[order[i]] = (uint32_t)at;
		put64(e, s->hash);
		put64(e + 8, s->first_version + s->count - 1);
		put64(e + 16, s->prev);
		put32(e + 24, (uint32_t)name_at);
		put32(e + 28, s->count);
		put32(e + 32, (uint32_t)at);
		e[36] = s->name_len;
		memcpy(p + l.names + name_at, c->names + s->name, s->name_len);
		name_at += s->name_len;
		at += s->count;
		ml_bloom_add(p + l.sfilter, t.sfilter_blocks, s->hash);
	}
	for (uint32_t i = 0; i < c->count; i++) {
		uint32_t s = c->ev[i].stream;
		put32(p + l.offsets + 4 * (uint64_t)i, c->ev[i].off);
		put32(p + l.positions + 4 * ((uint64_t)list[s] + fill[s]++), i);
	}
	struct ml_cid *ids = ml_xmalloc(((size_t)c->nids + 1) * sizeof(*ids));
	if (c->nids)
		memcpy(ids, c->ids, (size_t)c->nids * sizeof(*ids));
	qsort(ids, c->nids, sizeof(*ids), cmp_ids);
	for (uint32_t i = 0; i < c->nids; i++) {
		put64(p + l.ids + (uint64_t)ML_IENTRY * i, ids[i].key);
		put64(p + l.ids + (uint64_t)ML_IENTRY * i + 8, ids[i].position);
		ml_bloom_add(p + l.ifilter, t.ifilter_blocks, ids[i].key);
	}
	ml_table_seal(p, l.end);
	out->len = l.end;
	free(ids);
	free(list);
	free(fill);
	free(order);
}
