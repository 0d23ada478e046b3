/*
 * test_codec_lua.c - msgpack <-> Lua values: a seeded property test of random
 * nested values, the exact encodings, the decoding rules, the refusals and
 * their paths, Lua stack balance, and the Lua module.
 */
#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <msgpack.h>

#include "unit.h"

static lua_State *L;

static int has(const char *text, const char *part)
{
	return strstr(text, part) != NULL;
}

/* ---- random values ---- */

static uint64_t rng = 0x2545f4914f6cdd1du;

static uint64_t rnd(void)
{
	rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1du;
}

static void gen_int(void)
{
	static const int64_t edges[] = {
	    0,	       1,   -1,	 127,  128,  255,    256,    65535,	65536,		 UINT32_MAX,
	    1ll << 32, -32, -33, -128, -129, -32768, -32769, INT32_MIN, INT32_MIN - 1ll, INT64_MAX,
	    INT64_MIN,
	};
	uint64_t r = rnd();
	switch (r % 4) {
	case 0:
		lua_pushinteger(L, edges[(r >> 8) % (sizeof(edges) / sizeof(edges[0]))]);
		break;
	case 1:
		lua_pushinteger(L, (int64_t)(r >> 2) >> (r >> 58));
		break; /* any magnitude */
	case 2:
		lua_pushinteger(L, (int64_t)(r >> 40) - (1 << 23));
		break;
	default:
		lua_pushinteger(L, (int64_t)rnd());
		break;
	}
}

static double gen_double(void)
{
	static const double special[] = {0.0,	-0.0,	1.0,	  0.1,	     -2.5,
					 1e300, 5e-324, INFINITY, -INFINITY, NAN};
	uint64_t r = rnd();
	if (r % 3 == 0)
		return special[(r >> 8) % 10];
	if (r % 3 == 1)
		return (double)(int64_t)(r >> 20) / 1024.0;
	uint64_t bits = rnd();
	double d;
	memcpy(&d, &bits, 8);
	return d;
}

static void gen_string(void)
{
	uint64_t r = rnd();
	size_t n = r % 16 == 0 ? r >> 8 & 511 : r % 200 == 1 ? 70000 : r >> 8 & 31;
	char *s = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		s[i] = (char)(r % 3 == 0 ? rnd() : 'a' + rnd() % 26); /* zeros included */
	lua_pushlstring(L, s, n);
	free(s);
}

static void gen_value(int depth);

static void gen_key(void)
{
	uint64_t r = rnd() % 4;
	if (r <= 1) {
		gen_string();
	} else if (r == 2) {
		gen_int();
	} else {
		double d = gen_double();
		lua_pushnumber(L, isnan(d) ? 0.25 : d); /* a NaN key would raise */
	}
}

static void gen_table(int depth)
{
	uint64_t r = rnd() % 6, n = 1 + rnd() % 8;
	if (r == 0) {
		lua_newtable(L); /* empty: encodes as a map */
	} else if (r == 1) {
		lua_newtable(L);
		ml_lua_push_array_mt(L);
		lua_setmetatable(L, -2);
	} else if (r <= 3) {
		lua_createtable(L, (int)n, 0);
		for (uint64_t i = 1; i <= n; i++) {
			gen_value(depth + 1);
			lua_rawseti(L, -2, (lua_Integer)i);
		}
	} else {
		lua_newtable(L);
		for (uint64_t i = 0; i < n; i++) {
			gen_key();
			gen_value(depth + 1);
			lua_rawset(L, -3);
		}
	}
}

/* Any value but nil (nil inside a table is no entry at all). */
static void gen_value(int depth)
{
	uint64_t r = rnd() % (depth >= 6 ? 5 : 8);
	switch (r) {
	case 0:
		lua_pushboolean(L, rnd() & 1);
		break;
	case 1:
	case 2:
		gen_int();
		break;
	case 3:
		lua_pushnumber(L, gen_double());
		break;
	case 4:
		gen_string();
		break;
	default:
		gen_table(depth);
		break;
	}
}

/* ---- deep comparison ---- */

static int same(int a, int b);

