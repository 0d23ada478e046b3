/*
 * test_msgpack.c - the codec's msgpack reader and writer (moonlog/msgpack.h),
 * which the wire protocol, the host's answers and the command line's client
 * use: the bytes the writer puts at each boundary of each format (the RPC
 * answers depend on them), every header read back, the typed getters, skips,
 * and the framing of messages that arrive in pieces.
 */
#include <moonlog/diag.h>
#include <moonlog/msgpack.h>

#include "test/unit.h"

/* Does b hold exactly the n bytes want? Prints both when not. */
static int holds(struct ml_buf *b, const char *want, size_t n)
{
	int same = b->len == n && memcmp(b->data, want, n) == 0;
	if (!same) {
		printf("#   got     ");
		for (size_t i = 0; i < b->len && i < 12; i++)
			printf(" %02x", (uint8_t)b->data[i]);
		printf("\n#   expected");
		for (size_t i = 0; i < n && i < 12; i++)
			printf(" %02x", (uint8_t)want[i]);
		printf("\n");
	}
	b->len = 0;
	return same;
}

#define HOLDS(b, lit) holds(b, lit, sizeof(lit) - 1)

static void writer_bytes(void)
{
	struct ml_buf b = {0};
	int good = 1;
	ml_msgpack_put_uint(&b, 127), good &= HOLDS(&b, "\x7f");
	ml_msgpack_put_uint(&b, 128), good &= HOLDS(&b, "\xcc\x80");
	ml_msgpack_put_uint(&b, 255), good &= HOLDS(&b, "\xcc\xff");
	ml_msgpack_put_uint(&b, 256), good &= HOLDS(&b, "\xcd\x01\x00");
	ml_msgpack_put_uint(&b, 65535), good &= HOLDS(&b, "\xcd\xff\xff");
	ml_msgpack_put_uint(&b, 65536), good &= HOLDS(&b, "\xce\x00\x01\x00\x00");
	ml_msgpack_put_uint(&b, 0xffffffffu), good &= HOLDS(&b, "\xce\xff\xff\xff\xff");
	ml_msgpack_put_uint(&b, 0x100000000ull), good &= HOLDS(&b, "\xcf\0\0\0\x01\0\0\0\0");
	ml_msgpack_put_uint(&b, UINT64_MAX),
	    good &= HOLDS(&b, "\xcf\xff\xff\xff\xff\xff\xff\xff\xff");
	ok(good, "unsigned integers take the smallest of fixint, uint 8, 16, 32 and 64");

	good = 1;
	ml_msgpack_put_int(&b, 5), good &= HOLDS(&b, "\x05");
	ml_msgpack_put_int(&b, -1), good &= HOLDS(&b, "\xff");
	ml_msgpack_put_int(&b, -32), good &= HOLDS(&b, "\xe0");
	ml_msgpack_put_int(&b, -33), good &= HOLDS(&b, "\xd0\xdf");
	ml_msgpack_put_int(&b, -129), good &= HOLDS(&b, "\xd1\xff\x7f");
	ml_msgpack_put_int(&b, -32769), good &= HOLDS(&b, "\xd2\xff\xff\x7f\xff");
	ml_msgpack_put_int(&b, INT64_MIN), good &= HOLDS(&b, "\xd3\x80\0\0\0\0\0\0\0");
	ml_msgpack_put_int(&b, 200), good &= HOLDS(&b, "\xcc\xc8");
	ok(good,
	   "signed integers: a non-negative one as unsigned, a negative one in the fewest bytes");

	good = 1;
	char s[70000];
	memset(s, 'a', sizeof(s));
	ml_msgpack_put_str(&b, s, 31);
	good &= b.len == 32 && (uint8_t)b.data[0] == 0xbf && memcmp(b.data + 1, s, 31) == 0;
	b.len = 0;
	ml_msgpack_put_str(&b, s, 32);
	good &= b.len == 34 && (uint8_t)b.data[0] == 0xd9 && b.data[1] == 32;
	b.len = 0;
	ml_msgpack_put_str(&b, s, 256);
	good &= b.len == 259 && memcmp(b.data, "\xda\x01\x00", 3) == 0;
	b.len = 0;
	ml_msgpack_put_str(&b, s, 65536);
	good &= b.len == 65541 && memcmp(b.data, "\xdb\0\x01\0\0", 5) == 0 &&
		memcmp(b.data + 5, s, 65536) == 0;
	b.len = 0;
	ml_msgpack_put_cstr(&b, ""), good &= HOLDS(&b, "\xa0");
	ml_msgpack_put_cstr(&b, "abc"), good &= HOLDS(&b, "\xa3"
							  "abc");
	ok(good, "strings: fixstr, str 8, 16 and 32, and their bytes");

	good = 1;
	ml_msgpack_put_array(&b, 15), good &= HOLDS(&b, "\x9f");
	ml_msgpack_put_array(&b, 16), good &= HOLDS(&b, "\xdc\x00\x10");
	ml_msgpack_put_array(&b, 65536), good &= HOLDS(&b, "\xdd\0\x01\0\0");
	ml_msgpack_put_map(&b, 0), good &= HOLDS(&b, "\x80");
	ml_msgpack_put_map(&b, 255), good &= HOLDS(&b, "\xde\x00\xff"); /* no map 8 */
	ml_msgpack_put_map(&b, 65536), good &= HOLDS(&b, "\xdf\0\x01\0\0");
	ml_msgpack_put_nil(&b), good &= HOLDS(&b, "\xc0");
	ml_msgpack_put_bool(&b, 0), good &= HOLDS(&b, "\xc2");
	ml_msgpack_put_bool(&b, 7), good &= HOLDS(&b, "\xc3");
	ml_msgpack_put_double(&b, 1.5), good &= HOLDS(&b, "\xcb\x3f\xf8\0\0\0\0\0\0");
	ok(good, "arrays, maps (no 8-bit form), nil, booleans and doubles");

	/* At a pointer: what ml_msgpack_put_* do, into room reserved once. */
	uint8_t *p = ml_msgpack_room(&b, 64), *start = p;
	p = ml_msgpack_write_str(p, "id", 2);
	p = ml_msgpack_write_uint(p, 300);
	p = ml_msgpack_write_int(p, -2);
	p = ml_msgpack_write_bytes(p, "\x91\xc0", 2);
	ml_msgpack_done(&b, p);
	ok(p - start == 9 && HOLDS(&b, "\xa2"
				       "id\xcd\x01\x2c\xfe\x91\xc0"),
	   "the writers at a pointer return the end of what they wrote");
	ml_buf_free(&b);
}

