/*
 * msgpack.h - the codec's msgpack reader and writer: the one every part of
 * moonlog uses for its own msgpack (the wire protocol, the command line's
 * client, the host's answers, snapshots, the event view), beside codec.h's
 * conversions to and from JSON and Lua, which are built on them.
 *
 * The reader is a cursor over bytes it does not trust. ml_msgpack_read yields
 * one object header at a time (and a string's bytes), for walks that take
 * whatever comes; the ml_msgpack_get_* functions take one value of the kind the
 * caller expects, and leave the cursor where it was when the next value is of
 * another kind, for protocol messages of a known shape. ml_msgpack_frame says
 * how long the next complete object is, or that more bytes are needed, without
 * recursion, so hostile nesting costs nothing.
 *
 * The writer appends the smallest encoding of each value, to an ml_buf
 * (ml_msgpack_put_*) or, for a caller that reserved the room once for many
 * values, at a pointer (ml_msgpack_write_*, which return the end).
 *
 * The header reader and the writer are inline: they sit in the hot loops of
 * event validation, decoding into Lua, encoding from Lua and the RPC answers.
 */
#ifndef MOONLOG_MSGPACK_H
#define MOONLOG_MSGPACK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <moonlog/api.h>
#include <moonlog/util.h>

/* ---- reader ------------------------------------------------------------------ */

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

/* A cursor over untrusted bytes; base is kept to report offsets. A zeroed one is empty. */
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
 * The w-byte big-endian number at p (w = 1, 2, 4 or 8). For a constant w this is
 * one load and a byte swap; a w known only when running picks one of those.
 */
