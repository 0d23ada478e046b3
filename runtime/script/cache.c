/*
 * cache.c - a decider's state cache: target stream -> (the state folded in
 * the decider's lua_State, the stream version it was folded to), so that a
 * command folds only the events appended since its stream was last decided
 * instead of the whole stream.
 *
 * The states live in the Lua registry (one reference per stream); C keeps the
 * index: a chained hash table of entries that are also on a list in least
 * recently used order. The cache is bounded by a number of streams (the least
 * recently used one goes first) and by the script's Lua memory: once that
 * passes the bound, the least recently used quarter goes and a full collection
 * runs. It belongs to the ml_script, so a reload, which loads a fresh script,
 * starts with an empty one.
 *
 * An entry is trusted only while it is `valid`: it is marked invalid before a
 * fold starts and valid once the folded state is stored, so a fold that raises
 * half way (a reducer's error, a limit) leaves an entry that is rebuilt from
 * the stream's start the next time. The state handed to `decide` is a copy
 * (ml_cache_push_copy), so whatever decide does to it never reaches the cache.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "script_internal.h"

#define MAX_DEPTH 200 /* of a state's tables, for the copy */

/* The recency list; an entry starts with its links, so a link is its entry. */
struct links {
	struct links *prev, *next;
};

struct ml_cache_entry {
	struct links lru;	      /* most recently used first; first member */
	struct ml_cache_entry *hnext; /* the bucket's chain */
	uint64_t hash;
	uint64_t version;
	int ref; /* the state in the registry, or LUA_NOREF */
	int valid;
	size_t len;
	char stream[];
};

struct ml_decider_cache {
	struct ml_cache_entry **buckets;
	size_t nbuckets, n;
	struct links lru; /* sentinel: lru.next is the most recent */
	size_t max_streams, max_memory;
	struct ml_script_cache_stats stats;
};

size_t ml_cache_max_memory(size_t max_memory, size_t mem_limit)
{
	return max_memory ? max_memory : mem_limit / 2;
}

struct ml_decider_cache *ml_cache_new(size_t max_streams, size_t max_memory, size_t mem_limit)
{
	if (max_streams == 0)
		return NULL;
	struct ml_decider_cache *c = ml_xcalloc(1, sizeof(*c));
	c->max_streams = max_streams;
	c->max_memory = ml_cache_max_memory(max_memory, mem_limit);
	c->lru.next = c->lru.prev = &c->lru;
	c->nbuckets = 64;
	c->buckets = ml_xcalloc(c->nbuckets, sizeof(*c->buckets));
	return c;
}

/* Frees the index; the states go with the lua_State (closed by the caller). */
void ml_cache_free(struct ml_decider_cache *c)
{
	if (c == NULL)
		return;
	for (struct links *l = c->lru.next, *next; l != &c->lru; l = next) {
		next = l->next;
		free(l);
	}
	free(c->buckets);
	free(c);
}

static void unlink_lru(struct ml_cache_entry *e)
{
	e->lru.prev->next = e->lru.next;
	e->lru.next->prev = e->lru.prev;
}

static void push_front(struct ml_decider_cache *c, struct ml_cache_entry *e)
{
	e->lru.next = c->lru.next;
	e->lru.prev = &c->lru;
	c->lru.next->prev = &e->lru;
	c->lru.next = &e->lru;
}

/* The least recently used entry (the list must not be empty). */
static struct ml_cache_entry *oldest(struct ml_decider_cache *c)
{
	return (struct ml_cache_entry *)c->lru.prev;
}

static void drop(struct ml_decider_cache *c, lua_State *L, struct ml_cache_entry *e)
{
	struct ml_cache_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	unlink_lru(e);
	luaL_unref(L, LUA_REGISTRYINDEX, e->ref);
	c->n--;
	c->stats.evictions++;
	free(e);
}

static void grow(struct ml_decider_cache *c)
{
	size_t nb = c->nbuckets * 2;
	struct ml_cache_entry **b = ml_xcalloc(nb, sizeof(*b));
	for (size_t i = 0; i < c->nbuckets; i++)
		for (struct ml_cache_entry *e = c->buckets[i], *next; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = nb;
}

struct ml_cache_entry *ml_cache_get(struct ml_decider_cache *c, lua_State *L, const char *stream,
				    size_t len)
{
	uint64_t h = ml_hash64(stream, len, 0x6d6c63616368ull);
	for (struct ml_cache_entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == h && e->len == len && memcmp(e->stream, stream, len) == 0) {
			unlink_lru(e);
			push_front(c, e);
			return e;
		}
	while (c->n >= c->max_streams && c->lru.prev != &c->lru)
		drop(c, L, oldest(c));
	if (c->n >= c->nbuckets)
		grow(c);
	struct ml_cache_entry *e = ml_xmalloc(sizeof(*e) + len);
	*e = (struct ml_cache_entry){.hash = h, .ref = LUA_NOREF, .len = len};
	memcpy(e->stream, stream, len);
	e->hnext = c->buckets[h & (c->nbuckets - 1)];
	c->buckets[h & (c->nbuckets - 1)] = e;
	push_front(c, e);
	c->n++;
	return e;
}

int ml_cache_push(struct ml_decider_cache *c, lua_State *L, struct ml_cache_entry *e,
		  uint64_t visible, uint64_t *version)
{
	int hit = e->valid && e->ref != LUA_NOREF && e->version <= visible;
	e->valid = 0; /* until ml_cache_store: a fold that raises leaves it invalid */
	if (!hit) {
		c->stats.misses++;
		return 0;
	}
	c->stats.hits++;
	lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref);
	*version = e->version;
	return 1;
}

