/*
 * test_codec.c - the msgpack validator and the msgpack <-> JSON conversions,
 * with msgpack-c as the reference encoder and decoder.
 */
#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include <math.h>
#include <msgpack.h>

#include "random_input.h"
#include "unit.h"

/* ---- helpers ---- */

static msgpack_sbuffer sbuf;
static msgpack_packer pk;

static void pk_reset(void)
{
	msgpack_sbuffer_clear(&sbuf);
}

static int has(const char *text, const char *part)
{
	return strstr(text, part) != NULL;
}

/* 1 if msgpack-c reads buf[0..len) as exactly one object. */
static int reference_ok(const void *buf, size_t len)
{
	msgpack_unpacked u;
	size_t off = 0;
	msgpack_unpacked_init(&u);
	int rc = msgpack_unpack_next(&u, buf, len, &off);
	msgpack_unpacked_destroy(&u);
	return rc == MSGPACK_UNPACK_SUCCESS && off == len;
}

/* JSON of the msgpack in buf, in a static buffer; "ERROR: ..." on failure. */
static const char *json_of(const void *buf, size_t len)
{
	static struct ml_buf out;
	out.len = 0;
	if (ml_msgpack_to_json(buf, len, &out) != 0)
		return ml_diag_last();
	ml_buf_add(&out, "", 1);
	return out.data;
}

static const char *json_of_sbuf(void)
{
	return json_of(sbuf.data, sbuf.size);
}

/* from_json then to_json. */
static const char *json_round(const char *json)
{
	struct ml_buf mp = {0};
	static char text[4096];
	if (ml_json_to_msgpack(json, strlen(json), &mp) != 0) {
		snprintf(text, sizeof(text), "ERROR: %s", ml_diag_last());
	} else {
		snprintf(text, sizeof(text), "%s", json_of(mp.data, mp.len));
	}
	ml_buf_free(&mp);
	return text;
}

/* The msgpack from_json makes, as hex. */
static const char *hex_of_json(const char *json)
{
	struct ml_buf mp = {0};
	static char text[256];
	text[0] = '\0';
	if (ml_json_to_msgpack(json, strlen(json), &mp) != 0)
		snprintf(text, sizeof(text), "ERROR: %s", ml_diag_last());
	for (size_t i = 0; i < mp.len && i < 100; i++)
		snprintf(text + 2 * i, 3, "%02x", (unsigned char)mp.data[i]);
	ml_buf_free(&mp);
	return text;
}

static void pack_str(const char *s, size_t n)
{
	msgpack_pack_str(&pk, n);
	msgpack_pack_str_body(&pk, s, n);
}

/* ---- the validator ---- */

/* One of each format, as a sequence of objects (test_check_types wraps them in an array). */
static void pack_every_type(void)
{
	static char big[70000];
	msgpack_pack_nil(&pk), msgpack_pack_true(&pk);
	msgpack_pack_false(&pk), msgpack_pack_int(&pk, 0);
	msgpack_pack_uint64(&pk, 127), msgpack_pack_uint64(&pk, 128);
	msgpack_pack_uint64(&pk, 256), msgpack_pack_uint64(&pk, 65536);
	msgpack_pack_uint64(&pk, UINT64_MAX), msgpack_pack_int64(&pk, -1);
	msgpack_pack_int64(&pk, -33), msgpack_pack_int64(&pk, -129);
	msgpack_pack_int64(&pk, -32769), msgpack_pack_int64(&pk, INT64_MIN);
	msgpack_pack_float(&pk, 1.5f), msgpack_pack_double(&pk, 0.1);
	pack_str("", 0), pack_str(big, 31);
	pack_str(big, 32), pack_str(big, 256);
	pack_str(big, 70000), msgpack_pack_bin(&pk, 0);
	msgpack_pack_bin(&pk, 3), msgpack_pack_bin_body(&pk, "a\0b", 3);
	msgpack_pack_bin(&pk, 300), msgpack_pack_bin_body(&pk, big, 300);
	msgpack_pack_bin(&pk, 70000), msgpack_pack_bin_body(&pk, big, 70000);
	static const size_t ext_sizes[] = {1, 2, 4, 8, 16, 0, 3, 300, 70000};
	for (size_t i = 0; i < 9; i++) {
		msgpack_pack_ext(&pk, ext_sizes[i], (int8_t)i);
		msgpack_pack_ext_body(&pk, big, ext_sizes[i]);
		msgpack_pack_int(&pk, (int)i);
	}
	msgpack_pack_array(&pk, 0), msgpack_pack_array(&pk, 16);
	for (int i = 0; i < 16; i++)
		msgpack_pack_nil(&pk);
	msgpack_pack_array(&pk, 70000);
	for (int i = 0; i < 70000; i++)
		msgpack_pack_int(&pk, i & 0x7f);
	msgpack_pack_map(&pk, 0);
	msgpack_pack_map(&pk, 16);
	for (int i = 0; i < 32; i++)
		msgpack_pack_int(&pk, i);
	msgpack_pack_map(&pk, 70000);
	for (int i = 0; i < 140000; i++)
		msgpack_pack_true(&pk);
}

