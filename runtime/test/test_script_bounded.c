/*
 * test_script_bounded.c - the bounded library functions scripts get instead of
 * Lua's (runtime/script/bounded.c, pattern.c).
 *
 * First, that they are the same functions: one Lua chunk runs thousands of
 * random calls of string.find, match, gmatch, gsub and rep, and table.insert,
 * remove, move, concat and sort (patterns built from every kind of item, good
 * and malformed; arguments in and out of range) and writes down every result
 * and every error message. It runs once in a state with Lua's own library and
 * once with ours, and the two transcripts must be equal.
 *
 * Then, that they stop: each hostile call, in a script with a short time limit,
 * faults the script with a message that names the function and the line.
 */
#include <lauxlib.h>
#include <lualib.h>

#include <moonlog/diag.h>
#include <moonlog/script.h>

#include "script/script_internal.h"
#include "unit.h"

static const char transcript_chunk[] =
    "local seed, cases = ...\n"
    "math.randomseed(seed)\n"
    "local R = math.random\n"
    "local atoms = { 'a', 'b', 'c', '.', '%a', '%d', '%s', '%w', '%A', '%S', '%p', '%x', '%%',\n"
    "  '%.', '[ab]', '[^a]', '[a-c]', '[%a_]', '[]]', '[^]]', '[%]]', '(', ')', '()', '%1',\n"
    "  '%2', '%0', '%bab', '%b()', '%b', '%f[%w]', '%f[%s]', '%f', '*', '+', '-', '?', '^',\n"
    "  '$', '%', '[', '[a', '%z', ' ', '_', '1', 'x%', '[%' }\n"
    "local chars = { 'a', 'b', 'c', '(', ')', ' ', '1', '_', 'x', '.', '%', ']', '\\0' }\n"
    "local function pattern()\n"
    "  local t = {}\n"
    "  for i = 1, R(0, 7) do t[#t + 1] = atoms[R(#atoms)] end\n"
    "  return table.concat(t)\n"
    "end\n"
    "local function subject()\n"
    "  local t = {}\n"
    "  for i = 1, R(0, 14) do t[#t + 1] = chars[R(#chars)] end\n"
    "  return table.concat(t)\n"
    "end\n"
    "local out = {}\n"
    "local function put(...)\n"
    "  local n = select('#', ...)\n"
    "  local t = { tostring(n) }\n"
    "  for i = 1, n do\n"
    "    local v = select(i, ...)\n"
    "    if type(v) == 'table' then\n"
    "      local e = {}\n"
    "      for k = 1, 10 do e[k] = tostring(v[k]) end\n"
    "      v = '{' .. table.concat(e, ',') .. '}'\n"
    "    end\n"
    "    t[#t + 1] = (math.type(v) or type(v)) .. ':' .. tostring(v)\n"
    "  end\n"
    "  out[#out + 1] = table.concat(t, '|')\n"
    "end\n"
    "local inits = { nil, 1, 2, 0, -1, -3, 5, 100, -100 }\n"
    "local repl_t = { a = 'A', b = false, ['('] = 7, [''] = 'E' }\n"
    "local function repl_f(...) return select('#', ...) .. ':' .. tostring((...)) end\n"
    "local function collect(s, p, init)\n"
    "  local got = {}\n"
    "  for a, b in string.gmatch(s, p, init) do\n"
    "    got[#got + 1] = tostring(a) .. '/' .. tostring(b)\n"
    "    if #got > 50 then break end\n"
    "  end\n"
    "  return got\n"
    "end\n"
    "for i = 1, cases do\n"
    "  local s, p, init = subject(), pattern(), inits[R(#inits)]\n"
    "  put(pcall(string.find, s, p, init))\n"
    "  put(pcall(string.find, s, p, init, true))\n"
    "  put(pcall(string.match, s, p, init))\n"
    "  put(pcall(collect, s, p, init))\n"
    "  local repls = { 'r', '%0-', '%1', '<%2>', '%%', '%', '%x', 5, repl_t, repl_f }\n"
    "  put(pcall(string.gsub, s, p, repls[R(#repls)], R(-1, 4) < 3 and nil or R(-1, 3)))\n"
    "  put(pcall(string.rep, s, R(-2, 4), R(2) == 1 and ',' or nil))\n"
    /* the table functions, on small arrays with holes and odd positions */
    "  local t = {}\n"
    "  for k = 1, R(0, 6) do t[k] = R(9) end\n"
    "  local pos = R(-2, 9)\n"
    "  local which = R(7)\n"
    "  if which == 1 then put(pcall(table.insert, t, R(9)))\n"
    "  elseif which == 2 then put(pcall(table.insert, t, pos, 'v'))\n"
    "  elseif which == 3 then put(pcall(table.remove, t, R(2) == 1 and pos or nil))\n"
    "  elseif which == 4 then put(pcall(table.move, t, R(-1, 5), R(-1, 6), R(-1, 8)))\n"
    "  elseif which == 5 then put(pcall(table.move, t, R(1, 3), R(1, 6), R(1, 4), {}))\n"
    "  elseif which == 6 then put(pcall(table.concat, t, ',', R(-1, 3), R(-1, 8)))\n"
    "  else put(pcall(table.sort, t, R(2) == 1 and function(a, b) return a > b end or nil))\n"
    "  end\n"
    "  put(t)\n"
    "end\n"
    /* a few fixed cases the random ones rarely meet */
    /* %q of long strings (moonlog quotes those itself), in formats with other items */
    "local long = string.rep('ab\\0\\0012\\n\"\\\\x\\r\\127\\2009', 9000)\n"
    "put(pcall(string.format, '%q', long))\n"
    "put(pcall(string.format, '<%5d|%q|%s|%q|%-3s>', 42, long, 'mid', long .. '\\1', 'e'))\n"
    "put(pcall(string.format, '%q %q %d', 'short', long, 7))\n"
    "put(pcall(string.format, '%q %d', long))\n"
    "put(pcall(string.format, '%10q', long))\n"
    "put(pcall(string.format, '%q', long, 'extra'))\n"
    "put(pcall(string.find, 'hello world', 'o w'))\n"
    "put(pcall(string.find, 'a+b', '+', 1, true))\n"
    "put(pcall(string.find, 'a\\0b', '\\0'))\n"
    "put(pcall(string.find, 'a\\0b', '%z'))\n"
    "put(pcall(string.gsub, 'hello world', '(%w+)', '<%1>'))\n"
    "put(pcall(string.gsub, 'abc', '', '-'))\n"
    "put(pcall(string.gsub, 'abc', '%w', '%1'))\n"
    "put(pcall(string.gsub, 'THE (quick) fox', '%f[%a]%a+', string.lower))\n"
    "put(pcall(string.match, 'key = value', '^(%w+)%s*=%s*(%w+)$'))\n"
    "put(pcall(string.match, '  x', '()x()'))\n"
    "put(pcall(string.gsub, 'abc', '()', '%1'))\n"
    "put(pcall(string.match, string.rep('(', 40) .. string.rep(')', 40), string.rep('(', 33)))\n"
    "put(pcall(string.match, 'x', string.rep('x?', 300)))\n"
    "put(pcall(string.rep, 'ab', 3, '--'))\n"
    "put(pcall(string.rep, 'x', math.maxinteger))\n"
    "put(pcall(table.concat, { 1, 2, {} }))\n"
    "put(pcall(table.insert, {}, 1, 2, 3))\n"
    "put(pcall(table.move, {}, 1, math.maxinteger, 2))\n"
    "put(pcall(table.move, {}, -1, math.maxinteger, 2))\n"
    "put(pcall(table.sort, { 3, 'a', 1 }))\n"
    "put(pcall(table.concat, {}, ',', math.maxinteger, math.maxinteger))\n"
    "return (table.concat(out, '\\n'):gsub('%z', '\\\\0'))\n";

