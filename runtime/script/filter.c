/*
 * filter.c - a script's `from` in C: the route's filter (stream patterns and
 * event types, moonlog/route.h), checked on the record's bytes before anything
 * is handed to Lua. The DSL has already validated and normalised `from`; this
 * file compiles it (streams, types) once, at load.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include <moonlog/diag.h>
#include <moonlog/route.h>

#include "script_internal.h"

/* Reads a list of strings (at the top); raises on anything else or too many. */
static size_t list_len(lua_State *L, const char *what, size_t min, size_t max)
{
	luaL_checktype(L, -1, LUA_TTABLE);
	size_t n = lua_rawlen(L, -1);
	if (n < min || n > max)
		luaL_error(L, "from.%s must list between 1 and %d entries", what, (int)max);
	return n;
}

static const char *list_item(lua_State *L, size_t i, size_t *n)
{
	lua_rawgeti(L, -1, (lua_Integer)i);
	const char *s = lua_tolstring(L, -1, n);
	if (s == NULL || *n == 0 || *n > 255)
		luaL_error(L, "from: entry %d is not a name of 1 to 255 bytes", (int)i);
	lua_pop(L, 1); /* the string stays alive in the list */
	return s;
}

/* Compiles the normalised `from` at from_idx ({ streams = {...}, types = {...} | nil }). */
struct ml_filter *ml_script_filter_load(lua_State *L, int from_idx)
{
	from_idx = lua_absindex(L, from_idx);
	struct ml_filter *f = ml_filter_new();
	/* (the filter is freed with the script if anything below raises: see runner.c) */
	ml_script_of(L)->filter = f;
	lua_getfield(L, from_idx, "streams");
	size_t n_patterns = list_len(L, "streams", 1, ML_SCRIPT_MAX_PATTERNS);
	for (size_t i = 0; i < n_patterns; i++) {
		size_t n;
		const char *p = list_item(L, i + 1, &n);
		if (ml_filter_add_stream(f, p, n) != 0)
			luaL_error(L, "from: %s", ml_diag_last());
	}
	lua_pop(L, 1);
	if (lua_getfield(L, from_idx, "types") != LUA_TNIL) {
		/* An empty list (a decider with no `on`) takes no event at all. */
		size_t count = list_len(L, "types", 0, ML_SCRIPT_MAX_TYPES);
		ml_filter_types_only(f);
		for (size_t i = 0; i < count; i++) {
			size_t n;
			const char *t = list_item(L, i + 1, &n);
			ml_filter_add_type(f, t, n);
		}
	}
	lua_pop(L, 1);
	return f;
}