/* Every format written and read back: a header at a time, then with the typed getters. */
static void reader_headers(void)
{
	struct ml_buf b = {0};
	uint64_t uints[] = {
	    0, 127, 128, 65535, 65536, 0xffffffffull, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1};
	int64_t ints[] = {-1, -32, -33, -128, -129, -32769, INT32_MIN, INT64_MIN};
	for (size_t i = 0; i < 8; i++)
		ml_msgpack_put_uint(&b, uints[i]);
	for (size_t i = 0; i < 8; i++)
		ml_msgpack_put_int(&b, ints[i]);
	ml_buf_add(&b, "\xca\x3f\xc0\x00\x00", 5);	       /* float 32: 1.5 */
	ml_buf_add(&b, "\xc4\x02xy\xc5\x00\x01z", 8);	       /* bin 8, bin 16 */
	ml_buf_add(&b, "\xd4\x05q\xc7\x02\x07rs\xd8\x01", 10); /* fixext 1, ext 8, fixext 16 */
	ml_buf_add(&b, "0123456789abcdef", 16);
	ml_msgpack_put_double(&b, -2.25);
	ml_msgpack_put_str(&b, "hello", 5);
	ml_msgpack_put_map(&b, 70000);

	struct ml_msgpack_reader r;
	struct ml_msgpack_obj o;
	ml_msgpack_reader_init(&r, b.data, b.len);
	int good = 1;
	for (size_t i = 0; i < 8; i++) {
		good &= ml_msgpack_read(&r, &o) == 0 && o.v.u == uints[i];
		good &= o.kind == (uints[i] > INT64_MAX ? ML_MP_UINT : ML_MP_INT);
	}
	for (size_t i = 0; i < 8; i++)
		good &= ml_msgpack_read(&r, &o) == 0 && o.kind == ML_MP_INT && o.v.i == ints[i];
	ok(good, "integers of every width read back, above INT64_MAX as ML_MP_UINT");
	good = ml_msgpack_read(&r, &o) == 0 && o.kind == ML_MP_FLOAT32 && o.v.f == 1.5f;
	good &= ml_msgpack_read(&r, &o) == 0 && o.kind == ML_MP_BIN && o.n == 2 &&
		memcmp(o.ptr, "xy", 2) == 0;
	good &= ml_msgpack_read(&r, &o) == 0 && o.kind == ML_MP_BIN && o.n == 1 && *o.ptr == 'z';
	good &= ml_msgpack_read(&r, &o) == 0 && o.kind == ML_MP_EXT && o.ext_type == 5 &&
		o.n == 1 && *o.ptr == 'q';
	good &= ml_msgpack_read(&r, &o) == 0 && o.kind == ML_MP_EXT && o.ext_type == 7 &&
		o.n == 2 && memcmp(o.ptr, "rs", 2) == 0;
	good &= ml_msgpack_read(&r, &o) == 0 && o.kind == ML_MP_EXT && o.ext_type == 1 &&
		o.n == 16 && memcmp(o.ptr, "0123456789abcdef", 16) == 0;
	good &= ml_msgpack_read(&r, &o) == 0 && o.kind == ML_MP_FLOAT64 && o.v.d == -2.25;
	good &= ml_msgpack_read(&r, &o) == 0 && o.kind == ML_MP_STR && o.n == 5;
	good &= ml_msgpack_read(&r, &o) == 0 && o.kind == ML_MP_MAP && o.n == 70000;
	ok(good && r.p == r.end, "floats, bin, ext and fixext, str and map 32 read back");

	ml_diag_clear();
	const char *s;
	uint32_t n;
	int64_t i;
	uint64_t u;
	int flag;
	ml_msgpack_reader_init(&r, b.data, b.len);
	const uint8_t *at = r.p;
	good = ml_msgpack_get_str(&r, &s, &n) != 0 && ml_msgpack_get_map(&r, &n) != 0 &&
	       ml_msgpack_get_nil(&r) != 0 && ml_msgpack_get_bool(&r, &flag) != 0 && r.p == at;
	ok(good && ml_diag_code() == ML_OK,
	   "a getter of another kind fails and leaves the cursor and the diag alone");
	good = ml_msgpack_get_uint(&r, &u) == 0 && u == 0;
	for (size_t k = 1; k < 7; k++)
		good &= ml_msgpack_get_int(&r, &i) == 0 && (uint64_t)i == uints[k];
	at = r.p;
	good &= ml_msgpack_get_int(&r, &i) != 0 && r.p == at; /* INT64_MAX + 1 */
	good &= ml_msgpack_get_uint(&r, &u) == 0 && u == (uint64_t)INT64_MAX + 1;
	at = r.p;
	good &= ml_msgpack_get_uint(&r, &u) != 0 && r.p == at; /* -1 */
	good &= ml_msgpack_get_int(&r, &i) == 0 && i == -1;
	ok(good, "get_int takes what fits an int64_t, get_uint what fits a uint64_t");
	ml_buf_free(&b);

	ml_buf_add(&b, "\x93\xc0\xc3\x81\xa1k\x92\x01\x02\xa2ok", 12);
	ml_msgpack_reader_init(&r, b.data, b.len);
	const uint8_t *raw;
	size_t len;
	good = ml_msgpack_get_array(&r, &n) == 0 && n == 3 && ml_msgpack_get_nil(&r) == 0 &&
	       ml_msgpack_get_bool(&r, &flag) == 0 && flag == 1;
	good &= ml_msgpack_skip(&r, &raw, &len) == 0 && len == 6 && raw[0] == 0x81;
	good &= ml_msgpack_get_str(&r, &s, &n) == 0 && n == 2 && memcmp(s, "ok", 2) == 0;
	ok(good && r.p == r.end, "skip passes a whole map and gives its bytes");
	ml_msgpack_reader_init(&r, b.data, b.len - 1);
	good = ml_msgpack_skip_n(&r, 2) != 0 && r.p == r.base;
	ok(good && strstr(ml_diag_last(), "fixstr at byte 9 needs 3 bytes but only 2 remain"),
	   "a skip that runs out fails where it was and says where: %s", ml_diag_last());
	ml_buf_free(&b);
}

