/*
 * test_route.c - stream patterns and filters (the rules of lua/moonlog/filter.lua).
 * (The wire's msgpack framing is the codec's: test_msgpack.c.)
 */
#include <lauxlib.h>
#include <lualib.h>

#include <moonlog/route.h>

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

int main(void)
{
	plan(4);
	patterns();
	return done_testing();
}
