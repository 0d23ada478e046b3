/*
 * msgpack_check.c - validation of the msgpack bytes every append carries, and
 * the error reports the codec's readers share.
 *
 * ml_msgpack_check walks the object without recursion or allocation: a stack of
 * "elements still to read" per open container is all the state it needs.
 */
#include "codec_internal.h"

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

int ml_msgpack_err_end(const struct ml_msgpack_reader *r)
{
	if (r->end == r->base)
		return ml_diag_set(ML_ERR_USAGE, "invalid msgpack: the input is empty");
	return ml_diag_set(ML_ERR_USAGE,
			   "invalid msgpack: the input ends at byte %zu, inside an array or map "
			   "that announced more elements",
			   offset(r, r->end));
}

int ml_msgpack_err_truncated(const struct ml_msgpack_reader *r, const uint8_t *at, size_t need)
{
	return ml_diag_set(
	    ML_ERR_USAGE, "invalid msgpack: the %s at byte %zu needs %zu bytes but only %zu remain",
	    ml_msgpack_format_name(*at), offset(r, at), need, (size_t)(r->end - at));
}

int ml_msgpack_err_unused(const struct ml_msgpack_reader *r)
{
	return ml_diag_set(ML_ERR_USAGE,
			   "invalid msgpack: byte %zu is 0xc1, which msgpack never uses",
			   offset(r, r->p));
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

int ml_msgpack_check(const void *buf, size_t len)
{
	struct ml_msgpack_reader r;
	struct ml_msgpack_obj o;
	/* left[d]: objects still to read at depth d; a map of n pairs holds 2n. */
	uint64_t left[ML_CODEC_MAX_DEPTH + 1];
	int depth = 0;

	ml_msgpack_reader_init(&r, buf, len);
	left[0] = 1;
	for (;;) {
		const uint8_t *at = r.p;
		if (ml_msgpack_read(&r, &o) != 0)
			return -1;
		left[depth]--;
		if (o.kind == ML_MP_MAP || o.kind == ML_MP_ARRAY) {
			if (depth == ML_CODEC_MAX_DEPTH)
				return ml_msgpack_err_depth(&r, at);
			if (o.n > 0) {
				left[++depth] = o.kind == ML_MP_MAP ? 2 * (uint64_t)o.n : o.n;
				continue;
			}
		}
		while (left[depth] == 0) {
			if (depth == 0)
				goto done;
			depth--;
		}
	}
done:
	if (r.p != r.end)
		return ml_msgpack_err_trailing(&r);
	return 0;
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
	ml_msgpack_put_be(p + 1, n, (int)w);
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
		ml_msgpack_put_be(p + 1, n, (int)want - 1);
}
