/*
 * lua_run.c - running lua5.4 with this moonlog's Lua modules, for the commands
 * that are written in Lua (`moonlog test` runs busted, `moonlog lint` and
 * `moonlog new` run moonlog.lint and moonlog.new).
 *
 * When the binary runs from a build tree (BUILD/lua/moonlog/core.so sits
 * beside it), LUA_PATH points at the source tree's lua/ folder and LUA_CPATH
 * at BUILD/lua; an installed binary leaves them alone, since `make install`
 * put everything where lua5.4 looks. MOONLOG_BIN is set to the binary, for
 * specs that start it.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <moonlog/script.h>

#include "cli/cli.h"

int cli_find_program(const char *name, char *out, size_t n)
{
	const char *path = getenv("PATH");
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *end = strchr(path, ':');
		size_t len = end ? (size_t)(end - path) : strlen(path);
		snprintf(out, n, "%.*s/%s", (int)len, path, name);
		if (len > 0 && access(out, X_OK) == 0)
			return 0;
		path += len + (end != NULL);
	}
	return -1;
}

static void set_paths(const char *exe)
{
	char dir[PATH_MAX], probe[PATH_MAX + 32], value[3 * PATH_MAX];
	struct stat st;
	snprintf(dir, sizeof(dir), "%s", exe);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	setenv("MOONLOG_BIN", exe, 1);
	snprintf(probe, sizeof(probe), "%s/lua/moonlog/core.so", dir);
	if (stat(probe, &st) != 0)
		return; /* installed: lua5.4's own paths find everything */
	const char *src = ml_script_lua_source_dir();
	const char *old = getenv("LUA_PATH");
	snprintf(value, sizeof(value), "%s/?.lua;%s/?/init.lua;%s", src, src, old ? old : ";");
	setenv("LUA_PATH", value, 1);
	old = getenv("LUA_CPATH");
	snprintf(value, sizeof(value), "%s/lua/?.so;%s", dir, old ? old : ";");
	setenv("LUA_CPATH", value, 1);
}

int cli_exec_lua(const char *cmd, char **args, int nargs)
{
	char exe[PATH_MAX], lua[PATH_MAX];
	if (cli_self_path(exe, sizeof(exe)) != 0)
		return cli_diag(cmd);
	if (cli_find_program("lua5.4", lua, sizeof(lua)) != 0)
		return cli_fail(cmd, CLI_REFUSED,
				"lua5.4 is not on PATH; install it (apt install lua5.4)");
	set_paths(exe);
	char **argv = ml_xcalloc((size_t)nargs + 2, sizeof(*argv));
	argv[0] = lua;
	for (int i = 0; i < nargs; i++)
		argv[i + 1] = args[i];
	fflush(NULL);
	execv(lua, argv);
	free(argv);
	return cli_fail(cmd, CLI_REFUSED, "cannot run %s: %m", lua);
}