static void reader_errors(void)
{
	struct ml_msgpack_reader r;
	struct ml_msgpack_obj o;
	ml_msgpack_reader_init(&r, "", 0);
	ok(ml_msgpack_read(&r, &o) != 0 && strstr(ml_diag_last(), "the input is empty"),
	   "nothing to read: %s", ml_diag_last());
	ml_msgpack_reader_init(&r, "\x91\xc1", 2);
	ok(ml_msgpack_read(&r, &o) == 0 && ml_msgpack_read(&r, &o) != 0 && r.p == r.base + 1 &&
	       strstr(ml_diag_last(), "byte 1 is 0xc1, which msgpack never uses"),
	   "0xc1: %s", ml_diag_last());
	ml_msgpack_reader_init(&r, "\xda\x01", 2);
	ok(ml_msgpack_read(&r, &o) != 0 && r.p == r.base &&
	       strstr(ml_diag_last(), "the str 16 at byte 0 needs 3 bytes but only 2 remain"),
	   "a cut header: %s", ml_diag_last());
	ml_msgpack_reader_init(&r, "\xc7\x05\x01xy", 5);
	ok(ml_msgpack_read(&r, &o) != 0 &&
	       strstr(ml_diag_last(), "the ext 8 at byte 0 needs 8 bytes but only 5 remain"),
	   "a cut payload: %s", ml_diag_last());
	ml_msgpack_reader_init(&r, "\x92\x01", 2);
	ok(ml_msgpack_read(&r, &o) == 0 && ml_msgpack_read(&r, &o) == 0 &&
	       ml_msgpack_read(&r, &o) != 0 &&
	       strstr(ml_diag_last(), "ends at byte 2, inside an array or map"),
	   "a container that announced more: %s", ml_diag_last());
}