static void test_check_types(void)
{
	pk_reset();
	pack_every_type();
	/* Count the objects with msgpack-c, then put an array header before them. */
	msgpack_unpacked u;
	size_t off = 0, count = 0;
	msgpack_unpacked_init(&u);
	while (msgpack_unpack_next(&u, sbuf.data, sbuf.size, &off) == MSGPACK_UNPACK_SUCCESS)
		count++;
	msgpack_unpacked_destroy(&u);
	ok(off == sbuf.size && count > 40, "%zu objects of every format", count);
	char *body = malloc(sbuf.size);
	size_t body_len = sbuf.size;
	memcpy(body, sbuf.data, body_len);
	pk_reset();
	msgpack_pack_array(&pk, count);
	msgpack_sbuffer_write(&sbuf, body, body_len);
	free(body);
	ok(reference_ok(sbuf.data, sbuf.size), "msgpack-c reads them as one array");
	ok(ml_msgpack_check(sbuf.data, sbuf.size) == 0, "every type is accepted: %s",
	   ml_diag_last());
	ok(!ml_msgpack_is_map(sbuf.data, sbuf.size), "an array is not a map");

	/* Each scalar alone too, and the formats msgpack-c does not write (str 8 from old packers).
	 */
	static const char *const alone[] = {
	    "\xc0", "\xc3", "\x7f", "\xe0", "\xcc\xff", "\xd9\x01x", "\xd9\x00", "\xa0",
	};
	static const size_t alone_len[] = {1, 1, 1, 1, 2, 3, 2, 1};
	for (int i = 0; i < 8; i++)
		ok(ml_msgpack_check(alone[i], alone_len[i]) == 0, "scalar %d alone", i);
	ok(!ml_msgpack_is_map("\x90", 1), "an array is not a map");
	ok(ml_msgpack_is_map("\x80", 1), "fixmap is a map");
	ok(ml_msgpack_is_map("\xdf\0\0\0\0", 5), "map 32 is a map");
	ok(!ml_msgpack_is_map("", 0), "nothing is not a map");
}

/* A nested object of every kind, for the truncation tests. */
static void pack_complex(void)
{
	pk_reset();
	msgpack_pack_map(&pk, 5);
	pack_str("amount", 6), msgpack_pack_int64(&pk, -123456789012);
	pack_str("items", 5), msgpack_pack_array(&pk, 3);
	msgpack_pack_double(&pk, 2.5), msgpack_pack_float(&pk, 1.0f);
	msgpack_pack_map(&pk, 1), msgpack_pack_uint16(&pk, 300);
	msgpack_pack_bin(&pk, 2), msgpack_pack_bin_body(&pk, "\x01\x02", 2);
	pack_str("note", 4), pack_str("a string of more than thirty-one bytes", 38);
	pack_str("flags", 5), msgpack_pack_array(&pk, 3);
	msgpack_pack_true(&pk), msgpack_pack_nil(&pk), msgpack_pack_uint32(&pk, 70000);
	msgpack_pack_int(&pk, 9), msgpack_pack_ext(&pk, 4, 1),
	    msgpack_pack_ext_body(&pk, "abcd", 4);
}

