/*
 * mp.c - the wire protocol's msgpack reader and writer (see mp.h).
 */
#include <string.h>

#include "net/mp.h"

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * The head of one object at p: how many header bytes, how many payload bytes
 * follow it, and how many child objects it opens. -1 if malformed, 1 if the
 * header itself is cut short.
 */
static int head(const uint8_t *p, size_t n, size_t *hdr, uint64_t *body, uint64_t *kids)
{
	if (n == 0)
		return 1;
	uint8_t c = p[0];
	*hdr = 1, *body = 0, *kids = 0;
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
		return 0;
	if ((c & 0xf0) == 0x80)
		return *kids = 2 * (uint64_t)(c & 0x0f), 0;
	if ((c & 0xf0) == 0x90)
		return *kids = c & 0x0f, 0;
	if ((c & 0xe0) == 0xa0)
		return *body = c & 0x1f, 0;
	static const uint8_t fixed[] = {[0xcc - 0xc4] = 1, [0xcd - 0xc4] = 2, [0xce - 0xc4] = 4,
					[0xcf - 0xc4] = 8, [0xd0 - 0xc4] = 1, [0xd1 - 0xc4] = 2,
					[0xd2 - 0xc4] = 4, [0xd3 - 0xc4] = 8, [0xca - 0xc4] = 4,
					[0xcb - 0xc4] = 8};
	if (c >= 0xca && c <= 0xd3)
		return *body = fixed[c - 0xc4], 0;
	if (c >= 0xd4 && c <= 0xd8) /* fixext 1..16 */
		return *body = 1 + (1u << (c - 0xd4)), 0;
	int lenbytes;
	switch (c) {
	case 0xc4:
	case 0xd9:
	case 0xc7:
		lenbytes = 1;
		break;
	case 0xc5:
	case 0xda:
	case 0xc8:
	case 0xdc:
	case 0xde:
		lenbytes = 2;
		break;
	case 0xc6:
	case 0xdb:
	case 0xc9:
	case 0xdd:
	case 0xdf:
		lenbytes = 4;
		break;
	default:
		return -1; /* 0xc1, never used */
	}
	if (n < 1 + (size_t)lenbytes)
		return 1;
	uint64_t v = be(p + 1, lenbytes);
	*hdr = 1 + (size_t)lenbytes;
	if (c == 0xdc || c == 0xdd)
		*kids = v;
	else if (c == 0xde || c == 0xdf)
		*kids = 2 * v;
	else
		*body = v + (c >= 0xc7 && c <= 0xc9); /* ext: a type byte */
	return 0;
}

int ml_mp_frame_resume(const uint8_t *buf, size_t n, struct ml_mp_walk *w, size_t *len)
{
	size_t off = w->off;
	uint64_t todo = w->todo ? w->todo : 1; /* objects still to walk */
	while (todo > 0) {
		if (off >= n)
			goto more;
		/* The common heads inline (an answer of events is mostly fixstr, positive
		 * fixint, fixmap, uints and str8); the rest through head(). */
		uint8_t c = buf[off];
		size_t step = 1;
		uint64_t kids = 0;
		if ((c & 0xe0) == 0xa0) {
			step = 1 + (size_t)(c & 0x1f);
		} else if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
			/* a whole object in one byte */
		} else if ((c & 0xe0) == 0x80) {
			kids = c & 0x10 ? (uint64_t)(c & 0x0f) : 2 * (uint64_t)(c & 0x0f);
		} else if (c >= 0xcc && c <= 0xcf) { /* uint 8..64: positions, versions, times */
			step += (size_t)1 << (c - 0xcc);
		} else if (c == 0xd9) { /* str 8: ids, longer strings */
			if (n - off < 2)
				goto more;
			step += 1 + (size_t)buf[off + 1];
		} else {
			size_t hdr;
			uint64_t body;
			int rc = head(buf + off, n - off, &hdr, &body, &kids);
			if (rc < 0)
				return rc;
			if (rc > 0 || body > n - off - hdr)
				goto more;
			step = hdr + (size_t)body;
		}
		if (step > n - off)
			goto more;
		off += step;
		todo += kids - 1;
	}
	*len = off;
	return 0;
more: /* go on from this object next time */
	w->off = off, w->todo = todo;
	return 1;
}

int ml_mp_frame(const uint8_t *buf, size_t n, size_t *len)
{
	struct ml_mp_walk w = {0, 0};
	return ml_mp_frame_resume(buf, n, &w, len);
}

