/*
 * cmd_test.c - `moonlog test [SPEC...]`: run busted on a user's specs with the
 * moonlog Lua modules of this build, without installing anything.
 *
 * busted runs under lua5.4 with the paths lua_run.c sets.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char help[] =
    "usage: moonlog test [SPEC...] [busted options]\n"
    "\n"
    "Runs busted on SPEC (files or folders; default ./spec) with the moonlog modules\n"
    "(moonlog, moonlog.testing, moonlog.core) of this moonlog, found without installing\n"
    "it. Every argument is passed on to busted: moonlog test --help-busted for its own.\n"
    "Sets MOONLOG_BIN to this binary, for specs that run it.\n";

int cmd_test(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(help, stdout);
		return CLI_OK;
	}
	char busted[PATH_MAX];
	if (cli_find_program("busted", busted, sizeof(busted)) != 0)
		return cli_fail("test", CLI_REFUSED,
				"busted is not on PATH; install it (apt install lua-busted, or "
				"luarocks install busted)");
	char **args = ml_xcalloc((size_t)argc + 1, sizeof(*args));
	args[0] = busted;
	for (int i = 1; i < argc; i++)
		args[i] = strcmp(argv[i], "--help-busted") == 0 ? "--help" : argv[i];
	int rc = cli_exec_lua("test", args, argc);
	free(args);
	return rc;
}