void ml_cache_store(struct ml_decider_cache *c, lua_State *L, struct ml_cache_entry *e, int idx,
		    uint64_t version)
{
	idx = lua_absindex(L, idx);
	e->valid = 0;
	if (e->ref == LUA_NOREF) {
		lua_pushvalue(L, idx);
		e->ref = luaL_ref(L, LUA_REGISTRYINDEX);
	} else {
		lua_pushvalue(L, idx);
		lua_rawseti(L, LUA_REGISTRYINDEX, e->ref);
	}
	e->version = version;
	e->valid = 1;
	(void)c;
}

void ml_cache_trim(struct ml_decider_cache *c, lua_State *L, size_t mem)
{
	if (mem <= c->max_memory || c->n <= 1)
		return;
	size_t k = c->n / 4 ? c->n / 4 : 1;
	while (k-- > 0 && c->lru.prev != c->lru.next) /* never the one just used */
		drop(c, L, oldest(c));
	lua_gc(L, LUA_GCCOLLECT);
}

void ml_cache_stats(const struct ml_decider_cache *c, struct ml_script_cache_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (c == NULL)
		return;
	*out = c->stats;
	out->streams = c->n;
}

/* ---- the copy handed to decide ---- */

/*
 * Pushes a deep copy of the value at idx: tables are copied (keys and values,
 * with the same metatable; shared and cyclic tables stay shared and cyclic in
 * the copy, through the memo table at `memo`), anything else is the same
 * value (event views are immutable already).
 */
static void copy(lua_State *L, int idx, int memo, int depth)
{
	if (lua_type(L, idx) != LUA_TTABLE) {
		lua_pushvalue(L, idx);
		return;
	}
	if (depth > MAX_DEPTH)
		luaL_error(L, "the state is nested more than %d tables deep", MAX_DEPTH);
	lua_pushvalue(L, idx);
	if (lua_rawget(L, memo) != LUA_TNIL)
		return;
	lua_pop(L, 1);
	luaL_checkstack(L, 8, "copying the state");
	int narr = (int)lua_rawlen(L, idx), nrec = 0;
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		nrec++;
		lua_pop(L, 1);
	}
	lua_createtable(L, narr, nrec > narr ? nrec - narr : 0);
	int t = lua_gettop(L);
	lua_pushvalue(L, idx);
	lua_pushvalue(L, t);
	lua_rawset(L, memo);
	if (lua_getmetatable(L, idx))
		lua_setmetatable(L, t);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		int k = lua_gettop(L) - 1;
		copy(L, k, memo, depth + 1);
		copy(L, k + 1, memo, depth + 1);
		lua_rawset(L, t);
		lua_pop(L, 1);
	}
}

/*
 * A table of plain values only (no nested table), copied in one pass without a
 * memo; *fields is the size of the last such copy, a good guess for the next.
 * 0 (the stack as it was) at the first nested table.
 */
static int copy_flat(lua_State *L, int idx, int *fields)
{
	int narr = (int)lua_rawlen(L, idx), n = 0;
	lua_createtable(L, narr, *fields > narr ? *fields - narr : 0);
	int t = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		if (lua_type(L, -1) == LUA_TTABLE || lua_type(L, -2) == LUA_TTABLE) {
			lua_settop(L, t - 1);
			return 0;
		}
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, t);
		n++;
	}
	if (lua_getmetatable(L, idx))
		lua_setmetatable(L, t);
	*fields = n;
	return 1;
}

void ml_cache_push_copy(lua_State *L, int idx, int *fields)
{
	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) != LUA_TTABLE) {
		lua_pushvalue(L, idx);
		return;
	}
	if (copy_flat(L, idx, fields))
		return;
	lua_newtable(L); /* the memo */
	int memo = lua_gettop(L);
	copy(L, idx, memo, 0);
	lua_remove(L, memo);
}
