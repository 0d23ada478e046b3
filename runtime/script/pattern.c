/*
 * pattern.c - string.find, match, gmatch and gsub for scripts, with a time limit.
 *
 * Lua's patterns backtrack, and a short pattern over a long subject can take
 * longer than the universe has: ("a"):rep(3e4):find(".-.-.-b") is some 10^13
 * steps. The standard library's matcher is C, which the count hook cannot
 * interrupt, so a script calling it could hold the server's loop for good.
 * These are the same four functions, with the same patterns, results and
 * error messages as Lua 5.4's, written around a matcher that counts its steps
 * and, every CHECK_EVERY of them, asks whether the call is past its time limit
 * (ml_script_check raises then). A plain find uses memmem, which is linear.
 *
 * The matcher walks the pattern as Lua's does: an item is a single-character
 * class with an optional quantifier (* + - ?), a capture, a back reference
 * (%1-%9), %bxy or %f[set]; `^` anchors at the start and `$` at the end.
 */
#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

#define MAX_CAPTURES 32
#define MAX_DEPTH    200 /* nested calls of `match`, as Lua's MAXCCALLS */
#define CHECK_EVERY  (1u << 14)
#define CAP_OPEN     (-1)
#define CAP_POSITION (-2)

struct matcher {
	lua_State *L;
	const char *in; /* "string.find", for the time limit's message */
	const char *src, *src_end, *pat_end;
	int depth;		  /* calls of `match` left */
	size_t steps, next_check; /* work done, and when to look at the clock again */
	int level;		  /* captures open or closed so far */
	struct {
		const char *at;
		ptrdiff_t len; /* CAP_OPEN, CAP_POSITION or a length */
	} cap[MAX_CAPTURES];
};

static const char *match(struct matcher *m, const char *s, const char *p);

/* Counts work (a step, plus a byte compared as 1/64 of one) and looks at the clock now
 * and then. */
static void step(struct matcher *m, size_t bytes)
{
	m->steps += 1 + bytes / 64;
	if (m->steps >= m->next_check) {
		m->next_check = m->steps + CHECK_EVERY;
		ml_script_check(m->L, m->in);
	}
}

/* Does c belong to the class %cl (cl a letter; upper case is the complement)? */
static int in_class(int c, int cl)
{
	int yes;
	switch (tolower(cl)) {
	case 'a':
		yes = isalpha(c);
		break;
	case 'c':
		yes = iscntrl(c);
		break;
	case 'd':
		yes = isdigit(c);
		break;
	case 'g':
		yes = isgraph(c);
		break;
	case 'l':
		yes = islower(c);
		break;
	case 'p':
		yes = ispunct(c);
		break;
	case 's':
		yes = isspace(c);
		break;
	case 'u':
		yes = isupper(c);
		break;
	case 'w':
		yes = isalnum(c);
		break;
	case 'x':
		yes = isxdigit(c);
		break;
	case 'z':
		yes = c == 0;
		break; /* deprecated, but Lua 5.4 still knows it */
	default:
		return cl == c; /* %. %% %[ ...: the character itself */
	}
	if (isupper(cl))
		yes = !yes;
	return yes != 0;
}

/* Is c in the set that opens at p ('[') and closes at last (its ']')? */
static int in_set(int c, const char *p, const char *last)
{
	int want = 1;
	if (p[1] == '^') {
		want = 0;
		p++;
	}
	while (++p < last) {
		if (*p == '%') {
			p++;
			if (in_class(c, (unsigned char)*p))
				return want;
		} else if (p[1] == '-' && p + 2 < last) {
			if ((unsigned char)*p <= c && c <= (unsigned char)p[2])
				return want;
			p += 2;
		} else if ((unsigned char)*p == c) {
			return want;
		}
	}
	return !want;
}

/* The end of the single-character class that starts at p. */
static const char *class_end(struct matcher *m, const char *p)
{
	char c = *p++;
	if (c == '%') {
		if (p >= m->pat_end)
			luaL_error(m->L, "malformed pattern (ends with '%%')");
		return p + 1;
	}
	if (c == '[') {
		if (*p == '^')
			p++;
		do { /* the first character is never the closing ']' */
			if (p >= m->pat_end)
				luaL_error(m->L, "malformed pattern (missing ']')");
			c = *p++;
			if (c == '%' && p < m->pat_end)
				p++;
		} while (*p != ']');
		return p + 1;
	}
	return p;
}

/* Does the character at s match the class [p, ep)? */
static int one(struct matcher *m, const char *s, const char *p, const char *ep)
{
	if (s >= m->src_end)
		return 0;
	int c = (unsigned char)*s;
	switch (*p) {
	case '.':
		return 1;
	case '%':
		return in_class(c, (unsigned char)p[1]);
	case '[':
		return in_set(c, p, ep - 1);
	default:
		return (unsigned char)*p == c;
	}
}

