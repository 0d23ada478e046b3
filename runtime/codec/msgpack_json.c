/*
 * msgpack_json.c - msgpack to JSON text, for HTTP, `--json` output and the REPL.
 *
 * JSON cannot say everything msgpack can, so some values change form (see
 * docs/codec.md): binary becomes a base64 string, non-string map keys become
 * their JSON text as a string, NaN and infinities become null, strings that are
 * not valid UTF-8 get U+FFFD for each bad byte, and an ext value becomes
 * {"$ext": type, "base64": "..."}. The log stores no NaN, infinity or ext value
 * and no map key but a UTF-8 string or an integer, but logs written by older
 * versions may hold them, and a reader must get past every stored event: so
 * any well-formed msgpack converts.
 */
#include "codec_internal.h"

#include <math.h>
#include <stdlib.h>

static int put_value(struct ml_msgpack_reader *r, struct ml_buf *out, int depth, int in_key);

static void put_text(struct ml_buf *out, const char *s, size_t n)
{
	ml_buf_add(out, s, n);
}

static void put_int(struct ml_buf *out, uint64_t mag, int negative)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	do {
		*--p = (char)('0' + mag % 10);
		mag /= 10;
	} while (mag);
	if (negative)
		*--p = '-';
	put_text(out, p, (size_t)(tmp + sizeof(tmp) - p));
}

static void put_signed(struct ml_buf *out, int64_t v)
{
	/* The magnitude in unsigned arithmetic, so that INT64_MIN does not overflow. */
	put_int(out, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, v < 0);
}

static void put_number(struct ml_buf *out, double d, int is_float32)
{
	char tmp[40];
	int n;
	if (!isfinite(d)) {
		put_text(out, "null", 4);
		return;
	}
	n = is_float32 ? ml_codec_format_float(tmp, sizeof(tmp), (float)d)
		       : ml_codec_format_double(tmp, sizeof(tmp), d);
	put_text(out, tmp, (size_t)n);
}

/* Escapes one byte that JSON does not allow raw in a string; returns the end of what it wrote. */
static uint8_t *put_escape(uint8_t *o, uint8_t c)
{
	static const char hex[] = "0123456789abcdef";
	const char *named = c == '"'	? "\""
			    : c == '\\' ? "\\"
			    : c == '\n' ? "n"
			    : c == '\r' ? "r"
			    : c == '\t' ? "t"
			    : c == '\b' ? "b"
			    : c == '\f' ? "f"
					: NULL;
	*o++ = '\\';
	if (named) {
		*o++ = (uint8_t)*named;
		return o;
	}
	memcpy(o, "u00", 3);
	o[3] = (uint8_t)hex[c >> 4];
	o[4] = (uint8_t)hex[c & 15];
	return o + 5;
}

/* Writes p[0..n) escaped, in chunks so that the room reserved stays bounded. */
static void put_string_body(struct ml_buf *out, const uint8_t *p, const uint8_t *end)
{
	while (p < end) {
		size_t chunk = (size_t)(end - p) < 4096 ? (size_t)(end - p) : 4096;
		const uint8_t *stop = p + chunk;
		uint8_t *o = ml_msgpack_room(out, 6 * chunk + 8), *start = o;
		while (p < stop) {
			uint8_t c = *p;
			if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
				*o++ = c;
				p++;
			} else if (c < 0x80) {
				o = put_escape(o, c);
				p++;
			} else {
				int k = ml_codec_utf8_len(p, end);
				memcpy(o, k ? (const char *)p : "\xef\xbf\xbd", k ? (size_t)k : 3);
				o += k ? k : 3;
				p += k ? k : 1;
			}
		}
		out->len += (size_t)(o - start);
	}
}

static void put_string(struct ml_buf *out, const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	ml_msgpack_put_byte(out, '"');
	put_string_body(out, p, p + n);
	ml_msgpack_put_byte(out, '"');
}

void ml_json_string(struct ml_buf *out, const char *s, size_t n)
{
	put_string(out, s, n);
}