enum ml_mp_type ml_mp_peek(const struct ml_mp *r)
{
	if (r->p >= r->end)
		return MP_BAD;
	uint8_t c = *r->p;
	if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3))
		return MP_INT;
	if ((c & 0xf0) == 0x80 || c == 0xde || c == 0xdf)
		return MP_MAP;
	if ((c & 0xf0) == 0x90 || c == 0xdc || c == 0xdd)
		return MP_ARRAY;
	if ((c & 0xe0) == 0xa0 || (c >= 0xd9 && c <= 0xdb))
		return MP_STR;
	if (c == 0xc0)
		return MP_NIL;
	if (c == 0xc2 || c == 0xc3)
		return MP_BOOL;
	if (c == 0xca || c == 0xcb)
		return MP_FLOAT;
	if (c >= 0xc4 && c <= 0xc6)
		return MP_BIN;
	return c == 0xc1 ? MP_BAD : MP_EXT;
}

int ml_mp_skip(struct ml_mp *r, const uint8_t **raw, size_t *len)
{
	size_t n;
	if (ml_mp_frame(r->p, (size_t)(r->end - r->p), &n) != 0)
		return -1;
	if (raw)
		*raw = r->p, *len = n;
	r->p += n;
	return 0;
}

static int container(struct ml_mp *r, uint32_t *n, enum ml_mp_type t)
{
	if (ml_mp_peek(r) != t)
		return -1;
	uint8_t c = *r->p;
	size_t hdr = 1;
	if (c == 0xdc || c == 0xde)
		hdr = 3;
	else if (c == 0xdd || c == 0xdf)
		hdr = 5;
	if ((size_t)(r->end - r->p) < hdr)
		return -1;
	*n = hdr == 1 ? (c & 0x0f) : (uint32_t)be(r->p + 1, (int)hdr - 1);
	r->p += hdr;
	return 0;
}

int ml_mp_array(struct ml_mp *r, uint32_t *n)
{
	return container(r, n, MP_ARRAY);
}

int ml_mp_map(struct ml_mp *r, uint32_t *n)
{
	return container(r, n, MP_MAP);
}

int ml_mp_bytes(struct ml_mp *r, const char **s, uint32_t *n)
{
	enum ml_mp_type t = ml_mp_peek(r);
	if (t != MP_STR && t != MP_BIN)
		return -1;
	uint8_t c = *r->p;
	size_t hdr = 1;
	uint64_t len;
	if ((c & 0xe0) == 0xa0) {
		len = c & 0x1f;
	} else {
		hdr = (c == 0xd9 || c == 0xc4) ? 2 : (c == 0xda || c == 0xc5) ? 3 : 5;
		if ((size_t)(r->end - r->p) < hdr)
			return -1;
		len = be(r->p + 1, (int)hdr - 1);
	}
	if ((uint64_t)(r->end - r->p) - hdr < len)
		return -1;
	*s = (const char *)r->p + hdr;
	*n = (uint32_t)len;
	r->p += hdr + len;
	return 0;
}

int ml_mp_str(struct ml_mp *r, const char **s, uint32_t *n)
{
	return ml_mp_peek(r) == MP_STR ? ml_mp_bytes(r, s, n) : -1;
}

int ml_mp_int(struct ml_mp *r, int64_t *v)
{
	if (ml_mp_peek(r) != MP_INT)
		return -1;
	uint8_t c = *r->p;
	if (c <= 0x7f || c >= 0xe0) {
		*v = (int8_t)c;
		r->p++;
		return 0;
	}
	static const uint8_t size[] = {1, 2, 4, 8, 1, 2, 4, 8};
	int n = size[c - 0xcc];
	if (r->end - r->p < 1 + n)
		return -1;
	uint64_t u = be(r->p + 1, n);
	if (c <= 0xcf) {
		if (u > INT64_MAX)
			return -1;
		*v = (int64_t)u;
	} else {
		int sh = 64 - 8 * n; /* sign-extend */
		*v = (int64_t)(u << sh) >> sh;
	}
	r->p += 1 + n;
	return 0;
}

int ml_mp_uint(struct ml_mp *r, uint64_t *v)
{
	if (ml_mp_peek(r) == MP_INT && *r->p == 0xcf && r->end - r->p >= 9) {
		*v = be(r->p + 1, 8);
		r->p += 9;
		return 0;
	}
	int64_t i;
	const uint8_t *at = r->p;
	if (ml_mp_int(r, &i) != 0 || i < 0)
		return r->p = at, -1;
	*v = (uint64_t)i;
	return 0;
}

