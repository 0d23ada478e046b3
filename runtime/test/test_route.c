/*
 * test_route.c - stream patterns and filters (the rules of lua/moonlog/filter.lua),
 * and the wire's msgpack framing: complete, incomplete and malformed input.
 */
#include <lauxlib.h>
#include <lualib.h>

#include <moonlog/route.h>

#include <moonlog/msgpack.h>
#include "test/unit.h"

/* The cases of spec/data/stream_patterns.lua, which the Lua rules are held to as well. */
static void shared_cases(void)
{
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	if (luaL_dofile(L, ML_SOURCE_DIR "/spec/data/stream_patterns.lua") != LUA_OK) {
		ok(0, "spec/data/stream_patterns.lua loads: %s", lua_tostring(L, -1));
		lua_close(L);
		return;
	}
	int n = 0, wrong = 0;
	lua_getfield(L, -1, "matches");
	for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TTABLE; i++, n++) {
		size_t pn, sn;
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		lua_rawgeti(L, -3, 3);
		const char *p = lua_tolstring(L, -3, &pn), *s = lua_tolstring(L, -2, &sn);
		int want = lua_toboolean(L, -1);
		struct ml_filter *f = ml_filter_new();
		ml_filter_add_stream(f, p, pn);
		if (ml_pattern_match(p, pn, s, sn) != want ||
		    ml_filter_match_stream(f, s, sn) != want) {
			printf("# \"%s\" %s \"%s\"\n", p, want ? "should take" : "should not take",
			       s);
			wrong++;
		}
		ml_filter_free(f);
		lua_pop(L, 4);
	}
	lua_pop(L, 2);
	ok(n > 20 && wrong == 0, "%d cases of spec/data/stream_patterns.lua, %d wrong", n, wrong);
	n = wrong = 0;
	lua_getfield(L, -1, "invalid");
	for (lua_Integer i = 1; lua_rawgeti(L, -1, i) == LUA_TTABLE; i++, n++) {
		size_t pn;
		lua_rawgeti(L, -1, 1);
		const char *p = lua_tolstring(L, -1, &pn);
		wrong += ml_pattern_check(p, pn) == 0;
		lua_pop(L, 2);
	}
	ok(n >= 3 && wrong == 0, "its %d invalid patterns are refused (%d taken)", n, wrong);
	lua_close(L);
}

static void patterns(void)
{
	shared_cases();
	struct ml_filter *f = ml_filter_new();
	ml_filter_add_stream(f, "order", 5);
	ml_filter_add_stream(f, "account-*", 9);
	ok(ml_filter_match(f, "order-1", 7, "X", 1) && ml_filter_match(f, "account-2", 9, "Y", 1) &&
	       !ml_filter_match(f, "user-1", 6, "X", 1),
	   "a filter takes any of its patterns");
	ml_filter_add_type(f, "Paid", 4);
	ok(ml_filter_match(f, "order-1", 7, "Paid", 4) && !ml_filter_match(f, "order-1", 7, "X", 1),
	   "types narrow a filter");
	ml_filter_free(f);
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
	ok(ml_msgpack_frame((const uint8_t *)"\xdd\xff\xff\xff\xff", 5, &len) == 1,
	   "a huge announced array is only incomplete (the size limit cuts it)");

	struct ml_msgpack_reader r;
	ml_msgpack_reader_init(&r, b.data, full);
	uint32_t n;
	uint64_t id, zero;
	const char *s;
	uint32_t sl;
	ok(ml_msgpack_get_array(&r, &n) == 0 && n == 4 && ml_msgpack_get_uint(&r, &zero) == 0 &&
	       ml_msgpack_get_uint(&r, &id) == 0 && id == 70000 &&
	       ml_msgpack_get_str(&r, &s, &sl) == 0 && sl == 6,
	   "the reader walks it back");
	ok(ml_msgpack_get_uint(&r, &id) != 0, "a type mismatch fails");

	struct ml_buf ints = {0};
	int64_t vals[] = {0, -1, -33, 127, 128, -129, 65536, INT64_MIN, INT64_MAX};
	for (size_t i = 0; i < 9; i++)
		ml_msgpack_put_int(&ints, vals[i]);
	struct ml_msgpack_reader ir;
	ml_msgpack_reader_init(&ir, ints.data, ints.len);
	int same = 1;
	for (size_t i = 0; i < 9; i++) {
		int64_t v;
		same &= ml_msgpack_get_int(&ir, &v) == 0 && v == vals[i];
	}
	ok(same, "integers round-trip");

	/* The heads framed inline: every width of uint and int, and a str8. */
	struct ml_buf arr = {0};
	ml_msgpack_put_array(&arr, 12);
	ml_buf_add(&arr, ints.data, ints.len);
	ml_msgpack_put_uint(&arr, 200);
	ml_msgpack_put_uint(&arr, 1000);
	ml_msgpack_put_str(&arr, big, 40);
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
	   "uints of every width and a str8: whole, every prefix incomplete, resumable");
	ml_buf_free(&arr);
	ml_buf_free(&ints);
	ml_buf_free(&b);
}

int main(void)
{
	plan(14);
	patterns();
	framing();
	return done_testing();
}