static void test_check_truncations(void)
{
	int refused = 0, said_byte = 0;
	pack_complex();
	ok(ml_msgpack_check(sbuf.data, sbuf.size) == 0, "the complex object is accepted");
	for (size_t n = 0; n < sbuf.size; n++) {
		refused += ml_msgpack_check(sbuf.data, n) == -1;
		said_byte +=
		    (n == 0 || has(ml_diag_last(), "byte")) && ml_diag_code() == ML_ERR_USAGE;
	}
	is_int(refused, sbuf.size, "every truncation of the %zu bytes is refused", sbuf.size);
	is_int(said_byte, sbuf.size, "and each message says at which byte");
	ml_msgpack_check(sbuf.data, 10);
	is_str(ml_diag_last(),
	       "invalid msgpack: the int 64 at byte 8 needs 9 bytes but only 2 remain",
	       "a truncated int 64");
	ml_msgpack_check(sbuf.data, 1);
	is_str(ml_diag_last(),
	       "invalid msgpack: the input ends at byte 1, inside an array or map that "
	       "announced more elements",
	       "a map that ends early");

	msgpack_pack_nil(&pk);
	ok(ml_msgpack_check(sbuf.data, sbuf.size) == -1, "a trailing byte is refused");
	ok(has(ml_diag_last(), "1 more byte follows the object that ends at byte"), "%s",
	   ml_diag_last());
	ok(ml_msgpack_check("", 0) == -1 && has(ml_diag_last(), "empty"), "empty input");
	ok(ml_msgpack_check("\x91\xc1", 2) == -1 && has(ml_diag_last(), "byte 1 is 0xc1"),
	   "0xc1: %s", ml_diag_last());
	ok(ml_msgpack_check("\xdd\xff\xff\xff\xff\x01", 6) == -1, "an array 32 that lies");
	ok(ml_msgpack_check("\xdf\xff\xff\xff\xff", 5) == -1, "a map 32 that lies");
}

static void test_check_depth(void)
{
	char buf[80];
	memset(buf, 0x91, sizeof(buf));
	buf[63] = 0x90;
	ok(ml_msgpack_check(buf, 64) == 0, "64 nested arrays are accepted");
	buf[63] = (char)0x91, buf[64] = (char)0x90;
	ok(ml_msgpack_check(buf, 65) == -1, "65 nested arrays are refused");
	is_str(ml_diag_last(),
	       "invalid msgpack: the fixarray at byte 64 nests deeper than 64 levels",
	       "the message names the byte");
	/* {nil: {nil: ... {nil: 1}}} 64 deep */
	{
		struct ml_buf b = {0};
		for (int i = 0; i < 64; i++)
			ml_buf_add(&b, "\x81\xc0", 2);
		ml_buf_add(&b, "\x01", 1);
		ok(ml_msgpack_check(b.data, b.len) == 0, "64 nested maps are accepted");
		b.len = 0;
		for (int i = 0; i < 65; i++)
			ml_buf_add(&b, "\x81\xc0", 2);
		ml_buf_add(&b, "\x01", 1);
		ok(ml_msgpack_check(b.data, b.len) == -1, "65 nested maps are refused");
		ok(!has(json_of(b.data, b.len), "{"), "to_json refuses them too");
		ml_buf_free(&b);
	}
}

/* msgpack-c allocates for a 32-bit count before reading the elements: no array32, no map32. */
static unsigned char no_count32(unsigned char b, uint64_t r)
{
	(void)r;
	return b == 0xdd || b == 0xdf ? 0xc0 : b;
}

/* Random bytes: the validator must agree with msgpack-c and never read out of bounds. */
static void test_check_random(void)
{
	uint64_t x = 0x9e3779b97f4a7c15u;
	int agree = 0, valid = 0, json_ok = 0, json_refused = 0;
	const int rounds = 200000;
	for (int i = 0; i < rounds; i++) {
		size_t n;
		unsigned char *p = random_msgpack(&x, 24, &n, no_count32);
		int mine = ml_msgpack_check(p, n) == 0;
		agree += mine == reference_ok(p, n);
		valid += mine;
		struct ml_buf out = {0};
		int rc = ml_msgpack_to_json(p, n, &out);
		if (mine)
			json_ok += rc == 0;
		else
			json_refused += rc == -1 && out.len == 0;
		ml_buf_free(&out);
		free(p);
	}
	is_int(agree, rounds, "the validator agrees with msgpack-c on random bytes");
	ok(valid > 1000, "(%d of them valid)", valid);
	is_int(json_ok, valid, "to_json converts every valid one, ext values included");
	is_int(json_refused, rounds - valid, "and refuses every invalid one");
}

/* ---- msgpack -> JSON ---- */