static inline uint64_t ml_msgpack_be_fixed(const uint8_t *p, size_t w)
{
	uint64_t v = 0;
	memcpy((uint8_t *)&v + 8 - w, p, w);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline uint64_t ml_msgpack_be(const uint8_t *p, size_t w)
{
	return w == 1	? p[0]
	       : w == 2 ? ml_msgpack_be_fixed(p, 2)
	       : w == 4 ? ml_msgpack_be_fixed(p, 4)
			: ml_msgpack_be_fixed(p, 8);
}

/*
 * The header readers below fail without a word: they leave the cursor where it
 * was, put in o->v.u how many bytes the object needs (0 for the byte 0xc1, which
 * msgpack never uses) and return -1. ml_msgpack_read turns that into a diag.
 */
static inline int ml_msgpack_short(struct ml_msgpack_obj *o, uint64_t need)
{
	o->v.u = need;
	return -1;
}

/*
 * A str, bin or ext: after the type byte, h bytes of length (none for fixstr and
 * fixext, whose length is `fixed`) and t bytes of ext type (1 for ext, else 0),
 * then the payload.
 */
static inline int ml_msgpack_head_payload(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o,
					  enum ml_msgpack_kind kind, size_t h, size_t t,
					  uint32_t fixed)
{
	const uint8_t *p = r->p;
	size_t left = ml_msgpack_left(r), hdr = 1 + h + t;
	if (left < hdr)
		return ml_msgpack_short(o, hdr);
	o->kind = kind;
	o->n = h ? (uint32_t)ml_msgpack_be(p + 1, h) : fixed;
	if (t)
		o->ext_type = (int8_t)p[hdr - 1];
	if (left - hdr < o->n)
		return ml_msgpack_short(o, hdr + (uint64_t)o->n);
	o->ptr = (const char *)p + hdr;
	r->p = p + hdr + o->n;
	return 0;
}

/* An array 16/32 or map 16/32: a count of h bytes; the elements come next. */
static inline int ml_msgpack_head_count(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o,
					enum ml_msgpack_kind kind, size_t h)
{
	if (ml_msgpack_left(r) < h + 1)
		return ml_msgpack_short(o, h + 1);
	o->kind = kind;
	o->n = (uint32_t)ml_msgpack_be(r->p + 1, h);
	r->p += 1 + h;
	return 0;
}

/* The numbers 0xca .. 0xd3: float 32 and 64, uint 8 to 64, int 8 to 64. */
static inline int ml_msgpack_head_number(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o,
					 uint8_t b)
{
	static const uint8_t width[] = {4, 8, 1, 2, 4, 8, 1, 2, 4, 8};
	size_t w = width[b - 0xca];
	if (ml_msgpack_left(r) < w + 1)
		return ml_msgpack_short(o, w + 1);
	uint64_t u = ml_msgpack_be(r->p + 1, w);
	r->p += 1 + w;
	if (b >= 0xd0) { /* sign-extended from w bytes */
		int shift = 64 - 8 * (int)w;
		o->kind = ML_MP_INT;
		o->v.i = (int64_t)(u << shift) >> shift;
	} else if (b >= 0xcc) {
		o->kind = ML_MP_INT;
		if (u > INT64_MAX)
			o->kind = ML_MP_UINT;
		o->v.u = u;
	} else if (b == 0xca) {
		uint32_t u32 = (uint32_t)u;
		o->kind = ML_MP_FLOAT32;
		memcpy(&o->v.f, &u32, 4);
	} else {
		o->kind = ML_MP_FLOAT64;
		memcpy(&o->v.d, &u, 8);
	}
	return 0;
}

/*
 * The formats 0xc0 .. 0xdf (everything but the fix* ranges). They come in
 * families whose length fields are 1, 2 or 4 bytes in the order of their type
 * bytes: bin 0xc4-c6, ext 0xc7-c9, str 0xd9-db; array 0xdc-dd and map 0xde-df
 * count with 2 or 4. (Each kind is set by a constant, so that the compiler sees
 * which fields a kind comes with.)
 */
static inline int ml_msgpack_head_tagged(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o,
					 uint8_t b)
{
	if (b == 0xd9) /* str 8, the most common of them, with its width known */
		return ml_msgpack_head_payload(r, o, ML_MP_STR, 1, 0, 0);
	if (b >= 0xca && b <= 0xd3)
		return ml_msgpack_head_number(r, o, b);
	if (b >= 0xd4 && b <= 0xd8)
		return ml_msgpack_head_payload(r, o, ML_MP_EXT, 0, 1, 1u << (b - 0xd4));
	if (b >= 0xde)
		return ml_msgpack_head_count(r, o, ML_MP_MAP, (size_t)2 << (b - 0xde));
	if (b >= 0xdc)
		return ml_msgpack_head_count(r, o, ML_MP_ARRAY, (size_t)2 << (b - 0xdc));
	if (b >= 0xd9)
		return ml_msgpack_head_payload(r, o, ML_MP_STR, (size_t)1 << (b - 0xd9), 0, 0);
	if (b >= 0xc7)
		return ml_msgpack_head_payload(r, o, ML_MP_EXT, (size_t)1 << (b - 0xc7), 1, 0);
	if (b >= 0xc4)
		return ml_msgpack_head_payload(r, o, ML_MP_BIN, (size_t)1 << (b - 0xc4), 0, 0);
	if (b == 0xc1)
		return ml_msgpack_short(o, 0);
	o->kind = ML_MP_BOOL;
	if (b == 0xc0)
		o->kind = ML_MP_NIL;
	o->v.b = b == 0xc3;
	r->p++;
	return 0;
}

/*
 * Reads the next object's header (and a str/bin/ext payload) and moves past it;
 * the elements of an array or map come next. -1 without a diag as said above.
 */
static inline int ml_msgpack_head(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o)
{
	if (r->p >= r->end)
		return ml_msgpack_short(o, 1);
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
	if (b <= 0xbf)
		return ml_msgpack_head_payload(r, o, ML_MP_STR, 0, 0, b & 0x1f);
	return ml_msgpack_head_tagged(r, o, b);
}

/* Sets the diag for a header at r->p that needs `need` bytes (0: the byte 0xc1); returns -1. */
ML_API int ml_msgpack_err_head(const struct ml_msgpack_reader *r, uint64_t need);

/*
 * ml_msgpack_head, with a diag (ML_ERR_USAGE) saying what is wrong and at which
 * byte when the bytes run out or the format byte is never used.
 */
static inline int ml_msgpack_read(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o)
{
	if (ml_msgpack_head(r, o) == 0)
		return 0;
	return ml_msgpack_err_head(r, o->v.u), -1;
}

/* 1 if buf starts with a msgpack map (its header only is looked at), else 0. */
ML_API int ml_msgpack_is_map(const void *buf, size_t len);

/*
 * The next value, if it is of the kind asked for: 0 and past it, else -1 with
 * the cursor where it was and no diag. An array or map gives its count (its
 * elements come next); a string points into the bytes; get_int takes integers
 * that fit an int64_t and get_uint those that fit a uint64_t.
 */
ML_API int ml_msgpack_get_array(struct ml_msgpack_reader *r, uint32_t *n);
ML_API int ml_msgpack_get_map(struct ml_msgpack_reader *r, uint32_t *n);
ML_API int ml_msgpack_get_str(struct ml_msgpack_reader *r, const char **s, uint32_t *n);
ML_API int ml_msgpack_get_int(struct ml_msgpack_reader *r, int64_t *v);
ML_API int ml_msgpack_get_uint(struct ml_msgpack_reader *r, uint64_t *v);
ML_API int ml_msgpack_get_bool(struct ml_msgpack_reader *r, int *v);
ML_API int ml_msgpack_get_nil(struct ml_msgpack_reader *r);

/*
 * Moves past n whole objects (an array's elements, a map's keys and values):
 * 0, or -1 with a diag and the cursor where it was when they are cut short or
 * malformed.
 */
ML_API int ml_msgpack_skip_n(struct ml_msgpack_reader *r, uint64_t n);
/* Moves past one whole object, giving its bytes in *raw, *len (unless raw is NULL). */
ML_API int ml_msgpack_skip(struct ml_msgpack_reader *r, const uint8_t **raw, size_t *len);

/*
 * 0: buf[0..n) starts with a complete object of *len bytes; 1: more bytes are
 * needed; -1: malformed. Sets no diag.
 */
ML_API int ml_msgpack_frame(const uint8_t *buf, size_t n, size_t *len);

/*
 * The same, resumed where the last call that needed more bytes stopped, so that
 * a large object arriving in pieces is walked once. Zero `w` before the first
 * call for an object.
 */
struct ml_msgpack_walk {
	size_t off;    /* bytes walked */
	uint64_t todo; /* objects still to walk (0: not started) */
};
ML_API int ml_msgpack_frame_resume(const uint8_t *buf, size_t n, struct ml_msgpack_walk *w,
				   size_t *len);

/* ---- writer ------------------------------------------------------------------ */

/* The longest header or scalar: a type byte and 8 bytes. */
#define ML_MSGPACK_HEAD_MAX 9

/*
 * At a pointer: each writes at p, which has room for ML_MSGPACK_HEAD_MAX bytes
 * (and a string's bytes), and returns the end of what it wrote.
 */

/* v in n bytes, big-endian. */
static inline uint8_t *ml_msgpack_write_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
	return p + n;
}

