/*
 * codec_internal.h - what the codec's files share: a bounds-checked msgpack
 * reader that yields one object header at a time, the msgpack writer, and text
 * helpers for the JSON side.
 *
 * The reader and writer are inline because they sit in the hot loops of event
 * validation, decoding into Lua and encoding from Lua.
 */
#ifndef ML_CODEC_INTERNAL_H
#define ML_CODEC_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>
#include <moonlog/util.h>

/* What one msgpack header holds. Unsigned values up to INT64_MAX read as ML_MP_INT. */
enum ml_msgpack_kind {
	ML_MP_NIL,
	ML_MP_BOOL,
	ML_MP_INT,  /* v.i */
	ML_MP_UINT, /* v.u, above INT64_MAX */
	ML_MP_FLOAT32,
	ML_MP_FLOAT64,
	ML_MP_STR,   /* ptr, n bytes */
	ML_MP_BIN,   /* ptr, n bytes */
	ML_MP_EXT,   /* ptr, n bytes, ext_type */
	ML_MP_ARRAY, /* n elements follow */
	ML_MP_MAP,   /* n key-value pairs follow */
};

struct ml_msgpack_obj {
	enum ml_msgpack_kind kind;
	uint32_t n;
	int8_t ext_type;
	const char *ptr;
	union {
		int b;
		int64_t i;
		uint64_t u;
		float f;
		double d;
	} v;
};

/* A cursor over untrusted bytes; base is kept to report offsets. */
struct ml_msgpack_reader {
	const uint8_t *base, *p, *end;
};

static inline void ml_msgpack_reader_init(struct ml_msgpack_reader *r, const void *buf, size_t len)
{
	r->base = r->p = buf;
	r->end = r->base + len;
}

static inline size_t ml_msgpack_left(const struct ml_msgpack_reader *r)
{
	return (size_t)(r->end - r->p);
}

/*
 * Error reports, out of line: each sets a diag and returns -1. The inline reader
 * writes `return ml_msgpack_err_x(...), -1;` so that the compiler sees the -1.
 */
int ml_msgpack_err_end(const struct ml_msgpack_reader *r);
int ml_msgpack_err_truncated(const struct ml_msgpack_reader *r, const uint8_t *at, size_t need);
int ml_msgpack_err_unused(const struct ml_msgpack_reader *r);
int ml_msgpack_err_depth(const struct ml_msgpack_reader *r, const uint8_t *at);
int ml_msgpack_err_trailing(const struct ml_msgpack_reader *r);
/* A name for the format that starts with byte b ("str 8", "map 16"), for messages. */
const char *ml_msgpack_format_name(uint8_t b);

static inline uint16_t ml_msgpack_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t ml_msgpack_be32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	return v;
}

static inline uint64_t ml_msgpack_be64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

/* Reads the n-byte big-endian length at p+1 (n = 1, 2 or 4). */
static inline uint32_t ml_msgpack_len(const uint8_t *p, int n)
{
	return n == 1 ? p[1] : n == 2 ? ml_msgpack_be16(p + 1) : ml_msgpack_be32(p + 1);
}

/* A header of h bytes after the type byte, then a payload of the length it holds. */
static inline int ml_msgpack_read_blob(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o,
				       enum ml_msgpack_kind kind, int h)
{
	const uint8_t *p = r->p;
	size_t left = ml_msgpack_left(r);
	if (left < (size_t)h + 1)
		return ml_msgpack_err_truncated(r, p, (size_t)h + 1), -1;
	o->kind = kind;
	o->n = ml_msgpack_len(p, h);
	if (left - (size_t)h - 1 < o->n)
		return ml_msgpack_err_truncated(r, p, (size_t)h + 1 + o->n), -1;
	o->ptr = (const char *)p + 1 + h;
	r->p = p + 1 + h + o->n;
	return 0;
}

/* An ext: a header of h bytes (0 for fixext), the type byte, then n bytes. */
static inline int ml_msgpack_read_ext(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o, int h,
				      uint32_t fixed)
{
	const uint8_t *p = r->p;
	size_t left = ml_msgpack_left(r);
	if (left < (size_t)h + 2)
		return ml_msgpack_err_truncated(r, p, (size_t)h + 2), -1;
	o->kind = ML_MP_EXT;
	o->n = h ? ml_msgpack_len(p, h) : fixed;
	o->ext_type = (int8_t)p[1 + h];
	if (left - (size_t)h - 2 < o->n)
		return ml_msgpack_err_truncated(r, p, (size_t)h + 2 + o->n), -1;
	o->ptr = (const char *)p + 2 + h;
	r->p = p + 2 + h + o->n;
	return 0;
}

