/*
 * json_msgpack.c - JSON text to msgpack, for events that arrive over HTTP and
 * from the command line.
 *
 * A small streaming parser rather than cJSON: cJSON reads every number as a
 * double, so 2^53 + 1 or an int64 id would silently change, it reports errors
 * by a pointer in a global, and it builds a tree we would only walk once. This
 * parser writes msgpack as it reads; a container's header is written as one
 * byte and widened at its end if the count needs it.
 *
 * Two things that JSON's grammar allows are refused, because what they would
 * store is not what the sender meant: a number too large for a double (it
 * would become infinity, which JSON shows as null) and a key given twice in
 * one object (readers would disagree on which value holds). Both messages name
 * the value by its path (data.items[2].x), which the open containers give.
 */
#include "codec_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* A key of an open object: where its msgpack string is in out, and where it was read. */
struct key_at {
	size_t off;
	const char *in;
};

struct json_reader {
	const char *start, *p, *end;
	struct ml_buf *out;
	/* The open containers, outermost first: each one's current element, for paths. */
	struct {
		int is_map;
		uint32_t index; /* an array's element, from 1 */
		size_t key;	/* an object's current key: its offset in out */
	} open[ML_CODEC_MAX_DEPTH + 1];
	int n_open;
	/* The keys of the open objects (each object's above its parent's), to find repeats. */
	struct key_at *keys, keys_small[64];
	size_t n_keys, keys_cap;
	struct ml_keys found; /* scratch for ml_keys_find_twice */
};

static int where(const struct json_reader *j, const char *at, size_t *column)
{
	const char *line_start = j->start;
	int line = 1;
	for (const char *q = j->start; q < at; q++)
		if (*q == '\n')
			line++, line_start = q + 1;
	*column = (size_t)(at - line_start) + 1;
	return line;
}

/* Says where (line and column, counted in bytes from 1) and what went wrong. */
static int fail(const struct json_reader *j, const char *at, const char *what)
{
	char found[32];
	size_t column;
	int line = where(j, at, &column);

	if (at >= j->end)
		snprintf(found, sizeof(found), "the end of the input");
	else if ((unsigned char)*at >= 0x20 && (unsigned char)*at < 0x7f)
		snprintf(found, sizeof(found), "'%c'", *at);
	else
		snprintf(found, sizeof(found), "byte 0x%02x", (unsigned char)*at);
	return ml_diag_set(ML_ERR_USAGE, "invalid JSON at line %d, column %zu: %s, found %s", line,
			   column, what, found);
}

/* The same for a mistake that is not a character out of place: no "found". */
__attribute__((format(printf, 3, 4))) static int refuse(const struct json_reader *j, const char *at,
							const char *fmt, ...)
{
	char what[300];
	size_t column;
	int line = where(j, at, &column);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return ml_diag_set(ML_ERR_USAGE, "invalid JSON at line %d, column %zu: %s", line, column,
			   what);
}

/* The string whose msgpack is at offset off of out (written by this parser, so well-formed). */
static void key_of(const struct json_reader *j, size_t off, const char **s, size_t *n)
{
	struct ml_msgpack_reader r;
	struct ml_msgpack_obj o;
	ml_msgpack_reader_init(&r, j->out->data + off, j->out->len - off);
	if (ml_msgpack_read(&r, &o) != 0 || o.kind != ML_MP_STR)
		o.ptr = "", o.n = 0; /* cannot happen: the parser wrote a string there */
	*s = o.ptr, *n = o.n;
}

/*
 * The path to the current element of the first `upto` open containers, as in
 * data.items[2] (no leading dot), into b; "" at the top level.
 */
static const char *path_of(const struct json_reader *j, int upto, struct ml_buf *b)
{
	for (int i = 0; i < upto; i++) {
		const char *s;
		size_t n;
		if (!j->open[i].is_map) {
			ml_buf_addf(b, "[%u]", j->open[i].index);
			continue;
		}
		key_of(j, j->open[i].key, &s, &n);
		ml_codec_path_key(b, s, n);
	}
	ml_codec_path_text(b);
	return b->data[0] == '.' ? b->data + 1 : b->data;
}

static void skip_space(struct json_reader *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

static int parse_value(struct json_reader *j, int depth);

static int literal(struct json_reader *j, const char *word, size_t n)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return fail(j, j->p, "expected a value");
	j->p += n;
	return 0;
}