static void framing(void)
{
	struct ml_buf b = {0};
	ml_msgpack_put_array(&b, 4);
	ml_msgpack_put_uint(&b, 0);
	ml_msgpack_put_uint(&b, 70000);
	ml_msgpack_put_cstr(&b, "append");
	ml_msgpack_put_array(&b, 2);
	ml_msgpack_put_str(&b, "s", 1);
	ml_msgpack_put_map(&b, 1);
	ml_msgpack_put_cstr(&b, "data");
	char big[300];
	memset(big, 'x', sizeof(big));
	ml_msgpack_put_str(&b, big, sizeof(big));
	size_t full = b.len, len;
	ok(ml_msgpack_frame((uint8_t *)b.data, full, &len) == 0 && len == full, "a whole request");
	int cut_ok = 1;
	for (size_t n = 0; n < full; n++)
		cut_ok &= ml_msgpack_frame((uint8_t *)b.data, n, &len) == 1;
	ok(cut_ok, "every prefix of it needs more bytes");
	struct ml_msgpack_walk w = {0, 0};
	int resumed = 0, calls = 0;
	for (size_t n = 0; n <= full && resumed == 0; n++, calls++) /* a byte at a time */
		resumed = ml_msgpack_frame_resume((uint8_t *)b.data, n, &w, &len) == 0;
	ok(resumed && len == full && calls == (int)full + 1,
	   "framed a byte at a time, resuming where it stopped, it ends where it ends");
	ml_buf_add(&b, "\x91", 1);
	ok(ml_msgpack_frame((uint8_t *)b.data, b.len, &len) == 0 && len == full,
	   "the next message is left alone");
	ok(ml_msgpack_frame((const uint8_t *)"\xc1", 1, &len) == -1, "0xc1 is malformed");
	/* Heads read apart from the table (each with a size in its next bytes), in a buffer
	 * longer than 64 KiB: each is sized by what it says, whatever the buffer's length. */
	static const char *const heads[] = {"\xc4\x01", "\xd9\x01", "\xd0", "\xca",
					    "\xcb",	"\xd4\x01", "\xc0"};
	static const size_t head_len[] = {2, 2, 1, 1, 1, 2, 1},
			    object_len[] = {3, 3, 2, 5, 9, 3, 1};
	uint8_t *wide = calloc(70000, 1);
	int sized = 1;
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		memcpy(wide, heads[i], head_len[i]);
		sized &= ml_msgpack_frame(wide, 70000, &len) == 0 && len == object_len[i];
	}
	ok(sized, "an object whose head is read is sized by it in a buffer of 70,000 bytes");
	free(wide);
	ok(ml_msgpack_frame((const uint8_t *)"\xdd\xff\xff\xff\xff", 5, &len) == 1,
	   "a huge announced array is only incomplete (the size limit cuts it)");

	/* Every width of uint and int, a str8, bin, ext and floats, framed whole and in pieces. */
	struct ml_buf arr = {0};
	int64_t vals[] = {0, -1, -33, 127, 128, -129, 65536, INT64_MIN, INT64_MAX};
	ml_msgpack_put_array(&arr, 15);
	for (size_t i = 0; i < 9; i++)
		ml_msgpack_put_int(&arr, vals[i]);
	ml_msgpack_put_uint(&arr, 200);
	ml_msgpack_put_uint(&arr, 1000);
	ml_msgpack_put_str(&arr, big, 40);
	ml_buf_add(&arr, "\xc4\x01z\xd5\x01zz", 7);
	ml_msgpack_put_double(&arr, 0.5);
	size_t alen = arr.len;
	int whole = ml_msgpack_frame((uint8_t *)arr.data, alen, &len) == 0 && len == alen,
	    parts = 1;
	for (size_t k = 0; k < alen; k++)
		parts &= ml_msgpack_frame((uint8_t *)arr.data, k, &len) == 1;
	w = (struct ml_msgpack_walk){0, 0};
	resumed = 0;
	for (size_t k = 0; k <= alen && resumed == 0; k++)
		resumed = ml_msgpack_frame_resume((uint8_t *)arr.data, k, &w, &len) == 0;
	ok(whole && parts && resumed && len == alen,
	   "every width of int, a str8, bin, ext and a double: whole, every prefix "
	   "incomplete, resumable");
	ml_buf_free(&arr);
	ml_buf_free(&b);
}

int main(void)
{
	plan(24);
	writer_bytes();
	reader_headers();
	reader_errors();
	framing();
	return done_testing();
}
