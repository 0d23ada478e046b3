/*
 * pb_mp.c - a minimal msgpack walker for the clients that read msgpack
 * (moonlog, Tarantool): where an object ends, and the few heads a reader
 * needs. A client reading $all only frames its answers, counts the events
 * and notes where to go on, as the Redis client does with RESP; nothing
 * decodes the payloads.
 */
#include "pb.h"

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* One object's head: header bytes, payload bytes, child objects; 0, 1 (cut short), -1. */
static int head(const uint8_t *p, size_t n, size_t *hdr, uint64_t *body, uint64_t *kids)
{
	uint8_t c = p[0];
	*hdr = 1, *body = 0, *kids = 0;
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
		return 0;
	if (c <= 0x8f)
		return *kids = 2 * (uint64_t)(c & 0x0f), 0;
	if (c <= 0x9f)
		return *kids = c & 0x0f, 0;
	if (c <= 0xbf)
		return *body = c & 0x1f, 0;
	static const uint8_t fixed[] = {4, 8, 1, 2, 4,
					8, 1, 2, 4, 8}; /* 0xca float .. 0xd3 int64 */
	if (c >= 0xca && c <= 0xd3)
		return *body = fixed[c - 0xca], 0;
	if (c >= 0xd4 && c <= 0xd8) /* fixext */
		return *body = 1 + (1u << (c - 0xd4)), 0;
	int lb;
	switch (c) {
	case 0xc4:
	case 0xc7:
	case 0xd9:
		lb = 1;
		break;
	case 0xc5:
	case 0xc8:
	case 0xda:
	case 0xdc:
	case 0xde:
		lb = 2;
		break;
	case 0xc6:
	case 0xc9:
	case 0xdb:
	case 0xdd:
	case 0xdf:
		lb = 4;
		break;
	default:
		return -1;
	}
	if (n < 1 + (size_t)lb)
		return 1;
	uint64_t v = be(p + 1, lb);
	*hdr = 1 + (size_t)lb;
	if (c == 0xdc || c == 0xdd)
		*kids = v;
	else if (c == 0xde || c == 0xdf)
		*kids = 2 * v;
	else
		*body = v + (c >= 0xc7 && c <= 0xc9);
	return 0;
}

int pb_mp_frame(const uint8_t *p, size_t n, struct pb_walk *w, size_t *len)
{
	size_t off = w->off;
	uint64_t todo = w->todo ? w->todo : 1;
	while (todo > 0) {
		if (off >= n)
			goto more;
		/* one-byte heads (fixstr, fixint, fixmap, fixarray, nil, bool) inline */
		uint8_t c = p[off];
		size_t step = 1;
		uint64_t body, kids = 0;
		if ((c & 0xe0) == 0xa0) {
			step += c & 0x1f;
		} else if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
		} else if ((c & 0xe0) == 0x80) {
			kids = c & 0x10 ? (uint64_t)(c & 0x0f) : 2 * (uint64_t)(c & 0x0f);
		} else {
			int rc = head(p + off, n - off, &step, &body, &kids);
			if (rc < 0)
				return -1;
			if (rc > 0 || body > n - off - step)
				goto more;
			step += (size_t)body;
		}
		if (step > n - off)
			goto more;
		off += step;
		todo += kids - 1;
	}
	*len = off;
	*w = (struct pb_walk){0, 0};
	return 1;
more:
	w->off = off, w->todo = todo;
	return 0;
}

static int container(const uint8_t **p, const uint8_t *end, uint64_t *n, int map)
{
	size_t hdr;
	uint64_t body;
	uint8_t c = *p < end ? **p : 0xc1;
	int ok = map ? (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf
		     : (c >= 0x90 && c <= 0x9f) || c == 0xdc || c == 0xdd;
	if (!ok || head(*p, (size_t)(end - *p), &hdr, &body, n) != 0)
		return -1;
	if (map)
		*n /= 2;
	*p += hdr;
	return 0;
}

int pb_mp_array(const uint8_t **p, const uint8_t *end, uint64_t *n)
{
	return container(p, end, n, 0);
}

int pb_mp_map(const uint8_t **p, const uint8_t *end, uint64_t *n)
{
	return container(p, end, n, 1);
}

int pb_mp_uint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	uint8_t c = *p < end ? **p : 0xc1;
	if (c <= 0x7f) {
		*v = c, *p += 1;
		return 0;
	}
	if (c < 0xcc || c > 0xcf || (size_t)(end - *p) < 1 + (1u << (c - 0xcc)))
		return -1;
	*v = be(*p + 1, 1 << (c - 0xcc));
	*p += 1 + (1u << (c - 0xcc));
	return 0;
}

int pb_mp_skip(const uint8_t **p, const uint8_t *end)
{
	struct pb_walk w = {0, 0};
	size_t len;
	if (*p >= end || pb_mp_frame(*p, (size_t)(end - *p), &w, &len) != 1)
		return -1;
	*p += len;
	return 0;
}