/* %bxy at s: the end of the balanced run, or NULL. */
static const char *balanced(struct matcher *m, const char *s, const char *p)
{
	if (p + 1 >= m->pat_end)
		luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
	if (s >= m->src_end || *s != p[0])
		return NULL;
	int open = 1;
	while (++s < m->src_end) {
		step(m, 0);
		if (*s == p[1]) {
			if (--open == 0)
				return s + 1;
		} else if (*s == p[0]) {
			open++;
		}
	}
	return NULL;
}

/* x* (or x+ after its first): as many as possible, then give back one at a time. */
static const char *greedy(struct matcher *m, const char *s, const char *p, const char *ep)
{
	ptrdiff_t n = 0;
	while (one(m, s + n, p, ep)) {
		n++;
		step(m, 0);
	}
	for (; n >= 0; n--) {
		const char *r = match(m, s + n, ep + 1);
		if (r)
			return r;
	}
	return NULL;
}

/* x-: as few as possible, taking one more at a time. */
static const char *lazy(struct matcher *m, const char *s, const char *p, const char *ep)
{
	for (;;) {
		const char *r = match(m, s, ep + 1);
		if (r)
			return r;
		if (!one(m, s, p, ep))
			return NULL;
		s++;
	}
}

static const char *open_capture(struct matcher *m, const char *s, const char *p, ptrdiff_t what)
{
	if (m->level >= MAX_CAPTURES)
		luaL_error(m->L, "too many captures");
	m->cap[m->level].at = s;
	m->cap[m->level].len = what;
	m->level++;
	const char *r = match(m, s, p);
	if (r == NULL)
		m->level--;
	return r;
}

static const char *close_capture(struct matcher *m, const char *s, const char *p)
{
	int l = m->level - 1;
	while (l >= 0 && m->cap[l].len != CAP_OPEN)
		l--;
	if (l < 0)
		luaL_error(m->L, "invalid pattern capture");
	m->cap[l].len = s - m->cap[l].at;
	const char *r = match(m, s, p);
	if (r == NULL)
		m->cap[l].len = CAP_OPEN;
	return r;
}

/* %1-%9: the text of an earlier capture again. */
static const char *back_reference(struct matcher *m, const char *s, int digit)
{
	int l = digit - '1';
	if (l < 0 || l >= m->level || m->cap[l].len == CAP_OPEN)
		luaL_error(m->L, "invalid capture index %%%d", l + 1);
	size_t len = (size_t)m->cap[l].len;
	step(m, m->cap[l].len > 0 ? len : 0);
	if ((size_t)(m->src_end - s) >= len && memcmp(m->cap[l].at, s, len) == 0)
		return s + len;
	return NULL;
}

/*
 * The end of a match of the pattern at p against the subject at s, or NULL.
 * What continues with the rest of the pattern at a new place loops rather than
 * recurses (a literal run is one call, however long), so that only real
 * backtracking (quantifiers, captures) spends depth, as in Lua.
 */
static const char *match(struct matcher *m, const char *s, const char *p)
{
	if (m->depth-- == 0)
		luaL_error(m->L, "pattern too complex");
	for (;;) {
		step(m, 0);
		if (p == m->pat_end)
			break;
		if (*p == '(') {
			s = p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION)
					: open_capture(m, s, p + 1, CAP_OPEN);
			break;
		}
		if (*p == ')') {
			s = close_capture(m, s, p + 1);
			break;
		}
		if (*p == '$' && p + 1 == m->pat_end) {
			s = s == m->src_end ? s : NULL;
			break;
		}
		if (*p == '%' && p + 1 < m->pat_end && p[1] == 'b') {
			if ((s = balanced(m, s, p + 2)) == NULL)
				break;
			p += 4;
			continue;
		}
		if (*p == '%' && p + 1 < m->pat_end && p[1] == 'f') {
			p += 2;
			if (*p != '[')
				luaL_error(m->L, "missing '[' after '%%f' in pattern");
			const char *ep = class_end(m, p);
			int before = s == m->src ? 0 : (unsigned char)s[-1];
			int at = s < m->src_end ? (unsigned char)*s : 0;
			if (in_set(before, p, ep - 1) || !in_set(at, p, ep - 1)) {
				s = NULL;
				break;
			}
			p = ep;
			continue;
		}
		if (*p == '%' && p + 1 < m->pat_end && isdigit((unsigned char)p[1])) {
			if ((s = back_reference(m, s, p[1])) == NULL)
				break;
			p += 2;
			continue;
		}
		/* a single-character class and its quantifier */
		const char *ep = class_end(m, p);
		if (!one(m, s, p, ep)) {
			if (*ep == '*' || *ep == '?' || *ep == '-') {
				p = ep + 1; /* none is enough */
				continue;
			}
			s = NULL;
			break;
		}
		if (*ep == '?') {
			const char *r = match(m, s + 1, ep + 1);
			if (r) {
				s = r;
				break;
			}
			p = ep + 1;
			continue;
		}
		if (*ep == '+' || *ep == '*') {
			s = greedy(m, *ep == '+' ? s + 1 : s, p, ep);
			break;
		}
		if (*ep == '-') {
			s = lazy(m, s, p, ep);
			break;
		}
		s++;
		p = ep;
	}
	m->depth++;
	return s;
}

