/*
 * dryrun_diff.c - what differs between two states, key by key: the live
 * version's state and a candidate's, both as msgpack (ml_script_state), for a
 * dry run's report.
 *
 * Maps are walked key by key, whatever the order their keys were written in
 * (a Lua table's order is nobody's promise); a key on one side only is added
 * or removed as a whole, however much it holds; anything else (a number, a
 * string, an array) is a value compared whole, with the maps inside it again
 * compared whatever their order. A key is named by its path as Lua would
 * index it: total, accounts["account-3"], [7].count. The counts are exact; the
 * first few differences of each kind are kept with their values.
 */
#include <stdlib.h>
#include <string.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/msgpack.h>

#include "host/dryrun.h"

/* ---- the report's map ---- */

void ml_kv_key(struct ml_kv *kv, const char *key)
{
	ml_msgpack_put_cstr(&kv->b, key);
	kv->n++;
}

void ml_kv_uint(struct ml_kv *kv, const char *key, uint64_t v)
{
	ml_kv_key(kv, key);
	ml_msgpack_put_uint(&kv->b, v);
}

void ml_kv_str(struct ml_kv *kv, const char *key, const char *s)
{
	ml_kv_key(kv, key);
	ml_msgpack_put_cstr(&kv->b, s);
}

void ml_kv_put(const struct ml_kv *kv, struct ml_buf *out)
{
	ml_msgpack_put_map(out, kv->n);
	if (kv->b.len)
		ml_buf_add(out, kv->b.data, kv->b.len);
}

/* ---- a map's entries, in the order of their keys' bytes ---- */

struct entry {
	const uint8_t *k, *v;
	size_t kl, vl;
};

static int by_key(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = memcmp(x->k, y->k, x->kl < y->kl ? x->kl : y->kl);
	return c ? c : (x->kl > y->kl) - (x->kl < y->kl);
}

/* The n pairs at r (after the map's header), sorted; NULL when they are cut short. */
static struct entry *entries(struct ml_msgpack_reader *r, uint32_t n)
{
	if (n > ml_msgpack_left(r) / 2) {
		ml_diag_set(ML_ERR_USAGE, "a map says it holds more than its bytes do");
		return NULL;
	}
	struct entry *v = ml_xmalloc((n ? n : 1) * sizeof(*v));
	for (uint32_t i = 0; i < n; i++)
		if (ml_msgpack_skip(r, &v[i].k, &v[i].kl) != 0 ||
		    ml_msgpack_skip(r, &v[i].v, &v[i].vl) != 0) {
			free(v);
			return NULL;
		}
	if (n > 1)
		qsort(v, n, sizeof(*v), by_key);
	return v;
}

/* The value at r again, with every map's pairs in key order: equal values, equal bytes. */
static int canon(struct ml_msgpack_reader *r, struct ml_buf *out, int depth)
{
	const uint8_t *start = r->p;
	struct ml_msgpack_obj o;
	if (depth > ML_CODEC_MAX_DEPTH)
		return ml_diag_set(ML_ERR_USAGE, "a state nested deeper than %d levels",
				   ML_CODEC_MAX_DEPTH);
	if (ml_msgpack_read(r, &o) != 0)
		return -1;
	ml_buf_add(out, start, (size_t)(r->p - start));
	if (o.kind == ML_MP_ARRAY) {
		for (uint32_t i = 0; i < o.n; i++)
			if (canon(r, out, depth + 1) != 0)
				return -1;
	} else if (o.kind == ML_MP_MAP) {
		struct entry *v = entries(r, o.n);
		if (v == NULL)
			return -1;
		for (uint32_t i = 0; i < o.n; i++) {
			struct ml_msgpack_reader vr;
			ml_buf_add(out, v[i].k, v[i].kl);
			ml_msgpack_reader_init(&vr, v[i].v, v[i].vl);
			if (canon(&vr, out, depth + 1) != 0) {
				free(v);
				return -1;
			}
		}
		free(v);
	}
	return 0;
}

int ml_msgpack_same(const void *a, size_t alen, const void *b, size_t blen)
{
	if (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0))
		return 1;
	if (alen == 0 || blen == 0)
		return 0;
	struct ml_buf ca = {0}, cb = {0};
	struct ml_msgpack_reader ra, rb;
	ml_msgpack_reader_init(&ra, a, alen);
	ml_msgpack_reader_init(&rb, b, blen);
	int same = canon(&ra, &ca, 0) == 0 && canon(&rb, &cb, 0) == 0 && ca.len == cb.len &&
		   memcmp(ca.data, cb.data, ca.len) == 0;
	ml_buf_free(&ca);
	ml_buf_free(&cb);
	return same;
}

/* ---- paths ---- */

