/*
 * msgpack_read.c - the reader's out-of-line half (moonlog/msgpack.h): taking a
 * value of an expected kind, for protocol messages of a known shape, and the
 * walk over whole objects that frames a message arriving in pieces and skips
 * values. Both read headers with the inline ml_msgpack_head.
 */
#include "codec_internal.h"

/* The next header if it is of kind a or b; else -1 with the cursor where it was. */
static int take(struct ml_msgpack_reader *r, struct ml_msgpack_obj *o, enum ml_msgpack_kind a,
		enum ml_msgpack_kind b)
{
	const uint8_t *at = r->p;
	if (ml_msgpack_head(r, o) == 0 && (o->kind == a || o->kind == b))
		return 0;
	r->p = at;
	return -1;
}

int ml_msgpack_get_array(struct ml_msgpack_reader *r, uint32_t *n)
{
	struct ml_msgpack_obj o;
	if (take(r, &o, ML_MP_ARRAY, ML_MP_ARRAY) != 0)
		return -1;
	*n = o.n;
	return 0;
}

int ml_msgpack_get_map(struct ml_msgpack_reader *r, uint32_t *n)
{
	struct ml_msgpack_obj o;
	if (take(r, &o, ML_MP_MAP, ML_MP_MAP) != 0)
		return -1;
	*n = o.n;
	return 0;
}

int ml_msgpack_get_str(struct ml_msgpack_reader *r, const char **s, uint32_t *n)
{
	struct ml_msgpack_obj o;
	if (take(r, &o, ML_MP_STR, ML_MP_STR) != 0)
		return -1;
	*s = o.ptr;
	*n = o.n;
	return 0;
}

int ml_msgpack_get_int(struct ml_msgpack_reader *r, int64_t *v)
{
	struct ml_msgpack_obj o;
	if (take(r, &o, ML_MP_INT, ML_MP_INT) != 0)
		return -1;
	*v = o.v.i;
	return 0;
}

int ml_msgpack_get_uint(struct ml_msgpack_reader *r, uint64_t *v)
{
	struct ml_msgpack_obj o;
	const uint8_t *at = r->p;
	if (take(r, &o, ML_MP_INT, ML_MP_UINT) != 0)
		return -1;
	if (o.kind == ML_MP_INT && o.v.i < 0) {
		r->p = at;
		return -1;
	}
	*v = o.v.u;
	return 0;
}

int ml_msgpack_get_bool(struct ml_msgpack_reader *r, int *v)
{
	struct ml_msgpack_obj o;
	if (take(r, &o, ML_MP_BOOL, ML_MP_BOOL) != 0)
		return -1;
	*v = o.v.b;
	return 0;
}

int ml_msgpack_get_nil(struct ml_msgpack_reader *r)
{
	struct ml_msgpack_obj o;
	return take(r, &o, ML_MP_NIL, ML_MP_NIL);
}

/* ---- walking whole objects ---- */

/*
 * The heads an answer of events or an append is mostly made of, sized from
 * their first byte alone (fixint, nil, booleans, fixmap and fixarray, fixstr,
 * uint 8 to 64): for each first byte, the head's size with its payload (the
 * low 16 bits; 0 when it must be read) and the objects it opens less the one
 * it is (the high 16 bits, signed). Framing a long answer or a batch of requests is mostly a
 * look-up in this.
 */
#define QUICK(size, kids) ((int32_t)((uint32_t)((kids)-1) << 16 | (size)))
#define FIXMAP(i)	  [0x80 + (i)] = QUICK(1, 2 * (i))
#define FIXARRAY(i)	  [0x90 + (i)] = QUICK(1, (i))
#define FIXSTR(i)	  [0xa0 + (i)] = QUICK(1 + (i), 0)
#define EACH16(M, at)                                                                              \
	M(at + 0), M(at + 1), M(at + 2), M(at + 3), M(at + 4), M(at + 5), M(at + 6), M(at + 7),    \
	    M(at + 8), M(at + 9), M(at + 10), M(at + 11), M(at + 12), M(at + 13), M(at + 14),      \
	    M(at + 15)
