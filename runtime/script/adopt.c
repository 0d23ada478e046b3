/*
 * adopt.c - what a hot reload asks of a script: the definition's `reload`
 * mode and a handler's `start`, and a new version taking over the state of
 * the version it replaces (reload = "keep").
 *
 * The definition is not kept on the host stack; the runner's closures hold it
 * as their upvalue `def` (every kind has at least one: feed, query or
 * target). Reading it from there keeps this file out of runner.c's verbs. The
 * state crosses from one lua_State to the other as msgpack, the form a
 * snapshot already gives it, so what `keep` carries over is exactly what a
 * snapshot would: plain values, no functions or shared references. The new
 * definition's migrate_state(old) (its `migrate`, or the old state as it is)
 * runs under the new script's limits and becomes its state.
 */
#include <string.h>

#include <lauxlib.h>

#include <moonlog/codec.h>
#include <moonlog/diag.h>

#include "script_internal.h"

/* Pushes the definition held by the runner at `runner`; 0 (nothing pushed) if none is found. */
static int push_def(lua_State *L, int runner)
{
	runner = lua_absindex(L, runner);
	lua_pushnil(L);
	while (lua_next(L, runner)) { /* key, value */
		if (lua_type(L, -1) == LUA_TFUNCTION) {
			const char *up;
			for (int i = 1; (up = lua_getupvalue(L, -1, i)) != NULL; i++) {
				if (strcmp(up, "def") == 0 && lua_type(L, -1) == LUA_TTABLE) {
					lua_insert(L, -3); /* def, key, value */
					lua_pop(L, 2);
					return 1;
				}
				lua_pop(L, 1);
			}
		}
		lua_pop(L, 1);
	}
	return 0;
}

/* A raw string field of the definition, or NULL; `type` receives the field's Lua type. */
static const char *def_field(struct ml_script *s, const char *key, int *type, lua_Integer *num)
{
	lua_State *L = s->L;
	const char *v = NULL;
	*type = LUA_TNIL;
	if (!push_def(L, SLOT_RUNNER))
		return NULL;
	lua_pushstring(L, key);
	*type = lua_rawget(L, -2);
	if (*type == LUA_TSTRING)
		v = lua_tostring(L, -1); /* the definition keeps the string alive */
	else if (*type == LUA_TNUMBER && num)
		*num = lua_tointeger(L, -1);
	lua_pop(L, 2);
	return v;
}

int ml_script_reload_keep(struct ml_script *s)
{
	if (s->kind != ML_SCRIPT_PROJECTION && s->kind != ML_SCRIPT_REDUCER)
		return 0;
	int t;
	const char *mode = def_field(s, "reload", &t, NULL);
	return mode && strcmp(mode, "keep") == 0;
}

uint64_t ml_script_start_position(struct ml_script *s, uint64_t head)
{
	int t;
	lua_Integer n = 0;
	const char *start = def_field(s, "start", &t, &n);
	if (start && strcmp(start, "end") == 0)
		return head;
	if (t == LUA_TNUMBER && n > 0) /* start = p: the events after p */
		return (uint64_t)n;
	return 0;
}

struct adopt {
	const struct ml_buf *state;
};

/* In the new script: R.set(def:migrate_state(old)). Runner at 1, the adopt at 2. */
static int l_adopt(lua_State *L)
{
	struct adopt *a = lua_touserdata(L, 2);
	lua_getfield(L, 1, "set");
	int migrate = push_def(L, 1);
	if (migrate && lua_getfield(L, -1, "migrate_state") == LUA_TFUNCTION) {
		lua_insert(L, -2); /* set, migrate_state, def */
	} else {
		lua_settop(L, 3);
		migrate = 0;
	}
	if (ml_lua_push_msgpack(L, a->state->data, a->state->len) != 0)
		return luaL_error(L, "the old version's state: %s", ml_diag_last());
	if (migrate) {
		lua_call(L, 2, 1);
		if (lua_isnil(L, -1))
			return luaL_error(L, "migrate returned nil (it must return the new state)");
	}
	lua_call(L, 1, 0);
	return 0;
}

int ml_script_adopt_state(struct ml_script *to, struct ml_script *from)
{
	if (to->kind != from->kind)
		return ml_diag_set(ML_ERR_USAGE, "script %s: a %s cannot take over a %s's state",
				   to->name, ml_script_kind_name(to->kind),
				   ml_script_kind_name(from->kind));
	struct ml_buf state = {0};
	if (ml_script_state(from, &state) != 0)
		return -1;
	struct adopt a = {&state};
	int rc = ml_script_pcall(to, l_adopt, &a, 0, "migrate", 0);
	ml_buf_free(&state);
	if (rc == 0)
		to->position = from->position;
	return rc;
}