/* ---- the library functions ---- */

static void start(struct matcher *m, lua_State *L, const char *in, const char *s, size_t ls,
		  const char *p, size_t lp)
{
	m->L = L;
	m->in = in;
	m->src = s;
	m->src_end = s + ls;
	m->pat_end = p + lp;
	m->depth = MAX_DEPTH;
	m->steps = 0;
	m->next_check = CHECK_EVERY;
	m->level = 0;
}

/* Pushes capture i (the whole match [s, e) when there are none and i is 0). */
static void push_capture(struct matcher *m, int i, const char *s, const char *e)
{
	if (i >= m->level) {
		if (i != 0)
			luaL_error(m->L, "invalid capture index %%%d", i + 1);
		lua_pushlstring(m->L, s, (size_t)(e - s));
	} else if (m->cap[i].len == CAP_OPEN) {
		luaL_error(m->L, "unfinished capture");
	} else if (m->cap[i].len == CAP_POSITION) {
		lua_pushinteger(m->L, (lua_Integer)(m->cap[i].at - m->src) + 1);
	} else {
		lua_pushlstring(m->L, m->cap[i].at, (size_t)m->cap[i].len);
	}
}

/* Pushes every capture (or the whole match when s is not NULL and there are none). */
static int push_captures(struct matcher *m, const char *s, const char *e)
{
	int n = m->level == 0 && s ? 1 : m->level;
	luaL_checkstack(m->L, n, "too many captures");
	for (int i = 0; i < n; i++)
		push_capture(m, i, s, e);
	return n;
}

/* Lua's rule for a start position: negative counts from the end; the result is 1-based. */
static size_t start_at(lua_Integer pos, size_t len)
{
	if (pos > 0)
		return (size_t)pos;
	if (pos == 0)
		return 1;
	if (pos < -(lua_Integer)len)
		return 1;
	return len + (size_t)pos + 1;
}

static int has_specials(const char *p, size_t lp)
{
	for (size_t i = 0; i < lp; i++)
		if (strchr("^$*+?.([%-", p[i]) && p[i] != 0)
			return 1;
	return 0;
}

static int find_or_match(lua_State *L, int find)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	size_t init = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
	if (init > ls) {
		luaL_pushfail(L);
		return 1;
	}
	if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
		const char *at = memmem(s + init, ls - init, p, lp);
		if (at == NULL) {
			luaL_pushfail(L);
			return 1;
		}
		lua_pushinteger(L, (lua_Integer)(at - s) + 1);
		lua_pushinteger(L, (lua_Integer)(at - s) + (lua_Integer)lp);
		return 2;
	}
	struct matcher m;
	int anchor = lp > 0 && *p == '^';
	if (anchor) {
		p++;
		lp--;
	}
	start(&m, L, find ? "string.find" : "string.match", s, ls, p, lp);
	const char *from = s + init;
	do {
		m.level = 0;
		const char *e = match(&m, from, p);
		if (e) {
			if (!find)
				return push_captures(&m, from, e);
			lua_pushinteger(L, (lua_Integer)(from - s) + 1);
			lua_pushinteger(L, (lua_Integer)(e - s));
			return push_captures(&m, NULL, NULL) + 2;
		}
	} while (from++ < m.src_end && !anchor);
	luaL_pushfail(L);
	return 1;
}

static int l_find(lua_State *L)
{
	return find_or_match(L, 1);
}

static int l_match(lua_State *L)
{
	return find_or_match(L, 0);
}

/* gmatch's iterator. Upvalues: the subject, the pattern, and a userdata with where the
 * next search starts and where the last match ended (offsets; -1: none yet). */
struct gmatch {
	size_t from;
	ptrdiff_t last;
};