int ml_mp_bool(struct ml_mp *r, int *v)
{
	if (ml_mp_peek(r) != MP_BOOL)
		return -1;
	*v = *r->p++ == 0xc3;
	return 0;
}

int ml_mp_nil(struct ml_mp *r)
{
	if (ml_mp_peek(r) != MP_NIL)
		return -1;
	r->p++;
	return 0;
}

static void put_head(struct ml_buf *b, uint8_t small, uint8_t c16, uint8_t c32, uint32_t n,
		     uint32_t small_max)
{
	uint8_t h[5];
	if (n <= small_max) {
		h[0] = (uint8_t)(small | n);
		ml_buf_add(b, h, 1);
	} else if (n <= 0xffff) {
		h[0] = c16, h[1] = (uint8_t)(n >> 8), h[2] = (uint8_t)n;
		ml_buf_add(b, h, 3);
	} else {
		h[0] = c32, h[1] = (uint8_t)(n >> 24), h[2] = (uint8_t)(n >> 16);
		h[3] = (uint8_t)(n >> 8), h[4] = (uint8_t)n;
		ml_buf_add(b, h, 5);
	}
}

void ml_mp_put_array(struct ml_buf *b, uint32_t n)
{
	put_head(b, 0x90, 0xdc, 0xdd, n, 15);
}

void ml_mp_put_map(struct ml_buf *b, uint32_t n)
{
	put_head(b, 0x80, 0xde, 0xdf, n, 15);
}

void ml_mp_put_str(struct ml_buf *b, const char *s, size_t n)
{
	if (n <= 31) {
		ml_buf_reserve(b, n + 1);
		b->data[b->len++] = (char)(0xa0 | n);
	} else if (n <= 0xff) {
		uint8_t h[2] = {0xd9, (uint8_t)n};
		ml_buf_add(b, h, 2);
	} else if (n <= 0xffff) {
		uint8_t h[3] = {0xda, (uint8_t)(n >> 8), (uint8_t)n};
		ml_buf_add(b, h, 3);
	} else {
		uint8_t h[5] = {0xdb, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
				(uint8_t)n};
		ml_buf_add(b, h, 5);
	}
	ml_buf_add(b, s, n);
}

void ml_mp_put_cstr(struct ml_buf *b, const char *s)
{
	ml_mp_put_str(b, s, strlen(s));
}

void ml_mp_put_bin(struct ml_buf *b, const void *p, size_t n)
{
	uint8_t h[5] = {0xc6, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
			(uint8_t)n};
	ml_buf_add(b, h, 5);
	ml_buf_add(b, p, n);
}

void ml_mp_put_uint(struct ml_buf *b, uint64_t v)
{
	uint8_t h[9];
	if (v <= 0x7f) {
		h[0] = (uint8_t)v;
		ml_buf_add(b, h, 1);
		return;
	}
	int n = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
	h[0] = n == 1 ? 0xcc : n == 2 ? 0xcd : n == 4 ? 0xce : 0xcf;
	for (int i = 0; i < n; i++)
		h[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	ml_buf_add(b, h, 1 + (size_t)n);
}

void ml_mp_put_int(struct ml_buf *b, int64_t v)
{
	if (v >= 0) {
		ml_mp_put_uint(b, (uint64_t)v);
		return;
	}
	uint8_t h[9] = {0xd3};
	if (v >= -32) {
		h[0] = (uint8_t)(int8_t)v;
		ml_buf_add(b, h, 1);
		return;
	}
	for (int i = 0; i < 8; i++)
		h[1 + i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
	ml_buf_add(b, h, 9);
}

void ml_mp_put_double(struct ml_buf *b, double v)
{
	uint64_t u;
	memcpy(&u, &v, 8);
	uint8_t h[9] = {0xcb};
	for (int i = 0; i < 8; i++)
		h[1 + i] = (uint8_t)(u >> (56 - 8 * i));
	ml_buf_add(b, h, 9);
}

void ml_mp_put_bool(struct ml_buf *b, int v)
{
	ml_buf_add(b, v ? "\xc3" : "\xc2", 1);
}

void ml_mp_put_nil(struct ml_buf *b)
{
	ml_buf_add(b, "\xc0", 1);
}