static int same_table(int a, int b)
{
	int na = 0, nb = 0, eq = 1;
	lua_pushnil(L);
	while (eq && lua_next(L, a)) {
		na++;
		lua_pushvalue(L, -2);
		lua_rawget(L, b);
		eq = same(lua_gettop(L) - 1, lua_gettop(L));
		lua_pop(L, 2);
	}
	if (!eq) {
		lua_pop(L, 1);
		return 0;
	}
	lua_pushnil(L);
	while (lua_next(L, b)) {
		nb++;
		lua_pop(L, 1);
	}
	return na == nb;
}

static int same(int a, int b)
{
	a = lua_absindex(L, a), b = lua_absindex(L, b);
	if (lua_type(L, a) != lua_type(L, b))
		return 0;
	switch (lua_type(L, a)) {
	case LUA_TNIL:
		return 1;
	case LUA_TBOOLEAN:
		return lua_toboolean(L, a) == lua_toboolean(L, b);
	case LUA_TNUMBER: {
		if (lua_isinteger(L, a) != lua_isinteger(L, b))
			return 0;
		if (lua_isinteger(L, a))
			return lua_tointeger(L, a) == lua_tointeger(L, b);
		double x = lua_tonumber(L, a), y = lua_tonumber(L, b);
		return memcmp(&x, &y, 8) == 0; /* -0.0 and NaN exactly */
	}
	case LUA_TSTRING: {
		size_t n, m;
		const char *s = lua_tolstring(L, a, &n), *t = lua_tolstring(L, b, &m);
		return n == m && memcmp(s, t, n) == 0;
	}
	case LUA_TTABLE:
		return same_table(a, b);
	default:
		return 0;
	}
}

/* ---- helpers ---- */

