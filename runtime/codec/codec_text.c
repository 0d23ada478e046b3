/*
 * codec_text.c - text helpers of the JSON conversions: UTF-8 validation and
 * numbers written and read the same way whatever the process locale is (the
 * REPL's line editor may switch LC_NUMERIC to one with a decimal comma).
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