/* Runs the transcript chunk in L; the transcript, or the chunk's own error. */
static char *transcript(lua_State *L, int seed, int cases)
{
	if (luaL_loadstring(L, transcript_chunk) != LUA_OK)
		return strdup(lua_tostring(L, -1));
	lua_pushinteger(L, seed);
	lua_pushinteger(L, cases);
	if (lua_pcall(L, 2, 1, 0) != LUA_OK)
		return strdup(lua_tostring(L, -1));
	return strdup(lua_tostring(L, -1));
}

/* Where the two transcripts part, for the failure message. */
static void show_difference(const char *a, const char *b)
{
	size_t line = 1, i = 0;
	for (; a[i] && a[i] == b[i]; i++)
		line += a[i] == '\n';
	const char *la = a + i, *lb = b + i;
	while (la > a && la[-1] != '\n')
		la--;
	while (lb > b && lb[-1] != '\n')
		lb--;
	printf("# line %zu differs:\n#   lua:  %.200s\n#   ours: %.200s\n", line, la, lb);
}

static void test_same_as_lua(void)
{
	/* The state of a script as the library makes one, without the sandbox around it. */
	struct ml_script *fake = calloc(1, sizeof(*fake));
	fake->mem_limit = fake->mem_cap = (size_t)1 << 30;
	atomic_init(&fake->clock.seq, 1);
	lua_State *ours = lua_newstate(ml_script_alloc, fake);
	luaL_openlibs(ours);
	ml_bounded_open(ours);
	lua_State *theirs = luaL_newstate();
	luaL_openlibs(theirs);
	for (int seed = 1; seed <= 4; seed++) {
		char *a = transcript(theirs, seed, 4000), *b = transcript(ours, seed, 4000);
		int same = strcmp(a, b) == 0;
		ok(same && strlen(a) > 100000,
		   "seed %d: 4,000 random calls give Lua's results and errors (%zu bytes)", seed,
		   strlen(a));
		if (!same)
			show_difference(a, b);
		else if (strlen(a) < 100000)
			printf("# %.300s\n", a);
		free(a);
		free(b);
	}
	lua_close(ours);
	lua_close(theirs);
	free(fake);
}

