/*
 * bounded.c - the standard functions whose C loops could outlast a script's
 * time limit, replaced for scripts by ones that look at the clock.
 *
 * The count hook stops Lua code; it cannot stop a C function, and a few of
 * Lua's run a loop whose length a script chooses without spending memory:
 * string.rep("", 1e18), table.move(t, 1, 1e15, 2), table.insert on a table
 * whose __len says 1e15, table.sort over millions of numbers (no Lua
 * comparator to hook), string.format("%q") of a long string. These do the
 * same work with the same results and messages, and call ml_script_check
 * every CHECK_EVERY elements. (Patterns:
 * pattern.c. The other C functions of the sandbox are linear in a string or
 * table the script's memory limit already bounds.)
 *
 * Also here, what keeps the collector out of reach: setmetatable refuses a
 * __gc field, because Lua runs finalizers with hooks off, where no limit
 * holds (a finalizer that loops would hang the process).
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

#define CHECK_EVERY 4096

/* string.rep(s, n [, sep]): the copies by doubling, so a long result is a few memcpy. */
static int l_rep(lua_State *L)
{
	size_t ls, lsep;
	const char *s = luaL_checklstring(L, 1, &ls);
	lua_Integer n = luaL_checkinteger(L, 2);
	const char *sep = luaL_optlstring(L, 3, "", &lsep);
	if (n <= 0 || ls + lsep == 0) {
		lua_pushliteral(L, "");
		return 1;
	}
	size_t unit = ls + lsep;
	if (unit < ls || unit > (size_t)INT_MAX / (size_t)n) /* Lua's own bound */
		return luaL_error(L, "resulting string too large");
	size_t total = (size_t)n * unit - lsep;
	luaL_Buffer b;
	char *out = luaL_buffinitsize(L, &b, total);
	memcpy(out, s, ls);
	if (lsep && n > 1)
		memcpy(out + ls, sep, lsep);
	size_t done = n > 1 ? unit : ls;
	while (done < total) {
		size_t more = done < total - done ? done : total - done;
		memcpy(out + done, out, more);
		done += more;
	}
	luaL_pushresultsize(&b, total);
	return 1;
}

/* #t as Lua's table functions see it (with __len). */
static lua_Integer length(lua_State *L, int t)
{
	return luaL_len(L, t);
}

/* t2[d..] = t1[f..e] (f <= e), one element at a time, upwards or downwards, looking at
 * the clock. Indices in unsigned arithmetic: Lua's own wrap around, never overflow. */
static void copy_range(lua_State *L, int t1, lua_Integer f, lua_Integer e, int t2, lua_Integer d,
		       int down, const char *in)
{
	lua_Unsigned n = (lua_Unsigned)e - (lua_Unsigned)f + 1u;
	for (lua_Unsigned i = 0; i < n; i++) {
		lua_Unsigned k = down ? n - 1u - i : i;
		if ((i + 1u) % CHECK_EVERY == 0)
			ml_script_check(L, in);
		lua_geti(L, t1, (lua_Integer)((lua_Unsigned)f + k));
		lua_seti(L, t2, (lua_Integer)((lua_Unsigned)d + k));
	}
}

/* table.insert(t, [pos,] v) */
static int l_insert(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer end = (lua_Integer)((lua_Unsigned)length(L, 1) + 1u); /* the first free slot */
	lua_Integer pos = end;
	switch (lua_gettop(L)) {
	case 2:
		break;
	case 3:
		pos = luaL_checkinteger(L, 2);
		/* (lua_Unsigned) folds the two bounds into one compare, as a range check */
		luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)end, 2,
			      "position out of bounds");
		if (pos < end)
			copy_range(L, 1, pos, end - 1, 1, pos + 1, 1, "table.insert");
		break;
	default:
		return luaL_error(L, "wrong number of arguments to 'insert'");
	}
	lua_seti(L, 1, pos);
	return 0;
}