/* A type byte followed by an n-byte big-endian value. */
static inline uint8_t *ml_msgpack_write_tagged(uint8_t *p, uint8_t tag, uint64_t v, int n)
{
	*p = tag;
	return ml_msgpack_write_be(p + 1, v, n);
}

static inline uint8_t *ml_msgpack_write_uint(uint8_t *p, uint64_t v)
{
	if (v <= 0x7f) {
		*p = (uint8_t)v;
		return p + 1;
	}
	if (v <= 0xff)
		return ml_msgpack_write_tagged(p, 0xcc, v, 1);
	if (v <= 0xffff)
		return ml_msgpack_write_tagged(p, 0xcd, v, 2);
	if (v <= 0xffffffff)
		return ml_msgpack_write_tagged(p, 0xce, v, 4);
	return ml_msgpack_write_tagged(p, 0xcf, v, 8);
}

static inline uint8_t *ml_msgpack_write_int(uint8_t *p, int64_t v)
{
	if (v >= 0)
		return ml_msgpack_write_uint(p, (uint64_t)v);
	if (v >= -32) {
		*p = (uint8_t)v;
		return p + 1;
	}
	if (v >= INT8_MIN)
		return ml_msgpack_write_tagged(p, 0xd0, (uint64_t)v, 1);
	if (v >= INT16_MIN)
		return ml_msgpack_write_tagged(p, 0xd1, (uint64_t)v, 2);
	if (v >= INT32_MIN)
		return ml_msgpack_write_tagged(p, 0xd2, (uint64_t)v, 4);
	return ml_msgpack_write_tagged(p, 0xd3, (uint64_t)v, 8);
}