static int identifier(const char *s, size_t n)
{
	if (n == 0 ||
	    !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* Appends the key k to the path: .name, ["a-b"], [3], or [<JSON>] for other keys. */
static void path_push(struct ml_buf *path, const uint8_t *k, size_t kl)
{
	struct ml_msgpack_reader r;
	const char *s;
	uint32_t n;
	int64_t i;
	ml_msgpack_reader_init(&r, k, kl);
	if (ml_msgpack_get_str(&r, &s, &n) == 0 && identifier(s, n)) {
		if (path->len)
			ml_buf_add(path, ".", 1);
		ml_buf_add(path, s, n);
	} else if (r.p != k) { /* a string, not a name */
		ml_buf_add(path, "[", 1);
		ml_json_string(path, s, n);
		ml_buf_add(path, "]", 1);
	} else if (ml_msgpack_get_int(&r, &i) == 0) {
		ml_buf_addf(path, "[%lld]", (long long)i);
	} else {
		struct ml_buf j = {0};
		ml_msgpack_to_json(k, kl, &j);
		ml_buf_addf(path, "[%.*s]", (int)j.len, j.data ? j.data : "");
		ml_buf_free(&j);
	}
}

/* ---- the walk ---- */

/* Keeps an example {key, old?, new?} if there is room for one more in `ex`. */
static void example(const struct ml_diff *d, struct ml_buf *ex, uint32_t *n,
		    const struct ml_buf *path, const uint8_t *old, size_t ol, const uint8_t *new_,
		    size_t nl)
{
	if (*n >= d->examples)
		return;
	(*n)++;
	ml_msgpack_put_map(ex, 1 + (old != NULL) + (new_ != NULL));
	ml_msgpack_put_cstr(ex, "key");
	if (path->len)
		ml_msgpack_put_str(ex, path->data, path->len);
	else
		ml_msgpack_put_cstr(ex, "(the whole state)");
	if (old) {
		ml_msgpack_put_cstr(ex, "old");
		ml_buf_add(ex, old, ol);
	}
	if (new_) {
		ml_msgpack_put_cstr(ex, "new");
		ml_buf_add(ex, new_, nl);
	}
}

static int walk(struct ml_diff *d, struct ml_buf *path, const uint8_t *a, size_t al,
		const uint8_t *b, size_t bl, int depth);

/* Both values are maps: key by key. */
static int walk_maps(struct ml_diff *d, struct ml_buf *path, const uint8_t *a, size_t al,
		     const uint8_t *b, size_t bl, int depth)
{
	struct ml_msgpack_reader ra, rb;
	uint32_t na, nb;
	ml_msgpack_reader_init(&ra, a, al);
	ml_msgpack_reader_init(&rb, b, bl);
	if (ml_msgpack_get_map(&ra, &na) != 0 || ml_msgpack_get_map(&rb, &nb) != 0)
		return ml_diag_set(ML_ERR_USAGE, "a state is not msgpack");
	struct entry *ea = entries(&ra, na), *eb = ea ? entries(&rb, nb) : NULL;
	int rc = ea && eb ? 0 : -1;
	uint32_t i = 0, j = 0;
	while (rc == 0 && (i < na || j < nb)) {
		int c = i < na && j < nb ? by_key(&ea[i], &eb[j]) : i < na ? -1 : 1;
		size_t mark = path->len;
		path_push(path, c <= 0 ? ea[i].k : eb[j].k, c <= 0 ? ea[i].kl : eb[j].kl);
		if (c < 0) {
			d->removed++;
			example(d, &d->removed_ex, &d->n_removed_ex, path, ea[i].v, ea[i].vl, NULL,
				0);
			i++;
		} else if (c > 0) {
			d->added++;
			example(d, &d->added_ex, &d->n_added_ex, path, NULL, 0, eb[j].v, eb[j].vl);
			j++;
		} else {
			rc = walk(d, path, ea[i].v, ea[i].vl, eb[j].v, eb[j].vl, depth + 1);
			i++, j++;
		}
		path->len = mark;
	}
	free(ea);
	free(eb);
	return rc;
}

static int walk(struct ml_diff *d, struct ml_buf *path, const uint8_t *a, size_t al,
		const uint8_t *b, size_t bl, int depth)
{
	if (depth < ML_CODEC_MAX_DEPTH && ml_msgpack_is_map(a, al) && ml_msgpack_is_map(b, bl))
		return walk_maps(d, path, a, al, b, bl, depth);
	if (ml_msgpack_same(a, al, b, bl)) {
		d->same++;
		return 0;
	}
	d->changed++;
	example(d, &d->changed_ex, &d->n_changed_ex, path, a, al, b, bl);
	return 0;
}

int ml_diff_states(struct ml_diff *d, const void *old, size_t old_len, const void *new_,
		   size_t new_len)
{
	struct ml_buf path = {0};
	if (d->examples == 0)
		d->examples = ML_DRY_EXAMPLES;
	int rc = walk(d, &path, old, old_len, new_, new_len, 0);
	ml_buf_free(&path);
	return rc;
}

static void put_list(struct ml_kv *kv, const char *key, const struct ml_buf *ex, uint32_t n)
{
	ml_kv_key(kv, key);
	ml_msgpack_put_array(&kv->b, n);
	if (ex->len)
		ml_buf_add(&kv->b, ex->data, ex->len);
}

void ml_diff_put(const struct ml_diff *d, struct ml_kv *kv)
{
	ml_kv_key(kv, "keys");
	ml_msgpack_put_map(&kv->b, 4);
	ml_msgpack_put_cstr(&kv->b, "added");
	ml_msgpack_put_uint(&kv->b, d->added);
	ml_msgpack_put_cstr(&kv->b, "removed");
	ml_msgpack_put_uint(&kv->b, d->removed);
	ml_msgpack_put_cstr(&kv->b, "changed");
	ml_msgpack_put_uint(&kv->b, d->changed);
	ml_msgpack_put_cstr(&kv->b, "same");
	ml_msgpack_put_uint(&kv->b, d->same);
	put_list(kv, "added", &d->added_ex, d->n_added_ex);
	put_list(kv, "removed", &d->removed_ex, d->n_removed_ex);
	put_list(kv, "changed", &d->changed_ex, d->n_changed_ex);
}

void ml_diff_free(struct ml_diff *d)
{
	ml_buf_free(&d->added_ex);
	ml_buf_free(&d->removed_ex);
	ml_buf_free(&d->changed_ex);
}