static struct ml_script *hostile(const char *body)
{
	char src[2048];
	snprintf(src, sizeof(src),
		 "local ml = require 'moonlog'\n"
		 "return ml.projection { name = 'hostile', from = '*', init = {},\n"
		 "  on = { T = function(s, e)\n"
		 "    %s\n"
		 "  end } }\n",
		 body);
	struct ml_script_options o;
	ml_script_options_init(&o);
	o.time_limit_ms = 100;
	o.instruction_limit = (uint64_t)1 << 40;
	o.memory_limit = 256u << 20;
	o.lua_dir = ml_script_lua_source_dir();
	return ml_script_load_buffer("hostile.lua", src, strlen(src), &o);
}

static void test_stops(const char *body, const char *expect)
{
	struct ml_script *s = hostile(body);
	struct ml_event e = {.position = 1,
			     .stream = "x-1",
			     .stream_len = 3,
			     .type = "T",
			     .type_len = 1,
			     .data = (const uint8_t *)"\x80",
			     .data_len = 1};
	uint64_t t0 = ml_clock_ns();
	int rc = s ? ml_script_feed(s, &e) : 0;
	double ms = (double)(ml_clock_ns() - t0) / 1e6;
	/* Liveness, with a wide margin for a loaded machine: the call ends, and not in minutes. */
	const char *why = s && ml_script_fault(s) ? ml_script_fault(s) : ml_diag_last();
	ok(rc != 0 && strstr(why, expect) != NULL && ms < 5000, "%s -> \"%.300s\" (%.0f ms)", body,
	   why, ms);
	ml_script_free(s);
}

int main(void)
{
	test_same_as_lua();
	test_stops("s.r = ('a'):rep(3e4):find('.-.-.-b')",
		   "ran past its time limit (100 ms per event) in string.find at hostile.lua:4");
	test_stops("s.r = ('a'):rep(3e4):match('(.-)(.-)(.-)b')",
		   "ran past its time limit (100 ms per event) in string.match at hostile.lua:4");
	test_stops("s.r = ('a'):rep(3e4):gsub('.-.-.-b', '')",
		   "ran past its time limit (100 ms per event) in string.gsub at hostile.lua:4");
	test_stops("for x in ('a'):rep(3e4):gmatch('.-.-.-b') do end",
		   "ran past its time limit (100 ms per event) in string.gmatch at hostile.lua:4");
	test_stops("local a = ('a'):rep(1e6) s.r = (a .. a):find('(' .. a .. ')%1b')",
		   "ran past its time limit (100 ms per event) in string.find at hostile.lua:4");
	test_stops("s.r = string.rep('', 1e18) table.move({}, 1, 1e15, 2)",
		   "ran past its time limit (100 ms per event) in table.move at hostile.lua:4");
	test_stops("table.insert(setmetatable({}, { __len = function() return 1e15 end }), 1, 0)",
		   "in table.insert at hostile.lua:4");
	test_stops("table.remove(setmetatable({}, { __len = function() return 1e15 end }), 1)",
		   "in table.remove at hostile.lua:4");
	test_stops("table.concat(setmetatable({}, { __index = function() return 'x' end }), '', 1, "
		   "1e15)",
		   "ran past its time limit (100 ms per event)");
	/* 900k numbers built by a C function, then one sort with no Lua comparator to hook */
	test_stops("local t = { string.byte(('\\3\\1\\2\\9\\7\\5'):rep(15e4), 1, -1) }\n"
		   "    table.sort(t)",
		   "ran past its time limit (100 ms per event) in table.sort at hostile.lua:5");
	test_stops("s.r = #string.format('%q', ('a\\n'):rep(25e6))",
		   "ran past its time limit (100 ms per event) in string.format at hostile.lua:4");
	test_stops("load(('--xxxxxxxxxxxxxx\\n'):rep(3e6))",
		   "ran past its time limit (100 ms per event) in load");
	test_stops("setmetatable({}, { __gc = function() while true do end end })",
		   "setmetatable: scripts cannot have __gc finalizers");
	test_stops("setmetatable({}, { __gc = false })", "scripts cannot have __gc finalizers");
	test_stops("while true do pcall(string.find, ('a'):rep(3e4), '.-.-.-b') end",
		   "ran past its time limit (100 ms per event)");
	test_stops("error(('x'):rep(5e7))", "xxxxxxxx... (49995919 more bytes)");
	return done_testing();
}