static void put_base64(struct ml_buf *out, const char *s, size_t n)
{
	char *o = (char *)ml_msgpack_room(out, ML_BASE64_SIZE((uint64_t)n) + 2);
	o[0] = '"';
	size_t k = ml_codec_base64(o + 1, s, n);
	o[k + 1] = '"';
	out->len += k + 2;
}

/*
 * A map key that is not a string: its JSON text, as a string ({1: 2} -> {"1":2}).
 * Keys inside that text are written as they are, not quoted again: quoting at
 * every level doubles the backslashes per level, and 64 maps nested as keys of
 * keys (130 bytes of msgpack) would render to 2^64 bytes.
 */
static int put_key(struct ml_msgpack_reader *r, struct ml_buf *out, int depth, int in_key)
{
	size_t at = out->len;
	if (put_value(r, out, depth, 1) != 0)
		return -1;
	if (in_key || out->data[at] == '"')
		return 0;
	char *text = ml_xstrndup(out->data + at, out->len - at);
	size_t n = out->len - at;
	out->len = at;
	put_string(out, text, n);
	free(text);
	return 0;
}

static int put_container(struct ml_msgpack_reader *r, struct ml_buf *out,
			 const struct ml_msgpack_obj *o, const uint8_t *at, int depth, int in_key)
{
	int is_map = o->kind == ML_MP_MAP;
	if (depth >= ML_CODEC_MAX_DEPTH)
		return ml_msgpack_err_depth(r, at);
	ml_msgpack_put_byte(out, is_map ? '{' : '[');
	for (uint32_t i = 0; i < o->n; i++) {
		if (i > 0)
			ml_msgpack_put_byte(out, ',');
		if (is_map) {
			if (put_key(r, out, depth + 1, in_key) != 0)
				return -1;
			ml_msgpack_put_byte(out, ':');
		}
		if (put_value(r, out, depth + 1, in_key) != 0)
			return -1;
	}
	ml_msgpack_put_byte(out, is_map ? '}' : ']');
	return 0;
}

static int put_value(struct ml_msgpack_reader *r, struct ml_buf *out, int depth, int in_key)
{
	struct ml_msgpack_obj o;
	const uint8_t *at = r->p;
	if (ml_msgpack_read(r, &o) != 0)
		return -1;
	switch (o.kind) {
	case ML_MP_NIL:
		put_text(out, "null", 4);
		return 0;
	case ML_MP_BOOL:
		o.v.b ? put_text(out, "true", 4) : put_text(out, "false", 5);
		return 0;
	case ML_MP_INT:
		put_signed(out, o.v.i);
		return 0;
	case ML_MP_UINT:
		put_int(out, o.v.u, 0);
		return 0;
	case ML_MP_FLOAT32:
		put_number(out, o.v.f, 1);
		return 0;
	case ML_MP_FLOAT64:
		put_number(out, o.v.d, 0);
		return 0;
	case ML_MP_STR:
		put_string(out, o.ptr, o.n);
		return 0;
	case ML_MP_BIN:
		put_base64(out, o.ptr, o.n);
		return 0;
	case ML_MP_EXT:
		/* The log refuses ext now, but older logs may hold one: show it, do not fail. */
		put_text(out, "{\"$ext\":", 8);
		put_signed(out, o.ext_type);
		put_text(out, ",\"base64\":", 10);
		put_base64(out, o.ptr, o.n);
		ml_msgpack_put_byte(out, '}');
		return 0;
	default:
		return put_container(r, out, &o, at, depth, in_key);
	}
}

int ml_msgpack_to_json(const void *mp, size_t len, struct ml_buf *out)
{
	struct ml_msgpack_reader r;
	size_t start = out->len;

	ml_msgpack_reader_init(&r, mp, len);
	if (put_value(&r, out, 0, 0) != 0 || (r.p != r.end && ml_msgpack_err_trailing(&r))) {
		out->len = start;
		return -1;
	}
	return 0;
}