/* A fixed-size scalar: the type byte and w bytes of value. Returns the value bytes. */
static inline const uint8_t *ml_msgpack_take(struct ml_msgpack_reader *r, size_t w)
{
	const uint8_t *p = r->p;
	if (ml_msgpack_left(r) < w + 1) {
		ml_msgpack_err_truncated(r, p, w + 1);
		return NULL;
	}
	r->p = p + 1 + w;
	return p + 1;
}

static inline int ml_msgpack_read_number(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o,
					 uint8_t b)
{
	static const uint8_t width[] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8}; /* 0xca .. 0xd3 */
	const uint8_t *q = ml_msgpack_take(r, width[b - 0xca]);
	if (q == NULL)
		return -1;
	o->kind = ML_MP_INT;
	switch (b) {
	case 0xca: {
		uint32_t u = ml_msgpack_be32(q);
		o->kind = ML_MP_FLOAT32;
		memcpy(&o->v.f, &u, 4);
		break;
	}
	case 0xcb: {
		uint64_t u = ml_msgpack_be64(q);
		o->kind = ML_MP_FLOAT64;
		memcpy(&o->v.d, &u, 8);
		break;
	}
	case 0xcc:
		o->v.i = q[0];
		break;
	case 0xcd:
		o->v.i = ml_msgpack_be16(q);
		break;
	case 0xce:
		o->v.i = ml_msgpack_be32(q);
		break;
	case 0xcf:
		o->v.u = ml_msgpack_be64(q);
		if (o->v.u > INT64_MAX)
			o->kind = ML_MP_UINT;
		break;
	case 0xd0:
		o->v.i = (int8_t)q[0];
		break;
	case 0xd1:
		o->v.i = (int16_t)ml_msgpack_be16(q);
		break;
	case 0xd2:
		o->v.i = (int32_t)ml_msgpack_be32(q);
		break;
	default:
		o->v.i = (int64_t)ml_msgpack_be64(q);
		break;
	}
	return 0;
}

static inline int ml_msgpack_read_count(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o,
					enum ml_msgpack_kind kind, int h)
{
	if (ml_msgpack_left(r) < (size_t)h + 1)
		return ml_msgpack_err_truncated(r, r->p, (size_t)h + 1), -1;
	o->kind = kind;
	o->n = ml_msgpack_len(r->p, h);
	r->p += 1 + h;
	return 0;
}

/* The formats 0xc0 .. 0xdf (everything but the fix* ranges). */
static inline int ml_msgpack_read_tagged(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o,
					 uint8_t b)
{
	switch (b) {
	case 0xc0:
		o->kind = ML_MP_NIL;
		r->p++;
		return 0;
	case 0xc2:
	case 0xc3:
		o->kind = ML_MP_BOOL;
		o->v.b = b == 0xc3;
		r->p++;
		return 0;
	case 0xc4:
		return ml_msgpack_read_blob(r, o, ML_MP_BIN, 1);
	case 0xc5:
		return ml_msgpack_read_blob(r, o, ML_MP_BIN, 2);
	case 0xc6:
		return ml_msgpack_read_blob(r, o, ML_MP_BIN, 4);
	case 0xc7:
		return ml_msgpack_read_ext(r, o, 1, 0);
	case 0xc8:
		return ml_msgpack_read_ext(r, o, 2, 0);
	case 0xc9:
		return ml_msgpack_read_ext(r, o, 4, 0);
	case 0xd4:
		return ml_msgpack_read_ext(r, o, 0, 1);
	case 0xd5:
		return ml_msgpack_read_ext(r, o, 0, 2);
	case 0xd6:
		return ml_msgpack_read_ext(r, o, 0, 4);
	case 0xd7:
		return ml_msgpack_read_ext(r, o, 0, 8);
	case 0xd8:
		return ml_msgpack_read_ext(r, o, 0, 16);
	case 0xd9:
		return ml_msgpack_read_blob(r, o, ML_MP_STR, 1);
	case 0xda:
		return ml_msgpack_read_blob(r, o, ML_MP_STR, 2);
	case 0xdb:
		return ml_msgpack_read_blob(r, o, ML_MP_STR, 4);
	case 0xdc:
		return ml_msgpack_read_count(r, o, ML_MP_ARRAY, 2);
	case 0xdd:
		return ml_msgpack_read_count(r, o, ML_MP_ARRAY, 4);
	case 0xde:
		return ml_msgpack_read_count(r, o, ML_MP_MAP, 2);
	case 0xdf:
		return ml_msgpack_read_count(r, o, ML_MP_MAP, 4);
	case 0xc1:
		return ml_msgpack_err_unused(r), -1;
	default:
		return ml_msgpack_read_number(r, o, b);
	}
}

