/*
 * msgpack_keys.c - finding a key given twice in a map, for the check of what
 * the log stores (msgpack_check.c).
 *
 * A key "reads the same" as another when JSON would show both as one object
 * key: two equal strings, two equal integers, or the integer 1 and the string
 * "1". The walk keeps the keys of every open map on one stack (a nested map's
 * keys above its parent's) and looks for a pair when a map closes: pairwise for
 * the small maps events hold, by sorting (on a hash, then the text) for large
 * ones, so that a map of a million keys costs n log n and not n squared.
 */
#include "codec_internal.h"

#include <stdlib.h>

/* A small map is checked pairwise: cheaper than sorting up to this size. */
#define PAIRWISE_MAX 16

void ml_keys_init(struct ml_keys *ks)
{
	ks->k = ks->small;
	ks->n = 0;
	ks->cap = sizeof(ks->small) / sizeof(ks->small[0]);
}

void ml_keys_free(struct ml_keys *ks)
{
	if (ks->k != ks->small)
		free(ks->k);
	ml_keys_init(ks);
}

/* The decimal text of v in tmp (24 bytes); returns its start. */
static const char *int_text(int64_t v, char *tmp, size_t *n)
{
	char *p = tmp + 24;
	uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do {
		*--p = (char)('0' + mag % 10);
		mag /= 10;
	} while (mag);
	if (v < 0)
		*--p = '-';
	*n = (size_t)(tmp + 24 - p);
	return p;
}

/* The key's JSON text: a string's bytes, an integer's digits (in tmp). */
static const char *key_text(const struct ml_key *k, char *tmp, size_t *n)
{
	if (k->s) {
		*n = k->n;
		return k->s;
	}
	return int_text(k->i, tmp, n);
}

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 0x100000001b3u;
	return h;
}

void ml_keys_push(struct ml_keys *ks, const struct ml_msgpack_obj *o)
{
	if (ks->n == ks->cap) {
		size_t cap = ks->cap * 2;
		struct ml_key *k = ml_xmalloc(cap * sizeof(*k));
		memcpy(k, ks->k, ks->n * sizeof(*k));
		if (ks->k != ks->small)
			free(ks->k);
		ks->k = k, ks->cap = cap;
	}
	struct ml_key *k = &ks->k[ks->n++];
	if (o->kind == ML_MP_STR)
		k->s = o->ptr, k->n = o->n;
	else
		k->s = NULL, k->i = o->v.i;
}

/* Do a and b read the same in JSON? */
static int same(const struct ml_key *a, const struct ml_key *b)
{
	char ta[24], tb[24];
	size_t na, nb;
	if (a->s && b->s)
		return a->n == b->n && memcmp(a->s, b->s, a->n) == 0;
	if (!a->s && !b->s)
		return a->i == b->i;
	const char *sa = key_text(a, ta, &na), *sb = key_text(b, tb, &nb);
	return na == nb && memcmp(sa, sb, na) == 0;
}

/* Orders keys by hash, then by text: keys that read the same end up side by side. */
static int by_key(const void *x, const void *y)
{
	const struct ml_key *a = x, *b = y;
	char ta[24], tb[24];
	size_t na, nb;
	if (a->hash != b->hash)
		return a->hash < b->hash ? -1 : 1;
	const char *sa = key_text(a, ta, &na), *sb = key_text(b, tb, &nb);
	int c = memcmp(sa, sb, na < nb ? na : nb);
	return c ? c : (na > nb) - (na < nb);
}

int ml_keys_find_twice(struct ml_keys *ks, size_t base, const struct ml_key **a,
		       const struct ml_key **b)
{
	struct ml_key *k = ks->k + base;
	size_t n = ks->n - base;
	if (n <= PAIRWISE_MAX) {
		for (size_t i = 0; i + 1 < n; i++)
			for (size_t j = i + 1; j < n; j++)
				if (same(&k[i], &k[j])) {
					*a = &k[i], *b = &k[j];
					return 1;
				}
		return 0;
	}
	/* The order of these keys is not needed any more: their map is closing. */
	for (size_t i = 0; i < n; i++) {
		char tmp[24];
		size_t len;
		const char *text = key_text(&k[i], tmp, &len);
		k[i].hash = fnv1a(text, len);
	}
	qsort(k, n, sizeof(*k), by_key);
	for (size_t i = 0; i + 1 < n; i++)
		if (by_key(&k[i], &k[i + 1]) == 0) {
			*a = &k[i], *b = &k[i + 1];
			return 1;
		}
	return 0;
}
