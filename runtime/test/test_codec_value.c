/*
 * test_codec_value.c - what the log stores (ml_msgpack_check_value): values that
 * every reader can show, and messages that name the refused value by its path.
 * msgpack-c builds the inputs.
 */
#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include <math.h>
#include <msgpack.h>

#include "random_input.h"
#include "unit.h"

static msgpack_sbuffer sbuf;
static msgpack_packer pk;

static void pk_reset(void)
{
	msgpack_sbuffer_clear(&sbuf);
}

static void pack_str(const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(&pk, n);
	msgpack_pack_str_body(&pk, s, n);
}

static void pack_ext5(void)
{
	msgpack_pack_ext(&pk, 1, 5);
	msgpack_pack_ext_body(&pk, "x", 1);
}

/* "OK", or the message of the refusal of what sbuf holds, as data. */
static const char *verdict(void)
{
	if (ml_msgpack_check_value(sbuf.data, sbuf.size, "data") == 0)
		return "OK";
	return ml_diag_last();
}

static void test_accepted(void)
{
	static char bad_utf8[] = "a\xff";
	pk_reset();
	msgpack_pack_map(&pk, 16);
	pack_str("nil"), msgpack_pack_nil(&pk);
	pack_str("yes"), msgpack_pack_true(&pk);
	pack_str("no"), msgpack_pack_false(&pk);
	pack_str("min"), msgpack_pack_int64(&pk, INT64_MIN);
	pack_str("max"), msgpack_pack_uint64(&pk, UINT64_MAX);
	pack_str("f32"), msgpack_pack_float(&pk, 1.5f);
	pack_str("f64"), msgpack_pack_double(&pk, -0.0);
	pack_str(""), pack_str("");
	pack_str("bytes"), msgpack_pack_str(&pk, 2), msgpack_pack_str_body(&pk, bad_utf8, 2);
	pack_str("bin"), msgpack_pack_bin(&pk, 3), msgpack_pack_bin_body(&pk, "\0\1\2", 3);
	pack_str("empty"), msgpack_pack_array(&pk, 0);
	pack_str("none"), msgpack_pack_map(&pk, 0);
	msgpack_pack_int(&pk, 1), pack_str("an integer key");
	msgpack_pack_int(&pk, -5), pack_str("a negative one");
	pack_str("a"), msgpack_pack_map(&pk, 1), pack_str("a"), msgpack_pack_int(&pk, 1);
	pack_str("list"), msgpack_pack_array(&pk, 2);
	msgpack_pack_map(&pk, 1), pack_str("k"), msgpack_pack_int(&pk, 1);
	msgpack_pack_map(&pk, 1), pack_str("k"), msgpack_pack_int(&pk, 2);
	is_str(verdict(), "OK",
	       "nil, booleans, integers, finite floats, str (any bytes), bin, arrays, maps "
	       "with string and integer keys; the same key in different maps");

	static const char *const scalars[] = {"\xc0", "\x01", "\xa1x", "\xcb\0\0\0\0\0\0\0\0",
					      "\x90"};
	static const size_t lens[] = {1, 1, 2, 9, 1};
	for (int i = 0; i < 5; i++)
		ok(ml_msgpack_check_value(scalars[i], lens[i], "data") == 0, "scalar %d alone", i);
}

static void test_values_refused(void)
{
	pk_reset();
	pack_ext5();
	is_str(verdict(),
	       "data is an ext value (type 5), which has no JSON or Lua form; send the bytes as "
	       "bin or a string",
	       "ext at the root");

	pk_reset();
	msgpack_pack_map(&pk, 2);
	pack_str("n"), msgpack_pack_int(&pk, 1);
	pack_str("items"), msgpack_pack_array(&pk, 3);
	msgpack_pack_int(&pk, 1), msgpack_pack_int(&pk, 2);
	msgpack_pack_map(&pk, 2), pack_str("ok"), msgpack_pack_true(&pk), pack_str("blob");
	pack_ext5();
	ok(!strncmp(verdict(), "data.items[3].blob is an ext value (type 5)", 43),
	   "nested ext: its path, arrays counted from 1: %s", verdict());

	pk_reset();
	msgpack_pack_array(&pk, 2), msgpack_pack_int(&pk, 0), msgpack_pack_double(&pk, NAN);
	is_str(verdict(), "data[2] is NaN, which JSON cannot carry; send null or a finite number",
	       "NaN");
	pk_reset();
	msgpack_pack_map(&pk, 1), pack_str("x"), msgpack_pack_float(&pk, INFINITY);
	ok(!strncmp(verdict(), "data.x is infinity, which", 25), "float 32 infinity: %s",
	   verdict());
	pk_reset();
	msgpack_pack_map(&pk, 1), pack_str("a b"), msgpack_pack_map(&pk, 1);
	msgpack_pack_int(&pk, 5), msgpack_pack_double(&pk, -INFINITY);
	ok(!strncmp(verdict(), "data[\"a b\"][5] is -infinity", 27),
	   "keys that are not names are quoted, integer keys bare: %s", verdict());

	/* The structure-only check does not apply these rules. */
	ok(ml_msgpack_check(sbuf.data, sbuf.size) == 0, "ml_msgpack_check still accepts them");
	ok(ml_msgpack_check_value(sbuf.data, sbuf.size, NULL) == -1 &&
	       !strncmp(ml_diag_last(), "value[\"a b\"]", 12),
	   "no name: \"value\"");
}

