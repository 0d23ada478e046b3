/*
 * msgpack_check.c - validation of the msgpack bytes every append carries, and
 * the error reports the codec's readers share.
 *
 * One walk serves both checks. ml_msgpack_check wants well-formed msgpack: the
 * walk reads each object once, without recursion or allocation, keeping a count
 * of "objects still to read" per open container. ml_msgpack_check_value also
 * applies the rules of what the log stores (docs/codec.md): values that every
 * reader can show (no ext, no NaN or infinity) and map keys that JSON can carry
 * (UTF-8 strings or integers, none twice). It names the value it refuses by its path
 * (data.items[2].blob), which the open containers hold: an array's element is
 * counted from its remaining count, a map's key is on the key stack
 * (msgpack_keys.c).
 */
#include "codec_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

const char *ml_msgpack_format_name(uint8_t b)
{
	static const char *const tagged[] = {
	    "nil",	"(never used)", "false",    "true",	 "bin 8",    "bin 16", "bin 32",
	    "ext 8",	"ext 16",	"ext 32",   "float 32",	 "float 64", "uint 8", "uint 16",
	    "uint 32",	"uint 64",	"int 8",    "int 16",	 "int 32",   "int 64", "fixext 1",
	    "fixext 2", "fixext 4",	"fixext 8", "fixext 16", "str 8",    "str 16", "str 32",
	    "array 16", "array 32",	"map 16",   "map 32",
	};
	if (b <= 0x7f || b >= 0xe0)
		return "fixint";
	if (b <= 0x8f)
		return "fixmap";
	if (b <= 0x9f)
		return "fixarray";
	if (b <= 0xbf)
		return "fixstr";
	return tagged[b - 0xc0];
}

static size_t offset(const struct ml_msgpack_reader *r, const uint8_t *at)
{
	return (size_t)(at - r->base);
}

static int err_end(const struct ml_msgpack_reader *r)
{
	if (r->end == r->base)
		return ml_diag_set(ML_ERR_USAGE, "invalid msgpack: the input is empty");
	return ml_diag_set(ML_ERR_USAGE,
			   "invalid msgpack: the input ends at byte %zu, inside an array or map "
			   "that announced more elements",
			   offset(r, r->end));
}

int ml_msgpack_err_head(const struct ml_msgpack_reader *r, uint64_t need)
{
	if (need == 0)
		return ml_diag_set(ML_ERR_USAGE,
				   "invalid msgpack: byte %zu is 0xc1, which msgpack never uses",
				   offset(r, r->p));
	if (r->p >= r->end)
		return err_end(r);
	return ml_diag_set(
	    ML_ERR_USAGE,
	    "invalid msgpack: the %s at byte %zu needs %llu bytes but only %zu remain",
	    ml_msgpack_format_name(*r->p), offset(r, r->p), (unsigned long long)need,
	    ml_msgpack_left(r));
}

int ml_msgpack_err_depth(const struct ml_msgpack_reader *r, const uint8_t *at)
{
	return ml_diag_set(ML_ERR_USAGE,
			   "invalid msgpack: the %s at byte %zu nests deeper than %d levels",
			   ml_msgpack_format_name(*at), offset(r, at), ML_CODEC_MAX_DEPTH);
}

int ml_msgpack_err_trailing(const struct ml_msgpack_reader *r)
{
	size_t n = ml_msgpack_left(r);
	return ml_diag_set(ML_ERR_USAGE,
			   "invalid msgpack: %zu more %s the object that ends at byte %zu "
			   "(one object expected)",
			   n, n == 1 ? "byte follows" : "bytes follow", offset(r, r->p));
}

/* ---- the walk: every object once, without recursion ---- */

/* One open array or map. */
struct frame {
	uint64_t left; /* objects still to read in it: a map of n pairs holds 2n */
	uint32_t n;    /* its elements, or pairs */
	uint32_t is_map;
	size_t keys; /* a map's first key on the key stack */
};

struct walk {
	struct ml_msgpack_reader r;
	const char *name; /* the value's name in messages; NULL: check the structure only */
	int depth;
	struct frame f[ML_CODEC_MAX_DEPTH + 1]; /* f[0] holds the one object at the root */
	struct ml_keys keys;			/* the keys of the open maps (name set only) */
};