static const int32_t quick[256] = {
    [0x00 ... 0x7f] = QUICK(1, 0),
    EACH16(FIXMAP, 0),
    EACH16(FIXARRAY, 0),
    EACH16(FIXSTR, 0),
    EACH16(FIXSTR, 16),
    [0xc0] = QUICK(1, 0),	   /* nil */
    [0xc1] = QUICK(0, 0),	   /* (never used: ml_msgpack_head says so) */
    [0xc2] = QUICK(1, 0),	   /* false */
    [0xc3] = QUICK(1, 0),	   /* true */
    [0xc4 ... 0xcb] = QUICK(0, 0), /* bin, ext, float: read by ml_msgpack_head */
    [0xcc] = QUICK(2, 0),	   /* uint 8 to 64 */
    [0xcd] = QUICK(3, 0),
    [0xce] = QUICK(5, 0),
    [0xcf] = QUICK(9, 0),
    [0xd0 ... 0xdf] = QUICK(0, 0), /* int, fixext, str, array 16+, map 16+: read */
    [0xe0 ... 0xff] = QUICK(1, 0),
};

/*
 * Walks w->todo objects (1 when 0) from buf + w->off: 0 with *len the bytes to
 * their end; 1 when buf[0..n) ends first, -1 at a byte msgpack never uses, with
 * w at the object that stopped the walk. An array or map adds its elements to
 * the objects still to walk, so nesting costs no stack. Heads that quick_size
 * does not know, and heads cut short, are read by ml_msgpack_head.
 */
int ml_msgpack_frame_resume(const uint8_t *buf, size_t n, struct ml_msgpack_walk *w, size_t *len)
{
	size_t off = w->off;
	uint64_t todo = w->todo ? w->todo : 1;
	for (;;) {
		/* the heads the table sizes, in a loop of a few instructions each */
		while (todo > 0 && off < n) {
			int32_t q = quick[buf[off]];
			size_t step = (uint16_t)q;
			if (step - 1 >= n - off) /* 0 (read it), or past the end: one compare */
				break;
			off += step;
			todo += (uint64_t)(int64_t)(q >> 16);
		}
		if (todo == 0)
			break;
		/* any other head, or one cut short */
		struct ml_msgpack_reader r = {buf, buf + off, buf + n};
		struct ml_msgpack_obj o;
		if (ml_msgpack_head(&r, &o) != 0) {
			w->off = off, w->todo = todo;
			return o.v.u == 0 ? -1 : 1;
		}
		off = (size_t)(r.p - buf);
		todo += (o.kind == ML_MP_ARRAY ? o.n
			 : o.kind == ML_MP_MAP ? 2 * (uint64_t)o.n
					       : 0) -
			1;
	}
	*len = off;
	return 0;
}

int ml_msgpack_frame(const uint8_t *buf, size_t n, size_t *len)
{
	struct ml_msgpack_walk w = {0, 0};
	return ml_msgpack_frame_resume(buf, n, &w, len);
}

int ml_msgpack_skip_n(struct ml_msgpack_reader *r, uint64_t n)
{
	struct ml_msgpack_walk w = {0, n};
	size_t len;
	if (n == 0)
		return 0;
	if (ml_msgpack_frame_resume(r->p, ml_msgpack_left(r), &w, &len) == 0) {
		r->p += len;
		return 0;
	}
	/* Read the header that stopped the walk again, for the diag that says why. */
	struct ml_msgpack_reader at = {r->base, r->p + w.off, r->end};
	struct ml_msgpack_obj o;
	return ml_msgpack_read(&at, &o);
}

int ml_msgpack_skip(struct ml_msgpack_reader *r, const uint8_t **raw, size_t *len)
{
	const uint8_t *at = r->p;
	if (ml_msgpack_skip_n(r, 1) != 0)
		return -1;
	if (raw)
		*raw = at, *len = (size_t)(r->p - at);
	return 0;
}