static void test_to_json(void)
{
	pk_reset();
	msgpack_pack_map(&pk, 3);
	pack_str("a", 1), msgpack_pack_int(&pk, 1);
	pack_str("b", 1), msgpack_pack_array(&pk, 3);
	msgpack_pack_true(&pk), msgpack_pack_false(&pk), msgpack_pack_nil(&pk);
	pack_str("c", 1), pack_str("x\"y\\\n\t\x01/", 8);
	is_str(json_of_sbuf(),
	       "{\"a\":1,\"b\":[true,false,null],\"c\":\"x\\\"y\\\\\\n\\t\\u0001/\"}",
	       "a map of plain values");

	pk_reset();
	msgpack_pack_array(&pk, 4);
	msgpack_pack_int64(&pk, INT64_MIN), msgpack_pack_int64(&pk, INT64_MAX);
	msgpack_pack_uint64(&pk, UINT64_MAX), msgpack_pack_int(&pk, -5);
	is_str(json_of_sbuf(), "[-9223372036854775808,9223372036854775807,18446744073709551615,-5]",
	       "integers at the edges");

	pk_reset();
	msgpack_pack_array(&pk, 10);
	msgpack_pack_double(&pk, 0.1), msgpack_pack_double(&pk, 1.0);
	msgpack_pack_double(&pk, -0.0), msgpack_pack_double(&pk, 1e300);
	msgpack_pack_double(&pk, 1.0 / 3), msgpack_pack_double(&pk, NAN);
	msgpack_pack_double(&pk, -INFINITY), msgpack_pack_float(&pk, 0.1f);
	msgpack_pack_float(&pk, 3.0f), msgpack_pack_double(&pk, 123456789012345680.0);
	is_str(json_of_sbuf(),
	       "[0.1,1.0,-0.0,1e+300,0.3333333333333333,null,null,0.1,3.0,1.2345678901234568e+17]",
	       "floats: shortest round trip, .0 on integral ones, null for NaN and infinity");

	pk_reset();
	msgpack_pack_array(&pk, 3);
	msgpack_pack_bin(&pk, 4), msgpack_pack_bin_body(&pk, "\x00\x01\x02\xff", 4);
	msgpack_pack_bin(&pk, 0);
	msgpack_pack_bin(&pk, 5), msgpack_pack_bin_body(&pk, "hello", 5);
	is_str(json_of_sbuf(), "[\"AAEC/w==\",\"\",\"aGVsbG8=\"]", "binary becomes base64");

	pk_reset();
	msgpack_pack_map(&pk, 6);
	msgpack_pack_int(&pk, 1), pack_str("a", 1);
	msgpack_pack_true(&pk), msgpack_pack_int(&pk, 2);
	msgpack_pack_nil(&pk), msgpack_pack_int(&pk, 3);
	msgpack_pack_double(&pk, 1.5), msgpack_pack_int(&pk, 4);
	msgpack_pack_array(&pk, 2), msgpack_pack_int(&pk, 1), pack_str("\"", 1);
	msgpack_pack_int(&pk, 5);
	msgpack_pack_bin(&pk, 1), msgpack_pack_bin_body(&pk, "\xff", 1), msgpack_pack_int(&pk, 6);
	is_str(
	    json_of_sbuf(),
	    "{\"1\":\"a\",\"true\":2,\"null\":3,\"1.5\":4,\"[1,\\\"\\\\\\\"\\\"]\":5,\"/w==\":6}",
	    "keys that are not strings become their JSON text as a string");

	pk_reset();
	msgpack_pack_array(&pk, 2);
	pack_str("caf\xc3\xa9 \xf0\x9f\x98\x80", 10);
	pack_str("a\xff"
		 "b\xc3(\xed\xa0\x80",
		 8);
	is_str(json_of_sbuf(),
	       "[\"caf\xc3\xa9 \xf0\x9f\x98\x80\",\"a\xef\xbf\xbd"
	       "b\xef\xbf\xbd(\xef\xbf\xbd\xef"
	       "\xbf\xbd\xef\xbf\xbd\"]",
	       "UTF-8 passes through; each byte of bad UTF-8 becomes U+FFFD");

	/* The log refuses ext, but an older log may hold one: it has a JSON form. */
	pk_reset();
	msgpack_pack_array(&pk, 3);
	msgpack_pack_ext(&pk, 1, 7), msgpack_pack_ext_body(&pk, "x", 1);
	msgpack_pack_ext(&pk, 0, -1);
	msgpack_pack_ext(&pk, 4, -128), msgpack_pack_ext_body(&pk, "\0\1\2\3", 4);
	is_str(json_of_sbuf(),
	       "[{\"$ext\":7,\"base64\":\"eA==\"},{\"$ext\":-1,\"base64\":\"\"},"
	       "{\"$ext\":-128,\"base64\":\"AAECAw==\"}]",
	       "ext values become {\"$ext\": type, \"base64\": bytes}");
	struct ml_buf out = {0};
	ml_buf_add(&out, "keep", 4);
	ok(ml_msgpack_to_json("\x92\x01", 2, &out) == -1 && out.len == 4,
	   "truncated input is refused, leaving the output as it was");
	ml_buf_free(&out);

	/* Keys in keys are quoted once, at the outer key: quoting at every level doubled the
	 * output per level (a fuzz find: 134 bytes of msgpack took a server past 13 GB). */
	pk_reset();
	msgpack_pack_map(&pk, 1);
	msgpack_pack_map(&pk, 1), msgpack_pack_map(&pk, 1), pack_str("\"", 1);
	msgpack_pack_int(&pk, 1), msgpack_pack_int(&pk, 2), msgpack_pack_int(&pk, 3);
	is_str(json_of_sbuf(), "{\"{{\\\"\\\\\\\"\\\":1}:2}\":3}",
	       "a key's JSON text is quoted once, keys inside it are not quoted again");
	pk_reset();
	for (int i = 0; i < 24; i++) /* 24, not 64: the old code fails here in a second */
		msgpack_pack_map(&pk, 1);
	pack_str("\"", 1);
	for (int i = 0; i < 24; i++)
		msgpack_pack_int(&pk, 1);
	ok(strlen(json_of_sbuf()) < 200, "24 maps nested as keys of keys render in %zu bytes",
	   strlen(json_of_sbuf()));

	struct ml_buf js = {0};
	ml_json_string(&js, "a\xff\n\"", 4);
	ml_buf_add(&js, "", 1);
	is_str(js.data, "\"a\xef\xbf\xbd\\n\\\"\"",
	       "ml_json_string escapes as to_json does, U+FFFD for bytes that are not UTF-8");
	ml_buf_free(&js);

	/* A long string crosses the 4096-byte chunks of the escaper. */
	static char longs[10000];
	for (size_t i = 0; i < sizeof(longs); i++)
		longs[i] = i % 70 == 3 ? '\n' : i % 7 == 0 ? '\xc3' : i % 7 == 1 ? '\xa9' : 'x';
	pk_reset();
	pack_str(longs, sizeof(longs));
	struct ml_buf mp = {0};
	const char *j = json_of_sbuf();
	ok(ml_json_to_msgpack(j, strlen(j), &mp) == 0 && mp.len == sbuf.size &&
	       memcmp(mp.data, sbuf.data, mp.len) == 0,
	   "a 10000-byte string with escapes and UTF-8 round-trips");
	ml_buf_free(&mp);
}