static void test_keys_refused(void)
{
	static const struct {
		const char *key; /* msgpack */
		size_t len;
		const char *what;
	} keys[] = {
	    {"\xc0", 1, "nil"},
	    {"\xc3", 1, "a boolean (true)"},
	    {"\xcb\x40\x04\0\0\0\0\0\0", 9, "a float (2.5)"},
	    {"\xc4\x01x", 3, "binary (bin)"},
	    {"\x90", 1, "an array"},
	    {"\x80", 1, "a map"},
	    {"\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9, "an integer above 2^63 - 1"},
	    {"\xd4\x01\x00", 3, "an ext value"},
	};
	pk_reset();
	msgpack_pack_map(&pk, 1), pack_str("a\xff"), msgpack_pack_nil(&pk);
	is_str(verdict(),
	       "data has a key that is not UTF-8 text (\"a\\xff\"); map keys must be UTF-8 "
	       "strings or integers",
	       "a key that is not UTF-8: JSON would show U+FFFD for its bad byte");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char want[200];
		pk_reset();
		msgpack_pack_map(&pk, 1), pack_str("m"), msgpack_pack_map(&pk, 1);
		msgpack_sbuffer_write(&sbuf, keys[i].key, keys[i].len);
		msgpack_pack_int(&pk, 1);
		snprintf(want, sizeof(want),
			 "data.m has a key that is %s; map keys must be strings or integers",
			 keys[i].what);
		is_str(verdict(), want, "a key that is %s", keys[i].what);
	}
}

static void test_keys_twice(void)
{
	pk_reset();
	msgpack_pack_map(&pk, 2), pack_str("a"), msgpack_pack_int(&pk, 1);
	pack_str("a"), msgpack_pack_int(&pk, 2);
	is_str(verdict(), "data has the key \"a\" twice; a key may appear once in a map",
	       "a string key twice");
	pk_reset();
	msgpack_pack_map(&pk, 3), msgpack_pack_int(&pk, 1), msgpack_pack_nil(&pk);
	msgpack_pack_int(&pk, 2), msgpack_pack_nil(&pk);
	msgpack_pack_int(&pk, 1), msgpack_pack_nil(&pk);
	is_str(verdict(), "data has the key 1 twice; a key may appear once in a map",
	       "an integer key twice");
	pk_reset();
	msgpack_pack_map(&pk, 2), pack_str("-7"), msgpack_pack_nil(&pk);
	msgpack_pack_int(&pk, -7), msgpack_pack_nil(&pk);
	is_str(verdict(),
	       "data has the keys -7 and \"-7\", which JSON shows as the same key; keep one",
	       "an integer and its text: JSON would show one key twice");
	pk_reset();
	msgpack_pack_map(&pk, 1), pack_str("x"), msgpack_pack_array(&pk, 2);
	msgpack_pack_map(&pk, 1), pack_str("n"), msgpack_pack_int(&pk, 1);
	msgpack_pack_map(&pk, 3), pack_str("n"), msgpack_pack_int(&pk, 1);
	pack_str("m"), msgpack_pack_map(&pk, 1), pack_str("n"), msgpack_pack_int(&pk, 1);
	pack_str("n"), msgpack_pack_int(&pk, 2);
	is_str(verdict(), "data.x[2] has the key \"n\" twice; a key may appear once in a map",
	       "the path names the map; a nested map between the two does not hide them");

	/* Maps larger than the pairwise limit and the key stack's first room. */
	pk_reset();
	msgpack_pack_map(&pk, 1000);
	for (int i = 0; i < 1000; i++)
		msgpack_pack_int(&pk, i), msgpack_pack_int(&pk, i);
	is_str(verdict(), "OK", "1000 different integer keys");
	pk_reset();
	msgpack_pack_map(&pk, 1001);
	for (int i = 0; i < 1000; i++)
		msgpack_pack_int(&pk, i), msgpack_pack_int(&pk, i);
	pack_str("500"), msgpack_pack_nil(&pk);
	is_str(verdict(),
	       "data has the keys 500 and \"500\", which JSON shows as the same key; keep one",
	       "one repeat among 1001 keys");
	pk_reset();
	msgpack_pack_array(&pk, 40);
	for (int i = 0; i < 40; i++) {
		msgpack_pack_map(&pk, 40);
		for (int k = 0; k < 40; k++) {
			char key[8];
			snprintf(key, sizeof(key), "k%d", k);
			pack_str(key), msgpack_pack_int(&pk, k);
		}
	}
	is_str(verdict(), "OK", "40 maps of the same 40 keys");
}

