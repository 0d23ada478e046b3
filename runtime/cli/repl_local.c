/*
 * repl_local.c - the REPL backend that opens the log in this process, for
 * `moonlog repl --data DIR` when no server runs on DIR.
 *
 * A full lua_State hosts lua/moonlog/repl.lua (the moonlog modules are the
 * copies built into the library, or the files under $MOONLOG_LUA_DIR); the
 * user's chunks run in the sandboxed environment repl.env builds. A count
 * hook stops a runaway chunk after its budget, or at Ctrl-C.
 */
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <moonlog/log.h>
#include <moonlog/lua_log.h>
#include <moonlog/script.h>

#include "cli/cli.h"
#include "cli/repl.h"

#define EVAL_BUDGET 100000000ull /* Lua instructions per evaluation */
#define HOOK_EVERY  10000

struct local {
	struct repl_backend b;
	struct ml_log *log;
	lua_State *L;
	int env; /* registry ref of the session's globals */
	uint64_t budget_left;
	const char *scripts_dir; /* NULL: no scripts */
	char where[4200];
};

static void budget_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	struct local *l = *(struct local **)lua_getextraspace(L);
	if (repl_interrupted) {
		repl_interrupted = 0;
		luaL_error(L, "interrupted");
	}
	if (l->budget_left <= HOOK_EVERY)
		luaL_error(L,
			   "evaluation stopped: it ran past its budget of %d million "
			   "instructions",
			   (int)(EVAL_BUDGET / 1000000));
	l->budget_left -= HOOK_EVERY;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Pushes the sorted paths of the *.lua files of dir but its upcasters.lua (an empty list if it
 * has none). */