/* ---- JSON -> msgpack ---- */

static void test_from_json_numbers(void)
{
	is_str(hex_of_json("0"), "00", "0");
	is_str(hex_of_json("127"), "7f", "positive fixint");
	is_str(hex_of_json("128"), "cc80", "uint 8");
	is_str(hex_of_json("-33"), "d0df", "int 8");
	is_str(hex_of_json("-32"), "e0", "negative fixint");
	is_str(hex_of_json("65536"), "ce00010000", "uint 32");
	is_str(hex_of_json("9223372036854775807"), "cf7fffffffffffffff", "int64 max");
	is_str(hex_of_json("-9223372036854775808"), "d38000000000000000", "int64 min");
	is_str(hex_of_json("18446744073709551615"), "cfffffffffffffffff", "uint64 max");
	is_str(hex_of_json("18446744073709551616"), "cb43f0000000000000", "past uint64: a float");
	is_str(hex_of_json("-9223372036854775809"), "cbc3e0000000000000", "past int64: a float");
	is_str(hex_of_json("1.0"), "cb3ff0000000000000", "1.0 stays a float");
	is_str(hex_of_json("1e2"), "cb4059000000000000", "an exponent makes a float");
	is_str(hex_of_json("-0"), "00", "-0 is the integer 0");
	is_str(json_round("0.1"), "0.1", "0.1 round-trips");
	is_str(json_round("1.0"), "1.0", "1.0 round-trips as a float");
	is_str(json_round("-0.0"), "-0.0", "-0.0");
	is_str(json_round("1E-7"), "1e-07", "1E-7");
	is_str(json_round("2.5e+3"), "2500.0", "2.5e+3");
	is_str(json_round("9007199254740993"), "9007199254740993", "2^53 + 1 keeps every digit");
	is_str(json_round("1e999"),
	       "ERROR: invalid JSON at line 1, column 1: the number 1e999 is too large for a "
	       "64-bit float (at most about 1.8e308)",
	       "a number beyond a double is refused, not stored as infinity");
	is_str(json_round("{\"a\":[1,{\"b\":-1e999999}]}"),
	       "ERROR: invalid JSON at line 1, column 14: the number -1e999999 at a[2].b is too "
	       "large for a 64-bit float (at most about 1.8e308)",
	       "the message names the field by its path");
	is_str(json_round("1.7976931348623157e308"), "1.7976931348623157e+308",
	       "the largest double");
	is_str(json_round("1e-999"), "0.0", "a number too small rounds to 0");
	{
		char digits[420] = "[";
		memset(digits + 1, '9', 400);
		strcpy(digits + 401, "]");
		ok(has(json_round(digits),
		       "the number 999999999999999999999999... at [1] is too large"),
		   "400 digits: %s", json_round(digits));
	}
	is_str(json_round("[-9223372036854775808,9223372036854775807,18446744073709551615]"),
	       "[-9223372036854775808,9223372036854775807,18446744073709551615]",
	       "integer edges round-trip");
	is_str(json_round("0.30000000000000004"), "0.30000000000000004", "17 digits when needed");
	/* Tokens longer than the parser's stack copy. */
	is_str(json_round("1.00000000000000000000000000000000000000000000000000000000000000000001"),
	       "1.0", "a long number token");
}