static void test_paths(void)
{
	/* 60 levels of {"level_name": ...}: the message keeps the head and tail of the path. */
	pk_reset();
	for (int i = 0; i < 60; i++)
		msgpack_pack_map(&pk, 1), pack_str("level_name");
	pack_ext5();
	const char *m = verdict();
	ok(!strncmp(m, "data.level_name.level_name", 26) && strstr(m, "...") &&
	       strstr(m, ".level_name is an ext value") && strlen(m) < 300,
	   "a deep path is shortened in the middle: %s", m);

	pk_reset();
	msgpack_pack_map(&pk, 1), pack_str("x\"y\n"), pack_ext5();
	ok(!strncmp(verdict(), "data[\"x\\\"y\\x0a\"] is an ext", 25), "odd bytes escaped: %s",
	   verdict());
}

static void test_structure(void)
{
	ok(ml_msgpack_check_value("\x92\x01", 2, "data") == -1, "a truncated array");
	is_str(ml_diag_last(),
	       "data is not valid msgpack: the input ends at byte 2, inside an array or map that "
	       "announced more elements",
	       "the field is named");
	ok(ml_msgpack_check_value("\x01\x02", 2, "meta") == -1 &&
	       !strncmp(ml_diag_last(), "meta is not valid msgpack: 1 more byte follows", 46),
	   "a trailing byte: %s", ml_diag_last());
	char deep[70];
	memset(deep, 0x91, sizeof(deep));
	deep[64] = (char)0x90;
	ok(ml_msgpack_check_value(deep, 65, "data") == -1 &&
	       !strcmp(ml_diag_last(),
		       "data is not valid msgpack: the fixarray at byte 64 nests deeper than "
		       "64 levels"),
	   "65 levels: %s", ml_diag_last());
	deep[63] = (char)0x90;
	ok(ml_msgpack_check_value(deep, 64, "data") == 0, "64 levels are fine");
}

/* More maps with small string and integer keys. */
static unsigned char more_maps(unsigned char b, uint64_t r)
{
	return r % 5 ? b : (unsigned char)(r % 2 ? 0x82 : 0xa1);
}

/*
 * Random bytes: whatever the check accepts, every reader can show, and JSON carries
 * it back to something the log accepts again (what a reader gets, it can append).
 */
static void test_random(void)
{
	uint64_t x = 0x2545f4914f6cdd1du;
	int accepted = 0, structure = 0, shown = 0, again = 0;
	const int rounds = 300000;
	struct ml_buf json = {0}, mp = {0};
	for (int i = 0; i < rounds; i++) {
		size_t n;
		unsigned char *p = random_msgpack(&x, 24, &n, more_maps);
		if (ml_msgpack_check_value(p, n, "data") != 0) {
			free(p);
			continue;
		}
		accepted++;
		structure += ml_msgpack_check(p, n) == 0;
		json.len = mp.len = 0;
		if (ml_msgpack_to_json(p, n, &json) == 0) {
			shown++;
			again += ml_json_to_msgpack(json.data, json.len, &mp) == 0 &&
				 ml_msgpack_check_value(mp.data, mp.len, "data") == 0;
		}
		free(p);
	}
	ml_buf_free(&json), ml_buf_free(&mp);
	ok(accepted > 5000, "(%d of %d accepted)", accepted, rounds);
	is_int(structure, accepted, "each is well-formed");
	is_int(shown, accepted, "each converts to JSON");
	is_int(again, accepted, "and that JSON reads back into a value the log stores");
}