/* 1 if msgpack-c reads it and packs it back byte for byte: the encoding is the smallest. */
static int canonical(const char *buf, size_t len)
{
	msgpack_unpacked u;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t off = 0;
	int same_bytes = 0;
	msgpack_unpacked_init(&u);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (msgpack_unpack_next(&u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len) {
		msgpack_pack_object(&pk, u.data);
		same_bytes = sb.size == len && memcmp(sb.data, buf, len) == 0;
	}
	msgpack_sbuffer_destroy(&sb);
	msgpack_unpacked_destroy(&u);
	return same_bytes;
}

/* Runs a chunk that returns one value and leaves it on the stack. */
static void eval(const char *chunk)
{
	if (luaL_loadstring(L, chunk) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
		printf("# lua error: %s\n", lua_tostring(L, -1));
		lua_pop(L, 1);
		lua_pushnil(L);
	}
}

/* The msgpack of the value a chunk returns, as hex; or "ERROR: <diag>". */
static const char *hex_of(const char *chunk)
{
	static char text[600];
	struct ml_buf b = {0};
	eval(chunk);
	int top = lua_gettop(L);
	if (ml_lua_to_msgpack(L, -1, &b) != 0)
		snprintf(text, sizeof(text), "ERROR: %s", ml_diag_last());
	else
		for (size_t i = 0; i < b.len && i < 250; i++)
			snprintf(text + 2 * i, 3, "%02x", (unsigned char)b.data[i]);
	if (lua_gettop(L) != top)
		snprintf(text, sizeof(text), "STACK CHANGED");
	lua_pop(L, 1);
	ml_buf_free(&b);
	return text;
}

/* The diag of encoding what a chunk returns, checking the stack and the buffer stay put. */
static const char *refusal(const char *chunk, const char *name)
{
	static char text[600];
	struct ml_buf b = {0};
	ml_buf_add(&b, "keep", 4);
	eval(chunk);
	int top = lua_gettop(L);
	int rc = ml_lua_to_msgpack_named(L, top, &b, name);
	snprintf(text, sizeof(text), "%s", rc == 0 ? "ENCODED" : ml_diag_last());
	if (lua_gettop(L) != top || b.len != 4 || ml_diag_code() != ML_ERR_USAGE)
		snprintf(text, sizeof(text), "STACK OR BUFFER CHANGED");
	lua_pop(L, 1);
	ml_buf_free(&b);
	return text;
}

/* ---- the tests ---- */

static void test_property(void)
{
	const int rounds = 5000;
	int encoded = 0, valid = 0, equal = 0, smallest = 0, balanced = 0;
	struct ml_buf b = {0};
	for (int i = 0; i < rounds; i++) {
		int top = lua_gettop(L);
		gen_table(0);
		b.len = 0;
		encoded += ml_lua_to_msgpack(L, -1, &b) == 0;
		valid += ml_msgpack_check(b.data, b.len) == 0;
		smallest += canonical(b.data, b.len);
		if (ml_lua_push_msgpack(L, b.data, b.len) == 0)
			equal += same(-2, -1);
		balanced += lua_gettop(L) == top + 2;
		lua_settop(L, top);
	}
	ml_buf_free(&b);
	is_int(encoded, rounds, "%d random nested values encode", rounds);
	is_int(valid, rounds, "the validator accepts every encoding");
	is_int(smallest, rounds, "msgpack-c packs each back to the same bytes (smallest forms)");
	is_int(equal, rounds, "each decodes to an equal value");
	is_int(balanced, rounds, "the stack holds exactly the value and its copy");
	lua_gc(L, LUA_GCCOLLECT);
}

static void test_encodings(void)
{
	static const struct {
		const char *chunk, *hex;
	} cases[] = {
	    {"return 0", "00"},
	    {"return 127", "7f"},
	    {"return 128", "cc80"},
	    {"return 255", "ccff"},
	    {"return 256", "cd0100"},
	    {"return 65536", "ce00010000"},
	    {"return 1 << 32", "cf0000000100000000"},
	    {"return -1", "ff"},
	    {"return -32", "e0"},
	    {"return -33", "d0df"},
	    {"return -129", "d1ff7f"},
	    {"return -32769", "d2ffff7fff"},
	    {"return math.mininteger", "d38000000000000000"},
	    {"return math.maxinteger", "cf7fffffffffffffff"},
	    {"return 1.0", "cb3ff0000000000000"},
	    {"return 0.5", "cb3fe0000000000000"},
	    {"return 'a\\0b'", "a3610062"},
	    {"return nil", "c0"},
	    {"return true", "c3"},
	    {"return {}", "80"},
	    {"return setmetatable({}, {__array = true})", "90"},
	    {"return {1, 2, 3}", "93010203"},
	    {"return setmetatable({1, 2, x = 3}, {__array = true})", "920102"},
	    {"return {1, 2, x = 3}", ""}, /* a map of 3: checked below */
	    {"return {[1] = 1, [3] = 3}", ""},
	    {"return {[2] = 'b'}", "8102a162"},
	    {"return {[1.5] = 1}", "81cb3ff800000000000001"},
	    {"return {{}, {{}}}", "92809180"},
	    {"return setmetatable({}, {__array = false})", "80"},
	    {"return setmetatable({1}, setmetatable({__array = 1}, {__index = error}))", "9101"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = hex_of(cases[i].chunk);
		if (cases[i].hex[0])
			is_str(got, cases[i].hex, "%s", cases[i].chunk);
		else
			ok(got[0] == '8', "%s is a map: %s", cases[i].chunk, got);
	}
	ok(!strncmp(hex_of("return {(' '):rep(16)}"), "91b0", 4), "fixstr up to 31");
	ok(!strncmp(hex_of("return {('x'):rep(32)}"), "91d920", 6), "str 8 from 32");
	ok(!strncmp(hex_of("local t = {} for i = 1, 16 do t[i] = i end return t"), "dc0010", 6),
	   "array 16");
	ok(!strncmp(hex_of("local t = {} for i = 1, 16 do t['k'..i] = i end return t"), "de0010",
		    6),
	   "map 16: the header widened after the walk");
	ok(!strncmp(hex_of("local t = {} for i = 1, 70000 do t['k'..i] = i end return t"),
		    "df00011170", 10),
	   "map 32");
}

/* The number of entries of the table at idx. */
static int entries(int idx)
{
	int n = 0;
	idx = lua_absindex(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		n++;
	}
	return n;
}

static void test_decoding(void)
{
	int top = lua_gettop(L);
	ok(ml_lua_push_msgpack(L, "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9) == 0 &&
	       !lua_isinteger(L, -1) && lua_tonumber(L, -1) == 18446744073709551615.0,
	   "a uint64 above int64 max becomes a float");
	ok(ml_lua_push_msgpack(L, "\xd3\x80\0\0\0\0\0\0\0", 9) == 0 && lua_isinteger(L, -1) &&
	       lua_tointeger(L, -1) == INT64_MIN,
	   "int64 min stays an integer");
	ok(ml_lua_push_msgpack(L, "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9) == 0 &&
	       lua_isinteger(L, -1) && lua_tointeger(L, -1) == INT64_MAX,
	   "a uint 64 up to int64 max stays an integer");
	ok(ml_lua_push_msgpack(L, "\xca\x3f\xc0\0\0", 5) == 0 && !lua_isinteger(L, -1) &&
	       lua_tonumber(L, -1) == 1.5,
	   "float 32 becomes a number");
	ok(ml_lua_push_msgpack(L, "\xc4\x03\x61\x00\x62", 5) == 0 && lua_rawlen(L, -1) == 3 &&
	       !memcmp(lua_tostring(L, -1), "a\0b", 3),
	   "binary becomes a string");
	ok(ml_lua_push_msgpack(L, "\x93\x01\xc0\x03", 4) == 0 &&
	       lua_rawgeti(L, -1, 1) == LUA_TNUMBER && lua_rawgeti(L, -2, 2) == LUA_TNIL &&
	       lua_rawgeti(L, -3, 3) == LUA_TNUMBER,
	   "nil in an array leaves a hole");
	lua_settop(L, top);

	ok(ml_lua_push_msgpack(L, "\x90", 1) == 0 && lua_getmetatable(L, -1), "[] gets array_mt");
	ml_lua_push_array_mt(L);
	ok(lua_rawequal(L, -1, -2), "the shared one");
	lua_settop(L, top + 1);
	struct ml_buf b = {0};
	ok(ml_lua_to_msgpack(L, -1, &b) == 0 && b.len == 1 && b.data[0] == (char)0x90,
	   "and it encodes back as []");
	ml_buf_free(&b);
	lua_settop(L, top);

	/* What the log refuses but older logs may hold still decodes (docs/codec.md). */
	ok(ml_lua_push_msgpack(L, "\x92\x01\xd5\x05\x00\xff", 6) == 0 &&
	       lua_rawgeti(L, -1, 2) == LUA_TTABLE && lua_getfield(L, -1, "$ext") == LUA_TNUMBER &&
	       lua_tointeger(L, -1) == 5 && lua_getfield(L, -2, "base64") == LUA_TSTRING &&
	       !strcmp(lua_tostring(L, -1), "AP8="),
	   "an ext value becomes { [\"$ext\"] = 5, base64 = \"AP8=\" }");
	lua_settop(L, top);
	ok(ml_lua_push_msgpack(L, "\x82\xc0\x01\xa1k\x02", 6) == 0 && entries(-1) == 1 &&
	       lua_getfield(L, -1, "k") == LUA_TNUMBER && lua_tointeger(L, -1) == 2,
	   "a map entry with a nil key is left out, the others kept");
	lua_settop(L, top);
	ok(ml_lua_push_msgpack(L, "\x81\xcb\x7f\xf8\0\0\0\0\0\0\x01", 11) == 0 &&
	       lua_type(L, -1) == LUA_TTABLE && entries(-1) == 0,
	   "so is one with a NaN key");
	lua_settop(L, top);

	/* Refusals: each leaves nothing on the stack. */
	static const struct {
		const char *mp;
		size_t len;
		const char *says;
	} bad[] = {
	    {"\x01\x02", 2, "1 more byte follows the object that ends at byte 1"},
	    {"\xdd\x7f\xff\xff\xff\x01", 6, "announces more elements than the 1 bytes left"},
	    {"\xdf\x00\x00\x00\x02\x01\x01\x01", 8, "announces more elements"},
	    {"", 0, "empty"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = ml_lua_push_msgpack(L, bad[i].mp, bad[i].len);
		ok(rc == -1 && lua_gettop(L) == top && has(ml_diag_last(), bad[i].says),
		   "refused, nothing pushed: %s", ml_diag_last());
	}
}

static void test_decode_truncations(void)
{
	struct ml_buf b = {0};
	int top = lua_gettop(L), refused = 0;
	eval("return { amount = 123, currency = 'EUR', note = ('n'):rep(40), ts = 1700000000,"
	     " items = { 1.5, -70000, true, false, { deep = { 'x', {} } } }, [7] = 'seven' }");
	ok(ml_lua_to_msgpack(L, -1, &b) == 0, "a complex value encodes");
	lua_settop(L, top);
	for (size_t n = 0; n < b.len; n++)
		refused += ml_lua_push_msgpack(L, b.data, n) == -1 && lua_gettop(L) == top;
	is_int(refused, b.len, "every truncation of it is refused with nothing pushed");
	ok(ml_lua_push_msgpack(L, b.data, b.len) == 0 && lua_gettop(L) == top + 1,
	   "the whole of it decodes");
	lua_settop(L, top);
	ml_buf_free(&b);

	char deep[70];
	memset(deep, 0x91, sizeof(deep));
	deep[63] = (char)0x90;
	ok(ml_lua_push_msgpack(L, deep, 64) == 0, "64 nested arrays decode");
	lua_settop(L, top);
	deep[63] = (char)0x91, deep[64] = (char)0x90;
	ok(ml_lua_push_msgpack(L, deep, 65) == -1 && lua_gettop(L) == top &&
	       has(ml_diag_last(), "deeper than 64"),
	   "65 are refused");
}

/*
 * Random bytes: decoding succeeds exactly when the validator accepts, ext values and
 * nil keys included (a reader must get past whatever an older log holds).
 */
static void test_decode_random(void)
{
	int top = lua_gettop(L), agree = 0, valid = 0;
	const int rounds = 100000;
	for (int i = 0; i < rounds; i++) {
		size_t n = 1 + rnd() % 20;
		unsigned char *p = malloc(n);
		for (size_t k = 0; k < n; k++) {
			uint64_t r = rnd();
			p[k] = (unsigned char)(r % 3 ? r >> 8 : r % 0x20);
		}
		int mine = ml_msgpack_check(p, n) == 0;
		int rc = ml_lua_push_msgpack(L, p, n);
		agree += (rc == 0 && mine && lua_gettop(L) == top + 1) ||
			 (rc == -1 && lua_gettop(L) == top && !mine);
		valid += mine;
		lua_settop(L, top);
		free(p);
	}
	is_int(agree, rounds, "decoding random bytes agrees with the validator");
	ok(valid > 500, "(%d of them valid)", valid);
	lua_gc(L, LUA_GCCOLLECT);
}

static void test_refusals(void)
{
	is_str(refusal("return {items = {1, 2, {cb = function() end}}}", NULL),
	       "cannot encode a function at value.items[3].cb", "a function, with its path");
	is_str(refusal("return {items = {1, 2, {cb = print}}}", "data"),
	       "cannot encode a function at data.items[3].cb", "the root can be named");
	is_str(refusal("return print", NULL), "cannot encode a function at value", "at the top");
	is_str(refusal("return {f = io.stdout}", NULL), "cannot encode a userdata at value.f",
	       "a userdata");
	is_str(refusal("return {a = {coroutine.create(print)}}", NULL),
	       "cannot encode a thread at value.a[1]", "a thread");
	is_str(refusal("local t = {a = {b = {}}} t.a.b.c = t return t", NULL),
	       "cannot encode a table that contains itself (a cycle) at value.a.b.c", "a cycle");
	is_str(refusal("local t = {} t[1] = t return t", NULL),
	       "cannot encode a table that contains itself (a cycle) at value[1]",
	       "a table that is its own element");
	ok(hex_of("local s = {} return {s, s, {s}}")[0] == '9',
	   "a table met twice but not inside itself is fine");
	is_str(
	    refusal("return {[true] = 1}", NULL),
	    "cannot encode a table with a boolean key (keys must be strings or numbers) at value",
	    "a boolean key");
	is_str(
	    refusal("return {a = {[{}] = 1}}", NULL),
	    "cannot encode a table with a table key (keys must be strings or numbers) at value.a",
	    "a table key");
	is_str(refusal("return {['a b'] = {[2.5] = {['\\0'] = {[-3] = print}}}}", NULL),
	       "cannot encode a function at value[\"a b\"][2.5][\"\\x00\"][-3]",
	       "keys that are not names are quoted");
	/* The message ends where the path does, also after a quoted key (a fuzz find: that
	 * text was not terminated, and the message took along what the heap held after it,
	 * here the end of the refusal before: value["a b"][2.5]["\x00"][-3]). */
	struct ml_buf out = {0};
	ml_buf_add(&out, "keep", 4);
	eval("return {['a b'] = print}");
	ok(ml_lua_to_msgpack(L, -1, &out) == -1, "a function under a quoted key is refused");
	is_str(ml_diag_last(), "cannot encode a function at value[\"a b\"]",
	       "and the message ends with the path");
	lua_pop(L, 1);
	ml_buf_free(&out);
	ok(hex_of("local t = {} for i = 1, 63 do t = {t} end return t")[0] == '9',
	   "64 nested tables encode");
	ok(has(refusal("local t = {} for i = 1, 64 do t = {t} end return t", NULL),
	       "cannot encode tables nested deeper than 64 levels at value[1][1][1]"),
	   "65 are refused: %s", ml_diag_last());

	/* A light userdata, from C. */
	struct ml_buf b = {0};
	int top = lua_gettop(L);
	lua_pushlightuserdata(L, &b);
	ok(ml_lua_to_msgpack(L, -1, &b) == -1 && has(ml_diag_last(), "a userdata at value") &&
	       lua_gettop(L) == top + 1 && b.len == 0,
	   "a light userdata");
	lua_settop(L, top);
	ml_buf_free(&b);
}

static void test_module(void)
{
	lua_pushcfunction(L, ml_luaopen_codec);
	lua_call(L, 0, 1);
	lua_setglobal(L, "codec");
	eval("local c = codec\n"
	     "local v = c.decode(c.encode({a = 1, b = {1, 2, 3}, s = 'x\\0y', f = 0.5}))\n"
	     "assert(math.type(v.a) == 'integer' and #v.b == 3 and v.s == 'x\\0y' and v.f == 0.5)\n"
	     "assert(c.to_json(c.encode({1, 2.5, 'x'})) == '[1,2.5,\"x\"]')\n"
	     "local n = '{\"n\":18446744073709551615}'\n"
	     "assert(c.to_json(c.from_json(n)) == n)\n"
	     "local ok, err = pcall(c.encode, {f = print})\n"
	     "assert(not ok and err == 'cannot encode a function at value.f', err)\n"
	     "ok, err = pcall(c.decode, '\\x92\\x01')\n"
	     "assert(not ok and err:find('invalid msgpack', 1, true), err)\n"
	     "ok, err = pcall(c.from_json, '{')\n"
	     "assert(not ok and err:find('line 1, column 2', 1, true), err)\n"
	     "assert(c.to_json('\\xd4\\x01\\x00') == '{\"$ext\":1,\"base64\":\"AA==\"}')\n"
	     "assert(c.decode('\\xd4\\x01\\x00').base64 == 'AA==')\n"
	     "assert(c.encode(setmetatable({}, c.array_mt)) == '\\x90')\n"
	     "assert(getmetatable(c.decode('\\x90')) == c.array_mt)\n"
	     "assert(c.encode(c.decode('\\x90')) == '\\x90' and c.encode({}) == '\\x80')\n"
	     "local big = ('x'):rep(3000000)\n"
	     "assert(c.decode(c.encode(big)) == big and c.encode(7) == '\\x07')\n"
	     "assert(c.decode(c.encode(nil)) == nil)\n"
	     "return true");
	ok(lua_toboolean(L, -1), "the Lua module: encode, decode, to_json, from_json, array_mt");
	lua_pop(L, 1);
}

int main(void)
{
	L = luaL_newstate();
	luaL_openlibs(L);
	int top = lua_gettop(L);
	test_property();
	test_encodings();
	test_decoding();
	test_decode_truncations();
	test_decode_random();
	test_refusals();
	test_module();
	is_int(lua_gettop(L), top, "the stack is as it was at the start");
	lua_close(L);
	return done_testing();
}