/*
 * Reads the next object's header (and a str/bin/ext payload) and moves past it;
 * the elements of an array or map come next. -1 with a diag when the bytes run
 * out or the format byte is never used.
 */
static inline int ml_msgpack_read(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o)
{
	if (r->p >= r->end)
		return ml_msgpack_err_end(r), -1;
	uint8_t b = *r->p;
	if (b <= 0x7f || b >= 0xe0) {
		o->kind = ML_MP_INT;
		o->v.i = (int8_t)b; /* positive and negative fixint alike */
		r->p++;
		return 0;
	}
	if (b <= 0x9f) {
		o->kind = b <= 0x8f ? ML_MP_MAP : ML_MP_ARRAY;
		o->n = b & 0x0f;
		r->p++;
		return 0;
	}
	if (b <= 0xbf) {
		uint32_t n = b & 0x1f;
		if (ml_msgpack_left(r) < n + 1)
			return ml_msgpack_err_truncated(r, r->p, n + 1), -1;
		o->kind = ML_MP_STR;
		o->n = n;
		o->ptr = (const char *)r->p + 1;
		r->p += 1 + n;
		return 0;
	}
	return ml_msgpack_read_tagged(r, o, b);
}

/* ---- writer: appends the smallest encoding of each value to an ml_buf ---- */

static inline uint8_t *ml_msgpack_room(struct ml_buf *b, size_t n)
{
	if (b->cap - b->len < n)
		ml_buf_reserve(b, n);
	return (uint8_t *)b->data + b->len;
}

static inline void ml_msgpack_put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* A type byte followed by an n-byte big-endian value. */
static inline void ml_msgpack_put_tagged(struct ml_buf *b, uint8_t tag, uint64_t v, int n)
{
	uint8_t *p = ml_msgpack_room(b, 9);
	p[0] = tag;
	ml_msgpack_put_be(p + 1, v, n);
	b->len += 1 + (size_t)n;
}

static inline void ml_msgpack_put_byte(struct ml_buf *b, uint8_t v)
{
	uint8_t *p = ml_msgpack_room(b, 1);
	*p = v;
	b->len++;
}

static inline void ml_msgpack_put_nil(struct ml_buf *b)
{
	ml_msgpack_put_byte(b, 0xc0);
}

static inline void ml_msgpack_put_bool(struct ml_buf *b, int v)
{
	ml_msgpack_put_byte(b, v ? 0xc3 : 0xc2);
}

static inline void ml_msgpack_put_uint(struct ml_buf *b, uint64_t v)
{
	if (v <= 0x7f)
		ml_msgpack_put_byte(b, (uint8_t)v);
	else if (v <= 0xff)
		ml_msgpack_put_tagged(b, 0xcc, v, 1);
	else if (v <= 0xffff)
		ml_msgpack_put_tagged(b, 0xcd, v, 2);
	else if (v <= 0xffffffff)
		ml_msgpack_put_tagged(b, 0xce, v, 4);
	else
		ml_msgpack_put_tagged(b, 0xcf, v, 8);
}

static inline void ml_msgpack_put_int(struct ml_buf *b, int64_t v)
{
	if (v >= 0)
		ml_msgpack_put_uint(b, (uint64_t)v);
	else if (v >= -32)
		ml_msgpack_put_byte(b, (uint8_t)v);
	else if (v >= INT8_MIN)
		ml_msgpack_put_tagged(b, 0xd0, (uint64_t)v, 1);
	else if (v >= INT16_MIN)
		ml_msgpack_put_tagged(b, 0xd1, (uint64_t)v, 2);
	else if (v >= INT32_MIN)
		ml_msgpack_put_tagged(b, 0xd2, (uint64_t)v, 4);
	else
		ml_msgpack_put_tagged(b, 0xd3, (uint64_t)v, 8);
}

static inline void ml_msgpack_put_double(struct ml_buf *b, double d)
{
	uint64_t u;
	memcpy(&u, &d, 8);
	ml_msgpack_put_tagged(b, 0xcb, u, 8);
}