/* One value of a map that is mostly of the shape the check takes in one pass. */
static void put_value(struct ml_buf *b, uint64_t r)
{
	static const char *const values[] = {
	    "\x05",
	    "\xe0",
	    "\xc0",
	    "\xc3",
	    "\xa3\x61\x62\x63",
	    "\xd9\x03xyz",
	    "\xcd\x01\x02",
	    "\xd2\xff\xff\xff\xfe",
	    "\xca\x3f\x80\x00\x00",		    /* 1.0f */
	    "\xca\x7f\xc0\x00\x00",		    /* NaN */
	    "\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", /* infinity */
	    "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", /* 1.0 */
	    "\xd4\x01\x02",			    /* fixext 1 */
	    "\xc4\x02\x00\x01",			    /* bin 8 */
	    "\x81\xa1k\x01",			    /* a map */
	    "\x92\x01\x02",			    /* an array */
	    "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", /* 2^64-1 */
	};
	static const size_t sizes[] = {1, 1, 1, 1, 4, 5, 3, 5, 5, 5, 9, 9, 3, 4, 4, 3, 9};
	size_t i = r % (sizeof(sizes) / sizeof(sizes[0]));
	ml_buf_add(b, values[i], sizes[i]);
}

/* A key: mostly short printable names, now and then one twice, not ASCII, or not a string. */
static void put_key(struct ml_buf *b, uint64_t r, int i)
{
	static const char *const keys[] = {"a",
					   "b",
					   "amount",
					   "note",
					   "",
					   "k\x1f",
					   "\xc3\xa9t\xc3\xa9",
					   "x\x7f",
					   "a-long-key-of-twenty"};
	switch (r % 12) {
	case 0:
		ml_buf_add(b, "\x07", 1); /* an integer key */
		return;
	case 1:
		ml_buf_add(b, "\xd9\x01z", 3); /* str 8 */
		return;
	default: {
		const char *k = r % 5 == 0 ? keys[(r >> 8) % 9] : NULL;
		char own[4];
		if (k == NULL) {
			snprintf(own, sizeof(own), "k%d", i);
			k = own;
		}
		size_t n = strlen(k);
		uint8_t head = (uint8_t)(0xa0 | n);
		ml_buf_add(b, &head, 1);
		ml_buf_add(b, k, n);
	}
	}
}

/*
 * The check takes a map of scalars with short ASCII keys in one pass, and every
 * other value through its walk. Both must agree: a value inside an array of one
 * is refused exactly when the value alone is (the array always takes the walk).
 */
static void test_one_pass_agrees(void)
{
	uint64_t x = 0x9e3779b97f4a7c15u;
	int same = 0, accepted = 0;
	const int rounds = 200000;
	struct ml_buf b = {0}, wrapped = {0};
	for (int round = 0; round < rounds; round++) {
		b.len = 0;
		int pairs = (int)(xorshift(&x) % 16);
		uint8_t head = (uint8_t)(0x80 | pairs);
		ml_buf_add(&b, &head, 1);
		for (int i = 0; i < pairs; i++) {
			put_key(&b, xorshift(&x), i);
			put_value(&b, xorshift(&x));
		}
		uint64_t r = xorshift(&x);
		if (r % 10 == 0 && b.len > 1) /* cut short */
			b.len -= 1 + (r >> 8) % (b.len - 1);
		else if (r % 10 == 1) /* a byte more */
			ml_buf_add(&b, "\x01", 1);
		else if (r % 10 == 2) /* a byte changed */
			b.data[(r >> 8) % b.len] = (char)(r >> 16);
		unsigned char *exact = malloc(b.len); /* of its exact size, for ASan */
		memcpy(exact, b.data, b.len);
		wrapped.len = 0;
		ml_buf_add(&wrapped, "\x91", 1);
		ml_buf_add(&wrapped, b.data, b.len);
		int alone = ml_msgpack_check_value(exact, b.len, "data") == 0;
		int inside = ml_msgpack_check_value(wrapped.data, wrapped.len, "data") == 0;
		same += alone == inside;
		accepted += alone;
		free(exact);
	}
	ml_buf_free(&b), ml_buf_free(&wrapped);
	is_int(same, rounds, "a map alone and inside an array are taken or refused alike");
	ok(accepted > rounds / 20 && accepted < rounds - rounds / 20, "(%d of %d taken)", accepted,
	   rounds);
}

int main(void)
{
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	test_accepted();
	test_values_refused();
	test_keys_refused();
	test_keys_twice();
	test_paths();
	test_structure();
	test_random();
	test_one_pass_agrees();
	msgpack_sbuffer_destroy(&sbuf);
	return done_testing();
}
