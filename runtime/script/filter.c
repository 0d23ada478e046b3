/*
 * filter.c - a script's `from` in C: stream patterns and event types, checked
 * on the record's bytes before anything is handed to Lua.
 *
 * The rules are those of lua/moonlog/filter.lua: "$all" every stream, "*"
 * every stream but the system ones ("$..."), "prefix-*" a prefix, a name
 * without '-' a category (itself and "name-..."), a name with '-' exactly that
 * stream. The DSL has already validated and normalised the patterns; this file
 * compiles the normalised `from` (streams, types) once, at load.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

static void compile_pattern(const char *p, size_t n, struct ml_pattern *out)
{
	memset(out, 0, sizeof(*out));
	if (n == 4 && memcmp(p, "$all", 4) == 0) {
		out->kind = PAT_ALL;
	} else if (n == 1 && p[0] == '*') {
		out->kind = PAT_VISIBLE;
	} else if (n > 0 && p[n - 1] == '*') {
		out->kind = PAT_PREFIX;
		out->len = (uint8_t)(n - 1);
	} else if (memchr(p, '-', n)) {
		out->kind = PAT_EXACT;
		out->len = (uint8_t)n;
	} else {
		out->kind = PAT_CATEGORY;
		out->len = (uint8_t)n;
	}
	memcpy(out->text, p, out->len);
}

static int pattern_match(const struct ml_pattern *m, const char *s, size_t n)
{
	switch (m->kind) {
	case PAT_ALL:
		return 1;
	case PAT_VISIBLE:
		return n == 0 || s[0] != '$';
	case PAT_PREFIX:
		return n >= m->len && memcmp(s, m->text, m->len) == 0;
	case PAT_EXACT:
		return n == m->len && memcmp(s, m->text, n) == 0;
	case PAT_CATEGORY:
		return n >= m->len && memcmp(s, m->text, m->len) == 0 &&
		       (n == m->len || s[m->len] == '-');
	}
	return 0;
}

int ml_script_pattern_match(const char *pattern, const char *stream, size_t stream_len)
{
	struct ml_pattern m;
	size_t n = strlen(pattern);
	if (n == 0 || n > 255)
		return 0;
	compile_pattern(pattern, n, &m);
	return pattern_match(&m, stream, stream_len);
}

int ml_script_filter_match(const struct ml_script_filter *f, const char *stream, size_t stream_len,
			   const char *type, size_t type_len)
{
	if (f->types) {
		size_t i = 0;
		/* Sorted by length: skip the shorter ones, stop at the longer ones. */
		while (i < f->n_types && f->types[i].len < type_len)
			i++;
		for (; i < f->n_types && f->types[i].len == type_len; i++)
			if (memcmp(f->types[i].text, type, type_len) == 0)
				goto stream;
		return 0;
	}
stream:
	for (size_t i = 0; i < f->n_patterns; i++)
		if (pattern_match(&f->patterns[i], stream, stream_len))
			return 1;
	return 0;
}

static int by_length(const void *a, const void *b)
{
	const uint8_t *x = a, *y = b;
	return (int)x[0] - (int)y[0];
}

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
int ml_script_filter_load(lua_State *L, int from_idx, struct ml_script_filter *f)
{
	from_idx = lua_absindex(L, from_idx);
	ml_script_filter_clear(f);
	lua_getfield(L, from_idx, "streams");
	f->n_patterns = list_len(L, "streams", 1, ML_SCRIPT_MAX_PATTERNS);
	f->patterns = ml_xcalloc(f->n_patterns, sizeof(*f->patterns));
	for (size_t i = 0; i < f->n_patterns; i++) {
		size_t n;
		const char *p = list_item(L, i + 1, &n);
		compile_pattern(p, n, &f->patterns[i]);
	}
	lua_pop(L, 1);
	if (lua_getfield(L, from_idx, "types") != LUA_TNIL) {
		/* An empty list (a decider with no `on`) takes no event at all. */
		size_t count = list_len(L, "types", 0, ML_SCRIPT_MAX_TYPES);
		f->types = ml_xcalloc(count ? count : 1, sizeof(*f->types));
		for (size_t i = 0; i < count; i++) {
			size_t n;
			const char *t = list_item(L, i + 1, &n);
			f->types[i].len = (uint8_t)n;
			memcpy(f->types[i].text, t, n);
		}
		f->n_types = count;
		qsort(f->types, count, sizeof(*f->types), by_length);
	}
	lua_pop(L, 1);
	return 0;
}

void ml_script_filter_clear(struct ml_script_filter *f)
{
	free(f->patterns);
	free(f->types);
	memset(f, 0, sizeof(*f));
}