/* A str/array/map header: fix for small counts, then 8 (str only), 16 or 32 bits. */
static inline void ml_msgpack_put_head(struct ml_buf *b, uint8_t fix, uint8_t fixmax, uint8_t tag16,
				       uint32_t n)
{
	if (n <= fixmax)
		ml_msgpack_put_byte(b, (uint8_t)(fix | n));
	else if (fix == 0xa0 && n <= 0xff)
		ml_msgpack_put_tagged(b, 0xd9, n, 1);
	else if (n <= 0xffff)
		ml_msgpack_put_tagged(b, tag16, n, 2);
	else
		ml_msgpack_put_tagged(b, (uint8_t)(tag16 + 1), n, 4);
}

/* n must be at most UINT32_MAX: callers check. */
static inline void ml_msgpack_put_str(struct ml_buf *b, const char *s, size_t n)
{
	ml_msgpack_put_head(b, 0xa0, 31, 0xda, (uint32_t)n);
	uint8_t *p = ml_msgpack_room(b, n);
	memcpy(p, s, n);
	b->len += n;
}

static inline void ml_msgpack_put_array(struct ml_buf *b, uint32_t n)
{
	ml_msgpack_put_head(b, 0x90, 15, 0xdc, n);
}

static inline void ml_msgpack_put_map(struct ml_buf *b, uint32_t n)
{
	ml_msgpack_put_head(b, 0x80, 15, 0xde, n);
}

/*
 * Writers that learn a container's size only at its end put a one-byte header at
 * `at` first, then fix it here, moving the elements when the count needs more.
 */
void ml_msgpack_fix_head(struct ml_buf *b, size_t at, int is_map, uint32_t n);
/* The same for a string header of `room` bytes at `at` followed by the n-byte string. */
void ml_msgpack_fix_str_head(struct ml_buf *b, size_t at, size_t room, uint32_t n);

/* ---- the keys of open maps, to find one given twice (msgpack_keys.c) ---- */

struct ml_key {
	const char *s; /* a string key's bytes; NULL for an integer key */
	union {
		size_t n;  /* the string's length */
		int64_t i; /* the integer */
	};
	uint64_t hash; /* of its JSON text, set when a large map is sorted */
};

struct ml_keys {
	struct ml_key *k; /* small, or the heap once more are open */
	size_t n, cap;
	struct ml_key small[32];
};

void ml_keys_init(struct ml_keys *ks);
void ml_keys_free(struct ml_keys *ks);
/* Pushes a key: o is a string (ML_MP_STR) or an integer (ML_MP_INT). */
void ml_keys_push(struct ml_keys *ks, const struct ml_msgpack_obj *o);
/*
 * Looks at the keys from index `base` to the top for two that JSON would show as
 * the same key: 1 with *a and *b set to them, else 0. May reorder those keys.
 */
int ml_keys_find_twice(struct ml_keys *ks, size_t base, const struct ml_key **a,
		       const struct ml_key **b);

/* ---- text helpers for the JSON side ---- */

/* The length of the valid UTF-8 sequence at p (1 to 4), or 0 if it is not one. */
int ml_codec_utf8_len(const uint8_t *p, const uint8_t *end);
/* The shortest text that reads back as d (".0" added to integral values). */
int ml_codec_format_double(char *buf, size_t size, double d);
/* The same for a float32, shortest among the texts that read back as f. */
int ml_codec_format_float(char *buf, size_t size, float f);
/* strtod in the C locale, whatever the process locale is. */
double ml_codec_strtod(const char *s);
/* The base64 size of n bytes. */
#define ML_BASE64_SIZE(n) (((n) + 2) / 3 * 4)
/* Writes bytes[0..n) in base64 (standard alphabet, '=' padding) to out; returns the length. */
size_t ml_codec_base64(char *out, const void *bytes, size_t n);

/*
 * Paths name a value in messages the way Lua would write it: the root's name,
 * then .name or ["other key"] for map keys and [i] (from 1) for array elements.
 */
/* Appends s[0..n) quoted: its first 32 bytes, '"' and '\\' escaped, other odd bytes as \xNN. */
void ml_codec_quote(struct ml_buf *b, const char *s, size_t n);
/* Appends the path step for the string key s: .name when it is a name, else ["quoted"]. */
void ml_codec_path_key(struct ml_buf *b, const char *s, size_t n);
/* NUL-terminates the path in b (shortening the middle of a long one) and returns it. */
const char *ml_codec_path_text(struct ml_buf *b);

#endif