static void push_script_paths(lua_State *L, const char *dir)
{
	lua_newtable(L);
	DIR *d = dir ? opendir(dir) : NULL;
	if (d == NULL)
		return;
	char **names = NULL;
	size_t n = 0;
	for (struct dirent *de; (de = readdir(d)) != NULL;) {
		size_t len = strlen(de->d_name);
		if (len > 4 && de->d_name[0] != '.' && strcmp(de->d_name + len - 4, ".lua") == 0 &&
		    strcmp(de->d_name, ML_SCRIPT_UPCASTERS_FILE) != 0) { /* not a script */
			names = ml_xrealloc(names, (n + 1) * sizeof(*names));
			names[n++] = ml_xstrndup(de->d_name, len);
		}
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		lua_pushfstring(L, "%s/%s", dir, names[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
		free(names[i]);
	}
	free(names);
}

/* Pushes repl.local_scripts(core, log, paths) for the scripts folder. [-0, +1] */
static void push_local_scripts(lua_State *L, int repl, int log, const char *scripts_dir)
{
	lua_getfield(L, repl, "local_scripts");
	lua_createtable(L, 0, 2); /* the parts of moonlog.core it needs */
	ml_luaopen_script(L);
	lua_setfield(L, -2, "script");
	lua_pushvalue(L, log);
	push_script_paths(L, scripts_dir);
	lua_call(L, 3, 1);
}

/* Builds the session: repl.env { log = <this log>, scripts = ... }. Runs under lua_pcall. */
static int setup(lua_State *L)
{
	struct local *l = lua_touserdata(L, 1);
	luaL_openlibs(L);
	ml_script_add_searcher(L);
	lua_getglobal(L, "require");
	lua_pushliteral(L, "moonlog.repl");
	lua_call(L, 1, 1);
	lua_setfield(L, LUA_REGISTRYINDEX, "moonlog.repl");
	lua_getfield(L, LUA_REGISTRYINDEX, "moonlog.repl");
	int repl = lua_gettop(L);
	ml_lua_push_log(L, l->log, NULL, NULL); /* the Lua log API on the log opened here */
	int log = lua_gettop(L);
	lua_getfield(L, repl, "env");
	lua_createtable(L, 0, 2);
	lua_pushvalue(L, log);
	lua_setfield(L, -2, "log");
	if (l->scripts_dir) {
		push_local_scripts(L, repl, log, l->scripts_dir);
		lua_setfield(L, -2, "scripts");
	}
	lua_call(L, 1, 1);
	l->env = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

/* Calls repl.<fn>(env, text) with the budget hook on; leaves its results. */
static int call_repl(struct local *l, const char *fn, const char *text, int nresults)
{
	lua_State *L = l->L;
	lua_getfield(L, LUA_REGISTRYINDEX, "moonlog.repl");
	lua_getfield(L, -1, fn);
	lua_remove(L, -2);
	lua_rawgeti(L, LUA_REGISTRYINDEX, l->env);
	lua_pushstring(L, text);
	l->budget_left = EVAL_BUDGET;
	lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
	int rc = lua_pcall(L, 2, nresults, 0);
	lua_sethook(L, NULL, 0, 0);
	return rc;
}

static int local_eval(struct repl_backend *b, const char *chunk, struct repl_result *r)
{
	struct local *l = (struct local *)b;
	lua_State *L = l->L;
	int top = lua_gettop(L);
	if (call_repl(l, "eval", chunk, 3) != LUA_OK) {
		const char *msg = lua_tostring(L, -1);
		ml_buf_addf(&r->text, "%s", msg ? msg : "error");
		lua_settop(L, top);
		return 0;
	}
	r->ok = lua_toboolean(L, -3);
	size_t n;
	const char *text = lua_tolstring(L, -2, &n);
	ml_buf_add(&r->text, text ? text : "", text ? n : 0);
	ml_buf_add(&r->text, "", 1);
	r->text.len--;
	if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "incomplete") == 0)
		r->incomplete = 1;
	if (lua_type(L, -1) == LUA_TTABLE) {
		lua_getfield(L, -1, "pattern");
		snprintf(r->tail, sizeof(r->tail), "%s",
			 lua_tostring(L, -1) ? lua_tostring(L, -1) : "*");
		lua_getfield(L, -2, "from");
		r->tail_from = (uint64_t)lua_tointeger(L, -1);
	}
	lua_settop(L, top);
	return 0;
}

static int local_complete(struct repl_backend *b, const char *line, char ***out)
{
	struct local *l = (struct local *)b;
	lua_State *L = l->L;
	int top = lua_gettop(L), n = 0;
	*out = NULL;
	if (call_repl(l, "complete", line, 1) == LUA_OK && lua_istable(L, -1)) {
		n = (int)luaL_len(L, -1);
		*out = calloc((size_t)n + 1, sizeof(char *));
		for (int i = 0; i < n; i++) {
			lua_rawgeti(L, -1, i + 1);
			(*out)[i] = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
			lua_pop(L, 1);
		}
	}
	lua_settop(L, top);
	return n;
}

struct tail_ctx {
	struct local *l;
	uint64_t next;
};

/* Formats each event with repl.event_line after a pattern check done in Lua. */
static int tail_event(const struct ml_event *e, void *arg)
{
	struct tail_ctx *t = arg;
	struct ml_buf line = {0};
	cli_event_line(e, &line);
	fwrite(line.data, 1, line.len, stdout);
	ml_buf_free(&line);
	t->next = e->position + 1;
	return 0;
}

static int matches(const char *pattern, const char *s, size_t n)
{
	size_t p = strlen(pattern);
	if (strcmp(pattern, "$all") == 0)
		return 1;
	if (n > 0 && s[0] == '$')
		return 0;
	if (strcmp(pattern, "*") == 0)
		return 1;
	if (p > 0 && pattern[p - 1] == '*')
		return n >= p - 1 && memcmp(s, pattern, p - 1) == 0;
	if (!strchr(pattern, '-'))
		return (n == p && memcmp(s, pattern, p) == 0) ||
		       (n > p && memcmp(s, pattern, p) == 0 && s[p] == '-');
	return n == p && memcmp(s, pattern, p) == 0;
}

struct tail_filter {
	struct tail_ctx *t;
	const char *pattern;
};

/* A removed event (a deleted stream's, ml_log_removed) is left out, as a server's tail does. */
static int tail_filtered(const struct ml_event *e, void *arg)
{
	struct tail_filter *f = arg;
	struct ml_log *log = f->t->l->log;
	f->t->next = e->position + 1;
	if (!matches(f->pattern, e->stream, e->stream_len) ||
	    (ml_log_any_removed(log) &&
	     ml_log_removed(log, e->stream, e->stream_len, e->version, e->time, ml_time_ms())))
		return 0;
	return tail_event(e, f->t);
}

/* With the log opened here, nothing else appends to it but this session: poll it. */
static int local_tail(struct repl_backend *b, const char *pattern, uint64_t from,
		      volatile sig_atomic_t *stop)
{
	struct local *l = (struct local *)b;
	struct tail_ctx t = {l, from ? from : 1};
	struct tail_filter f = {&t, pattern};
	while (!*stop) {
		if (ml_log_read_all(l->log, t.next, 1000, tail_filtered, &f) < 0)
			return cli_diag("repl");
		fflush(stdout);
		struct timespec ts = {0, 50 * 1000000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

static void local_close(struct repl_backend *b)
{
	struct local *l = (struct local *)b;
	if (l->L)
		lua_close(l->L);
	ml_log_close(l->log);
	free(l);
}

struct repl_backend *repl_local_open(const char *dir, const char *scripts_dir)
{
	struct stat st;
	if (scripts_dir == NULL && stat("./scripts", &st) == 0 && S_ISDIR(st.st_mode))
		scripts_dir = "./scripts"; /* the default of moonlog serve, when it is there */
	struct ml_log *log = cli_open_log("repl", dir, 0, ML_FSYNC_ALWAYS);
	if (log == NULL)
		return NULL;
	struct local *l = calloc(1, sizeof(*l));
	l->log = log;
	l->scripts_dir = scripts_dir;
	l->L = luaL_newstate();
	*(struct local **)lua_getextraspace(l->L) = l;
	lua_pushcfunction(l->L, setup);
	lua_pushlightuserdata(l->L, l);
	if (lua_pcall(l->L, 1, 0, 0) != LUA_OK) {
		cli_fail("repl", CLI_REFUSED, "cannot start the REPL: %s", lua_tostring(l->L, -1));
		local_close(&l->b);
		return NULL;
	}
	snprintf(l->where, sizeof(l->where), "%s", dir);
	l->b = (struct repl_backend){.where = l->where,
				     .how = "local",
				     .eval = local_eval,
				     .complete = local_complete,
				     .tail = local_tail,
				     .close = local_close};
	return &l->b;
}