/* table.remove(t [, pos]) */
static int l_remove(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer size = length(L, 1);
	lua_Integer pos = luaL_optinteger(L, 2, size);
	if (pos != size) /* Lua 5.4.4 names argument #1 here; so do we, to say the same */
		luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 1,
			      "position out of bounds");
	lua_geti(L, 1, pos);
	if (pos < size)
		copy_range(L, 1, pos + 1, size, 1, pos, 0, "table.remove");
	lua_pushnil(L);
	lua_seti(L, 1, pos < size ? size : pos);
	return 1;
}

/* table.move(a1, f, e, t [, a2]) */
static int l_move(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer f = luaL_checkinteger(L, 2);
	lua_Integer e = luaL_checkinteger(L, 3);
	lua_Integer t = luaL_checkinteger(L, 4);
	int dst = lua_isnoneornil(L, 5) ? 1 : 5;
	luaL_checktype(L, dst, LUA_TTABLE);
	if (e >= f) {
		luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
		lua_Integer n = e - f + 1;
		luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
		int same = dst == 1 || lua_compare(L, 1, dst, LUA_OPEQ);
		int down = same && t > f && t <= e; /* overlapping, upwards: copy from the end */
		copy_range(L, 1, f, e, dst, t, down, "table.move");
	}
	lua_pushvalue(L, dst);
	return 1;
}

static void add_field(lua_State *L, luaL_Buffer *b, lua_Integer k)
{
	lua_geti(L, 1, k);
	if (!lua_isstring(L, -1))
		luaL_error(L, "invalid value (%s) at index %I in table for 'concat'",
			   luaL_typename(L, -1), (LUAI_UACINT)k);
	luaL_addvalue(b);
}

/* table.concat(list [, sep [, i [, j]]]) */
static int l_concat(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	lua_Integer last = length(L, 1);
	size_t lsep;
	const char *sep = luaL_optlstring(L, 2, "", &lsep);
	lua_Integer i = luaL_optinteger(L, 3, 1);
	last = luaL_optinteger(L, 4, last);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	for (lua_Unsigned n = 1; i < last; i++, n++) {
		if (n % CHECK_EVERY == 0)
			ml_script_check(L, "table.concat");
		add_field(L, &b, i);
		luaL_addlstring(&b, sep, lsep);
	}
	if (i == last)
		add_field(L, &b, i);
	luaL_pushresult(&b);
	return 1;
}

/* The default order of table.sort, as a function the sort calls: one that looks at the
 * clock now and then. Upvalue: a counter. */
static int l_less(lua_State *L)
{
	lua_Integer n = lua_tointeger(L, lua_upvalueindex(1)) + 1;
	lua_pushinteger(L, n);
	lua_replace(L, lua_upvalueindex(1));
	if (n % CHECK_EVERY == 0)
		ml_script_check(L, "table.sort");
	lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
	return 1;
}

/* table.sort(t [, comp]): Lua's own sort (upvalue 1); without comp, with l_less. */
static int l_sort(lua_State *L)
{
	if (lua_isnoneornil(L, 2)) {
		lua_settop(L, 1);
		lua_pushinteger(L, 0);
		lua_pushcclosure(L, l_less, 1);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 0);
	return 0;
}

/* Adds the string at arg as %q writes it, looking at the clock every 64 KiB. */
static void add_quoted(lua_State *L, luaL_Buffer *b, int arg)
{
	size_t n;
	const char *s = lua_tolstring(L, arg, &n);
	luaL_addchar(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((i & 0xffff) == 0xffff)
			ml_script_check(L, "string.format");
		if (c == '"' || c == '\\' || c == '\n') {
			luaL_addchar(b, '\\');
			luaL_addchar(b, (char)c);
		} else if (iscntrl(c)) { /* \ddd when a digit follows, else the shortest */
			char esc[8];
			int digit = i + 1 < n && isdigit((unsigned char)s[i + 1]);
			snprintf(esc, sizeof(esc), digit ? "\\%03d" : "\\%d", c);
			luaL_addstring(b, esc);
		} else {
			luaL_addchar(b, (char)c);
		}
	}
	luaL_addchar(b, '"');
}

