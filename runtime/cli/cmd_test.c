/*
 * cmd_test.c - `moonlog test [SPEC...]`: run busted on a user's specs with the
 * moonlog Lua modules of this build, without installing anything.
 *
 * When the binary runs from a build tree (BUILD/lua/moonlog/core.so sits
 * beside it), LUA_PATH points at the source tree's lua/ folder and LUA_CPATH
 * at BUILD/lua; an installed binary leaves them alone, since `make install`
 * put everything where lua5.4 looks. Then busted is run under lua5.4.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <moonlog/script.h>

#include "cli/cli.h"

static const char help[] =
    "usage: moonlog test [SPEC...] [busted options]\n"
    "\n"
    "Runs busted on SPEC (files or folders; default ./spec) with the moonlog modules\n"
    "(moonlog, moonlog.testing, moonlog.core) of this moonlog, found without installing\n"
    "it. Every argument is passed on to busted: moonlog test --help-busted for its own.\n"
    "Sets MOONLOG_BIN to this binary, for specs that run it.\n";

/* The first executable `name` on PATH, into out. */
static int find_program(const char *name, char *out, size_t n)
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

int cmd_test(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(help, stdout);
		return CLI_OK;
	}
	char exe[PATH_MAX], lua[PATH_MAX], busted[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return cli_fail("test", CLI_REFUSED, "cannot tell where the moonlog binary is");
	exe[n] = 0;
	if (find_program("lua5.4", lua, sizeof(lua)) != 0)
		return cli_fail("test", CLI_REFUSED,
				"lua5.4 is not on PATH; install it (apt "
				"install lua5.4)");
	if (find_program("busted", busted, sizeof(busted)) != 0)
		return cli_fail("test", CLI_REFUSED,
				"busted is not on PATH; install it (apt install lua-busted, or "
				"luarocks install busted)");
	set_paths(exe);

	char **args = ml_xcalloc((size_t)argc + 3, sizeof(*args));
	args[0] = lua;
	args[1] = busted;
	for (int i = 1; i < argc; i++)
		args[i + 1] = strcmp(argv[i], "--help-busted") == 0 ? "--help" : argv[i];
	fflush(NULL);
	execv(lua, args);
	free(args);
	return cli_fail("test", CLI_REFUSED, "cannot run %s: %m", lua);
}