/* ---- numbers ---- */

static const char *digits(const char *p, const char *end)
{
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p;
}

/* Moves past the JSON number grammar; sets *integral when there is no fraction or exponent. */
static int scan_number(struct json_reader *j, int *integral)
{
	const char *p = j->p, *end = j->end, *d;
	if (*p == '-')
		p++;
	d = p < end && *p == '0' ? p + 1 : digits(p, end);
	if (d == p)
		return fail(j, p, "expected a digit");
	p = d;
	*integral = 1;
	if (p < end && *p == '.') {
		d = digits(++p, end);
		if (d == p)
			return fail(j, p, "expected a digit after the decimal point");
		p = d, *integral = 0;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		d = digits(p, end);
		if (d == p)
			return fail(j, p, "expected a digit in the exponent");
		p = d, *integral = 0;
	}
	j->p = p;
	return 0;
}

/*
 * An integer token that fits int64 or uint64 stays an integer; anything else is a
 * float64. -1 for a number too large for a double.
 */
static int put_number(struct ml_buf *out, const char *tok, int integral)
{
	if (integral) {
		errno = 0;
		if (tok[0] == '-') {
			long long v = strtoll(tok, NULL, 10);
			if (errno == 0) {
				ml_msgpack_put_int(out, v);
				return 0;
			}
		} else {
			unsigned long long v = strtoull(tok, NULL, 10);
			if (errno == 0) {
				ml_msgpack_put_uint(out, v);
				return 0;
			}
		}
	}
	double d = ml_codec_strtod(tok); /* too small ones round to 0, as they should */
	if (isinf(d))
		return -1;
	ml_msgpack_put_double(out, d);
	return 0;
}

static int parse_number(struct json_reader *j)
{
	const char *start = j->p;
	char small[64], *tok = small;
	int integral = 1, rc;

	if (scan_number(j, &integral) != 0)
		return -1;
	/* The input need not end with a NUL, so strto* read a copy of the token. */
	size_t n = (size_t)(j->p - start);
	if (n >= sizeof(small))
		tok = ml_xmalloc(n + 1);
	memcpy(tok, start, n);
	tok[n] = '\0';
	rc = put_number(j->out, tok, integral);
	if (tok != small)
		free(tok);
	if (rc != 0) {
		struct ml_buf b = {0};
		const char *path = path_of(j, j->n_open, &b);
		refuse(
		    j, start,
		    "the number %.*s%s%s%s is too large for a 64-bit float (at most about 1.8e308)",
		    n > 24 ? 24 : (int)n, start, n > 24 ? "..." : "", *path ? " at " : "", path);
		ml_buf_free(&b);
	}
	return rc;
}

/* ---- strings ---- */

static int hex4(const char *p, const char *end, uint32_t *v)
{
	*v = 0;
	if (end - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0)
			return -1;
		*v = *v << 4 | (uint32_t)d;
	}
	return 0;
}

static void put_utf8(struct ml_buf *out, uint32_t c)
{
	uint8_t *o = ml_msgpack_room(out, 4);
	size_t n;
	if (c < 0x80) {
		o[0] = (uint8_t)c, n = 1;
	} else if (c < 0x800) {
		o[0] = (uint8_t)(0xc0 | c >> 6), o[1] = (uint8_t)(0x80 | (c & 63)), n = 2;
	} else if (c < 0x10000) {
		o[0] = (uint8_t)(0xe0 | c >> 12), o[1] = (uint8_t)(0x80 | ((c >> 6) & 63));
		o[2] = (uint8_t)(0x80 | (c & 63)), n = 3;
	} else {
		o[0] = (uint8_t)(0xf0 | c >> 18), o[1] = (uint8_t)(0x80 | ((c >> 12) & 63));
		o[2] = (uint8_t)(0x80 | ((c >> 6) & 63)), o[3] = (uint8_t)(0x80 | (c & 63)), n = 4;
	}
	out->len += n;
}