#define LONG_QUOTE (64 * 1024)

/*
 * string.format: Lua's own (upvalue 1), except for a %q of a long string (the
 * slowest thing format does, some ten nanoseconds a byte), which is quoted here:
 * the format is cut there, the part before goes to Lua's format, and the rest to
 * this one again.
 */
static int l_format(lua_State *L)
{
	size_t lf;
	const char *f = luaL_checklstring(L, 1, &lf);
	int top = lua_gettop(L), arg = 1, cut = 0;
	size_t i = 0, at = 0;
	for (; i < lf; i++) {
		if (f[i] != '%' || ++i >= lf || f[i] == '%')
			continue;
		size_t spec = i - 1;
		while (i < lf && strchr("-+ #0123456789.", f[i]))
			i++;
		arg++;
		if (!cut && i < lf && f[i] == 'q' && i == spec + 1 && arg <= top &&
		    lua_type(L, arg) == LUA_TSTRING && lua_rawlen(L, arg) > LONG_QUOTE)
			cut = arg, at = i;
	}
	if (cut && arg > top) /* what Lua's format would say, only later */
		return luaL_argerror(L, top + 1, "no value");
	if (!cut) { /* no long %q: Lua's format, as it is */
		lua_pushvalue(L, lua_upvalueindex(1));
		lua_insert(L, 1);
		lua_call(L, top, 1);
		return 1;
	}
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	lua_pushvalue(L, lua_upvalueindex(1)); /* format(before, args before) */
	lua_pushlstring(L, f, at - 1);
	for (int k = 2; k < cut; k++)
		lua_pushvalue(L, k);
	lua_call(L, cut - 1, 1);
	luaL_addvalue(&b);
	add_quoted(L, &b, cut);
	lua_pushvalue(L, lua_upvalueindex(1)); /* this function for the rest */
	lua_pushcclosure(L, l_format, 1);
	lua_pushlstring(L, f + at + 1, lf - at - 1);
	for (int k = cut + 1; k <= top; k++)
		lua_pushvalue(L, k);
	lua_call(L, top - cut + 1, 1);
	luaL_addvalue(&b);
	luaL_pushresult(&b);
	return 1;
}

/* setmetatable(t, mt) without finalizers. Upvalue 1: the base library's setmetatable. */
static int l_setmetatable(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L,
					  "setmetatable: scripts cannot have __gc finalizers (the "
					  "collector runs them where no time limit can stop "
					  "them); release resources explicitly instead");
		lua_pop(L, 1);
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

static void replace(lua_State *L, const char *lib, const char *name, lua_CFunction fn, int keep)
{
	lua_getglobal(L, lib);
	if (keep)
		lua_getfield(L, -1, name);
	lua_pushcclosure(L, fn, keep);
	lua_setfield(L, -2, name);
	lua_pop(L, 1);
}

void ml_bounded_open(lua_State *L)
{
	lua_getglobal(L, "string");
	ml_pattern_open(L, -1);
	lua_pop(L, 1);
	replace(L, "string", "rep", l_rep, 0);
	replace(L, "string", "format", l_format, 1);
	replace(L, "table", "insert", l_insert, 0);
	replace(L, "table", "remove", l_remove, 0);
	replace(L, "table", "move", l_move, 0);
	replace(L, "table", "concat", l_concat, 0);
	replace(L, "table", "sort", l_sort, 1);
	lua_pushglobaltable(L);
	lua_getfield(L, -1, "setmetatable");
	lua_pushcclosure(L, l_setmetatable, 1);
	lua_setfield(L, -2, "setmetatable");
	lua_pop(L, 1);
}