static void test_from_json_strings(void)
{
	is_str(hex_of_json("\"\\u00e9\""), "a2c3a9", "\\u00e9 is UTF-8 c3 a9");
	is_str(hex_of_json("\"\\ud83d\\ude00\""), "a4f09f9880",
	       "a surrogate pair is one code point");
	is_str(hex_of_json("\"\\u0000\""), "a100", "\\u0000 is a zero byte");
	is_str(hex_of_json("\"\\u20AC\""), "a3e282ac", "upper-case hex");
	is_str(json_round("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""), "\"\\\"\\\\/\\b\\f\\n\\r\\t\"",
	       "every short escape");
	is_str(json_round("\"caf\xc3\xa9\""), "\"caf\xc3\xa9\"", "raw UTF-8 passes");
	is_str(hex_of_json("\"\""), "a0", "empty string");

	/* Headers fixed after unescaping: the smallest that fits. */
	char s[400];
	snprintf(s, sizeof(s), "\"%s\\n\"", "0123456789012345678901234567890123456789");
	is_str(hex_of_json(s),
	       "d92930313233343536373839303132333435363738393031323334353637383930"
	       "3132333435363738390a",
	       "41 bytes with an escape: str 8");
	memset(s, 'a', sizeof(s));
	s[0] = '"', memcpy(s + 1, "\\t", 2), s[398] = '"', s[399] = '\0';
	ok(!strncmp(hex_of_json(s), "da018c09", 8), "396 bytes with an escape: str 16");
	snprintf(s, sizeof(s), "\"a\\nb\"");
	is_str(hex_of_json(s), "a3610a62", "3 bytes with an escape: fixstr");
}

static void test_from_json_containers(void)
{
	is_str(json_round(" { \"a\" : [ 1 , { \"b\" : null } , [ ] , { } ] , \"c\" : true } "),
	       "{\"a\":[1,{\"b\":null},[],{}],\"c\":true}", "nested containers and spaces");
	is_str(hex_of_json("[]"), "90", "empty array");
	is_str(hex_of_json("{}"), "80", "empty object");
	is_str(json_round("{\"a\":{},\"b\":{\"a\":1},\"c\":[{\"a\":1},{\"a\":2}]}"),
	       "{\"a\":{},\"b\":{\"a\":1},\"c\":[{\"a\":1},{\"a\":2}]}",
	       "the same key in different objects is fine");

	struct ml_buf j = {0}, mp = {0};
	ml_buf_add(&j, "[", 1);
	for (int i = 0; i < 70000; i++)
		ml_buf_addf(&j, "%s%d", i ? "," : "", i % 100);
	ml_buf_add(&j, "]", 1);
	ok(ml_json_to_msgpack(j.data, j.len, &mp) == 0, "70000 elements");
	ok((unsigned char)mp.data[0] == 0xdd && mp.data[3] == 0x11 && mp.data[4] == 0x70,
	   "an array 32 header");
	ok(reference_ok(mp.data, mp.len), "that msgpack-c reads");
	j.len = mp.len = 0;
	ml_buf_add(&j, "{", 1);
	for (int i = 0; i < 20; i++)
		ml_buf_addf(&j, "%s\"k%d\":[%d,{}]", i ? "," : "", i, i);
	ml_buf_add(&j, "}", 1);
	ok(ml_json_to_msgpack(j.data, j.len, &mp) == 0, "an object of 20 members");
	ok((unsigned char)mp.data[0] == 0xde && mp.data[1] == 0 && mp.data[2] == 20, "map 16");
	ml_buf_add(&j, "", 1);
	is_str(json_of(mp.data, mp.len), j.data, "and it round-trips");
	ml_buf_free(&j);
	ml_buf_free(&mp);

	char deep[200];
	memset(deep, '[', 64), memset(deep + 64, ']', 64), deep[128] = '\0';
	ok(!has(json_round(deep), "ERROR"), "64 nested arrays");
	memset(deep, '[', 65), memset(deep + 65, ']', 65), deep[130] = '\0';
	ok(has(json_round(deep), "nest deeper than 64"), "65 are refused: %s", json_round(deep));
}

static void test_from_json_duplicates(void)
{
	is_str(json_round("{\"a\":1,\"a\":2}"),
	       "ERROR: invalid JSON at line 1, column 8: duplicate key \"a\" in the top-level "
	       "object; a key may appear once in an object",
	       "a key given twice is refused, at its second appearance");
	is_str(json_round("{\"type\":\"T\",\"data\":{\"x\":[{\"n\":1,\"m\":2,\"n\":3}]}}"),
	       "ERROR: invalid JSON at line 1, column 39: duplicate key \"n\" in data.x[1]; a key "
	       "may appear once in an object",
	       "the message names the object by its path");
	is_str(json_round("{\"a b\":{\"\\u0061\":1,\"a\":2}}"),
	       "ERROR: invalid JSON at line 1, column 20: duplicate key \"a\" in [\"a b\"]; a key "
	       "may appear once in an object",
	       "keys compare after unescaping");
	is_str(json_round("{\"\\\"\":1,\"\\\"\":2}"),
	       "ERROR: invalid JSON at line 1, column 9: duplicate key \"\\\"\" in the top-level "
	       "object; a key may appear once in an object",
	       "an odd key is quoted in the message");

	/* A large object is checked by sorting: the repeat may be anywhere. */
	struct ml_buf j = {0}, mp = {0};
	ml_buf_add(&j, "{", 1);
	for (int i = 0; i < 5000; i++)
		ml_buf_addf(&j, "%s\"key%d\":%d", i ? "," : "", i, i);
	ml_buf_add(&j, "}", 1);
	ok(ml_json_to_msgpack(j.data, j.len, &mp) == 0, "5000 different keys are accepted");
	ok(ml_msgpack_check_value(mp.data, mp.len, "data") == 0, "and the log would store them");
	j.len--, mp.len = 0;
	ml_buf_add(&j, ",\"key2345\":0}", 13);
	ok(ml_json_to_msgpack(j.data, j.len, &mp) == -1 && mp.len == 0 &&
	       has(ml_diag_last(), "duplicate key \"key2345\" in the top-level object"),
	   "one repeat among 5001 keys is found: %s", ml_diag_last());
	ml_buf_free(&j), ml_buf_free(&mp);
}

static void test_from_json_errors(void)
{
	static const char *const bad[] = {
	    "",
	    " ",
	    "{",
	    "[1,]",
	    "{\"a\" 1}",
	    "{1:2}",
	    "tru",
	    "01",
	    "1.",
	    "-",
	    "1e",
	    "\"abc",
	    "\"\\x\"",
	    "\"\\ud800\"",
	    "\"\\udc00\"",
	    "[1 2]",
	    "1 2",
	    "\"a\x01\"",
	    "\"\xff\"",
	    "NaN",
	    "{\"a\":1,}",
	    "\"\\u12\"",
	    "\"\\ud800\\u0041\"",
	    "+1",
	    ".5",
	    "\"\xc0\xaf\"",
	    "[",
	    "\xef\xbb\xbf{}",
	};
	int n = (int)(sizeof(bad) / sizeof(bad[0])), refused = 0, positioned = 0;
	struct ml_buf out = {0};
	for (int i = 0; i < n; i++) {
		ml_buf_add(&out, "x", 1);
		size_t before = out.len;
		int rc = ml_json_to_msgpack(bad[i], strlen(bad[i]), &out);
		refused += rc == -1 && out.len == before;
		positioned += has(ml_diag_last(), "invalid JSON at line 1, column ");
		if (rc != -1)
			printf("# accepted: %s\n", bad[i]);
	}
	ml_buf_free(&out);
	is_int(refused, n, "every bad JSON text is refused, leaving the output alone");
	is_int(positioned, n, "every message gives the line and column");
	json_round("{\n  \"a\": tru\n}");
	is_str(json_round("{\n  \"a\": tru\n}"),
	       "ERROR: invalid JSON at line 2, column 8: expected a value, found 't'",
	       "the position of a mistake on the second line");
	is_str(
	    json_round("[1,\n2 3]"),
	    "ERROR: invalid JSON at line 2, column 3: expected ',' or ']' in an array, found '3'",
	    "a missing comma");
	is_str(
	    json_round("\"abc"),
	    "ERROR: invalid JSON at line 1, column 1: this string has no closing quote, found '\"'",
	    "an unterminated string points at its start");
	ok(ml_json_to_msgpack("12", 1, &out) == 0 && out.len == 1 && out.data[0] == 1,
	   "the length is respected: \"12\" with length 1 is 1");
	ml_buf_free(&out);
}

/* Random token soup: whatever parses must be valid msgpack and survive a JSON round trip. */
static void test_from_json_random(void)
{
	static const char *const tokens[] = {
	    "{",
	    "}",
	    "[",
	    "]",
	    ",",
	    ":",
	    "\"k\"",
	    "\"\\u00e9\\n\"",
	    "0",
	    "-12",
	    "3.5e-3",
	    "true",
	    "null",
	    " ",
	    "\n",
	    "\"",
	    "\\",
	    "1e999",
	    "18446744073709551616",
	    "\xc3\xa9",
	};
	uint64_t x = 12345;
	int parsed = 0, valid = 0, stable = 0, positioned = 0;
	const int rounds = 100000;
	struct ml_buf j = {0}, mp = {0}, j2 = {0}, mp2 = {0};
	for (int i = 0; i < rounds; i++) {
		j.len = mp.len = j2.len = mp2.len = 0;
		for (int k = 0, n = (int)(xorshift(&x) % 12); k < n; k++) {
			const char *t = tokens[xorshift(&x) % (sizeof(tokens) / sizeof(tokens[0]))];
			ml_buf_add(&j, t, strlen(t));
		}
		ml_buf_add(&j, "", 1); /* a NUL for has(), not part of the input */
		j.len--;
		char *p = malloc(j.len ? j.len : 1); /* exact size, for ASan */
		memcpy(p, j.data, j.len);
		if (ml_json_to_msgpack(p, j.len, &mp) != 0) {
			positioned += mp.len == 0 && has(ml_diag_last(), "invalid JSON at line");
			free(p);
			continue;
		}
		free(p);
		parsed++;
		valid += ml_msgpack_check_value(mp.data, mp.len, "data") == 0;
		if (ml_msgpack_to_json(mp.data, mp.len, &j2) == 0 &&
		    ml_json_to_msgpack(j2.data, j2.len, &mp2) == 0)
			stable += mp2.len == mp.len && memcmp(mp.data, mp2.data, mp.len) == 0;
	}
	is_int(positioned, rounds - parsed, "every refusal gives a position");
	ok(parsed > 1000, "(%d of %d parsed)", parsed, rounds);
	is_int(valid, parsed, "each makes valid msgpack that the log would store");
	is_int(stable, parsed, "and JSON -> msgpack -> JSON -> msgpack is stable");
	ml_buf_free(&j), ml_buf_free(&mp), ml_buf_free(&j2), ml_buf_free(&mp2);
}

/* base64 and back (export's data_msgpack, import's reading of it): every length, and refusals. */
static void test_base64(void)
{
	uint8_t bytes[64];
	char text[ML_BASE64_SIZE(sizeof(bytes))];
	int same = 0;
	for (size_t n = 0; n <= sizeof(bytes); n++) {
		for (size_t i = 0; i < n; i++)
			bytes[i] = (uint8_t)(i * 37 + n);
		size_t len = ml_codec_base64(text, bytes, n);
		struct ml_buf back = {0};
		same += ml_codec_unbase64(&back, text, len) == 0 && back.len == n &&
			(n == 0 || memcmp(back.data, bytes, n) == 0);
		ml_buf_free(&back);
	}
	is_int(same, (int)sizeof(bytes) + 1, "base64 and back gives the bytes, at every length");
	struct ml_buf b = {0};
	ml_buf_add(&b, "x", 1);
	ok(ml_codec_unbase64(&b, "AAE", 3) != 0 && b.len == 1, "a length not a multiple of 4");
	ok(ml_codec_unbase64(&b, "AA@A", 4) != 0 && strstr(ml_diag_last(), "'@' at character 3"),
	   "a character outside the alphabet, named: %s", ml_diag_last());
	ok(ml_codec_unbase64(&b, "AA==AAAA", 8) != 0 && b.len == 1,
	   "padding before the end, and the buffer left as it was");
	ml_buf_free(&b);
}

int main(void)
{
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	test_check_types();
	test_check_truncations();
	test_check_depth();
	test_check_random();
	test_to_json();
	test_from_json_numbers();
	test_from_json_strings();
	test_from_json_containers();
	test_from_json_duplicates();
	test_from_json_errors();
	test_from_json_random();
	test_base64();
	msgpack_sbuffer_destroy(&sbuf);
	return done_testing();
}