/*
 * Appends the path to the current element of each frame from 1 to upto; a key
 * being read in frame upto is left out (the path then names its map).
 */
static void put_path(const struct walk *w, struct ml_buf *b, int upto, int is_key)
{
	ml_buf_add(b, w->name, strlen(w->name));
	for (int d = 1; d <= upto; d++) {
		const struct frame *f = &w->f[d];
		if (!f->is_map) {
			ml_buf_addf(b, "[%llu]", (unsigned long long)(f->n - f->left));
			continue;
		}
		if (d == upto && is_key)
			break;
		const struct ml_key *k = &w->keys.k[f->keys + (f->n - f->left / 2) - 1];
		if (k->s)
			ml_codec_path_key(b, k->s, k->n);
		else
			ml_buf_addf(b, "[%lld]", (long long)k->i);
	}
}

/* "<path> <what>": why the value at the path cannot be stored. */
__attribute__((format(printf, 4, 5))) static int refuse(const struct walk *w, int upto, int is_key,
							const char *fmt, ...)
{
	struct ml_buf b = {0};
	char what[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	put_path(w, &b, upto, is_key);
	ml_diag_set(ML_ERR_USAGE, "%s %s", ml_codec_path_text(&b), what);
	ml_buf_free(&b);
	return -1;
}

static int check_value(const struct walk *w, const struct ml_msgpack_obj *o)
{
	double d = o->kind == ML_MP_FLOAT32 ? o->v.f : o->kind == ML_MP_FLOAT64 ? o->v.d : 0;
	if (o->kind == ML_MP_EXT)
		return refuse(w, w->depth, 0,
			      "is an ext value (type %d), which has no JSON or Lua form; send "
			      "the bytes as bin or a string",
			      o->ext_type);
	if (!isfinite(d))
		return refuse(w, w->depth, 0,
			      "is %s, which JSON cannot carry; send null or a finite number",
			      isnan(d) ? "NaN"
			      : d > 0  ? "infinity"
				       : "-infinity");
	return 0;
}

/* 1 if s[0..n) is valid UTF-8; ASCII goes fast. */
static int is_utf8(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s, *end = p + n;
	while (p < end) {
		int k = *p < 0x80 ? 1 : ml_codec_utf8_len(p, end);
		if (k == 0)
			return 0;
		p += k;
	}
	return 1;
}

static int check_key(struct walk *w, const struct ml_msgpack_obj *o)
{
	char what[64];
	switch (o->kind) {
	case ML_MP_STR:
		/* JSON would show each bad byte as U+FFFD, making different keys one. */
		if (!is_utf8(o->ptr, o->n)) {
			struct ml_buf q = {0};
			ml_codec_quote(&q, o->ptr, o->n);
			ml_buf_add(&q, "", 1);
			refuse(w, w->depth, 1,
			       "has a key that is not UTF-8 text (%s); map keys must be UTF-8 "
			       "strings or integers",
			       q.data);
			ml_buf_free(&q);
			return -1;
		}
		ml_keys_push(&w->keys, o);
		return 0;
	case ML_MP_INT:
		ml_keys_push(&w->keys, o);
		return 0;
	case ML_MP_FLOAT32:
	case ML_MP_FLOAT64:
		snprintf(what, sizeof(what), "a float (%g)",
			 o->kind == ML_MP_FLOAT32 ? (double)o->v.f : o->v.d);
		break;
	case ML_MP_BOOL:
		snprintf(what, sizeof(what), "a boolean (%s)", o->v.b ? "true" : "false");
		break;
	default: {
		static const char *const kinds[] = {
		    [ML_MP_NIL] = "nil",	  [ML_MP_UINT] = "an integer above 2^63 - 1",
		    [ML_MP_BIN] = "binary (bin)", [ML_MP_EXT] = "an ext value",
		    [ML_MP_ARRAY] = "an array",	  [ML_MP_MAP] = "a map",
		};
		snprintf(what, sizeof(what), "%s", kinds[o->kind]);
	}
	}
	return refuse(w, w->depth, 1, "has a key that is %s; map keys must be strings or integers",
		      what);
}

/* The map of frame `depth` has been read whole: no key twice, and its keys leave the stack. */
static int close_map(struct walk *w)
{
	const struct frame *f = &w->f[w->depth];
	const struct ml_key *a, *b;
	if (!f->is_map)
		return 0;
	if (ml_keys_find_twice(&w->keys, f->keys, &a, &b)) {
		struct ml_buf q = {0};
		if (!a->s != !b->s) { /* the integer 1 and the string "1" */
			const struct ml_key *str = a->s ? a : b, *num = a->s ? b : a;
			ml_codec_quote(&q, str->s, str->n);
			ml_buf_add(&q, "", 1);
			refuse(w, w->depth - 1, 0,
			       "has the keys %lld and %s, which JSON shows as the same key; keep "
			       "one",
			       (long long)num->i, q.data);
		} else {
			if (a->s)
				ml_codec_quote(&q, a->s, a->n);
			else
				ml_buf_addf(&q, "%lld", (long long)a->i);
			ml_buf_add(&q, "", 1);
			refuse(w, w->depth - 1, 0,
			       "has the key %s twice; a key may appear once in a map", q.data);
		}
		ml_buf_free(&q);
		return -1;
	}
	w->keys.n = f->keys;
	return 0;
}

/*
 * Inlined twice: with rules 0 (ml_msgpack_check) the compiler drops the rules and
 * keeps the walk in registers, as fast as a walk that knows nothing of them.
 */
static inline __attribute__((always_inline)) int walk(struct walk *w, int rules)
{
	struct ml_msgpack_obj o;
	struct frame *f = w->f;
	f->left = 1, f->is_map = 0;
	for (;;) {
		const uint8_t *at = w->r.p;
		if (ml_msgpack_read(&w->r, &o) != 0)
			return -1;
		int is_key = f->is_map && (f->left & 1) == 0;
		f->left--;
		if (rules) {
			w->depth = (int)(f - w->f);
			if ((is_key ? check_key(w, &o) : check_value(w, &o)) != 0)
				return -1;
		}
		if (o.kind == ML_MP_MAP || o.kind == ML_MP_ARRAY) {
			if (f == w->f + ML_CODEC_MAX_DEPTH)
				return ml_msgpack_err_depth(&w->r, at);
			if (o.n > 0) {
				int is_map = o.kind == ML_MP_MAP;
				*++f = (struct frame){is_map ? 2 * (uint64_t)o.n : o.n, o.n,
						      (uint32_t)is_map, w->keys.n};
				continue;
			}
		}
		while (f->left == 0) {
			if (f == w->f)
				return 0;
			if (rules) {
				w->depth = (int)(f - w->f);
				if (close_map(w) != 0)
					return -1;
			}
			f--;
		}
	}
}

/* "invalid msgpack: X" becomes "<name> is not valid msgpack: X"; other reasons stay. */
static void in_field(const char *name)
{
	static const char prefix[] = "invalid msgpack: ";
	const char *m = ml_diag_last();
	char copy[256];
	if (strncmp(m, prefix, sizeof(prefix) - 1) != 0)
		return;
	snprintf(copy, sizeof(copy), "%s", m + sizeof(prefix) - 1);
	ml_diag_set(ML_ERR_USAGE, "%s is not valid msgpack: %s", name, copy);
}

static int check(const void *buf, size_t len, const char *name)
{
	struct walk w;
	int rc;
	ml_msgpack_reader_init(&w.r, buf, len);
	w.name = name;
	ml_keys_init(&w.keys);
	rc = name ? walk(&w, 1) : walk(&w, 0);
	if (rc == 0 && w.r.p != w.r.end)
		rc = ml_msgpack_err_trailing(&w.r);
	if (rc != 0 && name)
		in_field(name);
	ml_keys_free(&w.keys);
	return rc;
}

int ml_msgpack_check(const void *buf, size_t len)
{
	return check(buf, len, NULL);
}

/* A float's bits at p (4 or 8 bytes, big-endian), as a double. */
static double float_at(const uint8_t *p, size_t w)
{
	uint64_t bits = ml_msgpack_be_fixed(p, w);
	if (w == 8) {
		double d;
		memcpy(&d, &bits, 8);
		return d;
	}
	uint32_t b32 = (uint32_t)bits;
	float f;
	memcpy(&f, &b32, 4);
	return f;
}

/* The size of the scalar at p[0..left) that the log stores as it is (no ext, no NaN or
 * infinity), or 0 for anything else: a container, or a head this does not size. */
static size_t plain_scalar(const uint8_t *p, size_t left)
{
	uint8_t c = p[0];
	size_t n = 0;
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
		n = 1;
	else if ((c & 0xe0) == 0xa0)
		n = 1 + (size_t)(c & 0x1f);
	else if (c >= 0xcc && c <= 0xd3) /* uint 8 to 64, int 8 to 64 */
		n = 1 + ((size_t)1 << ((c - 0xcc) & 3));
	else if ((c == 0xd9 || c == 0xc4) && left >= 2) /* str 8, bin 8 */
		n = 2 + (size_t)p[1];
	else if ((c == 0xca && left >= 5 && isfinite(float_at(p + 1, 4))) ||
		 (c == 0xcb && left >= 9 && isfinite(float_at(p + 1, 8))))
		n = c == 0xca ? 5 : 9;
	return n <= left ? n : 0;
}

/*
 * The shape most events' data has: a map of at most 15 pairs, keys of printable
 * ASCII, values scalars. Such a value is checked here in one pass with none of
 * the walk's bookkeeping (a path for messages, a key stack): 1 when it is of
 * that shape and may be stored; 0 when it is not of that shape, or is refused,
 * and the walk then decides and says why.
 */
static int plain_map_ok(const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len, *key[15];
	size_t key_len[15];
	if (len == 0 || (p[0] & 0xf0) != 0x80)
		return 0;
	size_t pairs = p[0] & 0x0f;
	p++;
	for (size_t i = 0; i < pairs; i++) {
		if (p == end || (p[0] & 0xe0) != 0xa0)
			return 0;
		size_t n = p[0] & 0x1f;
		if ((size_t)(end - p) <= n || ml_printable_ascii(p + 1, n) != n)
			return 0;
		key[i] = p + 1, key_len[i] = n;
		for (size_t j = 0; j < i; j++)
			if (key_len[j] == n && memcmp(key[j], key[i], n) == 0)
				return 0;
		p += 1 + n;
		size_t step = p < end ? plain_scalar(p, (size_t)(end - p)) : 0;
		if (step == 0)
			return 0;
		p += step;
	}
	return p == end;
}

int ml_msgpack_check_value(const void *buf, size_t len, const char *name)
{
	if (plain_map_ok(buf, len))
		return 0;
	return check(buf, len, name ? name : "value");
}

int ml_msgpack_is_map(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	return len > 0 && ((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf);
}

/* Grows the one-byte header at `at` to the size n needs, moving what follows. */
static void widen(struct ml_buf *b, size_t at, size_t room, size_t want)
{
	if (want <= room)
		return;
	ml_buf_reserve(b, want - room);
	memmove(b->data + at + want, b->data + at + room, b->len - at - room);
	b->len += want - room;
}

void ml_msgpack_fix_head(struct ml_buf *b, size_t at, int is_map, uint32_t n)
{
	uint8_t *p;
	if (n <= 15) {
		b->data[at] = (char)((is_map ? 0x80 : 0x90) | n);
		return;
	}
	size_t w = n <= 0xffff ? 2 : 4;
	widen(b, at, 1, 1 + w);
	p = (uint8_t *)b->data + at;
	p[0] = (uint8_t)((is_map ? 0xde : 0xdc) + (w == 4));
	ml_msgpack_write_be(p + 1, n, (int)w);
}

void ml_msgpack_fix_str_head(struct ml_buf *b, size_t at, size_t room, uint32_t n)
{
	size_t want = n <= 31 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : 5;
	if (want < room) {
		memmove(b->data + at + want, b->data + at + room, b->len - at - room);
		b->len -= room - want;
	}
	widen(b, at, room, want);
	uint8_t *p = (uint8_t *)b->data + at;
	if (want == 1)
		p[0] = (uint8_t)(0xa0 | n);
	else
		p[0] = want == 2 ? 0xd9 : want == 3 ? 0xda : 0xdb;
	if (want > 1)
		ml_msgpack_write_be(p + 1, n, (int)want - 1);
}