/* \uXXXX at j->p (past the backslash and 'u'), joining a UTF-16 surrogate pair. */
static int unicode_escape(struct json_reader *j)
{
	const char *at = j->p - 2;
	uint32_t c, lo;
	if (hex4(j->p, j->end, &c) != 0)
		return fail(j, at, "expected four hex digits after \\u");
	j->p += 4;
	if (c >= 0xdc00 && c <= 0xdfff)
		return fail(j, at, "a low surrogate without a high one before it");
	if (c >= 0xd800 && c <= 0xdbff) {
		if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
		    hex4(j->p + 2, j->end, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
			return fail(j, at, "a high surrogate must be followed by a low one");
		j->p += 6;
		c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
	}
	put_utf8(j->out, c);
	return 0;
}

static int escape(struct json_reader *j)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *at = j->p, *e;
	if (j->end - j->p < 2)
		return fail(j, j->end, "expected an escape after the backslash");
	j->p += 2;
	if (at[1] == 'u')
		return unicode_escape(j);
	e = strchr(from, at[1]);
	if (at[1] == '\0' || e == NULL)
		return fail(j, at,
			    "unknown escape (use \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
	ml_msgpack_put_byte(j->out, (uint8_t)to[e - from]);
	return 0;
}

/* Raw bytes up to the next quote, backslash or byte that needs a look; returns where it stopped. */
static const char *plain_run(const char *p, const char *end)
{
	while (p < end && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80 && *p != '"' &&
	       *p != '\\')
		p++;
	return p;
}

/* One piece of a string with escapes or non-ASCII: a run, an escape or a UTF-8 sequence. */
static int string_piece(struct json_reader *j)
{
	const char *p = j->p, *run = plain_run(p, j->end);
	int k;
	if (run > p) {
		ml_buf_add(j->out, p, (size_t)(run - p));
		j->p = run;
		return 0;
	}
	if (*p == '\\')
		return escape(j);
	if ((unsigned char)*p < 0x20)
		return fail(j, p, "control characters must be escaped in strings");
	k = ml_codec_utf8_len((const uint8_t *)p, (const uint8_t *)j->end);
	if (k == 0)
		return fail(j, p, "invalid UTF-8 in a string");
	ml_buf_add(j->out, p, (size_t)k);
	j->p += k;
	return 0;
}

static int parse_string(struct json_reader *j)
{
	const char *open = j->p++, *run = plain_run(j->p, j->end);
	if (run < j->end && *run == '"') {
		/* The common case: nothing to unescape or check, and the length is known. */
		ml_msgpack_put_str(j->out, j->p, (size_t)(run - j->p));
		j->p = run + 1;
		return 0;
	}
	size_t head = j->out->len;
	ml_msgpack_room(j->out, 5);
	j->out->len += 5;
	while (j->p < j->end && *j->p != '"')
		if (string_piece(j) != 0)
			return -1;
	if (j->p >= j->end)
		return fail(j, open, "this string has no closing quote");
	j->p++;
	size_t n = j->out->len - head - 5;
	if (n > UINT32_MAX)
		return fail(j, open, "a string longer than 4 GiB");
	ml_msgpack_fix_str_head(j->out, head, 5, (uint32_t)n);
	return 0;
}

/* ---- arrays and objects ---- */

/* Notes where the key about to be read goes and came from: the path and repeats need it. */
static void note_key(struct json_reader *j)
{
	if (j->n_keys == j->keys_cap) {
		size_t cap = 2 * j->keys_cap;
		struct key_at *k = ml_xmalloc(cap * sizeof(*k));
		memcpy(k, j->keys, j->n_keys * sizeof(*k));
		if (j->keys != j->keys_small)
			free(j->keys);
		j->keys = k, j->keys_cap = cap;
	}
	j->keys[j->n_keys++] = (struct key_at){j->out->len, j->p};
	j->open[j->n_open - 1].key = j->out->len;
}

/* The object whose keys start at keys[base] is read whole: refuses a key given twice. */
static int check_keys(struct json_reader *j, size_t base)
{
	const struct ml_key *a, *b;
	const char *s, *t;
	size_t n, m;
	j->found.n = 0;
	for (size_t i = base; i < j->n_keys; i++) {
		struct ml_msgpack_obj o = {.kind = ML_MP_STR};
		key_of(j, j->keys[i].off, &o.ptr, &n);
		o.n = (uint32_t)n;
		ml_keys_push(&j->found, &o);
	}
	if (!ml_keys_find_twice(&j->found, 0, &a, &b))
		return 0;
	/* Point at its second appearance. */
	const char *at = NULL;
	for (size_t i = base, seen = 0; i < j->n_keys && !at; i++) {
		key_of(j, j->keys[i].off, &t, &m);
		if (m == a->n && memcmp(t, a->s, m) == 0 && seen++)
			at = j->keys[i].in;
	}
	struct ml_buf q = {0}, p = {0};
	s = path_of(j, j->n_open - 1, &p);
	ml_codec_quote(&q, a->s, a->n);
	ml_buf_add(&q, "", 1);
	refuse(j, at, "duplicate key %s in %s%s; a key may appear once in an object", q.data,
	       *s ? "" : "the top-level object", s);
	ml_buf_free(&q), ml_buf_free(&p);
	return -1;
}

static int member(struct json_reader *j, int depth)
{
	skip_space(j);
	if (j->p >= j->end || *j->p != '"')
		return fail(j, j->p, "expected a string key");
	note_key(j);
	if (parse_string(j) != 0)
		return -1;
	skip_space(j);
	if (j->p >= j->end || *j->p != ':')
		return fail(j, j->p, "expected ':' after the key");
	j->p++;
	return parse_value(j, depth);
}

/* Both containers: '[' values ']' or '{' key ':' value pairs '}', separated by ','. */
static int parse_container(struct json_reader *j, int depth)
{
	int is_map = *j->p == '{';
	char close = is_map ? '}' : ']';
	size_t head = j->out->len, keys = j->n_keys;
	uint32_t n = 0;

	if (depth >= ML_CODEC_MAX_DEPTH)
		return fail(j, j->p, "arrays and objects nest deeper than 64 levels");
	j->p++;
	ml_msgpack_put_byte(j->out, 0);
	skip_space(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		ml_msgpack_fix_head(j->out, head, is_map, 0);
		return 0;
	}
	j->open[j->n_open].is_map = is_map;
	j->n_open++;
	for (;;) {
		if (n == UINT32_MAX)
			return fail(j, j->p, "more than 2^32 - 1 elements");
		j->open[j->n_open - 1].index = n + 1;
		if ((is_map ? member(j, depth + 1) : parse_value(j, depth + 1)) != 0)
			return -1;
		n++;
		skip_space(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close)
			break;
		return fail(j, j->p,
			    is_map ? "expected ',' or '}' in an object"
				   : "expected ',' or ']' in an array");
	}
	if (is_map && n > 1 && check_keys(j, keys) != 0)
		return -1;
	j->n_open--;
	j->n_keys = keys;
	j->p++;
	ml_msgpack_fix_head(j->out, head, is_map, n);
	return 0;
}

static int parse_value(struct json_reader *j, int depth)
{
	skip_space(j);
	if (j->p >= j->end)
		return fail(j, j->p, "expected a value");
	switch (*j->p) {
	case '{':
	case '[':
		return parse_container(j, depth);
	case '"':
		return parse_string(j);
	case 't':
		ml_msgpack_put_bool(j->out, 1);
		return literal(j, "true", 4);
	case 'f':
		ml_msgpack_put_bool(j->out, 0);
		return literal(j, "false", 5);
	case 'n':
		ml_msgpack_put_nil(j->out);
		return literal(j, "null", 4);
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
			return parse_number(j);
		return fail(j, j->p, "expected a value");
	}
}

int ml_json_to_msgpack(const char *json, size_t len, struct ml_buf *out)
{
	struct json_reader j; /* open[] is written before it is read */
	size_t start = out->len;
	int rc = -1;

	j.start = j.p = json, j.end = json + len;
	j.out = out;
	j.n_open = 0;
	j.keys = j.keys_small, j.n_keys = 0;
	j.keys_cap = sizeof(j.keys_small) / sizeof(j.keys_small[0]);
	ml_keys_init(&j.found);
	if (parse_value(&j, 0) != 0)
		goto done;
	skip_space(&j);
	if (j.p != j.end) {
		fail(&j, j.p, "expected the end of the input after the value");
		goto done;
	}
	rc = 0;
done:
	if (rc != 0)
		out->len = start;
	if (j.keys != j.keys_small)
		free(j.keys);
	ml_keys_free(&j.found);
	return rc;
}