static int gmatch_next(lua_State *L)
{
	size_t ls, lp;
	const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
	const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
	struct gmatch *g = lua_touserdata(L, lua_upvalueindex(3));
	struct matcher m;
	start(&m, L, "string.gmatch", s, ls, p, lp);
	for (const char *from = s + g->from; from <= m.src_end; from++) {
		m.level = 0;
		const char *e = match(&m, from, p);
		if (e && e - s != g->last) {
			g->from = (size_t)(e - s);
			g->last = e - s;
			return push_captures(&m, from, e);
		}
	}
	g->from = ls + 1;
	return 0;
}

static int l_gmatch(lua_State *L)
{
	size_t ls;
	luaL_checklstring(L, 1, &ls);
	luaL_checkstring(L, 2);
	size_t init = start_at(luaL_optinteger(L, 3, 1), ls) - 1;
	lua_settop(L, 2);
	struct gmatch *g = lua_newuserdatauv(L, sizeof(*g), 0);
	g->from = init > ls ? ls + 1 : init;
	g->last = -1;
	lua_pushcclosure(L, gmatch_next, 3);
	return 1;
}

/* A replacement string: %0-%9 and %%. */
static void add_template(struct matcher *m, luaL_Buffer *b, const char *s, const char *e)
{
	size_t n;
	const char *t = lua_tolstring(m->L, 3, &n);
	const char *pct;
	while ((pct = memchr(t, '%', n)) != NULL) {
		luaL_addlstring(b, t, (size_t)(pct - t));
		pct++;
		if (pct < t + n && *pct == '%') {
			luaL_addchar(b, '%');
		} else if (pct < t + n && *pct == '0') {
			luaL_addlstring(b, s, (size_t)(e - s));
		} else if (pct < t + n && isdigit((unsigned char)*pct)) {
			push_capture(m, *pct - '1', s, e);
			luaL_tolstring(m->L, -1, NULL); /* a position capture is an integer */
			lua_remove(m->L, -2);
			luaL_addvalue(b);
		} else {
			luaL_error(m->L, "invalid use of '%%' in replacement string");
		}
		n -= (size_t)(pct + 1 - t);
		t = pct + 1;
	}
	luaL_addlstring(b, t, n);
}

/* Adds the replacement of the match [s, e); 1 when it changed the text. */
static int add_replacement(struct matcher *m, luaL_Buffer *b, const char *s, const char *e, int how)
{
	lua_State *L = m->L;
	if (how == LUA_TFUNCTION) {
		lua_pushvalue(L, 3);
		int n = push_captures(m, s, e);
		lua_call(L, n, 1);
	} else if (how == LUA_TTABLE) {
		push_capture(m, 0, s, e);
		lua_gettable(L, 3);
	} else {
		add_template(m, b, s, e);
		return 1;
	}
	if (!lua_toboolean(L, -1)) {
		lua_pop(L, 1);
		luaL_addlstring(b, s, (size_t)(e - s));
		return 0;
	}
	if (!lua_isstring(L, -1))
		return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
	luaL_addvalue(b);
	return 1;
}

static int l_gsub(lua_State *L)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	int how = lua_type(L, 3);
	lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
	luaL_argexpected(L,
			 how == LUA_TNUMBER || how == LUA_TSTRING || how == LUA_TFUNCTION ||
			     how == LUA_TTABLE,
			 3, "string/function/table");
	int anchor = lp > 0 && *p == '^';
	if (anchor) {
		p++;
		lp--;
	}
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	struct matcher m;
	start(&m, L, "string.gsub", s, ls, p, lp);
	const char *at = s, *last = NULL;
	lua_Integer n = 0;
	int changed = 0;
	while (n < max) {
		m.level = 0;
		const char *e = match(&m, at, p);
		if (e && e != last) {
			n++;
			changed |= add_replacement(&m, &b, at, e, how);
			at = last = e;
		} else if (at < m.src_end) {
			luaL_addchar(&b, *at++);
		} else {
			break;
		}
		if (anchor)
			break;
	}
	if (!changed) {
		lua_pushvalue(L, 1);
	} else {
		luaL_addlstring(&b, at, (size_t)(m.src_end - at));
		luaL_pushresult(&b);
	}
	lua_pushinteger(L, n);
	return 2;
}

void ml_pattern_open(lua_State *L, int string_table)
{
	static const luaL_Reg fns[] = {
	    {"find", l_find}, {"match", l_match}, {"gmatch", l_gmatch}, {"gsub", l_gsub}, {0, 0}};
	string_table = lua_absindex(L, string_table);
	for (const luaL_Reg *f = fns; f->name; f++) {
		lua_pushcfunction(L, f->func);
		lua_setfield(L, string_table, f->name);
	}
}
