/*
 * codec_text.c - text helpers of the codec: UTF-8 validation, numbers written
 * and read the same way whatever the process locale is (the REPL's line editor
 * may switch LC_NUMERIC to one with a decimal comma), base64, and the paths
 * that messages use to point at a value (data.items[2]["a b"]).
 */
#include "codec_internal.h"

#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

int ml_codec_utf8_len(const uint8_t *p, const uint8_t *end)
{
	size_t left = (size_t)(end - p);
	uint8_t b = p[0];
	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		return left >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (b >= 0xe0 && b <= 0xef) {
		/* No overlong forms (e0 80..9f) and no UTF-16 surrogates (ed a0..bf). */
		uint8_t lo = b == 0xe0 ? 0xa0 : 0x80, hi = b == 0xed ? 0x9f : 0xbf;
		if (left < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
			return 0;
		return 3;
	}
	if (b >= 0xf0 && b <= 0xf4) {
		/* No overlong forms (f0 80..8f) and nothing above U+10FFFF (f4 90..). */
		uint8_t lo = b == 0xf0 ? 0x90 : 0x80, hi = b == 0xf4 ? 0x8f : 0xbf;
		if (left < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

static locale_t c_locale;

static void c_locale_init(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* The C locale, or 0 (keep the current one) if it could not be made. */
static locale_t c_locale_get(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, c_locale_init);
	return c_locale;
}

double ml_codec_strtod(const char *s)
{
	locale_t c = c_locale_get();
	return c ? strtod_l(s, NULL, c) : strtod(s, NULL);
}

/* Integral-looking text ("1", "-20") would read back as an integer. */
static int add_point(char *buf, size_t size, int n)
{
	if (strspn(buf, "-0123456789") == (size_t)n && (size_t)n + 2 < size) {
		memcpy(buf + n, ".0", 3);
		n += 2;
	}
	return n;
}

int ml_codec_format_double(char *buf, size_t size, double d)
{
	if (buf == NULL || size == 0) /* gcc -O3 asks; no caller does it */
		return 0;
	locale_t c = c_locale_get(), old = c ? uselocale(c) : 0;
	int n = 0;
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(buf, size, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (c)
		uselocale(old);
	return add_point(buf, size, n);
}

int ml_codec_format_float(char *buf, size_t size, float f)
{
	if (buf == NULL || size == 0) /* gcc -O3 asks; no caller does it */
		return 0;
	locale_t c = c_locale_get(), old = c ? uselocale(c) : 0;
	int n = 0;
	for (int prec = 6; prec <= 9; prec++) {
		n = snprintf(buf, size, "%.*g", prec, (double)f);
		if (strtof(buf, NULL) == f)
			break;
	}
	if (c)
		uselocale(old);
	return add_point(buf, size, n);
}

size_t ml_codec_base64(char *out, const void *bytes, size_t n)
{
	static const char abc[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t *p = bytes;
	char *o = out;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		*o++ = abc[v >> 18];
		*o++ = abc[(v >> 12) & 63];
		*o++ = i + 1 < n ? abc[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? abc[v & 63] : '=';
	}
	return (size_t)(o - out);
}

/* The value of a base64 character, or -1. */
static int unbase64_char(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int ml_codec_unbase64(struct ml_buf *out, const char *s, size_t n)
{
	if (n % 4 != 0)
		return ml_diag_set(ML_ERR_USAGE,
				   "base64 text is %zu characters long, not a multiple of 4", n);
	size_t start = out->len;
	ml_buf_reserve(out, n / 4 * 3);
	for (size_t i = 0; i < n; i += 4) {
		int pad = (s[i + 3] == '=') + (s[i + 2] == '=' && s[i + 3] == '=');
		uint32_t v = 0;
		for (size_t j = 0; j < 4; j++) {
			int d = j >= (size_t)(4 - pad) ? 0 : unbase64_char(s[i + j]);
			if (d < 0 || (pad && i + 4 < n)) {
				out->len = start;
				return ml_diag_set(
				    ML_ERR_USAGE,
				    "base64 text has '%c' at character %zu; it "
				    "holds only A-Z, a-z, 0-9, + and /, and = at the end",
				    s[i + j], i + j + 1);
			}
			v = v << 6 | (uint32_t)d;
		}
		uint8_t b[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
		ml_buf_add(out, b, (size_t)(3 - pad));
	}
	return 0;
}

/* ---- paths in messages ---- */

static int is_name(const char *s, size_t n)
{
	if (n == 0 || n > 40 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

void ml_codec_quote(struct ml_buf *b, const char *s, size_t n)
{
	ml_buf_add(b, "\"", 1);
	for (size_t i = 0; i < n && i < 32; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			ml_buf_addf(b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			ml_buf_addf(b, "\\x%02x", c);
		else
			ml_buf_add(b, s + i, 1);
	}
	ml_buf_add(b, n > 32 ? "...\"" : "\"", n > 32 ? 4 : 1);
}

void ml_codec_path_key(struct ml_buf *b, const char *s, size_t n)
{
	if (is_name(s, n)) {
		ml_buf_add(b, ".", 1);
		ml_buf_add(b, s, n);
		return;
	}
	ml_buf_add(b, "[", 1);
	ml_codec_quote(b, s, n);
	ml_buf_add(b, "]", 1);
}

const char *ml_codec_path_text(struct ml_buf *b)
{
	/* Deep paths keep their head and their tail: the message must fit one line. */
	enum { HEAD = 40, TAIL = 100 };
	if (b->len > HEAD + TAIL + 3) {
		memmove(b->data + HEAD + 3, b->data + b->len - TAIL, TAIL);
		memcpy(b->data + HEAD, "...", 3);
		b->len = HEAD + 3 + TAIL;
	}
	ml_buf_add(b, "", 1);
	b->len--;
	return b->data;
}