/* A str/array/map header: fix for small counts, then 8 (str only), 16 or 32 bits. */
static inline uint8_t *ml_msgpack_write_head(uint8_t *p, uint8_t fix, uint8_t fixmax, uint8_t tag16,
					     uint32_t n)
{
	if (n <= fixmax) {
		*p = (uint8_t)(fix | n);
		return p + 1;
	}
	if (fix == 0xa0 && n <= 0xff)
		return ml_msgpack_write_tagged(p, 0xd9, n, 1);
	if (n <= 0xffff)
		return ml_msgpack_write_tagged(p, tag16, n, 2);
	return ml_msgpack_write_tagged(p, (uint8_t)(tag16 + 1), n, 4);
}

/*
 * n bytes from src, in fixed-size moves with the last one overlapping: the
 * strings of an event are short, and a variable-length memcpy expanded inline
 * (rep movs) was most of the time of writing an RPC answer of events.
 */
static inline uint8_t *ml_msgpack_write_bytes(uint8_t *p, const void *src, size_t n)
{
	const uint8_t *s = src;
	if (n >= 16) {
		for (size_t i = 0; i + 16 < n; i += 16)
			memcpy(p + i, s + i, 16);
		memcpy(p + n - 16, s + n - 16, 16);
	} else if (n >= 8) {
		memcpy(p, s, 8);
		memcpy(p + n - 8, s + n - 8, 8);
	} else if (n >= 4) {
		memcpy(p, s, 4);
		memcpy(p + n - 4, s + n - 4, 4);
	} else {
		for (size_t i = 0; i < n; i++)
			p[i] = s[i];
	}
	return p + n;
}

/* n must be at most UINT32_MAX: callers check. */
static inline uint8_t *ml_msgpack_write_str(uint8_t *p, const char *s, size_t n)
{
	return ml_msgpack_write_bytes(ml_msgpack_write_head(p, 0xa0, 31, 0xda, (uint32_t)n), s, n);
}

/* To an ml_buf: room for n more bytes, and where they go. */
static inline uint8_t *ml_msgpack_room(struct ml_buf *b, size_t n)
{
	if (b->cap - b->len < n)
		ml_buf_reserve(b, n);
	return (uint8_t *)b->data + b->len;
}

/* Sets b's length to end at p, which ml_msgpack_room gave and a writer moved on. */
static inline void ml_msgpack_done(struct ml_buf *b, const uint8_t *p)
{
	b->len = (size_t)((const char *)p - b->data);
}

static inline void ml_msgpack_put_byte(struct ml_buf *b, uint8_t v)
{
	*ml_msgpack_room(b, 1) = v;
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
	ml_msgpack_done(b, ml_msgpack_write_uint(ml_msgpack_room(b, ML_MSGPACK_HEAD_MAX), v));
}

static inline void ml_msgpack_put_int(struct ml_buf *b, int64_t v)
{
	ml_msgpack_done(b, ml_msgpack_write_int(ml_msgpack_room(b, ML_MSGPACK_HEAD_MAX), v));
}

static inline void ml_msgpack_put_double(struct ml_buf *b, double d)
{
	uint64_t u;
	memcpy(&u, &d, 8);
	ml_msgpack_done(b, ml_msgpack_write_tagged(ml_msgpack_room(b, 9), 0xcb, u, 8));
}

/* n must be at most UINT32_MAX: callers check. */
static inline void ml_msgpack_put_str(struct ml_buf *b, const char *s, size_t n)
{
	ml_msgpack_done(b, ml_msgpack_write_str(ml_msgpack_room(b, 5 + n), s, n));
}

static inline void ml_msgpack_put_cstr(struct ml_buf *b, const char *s)
{
	ml_msgpack_put_str(b, s, strlen(s));
}

static inline void ml_msgpack_put_array(struct ml_buf *b, uint32_t n)
{
	ml_msgpack_done(b, ml_msgpack_write_head(ml_msgpack_room(b, 5), 0x90, 15, 0xdc, n));
}

static inline void ml_msgpack_put_map(struct ml_buf *b, uint32_t n)
{
	ml_msgpack_done(b, ml_msgpack_write_head(ml_msgpack_room(b, 5), 0x80, 15, 0xde, n));
}

#endif
